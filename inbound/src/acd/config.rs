//! ACD configuration and the vocabulary of its state machine: queues (capacity, max wait,
//! overflow, strategy, escalation), routing profiles (queues with priority and delay, ACW time),
//! agents (profile, skills with proficiency), contact requests with routing-criteria steps, the
//! [`Event`]s fed in and the [`Decision`]s returned.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// How a queue picks among eligible idle agents.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// The agent idle the longest (Amazon Connect's rule, FreeSWITCH's default).
    #[default]
    LongestIdle,
    /// The next agent by position after the one offered last (FreeSWITCH round-robin).
    RoundRobin,
    /// The agent with the least accumulated talk time.
    LeastTalkTime,
    /// The agent who answered the fewest contacts.
    FewestCalls,
    /// Offer to every eligible idle agent at once; the first to accept wins.
    RingAll,
    /// The agent with the highest proficiency sum over the contact's required skills (ties: longest idle).
    SkillsWeighted,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueConfig {
    pub name: String,
    /// Waiting contacts at most; a full queue overflows or refuses (`QueueAtCapacity`).
    #[serde(default)]
    pub max_contacts: Option<usize>,
    /// Longest wait before overflow (or timeout when there is no overflow target).
    #[serde(default)]
    pub max_wait_s: Option<i64>,
    #[serde(default)]
    pub overflow: Option<String>,
    #[serde(default)]
    pub strategy: Strategy,
    /// How long an offer rings before it counts as missed.
    #[serde(default = "default_ring_s")]
    pub ring_timeout_s: i64,
    /// Priority escalation: after waiting `after_s`, the contact's priority becomes at most `priority`.
    #[serde(default)]
    pub escalation: Vec<Escalation>,
    /// Service-level threshold: answered within this many seconds counts as in service level.
    #[serde(default = "default_sl_s")]
    pub service_level_s: i64,
    /// Other names flows may use for this queue, e.g. the Amazon Connect queue ARN or id found
    /// in an imported flow's `QueueId`.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Waiting callers hear their position ("You are caller number N.").
    #[serde(default)]
    pub announce_position: bool,
    /// Waiting callers hear their estimated wait ("Your estimated wait is about M minutes.").
    #[serde(default)]
    pub announce_wait: bool,
    /// Seconds between announcements (at least [`MIN_ANNOUNCE_EVERY_S`]).
    #[serde(default = "default_announce_every_s")]
    pub announce_every_s: i64,
    /// Callbacks: dial attempts before the callback closes as not reached (overrides the flow's
    /// `MaximumConnectionAttempts`; 1..=10).
    #[serde(default)]
    pub callback_attempts: Option<i64>,
    /// Callbacks: seconds between attempts (overrides the flow's `RetryDelaySeconds`; at least 1).
    #[serde(default)]
    pub callback_retry_s: Option<i64>,
    /// Callbacks: how long the customer's phone rings per attempt (5..=120).
    #[serde(default = "default_callback_ring_s")]
    pub callback_ring_s: i64,
    /// Callbacks: the caller id the customer sees (the queue's public number); `None`: the
    /// runtime's `agent_caller_id`.
    #[serde(default)]
    pub callback_caller_id: Option<String>,
}

pub const DEFAULT_ANNOUNCE_EVERY_S: i64 = 30;
pub const MIN_ANNOUNCE_EVERY_S: i64 = 10;

fn default_announce_every_s() -> i64 {
    DEFAULT_ANNOUNCE_EVERY_S
}

fn default_callback_ring_s() -> i64 {
    30
}

pub const DEFAULT_SERVICE_LEVEL_S: i64 = 20;

fn default_sl_s() -> i64 {
    DEFAULT_SERVICE_LEVEL_S
}

fn default_ring_s() -> i64 {
    20
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Escalation {
    pub after_s: i64,
    pub priority: i64,
}

impl QueueConfig {
    pub fn new(name: &str) -> Self {
        Self {
            name: name.into(),
            max_contacts: None,
            max_wait_s: None,
            overflow: None,
            strategy: Strategy::default(),
            ring_timeout_s: default_ring_s(),
            escalation: Vec::new(),
            service_level_s: DEFAULT_SERVICE_LEVEL_S,
            aliases: Vec::new(),
            announce_position: false,
            announce_wait: false,
            announce_every_s: DEFAULT_ANNOUNCE_EVERY_S,
            callback_attempts: None,
            callback_retry_s: None,
            callback_ring_s: default_callback_ring_s(),
            callback_caller_id: None,
        }
    }

    /// Whether waiting callers hear announcements.
    pub fn announces(&self) -> bool {
        self.announce_position || self.announce_wait
    }

    /// Checks the queue's own settings; the error names the key.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.announce_every_s < MIN_ANNOUNCE_EVERY_S {
            return Err((
                "announce_every_s",
                format!(
                    "is {}, at least {MIN_ANNOUNCE_EVERY_S} seconds",
                    self.announce_every_s
                ),
            ));
        }
        if let Some(n) = self.callback_attempts
            && !(1..=10).contains(&n)
        {
            return Err(("callback_attempts", format!("is {n}, must be 1..=10")));
        }
        if let Some(s) = self.callback_retry_s
            && s < 1
        {
            return Err(("callback_retry_s", format!("is {s}, at least 1 second")));
        }
        if !(5..=120).contains(&self.callback_ring_s) {
            return Err((
                "callback_ring_s",
                format!("is {}, must be 5..=120", self.callback_ring_s),
            ));
        }
        if let Some(id) = &self.callback_caller_id
            && (id.is_empty()
                || !id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-_.".contains(c)))
        {
            return Err((
                "callback_caller_id",
                format!("{id:?} is not a number or SIP user name"),
            ));
        }
        if self.ring_timeout_s < 1 {
            return Err((
                "ring_timeout_s",
                format!("is {}, at least 1 second", self.ring_timeout_s),
            ));
        }
        Ok(())
    }
}

/// A queue in a routing profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileQueue {
    pub queue: String,
    /// 1..=99, lower is served first.
    pub priority: u8,
    /// Seconds a contact must have waited before agents of this profile may get it.
    #[serde(default)]
    pub delay_s: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoutingProfileConfig {
    pub name: String,
    pub queues: Vec<ProfileQueue>,
    /// After-contact work time; 0 returns the agent to Available at once.
    #[serde(default)]
    pub acw_s: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentConfig {
    pub id: String,
    pub profile: String,
    /// Skill name to proficiency 1..=5.
    #[serde(default)]
    pub skills: BTreeMap<String, u8>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcdConfig {
    pub queues: Vec<QueueConfig>,
    pub profiles: Vec<RoutingProfileConfig>,
    pub agents: Vec<AgentConfig>,
}

/// One routing-criteria step: required skills with minimum proficiency, for `expiry_s` (the last
/// step, or one without expiry, holds until the contact is served).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CriteriaStep {
    pub skills: BTreeMap<String, u8>,
    #[serde(default)]
    pub expiry_s: Option<i64>,
}

/// A contact to route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactRequest {
    pub contact_id: String,
    pub queue: String,
    /// Lower is served first (Amazon Connect's QueuePriority; default 5).
    #[serde(default = "default_priority")]
    pub priority: i64,
    /// Positive values move the contact ahead as if it had waited longer.
    #[serde(default)]
    pub time_adjustment_s: i64,
    /// Age counts from here instead of now: a callback keeps the caller's place.
    #[serde(default)]
    pub waiting_since_ms: Option<i64>,
    #[serde(default)]
    pub criteria: Vec<CriteriaStep>,
    /// How long an offer of this contact may last before it counts as missed, instead of the
    /// queue's ring timeout (a callback's offer lasts while the customer's phone rings).
    #[serde(default)]
    pub offer_timeout_s: Option<i64>,
}

fn default_priority() -> i64 {
    5
}

impl ContactRequest {
    pub fn new(contact_id: &str, queue: &str) -> Self {
        Self {
            contact_id: contact_id.into(),
            queue: queue.into(),
            priority: default_priority(),
            time_adjustment_s: 0,
            waiting_since_ms: None,
            criteria: Vec::new(),
            offer_timeout_s: None,
        }
    }
}

/// What an agent chose (the activity on top of it is the system's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AgentStatus {
    Offline,
    Available,
    /// A not-routable status with its break code (Lunch, Training...).
    NotRoutable(String),
}

/// The state an agent shows on dashboards.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AgentState {
    Offline,
    Available,
    /// Being offered a contact (ringing).
    Offered(String),
    OnContact(String),
    AfterContactWork {
        until_ms: i64,
    },
    NotRoutable(String),
    /// Missed an offer; not routable until the agent sets a status again.
    Missed,
}

/// What the driver tells the ACD.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    /// Only time passed (call at [`super::Acd::next_deadline`]).
    Tick,
    Enqueue(ContactRequest),
    /// The caller left the queue (hung up, or chose a callback).
    Abandon {
        contact: String,
    },
    SetStatus {
        agent: String,
        status: AgentStatus,
    },
    Accept {
        contact: String,
        agent: String,
    },
    /// Declined, or the agent's endpoint did not answer.
    Reject {
        contact: String,
        agent: String,
    },
    /// The agent's contact ended; after-contact work starts.
    ContactEnded {
        agent: String,
    },
    /// The agent finished after-contact work early.
    AcwDone {
        agent: String,
    },
    /// The offer ends through no fault of the agent and the contact leaves the queue (a
    /// callback whose customer did not answer): the agent is idle again, nothing is counted.
    Withdraw {
        contact: String,
        agent: String,
    },
}

/// What the ACD decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Decision {
    Queued {
        contact: String,
        queue: String,
    },
    AtCapacity {
        contact: String,
        queue: String,
    },
    Offer {
        contact: String,
        agent: String,
        queue: String,
        ring_timeout_ms: i64,
    },
    RetractOffer {
        contact: String,
        agent: String,
    },
    Connected {
        contact: String,
        agent: String,
    },
    /// The agent missed the offer; the contact went back to the head of its queue.
    Missed {
        contact: String,
        agent: String,
    },
    Overflow {
        contact: String,
        from: String,
        to: String,
    },
    /// Max wait reached with no overflow target: the contact left the queue.
    Timeout {
        contact: String,
        queue: String,
    },
    AcwStarted {
        agent: String,
        until_ms: i64,
    },
    AcwEnded {
        agent: String,
    },
    /// An event that named an unknown agent or contact, or came in the wrong state.
    Ignored {
        reason: String,
    },
}
