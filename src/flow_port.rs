//! Wiring: the dialer runs flows on answered outbound calls (agentless campaigns'
//! `agentless_flow`, single calls to a `flow`) through its [`FlowPort`], implemented here over the
//! inbound runtime's `run_flow_on_call`. The flow's contact record comes back as the dialer's
//! [`FlowResult`]: the attributes the flow set, the keys pressed, the agent of a transfer to a
//! queue.

use std::sync::Arc;

use dialer::flows::{FlowCall, FlowPort, FlowResult, FlowRun};
use futures_util::future::BoxFuture;
use inbound::contact::{ContactInfo, ContactRecord};
use inbound::runtime::Runtime;

pub struct RuntimeFlows {
    rt: Runtime,
}

impl RuntimeFlows {
    pub fn new(rt: Runtime) -> Arc<Self> {
        Arc::new(RuntimeFlows { rt })
    }
}

/// The dialer's view of a finished outbound contact.
fn result(rec: &ContactRecord) -> FlowResult {
    let outcome = rec
        .outcome
        .as_ref()
        .and_then(|o| serde_json::to_value(o).ok())
        .and_then(|v| v.get("outcome").and_then(|o| o.as_str()).map(str::to_owned))
        .unwrap_or_default();
    FlowResult {
        outcome,
        attributes: rec.attributes.clone(),
        digits: rec
            .stages
            .iter()
            .filter(|s| s.stage == "dtmf")
            .map(|s| s.detail.as_str())
            .collect(),
        agent: rec
            .stages
            .iter()
            .rev()
            .find(|s| s.stage == "connected")
            .map(|s| s.detail.clone()),
        error: None,
    }
}

impl FlowPort for RuntimeFlows {
    fn check(&self, flow: &str) -> BoxFuture<'static, Result<(), String>> {
        let (rt, flow) = (self.rt.clone(), flow.to_owned());
        Box::pin(async move { rt.check_flow(&flow).await })
    }

    fn run_flow(&self, call: FlowCall, run: FlowRun) -> BoxFuture<'static, FlowResult> {
        let rt = self.rt.clone();
        Box::pin(async move {
            let contact = ContactInfo {
                contact_id: run.contact_id,
                customer_address: run.customer,
                system_address: run.system,
                channel: "VOICE".into(),
                attributes: run.attributes,
            };
            match rt
                .run_flow_on_call(call.control.clone(), call.events, &run.flow, contact)
                .await
            {
                Ok(rec) => result(&rec),
                Err(e) => {
                    let _ = call.control.hangup().await;
                    FlowResult {
                        outcome: "error".into(),
                        error: Some(e),
                        ..FlowResult::default()
                    }
                }
            }
        })
    }
}
