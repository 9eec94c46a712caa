//! The bridge API end to end against the real appliance: contract, auth, bad input, expiry after a
//! crash, and the lease storm on SQLite and on two nodes sharing PostgreSQL.

mod common;

use std::time::Duration;

use common::{Appliance, run};
use foundation::testing::TempPgDatabase;
use serde_json::{Value, json};

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

fn key(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let mut all = vec!["apikey", "create"];
    all.extend_from_slice(args);
    let out = run(dir, &all, env);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

async fn send(req: reqwest::RequestBuilder) -> (u16, Value) {
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test]
async fn contract_auth_and_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let admin = key(dir.path(), &["--role", "admin"], &[]);
    let pbx = key(dir.path(), &["--role", "legacy-pbx", "--pool", "east"], &[]);
    let agent = key(dir.path(), &["--role", "agent"], &[]);
    let app = Appliance::start(dir.path(), &[]);
    let c = http();
    let url = |p: &str| app.url(p);

    // Auth: missing or wrong key 401, wrong role 403.
    let (s, b) = send(c.get(url("/api/v1/bridge/pools"))).await;
    assert_eq!((s, b["error"].as_str()), (401, Some("unauthorized")));
    let (s, _) = send(
        c.get(url("/api/v1/bridge/pools"))
            .bearer_auth("dbk_zzzzzzzz_nope"),
    )
    .await;
    assert_eq!(s, 401);
    let east = json!({"name": "east", "numbers": ["+13125550001", "+13125550002"], "direction": "to_legacy"});
    let (s, b) = send(
        c.post(url("/api/v1/bridge/pools"))
            .bearer_auth(&pbx)
            .json(&east),
    )
    .await;
    assert_eq!((s, b["error"].as_str()), (403, Some("forbidden")));
    let (s, _) = send(
        c.post(url("/api/v1/bridge/leases"))
            .bearer_auth(&agent)
            .json(&json!({"pool": "east", "data": {}})),
    )
    .await;
    assert_eq!(s, 403);

    // Pools.
    let (s, b) = send(
        c.post(url("/api/v1/bridge/pools"))
            .bearer_auth(&admin)
            .json(&east),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(
        (
            b["lease_ttl_s"].as_u64(),
            b["cooldown_s"].as_u64(),
            b["available"].as_u64()
        ),
        (Some(120), Some(10), Some(2))
    );
    let (s, _) = send(
        c.post(url("/api/v1/bridge/pools"))
            .bearer_auth(&admin)
            .json(&east),
    )
    .await;
    assert_eq!(s, 409);
    let west = json!({"name": "west", "numbers": ["+442079460001"], "direction": "from_legacy", "cooldown_s": 0, "lease_ttl_s": 1});
    assert_eq!(
        send(
            c.post(url("/api/v1/bridge/pools"))
                .bearer_auth(&admin)
                .json(&west)
        )
        .await
        .0,
        201
    );
    let (s, b) = send(c.get(url("/api/v1/bridge/pools")).bearer_auth(&pbx)).await;
    assert_eq!(
        (s, b.as_array().unwrap().len()),
        (200, 1),
        "a pool-limited key sees its pool only"
    );

    // Bad input: malformed 400, wrong shape 400, oversized 413, unknown pool 404.
    let (s, b) = send(
        c.post(url("/api/v1/bridge/leases"))
            .bearer_auth(&pbx)
            .header("content-type", "application/json")
            .body("{\"pool\": "),
    )
    .await;
    assert_eq!((s, b["error"].as_str()), (400, Some("bad_request")), "{b}");
    let (s, b) = send(
        c.post(url("/api/v1/bridge/leases"))
            .bearer_auth(&pbx)
            .json(&json!({"pool": "east"})),
    )
    .await;
    assert_eq!(s, 400, "missing data: {b}");
    let (s, _) = send(
        c.post(url("/api/v1/bridge/leases"))
            .bearer_auth(&pbx)
            .json(&json!({"pool": "east", "data": [1]})),
    )
    .await;
    assert_eq!(s, 400);
    // Oversized bodies go over their own unpooled connections: the server may answer 413 before it
    // has read the upload and then close that connection, which a pooled client could reuse.
    let once = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let big = json!({"pool": "east", "data": {"blob": "x".repeat(40 * 1024)}});
    let (s, b) = send(
        once.post(url("/api/v1/bridge/leases"))
            .bearer_auth(&pbx)
            .json(&big),
    )
    .await;
    assert_eq!((s, b["error"].as_str()), (413, Some("payload_too_large")));
    let huge = json!({"pool": "east", "data": {"blob": "x".repeat(200 * 1024)}});
    // Over the route's body limit the server answers 413 before reading the body and closes the
    // connection, so the client sees either that 413 or its unread upload cut off: both refuse it.
    match once
        .post(url("/api/v1/bridge/leases"))
        .bearer_auth(&pbx)
        .json(&huge)
        .send()
        .await
    {
        Ok(resp) => assert_eq!(resp.status(), 413),
        Err(e) => assert!(
            e.is_request(),
            "refused by closing the connection mid-upload: {e}"
        ),
    }
    let (s, b) = send(
        c.post(url("/api/v1/bridge/leases"))
            .bearer_auth(&admin)
            .json(&json!({"pool": "nope", "data": {}})),
    )
    .await;
    assert_eq!((s, b["error"].as_str()), (404, Some("unknown_pool")));
    let (s, _) = send(
        c.post(url("/api/v1/bridge/leases"))
            .bearer_auth(&pbx)
            .json(&json!({"pool": "west", "data": {}})),
    )
    .await;
    assert_eq!(s, 403, "a key limited to east may not lease from west");

    // Lease → lookup → consume → retry → release.
    let lease_body = json!({"pool": "east", "data": {"name": "Ada", "account": "42"}, "ani": "+13125559999", "idempotency_key": "call-1"});
    let (s, l) = send(
        c.post(url("/api/v1/bridge/leases"))
            .bearer_auth(&pbx)
            .json(&lease_body),
    )
    .await;
    assert_eq!(s, 201, "{l}");
    assert!(l["expires_at"].as_str().unwrap().ends_with('Z'));
    let (_, again) = send(
        c.post(url("/api/v1/bridge/leases"))
            .bearer_auth(&pbx)
            .json(&lease_body),
    )
    .await;
    assert_eq!(
        again["lease_id"], l["lease_id"],
        "same idempotency key, same lease"
    );
    let dnis = l["dnis"].as_str().unwrap();
    let lookup = |ani: &str, consume: bool| {
        c.get(url("/api/v1/bridge/lookup"))
            .query(&[
                ("dnis", dnis),
                ("ani", ani),
                ("consume", if consume { "true" } else { "false" }),
            ])
            .bearer_auth(&pbx)
    };
    let (s, b) = send(lookup("+13125550000", true)).await;
    assert_eq!(
        (s, b["error"].as_str()),
        (404, Some("unknown")),
        "ANI mismatch answers like an unknown number"
    );
    let (s, b) = send(lookup("+13125559999", true)).await;
    assert_eq!(
        (s, b["data"]["name"].as_str(), b["lease_id"].clone()),
        (200, Some("Ada"), l["lease_id"].clone())
    );
    let (s, b2) = send(lookup("+13125559999", true)).await;
    assert_eq!(
        (s, &b2["data"]),
        (200, &b["data"]),
        "retry within the cooldown"
    );
    let lease_url = url(&format!(
        "/api/v1/bridge/leases/{}",
        l["lease_id"].as_str().unwrap()
    ));
    assert_eq!(send(c.delete(&lease_url).bearer_auth(&pbx)).await.0, 204);
    assert_eq!(
        send(c.delete(&lease_url).bearer_auth(&pbx)).await.0,
        204,
        "idempotent"
    );
    assert_eq!(
        send(
            c.delete(url("/api/v1/bridge/leases/lease_unknown"))
                .bearer_auth(&pbx)
        )
        .await
        .0,
        404
    );
    let (s, _) = send(
        c.get(url("/api/v1/bridge/lookup"))
            .query(&[("ani", "1")])
            .bearer_auth(&pbx),
    )
    .await;
    assert_eq!(s, 400, "lookup without dnis");

    // Exhaustion answers 503 at once; expiry answers 410.
    let w = json!({"pool": "west", "data": {"n": 1}});
    let (s, wl) = send(
        c.post(url("/api/v1/bridge/leases"))
            .bearer_auth(&admin)
            .json(&w),
    )
    .await;
    assert_eq!(s, 201);
    let (s, b) = send(
        c.post(url("/api/v1/bridge/leases"))
            .bearer_auth(&admin)
            .json(&w),
    )
    .await;
    assert_eq!((s, b["error"].as_str()), (503, Some("pool_exhausted")));
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let (s, b) = send(
        c.get(url("/api/v1/bridge/lookup"))
            .query(&[("dnis", wl["dnis"].as_str().unwrap())])
            .bearer_auth(&admin),
    )
    .await;
    assert_eq!((s, b["error"].as_str()), (410, Some("expired")));

    // Runtime number changes.
    let (s, b) = send(
        c.post(url("/api/v1/bridge/pools/east/numbers"))
            .bearer_auth(&admin)
            .json(&json!({"numbers": ["+13125550003"]})),
    )
    .await;
    assert_eq!((s, b["numbers"].as_array().unwrap().len()), (200, 3));
    assert_eq!(
        send(
            c.delete(url("/api/v1/bridge/pools/east/numbers/+13125550003"))
                .bearer_auth(&admin)
        )
        .await
        .0,
        204
    );

    // The migration router: edited at runtime, followed by the next call.
    let route = json!({"match_kind": "number", "match_value": "+13125550100", "legacy_percent": 100, "legacy_target": "+13125550199"});
    assert_eq!(
        send(
            c.put(url("/api/v1/bridge/routes"))
                .bearer_auth(&pbx)
                .json(&route)
        )
        .await
        .0,
        403
    );
    let (s, b) = send(
        c.put(url("/api/v1/bridge/routes"))
            .bearer_auth(&admin)
            .json(&route),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let decision = || {
        c.get(url("/api/v1/bridge/routes/decision"))
            .query(&[("dialed", "+13125550100"), ("caller", "+15550001")])
            .bearer_auth(&admin)
    };
    let (_, d) = send(decision()).await;
    assert_eq!(
        (d["to"].as_str(), d["target"].as_str()),
        (Some("legacy"), Some("+13125550199"))
    );
    let route = json!({"match_kind": "number", "match_value": "+13125550100", "legacy_percent": 0, "local_flow": "main-menu"});
    assert_eq!(
        send(
            c.put(url("/api/v1/bridge/routes"))
                .bearer_auth(&admin)
                .json(&route)
        )
        .await
        .0,
        200
    );
    let (_, d) = send(decision()).await;
    assert_eq!(
        (d["to"].as_str(), d["flow"].as_str()),
        (Some("local"), Some("main-menu"))
    );
    let bad = json!({"match_kind": "number", "match_value": "+1", "legacy_percent": 50, "local_flow": "x"});
    assert_eq!(
        send(
            c.put(url("/api/v1/bridge/routes"))
                .bearer_auth(&admin)
                .json(&bad)
        )
        .await
        .0,
        400,
        "a split needs a legacy target"
    );
    assert_eq!(
        send(
            c.delete(url("/api/v1/bridge/routes/number/+13125550100"))
                .bearer_auth(&admin)
        )
        .await
        .0,
        204
    );
    let (_, d) = send(decision()).await;
    assert_eq!(d["to"], "default");

    let doc: Value = c
        .get(url("/api/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for p in [
        "/api/v1/bridge/pools",
        "/api/v1/bridge/pools/{name}",
        "/api/v1/bridge/leases",
        "/api/v1/bridge/lookup",
        "/api/v1/bridge/leases/{lease_id}",
        "/api/v1/bridge/routes",
    ] {
        assert!(doc["paths"][p].is_object(), "OpenAPI lacks {p}");
    }
    let metrics = c
        .get(url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("dialbridge_bridge_leases_total{pool=\"west\",result=\"exhausted\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn rate_limit_answers_429() {
    let dir = tempfile::tempdir().unwrap();
    let admin = key(dir.path(), &["--role", "admin"], &[]);
    let app = Appliance::start(
        dir.path(),
        &[
            ("DIALBRIDGE_API_RATE_LIMIT_PER_S", "1"),
            ("DIALBRIDGE_API_RATE_LIMIT_BURST", "3"),
        ],
    );
    let c = http();
    let mut statuses = Vec::new();
    for _ in 0..8 {
        let (s, b) = send(c.get(app.url("/api/v1/bridge/pools")).bearer_auth(&admin)).await;
        if s == 429 {
            assert_eq!(b["error"], "rate_limited");
        }
        statuses.push(s);
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        3,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        5,
        "{statuses:?}"
    );
}

#[tokio::test]
async fn a_killed_appliance_loses_no_number() {
    let dir = tempfile::tempdir().unwrap();
    let admin = key(dir.path(), &["--role", "admin"], &[]);
    let env = [("DIALBRIDGE_BRIDGE_REAPER_INTERVAL_S", "1")];
    let mut app = Appliance::start(dir.path(), &env);
    let c = http();
    let pool = json!({"name": "p", "numbers": ["+13125550001", "+13125550002", "+13125550003"], "direction": "to_legacy", "lease_ttl_s": 2, "cooldown_s": 0});
    assert_eq!(
        send(
            c.post(app.url("/api/v1/bridge/pools"))
                .bearer_auth(&admin)
                .json(&pool)
        )
        .await
        .0,
        201
    );
    for _ in 0..3 {
        assert_eq!(
            send(
                c.post(app.url("/api/v1/bridge/leases"))
                    .bearer_auth(&admin)
                    .json(&json!({"pool": "p", "data": {"x": 1}}))
            )
            .await
            .0,
            201
        );
    }
    app.child.kill().unwrap(); // SIGKILL mid-run
    app.child.wait().unwrap();

    let app = Appliance::start(dir.path(), &env);
    let (s, _) = send(
        c.post(app.url("/api/v1/bridge/leases"))
            .bearer_auth(&admin)
            .json(&json!({"pool": "p", "data": {}})),
    )
    .await;
    assert_eq!(s, 503, "the leases survived the crash");
    tokio::time::sleep(Duration::from_millis(3500)).await;
    for _ in 0..3 {
        let (s, b) = send(
            c.post(app.url("/api/v1/bridge/leases"))
                .bearer_auth(&admin)
                .json(&json!({"pool": "p", "data": {"y": 2}})),
        )
        .await;
        assert_eq!(s, 201, "expired leases are reused: {b}");
    }
    let db = foundation::Db::connect(
        &format!("sqlite://{}/data/dialbridge.db", dir.path().display()),
        1,
    )
    .await
    .unwrap();
    let expired: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM bridge_leases WHERE end_reason = 'expired'")
            .fetch_one(db.pool())
            .await
            .unwrap();
    assert_eq!(
        expired, 3,
        "each lease of the killed process has its final record"
    );
}

/// Runs `dialbridge bench bridge` (the real command) and returns its JSON report.
fn storm(urls: &[String], key: &str, numbers: usize, cooldown_s: u64, cycles: usize) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec!["bench".to_owned(), "bridge".into()];
    for u in urls {
        args.extend(["--url".to_owned(), u.clone()]);
    }
    args.extend([
        "--numbers".into(),
        numbers.to_string(),
        "--cycles".into(),
        cycles.to_string(),
    ]);
    args.extend(["--cooldown-s".into(), cooldown_s.to_string()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run(dir.path(), &args, &[("DIALBRIDGE_BENCH_KEY", key)]);
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("no report: {}", String::from_utf8_lossy(&out.stderr)));
    eprintln!("storm report: {report}");
    assert!(out.status.success(), "{report}");
    assert_eq!(report["double_leases"], 0);
    assert_eq!(
        (report["errors"].as_u64(), report["hung"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(
        report["cycles_ok"].as_u64().unwrap() + report["exhausted"].as_u64().unwrap(),
        8 * cycles as u64
    );
    report
}

#[test]
fn storm_on_sqlite_never_double_leases() {
    let dir = tempfile::tempdir().unwrap();
    let admin = key(dir.path(), &["--role", "admin"], &[]);
    let app = Appliance::start(dir.path(), &[]);
    let urls = [app.http.clone()];
    let r = storm(&urls, &admin, 50, 0, 300);
    assert_eq!(
        r["exhausted"], 0,
        "8 clients never hold more than 8 of 50 numbers"
    );
    // 10 numbers, each cooling down 1 s after use: the 8 clients exhaust the pool.
    let r = storm(&urls, &admin, 10, 1, 150);
    assert!(r["exhausted"].as_u64().unwrap() > 0, "{r}");
}

#[tokio::test]
async fn storm_on_two_postgres_nodes_never_double_leases() {
    let Some(pg) = TempPgDatabase::create().await else {
        return;
    };
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let env = [("DIALBRIDGE_DATABASE_URL", pg.url.as_str())];
    let admin = key(dir_a.path(), &["--role", "admin"], &env);
    let a = Appliance::start(dir_a.path(), &env);
    let b = Appliance::start(dir_b.path(), &env);
    let urls = [a.http.clone(), b.http.clone()];
    let r = storm(&urls, &admin, 50, 0, 300);
    assert_eq!(
        r["exhausted"], 0,
        "8 clients never hold more than 8 of 50 numbers"
    );
    let r = storm(&urls, &admin, 10, 1, 150);
    assert!(r["exhausted"].as_u64().unwrap() > 0, "{r}");
    drop((a, b));
}
