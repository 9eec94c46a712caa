//! Agents across nodes (issue #9): PostgreSQL, two appliance nodes, Kamailio in front (the
//! shipped `deploy/kamailio/kamailio.cfg`, generated onto free loopback ports) and sipp peers.
//!
//! - The agent's phone (a sipp UAS streaming a 1 kHz tone) registers at Kamailio; the agent logs
//!   in on node B, nailed-up to `sip:agent7@kamailio` (B's INVITE goes through Kamailio's
//!   registrar lookup).
//! - (c) The campaign's pacer is on node A, which has no agent at all: it dials because it counts
//!   B's ready agent (from `agent_presence`).
//! - (a) Each answered call is handed from A to B (an INVITE with the handoff id), offered at once
//!   to the agent's nailed-up leg there and bridged on A: the customer's ear hears the agent's
//!   tone (customer → A → B → phone and back). The handoff latency is printed (p50/p99).
//! - (b) Carrier calls to Kamailio are dispatched over both nodes (round robin); the call that
//!   lands on B reaches the agent.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Appliance, QUEUE_FLOW, free_port, route_numbers, run};
use foundation::Db;
use foundation::testing::{TempPgDatabase, require_tool};
use serde_json::{Value, json};
use sqlx::Row;
use tokio::net::UdpSocket;

const LEADS: usize = 8;
const NUMBER: &str = "+18005550100";

/// Kamailio in the foreground; SIGTERM (then SIGKILL) on drop.
struct Kamailio(std::process::Child);

impl Drop for Kamailio {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .arg(self.0.id().to_string())
            .status();
        std::thread::sleep(Duration::from_millis(300));
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn kamailio(dir: &std::path::Path, port: u16, nodes: &[&str]) -> Kamailio {
    let list = dir.join("dispatcher.list");
    let lines: String = nodes.iter().map(|n| format!("1 sip:{n}\n")).collect();
    std::fs::write(&list, lines).unwrap();
    let cfg = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/kamailio/kamailio.cfg"
    ))
    .unwrap()
    .replace("KAM_ADDR", "127.0.0.1")
    .replace("KAM_PORT", &port.to_string())
    .replace("DISPATCHER_LIST", &list.display().to_string());
    let path = dir.join("kamailio.cfg");
    std::fs::write(&path, cfg).unwrap();
    let log = std::fs::File::create(dir.join("kamailio.log")).unwrap();
    let child = std::process::Command::new("kamailio")
        .args(["-DD", "-E", "-f"])
        .arg(&path)
        .arg("-P")
        .arg(dir.join("kamailio.pid"))
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("kamailio starts");
    Kamailio(child)
}

/// A UDP port that counts RTP packets carrying sound (not silence): the customer's ear.
struct Ear {
    port: u16,
    loud: Arc<Mutex<usize>>,
    task: tokio::task::JoinHandle<()>,
}

impl Ear {
    async fn open() -> Ear {
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let port = sock.local_addr().unwrap().port();
        let loud = Arc::new(Mutex::new(0));
        let sink = loud.clone();
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; 2048];
            while let Ok((n, _)) = sock.recv_from(&mut buf).await {
                // RTP header 12 bytes; PCMU payload. µ-law silence is one repeated byte (0xFF or
                // 0x7F); the agent's 1 kHz tone (8 samples a period) has 5 distinct values.
                if n <= 12 || buf[1] & 0x7f != 0 {
                    continue;
                }
                let mut seen = [false; 256];
                buf[12..n].iter().for_each(|b| seen[*b as usize] = true);
                if seen.iter().filter(|s| **s).count() >= 4 {
                    *sink.lock().unwrap() += 1;
                }
            }
        });
        Ear { port, loud, task }
    }

    fn loud(&self) -> usize {
        *self.loud.lock().unwrap()
    }
}

impl Drop for Ear {
    fn drop(&mut self) {
        self.task.abort();
    }
}

const SDP_AT_PORT: &str = "      v=0
      o=user1 1 1 IN IP4 127.0.0.1
      s=-
      c=IN IP4 127.0.0.1
      t=0 0
      m=audio [rtpport] RTP/AVP 0
      a=rtpmap:0 PCMU/8000
";

/// The customers behind the campaign's trunk: answer (SDP audio to the ear), talk 3 s, hang up.
fn customer_xml() -> String {
    format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="customer">
  <recv request="INVITE" crlf="true">
    <action>
      <ereg regexp=".*" search_in="hdr" header="From:" assign_to="from"/>
      <ereg regexp=".*" search_in="hdr" header="To:" assign_to="to"/>
      <ereg regexp="sip:[^>;]*" search_in="hdr" header="Contact:" assign_to="contact"/>
    </action>
  </recv>
  <send><![CDATA[
      SIP/2.0 180 Ringing
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0
    ]]></send>
  <pause milliseconds="100"/>
  <send retrans="500"><![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Content-Type: application/sdp
      Content-Length: [len]

{SDP_AT_PORT}    ]]></send>
  <recv request="ACK" crlf="true"/>
  <pause milliseconds="7000"/>
  <send retrans="500"><![CDATA[
      BYE [$contact] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: [$to];tag=[pid]SIPpTag01[call_number]
      To: [$from]
      Call-ID: [call_id]
      CSeq: 2 BYE
      Max-Forwards: 70
      Content-Length: 0
    ]]></send>
  <recv response="200"/>
</scenario>
"#
    )
}

/// The agent's phone: answers the nailed-up leg and streams a 1 kHz tone until BYE.
fn phone_xml(tone: &std::path::Path) -> String {
    format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="phone">
  <recv request="INVITE" crlf="true"/>
  <send><![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      [last_Record-Route:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=user1 1 1 IN IP4 127.0.0.1
      s=-
      c=IN IP4 127.0.0.1
      t=0 0
      m=audio [media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000
    ]]></send>
  <recv request="ACK" crlf="true">
    <action><exec rtp_stream="{},-1,0"/></action>
  </recv>
  <recv request="BYE" timeout="600000"/>
  <send><![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0
    ]]></send>
</scenario>
"#,
        tone.display()
    )
}

/// The phone's registration at Kamailio (its Contact is the phone's port).
fn register_xml(phone_port: u16) -> String {
    format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="register">
  <send retrans="500"><![CDATA[
      REGISTER sip:[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:agent7@[remote_ip]:[remote_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:agent7@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 REGISTER
      Contact: <sip:agent7@127.0.0.1:{phone_port}>
      Expires: 3600
      Max-Forwards: 70
      Content-Length: 0
    ]]></send>
  <recv response="200"/>
</scenario>
"#
    )
}

fn sipp(dir: &std::path::Path, name: &str, xml: &str, args: &[&str]) -> tokio::process::Child {
    let file = dir.join(format!("{name}.xml"));
    std::fs::write(&file, xml).unwrap();
    tokio::process::Command::new("sipp")
        .current_dir(dir)
        .args(args)
        .arg("-sf")
        .arg(&file)
        .args(["-i", "127.0.0.1", "-mi", "127.0.0.1", "-nostdin"])
        .args(["-trace_err", "-error_file", &format!("{name}.err")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("sipp runs")
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return -1;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

async fn post(http: &reqwest::Client, url: &str, key: &str, body: Value) -> (u16, Value) {
    let r = http
        .post(url)
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap();
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_on_either_node_behind_kamailio() {
    if !require_tool("sipp", "sip-tester")
        || !require_tool("kamailio", "kamailio")
        || !require_tool("sox", "sox")
    {
        return;
    }
    let Some(pg) = TempPgDatabase::create().await else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let (dir_a, dir_b) = (d.join("a"), d.join("b"));
    std::fs::create_dir_all(&dir_a).unwrap();
    std::fs::create_dir_all(&dir_b).unwrap();
    let db_env = ("DIALBRIDGE_DATABASE_URL", pg.url.as_str());

    let mut csv = String::from("First Name,Phone\n");
    for i in 0..LEADS {
        csv += &format!("Lead{i},(312) 202-{i:04}\n");
    }
    std::fs::write(dir_a.join("leads.csv"), csv).unwrap();
    let out = run(
        &dir_a,
        &[
            "import",
            "leads.csv",
            "--list",
            "mk",
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
    let list_id = serde_json::from_slice::<Value>(&out.stdout).unwrap()["list_id"]
        .as_i64()
        .unwrap();
    let key = |role: &str, name: &str| {
        let out = run(
            &dir_a,
            &["apikey", "create", "--role", role, "--name", name],
            &[db_env],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let (manager, admin, agent) = (
        key("campaign-manager", "manager"),
        key("admin", "admin"),
        key("agent", "agent7"),
    );
    let tone = d.join("tone.ulaw");
    let st = std::process::Command::new("sox")
        .args(["-n", "-r", "8000", "-c", "1", "-t", "ul"])
        .arg(&tone)
        .args(["synth", "30", "sine", "1000", "vol", "0.5"])
        .status()
        .unwrap();
    assert!(st.success());

    let node = |dir: &std::path::Path, name: &str, rtp: (&str, &str)| {
        Appliance::start(
            dir,
            &[
                db_env,
                ("DIALBRIDGE_NODE_NAME", name),
                ("DIALBRIDGE_RTP_PORT_MIN", rtp.0),
                ("DIALBRIDGE_RTP_PORT_MAX", rtp.1),
                // sipp phones send no audio on idle legs.
                ("DIALBRIDGE_RTP_INACTIVITY_TIMEOUT_S", "0"),
                ("DIALBRIDGE_LOG_LEVEL", "info"),
            ],
        )
    };
    let db = Db::connect(&pg.url, 2).await.unwrap();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();

    // Node A alone: the campaign starts there, so A holds its pacer lease.
    let a = node(&dir_a, "node-a", ("40000", "42999"));
    let ear = Ear::open().await;
    let customer_port = free_port();
    let _customers = sipp(
        d,
        "customer",
        &customer_xml(),
        &[
            "-p",
            &customer_port.to_string(),
            "-mp",
            &free_port().to_string(),
            "-key",
            "rtpport",
            &ear.port.to_string(),
        ],
    );
    let config = json!({
        "lists": [{"list_id": list_id, "weight": 1}],
        "mode": "progressive",
        "purpose": "informational",
        "caller_id": "+13125550000",
        "queue": "default",
        "trunk": {"uri": format!("sip:127.0.0.1:{customer_port}"), "cps": 5, "max_concurrent": 5},
        "amd": "pass_to_agent",
        "compliance": {"window": {"start": "00:00", "end": "23:59"}, "max_attempts_per_lead": 1},
        "safe_harbor": {"seller": "Acme", "callback_number": "+13125550001", "opt_out_key": "9", "prompt": "sh.wav"}
    });
    let (s, b) = post(
        &http,
        &a.url("/api/v1/campaigns"),
        &manager,
        json!({"name": "across", "config": config}),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    let campaign = b["id"].as_i64().unwrap();
    let (s, b) = post(
        &http,
        &a.url(&format!("/api/v1/campaigns/{campaign}/actions")),
        &manager,
        json!({"action": "start"}),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let holder: Option<String> =
            sqlx::query_scalar("SELECT node FROM campaign_pacers WHERE campaign_id = $1")
                .bind(campaign)
                .fetch_optional(db.pool())
                .await
                .unwrap();
        if holder.as_deref() == Some("node-a") {
            break;
        }
        assert!(Instant::now() < deadline, "node A never held the pacer");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Node B, Kamailio in front of both, the agent's phone registered at Kamailio.
    let b_node = node(&dir_b, "node-b", ("43000", "45999"));
    let kam_port = free_port();
    let _kam = kamailio(d, kam_port, &[&a.sip_udp, &b_node.sip_udp]);
    let kam = format!("127.0.0.1:{kam_port}");
    let phone_port = free_port();
    let _phone = sipp(
        d,
        "phone",
        &phone_xml(&tone),
        &[
            "-p",
            &phone_port.to_string(),
            "-mp",
            &free_port().to_string(),
        ],
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let reg = sipp(
        d,
        "register",
        &register_xml(phone_port),
        &[
            &kam,
            "-p",
            &free_port().to_string(),
            "-m",
            "1",
            "-timeout",
            "10s",
        ],
    );
    let st = reg.wait_with_output().await.unwrap().status;
    assert!(
        st.success(),
        "the phone registers at Kamailio: {st:?}; kamailio log:\n{}",
        std::fs::read_to_string(d.join("kamailio.log")).unwrap_or_default()
    );
    let (s, b) = post(
        &http,
        &b_node.url("/api/v1/agent/login"),
        &agent,
        json!({"endpoint": {"kind": "uri", "value": format!("sip:agent7@{kam}")}, "mode": "nailed_up"}),
    )
    .await;
    assert_eq!(s, 204, "agent login on B through Kamailio: {b}");

    // (c) + (a): A dials for B's agent and hands every answered call over.
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let done: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM campaign_leads WHERE campaign_id = $1 AND state = 'done'",
        )
        .bind(campaign)
        .fetch_one(db.pool())
        .await
        .unwrap();
        if done == LEADS as i64 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{done} of {LEADS} leads done; A log tail:\n{}\nB log tail:\n{}",
            tail(&a.log_text(), 40),
            tail(&b_node.log_text(), 40)
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let attempts = sqlx::query(
        "SELECT node, outcome, agent FROM dial_attempts WHERE campaign_id = $1 ORDER BY id",
    )
    .bind(campaign)
    .fetch_all(db.pool())
    .await
    .unwrap();
    assert_eq!(attempts.len(), LEADS);
    let mut to_agent = 0;
    for r in &attempts {
        assert_eq!(r.get::<String, _>("node"), "node-a", "A is the only pacer");
        if r.get::<Option<String>, _>("agent").as_deref() == Some("agent7") {
            to_agent += 1;
        }
    }
    let local_agents_on_a: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM agent_presence WHERE node = 'node-a'")
            .fetch_one(db.pool())
            .await
            .unwrap();
    assert_eq!(local_agents_on_a, 0, "A never had an agent of its own");
    let handoffs = sqlx::query(
        "SELECT outcome, agent, created_at, ended_at FROM agent_handoffs WHERE from_node = 'node-a' AND to_node = 'node-b'",
    )
    .fetch_all(db.pool())
    .await
    .unwrap();
    let connected: Vec<&sqlx::any::AnyRow> = handoffs
        .iter()
        .filter(|r| r.get::<Option<String>, _>("outcome").as_deref() == Some("connected"))
        .collect();
    assert!(
        connected.len() >= LEADS - 1 && to_agent >= LEADS - 1,
        "{} handoffs connected, {to_agent} attempts with agent7, of {LEADS}; outcomes: {:?}; A log:\n{}",
        connected.len(),
        handoffs
            .iter()
            .map(|r| r.get::<Option<String>, _>("outcome"))
            .collect::<Vec<_>>(),
        tail(&a.log_text(), 60)
    );
    assert!(
        ear.loud() >= 100,
        "the customers heard the agent's tone through A and B: {} loud packets",
        ear.loud()
    );
    // Latency: handoff row written → agent bridged on B (database clock), and A's own measure
    // (INVITE → 200 → bridged).
    let mut db_ms: Vec<i64> = connected
        .iter()
        .map(|r| r.get::<Option<i64>, _>("ended_at").unwrap() - r.get::<i64, _>("created_at"))
        .collect();
    db_ms.sort();
    let mut a_ms: Vec<i64> = a
        .log_text()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["message"] == "call handed to an agent on another node")
        .filter_map(|v| v["ms"].as_i64())
        .collect();
    a_ms.sort();
    println!(
        "multinode_kamailio: {} handoffs A→B; INVITE→bridged on A p50 {} ms p99 {} ms; row→agent bridged on B p50 {} ms p99 {} ms; {} loud RTP packets at the customers",
        connected.len(),
        percentile(&a_ms, 0.5),
        percentile(&a_ms, 0.99),
        percentile(&db_ms, 0.5),
        percentile(&db_ms, 0.99),
        ear.loud()
    );

    // (b) Carrier calls through Kamailio land on both nodes; the one on B reaches the agent
    // (once out of after-contact work from the campaign's last call).
    route_numbers(&a, &admin, "queue", QUEUE_FLOW, &[NUMBER]).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready: Option<i16> =
            sqlx::query_scalar("SELECT ready FROM agent_presence WHERE agent = 'agent7'")
                .fetch_optional(db.pool())
                .await
                .unwrap();
        if ready == Some(1) {
            break;
        }
        assert!(Instant::now() < deadline, "agent7 never became ready again");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let uac = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/telephony/tests/sip_scenarios/uac_via_proxy.xml"
    ))
    .unwrap()
    .replace(
        "<pause milliseconds=\"200\"/>",
        "<pause milliseconds=\"4000\"/>",
    );
    let before = chrono_ms(&db).await;
    let carrier = sipp(
        d,
        "carrier",
        &uac,
        &[
            &kam,
            "-s",
            NUMBER,
            "-p",
            &free_port().to_string(),
            "-mp",
            &free_port().to_string(),
            "-m",
            "2",
            "-r",
            "1",
            "-timeout",
            "30s",
        ],
    );
    let out = carrier.wait_with_output().await.unwrap();
    assert!(
        out.status.success(),
        "carrier calls through Kamailio: {:?} {}",
        out.status,
        std::fs::read_to_string(d.join("carrier.err")).unwrap_or_default()
    );
    let contacts = sqlx::query(
        "SELECT node, record FROM inbound_contacts WHERE started_at >= $1 AND did = $2 ORDER BY started_at",
    )
    .bind(before)
    .bind(NUMBER)
    .fetch_all(db.pool())
    .await
    .unwrap();
    let nodes: std::collections::BTreeSet<String> = contacts
        .iter()
        .filter_map(|r| r.get::<Option<String>, _>("node"))
        .collect();
    assert_eq!(
        nodes.into_iter().collect::<Vec<_>>(),
        ["node-a", "node-b"],
        "Kamailio dispatched the carrier's calls over both nodes"
    );
    let on_b_connected = contacts.iter().any(|r| {
        r.get::<Option<String>, _>("node").as_deref() == Some("node-b")
            && r.get::<String, _>("record")
                .contains("\"stage\":\"connected\"")
    });
    assert!(on_b_connected, "the carrier call on B reached agent7");
    db.close().await;
}

fn tail(log: &str, n: usize) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The database's clock now (epoch ms).
async fn chrono_ms(db: &Db) -> i64 {
    sqlx::query_scalar::<_, i64>(
        "SELECT CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)",
    )
    .fetch_one(db.pool())
    .await
    .unwrap()
}
