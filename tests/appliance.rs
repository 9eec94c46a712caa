//! The appliance end to end: the real binary in a fresh directory with a fresh database.

mod common;

use std::time::Duration;

use common::{Appliance, run};
use foundation::testing::TempPgDatabase;

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// Acceptance 1 of the foundation: `dialbridge serve` with no configuration and no environment in
/// an empty directory binds the defaults (HTTP 127.0.0.1:8080, SIP 5060), creates its SQLite
/// database and answers `/healthz`. The start-up time is printed (a figure, not an assertion).
#[tokio::test]
async fn serve_with_no_configuration_answers_on_the_default_port() {
    let busy = ["127.0.0.1:8080", "127.0.0.1:5060"]
        .iter()
        .any(|a| std::net::TcpListener::bind(a).is_err() || std::net::UdpSocket::bind(a).is_err());
    if busy {
        let why =
            "127.0.0.1:8080 or :5060 is taken by another process; the defaults cannot be tried";
        assert!(!foundation::testing::on_ci(), "{why}");
        foundation::testing::report_skip(why);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let t0 = std::time::Instant::now();
    let mut child = std::process::Command::new(common::BIN)
        .arg("serve")
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DIALBRIDGE_ADMIN_PASSWORD", "first-admin-password")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let c = http();
    let mut health = None;
    while t0.elapsed() < Duration::from_secs(30) {
        if let Ok(r) = c.get("http://127.0.0.1:8080/healthz").send().await {
            health = Some(r.status());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = t0.elapsed();
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait().unwrap();
    assert_eq!(
        health.map(|s| s.as_u16()),
        Some(200),
        "/healthz on 127.0.0.1:8080"
    );
    assert!(status.success(), "exit after SIGTERM: {status:?}");
    assert!(
        dir.path().join("data/dialbridge.db").exists(),
        "./data/dialbridge.db created"
    );
    println!("serve on the defaults (debug build): /healthz answered {took:?} after spawn");
}

#[tokio::test]
async fn serves_health_readiness_metrics_and_openapi_then_drains_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = Appliance::start(dir.path(), &[]);
    assert!(
        dir.path().join("data/dialbridge.db").exists(),
        "SQLite database created in ./data"
    );
    let c = http();

    let health: serde_json::Value = c
        .get(app.url("/healthz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["version"], env!("CARGO_PKG_VERSION"));

    let ready = c.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let ready: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(ready["database"], "ok");
    assert_eq!(ready["backend"], "sqlite");
    assert_eq!(ready["listening"]["sip_udp"], app.sip_udp.as_str());
    assert_eq!(
        ready["listening"]["http"],
        app.http.trim_start_matches("http://")
    );

    let metrics = app.metrics().await;
    assert!(metrics.contains("dialbridge_up 1"), "{metrics}");
    // Sampled levels appear once the sampler has run (at start, then every 5 s).
    let mut metrics = metrics;
    for _ in 0..50 {
        if metrics.contains("dialbridge_agents{") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        metrics = app.metrics().await;
    }
    assert!(
        metrics.contains(r#"dialbridge_agents{state="available"} 0"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"dialbridge_queue_contacts{queue="default"} 0"#),
        "{metrics}"
    );

    let doc: serde_json::Value = c
        .get(app.url("/api/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in ["/healthz", "/readyz", "/metrics", "/api/v1/whoami"] {
        assert!(doc["paths"][path].is_object(), "OpenAPI lacks {path}");
    }

    let missing = c.get(app.url("/no/such/route")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    let body: serde_json::Value = missing.json().await.unwrap();
    assert_eq!(body["error"], "not_found");

    // The SIP listener is bound and answers OPTIONS over UDP.
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let local = sock.local_addr().unwrap();
    let options = format!(
        "OPTIONS sip:{0} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-probe1\r\nMax-Forwards: 70\r\n\
         From: <sip:probe@{local}>;tag=p1\r\nTo: <sip:{0}>\r\nCall-ID: probe-1@test\r\nCSeq: 1 OPTIONS\r\n\
         Content-Length: 0\r\n\r\n",
        app.sip_udp
    );
    sock.send_to(options.as_bytes(), &app.sip_udp).unwrap();
    let mut buf = [0u8; 4096];
    let (n, _) = sock.recv_from(&mut buf).unwrap();
    let reply = String::from_utf8_lossy(&buf[..n]);
    assert!(reply.starts_with("SIP/2.0 200"), "{reply}");

    let (status, took) = app.terminate(Duration::from_secs(10));
    assert!(
        status.success(),
        "exit status {status:?}; log:\n{}",
        app.log_text()
    );
    assert!(took < Duration::from_secs(10));
    assert!(app.log_text().contains("stopped"));
}

#[tokio::test]
async fn first_run_creates_one_admin_and_a_restart_keeps_the_data() {
    let dir = tempfile::tempdir().unwrap();
    // An API key made before the first serve (the CLI migrates the new database itself).
    let out = run(
        dir.path(),
        &["apikey", "create", "--role", "legacy-pbx", "--pool", "east"],
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(token.starts_with("dbk_"));

    let mut app = Appliance::start(dir.path(), &[]);
    let first_log = app.log_text();
    assert_eq!(
        first_log.matches("generated password").count(),
        1,
        "{first_log}"
    );
    let c = http();
    let who: serde_json::Value = c
        .get(app.url("/api/v1/whoami"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (who["role"].as_str(), who["scope"].as_str()),
        (Some("legacy-pbx"), Some("east"))
    );
    for bad in [
        None,
        Some("dbk_aaaaaaaa_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"),
        Some("nonsense"),
    ] {
        let mut req = c.get(app.url("/api/v1/whoami"));
        if let Some(b) = bad {
            req = req.bearer_auth(b);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 401);
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "unauthorized");
    }
    assert!(app.terminate(Duration::from_secs(10)).0.success());

    let mut app = Appliance::start(dir.path(), &[]);
    assert!(
        !app.log_text().contains("generated password"),
        "no second admin on restart"
    );
    let resp = c
        .get(app.url("/api/v1/whoami"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "the key survived the restart");
    assert!(app.terminate(Duration::from_secs(10)).0.success());
}

#[tokio::test]
async fn admin_password_from_the_environment_is_never_logged() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = Appliance::start(
        dir.path(),
        &[("DIALBRIDGE_ADMIN_PASSWORD", "s3cret-from-env")],
    );
    let log = app.log_text();
    assert!(
        log.contains("DIALBRIDGE_ADMIN_PASSWORD") && !log.contains("s3cret-from-env"),
        "{log}"
    );
    assert!(app.terminate(Duration::from_secs(10)).0.success());
}

#[test]
fn a_misspelled_config_key_fails_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("dialbridge.toml"),
        "[sip]\nudp_lisen = \"127.0.0.1:5060\"\n",
    )
    .unwrap();
    let out = run(dir.path(), &["serve"], &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("udp_lisen"), "{err}");
    let out = run(dir.path(), &["config", "check"], &[]);
    assert_eq!(out.status.code(), Some(2));

    std::fs::write(
        dir.path().join("dialbridge.toml"),
        "[http]\nlisten = \"127.0.0.1:0\"\n",
    )
    .unwrap();
    let out = run(
        dir.path(),
        &["config", "show"],
        &[("DIALBRIDGE_DATABASE_URL", "postgres://u:topsecret@db/x")],
    );
    assert!(out.status.success());
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains("u:***@db") && !shown.contains("topsecret"),
        "{shown}"
    );
}

#[test]
fn simulate_prints_the_pacing_figures_and_version_prints_the_version() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "simulate",
        "--agents",
        "10",
        "--answer-rate",
        "0.3",
        "--hours",
        "1",
        "--mode",
        "progressive",
        "--seeds",
        "2",
        "--json",
    ];
    let out = run(dir.path(), &args, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        report["talk_min_per_agent_hour"].as_f64().unwrap() > 20.0,
        "{report}"
    );
    assert_eq!(
        report["abandon_rate"].as_f64(),
        Some(0.0),
        "progressive never abandons: {report}"
    );
    let out = run(dir.path(), &["simulate", "--mode", "wild"], &[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--mode"));
    let out = run(dir.path(), &["--version"], &[]);
    assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));
}

#[tokio::test]
async fn migrate_and_serve_on_postgresql() {
    let Some(pg) = TempPgDatabase::create().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let env = [("DIALBRIDGE_DATABASE_URL", pg.url.as_str())];
    let out = run(dir.path(), &["migrate"], &env);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("postgres"));

    let mut app = Appliance::start(dir.path(), &env);
    assert!(
        !dir.path().join("data").exists(),
        "no SQLite file in PostgreSQL mode"
    );
    let ready: serde_json::Value = http()
        .get(app.url("/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (ready["status"].as_str(), ready["backend"].as_str()),
        (Some("ready"), Some("postgres"))
    );
    assert!(app.terminate(Duration::from_secs(10)).0.success());

    let app = Appliance::start(dir.path(), &env);
    assert!(
        !app.log_text().contains("generated password"),
        "data kept across restart on PostgreSQL"
    );
}

#[tokio::test]
async fn people_log_in_with_a_session_cookie_and_csrf_token() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        dir.path(),
        &["user", "create", "--username", "bob", "--role", "agent"],
        &[("DIALBRIDGE_USER_PASSWORD", "bob-password-1")],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let app = Appliance::start(
        dir.path(),
        &[("DIALBRIDGE_ADMIN_PASSWORD", "admin-password-1")],
    );
    let c = http();
    let login = |u: &str, p: &str| {
        c.post(app.url("/api/v1/auth/login"))
            .json(&serde_json::json!({"username": u, "password": p}))
    };

    let resp = login("admin", "wrong-password").send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert!(resp.headers().get("set-cookie").is_none());
    let resp = login("admin", "admin-password-1").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let cookie = resp.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    let session = cookie.split(';').next().unwrap().to_owned();
    let me: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(
        (me["kind"].as_str(), me["role"].as_str()),
        (Some("user"), Some("admin"))
    );
    let csrf = me["csrf_token"].as_str().unwrap().to_owned();

    let pool =
        serde_json::json!({"name": "p", "numbers": ["+13125550001"], "direction": "to_legacy"});
    let resp = c
        .post(app.url("/api/v1/bridge/pools"))
        .header("cookie", &session)
        .json(&pool)
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        403,
        "a cookie without the CSRF token may not change state"
    );
    let resp = c
        .post(app.url("/api/v1/bridge/pools"))
        .header("cookie", &session)
        .header("x-csrf-token", &csrf)
        .json(&pool)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let resp = c
        .get(app.url("/api/v1/bridge/pools"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "reads need no CSRF token");

    // An agent may not use admin APIs.
    let resp = login("bob", "bob-password-1").send().await.unwrap();
    let agent_cookie = resp.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let agent: serde_json::Value = resp.json().await.unwrap();
    let resp = c
        .get(app.url("/api/v1/bridge/pools"))
        .header("cookie", &agent_cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    let resp = c
        .post(app.url("/api/v1/bridge/pools"))
        .header("cookie", &agent_cookie)
        .header("x-csrf-token", agent["csrf_token"].as_str().unwrap())
        .json(&pool)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);

    // Logout ends the session; repeated wrong passwords lock the account.
    let resp = c
        .post(app.url("/api/v1/auth/logout"))
        .header("cookie", &session)
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let resp = c
        .get(app.url("/api/v1/whoami"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    for _ in 0..5 {
        assert_eq!(
            login("bob", "nope-nope").send().await.unwrap().status(),
            401
        );
    }
    assert_eq!(
        login("bob", "bob-password-1")
            .send()
            .await
            .unwrap()
            .status(),
        401,
        "locked after 5 failures"
    );
}

#[tokio::test]
async fn backup_wipe_restore_gives_the_data_back() {
    if !foundation::testing::require_tool("sipp", "sip-tester") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let token =
        String::from_utf8(run(dir.path(), &["apikey", "create", "--role", "admin"], &[]).stdout)
            .unwrap()
            .trim()
            .to_owned();
    let out = run(
        dir.path(),
        &[
            "user",
            "create",
            "--username",
            "dora",
            "--role",
            "supervisor",
        ],
        &[("DIALBRIDGE_USER_PASSWORD", "dora-password")],
    );
    assert!(out.status.success());
    let csv = dir.path().join("l.csv");
    std::fs::write(
        &csv,
        "First Name,Phone\nAda,(312) 555-0100\nBob,+44 20 7946 0958\n",
    )
    .unwrap();
    let out = run(
        dir.path(),
        &["import", csv.to_str().unwrap(), "--list", "l1", "--json"],
        &[],
    );
    assert!(out.status.success());
    let list_id = serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["list_id"]
        .as_i64()
        .unwrap();

    let mut app = Appliance::start(dir.path(), &[]);
    let c = http();
    let pool =
        serde_json::json!({"name": "p", "numbers": ["+13125550001"], "direction": "to_legacy"});
    assert_eq!(
        c.post(app.url("/api/v1/bridge/pools"))
            .bearer_auth(&token)
            .json(&pool)
            .send()
            .await
            .unwrap()
            .status(),
        201
    );
    // A campaign over the list, and a contact: a caller who hangs up while queued.
    let campaign = serde_json::json!({"name": "spring", "config": {
        "lists": [{"list_id": list_id, "weight": 1}],
        "mode": "progressive",
        "purpose": "informational",
        "caller_id": "+13125550000",
        "queue": "default",
        "trunk": {"uri": "sip:127.0.0.1:5090", "cps": 5, "max_concurrent": 20},
        "amd": "hang_up",
        "safe_harbor": {"seller": "Acme", "callback_number": "+13125550001", "opt_out_key": "9", "prompt": "safe-harbor.wav"}
    }});
    let created = c
        .post(app.url("/api/v1/campaigns"))
        .bearer_auth(&token)
        .json(&campaign)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201, "{}", created.text().await.unwrap());
    common::route_numbers(&app, &token, "hold", common::QUEUE_FLOW, &["+13125550100"]).await;
    let work = dir.path().join("caller");
    std::fs::create_dir_all(&work).unwrap();
    let _ = common::sipp_uac(&work, &app.sip_udp, "+13125550100", 500).wait();
    // Wait until the contact's record is closed (an open one would be closed as interrupted by
    // the restored appliance's start, and differ).
    let mut contacts = serde_json::Value::Null;
    for _ in 0..100 {
        contacts = get_json(&c, &app, &token, "/api/v1/contacts").await;
        let rows = contacts.as_array().cloned().unwrap_or_default();
        if !rows.is_empty() && rows.iter().all(|r| !r["ended_at"].is_null()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        contacts.to_string().contains("+13125550100")
            && !contacts.to_string().contains("\"ended_at\":null"),
        "the caller's contact is recorded and closed: {contacts}"
    );
    // The call and the pool show in the metrics (the pool's gauge comes from the lease reaper).
    let mut metrics = String::new();
    for _ in 0..100 {
        metrics = app.metrics().await;
        if metrics.contains("dialbridge_bridge_leases_active{pool=\"p\"} 0") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for line in [
        "dialbridge_calls_total{direction=\"inbound\",outcome=\"answered\"} 1",
        "dialbridge_calls_active 0",
        "dialbridge_bridge_leases_active{pool=\"p\"} 0",
    ] {
        assert!(metrics.contains(line), "/metrics lacks {line}:\n{metrics}");
    }
    // What the console shows of the data, before the backup.
    let shown = [
        "/api/v1/lists",
        "/api/v1/campaigns",
        "/api/v1/contacts",
        "/api/v1/users",
        "/api/v1/bridge/pools",
    ];
    let mut before = Vec::new();
    for path in shown {
        before.push(get_json(&c, &app, &token, path).await);
    }
    assert!(before[0].to_string().contains("\"l1\""), "{}", before[0]);
    assert!(
        before[1].to_string().contains("\"spring\""),
        "{}",
        before[1]
    );
    assert!(before[3].to_string().contains("\"dora\""), "{}", before[3]);

    // A second appliance on the same data directory is refused; so is a restore while serving.
    let second = run(dir.path(), &["serve"], &[]);
    assert!(!second.status.success());
    assert!(String::from_utf8_lossy(&second.stderr).contains("another dialbridge process"));
    let backup = dir.path().join("backup.db");
    let out = run(dir.path(), &["backup", backup.to_str().unwrap()], &[]);
    assert!(
        out.status.success(),
        "backup while serving: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !run(dir.path(), &["restore", backup.to_str().unwrap()], &[])
            .status
            .success()
    );
    assert!(app.terminate(Duration::from_secs(10)).0.success());

    // Wipe, restore, serve: the same lists, campaigns, contacts, users and pools are back.
    std::fs::remove_dir_all(dir.path().join("data")).unwrap();
    let out = run(dir.path(), &["restore", backup.to_str().unwrap()], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let app = Appliance::start(dir.path(), &[]);
    assert!(
        !app.log_text().contains("generated password"),
        "the restored admin is used"
    );
    for (path, was) in shown.iter().zip(&before) {
        let now = get_json(&c, &app, &token, path).await;
        assert_eq!(&now, was, "{path} after backup → wipe → restore");
    }
    let login = c
        .post(app.url("/api/v1/auth/login"))
        .json(&serde_json::json!({"username": "dora", "password": "dora-password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    let db = foundation::Db::connect(
        &format!("sqlite://{}/data/dialbridge.db", dir.path().display()),
        1,
    )
    .await
    .unwrap();
    let leads: Vec<(String,)> = sqlx::query_as("SELECT e164 FROM lead_phones ORDER BY e164")
        .fetch_all(db.pool())
        .await
        .unwrap();
    assert_eq!(
        leads,
        vec![("+13125550100".to_owned(),), ("+442079460958".to_owned(),)]
    );
}

async fn get_json(
    c: &reqwest::Client,
    app: &Appliance,
    token: &str,
    path: &str,
) -> serde_json::Value {
    let r = c
        .get(app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "GET {path}");
    r.json().await.unwrap()
}

#[tokio::test]
async fn serves_https_when_given_a_certificate_and_refuses_plain_http() {
    if !foundation::testing::require_tool("openssl", "openssl")
        || !foundation::testing::require_tool("curl", "curl")
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=dialbridge-test",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );

    // Only one of the two files: refused at start, naming the key.
    let out = run(
        dir.path(),
        &["config", "check"],
        &[("DIALBRIDGE_HTTP_TLS_CERT", cert.to_str().unwrap())],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("http.tls_cert"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let env = [
        ("DIALBRIDGE_HTTP_TLS_CERT", cert.to_str().unwrap()),
        ("DIALBRIDGE_HTTP_TLS_KEY", key.to_str().unwrap()),
        ("DIALBRIDGE_ADMIN_PASSWORD", "correct horse battery"),
    ];
    let mut app = Appliance::start(dir.path(), &env);
    assert!(app.http.starts_with("https://"), "{}", app.http);
    let curl = |args: &[&str]| {
        std::process::Command::new("curl")
            .args(["-s", "--max-time", "5"])
            .args(args)
            .output()
            .unwrap()
    };
    // Verified against the certificate, not with -k.
    let out = curl(&[
        "--cacert",
        cert.to_str().unwrap(),
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &app.url("/healthz"),
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "200");
    // The session cookie is Secure over HTTPS.
    let out = curl(&[
        "--cacert",
        cert.to_str().unwrap(),
        "-D",
        "-",
        "-o",
        "/dev/null",
        "-H",
        "content-type: application/json",
        "-d",
        r#"{"username":"admin","password":"correct horse battery"}"#,
        &app.url("/api/v1/auth/login"),
    ]);
    let headers = String::from_utf8_lossy(&out.stdout).to_lowercase();
    let cookie = headers
        .lines()
        .find(|l| l.starts_with("set-cookie:"))
        .unwrap_or_else(|| panic!("no cookie: {headers}"));
    assert!(cookie.contains("; secure"), "{cookie}");
    // Plain HTTP to the HTTPS port gets no HTTP answer.
    let plain = app.url("/healthz").replacen("https://", "http://", 1);
    let out = curl(&["-o", "/dev/null", "-w", "%{http_code}", &plain]);
    assert_ne!(String::from_utf8_lossy(&out.stdout), "200");
    let (status, _) = app.terminate(Duration::from_secs(10));
    assert!(status.success());
}
