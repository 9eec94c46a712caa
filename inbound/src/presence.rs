//! Agents across nodes. Each node mirrors its logged-in agents (agent, node, ACD state, ready or
//! not, the queues their routing profile serves, since when, nailed-up or ring per offer) into
//! `agent_presence`, driven by the runtime's event stream ([`Runtime::subscribe`]) plus a full
//! comparison on every heartbeat, and beats its row of `cluster_nodes` (where its SIP listener
//! is reached) every [`PresenceConfig::heartbeat`]. Readers ignore the agents of a node whose
//! heartbeat is older than [`PresenceConfig::ttl`] (a dead node), and every node deletes them and
//! closes the dead node's open call and contact records as interrupted.
//!
//! Live call state stays with the node carrying the calls (ARCHITECTURE.md): these rows are a
//! read model for pacers on other nodes and for [`crate::runtime::handoff`], which hands an
//! answered call to the node where the agent's leg is. A node only writes and deletes its own
//! rows (an agent logging in elsewhere takes the row over).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use foundation::{Db, SharedClock};
use sqlx::Row;
use tokio::sync::broadcast::error::RecvError;

use crate::acd::AgentState;
use crate::runtime::{AgentMode, AgentView, Runtime};

/// How a node publishes its agents.
#[derive(Debug, Clone)]
pub struct PresenceConfig {
    /// This node's name (as in `RuntimeConfig::node`).
    pub node: String,
    /// Where other nodes (or the SIP proxy in front) reach this node's SIP listener: `host:port`.
    pub sip_addr: String,
    /// How often the node row is refreshed (and the agents compared again).
    pub heartbeat: Duration,
    /// A node silent for longer is dead: its agents are ignored and cleaned up.
    pub ttl: Duration,
}

impl PresenceConfig {
    pub fn new(node: &str, sip_addr: &str) -> Self {
        PresenceConfig {
            node: node.into(),
            sip_addr: sip_addr.into(),
            heartbeat: Duration::from_secs(1),
            ttl: Duration::from_secs(5),
        }
    }
}

/// An agent of another node, as its node last published it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteAgent {
    pub agent: String,
    pub node: String,
    /// The node's SIP listener (`host:port`).
    pub sip_addr: String,
    /// The ACD state name (`available`, `on_contact`, ...; see [`state_name`]).
    pub state: String,
    /// Available with its audio leg up (nailed-up) or reachable (ring per offer).
    pub ready: bool,
    pub queues: Vec<String>,
    pub since_ms: i64,
}

/// The row a node writes for one of its agents.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Published {
    state: String,
    ready: bool,
    queues: String,
    endpoint: &'static str,
    since_ms: i64,
}

/// The stable name of an ACD state in `agent_presence.state`.
pub fn state_name(s: &AgentState) -> &'static str {
    match s {
        AgentState::Offline => "offline",
        AgentState::Available => "available",
        AgentState::Offered(_) => "offered",
        AgentState::OnContact(_) => "on_contact",
        AgentState::AfterContactWork { .. } => "after_contact_work",
        AgentState::NotRoutable(_) => "not_routable",
        AgentState::Missed => "missed",
    }
}

/// Whether a state name means the agent is handling a contact (offered, talking, wrap-up).
pub fn is_busy(state: &str) -> bool {
    matches!(state, "offered" | "on_contact" | "after_contact_work")
}

/// Ready for a call now: Available, with a nailed-up leg that is up, or ringing per offer.
pub fn is_ready(a: &AgentView) -> bool {
    a.state == AgentState::Available && (a.mode == AgentMode::RingPerOffer || a.leg_up)
}

fn publish(rt: &Runtime, a: &AgentView) -> Option<Published> {
    if a.state == AgentState::Offline {
        return None;
    }
    Some(Published {
        state: state_name(&a.state).into(),
        ready: is_ready(a),
        queues: serde_json::to_string(&rt.profile_queues(&a.routing_profile))
            .unwrap_or_else(|_| "[]".into()),
        endpoint: match a.mode {
            AgentMode::NailedUp => "nailed_up",
            AgentMode::RingPerOffer => "ring_per_offer",
        },
        since_ms: a.since_ms,
    })
}

/// Publishes this node's agents for as long as the runtime runs. Returns once the node row is
/// written and the previous run's rows are gone (a stopped node's rows expire with its heartbeat).
pub async fn start(
    db: Db,
    clock: SharedClock,
    rt: Runtime,
    cfg: PresenceConfig,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let now = clock.now_ms();
    let mut tx = db.begin_write().await?;
    sqlx::query("DELETE FROM agent_presence WHERE node = $1")
        .bind(&cfg.node)
        .execute(tx.conn())
        .await?;
    sqlx::query(
        "INSERT INTO cluster_nodes (node, sip_addr, started_at, heartbeat_at) VALUES ($1, $2, $3, $3) \
         ON CONFLICT (node) DO UPDATE SET sip_addr = excluded.sip_addr, started_at = excluded.started_at, \
         heartbeat_at = excluded.heartbeat_at",
    )
    .bind(&cfg.node)
    .bind(&cfg.sip_addr)
    .bind(now)
    .execute(tx.conn())
    .await?;
    // Handoffs this node started and never finished (it stopped in between).
    sqlx::query(
        "UPDATE agent_handoffs SET ended_at = $1, outcome = 'interrupted' WHERE from_node = $2 AND ended_at IS NULL",
    )
    .bind(now)
    .bind(&cfg.node)
    .execute(tx.conn())
    .await?;
    tx.commit().await?;
    Ok(tokio::spawn(run(db, clock, rt, cfg)))
}

async fn run(db: Db, clock: SharedClock, rt: Runtime, cfg: PresenceConfig) {
    let mut events = rt.subscribe();
    let mut written: HashMap<String, Published> = HashMap::new();
    let mut beat = tokio::time::interval(cfg.heartbeat);
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut beats: u64 = 0;
    // Dead nodes (name, last heartbeat) whose records this node has closed already.
    let mut closed: HashSet<(String, i64)> = HashSet::new();
    loop {
        let heartbeat = tokio::select! {
            _ = beat.tick() => true,
            e = events.recv() => match e {
                Ok(_) | Err(RecvError::Lagged(_)) => false,
                Err(RecvError::Closed) => break,
            },
        };
        if let Err(e) = sync(&db, &clock, &rt, &cfg, &mut written).await {
            tracing::warn!(error = %e, "agent presence not written; retrying");
            written.clear();
        }
        if heartbeat {
            beats += 1;
            if let Err(e) = beat_and_clean(&db, &clock, &cfg, beats % 10 == 1, &mut closed).await {
                tracing::warn!(error = %e, "node heartbeat not written");
            }
        }
    }
}

/// Writes the agents whose row changed and deletes those gone offline.
async fn sync(
    db: &Db,
    clock: &SharedClock,
    rt: &Runtime,
    cfg: &PresenceConfig,
    written: &mut HashMap<String, Published>,
) -> anyhow::Result<()> {
    let agents = rt.agent_snapshot(None).await?;
    let now = clock.now_ms();
    let mut current: HashMap<String, Published> = HashMap::new();
    for a in &agents {
        if let Some(p) = publish(rt, a) {
            current.insert(a.id.clone(), p);
        }
    }
    for (agent, p) in &current {
        if written.get(agent) == Some(p) {
            continue;
        }
        sqlx::query(
            "INSERT INTO agent_presence (agent, node, state, ready, queues, endpoint, since_ms, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (agent) DO UPDATE SET node = excluded.node, \
             state = excluded.state, ready = excluded.ready, queues = excluded.queues, \
             endpoint = excluded.endpoint, since_ms = excluded.since_ms, updated_at = excluded.updated_at",
        )
        .bind(agent)
        .bind(&cfg.node)
        .bind(&p.state)
        .bind(p.ready as i16)
        .bind(&p.queues)
        .bind(p.endpoint)
        .bind(p.since_ms)
        .bind(now)
        .execute(db.pool())
        .await?;
        written.insert(agent.clone(), p.clone());
    }
    let gone: Vec<String> = written
        .keys()
        .filter(|a| !current.contains_key(*a))
        .cloned()
        .collect();
    for agent in gone {
        sqlx::query("DELETE FROM agent_presence WHERE agent = $1 AND node = $2")
            .bind(&agent)
            .bind(&cfg.node)
            .execute(db.pool())
            .await?;
        written.remove(&agent);
    }
    Ok(())
}

async fn beat_and_clean(
    db: &Db,
    clock: &SharedClock,
    cfg: &PresenceConfig,
    clean: bool,
    closed: &mut HashSet<(String, i64)>,
) -> anyhow::Result<()> {
    let now = clock.now_ms();
    sqlx::query("UPDATE cluster_nodes SET heartbeat_at = $1, sip_addr = $2 WHERE node = $3")
        .bind(now)
        .bind(&cfg.sip_addr)
        .bind(&cfg.node)
        .execute(db.pool())
        .await?;
    if clean {
        let cut = now - cfg.ttl.as_millis() as i64;
        let r = sqlx::query(
            "DELETE FROM agent_presence WHERE node <> $1 AND node NOT IN \
             (SELECT node FROM cluster_nodes WHERE heartbeat_at >= $2)",
        )
        .bind(&cfg.node)
        .bind(cut)
        .execute(db.pool())
        .await?;
        if r.rows_affected() > 0 {
            tracing::info!(
                agents = r.rows_affected(),
                "removed the agents of nodes whose heartbeat stopped"
            );
        }
        close_dead_nodes_records(db, now, cut, &cfg.node, closed).await?;
    }
    Ok(())
}

/// A node that died never restarts to close its own records (it may be gone for good): every live
/// node closes the call and contact records of nodes whose heartbeat stopped before `cut` as
/// interrupted, as the dead node would have at its next start. Idempotent: closed rows are left
/// alone, so the nodes doing it at once do no harm. Each death (a node and its last heartbeat) is
/// handled once per live node (`closed`); the rows stay in `cluster_nodes` for good.
async fn close_dead_nodes_records(
    db: &Db,
    now: i64,
    cut: i64,
    me: &str,
    closed: &mut HashSet<(String, i64)>,
) -> anyhow::Result<()> {
    let dead: Vec<(String, i64)> = sqlx::query_as(
        "SELECT node, heartbeat_at FROM cluster_nodes WHERE node <> $1 AND heartbeat_at < $2",
    )
    .bind(me)
    .bind(cut)
    .fetch_all(db.pool())
    .await?;
    for death in dead {
        if closed.contains(&death) {
            continue;
        }
        let node = &death.0;
        let calls = telephony::cdr::close_interrupted(db, now, node).await?;
        let contacts = crate::runtime::contact::close_interrupted_of_node(db, now, node).await?;
        if calls + contacts as u64 > 0 {
            tracing::warn!(
                node,
                calls,
                contacts,
                "closed the open call and contact records of a node whose heartbeat stopped"
            );
        }
        closed.insert(death);
    }
    Ok(())
}

/// The agents of the other live nodes (heartbeat within `ttl` of `now`).
pub async fn remote_agents(
    db: &Db,
    now: i64,
    me: &str,
    ttl: Duration,
) -> anyhow::Result<Vec<RemoteAgent>> {
    let rows = sqlx::query(
        "SELECT p.agent, p.node, p.state, p.ready, p.queues, p.since_ms, n.sip_addr \
         FROM agent_presence p JOIN cluster_nodes n ON n.node = p.node \
         WHERE p.node <> $1 AND n.heartbeat_at >= $2 ORDER BY p.since_ms, p.agent",
    )
    .bind(me)
    .bind(now - ttl.as_millis() as i64)
    .fetch_all(db.pool())
    .await?;
    Ok(rows
        .iter()
        .map(|r| RemoteAgent {
            agent: r.get("agent"),
            node: r.get("node"),
            sip_addr: r.get("sip_addr"),
            state: r.get("state"),
            ready: r.get::<i16, _>("ready") != 0,
            queues: serde_json::from_str(&r.get::<String, _>("queues")).unwrap_or_default(),
            since_ms: r.get("since_ms"),
        })
        .collect())
}
