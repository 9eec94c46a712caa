//! The campaign runner end to end against real SIP peers on loopback: sipp "customers" that
//! answer with a short human greeting, answer with a voicemail greeting and a beep, are busy, or
//! never answer; and nailed-up sipp agent legs (originated once, then bridged to each customer by
//! a test [`AgentPort`]). Checks: each outcome is recorded right, AMD policy "leave a message"
//! acts after the beep, calls of a live answer are bridged to an agent and the greeting-end →
//! bridge latency is reported, no one-second span carries more INVITEs than the trunk's cps, and
//! every lead ends with exactly one final attempt.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dialer::agents::{AgentPort, AgentState, AgentView, NoAgent};
use dialer::campaign::{self, Action, AmdPolicy, DialMode, Purpose};
use dialer::hopper;
use dialer::runner::{self, RunnerConfig};
use foundation::clock::SystemClock;
use foundation::lifecycle::Lifecycle;
use futures_util::future::BoxFuture;
use sqlx::Row;
use telephony::control::{CallControl, Calls, ControlConfig, Event, OnPeerHangup};
use telephony::sip::call::Originate;
use telephony::sip::listener::{self, SipOptions};

fn sh(dir: &Path, cmd: &str, args: &[&str]) {
    let st = std::process::Command::new(cmd)
        .current_dir(dir)
        .args(args)
        .status()
        .unwrap();
    assert!(st.success(), "{cmd} {args:?}");
}

/// Test audio, generated offline: a short human "hello", a voicemail greeting with a beep, and
/// the prompts the dialer plays.
fn audio(dir: &Path) {
    sh(
        dir,
        "espeak-ng",
        &["-v", "en-us", "-s", "160", "-w", "hello_raw.wav", "Hello?"],
    );
    sh(
        dir,
        "sox",
        &[
            "hello_raw.wav",
            "-r",
            "8000",
            "-c",
            "1",
            "-e",
            "signed",
            "-b",
            "16",
            "hello16.wav",
        ],
    );
    sh(
        dir,
        "sox",
        &[
            "-n",
            "-r",
            "8000",
            "-c",
            "1",
            "-e",
            "signed",
            "-b",
            "16",
            "sil20.wav",
            "trim",
            "0",
            "20",
        ],
    );
    sh(
        dir,
        "sox",
        &["hello16.wav", "sil20.wav", "-t", "ul", "human.ulaw"],
    );
    sh(
        dir,
        "espeak-ng",
        &[
            "-v",
            "en-us",
            "-s",
            "160",
            "-w",
            "am_raw.wav",
            "Hi, you have reached John and Mary. We are not available right now. Please leave a message after the tone.",
        ],
    );
    sh(
        dir,
        "sox",
        &[
            "am_raw.wav",
            "-r",
            "8000",
            "-c",
            "1",
            "-e",
            "signed",
            "-b",
            "16",
            "am16.wav",
        ],
    );
    sh(
        dir,
        "sox",
        &[
            "-n",
            "-r",
            "8000",
            "-c",
            "1",
            "-e",
            "signed",
            "-b",
            "16",
            "sil300.wav",
            "trim",
            "0",
            "0.3",
        ],
    );
    sh(
        dir,
        "sox",
        &[
            "-n",
            "-r",
            "8000",
            "-c",
            "1",
            "-e",
            "signed",
            "-b",
            "16",
            "beep16.wav",
            "synth",
            "1.2",
            "sine",
            "1000",
            "vol",
            "0.5",
        ],
    );
    sh(
        dir,
        "sox",
        &[
            "am16.wav",
            "sil300.wav",
            "beep16.wav",
            "sil20.wav",
            "-t",
            "ul",
            "machine.ulaw",
        ],
    );
    sh(
        dir,
        "espeak-ng",
        &[
            "-v",
            "en-us",
            "-s",
            "170",
            "-w",
            "msg_raw.wav",
            "This is Acme. Call us back at 555 0100. Press 9 to opt out.",
        ],
    );
    sh(
        dir,
        "sox",
        &[
            "msg_raw.wav",
            "-r",
            "8000",
            "-c",
            "1",
            "-e",
            "signed",
            "-b",
            "16",
            "prompt.wav",
        ],
    );
}

const OK_BYE: &str = "<send><![CDATA[\nSIP/2.0 200 OK\n[last_Via:]\n[last_From:]\n[last_To:]\n[last_Call-ID:]\n[last_CSeq:]\nContent-Length: 0\n\n]]></send>\n";

fn answer_xml(stream: Option<&Path>) -> String {
    let mut x = String::from(
        "<?xml version=\"1.0\" encoding=\"ISO-8859-1\" ?>\n<scenario name=\"answer\">\n<recv request=\"INVITE\" crlf=\"true\"/>\n",
    );
    x += "<send><![CDATA[\nSIP/2.0 180 Ringing\n[last_Via:]\n[last_From:]\n[last_To:];tag=[pid]SIPpTag01[call_number]\n[last_Call-ID:]\n[last_CSeq:]\nContent-Length: 0\n\n]]></send>\n<pause milliseconds=\"300\"/>\n";
    x += "<send retrans=\"500\"><![CDATA[\nSIP/2.0 200 OK\n[last_Via:]\n[last_From:]\n[last_To:];tag=[pid]SIPpTag01[call_number]\n[last_Call-ID:]\n[last_CSeq:]\nContact: <sip:[local_ip]:[local_port];transport=[transport]>\nContent-Type: application/sdp\nContent-Length: [len]\n\nv=0\no=user1 1 1 IN IP4 [local_ip]\ns=-\nc=IN IP4 [media_ip]\nt=0 0\nm=audio [media_port] RTP/AVP 0 101\na=rtpmap:0 PCMU/8000\na=rtpmap:101 telephone-event/8000\n]]></send>\n<recv request=\"ACK\" crlf=\"true\"/>\n";
    if let Some(f) = stream {
        x += &format!(
            "<nop><action><exec rtp_stream=\"{},1,0\"/></action></nop>\n",
            f.display()
        );
    }
    x += "<recv request=\"BYE\" timeout=\"120000\"/>\n";
    x + OK_BYE + "</scenario>\n"
}

fn busy_xml() -> String {
    "<?xml version=\"1.0\" encoding=\"ISO-8859-1\" ?>\n<scenario name=\"busy\">\n<recv request=\"INVITE\"/>\n<send><![CDATA[\nSIP/2.0 486 Busy Here\n[last_Via:]\n[last_From:]\n[last_To:];tag=[pid]SIPpTag01[call_number]\n[last_Call-ID:]\n[last_CSeq:]\nContent-Length: 0\n\n]]></send>\n<recv request=\"ACK\"/>\n</scenario>\n".into()
}

fn no_answer_xml() -> String {
    let head = "SIP/2.0 {code}\n[last_Via:]\n[last_From:]\n[last_To:];tag=[pid]SIPpTag01[call_number]\n[last_Call-ID:]\n";
    format!(
        "<?xml version=\"1.0\" encoding=\"ISO-8859-1\" ?>\n<scenario name=\"no answer\">\n<recv request=\"INVITE\"/>\n<send><![CDATA[\n{}[last_CSeq:]\nContent-Length: 0\n\n]]></send>\n<recv request=\"CANCEL\" timeout=\"60000\"/>\n<send><![CDATA[\n{}[last_CSeq:]\nContent-Length: 0\n\n]]></send>\n<send><![CDATA[\n{}CSeq: 1 INVITE\nContent-Length: 0\n\n]]></send>\n<recv request=\"ACK\"/>\n</scenario>\n",
        head.replace("{code}", "180 Ringing"),
        head.replace("{code}", "200 OK"),
        head.replace("{code}", "487 Request Terminated")
    )
}

struct Sipp {
    _child: tokio::process::Child,
    port: u16,
}

fn free_port() -> u16 {
    loop {
        let u = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = u.local_addr().unwrap().port();
        if port < 60000
            && std::net::UdpSocket::bind(("127.0.0.1", port + 2)).is_ok()
            && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
        {
            return port;
        }
    }
}

fn sipp_uas(dir: &Path, name: &str, xml: &str) -> Sipp {
    let file = dir.join(format!("{name}.xml"));
    std::fs::write(&file, xml).unwrap();
    let (port, mport) = (free_port(), free_port());
    let child = tokio::process::Command::new("sipp")
        .current_dir(dir)
        .args([
            "-sf",
            file.to_str().unwrap(),
            "-i",
            "127.0.0.1",
            "-mi",
            "127.0.0.1",
        ])
        .args([
            "-p",
            &port.to_string(),
            "-mp",
            &mport.to_string(),
            "-nostdin",
            "-trace_err",
            "-error_file",
            &format!("{name}_err.log"),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    Sipp {
        _child: child,
        port,
    }
}

/// Nailed-up agent legs: one call to a sipp UAS per agent, kept up; connect = bridge.
struct TestAgents {
    legs: Arc<Mutex<Vec<(String, CallControl, bool)>>>,
    talk: Duration,
}

impl AgentPort for TestAgents {
    fn snapshot(&self, _queue: &str) -> Vec<AgentView> {
        self.legs
            .lock()
            .unwrap()
            .iter()
            .map(|(id, _, busy)| AgentView {
                id: id.clone(),
                state: if *busy {
                    AgentState::Busy
                } else {
                    AgentState::Ready
                },
            })
            .collect()
    }

    fn connect(
        &self,
        _queue: &str,
        call: CallControl,
        attrs: BTreeMap<String, String>,
    ) -> BoxFuture<'static, Result<String, NoAgent>> {
        let picked = {
            let mut legs = self.legs.lock().unwrap();
            let hint = attrs.get("agent_hint").cloned().unwrap_or_default();
            let i = legs
                .iter()
                .position(|(id, _, busy)| !busy && *id == hint)
                .or_else(|| legs.iter().position(|(_, _, busy)| !busy));
            i.map(|i| {
                legs[i].2 = true;
                (i, legs[i].0.clone(), legs[i].1.clone())
            })
        };
        let talk = self.talk;
        let legs = self.legs.clone();
        Box::pin(async move {
            let Some((i, id, leg)) = picked else {
                return Err(NoAgent("all agents busy".into()));
            };
            leg.bridge(&call, OnPeerHangup::Stay)
                .await
                .map_err(|e| NoAgent(e.to_string()))?;
            tokio::spawn(async move {
                tokio::time::sleep(talk).await;
                let _ = call.hangup().await;
                tokio::time::sleep(Duration::from_millis(300)).await;
                legs.lock().unwrap()[i].2 = false;
            });
            Ok(id)
        })
    }
}

/// A zone where it is now between 10:00 and 18:00, so the real clock is inside the window.
fn open_zone() -> &'static str {
    use chrono::Timelike;
    let now = chrono::Utc::now();
    [
        "Asia/Tokyo",
        "Asia/Kolkata",
        "Europe/Berlin",
        "America/New_York",
        "America/Los_Angeles",
        "Pacific/Auckland",
        "Pacific/Honolulu",
        "Asia/Dubai",
    ]
    .into_iter()
    .find(|z| {
        let h = now
            .with_timezone(&z.parse::<chrono_tz::Tz>().unwrap())
            .hour();
        (10..18).contains(&h)
    })
    .expect("some zone is in office hours")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn campaigns_against_sipp_customers_and_agents() {
    for (tool, pkg) in [
        ("sipp", "sip-tester"),
        ("espeak-ng", "espeak-ng"),
        ("sox", "sox"),
    ] {
        if !foundation::testing::require_tool(tool, pkg) {
            return;
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir: PathBuf = tmp.path().to_owned();
    audio(&dir);
    let prompt = dir.join("prompt.wav").display().to_string();

    let human = sipp_uas(&dir, "human", &answer_xml(Some(&dir.join("human.ulaw"))));
    let machine = sipp_uas(
        &dir,
        "machine",
        &answer_xml(Some(&dir.join("machine.ulaw"))),
    );
    let busy = sipp_uas(&dir, "busy", &busy_xml());
    let noans = sipp_uas(&dir, "noans", &no_answer_xml());
    let agents_uas = sipp_uas(&dir, "agents", &answer_xml(None));
    tokio::time::sleep(Duration::from_millis(500)).await;

    let config = telephony::Config {
        udp: "127.0.0.1:0".parse().unwrap(),
        tcp: "127.0.0.1:0".parse().unwrap(),
        advertised_address: Some("127.0.0.1".into()),
        rtp_ports: (31000, 31399),
        max_message_bytes: 8192,
    };
    let lifecycle = Lifecycle::new();
    let sip = listener::start_with(&config, SipOptions::default(), lifecycle.clone())
        .await
        .unwrap();
    let cc = ControlConfig {
        media_ip: "127.0.0.1".parse().unwrap(),
        inactivity_timeout: None,
        inband_dtmf: true,
        jitter_depth: 3,
    };
    let (calls, _incoming) = Calls::start(sip.handle.clone(), cc);

    // Two nailed-up agent legs.
    let mut legs = Vec::new();
    for i in 0..2 {
        let mut call = calls.originate(Originate {
            to_user: format!("agent{i}"),
            from_user: "dialer".into(),
            trunks: vec![runner::trunk(&format!("sip:127.0.0.1:{}", agents_uas.port)).unwrap()],
            ring_timeout: Duration::from_secs(10),
            ..Originate::default()
        });
        loop {
            match tokio::time::timeout(Duration::from_secs(10), call.next_event())
                .await
                .expect("agent leg answers")
                .expect("alive")
            {
                Event::Answered { .. } => break,
                Event::Hangup { .. } => panic!("agent leg failed"),
                _ => {}
            }
        }
        let control = call.control().clone();
        tokio::spawn(async move { while call.next_event().await.is_some() {} });
        legs.push((format!("agent{i}"), control, false));
    }
    let agents = Arc::new(TestAgents {
        legs: Arc::new(Mutex::new(legs)),
        talk: Duration::from_millis(1500),
    });

    let db = support::sqlite(&dir).await;
    let clock: foundation::SharedClock = Arc::new(SystemClock);
    let zone = open_zone();
    let now = clock.now_ms();
    let l_human = support::seed_list(&db, "human", 4, 100, &[zone], now).await;
    let l_machine = support::seed_list(&db, "machine", 2, 200, &[zone], now).await;
    let l_busy = support::seed_list(&db, "busy", 8, 300, &[zone], now).await;
    let l_noans = support::seed_list(&db, "noans", 1, 400, &[zone], now).await;

    let base = |list: i64, mode: DialMode, port: u16| {
        let mut c = support::config(&[(list, 1)], mode, &format!("sip:127.0.0.1:{port}"));
        c.safe_harbor.prompt = prompt.clone();
        c.compliance.max_attempts_per_lead = 1;
        c
    };
    let mut specs = Vec::new();
    let c = base(l_human, DialMode::Progressive, human.port);
    specs.push(("human", c));
    let mut c = base(l_machine, DialMode::Agentless, machine.port);
    c.purpose = Purpose::Informational;
    c.amd = AmdPolicy::LeaveMessage;
    c.voicemail_prompt = Some(prompt.clone());
    c.agentless_prompt = Some(prompt.clone());
    specs.push(("machine", c));
    let mut c = base(l_busy, DialMode::Agentless, busy.port);
    c.purpose = Purpose::Informational;
    c.agentless_prompt = Some(prompt.clone());
    c.trunk.cps = 2;
    specs.push(("busy", c));
    let mut c = base(l_noans, DialMode::Agentless, noans.port);
    c.purpose = Purpose::Informational;
    c.agentless_prompt = Some(prompt.clone());
    specs.push(("noans", c));
    let mut ids = BTreeMap::new();
    for (name, cfg) in &specs {
        let c = campaign::create(&db, clock.as_ref(), name, cfg)
            .await
            .unwrap();
        campaign::apply(&db, clock.as_ref(), c.id, Action::Start)
            .await
            .unwrap();
        ids.insert(*name, c.id);
    }

    let handle = runner::start(
        db.clone(),
        clock.clone(),
        calls.clone(),
        agents.clone(),
        RunnerConfig::new("node-a"),
    )
    .await
    .unwrap();
    let total = 4 + 2 + 8 + 1;
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    loop {
        let mut done = 0;
        for id in ids.values() {
            done += hopper::counts(&db, *id, clock.now_ms()).await.unwrap().done;
        }
        if done == total || std::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let stats = handle.stop(Duration::from_secs(10)).await;
    eprintln!("runner stats: {stats:?}");

    // One final attempt per lead, outcome by customer kind.
    let rows = sqlx::query(
        "SELECT c.name, a.outcome, a.state, a.detail, a.amd, a.agent, a.live, a.abandoned FROM dial_attempts a JOIN campaigns c ON c.id = a.campaign_id ORDER BY a.id",
    )
    .fetch_all(db.pool())
    .await
    .unwrap();
    type Row4 = (String, Option<String>, Option<String>, Option<String>);
    let mut by: BTreeMap<String, Vec<Row4>> = BTreeMap::new();
    for r in &rows {
        assert_eq!(r.get::<String, _>("state"), "final");
        by.entry(r.get("name")).or_default().push((
            r.get::<Option<String>, _>("outcome").unwrap(),
            r.get("detail"),
            r.get("amd"),
            r.get("agent"),
        ));
    }
    eprintln!("attempts: {by:#?}");
    assert_eq!(rows.len(), total as usize, "one attempt per lead");
    assert!(
        by["human"].iter().all(|(o, _, amd, agent)| o == "connected"
            && amd.as_deref() == Some("human")
            && agent.is_some()),
        "{:?}",
        by["human"]
    );
    assert!(
        by["machine"].iter().all(|(o, d, amd, _)| o == "machine"
            && amd.as_deref() == Some("machine")
            && d.as_deref() == Some("message left after the beep")),
        "{:?}",
        by["machine"]
    );
    // The AMD listened again after the machine verdict: a real machine (greeting, beep) is not
    // taken for a person.
    let false_machines: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM dial_attempts WHERE live_person_after_machine = 1",
    )
    .fetch_one(db.pool())
    .await
    .unwrap();
    assert_eq!(false_machines, 0);
    assert!(
        by["busy"].iter().all(|(o, ..)| o == "busy"),
        "{:?}",
        by["busy"]
    );
    assert!(
        by["noans"].iter().all(|(o, ..)| o == "no_answer"),
        "{:?}",
        by["noans"]
    );

    // CPS: no one-second span holds more INVITEs than the trunk allows.
    assert!(stats.max_dials_per_second[&ids["busy"]] <= 2, "{stats:?}");
    assert!(
        stats.max_dials_per_second.values().all(|n| *n <= 5),
        "{stats:?}"
    );
    // Greeting end → agent bridge.
    assert_eq!(stats.bridge_latency_us.len(), 4);
    let p99 = stats.latency_percentile(99.0).unwrap();
    println!(
        "greeting end -> agent bridge: p50 {} us, p99 {p99} us over {} calls (including the AMD's {} ms after-greeting silence)",
        stats.latency_percentile(50.0).unwrap(),
        stats.bridge_latency_us.len(),
        telephony::media::amd::AmdConfig::default().after_greeting_silence_ms
    );
    assert!(p99 < 500_000, "p99 {p99} us");

    drop((human, machine, busy, noans, agents_uas));
    lifecycle.start_draining();
}

/// Preview mode and programmatic single calls against sipp: the card's number is dialled and
/// bridged to the previewing agent; a single call to a DNC number, or outside its window, is
/// blocked with the reason; an allowed one gets a contact id and a final record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preview_and_single_calls() {
    use chrono::Timelike;
    use dialer::single::{self, CallError, Dialer, SingleCall};
    for (tool, pkg) in [
        ("sipp", "sip-tester"),
        ("espeak-ng", "espeak-ng"),
        ("sox", "sox"),
    ] {
        if !foundation::testing::require_tool(tool, pkg) {
            return;
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir: PathBuf = tmp.path().to_owned();
    audio(&dir);
    let human = sipp_uas(&dir, "human", &answer_xml(Some(&dir.join("human.ulaw"))));
    let agents_uas = sipp_uas(&dir, "agents", &answer_xml(None));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let config = telephony::Config {
        udp: "127.0.0.1:0".parse().unwrap(),
        tcp: "127.0.0.1:0".parse().unwrap(),
        advertised_address: Some("127.0.0.1".into()),
        rtp_ports: (33000, 33399),
        max_message_bytes: 8192,
    };
    let lifecycle = Lifecycle::new();
    let sip = listener::start_with(&config, SipOptions::default(), lifecycle.clone())
        .await
        .unwrap();
    let cc = ControlConfig {
        media_ip: "127.0.0.1".parse().unwrap(),
        inactivity_timeout: None,
        inband_dtmf: true,
        jitter_depth: 3,
    };
    let (calls, _incoming) = Calls::start(sip.handle.clone(), cc);
    let mut call = calls.originate(Originate {
        to_user: "agent0".into(),
        trunks: vec![runner::trunk(&format!("sip:127.0.0.1:{}", agents_uas.port)).unwrap()],
        ..Originate::default()
    });
    loop {
        if let Event::Answered { .. } =
            tokio::time::timeout(Duration::from_secs(10), call.next_event())
                .await
                .unwrap()
                .unwrap()
        {
            break;
        }
    }
    let leg = call.control().clone();
    tokio::spawn(async move { while call.next_event().await.is_some() {} });
    let agents = Arc::new(TestAgents {
        legs: Arc::new(Mutex::new(vec![("agent0".into(), leg, false)])),
        talk: Duration::from_millis(800),
    });

    let db = support::sqlite(&dir).await;
    let clock: foundation::SharedClock = Arc::new(SystemClock);
    let d = Dialer {
        db: db.clone(),
        clock: clock.clone(),
        calls: calls.clone(),
        agents: agents.clone(),
        flows: None,
        node: "node-p".into(),
    };
    let list = support::seed_list(&db, "preview", 2, 600, &[open_zone()], clock.now_ms()).await;
    let mut cfg = support::config(
        &[(list, 1)],
        DialMode::Preview,
        &format!("sip:127.0.0.1:{}", human.port),
    );
    cfg.safe_harbor.prompt = dir.join("prompt.wav").display().to_string();
    let c = campaign::create(&db, clock.as_ref(), "preview", &cfg)
        .await
        .unwrap();
    campaign::apply(&db, clock.as_ref(), c.id, Action::Start)
        .await
        .unwrap();

    // Preview: skip the first card, dial the second.
    let first = single::preview_next(&d, c.id, "agent0")
        .await
        .unwrap()
        .expect("a card");
    assert!(
        first.allowed_reason.contains("window"),
        "{}",
        first.allowed_reason
    );
    single::preview_skip(&d, &first, "agent0", 3600)
        .await
        .unwrap();
    let second = single::preview_next(&d, c.id, "agent0")
        .await
        .unwrap()
        .expect("a second card");
    assert_ne!(second.lead.lead_id, first.lead.lead_id);
    assert!(
        single::preview_next(&d, c.id, "agent0")
            .await
            .unwrap()
            .is_none(),
        "nothing else due"
    );
    let placed = single::preview_dial(&d, &second, "agent0").await.unwrap();
    let wait_final = |contact: String| {
        let db = db.clone();
        async move {
            for _ in 0..100 {
                let row = sqlx::query("SELECT outcome, agent FROM dial_attempts WHERE public_id = $1 AND state = 'final'")
                    .bind(&contact)
                    .fetch_optional(db.pool())
                    .await
                    .unwrap();
                if let Some(r) = row {
                    return (
                        r.get::<String, _>("outcome"),
                        r.get::<Option<String>, _>("agent"),
                    );
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            panic!("no final record for {contact}");
        }
    };
    assert_eq!(
        wait_final(placed.contact_id.clone()).await,
        ("connected".to_owned(), Some("agent0".to_owned()))
    );

    // Preview auto-dial on the server (a 1 s countdown), with no browser: card A is left alone
    // and dialled once, to its agent, whose Dial (and Skip) afterwards is refused; card B is
    // skipped in time and never dialled; card C's agent is not logged in when its countdown
    // ends, so its lead is given back undialled.
    let auto_list =
        support::seed_list(&db, "preview-auto", 3, 700, &[open_zone()], clock.now_ms()).await;
    let mut auto_cfg = support::config(
        &[(auto_list, 1)],
        DialMode::Preview,
        &format!("sip:127.0.0.1:{}", human.port),
    );
    auto_cfg.safe_harbor.prompt = dir.join("prompt.wav").display().to_string();
    auto_cfg.preview_auto_dial_s = Some(1);
    let auto = campaign::create(&db, clock.as_ref(), "preview-auto", &auto_cfg)
        .await
        .unwrap();
    campaign::apply(&db, clock.as_ref(), auto.id, Action::Start)
        .await
        .unwrap();
    let mut cards = Vec::new();
    for agent in ["agent0", "agent0", "agent9"] {
        let card = single::preview_next(&d, auto.id, agent)
            .await
            .unwrap()
            .expect("a card");
        assert_eq!(card.auto_dial_s, Some(1));
        cards.push(card);
    }
    let [a, b, c3] = [&cards[0], &cards[1], &cards[2]];
    single::preview_skip(&d, b, "agent0", 3600).await.unwrap();
    let attempts_of = |lead: i64| {
        let db = db.clone();
        async move {
            sqlx::query(
                "SELECT public_id FROM dial_attempts WHERE campaign_id = $1 AND lead_id = $2",
            )
            .bind(auto.id)
            .bind(lead)
            .fetch_all(db.pool())
            .await
            .unwrap()
            .iter()
            .map(|r| r.get::<String, _>("public_id"))
            .collect::<Vec<_>>()
        }
    };
    let mut auto_contact = None;
    for _ in 0..50 {
        let got = attempts_of(a.lead.lead_id).await;
        if !got.is_empty() {
            auto_contact = Some(got);
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let auto_contact =
        auto_contact.expect("card A dialled by the server at the end of its countdown");
    assert_eq!(auto_contact.len(), 1, "{auto_contact:?}");
    match single::preview_dial(&d, a, "agent0").await {
        Err(CallError::Blocked { code, .. }) => assert_eq!(code, "not_held"),
        other => panic!(
            "the agent's Dial after the auto-dial: {:?}",
            other.map(|p| p.contact_id)
        ),
    }
    assert!(matches!(
        single::preview_skip(&d, a, "agent0", 60).await,
        Err(CallError::Blocked { code, .. }) if code == "not_held"
    ));
    assert_eq!(
        wait_final(auto_contact[0].clone()).await,
        ("connected".to_owned(), Some("agent0".to_owned()))
    );
    assert_eq!(attempts_of(a.lead.lead_id).await.len(), 1, "dialled once");
    let lead_row = |lead: i64| {
        let db = db.clone();
        async move {
            let r = sqlx::query("SELECT state, last_reason FROM campaign_leads WHERE campaign_id = $1 AND lead_id = $2")
                .bind(auto.id)
                .bind(lead)
                .fetch_one(db.pool())
                .await
                .unwrap();
            (
                r.get::<String, _>("state"),
                r.get::<Option<String>, _>("last_reason")
                    .unwrap_or_default(),
            )
        }
    };
    assert!(
        attempts_of(b.lead.lead_id).await.is_empty(),
        "skipped card dialled"
    );
    assert_eq!(
        lead_row(b.lead.lead_id).await,
        ("ready".to_owned(), "skipped by agent0".to_owned())
    );
    assert!(
        attempts_of(c3.lead.lead_id).await.is_empty(),
        "card of a logged-out agent dialled"
    );
    let (state, reason) = lead_row(c3.lead.lead_id).await;
    assert_eq!(state, "ready");
    assert!(reason.contains("agent9 logged out"), "{reason}");
    assert!(matches!(
        single::preview_dial(&d, c3, "agent9").await,
        Err(CallError::Blocked { code, .. }) if code == "not_held"
    ));

    // Single calls: window and DNC are checked like campaign dials.
    let ny_hour = chrono::Utc::now()
        .with_timezone(&chrono_tz::America::New_York)
        .hour();
    let mut defaults = support::config(
        &[(list, 1)],
        DialMode::Predictive,
        &format!("sip:127.0.0.1:{}", human.port),
    );
    defaults.purpose = Purpose::Informational;
    defaults.safe_harbor.prompt = dir.join("prompt.wav").display().to_string();
    let t = |h: u32, m: u32| chrono::NaiveTime::from_hms_opt(h, m, 0).unwrap();
    let (open, closed) = if ny_hour < 12 {
        ((t(0, 0), t(23, 59)), (t(12, 0), t(23, 59)))
    } else {
        ((t(0, 0), t(23, 59)), (t(0, 0), t(11, 0)))
    };
    let req = SingleCall {
        to: "(212) 555-0177".into(),
        queue: Some("sales".into()),
        ..SingleCall::default()
    };
    defaults.compliance.window.start = closed.0;
    defaults.compliance.window.end = closed.1;
    match single::single_call(&d, &req, Some(&defaults), "US").await {
        Err(CallError::Blocked { code, reason }) => assert!(
            code == "window" && reason.contains("America/New_York"),
            "{code}: {reason}"
        ),
        other => panic!(
            "expected a window block, got {:?}",
            other.map(|p| p.contact_id)
        ),
    }
    defaults.compliance.window.start = open.0;
    defaults.compliance.window.end = open.1;
    importers::dnc::add_internal(
        &db,
        clock.as_ref(),
        "+12125550188",
        "US",
        "asked",
        "api",
        None,
    )
    .await
    .unwrap();
    let dnc = SingleCall {
        to: "+1 212 555 0188".into(),
        ..req.clone()
    };
    assert!(
        matches!(single::single_call(&d, &dnc, Some(&defaults), "US").await, Err(CallError::Blocked { code, .. }) if code == "dnc")
    );
    assert!(matches!(
        single::single_call(
            &d,
            &SingleCall {
                to: "12".into(),
                ..req.clone()
            },
            Some(&defaults),
            "US"
        )
        .await,
        Err(CallError::Invalid(_))
    ));
    // The agent's leg frees up shortly after the preview call ended.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let ok = single::single_call(&d, &req, Some(&defaults), "US")
        .await
        .unwrap();
    assert!(ok.contact_id.starts_with("contact_"));
    assert_eq!(
        wait_final(ok.contact_id).await,
        ("connected".to_owned(), Some("agent0".to_owned()))
    );
    drop((human, agents_uas));
    lifecycle.start_draining();
}

/// No agent takes a live answer: the call is abandoned, the safe-harbor message plays and counts;
/// the customer presses the opt-out key during it (in-band DTMF) and the number goes on the
/// internal DNC list at once; another campaign on the same list never dials it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_call_plays_safe_harbor_and_opt_out_is_honoured() {
    for (tool, pkg) in [
        ("sipp", "sip-tester"),
        ("espeak-ng", "espeak-ng"),
        ("sox", "sox"),
    ] {
        if !foundation::testing::require_tool(tool, pkg) {
            return;
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir: PathBuf = tmp.path().to_owned();
    audio(&dir);
    // "Hello?", 3 s of silence, then the opt-out key 9 in band (852 + 1477 Hz), then silence.
    sh(
        &dir,
        "sox",
        &[
            "-n", "-r", "8000", "-c", "1", "-e", "signed", "-b", "16", "sil3.wav", "trim", "0", "3",
        ],
    );
    sh(
        &dir,
        "sox",
        &[
            "-n",
            "-r",
            "8000",
            "-c",
            "1",
            "-e",
            "signed",
            "-b",
            "16",
            "dtmf9.wav",
            "synth",
            "0.25",
            "sine",
            "852",
            "sine",
            "1477",
            "remix",
            "1,2",
            "vol",
            "0.5",
        ],
    );
    sh(
        &dir,
        "sox",
        &[
            "hello16.wav",
            "sil3.wav",
            "dtmf9.wav",
            "sil20.wav",
            "-t",
            "ul",
            "optout.ulaw",
        ],
    );
    let customer = sipp_uas(&dir, "optout", &answer_xml(Some(&dir.join("optout.ulaw"))));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let config = telephony::Config {
        udp: "127.0.0.1:0".parse().unwrap(),
        tcp: "127.0.0.1:0".parse().unwrap(),
        advertised_address: Some("127.0.0.1".into()),
        rtp_ports: (34000, 34399),
        max_message_bytes: 8192,
    };
    let lifecycle = Lifecycle::new();
    let sip = listener::start_with(&config, SipOptions::default(), lifecycle.clone())
        .await
        .unwrap();
    let cc = ControlConfig {
        media_ip: "127.0.0.1".parse().unwrap(),
        inactivity_timeout: None,
        inband_dtmf: true,
        jitter_depth: 3,
    };
    let (calls, _incoming) = Calls::start(sip.handle.clone(), cc);

    /// Shows one ready agent whose leg cannot take the call.
    struct DeadAgent;
    impl AgentPort for DeadAgent {
        fn snapshot(&self, _queue: &str) -> Vec<AgentView> {
            vec![AgentView {
                id: "ghost".into(),
                state: AgentState::Ready,
            }]
        }
        fn connect(
            &self,
            _q: &str,
            _c: CallControl,
            _a: BTreeMap<String, String>,
        ) -> BoxFuture<'static, Result<String, NoAgent>> {
            Box::pin(async { Err(NoAgent("the agent's leg is gone".into())) })
        }
    }

    let db = support::sqlite(&dir).await;
    let clock: foundation::SharedClock = Arc::new(SystemClock);
    let list = support::seed_list(&db, "one", 1, 700, &[open_zone()], clock.now_ms()).await;
    let mut cfg = support::config(
        &[(list, 1)],
        DialMode::Progressive,
        &format!("sip:127.0.0.1:{}", customer.port),
    );
    cfg.safe_harbor.prompt = dir.join("prompt.wav").display().to_string();
    let c = campaign::create(&db, clock.as_ref(), "abandon", &cfg)
        .await
        .unwrap();
    campaign::apply(&db, clock.as_ref(), c.id, Action::Start)
        .await
        .unwrap();
    let handle = runner::start(
        db.clone(),
        clock.clone(),
        calls.clone(),
        Arc::new(DeadAgent),
        RunnerConfig::new("node-o"),
    )
    .await
    .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(40);
    while hopper::counts(&db, c.id, clock.now_ms())
        .await
        .unwrap()
        .done
        < 1
    {
        assert!(std::time::Instant::now() < deadline, "the call did not end");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let r = sqlx::query("SELECT e164, outcome, live, abandoned FROM dial_attempts")
        .fetch_one(db.pool())
        .await
        .unwrap();
    let e164: String = r.get("e164");
    assert_eq!(r.get::<String, _>("outcome"), "dnc");
    assert_eq!(
        (r.get::<i16, _>("live"), r.get::<i16, _>("abandoned")),
        (1, 1),
        "an abandoned live answer counts"
    );
    let source: String = sqlx::query_scalar("SELECT source FROM dnc_entries WHERE e164 = $1")
        .bind(&e164)
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(source, "opt_out");
    let ab = dialer::attempts::abandon_count(&db, c.id, 0).await.unwrap();
    assert_eq!((ab.live, ab.abandoned), (1, 1));

    // A second campaign on the same list: the number is never dialled again.
    let mut cfg2 = cfg.clone();
    cfg2.mode = DialMode::Agentless;
    cfg2.purpose = Purpose::Informational;
    cfg2.agentless_prompt = Some(dir.join("prompt.wav").display().to_string());
    let c2 = campaign::create(&db, clock.as_ref(), "again", &cfg2)
        .await
        .unwrap();
    campaign::apply(&db, clock.as_ref(), c2.id, Action::Start)
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while hopper::counts(&db, c2.id, clock.now_ms())
        .await
        .unwrap()
        .done
        < 1
    {
        assert!(
            std::time::Instant::now() < deadline,
            "second campaign did not settle the lead"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let stats = handle.stop(Duration::from_secs(5)).await;
    let attempts: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM dial_attempts")
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(attempts, 1, "the opted-out number was not dialled again");
    let reason: String =
        sqlx::query_scalar("SELECT last_reason FROM campaign_leads WHERE campaign_id = $1")
            .bind(c2.id)
            .fetch_one(db.pool())
            .await
            .unwrap();
    assert!(reason.contains("do-not-call"), "{reason}");
    assert_eq!(stats.blocked.get("undialable"), Some(&1), "{stats:?}");
    drop(customer);
    lifecycle.start_draining();
}

/// Starts the SIP layer and call control for a test on its own RTP port range.
async fn call_control(rtp: (u16, u16)) -> (Calls, Lifecycle) {
    let config = telephony::Config {
        udp: "127.0.0.1:0".parse().unwrap(),
        tcp: "127.0.0.1:0".parse().unwrap(),
        advertised_address: Some("127.0.0.1".into()),
        rtp_ports: rtp,
        max_message_bytes: 8192,
    };
    let lifecycle = Lifecycle::new();
    let sip = listener::start_with(&config, SipOptions::default(), lifecycle.clone())
        .await
        .unwrap();
    let cc = ControlConfig {
        media_ip: "127.0.0.1".parse().unwrap(),
        inactivity_timeout: None,
        inband_dtmf: true,
        jitter_depth: 3,
    };
    let (calls, _incoming) = Calls::start(sip.handle.clone(), cc);
    (calls, lifecycle)
}

/// Issue #7: "an AMD 'machine' verdict on a live person counts as abandoned too". A person says
/// "Hello?", waits, says "Hello?" again; the AMD (greeting limit tuned to 200 ms) calls it a
/// machine. With the leave-message policy the AMD listens again: a short reply and a pause, and
/// no beep after it, is a live person — the attempt is recorded `live_person_after_machine`,
/// counts as abandoned (the person hears the safe-harbor message), and the campaign's
/// abandonment count includes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amd_machine_verdict_on_a_person_counts_as_abandoned() {
    for (tool, pkg) in [
        ("sipp", "sip-tester"),
        ("espeak-ng", "espeak-ng"),
        ("sox", "sox"),
    ] {
        if !foundation::testing::require_tool(tool, pkg) {
            return;
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir: PathBuf = tmp.path().to_owned();
    audio(&dir);
    sh(
        &dir,
        "sox",
        &[
            "-n",
            "-r",
            "8000",
            "-c",
            "1",
            "-e",
            "signed",
            "-b",
            "16",
            "sil15.wav",
            "trim",
            "0",
            "1.5",
        ],
    );
    sh(
        &dir,
        "sox",
        &[
            "hello16.wav",
            "sil15.wav",
            "hello16.wav",
            "sil20.wav",
            "-t",
            "ul",
            "hello_hello.ulaw",
        ],
    );
    // Another person says "Hello?" and then presses the opt-out key 9 (in band) while the
    // dialer waits for a beep: machines do not press keys.
    sh(
        &dir,
        "sox",
        &[
            "-n",
            "-r",
            "8000",
            "-c",
            "1",
            "-e",
            "signed",
            "-b",
            "16",
            "dtmf9.wav",
            "synth",
            "0.25",
            "sine",
            "852",
            "sine",
            "1477",
            "remix",
            "1,2",
            "vol",
            "0.5",
        ],
    );
    sh(
        &dir,
        "sox",
        &[
            "hello16.wav",
            "sil15.wav",
            "dtmf9.wav",
            "sil20.wav",
            "-t",
            "ul",
            "hello_key.ulaw",
        ],
    );
    let person = sipp_uas(
        &dir,
        "person",
        &answer_xml(Some(&dir.join("hello_hello.ulaw"))),
    );
    let keypress = sipp_uas(
        &dir,
        "keypress",
        &answer_xml(Some(&dir.join("hello_key.ulaw"))),
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (calls, lifecycle) = call_control((36000, 36399)).await;

    let db = support::sqlite(&dir).await;
    let clock: foundation::SharedClock = Arc::new(SystemClock);
    let list = support::seed_list(&db, "people", 1, 900, &[open_zone()], clock.now_ms()).await;
    let prompt = dir.join("prompt.wav").display().to_string();
    let mut cfg = support::config(
        &[(list, 1)],
        DialMode::Agentless,
        &format!("sip:127.0.0.1:{}", person.port),
    );
    cfg.purpose = Purpose::Informational;
    cfg.amd = AmdPolicy::LeaveMessage;
    cfg.voicemail_prompt = Some(prompt.clone());
    cfg.agentless_prompt = Some(prompt.clone());
    cfg.safe_harbor.prompt = prompt.clone();
    cfg.compliance.max_attempts_per_lead = 1;
    let c = campaign::create(&db, clock.as_ref(), "false machine", &cfg)
        .await
        .unwrap();
    campaign::apply(&db, clock.as_ref(), c.id, Action::Start)
        .await
        .unwrap();
    let list_k = support::seed_list(&db, "keys", 1, 950, &[open_zone()], clock.now_ms()).await;
    let mut cfg_k = cfg.clone();
    cfg_k.lists[0].list_id = list_k;
    cfg_k.trunk.uri = format!("sip:127.0.0.1:{}", keypress.port);
    let ck = campaign::create(&db, clock.as_ref(), "false machine key", &cfg_k)
        .await
        .unwrap();
    campaign::apply(&db, clock.as_ref(), ck.id, Action::Start)
        .await
        .unwrap();
    let mut rc = RunnerConfig::new("node-fm");
    // Short thresholds: a plain "Hello?" is a "long greeting" (machine).
    rc.amd.max_greeting_ms = 200;
    let handle = runner::start(
        db.clone(),
        clock.clone(),
        calls.clone(),
        Arc::new(TestAgents {
            legs: Arc::default(),
            talk: Duration::from_secs(1),
        }),
        rc,
    )
    .await
    .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while hopper::counts(&db, c.id, clock.now_ms())
        .await
        .unwrap()
        .done
        + hopper::counts(&db, ck.id, clock.now_ms())
            .await
            .unwrap()
            .done
        < 2
    {
        assert!(std::time::Instant::now() < deadline, "the call did not end");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    handle.stop(Duration::from_secs(5)).await;
    let r = sqlx::query(
        "SELECT outcome, amd, detail, live, abandoned, live_person_after_machine, evidence FROM dial_attempts WHERE campaign_id = $1",
    )
    .bind(c.id)
    .fetch_one(db.pool())
    .await
    .unwrap();
    let evidence: Option<String> = r.get("evidence");
    eprintln!(
        "attempt: {:?} amd {:?} detail {:?} evidence {evidence:?}",
        r.get::<Option<String>, _>("outcome"),
        r.get::<Option<String>, _>("amd"),
        r.get::<Option<String>, _>("detail")
    );
    assert_eq!(
        r.get::<Option<String>, _>("amd").as_deref(),
        Some("machine")
    );
    assert_eq!(
        r.get::<Option<String>, _>("outcome").as_deref(),
        Some("abandoned")
    );
    assert_eq!(
        (
            r.get::<i16, _>("live"),
            r.get::<i16, _>("abandoned"),
            r.get::<i16, _>("live_person_after_machine")
        ),
        (1, 1, 1)
    );
    assert!(
        evidence.as_deref().is_some_and(|e| e.contains("reply")),
        "{evidence:?}"
    );
    let ab = dialer::attempts::abandon_count(&db, c.id, 0).await.unwrap();
    assert_eq!((ab.live, ab.abandoned), (1, 1));

    // The key: a live person (counted abandoned), and the opt-out is honoured.
    let r = sqlx::query(
        "SELECT e164, outcome, amd, live, abandoned, live_person_after_machine, evidence FROM dial_attempts WHERE campaign_id = $1",
    )
    .bind(ck.id)
    .fetch_one(db.pool())
    .await
    .unwrap();
    let evidence: Option<String> = r.get("evidence");
    eprintln!(
        "key attempt: {:?} evidence {evidence:?}",
        r.get::<Option<String>, _>("outcome")
    );
    assert_eq!(
        r.get::<Option<String>, _>("amd").as_deref(),
        Some("machine")
    );
    assert_eq!(
        r.get::<Option<String>, _>("outcome").as_deref(),
        Some("dnc")
    );
    assert_eq!(
        (
            r.get::<i16, _>("live"),
            r.get::<i16, _>("abandoned"),
            r.get::<i16, _>("live_person_after_machine")
        ),
        (1, 1, 1)
    );
    assert!(
        evidence.as_deref().is_some_and(|e| e.contains("key 9")),
        "{evidence:?}"
    );
    let dnc: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM dnc_entries WHERE e164 = $1")
        .bind(r.get::<String, _>("e164"))
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(dnc, 1);
    drop((person, keypress));
    lifecycle.start_draining();
}

/// At or over the abandonment cap a predictive campaign falls back to progressive dialling:
/// with 1 abandoned call in 4 live answers (25 %, over the 3 % cap) and two ready agents it
/// still dials — exactly one line per ready agent, never more while over the cap — and every
/// call reaches an agent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_cap_predictive_dials_one_line_per_ready_agent() {
    for (tool, pkg) in [
        ("sipp", "sip-tester"),
        ("espeak-ng", "espeak-ng"),
        ("sox", "sox"),
    ] {
        if !foundation::testing::require_tool(tool, pkg) {
            return;
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir: PathBuf = tmp.path().to_owned();
    audio(&dir);
    let human = sipp_uas(&dir, "human", &answer_xml(Some(&dir.join("human.ulaw"))));
    let agents_uas = sipp_uas(&dir, "agents", &answer_xml(None));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (calls, lifecycle) = call_control((37000, 37399)).await;
    let mut legs = Vec::new();
    for i in 0..2 {
        let mut call = calls.originate(Originate {
            to_user: format!("agent{i}"),
            trunks: vec![runner::trunk(&format!("sip:127.0.0.1:{}", agents_uas.port)).unwrap()],
            ..Originate::default()
        });
        loop {
            match tokio::time::timeout(Duration::from_secs(10), call.next_event())
                .await
                .expect("agent leg answers")
                .expect("alive")
            {
                Event::Answered { .. } => break,
                Event::Hangup { .. } => panic!("agent leg failed"),
                _ => {}
            }
        }
        let control = call.control().clone();
        tokio::spawn(async move { while call.next_event().await.is_some() {} });
        legs.push((format!("agent{i}"), control, false));
    }
    let agents = Arc::new(TestAgents {
        legs: Arc::new(Mutex::new(legs)),
        talk: Duration::from_millis(1500),
    });

    let db = support::sqlite(&dir).await;
    let clock: foundation::SharedClock = Arc::new(SystemClock);
    let leads = 8;
    let list = support::seed_list(&db, "cap", leads, 1000, &[open_zone()], clock.now_ms()).await;
    let mut cfg = support::config(
        &[(list, 1)],
        DialMode::Predictive,
        &format!("sip:127.0.0.1:{}", human.port),
    );
    cfg.purpose = Purpose::Informational;
    cfg.safe_harbor.prompt = dir.join("prompt.wav").display().to_string();
    cfg.compliance.max_attempts_per_lead = 1;
    let c = campaign::create(&db, clock.as_ref(), "over cap", &cfg)
        .await
        .unwrap();
    campaign::apply(&db, clock.as_ref(), c.id, Action::Start)
        .await
        .unwrap();
    // History: 4 live answers, 1 abandoned (25 %).
    let now = clock.now_ms();
    for i in 0..4 {
        sqlx::query(
            "INSERT INTO dial_attempts (public_id, campaign_id, e164, caller_id, node, state, allowed_reason, outcome, live, abandoned, created_at, ended_at) \
             VALUES ($1, $2, $3, '15550001000', 'earlier', 'final', 'history', $4, 1, $5, $6, $6)",
        )
        .bind(format!("contact_history{i}"))
        .bind(c.id)
        .bind(format!("+1212555{:04}", 9000 + i))
        .bind(if i == 0 { "abandoned" } else { "connected" })
        .bind((i == 0) as i16)
        .bind(now)
        .execute(db.pool())
        .await
        .unwrap();
    }
    let ab = dialer::attempts::abandon_count(&db, c.id, 0).await.unwrap();
    assert_eq!((ab.live, ab.abandoned), (4, 1));

    let handle = runner::start(
        db.clone(),
        clock.clone(),
        calls.clone(),
        agents.clone(),
        RunnerConfig::new("node-cap"),
    )
    .await
    .unwrap();
    // Sample the calls up (open attempts) while the campaign runs.
    let mut max_open = 0i64;
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    loop {
        let open: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM dial_attempts WHERE campaign_id = $1 AND state <> 'final'",
        )
        .bind(c.id)
        .fetch_one(db.pool())
        .await
        .unwrap();
        max_open = max_open.max(open);
        if hopper::counts(&db, c.id, clock.now_ms())
            .await
            .unwrap()
            .done
            == leads as i64
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the campaign stalled over the cap"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stats = handle.stop(Duration::from_secs(10)).await;
    eprintln!("over the cap: most calls up at once {max_open}; stats {stats:?}");
    assert_eq!(max_open, 2, "one line per ready agent (2 agents)");
    let rows = sqlx::query(
        "SELECT outcome, agent, allowed_reason FROM dial_attempts WHERE campaign_id = $1 AND node = 'node-cap'",
    )
    .bind(c.id)
    .fetch_all(db.pool())
    .await
    .unwrap();
    assert_eq!(rows.len(), leads, "every lead dialled once");
    for r in &rows {
        assert_eq!(
            r.get::<Option<String>, _>("outcome").as_deref(),
            Some("connected")
        );
        assert!(r.get::<Option<String>, _>("agent").is_some());
        assert!(
            r.get::<String, _>("allowed_reason")
                .contains("agent reserved"),
            "{}",
            r.get::<String, _>("allowed_reason")
        );
    }
    let ab = dialer::attempts::abandon_count(&db, c.id, 0).await.unwrap();
    assert_eq!(
        (ab.live, ab.abandoned),
        (4 + leads as u64, 1),
        "no new abandon"
    );
    drop((human, agents_uas));
    lifecycle.start_draining();
}
