//! Interpreter behaviour of individual actions: stored multi-digit input, callbacks, transfers
//! to a number and to the legacy platform, DistributeByPercentage, input retries, asynchronous
//! webhooks and the attribute size limit.

use std::collections::BTreeMap;
use std::sync::Arc;

use inbound::contact::{ContactInfo, FlowOutcome};
use inbound::flow::{FlowDocument, Mode, compile};
use inbound::interpreter::{Effect, Input, Interpreter, PromptSpec, TransferResult, percent_roll};
use serde_json::{Value, json};

fn interp(start: &str, actions: Value, seed: u64) -> Interpreter {
    let d: FlowDocument = serde_json::from_value(
        json!({"Version": "2019-10-30", "StartAction": start, "Actions": actions}),
    )
    .unwrap();
    Interpreter::new(Arc::new(compile(&d, Mode::Strict).unwrap()), seed)
}

fn started(i: &mut Interpreter, id: &str) -> Vec<Effect> {
    i.step(
        Input::Started(ContactInfo {
            contact_id: id.into(),
            customer_address: "+442071234567".into(),
            system_address: "+18005550199".into(),
            channel: "VOICE".into(),
            ..ContactInfo::default()
        }),
        0,
    )
}

fn bye() -> Value {
    json!({"Identifier": "bye", "Type": "DisconnectParticipant", "Parameters": {}, "Transitions": {}})
}

fn text(t: &str) -> Effect {
    Effect::PlayPrompt {
        prompt: PromptSpec::Text(t.into()),
        voice: None,
    }
}

fn callback_flow() -> Value {
    json!([
        {"Identifier": "ask", "Type": "GetParticipantInput",
         "Parameters": {"Text": "Enter your number then hash", "StoreInput": "True", "InputTimeLimitSeconds": "10",
                        "InputValidation": {"CustomValidation": {"MaximumLength": "15"}}},
         "Transitions": {"NextAction": "cbnum", "Errors": [{"NextAction": "bye", "ErrorType": "InputTimeLimitExceeded"}]}},
        {"Identifier": "cbnum", "Type": "UpdateContactCallbackNumber", "Parameters": {"CallbackNumber": "$.StoredCustomerInput"},
         "Transitions": {"NextAction": "cb", "Errors": [{"NextAction": "bad", "ErrorType": "InvalidCallbackNumber"}]}},
        {"Identifier": "bad", "Type": "MessageParticipant", "Parameters": {"Text": "That number is not valid"}, "Transitions": {"NextAction": "bye"}},
        {"Identifier": "cb", "Type": "CreateCallbackContact",
         "Parameters": {"QueueId": "callbacks", "InitialCallDelaySeconds": "60", "MaximumConnectionAttempts": "3", "RetryDelaySeconds": "300"},
         "Transitions": {"NextAction": "thanks", "Errors": [{"NextAction": "bye", "ErrorType": "NoMatchingError"}]}},
        {"Identifier": "thanks", "Type": "MessageParticipant", "Parameters": {"Text": "We will call $.StoredCustomerInput"}, "Transitions": {"NextAction": "bye"}},
        bye()
    ])
}

#[test]
fn stored_input_becomes_a_callback() {
    let mut i = interp("ask", callback_flow(), 0);
    assert_eq!(
        started(&mut i, "c"),
        vec![Effect::CollectDigits {
            prompt: PromptSpec::Text("Enter your number then hash".into()),
            voice: None,
            max_digits: 15,
            timeout_ms: 10_000,
            terminator: Some('#'),
        }]
    );
    assert_eq!(
        i.step(Input::DigitsCollected("12345".into()), 1),
        vec![text("That number is not valid")]
    );

    let mut i = interp("ask", callback_flow(), 0);
    started(&mut i, "c");
    let fx = i.step(Input::DigitsCollected("+14155550123".into()), 1);
    assert_eq!(
        fx,
        vec![Effect::ScheduleCallback {
            number: "+14155550123".into(),
            queue: "callbacks".into(),
            delay_s: 60,
            attempts: 3,
            retry_delay_s: 300,
        }]
    );
    assert_eq!(
        i.step(Input::CallbackResult { ok: true }, 2),
        vec![text("We will call +14155550123")]
    );
    assert_eq!(
        i.step(Input::PromptFinished, 3),
        vec![Effect::Disconnect, Effect::Ended(FlowOutcome::Disconnected)]
    );
    assert_eq!(i.record().callback_number.as_deref(), Some("+14155550123"));

    // A timeout stores "Timeout" and takes InputTimeLimitExceeded.
    let mut i = interp("ask", callback_flow(), 0);
    started(&mut i, "c");
    i.step(Input::InputTimeout, 1);
    assert_eq!(i.record().stored_input.as_deref(), Some("Timeout"));
    assert_eq!(i.record().path[0].result, "Error:InputTimeLimitExceeded");
}

#[test]
fn transfer_to_a_number_can_continue_the_flow() {
    let flow = |continue_flow: &str| {
        json!([
            {"Identifier": "xfer", "Type": "TransferParticipantToThirdParty",
             "Parameters": {"ThirdPartyPhoneNumber": "$.Attributes.dest", "ThirdPartyConnectionTimeoutSeconds": "25",
                            "ContinueFlowExecution": continue_flow, "ThirdPartyDTMFDigits": "12#"},
             "Transitions": {"NextAction": "after", "Errors": [{"NextAction": "failed", "ErrorType": "CallFailed"},
                                                              {"NextAction": "failed", "ErrorType": "ConnectionTimeLimitExceeded"}]}},
            {"Identifier": "after", "Type": "MessageParticipant", "Parameters": {"Text": "Back with us"}, "Transitions": {"NextAction": "bye"}},
            {"Identifier": "failed", "Type": "MessageParticipant", "Parameters": {"Text": "Could not connect"}, "Transitions": {"NextAction": "bye"}},
            bye()
        ])
    };
    let contact = |dest: &str| {
        Input::Started(ContactInfo {
            contact_id: "c".into(),
            attributes: BTreeMap::from([("dest".to_string(), dest.to_string())]),
            ..ContactInfo::default()
        })
    };
    let mut i = interp("xfer", flow("True"), 0);
    assert_eq!(
        i.step(contact("+15551234567"), 0),
        vec![Effect::TransferToNumber {
            number: "+15551234567".into(),
            timeout_s: 25,
            dtmf: Some("12#".into()),
            caller_id: None,
            continue_flow: true,
        }]
    );
    assert_eq!(
        i.step(Input::TransferResult(TransferResult::Connected), 1),
        vec![]
    );
    assert_eq!(
        i.step(Input::TransferResult(TransferResult::Ended), 60),
        vec![text("Back with us")]
    );

    let mut i = interp("xfer", flow("False"), 0);
    i.step(contact("+15551234567"), 0);
    assert_eq!(
        i.step(Input::TransferResult(TransferResult::Connected), 1),
        vec![Effect::Ended(FlowOutcome::TransferredToNumber {
            number: "+15551234567".into()
        })]
    );

    let mut i = interp("xfer", flow("False"), 0);
    i.step(contact("+15551234567"), 0);
    assert_eq!(
        i.step(Input::TransferResult(TransferResult::Timeout), 1),
        vec![text("Could not connect")]
    );
    // A destination that is not E.164 fails without dialing.
    let mut i = interp("xfer", flow("False"), 0);
    assert_eq!(i.step(contact("555"), 0), vec![text("Could not connect")]);
}

#[test]
fn transfer_to_the_legacy_platform_goes_through_the_bridge() {
    let mut i = interp(
        "legacy",
        json!([
            {"Identifier": "legacy", "Type": "TransferToLegacyPlatform",
             "Parameters": {"Pool": "to-legacy", "Data": {"account": "$.Attributes.account", "ani": "$.CustomerEndpoint.Address"}},
             "Transitions": {"Errors": [{"NextAction": "sorry", "ErrorType": "NoNumberAvailable"}]}},
            {"Identifier": "sorry", "Type": "MessageParticipant", "Parameters": {"Text": "Please call back later"}, "Transitions": {"NextAction": "bye"}},
            bye()
        ]),
        0,
    );
    let fx = started(&mut i, "c");
    assert_eq!(
        fx,
        vec![Effect::TransferToLegacy {
            pool: "to-legacy".into(),
            data: BTreeMap::from([
                ("account".into(), String::new()),
                ("ani".into(), "+442071234567".into())
            ]),
        }]
    );
    assert_eq!(
        i.step(Input::TransferResult(TransferResult::NoNumberAvailable), 1),
        vec![text("Please call back later")]
    );
}

#[test]
fn distribute_by_percentage_is_deterministic_and_close_to_the_split() {
    let flow = json!([
        {"Identifier": "split", "Type": "DistributeByPercentage", "Parameters": {},
         "Transitions": {"NextAction": "b",
                         "Conditions": [{"NextAction": "a", "Condition": {"Operator": "NumberLessThan", "Operands": ["30"]}}]}},
        {"Identifier": "a", "Type": "MessageParticipant", "Parameters": {"Text": "A"}, "Transitions": {"NextAction": "bye"}},
        {"Identifier": "b", "Type": "MessageParticipant", "Parameters": {"Text": "B"}, "Transitions": {"NextAction": "bye"}},
        bye()
    ]);
    let mut to_a = 0;
    for n in 0..2000 {
        let id = format!("contact-{n}");
        let mut i = interp("split", flow.clone(), 42);
        let first = started(&mut i, &id);
        let mut again = interp("split", flow.clone(), 42);
        assert_eq!(
            started(&mut again, &id),
            first,
            "same seed and contact, same branch"
        );
        assert_eq!(
            first == vec![text("A")],
            percent_roll(42, &id, "split") < 30
        );
        to_a += usize::from(first == vec![text("A")]);
    }
    assert!(
        (500..700).contains(&to_a),
        "30% of 2000 expected, got {to_a}"
    );
}

#[test]
fn retries_replay_the_menu_before_branching() {
    let mut i = interp(
        "menu",
        json!([
            {"Identifier": "menu", "Type": "GetParticipantInput", "Parameters": {"Text": "Press 1", "Retries": "2", "InputTimeLimitSeconds": "4"},
             "Transitions": {"Conditions": [{"NextAction": "bye", "Condition": {"Operator": "Equals", "Operands": ["1"]}}],
                             "Errors": [{"NextAction": "bye", "ErrorType": "InputTimeLimitExceeded"},
                                        {"NextAction": "bye", "ErrorType": "NoMatchingCondition"}]}},
            bye()
        ]),
        0,
    );
    let collect = vec![Effect::CollectDigits {
        prompt: PromptSpec::Text("Press 1".into()),
        voice: None,
        max_digits: 1,
        timeout_ms: 4000,
        terminator: None,
    }];
    assert_eq!(started(&mut i, "c"), collect);
    assert_eq!(i.step(Input::InputTimeout, 4000), collect);
    assert_eq!(i.step(Input::DigitsCollected("7".into()), 6000), collect);
    assert_eq!(
        i.step(Input::InputTimeout, 10_000),
        vec![Effect::Disconnect, Effect::Ended(FlowOutcome::Disconnected)]
    );
    let results: Vec<&str> = i.record().path.iter().map(|s| s.result.as_str()).collect();
    assert_eq!(
        results,
        ["Retry", "Retry", "Error:InputTimeLimitExceeded", "Success"]
    );
}

#[test]
fn asynchronous_webhook_does_not_wait_and_attribute_limit_takes_the_error_branch() {
    let big = "x".repeat(20_000);
    let mut i = interp(
        "notify",
        json!([
            {"Identifier": "notify", "Type": "InvokeLambdaFunction",
             "Parameters": {"LambdaFunctionARN": "https://crm.example/notify", "InvocationType": "ASYNCHRONOUS", "InvocationTimeLimitSeconds": "2"},
             "Transitions": {"NextAction": "set1"}},
            {"Identifier": "set1", "Type": "UpdateContactAttributes", "Parameters": {"Attributes": {"a": big}}, "Transitions": {"NextAction": "set2"}},
            {"Identifier": "set2", "Type": "UpdateContactAttributes", "Parameters": {"Attributes": {"b": big}},
             "Transitions": {"NextAction": "bye", "Errors": [{"NextAction": "too-big", "ErrorType": "NoMatchingError"}]}},
            {"Identifier": "too-big", "Type": "MessageParticipant", "Parameters": {"Text": "too big"}, "Transitions": {"NextAction": "bye"}},
            bye()
        ]),
        0,
    );
    let fx = started(&mut i, "c");
    assert!(matches!(
        &fx[0],
        Effect::InvokeWebhook {
            wait: false,
            timeout_ms: 2000,
            ..
        }
    ));
    assert_eq!(fx[1], text("too big"));
    assert!(i.record().attributes.contains_key("a"));
    assert!(!i.record().attributes.contains_key("b"), "all or nothing");
}

#[test]
fn percentage_remainder_takes_no_matching_condition_and_empty_next_action_reads_as_none() {
    // The shape Connect exports: "NextAction": "" and the remainder on NoMatchingCondition.
    let flow = json!([
        {"Identifier": "split", "Type": "DistributeByPercentage", "Parameters": {},
         "Transitions": {"NextAction": "",
                         "Conditions": [{"NextAction": "a", "Condition": {"Operator": "NumberLessThan", "Operands": ["20"]}},
                                        {"NextAction": "b", "Condition": {"Operator": "NumberLessThan", "Operands": ["60"]}}],
                         "Errors": [{"NextAction": "rest", "ErrorType": "NoMatchingCondition"}]}},
        {"Identifier": "a", "Type": "MessageParticipant", "Parameters": {"Text": "A"}, "Transitions": {"NextAction": "bye"}},
        {"Identifier": "b", "Type": "MessageParticipant", "Parameters": {"Text": "B"}, "Transitions": {"NextAction": "bye"}},
        {"Identifier": "rest", "Type": "MessageParticipant", "Parameters": {"Text": "rest"}, "Transitions": {"NextAction": "bye"}},
        bye()
    ]);
    let mut seen = std::collections::HashMap::new();
    for n in 0..1000 {
        let id = format!("k{n}");
        let mut i = interp("split", flow.clone(), 3);
        let roll = percent_roll(3, &id, "split");
        let expected = if roll < 20 {
            "A"
        } else if roll < 60 {
            "B"
        } else {
            "rest"
        };
        assert_eq!(started(&mut i, &id), vec![text(expected)]);
        *seen.entry(expected).or_insert(0) += 1;
    }
    assert!(
        seen["A"] > 150 && seen["B"] > 350 && seen["rest"] > 350,
        "{seen:?}"
    );
}

#[test]
fn transfer_to_flow_carries_the_contact_into_the_next_flow() {
    let mut i = interp(
        "set",
        json!([
            {"Identifier": "set", "Type": "UpdateContactAttributes", "Parameters": {"Attributes": {"lang": "fr"}}, "Transitions": {"NextAction": "go"}},
            {"Identifier": "go", "Type": "TransferToFlow", "Parameters": {"ContactFlowId": "flow-$.Attributes.lang"},
             "Transitions": {"Errors": [{"NextAction": "bye", "ErrorType": "NoMatchingError"}]}},
            bye()
        ]),
        0,
    );
    assert_eq!(
        started(&mut i, "c"),
        vec![Effect::TransferToFlow {
            flow: "flow-$.Attributes.lang".into()
        }],
        "ContactFlowId is a value, not a template"
    );
    let next: FlowDocument = serde_json::from_value(json!({"Version": "2019-10-30", "StartAction": "hello", "Actions": [
        {"Identifier": "hello", "Type": "MessageParticipant", "Parameters": {"Text": "Bonjour ($.Attributes.lang)"}, "Transitions": {"NextAction": "bye"}},
        bye()
    ]})).unwrap();
    let fx = i.continue_in(Arc::new(compile(&next, Mode::Strict).unwrap()), 5);
    assert_eq!(fx, vec![text("Bonjour (fr)")]);
    assert_eq!(i.record().path_ids(), ["set", "go", "hello"]);

    let mut i = interp(
        "set",
        json!([
            {"Identifier": "set", "Type": "UpdateContactAttributes", "Parameters": {"Attributes": {"lang": "fr"}}, "Transitions": {"NextAction": "go"}},
            {"Identifier": "go", "Type": "TransferToFlow", "Parameters": {"ContactFlowId": "$.Attributes.lang"},
             "Transitions": {"Errors": [{"NextAction": "bye", "ErrorType": "NoMatchingError"}]}},
            bye()
        ]),
        0,
    );
    assert_eq!(
        started(&mut i, "c"),
        vec![Effect::TransferToFlow { flow: "fr".into() }]
    );
    assert_eq!(
        i.step(Input::FlowNotFound, 1),
        vec![Effect::Disconnect, Effect::Ended(FlowOutcome::Disconnected)]
    );
}

#[test]
fn routing_criteria_from_the_flow_reach_the_acd_request() {
    use inbound::acd::{
        Acd, AcdConfig, AgentConfig, AgentStatus, ContactRequest, Decision, Event, ProfileQueue,
        QueueConfig, RoutingProfileConfig,
    };
    let mut i = interp(
        "criteria",
        json!([
            {"Identifier": "criteria", "Type": "UpdateRoutingCriteria",
             "Parameters": {"RoutingCriteria": {"Steps": [
                 {"Expression": {"AndExpression": [
                     {"AttributeCondition": {"Name": "Language", "Value": "French", "ProficiencyLevel": 4, "ComparisonOperator": "NumberGreaterOrEqualTo"}},
                     {"AttributeCondition": {"Name": "Product", "Value": "Billing", "ProficiencyLevel": 2, "ComparisonOperator": "NumberGreaterOrEqualTo"}}]},
                  "Expiry": {"DurationInSeconds": 30}},
                 {"Expression": {"AttributeCondition": {"Name": "Language", "Value": "French", "ProficiencyLevel": 1, "ComparisonOperator": "NumberGreaterOrEqualTo"}}}
             ]}},
             "Transitions": {"NextAction": "queue", "Errors": [{"NextAction": "bye", "ErrorType": "NoMatchingError"}]}},
            {"Identifier": "queue", "Type": "UpdateContactTargetQueue", "Parameters": {"QueueId": "fr"}, "Transitions": {"NextAction": "xfer"}},
            {"Identifier": "xfer", "Type": "TransferContactToQueue", "Parameters": {},
             "Transitions": {"Errors": [{"NextAction": "bye", "ErrorType": "QueueAtCapacity"}]}},
            bye()
        ]),
        0,
    );
    let fx = started(&mut i, "c");
    let Effect::EnqueueContact {
        queue, criteria, ..
    } = &fx[0]
    else {
        panic!("{fx:?}")
    };
    assert_eq!(
        criteria[0].skills,
        BTreeMap::from([
            ("Language:French".to_string(), 4),
            ("Product:Billing".to_string(), 2)
        ])
    );
    assert_eq!(
        (criteria[0].expiry_s, criteria[1].expiry_s),
        (Some(30), None)
    );

    // The ACD honours them: the fluent agent first; after 30 s anyone speaking French.
    let mut acd = Acd::new(&AcdConfig {
        queues: vec![QueueConfig::new("fr")],
        profiles: vec![RoutingProfileConfig {
            name: "p".into(),
            queues: vec![ProfileQueue {
                queue: "fr".into(),
                priority: 1,
                delay_s: 0,
            }],
            acw_s: 0,
        }],
        agents: vec![AgentConfig {
            id: "learner".into(),
            profile: "p".into(),
            skills: BTreeMap::from([("Language:French".into(), 2), ("Product:Billing".into(), 5)]),
        }],
    })
    .unwrap();
    acd.step(
        Event::SetStatus {
            agent: "learner".into(),
            status: AgentStatus::Available,
        },
        0,
    );
    let mut req = ContactRequest::new("c", queue);
    req.criteria = criteria.clone();
    let ds = acd.step(Event::Enqueue(req), 1000);
    assert!(!ds.iter().any(|d| matches!(d, Decision::Offer { .. })));
    let ds = acd.step(Event::Tick, 31_000);
    assert!(
        ds.iter()
            .any(|d| matches!(d, Decision::Offer { agent, .. } if agent == "learner"))
    );

    // OrExpression is named as unsupported.
    let bad: FlowDocument = serde_json::from_value(json!({"Version": "2019-10-30", "StartAction": "c", "Actions": [
        {"Identifier": "c", "Type": "UpdateRoutingCriteria", "Parameters": {"RoutingCriteria": {"Steps": [{"Expression": {"OrExpression": []}}]}},
         "Transitions": {"NextAction": "bye"}},
        bye()
    ]})).unwrap();
    let errs = compile(&bad, Mode::Strict).unwrap_err();
    assert!(
        errs[0]
            .to_string()
            .contains("OrExpression is not supported"),
        "{errs:?}"
    );
}
