//! Transfers out of a flow on real calls: `TransferToLegacyPlatform` leases a DNIS from the
//! bridge pool and bridges the caller to the legacy PBX (a sipp UAS) dialling that number with
//! the data in a User-to-User header, the legacy side finds the data by the number; and
//! `TransferParticipantToThirdParty` bridges the caller to an external number over a trunk.

mod support;

use std::time::Duration;

use foundation::clock::SystemClock;
use inbound::contact::FlowOutcome;
use support::*;

const FLOWS: [(&str, &str, &str); 2] = [
    (
        "to-legacy",
        "+15550003000",
        r#"{"Version": "2019-10-30", "StartAction": "attrs", "Actions": [
          {"Identifier": "attrs", "Type": "UpdateContactAttributes", "Parameters": {"Attributes": {"account": "A-77"}},
           "Transitions": {"NextAction": "legacy", "Errors": [{"NextAction": "bye", "ErrorType": "NoMatchingError"}]}},
          {"Identifier": "legacy", "Type": "TransferToLegacyPlatform",
           "Parameters": {"Pool": "to-legacy", "Data": {"account": "$.Attributes.account", "ani": "$.CustomerEndpoint.Address"}},
           "Transitions": {"Errors": [{"NextAction": "bye", "ErrorType": "NoNumberAvailable"}, {"NextAction": "bye", "ErrorType": "CallFailed"}]}},
          {"Identifier": "bye", "Type": "DisconnectParticipant", "Parameters": {}, "Transitions": {}}]}"#,
    ),
    (
        "to-number",
        "+15550004000",
        r#"{"Version": "2019-10-30", "StartAction": "xfer", "Actions": [
          {"Identifier": "xfer", "Type": "TransferParticipantToThirdParty",
           "Parameters": {"ThirdPartyPhoneNumber": "+15557770000", "ThirdPartyConnectionTimeoutSeconds": "10", "ContinueFlowExecution": "False"},
           "Transitions": {"NextAction": "bye", "Errors": [{"NextAction": "bye", "ErrorType": "CallFailed"}, {"NextAction": "bye", "ErrorType": "ConnectionTimeLimitExceeded"}]}},
          {"Identifier": "bye", "Type": "DisconnectParticipant", "Parameters": {}, "Transitions": {}}]}"#,
    ),
];

/// `n` free ports at least 4 apart (sipp's media socket also takes +2).
fn distinct_ports(n: usize) -> Vec<u16> {
    let mut out: Vec<u16> = Vec::new();
    while out.len() < n {
        let p = free_port();
        if out.iter().all(|&q| p.abs_diff(q) > 4) {
            out.push(p);
        }
    }
    out
}

fn uas(dir: &std::path::Path, port: u16, media: u16, msgs: &str) -> tokio::process::Child {
    sipp(
        dir,
        &[
            "-sf".into(),
            "uas.xml".into(),
            "-p".into(),
            port.to_string(),
            "-mp".into(),
            media.to_string(),
            "-m".into(),
            "1".into(),
            "-timeout".into(),
            "60s".into(),
            "-trace_msg".into(),
            "-message_file".into(),
            msgs.into(),
        ],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flows_transfer_callers_to_the_legacy_platform_and_to_external_numbers() {
    if !foundation::testing::require_tool("sipp", "sip-tester") {
        return;
    }
    let ports = distinct_ports(4);
    let (legacy_port, pstn_port) = (ports[0], ports[1]);
    let trunk = |port: u16| telephony::sip::call::Trunk {
        addr: format!("127.0.0.1:{port}").parse().unwrap(),
        transport: telephony::sip::call::Transport::Udp,
        credentials: None,
    };
    let sut = start(43000, |cfg| {
        cfg.legacy = Some(bridge::calls::LegacyTrunk {
            trunk: trunk(legacy_port),
            mode: bridge::calls::LegacyTransferMode::Invite,
            ring_timeout: Duration::from_secs(5),
            carry: bridge::calls::HeaderCarriage::Uui,
        });
        cfg.trunks = vec![trunk(pstn_port)];
    })
    .await;
    let dir = sut.dir.path().to_path_buf();
    for (name, did, doc) in FLOWS {
        inbound::store::import_flow(&sut.db, name, doc, 1_000, "test")
            .await
            .unwrap();
        inbound::store::assign_number(&sut.db, did, name, 1_000, "test")
            .await
            .unwrap();
    }
    let pool = bridge::pool::PoolSpec {
        name: "to-legacy".into(),
        numbers: vec!["+13125559001".into()],
        direction: bridge::pool::Direction::ToLegacy,
        lease_ttl_s: 60,
        cooldown_s: 0,
    };
    bridge::pool::create(&sut.db, 0, "test", &pool)
        .await
        .unwrap();
    write(&dir, "uas.xml", &agent_xml(30_000));
    let legacy = uas(&dir, legacy_port, ports[2], "legacy_msgs.log");
    let pstn = uas(&dir, pstn_port, ports[3], "pstn_msgs.log");
    tokio::time::sleep(Duration::from_millis(300)).await;

    write(&dir, "c.xml", &caller_xml(Dtmf::Pt96("5"), 1500, 1500));
    for (_, did, _) in FLOWS {
        let out = wait_sipp(
            sipp(
                &dir,
                &caller_args(sut.sip.udp_addr.port(), "c.xml", did, 1, 1, 1),
            ),
            Duration::from_secs(60),
        )
        .await;
        assert_eq!(out.rc, 0, "caller to {did}: {}", out.output);
    }
    // Each far end was bridged to the caller and got the BYE when the caller left.
    for (name, child) in [("legacy", legacy), ("pstn", pstn)] {
        let out = wait_sipp(child, Duration::from_secs(30)).await;
        assert_eq!(out.rc, 0, "{name}: {}", out.output);
    }
    let legacy_msgs = std::fs::read_to_string(dir.join("legacy_msgs.log")).unwrap();
    assert!(
        legacy_msgs.contains("INVITE sip:+13125559001@"),
        "the legacy PBX is called on the leased DNIS"
    );
    assert!(
        legacy_msgs.contains("User-to-User:"),
        "the data also ride in UUI"
    );
    let pstn_msgs = std::fs::read_to_string(dir.join("pstn_msgs.log")).unwrap();
    assert!(pstn_msgs.contains("INVITE sip:+15557770000@"));

    eventually("both contacts closed", Duration::from_secs(10), || async {
        let rows = contact_rows(&sut.db).await;
        rows.len() == 2 && rows.iter().all(|r| r.1.is_some())
    })
    .await;
    let recs = contacts(&sut.db).await;
    assert_eq!(
        recs[0].outcome,
        Some(FlowOutcome::TransferredToLegacy {
            pool: "to-legacy".into()
        }),
        "{:?}",
        recs[0].stages
    );
    assert!(
        recs[0]
            .stages
            .iter()
            .any(|s| s.stage == "legacy_transfer" && s.detail.contains("Connected")),
        "{:?}",
        recs[0].stages
    );
    assert_eq!(
        recs[1].outcome,
        Some(FlowOutcome::TransferredToNumber {
            number: "+15557770000".into()
        }),
        "{:?}",
        recs[1].stages
    );
    // The legacy side looks the data up by the number it was called on.
    let found = bridge::lease::lookup(
        &sut.db,
        &SystemClock,
        "legacy-pbx",
        None,
        "+13125559001",
        None,
        true,
    )
    .await
    .unwrap();
    assert_eq!(found.data["account"], "A-77");
    assert_eq!(found.data["ani"], "+13125550100");
}
