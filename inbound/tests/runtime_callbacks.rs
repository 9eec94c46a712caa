//! Callbacks on real calls: a caller asks for a callback in a flow and hangs up; a second caller
//! queues before the callback is due, yet the callback enters ahead of it (the first caller's
//! place); when an agent (a sipp UAS phone) becomes available the callback is dialled
//! first (the customer's phone is a sipp UAS behind the callback trunk) and connected, then the
//! second caller gets the agent. A busy customer is retried, then the callback closes with its
//! final outcome. After a restart a pending callback is reloaded and dialled once, and one a
//! crash left mid-dial is closed as interrupted, never dialled again.

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use foundation::Db;
use foundation::clock::SystemClock;
use foundation::lifecycle::Lifecycle;
use inbound::runtime::callbacks::CallbackView;
use inbound::runtime::{AgentEndpoint, AgentMode, Login, Runtime, RuntimeConfig};
use support::*;
use telephony::control::{Calls, ControlConfig};
use telephony::sip::call::{Transport, Trunk};
use telephony::sip::listener::{self, SipListeners, SipOptions};

const CALLBACK_DID: &str = "+15550005000";
/// The number sipp callers send in From (`caller_xml`), dialled back.
const CUSTOMER: &str = "+13125550100";

/// Sets the caller's own number as callback number and asks for a callback in sales after
/// `delay_s` (2 attempts, 2 s apart).
fn callback_flow(delay_s: u32) -> String {
    CALLBACK_FLOW.replace("DELAY", &delay_s.to_string())
}

const CALLBACK_FLOW: &str = r#"{"Version": "2019-10-30", "StartAction": "num", "Actions": [
  {"Identifier": "num", "Type": "UpdateContactCallbackNumber", "Parameters": {"CallbackNumber": "$.CustomerEndpoint.Address"},
   "Transitions": {"NextAction": "cb", "Errors": [{"NextAction": "bye", "ErrorType": "InvalidCallbackNumber"}]}},
  {"Identifier": "cb", "Type": "CreateCallbackContact",
   "Parameters": {"QueueId": "sales", "InitialCallDelaySeconds": "DELAY", "MaximumConnectionAttempts": "2", "RetryDelaySeconds": "2"},
   "Transitions": {"NextAction": "bye", "Errors": [{"NextAction": "bye", "ErrorType": "NoMatchingError"}]}},
  {"Identifier": "bye", "Type": "DisconnectParticipant", "Parameters": {}, "Transitions": {}}]}"#;

/// A caller that stays until the appliance hangs up.
const CALLER_UNTIL_BYE: &str = r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="caller until bye">
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
      o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000

    ]]></send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200"/>
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
  <recv request="BYE" timeout="20000"/>
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
"#;

/// A customer's phone that is busy.
const BUSY_PHONE: &str = r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="busy phone">
  <recv request="INVITE"/>
  <send><![CDATA[
      SIP/2.0 486 Busy Here
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]></send>
  <recv request="ACK"/>
</scenario>
"#;

fn trunk(port: u16) -> Trunk {
    Trunk {
        addr: format!("127.0.0.1:{port}").parse().unwrap(),
        transport: Transport::Udp,
        credentials: None,
    }
}

/// A sipp phone answering `m` calls with `scenario`, writing the messages to `msgs`.
fn phone(dir: &Path, scenario: &str, port: u16, m: u32, msgs: &str) -> tokio::process::Child {
    sipp(
        dir,
        &[
            "-sf".into(),
            scenario.into(),
            "-p".into(),
            port.to_string(),
            "-mp".into(),
            free_port().to_string(),
            "-m".into(),
            m.to_string(),
            "-timeout".into(),
            "90s".into(),
            "-trace_msg".into(),
            "-message_file".into(),
            msgs.into(),
        ],
    )
}

async fn call_in(sut: &Sut, dir: &Path, scenario: &str, did: &str) -> tokio::process::Child {
    let port = sut.sip.udp_addr.port();
    sipp(dir, &caller_args(port, scenario, did, 1, 1, 1))
}

async fn callbacks(rt: &Runtime) -> Vec<CallbackView> {
    rt.callbacks(None, 100).await.unwrap()
}

/// The INVITEs a sipp phone received (request lines, one per Call-ID: retransmissions once).
fn invites(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    for (i, l) in lines.iter().enumerate() {
        if !l.starts_with("INVITE ") {
            continue;
        }
        let call_id = lines[i..]
            .iter()
            .find_map(|x| x.strip_prefix("Call-ID:"))
            .map(str::trim)
            .unwrap_or_default();
        if seen.insert(call_id.to_owned()) {
            out.push((*l).to_owned());
        }
    }
    out
}

/// The appliance on the SQLite file in `dir` (created and given the flows on the first start).
async fn start_on(
    dir: &Path,
    rtp_base: u16,
    first: bool,
    tweak: impl FnOnce(&mut RuntimeConfig),
) -> (SipListeners, Db, Runtime, Lifecycle) {
    let db = Db::connect(&format!("sqlite://{}/inbound.db", dir.display()), 8)
        .await
        .unwrap();
    if first {
        db.migrate().await.unwrap();
        inbound::store::import_flow(&db, "main", MENU, 1_000, "test")
            .await
            .unwrap();
        inbound::store::assign_number(&db, DID, "main", 1_000, "test")
            .await
            .unwrap();
        inbound::store::import_flow(&db, "callback", &callback_flow(1), 1_000, "test")
            .await
            .unwrap();
        inbound::store::assign_number(&db, CALLBACK_DID, "callback", 1_000, "test")
            .await
            .unwrap();
    }
    let config = telephony::Config {
        udp: "127.0.0.1:0".parse().unwrap(),
        tcp: "127.0.0.1:0".parse().unwrap(),
        advertised_address: Some("127.0.0.1".into()),
        rtp_ports: (rtp_base, rtp_base + 999),
        max_message_bytes: 8192,
    };
    let lifecycle = Lifecycle::new();
    let options = SipOptions {
        auto_answer: None,
        ..SipOptions::default()
    };
    let sip = listener::start_with(&config, options, lifecycle.clone())
        .await
        .expect("SIP starts");
    let cc = ControlConfig {
        media_ip: "127.0.0.1".parse().unwrap(),
        inactivity_timeout: None,
        inband_dtmf: true,
        jitter_depth: 3,
    };
    let (calls, incoming) = Calls::start(sip.handle.clone(), cc);
    let mut cfg = RuntimeConfig {
        acd: acd_config(),
        hours: always_open(),
        prompt_dir: dir.join("prompts"),
        tts_cache_dir: std::env::temp_dir().join("dialbridge-inbound-test-tts"),
        recording_dir: dir.join("recordings"),
        ..RuntimeConfig::default()
    };
    tweak(&mut cfg);
    let runtime = Runtime::start(db.clone(), Arc::new(SystemClock), calls, incoming, cfg)
        .await
        .unwrap();
    (sip, db, runtime, lifecycle)
}

async fn callback_flow_on(sut: &Sut, delay_s: u32) {
    inbound::store::import_flow(&sut.db, "callback", &callback_flow(delay_s), 1_000, "test")
        .await
        .unwrap();
    inbound::store::assign_number(&sut.db, CALLBACK_DID, "callback", 1_000, "test")
        .await
        .unwrap();
}

async fn login(rt: &Runtime, id: &str, port: u16, mode: AgentMode) {
    rt.login(Login {
        agent_id: id.into(),
        endpoint: AgentEndpoint::Uri(format!("sip:{id}@127.0.0.1:{port}")),
        mode,
        routing_profile: "all".into(),
        skills: Default::default(),
    })
    .await
    .unwrap();
}

/// The contact id of the first queued contact other than `not`.
async fn second_queued(db: &Db, not: &str) -> String {
    let until = tokio::time::Instant::now() + Duration::from_secs(30);
    while tokio::time::Instant::now() < until {
        let rows = contacts(db).await;
        if let Some(r) = rows
            .iter()
            .find(|r| r.contact.contact_id != not && r.stages.iter().any(|s| s.stage == "queued"))
        {
            return r.contact.contact_id.clone();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for the second caller to queue");
}

async fn has_stage(db: &Db, contact: &str, stage: &str) -> bool {
    inbound::store::load_contact(db, contact)
        .await
        .is_ok_and(|r| r.stages.iter().any(|s| s.stage == stage))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_keeps_the_callers_place_and_is_dialled_first() {
    if !foundation::testing::require_tool("sipp", "sip-tester") {
        return;
    }
    let (customer_port, agent_port) = (free_port(), free_port());
    let sut = start(33_000, |c| {
        c.callback_trunk = Some(trunk(customer_port));
        let sales = c.acd.queues.iter_mut().find(|q| q.name == "sales").unwrap();
        sales.callback_caller_id = Some("+15550001000".into());
    })
    .await;
    // "Call me back when it's my turn", entering the queue 12 s later: long enough for a second
    // caller to queue first.
    callback_flow_on(&sut, 12).await;
    let dir = sut.dir.path().to_path_buf();
    write(&dir, "until_bye.xml", CALLER_UNTIL_BYE);
    write(
        &dir,
        "menu_caller.xml",
        &caller_xml(Dtmf::Pt96("1"), 1500, 60_000),
    );
    write(&dir, "phone.xml", &agent_xml(60_000));

    // 1. The first caller asks for a callback and is hung up on.
    let a = call_in(&sut, &dir, "until_bye.xml", CALLBACK_DID).await;
    let out = wait_sipp(a, Duration::from_secs(30)).await;
    assert_eq!(out.rc, 0, "first caller: {}", out.output);
    let cbs = callbacks(&sut.runtime).await;
    assert_eq!(cbs.len(), 1, "{cbs:?}");
    let cb = &cbs[0];
    assert_eq!(
        (cb.status.as_str(), cb.number.as_str(), cb.queue.as_str()),
        ("pending", CUSTOMER, "sales")
    );
    let first = inbound::store::load_contact(&sut.db, &cb.contact_id)
        .await
        .unwrap();
    assert_eq!(
        cb.waiting_since_ms, first.started_at_ms,
        "an immediate callback waits since the caller arrived"
    );
    assert!(
        first.stages.iter().any(|s| s.stage == "callback_scheduled"),
        "{:?}",
        first.stages
    );
    let cb_contact = format!("callback-{}", cb.id);

    // 2. A second caller queues in sales before the callback enters the queue...
    let b = call_in(&sut, &dir, "menu_caller.xml", DID).await;
    let b_contact = second_queued(&sut.db, &cb.contact_id).await;
    let pos = |c: &str| {
        let rt = sut.runtime.clone();
        let c = c.to_owned();
        async move { rt.queue_position(&c).await.unwrap().map(|e| e.position) }
    };
    assert_eq!(pos(&b_contact).await, Some(1));
    assert_eq!(pos(&cb_contact).await, None, "the callback is not due yet");
    // ...and the callback, entering later, goes ahead of it: it keeps the first caller's place.
    eventually("the callback is queued", Duration::from_secs(20), || {
        let rt = sut.runtime.clone();
        let c = cb_contact.clone();
        async move { rt.queue_position(&c).await.unwrap().is_some() }
    })
    .await;
    assert_eq!(
        pos(&cb_contact).await,
        Some(1),
        "the callback keeps its place"
    );
    assert_eq!(pos(&b_contact).await, Some(2));

    // 3. An agent comes: the callback is dialled first and connected.
    let customer = phone(&dir, "phone.xml", customer_port, 1, "customer_msgs.log");
    let agent = phone(&dir, "phone.xml", agent_port, 2, "agent_msgs.log");
    tokio::time::sleep(Duration::from_millis(300)).await;
    login(&sut.runtime, "alice", agent_port, AgentMode::RingPerOffer).await;
    eventually("the callback is connected", Duration::from_secs(30), || {
        has_stage(&sut.db, &cb_contact, "connected")
    })
    .await;
    let cbs = callbacks(&sut.runtime).await;
    assert_eq!(
        (
            cbs[0].status.as_str(),
            cbs[0].outcome.as_deref(),
            cbs[0].attempts_made,
            cbs[0].callback_contact.as_deref()
        ),
        ("done", Some("done"), 1, Some(cb_contact.as_str()))
    );
    assert_eq!(
        pos(&b_contact).await,
        Some(1),
        "the second caller still waits"
    );
    assert!(!has_stage(&sut.db, &b_contact, "offered").await);
    let cust_invites = invites(&dir.join("customer_msgs.log"));
    assert_eq!(cust_invites.len(), 1, "{cust_invites:?}");
    assert!(cust_invites[0].contains(CUSTOMER), "{cust_invites:?}");
    let msgs = std::fs::read_to_string(dir.join("customer_msgs.log")).unwrap();
    assert!(
        msgs.lines()
            .any(|l| l.starts_with("From:") && l.contains("sip:+15550001000@")),
        "the customer sees the queue's caller id"
    );

    // 4. The agent ends the callback; the second caller is next.
    sut.runtime.end_contact(&cb_contact).await.unwrap();
    eventually(
        "the second caller is connected",
        Duration::from_secs(30),
        || has_stage(&sut.db, &b_contact, "connected"),
    )
    .await;
    let rec = inbound::store::load_contact(&sut.db, &cb_contact)
        .await
        .unwrap();
    assert!(rec.ended_at_ms.is_some(), "the callback's record is closed");
    assert_eq!(
        rec.attributes.get("callback_of"),
        Some(&cb.contact_id),
        "{:?}",
        rec.attributes
    );
    let out = wait_sipp(customer, Duration::from_secs(30)).await;
    assert_eq!(out.rc, 0, "customer phone: {}", out.output);
    sut.runtime.end_contact(&b_contact).await.unwrap();
    let _ = wait_sipp(b, Duration::from_secs(30)).await;
    let out = wait_sipp(agent, Duration::from_secs(30)).await;
    assert_eq!(out.rc, 0, "agent phone: {}", out.output);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_customer_is_retried_then_the_callback_closes() {
    if !foundation::testing::require_tool("sipp", "sip-tester") {
        return;
    }
    let (customer_port, agent_port) = (free_port(), free_port());
    let sut = start(34_000, |c| {
        c.callback_trunk = Some(trunk(customer_port));
        let sales = c.acd.queues.iter_mut().find(|q| q.name == "sales").unwrap();
        sales.callback_ring_s = 5;
    })
    .await;
    callback_flow_on(&sut, 1).await;
    let dir = sut.dir.path().to_path_buf();
    write(&dir, "until_bye.xml", CALLER_UNTIL_BYE);
    write(&dir, "busy.xml", BUSY_PHONE);
    write(&dir, "phone.xml", &agent_xml(60_000));
    let customer = phone(&dir, "busy.xml", customer_port, 2, "customer_msgs.log");
    let agent = phone(&dir, "phone.xml", agent_port, 1, "agent_msgs.log");
    tokio::time::sleep(Duration::from_millis(300)).await;
    login(&sut.runtime, "bob", agent_port, AgentMode::NailedUp).await;

    let a = call_in(&sut, &dir, "until_bye.xml", CALLBACK_DID).await;
    let out = wait_sipp(a, Duration::from_secs(30)).await;
    assert_eq!(out.rc, 0, "caller: {}", out.output);
    eventually("the callback closes", Duration::from_secs(40), || {
        let rt = sut.runtime.clone();
        async move {
            callbacks(&rt)
                .await
                .first()
                .is_some_and(|c| c.status == "failed")
        }
    })
    .await;
    let cb = &callbacks(&sut.runtime).await[0];
    assert_eq!(
        (
            cb.outcome.as_deref(),
            cb.attempts_made,
            cb.attempts_left,
            cb.callback_contact.as_deref()
        ),
        (Some("busy"), 2, 0, None),
        "{cb:?}"
    );
    assert!(cb.ended_at_ms.is_some());
    let out = wait_sipp(customer, Duration::from_secs(20)).await;
    assert_eq!(out.rc, 0, "busy phone: {}", out.output);
    let cust_invites = invites(&dir.join("customer_msgs.log"));
    assert_eq!(cust_invites.len(), 2, "two attempts: {cust_invites:?}");
    // The agent was only reserved: available again, nothing handled.
    let view = sut.runtime.agent_snapshot(None).await.unwrap();
    assert_eq!(view[0].state, inbound::acd::AgentState::Available);
    assert_eq!(view[0].contacts_handled, 0);
    let stats = sut.runtime.queue_stats("sales").await.unwrap();
    assert_eq!((stats.counters.answered, stats.counters.abandoned), (0, 0));
    sut.runtime.logout("bob").await.unwrap();
    let out = wait_sipp(agent, Duration::from_secs(20)).await;
    assert_eq!(out.rc, 0, "agent phone: {}", out.output);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_reloads_pending_callbacks_and_never_redials_an_interrupted_one() {
    if !foundation::testing::require_tool("sipp", "sip-tester") {
        return;
    }
    let (customer_port, agent_port) = (free_port(), free_port());
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    write(&dir, "until_bye.xml", CALLER_UNTIL_BYE);
    write(&dir, "phone.xml", &agent_xml(60_000));
    // The first run: a callback is asked for while no agent is there.
    let (sip1, db1, rt1, _l1) = start_on(&dir, 35_000, true, |c| {
        c.callback_trunk = Some(trunk(customer_port))
    })
    .await;
    let a = sipp(
        &dir,
        &caller_args(sip1.udp_addr.port(), "until_bye.xml", CALLBACK_DID, 1, 1, 1),
    );
    let out = wait_sipp(a, Duration::from_secs(30)).await;
    assert_eq!(out.rc, 0, "caller: {}", out.output);
    assert_eq!(callbacks(&rt1).await[0].status, "pending");
    // A callback the "crashed" run was dialling.
    let mut tx = db1.begin_write().await.unwrap();
    sqlx::query(
        "INSERT INTO inbound_callbacks (contact_id, number, queue, waiting_since, due_at, attempts_left, retry_delay_s, status, created_at, updated_at, node, attempts_made) \
         VALUES ('c-crashed', '+15550009999', 'sales', 1000, 1000, 1, 60, 'dialing', 1000, 1000, 'dialbridge', 1)",
    )
    .execute(tx.conn())
    .await
    .unwrap();
    tx.commit().await.unwrap();
    drop(rt1);

    // The restart: the pending one is loaded again and dialled once an agent is there.
    let (_sip2, _db2, rt2, _l2) = start_on(&dir, 36_000, false, |c| {
        c.callback_trunk = Some(trunk(customer_port))
    })
    .await;
    let all = callbacks(&rt2).await;
    let crashed = all.iter().find(|c| c.contact_id == "c-crashed").unwrap();
    assert_eq!(
        (crashed.status.as_str(), crashed.outcome.as_deref()),
        ("interrupted", Some("interrupted"))
    );
    let customer = phone(&dir, "phone.xml", customer_port, 1, "customer_msgs.log");
    let agent = phone(&dir, "phone.xml", agent_port, 1, "agent_msgs.log");
    tokio::time::sleep(Duration::from_millis(300)).await;
    login(&rt2, "carol", agent_port, AgentMode::NailedUp).await;
    eventually(
        "the reloaded callback is done",
        Duration::from_secs(30),
        || {
            let rt = rt2.clone();
            async move {
                callbacks(&rt)
                    .await
                    .iter()
                    .any(|c| c.number == CUSTOMER && c.status == "done")
            }
        },
    )
    .await;
    let done = callbacks(&rt2)
        .await
        .into_iter()
        .find(|c| c.number == CUSTOMER)
        .unwrap();
    assert_eq!(done.attempts_made, 1, "{done:?}");
    let contact = done.callback_contact.clone().unwrap();
    rt2.end_contact(&contact).await.unwrap();
    let out = wait_sipp(customer, Duration::from_secs(30)).await;
    assert_eq!(out.rc, 0, "customer phone: {}", out.output);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let cust_invites = invites(&dir.join("customer_msgs.log"));
    assert_eq!(cust_invites.len(), 1, "dialled once: {cust_invites:?}");
    assert!(cust_invites[0].contains(CUSTOMER));
    assert_eq!(
        callbacks(&rt2)
            .await
            .iter()
            .filter(|c| c.status == "pending" || c.status == "dialing")
            .count(),
        0
    );
    assert_eq!(
        rt2.callbacks(Some("interrupted"), 10).await.unwrap().len(),
        1,
        "the list filters by state"
    );
    rt2.logout("carol").await.unwrap();
    let _ = wait_sipp(agent, Duration::from_secs(20)).await;
}
