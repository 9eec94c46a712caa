//! The dialer survives a crash of the appliance (issue #7, acceptance 3): a campaign with
//! max_attempts = 1 where every customer answers (a sipp UAS) runs in the real appliance on
//! SQLite; the appliance is killed with SIGKILL while calls are up, then started again on the same
//! database (same node name). No lead gets a second attempt, none is lost, and the attempts that
//! were open at the kill are closed as `interrupted` (answered ones counted as abandoned live
//! answers).

mod common;

use std::time::{Duration, Instant};

use common::{Appliance, api_key, free_port, run};
use foundation::Db;
use foundation::testing::require_tool;
use serde_json::{Value, json};
use sqlx::Row;

const LEADS: usize = 12;

async fn scalar(db: &Db, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(db.pool()).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_campaign_then_restart_on_the_same_database() {
    if !require_tool("sipp", "sip-tester") || !require_tool("sox", "sox") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();

    let mut csv = String::from("First Name,Phone\n");
    for i in 0..LEADS {
        csv += &format!("Lead{i},(312) 202-{i:04}\n");
    }
    std::fs::write(dir.join("leads.csv"), csv).unwrap();
    let out = run(
        dir,
        &[
            "import",
            "leads.csv",
            "--list",
            "crash",
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
    let key = api_key(dir, "campaign-manager");

    // A long agentless message (8 s of tone): answered calls are still up at the kill.
    let prompt = dir.join("long.wav");
    let st = std::process::Command::new("sox")
        .args(["-n", "-r", "8000", "-c", "1", "-e", "signed", "-b", "16"])
        .arg(&prompt)
        .args(["synth", "8", "sine", "440", "vol", "0.3"])
        .status()
        .unwrap();
    assert!(st.success());

    // Every customer answers and waits for the dialer's BYE.
    let port = free_port();
    let mut carrier = tokio::process::Command::new("sipp")
        .current_dir(dir)
        .args([
            "-sn",
            "uas",
            "-i",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-nostdin",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();

    let env = [
        ("DIALBRIDGE_NODE_NAME", "crash-node"),
        ("DIALBRIDGE_RTP_PORT_MIN", "35000"),
        ("DIALBRIDGE_RTP_PORT_MAX", "35999"),
    ];
    let mut app = Appliance::start(dir, &env);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let config = json!({
        "lists": [{"list_id": list_id, "weight": 1}],
        "mode": "agentless",
        "purpose": "informational",
        "caller_id": "+13125550000",
        "trunk": {"uri": format!("sip:127.0.0.1:{port}"), "cps": 3, "max_concurrent": 4},
        "amd": "hang_up",
        "agentless_prompt": prompt.display().to_string(),
        "compliance": {"window": {"start": "00:00", "end": "23:59"}, "max_attempts_per_lead": 1},
        "safe_harbor": {"seller": "Acme", "callback_number": "+13125550001", "opt_out_key": "9", "prompt": prompt.display().to_string()}
    });
    let api = app.url("/api/v1/campaigns");
    let resp = http
        .post(&api)
        .bearer_auth(&key)
        .json(&json!({"name": "crash", "config": config}))
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

    let db = Db::connect(
        &format!("sqlite://{}", dir.join("data/dialbridge.db").display()),
        2,
    )
    .await
    .unwrap();
    // Wait until at least two calls are answered (the message playing), then SIGKILL.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let up = scalar(
            &db,
            "SELECT COUNT(*) FROM dial_attempts WHERE state = 'answered'",
        )
        .await;
        if up >= 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no call got answered; log:\n{}",
            app.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    app.child.kill().unwrap(); // SIGKILL
    app.child.wait().unwrap();
    let open: Vec<(i64, String)> =
        sqlx::query("SELECT id, state FROM dial_attempts WHERE state <> 'final' ORDER BY id")
            .fetch_all(db.pool())
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get("id"), r.get("state")))
            .collect();
    let done_at_kill = scalar(
        &db,
        "SELECT COUNT(*) FROM campaign_leads WHERE state = 'done'",
    )
    .await;
    assert!(open.len() >= 2, "attempts open at the kill: {open:?}");
    assert!(
        (done_at_kill as usize) < LEADS,
        "the campaign was not finished at the kill"
    );
    drop(app);

    // The same appliance again, on the same database: it closes what the crash left open and
    // finishes the campaign.
    let app = Appliance::start(dir, &env);
    let deadline = Instant::now() + Duration::from_secs(120);
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
            "{done} of {LEADS} leads done after the restart; log:\n{}",
            app.log_text()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // One attempt per lead, none lost, all final.
    let per_lead: Vec<(i64, i64)> = sqlx::query(
        "SELECT lead_id, COUNT(*) AS n FROM dial_attempts WHERE campaign_id = $1 GROUP BY lead_id ORDER BY lead_id",
    )
    .bind(id)
    .fetch_all(db.pool())
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get("lead_id"), r.get("n")))
    .collect();
    assert_eq!(per_lead.len(), LEADS, "every lead dialled: {per_lead:?}");
    assert!(
        per_lead.iter().all(|(_, n)| *n == 1),
        "a lead was dialled twice: {per_lead:?}"
    );
    assert_eq!(
        scalar(
            &db,
            "SELECT COUNT(*) FROM dial_attempts WHERE state <> 'final'"
        )
        .await,
        0
    );
    // The open attempts were closed as interrupted: answered ones count as abandoned live answers.
    for (a, state) in &open {
        let r =
            sqlx::query("SELECT outcome, live, abandoned, detail FROM dial_attempts WHERE id = $1")
                .bind(a)
                .fetch_one(db.pool())
                .await
                .unwrap();
        assert_eq!(
            r.get::<Option<String>, _>("outcome").as_deref(),
            Some("interrupted"),
            "attempt {a}"
        );
        let answered = state == "answered";
        assert_eq!(
            (r.get::<i16, _>("live"), r.get::<i16, _>("abandoned")),
            (answered as i16, answered as i16),
            "attempt {a} was {state}"
        );
        assert_eq!(
            r.get::<Option<String>, _>("detail").unwrap_or_default(),
            format!("process stopped while {state}")
        );
    }
    // Every other attempt ended normally (the message was played).
    let others: Vec<String> = sqlx::query_scalar(
        "SELECT outcome FROM dial_attempts WHERE campaign_id = $1 AND outcome <> 'interrupted'",
    )
    .bind(id)
    .fetch_all(db.pool())
    .await
    .unwrap();
    assert_eq!(others.len() + open.len(), LEADS);
    assert!(others.iter().all(|o| o == "message"), "{others:?}");
    // The leads of the interrupted attempts are finished (max_attempts = 1), not lost.
    let interrupted_leads: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM campaign_leads WHERE campaign_id = $1 AND final_outcome = 'interrupted'",
    )
    .bind(id)
    .fetch_one(db.pool())
    .await
    .unwrap();
    assert_eq!(interrupted_leads as usize, open.len());
    println!(
        "dialer_crash: {LEADS} leads, killed with {} attempts open ({} answered), {done_at_kill} leads done at the kill; after the restart all done, one attempt each",
        open.len(),
        open.iter().filter(|(_, s)| s == "answered").count()
    );
    drop(app);
    let _ = carrier.kill().await;
    db.close().await;
}
