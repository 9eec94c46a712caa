//! The flow document as stored, imported and exported: the Amazon Connect flow language JSON
//! (`Version`, `StartAction`, `Metadata`, `Actions[]` with `Identifier`, `Type`, `Parameters`,
//! `Transitions`). Parameters stay raw JSON here so a document round-trips unchanged; the
//! validator ([`super::validate`]) turns them into typed actions.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The only flow-language version Amazon Connect accepts, and so the only one we accept.
pub const FLOW_LANGUAGE_VERSION: &str = "2019-10-30";

/// A whole flow document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct FlowDocument {
    pub version: String,
    pub start_action: String,
    /// Designer layout and other data the engine does not interpret; kept for export.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    pub actions: Vec<ActionDoc>,
}

/// One action (a "block" in the designer).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ActionDoc {
    pub identifier: String,
    #[serde(rename = "Type")]
    pub action_type: String,
    #[serde(default)]
    pub parameters: Map<String, Value>,
    #[serde(default)]
    pub transitions: TransitionsDoc,
}

/// Where an action goes next.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TransitionsDoc {
    /// Exports sometimes write `"NextAction": ""` for "none"; that reads as absent.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "empty_as_none"
    )]
    pub next_action: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<ConditionDoc>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<ErrorDoc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ConditionDoc {
    pub next_action: String,
    pub condition: ConditionExpr,
}

/// `{"Operator": "Equals", "Operands": ["1"]}`. Exports write operands as strings; numbers and
/// booleans are accepted and kept as their text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ConditionExpr {
    pub operator: String,
    #[serde(deserialize_with = "operands_as_text")]
    pub operands: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ErrorDoc {
    pub next_action: String,
    pub error_type: String,
}

fn empty_as_none<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.filter(|s| !s.is_empty()))
}

fn operands_as_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let values = Vec::<Value>::deserialize(d)?;
    values
        .into_iter()
        .map(|v| match v {
            Value::String(s) => Ok(s),
            Value::Number(n) => Ok(n.to_string()),
            Value::Bool(b) => Ok(if b { "True".into() } else { "False".into() }),
            other => Err(serde::de::Error::custom(format!(
                "operand must be text, got {other}"
            ))),
        })
        .collect()
}

impl FlowDocument {
    /// Parses a document from JSON text; the error names the failing path.
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// Pretty JSON for export.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a flow document always serializes")
    }

    pub fn action(&self, id: &str) -> Option<&ActionDoc> {
        self.actions.iter().find(|a| a.identifier == id)
    }
}

impl TransitionsDoc {
    /// Every target this action can go to, in declaration order.
    pub fn targets(&self) -> impl Iterator<Item = &str> {
        self.next_action
            .iter()
            .map(String::as_str)
            .chain(self.conditions.iter().map(|c| c.next_action.as_str()))
            .chain(self.errors.iter().map(|e| e.next_action.as_str()))
    }

    pub fn error(&self, error_type: &str) -> Option<&str> {
        self.errors
            .iter()
            .find(|e| e.error_type == error_type)
            .map(|e| e.next_action.as_str())
    }
}
