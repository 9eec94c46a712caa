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
    std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[tokio::test]
async fn invite_to_legacy_dials_the_leased_number() {
    if !foundation::testing::require_tool("sipp", "sip-tester") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = Db::connect(&format!("sqlite://{}/b.db", dir.path().display()), 4).await.unwrap();
    db.migrate().await.unwrap();
    pool::create(&db, 0, "t", &PoolSpec {
        name: "to-legacy".into(),
        numbers: vec!["+13125559001".into()],
        direction: Direction::ToLegacy,
        lease_ttl_s: 60,
        cooldown_s: 0,
    })
    .await
    .unwrap();

    // The legacy PBX: sipp answering one call, tracing what it receives.
    let port = free_port();
    let mut legacy = tokio::process::Command::new("sipp")
        .current_dir(dir.path())
        .args(["-sn", "uas", "-i", "127.0.0.1", "-p", &port.to_string(), "-m", "1", "-nostdin", "-timeout", "20s", "-trace_msg", "-message_file", "legacy_msgs.log"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
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
        trunk: Trunk { addr: format!("127.0.0.1:{port}").parse().unwrap(), transport: Transport::Udp, credentials: None },
        mode: LegacyTransferMode::Invite,
        ring_timeout: Duration::from_secs(5),
        carry: HeaderCarriage::Uui,
    };
    let data = serde_json::json!({"customer": "Grace Hopper", "reason": "card lost"});
    let t = transfer_to_legacy(&db, &SystemClock, &sip.handle, CallId(9_999), Some("+13125550123"), "to-legacy", data.clone(), &trunk)
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
    let found = lease::lookup(&db, &SystemClock, "legacy", None, "+13125559001", Some("+13125550123"), true).await.unwrap();
    assert_eq!(found.data, data);
    sip.handle.hangup(leg);
    let _ = tokio::time::timeout(Duration::from_secs(10), legacy.wait()).await;
    let msgs = std::fs::read_to_string(dir.path().join("legacy_msgs.log")).unwrap_or_default();
    assert!(msgs.contains("INVITE sip:+13125559001@"), "the legacy PBX saw the leased DNIS in the Request-URI:\n{msgs}");
    assert!(msgs.contains("To: <sip:+13125559001@") || msgs.contains("To: sip:+13125559001@"), "and in To:\n{msgs}");
    let uui: String = data.to_string().bytes().map(|b| format!("{b:02x}")).collect();
    assert!(msgs.contains(&format!("User-to-User: {uui};encoding=hex")), "the data also rode in User-to-User:\n{msgs}");
}
