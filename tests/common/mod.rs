//! Starts the real `dialbridge` binary for end-to-end tests: a fresh working directory (so a fresh
//! SQLite database), every listener on port 0, and the bound addresses read from the "listening"
//! log line.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_dialbridge");

pub fn dialbridge(dir: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir)
        .env_remove("DIALBRIDGE_DATABASE_URL")
        .env("DIALBRIDGE_HTTP_LISTEN", "127.0.0.1:0")
        .env("DIALBRIDGE_SIP_UDP_LISTEN", "127.0.0.1:0")
        .env("DIALBRIDGE_SIP_TCP_LISTEN", "127.0.0.1:0")
        .env("DIALBRIDGE_LOG_FORMAT", "json");
    cmd
}

/// A running appliance. Killed (SIGKILL) on drop if still running.
pub struct Appliance {
    pub child: Child,
    pub http: String,
    pub sip_udp: String,
    pub sip_tcp: String,
    pub log: Arc<Mutex<Vec<String>>>,
    pub dir: PathBuf,
}

impl Appliance {
    /// Starts `dialbridge serve` in `dir` with extra environment, and waits for its listening line.
    pub fn start(dir: &Path, env: &[(&str, &str)]) -> Appliance {
        Self::start_with_args(dir, &[], env)
    }

    /// Starts `dialbridge serve ARGS` (e.g. `--demo`) in `dir` with extra environment.
    pub fn start_with_args(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Appliance {
        let mut cmd = dialbridge(dir);
        cmd.arg("serve")
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start dialbridge");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                    if v["event"] == "listening" {
                        let _ = tx.send(v.clone());
                    }
                }
                sink.lock().unwrap().push(line);
            }
        });
        let listening = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(v) => v,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "no listening line; log:\n{}",
                    log.lock().unwrap().join("\n")
                );
            }
        };
        let s = |k: &str| listening[k].as_str().unwrap().to_owned();
        Appliance {
            http: format!(
                "{}://{}",
                if listening["https"] == true {
                    "https"
                } else {
                    "http"
                },
                s("http")
            ),
            sip_udp: s("sip_udp"),
            sip_tcp: s("sip_tcp"),
            child,
            log,
            dir: dir.to_path_buf(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.http)
    }

    /// The Prometheus exposition at `/metrics` (no authentication).
    pub async fn metrics(&self) -> String {
        reqwest::get(self.url("/metrics"))
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("metrics body")
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Sends SIGTERM and waits (at most `limit`) for the exit status.
    pub fn terminate(&mut self, limit: Duration) -> (ExitStatus, Duration) {
        let t0 = Instant::now();
        let pid = self.child.id() as i32;
        let rc = unsafe_kill(pid, 15);
        assert_eq!(rc, 0, "kill -TERM failed");
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status, t0.elapsed());
            }
            if t0.elapsed() > limit {
                let _ = self.child.kill();
                panic!(
                    "dialbridge did not exit within {limit:?} of SIGTERM; log:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Appliance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn unsafe_kill(pid: i32, sig: i32) -> i32 {
    Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .map(|s| if s.success() { 0 } else { 1 })
        .unwrap_or(1)
}

/// Runs `dialbridge ARGS` to completion in `dir`.
pub fn run(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = dialbridge(dir);
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run dialbridge")
}

/// A flow that puts the caller in the `default` queue (waiting there until they hang up or an
/// agent answers), as the numbers of tests that only need an answered call use.
pub const QUEUE_FLOW: &str = r#"{"Version": "2019-10-30", "StartAction": "q", "Actions": [
  {"Identifier": "q", "Type": "UpdateContactTargetQueue", "Parameters": {"QueueId": "default"},
   "Transitions": {"NextAction": "t", "Errors": [{"NextAction": "bye", "ErrorType": "NoMatchingError"}]}},
  {"Identifier": "t", "Type": "TransferContactToQueue", "Parameters": {},
   "Transitions": {"Errors": [{"NextAction": "bye", "ErrorType": "QueueAtCapacity"}, {"NextAction": "bye", "ErrorType": "NoMatchingError"}]}},
  {"Identifier": "bye", "Type": "DisconnectParticipant", "Parameters": {}, "Transitions": {}}]}"#;

/// Saves `flow` as `name` and points each of `numbers` at it, with an admin API key.
pub async fn route_numbers(
    app: &Appliance,
    admin_key: &str,
    name: &str,
    flow: &str,
    numbers: &[&str],
) {
    let c = reqwest::Client::new();
    let resp = c
        .put(app.url(&format!("/api/v1/flows/{name}")))
        .bearer_auth(admin_key)
        .json(&serde_json::json!({"text": flow}))
        .send()
        .await
        .unwrap();
    assert!(
        resp.status().is_success(),
        "saving flow {name}: {} {}",
        resp.status(),
        resp.text().await.unwrap_or_default()
    );
    for n in numbers {
        let resp = c
            .put(app.url(&format!("/api/v1/numbers/{n}")))
            .bearer_auth(admin_key)
            .json(&serde_json::json!({"flow": name}))
            .send()
            .await
            .unwrap();
        assert!(
            resp.status().is_success(),
            "routing {n}: {} {}",
            resp.status(),
            resp.text().await.unwrap_or_default()
        );
    }
}

/// A new API key with `role`, made with the CLI in `dir` (before the appliance starts).
pub fn api_key(dir: &Path, role: &str) -> String {
    let out = run(dir, &["apikey", "create", "--role", role], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A new admin API key (see [`api_key`]).
pub fn admin_key(dir: &Path) -> String {
    api_key(dir, "admin")
}

/// A UDP port free on loopback now (for a sipp peer).
pub fn free_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One sipp UAC call (sipp's built-in `uac` scenario) to `number` at `target`, hanging up after
/// `pause_ms`; messages are traced to `dir/msgs.log`, errors to `dir/errors.log`.
pub fn sipp_uac(dir: &Path, target: &str, number: &str, pause_ms: u32) -> Child {
    Command::new("sipp")
        .current_dir(dir)
        .args([
            "-sn",
            "uac",
            "-s",
            number,
            "-m",
            "1",
            "-i",
            "127.0.0.1",
            "-p",
            "0",
        ])
        .args(["-nostdin", "-timeout", "30s", "-d"])
        .arg(pause_ms.to_string())
        .args(["-trace_err", "-error_file", "errors.log"])
        .args(["-trace_msg", "-message_file", "msgs.log"])
        .arg(target)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("sipp")
}
