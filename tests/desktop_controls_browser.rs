//! The agent desktop's call controls in a real browser: the appliance with two agents, each
//! agent's phone a sipp callee streaming its own tone (agnes 800 Hz, bert 1900 Hz) whose SDP
//! points at a capture socket of this test, and a number that queues callers. The Playwright
//! script `tests/console/consult.mjs` (playwright-core driving Debian's chromium, as
//! `tests/console_browser.rs` does) has a sipp customer (500 Hz) call, uses Hold and the keypad,
//! then Transfer → consult → bert and Complete. After that, the audio decides: the customer hears
//! bert and not agnes, bert hears the customer, agnes hears neither. Screenshots go to
//! `$DIALBRIDGE_ARTIFACTS/console` (default: `<target>/tmp/artifacts/console`).

mod common;

#[path = "../telephony/tests/control_support/mod.rs"]
#[allow(dead_code)]
mod control_support;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Appliance, QUEUE_FLOW, run};
use control_support::{Capture, Rtp, uas_xml, write_raw};
use foundation::testing::{on_ci, report_skip, require_tool};
use telephony::media::g711::Codec;
use telephony::media::goertzel::{Goertzel, energy};

const CUSTOMER_HZ: f64 = 500.0;
const AGNES_HZ: f64 = 800.0;
const BERT_HZ: f64 = 1900.0;
const NUMBER: &str = "+18005550300";
const TIMEOUT: Duration = Duration::from_secs(240);

fn console_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/console")
}

fn tools_present() -> bool {
    if !require_tool("chromium", "chromium")
        || !require_tool("node", "nodejs")
        || !require_tool("sipp", "sip-tester")
    {
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

fn free_port() -> u16 {
    control_support::free_port()
}

fn tone(freq: f64, ms: usize) -> Vec<i16> {
    (0..ms * 8)
        .map(|i| {
            (0.25 * 32767.0 * (2.0 * std::f64::consts::PI * freq * i as f64 / 8000.0).sin()) as i16
        })
        .collect()
}

fn create_user(dir: &Path, name: &str, password: &str) {
    let out = run(
        dir,
        &["user", "create", "--username", name, "--role", "agent"],
        &[("DIALBRIDGE_USER_PASSWORD", password)],
    );
    assert!(
        out.status.success(),
        "user create {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Kills a sipp process when the test ends, however it ends.
struct Sipp(std::process::Child);

impl Drop for Sipp {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// An agent's phone: a sipp callee streaming `freq`, its SDP at a capture socket.
fn agent_phone(dir: &Path, name: &str, freq: f64, cap: &Capture) -> (Sipp, u16) {
    let file = dir.join(format!("{name}.ulaw"));
    write_raw(&file, Codec::Pcmu, &tone(freq, 1000));
    let xml = dir.join(format!("{name}.xml"));
    std::fs::write(
        &xml,
        uas_xml(
            &[(0, "PCMU"), (101, "telephone-event")],
            Some((&file, 0)),
            200_000,
        ),
    )
    .unwrap();
    let port = free_port();
    let child = Command::new("sipp")
        .current_dir(dir)
        .args([
            "-sf",
            &xml.display().to_string(),
            "-i",
            "127.0.0.1",
            "-mi",
            "127.0.0.1",
        ])
        .args(["-p", &port.to_string(), "-mp", &free_port().to_string()])
        .args(["-key", "rtpport", &cap.port.to_string()])
        .args(["-m", "1", "-nostdin", "-timeout", "240s"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start sipp");
    (Sipp(child), port)
}

/// The customer's scenario: PCMU + telephone-event at `[rtpport]`, streams its tone, waits for
/// the appliance's BYE.
fn customer_xml(file: &Path) -> String {
    format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="customer">
  <send retrans="500"><![CDATA[
      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:+13125550100@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: sip:sipp@[local_ip]:[local_port]
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=user1 53655765 2353687637 IN IP4 [local_ip]
      s=-
      c=IN IP4 127.0.0.1
      t=0 0
      m=audio [rtpport] RTP/AVP 0 101
      a=rtpmap:0 PCMU/8000
      a=rtpmap:101 telephone-event/8000

    ]]></send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="183" optional="true"/>
  <recv response="200" rtd="true"/>
  <send><![CDATA[
      ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:+13125550100@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Contact: sip:sipp@[local_ip]:[local_port]
      Max-Forwards: 70
      Content-Length: 0

    ]]></send>
  <nop><action><exec rtp_stream="{},-1,0"/></action></nop>
  <recv request="BYE" timeout="200000"/>
  <nop><action><exec rtp_stream="pause"/></action></nop>
  <send><![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]></send>
</scenario>
"#,
        file.display()
    )
}

/// Per frequency, the mean share of each 20 ms frame's energy between `from` and `to`.
fn shares(pkts: &[Rtp], from: Instant, to: Instant) -> Vec<(f64, f64)> {
    let frames: Vec<Vec<i16>> = pkts
        .iter()
        .filter(|p| p.pt == 0 && p.at >= from && p.at <= to)
        .map(|p| Codec::Pcmu.decode(&p.payload))
        .collect();
    let expected = ((to - from).as_millis() / 20) as usize;
    [CUSTOMER_HZ, AGNES_HZ, BERT_HZ]
        .iter()
        .map(|&f| {
            let g = Goertzel::new(f, 8000.0);
            let sum: f64 = frames.iter().map(|x| g.relative_power(x, energy(x))).sum();
            (f, sum / expected.max(frames.len()).max(1) as f64)
        })
        .collect()
}

fn share(s: &[(f64, f64)], f: f64) -> f64 {
    s.iter().find(|(x, _)| *x == f).map_or(0.0, |(_, v)| *v)
}

#[test]
fn desktop_consult_transfer_completes_in_chromium() {
    if !tools_present() {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (agnes_pw, bert_pw) = ("agnes-Secret-1", "bert-Secret-2");
    create_user(dir.path(), "agnes", agnes_pw);
    create_user(dir.path(), "bert", bert_pw);
    let admin = common::admin_key(dir.path());
    let app = Appliance::start(dir.path(), &[("DIALBRIDGE_RTP_INACTIVITY_TIMEOUT_S", "0")]);
    rt.block_on(common::route_numbers(
        &app,
        &admin,
        "queue",
        QUEUE_FLOW,
        &[NUMBER],
    ));

    let (cap_agnes, cap_bert, cap_customer) = rt.block_on(async {
        (
            Capture::start().await,
            Capture::start().await,
            Capture::start().await,
        )
    });
    let (agnes_phone, agnes_port) =
        rt.block_on(async { agent_phone(dir.path(), "agnes", AGNES_HZ, &cap_agnes) });
    let (bert_phone, bert_port) =
        rt.block_on(async { agent_phone(dir.path(), "bert", BERT_HZ, &cap_bert) });
    let customer_file = dir.path().join("customer.ulaw");
    write_raw(&customer_file, Codec::Pcmu, &tone(CUSTOMER_HZ, 1000));
    let scenario = dir.path().join("customer.xml");
    std::fs::write(&scenario, customer_xml(&customer_file)).unwrap();

    let artifacts = std::env::var_os("DIALBRIDGE_ARTIFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_TARGET_TMPDIR")).join("artifacts"))
        .join("console");
    std::fs::create_dir_all(&artifacts).unwrap();
    let _ = std::fs::remove_file(artifacts.join("FAILED-consult.png"));
    eprintln!("desktop screenshots: {}", artifacts.display());

    let mut child = Command::new("node")
        .arg("consult.mjs")
        .current_dir(console_dir())
        .env("DIALBRIDGE_URL", &app.http)
        .env("AGENT_USER", "agnes")
        .env("AGENT_PASSWORD", agnes_pw)
        .env("TARGET_USER", "bert")
        .env("TARGET_PASSWORD", bert_pw)
        .env("AGENT_PHONE", format!("sip:agnes@127.0.0.1:{agnes_port}"))
        .env("TARGET_PHONE", format!("sip:bert@127.0.0.1:{bert_port}"))
        .env("SIP_TARGET", &app.sip_udp)
        .env("CALL_NUMBER", NUMBER)
        .env("CUSTOMER_SCENARIO", &scenario)
        .env("CUSTOMER_RTP_PORT", cap_customer.port.to_string())
        .env("CUSTOMER_MEDIA_PORT", free_port().to_string())
        .env("ARTIFACTS", &artifacts)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start node");
    let stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    // Lines with the time they arrived (COMPLETED marks the start of the listening window).
    let out_reader = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .map(|l| (Instant::now(), l))
            .collect::<Vec<_>>()
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let t0 = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if t0.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let (lines, err) = (out_reader.join().unwrap(), err_reader.join().unwrap());
    let out: String = lines.iter().map(|(_, l)| format!("{l}\n")).collect();
    eprintln!("{out}");
    assert!(
        status.is_some_and(|s| s.success()),
        "browser test failed (after {:?}):\n--- stdout\n{out}\n--- stderr\n{err}\n--- appliance log (tail)\n{}",
        t0.elapsed(),
        app.log_text()
            .lines()
            .rev()
            .take(40)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n")
    );
    let (done_at, contact) = lines
        .iter()
        .find_map(|(at, l)| l.strip_prefix("COMPLETED ").map(|c| (*at, c.to_owned())))
        .expect("the script reports the completed transfer");

    // Listen for 2 s after the transfer completed (the first 300 ms are not judged).
    let window = (
        done_at + Duration::from_millis(300),
        done_at + Duration::from_millis(2300),
    );
    let left = window.1.saturating_duration_since(Instant::now());
    std::thread::sleep(left + Duration::from_millis(200));
    let resp = rt.block_on(async {
        reqwest::Client::new()
            .post(app.url(&format!("/api/v1/agent/contacts/{contact}/hangup")))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap()
            .status()
    });
    assert_eq!(resp, 204, "the contact ends");
    let (customer, agnes, bert) = rt.block_on(async {
        (
            cap_customer.finish().await,
            cap_agnes.finish().await,
            cap_bert.finish().await,
        )
    });
    let (c, a, b) = (
        shares(&customer, window.0, window.1),
        shares(&agnes, window.0, window.1),
        shares(&bert, window.0, window.1),
    );
    eprintln!("after complete: customer {c:?}\n  agnes {a:?}\n  bert {b:?}");
    assert!(share(&c, BERT_HZ) > 0.6, "the customer hears bert: {c:?}");
    assert!(
        share(&c, AGNES_HZ) < 0.02,
        "the customer no longer hears agnes: {c:?}"
    );
    assert!(
        share(&b, CUSTOMER_HZ) > 0.6,
        "bert hears the customer: {b:?}"
    );
    assert!(
        share(&a, CUSTOMER_HZ) < 0.02 && share(&a, BERT_HZ) < 0.02,
        "agnes hears neither: {a:?}"
    );
    for name in [
        "30-desktop-consult",
        "31-desktop-transferred",
        "32-desktop-after-transfer",
    ] {
        let shot = artifacts.join(format!("{name}.png"));
        let len = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
        assert!(len > 1000, "screenshot {} missing or empty", shot.display());
    }
    drop(agnes_phone);
    drop(bert_phone);
}
