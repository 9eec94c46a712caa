//! The hopper: which leads a campaign dials next, handed out exactly once.
//!
//! `campaign_leads` holds one row per (campaign, lead). [`refill`] adds the leads of the campaign's
//! lists that it does not know yet (leads imported mid-campaign join at the next refill). [`claim`]
//! takes up to N `ready` rows whose `next_at` has come (due retries and window openings are both
//! `next_at`), highest priority first, shared between the lists by their weights, and marks them
//! `claimed` by this node inside one write transaction: on PostgreSQL with
//! `FOR UPDATE SKIP LOCKED`, so several processes never hand out the same lead; on SQLite the write
//! lane serialises claimers. A claimed lead is either dialled ([`crate::attempts::open`]),
//! released ([`release`]) or finished ([`finish`]) by its claimer; after a crash
//! [`crate::attempts::recover`] puts the claims of the node back. The campaign's pacer claims with
//! [`claim_fenced`], which is refused once another node has taken the pacer lease over.

use std::collections::BTreeMap;

use anyhow::Context;
use chrono_tz::Tz;
use foundation::{Clock, Db};
use serde::Serialize;
use sqlx::Row;

use crate::campaign::{Campaign, ListWeight};

/// One number of a claimed lead.
#[derive(Debug, Clone, Serialize)]
pub struct LeadPhone {
    pub position: i64,
    pub e164: String,
    #[serde(serialize_with = "ser_zones")]
    pub zones: Vec<Tz>,
    pub region: Option<String>,
    pub number_type: String,
}

fn ser_zones<S: serde::Serializer>(z: &[Tz], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(z.iter().map(|t| t.name()))
}

/// A lead handed to one claimer: the card an agent sees in preview, and what compliance reads.
#[derive(Debug, Clone, Serialize)]
pub struct ClaimedLead {
    pub campaign_id: i64,
    pub lead_id: i64,
    pub list_id: i64,
    pub priority: i64,
    /// Attempts already made by this campaign.
    pub attempts: u32,
    pub callback_agent: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub postal_code: Option<String>,
    pub subdivision: Option<String>,
    pub country: Option<String>,
    pub consent_type: Option<String>,
    pub attributes: serde_json::Map<String, serde_json::Value>,
    pub phones: Vec<LeadPhone>,
    /// When this claim was made: tells it from a later claim of the same lead (a preview card
    /// acts only while its own claim holds).
    #[serde(skip)]
    pub claimed_at: i64,
}

impl ClaimedLead {
    /// An attribute as text, for lead filters: the unmapped columns plus a few lead fields.
    pub fn attribute(&self, name: &str) -> Option<String> {
        match name {
            "country" => self.country.clone(),
            "subdivision" => self.subdivision.clone(),
            "postal_code" => self.postal_code.clone(),
            _ => self.attributes.get(name).map(|v| match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            }),
        }
    }

    /// ISO subdivision key such as `US-TX` for per-region windows.
    pub fn region_key(&self) -> Option<String> {
        let sub = self.subdivision.as_deref()?.trim();
        if sub.contains('-') {
            return Some(sub.to_uppercase());
        }
        Some(format!("{}-{}", self.country.as_deref().unwrap_or("US"), sub).to_uppercase())
    }

    /// Prior express written consent is on file.
    pub fn written_consent(&self) -> bool {
        self.consent_type.as_deref().is_some_and(|c| {
            let c = c.to_ascii_lowercase();
            c == "pewc" || c.contains("written")
        })
    }
}

/// Smooth weighted round robin over the lists (sans-IO): how many of N claims each list gets.
#[derive(Debug, Default, Clone)]
pub struct ListMix {
    current: BTreeMap<i64, i64>,
}

impl ListMix {
    /// The next `n` picks, as a count per list.
    pub fn quotas(&mut self, lists: &[ListWeight], n: u32) -> BTreeMap<i64, u32> {
        let total: i64 = lists.iter().map(|l| l.weight as i64).sum();
        let mut out = BTreeMap::new();
        if total == 0 {
            return out;
        }
        self.current
            .retain(|id, _| lists.iter().any(|l| l.list_id == *id));
        for _ in 0..n {
            let mut best: Option<(i64, i64)> = None;
            for l in lists {
                let c = self.current.entry(l.list_id).or_insert(0);
                *c += l.weight as i64;
                if best.is_none_or(|(_, v)| *c > v) {
                    best = Some((l.list_id, *c));
                }
            }
            let (id, _) = best.expect("non-empty");
            *self.current.get_mut(&id).expect("present") -= total;
            *out.entry(id).or_insert(0) += 1;
        }
        out
    }
}

/// Adds the campaign's leads it has not seen yet (all lists); returns how many.
pub async fn refill(db: &Db, clock: &dyn Clock, campaign: &Campaign) -> anyhow::Result<u64> {
    let now = clock.now_ms();
    let mut added = 0;
    for l in &campaign.config.lists {
        let mut tx = db.begin_write().await?;
        let r = sqlx::query(
            "INSERT INTO campaign_leads (campaign_id, lead_id, list_id, state, priority, attempts, next_at, updated_at) \
             SELECT $1, l.id, l.list_id, 'ready', l.priority, 0, 0, $2 FROM leads l \
             WHERE l.list_id = $3 AND l.state IN ('new', 'dialable') \
             AND NOT EXISTS (SELECT 1 FROM campaign_leads c WHERE c.campaign_id = $1 AND c.lead_id = l.id)",
        )
        .bind(campaign.id)
        .bind(now)
        .bind(l.list_id)
        .execute(tx.conn())
        .await?;
        tx.commit().await?;
        added += r.rows_affected();
    }
    Ok(added)
}

/// Claims up to `n` due leads for `node`, shared between the lists by weight (a list with too
/// few due leads leaves its share to the others). Same-agent callbacks are left to
/// [`claim_for_agent`].
pub async fn claim(
    db: &Db,
    clock: &dyn Clock,
    campaign: &Campaign,
    node: &str,
    n: u32,
    mix: &mut ListMix,
) -> anyhow::Result<Vec<ClaimedLead>> {
    claim_fenced(db, clock, campaign, node, None, n, mix).await
}

/// [`claim`] for the campaign's pacer: refused with [`crate::lease::Fenced`] (nothing claimed)
/// unless `node` still holds the campaign's pacer lease with `token`.
pub async fn claim_fenced(
    db: &Db,
    clock: &dyn Clock,
    campaign: &Campaign,
    node: &str,
    token: Option<i64>,
    n: u32,
    mix: &mut ListMix,
) -> anyhow::Result<Vec<ClaimedLead>> {
    if n == 0 {
        return Ok(Vec::new());
    }
    let now = clock.now_ms();
    let lists = &campaign.config.lists;
    let mut tx = db.begin_write().await?;
    if let Some(token) = token {
        crate::lease::check(tx.conn(), campaign.id, crate::lease::Fence { node, token }).await?;
    }
    let quotas = mix.quotas(lists, n);
    let mut ids = Vec::new();
    let mut short = 0u32;
    for l in lists {
        let q = quotas.get(&l.list_id).copied().unwrap_or(0);
        if q == 0 {
            continue;
        }
        let got = claim_from(
            &mut tx,
            db,
            campaign.id,
            Some(l.list_id),
            None,
            node,
            q,
            now,
            &ids,
        )
        .await?;
        short += q - got.len() as u32;
        ids.extend(got);
    }
    if short > 0 {
        for l in lists {
            if short == 0 {
                break;
            }
            let got = claim_from(
                &mut tx,
                db,
                campaign.id,
                Some(l.list_id),
                None,
                node,
                short,
                now,
                &ids,
            )
            .await?;
            short -= got.len() as u32;
            ids.extend(got);
        }
    }
    tx.commit().await?;
    load(db, campaign.id, &ids).await
}

/// Preview: the next lead for `agent`: its own due callbacks first, then any due lead.
pub async fn claim_for_agent(
    db: &Db,
    clock: &dyn Clock,
    campaign: &Campaign,
    node: &str,
    agent: &str,
) -> anyhow::Result<Option<ClaimedLead>> {
    let now = clock.now_ms();
    let mut tx = db.begin_write().await?;
    let mut ids = claim_from(
        &mut tx,
        db,
        campaign.id,
        None,
        Some(agent),
        node,
        1,
        now,
        &[],
    )
    .await?;
    if ids.is_empty() {
        ids = claim_from(&mut tx, db, campaign.id, None, None, node, 1, now, &[]).await?;
    }
    tx.commit().await?;
    Ok(load(db, campaign.id, &ids).await?.into_iter().next())
}

#[allow(clippy::too_many_arguments)]
async fn claim_from(
    tx: &mut foundation::WriteTx,
    db: &Db,
    campaign_id: i64,
    list_id: Option<i64>,
    callback_agent: Option<&str>,
    node: &str,
    n: u32,
    now: i64,
    already: &[i64],
) -> anyhow::Result<Vec<i64>> {
    let list_clause = if list_id.is_some() {
        "AND list_id = $4 "
    } else {
        "AND $4 = $4 "
    };
    let agent_clause = if callback_agent.is_some() {
        "AND callback_agent = $5 "
    } else {
        "AND callback_agent IS NULL AND $5 = $5 "
    };
    let sql = format!(
        "SELECT lead_id FROM campaign_leads WHERE campaign_id = $1 AND state = 'ready' AND next_at <= $2 \
         AND $3 = $3 {list_clause}{agent_clause}ORDER BY priority DESC, next_at, lead_id LIMIT $6{}",
        db.claim_lock_suffix()
    );
    let rows: Vec<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(campaign_id)
        .bind(now)
        .bind(node)
        .bind(list_id.unwrap_or(0))
        .bind(callback_agent.unwrap_or(""))
        .bind(n as i64 + already.len() as i64)
        .fetch_all(tx.conn())
        .await?;
    let mut got = Vec::new();
    for id in rows
        .into_iter()
        .filter(|id| !already.contains(id))
        .take(n as usize)
    {
        let r = sqlx::query(
            "UPDATE campaign_leads SET state = 'claimed', claimed_by = $1, claimed_at = $2, updated_at = $2 \
             WHERE campaign_id = $3 AND lead_id = $4 AND state = 'ready'",
        )
        .bind(node)
        .bind(now)
        .bind(campaign_id)
        .bind(id)
        .execute(tx.conn())
        .await?;
        if r.rows_affected() == 1 {
            got.push(id);
        }
    }
    Ok(got)
}

async fn load(db: &Db, campaign_id: i64, ids: &[i64]) -> anyhow::Result<Vec<ClaimedLead>> {
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let r = sqlx::query(
            "SELECT c.list_id, c.priority, c.attempts, c.callback_agent, c.claimed_at, l.first_name, l.last_name, l.email, \
             l.postal_code, l.subdivision, l.country, l.consent_type, l.attributes \
             FROM campaign_leads c JOIN leads l ON l.id = c.lead_id WHERE c.campaign_id = $1 AND c.lead_id = $2",
        )
        .bind(campaign_id)
        .bind(id)
        .fetch_one(db.pool())
        .await
        .with_context(|| format!("lead {id}"))?;
        let phones = sqlx::query(
            "SELECT position, e164, tz_candidates, region, number_type FROM lead_phones WHERE lead_id = $1 ORDER BY position",
        )
        .bind(id)
        .fetch_all(db.pool())
        .await?
        .iter()
        .map(|p| LeadPhone {
            position: p.get("position"),
            e164: p.get("e164"),
            zones: crate::compliance::parse_zones(&p.get::<String, _>("tz_candidates")),
            region: p.get("region"),
            number_type: p.get("number_type"),
        })
        .collect();
        let attributes: String = r.get("attributes");
        out.push(ClaimedLead {
            campaign_id,
            lead_id: *id,
            list_id: r.get("list_id"),
            priority: r.get("priority"),
            attempts: r.get::<i64, _>("attempts") as u32,
            callback_agent: r.get("callback_agent"),
            first_name: r.get("first_name"),
            last_name: r.get("last_name"),
            email: r.get("email"),
            postal_code: r.get("postal_code"),
            subdivision: r.get("subdivision"),
            country: r.get("country"),
            consent_type: r.get("consent_type"),
            attributes: serde_json::from_str(&attributes).unwrap_or_default(),
            phones,
            claimed_at: r.get::<Option<i64>, _>("claimed_at").unwrap_or_default(),
        });
    }
    Ok(out)
}

/// Gives a claimed lead back (not dialled): ready again from `next_at`, with the reason.
pub async fn release(
    db: &Db,
    clock: &dyn Clock,
    campaign_id: i64,
    lead_id: i64,
    node: &str,
    next_at: i64,
    reason: &str,
) -> anyhow::Result<()> {
    set_state(
        db,
        clock,
        campaign_id,
        lead_id,
        node,
        "ready",
        next_at,
        reason,
        None,
    )
    .await
}

/// Sets a claimed lead aside because it fails the campaign's filters (looked at again when the
/// configuration changes).
pub async fn set_filtered(
    db: &Db,
    clock: &dyn Clock,
    campaign_id: i64,
    lead_id: i64,
    node: &str,
    reason: &str,
) -> anyhow::Result<()> {
    set_state(
        db,
        clock,
        campaign_id,
        lead_id,
        node,
        "filtered",
        0,
        reason,
        None,
    )
    .await
}

/// Finishes a claimed lead without dialling it (e.g. every number on DNC): `done` with the
/// outcome and reason.
pub async fn finish(
    db: &Db,
    clock: &dyn Clock,
    campaign_id: i64,
    lead_id: i64,
    node: &str,
    outcome: &str,
    reason: &str,
) -> anyhow::Result<()> {
    set_state(
        db,
        clock,
        campaign_id,
        lead_id,
        node,
        "done",
        0,
        reason,
        Some(outcome),
    )
    .await
}

#[allow(clippy::too_many_arguments)]
async fn set_state(
    db: &Db,
    clock: &dyn Clock,
    campaign_id: i64,
    lead_id: i64,
    node: &str,
    state: &str,
    next_at: i64,
    reason: &str,
    outcome: Option<&str>,
) -> anyhow::Result<()> {
    let mut tx = db.begin_write().await?;
    let r = sqlx::query(
        "UPDATE campaign_leads SET state = $1, next_at = $2, last_reason = $3, final_outcome = $4, \
         last_outcome = COALESCE($4, last_outcome), claimed_by = NULL, claimed_at = NULL, updated_at = $5 \
         WHERE campaign_id = $6 AND lead_id = $7 AND state = 'claimed' AND claimed_by = $8",
    )
    .bind(state)
    .bind(next_at)
    .bind(reason)
    .bind(outcome)
    .bind(clock.now_ms())
    .bind(campaign_id)
    .bind(lead_id)
    .bind(node)
    .execute(tx.conn())
    .await?;
    anyhow::ensure!(
        r.rows_affected() == 1,
        "lead {lead_id} is not claimed by {node}"
    );
    tx.commit().await?;
    Ok(())
}

/// Leads per hopper state for a campaign.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct HopperCounts {
    pub ready: i64,
    pub due: i64,
    pub claimed: i64,
    pub dialing: i64,
    pub filtered: i64,
    pub done: i64,
}

pub async fn counts(db: &Db, campaign_id: i64, now: i64) -> anyhow::Result<HopperCounts> {
    let rows = sqlx::query(
        "SELECT state, COUNT(*) AS n, SUM(CASE WHEN next_at <= $1 THEN 1 ELSE 0 END) AS due \
         FROM campaign_leads WHERE campaign_id = $2 GROUP BY state",
    )
    .bind(now)
    .bind(campaign_id)
    .fetch_all(db.pool())
    .await?;
    let mut c = HopperCounts::default();
    for r in rows {
        let n: i64 = r.get("n");
        match r.get::<String, _>("state").as_str() {
            "ready" => {
                c.ready = n;
                c.due = r.get("due");
            }
            "claimed" => c.claimed = n,
            "dialing" => c.dialing = n,
            "filtered" => c.filtered = n,
            _ => c.done = n,
        }
    }
    Ok(c)
}
