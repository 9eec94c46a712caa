//! PostgreSQL fast path for batch writes: `COPY … FROM STDIN (FORMAT csv)` on a concrete
//! `PgConnection`, in one transaction per batch, behind the same [`crate::store::Batch`] interface.
//!
//! The Any driver cannot COPY, so this needs the database URL (`ImportOptions::postgres_url`).
//! Lead ids are reserved from the identity sequence first (`nextval` × n) so phones can reference
//! them; everything else (updates, job progress) runs on the same transaction.
//!
//! Most of the server's time goes to the per-row foreign-key checks (`lead_phones.lead_id`,
//! `leads.list_id`, `leads.import_job_id`: measured, they double the cost of a COPY), so two
//! batches are in flight on two connections ([`PgCopyWriter::stage`], then [`Staged::commit`] in
//! batch order): the server works on the next batch while the previous one finishes.

use anyhow::Context;
use sqlx::Row;
use sqlx::postgres::{PgConnection, PgPool, PgPoolOptions};

use crate::store::{Batch, LEAD_COLUMNS, PHONE_COLUMNS};

#[derive(Clone)]
pub struct PgCopyWriter {
    pool: PgPool,
    /// `SELECT nextval('<leads id sequence>') FROM generate_series(1, $1)`, with the sequence's name
    /// looked up once: `pg_get_serial_sequence` inside the query ran once per reserved id (2.5% of
    /// the server's time in a 1,000,000-row import).
    reserve_ids: std::sync::Arc<str>,
}

/// A batch written but not committed yet (see [`PgCopyWriter::stage`]); dropping it rolls the
/// batch back.
pub struct Staged {
    tx: sqlx::Transaction<'static, sqlx::Postgres>,
    batch: Batch,
    now: i64,
    job_id: i64,
}

impl Staged {
    /// Advances the job to the batch's last row and commits; gives the batch back (to be freed on
    /// the thread that built it). The job update happens here, not while staging, so that batches
    /// staged side by side never wait on each other's lock of the job row.
    pub async fn commit(mut self) -> anyhow::Result<Batch> {
        let b = &self.batch;
        sqlx::query(
            "UPDATE import_jobs SET rows_committed = $1, report = $2, updated_at = $3 WHERE id = $4",
        )
        .bind(b.rows_end as i64)
        .bind(serde_json::to_string(&b.report)?)
        .bind(self.now)
        .bind(self.job_id)
        .execute(&mut *self.tx)
        .await
        .context("advancing the import job")?;
        self.tx.commit().await.context("committing a COPY batch")?;
        Ok(self.batch)
    }
}

/// CSV field writers: `None` is an unquoted empty field (NULL in COPY's CSV format), text is always
/// quoted (so an empty string stays an empty string).
fn text(out: &mut String, v: Option<&str>) {
    if let Some(v) = v {
        out.push('"');
        for c in v.chars() {
            if c == '"' {
                out.push('"');
            }
            out.push(c);
        }
        out.push('"');
    }
}

fn int(out: &mut String, v: Option<i64>) {
    if let Some(v) = v {
        out.push_str(&v.to_string());
    }
}

impl PgCopyWriter {
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        // Two connections: one batch commits while the next one is copied.
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .connect(url)
            .await
            .context("COPY connection to PostgreSQL")?;
        let seq: String = sqlx::query_scalar("SELECT pg_get_serial_sequence('leads', 'id')")
            .fetch_one(&pool)
            .await
            .context("the leads id sequence")?;
        let reserve_ids = format!(
            "SELECT nextval('{}'::regclass) FROM generate_series(1, $1)",
            seq.replace('\'', "''")
        );
        Ok(Self {
            pool,
            reserve_ids: reserve_ids.into(),
        })
    }

    async fn copy(conn: &mut PgConnection, statement: &str, data: String) -> anyhow::Result<()> {
        let mut copy = conn.copy_in_raw(statement).await?;
        copy.send(data.into_bytes()).await?;
        copy.finish().await?;
        Ok(())
    }

    /// Writes one batch in a transaction of its own connection, without committing it:
    /// [`Staged::commit`] advances the job and commits, called in batch order.
    pub async fn stage(
        &self,
        now: i64,
        list_id: i64,
        job_id: i64,
        batch: Batch,
    ) -> anyhow::Result<Staged> {
        let mut tx = self.pool.begin().await?;
        let n_new = batch.leads.iter().filter(|l| l.update_of.is_none()).count();
        let mut new_ids: Vec<i64> = Vec::new();
        if n_new > 0 {
            let rows = sqlx::query(sqlx::AssertSqlSafe(&*self.reserve_ids))
                .bind(n_new as i64)
                .fetch_all(&mut *tx)
                .await?;
            new_ids = rows.iter().map(|r| r.get::<i64, _>(0)).collect();
        }
        let mut lead_ids = vec![0i64; batch.leads.len()];
        let mut next_new = new_ids.into_iter();
        let mut leads_csv = String::with_capacity(n_new * 200);
        for (i, l) in batch.leads.iter().enumerate() {
            if let Some(id) = l.update_of {
                lead_ids[i] = id;
                continue;
            }
            let id = next_new.next().context("reserved ids ran out")?;
            lead_ids[i] = id;
            let o = &mut leads_csv;
            int(o, Some(id));
            o.push(',');
            int(o, Some(list_id));
            o.push(',');
            text(o, Some(l.dedupe_key()));
            o.push(',');
            text(o, l.crm_id());
            o.push(',');
            int(o, Some(l.priority));
            o.push(',');
            text(o, Some(l.state));
            for v in [
                l.first_name(),
                l.last_name(),
                l.email(),
                l.postal_code(),
                l.subdivision(),
            ] {
                o.push(',');
                text(o, v);
            }
            o.push(',');
            text(o, l.country);
            o.push(',');
            text(o, Some(l.attributes()));
            o.push(',');
            text(o, l.consent_type());
            o.push(',');
            text(o, l.consent_source());
            o.push(',');
            int(o, l.consent_at);
            o.push(',');
            int(o, Some(job_id));
            o.push(',');
            int(o, Some(l.source_row));
            o.push(',');
            int(o, Some(now));
            o.push(',');
            int(o, Some(now));
            o.push('\n');
        }
        if n_new > 0 {
            Self::copy(
                &mut tx,
                &format!("COPY leads (id, {LEAD_COLUMNS}) FROM STDIN (FORMAT csv)"),
                leads_csv,
            )
            .await
            .context("COPY leads")?;
        }
        for l in batch.leads.iter().filter(|l| l.update_of.is_some()) {
            let id = l.update_of.expect("filtered");
            crate::store::update_lead::<sqlx::Postgres>(l, job_id, now, id)
                .execute(&mut *tx)
                .await
                .context("updating a lead")?;
            sqlx::query("DELETE FROM lead_phones WHERE lead_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        let mut phones_csv = String::with_capacity(batch.leads.len() * 300);
        for (l, &id) in batch.leads.iter().zip(&lead_ids) {
            for p in &l.phones {
                let o = &mut phones_csv;
                int(o, Some(id));
                o.push(',');
                int(o, Some(p.position));
                o.push(',');
                text(o, Some(&p.e164));
                o.push(',');
                text(o, p.extension.as_deref());
                o.push(',');
                text(o, Some(&p.raw));
                o.push(',');
                text(o, Some(&p.source_column));
                o.push(',');
                text(o, Some(p.kind));
                o.push(',');
                text(o, p.region);
                o.push(',');
                text(o, Some(&p.tz_json));
                o.push(',');
                int(o, Some(p.tz_ambiguous as i64));
                o.push(',');
                int(o, Some(p.dialable as i64));
                o.push(',');
                int(o, Some(p.dnc_source.is_some() as i64));
                o.push(',');
                text(o, p.dnc_source.as_deref());
                o.push('\n');
            }
        }
        if !phones_csv.is_empty() {
            Self::copy(
                &mut tx,
                &format!("COPY lead_phones ({PHONE_COLUMNS}) FROM STDIN (FORMAT csv)"),
                phones_csv,
            )
            .await
            .context("COPY lead_phones")?;
        }
        if !batch.outcomes.is_empty() {
            let mut out = String::with_capacity(batch.outcomes.len() * 200);
            for r in &batch.outcomes {
                int(&mut out, Some(job_id));
                out.push(',');
                int(&mut out, Some(r.source_row));
                out.push(',');
                text(&mut out, Some(r.outcome));
                out.push(',');
                text(&mut out, Some(&r.reason));
                out.push(',');
                text(&mut out, Some(&r.fields_json));
                out.push('\n');
            }
            Self::copy(
                &mut tx,
                "COPY import_row_outcomes (job_id, source_row, outcome, reason, fields) FROM STDIN (FORMAT csv)",
                out,
            )
            .await
            .context("COPY import_row_outcomes")?;
        }
        Ok(Staged {
            tx,
            batch,
            now,
            job_id,
        })
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}
