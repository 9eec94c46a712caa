//! The webhook block against a local HTTP server: success, timeout and error branches, through
//! the interpreter and `inbound::webhook::invoke`.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;
use inbound::contact::ContactInfo;
use inbound::flow::{FlowDocument, Mode, compile};
use inbound::interpreter::{Effect, Input, Interpreter, PromptSpec, WebhookResult};
use inbound::webhook::{WebhookTargets, invoke};
use serde_json::{Value, json};

async fn server() -> String {
    let app = Router::new()
        .route(
            "/ok",
            post(|Json(event): Json<Value>| async move {
                let phone = event["Details"]["Parameters"]["phone"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                Json(json!({"greeting": format!("hello {phone}")}))
            }),
        )
        .route(
            "/slow",
            post(|| async {
                tokio::time::sleep(Duration::from_secs(3)).await;
                Json(json!({"greeting": "too late"}))
            }),
        )
        .route(
            "/fail",
            post(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "boom") }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

fn flow(function: &str) -> Interpreter {
    let d: FlowDocument = serde_json::from_value(json!({
        "Version": "2019-10-30", "StartAction": "hook",
        "Actions": [
            {"Identifier": "hook", "Type": "InvokeLambdaFunction",
             "Parameters": {"LambdaFunctionARN": function, "InvocationTimeLimitSeconds": "1",
                            "LambdaInvocationAttributes": {"phone": "$.CustomerEndpoint.Address"}},
             "Transitions": {"NextAction": "say", "Errors": [{"NextAction": "sorry", "ErrorType": "NoMatchingError"}]}},
            {"Identifier": "say", "Type": "MessageParticipant", "Parameters": {"Text": "$.External.greeting"}, "Transitions": {"NextAction": "bye"}},
            {"Identifier": "sorry", "Type": "MessageParticipant", "Parameters": {"Text": "sorry"}, "Transitions": {"NextAction": "bye"}},
            {"Identifier": "bye", "Type": "DisconnectParticipant", "Parameters": {}, "Transitions": {}}
        ]
    }))
    .unwrap();
    Interpreter::new(Arc::new(compile(&d, Mode::Strict).unwrap()), 0)
}

/// Runs the flow to its first prompt, doing the webhook for real; returns (result, prompt).
async fn run(targets: &WebhookTargets, function: &str) -> (WebhookResult, Effect) {
    let mut i = flow(function);
    let fx = i.step(
        Input::Started(ContactInfo {
            contact_id: "c".into(),
            customer_address: "+15550001111".into(),
            ..ContactInfo::default()
        }),
        0,
    );
    let Effect::InvokeWebhook {
        function,
        payload,
        timeout_ms,
        wait: true,
    } = &fx[0]
    else {
        panic!("{fx:?}")
    };
    let client = reqwest::Client::new();
    let result = invoke(&client, targets, function, payload, *timeout_ms).await;
    let fx = i.step(Input::WebhookResult(result.clone()), 1);
    (result, fx[0].clone())
}

fn say(t: &str) -> Effect {
    Effect::PlayPrompt {
        prompt: PromptSpec::Text(t.into()),
        voice: None,
    }
}

#[tokio::test]
async fn success_timeout_and_error_branches() {
    let base = server().await;
    let mut targets = WebhookTargets::new();
    targets.register(
        "arn:aws:lambda:us-east-1:111122223333:function:greeter",
        &format!("{base}/ok"),
    );

    let (result, prompt) = run(
        &targets,
        "arn:aws:lambda:us-east-1:111122223333:function:greeter",
    )
    .await;
    assert_eq!(
        result,
        WebhookResult::Ok(json!({"greeting": "hello +15550001111"}))
    );
    assert_eq!(prompt, say("hello +15550001111"));

    // The server answers after 3 s; the action's 1 s limit turns that into a timeout.
    let (result, prompt) = run(&targets, &format!("{base}/slow")).await;
    assert_eq!(result, WebhookResult::Timeout);
    assert_eq!(prompt, say("sorry"));

    let (result, prompt) = run(&targets, &format!("{base}/fail")).await;
    assert_eq!(result, WebhookResult::Error("HTTP 500".into()));
    assert_eq!(prompt, say("sorry"));

    let (result, prompt) = run(&targets, "unregistered-function").await;
    assert!(matches!(result, WebhookResult::Error(e) if e.contains("no webhook URL")));
    assert_eq!(prompt, say("sorry"));
}
