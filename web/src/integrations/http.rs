//! The one HTTP request webhooks need: a POST over HTTP/1.1 with `Connection: close`, answered by a
//! status line. Written on tokio's TCP stream because the web crate carries no HTTP client; plain
//! `http://` only (put a TLS-terminating proxy in front of an `https://` receiver).

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::webhooks::TryOutcome;

/// Where a webhook goes, parsed from its URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub host: String,
    pub port: u16,
    /// Path and query, starting with `/`.
    pub path: String,
}

impl Target {
    pub fn parse(url: &str) -> Result<Target, String> {
        let rest = match url.strip_prefix("http://") {
            Some(r) => r,
            None if url.starts_with("https://") => {
                return Err(format!(
                    "{url:?}: https is not supported; use an http:// URL (a TLS proxy in front of the receiver)"
                ));
            }
            None => return Err(format!("{url:?} is not an http:// URL")),
        };
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
            _ => (authority, 80),
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
        if self.port == 80 {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

/// POSTs `body` as JSON with `headers`; the whole exchange is bounded by `timeout`.
pub async fn post(
    target: &Target,
    headers: &[(&str, String)],
    body: &[u8],
    timeout: Duration,
) -> TryOutcome {
    match tokio::time::timeout(timeout, exchange(target, headers, body)).await {
        Ok(Ok(code)) => TryOutcome::Status(code),
        Ok(Err(e)) => TryOutcome::NoAnswer(e),
        Err(_) => TryOutcome::NoAnswer(format!("no answer within {} ms", timeout.as_millis())),
    }
}

async fn exchange(target: &Target, headers: &[(&str, String)], body: &[u8]) -> Result<u16, String> {
    let mut stream = tokio::net::TcpStream::connect((target.host.as_str(), target.port))
        .await
        .map_err(|e| format!("connect to {}:{}: {e}", target.host, target.port))?;
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
        for bad in [
            "https://crm.example.com/",
            "ftp://x/",
            "http://",
            "http://h:99999/",
            "http://u:p@h/",
            "http://h/a b",
            "crm.example.com",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
        assert!(Target::parse("https://x/").unwrap_err().contains("https"));
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
            &[("X-Test", "v1".into())],
            b"{\"a\":1}",
            Duration::from_secs(5),
        )
        .await;
        assert_eq!(out, TryOutcome::Status(202));
        assert_eq!(rx.recv().await.unwrap(), ("v1".into(), "{\"a\":1}".into()));
        let missing = Target::parse(&format!("http://{addr}/nope")).unwrap();
        assert_eq!(
            post(&missing, &[], b"{}", Duration::from_secs(5)).await,
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
            post(&closed, &[], b"{}", Duration::from_secs(5)).await,
            TryOutcome::NoAnswer(_)
        ));
    }
}
