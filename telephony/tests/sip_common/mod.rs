//! Shared by the `sip_*` integration tests: start the SIP driver on loopback, run sipp, read its
//! exit code and `-trace_stat` CSV.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use foundation::lifecycle::Lifecycle;
use telephony::sip::call::CallEvent;
use telephony::sip::listener::{self, SipListeners, SipOptions};

pub fn config() -> telephony::Config {
    telephony::Config {
        udp: "127.0.0.1:0".parse().unwrap(),
        tcp: "127.0.0.1:0".parse().unwrap(),
        advertised_address: Some("127.0.0.1".into()),
        rtp_ports: (20000, 29999),
        max_message_bytes: 8192,
    }
}

pub async fn start(options: SipOptions) -> (SipListeners, Lifecycle) {
    let lc = Lifecycle::new();
    let l = listener::start_with(&config(), options, lc.clone())
        .await
        .expect("SIP listeners start");
    (l, lc)
}

/// A fresh scratch directory for one test.
pub fn scratch(name: &str) -> PathBuf {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("dialbridge-{name}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A free loopback UDP+TCP port for sipp.
pub fn free_port() -> u16 {
    loop {
        let u = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = u.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

#[derive(Debug)]
pub struct SippRun {
    pub rc: i32,
    /// The last line of the `-trace_stat` CSV, by column name.
    pub stats: HashMap<String, String>,
    pub stdout: String,
    pub errors: String,
}

impl SippRun {
    pub fn stat(&self, name: &str) -> u64 {
        self.stats
            .get(name)
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| {
                panic!(
                    "no numeric `{name}` in sipp stats: {:?}\nstdout: {}\nerrors: {}",
                    self.stats.keys(),
                    self.stdout,
                    self.errors
                )
            })
    }
}

/// Starts sipp in `dir` with stats tracing; wait with [`wait_sipp`].
pub fn spawn_sipp(dir: &Path, args: &[&str]) -> tokio::process::Child {
    let mut cmd = tokio::process::Command::new("sipp");
    cmd.current_dir(dir)
        .args(args)
        .args([
            "-nostdin",
            "-trace_stat",
            "-stf",
            "stat.csv",
            "-fd",
            "1",
            "-trace_err",
            "-error_file",
            "errors.log",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    cmd.spawn().expect("sipp starts")
}

pub async fn wait_sipp(dir: &Path, child: tokio::process::Child) -> SippRun {
    let out = child.wait_with_output().await.expect("sipp runs");
    let csv = std::fs::read_to_string(dir.join("stat.csv")).unwrap_or_default();
    let mut lines = csv.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<&str> = lines
        .next()
        .map(|h| h.split(';').collect())
        .unwrap_or_default();
    let last: Vec<&str> = lines
        .next_back()
        .map(|l| l.split(';').collect())
        .unwrap_or_default();
    let stats = header
        .iter()
        .zip(last.iter())
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    SippRun {
        rc: out.status.code().unwrap_or(-1),
        stats,
        stdout: String::from_utf8_lossy(&out.stdout)
            .chars()
            .rev()
            .take(3000)
            .collect::<String>()
            .chars()
            .rev()
            .collect(),
        errors: std::fs::read_to_string(dir.join("errors.log"))
            .unwrap_or_default()
            .chars()
            .take(3000)
            .collect(),
    }
}

pub async fn run_sipp(dir: &Path, args: &[&str]) -> SippRun {
    let child = spawn_sipp(dir, args);
    wait_sipp(dir, child).await
}

/// Collects call events until `until` says stop or the time runs out.
pub async fn collect_events(
    rx: &mut tokio::sync::broadcast::Receiver<CallEvent>,
    within: Duration,
    mut until: impl FnMut(&[CallEvent]) -> bool,
) -> Vec<CallEvent> {
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + within;
    while !until(&got) {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Ok(ev)) => got.push(ev),
            Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => continue,
            _ => break,
        }
    }
    got
}

/// Waits until the SUT has no call left (or the time runs out); returns the final stats.
pub async fn settle(l: &SipListeners, within: Duration) -> telephony::sip::driver::Stats {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let s = l.handle.stats().await.expect("driver alive");
        if s.active_calls == 0 || tokio::time::Instant::now() > deadline {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
