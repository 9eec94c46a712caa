//! Two appliance nodes on one PostgreSQL share a campaign (issue #9, acceptance 3): 2,000 leads,
//! max_attempts = 1, every customer answers (a sipp UAS). One node holds the campaign's pacer
//! lease; it is killed with SIGKILL mid-run; the other takes the lease over after it expires,
//! closes the dead node's in-flight attempts as `interrupted`, gives its claimed leads back, and
//! finishes. Every lead gets exactly one attempt and none is lost. Prints the figures.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{Appliance, run};
use foundation::Db;
use foundation::testing::{TempPgDatabase, require_tool};
use serde_json::{Value, json};
use sqlx::Row;

const LEADS: usize = 2000;

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn scalar(db: &Db, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(db.pool()).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_one_pacer_takeover_after_kill() {
    if !require_tool("sipp", "sip-tester") || !require_tool("sox", "sox") {
        return;
    }
    let Some(pg) = TempPgDatabase::create().await else {
        return;
    };
    let t0 = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let (dir_a, dir_b) = (tmp.path().join("a"), tmp.path().join("b"));
    std::fs::create_dir_all(&dir_a).unwrap();
    std::fs::create_dir_all(&dir_b).unwrap();
    let db_env = ("DIALBRIDGE_DATABASE_URL", pg.url.as_str());

    // 2,000 leads in Chicago (+1 312 201 0000 …), imported into the PostgreSQL database.
    let mut csv = String::from("First Name,Phone\n");
    for i in 0..LEADS {
        csv += &format!("Lead{i},(312) 201-{i:04}\n");
    }
    std::fs::write(dir_a.join("leads.csv"), csv).unwrap();
    let out = run(
        &dir_a,
        &[
            "import",
            "leads.csv",
            "--list",
            "multinode",
            "--region",
            "US",
            "--json",
        ],
        &[db_env],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let list_id = report["list_id"].as_i64().unwrap();
    let out = run(
        &dir_a,
        &["apikey", "create", "--role", "campaign-manager"],
        &[db_env],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = String::from_utf8(out.stdout).unwrap().trim().to_owned();

    // The agentless message: 0.3 s of tone, 8 kHz mono 16-bit.
    let prompt = tmp.path().join("prompt.wav");
    let st = std::process::Command::new("sox")
        .args(["-n", "-r", "8000", "-c", "1", "-e", "signed", "-b", "16"])
        .arg(&prompt)
        .args(["synth", "0.3", "sine", "440", "vol", "0.3"])
        .status()
        .unwrap();
    assert!(st.success());

    // The carrier: sipp answering every call (the dialer hangs up).
    let port = free_udp_port();
    let mut carrier = tokio::process::Command::new("sipp")
        .current_dir(tmp.path())
        .args([
            "-sn",
            "uas",
            "-i",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-nostdin",
            "-trace_err",
            "-error_file",
            "carrier_err.log",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();

    let node = |dir: &std::path::Path, name: &str, rtp: (&str, &str)| {
        Appliance::start(
            dir,
            &[
                db_env,
                ("DIALBRIDGE_NODE_NAME", name),
                ("DIALBRIDGE_RTP_PORT_MIN", rtp.0),
                ("DIALBRIDGE_RTP_PORT_MAX", rtp.1),
            ],
        )
    };
    let mut nodes: BTreeMap<&str, Appliance> = BTreeMap::new();
    nodes.insert("node-a", node(&dir_a, "node-a", ("20000", "24999")));
    nodes.insert("node-b", node(&dir_b, "node-b", ("25000", "29999")));

    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let config = json!({
        "lists": [{"list_id": list_id, "weight": 1}],
        "mode": "agentless",
        "purpose": "informational",
        "caller_id": "+13125550000",
        "queue": "sales",
        "trunk": {"uri": format!("sip:127.0.0.1:{port}"), "cps": 100, "max_concurrent": 250},
        "amd": "hang_up",
        "agentless_prompt": prompt.display().to_string(),
        "compliance": {"window": {"start": "00:00", "end": "23:59"}, "max_attempts_per_lead": 1},
        "safe_harbor": {"seller": "Acme", "callback_number": "+13125550001", "opt_out_key": "9", "prompt": prompt.display().to_string()}
    });
    let api = nodes["node-a"].url("/api/v1/campaigns");
    let resp = http
        .post(&api)
        .bearer_auth(&key)
        .json(&json!({"name": "multinode", "config": config}))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let created: Value = resp.json().await.unwrap();
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_i64().unwrap();
    let resp = http
        .post(format!("{api}/{id}/actions"))
        .bearer_auth(&key)
        .json(&json!({"action": "start"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let started = Instant::now();

    let db = Db::connect(&pg.url, 2).await.unwrap();
    // Mid-run: a few hundred attempts made and calls up on the pacer's node, then kill -9 it.
    let deadline = Instant::now() + Duration::from_secs(60);
    let (victim, open_at_kill, done_at_kill) = loop {
        assert!(
            Instant::now() < deadline,
            "the campaign did not get going; logs:\n{}",
            nodes["node-a"].log_text()
        );
        let holder: Option<String> =
            sqlx::query_scalar("SELECT node FROM campaign_pacers WHERE campaign_id = $1")
                .bind(id)
                .fetch_optional(db.pool())
                .await
                .unwrap();
        let attempts = scalar(&db, "SELECT COUNT(*) FROM dial_attempts").await;
        if let Some(h) = holder.filter(|_| attempts >= 300) {
            let open: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM dial_attempts WHERE node = $1 AND state <> 'final'",
            )
            .bind(&h)
            .fetch_one(db.pool())
            .await
            .unwrap();
            if open > 0 {
                let victim = if h == "node-a" { "node-a" } else { "node-b" };
                let mut app = nodes.remove(victim).unwrap();
                app.child.kill().unwrap(); // SIGKILL
                app.child.wait().unwrap();
                let ids: Vec<i64> = sqlx::query_scalar(
                    "SELECT id FROM dial_attempts WHERE node = $1 AND state <> 'final'",
                )
                .bind(victim)
                .fetch_all(db.pool())
                .await
                .unwrap();
                break (victim, ids, attempts);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let killed_at = Instant::now();
    let survivor = if victim == "node-a" {
        "node-b"
    } else {
        "node-a"
    };

    // The survivor takes over and finishes every lead.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let done: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM campaign_leads WHERE campaign_id = $1 AND state = 'done'",
        )
        .bind(id)
        .fetch_one(db.pool())
        .await
        .unwrap();
        if done == LEADS as i64 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{done} of {LEADS} leads done; survivor log tail:\n{}",
            nodes[survivor]
                .log_text()
                .lines()
                .rev()
                .take(40)
                .collect::<Vec<_>>()
                .join("\n")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let finished = started.elapsed();

    // Exactly one attempt per lead, none lost.
    let per_lead = sqlx::query(
        "SELECT lead_id, COUNT(*) AS n FROM dial_attempts WHERE campaign_id = $1 GROUP BY lead_id",
    )
    .bind(id)
    .fetch_all(db.pool())
    .await
    .unwrap();
    let twice: Vec<i64> = per_lead
        .iter()
        .filter(|r| r.get::<i64, _>("n") != 1)
        .map(|r| r.get("lead_id"))
        .collect();
    assert!(twice.is_empty(), "leads dialled more than once: {twice:?}");
    assert_eq!(per_lead.len(), LEADS, "every lead has an attempt");
    assert_eq!(
        scalar(
            &db,
            "SELECT COUNT(*) FROM dial_attempts WHERE state <> 'final'"
        )
        .await,
        0
    );

    // The dead node's in-flight attempts were closed as interrupted by the takeover.
    assert!(!open_at_kill.is_empty());
    for a in &open_at_kill {
        let outcome: Option<String> =
            sqlx::query_scalar("SELECT outcome FROM dial_attempts WHERE id = $1")
                .bind(a)
                .fetch_one(db.pool())
                .await
                .unwrap();
        assert_eq!(outcome.as_deref(), Some("interrupted"), "attempt {a}");
    }
    let takeovers = sqlx::query("SELECT from_node, to_node, token, interrupted, released, at, expired_at FROM campaign_pacer_takeovers WHERE campaign_id = $1 ORDER BY id")
        .bind(id)
        .fetch_all(db.pool())
        .await
        .unwrap();
    assert_eq!(takeovers.len(), 1, "one takeover");
    let t = &takeovers[0];
    assert_eq!(
        (
            t.get::<String, _>("from_node"),
            t.get::<String, _>("to_node")
        ),
        (victim.to_owned(), survivor.to_owned())
    );
    assert_eq!(t.get::<i64, _>("interrupted"), open_at_kill.len() as i64);
    // One pacer at a time: the survivor dialled nothing of this campaign before it took over.
    let early: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM dial_attempts WHERE campaign_id = $1 AND node = $2 AND created_at < $3")
        .bind(id)
        .bind(survivor)
        .bind(t.get::<i64, _>("at"))
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(
        early, 0,
        "{survivor} dialled while {victim} held the pacer lease"
    );
    let audit = scalar(
        &db,
        "SELECT COUNT(*) FROM audit_log WHERE action = 'dialer.pacer_takeover'",
    )
    .await;
    assert_eq!(audit, 1);

    // The dead node never comes back: the survivor closes its open call records as interrupted
    // once its heartbeat has stopped (inbound::presence), so every call has a final record.
    let count = |sql: &'static str| {
        let db = &db;
        async move {
            sqlx::query_scalar::<_, i64>(sql)
                .bind(victim)
                .fetch_one(db.pool())
                .await
                .unwrap()
        }
    };
    assert!(
        count("SELECT COUNT(*) FROM calls WHERE node = $1").await > 0,
        "{victim} placed calls before it was killed"
    );
    let open = "SELECT COUNT(*) FROM calls WHERE node = $1 AND state <> 'ended'";
    let closing = Instant::now();
    while count(open).await > 0 && closing.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(count(open).await, 0, "{victim}'s call records left open");
    assert!(
        count("SELECT COUNT(*) FROM calls WHERE node = $1 AND outcome = 'interrupted'").await > 0,
        "{victim}'s calls in flight were closed as interrupted"
    );

    // Figures.
    let by_node = sqlx::query("SELECT node, COUNT(*) AS n FROM dial_attempts WHERE campaign_id = $1 GROUP BY node ORDER BY node")
        .bind(id)
        .fetch_all(db.pool())
        .await
        .unwrap();
    let outcomes = sqlx::query("SELECT outcome, COUNT(*) AS n FROM dial_attempts WHERE campaign_id = $1 GROUP BY outcome ORDER BY outcome")
        .bind(id)
        .fetch_all(db.pool())
        .await
        .unwrap();
    println!(
        "multinode: {LEADS} leads, killed {victim} (the pacer) after {:.1} s at {done_at_kill} attempts with {} calls in flight",
        (killed_at - started).as_secs_f64(),
        open_at_kill.len()
    );
    println!(
        "multinode: {survivor} took over (token {}) {:.1} s after the old lease expired; {} interrupted, {} claims given back; all done {:.1} s after start ({:.1} s total with setup)",
        t.get::<i64, _>("token"),
        (t.get::<i64, _>("at") - t.get::<i64, _>("expired_at")) as f64 / 1000.0,
        t.get::<i64, _>("interrupted"),
        t.get::<i64, _>("released"),
        finished.as_secs_f64(),
        t0.elapsed().as_secs_f64()
    );
    for r in by_node {
        println!(
            "multinode: attempts by {}: {}",
            r.get::<String, _>("node"),
            r.get::<i64, _>("n")
        );
    }
    for r in outcomes {
        println!(
            "multinode: outcome {}: {}",
            r.get::<Option<String>, _>("outcome").unwrap_or_default(),
            r.get::<i64, _>("n")
        );
    }
    let _ = carrier.kill().await;
    db.close().await;
}
