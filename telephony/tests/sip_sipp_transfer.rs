//! Blind transfer by REFER with NOTIFY sipfrag progress, both ways, against sipp.

mod sip_common;

use std::path::PathBuf;
use std::time::Duration;

use sip_common::*;
use telephony::sip::call::{CallEvent, HangupCause, Originate, Transport, Trunk};
use telephony::sip::listener::SipOptions;

fn scenario(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sip_scenarios")
        .join(name)
        .display()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_refers_us_and_gets_sipfrag_notifies() {
    if !foundation::testing::require_tool("sipp", "sip-tester") {
        return;
    }
    let (sut, _lc) = start(SipOptions::default()).await;
    let mut rx = sut.handle.subscribe();
    let dir = scratch("refer-in");
    let p = free_port().to_string();
    let child = spawn_sipp(
        &dir,
        &[
            "-sf",
            &scenario("uac_refer.xml"),
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
            "15s",
            "-timeout_error",
        ],
    );
    let ev = collect_events(&mut rx, Duration::from_secs(10), |e| {
        e.iter()
            .any(|e| matches!(e, CallEvent::TransferRequested { .. }))
    })
    .await;
    let Some(CallEvent::TransferRequested { call, target }) = ev.last().cloned() else {
        panic!("{ev:?}")
    };
    assert_eq!(
        target, "sip:agent7@127.0.0.1:5999",
        "the compact r: Refer-To was read"
    );
    sut.handle.transfer_notify(call, 100);
    tokio::time::sleep(Duration::from_millis(200)).await;
    sut.handle.transfer_notify(call, 200);
    let r = wait_sipp(&dir, child).await;
    assert_eq!(r.rc, 0, "{r:?}");
    let ev = collect_events(&mut rx, Duration::from_secs(3), |e| {
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn we_refer_the_peer_and_follow_its_notify() {
    if !foundation::testing::require_tool("sipp", "sip-tester") {
        return;
    }
    let (sut, _lc) = start(SipOptions::default()).await;
    let mut rx = sut.handle.subscribe();
    let dir = scratch("refer-out");
    let port = free_port();
    let p = port.to_string();
    let child = spawn_sipp(
        &dir,
        &[
            "-sf",
            &scenario("uas_refer_target.xml"),
            "-i",
            "127.0.0.1",
            "-mi",
            "127.0.0.1",
            "-p",
            &p,
            "-m",
            "1",
            "-timeout",
            "15s",
            "-timeout_error",
        ],
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    let trunk = Trunk {
        addr: format!("127.0.0.1:{port}").parse().unwrap(),
        transport: Transport::Udp,
        credentials: None,
    };
    let id = sut.handle.originate(Originate {
        to_user: "callee".into(),
        trunks: vec![trunk],
        ..Default::default()
    });
    let ev = collect_events(&mut rx, Duration::from_secs(5), |e| {
        e.iter()
            .any(|e| matches!(e, CallEvent::Answered { .. } | CallEvent::Hangup { .. }))
    })
    .await;
    assert!(
        matches!(ev.last(), Some(CallEvent::Answered { .. })),
        "{ev:?}"
    );
    sut.handle.transfer(id, "sip:agent9@127.0.0.1:5999");
    let ev = collect_events(&mut rx, Duration::from_secs(5), |e| {
        e.iter()
            .any(|e| matches!(e, CallEvent::TransferProgress { .. }))
    })
    .await;
    assert!(
        matches!(
            ev.last(),
            Some(CallEvent::TransferProgress { code: 200, .. })
        ),
        "{ev:?}"
    );
    sut.handle.hangup(id);
    let r = wait_sipp(&dir, child).await;
    assert_eq!(r.rc, 0, "{r:?}");
}
