//! Wiring: the dialer reaches agents through the inbound runtime's ACD, and — nodes sharing
//! PostgreSQL — through the other nodes' agents. The dialer's [`AgentPort`] asks for a queue's
//! agents synchronously on every pacing tick, so this adapter keeps a per-queue snapshot fresh
//! (on every agent event, and at least every 250 ms): this node's agents from the runtime plus
//! the other live nodes' agents from `agent_presence` (`inbound::presence`). `connect` offers the
//! call to this node's agents first; when none is ready it hands the call to a ready agent on
//! another node (`Runtime::hand_off`: an INVITE to that node, bridged here), trying at most
//! [`HANDOFF_TRIES`] nodes within [`HANDOFF_RING`] each.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dialer::agents::{AgentPort, AgentState, AgentView, NoAgent};
use foundation::{Db, SharedClock};
use futures_util::future::BoxFuture;
use inbound::acd::AgentState as AcdState;
use inbound::presence::{self, RemoteAgent};
use inbound::runtime::handoff::HandoffTarget;
use inbound::runtime::{AgentMode, Runtime};
use telephony::control::CallControl;

const REFRESH: Duration = Duration::from_millis(250);
/// Other nodes tried for one call.
const HANDOFF_TRIES: usize = 2;
/// How long one handoff may take before the next node is tried (the 2-second rule runs).
const HANDOFF_RING: Duration = Duration::from_millis(800);

/// The other nodes on the same database (PostgreSQL).
#[derive(Clone)]
pub struct Cluster {
    pub db: Db,
    pub clock: SharedClock,
    /// This node's name (its own presence rows are not "remote").
    pub node: String,
    /// Presence rows of a node silent for longer are ignored.
    pub ttl: Duration,
    /// Handoff INVITEs go through this SIP proxy (Kamailio) instead of straight to the node.
    pub proxy: Option<SocketAddr>,
}

#[derive(Default)]
struct Cache {
    /// Queues the dialer asked about (refreshed from then on).
    queues: BTreeSet<String>,
    agents: HashMap<String, Vec<AgentView>>,
}

pub struct RuntimeAgents {
    rt: Runtime,
    cluster: Option<Cluster>,
    cache: Arc<Mutex<Cache>>,
}

/// The dialer's view of one of the runtime's agents: ready only when Available with its audio
/// leg up (nailed-up) or reachable (ring per offer).
fn view(a: &inbound::runtime::AgentView) -> Option<AgentView> {
    let state = match &a.state {
        AcdState::Offline => return None,
        AcdState::Available if a.mode == AgentMode::RingPerOffer || a.leg_up => AgentState::Ready,
        AcdState::Available => AgentState::Away,
        AcdState::Offered(_) | AcdState::OnContact(_) | AcdState::AfterContactWork { .. } => {
            AgentState::Busy
        }
        AcdState::NotRoutable(_) | AcdState::Missed => AgentState::Away,
    };
    Some(AgentView {
        id: a.id.clone(),
        state,
    })
}

/// The dialer's view of another node's agent.
fn remote_view(r: &RemoteAgent) -> AgentView {
    let state = if r.ready {
        AgentState::Ready
    } else if presence::is_busy(&r.state) {
        AgentState::Busy
    } else {
        AgentState::Away
    };
    AgentView {
        id: r.agent.clone(),
        state,
    }
}

/// This node's agents of a queue plus the other nodes' (an agent listed here wins: its row
/// elsewhere is stale).
fn merge(local: Vec<AgentView>, remote: &[RemoteAgent], queue: &str) -> Vec<AgentView> {
    let mut out = local;
    for r in remote
        .iter()
        .filter(|r| r.queues.iter().any(|q| q == queue))
    {
        if !out.iter().any(|a| a.id == r.agent) {
            out.push(remote_view(r));
        }
    }
    out
}

/// The other nodes' ready agents of `queue` to try, longest ready first, the pacer's
/// preferred agent first; one per node.
fn handoff_candidates(remote: &[RemoteAgent], queue: &str, hint: Option<&str>) -> Vec<RemoteAgent> {
    let mut ready: Vec<&RemoteAgent> = remote
        .iter()
        .filter(|r| r.ready && r.queues.iter().any(|q| q == queue))
        .collect();
    ready.sort_by_key(|r| (Some(r.agent.as_str()) != hint, r.since_ms));
    let mut nodes = BTreeSet::new();
    ready
        .into_iter()
        .filter(|r| nodes.insert(r.node.clone()))
        .take(HANDOFF_TRIES)
        .cloned()
        .collect()
}

/// On PostgreSQL (several nodes may share it): publishes this node's agents (`inbound::presence`)
/// and returns what the port needs to see and reach the other nodes' agents. `None` on SQLite
/// (one node).
pub async fn start_cluster(
    cfg: &crate::config::Config,
    db: &Db,
    clock: &SharedClock,
    rt: &Runtime,
    sip_udp: SocketAddr,
) -> anyhow::Result<Option<Cluster>> {
    if db.backend() != foundation::Backend::Postgres {
        return Ok(None);
    }
    // Where the other nodes reach this one: the advertised address (NAT, or a wildcard bind),
    // else the bound one.
    let sip_addr = match cfg.sip.advertised_address.parse::<std::net::IpAddr>() {
        Ok(ip) => SocketAddr::new(ip, sip_udp.port()).to_string(),
        Err(_) => sip_udp.to_string(),
    };
    let pc = presence::PresenceConfig::new(&cfg.node(), &sip_addr);
    let ttl = pc.ttl;
    presence::start(db.clone(), clock.clone(), rt.clone(), pc).await?;
    tracing::info!(sip_addr, "publishing this node's agents to the other nodes");
    Ok(Some(Cluster {
        db: db.clone(),
        clock: clock.clone(),
        node: cfg.node(),
        ttl,
        proxy: cfg.sip.handoff_proxy.parse().ok(),
    }))
}

impl RuntimeAgents {
    pub fn start(rt: Runtime, cluster: Option<Cluster>) -> Arc<Self> {
        let me = Arc::new(RuntimeAgents {
            rt: rt.clone(),
            cluster: cluster.clone(),
            cache: Arc::default(),
        });
        let cache = me.cache.clone();
        tokio::spawn(async move {
            let mut events = rt.subscribe();
            loop {
                let queues: Vec<String> = cache
                    .lock()
                    .expect("agent cache")
                    .queues
                    .iter()
                    .cloned()
                    .collect();
                let remote = match (&cluster, queues.is_empty()) {
                    (Some(c), false) => {
                        presence::remote_agents(&c.db, c.clock.now_ms(), &c.node, c.ttl)
                            .await
                            .unwrap_or_else(|e| {
                                tracing::warn!(error = %e, "other nodes' agents unreadable");
                                Vec::new()
                            })
                    }
                    _ => Vec::new(),
                };
                for q in queues {
                    if let Ok(all) = rt.agent_snapshot(Some(&q)).await {
                        let local = all.iter().filter_map(view).collect();
                        let views = merge(local, &remote, &q);
                        cache.lock().expect("agent cache").agents.insert(q, views);
                    }
                }
                match tokio::time::timeout(REFRESH, events.recv()).await {
                    Err(_)
                    | Ok(Ok(_))
                    | Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {}
                    Ok(Err(tokio::sync::broadcast::error::RecvError::Closed)) => return,
                }
            }
        });
        me
    }
}

impl AgentPort for RuntimeAgents {
    fn snapshot(&self, queue: &str) -> Vec<AgentView> {
        let mut c = self.cache.lock().expect("agent cache");
        if c.queues.insert(queue.to_owned()) {
            // First question about this queue: answered empty now, filled within 250 ms.
            return Vec::new();
        }
        c.agents.get(queue).cloned().unwrap_or_default()
    }

    fn connect(
        &self,
        queue: &str,
        call: CallControl,
        attrs: BTreeMap<String, String>,
    ) -> BoxFuture<'static, Result<String, NoAgent>> {
        let (rt, queue, cluster) = (self.rt.clone(), queue.to_owned(), self.cluster.clone());
        Box::pin(async move {
            if let Ok(agent) = rt.connect_outbound(&queue, &call, attrs.clone()).await {
                return Ok(agent);
            }
            let Some(c) = cluster else {
                return Err(NoAgent(format!("no ready agent in queue {queue}")));
            };
            let remote = presence::remote_agents(&c.db, c.clock.now_ms(), &c.node, c.ttl)
                .await
                .map_err(|e| NoAgent(format!("other nodes' agents unreadable: {e}")))?;
            let hint = attrs.get("agent_hint").map(String::as_str);
            let mut why = Vec::new();
            for r in handoff_candidates(&remote, &queue, hint) {
                let target = HandoffTarget {
                    node: r.node.clone(),
                    sip_addr: r.sip_addr.clone(),
                    agent: r.agent.clone(),
                };
                match rt
                    .hand_off(&target, &queue, &call, &attrs, c.proxy, HANDOFF_RING)
                    .await
                {
                    Ok(h) => return Ok(h.agent),
                    Err(e) => {
                        tracing::info!(node = %r.node, agent = %r.agent, error = %e, "handoff to another node failed");
                        why.push(format!("{}: {e}", r.node));
                    }
                }
            }
            Err(NoAgent(if why.is_empty() {
                format!("no ready agent in queue {queue} on any node")
            } else {
                format!("no ready agent in queue {queue} here; {}", why.join("; "))
            }))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote(agent: &str, node: &str, ready: bool, state: &str, since_ms: i64) -> RemoteAgent {
        RemoteAgent {
            agent: agent.into(),
            node: node.into(),
            sip_addr: "127.0.0.1:5060".into(),
            state: state.into(),
            ready,
            queues: vec!["sales".into()],
            since_ms,
        }
    }

    #[test]
    fn remote_agents_count_in_the_queue_and_local_rows_win() {
        let local = vec![AgentView {
            id: "a1".into(),
            state: AgentState::Busy,
        }];
        let rows = [
            remote("a1", "b", true, "available", 1),
            remote("a2", "b", true, "available", 2),
            remote("a3", "b", false, "on_contact", 3),
            remote("a4", "b", false, "not_routable", 4),
        ];
        let got = merge(local, &rows, "sales");
        let states: Vec<_> = got.iter().map(|a| (a.id.as_str(), a.state)).collect();
        assert_eq!(
            states,
            vec![
                ("a1", AgentState::Busy),
                ("a2", AgentState::Ready),
                ("a3", AgentState::Busy),
                ("a4", AgentState::Away)
            ]
        );
        assert!(merge(Vec::new(), &rows, "support").is_empty());
    }

    #[test]
    fn handoff_tries_the_hint_then_the_longest_ready_one_per_node() {
        let rows = [
            remote("a1", "b", true, "available", 5),
            remote("a2", "b", true, "available", 1),
            remote("a3", "c", true, "available", 9),
            remote("a4", "c", false, "on_contact", 0),
        ];
        let ids = |v: Vec<RemoteAgent>| v.into_iter().map(|r| r.agent).collect::<Vec<_>>();
        assert_eq!(ids(handoff_candidates(&rows, "sales", None)), ["a2", "a3"]);
        assert_eq!(
            ids(handoff_candidates(&rows, "sales", Some("a3"))),
            ["a3", "a2"]
        );
        assert!(handoff_candidates(&rows, "support", None).is_empty());
    }
}
