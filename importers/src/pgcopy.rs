//! PostgreSQL fast path for batch writes: `COPY … FROM STDIN (FORMAT csv)` on a concrete
//! `PgConnection`, in one transaction per batch, behind the same [`crate::store::Batch`] interface.
//!
//! The Any driver cannot COPY, so this needs the database URL (`ImportOptions::postgres_url`).
//! Lead ids are reserved from the identity sequence first (`nextval` × n) so phones can reference
//! them; everything else (updates, job progress) runs on the same transaction.

use anyhow::Context;
use sqlx::postgres::{PgConnection, PgPool, PgPoolOptions};
use sqlx::{Connection, Row};

use crate::store::{Batch, LEAD_COLUMNS, PHONE_COLUMNS};

pub struct PgCopyWriter {
    pool: PgPool,
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
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .connect(url)
            .await
            .context("COPY connection to PostgreSQL")?;
        Ok(Self { pool })
    }

    async fn copy(conn: &mut PgConnection, statement: &str, data: String) -> anyhow::Result<()> {
        let mut copy = conn.copy_in_raw(statement).await?;
        copy.send(data.into_bytes()).await?;
        copy.finish().await?;
        Ok(())
    }

    pub async fn write_batch(
        &self,
        now: i64,
        list_id: i64,
        job_id: i64,
        batch: &Batch,
    ) -> anyhow::Result<()> {
        let mut conn = self.pool.acquire().await?;
        let mut tx = conn.begin().await?;
        let n_new = batch.leads.iter().filter(|l| l.update_of.is_none()).count();
        let mut new_ids: Vec<i64> = Vec::new();
        if n_new > 0 {
            let rows = sqlx::query(
                "SELECT nextval(pg_get_serial_sequence('leads', 'id')) FROM generate_series(1, $1)",
            )
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
            text(o, Some(&l.dedupe_key));
            o.push(',');
            text(o, l.crm_id.as_deref());
            o.push(',');
            int(o, Some(l.priority));
            o.push(',');
            text(o, Some(l.state));
            for v in [
                &l.first_name,
                &l.last_name,
                &l.email,
                &l.postal_code,
                &l.subdivision,
            ] {
                o.push(',');
                text(o, v.as_deref());
            }
            o.push(',');
            text(o, l.country);
            o.push(',');
            text(o, Some(&l.attributes));
            o.push(',');
            text(o, l.consent_type.as_deref());
            o.push(',');
            text(o, l.consent_source.as_deref());
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
        sqlx::query("UPDATE import_jobs SET rows_committed = $1, report = $2, updated_at = $3 WHERE id = $4")
            .bind(batch.rows_end as i64)
            .bind(serde_json::to_string(&batch.report)?)
            .bind(now)
            .bind(job_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}
