//! SIP over TLS (RFC 3261 §26.2, RFC 5630 basics): the rustls configurations the driver uses.
//!
//! - **Listener**: a TCP listener whose connections complete a TLS handshake (10 s limit, off
//!   the accept path) before they are framed exactly like TCP ([`super::framing`]: Content-Length,
//!   the same size limit and 513), parsed, and fed to the same core: the trunk ACL, digest
//!   authentication and the registrar apply unchanged. Via says `SIP/2.0/TLS`, Contact and
//!   Record-Route handling use `;transport=tls`, the default port is 5061.
//! - **Outbound**: a trunk whose transport is TLS (a `sips:` URI or `;transport=tls`) is reached
//!   over one TLS connection per peer, reused for every request as TCP connections are. The
//!   server's certificate is verified against the configured CA file, else the system roots
//!   (`SSL_CERT_FILE`, else the usual bundle paths); trunks are IP addresses, so the certificate
//!   must name that IP address (an IP subjectAltName). A failed handshake is logged, counted
//!   (`dialbridge_sip_tls_handshake_failures_total{direction}`) and fails the request at once
//!   (the call moves on to its next trunk, or ends as unreachable).
//! - **Client certificates**: with a CA file configured, a peer that presents a certificate the
//!   CA did not sign is refused during the handshake; peers presenting none are accepted (SIP
//!   authenticates them by address or digest). Our own certificate, when configured, is also
//!   presented on connections we open (mutual TLS for trunks that ask for it).
//! - [`Verify::DangerAcceptAnyServerCertificateForTestsOnly`] turns verification off; it exists
//!   for tests and is not reachable from the appliance's configuration.
//!
//! Crypto is rustls with the `ring` provider (no aws-lc on this path), TLS 1.2 and 1.3.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_rustls::rustls;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio_rustls::rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

/// How we check the certificates of TLS servers we connect to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Verify {
    /// Against the system's trusted roots.
    #[default]
    SystemRoots,
    /// Against the CA certificates in this PEM file only.
    CaFile(PathBuf),
    /// No verification at all. For tests only: anyone on the path can read and change the calls.
    DangerAcceptAnyServerCertificateForTestsOnly,
}

/// TLS settings of the SIP layer.
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    /// Where the TLS listener binds (`None`: no listener; calls can still be placed over TLS).
    pub listen: Option<SocketAddr>,
    /// Our certificate chain and private key (PEM): required for the listener, presented as a
    /// client certificate on connections we open when set.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// How servers we connect to are verified; with [`Verify::CaFile`] the same CA also checks
    /// certificates that connecting clients present.
    pub verify: Verify,
}

/// The built rustls configurations.
#[derive(Clone)]
pub struct TlsSetup {
    pub listen: Option<SocketAddr>,
    pub server: Option<Arc<rustls::ServerConfig>>,
    pub client: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for TlsSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSetup")
            .field("listen", &self.listen)
            .field("server", &self.server.is_some())
            .finish()
    }
}

/// What is wrong with the TLS settings; `key` names the setting (`cert`, `key`, `ca`, `listen`).
#[derive(Debug, thiserror::Error)]
#[error("{key}: {message}")]
pub struct TlsConfigError {
    pub key: &'static str,
    pub message: String,
}

fn err(key: &'static str, message: impl Into<String>) -> TlsConfigError {
    TlsConfigError {
        key,
        message: message.into(),
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads a PEM certificate chain.
pub fn read_certs(
    path: &Path,
    key: &'static str,
) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| err(key, format!("cannot read {}: {e}", path.display())))?
        .collect::<Result<_, _>>()
        .map_err(|e| {
            err(
                key,
                format!("{} is not PEM certificates: {e}", path.display()),
            )
        })?;
    if certs.is_empty() {
        return Err(err(key, format!("{} holds no certificate", path.display())));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsConfigError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| {
        err(
            "key",
            format!("cannot read a PEM private key from {}: {e}", path.display()),
        )
    })
}

fn roots_from(path: &Path, key: &'static str) -> Result<RootCertStore, TlsConfigError> {
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(read_certs(path, key)?);
    if added == 0 {
        return Err(err(
            key,
            format!("{} holds no usable CA certificate", path.display()),
        ));
    }
    Ok(roots)
}

/// The system's trusted roots: `SSL_CERT_FILE`, else the first bundle found at the usual paths.
pub fn system_roots() -> Result<RootCertStore, TlsConfigError> {
    let candidates = std::env::var_os("SSL_CERT_FILE")
        .map(PathBuf::from)
        .into_iter()
        .chain(
            [
                "/etc/ssl/certs/ca-certificates.crt",
                "/etc/pki/tls/certs/ca-bundle.crt",
                "/etc/ssl/ca-bundle.pem",
                "/etc/ssl/cert.pem",
            ]
            .map(PathBuf::from),
        );
    for path in candidates {
        if path.is_file() {
            return roots_from(&path, "ca");
        }
    }
    Err(err(
        "ca",
        "no system CA bundle found (set SSL_CERT_FILE or configure a CA file)",
    ))
}

impl TlsOptions {
    /// Reads the files and builds the configurations; errors name the setting at fault.
    pub fn build(&self) -> Result<TlsSetup, TlsConfigError> {
        let ours = match (&self.cert, &self.key) {
            (Some(c), Some(k)) => Some((read_certs(c, "cert")?, read_key(k)?)),
            (None, None) => None,
            (Some(_), None) => return Err(err("key", "a certificate needs its private key")),
            (None, Some(_)) => return Err(err("cert", "a private key needs its certificate")),
        };
        if self.listen.is_some() && ours.is_none() {
            return Err(err(
                "cert",
                "the TLS listener needs a certificate and a private key",
            ));
        }
        let ca_roots = match &self.verify {
            Verify::CaFile(p) => Some(Arc::new(roots_from(p, "ca")?)),
            _ => None,
        };
        let server = match (&ours, self.listen) {
            (Some((chain, key)), Some(_)) => {
                let builder = rustls::ServerConfig::builder_with_provider(provider())
                    .with_safe_default_protocol_versions()
                    .map_err(|e| err("cert", e.to_string()))?;
                let builder = match &ca_roots {
                    Some(roots) => {
                        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                            roots.clone(),
                            provider(),
                        )
                        .allow_unauthenticated()
                        .build()
                        .map_err(|e| err("ca", e.to_string()))?;
                        builder.with_client_cert_verifier(verifier)
                    }
                    None => builder.with_no_client_auth(),
                };
                let config = builder
                    .with_single_cert(chain.clone(), key.clone_key())
                    .map_err(|e| err("key", format!("does not match the certificate: {e}")))?;
                Some(Arc::new(config))
            }
            _ => None,
        };
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| err("ca", e.to_string()))?;
        let builder = match &self.verify {
            Verify::SystemRoots => builder.with_root_certificates(system_roots()?),
            Verify::CaFile(_) => {
                builder.with_root_certificates(ca_roots.clone().expect("read above"))
            }
            Verify::DangerAcceptAnyServerCertificateForTestsOnly => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnything(provider()))),
        };
        let client = match ours {
            Some((chain, key)) => builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| err("key", format!("does not match the certificate: {e}")))?,
            None => builder.with_no_client_auth(),
        };
        Ok(TlsSetup {
            listen: self.listen,
            server,
            client: Arc::new(client),
        })
    }
}

/// The name a trunk's certificate must carry: its IP address (trunks are configured by address).
pub fn server_name(addr: SocketAddr) -> ServerName<'static> {
    ServerName::IpAddress(addr.ip().into())
}

/// [`Verify::DangerAcceptAnyServerCertificateForTestsOnly`]: signatures are still checked (the
/// handshake needs them), the certificate is not.
#[derive(Debug)]
struct AcceptAnything(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAnything {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_setting() {
        let missing = PathBuf::from("/nonexistent/dialbridge-sip.pem");
        let e = TlsOptions {
            listen: Some("127.0.0.1:0".parse().unwrap()),
            ..Default::default()
        }
        .build()
        .unwrap_err();
        assert_eq!(e.key, "cert");
        let e = TlsOptions {
            cert: Some(missing.clone()),
            key: Some(missing.clone()),
            ..Default::default()
        }
        .build()
        .unwrap_err();
        assert_eq!(e.key, "cert");
        assert!(e.to_string().contains("/nonexistent"), "{e}");
        let e = TlsOptions {
            verify: Verify::CaFile(missing),
            ..Default::default()
        }
        .build()
        .unwrap_err();
        assert_eq!(e.key, "ca");
        let e = TlsOptions {
            cert: Some("/x".into()),
            ..Default::default()
        }
        .build()
        .unwrap_err();
        assert_eq!(e.key, "key");
    }

    #[test]
    fn a_client_without_files_is_built_for_tests() {
        let s = TlsOptions {
            verify: Verify::DangerAcceptAnyServerCertificateForTestsOnly,
            ..Default::default()
        }
        .build()
        .unwrap();
        assert!(s.server.is_none() && s.listen.is_none());
    }
}
