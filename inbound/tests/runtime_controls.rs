//! Agents' call control on real calls (Debian `sip-tester`): a sipp customer calls a number whose
//! flow queues it, a nailed-up agent (a sipp callee) takes it, and the runtime's controls are
//! checked by what each party hears. Every party streams a pure tone of its own (customer
//! 500 Hz, agent alice 800 Hz, agent bob 1900 Hz, the number's callee 1300 Hz), the hold audio
//! is a 350 Hz prompt, and each party's SDP points at a capture socket of the test, measured
//! per 20 ms frame with the Goertzel detector (as `telephony/tests/control_room.rs` does):
//! - hold: the customer hears the hold tone and not the agent; the agent hears nothing;
//! - mute: the customer no longer hears the agent; the agent still hears the customer;
//! - DTMF: the keypad digits reach the customer's media address as RFC 4733 events (PT 101);
//! - consult to bob: the customer hears hold, alice and bob hear each other; cancel: back to
//!   alice; conference: each of the three hears the other two; complete: customer and bob hear
//!   each other, alice hears neither, her nailed-up leg stays up and takes the next contact;
//! - a blind transfer to a queue re-queues the contact (attributes kept) to the next agent, and
//!   a blind transfer to a number bridges the customer to a sipp callee through the trunk.
//!
//! The contact record shows every step (hold, resume, mute, consult, conference, transferred).

mod support;

#[path = "../../telephony/tests/control_support/mod.rs"]
mod control_support;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use control_support::{Capture, Rtp, uas_xml, write_raw};
use inbound::runtime::{AgentEndpoint, AgentMode, ControlRefused, Login, Runtime, Target};
use support::*;
use telephony::media::g711::Codec;
use telephony::media::goertzel::{Goertzel, energy};
use telephony::sip::call::{Transport, Trunk};

const CUSTOMER_HZ: f64 = 500.0;
const ALICE_HZ: f64 = 800.0;
const BOB_HZ: f64 = 1900.0;
const CALLEE_HZ: f64 = 1300.0;
const HOLD_HZ: f64 = 350.0;
const FREQS: [f64; 5] = [CUSTOMER_HZ, ALICE_HZ, BOB_HZ, CALLEE_HZ, HOLD_HZ];
const PHASE: Duration = Duration::from_millis(1500);
const DID2: &str = "+15550002000";

/// Straight into the `sales` queue.
const QUEUE_FLOW: &str = r#"{
  "Version": "2019-10-30", "StartAction": "q",
  "Metadata": { "name": "Straight to sales" },
  "Actions": [
    { "Identifier": "q", "Type": "UpdateContactTargetQueue", "Parameters": { "QueueId": "sales" },
      "Transitions": { "NextAction": "to-queue", "Errors": [ { "NextAction": "bye", "ErrorType": "NoMatchingError" } ] } },
    { "Identifier": "to-queue", "Type": "TransferContactToQueue", "Parameters": {},
      "Transitions": { "Errors": [
        { "NextAction": "bye", "ErrorType": "QueueAtCapacity" },
        { "NextAction": "bye", "ErrorType": "NoMatchingError" } ] } },
    { "Identifier": "bye", "Type": "DisconnectParticipant", "Parameters": {}, "Transitions": {} }
  ]
}"#;

fn has_tools() -> bool {
    foundation::testing::require_tool("sipp", "sip-tester")
}

fn tone(freq: f64, ms: usize) -> Vec<i16> {
    (0..ms * 8)
        .map(|i| {
            (0.25 * 32767.0 * (2.0 * std::f64::consts::PI * freq * i as f64 / 8000.0).sin()) as i16
        })
        .collect()
}

/// A sipp party streaming its tone, its SDP pointing at a capture socket.
struct Party {
    name: &'static str,
    cap: Capture,
    sipp: tokio::process::Child,
    port: u16,
}

fn tone_file(dir: &Path, name: &str, freq: f64) -> std::path::PathBuf {
    let file = dir.join(format!("{name}.ulaw"));
    write_raw(&file, Codec::Pcmu, &tone(freq, 1000));
    file
}

/// A callee (an agent's phone, the number's callee): answers, streams, waits for BYE.
async fn callee(dir: &Path, name: &'static str, freq: f64) -> Party {
    let file = tone_file(dir, name, freq);
    let cap = Capture::start().await;
    let xml = format!("{name}.xml");
    std::fs::write(
        dir.join(&xml),
        uas_xml(
            &[(0, "PCMU"), (101, "telephone-event")],
            Some((&file, 0)),
            170_000,
        ),
    )
    .unwrap();
    let port = free_port();
    let sipp = support::sipp(
        dir,
        &[
            "-sf".into(),
            xml,
            "-m".into(),
            "1".into(),
            "-p".into(),
            port.to_string(),
            "-mp".into(),
            free_port().to_string(),
            "-key".into(),
            "rtpport".into(),
            cap.port.to_string(),
            "-timeout".into(),
            "180s".into(),
        ],
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    Party {
        name,
        cap,
        sipp,
        port,
    }
}

/// The customer: calls `did`, offers PCMU and telephone-event/101 at the capture socket,
/// streams its tone and waits for the appliance's BYE.
async fn customer(dir: &Path, name: &'static str, sip_port: u16, did: &str) -> Party {
    let file = tone_file(dir, name, CUSTOMER_HZ);
    let cap = Capture::start().await;
    let xml = format!(
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
      a=fmtp:101 0-15

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
  <nop><action><exec rtp_stream="{file},-1,0"/></action></nop>
  <recv request="BYE" timeout="170000"/>
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
        file = file.display()
    );
    let xml_name = format!("{name}.xml");
    std::fs::write(dir.join(&xml_name), xml).unwrap();
    let port = free_port();
    let sipp = support::sipp(
        dir,
        &[
            format!("127.0.0.1:{sip_port}"),
            "-sf".into(),
            xml_name,
            "-s".into(),
            did.into(),
            "-m".into(),
            "1".into(),
            "-p".into(),
            port.to_string(),
            "-mp".into(),
            free_port().to_string(),
            "-key".into(),
            "rtpport".into(),
            cap.port.to_string(),
            "-timeout".into(),
            "180s".into(),
        ],
    );
    Party {
        name,
        cap,
        sipp,
        port,
    }
}

async fn login(rt: &Runtime, agent: &str, p: &Party, mode: AgentMode) {
    rt.login(Login {
        agent_id: agent.into(),
        endpoint: AgentEndpoint::Uri(format!("sip:{agent}@127.0.0.1:{}", p.port)),
        mode,
        routing_profile: "all".into(),
        skills: BTreeMap::new(),
    })
    .await
    .unwrap_or_else(|e| panic!("{agent} logs in: {e}"));
}

/// The contact `agent` handles, once it has one.
async fn contact_of(rt: &Runtime, agent: &str) -> String {
    let until = Instant::now() + Duration::from_secs(20);
    while Instant::now() < until {
        let view = rt.agent_snapshot(None).await.unwrap();
        if let Some(c) = view
            .iter()
            .find(|v| v.id == agent)
            .and_then(|v| v.contact.clone())
            && rt.control_state(&c).await.is_ok()
        {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{agent} got no contact");
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

/// Per frequency, the mean share of each 20 ms frame's energy (missing frames count as 0).
fn heard(pkts: &[Rtp], ph: Phase) -> Vec<(f64, f64)> {
    let from = ph.from + Duration::from_millis(300);
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

/// In `ph`, `who` heard each of `yes` (a fair share) and none of `no` (under 2 %).
fn assert_hears(all: &[(&str, Vec<Rtp>)], who: &str, ph: Phase, yes: &[f64], no: &[f64]) {
    let (_, pkts) = all.iter().find(|(n, _)| *n == who).expect("party");
    let h = heard(pkts, ph);
    let of = |f: f64| h.iter().find(|(x, _)| *x == f).map_or(0.0, |(_, s)| *s);
    eprintln!(
        "{:>14} / {:<9} {:?}",
        ph.name,
        who,
        h.iter()
            .map(|(f, s)| format!("{f}:{s:.3}"))
            .collect::<Vec<_>>()
    );
    let min = if yes.is_empty() {
        0.0
    } else {
        0.6 / yes.len() as f64
    };
    for &f in yes {
        assert!(
            of(f) >= min,
            "{}: {who} should hear {f} Hz ({:.3} < {min:.3}): {h:?}",
            ph.name,
            of(f)
        );
    }
    for &f in no {
        assert!(
            of(f) < 0.02,
            "{}: {who} should not hear {f} Hz ({:.3}): {h:?}",
            ph.name,
            of(f)
        );
    }
}

/// RFC 4733 events in the customer's capture: the digits whose end packets arrived.
fn events(pkts: &[Rtp]) -> String {
    const KEYS: &[u8] = b"0123456789*#ABCD";
    let mut out = String::new();
    let mut last_ts = None;
    for p in pkts.iter().filter(|p| p.pt == 101 && p.payload.len() >= 4) {
        let end = p.payload[1] & 0x80 != 0;
        if end && last_ts != Some(p.ts) {
            last_ts = Some(p.ts);
            if let Some(k) = KEYS.get(p.payload[0] as usize) {
                out.push(*k as char);
            }
        }
    }
    out
}

fn hold_wav(dir: &Path) {
    let prompts = dir.join("prompts");
    std::fs::create_dir_all(&prompts).unwrap();
    let wav = telephony::media::wav::encode_wav(
        telephony::media::wav::WavEncoding::Pcm16,
        &tone(HOLD_HZ, 1000),
    );
    std::fs::write(prompts.join("hold.wav"), wav).unwrap();
}

fn stages(r: &inbound::contact::ContactRecord) -> Vec<String> {
    r.stages.iter().map(|s| s.stage.clone()).collect()
}

async fn finish(p: Party) -> (&'static str, Vec<Rtp>) {
    let out = wait_sipp(p.sipp, Duration::from_secs(30)).await;
    assert_eq!(out.rc, 0, "{}: {}", p.name, out.output);
    (p.name, p.cap.finish().await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hold_mute_dtmf_consult_cancel_conference_complete_on_nailed_up_legs() {
    if !has_tools() {
        return;
    }
    let sut = support::start(41000, |cfg| {
        cfg.hold_audio = Some(inbound::interpreter::PromptSpec::Audio("hold.wav".into()));
    })
    .await;
    let dir = sut.dir.path().to_path_buf();
    hold_wav(&dir);
    inbound::store::import_flow(&sut.db, "straight", QUEUE_FLOW, 1_000, "test")
        .await
        .unwrap();
    inbound::store::assign_number(&sut.db, DID2, "straight", 1_000, "test")
        .await
        .unwrap();
    let rt = sut.runtime.clone();
    let sip_port = sut.sip.udp_addr.port();

    let alice = callee(&dir, "alice", ALICE_HZ).await;
    login(&rt, "alice", &alice, AgentMode::NailedUp).await;
    let cust = customer(&dir, "customer", sip_port, DID2).await;
    let contact = contact_of(&rt, "alice").await;
    // Bob logs in once the customer is with alice (so the queue offers it to her).
    let bob = callee(&dir, "bob", BOB_HZ).await;
    login(&rt, "bob", &bob, AgentMode::NailedUp).await;

    let talk = phase("talk").await;
    rt.hold(&contact, true).await.unwrap();
    assert!(matches!(
        rt.consult_complete(&contact).await,
        Err(ControlRefused::Conflict(_))
    ));
    let held = phase("hold").await;
    rt.hold(&contact, false).await.unwrap();
    rt.mute(&contact, true).await.unwrap();
    let muted = phase("mute").await;
    rt.mute(&contact, false).await.unwrap();
    let unmuted = phase("unmuted").await;
    assert!(matches!(
        rt.send_dtmf(&contact, "12x").await,
        Err(ControlRefused::Invalid(_))
    ));
    rt.send_dtmf(&contact, "123#").await.unwrap();
    // The digits take their time on the wire (audio frames give way to the events meanwhile).
    let _dtmf = phase("dtmf").await;

    rt.consult_start(&contact, Target::Agent("bob".into()))
        .await
        .unwrap();
    let consult = phase("consult").await;
    rt.consult_cancel(&contact).await.unwrap();
    let cancelled = phase("cancelled").await;

    rt.consult_start(&contact, Target::Queue("sales".into()))
        .await
        .expect("a consult to the queue takes its available agent, bob");
    rt.consult_conference(&contact).await.unwrap();
    let conference = phase("conference").await;
    rt.consult_cancel(&contact).await.unwrap();

    rt.consult_start(&contact, Target::Agent("bob".into()))
        .await
        .unwrap();
    rt.consult_complete(&contact).await.unwrap();
    let completed = phase("completed").await;
    let state = rt.control_state(&contact).await.unwrap();
    assert_eq!(state.agent, "bob", "{state:?}");
    let view = rt.agent_snapshot(None).await.unwrap();
    let a = view.iter().find(|v| v.id == "alice").unwrap();
    assert!(a.leg_up, "alice's nailed-up leg stays up: {a:?}");
    assert_eq!(a.contact, None, "{a:?}");

    // The next customer goes to alice, on the same leg (bob handles the transferred contact).
    let cust2 = customer(&dir, "customer2", sip_port, DID2).await;
    let contact2 = contact_of(&rt, "alice").await;
    assert_ne!(contact2, contact);
    let second = phase("second").await;
    if let Some(r) = contacts(&sut.db)
        .await
        .iter()
        .find(|r| r.contact.contact_id == contact2)
    {
        eprintln!("second contact: {:?}", stages(r));
    }

    rt.end_contact(&contact).await.unwrap();
    rt.end_contact(&contact2).await.unwrap();
    let c1 = finish(cust).await;
    let c2 = finish(cust2).await;
    rt.logout("alice").await.unwrap();
    rt.logout("bob").await.unwrap();
    let all = vec![c1, c2, finish(alice).await, finish(bob).await];

    let none: &[f64] = &[];
    assert_hears(&all, "customer", talk, &[ALICE_HZ], &[HOLD_HZ, BOB_HZ]);
    assert_hears(&all, "alice", talk, &[CUSTOMER_HZ], &[BOB_HZ]);
    assert_hears(&all, "customer", held, &[HOLD_HZ], &[ALICE_HZ]);
    assert_hears(&all, "alice", held, none, &[CUSTOMER_HZ, HOLD_HZ]);
    assert_hears(&all, "customer", muted, none, &[ALICE_HZ, HOLD_HZ]);
    assert_hears(&all, "alice", muted, &[CUSTOMER_HZ], &[]);
    assert_hears(&all, "customer", unmuted, &[ALICE_HZ], &[HOLD_HZ]);
    assert_hears(&all, "customer", consult, &[HOLD_HZ], &[ALICE_HZ, BOB_HZ]);
    assert_hears(&all, "alice", consult, &[BOB_HZ], &[CUSTOMER_HZ]);
    assert_hears(&all, "bob", consult, &[ALICE_HZ], &[CUSTOMER_HZ]);
    assert_hears(&all, "customer", cancelled, &[ALICE_HZ], &[BOB_HZ, HOLD_HZ]);
    assert_hears(&all, "bob", cancelled, none, &[ALICE_HZ, CUSTOMER_HZ]);
    assert_hears(
        &all,
        "customer",
        conference,
        &[ALICE_HZ, BOB_HZ],
        &[HOLD_HZ],
    );
    assert_hears(&all, "alice", conference, &[CUSTOMER_HZ, BOB_HZ], &[]);
    assert_hears(&all, "bob", conference, &[CUSTOMER_HZ, ALICE_HZ], &[]);
    assert_hears(&all, "customer", completed, &[BOB_HZ], &[ALICE_HZ, HOLD_HZ]);
    assert_hears(&all, "bob", completed, &[CUSTOMER_HZ], &[ALICE_HZ]);
    assert_hears(&all, "alice", completed, none, &[CUSTOMER_HZ, BOB_HZ]);
    assert_hears(&all, "customer2", second, &[ALICE_HZ], &[BOB_HZ]);
    assert_hears(&all, "alice", second, &[CUSTOMER_HZ], &[BOB_HZ]);

    let digits = events(&all[0].1);
    assert_eq!(digits, "123#", "RFC 4733 events at the customer");

    eventually("both contacts closed", Duration::from_secs(10), || async {
        let rows = contact_rows(&sut.db).await;
        rows.len() == 2 && rows.iter().all(|r| r.1.is_some())
    })
    .await;
    let recs = contacts(&sut.db).await;
    let rec = recs
        .iter()
        .find(|r| r.contact.contact_id == contact)
        .unwrap();
    let st = stages(rec);
    for s in [
        "connected",
        "hold",
        "resume",
        "mute",
        "unmute",
        "dtmf_sent",
        "consult",
        "consult_answered",
        "consult_cancelled",
        "conference",
        "transferred",
        "ended",
    ] {
        assert!(st.iter().any(|x| x == s), "stage {s} missing: {st:?}");
    }
    let t = rec
        .stages
        .iter()
        .find(|s| s.stage == "transferred")
        .unwrap();
    assert!(
        t.detail.contains("agent bob") && t.detail.contains("by alice"),
        "{t:?}"
    );
    assert!(
        rec.stages.iter().all(|s| s.at_ms > 0),
        "every stage has its time"
    );
}

fn trunk(port: u16) -> Trunk {
    Trunk {
        addr: ([127, 0, 0, 1], port).into(),
        transport: Transport::Udp,
        credentials: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blind_transfers_to_a_queue_and_to_a_number_with_ring_per_offer_agents() {
    if !has_tools() {
        return;
    }
    let dir0 = tempfile::tempdir().unwrap();
    let callee_party = callee(dir0.path(), "callee", CALLEE_HZ).await;
    let trunk_port = callee_party.port;
    let sut = support::start(42000, move |cfg| {
        cfg.trunks = vec![trunk(trunk_port)];
    })
    .await;
    let dir = sut.dir.path().to_path_buf();
    inbound::store::import_flow(&sut.db, "straight", QUEUE_FLOW, 1_000, "test")
        .await
        .unwrap();
    inbound::store::assign_number(&sut.db, DID2, "straight", 1_000, "test")
        .await
        .unwrap();
    let rt = sut.runtime.clone();
    let sip_port = sut.sip.udp_addr.port();

    let alice = callee(&dir, "alice", ALICE_HZ).await;
    login(&rt, "alice", &alice, AgentMode::RingPerOffer).await;
    let cust = customer(&dir, "customer", sip_port, DID2).await;
    let contact = contact_of(&rt, "alice").await;
    let with_alice = phase("with alice").await;

    // Bad targets are refused and change nothing.
    assert!(matches!(
        rt.blind_transfer(&contact, Target::Queue("nope".into()))
            .await,
        Err(ControlRefused::BadTarget(_))
    ));
    assert!(matches!(
        rt.blind_transfer(&contact, Target::Agent("nobody".into()))
            .await,
        Err(ControlRefused::BadTarget(_))
    ));

    // Blind to the queue: bob (ring per offer) gets it (alice goes on a break when the contact
    // leaves her); alice's phone is released.
    rt.set_state(
        "alice",
        inbound::acd::AgentStatus::NotRoutable("Lunch".into()),
    )
    .await
    .unwrap();
    let bob = callee(&dir, "bob", BOB_HZ).await;
    login(&rt, "bob", &bob, AgentMode::RingPerOffer).await;
    rt.blind_transfer(&contact, Target::Queue("support".into()))
        .await
        .unwrap();
    assert_eq!(contact_of(&rt, "bob").await, contact);
    let with_bob = phase("with bob").await;

    // Blind to a number: the customer is bridged with the trunk's callee, bob is released.
    rt.blind_transfer(&contact, Target::Number("+15557654321".into()))
        .await
        .unwrap();
    let with_callee = phase("with callee").await;
    assert!(
        rt.control_state(&contact).await.is_err(),
        "no agent handles the contact now"
    );
    let view = rt.agent_snapshot(None).await.unwrap();
    assert!(view.iter().all(|v| v.contact.is_none()), "{view:?}");

    // Ending the contact hangs up the customer, and the callee's leg with it.
    rt.end_contact(&contact).await.unwrap();
    let all = vec![
        finish(cust).await,
        finish(callee_party).await,
        finish(alice).await,
        finish(bob).await,
    ];
    rt.logout("alice").await.unwrap();
    rt.logout("bob").await.unwrap();
    assert_hears(
        &all,
        "customer",
        with_alice,
        &[ALICE_HZ],
        &[BOB_HZ, CALLEE_HZ],
    );
    assert_hears(&all, "alice", with_alice, &[CUSTOMER_HZ], &[]);
    assert_hears(
        &all,
        "customer",
        with_bob,
        &[BOB_HZ],
        &[ALICE_HZ, CALLEE_HZ],
    );
    assert_hears(&all, "bob", with_bob, &[CUSTOMER_HZ], &[]);
    assert_hears(
        &all,
        "customer",
        with_callee,
        &[CALLEE_HZ],
        &[ALICE_HZ, BOB_HZ],
    );
    assert_hears(&all, "callee", with_callee, &[CUSTOMER_HZ], &[]);

    eventually("the contact closed", Duration::from_secs(10), || async {
        contact_rows(&sut.db).await.iter().all(|r| r.1.is_some())
    })
    .await;
    let rec = &contacts(&sut.db).await[0];
    let st = stages(rec);
    let transfers: Vec<_> = rec
        .stages
        .iter()
        .filter(|s| s.stage == "transferred")
        .map(|s| s.detail.clone())
        .collect();
    assert_eq!(transfers.len(), 2, "{st:?}");
    assert!(transfers[0].contains("queue support"), "{transfers:?}");
    assert!(
        transfers[1].contains("number +15557654321"),
        "{transfers:?}"
    );
    let connected: Vec<_> = rec
        .stages
        .iter()
        .filter(|s| s.stage == "connected")
        .map(|s| s.detail.clone())
        .collect();
    assert_eq!(connected, ["alice", "bob"], "{st:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ring_per_offer_consult_a_number_into_a_conference_then_blind_to_an_agent() {
    if !has_tools() {
        return;
    }
    let dir0 = tempfile::tempdir().unwrap();
    let callee_party = callee(dir0.path(), "callee", CALLEE_HZ).await;
    let trunk_port = callee_party.port;
    let sut = support::start(43000, move |cfg| {
        cfg.trunks = vec![trunk(trunk_port)];
    })
    .await;
    let dir = sut.dir.path().to_path_buf();
    inbound::store::import_flow(&sut.db, "straight", QUEUE_FLOW, 1_000, "test")
        .await
        .unwrap();
    inbound::store::assign_number(&sut.db, DID2, "straight", 1_000, "test")
        .await
        .unwrap();
    let rt = sut.runtime.clone();
    let sip_port = sut.sip.udp_addr.port();

    let alice = callee(&dir, "alice", ALICE_HZ).await;
    login(&rt, "alice", &alice, AgentMode::RingPerOffer).await;
    let cust = customer(&dir, "customer", sip_port, DID2).await;
    let contact = contact_of(&rt, "alice").await;

    // Consult the number, then all three in a conference.
    assert!(matches!(
        rt.consult_start(&contact, Target::Number("5557654321".into()))
            .await,
        Err(ControlRefused::BadTarget(_))
    ));
    rt.consult_start(&contact, Target::Number("+15557654321".into()))
        .await
        .unwrap();
    let consult = phase("consult number").await;
    rt.consult_conference(&contact).await.unwrap();
    let conference = phase("conference").await;
    // Cancel from the conference: the number's leg is hung up, alice and the customer stay.
    rt.consult_cancel(&contact).await.unwrap();
    let back = phase("back").await;
    let callee_out = finish(callee_party).await;

    // Blind to bob (ring per offer): his phone rings, answers, takes the customer; alice's
    // phone is hung up.
    let bob = callee(&dir, "bob", BOB_HZ).await;
    login(&rt, "bob", &bob, AgentMode::RingPerOffer).await;
    rt.blind_transfer(&contact, Target::Agent("bob".into()))
        .await
        .unwrap();
    let alice_out = finish(alice).await;
    assert_eq!(rt.control_state(&contact).await.unwrap().agent, "bob");
    let with_bob = phase("with bob").await;

    rt.end_contact(&contact).await.unwrap();
    let all = vec![finish(cust).await, callee_out, alice_out, finish(bob).await];
    rt.logout("alice").await.unwrap();
    rt.logout("bob").await.unwrap();
    assert_hears(&all, "customer", consult, &[], &[ALICE_HZ, CALLEE_HZ]);
    assert_hears(&all, "alice", consult, &[CALLEE_HZ], &[CUSTOMER_HZ]);
    assert_hears(&all, "callee", consult, &[ALICE_HZ], &[CUSTOMER_HZ]);
    assert_hears(&all, "customer", conference, &[ALICE_HZ, CALLEE_HZ], &[]);
    assert_hears(&all, "alice", conference, &[CUSTOMER_HZ, CALLEE_HZ], &[]);
    assert_hears(&all, "callee", conference, &[CUSTOMER_HZ, ALICE_HZ], &[]);
    assert_hears(&all, "customer", back, &[ALICE_HZ], &[CALLEE_HZ]);
    assert_hears(&all, "alice", back, &[CUSTOMER_HZ], &[CALLEE_HZ]);
    assert_hears(&all, "customer", with_bob, &[BOB_HZ], &[ALICE_HZ]);
    assert_hears(&all, "bob", with_bob, &[CUSTOMER_HZ], &[]);

    eventually("the contact closed", Duration::from_secs(10), || async {
        contact_rows(&sut.db).await.iter().all(|r| r.1.is_some())
    })
    .await;
    let rec = &contacts(&sut.db).await[0];
    let st = stages(rec);
    for s in [
        "consult",
        "consult_answered",
        "conference",
        "consult_cancelled",
        "transfer",
        "transferred",
        "ended",
    ] {
        assert!(st.iter().any(|x| x == s), "stage {s} missing: {st:?}");
    }
    let connected: Vec<_> = rec
        .stages
        .iter()
        .filter(|s| s.stage == "connected")
        .map(|s| s.detail.clone())
        .collect();
    assert_eq!(connected, ["alice", "bob"], "{st:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dialer_contact_transferred_to_a_number_ends_with_its_record_closed() {
    if !has_tools() {
        return;
    }
    let dir0 = tempfile::tempdir().unwrap();
    let callee_party = callee(dir0.path(), "callee", CALLEE_HZ).await;
    let trunk_port = callee_party.port;
    let sut = support::start(44000, move |cfg| {
        cfg.trunks = vec![trunk(trunk_port)];
    })
    .await;
    let dir = sut.dir.path().to_path_buf();
    let rt = sut.runtime.clone();
    let alice = callee(&dir, "alice", ALICE_HZ).await;
    login(&rt, "alice", &alice, AgentMode::NailedUp).await;

    // The dialer's answered call: a sipp callee standing for the customer.
    let cust = callee(&dir, "customer", CUSTOMER_HZ).await;
    let (_, ctl, mut events) = sut
        .calls
        .originate(telephony::sip::call::Originate {
            to_user: "+13125550199".into(),
            trunks: vec![trunk(cust.port)],
            ..Default::default()
        })
        .split();
    tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(ev) = events.recv().await {
            if matches!(ev, telephony::control::Event::Answered { .. }) {
                return;
            }
        }
        panic!("the customer hung up");
    })
    .await
    .expect("the customer answers");
    let attrs = BTreeMap::from([("campaign".to_string(), "renewals".to_string())]);
    assert_eq!(
        rt.connect_outbound("sales", &ctl, attrs).await.unwrap(),
        "alice"
    );
    let contact = contact_of(&rt, "alice").await;
    rt.blind_transfer(&contact, Target::Number("+15557654321".into()))
        .await
        .unwrap();
    let with_callee = phase("with callee").await;

    // The dialer's side hangs up: the number's leg goes with it and the record is closed.
    ctl.hangup().await.unwrap();
    let all = vec![finish(cust).await, finish(callee_party).await];
    assert_hears(&all, "customer", with_callee, &[CALLEE_HZ], &[ALICE_HZ]);
    assert_hears(&all, "callee", with_callee, &[CUSTOMER_HZ], &[ALICE_HZ]);
    eventually(
        "the contact record closed",
        Duration::from_secs(10),
        || async {
            let rows = contact_rows(&sut.db).await;
            rows.len() == 1 && rows[0].1.is_some()
        },
    )
    .await;
    let st = stages(&contacts(&sut.db).await[0]);
    for s in ["outbound", "connected", "transfer", "transferred", "ended"] {
        assert!(st.iter().any(|x| x == s), "stage {s} missing: {st:?}");
    }
    let view = rt.agent_snapshot(None).await.unwrap();
    assert!(view[0].leg_up && view[0].contact.is_none(), "{view:?}");
    rt.logout("alice").await.unwrap();
    finish(alice).await;
}
