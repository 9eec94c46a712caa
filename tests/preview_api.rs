//! Preview auto-dial through the real appliance's REST API, no browser: an agent (API key) logs
//! in with a nailed-up phone (a sipp callee), a preview campaign whose `preview_auto_dial_s` is
//! 1 s dials a list of Chicago leads through a trunk that is a sipp UAS (the customers, answering
//! every call and staying up).
//!
//! 1. The agent takes a card (`GET /api/v1/agent/preview`) and does nothing: at the end of the
//!    countdown the appliance dials it — exactly one INVITE for that number at the trunk — and the
//!    attempt is connected to the agent (attempts export, agents list; after the agent's hangup,
//!    the final attempt and the contact record name the agent).
//! 2. The next `GET` does not give the dialled card again (another lead's card); on a second
//!    card left to its countdown, the agent's late Dial is refused (409 `not_held`) and places no
//!    second call, and the next `GET` is not that card either (another card, or 204).
//! 3. A card the agent skips before its countdown ends is never dialled.
//!
//! The second card is taken while the agent is in after-contact work: its countdown runs out,
//! but nothing is dialled until the agent's disposition makes them Available (a customer
//! answering with no free agent would be an abandoned call); then it is dialled once.
//!
//! INVITEs are counted by Call-ID in the UAS's `-trace_msg` file, so retransmissions and
//! re-INVITEs of one call count once.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Appliance, api_key, free_port, run};
use serde_json::{Value, json};

/// Leads in Chicago (312): dialable now under an all-day calling window.
const LEADS: &str = "First Name,Last Name,Phone,Zip\n\
    Ada,Lovelace,(312) 555-0101,60601\n\
    Grace,Hopper,(312) 555-0102,60601\n\
    Alan,Turing,(312) 555-0103,60601\n\
    Edsger,Dijkstra,(312) 555-0104,60601\n";

fn agent_key(dir: &Path, name: &str) -> String {
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

/// A sipp UAS (built-in `uas` scenario) on `port`: answers every INVITE and waits for the BYE;
/// its messages go to `dir/NAME.msg`.
fn uas(dir: &Path, name: &str, port: u16, calls: u32) -> Child {
    Command::new("sipp")
        .current_dir(dir)
        .args(["-sn", "uas", "-i", "127.0.0.1", "-mi", "127.0.0.1"])
        .args(["-p", &port.to_string(), "-mp", &free_port().to_string()])
        .args(["-m", &calls.to_string(), "-nostdin", "-timeout", "120s"])
        .args(["-trace_err", "-error_file", &format!("{name}.err")])
        .args(["-trace_msg", "-message_file", &format!("{name}.msg")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("sipp")
}

/// Kills a sipp this test started (by its own handle).
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The distinct Call-IDs of the INVITEs for `e164` (with or without its `+`) in a sipp message
/// file.
fn invites_for(dir: &Path, name: &str, e164: &str) -> Vec<String> {
    let text = std::fs::read_to_string(dir.join(format!("{name}.msg"))).unwrap_or_default();
    let digits = e164.trim_start_matches('+');
    let mut ids: Vec<String> = Vec::new();
    let mut in_invite = false;
    for line in text.lines() {
        let line = line.trim();
        if let Some(uri) = line.strip_prefix("INVITE sip:") {
            in_invite = uri
                .trim_start_matches('+')
                .starts_with(&format!("{digits}@"));
            continue;
        }
        if line.starts_with("SIP/2.0 ") || (line.contains(" sip:") && line.ends_with("SIP/2.0")) {
            in_invite = false;
            continue;
        }
        if in_invite {
            let lower = line.to_ascii_lowercase();
            if let Some(v) = lower
                .strip_prefix("call-id:")
                .or_else(|| lower.strip_prefix("i:"))
            {
                let id = line[line.len() - v.len()..].trim().to_owned();
                if !ids.contains(&id) {
                    ids.push(id);
                }
                in_invite = false;
            }
        }
    }
    ids
}

struct Api {
    c: reqwest::Client,
    base: String,
}

impl Api {
    async fn get(&self, key: &str, path: &str) -> (u16, String) {
        let resp = self
            .c
            .get(format!("{}{path}", self.base))
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    }

    async fn post(&self, key: &str, path: &str, body: Value) -> (u16, String) {
        let resp = self
            .c
            .post(format!("{}{path}", self.base))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    }

    /// The campaign's attempts (attempts export), each a header → value map.
    async fn attempts(&self, key: &str, campaign: i64) -> Vec<Vec<(String, String)>> {
        let (st, csv) = self
            .get(key, &format!("/api/v1/campaigns/{campaign}/attempts.csv"))
            .await;
        assert_eq!(st, 200, "{csv}");
        let mut r = csv::Reader::from_reader(csv.as_bytes());
        let header: Vec<String> = r.headers().unwrap().iter().map(str::to_owned).collect();
        r.records()
            .map(|rec| {
                header
                    .iter()
                    .cloned()
                    .zip(rec.unwrap().iter().map(str::to_owned))
                    .collect()
            })
            .collect()
    }
}

fn field<'a>(row: &'a [(String, String)], k: &str) -> &'a str {
    row.iter()
        .find(|(h, _)| h == k)
        .map(|(_, v)| v.as_str())
        .unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_preview_card_left_alone_is_dialled_once_by_the_appliance_and_a_skipped_one_never() {
    if !foundation::testing::require_tool("sipp", "sip-tester") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::write(d.join("leads.csv"), LEADS).unwrap();
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
    let (admin, manager) = (api_key(d, "admin"), api_key(d, "campaign-manager"));
    let agent = agent_key(d, "agent1");

    // The customers behind the trunk, and the agent's phone.
    let trunk_port = free_port();
    let _customers = Killed(uas(d, "customers", trunk_port, 10));
    let phone_port = free_port();
    let _phone = Killed(uas(d, "phone", phone_port, 1));

    let app = Appliance::start(d, &[("DIALBRIDGE_RTP_INACTIVITY_TIMEOUT_S", "0")]);
    let api = Api {
        c: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
        base: app.http.clone(),
    };
    let cfg = json!({
        "lists": [{"list_id": list_id, "weight": 1}],
        "mode": "preview",
        "purpose": "informational",
        "caller_id": "+13125550000",
        "queue": "default",
        "trunk": {"uri": format!("sip:127.0.0.1:{trunk_port}"), "cps": 5, "max_concurrent": 5},
        "amd": "pass_to_agent",
        "compliance": {"window": {"start": "00:00", "end": "23:59"}},
        "safe_harbor": {"seller": "Acme", "callback_number": "+13125550001", "opt_out_key": "9", "prompt": "safe-harbor.wav"},
        "preview_auto_dial_s": 1
    });
    let (st, body) = api
        .post(
            &manager,
            "/api/v1/campaigns",
            json!({"name": "preview-auto", "config": cfg}),
        )
        .await;
    assert_eq!(st, 201, "{body}");
    let campaign = serde_json::from_str::<Value>(&body).unwrap()["id"]
        .as_i64()
        .unwrap();
    let (st, body) = api
        .post(
            &manager,
            &format!("/api/v1/campaigns/{campaign}/actions"),
            json!({"action": "start"}),
        )
        .await;
    assert_eq!(st, 200, "{body}");

    // The agent logs in with a nailed-up phone; its leg comes up.
    let (st, body) = api
        .post(
            &agent,
            "/api/v1/agent/login",
            json!({"endpoint": {"kind": "uri", "value": format!("sip:agent@127.0.0.1:{phone_port}")},
                   "mode": "nailed_up"}),
        )
        .await;
    assert_eq!(st, 204, "login: {body}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, agents) = api.get(&admin, "/api/v1/agents").await;
        let agents: Value = serde_json::from_str(&agents).unwrap_or(Value::Null);
        let me = agents
            .as_array()
            .into_iter()
            .flatten()
            .find(|a| a["id"] == "agent1")
            .cloned();
        if me.as_ref().is_some_and(|a| a["leg_up"] == true) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "agent1's nailed-up leg did not come up: {me:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let preview = format!("/api/v1/agent/preview?campaign={campaign}");

    // 1. A card the agent leaves alone is dialled by the appliance at the end of its countdown,
    // once, and connected to the agent.
    let a = take_card(&api, &agent, &preview).await;
    let (a_contact, a_call) =
        wait_auto_dialled(&api, d, &app, &admin, &manager, campaign, &a).await;

    // 2a. The next GET drops the card the countdown dialled: it gives another lead (whose own
    // countdown starts now, so it is skipped at once: 3.), not the same card again.
    let (st, body) = api.get(&agent, &preview).await;
    assert_eq!(st, 200, "the next card: {body}");
    let b: Value = serde_json::from_str(&body).unwrap();
    assert_ne!(
        b["lead"]["lead_id"], a["lead"]["lead_id"],
        "the card the countdown dialled came back: {b}"
    );
    // 3. A card skipped before its countdown ends is never dialled.
    let (st, body) = api
        .post(&agent, "/api/v1/agent/preview/skip", json!({}))
        .await;
    assert_eq!(
        st, 204,
        "skipping the second card within its 1 s countdown: {body}"
    );
    assert_eq!(b["auto_dial_s"], 1, "{b}");
    assert_ne!(b["phone"]["e164"], a["phone"]["e164"], "{b}");
    // No card held now: a Dial is refused (404) and places nothing.
    let (st, body) = api
        .post(&agent, "/api/v1/agent/preview/dial", json!({}))
        .await;
    assert!(st == 404 || st == 409, "Dial without a card: {st} {body}");

    // The agent hangs up: the attempt ends connected with agent1, and so does the contact record.
    hang_up(
        &api, &admin, &agent, &manager, campaign, &a, &a_contact, &a_call,
    )
    .await;

    // 2b. Another card, taken while agent1 is in after-contact work (10 s) and left alone: its
    // countdown (1 s) runs out, but the appliance does not dial into after-contact work (the
    // customer would answer with no agent: an abandoned call); it dials once agent1 is Available.
    // The agent's late Dial on that same card is refused (409 not_held) and places no second
    // call; the next GET is not that card.
    let c = take_card(&api, &agent, &preview).await;
    assert_ne!(c["lead"]["lead_id"], a["lead"]["lead_id"], "{c}");
    assert_ne!(
        c["lead"]["lead_id"], b["lead"]["lead_id"],
        "the skipped card came back at once: {c}"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let me = agent1(&api, &admin).await;
    let c_number = c["phone"]["e164"].as_str().unwrap();
    assert!(
        me.as_ref()
            .is_some_and(|m| m["state"].get("AfterContactWork").is_some()),
        "agent1 left after-contact work before the check: {me:?}"
    );
    assert_eq!(
        invites_for(d, "customers", c_number),
        Vec::<String>::new(),
        "the countdown dialled while agent1 was in after-contact work"
    );
    dispose(&api, &admin, &agent, &a_call).await;
    let (c_contact, c_call) =
        wait_auto_dialled(&api, d, &app, &admin, &manager, campaign, &c).await;
    let (st, body) = api
        .post(&agent, "/api/v1/agent/preview/dial", json!({}))
        .await;
    assert!(
        st == 404 || st == 409,
        "Dial after the countdown dialled the card: {st} {body}"
    );
    eprintln!("the late Dial: {st} {body}");
    let (st, body) = api.get(&agent, &preview).await;
    match st {
        204 => {}
        200 => {
            let next: Value = serde_json::from_str(&body).unwrap();
            for old in [&a, &b, &c] {
                assert_ne!(next["lead"]["lead_id"], old["lead"]["lead_id"], "{next}");
            }
            let (st, body) = api
                .post(&agent, "/api/v1/agent/preview/skip", json!({}))
                .await;
            assert_eq!(st, 204, "skipping the last card: {body}");
        }
        other => panic!("the card after the second dialled one: {other} {body}"),
    }

    // Well past every countdown: one call for each dialled lead, none for the skipped one.
    tokio::time::sleep(Duration::from_secs(4)).await;
    for (card, n) in [(&a, 1), (&b, 0), (&c, 1)] {
        let number = card["phone"]["e164"].as_str().unwrap();
        let calls = invites_for(d, "customers", number);
        assert_eq!(
            calls.len(),
            n,
            "calls for {number}: {calls:?}\n{}",
            std::fs::read_to_string(d.join("customers.msg")).unwrap_or_default()
        );
    }
    let rows = api.attempts(&manager, campaign).await;
    let numbers: Vec<&str> = rows.iter().map(|r| field(r, "number")).collect();
    assert_eq!(
        numbers,
        [
            a["phone"]["e164"].as_str().unwrap(),
            c["phone"]["e164"].as_str().unwrap()
        ],
        "the attempts: {rows:?}"
    );
    hang_up(
        &api, &admin, &agent, &manager, campaign, &c, &c_contact, &c_call,
    )
    .await;
    dispose(&api, &admin, &agent, &c_call).await;
}

/// `GET /api/v1/agent/preview`: a card of the list, with the 1 s countdown.
async fn take_card(api: &Api, agent: &str, preview: &str) -> Value {
    let (st, body) = api.get(agent, preview).await;
    assert_eq!(st, 200, "a card: {body}");
    let card: Value = serde_json::from_str(&body).unwrap();
    assert!(card["lead"]["lead_id"].is_i64(), "{card}");
    assert!(
        card["phone"]["e164"]
            .as_str()
            .is_some_and(|n| n.starts_with("+1312555010")),
        "a lead of the list: {card}"
    );
    assert_eq!(card["auto_dial_s"], 1, "{card}");
    card
}

/// Waits for the countdown to dial `card`: an INVITE for its number at the trunk, its attempt
/// connected, agent1 on the call. Gives the attempt's contact id and agent1's call id.
async fn wait_auto_dialled(
    api: &Api,
    d: &Path,
    app: &Appliance,
    admin: &str,
    manager: &str,
    campaign: i64,
    card: &Value,
) -> (String, String) {
    let number = card["phone"]["e164"].as_str().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while invites_for(d, "customers", number).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the countdown did not dial {number}; the trunk saw:\n{}\nappliance log:\n{}",
            std::fs::read_to_string(d.join("customers.msg")).unwrap_or_default(),
            app.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let attempt = loop {
        let rows = api.attempts(manager, campaign).await;
        let mine: Vec<_> = rows
            .iter()
            .filter(|r| field(r, "number") == number)
            .collect();
        assert!(mine.len() <= 1, "one attempt for {number}: {rows:?}");
        if let Some(r) = mine.first()
            && field(r, "state") == "connected"
            && !field(r, "bridged_at").is_empty()
        {
            break (*r).clone();
        }
        assert!(
            Instant::now() < deadline,
            "the auto-dialled attempt for {number} was not connected: {rows:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    eprintln!("the auto-dialled attempt: {attempt:?}");
    assert_eq!(
        field(&attempt, "lead_id"),
        card["lead"]["lead_id"].to_string()
    );
    let contact = field(&attempt, "contact_id").to_owned();
    // agent1 is on that call (the agents list names it by its call id, which the agent's hangup
    // takes).
    let deadline = Instant::now() + Duration::from_secs(10);
    let on_call = loop {
        let me = agent1(api, admin).await;
        if let Some(c) = me
            .as_ref()
            .filter(|a| a["state"]["OnContact"].is_string())
            .and_then(|a| a["contact"].as_str())
        {
            break c.to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "agent1 is not on the auto-dialled call {contact}: {me:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    eprintln!("agent1 is on {on_call} (attempt {contact})");
    (contact, on_call)
}

/// agent1 in the supervisors' agent list.
async fn agent1(api: &Api, admin: &str) -> Option<Value> {
    let (_, agents) = api.get(admin, "/api/v1/agents").await;
    let agents: Value = serde_json::from_str(&agents).unwrap_or(Value::Null);
    agents
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["id"] == "agent1")
        .cloned()
}

/// agent1 hangs up `call`: the attempt ends connected with agent1, the contact record names
/// agent1, and agent1 is off the call (in after-contact work until [`dispose`]).
#[allow(clippy::too_many_arguments)]
async fn hang_up(
    api: &Api,
    admin: &str,
    agent: &str,
    manager: &str,
    campaign: i64,
    card: &Value,
    contact: &str,
    call: &str,
) {
    let (st, body) = api
        .post(
            agent,
            &format!("/api/v1/agent/contacts/{call}/hangup"),
            json!({}),
        )
        .await;
    assert_eq!(st, 204, "hangup: {body}");
    let deadline = Instant::now() + Duration::from_secs(20);
    let row = loop {
        let rows = api.attempts(manager, campaign).await;
        if let Some(r) = rows.iter().find(|r| field(r, "contact_id") == contact)
            && field(r, "state") == "final"
        {
            break r.clone();
        }
        assert!(
            Instant::now() < deadline,
            "the attempt {contact} did not end: {rows:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    eprintln!("the final attempt: {row:?}");
    assert_eq!(field(&row, "outcome"), "connected", "{row:?}");
    assert_eq!(field(&row, "agent"), "agent1", "{row:?}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (st, body) = api.get(admin, "/api/v1/contacts?limit=1000").await;
        assert_eq!(st, 200, "{body}");
        let list: Value = serde_json::from_str(&body).unwrap();
        let rec = list
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["contact_id"] == contact || c["contact_id"] == call)
            .cloned();
        if let Some(rec) = &rec
            && !rec["ended_at"].is_null()
        {
            assert_eq!(rec["agent"], "agent1", "the contact record: {rec}");
            // The agent's side of the call keeps the attempt's id and number as attributes.
            assert_eq!(
                rec["attributes"]["contact_id"], contact,
                "the contact record: {rec}"
            );
            assert_eq!(
                rec["attributes"]["number"], card["phone"]["e164"],
                "the contact record: {rec}"
            );
            // The customer is the number called, and the record names its campaign (so the
            // contacts search by number and by campaign finds it).
            assert_eq!(
                rec["customer_number"], card["phone"]["e164"],
                "the contact record: {rec}"
            );
            assert_eq!(
                rec["attributes"]["campaign_id"],
                campaign.to_string(),
                "the contact record: {rec}"
            );
            let (st, found) = api
                .get(admin, &format!("/api/v1/contacts?campaign={campaign}"))
                .await;
            assert_eq!(st, 200, "{found}");
            assert!(
                found.contains(&format!(
                    "\"contact_id\":\"{}\"",
                    rec["contact_id"].as_str().unwrap()
                )),
                "the campaign's contacts lack {}: {found}",
                rec["contact_id"]
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no ended contact record {contact}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let me = agent1(api, admin).await;
        if me
            .as_ref()
            .is_some_and(|a| a["contact"].is_null() && a["leg_up"] == true)
        {
            eprintln!("agent1 after the call: {me:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "agent1 is not off the call: {me:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// agent1's disposition of `call` ends its after-contact work: agent1 is Available again.
async fn dispose(api: &Api, admin: &str, agent: &str, call: &str) {
    let (st, body) = api
        .post(
            agent,
            &format!("/api/v1/agent/contacts/{call}/disposition"),
            json!({"code": "sale"}),
        )
        .await;
    assert_eq!(st, 204, "disposition: {body}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let me = agent1(api, admin).await;
        if me.as_ref().is_some_and(|a| a["state"] == "Available") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "agent1 is not Available after the disposition: {me:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
