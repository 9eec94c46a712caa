//! The campaign runner: the tokio driver over the sans-IO pieces (pacer, hopper, compliance).
//!
//! At start it recovers what a crash of this node left open ([`attempts::recover`]). Then, every
//! second, for each running campaign whose pacer lease it holds or can take ([`crate::lease`]:
//! renewed every tick, one pacer per campaign across the nodes on one database; claims and
//! attempts carry the fencing token) it syncs the queue's agents into the campaign's [`Pacer`],
//! asks it how many calls to place, claims that many leads, checks each with the dial gate, writes
//! the attempt and only then originates (caller id and trunk of the campaign, at most `cps` per
//! second through `governor`, at most `max_concurrent` at once, ringing at least `min_ring_s`).
//! Each call runs in its own task: AMD on answer, then per policy (hang up on a machine, leave a
//! message after the beep, or pass it on); a live answer goes to the pacer, which connects it to an
//! agent through the [`AgentPort`] or abandons it after 2 s, when the safe-harbor message plays (the
//! opt-out key puts the number on the internal DNC list at once). Agentless campaigns play their
//! message to every answer, or run their `agentless_flow` on it through the [`FlowPort`] (the
//! call's events go to the flow, except the opt-out key, which this driver takes first: DNC at
//! once, call ended). Every attempt ends with [`attempts::finish`]. Preview campaigns are not
//! dialled here (see [`crate::single`]).
//!
//! **A machine verdict on a live person counts as abandoned.** With the `leave_message` policy
//! the AMD listens again after its machine verdict ([`RunnerConfig::reply_amd`]) and the call is
//! watched until the message ends. Evidence of a person: a key pressed while waiting for the beep
//! or during the message (machines do not press keys; the opt-out key is honoured too), a short
//! reply followed by a pause ("Hello? … Hello?") with no beep within
//! [`RunnerConfig::reply_confirm`] after it (the person then hears the safe-harbor message), or
//! such a reply during the message after the beep (a machine records silently). The attempt is
//! then `live_person_after_machine` with its `evidence`, and counts as a live answer and as
//! abandoned in every abandonment rate. With the `hang_up` policy the call ends at the verdict:
//! there is no audio to judge, so a false machine cannot be noticed (a known limit; choose
//! `leave_message` where that matters). A machine whose greeting has pauses may be taken for a
//! person until its beep clears it; one without a beep is then counted abandoned, which errs on
//! the safe side of the cap.

use std::collections::{BTreeMap, HashMap, VecDeque};

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use foundation::{Db, SharedClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use serde::Serialize;
use telephony::control::{Call, CallControl, Calls, Event};
use telephony::media::amd::{AmdConfig, AmdEvent, AmdVerdict};
use telephony::media::prompt::Prompt;
use telephony::sip::call::{Originate, Trunk};
use tokio::sync::{mpsc, watch};

use crate::agents::{AgentPort, AgentState};
use crate::attempts::{self, Final, NewAttempt, Outcome, Progress};
use crate::campaign::{self, AmdPolicy, Campaign, CampaignConfig, CampaignState, DialMode};
use crate::flows::{FlowCall, FlowPort, FlowResult, FlowRun};
use crate::gate::{self, Registries, Verdict};
use crate::hopper::{self, ClaimedLead, ListMix};
use crate::lease;
use crate::pacing::{Input, Mode, Output, Pacer, PacerConfig, Snapshot};

/// Runner settings.
#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// This node's id: stable across restarts (crash recovery closes its open attempts).
    pub node: String,
    /// Pacing decisions this often (1 s).
    pub tick: Duration,
    pub amd: AmdConfig,
    /// A live answer not connected within this of the end of the greeting is abandoned (2 s,
    /// the US rule). The AMD's after-greeting silence is part of it.
    pub abandon_window: Duration,
    /// A campaign's pacer lease lasts this long after each renewal (every tick): another node
    /// takes a campaign over this long after its pacer stopped renewing (5 s).
    pub lease_ttl: Duration,
    /// After a machine verdict (AMD policy `leave_message`) the AMD listens again with these
    /// thresholds for a live reply: a short utterance followed by a pause ("Hello? … Hello?")
    /// is a person, where a machine goes on with its greeting, beeps, or records silently.
    pub reply_amd: AmdConfig,
    /// A live reply heard before the beep counts once no beep follows within this long (a
    /// machine's beep comes right after its greeting; a person does not beep) (5 s).
    pub reply_confirm: Duration,
}

impl RunnerConfig {
    /// What is left of the abandonment window when the AMD's human verdict arrives.
    pub fn window_after_verdict(&self) -> Duration {
        self.abandon_window
            .saturating_sub(Duration::from_millis(self.amd.after_greeting_silence_ms))
    }
}

impl RunnerConfig {
    pub fn new(node: &str) -> Self {
        Self {
            node: node.to_owned(),
            tick: Duration::from_secs(1),
            amd: AmdConfig::default(),
            abandon_window: Duration::from_secs(2),
            lease_ttl: Duration::from_secs(5),
            reply_amd: AmdConfig::default(),
            reply_confirm: Duration::from_secs(5),
        }
    }
}

/// Figures of a runner since it started.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Stats {
    pub dials: u64,
    /// The most INVITEs placed in any one-second span, per campaign.
    pub max_dials_per_second: BTreeMap<i64, u32>,
    /// End of the answerer's greeting (as the AMD heard it: its verdict event says when the speech
    /// ended, `after_greeting_silence_ms` before a human verdict) → agent bridge, in microseconds,
    /// per connected call. Includes the AMD's after-greeting silence.
    pub bridge_latency_us: Vec<i64>,
    pub outcomes: BTreeMap<String, u64>,
    /// Dial-gate blocks by code.
    pub blocked: BTreeMap<String, u64>,
    /// Campaigns taken over from an expired pacer on another node.
    pub takeovers: Vec<crate::lease::Takeover>,
    /// Pacer-only writes refused because another node had taken the lease over.
    pub fenced: u64,
    #[serde(skip)]
    recent: HashMap<i64, VecDeque<Instant>>,
}

/// The trunk's calls-per-second limit as a hard guarantee: `governor` spaces the INVITEs evenly,
/// and this window of the last `cps` send times makes sure that no one-second span ever holds
/// more than `cps`, whatever the scheduling jitter between the limiter and the send.
#[derive(Debug, Default)]
pub struct SpanGuard {
    sent: VecDeque<Instant>,
}

impl SpanGuard {
    /// How long to wait before the next send at `now` under `cps` (sans-IO).
    pub fn wait(&self, now: Instant, cps: u32) -> Duration {
        if self.sent.len() < cps as usize {
            return Duration::ZERO;
        }
        let oldest = self.sent[self.sent.len() - cps as usize];
        (oldest + Duration::from_millis(1001)).saturating_duration_since(now)
    }

    pub fn record(&mut self, at: Instant, cps: u32) {
        self.sent.push_back(at);
        while self.sent.len() > cps.max(1) as usize {
            self.sent.pop_front();
        }
    }
}

impl Stats {
    /// The `p`-th percentile (0–100) of the greeting-end → bridge latency (µs).
    pub fn latency_percentile(&self, p: f64) -> Option<i64> {
        let mut v = self.bridge_latency_us.clone();
        if v.is_empty() {
            return None;
        }
        v.sort();
        let i = ((p / 100.0) * (v.len() - 1) as f64).round() as usize;
        Some(v[i.min(v.len() - 1)])
    }

    fn dialled(&mut self, campaign: i64) {
        self.dials += 1;
        let now = Instant::now();
        let q = self.recent.entry(campaign).or_default();
        q.push_back(now);
        while q
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1))
        {
            q.pop_front();
        }
        let m = self.max_dials_per_second.entry(campaign).or_default();
        *m = (*m).max(q.len() as u32);
    }
}

struct Shared {
    db: Db,
    clock: SharedClock,
    calls: Calls,
    agents: Arc<dyn AgentPort>,
    flows: Option<Arc<dyn FlowPort>>,
    cfg: RunnerConfig,
    stats: Mutex<Stats>,
    prompts: Mutex<HashMap<String, Prompt>>,
    /// DNC registry copies, checked by the loop each tick and reloaded (then swapped in) only
    /// when they change; dial batches take the current `Arc` and never hold a lock.
    registries: Mutex<Arc<Registries>>,
}

impl Shared {
    fn prompt(&self, path: &str) -> anyhow::Result<Prompt> {
        if let Some(p) = self.prompts.lock().expect("prompts").get(path) {
            return Ok(p.clone());
        }
        let p = Prompt::from_wav_file(path.as_ref())
            .map_err(|e| anyhow::anyhow!("prompt {path}: {e}"))?;
        self.prompts
            .lock()
            .expect("prompts")
            .insert(path.to_owned(), p.clone());
        Ok(p)
    }
}

/// A running runner.
pub struct RunnerHandle {
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    pub recovery: attempts::Recovery,
}

impl RunnerHandle {
    pub fn stats(&self) -> Stats {
        self.shared.stats.lock().expect("stats").clone()
    }

    /// Stops placing calls, lets the calls in progress end (up to `drain`), then returns.
    pub async fn stop(self, drain: Duration) -> Stats {
        let _ = self.stop.send(true);
        let _ = tokio::time::timeout(drain + Duration::from_secs(1), self.task).await;
        // Another node may take the campaigns over at once instead of after the lease's TTL.
        let (db, clock) = (&self.shared.db, self.shared.clock.as_ref());
        if let Err(e) = lease::release_node(db, clock, &self.shared.cfg.node).await {
            tracing::warn!(error = %format!("{e:#}"), "releasing the pacer leases");
        }
        self.shared.stats.lock().expect("stats").clone()
    }
}

/// Recovers this node's open attempts, then starts the runner (without flows: agentless
/// campaigns with an `agentless_flow` are not answered by a flow; see [`start_with`]).
pub async fn start(
    db: Db,
    clock: SharedClock,
    calls: Calls,
    agents: Arc<dyn AgentPort>,
    cfg: RunnerConfig,
) -> anyhow::Result<RunnerHandle> {
    start_with(db, clock, calls, agents, None, cfg).await
}

/// [`start`] with the port that runs agentless campaigns' flows.
pub async fn start_with(
    db: Db,
    clock: SharedClock,
    calls: Calls,
    agents: Arc<dyn AgentPort>,
    flows: Option<Arc<dyn FlowPort>>,
    cfg: RunnerConfig,
) -> anyhow::Result<RunnerHandle> {
    let recovery = attempts::recover(&db, clock.as_ref(), &cfg.node).await?;
    if recovery != attempts::Recovery::default() {
        tracing::warn!(node = %cfg.node, ?recovery, "closed attempts left open by a previous run");
    }
    let shared = Arc::new(Shared {
        db,
        clock,
        calls,
        agents,
        flows,
        cfg,
        stats: Mutex::default(),
        prompts: Mutex::default(),
        registries: Default::default(),
    });
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(main_loop(shared.clone(), stop_rx));
    Ok(RunnerHandle {
        shared,
        stop,
        task,
        recovery,
    })
}

/// What a call task reports to the loop.
#[derive(Debug)]
enum CallEv {
    Placed {
        cmd: mpsc::UnboundedSender<Cmd>,
    },
    /// Released without a call (blocked or failed before the INVITE).
    NotPlaced,
    Human,
    NotHuman,
    Ended {
        connected: bool,
        answered: bool,
    },
}

/// What the loop tells a call task.
#[derive(Debug)]
enum Cmd {
    Connect { agent_hint: String },
    Abandon,
    ConnectResult(Result<String, String>),
}

struct Worker {
    campaign: Campaign,
    pacer: Pacer,
    limiter: Arc<DefaultDirectRateLimiter>,
    span: Arc<tokio::sync::Mutex<SpanGuard>>,
    cps: u32,
    /// Calls planned or up on the trunk.
    in_flight: Arc<AtomicU32>,
    slots: HashMap<u64, mpsc::UnboundedSender<Cmd>>,
    agent_ids: HashMap<String, u32>,
    agent_names: HashMap<u32, String>,
    agent_ready: HashMap<u32, bool>,
    mix: Arc<tokio::sync::Mutex<ListMix>>,
    last_refill: Option<Instant>,
    /// The fencing token while this node holds the campaign's pacer lease.
    lease: Option<i64>,
}

fn pacer_mode(cfg: &CampaignConfig) -> Mode {
    match cfg.mode {
        DialMode::Predictive => Mode::Predictive,
        _ => Mode::Progressive {
            lines_per_agent: cfg.lines_per_agent,
        },
    }
}

/// The pacer settings of a campaign.
fn pacer_config(cfg: &CampaignConfig, abandon_window: Duration) -> PacerConfig {
    PacerConfig {
        mode: pacer_mode(cfg),
        abandon_cap: cfg.compliance.abandon_cap,
        abandon_window_ms: abandon_window.as_millis() as i64,
        max_lines: Some(cfg.trunk.max_concurrent),
        ..PacerConfig::default()
    }
}

fn limiter(cps: u32) -> Arc<DefaultDirectRateLimiter> {
    let cps = NonZeroU32::new(cps.max(1)).expect("non-zero");
    // Burst of one: INVITEs are spaced evenly, so no one-second span holds more than `cps`.
    Arc::new(RateLimiter::direct(
        Quota::per_second(cps).allow_burst(NonZeroU32::new(1).expect("one")),
    ))
}

impl Worker {
    fn new(campaign: Campaign, abandon_window: Duration) -> Self {
        let cfg = &campaign.config;
        let pacer = Pacer::new(pacer_config(cfg, abandon_window));
        Self {
            limiter: limiter(cfg.trunk.cps),
            span: Arc::default(),
            cps: cfg.trunk.cps,
            pacer,
            in_flight: Arc::new(AtomicU32::new(0)),
            slots: HashMap::new(),
            agent_ids: HashMap::new(),
            agent_names: HashMap::new(),
            agent_ready: HashMap::new(),
            mix: Arc::default(),
            last_refill: None,
            lease: None,
            campaign,
        }
    }

    fn sync_agents(&mut self, shared: &Shared, now: i64) {
        if self.campaign.config.mode == DialMode::Agentless {
            return;
        }
        let snapshot = shared.agents.snapshot(&self.campaign.config.queue);
        let mut present = Vec::new();
        for a in snapshot {
            let next = self.agent_ids.len() as u32 + 1;
            let id = *self.agent_ids.entry(a.id.clone()).or_insert(next);
            self.agent_names.insert(id, a.id.clone());
            present.push(id);
            let ready = a.state == AgentState::Ready;
            match self.agent_ready.insert(id, ready) {
                None => {
                    self.pacer
                        .handle_input(now, Input::AgentLoggedIn { agent: id });
                    if !ready {
                        self.pacer.handle_input(now, Input::AgentBusy { agent: id });
                    }
                }
                Some(was) if was != ready => {
                    if ready {
                        self.pacer
                            .handle_input(now, Input::WrapUpEnded { agent: id });
                        self.pacer
                            .handle_input(now, Input::AgentReady { agent: id });
                    } else {
                        self.pacer.handle_input(now, Input::AgentBusy { agent: id });
                    }
                }
                _ => {}
            }
        }
        let gone: Vec<u32> = self
            .agent_ready
            .keys()
            .filter(|id| !present.contains(id))
            .copied()
            .collect();
        for id in gone {
            self.agent_ready.remove(&id);
            self.pacer
                .handle_input(now, Input::AgentLoggedOut { agent: id });
        }
    }
}

async fn main_loop(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let (ev_tx, mut ev_rx) = mpsc::unbounded_channel::<(i64, u64, CallEv)>();
    let mut workers: HashMap<i64, Worker> = HashMap::new();
    let mut tick = tokio::time::interval(shared.cfg.tick);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut fine = tokio::time::interval(Duration::from_millis(50));
    fine.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut next_call: u64 = 1;
    let mut stopping = false;
    loop {
        tokio::select! {
            _ = tick.tick(), if !stopping => {
                if let Err(e) = run_tick(&shared, &mut workers, &ev_tx, &mut next_call).await {
                    tracing::error!(error = %format!("{e:#}"), "dialer tick failed");
                }
            }
            _ = fine.tick() => {
                let now = shared.clock.now_ms();
                for w in workers.values_mut() {
                    if w.pacer.poll_timeout().is_some_and(|t| t <= now) {
                        w.pacer.handle_timeout(now);
                    }
                    drain_outputs(&shared, w, now, &ev_tx, &mut next_call);
                }
                if stopping && workers.values().all(|w| w.in_flight.load(Ordering::SeqCst) == 0) {
                    return;
                }
            }
            Some((campaign_id, call, ev)) = ev_rx.recv() => {
                let now = shared.clock.now_ms();
                if let Some(w) = workers.get_mut(&campaign_id) {
                    handle_event(w, call, ev, now);
                    drain_outputs(&shared, w, now, &ev_tx, &mut next_call);
                }
            }
            r = stop.changed() => {
                if r.is_err() || *stop.borrow() {
                    stopping = true;
                }
            }
        }
    }
}

fn handle_event(w: &mut Worker, call: u64, ev: CallEv, now: i64) {
    let pacer = w.campaign.config.mode != DialMode::Agentless;
    match ev {
        CallEv::Placed { cmd } => {
            w.slots.insert(call, cmd);
            if pacer {
                w.pacer.handle_input(now, Input::CallPlaced { call });
            }
        }
        CallEv::NotPlaced => {
            w.in_flight.fetch_sub(1, Ordering::SeqCst);
        }
        CallEv::Human if pacer => w.pacer.handle_input(now, Input::CallAnsweredHuman { call }),
        CallEv::NotHuman if pacer => w
            .pacer
            .handle_input(now, Input::CallAnsweredMachine { call }),
        CallEv::Ended {
            connected,
            answered,
        } => {
            w.slots.remove(&call);
            w.in_flight.fetch_sub(1, Ordering::SeqCst);
            if pacer {
                w.pacer.handle_input(
                    now,
                    if connected || answered {
                        Input::CallEnded { call }
                    } else {
                        Input::CallNoAnswer { call }
                    },
                );
            }
        }
        _ => {}
    }
}

fn drain_outputs(
    shared: &Arc<Shared>,
    w: &mut Worker,
    now: i64,
    ev_tx: &mpsc::UnboundedSender<(i64, u64, CallEv)>,
    next_call: &mut u64,
) {
    while let Some(out) = w.pacer.poll_output() {
        match out {
            Output::Dial { count } => {
                if w.campaign.state == CampaignState::Running {
                    let snap = w.pacer.snapshot(now);
                    let covered =
                        covered_by_ready_agents(&snap, w.in_flight.load(Ordering::SeqCst));
                    spawn_dials(shared, w, count, covered, ev_tx, next_call);
                }
            }
            Output::Connect { call, agent } => {
                let hint = w.agent_names.get(&agent).cloned().unwrap_or_default();
                if let Some(tx) = w.slots.get(&call) {
                    let _ = tx.send(Cmd::Connect { agent_hint: hint });
                }
            }
            Output::Abandon { call } => {
                if let Some(tx) = w.slots.get(&call) {
                    let _ = tx.send(Cmd::Abandon);
                }
            }
        }
    }
}

async fn run_tick(
    shared: &Arc<Shared>,
    workers: &mut HashMap<i64, Worker>,
    ev_tx: &mpsc::UnboundedSender<(i64, u64, CallEv)>,
    next_call: &mut u64,
) -> anyhow::Result<()> {
    let current = shared.registries.lock().expect("registries").clone();
    if !current.is_current(&shared.db).await? {
        let mut fresh = Registries::default();
        fresh.refresh(&shared.db).await?;
        *shared.registries.lock().expect("registries") = Arc::new(fresh);
    }
    let now = shared.clock.now_ms();
    for c in campaign::list(&shared.db, None).await? {
        if c.config.mode == DialMode::Preview {
            continue;
        }
        match workers.get_mut(&c.id) {
            Some(w) => {
                if w.cps != c.config.trunk.cps {
                    w.limiter = limiter(c.config.trunk.cps);
                    w.cps = c.config.trunk.cps;
                }
                if w.campaign.config.mode != c.config.mode
                    || w.campaign.config.lines_per_agent != c.config.lines_per_agent
                {
                    w.pacer.set_mode(pacer_mode(&c.config));
                }
                w.campaign = c;
            }
            None if c.state == CampaignState::Running => {
                workers.insert(c.id, Worker::new(c, shared.cfg.window_after_verdict()));
            }
            None => continue,
        }
    }
    for w in workers.values_mut() {
        if w.campaign.state != CampaignState::Running
            && w.in_flight.load(Ordering::SeqCst) == 0
            && let Some(token) = w.lease.take()
        {
            lease::release(
                &shared.db,
                shared.clock.as_ref(),
                w.campaign.id,
                &shared.cfg.node,
                token,
            )
            .await?;
        }
    }
    workers.retain(|_, w| {
        w.campaign.state == CampaignState::Running || w.in_flight.load(Ordering::SeqCst) > 0
    });
    for w in workers.values_mut() {
        if w.campaign.state != CampaignState::Running {
            continue;
        }
        match lease::acquire(
            &shared.db,
            shared.clock.as_ref(),
            w.campaign.id,
            &shared.cfg.node,
            shared.cfg.lease_ttl,
        )
        .await?
        {
            lease::Acquired::Held(l) => {
                if w.lease != Some(l.token) {
                    tracing::info!(campaign = w.campaign.id, node = %shared.cfg.node, token = l.token, "pacing the campaign");
                }
                w.lease = Some(l.token);
                if let Some(t) = l.takeover {
                    shared.stats.lock().expect("stats").takeovers.push(t);
                }
            }
            lease::Acquired::Busy { .. } => {
                w.lease = None;
                continue;
            }
        }
        if w.last_refill
            .is_none_or(|t| t.elapsed() > Duration::from_secs(30))
        {
            hopper::refill(&shared.db, shared.clock.as_ref(), &w.campaign).await?;
            w.last_refill = Some(Instant::now());
        }
        w.sync_agents(shared, now);
        if w.campaign.config.mode == DialMode::Agentless {
            let free = w
                .campaign
                .config
                .trunk
                .max_concurrent
                .saturating_sub(w.in_flight.load(Ordering::SeqCst));
            let count = free.min(w.campaign.config.trunk.cps);
            spawn_dials(shared, w, count, 0, ev_tx, next_call);
        } else {
            w.pacer.tick(now);
            drain_outputs(shared, w, now, ev_tx, next_call);
        }
    }
    Ok(())
}

/// How many new dials have a ready agent each: ready agents beyond the calls already placed and
/// not yet with an agent (calls up on the trunk minus those connected to talking agents). Such a
/// dial cannot be abandoned, so it is placed even when the campaign is at its abandonment cap —
/// at the cap the campaign falls back to progressive dialing instead of stopping (an early
/// abandon among few live answers would otherwise stall it for good).
fn covered_by_ready_agents(snap: &Snapshot, in_flight: u32) -> u32 {
    let unconnected = in_flight.saturating_sub(snap.agents_talking);
    snap.agents_ready.saturating_sub(unconnected)
}

/// Which dials of one batch have an agent reserved, so that the abandonment cap does not hold
/// them back ([`crate::compliance::Counters::agent_reserved`]): every dial of a one-to-one
/// progressive campaign, otherwise the first `covered` placed (see [`covered_by_ready_agents`]).
#[derive(Debug, Clone, Copy)]
struct Reservation {
    one_to_one: bool,
    covered: u32,
}

impl Reservation {
    fn new(cfg: &CampaignConfig, covered: u32) -> Self {
        Self {
            one_to_one: cfg.mode == DialMode::Progressive && cfg.lines_per_agent <= 1.0,
            covered,
        }
    }

    /// Whether the next dial, after `placed` of the batch were placed, has an agent reserved.
    fn reserved(&self, placed: u32) -> bool {
        self.one_to_one || placed < self.covered
    }
}

/// Claims and dials up to `count` leads in a background task (the cps limiter waits there); the
/// first `covered` of them have a ready agent each (see [`covered_by_ready_agents`]).
fn spawn_dials(
    shared: &Arc<Shared>,
    w: &mut Worker,
    count: u32,
    covered: u32,
    ev_tx: &mpsc::UnboundedSender<(i64, u64, CallEv)>,
    next_call: &mut u64,
) {
    let cfg = &w.campaign.config;
    let free = cfg
        .trunk
        .max_concurrent
        .saturating_sub(w.in_flight.load(Ordering::SeqCst));
    let count = count.min(free);
    if count == 0 {
        return;
    }
    w.in_flight.fetch_add(count, Ordering::SeqCst);
    let first = *next_call;
    *next_call += count as u64;
    let token = w.lease;
    let (shared, campaign, limiter, span, in_flight, mix, ev_tx) = (
        shared.clone(),
        w.campaign.clone(),
        w.limiter.clone(),
        w.span.clone(),
        w.in_flight.clone(),
        w.mix.clone(),
        ev_tx.clone(),
    );
    tokio::spawn(async move {
        let mut placed = 0u32;
        let mut claimed = Vec::new();
        let pace = Pace {
            limiter: &limiter,
            span: &span,
        };
        let r = dial_batch(
            &shared,
            &campaign,
            token,
            count,
            covered,
            first,
            pace,
            &in_flight,
            &mix,
            &ev_tx,
            &mut placed,
            &mut claimed,
        )
        .await;
        if let Err(e) = &r {
            // The batch stopped early: its leads that are still claimed (not dialled, released or
            // finished) go back to the hopper now rather than at this node's next start. After a
            // takeover the new pacer has already given them back and this changes nothing.
            let reason = format!("batch stopped: {e:#}");
            let (db, clock) = (&shared.db, shared.clock.as_ref());
            for id in claimed {
                let _ = hopper::release(
                    db,
                    clock,
                    campaign.id,
                    id,
                    &shared.cfg.node,
                    clock.now_ms(),
                    &reason,
                )
                .await;
            }
        }
        match r {
            Err(e) if e.downcast_ref::<lease::Fenced>().is_some() => {
                shared.stats.lock().expect("stats").fenced += 1;
                tracing::warn!(campaign = campaign.id, error = %format!("{e:#}"), "no longer the pacer: dialling stopped");
            }
            Err(e) => {
                tracing::error!(campaign = campaign.id, error = %format!("{e:#}"), "dialling failed")
            }
            Ok(()) => {}
        }
        for k in placed..count {
            let _ = ev_tx.send((campaign.id, first + k as u64, CallEv::NotPlaced));
        }
    });
}

struct Pace<'a> {
    limiter: &'a DefaultDirectRateLimiter,
    span: &'a tokio::sync::Mutex<SpanGuard>,
}

#[allow(clippy::too_many_arguments)]
async fn dial_batch(
    shared: &Arc<Shared>,
    campaign: &Campaign,
    token: Option<i64>,
    count: u32,
    covered: u32,
    first: u64,
    pace: Pace<'_>,
    in_flight: &AtomicU32,
    mix: &tokio::sync::Mutex<ListMix>,
    ev_tx: &mpsc::UnboundedSender<(i64, u64, CallEv)>,
    placed: &mut u32,
    claimed: &mut Vec<i64>,
) -> anyhow::Result<()> {
    let (db, clock) = (&shared.db, shared.clock.as_ref());
    let node = &shared.cfg.node;
    let Some(token) = token else {
        return Err(lease::Fenced {
            campaign_id: campaign.id,
            node: node.clone(),
            token: 0,
        }
        .into());
    };
    let fence = lease::Fence { node, token };
    let leads = {
        let mut mix = mix.lock().await;
        hopper::claim_fenced(db, clock, campaign, node, Some(token), count, &mut mix).await?
    };
    *claimed = leads.iter().map(|l| l.lead_id).collect();
    let registries = shared.registries.lock().expect("registries").clone();
    let cfg = &campaign.config;
    let reservation = Reservation::new(cfg, covered);
    for lead in leads {
        let reserved = reservation.reserved(*placed);
        let now = clock.now_ms();
        let on_trunk = in_flight
            .load(Ordering::SeqCst)
            .saturating_sub(count - *placed);
        let counters = gate::counters(db, campaign, now, on_trunk, reserved).await?;
        match gate::decide(db, clock, campaign, &lead, &registries, &counters).await? {
            Verdict::Dial { phone, reason } => {
                pace.limiter.until_ready().await;
                let call_no = first + *placed as u64;
                let attempt = attempts::open_fenced(
                    db,
                    clock,
                    &NewAttempt {
                        campaign_id: Some(campaign.id),
                        lead_id: Some(lead.lead_id),
                        phone_position: Some(phone.position),
                        e164: phone.e164.clone(),
                        caller_id: cfg.caller_id.clone(),
                        node: node.clone(),
                        allowed_reason: reason,
                        attributes: Default::default(),
                    },
                    Some(fence),
                )
                .await?;
                let invite = originate(cfg, &phone.e164)?;
                let call = {
                    let mut span = pace.span.lock().await;
                    loop {
                        let wait = span.wait(Instant::now(), cfg.trunk.cps);
                        if wait.is_zero() {
                            break;
                        }
                        tokio::time::sleep(wait).await;
                    }
                    let call = shared.calls.originate(invite);
                    span.record(Instant::now(), cfg.trunk.cps);
                    shared.stats.lock().expect("stats").dialled(campaign.id);
                    call
                };
                let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
                let _ = ev_tx.send((
                    campaign.id,
                    call_no,
                    CallEv::Placed {
                        cmd: cmd_tx.clone(),
                    },
                ));
                *placed += 1;
                let ctx = CallCtx {
                    shared: shared.clone(),
                    campaign_id: campaign.id,
                    cfg: cfg.clone(),
                    call_no,
                    attempt,
                    e164: phone.e164,
                    lead: Some(lead),
                    ev: ev_tx.clone(),
                    cmd_tx,
                };
                tokio::spawn(run_call(ctx, call, cmd_rx));
            }
            Verdict::Release {
                next_at,
                reason,
                code,
            } => {
                *shared
                    .stats
                    .lock()
                    .expect("stats")
                    .blocked
                    .entry(code.to_owned())
                    .or_default() += 1;
                hopper::release(db, clock, campaign.id, lead.lead_id, node, next_at, &reason)
                    .await?;
            }
            Verdict::Finish { outcome, reason } => {
                *shared
                    .stats
                    .lock()
                    .expect("stats")
                    .blocked
                    .entry(outcome.to_owned())
                    .or_default() += 1;
                hopper::finish(db, clock, campaign.id, lead.lead_id, node, outcome, &reason)
                    .await?;
            }
            Verdict::Filtered { reason } => {
                hopper::set_filtered(db, clock, campaign.id, lead.lead_id, node, &reason).await?
            }
        }
    }
    Ok(())
}

/// The INVITE for a campaign call: campaign caller id, its trunk, ring at least `min_ring_s`.
pub fn originate(cfg: &CampaignConfig, e164: &str) -> anyhow::Result<Originate> {
    Ok(Originate {
        to_user: e164.trim_start_matches('+').to_owned(),
        from_user: cfg.caller_id.clone(),
        trunks: vec![trunk(&cfg.trunk.uri)?],
        ring_timeout: Duration::from_secs(cfg.compliance.min_ring_s.max(15) as u64 + 5),
        ..Originate::default()
    })
}

/// `sip:HOST:PORT[;transport=tcp]` → a trunk (the host must be an IP address).
pub fn trunk(uri: &str) -> anyhow::Result<Trunk> {
    // `sips:` or `;transport=tls|tcp|udp` choose the transport (never silently UDP for TLS).
    Trunk::from_uri(uri).map_err(anyhow::Error::msg)
}

struct CallCtx {
    shared: Arc<Shared>,
    campaign_id: i64,
    cfg: CampaignConfig,
    call_no: u64,
    attempt: attempts::Attempt,
    e164: String,
    lead: Option<ClaimedLead>,
    ev: mpsc::UnboundedSender<(i64, u64, CallEv)>,
    cmd_tx: mpsc::UnboundedSender<Cmd>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Playing {
    None,
    SafeHarbor,
    Agentless,
    Voicemail,
    /// An agentless flow has the call.
    Flow,
}

/// Where the AMD is after pick-up (see [`RunnerConfig::reply_amd`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AmdPhase {
    /// The first verdict: person, machine or unknown.
    Verdict,
    /// A machine verdict, waiting for the beep: listening for a live reply.
    ReplyBeforeBeep,
    /// The message after the beep plays: a machine records silently, a person may answer.
    ReplyDuringMessage,
}

/// A flow running on the call: where its events go, and its result.
struct RunningFlow {
    events: mpsc::UnboundedSender<Event>,
    done: tokio::sync::oneshot::Receiver<FlowResult>,
}

/// Hands the answered call to the flow port (the call's events are forwarded by [`run_call`]).
fn start_flow(port: &Arc<dyn FlowPort>, ctx: &CallCtx, call: &Call, flow: &str) -> RunningFlow {
    let (tx, rx) = mpsc::unbounded_channel();
    let (done_tx, done) = tokio::sync::oneshot::channel();
    let mut attributes = BTreeMap::new();
    attributes.insert("direction".to_owned(), "outbound".to_owned());
    if let Some(l) = &ctx.lead {
        attributes.insert("lead_id".to_owned(), l.lead_id.to_string());
        attributes.insert("campaign_id".to_owned(), ctx.campaign_id.to_string());
        for (k, v) in [("first_name", &l.first_name), ("last_name", &l.last_name)] {
            if let Some(v) = v {
                attributes.insert(k.to_owned(), v.clone());
            }
        }
        for (k, v) in &l.attributes {
            let v = match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            attributes.entry(k.clone()).or_insert(v);
        }
    }
    let fut = port.run_flow(
        FlowCall {
            info: call.info().clone(),
            control: call.control().clone(),
            events: rx,
        },
        FlowRun {
            flow: flow.to_owned(),
            contact_id: ctx.attempt.public_id.clone(),
            customer: ctx.e164.clone(),
            system: ctx.cfg.caller_id.clone(),
            attributes,
        },
    );
    tokio::spawn(async move {
        let _ = done_tx.send(fut.await);
    });
    RunningFlow { events: tx, done }
}

/// What a finished flow leaves in the final record: its attributes, its `disposition`
/// attribute, the agent of a transfer to a queue, the keys pressed.
pub fn apply_flow_result(fin: &mut Final, flow: &str, r: &FlowResult) {
    fin.flow_id = Some(flow.to_owned());
    let mut attrs: serde_json::Map<String, serde_json::Value> = r
        .attributes
        .iter()
        .filter(|(k, _)| {
            !matches!(
                k.as_str(),
                "direction" | "lead_id" | "campaign_id" | "contact_id" | "number" | "flow"
            )
        })
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect();
    if !r.digits.is_empty() {
        attrs.insert("flow_digits".into(), r.digits.clone().into());
    }
    fin.attributes = Some(attrs);
    fin.disposition = r.attributes.get("disposition").cloned();
    if let Some(a) = &r.agent {
        fin.agent = Some(a.clone());
    }
    fin.detail = Some(match &r.error {
        Some(e) => format!("flow {flow}: {e}"),
        None => format!("flow {flow}: {}", r.outcome),
    });
}

async fn opt_out(db: &Db, clock: &dyn foundation::Clock, e164: &str, why: &str) -> bool {
    match importers::dnc::add_internal(db, clock, e164, "US", why, "opt_out", None).await {
        Ok(_) => true,
        Err(e) => {
            tracing::error!(number = %e164, error = %format!("{e:#}"), "opt-out not recorded");
            false
        }
    }
}

/// The attempt outcome a call-progress tone decides by itself, read from telephony's outcome
/// table (the one table for SIP codes and tones): a special-information tone → disconnected.
/// The call is then hung up with `hangup_on_tone`, and its hang-up carries that outcome.
fn tone_outcome(tone: telephony::media::progress::ProgressTone) -> Option<Outcome> {
    telephony::sip::outcome::Outcome::from_tone(tone).map(Outcome::from_sip)
}

async fn run_call(ctx: CallCtx, mut call: Call, mut cmd_rx: mpsc::UnboundedReceiver<Cmd>) {
    let shared = ctx.shared.clone();
    let (db, clock) = (&shared.db, shared.clock.as_ref());
    let control = call.control().clone();
    let mut fin = Final::default();
    let (
        mut ringing,
        mut answered,
        mut machine,
        mut connected,
        mut abandoned,
        mut opted_out,
        mut message,
    ) = (false, false, false, false, false, false, false);
    let mut waiting_beep = false;
    let mut playing = Playing::None;
    let mut greeting_end: Option<(i64, Instant)> = None;
    let mut deadline: Option<tokio::time::Instant> = None;
    let mut phase = AmdPhase::Verdict;
    // A live reply heard before the beep, counted once no beep follows (`reply_confirm`).
    let mut tentative_reply: Option<String> = None;
    let mut flow: Option<RunningFlow> = None;
    let opt_out_key = ctx.cfg.safe_harbor.opt_out_key;
    let send = |ev: CallEv| {
        let _ = ctx.ev.send((ctx.campaign_id, ctx.call_no, ev));
    };
    loop {
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            ev = call.next_event() => {
                let Some(ev) = ev else {
                    fin.outcome = Some(if connected { Outcome::Connected } else { Outcome::Failed });
                    fin.detail = Some("call control ended without a hang-up event".into());
                    break;
                };
                // A flow has the call: it gets every event but the opt-out key, which is ours.
                if let Some(f) = &flow {
                    match &ev {
                        Event::Dtmf { digit, .. } if *digit == opt_out_key => {
                            opted_out = opt_out(db, clock, &ctx.e164, "opt-out key during an agentless flow").await;
                            let _ = control.hangup().await;
                            continue;
                        }
                        Event::Hangup { .. } => {}
                        other => {
                            let _ = f.events.send(other.clone());
                            continue;
                        }
                    }
                }
                let hangup = matches!(ev, Event::Hangup { .. }).then(|| ev.clone());
                match ev {
                    Event::Ringing { .. } | Event::EarlyMedia { .. } if !ringing => {
                        ringing = true;
                        let _ = attempts::mark(db, clock, ctx.attempt.id, Progress::Ringing).await;
                    }
                    // A tone that decides the call (a special-information tone) ends it; the
                    // hang-up then carries telephony's outcome for it (number disconnected).
                    Event::Progress(p) if tone_outcome(p.tone).is_some() => {
                        let _ = control.hangup_on_tone(p.tone).await;
                    }
                    Event::Answered { .. } => {
                        answered = true;
                        let _ = attempts::mark(db, clock, ctx.attempt.id, Progress::Answered).await;
                        if control.start_amd(shared.cfg.amd.clone()).await.is_err() {
                            let _ = control.hangup().await;
                        }
                    }
                    Event::Amd(AmdEvent::Verdict { verdict, reason, at, speech_end }) if phase == AmdPhase::Verdict => {
                        fin.amd = Some(format!("{verdict:?}").to_ascii_lowercase());
                        fin.detail = Some(format!("AMD: {reason}"));
                        let human = verdict != AmdVerdict::Machine || ctx.cfg.amd == AmdPolicy::PassToAgent;
                        machine = verdict == AmdVerdict::Machine;
                        if human {
                            fin.live = verdict != AmdVerdict::Machine;
                            // The greeting ended `at - speech_end` before this verdict (the
                            // AMD's after-greeting silence); nobody spoke: the verdict itself.
                            let since_end = speech_end.map_or(Duration::ZERO, |e| at.saturating_sub(e));
                            let now = clock.now_ms() - since_end.as_millis() as i64;
                            let instant = Instant::now();
                            greeting_end = Some((now, instant.checked_sub(since_end).unwrap_or(instant)));
                            fin.greeting_end_at = Some(now);
                            if ctx.cfg.mode == DialMode::Agentless {
                                if let Some(f) = ctx.cfg.agentless_flow.as_deref() {
                                    match &shared.flows {
                                        Some(port) => {
                                            playing = Playing::Flow;
                                            message = true;
                                            fin.flow_id = Some(f.to_owned());
                                            flow = Some(start_flow(port, &ctx, &call, f));
                                        }
                                        None => {
                                            fin.detail = Some(format!("flow {f}: no flow runner on this node"));
                                            let _ = control.hangup().await;
                                        }
                                    }
                                } else if let Some(p) = ctx.cfg.agentless_prompt.as_deref().and_then(|p| shared.prompt(p).ok()) {
                                    playing = Playing::Agentless;
                                    message = true;
                                    let _ = control.play_prompt(&p).await;
                                } else {
                                    let _ = control.hangup().await;
                                }
                            } else {
                                // Backstop for the pacer's own abandonment timer.
                                deadline = Some(tokio::time::Instant::now() + shared.cfg.window_after_verdict() + Duration::from_millis(100));
                                send(CallEv::Human);
                            }
                        } else {
                            send(CallEv::NotHuman);
                            match ctx.cfg.amd {
                                AmdPolicy::LeaveMessage => {
                                    waiting_beep = true;
                                    deadline = Some(tokio::time::Instant::now() + Duration::from_secs(30));
                                    // Listen again: a person says "Hello?" and waits; a
                                    // machine talks on, beeps, or records silently.
                                    if machine {
                                        phase = AmdPhase::ReplyBeforeBeep;
                                        let _ = control.start_amd(shared.cfg.reply_amd.clone()).await;
                                    }
                                }
                                // Hang-up policy: no audio after the verdict, nothing to judge.
                                _ => { let _ = control.hangup().await; }
                            }
                        }
                    }
                    Event::Amd(AmdEvent::Verdict { verdict: AmdVerdict::Human, reason, .. }) if phase != AmdPhase::Verdict && !fin.live_person_after_machine => {
                        if phase == AmdPhase::ReplyBeforeBeep && waiting_beep {
                            tentative_reply = Some(format!("a reply after the machine verdict, and no beep (AMD: {reason})"));
                            deadline = Some(tokio::time::Instant::now() + shared.cfg.reply_confirm);
                        } else if phase == AmdPhase::ReplyDuringMessage && playing == Playing::Voicemail {
                            fin.live_person_after_machine(&format!("a reply during the message after the beep (AMD: {reason})"));
                        }
                    }
                    Event::Amd(AmdEvent::Beep { .. }) if waiting_beep => {
                        waiting_beep = false;
                        deadline = None;
                        // A machine beeps: a "reply" before it was its own greeting.
                        tentative_reply = None;
                        match ctx.cfg.voicemail_prompt.as_deref().and_then(|p| shared.prompt(p).ok()) {
                            Some(p) => {
                                playing = Playing::Voicemail;
                                let _ = control.play_prompt(&p).await;
                                phase = AmdPhase::ReplyDuringMessage;
                                let _ = control.start_amd(shared.cfg.reply_amd.clone()).await;
                            }
                            None => { let _ = control.hangup().await; }
                        }
                    }
                    // Machines do not press keys: a key after a machine verdict is a person.
                    Event::Dtmf { digit, .. } if machine && (waiting_beep || playing == Playing::Voicemail) => {
                        fin.live_person_after_machine(&format!("key {digit} pressed after the machine verdict"));
                        if digit == opt_out_key {
                            opted_out = opt_out(db, clock, &ctx.e164, "opt-out key after an AMD machine verdict").await;
                            let _ = control.hangup().await;
                        } else if waiting_beep {
                            waiting_beep = false;
                            tentative_reply = None;
                            abandon(&shared, &ctx, &control, &mut abandoned, &mut playing, &mut deadline).await;
                        }
                    }
                    Event::Dtmf { digit, .. } if digit == opt_out_key && playing != Playing::None && playing != Playing::Voicemail => {
                        opted_out = opt_out(db, clock, &ctx.e164, "opt-out key during a prerecorded message").await;
                        let _ = control.hangup().await;
                    }
                    Event::PlaybackFinished if playing != Playing::None && playing != Playing::Flow => {
                        if playing == Playing::Voicemail {
                            fin.detail = Some("message left after the beep".into());
                        }
                        let _ = control.hangup().await;
                    }
                    Event::Hangup { code, outcome, .. } => {
                        if let Some(f) = flow.take() {
                            if let Some(h) = hangup {
                                let _ = f.events.send(h);
                            }
                            drop(f.events);
                            let flow_id = fin.flow_id.clone().unwrap_or_default();
                            match tokio::time::timeout(Duration::from_secs(15), f.done).await {
                                Ok(Ok(r)) => {
                                    if r.agent.is_some() {
                                        connected = true;
                                    }
                                    // A flow that could not run played nothing to a live
                                    // answer: counted abandoned below.
                                    if r.error.is_some() {
                                        message = false;
                                    }
                                    apply_flow_result(&mut fin, &flow_id, &r);
                                }
                                _ => fin.detail = Some(format!("flow {flow_id}: no result")),
                            }
                        }
                        fin.sip_code = code;
                        fin.outcome = Some(if opted_out {
                            Outcome::Dnc
                        } else if connected {
                            Outcome::Connected
                        } else if abandoned || fin.live_person_after_machine {
                            Outcome::Abandoned
                        } else if message {
                            Outcome::Message
                        } else if machine {
                            Outcome::Machine
                        } else if greeting_end.is_some() {
                            // A live answer that ended before it was connected: counted abandoned.
                            abandoned = true;
                            Outcome::Abandoned
                        } else if answered {
                            fin.detail = Some("hung up during the greeting".into());
                            Outcome::Failed
                        } else {
                            Outcome::from_sip(outcome)
                        });
                        break;
                    }
                    _ => {}
                }
            }
            Some(cmd) = cmd_rx.recv() => match cmd {
                Cmd::Connect { agent_hint } if !abandoned && !connected => {
                    let mut attrs = BTreeMap::new();
                    attrs.insert("contact_id".to_owned(), ctx.attempt.public_id.clone());
                    attrs.insert("agent_hint".to_owned(), agent_hint);
                    attrs.insert("number".to_owned(), ctx.e164.clone());
                    attrs.insert("campaign_id".to_owned(), ctx.campaign_id.to_string());
                    if let Some(l) = &ctx.lead {
                        attrs.insert("lead_id".to_owned(), l.lead_id.to_string());
                        for (k, v) in [("first_name", &l.first_name), ("last_name", &l.last_name)] {
                            if let Some(v) = v { attrs.insert(k.to_owned(), v.clone()); }
                        }
                    }
                    let fut = shared.agents.connect(&ctx.cfg.queue, control.clone(), attrs);
                    let tx = ctx.cmd_tx.clone();
                    tokio::spawn(async move {
                        let r = fut.await.map_err(|e| e.to_string());
                        let _ = tx.send(Cmd::ConnectResult(r));
                    });
                }
                Cmd::ConnectResult(Ok(agent)) if !abandoned => {
                    connected = true;
                    deadline = None;
                    let now = clock.now_ms();
                    fin.agent = Some(agent);
                    fin.bridged_at = Some(now);
                    if let Some((_, at)) = greeting_end {
                        shared.stats.lock().expect("stats").bridge_latency_us.push(at.elapsed().as_micros() as i64);
                    }
                    let _ = attempts::mark(db, clock, ctx.attempt.id, Progress::Connected).await;
                }
                Cmd::ConnectResult(Ok(_)) => {
                    // Connected after the call was abandoned: the agent leg is released by the port's bridge ending.
                }
                Cmd::ConnectResult(Err(_)) | Cmd::Abandon if !connected && !abandoned => {
                    abandon(&shared, &ctx, &control, &mut abandoned, &mut playing, &mut deadline).await;
                }
                _ => {}
            },
            _ = sleep => {
                deadline = None;
                if let Some(evidence) = tentative_reply.take().filter(|_| waiting_beep) {
                    // No beep after the reply: a person heard "machine" silence. Counted
                    // abandoned; they hear the safe-harbor message (seller, number, opt-out).
                    waiting_beep = false;
                    fin.live_person_after_machine(&evidence);
                    abandon(&shared, &ctx, &control, &mut abandoned, &mut playing, &mut deadline).await;
                } else if waiting_beep {
                    waiting_beep = false;
                    let _ = control.hangup().await;
                } else if !connected && !abandoned && greeting_end.is_some() {
                    abandon(&shared, &ctx, &control, &mut abandoned, &mut playing, &mut deadline).await;
                }
            }
        }
    }
    fin.abandoned = abandoned || fin.live_person_after_machine;
    if fin.abandoned {
        fin.live = true;
    }
    let outcome = fin.outcome.unwrap_or(Outcome::Failed);
    fin.outcome = Some(outcome);
    *shared
        .stats
        .lock()
        .expect("stats")
        .outcomes
        .entry(outcome.as_str().to_owned())
        .or_default() += 1;
    if let Err(e) = attempts::finish(db, clock, ctx.attempt.id, &fin, Some(&ctx.cfg)).await {
        tracing::error!(attempt = ctx.attempt.id, error = %format!("{e:#}"), "final record not written");
    }
    send(CallEv::Ended {
        connected,
        answered,
    });
}

async fn abandon(
    shared: &Shared,
    ctx: &CallCtx,
    control: &CallControl,
    abandoned: &mut bool,
    playing: &mut Playing,
    deadline: &mut Option<tokio::time::Instant>,
) {
    *abandoned = true;
    *deadline = None;
    match shared.prompt(&ctx.cfg.safe_harbor.prompt) {
        Ok(p) => {
            *playing = Playing::SafeHarbor;
            if control.play_prompt(&p).await.is_err() {
                let _ = control.hangup().await;
            }
        }
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "safe-harbor prompt missing");
            let _ = control.hangup().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tones_map_through_telephony_s_outcome_table() {
        use telephony::media::progress::{ProgressTone, SitKind};
        use telephony::sip::outcome::Outcome as Sip;
        for kind in [SitKind::Intercept, SitKind::VacantCode, SitKind::NoCircuit] {
            let tone = ProgressTone::Sit(kind);
            assert_eq!(Sip::from_tone(tone), Some(Sip::NumberDisconnected));
            assert_eq!(tone_outcome(tone), Some(Outcome::Disconnected), "{kind:?}");
        }
        // The hang-up after a SIT carries telephony's outcome; the dialer maps it the same way.
        assert_eq!(
            Outcome::from_sip(Sip::of_cancelled(
                telephony::sip::call::HangupCause::SpecialInformationTone
            )),
            Outcome::Disconnected
        );
        for tone in [
            ProgressTone::Busy,
            ProgressTone::Reorder,
            ProgressTone::Ringback,
        ] {
            assert_eq!(tone_outcome(tone), None, "{tone:?}");
        }
    }

    #[test]
    fn span_guard_keeps_every_second_under_cps() {
        let t0 = Instant::now();
        let mut g = SpanGuard::default();
        let mut sent = Vec::new();
        let mut now = t0;
        // Sends requested every 100 ms (jittery limiter): the guard spaces them.
        for _ in 0..10 {
            now += g.wait(now, 3);
            g.record(now, 3);
            sent.push(now);
            now += Duration::from_millis(100);
        }
        for (i, t) in sent.iter().enumerate() {
            let in_span = sent[i..]
                .iter()
                .take_while(|u| u.duration_since(*t) < Duration::from_secs(1))
                .count();
            assert!(in_span <= 3, "{in_span} sends within 1 s");
        }
        assert!(sent[3].duration_since(sent[0]) >= Duration::from_secs(1));
    }

    /// The runner's dialing decision on a virtual clock, with no sockets and no database: the
    /// campaign's pacer ([`pacer_config`]), its `Dial` outputs, the dials covered by ready agents
    /// (taken before the batch counts in flight, as [`drain_outputs`] and [`spawn_dials`] do), and
    /// the dial gate's compliance check of each dial of the batch ([`dial_batch`]) with the
    /// campaign's abandonment counters. Traffic: a live person answers every 5th call after 10 s,
    /// the others ring out at 20 s; talks last 100 s, wrap-ups 10 s.
    mod cap_fallback {
        use std::collections::BTreeMap;

        use foundation::clock::{Clock, VirtualClock};

        use super::*;
        use crate::campaign::{ListWeight, Purpose, SafeHarbor, TrunkConfig};
        use crate::compliance::{AbandonCount, Counters, DncFacts, LeadFacts, NumberFacts, check};

        /// 2026-06-01 14:00 UTC: 10:00 in New York, inside the calling window for hours.
        const T0: i64 = 1_780_322_400_000;

        fn predictive() -> CampaignConfig {
            CampaignConfig {
                lists: vec![ListWeight {
                    list_id: 1,
                    weight: 1,
                }],
                mode: DialMode::Predictive,
                purpose: Purpose::Informational,
                lines_per_agent: 1.0,
                caller_id: "15550001000".into(),
                queue: "sales".into(),
                trunk: TrunkConfig {
                    uri: "sip:127.0.0.1:5080".into(),
                    cps: 50,
                    max_concurrent: 100,
                },
                retry: Default::default(),
                compliance: Default::default(),
                amd: AmdPolicy::HangUp,
                voicemail_prompt: None,
                agentless_prompt: None,
                agentless_flow: None,
                safe_harbor: SafeHarbor {
                    seller: "Acme".into(),
                    callback_number: "+15550001000".into(),
                    opt_out_key: '9',
                    prompt: "sh.wav".into(),
                },
                filters: vec![],
                dispositions: Default::default(),
                preview_auto_dial_s: None,
            }
        }

        /// 1 early abandon among 4 live answers: 25 %, far over the 3 % cap.
        const OVER: AbandonCount = AbandonCount {
            live: 4,
            abandoned: 1,
        };
        const UNDER: AbandonCount = AbandonCount {
            live: 1000,
            abandoned: 0,
        };

        /// One pacing decision and what the gate let through.
        #[derive(Debug, Clone, Copy)]
        struct Round {
            asked: u32,
            covered: u32,
            placed: u32,
            /// After the batch: ready agents, and calls ringing or waiting for an agent.
            ready_after: u32,
            lines_after: u32,
        }

        struct Rig {
            cfg: CampaignConfig,
            clock: VirtualClock,
            pacer: Pacer,
            /// Calls planned or up on the trunk (the runner's `in_flight`).
            in_flight: u32,
            next_call: u64,
            ringing: BTreeMap<u64, (i64, bool)>,
            talking: BTreeMap<u32, (i64, u64)>,
            wrap: BTreeMap<u32, i64>,
            /// Calls abandoned by the pacer (no agent within the window).
            abandoned: Vec<u64>,
        }

        impl Rig {
            fn new(agents: u32) -> Self {
                let cfg = predictive();
                let mut pacer = Pacer::new(pacer_config(&cfg, Duration::from_secs(2)));
                for a in 1..=agents {
                    pacer.handle_input(T0, Input::AgentLoggedIn { agent: a });
                }
                Self {
                    cfg,
                    clock: VirtualClock::at_ms(T0),
                    pacer,
                    in_flight: 0,
                    next_call: 1,
                    ringing: BTreeMap::new(),
                    talking: BTreeMap::new(),
                    wrap: BTreeMap::new(),
                    abandoned: Vec::new(),
                }
            }

            fn input(&mut self, now: i64, i: Input) {
                self.pacer.handle_input(now, i);
                self.drain(now);
            }

            /// Connects and abandons as the runner's calls do.
            fn drain(&mut self, now: i64) {
                while let Some(out) = self.pacer.poll_output() {
                    match out {
                        Output::Connect { call, agent } => {
                            self.talking.insert(agent, (now + 100_000, call));
                        }
                        Output::Abandon { call } => {
                            self.abandoned.push(call);
                            self.in_flight -= 1;
                            self.pacer.handle_input(now, Input::CallEnded { call });
                        }
                        Output::Dial { .. } => unreachable!("dials come from ticks"),
                    }
                }
            }

            /// The runner's `Dial { count }`: the gate decides for each dial of the batch.
            fn dial(&mut self, now: i64, count: u32, abandons: AbandonCount) -> Round {
                let snap = self.pacer.snapshot(now);
                let covered = covered_by_ready_agents(&snap, self.in_flight);
                let count = count.min(self.cfg.trunk.max_concurrent - self.in_flight);
                self.in_flight += count;
                let reservation = Reservation::new(&self.cfg, covered);
                let lead = LeadFacts {
                    zones: vec![chrono_tz::America::New_York],
                    country: Some("US".into()),
                    ..Default::default()
                };
                let mut placed = 0;
                for _ in 0..count {
                    let counters = Counters {
                        campaign_started_at: T0,
                        to_date: abandons,
                        period: abandons,
                        rolling: None,
                        trunk_in_flight: self.in_flight - (count - placed),
                        agent_reserved: reservation.reserved(placed),
                    };
                    let call = self.next_call;
                    let number = NumberFacts {
                        e164: format!("+1212555{call:04}"),
                        ..Default::default()
                    };
                    let d = check(
                        &lead,
                        &number,
                        &self.cfg,
                        &DncFacts::default(),
                        &counters,
                        now,
                    );
                    if d.is_allowed() {
                        self.next_call += 1;
                        let human = call.is_multiple_of(5);
                        let at = now + if human { 10_000 } else { 20_000 };
                        self.ringing.insert(call, (at, human));
                        self.pacer.handle_input(now, Input::CallPlaced { call });
                        placed += 1;
                    }
                }
                self.in_flight -= count - placed;
                let after = self.pacer.snapshot(now);
                Round {
                    asked: count,
                    covered,
                    placed,
                    ready_after: after.agents_ready,
                    lines_after: after.calls_ringing + after.calls_waiting,
                }
            }

            /// One second of traffic, then the tick's pacing decision (if it asked to dial).
            fn second(&mut self, abandons: AbandonCount) -> Option<Round> {
                let now = self.clock.now_ms();
                let due: Vec<(u64, bool)> = self
                    .ringing
                    .iter()
                    .filter(|(_, v)| v.0 <= now)
                    .map(|(&c, v)| (c, v.1))
                    .collect();
                for (call, human) in due {
                    self.ringing.remove(&call);
                    if human {
                        self.input(now, Input::CallAnsweredHuman { call });
                    } else {
                        self.in_flight -= 1;
                        self.input(now, Input::CallNoAnswer { call });
                    }
                }
                let ended: Vec<(u32, u64)> = self
                    .talking
                    .iter()
                    .filter(|(_, v)| v.0 <= now)
                    .map(|(&a, v)| (a, v.1))
                    .collect();
                for (agent, call) in ended {
                    self.talking.remove(&agent);
                    self.in_flight -= 1;
                    self.input(now, Input::CallEnded { call });
                    self.wrap.insert(agent, now + 10_000);
                }
                let freed: Vec<u32> = self
                    .wrap
                    .iter()
                    .filter(|(_, t)| **t <= now)
                    .map(|(&a, _)| a)
                    .collect();
                for agent in freed {
                    self.wrap.remove(&agent);
                    self.input(now, Input::WrapUpEnded { agent });
                }
                self.pacer.handle_timeout(now);
                self.drain(now);
                self.pacer.tick(now);
                let mut round = None;
                while let Some(out) = self.pacer.poll_output() {
                    match out {
                        Output::Dial { count } => round = Some(self.dial(now, count, abandons)),
                        other => unreachable!("a tick after the drain gave {other:?}"),
                    }
                }
                self.clock.advance(Duration::from_secs(1));
                round
            }

            fn run(&mut self, secs: u32, abandons: AbandonCount) -> Vec<Round> {
                (0..secs).filter_map(|_| self.second(abandons)).collect()
            }
        }

        /// Over the cap the dials a ready agent covers still go out, never more than the ready
        /// agents beyond the calls already ringing or waiting for one (after a batch, the lines
        /// in flight do not outnumber the ready agents), so no new call can be abandoned.
        fn assert_progressive(rounds: &[Round]) {
            for r in rounds {
                assert!(r.placed <= r.covered, "{r:?}");
                if r.placed > 0 {
                    assert!(r.lines_after <= r.ready_after, "{r:?}");
                }
                if r.covered == 0 {
                    assert_eq!(r.placed, 0, "no ready agent: no dial {r:?}");
                }
            }
        }

        #[test]
        fn over_the_cap_a_new_predictive_campaign_dials_one_call_per_ready_agent() {
            let mut rig = Rig::new(4);
            let rounds = rig.run(1800, OVER);
            assert_progressive(&rounds);
            let first = rounds.first().expect("the pacer asked to dial");
            assert_eq!(
                (first.asked, first.covered, first.placed),
                (4, 4, 4),
                "one call per ready agent at once"
            );
            let placed: u32 = rounds.iter().map(|r| r.placed).sum();
            // 30 min of 4 agents at ~5 dials per 110 s handled call: the campaign keeps going.
            assert!(placed > 100, "dialling stopped at the cap: {placed} calls");
            assert!(rig.abandoned.is_empty(), "abandoned {:?}", rig.abandoned);
        }

        #[test]
        fn predictive_dials_ahead_under_the_cap_and_per_ready_agent_over_it() {
            let mut rig = Rig::new(10);
            let under = rig.run(3600, UNDER);
            assert!(rig.pacer.snapshot(rig.clock.now_ms()).predictive_active);
            for r in &under {
                assert_eq!(r.placed, r.asked, "under the cap every dial passes {r:?}");
            }
            let ahead = under
                .iter()
                .filter(|r| r.lines_after > r.ready_after)
                .count();
            assert!(
                ahead > 0,
                "predictive pacing dials ahead of the ready agents"
            );

            let first_over = rig.next_call;
            let over = rig.run(1800, OVER);
            assert_progressive(&over);
            let placed: u32 = over.iter().map(|r| r.placed).sum();
            assert!(placed > 100, "dialling stopped at the cap: {placed} calls");
            let blocked = over
                .iter()
                .filter(|r| r.covered == 0 && r.asked > 0)
                .count();
            assert!(blocked > 0, "the pacer asked to dial with no ready agent");
            assert!(
                over.iter()
                    .any(|r| r.asked > r.covered && r.placed == r.covered && r.placed > 0),
                "a predictive batch cut to the ready agents"
            );
            let late: Vec<_> = rig.abandoned.iter().filter(|c| **c >= first_over).collect();
            assert!(
                late.is_empty(),
                "calls placed over the cap abandoned: {late:?}"
            );
        }
    }

    #[test]
    fn trunk_uri_parsing() {
        use telephony::sip::call::Transport;
        let t = trunk("sip:127.0.0.1:5080;transport=tcp").unwrap();
        assert_eq!(
            (t.addr.to_string(), t.transport),
            ("127.0.0.1:5080".into(), Transport::Tcp)
        );
        let t = trunk("sip:127.0.0.1:5081;transport=tls").unwrap();
        assert_eq!(t.transport, Transport::Tls, "never silently UDP for TLS");
        assert_eq!(trunk("sips:10.0.0.1").unwrap().addr.port(), 5061);
        assert_eq!(trunk("sip:10.0.0.1").unwrap().addr.port(), 5060);
        assert!(trunk("http://x").is_err());
    }
}
