//! Shared by the runtime tests and the IVR benchmark: the appliance side (SIP listener without
//! auto-answer, call control, SQLite store with the menu flow, the inbound runtime) and sipp
//! scenarios generated per test (callers sending RFC 4733 digits at PT 96 with `play_dtmf` or at
//! PT 101 from the packaged pcaps; agent phones answering and waiting for BYE).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use foundation::Db;
use foundation::clock::SystemClock;
use foundation::lifecycle::Lifecycle;
use inbound::acd::{AcdConfig, ProfileQueue, QueueConfig, RoutingProfileConfig};
use inbound::hours::{Hours, HoursBook, HoursConfig, WeeklyRange};
use inbound::runtime::{Runtime, RuntimeConfig};
use telephony::control::{Calls, ControlConfig};
use telephony::sip::listener::{self, SipListeners, SipOptions};

pub const MENU: &str = include_str!("../fixtures/menu_flow.json");
pub const DID: &str = "+15550001000";

pub struct Sut {
    pub sip: SipListeners,
    pub calls: Calls,
    pub db: Db,
    pub runtime: Runtime,
    pub dir: tempfile::TempDir,
    pub lifecycle: Lifecycle,
}

/// The queues of the menu flow (`sales`, `support`), both open around the clock, one profile.
pub fn acd_config() -> AcdConfig {
    let mut sales = QueueConfig::new("sales");
    sales.ring_timeout_s = 10;
    let mut support = QueueConfig::new("support");
    support.ring_timeout_s = 10;
    AcdConfig {
        queues: vec![sales, support],
        profiles: vec![RoutingProfileConfig {
            name: "all".into(),
            queues: vec![
                ProfileQueue {
                    queue: "sales".into(),
                    priority: 1,
                    delay_s: 0,
                },
                ProfileQueue {
                    queue: "support".into(),
                    priority: 1,
                    delay_s: 0,
                },
            ],
            acw_s: 0,
        }],
        agents: vec![],
    }
}

pub fn always_open() -> HoursBook {
    let mut book = HoursBook::new();
    let cfg = HoursConfig {
        id: "always".into(),
        time_zone: "UTC".into(),
        weekly: ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
            .iter()
            .map(|d| WeeklyRange {
                day: (*d).into(),
                start: "00:00".into(),
                end: "24:00".into(),
            })
            .collect(),
        overrides: vec![],
    };
    book.insert(Hours::from_config(&cfg).unwrap());
    book.set_queue_hours("sales", "always");
    book.set_queue_hours("support", "always");
    book
}

/// SIP + call control + a SQLite store holding the menu flow on [`DID`] + the runtime.
pub async fn start(rtp_base: u16, tweak: impl FnOnce(&mut RuntimeConfig)) -> Sut {
    start_with(rtp_base, None, tweak).await
}

/// [`start`] with an inbound policy (trunk ACL, endpoint digest users, the registrar).
pub async fn start_with(
    rtp_base: u16,
    policy: Option<telephony::sip::registrar::InboundPolicy>,
    tweak: impl FnOnce(&mut RuntimeConfig),
) -> Sut {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::connect(&format!("sqlite://{}/inbound.db", dir.path().display()), 8)
        .await
        .unwrap();
    db.migrate().await.unwrap();
    inbound::store::import_flow(&db, "main", MENU, 1_000, "test")
        .await
        .unwrap();
    inbound::store::assign_number(&db, DID, "main", 1_000, "test")
        .await
        .unwrap();
    let config = telephony::Config {
        udp: "127.0.0.1:0".parse().unwrap(),
        tcp: "127.0.0.1:0".parse().unwrap(),
        advertised_address: Some("127.0.0.1".into()),
        rtp_ports: (rtp_base, rtp_base + 999),
        max_message_bytes: 8192,
    };
    let lifecycle = Lifecycle::new();
    let options = SipOptions {
        auto_answer: None,
        policy,
        ..SipOptions::default()
    };
    let sip = listener::start_with(&config, options, lifecycle.clone())
        .await
        .expect("SIP starts");
    let cc = ControlConfig {
        media_ip: "127.0.0.1".parse().unwrap(),
        inactivity_timeout: None,
        inband_dtmf: true,
        jitter_depth: 3,
    };
    let (calls, incoming) = Calls::start(sip.handle.clone(), cc);
    let mut cfg = RuntimeConfig {
        acd: acd_config(),
        hours: always_open(),
        prompt_dir: dir.path().join("prompts"),
        tts_cache_dir: std::env::temp_dir().join("dialbridge-inbound-test-tts"),
        recording_dir: dir.path().join("recordings"),
        ..RuntimeConfig::default()
    };
    tweak(&mut cfg);
    let runtime = Runtime::start(
        db.clone(),
        Arc::new(SystemClock),
        calls.clone(),
        incoming,
        cfg,
    )
    .await
    .unwrap();
    Sut {
        sip,
        calls,
        db,
        runtime,
        dir,
        lifecycle,
    }
}

/// A free loopback port for sipp (SIP or media; media also needs +2 free). Ports handed out
/// earlier in this process are never returned again (nor their neighbours), so two sipp
/// processes started one after the other never race for the same port.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let u = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = u.local_addr().unwrap().port();
        let mut given = GIVEN.lock().unwrap();
        if port < 60000
            && given.iter().all(|&q| port.abs_diff(q) > 4)
            && std::net::UdpSocket::bind(("127.0.0.1", port + 2)).is_ok()
        {
            given.push(port);
            return port;
        }
    }
}

/// How a sipp caller sends its digits.
#[derive(Debug, Clone, Copy)]
pub enum Dtmf<'a> {
    /// `play_dtmf`: RFC 4733 at PT 96 (hard-coded in sipp 3.6.1).
    Pt96(&'a str),
    /// A packaged pcap of one digit: RFC 4733 at PT 101.
    Pt101(char),
}

/// An IVR caller: INVITE offering PCMU plus telephone-event at the digit's PT, waits
/// `before_ms` after the answer, sends the digits, stays `talk_ms`, sends BYE.
pub fn caller_xml(dtmf: Dtmf<'_>, before_ms: u32, talk_ms: u32) -> String {
    let pt = match dtmf {
        Dtmf::Pt96(_) => 96,
        Dtmf::Pt101(_) => 101,
    };
    let action = match dtmf {
        Dtmf::Pt96(d) => format!("<exec play_dtmf=\"{d},160\"/>"),
        Dtmf::Pt101(d) => {
            let name = match d {
                '*' => "star".to_string(),
                '#' => "pound".to_string(),
                d => d.to_string(),
            };
            format!("<exec play_pcap_audio=\"/usr/share/sip-tester/dtmf_2833_{name}.pcap\"/>")
        }
    };
    format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="ivr caller">
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
      o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0 {pt}
      a=rtpmap:0 PCMU/8000
      a=rtpmap:{pt} telephone-event/8000
      a=fmtp:{pt} 0-15

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
  <pause milliseconds="{before_ms}"/>
  <nop><action>{action}</action></nop>
  <pause milliseconds="{talk_ms}"/>
  <send retrans="500"><![CDATA[
      BYE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:+13125550100@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 2 BYE
      Contact: sip:sipp@[local_ip]:[local_port]
      Max-Forwards: 70
      Content-Length: 0

    ]]></send>
  <recv response="200" crlf="true"/>
</scenario>
"#
    )
}

/// A caller expecting the call to be refused with `code`.
pub fn refused_caller_xml(code: u16) -> String {
    format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="refused caller">
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
      o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000

    ]]></send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="{code}"/>
  <send><![CDATA[
      ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:+13125550100@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0

    ]]></send>
</scenario>
"#
    )
}

/// An agent phone: answers (PCMU + telephone-event/101) and waits up to `wait_bye_ms` for BYE.
pub fn agent_xml(wait_bye_ms: u32) -> String {
    format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="agent phone">
  <recv request="INVITE" crlf="true"/>
  <send><![CDATA[
      SIP/2.0 180 Ringing
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]></send>
  <send><![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
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
      m=audio [media_port] RTP/AVP 0 101
      a=rtpmap:0 PCMU/8000
      a=rtpmap:101 telephone-event/8000

    ]]></send>
  <recv request="ACK" crlf="true"/>
  <recv request="BYE" timeout="{wait_bye_ms}"/>
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
"#
    )
}

pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// Starts sipp in `dir` (killed on drop).
pub fn sipp(dir: &Path, args: &[String]) -> tokio::process::Child {
    tokio::process::Command::new("sipp")
        .current_dir(dir)
        .args(args)
        .args(["-nostdin", "-i", "127.0.0.1", "-mi", "127.0.0.1"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("sipp starts")
}

pub struct SippOut {
    pub rc: i32,
    pub output: String,
}

pub async fn wait_sipp(child: tokio::process::Child, within: Duration) -> SippOut {
    let out = tokio::time::timeout(within, child.wait_with_output())
        .await
        .expect("sipp finishes in time")
        .expect("sipp runs");
    let mut output = String::from_utf8_lossy(&out.stdout).into_owned();
    output += &String::from_utf8_lossy(&out.stderr);
    let keep = output.len().saturating_sub(3000);
    let start = (keep..output.len())
        .find(|&i| output.is_char_boundary(i))
        .unwrap_or(output.len());
    SippOut {
        rc: out.status.code().unwrap_or(-1),
        output: output[start..].to_string(),
    }
}

/// Arguments for a caller scenario to the SUT.
pub fn caller_args(
    sut_port: u16,
    scenario: &str,
    service: &str,
    calls: u32,
    limit: u32,
    rate: u32,
) -> Vec<String> {
    let p = free_port();
    let mp = free_port();
    [
        format!("127.0.0.1:{sut_port}"),
        "-sf".into(),
        scenario.into(),
        "-s".into(),
        service.into(),
        "-p".into(),
        p.to_string(),
        "-mp".into(),
        mp.to_string(),
        "-m".into(),
        calls.to_string(),
        "-l".into(),
        limit.to_string(),
        "-r".into(),
        rate.to_string(),
        "-timeout".into(),
        "120s".into(),
        "-trace_err".into(),
        "-error_file".into(),
        "caller_errors.log".into(),
    ]
    .into()
}

/// Waits until `check` holds on the contact records (polling the store), or panics with `what`.
pub async fn eventually<F, Fut>(what: &str, within: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let until = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < until {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for: {what}");
}

/// All contact records, oldest first.
pub async fn contacts(db: &Db) -> Vec<inbound::contact::ContactRecord> {
    let rows: Vec<(String,)> = sqlx::query_as("SELECT record FROM inbound_contacts ORDER BY id")
        .fetch_all(db.pool())
        .await
        .unwrap();
    rows.into_iter()
        .map(|(r,)| serde_json::from_str(&r).unwrap())
        .collect()
}

/// Rows of contacts: (contact id, ended_at, outcome).
pub async fn contact_rows(db: &Db) -> Vec<(String, Option<i64>, Option<String>)> {
    sqlx::query_as("SELECT contact_id, ended_at, outcome FROM inbound_contacts ORDER BY id")
        .fetch_all(db.pool())
        .await
        .unwrap()
}
