//! The one HTTP request webhooks need: a POST over HTTP/1.1 with `Connection: close`, answered by a
//! status line. Written on tokio's TCP stream because the web crate carries no HTTP client;
//! `https://` runs the same exchange over a rustls stream (verification in [`super::tls`]).

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_rustls::rustls::ClientConfig;
use tokio_rustls::rustls::pki_types::ServerName;

use super::webhooks::TryOutcome;

/// Where a webhook goes, parsed from its URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `https://`: TLS to the receiver.
    pub tls: bool,
    pub host: String,
    pub port: u16,
    /// Path and query, starting with `/`.
    pub path: String,
}

impl Target {
    pub fn parse(url: &str) -> Result<Target, String> {
        let (tls, rest) = match (url.strip_prefix("http://"), url.strip_prefix("https://")) {
            (Some(r), _) => (false, r),
            (_, Some(r)) => (true, r),
            _ => return Err(format!("{url:?} is not an http:// or https:// URL")),
        };
        let default_port = if tls { 443 } else { 80 };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) if rest[i..].starts_with('/') => (&rest[..i], rest[i..].to_owned()),
            Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
            None => (rest, "/".to_owned()),
        };
        if authority.contains('@') {
            return Err(format!("{url:?}: credentials in the URL are not allowed"));
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => {
                let port: u16 = p
                    .parse()
                    .map_err(|_| format!("{url:?}: {p:?} is not a port"))?;
                (h, port)
            }
            _ => (authority, default_port),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty()
            || port == 0
            || !host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'))
        {
            return Err(format!("{url:?}: no valid host"));
        }
        if path.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!(
                "{url:?}: the path has spaces or control characters"
            ));
        }
        Ok(Target {
            tls,
            host: host.to_owned(),
            port,
            path,
        })
    }

    fn host_header(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == if self.tls { 443 } else { 80 } {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

/// POSTs `body` as JSON with `headers`; the whole exchange (connect, TLS handshake, request,
/// status line) is bounded by `timeout`. An `https://` target needs `tls`, the client
/// configuration that verifies the receiver ([`super::tls::client_config`]).
pub async fn post(
    target: &Target,
    tls: Option<&Arc<ClientConfig>>,
    headers: &[(&str, String)],
    body: &[u8],
    timeout: Duration,
) -> TryOutcome {
    match tokio::time::timeout(timeout, connect_and_exchange(target, tls, headers, body)).await {
        Ok(Ok(code)) => TryOutcome::Status(code),
        Ok(Err(e)) => TryOutcome::NoAnswer(e),
        Err(_) => TryOutcome::NoAnswer(format!("no answer within {} ms", timeout.as_millis())),
    }
}

async fn connect_and_exchange(
    target: &Target,
    tls: Option<&Arc<ClientConfig>>,
    headers: &[(&str, String)],
    body: &[u8],
) -> Result<u16, String> {
    let tcp = tokio::net::TcpStream::connect((target.host.as_str(), target.port))
        .await
        .map_err(|e| format!("connect to {}:{}: {e}", target.host, target.port))?;
    if !target.tls {
        return exchange(tcp, target, headers, body).await;
    }
    let config = tls.ok_or("an https:// receiver needs a TLS client configuration")?;
    let name = ServerName::try_from(target.host.clone())
        .map_err(|e| format!("{:?} is not a TLS server name: {e}", target.host))?;
    let stream = tokio_rustls::TlsConnector::from(config.clone())
        .connect(name, tcp)
        .await
        .map_err(|e| super::tls::handshake_error(&target.host, &e))?;
    exchange(stream, target, headers, body).await
}

/// The request and the status line, over a plain or a TLS stream.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    target: &Target,
    headers: &[(&str, String)],
    body: &[u8],
) -> Result<u16, String> {
    let mut head = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: dialbridge/{}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        target.path,
        target.host_header(),
        env!("CARGO_PKG_VERSION"),
        body.len()
    );
    for (name, value) in headers {
        head.push_str(name);
        head.push_str(": ");
        head.push_str(value);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    let mut request = head.into_bytes();
    request.extend_from_slice(body);
    stream
        .write_all(&request)
        .await
        .map_err(|e| format!("sending: {e}"))?;
    stream.flush().await.map_err(|e| format!("sending: {e}"))?;
    let mut buf = Vec::with_capacity(256);
    let mut chunk = [0u8; 1024];
    loop {
        if let Some(end) = buf.windows(2).position(|w| w == b"\r\n") {
            return parse_status(&buf[..end]);
        }
        if buf.len() > 8192 {
            return Err("the status line is longer than 8 KiB".into());
        }
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|e| format!("reading the answer: {e}"))?;
        if n == 0 {
            return Err("the receiver closed the connection without answering".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn parse_status(line: &[u8]) -> Result<u16, String> {
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    match (
        parts.next(),
        parts.next().and_then(|c| c.parse::<u16>().ok()),
    ) {
        (Some(v), Some(code)) if v.starts_with("HTTP/1.") && (100..600).contains(&code) => Ok(code),
        _ => Err(format!("not an HTTP status line: {line:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_into_host_port_and_path() {
        let t = Target::parse("http://127.0.0.1:8123/hooks/crm?x=1").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("127.0.0.1", 8123, "/hooks/crm?x=1")
        );
        assert_eq!(t.host_header(), "127.0.0.1:8123");
        let t = Target::parse("http://crm.example.com").unwrap();
        assert_eq!(
            (t.port, t.path.as_str(), t.host_header().as_str()),
            (80, "/", "crm.example.com")
        );
        let t = Target::parse("http://[::1]:9000/h").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.host_header().as_str()),
            ("::1", 9000, "[::1]:9000")
        );
        assert_eq!(Target::parse("http://h?q=1").unwrap().path, "/?q=1");
        let t = Target::parse("https://crm.example.com/hooks").unwrap();
        assert_eq!(
            (t.tls, t.port, t.host_header().as_str()),
            (true, 443, "crm.example.com")
        );
        let t = Target::parse("https://crm.example.com:8443").unwrap();
        assert_eq!(
            (t.tls, t.port, t.path.as_str(), t.host_header().as_str()),
            (true, 8443, "/", "crm.example.com:8443")
        );
        assert!(!Target::parse("http://h/").unwrap().tls);
        for bad in [
            "https://",
            "https://u:p@h/",
            "ftp://x/",
            "http://",
            "http://h:99999/",
            "http://u:p@h/",
            "http://h/a b",
            "crm.example.com",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
        assert!(Target::parse("ftp://x/").unwrap_err().contains("https://"));
    }

    #[test]
    fn status_lines() {
        assert_eq!(parse_status(b"HTTP/1.1 204 No Content"), Ok(204));
        assert_eq!(parse_status(b"HTTP/1.0 500"), Ok(500));
        assert!(parse_status(b"SSH-2.0-OpenSSH").is_err());
    }

    /// A real exchange with axum as the receiver: the request arrives whole, the status returns.
    #[tokio::test]
    async fn posts_to_a_real_server() {
        use axum::http::{HeaderMap, StatusCode};
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |h: HeaderMap, body: String| {
                let tx = tx.clone();
                async move {
                    let sig = h["x-test"].to_str().unwrap().to_owned();
                    tx.send((sig, body)).unwrap();
                    StatusCode::ACCEPTED
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let t = Target::parse(&format!("http://{addr}/hook")).unwrap();
        let out = post(
            &t,
            None,
            &[("X-Test", "v1".into())],
            b"{\"a\":1}",
            Duration::from_secs(5),
        )
        .await;
        assert_eq!(out, TryOutcome::Status(202));
        assert_eq!(rx.recv().await.unwrap(), ("v1".into(), "{\"a\":1}".into()));
        let missing = Target::parse(&format!("http://{addr}/nope")).unwrap();
        assert_eq!(
            post(&missing, None, &[], b"{}", Duration::from_secs(5)).await,
            TryOutcome::Status(404)
        );
        // A port nobody listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let closed = Target::parse(&format!("http://127.0.0.1:{port}/")).unwrap();
        assert!(matches!(
            post(&closed, None, &[], b"{}", Duration::from_secs(5)).await,
            TryOutcome::NoAnswer(_)
        ));
    }

    /// A CA and a server certificate it signed for `sans` (openssl's subjectAltName syntax), made
    /// with the openssl CLI in `dir`: (CA certificate, server certificate, server key).
    pub(crate) fn make_certs(
        dir: &std::path::Path,
        name: &str,
        sans: &str,
    ) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
        let p = |f: &str| dir.join(format!("{name}-{f}")).display().to_string();
        std::fs::write(
            p("ext.cnf"),
            format!(
                "subjectAltName={sans}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
            ),
        )
        .unwrap();
        let ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
        for args in [
            format!(
                "req -x509 {ec} -keyout {} -out {} -days 2 -subj /CN={name}-test-ca \
                 -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign",
                p("ca.key"),
                p("ca.pem")
            ),
            format!(
                "req -new {ec} -keyout {} -out {} -subj /CN=receiver",
                p("server.key"),
                p("server.csr")
            ),
            format!(
                "x509 -req -days 2 -CAcreateserial -in {} -CA {} -CAkey {} -out {} -extfile {}",
                p("server.csr"),
                p("ca.pem"),
                p("ca.key"),
                p("server.pem"),
                p("ext.cnf")
            ),
        ] {
            let out = std::process::Command::new("openssl")
                .args(args.split_whitespace())
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "openssl {args}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        (
            p("ca.pem").into(),
            p("server.pem").into(),
            p("server.key").into(),
        )
    }

    /// Hands axum TLS connections (the handshake done in `accept`; a failed one is skipped).
    struct TlsListener {
        tcp: tokio::net::TcpListener,
        acceptor: tokio_rustls::TlsAcceptor,
    }

    impl axum::serve::Listener for TlsListener {
        type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
        type Addr = std::net::SocketAddr;

        async fn accept(&mut self) -> (Self::Io, Self::Addr) {
            loop {
                let Ok((tcp, peer)) = self.tcp.accept().await else {
                    continue;
                };
                if let Ok(tls) = self.acceptor.accept(tcp).await {
                    return (tls, peer);
                }
            }
        }

        fn local_addr(&self) -> std::io::Result<Self::Addr> {
            self.tcp.local_addr()
        }
    }

    /// An HTTPS receiver with this certificate: each request's `X-Test` header and body go to
    /// the channel, and it answers 202.
    async fn tls_receiver(
        cert: &std::path::Path,
        key: &std::path::Path,
    ) -> (
        std::net::SocketAddr,
        tokio::sync::mpsc::UnboundedReceiver<(String, String)>,
    ) {
        use tokio_rustls::rustls;
        use tokio_rustls::rustls::pki_types::pem::PemObject;
        use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let chain = CertificateDer::pem_file_iter(cert)
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_file(key).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |h: axum::http::HeaderMap, body: String| {
                let tx = tx.clone();
                async move {
                    let test = h["x-test"].to_str().unwrap().to_owned();
                    tx.send((test, body)).unwrap();
                    axum::http::StatusCode::ACCEPTED
                }
            }),
        );
        let listener = TlsListener {
            tcp: tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        };
        let addr = listener.tcp.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (addr, rx)
    }

    fn no_answer(out: TryOutcome) -> String {
        match out {
            TryOutcome::NoAnswer(e) => e,
            other => panic!("expected a failed try, got {other:?}"),
        }
    }

    /// HTTPS: the body arrives over a verified connection; a certificate from a CA we do not
    /// trust, or one that does not name the host, fails the try with a message saying so.
    #[tokio::test]
    async fn posts_over_tls_and_refuses_untrusted_or_misnamed_certificates() {
        if !foundation::testing::require_tool("openssl", "openssl") {
            return;
        }
        use super::super::tls::client_config;
        let dir = tempfile::tempdir().unwrap();
        let secs = Duration::from_secs(5);
        let (ca, cert, key) = make_certs(dir.path(), "good", "DNS:localhost,IP:127.0.0.1");
        let (addr, mut rx) = tls_receiver(&cert, &key).await;
        let t = Target::parse(&format!("https://{addr}/hook")).unwrap();
        let trusted = client_config(Some(&ca)).unwrap();
        let out = post(
            &t,
            Some(&trusted),
            &[("X-Test", "v1".into())],
            b"{\"a\":1}",
            secs,
        )
        .await;
        assert_eq!(out, TryOutcome::Status(202));
        assert_eq!(rx.recv().await.unwrap(), ("v1".into(), "{\"a\":1}".into()));

        // The same server checked against another CA.
        let (other_ca, _, _) = make_certs(dir.path(), "other", "DNS:localhost");
        let untrusted = client_config(Some(&other_ca)).unwrap();
        let e = no_answer(
            post(
                &t,
                Some(&untrusted),
                &[("X-Test", "v2".into())],
                b"{}",
                secs,
            )
            .await,
        );
        assert!(e.contains("certificate is not trusted"), "{e}");
        assert!(e.contains(&addr.ip().to_string()), "names the host: {e}");
        // Nor do the system's roots trust a CA made a moment ago (when the machine has them).
        if let Ok(system) = client_config(None) {
            let e =
                no_answer(post(&t, Some(&system), &[("X-Test", "v3".into())], b"{}", secs).await);
            assert!(e.contains("certificate is not trusted"), "{e}");
        }
        // https without a TLS configuration is refused before anything is sent.
        let e = no_answer(post(&t, None, &[("X-Test", "v4".into())], b"{}", secs).await);
        assert!(e.contains("TLS client configuration"), "{e}");

        // A trusted certificate for another name.
        let (ca2, cert2, key2) = make_certs(dir.path(), "misnamed", "DNS:crm.example");
        let (addr2, mut rx2) = tls_receiver(&cert2, &key2).await;
        let t2 = Target::parse(&format!("https://{addr2}/hook")).unwrap();
        let config2 = client_config(Some(&ca2)).unwrap();
        let e = no_answer(post(&t2, Some(&config2), &[("X-Test", "v5".into())], b"{}", secs).await);
        assert!(
            e.contains("not valid for the host name \"127.0.0.1\""),
            "{e}"
        );

        // Nothing reached a receiver over a connection that failed verification.
        assert!(rx.try_recv().is_err() && rx2.try_recv().is_err());
    }
}
