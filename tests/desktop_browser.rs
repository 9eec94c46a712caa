//! The agent desktop and the supervisor page in Debian's chromium against real calls (issue #8):
//!
//! - `the_desktop_softphone_takes_a_call_and_dials_a_preview_lead`: the desktop's own "this
//!   browser" login without auto-accept (desktop.js opens the WebRTC leg over the desktop socket
//!   and logs in nailed-up); a sipp caller through a flow and queue is offered, stays offered
//!   until the page's Answer is clicked, and is then answered in the page with audio proven both
//!   ways by content (the
//!   page's WebAudio analyser hears the caller's 700 Hz; the caller's SDP address, a socket of
//!   this test, gets the browser's fake-capture 1 kHz); hang up, disposition. Then a
//!   preview-mode campaign: the card shows the lead, Dial places the call to a sipp UAS (the
//!   campaign's trunk), which gets the INVITE for the lead's number and answers; the desktop
//!   shows the call with the attempt in its screen pop, the callee hears the browser; hang up,
//!   disposition; the attempt is final `connected` with the agent, and both contact records
//!   carry their disposition.
//! - `the_supervisor_barges_whispers_and_listens_from_the_page`: a sipp caller talks to an agent
//!   (a sipp UAS, nailed-up); the supervisor, with this browser as their phone, clicks Barge,
//!   Whisper and Listen in the supervisor page. Roles are proven by who hears the supervisor's
//!   1 kHz: barge — the customer and the agent; whisper — the agent only; listen — nobody; the
//!   supervisor hears the customer.
//!
//! Scripts: `tests/console/desktop.mjs`, `tests/console/supervisor.mjs` (driven over
//! stdin/stdout). Screenshots go to `$DIALBRIDGE_ARTIFACTS/console` (default
//! `<target>/tmp/artifacts/console`). Needs chromium, node, sox, sipp and
//! `tests/console/node_modules`: skipped without them, failing under CI=true. The two tests take
//! turns (one browser and one appliance at a time).

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Appliance, QUEUE_FLOW, admin_key, api_key, free_port, route_numbers, run};
use foundation::testing::{on_ci, report_skip, require_tool};
use serde_json::{Value, json};
use telephony::media::g711::Codec;
use telephony::media::goertzel::{Goertzel, energy, rms};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UdpSocket;

const BROWSER_HZ: f64 = 1000.0;
const CALLER_HZ: f64 = 700.0;
const NUMBER: &str = "+15550100";
const LEAD: &str = "+13125550100";

/// One browser and one appliance at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn console_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/console")
}

fn artifacts() -> PathBuf {
    let dir = std::env::var_os("DIALBRIDGE_ARTIFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_TARGET_TMPDIR")).join("artifacts"))
        .join("console");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn tools_present() -> bool {
    let tools = require_tool("chromium", "chromium")
        & require_tool("node", "nodejs")
        & require_tool("sox", "sox")
        & require_tool("sipp", "sip-tester");
    if !tools {
        return false;
    }
    if !console_dir()
        .join("node_modules/playwright-core/package.json")
        .exists()
    {
        let msg = "tests/console has no node_modules (run `npm ci` there, with PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1)";
        if on_ci() {
            panic!("{msg}; CI must not skip this test");
        }
        report_skip(msg);
        return false;
    }
    true
}

fn create_user(dir: &Path, name: &str, role: &str, password: &str) {
    let out = run(
        dir,
        &["user", "create", "--username", name, "--role", role],
        &[("DIALBRIDGE_USER_PASSWORD", password)],
    );
    assert!(
        out.status.success(),
        "user create {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `hz` at 8 kHz, `frames` × 20 ms.
fn sine(hz: f64, frames: usize) -> Vec<i16> {
    (0..frames * 160)
        .map(|i| ((2.0 * std::f64::consts::PI * hz * i as f64 / 8000.0).sin() * 10_000.0) as i16)
        .collect()
}

/// The browser's microphone: 60 s of 1 kHz at 48 kHz (chromium loops it).
fn mic_wav(dir: &Path) -> PathBuf {
    let wav = dir.join("mic-1k.wav");
    let st = std::process::Command::new("sox")
        .args(["-n", "-r", "48000", "-c", "1", "-b", "16"])
        .arg(&wav)
        .args(["synth", "60", "sine", &BROWSER_HZ.to_string(), "vol", "0.5"])
        .status()
        .expect("sox runs");
    assert!(st.success());
    wav
}

/// The PCMU payload of an RTP packet (PT 0), if it is one.
fn pcmu_payload(b: &[u8]) -> Option<&[u8]> {
    if b.len() < 12 || b[0] >> 6 != 2 || b[1] & 0x7f != 0 {
        return None;
    }
    let mut off = 12 + 4 * (b[0] & 0x0f) as usize;
    if b[0] & 0x10 != 0 {
        let len = u16::from_be_bytes([*b.get(off + 2)?, *b.get(off + 3)?]) as usize;
        off += 4 + 4 * len;
    }
    b.get(off..)
}

/// One 20 ms block heard: when, and each tone's share of its energy (0 when quiet).
#[derive(Clone, Copy)]
struct Block {
    at: Instant,
    browser: f64,
    caller: f64,
}

/// A tone is in a block when it holds this share of the block's energy. A mix gives each tone
/// its part (measured: the supervisor's 1 kHz about 70 % of what the agent hears in a barge);
/// both tones sit exactly on a 50 Hz bin of the 160-sample block, so one leaks nothing
/// measurable into the other's bin (below 1e-6).
const PRESENT: f64 = 0.05;

/// A party's ear: a UDP socket named as the media address in that party's SDP, so the appliance
/// sends it what the party hears. Every 20 ms block is classified by [`PRESENT`].
struct Ear {
    port: u16,
    blocks: Arc<Mutex<Vec<Block>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Ear {
    async fn open() -> Ear {
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let port = sock.local_addr().unwrap().port();
        let blocks = Arc::new(Mutex::new(Vec::new()));
        let sink = blocks.clone();
        let task = tokio::spawn(async move {
            let (b, c) = (
                Goertzel::new(BROWSER_HZ, 8000.0),
                Goertzel::new(CALLER_HZ, 8000.0),
            );
            let mut buf = vec![0u8; 2048];
            while let Ok((n, _)) = sock.recv_from(&mut buf).await {
                let Some(p) = pcmu_payload(&buf[..n]) else {
                    continue;
                };
                for pcm in Codec::Pcmu.decode(p).chunks(160) {
                    let loud = rms(pcm) >= 300.0;
                    let e = energy(pcm);
                    let share = |g: &Goertzel| if loud { g.relative_power(pcm, e) } else { 0.0 };
                    sink.lock().unwrap().push(Block {
                        at: Instant::now(),
                        browser: share(&b),
                        caller: share(&c),
                    });
                }
            }
        });
        Ear { port, blocks, task }
    }

    /// (blocks with the browser's tone, with the caller's tone, all blocks) since `t0`.
    fn since(&self, t0: Instant) -> (usize, usize, usize) {
        let b = self.blocks.lock().unwrap();
        let recent = b.iter().filter(|x| x.at >= t0);
        recent.fold((0, 0, 0), |(br, ca, n), x| {
            (
                br + (x.browser > PRESENT) as usize,
                ca + (x.caller > PRESENT) as usize,
                n + 1,
            )
        })
    }

    /// The median share of each tone (browser, caller) since `t0`, for the failure messages.
    fn shares(&self, t0: Instant) -> (f64, f64) {
        let b = self.blocks.lock().unwrap();
        let median = |f: fn(&Block) -> f64| {
            let mut v: Vec<f64> = b.iter().filter(|x| x.at >= t0).map(f).collect();
            v.sort_by(f64::total_cmp);
            v.get(v.len() / 2).copied().unwrap_or(0.0)
        };
        (median(|x| x.browser), median(|x| x.caller))
    }

    /// Waits (at most `limit`) for `n` blocks with the browser's tone since `t0`.
    async fn wait_browser(&self, t0: Instant, n: usize, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if self.since(t0).0 >= n {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }
}

impl Drop for Ear {
    fn drop(&mut self) {
        self.task.abort();
    }
}

const HEAD: &str = "      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      Max-Forwards: 70
";

const SDP: &str = "      v=0
      o=user1 1 1 IN IP4 [local_ip]
      s=-
      c=IN IP4 127.0.0.1
      t=0 0
      m=audio [rtpport] RTP/AVP 0
      a=rtpmap:0 PCMU/8000
";

const OK_TO_BYE: &str = "  <recv request=\"BYE\" timeout=\"180000\"/>
  <send><![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]></send>
";

/// A caller: its SDP names the test's ear; streams `tone` (µ-law, looped) once answered and
/// stays until the appliance hangs up.
fn caller_xml(tone: &Path) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"ISO-8859-1\" ?>\n<scenario name=\"caller\">
  <send retrans=\"500\"><![CDATA[
      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
{HEAD}      CSeq: 1 INVITE
      Contact: sip:sipp@[local_ip]:[local_port]
      Content-Type: application/sdp
      Content-Length: [len]

{SDP}    ]]></send>
  <recv response=\"100\" optional=\"true\"/>
  <recv response=\"180\" optional=\"true\"/>
  <recv response=\"183\" optional=\"true\"/>
  <recv response=\"200\" rrs=\"true\"/>
  <send><![CDATA[
      ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
{HEAD}      CSeq: 1 ACK
      Content-Length: 0

    ]]></send>
  <nop><action><exec rtp_stream=\"{},-1,0\"/></action></nop>
{OK_TO_BYE}</scenario>\n",
        tone.display()
    )
}

/// A called phone (the agent's, or the lead's behind the trunk): answers with an SDP naming the
/// test's ear and stays until the appliance hangs up.
fn phone_xml() -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"ISO-8859-1\" ?>\n<scenario name=\"phone\">
  <recv request=\"INVITE\" crlf=\"true\"/>
  <send><![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Content-Type: application/sdp
      Content-Length: [len]

{SDP}    ]]></send>
  <recv request=\"ACK\" crlf=\"true\"/>
{OK_TO_BYE}</scenario>\n"
    )
}

/// sipp running `scenario` (written into `dir` as `name.xml`) with its SDP media port `ear`.
fn sipp(
    dir: &Path,
    name: &str,
    xml: &str,
    port: u16,
    ear: u16,
    target: Option<(&str, &str)>,
) -> tokio::process::Child {
    let file = dir.join(format!("{name}.xml"));
    std::fs::write(&file, xml).unwrap();
    let mut c = tokio::process::Command::new("sipp");
    c.current_dir(dir);
    if let Some((addr, service)) = target {
        c.args([addr, "-s", service]);
    }
    c.arg("-sf")
        .arg(&file)
        .args(["-i", "127.0.0.1", "-mi", "127.0.0.1"])
        .args(["-p", &port.to_string(), "-mp", &free_port().to_string()])
        .args(["-key", "rtpport", &ear.to_string()])
        .args(["-m", "1", "-nostdin", "-timeout", "240s", "-timeout_error"])
        .args(["-trace_err", "-error_file", &format!("{name}.err")])
        .args(["-trace_msg", "-message_file", &format!("{name}.msg")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    c.spawn().expect("sipp runs")
}

/// Waits for a sipp to end on its own and asserts it succeeded.
async fn sipp_done(dir: &Path, name: &str, child: tokio::process::Child) {
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("sipp {name} did not end"))
        .unwrap();
    let errors = std::fs::read_to_string(dir.join(format!("{name}.err"))).unwrap_or_default();
    assert!(
        out.status.success(),
        "sipp {name} failed ({:?}): {errors}",
        out.status
    );
}

/// The page script: spawned with `env`, talked to line by line.
struct Script {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

impl Script {
    fn start(name: &str, env: &[(&str, String)]) -> Script {
        let mut cmd = tokio::process::Command::new("node");
        cmd.arg(console_dir().join(name))
            .current_dir(console_dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("node runs");
        let stdin = child.stdin.take().unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Script {
            child,
            stdin,
            lines,
        }
    }

    /// The next `TAG {json}` line (step lines are echoed).
    async fn next(&mut self, tag: &str) -> Value {
        loop {
            let line = tokio::time::timeout(Duration::from_secs(120), self.lines.next_line())
                .await
                .unwrap_or_else(|_| panic!("no {tag} line from the page within 120 s"))
                .unwrap()
                .unwrap_or_else(|| {
                    panic!("the page script ended before {tag} (see its output above)")
                });
            eprintln!("page: {line}");
            if let Some(rest) = line.strip_prefix(&format!("{tag} ")) {
                return serde_json::from_str(rest).unwrap();
            }
        }
    }

    async fn say(&mut self, line: &str) {
        self.stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .unwrap();
    }

    async fn finish(mut self) {
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("node exits")
            .unwrap();
        assert!(status.success(), "the page script failed: {status:?}");
    }
}

fn assert_shots(names: &[&str]) {
    for name in names {
        let shot = artifacts().join(format!("{name}.png"));
        let len = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
        assert!(len > 1000, "screenshot {} missing or empty", shot.display());
    }
}

async fn agents(c: &reqwest::Client, app: &Appliance, key: &str) -> Vec<Value> {
    c.get(app.url("/api/v1/agents"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The stages of a contact record (read from the appliance's SQLite database).
async fn contact_stages(dir: &Path, contact: &str) -> Vec<(String, String)> {
    let url = format!(
        "sqlite://{}?mode=ro",
        dir.join("data/dialbridge.db").display()
    );
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    let record: Option<String> =
        sqlx::query_scalar("SELECT record FROM inbound_contacts WHERE contact_id = $1")
            .bind(contact)
            .fetch_optional(&mut conn)
            .await
            .unwrap();
    let record: Value = serde_json::from_str(&record.unwrap_or_else(|| {
        panic!("no contact record for {contact}");
    }))
    .unwrap();
    record["stages"]
        .as_array()
        .map(|s| {
            s.iter()
                .map(|x| {
                    (
                        x["stage"].as_str().unwrap_or("").to_owned(),
                        x["detail"].as_str().unwrap_or("").to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Waits until the contact record of `contact` has a `disposition` stage with `code`.
async fn wait_disposition(dir: &Path, contact: &str, code: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stages = contact_stages(dir, contact).await;
        if stages.iter().any(|(s, d)| s == "disposition" && d == code) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "contact {contact} has no disposition {code}: {stages:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_desktop_softphone_takes_a_call_and_dials_a_preview_lead() {
    if !tools_present() {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let password = "agent-Secret-1";
    create_user(d, "agnes", "agent", password);
    std::fs::write(
        d.join("leads.csv"),
        "First Name,Last Name,Phone,Zip\nAda,Lovelace,(312) 555-0100,60601\n",
    )
    .unwrap();
    let out = run(
        d,
        &[
            "import",
            "leads.csv",
            "--list",
            "preview",
            "--region",
            "US",
            "--json",
        ],
        &[],
    );
    assert!(
        out.status.success(),
        "import: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list_id = serde_json::from_slice::<Value>(&out.stdout).unwrap()["list_id"]
        .as_i64()
        .unwrap();
    let (admin, manager) = (admin_key(d), api_key(d, "campaign-manager"));
    let wav = mic_wav(d);
    let tone = d.join("caller-700.ulaw");
    std::fs::write(&tone, Codec::Pcmu.encode(&sine(CALLER_HZ, 100))).unwrap();

    // The lead's phone behind the campaign's trunk: answers, and its ear hears the agent.
    let callee_ear = Ear::open().await;
    let trunk_port = free_port();
    let callee = sipp(d, "callee", &phone_xml(), trunk_port, callee_ear.port, None);

    // No RTP inactivity hang-up: sipp phones send no audio.
    let app = Appliance::start(d, &[("DIALBRIDGE_RTP_INACTIVITY_TIMEOUT_S", "0")]);
    route_numbers(&app, &admin, "queue", QUEUE_FLOW, &[NUMBER]).await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let cfg = json!({
        "lists": [{"list_id": list_id, "weight": 1}],
        "mode": "preview",
        "purpose": "informational",
        "caller_id": "+13125550000",
        "queue": "default",
        "trunk": {"uri": format!("sip:127.0.0.1:{trunk_port}"), "cps": 5, "max_concurrent": 5},
        "amd": "pass_to_agent",
        "compliance": {"window": {"start": "00:00", "end": "23:59"}},
        "safe_harbor": {"seller": "Acme", "callback_number": "+13125550001", "opt_out_key": "9", "prompt": "safe-harbor.wav"}
    });
    let resp = http
        .post(app.url("/api/v1/campaigns"))
        .bearer_auth(&manager)
        .json(&json!({"name": "preview", "config": cfg}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
    let campaign = resp.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    let resp = http
        .post(app.url(&format!("/api/v1/campaigns/{campaign}/actions")))
        .bearer_auth(&manager)
        .json(&json!({"action": "start"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());

    let mut page = Script::start(
        "desktop.mjs",
        &[
            ("DIALBRIDGE_URL", app.http.clone()),
            ("ARTIFACTS", artifacts().display().to_string()),
            ("AGENT_USER", "agnes".into()),
            ("AGENT_PASSWORD", password.into()),
            ("FAKE_AUDIO", wav.display().to_string()),
            ("CALLER_HZ", CALLER_HZ.to_string()),
            ("BROWSER_HZ", BROWSER_HZ.to_string()),
        ],
    );
    let t0 = Instant::now();
    page.next("READY").await;
    eprintln!(
        "desktop softphone logged in and Available after {:?}",
        t0.elapsed()
    );
    let list = agents(&http, &app, &admin).await;
    let agnes = list
        .iter()
        .find(|a| a["id"] == "agnes")
        .expect("agnes logged in");
    assert_eq!(agnes["leg_up"], true, "{agnes}");
    assert!(
        agnes["endpoint"]["value"]
            .as_str()
            .unwrap()
            .starts_with("sip:webrtc-agnes@"),
        "the desktop logged in with its browser leg: {agnes}"
    );

    // The inbound caller: its ear must hear the browser, the page must hear it.
    let caller_ear = Ear::open().await;
    let call_started = Instant::now();
    let caller = sipp(
        d,
        "caller",
        &caller_xml(&tone),
        free_port(),
        caller_ear.port,
        Some((app.sip_udp.as_str(), NUMBER)),
    );
    let heard = page.next("HEARD").await;
    eprintln!(
        "the page heard the caller {:?} after the INVITE: {heard}",
        call_started.elapsed()
    );
    assert_eq!(heard["detected"], true, "{heard}");
    assert!(
        caller_ear
            .wait_browser(call_started, 25, Duration::from_secs(20))
            .await,
        "the caller did not hear the browser's {BROWSER_HZ} Hz: {:?}",
        caller_ear.since(call_started)
    );
    let inbound = heard["contact"].as_str().unwrap().to_owned();
    page.say("HANGUP").await;
    page.next("DISPOSED").await;
    sipp_done(d, "caller", caller).await;
    let (b, c, n) = caller_ear.since(call_started);
    eprintln!("caller's ear: {b} of {n} blocks with the browser's tone, {c} with its own");
    assert_eq!(c, 0, "the caller must not hear its own tone back");
    wait_disposition(d, &inbound, "sale").await;
    // The agent answered on the desktop (the page clicked Answer; auto-accept was off).
    let stages = contact_stages(d, &inbound).await;
    let at = |name: &str| stages.iter().position(|(s, _)| s == name);
    assert!(
        at("offered") < at("answered_on_desktop")
            && at("answered_on_desktop") < at("connected")
            && at("offered").is_some(),
        "offered, answered on the desktop, then connected: {stages:?}"
    );

    // The preview lead: Dial in the page, the INVITE at the trunk, the callee hears the agent.
    page.say(&format!(
        "PREVIEW {}",
        json!({"campaign": campaign, "number": LEAD})
    ))
    .await;
    let dial_clicked = Instant::now();
    let dialed = page.next("DIALED").await;
    let attempt = dialed["attempt"].as_str().unwrap().to_owned();
    let contact = dialed["contact"].as_str().unwrap().to_owned();
    let invite = std::fs::read_to_string(d.join("callee.msg")).unwrap_or_default();
    assert!(
        invite.contains(&format!("INVITE sip:{LEAD}@"))
            || invite.contains(&format!("INVITE sip:{}@", &LEAD[1..])),
        "the trunk (sipp) was not asked for {LEAD}:\n{invite}"
    );
    assert!(
        callee_ear
            .wait_browser(dial_clicked, 25, Duration::from_secs(20))
            .await,
        "the lead did not hear the agent's browser: {:?}",
        callee_ear.since(dial_clicked)
    );
    page.say("HANGUP").await;
    page.next("DISPOSED").await;
    sipp_done(d, "callee", callee).await;
    wait_disposition(d, &contact, "callback").await;

    // The attempt: final, connected, with the agent.
    let mut row = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let csv = http
            .get(app.url(&format!("/api/v1/campaigns/{campaign}/attempts.csv")))
            .bearer_auth(&manager)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let mut r = csv::Reader::from_reader(csv.as_bytes());
        let header: Vec<String> = r.headers().unwrap().iter().map(str::to_owned).collect();
        if let Some(rec) = r
            .records()
            .map(Result::unwrap)
            .find(|rec| rec.get(0) == Some(attempt.as_str()))
        {
            row = header
                .into_iter()
                .zip(rec.iter().map(str::to_owned))
                .collect::<Vec<_>>();
            if row.iter().any(|(k, v)| k == "state" && v == "final")
                && row.iter().any(|(k, v)| k == "disposition" && !v.is_empty())
            {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("the preview attempt: {row:?}");
    let field = |k: &str| {
        row.iter()
            .find(|(h, _)| h == k)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    };
    assert_eq!(field("state"), "final", "{row:?}");
    assert_eq!(field("outcome"), "connected", "{row:?}");
    assert_eq!(field("agent"), "agnes", "{row:?}");
    assert_eq!(field("number"), LEAD, "{row:?}");
    // The desktop's disposition is the attempt's too (it drives the campaign's lead rules), and
    // its callback reopened the lead for this agent about a day ahead.
    assert_eq!(field("disposition"), "callback", "{row:?}");
    let url = format!(
        "sqlite://{}?mode=ro",
        d.join("data/dialbridge.db").display()
    );
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    let (state, next_at, callback_agent): (String, i64, Option<String>) = sqlx::query_as(
        "SELECT state, next_at, callback_agent FROM campaign_leads WHERE campaign_id = $1",
    )
    .bind(campaign)
    .fetch_one(&mut conn)
    .await
    .unwrap();
    let ahead_h = (next_at - now_ms()) as f64 / 3_600_000.0;
    assert_eq!(
        (state.as_str(), callback_agent.as_deref()),
        ("ready", Some("agnes")),
        "the lead is reopened for the agent's callback"
    );
    assert!(
        (23.0..=24.1).contains(&ahead_h),
        "callback {ahead_h:.2} h ahead"
    );

    page.say("END").await;
    page.next("DONE").await;
    page.finish().await;
    assert_shots(&[
        "29-desktop-offer-answer",
        "30-desktop-softphone-call",
        "31-desktop-preview-card",
        "32-desktop-preview-call",
    ]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_supervisor_barges_whispers_and_listens_from_the_page() {
    if !tools_present() {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let password = "supervisor-Secret-4";
    create_user(d, "sue", "supervisor", password);
    let admin = admin_key(d);
    // An API key's name is its agent id: "agent".
    let agent_key = api_key(d, "agent");
    let wav = mic_wav(d);
    let tone = d.join("caller-700.ulaw");
    std::fs::write(&tone, Codec::Pcmu.encode(&sine(CALLER_HZ, 100))).unwrap();

    let agent_ear = Ear::open().await;
    let phone_port = free_port();
    let phone = sipp(
        d,
        "agent-phone",
        &phone_xml(),
        phone_port,
        agent_ear.port,
        None,
    );
    let app = Appliance::start(d, &[("DIALBRIDGE_RTP_INACTIVITY_TIMEOUT_S", "0")]);
    route_numbers(&app, &admin, "queue", QUEUE_FLOW, &[NUMBER]).await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();

    let mut page = Script::start(
        "supervisor.mjs",
        &[
            ("DIALBRIDGE_URL", app.http.clone()),
            ("ARTIFACTS", artifacts().display().to_string()),
            ("SUPERVISOR_USER", "sue".into()),
            ("SUPERVISOR_PASSWORD", password.into()),
            ("AGENT_ID", "agent".into()),
            ("FAKE_AUDIO", wav.display().to_string()),
            ("CALLER_HZ", CALLER_HZ.to_string()),
            ("BROWSER_HZ", BROWSER_HZ.to_string()),
        ],
    );
    let ready = page.next("READY").await;
    assert!(
        ready["endpoint"]
            .as_str()
            .unwrap()
            .starts_with("sip:webrtc-sue@"),
        "{ready}"
    );

    // The agent: nailed-up to its sipp phone, Available.
    let resp = http
        .post(app.url("/api/v1/agent/login"))
        .bearer_auth(&agent_key)
        .json(&json!({"endpoint": {"kind": "uri", "value": format!("sip:agent@127.0.0.1:{phone_port}")}, "mode": "nailed_up"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204, "{}", resp.text().await.unwrap());
    let resp = http
        .put(app.url("/api/v1/agent/state"))
        .bearer_auth(&agent_key)
        .json(&json!({"status": "available"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204, "{}", resp.text().await.unwrap());

    // The customer.
    let caller_ear = Ear::open().await;
    let call_started = Instant::now();
    let caller = sipp(
        d,
        "caller",
        &caller_xml(&tone),
        free_port(),
        caller_ear.port,
        Some((app.sip_udp.as_str(), NUMBER)),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let contact = loop {
        let list = agents(&http, &app, &admin).await;
        if let Some(c) = list
            .iter()
            .find(|a| a["id"] == "agent" && a["state"].get("OnContact").is_some())
            .and_then(|a| a["contact"].as_str())
        {
            break c.to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "the agent never got the call: {list:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // The agent hears the customer (the call is up), nobody hears the supervisor yet.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (b, c, _) = agent_ear.since(call_started);
    assert!(
        c >= 10 && b == 0,
        "before barge the agent hears only the customer: {b} / {c}"
    );
    assert_eq!(caller_ear.since(call_started).0, 0);

    // Barge: the customer and the agent hear the supervisor; the supervisor hears the customer.
    let barge = Instant::now();
    page.say("BARGE").await;
    let heard = page.next("BARGED").await;
    assert_eq!(heard["detected"], true, "{heard}");
    assert!(
        caller_ear
            .wait_browser(barge, 25, Duration::from_secs(15))
            .await,
        "after barge the customer must hear the supervisor: {:?}",
        caller_ear.since(barge)
    );
    assert!(
        agent_ear
            .wait_browser(barge, 25, Duration::from_secs(15))
            .await,
        "after barge the agent must hear the supervisor: {:?}, median shares (supervisor, customer) {:?}",
        agent_ear.since(barge),
        agent_ear.shares(barge)
    );

    eprintln!(
        "barge: customer {:?} blocks (supervisor, own, all), median shares {:?}; agent {:?}, median shares {:?}",
        caller_ear.since(barge),
        caller_ear.shares(barge),
        agent_ear.since(barge),
        agent_ear.shares(barge)
    );

    // Whisper: only the agent hears the supervisor.
    page.say("WHISPER").await;
    page.next("WHISPERED").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let whisper = Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (cb, cc, cn) = caller_ear.since(whisper);
    let (ab, ac, an) = agent_ear.since(whisper);
    eprintln!(
        "whisper: customer {cb}/{cn} blocks with the supervisor; agent {ab}/{an} with the supervisor, {ac} with the customer; agent's median shares {:?}",
        agent_ear.shares(whisper)
    );
    assert_eq!(
        cb, 0,
        "a whisper must not reach the customer ({cc} caller blocks of {cn})"
    );
    assert!(ab >= 25, "the agent must hear the whisper: {ab} of {an}");

    // Listen: nobody hears the supervisor.
    page.say("LISTEN").await;
    page.next("LISTENING").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let listen = Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (cb, _, cn) = caller_ear.since(listen);
    let (ab, ac, an) = agent_ear.since(listen);
    eprintln!(
        "listen: customer {cb}/{cn}; agent {ab}/{an} with the supervisor, {ac} with the customer"
    );
    assert_eq!((cb, ab), (0, 0), "a listener is heard by nobody");
    assert!(ac >= 25, "the agent still hears the customer: {ac} of {an}");

    // The agent ends the call; the supervisor's leg goes with it.
    let resp = http
        .post(app.url(&format!("/api/v1/agent/contacts/{contact}/hangup")))
        .bearer_auth(&agent_key)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.text().await.unwrap());
    sipp_done(d, "caller", caller).await;
    page.say("END").await;
    page.next("DONE").await;
    page.finish().await;
    let resp = http
        .post(app.url("/api/v1/agent/logout"))
        .bearer_auth(&agent_key)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
    sipp_done(d, "agent-phone", phone).await;
    assert_shots(&["33-supervisor-barge", "34-supervisor-whisper"]);
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}
