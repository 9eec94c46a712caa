//! Calls handed between nodes: an answered call on this node goes to an agent whose audio leg is
//! on another node (shared PostgreSQL, agents published by [`crate::presence`]).
//!
//! Sending ([`Runtime::hand_off`]): a row of `agent_handoffs` is written first (its id, the
//! queue, the agent presence showed ready, the lead card), then an INVITE goes to the other node
//! — straight to its SIP listener, or through a proxy (Kamailio) that relays on the Request-URI
//! `sip:<agent>@<node host:port>`. The id travels as the From user (`dbhandoff-<id>`; proxies
//! keep it) and, for logs and proxies, in `X-Dialbridge-Handoff` / `X-Dialbridge-Agent` /
//! `X-Dialbridge-Contact`. Once the other node answers, this node bridges the customer to that leg
//! and stays in the media path (a B2BUA): either side hanging up ends both.
//!
//! Receiving ([`take`], the contact driver's first step): a call whose From user is a handoff id
//! is accepted only when the SIP layer admitted it without digest authentication (a
//! `sip.trusted_addresses` peer: another node or the proxy in front, never an agent phone) and the
//! row exists, is addressed to this node, is fresh and not yet taken (taken atomically). The
//! node then sends 183 with its SDP (media up, not answered), offers the leg at once to a ready
//! agent of the queue through the ACD (a nailed-up agent's leg is switched onto it), and answers
//! only when an agent took it: 200 means connected, 486 means no agent. The ACD picks among the
//! queue's ready agents; the agent presence showed is a hint (`agent_hint` in the attributes).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::Row;
use telephony::control::{Call, CallControl, Event, OnPeerHangup};
use telephony::sip::call::{Originate, Transport, Trunk};

use super::{Runtime, Shared};

/// The From user prefix that marks a handoff INVITE.
pub const FROM_PREFIX: &str = "dbhandoff-";
/// A handoff row older than this is refused by the receiving node.
const MAX_AGE_MS: i64 = 30_000;
/// How long the receiving node waits for its own 183 to set the media up.
const MEDIA_WAIT: Duration = Duration::from_secs(2);

/// Where a handoff goes.
#[derive(Debug, Clone)]
pub struct HandoffTarget {
    /// The receiving node's name.
    pub node: String,
    /// Its SIP listener, `host:port` (from `cluster_nodes`).
    pub sip_addr: String,
    /// The agent presence showed ready there.
    pub agent: String,
}

/// Why a handoff did not connect.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandoffError {
    #[error("the other node had no ready agent (SIP {0})")]
    Refused(u16),
    #[error("the other node did not answer: {0}")]
    Failed(String),
    #[error("database: {0}")]
    Db(String),
}

/// A connected handoff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handoff {
    pub id: String,
    /// The agent who took the call on the other node.
    pub agent: String,
    /// INVITE sent → the other node's 200 received and the media bridged here.
    pub elapsed: Duration,
}

fn db_err(e: impl std::fmt::Display) -> HandoffError {
    HandoffError::Db(e.to_string())
}

impl Runtime {
    /// The queues a routing profile serves (empty for an unknown profile).
    pub fn profile_queues(&self, profile: &str) -> Vec<String> {
        self.shared
            .cfg
            .acd
            .profiles
            .iter()
            .find(|p| p.name == profile)
            .map(|p| p.queues.iter().map(|q| q.queue.clone()).collect())
            .unwrap_or_default()
    }

    /// Hands the answered `call` to an agent of `queue` on another node (see the module doc);
    /// `proxy`: send the INVITE there instead of to the node (Kamailio in front). Returns once the
    /// agent is connected and the media bridged, or why not (the row then says so too). Bounded
    /// by `ring` (the other node answers or refuses at once; this covers a dead one).
    pub async fn hand_off(
        &self,
        to: &HandoffTarget,
        queue: &str,
        call: &CallControl,
        attributes: &BTreeMap<String, String>,
        proxy: Option<SocketAddr>,
        ring: Duration,
    ) -> Result<Handoff, HandoffError> {
        let sh = &self.shared;
        let started = Instant::now();
        let id = foundation::ids::random_base32(20).to_lowercase();
        let contact = telephony::cdr::call_ref(call.id());
        let attrs = serde_json::to_string(attributes).map_err(db_err)?;
        sqlx::query(
            "INSERT INTO agent_handoffs (id, from_node, to_node, queue, agent_hint, contact_id, attributes, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&id)
        .bind(&sh.cfg.node)
        .bind(&to.node)
        .bind(queue)
        .bind(&to.agent)
        .bind(&contact)
        .bind(&attrs)
        .bind(sh.clock.now_ms())
        .execute(sh.db.pool())
        .await
        .map_err(db_err)?;
        let result = self
            .place_handoff(&id, to, &contact, call, proxy, ring, started)
            .await;
        let outcome = match &result {
            Ok(_) => None,
            Err(HandoffError::Refused(_)) => Some("no_agent"),
            Err(_) => Some("failed"),
        };
        if let Some(outcome) = outcome {
            // The receiving node may have written its own outcome already; this fills a gap.
            let r = sqlx::query(
                "UPDATE agent_handoffs SET ended_at = $1, outcome = $2 WHERE id = $3 AND ended_at IS NULL",
            )
            .bind(sh.clock.now_ms())
            .bind(outcome)
            .bind(&id)
            .execute(sh.db.pool())
            .await;
            if let Err(e) = r {
                tracing::warn!(handoff = %id, error = %e, "handoff outcome not written");
            }
        }
        result
    }

    #[allow(clippy::too_many_arguments)]
    async fn place_handoff(
        &self,
        id: &str,
        to: &HandoffTarget,
        contact: &str,
        call: &CallControl,
        proxy: Option<SocketAddr>,
        ring: Duration,
        started: Instant,
    ) -> Result<Handoff, HandoffError> {
        let sh = &self.shared;
        let node_addr: SocketAddr = to
            .sip_addr
            .parse()
            .map_err(|_| HandoffError::Failed(format!("bad node address {:?}", to.sip_addr)))?;
        let o = Originate {
            request_uri: Some(format!("sip:{}@{}", to.agent, to.sip_addr)),
            to_user: to.agent.clone(),
            from_user: format!("{FROM_PREFIX}{id}"),
            trunks: vec![Trunk {
                addr: proxy.unwrap_or(node_addr),
                transport: Transport::Udp,
                credentials: None,
            }],
            ring_timeout: ring,
            headers: vec![
                ("X-Dialbridge-Handoff".into(), id.into()),
                ("X-Dialbridge-Agent".into(), to.agent.clone()),
                ("X-Dialbridge-Contact".into(), contact.into()),
            ],
        };
        let (_, leg, mut events) = sh.calls.originate(o).split();
        loop {
            match events.recv().await {
                Some(Event::Answered { .. }) => break,
                Some(Event::Hangup { code, cause, .. }) => {
                    return Err(match code {
                        Some(c @ (480 | 486 | 404)) => HandoffError::Refused(c),
                        _ => HandoffError::Failed(format!("{cause:?} (SIP {code:?})")),
                    });
                }
                None => return Err(HandoffError::Failed("the leg ended".into())),
                Some(_) => {}
            }
        }
        if let Err(e) = call.bridge(&leg, OnPeerHangup::HangUp).await {
            let _ = leg.hangup().await;
            return Err(HandoffError::Failed(format!("bridge: {e}")));
        }
        let elapsed = started.elapsed();
        tokio::spawn(async move { while events.recv().await.is_some() {} });
        let agent: Option<String> = sqlx::query("SELECT agent FROM agent_handoffs WHERE id = $1")
            .bind(id)
            .fetch_optional(sh.db.pool())
            .await
            .map_err(db_err)?
            .and_then(|r| r.get("agent"));
        let agent = agent.unwrap_or_else(|| to.agent.clone());
        tracing::info!(handoff = id, to = %to.node, agent, ms = elapsed.as_millis() as u64, "call handed to an agent on another node");
        Ok(Handoff {
            id: id.into(),
            agent,
            elapsed,
        })
    }
}

/// The handoff id a call carries (its From user after [`FROM_PREFIX`]).
pub fn handoff_id(from: &str) -> Option<String> {
    bridge::calls::uri_user(from)?
        .strip_prefix(FROM_PREFIX)
        .filter(|id| !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric()))
        .map(str::to_owned)
}

/// The contact driver's first step: a handoff from another node is taken here (`None`); any
/// other call is given back to go through the flow.
pub(crate) async fn take(sh: &Arc<Shared>, call: Call) -> Option<Call> {
    let Some(id) = handoff_id(&call.info().from) else {
        return Some(call);
    };
    receive(sh.clone(), call, id).await;
    None
}

async fn receive(sh: Arc<Shared>, call: Call, id: String) {
    let (info, ctl, mut events) = call.split();
    if info.user.is_some() {
        tracing::warn!(handoff = %id, user = ?info.user, source = ?info.source, "handoff refused: it came from an authenticated endpoint, not a trusted node");
        let _ = ctl.reject(403);
        return;
    }
    let now = sh.clock.now_ms();
    let row = sqlx::query(
        "UPDATE agent_handoffs SET taken_at = $1 WHERE id = $2 AND to_node = $3 AND taken_at IS NULL \
         AND ended_at IS NULL AND created_at >= $4 RETURNING queue, agent_hint, attributes, contact_id, from_node",
    )
    .bind(now)
    .bind(&id)
    .bind(&sh.cfg.node)
    .bind(now - MAX_AGE_MS)
    .fetch_optional(sh.db.pool())
    .await;
    let row = match row {
        Ok(Some(r)) => r,
        Ok(None) => {
            tracing::warn!(handoff = %id, source = ?info.source, "handoff refused: unknown, stale, taken or not for this node");
            let _ = ctl.reject(404);
            return;
        }
        Err(e) => {
            tracing::error!(handoff = %id, error = %e, "handoff refused: database");
            let _ = ctl.reject(503);
            return;
        }
    };
    let queue: String = row.get("queue");
    let mut attributes: BTreeMap<String, String> =
        serde_json::from_str(&row.get::<String, _>("attributes")).unwrap_or_default();
    attributes.insert("agent_hint".into(), row.get("agent_hint"));
    attributes.insert("handoff_id".into(), id.clone());
    attributes.insert("handoff_from_node".into(), row.get("from_node"));
    attributes.insert("handoff_contact".into(), row.get("contact_id"));

    // Media up without answering: the 183 carries our SDP.
    sh.calls.sip().progress(info.id);
    let media = tokio::time::timeout(MEDIA_WAIT, async {
        loop {
            match events.recv().await {
                Some(Event::EarlyMedia { .. }) => return true,
                None | Some(Event::Hangup { .. }) => return false,
                Some(_) => {}
            }
        }
    })
    .await
    .unwrap_or(false);
    let rt = Runtime { shared: sh.clone() };
    let result = if media {
        rt.connect_outbound(&queue, &ctl, attributes)
            .await
            .map_err(|_| "no_agent")
    } else {
        Err("failed")
    };
    let now = sh.clock.now_ms();
    let (agent, outcome) = match &result {
        Ok(agent) => (Some(agent.as_str()), "connected"),
        Err(o) => (None, *o),
    };
    // Written before the 200 goes out, so the sending node reads the agent after its answer.
    let w = sqlx::query(
        "UPDATE agent_handoffs SET agent = $1, ended_at = $2, outcome = $3 WHERE id = $4 AND ended_at IS NULL",
    )
    .bind(agent)
    .bind(now)
    .bind(outcome)
    .bind(&id)
    .execute(sh.db.pool())
    .await;
    if let Err(e) = w {
        tracing::warn!(handoff = %id, error = %e, "handoff outcome not written");
    }
    match result {
        Ok(agent) => {
            let _ = ctl.answer();
            tracing::info!(handoff = %id, agent, queue, "handoff connected to an agent");
            // The leg's events until it ends (the ACD follows the bridge by itself).
            while events.recv().await.is_some() {}
        }
        Err(_) => {
            tracing::info!(handoff = %id, queue, "handoff refused: no ready agent");
            let _ = ctl.reject(if media { 486 } else { 500 });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::handoff_id;

    #[test]
    fn handoff_ids_come_only_from_the_from_user() {
        assert_eq!(
            handoff_id("<sip:dbhandoff-abc123@10.0.0.1:5060>;tag=x").as_deref(),
            Some("abc123")
        );
        assert_eq!(handoff_id("<sip:alice@10.0.0.1>;tag=x"), None);
        assert_eq!(handoff_id("<sip:dbhandoff-@10.0.0.1>"), None);
        assert_eq!(handoff_id("<sip:dbhandoff-a'b@10.0.0.1>"), None);
    }
}
