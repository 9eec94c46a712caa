//! Rooms and consultative transfer on real calls: every party is a sipp callee (Debian
//! `sip-tester`) that Dialbridge calls, each streaming a pure tone of its own frequency
//! (customer 500 Hz, agent 800 Hz, supervisor 1300 Hz, transfer target 1900 Hz), with µ-law and
//! A-law legs mixed together. What each party's media address receives is captured by the test
//! (sipp 3.6.1 cannot record) and measured per 20 ms frame with the Goertzel detector, phase by
//! phase:
//! - supervisor: listen hears agent and customer and is heard by neither; whisper is heard by
//!   the agent only; barge by both; after leaving, the agent and customer are a direct bridge
//!   again and the supervisor hears nothing;
//! - consultative transfer: the customer hears the hold tone (350 Hz) and neither the agent nor
//!   the target while the agent consults the target; `complete` leaves the customer and the
//!   target hearing each other and the agent hearing neither; the customer's BYE ends the
//!   target's leg (bridged with `HangUp`);
//! - `cancel` hangs the target up and puts the agent back with the customer; a second
//!   consultation turned into a conference has each of the three hearing the other two.

mod control_support;

use std::path::Path;
use std::time::{Duration, Instant};

use control_support::*;
use telephony::control::room::Topology;
use telephony::control::{Call, Consult, EndCause, Event, HoldAudio, OnPeerHangup, Role, Room};
use telephony::media::g711::Codec;
use telephony::media::goertzel::{Goertzel, energy};
use telephony::media::tone::ToneSpec;
use telephony::sip::call::{Originate, Transport, Trunk};

const CUSTOMER_HZ: f64 = 500.0;
const AGENT_HZ: f64 = 800.0;
const SUPERVISOR_HZ: f64 = 1300.0;
const TARGET_HZ: f64 = 1900.0;
const HOLD_HZ: f64 = 350.0;
const FREQS: [f64; 5] = [CUSTOMER_HZ, AGENT_HZ, SUPERVISOR_HZ, TARGET_HZ, HOLD_HZ];

/// How long each phase lasts; the first 300 ms and the last 100 ms of a phase are not judged
/// (re-routing, packets in flight).
const PHASE: Duration = Duration::from_millis(1500);

fn have_sipp() -> bool {
    foundation::testing::require_tool("sipp", "sip-tester")
}

/// A party: a sipp callee streaming its tone, the capture socket its SDP points at, and the
/// call Dialbridge placed to it (once answered).
struct Party {
    name: &'static str,
    codec: Codec,
    cap: Capture,
    sipp: tokio::process::Child,
    uas_port: u16,
}

fn tone(freq: f64, ms: usize) -> Vec<i16> {
    (0..ms * 8)
        .map(|i| {
            (0.25 * 32767.0 * (2.0 * std::f64::consts::PI * freq * i as f64 / 8000.0).sin()) as i16
        })
        .collect()
}

async fn party(dir: &Path, name: &'static str, codec: Codec, freq: f64) -> Party {
    let file = dir.join(format!(
        "{name}.{}",
        if codec == Codec::Pcmu { "ulaw" } else { "alaw" }
    ));
    // A whole number of periods in 1 s at every test frequency: the loop has no phase jump.
    write_raw(&file, codec, &tone(freq, 1000));
    let cap = Capture::start().await;
    let pt = codec.payload_type();
    let enc = if codec == Codec::Pcmu { "PCMU" } else { "PCMA" };
    let xml = format!("{name}.xml");
    std::fs::write(
        dir.join(&xml),
        uas_xml(
            &[(pt, enc), (101, "telephone-event")],
            Some((&file, pt)),
            39_000,
        ),
    )
    .unwrap();
    let uas_port = free_port();
    let args: Vec<String> = [
        "-sf",
        xml.as_str(),
        "-i",
        "127.0.0.1",
        "-mi",
        "127.0.0.1",
        "-m",
        "1",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([
        "-p".into(),
        uas_port.to_string(),
        "-mp".into(),
        free_port().to_string(),
        "-key".into(),
        "rtpport".into(),
        cap.port.to_string(),
    ])
    .collect();
    let sipp = spawn_sipp(dir, &args);
    Party {
        name,
        codec,
        cap,
        sipp,
        uas_port,
    }
}

fn originate_to(p: &Party) -> Originate {
    Originate {
        to_user: p.name.into(),
        trunks: vec![Trunk {
            addr: ([127, 0, 0, 1], p.uas_port).into(),
            transport: Transport::Udp,
            credentials: None,
        }],
        ring_timeout: Duration::from_secs(10),
        ..Originate::default()
    }
}

async fn answered(call: &mut Call) {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), call.next_event())
            .await
            .expect("answered within 10 s")
        {
            Some(Event::Answered { .. }) => return,
            Some(ev @ Event::Hangup { .. }) => panic!("call ended before answer: {ev:?}"),
            Some(_) => {}
            None => panic!("call gone before answer"),
        }
    }
}

async fn call_party(sut: &Sut, p: &Party) -> Call {
    let mut c = sut.calls.originate(originate_to(p));
    answered(&mut c).await;
    c
}

/// A phase of the test: its name and when it ran.
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

/// What one party heard in one phase: per frequency, the mean over 20 ms frames of that
/// frequency's share of the frame's energy (silent or missing frames count as 0).
#[derive(Debug)]
struct Heard {
    frames: usize,
    share: Vec<(f64, f64)>,
}

impl Heard {
    fn of(&self, freq: f64) -> f64 {
        self.share
            .iter()
            .find(|(f, _)| *f == freq)
            .map(|(_, s)| *s)
            .unwrap_or(0.0)
    }
}

fn heard(pkts: &[Rtp], codec: Codec, ph: Phase) -> Heard {
    let from = ph.from + Duration::from_millis(300);
    let to = ph.to - Duration::from_millis(100);
    let frames: Vec<Vec<i16>> = pkts
        .iter()
        .filter(|p| p.pt == codec.payload_type() && p.at >= from && p.at <= to)
        .map(|p| codec.decode(&p.payload))
        .collect();
    let expected = ((to - from).as_millis() / 20) as usize;
    let share = FREQS
        .iter()
        .map(|&f| {
            let g = Goertzel::new(f, 8000.0);
            let sum: f64 = frames.iter().map(|x| g.relative_power(x, energy(x))).sum();
            (f, sum / expected.max(frames.len()).max(1) as f64)
        })
        .collect();
    Heard {
        frames: frames.len(),
        share,
    }
}

/// Asserts that in `ph`, `who` heard exactly the frequencies in `yes` (each at least `min`
/// share) and none of `no` (each under 2 %).
fn assert_hears(all: &[(&str, Codec, Vec<Rtp>)], who: &str, ph: Phase, yes: &[f64], no: &[f64]) {
    let (_, codec, pkts) = all.iter().find(|(n, _, _)| *n == who).expect("party");
    let h = heard(pkts, *codec, ph);
    eprintln!(
        "{:>12} / {:<10} {} frames: {:?}",
        ph.name,
        who,
        h.frames,
        h.share
            .iter()
            .map(|(f, s)| format!("{f}:{s:.3}"))
            .collect::<Vec<_>>()
    );
    // Each audible party's share: equal tones split the frame's energy among them.
    let min = if yes.is_empty() {
        0.0
    } else {
        0.6 / yes.len() as f64
    };
    for &f in yes {
        assert!(
            h.of(f) >= min,
            "{}: {who} should hear {f} Hz (share {:.3} < {min:.3}): {h:?}",
            ph.name,
            h.of(f)
        );
    }
    for &f in no {
        assert!(
            h.of(f) < 0.02,
            "{}: {who} should not hear {f} Hz (share {:.3}): {h:?}",
            ph.name,
            h.of(f)
        );
    }
}

async fn hang_up_all(calls: Vec<Call>) {
    for mut c in calls {
        let _ = c.control().hangup().await;
        while let Ok(Some(ev)) = tokio::time::timeout(Duration::from_secs(10), c.next_event()).await
        {
            if matches!(ev, Event::Hangup { .. }) {
                break;
            }
        }
    }
}

async fn finish(dir: &Path, parties: Vec<Party>) -> Vec<(&'static str, Codec, Vec<Rtp>)> {
    let mut out = Vec::new();
    for p in parties {
        let r = wait_sipp(dir, p.sipp).await;
        assert_eq!(
            r.rc, 0,
            "sipp {} failed: {}\n{}",
            p.name, r.stdout, r.errors
        );
        out.push((p.name, p.codec, p.cap.finish().await));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_supervisor_listens_whispers_then_barges() {
    if !have_sipp() {
        return;
    }
    let dir = scratch("room-supervisor");
    let sut = start(14000, Some(Duration::from_secs(30))).await;
    let c = party(&dir, "customer", Codec::Pcmu, CUSTOMER_HZ).await;
    let a = party(&dir, "agent", Codec::Pcma, AGENT_HZ).await;
    let s = party(&dir, "supervisor", Codec::Pcmu, SUPERVISOR_HZ).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (cc, ac, sc) = (
        call_party(&sut, &c).await,
        call_party(&sut, &a).await,
        call_party(&sut, &s).await,
    );
    ac.control()
        .bridge(cc.control(), OnPeerHangup::Stay)
        .await
        .expect("bridged");
    let p0 = phase("bridged").await;

    let room = Room::new();
    room.join(ac.control(), Role::Full)
        .await
        .expect("agent joins");
    room.join(cc.control(), Role::Full)
        .await
        .expect("customer joins");
    assert_eq!(
        room.topology().await,
        Topology::Direct(cc.id().min(ac.id()), cc.id().max(ac.id()))
    );
    room.join(sc.control(), Role::Listen)
        .await
        .expect("supervisor listens");
    assert_eq!(room.topology().await, Topology::Mixed);
    let p1 = phase("listen").await;
    room.set_role(sc.id(), Role::Whisper { to: ac.id() })
        .await
        .expect("whisper");
    let p2 = phase("whisper").await;
    room.set_role(sc.id(), Role::Full).await.expect("barge");
    let p3 = phase("barge").await;
    let stats = room.mix_stats().await.expect("mixing");
    room.leave(sc.id()).await.expect("supervisor leaves");
    assert!(
        room.mix_stats().await.is_none(),
        "two Full legs are a direct bridge again"
    );
    let p4 = phase("left").await;
    eprintln!("mixer: {stats:?}");
    assert_eq!(stats.legs, 3);
    // How many intervals ran depends on this shared machine's load: only that mixing happened.
    assert!(stats.desk.mixed > 0 && stats.delivered > 0, "{stats:?}");

    hang_up_all(vec![cc, ac, sc]).await;
    let all = finish(&dir, vec![c, a, s]).await;
    let (cu, ag, su) = (CUSTOMER_HZ, AGENT_HZ, SUPERVISOR_HZ);
    assert_hears(&all, "customer", p0, &[ag], &[cu, su]);
    assert_hears(&all, "agent", p0, &[cu], &[ag, su]);
    assert_hears(&all, "supervisor", p0, &[], &[cu, ag]);

    assert_hears(&all, "customer", p1, &[ag], &[cu, su]);
    assert_hears(&all, "agent", p1, &[cu], &[ag, su]);
    assert_hears(&all, "supervisor", p1, &[cu, ag], &[su]);

    assert_hears(&all, "customer", p2, &[ag], &[cu, su]);
    assert_hears(&all, "agent", p2, &[cu, su], &[ag]);
    assert_hears(&all, "supervisor", p2, &[cu, ag], &[su]);

    assert_hears(&all, "customer", p3, &[ag, su], &[cu]);
    assert_hears(&all, "agent", p3, &[cu, su], &[ag]);
    assert_hears(&all, "supervisor", p3, &[cu, ag], &[su]);

    assert_hears(&all, "customer", p4, &[ag], &[cu, su]);
    assert_hears(&all, "agent", p4, &[cu], &[ag, su]);
    assert_hears(&all, "supervisor", p4, &[], &[cu, ag]);
    let _ = std::fs::remove_dir_all(&dir);
}

fn hold_tone() -> HoldAudio {
    HoldAudio::Tone(ToneSpec {
        freqs: vec![HOLD_HZ],
        amplitude: 0.25,
        cadence: vec![(1000, 0)],
        repeat: true,
        total_ms: None,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consult_transfer_completes_with_customer_and_target_talking() {
    if !have_sipp() {
        return;
    }
    let dir = scratch("consult-complete");
    let sut = start(14200, Some(Duration::from_secs(30))).await;
    let c = party(&dir, "customer", Codec::Pcmu, CUSTOMER_HZ).await;
    let a = party(&dir, "agent", Codec::Pcmu, AGENT_HZ).await;
    let t = party(&dir, "target", Codec::Pcma, TARGET_HZ).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (mut cc, mut ac) = (call_party(&sut, &c).await, call_party(&sut, &a).await);
    ac.control()
        .bridge(cc.control(), OnPeerHangup::Stay)
        .await
        .expect("bridged");
    let p0 = phase("talking").await;
    let consult = Consult::start(
        &sut.calls,
        ac.control(),
        cc.control(),
        originate_to(&t),
        hold_tone(),
    )
    .await
    .expect("consulting");
    let p1 = phase("consulting").await;
    let mut tc = consult
        .complete(OnPeerHangup::HangUp)
        .await
        .expect("completed");
    let p2 = phase("transferred").await;

    // The customer hangs up: the target's leg follows, the agent's stays up.
    cc.control().hangup().await.unwrap();
    let mut target_end = None;
    while let Ok(Some(ev)) = tokio::time::timeout(Duration::from_secs(10), tc.next_event()).await {
        if let Event::Hangup { cause, .. } = ev {
            target_end = Some(cause);
            break;
        }
    }
    assert_eq!(target_end, Some(EndCause::BridgePeerEnded(cc.id())));
    let mut agent_events = Vec::new();
    while let Ok(Some(ev)) = tokio::time::timeout(Duration::from_millis(300), ac.next_event()).await
    {
        agent_events.push(ev);
    }
    assert!(
        !agent_events
            .iter()
            .any(|e| matches!(e, Event::Hangup { .. })),
        "the agent's leg stays up: {agent_events:?}"
    );
    assert!(
        agent_events.contains(&Event::Unbridged {
            peer: tc.id(),
            peer_ended: false
        }),
        "{agent_events:?}"
    );
    while let Ok(Some(ev)) = tokio::time::timeout(Duration::from_secs(5), cc.next_event()).await {
        if matches!(ev, Event::Hangup { .. }) {
            break;
        }
    }
    hang_up_all(vec![ac]).await;
    let all = finish(&dir, vec![c, a, t]).await;
    let (cu, ag, ta, ho) = (CUSTOMER_HZ, AGENT_HZ, TARGET_HZ, HOLD_HZ);
    assert_hears(&all, "customer", p0, &[ag], &[ta, ho]);
    assert_hears(&all, "agent", p0, &[cu], &[ta]);
    assert_hears(&all, "customer", p1, &[ho], &[ag, ta]);
    assert_hears(&all, "agent", p1, &[ta], &[cu, ho]);
    assert_hears(&all, "target", p1, &[ag], &[cu, ho]);
    assert_hears(&all, "customer", p2, &[ta], &[ag, ho]);
    assert_hears(&all, "target", p2, &[cu], &[ag, ho]);
    assert_hears(&all, "agent", p2, &[], &[cu, ta, ho]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consult_cancel_returns_to_the_customer_then_a_conference_joins_three() {
    if !have_sipp() {
        return;
    }
    let dir = scratch("consult-conference");
    let sut = start(14400, Some(Duration::from_secs(30))).await;
    let c = party(&dir, "customer", Codec::Pcma, CUSTOMER_HZ).await;
    let a = party(&dir, "agent", Codec::Pcmu, AGENT_HZ).await;
    let t1 = party(&dir, "target1", Codec::Pcmu, TARGET_HZ).await;
    let t2 = party(&dir, "target2", Codec::Pcma, SUPERVISOR_HZ).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (cc, ac) = (call_party(&sut, &c).await, call_party(&sut, &a).await);
    ac.control()
        .bridge(cc.control(), OnPeerHangup::Stay)
        .await
        .expect("bridged");

    let consult = Consult::start(
        &sut.calls,
        ac.control(),
        cc.control(),
        originate_to(&t1),
        HoldAudio::Silence,
    )
    .await
    .expect("consulting");
    let p0 = phase("consult 1").await;
    let t1_id = consult.target().id();
    consult.cancel(OnPeerHangup::Stay).await.expect("cancelled");
    let p1 = phase("cancelled").await;

    let consult = Consult::start(
        &sut.calls,
        ac.control(),
        cc.control(),
        originate_to(&t2),
        hold_tone(),
    )
    .await
    .expect("consulting again");
    let (room, tc2) = consult.conference().await.expect("conference");
    assert_eq!(room.members().await.len(), 3);
    assert_eq!(room.topology().await, Topology::Mixed);
    let p2 = phase("conference").await;
    // One party hangs up: the other two carry on, now a direct bridge.
    tc2.control().hangup().await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(room.members().await.len(), 2);
    assert!(matches!(room.topology().await, Topology::Direct(..)));
    let p3 = phase("two left").await;

    hang_up_all(vec![cc, ac, tc2]).await;
    let all = finish(&dir, vec![c, a, t1, t2]).await;
    eprintln!("first target {t1_id} was hung up by cancel");
    let (cu, ag, ta1, ta2, ho) = (CUSTOMER_HZ, AGENT_HZ, TARGET_HZ, SUPERVISOR_HZ, HOLD_HZ);
    // Silence on hold: the customer hears none of the tones.
    assert_hears(&all, "customer", p0, &[], &[ag, ta1, ho]);
    assert_hears(&all, "agent", p0, &[ta1], &[cu]);
    assert_hears(&all, "target1", p0, &[ag], &[cu]);
    assert_hears(&all, "customer", p1, &[ag], &[ta1, ho]);
    assert_hears(&all, "agent", p1, &[cu], &[ta1]);
    assert_hears(&all, "customer", p2, &[ag, ta2], &[cu, ho]);
    assert_hears(&all, "agent", p2, &[cu, ta2], &[ag]);
    assert_hears(&all, "target2", p2, &[cu, ag], &[ta2]);
    assert_hears(&all, "customer", p3, &[ag], &[ta2, ho]);
    assert_hears(&all, "agent", p3, &[cu], &[ta2]);
    let _ = std::fs::remove_dir_all(&dir);
}
