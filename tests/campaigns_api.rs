//! The campaigns API end to end against the real appliance: roles, validation with the reason,
//! the lifecycle and its refusals, optimistic versions, figures and the attempts export.

mod common;

use std::time::Duration;

use common::{Appliance, api_key, free_port, run};
use serde_json::{Value, json};

async fn send(req: reqwest::RequestBuilder) -> (u16, Value) {
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn config(list_id: i64) -> Value {
    json!({
        "lists": [{"list_id": list_id, "weight": 1}],
        "mode": "progressive",
        "purpose": "informational",
        "caller_id": "+13125550000",
        "queue": "sales",
        "trunk": {"uri": "sip:127.0.0.1:5090", "cps": 5, "max_concurrent": 20},
        "amd": "hang_up",
        "safe_harbor": {"seller": "Acme", "callback_number": "+13125550001", "opt_out_key": "9", "prompt": "safe-harbor.wav"}
    })
}

#[tokio::test]
async fn campaign_lifecycle_roles_validation_and_export() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("leads.csv"),
        "First Name,Phone,Zip\nAda,(312) 555-0100,60601\nAlan,312.555.0101,60601\n",
    )
    .unwrap();
    let out = run(
        dir.path(),
        &[
            "import",
            "leads.csv",
            "--list",
            "spring",
            "--region",
            "US",
            "--json",
        ],
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let list_id = report["list_id"].as_i64().unwrap();
    let (manager, agent, supervisor) = (
        api_key(dir.path(), "campaign-manager"),
        api_key(dir.path(), "agent"),
        api_key(dir.path(), "supervisor"),
    );
    let app = Appliance::start(dir.path(), &[]);
    let c = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let url = |p: &str| app.url(p);

    // Roles: agents may not see or touch campaigns; supervisors watch but do not change.
    let body = json!({"name": "spring", "config": config(list_id)});
    assert_eq!(
        send(
            c.post(url("/api/v1/campaigns"))
                .bearer_auth(&agent)
                .json(&body)
        )
        .await
        .0,
        403
    );
    assert_eq!(
        send(c.get(url("/api/v1/campaigns")).bearer_auth(&agent))
            .await
            .0,
        403
    );
    assert_eq!(
        send(
            c.post(url("/api/v1/campaigns"))
                .bearer_auth(&supervisor)
                .json(&body)
        )
        .await
        .0,
        403
    );
    assert_eq!(
        send(c.post(url("/api/v1/campaigns")).json(&body)).await.0,
        401
    );

    // Validation names the problem.
    let mut bad = config(list_id);
    bad["compliance"] = json!({"min_ring_s": 10});
    let (s, b) = send(
        c.post(url("/api/v1/campaigns"))
            .bearer_auth(&manager)
            .json(&json!({"name": "x", "config": bad})),
    )
    .await;
    assert_eq!(s, 400, "{b}");
    assert!(b["message"].as_str().unwrap().contains("15 s"), "{b}");
    let (s, b) = send(
        c.post(url("/api/v1/campaigns"))
            .bearer_auth(&manager)
            .json(&json!({"name": "x", "config": config(list_id + 99)})),
    )
    .await;
    assert_eq!((s, b["error"].as_str()), (400, Some("bad_request")), "{b}");
    let (s, _) = send(
        c.post(url("/api/v1/campaigns"))
            .bearer_auth(&manager)
            .json(&json!({"name": "x", "config": {"mode": "warp"}})),
    )
    .await;
    assert_eq!(s, 400);

    // Create, read, edit with a version check.
    let (s, created) = send(
        c.post(url("/api/v1/campaigns"))
            .bearer_auth(&manager)
            .json(&body),
    )
    .await;
    assert_eq!(s, 201, "{created}");
    assert_eq!(
        (created["state"].as_str(), created["version"].as_i64()),
        (Some("draft"), Some(1))
    );
    let id = created["id"].as_i64().unwrap();
    assert_eq!(
        send(
            c.post(url("/api/v1/campaigns"))
                .bearer_auth(&manager)
                .json(&body)
        )
        .await
        .0,
        409,
        "name taken"
    );
    let (s, list) = send(c.get(url("/api/v1/campaigns")).bearer_auth(&supervisor)).await;
    assert_eq!((s, list.as_array().unwrap().len()), (200, 1));
    let mut edited = config(list_id);
    edited["trunk"]["cps"] = json!(2);
    let (s, b) = send(
        c.put(url(&format!("/api/v1/campaigns/{id}")))
            .bearer_auth(&manager)
            .json(&json!({"config": edited, "version": 1})),
    )
    .await;
    assert_eq!(
        (
            s,
            b["version"].as_i64(),
            b["config"]["trunk"]["cps"].as_i64()
        ),
        (200, Some(2), Some(2)),
        "{b}"
    );
    let (s, b) = send(
        c.put(url(&format!("/api/v1/campaigns/{id}")))
            .bearer_auth(&manager)
            .json(&json!({"config": edited, "version": 1})),
    )
    .await;
    assert_eq!(s, 409, "an edit based on an old version is refused: {b}");
    assert_eq!(send(c.get(url("/api/v1/campaigns/999"))).await.0, 401);
    assert_eq!(
        send(c.get(url("/api/v1/campaigns/999")).bearer_auth(&manager))
            .await
            .0,
        404
    );

    // Lifecycle: draft → running ↔ paused → completed; anything else is 409.
    let act = |a: &str| {
        c.post(url(&format!("/api/v1/campaigns/{id}/actions")))
            .bearer_auth(&manager)
            .json(&json!({"action": a}))
    };
    assert_eq!(send(act("pause")).await.0, 409, "a draft cannot pause");
    for (a, state) in [
        ("start", "running"),
        ("pause", "paused"),
        ("resume", "running"),
        ("complete", "completed"),
    ] {
        let (s, b) = send(act(a)).await;
        assert_eq!((s, b["state"].as_str()), (200, Some(state)), "{a}: {b}");
    }
    assert_eq!(
        send(act("start")).await.0,
        409,
        "a completed campaign stays completed"
    );
    let (s, _) = send(
        c.put(url(&format!("/api/v1/campaigns/{id}")))
            .bearer_auth(&manager)
            .json(&json!({"config": edited})),
    )
    .await;
    assert_eq!(s, 409, "a completed campaign cannot be edited");

    // Figures and the export (no dials yet: zero, with the cap).
    let (s, stats) = send(
        c.get(url(&format!("/api/v1/campaigns/{id}/stats")))
            .bearer_auth(&supervisor),
    )
    .await;
    assert_eq!(s, 200, "{stats}");
    assert_eq!(
        (stats["attempts"].as_i64(), stats["abandon_cap"].as_f64()),
        (Some(0), Some(0.03)),
        "{stats}"
    );
    let resp = c
        .get(url(&format!("/api/v1/campaigns/{id}/attempts.csv")))
        .bearer_auth(&manager)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let text = resp.text().await.unwrap();
    assert!(text.starts_with("contact_id,lead_id,number,"), "{text}");

    // Every campaign route is in the OpenAPI document.
    let doc: Value = c
        .get(url("/api/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for p in [
        "/api/v1/campaigns",
        "/api/v1/campaigns/{id}",
        "/api/v1/campaigns/{id}/actions",
        "/api/v1/campaigns/{id}/stats",
        "/api/v1/campaigns/{id}/attempts.csv",
    ] {
        assert!(
            doc["paths"][p].is_object(),
            "{p} missing from the OpenAPI document"
        );
    }
}

/// `POST /api/v1/calls`: one call through the same compliance checks as campaigns — placed (201
/// with a contact id, the attempt recorded and sipp rung), or refused 409 with the reason.
#[tokio::test]
async fn single_calls_are_placed_or_refused_with_the_reason() {
    if !foundation::testing::require_tool("sipp", "sip-tester") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("leads.csv"), "Phone\n(312) 555-0100\n").unwrap();
    let out = run(
        dir.path(),
        &[
            "import",
            "leads.csv",
            "--list",
            "one",
            "--region",
            "US",
            "--json",
        ],
        &[],
    );
    let list_id = serde_json::from_slice::<Value>(&out.stdout).unwrap()["list_id"]
        .as_i64()
        .unwrap();
    let (manager, supervisor) = (
        api_key(dir.path(), "campaign-manager"),
        api_key(dir.path(), "supervisor"),
    );
    // The carrier: sipp answering one call.
    let port = free_port();
    let mut carrier = std::process::Command::new("sipp")
        .current_dir(dir.path())
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
            "carrier.log",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let app = Appliance::start(dir.path(), &[]);
    let c = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let url = |p: &str| app.url(p);
    let create = |name: &str, window: (String, String)| {
        let mut cfg = config(list_id);
        cfg["trunk"]["uri"] = json!(format!("sip:127.0.0.1:{port}"));
        cfg["compliance"] = json!({"window": {"start": window.0, "end": window.1}});
        c.post(url("/api/v1/campaigns"))
            .bearer_auth(&manager)
            .json(&json!({"name": name, "config": cfg}))
    };
    let (s, open) = send(create("open", ("00:00".into(), "23:59".into()))).await;
    assert_eq!(s, 201, "{open}");
    // A one-minute window about twelve hours from now in New York, whatever the DST offset.
    let utc_hour = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 3600
        % 24) as i64;
    let closed_hour = (utc_hour - 5 + 12).rem_euclid(24);
    let (s, closed) = send(create(
        "closed",
        (
            format!("{closed_hour:02}:00"),
            format!("{closed_hour:02}:01"),
        ),
    ))
    .await;
    assert_eq!(s, 201, "{closed}");

    // Without a campaign and with no default trunk configured: 400 saying so.
    let (s, b) = send(
        c.post(url("/api/v1/calls"))
            .bearer_auth(&manager)
            .json(&json!({"to": "+12125550123", "queue": "default"})),
    )
    .await;
    assert_eq!(s, 400, "{b}");
    assert!(
        b["message"].as_str().unwrap().contains("dialer.trunk"),
        "{b}"
    );
    assert_eq!(
        send(
            c.post(url("/api/v1/calls"))
                .bearer_auth(&supervisor)
                .json(&json!({"to": "+12125550123"}))
        )
        .await
        .0,
        403
    );
    let (s, b) = send(
        c.post(url("/api/v1/calls"))
            .bearer_auth(&manager)
            .json(&json!({"to": "12", "campaign": open["id"]})),
    )
    .await;
    assert_eq!(s, 400, "an invalid number: {b}");
    // Outside the calling window in the callee's zone: 409 with the reason.
    let (s, b) = send(
        c.post(url("/api/v1/calls"))
            .bearer_auth(&manager)
            .json(&json!({"to": "+12125550123", "campaign": closed["id"]})),
    )
    .await;
    assert_eq!((s, b["error"].as_str()), (409, Some("blocked")), "{b}");
    assert!(b["message"].as_str().unwrap().contains("window"), "{b}");
    // Inside it: placed, recorded, rung.
    let (s, b) = send(c.post(url("/api/v1/calls")).bearer_auth(&manager).json(
        &json!({"to": "(212) 555-0123", "campaign": open["id"], "attributes": {"order": "A-1"}}),
    ))
    .await;
    assert_eq!(s, 201, "{b}");
    let contact = b["contact_id"].as_str().unwrap().to_owned();
    let mut csv = String::new();
    for _ in 0..100 {
        csv = c
            .get(url(&format!(
                "/api/v1/campaigns/{}/attempts.csv",
                open["id"]
            )))
            .bearer_auth(&manager)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if csv.contains(&contact) && csv.contains("+12125550123") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        csv.contains(&contact) && csv.contains("+12125550123"),
        "{csv}"
    );
    let _ = tokio::time::timeout(Duration::from_secs(25), async {
        while carrier.try_wait().unwrap().is_none() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    let _ = carrier.kill();
    let log = std::fs::read_to_string(dir.path().join("carrier.log")).unwrap_or_default();
    // (The dialer sends the E.164 digits, with or without the `+` as the trunk wants.)
    assert!(
        log.contains("INVITE sip:+12125550123@") || log.contains("INVITE sip:12125550123@"),
        "the carrier was asked for the number:\n{log}"
    );
}
