//! The webhook outbox's driver: reads new events from the final records (contacts, dial attempts,
//! dispositions, do-not-call additions) behind a stored cursor, queues one delivery per
//! subscription that wants each event (`webhook_deliveries`, unique per subscription and event,
//! so re-reading or a second node queues nothing twice), and posts due deliveries, signed, each
//! claimed with a lease so no two nodes post the same row at once. The retry decisions are
//! [`super::webhooks::after_try`]'s.
//!
//! Why records and not the runtime's in-memory event stream: a record is written before anything
//! is announced and survives a crash, so an event is never lost between "it happened" and "it is
//! queued", and every node sees every record on PostgreSQL.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use foundation::clock::rfc3339_ms;
use foundation::{Db, SharedClock};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::http::{Target, post};
use super::tls::client_config;
use super::webhooks::{IntegrationsConfig, Next, Subscription, TryOutcome, after_try, signature};
use tokio_rustls::rustls::ClientConfig;

/// Rows read per source per pass.
const BATCH: i64 = 500;
/// Records are read once they are this old, so a record written a moment late with an earlier
/// end time (another node, a slow transaction) is not passed by the cursor.
const SETTLE_MS: i64 = 2_000;
/// Dispositions come after the end of a contact; those given within this long are looked for.
const DISPOSITION_WINDOW_MS: i64 = 3_600_000;
/// Claim time beyond a try's own time limit.
const LEASE_MARGIN_MS: i64 = 30_000;
/// With nobody subscribed, a cursor is moved on only when it lags this much (few writes; a new
/// subscription gets at most this much from before it).
const IDLE_CURSOR_LAG_MS: i64 = 60_000;

/// Runs the outbox until the process ends: one task reading events, one posting them.
pub async fn run(db: Db, clock: SharedClock, node: String, cfg: Arc<IntegrationsConfig>) {
    match release_own_leases(&db, &node).await {
        Ok(n) if n > 0 => tracing::info!(
            deliveries = n,
            "webhook deliveries claimed by this node before its restart are due again"
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "could not release this node's webhook claims"),
    }
    let reader = tokio::spawn(read_loop(db.clone(), clock.clone(), cfg.clone()));
    deliver_loop(db, clock, node, cfg).await;
    reader.abort();
}

async fn release_own_leases(db: &Db, node: &str) -> anyhow::Result<u64> {
    let r = sqlx::query(
        "UPDATE webhook_deliveries SET lease_owner = NULL, lease_until = NULL \
         WHERE lease_owner = $1 AND status = 'pending'",
    )
    .bind(node)
    .execute(db.pool())
    .await?;
    Ok(r.rows_affected())
}

async fn read_loop(db: Db, clock: SharedClock, cfg: Arc<IntegrationsConfig>) {
    let mut pass: u64 = 0;
    loop {
        let now = clock.now_ms();
        for source in SOURCES {
            if let Err(e) = read_source(&db, now, &cfg, source).await {
                tracing::warn!(source = source.name, error = %e, "reading events for webhooks failed; retrying");
            }
        }
        // Dispositions are looked for in a window, less often.
        if pass.is_multiple_of(5)
            && let Err(e) = read_dispositions(&db, now, &cfg).await
        {
            tracing::warn!(error = %e, "reading dispositions for webhooks failed; retrying");
        }
        pass += 1;
        tokio::time::sleep(Duration::from_millis(cfg.poll_ms)).await;
    }
}

/// An event found in a record: its time and row id (the cursor), its key and its data.
struct Found {
    at: i64,
    id: i64,
    key: String,
    data: Value,
}

/// A source of one event: a table read in (time, id) order.
struct Source {
    name: &'static str,
    event: &'static str,
    /// Selects `(time, id, …)` with `$1`/`$2` the cursor, `$3` the upper time bound, `$4` the limit.
    sql: &'static str,
    decode: fn(&sqlx::any::AnyRow) -> anyhow::Result<Found>,
}

const SOURCES: &[Source] = &[
    Source {
        name: "inbound_contacts.ended",
        event: "contact.ended",
        sql: "SELECT c.ended_at AS t, c.id AS id, c.contact_id, c.did, c.flow_version, c.started_at, c.outcome, c.queue, c.node, c.record, fl.name AS flow \
              FROM inbound_contacts c LEFT JOIN inbound_flows fl ON fl.id = c.flow_id \
              WHERE c.ended_at IS NOT NULL AND (c.ended_at > $1 OR (c.ended_at = $1 AND c.id > $2)) AND c.ended_at < $3 \
              ORDER BY c.ended_at, c.id LIMIT $4",
        decode: decode_contact,
    },
    Source {
        name: "dial_attempts.ended",
        event: "attempt.ended",
        sql: "SELECT a.ended_at AS t, a.id AS id, a.public_id, cp.name AS campaign, a.lead_id, a.e164, a.caller_id, a.outcome, a.disposition, a.agent, \
              a.live, a.abandoned, a.sip_code, a.amd, a.detail, a.attributes, a.created_at, a.answered_at, a.bridged_at \
              FROM dial_attempts a LEFT JOIN campaigns cp ON cp.id = a.campaign_id \
              WHERE a.state = 'final' AND a.ended_at IS NOT NULL AND (a.ended_at > $1 OR (a.ended_at = $1 AND a.id > $2)) AND a.ended_at < $3 \
              ORDER BY a.ended_at, a.id LIMIT $4",
        decode: decode_attempt,
    },
    Source {
        name: "dnc_entries.added",
        event: "lead.dnc",
        sql: "SELECT added_at AS t, id, e164, reason, source, added_by FROM dnc_entries \
              WHERE (added_at > $1 OR (added_at = $1 AND id > $2)) AND added_at < $3 \
              ORDER BY added_at, id LIMIT $4",
        decode: decode_dnc,
    },
];

fn get<T>(row: &sqlx::any::AnyRow, col: &str) -> anyhow::Result<T>
where
    T: for<'r> sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    use sqlx::Row;
    row.try_get(col)
        .map_err(|e| anyhow::anyhow!("column {col}: {e}"))
}

fn ms(v: Option<i64>) -> Value {
    v.map(|t| Value::String(rfc3339_ms(t)))
        .unwrap_or(Value::Null)
}

/// The contact fields a webhook carries, from a stored record.
pub fn contact_data(
    contact_id: &str,
    did: Option<String>,
    flow: Option<String>,
    flow_version: Option<i64>,
    started_at: i64,
    ended_at: Option<i64>,
    outcome: Option<String>,
    queue: Option<String>,
    record: &inbound::contact::ContactRecord,
) -> Value {
    let last = |stage: &str| {
        record
            .stages
            .iter()
            .rev()
            .find(|s| s.stage == stage && !s.detail.is_empty())
            .map(|s| s.detail.clone())
    };
    json!({
        "contact_id": contact_id,
        "channel": "inbound",
        "did": did,
        "customer_number": record.contact.customer_address,
        "started_at": rfc3339_ms(started_at),
        "ended_at": ms(ended_at),
        "outcome": outcome,
        "queue": queue,
        "agent": last("connected"),
        "disposition": last("disposition"),
        "flow": flow,
        "flow_version": flow_version,
        "recorded": record.stages.iter().any(|s| s.stage == "recording_on"),
        "attributes": record.attributes,
    })
}

fn decode_contact(row: &sqlx::any::AnyRow) -> anyhow::Result<Found> {
    let contact_id: String = get(row, "contact_id")?;
    let text: String = get(row, "record")?;
    let record: inbound::contact::ContactRecord = serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("contact {contact_id}: record is not readable: {e}"))?;
    let at: i64 = get(row, "t")?;
    let mut data = contact_data(
        &contact_id,
        get(row, "did")?,
        get(row, "flow")?,
        get(row, "flow_version")?,
        get(row, "started_at")?,
        Some(at),
        get(row, "outcome")?,
        get(row, "queue")?,
        &record,
    );
    data["node"] = json!(get::<Option<String>>(row, "node")?);
    Ok(Found {
        at,
        id: get(row, "id")?,
        key: format!("contact.ended:{contact_id}"),
        data,
    })
}

fn decode_attempt(row: &sqlx::any::AnyRow) -> anyhow::Result<Found> {
    let id: String = get(row, "public_id")?;
    let attributes: String = get(row, "attributes")?;
    let attributes: Value = serde_json::from_str(&attributes).unwrap_or(Value::Null);
    let at: i64 = get(row, "t")?;
    Ok(Found {
        at,
        id: get(row, "id")?,
        key: format!("attempt.ended:{id}"),
        data: json!({
            "contact_id": id,
            "channel": "outbound",
            "campaign": get::<Option<String>>(row, "campaign")?,
            "lead_id": get::<Option<i64>>(row, "lead_id")?,
            "number": get::<String>(row, "e164")?,
            "caller_id": get::<String>(row, "caller_id")?,
            "outcome": get::<Option<String>>(row, "outcome")?,
            "disposition": get::<Option<String>>(row, "disposition")?,
            "agent": get::<Option<String>>(row, "agent")?,
            "live": get::<i64>(row, "live")? != 0,
            "abandoned": get::<i64>(row, "abandoned")? != 0,
            "sip_code": get::<Option<i64>>(row, "sip_code")?,
            "amd": get::<Option<String>>(row, "amd")?,
            "detail": get::<Option<String>>(row, "detail")?,
            "attributes": attributes,
            "created_at": rfc3339_ms(get(row, "created_at")?),
            "answered_at": ms(get(row, "answered_at")?),
            "bridged_at": ms(get(row, "bridged_at")?),
            "ended_at": rfc3339_ms(at),
        }),
    })
}

fn decode_dnc(row: &sqlx::any::AnyRow) -> anyhow::Result<Found> {
    let e164: String = get(row, "e164")?;
    let at: i64 = get(row, "t")?;
    let id: i64 = get(row, "id")?;
    Ok(Found {
        at,
        id,
        key: format!("lead.dnc:{e164}:{at}"),
        data: json!({
            "number": e164,
            "reason": get::<String>(row, "reason")?,
            "source": get::<String>(row, "source")?,
            "added_by": get::<Option<String>>(row, "added_by")?,
            "added_at": rfc3339_ms(at),
        }),
    })
}

/// The cursor of `source`; created at `now` the first time (earlier records are not sent).
async fn cursor(db: &Db, source: &str, now: i64) -> anyhow::Result<(i64, i64)> {
    let found: Option<(i64, i64)> =
        sqlx::query_as("SELECT position, position_id FROM integration_cursors WHERE source = $1")
            .bind(source)
            .fetch_optional(db.pool())
            .await?;
    if let Some(c) = found {
        return Ok(c);
    }
    sqlx::query(
        "INSERT INTO integration_cursors (source, position, position_id, updated_at) VALUES ($1, $2, $3, $2) \
         ON CONFLICT (source) DO NOTHING",
    )
    .bind(source)
    .bind(now - SETTLE_MS)
    .bind(i64::MAX)
    .execute(db.pool())
    .await?;
    let c: (i64, i64) =
        sqlx::query_as("SELECT position, position_id FROM integration_cursors WHERE source = $1")
            .bind(source)
            .fetch_one(db.pool())
            .await?;
    Ok(c)
}

/// One new delivery of `event` for subscription `sub`.
struct Queued<'a> {
    sub: &'a str,
    event: &'a str,
    key: String,
    data: Value,
}

/// Queues `items` and moves the cursor, in one transaction (nothing queued twice: a delivery
/// already queued for the same subscription and key is left as it is).
async fn queue(
    db: &Db,
    now: i64,
    items: &[Queued<'_>],
    cursor: Option<(&str, i64, i64)>,
) -> anyhow::Result<usize> {
    let mut tx = db.begin_write().await?;
    let mut queued = 0;
    for q in items {
        let delivery_id = foundation::ids::public_id("whd", now);
        let body = json!({
            "id": delivery_id,
            "event": q.event,
            "created_at": rfc3339_ms(now),
            "data": q.data,
        });
        let r = sqlx::query(
            "INSERT INTO webhook_deliveries (delivery_id, subscription, event, event_key, payload, status, attempts, next_attempt_at, created_at) \
             VALUES ($1, $2, $3, $4, $5, 'pending', 0, $6, $6) ON CONFLICT (subscription, event_key) DO NOTHING",
        )
        .bind(&delivery_id)
        .bind(q.sub)
        .bind(q.event)
        .bind(&q.key)
        .bind(body.to_string())
        .bind(now)
        .execute(tx.conn())
        .await?;
        queued += r.rows_affected() as usize;
    }
    if let Some((source, position, position_id)) = cursor {
        sqlx::query(
            "UPDATE integration_cursors SET position = $1, position_id = $2, updated_at = $3 WHERE source = $4",
        )
        .bind(position)
        .bind(position_id)
        .bind(now)
        .bind(source)
        .execute(tx.conn())
        .await?;
    }
    tx.commit().await?;
    Ok(queued)
}

/// Reads `source` from its cursor up to `now - SETTLE_MS` and queues what subscriptions want.
async fn read_source(
    db: &Db,
    now: i64,
    cfg: &IntegrationsConfig,
    source: &Source,
) -> anyhow::Result<()> {
    let until = now - SETTLE_MS;
    let (mut pos, mut pos_id) = cursor(db, source.name, now).await?;
    let subs: Vec<&str> = cfg.wanting(source.event).collect();
    loop {
        if subs.is_empty() {
            // Nobody listens: move on without reading, so a later subscription starts from now.
            if until - 1 - pos > IDLE_CURSOR_LAG_MS {
                queue(db, now, &[], Some((source.name, until - 1, i64::MAX))).await?;
            }
            return Ok(());
        }
        let rows = sqlx::query(source.sql)
            .bind(pos)
            .bind(pos_id)
            .bind(until)
            .bind(BATCH)
            .fetch_all(db.pool())
            .await?;
        let n = rows.len() as i64;
        let mut items = Vec::new();
        for row in &rows {
            let found = match (source.decode)(row) {
                Ok(f) => f,
                Err(e) => {
                    // The cursor moves past it: one unreadable record must not stop the others.
                    tracing::error!(source = source.name, error = %e, "a record cannot become a webhook event; skipped");
                    let (t, id): (i64, i64) = (get(row, "t")?, get(row, "id")?);
                    (pos, pos_id) = (t, id);
                    continue;
                }
            };
            (pos, pos_id) = (found.at, found.id);
            for sub in &subs {
                items.push(Queued {
                    sub,
                    event: source.event,
                    key: found.key.clone(),
                    data: found.data.clone(),
                });
            }
        }
        if n == 0 {
            return Ok(());
        }
        let queued = queue(db, now, &items, Some((source.name, pos, pos_id))).await?;
        if queued > 0 {
            tracing::debug!(source = source.name, queued, "webhook deliveries queued");
        }
        if n < BATCH {
            return Ok(());
        }
    }
}

/// Dispositions given in the last hour (after the contact's end, so not behind a cursor):
/// inbound contacts' `disposition` stage and dial attempts' disposition code. A changed code is
/// a new event.
async fn read_dispositions(db: &Db, now: i64, cfg: &IntegrationsConfig) -> anyhow::Result<()> {
    let subs: Vec<&str> = cfg.wanting("contact.disposition").collect();
    let (since, _) = cursor(db, "dispositions.since", now).await?;
    if subs.is_empty() {
        if now - since > IDLE_CURSOR_LAG_MS {
            queue(db, now, &[], Some(("dispositions.since", now, 0))).await?;
        }
        return Ok(());
    }
    let from = since.max(now - DISPOSITION_WINDOW_MS);
    let mut items = Vec::new();
    let contacts: Vec<(String, Option<String>, Option<i64>, i64, Option<i64>, Option<String>, Option<String>, String, Option<String>)> =
        sqlx::query_as(
            "SELECT c.contact_id, c.did, c.flow_version, c.started_at, c.ended_at, c.outcome, c.queue, c.record, fl.name \
             FROM inbound_contacts c LEFT JOIN inbound_flows fl ON fl.id = c.flow_id \
             WHERE c.ended_at >= $1 AND c.record LIKE '%\"stage\":\"disposition\"%'",
        )
        .bind(from)
        .fetch_all(db.pool())
        .await?;
    for (id, did, version, started, ended, outcome, q, text, flow) in contacts {
        let Ok(record) = serde_json::from_str::<inbound::contact::ContactRecord>(&text) else {
            continue;
        };
        let data = contact_data(&id, did, flow, version, started, ended, outcome, q, &record);
        let Some(code) = data["disposition"].as_str().map(str::to_owned) else {
            continue;
        };
        for sub in &subs {
            items.push(Queued {
                sub,
                event: "contact.disposition",
                key: format!("contact.disposition:{id}:{code}"),
                data: data.clone(),
            });
        }
    }
    let attempts: Vec<(String, Option<String>, String, String, Option<String>, i64)> = sqlx::query_as(
        "SELECT a.public_id, cp.name, a.e164, a.disposition, a.agent, a.ended_at FROM dial_attempts a \
         LEFT JOIN campaigns cp ON cp.id = a.campaign_id \
         WHERE a.ended_at >= $1 AND a.disposition IS NOT NULL",
    )
    .bind(from)
    .fetch_all(db.pool())
    .await?;
    for (id, campaign, number, code, agent, ended) in attempts {
        for sub in &subs {
            items.push(Queued {
                sub,
                event: "contact.disposition",
                key: format!("contact.disposition:{id}:{code}"),
                data: json!({
                    "contact_id": id,
                    "channel": "outbound",
                    "campaign": campaign,
                    "number": number,
                    "agent": agent,
                    "disposition": code,
                    "ended_at": rfc3339_ms(ended),
                }),
            });
        }
    }
    if !items.is_empty() {
        queue(db, now, &items, None).await?;
    }
    Ok(())
}

/// A delivery claimed by this node for one try.
#[derive(Debug)]
struct Claimed {
    id: i64,
    delivery_id: String,
    subscription: String,
    event: String,
    payload: String,
    attempts: i64,
}

/// Each `https://` subscription's TLS client configuration, built once (reading a CA bundle per
/// try would be wasteful); an error is recorded on every try of that subscription.
type TlsConfigs = BTreeMap<String, Result<Arc<ClientConfig>, String>>;

fn tls_configs(cfg: &IntegrationsConfig) -> TlsConfigs {
    cfg.webhooks
        .iter()
        .filter(|(_, s)| s.url.starts_with("https://"))
        .map(|(name, s)| (name.clone(), client_config(s.ca_file.as_deref())))
        .collect()
}

async fn deliver_loop(db: Db, clock: SharedClock, node: String, cfg: Arc<IntegrationsConfig>) {
    let tls = Arc::new(tls_configs(&cfg));
    loop {
        let mut batch = Vec::new();
        while batch.len() < cfg.concurrency as usize {
            match claim(&db, clock.now_ms(), &node, &cfg).await {
                Ok(Some(c)) => batch.push(c),
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "claiming webhook deliveries failed; retrying");
                    break;
                }
            }
        }
        if batch.is_empty() {
            tokio::time::sleep(Duration::from_millis(cfg.poll_ms)).await;
            continue;
        }
        let tries = batch.into_iter().map(|c| {
            let (db, clock, node, cfg, tls) = (
                db.clone(),
                clock.clone(),
                node.clone(),
                cfg.clone(),
                tls.clone(),
            );
            tokio::spawn(async move { try_once(&db, &clock, &node, &cfg, &tls, c).await })
        });
        for t in tries.collect::<Vec<_>>() {
            match t.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "a webhook result was not saved; the delivery is tried again when its claim runs out")
                }
                Err(e) => tracing::error!(error = %e, "a webhook try panicked"),
            }
        }
    }
}

/// Claims the next due delivery (one row, one short transaction).
async fn claim(
    db: &Db,
    now: i64,
    node: &str,
    cfg: &IntegrationsConfig,
) -> anyhow::Result<Option<Claimed>> {
    // A plain read first: an idle outbox takes no write lock.
    let due: Option<i64> = sqlx::query_scalar(
        "SELECT id FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= $1 \
         AND (lease_until IS NULL OR lease_until < $1) LIMIT 1",
    )
    .bind(now)
    .fetch_optional(db.pool())
    .await?;
    if due.is_none() {
        return Ok(None);
    }
    let mut tx = db.begin_write().await?;
    let row: Option<(i64, String, String, String, String, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT id, delivery_id, subscription, event, payload, attempts FROM webhook_deliveries \
         WHERE status = 'pending' AND next_attempt_at <= $1 AND (lease_until IS NULL OR lease_until < $1) \
         ORDER BY next_attempt_at, id LIMIT 1{}",
        db.claim_lock_suffix()
    )))
    .bind(now)
    .fetch_optional(tx.conn())
    .await?;
    let Some((id, delivery_id, subscription, event, payload, attempts)) = row else {
        tx.rollback().await?;
        return Ok(None);
    };
    let Some(sub) = cfg.webhooks.get(&subscription) else {
        sqlx::query(
            "UPDATE webhook_deliveries SET status = 'failed', ended_at = $1, last_error = $2 WHERE id = $3",
        )
        .bind(now)
        .bind(format!(
            "subscription {subscription:?} is no longer configured (integrations.webhooks.{subscription})"
        ))
        .bind(id)
        .execute(tx.conn())
        .await?;
        tx.commit().await?;
        return Box::pin(claim(db, now, node, cfg)).await;
    };
    sqlx::query("UPDATE webhook_deliveries SET lease_owner = $1, lease_until = $2 WHERE id = $3")
        .bind(node)
        .bind(now + sub.timeout_ms as i64 + LEASE_MARGIN_MS)
        .bind(id)
        .execute(tx.conn())
        .await?;
    tx.commit().await?;
    Ok(Some(Claimed {
        id,
        delivery_id,
        subscription,
        event,
        payload,
        attempts,
    }))
}

/// A number in [0, 1) that differs per delivery and try (the jitter), without a random source.
fn jitter(delivery_id: &str, attempt: i64) -> f64 {
    let d = Sha256::digest(format!("{delivery_id}:{attempt}"));
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    (u64::from_be_bytes(b) >> 11) as f64 / (1u64 << 53) as f64
}

/// The headers of one try (see `docs/webhooks.md`).
pub fn headers(
    sub: &Subscription,
    event: &str,
    delivery_id: &str,
    attempt: i64,
    timestamp_s: i64,
    body: &[u8],
) -> Vec<(&'static str, String)> {
    vec![
        ("X-Dialbridge-Event", event.to_owned()),
        ("X-Dialbridge-Delivery", delivery_id.to_owned()),
        ("X-Dialbridge-Attempt", attempt.to_string()),
        ("X-Dialbridge-Timestamp", timestamp_s.to_string()),
        (
            "X-Dialbridge-Signature",
            signature(&sub.secret, timestamp_s, body),
        ),
    ]
}

async fn try_once(
    db: &Db,
    clock: &SharedClock,
    node: &str,
    cfg: &IntegrationsConfig,
    tls: &TlsConfigs,
    c: Claimed,
) -> anyhow::Result<()> {
    let sub = &cfg.webhooks[&c.subscription];
    let attempt = c.attempts + 1;
    let started = clock.now_ms();
    let client = match tls.get(&c.subscription) {
        None => Ok(None),
        Some(Ok(config)) => Ok(Some(config)),
        Some(Err(e)) => Err(format!("TLS configuration: {e}")),
    };
    let outcome = match Target::parse(&sub.url).and_then(|t| Ok((t, client?))) {
        Ok((target, client)) => {
            let h = headers(
                sub,
                &c.event,
                &c.delivery_id,
                attempt,
                started.div_euclid(1000),
                c.payload.as_bytes(),
            );
            post(
                &target,
                client,
                &h,
                c.payload.as_bytes(),
                Duration::from_millis(sub.timeout_ms),
            )
            .await
        }
        Err(e) => TryOutcome::NoAnswer(e),
    };
    let now = clock.now_ms();
    let next = after_try(
        sub,
        attempt as u32,
        &outcome,
        now,
        jitter(&c.delivery_id, attempt),
    );
    let (status, next_at, ended_at) = match next {
        Next::Delivered => ("delivered", now, Some(now)),
        Next::Failed => ("failed", now, Some(now)),
        Next::RetryAt(at) => ("pending", at, None),
    };
    let (code, error) = match &outcome {
        TryOutcome::Status(code) if (200..300).contains(code) => (Some(*code as i64), None),
        TryOutcome::Status(code) => (Some(*code as i64), Some(format!("HTTP {code}"))),
        TryOutcome::NoAnswer(e) => (None, Some(e.clone())),
    };
    metrics::counter!("dialbridge_webhook_tries_total", "subscription" => c.subscription.clone(), "result" => status).increment(1);
    tracing::debug!(delivery = %c.delivery_id, subscription = %c.subscription, attempt, status, error = ?error, "webhook try");
    let mut tx = db.begin_write().await?;
    sqlx::query(
        "UPDATE webhook_deliveries SET attempts = $1, status = $2, next_attempt_at = $3, ended_at = $4, \
         last_status = $5, last_error = $6, last_attempt_at = $7, lease_owner = NULL, lease_until = NULL \
         WHERE id = $8 AND lease_owner = $9 AND status = 'pending'",
    )
    .bind(attempt)
    .bind(status)
    .bind(next_at)
    .bind(ended_at)
    .bind(code)
    .bind(error)
    .bind(started)
    .bind(c.id)
    .bind(node)
    .execute(tx.conn())
    .await?;
    tx.commit().await?;
    if status == "failed" {
        tracing::warn!(delivery = %c.delivery_id, subscription = %c.subscription, attempts = attempt, "webhook delivery failed after its last try; re-deliver it with POST /api/v1/webhooks/deliveries/{{id}}/redeliver");
    }
    Ok(())
}

/// Deliveries by status, for tests and the figures line.
pub async fn counts(db: &Db) -> anyhow::Result<BTreeMap<String, i64>> {
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT status, COUNT(*) FROM webhook_deliveries GROUP BY status")
            .fetch_all(db.pool())
            .await?;
    Ok(rows.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_is_in_range_and_varies() {
        let a = jitter("whd_a", 1);
        let b = jitter("whd_a", 2);
        assert!((0.0..1.0).contains(&a) && (0.0..1.0).contains(&b));
        assert_ne!(a, b);
    }

    fn cfg(url: &str) -> IntegrationsConfig {
        let mut c = IntegrationsConfig::default();
        c.webhooks.insert(
            "crm".into(),
            Subscription {
                url: url.into(),
                secret: "0123456789abcdef".into(),
                events: vec!["contact.ended".into(), "lead.dnc".into()],
                ..Default::default()
            },
        );
        c
    }

    /// Queues from real records on both backends: a DNC addition becomes one delivery per
    /// subscription, re-reading queues nothing twice, and a claim is exclusive until it ends.
    async fn exercise(db: &Db) {
        db.migrate().await.unwrap();
        let c = cfg("http://127.0.0.1:9/h");
        let t0 = 1_795_478_400_000;
        // First read creates the cursor at t0: earlier records are not sent.
        read_source(db, t0, &c, &SOURCES[2]).await.unwrap();
        for (i, n) in ["+13125550001", "+13125550002"].iter().enumerate() {
            sqlx::query("INSERT INTO dnc_entries (e164, reason, source, added_at) VALUES ($1, 'asked', 'agent', $2)")
                .bind(n)
                .bind(t0 + i as i64 * 10)
                .execute(db.pool())
                .await
                .unwrap();
        }
        // Not settled yet.
        read_source(db, t0 + 100, &c, &SOURCES[2]).await.unwrap();
        assert_eq!(counts(db).await.unwrap().get("pending"), None);
        read_source(db, t0 + 10_000, &c, &SOURCES[2]).await.unwrap();
        read_source(db, t0 + 20_000, &c, &SOURCES[2]).await.unwrap();
        assert_eq!(counts(db).await.unwrap()["pending"], 2);
        // A rewound cursor (a second node behind) queues nothing twice.
        sqlx::query("UPDATE integration_cursors SET position = 0, position_id = 0")
            .execute(db.pool())
            .await
            .unwrap();
        read_source(db, t0 + 30_000, &c, &SOURCES[2]).await.unwrap();
        assert_eq!(counts(db).await.unwrap()["pending"], 2);
        let payload: String = sqlx::query_scalar(
            "SELECT payload FROM webhook_deliveries WHERE event_key LIKE 'lead.dnc:+13125550001:%'",
        )
        .fetch_one(db.pool())
        .await
        .unwrap();
        let v: Value = serde_json::from_str(&payload).unwrap();
        assert_eq!(v["event"], "lead.dnc");
        assert_eq!(v["data"]["number"], "+13125550001");
        assert!(v["id"].as_str().unwrap().starts_with("whd_"));
        // Claims: each due row goes to one claimer until its lease runs out.
        let now = t0 + 40_000;
        let a = claim(db, now, "node-a", &c).await.unwrap().unwrap();
        let b = claim(db, now, "node-b", &c).await.unwrap().unwrap();
        assert_ne!(a.id, b.id);
        assert!(claim(db, now, "node-c", &c).await.unwrap().is_none());
        let later = now + 10_000 + LEASE_MARGIN_MS + 1;
        assert!(
            claim(db, later, "node-c", &c).await.unwrap().is_some(),
            "an expired claim is taken over"
        );
        assert_eq!(release_own_leases(db, "node-b").await.unwrap(), 1);
        // A subscription removed from the configuration: its deliveries end failed, with why.
        let gone = IntegrationsConfig::default();
        assert!(claim(db, later, "node-d", &gone).await.unwrap().is_none());
        let counts = counts(db).await.unwrap();
        assert_eq!(counts.get("failed"), Some(&1), "{counts:?}");
    }

    /// Contacts, dial attempts and dispositions become events with their fields (both backends:
    /// the joins and the flag columns decode the same).
    async fn exercise_sources(db: &Db) {
        db.migrate().await.unwrap();
        let mut c = cfg("http://127.0.0.1:9/h");
        c.webhooks.get_mut("crm").unwrap().events = vec![
            "contact.ended".into(),
            "attempt.ended".into(),
            "contact.disposition".into(),
        ];
        let t0 = 1_795_478_400_000;
        for s in SOURCES {
            read_source(db, t0, &c, s).await.unwrap();
        }
        read_dispositions(db, t0, &c).await.unwrap();
        let info = inbound::contact::ContactInfo {
            contact_id: "c-1".into(),
            customer_address: "+13125550100".into(),
            system_address: "+18005550100".into(),
            channel: "VOICE".into(),
            attributes: [("account".to_string(), "A-1".to_string())].into(),
        };
        let mut r = inbound::contact::ContactRecord::new(info, t0 + 10);
        for (stage, detail) in [
            ("recording_on", "/data/recordings/c-1.wav"),
            ("connected", "agnes"),
            ("disposition", "sale"),
        ] {
            r.stages.push(inbound::contact::Stage {
                at_ms: t0 + 20,
                stage: stage.into(),
                detail: detail.into(),
            });
        }
        r.ended_at_ms = Some(t0 + 30);
        r.outcome = Some(inbound::contact::FlowOutcome::Queued {
            queue: "sales".into(),
        });
        r.target_queue = Some("sales".into());
        inbound::store::save_contact(db, &r, None).await.unwrap();
        sqlx::query(
            "INSERT INTO dial_attempts (public_id, e164, caller_id, node, state, allowed_reason, outcome, disposition, agent, \
             live, abandoned, sip_code, attributes, created_at, answered_at, ended_at) \
             VALUES ('contact_a1', '+13125550199', '+18005550199', 'n1', 'final', 'ok', 'answered_human', 'callback', 'agnes', \
             1, 0, 200, '{\"crm_id\":\"L-7\"}', $1, $2, $3)",
        )
        .bind(t0 + 1)
        .bind(t0 + 5)
        .bind(t0 + 40)
        .execute(db.pool())
        .await
        .unwrap();
        let later = t0 + 10_000;
        for s in SOURCES {
            read_source(db, later, &c, s).await.unwrap();
        }
        read_dispositions(db, later, &c).await.unwrap();
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT event_key, payload FROM webhook_deliveries ORDER BY event_key")
                .fetch_all(db.pool())
                .await
                .unwrap();
        let keys: Vec<&str> = rows.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "attempt.ended:contact_a1",
                "contact.disposition:c-1:sale",
                "contact.disposition:contact_a1:callback",
                "contact.ended:c-1",
            ]
        );
        let body = |i: usize| serde_json::from_str::<Value>(&rows[i].1).unwrap()["data"].clone();
        let a = body(0);
        assert_eq!(
            (&a["number"], &a["live"], &a["abandoned"], &a["sip_code"]),
            (
                &json!("+13125550199"),
                &json!(true),
                &json!(false),
                &json!(200)
            )
        );
        assert_eq!(a["attributes"]["crm_id"], "L-7");
        assert_eq!(a["answered_at"], "2026-11-24T00:00:00.005Z");
        let e = body(3);
        assert_eq!(
            (
                &e["customer_number"],
                &e["agent"],
                &e["disposition"],
                &e["queue"]
            ),
            (
                &json!("+13125550100"),
                &json!("agnes"),
                &json!("sale"),
                &json!("sales")
            )
        );
        assert_eq!(
            (&e["recorded"], &e["outcome"]),
            (&json!(true), &json!("queued"))
        );
        assert_eq!(e["attributes"]["account"], "A-1");
        assert_eq!(body(2)["disposition"], "callback");
        // Read again: nothing new.
        read_dispositions(db, later + 5_000, &c).await.unwrap();
        assert_eq!(counts(db).await.unwrap()["pending"], 4);
    }

    #[tokio::test]
    async fn sources_on_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::connect(&format!("sqlite://{}/s.db", dir.path().display()), 2)
            .await
            .unwrap();
        exercise_sources(&db).await;
    }

    #[tokio::test]
    async fn sources_on_postgres() {
        let Some(pg) = foundation::testing::TempPgDatabase::create().await else {
            return;
        };
        let db = Db::connect(&pg.url, 2).await.unwrap();
        exercise_sources(&db).await;
        db.close().await;
    }

    #[tokio::test]
    async fn outbox_on_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::connect(&format!("sqlite://{}/w.db", dir.path().display()), 2)
            .await
            .unwrap();
        exercise(&db).await;
    }

    #[tokio::test]
    async fn outbox_on_postgres() {
        let Some(pg) = foundation::testing::TempPgDatabase::create().await else {
            return;
        };
        let db = Db::connect(&pg.url, 2).await.unwrap();
        exercise(&db).await;
        db.close().await;
    }
}
