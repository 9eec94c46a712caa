//! Persistence for inbound (both backends, through `foundation::Db`): flows as versioned JSON
//! documents validated on save (strictly, unless a version is saved from an import with its
//! unsupported actions skipped: that choice is stored with the version and the version then
//! always compiles leniently), import (lenient check, strict save) and export, numbers (DIDs)
//! mapped to flows, hours-of-operation schedules, and contact records. Every write names its
//! actor in the audit log.

use std::sync::Arc;

use foundation::{Db, WriteTx, audit};
use serde_json::json;

use crate::contact::{ContactRecord, FlowOutcome};
use crate::flow::{CompiledFlow, FlowDocument, FlowError, Mode, compile};
use crate::hours::{Hours, HoursConfig, HoursError};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("flow is not valid: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FlowError>),
    #[error("hours are not valid: {0}")]
    Hours(#[from] HoursError),
    #[error("{0} not found")]
    NotFound(String),
    #[error(transparent)]
    Db(#[from] anyhow::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        Self::Db(e.into())
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// One stored version of a flow.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredFlow {
    pub flow_id: i64,
    pub name: String,
    pub version: i64,
    pub document: FlowDocument,
    /// Saved with its unsupported actions skipped ([`save_flow_skipping_unsupported`]): it
    /// compiles leniently, those actions standing in and taking their error branch.
    pub skip_unsupported: bool,
}

impl StoredFlow {
    /// How this version compiles: strictly, unless it was saved with unsupported actions skipped.
    pub fn mode(&self) -> Mode {
        if self.skip_unsupported {
            Mode::Lenient
        } else {
            Mode::Strict
        }
    }

    /// Compiles for the interpreter (stored documents were validated on save, in the same mode).
    pub fn compile(&self) -> Result<Arc<CompiledFlow>> {
        compile(&self.document, self.mode())
            .map(Arc::new)
            .map_err(StoreError::Invalid)
    }
}

/// Ends an audited write: records `action` on `subject` by `actor` as done, then commits, so the
/// change and its audit entry land together.
async fn audit_and_commit(
    mut tx: WriteTx,
    now_ms: i64,
    actor: &str,
    action: &str,
    subject: &str,
    detail: Option<serde_json::Value>,
) -> Result<()> {
    audit::record(
        tx.conn(),
        now_ms,
        &audit::Entry {
            actor,
            action,
            subject: Some(subject),
            result: "ok",
            detail,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Saves a new version of flow `name` (creating the flow on first save) after strict
/// validation, and makes it the current version. Returns the version number.
pub async fn save_flow(
    db: &Db,
    name: &str,
    doc: &FlowDocument,
    now_ms: i64,
    actor: &str,
) -> Result<i64> {
    save_version(db, name, doc, Mode::Strict, now_ms, actor).await
}

/// [`save_flow`] for an imported flow whose only findings are unsupported (or unknown) action
/// types: validated leniently, so every other problem still refuses it; the version is stored as
/// skipping them, and at run time each of those actions takes its error branch. The audit entry
/// names them.
pub async fn save_flow_skipping_unsupported(
    db: &Db,
    name: &str,
    doc: &FlowDocument,
    now_ms: i64,
    actor: &str,
) -> Result<i64> {
    save_version(db, name, doc, Mode::Lenient, now_ms, actor).await
}

async fn save_version(
    db: &Db,
    name: &str,
    doc: &FlowDocument,
    mode: Mode,
    now_ms: i64,
    actor: &str,
) -> Result<i64> {
    let compiled = compile(doc, mode).map_err(StoreError::Invalid)?;
    // Only a version that needs it is marked: a clean document saved this way is a normal one.
    let skip_unsupported = !compiled.unsupported.is_empty();
    let text = serde_json::to_string(doc).expect("a flow document serializes");
    let mut tx = db.begin_write().await?;
    // Create the flow row if needed, then update it: the update holds the row lock (PostgreSQL)
    // until commit, so concurrent saves of one flow number their versions one after the other.
    sqlx::query(
        "INSERT INTO inbound_flows (name, current_version, created_at, updated_at) VALUES ($1, 0, $2, $2) \
         ON CONFLICT (name) DO NOTHING",
    )
    .bind(name)
    .bind(now_ms)
    .execute(tx.conn())
    .await?;
    let flow_id: i64 =
        sqlx::query_scalar("UPDATE inbound_flows SET updated_at = $2 WHERE name = $1 RETURNING id")
            .bind(name)
            .bind(now_ms)
            .fetch_one(tx.conn())
            .await?;
    let version: i64 = sqlx::query_scalar(
        "SELECT COALESCE(MAX(version), 0) + 1 FROM inbound_flow_versions WHERE flow_id = $1",
    )
    .bind(flow_id)
    .fetch_one(tx.conn())
    .await?;
    sqlx::query(
        "INSERT INTO inbound_flow_versions (flow_id, version, document, created_at, created_by, skip_unsupported) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(flow_id)
    .bind(version)
    .bind(&text)
    .bind(now_ms)
    .bind(actor)
    .bind(i16::from(skip_unsupported))
    .execute(tx.conn())
    .await?;
    sqlx::query("UPDATE inbound_flows SET current_version = $1, updated_at = $2 WHERE id = $3")
        .bind(version)
        .bind(now_ms)
        .bind(flow_id)
        .execute(tx.conn())
        .await?;
    let mut detail = json!({"version": version, "actions": doc.actions.len()});
    if skip_unsupported {
        detail["skipped_unsupported"] = compiled
            .unsupported
            .iter()
            .map(|(id, t)| json!({"action": id, "action_type": t}))
            .collect();
    }
    audit_and_commit(tx, now_ms, actor, "inbound.flow.save", name, Some(detail)).await?;
    Ok(version)
}

/// Imports JSON text as a new version: strict, so unsupported actions are refused by name.
pub async fn import_flow(
    db: &Db,
    name: &str,
    json_text: &str,
    now_ms: i64,
    actor: &str,
) -> Result<i64> {
    let doc = FlowDocument::from_json(json_text)
        .map_err(|e| StoreError::Invalid(vec![FlowError::Json(e.to_string())]))?;
    save_flow(db, name, &doc, now_ms, actor).await
}

/// Makes an earlier version current again (a rollback).
pub async fn set_current_version(
    db: &Db,
    name: &str,
    version: i64,
    now_ms: i64,
    actor: &str,
) -> Result<()> {
    let mut tx = db.begin_write().await?;
    let flow_id: Option<i64> = sqlx::query_scalar(
        "SELECT f.id FROM inbound_flows f JOIN inbound_flow_versions v ON v.flow_id = f.id WHERE f.name = $1 AND v.version = $2",
    )
    .bind(name)
    .bind(version)
    .fetch_optional(tx.conn())
    .await?;
    let flow_id =
        flow_id.ok_or_else(|| StoreError::NotFound(format!("flow {name:?} version {version}")))?;
    sqlx::query("UPDATE inbound_flows SET current_version = $1, updated_at = $2 WHERE id = $3")
        .bind(version)
        .bind(now_ms)
        .bind(flow_id)
        .execute(tx.conn())
        .await?;
    audit_and_commit(
        tx,
        now_ms,
        actor,
        "inbound.flow.set_version",
        name,
        Some(json!({"version": version})),
    )
    .await?;
    Ok(())
}

/// A version of a flow (the current one when `version` is `None`).
pub async fn load_flow(db: &Db, name: &str, version: Option<i64>) -> Result<StoredFlow> {
    let row: Option<(i64, i64, String, i16)> = sqlx::query_as(
        "SELECT f.id, v.version, v.document, v.skip_unsupported FROM inbound_flows f \
         JOIN inbound_flow_versions v ON v.flow_id = f.id \
         WHERE f.name = $1 AND v.version = COALESCE($2, f.current_version)",
    )
    .bind(name)
    .bind(version)
    .fetch_optional(db.pool())
    .await?;
    let (flow_id, version, text, skip_unsupported) =
        row.ok_or_else(|| StoreError::NotFound(format!("flow {name:?}")))?;
    let document = FlowDocument::from_json(&text).map_err(|e| StoreError::Db(e.into()))?;
    Ok(StoredFlow {
        flow_id,
        name: name.to_string(),
        version,
        document,
        skip_unsupported: skip_unsupported != 0,
    })
}

/// The document as pretty JSON, ready to import elsewhere.
pub async fn export_flow(db: &Db, name: &str, version: Option<i64>) -> Result<String> {
    Ok(load_flow(db, name, version).await?.document.to_json())
}

/// `(version, created_at, created_by)` of every version, oldest first.
pub async fn flow_versions(db: &Db, name: &str) -> Result<Vec<(i64, i64, String)>> {
    Ok(sqlx::query_as(
        "SELECT v.version, v.created_at, v.created_by FROM inbound_flow_versions v \
         JOIN inbound_flows f ON f.id = v.flow_id WHERE f.name = $1 ORDER BY v.version",
    )
    .bind(name)
    .fetch_all(db.pool())
    .await?)
}

/// Points a number (DID, E.164) at a flow; replaces any earlier mapping.
pub async fn assign_number(db: &Db, did: &str, flow: &str, now_ms: i64, actor: &str) -> Result<()> {
    let mut tx = db.begin_write().await?;
    let flow_id: Option<i64> = sqlx::query_scalar("SELECT id FROM inbound_flows WHERE name = $1")
        .bind(flow)
        .fetch_optional(tx.conn())
        .await?;
    let flow_id = flow_id.ok_or_else(|| StoreError::NotFound(format!("flow {flow:?}")))?;
    sqlx::query(
        "INSERT INTO inbound_numbers (did, flow_id, created_at, updated_at) VALUES ($1, $2, $3, $3) \
         ON CONFLICT (did) DO UPDATE SET flow_id = excluded.flow_id, updated_at = excluded.updated_at",
    )
    .bind(did)
    .bind(flow_id)
    .bind(now_ms)
    .execute(tx.conn())
    .await?;
    audit_and_commit(
        tx,
        now_ms,
        actor,
        "inbound.number.assign",
        did,
        Some(json!({"flow": flow})),
    )
    .await?;
    Ok(())
}

pub async fn unassign_number(db: &Db, did: &str, now_ms: i64, actor: &str) -> Result<()> {
    let mut tx = db.begin_write().await?;
    let n = sqlx::query("DELETE FROM inbound_numbers WHERE did = $1")
        .bind(did)
        .execute(tx.conn())
        .await?
        .rows_affected();
    if n == 0 {
        return Err(StoreError::NotFound(format!("number {did}")));
    }
    audit_and_commit(tx, now_ms, actor, "inbound.number.unassign", did, None).await?;
    Ok(())
}

/// The current flow for a dialed number, or `None` when the number runs no flow.
pub async fn flow_for_number(db: &Db, did: &str) -> Result<Option<StoredFlow>> {
    let name: Option<String> = sqlx::query_scalar(
        "SELECT f.name FROM inbound_numbers n JOIN inbound_flows f ON f.id = n.flow_id WHERE n.did = $1",
    )
    .bind(did)
    .fetch_optional(db.pool())
    .await?;
    match name {
        Some(name) => Ok(Some(load_flow(db, &name, None).await?)),
        None => Ok(None),
    }
}

/// Saves (creates or replaces) an hours-of-operation schedule, validated first.
pub async fn save_hours(db: &Db, cfg: &HoursConfig, now_ms: i64, actor: &str) -> Result<()> {
    Hours::from_config(cfg)?;
    let text = serde_json::to_string(cfg).expect("hours serialize");
    let mut tx = db.begin_write().await?;
    sqlx::query(
        "INSERT INTO inbound_hours (name, config, updated_at) VALUES ($1, $2, $3) \
         ON CONFLICT (name) DO UPDATE SET config = excluded.config, updated_at = excluded.updated_at",
    )
    .bind(&cfg.id)
    .bind(&text)
    .bind(now_ms)
    .execute(tx.conn())
    .await?;
    audit_and_commit(tx, now_ms, actor, "inbound.hours.save", &cfg.id, None).await?;
    Ok(())
}

pub async fn load_hours(db: &Db, name: &str) -> Result<Hours> {
    let text: Option<String> =
        sqlx::query_scalar("SELECT config FROM inbound_hours WHERE name = $1")
            .bind(name)
            .fetch_optional(db.pool())
            .await?;
    let text = text.ok_or_else(|| StoreError::NotFound(format!("hours {name:?}")))?;
    let cfg: HoursConfig = serde_json::from_str(&text).map_err(|e| StoreError::Db(e.into()))?;
    Ok(Hours::from_config(&cfg)?)
}

fn outcome_name(o: &FlowOutcome) -> &'static str {
    match o {
        FlowOutcome::Disconnected => "disconnected",
        FlowOutcome::Queued { .. } => "queued",
        FlowOutcome::TransferredToNumber { .. } => "transferred_to_number",
        FlowOutcome::TransferredToLegacy { .. } => "transferred_to_legacy",
        FlowOutcome::CallerHungUp => "caller_hung_up",
        FlowOutcome::Error { .. } => "error",
        FlowOutcome::Rejected { .. } => "rejected",
        FlowOutcome::RoutedToLegacy { .. } => "routed_to_legacy",
        FlowOutcome::Interrupted => "interrupted",
    }
}

/// Writes (or rewrites, as the contact progresses) the contact's record.
pub async fn save_contact(
    db: &Db,
    record: &ContactRecord,
    flow: Option<&StoredFlow>,
) -> Result<()> {
    save_contact_on(db, None, record, flow).await
}

/// [`save_contact`] for a contact carried by `node` (recorded when the row is first written; a
/// later save never changes it), so that only that node's next start closes it if left open.
pub async fn save_contact_on(
    db: &Db,
    node: Option<&str>,
    record: &ContactRecord,
    flow: Option<&StoredFlow>,
) -> Result<()> {
    let text = serde_json::to_string(record).expect("contact records serialize");
    let mut tx = db.begin_write().await?;
    sqlx::query(
        "INSERT INTO inbound_contacts (contact_id, did, flow_id, flow_version, started_at, ended_at, outcome, queue, record, node) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
         ON CONFLICT (contact_id) DO UPDATE SET ended_at = excluded.ended_at, outcome = excluded.outcome, \
         queue = excluded.queue, record = excluded.record, \
         flow_id = COALESCE(excluded.flow_id, inbound_contacts.flow_id), \
         flow_version = COALESCE(excluded.flow_version, inbound_contacts.flow_version)",
    )
    .bind(&record.contact.contact_id)
    .bind(&record.contact.system_address)
    .bind(flow.map(|f| f.flow_id))
    .bind(flow.map(|f| f.version))
    .bind(record.started_at_ms)
    .bind(record.ended_at_ms)
    .bind(record.outcome.as_ref().map(outcome_name))
    .bind(&record.target_queue)
    .bind(&text)
    .bind(node)
    .execute(tx.conn())
    .await?;
    tx.commit().await?;
    Ok(())
}

pub async fn load_contact(db: &Db, contact_id: &str) -> Result<ContactRecord> {
    let text: Option<String> =
        sqlx::query_scalar("SELECT record FROM inbound_contacts WHERE contact_id = $1")
            .bind(contact_id)
            .fetch_optional(db.pool())
            .await?;
    let text = text.ok_or_else(|| StoreError::NotFound(format!("contact {contact_id:?}")))?;
    serde_json::from_str(&text).map_err(|e| StoreError::Db(e.into()))
}
