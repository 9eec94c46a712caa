//! The pacer lease: one node paces a running campaign at a time, across every node on one
//! database.
//!
//! A row of `campaign_pacers` per campaign names the holder, a fencing token and when the lease
//! expires. A runner paces a campaign only while [`acquire`] (called every tick: it also renews)
//! says it holds the lease. The lease is free when it has no row, was [`release`]d or has expired;
//! taking it from another node increments the token. The writes that depend on being the pacer
//! (hopper claims, opening attempts) check the token inside their own transaction ([`check`]) and
//! are refused with [`Fenced`] once a newer token exists, so a paused or partitioned former holder
//! cannot dial after a takeover. On PostgreSQL the check is a row-locking no-op update of the lease
//! row: a takeover waits for a fenced write in progress to commit, then sees what it wrote.
//!
//! A takeover from an expired holder closes what that holder left in the campaign (its open
//! attempts become `interrupted`, its claimed leads go back to the hopper, as
//! [`attempts::recover`] does at a restart) and records who took over from whom in
//! `campaign_pacer_takeovers` and the audit log. The decision itself is sans-IO ([`decide`]).
//!
//! That recovery survives the taker: [`claim`] registers it in `campaign_pacer_recoveries`
//! (keyed to the dead holder's node and fencing token) in the same transaction that takes the
//! lease, and flags the lease row `recovering`; [`recover_pending`] carries out every pending
//! recovery of the campaign and marks each done. [`acquire`] does both, so a taker that dies
//! between them (or in the middle of the recovery) leaves the work pending, and the next holder —
//! a node taking over from the dead taker, or the taker itself restarted under its name — redoes
//! it. The work is idempotent: an attempt is finished once, a lead given back once.

use std::time::Duration;

use foundation::{Clock, Db};
use serde::Serialize;
use sqlx::Row;

use crate::attempts::{self, Recovery};

/// The lease row as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LeaseRow {
    pub campaign_id: i64,
    /// The holder; empty once released.
    pub node: String,
    pub token: i64,
    pub heartbeat_at: i64,
    pub expires_at: i64,
    /// A takeover's recovery is registered and not yet carried out.
    pub recovering: bool,
}

/// What a node asking for the lease at `now` does (sans-IO).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// No row yet: create it with token 1.
    Create,
    /// This node holds it (even if it lapsed and nobody took it): extend it, same token.
    Renew { token: i64 },
    /// Free (released or expired): take it with `token + 1`. `from` is the expired holder whose
    /// leftovers must be closed (`None` when it was released cleanly).
    Take {
        token: i64,
        from: Option<String>,
        expired_at: i64,
    },
    /// Another node holds it until `expires_at`.
    Busy { holder: String, expires_at: i64 },
}

/// Decides what `me` does with the lease `row` at `now`.
pub fn decide(row: Option<&LeaseRow>, me: &str, now: i64) -> Decision {
    let Some(r) = row else {
        return Decision::Create;
    };
    if r.node == me {
        return Decision::Renew { token: r.token };
    }
    if r.node.is_empty() || r.expires_at < now {
        return Decision::Take {
            token: r.token,
            from: (!r.node.is_empty()).then(|| r.node.clone()),
            expired_at: r.expires_at,
        };
    }
    Decision::Busy {
        holder: r.node.clone(),
        expires_at: r.expires_at,
    }
}

/// A takeover from an expired holder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Takeover {
    pub from: String,
    /// When the old lease had expired.
    pub expired_at: i64,
    /// What was closed of the old holder's work in this campaign.
    pub recovery: Recovery,
    /// Earlier takers' unfinished recoveries this acquisition carried out (their expired
    /// holders' nodes, oldest first).
    pub resumed: Vec<String>,
}

/// A held lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Lease {
    pub campaign_id: i64,
    pub token: i64,
    pub expires_at: i64,
    /// Set on the call that took the lease from an expired holder.
    pub takeover: Option<Takeover>,
}

/// The answer of [`acquire`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Acquired {
    Held(Lease),
    Busy { holder: String, expires_at: i64 },
}

/// A pacer-only write refused because `node` does not hold `token` for the campaign any more.
#[derive(Debug, Clone, thiserror::Error)]
#[error("node {node} is not the pacer of campaign {campaign_id} with token {token} any more")]
pub struct Fenced {
    pub campaign_id: i64,
    pub node: String,
    pub token: i64,
}

/// The proof a pacer-only write carries.
#[derive(Debug, Clone, Copy)]
pub struct Fence<'a> {
    pub node: &'a str,
    pub token: i64,
}

/// The lease row of a campaign.
pub async fn get(db: &Db, campaign_id: i64) -> anyhow::Result<Option<LeaseRow>> {
    let r = sqlx::query(
        "SELECT node, token, heartbeat_at, expires_at, recovering FROM campaign_pacers WHERE campaign_id = $1",
    )
    .bind(campaign_id)
    .fetch_optional(db.pool())
    .await?;
    Ok(r.map(|r| LeaseRow {
        campaign_id,
        node: r.get("node"),
        token: r.get("token"),
        heartbeat_at: r.get("heartbeat_at"),
        expires_at: r.get("expires_at"),
        recovering: r.get::<i16, _>("recovering") != 0,
    }))
}

/// Takes, renews or fails to get the pacer lease of `campaign_id` for `node` for `ttl` from now.
/// A takeover from an expired holder closes that holder's leftovers in the campaign before
/// returning, and so does any holder that finds an earlier taker's recovery unfinished (see the
/// module doc): [`claim`], then [`recover_pending`] when the lease row says `recovering`.
pub async fn acquire(
    db: &Db,
    clock: &dyn Clock,
    campaign_id: i64,
    node: &str,
    ttl: Duration,
) -> anyhow::Result<Acquired> {
    let (acquired, pending) = claim(db, clock, campaign_id, node, ttl).await?;
    let Acquired::Held(mut lease) = acquired else {
        return Ok(acquired);
    };
    if let Some(taken) = pending {
        let mut done = recover_pending(db, clock, campaign_id, node, lease.token).await?;
        // The takeover this call made is reported with its recovery, earlier takers'
        // unfinished ones as resumed (only those when this node renewed, e.g. restarted).
        let mine = done
            .iter()
            .position(|t| taken.as_ref().is_some_and(|(from, _)| t.from == *from));
        if !done.is_empty() {
            let mut t = done.remove(mine.unwrap_or(0));
            t.resumed = done.into_iter().map(|t| t.from).collect();
            lease.takeover = Some(t);
        }
    }
    Ok(Acquired::Held(lease))
}

/// The lease step of [`acquire`] alone: takes, renews or fails to get the lease. Taking it from
/// an expired holder registers that holder's recovery as pending (same transaction) without
/// carrying it out. The second value is `Some` when recovery is pending for the campaign after
/// this call (holding `Some((expired holder, its token))` when this call took over from one):
/// the caller must run [`recover_pending`] before pacing. A node that stops between the two
/// leaves the work to the next holder.
pub async fn claim(
    db: &Db,
    clock: &dyn Clock,
    campaign_id: i64,
    node: &str,
    ttl: Duration,
) -> anyhow::Result<(Acquired, Option<Option<(String, i64)>>)> {
    anyhow::ensure!(!node.is_empty(), "a pacer needs a node name");
    // A lost race (another node created or took the row between our read and our write) is
    // answered by reading again: at most a few rounds.
    for _ in 0..3 {
        let now = clock.now_ms();
        let expires_at = now + ttl.as_millis() as i64;
        let row = get(db, campaign_id).await?;
        let decision = decide(row.as_ref(), node, now);
        let mut tx = db.begin_write().await?;
        let won = match &decision {
            Decision::Busy { holder, expires_at } => {
                tx.rollback().await?;
                return Ok((
                    Acquired::Busy {
                        holder: holder.clone(),
                        expires_at: *expires_at,
                    },
                    None,
                ));
            }
            Decision::Create => sqlx::query(
                "INSERT INTO campaign_pacers (campaign_id, node, token, acquired_at, heartbeat_at, expires_at) \
                 VALUES ($1, $2, 1, $3, $3, $4) ON CONFLICT (campaign_id) DO NOTHING",
            )
            .bind(campaign_id)
            .bind(node)
            .bind(now)
            .bind(expires_at)
            .execute(tx.conn())
            .await?
            .rows_affected()
                == 1,
            Decision::Renew { token } | Decision::Take { token, .. } => {
                let prev = row.as_ref().map(|r| r.node.clone()).unwrap_or_default();
                let new_token = if matches!(decision, Decision::Renew { .. }) {
                    *token
                } else {
                    token + 1
                };
                // Compare-and-set on the row as read: the holder and token unchanged, and still
                // ours or free. A concurrent taker that committed first makes this match nothing.
                sqlx::query(
                    "UPDATE campaign_pacers SET node = $1, token = $2, heartbeat_at = $3, expires_at = $4, \
                     acquired_at = CASE WHEN node = $1 THEN acquired_at ELSE $3 END \
                     WHERE campaign_id = $5 AND token = $6 AND node = $7 \
                     AND (node = $1 OR node = '' OR expires_at < $3)",
                )
                .bind(node)
                .bind(new_token)
                .bind(now)
                .bind(expires_at)
                .bind(campaign_id)
                .bind(token)
                .bind(&prev)
                .execute(tx.conn())
                .await?
                .rows_affected()
                    == 1
            }
        };
        if !won {
            tx.commit().await?;
            continue;
        }
        let token = match &decision {
            Decision::Create => 1,
            Decision::Renew { token } => *token,
            Decision::Take { token, .. } => token + 1,
            Decision::Busy { .. } => unreachable!("returned above"),
        };
        // Taking over from an expired holder: its recovery is owed from now on, by whoever
        // holds the lease, until carried out.
        let taken = match &decision {
            Decision::Take {
                from: Some(from),
                token: from_token,
                expired_at,
            } => {
                sqlx::query(
                    "INSERT INTO campaign_pacer_recoveries (campaign_id, from_node, from_token, expired_at, \
                     created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6) \
                     ON CONFLICT (campaign_id, from_node, from_token) DO NOTHING",
                )
                .bind(campaign_id)
                .bind(from)
                .bind(from_token)
                .bind(expired_at)
                .bind(node)
                .bind(now)
                .execute(tx.conn())
                .await?;
                sqlx::query("UPDATE campaign_pacers SET recovering = 1 WHERE campaign_id = $1")
                    .bind(campaign_id)
                    .execute(tx.conn())
                    .await?;
                Some((from.clone(), *from_token))
            }
            _ => None,
        };
        tx.commit().await?;
        let pending =
            (taken.is_some() || row.as_ref().is_some_and(|r| r.recovering)).then_some(taken);
        return Ok((
            Acquired::Held(Lease {
                campaign_id,
                token,
                expires_at,
                takeover: None,
            }),
            pending,
        ));
    }
    let row = get(db, campaign_id).await?;
    Ok((
        Acquired::Busy {
            holder: row.as_ref().map(|r| r.node.clone()).unwrap_or_default(),
            expires_at: row.map(|r| r.expires_at).unwrap_or(0),
        },
        None,
    ))
}

/// Carries out every pending takeover recovery of the campaign as the holder `node` with
/// `token` (oldest first), records each takeover, and clears the lease row's `recovering` flag
/// once none is left. Stops without doing anything when `node` no longer holds `token` (the
/// newer holder owes the work). Returns the recoveries carried out.
pub async fn recover_pending(
    db: &Db,
    clock: &dyn Clock,
    campaign_id: i64,
    node: &str,
    token: i64,
) -> anyhow::Result<Vec<Takeover>> {
    let mut done = Vec::new();
    let pending = sqlx::query(
        "SELECT id, from_node, from_token, expired_at FROM campaign_pacer_recoveries \
         WHERE campaign_id = $1 AND done_at IS NULL ORDER BY id",
    )
    .bind(campaign_id)
    .fetch_all(db.pool())
    .await?;
    for r in pending {
        let still = get(db, campaign_id).await?;
        if !still.is_some_and(|l| l.node == node && l.token == token) {
            return Ok(done);
        }
        let (id, from): (i64, String) = (r.get("id"), r.get("from_node"));
        let expired_at: i64 = r.get("expired_at");
        let recovery = attempts::recover_campaign(db, clock, &from, campaign_id).await?;
        if record_takeover(
            db,
            clock,
            campaign_id,
            node,
            &from,
            token,
            expired_at,
            id,
            &recovery,
        )
        .await?
        {
            done.push(Takeover {
                from,
                expired_at,
                recovery,
                resumed: Vec::new(),
            });
        }
    }
    let mut tx = db.begin_write().await?;
    sqlx::query(
        "UPDATE campaign_pacers SET recovering = 0 WHERE campaign_id = $1 AND node = $2 AND token = $3 \
         AND NOT EXISTS (SELECT 1 FROM campaign_pacer_recoveries WHERE campaign_id = $1 AND done_at IS NULL)",
    )
    .bind(campaign_id)
    .bind(node)
    .bind(token)
    .execute(tx.conn())
    .await?;
    tx.commit().await?;
    Ok(done)
}

/// Marks recovery `recovery_id` done and records the takeover (once: false when another holder
/// marked it first).
#[allow(clippy::too_many_arguments)]
async fn record_takeover(
    db: &Db,
    clock: &dyn Clock,
    campaign_id: i64,
    node: &str,
    from: &str,
    token: i64,
    expired_at: i64,
    recovery_id: i64,
    recovery: &Recovery,
) -> anyhow::Result<bool> {
    let recovery = recovery.clone();
    let now = clock.now_ms();
    let mut tx = db.begin_write().await?;
    let marked = sqlx::query(
        "UPDATE campaign_pacer_recoveries SET done_by = $1, done_at = $2 WHERE id = $3 AND done_at IS NULL",
    )
    .bind(node)
    .bind(now)
    .bind(recovery_id)
    .execute(tx.conn())
    .await?
    .rows_affected()
        == 1;
    if !marked {
        tx.rollback().await?;
        return Ok(false);
    }
    sqlx::query(
        "INSERT INTO campaign_pacer_takeovers (campaign_id, from_node, to_node, token, expired_at, at, \
         interrupted, counted_abandoned, released) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(campaign_id)
    .bind(from)
    .bind(node)
    .bind(token)
    .bind(expired_at)
    .bind(now)
    .bind(recovery.interrupted as i64)
    .bind(recovery.counted_abandoned as i64)
    .bind(recovery.released as i64)
    .execute(tx.conn())
    .await?;
    let subject = format!("campaign:{campaign_id}");
    foundation::audit::record(
        tx.conn(),
        now,
        &foundation::audit::Entry {
            actor: &format!("node:{node}"),
            action: "dialer.pacer_takeover",
            subject: Some(&subject),
            result: "ok",
            detail: Some(serde_json::json!({
                "from": from,
                "to": node,
                "token": token,
                "expired_at": expired_at,
                "interrupted": recovery.interrupted,
                "counted_abandoned": recovery.counted_abandoned,
                "released": recovery.released,
            })),
        },
    )
    .await?;
    tx.commit().await?;
    tracing::warn!(
        campaign = campaign_id,
        from,
        to = node,
        token,
        ?recovery,
        "took over the pacer of an expired node"
    );
    Ok(true)
}

/// Gives the lease up (campaign paused or completed, runner stopping): free at once for any
/// node, token kept. Does nothing if `node` no longer holds `token`.
pub async fn release(
    db: &Db,
    clock: &dyn Clock,
    campaign_id: i64,
    node: &str,
    token: i64,
) -> anyhow::Result<bool> {
    let mut tx = db.begin_write().await?;
    let r = sqlx::query(
        "UPDATE campaign_pacers SET node = '', expires_at = 0, heartbeat_at = $1 \
         WHERE campaign_id = $2 AND node = $3 AND token = $4",
    )
    .bind(clock.now_ms())
    .bind(campaign_id)
    .bind(node)
    .bind(token)
    .execute(tx.conn())
    .await?;
    tx.commit().await?;
    Ok(r.rows_affected() == 1)
}

/// Releases every lease `node` holds (a runner stopping); returns how many.
pub async fn release_node(db: &Db, clock: &dyn Clock, node: &str) -> anyhow::Result<u64> {
    let mut tx = db.begin_write().await?;
    let r = sqlx::query(
        "UPDATE campaign_pacers SET node = '', expires_at = 0, heartbeat_at = $1 WHERE node = $2 AND $2 <> ''",
    )
    .bind(clock.now_ms())
    .bind(node)
    .execute(tx.conn())
    .await?;
    tx.commit().await?;
    Ok(r.rows_affected())
}

/// Inside a write transaction, before a pacer-only write: fails with [`Fenced`] unless
/// `fence.node` still holds `fence.token` for the campaign. On PostgreSQL it also locks the lease
/// row until the transaction ends, so a takeover waits for this write and then sees it.
pub async fn check(
    conn: &mut sqlx::AnyConnection,
    campaign_id: i64,
    fence: Fence<'_>,
) -> anyhow::Result<()> {
    let r = sqlx::query(
        "UPDATE campaign_pacers SET heartbeat_at = heartbeat_at \
         WHERE campaign_id = $1 AND node = $2 AND token = $3",
    )
    .bind(campaign_id)
    .bind(fence.node)
    .bind(fence.token)
    .execute(conn)
    .await?;
    if r.rows_affected() != 1 {
        return Err(Fenced {
            campaign_id,
            node: fence.node.to_owned(),
            token: fence.token,
        }
        .into());
    }
    Ok(())
}

/// One recorded takeover.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TakeoverRecord {
    pub campaign_id: i64,
    pub from_node: String,
    pub to_node: String,
    pub token: i64,
    pub expired_at: i64,
    pub at: i64,
    pub interrupted: i64,
    pub counted_abandoned: i64,
    pub released: i64,
}

/// The takeovers of a campaign, oldest first.
pub async fn takeovers(db: &Db, campaign_id: i64) -> anyhow::Result<Vec<TakeoverRecord>> {
    let rows = sqlx::query(
        "SELECT from_node, to_node, token, expired_at, at, interrupted, counted_abandoned, released \
         FROM campaign_pacer_takeovers WHERE campaign_id = $1 ORDER BY id",
    )
    .bind(campaign_id)
    .fetch_all(db.pool())
    .await?;
    Ok(rows
        .iter()
        .map(|r| TakeoverRecord {
            campaign_id,
            from_node: r.get("from_node"),
            to_node: r.get("to_node"),
            token: r.get("token"),
            expired_at: r.get("expired_at"),
            at: r.get("at"),
            interrupted: r.get("interrupted"),
            counted_abandoned: r.get("counted_abandoned"),
            released: r.get("released"),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(node: &str, token: i64, expires_at: i64) -> LeaseRow {
        LeaseRow {
            campaign_id: 1,
            node: node.into(),
            token,
            heartbeat_at: 0,
            expires_at,
            recovering: false,
        }
    }

    #[test]
    fn decisions() {
        assert_eq!(decide(None, "a", 10), Decision::Create);
        assert_eq!(
            decide(Some(&row("a", 3, 5)), "a", 10),
            Decision::Renew { token: 3 }
        );
        assert_eq!(
            decide(Some(&row("b", 3, 50)), "a", 10),
            Decision::Busy {
                holder: "b".into(),
                expires_at: 50
            }
        );
        assert_eq!(
            decide(Some(&row("b", 3, 9)), "a", 10),
            Decision::Take {
                token: 3,
                from: Some("b".into()),
                expired_at: 9
            }
        );
        assert_eq!(
            decide(Some(&row("", 4, 50)), "a", 10),
            Decision::Take {
                token: 4,
                from: None,
                expired_at: 50
            }
        );
    }
}
