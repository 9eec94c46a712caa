//! Call recordings: search, metadata, playback and download, retention.
//!
//! A flow that turns recording on makes the inbound runtime write `<contact id>.wav` (stereo
//! G.711 µ-law) and note a `recording_on` stage whose detail is the file's path in the contact
//! record; that record is what is searched here (`GET /api/v1/recordings` with the contact
//! search's filters, plus `campaign`: the contact attribute of that name). `…/{id}/audio` serves
//! the file with `Range` support (206) for the browser's audio element and `Content-Disposition`
//! (`?download=true`: attachment). Admins and supervisors see every recording, an agent only
//! those of contacts they were connected to; every playback or download from the first byte is
//! in the audit log, and so is a refusal.
//!
//! Retention (`recordings.retention_days`, 0 = keep forever): the [`sweeper`] deletes files of
//! contacts that started longer ago, at start and every `recordings.sweep_interval_s`, and writes
//! a `recording_expiries` row; the contact record keeps its `recording_on` stage, so the
//! recording is still listed, as `expired`. Files live on the node that recorded them: a node
//! sweeps and serves its own.

use std::io::SeekFrom;
use std::path::PathBuf;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use foundation::accounts::Role;
use foundation::clock::rfc3339_ms;
use foundation::{Db, SharedClock};
use inbound::contact::ContactRecord;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::auth::Caller;
use crate::contacts::{ContactQuery, build_filter, json_str, like_fragment};
use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiQuery;

/// Who may use the recordings API (agents: their own contacts only).
pub const ROLES: &[Role] = &[Role::Admin, Role::Supervisor, Role::Agent];
/// The most bytes one ranged answer carries (the browser asks for the rest).
const MAX_RANGE_BYTES: u64 = 4 * 1024 * 1024;
/// The largest file served whole (longer recordings are fetched in ranges).
const MAX_WHOLE_BYTES: u64 = 512 * 1024 * 1024;
const SWEEP_BATCH: i64 = 500;
const DAY_MS: i64 = 86_400_000;

/// `[recordings]` in the configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecordingsConfig {
    /// Days a recording is kept after its contact started; 0 keeps recordings forever.
    pub retention_days: u32,
    /// Seconds between retention sweeps (there is one at start too).
    pub sweep_interval_s: u64,
}

impl Default for RecordingsConfig {
    fn default() -> Self {
        Self {
            retention_days: 0,
            sweep_interval_s: 3600,
        }
    }
}

impl RecordingsConfig {
    /// The error names the key.
    pub fn validate(&self) -> Result<(), String> {
        if self.retention_days > 36_500 {
            return Err("recordings.retention_days: at most 36500 (0 keeps forever)".into());
        }
        if !(1..=86_400).contains(&self.sweep_interval_s) {
            return Err("recordings.sweep_interval_s: between 1 and 86400".into());
        }
        Ok(())
    }
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct RecordingQuery {
    /// The dialled number or the caller's (exact, e.g. `+13125550100`).
    pub number: Option<String>,
    /// Started at or after (RFC 3339, `YYYY-MM-DD` or epoch ms).
    pub from: Option<String>,
    /// Started before.
    pub to: Option<String>,
    /// The contact attribute `campaign`.
    pub campaign: Option<String>,
    /// The agent's user name the contact was connected to (agents: only their own).
    pub agent: Option<String>,
    /// disconnected, queued, transferred_to_number, transferred_to_legacy, caller_hung_up, error.
    pub outcome: Option<String>,
    pub queue: Option<String>,
    /// At most this many, newest first (default 100, at most 1000).
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RecordingOut {
    /// The contact's id; also the recording's.
    pub contact_id: String,
    pub did: Option<String>,
    pub customer_number: String,
    pub started_at: String,
    pub ended_at: Option<String>,
    pub outcome: Option<String>,
    pub queue: Option<String>,
    pub agent: Option<String>,
    pub campaign: Option<String>,
    pub flow: Option<String>,
    /// available (the file is here), expired (removed by retention), missing (not on this node).
    pub state: String,
    pub bytes: Option<u64>,
    pub duration_s: Option<f64>,
    pub expired_at: Option<String>,
    /// Where to play or download it.
    pub audio_url: String,
}

struct Found {
    contact_id: String,
    did: Option<String>,
    flow: Option<String>,
    started_at: i64,
    ended_at: Option<i64>,
    outcome: Option<String>,
    queue: Option<String>,
    record: ContactRecord,
    expired_at: Option<i64>,
}

type Row = (
    String,
    Option<String>,
    Option<String>,
    i64,
    Option<i64>,
    Option<String>,
    Option<String>,
    String,
    Option<i64>,
);

const SELECT: &str = "SELECT c.contact_id, c.did, fl.name, c.started_at, c.ended_at, c.outcome, c.queue, c.record, e.expired_at \
     FROM inbound_contacts c LEFT JOIN inbound_flows fl ON fl.id = c.flow_id \
     LEFT JOIN recording_expiries e ON e.contact_id = c.contact_id";
const HAS_RECORDING: &str = "c.record LIKE '%\"stage\":\"recording_on\"%'";

fn found(r: Row) -> Result<Found, ApiError> {
    let (contact_id, did, flow, started_at, ended_at, outcome, queue, text, expired_at) = r;
    let record: ContactRecord = serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("contact {contact_id}: record is not readable: {e}"))?;
    Ok(Found {
        contact_id,
        did,
        flow,
        started_at,
        ended_at,
        outcome,
        queue,
        record,
        expired_at,
    })
}

/// The file the runtime wrote for this contact: the last `recording_on` stage's path, if it is
/// the contact's own `<id>.wav`.
pub fn recording_path(contact_id: &str, record: &ContactRecord) -> Option<PathBuf> {
    let detail = &record
        .stages
        .iter()
        .rev()
        .find(|s| s.stage == "recording_on" && !s.detail.is_empty())?
        .detail;
    let path = PathBuf::from(detail);
    (path.file_name()?.to_str()? == format!("{contact_id}.wav")).then_some(path)
}

/// Every agent the contact was connected to.
fn agents_of(record: &ContactRecord) -> impl Iterator<Item = &str> {
    record
        .stages
        .iter()
        .filter(|s| s.stage == "connected" && !s.detail.is_empty())
        .map(|s| s.detail.as_str())
}

fn may_hear(caller: &Caller, record: &ContactRecord) -> bool {
    match caller.role {
        Role::Admin | Role::Supervisor => true,
        Role::Agent => {
            let me = caller.agent_id();
            agents_of(record).any(|a| a == me)
        }
        _ => false,
    }
}

/// Sample rate × channels × bytes per sample, and the audio bytes, from a WAV header.
fn wav_info(head: &[u8]) -> Option<(u32, u32)> {
    if head.len() < 12 || &head[0..4] != b"RIFF" || &head[8..12] != b"WAVE" {
        return None;
    }
    let mut at = 12;
    let mut byte_rate = None;
    while at + 8 <= head.len() {
        let id = &head[at..at + 4];
        let len = u32::from_le_bytes(head[at + 4..at + 8].try_into().ok()?);
        if id == b"fmt " && at + 20 <= head.len() {
            byte_rate = Some(u32::from_le_bytes(head[at + 16..at + 20].try_into().ok()?));
        }
        if id == b"data" {
            return Some((byte_rate?, len));
        }
        at += 8 + len as usize + (len as usize & 1);
    }
    None
}

async fn describe(f: &Found) -> RecordingOut {
    let path = recording_path(&f.contact_id, &f.record);
    let mut state = "missing";
    let (mut bytes, mut duration_s) = (None, None);
    if f.expired_at.is_some() {
        state = "expired";
    } else if let Some(p) = &path
        && let Ok(meta) = tokio::fs::metadata(p).await
    {
        state = "available";
        bytes = Some(meta.len());
        let mut head = vec![0u8; 512];
        if let Ok(mut file) = tokio::fs::File::open(p).await {
            let n = file.read(&mut head).await.unwrap_or(0);
            if let Some((rate, data)) = wav_info(&head[..n]) {
                // A recording still being written has no data length yet: use the file's size.
                let data = if data == 0 || data as u64 > meta.len() {
                    meta.len().saturating_sub(44) as u32
                } else {
                    data
                };
                if rate > 0 {
                    duration_s = Some((data as f64 / rate as f64 * 100.0).round() / 100.0);
                }
            }
        }
    }
    RecordingOut {
        contact_id: f.contact_id.clone(),
        did: f.did.clone(),
        customer_number: f.record.contact.customer_address.clone(),
        started_at: rfc3339_ms(f.started_at),
        ended_at: f.ended_at.map(rfc3339_ms),
        outcome: f.outcome.clone(),
        queue: f.queue.clone(),
        agent: crate::contacts::agent_of(&f.record),
        campaign: f.record.attributes.get("campaign").cloned(),
        flow: f.flow.clone(),
        state: state.into(),
        bytes,
        duration_s,
        expired_at: f.expired_at.map(rfc3339_ms),
        audio_url: format!("/api/v1/recordings/{}/audio", f.contact_id),
    }
}

/// Finds recordings (contacts with a recording), newest first.
#[utoipa::path(get, path = "/api/v1/recordings", tag = "recordings", security(("api_key" = []), ("session" = [])),
    params(RecordingQuery),
    responses((status = 200, body = [RecordingOut]), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn list(
    State(st): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<RecordingQuery>,
) -> Result<Json<Vec<RecordingOut>>, ApiError> {
    caller.require(ROLES)?;
    let mut agent = q.agent.clone().filter(|a| !a.trim().is_empty());
    if caller.role == Role::Agent {
        let me = caller.agent_id();
        if agent.as_deref().is_some_and(|a| a.trim() != me) {
            return Err(ApiError::forbidden(
                "an agent may list only the recordings of their own contacts",
            ));
        }
        agent = Some(me);
    }
    let cq = ContactQuery {
        number: q.number,
        from: q.from,
        to: q.to,
        queue: q.queue,
        agent,
        outcome: q.outcome,
        ..Default::default()
    };
    let f = build_filter(&cq)?;
    let mut text = f.text.clone();
    let mut conds = vec![f.sql.clone(), HAS_RECORDING.to_owned()];
    if let Some(c) = q
        .campaign
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        text.push(like_fragment(&format!("\"campaign\":{}", json_str(c))));
        conds.push(format!(
            "c.record LIKE ${} ESCAPE '\\'",
            text.len() + crate::contacts::FIXED_BINDS
        ));
    }
    let n = text.len() + crate::contacts::FIXED_BINDS;
    let sql = format!(
        "{SELECT} WHERE {} ORDER BY c.started_at DESC, c.id DESC LIMIT ${} OFFSET ${}",
        conds.join(" AND "),
        n + 1,
        n + 2
    );
    let mut query = sqlx::query_as::<_, Row>(sqlx::AssertSqlSafe(sql))
        .bind(f.from.unwrap_or(-1))
        .bind(f.to.unwrap_or(-1))
        .bind(-1i64)
        .bind(-1i64);
    for t in text {
        query = query.bind(t);
    }
    let rows = query
        .bind(q.limit.unwrap_or(100).clamp(1, 1000))
        .bind(q.offset.unwrap_or(0).max(0))
        .fetch_all(st.db.pool())
        .await
        .map_err(anyhow::Error::from)?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        out.push(describe(&found(r)?).await);
    }
    Ok(Json(out))
}

/// One recording, after the role check (an agent's refusal is audited).
async fn load(st: &AppState, caller: &Caller, id: &str, action: &str) -> Result<Found, ApiError> {
    caller.require(ROLES)?;
    let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SELECT} WHERE c.contact_id = $1 AND {HAS_RECORDING}"
    )))
    .bind(id)
    .fetch_optional(st.db.pool())
    .await
    .map_err(anyhow::Error::from)?;
    let Some(row) = row else {
        return Err(ApiError::not_found(format!(
            "no recording for contact {id:?}"
        )));
    };
    let f = found(row)?;
    if !may_hear(caller, &f.record) {
        let actor = caller.actor();
        foundation::audit::record(
            st.db.pool(),
            st.clock.now_ms(),
            &foundation::audit::Entry {
                actor: &actor,
                action,
                subject: Some(id),
                result: "denied",
                detail: None,
            },
        )
        .await?;
        return Err(ApiError::forbidden(
            "an agent may hear only the recordings of their own contacts",
        ));
    }
    Ok(f)
}

/// One recording's metadata.
#[utoipa::path(get, path = "/api/v1/recordings/{id}", tag = "recordings", security(("api_key" = []), ("session" = [])),
    params(("id" = String, Path, description = "The contact id")),
    responses((status = 200, body = RecordingOut), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_one(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<RecordingOut>, ApiError> {
    let f = load(&st, &caller, &id, "recordings.view").await?;
    Ok(Json(describe(&f).await))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AudioQuery {
    /// true: `Content-Disposition: attachment` (save as a file) instead of inline playback.
    pub download: Option<bool>,
}

/// A single `bytes=` range of a file of `size` bytes: `Ok(None)` without a usable Range header
/// (several ranges, another unit: the whole file is sent), `Err` when it cannot be satisfied.
fn parse_range(value: &str, size: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let (a, b) = spec.split_once('-').ok_or(())?;
    let (a, b) = (a.trim(), b.trim());
    let (start, end) = match (a.is_empty(), b.is_empty()) {
        (true, true) => return Err(()),
        (true, false) => {
            let n: u64 = b.parse().map_err(|_| ())?;
            if n == 0 {
                return Err(());
            }
            (size.saturating_sub(n), size.saturating_sub(1))
        }
        (false, _) => {
            let start: u64 = a.parse().map_err(|_| ())?;
            let end = if b.is_empty() {
                size.saturating_sub(1)
            } else {
                b.parse::<u64>()
                    .map_err(|_| ())?
                    .min(size.saturating_sub(1))
            };
            (start, end)
        }
    };
    if size == 0 || start >= size || end < start {
        return Err(());
    }
    Ok(Some((start, end)))
}

/// The recording's audio (WAV). Honours a single `Range` (206; at most 4 MiB per answer, the
/// browser asks for the rest); `download=true` makes it an attachment.
#[utoipa::path(get, path = "/api/v1/recordings/{id}/audio", tag = "recordings", security(("api_key" = []), ("session" = [])),
    params(("id" = String, Path, description = "The contact id"), AudioQuery),
    responses((status = 200, content_type = "audio/wav", description = "The whole file"),
              (status = 206, content_type = "audio/wav", description = "The requested range"),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 410, body = ErrorBody),
              (status = 416, description = "The range is outside the file")))]
async fn audio(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<AudioQuery>,
) -> Result<Response, ApiError> {
    let download = q.download.unwrap_or(false);
    let action = if download {
        "recordings.download"
    } else {
        "recordings.play"
    };
    let f = load(&st, &caller, &id, action).await?;
    if f.expired_at.is_some() {
        return Err(ApiError::new(
            StatusCode::GONE,
            "expired",
            format!("the recording of {id} was removed by the retention period"),
        ));
    }
    let missing = || ApiError::not_found(format!("the recording file of {id} is not on this node"));
    let path = recording_path(&f.contact_id, &f.record).ok_or_else(missing)?;
    let mut file = tokio::fs::File::open(&path).await.map_err(|_| missing())?;
    let size = file.metadata().await.map_err(anyhow::Error::from)?.len();
    let range = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        None => None,
        Some(v) => match parse_range(v, size) {
            Ok(r) => r,
            Err(()) => {
                return Ok((
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    [(header::CONTENT_RANGE, format!("bytes */{size}"))],
                )
                    .into_response());
            }
        },
    };
    let (start, end) = match range {
        Some((s, e)) => (s, e.min(s + MAX_RANGE_BYTES - 1)),
        None if size > MAX_WHOLE_BYTES => {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!("{size} bytes: fetch it in ranges (Range: bytes=0-)"),
            ));
        }
        None => (0, size.saturating_sub(1)),
    };
    let len = if size == 0 { 0 } else { end - start + 1 };
    let mut body = vec![0u8; len as usize];
    file.seek(SeekFrom::Start(start))
        .await
        .map_err(anyhow::Error::from)?;
    file.read_exact(&mut body)
        .await
        .map_err(anyhow::Error::from)?;
    if start == 0 {
        caller.audit_ok(&st, action, &id).await?;
    }
    let disposition = format!(
        "{}; filename=\"{id}.wav\"",
        if download { "attachment" } else { "inline" }
    );
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("audio/wav"));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    if range.is_some() {
        *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
        if let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{end}/{size}")) {
            resp.headers_mut().insert(header::CONTENT_RANGE, v);
        }
    }
    Ok(resp)
}

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(get_one))
        .routes(routes!(audio))
}

/// Removes recordings older than the retention period, at start and every interval, until the
/// process ends. Nothing happens with `retention_days = 0`.
pub async fn sweeper(db: Db, clock: SharedClock, node: String, cfg: RecordingsConfig) {
    if cfg.retention_days == 0 {
        return;
    }
    loop {
        match sweep_once(&db, clock.now_ms(), &node, cfg.retention_days).await {
            Ok((0, 0)) => {}
            Ok((removed, missing)) => tracing::info!(
                removed,
                missing,
                retention_days = cfg.retention_days,
                "recordings past their retention period removed"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "the recordings' retention sweep failed; retrying at the next one")
            }
        }
        tokio::time::sleep(Duration::from_secs(cfg.sweep_interval_s)).await;
    }
}

/// One sweep: the files of this node's contacts that started before `now - retention_days`
/// are deleted and marked expired. Returns (removed, already missing).
pub async fn sweep_once(
    db: &Db,
    now: i64,
    node: &str,
    retention_days: u32,
) -> anyhow::Result<(usize, usize)> {
    let cutoff = now - retention_days as i64 * DAY_MS;
    let (mut removed, mut missing) = (0, 0);
    let mut after = i64::MIN;
    loop {
        let rows: Vec<(i64, String, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT c.id, c.contact_id, c.record FROM inbound_contacts c \
             LEFT JOIN recording_expiries e ON e.contact_id = c.contact_id \
             WHERE e.contact_id IS NULL AND c.ended_at IS NOT NULL AND c.started_at < $1 \
               AND (c.node = $2 OR c.node IS NULL) AND c.id > $3 AND {HAS_RECORDING} \
             ORDER BY c.id LIMIT $4"
        )))
        .bind(cutoff)
        .bind(node)
        .bind(after)
        .bind(SWEEP_BATCH)
        .fetch_all(db.pool())
        .await?;
        let n = rows.len() as i64;
        for (id, contact_id, text) in rows {
            after = id;
            let Ok(record) = serde_json::from_str::<ContactRecord>(&text) else {
                continue;
            };
            let Some(path) = recording_path(&contact_id, &record) else {
                continue;
            };
            let bytes = tokio::fs::metadata(&path)
                .await
                .ok()
                .map(|m| m.len() as i64);
            let reason = match tokio::fs::remove_file(&path).await {
                Ok(()) => {
                    removed += 1;
                    "retention"
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    missing += 1;
                    "missing"
                }
                Err(e) => {
                    tracing::warn!(contact = %contact_id, path = %path.display(), error = %e, "could not delete an expired recording");
                    continue;
                }
            };
            sqlx::query(
                "INSERT INTO recording_expiries (contact_id, path, bytes, expired_at, reason) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (contact_id) DO NOTHING",
            )
            .bind(&contact_id)
            .bind(path.display().to_string())
            .bind(bytes)
            .bind(now)
            .bind(reason)
            .execute(db.pool())
            .await?;
        }
        if n < SWEEP_BATCH {
            return Ok((removed, missing));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-", 100), Ok(Some((0, 99))));
        assert_eq!(parse_range("bytes=10-19", 100), Ok(Some((10, 19))));
        assert_eq!(parse_range("bytes=90-200", 100), Ok(Some((90, 99))));
        assert_eq!(parse_range("bytes=-10", 100), Ok(Some((90, 99))));
        assert_eq!(parse_range("bytes=-500", 100), Ok(Some((0, 99))));
        assert_eq!(parse_range("bytes=0-1,5-6", 100), Ok(None));
        assert_eq!(parse_range("items=0-1", 100), Ok(None));
        assert_eq!(parse_range("bytes=100-", 100), Err(()));
        assert_eq!(parse_range("bytes=5-4", 100), Err(()));
        assert_eq!(parse_range("bytes=-0", 100), Err(()));
        assert_eq!(parse_range("bytes=x-", 100), Err(()));
    }

    #[test]
    fn wav_headers() {
        let mut h = Vec::new();
        h.extend_from_slice(b"RIFF\0\0\0\0WAVEfmt ");
        h.extend_from_slice(&18u32.to_le_bytes());
        h.extend_from_slice(&[7, 0, 2, 0]); // µ-law, stereo
        h.extend_from_slice(&8000u32.to_le_bytes());
        h.extend_from_slice(&16000u32.to_le_bytes());
        h.extend_from_slice(&[2, 0, 8, 0, 0, 0]);
        h.extend_from_slice(b"data");
        h.extend_from_slice(&32000u32.to_le_bytes());
        assert_eq!(wav_info(&h), Some((16000, 32000)));
        assert_eq!(wav_info(b"OggS"), None);
    }

    #[test]
    fn only_the_contacts_own_file_is_served() {
        let mut r = ContactRecord::default();
        assert_eq!(recording_path("c1", &r), None);
        r.stages.push(inbound::contact::Stage {
            at_ms: 1,
            stage: "recording_on".into(),
            detail: "/data/recordings/c1.wav".into(),
        });
        assert_eq!(
            recording_path("c1", &r),
            Some(PathBuf::from("/data/recordings/c1.wav"))
        );
        assert_eq!(recording_path("c2", &r), None, "another contact's file");
    }

    #[test]
    fn config_errors_name_the_key() {
        assert_eq!(RecordingsConfig::default().validate(), Ok(()));
        let bad = RecordingsConfig {
            sweep_interval_s: 0,
            ..Default::default()
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .starts_with("recordings.sweep_interval_s")
        );
    }
}
