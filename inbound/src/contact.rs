//! The contact record a flow builds while it runs: endpoints, attributes, the `$.External`
//! result of the last webhook, stored input, routing choices, recording, and the path taken
//! through the flow with timestamps. Serializable as JSON for storage and the web layer.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::flow::{DataPath, Lookup};

/// Total size of a contact's attributes (keys plus values, UTF-8 bytes), as in Amazon Connect.
pub const MAX_ATTRIBUTE_BYTES: usize = 32_768;

/// What the driver knows when a contact arrives.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactInfo {
    pub contact_id: String,
    /// ANI, `$.CustomerEndpoint.Address`.
    pub customer_address: String,
    /// DNIS, `$.SystemEndpoint.Address`.
    pub system_address: String,
    /// `VOICE` for calls.
    pub channel: String,
    /// Attributes the contact arrives with (e.g. from the bridge or a transfer).
    pub attributes: BTreeMap<String, String>,
}

/// One action executed, with when it started and how it ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathStep {
    pub at_ms: i64,
    pub action: String,
    pub action_type: String,
    /// `Success`, `Condition:<operand>`, `Error:<type>`, or empty while the action runs.
    pub result: String,
}

/// How the flow part of a contact ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum FlowOutcome {
    Disconnected,
    Queued {
        queue: String,
    },
    TransferredToNumber {
        number: String,
    },
    TransferredToLegacy {
        pool: String,
    },
    CallerHungUp,
    Error {
        action: String,
        reason: String,
    },
    /// The call never reached a flow (unknown number, no flow, bad flow): refused with `code`.
    Rejected {
        code: u16,
        reason: String,
    },
    /// The migration router sent the call straight to the legacy platform.
    RoutedToLegacy {
        target: String,
    },
    /// The process stopped while the contact was live; closed at the next start.
    Interrupted,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recording {
    pub agent: bool,
    pub customer: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContactRecord {
    pub contact: ContactInfo,
    pub started_at_ms: i64,
    pub ended_at_ms: Option<i64>,
    pub attributes: BTreeMap<String, String>,
    pub external: Map<String, Value>,
    pub stored_input: Option<String>,
    pub target_queue: Option<String>,
    pub queue_priority: Option<i64>,
    pub queue_time_adjustment_s: Option<i64>,
    /// Skills routing set by `UpdateRoutingCriteria`, handed to the ACD with the contact.
    #[serde(default)]
    pub routing_criteria: Vec<crate::acd::CriteriaStep>,
    pub callback_number: Option<String>,
    pub recording: Recording,
    pub voice: Option<String>,
    pub flow_logging: bool,
    pub path: Vec<PathStep>,
    pub outcome: Option<FlowOutcome>,
    /// Stages after the flow, noted by the driver from ACD decisions and call events
    /// (`queued`, `offered`, `connected`, `missed`, `acw`, `ended`...), with their times.
    #[serde(default)]
    pub stages: Vec<Stage>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stage {
    pub at_ms: i64,
    pub stage: String,
    /// Queue or agent, when the stage has one.
    #[serde(default)]
    pub detail: String,
}

impl ContactRecord {
    pub fn new(contact: ContactInfo, now_ms: i64) -> Self {
        Self {
            attributes: contact.attributes.clone(),
            contact,
            started_at_ms: now_ms,
            ..Self::default()
        }
    }

    /// Bytes the attributes take, as counted against [`MAX_ATTRIBUTE_BYTES`].
    pub fn attribute_bytes(attrs: &BTreeMap<String, String>) -> usize {
        attrs.iter().map(|(k, v)| k.len() + v.len()).sum()
    }

    /// Notes a stage from an ACD decision for this contact (others are ignored): queued,
    /// overflow, offered, missed, connected, timeout, at_capacity.
    pub fn note_decision(&mut self, decision: &crate::acd::Decision, at_ms: i64) {
        use crate::acd::Decision as D;
        let (stage, detail, contact) = match decision {
            D::Queued { contact, queue } => ("queued", queue, contact),
            D::Overflow { contact, to, .. } => ("overflow", to, contact),
            D::Offer { contact, agent, .. } => ("offered", agent, contact),
            D::Missed { contact, agent } => ("missed", agent, contact),
            D::Connected { contact, agent } => ("connected", agent, contact),
            D::Timeout { contact, queue } => ("timeout", queue, contact),
            D::AtCapacity { contact, queue } => ("at_capacity", queue, contact),
            _ => return,
        };
        if *contact == self.contact.contact_id {
            self.note(at_ms, stage, detail);
        }
    }

    /// Notes any other stage (the driver's call events: `acw`, `ended`, `recording`...).
    pub fn note(&mut self, at_ms: i64, stage: &str, detail: &str) {
        self.stages.push(Stage {
            at_ms,
            stage: stage.to_string(),
            detail: detail.to_string(),
        });
    }

    /// The action identifiers in the order they ran.
    pub fn path_ids(&self) -> Vec<&str> {
        self.path.iter().map(|s| s.action.as_str()).collect()
    }

    /// The event a webhook receives (the shape of an Amazon Connect Lambda invocation).
    pub fn webhook_event(&self, parameters: Map<String, Value>) -> Value {
        serde_json::json!({
            "Name": "ContactFlowEvent",
            "Details": {
                "ContactData": {
                    "Attributes": self.attributes,
                    "Channel": self.contact.channel,
                    "ContactId": self.contact.contact_id,
                    "InitialContactId": self.contact.contact_id,
                    "CustomerEndpoint": { "Address": self.contact.customer_address, "Type": "TELEPHONE_NUMBER" },
                    "SystemEndpoint": { "Address": self.contact.system_address, "Type": "TELEPHONE_NUMBER" },
                    "Queue": self.target_queue.as_ref().map(|q| serde_json::json!({ "Name": q })),
                    "StoredCustomerInput": self.stored_input,
                },
                "Parameters": parameters,
            }
        })
    }
}

impl Lookup for ContactRecord {
    fn lookup(&self, path: &DataPath) -> Option<String> {
        match path {
            DataPath::Attribute(k) => self.attributes.get(k).cloned(),
            DataPath::External(keys) => {
                let mut v = self.external.get(&keys[0])?;
                for k in &keys[1..] {
                    v = v.get(k)?;
                }
                Some(match v {
                    Value::String(s) => s.clone(),
                    Value::Null => return None,
                    other => other.to_string(),
                })
            }
            DataPath::CustomerAddress => Some(self.contact.customer_address.clone()),
            DataPath::SystemAddress => Some(self.contact.system_address.clone()),
            DataPath::StoredCustomerInput => self.stored_input.clone(),
            DataPath::ContactId => Some(self.contact.contact_id.clone()),
            DataPath::Channel => Some(self.contact.channel.clone()),
            DataPath::QueueName => self.target_queue.clone(),
        }
    }
}
