//! Flow validation: turns a [`FlowDocument`] into a [`CompiledFlow`] (typed actions, transitions
//! as indices) or a list of precise [`FlowError`]s: bad version or identifiers, unknown or
//! unsupported types (named), parameter problems, dangling and missing transitions, branches an
//! action cannot take, unreachable actions, and loops with no way out.

use std::collections::{HashMap, HashSet};

use super::action::{self, ConditionRule, KNOWN_UNSUPPORTED, Kind, Operator, ParamError};
use super::document::{FLOW_LANGUAGE_VERSION, FlowDocument};

pub const MAX_ACTIONS: usize = 250;
const MAX_IDENTIFIER: usize = 50;
const FORBIDDEN_ID_CHARS: &[char] = &[
    '%', ':', '(', '\\', '/', ')', '=', '$', ',', ';', '[', ']', '{', '}',
];
const RESERVED_IDS: &[&str] = &[
    "__proto__",
    "constructor",
    "toString",
    "valueOf",
    "hasOwnProperty",
    "isPrototypeOf",
    "propertyIsEnumerable",
    "toLocaleString",
    "__defineGetter__",
    "__defineSetter__",
    "__lookupGetter__",
    "__lookupSetter__",
];

/// One problem found in a flow document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlowError {
    #[error("not a flow document: {0}")]
    Json(String),
    #[error("Version {0:?} is not supported (expected {FLOW_LANGUAGE_VERSION})")]
    BadVersion(String),
    #[error("the flow has no actions")]
    Empty,
    #[error("the flow has {0} actions (at most {MAX_ACTIONS})")]
    TooManyActions(usize),
    #[error("StartAction {0:?} is not an action of this flow")]
    MissingStartAction(String),
    #[error("Identifier {0:?} is used by more than one action")]
    DuplicateIdentifier(String),
    #[error("Identifier {id:?}: {reason}")]
    BadIdentifier { id: String, reason: String },
    #[error("action {action:?}: unknown Type {action_type:?}")]
    UnknownActionType { action: String, action_type: String },
    #[error("action {action:?}: Type {action_type:?} is not supported")]
    UnsupportedAction { action: String, action_type: String },
    #[error("action {action:?} ({action_type}): {error}")]
    Parameter {
        action: String,
        action_type: String,
        error: ParamError,
    },
    #[error("action {action:?}: transition to {target:?}, which is not an action of this flow")]
    DanglingTransition { action: String, target: String },
    #[error("action {action:?}: no transition for {branch}")]
    MissingTransition { action: String, branch: String },
    #[error("action {action:?}: {action_type} cannot take the branch {branch}")]
    UnexpectedBranch {
        action: String,
        action_type: String,
        branch: String,
    },
    #[error("action {action:?}: condition {reason}")]
    BadCondition { action: String, reason: String },
    #[error("action {0:?} cannot be reached from the StartAction")]
    Unreachable(String),
    #[error("actions {actions:?} form a loop{} with no way out", if *.waits_for_input { " waiting on caller input" } else { "" })]
    LoopWithoutExit {
        actions: Vec<String>,
        waits_for_input: bool,
    },
}

/// How strictly to treat action types this engine does not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Saving a flow: every unsupported or unknown type is an error.
    Strict,
    /// Importing a foreign flow to try it: unsupported and unknown types become
    /// [`Kind::Unsupported`] stand-ins (reported in [`CompiledFlow::unsupported`]).
    Lenient,
}

/// A condition with its target.
#[derive(Debug, Clone, PartialEq)]
pub struct CondBranch {
    pub operator: Operator,
    pub operand: String,
    pub target: usize,
}

/// An action ready to run: typed parameters, transitions resolved to indices.
#[derive(Debug, Clone, PartialEq)]
pub struct CompiledAction {
    pub id: String,
    pub action_type: String,
    pub kind: Kind,
    pub next: Option<usize>,
    pub conditions: Vec<CondBranch>,
    pub errors: Vec<(String, usize)>,
}

impl CompiledAction {
    pub fn error_target(&self, error_type: &str) -> Option<usize> {
        self.errors
            .iter()
            .find(|(t, _)| t == error_type)
            .map(|&(_, i)| i)
    }
}

/// A validated flow.
#[derive(Debug, Clone, PartialEq)]
pub struct CompiledFlow {
    pub document: FlowDocument,
    pub actions: Vec<CompiledAction>,
    pub start: usize,
    /// `(Identifier, Type)` of every action that will not run (lenient import only).
    pub unsupported: Vec<(String, String)>,
    /// Optional branches left unwired (taking one at run time ends the flow with an error).
    pub warnings: Vec<String>,
}

impl CompiledFlow {
    pub fn index_of(&self, id: &str) -> Option<usize> {
        self.actions.iter().position(|a| a.id == id)
    }
}

/// Validates and compiles a document. All problems are reported, not just the first.
pub fn compile(doc: &FlowDocument, mode: Mode) -> Result<CompiledFlow, Vec<FlowError>> {
    let mut errors = Vec::new();
    if doc.version != FLOW_LANGUAGE_VERSION {
        errors.push(FlowError::BadVersion(doc.version.clone()));
    }
    if doc.actions.is_empty() {
        errors.push(FlowError::Empty);
        return Err(errors);
    }
    if doc.actions.len() > MAX_ACTIONS {
        errors.push(FlowError::TooManyActions(doc.actions.len()));
    }
    let mut index: HashMap<&str, usize> = HashMap::new();
    for (i, a) in doc.actions.iter().enumerate() {
        if let Some(reason) = identifier_problem(&a.identifier) {
            errors.push(FlowError::BadIdentifier {
                id: a.identifier.clone(),
                reason,
            });
        }
        if index.insert(a.identifier.as_str(), i).is_some() {
            errors.push(FlowError::DuplicateIdentifier(a.identifier.clone()));
        }
    }
    let start = index.get(doc.start_action.as_str()).copied();
    if start.is_none() {
        errors.push(FlowError::MissingStartAction(doc.start_action.clone()));
    }

    let mut actions = Vec::with_capacity(doc.actions.len());
    let mut unsupported = Vec::new();
    let mut warnings = Vec::new();
    for a in &doc.actions {
        let id = a.identifier.clone();
        let kind = match action::parse(&a.action_type, &a.parameters) {
            Ok(Some(kind)) => kind,
            Ok(None) => {
                let known = KNOWN_UNSUPPORTED.contains(&a.action_type.as_str());
                if mode == Mode::Strict {
                    errors.push(if known {
                        FlowError::UnsupportedAction {
                            action: id.clone(),
                            action_type: a.action_type.clone(),
                        }
                    } else {
                        FlowError::UnknownActionType {
                            action: id.clone(),
                            action_type: a.action_type.clone(),
                        }
                    });
                }
                unsupported.push((id.clone(), a.action_type.clone()));
                Kind::Unsupported {
                    action_type: a.action_type.clone(),
                }
            }
            Err(error) => {
                errors.push(FlowError::Parameter {
                    action: id.clone(),
                    action_type: a.action_type.clone(),
                    error,
                });
                continue;
            }
        };
        let resolve = |target: &str, errors: &mut Vec<FlowError>| match index.get(target) {
            Some(&i) => Some(i),
            None => {
                errors.push(FlowError::DanglingTransition {
                    action: id.clone(),
                    target: target.to_string(),
                });
                None
            }
        };
        let t = &a.transitions;
        let next = t
            .next_action
            .as_deref()
            .and_then(|n| resolve(n, &mut errors));
        let mut conditions = Vec::new();
        for c in &t.conditions {
            let target = resolve(&c.next_action, &mut errors);
            match (
                Operator::parse(&c.condition.operator),
                c.condition.operands.as_slice(),
            ) {
                (Some(operator), [operand]) => {
                    if let Some(target) = target {
                        conditions.push(CondBranch {
                            operator,
                            operand: operand.clone(),
                            target,
                        });
                    }
                }
                (None, _) => errors.push(FlowError::BadCondition {
                    action: id.clone(),
                    reason: format!("operator {:?} is unknown", c.condition.operator),
                }),
                (Some(_), ops) => errors.push(FlowError::BadCondition {
                    action: id.clone(),
                    reason: format!("needs exactly one operand, has {}", ops.len()),
                }),
            }
        }
        let mut error_branches = Vec::new();
        for e in &t.errors {
            if let Some(target) = resolve(&e.next_action, &mut errors) {
                error_branches.push((e.error_type.clone(), target));
            }
        }
        actions.push(CompiledAction {
            id,
            action_type: a.action_type.clone(),
            kind,
            next,
            conditions,
            errors: error_branches,
        });
    }
    if actions.len() == doc.actions.len() {
        for (a, doc_action) in actions.iter().zip(&doc.actions) {
            check_branches(
                a,
                doc_action.transitions.conditions.len(),
                &mut errors,
                &mut warnings,
            );
        }
        if let Some(start) = start {
            check_graph(&actions, start, mode, &mut errors, &mut warnings);
        }
    }
    match (errors.is_empty(), start) {
        (true, Some(start)) => Ok(CompiledFlow {
            document: doc.clone(),
            actions,
            start,
            unsupported,
            warnings,
        }),
        _ => Err(errors),
    }
}

fn identifier_problem(id: &str) -> Option<String> {
    if id.is_empty() {
        return Some("is empty".into());
    }
    if id.chars().count() > MAX_IDENTIFIER {
        return Some(format!("is longer than {MAX_IDENTIFIER} characters"));
    }
    if let Some(c) = id.chars().find(|c| FORBIDDEN_ID_CHARS.contains(c)) {
        return Some(format!("contains the forbidden character {c:?}"));
    }
    if RESERVED_IDS.contains(&id) {
        return Some("is a reserved name".into());
    }
    None
}

fn check_branches(
    a: &CompiledAction,
    declared_conditions: usize,
    errors: &mut Vec<FlowError>,
    warnings: &mut Vec<String>,
) {
    let unexpected = |branch: String| FlowError::UnexpectedBranch {
        action: a.id.clone(),
        action_type: a.action_type.clone(),
        branch,
    };
    let missing = |branch: &str| FlowError::MissingTransition {
        action: a.id.clone(),
        branch: branch.to_string(),
    };
    let bad = |reason: String| FlowError::BadCondition {
        action: a.id.clone(),
        reason,
    };
    if matches!(a.kind, Kind::Unsupported { .. }) {
        return;
    }
    for (error_type, _) in &a.errors {
        if !a.kind.error_types().contains(&error_type.as_str()) {
            errors.push(unexpected(format!("error {error_type}")));
        }
    }
    for required in a.kind.required_errors() {
        if a.error_target(required).is_none() {
            errors.push(missing(&format!("error {required}")));
        }
    }
    for optional in a.kind.error_types() {
        if !a.kind.required_errors().contains(optional) && a.error_target(optional).is_none() {
            warnings.push(format!(
                "action {:?}: error {optional} is not wired; taking it ends the flow",
                a.id
            ));
        }
    }
    if a.kind.needs_next_action() && a.next.is_none() {
        errors.push(missing("NextAction"));
    }
    if matches!(a.kind, Kind::DisconnectParticipant) && a.next.is_some() {
        errors.push(unexpected("NextAction".into()));
    }
    let operands: Vec<&str> = a.conditions.iter().map(|c| c.operand.as_str()).collect();
    let mut seen = HashSet::new();
    match a.kind.condition_rule() {
        ConditionRule::None => {
            if declared_conditions > 0 {
                errors.push(unexpected("Conditions".into()));
            }
        }
        ConditionRule::Any => {}
        ConditionRule::Digit => {
            for c in &a.conditions {
                let mut chars = c.operand.chars();
                let one_key =
                    matches!((chars.next(), chars.next()), (Some(k), None) if action::is_dtmf(k));
                if c.operator != Operator::Equals || !one_key {
                    errors.push(bad(format!(
                        "{:?} {:?}: a menu matches one key with Equals",
                        c.operator, c.operand
                    )));
                } else if !seen.insert(c.operand.as_str()) {
                    errors.push(bad(format!("key {:?} appears twice", c.operand)));
                }
            }
        }
        ConditionRule::HoursBool | ConditionRule::Loop => {
            let wanted: [&str; 2] = if a.kind.condition_rule() == ConditionRule::Loop {
                ["ContinueLooping", "DoneLooping"]
            } else {
                ["True", "False"]
            };
            for c in &a.conditions {
                if c.operator != Operator::Equals || !wanted.contains(&c.operand.as_str()) {
                    errors.push(bad(format!(
                        "{:?} {:?}: expected Equals {} or {}",
                        c.operator, c.operand, wanted[0], wanted[1]
                    )));
                }
            }
            for w in wanted {
                if !operands.contains(&w) {
                    errors.push(missing(&format!("condition {w}")));
                }
            }
        }
        ConditionRule::Percent => {
            let mut last = 0;
            for c in &a.conditions {
                match c.operand.parse::<u32>() {
                    Ok(p) if c.operator == Operator::NumberLessThan && p > last && p <= 100 => last = p,
                    _ => errors.push(bad(format!(
                        "{:?} {:?}: percentages are NumberLessThan with increasing cumulative values up to 100",
                        c.operator, c.operand
                    ))),
                }
            }
            if last < 100 && a.next.is_none() && a.error_target("NoMatchingCondition").is_none() {
                errors.push(missing("the remaining percentage (NoMatchingCondition)"));
            }
        }
    }
}

fn targets(a: &CompiledAction) -> impl Iterator<Item = usize> + '_ {
    a.next
        .into_iter()
        .chain(a.conditions.iter().map(|c| c.target))
        .chain(a.errors.iter().map(|e| e.1))
}

/// Reachability and exits. Unreachable actions are errors when saving; an imported flow may
/// carry orphan blocks left on the designer canvas, so there they are only warnings.
fn check_graph(
    actions: &[CompiledAction],
    start: usize,
    mode: Mode,
    errors: &mut Vec<FlowError>,
    warnings: &mut Vec<String>,
) {
    let n = actions.len();
    let mut reachable = vec![false; n];
    let mut stack = vec![start];
    while let Some(i) = stack.pop() {
        if std::mem::replace(&mut reachable[i], true) {
            continue;
        }
        stack.extend(targets(&actions[i]).filter(|&t| !reachable[t]));
    }
    for (i, a) in actions.iter().enumerate() {
        if !reachable[i] {
            match mode {
                Mode::Strict => errors.push(FlowError::Unreachable(a.id.clone())),
                Mode::Lenient => warnings.push(FlowError::Unreachable(a.id.clone()).to_string()),
            }
        }
    }
    // Which actions can still reach an exit (an action whose success ends the flow)?
    let mut preds = vec![Vec::new(); n];
    for (i, a) in actions.iter().enumerate() {
        for t in targets(a) {
            preds[t].push(i);
        }
    }
    let mut can_exit = vec![false; n];
    let mut stack: Vec<usize> = (0..n)
        .filter(|&i| actions[i].kind.success_exits())
        .collect();
    while let Some(i) = stack.pop() {
        if std::mem::replace(&mut can_exit[i], true) {
            continue;
        }
        stack.extend(preds[i].iter().copied().filter(|&p| !can_exit[p]));
    }
    // Trapped actions that lie on a cycle: a loop with no way out.
    let trapped: Vec<usize> = (0..n)
        .filter(|&i| reachable[i] && !can_exit[i] && on_cycle(actions, i))
        .collect();
    if !trapped.is_empty() {
        errors.push(FlowError::LoopWithoutExit {
            waits_for_input: trapped.iter().any(|&i| actions[i].kind.waits_for_caller()),
            actions: trapped.iter().map(|&i| actions[i].id.clone()).collect(),
        });
    }
}

fn on_cycle(actions: &[CompiledAction], from: usize) -> bool {
    let mut seen = vec![false; actions.len()];
    let mut stack: Vec<usize> = targets(&actions[from]).collect();
    while let Some(i) = stack.pop() {
        if i == from {
            return true;
        }
        if !std::mem::replace(&mut seen[i], true) {
            stack.extend(targets(&actions[i]));
        }
    }
    false
}
