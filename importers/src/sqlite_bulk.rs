//! SQLite fast path for batch writes: the same multi-row INSERTs as [`crate::store::write_batch`],
//! run on a concrete `SqliteConnection` instead of the Any driver, behind the same
//! [`crate::store::Batch`] interface (the SQLite counterpart of [`crate::pgcopy`]).
//!
//! Why: through the Any driver every text argument is copied twice more and allocated three times
//! (`&str` → `AnyValueKind::Text` → `SqliteArgumentValue::Text`), which was ~4 s of a
//! 1,000,000-row import. Here the batch's strings move into the arguments as they are.
//!
//! Writers stay in this process's write lane: each batch holds `Db::write_lane` while it writes on
//! its own connection under `BEGIN IMMEDIATE`. Other writers of this process queue on the lane as for any write; other processes wait on
//! `busy_timeout`. Lead ids are handed out under the write lock (no RETURNING), as in `store`.

use std::time::Duration;

use anyhow::Context;
use foundation::Db;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqliteSynchronous};
use sqlx::{AssertSqlSafe, Connection};
use tokio::sync::Mutex;

use crate::store::{
    self, Batch, LEAD_COLS, LEAD_COLUMNS, LEADS_PER_STMT, NewLead, NewPhone, OUTCOME_COLS,
    OUTCOME_COLUMNS, OUTCOMES_PER_STMT, PHONE_COLS, PHONE_COLUMNS, PHONES_PER_STMT,
    SQLITE_LAST_LEAD_ID, chunked, values_sql,
};

pub struct SqliteBulkWriter {
    conn: Mutex<SqliteConnection>,
}

impl SqliteBulkWriter {
    /// Opens a second connection to the database file `db` uses (found with `PRAGMA
    /// database_list`), with the pragmas `foundation::Db` sets on its own connections. `None` for
    /// PostgreSQL and in-memory databases (the caller then writes through `store`).
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
        let options = SqliteConnectOptions::new()
            .filename(&file)
            .create_if_missing(false)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            // A 64 MiB page cache for bulk writes (the dedupe-key index takes random inserts).
            .pragma("cache_size", "-65536");
        let conn = SqliteConnection::connect_with(&options)
            .await
            .with_context(|| format!("bulk-write connection to the SQLite file {file}"))?;
        Ok(Some(Self {
            conn: Mutex::new(conn),
        }))
    }

    /// Writes one batch and advances the job, atomically (see the module doc for the lane).
    pub async fn write_batch(
        &self,
        db: &Db,
        now: i64,
        list_id: i64,
        job_id: i64,
        batch: Batch,
    ) -> anyhow::Result<()> {
        let _lane = db.write_lane().await;
        let mut conn = self.conn.lock().await;
        write(&mut conn, now, list_id, job_id, batch).await
    }

    pub async fn close(self) {
        let _ = self.conn.into_inner().close().await;
    }
}

/// `&'static str` → one shared `Arc<str>` each (binding a `&str` allocates a copy per value).
#[derive(Default)]
struct SharedText(std::collections::HashMap<&'static str, std::sync::Arc<str>>);

impl SharedText {
    fn get(&mut self, s: &'static str) -> std::sync::Arc<str> {
        self.0
            .entry(s)
            .or_insert_with(|| std::sync::Arc::from(s))
            .clone()
    }
}

async fn write(
    conn: &mut SqliteConnection,
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
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
    let mut lead_ids = vec![0i64; leads.len()];
    for (i, l) in leads.iter().enumerate() {
        if let Some(id) = l.update_of {
            store::update_lead::<sqlx::Sqlite>(l, job_id, now, id)
                .execute(&mut *tx)
                .await
                .context("updating a lead")?;
            sqlx::query("DELETE FROM lead_phones WHERE lead_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            lead_ids[i] = id;
        }
    }
    if leads.iter().any(|l| l.update_of.is_none()) {
        let mut next: i64 = sqlx::query_scalar(SQLITE_LAST_LEAD_ID)
            .fetch_one(&mut *tx)
            .await
            .context("reading the next lead id")?;
        for (i, l) in leads.iter().enumerate() {
            if l.update_of.is_none() {
                next += 1;
                lead_ids[i] = next;
            }
        }
    }
    // The fixed strings (state, number type, region) and the shared ones (column names, time-zone
    // JSON) are bound as shared values: no copy each.
    let mut shared = SharedText::default();
    let mut leads = leads;
    let phones: Vec<(i64, NewPhone)> = leads
        .iter_mut()
        .zip(&lead_ids)
        .flat_map(|(l, &id)| {
            std::mem::take(&mut l.phones)
                .into_iter()
                .map(move |p| (id, p))
        })
        .collect();
    let new_leads: Vec<(i64, NewLead)> = leads
        .into_iter()
        .zip(lead_ids)
        .filter(|(l, _)| l.update_of.is_none())
        .map(|(l, id)| (id, l))
        .collect();

    let lead_sql = |n: usize| {
        values_sql(
            foundation::Backend::Sqlite,
            &format!("INSERT INTO leads (id, {LEAD_COLUMNS})"),
            LEAD_COLS + 1,
            n,
            "",
        )
    };
    // Pipelined: the next statement's arguments are built while SQLite runs this one.
    let full_leads = lead_sql(LEADS_PER_STMT);
    let mut build_leads = |chunk: Vec<(i64, NewLead)>| {
        let sql = if chunk.len() == LEADS_PER_STMT {
            full_leads.clone()
        } else {
            lead_sql(chunk.len())
        };
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for (id, l) in chunk {
            q = store::bind_lead(q.bind(id), l, list_id, job_id, now, &mut |s| shared.get(s));
        }
        q
    };
    let mut chunks = chunked(new_leads, LEADS_PER_STMT);
    let mut next = chunks.next().map(&mut build_leads);
    while let Some(q) = next.take() {
        let (done, built) = tokio::join!(q.execute(&mut *tx), async {
            chunks.next().map(&mut build_leads)
        });
        next = built;
        done.context("inserting leads")?;
    }
    let phone_sql = |n: usize| {
        values_sql(
            foundation::Backend::Sqlite,
            &format!("INSERT INTO lead_phones ({PHONE_COLUMNS})"),
            PHONE_COLS,
            n,
            "",
        )
    };
    let full_phones = phone_sql(PHONES_PER_STMT);
    let mut build_phones = |chunk: Vec<(i64, NewPhone)>| {
        let sql = if chunk.len() == PHONES_PER_STMT {
            full_phones.clone()
        } else {
            phone_sql(chunk.len())
        };
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for (id, p) in chunk {
            q = store::bind_phone(q, id, p, &mut |s| shared.get(s), &mut |c| c);
        }
        q
    };
    let mut chunks = chunked(phones, PHONES_PER_STMT);
    let mut next = chunks.next().map(&mut build_phones);
    while let Some(q) = next.take() {
        let (done, built) = tokio::join!(q.execute(&mut *tx), async {
            chunks.next().map(&mut build_phones)
        });
        next = built;
        done.context("inserting lead phones")?;
    }
    for chunk in chunked(outcomes, OUTCOMES_PER_STMT) {
        let sql = values_sql(
            foundation::Backend::Sqlite,
            &format!("INSERT INTO import_row_outcomes ({OUTCOME_COLUMNS})"),
            OUTCOME_COLS,
            chunk.len(),
            "",
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for o in chunk {
            q = store::bind_outcome(q, job_id, o);
        }
        q.execute(&mut *tx)
            .await
            .context("inserting row outcomes")?;
    }
    sqlx::query(
        "UPDATE import_jobs SET rows_committed = $1, report = $2, updated_at = $3 WHERE id = $4",
    )
    .bind(rows_end as i64)
    .bind(serde_json::to_string(&report)?)
    .bind(now)
    .bind(job_id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}
