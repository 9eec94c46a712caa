//! TLS for `https://` webhook receivers: the rustls client configuration a subscription uses
//! (its `ca_file`, else the system's trusted roots — read the same way SIP over TLS reads them,
//! through `telephony::sip::tls`), and handshake failures worded for the delivery record
//! (an untrusted certificate, one that does not name the host, an expired one).
//!
//! Crypto is rustls with the `ring` provider, TLS 1.2 and 1.3; the server name (SNI and the
//! name checked in the certificate) is the URL's host, a DNS name or an IP address.

use std::path::Path;
use std::sync::Arc;

use telephony::sip::tls::{read_certs, system_roots};
use tokio_rustls::rustls::{self, CertificateError, ClientConfig, RootCertStore};

/// The client configuration for a receiver verified against `ca_file` (PEM CA certificates),
/// else against the system roots (`SSL_CERT_FILE`, else the usual bundle paths). The error says
/// what is wrong with the file, or that no system bundle was found.
pub fn client_config(ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, String> {
    let roots = match ca_file {
        Some(path) => {
            let mut roots = RootCertStore::empty();
            let certs = read_certs(path, "ca_file").map_err(|e| e.message)?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(format!("{} holds no usable CA certificate", path.display()));
            }
            roots
        }
        None => system_roots().map_err(|e| format!("system roots: {}", e.message))?,
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS protocol versions: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// A failed handshake with `host`, worded for the delivery record.
pub fn handshake_error(host: &str, e: &std::io::Error) -> String {
    let rustls_error = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>());
    let why = match rustls_error {
        Some(rustls::Error::InvalidCertificate(c)) => match c {
            CertificateError::UnknownIssuer | CertificateError::BadSignature => format!(
                "the receiver's certificate is not trusted (not signed by a trusted CA: {c:?})"
            ),
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                format!("the receiver's certificate is not valid for the host name {host:?}")
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "the receiver's certificate has expired".to_owned()
            }
            other => format!("the receiver's certificate is not trusted ({other:?})"),
        },
        Some(other) => other.to_string(),
        None => e.to_string(),
    };
    format!("TLS handshake with {host}: {why}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_file_that_is_missing_or_holds_no_certificate_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.pem");
        let e = client_config(Some(&missing)).unwrap_err();
        assert!(e.contains("cannot read") && e.contains("nope.pem"), "{e}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let e = client_config(Some(&empty)).unwrap_err();
        assert!(e.contains("holds no certificate"), "{e}");
    }
}
