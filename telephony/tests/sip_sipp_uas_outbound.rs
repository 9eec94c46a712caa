//! Dialbridge placing calls to sipp callees: answer + hangup, 486/480/404/503 outcomes, 503
//! failing over to a second trunk, ring timeout → CANCEL/487, digest auth on 401.

mod sip_common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use sip_common::*;
use telephony::sip::call::{CallEvent, CallId, HangupCause, Originate, Transport, Trunk};
use telephony::sip::digest::Credentials;
use telephony::sip::listener::{SipListeners, SipOptions};
use telephony::sip::outcome::Outcome;

fn scenario(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sip_scenarios")
        .join(name)
        .display()
        .to_string()
}

/// Starts a sipp callee (`-sn uas` or a scenario file) on a free port; returns (child, port, dir).
async fn callee(
    tag: &str,
    scen: &[&str],
    transport: &str,
) -> (tokio::process::Child, u16, PathBuf) {
    let dir = scratch(tag);
    let port = free_port();
    let p = port.to_string();
    let mut args: Vec<&str> = scen.to_vec();
    args.extend([
        "-i",
        "127.0.0.1",
        "-mi",
        "127.0.0.1",
        "-p",
        &p,
        "-t",
        transport,
        "-m",
        "1",
        "-timeout",
        "30s",
        "-timeout_error",
    ]);
    let child = spawn_sipp(&dir, &args);
    tokio::time::sleep(Duration::from_millis(400)).await;
    (child, port, dir)
}

/// The reject scenario with its final code filled in.
fn reject_scenario(code: u16) -> String {
    let text = std::fs::read_to_string(scenario("uas_reject.xml"))
        .unwrap()
        .replace("@CODE@", &code.to_string());
    let path = scratch(&format!("reject-scenario-{code}")).join("uas_reject.xml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

fn trunk(port: u16, transport: Transport) -> Trunk {
    Trunk {
        addr: format!("127.0.0.1:{port}").parse().unwrap(),
        transport,
        credentials: None,
    }
}

fn originate(sut: &SipListeners, trunks: Vec<Trunk>, ring: Duration) -> CallId {
    sut.handle.originate(Originate {
        to_user: "15551234".into(),
        from_user: "dialer".into(),
        trunks,
        ring_timeout: ring,
        ..Default::default()
    })
}

async fn until_end_or_answer(
    sut: &SipListeners,
    rx: &mut tokio::sync::broadcast::Receiver<CallEvent>,
    id: CallId,
    secs: u64,
) -> Vec<CallEvent> {
    let _ = sut;
    collect_events(rx, Duration::from_secs(secs), |e| {
        e.iter().any(|e| {
            e.call() == Some(id)
                && matches!(e, CallEvent::Hangup { .. } | CallEvent::Answered { .. })
        })
    })
    .await
    .into_iter()
    .filter(|e| e.call() == Some(id))
    .collect()
}

async fn finish(dir: &Path, child: tokio::process::Child) -> SippRun {
    wait_sipp(dir, child).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answered_call_then_our_bye_over_udp_and_tcp() {
    if !foundation::testing::require_tool("sipp", "sip-tester") {
        return;
    }
    let (sut, _lc) = start(SipOptions::default()).await;
    for (tp, t) in [("u1", Transport::Udp), ("t1", Transport::Tcp)] {
        let mut rx = sut.handle.subscribe();
        let (child, port, dir) = callee(&format!("uas-answer-{tp}"), &["-sn", "uas"], tp).await;
        let id = originate(&sut, vec![trunk(port, t)], Duration::from_secs(10));
        let ev = until_end_or_answer(&sut, &mut rx, id, 10).await;
        assert!(
            ev.iter()
                .any(|e| matches!(e, CallEvent::Ringing { code: 180, .. })),
            "{ev:?}"
        );
        let Some(CallEvent::Answered { media, .. }) = ev.last() else {
            panic!("not answered over {tp}: {ev:?}")
        };
        assert_eq!(media.negotiated.unwrap().payload_type, 0);
        sut.handle.hangup(id);
        let run = finish(&dir, child).await;
        assert_eq!(run.rc, 0, "sipp uas saw a failure over {tp}: {run:?}");
        assert_eq!(run.stat("SuccessfulCall(C)"), 1);
        let end = collect_events(&mut rx, Duration::from_secs(2), |e| {
            e.iter().any(|e| matches!(e, CallEvent::Hangup { .. }))
        })
        .await;
        assert!(
            matches!(
                end.last(),
                Some(CallEvent::Hangup {
                    cause: HangupCause::LocalHangup,
                    outcome: Outcome::Answered,
                    ..
                })
            ),
            "{end:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejections_map_through_the_outcome_table() {
    if !foundation::testing::require_tool("sipp", "sip-tester") {
        return;
    }
    let (sut, _lc) = start(SipOptions::default()).await;
    for (code, want) in [
        (486, Outcome::Busy),
        (480, Outcome::NoAnswer),
        (404, Outcome::NumberDisconnected),
        (503, Outcome::Congestion),
        (603, Outcome::Rejected),
    ] {
        let mut rx = sut.handle.subscribe();
        let sf = reject_scenario(code);
        let (child, port, dir) = callee(&format!("uas-reject-{code}"), &["-sf", &sf], "u1").await;
        let id = originate(
            &sut,
            vec![trunk(port, Transport::Udp)],
            Duration::from_secs(10),
        );
        let ev = until_end_or_answer(&sut, &mut rx, id, 10).await;
        let last = ev.last().cloned();
        assert!(
            matches!(last, Some(CallEvent::Hangup { code: Some(c), outcome, cause: HangupCause::Rejected, .. }) if c == code && outcome == want),
            "{code}: {ev:?}"
        );
        let run = finish(&dir, child).await;
        assert_eq!(
            run.rc, 0,
            "{code}: the callee must have received our ACK: {run:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn congestion_503_fails_over_to_the_second_trunk() {
    if !foundation::testing::require_tool("sipp", "sip-tester") {
        return;
    }
    let (sut, _lc) = start(SipOptions::default()).await;
    let mut rx = sut.handle.subscribe();
    let sf = reject_scenario(503);
    let (c1, p1, d1) = callee("uas-failover-503", &["-sf", &sf], "u1").await;
    let (c2, p2, d2) = callee("uas-failover-ok", &["-sn", "uas"], "u1").await;
    let id = originate(
        &sut,
        vec![trunk(p1, Transport::Udp), trunk(p2, Transport::Udp)],
        Duration::from_secs(10),
    );
    let ev = until_end_or_answer(&sut, &mut rx, id, 10).await;
    assert!(
        matches!(ev.last(), Some(CallEvent::Answered { .. })),
        "{ev:?}"
    );
    sut.handle.hangup(id);
    assert_eq!(finish(&d1, c1).await.rc, 0);
    let r2 = finish(&d2, c2).await;
    assert_eq!((r2.rc, r2.stat("SuccessfulCall(C)")), (0, 1), "{r2:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ring_timeout_sends_cancel_and_ends_no_answer() {
    if !foundation::testing::require_tool("sipp", "sip-tester") {
        return;
    }
    let (sut, _lc) = start(SipOptions::default()).await;
    let mut rx = sut.handle.subscribe();
    let (child, port, dir) = callee(
        "uas-noanswer",
        &["-sf", &scenario("uas_no_answer.xml")],
        "u1",
    )
    .await;
    let id = originate(
        &sut,
        vec![trunk(port, Transport::Udp)],
        Duration::from_millis(1500),
    );
    let ev = until_end_or_answer(&sut, &mut rx, id, 10).await;
    assert!(
        matches!(
            ev.last(),
            Some(CallEvent::Hangup {
                cause: HangupCause::RingTimeout,
                code: Some(487),
                outcome: Outcome::NoAnswer,
                ..
            })
        ),
        "{ev:?}"
    );
    let run = finish(&dir, child).await;
    assert_eq!(run.rc, 0, "{run:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digest_auth_on_401_is_accepted_by_sipp_verifyauth() {
    if !foundation::testing::require_tool("sipp", "sip-tester") {
        return;
    }
    let (sut, _lc) = start(SipOptions::default()).await;
    for (password, answered) in [("s3cret", true), ("wrong", false)] {
        let mut rx = sut.handle.subscribe();
        let (child, port, dir) = callee(
            &format!("uas-auth-{password}"),
            &["-sf", &scenario("uas_auth.xml")],
            "u1",
        )
        .await;
        let mut t = trunk(port, Transport::Udp);
        t.credentials = Some(Credentials {
            username: "dialer".into(),
            password: password.into(),
        });
        let id = originate(&sut, vec![t], Duration::from_secs(10));
        let ev = until_end_or_answer(&sut, &mut rx, id, 10).await;
        if answered {
            assert!(
                matches!(ev.last(), Some(CallEvent::Answered { .. })),
                "{ev:?}"
            );
            sut.handle.hangup(id);
        } else {
            assert!(
                matches!(
                    ev.last(),
                    Some(CallEvent::Hangup {
                        code: Some(403),
                        outcome: Outcome::Rejected,
                        ..
                    })
                ),
                "{ev:?}"
            );
        }
        let run = finish(&dir, child).await;
        assert_eq!(run.rc, 0, "{run:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_trunk_that_refuses_connections_fails_over_at_once() {
    if !foundation::testing::require_tool("sipp", "sip-tester") {
        return;
    }
    let (sut, _lc) = start(SipOptions::default()).await;
    let mut rx = sut.handle.subscribe();
    let dead = free_port(); // nothing listens there
    let (child, port, dir) = callee("uas-after-dead-tcp", &["-sn", "uas"], "t1").await;
    let t0 = std::time::Instant::now();
    let id = originate(
        &sut,
        vec![trunk(dead, Transport::Tcp), trunk(port, Transport::Tcp)],
        Duration::from_secs(10),
    );
    let ev = until_end_or_answer(&sut, &mut rx, id, 10).await;
    assert!(
        matches!(ev.last(), Some(CallEvent::Answered { .. })),
        "{ev:?}"
    );
    assert!(
        t0.elapsed() < Duration::from_secs(3),
        "failover must not wait for Timer B: {:?}",
        t0.elapsed()
    );
    sut.handle.hangup(id);
    assert_eq!(finish(&dir, child).await.rc, 0);
}
