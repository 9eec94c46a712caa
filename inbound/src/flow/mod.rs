//! Flow documents in the Amazon Connect flow language: the serde model ([`document`]), parameter
//! values and JSONPath references ([`value`]), typed actions ([`action`]), the validator that
//! compiles a document for the interpreter ([`validate`]) and the import report ([`mod@import`]).

pub mod action;
pub mod document;
pub mod import;
pub mod validate;
pub mod value;

pub use action::{Kind, Operator, ParamError, Prompt, ResponseType, TRANSFER_TO_LEGACY};
pub use document::{
    ActionDoc, ConditionDoc, ConditionExpr, ErrorDoc, FLOW_LANGUAGE_VERSION, FlowDocument,
    TransitionsDoc,
};
pub use import::{ImportReport, import};
pub use validate::{CompiledAction, CompiledFlow, CondBranch, FlowError, Mode, compile};
pub use value::{DataPath, Dyn, Lookup};

/// Parses and validates JSON text in one go (strict: what saving a flow uses).
pub fn parse_and_validate(json: &str) -> Result<CompiledFlow, Vec<FlowError>> {
    let doc = FlowDocument::from_json(json).map_err(|e| vec![FlowError::Json(e.to_string())])?;
    compile(&doc, Mode::Strict)
}
