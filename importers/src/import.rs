//! The import pipeline: a blocking reader thread turns rows into leads or outcomes (mapping, E.164,
//! dedupe, DNC, time zones) and hands batches over a bounded channel to the async writer, which
//! commits each batch in one transaction together with the job's progress.
//!
//! Every row read ends in exactly one outcome, decided in this order: rejected (blank row, no
//! valid number, unreadable, no candidate time zone) → duplicate (key already seen in this file,
//! or already in the list under the skip policy) → dnc (CRM do-not-call flag, or every valid number
//! on a DNC list) → accepted (inserted, or updated under the update policy).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use foundation::{Clock, Db};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::dnc::DncIndex;
use crate::mapping::{Mapping, MappingSpec};
use crate::phone::Normalizer;
use crate::reader::{ReadRow, RecordReader};
use crate::report::{ImportReport, bump};
use crate::store::{self, Batch, LeadField, LeadText, NewLead, NewPhone, RowOutcome};
use crate::tz::{self, LeadPlace};

/// What to do with a row whose key is already a lead of the list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DuplicatePolicy {
    /// Count it as a duplicate and leave the lead alone.
    #[default]
    Skip,
    /// Overwrite the lead's fields and numbers from the row (counted as accepted/updated).
    Update,
}

/// How to import one file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImportOptions {
    /// The list's name; created when it does not exist.
    pub list: String,
    /// Default region (ISO, e.g. `US`) for numbers without `+CC`. `None`: the list's default
    /// (a new list gets `US`).
    pub region: Option<String>,
    /// An explicit column mapping (see [`MappingSpec::load`] for files); `None` recognises headers.
    pub mapping: Option<MappingSpec>,
    /// Extra DNC files to scrub against for this import only (one number a line).
    pub dnc_files: Vec<PathBuf>,
    pub duplicate_policy: DuplicatePolicy,
    /// Priority of leads whose row has no priority column value.
    pub default_priority: i64,
    /// Rows per transaction.
    pub batch_rows: usize,
    /// Continue a failed job (its public id): rows it committed are skipped.
    pub resume_job: Option<String>,
    /// Use this public id for the new job (lets an HTTP handler return the id before the import
    /// finishes); `None` generates one.
    pub job_id: Option<String>,
    /// Audit actor, e.g. `user:alice`.
    pub actor: String,
    /// The PostgreSQL URL of `db`, to enable the COPY fast path (the Any driver cannot COPY). Never
    /// serialised (it may hold a password). Ignored on SQLite.
    #[serde(skip)]
    pub postgres_url: Option<String>,
}

impl ImportOptions {
    pub fn new(list: &str) -> Self {
        Self {
            list: list.to_owned(),
            region: None,
            mapping: None,
            dnc_files: Vec::new(),
            duplicate_policy: DuplicatePolicy::Skip,
            default_priority: 0,
            batch_rows: 20_000,
            resume_job: None,
            job_id: None,
            actor: "system".to_owned(),
            postgres_url: None,
        }
    }
}

/// Progress, reported after every committed batch.
#[derive(Debug, Clone, Serialize)]
pub struct Progress {
    pub job_id: String,
    pub rows_committed: u64,
    pub bytes_read: u64,
    pub bytes_total: u64,
    pub accepted: u64,
    pub rejected: u64,
    pub duplicates: u64,
    pub dnc: u64,
}

/// Imports `path` into the list named in `options`. Returns the final report; on a failure after
/// the job was created, the job is marked `failed` with the committed prefix (resumable with
/// `resume_job`) and the error names the job.
pub async fn import_file(
    db: &Db,
    clock: &dyn Clock,
    path: &Path,
    options: &ImportOptions,
    progress: &(dyn Fn(&Progress) + Send + Sync),
) -> anyhow::Result<ImportReport> {
    let started = Instant::now();
    let p = path.to_owned();
    let reader = tokio::task::spawn_blocking(move || RecordReader::open(&p)).await??;
    let file_name = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    // A mapping that does not fit the file is refused before the list or a job is created.
    let mapping = Mapping::resolve(&reader.headers, options.mapping.as_ref())?;
    let list = store::ensure_list(
        db,
        clock,
        &options.list,
        options.region.as_deref().unwrap_or("US"),
    )
    .await?;
    let region = options
        .region
        .clone()
        .unwrap_or_else(|| list.default_region.clone());
    let normalizer = Normalizer::new(&region)?;

    // The job: new, or the failed one being resumed.
    let (job_id, public_id, skip_rows, mut report) = match &options.resume_job {
        Some(resume) => {
            let job = store::job(db, resume)
                .await?
                .with_context(|| format!("no import job {resume} to resume"))?;
            anyhow::ensure!(
                job.list_id == list.id,
                "job {resume} belongs to another list"
            );
            anyhow::ensure!(job.state != "completed", "job {resume} already completed");
            anyhow::ensure!(
                job.headers == reader.headers,
                "job {resume} read a file with other columns"
            );
            store::set_job_state(db, clock.now_ms(), job.id, "running", None, None).await?;
            let mut report = job.report;
            report.resumed_after_row = job.rows_committed;
            report.error = None;
            (job.id, job.public_id, job.rows_committed, report)
        }
        None => {
            let public_id = options
                .job_id
                .clone()
                .unwrap_or_else(|| foundation::ids::public_id("import", clock.now_ms()));
            let opts = serde_json::json!({ "options": options, "headers": reader.headers });
            let id = store::create_job(
                db,
                clock.now_ms(),
                &public_id,
                list.id,
                &file_name,
                reader.file_size,
                &opts.to_string(),
            )
            .await?;
            let report = ImportReport {
                job_id: public_id.clone(),
                list: list.name.clone(),
                list_id: list.id,
                file: file_name.clone(),
                ..Default::default()
            };
            (id, public_id, 0, report)
        }
    };
    report.state = "running".into();
    report.format = Some(reader.format.clone());
    report.mapping = mapping.summary();

    let result = run(
        db, clock, job_id, &public_id, list.id, reader, normalizer, mapping, options, skip_rows,
        report, progress,
    )
    .await;
    let now = clock.now_ms();
    match result {
        Ok(mut report) => {
            report.state = "completed".into();
            report.elapsed_ms = started.elapsed().as_millis() as u64;
            store::set_job_state(db, now, job_id, "completed", Some(&report), None).await?;
            foundation::audit::record(
                db.pool(),
                now,
                &foundation::audit::Entry {
                    actor: &options.actor,
                    action: "import.completed",
                    subject: Some(&public_id),
                    result: "ok",
                    detail: Some(serde_json::json!({
                        "list": list.name, "file": file_name, "rows_read": report.rows_read,
                        "accepted": report.accepted, "rejected": report.rejected,
                        "duplicates": report.duplicates, "dnc": report.dnc,
                    })),
                },
            )
            .await?;
            Ok(report)
        }
        Err(e) => {
            let msg = format!("{e:#}");
            let _ = store::set_job_state(db, now, job_id, "failed", None, Some(&msg)).await;
            let committed = store::job(db, &public_id)
                .await
                .ok()
                .flatten()
                .map(|j| j.rows_committed)
                .unwrap_or(0);
            Err(e.context(format!(
                "import job {public_id} failed after committing {committed} rows; resume it with resume_job = {public_id:?}"
            )))
        }
    }
}

/// Reads a job's report (progress while it runs, the final report when done).
pub async fn job_report(db: &Db, job_public_id: &str) -> anyhow::Result<Option<ImportReport>> {
    Ok(store::job(db, job_public_id).await?.map(|j| j.report))
}

#[allow(clippy::too_many_arguments)]
async fn run(
    db: &Db,
    clock: &dyn Clock,
    job_id: i64,
    public_id: &str,
    list_id: i64,
    mut reader: RecordReader,
    normalizer: Normalizer,
    mapping: Mapping,
    options: &ImportOptions,
    skip_rows: u64,
    mut report: ImportReport,
    progress: &(dyn Fn(&Progress) + Send + Sync),
) -> anyhow::Result<ImportReport> {
    // DNC: stored sources plus this import's files.
    let mut dnc = DncIndex::load(db).await?;
    for f in &options.dnc_files {
        let cc = normalizer.country_code();
        let p = f.clone();
        let (set, _, _) =
            tokio::task::spawn_blocking(move || crate::dnc::read_registry_file(&p, cc)).await??;
        let name = f
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        dnc.files.push((name, set));
    }
    report
        .dnc_sources
        .insert("internal".into(), dnc.internal.len() as u64);
    let now = clock.now_ms();
    for (info, set) in &dnc.registries {
        report
            .dnc_sources
            .insert(format!("registry:{}", info.name), set.len() as u64);
        if info.is_stale(now, std::time::Duration::from_secs(31 * 86_400)) {
            let w = format!(
                "DNC registry {:?} was downloaded {} days ago: telemarketing campaigns must not dial with a copy older than 31 days",
                info.name,
                (now - info.downloaded_at) / 86_400_000
            );
            if !report.warnings.contains(&w) {
                report.warnings.push(w);
            }
        }
    }
    for (name, set) in &dnc.files {
        report
            .dnc_sources
            .insert(format!("file:{name}"), set.len() as u64);
    }
    let keys = store::existing_keys(db, list_id, (skip_rows > 0).then_some(job_id)).await?;

    let pg_copy = match (&options.postgres_url, db.backend()) {
        (Some(url), foundation::Backend::Postgres) => {
            Some(crate::pgcopy::PgCopyWriter::connect(url).await?)
        }
        _ => None,
    };
    let sqlite_bulk = crate::sqlite_bulk::SqliteBulkWriter::for_db(db).await?;
    let mut last = report.clone();
    let (tx, mut rx) = mpsc::channel::<Batch>(2);
    // Written batches travel back to the row thread, which frees their strings and reuses their
    // buffers (see `flush`).
    let (spent_tx, spent_rx) = std::sync::mpsc::channel::<Batch>();
    let batch_rows = options.batch_rows.max(1);
    let policy = options.duplicate_policy;
    let default_priority = options.default_priority;
    let bytes_total = reader.file_size;
    // The rows are processed on a thread of their own (named, so profiles and the benchmark's
    // per-thread figures show it); its result comes back over a oneshot.
    let (produced_tx, produced_rx) = tokio::sync::oneshot::channel();
    let produce = move || -> anyhow::Result<()> {
        let mut p = Processor {
            tz_memo: FastMap::default(),
            columns: mapping
                .headers
                .iter()
                .map(|h| std::sync::Arc::from(h.as_str()))
                .collect(),
            mapping,
            normalizer,
            dnc,
            crm_keys: keys
                .crm
                .into_iter()
                .map(|(k, v)| (k, Seen::from_existing(v)))
                .collect(),
            tel_keys: keys
                .tel
                .into_iter()
                .map(|(k, v)| (k, Seen::from_existing(v)))
                .collect(),
            policy,
            default_priority,
        };
        let mut fields: Vec<String> = Vec::new();
        let mut row_no: u64 = 0;
        // Skip what an earlier run committed.
        while row_no < skip_rows {
            match reader.next_row(&mut fields) {
                ReadRow::End => anyhow::bail!(
                    "the file has only {row_no} rows but the job committed {skip_rows}"
                ),
                ReadRow::Unreadable(e) if e.starts_with("io:") => {
                    anyhow::bail!("reading row {}: {e}", row_no + 1)
                }
                _ => row_no += 1,
            }
        }
        let mut batch = Batch::default();
        loop {
            let read = reader.next_row(&mut fields);
            match read {
                ReadRow::End => break,
                ReadRow::Unreadable(e) if e.starts_with("io:") => {
                    // Commit what is complete, then fail: the job stays resumable.
                    flush(&tx, &spent_rx, &mut batch, row_no, &report, &reader)?;
                    anyhow::bail!("reading row {}: {e}", row_no + 1);
                }
                ReadRow::Unreadable(e) => {
                    row_no += 1;
                    report.rows_read += 1;
                    report.rejected += 1;
                    bump(&mut report.rejected_by_reason, "unreadable");
                    batch.outcomes.push(RowOutcome {
                        source_row: row_no as i64,
                        outcome: "rejected",
                        reason: format!("unreadable: {e}"),
                        fields_json: "[]".into(),
                    });
                }
                ReadRow::Row => {
                    row_no += 1;
                    p.row(&fields, row_no, &mut report, &mut batch);
                }
            }
            if batch.leads.len() + batch.outcomes.len() >= batch_rows {
                flush(&tx, &spent_rx, &mut batch, row_no, &report, &reader)?;
            }
        }
        flush(&tx, &spent_rx, &mut batch, row_no, &report, &reader)?;
        Ok(())
    };
    std::thread::Builder::new()
        .name("import-rows".into())
        .spawn(move || {
            let _ = produced_tx.send(produce());
        })
        .context("starting the import's row thread")?;

    let mut write_error = None;
    let mut on_commit = |report: ImportReport, rows_end: u64, bytes_read: u64| {
        progress(&Progress {
            job_id: public_id.to_owned(),
            rows_committed: rows_end,
            bytes_read,
            bytes_total,
            accepted: report.accepted,
            rejected: report.rejected,
            duplicates: report.duplicates,
            dnc: report.dnc,
        });
        last = report;
    };
    // PostgreSQL: two batches in flight, each on its own connection. The next batch's COPYs run
    // while the previous one finishes (the server's per-row foreign-key checks are most of the
    // time), and commits stay in order: a batch advances the job and commits only after the one
    // before it did, so `rows_committed` is always a committed prefix.
    type InFlight = (
        tokio::task::JoinHandle<anyhow::Result<crate::pgcopy::Staged>>,
        ImportReport,
        u64,
        u64,
    );
    let mut pg_in_flight: Option<InFlight> = None;
    async fn commit_staged(
        h: tokio::task::JoinHandle<anyhow::Result<crate::pgcopy::Staged>>,
    ) -> anyhow::Result<Batch> {
        h.await.context("a COPY task panicked")??.commit().await
    }
    while let Some(mut batch) = rx.recv().await {
        let report = std::mem::take(&mut batch.report);
        let (rows_end, bytes_read) = (batch.rows_end, batch.bytes_read);
        batch.report = report.clone();
        if let Some(w) = &pg_copy {
            let (w, now) = (w.clone(), clock.now_ms());
            let staging = tokio::spawn(async move { w.stage(now, list_id, job_id, batch).await });
            let Some((prev, r, end, bytes)) =
                pg_in_flight.replace((staging, report, rows_end, bytes_read))
            else {
                continue;
            };
            match commit_staged(prev).await {
                Ok(spent) => {
                    let _ = spent_tx.send(spent);
                    on_commit(r, end, bytes);
                }
                Err(e) => {
                    write_error = Some(e);
                    break;
                }
            }
            continue;
        }
        let written = match &sqlite_bulk {
            Some(w) => w
                .write_batch(db, clock.now_ms(), list_id, job_id, batch)
                .await
                .map(Some),
            None => store::write_batch(db, clock.now_ms(), list_id, job_id, batch)
                .await
                .map(|()| None),
        };
        match written {
            Ok(spent) => {
                if let Some(b) = spent {
                    let _ = spent_tx.send(b);
                }
            }
            Err(e) => {
                write_error = Some(e);
                break;
            }
        }
        on_commit(report, rows_end, bytes_read);
    }
    if let Some((h, r, end, bytes)) = pg_in_flight.take() {
        if write_error.is_none() {
            match commit_staged(h).await {
                Ok(_) => on_commit(r, end, bytes),
                Err(e) => write_error = Some(e),
            }
        } else {
            // An earlier batch failed: this one is rolled back (dropped), never committed.
            let _ = h.await;
        }
    }
    drop(rx);
    if let Some(w) = pg_copy {
        w.close().await;
    }
    if let Some(w) = sqlite_bulk {
        w.close().await;
    }
    let produced = produced_rx
        .await
        .context("the import's row thread panicked")?;
    if let Some(e) = write_error {
        return Err(e);
    }
    produced?;
    Ok(last)
}

fn flush(
    tx: &mpsc::Sender<Batch>,
    spent: &std::sync::mpsc::Receiver<Batch>,
    batch: &mut Batch,
    row_no: u64,
    report: &ImportReport,
    reader: &RecordReader,
) -> anyhow::Result<()> {
    // The next batch reuses the buffers of one the writer is done with; the strings of those are
    // freed here, on the thread that allocated them (glibc frees from another thread were ~1.3 s
    // of the writer's time at 1,000,000 rows).
    let mut next = Batch::default();
    while let Ok(mut old) = spent.try_recv() {
        old.leads.clear();
        old.outcomes.clear();
        if next.leads.capacity() == 0 {
            next.leads = std::mem::take(&mut old.leads);
            next.outcomes = std::mem::take(&mut old.outcomes);
        }
    }
    let mut b = std::mem::replace(batch, next);
    b.rows_end = row_no;
    b.report = report.clone();
    b.report.windows_1252_rows = reader.windows_1252_rows;
    b.bytes_read = reader.bytes_read();
    tx.blocking_send(b)
        .map_err(|_| anyhow::anyhow!("the database writer stopped"))
}

/// The pipeline's hash maps: foldhash (seeded per process) instead of SipHash, which was ~3% of
/// an import's CPU on the dedupe keys alone.
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

#[derive(Debug, Clone, Copy)]
enum Seen {
    /// Already a lead of the list (id), not yet met in this file.
    Lead(i64),
    /// Met earlier in this file (or committed by the job being resumed).
    InFile,
}

impl Seen {
    /// From `store::existing_keys`: `(lead id, committed by the job being resumed)`.
    fn from_existing((id, mine): (i64, bool)) -> Self {
        if mine { Seen::InFile } else { Seen::Lead(id) }
    }
}

/// What a number's time-zone candidates depend on (see `tz::candidates`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct TzKey {
    explicit: Option<chrono_tz::Tz>,
    /// (US ZIP?, the postal table's zone list) when the postal code is known.
    postal: Option<(bool, usize)>,
    region: Option<&'static str>,
    /// The NANP area-code row (published prefix or hand-written NPA), `None` outside +1.
    area: tz::AreaKey,
}

/// One key's candidates, as stored and counted.
#[derive(Debug, Clone)]
struct TzMemo {
    json: std::sync::Arc<str>,
    ambiguous: bool,
    empty: bool,
    /// Every (zone, source) pair's source, for the report's per-source counts.
    sources: std::sync::Arc<[&'static str]>,
}

impl TzMemo {
    fn of(c: &tz::Candidates) -> Self {
        Self {
            json: c.to_json().into(),
            ambiguous: c.ambiguous(),
            empty: c.is_empty(),
            sources: c
                .zones
                .iter()
                .flat_map(|z| z.sources.iter().map(|s| s.as_str()))
                .collect(),
        }
    }
}

struct Processor {
    mapping: Mapping,
    tz_memo: FastMap<TzKey, TzMemo>,
    /// The headers as shared strings (every phone keeps its column's name).
    columns: Vec<std::sync::Arc<str>>,
    normalizer: Normalizer,
    dnc: DncIndex,
    crm_keys: FastMap<String, Seen>,
    tel_keys: FastMap<u64, Seen>,
    policy: DuplicatePolicy,
    default_priority: i64,
}

fn cell(fields: &[String], i: Option<usize>) -> Option<&str> {
    let v = fields.get(i?)?.trim();
    (!v.is_empty()).then_some(v)
}

fn truthy(v: &str) -> bool {
    matches!(
        v.trim().to_ascii_lowercase().as_str(),
        "1" | "true" | "yes" | "y" | "x" | "t" | "dnc" | "opted out"
    )
}

/// Appends `s` as a JSON string, escaped exactly as `serde_json` does (without its allocation).
fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let esc = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[start..i]);
        if esc.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.push_str("\\u00");
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 0xf) as usize] as char);
        } else {
            out.push_str(esc);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

impl Processor {
    fn row(
        &mut self,
        fields: &[String],
        row_no: u64,
        report: &mut ImportReport,
        batch: &mut Batch,
    ) {
        report.rows_read += 1;
        let outcome =
            |report: &mut ImportReport, batch: &mut Batch, kind: &'static str, reason: String| {
                let map = match kind {
                    "rejected" => {
                        report.rejected += 1;
                        &mut report.rejected_by_reason
                    }
                    "duplicate" => {
                        report.duplicates += 1;
                        &mut report.duplicates_by_reason
                    }
                    _ => {
                        report.dnc += 1;
                        &mut report.dnc_by_source
                    }
                };
                bump(map, &reason);
                batch.outcomes.push(RowOutcome {
                    source_row: row_no as i64,
                    outcome: kind,
                    reason,
                    fields_json: serde_json::to_string(fields).expect("strings serialise"),
                });
            };
        if fields.iter().all(|f| f.trim().is_empty()) {
            return outcome(report, batch, "rejected", "blank_row".into());
        }

        // Numbers, in column order, each valid number once.
        let mut valid: Vec<(crate::phone::Phone, usize, &str)> = Vec::new();
        let mut first_invalid: Option<&'static str> = None;
        for &col in &self.mapping.phones {
            let raw = fields.get(col).map(|s| s.trim()).unwrap_or("");
            if raw.is_empty() {
                continue;
            }
            report.numbers.seen += 1;
            match self.normalizer.normalize(raw) {
                Ok(p) => {
                    if valid.iter().any(|(q, _, _)| q.digits == p.digits) {
                        report.numbers.repeated_in_row += 1;
                    } else {
                        report.numbers.valid += 1;
                        valid.push((p, col, raw));
                    }
                }
                Err(r) => {
                    report.numbers.invalid += 1;
                    bump(&mut report.numbers.invalid_by_reason, r.as_str());
                    first_invalid.get_or_insert(r.as_str());
                }
            }
        }
        if valid.is_empty() {
            let reason = match first_invalid {
                Some(r) => r.to_owned(),
                None => "no_phone".to_owned(),
            };
            return outcome(report, batch, "rejected", reason);
        }

        // Dedupe key.
        let crm_id = cell(fields, self.mapping.crm_id);
        let seen = match crm_id {
            Some(id) => match self.crm_keys.get_mut(id) {
                Some(s) => Some(std::mem::replace(s, Seen::InFile)),
                None => {
                    self.crm_keys.insert(id.to_owned(), Seen::InFile);
                    None
                }
            },
            None => self.tel_keys.insert(valid[0].0.digits, Seen::InFile),
        };
        let update_of = match seen {
            Some(Seen::InFile) => {
                return outcome(report, batch, "duplicate", "duplicate_in_file".into());
            }
            Some(Seen::Lead(_)) if self.policy == DuplicatePolicy::Skip => {
                return outcome(report, batch, "duplicate", "duplicate_in_list".into());
            }
            Some(Seen::Lead(id)) => Some(id),
            None => None,
        };

        // Do-not-call.
        if cell(fields, self.mapping.do_not_call).is_some_and(truthy) {
            return outcome(report, batch, "dnc", "crm_do_not_call".into());
        }
        let hits: Vec<Option<String>> = valid
            .iter()
            .map(|(p, _, _)| self.dnc.check(p.digits).map(|h| h.label()))
            .collect();
        for h in hits.iter().flatten() {
            report.numbers.dnc += 1;
            bump(&mut report.numbers.dnc_by_source, h);
        }
        if hits.iter().all(Option::is_some) {
            let first = hits[0].clone().expect("all hit");
            return outcome(report, batch, "dnc", first);
        }

        // Time zones.
        let explicit = cell(fields, self.mapping.timezone).and_then(tz::parse_explicit);
        let postal = cell(fields, self.mapping.postal_code);
        let place = LeadPlace { explicit, postal };
        let mut phones = Vec::with_capacity(valid.len());
        let mut dialable_any = false;
        let mut no_tz = 0;
        let postal_zones = postal.and_then(tz::postal_zones);
        // What the lead needs of its first number, before the numbers move into the phones.
        let country = valid[0].0.region;
        let mut text = LeadText::with_capacity(256);
        text.build(LeadField::DedupeKey, |b| match crm_id {
            Some(id) => {
                b.push_str("crm:");
                b.push_str(id);
            }
            None => {
                b.push_str("tel:");
                b.push_str(&valid[0].0.e164);
            }
        });
        for (pos, ((p, col, raw), hit)) in valid.into_iter().zip(&hits).enumerate() {
            // The candidates depend only on this key, so each distinct one is computed (and its
            // JSON written) once per import.
            let key = TzKey {
                explicit,
                postal: postal_zones
                    .map(|(kind, zones)| (kind == tz::PostalKind::UsZip, zones.as_ptr() as usize)),
                region: p.region,
                area: if p.country_code == 1 {
                    tz::nanp_area_key(p.national)
                } else {
                    tz::AreaKey::None
                },
            };
            let cands = self
                .tz_memo
                .entry(key)
                .or_insert_with(|| TzMemo::of(&tz::candidates(&p, &place)))
                .clone();
            let dialable = hit.is_none() && !cands.empty;
            if hit.is_none() && cands.empty {
                no_tz += 1;
            }
            dialable_any |= dialable;
            phones.push(NewPhone {
                position: pos as i64,
                e164: p.e164,
                extension: p.extension,
                raw: raw.to_owned(),
                source_column: self.columns[col].clone(),
                kind: p.kind.as_str(),
                region: p.region,
                tz_json: cands.json.clone(),
                tz_ambiguous: cands.ambiguous,
                dialable,
                dnc_source: hit.clone(),
            });
            if hit.is_none() {
                if cands.ambiguous {
                    report.numbers.timezone_ambiguous += 1;
                }
                for s in cands.sources.iter() {
                    bump(&mut report.numbers.timezone_by_source, s);
                }
            }
        }
        report.numbers.no_timezone += no_tz;
        if !dialable_any {
            return outcome(report, batch, "rejected", "no_timezone".into());
        }
        for ph in &phones {
            report.numbers.stored += 1;
            report.numbers.dialable += ph.dialable as u64;
            report.numbers.with_extension += ph.extension.is_some() as u64;
        }

        report.accepted += 1;
        if update_of.is_some() {
            report.updated += 1;
        } else {
            report.inserted += 1;
        }
        let (consent_at, consent_raw) = match cell(fields, self.mapping.consent_at) {
            Some(v) => match parse_time_ms(v) {
                Some(ms) => (Some(ms), None),
                None => (None, Some(v)),
            },
            None => (None, None),
        };
        text.build(LeadField::Attributes, |attributes| {
            attributes.push('{');
            let mut first = true;
            let mut attr = |k: &str, v: &str| {
                if !first {
                    attributes.push(',');
                }
                first = false;
                push_json_str(attributes, k);
                attributes.push(':');
                push_json_str(attributes, v);
            };
            for (i, name) in &self.mapping.attributes {
                if let Some(v) = cell(fields, Some(*i)) {
                    attr(name, v);
                }
            }
            if let Some(v) = consent_raw {
                attr("consent_at_unparsed", v);
            }
            if let Some(v) = cell(fields, self.mapping.timezone).filter(|_| explicit.is_none()) {
                attr("timezone_unrecognised", v);
            }
            if let Some(v) = cell(fields, self.mapping.country) {
                attr("country", v);
            }
            attributes.push('}');
        });
        let m = &self.mapping;
        for (field, col) in [
            (LeadField::FirstName, m.first_name),
            (LeadField::LastName, m.last_name),
            (LeadField::Email, m.email),
            (LeadField::PostalCode, m.postal_code),
            (LeadField::Subdivision, m.subdivision),
            (LeadField::ConsentType, m.consent_type),
            (LeadField::ConsentSource, m.consent_source),
        ] {
            text.set_opt(field, cell(fields, col));
        }
        text.set_opt(LeadField::CrmId, crm_id);
        batch.leads.push(NewLead {
            update_of,
            text,
            priority: cell(fields, self.mapping.priority)
                .and_then(|v| v.parse::<f64>().ok())
                .map(|v| v as i64)
                .unwrap_or(self.default_priority),
            state: "new",
            country,
            consent_at,
            source_row: row_no as i64,
            phones,
        });
    }
}

/// Epoch ms from RFC 3339, `YYYY-MM-DD[ HH:MM[:SS]]`, `MM/DD/YYYY[ HH:MM]` or epoch seconds/ms.
pub fn parse_time_ms(v: &str) -> Option<i64> {
    use chrono::{DateTime, NaiveDate, NaiveDateTime};
    let v = v.trim();
    // The common spreadsheet case first.
    if v.len() == 10
        && let Ok(d) = NaiveDate::parse_from_str(v, "%Y-%m-%d")
    {
        return Some(d.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis());
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(v) {
        return Some(t.timestamp_millis());
    }
    for f in [
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%m/%d/%Y %H:%M:%S",
        "%m/%d/%Y %H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(v, f) {
            return Some(t.and_utc().timestamp_millis());
        }
    }
    for f in ["%Y-%m-%d", "%m/%d/%Y"] {
        if let Ok(d) = NaiveDate::parse_from_str(v, f) {
            return Some(d.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis());
        }
    }
    match v.parse::<i64>() {
        Ok(n) if n > 100_000_000_000 => Some(n),
        Ok(n) if n > 100_000_000 => Some(n * 1000),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_escape_as_serde_json_does() {
        let all: String = (0u8..0x80).map(char::from).collect();
        for v in [
            all.as_str(),
            "",
            "plain",
            "é ü \u{2028} 😀",
            "\"q\" \\ end\\",
        ] {
            let mut out = String::new();
            push_json_str(&mut out, v);
            assert_eq!(out, serde_json::to_string(v).unwrap(), "{v:?}");
        }
    }

    #[test]
    fn consent_times() {
        assert_eq!(parse_time_ms("2024-03-01"), Some(1_709_251_200_000));
        assert_eq!(
            parse_time_ms("2024-03-01T00:00:00Z"),
            Some(1_709_251_200_000)
        );
        assert_eq!(parse_time_ms("03/01/2024"), Some(1_709_251_200_000));
        assert_eq!(parse_time_ms("1709251200"), Some(1_709_251_200_000));
        assert_eq!(parse_time_ms("yesterday"), None);
    }
}
