//! Issue #8, acceptance 3: the browser softphone takes a real call. The real appliance runs; the
//! agent `agent1` logs in to the console in Debian's chromium (`tests/console/softphone.mjs` +
//! `softphone.html`), opens a WebRTC leg through the softphone gateway (`POST
//! /api/v1/agent/softphone`, a fake 1 kHz microphone) and logs in nailed-up with the SIP URI it
//! got back. A sipp caller dials a number whose flow queues it; the ACD connects it to agent1
//! over the gateway. Audio is proven both ways by content:
//! - the page's WebAudio analyser hears the caller's 700 Hz (and far less of its own 1 kHz), and
//! - the browser's 1 kHz is detected (Goertzel) in the RTP the appliance sends to the caller's
//!   SDP media address (a socket of this test; sipp streams its tone from its own port).
//!
//! Also: a bad offer is a 400, an INVITE to the gateway from anyone but the appliance gets 403,
//! the appliance calling a gateway URI with no browser leg fails the login (gateway 480, API
//! 502), and closing the leg (`DELETE`, 204 then 404) drops agent1's nailed-up leg. The second
//! test also logs agent1 out and in again on the same browser leg (ignored until the ACD accepts
//! an agent's second login, see its attribute).
//!
//! Needs chromium, node, sox, sipp and `tests/console/node_modules` (`npm ci` there): skipped
//! without them, failing under CI=true.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{Appliance, QUEUE_FLOW, admin_key, free_port, route_numbers, run};
use foundation::testing::{on_ci, report_skip, require_tool};
use serde_json::{Value, json};
use telephony::media::g711::Codec;
use telephony::media::goertzel::{Goertzel, energy, rms};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UdpSocket;

const BROWSER_HZ: f64 = 1000.0;
const CALLER_HZ: f64 = 700.0;
const NUMBER: &str = "+15550100";
const PASSWORD: &str = "agent-Secret-1";

fn console_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/console")
}

fn tools_present() -> bool {
    let tools = require_tool("chromium", "chromium")
        & require_tool("node", "nodejs")
        & require_tool("sox", "sox")
        & require_tool("sipp", "sip-tester");
    if !tools {
        return false;
    }
    if !console_dir()
        .join("node_modules/playwright-core/package.json")
        .exists()
    {
        let msg = "tests/console has no node_modules (run `npm ci` there, with PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1)";
        if on_ci() {
            panic!("{msg}; CI must not skip this test");
        }
        report_skip(msg);
        return false;
    }
    true
}

/// `hz` at 8 kHz, `frames` × 20 ms.
fn sine(hz: f64, frames: usize) -> Vec<i16> {
    (0..frames * 160)
        .map(|i| ((2.0 * std::f64::consts::PI * hz * i as f64 / 8000.0).sin() * 10_000.0) as i16)
        .collect()
}

/// Counts 20 ms blocks dominated by the target tone, and by the other one.
struct Detector {
    target: Goertzel,
    other: Goertzel,
    hits: u32,
    other_hits: u32,
    blocks: u32,
}

impl Detector {
    fn new(hz: f64, other_hz: f64) -> Self {
        Detector {
            target: Goertzel::new(hz, 8000.0),
            other: Goertzel::new(other_hz, 8000.0),
            hits: 0,
            other_hits: 0,
            blocks: 0,
        }
    }

    fn feed(&mut self, pcm: &[i16]) {
        self.blocks += 1;
        if rms(pcm) < 300.0 {
            return;
        }
        let e = energy(pcm);
        if self.target.relative_power(pcm, e) > 0.5 {
            self.hits += 1;
        }
        if self.other.relative_power(pcm, e) > 0.5 {
            self.other_hits += 1;
        }
    }
}

/// The PCMU payload of an RTP packet (PT 0), if it is one.
fn pcmu_payload(b: &[u8]) -> Option<&[u8]> {
    if b.len() < 12 || b[0] >> 6 != 2 || b[1] & 0x7f != 0 {
        return None;
    }
    let mut off = 12 + 4 * (b[0] & 0x0f) as usize;
    if b[0] & 0x10 != 0 {
        let len = u16::from_be_bytes([*b.get(off + 2)?, *b.get(off + 3)?]) as usize;
        off += 4 + 4 * len;
    }
    b.get(off..)
}

const HEAD: &str = "      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      Max-Forwards: 70
";

fn invite() -> String {
    format!(
        "  <send retrans=\"500\"><![CDATA[
      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
{HEAD}      CSeq: 1 INVITE
      Contact: sip:sipp@[local_ip]:[local_port]
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=user1 1 1 IN IP4 [local_ip]
      s=-
      c=IN IP4 127.0.0.1
      t=0 0
      m=audio [rtpport] RTP/AVP 0
      a=rtpmap:0 PCMU/8000
    ]]></send>
  <recv response=\"100\" optional=\"true\"/>
  <recv response=\"180\" optional=\"true\"/>
  <recv response=\"183\" optional=\"true\"/>
"
    )
}

fn ack() -> String {
    format!(
        "  <send><![CDATA[\n      ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0\n{HEAD}      CSeq: 1 ACK\n      Content-Length: 0\n\n    ]]></send>\n"
    )
}

/// A caller: answered, streams `tone` (µ-law, looped) for `talk_ms`, then hangs up.
fn caller_xml(tone: &Path, talk_ms: u32) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"ISO-8859-1\" ?>\n<scenario name=\"softphone caller\">\n{}  <recv response=\"200\" rrs=\"true\"/>\n{}  <nop><action><exec rtp_stream=\"{},-1,0\"/></action></nop>\n  <pause milliseconds=\"{talk_ms}\"/>\n  <nop><action><exec rtp_stream=\"pause\"/></action></nop>\n  <send retrans=\"500\"><![CDATA[\n      BYE sip:[service]@[remote_ip]:[remote_port] SIP/2.0\n{HEAD}      CSeq: 2 BYE\n      Content-Length: 0\n\n    ]]></send>\n  <recv response=\"200\" crlf=\"true\"/>\n</scenario>\n",
        invite(),
        ack(),
        tone.display()
    )
}

/// A stranger calling the gateway directly: refused with `code`.
fn refused_xml(code: u16) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"ISO-8859-1\" ?>\n<scenario name=\"refused\">\n{}  <recv response=\"{code}\"/>\n{}</scenario>\n",
        invite(),
        ack()
    )
}

fn sipp(
    dir: &Path,
    target: &str,
    scenario: &str,
    service: &str,
    rtpport: u16,
) -> tokio::process::Command {
    let mut c = tokio::process::Command::new("sipp");
    c.current_dir(dir)
        .args([
            target,
            "-sf",
            scenario,
            "-s",
            service,
            "-i",
            "127.0.0.1",
            "-mi",
            "127.0.0.1",
        ])
        .args([
            "-p",
            &free_port().to_string(),
            "-mp",
            &free_port().to_string(),
        ])
        .args([
            "-key",
            "rtpport",
            &rtpport.to_string(),
            "-m",
            "1",
            "-nostdin",
            "-timeout",
            "60s",
            "-timeout_error",
        ])
        .args(["-trace_err", "-error_file", &format!("{scenario}.err")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    c
}

async fn agents(c: &reqwest::Client, app: &Appliance, key: &str) -> Vec<Value> {
    let resp = c
        .get(app.url("/api/v1/agents"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

fn agent<'a>(list: &'a [Value], id: &str) -> Option<&'a Value> {
    list.iter().find(|a| a["id"] == id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_browser_softphone_takes_a_queued_call_with_audio_both_ways() {
    softphone_call(false).await;
}

/// As above, then the agent logs out (the appliance hangs up its call to the gateway, the
/// browser leg stays) and in again with the same endpoint, on the same browser leg.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_browser_leg_outlives_a_logout_and_serves_the_next_login() {
    softphone_call(true).await;
}

async fn softphone_call(relogin: bool) {
    if !tools_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = run(
        d,
        &["user", "create", "--username", "agent1", "--role", "agent"],
        &[("DIALBRIDGE_USER_PASSWORD", PASSWORD)],
    );
    assert!(
        out.status.success(),
        "user create: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = admin_key(d);
    let app = Appliance::start(d, &[]);
    route_numbers(&app, &key, "queue", QUEUE_FLOW, &[NUMBER]).await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();

    // The browser's microphone: 30 s of 1 kHz (chromium loops it).
    let wav = d.join("mic-1k.wav");
    let st = std::process::Command::new("sox")
        .args(["-n", "-r", "48000", "-c", "1", "-b", "16"])
        .arg(&wav)
        .args(["synth", "30", "sine", &BROWSER_HZ.to_string(), "vol", "0.5"])
        .status()
        .expect("sox runs");
    assert!(st.success());

    // The browser: console login, WebRTC leg, nailed-up agent login.
    let mut node = tokio::process::Command::new("node")
        .arg(console_dir().join("softphone.mjs"))
        .current_dir(console_dir())
        .env("BASE_URL", app.url(""))
        .env("USERNAME", "agent1")
        .env("PASSWORD", PASSWORD)
        .env("FAKE_AUDIO", &wav)
        .env("EXPECT_HZ", CALLER_HZ.to_string())
        .env("OTHER_HZ", BROWSER_HZ.to_string())
        .env("TIMEOUT_MS", "30000")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs");
    let mut stdin = node.stdin.take().unwrap();
    let mut lines = BufReader::new(node.stdout.take().unwrap()).lines();
    let mut next = async |tag: &str| -> Value {
        loop {
            let line = tokio::time::timeout(Duration::from_secs(90), lines.next_line())
                .await
                .unwrap_or_else(|_| panic!("no {tag} line from the page within 90 s"))
                .unwrap()
                .unwrap_or_else(|| panic!("the page script ended before {tag}"));
            eprintln!("node: {line}");
            if let Some(rest) = line.strip_prefix("RESULT ")
                && tag != "RESULT"
            {
                panic!("the page failed before {tag}: {rest}");
            }
            if let Some(rest) = line.strip_prefix(&format!("{tag} ")) {
                return serde_json::from_str(rest).unwrap();
            }
        }
    };
    let started = Instant::now();
    let ready = next("READY").await;
    eprintln!(
        "softphone ready (console login → leg → nailed-up login) in {:?}",
        started.elapsed()
    );
    assert_eq!(
        ready["badOfferStatus"], 400,
        "a bad offer is refused: {ready}"
    );
    let endpoint = ready["endpoint"].as_str().unwrap().to_owned();
    let gw = endpoint
        .strip_prefix("sip:webrtc-agent1@")
        .unwrap_or_else(|| panic!("endpoint {endpoint}"))
        .to_owned();
    assert!(gw.starts_with("127.0.0.1:"), "{endpoint}");
    let list = agents(&http, &app, &key).await;
    let a1 = agent(&list, "agent1").expect("agent1 is logged in");
    assert_eq!(a1["leg_up"], true, "{a1}");
    assert_eq!(
        a1["endpoint"],
        json!({"kind": "uri", "value": endpoint}),
        "{a1}"
    );

    // Only the appliance may call the gateway: sipp straight at it gets 403.
    std::fs::write(d.join("refused.xml"), refused_xml(403)).unwrap();
    let rc = sipp(d, &gw, "refused.xml", "webrtc-agent1", free_port())
        .status()
        .await
        .unwrap();
    assert!(
        rc.success(),
        "a direct INVITE to the gateway was not refused with 403"
    );
    // The appliance calling a gateway URI without a browser leg: 480, so the login fails.
    let resp = http
        .post(app.url("/api/v1/agent/login"))
        .bearer_auth(&key)
        .json(&json!({"endpoint": {"kind": "uri", "value": format!("sip:webrtc-ghost@{gw}")}, "mode": "nailed_up"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 502, "{}", resp.text().await.unwrap());
    for (what, needle) in [
        ("403", "call not from the appliance refused (403)"),
        ("480", "no browser leg for this agent (480)"),
    ] {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !app.log_text().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "the gateway did not log its {what}:\n{}",
                app.log_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    // The caller's ear: the SDP media address sipp advertises.
    let ear = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let ear_port = ear.local_addr().unwrap().port();
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (heard_tx, heard_rx) = tokio::sync::watch::channel(false);
    let listener = tokio::spawn(async move {
        let mut det = Detector::new(BROWSER_HZ, CALLER_HZ);
        let mut buf = vec![0u8; 2048];
        let t0 = Instant::now();
        let mut heard_at = None;
        loop {
            tokio::select! {
                _ = &mut stop_rx => break,
                r = ear.recv_from(&mut buf) => {
                    if let Ok((n, _)) = r && let Some(p) = pcmu_payload(&buf[..n]) {
                        for chunk in Codec::Pcmu.decode(p).chunks(160) {
                            det.feed(chunk);
                        }
                        if det.hits >= 10 && heard_at.is_none() {
                            heard_at = Some(t0.elapsed());
                            let _ = heard_tx.send(true);
                        }
                    }
                }
            }
        }
        (det.hits, det.other_hits, det.blocks, heard_at)
    });

    // The caller: 700 Hz for 12 s after the answer, then BYE.
    let tone = d.join("caller-700.ulaw");
    std::fs::write(&tone, Codec::Pcmu.encode(&sine(CALLER_HZ, 100))).unwrap();
    std::fs::write(d.join("caller.xml"), caller_xml(&tone, 12_000)).unwrap();
    let call_started = Instant::now();
    let caller = sipp(d, &app.sip_udp, "caller.xml", NUMBER, ear_port)
        .spawn()
        .unwrap();

    let heard = next("HEARD").await;
    eprintln!(
        "page: {heard} ({:?} after the call started)",
        call_started.elapsed()
    );
    assert_eq!(
        heard["detected"], true,
        "the page did not hear the caller's {CALLER_HZ} Hz: {heard}"
    );
    assert_eq!(heard["codec"], "audio/PCMU", "{heard}");
    let mut heard_rx = heard_rx;
    let caller_heard = tokio::time::timeout(Duration::from_secs(20), heard_rx.wait_for(|h| *h))
        .await
        .is_ok();
    let list = agents(&http, &app, &key).await;
    let a1 = agent(&list, "agent1").unwrap();
    eprintln!("agent1 during the call: {a1}");
    assert!(
        a1["state"].get("OnContact").is_some(),
        "agent1 handles the caller: {a1}"
    );

    let out = tokio::time::timeout(Duration::from_secs(40), caller.wait_with_output())
        .await
        .expect("the caller ends")
        .unwrap();
    let errors = std::fs::read_to_string(d.join("caller.xml.err")).unwrap_or_default();
    assert!(out.status.success(), "the sipp caller failed: {errors}");
    let _ = stop_tx.send(());
    let (hits, other_hits, blocks, heard_at) = listener.await.unwrap();
    eprintln!(
        "caller side: {hits} of {blocks} blocks at {BROWSER_HZ} Hz ({heard_at:?} after the ear opened), {other_hits} at {CALLER_HZ} Hz"
    );
    assert!(
        caller_heard && hits >= 10,
        "the caller did not hear the browser's {BROWSER_HZ} Hz: {hits} of {blocks}"
    );
    assert_eq!(other_hits, 0, "the caller must not hear its own tone back");

    // Logout hangs up the appliance's call to the gateway; the browser leg stays, so logging in
    // again with the same endpoint works without new signalling.
    if relogin {
        stdin.write_all(b"RELOGIN\n").await.unwrap();
        let relogged = next("RELOGGED").await;
        assert_eq!(relogged["logoutStatus"], 204, "{relogged}");
        assert_eq!(relogged["loginStatus"], 204, "{relogged}");
        assert_eq!(relogged["pcState"], "connected", "{relogged}");
        let list = agents(&http, &app, &key).await;
        assert_eq!(
            agent(&list, "agent1").unwrap()["leg_up"],
            true,
            "logged in again: {list:?}"
        );
    }

    // The agent closes the softphone: the gateway hangs up the appliance's nailed-up leg.
    stdin.write_all(b"HANGUP\n").await.unwrap();
    let result = next("RESULT").await;
    assert_eq!(result["deleteStatus"], 204, "{result}");
    assert_eq!(result["secondDeleteStatus"], 404, "{result}");
    let status = tokio::time::timeout(Duration::from_secs(30), node.wait())
        .await
        .expect("node exits")
        .unwrap();
    assert!(status.success(), "{result}");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let list = agents(&http, &app, &key).await;
        let a1 = agent(&list, "agent1").expect("agent1 still listed");
        if a1["leg_up"] == false {
            eprintln!("agent1 after the softphone closed: {a1}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "agent1's nailed-up leg is still up after the softphone closed: {a1}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
