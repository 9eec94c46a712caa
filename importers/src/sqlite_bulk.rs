//! SQLite fast path for batch writes: the same rows as [`crate::store::write_batch`], written by a
//! thread of its own on a raw connection ([`crate::sqlite_raw`]) behind the same
//! [`crate::store::Batch`] interface (the SQLite counterpart of [`crate::pgcopy`]).
//!
//! Why: through sqlx every bound value was an owned argument, copied by SQLite and freed twice;
//! with the statement building that was ~7 of the 18 CPU seconds of a 1,000,000-row import (see
//! `importers/BENCHMARKS.md`). Here the batch's strings are bound in place (`SQLITE_STATIC`) into
//! prepared multi-row INSERTs, and the batch goes back to the caller afterwards (to be freed on the
//! thread that allocated it).
//!
//! Writers stay in this process's write lane: each batch holds `Db::write_lane` while the writer
//! thread runs it under `BEGIN IMMEDIATE`; other writers of this process queue on the lane as for
//! any write, other processes wait on `busy_timeout`. Durability is the database's own (WAL,
//! `synchronous = NORMAL`, as `foundation::Db` sets): a batch is one transaction that also advances
//! the job's `rows_committed`. Lead ids are handed out under the write lock (no RETURNING), as in
//! `store`.

use anyhow::Context;
use foundation::Db;
use tokio::sync::oneshot;

use crate::sqlite_raw::{Connection, Value};
use crate::store::{
    Batch, LEAD_COLS, LEAD_COLUMNS, NewLead, NewPhone, OUTCOME_COLS, OUTCOME_COLUMNS, PHONE_COLS,
    PHONE_COLUMNS, RowOutcome, SQLITE_LAST_LEAD_ID, values_sql,
};

/// Rows per prepared INSERT (the remainder of a batch goes one row a statement): 256 rows are at
/// most 5,120 parameters, far below SQLite's 32,766. Measured at 1,000,000 rows: 8 rows a
/// statement cost the writer 7.7 s, 64 rows 5.9 s, 256 rows 5.2–5.5 s, 1,000 rows 5.1 s.
const ROWS_PER_STMT: usize = 256;

struct Job {
    batch: Batch,
    now: i64,
    list_id: i64,
    job_id: i64,
    done: oneshot::Sender<(anyhow::Result<()>, Batch)>,
}

pub struct SqliteBulkWriter {
    jobs: Option<std::sync::mpsc::Sender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SqliteBulkWriter {
    /// Opens a second connection to the database file `db` uses (found with `PRAGMA
    /// database_list`), with the pragmas `foundation::Db` sets on its own connections, on a writer
    /// thread. `None` for PostgreSQL and in-memory databases (the caller then writes through
    /// `store`).
    pub async fn for_db(db: &Db) -> anyhow::Result<Option<Self>> {
        if db.backend() != foundation::Backend::Sqlite {
            return Ok(None);
        }
        let file: Option<String> =
            sqlx::query_scalar("SELECT file FROM pragma_database_list WHERE name = 'main'")
                .fetch_optional(db.pool())
                .await?;
        let Some(file) = file.filter(|f| !f.is_empty()) else {
            return Ok(None);
        };
        let conn = tokio::task::spawn_blocking(move || -> anyhow::Result<Connection> {
            let mut conn = Connection::open(&file)
                .with_context(|| format!("bulk-write connection to the SQLite file {file}"))?;
            // A 64 MiB page cache for bulk writes (the dedupe-key index takes random inserts).
            conn.exec(
                "PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000; \
                 PRAGMA synchronous = NORMAL; PRAGMA cache_size = -65536;",
            )?;
            Ok(conn)
        })
        .await??;
        let (jobs, rx) = std::sync::mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("sqlite-bulk".into())
            .spawn(move || {
                let mut conn = conn;
                while let Ok(job) = rx.recv() {
                    let r = write(&mut conn, job.now, job.list_id, job.job_id, &job.batch);
                    let _ = job.done.send((r, job.batch));
                }
            })
            .context("starting the SQLite bulk writer thread")?;
        Ok(Some(Self {
            jobs: Some(jobs),
            thread: Some(thread),
        }))
    }

    /// Writes one batch and advances the job, atomically (see the module doc for the lane). Gives
    /// the batch back: the caller frees (or reuses) it on the thread that allocated its strings,
    /// which costs glibc's allocator far less than freeing them on the writer thread.
    pub async fn write_batch(
        &self,
        db: &Db,
        now: i64,
        list_id: i64,
        job_id: i64,
        batch: Batch,
    ) -> anyhow::Result<Batch> {
        let _lane = db.write_lane().await;
        let (done, result) = oneshot::channel();
        let stopped = || anyhow::anyhow!("the SQLite bulk writer thread stopped");
        self.jobs
            .as_ref()
            .ok_or_else(stopped)?
            .send(Job {
                batch,
                now,
                list_id,
                job_id,
                done,
            })
            .map_err(|_| stopped())?;
        let (result, batch) = result.await.map_err(|_| stopped())?;
        result.map(|()| batch)
    }

    /// Stops the writer thread and closes its connection.
    pub async fn close(mut self) {
        self.jobs.take();
        if let Some(t) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
    }
}

impl Drop for SqliteBulkWriter {
    fn drop(&mut self) {
        // Without `close`: the thread ends (and closes its connection) once the channel is gone.
        self.jobs.take();
    }
}

fn write(
    conn: &mut Connection,
    now: i64,
    list_id: i64,
    job_id: i64,
    batch: &Batch,
) -> anyhow::Result<()> {
    conn.exec("BEGIN IMMEDIATE")?;
    let written = write_in_tx(conn, now, list_id, job_id, batch);
    let result = written.and_then(|()| conn.exec("COMMIT"));
    if result.is_err() {
        let _ = conn.exec("ROLLBACK");
    }
    result
}

fn write_in_tx(
    conn: &mut Connection,
    now: i64,
    list_id: i64,
    job_id: i64,
    batch: &Batch,
) -> anyhow::Result<()> {
    let leads = &batch.leads;
    let mut lead_ids = vec![0i64; leads.len()];
    if leads.iter().any(|l| l.update_of.is_some()) {
        let mut update = conn.prepare(
            "UPDATE leads SET crm_id = ?, priority = ?, first_name = ?, last_name = ?, email = ?, \
             postal_code = ?, subdivision = ?, country = ?, attributes = ?, consent_type = ?, \
             consent_source = ?, consent_at = ?, import_job_id = ?, source_row = ?, updated_at = ? \
             WHERE id = ?",
        )?;
        let mut delete = conn.prepare("DELETE FROM lead_phones WHERE lead_id = ?")?;
        for (i, l) in leads.iter().enumerate() {
            let Some(id) = l.update_of else { continue };
            update
                .execute(&[
                    l.crm_id().into(),
                    Value::Int(l.priority),
                    l.first_name().into(),
                    l.last_name().into(),
                    l.email().into(),
                    l.postal_code().into(),
                    l.subdivision().into(),
                    l.country.into(),
                    Value::Text(l.attributes()),
                    l.consent_type().into(),
                    l.consent_source().into(),
                    l.consent_at.into(),
                    Value::Int(job_id),
                    Value::Int(l.source_row),
                    Value::Int(now),
                    Value::Int(id),
                ])
                .context("updating a lead")?;
            delete.execute(&[Value::Int(id)])?;
            lead_ids[i] = id;
        }
    }
    if leads.iter().any(|l| l.update_of.is_none()) {
        let mut next = conn
            .query_i64(SQLITE_LAST_LEAD_ID)
            .context("reading the next lead id")?;
        for (i, l) in leads.iter().enumerate() {
            if l.update_of.is_none() {
                next += 1;
                lead_ids[i] = next;
            }
        }
    }

    let new_leads: Vec<(i64, &NewLead)> = leads
        .iter()
        .zip(&lead_ids)
        .filter(|(l, _)| l.update_of.is_none())
        .map(|(l, &id)| (id, l))
        .collect();
    insert_rows(
        conn,
        &format!("INSERT INTO leads (id, {LEAD_COLUMNS})"),
        LEAD_COLS + 1,
        &new_leads,
        |&(id, l), v| {
            v.extend([
                Value::Int(id),
                Value::Int(list_id),
                Value::Text(l.dedupe_key()),
                l.crm_id().into(),
                Value::Int(l.priority),
                Value::Text(l.state),
                l.first_name().into(),
                l.last_name().into(),
                l.email().into(),
                l.postal_code().into(),
                l.subdivision().into(),
                l.country.into(),
                Value::Text(l.attributes()),
                l.consent_type().into(),
                l.consent_source().into(),
                l.consent_at.into(),
                Value::Int(job_id),
                Value::Int(l.source_row),
                Value::Int(now),
                Value::Int(now),
            ])
        },
    )
    .context("inserting leads")?;

    let phones: Vec<(i64, &NewPhone)> = leads
        .iter()
        .zip(&lead_ids)
        .flat_map(|(l, &id)| l.phones.iter().map(move |p| (id, p)))
        .collect();
    insert_rows(
        conn,
        &format!("INSERT INTO lead_phones ({PHONE_COLUMNS})"),
        PHONE_COLS,
        &phones,
        |&(id, p), v| {
            v.extend([
                Value::Int(id),
                Value::Int(p.position),
                Value::Text(&p.e164),
                p.extension.as_deref().into(),
                Value::Text(&p.raw),
                Value::Text(&p.source_column),
                Value::Text(p.kind),
                p.region.into(),
                Value::Text(&p.tz_json),
                Value::Int(p.tz_ambiguous as i64),
                Value::Int(p.dialable as i64),
                Value::Int(p.dnc_source.is_some() as i64),
                p.dnc_source.as_deref().into(),
            ])
        },
    )
    .context("inserting lead phones")?;

    insert_rows(
        conn,
        &format!("INSERT INTO import_row_outcomes ({OUTCOME_COLUMNS})"),
        OUTCOME_COLS,
        &batch.outcomes,
        |o: &RowOutcome, v| {
            v.extend([
                Value::Int(job_id),
                Value::Int(o.source_row),
                Value::Text(o.outcome),
                Value::Text(&o.reason),
                Value::Text(&o.fields_json),
            ])
        },
    )
    .context("inserting row outcomes")?;

    let report = serde_json::to_string(&batch.report)?;
    conn.prepare(
        "UPDATE import_jobs SET rows_committed = ?, report = ?, updated_at = ? WHERE id = ?",
    )?
    .execute(&[
        Value::Int(batch.rows_end as i64),
        Value::Text(&report),
        Value::Int(now),
        Value::Int(job_id),
    ])
    .context("advancing the import job")?;
    Ok(())
}

/// Inserts `rows` with `head` (`INSERT INTO t (cols)`) in statements of [`ROWS_PER_STMT`] rows,
/// the remainder one row a statement; `bind` appends one row's `cols` values.
fn insert_rows<'a, T>(
    conn: &mut Connection,
    head: &str,
    cols: usize,
    rows: &'a [T],
    bind: impl Fn(&'a T, &mut Vec<Value<'a>>),
) -> anyhow::Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let sql = |n| values_sql(foundation::Backend::Sqlite, head, cols, n, "");
    let rows_per_stmt = ROWS_PER_STMT;
    let mut values = Vec::with_capacity(cols * rows_per_stmt);
    let full = rows.len() / rows_per_stmt * rows_per_stmt;
    if full > 0 {
        let mut stmt = conn.prepare(&sql(rows_per_stmt))?;
        for chunk in rows[..full].chunks(rows_per_stmt) {
            values.clear();
            for r in chunk {
                bind(r, &mut values);
            }
            stmt.execute(&values)?;
        }
    }
    if full < rows.len() {
        let mut stmt = conn.prepare(&sql(1))?;
        for r in &rows[full..] {
            values.clear();
            bind(r, &mut values);
            stmt.execute(&values)?;
        }
    }
    Ok(())
}
