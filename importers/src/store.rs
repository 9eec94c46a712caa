//! Database side of imports: lists, import jobs, and the batched writes of leads, their phones and
//! the per-row outcomes. All SQL is written once with `$N` placeholders and runs on SQLite and
//! PostgreSQL through `foundation::Db`.
//!
//! One batch = one write transaction that also advances the job's `rows_committed` and stores the
//! report as of that row, so a crash leaves a committed prefix that [`crate::ImportOptions::resume_job`]
//! continues from. Inserts are multi-row `INSERT … VALUES (…),(…)` statements of a few hundred rows
//! (below SQLite's 32,766 bound parameters), the one place where the SQL text differs by dialect
//! (placeholder style, see `values_sql`).

use std::collections::HashMap;

use anyhow::Context;
use foundation::{Backend, Clock, Db};
use serde::Serialize;
use sqlx::{AssertSqlSafe, Row};

use crate::report::ImportReport;

/// A contact list.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct LeadList {
    pub id: i64,
    pub name: String,
    pub default_region: String,
}

/// Finds the list by name, creating it (with `default_region`) if needed.
pub async fn ensure_list(
    db: &Db,
    clock: &dyn Clock,
    name: &str,
    default_region: &str,
) -> anyhow::Result<LeadList> {
    if let Some(l) = list_by_name(db, name).await? {
        return Ok(l);
    }
    let now = clock.now_ms();
    sqlx::query(
        "INSERT INTO lead_lists (name, default_region, created_at, updated_at) VALUES ($1, $2, $3, $3) \
         ON CONFLICT (name) DO NOTHING",
    )
    .bind(name)
    .bind(default_region.to_ascii_uppercase())
    .bind(now)
    .execute(db.pool())
    .await?;
    list_by_name(db, name)
        .await?
        .context("list vanished after creation")
}

pub async fn list_by_name(db: &Db, name: &str) -> anyhow::Result<Option<LeadList>> {
    let row = sqlx::query("SELECT id, name, default_region FROM lead_lists WHERE name = $1")
        .bind(name)
        .fetch_optional(db.pool())
        .await?;
    Ok(row.map(|r| LeadList {
        id: r.get("id"),
        name: r.get("name"),
        default_region: r.get("default_region"),
    }))
}

/// Number of leads in a list.
pub async fn lead_count(db: &Db, list_id: i64) -> anyhow::Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT COUNT(*) FROM leads WHERE list_id = $1")
            .bind(list_id)
            .fetch_one(db.pool())
            .await?,
    )
}

/// One phone to write.
#[derive(Debug, Clone)]
pub struct NewPhone {
    pub position: i64,
    pub e164: String,
    pub extension: Option<String>,
    pub raw: String,
    /// The header of the column the number came from (shared by every phone of that column).
    pub source_column: std::sync::Arc<str>,
    pub kind: &'static str,
    pub region: Option<&'static str>,
    /// JSON candidates (shared by every number with the same time-zone inputs).
    pub tz_json: std::sync::Arc<str>,
    pub tz_ambiguous: bool,
    pub dialable: bool,
    pub dnc_source: Option<String>,
}

/// A lead's text fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeadField {
    DedupeKey,
    CrmId,
    FirstName,
    LastName,
    Email,
    PostalCode,
    Subdivision,
    /// JSON object of unmapped columns (always set).
    Attributes,
    ConsentType,
    ConsentSource,
}

/// A lead's text fields in one allocation (ten separate strings a row were a third of the
/// import's allocator time): each field is a span of `buf`, or absent.
#[derive(Debug, Clone, Default)]
pub struct LeadText {
    buf: String,
    spans: [(u32, u32); 10],
    present: u16,
}

impl LeadText {
    pub fn with_capacity(n: usize) -> Self {
        Self {
            buf: String::with_capacity(n),
            ..Self::default()
        }
    }

    /// Sets `field` (a field is set once; setting it again appends a new copy).
    pub fn set(&mut self, field: LeadField, value: &str) {
        let start = self.buf.len();
        self.buf.push_str(value);
        self.spans[field as usize] = (start as u32, self.buf.len() as u32);
        self.present |= 1 << field as u16;
    }

    /// Sets `field` to what `write` appends.
    pub fn build(&mut self, field: LeadField, write: impl FnOnce(&mut String)) {
        let start = self.buf.len();
        write(&mut self.buf);
        self.spans[field as usize] = (start as u32, self.buf.len() as u32);
        self.present |= 1 << field as u16;
    }

    pub fn set_opt(&mut self, field: LeadField, value: Option<&str>) {
        if let Some(v) = value {
            self.set(field, v);
        }
    }

    pub fn get(&self, field: LeadField) -> Option<&str> {
        (self.present & (1 << field as u16) != 0).then(|| {
            let (a, b) = self.spans[field as usize];
            &self.buf[a as usize..b as usize]
        })
    }
}

/// One lead to insert, or to update when `update_of` is set.
#[derive(Debug, Clone, Default)]
pub struct NewLead {
    pub update_of: Option<i64>,
    /// The text fields: dedupe key, CRM id, names, email, postal code, subdivision, attributes,
    /// consent type and source (see the accessors).
    pub text: LeadText,
    pub priority: i64,
    pub state: &'static str,
    pub country: Option<&'static str>,
    pub consent_at: Option<i64>,
    pub source_row: i64,
    pub phones: Vec<NewPhone>,
}

impl NewLead {
    /// `crm:<id>` or `tel:<first valid E.164>`.
    pub fn dedupe_key(&self) -> &str {
        self.text.get(LeadField::DedupeKey).unwrap_or("")
    }
    pub fn crm_id(&self) -> Option<&str> {
        self.text.get(LeadField::CrmId)
    }
    pub fn first_name(&self) -> Option<&str> {
        self.text.get(LeadField::FirstName)
    }
    pub fn last_name(&self) -> Option<&str> {
        self.text.get(LeadField::LastName)
    }
    pub fn email(&self) -> Option<&str> {
        self.text.get(LeadField::Email)
    }
    pub fn postal_code(&self) -> Option<&str> {
        self.text.get(LeadField::PostalCode)
    }
    pub fn subdivision(&self) -> Option<&str> {
        self.text.get(LeadField::Subdivision)
    }
    /// JSON object of unmapped columns.
    pub fn attributes(&self) -> &str {
        self.text.get(LeadField::Attributes).unwrap_or("{}")
    }
    pub fn consent_type(&self) -> Option<&str> {
        self.text.get(LeadField::ConsentType)
    }
    pub fn consent_source(&self) -> Option<&str> {
        self.text.get(LeadField::ConsentSource)
    }
}

/// A row that did not become a lead.
#[derive(Debug, Clone)]
pub struct RowOutcome {
    pub source_row: i64,
    pub outcome: &'static str,
    pub reason: String,
    pub fields_json: String,
}

/// Rows processed together and committed in one transaction.
#[derive(Debug, Default)]
pub struct Batch {
    /// Data rows read from the file when this batch closed (the job's new `rows_committed`).
    pub rows_end: u64,
    /// Bytes of the input read so far (progress).
    pub bytes_read: u64,
    pub leads: Vec<NewLead>,
    pub outcomes: Vec<RowOutcome>,
    pub report: ImportReport,
}

/// `INSERT … VALUES (…),(…)` for `rows` rows of `cols` parameters. PostgreSQL gets `$N`; SQLite
/// gets anonymous `?`: sqlx-sqlite looks every `$N` up by name, and SQLite's name lookup is a linear
/// scan, so a statement with thousands of `$N` costs O(n²) (70% of the import time when measured).
pub(crate) fn values_sql(
    backend: Backend,
    head: &str,
    cols: usize,
    rows: usize,
    tail: &str,
) -> String {
    let mut s = String::with_capacity(head.len() + rows * cols * 5 + tail.len());
    s.push_str(head);
    s.push_str(" VALUES ");
    let mut n = 1;
    for r in 0..rows {
        if r > 0 {
            s.push(',');
        }
        s.push('(');
        for c in 0..cols {
            if c > 0 {
                s.push(',');
            }
            if backend == Backend::Sqlite {
                s.push('?');
            } else {
                s.push('$');
                s.push_str(&n.to_string());
                n += 1;
            }
        }
        s.push(')');
    }
    s.push_str(tail);
    s
}

/// The columns a new lead is written with, in bind (and COPY field) order; `pgcopy` adds `id`.
pub(crate) const LEAD_COLUMNS: &str = "list_id, dedupe_key, crm_id, priority, state, first_name, last_name, email, \
     postal_code, subdivision, country, attributes, consent_type, consent_source, consent_at, \
     import_job_id, source_row, created_at, updated_at";
/// The columns of a phone row, in bind (and COPY field) order.
pub(crate) const PHONE_COLUMNS: &str = "lead_id, position, e164, extension, raw, source_column, number_type, \
     region, tz_candidates, tz_ambiguous, dialable, dnc, dnc_source";
/// The number of columns in a comma-separated list (so the counts cannot drift from the lists).
const fn column_count(list: &str) -> usize {
    let b = list.as_bytes();
    let (mut i, mut n) = (0, 1);
    while i < b.len() {
        if b[i] == b',' {
            n += 1;
        }
        i += 1;
    }
    n
}
pub(crate) const LEAD_COLS: usize = column_count(LEAD_COLUMNS);
pub(crate) const LEADS_PER_STMT: usize = 500;
pub(crate) const PHONE_COLS: usize = column_count(PHONE_COLUMNS);
pub(crate) const PHONES_PER_STMT: usize = 700;
pub(crate) const OUTCOME_COLS: usize = column_count(OUTCOME_COLUMNS);
pub(crate) const OUTCOMES_PER_STMT: usize = 1000;

/// The UPDATE of an existing lead by a later import, shared by both bulk writers (this one and
/// `pgcopy`), so the column list lives in one place.
pub(crate) fn update_lead<DB: sqlx::Database>(
    l: &NewLead,
    job_id: i64,
    now: i64,
    id: i64,
) -> sqlx::query::Query<'static, DB, DB::Arguments>
where
    for<'a> Option<&'a str>: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    for<'a> &'a str: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    for<'a> i64: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    for<'a> Option<i64>: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
{
    sqlx::query(
        "UPDATE leads SET crm_id = $1, priority = $2, first_name = $3, last_name = $4, email = $5, \
         postal_code = $6, subdivision = $7, country = $8, attributes = $9, consent_type = $10, \
         consent_source = $11, consent_at = $12, import_job_id = $13, source_row = $14, updated_at = $15 \
         WHERE id = $16",
    )
    .bind(l.crm_id())
    .bind(l.priority)
    .bind(l.first_name())
    .bind(l.last_name())
    .bind(l.email())
    .bind(l.postal_code())
    .bind(l.subdivision())
    .bind(l.country)
    .bind(l.attributes())
    .bind(l.consent_type())
    .bind(l.consent_source())
    .bind(l.consent_at)
    .bind(job_id)
    .bind(l.source_row)
    .bind(now)
    .bind(id)
}

/// Binds one new lead's fields in [`LEAD_COLUMNS`] order, moving its strings into the arguments.
/// Shared by this module's Any writer and [`crate::sqlite_bulk`]; `st` turns the fixed strings
/// (state, region names) into arguments (`&str` for Any, shared `Arc<str>` for SQLite).
pub(crate) fn bind_lead<'q, DB: sqlx::Database, S>(
    q: sqlx::query::Query<'q, DB, DB::Arguments>,
    l: NewLead,
    list_id: i64,
    job_id: i64,
    now: i64,
    st: &mut impl FnMut(&'static str) -> S,
) -> sqlx::query::Query<'q, DB, DB::Arguments>
where
    String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<String>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    S: sqlx::Encode<'q, DB> + sqlx::Type<DB> + 'q,
    Option<S>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<i64>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    let own = |v: Option<&str>| v.map(str::to_owned);
    q.bind(list_id)
        .bind(l.dedupe_key().to_owned())
        .bind(own(l.crm_id()))
        .bind(l.priority)
        .bind(st(l.state))
        .bind(own(l.first_name()))
        .bind(own(l.last_name()))
        .bind(own(l.email()))
        .bind(own(l.postal_code()))
        .bind(own(l.subdivision()))
        .bind(l.country.map(&mut *st))
        .bind(l.attributes().to_owned())
        .bind(own(l.consent_type()))
        .bind(own(l.consent_source()))
        .bind(l.consent_at)
        .bind(job_id)
        .bind(l.source_row)
        .bind(now)
        .bind(now)
}

/// Binds one phone in [`PHONE_COLUMNS`] order, moving its strings into the arguments; `st` as
/// for [`bind_lead`], `shared` turns the shared strings (column name, time-zone JSON) into arguments.
pub(crate) fn bind_phone<'q, DB: sqlx::Database, S, C>(
    q: sqlx::query::Query<'q, DB, DB::Arguments>,
    lead_id: i64,
    p: NewPhone,
    st: &mut impl FnMut(&'static str) -> S,
    shared: &mut impl FnMut(std::sync::Arc<str>) -> C,
) -> sqlx::query::Query<'q, DB, DB::Arguments>
where
    String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<String>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    S: sqlx::Encode<'q, DB> + sqlx::Type<DB> + 'q,
    Option<S>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    C: sqlx::Encode<'q, DB> + sqlx::Type<DB> + 'q,
    i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    i16: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    let dnc = p.dnc_source.is_some() as i16;
    q.bind(lead_id)
        .bind(p.position)
        .bind(p.e164)
        .bind(p.extension)
        .bind(p.raw)
        .bind(shared(p.source_column))
        .bind(st(p.kind))
        .bind(p.region.map(&mut *st))
        .bind(shared(p.tz_json))
        .bind(p.tz_ambiguous as i16)
        .bind(p.dialable as i16)
        .bind(dnc)
        .bind(p.dnc_source)
}

/// Binds one row outcome (`job_id, source_row, outcome, reason, fields`).
pub(crate) fn bind_outcome<'q, DB: sqlx::Database>(
    q: sqlx::query::Query<'q, DB, DB::Arguments>,
    job_id: i64,
    o: RowOutcome,
) -> sqlx::query::Query<'q, DB, DB::Arguments>
where
    String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    &'static str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    q.bind(job_id)
        .bind(o.source_row)
        .bind(o.outcome)
        .bind(o.reason)
        .bind(o.fields_json)
}

/// The columns of an outcome row, in bind order.
pub(crate) const OUTCOME_COLUMNS: &str = "job_id, source_row, outcome, reason, fields";

/// Lead ids for the new leads of a batch on SQLite, handed out under the write lock after the
/// largest ever used (what AUTOINCREMENT would do), so phones need not wait for RETURNING rows.
pub(crate) const SQLITE_LAST_LEAD_ID: &str = "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'leads'), 0), \
     COALESCE((SELECT MAX(id) FROM leads), 0))";

/// Writes one batch and advances the job, atomically. Takes the batch by value: its strings move
/// into the statements' arguments instead of being copied.
pub async fn write_batch(
    db: &Db,
    now: i64,
    list_id: i64,
    job_id: i64,
    batch: Batch,
) -> anyhow::Result<()> {
    let Batch {
        rows_end,
        leads,
        outcomes,
        report,
        ..
    } = batch;
    let mut tx = db.begin_write().await?;
    let sqlite = db.backend() == Backend::Sqlite;
    if sqlite {
        // A 64 MiB page cache for bulk writes (the dedupe-key index takes random inserts).
        sqlx::query("PRAGMA cache_size = -65536")
            .execute(tx.conn())
            .await?;
    }
    // Updates of existing leads (few): their ids are known.
    let mut lead_ids = vec![0i64; leads.len()];
    for (i, l) in leads.iter().enumerate() {
        if let Some(id) = l.update_of {
            update_lead::<sqlx::Any>(l, job_id, now, id)
                .execute(tx.conn())
                .await
                .context("updating a lead")?;
            sqlx::query("DELETE FROM lead_phones WHERE lead_id = $1")
                .bind(id)
                .execute(tx.conn())
                .await?;
            lead_ids[i] = id;
        }
    }
    let n_new = leads.iter().filter(|l| l.update_of.is_none()).count();
    if sqlite && n_new > 0 {
        // Ids are handed out here, under the write lock, after the largest ever used (what
        // AUTOINCREMENT would do), so phones need not wait for RETURNING rows and the leads go in
        // with their ids: no rows come back.
        let last: i64 = sqlx::query_scalar(SQLITE_LAST_LEAD_ID)
            .fetch_one(tx.conn())
            .await
            .context("reading the next lead id")?;
        let mut next = last;
        for (i, l) in leads.iter().enumerate() {
            if l.update_of.is_none() {
                next += 1;
                lead_ids[i] = next;
            }
        }
    }
    // Phones leave their leads first (the leads are consumed by the INSERTs below); each keeps
    // its lead's index into `lead_ids`.
    let mut leads = leads;
    let phones: Vec<(usize, NewPhone)> = leads
        .iter_mut()
        .enumerate()
        .flat_map(|(i, l)| {
            std::mem::take(&mut l.phones)
                .into_iter()
                .map(move |p| (i, p))
        })
        .collect();
    let new_leads: Vec<(usize, NewLead)> = leads
        .into_iter()
        .enumerate()
        .filter(|(_, l)| l.update_of.is_none())
        .collect();

    let lead_stmt = |rows: usize| {
        values_sql(
            db.backend(),
            &format!(
                "INSERT INTO leads ({}{LEAD_COLUMNS})",
                if sqlite { "id, " } else { "" }
            ),
            LEAD_COLS + sqlite as usize,
            rows,
            if sqlite {
                ""
            } else {
                " RETURNING id, dedupe_key"
            },
        )
    };
    let build_leads = |chunk: Vec<(usize, NewLead)>| {
        let mut q = sqlx::query(AssertSqlSafe(lead_stmt(chunk.len())));
        let mut keys = Vec::new();
        for (i, l) in chunk {
            if sqlite {
                q = q.bind(lead_ids[i]);
            } else {
                keys.push((i, l.dedupe_key().to_owned()));
            }
            q = bind_lead(q, l, list_id, job_id, now, &mut |s: &'static str| s);
        }
        (q, keys)
    };
    // Pipelined: the next statement's arguments are built while the database runs this one.
    let mut chunks = chunked(new_leads, LEADS_PER_STMT);
    let mut returned_ids = Vec::new();
    let mut next = chunks.next().map(build_leads);
    while let Some((q, keys)) = next.take() {
        let (done, built) = tokio::join!(
            async {
                if sqlite {
                    q.execute(tx.conn()).await.map(|_| Vec::new())
                } else {
                    q.fetch_all(tx.conn()).await
                }
            },
            async { chunks.next().map(build_leads) }
        );
        next = built;
        let rows = done.context("inserting leads")?;
        if !sqlite {
            anyhow::ensure!(
                rows.len() == keys.len(),
                "{} ids returned for {} leads",
                rows.len(),
                keys.len()
            );
            let by_key: HashMap<String, i64> = rows
                .iter()
                .map(|r| (r.get::<String, _>(1), r.get::<i64, _>(0)))
                .collect();
            for (i, key) in keys {
                returned_ids.push((
                    i,
                    *by_key
                        .get(&key)
                        .context("an inserted lead's id was not returned")?,
                ));
            }
        }
    }
    // PostgreSQL (without COPY): the ids came back with RETURNING.
    for (i, id) in returned_ids {
        lead_ids[i] = id;
    }
    let build_phones = |chunk: Vec<(usize, NewPhone)>| {
        let mut q = sqlx::query(AssertSqlSafe(values_sql(
            db.backend(),
            &format!("INSERT INTO lead_phones ({PHONE_COLUMNS})"),
            PHONE_COLS,
            chunk.len(),
            "",
        )));
        for (i, p) in chunk {
            q = bind_phone(q, lead_ids[i], p, &mut |s: &'static str| s, &mut |c| {
                c.to_string()
            });
        }
        q
    };
    let mut chunks = chunked(phones, PHONES_PER_STMT);
    let mut next = chunks.next().map(build_phones);
    while let Some(q) = next.take() {
        let (done, built) = tokio::join!(q.execute(tx.conn()), async {
            chunks.next().map(build_phones)
        });
        next = built;
        done.context("inserting lead phones")?;
    }
    for chunk in chunked(outcomes, OUTCOMES_PER_STMT) {
        let sql = values_sql(
            db.backend(),
            &format!("INSERT INTO import_row_outcomes ({OUTCOME_COLUMNS})"),
            OUTCOME_COLS,
            chunk.len(),
            "",
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for o in chunk {
            q = bind_outcome(q, job_id, o);
        }
        q.execute(tx.conn())
            .await
            .context("inserting row outcomes")?;
    }
    advance_job(&mut tx, now, job_id, rows_end, &report).await?;
    tx.commit().await?;
    Ok(())
}

/// Splits `items` into owned chunks of at most `size`, in order.
pub(crate) fn chunked<T>(items: Vec<T>, size: usize) -> impl Iterator<Item = Vec<T>> {
    let mut it = items.into_iter().peekable();
    std::iter::from_fn(move || {
        it.peek()?;
        Some(it.by_ref().take(size).collect())
    })
}

async fn advance_job(
    tx: &mut foundation::db::WriteTx,
    now: i64,
    job_id: i64,
    rows_committed: u64,
    report: &ImportReport,
) -> anyhow::Result<()> {
    sqlx::query(
        "UPDATE import_jobs SET rows_committed = $1, report = $2, updated_at = $3 WHERE id = $4",
    )
    .bind(rows_committed as i64)
    .bind(serde_json::to_string(report)?)
    .bind(now)
    .bind(job_id)
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// A stored import job.
#[derive(Debug, Clone)]
pub struct Job {
    pub id: i64,
    pub public_id: String,
    pub list_id: i64,
    pub state: String,
    pub rows_committed: u64,
    pub report: ImportReport,
    pub headers: Vec<String>,
}

pub async fn create_job(
    db: &Db,
    now: i64,
    public_id: &str,
    list_id: i64,
    file_name: &str,
    file_size: u64,
    options_json: &str,
) -> anyhow::Result<i64> {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO import_jobs (public_id, list_id, file_name, file_size, state, options, started_at, updated_at) \
         VALUES ($1, $2, $3, $4, 'running', $5, $6, $6) RETURNING id",
    )
    .bind(public_id)
    .bind(list_id)
    .bind(file_name)
    .bind(file_size as i64)
    .bind(options_json)
    .bind(now)
    .fetch_one(db.pool())
    .await?;
    Ok(id)
}

pub async fn job(db: &Db, public_id: &str) -> anyhow::Result<Option<Job>> {
    let row = sqlx::query(
        "SELECT id, public_id, list_id, state, rows_committed, report, options FROM import_jobs WHERE public_id = $1",
    )
    .bind(public_id)
    .fetch_optional(db.pool())
    .await?;
    let Some(r) = row else { return Ok(None) };
    let options: serde_json::Value =
        serde_json::from_str(&r.get::<String, _>("options")).unwrap_or_default();
    let headers = options
        .get("headers")
        .and_then(|h| serde_json::from_value(h.clone()).ok())
        .unwrap_or_default();
    let state: String = r.get("state");
    let mut report: ImportReport =
        serde_json::from_str(&r.get::<String, _>("report")).unwrap_or_default();
    report.state = state.clone();
    Ok(Some(Job {
        id: r.get("id"),
        public_id: r.get("public_id"),
        list_id: r.get("list_id"),
        state,
        rows_committed: r.get::<i64, _>("rows_committed") as u64,
        report,
        headers,
    }))
}

pub async fn set_job_state(
    db: &Db,
    now: i64,
    job_id: i64,
    state: &str,
    report: Option<&ImportReport>,
    error: Option<&str>,
) -> anyhow::Result<()> {
    let finished = (state != "running").then_some(now);
    match report {
        Some(report) => {
            sqlx::query(
                "UPDATE import_jobs SET state = $1, report = $2, error = $3, updated_at = $4, finished_at = $5 WHERE id = $6",
            )
            .bind(state)
            .bind(serde_json::to_string(report)?)
            .bind(error)
            .bind(now)
            .bind(finished)
            .bind(job_id)
            .execute(db.pool())
            .await?;
        }
        None => {
            sqlx::query("UPDATE import_jobs SET state = $1, error = $2, updated_at = $3, finished_at = $4 WHERE id = $5")
                .bind(state)
                .bind(error)
                .bind(now)
                .bind(finished)
                .bind(job_id)
                .execute(db.pool())
                .await?;
        }
    }
    Ok(())
}

/// Existing dedupe keys of a list: `crm:` keys and `tel:` keys (as E.164 digits), each with its lead
/// id and whether job `job_id` wrote it (resume: such keys count as already seen in this file).
pub(crate) struct ExistingKeys {
    pub crm: HashMap<String, (i64, bool)>,
    pub tel: HashMap<u64, (i64, bool)>,
}

pub(crate) async fn existing_keys(
    db: &Db,
    list_id: i64,
    job_id: Option<i64>,
) -> anyhow::Result<ExistingKeys> {
    let rows = sqlx::query(
        "SELECT id, dedupe_key, COALESCE(import_job_id, 0) AS job FROM leads WHERE list_id = $1",
    )
    .bind(list_id)
    .fetch_all(db.pool())
    .await?;
    let mut keys = ExistingKeys {
        crm: HashMap::new(),
        tel: HashMap::with_capacity(rows.len()),
    };
    for r in rows {
        let id: i64 = r.get(0);
        let key: String = r.get(1);
        let mine = job_id == Some(r.get::<i64, _>(2));
        if let Some(c) = key.strip_prefix("crm:") {
            keys.crm.insert(c.to_owned(), (id, mine));
        } else if let Some(t) = key.strip_prefix("tel:+")
            && let Ok(n) = t.parse()
        {
            keys.tel.insert(n, (id, mine));
        }
    }
    Ok(keys)
}

/// Writes the rows of a job that did not become leads as CSV: the file's header plus `outcome` and
/// `reason` columns. `outcome` filters (`rejected`, `duplicate`, `dnc`); `None` writes all.
/// Returns the number of rows written.
pub async fn write_outcomes_csv<W: std::io::Write>(
    db: &Db,
    job_public_id: &str,
    outcome: Option<&str>,
    out: W,
) -> anyhow::Result<u64> {
    let job = job(db, job_public_id)
        .await?
        .with_context(|| format!("no import job {job_public_id}"))?;
    let mut w = csv::WriterBuilder::new().flexible(true).from_writer(out);
    let mut header = vec![
        "source_row".to_owned(),
        "outcome".to_owned(),
        "reason".to_owned(),
    ];
    header.extend(job.headers.iter().cloned());
    w.write_record(&header)?;
    let mut n = 0;
    let mut after = 0i64;
    loop {
        let rows = sqlx::query(
            "SELECT id, source_row, outcome, reason, fields FROM import_row_outcomes \
             WHERE job_id = $1 AND id > $2 AND ($3 IS NULL OR outcome = $3) ORDER BY id LIMIT 10000",
        )
        .bind(job.id)
        .bind(after)
        .bind(outcome)
        .fetch_all(db.pool())
        .await?;
        if rows.is_empty() {
            break;
        }
        for r in &rows {
            after = r.get(0);
            let fields: Vec<String> =
                serde_json::from_str(&r.get::<String, _>(4)).unwrap_or_default();
            let mut rec = vec![
                r.get::<i64, _>(1).to_string(),
                r.get::<String, _>(2),
                r.get::<String, _>(3),
            ];
            rec.extend(fields);
            w.write_record(&rec)?;
            n += 1;
        }
    }
    w.flush()?;
    Ok(n)
}
