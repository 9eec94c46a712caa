//! A call transferred to the legacy platform reaches a real SIP peer (sipp as the legacy PBX)
//! dialling the leased number, and the legacy side finds the data by that number.

use std::time::Duration;

use bridge::calls::{HeaderCarriage, LegacyTransferMode, LegacyTrunk, transfer_to_legacy};
use bridge::lease;
use bridge::pool::{self, Direction, PoolSpec};
use foundation::Db;
use foundation::clock::SystemClock;
use foundation::lifecycle::Lifecycle;
use telephony::sip::call::{CallEvent, CallId, Transport, Trunk};
use telephony::sip::listener;

fn free_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A fresh database with a `to-legacy` pool holding `number`.
async fn db_with_pool(dir: &std::path::Path, number: &str) -> Db {
    let db = Db::connect(&format!("sqlite://{}/b.db", dir.display()), 4)
        .await
        .unwrap();
    db.migrate().await.unwrap();
    pool::create(
        &db,
        0,
        "t",
        &PoolSpec {
            name: "to-legacy".into(),
            numbers: vec![number.into()],
            direction: Direction::ToLegacy,
            lease_ttl_s: 60,
            cooldown_s: 0,
        },
    )
    .await
    .unwrap();
    db
}

/// The legacy PBX: sipp answering one call on `port`, tracing what it receives to
/// `legacy_msgs.log` in `dir`.
fn legacy_pbx(dir: &std::path::Path, port: u16) -> tokio::process::Child {
    tokio::process::Command::new("sipp")
        .current_dir(dir)
        .args([
            "-sn",
            "uas",
            "-i",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-m",
            "1",
            "-nostdin",
            "-timeout",
            "20s",
            "-trace_msg",
            "-message_file",
            "legacy_msgs.log",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

#[tokio::test]
async fn invite_to_legacy_dials_the_leased_number() {
    if !foundation::testing::require_tool("sipp", "sip-tester") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = db_with_pool(dir.path(), "+13125559001").await;

    let port = free_port();
    let mut legacy = legacy_pbx(dir.path(), port);
    tokio::time::sleep(Duration::from_millis(400)).await;

    let config = telephony::Config {
        udp: "127.0.0.1:0".parse().unwrap(),
        tcp: "127.0.0.1:0".parse().unwrap(),
        advertised_address: Some("127.0.0.1".into()),
        rtp_ports: (30000, 30999),
        max_message_bytes: 8192,
    };
    let sip = listener::start(&config, Lifecycle::new()).await.unwrap();
    let mut events = sip.handle.subscribe();
    let trunk = LegacyTrunk {
        trunk: Trunk {
            addr: format!("127.0.0.1:{port}").parse().unwrap(),
            transport: Transport::Udp,
            credentials: None,
        },
        mode: LegacyTransferMode::Invite,
        ring_timeout: Duration::from_secs(5),
        carry: HeaderCarriage::Uui,
    };
    let data = serde_json::json!({"customer": "Grace Hopper", "reason": "card lost"});
    let t = transfer_to_legacy(
        &db,
        &SystemClock,
        &sip.handle,
        CallId(9_999),
        Some("+13125550123"),
        "to-legacy",
        data.clone(),
        &trunk,
    )
    .await
    .unwrap();
    assert_eq!(t.lease.dnis, "+13125559001");
    let leg = t.leg.unwrap();
    let answered = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match events.recv().await.unwrap() {
                CallEvent::Answered { call, .. } if call == leg => return true,
                CallEvent::Hangup { call, .. } if call == leg => return false,
                _ => {}
            }
        }
    })
    .await
    .unwrap();
    assert!(answered, "the legacy PBX answered the transferred call");

    // The legacy side looks the data up by the number it was called on (and the caller's ANI).
    let found = lease::lookup(
        &db,
        &SystemClock,
        "legacy",
        None,
        "+13125559001",
        Some("+13125550123"),
        true,
    )
    .await
    .unwrap();
    assert_eq!(found.data, data);
    sip.handle.hangup(leg);
    let _ = tokio::time::timeout(Duration::from_secs(10), legacy.wait()).await;
    let msgs = std::fs::read_to_string(dir.path().join("legacy_msgs.log")).unwrap_or_default();
    assert!(
        msgs.contains("INVITE sip:+13125559001@"),
        "the legacy PBX saw the leased DNIS in the Request-URI:\n{msgs}"
    );
    assert!(
        msgs.contains("To: <sip:+13125559001@") || msgs.contains("To: sip:+13125559001@"),
        "and in To:\n{msgs}"
    );
    let uui: String = data
        .to_string()
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert!(
        msgs.contains(&format!("User-to-User: {uui};encoding=hex")),
        "the data also rode in User-to-User:\n{msgs}"
    );
}

/// REFER mode: the caller's phone (baresip, a real softphone that follows REFER) is referred to
/// `sip:<leased DNIS>@<legacy trunk>` and places that call itself; the legacy PBX (sipp) sees the
/// DNIS and finds the data by it.
#[tokio::test]
async fn refer_to_legacy_sends_the_callers_phone_to_the_leased_number() {
    if !foundation::testing::require_tool("sipp", "sip-tester")
        || !foundation::testing::require_tool("baresip", "baresip-core")
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = db_with_pool(dir.path(), "+13125559002").await;

    let legacy_port = free_port();
    let mut legacy = legacy_pbx(dir.path(), legacy_port);

    // The caller's phone: baresip answering by itself, silent microphone, no registration.
    let phone_port = free_port();
    let conf = format!(
        "poll_method epoll\nsip_listen 127.0.0.1:{phone_port}\nnet_interface 127.0.0.1\n\
audio_player aubridge,sink\naudio_alert aubridge,sink\naudio_source aubridge,src\n\
rtp_ports 32000-32999\nmodule_path /usr/lib/baresip/modules\nmodule g711.so\nmodule aubridge.so\n\
module_tmp uuid.so\nmodule_tmp account.so\nmodule_app menu.so\n"
    );
    std::fs::write(dir.path().join("config"), conf).unwrap();
    std::fs::write(
        dir.path().join("accounts"),
        "<sip:caller@127.0.0.1>;regint=0;answermode=auto;audio_codecs=PCMU\n",
    )
    .unwrap();
    let log = std::fs::File::create(dir.path().join("baresip.log")).unwrap();
    let mut phone = std::process::Command::new("baresip")
        .arg("-f")
        .arg(dir.path())
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let phone_log = || std::fs::read_to_string(dir.path().join("baresip.log")).unwrap_or_default();
    tokio::time::sleep(Duration::from_millis(800)).await;

    let config = telephony::Config {
        udp: "127.0.0.1:0".parse().unwrap(),
        tcp: "127.0.0.1:0".parse().unwrap(),
        advertised_address: Some("127.0.0.1".into()),
        rtp_ports: (33000, 33999),
        max_message_bytes: 8192,
    };
    let sip = listener::start(&config, Lifecycle::new()).await.unwrap();
    let mut events = sip.handle.subscribe();
    // The caller's leg in Dialbridge (here placed by us; in production the caller dialled in).
    let caller_leg = sip.handle.originate(telephony::sip::call::Originate {
        to_user: "caller".into(),
        trunks: vec![Trunk {
            addr: format!("127.0.0.1:{phone_port}").parse().unwrap(),
            transport: Transport::Udp,
            credentials: None,
        }],
        ring_timeout: Duration::from_secs(5),
        ..Default::default()
    });
    let up = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match events.recv().await.unwrap() {
                CallEvent::Answered { call, .. } if call == caller_leg => return true,
                CallEvent::Hangup { call, .. } if call == caller_leg => return false,
                _ => {}
            }
        }
    })
    .await
    .unwrap();
    assert!(up, "the phone answered:\n{}", phone_log());

    let trunk = LegacyTrunk {
        trunk: Trunk {
            addr: format!("127.0.0.1:{legacy_port}").parse().unwrap(),
            transport: Transport::Udp,
            credentials: None,
        },
        mode: LegacyTransferMode::Refer,
        ring_timeout: Duration::from_secs(5),
        carry: HeaderCarriage::None,
    };
    let data = serde_json::json!({"account": "A-77", "intent": "billing"});
    let t = transfer_to_legacy(
        &db,
        &SystemClock,
        &sip.handle,
        caller_leg,
        Some("+13125550177"),
        "to-legacy",
        data.clone(),
        &trunk,
    )
    .await
    .unwrap();
    assert_eq!(
        (t.lease.dnis.as_str(), t.leg),
        ("+13125559002", None),
        "REFER mode places no leg of ours"
    );
    // The phone accepts the REFER and reports the new call's success by NOTIFY (sipfrag 200).
    let progressed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match events.recv().await.unwrap() {
                CallEvent::TransferProgress { call, code } if call == caller_leg && code >= 200 => {
                    return code;
                }
                CallEvent::Hangup { call, .. } if call == caller_leg => return 0,
                _ => {}
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no final NOTIFY:\n{}", phone_log()));
    assert_eq!(progressed, 200, "{}", phone_log());
    let found = lease::lookup(
        &db,
        &SystemClock,
        "legacy",
        None,
        "+13125559002",
        None,
        true,
    )
    .await
    .unwrap();
    assert_eq!(found.data, data);
    sip.handle.hangup(caller_leg);
    let _ = tokio::time::timeout(Duration::from_secs(10), legacy.wait()).await;
    let _ = legacy.start_kill();
    let _ = phone.kill();
    let _ = phone.wait();
    let msgs = std::fs::read_to_string(dir.path().join("legacy_msgs.log")).unwrap_or_default();
    assert!(
        msgs.contains("INVITE sip:+13125559002@127.0.0.1"),
        "the legacy PBX got the phone's call to the leased DNIS:\n{msgs}"
    );
}
