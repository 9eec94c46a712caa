//! SIP over TLS with real peers, on a throwaway PKI made by the `openssl` CLI at test time.
//!
//! SIPp as packaged by Debian (`sip-tester` 3.6.1) is built without TLS (`-t l1` answers "you
//! must compile SIPp with OpenSSL"), so SIPp talks UDP to Kamailio's `tls` module
//! (`kamailio-tls-modules`), which carries the calls over TLS to and from the appliance and
//! verifies our certificate against the test CA, as we verify its certificate:
//! - sipp → Kamailio (UDP) → TLS → our listener: calls complete, ACK and BYE follow the
//!   Record-Route set over TLS;
//! - we originate to a `sips:` trunk (Kamailio) → UDP → a sipp UAS: calls complete, our BYE goes
//!   back over the same TLS connection;
//! - we REGISTER to Kamailio over TLS, and sipp's calls to that user reach us through the
//!   registration.
//!
//! `openssl s_client` / `s_server` are the peers for the refusals: a server certificate our CA
//! did not sign (the call fails at once as unreachable and moves to the next trunk), a client
//! certificate our CA did not sign (handshake refused), garbage and plain text on the TLS port,
//! an oversize message (513), all without harm to the listener; the trunk ACL and digest
//! challenges apply to INVITE and REGISTER over TLS as over UDP and TCP.

mod sip_common;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use foundation::lifecycle::Lifecycle;
use sip_common::*;
use telephony::sip::call::{CallEvent, Originate, Registration, Transport, Trunk};
use telephony::sip::listener::{self, SipListeners, SipOptions};
use telephony::sip::outcome::Outcome;
use telephony::sip::tls::{TlsOptions, Verify};

const KAMAILIO_TLS_MODULE: &str = "/usr/lib/x86_64-linux-gnu/kamailio/modules/tls.so";

/// A callee behind a Record-Routing proxy: echoes Record-Route in its 180 and 200 (SIPp's
/// built-in `uas` does not), so our ACK and BYE must follow the proxy's route over TLS.
const UAS_RECORD_ROUTE: &str = r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="uas echoing Record-Route">
  <recv request="INVITE" crlf="true"/>
  <send>
    <![CDATA[

      SIP/2.0 180 Ringing
      [last_Via:]
      [last_Record-Route:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Content-Length: 0

    ]]>
  </send>
  <send retrans="500">
    <![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_Record-Route:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000

    ]]>
  </send>
  <recv request="ACK" crlf="true"/>
  <recv request="BYE"/>
  <send>
    <![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]>
  </send>
  <timewait milliseconds="1000"/>
</scenario>
"#;

/// The Kamailio configuration of [`Kamailio`]; KAMUDP, KAMTLS, TLSCFG, TOTLS and TOUDP are
/// replaced.
const KAMAILIO_CFG: &str = r#"#!KAMAILIO
debug=2
log_stderror=yes
fork=yes
children=2
tcp_children=2
auto_aliases=no
enable_tls=yes
listen=udp:127.0.0.1:KAMUDP
listen=tls:127.0.0.1:KAMTLS
alias="127.0.0.1:KAMUDP"
alias="127.0.0.1:KAMTLS"
mpath="/usr/lib/x86_64-linux-gnu/kamailio/modules/"
loadmodule "tls.so"
loadmodule "kex.so"
loadmodule "corex.so"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "xlog.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
modparam("tls", "config", "TLSCFG")
modparam("usrloc", "db_mode", 0)
modparam("rr", "enable_full_lr", 1)
modparam("rr", "append_fromtag", 1)

request_route {
    xlog("L_NOTICE", "request $rm $ru from $si:$sp over $pr\n");
    if (!mf_process_maxfwd_header("10")) { sl_send_reply("483", "Too Many Hops"); exit; }
    if (has_totag()) {
        if (loose_route()) { t_relay(); exit; }
        if (is_method("ACK")) { if (t_check_trans()) { t_relay(); } exit; }
        sl_send_reply("404", "Not here");
        exit;
    }
    if (is_method("CANCEL")) { if (t_check_trans()) { t_relay(); } exit; }
    if (is_method("REGISTER")) { save("location"); exit; }
    if (is_method("INVITE")) { record_route(); }
    if (lookup("location")) { t_relay(); exit; }
    if ($pr == "tls") { $du = "sip:127.0.0.1:TOUDP"; } else { $du = "sip:TOTLS;transport=tls"; }
    t_relay();
}
"#;

fn scenario(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sip_scenarios")
        .join(name)
        .display()
        .to_string()
}

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

/// A test CA, a certificate it signed for 127.0.0.1 (server and client use), and a rogue
/// self-signed certificate for the same address.
struct Pki {
    dir: PathBuf,
}

impl Pki {
    fn make(dir: &Path) -> Pki {
        let ext = "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\n";
        std::fs::write(dir.join("leaf.ext"), ext).unwrap();
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
        for (name, signer) in [("node", Some("ca")), ("rogue", None)] {
            openssl(
                dir,
                &[
                    "req",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-keyout",
                    &format!("{name}.key"),
                    "-out",
                    &format!("{name}.csr"),
                    "-subj",
                    "/CN=127.0.0.1",
                ],
            );
            let (ca, cakey, selfkey) = match signer {
                Some(ca) => (format!("{ca}.pem"), format!("{ca}.key"), None),
                None => (String::new(), String::new(), Some(format!("{name}.key"))),
            };
            let mut args = vec![
                "x509".to_string(),
                "-req".into(),
                "-in".into(),
                format!("{name}.csr"),
                "-out".into(),
                format!("{name}.pem"),
                "-days".into(),
                "2".into(),
                "-extfile".into(),
                "leaf.ext".into(),
            ];
            match selfkey {
                Some(k) => args.extend(["-signkey".into(), k]),
                None => args.extend([
                    "-CA".into(),
                    ca,
                    "-CAkey".into(),
                    cakey,
                    "-CAcreateserial".into(),
                ]),
            }
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            openssl(dir, &args);
        }
        Pki {
            dir: dir.to_path_buf(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn s(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }

    /// Our listener with the CA-signed certificate; peers verified against the test CA.
    fn options(&self) -> TlsOptions {
        TlsOptions {
            listen: Some("127.0.0.1:0".parse().unwrap()),
            cert: Some(self.path("node.pem")),
            key: Some(self.path("node.key")),
            verify: Verify::CaFile(self.path("ca.pem")),
        }
    }
}

async fn start_tls(tls: TlsOptions, auto_answer: Option<Duration>) -> (SipListeners, Lifecycle) {
    let lc = Lifecycle::new();
    let l = listener::start_with(
        &config(),
        SipOptions {
            auto_answer,
            tls: Some(tls),
            ..SipOptions::default()
        },
        lc.clone(),
    )
    .await
    .expect("SIP listeners start");
    (l, lc)
}

fn tools() -> bool {
    foundation::testing::require_tool("openssl", "openssl")
}

fn kamailio_tls() -> bool {
    if !(foundation::testing::require_tool("sipp", "sip-tester")
        && foundation::testing::require_tool("kamailio", "kamailio"))
    {
        return false;
    }
    if !Path::new(KAMAILIO_TLS_MODULE).exists() {
        let msg =
            "Kamailio's tls module is not installed (apt-get install -y kamailio-tls-modules)";
        if foundation::testing::on_ci() {
            panic!("{msg}; CI must not skip this test");
        }
        foundation::testing::report_skip(msg);
        return false;
    }
    true
}

/// Kamailio bridging UDP and TLS: a registrar (no authentication) whose registered users are
/// reached at their contact; other requests that arrive over UDP go to `to_tls` over TLS, those
/// that arrive over TLS go to `to_udp` over UDP; Record-Route (double, one per side) keeps it in
/// the path. Stopped when dropped.
struct Kamailio {
    child: std::process::Child,
    dir: PathBuf,
}

impl Kamailio {
    fn start(dir: &Path, pki: &Pki, udp: u16, tls: u16, to_tls: SocketAddr, to_udp: u16) -> Self {
        let tls_cfg = format!(
            "[server:default]\nmethod = TLSv1.2+\nverify_certificate = no\nrequire_certificate = no\n\
private_key = {key}\ncertificate = {cert}\nca_list = {ca}\n\n\
[client:default]\nmethod = TLSv1.2+\nverify_certificate = yes\nrequire_certificate = yes\nca_list = {ca}\n",
            key = pki.s("node.key"),
            cert = pki.s("node.pem"),
            ca = pki.s("ca.pem"),
        );
        std::fs::write(dir.join("tls.cfg"), tls_cfg).unwrap();
        let cfg = KAMAILIO_CFG
            .replace("KAMUDP", &udp.to_string())
            .replace("KAMTLS", &tls.to_string())
            .replace("TLSCFG", &dir.join("tls.cfg").display().to_string())
            .replace("TOTLS", &to_tls.to_string())
            .replace("TOUDP", &to_udp.to_string());
        let path = dir.join("kamailio.cfg");
        std::fs::write(&path, cfg).unwrap();
        let log = std::fs::File::create(dir.join("kamailio.log")).unwrap();
        let child = Command::new("kamailio")
            .args(["-DD", "-E", "-f"])
            .arg(&path)
            .arg("-P")
            .arg(dir.join("kamailio.pid"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("kamailio starts");
        Kamailio {
            child,
            dir: dir.to_path_buf(),
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("kamailio.log")).unwrap_or_default()
    }

    async fn wait_listening(&self, tls: u16) {
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", tls)).is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("Kamailio does not listen on TLS {tls}:\n{}", self.log());
    }
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `openssl s_client` to our TLS listener: sends `input`, returns what came back and whether
/// the handshake verified. `client_cert`: present this certificate (name in the PKI dir).
fn s_client(pki: &Pki, addr: SocketAddr, client_cert: Option<&str>, input: &[u8]) -> String {
    let mut cmd = Command::new("openssl");
    cmd.args(["s_client", "-quiet", "-verify_return_error", "-connect"])
        .arg(addr.to_string())
        .arg("-CAfile")
        .arg(pki.path("ca.pem"));
    if let Some(c) = client_cert {
        cmd.arg("-cert")
            .arg(pki.path(&format!("{c}.pem")))
            .arg("-key")
            .arg(pki.path(&format!("{c}.key")));
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl s_client starts");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input).unwrap();
    // Keep stdin open a moment so the answer can arrive before s_client sees EOF and closes.
    std::thread::sleep(Duration::from_millis(1500));
    drop(stdin);
    // `-quiet` ignores EOF on stdin: it ends when the server closes, else it is stopped here.
    let deadline = std::time::Instant::now() + Duration::from_millis(300);
    while std::time::Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let mut out = String::new();
    let _ = child.stdout.take().unwrap().read_to_string(&mut out);
    let _ = child.wait();
    out
}

fn options_request(transport: &str, branch: &str) -> String {
    format!(
        "OPTIONS sip:dialbridge@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/{transport} 127.0.0.1:5999;branch=z9hG4bK{branch}\r\n\
From: <sip:probe@127.0.0.1>;tag={branch}\r\nTo: <sip:dialbridge@127.0.0.1>\r\nCall-ID: {branch}@probe\r\n\
CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
}

async fn stats(l: &SipListeners) -> telephony::sip::driver::Stats {
    l.handle.stats().await.expect("driver alive")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_calls_in_and_out_over_tls_through_kamailio() {
    if !tools() || !kamailio_tls() {
        return;
    }
    let dir = scratch("sip-tls-kamailio");
    let pki = Pki::make(&dir);
    let (sut, _lc) = start_tls(pki.options(), Some(Duration::from_millis(100))).await;
    let sut_tls = sut.tls_addr.expect("TLS listener bound");
    let (kam_udp, kam_tls, uas_port) = (free_port(), free_port(), free_port());
    let kam = Kamailio::start(&dir, &pki, kam_udp, kam_tls, sut_tls, uas_port);
    kam.wait_listening(kam_tls).await;

    // Inbound: sipp (UDP) → Kamailio → TLS → our listener; 5 calls, ACK and BYE via the route set.
    let run = run_sipp(
        &dir,
        &[
            &format!("127.0.0.1:{kam_udp}"),
            "-sf",
            &scenario("uac_via_proxy.xml"),
            "-s",
            "ivr",
            "-i",
            "127.0.0.1",
            "-mi",
            "127.0.0.1",
            "-p",
            &free_port().to_string(),
            "-m",
            "5",
            "-l",
            "2",
            "-r",
            "5",
            "-timeout",
            "30s",
            "-timeout_error",
        ],
    )
    .await;
    assert_eq!(
        (
            run.rc,
            run.stat("SuccessfulCall(C)"),
            run.stat("FailedCall(C)")
        ),
        (0, 5, 0),
        "{run:?}\nkamailio:\n{}",
        kam.log()
    );
    let s = settle(&sut, Duration::from_secs(5)).await;
    assert_eq!(s.inbound_calls_created, 5);
    assert_eq!(s.active_calls, 0);
    assert!(
        s.tls_connections >= 1,
        "the calls came over TLS connections: {s:?}"
    );
    assert_eq!(s.tls_handshake_failures, 0);

    // Outbound: we call a sips: trunk (Kamailio, verified against the CA) → UDP → sipp UAS.
    let uas_dir = dir.join("uas");
    std::fs::create_dir_all(&uas_dir).unwrap();
    std::fs::write(uas_dir.join("uas_rr.xml"), UAS_RECORD_ROUTE).unwrap();
    let uas = spawn_sipp(
        &uas_dir,
        &[
            "-sf",
            "uas_rr.xml",
            "-i",
            "127.0.0.1",
            "-p",
            &uas_port.to_string(),
            "-m",
            "3",
            "-timeout",
            "40s",
            "-timeout_error",
        ],
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut rx = sut.handle.subscribe();
    let trunk = Trunk::from_uri(&format!("sips:127.0.0.1:{kam_tls}")).unwrap();
    let mut setup_ms = Vec::new();
    for n in 0..3 {
        let t0 = std::time::Instant::now();
        let call = sut.handle.originate(Originate {
            to_user: format!("1555000{n}"),
            trunks: vec![trunk.clone()],
            ring_timeout: Duration::from_secs(10),
            ..Originate::default()
        });
        let evs = collect_events(&mut rx, Duration::from_secs(15), |e| {
            e.iter().any(|e| {
                e.call() == Some(call)
                    && matches!(e, CallEvent::Answered { .. } | CallEvent::Hangup { .. })
            })
        })
        .await;
        assert!(
            evs.iter()
                .any(|e| matches!(e, CallEvent::Answered { call: c, .. } if *c == call)),
            "call {n} answered over TLS: {evs:?}\nkamailio:\n{}",
            kam.log()
        );
        setup_ms.push(t0.elapsed().as_millis());
        tokio::time::sleep(Duration::from_millis(300)).await;
        sut.handle.hangup(call);
        let evs = collect_events(&mut rx, Duration::from_secs(10), |e| {
            e.iter()
                .any(|e| e.call() == Some(call) && matches!(e, CallEvent::Hangup { .. }))
        })
        .await;
        assert!(
            evs.iter().any(|e| matches!(e, CallEvent::Hangup { call: c, outcome: Outcome::Answered, .. } if *c == call)),
            "{evs:?}"
        );
    }
    // A figure, not a check: the first call includes the TCP connect and TLS handshake.
    eprintln!("outbound over TLS via Kamailio, INVITE → answered (ms): {setup_ms:?}");
    let run = wait_sipp(&uas_dir, uas).await;
    assert_eq!(
        (
            run.rc,
            run.stat("SuccessfulCall(C)"),
            run.stat("FailedCall(C)")
        ),
        (0, 3, 0),
        "the UAS behind Kamailio saw 3 whole calls (our BYE went over TLS): {run:?}\n{}",
        kam.log()
    );
    let s = stats(&sut).await;
    assert_eq!(s.tls_handshake_failures, 0, "{s:?}");
    assert_eq!(s.active_calls, 0);
    let log = kam.log();
    for method in ["INVITE", "ACK", "BYE"] {
        let over_tls = log
            .lines()
            .filter(|l| l.contains(&format!("request {method} ")) && l.ends_with("over tls"))
            .count();
        assert_eq!(over_tls, 3, "Kamailio got our {method}s over TLS:\n{log}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trunk_whose_certificate_our_ca_did_not_sign_is_refused_and_the_next_trunk_is_tried() {
    if !tools() {
        return;
    }
    let dir = scratch("sip-tls-rogue-server");
    let pki = Pki::make(&dir);
    let (sut, _lc) = start_tls(pki.options(), None).await;
    // A TLS server presenting the rogue certificate (right address, wrong issuer).
    let rogue_port = free_port();
    let mut rogue = Command::new("openssl")
        .current_dir(&dir)
        .args(["s_server", "-quiet", "-accept"])
        .arg(rogue_port.to_string())
        .args(["-cert", "rogue.pem", "-key", "rogue.key"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl s_server starts");
    for _ in 0..50 {
        if std::net::TcpStream::connect(("127.0.0.1", rogue_port)).is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The next trunk: a second appliance whose TLS listener has the CA-signed certificate.
    let (good, _lg) = start_tls(pki.options(), Some(Duration::ZERO)).await;
    let good_tls = good.tls_addr.unwrap();

    let mut rx = sut.handle.subscribe();
    let alone = sut.handle.originate(Originate {
        to_user: "15550001".into(),
        trunks: vec![Trunk::from_uri(&format!("sips:127.0.0.1:{rogue_port}")).unwrap()],
        ring_timeout: Duration::from_secs(20),
        ..Originate::default()
    });
    // Within 15 s: at the handshake, not after Timer B (32 s).
    let evs = collect_events(&mut rx, Duration::from_secs(15), |e| {
        e.iter()
            .any(|e| e.call() == Some(alone) && matches!(e, CallEvent::Hangup { .. }))
    })
    .await;
    assert!(
        evs.iter().any(|e| matches!(e, CallEvent::Hangup { call, outcome: Outcome::Unreachable, .. } if *call == alone)),
        "the rogue trunk's call fails as unreachable: {evs:?}"
    );
    assert_eq!(stats(&sut).await.tls_handshake_failures, 1);

    let failover = sut.handle.originate(Originate {
        to_user: "15550002".into(),
        trunks: vec![
            Trunk::from_uri(&format!("sip:127.0.0.1:{rogue_port};transport=tls")).unwrap(),
            Trunk::from_uri(&format!("sips:{good_tls}")).unwrap(),
        ],
        ring_timeout: Duration::from_secs(20),
        ..Originate::default()
    });
    let evs = collect_events(&mut rx, Duration::from_secs(15), |e| {
        e.iter().any(|e| {
            e.call() == Some(failover)
                && matches!(e, CallEvent::Answered { .. } | CallEvent::Hangup { .. })
        })
    })
    .await;
    assert!(
        evs.iter()
            .any(|e| matches!(e, CallEvent::Answered { call, .. } if *call == failover)),
        "the next (good) trunk answers: {evs:?}"
    );
    sut.handle.hangup(failover);
    assert_eq!(settle(&sut, Duration::from_secs(5)).await.active_calls, 0);
    assert_eq!(settle(&good, Duration::from_secs(5)).await.active_calls, 0);
    let s = stats(&sut).await;
    assert_eq!(s.tls_handshake_failures, 2, "{s:?}");
    assert!(s.tls_connections >= 1, "{s:?}");
    let _ = rogue.kill();
    let _ = rogue.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listener_refuses_rogue_clients_garbage_and_oversize_and_keeps_serving() {
    if !tools() {
        return;
    }
    let dir = scratch("sip-tls-listener");
    let pki = Pki::make(&dir);
    let (sut, _lc) = start_tls(pki.options(), None).await;
    let addr = sut.tls_addr.unwrap();
    let port = addr.port();

    // A client with no certificate, verifying ours against the CA: OPTIONS over TLS → 200.
    let out = s_client(&pki, addr, None, options_request("TLS", "ok1").as_bytes());
    assert!(out.starts_with("SIP/2.0 200"), "{out:?}");
    assert!(out.contains("z9hG4bKok1"), "{out}");

    // A client presenting a certificate our CA did not sign: refused in the handshake.
    let out = s_client(
        &pki,
        addr,
        Some("rogue"),
        options_request("TLS", "rogue1").as_bytes(),
    );
    assert!(
        !out.contains("SIP/2.0"),
        "no answer for a rogue client: {out:?}"
    );
    // A client presenting the CA-signed certificate is fine.
    let out = s_client(
        &pki,
        addr,
        Some("node"),
        options_request("TLS", "ok2").as_bytes(),
    );
    assert!(out.starts_with("SIP/2.0 200"), "{out:?}");

    // Garbage, and plain-text SIP, on the TLS port.
    let mut junk: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    junk[0] = 0x16; // looks like a handshake record at first
    for bytes in [junk, options_request("TCP", "plain").into_bytes()] {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        let _ = s.write_all(&bytes);
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let mut back = Vec::new();
        let _ = s.read_to_end(&mut back);
        assert!(
            !String::from_utf8_lossy(&back).contains("SIP/2.0"),
            "nothing SIP comes back in clear"
        );
    }

    // A message over the size limit (8192 in the test config) is answered 513 and the
    // connection closed, as on TCP.
    let big = options_request("TLS", "big1").replace(
        "Content-Length: 0\r\n\r\n",
        &format!(
            "X-Padding: {}\r\nContent-Length: 0\r\n\r\n",
            "a".repeat(9000)
        ),
    );
    let out = s_client(&pki, addr, None, big.as_bytes());
    assert!(out.starts_with("SIP/2.0 513"), "{out:?}");

    // Still serving, nothing counted as a connection that is gone, three handshakes refused
    // (rogue client, garbage, plain text).
    let out = s_client(&pki, addr, None, options_request("TLS", "ok3").as_bytes());
    assert!(out.starts_with("SIP/2.0 200"), "{out:?}");
    let s = stats(&sut).await;
    assert_eq!(s.tls_handshake_failures, 3, "{s:?}");
    assert_eq!(port, sut.tls_addr.unwrap().port());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trunk_acl_and_digest_rules_apply_over_tls() {
    if !tools() {
        return;
    }
    let dir = scratch("sip-tls-acl");
    let pki = Pki::make(&dir);
    let users = std::collections::HashMap::from([("agent1".to_string(), "pw".to_string())]);
    let lc = Lifecycle::new();
    let sut = listener::start_with(
        &config(),
        SipOptions {
            auto_answer: None,
            // 127.0.0.1 is not a trusted trunk here: calls from it must authenticate.
            policy: Some(telephony::sip::registrar::InboundPolicy::with_users(
                vec!["192.0.2.1".parse().unwrap()],
                "dialbridge",
                users,
            )),
            tls: Some(pki.options()),
            ..SipOptions::default()
        },
        lc.clone(),
    )
    .await
    .unwrap();
    let invite = "INVITE sip:ivr@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.1:5999;branch=z9hG4bKacl1\r\n\
From: <sip:agent1@127.0.0.1>;tag=a1\r\nTo: <sip:ivr@127.0.0.1>\r\nCall-ID: acl1@probe\r\nCSeq: 1 INVITE\r\n\
Contact: <sip:agent1@127.0.0.1:5999;transport=tls>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n";
    let out = s_client(&pki, sut.tls_addr.unwrap(), None, invite.as_bytes());
    assert!(
        out.contains("SIP/2.0 401") && out.contains("WWW-Authenticate: Digest"),
        "an unauthenticated INVITE over TLS is challenged: {out:?}"
    );
    let register = invite
        .replace("INVITE sip:ivr@127.0.0.1", "REGISTER sip:127.0.0.1")
        .replace("1 INVITE", "1 REGISTER")
        .replace("acl1", "acl2")
        .replace("<sip:ivr@127.0.0.1>", "<sip:agent1@127.0.0.1>");
    let out = s_client(&pki, sut.tls_addr.unwrap(), None, register.as_bytes());
    assert!(
        out.contains("SIP/2.0 401"),
        "REGISTER is challenged: {out:?}"
    );
    let s = stats(&sut).await;
    assert_eq!((s.inbound_calls_created, s.active_calls), (0, 0), "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registers_to_kamailio_over_tls_and_takes_the_calls_routed_to_the_registration() {
    if !tools() || !kamailio_tls() {
        return;
    }
    let dir = scratch("sip-tls-kamailio-register");
    let pki = Pki::make(&dir);
    let (sut, _lc) = start_tls(pki.options(), Some(Duration::from_millis(100))).await;
    let (kam_udp, kam_tls) = (free_port(), free_port());
    // Unregistered targets would go to port 9 (discard): only the registration routes calls here.
    let kam = Kamailio::start(
        &dir,
        &pki,
        kam_udp,
        kam_tls,
        "127.0.0.1:9".parse().unwrap(),
        9,
    );
    kam.wait_listening(kam_tls).await;

    let mut rx = sut.handle.subscribe();
    let trunk = Trunk::from_uri(&format!("sips:127.0.0.1:{kam_tls}")).unwrap();
    assert_eq!(trunk.transport, Transport::Tls);
    let reg = sut.handle.register(Registration {
        trunk,
        user: "agent7".into(),
        expires: 120,
    });
    let ev = collect_events(&mut rx, Duration::from_secs(10), |e| {
        e.iter()
            .any(|e| matches!(e, CallEvent::Registration { .. }))
    })
    .await;
    assert!(
        matches!(ev.last(), Some(CallEvent::Registration { registration, registered: true, .. }) if *registration == reg),
        "{ev:?}\n{}",
        kam.log()
    );

    let run = run_sipp(
        &dir,
        &[
            &format!("127.0.0.1:{kam_udp}"),
            "-sf",
            &scenario("uac_via_proxy.xml"),
            "-s",
            "agent7",
            "-i",
            "127.0.0.1",
            "-mi",
            "127.0.0.1",
            "-p",
            &free_port().to_string(),
            "-m",
            "2",
            "-timeout",
            "30s",
            "-timeout_error",
        ],
    )
    .await;
    assert_eq!(
        (run.rc, run.stat("SuccessfulCall(C)")),
        (0, 2),
        "{run:?}\nkamailio:\n{}",
        kam.log()
    );
    let log = kam.log();
    assert!(
        log.lines()
            .any(|l| l.contains("request REGISTER ") && l.ends_with("over tls")),
        "{log}"
    );
    let s = settle(&sut, Duration::from_secs(5)).await;
    assert_eq!((s.inbound_calls_created, s.active_calls), (2, 0), "{s:?}");
    assert_eq!(s.tls_handshake_failures, 0);
}
