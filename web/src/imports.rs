//! List uploads: a CRM export streamed to disk, imported in the background, watched by job id.
//!
//! `POST /api/v1/lists/{list}/imports` streams the multipart `file` field to the uploads directory
//! (never held whole in memory), starts the import as tracked work (a shutdown lets it finish or
//! records where it stopped; it is resumable), and answers `202 {job_id}` as soon as the job
//! exists — or `400` at once when the file cannot be read or the optional `mapping` field (the CLI's
//! mapping format, JSON or TOML) does not parse or does not fit the file's columns. Progress and the final report come from
//! `GET …/imports/{job}`; the rows that did not become leads, with their reasons, from
//! `GET …/imports/{job}/rejected.csv`.
//!
//! `GET …/imports/{job}/events` pushes the progress as server-sent events (the console's upload
//! page follows it; no polling): a `progress` event at every committed batch, then one `report`
//! event with the final report, and the stream ends. Batches are pushed from the import task
//! itself ([`Jobs`], kept by this router); a job running on another node is followed through
//! its database row instead (read every 500 ms by the server).

use std::collections::HashMap;
use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Extension;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use tokio::sync::watch;

use axum::Json;
use axum::extract::{DefaultBodyLimit, Multipart, Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use foundation::accounts::Role;
use serde::Serialize;
use tokio::io::AsyncWriteExt;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};

const ROLES: &[Role] = &[Role::Admin, Role::CampaignManager];
/// Largest upload accepted (a million-row export is ~100 MB).
const MAX_UPLOAD: u64 = 2 * 1024 * 1024 * 1024;
/// Largest `mapping` field accepted.
const MAX_MAPPING: usize = 64 * 1024;

/// The progress of the imports running in this process, by job id: the upload's import task
/// publishes every committed batch, `…/events` streams subscribe.
#[derive(Default)]
pub(crate) struct Jobs {
    running: Mutex<HashMap<String, watch::Sender<ImportProgress>>>,
}

impl Jobs {
    fn start(&self, job: &str) -> watch::Sender<ImportProgress> {
        let (tx, _) = watch::channel(ImportProgress::default());
        self.running
            .lock()
            .expect("import jobs")
            .insert(job.to_owned(), tx.clone());
        tx
    }

    fn finish(&self, job: &str) {
        self.running.lock().expect("import jobs").remove(job);
    }

    fn subscribe(&self, job: &str) -> Option<watch::Receiver<ImportProgress>> {
        self.running
            .lock()
            .expect("import jobs")
            .get(job)
            .map(watch::Sender::subscribe)
    }
}

/// A running import's figures (the `progress` event).
#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
pub struct ImportProgress {
    /// Rows read and committed so far.
    pub rows_read: u64,
    pub accepted: u64,
    pub rejected: u64,
    pub duplicates: u64,
    pub dnc: u64,
    /// Bytes of the file read so far, of `bytes_total` (0 when the file size is unknown).
    pub bytes_read: u64,
    pub bytes_total: u64,
}

impl From<&importers::ImportReport> for ImportProgress {
    fn from(r: &importers::ImportReport) -> Self {
        ImportProgress {
            rows_read: r.rows_read,
            accepted: r.accepted,
            rejected: r.rejected,
            duplicates: r.duplicates,
            dnc: r.dnc,
            bytes_read: 0,
            bytes_total: 0,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ImportStarted {
    pub job_id: String,
    /// Where to watch progress and read the report.
    pub status_url: String,
}

fn safe_name(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or("upload");
    let cleaned: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || ".-_".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(80)
        .collect();
    if cleaned.is_empty() {
        "upload.csv".into()
    } else {
        cleaned
    }
}

/// Uploads a CRM export and starts importing it into the list (created when new).
///
/// Multipart fields: `file` (required; CSV/TSV, gzip or XLSX), `region` (ISO default region),
/// `duplicate_policy` (`skip` or `update`), `mapping` (optional: which column is what, overriding
/// header recognition; the CLI's `--mapping` file format as JSON or TOML text, e.g.
/// `{"auto": false, "crm_id": "Acct", "phones": ["Cell", "Work"], "ignore": ["Notes"]}`; keys:
/// `auto`, `crm_id`, `phones`, `first_name`, `last_name`, `email`, `postal_code`, `subdivision`,
/// `country`, `timezone`, `priority`, `consent_type`, `consent_source`, `consent_at`,
/// `do_not_call`, `ignore`, `rename`). A mapping that does not parse, names a column the file does
/// not have, gives a column two roles or leaves no phone column is refused with 400 naming it.
#[utoipa::path(post, path = "/api/v1/lists/{list}/imports", tag = "lists", security(("api_key" = []), ("session" = [])),
    params(("list" = String, Path)),
    request_body(content_type = "multipart/form-data", description = "fields: file (required), region, duplicate_policy (skip | update), \
        mapping (optional JSON or TOML text, the `dialbridge import --mapping` format: auto, crm_id, phones [ordered], first_name, \
        last_name, email, postal_code, subdivision, country, timezone, priority, consent_type, consent_source, consent_at, \
        do_not_call, ignore [columns dropped], rename {header: attribute}); 400 names an unparsable mapping or a column the file lacks"),
    responses((status = 202, body = ImportStarted), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 413, body = ErrorBody)))]
async fn upload(
    State(st): State<AppState>,
    Extension(jobs): Extension<Arc<Jobs>>,
    caller: Caller,
    Path(list): Path<String>,
    mut form: Multipart,
) -> Result<Response, ApiError> {
    caller.require(ROLES)?;
    let job_id = foundation::ids::public_id("import", st.clock.now_ms());
    let mut opts = importers::ImportOptions::new(&list);
    opts.job_id = Some(job_id.clone());
    opts.actor = caller.actor();
    opts.postgres_url = st.postgres_url.clone();
    let mut path: Option<PathBuf> = None;
    while let Some(mut field) = form
        .next_field()
        .await
        .map_err(|e| ApiError::bad_request(format!("malformed upload: {e}")))?
    {
        match field.name().unwrap_or("") {
            "file" => {
                tokio::fs::create_dir_all(&st.uploads_dir)
                    .await
                    .map_err(anyhow::Error::from)?;
                let p = st.uploads_dir.join(format!(
                    "{job_id}-{}",
                    safe_name(field.file_name().unwrap_or("upload.csv"))
                ));
                let mut out = tokio::fs::File::create(&p)
                    .await
                    .map_err(anyhow::Error::from)?;
                let mut size = 0u64;
                while let Some(chunk) = field
                    .chunk()
                    .await
                    .map_err(|e| ApiError::bad_request(format!("upload interrupted: {e}")))?
                {
                    size += chunk.len() as u64;
                    if size > MAX_UPLOAD {
                        drop(out);
                        let _ = tokio::fs::remove_file(&p).await;
                        return Err(ApiError::new(
                            StatusCode::PAYLOAD_TOO_LARGE,
                            "payload_too_large",
                            "uploads are limited to 2 GiB",
                        ));
                    }
                    out.write_all(&chunk).await.map_err(anyhow::Error::from)?;
                }
                out.flush().await.map_err(anyhow::Error::from)?;
                path = Some(p);
            }
            "region" => {
                opts.region = Some(field.text().await.unwrap_or_default()).filter(|r| !r.is_empty())
            }
            "duplicate_policy" => {
                opts.duplicate_policy = match field.text().await.unwrap_or_default().as_str() {
                    "update" => importers::DuplicatePolicy::Update,
                    "skip" | "" => importers::DuplicatePolicy::Skip,
                    other => {
                        return Err(ApiError::bad_request(format!(
                            "duplicate_policy {other:?}: use skip or update"
                        )));
                    }
                }
            }
            "mapping" => {
                let text = field
                    .text()
                    .await
                    .map_err(|e| ApiError::bad_request(format!("mapping field: {e}")))?;
                if text.len() > MAX_MAPPING {
                    return Err(ApiError::bad_request(format!(
                        "the mapping field is over {MAX_MAPPING} bytes"
                    )));
                }
                // Checked against the file's columns when the import opens it (a 400 naming the column).
                // Empty (a form that always sends the field) means no override.
                if !text.trim().is_empty() {
                    let spec = importers::MappingSpec::parse(&text)
                        .map_err(|e| ApiError::bad_request(format!("mapping: {e:#}")))?;
                    opts.mapping = Some(spec);
                }
            }
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown form field {other:?}"
                )));
            }
        }
    }
    let path = path.ok_or_else(|| ApiError::bad_request("the form has no `file` field"))?;

    let (db, clock) = (st.db.clone(), st.clock.clone());
    let progress = jobs.start(&job_id);
    let (jobs, job) = (jobs.clone(), job_id.clone());
    let task = st.lifecycle.tracker().spawn(async move {
        let publish = |p: &importers::Progress| {
            progress.send_replace(ImportProgress {
                rows_read: p.rows_committed,
                accepted: p.accepted,
                rejected: p.rejected,
                duplicates: p.duplicates,
                dnc: p.dnc,
                bytes_read: p.bytes_read,
                bytes_total: p.bytes_total,
            });
        };
        let r = importers::import_file(&db, clock.as_ref(), &path, &opts, &publish).await;
        if let Err(e) = &r {
            tracing::warn!(error = %format!("{e:#}"), "import failed");
        }
        // The job's row is final now: subscribers read the report from it.
        jobs.finish(&job);
        r
    });
    // Answer once the job exists (so its status URL works at once), or with the error when the
    // file could not even be opened.
    let status_url = format!("/api/v1/lists/{list}/imports/{job_id}");
    loop {
        if task.is_finished() {
            return match task.await.map_err(anyhow::Error::from)? {
                Ok(_) => Ok((
                    StatusCode::ACCEPTED,
                    Json(ImportStarted { job_id, status_url }),
                )
                    .into_response()),
                Err(e) if importers::job_report(&st.db, &job_id).await?.is_some() => {
                    tracing::debug!(error = %e, "import failed after its job was created");
                    Ok((
                        StatusCode::ACCEPTED,
                        Json(ImportStarted { job_id, status_url }),
                    )
                        .into_response())
                }
                Err(e) => Err(ApiError::bad_request(format!("{e:#}"))),
            };
        }
        if importers::job_report(&st.db, &job_id).await?.is_some() {
            return Ok((
                StatusCode::ACCEPTED,
                Json(ImportStarted { job_id, status_url }),
            )
                .into_response());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn report_of(
    st: &AppState,
    list: &str,
    job: &str,
) -> Result<importers::ImportReport, ApiError> {
    let list_id = importers::store::list_by_name(&st.db, list)
        .await?
        .map(|l| l.id);
    match importers::store::job(&st.db, job).await? {
        Some(j) if Some(j.list_id) == list_id => Ok(j.report),
        _ => Err(ApiError::not_found("no such import job for this list")),
    }
}

/// Progress while the import runs, the full report when it is done (`state`: running, completed,
/// failed).
#[utoipa::path(get, path = "/api/v1/lists/{list}/imports/{job}", tag = "lists", security(("api_key" = []), ("session" = [])),
    params(("list" = String, Path), ("job" = String, Path)),
    responses((status = 200, description = "the import report: rows_read = accepted + rejected + duplicates + dnc"),
              (status = 404, body = ErrorBody)))]
async fn status(
    State(st): State<AppState>,
    caller: Caller,
    Path((list, job)): Path<(String, String)>,
) -> Result<Json<importers::ImportReport>, ApiError> {
    caller.require(ROLES)?;
    Ok(Json(report_of(&st, &list, &job).await?))
}

/// The import's progress pushed as server-sent events: `progress` (an [`ImportProgress`]) at
/// every committed batch, then `report` (the final report, as `GET …/imports/{job}`) once the
/// job is no longer running, and the stream ends. A finished job sends its `report` at once.
#[utoipa::path(get, path = "/api/v1/lists/{list}/imports/{job}/events", tag = "lists", security(("api_key" = []), ("session" = [])),
    params(("list" = String, Path), ("job" = String, Path)),
    responses((status = 200, content_type = "text/event-stream", body = ImportProgress,
               description = "`event: progress` with an ImportProgress, … then `event: report` with the import report"),
              (status = 404, body = ErrorBody)))]
async fn events(
    State(st): State<AppState>,
    Extension(jobs): Extension<Arc<Jobs>>,
    caller: Caller,
    Path((list, job)): Path<(String, String)>,
) -> Result<Sse<impl futures_util::Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    caller.require(ROLES)?;
    let first = report_of(&st, &list, &job).await?;
    let follow = Follow {
        st,
        list,
        job: job.clone(),
        live: jobs.subscribe(&job),
        first: Some(first),
        last: None,
        done: false,
    };
    let stream = futures_util::stream::unfold(follow, |mut f| async move {
        let ev = f.next().await?;
        Some((Ok(ev), f))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// One import's event stream.
struct Follow {
    st: AppState,
    list: String,
    job: String,
    /// The running job's figures when it runs in this process.
    live: Option<watch::Receiver<ImportProgress>>,
    first: Option<importers::ImportReport>,
    last: Option<ImportProgress>,
    done: bool,
}

impl Follow {
    async fn next(&mut self) -> Option<SseEvent> {
        if self.done {
            return None;
        }
        if let Some(r) = self.first.take() {
            if r.state != "running" {
                return Some(self.report(&r));
            }
            let p = ImportProgress::from(&r);
            self.last = Some(p.clone());
            return Some(progress_event(&p));
        }
        loop {
            let p = match &mut self.live {
                Some(rx) => match rx.changed().await {
                    Ok(()) => rx.borrow_and_update().clone(),
                    Err(_) => {
                        // The import ended: its row holds the final report.
                        self.live = None;
                        continue;
                    }
                },
                None => {
                    // Not (or no longer) running here: the job's row tells.
                    let r = match report_of(&self.st, &self.list, &self.job).await {
                        Ok(r) => r,
                        Err(e) => {
                            self.done = true;
                            return Some(
                                SseEvent::default()
                                    .event("error")
                                    .data(e.message.replace('\n', " ")),
                            );
                        }
                    };
                    if r.state != "running" {
                        return Some(self.report(&r));
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    ImportProgress::from(&r)
                }
            };
            if self.last.as_ref() != Some(&p) {
                self.last = Some(p.clone());
                return Some(progress_event(&p));
            }
        }
    }

    fn report(&mut self, r: &importers::ImportReport) -> SseEvent {
        self.done = true;
        SseEvent::default()
            .event("report")
            .data(serde_json::to_string(r).expect("reports serialize"))
    }
}

fn progress_event(p: &ImportProgress) -> SseEvent {
    SseEvent::default()
        .event("progress")
        .data(serde_json::to_string(p).expect("progress serializes"))
}

/// The rows that did not become leads (rejected, duplicate, DNC) with their reasons, as CSV.
#[utoipa::path(get, path = "/api/v1/lists/{list}/imports/{job}/rejected.csv", tag = "lists", security(("api_key" = []), ("session" = [])),
    params(("list" = String, Path), ("job" = String, Path)),
    responses((status = 200, content_type = "text/csv", body = String), (status = 404, body = ErrorBody)))]
async fn rejected_csv(
    State(st): State<AppState>,
    caller: Caller,
    Path((list, job)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    caller.require(ROLES)?;
    report_of(&st, &list, &job).await?;
    let mut buf = Vec::new();
    importers::write_outcomes_csv(&st.db, &job, None, &mut buf).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{job}-rejected.csv\""),
            ),
        ],
        buf,
    )
        .into_response())
}

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(upload))
        .routes(routes!(status))
        .routes(routes!(events))
        .routes(routes!(rejected_csv))
        .layer(Extension(Arc::new(Jobs::default())))
        .layer(DefaultBodyLimit::disable())
}
