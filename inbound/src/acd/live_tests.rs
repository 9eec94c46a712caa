//! Unit tests of the ACD's live figures and changes, on a virtual clock: the estimated wait
//! follows recent handle times and staffing, an admin's skill or profile change routes at once,
//! a withdrawn offer frees the agent without counting anything, queue settings are checked, and a
//! scripted shift gives exact ASA, AHT, service level and occupancy.

use std::collections::BTreeMap;
use std::time::Duration;

use foundation::Clock;
use foundation::clock::VirtualClock;

use super::*;

fn profile(name: &str, queue: &str) -> RoutingProfileConfig {
    RoutingProfileConfig {
        name: name.into(),
        queues: vec![ProfileQueue {
            queue: queue.into(),
            priority: 1,
            delay_s: 0,
        }],
        acw_s: 0,
    }
}

fn agent(id: &str, profile: &str, skills: &[(&str, u8)]) -> AgentConfig {
    AgentConfig {
        id: id.into(),
        profile: profile.into(),
        skills: skills.iter().map(|(s, l)| ((*s).into(), *l)).collect(),
    }
}

fn acd(agents: &[AgentConfig]) -> Acd {
    Acd::new(&AcdConfig {
        queues: vec![QueueConfig::new("q1"), QueueConfig::new("q2")],
        profiles: vec![profile("p1", "q1"), profile("p2", "q2")],
        agents: agents.to_vec(),
    })
    .unwrap()
}

fn available(acd: &mut Acd, a: &str, now: i64) -> Vec<Decision> {
    acd.step(
        Event::SetStatus {
            agent: a.into(),
            status: AgentStatus::Available,
        },
        now,
    )
}

fn offers(ds: &[Decision]) -> Vec<(String, String)> {
    ds.iter()
        .filter_map(|d| match d {
            Decision::Offer { contact, agent, .. } => Some((contact.clone(), agent.clone())),
            _ => None,
        })
        .collect()
}

/// Enqueues and accepts whatever offer comes of it.
fn enqueue_accepting(acd: &mut Acd, req: ContactRequest, now: i64) -> Vec<(String, String)> {
    let ds = acd.step(Event::Enqueue(req), now);
    let o = offers(&ds);
    for (c, a) in &o {
        acd.step(
            Event::Accept {
                contact: c.clone(),
                agent: a.clone(),
            },
            now,
        );
    }
    o
}

#[test]
fn estimated_wait_follows_recent_handle_times_and_staffing() {
    let clock = VirtualClock::at_ms(1_000_000);
    let mut acd = acd(&[agent("a", "p1", &[]), agent("b", "p1", &[])]);
    available(&mut acd, "a", clock.now_ms());
    available(&mut acd, "b", clock.now_ms());
    for k in ["k1", "k2"] {
        assert_eq!(
            enqueue_accepting(&mut acd, ContactRequest::new(k, "q1"), clock.now_ms()).len(),
            1
        );
    }
    for k in ["k3", "k4", "k5"] {
        clock.advance(Duration::from_secs(1));
        acd.step(Event::Enqueue(ContactRequest::new(k, "q1")), clock.now_ms());
    }
    // Nothing handled yet: the default 3-minute AHT over two busy agents.
    let e = acd.estimate("k3").unwrap();
    assert_eq!((e.queue.as_str(), e.position, e.offered), ("q1", 1, false));
    assert_eq!(e.wait_ms, Some(wait::DEFAULT_AHT_MS / 2));
    assert_eq!(acd.estimate("k5").unwrap().position, 3);
    assert_eq!(
        acd.estimate("k5").unwrap().wait_ms,
        Some(3 * wait::DEFAULT_AHT_MS / 2)
    );
    // a handles k1 in 60 s and takes k3: the estimate now uses that handle time.
    clock.advance(Duration::from_secs(57));
    let ds = acd.step(Event::ContactEnded { agent: "a".into() }, clock.now_ms());
    assert_eq!(offers(&ds), vec![("k3".to_string(), "a".to_string())]);
    let e3 = acd.estimate("k3").unwrap();
    assert!(e3.offered, "k3 is being offered");
    acd.step(
        Event::Accept {
            contact: "k3".into(),
            agent: "a".into(),
        },
        clock.now_ms(),
    );
    assert_eq!(acd.estimate("k3"), None, "with an agent: no longer queued");
    let e4 = acd.estimate("k4").unwrap();
    assert_eq!((e4.position, e4.wait_ms), (1, Some(60_000 / 2)));
    assert_eq!(acd.estimate("k5").unwrap().wait_ms, Some(2 * 60_000 / 2));
    // b logs off: one agent left, the same contacts wait twice as long.
    acd.step(
        Event::SetStatus {
            agent: "b".into(),
            status: AgentStatus::Offline,
        },
        clock.now_ms(),
    );
    assert_eq!(acd.estimate("k5").unwrap().wait_ms, Some(2 * 60_000));
    // Nobody left: no estimate (rather than a made-up one).
    acd.step(
        Event::SetStatus {
            agent: "a".into(),
            status: AgentStatus::Offline,
        },
        clock.now_ms(),
    );
    assert_eq!(acd.estimate("k5").unwrap().wait_ms, None);
    assert_eq!(acd.position("k5").map(|p| (p.1, p.2)), Some((2, -1)));
}

#[test]
fn a_skill_change_routes_a_waiting_contact_at_once() {
    let mut acd = acd(&[agent("a", "p1", &[])]);
    available(&mut acd, "a", 0);
    let mut req = ContactRequest::new("k", "q1");
    req.criteria = vec![CriteriaStep {
        skills: BTreeMap::from([("french".to_string(), 3)]),
        expiry_s: None,
    }];
    assert!(offers(&acd.step(Event::Enqueue(req), 1_000)).is_empty());
    // A bad change is refused whole: the agent keeps routing as before.
    let err = acd
        .update_agent(&agent("a", "p1", &[("french", 9)]), 2_000)
        .unwrap_err();
    assert!(err.to_string().contains("french"), "{err}");
    assert_eq!(
        acd.update_agent(&agent("zed", "p1", &[]), 2_000)
            .unwrap_err(),
        ConfigError::UnknownAgent("zed".into())
    );
    assert!(matches!(
        acd.update_agent(&agent("a", "nope", &[]), 2_000),
        Err(ConfigError::UnknownProfile { .. })
    ));
    // Too low a proficiency still does not qualify; enough does, at once.
    let ds = acd
        .update_agent(&agent("a", "p1", &[("french", 2)]), 3_000)
        .unwrap();
    assert!(offers(&ds).is_empty());
    let ds = acd
        .update_agent(&agent("a", "p1", &[("french", 4)]), 4_000)
        .unwrap();
    assert_eq!(offers(&ds), vec![("k".to_string(), "a".to_string())]);
}

#[test]
fn a_profile_change_moves_the_agent_to_other_queues() {
    let mut acd = acd(&[agent("a", "p1", &[])]);
    available(&mut acd, "a", 0);
    assert!(offers(&acd.step(Event::Enqueue(ContactRequest::new("k", "q2")), 1_000)).is_empty());
    assert_eq!(acd.queue_stats("q1", 1_000).unwrap().agents_available, 1);
    let ds = acd.update_agent(&agent("a", "p2", &[]), 2_000).unwrap();
    assert_eq!(offers(&ds), vec![("k".to_string(), "a".to_string())]);
    acd.step(
        Event::Accept {
            contact: "k".into(),
            agent: "a".into(),
        },
        2_000,
    );
    let ds = acd.step(Event::ContactEnded { agent: "a".into() }, 3_000);
    assert!(offers(&ds).is_empty());
    assert_eq!(acd.queue_stats("q1", 3_000).unwrap().agents_available, 0);
    assert_eq!(acd.queue_stats("q1", 3_000).unwrap().agents_staffed, 0);
    assert_eq!(acd.queue_stats("q2", 3_000).unwrap().agents_available, 1);
    // A contact in q1 no longer reaches a.
    assert!(offers(&acd.step(Event::Enqueue(ContactRequest::new("k2", "q1")), 4_000)).is_empty());
}

#[test]
fn a_busy_agents_change_applies_when_it_is_free() {
    let mut acd = acd(&[agent("a", "p1", &[])]);
    available(&mut acd, "a", 0);
    enqueue_accepting(&mut acd, ContactRequest::new("k1", "q1"), 1_000);
    acd.step(Event::Enqueue(ContactRequest::new("k2", "q2")), 1_500);
    let ds = acd.update_agent(&agent("a", "p2", &[]), 2_000).unwrap();
    assert!(offers(&ds).is_empty(), "on a contact: no offer");
    assert_eq!(
        acd.agent_state("a"),
        Some(AgentState::OnContact("k1".into()))
    );
    let ds = acd.step(Event::ContactEnded { agent: "a".into() }, 3_000);
    assert_eq!(offers(&ds), vec![("k2".to_string(), "a".to_string())]);
}

#[test]
fn a_withdrawn_offer_frees_the_agent_and_counts_nothing() {
    let mut acd = acd(&[agent("a", "p1", &[])]);
    available(&mut acd, "a", 0);
    let mut cb = ContactRequest::new("cb", "q1");
    cb.offer_timeout_s = Some(90);
    let ds = acd.step(Event::Enqueue(cb), 1_000);
    let ring = ds.iter().find_map(|d| match d {
        Decision::Offer {
            ring_timeout_ms, ..
        } => Some(*ring_timeout_ms),
        _ => None,
    });
    assert_eq!(ring, Some(90_000), "the contact's own offer timeout");
    acd.step(Event::Enqueue(ContactRequest::new("k2", "q1")), 2_000);
    let ds = acd.step(
        Event::Withdraw {
            contact: "cb".into(),
            agent: "a".into(),
        },
        3_000,
    );
    assert_eq!(offers(&ds), vec![("k2".to_string(), "a".to_string())]);
    assert_eq!(acd.estimate("cb"), None);
    let stats = acd.queue_stats("q1", 3_000).unwrap();
    assert_eq!(stats.counters.abandoned, 0);
    assert_eq!(stats.counters.answered, 0);
    assert!(matches!(
        acd.step(
            Event::Withdraw {
                contact: "k2".into(),
                agent: "b".into()
            },
            3_000
        )[0],
        Decision::Ignored { .. }
    ));
}

#[test]
fn queue_settings_are_checked_with_the_key_named() {
    let bad = |f: &dyn Fn(&mut QueueConfig)| {
        let mut q = QueueConfig::new("q1");
        f(&mut q);
        Acd::new(&AcdConfig {
            queues: vec![q],
            profiles: vec![],
            agents: vec![],
        })
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default()
    };
    assert_eq!(
        bad(&|q| q.announce_every_s = 5),
        "queue \"q1\": announce_every_s is 5, at least 10 seconds"
    );
    assert!(bad(&|q| q.callback_attempts = Some(0)).contains("callback_attempts"));
    assert!(bad(&|q| q.callback_retry_s = Some(0)).contains("callback_retry_s"));
    assert!(bad(&|q| q.callback_ring_s = 500).contains("callback_ring_s"));
    assert!(bad(&|q| q.callback_caller_id = Some("+1 555".into())).contains("callback_caller_id"));
    assert_eq!(
        bad(&|q| q.callback_caller_id = Some("+15550001000".into())),
        ""
    );
    assert_eq!(bad(&|q| q.announce_every_s = 10), "");
    // The JSON form: defaults when left out.
    let q: QueueConfig =
        serde_json::from_str(r#"{"name": "x", "announce_position": true}"#).unwrap();
    assert!(q.announce_position && !q.announce_wait && q.announces());
    assert_eq!(q.announce_every_s, DEFAULT_ANNOUNCE_EVERY_S);
    assert_eq!((q.callback_attempts, q.callback_ring_s), (None, 30));
}

#[test]
fn a_scripted_shift_gives_exact_asa_aht_service_level_and_occupancy() {
    const S: i64 = 1_000;
    let clock = VirtualClock::at_ms(1_000_000);
    let t0 = clock.now_ms();
    // Moves the virtual clock to `s` seconds into the shift and returns that time.
    let at = |s: i64| {
        clock.advance(Duration::from_millis((t0 + s * S - clock.now_ms()) as u64));
        clock.now_ms()
    };
    let mut acd = Acd::new(&AcdConfig {
        queues: vec![QueueConfig::new("q1"), QueueConfig::new("q2")],
        profiles: vec![
            RoutingProfileConfig {
                acw_s: 10,
                ..profile("p1", "q1")
            },
            profile("p2", "q2"),
        ],
        agents: vec![
            agent("a", "p1", &[]),
            agent("b", "p1", &[]),
            agent("c", "p2", &[]),
        ],
    })
    .unwrap();
    let status = |acd: &mut Acd, agent: &str, status: AgentStatus, now: i64| {
        acd.step(
            Event::SetStatus {
                agent: agent.into(),
                status,
            },
            now,
        )
    };
    let accept = |acd: &mut Acd, contact: &str, agent: &str, now: i64| {
        acd.step(
            Event::Accept {
                contact: contact.into(),
                agent: agent.into(),
            },
            now,
        )
    };
    let ended = |acd: &mut Acd, agent: &str, now: i64| {
        acd.step(
            Event::ContactEnded {
                agent: agent.into(),
            },
            now,
        )
    };

    available(&mut acd, "a", at(0));
    available(&mut acd, "b", at(0));
    // k1 rings a at 0 s and is answered at 2 s; k2 goes straight to b at 5 s.
    let ds = acd.step(Event::Enqueue(ContactRequest::new("k1", "q1")), at(0));
    assert_eq!(offers(&ds), vec![("k1".to_string(), "a".to_string())]);
    accept(&mut acd, "k1", "a", at(2));
    let ds = acd.step(Event::Enqueue(ContactRequest::new("k2", "q1")), at(5));
    assert_eq!(offers(&ds), vec![("k2".to_string(), "b".to_string())]);
    accept(&mut acd, "k2", "b", at(5));
    // k3 waits: both agents are busy. c logs in on q2 and never gets a contact.
    acd.step(Event::Enqueue(ContactRequest::new("k3", "q1")), at(10));
    available(&mut acd, "c", at(20));
    // a talks 30 s (ACW to 42 s); b talks 35 s and ends its 10 s ACW after 5 s.
    ended(&mut acd, "a", at(32));
    ended(&mut acd, "b", at(40));
    let ds = acd.step(Event::Tick, at(42));
    assert_eq!(offers(&ds), vec![("k3".to_string(), "a".to_string())]);
    accept(&mut acd, "k3", "a", at(44));
    acd.step(Event::AcwDone { agent: "b".into() }, at(45));
    status(
        &mut acd,
        "b",
        AgentStatus::NotRoutable("Lunch".into()),
        at(50),
    );
    // a talks 16 s on k3, then 10 s ACW to 70 s.
    ended(&mut acd, "a", at(60));

    let now = at(80);
    let s = acd.queue_stats("q1", now).unwrap();
    assert_eq!(
        (
            s.counters.answered,
            s.counters.answered_within_sl,
            s.counters.handled
        ),
        (3, 2, 3)
    );
    assert_eq!(s.asa_ms, (2 + 0 + 34) * S / 3);
    // (30 + 10) + (35 + 5) + (16 + 10) seconds over three contacts.
    assert_eq!(s.aht_ms, 106 * S / 3);
    assert!((s.service_level - 2.0 / 3.0).abs() < 1e-12);
    // a: logged in 80 s, busy 40 s + 26 s. b: staffed 50 s (then on a break), busy 40 s.
    let a = acd.agent_occupancy("a", now).unwrap();
    let b = acd.agent_occupancy("b", now).unwrap();
    let c = acd.agent_occupancy("c", now).unwrap();
    assert_eq!(
        (
            a.busy_ms,
            a.staffed_ms,
            b.busy_ms,
            b.staffed_ms,
            c.busy_ms,
            c.staffed_ms
        ),
        (66 * S, 80 * S, 40 * S, 50 * S, 0, 60 * S)
    );
    assert!((b.ratio() - 0.8).abs() < 1e-12);
    assert_eq!(
        s.occupancy,
        Occupancy {
            busy_ms: 106 * S,
            staffed_ms: 130 * S
        }
    );
    assert_eq!(
        acd.queue_stats("q2", now).unwrap().occupancy,
        Occupancy {
            busy_ms: 0,
            staffed_ms: 60 * S
        }
    );
    assert_eq!(
        acd.occupancy(now),
        Occupancy {
            busy_ms: 106 * S,
            staffed_ms: 190 * S
        }
    );
    assert_eq!(Occupancy::default().ratio(), 0.0);

    // a logs out: its last login's figures stay, the queue no longer counts it.
    status(&mut acd, "a", AgentStatus::Offline, at(80));
    let later = at(90);
    assert_eq!(acd.agent_occupancy("a", later), Some(a));
    assert_eq!(
        acd.queue_stats("q1", later).unwrap().occupancy,
        Occupancy {
            busy_ms: 40 * S,
            staffed_ms: 50 * S
        }
    );
    // A new login counts from zero.
    available(&mut acd, "a", at(100));
    assert_eq!(
        acd.agent_occupancy("a", at(110)),
        Some(Occupancy {
            busy_ms: 0,
            staffed_ms: 10 * S
        })
    );
    // An agent who goes offline mid-contact is still busy until the contact and ACW end.
    acd.step(Event::Enqueue(ContactRequest::new("k4", "q1")), at(110));
    accept(&mut acd, "k4", "a", at(110));
    status(&mut acd, "a", AgentStatus::Offline, at(111));
    ended(&mut acd, "a", at(120));
    assert_eq!(
        acd.agent_occupancy("a", at(200)),
        Some(Occupancy {
            busy_ms: 20 * S,
            staffed_ms: 30 * S
        })
    );
}
