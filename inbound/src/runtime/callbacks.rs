//! Callbacks a flow scheduled (`CreateCallbackContact`): stored, queued with the caller's
//! place, dialled when their turn comes, retried, and always closed with a final outcome.
//!
//! - [`schedule`] writes the row (`inbound_callbacks`, status `pending`). An immediate callback
//!   ("call me back when it's my turn": `InitialCallDelaySeconds` ≤ [`IMMEDIATE_MAX_DELAY_S`])
//!   waits since the caller arrived, so it keeps the caller's place; a callback for later counts
//!   from its due time.
//! - The scheduler task ([`run_scheduler`]) hands each callback to the ACD task when it is due;
//!   the ACD queues it as a contact `callback-<id>` with that original time, so longest-waiting
//!   order holds.
//! - When the ACD offers it, the agent is reserved and [`dial`] runs: the row is claimed
//!   (`pending` → `dialing`, once, also across nodes), a ring-per-offer agent's phone is called
//!   first, then the customer's number through `RuntimeConfig::callback_trunk`. Answered: the
//!   ACD task connects agent and customer (the callback contact gets its own contact record) and
//!   the row is `done`. Not answered or busy: the agent is freed, and the callback is due again
//!   after the retry interval, or closed `failed` with the last outcome once attempts run out.
//! - Retry policy: the flow's `MaximumConnectionAttempts` / `RetryDelaySeconds`, overridden by
//!   the queue's `callback_attempts` / `callback_retry_s`; `callback_ring_s` per attempt; the
//!   customer sees the queue's `callback_caller_id`.
//! - At start ([`recover`]) this node's rows left `dialing` by a crash close as `interrupted`
//!   (never dialled twice) and every `pending` row is loaded again.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use foundation::Db;
use serde::Serialize;
use telephony::control::{CallControl, Event as CallEvent};
use telephony::sip::call::Originate;
use tokio::sync::mpsc;

use super::acd_task::{Cmd, originate_to};
use super::{AgentEndpoint, Shared};

/// A callback asked for with at most this delay keeps the caller's place in the queue.
pub const IMMEDIATE_MAX_DELAY_S: i64 = 60;

/// One callback waiting to be dialled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub id: i64,
    /// The contact that asked for it.
    pub contact_id: String,
    pub number: String,
    pub queue: String,
    /// The place in the queue (epoch ms).
    pub waiting_since: i64,
    pub due_at: i64,
    pub attempts_left: i64,
    pub attempts_made: i64,
    pub retry_delay_s: i64,
}

impl Entry {
    /// The callback's contact id in the ACD and in its contact record.
    pub fn acd_contact(&self) -> String {
        format!("callback-{}", self.id)
    }
}

/// A callback as the API lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallbackView {
    pub id: i64,
    pub contact_id: String,
    pub number: String,
    pub queue: String,
    /// `pending`, `dialing`, `done`, `failed`, `cancelled` or `interrupted`.
    pub status: String,
    /// The final outcome once closed (`done`, `no_answer`, `busy`, …, `cancelled`,
    /// `queue_timeout`, `interrupted`).
    pub outcome: Option<String>,
    pub waiting_since_ms: i64,
    pub due_at_ms: i64,
    pub attempts_made: i64,
    pub attempts_left: i64,
    /// The contact record of the call that reached the customer.
    pub callback_contact: Option<String>,
    pub ended_at_ms: Option<i64>,
}

/// How long a customer's phone rings per attempt for callbacks of `queue`.
pub(crate) fn ring_s(sh: &Shared, queue: &str) -> i64 {
    sh.queue_cfg(queue).map_or(30, |q| q.callback_ring_s)
}

/// The flow's request to call back. `arrived_ms`: when the caller first reached us.
pub(crate) struct Request<'a> {
    pub contact_id: &'a str,
    pub number: &'a str,
    pub queue: &'a str,
    pub arrived_ms: i64,
    pub delay_s: i64,
    pub attempts: i64,
    pub retry_delay_s: i64,
}

/// (waiting since, due at) of a callback asked for at `now` by a caller who arrived at
/// `arrived_ms`, `delay_s` from now: an immediate one keeps the caller's arrival as its place, a
/// later one queues as if it arrived when due.
pub fn place(arrived_ms: i64, now: i64, delay_s: i64) -> (i64, i64) {
    let due = now + delay_s.max(0) * 1000;
    if delay_s <= IMMEDIATE_MAX_DELAY_S {
        (arrived_ms.min(now), due)
    } else {
        (due, due)
    }
}

/// Stores a callback and hands it to the scheduler. Returns its id.
pub(crate) async fn schedule(sh: &Shared, r: Request<'_>) -> anyhow::Result<i64> {
    let now = sh.clock.now_ms();
    let q = sh.queue_cfg(r.queue);
    let attempts = q
        .as_ref()
        .and_then(|q| q.callback_attempts)
        .unwrap_or(r.attempts)
        .max(1);
    let retry = q
        .as_ref()
        .and_then(|q| q.callback_retry_s)
        .unwrap_or(r.retry_delay_s)
        .max(1);
    let (waiting_since, due) = place(r.arrived_ms, now, r.delay_s);
    let mut tx = sh.db.begin_write().await?;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO inbound_callbacks (contact_id, number, queue, waiting_since, due_at, attempts_left, retry_delay_s, status, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $8, $8) RETURNING id",
    )
    .bind(r.contact_id)
    .bind(r.number)
    .bind(r.queue)
    .bind(waiting_since)
    .bind(due)
    .bind(attempts)
    .bind(retry)
    .bind(now)
    .fetch_one(tx.conn())
    .await?;
    tx.commit().await?;
    let _ = sh.callbacks.send(Entry {
        id,
        contact_id: r.contact_id.into(),
        number: r.number.into(),
        queue: r.queue.into(),
        waiting_since,
        due_at: due,
        attempts_left: attempts,
        attempts_made: 0,
        retry_delay_s: retry,
    });
    Ok(id)
}

type Row = (String, i64, String, String, String, i64, i64, i64, i64, i64);
const COLUMNS: &str = "status, id, contact_id, number, queue, waiting_since, due_at, attempts_left, attempts_made, retry_delay_s";

fn entry(r: Row) -> Entry {
    Entry {
        id: r.1,
        contact_id: r.2,
        number: r.3,
        queue: r.4,
        waiting_since: r.5,
        due_at: r.6,
        attempts_left: r.7,
        attempts_made: r.8,
        retry_delay_s: r.9,
    }
}

/// Settles this node's callbacks a crash left `dialing` (closed `interrupted`: a call may have
/// reached the customer, so it is not dialled again) and returns (settled, every pending one).
pub(crate) async fn recover(db: &Db, node: &str, now: i64) -> anyhow::Result<(u64, Vec<Entry>)> {
    let mut tx = db.begin_write().await?;
    let settled = sqlx::query(
        "UPDATE inbound_callbacks SET status = 'interrupted', outcome = 'interrupted', ended_at = $1, updated_at = $1 \
         WHERE status = 'dialing' AND (node = $2 OR node IS NULL)",
    )
    .bind(now)
    .bind(node)
    .execute(tx.conn())
    .await?
    .rows_affected();
    tx.commit().await?;
    let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM inbound_callbacks WHERE status = 'pending' ORDER BY due_at, id"
    )))
    .fetch_all(db.pool())
    .await?;
    Ok((settled, rows.into_iter().map(entry).collect()))
}

/// Callbacks, newest first, optionally with one status.
pub async fn list(db: &Db, status: Option<&str>, limit: i64) -> anyhow::Result<Vec<CallbackView>> {
    type Full = (
        i64,
        String,
        String,
        String,
        String,
        Option<String>,
        i64,
        i64,
        i64,
        i64,
        Option<String>,
        Option<i64>,
    );
    const SELECT: &str = "SELECT id, contact_id, number, queue, status, outcome, waiting_since, due_at, \
         attempts_made, attempts_left, callback_contact, ended_at FROM inbound_callbacks";
    let rows: Vec<Full> = match status {
        Some(st) => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "{SELECT} WHERE status = $1 ORDER BY id DESC LIMIT $2"
            )))
            .bind(st)
            .bind(limit)
            .fetch_all(db.pool())
            .await?
        }
        None => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "{SELECT} ORDER BY id DESC LIMIT $1"
            )))
            .bind(limit)
            .fetch_all(db.pool())
            .await?
        }
    };
    Ok(rows
        .into_iter()
        .map(|r| CallbackView {
            id: r.0,
            contact_id: r.1,
            number: r.2,
            queue: r.3,
            status: r.4,
            outcome: r.5,
            waiting_since_ms: r.6,
            due_at_ms: r.7,
            attempts_made: r.8,
            attempts_left: r.9,
            callback_contact: r.10,
            ended_at_ms: r.11,
        })
        .collect())
}

/// Cancels a callback not yet dialled (a queued one is dropped when its turn comes: the claim
/// finds it cancelled). False when it was not pending.
pub async fn cancel(db: &Db, id: i64, now: i64) -> anyhow::Result<bool> {
    close(db, id, "pending", "cancelled", "cancelled", None, now).await
}

/// Moves a row from `from` to a final `status` with its `outcome`.
async fn close(
    db: &Db,
    id: i64,
    from: &str,
    status: &str,
    outcome: &str,
    contact: Option<&str>,
    now: i64,
) -> anyhow::Result<bool> {
    let mut tx = db.begin_write().await?;
    let n = sqlx::query(
        "UPDATE inbound_callbacks SET status = $1, outcome = $2, callback_contact = $3, ended_at = $4, updated_at = $4 \
         WHERE id = $5 AND status = $6",
    )
    .bind(status)
    .bind(outcome)
    .bind(contact)
    .bind(now)
    .bind(id)
    .bind(from)
    .execute(tx.conn())
    .await?
    .rows_affected();
    tx.commit().await?;
    Ok(n == 1)
}

/// Closes a queued callback the ACD dropped (`queue_timeout`).
pub(crate) async fn close_pending(db: &Db, id: i64, outcome: &str, now: i64) {
    if let Err(e) = close(db, id, "pending", "failed", outcome, None, now).await {
        tracing::error!(callback = id, error = %e, "callback not closed");
    }
}

/// Hands callbacks to the ACD task when they are due. New and retried callbacks arrive on `rx`.
pub(crate) async fn run_scheduler(
    sh: std::sync::Weak<Shared>,
    mut rx: mpsc::UnboundedReceiver<Entry>,
    initial: Vec<Entry>,
) {
    let mut due: BTreeMap<(i64, i64), Entry> =
        initial.into_iter().map(|e| ((e.due_at, e.id), e)).collect();
    loop {
        let wait = {
            let Some(sh) = sh.upgrade() else { return };
            let now = sh.clock.now_ms();
            while let Some(entry) = due.first_entry().filter(|e| e.key().0 <= now) {
                let e = entry.remove();
                if sh.acd.send(Cmd::Callback { entry: e }).is_err() {
                    return;
                }
            }
            due.keys()
                .next()
                .map(|&(at, _)| Duration::from_millis((at - now).max(0) as u64))
        };
        let next = match wait {
            Some(w) => tokio::time::timeout(w.min(Duration::from_secs(60)), rx.recv())
                .await
                .ok(),
            None => Some(rx.recv().await),
        };
        match next {
            Some(Some(e)) => {
                due.insert((e.due_at, e.id), e);
            }
            Some(None) => return,
            None => {}
        }
    }
}

/// How the reserved agent takes the callback.
pub(crate) enum AgentSide {
    /// The agent's standing leg (nailed up): the customer is bridged onto it.
    Leg,
    /// Ring the agent's phone first (ring per offer), for at most this long.
    Ring(AgentEndpoint, Duration),
}

/// How a callback's dial ended.
pub(crate) enum Dialed {
    /// The customer answered (and a ring-per-offer agent before them).
    Answered {
        customer: CallControl,
        customer_events: mpsc::UnboundedReceiver<CallEvent>,
        agent_leg: Option<(CallControl, mpsc::UnboundedReceiver<CallEvent>)>,
    },
    /// Not connected; `retry` is the callback when it is due again (else it is closed).
    NotConnected { retry: Option<Entry>, why: String },
}

fn outcome_name(o: &telephony::sip::outcome::Outcome) -> String {
    serde_json::to_value(o)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{o:?}").to_lowercase())
}

/// Calls and waits for the answer; the hang-up's outcome otherwise.
async fn call(
    sh: &Shared,
    o: Originate,
) -> Result<(CallControl, mpsc::UnboundedReceiver<CallEvent>), String> {
    let (_, ctl, mut events) = sh.calls.originate(o).split();
    loop {
        match events.recv().await {
            Some(CallEvent::Answered { .. }) => return Ok((ctl, events)),
            Some(CallEvent::Hangup { outcome, .. }) => return Err(outcome_name(&outcome)),
            None => return Err("unreachable".into()),
            Some(_) => {}
        }
    }
}

/// Dials a callback offered to `agent` and reports to the ACD task (`Cmd::CallbackDialed`).
pub(crate) fn dial(sh: Arc<Shared>, mut entry: Entry, agent: String, side: AgentSide) {
    tokio::spawn(async move {
        let contact = entry.acd_contact();
        let result = dial_inner(&sh, &mut entry, &side).await;
        if let Dialed::NotConnected { retry: Some(e), .. } = &result {
            let _ = sh.callbacks.send(e.clone());
        }
        let _ = sh.acd.send(Cmd::CallbackDialed {
            contact,
            agent,
            result,
        });
    });
}

async fn dial_inner(sh: &Shared, entry: &mut Entry, side: &AgentSide) -> Dialed {
    let now = sh.clock.now_ms();
    let not = |why: &str| Dialed::NotConnected {
        retry: None,
        why: why.into(),
    };
    let Some(trunk) = sh.cfg.callback_trunk.clone() else {
        let _ = close(&sh.db, entry.id, "pending", "failed", "no_trunk", None, now).await;
        return not("no callback trunk configured");
    };
    // The claim: once, also across nodes.
    let claimed = async {
        let mut tx = sh.db.begin_write().await?;
        let n = sqlx::query(
            "UPDATE inbound_callbacks SET status = 'dialing', node = $1, attempts_left = attempts_left - 1, \
             attempts_made = attempts_made + 1, updated_at = $2 WHERE id = $3 AND status = 'pending'",
        )
        .bind(&sh.cfg.node)
        .bind(now)
        .bind(entry.id)
        .execute(tx.conn())
        .await?
        .rows_affected();
        tx.commit().await?;
        anyhow::Ok(n == 1)
    }
    .await;
    match claimed {
        Ok(true) => {}
        Ok(false) => return not("no longer pending (cancelled, or taken by another node)"),
        Err(e) => {
            tracing::error!(callback = entry.id, error = %e, "callback claim failed");
            return Dialed::NotConnected {
                retry: Some(Entry {
                    due_at: now + entry.retry_delay_s * 1000,
                    ..entry.clone()
                }),
                why: format!("database: {e}"),
            };
        }
    }
    entry.attempts_left -= 1;
    entry.attempts_made += 1;
    // A ring-per-offer agent answers first; a missed agent costs the callback no attempt.
    let agent_leg = match side {
        AgentSide::Leg => None,
        AgentSide::Ring(ep, ring) => {
            let leg = match originate_to(sh, ep, *ring).await {
                Ok(o) => call(sh, o).await,
                Err(e) => Err(e),
            };
            match leg {
                Ok(l) => Some(l),
                Err(why) => {
                    entry.attempts_left += 1;
                    entry.attempts_made -= 1;
                    let back = async {
                        let mut tx = sh.db.begin_write().await?;
                        sqlx::query(
                            "UPDATE inbound_callbacks SET status = 'pending', attempts_left = attempts_left + 1, \
                             attempts_made = attempts_made - 1, updated_at = $1 WHERE id = $2 AND status = 'dialing'",
                        )
                        .bind(sh.clock.now_ms())
                        .bind(entry.id)
                        .execute(tx.conn())
                        .await?;
                        tx.commit().await
                    }
                    .await;
                    if let Err(e) = back {
                        tracing::error!(callback = entry.id, error = %e, "callback not put back");
                    }
                    entry.due_at = sh.clock.now_ms();
                    return Dialed::NotConnected {
                        retry: Some(entry.clone()),
                        why: format!("agent: {why}"),
                    };
                }
            }
        }
    };
    let o = Originate {
        to_user: entry.number.clone(),
        from_user: sh
            .queue_cfg(&entry.queue)
            .and_then(|q| q.callback_caller_id.clone())
            .unwrap_or_else(|| sh.cfg.agent_caller_id.clone()),
        trunks: vec![trunk],
        ring_timeout: Duration::from_secs(ring_s(sh, &entry.queue).clamp(1, 600) as u64),
        ..Default::default()
    };
    match call(sh, o).await {
        Ok((customer, customer_events)) => {
            let now = sh.clock.now_ms();
            if let Err(e) = close(
                &sh.db,
                entry.id,
                "dialing",
                "done",
                "done",
                Some(&entry.acd_contact()),
                now,
            )
            .await
            {
                tracing::error!(callback = entry.id, error = %e, "callback not closed as done");
            }
            Dialed::Answered {
                customer,
                customer_events,
                agent_leg,
            }
        }
        Err(outcome) => {
            if let Some((leg, _)) = &agent_leg {
                let _ = leg.hangup().await;
            }
            let now = sh.clock.now_ms();
            let retry = entry.attempts_left > 0;
            let r = async {
                let mut tx = sh.db.begin_write().await?;
                if retry {
                    sqlx::query(
                        "UPDATE inbound_callbacks SET status = 'pending', due_at = $1, updated_at = $2, outcome = $3 \
                         WHERE id = $4 AND status = 'dialing'",
                    )
                    .bind(now + entry.retry_delay_s * 1000)
                    .bind(now)
                    .bind(&outcome)
                    .bind(entry.id)
                    .execute(tx.conn())
                    .await?;
                } else {
                    sqlx::query(
                        "UPDATE inbound_callbacks SET status = 'failed', outcome = $1, ended_at = $2, updated_at = $2 \
                         WHERE id = $3 AND status = 'dialing'",
                    )
                    .bind(&outcome)
                    .bind(now)
                    .bind(entry.id)
                    .execute(tx.conn())
                    .await?;
                }
                tx.commit().await
            }
            .await;
            if let Err(e) = r {
                tracing::error!(callback = entry.id, error = %e, "callback attempt not recorded");
            }
            entry.due_at = now + entry.retry_delay_s * 1000;
            Dialed::NotConnected {
                retry: retry.then(|| entry.clone()),
                why: format!(
                    "customer: {outcome} (attempt {} of {})",
                    entry.attempts_made,
                    entry.attempts_made + entry.attempts_left
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn row(db: &Db, contact: &str, status: &str, node: Option<&str>) {
        let mut tx = db.begin_write().await.unwrap();
        sqlx::query(
            "INSERT INTO inbound_callbacks (contact_id, number, queue, waiting_since, due_at, attempts_left, retry_delay_s, status, created_at, updated_at, node) \
             VALUES ($1, '+15551230000', 'sales', 1000, 2000, 2, 60, $2, 1000, 1000, $3)",
        )
        .bind(contact)
        .bind(status)
        .bind(node)
        .execute(tx.conn())
        .await
        .unwrap();
        tx.commit().await.unwrap();
    }

    /// Recovery, listing and cancelling: the same SQL on both backends.
    async fn exercise(db: &Db) {
        db.migrate().await.unwrap();
        row(db, "c-pending", "pending", None).await;
        row(db, "c-mine", "dialing", Some("n1")).await;
        row(db, "c-theirs", "dialing", Some("n2")).await;
        row(db, "c-done", "done", Some("n1")).await;
        let (settled, pending) = recover(db, "n1", 5_000).await.unwrap();
        assert_eq!(settled, 1, "only this node's dialling row");
        assert_eq!(pending.len(), 1);
        assert_eq!(
            (
                pending[0].contact_id.as_str(),
                pending[0].waiting_since,
                pending[0].due_at,
                pending[0].attempts_left
            ),
            ("c-pending", 1000, 2000, 2)
        );
        let all = list(db, None, 10).await.unwrap();
        assert_eq!(
            all.iter()
                .map(|c| c.contact_id.as_str())
                .collect::<Vec<_>>(),
            ["c-done", "c-theirs", "c-mine", "c-pending"]
        );
        let mine = list(db, Some("interrupted"), 10).await.unwrap();
        assert_eq!(mine.len(), 1);
        assert_eq!(
            (
                mine[0].contact_id.as_str(),
                mine[0].outcome.as_deref(),
                mine[0].ended_at_ms
            ),
            ("c-mine", Some("interrupted"), Some(5_000))
        );
        assert_eq!(list(db, Some("dialing"), 10).await.unwrap().len(), 1);
        let id = pending[0].id;
        assert!(cancel(db, id, 6_000).await.unwrap());
        assert!(!cancel(db, id, 7_000).await.unwrap(), "cancelled once");
        let c = list(db, Some("cancelled"), 10).await.unwrap();
        assert_eq!(
            (c[0].id, c[0].outcome.as_deref(), c[0].ended_at_ms),
            (id, Some("cancelled"), Some(6_000))
        );
        assert_eq!(recover(db, "n1", 8_000).await.unwrap(), (0, Vec::new()));
    }

    #[test]
    fn an_immediate_callback_keeps_the_arrival_a_later_one_counts_from_its_time() {
        assert_eq!(place(10_000, 70_000, 1), (10_000, 71_000));
        assert_eq!(place(10_000, 70_000, 60), (10_000, 130_000));
        assert_eq!(place(10_000, 70_000, 3_600), (3_670_000, 3_670_000));
        assert_eq!(
            place(10_000, 70_000, -5),
            (10_000, 70_000),
            "no past due time"
        );
    }

    #[tokio::test]
    async fn callback_rows_on_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::connect(&format!("sqlite://{}/cb.db", dir.path().display()), 4)
            .await
            .unwrap();
        exercise(&db).await;
    }

    #[tokio::test]
    async fn callback_rows_on_postgres() {
        let Some(pg) = foundation::testing::TempPgDatabase::create().await else {
            return;
        };
        let db = Db::connect(&pg.url, 4).await.unwrap();
        exercise(&db).await;
    }
}
