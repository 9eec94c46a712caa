//! DNIS pools: named sets of E.164 numbers with a direction, a lease TTL and a cooldown.
//!
//! A number belongs to at most one pool. Numbers can be added and removed at runtime; a number
//! removed while leased keeps serving its lease (lookups still work) but is never claimed again,
//! and is deleted once idle.

use foundation::{Db, audit};
use serde::{Deserialize, Serialize};

use crate::error::{BridgeError, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Calls leave Dialbridge for the legacy platform, which looks the data up.
    ToLegacy,
    /// Calls arrive from the legacy platform on these numbers; Dialbridge looks the data up.
    FromLegacy,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::ToLegacy => "to_legacy",
            Direction::FromLegacy => "from_legacy",
        }
    }
    fn parse(s: &str) -> Result<Self> {
        match s {
            "to_legacy" => Ok(Direction::ToLegacy),
            "from_legacy" => Ok(Direction::FromLegacy),
            other => Err(BridgeError::Internal(anyhow::anyhow!(
                "bad direction {other:?} in database"
            ))),
        }
    }
}

pub const DEFAULT_LEASE_TTL_S: u64 = 120;
pub const DEFAULT_COOLDOWN_S: u64 = 10;
const MAX_TTL_S: u64 = 86_400;
const MAX_NUMBERS: usize = 10_000;

/// A pool as stored.
#[derive(Debug, Clone, Serialize)]
pub struct Pool {
    pub id: i64,
    pub name: String,
    pub direction: Direction,
    pub lease_ttl_s: u64,
    pub cooldown_s: u64,
}

/// A pool with its numbers and how many are in use right now.
#[derive(Debug, Clone, Serialize)]
pub struct PoolView {
    #[serde(flatten)]
    pub pool: Pool,
    pub numbers: Vec<String>,
    /// Numbers holding an unexpired lease.
    pub leased: u64,
    /// Numbers that could be leased now.
    pub available: u64,
}

/// Settings for a new pool or a change to one.
#[derive(Debug, Clone)]
pub struct PoolSpec {
    pub name: String,
    pub numbers: Vec<String>,
    pub direction: Direction,
    pub lease_ttl_s: u64,
    pub cooldown_s: u64,
}

/// True for `+` followed by 8 to 15 digits, the first not 0 (ITU-T E.164).
pub fn is_e164(s: &str) -> bool {
    let Some(digits) = s.strip_prefix('+') else {
        return false;
    };
    (8..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0')
}

fn validate(spec: &PoolSpec) -> Result<()> {
    let n = &spec.name;
    if n.is_empty()
        || n.len() > 64
        || !n
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(BridgeError::Invalid(
            "pool name must be 1-64 characters of letters, digits, '-', '_', '.'".into(),
        ));
    }
    if !(1..=MAX_TTL_S).contains(&spec.lease_ttl_s) {
        return Err(BridgeError::Invalid(format!(
            "lease_ttl_s must be between 1 and {MAX_TTL_S}"
        )));
    }
    if spec.cooldown_s > MAX_TTL_S {
        return Err(BridgeError::Invalid(format!(
            "cooldown_s must be at most {MAX_TTL_S}"
        )));
    }
    validate_numbers(&spec.numbers)
}

fn validate_numbers(numbers: &[String]) -> Result<()> {
    if numbers.len() > MAX_NUMBERS {
        return Err(BridgeError::Invalid(format!(
            "at most {MAX_NUMBERS} numbers per request"
        )));
    }
    if let Some(bad) = numbers.iter().find(|n| !is_e164(n)) {
        return Err(BridgeError::Invalid(format!(
            "{bad:?} is not an E.164 number (+ and 8-15 digits)"
        )));
    }
    let mut seen = std::collections::HashSet::new();
    if let Some(dup) = numbers.iter().find(|n| !seen.insert(*n)) {
        return Err(BridgeError::Invalid(format!("{dup} is listed twice")));
    }
    Ok(())
}

type PoolRow = (i64, String, String, i64, i64);

fn pool_from_row((id, name, direction, ttl, cooldown): PoolRow) -> Result<Pool> {
    Ok(Pool {
        id,
        name,
        direction: Direction::parse(&direction)?,
        lease_ttl_s: (ttl / 1000) as u64,
        cooldown_s: (cooldown / 1000) as u64,
    })
}

const POOL_COLUMNS: &str = "id, name, direction, lease_ttl_ms, cooldown_ms";

pub async fn create(db: &Db, now_ms: i64, actor: &str, spec: &PoolSpec) -> Result<Pool> {
    validate(spec)?;
    let mut tx = db.begin_write().await?;
    let id: Option<i64> = sqlx::query_scalar(
        "INSERT INTO bridge_pools (name, direction, lease_ttl_ms, cooldown_ms, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (name) DO NOTHING RETURNING id",
    )
    .bind(&spec.name)
    .bind(spec.direction.as_str())
    .bind((spec.lease_ttl_s * 1000) as i64)
    .bind((spec.cooldown_s * 1000) as i64)
    .bind(now_ms)
    .fetch_optional(tx.conn())
    .await?;
    let id =
        id.ok_or_else(|| BridgeError::Conflict(format!("a pool named {:?} exists", spec.name)))?;
    insert_numbers(&mut tx, id, &spec.numbers).await?;
    audit::record(
        tx.conn(),
        now_ms,
        &audit::Entry {
            actor,
            action: "bridge.pool.create",
            subject: Some(&spec.name),
            result: "ok",
            detail: Some(
                serde_json::json!({"numbers": spec.numbers.len(), "direction": spec.direction}),
            ),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(Pool {
        id,
        name: spec.name.clone(),
        direction: spec.direction,
        lease_ttl_s: spec.lease_ttl_s,
        cooldown_s: spec.cooldown_s,
    })
}

/// Adds numbers (or takes back removed ones of the same pool). A number of another pool: 409.
async fn insert_numbers(
    tx: &mut foundation::WriteTx,
    pool_id: i64,
    numbers: &[String],
) -> Result<()> {
    for dnis in numbers {
        let owner: Option<i64> =
            sqlx::query_scalar("SELECT pool_id FROM bridge_numbers WHERE dnis = $1")
                .bind(dnis)
                .fetch_optional(tx.conn())
                .await?;
        match owner {
            Some(p) if p == pool_id => {
                sqlx::query("UPDATE bridge_numbers SET removed = 0 WHERE dnis = $1")
                    .bind(dnis)
                    .execute(tx.conn())
                    .await?;
            }
            Some(_) => {
                return Err(BridgeError::Conflict(format!(
                    "{dnis} belongs to another pool"
                )));
            }
            None => {
                sqlx::query("INSERT INTO bridge_numbers (pool_id, dnis) VALUES ($1, $2)")
                    .bind(pool_id)
                    .bind(dnis)
                    .execute(tx.conn())
                    .await?;
            }
        }
    }
    Ok(())
}

/// The pool a number belongs to, with its direction.
pub async fn owner_of(db: &Db, dnis: &str) -> Result<Option<(String, Direction)>> {
    let row: Option<(String, String)> = sqlx::query_as(
        "SELECT p.name, p.direction FROM bridge_numbers n JOIN bridge_pools p ON p.id = n.pool_id WHERE n.dnis = $1",
    )
    .bind(dnis)
    .fetch_optional(db.pool())
    .await?;
    row.map(|(name, d)| Direction::parse(&d).map(|d| (name, d)))
        .transpose()
}

pub async fn get(db: &Db, name: &str) -> Result<Pool> {
    let row: Option<PoolRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {POOL_COLUMNS} FROM bridge_pools WHERE name = $1"
    )))
    .bind(name)
    .fetch_optional(db.pool())
    .await?;
    pool_from_row(row.ok_or_else(|| BridgeError::UnknownPool(name.to_owned()))?)
}

pub async fn view(db: &Db, now_ms: i64, name: &str) -> Result<PoolView> {
    let pool = get(db, name).await?;
    let rows: Vec<(String, String, Option<i64>, i64)> = sqlx::query_as(
        "SELECT dnis, state, expires_at, free_since FROM bridge_numbers \
         WHERE pool_id = $1 AND removed = 0 ORDER BY dnis",
    )
    .bind(pool.id)
    .fetch_all(db.pool())
    .await?;
    let cooldown_ms = (pool.cooldown_s * 1000) as i64;
    let leased = rows
        .iter()
        .filter(|(_, state, exp, _)| state == "leased" && exp.is_some_and(|e| e > now_ms))
        .count() as u64;
    let available = rows
        .iter()
        .filter(|(_, _, _, free)| free + cooldown_ms <= now_ms)
        .count() as u64;
    Ok(PoolView {
        numbers: rows.into_iter().map(|r| r.0).collect(),
        pool,
        leased,
        available,
    })
}

pub async fn list(db: &Db, now_ms: i64) -> Result<Vec<PoolView>> {
    let names: Vec<String> = sqlx::query_scalar("SELECT name FROM bridge_pools ORDER BY name")
        .fetch_all(db.pool())
        .await?;
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        out.push(view(db, now_ms, &name).await?);
    }
    Ok(out)
}

/// Replaces a pool's settings and its set of numbers (added ones join, missing ones are removed).
pub async fn update(db: &Db, now_ms: i64, actor: &str, spec: &PoolSpec) -> Result<Pool> {
    validate(spec)?;
    let pool = get(db, &spec.name).await?;
    let mut tx = db.begin_write().await?;
    sqlx::query(
        "UPDATE bridge_pools SET direction = $1, lease_ttl_ms = $2, cooldown_ms = $3, updated_at = $4 WHERE id = $5",
    )
    .bind(spec.direction.as_str())
    .bind((spec.lease_ttl_s * 1000) as i64)
    .bind((spec.cooldown_s * 1000) as i64)
    .bind(now_ms)
    .bind(pool.id)
    .execute(tx.conn())
    .await?;
    let current: Vec<String> =
        sqlx::query_scalar("SELECT dnis FROM bridge_numbers WHERE pool_id = $1 AND removed = 0")
            .bind(pool.id)
            .fetch_all(tx.conn())
            .await?;
    let gone: Vec<String> = current
        .into_iter()
        .filter(|d| !spec.numbers.contains(d))
        .collect();
    insert_numbers(&mut tx, pool.id, &spec.numbers).await?;
    remove_in(&mut tx, now_ms, pool.id, &gone).await?;
    audit::record(
        tx.conn(),
        now_ms,
        &audit::Entry {
            actor,
            action: "bridge.pool.update",
            subject: Some(&spec.name),
            result: "ok",
            detail: Some(serde_json::json!({"numbers": spec.numbers.len(), "removed": gone.len()})),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(Pool {
        direction: spec.direction,
        lease_ttl_s: spec.lease_ttl_s,
        cooldown_s: spec.cooldown_s,
        ..pool
    })
}

pub async fn add_numbers(
    db: &Db,
    now_ms: i64,
    actor: &str,
    name: &str,
    numbers: &[String],
) -> Result<()> {
    validate_numbers(numbers)?;
    change_numbers(db, now_ms, actor, name, numbers, false).await
}

pub async fn remove_numbers(
    db: &Db,
    now_ms: i64,
    actor: &str,
    name: &str,
    numbers: &[String],
) -> Result<()> {
    change_numbers(db, now_ms, actor, name, numbers, true).await
}

/// Adds or removes numbers of a pool at runtime, audited, in one transaction.
async fn change_numbers(
    db: &Db,
    now_ms: i64,
    actor: &str,
    name: &str,
    numbers: &[String],
    remove: bool,
) -> Result<()> {
    let pool = get(db, name).await?;
    let mut tx = db.begin_write().await?;
    if remove {
        remove_in(&mut tx, now_ms, pool.id, numbers).await?;
    } else {
        insert_numbers(&mut tx, pool.id, numbers).await?;
    }
    audit::record(
        tx.conn(),
        now_ms,
        &audit::Entry {
            actor,
            action: if remove {
                "bridge.pool.remove_numbers"
            } else {
                "bridge.pool.add_numbers"
            },
            subject: Some(name),
            result: "ok",
            detail: Some(serde_json::json!({"numbers": numbers})),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Idle numbers are deleted at once; numbers in use are marked removed (see the module doc).
async fn remove_in(
    tx: &mut foundation::WriteTx,
    now_ms: i64,
    pool_id: i64,
    numbers: &[String],
) -> Result<()> {
    for dnis in numbers {
        let busy = sqlx::query(
            "UPDATE bridge_numbers SET removed = 1 WHERE pool_id = $1 AND dnis = $2 \
             AND ((state = 'leased' AND expires_at > $3) OR state = 'consumed')",
        )
        .bind(pool_id)
        .bind(dnis)
        .bind(now_ms)
        .execute(tx.conn())
        .await?
        .rows_affected();
        if busy == 0 {
            let number_id: Option<i64> = sqlx::query_scalar(
                "SELECT id FROM bridge_numbers WHERE pool_id = $1 AND dnis = $2",
            )
            .bind(pool_id)
            .bind(dnis)
            .fetch_optional(tx.conn())
            .await?;
            if let Some(number_id) = number_id {
                crate::lease::end_open_leases(
                    tx,
                    now_ms,
                    pool_id,
                    Some(number_id),
                    "number_removed",
                )
                .await?;
            }
            sqlx::query("DELETE FROM bridge_numbers WHERE pool_id = $1 AND dnis = $2")
                .bind(pool_id)
                .bind(dnis)
                .execute(tx.conn())
                .await?;
        }
    }
    Ok(())
}

/// Deletes a pool; its open leases end with reason `pool_deleted`.
pub async fn delete(db: &Db, now_ms: i64, actor: &str, name: &str) -> Result<()> {
    let pool = get(db, name).await?;
    let mut tx = db.begin_write().await?;
    let ended =
        crate::lease::end_open_leases(&mut tx, now_ms, pool.id, None, "pool_deleted").await?;
    sqlx::query("DELETE FROM bridge_numbers WHERE pool_id = $1")
        .bind(pool.id)
        .execute(tx.conn())
        .await?;
    sqlx::query("DELETE FROM bridge_pools WHERE id = $1")
        .bind(pool.id)
        .execute(tx.conn())
        .await?;
    audit::record(
        tx.conn(),
        now_ms,
        &audit::Entry {
            actor,
            action: "bridge.pool.delete",
            subject: Some(name),
            result: "ok",
            detail: Some(serde_json::json!({"ended_leases": ended})),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e164_shape() {
        for ok in ["+13125550100", "+442079460958", "+4930123456", "+12345678"] {
            assert!(is_e164(ok), "{ok}");
        }
        for bad in [
            "13125550100",
            "+0312555",
            "+1312555010012345",
            "+1 312 555",
            "+",
            "+1234567",
        ] {
            assert!(!is_e164(bad), "{bad}");
        }
    }
}
