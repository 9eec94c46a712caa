//! Importing a flow with the structure of a published Amazon Connect export (see
//! fixtures/README.md): the unsupported action is named, and the flow runs with it taking its
//! error branch, on both the webhook's success and error paths.

use std::sync::Arc;

use inbound::contact::{ContactInfo, FlowOutcome};
use inbound::flow::{self, FlowDocument, FlowError, Mode};
use inbound::interpreter::{Effect, Input, Interpreter, PromptSpec, QueueResult, WebhookResult};
use serde_json::json;

const EXPORT: &str = include_str!("fixtures/connect_rolling_dnis_receive.json");
const QUEUE_ARN: &str = "arn:aws:connect:us-east-1:111122223333:instance/00000000-0000-0000-0000-000000000000/queue/11111111-2222-3333-4444-555555555555";

#[test]
fn the_report_names_the_unsupported_action() {
    let report = flow::import(EXPORT);
    assert_eq!(
        report.unsupported,
        [(
            "3e419d85-af42-40b1-ad34-8c6f5a0b1d43".to_string(),
            "UpdateContactData".to_string()
        )]
    );
    assert!(report.errors.is_empty(), "{}", report.summary());
    assert!(!report.is_clean());
    assert_eq!(
        report.summary(),
        "unsupported action UpdateContactData (3e419d85-af42-40b1-ad34-8c6f5a0b1d43)"
    );
    // A strict save refuses it for that reason only.
    let strict =
        flow::compile(&FlowDocument::from_json(EXPORT).unwrap(), Mode::Strict).unwrap_err();
    assert_eq!(
        strict,
        vec![FlowError::UnsupportedAction {
            action: "3e419d85-af42-40b1-ad34-8c6f5a0b1d43".into(),
            action_type: "UpdateContactData".into(),
        }]
    );
    // Export gives back the same document (metadata included).
    let doc = FlowDocument::from_json(EXPORT).unwrap();
    assert_eq!(FlowDocument::from_json(&doc.to_json()).unwrap(), doc);
}

fn start() -> (Interpreter, Vec<Effect>) {
    let flow = flow::import(EXPORT).runnable.expect("runs leniently");
    let mut i = Interpreter::new(Arc::new(flow), 1);
    let fx = i.step(
        Input::Started(ContactInfo {
            contact_id: "ret-1".into(),
            customer_address: "+12065550123".into(),
            system_address: "+18885550142".into(),
            channel: "VOICE".into(),
            ..ContactInfo::default()
        }),
        0,
    );
    (i, fx)
}

#[test]
fn supported_actions_run_with_the_lookup_succeeding() {
    let (mut i, fx) = start();
    assert_eq!(
        fx,
        vec![
            Effect::SetRecording {
                agent: true,
                customer: true
            },
            Effect::PlayPrompt {
                prompt: PromptSpec::Text("One moment while we find your details.".into()),
                voice: Some("Joanna".into())
            },
        ]
    );
    let fx = i.step(Input::PromptFinished, 2000);
    let Effect::InvokeWebhook {
        function,
        payload,
        timeout_ms: 3000,
        wait: true,
    } = &fx[0]
    else {
        panic!("{fx:?}")
    };
    assert_eq!(
        function,
        "arn:aws:lambda:us-east-1:111122223333:function:legacyLookup"
    );
    assert_eq!(
        payload["Details"]["Parameters"],
        json!({"function": "getcall", "dnis": "+18885550142"})
    );
    let fx = i.step(
        Input::WebhookResult(WebhookResult::Ok(json!({
            "fname": "Grace", "lname": "Hopper", "reason": "a missed payment", "accountnum": "4471", "customerphone": "+12065550123"
        }))),
        2500,
    );
    assert_eq!(fx, vec![Effect::PlayPrompt {
        prompt: PromptSpec::Ssml("<speak>Hello Grace. You called about a missed payment on account <say-as interpret-as=\"digits\">4471</say-as>.</speak>".into()),
        voice: Some("Joanna".into()),
    }]);
    assert_eq!(
        i.step(Input::PromptFinished, 6000),
        vec![Effect::EnqueueContact {
            queue: QUEUE_ARN.into(),
            priority: None,
            time_adjustment_s: None,
            criteria: vec![]
        }]
    );
    assert_eq!(
        i.step(Input::QueueResult(QueueResult::Queued), 6010),
        vec![Effect::Ended(FlowOutcome::Queued {
            queue: QUEUE_ARN.into()
        })]
    );
    let r = i.record();
    assert_eq!(
        r.attributes.get("lname").map(String::as_str),
        Some("Hopper")
    );
    let steps: Vec<(&str, &str)> = r
        .path
        .iter()
        .map(|s| (s.action_type.as_str(), s.result.as_str()))
        .collect();
    assert_eq!(
        steps,
        [
            ("UpdateFlowLoggingBehavior", "Success"),
            ("UpdateContactRecordingBehavior", "Success"),
            ("UpdateContactTextToSpeechVoice", "Success"),
            ("UpdateContactData", "Error:NoMatchingError"),
            ("MessageParticipant", "Success"),
            ("InvokeLambdaFunction", "Success"),
            ("UpdateContactAttributes", "Success"),
            ("MessageParticipant", "Success"),
            ("UpdateContactTargetQueue", "Success"),
            ("TransferContactToQueue", "Success"),
        ]
    );
}

#[test]
fn the_error_path_apologises_and_still_queues() {
    let (mut i, _) = start();
    i.step(Input::PromptFinished, 2000);
    let fx = i.step(
        Input::WebhookResult(WebhookResult::Error("function not found".into())),
        2100,
    );
    assert_eq!(
        fx,
        vec![Effect::PlayPrompt {
            prompt: PromptSpec::Text(
                "We could not find your earlier call. Connecting you to an agent.".into()
            ),
            voice: Some("Joanna".into()),
        }]
    );
    i.step(Input::PromptFinished, 5000);
    // The queue is full: QueueAtCapacity goes to the disconnect.
    assert_eq!(
        i.step(Input::QueueResult(QueueResult::AtCapacity), 5001),
        vec![Effect::Disconnect, Effect::Ended(FlowOutcome::Disconnected)]
    );
}
