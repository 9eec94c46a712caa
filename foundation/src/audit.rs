//! The append-only audit log: who did what, when, to what, with which result.
//!
//! Every domain writes here (logins, key use, bridge leases and lookups, config changes). Writers
//! pass the executor they are already using, so an audit record commits or rolls back with the
//! change it describes.

use serde::Serialize;
use sqlx::{Any, Executor};

#[derive(Debug, Clone, Serialize)]
pub struct Entry<'a> {
    /// `user:NAME`, `apikey:PREFIX`, `system`, …
    pub actor: &'a str,
    /// Dotted verb, e.g. `bridge.lease`, `auth.login`.
    pub action: &'a str,
    pub subject: Option<&'a str>,
    /// `ok`, `denied`, `not_found`, …
    pub result: &'a str,
    /// Free-form JSON details.
    pub detail: Option<serde_json::Value>,
}

pub async fn record<'c, E>(executor: E, now_ms: i64, entry: &Entry<'_>) -> anyhow::Result<()>
where
    E: Executor<'c, Database = Any>,
{
    let detail = entry.detail.as_ref().map(|d| d.to_string());
    sqlx::query(
        "INSERT INTO audit_log (at, actor, action, subject, result, detail) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(now_ms)
    .bind(entry.actor)
    .bind(entry.action)
    .bind(entry.subject)
    .bind(entry.result)
    .bind(detail)
    .execute(executor)
    .await?;
    Ok(())
}

/// One stored audit record.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Record {
    pub id: i64,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub subject: Option<String>,
    pub result: String,
    pub detail: Option<String>,
}

/// The newest records first, optionally only one action.
pub async fn recent(
    db: &crate::Db,
    action: Option<&str>,
    limit: i64,
) -> anyhow::Result<Vec<Record>> {
    let rows = sqlx::query_as::<_, Record>(
        "SELECT id, at, actor, action, subject, result, detail FROM audit_log \
         WHERE ($1 IS NULL OR action = $1) ORDER BY id DESC LIMIT $2",
    )
    .bind(action)
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    Ok(rows)
}
