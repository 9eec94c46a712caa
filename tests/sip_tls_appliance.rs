//! `serve` with `sip.tls_listen` set: the "listening" line names the TLS address, `/readyz` is
//! ready, and a real TLS client (`openssl s_client`, verifying the appliance's certificate
//! against the test CA made here) gets SIP answers over it. A bad `sip.tls_*` setting stops the
//! start with the key named.

mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A throwaway CA and a certificate it signed for 127.0.0.1.
fn pki(dir: &Path) {
    std::fs::write(
        dir.join("leaf.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth,clientAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=Dialbridge test CA",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "node.key",
            "-out",
            "node.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "node.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "node.pem",
            "-days",
            "2",
            "-extfile",
            "leaf.ext",
        ],
    );
}

/// The appliance's "listening" line (the log reader hands it over before storing it).
fn listening_line(app: &Appliance) -> serde_json::Value {
    for _ in 0..100 {
        if let Some(line) = app.log_text().lines().find(|l| l.contains("\"listening\"")) {
            return serde_json::from_str(line).unwrap();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("no listening line in the log:\n{}", app.log_text());
}

/// Sends one OPTIONS over TLS and returns what came back.
fn options_over_tls(dir: &Path, addr: &str) -> String {
    let req = "OPTIONS sip:dialbridge@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.1:5999;branch=z9hG4bKtls1\r\n\
From: <sip:probe@127.0.0.1>;tag=p1\r\nTo: <sip:dialbridge@127.0.0.1>\r\nCall-ID: tls1@probe\r\n\
CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n";
    let mut child = Command::new("openssl")
        .current_dir(dir)
        .args([
            "s_client",
            "-quiet",
            "-verify_return_error",
            "-CAfile",
            "ca.pem",
            "-connect",
            addr,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl s_client starts");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(req.as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    drop(stdin);
    std::thread::sleep(Duration::from_millis(300));
    let _ = child.kill();
    let mut out = String::new();
    let _ = child.stdout.take().unwrap().read_to_string(&mut out);
    let _ = child.wait();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_with_sip_tls_reports_the_address_and_answers_over_tls() {
    if !foundation::testing::require_tool("openssl", "openssl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    pki(dir.path());
    let p = |f: &str| dir.path().join(f).display().to_string();
    let (cert, key, ca) = (p("node.pem"), p("node.key"), p("ca.pem"));
    let env = [
        ("DIALBRIDGE_SIP_TLS_LISTEN", "127.0.0.1:0"),
        ("DIALBRIDGE_SIP_TLS_CERT", cert.as_str()),
        ("DIALBRIDGE_SIP_TLS_KEY", key.as_str()),
        ("DIALBRIDGE_SIP_TLS_CA", ca.as_str()),
    ];
    let app = Appliance::start(dir.path(), &env);
    let line = listening_line(&app);
    let tls: std::net::SocketAddr = line["sip_tls"]
        .as_str()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("the listening line names the TLS address: {line}"));
    assert!(tls.ip().is_loopback() && tls.port() != 0, "{tls}");

    let ready = reqwest::get(app.url("/readyz")).await.unwrap();
    assert_eq!(ready.status(), 200);
    let ready: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(ready["listening"]["sip_tls"], tls.to_string(), "{ready}");

    let answer = options_over_tls(dir.path(), &tls.to_string());
    assert!(answer.starts_with("SIP/2.0 200"), "{answer:?}");
    assert!(answer.contains("z9hG4bKtls1"), "{answer}");

    // Without sip.tls_listen the line says so (empty).
    let plain_dir = tempfile::tempdir().unwrap();
    let plain = Appliance::start(plain_dir.path(), &[]);
    let line = listening_line(&plain);
    assert_eq!(line["sip_tls"], "");
}

#[test]
fn a_bad_sip_tls_setting_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        dir.path(),
        &["config", "check"],
        &[("DIALBRIDGE_SIP_TLS_LISTEN", "127.0.0.1:5061")],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("sip.tls_cert"), "{err}");
    let out = run(
        dir.path(),
        &["config", "check"],
        &[("DIALBRIDGE_SIP_TLS_CA", "/nonexistent/ca.pem")],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("sip.tls_ca") && err.contains("/nonexistent/ca.pem"),
        "{err}"
    );
}
