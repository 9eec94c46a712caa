//! The port through which the dialer runs a flow (an IVR: "press 1 to confirm, 2 for an agent")
//! on an answered outbound call: an agentless campaign's `agentless_flow`, or a single call's
//! `flow`. The inbound runtime provides the real one (the integrator adapts it in `src/`), so the
//! dialer does not depend on `inbound`.
//!
//! The dialer keeps the call: it hands the flow the call's control and a channel of the call's
//! events, which it forwards — except the campaign's opt-out key, which the dialer handles itself
//! before the flow sees any input (the number goes on the internal DNC list at once and the call
//! ends), so every flow run on an outbound call offers opt-out whatever the flow says. The flow's
//! result (its contact attributes, e.g. `confirmed=yes`, its `disposition` attribute, the agent
//! that took a "2 for an agent" transfer) goes into the attempt's final record.

use std::collections::BTreeMap;

use futures_util::future::BoxFuture;
use telephony::control::{CallControl, CallInfo, Event};
use tokio::sync::mpsc;

/// An answered call handed to a flow.
pub struct FlowCall {
    pub info: CallInfo,
    pub control: CallControl,
    /// The call's events as the dialer forwards them (without the opt-out key); ends with the
    /// call's `Hangup`.
    pub events: mpsc::UnboundedReceiver<Event>,
}

/// What to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowRun {
    /// The flow's id (its name in the flows store).
    pub flow: String,
    /// The attempt's contact id (`contact_…`): the flow's contact record uses it too.
    pub contact_id: String,
    /// The callee (`$.CustomerEndpoint.Address`).
    pub customer: String,
    /// The caller id shown (`$.SystemEndpoint.Address`).
    pub system: String,
    /// Contact attributes to start with: the lead's (first and last name, lead id, custom
    /// columns) and the request's.
    pub attributes: BTreeMap<String, String>,
}

/// How the flow ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlowResult {
    /// The flow's outcome (`disconnected`, `queued`, `caller_hung_up`, `error`...).
    pub outcome: String,
    /// The contact's attributes at the end (what the flow set, e.g. `confirmed=yes`).
    pub attributes: BTreeMap<String, String>,
    /// Keys the callee pressed in the flow, in order.
    pub digits: String,
    /// The agent who took the call (the flow transferred it to a queue).
    pub agent: Option<String>,
    /// Why the flow could not run (unknown flow, flow that does not compile).
    pub error: Option<String>,
}

/// Flows as the dialer sees them.
pub trait FlowPort: Send + Sync {
    /// Whether a flow with this id exists and compiles (`Err` says why not).
    fn check(&self, flow: &str) -> BoxFuture<'static, Result<(), String>>;
    /// Runs the flow on an answered call until the call ends (the result comes after the
    /// call's `Hangup` was forwarded, or when the flow could not start).
    fn run_flow(&self, call: FlowCall, run: FlowRun) -> BoxFuture<'static, FlowResult>;
}
