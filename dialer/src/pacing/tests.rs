//! Unit tests of the pacing state machine, driven by a virtual clock.

use foundation::clock::{Clock, VirtualClock};

use super::*;

const T0: i64 = 1_767_225_600_000;

struct Rig {
    clock: VirtualClock,
    pacer: Pacer,
}

impl Rig {
    fn new(mode: Mode) -> Self {
        Self {
            clock: VirtualClock::at_ms(T0),
            pacer: Pacer::new(PacerConfig {
                mode,
                ..PacerConfig::default()
            }),
        }
    }

    fn now(&self) -> Ms {
        self.clock.now_ms()
    }

    fn advance_ms(&self, ms: u64) {
        self.clock.advance(std::time::Duration::from_millis(ms));
    }

    fn input(&mut self, i: Input) -> Vec<Output> {
        let now = self.now();
        self.pacer.handle_input(now, i);
        self.drain()
    }

    fn tick(&mut self) -> Vec<Output> {
        let now = self.now();
        self.pacer.tick(now);
        self.drain()
    }

    fn drain(&mut self) -> Vec<Output> {
        std::iter::from_fn(|| self.pacer.poll_output()).collect()
    }

    fn dialed(&mut self) -> u32 {
        self.tick()
            .iter()
            .map(|o| {
                if let Output::Dial { count } = o {
                    *count
                } else {
                    0
                }
            })
            .sum()
    }
}

#[test]
fn progressive_dials_one_line_per_idle_agent_and_redials_failures() {
    let mut r = Rig::new(Mode::Progressive {
        lines_per_agent: 1.0,
    });
    for a in 0..3 {
        r.input(Input::AgentLoggedIn { agent: a });
    }
    assert_eq!(r.dialed(), 3);
    for c in 1..=3 {
        r.input(Input::CallPlaced { call: c });
    }
    r.advance_ms(1000);
    assert_eq!(r.dialed(), 0, "all idle agents already have a line");
    r.advance_ms(3000);
    r.input(Input::CallFailed { call: 2 });
    assert_eq!(r.dialed(), 1);
}

#[test]
fn live_answer_goes_to_the_longest_idle_agent_at_once() {
    let mut r = Rig::new(Mode::Progressive {
        lines_per_agent: 1.0,
    });
    r.input(Input::AgentLoggedIn { agent: 7 });
    r.advance_ms(500);
    r.input(Input::AgentLoggedIn { agent: 3 });
    r.tick();
    r.input(Input::CallPlaced { call: 1 });
    r.input(Input::CallPlaced { call: 2 });
    r.advance_ms(9000);
    let out = r.input(Input::CallAnsweredHuman { call: 2 });
    assert_eq!(out, vec![Output::Connect { call: 2, agent: 7 }]);
    assert_eq!(r.pacer.poll_timeout(), None);
}

#[test]
fn live_answer_without_agent_is_abandoned_exactly_at_the_window() {
    let mut r = Rig::new(Mode::Ratio { level: 2.0 });
    r.input(Input::AgentLoggedIn { agent: 1 });
    assert_eq!(r.dialed(), 2);
    r.input(Input::CallPlaced { call: 10 });
    r.input(Input::CallPlaced { call: 11 });
    r.advance_ms(8000);
    assert_eq!(
        r.input(Input::CallAnsweredHuman { call: 10 }),
        vec![Output::Connect { call: 10, agent: 1 }]
    );
    r.advance_ms(1000);
    assert!(
        r.input(Input::CallAnsweredHuman { call: 11 }).is_empty(),
        "no agent: waits"
    );
    let deadline = r.pacer.poll_timeout().expect("a deadline");
    assert_eq!(deadline, r.now() + 2000);
    r.advance_ms(1999);
    r.pacer.handle_timeout(r.now());
    assert!(r.drain().is_empty());
    r.advance_ms(1);
    r.pacer.handle_timeout(r.now());
    assert_eq!(r.drain(), vec![Output::Abandon { call: 11 }]);
    let s = r.pacer.snapshot(r.now());
    assert_eq!((s.total_answers, s.total_abandons), (2, 1));
}

#[test]
fn waiting_answer_is_connected_when_an_agent_finishes_wrap_up_in_time() {
    let mut r = Rig::new(Mode::Ratio { level: 2.0 });
    r.input(Input::AgentLoggedIn { agent: 1 });
    r.tick();
    r.input(Input::CallPlaced { call: 1 });
    r.input(Input::CallPlaced { call: 2 });
    r.advance_ms(6000);
    r.input(Input::CallAnsweredHuman { call: 1 });
    r.advance_ms(60_000);
    r.input(Input::CallEnded { call: 1 });
    // call 2 was dialed ahead and is answered while the agent wraps up
    r.input(Input::CallAnsweredHuman { call: 2 });
    r.advance_ms(1500);
    assert_eq!(
        r.input(Input::WrapUpEnded { agent: 1 }),
        vec![Output::Connect { call: 2, agent: 1 }]
    );
    r.advance_ms(1000);
    r.pacer.handle_timeout(r.now());
    assert!(r.drain().is_empty());
    assert_eq!(r.pacer.snapshot(r.now()).total_abandons, 0);
}

#[test]
fn agent_logging_out_takes_no_new_call() {
    let mut r = Rig::new(Mode::Progressive {
        lines_per_agent: 1.0,
    });
    r.input(Input::AgentLoggedIn { agent: 1 });
    r.input(Input::AgentLoggedIn { agent: 2 });
    r.input(Input::AgentLogoutRequested { agent: 1 });
    assert_eq!(r.dialed(), 1, "only agent 2 counts");
    r.input(Input::CallPlaced { call: 5 });
    r.advance_ms(7000);
    assert_eq!(
        r.input(Input::CallAnsweredHuman { call: 5 }),
        vec![Output::Connect { call: 5, agent: 2 }]
    );
    r.input(Input::AgentBusy { agent: 2 });
    r.input(Input::AgentLoggedOut { agent: 1 });
    r.advance_ms(1000);
    assert_eq!(r.dialed(), 0);
}

#[test]
fn ratio_counts_connected_calls_against_ready_plus_talking_agents() {
    let mut r = Rig::new(Mode::Ratio { level: 1.5 });
    for a in 0..4 {
        r.input(Input::AgentLoggedIn { agent: a });
    }
    assert_eq!(r.dialed(), 6);
    for c in 0..6 {
        r.input(Input::CallPlaced { call: c });
    }
    r.advance_ms(10_000);
    r.input(Input::CallAnsweredHuman { call: 0 });
    r.input(Input::CallNoAnswer { call: 1 });
    // goal 6, existing 4 ringing + 1 connected
    assert_eq!(r.dialed(), 1);
}

/// Feeds a pacer with synthetic traffic: 10 agents, a live answer every 5th dial after 10 s, the
/// other dials failing at 20 s, talks of 100 s and wrap-ups of 10 s, for `secs` seconds.
fn train(r: &mut Rig, secs: u64) {
    use std::collections::BTreeMap;
    let mut next_call = 1000u64;
    let mut ring: BTreeMap<CallId, (Ms, bool)> = BTreeMap::new();
    let mut talk: BTreeMap<AgentId, (Ms, CallId)> = BTreeMap::new();
    let mut wrap: BTreeMap<AgentId, Ms> = BTreeMap::new();
    for _ in 0..secs {
        let now = r.now();
        let due: Vec<(CallId, bool)> = ring
            .iter()
            .filter(|(_, v)| v.0 <= now)
            .map(|(&c, v)| (c, v.1))
            .collect();
        for (c, human) in due {
            ring.remove(&c);
            let out = if human {
                r.input(Input::CallAnsweredHuman { call: c })
            } else {
                r.input(Input::CallFailed { call: c })
            };
            for o in out {
                if let Output::Connect { call, agent } = o {
                    talk.insert(agent, (now + 100_000, call));
                }
            }
        }
        let ended: Vec<(AgentId, CallId)> = talk
            .iter()
            .filter(|(_, v)| v.0 <= now)
            .map(|(&a, v)| (a, v.1))
            .collect();
        for (a, c) in ended {
            talk.remove(&a);
            r.input(Input::CallEnded { call: c });
            wrap.insert(a, now + 10_000);
        }
        let freed: Vec<AgentId> = wrap
            .iter()
            .filter(|(_, t)| **t <= now)
            .map(|(&a, _)| a)
            .collect();
        for a in freed {
            wrap.remove(&a);
            for o in r.input(Input::WrapUpEnded { agent: a }) {
                if let Output::Connect { call, agent } = o {
                    talk.insert(agent, (now + 100_000, call));
                }
            }
        }
        r.pacer.handle_timeout(now);
        let mut outs = r.drain();
        r.pacer.tick(now);
        outs.extend(r.drain());
        for o in outs {
            if let Output::Dial { count } = o {
                for _ in 0..count {
                    let c = next_call;
                    next_call += 1;
                    let human = c.is_multiple_of(5);
                    ring.insert(c, (now + if human { 10_000 } else { 20_000 }, human));
                    r.input(Input::CallPlaced { call: c });
                }
            }
        }
        r.advance_ms(1000);
    }
}

#[test]
fn predictive_warms_up_progressively_then_dials_ahead_of_agents() {
    let mut r = Rig::new(Mode::Predictive);
    for a in 0..10 {
        r.input(Input::AgentLoggedIn { agent: a });
    }
    assert_eq!(r.dialed(), 10, "progressive before any observation");
    assert!(!r.pacer.snapshot(r.now()).predictive_active);
    train(&mut r, 3600);
    let s = r.pacer.snapshot(r.now());
    assert!(s.predictive_active);
    assert!(
        (s.p_human - 0.2).abs() < 0.02,
        "learnt answer rate {}",
        s.p_human
    );
    assert!(
        (s.talk_mean_s - 100.0).abs() < 5.0,
        "learnt talk {}",
        s.talk_mean_s
    );
    assert!(
        (s.wrap_mean_s - 10.0).abs() < 2.0,
        "learnt wrap {}",
        s.wrap_mean_s
    );
    // dialing ahead: more lines in flight than idle agents
    assert!(s.calls_ringing > s.agents_ready, "{s:?}");
}

#[test]
fn predictive_falls_back_to_progressive_when_the_window_budget_is_spent() {
    let mut r = Rig::new(Mode::Predictive);
    for a in 0..10 {
        r.input(Input::AgentLoggedIn { agent: a });
    }
    train(&mut r, 3600);
    // spend the budget: a burst of live answers nobody can take
    let mut abandoned = 0;
    for c in 0..40u64 {
        r.input(Input::CallPlaced { call: 900_000 + c });
    }
    r.advance_ms(5000);
    for c in 0..40u64 {
        r.input(Input::CallAnsweredHuman { call: 900_000 + c });
    }
    r.advance_ms(2000);
    r.pacer.handle_timeout(r.now());
    abandoned += r
        .drain()
        .iter()
        .filter(|o| matches!(o, Output::Abandon { .. }))
        .count();
    assert!(abandoned > 20);
    let s = r.pacer.snapshot(r.now());
    assert!(s.window_abandons as f64 > 0.03 * s.window_answers as f64);
    let ready = s.agents_ready as i64;
    let lines = (s.calls_ringing + s.calls_waiting) as i64;
    let n = r.dialed() as i64;
    assert_eq!(n, (ready - lines).max(0), "only the progressive floor");
}

#[test]
fn same_inputs_give_same_outputs() {
    let mut a = Rig::new(Mode::Predictive);
    let mut b = Rig::new(Mode::Predictive);
    for r in [&mut a, &mut b] {
        for ag in 0..5 {
            r.input(Input::AgentLoggedIn { agent: ag });
        }
        train(r, 900);
    }
    assert_eq!(a.tick(), b.tick());
    assert_eq!(
        serde_json::to_string(&a.pacer.snapshot(a.now())).unwrap(),
        serde_json::to_string(&b.pacer.snapshot(b.now())).unwrap()
    );
}
