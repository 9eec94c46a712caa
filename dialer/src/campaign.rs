//! Campaigns: what a campaign is (its configuration, validated), its lifecycle
//! (draft → running ↔ paused → completed) and its store.
//!
//! The configuration is one JSON document ([`CampaignConfig`]) in `campaigns.config`; it can be
//! changed at any time before completion (the runner re-reads it every tick). Every change bumps
//! `version`, and an update may name the version it was based on (optimistic concurrency).

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use chrono::{NaiveTime, Weekday};
use foundation::{Clock, Db};
use serde::{Deserialize, Serialize};
use sqlx::Row;

/// How leads are dialled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DialMode {
    /// The agent sees the lead card first, then dials or skips.
    Preview,
    /// Dial when an agent is free (`lines_per_agent` calls per free agent).
    Progressive,
    /// Dial ahead of agent availability, holding abandonment under the cap.
    Predictive,
    /// No agent: on answer play a message (with an opt-out key).
    Agentless,
}

/// Telemarketing (sales) or informational calls: the rules differ (registry, consent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    Telemarketing,
    Informational,
}

/// What to do when answering-machine detection says "machine".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AmdPolicy {
    HangUp,
    /// Wait for the beep, play `voicemail_prompt`, hang up.
    LeaveMessage,
    /// Treat it as a live answer and give it to an agent.
    PassToAgent,
}

/// A list of the campaign and its share of the dials.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListWeight {
    pub list_id: i64,
    #[serde(default = "one")]
    pub weight: u32,
}

fn one() -> u32 {
    1
}

/// The outbound trunk: where INVITEs go and how fast.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrunkConfig {
    /// SIP target, e.g. `sip:127.0.0.1:5080`.
    pub uri: String,
    /// New calls per second (at most).
    pub cps: u32,
    /// Calls at once (at most).
    pub max_concurrent: u32,
}

/// A local-time calling window, optionally on some weekdays only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalWindow {
    /// "HH:MM", inclusive.
    pub start: NaiveTime,
    /// "HH:MM", exclusive.
    pub end: NaiveTime,
    /// Empty: every day.
    #[serde(default)]
    pub days: Vec<Weekday>,
}

impl Default for LocalWindow {
    fn default() -> Self {
        Self {
            start: NaiveTime::from_hms_opt(8, 0, 0).expect("valid"),
            end: NaiveTime::from_hms_opt(21, 0, 0).expect("valid"),
            days: Vec::new(),
        }
    }
}

/// The legal limits a campaign dials under. Defaults follow the US TSR/TCPA numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ComplianceProfile {
    /// Default 08:00–21:00 in the callee's local time.
    pub window: LocalWindow,
    /// Overrides by region: an ISO subdivision such as `US-TX` (the lead's state) or a country
    /// `US`; the most specific one applies.
    pub region_windows: BTreeMap<String, LocalWindow>,
    /// Abandoned / live answers, held per campaign to date and per 30-day period (default 0.03).
    pub abandon_cap: f64,
    /// Optional extra rolling window for the cap, in hours (e.g. 24).
    pub rolling_window_h: Option<u32>,
    /// No redial of a number within this many hours after an abandoned call to it.
    pub no_redial_after_abandon_h: u32,
    pub max_attempts_per_lead: u32,
    /// Attempts to one number in any 24 hours.
    pub max_attempts_per_number_per_day: u32,
    /// Ring at least this long before giving up (≥ 15 s).
    pub min_ring_s: u32,
    /// A national registry copy older than this blocks telemarketing (default 31).
    pub registry_max_age_days: u32,
    /// Telemarketing needs at least one loaded registry.
    pub require_registry: bool,
}

impl Default for ComplianceProfile {
    fn default() -> Self {
        Self {
            window: LocalWindow::default(),
            region_windows: BTreeMap::new(),
            abandon_cap: 0.03,
            rolling_window_h: None,
            no_redial_after_abandon_h: 72,
            max_attempts_per_lead: 3,
            max_attempts_per_number_per_day: 2,
            min_ring_s: 15,
            registry_max_age_days: 31,
            require_registry: false,
        }
    }
}

/// Delay before the next attempt per outcome, in seconds; `None`: the lead is finished.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryPolicy {
    pub no_answer: Option<u32>,
    pub busy: Option<u32>,
    pub machine: Option<u32>,
    pub failed: Option<u32>,
    pub abandoned: Option<u32>,
    pub interrupted: Option<u32>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            no_answer: Some(2 * 3600),
            busy: Some(15 * 60),
            machine: Some(4 * 3600),
            failed: Some(30 * 60),
            abandoned: Some(72 * 3600),
            interrupted: Some(3600),
        }
    }
}

/// The recorded message an abandoned call hears (and every prerecorded message offers the
/// opt-out key).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SafeHarbor {
    pub seller: String,
    pub callback_number: String,
    /// The key that adds the number to the internal DNC list at once.
    pub opt_out_key: char,
    /// The recording (8 kHz WAV) saying the above.
    pub prompt: String,
}

/// A condition on a lead's attributes (the JSON object of unmapped columns, plus `country`,
/// `subdivision`, `postal_code`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, tag = "op", rename_all = "snake_case")]
pub enum LeadFilter {
    Eq {
        attribute: String,
        value: String,
    },
    Ne {
        attribute: String,
        value: String,
    },
    In {
        attribute: String,
        values: Vec<String>,
    },
    Exists {
        attribute: String,
    },
}

impl LeadFilter {
    /// Whether the lead passes, given a lookup of its attribute values as text.
    pub fn matches(&self, get: &dyn Fn(&str) -> Option<String>) -> bool {
        match self {
            LeadFilter::Eq { attribute, value } => {
                get(attribute).as_deref() == Some(value.as_str())
            }
            LeadFilter::Ne { attribute, value } => {
                get(attribute).as_deref() != Some(value.as_str())
            }
            LeadFilter::In { attribute, values } => {
                get(attribute).is_some_and(|v| values.contains(&v))
            }
            LeadFilter::Exists { attribute } => get(attribute).is_some_and(|v| !v.is_empty()),
        }
    }
}

/// What an agent disposition code does to the lead.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DispositionRule {
    /// The lead is finished with this code.
    #[serde(default)]
    pub final_: bool,
    /// Otherwise retry after this many seconds.
    #[serde(default)]
    pub retry_after_s: Option<u32>,
}

/// Everything about a campaign that can be edited.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CampaignConfig {
    pub lists: Vec<ListWeight>,
    pub mode: DialMode,
    pub purpose: Purpose,
    /// Calls per free agent in progressive mode.
    #[serde(default = "one_f64")]
    pub lines_per_agent: f64,
    pub caller_id: String,
    /// The agent queue (not used by agentless campaigns).
    #[serde(default)]
    pub queue: String,
    pub trunk: TrunkConfig,
    #[serde(default)]
    pub retry: RetryPolicy,
    #[serde(default)]
    pub compliance: ComplianceProfile,
    pub amd: AmdPolicy,
    /// Left after the beep (AMD policy `leave_message`).
    #[serde(default)]
    pub voicemail_prompt: Option<String>,
    /// Played to every answer of an agentless campaign.
    #[serde(default)]
    pub agentless_prompt: Option<String>,
    /// Agentless: run this flow (an id of the inbound flows store, e.g. "press 1 to confirm, 2
    /// for an agent") on every live answer instead of playing a message. Exclusive with
    /// `agentless_prompt`. The safe-harbor opt-out key works throughout the flow: the dialer
    /// takes it before the flow sees any input (the flow's opening prompt should announce it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agentless_flow: Option<String>,
    pub safe_harbor: SafeHarbor,
    #[serde(default)]
    pub filters: Vec<LeadFilter>,
    /// Agent disposition codes and what each does to the lead (final, or retry after N s). When
    /// empty, any code is taken and finishes the lead; when set, other codes are refused.
    #[serde(default)]
    pub dispositions: BTreeMap<String, DispositionRule>,
    /// Preview mode: dial automatically after this many seconds on the card.
    #[serde(default)]
    pub preview_auto_dial_s: Option<u32>,
}

fn one_f64() -> f64 {
    1.0
}

/// A configuration problem, said plainly.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid campaign: {0}")]
pub struct ConfigError(pub String);

impl CampaignConfig {
    /// Checks everything that can be checked without the database.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |m: String| Err(ConfigError(m));
        if self.lists.is_empty() {
            return err("at least one list is needed".into());
        }
        if self.lists.iter().any(|l| l.weight == 0) {
            return err("list weights must be at least 1".into());
        }
        if self.caller_id.trim().is_empty() {
            return err("caller_id is empty".into());
        }
        if !self.trunk.uri.starts_with("sip:") {
            return err(format!("trunk.uri {:?} is not a sip: URI", self.trunk.uri));
        }
        if self.trunk.cps == 0 || self.trunk.max_concurrent == 0 {
            return err("trunk.cps and trunk.max_concurrent must be at least 1".into());
        }
        if self.mode != DialMode::Agentless && self.queue.trim().is_empty() {
            return err("queue is needed for preview, progressive and predictive campaigns".into());
        }
        match (&self.agentless_prompt, &self.agentless_flow) {
            (Some(_), Some(_)) => {
                return err(
                    "agentless_prompt and agentless_flow are exclusive: give one of them".into(),
                );
            }
            (None, None) if self.mode == DialMode::Agentless => {
                return err("agentless campaigns need agentless_prompt or agentless_flow".into());
            }
            (_, Some(f)) if f.trim().is_empty() => {
                return err("agentless_flow is empty".into());
            }
            (_, Some(_)) if self.mode != DialMode::Agentless => {
                return err("agentless_flow is only for agentless campaigns".into());
            }
            _ => {}
        }
        if self.amd == AmdPolicy::LeaveMessage && self.voicemail_prompt.is_none() {
            return err("amd leave_message needs voicemail_prompt".into());
        }
        if !(self.lines_per_agent >= 1.0 && self.lines_per_agent <= 5.0) {
            return err("lines_per_agent must be between 1 and 5".into());
        }
        let c = &self.compliance;
        if !(c.abandon_cap > 0.0 && c.abandon_cap <= 0.03) {
            return err(format!(
                "compliance.abandon_cap {} must be in (0, 0.03]",
                c.abandon_cap
            ));
        }
        if c.min_ring_s < 15 {
            return err(format!(
                "compliance.min_ring_s {} is below the legal 15 s",
                c.min_ring_s
            ));
        }
        if c.max_attempts_per_lead == 0 || c.max_attempts_per_number_per_day == 0 {
            return err("max attempts must be at least 1".into());
        }
        if c.registry_max_age_days == 0 || c.registry_max_age_days > 31 {
            return err("compliance.registry_max_age_days must be 1..=31".into());
        }
        let legal = LocalWindow::default();
        for (name, w) in std::iter::once(("window", &c.window))
            .chain(c.region_windows.iter().map(|(k, v)| (k.as_str(), v)))
        {
            if w.start >= w.end {
                return err(format!("window {name}: start must be before end"));
            }
            if self.purpose == Purpose::Telemarketing
                && (w.start < legal.start || w.end > legal.end)
            {
                return err(format!(
                    "window {name}: telemarketing may not call outside 08:00–21:00 local time"
                ));
            }
        }
        let s = &self.safe_harbor;
        if s.seller.trim().is_empty()
            || s.callback_number.trim().is_empty()
            || s.prompt.trim().is_empty()
        {
            return err("safe_harbor needs seller, callback_number and prompt".into());
        }
        if !matches!(s.opt_out_key, '0'..='9' | '*' | '#') {
            return err(format!(
                "safe_harbor.opt_out_key {:?} is not a keypad key",
                s.opt_out_key
            ));
        }
        Ok(())
    }

    /// The retry delay (ms) for a system outcome, `None`: finished.
    pub fn retry_ms(&self, outcome: crate::attempts::Outcome) -> Option<i64> {
        use crate::attempts::Outcome as O;
        let r = &self.retry;
        let s = match outcome {
            O::NoAnswer => r.no_answer,
            O::Busy => r.busy,
            O::Machine => r.machine,
            O::Failed => r.failed,
            O::Abandoned => r.abandoned,
            O::Interrupted => r.interrupted,
            _ => None,
        }?;
        Some(s as i64 * 1000)
    }
}

/// Where a campaign is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CampaignState {
    Draft,
    Running,
    Paused,
    Completed,
}

impl CampaignState {
    pub fn as_str(self) -> &'static str {
        match self {
            CampaignState::Draft => "draft",
            CampaignState::Running => "running",
            CampaignState::Paused => "paused",
            CampaignState::Completed => "completed",
        }
    }

    pub fn parse(s: &str) -> anyhow::Result<Self> {
        Ok(match s {
            "draft" => CampaignState::Draft,
            "running" => CampaignState::Running,
            "paused" => CampaignState::Paused,
            "completed" => CampaignState::Completed,
            other => bail!("unknown campaign state {other:?}"),
        })
    }
}

/// A lifecycle command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Start,
    Pause,
    Resume,
    Complete,
}

/// The lifecycle, sans-IO: the state after `action`, or why not.
pub fn transition(from: CampaignState, action: Action) -> Result<CampaignState, ConfigError> {
    use CampaignState::*;
    match (from, action) {
        (Draft, Action::Start) => Ok(Running),
        (Running, Action::Pause) => Ok(Paused),
        (Paused, Action::Resume) | (Paused, Action::Start) => Ok(Running),
        (Running | Paused, Action::Complete) => Ok(Completed),
        (from, action) => Err(ConfigError(format!(
            "a {} campaign cannot {:?}",
            from.as_str(),
            action
        ))),
    }
}

/// A stored campaign.
#[derive(Debug, Clone, Serialize)]
pub struct Campaign {
    pub id: i64,
    pub name: String,
    pub state: CampaignState,
    pub config: CampaignConfig,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub started_at: Option<i64>,
    pub completed_at: Option<i64>,
}

const COLUMNS: &str =
    "id, name, state, config, version, created_at, updated_at, started_at, completed_at";

fn from_row(r: &sqlx::any::AnyRow) -> anyhow::Result<Campaign> {
    let name: String = r.get("name");
    let config: String = r.get("config");
    Ok(Campaign {
        id: r.get("id"),
        state: CampaignState::parse(&r.get::<String, _>("state"))?,
        config: serde_json::from_str(&config)
            .with_context(|| format!("campaign {name}: stored config unreadable"))?,
        name,
        version: r.get("version"),
        created_at: r.get("created_at"),
        updated_at: r.get("updated_at"),
        started_at: r.get("started_at"),
        completed_at: r.get("completed_at"),
    })
}

async fn check_lists(db: &Db, config: &CampaignConfig) -> anyhow::Result<()> {
    for l in &config.lists {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM lead_lists WHERE id = $1")
            .bind(l.list_id)
            .fetch_one(db.pool())
            .await?;
        if n == 0 {
            bail!(ConfigError(format!("list {} does not exist", l.list_id)));
        }
    }
    Ok(())
}

/// The `agentless_flow` must name a flow of the flows store (the inbound flows' table, read
/// here so that the dialer does not depend on `inbound`).
async fn check_flow(db: &Db, config: &CampaignConfig) -> anyhow::Result<()> {
    let Some(flow) = &config.agentless_flow else {
        return Ok(());
    };
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM inbound_flows WHERE name = $1")
        .bind(flow)
        .fetch_one(db.pool())
        .await?;
    if n == 0 {
        bail!(ConfigError(format!(
            "agentless_flow {flow:?} is not a stored flow"
        )));
    }
    Ok(())
}

/// Creates a campaign in `draft`.
pub async fn create(
    db: &Db,
    clock: &dyn Clock,
    name: &str,
    config: &CampaignConfig,
) -> anyhow::Result<Campaign> {
    if name.trim().is_empty() {
        bail!(ConfigError("the campaign name is empty".into()));
    }
    config.validate()?;
    check_lists(db, config).await?;
    check_flow(db, config).await?;
    let now = clock.now_ms();
    let mut tx = db.begin_write().await?;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO campaigns (name, state, config, version, created_at, updated_at) \
         VALUES ($1, 'draft', $2, 1, $3, $3) RETURNING id",
    )
    .bind(name)
    .bind(serde_json::to_string(config)?)
    .bind(now)
    .fetch_one(tx.conn())
    .await
    .map_err(anyhow::Error::from)
    .map_err(|e| {
        if Db::is_unique_violation(&e) {
            anyhow::anyhow!(ConfigError(format!("a campaign named {name:?} exists")))
        } else {
            e
        }
    })?;
    tx.commit().await?;
    get(db, id).await?.context("campaign vanished")
}

pub async fn get(db: &Db, id: i64) -> anyhow::Result<Option<Campaign>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM campaigns WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(db.pool())
    .await?;
    row.as_ref().map(from_row).transpose()
}

pub async fn by_name(db: &Db, name: &str) -> anyhow::Result<Option<Campaign>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM campaigns WHERE name = $1"
    )))
    .bind(name)
    .fetch_optional(db.pool())
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// All campaigns, or those in `state`.
pub async fn list(db: &Db, state: Option<CampaignState>) -> anyhow::Result<Vec<Campaign>> {
    let rows = match state {
        Some(s) => {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM campaigns WHERE state = $1 ORDER BY id"
            )))
            .bind(s.as_str())
            .fetch_all(db.pool())
            .await?
        }
        None => {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM campaigns ORDER BY id"
            )))
            .fetch_all(db.pool())
            .await?
        }
    };
    rows.iter().map(from_row).collect()
}

/// Replaces the configuration (any state but completed). With `expected_version`, fails when
/// someone else changed the campaign since. Leads set aside by the old filters are looked at again.
pub async fn update_config(
    db: &Db,
    clock: &dyn Clock,
    id: i64,
    config: &CampaignConfig,
    expected_version: Option<i64>,
) -> anyhow::Result<Campaign> {
    config.validate()?;
    check_lists(db, config).await?;
    check_flow(db, config).await?;
    let now = clock.now_ms();
    let mut tx = db.begin_write().await?;
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT state, version FROM campaigns WHERE id = $1{}",
        db.claim_lock_suffix().replace(" SKIP LOCKED", "")
    )))
    .bind(id)
    .fetch_optional(tx.conn())
    .await?
    .with_context(|| format!("campaign {id} does not exist"))?;
    let state = CampaignState::parse(&row.get::<String, _>("state"))?;
    let version: i64 = row.get("version");
    if state == CampaignState::Completed {
        bail!(ConfigError("a completed campaign cannot be changed".into()));
    }
    if let Some(v) = expected_version
        && v != version
    {
        bail!(ConfigError(format!(
            "the campaign changed meanwhile (version {version}, not {v})"
        )));
    }
    sqlx::query(
        "UPDATE campaigns SET config = $1, version = version + 1, updated_at = $2 WHERE id = $3",
    )
    .bind(serde_json::to_string(config)?)
    .bind(now)
    .bind(id)
    .execute(tx.conn())
    .await?;
    sqlx::query("UPDATE campaign_leads SET state = 'ready', updated_at = $1 WHERE campaign_id = $2 AND state = 'filtered'")
        .bind(now)
        .bind(id)
        .execute(tx.conn())
        .await?;
    tx.commit().await?;
    get(db, id).await?.context("campaign vanished")
}

/// Applies a lifecycle command.
pub async fn apply(
    db: &Db,
    clock: &dyn Clock,
    id: i64,
    action: Action,
) -> anyhow::Result<Campaign> {
    let now = clock.now_ms();
    let mut tx = db.begin_write().await?;
    let state: String = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT state FROM campaigns WHERE id = $1{}",
        db.claim_lock_suffix().replace(" SKIP LOCKED", "")
    )))
    .bind(id)
    .fetch_optional(tx.conn())
    .await?
    .with_context(|| format!("campaign {id} does not exist"))?;
    let next = transition(CampaignState::parse(&state)?, action)?;
    sqlx::query(
        "UPDATE campaigns SET state = $1, version = version + 1, updated_at = $2, \
         started_at = CASE WHEN $1 = 'running' AND started_at IS NULL THEN $2 ELSE started_at END, \
         completed_at = CASE WHEN $1 = 'completed' THEN $2 ELSE completed_at END WHERE id = $3",
    )
    .bind(next.as_str())
    .bind(now)
    .bind(id)
    .execute(tx.conn())
    .await?;
    tx.commit().await?;
    get(db, id).await?.context("campaign vanished")
}
