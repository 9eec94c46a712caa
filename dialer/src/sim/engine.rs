//! The discrete-event engine: a virtual clock, an event queue, the simulated network and agents,
//! and the pacer driven exactly as the campaign runner drives it (inputs, 1-s ticks, timeouts,
//! outputs).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use foundation::clock::{Clock, VirtualClock};
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::metrics::Recorder;
use super::model::{DialOutcome, Sampler};
use super::{SimConfig, SimMode, SimReport};
use crate::pacing::{AgentId, CallId, Input, Mode, Ms, Output, Pacer, PacerConfig};

const TICK_MS: Ms = 1_000;
/// Virtual epoch of the shift start (only offsets matter).
const EPOCH_MS: i64 = 1_767_225_600_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    Tick,
    Human(CallId),
    Machine(CallId),
    Busy(CallId),
    NoAnswer(CallId),
    Deadline,
    TalkEnd(AgentId, CallId),
    WrapEnd(AgentId),
    Step(usize),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum AgentPhase {
    Out,
    Idle,
    Talking { since: Ms },
    Wrap { since: Ms },
}

#[derive(Debug, Clone)]
struct SimAgent {
    phase: AgentPhase,
    leaving: bool,
    logged_since: Ms,
}

pub struct Engine {
    cfg: SimConfig,
    clock: VirtualClock,
    pacer: Pacer,
    sampler: Sampler,
    dial_rng: StdRng,
    work_rng: StdRng,
    queue: BinaryHeap<Reverse<(Ms, u64, Ev)>>,
    seq: u64,
    next_call: CallId,
    end: Ms,
    agents: Vec<SimAgent>,
    answered_at: BTreeMap<CallId, Ms>,
    wrap_next: Vec<Ms>,
    detect_ms: Ms,
    trace: bool,
    rec: Recorder,
}

impl Engine {
    pub fn new(cfg: &SimConfig) -> Self {
        let mode = match cfg.mode {
            SimMode::Progressive => Mode::Progressive {
                lines_per_agent: 1.0,
            },
            SimMode::Predictive | SimMode::Oracle => Mode::Predictive,
            SimMode::Ratio { level } => Mode::Ratio { level },
            SimMode::Vicidial => Mode::Vicidial,
        };
        let window_ms = (cfg.window_hours * 3_600_000.0) as Ms;
        let pacer = Pacer::new(PacerConfig {
            mode,
            abandon_cap: cfg.abandon_cap,
            abandon_window_ms: (cfg.model.abandon_window_s * 1000.0).round() as Ms,
            compliance_window_ms: window_ms,
            ..PacerConfig::default()
        });
        let end = (cfg.hours * 3_600_000.0).round() as Ms;
        let max_agents = cfg
            .agent_steps
            .iter()
            .map(|s| s.agents)
            .chain([cfg.agents])
            .max()
            .unwrap_or(0);
        let mut bounds: Vec<(Ms, u32)> = vec![(0, cfg.agents)];
        for s in &cfg.agent_steps {
            bounds.push(((s.at_hours * 3_600_000.0).round() as Ms, s.agents));
        }
        Self {
            clock: VirtualClock::at_ms(EPOCH_MS),
            pacer,
            sampler: Sampler::new(cfg.model.clone()),
            dial_rng: StdRng::seed_from_u64(cfg.seed),
            work_rng: StdRng::seed_from_u64(cfg.seed ^ 0x9e37_79b9_7f4a_7c15),
            queue: BinaryHeap::new(),
            seq: 0,
            next_call: 1,
            end,
            agents: vec![
                SimAgent {
                    phase: AgentPhase::Out,
                    leaving: false,
                    logged_since: 0
                };
                max_agents as usize
            ],
            answered_at: BTreeMap::new(),
            wrap_next: vec![0; max_agents as usize],
            trace: std::env::var_os("DIALER_SIM_TRACE").is_some(),
            detect_ms: (cfg.model.machine_detect_s * 1000.0).round() as Ms,
            rec: Recorder::new(end, window_ms, bounds),
            cfg: cfg.clone(),
        }
    }

    fn now(&self) -> Ms {
        self.clock.now_ms() - EPOCH_MS
    }

    fn at(&mut self, t: Ms, ev: Ev) {
        self.seq += 1;
        self.queue.push(Reverse((t, self.seq, ev)));
    }

    fn input(&mut self, input: Input) {
        let now = self.now();
        self.pacer.handle_input(now, input);
        self.drain();
    }

    fn p_human(&self, t: Ms) -> f64 {
        match self.cfg.answer_rate_end {
            Some(p1) => {
                self.cfg.answer_rate + (p1 - self.cfg.answer_rate) * (t as f64 / self.end as f64)
            }
            None => self.cfg.answer_rate,
        }
    }

    fn drain(&mut self) {
        while let Some(out) = self.pacer.poll_output() {
            let now = self.now();
            match out {
                Output::Dial { count } => {
                    for _ in 0..count {
                        self.place(now);
                    }
                }
                Output::Connect { call, agent } => self.connect(now, call, agent),
                Output::Abandon { call } => {
                    self.answered_at.remove(&call);
                    self.rec.abandon(now);
                    if self.trace {
                        let snap = self.pacer.snapshot(now);
                        eprintln!(
                            "{:>6}s abandon {}",
                            now / 1000,
                            serde_json::to_string(&snap).unwrap_or_default()
                        );
                    }
                }
            }
        }
        if let Some(t) = self.pacer.poll_timeout() {
            self.at(t, Ev::Deadline);
        }
    }

    fn place(&mut self, now: Ms) {
        let call = self.next_call;
        self.next_call += 1;
        self.rec.dial();
        let p = self.p_human(now);
        let ev = match self.sampler.dial(&mut self.dial_rng, p) {
            DialOutcome::Human(t) => (now + t, Ev::Human(call)),
            // the machine is known only once detected, `machine_detect_s` after pick-up
            DialOutcome::Machine(t) => (now + t + self.detect_ms, Ev::Machine(call)),
            DialOutcome::Busy(t) => (now + t, Ev::Busy(call)),
            DialOutcome::NoAnswer(t) => (now + t, Ev::NoAnswer(call)),
        };
        self.at(ev.0, ev.1);
        self.pacer.handle_input(now, Input::CallPlaced { call });
    }

    fn connect(&mut self, now: Ms, call: CallId, agent: AgentId) {
        let answered = self
            .answered_at
            .remove(&call)
            .expect("connect of a live answer");
        let window = (self.cfg.model.abandon_window_s * 1000.0).round() as Ms;
        assert!(
            now - answered <= window,
            "pacer connected a call after the abandonment window"
        );
        let a = &mut self.agents[agent as usize];
        assert_eq!(a.phase, AgentPhase::Idle, "pacer connected a busy agent");
        a.phase = AgentPhase::Talking { since: now };
        let talk = self.sampler.talk_ms(&mut self.work_rng);
        let wrap = self.sampler.wrap_ms(&mut self.work_rng);
        self.at(now + talk, Ev::TalkEnd(agent, call));
        self.wrap_next[agent as usize] = wrap;
        if self.cfg.mode == SimMode::Oracle {
            self.pacer.handle_input(
                now,
                Input::AgentFreeAt {
                    agent,
                    at: now + talk + wrap,
                },
            );
        }
    }

    fn login(&mut self, now: Ms, agent: AgentId) {
        let a = &mut self.agents[agent as usize];
        a.phase = AgentPhase::Idle;
        a.leaving = false;
        a.logged_since = now;
        self.input(Input::AgentLoggedIn { agent });
    }

    fn logout(&mut self, now: Ms, agent: AgentId) {
        let a = &mut self.agents[agent as usize];
        let since = a.logged_since;
        a.phase = AgentPhase::Out;
        a.leaving = false;
        self.rec.logged(since, now);
        self.input(Input::AgentLoggedOut { agent });
    }

    /// Moves the logged-in head count to `target`: new agents log in at once; leaving agents
    /// finish their current call and wrap-up first.
    fn step_agents(&mut self, now: Ms, target: u32) {
        let active: Vec<AgentId> = (0..self.agents.len() as AgentId)
            .filter(|&i| {
                let a = &self.agents[i as usize];
                a.phase != AgentPhase::Out && !a.leaving
            })
            .collect();
        let n = active.len() as u32;
        if target > n {
            let mut need = target - n;
            for i in 0..self.agents.len() as AgentId {
                if need == 0 {
                    break;
                }
                let a = &mut self.agents[i as usize];
                if a.leaving {
                    // changed their mind: stays
                    a.leaving = false;
                    self.pacer.handle_input(now, Input::AgentReady { agent: i });
                    need -= 1;
                } else if a.phase == AgentPhase::Out {
                    self.login(now, i);
                    need -= 1;
                }
            }
        } else {
            for &i in active.iter().rev().take((n - target) as usize) {
                if self.agents[i as usize].phase == AgentPhase::Idle {
                    self.input(Input::AgentLogoutRequested { agent: i });
                    self.logout(now, i);
                } else {
                    self.agents[i as usize].leaving = true;
                    self.input(Input::AgentLogoutRequested { agent: i });
                }
            }
        }
        self.drain();
    }

    pub fn run(mut self) -> SimReport {
        for i in 0..self.cfg.agents.min(self.agents.len() as u32) {
            self.login(0, i);
        }
        for (i, s) in self.cfg.agent_steps.clone().iter().enumerate() {
            self.at((s.at_hours * 3_600_000.0).round() as Ms, Ev::Step(i));
        }
        self.at(0, Ev::Tick);
        while let Some(Reverse((t, _, ev))) = self.queue.pop() {
            if t >= self.end {
                break;
            }
            self.clock.set(foundation::clock::from_ms(EPOCH_MS + t));
            let now = t;
            match ev {
                Ev::Tick => {
                    self.pacer.tick(now);
                    self.drain();
                    self.rec
                        .sample_lines(now, self.pacer.snapshot_lines(), self.available());
                    if self.trace && now % 300_000 == 0 {
                        let snap = self.pacer.snapshot(now);
                        eprintln!(
                            "{:>6}s {}",
                            now / 1000,
                            serde_json::to_string(&snap).unwrap_or_default()
                        );
                    }
                    self.at(now + TICK_MS, Ev::Tick);
                }
                Ev::Human(call) => {
                    self.answered_at.insert(call, now);
                    self.rec.answer(now);
                    self.input(Input::CallAnsweredHuman { call });
                }
                Ev::Machine(call) => self.input(Input::CallAnsweredMachine { call }),
                Ev::Busy(call) => self.input(Input::CallFailed { call }),
                Ev::NoAnswer(call) => self.input(Input::CallNoAnswer { call }),
                Ev::Deadline => {
                    self.pacer.handle_timeout(now);
                    self.drain();
                }
                Ev::TalkEnd(agent, call) => {
                    let a = &mut self.agents[agent as usize];
                    if let AgentPhase::Talking { since } = a.phase {
                        self.rec.talk(since, now);
                        a.phase = AgentPhase::Wrap { since: now };
                        let wrap = self.wrap_next[agent as usize];
                        self.at(now + wrap, Ev::WrapEnd(agent));
                    }
                    self.input(Input::CallEnded { call });
                }
                Ev::WrapEnd(agent) => {
                    let a = &mut self.agents[agent as usize];
                    if let AgentPhase::Wrap { since } = a.phase {
                        self.rec.wrap(since, now);
                    }
                    if a.leaving {
                        self.input(Input::WrapUpEnded { agent });
                        self.logout(now, agent);
                    } else {
                        a.phase = AgentPhase::Idle;
                        self.input(Input::WrapUpEnded { agent });
                    }
                }
                Ev::Step(i) => {
                    let target = self.cfg.agent_steps[i].agents;
                    self.step_agents(now, target);
                }
            }
        }
        // close the books at the end of the shift
        let end = self.end;
        for a in &self.agents {
            match a.phase {
                AgentPhase::Out => continue,
                AgentPhase::Talking { since } => self.rec.talk(since, end),
                AgentPhase::Wrap { since } => self.rec.wrap(since, end),
                AgentPhase::Idle => {}
            }
            self.rec.logged(a.logged_since, end);
        }
        self.rec.report(&self.cfg)
    }

    /// Logged-in agents not on their way out.
    fn available(&self) -> u32 {
        self.agents
            .iter()
            .filter(|a| a.phase != AgentPhase::Out && !a.leaving)
            .count() as u32
    }
}
