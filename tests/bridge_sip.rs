//! The bridge on the call path with a real SIP peer: sipp calls a `from_legacy` pool number as the
//! legacy platform would, and the call picks up the data leased for it.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{Appliance, QUEUE_FLOW, route_numbers, run};
use serde_json::{Value, json};

#[tokio::test]
async fn a_call_from_legacy_picks_up_its_leased_data() {
    if !foundation::testing::require_tool("sipp", "sip-tester") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let admin =
        String::from_utf8(run(dir.path(), &["apikey", "create", "--role", "admin"], &[]).stdout)
            .unwrap()
            .trim()
            .to_owned();
    let app = Appliance::start(dir.path(), &[]);
    let c = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let pool = json!({"name": "legacy-in", "numbers": ["+13125550001", "+13125550002"], "direction": "from_legacy"});
    assert_eq!(
        c.post(app.url("/api/v1/bridge/pools"))
            .bearer_auth(&admin)
            .json(&pool)
            .send()
            .await
            .unwrap()
            .status(),
        201
    );
    let lease: Value = c
        .post(app.url("/api/v1/bridge/leases"))
        .bearer_auth(&admin)
        .json(&json!({"pool": "legacy-in", "data": {"customer": "Ada Lovelace", "account": "A-42", "intent": "billing"}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let dnis = lease["dnis"].as_str().unwrap().to_owned();
    let other = if dnis == "+13125550001" {
        "+13125550002"
    } else {
        "+13125550001"
    };
    // Both pool numbers run a flow that queues the caller (the contact then waits for an agent).
    route_numbers(
        &app,
        &admin,
        "from-legacy",
        QUEUE_FLOW,
        &["+13125550001", "+13125550002"],
    )
    .await;

    // The legacy platform transfers the caller to the leased number; then a stranger dials the other.
    for (number, tag) in [(dnis.as_str(), "a"), (other, "b")] {
        let work = dir.path().join(tag);
        std::fs::create_dir_all(&work).unwrap();
        let status = Command::new("sipp")
            .current_dir(&work)
            .args([
                "-sn",
                "uac",
                "-s",
                number,
                "-m",
                "1",
                "-i",
                "127.0.0.1",
                "-p",
                "0",
                "-nostdin",
                "-timeout",
                "20s",
                "-timeout_error",
                "-d",
                "200",
            ])
            .arg(&app.sip_udp)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "sipp call to {number} failed: {status:?}");
    }

    let mut arrivals = Value::Null;
    for _ in 0..50 {
        arrivals = c
            .get(app.url("/api/v1/bridge/arrivals"))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if arrivals.as_array().is_some_and(|a| a.len() == 2) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let list = arrivals.as_array().expect("arrivals");
    let mine = list
        .iter()
        .find(|a| a["dnis"] == dnis.as_str())
        .expect("the leased number's call");
    assert_eq!(mine["result"], "consumed");
    assert_eq!(mine["lease_id"], lease["lease_id"]);
    assert_eq!(mine["data"]["customer"], "Ada Lovelace");
    let stranger = list
        .iter()
        .find(|a| a["dnis"] == other)
        .expect("the stranger's call");
    assert_eq!(
        (stranger["result"].as_str(), &stranger["data"]),
        (Some("unknown"), &Value::Null),
        "no data for a number with no lease"
    );
    // The data are on the contact record, where agents and searches see them; the stranger's
    // contact has none.
    let contact_of = |number: &str| {
        let req = c
            .get(app.url(&format!(
                "/api/v1/contacts?number={}",
                number.replace('+', "%2B")
            )))
            .bearer_auth(&admin);
        async move {
            let all: Value = req.send().await.unwrap().json().await.unwrap();
            all.as_array().expect("contacts")[0].clone()
        }
    };
    let contact = contact_of(&dnis).await;
    assert_eq!(
        (
            contact["attributes"]["customer"].as_str(),
            contact["attributes"]["intent"].as_str()
        ),
        (Some("Ada Lovelace"), Some("billing")),
        "{contact}"
    );
    assert_eq!(
        contact["attributes"]["bridge_result"], "consumed",
        "{contact}"
    );
    let contact = contact_of(other).await;
    assert!(contact["attributes"].get("customer").is_none(), "{contact}");
    assert_eq!(
        contact["attributes"]["bridge_result"], "unknown",
        "{contact}"
    );
}
