//! Unit tests of [`Acd::reconfigure`] on a virtual clock: a strategy change decides the next
//! offer, a profile that gains a queue gets its waiting contact offered at once, removing a busy
//! queue or a used profile is refused with nothing changed, and counters, places and wait times
//! survive the change.

use std::time::Duration;

use foundation::Clock;
use foundation::clock::VirtualClock;

use super::*;

fn profile(name: &str, queues: &[&str], acw_s: i64) -> RoutingProfileConfig {
    RoutingProfileConfig {
        name: name.into(),
        queues: queues
            .iter()
            .map(|q| ProfileQueue {
                queue: (*q).into(),
                priority: 1,
                delay_s: 0,
            })
            .collect(),
        acw_s,
    }
}

fn agent(id: &str, profile: &str) -> AgentConfig {
    AgentConfig {
        id: id.into(),
        profile: profile.into(),
        skills: Default::default(),
    }
}

fn config(queues: Vec<QueueConfig>, profiles: Vec<RoutingProfileConfig>) -> AcdConfig {
    AcdConfig {
        queues,
        profiles,
        agents: Vec::new(),
    }
}

fn set(acd: &mut Acd, a: &str, status: AgentStatus, now: i64) -> Vec<Decision> {
    acd.step(
        Event::SetStatus {
            agent: a.into(),
            status,
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

/// Offers `contact` (expected to go to `agent`), accepts it, talks `talk_s` and ends it.
fn handle(acd: &mut Acd, clock: &VirtualClock, contact: &str, talk_s: u64) -> String {
    let ds = acd.step(
        Event::Enqueue(ContactRequest::new(contact, "q1")),
        clock.now_ms(),
    );
    let (c, a) = offers(&ds).pop().expect("an offer");
    clock.advance(Duration::from_secs(2));
    acd.step(
        Event::Accept {
            contact: c,
            agent: a.clone(),
        },
        clock.now_ms(),
    );
    clock.advance(Duration::from_secs(talk_s));
    acd.step(Event::ContactEnded { agent: a.clone() }, clock.now_ms());
    a
}

/// a handles a call and goes idle before b logs in: a is idle the longest, b has the fewest
/// calls. Returns who gets the next contact, with or without the switch to fewest calls.
fn next_agent(switch: bool) -> String {
    let clock = VirtualClock::at_ms(1_000_000);
    let base = config(vec![QueueConfig::new("q1")], vec![profile("p", &["q1"], 0)]);
    let mut acd = Acd::new(&base).unwrap();
    for a in ["a", "b"] {
        acd.add_agent(&agent(a, "p")).unwrap();
    }
    set(&mut acd, "a", AgentStatus::Available, clock.now_ms());
    assert_eq!(handle(&mut acd, &clock, "k1", 30), "a");
    clock.advance(Duration::from_secs(5));
    set(&mut acd, "b", AgentStatus::Available, clock.now_ms());
    clock.advance(Duration::from_secs(5));
    if switch {
        let mut q = QueueConfig::new("q1");
        q.strategy = Strategy::FewestCalls;
        let next = config(vec![q], base.profiles.clone());
        assert_eq!(acd.reconfigure(&next, clock.now_ms()).unwrap(), Vec::new());
    }
    handle(&mut acd, &clock, "k2", 1)
}

#[test]
fn a_new_strategy_decides_the_next_offer() {
    assert_eq!(next_agent(false), "a", "longest idle");
    assert_eq!(next_agent(true), "b", "fewest calls");
}

#[test]
fn a_profile_that_gains_a_queue_is_offered_its_waiting_contact_at_once() {
    let clock = VirtualClock::at_ms(1_000_000);
    let before = config(
        vec![QueueConfig::new("q1"), QueueConfig::new("q2")],
        vec![profile("p", &["q1"], 0), profile("p2", &["q2"], 0)],
    );
    let mut acd = Acd::new(&before).unwrap();
    acd.add_agent(&agent("a", "p")).unwrap();
    set(&mut acd, "a", AgentStatus::Available, clock.now_ms());
    let ds = acd.step(
        Event::Enqueue(ContactRequest::new("k", "q2")),
        clock.now_ms(),
    );
    assert!(offers(&ds).is_empty(), "nobody serves q2 yet");
    clock.advance(Duration::from_secs(7));
    let after = config(
        before.queues.clone(),
        vec![profile("p", &["q1", "q2"], 0), profile("p2", &["q2"], 0)],
    );
    let ds = acd.reconfigure(&after, clock.now_ms()).unwrap();
    assert_eq!(offers(&ds), vec![("k".to_string(), "a".to_string())]);
    acd.step(
        Event::Accept {
            contact: "k".into(),
            agent: "a".into(),
        },
        clock.now_ms(),
    );
    // The wait counts from the contact's arrival, not from the change.
    let s = acd.queue_stats("q2", clock.now_ms()).unwrap();
    assert_eq!((s.counters.answered, s.asa_ms), (1, 7_000));
    assert_eq!(
        acd.agent_state("a"),
        Some(AgentState::OnContact("k".into()))
    );
}

#[test]
fn removing_a_busy_queue_or_a_used_profile_is_refused_and_nothing_changes() {
    let clock = VirtualClock::at_ms(1_000_000);
    let before = config(
        vec![QueueConfig::new("q1"), QueueConfig::new("q2")],
        vec![profile("p", &["q1"], 0), profile("p2", &["q1"], 0)],
    );
    let mut acd = Acd::new(&before).unwrap();
    acd.add_agent(&agent("a", "p")).unwrap();
    acd.step(
        Event::Enqueue(ContactRequest::new("k", "q2")),
        clock.now_ms(),
    );
    // q2 gone, and its ring timeout changed on q1: refused as a whole.
    let mut q1 = QueueConfig::new("q1");
    q1.ring_timeout_s = 5;
    let no_q2 = config(
        vec![q1.clone()],
        vec![profile("p", &["q1"], 0), profile("p2", &["q1"], 0)],
    );
    assert_eq!(
        acd.reconfigure(&no_q2, clock.now_ms()),
        Err(ReconfigureError::QueueInUse {
            queue: "q2".into(),
            reason: "1 contact(s) waiting in it".into()
        })
    );
    assert_eq!(acd.waiting("q2"), vec!["k".to_string()]);
    set(&mut acd, "a", AgentStatus::Available, clock.now_ms());
    let ds = acd.step(
        Event::Enqueue(ContactRequest::new("j", "q1")),
        clock.now_ms(),
    );
    let ring = ds.iter().find_map(|d| match d {
        Decision::Offer {
            ring_timeout_ms, ..
        } => Some(*ring_timeout_ms),
        _ => None,
    });
    assert_eq!(ring, Some(20_000), "q1's ring timeout is unchanged");
    // The profile of a logged-in agent cannot go either.
    let no_p = config(
        vec![q1, QueueConfig::new("q2")],
        vec![profile("p2", &["q1"], 0)],
    );
    let e = acd.reconfigure(&no_p, clock.now_ms()).unwrap_err();
    assert_eq!(
        e,
        ReconfigureError::ProfileInUse {
            profile: "p".into(),
            agent: "a".into(),
            logged_in: true
        }
    );
    assert!(e.to_string().contains("\"p\""), "{e}");
    // An invalid configuration is refused with the start-up check's error.
    let bad = config(
        vec![QueueConfig::new("q1")],
        vec![profile("p", &["nope"], 0)],
    );
    assert!(matches!(
        acd.reconfigure(&bad, clock.now_ms()),
        Err(ReconfigureError::Invalid(ConfigError::UnknownQueue { .. }))
    ));
    assert_eq!(acd.waiting("q2"), vec!["k".to_string()]);
    // An idle queue can go, and a new one come.
    acd.step(
        Event::Abandon {
            contact: "k".into(),
        },
        clock.now_ms(),
    );
    let swapped = config(
        vec![QueueConfig::new("q1"), QueueConfig::new("q3")],
        vec![profile("p", &["q1"], 0), profile("p2", &["q1"], 0)],
    );
    acd.reconfigure(&swapped, clock.now_ms()).unwrap();
    assert!(acd.queue_stats("q2", clock.now_ms()).is_none());
    assert!(acd.queue_stats("q3", clock.now_ms()).is_some());
}

#[test]
fn counters_places_and_agents_survive_a_change() {
    let clock = VirtualClock::at_ms(1_000_000);
    let before = config(
        vec![QueueConfig::new("q0"), QueueConfig::new("q1")],
        vec![profile("p", &["q1"], 10)],
    );
    let mut acd = Acd::new(&before).unwrap();
    acd.add_agent(&agent("a", "p")).unwrap();
    set(&mut acd, "a", AgentStatus::Available, clock.now_ms());
    clock.advance(Duration::from_secs(1));
    handle(&mut acd, &clock, "k1", 30);
    let ended = clock.now_ms();
    // a is in ACW (10 s); two contacts wait.
    for k in ["w1", "w2"] {
        clock.advance(Duration::from_secs(1));
        acd.step(Event::Enqueue(ContactRequest::new(k, "q1")), clock.now_ms());
    }
    let stats_before = acd.queue_stats("q1", clock.now_ms()).unwrap();
    // q0 removed (q1 moves to another index), q1 gets a service level of 1 s and a longer ACW.
    let mut q1 = QueueConfig::new("q1");
    q1.service_level_s = 1;
    let after = config(
        vec![QueueConfig::new("q2"), q1],
        vec![profile("p", &["q1"], 60)],
    );
    assert_eq!(acd.reconfigure(&after, clock.now_ms()).unwrap(), Vec::new());
    let s = acd.queue_stats("q1", clock.now_ms()).unwrap();
    assert_eq!(s.counters, stats_before.counters);
    assert_eq!((s.counters.answered, s.asa_ms), (1, 2_000));
    assert_eq!(s.oldest_wait_ms, stats_before.oldest_wait_ms);
    assert_eq!(acd.waiting("q1"), vec!["w1".to_string(), "w2".to_string()]);
    // The ACW under way keeps its end; then a takes w1 (its place kept) after its wait.
    assert_eq!(
        acd.agent_state("a"),
        Some(AgentState::AfterContactWork {
            until_ms: ended + 10_000
        })
    );
    clock.advance(Duration::from_millis(
        (ended + 10_000 - clock.now_ms()) as u64,
    ));
    let ds = acd.step(Event::Tick, clock.now_ms());
    assert_eq!(offers(&ds), vec![("w1".to_string(), "a".to_string())]);
    acd.step(
        Event::Accept {
            contact: "w1".into(),
            agent: "a".into(),
        },
        clock.now_ms(),
    );
    // Waited 9 s: beyond the new 1 s service level.
    let s = acd.queue_stats("q1", clock.now_ms()).unwrap();
    assert_eq!(s.counters.answered, 2);
    assert_eq!(s.counters.answered_within_sl, 1);
    assert_eq!(s.asa_ms, (2_000 + 9_000) / 2);
    // The next contact ended starts the new 60 s ACW.
    clock.advance(Duration::from_secs(5));
    let ds = acd.step(Event::ContactEnded { agent: "a".into() }, clock.now_ms());
    assert!(ds.contains(&Decision::AcwStarted {
        agent: "a".into(),
        until_ms: clock.now_ms() + 60_000
    }));
}

#[test]
fn a_shorter_max_wait_applies_to_contacts_already_waiting() {
    let clock = VirtualClock::at_ms(1_000_000);
    let before = config(
        vec![QueueConfig::new("q1"), QueueConfig::new("q2")],
        vec![profile("p", &["q2"], 0)],
    );
    let mut acd = Acd::new(&before).unwrap();
    acd.step(
        Event::Enqueue(ContactRequest::new("k", "q1")),
        clock.now_ms(),
    );
    clock.advance(Duration::from_secs(40));
    acd.step(
        Event::Enqueue(ContactRequest::new("j", "q1")),
        clock.now_ms(),
    );
    let mut q1 = QueueConfig::new("q1");
    q1.max_wait_s = Some(30);
    q1.overflow = Some("q2".into());
    let after = config(vec![q1, QueueConfig::new("q2")], before.profiles.clone());
    let ds = acd.reconfigure(&after, clock.now_ms()).unwrap();
    assert_eq!(
        ds,
        vec![
            Decision::Overflow {
                contact: "k".into(),
                from: "q1".into(),
                to: "q2".into()
            },
            Decision::Queued {
                contact: "k".into(),
                queue: "q2".into()
            }
        ]
    );
    // j overflows 30 s after it came, not 30 s after the change.
    assert_eq!(acd.next_deadline(), Some(clock.now_ms() + 30_000));
}
