//! `dialbridge bench …`: load generators that print their figures (speed targets live here, never
//! in timed unit tests).
//!
//! `bench bridge` is the bridge storm: N concurrent clients each run lease → lookup(consume)
//! cycles over HTTP against one or more appliances (several URLs = several nodes on one
//! PostgreSQL). Every lease stores a token unique to its client and cycle, so a lookup returning
//! any other token is a double lease. 503s (pool exhausted) are counted apart, with their latency.
//!
//! `bench desktop` ([`desktop`]) measures call offered → agent's desktop notified with many
//! desktop sockets connected.

pub mod desktop;
mod ws;

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Serialize;
use serde_json::json;

#[derive(Debug, Clone)]
pub struct StormOptions {
    pub urls: Vec<String>,
    /// An admin API key (creates the pool, then leases with it).
    pub key: String,
    pub clients: usize,
    pub cycles: usize,
    pub numbers: usize,
    pub cooldown_s: u64,
    pub lease_ttl_s: u64,
    pub request_timeout: Duration,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct StormReport {
    pub clients: usize,
    pub cycles_per_client: usize,
    pub pool_numbers: usize,
    /// Lease and lookup both succeeded with the right data.
    pub cycles_ok: u64,
    /// Lease answered 503 pool_exhausted.
    pub exhausted: u64,
    /// A lookup returned data stored by another lessee. Must be 0.
    pub double_leases: u64,
    /// Any other answer (status and count in `error_samples`).
    pub errors: u64,
    pub error_samples: Vec<String>,
    /// Requests that did not answer within the timeout.
    pub hung: u64,
    pub elapsed_s: f64,
    pub cycles_per_s: f64,
    pub requests_per_s: f64,
    pub lease_p50_ms: f64,
    pub lease_p99_ms: f64,
    pub lookup_p50_ms: f64,
    pub lookup_p99_ms: f64,
    pub exhausted_p99_ms: f64,
}

#[derive(Default)]
struct ClientTally {
    ok: u64,
    exhausted: u64,
    double: u64,
    errors: u64,
    hung: u64,
    samples: Vec<String>,
    lease_ms: Vec<f64>,
    lookup_ms: Vec<f64>,
    exhausted_ms: Vec<f64>,
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    (v[i] * 1000.0).round() / 1000.0
}

pub async fn bridge_storm(opts: &StormOptions) -> anyhow::Result<StormReport> {
    if opts.urls.is_empty() || opts.clients == 0 {
        bail!("need at least one URL and one client");
    }
    let http = reqwest::Client::builder()
        .timeout(opts.request_timeout)
        .pool_max_idle_per_host(opts.clients * 2)
        .build()?;
    let tag = foundation::ids::random_base32(6);
    let pool = format!("bench-{tag}");
    let base: u64 = rand::random_range(100..999);
    let numbers: Vec<String> = (0..opts.numbers)
        .map(|i| format!("+1999{base:03}{i:04}"))
        .collect();
    let resp = http
        .post(format!("{}/api/v1/bridge/pools", opts.urls[0]))
        .bearer_auth(&opts.key)
        .json(
            &json!({"name": pool, "numbers": numbers, "direction": "to_legacy",
                      "lease_ttl_s": opts.lease_ttl_s, "cooldown_s": opts.cooldown_s}),
        )
        .send()
        .await
        .context("creating the bench pool")?;
    if resp.status() != 201 {
        bail!(
            "creating the bench pool: {} {}",
            resp.status(),
            resp.text().await.unwrap_or_default()
        );
    }

    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..opts.clients {
        let (http, url, key, pool, cycles) = (
            http.clone(),
            opts.urls[c % opts.urls.len()].clone(),
            opts.key.clone(),
            pool.clone(),
            opts.cycles,
        );
        tasks.push(tokio::spawn(async move {
            run_client(&http, &url, &key, &pool, c, cycles).await
        }));
    }
    let mut all = ClientTally::default();
    for t in tasks {
        let r = t.await?;
        all.ok += r.ok;
        all.exhausted += r.exhausted;
        all.double += r.double;
        all.errors += r.errors;
        all.hung += r.hung;
        all.samples.extend(r.samples);
        all.lease_ms.extend(r.lease_ms);
        all.lookup_ms.extend(r.lookup_ms);
        all.exhausted_ms.extend(r.exhausted_ms);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let _ = http
        .delete(format!("{}/api/v1/bridge/pools/{pool}", opts.urls[0]))
        .bearer_auth(&opts.key)
        .send()
        .await;
    all.samples.truncate(10);
    let requests = all.lease_ms.len() + all.lookup_ms.len() + all.exhausted_ms.len();
    Ok(StormReport {
        clients: opts.clients,
        cycles_per_client: opts.cycles,
        pool_numbers: opts.numbers,
        cycles_ok: all.ok,
        exhausted: all.exhausted,
        double_leases: all.double,
        errors: all.errors,
        error_samples: all.samples,
        hung: all.hung,
        elapsed_s: (elapsed * 1000.0).round() / 1000.0,
        cycles_per_s: (all.ok as f64 / elapsed).round(),
        requests_per_s: (requests as f64 / elapsed).round(),
        lease_p50_ms: percentile(&mut all.lease_ms, 0.50),
        lease_p99_ms: percentile(&mut all.lease_ms, 0.99),
        lookup_p50_ms: percentile(&mut all.lookup_ms, 0.50),
        lookup_p99_ms: percentile(&mut all.lookup_ms, 0.99),
        exhausted_p99_ms: percentile(&mut all.exhausted_ms, 0.99),
    })
}

async fn run_client(
    http: &reqwest::Client,
    url: &str,
    key: &str,
    pool: &str,
    client: usize,
    cycles: usize,
) -> ClientTally {
    let mut t = ClientTally::default();
    for i in 0..cycles {
        let token = format!("{client}-{i}");
        let t0 = Instant::now();
        let resp = http
            .post(format!("{url}/api/v1/bridge/leases"))
            .bearer_auth(key)
            .json(&json!({"pool": pool, "data": {"token": token}}))
            .send()
            .await;
        let ms = t0.elapsed().as_secs_f64() * 1000.0;
        let resp = match resp {
            Ok(r) => r,
            Err(e) if e.is_timeout() => {
                t.hung += 1;
                continue;
            }
            Err(e) => {
                t.errors += 1;
                t.samples.push(format!("lease: {e}"));
                continue;
            }
        };
        let status = resp.status().as_u16();
        let body: serde_json::Value = resp.json().await.unwrap_or_default();
        match status {
            201 => t.lease_ms.push(ms),
            503 if body["error"] == "pool_exhausted" => {
                t.exhausted += 1;
                t.exhausted_ms.push(ms);
                continue;
            }
            _ => {
                t.errors += 1;
                t.samples.push(format!("lease: {status} {body}"));
                continue;
            }
        }
        let dnis = body["dnis"].as_str().unwrap_or_default().to_owned();
        let t0 = Instant::now();
        let resp = http
            .get(format!("{url}/api/v1/bridge/lookup"))
            .query(&[("dnis", dnis.as_str()), ("consume", "true")])
            .bearer_auth(key)
            .send()
            .await;
        let ms = t0.elapsed().as_secs_f64() * 1000.0;
        match resp {
            Ok(r) if r.status() == 200 => {
                t.lookup_ms.push(ms);
                let found: serde_json::Value = r.json().await.unwrap_or_default();
                if found["data"]["token"] == token.as_str() {
                    t.ok += 1;
                } else {
                    t.double += 1;
                    t.samples.push(format!(
                        "double lease on {dnis}: stored {token}, got {}",
                        found["data"]
                    ));
                }
            }
            Ok(r) => {
                t.errors += 1;
                let s = r.status();
                t.samples.push(format!(
                    "lookup: {s} {}",
                    r.text().await.unwrap_or_default()
                ));
            }
            Err(e) if e.is_timeout() => t.hung += 1,
            Err(e) => {
                t.errors += 1;
                t.samples.push(format!("lookup: {e}"));
            }
        }
    }
    t
}
