//! Call detail records: every call leg gets a row in `calls` that always ends with an outcome.
//!
//! [`CdrBook`] is the decision part: it turns SIP call events into row changes (no I/O).
//! [`run`] is the thin driver that feeds it events and writes the changes, and keeps the call
//! metrics (`dialbridge_calls_total{direction,outcome}`, `dialbridge_calls_active`). A node that
//! stopped without closing its calls (a crash, SIGKILL) closes them as `interrupted` with
//! [`close_interrupted`] when it starts again, so no call is left without a final record.

use std::collections::HashMap;

use foundation::{Db, SharedClock, ids};
use serde::Serialize;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use crate::sip::call::{CallEvent, CallId, HangupCause};
use crate::sip::driver::SipHandle;
use crate::sip::outcome::Outcome;

/// The public reference of a call leg of this process: the key of its call record, and what
/// other records about the call (bridge arrivals, contacts) store. SIP-layer ids restart at 1 with
/// every process, so a random per-process tag keeps references unique across restarts and nodes.
pub fn call_ref(call: CallId) -> String {
    static PROCESS_TAG: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(|| ids::random_base32(10));
    format!("call_{}_{}", *PROCESS_TAG, call.0)
}

/// A change to one call's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Open {
        call_ref: String,
        direction: &'static str,
        from: Option<String>,
        to: Option<String>,
        at: i64,
    },
    Answered {
        call_ref: String,
        at: i64,
    },
    Close {
        call_ref: String,
        direction: &'static str,
        outcome: &'static str,
        cause: String,
        code: Option<u16>,
        at: i64,
    },
}

fn outcome_name(o: Outcome) -> &'static str {
    match o {
        Outcome::Answered => "answered",
        Outcome::Busy => "busy",
        Outcome::NoAnswer => "no_answer",
        Outcome::Rejected => "rejected",
        Outcome::NumberDisconnected => "number_disconnected",
        Outcome::Unreachable => "unreachable",
        Outcome::Congestion => "congestion",
    }
}

fn cause_name(c: HangupCause) -> String {
    serde_json::to_value(c)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{c:?}"))
}

/// The calls this node has open, by SIP-layer id.
#[derive(Debug, Default)]
pub struct CdrBook {
    open: HashMap<CallId, (String, &'static str)>,
}

impl CdrBook {
    pub fn active(&self) -> usize {
        self.open.len()
    }

    /// The changes an event makes. Outbound legs have no "created" event: their row opens with
    /// their first event.
    pub fn on_event(&mut self, e: &CallEvent, now_ms: i64) -> Vec<Change> {
        let mut out = Vec::new();
        let Some(call) = e.call() else { return out };
        if let CallEvent::Incoming { from, to, .. } = e {
            let call_ref = call_ref(call);
            self.open.insert(call, (call_ref.clone(), "inbound"));
            out.push(Change::Open {
                call_ref,
                direction: "inbound",
                from: Some(from.clone()),
                to: Some(to.clone()),
                at: now_ms,
            });
            return out;
        }
        if !self.open.contains_key(&call) {
            let call_ref = call_ref(call);
            self.open.insert(call, (call_ref.clone(), "outbound"));
            out.push(Change::Open {
                call_ref,
                direction: "outbound",
                from: None,
                to: None,
                at: now_ms,
            });
        }
        let (call_ref, direction) = self.open.get(&call).cloned().expect("opened above");
        match e {
            CallEvent::Answered { .. } => out.push(Change::Answered {
                call_ref,
                at: now_ms,
            }),
            CallEvent::Hangup {
                cause,
                code,
                outcome,
                ..
            } => {
                self.open.remove(&call);
                out.push(Change::Close {
                    call_ref,
                    direction,
                    outcome: outcome_name(*outcome),
                    cause: cause_name(*cause),
                    code: *code,
                    at: now_ms,
                });
            }
            _ => {}
        }
        out
    }
}

/// Writes one change.
pub async fn apply(db: &Db, node: &str, c: &Change) -> anyhow::Result<()> {
    match c {
        Change::Open {
            call_ref,
            direction,
            from,
            to,
            at,
        } => {
            sqlx::query(
                "INSERT INTO calls (call_ref, node, direction, from_uri, to_uri, state, started_at) \
                 VALUES ($1, $2, $3, $4, $5, 'ringing', $6)",
            )
            .bind(call_ref)
            .bind(node)
            .bind(*direction)
            .bind(from)
            .bind(to)
            .bind(at)
            .execute(db.pool())
            .await?;
        }
        Change::Answered { call_ref, at } => {
            sqlx::query(
                "UPDATE calls SET state = 'answered', answered_at = $1 WHERE call_ref = $2",
            )
            .bind(at)
            .bind(call_ref)
            .execute(db.pool())
            .await?;
        }
        Change::Close {
            call_ref,
            outcome,
            cause,
            code,
            at,
            ..
        } => {
            sqlx::query(
                "UPDATE calls SET state = 'ended', ended_at = $1, outcome = $2, cause = $3, sip_code = $4 WHERE call_ref = $5",
            )
            .bind(at)
            .bind(*outcome)
            .bind(cause)
            .bind(code.map(|c| c as i64))
            .bind(call_ref)
            .execute(db.pool())
            .await?;
        }
    }
    Ok(())
}

/// Closes the calls `node` left open when it last stopped; returns how many.
pub async fn close_interrupted(db: &Db, now_ms: i64, node: &str) -> anyhow::Result<u64> {
    Ok(sqlx::query(
        "UPDATE calls SET state = 'ended', ended_at = $1, outcome = 'interrupted', cause = 'node_stopped' \
         WHERE node = $2 AND state <> 'ended'",
    )
    .bind(now_ms)
    .bind(node)
    .execute(db.pool())
    .await?
    .rows_affected())
}

/// One stored call record.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct CallRecord {
    pub call_ref: String,
    pub node: String,
    pub direction: String,
    pub from_uri: Option<String>,
    pub to_uri: Option<String>,
    pub state: String,
    pub started_at: i64,
    pub answered_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub outcome: Option<String>,
    pub cause: Option<String>,
    pub sip_code: Option<i64>,
}

/// The newest call records first.
pub async fn recent(db: &Db, limit: i64) -> anyhow::Result<Vec<CallRecord>> {
    Ok(sqlx::query_as::<_, CallRecord>(
        "SELECT call_ref, node, direction, from_uri, to_uri, state, started_at, answered_at, ended_at, outcome, cause, sip_code \
         FROM calls ORDER BY id DESC LIMIT $1",
    )
    .bind(limit)
    .fetch_all(db.pool())
    .await?)
}

/// Records every call of `sip` until `stop` is cancelled. Events already sent are written before
/// it returns, so a shutdown that cancels `stop` after its drain and awaits this task before closing
/// the database loses no final record.
pub async fn run(
    db: Db,
    clock: SharedClock,
    sip: SipHandle,
    node: String,
    stop: CancellationToken,
) {
    let mut events = sip.subscribe();
    let mut book = CdrBook::default();
    loop {
        let e = tokio::select! {
            // Events first: a cancelled `stop` ends the loop only once none is waiting.
            biased;
            r = events.recv() => match r {
                Ok(e) => e,
                Err(RecvError::Lagged(n)) => {
                    tracing::error!(missed = n, "call records fell behind SIP events; some calls lack records");
                    continue;
                }
                Err(RecvError::Closed) => return,
            },
            _ = stop.cancelled() => return,
        };
        for change in book.on_event(&e, clock.now_ms()) {
            if let Change::Close {
                direction, outcome, ..
            } = &change
            {
                metrics::counter!("dialbridge_calls_total", "direction" => *direction, "outcome" => *outcome).increment(1);
            }
            if let Err(err) = apply(&db, &node, &change).await {
                tracing::warn!(error = %err, ?change, "could not write a call record");
            }
        }
        metrics::gauge!("dialbridge_calls_active").set(book.active() as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::call::MediaInfo;

    #[test]
    fn every_call_opens_once_and_closes_with_its_outcome() {
        let mut book = CdrBook::default();
        let media = MediaInfo {
            local_rtp_port: 10_000,
            negotiated: None,
        };
        let incoming = CallEvent::Incoming {
            call: CallId(1),
            from: "<sip:a@h>".into(),
            to: "<sip:b@h>".into(),
            request_uri: "sip:b@h".into(),
            user: None,
            source: "127.0.0.1:5062".parse().unwrap(),
        };
        assert!(matches!(
            book.on_event(&incoming, 10)[..],
            [Change::Open {
                direction: "inbound",
                ..
            }]
        ));
        assert!(matches!(
            book.on_event(
                &CallEvent::Answered {
                    call: CallId(1),
                    media
                },
                20
            )[..],
            [Change::Answered { .. }]
        ));
        assert_eq!(book.active(), 1);
        let hangup = CallEvent::Hangup {
            call: CallId(1),
            cause: HangupCause::RemoteBye,
            code: None,
            outcome: Outcome::Answered,
        };
        let c = book.on_event(&hangup, 30);
        assert!(
            matches!(&c[..], [Change::Close { outcome: "answered", direction: "inbound", cause, .. }] if cause == "remote_bye"),
            "{c:?}"
        );
        assert_eq!(book.active(), 0);

        // An outbound leg that fails at once: opened and closed by its only event.
        let busy = CallEvent::Hangup {
            call: CallId(2),
            cause: HangupCause::Rejected,
            code: Some(486),
            outcome: Outcome::Busy,
        };
        let c = book.on_event(&busy, 40);
        assert!(
            matches!(
                &c[..],
                [
                    Change::Open {
                        direction: "outbound",
                        ..
                    },
                    Change::Close {
                        outcome: "busy",
                        code: Some(486),
                        ..
                    }
                ]
            ),
            "{c:?}"
        );
        assert_eq!(book.active(), 0);
    }
}
