//! Dial attempts: written before the INVITE ([`open`]), moved along as the call progresses
//! ([`mark`]), finished exactly once with the outcome ([`finish`]), which also decides the lead's
//! next step (retry per outcome, or done) and retires disconnected numbers. Agent dispositions
//! and callbacks come afterwards ([`set_disposition`]). At start a node closes what a crash left
//! open ([`recover`]): open attempts become `interrupted` (counted abandoned unless known
//! unanswered), claimed leads go back to the hopper.
//!
//! Also the figures compliance reads from the attempts: abandonment counts ([`abandon_count`],
//! which include AMD false machines: [`Final::live_person_after_machine`]) and a number's facts
//! ([`number_facts`]). A final record also keeps what a flow run on the call produced (its
//! attributes, its `disposition` attribute, the flow's id).

use anyhow::Context;
use foundation::{Clock, Db};
use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::campaign::{self, CampaignConfig};
use crate::compliance::{AbandonCount, NumberFacts};

/// The final outcome of an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    NoAnswer,
    Busy,
    /// An answering machine (hung up on, or a message left: see `detail`).
    Machine,
    /// Network or trunk failure, rejection.
    Failed,
    /// The number does not exist any more: retired.
    Disconnected,
    /// A live answer not connected to an agent in time (heard the safe-harbor message).
    Abandoned,
    /// The callee pressed the opt-out key: the number is on the internal DNC list.
    Dnc,
    /// The process died while the call was up.
    Interrupted,
    /// Talked with an agent (the agent's disposition follows).
    Connected,
    /// Agentless: the message was played to a live answer.
    Message,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::NoAnswer => "no_answer",
            Outcome::Busy => "busy",
            Outcome::Machine => "machine",
            Outcome::Failed => "failed",
            Outcome::Disconnected => "disconnected",
            Outcome::Abandoned => "abandoned",
            Outcome::Dnc => "dnc",
            Outcome::Interrupted => "interrupted",
            Outcome::Connected => "connected",
            Outcome::Message => "message",
        }
    }

    /// The system outcome of a SIP result (telephony's outcome table).
    pub fn from_sip(o: telephony::sip::outcome::Outcome) -> Outcome {
        use telephony::sip::outcome::Outcome as S;
        match o {
            S::Answered => Outcome::Connected,
            S::Busy => Outcome::Busy,
            S::NoAnswer => Outcome::NoAnswer,
            S::NumberDisconnected => Outcome::Disconnected,
            S::Rejected | S::Unreachable | S::Congestion => Outcome::Failed,
        }
    }
}

/// Progress states of an open attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    Ringing,
    Answered,
    Connected,
}

/// An attempt to write before dialling.
#[derive(Debug, Clone, Default)]
pub struct NewAttempt {
    pub campaign_id: Option<i64>,
    pub lead_id: Option<i64>,
    pub phone_position: Option<i64>,
    pub e164: String,
    pub caller_id: String,
    pub node: String,
    /// The compliance decision that allowed it.
    pub allowed_reason: String,
    pub attributes: serde_json::Map<String, serde_json::Value>,
}

/// A written attempt.
#[derive(Debug, Clone, Serialize)]
pub struct Attempt {
    pub id: i64,
    /// The contact id (`contact_…`).
    pub public_id: String,
}

/// Writes the attempt (state `dialing`) and, for a campaign lead, moves the lead from `claimed`
/// to `dialing` and counts the attempt — in one transaction, before any INVITE.
pub async fn open(db: &Db, clock: &dyn Clock, a: &NewAttempt) -> anyhow::Result<Attempt> {
    open_fenced(db, clock, a, None).await
}

/// [`open`] for the campaign's pacer: refused with [`crate::lease::Fenced`] (nothing written)
/// unless `fence` still holds the campaign's pacer lease.
pub async fn open_fenced(
    db: &Db,
    clock: &dyn Clock,
    a: &NewAttempt,
    fence: Option<crate::lease::Fence<'_>>,
) -> anyhow::Result<Attempt> {
    let now = clock.now_ms();
    let public_id = foundation::ids::public_id("contact", now);
    let mut tx = db.begin_write().await?;
    if let Some(f) = fence {
        let c = a
            .campaign_id
            .context("a fenced attempt belongs to a campaign")?;
        crate::lease::check(tx.conn(), c, f).await?;
    }
    if let (Some(c), Some(l)) = (a.campaign_id, a.lead_id) {
        let r = sqlx::query(
            "UPDATE campaign_leads SET state = 'dialing', attempts = attempts + 1, last_reason = $1, updated_at = $2 \
             WHERE campaign_id = $3 AND lead_id = $4 AND state = 'claimed' AND claimed_by = $5",
        )
        .bind(&a.allowed_reason)
        .bind(now)
        .bind(c)
        .bind(l)
        .bind(&a.node)
        .execute(tx.conn())
        .await?;
        anyhow::ensure!(
            r.rows_affected() == 1,
            "lead {l} of campaign {c} is not claimed by {}",
            a.node
        );
    }
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO dial_attempts (public_id, campaign_id, lead_id, phone_position, e164, caller_id, node, state, \
         allowed_reason, attributes, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 'dialing', $8, $9, $10) RETURNING id",
    )
    .bind(&public_id)
    .bind(a.campaign_id)
    .bind(a.lead_id)
    .bind(a.phone_position)
    .bind(&a.e164)
    .bind(&a.caller_id)
    .bind(&a.node)
    .bind(&a.allowed_reason)
    .bind(serde_json::to_string(&a.attributes)?)
    .bind(now)
    .fetch_one(tx.conn())
    .await?;
    tx.commit().await?;
    Ok(Attempt { id, public_id })
}

/// Records progress of an open attempt (so a crash knows whether the call was answered).
pub async fn mark(db: &Db, clock: &dyn Clock, id: i64, p: Progress) -> anyhow::Result<()> {
    let now = clock.now_ms();
    let sql = match p {
        Progress::Ringing => {
            "UPDATE dial_attempts SET state = 'ringing' WHERE id = $1 AND state = 'dialing' AND $2 = $2"
        }
        Progress::Answered => {
            "UPDATE dial_attempts SET state = 'answered', answered_at = $2 WHERE id = $1 AND state IN ('dialing', 'ringing')"
        }
        Progress::Connected => {
            "UPDATE dial_attempts SET state = 'connected', bridged_at = $2 WHERE id = $1 AND state <> 'final'"
        }
    };
    let mut tx = db.begin_write().await?;
    sqlx::query(sql)
        .bind(id)
        .bind(now)
        .execute(tx.conn())
        .await?;
    tx.commit().await?;
    Ok(())
}

/// How an attempt ended.
#[derive(Debug, Clone, Default)]
pub struct Final {
    pub outcome: Option<Outcome>,
    /// A live person answered (abandonment denominator).
    pub live: bool,
    pub abandoned: bool,
    pub sip_code: Option<u16>,
    /// `human` | `machine` | `unknown`.
    pub amd: Option<String>,
    pub detail: Option<String>,
    pub agent: Option<String>,
    pub greeting_end_at: Option<i64>,
    pub bridged_at: Option<i64>,
    /// The AMD said machine, then the callee showed itself a live person (see
    /// [`Final::live_person_after_machine`]).
    pub live_person_after_machine: bool,
    /// What showed it (a key, a reply).
    pub evidence: Option<String>,
    /// The flow that ran on the answered call.
    pub flow_id: Option<String>,
    /// Attributes the call produced (a flow's contact attributes), merged over the attempt's own.
    pub attributes: Option<serde_json::Map<String, serde_json::Value>>,
    /// A disposition the call itself produced (a flow's `disposition` attribute).
    pub disposition: Option<String>,
}

impl Final {
    /// The AMD's machine verdict was wrong: a live person answered and heard no agent. The
    /// attempt counts as a live answer *and* as abandoned (the rule: "an AMD 'machine' verdict
    /// on a live person counts as abandoned too"), in every abandonment rate — campaign to date,
    /// 30-day period, rolling window — since they all sum `live` and `abandoned`.
    pub fn live_person_after_machine(&mut self, evidence: &str) {
        self.live = true;
        self.abandoned = true;
        self.live_person_after_machine = true;
        if self.evidence.is_none() {
            self.evidence = Some(evidence.to_owned());
        }
    }
}

/// What [`finish`] did to the lead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum LeadNext {
    /// Not a campaign lead (single call), or the attempt was already final.
    Nothing,
    Retry {
        at: i64,
    },
    Done,
}

/// Writes the final record (once: a second call changes nothing) and the lead's next step.
pub async fn finish(
    db: &Db,
    clock: &dyn Clock,
    id: i64,
    f: &Final,
    config: Option<&CampaignConfig>,
) -> anyhow::Result<LeadNext> {
    let now = clock.now_ms();
    let outcome = f.outcome.context("a final record needs an outcome")?;
    let mut tx = db.begin_write().await?;
    let row = sqlx::query("SELECT campaign_id, lead_id, e164, node FROM dial_attempts WHERE id = $1 AND state <> 'final'")
        .bind(id)
        .fetch_optional(tx.conn())
        .await?;
    let Some(row) = row else {
        tx.rollback().await?;
        return Ok(LeadNext::Nothing);
    };
    sqlx::query(
        "UPDATE dial_attempts SET state = 'final', outcome = $1, live = $2, abandoned = $3, sip_code = $4, amd = $5, \
         detail = $6, agent = COALESCE($7, agent), greeting_end_at = COALESCE($8, greeting_end_at), \
         bridged_at = COALESCE($9, bridged_at), ended_at = $10, live_person_after_machine = $11, \
         evidence = $12, flow_id = COALESCE($13, flow_id), disposition = COALESCE($14, disposition) WHERE id = $15",
    )
    .bind(outcome.as_str())
    .bind(f.live as i16)
    .bind(f.abandoned as i16)
    .bind(f.sip_code.map(|c| c as i64))
    .bind(f.amd.as_deref())
    .bind(f.detail.as_deref())
    .bind(f.agent.as_deref())
    .bind(f.greeting_end_at)
    .bind(f.bridged_at)
    .bind(now)
    .bind(f.live_person_after_machine as i16)
    .bind(f.evidence.as_deref())
    .bind(f.flow_id.as_deref())
    .bind(f.disposition.as_deref())
    .bind(id)
    .execute(tx.conn())
    .await?;
    if let Some(attrs) = f.attributes.as_ref().filter(|a| !a.is_empty()) {
        let old: String = sqlx::query_scalar("SELECT attributes FROM dial_attempts WHERE id = $1")
            .bind(id)
            .fetch_one(tx.conn())
            .await?;
        let mut merged: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&old).unwrap_or_default();
        merged.extend(attrs.clone());
        sqlx::query("UPDATE dial_attempts SET attributes = $1 WHERE id = $2")
            .bind(serde_json::to_string(&merged)?)
            .bind(id)
            .execute(tx.conn())
            .await?;
    }
    let e164: String = row.get("e164");
    if outcome == Outcome::Disconnected {
        sqlx::query(
            "INSERT INTO dialer_numbers (e164, retired_at, retired_reason, updated_at) VALUES ($1, $2, $3, $2) \
             ON CONFLICT (e164) DO UPDATE SET retired_at = $2, retired_reason = $3, updated_at = $2",
        )
        .bind(&e164)
        .bind(now)
        .bind(format!("disconnected (SIP {})", f.sip_code.map(|c| c.to_string()).unwrap_or_else(|| "SIT".into())))
        .execute(tx.conn())
        .await?;
    }
    let next = match (
        row.get::<Option<i64>, _>("campaign_id"),
        row.get::<Option<i64>, _>("lead_id"),
        config,
    ) {
        (Some(c), Some(l), Some(cfg)) => {
            let attempts: i64 = sqlx::query_scalar(
                "SELECT attempts FROM campaign_leads WHERE campaign_id = $1 AND lead_id = $2",
            )
            .bind(c)
            .bind(l)
            .fetch_one(tx.conn())
            .await?;
            let next = lead_next(cfg, outcome, attempts, now);
            // A disposition the call produced (a flow's) is the lead's outcome, as an agent's is.
            let lead_outcome = match &f.disposition {
                Some(d) => format!("disposition:{d}"),
                None => outcome.as_str().to_owned(),
            };
            let (state, next_at, fin) = match next {
                LeadNext::Retry { at } => ("ready", at, None),
                _ => ("done", 0, Some(lead_outcome.clone())),
            };
            sqlx::query(
                "UPDATE campaign_leads SET state = $1, next_at = $2, final_outcome = $3, last_outcome = $4, \
                 claimed_by = NULL, claimed_at = NULL, updated_at = $5 WHERE campaign_id = $6 AND lead_id = $7",
            )
            .bind(state)
            .bind(next_at)
            .bind(fin)
            .bind(&lead_outcome)
            .bind(now)
            .bind(c)
            .bind(l)
            .execute(tx.conn())
            .await?;
            next
        }
        _ => LeadNext::Nothing,
    };
    tx.commit().await?;
    Ok(next)
}

/// The lead's next step after an attempt with `outcome` (sans-IO).
pub fn lead_next(cfg: &CampaignConfig, outcome: Outcome, attempts: i64, now: i64) -> LeadNext {
    if outcome == Outcome::Disconnected {
        // Other numbers of the lead may still be good: the next claim tries them (a lead whose
        // numbers are all retired is finished there). It does not use up an attempt's wait.
        return if attempts >= cfg.compliance.max_attempts_per_lead as i64 {
            LeadNext::Done
        } else {
            LeadNext::Retry { at: now }
        };
    }
    if attempts >= cfg.compliance.max_attempts_per_lead as i64 {
        return LeadNext::Done;
    }
    match cfg.retry_ms(outcome) {
        Some(ms) => LeadNext::Retry { at: now + ms },
        None => LeadNext::Done,
    }
}

/// An agent-scheduled callback.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Callback {
    pub at: i64,
    /// `Some`: only this agent gets it; `None`: any agent.
    pub agent: Option<String>,
}

/// The agent's disposition of a connected attempt (custom codes from the campaign's
/// `dispositions`), and optionally a callback, which reopens the lead.
/// Whether the attempt's campaign takes disposition `code`: `Ok(Err(reason))` names the known
/// codes when it does not. A campaign that defines no codes, and an attempt without a campaign
/// (a single call), take any code. Lets an
/// agent's disposition be refused before after-contact work ends.
pub async fn check_disposition(
    db: &Db,
    contact_id: &str,
    code: &str,
) -> anyhow::Result<Result<(), String>> {
    let campaign_id: Option<Option<i64>> =
        sqlx::query_scalar("SELECT campaign_id FROM dial_attempts WHERE public_id = $1")
            .bind(contact_id)
            .fetch_optional(db.pool())
            .await?;
    let Some(Some(campaign_id)) = campaign_id else {
        return Ok(Ok(()));
    };
    let config = campaign::get(db, campaign_id)
        .await?
        .context("campaign vanished")?
        .config;
    if config.dispositions.is_empty() || config.dispositions.contains_key(code) {
        return Ok(Ok(()));
    }
    Ok(Err(format!(
        "unknown disposition code {code:?} for this campaign (known: {})",
        config
            .dispositions
            .keys()
            .cloned()
            .collect::<Vec<_>>()
            .join(", ")
    )))
}

pub async fn set_disposition(
    db: &Db,
    clock: &dyn Clock,
    contact_id: &str,
    code: &str,
    callback: Option<&Callback>,
) -> anyhow::Result<()> {
    let now = clock.now_ms();
    let row =
        sqlx::query("SELECT id, campaign_id, lead_id FROM dial_attempts WHERE public_id = $1")
            .bind(contact_id)
            .fetch_optional(db.pool())
            .await?
            .with_context(|| format!("no contact {contact_id}"))?;
    let (campaign_id, lead_id): (Option<i64>, Option<i64>) =
        (row.get("campaign_id"), row.get("lead_id"));
    let config = match campaign_id {
        Some(c) => Some(
            campaign::get(db, c)
                .await?
                .context("campaign vanished")?
                .config,
        ),
        None => None,
    };
    let rule = config
        .as_ref()
        .and_then(|c| c.dispositions.get(code).cloned());
    if let Some(cfg) = &config
        && callback.is_none()
        && rule.is_none()
        && !cfg.dispositions.is_empty()
    {
        anyhow::bail!(
            "unknown disposition code {code:?} (known: {:?})",
            cfg.dispositions.keys().collect::<Vec<_>>()
        );
    }
    let mut tx = db.begin_write().await?;
    sqlx::query("UPDATE dial_attempts SET disposition = $1 WHERE public_id = $2")
        .bind(code)
        .bind(contact_id)
        .execute(tx.conn())
        .await?;
    if let (Some(c), Some(l)) = (campaign_id, lead_id) {
        let (state, next_at, agent) = match (callback, &rule) {
            (Some(cb), _) => ("ready", cb.at, cb.agent.clone()),
            (None, Some(r)) if !r.final_ && r.retry_after_s.is_some() => (
                "ready",
                now + r.retry_after_s.unwrap_or(0) as i64 * 1000,
                None,
            ),
            _ => ("done", 0, None),
        };
        sqlx::query(
            "UPDATE campaign_leads SET state = $1, next_at = $2, callback_agent = $3, last_outcome = $4, \
             final_outcome = CASE WHEN $1 = 'done' THEN $4 ELSE NULL END, updated_at = $5 \
             WHERE campaign_id = $6 AND lead_id = $7 AND state IN ('done', 'ready')",
        )
        .bind(state)
        .bind(next_at)
        .bind(agent)
        .bind(format!("disposition:{code}"))
        .bind(now)
        .bind(c)
        .bind(l)
        .execute(tx.conn())
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// What [`recover`] found.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Recovery {
    /// Open attempts closed as interrupted.
    pub interrupted: u64,
    /// ... of which counted abandoned (answered, not known connected).
    pub counted_abandoned: u64,
    /// Claimed (not dialled) leads given back.
    pub released: u64,
}

/// Run at node start, before dialling: closes this node's open attempts as `interrupted` and
/// puts its claims back. `node` must be the same id the node used before the crash.
pub async fn recover(db: &Db, clock: &dyn Clock, node: &str) -> anyhow::Result<Recovery> {
    recover_where(db, clock, node, 0).await
}

/// The same for one campaign, run by the node that took the campaign's pacer over from `node`
/// after `node`'s lease expired (see [`crate::lease`]).
pub async fn recover_campaign(
    db: &Db,
    clock: &dyn Clock,
    node: &str,
    campaign_id: i64,
) -> anyhow::Result<Recovery> {
    anyhow::ensure!(campaign_id > 0, "campaign id {campaign_id}");
    recover_where(db, clock, node, campaign_id).await
}

/// `campaign_id` 0: every campaign and the single calls.
async fn recover_where(
    db: &Db,
    clock: &dyn Clock,
    node: &str,
    campaign_id: i64,
) -> anyhow::Result<Recovery> {
    let mut rec = Recovery::default();
    let open = sqlx::query(
        "SELECT id, state, campaign_id FROM dial_attempts WHERE node = $1 AND state <> 'final' \
         AND ($2 = 0 OR campaign_id = $2) ORDER BY id",
    )
    .bind(node)
    .bind(campaign_id)
    .fetch_all(db.pool())
    .await?;
    for r in open {
        let state: String = r.get("state");
        // Unanswered (dialing, ringing): not live. Answered and not connected: counted as an
        // abandoned live answer. Connected to an agent: live, not abandoned.
        let (live, abandoned) = match state.as_str() {
            "dialing" | "ringing" => (false, false),
            "connected" => (true, false),
            _ => (true, true),
        };
        let config = match r.get::<Option<i64>, _>("campaign_id") {
            Some(c) => campaign::get(db, c).await?.map(|c| c.config),
            None => None,
        };
        let f = Final {
            outcome: Some(Outcome::Interrupted),
            live,
            abandoned,
            detail: Some(format!("process stopped while {state}")),
            ..Final::default()
        };
        finish(db, clock, r.get("id"), &f, config.as_ref()).await?;
        rec.interrupted += 1;
        rec.counted_abandoned += abandoned as u64;
    }
    let mut tx = db.begin_write().await?;
    let r = sqlx::query(
        "UPDATE campaign_leads SET state = 'ready', claimed_by = NULL, claimed_at = NULL, updated_at = $1 \
         WHERE claimed_by = $2 AND state = 'claimed' AND ($3 = 0 OR campaign_id = $3)",
    )
    .bind(clock.now_ms())
    .bind(node)
    .bind(campaign_id)
    .execute(tx.conn())
    .await?;
    tx.commit().await?;
    rec.released = r.rows_affected();
    Ok(rec)
}

/// Live answers and abandoned calls of a campaign's finished attempts since `since`.
pub async fn abandon_count(db: &Db, campaign_id: i64, since: i64) -> anyhow::Result<AbandonCount> {
    let r = sqlx::query(
        "SELECT CAST(COALESCE(SUM(live), 0) AS BIGINT) AS live, CAST(COALESCE(SUM(abandoned), 0) AS BIGINT) AS ab \
         FROM dial_attempts WHERE campaign_id = $1 AND created_at >= $2 AND state = 'final'",
    )
    .bind(campaign_id)
    .bind(since)
    .fetch_one(db.pool())
    .await?;
    Ok(AbandonCount {
        live: r.get::<i64, _>("live") as u64,
        abandoned: r.get::<i64, _>("ab") as u64,
    })
}

/// The number's facts at `now`: internal DNC (as of now: entries added mid-campaign count),
/// a registry hit given by the caller, retirement, attempts in 24 h, last abandoned call.
pub async fn number_facts(
    db: &Db,
    e164: &str,
    registry_hit: Option<String>,
    now: i64,
) -> anyhow::Result<NumberFacts> {
    let internal: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM dnc_entries WHERE e164 = $1")
        .bind(e164)
        .fetch_one(db.pool())
        .await?;
    let retired: Option<String> = sqlx::query_scalar(
        "SELECT retired_reason FROM dialer_numbers WHERE e164 = $1 AND retired_at IS NOT NULL",
    )
    .bind(e164)
    .fetch_optional(db.pool())
    .await?;
    let attempts: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM dial_attempts WHERE e164 = $1 AND created_at > $2",
    )
    .bind(e164)
    .bind(now - 24 * 3_600_000)
    .fetch_one(db.pool())
    .await?;
    let last_abandoned: Option<i64> = sqlx::query_scalar(
        "SELECT MAX(ended_at) FROM dial_attempts WHERE e164 = $1 AND abandoned = 1",
    )
    .bind(e164)
    .fetch_one(db.pool())
    .await?;
    Ok(NumberFacts {
        e164: e164.to_owned(),
        dnc: if internal > 0 {
            Some("internal".into())
        } else {
            registry_hit
        },
        retired,
        attempts_last_24h: attempts as u32,
        last_abandoned_at: last_abandoned,
    })
}
