//! Call recordings end to end: a sipp caller streaming audio through a flow that records → the
//! recording is found by number and campaign, its WAV downloads whole and in ranges (206), an
//! agent who did not take the call gets 403 (and the refusal is audited), and with a 1-day
//! retention a recording whose contact is backdated two days loses its file and shows `expired`.
//! The console's Recordings page plays it in chromium (`tests/console/recordings.mjs`, with a
//! screenshot) when chromium, node and the console's npm packages are here.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Appliance, admin_key, api_key, free_port, route_numbers};
use serde_json::Value;

const DID: &str = "+18005550142";
const CALLER: &str = "+13125550142";

/// Turns recording on, tags the contact with a campaign, then queues the caller.
const RECORDED_FLOW: &str = r#"{"Version": "2019-10-30", "StartAction": "rec", "Actions": [
  {"Identifier": "rec", "Type": "UpdateContactRecordingBehavior",
   "Parameters": {"RecordingBehavior": {"RecordedParticipants": ["Agent", "Customer"]}},
   "Transitions": {"NextAction": "tag"}},
  {"Identifier": "tag", "Type": "UpdateContactAttributes",
   "Parameters": {"Attributes": {"campaign": "spring-renewals"}, "TargetContact": "Current"},
   "Transitions": {"NextAction": "q", "Errors": [{"NextAction": "bye", "ErrorType": "NoMatchingError"}]}},
  {"Identifier": "q", "Type": "UpdateContactTargetQueue", "Parameters": {"QueueId": "default"},
   "Transitions": {"NextAction": "t", "Errors": [{"NextAction": "bye", "ErrorType": "NoMatchingError"}]}},
  {"Identifier": "t", "Type": "TransferContactToQueue", "Parameters": {},
   "Transitions": {"Errors": [{"NextAction": "bye", "ErrorType": "QueueAtCapacity"}, {"NextAction": "bye", "ErrorType": "NoMatchingError"}]}},
  {"Identifier": "bye", "Type": "DisconnectParticipant", "Parameters": {}, "Transitions": {}}]}"#;

/// A caller that streams `audio` (headerless µ-law) for `talk_ms`, then hangs up.
fn caller_xml(audio: &std::path::Path, talk_ms: u32) -> String {
    format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="recorded caller">
  <send retrans="500"><![CDATA[
      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:{CALLER}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: sip:sipp@[local_ip]:[local_port]
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000

    ]]></send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="183" optional="true"/>
  <recv response="200" rtd="true"/>
  <send><![CDATA[
      ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:{CALLER}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Contact: sip:sipp@[local_ip]:[local_port]
      Max-Forwards: 70
      Content-Length: 0

    ]]></send>
  <nop><action><exec rtp_stream="{audio},-1,0"/></action></nop>
  <pause milliseconds="{talk_ms}"/>
  <nop><action><exec rtp_stream="pause"/></action></nop>
  <send retrans="500"><![CDATA[
      BYE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:{CALLER}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 2 BYE
      Contact: sip:sipp@[local_ip]:[local_port]
      Max-Forwards: 70
      Content-Length: 0

    ]]></send>
  <recv response="200" crlf="true"/>
</scenario>
"#,
        audio = audio.display()
    )
}

const SUPERVISOR_PASSWORD: &str = "recordings-supervisor-pw";

/// Chromium, node and the console scripts' npm packages (skipped, or failed on CI, without).
fn browser_present() -> bool {
    use foundation::testing::{on_ci, report_skip, require_tool};
    if !require_tool("chromium", "chromium") || !require_tool("node", "nodejs") {
        return false;
    }
    let console = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/console");
    if !console
        .join("node_modules/playwright-core/package.json")
        .exists()
    {
        let msg = "tests/console has no node_modules (run `npm ci` there, with PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1)";
        assert!(!on_ci(), "{msg}; CI must not skip this test");
        report_skip(msg);
        return false;
    }
    true
}

/// A supervisor finds the recording on the console's Recordings page and plays it.
fn play_in_the_console(app: &Appliance, number: &str) {
    let artifacts = std::env::var_os("DIALBRIDGE_ARTIFACTS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("artifacts"))
        .join("console");
    std::fs::create_dir_all(&artifacts).unwrap();
    let shot = artifacts.join("recordings.png");
    let _ = std::fs::remove_file(&shot);
    let out = Command::new("node")
        .arg("recordings.mjs")
        .current_dir(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/console"))
        .env("BASE_URL", &app.http)
        .env("USERNAME", "sup1")
        .env("PASSWORD", SUPERVISOR_PASSWORD)
        .env("NUMBER", number)
        .env("SCREENSHOT", &shot)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "recordings page in chromium failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result: Value = serde_json::from_str(
        stdout
            .lines()
            .find_map(|l| l.strip_prefix("RESULT "))
            .expect("a RESULT line"),
    )
    .unwrap();
    assert_eq!(result["rows"], 1, "{result}");
    assert!(result["duration"].as_f64().unwrap() > 2.0, "{result}");
    assert!(
        result["currentTime"].as_f64().unwrap() > 0.5,
        "it played: {result}"
    );
    assert!(
        result["download"]
            .as_str()
            .unwrap()
            .ends_with("/audio?download=true"),
        "{result}"
    );
    let len = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
    assert!(len > 1000, "screenshot {} missing or empty", shot.display());
    eprintln!("recordings page screenshot: {}", shot.display());
}

async fn get(c: &reqwest::Client, app: &Appliance, key: &str, path: &str) -> reqwest::Response {
    c.get(app.url(path)).bearer_auth(key).send().await.unwrap()
}

#[tokio::test]
async fn a_recorded_call_is_found_played_in_ranges_role_checked_and_expired() {
    if !foundation::testing::require_tool("sipp", "sip-tester")
        || !foundation::testing::require_tool("sox", "sox")
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // A 440 Hz tone as the caller's voice.
    let audio = dir.path().join("voice.ulaw");
    let sox = Command::new("sox")
        .args(["-n", "-r", "8000", "-c", "1", "-t", "ul"])
        .arg(&audio)
        .args(["synth", "2", "sine", "440", "vol", "0.5"])
        .status()
        .unwrap();
    assert!(sox.success());
    std::fs::write(
        dir.path().join("dialbridge.toml"),
        "[recordings]\nretention_days = 1\nsweep_interval_s = 1\n",
    )
    .unwrap();
    let key = admin_key(dir.path());
    let supervisor = api_key(dir.path(), "supervisor");
    let agent = api_key(dir.path(), "agent");
    let manager = api_key(dir.path(), "campaign-manager");
    let created = common::run(
        dir.path(),
        &[
            "user",
            "create",
            "--username",
            "sup1",
            "--role",
            "supervisor",
        ],
        &[("DIALBRIDGE_USER_PASSWORD", SUPERVISOR_PASSWORD)],
    );
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let app = Appliance::start(dir.path(), &[]);
    route_numbers(&app, &key, "recorded", RECORDED_FLOW, &[DID]).await;

    let scenario = dir.path().join("caller.xml");
    std::fs::write(&scenario, caller_xml(&audio, 3000)).unwrap();
    let sip_port = app.sip_udp.rsplit(':').next().unwrap().to_owned();
    let status = Command::new("sipp")
        .current_dir(dir.path())
        .arg(format!("127.0.0.1:{sip_port}"))
        .arg("-sf")
        .arg(&scenario)
        .args(["-s", DID, "-m", "1", "-i", "127.0.0.1", "-mi", "127.0.0.1"])
        .args([
            "-p",
            &free_port().to_string(),
            "-mp",
            &free_port().to_string(),
        ])
        .args([
            "-nostdin",
            "-timeout",
            "30s",
            "-trace_err",
            "-error_file",
            "errors.log",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(
        status.success(),
        "sipp: {}",
        std::fs::read_to_string(dir.path().join("errors.log")).unwrap_or_default()
    );

    // Found by the caller's number once the contact has ended.
    let c = reqwest::Client::new();
    let t0 = Instant::now();
    let rec = loop {
        let list: Vec<Value> = get(
            &c,
            &app,
            &key,
            &format!("/api/v1/recordings?number=%2B{}", &CALLER[1..]),
        )
        .await
        .json()
        .await
        .unwrap();
        if let Some(r) = list.first().filter(|r| r["ended_at"].is_string()) {
            break r.clone();
        }
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "no recording listed: {list:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let id = rec["contact_id"].as_str().unwrap().to_owned();
    assert_eq!(rec["state"], "available", "{rec}");
    assert_eq!(rec["did"], DID);
    assert_eq!(rec["customer_number"], CALLER);
    assert_eq!(rec["campaign"], "spring-renewals");
    assert!(rec["duration_s"].as_f64().unwrap() >= 2.0, "{rec}");
    // The other filters.
    let ids = |v: Vec<Value>| {
        v.iter()
            .map(|r| r["contact_id"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    let by_campaign = ids(get(
        &c,
        &app,
        &key,
        "/api/v1/recordings?campaign=spring-renewals",
    )
    .await
    .json()
    .await
    .unwrap());
    assert_eq!(by_campaign, [id.clone()]);
    let other = ids(get(&c, &app, &key, "/api/v1/recordings?campaign=winter")
        .await
        .json()
        .await
        .unwrap());
    assert!(other.is_empty());
    let later = ids(get(&c, &app, &key, "/api/v1/recordings?from=2999-01-01")
        .await
        .json()
        .await
        .unwrap());
    assert!(later.is_empty());
    let r = get(&c, &app, &key, "/api/v1/recordings?from=yesterday").await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("from="));

    // The contact export as JSON lines, paged with the cursor.
    let r = c
        .get(app.url("/api/v1/contacts?limit=1"))
        .bearer_auth(&key)
        .header("Accept", "application/x-ndjson")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/x-ndjson");
    let cursor = r.headers()["x-next-cursor"].to_str().unwrap().to_owned();
    let text = r.text().await.unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{text}");
    assert_eq!(lines[0]["contact_id"], id.as_str());
    assert_eq!(lines[0]["attributes"]["campaign"], "spring-renewals");
    let r = get(
        &c,
        &app,
        &key,
        &format!("/api/v1/contacts?format=jsonl&cursor={cursor}"),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("x-next-cursor").is_none());
    assert_eq!(
        r.text().await.unwrap(),
        "",
        "nothing after the only contact"
    );
    let r = get(&c, &app, &key, "/api/v1/contacts?format=jsonl&cursor=soon").await;
    assert_eq!(r.status(), 400);

    // The whole file: a WAV of the call's length, as a download.
    let r = get(
        &c,
        &app,
        &supervisor,
        &format!("/api/v1/recordings/{id}/audio?download=true"),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "audio/wav");
    assert_eq!(r.headers()["accept-ranges"], "bytes");
    let cd = r.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(cd, format!("attachment; filename=\"{id}.wav\""));
    let wav = r.bytes().await.unwrap();
    assert_eq!(&wav[0..4], b"RIFF");
    assert_eq!(&wav[8..12], b"WAVE");
    // Stereo µ-law at 8 kHz: 16,000 bytes a second; the call streamed audio for 3 s.
    assert!(wav.len() > 2 * 16_000, "{} bytes", wav.len());
    let path = dir.path().join(format!("data/recordings/{id}.wav"));
    assert_eq!(std::fs::metadata(&path).unwrap().len(), wav.len() as u64);
    // The tone is in the file: not all silence (µ-law silence is 0xFF / 0x7F).
    let loud = wav[44..]
        .iter()
        .filter(|b| !matches!(**b, 0xff | 0x7f | 0xfe | 0x7e))
        .count();
    assert!(loud > 8000, "only {loud} non-silent samples");

    // Ranges, as the browser's audio element asks.
    let size = wav.len();
    let r = c
        .get(app.url(&format!("/api/v1/recordings/{id}/audio")))
        .bearer_auth(&key)
        .header("Range", "bytes=100-199")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(
        r.headers()["content-range"],
        format!("bytes 100-199/{size}").as_str()
    );
    assert!(
        r.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("inline")
    );
    assert_eq!(r.bytes().await.unwrap().as_ref(), &wav[100..200]);
    let r = c
        .get(app.url(&format!("/api/v1/recordings/{id}/audio")))
        .bearer_auth(&key)
        .header("Range", "bytes=0-")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.bytes().await.unwrap().len(), size);
    let r = c
        .get(app.url(&format!("/api/v1/recordings/{id}/audio")))
        .bearer_auth(&key)
        .header("Range", format!("bytes={size}-"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 416);
    assert_eq!(
        r.headers()["content-range"],
        format!("bytes */{size}").as_str()
    );

    // The console page plays it (a browser's audio element asks for ranges).
    if browser_present() {
        play_in_the_console(&app, CALLER);
    }

    // Roles: an agent who did not take the call, and a campaign manager, may not hear it.
    for (who, k) in [("agent", &agent), ("campaign manager", &manager)] {
        let r = get(&c, &app, k, &format!("/api/v1/recordings/{id}/audio")).await;
        assert_eq!(r.status(), 403, "{who}");
    }
    let r = get(&c, &app, &agent, &format!("/api/v1/recordings/{id}")).await;
    assert_eq!(r.status(), 403);
    let mine: Vec<Value> = get(&c, &app, &agent, "/api/v1/recordings")
        .await
        .json()
        .await
        .unwrap();
    assert!(
        mine.is_empty(),
        "an agent lists only their own contacts' recordings: {mine:?}"
    );
    let r = get(&c, &app, &agent, "/api/v1/recordings?agent=someone").await;
    assert_eq!(r.status(), 403);
    assert_eq!(
        get(&c, &app, &key, "/api/v1/recordings/contact_nope")
            .await
            .status(),
        404
    );

    // The audit log has the download, the plays from the first byte and the refusal.
    let db = foundation::Db::connect(
        &format!("sqlite://{}/data/dialbridge.db", dir.path().display()),
        1,
    )
    .await
    .unwrap();
    let audit: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT action, actor, result FROM audit_log WHERE subject = $1 ORDER BY id",
    )
    .bind(&id)
    .fetch_all(db.pool())
    .await
    .unwrap();
    let has = |action: &str, result: &str| audit.iter().any(|(a, _, r)| a == action && r == result);
    assert!(has("recordings.download", "ok"), "{audit:?}");
    assert!(has("recordings.play", "ok"), "{audit:?}");
    assert!(has("recordings.play", "denied"), "{audit:?}");
    assert_eq!(
        audit
            .iter()
            .filter(|(a, actor, r)| a == "recordings.play"
                && r == "ok"
                && actor.starts_with("apikey:"))
            .count(),
        1,
        "the API's one play from byte 0 (the other ranged reads are not new plays): {audit:?}"
    );

    // Retention: 1 day. Nothing goes while the contact is fresh; backdated two days, it goes.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(path.exists(), "a fresh recording is kept");
    sqlx::query("UPDATE inbound_contacts SET started_at = started_at - $1 WHERE contact_id = $2")
        .bind(2 * 86_400_000i64)
        .bind(&id)
        .execute(db.pool())
        .await
        .unwrap();
    let t0 = Instant::now();
    while path.exists() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "the expired file was not removed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let t0 = Instant::now();
    let meta = loop {
        let m: Value = get(&c, &app, &key, &format!("/api/v1/recordings/{id}"))
            .await
            .json()
            .await
            .unwrap();
        if m["state"] == "expired" {
            break m;
        }
        assert!(t0.elapsed() < Duration::from_secs(5), "{m}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(meta["expired_at"].is_string(), "{meta}");
    let r = get(&c, &app, &key, &format!("/api/v1/recordings/{id}/audio")).await;
    assert_eq!(r.status(), 410);
    // The contact record keeps the note that a recording existed.
    let record: String =
        sqlx::query_scalar("SELECT record FROM inbound_contacts WHERE contact_id = $1")
            .bind(&id)
            .fetch_one(db.pool())
            .await
            .unwrap();
    assert!(record.contains("\"recording_on\""));
}
