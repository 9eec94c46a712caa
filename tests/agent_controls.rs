//! Agents' call-control routes through the real appliance: a sipp customer calls a number whose
//! flow queues it, agent1's nailed-up phone (a sipp callee) takes it, and agent1 holds, mutes,
//! sends keypad digits and transfers it to agent2 after a consultation. The refusals are checked
//! too: another agent (403), an unknown contact (404), bad digits or target (400), a step the
//! contact's state does not allow (409).
//!
//! The keypad over the desktop socket: a customer whose SDP points at a capture socket of the
//! test receives the digits sent with `POST …/dtmf` and then with the socket's `dtmf` command as
//! RFC 4733 events, in order; bad digits on the socket get the REST route's 400 message.

mod common;

#[path = "../telephony/tests/control_support/mod.rs"]
#[allow(dead_code)]
mod control_support;
#[path = "../src/bench/ws.rs"]
#[allow(dead_code)]
mod ws;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{Appliance, QUEUE_FLOW, admin_key, free_port, route_numbers, run};
use serde_json::{Value, json};

const DID: &str = "+15550003000";

fn agent_key(dir: &std::path::Path, name: &str) -> String {
    let out = run(
        dir,
        &["apikey", "create", "--role", "agent", "--name", name],
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A sipp callee standing for an agent's phone: answers and waits for BYE.
fn phone(dir: &std::path::Path, port: u16) -> Child {
    Command::new("sipp")
        .current_dir(dir)
        .args([
            "-sn",
            "uas",
            "-i",
            "127.0.0.1",
            "-mi",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-mp",
            &free_port().to_string(),
            "-m",
            "1",
            "-nostdin",
            "-timeout",
            "90s",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

struct Api {
    c: reqwest::Client,
    app_url: String,
}

impl Api {
    fn new(app: &Appliance) -> Api {
        Api {
            c: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
            app_url: app.http.clone(),
        }
    }

    async fn post(&self, key: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .c
            .post(format!("{}{path}", self.app_url))
            .bearer_auth(key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn get(&self, key: &str, path: &str) -> (u16, Value) {
        let resp = self
            .c
            .get(format!("{}{path}", self.app_url))
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }
}

async fn login(api: &Api, key: &str, port: u16) {
    let (st, body) = api
        .post(
            key,
            "/api/v1/agent/login",
            Some(
                json!({"endpoint": {"kind": "uri", "value": format!("sip:agent@127.0.0.1:{port}")},
                        "mode": "nailed_up"}),
            ),
        )
        .await;
    assert_eq!(st, 204, "login: {body}");
}

/// The contact `agent` handles (from the supervisors' agent list), once it has one.
async fn contact_of(api: &Api, admin: &str, agent: &str) -> String {
    for _ in 0..200 {
        let (_, agents) = api.get(admin, "/api/v1/agents").await;
        if let Some(c) = agents
            .as_array()
            .into_iter()
            .flatten()
            .find(|a| a["id"] == agent)
            .and_then(|a| a["contact"].as_str())
        {
            return c.to_owned();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{agent} got no contact");
}

#[tokio::test]
async fn agent_call_controls_through_the_appliance() {
    if !foundation::testing::require_tool("sipp", "sip-tester") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let admin = admin_key(dir.path());
    let k1 = agent_key(dir.path(), "agent1");
    let k2 = agent_key(dir.path(), "agent2");
    let k3 = agent_key(dir.path(), "agent3");
    let app = Appliance::start(dir.path(), &[("DIALBRIDGE_RTP_INACTIVITY_TIMEOUT_S", "0")]);
    route_numbers(&app, &admin, "queue", QUEUE_FLOW, &[DID]).await;
    let api = Api::new(&app);

    // The routes are in the OpenAPI document.
    let (_, doc) = api.get(&admin, "/api/openapi.json").await;
    for p in [
        "hold",
        "mute",
        "dtmf",
        "transfer",
        "controls",
        "consult/complete",
        "consult/cancel",
        "consult/conference",
    ] {
        let path = format!("/api/v1/agent/contacts/{{contact}}/{p}");
        assert!(
            doc["paths"][&path].is_object(),
            "{path} in the OpenAPI document"
        );
    }

    let (p1, p2) = (free_port(), free_port());
    let mut phone1 = phone(dir.path(), p1);
    let mut phone2 = phone(dir.path(), p2);
    tokio::time::sleep(Duration::from_millis(300)).await;
    login(&api, &k1, p1).await;

    // The customer calls and waits (it hangs up after 60 s at the latest).
    let mut customer = Command::new("sipp")
        .current_dir(dir.path())
        .args([
            &app.sip_udp,
            "-sn",
            "uac",
            "-s",
            DID,
            "-i",
            "127.0.0.1",
            "-mi",
            "127.0.0.1",
            "-p",
            &free_port().to_string(),
            "-mp",
            &free_port().to_string(),
            "-m",
            "1",
            "-d",
            "60000",
            "-nostdin",
            "-timeout",
            "90s",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let contact = contact_of(&api, &admin, "agent1").await;
    login(&api, &k2, p2).await;
    let at = |p: &str| format!("/api/v1/agent/contacts/{contact}/{p}");

    // Refusals.
    let (st, body) = api
        .post(
            &k1,
            "/api/v1/agent/contacts/nope/hold",
            Some(json!({"on": true})),
        )
        .await;
    assert_eq!(
        (st, body["error"].as_str()),
        (404, Some("unknown_contact")),
        "{body}"
    );
    let (st, body) = api.post(&k2, &at("hold"), Some(json!({"on": true}))).await;
    assert_eq!(
        (st, body["error"].as_str()),
        (403, Some("forbidden")),
        "{body}"
    );
    let long = "1".repeat(33);
    for digits in ["12x", "", long.as_str()] {
        let (st, body) = api
            .post(&k1, &at("dtmf"), Some(json!({"digits": digits})))
            .await;
        assert_eq!(st, 400, "{digits:?}: {body}");
        assert!(
            body["message"].as_str().unwrap().contains("digits"),
            "{body}"
        );
    }
    let (st, body) = api.post(&k1, &at("consult/complete"), None).await;
    assert_eq!(
        (st, body["error"].as_str()),
        (409, Some("conflict")),
        "{body}"
    );
    let (st, body) = api
        .post(
            &k1,
            &at("transfer"),
            Some(json!({"to": {"number": "12345"}, "mode": "consult"})),
        )
        .await;
    assert_eq!(
        (st, body["error"].as_str()),
        (400, Some("bad_target")),
        "{body}"
    );
    let (st, body) = api
        .post(
            &k1,
            &at("transfer"),
            Some(json!({"to": {"agent": "nobody"}, "mode": "blind"})),
        )
        .await;
    assert_eq!(
        (st, body["error"].as_str()),
        (400, Some("bad_target")),
        "{body}"
    );
    let (st, body) = api
        .post(
            &k1,
            &at("transfer"),
            Some(json!({"to": {"agent": "agent2", "queue": "default"}, "mode": "blind"})),
        )
        .await;
    assert_eq!(st, 400, "two targets: {body}");

    // Hold, mute, keypad.
    let (st, body) = api.post(&k1, &at("hold"), Some(json!({"on": true}))).await;
    assert_eq!(st, 204, "{body}");
    let (st, view) = api.get(&k1, &at("controls")).await;
    assert_eq!((st, &view["held"]), (200, &json!(true)), "{view}");
    let (st, body) = api.post(&k1, &at("mute"), Some(json!({"on": true}))).await;
    assert_eq!(
        (st, body["error"].as_str()),
        (409, Some("conflict")),
        "mute on hold: {body}"
    );
    assert_eq!(
        api.post(&k1, &at("hold"), Some(json!({"on": false})))
            .await
            .0,
        204
    );
    assert_eq!(
        api.post(&k1, &at("mute"), Some(json!({"on": true})))
            .await
            .0,
        204
    );
    let (_, view) = api.get(&k1, &at("controls")).await;
    assert_eq!(
        (&view["held"], &view["muted"]),
        (&json!(false), &json!(true)),
        "{view}"
    );
    assert_eq!(
        api.post(&k1, &at("mute"), Some(json!({"on": false})))
            .await
            .0,
        204
    );
    let (st, body) = api
        .post(&k1, &at("dtmf"), Some(json!({"digits": "123#"})))
        .await;
    assert_eq!(st, 204, "{body}");

    // Consult agent2, then complete: agent2 handles the contact, agent1 no longer may act on it.
    let (st, body) = api
        .post(
            &k1,
            &at("transfer"),
            Some(json!({"to": {"agent": "agent2"}, "mode": "consult"})),
        )
        .await;
    assert_eq!(st, 204, "{body}");
    let (_, view) = api.get(&k1, &at("controls")).await;
    assert_eq!(view["consult"]["phase"], "talking", "{view}");
    assert_eq!(view["consult"]["target_agent"], "agent2", "{view}");
    let (st, body) = api.post(&k1, &at("hold"), Some(json!({"on": true}))).await;
    assert_eq!(st, 409, "hold during a consultation: {body}");
    let (st, body) = api.post(&k1, &at("consult/complete"), None).await;
    assert_eq!(st, 204, "{body}");
    let (st, view) = api.get(&admin, &at("controls")).await;
    assert_eq!(
        (st, view["agent"].as_str()),
        (200, Some("agent2")),
        "{view}"
    );
    let (st, _) = api.post(&k1, &at("hold"), Some(json!({"on": true}))).await;
    assert_eq!(st, 403, "agent1 transferred the contact away");
    let (st, _) = api.post(&k2, &at("hold"), Some(json!({"on": true}))).await;
    assert_eq!(st, 204, "agent2 now controls it");
    let (_, agents) = api.get(&admin, "/api/v1/agents").await;
    let a1 = agents
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == "agent1")
        .unwrap();
    assert_eq!(a1["leg_up"], true, "agent1's nailed-up leg stays up: {a1}");
    assert_eq!(a1["contact"], Value::Null, "{a1}");

    // The contact ends; its record shows the steps.
    let (st, _) = api
        .post(
            &k2,
            &format!("/api/v1/agent/contacts/{contact}/hangup"),
            None,
        )
        .await;
    assert_eq!(st, 204);
    let status = tokio::task::spawn_blocking(move || customer.wait().unwrap())
        .await
        .unwrap();
    assert!(status.code().is_some(), "the customer's call ended");
    let mut row = Value::Null;
    for _ in 0..100 {
        let (_, rows) = api
            .get(&admin, &format!("/api/v1/contacts?number=%2B{}", &DID[1..]))
            .await;
        if let Some(r) = rows.as_array().and_then(|r| r.first())
            && !r["ended_at"].is_null()
        {
            row = r.clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        row["agent"], "agent2",
        "the record names the agent it ended with: {row}"
    );
    assert!(
        row["flow"].is_string() && row["flow_version"].is_i64(),
        "the record names the flow the call ran: {row}"
    );
    let stages = contact_stages(dir.path(), &contact).await;
    for stage in [
        "hold",
        "resume",
        "mute",
        "unmute",
        "dtmf_sent",
        "consult",
        "consult_answered",
        "transferred",
        "ended",
    ] {
        assert!(
            stages.iter().any(|s| s == stage),
            "{stage} in the contact record: {stages:?}"
        );
    }
    // The disposition is for agents who were connected to it: agent3 never was and is refused;
    // a callback on an inbound call is refused (callers ask for theirs in the flow); agent2's
    // code is taken.
    let disp = format!("/api/v1/agent/contacts/{contact}/disposition");
    let (st, body) = api.post(&k3, &disp, Some(json!({"code": "sale"}))).await;
    assert_eq!(st, 403, "agent3 never handled it: {body}");
    let (st, body) = api
        .post(
            &k2,
            &disp,
            Some(json!({"code": "callback", "callback": {"at": "2099-01-01T10:00:00Z"}})),
        )
        .await;
    assert_eq!(st, 400, "a callback needs a campaign call: {body}");
    let (st, body) = api
        .post(
            &k2,
            &disp,
            Some(json!({"code": "callback", "callback": {"at": "yesterday"}})),
        )
        .await;
    assert_eq!(st, 400, "not a time: {body}");
    assert!(body.to_string().contains("callback.at"), "{body}");
    let (st, body) = api.post(&k2, &disp, Some(json!({"code": "sale"}))).await;
    assert_eq!(st, 204, "{body}");
    let _ = api.post(&k1, "/api/v1/agent/logout", None).await;
    let _ = api.post(&k2, "/api/v1/agent/logout", None).await;
    let _ = phone1.wait();
    let _ = phone2.wait();
}

/// The stage names of a contact record (read from the appliance's SQLite database).
async fn contact_stages(dir: &std::path::Path, contact: &str) -> Vec<String> {
    let url = format!(
        "sqlite://{}?mode=ro",
        dir.join("data/dialbridge.db").display()
    );
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    let record: String =
        sqlx::query_scalar("SELECT record FROM inbound_contacts WHERE contact_id = $1")
            .bind(contact)
            .fetch_one(&mut conn)
            .await
            .unwrap();
    let record: Value = serde_json::from_str(&record).unwrap();
    record["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stage"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// The customer for the keypad test: offers PCMU and telephone-event/101 at `[rtpport]` (the
/// test's socket), streams a tone and waits for the appliance's BYE.
fn customer_xml(file: &std::path::Path) -> String {
    format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="customer">
  <send retrans="500"><![CDATA[
      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:+13125550100@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: sip:sipp@[local_ip]:[local_port]
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=user1 53655765 2353687637 IN IP4 [local_ip]
      s=-
      c=IN IP4 127.0.0.1
      t=0 0
      m=audio [rtpport] RTP/AVP 0 101
      a=rtpmap:0 PCMU/8000
      a=rtpmap:101 telephone-event/8000
      a=fmtp:101 0-15

    ]]></send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="183" optional="true"/>
  <recv response="200" rtd="true"/>
  <send><![CDATA[
      ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:+13125550100@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Contact: sip:sipp@[local_ip]:[local_port]
      Max-Forwards: 70
      Content-Length: 0

    ]]></send>
  <nop><action><exec rtp_stream="{},-1,0"/></action></nop>
  <recv request="BYE" timeout="90000"/>
  <nop><action><exec rtp_stream="pause"/></action></nop>
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
        file.display()
    )
}

/// The keys of the RFC 4733 events (PT 101) among `pkts`, one per event (its end packets, sent
/// three times, share a timestamp).
fn rfc4733_keys(pkts: &[control_support::Rtp]) -> String {
    const KEYS: &[u8] = b"0123456789*#ABCD";
    let mut out = String::new();
    let mut last_ts = None;
    for p in pkts.iter().filter(|p| p.pt == 101 && p.payload.len() >= 4) {
        let end = p.payload[1] & 0x80 != 0;
        if end && last_ts != Some(p.ts) {
            last_ts = Some(p.ts);
            if let Some(k) = KEYS.get(p.payload[0] as usize) {
                out.push(*k as char);
            }
        }
    }
    out
}

/// The desktop socket of the agent with `key`, past its `hello`.
async fn desktop_socket(app: &Appliance, key: &str) -> (ws::WsReader, ws::WsWriter) {
    let host = app.http.strip_prefix("http://").unwrap();
    let (mut rx, mut tx) = ws::connect(host, "/api/v1/agent/events", key)
        .await
        .unwrap();
    let hello = rx.next_text(&mut tx).await.unwrap().expect("hello");
    let hello: Value = serde_json::from_str(&hello).unwrap();
    assert_eq!(hello["type"], "hello", "{hello}");
    (rx, tx)
}

/// Sends `cmd` on the socket and returns its reply (`ok` or `error`), skipping runtime events.
async fn command(sock: &mut (ws::WsReader, ws::WsWriter), cmd: Value) -> Value {
    let (rx, tx) = sock;
    tx.send_text(&cmd.to_string()).await.unwrap();
    loop {
        let text = tokio::time::timeout(Duration::from_secs(30), rx.next_text(tx))
            .await
            .expect("a reply within 30 s")
            .unwrap()
            .expect("the socket stays open");
        let msg: Value = serde_json::from_str(&text).unwrap();
        if msg["type"] == "ok" || msg["type"] == "error" {
            return msg;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keypad_over_the_desktop_socket_reaches_the_customer_as_rfc4733() {
    if !foundation::testing::require_tool("sipp", "sip-tester") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let admin = admin_key(dir.path());
    let k1 = agent_key(dir.path(), "agent1");
    let k2 = agent_key(dir.path(), "agent2");
    let app = Appliance::start(dir.path(), &[("DIALBRIDGE_RTP_INACTIVITY_TIMEOUT_S", "0")]);
    route_numbers(&app, &admin, "queue", QUEUE_FLOW, &[DID]).await;
    let api = Api::new(&app);
    let p1 = free_port();
    let mut phone1 = phone(dir.path(), p1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    login(&api, &k1, p1).await;

    // The customer's media address: every RTP packet the appliance sends it.
    let media = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let media_port = media.local_addr().unwrap().port();
    let (pkt_tx, mut pkt_rx) = tokio::sync::mpsc::unbounded_channel();
    let receiver = tokio::spawn(async move {
        let mut buf = vec![0u8; 2048];
        while let Ok((n, from)) = media.recv_from(&mut buf).await {
            if let Some(p) = control_support::parse_rtp(&buf[..n], from)
                && pkt_tx.send(p).is_err()
            {
                return;
            }
        }
    });
    let tone: Vec<i16> = (0..8000)
        .map(|i| (8000.0 * (2.0 * std::f64::consts::PI * 500.0 * i as f64 / 8000.0).sin()) as i16)
        .collect();
    let tone_file = dir.path().join("customer.ulaw");
    control_support::write_raw(&tone_file, telephony::media::g711::Codec::Pcmu, &tone);
    let scenario = dir.path().join("customer.xml");
    std::fs::write(&scenario, customer_xml(&tone_file)).unwrap();
    let mut customer = Command::new("sipp")
        .current_dir(dir.path())
        .args([&app.sip_udp, "-sf", &scenario.display().to_string()])
        .args(["-s", DID, "-i", "127.0.0.1", "-mi", "127.0.0.1"])
        .args([
            "-p",
            &free_port().to_string(),
            "-mp",
            &free_port().to_string(),
        ])
        .args(["-key", "rtpport", &media_port.to_string()])
        .args(["-m", "1", "-nostdin", "-timeout", "90s"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let contact = contact_of(&api, &admin, "agent1").await;
    let dtmf_path = |c: &str| format!("/api/v1/agent/contacts/{c}/dtmf");
    let mut sock = desktop_socket(&app, &k1).await;

    // Bad digits: refused on the socket with the REST route's message, before the contact is
    // looked at (also for an unknown contact), and nothing is sent.
    let long = "1".repeat(33);
    for (c, digits) in [
        (contact.as_str(), "12x"),
        (contact.as_str(), ""),
        (contact.as_str(), long.as_str()),
        ("nope", "12x"),
    ] {
        let reply = command(
            &mut sock,
            json!({"type": "dtmf", "contact": c, "digits": digits}),
        )
        .await;
        let (st, body) = api
            .post(&k1, &dtmf_path(c), Some(json!({"digits": digits})))
            .await;
        assert_eq!(st, 400, "REST {c} {digits:?}: {body}");
        assert_eq!(reply["type"], "error", "{c} {digits:?}: {reply}");
        let message = reply["message"].as_str().unwrap();
        assert!(message.starts_with("digits: "), "{digits:?}: {reply}");
        assert_eq!(
            Some(message),
            body["message"].as_str(),
            "{digits:?}: socket and REST give the same message"
        );
    }
    let reply = command(
        &mut sock,
        json!({"type": "dtmf", "contact": contact, "digits": "12x"}),
    )
    .await;
    assert!(
        reply["message"]
            .as_str()
            .unwrap()
            .contains("'x' is not a key"),
        "the error names the bad key: {reply}"
    );
    // Good digits for a contact that is not there, or is another agent's.
    let reply = command(
        &mut sock,
        json!({"type": "dtmf", "contact": "nope", "digits": "1"}),
    )
    .await;
    assert_eq!(reply["type"], "error", "{reply}");
    assert!(
        reply["message"].as_str().unwrap().contains("nope"),
        "{reply}"
    );
    let mut other = desktop_socket(&app, &k2).await;
    let reply = command(
        &mut other,
        json!({"type": "dtmf", "contact": contact, "digits": "1"}),
    )
    .await;
    assert_eq!(reply["type"], "error", "{reply}");
    assert!(
        reply["message"]
            .as_str()
            .unwrap()
            .contains("handled by another agent"),
        "{reply}"
    );

    // REST digits, then socket digits: the customer gets both, in order, as RFC 4733 events.
    let (st, body) = api
        .post(&k1, &dtmf_path(&contact), Some(json!({"digits": "12"})))
        .await;
    assert_eq!(st, 204, "{body}");
    let reply = command(
        &mut sock,
        json!({"type": "dtmf", "contact": contact, "digits": "9*0#A"}),
    )
    .await;
    assert_eq!(reply, json!({"type": "ok", "command": "dtmf"}));
    let expected = "129*0#A";
    let mut pkts = Vec::new();
    // The digits take 240 ms each on the wire; wait for as many events (bounded, not judged).
    let _ = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(p) = pkt_rx.recv().await {
            pkts.push(p);
            if rfc4733_keys(&pkts).len() >= expected.len() {
                break;
            }
        }
    })
    .await;
    // A little longer, so that a stray extra event would be seen.
    let _ = tokio::time::timeout(Duration::from_millis(600), async {
        while let Some(p) = pkt_rx.recv().await {
            pkts.push(p);
        }
    })
    .await;
    assert_eq!(
        rfc4733_keys(&pkts),
        expected,
        "RFC 4733 events at the customer ({} packets)",
        pkts.len()
    );

    let (st, _) = api
        .post(
            &k1,
            &format!("/api/v1/agent/contacts/{contact}/hangup"),
            None,
        )
        .await;
    assert_eq!(st, 204);
    let status = tokio::task::spawn_blocking(move || customer.wait().unwrap())
        .await
        .unwrap();
    assert_eq!(
        status.code(),
        Some(0),
        "the customer's call ended with a BYE"
    );
    receiver.abort();
    let _ = api.post(&k1, "/api/v1/agent/logout", None).await;
    let _ = phone1.wait();
}
