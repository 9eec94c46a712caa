//! The ACD as a pure state machine: [`Acd::step`] takes an [`Event`] and the current time (epoch
//! ms) and returns [`Decision`]s (offer this contact to that agent, overflow, timeout...). It reads
//! no clock and owns no timers: it keeps its own deadlines and tells the driver when to call
//! again ([`Acd::next_deadline`]).
//!
//! Data structures are chosen so a decision touches only what it must: each queue keeps its
//! waiting contacts in a `BTreeSet` ordered by (head-of-queue flag, priority, effective age), and
//! its idle eligible agents in a `BTreeSet` ordered by the queue strategy's key (idle since, talk
//! time, calls, position). An arriving contact walks its queue's idle set from the front; an agent
//! becoming available looks at the front of each queue in its routing profile.
//!
//! A configuration reload goes through [`Acd::reconfigure`] (in `reconfigure.rs`): new queue
//! settings and routing profiles for later decisions, with contacts, agents and counters kept.
//!
//! Real-time figures ([`Acd::queue_stats`], [`Acd::agent_occupancy`]): a queue's answered,
//! abandoned, service level, ASA (average wait of answered contacts) and AHT (talk plus the
//! after-contact work actually done) count since the ACD started; occupancy counts since each
//! agent's current login (leaving Offline): the time on a contact or in after-contact work over
//! the time logged in and not on a break (Available, offered, missed, on a contact or in
//! after-contact work). A queue's occupancy adds up the agents of its routing profiles who are
//! logged in now.

mod config;
#[cfg(test)]
mod live_tests;
mod reconfigure;
#[cfg(test)]
mod reconfigure_tests;
pub mod wait;

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap};

pub use config::{
    AcdConfig, AgentConfig, AgentState, AgentStatus, ContactRequest, CriteriaStep,
    DEFAULT_ANNOUNCE_EVERY_S, DEFAULT_SERVICE_LEVEL_S, Decision, Escalation, Event,
    MIN_ANNOUNCE_EVERY_S, ProfileQueue, QueueConfig, RoutingProfileConfig, Strategy,
};
pub use reconfigure::{ReconfigureError, changes};
pub use wait::Estimate;

/// A configuration problem, with the offending name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("queue {0:?} is defined twice")]
    DuplicateQueue(String),
    #[error("agent {0:?} is defined twice")]
    DuplicateAgent(String),
    #[error("{what} refers to unknown queue {queue:?}")]
    UnknownQueue { what: String, queue: String },
    #[error("agent {agent:?} has unknown routing profile {profile:?}")]
    UnknownProfile { agent: String, profile: String },
    #[error("routing profile {profile:?}: priority {priority} is outside 1..=99")]
    BadPriority { profile: String, priority: u8 },
    #[error("queue {queue:?}: {key} {reason}")]
    InvalidQueueSetting {
        queue: String,
        key: &'static str,
        reason: String,
    },
    #[error("unknown agent {0:?}")]
    UnknownAgent(String),
    #[error("agent {agent:?}: proficiency {level} of {skill:?} is outside 1..=5")]
    BadProficiency {
        agent: String,
        skill: String,
        level: u8,
    },
}

/// Order of a waiting contact in its queue (smaller first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct WaitKey {
    /// 0 for a contact returned after a missed offer (head of the queue), 1 otherwise.
    class: u8,
    priority: i64,
    /// Effective arrival: earlier is older.
    since: i64,
    seq: u64,
    slot: u32,
}

type IdleKey = (i64, u32);

/// A routing-criteria step: (skill, minimum proficiency) pairs, and how long it holds (ms).
type Step = (Vec<(u16, u8)>, Option<i64>);

struct Queue {
    name: String,
    max_contacts: Option<usize>,
    max_wait_ms: Option<i64>,
    overflow: Option<u32>,
    strategy: Strategy,
    ring_ms: i64,
    escalation: Vec<(i64, i64)>,
    /// Distinct non-zero profile delays: when a waiting contact must be looked at again.
    delays: Vec<i64>,
    waiting: BTreeSet<WaitKey>,
    idle: BTreeSet<IdleKey>,
    rr_last: Option<i64>,
    /// Recent handle times, for the estimated wait.
    handle_times: wait::HandleTimes,
    sl_threshold_ms: i64,
    counters: Counters,
}

/// Running totals of a queue since the ACD started (the driver snapshots them for reports).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub answered: u64,
    pub answered_within_sl: u64,
    pub abandoned: u64,
    pub timed_out: u64,
    pub overflowed_out: u64,
    pub answer_wait_ms_total: i64,
    pub handled: u64,
    pub handle_ms_total: i64,
}

struct Profile {
    /// (queue, priority, delay ms), sorted by priority.
    queues: Vec<(u32, u8, i64)>,
    acw_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Activity {
    Idle,
    Offered(u32),
    OnContact { queue: u32, since: i64 },
    Acw { until: i64, queue: u32 },
    Missed,
}

struct Agent {
    id: String,
    profile: u32,
    skills: Vec<(u16, u8)>,
    status: AgentStatus,
    activity: Activity,
    idle_since: i64,
    talk_ms: i64,
    calls: u64,
    /// Occupancy of the current (or last) login: busy and staffed ms up to `mark`.
    busy_ms: i64,
    staffed_ms: i64,
    mark: i64,
    indexed: Vec<(u32, IdleKey)>,
    /// The contact id being handled (after the contact's slot is freed).
    handling: Option<(String, u32)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum CState {
    Waiting,
    Offered { agents: Vec<u32>, until: i64 },
}

struct Contact {
    id: String,
    queue: u32,
    key: WaitKey,
    base_priority: i64,
    /// When it entered the current queue (delays, max wait and escalation count from here).
    entered: i64,
    /// Unique per entry into a queue, and per offer: timers of an earlier entry or offer (or of
    /// an earlier contact in the same slot) carry another epoch and are dropped.
    queue_epoch: u64,
    offer_epoch: u64,
    steps: Vec<Step>,
    state: CState,
    /// The contact's own offer timeout (ms), instead of the queue's ring timeout.
    offer_ms: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    Ring { slot: u32, epoch: u64 },
    MaxWait { slot: u32, epoch: u64 },
    Recheck { slot: u32, epoch: u64 },
    Acw { agent: u32, at: i64 },
}

/// Queue figures for dashboards and announcements.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QueueStats {
    pub waiting: usize,
    pub oldest_wait_ms: i64,
    pub agents_available: usize,
    pub agents_staffed: usize,
    pub counters: Counters,
    /// Average speed of answer, ms (0 before the first answer).
    pub asa_ms: i64,
    /// Average handle time (talk + after-contact work, less any the agent ended early), ms (0
    /// before the first contact ends).
    pub aht_ms: i64,
    /// Share of answered contacts answered within the service-level threshold (1.0 when none).
    pub service_level: f64,
    /// Occupancy of the agents of the queue's routing profiles who are logged in.
    pub occupancy: Occupancy,
}

/// Time on contacts (talk + after-contact work) against time logged in and not on a break,
/// since the agent's current login, or summed over several agents.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Occupancy {
    pub busy_ms: i64,
    pub staffed_ms: i64,
}

impl Occupancy {
    /// busy / staffed, 0.0 before any staffed time.
    pub fn ratio(&self) -> f64 {
        if self.staffed_ms <= 0 {
            0.0
        } else {
            self.busy_ms as f64 / self.staffed_ms as f64
        }
    }

    fn add(&mut self, o: Occupancy) {
        self.busy_ms += o.busy_ms;
        self.staffed_ms += o.staffed_ms;
    }
}

/// The ACD.
pub struct Acd {
    queues: Vec<Queue>,
    queue_ix: HashMap<String, u32>,
    profiles: Vec<Profile>,
    profile_ix: HashMap<String, u32>,
    agents: Vec<Agent>,
    agent_ix: HashMap<String, u32>,
    /// Queue to the agents whose profile holds it.
    staffed_by: Vec<Vec<u32>>,
    skills: HashMap<String, u16>,
    contacts: Vec<Option<Contact>>,
    free_slots: Vec<u32>,
    contact_ix: HashMap<String, u32>,
    timers: BinaryHeap<Reverse<(i64, Timer)>>,
    seq: u64,
}

impl Acd {
    pub fn new(cfg: &AcdConfig) -> Result<Self, ConfigError> {
        let mut acd = Acd {
            queues: Vec::new(),
            queue_ix: HashMap::new(),
            profiles: Vec::new(),
            profile_ix: HashMap::new(),
            agents: Vec::new(),
            agent_ix: HashMap::new(),
            staffed_by: Vec::new(),
            skills: HashMap::new(),
            contacts: Vec::new(),
            free_slots: Vec::new(),
            contact_ix: HashMap::new(),
            timers: BinaryHeap::new(),
            seq: 0,
        };
        for q in &cfg.queues {
            q.validate()
                .map_err(|(key, reason)| ConfigError::InvalidQueueSetting {
                    queue: q.name.clone(),
                    key,
                    reason,
                })?;
            for name in std::iter::once(&q.name).chain(&q.aliases) {
                if acd
                    .queue_ix
                    .insert(name.clone(), acd.queues.len() as u32)
                    .is_some()
                {
                    return Err(ConfigError::DuplicateQueue(name.clone()));
                }
            }
            let mut escalation: Vec<(i64, i64)> = q
                .escalation
                .iter()
                .map(|e| (e.after_s * 1000, e.priority))
                .collect();
            escalation.sort();
            acd.queues.push(Queue {
                name: q.name.clone(),
                max_contacts: q.max_contacts,
                max_wait_ms: q.max_wait_s.map(|s| s * 1000),
                overflow: None,
                strategy: q.strategy,
                ring_ms: q.ring_timeout_s * 1000,
                escalation,
                delays: Vec::new(),
                waiting: BTreeSet::new(),
                idle: BTreeSet::new(),
                rr_last: None,
                handle_times: wait::HandleTimes::default(),
                sl_threshold_ms: q.service_level_s * 1000,
                counters: Counters::default(),
            });
            acd.staffed_by.push(Vec::new());
        }
        for (i, q) in cfg.queues.iter().enumerate() {
            if let Some(target) = &q.overflow {
                let t = acd.queue_named(target, || format!("queue {:?} overflow", q.name))?;
                acd.queues[i].overflow = Some(t);
            }
        }
        let mut profile_ix = HashMap::new();
        for p in &cfg.profiles {
            let mut queues = Vec::new();
            for pq in &p.queues {
                if !(1..=99).contains(&pq.priority) {
                    return Err(ConfigError::BadPriority {
                        profile: p.name.clone(),
                        priority: pq.priority,
                    });
                }
                let q = acd.queue_named(&pq.queue, || format!("routing profile {:?}", p.name))?;
                let delay = pq.delay_s * 1000;
                if delay > 0 && !acd.queues[q as usize].delays.contains(&delay) {
                    acd.queues[q as usize].delays.push(delay);
                }
                queues.push((q, pq.priority, delay));
            }
            queues.sort_by_key(|&(_, prio, _)| prio);
            profile_ix.insert(p.name.clone(), acd.profiles.len() as u32);
            acd.profiles.push(Profile {
                queues,
                acw_ms: p.acw_s * 1000,
            });
        }
        acd.profile_ix = profile_ix;
        for a in &cfg.agents {
            acd.add_agent(a)?;
        }
        Ok(acd)
    }

    fn queue_named(&self, name: &str, what: impl FnOnce() -> String) -> Result<u32, ConfigError> {
        self.queue_ix
            .get(name)
            .copied()
            .ok_or_else(|| ConfigError::UnknownQueue {
                what: what(),
                queue: name.into(),
            })
    }

    fn skill(&mut self, name: &str) -> u16 {
        let next = self.skills.len() as u16;
        *self.skills.entry(name.to_string()).or_insert(next)
    }

    /// Adds an agent at run time (Offline until it sets a status).
    pub fn add_agent(&mut self, a: &AgentConfig) -> Result<(), ConfigError> {
        let profile = self.profile_ix.get(&a.profile).copied().ok_or_else(|| {
            ConfigError::UnknownProfile {
                agent: a.id.clone(),
                profile: a.profile.clone(),
            }
        })?;
        self.insert_agent(a, profile)
    }

    /// Changes a known agent's routing profile and skills at once (an admin edited them): the
    /// agent's queues and idle indexes follow, and an idle agent looks for work it may now
    /// take. A contact in hand stays. Checks everything before changing anything.
    pub fn update_agent(
        &mut self,
        cfg: &AgentConfig,
        now: i64,
    ) -> Result<Vec<Decision>, ConfigError> {
        let a = *self
            .agent_ix
            .get(&cfg.id)
            .ok_or_else(|| ConfigError::UnknownAgent(cfg.id.clone()))?;
        let profile = self.profile_ix.get(&cfg.profile).copied().ok_or_else(|| {
            ConfigError::UnknownProfile {
                agent: cfg.id.clone(),
                profile: cfg.profile.clone(),
            }
        })?;
        if let Some((name, &level)) = cfg.skills.iter().find(|(_, l)| !(1..=5).contains(*l)) {
            return Err(ConfigError::BadProficiency {
                agent: cfg.id.clone(),
                skill: name.clone(),
                level,
            });
        }
        let mut skills: Vec<_> = cfg
            .skills
            .iter()
            .map(|(name, &level)| (self.skill(name), level))
            .collect();
        skills.sort();
        let old = self.agents[a as usize].profile;
        if old != profile {
            for &(q, _, _) in &self.profiles[old as usize].queues {
                self.staffed_by[q as usize].retain(|&x| x != a);
            }
            for &(q, _, _) in &self.profiles[profile as usize].queues {
                self.staffed_by[q as usize].push(a);
            }
        }
        let was_indexed = !self.agents[a as usize].indexed.is_empty();
        if was_indexed {
            self.unindex(a);
        }
        let ag = &mut self.agents[a as usize];
        ag.profile = profile;
        ag.skills = skills;
        let mut out = Vec::new();
        self.run_timers(now, &mut out);
        if self.routable(a) {
            self.index(a);
            self.route_agent(a, now, &mut out);
        }
        Ok(out)
    }

    fn insert_agent(&mut self, a: &AgentConfig, profile: u32) -> Result<(), ConfigError> {
        // Every check before any change: a refused agent leaves the ACD as it was.
        if self.agent_ix.contains_key(&a.id) {
            return Err(ConfigError::DuplicateAgent(a.id.clone()));
        }
        if let Some((name, &level)) = a.skills.iter().find(|(_, l)| !(1..=5).contains(*l)) {
            return Err(ConfigError::BadProficiency {
                agent: a.id.clone(),
                skill: name.clone(),
                level,
            });
        }
        let ix = self.agents.len() as u32;
        self.agent_ix.insert(a.id.clone(), ix);
        let mut skills: Vec<_> = a
            .skills
            .iter()
            .map(|(name, &level)| (self.skill(name), level))
            .collect();
        skills.sort();
        for &(q, _, _) in &self.profiles[profile as usize].queues {
            self.staffed_by[q as usize].push(ix);
        }
        self.agents.push(Agent {
            id: a.id.clone(),
            profile,
            skills,
            status: AgentStatus::Offline,
            activity: Activity::Idle,
            idle_since: 0,
            talk_ms: 0,
            calls: 0,
            busy_ms: 0,
            staffed_ms: 0,
            mark: 0,
            indexed: Vec::new(),
            handling: None,
        });
        Ok(())
    }

    /// The earliest time the ACD has something to do without an event (call `step(Tick, t)` then).
    pub fn next_deadline(&self) -> Option<i64> {
        self.timers.peek().map(|Reverse((at, _))| *at)
    }

    /// Feeds one event at `now` (epoch ms); due timers run first.
    pub fn step(&mut self, event: Event, now: i64) -> Vec<Decision> {
        let mut out = Vec::new();
        self.run_timers(now, &mut out);
        match event {
            Event::Tick => {}
            Event::Enqueue(req) => self.enqueue(req, now, &mut out),
            Event::Abandon { contact } => match self.contact_ix.get(&contact).copied() {
                Some(slot) => {
                    let q = self.contact(slot).expect("live").queue as usize;
                    self.queues[q].counters.abandoned += 1;
                    self.retract_all(slot, now, &mut out);
                    self.remove_contact(slot);
                }
                None => out.push(ignored(format!("abandon: unknown contact {contact:?}"))),
            },
            Event::SetStatus { agent, status } => match self.agent_ix.get(&agent).copied() {
                Some(a) => self.set_status(a, status, now, &mut out),
                None => out.push(ignored(format!("status: unknown agent {agent:?}"))),
            },
            Event::Accept { contact, agent } => self.accept(&contact, &agent, now, &mut out),
            Event::Reject { contact, agent } => {
                match (
                    self.contact_ix.get(&contact).copied(),
                    self.agent_ix.get(&agent).copied(),
                ) {
                    (Some(slot), Some(a))
                        if self.agents[a as usize].activity == Activity::Offered(slot) =>
                    {
                        self.miss(slot, &[a], now, &mut out)
                    }
                    _ => out.push(ignored(format!(
                        "reject: {contact:?} is not offered to {agent:?}"
                    ))),
                }
            }
            Event::ContactEnded { agent } => match self.agent_ix.get(&agent).copied() {
                Some(a) => self.contact_ended(a, now, &mut out),
                None => out.push(ignored(format!("contact ended: unknown agent {agent:?}"))),
            },
            Event::Withdraw { contact, agent } => {
                match (
                    self.contact_ix.get(&contact).copied(),
                    self.agent_ix.get(&agent).copied(),
                ) {
                    (Some(slot), Some(a))
                        if self.agents[a as usize].activity == Activity::Offered(slot) =>
                    {
                        self.retract_all(slot, now, &mut out);
                        self.remove_contact(slot);
                    }
                    _ => out.push(ignored(format!(
                        "withdraw: {contact:?} is not offered to {agent:?}"
                    ))),
                }
            }
            Event::AcwDone { agent } => match self.agent_ix.get(&agent).copied() {
                Some(a) if matches!(self.agents[a as usize].activity, Activity::Acw { .. }) => {
                    self.end_acw(a, now, &mut out)
                }
                _ => out.push(ignored(format!(
                    "acw done: {agent:?} is not in after-contact work"
                ))),
            },
        }
        out
    }

    // ---- timers -------------------------------------------------------------------------

    fn run_timers(&mut self, now: i64, out: &mut Vec<Decision>) {
        while let Some(&Reverse((at, timer))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            match timer {
                Timer::Ring { slot, epoch } => {
                    let agents = match self.contact(slot) {
                        Some(Contact {
                            state: CState::Offered { agents, .. },
                            offer_epoch,
                            ..
                        }) if *offer_epoch == epoch => agents.clone(),
                        _ => continue,
                    };
                    self.miss(slot, &agents, at, out);
                }
                Timer::MaxWait { slot, epoch } => {
                    let Some(c) = self.contact(slot) else {
                        continue;
                    };
                    if c.queue_epoch != epoch {
                        continue;
                    }
                    if matches!(c.state, CState::Offered { .. }) {
                        // Let the ring finish; look again when it must have.
                        let q = c.queue as usize;
                        let again = Timer::MaxWait {
                            slot,
                            epoch: c.queue_epoch,
                        };
                        self.timers
                            .push(Reverse((now + self.queues[q].ring_ms, again)));
                        continue;
                    }
                    self.max_wait(slot, at, out);
                }
                Timer::Recheck { slot, epoch } => {
                    let Some(c) = self.contact(slot) else {
                        continue;
                    };
                    if c.queue_epoch != epoch || c.state != CState::Waiting {
                        continue;
                    }
                    self.rekey(slot, at);
                    self.route_contact(slot, at, out);
                }
                Timer::Acw { agent, at } => {
                    if matches!(self.agents[agent as usize].activity,
                        Activity::Acw { until, .. } if until == at)
                    {
                        self.end_acw(agent, at, out);
                    }
                }
            }
        }
    }

    fn contact(&self, slot: u32) -> Option<&Contact> {
        self.contacts.get(slot as usize).and_then(Option::as_ref)
    }

    fn contact_mut(&mut self, slot: u32) -> &mut Contact {
        self.contacts[slot as usize]
            .as_mut()
            .expect("live contact slot")
    }

    // ---- contacts -----------------------------------------------------------------------

    fn enqueue(&mut self, req: ContactRequest, now: i64, out: &mut Vec<Decision>) {
        let Some(&q) = self.queue_ix.get(&req.queue) else {
            out.push(ignored(format!("enqueue: unknown queue {:?}", req.queue)));
            return;
        };
        if self.contact_ix.contains_key(&req.contact_id) {
            out.push(ignored(format!(
                "enqueue: contact {:?} is already queued",
                req.contact_id
            )));
            return;
        }
        let asked = q;
        let Some(q) = self.with_room(q) else {
            out.push(Decision::AtCapacity {
                contact: req.contact_id,
                queue: self.queues[asked as usize].name.clone(),
            });
            return;
        };
        let steps = req
            .criteria
            .iter()
            .map(|s| {
                let skills = s
                    .skills
                    .iter()
                    .map(|(name, &level)| (self.skill(name), level))
                    .collect();
                (skills, s.expiry_s.map(|e| e * 1000))
            })
            .collect();
        let since = req.waiting_since_ms.unwrap_or(now) - req.time_adjustment_s * 1000;
        self.seq += 1;
        let slot = self.free_slots.pop().unwrap_or_else(|| {
            self.contacts.push(None);
            (self.contacts.len() - 1) as u32
        });
        let key = WaitKey {
            class: 1,
            priority: req.priority,
            since,
            seq: self.seq,
            slot,
        };
        self.contacts[slot as usize] = Some(Contact {
            id: req.contact_id.clone(),
            queue: q,
            key,
            base_priority: req.priority,
            entered: now,
            queue_epoch: 0,
            offer_epoch: 0,
            steps,
            state: CState::Waiting,
            offer_ms: req.offer_timeout_s.map(|s| s.max(1) * 1000),
        });
        self.contact_ix.insert(req.contact_id.clone(), slot);
        if q != asked {
            self.queues[asked as usize].counters.overflowed_out += 1;
            out.push(Decision::Overflow {
                contact: req.contact_id.clone(),
                from: self.queues[asked as usize].name.clone(),
                to: self.queues[q as usize].name.clone(),
            });
        }
        self.enter_queue(slot, q, now, out);
    }

    /// The queue itself if it has room, else the first overflow target with room.
    fn with_room(&self, q: u32) -> Option<u32> {
        let mut at = q;
        for _ in 0..=self.queues.len() {
            let queue = &self.queues[at as usize];
            if queue.max_contacts.is_none_or(|m| queue.waiting.len() < m) {
                return Some(at);
            }
            at = queue.overflow?;
        }
        None
    }

    /// Arms a contact's timers in queue `q`, counted from `entered`: its criteria steps' expiries,
    /// the queue's profile delays and escalation steps (rechecks), and the queue's max wait.
    fn arm_queue_timers(&mut self, slot: u32, q: u32, entered: i64, epoch: u64) {
        let mut checks: Vec<i64> = Vec::new();
        let mut acc = 0;
        for (_, expiry) in &self.contact(slot).expect("live").steps {
            if let Some(e) = expiry {
                acc += e;
                checks.push(acc);
            }
        }
        let queue = &self.queues[q as usize];
        checks.extend(queue.delays.iter().copied());
        checks.extend(queue.escalation.iter().map(|&(after, _)| after));
        if let Some(max) = queue.max_wait_ms {
            self.timers
                .push(Reverse((entered + max, Timer::MaxWait { slot, epoch })));
        }
        for after in checks {
            self.timers
                .push(Reverse((entered + after, Timer::Recheck { slot, epoch })));
        }
    }

    /// Puts a contact (already in its slot) into queue `q`: timers, then an attempt to route.
    fn enter_queue(&mut self, slot: u32, q: u32, now: i64, out: &mut Vec<Decision>) {
        self.seq += 1;
        let epoch = self.seq;
        let c = self.contact_mut(slot);
        c.queue = q;
        c.entered = now;
        c.state = CState::Waiting;
        c.queue_epoch = epoch;
        let (id, entered, epoch) = (c.id.clone(), c.entered, c.queue_epoch);
        self.arm_queue_timers(slot, q, entered, epoch);
        self.rekey(slot, now);
        let name = self.queues[q as usize].name.clone();
        out.push(Decision::Queued {
            contact: id,
            queue: name,
        });
        self.route_contact(slot, now, out);
    }

    /// Recomputes the contact's priority from escalation rules and (re)inserts it in its queue.
    fn rekey(&mut self, slot: u32, now: i64) {
        let c = self.contact(slot).expect("live");
        let q = c.queue as usize;
        let waited = now - c.entered;
        let priority = self.queues[q]
            .escalation
            .iter()
            .filter(|&&(after, _)| waited >= after)
            .fold(c.base_priority, |p, &(_, esc)| p.min(esc));
        let old = c.key;
        let new = WaitKey { priority, ..old };
        self.queues[q].waiting.remove(&old);
        self.queues[q].waiting.insert(new);
        self.contact_mut(slot).key = new;
    }

    fn max_wait(&mut self, slot: u32, now: i64, out: &mut Vec<Decision>) {
        let c = self.contact(slot).expect("live");
        let (q, key, id) = (c.queue, c.key, c.id.clone());
        self.queues[q as usize].waiting.remove(&key);
        let target = self.queues[q as usize]
            .overflow
            .and_then(|t| self.with_room(t));
        match target {
            Some(t) => {
                self.queues[q as usize].counters.overflowed_out += 1;
                out.push(Decision::Overflow {
                    contact: id,
                    from: self.queues[q as usize].name.clone(),
                    to: self.queues[t as usize].name.clone(),
                });
                self.enter_queue(slot, t, now, out);
            }
            None => {
                self.queues[q as usize].counters.timed_out += 1;
                out.push(Decision::Timeout {
                    contact: id,
                    queue: self.queues[q as usize].name.clone(),
                });
                self.remove_contact(slot);
            }
        }
    }

    fn remove_contact(&mut self, slot: u32) {
        if let Some(c) = self.contacts[slot as usize].take() {
            self.queues[c.queue as usize].waiting.remove(&c.key);
            self.contact_ix.remove(&c.id);
            self.free_slots.push(slot);
        }
    }

    /// The skills the contact needs now (the criteria step in force after `waited` ms).
    fn required(c: &Contact, waited: i64) -> &[(u16, u8)] {
        let mut acc = 0;
        for (skills, expiry) in &c.steps {
            match expiry {
                Some(e) if waited >= acc + e => acc += e,
                _ => return skills,
            }
        }
        &[]
    }

    fn has_skills(agent: &Agent, required: &[(u16, u8)]) -> bool {
        required.iter().all(|&(s, min)| {
            agent
                .skills
                .binary_search_by_key(&s, |&(k, _)| k)
                .is_ok_and(|i| agent.skills[i].1 >= min)
        })
    }

    fn skill_score(agent: &Agent, required: &[(u16, u8)]) -> u32 {
        let levels = |(s, _): &(u16, u8)| {
            agent
                .skills
                .binary_search_by_key(s, |&(k, _)| k)
                .map(|i| u32::from(agent.skills[i].1))
        };
        if required.is_empty() {
            agent.skills.iter().map(|&(_, l)| u32::from(l)).sum()
        } else {
            required.iter().filter_map(|r| levels(r).ok()).sum()
        }
    }

    /// May agent `a` (idle) take contact `c` in queue `q` now?
    fn eligible(&self, a: u32, c: &Contact, now: i64) -> bool {
        let agent = &self.agents[a as usize];
        let waited = now - c.entered;
        let delay_ok = self.profiles[agent.profile as usize]
            .queues
            .iter()
            .any(|&(q, _, delay)| q == c.queue && waited >= delay);
        delay_ok && Self::has_skills(agent, Self::required(c, waited))
    }

    /// Tries to place a waiting contact with idle agents of its queue, by the queue's strategy.
    fn route_contact(&mut self, slot: u32, now: i64, out: &mut Vec<Decision>) {
        let c = self.contact(slot).expect("live");
        let q = c.queue as usize;
        let queue = &self.queues[q];
        let chosen: Vec<u32> = match queue.strategy {
            Strategy::RingAll => queue
                .idle
                .iter()
                .map(|&(_, a)| a)
                .filter(|&a| self.eligible(a, c, now))
                .collect(),
            Strategy::SkillsWeighted => {
                let required = Self::required(c, now - c.entered);
                let mut best: Option<(u32, u32)> = None;
                for &(_, a) in &queue.idle {
                    if self.eligible(a, c, now) {
                        let score = Self::skill_score(&self.agents[a as usize], required);
                        if best.is_none_or(|(s, _)| score > s) {
                            best = Some((score, a));
                        }
                    }
                }
                best.map(|(_, a)| a).into_iter().collect()
            }
            Strategy::RoundRobin => {
                let after = queue.rr_last.map_or(i64::MIN, |p| p + 1);
                let wrapped = queue
                    .idle
                    .range((after, 0)..)
                    .chain(queue.idle.range(..(after, 0)));
                wrapped
                    .map(|&(_, a)| a)
                    .find(|&a| self.eligible(a, c, now))
                    .into_iter()
                    .collect()
            }
            _ => queue
                .idle
                .iter()
                .map(|&(_, a)| a)
                .find(|&a| self.eligible(a, c, now))
                .into_iter()
                .collect(),
        };
        if !chosen.is_empty() {
            self.offer(slot, &chosen, now, out);
        }
    }

    /// Tries to give an idle agent the best waiting contact of its routing profile's queues:
    /// the lowest profile priority level that has an eligible contact, then the contact order.
    fn route_agent(&mut self, a: u32, now: i64, out: &mut Vec<Decision>) {
        let profile = &self.profiles[self.agents[a as usize].profile as usize];
        let mut best: Option<(u8, WaitKey)> = None;
        for &(q, prio, _) in &profile.queues {
            if best.is_some_and(|(p, _)| p < prio) {
                break;
            }
            let found = self.queues[q as usize].waiting.iter().copied().find(|k| {
                let c = self.contact(k.slot).expect("waiting contacts are live");
                c.state == CState::Waiting && self.eligible(a, c, now)
            });
            if let Some(k) = found
                && best.is_none_or(|(_, b)| k < b)
            {
                best = Some((prio, k));
            }
        }
        if let Some((_, key)) = best {
            self.offer(key.slot, &[a], now, out);
        }
    }

    fn offer(&mut self, slot: u32, agents: &[u32], now: i64, out: &mut Vec<Decision>) {
        let c = self.contact(slot).expect("live");
        let (q, key, id, own) = (c.queue, c.key, c.id.clone(), c.offer_ms);
        let queue = &mut self.queues[q as usize];
        queue.waiting.remove(&key);
        let ring = own.unwrap_or(queue.ring_ms);
        if queue.strategy == Strategy::RoundRobin {
            queue.rr_last = Some(i64::from(agents[0]));
        }
        let until = now + ring;
        for &a in agents {
            self.unindex(a);
            self.set_activity(a, Activity::Offered(slot), now);
            out.push(Decision::Offer {
                contact: id.clone(),
                agent: self.agents[a as usize].id.clone(),
                queue: self.queues[q as usize].name.clone(),
                ring_timeout_ms: ring,
            });
        }
        self.seq += 1;
        let epoch = self.seq;
        let c = self.contact_mut(slot);
        c.state = CState::Offered {
            agents: agents.to_vec(),
            until,
        };
        c.offer_epoch = epoch;
        self.timers
            .push(Reverse((until, Timer::Ring { slot, epoch })));
    }

    fn accept(&mut self, contact: &str, agent: &str, now: i64, out: &mut Vec<Decision>) {
        let (Some(&slot), Some(&a)) = (self.contact_ix.get(contact), self.agent_ix.get(agent))
        else {
            out.push(ignored(format!(
                "accept: unknown contact {contact:?} or agent {agent:?}"
            )));
            return;
        };
        if self.agents[a as usize].activity != Activity::Offered(slot) {
            out.push(ignored(format!(
                "accept: {contact:?} is not offered to {agent:?}"
            )));
            return;
        }
        let others: Vec<u32> = match &self.contact(slot).expect("live").state {
            CState::Offered { agents, .. } => agents.iter().copied().filter(|&o| o != a).collect(),
            CState::Waiting => Vec::new(),
        };
        let (q, waited) = {
            let c = self.contact(slot).expect("live");
            (c.queue, now - c.entered)
        };
        let queue = &mut self.queues[q as usize];
        queue.counters.answered += 1;
        queue.counters.answer_wait_ms_total += waited;
        queue.counters.answered_within_sl += u64::from(waited <= queue.sl_threshold_ms);
        self.remove_contact(slot);
        self.set_activity(
            a,
            Activity::OnContact {
                queue: q,
                since: now,
            },
            now,
        );
        let ag = &mut self.agents[a as usize];
        ag.calls += 1;
        ag.handling = Some((contact.to_string(), q));
        out.push(Decision::Connected {
            contact: contact.to_string(),
            agent: agent.to_string(),
        });
        for o in others {
            out.push(Decision::RetractOffer {
                contact: contact.to_string(),
                agent: self.agents[o as usize].id.clone(),
            });
            self.set_activity(o, Activity::Idle, now);
            self.become_idle(o, None, now, out);
        }
    }

    /// The offered agents missed the contact: they go to Missed, the contact to its queue's head.
    fn miss(&mut self, slot: u32, missed: &[u32], now: i64, out: &mut Vec<Decision>) {
        let id = self.contact(slot).expect("live").id.clone();
        for &a in missed {
            self.set_activity(a, Activity::Missed, now);
            out.push(Decision::Missed {
                contact: id.clone(),
                agent: self.agents[a as usize].id.clone(),
            });
        }
        let remaining: Vec<u32> = match &self.contact(slot).expect("live").state {
            CState::Offered { agents, .. } => agents
                .iter()
                .copied()
                .filter(|a| !missed.contains(a))
                .collect(),
            CState::Waiting => Vec::new(),
        };
        if let CState::Offered { agents, .. } = &mut self.contact_mut(slot).state {
            *agents = remaining.clone();
        }
        if remaining.is_empty() {
            self.requeue_head(slot, now, out);
        }
    }

    fn requeue_head(&mut self, slot: u32, now: i64, out: &mut Vec<Decision>) {
        let c = self.contact_mut(slot);
        c.state = CState::Waiting;
        c.key.class = 0;
        let (q, key) = (c.queue, c.key);
        self.queues[q as usize].waiting.insert(key);
        self.route_contact(slot, now, out);
    }

    /// Withdraws every offer of a contact (it left); the agents are idle again.
    fn retract_all(&mut self, slot: u32, now: i64, out: &mut Vec<Decision>) {
        let c = self.contact(slot).expect("live");
        if let CState::Offered { agents, .. } = &c.state {
            let (agents, id) = (agents.clone(), c.id.clone());
            self.contact_mut(slot).state = CState::Waiting;
            for a in agents {
                out.push(Decision::RetractOffer {
                    contact: id.clone(),
                    agent: self.agents[a as usize].id.clone(),
                });
                self.set_activity(a, Activity::Idle, now);
                self.become_idle(a, None, now, out);
            }
        }
    }

    // ---- agents -------------------------------------------------------------------------

    fn set_status(&mut self, a: u32, status: AgentStatus, now: i64, out: &mut Vec<Decision>) {
        let was_routable = self.routable(a);
        let logged_out = !self.logged_in(a);
        self.accrue(a, now);
        self.agents[a as usize].status = status.clone();
        if logged_out && self.logged_in(a) {
            // A new login: occupancy counts from here.
            let ag = &mut self.agents[a as usize];
            (ag.busy_ms, ag.staffed_ms) = (0, 0);
        }
        match self.agents[a as usize].activity {
            Activity::Missed => {
                self.set_activity(a, Activity::Idle, now);
                self.become_idle(a, Some(now), now, out);
            }
            Activity::Offered(slot) if status != AgentStatus::Available => {
                // Leaving while ringing counts as not taking the offer, without a Missed state.
                let id = self.contact(slot).expect("live").id.clone();
                out.push(Decision::RetractOffer {
                    contact: id,
                    agent: self.agents[a as usize].id.clone(),
                });
                self.set_activity(a, Activity::Idle, now);
                let remaining: Vec<u32> = match &self.contact(slot).expect("live").state {
                    CState::Offered { agents, .. } => {
                        agents.iter().copied().filter(|&x| x != a).collect()
                    }
                    CState::Waiting => Vec::new(),
                };
                if remaining.is_empty() {
                    self.requeue_head(slot, now, out);
                } else if let CState::Offered { agents, .. } = &mut self.contact_mut(slot).state {
                    *agents = remaining;
                }
            }
            Activity::Idle if !was_routable => self.become_idle(a, Some(now), now, out),
            Activity::Idle if status != AgentStatus::Available => self.unindex(a),
            _ => {}
        }
    }

    /// Changes an agent's activity at `now`, counting its occupancy up to then first.
    fn set_activity(&mut self, a: u32, activity: Activity, now: i64) {
        self.accrue(a, now);
        self.agents[a as usize].activity = activity;
    }

    /// Adds the time since the agent's last change to its busy and staffed totals.
    fn accrue(&mut self, a: u32, now: i64) {
        let o = Self::session(&self.agents[a as usize], now);
        let ag = &mut self.agents[a as usize];
        (ag.busy_ms, ag.staffed_ms, ag.mark) = (o.busy_ms, o.staffed_ms, now.max(ag.mark));
    }

    /// The agent's occupancy totals as of `now`: its state is the one since its last change,
    /// except after-contact work that is due to have ended (its timer has not run yet).
    fn session(ag: &Agent, now: i64) -> Occupancy {
        let mut o = Occupancy {
            busy_ms: ag.busy_ms,
            staffed_ms: ag.staffed_ms,
        };
        let mut from = ag.mark;
        let busy_until = match ag.activity {
            Activity::OnContact { .. } => Some(now),
            Activity::Acw { until, .. } => Some(until.min(now)),
            _ => None,
        };
        if let Some(end) = busy_until {
            let busy = (end - from).max(0);
            o.busy_ms += busy;
            o.staffed_ms += busy;
            from = from.max(end);
        }
        if ag.status == AgentStatus::Available {
            o.staffed_ms += (now - from).max(0);
        }
        o
    }

    /// Logged in: not Offline, or still on a contact or in after-contact work.
    fn logged_in(&self, a: u32) -> bool {
        let ag = &self.agents[a as usize];
        ag.status != AgentStatus::Offline
            || matches!(
                ag.activity,
                Activity::OnContact { .. } | Activity::Acw { .. }
            )
    }

    fn routable(&self, a: u32) -> bool {
        let ag = &self.agents[a as usize];
        ag.status == AgentStatus::Available && ag.activity == Activity::Idle
    }

    /// The agent is idle: index it in its queues (if Available) and look for work. `since` sets
    /// the start of its idle time (None keeps it, e.g. after a retracted ring-all offer).
    fn become_idle(&mut self, a: u32, since: Option<i64>, now: i64, out: &mut Vec<Decision>) {
        if let Some(t) = since {
            self.agents[a as usize].idle_since = t;
        }
        if !self.routable(a) {
            return;
        }
        self.index(a);
        self.route_agent(a, now, out);
    }

    fn idle_key(&self, q: u32, a: u32) -> IdleKey {
        let ag = &self.agents[a as usize];
        let k = match self.queues[q as usize].strategy {
            Strategy::LongestIdle | Strategy::SkillsWeighted => ag.idle_since,
            Strategy::LeastTalkTime => ag.talk_ms,
            Strategy::FewestCalls => ag.calls as i64,
            Strategy::RoundRobin | Strategy::RingAll => i64::from(a),
        };
        (k, a)
    }

    fn index(&mut self, a: u32) {
        self.unindex(a);
        let queues: Vec<u32> = self.profiles[self.agents[a as usize].profile as usize]
            .queues
            .iter()
            .map(|&(q, _, _)| q)
            .collect();
        let mut indexed = Vec::with_capacity(queues.len());
        for q in queues {
            let key = self.idle_key(q, a);
            self.queues[q as usize].idle.insert(key);
            indexed.push((q, key));
        }
        self.agents[a as usize].indexed = indexed;
    }

    fn unindex(&mut self, a: u32) {
        for (q, key) in std::mem::take(&mut self.agents[a as usize].indexed) {
            self.queues[q as usize].idle.remove(&key);
        }
    }

    fn contact_ended(&mut self, a: u32, now: i64, out: &mut Vec<Decision>) {
        let Activity::OnContact { queue: q, since } = self.agents[a as usize].activity else {
            out.push(ignored(format!(
                "contact ended: {:?} is not on a contact",
                self.agents[a as usize].id
            )));
            return;
        };
        let talk = now - since;
        let acw = self.profiles[self.agents[a as usize].profile as usize].acw_ms;
        let queue = &mut self.queues[q as usize];
        queue.handle_times.push(talk + acw);
        queue.counters.handled += 1;
        queue.counters.handle_ms_total += talk + acw;
        let ag = &mut self.agents[a as usize];
        ag.talk_ms += talk;
        ag.handling = None;
        if acw > 0 {
            self.set_activity(
                a,
                Activity::Acw {
                    until: now + acw,
                    queue: q,
                },
                now,
            );
            let ag = &self.agents[a as usize];
            out.push(Decision::AcwStarted {
                agent: ag.id.clone(),
                until_ms: now + acw,
            });
            self.timers.push(Reverse((
                now + acw,
                Timer::Acw {
                    agent: a,
                    at: now + acw,
                },
            )));
        } else {
            self.set_activity(a, Activity::Idle, now);
            self.become_idle(a, Some(now), now, out);
        }
    }

    fn end_acw(&mut self, a: u32, now: i64, out: &mut Vec<Decision>) {
        if let Activity::Acw { until, queue } = self.agents[a as usize].activity
            && until > now
        {
            // Ended early: the handle time counts the work actually done.
            self.queues[queue as usize].counters.handle_ms_total -= until - now;
        }
        self.set_activity(a, Activity::Idle, now);
        out.push(Decision::AcwEnded {
            agent: self.agents[a as usize].id.clone(),
        });
        self.become_idle(a, Some(now), now, out);
    }

    // ---- read side ----------------------------------------------------------------------

    pub fn agent_state(&self, agent: &str) -> Option<AgentState> {
        let ag = &self.agents[*self.agent_ix.get(agent)? as usize];
        Some(match (&ag.activity, &ag.status) {
            (Activity::Offered(slot), _) => AgentState::Offered(
                self.contact(*slot)
                    .map(|c| c.id.clone())
                    .unwrap_or_default(),
            ),
            (Activity::OnContact { .. }, _) => AgentState::OnContact(
                ag.handling
                    .as_ref()
                    .map(|h| h.0.clone())
                    .unwrap_or_default(),
            ),
            (Activity::Acw { until, .. }, _) => AgentState::AfterContactWork { until_ms: *until },
            (Activity::Missed, _) => AgentState::Missed,
            (Activity::Idle, AgentStatus::Available) => AgentState::Available,
            (Activity::Idle, AgentStatus::Offline) => AgentState::Offline,
            (Activity::Idle, AgentStatus::NotRoutable(code)) => {
                AgentState::NotRoutable(code.clone())
            }
        })
    }

    /// (talk time ms, contacts answered) of an agent.
    pub fn agent_totals(&self, agent: &str) -> Option<(i64, u64)> {
        let ag = &self.agents[*self.agent_ix.get(agent)? as usize];
        Some((ag.talk_ms, ag.calls))
    }

    /// An agent's occupancy since its current login (its last one when it is logged out).
    pub fn agent_occupancy(&self, agent: &str, now: i64) -> Option<Occupancy> {
        let ag = &self.agents[*self.agent_ix.get(agent)? as usize];
        Some(Self::session(ag, now))
    }

    /// The occupancy of all agents logged in now.
    pub fn occupancy(&self, now: i64) -> Occupancy {
        self.occupancy_of(0..self.agents.len() as u32, now)
    }

    fn occupancy_of(&self, agents: impl IntoIterator<Item = u32>, now: i64) -> Occupancy {
        let mut sum = Occupancy::default();
        for a in agents {
            if self.logged_in(a) {
                sum.add(Self::session(&self.agents[a as usize], now));
            }
        }
        sum
    }

    /// Waiting contacts of a queue in routing order.
    pub fn waiting(&self, queue: &str) -> Vec<String> {
        let Some(&q) = self.queue_ix.get(queue) else {
            return Vec::new();
        };
        self.queues[q as usize]
            .waiting
            .iter()
            .map(|k| self.contact(k.slot).expect("live").id.clone())
            .collect()
    }

    /// A queued contact's queue, 1-based position and estimated wait in ms (-1: no agent
    /// staffs the queue). See [`Acd::estimate`].
    pub fn position(&self, contact: &str) -> Option<(String, usize, i64)> {
        self.estimate(contact)
            .map(|e| (e.queue, e.position, e.wait_ms.unwrap_or(-1)))
    }

    /// A queued contact's queue, 1-based position and estimated wait ([`wait`]); `None` for an
    /// unknown contact (never queued, or gone to an agent).
    pub fn estimate(&self, contact: &str) -> Option<Estimate> {
        let c = self.contact(*self.contact_ix.get(contact)?)?;
        let q = &self.queues[c.queue as usize];
        let position = q.waiting.range(..c.key).count() + 1;
        let staffed = self.staffed_by[c.queue as usize]
            .iter()
            .filter(|&&a| self.agents[a as usize].status == AgentStatus::Available)
            .count();
        Some(Estimate {
            offered: c.state != CState::Waiting,
            queue: q.name.clone(),
            position,
            wait_ms: wait::estimated_wait_ms(
                position,
                staffed,
                q.idle.len(),
                q.handle_times.average_ms(),
            ),
        })
    }

    pub fn queue_stats(&self, queue: &str, now: i64) -> Option<QueueStats> {
        let q = *self.queue_ix.get(queue)?;
        let queue = &self.queues[q as usize];
        let oldest = queue
            .waiting
            .iter()
            .map(|k| self.contact(k.slot).expect("live").entered)
            .min();
        Some(QueueStats {
            waiting: queue.waiting.len(),
            oldest_wait_ms: oldest.map_or(0, |t| now - t),
            agents_available: queue.idle.len(),
            agents_staffed: self.staffed_by[q as usize]
                .iter()
                .filter(|&&a| self.agents[a as usize].status != AgentStatus::Offline)
                .count(),
            counters: queue.counters,
            asa_ms: ratio(queue.counters.answer_wait_ms_total, queue.counters.answered),
            aht_ms: ratio(queue.counters.handle_ms_total, queue.counters.handled),
            service_level: if queue.counters.answered == 0 {
                1.0
            } else {
                queue.counters.answered_within_sl as f64 / queue.counters.answered as f64
            },
            occupancy: self.occupancy_of(self.staffed_by[q as usize].iter().copied(), now),
        })
    }
}

fn ratio(total: i64, n: u64) -> i64 {
    if n == 0 { 0 } else { total / n as i64 }
}

fn ignored(reason: String) -> Decision {
    Decision::Ignored { reason }
}
