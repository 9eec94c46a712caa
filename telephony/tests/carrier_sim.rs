//! The carrier simulator against real peers: a sipp caller dialling numbers whose last digit
//! picks the class gets 200 / 486 / 480 as the rule says, and the appliance's own AMD (an
//! originated call through `telephony::control`) hears the simulated human as Human (then gets
//! its DTMF key) and the machine as Machine with a beep; an agent phone answers and stays.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use foundation::lifecycle::Lifecycle;
use telephony::carrier_sim::{
    self, CarrierSim, CarrierSimConfig, Class, Ending, LastDigitRule, Plan,
};
use telephony::control::{Call, Calls, ControlConfig, EndCause, Event};
use telephony::media::amd::{AmdConfig, AmdEvent, AmdVerdict};
use telephony::sip::call::{HangupCause, Originate, Transport, Trunk};
use telephony::sip::listener::{self, SipOptions};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "dialbridge-carrier-sim-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn free_port() -> u16 {
    loop {
        let u = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = u.local_addr().unwrap().port();
        if std::net::UdpSocket::bind(("127.0.0.1", port + 2)).is_ok() {
            return port;
        }
    }
}

async fn start_sim(
    rtp: (u16, u16),
    plan: Plan,
    agent_prefix: Option<&str>,
    audio_dir: &Path,
) -> CarrierSim {
    let config = CarrierSimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        rtp_ports: rtp,
        rule: LastDigitRule::standard(),
        agent_prefix: agent_prefix.map(String::from),
        plan,
        audio_dir: audio_dir.to_path_buf(),
        ..CarrierSimConfig::default()
    };
    carrier_sim::start(config, Lifecycle::new())
        .await
        .expect("the simulator starts")
}

/// The shared speech cache (generated once per machine, like the CLI's).
fn audio_dir() -> PathBuf {
    std::env::temp_dir().join("dialbridge-carrier-sim-audio")
}

const HEAD: &str = r#"      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[field0]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      Max-Forwards: 70
"#;

/// A caller dialling `[field0]`: logs "NUMBER CODE HOW" for each call. Answered calls wait up to
/// 3 s for the callee's BYE, else send their own.
fn uac_xml() -> String {
    let ack_non2xx = "  <send><![CDATA[\n      ACK sip:[field0]@[remote_ip]:[remote_port] SIP/2.0\n      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch-3]\n      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]\n      To: <sip:[field0]@[remote_ip]:[remote_port]>[peer_tag_param]\n      Call-ID: [call_id]\n      CSeq: 1 ACK\n      Max-Forwards: 70\n      Content-Length: 0\n\n    ]]></send>\n";
    format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="carrier-sim caller">
  <send retrans="500"><![CDATA[
      INVITE sip:[field0]@[remote_ip]:[remote_port] SIP/2.0
{HEAD}      CSeq: 1 INVITE
      Contact: sip:sipp@[local_ip]:[local_port]
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
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="486" optional="true" next="1"/>
  <recv response="480" optional="true" next="2"/>
  <recv response="200"/>
  <send><![CDATA[
      ACK sip:[field0]@[remote_ip]:[remote_port] SIP/2.0
{HEAD}      CSeq: 1 ACK
      Content-Length: 0

    ]]></send>
  <recv request="BYE" timeout="3000" ontimeout="3"/>
  <send><![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]></send>
  <nop><action><log message="[field0] 200 callee-bye"/></action></nop>
  <nop next="9"/>
  <label id="3"/>
  <send retrans="500"><![CDATA[
      BYE sip:[field0]@[remote_ip]:[remote_port] SIP/2.0
{HEAD}      CSeq: 2 BYE
      Content-Length: 0

    ]]></send>
  <recv response="200" crlf="true"/>
  <nop><action><log message="[field0] 200 caller-bye"/></action></nop>
  <nop next="9"/>
  <label id="1"/>
{ack_non2xx}  <nop><action><log message="[field0] 486 -"/></action></nop>
  <nop next="9"/>
  <label id="2"/>
{ack_non2xx}  <nop><action><log message="[field0] 480 -"/></action></nop>
  <label id="9"/>
  <timewait milliseconds="200"/>
</scenario>
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_calls_get_200_486_480_by_the_last_digit_rule() {
    if !foundation::testing::require_tool("sipp", "sip-tester") {
        return;
    }
    let dir = scratch("mix");
    let plan = Plan {
        ring: Duration::from_millis(200),
        busy_after: Duration::from_millis(100),
        no_answer_after: Duration::from_millis(1500),
        talk: Duration::from_secs(1),
        press: None,
    };
    let mut sim = start_sim((47000, 47199), plan, None, &audio_dir()).await;
    let numbers: Vec<String> = (0..20).map(|i| format!("155500{i:04}")).collect();
    std::fs::write(
        dir.join("numbers.csv"),
        format!("SEQUENTIAL\n{}\n", numbers.join("\n")),
    )
    .unwrap();
    std::fs::write(dir.join("uac.xml"), uac_xml()).unwrap();
    let out = tokio::process::Command::new("sipp")
        .current_dir(&dir)
        .arg(sim.udp_addr.to_string())
        .args([
            "-sf",
            "uac.xml",
            "-inf",
            "numbers.csv",
            "-i",
            "127.0.0.1",
            "-mi",
            "127.0.0.1",
            "-m",
            "20",
            "-r",
            "10",
            "-l",
            "20",
        ])
        .args([
            "-p",
            &free_port().to_string(),
            "-mp",
            &free_port().to_string(),
        ])
        .args([
            "-nostdin",
            "-trace_logs",
            "-log_file",
            "calls.log",
            "-trace_err",
            "-error_file",
            "errors.log",
            "-timeout",
            "40s",
        ])
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), out)
        .await
        .expect("sipp finishes")
        .expect("sipp runs");
    let log = std::fs::read_to_string(dir.join("calls.log")).unwrap_or_default();
    let errors = std::fs::read_to_string(dir.join("errors.log")).unwrap_or_default();
    assert_eq!(
        out.status.code(),
        Some(0),
        "sipp: {}\n{errors}\nlog:\n{log}",
        String::from_utf8_lossy(&out.stdout)
            .chars()
            .rev()
            .take(2000)
            .collect::<String>()
    );

    // What sipp saw, per number.
    let seen: BTreeMap<String, (u16, String)> = log
        .lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            Some((
                it.next()?.to_string(),
                (it.next()?.parse().ok()?, it.next()?.to_string()),
            ))
        })
        .collect();
    assert_eq!(seen.len(), 20, "one result per number:\n{log}");
    for n in &numbers {
        let (code, how) = &seen[n];
        let want = match n.chars().last().unwrap() {
            '0'..='5' => (200, "callee-bye"),
            '6' | '7' => (200, "caller-bye"),
            '8' => (486, "-"),
            _ => (480, "-"),
        };
        assert_eq!((*code, how.as_str()), want, "number {n}");
    }

    // What the simulator recorded: one record per call, class and ending as the rule says.
    let mut records = BTreeMap::new();
    while records.len() < 20 {
        let r = tokio::time::timeout(Duration::from_secs(10), sim.next_record())
            .await
            .expect("a record per call")
            .unwrap();
        records.insert(r.to.clone(), r);
    }
    for n in &numbers {
        let r = &records[n];
        assert_eq!(r.from, "sipp", "the caller's user part");
        let (class, answered, ending, code) = match n.chars().last().unwrap() {
            '0'..='5' => (Class::Human, true, Ending::Completed, None),
            '6' | '7' => (Class::Machine, true, Ending::CallerHungUp, None),
            '8' => (Class::Busy, false, Ending::Refused, Some(486)),
            _ => (Class::NoAnswer, false, Ending::Refused, Some(480)),
        };
        assert_eq!(
            (r.class, r.answered, r.ending, r.code),
            (class, answered, ending, code),
            "{r:?}"
        );
    }
    let c = sim.counters();
    assert_eq!(
        (c.calls, c.human, c.machine, c.busy, c.no_answer, c.agent),
        (20, 12, 4, 2, 2, 0),
        "{c:?}"
    );
    assert_eq!(
        (
            c.answered,
            c.completed,
            c.caller_hung_up,
            c.refused,
            c.failed,
            c.active
        ),
        (16, 12, 4, 4, 0, 0),
        "{c:?}"
    );
    eprintln!("counters: {}", serde_json::to_string(&c).unwrap());
    sim.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

/// The appliance side: SIP plus call control, dialling the simulator; calls whose RTP stops for
/// `inactivity` are hung up.
async fn appliance(rtp: (u16, u16), inactivity: Duration) -> Calls {
    let config = telephony::Config {
        udp: "127.0.0.1:0".parse().unwrap(),
        tcp: "127.0.0.1:0".parse().unwrap(),
        advertised_address: Some("127.0.0.1".into()),
        rtp_ports: rtp,
        max_message_bytes: 8192,
    };
    let sip = listener::start_with(&config, SipOptions::default(), Lifecycle::new())
        .await
        .expect("SIP starts");
    let cc = ControlConfig {
        media_ip: "127.0.0.1".parse().unwrap(),
        inactivity_timeout: Some(inactivity),
        inband_dtmf: true,
        jitter_depth: 3,
    };
    Calls::start(sip.handle.clone(), cc).0
}

fn dial(calls: &Calls, sim: &CarrierSim, number: &str) -> Call {
    calls.originate(Originate {
        to_user: number.into(),
        trunks: vec![Trunk {
            addr: sim.udp_addr,
            transport: Transport::Udp,
            credentials: None,
        }],
        ring_timeout: Duration::from_secs(10),
        ..Originate::default()
    })
}

/// Events until `stop` says so (or the call ends); panics after `limit`.
async fn until(
    call: &mut Call,
    limit: Duration,
    mut stop: impl FnMut(&Event) -> bool,
) -> Vec<Event> {
    let mut seen = vec![];
    loop {
        let ev = tokio::time::timeout(limit, call.next_event())
            .await
            .unwrap_or_else(|_| panic!("no end within {limit:?}: {seen:?}"));
        let Some(ev) = ev else { return seen };
        let done = stop(&ev) || matches!(ev, Event::Hangup { .. });
        seen.push(ev);
        if done {
            return seen;
        }
    }
}

fn verdict(events: &[Event]) -> Option<AmdVerdict> {
    events.iter().find_map(|e| match e {
        Event::Amd(AmdEvent::Verdict { verdict, .. }) => Some(*verdict),
        _ => None,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amd_hears_the_human_and_the_machine_and_the_human_presses_its_key() {
    let plan = Plan {
        ring: Duration::from_millis(300),
        busy_after: Duration::from_millis(100),
        no_answer_after: Duration::from_secs(5),
        talk: Duration::from_secs(4),
        press: Some(('1', Duration::from_millis(1500))),
    };
    let mut sim = start_sim((47200, 47399), plan, Some("agent"), &audio_dir()).await;
    eprintln!("simulator audio: {}", sim.audio);
    let calls = appliance((47400, 47599), Duration::from_secs(20)).await;

    // The human: AMD says Human, then the key press arrives, then they hang up after the talk time.
    let mut human = dial(&calls, &sim, "15550101");
    let answered = until(&mut human, Duration::from_secs(10), |e| {
        matches!(e, Event::Answered { .. })
    })
    .await;
    assert!(
        matches!(answered.last(), Some(Event::Answered { .. })),
        "{answered:?}"
    );
    human
        .control()
        .start_amd(AmdConfig::default())
        .await
        .expect("AMD starts");
    let events = until(&mut human, Duration::from_secs(10), |_| false).await;
    assert_eq!(verdict(&events), Some(AmdVerdict::Human), "{events:?}");
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Dtmf { digit: '1', .. })),
        "the human pressed 1: {events:?}"
    );
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, Event::Amd(AmdEvent::Beep { .. }))),
        "no beep from a person: {events:?}"
    );
    assert!(
        matches!(
            events.last(),
            Some(Event::Hangup {
                cause: EndCause::Sip(HangupCause::RemoteBye),
                ..
            })
        ),
        "they hung up: {events:?}"
    );

    // The machine: AMD says Machine, and the beep follows the greeting; we hang up after it.
    let mut machine = dial(&calls, &sim, "15550106");
    until(&mut machine, Duration::from_secs(10), |e| {
        matches!(e, Event::Answered { .. })
    })
    .await;
    machine
        .control()
        .start_amd(AmdConfig::default())
        .await
        .expect("AMD starts");
    let events = until(&mut machine, Duration::from_secs(30), |e| {
        matches!(e, Event::Amd(AmdEvent::Beep { .. }))
    })
    .await;
    assert_eq!(verdict(&events), Some(AmdVerdict::Machine), "{events:?}");
    let beep = events.iter().find_map(|e| match e {
        Event::Amd(AmdEvent::Beep { freq, .. }) => Some(*freq),
        _ => None,
    });
    assert!(
        beep.is_some_and(|f| (f - carrier_sim::audio::BEEP_HZ).abs() < 60.0),
        "a 1 kHz beep: {events:?}"
    );
    machine.control().hangup().await.unwrap();
    until(&mut machine, Duration::from_secs(10), |_| false).await;

    // An agent phone: answered, still up after longer than a human's talk time, gone on our BYE.
    let mut agent = dial(&calls, &sim, "agent7");
    until(&mut agent, Duration::from_secs(10), |e| {
        matches!(e, Event::Answered { .. })
    })
    .await;
    let quiet = tokio::time::timeout(Duration::from_secs(5), agent.next_event()).await;
    assert!(
        !matches!(quiet, Ok(Some(Event::Hangup { .. })) | Ok(None)),
        "the agent leg stays up: {quiet:?}"
    );
    agent.control().hangup().await.unwrap();
    until(&mut agent, Duration::from_secs(10), |_| false).await;

    let mut records = vec![];
    while records.len() < 3 {
        records.push(
            tokio::time::timeout(Duration::from_secs(10), sim.next_record())
                .await
                .expect("records")
                .unwrap(),
        );
    }
    records.sort_by_key(|r| r.call);
    let summary: Vec<_> = records
        .iter()
        .map(|r| (r.class, r.ending, r.pressed))
        .collect();
    assert_eq!(
        summary,
        [
            (Class::Human, Ending::Completed, Some('1')),
            (Class::Machine, Ending::CallerHungUp, None),
            (Class::Agent, Ending::CallerHungUp, None)
        ],
        "{records:?}"
    );
    sim.stop();
}

/// An agent phone sends audio for the whole call: our side hangs up a call whose RTP stops for
/// 1 s, and the agent leg is still up after 6 s (a nailed-up leg with a phone that sent nothing
/// was hung up by the appliance's inactivity timer); it ends on our BYE, as the caller's hang-up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_phone_sends_rtp_for_the_whole_call() {
    let plan = Plan {
        ring: Duration::from_millis(200),
        ..Plan::default()
    };
    let mut sim = start_sim((47600, 47799), plan, Some("agent"), &audio_dir()).await;
    let calls = appliance((47800, 47999), Duration::from_secs(1)).await;
    let mut agent = dial(&calls, &sim, "agent3");
    let answered = until(&mut agent, Duration::from_secs(10), |e| {
        matches!(e, Event::Answered { .. })
    })
    .await;
    assert!(
        matches!(answered.last(), Some(Event::Answered { .. })),
        "{answered:?}"
    );
    let mut seen = vec![];
    let up_until = tokio::time::Instant::now() + Duration::from_secs(6);
    while let Ok(ev) = tokio::time::timeout_at(up_until, agent.next_event()).await {
        let ev = ev.expect("the call is still there");
        let ended = matches!(ev, Event::Hangup { .. });
        seen.push(ev);
        assert!(!ended, "the agent leg ended: {seen:?}");
    }
    agent.control().hangup().await.unwrap();
    let events = until(&mut agent, Duration::from_secs(10), |_| false).await;
    assert!(
        matches!(
            events.last(),
            Some(Event::Hangup {
                cause: EndCause::Sip(HangupCause::LocalHangup),
                ..
            })
        ),
        "{events:?}"
    );
    let record = tokio::time::timeout(Duration::from_secs(10), sim.next_record())
        .await
        .expect("a record")
        .unwrap();
    assert_eq!(
        (record.class, record.ending, record.answered),
        (Class::Agent, Ending::CallerHungUp, true),
        "{record:?}"
    );
    assert!(record.duration_ms >= 6_000, "{record:?}");
    sim.stop();
}
