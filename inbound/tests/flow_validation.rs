//! The validator's precise errors: unknown and unsupported types named, missing parameters,
//! dangling and missing transitions, branches an action cannot take, unreachable actions, and
//! loops with no exit.

use inbound::flow::{FlowDocument, FlowError, Mode, ParamError, compile, parse_and_validate};
use serde_json::{Value, json};

fn doc(start: &str, actions: Value) -> FlowDocument {
    serde_json::from_value(
        json!({"Version": "2019-10-30", "StartAction": start, "Actions": actions}),
    )
    .unwrap()
}

fn errors(d: &FlowDocument) -> Vec<FlowError> {
    compile(d, Mode::Strict).expect_err("flow should be rejected")
}

fn bye() -> Value {
    json!({"Identifier": "bye", "Type": "DisconnectParticipant", "Parameters": {}, "Transitions": {}})
}

#[test]
fn a_minimal_flow_compiles_and_round_trips() {
    let d = doc(
        "hello",
        json!([
            {"Identifier": "hello", "Type": "MessageParticipant", "Parameters": {"Text": "Hi"}, "Transitions": {"NextAction": "bye"}},
            bye()
        ]),
    );
    let c = compile(&d, Mode::Strict).unwrap();
    assert_eq!(c.start, 0);
    assert_eq!(
        c.warnings,
        ["action \"hello\": error NoMatchingError is not wired; taking it ends the flow"]
    );
    let text = d.to_json();
    assert_eq!(FlowDocument::from_json(&text).unwrap(), d);
    assert!(text.contains("\"StartAction\": \"hello\""));
}

#[test]
fn unknown_and_unsupported_types_are_named() {
    let d = doc(
        "a",
        json!([
            {"Identifier": "a", "Type": "ShowView", "Parameters": {}, "Transitions": {"NextAction": "b"}},
            {"Identifier": "b", "Type": "TeleportCaller", "Parameters": {}, "Transitions": {"NextAction": "bye"}},
            bye()
        ]),
    );
    assert_eq!(
        errors(&d),
        vec![
            FlowError::UnsupportedAction {
                action: "a".into(),
                action_type: "ShowView".into()
            },
            FlowError::UnknownActionType {
                action: "b".into(),
                action_type: "TeleportCaller".into()
            },
        ]
    );
    // Lenient import keeps them as stand-ins and lists them.
    let c = compile(&d, Mode::Lenient).unwrap();
    assert_eq!(
        c.unsupported,
        [
            ("a".to_string(), "ShowView".to_string()),
            ("b".to_string(), "TeleportCaller".to_string())
        ]
    );
}

#[test]
fn missing_and_invalid_parameters() {
    let d = doc(
        "a",
        json!([
            {"Identifier": "a", "Type": "MessageParticipant", "Parameters": {}, "Transitions": {"NextAction": "b"}},
            {"Identifier": "b", "Type": "InvokeLambdaFunction", "Parameters": {"LambdaFunctionARN": "f", "InvocationTimeLimitSeconds": "30"}, "Transitions": {"NextAction": "c"}},
            {"Identifier": "c", "Type": "Compare", "Parameters": {"ComparisonValue": "gold"}, "Transitions": {"NextAction": "bye"}},
            {"Identifier": "d", "Type": "UpdateContactAttributes", "Parameters": {"Attributes": {"x": "$.Nowhere.y"}}, "Transitions": {"NextAction": "bye"}},
            bye()
        ]),
    );
    let errs = errors(&d);
    let params: Vec<(&str, &ParamError)> = errs
        .iter()
        .filter_map(|e| match e {
            FlowError::Parameter { action, error, .. } => Some((action.as_str(), error)),
            _ => None,
        })
        .collect();
    assert_eq!(
        params[0],
        ("a", &ParamError::Missing("Text, SSML, PromptId or Media"))
    );
    assert!(matches!(
        params[1],
        (
            "b",
            ParamError::Invalid {
                name: "InvocationTimeLimitSeconds",
                ..
            }
        )
    ));
    assert_eq!(params[2], ("c", &ParamError::MustBePath("ComparisonValue")));
    assert!(
        matches!(params[3], ("d", ParamError::Invalid { name: "Attributes", reason }) if reason.contains("$.Nowhere.y"))
    );
    assert_eq!(
        errs[0].to_string(),
        "action \"a\" (MessageParticipant): missing parameter Text, SSML, PromptId or Media"
    );
}

#[test]
fn dangling_and_missing_transitions() {
    let d = doc(
        "menu",
        json!([
            {"Identifier": "menu", "Type": "GetParticipantInput", "Parameters": {"Text": "Press 1"},
             "Transitions": {"Conditions": [{"NextAction": "gone", "Condition": {"Operator": "Equals", "Operands": ["1"]}}],
                             "Errors": [{"NextAction": "bye", "ErrorType": "NoMatchingCondition"}]}},
            {"Identifier": "say", "Type": "MessageParticipant", "Parameters": {"Text": "x"}, "Transitions": {}},
            bye()
        ]),
    );
    let errs = errors(&d);
    assert!(errs.contains(&FlowError::DanglingTransition {
        action: "menu".into(),
        target: "gone".into()
    }));
    assert!(errs.contains(&FlowError::MissingTransition {
        action: "menu".into(),
        branch: "error InputTimeLimitExceeded".into()
    }));
    assert!(errs.contains(&FlowError::MissingTransition {
        action: "say".into(),
        branch: "NextAction".into()
    }));
    assert!(errs.contains(&FlowError::Unreachable("say".into())));
}

#[test]
fn branches_an_action_cannot_take() {
    let d = doc(
        "hours",
        json!([
            {"Identifier": "hours", "Type": "CheckHoursOfOperation", "Parameters": {},
             "Transitions": {"Conditions": [{"NextAction": "bye", "Condition": {"Operator": "Equals", "Operands": ["True"]}},
                                            {"NextAction": "bye", "Condition": {"Operator": "Equals", "Operands": ["Maybe"]}}],
                             "Errors": [{"NextAction": "bye", "ErrorType": "QueueAtCapacity"}]}},
            {"Identifier": "bye", "Type": "DisconnectParticipant", "Parameters": {}, "Transitions": {"NextAction": "hours"}}
        ]),
    );
    let errs = errors(&d);
    assert!(errs.contains(&FlowError::UnexpectedBranch {
        action: "hours".into(),
        action_type: "CheckHoursOfOperation".into(),
        branch: "error QueueAtCapacity".into()
    }));
    assert!(errs.contains(&FlowError::MissingTransition {
        action: "hours".into(),
        branch: "condition False".into()
    }));
    assert!(
        errs.iter()
            .any(|e| matches!(e, FlowError::BadCondition { action, .. } if action == "hours"))
    );
    assert!(errs.contains(&FlowError::UnexpectedBranch {
        action: "bye".into(),
        action_type: "DisconnectParticipant".into(),
        branch: "NextAction".into()
    }));
}

#[test]
fn an_input_loop_with_no_exit_is_rejected() {
    let d = doc(
        "menu",
        json!([
            {"Identifier": "menu", "Type": "GetParticipantInput", "Parameters": {"Text": "Press 1"},
             "Transitions": {"Conditions": [{"NextAction": "again", "Condition": {"Operator": "Equals", "Operands": ["1"]}}],
                             "Errors": [{"NextAction": "again", "ErrorType": "InputTimeLimitExceeded"},
                                        {"NextAction": "again", "ErrorType": "NoMatchingCondition"}]}},
            {"Identifier": "again", "Type": "MessageParticipant", "Parameters": {"Text": "Once more"}, "Transitions": {"NextAction": "menu"}}
        ]),
    );
    assert_eq!(
        errors(&d),
        vec![FlowError::LoopWithoutExit {
            actions: vec!["menu".into(), "again".into()],
            waits_for_input: true
        }]
    );
    // Giving the loop a way out (a Loop block counting retries) fixes it.
    let d = doc(
        "menu",
        json!([
            {"Identifier": "menu", "Type": "GetParticipantInput", "Parameters": {"Text": "Press 1"},
             "Transitions": {"Conditions": [{"NextAction": "count", "Condition": {"Operator": "Equals", "Operands": ["1"]}}],
                             "Errors": [{"NextAction": "count", "ErrorType": "InputTimeLimitExceeded"},
                                        {"NextAction": "count", "ErrorType": "NoMatchingCondition"}]}},
            {"Identifier": "count", "Type": "Loop", "Parameters": {"LoopCount": "3"},
             "Transitions": {"Conditions": [{"NextAction": "menu", "Condition": {"Operator": "Equals", "Operands": ["ContinueLooping"]}},
                                            {"NextAction": "bye", "Condition": {"Operator": "Equals", "Operands": ["DoneLooping"]}}]}},
            bye()
        ]),
    );
    assert!(compile(&d, Mode::Strict).is_ok());
}

#[test]
fn document_level_problems() {
    let mut d = doc(
        "nowhere",
        json!([
            {"Identifier": "a:b", "Type": "DisconnectParticipant", "Parameters": {}, "Transitions": {}},
            {"Identifier": "toString", "Type": "DisconnectParticipant", "Parameters": {}, "Transitions": {}},
            {"Identifier": "toString", "Type": "DisconnectParticipant", "Parameters": {}, "Transitions": {}}
        ]),
    );
    d.version = "2020-01-01".into();
    let errs = errors(&d);
    assert_eq!(errs[0], FlowError::BadVersion("2020-01-01".into()));
    assert!(errs.contains(&FlowError::BadIdentifier {
        id: "a:b".into(),
        reason: "contains the forbidden character ':'".into()
    }));
    assert!(errs.contains(&FlowError::BadIdentifier {
        id: "toString".into(),
        reason: "is a reserved name".into()
    }));
    assert!(errs.contains(&FlowError::DuplicateIdentifier("toString".into())));
    assert!(errs.contains(&FlowError::MissingStartAction("nowhere".into())));
    assert!(matches!(
        parse_and_validate("{\"Version\": 1}").unwrap_err()[0],
        FlowError::Json(_)
    ));
}

#[test]
fn menu_conditions_must_be_single_keys() {
    let d = doc(
        "menu",
        json!([
            {"Identifier": "menu", "Type": "GetParticipantInput", "Parameters": {"Text": "Press"},
             "Transitions": {"Conditions": [{"NextAction": "bye", "Condition": {"Operator": "Equals", "Operands": ["12"]}},
                                            {"NextAction": "bye", "Condition": {"Operator": "Equals", "Operands": ["3"]}},
                                            {"NextAction": "bye", "Condition": {"Operator": "Equals", "Operands": ["3"]}}],
                             "Errors": [{"NextAction": "bye", "ErrorType": "InputTimeLimitExceeded"},
                                        {"NextAction": "bye", "ErrorType": "NoMatchingCondition"}]}},
            bye()
        ]),
    );
    let errs = errors(&d);
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(
        errs.iter()
            .all(|e| matches!(e, FlowError::BadCondition { .. }))
    );
}

#[test]
fn orphan_blocks_only_warn_on_import() {
    let d = doc(
        "hello",
        json!([
            {"Identifier": "hello", "Type": "MessageParticipant", "Parameters": {"Text": "Hi"}, "Transitions": {"NextAction": "bye"}},
            {"Identifier": "orphan", "Type": "MessageParticipant", "Parameters": {"Text": "left on the canvas"}, "Transitions": {"NextAction": "bye"}},
            bye()
        ]),
    );
    assert_eq!(errors(&d), vec![FlowError::Unreachable("orphan".into())]);
    let report = inbound::flow::import::import_document(&d);
    assert!(report.errors.is_empty() && report.runnable.is_some());
    assert!(
        report
            .warnings
            .contains(&"action \"orphan\" cannot be reached from the StartAction".to_string())
    );
}
