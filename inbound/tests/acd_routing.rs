//! ACD routing under explicit times: each strategy's order, skills and proficiency, routing
//! profile priority and delay, priority escalation, ACW timers, missed offers, overflow.

use std::collections::BTreeMap;

use inbound::acd::{
    Acd, AcdConfig, AgentConfig, AgentState, AgentStatus, ContactRequest, CriteriaStep, Decision,
    Escalation, Event, ProfileQueue, QueueConfig, RoutingProfileConfig, Strategy,
};

const S: i64 = 1000;

fn profile(name: &str, queues: &[(&str, u8, i64)], acw_s: i64) -> RoutingProfileConfig {
    RoutingProfileConfig {
        name: name.into(),
        queues: queues
            .iter()
            .map(|&(q, priority, delay_s)| ProfileQueue {
                queue: q.into(),
                priority,
                delay_s,
            })
            .collect(),
        acw_s,
    }
}

fn agent(id: &str, profile: &str, skills: &[(&str, u8)]) -> AgentConfig {
    AgentConfig {
        id: id.into(),
        profile: profile.into(),
        skills: skills.iter().map(|&(s, l)| (s.to_string(), l)).collect(),
    }
}

fn queue(name: &str, strategy: Strategy) -> QueueConfig {
    QueueConfig {
        strategy,
        ..QueueConfig::new(name)
    }
}

/// One queue "q", one profile "p" (no ACW), the given agents.
fn single(strategy: Strategy, agents: &[&str]) -> Acd {
    Acd::new(&AcdConfig {
        queues: vec![queue("q", strategy)],
        profiles: vec![profile("p", &[("q", 1, 0)], 0)],
        agents: agents.iter().map(|a| agent(a, "p", &[])).collect(),
    })
    .unwrap()
}

fn available(acd: &mut Acd, agent: &str, now: i64) -> Vec<Decision> {
    acd.step(
        Event::SetStatus {
            agent: agent.into(),
            status: AgentStatus::Available,
        },
        now,
    )
}

fn enqueue(acd: &mut Acd, req: ContactRequest, now: i64) -> Vec<Decision> {
    acd.step(Event::Enqueue(req), now)
}

fn offers(ds: &[Decision]) -> Vec<(String, String)> {
    ds.iter()
        .filter_map(|d| match d {
            Decision::Offer { contact, agent, .. } => Some((contact.clone(), agent.clone())),
            _ => None,
        })
        .collect()
}

fn offered_agent(ds: &[Decision]) -> String {
    let o = offers(ds);
    assert_eq!(o.len(), 1, "expected one offer in {ds:?}");
    o[0].1.clone()
}

/// Offer, accept, talk for `talk_ms`, end: returns the agent that took it.
fn handle(acd: &mut Acd, contact: &str, at: i64, talk_ms: i64) -> String {
    let ds = enqueue(acd, ContactRequest::new(contact, "q"), at);
    let a = offered_agent(&ds);
    acd.step(
        Event::Accept {
            contact: contact.into(),
            agent: a.clone(),
        },
        at,
    );
    acd.step(Event::ContactEnded { agent: a.clone() }, at + talk_ms);
    a
}

#[test]
fn longest_idle_agent_gets_the_contact() {
    let mut acd = single(Strategy::LongestIdle, &["a", "b", "c"]);
    available(&mut acd, "b", 0);
    available(&mut acd, "c", S);
    available(&mut acd, "a", 2 * S);
    let ds = enqueue(&mut acd, ContactRequest::new("k1", "q"), 10 * S);
    assert_eq!(offers(&ds), vec![("k1".into(), "b".into())]);
    let ds = enqueue(&mut acd, ContactRequest::new("k2", "q"), 10 * S);
    assert_eq!(offered_agent(&ds), "c");
    // b finishes: it is now the most recently idle, so a (idle since 2 s) is next.
    acd.step(
        Event::Accept {
            contact: "k1".into(),
            agent: "b".into(),
        },
        11 * S,
    );
    acd.step(Event::ContactEnded { agent: "b".into() }, 20 * S);
    assert_eq!(
        offered_agent(&enqueue(&mut acd, ContactRequest::new("k3", "q"), 21 * S)),
        "a"
    );
    assert_eq!(
        offered_agent(&enqueue(&mut acd, ContactRequest::new("k4", "q"), 21 * S)),
        "b"
    );
}

#[test]
fn round_robin_rotates_through_positions() {
    let mut acd = single(Strategy::RoundRobin, &["a", "b", "c"]);
    for a in ["c", "b", "a"] {
        available(&mut acd, a, 0);
    }
    let order: Vec<String> = (0..5)
        .map(|i| handle(&mut acd, &format!("k{i}"), (i + 1) * 10 * S, S))
        .collect();
    assert_eq!(order, ["a", "b", "c", "a", "b"]);
}

#[test]
fn least_talk_time_and_fewest_calls() {
    // Talk times: a 50 s, b 10 s, c 30 s; calls: a 1, b 3, c 2.
    for (strategy, expected) in [(Strategy::LeastTalkTime, "b"), (Strategy::FewestCalls, "a")] {
        let mut acd = single(strategy, &["a", "b", "c"]);
        let plan: [(&str, &[i64]); 3] = [("a", &[50]), ("b", &[4, 3, 3]), ("c", &[15, 15])];
        let mut t = 0;
        for (who, talks) in plan {
            for a in ["a", "b", "c"] {
                acd.step(
                    Event::SetStatus {
                        agent: a.into(),
                        status: AgentStatus::NotRoutable("Training".into()),
                    },
                    t,
                );
            }
            available(&mut acd, who, t);
            for talk in talks {
                t += 100 * S;
                assert_eq!(handle(&mut acd, &format!("{who}{t}"), t, talk * S), who);
            }
        }
        assert_eq!(acd.agent_totals("b"), Some((10 * S, 3)));
        t += 1000 * S;
        for a in ["a", "b", "c"] {
            available(&mut acd, a, t);
        }
        let ds = enqueue(&mut acd, ContactRequest::new("next", "q"), t + S);
        assert_eq!(offered_agent(&ds), expected, "{strategy:?}");
    }
}

#[test]
fn ring_all_offers_everyone_and_the_first_to_accept_wins() {
    let mut acd = single(Strategy::RingAll, &["a", "b", "c"]);
    for a in ["a", "b"] {
        available(&mut acd, a, 0);
    }
    let ds = enqueue(&mut acd, ContactRequest::new("k", "q"), S);
    assert_eq!(
        offers(&ds),
        vec![("k".into(), "a".into()), ("k".into(), "b".into())]
    );
    let ds = acd.step(
        Event::Accept {
            contact: "k".into(),
            agent: "b".into(),
        },
        2 * S,
    );
    assert_eq!(
        ds[0],
        Decision::Connected {
            contact: "k".into(),
            agent: "b".into()
        }
    );
    assert!(ds.contains(&Decision::RetractOffer {
        contact: "k".into(),
        agent: "a".into()
    }));
    assert_eq!(acd.agent_state("a"), Some(AgentState::Available));
    assert_eq!(
        acd.agent_state("b"),
        Some(AgentState::OnContact("k".into()))
    );
}

#[test]
fn skills_weighted_picks_the_most_proficient() {
    let mut acd = Acd::new(&AcdConfig {
        queues: vec![queue("q", Strategy::SkillsWeighted)],
        profiles: vec![profile("p", &[("q", 1, 0)], 0)],
        agents: vec![
            agent("a", "p", &[("spanish", 2), ("billing", 5)]),
            agent("b", "p", &[("spanish", 5)]),
            agent("c", "p", &[("spanish", 3), ("billing", 1)]),
        ],
    })
    .unwrap();
    for a in ["a", "b", "c"] {
        available(&mut acd, a, 0);
    }
    let mut req = ContactRequest::new("k1", "q");
    req.criteria = vec![CriteriaStep {
        skills: BTreeMap::from([("spanish".into(), 1)]),
        expiry_s: None,
    }];
    assert_eq!(offered_agent(&enqueue(&mut acd, req, S)), "b");
    let mut req = ContactRequest::new("k2", "q");
    req.criteria = vec![CriteriaStep {
        skills: BTreeMap::from([("spanish".into(), 1), ("billing".into(), 1)]),
        expiry_s: None,
    }];
    assert_eq!(offered_agent(&enqueue(&mut acd, req, S)), "a");
}

#[test]
fn proficiency_requirement_relaxes_when_a_criteria_step_expires() {
    let mut acd = Acd::new(&AcdConfig {
        queues: vec![queue("q", Strategy::LongestIdle)],
        profiles: vec![profile("p", &[("q", 1, 0)], 0)],
        agents: vec![
            agent("junior", "p", &[("spanish", 2)]),
            agent("none", "p", &[]),
        ],
    })
    .unwrap();
    available(&mut acd, "none", 0);
    available(&mut acd, "junior", S);
    let mut req = ContactRequest::new("k", "q");
    req.criteria = vec![
        CriteriaStep {
            skills: BTreeMap::from([("spanish".into(), 4)]),
            expiry_s: Some(30),
        },
        CriteriaStep {
            skills: BTreeMap::from([("spanish".into(), 1)]),
            expiry_s: Some(30),
        },
    ];
    let t0 = 10 * S;
    assert!(
        offers(&enqueue(&mut acd, req, t0)).is_empty(),
        "nobody has spanish 4"
    );
    assert_eq!(acd.next_deadline(), Some(t0 + 30 * S));
    assert!(offers(&acd.step(Event::Tick, t0 + 29 * S)).is_empty());
    assert_eq!(
        offers(&acd.step(Event::Tick, t0 + 30 * S)),
        vec![("k".into(), "junior".into())]
    );
}

#[test]
fn profile_priority_beats_age_and_delay_holds_contacts_back() {
    let mut acd = Acd::new(&AcdConfig {
        queues: vec![
            queue("sales", Strategy::LongestIdle),
            queue("support", Strategy::LongestIdle),
        ],
        profiles: vec![
            profile("sales-first", &[("sales", 1, 0), ("support", 2, 0)], 0),
            profile("support-late", &[("support", 1, 20)], 0),
        ],
        agents: vec![
            agent("a", "sales-first", &[]),
            agent("late", "support-late", &[]),
        ],
    })
    .unwrap();
    enqueue(&mut acd, ContactRequest::new("old-support", "support"), 0);
    enqueue(&mut acd, ContactRequest::new("new-sales", "sales"), 5 * S);
    let ds = available(&mut acd, "a", 6 * S);
    assert_eq!(
        offers(&ds),
        vec![("new-sales".into(), "a".into())],
        "sales has priority 1 in a's profile"
    );
    // "late" may take support contacts only after 20 s of waiting.
    let ds = available(&mut acd, "late", 7 * S);
    assert!(offers(&ds).is_empty());
    assert!(offers(&acd.step(Event::Tick, 19 * S)).is_empty());
    assert_eq!(
        offers(&acd.step(Event::Tick, 20 * S)),
        vec![("old-support".into(), "late".into())]
    );
}

#[test]
fn priority_escalates_with_waiting_time() {
    let mut q = queue("q", Strategy::LongestIdle);
    q.escalation = vec![Escalation {
        after_s: 60,
        priority: 1,
    }];
    let mut acd = Acd::new(&AcdConfig {
        queues: vec![q],
        profiles: vec![profile("p", &[("q", 1, 0)], 0)],
        agents: vec![agent("a", "p", &[])],
    })
    .unwrap();
    enqueue(&mut acd, ContactRequest::new("low", "q"), 0);
    let mut high = ContactRequest::new("high", "q");
    high.priority = 3;
    enqueue(&mut acd, high, 10 * S);
    assert_eq!(acd.waiting("q"), ["high", "low"]);
    acd.step(Event::Tick, 60 * S);
    assert_eq!(
        acd.waiting("q"),
        ["low", "high"],
        "after 60 s low escalated to priority 1"
    );
    assert_eq!(offered_agent(&available(&mut acd, "a", 61 * S)), "a");
    assert_eq!(acd.waiting("q"), ["high"]);
}

#[test]
fn after_contact_work_times_out_or_ends_early() {
    let mut acd = Acd::new(&AcdConfig {
        queues: vec![queue("q", Strategy::LongestIdle)],
        profiles: vec![profile("p", &[("q", 1, 0)], 30)],
        agents: vec![agent("a", "p", &[]), agent("b", "p", &[])],
    })
    .unwrap();
    available(&mut acd, "a", 0);
    enqueue(&mut acd, ContactRequest::new("k1", "q"), S);
    acd.step(
        Event::Accept {
            contact: "k1".into(),
            agent: "a".into(),
        },
        2 * S,
    );
    let ds = acd.step(Event::ContactEnded { agent: "a".into() }, 62 * S);
    assert_eq!(
        ds,
        vec![Decision::AcwStarted {
            agent: "a".into(),
            until_ms: 92 * S
        }]
    );
    assert_eq!(
        acd.agent_state("a"),
        Some(AgentState::AfterContactWork { until_ms: 92 * S })
    );
    assert!(offers(&enqueue(&mut acd, ContactRequest::new("k2", "q"), 70 * S)).is_empty());
    assert_eq!(acd.next_deadline(), Some(92 * S));
    let ds = acd.step(Event::Tick, 92 * S);
    assert_eq!(ds[0], Decision::AcwEnded { agent: "a".into() });
    assert_eq!(offers(&ds), vec![("k2".into(), "a".into())]);
    assert_eq!(acd.agent_totals("a"), Some((60 * S, 1)));
    acd.step(
        Event::Accept {
            contact: "k2".into(),
            agent: "a".into(),
        },
        93 * S,
    );

    available(&mut acd, "b", 100 * S);
    enqueue(&mut acd, ContactRequest::new("k3", "q"), 100 * S);
    acd.step(
        Event::Accept {
            contact: "k3".into(),
            agent: "b".into(),
        },
        100 * S,
    );
    acd.step(Event::ContactEnded { agent: "b".into() }, 110 * S);
    enqueue(&mut acd, ContactRequest::new("k4", "q"), 111 * S);
    let ds = acd.step(Event::AcwDone { agent: "b".into() }, 115 * S);
    assert_eq!(offers(&ds), vec![("k4".into(), "b".into())]);
}

#[test]
fn missed_offer_returns_the_contact_to_the_head_of_the_queue() {
    let mut acd = single(Strategy::LongestIdle, &["a", "b"]);
    available(&mut acd, "a", 0);
    assert_eq!(
        offered_agent(&enqueue(&mut acd, ContactRequest::new("k1", "q"), S)),
        "a"
    );
    enqueue(&mut acd, ContactRequest::new("k2", "q"), 2 * S);
    let mut urgent = ContactRequest::new("urgent", "q");
    urgent.priority = 1;
    enqueue(&mut acd, urgent, 3 * S);
    assert_eq!(acd.waiting("q"), ["urgent", "k2"]);
    // Ring timeout (20 s): a misses, k1 goes back in front of everyone.
    assert_eq!(acd.next_deadline(), Some(21 * S));
    let ds = acd.step(Event::Tick, 21 * S);
    assert_eq!(
        ds,
        vec![Decision::Missed {
            contact: "k1".into(),
            agent: "a".into()
        }]
    );
    assert_eq!(acd.waiting("q"), ["k1", "urgent", "k2"]);
    assert_eq!(acd.agent_state("a"), Some(AgentState::Missed));
    assert_eq!(acd.position("k1").map(|p| p.1), Some(1));
    assert_eq!(
        offers(&available(&mut acd, "b", 22 * S)),
        vec![("k1".into(), "b".into())]
    );
    // A rejection works the same way; the Missed agent comes back only by setting a status.
    let ds = acd.step(
        Event::Reject {
            contact: "k1".into(),
            agent: "b".into(),
        },
        23 * S,
    );
    assert_eq!(
        ds,
        vec![Decision::Missed {
            contact: "k1".into(),
            agent: "b".into()
        }]
    );
    assert_eq!(
        offers(&available(&mut acd, "a", 24 * S)),
        vec![("k1".into(), "a".into())]
    );
}

#[test]
fn capacity_max_wait_and_overflow() {
    let mut main = queue("main", Strategy::LongestIdle);
    main.max_contacts = Some(1);
    main.max_wait_s = Some(60);
    main.overflow = Some("spill".into());
    let mut spill = queue("spill", Strategy::LongestIdle);
    spill.max_contacts = Some(1);
    spill.max_wait_s = Some(30);
    let mut acd = Acd::new(&AcdConfig {
        queues: vec![main, spill],
        profiles: vec![profile("p", &[("main", 1, 0), ("spill", 1, 0)], 0)],
        agents: vec![agent("a", "p", &[])],
    })
    .unwrap();
    assert_eq!(
        enqueue(&mut acd, ContactRequest::new("k1", "main"), 0),
        vec![Decision::Queued {
            contact: "k1".into(),
            queue: "main".into()
        }]
    );
    let ds = enqueue(&mut acd, ContactRequest::new("k2", "main"), S);
    assert_eq!(
        ds[0],
        Decision::Overflow {
            contact: "k2".into(),
            from: "main".into(),
            to: "spill".into()
        }
    );
    assert_eq!(
        enqueue(&mut acd, ContactRequest::new("k3", "main"), 2 * S),
        vec![Decision::AtCapacity {
            contact: "k3".into(),
            queue: "main".into()
        }]
    );
    // k2 times out of spill (no overflow target) at 31 s.
    assert_eq!(
        acd.step(Event::Tick, 31 * S),
        vec![Decision::Timeout {
            contact: "k2".into(),
            queue: "spill".into()
        }]
    );
    // k1 overflows from main to spill at 60 s and waits there.
    let ds = acd.step(Event::Tick, 60 * S);
    assert_eq!(
        ds[0],
        Decision::Overflow {
            contact: "k1".into(),
            from: "main".into(),
            to: "spill".into()
        }
    );
    assert_eq!(acd.waiting("spill"), ["k1"]);
    let stats = acd.queue_stats("spill", 70 * S).unwrap();
    assert_eq!(
        (stats.waiting, stats.oldest_wait_ms, stats.agents_staffed),
        (1, 10 * S, 0)
    );
}

#[test]
fn break_codes_are_not_routable_and_abandon_withdraws_offers() {
    let mut acd = single(Strategy::LongestIdle, &["a"]);
    acd.step(
        Event::SetStatus {
            agent: "a".into(),
            status: AgentStatus::NotRoutable("Lunch".into()),
        },
        0,
    );
    assert_eq!(
        acd.agent_state("a"),
        Some(AgentState::NotRoutable("Lunch".into()))
    );
    assert!(offers(&enqueue(&mut acd, ContactRequest::new("k", "q"), S)).is_empty());
    assert_eq!(offered_agent(&available(&mut acd, "a", 2 * S)), "a");
    let ds = acd.step(
        Event::Abandon {
            contact: "k".into(),
        },
        3 * S,
    );
    assert_eq!(
        ds,
        vec![Decision::RetractOffer {
            contact: "k".into(),
            agent: "a".into()
        }]
    );
    assert_eq!(acd.agent_state("a"), Some(AgentState::Available));
    assert!(acd.waiting("q").is_empty());
    assert!(matches!(
        acd.step(
            Event::Accept {
                contact: "k".into(),
                agent: "a".into()
            },
            4 * S
        )[0],
        Decision::Ignored { .. }
    ));
}

#[test]
fn a_callback_keeps_the_callers_place() {
    let mut acd = single(Strategy::LongestIdle, &["a"]);
    enqueue(&mut acd, ContactRequest::new("k1", "q"), 100 * S);
    let mut callback = ContactRequest::new("cb", "q");
    callback.waiting_since_ms = Some(50 * S);
    enqueue(&mut acd, callback, 200 * S);
    assert_eq!(acd.waiting("q"), ["cb", "k1"]);
    let (queue, position, _ewt) = acd.position("k1").unwrap();
    assert_eq!((queue.as_str(), position), ("q", 2));
}

#[test]
fn configuration_errors_name_the_culprit() {
    let err = Acd::new(&AcdConfig {
        queues: vec![queue("q", Strategy::LongestIdle)],
        profiles: vec![profile("p", &[("nope", 1, 0)], 0)],
        agents: vec![],
    })
    .err()
    .unwrap();
    assert_eq!(
        err.to_string(),
        "routing profile \"p\" refers to unknown queue \"nope\""
    );
}

#[test]
fn a_break_chosen_during_a_contact_applies_after_it() {
    let mut acd = Acd::new(&AcdConfig {
        queues: vec![queue("q", Strategy::LongestIdle)],
        profiles: vec![profile("p", &[("q", 1, 0)], 10)],
        agents: vec![agent("a", "p", &[])],
    })
    .unwrap();
    available(&mut acd, "a", 0);
    enqueue(&mut acd, ContactRequest::new("k1", "q"), S);
    acd.step(
        Event::Accept {
            contact: "k1".into(),
            agent: "a".into(),
        },
        S,
    );
    acd.step(
        Event::SetStatus {
            agent: "a".into(),
            status: AgentStatus::NotRoutable("Lunch".into()),
        },
        5 * S,
    );
    assert_eq!(
        acd.agent_state("a"),
        Some(AgentState::OnContact("k1".into()))
    );
    enqueue(&mut acd, ContactRequest::new("k2", "q"), 6 * S);
    acd.step(Event::ContactEnded { agent: "a".into() }, 30 * S);
    let ds = acd.step(Event::Tick, 40 * S);
    assert_eq!(
        ds,
        vec![Decision::AcwEnded { agent: "a".into() }],
        "no offer: the agent is on lunch"
    );
    assert_eq!(
        acd.agent_state("a"),
        Some(AgentState::NotRoutable("Lunch".into()))
    );
    assert_eq!(
        offers(&available(&mut acd, "a", 50 * S)),
        vec![("k2".into(), "a".into())]
    );
}

#[test]
fn ring_all_keeps_ringing_the_others_when_one_declines() {
    let mut acd = single(Strategy::RingAll, &["a", "b"]);
    available(&mut acd, "a", 0);
    available(&mut acd, "b", 0);
    enqueue(&mut acd, ContactRequest::new("k", "q"), S);
    let ds = acd.step(
        Event::Reject {
            contact: "k".into(),
            agent: "a".into(),
        },
        2 * S,
    );
    assert_eq!(
        ds,
        vec![Decision::Missed {
            contact: "k".into(),
            agent: "a".into()
        }]
    );
    assert!(acd.waiting("q").is_empty(), "still offered to b");
    // b does not answer either: the contact returns to the queue's head.
    let ds = acd.step(Event::Tick, 21 * S);
    assert_eq!(
        ds,
        vec![Decision::Missed {
            contact: "k".into(),
            agent: "b".into()
        }]
    );
    assert_eq!(acd.waiting("q"), ["k"]);
}

#[test]
fn agents_can_join_at_run_time() {
    let mut acd = single(Strategy::LongestIdle, &[]);
    enqueue(&mut acd, ContactRequest::new("k", "q"), 0);
    acd.add_agent(&agent("late", "p", &[])).unwrap();
    assert_eq!(acd.agent_state("late"), Some(AgentState::Offline));
    assert_eq!(
        offers(&available(&mut acd, "late", S)),
        vec![("k".into(), "late".into())]
    );
    assert!(acd.add_agent(&agent("late", "p", &[])).is_err());
    assert!(acd.add_agent(&agent("x", "missing", &[])).is_err());
}

#[test]
fn queue_statistics_count_answers_service_level_and_handle_time() {
    let mut acd = single(Strategy::LongestIdle, &["a"]);
    available(&mut acd, "a", 0);
    // k1 answered after 5 s (in service level), talk 60 s.
    enqueue(&mut acd, ContactRequest::new("k1", "q"), 0);
    acd.step(
        Event::Accept {
            contact: "k1".into(),
            agent: "a".into(),
        },
        5 * S,
    );
    // k2 waits 65 s behind k1 (out of service level), talk 20 s; k3 abandons.
    enqueue(&mut acd, ContactRequest::new("k2", "q"), 10 * S);
    enqueue(&mut acd, ContactRequest::new("k3", "q"), 11 * S);
    acd.step(
        Event::Abandon {
            contact: "k3".into(),
        },
        12 * S,
    );
    acd.step(Event::ContactEnded { agent: "a".into() }, 65 * S);
    acd.step(
        Event::Accept {
            contact: "k2".into(),
            agent: "a".into(),
        },
        75 * S,
    );
    acd.step(Event::ContactEnded { agent: "a".into() }, 95 * S);
    let s = acd.queue_stats("q", 130 * S).unwrap();
    assert_eq!(
        (
            s.counters.answered,
            s.counters.answered_within_sl,
            s.counters.abandoned
        ),
        (2, 1, 1)
    );
    assert_eq!(s.asa_ms, (5 + 65) * S / 2);
    assert_eq!(s.aht_ms, (60 + 20) * S / 2);
    assert!((s.service_level - 0.5).abs() < 1e-9);
    assert_eq!((s.waiting, s.agents_available, s.agents_staffed), (0, 1, 1));
}

#[test]
fn an_imported_flows_queue_arn_routes_through_an_alias() {
    let arn = "arn:aws:connect:us-east-1:111122223333:instance/i/queue/q-1";
    let mut q = queue("billing", Strategy::LongestIdle);
    q.aliases = vec![arn.into()];
    let mut acd = Acd::new(&AcdConfig {
        queues: vec![q],
        profiles: vec![profile("p", &[("billing", 1, 0)], 0)],
        agents: vec![agent("a", "p", &[])],
    })
    .unwrap();
    available(&mut acd, "a", 0);
    let ds = enqueue(&mut acd, ContactRequest::new("k", arn), S);
    assert_eq!(
        ds[0],
        Decision::Queued {
            contact: "k".into(),
            queue: "billing".into()
        }
    );
    assert_eq!(offers(&ds), vec![("k".into(), "a".into())]);
    assert_eq!(acd.queue_stats(arn, S).unwrap().counters.overflowed_out, 0);
}

/// Adding an agent that is already there (a second login) or one with a bad proficiency is
/// refused and changes nothing: the agents already in keep working.
#[test]
fn a_refused_agent_leaves_the_acd_as_it_was() {
    let mut acd = Acd::new(&AcdConfig {
        queues: vec![queue("sales", Strategy::LongestIdle)],
        profiles: vec![profile("p", &[("sales", 1, 0)], 0)],
        agents: vec![agent("ann", "p", &[])],
    })
    .unwrap();
    assert!(
        acd.add_agent(&agent("ann", "p", &[])).is_err(),
        "ann is in already"
    );
    assert!(
        acd.add_agent(&agent("bob", "p", &[("sales", 9)])).is_err(),
        "proficiency 9 is out of 1..=5"
    );
    assert_eq!(acd.agent_state("ann"), Some(AgentState::Offline));
    assert_eq!(acd.agent_state("bob"), None);
    acd.add_agent(&agent("bob", "p", &[("sales", 3)])).unwrap();
    assert_eq!(acd.agent_state("bob"), Some(AgentState::Offline));
    assert_eq!(acd.agent_state("ann"), Some(AgentState::Offline));
}
