//! Sans-IO pacing state machine (str0m style).
//!
//! The driver (the campaign runner in production, [`crate::sim`] in virtual time) feeds timestamped
//! [`Input`]s about calls and agents, calls [`Pacer::tick`] periodically (every second) and
//! [`Pacer::handle_timeout`] at [`Pacer::poll_timeout`], and drains [`Output`]s with
//! [`Pacer::poll_output`]: place N more calls, connect a live answer to an agent, abandon a live
//! answer that found no agent within the window. No clock, no I/O, no randomness inside: the same
//! inputs give the same outputs.
//!
//! Modes ([`Mode`]): progressive (fixed lines per idle agent), fixed ratio (VICIdial RATIO),
//! VICIdial adaptive, and predictive (see [`predictive`]), which learns everything it needs online
//! ([`estimate`]) and holds the abandonment rate under the cap in the trailing window ([`ledger`]).

pub mod estimate;
pub mod ledger;
pub mod predictive;
pub mod stats;
pub mod vicidial;

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use estimate::{AnswerModel, CensoredLogNormal, RingOutcome};
use ledger::AbandonLedger;
use predictive::{DELAY_POINTS, Dispersion, Margin, ThresholdLoop, WRAP_POINTS};
use vicidial::AdaptiveLevel;

/// Milliseconds on the driver's clock (e.g. `foundation::clock::Clock::now_ms`).
pub type Ms = i64;
pub type CallId = u64;
pub type AgentId = u32;

/// How the pacer decides how many calls to place.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum Mode {
    /// Keep `lines_per_agent` × idle agents calls ringing (1.0 = classic progressive: never
    /// abandons).
    Progressive { lines_per_agent: f64 },
    /// VICIdial RATIO: calls ringing + waiting + connected = round(level × (ready + talking)).
    Ratio { level: f64 },
    /// VICIdial ADAPT_HARD_LIMIT: RATIO with the level adapted every 15 s.
    Vicidial,
    /// Model-based predictive pacing under the abandonment cap.
    Predictive,
}

/// Pacer settings. Defaults: predictive, 3% cap, 2 s abandonment window, 1 h compliance window.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PacerConfig {
    pub mode: Mode,
    /// Maximum abandonment rate (abandoned / live answers).
    pub abandon_cap: f64,
    /// A live answer not connected within this is abandoned.
    pub abandon_window_ms: Ms,
    /// Trailing window over which the cap is held (in addition to the campaign to date).
    pub compliance_window_ms: Ms,
    /// Share of the cap the predictive loop aims at on average (the rest is safety margin).
    pub target_fraction: f64,
    /// Maximum calls ringing or waiting at once (trunk limit); `None` = unlimited.
    pub max_lines: Option<u32>,
    /// Observations before predictive dialing starts (before that it dials progressively).
    pub warmup_answers: u64,
    pub warmup_handled: u64,
}

impl Default for PacerConfig {
    fn default() -> Self {
        Self {
            mode: Mode::Predictive,
            abandon_cap: 0.03,
            abandon_window_ms: 2_000,
            compliance_window_ms: 3_600_000,
            target_fraction: 0.85,
            max_lines: None,
            warmup_answers: 10,
            warmup_handled: 30,
        }
    }
}

/// Something that happened, reported by the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Input {
    /// A dial requested by [`Output::Dial`] was placed (ringing starts now).
    CallPlaced {
        call: CallId,
    },
    /// A live person answered (end of greeting); the pacer connects or queues it.
    CallAnsweredHuman {
        call: CallId,
    },
    /// Answering machine detected; the call no longer needs an agent.
    CallAnsweredMachine {
        call: CallId,
    },
    /// Busy, invalid number, SIT, network failure.
    CallFailed {
        call: CallId,
    },
    /// Rang out without an answer.
    CallNoAnswer {
        call: CallId,
    },
    /// The conversation of a connected call ended; its agent starts wrap-up.
    CallEnded {
        call: CallId,
    },
    /// The agent finished wrap-up and is free.
    WrapUpEnded {
        agent: AgentId,
    },
    AgentLoggedIn {
        agent: AgentId,
    },
    AgentLoggedOut {
        agent: AgentId,
    },
    /// The agent will log out after the current call (takes no new call).
    AgentLogoutRequested {
        agent: AgentId,
    },
    /// The agent became available for outbound calls (e.g. unpaused).
    AgentReady {
        agent: AgentId,
    },
    /// The agent became unavailable (paused, manual call).
    AgentBusy {
        agent: AgentId,
    },
    /// Exact time the agent will be free (only a simulator's oracle knows this).
    AgentFreeAt {
        agent: AgentId,
        at: Ms,
    },
}

/// What the driver must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Output {
    /// Place this many more calls now (report each with [`Input::CallPlaced`]).
    Dial { count: u32 },
    /// Bridge this live answer to this agent now.
    Connect { call: CallId, agent: AgentId },
    /// No agent within the window: play the safe-harbor message and release; counted as abandoned.
    Abandon { call: CallId },
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum AgentState {
    Ready { since: Ms },
    Talking { since: Ms, call: CallId },
    Wrap { since: Ms },
    Away,
}

#[derive(Debug, Clone)]
struct Agent {
    state: AgentState,
    leaving: bool,
    free_at: Option<Ms>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum CallState {
    Ringing,
    Waiting { deadline: Ms },
    Connected { agent: AgentId, since: Ms },
}

#[derive(Debug, Clone)]
struct Call {
    placed_at: Ms,
    state: CallState,
    predicted_abandon: f64,
}

/// Observable state and estimates, for dashboards and the simulator report.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Snapshot {
    pub agents_ready: u32,
    pub agents_talking: u32,
    pub agents_wrap: u32,
    pub agents_away: u32,
    pub calls_ringing: u32,
    pub calls_waiting: u32,
    pub predictive_active: bool,
    pub p_human: f64,
    pub talk_mean_s: f64,
    pub wrap_mean_s: f64,
    pub theta: f64,
    pub target_abandon_rate: f64,
    pub expected_abandon_rate: f64,
    pub calibration: f64,
    pub abandon_dispersion: f64,
    pub window_answers: u64,
    pub window_abandons: u64,
    pub total_answers: u64,
    pub total_abandons: u64,
    pub dial_level: f64,
    pub last_dial: u32,
}

/// The pacing state machine.
#[derive(Debug, Clone)]
pub struct Pacer {
    cfg: PacerConfig,
    agents: BTreeMap<AgentId, Agent>,
    calls: BTreeMap<CallId, Call>,
    waiting: VecDeque<CallId>,
    outputs: VecDeque<Output>,
    answer: AnswerModel,
    talk: CensoredLogNormal,
    wrap: CensoredLogNormal,
    ledger: AbandonLedger,
    threshold: ThresholdLoop,
    dispersion: Dispersion,
    adaptive: AdaptiveLevel,
    /// predicted abandonment probabilities of requested but not yet placed dials
    pending: VecDeque<f64>,
    dials: VecDeque<Ms>,
    predictive_active: bool,
    last_dial: u32,
    started_at: Option<Ms>,
}

impl Pacer {
    pub fn new(cfg: PacerConfig) -> Self {
        Self {
            answer: AnswerModel::new(500.0),
            talk: CensoredLogNormal::new(400),
            wrap: CensoredLogNormal::new(200),
            ledger: AbandonLedger::new(cfg.compliance_window_ms),
            threshold: ThresholdLoop::new(cfg.abandon_cap, cfg.target_fraction),
            adaptive: AdaptiveLevel::new(),
            dispersion: Dispersion::new(),
            cfg,
            agents: BTreeMap::new(),
            calls: BTreeMap::new(),
            waiting: VecDeque::new(),
            outputs: VecDeque::new(),
            pending: VecDeque::new(),
            dials: VecDeque::new(),
            predictive_active: false,
            last_dial: 0,
            started_at: None,
        }
    }

    pub fn config(&self) -> &PacerConfig {
        &self.cfg
    }

    /// Switches mode at runtime; learnt estimates are kept.
    pub fn set_mode(&mut self, mode: Mode) {
        self.cfg.mode = mode;
    }

    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// The earliest abandonment deadline of a waiting live answer.
    pub fn poll_timeout(&self) -> Option<Ms> {
        self.waiting
            .iter()
            .filter_map(|c| match self.calls.get(c)?.state {
                CallState::Waiting { deadline } => Some(deadline),
                _ => None,
            })
            .min()
    }

    /// Abandons waiting live answers whose window has passed.
    pub fn handle_timeout(&mut self, now: Ms) {
        while let Some(&c) = self.waiting.front() {
            let Some(call) = self.calls.get(&c) else {
                self.waiting.pop_front();
                continue;
            };
            match call.state {
                CallState::Waiting { deadline } if deadline <= now => {
                    self.waiting.pop_front();
                    self.calls.remove(&c);
                    self.ledger.record_abandon(now);
                    self.threshold.on_abandon();
                    self.dispersion.on_abandon(now);
                    self.outputs.push_back(Output::Abandon { call: c });
                }
                CallState::Waiting { .. } => break,
                _ => {
                    self.waiting.pop_front();
                }
            }
        }
    }

    pub fn handle_input(&mut self, now: Ms, input: Input) {
        match input {
            Input::CallPlaced { call } => {
                let predicted = self.pending.pop_front().unwrap_or(0.0);
                self.threshold.on_dial(predicted);
                self.dials.push_back(now);
                self.calls.insert(
                    call,
                    Call {
                        placed_at: now,
                        state: CallState::Ringing,
                        predicted_abandon: predicted,
                    },
                );
            }
            Input::CallAnsweredHuman { call } => {
                let Some(c) = self.calls.get_mut(&call) else {
                    return;
                };
                if c.state != CallState::Ringing {
                    return;
                }
                self.answer.observe(RingOutcome::Human, now - c.placed_at);
                self.threshold.on_live_answer(c.predicted_abandon);
                self.ledger.record_answer(now);
                c.state = CallState::Waiting {
                    deadline: now + self.cfg.abandon_window_ms,
                };
                self.waiting.push_back(call);
                self.route(now);
            }
            Input::CallAnsweredMachine { call }
            | Input::CallFailed { call }
            | Input::CallNoAnswer { call } => {
                if let Some(c) = self.calls.get(&call)
                    && c.state == CallState::Ringing
                {
                    self.answer.observe(RingOutcome::Other, now - c.placed_at);
                    self.calls.remove(&call);
                }
            }
            Input::CallEnded { call } => {
                let Some(c) = self.calls.remove(&call) else {
                    return;
                };
                if let CallState::Connected { agent, since } = c.state {
                    self.talk.finish(call, now);
                    self.wrap.start(agent as u64, now);
                    if let Some(a) = self.agents.get_mut(&agent)
                        && a.state == (AgentState::Talking { since, call })
                    {
                        a.state = AgentState::Wrap { since: now };
                    }
                }
            }
            Input::WrapUpEnded { agent } => {
                if let Some(a) = self.agents.get_mut(&agent) {
                    if let AgentState::Wrap { .. } = a.state {
                        self.wrap.finish(agent as u64, now);
                    }
                    a.free_at = None;
                    a.state = if a.leaving {
                        AgentState::Away
                    } else {
                        AgentState::Ready { since: now }
                    };
                }
                self.route(now);
            }
            Input::AgentLoggedIn { agent } => {
                self.agents.insert(
                    agent,
                    Agent {
                        state: AgentState::Ready { since: now },
                        leaving: false,
                        free_at: None,
                    },
                );
                self.route(now);
            }
            Input::AgentLoggedOut { agent } => match self.agents.remove(&agent).map(|a| a.state) {
                Some(AgentState::Talking { call, .. }) => self.talk.forget(call),
                Some(AgentState::Wrap { .. }) => self.wrap.forget(agent as u64),
                _ => {}
            },
            Input::AgentLogoutRequested { agent } => {
                if let Some(a) = self.agents.get_mut(&agent) {
                    a.leaving = true;
                    if matches!(a.state, AgentState::Ready { .. }) {
                        a.state = AgentState::Away;
                    }
                }
            }
            Input::AgentReady { agent } => {
                if let Some(a) = self.agents.get_mut(&agent)
                    && a.state == AgentState::Away
                    && !a.leaving
                {
                    a.state = AgentState::Ready { since: now };
                }
                self.route(now);
            }
            Input::AgentBusy { agent } => {
                if let Some(a) = self.agents.get_mut(&agent)
                    && matches!(a.state, AgentState::Ready { .. })
                {
                    a.state = AgentState::Away;
                }
            }
            Input::AgentFreeAt { agent, at } => {
                if let Some(a) = self.agents.get_mut(&agent) {
                    a.free_at = Some(at);
                }
            }
        }
    }

    /// Connects waiting live answers (oldest first) to ready agents (longest idle first).
    fn route(&mut self, now: Ms) {
        while let Some(&call) = self.waiting.front() {
            let live = matches!(
                self.calls.get(&call).map(|c| c.state),
                Some(CallState::Waiting { .. })
            );
            if !live {
                self.waiting.pop_front();
                continue;
            }
            let agent = self
                .agents
                .iter()
                .filter_map(|(&id, a)| match a.state {
                    AgentState::Ready { since } if !a.leaving => Some((since, id)),
                    _ => None,
                })
                .min();
            let Some((_, agent)) = agent else { break };
            self.waiting.pop_front();
            if let Some(c) = self.calls.get_mut(&call) {
                c.state = CallState::Connected { agent, since: now };
            }
            if let Some(a) = self.agents.get_mut(&agent) {
                a.state = AgentState::Talking { since: now, call };
            }
            self.talk.start(call, now);
            self.outputs.push_back(Output::Connect { call, agent });
        }
    }

    /// The periodic pacing decision (every second).
    pub fn tick(&mut self, now: Ms) {
        let started = *self.started_at.get_or_insert(now);
        self.dispersion.tick(now);
        self.handle_timeout(now);
        self.answer.refresh();
        self.pending.clear();
        while self.dials.front().is_some_and(|&t| t <= now - 60_000) {
            self.dials.pop_front();
        }
        let counts = self.counts();
        let mut predicted = Vec::new();
        let n = match self.cfg.mode {
            Mode::Progressive { lines_per_agent } => {
                self.predictive_active = false;
                let goal = (lines_per_agent * counts.ready as f64).round() as i64;
                goal - counts.ringing as i64
            }
            Mode::Ratio { level } => {
                self.predictive_active = false;
                ratio_make(level, &counts)
            }
            Mode::Vicidial => {
                self.predictive_active = false;
                self.adaptive
                    .sample(counts.ready, counts.waiting, counts.ready + counts.talking);
                let today = self.ledger.totals();
                let minute = self.ledger.recent_counts(now, 60_000);
                self.adaptive.adjust(
                    now,
                    self.cfg.abandon_cap,
                    today,
                    minute,
                    self.dials.len() as u64,
                );
                ratio_make(self.adaptive.level, &counts)
            }
            Mode::Predictive => {
                self.talk.refit(now, 10_000);
                self.wrap.refit(now, 10_000);
                let ready_to_predict = self.answer.human_count() >= self.cfg.warmup_answers
                    && self.talk.finished() >= self.cfg.warmup_handled
                    && self.wrap.finished() >= self.cfg.warmup_handled;
                self.predictive_active = ready_to_predict;
                let floor = counts.ready as i64 - counts.ringing as i64 - counts.waiting as i64;
                if ready_to_predict {
                    let (answers, _) = self.ledger.window_counts(now);
                    let window = self.cfg.compliance_window_ms;
                    let covered = (now - started).clamp(1, window) as f64;
                    let full_window_answers =
                        answers as f64 * window as f64 / covered.max(window as f64 / 12.0);
                    self.threshold.set_target(predictive::window_target(
                        self.cfg.abandon_cap,
                        full_window_answers,
                        self.cfg.target_fraction,
                        self.dispersion.factor(),
                    ));
                    let pipe = self.pipeline_abandons(now);
                    // The guard must leave a budget that survives falling back to progressive
                    // dialing: new live answers are assumed at the rate progressive dialing would
                    // give (each available agent: talk + wrap + the dials to reach a person).
                    let available = counts.ready + counts.talking + counts.wrap;
                    let p = self.answer.p_human().max(1e-3);
                    let cycle_ms = 1000.0 * (self.talk.law().mean_s() + self.wrap.law().mean_s())
                        + self.answer.mean_ring_ms() / p;
                    let rate = available as f64 / cycle_ms.max(1.0);
                    let raw_slack = self.ledger.projected_slack(now, self.cfg.abandon_cap, rate);
                    let slack = raw_slack - pipe - predictive::WINDOW_Z * pipe.sqrt();
                    let budget = self.cfg.abandon_cap * full_window_answers;
                    let full = predictive::guard_full(budget);
                    if predictive::guard_factor(slack, budget) >= 1.0 {
                        self.threshold.update();
                    }
                    let theta = self.threshold.effective(slack, budget);
                    predicted = self.predictive_batch(
                        now,
                        theta,
                        counts.ready + counts.talking + counts.wrap,
                    );
                    if raw_slack < full {
                        // bad case: live answers from the lines in flight (mean + 3 sd) beyond
                        // the ready agents, none of the busy agents finishing in time
                        let coming = self.pipeline_answers(now) + counts.waiting as f64;
                        let p = self.answer.p_human();
                        let ready = counts.ready as f64;
                        let bad = |n: usize| {
                            let d = coming + n as f64 * p;
                            d + 3.0 * d.sqrt() - ready
                        };
                        let mut keep = predicted.len();
                        while keep > 0 && (keep as i64) > floor && bad(keep) > raw_slack.max(0.0) {
                            keep -= 1;
                        }
                        predicted.truncate(keep);
                    }
                    (predicted.len() as i64).max(floor)
                } else {
                    floor
                }
            }
        };
        let mut n = n.max(0) as u32;
        if let Some(max) = self.cfg.max_lines {
            n = n.min(max.saturating_sub(counts.ringing + counts.waiting));
        }
        self.last_dial = n;
        if n > 0 {
            predicted.resize(n as usize, 0.0);
            self.pending.extend(predicted);
            self.outputs.push_back(Output::Dial { count: n });
        }
    }

    /// Abandons expected from the calls ringing now (their predicted abandonment probability,
    /// calibrated, times their chance of still reaching a person).
    fn pipeline_abandons(&self, now: Ms) -> f64 {
        let cal = self.threshold.calibration();
        self.calls
            .values()
            .filter(|c| c.state == CallState::Ringing && c.predicted_abandon > 0.0)
            .map(|c| {
                c.predicted_abandon
                    * cal
                    * self.answer.human_within((now - c.placed_at) as f64, 1e9)
            })
            .sum()
    }

    /// Expected live answers still to come from the calls ringing now.
    fn pipeline_answers(&self, now: Ms) -> f64 {
        self.calls
            .values()
            .filter(|c| c.state == CallState::Ringing)
            .map(|c| self.answer.human_within((now - c.placed_at) as f64, 1e9))
            .sum()
    }

    fn counts(&self) -> Counts {
        let mut c = Counts::default();
        for a in self.agents.values() {
            match a.state {
                AgentState::Ready { .. } if !a.leaving => c.ready += 1,
                AgentState::Talking { .. } => c.talking += 1,
                AgentState::Wrap { .. } => c.wrap += 1,
                _ => c.away += 1,
            }
        }
        for call in self.calls.values() {
            match call.state {
                CallState::Ringing => c.ringing += 1,
                CallState::Waiting { .. } => c.waiting += 1,
                CallState::Connected { .. } => c.connected += 1,
            }
        }
        c
    }

    /// Predicted abandonment probabilities of the dials to place now (one per dial).
    fn predictive_batch(&self, now: Ms, theta: f64, agents: u32) -> Vec<f64> {
        let margin = self.margin(now);
        let mut out = Vec::new();
        // never more than a few lines per agent in one decision
        let max = 4 * agents.max(1) + 4;
        for k in 1..=max {
            let p = margin.abandon_probability(k);
            if p > theta {
                break;
            }
            out.push(p);
        }
        out
    }

    fn margin(&self, now: Ms) -> Margin {
        let tau = self.answer.human_delay_points(DELAY_POINTS);
        let mut m = Margin::new(tau);
        let n = m.tau_ms.len();
        let window = self.cfg.abandon_window_ms as f64;
        let talk = self.talk.law();
        let wrap = self.wrap.law();
        let wrap_pts = wrap.points(WRAP_POINTS);
        let mut ready = 0.0;
        for a in self.agents.values() {
            let busy_since = match a.state {
                AgentState::Ready { .. } if !a.leaving => {
                    ready += 1.0;
                    continue;
                }
                _ if a.leaving => continue,
                AgentState::Talking { since, .. } => Some((true, since)),
                AgentState::Wrap { since } => Some((false, since)),
                _ => None,
            };
            let Some((talking, since)) = busy_since else {
                continue;
            };
            for i in 0..n {
                let horizon_ms = m.tau_ms[i] + window;
                let q = match a.free_at {
                    Some(at) => ((at as f64) <= now as f64 + horizon_ms) as u8 as f64,
                    None => {
                        let e = (now - since) as f64 / 1000.0;
                        let x = horizon_ms / 1000.0;
                        if talking {
                            let s0 = talk.sf(e);
                            if s0 < 1e-300 {
                                1.0
                            } else {
                                wrap_pts
                                    .iter()
                                    .map(|w| (s0 - talk.sf(e + x - w)).max(0.0))
                                    .sum::<f64>()
                                    / (WRAP_POINTS as f64 * s0)
                            }
                        } else {
                            let s0 = wrap.sf(e);
                            if s0 < 1e-300 {
                                1.0
                            } else {
                                ((s0 - wrap.sf(e + x)) / s0).max(0.0)
                            }
                        }
                    }
                };
                m.supply_mean[i] += q;
                m.supply_var[i] += q * (1.0 - q);
            }
        }
        let waiting = self.waiting.len() as f64;
        // Dials of the coming ticks that a person answers before the new call compete for the same
        // agents: at the recent dial rate λ, λ·∫₀^τ P(live answer within u) du of them (Poisson).
        let rate_per_ms = self.dials.len() as f64 / 60_000.0;
        for i in 0..n {
            m.supply_mean[i] += ready;
            m.demand_mean[i] += waiting;
            m.batch_before[i] = self.answer.human_by(m.tau_ms[i]);
            let steps = (m.tau_ms[i] / 250.0).ceil().max(1.0) as usize;
            let du = m.tau_ms[i] / steps as f64;
            let integral: f64 = (0..steps)
                .map(|j| self.answer.human_by((j as f64 + 0.5) * du) * du)
                .sum();
            let future = rate_per_ms * integral;
            m.demand_mean[i] += future;
            m.demand_var[i] += future;
        }
        for c in self.calls.values() {
            if c.state != CallState::Ringing {
                continue;
            }
            let e = (now - c.placed_at) as f64;
            for i in 0..n {
                let r = self.answer.human_within(e, m.tau_ms[i]);
                m.demand_mean[i] += r;
                m.demand_var[i] += r * (1.0 - r);
            }
        }
        m
    }

    /// Calls ringing or waiting for an agent (lines in flight).
    pub fn snapshot_lines(&self) -> u32 {
        let c = self.counts();
        c.ringing + c.waiting
    }

    pub fn snapshot(&mut self, now: Ms) -> Snapshot {
        let c = self.counts();
        let (wa, wb) = self.ledger.window_counts(now);
        let (ta, tb) = self.ledger.totals();
        Snapshot {
            agents_ready: c.ready,
            agents_talking: c.talking,
            agents_wrap: c.wrap,
            agents_away: c.away,
            calls_ringing: c.ringing,
            calls_waiting: c.waiting,
            predictive_active: self.predictive_active,
            p_human: self.answer.p_human(),
            talk_mean_s: self.talk.law().mean_s(),
            wrap_mean_s: self.wrap.law().mean_s(),
            theta: self.threshold.theta,
            target_abandon_rate: self.threshold.target(),
            expected_abandon_rate: self.threshold.expected_rate(),
            calibration: self.threshold.calibration(),
            abandon_dispersion: self.dispersion.factor(),
            window_answers: wa,
            window_abandons: wb,
            total_answers: ta,
            total_abandons: tb,
            dial_level: self.adaptive.level,
            last_dial: self.last_dial,
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    ready: u32,
    talking: u32,
    wrap: u32,
    away: u32,
    ringing: u32,
    waiting: u32,
    connected: u32,
}

fn ratio_make(level: f64, c: &Counts) -> i64 {
    let goal = (level * (c.ready + c.talking) as f64).round() as i64;
    goal - (c.ringing + c.waiting + c.connected) as i64
}

#[cfg(test)]
mod tests;
