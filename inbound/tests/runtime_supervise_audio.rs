//! Supervisor listen / whisper / barge through the runtime, checked by what each party hears:
//! a sipp caller (the customer, streaming a 500 Hz tone) reaches a queue by a flow and is
//! connected to a nailed-up agent (a sipp phone streaming 800 Hz); `Runtime::supervise` calls
//! the supervisor's phone (a sipp phone streaming 1300 Hz) into the contact and changes its
//! role. Each sipp's SDP points at a capture socket of the test, so the audio the appliance
//! sends each party is measured per 20 ms frame with the Goertzel detector (the helpers of
//! `telephony/tests/control_room.rs`):
//! - listen: the supervisor hears customer and agent; neither hears the supervisor;
//! - whisper: the agent hears the supervisor, the customer does not;
//! - barge: customer and agent both hear the supervisor.

#[path = "../../telephony/tests/control_support/mod.rs"]
mod control_support;
mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use control_support::{Capture, End, Rtp, Uac, spawn_sipp, uas_xml, write_raw};
use inbound::runtime::{AgentEndpoint, AgentMode, Login, RuntimeEvent, Supervise};
use telephony::media::g711::Codec;
use telephony::media::goertzel::{Goertzel, energy};

const CUSTOMER_HZ: f64 = 500.0;
const AGENT_HZ: f64 = 800.0;
const SUPERVISOR_HZ: f64 = 1300.0;
const FREQS: [f64; 3] = [CUSTOMER_HZ, AGENT_HZ, SUPERVISOR_HZ];
const PHASE: Duration = Duration::from_millis(2000);
const QUEUE_DID: &str = "+15550006000";

const QUEUE_FLOW: &str = r#"{"Version": "2019-10-30", "StartAction": "q", "Actions": [
  {"Identifier": "q", "Type": "UpdateContactTargetQueue", "Parameters": {"QueueId": "sales"},
   "Transitions": {"NextAction": "to", "Errors": [{"NextAction": "bye", "ErrorType": "NoMatchingError"}]}},
  {"Identifier": "to", "Type": "TransferContactToQueue", "Parameters": {},
   "Transitions": {"Errors": [{"NextAction": "bye", "ErrorType": "QueueAtCapacity"}, {"NextAction": "bye", "ErrorType": "NoMatchingError"}]}},
  {"Identifier": "bye", "Type": "DisconnectParticipant", "Parameters": {}, "Transitions": {}}]}"#;

fn tone(freq: f64, ms: usize) -> Vec<i16> {
    (0..ms * 8)
        .map(|i| {
            (0.25 * 32767.0 * (2.0 * std::f64::consts::PI * freq * i as f64 / 8000.0).sin()) as i16
        })
        .collect()
}

/// A phone the appliance calls: a sipp UAS streaming `freq`, its SDP at a capture socket.
struct Phone {
    name: &'static str,
    cap: Capture,
    sipp: tokio::process::Child,
    port: u16,
}

async fn phone(dir: &Path, name: &'static str, freq: f64) -> Phone {
    let file = dir.join(format!("{name}.ulaw"));
    write_raw(&file, Codec::Pcmu, &tone(freq, 1000));
    let cap = Capture::start().await;
    let xml = format!("{name}.xml");
    std::fs::write(
        dir.join(&xml),
        uas_xml(
            &[(0, "PCMU"), (101, "telephone-event")],
            Some((&file, 0)),
            39_000,
        ),
    )
    .unwrap();
    let port = support::free_port();
    let args: Vec<String> = vec![
        "-sf".into(),
        xml,
        "-i".into(),
        "127.0.0.1".into(),
        "-mi".into(),
        "127.0.0.1".into(),
        "-m".into(),
        "1".into(),
        "-p".into(),
        port.to_string(),
        "-mp".into(),
        support::free_port().to_string(),
        "-key".into(),
        "rtpport".into(),
        cap.port.to_string(),
    ];
    Phone {
        name,
        cap,
        sipp: spawn_sipp(dir, &args),
        port,
    }
}

#[derive(Debug, Clone, Copy)]
struct Phase {
    name: &'static str,
    from: Instant,
    to: Instant,
}

async fn phase(name: &'static str) -> Phase {
    let from = Instant::now();
    tokio::time::sleep(PHASE).await;
    Phase {
        name,
        from,
        to: Instant::now(),
    }
}

/// Per frequency: the mean share of each 20 ms frame's energy (missing frames count as 0).
fn heard(pkts: &[Rtp], ph: Phase) -> Vec<(f64, f64)> {
    let from = ph.from + Duration::from_millis(400);
    let to = ph.to - Duration::from_millis(100);
    let frames: Vec<Vec<i16>> = pkts
        .iter()
        .filter(|p| p.pt == 0 && p.at >= from && p.at <= to)
        .map(|p| Codec::Pcmu.decode(&p.payload))
        .collect();
    let expected = ((to - from).as_millis() / 20) as usize;
    FREQS
        .iter()
        .map(|&f| {
            let g = Goertzel::new(f, 8000.0);
            let sum: f64 = frames.iter().map(|x| g.relative_power(x, energy(x))).sum();
            (f, sum / expected.max(frames.len()).max(1) as f64)
        })
        .collect()
}

fn assert_hears(all: &[(&str, Vec<Rtp>)], who: &str, ph: Phase, yes: &[f64], no: &[f64]) {
    let (_, pkts) = all.iter().find(|(n, _)| *n == who).expect("party");
    let h = heard(pkts, ph);
    let of = |f: f64| h.iter().find(|(x, _)| *x == f).map_or(0.0, |(_, s)| *s);
    eprintln!("{:>8} / {:<10} {h:?}", ph.name, who);
    let min = if yes.is_empty() {
        0.0
    } else {
        0.6 / yes.len() as f64
    };
    for &f in yes {
        assert!(
            of(f) >= min,
            "{}: {who} should hear {f} Hz (share {:.3} < {min:.3}): {h:?}",
            ph.name,
            of(f)
        );
    }
    for &f in no {
        assert!(
            of(f) < 0.02,
            "{}: {who} should not hear {f} Hz (share {:.3}): {h:?}",
            ph.name,
            of(f)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supervisor_audio_through_the_runtime_listen_whisper_barge() {
    if !foundation::testing::require_tool("sipp", "sip-tester") {
        return;
    }
    let sut = support::start(38_000, |_| {}).await;
    inbound::store::import_flow(&sut.db, "to-sales", QUEUE_FLOW, 1_000, "test")
        .await
        .unwrap();
    inbound::store::assign_number(&sut.db, QUEUE_DID, "to-sales", 1_000, "test")
        .await
        .unwrap();
    let dir = sut.dir.path().to_path_buf();
    let agent = phone(&dir, "agent", AGENT_HZ).await;
    let sup = phone(&dir, "supervisor", SUPERVISOR_HZ).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    sut.runtime
        .login(Login {
            agent_id: "alice".into(),
            endpoint: AgentEndpoint::Uri(format!("sip:alice@127.0.0.1:{}", agent.port)),
            mode: AgentMode::NailedUp,
            routing_profile: "all".into(),
            skills: Default::default(),
        })
        .await
        .expect("the agent's phone answers");

    // The customer calls in and is connected to alice.
    let mut events = sut.runtime.subscribe();
    let customer_file = dir.join("customer.ulaw");
    write_raw(&customer_file, Codec::Pcmu, &tone(CUSTOMER_HZ, 1000));
    let customer_cap = Capture::start().await;
    let uac = Uac {
        codecs: &[(0, "PCMU")],
        stream: Some((&customer_file, 0)),
        play_dtmf: None,
        info_digit: None,
        end: End::WaitBye(30_000),
    };
    std::fs::write(dir.join("customer.xml"), uac.xml()).unwrap();
    let customer = spawn_sipp(
        &dir,
        &[
            format!("127.0.0.1:{}", sut.sip.udp_addr.port()),
            "-sf".into(),
            "customer.xml".into(),
            "-s".into(),
            QUEUE_DID.into(),
            "-i".into(),
            "127.0.0.1".into(),
            "-mi".into(),
            "127.0.0.1".into(),
            "-m".into(),
            "1".into(),
            "-p".into(),
            support::free_port().to_string(),
            "-mp".into(),
            support::free_port().to_string(),
            "-key".into(),
            "rtpport".into(),
            customer_cap.port.to_string(),
        ],
    );
    let contact = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if let Ok(RuntimeEvent::ContactConnected { contact, agent, .. }) = events.recv().await {
                assert_eq!(agent, "alice");
                return contact;
            }
        }
    })
    .await
    .expect("the customer is connected to the agent");

    let p0 = phase("bridged").await;
    let sup_ep = AgentEndpoint::Uri(format!("sip:sup@127.0.0.1:{}", sup.port));
    sut.runtime
        .supervise(&contact, sup_ep.clone(), Supervise::Listen)
        .await
        .expect("the supervisor listens");
    let p1 = phase("listen").await;
    sut.runtime
        .supervise(&contact, sup_ep.clone(), Supervise::Whisper)
        .await
        .expect("whisper");
    let p2 = phase("whisper").await;
    sut.runtime
        .supervise(&contact, sup_ep, Supervise::Barge)
        .await
        .expect("barge");
    let p3 = phase("barge").await;

    // The agent ends the contact: the customer and the supervisor are hung up.
    sut.runtime.end_contact(&contact).await.unwrap();
    let c = control_support::wait_sipp(&dir, customer).await;
    assert_eq!(c.rc, 0, "customer: {}\n{}", c.stdout, c.errors);
    let s = control_support::wait_sipp(&dir, sup.sipp).await;
    assert_eq!(s.rc, 0, "supervisor: {}\n{}", s.stdout, s.errors);
    sut.runtime.logout("alice").await.unwrap();
    let a = control_support::wait_sipp(&dir, agent.sipp).await;
    assert_eq!(a.rc, 0, "agent: {}\n{}", a.stdout, a.errors);
    let all = vec![
        ("customer", customer_cap.finish().await),
        (agent.name, agent.cap.finish().await),
        (sup.name, sup.cap.finish().await),
    ];
    let (cu, ag, su) = (CUSTOMER_HZ, AGENT_HZ, SUPERVISOR_HZ);
    assert_hears(&all, "customer", p0, &[ag], &[cu, su]);
    assert_hears(&all, "agent", p0, &[cu], &[ag, su]);

    assert_hears(&all, "customer", p1, &[ag], &[cu, su]);
    assert_hears(&all, "agent", p1, &[cu], &[ag, su]);
    assert_hears(&all, "supervisor", p1, &[cu, ag], &[su]);

    assert_hears(&all, "customer", p2, &[ag], &[cu, su]);
    assert_hears(&all, "agent", p2, &[cu, su], &[ag]);
    assert_hears(&all, "supervisor", p2, &[cu, ag], &[su]);

    assert_hears(&all, "customer", p3, &[ag, su], &[cu]);
    assert_hears(&all, "agent", p3, &[cu, su], &[ag]);
    assert_hears(&all, "supervisor", p3, &[cu, ag], &[su]);
}
