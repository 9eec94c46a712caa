//! Agentless flows on outbound calls (issue #7: "press 1 to confirm, 2 for an agent") through the
//! real appliance. Three agentless campaigns run the same stored flow on every live answer, each
//! against a sipp customer that says "Hello?" and then presses one key (RFC 4733, PT 96):
//! - 1: the flow sets `confirmed=yes` and `disposition=confirmed` → the attempt's attributes and
//!   the lead's outcome show it;
//! - 2: the flow's TransferContactToQueue hands the call to a nailed-up agent (a sipp phone) →
//!   the attempt is connected with that agent;
//! - 9 (the campaign's opt-out key): taken by the dialer before the flow → the number is on the
//!   internal DNC list, the attempt is `dnc`.
//!
//! Also: `POST /api/v1/calls {flow}` places a call that runs the flow; an unknown flow is refused
//! naming the field, for single calls and for campaigns.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{Appliance, api_key, free_port, run};
use foundation::Db;
use foundation::testing::require_tool;
use serde_json::{Value, json};
use sqlx::Row;

const FLOW: &str = r#"{"Version": "2019-10-30", "StartAction": "menu", "Actions": [
  {"Identifier": "menu", "Type": "GetParticipantInput",
   "Parameters": {"Text": "Hello. Press 1 to confirm your appointment, 2 for an agent, 9 to opt out.", "StoreInput": "False", "InputTimeLimitSeconds": "8"},
   "Transitions": {"Conditions": [
       {"NextAction": "confirm", "Condition": {"Operator": "Equals", "Operands": ["1"]}},
       {"NextAction": "q", "Condition": {"Operator": "Equals", "Operands": ["2"]}}],
     "Errors": [{"NextAction": "bye", "ErrorType": "InputTimeLimitExceeded"},
                {"NextAction": "bye", "ErrorType": "NoMatchingCondition"},
                {"NextAction": "bye", "ErrorType": "NoMatchingError"}]}},
  {"Identifier": "confirm", "Type": "UpdateContactAttributes",
   "Parameters": {"Attributes": {"confirmed": "yes", "disposition": "confirmed"}},
   "Transitions": {"NextAction": "thanks", "Errors": [{"NextAction": "bye", "ErrorType": "NoMatchingError"}]}},
  {"Identifier": "thanks", "Type": "MessageParticipant", "Parameters": {"Text": "Thank you."},
   "Transitions": {"NextAction": "bye", "Errors": [{"NextAction": "bye", "ErrorType": "NoMatchingError"}]}},
  {"Identifier": "q", "Type": "UpdateContactTargetQueue", "Parameters": {"QueueId": "default"},
   "Transitions": {"NextAction": "t", "Errors": [{"NextAction": "bye", "ErrorType": "NoMatchingError"}]}},
  {"Identifier": "t", "Type": "TransferContactToQueue", "Parameters": {},
   "Transitions": {"Errors": [{"NextAction": "bye", "ErrorType": "QueueAtCapacity"}, {"NextAction": "bye", "ErrorType": "NoMatchingError"}]}},
  {"Identifier": "bye", "Type": "DisconnectParticipant", "Parameters": {}, "Transitions": {}}]}"#;

/// A customer: answers (PCMU + telephone-event 96), says "Hello?", presses `[digit]` 5 s after
/// the answer, then waits for the BYE.
fn customer_xml(hello: &Path) -> String {
    format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="customer">
<recv request="INVITE" crlf="true"/>
<send><![CDATA[
SIP/2.0 180 Ringing
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
<pause milliseconds="200"/>
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

v=0
o=user1 1 1 IN IP4 [local_ip]
s=-
c=IN IP4 [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0 96
a=rtpmap:0 PCMU/8000
a=rtpmap:96 telephone-event/8000
]]></send>
<recv request="ACK" crlf="true"/>
<nop><action><exec rtp_stream="{},1,0"/></action></nop>
<pause milliseconds="5000"/>
<nop><action><exec play_dtmf="[digit],200"/></action></nop>
<recv request="BYE" timeout="60000"/>
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
        hello.display()
    )
}

fn sh(dir: &Path, cmd: &str, args: &[&str]) {
    let st = std::process::Command::new(cmd)
        .current_dir(dir)
        .args(args)
        .status()
        .unwrap();
    assert!(st.success(), "{cmd} {args:?}");
}

fn sipp(dir: &Path, args: &[&str]) -> tokio::process::Child {
    tokio::process::Command::new("sipp")
        .current_dir(dir)
        .args(args)
        .args(["-i", "127.0.0.1", "-mi", "127.0.0.1", "-nostdin"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

/// A sipp customer pressing `digit`, on its own ports; returns (child, SIP port).
fn customer(dir: &Path, digit: &str) -> (tokio::process::Child, u16) {
    let port = free_port();
    let child = sipp(
        dir,
        &[
            "-sf",
            "customer.xml",
            "-p",
            &port.to_string(),
            "-mp",
            &free_port().to_string(),
            "-key",
            "digit",
            digit,
        ],
    );
    (child, port)
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

fn import(dir: &Path, name: &str, phone: &str) -> i64 {
    std::fs::write(
        dir.join(format!("{name}.csv")),
        format!("First Name,Phone\nAda,{phone}\n"),
    )
    .unwrap();
    let out = run(
        dir,
        &[
            "import",
            &format!("{name}.csv"),
            "--list",
            name,
            "--region",
            "US",
            "--json",
        ],
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<Value>(&out.stdout).unwrap()["list_id"]
        .as_i64()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agentless_flow_confirms_reaches_an_agent_and_honours_opt_out() {
    for (tool, pkg) in [
        ("sipp", "sip-tester"),
        ("sox", "sox"),
        ("espeak-ng", "espeak-ng"),
    ] {
        if !require_tool(tool, pkg) {
            return;
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // "Hello?" then silence (headerless mu-law for sipp's rtp_stream), and a safe-harbor WAV.
    sh(
        dir,
        "espeak-ng",
        &["-v", "en-us", "-s", "160", "-w", "hello_raw.wav", "Hello?"],
    );
    sh(
        dir,
        "sox",
        &[
            "hello_raw.wav",
            "-r",
            "8000",
            "-c",
            "1",
            "-e",
            "signed",
            "-b",
            "16",
            "hello16.wav",
        ],
    );
    sh(
        dir,
        "sox",
        &[
            "-n", "-r", "8000", "-c", "1", "-e", "signed", "-b", "16", "sil.wav", "trim", "0", "30",
        ],
    );
    sh(
        dir,
        "sox",
        &["hello16.wav", "sil.wav", "-t", "ul", "hello.ulaw"],
    );
    sh(
        dir,
        "sox",
        &[
            "-n", "-r", "8000", "-c", "1", "-e", "signed", "-b", "16", "sh.wav", "synth", "0.5",
            "sine", "440",
        ],
    );
    std::fs::write(
        dir.join("customer.xml"),
        customer_xml(&dir.join("hello.ulaw")),
    )
    .unwrap();

    let lists = [
        ("confirm", "(312) 555-0141"),
        ("agent", "(312) 555-0142"),
        ("optout", "(312) 555-0149"),
    ]
    .map(|(n, p)| (n, import(dir, n, p)));
    let (manager, agent_key, admin) = (
        api_key(dir, "campaign-manager"),
        api_key(dir, "agent"),
        api_key(dir, "admin"),
    );
    let (mut c1, p1) = customer(dir, "1");
    let (mut c2, p2) = customer(dir, "2");
    let (mut c9, p9) = customer(dir, "9");
    // The agent's phone: answers the nailed-up leg and holds it.
    let phone_port = free_port();
    let _phone = sipp(
        dir,
        &[
            "-sn",
            "uas",
            "-p",
            &phone_port.to_string(),
            "-mp",
            &free_port().to_string(),
        ],
    );
    tokio::time::sleep(Duration::from_millis(300)).await;

    let app = Appliance::start(
        dir,
        &[
            ("DIALBRIDGE_RTP_PORT_MIN", "38000"),
            ("DIALBRIDGE_RTP_PORT_MAX", "38999"),
            // The agent's sipp phone sends no audio on its nailed-up leg.
            ("DIALBRIDGE_RTP_INACTIVITY_TIMEOUT_S", "0"),
        ],
    );
    let c = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let url = |p: &str| app.url(p);
    let (s, b) = send(
        c.put(url("/api/v1/flows/confirm-or-agent"))
            .bearer_auth(&admin)
            .json(&json!({"text": FLOW})),
    )
    .await;
    assert!(s < 300, "saving the flow: {s} {b}");
    // The agent logs in nailed-up on the sipp phone (queue `default`).
    let (s, b) = send(
        c.post(url("/api/v1/agent/login"))
            .bearer_auth(&agent_key)
            .json(&json!({"endpoint": {"kind": "uri", "value": format!("sip:agent@127.0.0.1:{phone_port}")}, "mode": "nailed_up"})),
    )
    .await;
    assert_eq!(s, 204, "agent login: {b}");

    let config = |list: i64, port: u16, flow: &str| {
        json!({
            "lists": [{"list_id": list, "weight": 1}],
            "mode": "agentless",
            "purpose": "informational",
            "caller_id": "+13125550000",
            "trunk": {"uri": format!("sip:127.0.0.1:{port}"), "cps": 1, "max_concurrent": 1},
            "amd": "hang_up",
            "agentless_flow": flow,
            "compliance": {"window": {"start": "00:00", "end": "23:59"}, "max_attempts_per_lead": 1},
            "safe_harbor": {"seller": "Acme", "callback_number": "+13125550001", "opt_out_key": "9",
                            "prompt": dir.join("sh.wav").display().to_string()}
        })
    };
    // Validation: an unknown flow, or a flow and a message together, are refused by name.
    let (s, b) = send(
        c.post(url("/api/v1/campaigns"))
            .bearer_auth(&manager)
            .json(&json!({"name": "bad", "config": config(lists[0].1, p1, "no-such-flow")})),
    )
    .await;
    assert_eq!(s, 400, "{b}");
    assert!(
        b["message"].as_str().unwrap().contains("agentless_flow"),
        "{b}"
    );
    let mut both = config(lists[0].1, p1, "confirm-or-agent");
    both["agentless_prompt"] = json!(dir.join("sh.wav").display().to_string());
    let (s, b) = send(
        c.post(url("/api/v1/campaigns"))
            .bearer_auth(&manager)
            .json(&json!({"name": "bad", "config": both})),
    )
    .await;
    assert_eq!(s, 400, "{b}");
    assert!(
        b["message"].as_str().unwrap().contains("agentless_prompt"),
        "{b}"
    );

    let mut ids = Vec::new();
    for ((name, list), port) in lists.iter().zip([p1, p2, p9]) {
        let (s, b) = send(
            c.post(url("/api/v1/campaigns"))
                .bearer_auth(&manager)
                .json(&json!({"name": name, "config": config(*list, port, "confirm-or-agent")})),
        )
        .await;
        assert_eq!(s, 201, "{b}");
        let id = b["id"].as_i64().unwrap();
        let (s, b) = send(
            c.post(url(&format!("/api/v1/campaigns/{id}/actions")))
                .bearer_auth(&manager)
                .json(&json!({"action": "start"})),
        )
        .await;
        assert_eq!(s, 200, "{b}");
        ids.push(id);
    }

    let db = Db::connect(
        &format!("sqlite://{}", dir.join("data/dialbridge.db").display()),
        2,
    )
    .await
    .unwrap();
    // The "2 for an agent" customer reaches the agent: the agent ends the call from the desktop
    // API once it is connected.
    let deadline = Instant::now() + Duration::from_secs(60);
    let agent_contact = loop {
        // The ACD's `connected` stage on the flow's contact record (the attempt's contact id).
        let connected: Option<String> = sqlx::query_scalar(
            "SELECT a.public_id FROM dial_attempts a JOIN inbound_contacts c ON c.contact_id = a.public_id \
             WHERE a.campaign_id = $1 AND c.record LIKE '%\"stage\":\"connected\"%'",
        )
        .bind(ids[1])
        .fetch_optional(db.pool())
        .await
        .unwrap();
        if let Some(id) = connected {
            break id;
        }
        assert!(
            Instant::now() < deadline,
            "the customer pressing 2 never reached the agent; log:\n{}",
            app.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (s, b) = send(
        c.post(url(&format!(
            "/api/v1/agent/contacts/{agent_contact}/hangup"
        )))
        .bearer_auth(&agent_key),
    )
    .await;
    assert!(s < 300, "agent hangs up: {s} {b}");

    // Every campaign's lead is done.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let done: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM campaign_leads WHERE state = 'done' AND campaign_id IN ($1, $2, $3)",
        )
        .bind(ids[0])
        .bind(ids[1])
        .bind(ids[2])
        .fetch_one(db.pool())
        .await
        .unwrap();
        if done == 3 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{done} of 3 leads done; log:\n{}",
            app.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let attempt = |campaign: i64| {
        let db = db.clone();
        async move {
            sqlx::query(
                "SELECT public_id, outcome, agent, attributes, disposition, flow_id, live, abandoned, e164 \
                 FROM dial_attempts WHERE campaign_id = $1",
            )
            .bind(campaign)
            .fetch_one(db.pool())
            .await
            .unwrap()
        }
    };
    // 1: confirmed.
    let a = attempt(ids[0]).await;
    let attrs: Value = serde_json::from_str(&a.get::<String, _>("attributes")).unwrap();
    eprintln!(
        "confirm: {:?} {attrs}",
        a.get::<Option<String>, _>("outcome")
    );
    assert_eq!(
        a.get::<Option<String>, _>("outcome").as_deref(),
        Some("message")
    );
    assert_eq!(attrs["confirmed"], "yes", "{attrs}");
    assert_eq!(attrs["flow_digits"], "1", "{attrs}");
    assert_eq!(
        a.get::<Option<String>, _>("disposition").as_deref(),
        Some("confirmed")
    );
    assert_eq!(
        a.get::<Option<String>, _>("flow_id").as_deref(),
        Some("confirm-or-agent")
    );
    assert_eq!(
        (a.get::<i16, _>("live"), a.get::<i16, _>("abandoned")),
        (1, 0)
    );
    let lead_outcome: Option<String> =
        sqlx::query_scalar("SELECT final_outcome FROM campaign_leads WHERE campaign_id = $1")
            .bind(ids[0])
            .fetch_one(db.pool())
            .await
            .unwrap();
    assert_eq!(lead_outcome.as_deref(), Some("disposition:confirmed"));
    // The flow's contact record: outbound, the lead's number as the customer's address.
    let rec: String =
        sqlx::query_scalar("SELECT record FROM inbound_contacts WHERE contact_id = $1")
            .bind(a.get::<String, _>("public_id"))
            .fetch_one(db.pool())
            .await
            .unwrap();
    let rec: Value = serde_json::from_str(&rec).unwrap();
    assert_eq!(
        rec["contact"]["customer_address"],
        a.get::<String, _>("e164")
    );
    assert_eq!(rec["attributes"]["direction"], "outbound", "{rec}");
    assert_eq!(rec["attributes"]["first_name"], "Ada", "{rec}");

    // 2: with the agent.
    let a = attempt(ids[1]).await;
    assert_eq!(
        a.get::<Option<String>, _>("outcome").as_deref(),
        Some("connected")
    );
    assert_eq!(
        a.get::<Option<String>, _>("agent").as_deref(),
        Some("agent")
    );
    let attrs: Value = serde_json::from_str(&a.get::<String, _>("attributes")).unwrap();
    assert_eq!(attrs["flow_digits"], "2", "{attrs}");

    // 9: the opt-out key, taken before the flow.
    let a = attempt(ids[2]).await;
    assert_eq!(
        a.get::<Option<String>, _>("outcome").as_deref(),
        Some("dnc")
    );
    let dnc: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM dnc_entries WHERE e164 = $1")
        .bind(a.get::<String, _>("e164"))
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(dnc, 1, "the opted-out number is on the internal DNC list");

    // A single call to the flow (the first campaign's trunk and compliance): placed, answered,
    // the flow runs and the key lands in the record. An unknown flow is refused by name.
    let (s, b) = send(
        c.post(url("/api/v1/calls"))
            .bearer_auth(&manager)
            .json(&json!({"to": "+13125550177", "campaign": ids[0], "flow": "no-such-flow"})),
    )
    .await;
    assert_eq!(s, 400, "{b}");
    assert!(b["message"].as_str().unwrap().contains("flow"), "{b}");
    let (s, b) = send(
        c.post(url("/api/v1/calls"))
            .bearer_auth(&manager)
            .json(&json!({"to": "+13125550177", "campaign": ids[0], "flow": "confirm-or-agent", "attributes": {"order": "A-7"}})),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    let contact = b["contact_id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(40);
    let row = loop {
        if let Some(r) = sqlx::query(
            "SELECT outcome, attributes, flow_id FROM dial_attempts WHERE public_id = $1 AND state = 'final'",
        )
        .bind(&contact)
        .fetch_optional(db.pool())
        .await
        .unwrap()
        {
            break r;
        }
        assert!(
            Instant::now() < deadline,
            "the single call did not end; log:\n{}",
            app.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let attrs: Value = serde_json::from_str(&row.get::<String, _>("attributes")).unwrap();
    assert_eq!(
        row.get::<Option<String>, _>("outcome").as_deref(),
        Some("message")
    );
    assert_eq!(
        row.get::<Option<String>, _>("flow_id").as_deref(),
        Some("confirm-or-agent")
    );
    assert_eq!(
        (&attrs["confirmed"], &attrs["order"]),
        (&json!("yes"), &json!("A-7")),
        "{attrs}"
    );
    for ch in [&mut c1, &mut c2, &mut c9] {
        let _ = ch.kill().await;
    }
    db.close().await;
}
