//! Graceful shutdown with a call in progress: new calls get 503 at once and `/readyz` answers 503,
//! the call in progress gets the (default, 5 s) drain time, then it is ended, and the appliance
//! exits 0 within 10 s.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Appliance, QUEUE_FLOW, admin_key, route_numbers, sipp_uac};

#[tokio::test]
async fn sigterm_drains_calls_then_exits_zero() {
    if !foundation::testing::require_tool("sipp", "sip-tester") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let key = admin_key(dir.path());
    // The default drain time (5 s): the 10 s bound of the issue is for the defaults.
    let mut app = Appliance::start(dir.path(), &[]);
    route_numbers(&app, &key, "hold", QUEUE_FLOW, &["+13125550100"]).await;
    let http = reqwest::Client::new();
    let ready = http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200, "ready before SIGTERM");
    let long = dir.path().join("long");
    let late = dir.path().join("late");
    std::fs::create_dir_all(&long).unwrap();
    std::fs::create_dir_all(&late).unwrap();

    // A call that would last 20 s is up when SIGTERM arrives.
    let mut in_progress = sipp_uac(&long, &app.sip_udp, "+13125550100", 20_000);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let pid = app.child.id().to_string();
    let t0 = Instant::now();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Readiness drops at once, so a load balancer stops sending work here.
    let draining = http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(draining.status(), 503, "/readyz while draining");
    let body: serde_json::Value = draining.json().await.unwrap();
    assert_eq!(body["draining"], true, "{body}");

    // A new call during the drain is refused with 503.
    let mut refused = sipp_uac(&late, &app.sip_udp, "+13125550100", 100);
    let refused_status = refused.wait().unwrap();
    assert!(
        !refused_status.success(),
        "a call placed while draining must fail"
    );
    let msgs = std::fs::read_to_string(late.join("msgs.log")).unwrap_or_default();
    assert!(msgs.contains("SIP/2.0 503"), "refused with 503:\n{msgs}");

    // The appliance ends the remaining call after the drain time and exits 0.
    let status = loop {
        if let Some(s) = app.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "no exit within 10 s of SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let took = t0.elapsed();
    assert!(
        status.success(),
        "exit status {status:?}\n{}",
        app.log_text()
    );
    assert!(
        took >= Duration::from_secs(5),
        "the call in progress got its drain time ({took:?})"
    );
    println!("SIGTERM → exit 0 in {took:?} with a call in progress and the default 5 s drain");
    let _ = in_progress.wait();
    let msgs = std::fs::read_to_string(long.join("msgs.log")).unwrap_or_default();
    assert!(
        msgs.contains("BYE sip:"),
        "the call in progress was ended with a BYE:\n{msgs}"
    );
    let calls = call_records(dir.path()).await;
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(
        (calls[0].0.as_str(), calls[0].1.as_deref()),
        ("ended", Some("shutdown")),
        "{calls:?}"
    );
}

/// (state, cause, outcome) of every call record, oldest first.
async fn call_records(dir: &std::path::Path) -> Vec<(String, Option<String>, Option<String>)> {
    let db = foundation::Db::connect(&format!("sqlite://{}/data/dialbridge.db", dir.display()), 1)
        .await
        .unwrap();
    let rows = sqlx::query_as("SELECT state, cause, outcome FROM calls ORDER BY id")
        .fetch_all(db.pool())
        .await
        .unwrap();
    db.close().await;
    rows
}

#[tokio::test]
async fn a_killed_appliance_closes_its_open_calls_as_interrupted_when_it_restarts() {
    if !foundation::testing::require_tool("sipp", "sip-tester") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let key = admin_key(dir.path());
    let mut app = Appliance::start(dir.path(), &[]);
    route_numbers(&app, &key, "hold", QUEUE_FLOW, &["+13125550100"]).await;
    let work = dir.path().join("call");
    std::fs::create_dir_all(&work).unwrap();
    let mut call = sipp_uac(&work, &app.sip_udp, "+13125550100", 20_000);
    let mut up = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let calls = call_records(dir.path()).await;
        if calls.first().is_some_and(|c| c.0 == "answered") {
            up = true;
            break;
        }
    }
    assert!(up, "the call was answered and recorded");
    app.child.kill().unwrap(); // SIGKILL: no chance to close anything
    app.child.wait().unwrap();
    let _ = call.kill();
    assert_eq!(
        call_records(dir.path()).await[0].0,
        "answered",
        "left open by the crash"
    );

    let key = admin_key(dir.path());
    let app = Appliance::start(dir.path(), &[]);
    route_numbers(&app, &key, "hold", QUEUE_FLOW, &["+13125550100"]).await;
    let calls = call_records(dir.path()).await;
    assert_eq!(
        calls[0],
        (
            "ended".to_owned(),
            Some("node_stopped".to_owned()),
            Some("interrupted".to_owned())
        )
    );
    assert!(app.log_text().contains("interrupted"));
}

#[tokio::test]
async fn calls_from_outside_the_trusted_addresses_are_refused() {
    if !foundation::testing::require_tool("sipp", "sip-tester") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let key = admin_key(dir.path());
    let app = Appliance::start(dir.path(), &[]);
    route_numbers(&app, &key, "hold", QUEUE_FLOW, &["+13125550100"]).await;
    for (source, should_pass) in [("127.0.0.1", true), ("127.0.0.2", false)] {
        let work = dir.path().join(source);
        std::fs::create_dir_all(&work).unwrap();
        let status = Command::new("sipp")
            .current_dir(&work)
            .args([
                "-sn",
                "uac",
                "-s",
                "+13125550100",
                "-m",
                "1",
                "-i",
                source,
                "-p",
                "0",
                "-nostdin",
                "-timeout",
                "15s",
                "-d",
                "100",
            ])
            .args(["-trace_msg", "-message_file", "msgs.log"])
            .arg(&app.sip_udp)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert_eq!(status.success(), should_pass, "call from {source}");
        if !should_pass {
            let msgs = std::fs::read_to_string(work.join("msgs.log")).unwrap_or_default();
            assert!(
                msgs.contains("SIP/2.0 403")
                    || msgs.contains("SIP/2.0 401")
                    || msgs.contains("SIP/2.0 407"),
                "{msgs}"
            );
        }
    }
}

/// SIGHUP reloads the configuration without a restart: a trunk address added to
/// `sip.trusted_addresses` can call in at once, a key that needs a restart is named in the log,
/// and a file that no longer validates changes nothing.
#[tokio::test]
async fn sighup_reloads_trusted_addresses_without_a_restart() {
    if !foundation::testing::require_tool("sipp", "sip-tester") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("dialbridge.toml");
    std::fs::write(&config, "[sip]\ntrusted_addresses = []\n").unwrap();
    let key = admin_key(dir.path());
    let app = Appliance::start(dir.path(), &[]);
    route_numbers(&app, &key, "hold", QUEUE_FLOW, &["+13125550100"]).await;
    let call = |name: &str| {
        let work = dir.path().join(name);
        std::fs::create_dir_all(&work).unwrap();
        Command::new("sipp")
            .current_dir(&work)
            .args([
                "-sn",
                "uac",
                "-s",
                "+13125550100",
                "-m",
                "1",
                "-i",
                "127.0.0.1",
                "-p",
                "0",
                "-nostdin",
                "-timeout",
                "10s",
                "-d",
                "100",
            ])
            .arg(&app.sip_udp)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .success()
    };
    let pid = app.child.id().to_string();
    let reloads = || {
        app.log_text().matches("config_reloaded").count()
            + app
                .log_text()
                .matches("configuration reload refused")
                .count()
    };
    let hup = |expect: usize| {
        assert!(
            Command::new("kill")
                .args(["-HUP", &pid])
                .status()
                .unwrap()
                .success()
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while reloads() < expect {
            assert!(
                Instant::now() < deadline,
                "no reload in the log:\n{}",
                app.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    assert!(!call("before"), "127.0.0.1 is not trusted yet");

    std::fs::write(&config, "[sip]\ntrusted_addresses = [\"127.0.0.1\"]\n[shutdown]\ndrain_s = 7\n[log]\nlevel = \"info,dialbridge=debug\"\n").unwrap();
    hup(1);
    let log = app.log_text();
    assert!(
        log.contains("config_reloaded")
            && log.contains("sip.trusted_addresses")
            && log.contains("log.level"),
        "{log}"
    );
    assert!(
        log.contains("take effect after a restart") && log.contains("shutdown.drain_s"),
        "{log}"
    );
    assert!(
        call("after"),
        "the reloaded ACL lets the trunk in, without a restart"
    );

    std::fs::write(&config, "[sip]\ntrusted_adresses = []\n").unwrap();
    hup(2);
    assert!(
        app.log_text().contains("configuration reload refused"),
        "{}",
        app.log_text()
    );
    assert!(call("still"), "a refused reload changes nothing");
}

/// SIGHUP re-reads the ACD file (same path, new content) without a restart: a queue added to it
/// exists at once in the queue statistics API, the caller waiting in the other queue stays there
/// and completes the call, and a file that removes the queue the caller waits in is refused with
/// a warning naming it, the running ACD unchanged.
#[tokio::test]
async fn sighup_reloads_the_acd_file_without_dropping_calls() {
    if !foundation::testing::require_tool("sipp", "sip-tester") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let acd = dir.path().join("acd.json");
    let acd_file = |queues: &str, profile_queues: &str| {
        let text = format!(
            r#"{{"queues": [{queues}], "profiles": [{{"name": "default", "queues": [{profile_queues}], "acw_s": 0}}], "agents": []}}"#
        );
        std::fs::write(&acd, text).unwrap();
    };
    acd_file(
        r#"{"name": "default"}"#,
        r#"{"queue": "default", "priority": 1}"#,
    );
    std::fs::write(
        dir.path().join("dialbridge.toml"),
        format!(
            "[sip]\ntrusted_addresses = [\"127.0.0.1\"]\n[inbound]\nacd = {:?}\n",
            acd.display().to_string()
        ),
    )
    .unwrap();
    let key = admin_key(dir.path());
    let app = Appliance::start(dir.path(), &[]);
    route_numbers(&app, &key, "hold", QUEUE_FLOW, &["+13125550100"]).await;
    let http = reqwest::Client::new();
    let stats = |queue: &str| {
        let req = http
            .get(app.url(&format!("/api/v1/queues/{queue}/stats")))
            .bearer_auth(&key);
        async move {
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            let body: serde_json::Value = resp.json().await.unwrap_or_default();
            (status, body)
        }
    };
    assert_eq!(stats("billing").await.0, 404, "no billing queue at start");

    // A caller waits in `default` (no agent) for 8 s, then hangs up.
    let work = dir.path().join("caller");
    std::fs::create_dir_all(&work).unwrap();
    let mut caller = sipp_uac(&work, &app.sip_udp, "+13125550100", 8_000);
    let deadline = Instant::now() + Duration::from_secs(10);
    while stats("default").await.1["waiting"] != 1 {
        assert!(Instant::now() < deadline, "the caller never queued");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let pid = app.child.id().to_string();
    let hup = |marker: &'static str| {
        let before = app.log_text().matches(marker).count();
        assert!(
            Command::new("kill")
                .args(["-HUP", &pid])
                .status()
                .unwrap()
                .success()
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while app.log_text().matches(marker).count() == before {
            assert!(
                Instant::now() < deadline,
                "no {marker} in the log:\n{}",
                app.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };

    // Same path, new content: queue `billing` added, `default` served by the profile as before.
    acd_file(
        r#"{"name": "default", "service_level_s": 5}, {"name": "billing", "strategy": "round_robin"}"#,
        r#"{"queue": "default", "priority": 1}, {"queue": "billing", "priority": 2}"#,
    );
    hup("acd_reloaded");
    let log = app.log_text();
    let line: serde_json::Value = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["event"] == "acd_reloaded")
        .unwrap();
    let changes = line["changes"].as_str().unwrap();
    assert!(
        changes.contains(r#"queue "billing" added"#)
            && changes.contains(r#"queue "default" changed"#),
        "{line}"
    );
    let (status, billing) = stats("billing").await;
    assert_eq!(status, 200, "billing exists after the reload: {billing}");
    assert_eq!(billing["waiting"], 0);
    assert_eq!(
        stats("default").await.1["waiting"],
        1,
        "the waiting caller is still queued"
    );
    // The configuration in force is what the admin pages and the metrics read: billing is
    // there too (the gauges sample every 5 s).
    let system: serde_json::Value = http
        .get(app.url("/api/v1/system"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = system["acd"]["queues"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|q| q["name"].as_str())
        .collect();
    assert!(names.contains(&"billing"), "system page queues: {names:?}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let metrics = app.metrics().await;
        if metrics.contains("dialbridge_queue_contacts{queue=\"billing\"} 0") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no gauge for the reloaded queue:\n{metrics}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // Removing the queue the caller waits in is refused; nothing changes.
    acd_file(
        r#"{"name": "billing"}"#,
        r#"{"queue": "billing", "priority": 1}"#,
    );
    hup("ACD configuration not applied");
    let log = app.log_text();
    assert!(
        log.contains("cannot be removed") && log.contains("default"),
        "{log}"
    );
    assert_eq!(stats("default").await.1["waiting"], 1);
    assert_eq!(stats("billing").await.0, 200);

    // The same process all along, and the caller's call ends normally.
    let starts = app
        .log_text()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["event"] == "listening")
        .count();
    assert_eq!(starts, 1, "no restart");
    assert_eq!(app.child.id().to_string(), pid);
    let done = caller.wait().unwrap();
    let errors = std::fs::read_to_string(work.join("errors.log")).unwrap_or_default();
    assert!(done.success(), "the waiting call completed: {errors}");
}
