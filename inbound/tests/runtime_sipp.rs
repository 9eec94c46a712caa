//! The inbound runtime on real calls (acceptance of issue #6): sipp callers send RFC 4733 digits
//! (PT 96 from `play_dtmf`, PT 101 from the packaged pcaps) through the hand-written menu flow
//! (TTS prompts, attributes, webhook error branch, hours check, queue transfer) and reach an
//! agent phone (sipp UAS); a nailed-up agent leg takes three contacts on one INVITE; a number
//! without a flow is refused with 404; a call to a `from_legacy` bridge number carries the
//! leased data. Every contact record is checked for its path, stages and timestamps.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use foundation::clock::SystemClock;
use inbound::contact::{ContactRecord, FlowOutcome};
use inbound::runtime::{AgentEndpoint, AgentMode, Login, RuntimeEvent};
use support::*;

fn has_tools() -> bool {
    foundation::testing::require_tool("sipp", "sip-tester")
        && foundation::testing::require_tool("espeak-ng", "espeak-ng")
}

fn stage<'a>(r: &'a ContactRecord, name: &str) -> Option<&'a inbound::contact::Stage> {
    r.stages.iter().find(|s| s.stage == name)
}

/// The common checks of a contact that walked the menu to `queue` and talked with `agent`.
fn assert_walked_to_agent(r: &ContactRecord, queue: &str, agent: &str) {
    let path = r.path_ids();
    for step in ["log", "set-lang", "lookup", "menu", "hours", "to-queue"] {
        assert!(path.contains(&step), "path {path:?} lacks {step}");
    }
    let q_step = if queue == "sales" {
        "q-sales"
    } else {
        "q-support"
    };
    assert!(path.contains(&q_step), "path {path:?}");
    assert_eq!(r.attributes.get("language").map(String::as_str), Some("en"));
    assert_eq!(
        r.attributes.get("caller").map(String::as_str),
        Some("+13125550100")
    );
    assert_eq!(r.contact.system_address, DID);
    assert_eq!(
        r.outcome,
        Some(FlowOutcome::Queued {
            queue: queue.into()
        })
    );
    assert_eq!(r.target_queue.as_deref(), Some(queue));
    let dtmf = stage(r, "dtmf").expect("a dtmf stage");
    assert!(
        dtmf.detail.ends_with("rfc4733"),
        "digits arrive as RFC 4733: {dtmf:?}"
    );
    assert!(
        stage(r, "recording_on").is_some(),
        "the flow turned recording on: {:?}",
        r.stages
    );
    assert_eq!(stage(r, "queued").map(|s| s.detail.as_str()), Some(queue));
    assert_eq!(stage(r, "offered").map(|s| s.detail.as_str()), Some(agent));
    assert_eq!(
        stage(r, "connected").map(|s| s.detail.as_str()),
        Some(agent)
    );
    assert_eq!(stage(r, "ended").map(|s| s.detail.as_str()), Some(agent));
    // Timestamps: path steps and stages in order, all inside the contact's life.
    let end = r.ended_at_ms.expect("the contact is closed");
    assert!(
        r.path.windows(2).all(|w| w[0].at_ms <= w[1].at_ms),
        "{:?}",
        r.path
    );
    assert!(
        r.stages.windows(2).all(|w| w[0].at_ms <= w[1].at_ms),
        "{:?}",
        r.stages
    );
    assert!(
        r.path
            .iter()
            .all(|p| p.at_ms >= r.started_at_ms && p.at_ms <= end)
    );
    assert!(stage(r, "connected").unwrap().at_ms >= stage(r, "queued").unwrap().at_ms);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_callers_walk_the_menu_to_an_agent_with_pt96_and_pt101() {
    if !has_tools() {
        return;
    }
    let sut = start(31000, |cfg| {
        cfg.hold_audio = Some(inbound::interpreter::PromptSpec::Text(
            "Please hold.".into(),
        ))
    })
    .await;
    let dir = sut.dir.path().to_path_buf();
    let sip_port = sut.sip.udp_addr.port();

    // The agent's phone: a sipp UAS answering two calls (ring per offer).
    let agent_port = free_port();
    write(&dir, "agent.xml", &agent_xml(30_000));
    let agent = sipp(
        &dir,
        &[
            "-sf".into(),
            "agent.xml".into(),
            "-p".into(),
            agent_port.to_string(),
            "-mp".into(),
            free_port().to_string(),
            "-m".into(),
            "2".into(),
            "-timeout".into(),
            "90s".into(),
        ],
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut events = sut.runtime.subscribe();
    sut.runtime
        .login(Login {
            agent_id: "alice".into(),
            endpoint: AgentEndpoint::Uri(format!("sip:alice@127.0.0.1:{agent_port}")),
            mode: AgentMode::RingPerOffer,
            routing_profile: "all".into(),
            skills: BTreeMap::new(),
        })
        .await
        .unwrap();

    // Caller 1: '1' (sales) at PT 96; caller 2: '2' (support) at PT 101.
    write(&dir, "c96.xml", &caller_xml(Dtmf::Pt96("1"), 1500, 2500));
    let out = wait_sipp(
        sipp(&dir, &caller_args(sip_port, "c96.xml", DID, 1, 1, 1)),
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(out.rc, 0, "PT 96 caller: {}", out.output);
    write(&dir, "c101.xml", &caller_xml(Dtmf::Pt101('2'), 1500, 2500));
    let out = wait_sipp(
        sipp(&dir, &caller_args(sip_port, "c101.xml", DID, 1, 1, 1)),
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(out.rc, 0, "PT 101 caller: {}", out.output);
    let out = wait_sipp(agent, Duration::from_secs(60)).await;
    assert_eq!(out.rc, 0, "agent phone: {}", out.output);

    eventually("both contacts closed", Duration::from_secs(10), || async {
        let rows = contact_rows(&sut.db).await;
        rows.len() == 2 && rows.iter().all(|r| r.1.is_some())
    })
    .await;
    let recs = contacts(&sut.db).await;
    assert_walked_to_agent(&recs[0], "sales", "alice");
    assert_walked_to_agent(&recs[1], "support", "alice");
    assert!(stage(&recs[0], "dtmf").unwrap().detail.starts_with('1'));
    assert!(stage(&recs[1], "dtmf").unwrap().detail.starts_with('2'));
    let rows = contact_rows(&sut.db).await;
    assert!(
        rows.iter().all(|r| r.2.as_deref() == Some("queued")),
        "{rows:?}"
    );

    // The desktop feed saw both contacts connected to alice.
    let mut connected = Vec::new();
    while let Ok(e) = events.try_recv() {
        if let RuntimeEvent::ContactConnected {
            contact,
            agent,
            attributes,
            ..
        } = e
        {
            assert_eq!(agent, "alice");
            assert_eq!(
                attributes.get("language").map(String::as_str),
                Some("en"),
                "screen pop carries the attributes"
            );
            connected.push(contact);
        }
    }
    assert_eq!(
        connected,
        vec![
            recs[0].contact.contact_id.clone(),
            recs[1].contact.contact_id.clone()
        ]
    );
    let view = sut.runtime.agent_snapshot(Some("sales")).await.unwrap();
    assert_eq!(view.len(), 1);
    assert_eq!(view[0].contacts_handled, 2);
    let stats = sut.runtime.queue_stats("sales").await.unwrap();
    assert_eq!(stats.counters.answered, 1);
    assert_eq!(stats.waiting, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nailed_up_agent_leg_takes_three_contacts_on_one_invite() {
    if !has_tools() {
        return;
    }
    let sut = start(33000, |_| {}).await;
    let dir = sut.dir.path().to_path_buf();
    let sip_port = sut.sip.udp_addr.port();
    let agent_port = free_port();
    write(&dir, "agent.xml", &agent_xml(120_000));
    let agent = sipp(
        &dir,
        &[
            "-sf".into(),
            "agent.xml".into(),
            "-p".into(),
            agent_port.to_string(),
            "-mp".into(),
            free_port().to_string(),
            "-m".into(),
            "1".into(),
            "-timeout".into(),
            "150s".into(),
            "-trace_msg".into(),
            "-message_file".into(),
            "agent_msgs.log".into(),
        ],
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    sut.runtime
        .login(Login {
            agent_id: "bob".into(),
            endpoint: AgentEndpoint::Uri(format!("sip:bob@127.0.0.1:{agent_port}")),
            mode: AgentMode::NailedUp,
            routing_profile: "all".into(),
            skills: BTreeMap::new(),
        })
        .await
        .expect("the nailed-up leg is answered at login");
    let view = sut.runtime.agent_snapshot(None).await.unwrap();
    assert!(view[0].leg_up, "{view:?}");

    // Three callers one after the other, each pressing 1 (sales).
    write(&dir, "c.xml", &caller_xml(Dtmf::Pt96("1"), 1200, 2000));
    let out = wait_sipp(
        sipp(&dir, &caller_args(sip_port, "c.xml", DID, 3, 1, 1)),
        Duration::from_secs(120),
    )
    .await;
    assert_eq!(out.rc, 0, "callers: {}", out.output);
    eventually("three contacts closed", Duration::from_secs(10), || async {
        let rows = contact_rows(&sut.db).await;
        rows.len() == 3 && rows.iter().all(|r| r.1.is_some())
    })
    .await;
    let recs = contacts(&sut.db).await;
    for r in &recs {
        assert_walked_to_agent(r, "sales", "bob");
    }
    let view = sut.runtime.agent_snapshot(Some("sales")).await.unwrap();
    assert_eq!(view[0].contacts_handled, 3, "{view:?}");
    assert!(view[0].leg_up, "the agent's leg stayed up between contacts");

    // Logging out hangs up the leg: the agent's phone saw exactly one INVITE for the shift.
    sut.runtime.logout("bob").await.unwrap();
    let out = wait_sipp(agent, Duration::from_secs(30)).await;
    assert_eq!(out.rc, 0, "agent phone: {}", out.output);
    let msgs = std::fs::read_to_string(dir.join("agent_msgs.log")).unwrap();
    let invites = msgs
        .lines()
        .filter(|l| l.starts_with("INVITE sip:"))
        .count();
    assert_eq!(invites, 1, "the agent was rung once for three contacts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_number_without_a_flow_is_refused_with_404_and_recorded() {
    if !has_tools() {
        return;
    }
    let sut = start(35000, |_| {}).await;
    let dir = sut.dir.path().to_path_buf();
    write(&dir, "refused.xml", &refused_caller_xml(404));
    let out = wait_sipp(
        sipp(
            &dir,
            &caller_args(
                sut.sip.udp_addr.port(),
                "refused.xml",
                "+15559999999",
                1,
                1,
                1,
            ),
        ),
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(out.rc, 0, "{}", out.output);
    eventually(
        "the refused contact is recorded",
        Duration::from_secs(5),
        || async {
            contact_rows(&sut.db)
                .await
                .iter()
                .any(|r| r.2.as_deref() == Some("rejected") && r.1.is_some())
        },
    )
    .await;
    let r = &contacts(&sut.db).await[0];
    assert_eq!(r.contact.system_address, "+15559999999");
    assert!(
        matches!(&r.outcome, Some(FlowOutcome::Rejected { code: 404, reason }) if reason.contains("no flow")),
        "{:?}",
        r.outcome
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_from_the_legacy_platform_carries_the_leased_data() {
    if !has_tools() {
        return;
    }
    let sut = start(37000, |cfg| {
        cfg.hold_audio = Some(inbound::interpreter::PromptSpec::Text(
            "Please hold.".into(),
        ))
    })
    .await;
    let dir = sut.dir.path().to_path_buf();
    let number = "+15550002000";
    bridge::pool::create(
        &sut.db,
        0,
        "test",
        &bridge::pool::PoolSpec {
            name: "from-legacy".into(),
            numbers: vec![number.into()],
            direction: bridge::pool::Direction::FromLegacy,
            lease_ttl_s: 60,
            cooldown_s: 0,
        },
    )
    .await
    .unwrap();
    inbound::store::assign_number(&sut.db, number, "main", 1_000, "test")
        .await
        .unwrap();
    let req = bridge::lease::LeaseRequest {
        pool: "from-legacy".into(),
        data: serde_json::json!({"account": "A-42", "intent": "billing"}),
        ani: None,
        ttl_s: None,
        idempotency_key: None,
    };
    let lease = bridge::lease::lease(&sut.db, &SystemClock, "legacy-pbx", None, &req)
        .await
        .unwrap();
    assert_eq!(lease.dnis, number);

    // The caller presses 2 (support); no agent is logged in, so it waits in the queue and leaves.
    write(&dir, "c.xml", &caller_xml(Dtmf::Pt96("2"), 1200, 1500));
    let out = wait_sipp(
        sipp(
            &dir,
            &caller_args(sut.sip.udp_addr.port(), "c.xml", number, 1, 1, 1),
        ),
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(out.rc, 0, "{}", out.output);
    eventually("the contact is closed", Duration::from_secs(10), || async {
        contact_rows(&sut.db).await.iter().all(|r| r.1.is_some())
    })
    .await;
    let r = &contacts(&sut.db).await[0];
    assert_eq!(
        r.attributes.get("account").map(String::as_str),
        Some("A-42"),
        "{:?}",
        r.attributes
    );
    assert_eq!(
        r.attributes.get("intent").map(String::as_str),
        Some("billing")
    );
    assert_eq!(
        r.attributes.get("bridge_result").map(String::as_str),
        Some("consumed")
    );
    assert_eq!(r.attributes.get("bridge_lease_id"), Some(&lease.lease_id));
    assert!(stage(r, "bridge_arrival").is_some());
    assert!(
        stage(r, "abandoned").is_some(),
        "the caller left the queue: {:?}",
        r.stages
    );
    assert!(
        stage(r, "hold_audio").is_some(),
        "the queued caller heard the hold audio: {:?}",
        r.stages
    );
    // The lease was consumed: a second lookup finds nothing once the cooldown (0 s) is over.
    let again = bridge::lease::lookup(&sut.db, &SystemClock, "t", None, number, None, true).await;
    assert!(again.is_err(), "{again:?}");

    // A second call on the same number: no lease any more, routed without data (audited).
    let out = wait_sipp(
        sipp(
            &dir,
            &caller_args(sut.sip.udp_addr.port(), "c.xml", number, 1, 1, 1),
        ),
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(out.rc, 0, "{}", out.output);
    eventually(
        "the second contact is closed",
        Duration::from_secs(10),
        || async {
            let rows = contact_rows(&sut.db).await;
            rows.len() == 2 && rows.iter().all(|r| r.1.is_some())
        },
    )
    .await;
    let r = &contacts(&sut.db).await[1];
    assert_eq!(
        r.attributes.get("bridge_result").map(String::as_str),
        Some("unknown")
    );
    assert!(!r.attributes.contains_key("account"));
}

fn uas_args(port: u16, msgs: &str, timeout_s: u32) -> Vec<String> {
    [
        "-sf".into(),
        "agent.xml".into(),
        "-p".into(),
        port.to_string(),
        "-mp".into(),
        free_port().to_string(),
        "-m".into(),
        "1".into(),
        "-timeout".into(),
        format!("{timeout_s}s"),
        "-trace_msg".into(),
        "-message_file".into(),
        msgs.into(),
    ]
    .into()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervisor_listens_whispers_barges_and_a_third_party_joins() {
    use telephony::control::Role;
    if !has_tools() {
        return;
    }
    let sut = start(39000, |_| {}).await;
    let dir = sut.dir.path().to_path_buf();
    write(&dir, "agent.xml", &agent_xml(120_000));
    let (agent_port, sup_port, third_port) = (free_port(), free_port(), free_port());
    let agent = sipp(&dir, &uas_args(agent_port, "agent_msgs.log", 150));
    let supervisor = sipp(&dir, &uas_args(sup_port, "sup_msgs.log", 90));
    let third = sipp(&dir, &uas_args(third_port, "third_msgs.log", 90));
    tokio::time::sleep(Duration::from_millis(300)).await;
    sut.runtime
        .login(Login {
            agent_id: "carol".into(),
            endpoint: AgentEndpoint::Uri(format!("sip:carol@127.0.0.1:{agent_port}")),
            mode: AgentMode::NailedUp,
            routing_profile: "all".into(),
            skills: BTreeMap::new(),
        })
        .await
        .unwrap();
    let mut events = sut.runtime.subscribe();
    write(&dir, "c.xml", &caller_xml(Dtmf::Pt96("1"), 1200, 8000));
    let caller = sipp(
        &dir,
        &caller_args(sut.sip.udp_addr.port(), "c.xml", DID, 1, 1, 1),
    );
    let contact = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            if let Ok(RuntimeEvent::ContactConnected { contact, .. }) = events.recv().await {
                return contact;
            }
        }
    })
    .await
    .expect("the caller reaches carol");
    assert!(
        sut.runtime.room_members(&contact).await.unwrap().is_empty(),
        "a plain bridge before anyone joins"
    );

    let sup = AgentEndpoint::Uri(format!("sip:sup@127.0.0.1:{sup_port}"));
    let roles = |m: Vec<(telephony::sip::call::CallId, Role)>| {
        m.into_iter().map(|(_, r)| r).collect::<Vec<_>>()
    };
    sut.runtime
        .supervise(&contact, sup.clone(), inbound::runtime::Supervise::Listen)
        .await
        .unwrap();
    let r = roles(sut.runtime.room_members(&contact).await.unwrap());
    assert_eq!(r.len(), 3);
    assert_eq!(r.iter().filter(|r| **r == Role::Full).count(), 2);
    assert!(r.contains(&Role::Listen), "{r:?}");
    sut.runtime
        .supervise(&contact, sup.clone(), inbound::runtime::Supervise::Whisper)
        .await
        .unwrap();
    let r = roles(sut.runtime.room_members(&contact).await.unwrap());
    assert!(r.iter().any(|r| matches!(r, Role::Whisper { .. })), "{r:?}");
    sut.runtime
        .supervise(&contact, sup, inbound::runtime::Supervise::Barge)
        .await
        .unwrap();
    let r = roles(sut.runtime.room_members(&contact).await.unwrap());
    assert_eq!(r.iter().filter(|r| **r == Role::Full).count(), 3, "{r:?}");
    sut.runtime
        .conference(
            &contact,
            AgentEndpoint::Uri(format!("sip:third@127.0.0.1:{third_port}")),
        )
        .await
        .unwrap();
    let r = roles(sut.runtime.room_members(&contact).await.unwrap());
    assert_eq!(r.iter().filter(|r| **r == Role::Full).count(), 4, "{r:?}");

    // The caller hangs up: the supervisor's and the third party's legs end with the contact,
    // the agent's nailed-up leg stays.
    let out = wait_sipp(caller, Duration::from_secs(60)).await;
    assert_eq!(out.rc, 0, "caller: {}", out.output);
    for (name, child) in [("supervisor", supervisor), ("third party", third)] {
        let out = wait_sipp(child, Duration::from_secs(30)).await;
        assert_eq!(out.rc, 0, "{name}: {}", out.output);
    }
    let view = sut.runtime.agent_snapshot(None).await.unwrap();
    assert!(view[0].leg_up, "{view:?}");
    sut.runtime.logout("carol").await.unwrap();
    let out = wait_sipp(agent, Duration::from_secs(30)).await;
    assert_eq!(out.rc, 0, "agent: {}", out.output);
    for log in ["sup_msgs.log", "third_msgs.log"] {
        let msgs = std::fs::read_to_string(dir.join(log)).unwrap();
        assert_eq!(
            msgs.lines()
                .filter(|l| l.starts_with("INVITE sip:"))
                .count(),
            1,
            "{log}: one call for the whole session"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dialer_hands_an_answered_call_to_a_ready_agent_at_once() {
    if !has_tools() {
        return;
    }
    let sut = start(41000, |_| {}).await;
    let dir = sut.dir.path().to_path_buf();
    write(&dir, "agent.xml", &agent_xml(120_000));
    let (agent_port, customer_port) = (free_port(), free_port());
    let agent = sipp(&dir, &uas_args(agent_port, "agent_msgs.log", 150));
    let customer = sipp(&dir, &uas_args(customer_port, "customer_msgs.log", 90));
    tokio::time::sleep(Duration::from_millis(300)).await;

    // The dialer's answered call (here: a sipp callee).
    let call = sut.calls.originate(telephony::sip::call::Originate {
        to_user: "+13125550199".into(),
        trunks: vec![telephony::sip::call::Trunk {
            addr: format!("127.0.0.1:{customer_port}").parse().unwrap(),
            transport: telephony::sip::call::Transport::Udp,
            credentials: None,
        }],
        ..Default::default()
    });
    let (_, ctl, mut call_events) = call.split();
    tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(ev) = call_events.recv().await {
            if matches!(ev, telephony::control::Event::Answered { .. }) {
                return;
            }
        }
        panic!("the callee hung up");
    })
    .await
    .expect("the callee answers");
    let attrs = BTreeMap::from([("campaign".to_string(), "renewals".to_string())]);
    // Nobody logged in: refused at once, nothing waits.
    assert_eq!(
        sut.runtime
            .connect_outbound("sales", &ctl, attrs.clone())
            .await,
        Err(inbound::runtime::NoAgent)
    );
    assert_eq!(sut.runtime.queue_stats("sales").await.unwrap().waiting, 0);

    sut.runtime
        .login(Login {
            agent_id: "dave".into(),
            endpoint: AgentEndpoint::Uri(format!("sip:dave@127.0.0.1:{agent_port}")),
            mode: AgentMode::NailedUp,
            routing_profile: "all".into(),
            skills: BTreeMap::new(),
        })
        .await
        .unwrap();
    let agent_id = sut
        .runtime
        .connect_outbound("sales", &ctl, attrs)
        .await
        .unwrap();
    assert_eq!(agent_id, "dave");
    let contact = telephony::cdr::call_ref(ctl.id());
    let view = sut.runtime.agent_snapshot(Some("sales")).await.unwrap();
    assert_eq!(
        view[0].state,
        inbound::acd::AgentState::OnContact(contact.clone()),
        "{view:?}"
    );
    assert_eq!(view[0].contact.as_deref(), Some(contact.as_str()));

    // The agent ends the contact from the desktop and codes it.
    sut.runtime.end_contact(&contact).await.unwrap();
    let out = wait_sipp(customer, Duration::from_secs(30)).await;
    assert_eq!(out.rc, 0, "customer: {}", out.output);
    sut.runtime.disposition(&contact, "sale").await.unwrap();
    eventually(
        "the outbound contact is recorded with its disposition",
        Duration::from_secs(5),
        || async {
            inbound::store::load_contact(&sut.db, &contact)
                .await
                .is_ok_and(|r| r.ended_at_ms.is_some() && stage(&r, "disposition").is_some())
        },
    )
    .await;
    let r = inbound::store::load_contact(&sut.db, &contact)
        .await
        .unwrap();
    assert_eq!(
        r.attributes.get("campaign").map(String::as_str),
        Some("renewals")
    );
    assert_eq!(
        stage(&r, "connected").map(|s| s.detail.as_str()),
        Some("dave")
    );
    assert_eq!(
        stage(&r, "disposition").map(|s| s.detail.as_str()),
        Some("sale")
    );
    assert!(sut.runtime.agent_snapshot(None).await.unwrap()[0].leg_up);
    sut.runtime.logout("dave").await.unwrap();
    let out = wait_sipp(agent, Duration::from_secs(30)).await;
    assert_eq!(out.rc, 0, "agent: {}", out.output);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_logs_in_with_a_phone_registered_to_the_appliance() {
    if !has_tools() {
        return;
    }
    let users = std::collections::HashMap::from([("agent1".to_string(), "pw1".to_string())]);
    let policy = telephony::sip::registrar::InboundPolicy::with_users(
        vec!["127.0.0.1".parse().unwrap()],
        "dialbridge",
        users,
    );
    let sut = start_with(45000, Some(policy), |_| {}).await;
    let dir = sut.dir.path().to_path_buf();
    let phone_port = free_port();

    // The phone registers (digest) with its Contact on the port where it answers calls.
    let register = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../telephony/tests/sip_scenarios/uac_register.xml"
    ))
    .unwrap()
    .replace("@CONTACT_PORT@", &phone_port.to_string())
    .replace("@PASSWORD@", "pw1")
    .replace("@FINAL@", "200");
    write(&dir, "register.xml", &register);
    let args: Vec<String> = [
        sut.sip.udp_addr.to_string(),
        "-sf".into(),
        "register.xml".into(),
        "-s".into(),
        "agent1".into(),
        "-p".into(),
        free_port().to_string(),
        "-m".into(),
        "1".into(),
        "-timeout".into(),
        "10s".into(),
    ]
    .into();
    let out = wait_sipp(sipp(&dir, &args), Duration::from_secs(20)).await;
    assert_eq!(out.rc, 0, "REGISTER: {}", out.output);

    // An AOR without a binding cannot log in; the registered one can.
    let login = |id: &str, aor: &str| Login {
        agent_id: id.into(),
        endpoint: AgentEndpoint::Registered(aor.into()),
        mode: AgentMode::RingPerOffer,
        routing_profile: "all".into(),
        skills: BTreeMap::new(),
    };
    assert!(matches!(
        sut.runtime.login(login("ghost", "nobody")).await,
        Err(inbound::runtime::RuntimeError::EndpointUnreachable(_))
    ));
    write(&dir, "agent.xml", &agent_xml(30_000));
    let phone = sipp(&dir, &uas_args(phone_port, "phone_msgs.log", 60));
    tokio::time::sleep(Duration::from_millis(300)).await;
    sut.runtime.login(login("erin", "agent1")).await.unwrap();

    write(&dir, "c.xml", &caller_xml(Dtmf::Pt96("1"), 1200, 2000));
    let out = wait_sipp(
        sipp(
            &dir,
            &caller_args(sut.sip.udp_addr.port(), "c.xml", DID, 1, 1, 1),
        ),
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(out.rc, 0, "caller: {}", out.output);
    let out = wait_sipp(phone, Duration::from_secs(30)).await;
    assert_eq!(out.rc, 0, "registered phone: {}", out.output);
    eventually("the contact is closed", Duration::from_secs(10), || async {
        contact_rows(&sut.db).await.iter().any(|r| r.1.is_some())
    })
    .await;
    assert_walked_to_agent(&contacts(&sut.db).await[0], "sales", "erin");
}

/// A phone that refuses the call with 486 Busy Here.
fn busy_phone_xml() -> String {
    r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="busy phone">
  <recv request="INVITE" crlf="true"/>
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
"#
    .into()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missed_offer_goes_back_to_the_head_of_the_queue_and_the_next_agent_takes_it() {
    if !has_tools() {
        return;
    }
    let sut = start(47000, |_| {}).await;
    let dir = sut.dir.path().to_path_buf();
    write(&dir, "agent.xml", &agent_xml(30_000));
    write(&dir, "busy.xml", &busy_phone_xml());
    let (busy_port, good_port) = (free_port(), free_port());
    let busy = sipp(
        &dir,
        &[
            "-sf".into(),
            "busy.xml".into(),
            "-p".into(),
            busy_port.to_string(),
            "-m".into(),
            "1".into(),
            "-timeout".into(),
            "60s".into(),
        ],
    );
    let good = sipp(&dir, &uas_args(good_port, "good_msgs.log", 60));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let login = |id: &str, port: u16| Login {
        agent_id: id.into(),
        endpoint: AgentEndpoint::Uri(format!("sip:{id}@127.0.0.1:{port}")),
        mode: AgentMode::RingPerOffer,
        routing_profile: "all".into(),
        skills: BTreeMap::new(),
    };
    // frank has been idle longest, so the first offer goes to him; his phone is busy.
    sut.runtime.login(login("frank", busy_port)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    sut.runtime.login(login("grace", good_port)).await.unwrap();

    write(&dir, "c.xml", &caller_xml(Dtmf::Pt96("1"), 1200, 2500));
    let out = wait_sipp(
        sipp(
            &dir,
            &caller_args(sut.sip.udp_addr.port(), "c.xml", DID, 1, 1, 1),
        ),
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(out.rc, 0, "caller: {}", out.output);
    for (name, child) in [("busy phone", busy), ("grace's phone", good)] {
        let out = wait_sipp(child, Duration::from_secs(30)).await;
        assert_eq!(out.rc, 0, "{name}: {}", out.output);
    }
    eventually("the contact is closed", Duration::from_secs(10), || async {
        contact_rows(&sut.db).await.iter().any(|r| r.1.is_some())
    })
    .await;
    let r = &contacts(&sut.db).await[0];
    let seq: Vec<(String, String)> = r
        .stages
        .iter()
        .filter(|s| ["offered", "missed", "connected"].contains(&s.stage.as_str()))
        .map(|s| (s.stage.clone(), s.detail.clone()))
        .collect();
    let expect = [
        ("offered", "frank"),
        ("missed", "frank"),
        ("offered", "grace"),
        ("connected", "grace"),
    ];
    assert_eq!(
        seq,
        expect.map(|(a, b)| (a.to_string(), b.to_string())),
        "{:?}",
        r.stages
    );
    let frank = sut
        .runtime
        .agent_snapshot(None)
        .await
        .unwrap()
        .into_iter()
        .find(|a| a.id == "frank")
        .unwrap();
    assert_eq!(
        frank.state,
        inbound::acd::AgentState::Missed,
        "a missed agent is not routable until he sets a status"
    );
}
