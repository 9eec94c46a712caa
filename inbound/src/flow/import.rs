//! Importing a foreign flow (an Amazon Connect export): what would run, what would not, and why.
//! Saving stays strict; an import report tells the user which action types (by name) block a
//! strict save and lets them try the flow with those actions taking their error branch — or save
//! it that way (`store::save_flow_skipping_unsupported`, when nothing else is wrong).

use super::document::FlowDocument;
use super::validate::{CompiledFlow, FlowError, Mode, compile};

/// The outcome of importing a document.
#[derive(Debug, Clone)]
pub struct ImportReport {
    /// The flow compiled leniently (unsupported actions as stand-ins), when nothing else is wrong.
    pub runnable: Option<CompiledFlow>,
    /// `(Identifier, Type)` of every action this engine does not run.
    pub unsupported: Vec<(String, String)>,
    /// Every other problem (parameters, transitions, graph).
    pub errors: Vec<FlowError>,
    pub warnings: Vec<String>,
}

impl ImportReport {
    /// True when the flow can be saved as is.
    pub fn is_clean(&self) -> bool {
        self.unsupported.is_empty() && self.errors.is_empty()
    }

    /// A short human-readable summary.
    pub fn summary(&self) -> String {
        let mut lines = Vec::new();
        for (id, t) in &self.unsupported {
            lines.push(format!("unsupported action {t} ({id})"));
        }
        lines.extend(self.errors.iter().map(ToString::to_string));
        if lines.is_empty() {
            "ok".into()
        } else {
            lines.join("\n")
        }
    }
}

/// Imports JSON text.
pub fn import(json: &str) -> ImportReport {
    let doc = match FlowDocument::from_json(json) {
        Ok(doc) => doc,
        Err(e) => {
            return ImportReport {
                runnable: None,
                unsupported: vec![],
                errors: vec![FlowError::Json(e.to_string())],
                warnings: vec![],
            };
        }
    };
    import_document(&doc)
}

pub fn import_document(doc: &FlowDocument) -> ImportReport {
    match compile(doc, Mode::Lenient) {
        Ok(flow) => ImportReport {
            unsupported: flow.unsupported.clone(),
            warnings: flow.warnings.clone(),
            errors: vec![],
            runnable: Some(flow),
        },
        Err(errors) => {
            // Name the unsupported types too, from a strict pass.
            let strict = compile(doc, Mode::Strict).err().unwrap_or_default();
            let unsupported = strict
                .iter()
                .filter_map(|e| match e {
                    FlowError::UnsupportedAction {
                        action,
                        action_type,
                    }
                    | FlowError::UnknownActionType {
                        action,
                        action_type,
                    } => Some((action.clone(), action_type.clone())),
                    _ => None,
                })
                .collect();
            ImportReport {
                runnable: None,
                unsupported,
                errors,
                warnings: vec![],
            }
        }
    }
}
