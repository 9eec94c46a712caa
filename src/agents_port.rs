//! Wiring: the dialer reaches agents through the inbound runtime's ACD. The dialer's
//! [`AgentPort`] asks for a queue's agents synchronously on every pacing tick, so this adapter
//! keeps a per-queue snapshot fresh from the runtime (on every agent event, and at least every
//! 250 ms) and answers from it; `connect` goes straight to the runtime.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dialer::agents::{AgentPort, AgentState, AgentView, NoAgent};
use futures_util::future::BoxFuture;
use inbound::acd::AgentState as AcdState;
use inbound::runtime::{AgentMode, Runtime};
use telephony::control::CallControl;

const REFRESH: Duration = Duration::from_millis(250);

#[derive(Default)]
struct Cache {
    /// Queues the dialer asked about (refreshed from then on).
    queues: BTreeSet<String>,
    agents: HashMap<String, Vec<AgentView>>,
}

pub struct RuntimeAgents {
    rt: Runtime,
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

impl RuntimeAgents {
    pub fn start(rt: Runtime) -> Arc<Self> {
        let me = Arc::new(RuntimeAgents {
            rt: rt.clone(),
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
                for q in queues {
                    if let Ok(all) = rt.agent_snapshot(Some(&q)).await {
                        let views = all.iter().filter_map(view).collect();
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
        let (rt, queue) = (self.rt.clone(), queue.to_owned());
        Box::pin(async move {
            rt.connect_outbound(&queue, &call, attrs)
                .await
                .map_err(|_| NoAgent(format!("no ready agent in queue {queue}")))
        })
    }
}
