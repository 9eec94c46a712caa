//! `dialbridge bench desktop`: how fast an agent's desktop hears of an offer with many desktops
//! connected (issue #8: call offered → agent's desktop notified, p99 with 100 connected agent
//! sessions, goal < 150 ms).
//!
//! Against an appliance it starts itself (or a running one: `--url` and `--key`), the bench
//! 1. starts the carrier simulator in this process as the agents' phones (calls to `agent…`
//!    answer and stay up: nailed-up legs);
//! 2. routes a number to a flow that queues the caller in `default`;
//! 3. creates `--agents` agent API keys, opens one desktop WebSocket (`GET
//!    /api/v1/agent/events`) per agent — synthetic clients, not browsers —, logs each agent in
//!    nailed-up to its simulated phone and makes it Available;
//! 4. has sipp's built-in UAC place `--calls` calls to the number (`--cps`, each held `--talk-ms`);
//! 5. on every `contact_offered` message a socket receives for its own agent, records
//!    `received - at_ms`: from the offer as stamped by the appliance's clock (the ACD task's
//!    decision, epoch ms, truncated to the millisecond) to the message read off the socket by the
//!    client (same machine, same clock). When its agent enters after-contact work, the client
//!    sends the disposition over the socket, so the agent is Available again at once.
//!
//! Prints count, p50, p90, p99 and max as JSON.
//!
//! # Measured (debug build, loopback, 2 shared cores, 100 agents and sockets)
//! - 200 calls at 10 cps, 2 s each: 200 of 200 offers seen; p50 2.3 ms, p90 3.6 ms, p99 4.8 ms,
//!   max 8.5 ms.
//! - 600 calls at 30 cps: 600 of 600; p50 1.5 ms, p90 3.1 ms, p99 5.3 ms, max 6.9 ms.
//!
//! The goal is p99 < 150 ms. Needs `sipp` (Debian: sip-tester). A running
//! appliance must not hang up idle agent legs during the run (`rtp.inactivity_timeout_s = 0`, or
//! a run shorter than it): the simulated phones send no audio while idle.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;

use super::percentile;
use super::ws;

#[derive(Debug, Clone)]
pub struct DesktopOptions {
    /// A running appliance and an admin key; `None`: start one in a scratch directory.
    pub target: Option<(String, String)>,
    pub agents: usize,
    pub calls: usize,
    pub cps: f64,
    pub talk_ms: u64,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct DesktopReport {
    pub agents: usize,
    pub sockets_connected: usize,
    pub calls: usize,
    /// sipp's exit code (0: every call succeeded).
    pub sipp_exit: i32,
    /// `contact_offered` messages received on the offered agent's own socket.
    pub offers_measured: usize,
    pub measured_from: &'static str,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub goal_p99_ms: f64,
    pub elapsed_s: f64,
}

const NUMBER: &str = "+15550199";
const QUEUE_FLOW: &str = r#"{"Version": "2019-10-30", "StartAction": "q", "Actions": [
  {"Identifier": "q", "Type": "UpdateContactTargetQueue", "Parameters": {"QueueId": "default"},
   "Transitions": {"NextAction": "t", "Errors": [{"NextAction": "bye", "ErrorType": "NoMatchingError"}]}},
  {"Identifier": "t", "Type": "TransferContactToQueue", "Parameters": {},
   "Transitions": {"Errors": [{"NextAction": "bye", "ErrorType": "QueueAtCapacity"}, {"NextAction": "bye", "ErrorType": "NoMatchingError"}]}},
  {"Identifier": "bye", "Type": "DisconnectParticipant", "Parameters": {}, "Transitions": {}}]}"#;

/// An appliance this bench started: killed with its scratch directory when dropped.
struct Started {
    child: std::process::Child,
    dir: PathBuf,
}

impl Drop for Started {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts `dialbridge serve` (this executable) on free ports in a scratch directory, with an
/// admin key made by the CLI first. Returns the base URL, the key and the SIP UDP address.
fn start_appliance() -> anyhow::Result<(Started, String, String, String)> {
    let exe = std::env::current_exe()?;
    let dir = std::env::temp_dir().join(format!(
        "dialbridge-bench-desktop-{}",
        foundation::ids::random_base32(8)
    ));
    std::fs::create_dir_all(&dir)?;
    let cmd = |args: &[&str]| {
        let mut c = std::process::Command::new(&exe);
        c.current_dir(&dir)
            .args(args)
            .env_remove("DIALBRIDGE_DATABASE_URL")
            .env("DIALBRIDGE_HTTP_LISTEN", "127.0.0.1:0")
            .env("DIALBRIDGE_SIP_UDP_LISTEN", "127.0.0.1:0")
            .env("DIALBRIDGE_SIP_TCP_LISTEN", "127.0.0.1:0")
            .env("DIALBRIDGE_RTP_INACTIVITY_TIMEOUT_S", "0")
            .env("DIALBRIDGE_LOG_FORMAT", "json")
            .env("DIALBRIDGE_LOG_LEVEL", "info");
        c
    };
    let out = cmd(&["apikey", "create", "--role", "admin"]).output()?;
    if !out.status.success() {
        bail!(
            "creating the admin key: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let key = String::from_utf8(out.stdout)?.trim().to_owned();
    let mut child = cmd(&["serve"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let stderr = child.stderr.take().context("appliance stderr")?;
    let started = Started { child, dir };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        let mut sent = false;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if !sent
                && let Ok(v) = serde_json::from_str::<Value>(&line)
                && v["event"] == "listening"
            {
                let _ = tx.send(v);
                sent = true;
            }
        }
    });
    let listening = rx
        .recv_timeout(Duration::from_secs(60))
        .context("the appliance printed no listening line within 60 s")?;
    let s = |k: &str| listening[k].as_str().unwrap_or_default().to_owned();
    Ok((started, format!("http://{}", s("http")), key, s("sip_udp")))
}

async fn check(resp: reqwest::Response, what: &str) -> anyhow::Result<Value> {
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    if !status.is_success() {
        bail!("{what}: {status} {text}");
    }
    Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(0.0)
}

/// One agent's desktop socket: records its offers' latencies; dispositions its contacts at the
/// start of after-contact work so the agent is soon Available again.
async fn desktop_client(
    host: String,
    name: String,
    key: String,
    latencies: Arc<Mutex<Vec<f64>>>,
    ready: tokio::sync::oneshot::Sender<anyhow::Result<()>>,
) {
    let (mut rx, mut tx) = match ws::connect(&host, "/api/v1/agent/events", &key).await {
        Ok(c) => c,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let _ = ready.send(Ok(()));
    let mut contact: Option<String> = None;
    while let Ok(Some(text)) = rx.next_text(&mut tx).await {
        let received = now_ms();
        let Ok(msg) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        if msg["type"] != "event" {
            continue;
        }
        let ev = &msg["event"];
        match ev["event"].as_str() {
            Some("contact_offered") if ev["agent"] == name.as_str() => {
                if let Some(at) = ev["at_ms"].as_f64() {
                    latencies.lock().expect("latencies").push(received - at);
                }
                contact = ev["contact"].as_str().map(str::to_owned);
            }
            Some("agent_state_changed")
                if ev["agent"] == name.as_str()
                    && ev["state"].get("AfterContactWork").is_some() =>
            {
                if let Some(c) = contact.take() {
                    let cmd = json!({"type": "disposition", "contact": c, "code": "bench"});
                    if tx.send_text(&cmd.to_string()).await.is_err() {
                        return;
                    }
                }
            }
            _ => {}
        }
    }
}

pub async fn desktop(opts: &DesktopOptions) -> anyhow::Result<DesktopReport> {
    if opts.agents == 0 || opts.calls == 0 || opts.cps <= 0.0 {
        bail!("--agents, --calls and --cps must be above 0");
    }
    if std::process::Command::new("sipp")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_err()
    {
        bail!(
            "bench desktop places its calls with sipp: install it (Debian: apt-get install sip-tester)"
        );
    }
    let (_started, url, key, sip) = match &opts.target {
        Some((url, key)) => {
            let ready: Value = reqwest::get(format!("{url}/readyz")).await?.json().await?;
            let sip = ready["listening"]["sip_udp"]
                .as_str()
                .context("/readyz names no sip_udp address")?
                .to_owned();
            (None, url.trim_end_matches('/').to_owned(), key.clone(), sip)
        }
        None => {
            let (s, url, key, sip) = tokio::task::spawn_blocking(start_appliance).await??;
            (Some(s), url, key, sip)
        }
    };
    let host = url
        .strip_prefix("http://")
        .context("bench desktop speaks plain HTTP only (give an http:// URL)")?
        .to_owned();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(64)
        .build()?;

    // The agents' phones.
    let lifecycle = foundation::lifecycle::Lifecycle::new();
    let mut sim = telephony::carrier_sim::start(
        telephony::carrier_sim::CarrierSimConfig {
            listen: "127.0.0.1:0".parse()?,
            rtp_ports: (42000, 43999),
            agent_prefix: Some("agent".into()),
            ..Default::default()
        },
        lifecycle.clone(),
    )
    .await
    .context("starting the simulated agent phones")?;
    let sim_addr = sim.udp_addr;
    tokio::spawn(async move { while sim.next_record().await.is_some() {} });

    check(
        http.put(format!("{url}/api/v1/flows/bench-desktop"))
            .bearer_auth(&key)
            .json(&json!({"text": QUEUE_FLOW}))
            .send()
            .await?,
        "saving the bench flow",
    )
    .await?;
    check(
        http.put(format!("{url}/api/v1/numbers/{NUMBER}"))
            .bearer_auth(&key)
            .json(&json!({"flow": "bench-desktop"}))
            .send()
            .await?,
        "routing the bench number",
    )
    .await?;

    // Agents: a key each (its name is the agent id), a socket each, then login and Available.
    let tag = foundation::ids::random_base32(4).to_lowercase();
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let mut agents = Vec::new();
    for i in 0..opts.agents {
        let name = format!("bench-{tag}-{i:03}");
        let created = check(
            http.post(format!("{url}/api/v1/apikeys"))
                .bearer_auth(&key)
                .json(&json!({"name": name, "role": "agent"}))
                .send()
                .await?,
            "creating an agent key",
        )
        .await?;
        let token = created["token"].as_str().context("no token")?.to_owned();
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(desktop_client(
            host.clone(),
            name.clone(),
            token.clone(),
            latencies.clone(),
            tx,
        ));
        rx.await?
            .with_context(|| format!("{name}'s desktop socket"))?;
        agents.push((name, token, i));
    }
    let sockets_connected = agents.len();
    eprintln!("bench desktop: {sockets_connected} desktop sockets open; logging the agents in");
    let logins = futures_util::stream::iter(agents.iter().map(|(name, token, i)| {
        let (http, url) = (http.clone(), url.clone());
        let phone = format!("sip:agent{tag}{i:03}@{sim_addr}");
        async move {
            check(
                http.post(format!("{url}/api/v1/agent/login"))
                    .bearer_auth(token)
                    .json(
                        &json!({"endpoint": {"kind": "uri", "value": phone}, "mode": "nailed_up"}),
                    )
                    .send()
                    .await?,
                &format!("{name}'s login"),
            )
            .await?;
            check(
                http.put(format!("{url}/api/v1/agent/state"))
                    .bearer_auth(token)
                    .json(&json!({"status": "available"}))
                    .send()
                    .await?,
                &format!("{name} → available"),
            )
            .await?;
            anyhow::Ok(())
        }
    }));
    use futures_util::StreamExt;
    let results: Vec<anyhow::Result<()>> = logins.buffer_unordered(8).collect().await;
    for r in results {
        r?;
    }
    latencies.lock().expect("latencies").clear();
    eprintln!(
        "bench desktop: {} agents Available; placing {} calls at {} cps",
        opts.agents, opts.calls, opts.cps
    );

    // The callers.
    let work = std::env::temp_dir().join(format!("dialbridge-bench-sipp-{tag}"));
    std::fs::create_dir_all(&work)?;
    let started = Instant::now();
    let budget = (opts.calls as f64 / opts.cps) as u64 + opts.talk_ms / 1000 + 60;
    let mut sipp = tokio::process::Command::new("sipp")
        .current_dir(&work)
        .args([
            &sip,
            "-sn",
            "uac",
            "-s",
            NUMBER,
            "-i",
            "127.0.0.1",
            "-p",
            "0",
        ])
        .args(["-r", &opts.cps.to_string(), "-rp", "1000"])
        .args([
            "-m",
            &opts.calls.to_string(),
            "-l",
            &opts.agents.to_string(),
        ])
        .args(["-d", &opts.talk_ms.to_string(), "-nostdin"])
        .args(["-timeout", &format!("{budget}s")])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("starting sipp")?;
    let mut err_lines =
        tokio::io::BufReader::new(sipp.stderr.take().context("sipp stderr")?).lines();
    let errs = tokio::spawn(async move {
        let mut v = Vec::new();
        while let Ok(Some(l)) = err_lines.next_line().await {
            if v.len() < 5 {
                v.push(l);
            }
        }
        v
    });
    let status = sipp.wait().await?;
    let sipp_errors = errs.await.unwrap_or_default();
    // Let the last offers' messages arrive.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let elapsed = started.elapsed().as_secs_f64();
    let _ = std::fs::remove_dir_all(&work);
    if !sipp_errors.is_empty() {
        eprintln!("sipp: {}", sipp_errors.join(" | "));
    }

    for (_, token, _) in &agents {
        let _ = http
            .post(format!("{url}/api/v1/agent/logout"))
            .bearer_auth(token)
            .send()
            .await;
    }
    lifecycle.start_draining();
    let mut v = latencies.lock().expect("latencies").clone();
    Ok(DesktopReport {
        agents: opts.agents,
        sockets_connected,
        calls: opts.calls,
        sipp_exit: status.code().unwrap_or(-1),
        offers_measured: v.len(),
        measured_from: "the contact_offered event's at_ms (appliance clock) to the socket message read by the client",
        p50_ms: percentile(&mut v, 0.50),
        p90_ms: percentile(&mut v, 0.90),
        p99_ms: percentile(&mut v, 0.99),
        max_ms: percentile(&mut v, 1.0),
        goal_p99_ms: 150.0,
        elapsed_s: (elapsed * 1000.0).round() / 1000.0,
    })
}
