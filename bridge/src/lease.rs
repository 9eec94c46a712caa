//! Leases: claim a number with data, look it up (optionally consuming it), release it, reap.
//!
//! The current lease of a number lives on its `bridge_numbers` row; `bridge_leases` keeps one
//! history row per lease, closed with its end. `free_since` on a number is when it became free (for
//! a leased number: when the lease will expire), so "claimable" is one comparison,
//! `free_since + cooldown <= now`, which covers released, consumed *and* expired-but-not-reaped
//! numbers, and ordering by it reuses the least recently released number first.
//!
//! Every function does all its work in one write transaction, audit record included, and reads
//! the clock only once that transaction has begun: a request that queued for the write lock must
//! not act on the time it arrived (a number freed meanwhile would look as if still cooling down).

use std::time::Duration;

use foundation::{Clock, Db, WriteTx, audit, ids};
use serde::Serialize;
use serde_json::Value;

use crate::error::{BridgeError, Result};

pub const MAX_DATA_BYTES: usize = 32 * 1024;
const MAX_TTL_S: u64 = 86_400;
const REAP_BATCH: i64 = 500;

/// What a lessee asks for.
#[derive(Debug, Clone)]
pub struct LeaseRequest {
    pub pool: String,
    /// A JSON object: the contact's data carried across.
    pub data: Value,
    /// When set, a lookup that names an ANI must name this one.
    pub ani: Option<String>,
    /// Overrides the pool's lease TTL.
    pub ttl_s: Option<u64>,
    /// Repeating a request with the same key (per pool) returns the same lease.
    pub idempotency_key: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Lease {
    pub lease_id: String,
    pub dnis: String,
    pub pool: String,
    pub leased_at_ms: i64,
    pub expires_at_ms: i64,
    /// True when an idempotent repeat returned an existing lease.
    pub replayed: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Found {
    pub lease_id: String,
    pub dnis: String,
    pub pool: String,
    pub data: Value,
    pub ani: Option<String>,
    pub leased_at_ms: i64,
    /// True when this lookup consumed the lease (or a retry found it consumed, in cooldown).
    pub consumed: bool,
}

fn validate(req: &LeaseRequest) -> Result<String> {
    if !req.data.is_object() {
        return Err(BridgeError::Invalid("data must be a JSON object".into()));
    }
    let text = req.data.to_string();
    if text.len() > MAX_DATA_BYTES {
        return Err(BridgeError::DataTooLarge(text.len()));
    }
    if let Some(ttl) = req.ttl_s {
        if !(1..=MAX_TTL_S).contains(&ttl) {
            return Err(BridgeError::Invalid(format!(
                "ttl_s must be between 1 and {MAX_TTL_S}"
            )));
        }
    }
    if req
        .ani
        .as_ref()
        .is_some_and(|a| a.is_empty() || a.len() > 32)
    {
        return Err(BridgeError::Invalid("ani must be 1-32 characters".into()));
    }
    if req
        .idempotency_key
        .as_ref()
        .is_some_and(|k| k.is_empty() || k.len() > 128)
    {
        return Err(BridgeError::Invalid(
            "idempotency_key must be 1-128 characters".into(),
        ));
    }
    Ok(text)
}

/// Compares calling numbers by their digits (`+1 312-555-0100` = `+13125550100`).
fn same_ani(a: &str, b: &str) -> bool {
    let digits = |s: &str| s.chars().filter(char::is_ascii_digit).collect::<String>();
    let (a, b) = (digits(a), digits(b));
    !a.is_empty() && a == b
}

/// Claims the least recently released available number of the pool for `req`.
///
/// With a zero cooldown a number that is not leased is free whatever its `free_since`: another
/// node may have freed it at a `now` a little later than ours (our statement ran after a stall),
/// and that must not make a pool with idle numbers answer "exhausted".
pub async fn lease(
    db: &Db,
    clock: &dyn Clock,
    actor: &str,
    scope: Option<&str>,
    req: &LeaseRequest,
) -> Result<Lease> {
    let data = validate(req)?;
    if scope.is_some_and(|s| s != req.pool) {
        return Err(BridgeError::Forbidden(format!(
            "this key may not lease from pool {:?}",
            req.pool
        )));
    }
    // One retry: on PostgreSQL two concurrent requests with one idempotency key both miss the
    // lookup and one insert fails on the unique key; the retry then finds the winner's lease.
    let outcome = match try_lease(db, clock, actor, req, &data).await {
        Err(BridgeError::Internal(e)) if Db::is_unique_violation(&e) => {
            try_lease(db, clock, actor, req, &data).await
        }
        other => other,
    };
    let result = match &outcome {
        Ok(_) => "ok",
        Err(BridgeError::PoolExhausted(_)) => "exhausted",
        Err(_) => "error",
    };
    metrics::counter!("dialbridge_bridge_leases_total", "pool" => req.pool.clone(), "result" => result).increment(1);
    outcome
}

async fn try_lease(
    db: &Db,
    clock: &dyn Clock,
    actor: &str,
    req: &LeaseRequest,
    data: &str,
) -> Result<Lease> {
    let mut tx = db.begin_write().await?;
    let now_ms = clock.now_ms();
    let pool: Option<(i64, i64, i64)> =
        sqlx::query_as("SELECT id, lease_ttl_ms, cooldown_ms FROM bridge_pools WHERE name = $1")
            .bind(&req.pool)
            .fetch_optional(tx.conn())
            .await?;
    let (pool_id, ttl_ms, cooldown_ms) =
        pool.ok_or_else(|| BridgeError::UnknownPool(req.pool.clone()))?;

    if let Some(key) = &req.idempotency_key {
        let existing: Option<(String, String, i64, i64)> = sqlx::query_as(
            "SELECT lease_id, dnis, leased_at, expires_at FROM bridge_leases WHERE pool_id = $1 AND idempotency_key = $2",
        )
        .bind(pool_id)
        .bind(key)
        .fetch_optional(tx.conn())
        .await?;
        if let Some((lease_id, dnis, leased_at_ms, expires_at_ms)) = existing {
            tx.rollback().await?;
            return Ok(Lease {
                lease_id,
                dnis,
                pool: req.pool.clone(),
                leased_at_ms,
                expires_at_ms,
                replayed: true,
            });
        }
    }

    let candidate: Option<(i64, String, String, Option<String>, Option<i64>)> =
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT id, dnis, state, lease_id, expires_at FROM bridge_numbers \
         WHERE pool_id = $1 AND removed = 0 \
           AND (free_since + $2 <= $3 OR ($2 = 0 AND state <> 'leased')) \
         ORDER BY free_since, id LIMIT 1{}",
            db.claim_lock_suffix()
        )))
        .bind(pool_id)
        .bind(cooldown_ms)
        .bind(now_ms)
        .fetch_optional(tx.conn())
        .await?;
    let Some((number_id, dnis, state, old_lease, _)) = candidate else {
        audit::record(
            tx.conn(),
            now_ms,
            &audit::Entry {
                actor,
                action: "bridge.lease",
                subject: Some(&req.pool),
                result: "pool_exhausted",
                detail: None,
            },
        )
        .await?;
        tx.commit().await?;
        return Err(BridgeError::PoolExhausted(req.pool.clone()));
    };
    if state == "leased" {
        // Expired, and the reaper has not been by yet: close that lease first.
        if let Some(old) = &old_lease {
            close_lease(&mut tx, now_ms, old, "expired").await?;
            audit::record(
                tx.conn(),
                now_ms,
                &audit::Entry {
                    actor: "system",
                    action: "bridge.expire",
                    subject: Some(old),
                    result: "ok",
                    detail: Some(serde_json::json!({"dnis": dnis})),
                },
            )
            .await?;
        }
    }

    let ttl_ms = req.ttl_s.map(|s| (s * 1000) as i64).unwrap_or(ttl_ms);
    let expires_at_ms = now_ms + ttl_ms;
    let lease_id = ids::public_id("lease", now_ms);
    sqlx::query(
        "UPDATE bridge_numbers SET state = 'leased', lease_id = $1, data = $2, ani = $3, \
         leased_at = $4, expires_at = $5, free_since = $5 WHERE id = $6",
    )
    .bind(&lease_id)
    .bind(data)
    .bind(&req.ani)
    .bind(now_ms)
    .bind(expires_at_ms)
    .bind(number_id)
    .execute(tx.conn())
    .await?;
    sqlx::query(
        "INSERT INTO bridge_leases (lease_id, pool_id, pool_name, number_id, dnis, ani, idempotency_key, \
         lessee, leased_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(&lease_id)
    .bind(pool_id)
    .bind(&req.pool)
    .bind(number_id)
    .bind(&dnis)
    .bind(&req.ani)
    .bind(&req.idempotency_key)
    .bind(actor)
    .bind(now_ms)
    .bind(expires_at_ms)
    .execute(tx.conn())
    .await?;
    audit::record(
        tx.conn(),
        now_ms,
        &audit::Entry {
            actor,
            action: "bridge.lease",
            subject: Some(&lease_id),
            result: "ok",
            detail: Some(serde_json::json!({"pool": req.pool, "dnis": dnis})),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(Lease {
        lease_id,
        dnis,
        pool: req.pool.clone(),
        leased_at_ms: now_ms,
        expires_at_ms,
        replayed: false,
    })
}

/// Closes an open lease record. An already expired lease is closed as `expired` at its expiry
/// time whatever the reason given.
async fn close_lease(tx: &mut WriteTx, now_ms: i64, lease_id: &str, reason: &str) -> Result<u64> {
    Ok(sqlx::query(
        "UPDATE bridge_leases SET \
           ended_at = CASE WHEN expires_at <= $1 THEN expires_at ELSE $1 END, \
           end_reason = CASE WHEN expires_at <= $1 THEN 'expired' ELSE $2 END \
         WHERE lease_id = $3 AND ended_at IS NULL",
    )
    .bind(now_ms)
    .bind(reason)
    .bind(lease_id)
    .execute(tx.conn())
    .await?
    .rows_affected())
}

/// Closes every open lease of a pool (pool deleted) or of one number (number removed).
pub(crate) async fn end_open_leases(
    tx: &mut WriteTx,
    now_ms: i64,
    pool_id: i64,
    number_id: Option<i64>,
    reason: &str,
) -> Result<u64> {
    let open: Vec<String> = sqlx::query_scalar(
        "SELECT lease_id FROM bridge_leases WHERE ended_at IS NULL AND pool_id = $1 AND ($2 IS NULL OR number_id = $2)",
    )
    .bind(pool_id)
    .bind(number_id)
    .fetch_all(tx.conn())
    .await?;
    for lease_id in &open {
        close_lease(tx, now_ms, lease_id, reason).await?;
    }
    Ok(open.len() as u64)
}

type NumberRow = (
    i64,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<i64>,
    i64,
    i64,
    String,
);

/// Looks up the data leased on `dnis`. With `consume`, the lease ends in the same step: no later
/// lessee's call can receive this data, and a retried lookup during the cooldown gets it again.
pub async fn lookup(
    db: &Db,
    clock: &dyn Clock,
    actor: &str,
    scope: Option<&str>,
    dnis: &str,
    ani: Option<&str>,
    consume: bool,
) -> Result<Found> {
    let mut tx = db.begin_write().await?;
    let now_ms = clock.now_ms();
    let row: Option<NumberRow> = sqlx::query_as(
        "SELECT n.id, n.state, n.lease_id, n.data, n.ani, n.leased_at, n.expires_at, n.free_since, \
         p.cooldown_ms, p.name FROM bridge_numbers n JOIN bridge_pools p ON p.id = n.pool_id WHERE n.dnis = $1",
    )
    .bind(dnis)
    .fetch_optional(tx.conn())
    .await?;
    let outcome = decide(&mut tx, now_ms, scope, dnis, ani, consume, row).await?;
    let (result, subject) = match &outcome {
        Ok(f) if f.consumed && consume => ("consumed", f.lease_id.as_str()),
        Ok(f) => ("found", f.lease_id.as_str()),
        Err(Miss::Expired) => ("expired", dnis),
        Err(Miss::Unknown(why)) => (*why, dnis),
    };
    audit::record(
        tx.conn(),
        now_ms,
        &audit::Entry {
            actor,
            action: "bridge.lookup",
            subject: Some(subject),
            result,
            detail: Some(serde_json::json!({"dnis": dnis, "ani": ani, "consume": consume})),
        },
    )
    .await?;
    tx.commit().await?;
    outcome.map_err(|miss| match miss {
        Miss::Expired => BridgeError::Expired,
        Miss::Unknown(_) => BridgeError::Unknown,
    })
}

/// Why a lookup found nothing. Every `Unknown` answers the same to the caller (a stranger learns
/// nothing); the reason goes to the audit log.
enum Miss {
    Expired,
    /// `unknown`, `ani_mismatch` or `out_of_scope`.
    Unknown(&'static str),
}

async fn decide(
    tx: &mut WriteTx,
    now_ms: i64,
    scope: Option<&str>,
    dnis: &str,
    ani: Option<&str>,
    consume: bool,
    row: Option<NumberRow>,
) -> Result<std::result::Result<Found, Miss>> {
    let Some((
        number_id,
        state,
        lease_id,
        data,
        stored_ani,
        leased_at,
        expires_at,
        free_since,
        cooldown_ms,
        pool,
    )) = row
    else {
        return Ok(Err(Miss::Unknown("unknown")));
    };
    if scope.is_some_and(|s| s != pool) {
        return Ok(Err(Miss::Unknown("out_of_scope")));
    }
    let ani_ok = match (&stored_ani, ani) {
        (Some(stored), Some(given)) => same_ani(stored, given),
        _ => true,
    };
    let found = |consumed: bool| -> Result<std::result::Result<Found, Miss>> {
        Ok(Ok(Found {
            lease_id: lease_id.clone().unwrap_or_default(),
            dnis: dnis.to_owned(),
            pool: pool.clone(),
            data: serde_json::from_str(data.as_deref().unwrap_or("{}"))
                .map_err(anyhow::Error::from)?,
            ani: stored_ani.clone(),
            leased_at_ms: leased_at.unwrap_or_default(),
            consumed,
        }))
    };
    match state.as_str() {
        "leased" if expires_at.is_some_and(|e| e > now_ms) => {
            if !ani_ok {
                return Ok(Err(Miss::Unknown("ani_mismatch")));
            }
            if consume {
                let lease_id = lease_id.as_deref().unwrap_or_default();
                sqlx::query(
                    "UPDATE bridge_numbers SET state = 'consumed', free_since = $1 \
                     WHERE id = $2 AND lease_id = $3 AND state = 'leased'",
                )
                .bind(now_ms)
                .bind(number_id)
                .bind(lease_id)
                .execute(tx.conn())
                .await?;
                close_lease(tx, now_ms, lease_id, "consumed").await?;
            }
            found(consume)
        }
        "leased" => {
            let lease_id = lease_id.unwrap_or_default();
            expire_number(tx, now_ms, number_id, &lease_id).await?;
            Ok(Err(Miss::Expired))
        }
        "consumed" if free_since + cooldown_ms > now_ms => {
            if !ani_ok {
                return Ok(Err(Miss::Unknown("ani_mismatch")));
            }
            found(true)
        }
        "expired" => Ok(Err(Miss::Expired)),
        _ => Ok(Err(Miss::Unknown("unknown"))),
    }
}

async fn expire_number(
    tx: &mut WriteTx,
    now_ms: i64,
    number_id: i64,
    lease_id: &str,
) -> Result<()> {
    sqlx::query(
        "UPDATE bridge_numbers SET state = 'expired', data = NULL, ani = NULL \
         WHERE id = $1 AND lease_id = $2 AND state = 'leased'",
    )
    .bind(number_id)
    .bind(lease_id)
    .execute(tx.conn())
    .await?;
    if close_lease(tx, now_ms, lease_id, "expired").await? > 0 {
        audit::record(
            tx.conn(),
            now_ms,
            &audit::Entry {
                actor: "system",
                action: "bridge.expire",
                subject: Some(lease_id),
                result: "ok",
                detail: None,
            },
        )
        .await?;
    }
    Ok(())
}

/// Ends a lease early and wipes its data. Releasing an ended lease again is a no-op.
pub async fn release(
    db: &Db,
    clock: &dyn Clock,
    actor: &str,
    scope: Option<&str>,
    lease_id: &str,
) -> Result<()> {
    let mut tx = db.begin_write().await?;
    let now_ms = clock.now_ms();
    let row: Option<(i64, Option<i64>, String, i64)> = sqlx::query_as(
        "SELECT number_id, ended_at, pool_name, expires_at FROM bridge_leases WHERE lease_id = $1",
    )
    .bind(lease_id)
    .fetch_optional(tx.conn())
    .await?;
    let Some((number_id, ended_at, pool, expires_at)) =
        row.filter(|r| scope.is_none_or(|s| s == r.2))
    else {
        return Err(BridgeError::NoSuchLease);
    };
    let result = if ended_at.is_some() {
        "already_ended"
    } else if expires_at <= now_ms {
        expire_number(&mut tx, now_ms, number_id, lease_id).await?;
        "expired"
    } else {
        sqlx::query(
            "UPDATE bridge_numbers SET state = 'released', data = NULL, ani = NULL, lease_id = NULL, free_since = $1 \
             WHERE id = $2 AND lease_id = $3",
        )
        .bind(now_ms)
        .bind(number_id)
        .bind(lease_id)
        .execute(tx.conn())
        .await?;
        close_lease(&mut tx, now_ms, lease_id, "released").await?;
        "ok"
    };
    audit::record(
        tx.conn(),
        now_ms,
        &audit::Entry {
            actor,
            action: "bridge.release",
            subject: Some(lease_id),
            result,
            detail: Some(serde_json::json!({"pool": pool})),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct ReapReport {
    pub expired: u64,
    pub wiped: u64,
    pub deleted_numbers: u64,
}

/// Housekeeping, never needed for correctness: closes expired leases (final record + audit),
/// wipes the data of consumed leases whose cooldown is over, deletes removed numbers once idle,
/// and refreshes the pool gauges.
///
/// It changes one number per short transaction. A claim skips rows locked by others
/// (`SKIP LOCKED`), so a reaper that locked every finished number in one statement would make a
/// busy pool look exhausted for the length of that statement.
pub async fn reap(db: &Db, clock: &dyn Clock) -> Result<ReapReport> {
    let mut report = ReapReport::default();
    let now_ms = clock.now_ms();
    let expired: Vec<(i64, String)> = sqlx::query_as(
        "SELECT id, lease_id FROM bridge_numbers WHERE state = 'leased' AND expires_at <= $1 ORDER BY expires_at LIMIT $2",
    )
    .bind(now_ms)
    .bind(REAP_BATCH)
    .fetch_all(db.pool())
    .await?;
    for (number_id, lease_id) in &expired {
        let mut tx = db.begin_write().await?;
        let now_ms = clock.now_ms();
        expire_number(&mut tx, now_ms, *number_id, lease_id).await?;
        tx.commit().await?;
    }
    report.expired = expired.len() as u64;
    let cooled: Vec<i64> = sqlx::query_scalar(
        "SELECT n.id FROM bridge_numbers n JOIN bridge_pools p ON p.id = n.pool_id \
         WHERE n.state = 'consumed' AND n.free_since + p.cooldown_ms <= $1 LIMIT $2",
    )
    .bind(now_ms)
    .bind(REAP_BATCH)
    .fetch_all(db.pool())
    .await?;
    for number_id in cooled {
        let mut tx = db.begin_write().await?;
        report.wiped += sqlx::query(
            "UPDATE bridge_numbers SET state = 'free', data = NULL, ani = NULL WHERE id = $1 AND state = 'consumed'",
        )
        .bind(number_id)
        .execute(tx.conn())
        .await?
        .rows_affected();
        tx.commit().await?;
    }
    let mut tx = db.begin_write().await?;
    report.deleted_numbers = sqlx::query(
        "DELETE FROM bridge_numbers WHERE removed = 1 AND state NOT IN ('leased', 'consumed')",
    )
    .execute(tx.conn())
    .await?
    .rows_affected();
    tx.commit().await?;

    let usage: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT p.name, \
           COALESCE(SUM(CASE WHEN n.state = 'leased' AND n.expires_at > $1 THEN 1 ELSE 0 END), 0), \
           COUNT(n.id) \
         FROM bridge_pools p LEFT JOIN bridge_numbers n ON n.pool_id = p.id AND n.removed = 0 GROUP BY p.name",
    )
    .bind(now_ms)
    .fetch_all(db.pool())
    .await?;
    for (pool, leased, total) in usage {
        metrics::gauge!("dialbridge_bridge_leases_active", "pool" => pool.clone())
            .set(leased as f64);
        metrics::gauge!("dialbridge_bridge_pool_numbers", "pool" => pool).set(total as f64);
    }
    Ok(report)
}

/// Runs [`reap`] every `every` until the process ends (the thin driver of the reaper).
pub async fn reaper_loop(db: Db, clock: foundation::SharedClock, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        match reap(&db, clock.as_ref()).await {
            Ok(r) if r.expired + r.wiped + r.deleted_numbers > 0 => {
                tracing::debug!(?r, "bridge reaper")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "bridge reaper failed; will retry"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ani_compares_digits() {
        assert!(same_ani("+1 (312) 555-0100", "+13125550100"));
        assert!(!same_ani("+13125550100", "+13125550101"));
        assert!(!same_ani("anonymous", "restricted"));
    }

    #[test]
    fn oversized_and_non_object_data_is_refused() {
        let mut req = LeaseRequest {
            pool: "p".into(),
            data: serde_json::json!([1, 2]),
            ani: None,
            ttl_s: None,
            idempotency_key: None,
        };
        assert!(matches!(validate(&req), Err(BridgeError::Invalid(_))));
        req.data = serde_json::json!({"blob": "x".repeat(MAX_DATA_BYTES)});
        assert!(matches!(validate(&req), Err(BridgeError::DataTooLarge(n)) if n > MAX_DATA_BYTES));
        req.data = serde_json::json!({"name": "Ada"});
        req.ttl_s = Some(0);
        assert!(matches!(validate(&req), Err(BridgeError::Invalid(_))));
    }
}
