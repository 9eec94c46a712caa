//! `dialbridge serve --demo` end to end: in a fresh directory the demo campaign dials the
//! built-in carrier simulator, gets live answers and connects them to the simulated agents
//! within 60 s, whose agents then record a disposition; the agents' legs outlive the RTP
//! inactivity timeout, and one whose leg ends is logged in again; a second `--demo` start on the
//! same data seeds nothing twice.

mod common;

use std::time::{Duration, Instant};

use common::{Appliance, admin_key};
use serde_json::Value;

async fn get(c: &reqwest::Client, url: String, key: &str) -> Value {
    let resp = c.get(&url).bearer_auth(key).send().await.unwrap();
    assert_eq!(resp.status(), 200, "GET {url}");
    resp.json().await.unwrap()
}

async fn seeded_counts(dir: &std::path::Path) -> Vec<(String, i64)> {
    let db = foundation::Db::connect(&format!("sqlite://{}/data/dialbridge.db", dir.display()), 1)
        .await
        .unwrap();
    let mut out = Vec::new();
    for (what, sql) in [
        ("users", "SELECT COUNT(*) FROM users"),
        ("campaigns", "SELECT COUNT(*) FROM campaigns"),
        ("leads", "SELECT COUNT(*) FROM leads"),
        ("import jobs", "SELECT COUNT(*) FROM import_jobs"),
        (
            "flow versions",
            "SELECT COUNT(*) FROM inbound_flow_versions",
        ),
    ] {
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_one(db.pool())
            .await
            .unwrap();
        out.push((what.to_owned(), n));
    }
    db.close().await;
    out
}

#[tokio::test]
async fn demo_campaign_connects_calls_to_agents_within_a_minute_and_seeds_once() {
    let dir = tempfile::tempdir().unwrap();
    let key = admin_key(dir.path());
    let env = [("DIALBRIDGE_LOG_LEVEL", "info")];
    let started = Instant::now();
    let mut app = Appliance::start_with_args(dir.path(), &["--demo"], &env);
    let c = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();

    let campaigns = get(&c, app.url("/api/v1/campaigns"), &key).await;
    let demo = campaigns
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "demo")
        .unwrap_or_else(|| panic!("no demo campaign: {campaigns}"));
    assert_eq!(demo["state"], "running", "{demo}");
    let id = demo["id"].as_i64().unwrap();

    // Within 60 s of the start: dials, live answers, and an answered call handed to an agent.
    let (mut stats, mut to_agent) = (Value::Null, 0);
    while started.elapsed() < Duration::from_secs(60) {
        stats = get(&c, app.url(&format!("/api/v1/campaigns/{id}/stats")), &key).await;
        let csv = c
            .get(app.url(&format!("/api/v1/campaigns/{id}/attempts.csv")))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let mut r = csv::Reader::from_reader(csv.as_bytes());
        let agent_col = r
            .headers()
            .unwrap()
            .iter()
            .position(|h| h == "agent")
            .expect("agent column");
        to_agent = r
            .records()
            .filter(|rec| !rec.as_ref().unwrap()[agent_col].is_empty())
            .count();
        if stats["attempts"].as_i64() > Some(0)
            && stats["live_answers"].as_i64() > Some(0)
            && to_agent > 0
        {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let elapsed = started.elapsed();
    assert!(
        stats["attempts"].as_i64() > Some(0)
            && stats["live_answers"].as_i64() > Some(0)
            && to_agent > 0,
        "after {elapsed:?}: stats {stats}, {to_agent} attempts with an agent; log:\n{}",
        app.log_text()
    );
    eprintln!(
        "demo: first call connected to an agent {:.1} s after start; stats {stats}",
        elapsed.as_secs_f64()
    );
    // The simulated agents wrap up: the attempt gets their disposition (talk 20 s + wrap-up 3 s).
    let mut disposed = 0;
    while disposed == 0 && started.elapsed() < Duration::from_secs(90) {
        let csv = c
            .get(app.url(&format!("/api/v1/campaigns/{id}/attempts.csv")))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let mut r = csv::Reader::from_reader(csv.as_bytes());
        let col = r
            .headers()
            .unwrap()
            .iter()
            .position(|h| h == "disposition")
            .expect("disposition column");
        disposed = r
            .records()
            .filter(|rec| !rec.as_ref().unwrap()[col].is_empty())
            .count();
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert!(
        disposed > 0,
        "no attempt got a simulated agent's disposition; log:\n{}",
        app.log_text()
    );
    let agents = get(&c, app.url("/api/v1/agents"), &key).await;
    assert_eq!(agents.as_array().unwrap().len(), 4, "{agents}");

    // Idle and busy agent legs stay up: the simulator's agent phones send RTP all along, so the
    // appliance's RTP inactivity timer (30 s by default) ends none. Wait until every leg has lived
    // well past it.
    let legs_old = Duration::from_secs(45);
    if let Some(rest) = legs_old.checked_sub(started.elapsed()) {
        tokio::time::sleep(rest).await;
    }
    let log = app.log_text();
    assert!(
        !log.contains("a simulated agent went offline"),
        "an agent leg dropped; log:\n{log}"
    );

    // A simulated agent whose leg ends (here: logged out, which hangs its leg up) is logged in
    // again by the demo.
    let out = common::run(
        dir.path(),
        &["apikey", "create", "--role", "agent", "--name", "agent1"],
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let agent1_key = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let resp = c
        .post(app.url("/api/v1/agent/logout"))
        .bearer_auth(&agent1_key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204, "logout of agent1");
    let logins = |log: &str| {
        log.lines()
            .filter(|l| l.contains("simulated agent logged in") && l.contains("agent1"))
            .count()
    };
    let back = Instant::now();
    let mut agent1 = Value::Null;
    while back.elapsed() < Duration::from_secs(30) {
        let agents = get(&c, app.url("/api/v1/agents"), &key).await;
        agent1 = agents
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["id"] == "agent1")
            .cloned()
            .unwrap_or(Value::Null);
        if logins(&app.log_text()) >= 2 && agent1["leg_up"] == true && agent1["state"] != "Offline"
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let log = app.log_text();
    assert!(
        logins(&log) >= 2 && agent1["leg_up"] == true && agent1["state"] != "Offline",
        "agent1 was not logged in again after {:?}: {agent1}; log:\n{log}",
        back.elapsed()
    );
    eprintln!(
        "demo: agent1 logged in again {:.1} s after its logout",
        back.elapsed().as_secs_f64()
    );
    // The metrics, on the live exposition of a running campaign.
    let metrics = app.metrics().await;
    for name in [
        "dialbridge_calls_total{direction=\"outbound\",outcome=\"answered\"}",
        "dialbridge_calls_active ",
        "dialbridge_agents{state=\"on_contact\"}",
        "dialbridge_campaign_abandon_rate{campaign=\"demo\"}",
        "dialbridge_queue_contacts{queue=",
        "dialbridge_queue_asa_seconds{queue=",
        "dialbridge_queue_aht_seconds{queue=",
    ] {
        assert!(metrics.contains(name), "/metrics lacks {name}:\n{metrics}");
    }
    // The simulated agents have been talking: their queue's occupancy is above zero.
    let occupancy: Vec<f64> = metrics
        .lines()
        .filter(|l| l.starts_with("dialbridge_queue_occupancy{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect();
    assert!(
        occupancy.iter().any(|&o| o > 0.0 && o <= 1.0),
        "queue occupancy {occupancy:?}:\n{metrics}"
    );
    let log = app.log_text();
    assert!(
        log.contains("DEMO MODE") && log.contains("demo-manager"),
        "the demo passwords are printed"
    );
    let (status, _) = app.terminate(Duration::from_secs(20));
    assert!(status.success());

    // A second --demo start on the same data creates nothing twice.
    let before = seeded_counts(dir.path()).await;
    assert!(
        before.iter().any(|(w, n)| w == "leads" && *n == 500),
        "{before:?}"
    );
    assert!(
        before.iter().any(|(w, n)| w == "users" && *n == 8),
        "admin + 7 demo users: {before:?}"
    );
    let mut again = Appliance::start_with_args(dir.path(), &["--demo"], &env);
    let campaigns = get(&c, again.url("/api/v1/campaigns"), &key).await;
    assert_eq!(campaigns.as_array().unwrap().len(), 1, "{campaigns}");
    assert_eq!(campaigns[0]["state"], "running");
    let (status, _) = again.terminate(Duration::from_secs(20));
    assert!(status.success());
    assert_eq!(seeded_counts(dir.path()).await, before);
}
