//! A long random (seeded) run of the ACD against a simple model of what must hold: offers go
//! only to agents that are available and idle, a contact is offered to one agent at a time
//! (outside ring-all), every waiting contact is accounted for, and nothing panics.

use std::collections::{BTreeMap, HashMap, HashSet};

use inbound::acd::{
    Acd, AcdConfig, AgentConfig, AgentState, AgentStatus, ContactRequest, CriteriaStep, Decision,
    Escalation, Event, ProfileQueue, QueueConfig, RoutingProfileConfig, Strategy,
};

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn config() -> AcdConfig {
    let strategies = [
        Strategy::LongestIdle,
        Strategy::RoundRobin,
        Strategy::LeastTalkTime,
        Strategy::FewestCalls,
        Strategy::SkillsWeighted,
    ];
    let queues: Vec<QueueConfig> = (0..6)
        .map(|q| QueueConfig {
            strategy: strategies[q % strategies.len()],
            max_contacts: Some(15),
            max_wait_s: Some(300),
            overflow: (q < 5).then(|| format!("q{}", q + 1)),
            escalation: vec![Escalation {
                after_s: 60,
                priority: 1,
            }],
            ..QueueConfig::new(&format!("q{q}"))
        })
        .collect();
    let profiles = (0..3)
        .map(|p| RoutingProfileConfig {
            name: format!("p{p}"),
            queues: (0..3)
                .map(|i| ProfileQueue {
                    queue: format!("q{}", (p * 2 + i) % 6),
                    priority: 1 + i as u8,
                    delay_s: (i as i64) * 10,
                })
                .collect(),
            acw_s: (p as i64) * 5,
        })
        .collect();
    let agents = (0..12)
        .map(|a| AgentConfig {
            id: format!("a{a}"),
            profile: format!("p{}", a % 3),
            skills: BTreeMap::from([(format!("s{}", a % 4), 1 + (a % 5) as u8)]),
        })
        .collect();
    AcdConfig {
        queues,
        profiles,
        agents,
    }
}

#[test]
fn random_events_keep_the_acd_consistent() {
    let cfg = config();
    let mut acd = Acd::new(&cfg).unwrap();
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    let agents: Vec<String> = cfg.agents.iter().map(|a| a.id.clone()).collect();
    let mut now = 0i64;
    // Model: contacts in the ACD (waiting or offered) and who holds an offer.
    let mut in_acd: HashSet<String> = HashSet::new();
    let mut offered: HashMap<String, String> = HashMap::new(); // agent -> contact
    let mut on_contact: HashSet<String> = HashSet::new();
    let mut next_contact = 0;
    let mut counts: HashMap<&'static str, usize> = HashMap::new();
    for _ in 0..60_000 {
        now += rng.below(3_000) as i64;
        let before: HashMap<String, AgentState> = agents
            .iter()
            .map(|a| (a.clone(), acd.agent_state(a).unwrap()))
            .collect();
        let event = match rng.below(10) {
            0..=2 => {
                next_contact += 1;
                let mut r =
                    ContactRequest::new(&format!("k{next_contact}"), &format!("q{}", rng.below(6)));
                r.priority = 1 + rng.below(9) as i64;
                if rng.below(3) == 0 {
                    r.criteria = vec![
                        CriteriaStep {
                            skills: BTreeMap::from([(format!("s{}", rng.below(4)), 3)]),
                            expiry_s: Some(20),
                        },
                        CriteriaStep::default(),
                    ];
                }
                Event::Enqueue(r)
            }
            3 => {
                let a = &agents[rng.below(agents.len() as u64) as usize];
                let status = match rng.below(4) {
                    0 => AgentStatus::Offline,
                    1 => AgentStatus::NotRoutable("Break".into()),
                    _ => AgentStatus::Available,
                };
                Event::SetStatus {
                    agent: a.clone(),
                    status,
                }
            }
            4 | 5 => match offered
                .iter()
                .nth(rng.below(offered.len().max(1) as u64) as usize)
            {
                Some((a, c)) if rng.below(4) > 0 => Event::Accept {
                    contact: c.clone(),
                    agent: a.clone(),
                },
                Some((a, c)) => Event::Reject {
                    contact: c.clone(),
                    agent: a.clone(),
                },
                None => Event::Tick,
            },
            6 => match on_contact
                .iter()
                .nth(rng.below(on_contact.len().max(1) as u64) as usize)
            {
                Some(a) => Event::ContactEnded { agent: a.clone() },
                None => Event::Tick,
            },
            7 => match in_acd
                .iter()
                .nth(rng.below(in_acd.len().max(1) as u64) as usize)
            {
                Some(c) => Event::Abandon { contact: c.clone() },
                None => Event::Tick,
            },
            _ => Event::Tick,
        };
        let set_available = match &event {
            Event::SetStatus {
                agent,
                status: AgentStatus::Available,
            } => Some(agent.clone()),
            _ => None,
        };
        let ended = match &event {
            Event::ContactEnded { agent } => Some(agent.clone()),
            _ => None,
        };
        if let Some(a) = &ended {
            on_contact.remove(a);
        }
        if let Event::Enqueue(r) = &event {
            in_acd.insert(r.contact_id.clone());
        }
        let mut retracted: HashSet<String> = HashSet::new();
        let answering = match &event {
            Event::Accept { agent, .. } | Event::Reject { agent, .. } => Some(agent.clone()),
            _ => None,
        };
        let mut timed_out: HashSet<String> = HashSet::new();
        let abandoning = match &event {
            Event::Abandon { contact } => Some(contact.clone()),
            _ => None,
        };
        let mut left: HashSet<String> = HashSet::new();
        for d in acd.step(event, now) {
            match &d {
                Decision::Offer { contact, agent, .. } => {
                    assert!(
                        in_acd.contains(contact),
                        "offer of unknown contact {contact}"
                    );
                    assert!(
                        !offered.values().any(|c| c == contact),
                        "{contact} offered twice (no ring-all here)"
                    );
                    assert!(
                        !offered.contains_key(agent) && !on_contact.contains(agent),
                        "{agent} is busy"
                    );
                    // Before this event the agent was available, or this event made it so: its own
                    // status change, its contact ending (no ACW), or an ACW timer running out.
                    let prior = &before[agent];
                    let ok = match prior {
                        AgentState::Available => true,
                        AgentState::AfterContactWork { until_ms } => *until_ms <= now,
                        AgentState::OnContact(_) => ended.as_deref() == Some(agent.as_str()),
                        AgentState::Offline | AgentState::NotRoutable(_) | AgentState::Missed => {
                            set_available.as_deref() == Some(agent.as_str())
                        }
                        // Its offer was withdrawn earlier in this step (the caller left).
                        // or it missed the offer (timer) and then set itself Available.
                        AgentState::Offered(_) => {
                            retracted.contains(agent)
                                || (timed_out.contains(agent)
                                    && set_available.as_deref() == Some(agent.as_str()))
                        }
                    };
                    assert!(ok, "{agent} was {prior:?} at {now}");
                    offered.insert(agent.clone(), contact.clone());
                }
                Decision::Connected { contact, agent } => {
                    assert_eq!(offered.remove(agent).as_ref(), Some(contact));
                    in_acd.remove(contact);
                    on_contact.insert(agent.clone());
                }
                Decision::Missed { contact, agent } => {
                    assert_eq!(offered.remove(agent).as_ref(), Some(contact));
                    timed_out.insert(agent.clone());
                }
                Decision::RetractOffer { contact, agent } => {
                    assert_eq!(offered.remove(agent).as_ref(), Some(contact));
                    retracted.insert(agent.clone());
                }
                Decision::Timeout { contact, .. } | Decision::AtCapacity { contact, .. } => {
                    in_acd.remove(contact);
                    left.insert(contact.clone());
                }
                Decision::AcwStarted { .. }
                | Decision::AcwEnded { .. }
                | Decision::Queued { .. }
                | Decision::Overflow { .. } => {}
                // An answer that came after the ring timeout (which ran first, in this step).
                Decision::Ignored { .. }
                    if answering.as_ref().is_some_and(|a| timed_out.contains(a)) => {}
                // A caller leaving after max wait already took the contact out (timers run first).
                Decision::Ignored { .. }
                    if abandoning.as_ref().is_some_and(|c| left.contains(c)) => {}
                Decision::Ignored { reason } => panic!("model sent a bad event: {reason}"),
            }
            *counts
                .entry(match d {
                    Decision::Offer { .. } => "offer",
                    Decision::Connected { .. } => "connected",
                    Decision::Missed { .. } => "missed",
                    Decision::Overflow { .. } => "overflow",
                    Decision::Timeout { .. } => "timeout",
                    Decision::AtCapacity { .. } => "at_capacity",
                    _ => "other",
                })
                .or_default() += 1;
        }
        if let Some(c) = &abandoning {
            in_acd.remove(c);
        }
        // ContactEnded takes the agent off its contact.
        on_contact.retain(|a| matches!(acd.agent_state(a), Some(AgentState::OnContact(_))));
        // Every offer the model knows is what the ACD shows, and waiting contacts add up.
        for (a, c) in &offered {
            assert_eq!(acd.agent_state(a), Some(AgentState::Offered(c.clone())));
        }
        let waiting: usize = (0..6).map(|q| acd.waiting(&format!("q{q}")).len()).sum();
        assert_eq!(waiting + offered.len(), in_acd.len());
    }
    for kind in [
        "offer",
        "connected",
        "missed",
        "overflow",
        "timeout",
        "at_capacity",
    ] {
        assert!(
            counts.get(kind).copied().unwrap_or(0) > 0,
            "the run never produced {kind}: {counts:?}"
        );
    }
}
