//! The port through which the dialer sees and reaches agents. The inbound runtime provides the
//! real one (nailed-up agent legs; the integrator adapts it in `src/`); tests implement it with
//! sipp agent legs. The dialer only asks two things: who is in a queue and in what state, and
//! "connect this answered call to an agent of this queue now".

use std::collections::BTreeMap;

use futures_util::future::BoxFuture;
use serde::Serialize;
use telephony::control::CallControl;

/// An agent's state as the dialer needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentState {
    /// Logged in, on a nailed-up leg, free for the next call.
    Ready,
    /// On a call or in wrap-up.
    Busy,
    /// Logged in but paused.
    Away,
}

/// One agent of a queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AgentView {
    pub id: String,
    pub state: AgentState,
}

/// No agent took the call (none free, or the connect failed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no agent: {0}")]
pub struct NoAgent(pub String);

/// Agents as the dialer sees them.
pub trait AgentPort: Send + Sync {
    /// The agents of `queue` now.
    fn snapshot(&self, queue: &str) -> Vec<AgentView>;
    /// Connects an answered customer call to an agent of `queue` (bridging the media to the
    /// agent's nailed-up leg) and returns the agent's id. `attrs` carry the lead card, the contact
    /// id (`contact_id`) and the pacer's preferred agent (`agent_hint`), which the port may
    /// ignore. Must answer quickly: the 2-second rule runs while it works.
    fn connect(
        &self,
        queue: &str,
        call: CallControl,
        attrs: BTreeMap<String, String>,
    ) -> BoxFuture<'static, Result<String, NoAgent>>;
}
