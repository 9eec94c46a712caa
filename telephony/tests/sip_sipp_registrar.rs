//! Registration both ways and inbound admission: sipp phones registering to Dialbridge with
//! digest, Dialbridge registering to a sipp registrar, the trunk ACL, and endpoints that must
//! authenticate their INVITEs.

mod sip_common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use sip_common::*;
use telephony::sip::call::{CallEvent, Registration, Transport, Trunk};
use telephony::sip::digest::Credentials;
use telephony::sip::listener::SipOptions;
use telephony::sip::registrar::InboundPolicy;

fn scenario(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sip_scenarios")
        .join(name)
        .display()
        .to_string()
}

fn policy(trusted: &[&str]) -> InboundPolicy {
    let users = HashMap::from([("agent1".to_string(), "pw1".to_string())]);
    InboundPolicy::with_users(
        trusted.iter().map(|a| a.parse().unwrap()).collect(),
        "dialbridge",
        users,
    )
}

fn register_scenario(password: &str, fin: u16, contact_port: u16) -> String {
    let text = std::fs::read_to_string(scenario("uac_register.xml"))
        .unwrap()
        .replace("@CONTACT_PORT@", &contact_port.to_string())
        .replace("@PASSWORD@", password)
        .replace("@FINAL@", &fin.to_string());
    let path = scratch("register-scenario").join("uac_register.xml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phones_register_with_digest_and_wrong_passwords_get_403() {
    if !foundation::testing::require_tool("sipp", "sip-tester") {
        return;
    }
    let (sut, _lc) = start(SipOptions {
        policy: Some(policy(&[])),
        ..Default::default()
    })
    .await;
    let dir = scratch("register-ok");
    let port = free_port();
    let p = port.to_string();
    let sf = register_scenario("pw1", 200, port);
    let r = run_sipp(
        &dir,
        &[
            "-sf",
            &sf,
            &sut.udp_addr.to_string(),
            "-s",
            "agent1",
            "-i",
            "127.0.0.1",
            "-p",
            &p,
            "-m",
            "1",
            "-timeout",
            "10s",
            "-timeout_error",
        ],
    )
    .await;
    assert_eq!(r.rc, 0, "{r:?}");
    let b = sut.handle.bindings("agent1").await;
    assert_eq!(b.len(), 1, "{b:?}");
    assert_eq!(b[0].contact, format!("sip:agent1@127.0.0.1:{port}"));

    let dir = scratch("register-bad");
    let p2n = free_port();
    let p2 = p2n.to_string();
    let sf = register_scenario("not-the-password", 403, p2n);
    let r = run_sipp(
        &dir,
        &[
            "-sf",
            &sf,
            &sut.udp_addr.to_string(),
            "-s",
            "agent1",
            "-i",
            "127.0.0.1",
            "-p",
            &p2,
            "-m",
            "1",
            "-timeout",
            "10s",
            "-timeout_error",
        ],
    )
    .await;
    assert_eq!(r.rc, 0, "{r:?}");
    assert_eq!(
        sut.handle.bindings("agent1").await.len(),
        1,
        "a refused REGISTER adds nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untrusted_callers_must_authenticate_trusted_trunks_need_not() {
    if !foundation::testing::require_tool("sipp", "sip-tester") {
        return;
    }
    // 127.0.0.1 is not a trusted trunk: a plain INVITE is challenged and sipp's uac fails.
    let (sut, _lc) = start(SipOptions {
        policy: Some(policy(&["127.0.0.9"])),
        ..Default::default()
    })
    .await;
    let dir = scratch("acl-refused");
    let p = free_port().to_string();
    let r = run_sipp(
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
            "3",
            "-r",
            "10",
            "-timeout",
            "10s",
        ],
    )
    .await;
    assert_ne!(
        r.rc, 0,
        "unauthenticated calls from outside the ACL must fail: {r:?}"
    );
    assert_eq!(r.stat("SuccessfulCall(C)"), 0);
    assert_eq!(sut.handle.stats().await.unwrap().inbound_calls_created, 0);

    // The same caller with digest credentials gets through, and the call says who it is.
    let mut events = sut.handle.subscribe();
    let dir = scratch("acl-auth");
    let p = free_port().to_string();
    let r = run_sipp(
        &dir,
        &[
            "-sf",
            &scenario("uac_auth_invite.xml"),
            &sut.udp_addr.to_string(),
            "-i",
            "127.0.0.1",
            "-mi",
            "127.0.0.1",
            "-p",
            &p,
            "-m",
            "3",
            "-r",
            "10",
            "-timeout",
            "10s",
            "-timeout_error",
        ],
    )
    .await;
    assert_eq!(r.rc, 0, "{r:?}");
    assert_eq!(r.stat("SuccessfulCall(C)"), 3);
    assert_eq!(sut.handle.stats().await.unwrap().inbound_calls_created, 3);
    let ev = collect_events(&mut events, Duration::from_secs(2), |e| {
        e.iter()
            .filter(|e| matches!(e, CallEvent::Incoming { .. }))
            .count()
            == 3
    })
    .await;
    let users: Vec<_> = ev
        .iter()
        .filter_map(|e| {
            if let CallEvent::Incoming { user, .. } = e {
                Some(user.clone())
            } else {
                None
            }
        })
        .collect();
    assert_eq!(users, vec![Some("agent1".to_string()); 3]);

    // With 127.0.0.1 as a trusted trunk, plain calls are accepted.
    let (sut, _lc) = start(SipOptions {
        policy: Some(policy(&["127.0.0.1"])),
        ..Default::default()
    })
    .await;
    let dir = scratch("acl-trusted");
    let p = free_port().to_string();
    let r = run_sipp(
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
            "3",
            "-r",
            "10",
            "-timeout",
            "10s",
            "-timeout_error",
        ],
    )
    .await;
    assert_eq!(r.rc, 0, "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn we_register_to_a_trunk_with_digest_then_unregister() {
    if !foundation::testing::require_tool("sipp", "sip-tester") {
        return;
    }
    let (sut, _lc) = start(SipOptions::default()).await;
    let mut rx = sut.handle.subscribe();
    let dir = scratch("uas-registrar");
    let port = free_port();
    let p = port.to_string();
    let sf = scenario("uas_registrar.xml");
    let child = spawn_sipp(
        &dir,
        &[
            "-sf",
            &sf,
            "-i",
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
        credentials: Some(Credentials {
            username: "dialbridge".into(),
            password: "trunkpw".into(),
        }),
    };
    let id = sut.handle.register(Registration {
        trunk,
        user: "dialbridge".into(),
        expires: 300,
    });
    let ev = collect_events(&mut rx, Duration::from_secs(5), |e| {
        e.iter()
            .any(|e| matches!(e, CallEvent::Registration { .. }))
    })
    .await;
    assert!(
        matches!(ev.last(), Some(CallEvent::Registration { registration, registered: true, code: Some(200), expires: 60 }) if *registration == id),
        "{ev:?}"
    );
    sut.handle.unregister(id);
    let ev = collect_events(&mut rx, Duration::from_secs(5), |e| {
        e.iter()
            .any(|e| matches!(e, CallEvent::Registration { .. }))
    })
    .await;
    assert!(
        matches!(
            ev.last(),
            Some(CallEvent::Registration {
                registered: false,
                code: Some(200),
                ..
            })
        ),
        "{ev:?}"
    );
    let r = wait_sipp(&dir, child).await;
    assert_eq!(r.rc, 0, "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registered_phone_is_called_at_its_contact() {
    if !foundation::testing::require_tool("sipp", "sip-tester") {
        return;
    }
    let (sut, _lc) = start(SipOptions {
        policy: Some(policy(&[])),
        ..Default::default()
    })
    .await;
    let mut rx = sut.handle.subscribe();
    // The phone: a sipp callee on one port, registered from another.
    let phone_dir = scratch("phone-uas");
    let phone_port = free_port();
    let pp = phone_port.to_string();
    let phone = spawn_sipp(
        &phone_dir,
        &[
            "-sn",
            "uas",
            "-i",
            "127.0.0.1",
            "-mi",
            "127.0.0.1",
            "-p",
            &pp,
            "-m",
            "1",
            "-timeout",
            "15s",
            "-timeout_error",
        ],
    );
    let dir = scratch("phone-register");
    let p = free_port().to_string();
    let sf = register_scenario("pw1", 200, phone_port);
    let r = run_sipp(
        &dir,
        &[
            "-sf",
            &sf,
            &sut.udp_addr.to_string(),
            "-s",
            "agent1",
            "-i",
            "127.0.0.1",
            "-p",
            &p,
            "-m",
            "1",
            "-timeout",
            "10s",
            "-timeout_error",
        ],
    )
    .await;
    assert_eq!(r.rc, 0, "{r:?}");
    assert!(
        sut.handle
            .originate_registered("nobody", "ivr", Duration::from_secs(5))
            .await
            .is_none()
    );
    let id = sut
        .handle
        .originate_registered("agent1", "ivr", Duration::from_secs(5))
        .await
        .expect("agent1 is registered");
    let ev = collect_events(&mut rx, Duration::from_secs(5), |e| {
        e.iter().any(|e| {
            e.call() == Some(id)
                && matches!(e, CallEvent::Answered { .. } | CallEvent::Hangup { .. })
        })
    })
    .await;
    assert!(
        matches!(ev.last(), Some(CallEvent::Answered { .. })),
        "{ev:?}"
    );
    sut.handle.hangup(id);
    let r = wait_sipp(&phone_dir, phone).await;
    assert_eq!((r.rc, r.stat("SuccessfulCall(C)")), (0, 1), "{r:?}");
}
