//! Custom sipp caller scenarios against Dialbridge: CANCEL while ringing (487), CANCEL crossing
//! a 200 (the call stays up until BYE), compact header forms over UDP and TCP, a caller that
//! withholds the ACK, hold/resume by re-INVITE and SIP INFO digits.

mod sip_common;

use std::path::PathBuf;
use std::time::Duration;

use sip_common::*;
use telephony::sip::call::{CallEvent, HangupCause};
use telephony::sip::listener::SipOptions;
use telephony::sip::sdp::Direction;
use telephony::sip::transaction::TimerConfig;

fn scenario(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sip_scenarios")
        .join(name)
        .display()
        .to_string()
}

async fn run(name: &str, sut_addr: std::net::SocketAddr, calls: &str, transport: &str) -> SippRun {
    let dir = scratch(&format!("{name}-{transport}"));
    let port = free_port().to_string();
    run_sipp(
        &dir,
        &[
            "-sf",
            &scenario(name),
            &sut_addr.to_string(),
            "-i",
            "127.0.0.1",
            "-mi",
            "127.0.0.1",
            "-p",
            &port,
            "-t",
            transport,
            "-m",
            calls,
            "-r",
            "20",
            "-timeout",
            "30s",
            "-timeout_error",
            "-max_recv_loops",
            "1000",
        ],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_while_ringing_gets_487() {
    if !foundation::testing::require_tool("sipp", "sip-tester") {
        return;
    }
    let (sut, _lc) = start(SipOptions {
        auto_answer: Some(Duration::from_secs(10)),
        ..Default::default()
    })
    .await;
    let mut events = sut.handle.subscribe();
    let r = run("uac_cancel.xml", sut.udp_addr, "5", "u1").await;
    assert_eq!(r.rc, 0, "{r:?}");
    assert_eq!(r.stat("SuccessfulCall(C)"), 5, "{r:?}");
    let ev = collect_events(&mut events, Duration::from_secs(5), |e| {
        e.iter()
            .filter(|e| matches!(e, CallEvent::Hangup { .. }))
            .count()
            == 5
    })
    .await;
    let hangups: Vec<_> = ev
        .iter()
        .filter_map(|e| {
            if let CallEvent::Hangup { cause, code, .. } = e {
                Some((*cause, *code))
            } else {
                None
            }
        })
        .collect();
    assert_eq!(hangups, vec![(HangupCause::RemoteCancel, Some(487)); 5]);
    assert!(!ev.iter().any(|e| matches!(e, CallEvent::Answered { .. })));
    assert_eq!(settle(&sut, Duration::from_secs(2)).await.active_calls, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_crossing_200_leaves_the_call_up_until_bye() {
    if !foundation::testing::require_tool("sipp", "sip-tester") {
        return;
    }
    let (sut, _lc) = start(SipOptions::default()).await;
    let mut events = sut.handle.subscribe();
    let r = run("uac_cancel_crossing_200.xml", sut.udp_addr, "5", "u1").await;
    assert_eq!(r.rc, 0, "{r:?}");
    assert_eq!(r.stat("SuccessfulCall(C)"), 5, "{r:?}");
    let ev = collect_events(&mut events, Duration::from_secs(5), |e| {
        e.iter()
            .filter(|e| matches!(e, CallEvent::Hangup { .. }))
            .count()
            == 5
    })
    .await;
    let answered: Vec<_> = ev
        .iter()
        .filter_map(|e| {
            if let CallEvent::Answered { media, .. } = e {
                Some(*media)
            } else {
                None
            }
        })
        .collect();
    assert_eq!(answered.len(), 5, "{ev:?}");
    for m in answered {
        let n = m.negotiated.expect("negotiated media");
        assert_eq!(
            (n.payload_type, n.telephone_event),
            (8, Some(96)),
            "PCMA and the caller's telephone-event PT"
        );
    }
    assert!(
        ev.iter().all(
            |e| !matches!(e, CallEvent::Hangup { cause, .. } if *cause != HangupCause::RemoteBye)
        ),
        "{ev:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compact_headers_from_sipp_over_udp_and_tcp() {
    if !foundation::testing::require_tool("sipp", "sip-tester") {
        return;
    }
    let (sut, _lc) = start(SipOptions::default()).await;
    let r = run("uac_compact.xml", sut.udp_addr, "20", "u1").await;
    assert_eq!(r.rc, 0, "{r:?}");
    assert_eq!(r.stat("SuccessfulCall(C)"), 20, "{r:?}");
    let r = run("uac_compact.xml", sut.tcp_addr, "20", "t1").await;
    assert_eq!(r.rc, 0, "{r:?}");
    assert_eq!(r.stat("SuccessfulCall(C)"), 20, "{r:?}");
    let s = settle(&sut, Duration::from_secs(3)).await;
    assert_eq!((s.inbound_calls_created, s.active_calls), (40, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_uac_over_tcp() {
    if !foundation::testing::require_tool("sipp", "sip-tester") {
        return;
    }
    let (sut, _lc) = start(SipOptions::default()).await;
    let dir = scratch("uac-tcp");
    let port = free_port().to_string();
    let r = run_sipp(
        &dir,
        &[
            "-sn",
            "uac",
            &sut.tcp_addr.to_string(),
            "-i",
            "127.0.0.1",
            "-mi",
            "127.0.0.1",
            "-p",
            &port,
            "-t",
            "t1",
            "-m",
            "200",
            "-r",
            "100",
            "-timeout",
            "30s",
            "-timeout_error",
        ],
    )
    .await;
    assert_eq!(r.rc, 0, "{r:?}");
    assert_eq!(r.stat("SuccessfulCall(C)"), 200, "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn withheld_ack_means_200_retransmissions_then_bye() {
    if !foundation::testing::require_tool("sipp", "sip-tester") {
        return;
    }
    // T1 = 50 ms so that 64*T1 is 3.2 s.
    let timers = TimerConfig {
        t1: Duration::from_millis(50),
        ..Default::default()
    };
    let (sut, _lc) = start(SipOptions {
        timers,
        ..Default::default()
    })
    .await;
    let mut events = sut.handle.subscribe();
    let r = run("uac_no_ack.xml", sut.udp_addr, "3", "u1").await;
    assert_eq!(r.rc, 0, "{r:?}");
    assert_eq!(r.stat("SuccessfulCall(C)"), 3, "{r:?}");
    // sipp's screen: "200 <----  messages  retrans ...": our 200 was retransmitted on timers.
    let retrans: u64 = r
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("200 <----"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(
        retrans >= 3 * 5,
        "each call's 200 retransmitted several times, got {retrans}: {r:?}"
    );
    let ev = collect_events(&mut events, Duration::from_secs(5), |e| {
        e.iter()
            .filter(|e| matches!(e, CallEvent::Hangup { .. }))
            .count()
            == 3
    })
    .await;
    let causes: Vec<_> = ev
        .iter()
        .filter_map(|e| {
            if let CallEvent::Hangup { cause, .. } = e {
                Some(*cause)
            } else {
                None
            }
        })
        .collect();
    assert_eq!(causes, vec![HangupCause::AckTimeout; 3]);
    assert!(
        !ev.iter().any(|e| matches!(e, CallEvent::Answered { .. })),
        "never confirmed without an ACK"
    );
    let s = settle(&sut, Duration::from_secs(2)).await;
    assert_eq!(s.active_calls, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hold_resume_by_reinvite_and_info_digit() {
    if !foundation::testing::require_tool("sipp", "sip-tester") {
        return;
    }
    let (sut, _lc) = start(SipOptions::default()).await;
    let mut events = sut.handle.subscribe();
    let r = run("uac_hold_info.xml", sut.udp_addr, "1", "u1").await;
    assert_eq!(r.rc, 0, "{r:?}");
    let ev = collect_events(&mut events, Duration::from_secs(5), |e| {
        e.iter().any(|e| matches!(e, CallEvent::Hangup { .. }))
    })
    .await;
    let dirs: Vec<Direction> = ev
        .iter()
        .filter_map(|e| {
            if let CallEvent::MediaChanged { media, .. } = e {
                Some(media.direction())
            } else {
                None
            }
        })
        .collect();
    assert_eq!(dirs, [Direction::RecvOnly, Direction::SendRecv], "{ev:?}");
    assert!(
        ev.iter()
            .any(|e| matches!(e, CallEvent::Dtmf { digit: '5', .. })),
        "{ev:?}"
    );
    assert!(matches!(
        ev.last(),
        Some(CallEvent::Hangup {
            cause: HangupCause::RemoteBye,
            ..
        })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_timer_refresh_and_expiry() {
    if !foundation::testing::require_tool("sipp", "sip-tester") {
        return;
    }
    let (sut, _lc) = start(SipOptions {
        min_se: 1,
        ..Default::default()
    })
    .await;
    let mut events = sut.handle.subscribe();
    // We refresh: sipp receives our re-INVITE, then hangs up itself.
    let r = run("uac_session_refresh.xml", sut.udp_addr, "1", "u1").await;
    assert_eq!(r.rc, 0, "{r:?}");
    let ev = collect_events(&mut events, Duration::from_secs(3), |e| {
        e.iter().any(|e| matches!(e, CallEvent::Hangup { .. }))
    })
    .await;
    assert!(
        matches!(
            ev.last(),
            Some(CallEvent::Hangup {
                cause: HangupCause::RemoteBye,
                ..
            })
        ),
        "{ev:?}"
    );
    // sipp should refresh and does not: we end the call.
    let r = run("uac_session_expiry.xml", sut.udp_addr, "1", "u1").await;
    assert_eq!(r.rc, 0, "{r:?}");
    let ev = collect_events(&mut events, Duration::from_secs(3), |e| {
        e.iter().any(|e| matches!(e, CallEvent::Hangup { .. }))
    })
    .await;
    assert!(
        matches!(
            ev.last(),
            Some(CallEvent::Hangup {
                cause: HangupCause::SessionExpired,
                ..
            })
        ),
        "{ev:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_answer_after_the_incoming_event() {
    if !foundation::testing::require_tool("sipp", "sip-tester") {
        return;
    }
    let (sut, _lc) = start(SipOptions {
        auto_answer: None,
        ..Default::default()
    })
    .await;
    let mut events = sut.handle.subscribe();
    let dir = scratch("manual-answer");
    let p = free_port().to_string();
    let child = spawn_sipp(
        &dir,
        &[
            "-sn",
            "uac",
            &sut.udp_addr.to_string(),
            "-i",
            "127.0.0.1",
            "-mi",
            "127.0.0.1",
            "-p",
            &p,
            "-m",
            "1",
            "-timeout",
            "10s",
            "-timeout_error",
        ],
    );
    let ev = collect_events(&mut events, Duration::from_secs(5), |e| {
        e.iter().any(|e| matches!(e, CallEvent::Incoming { .. }))
    })
    .await;
    let Some(CallEvent::Incoming {
        call, source, user, ..
    }) = ev.last().cloned()
    else {
        panic!("{ev:?}")
    };
    assert_eq!(source.ip().to_string(), "127.0.0.1");
    assert_eq!(user, None, "no policy: nobody authenticated");
    tokio::time::sleep(Duration::from_millis(300)).await; // it rings meanwhile
    sut.handle.answer(call);
    let r = wait_sipp(&dir, child).await;
    assert_eq!(r.rc, 0, "{r:?}");
    let ev = collect_events(&mut events, Duration::from_secs(3), |e| {
        e.iter().any(|e| matches!(e, CallEvent::Hangup { .. }))
    })
    .await;
    assert!(
        ev.iter().any(|e| matches!(e, CallEvent::Answered { .. })),
        "{ev:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_reject_sends_the_chosen_code() {
    if !foundation::testing::require_tool("sipp", "sip-tester") {
        return;
    }
    let (sut, _lc) = start(SipOptions {
        auto_answer: None,
        ..Default::default()
    })
    .await;
    let mut events = sut.handle.subscribe();
    let dir = scratch("manual-reject");
    let sf = dir.join("uac_expect_refusal.xml");
    std::fs::write(
        &sf,
        std::fs::read_to_string(scenario("uac_expect_refusal.xml"))
            .unwrap()
            .replace("@FINAL@", "486"),
    )
    .unwrap();
    let p = free_port().to_string();
    let child = spawn_sipp(
        &dir,
        &[
            "-sf",
            &sf.display().to_string(),
            &sut.udp_addr.to_string(),
            "-i",
            "127.0.0.1",
            "-mi",
            "127.0.0.1",
            "-p",
            &p,
            "-m",
            "1",
            "-timeout",
            "10s",
            "-timeout_error",
        ],
    );
    let ev = collect_events(&mut events, Duration::from_secs(5), |e| {
        e.iter().any(|e| matches!(e, CallEvent::Incoming { .. }))
    })
    .await;
    let Some(CallEvent::Incoming { call, .. }) = ev.last().cloned() else {
        panic!("{ev:?}")
    };
    sut.handle.reject(call, 486);
    let r = wait_sipp(&dir, child).await;
    assert_eq!(r.rc, 0, "{r:?}");
    let ev = collect_events(&mut events, Duration::from_secs(3), |e| {
        e.iter().any(|e| matches!(e, CallEvent::Hangup { .. }))
    })
    .await;
    assert!(
        matches!(
            ev.last(),
            Some(CallEvent::Hangup {
                cause: HangupCause::Rejected,
                code: Some(486),
                ..
            })
        ),
        "{ev:?}"
    );
    assert_eq!(settle(&sut, Duration::from_secs(2)).await.active_calls, 0);
}
