//! A hand-written flow (menu, attributes, webhook, hours check, queue transfer) run end to end
//! through the interpreter with scripted caller inputs; hours come from `inbound::hours` and the
//! queue transfer goes into the ACD, which offers the contact to an agent.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use chrono::{TimeZone, Utc};
use inbound::acd::{
    Acd, AcdConfig, AgentConfig, AgentStatus, ContactRequest, Decision, Event, ProfileQueue,
    QueueConfig, RoutingProfileConfig,
};
use inbound::contact::{ContactInfo, FlowOutcome};
use inbound::flow::{self, Mode};
use inbound::hours::{Hours, HoursConfig, WeeklyRange};
use inbound::interpreter::{Effect, Input, Interpreter, PromptSpec, QueueResult, WebhookResult};
use serde_json::json;

const FLOW: &str = include_str!("fixtures/menu_flow.json");

enum Caller {
    Press(&'static str),
    Silence,
}

struct Driver {
    interp: Interpreter,
    acd: Acd,
    hours: HashMap<String, Hours>,
    caller: VecDeque<Caller>,
    webhook: WebhookResult,
    now: i64,
    /// Everything the interpreter asked for, in order.
    log: Vec<Effect>,
    decisions: Vec<Decision>,
}

impl Driver {
    fn new(
        now: i64,
        caller: Vec<Caller>,
        webhook: WebhookResult,
        max_in_queue: Option<usize>,
    ) -> Self {
        let compiled =
            flow::compile(&flow::FlowDocument::from_json(FLOW).unwrap(), Mode::Strict).unwrap();
        let mut sales = QueueConfig::new("sales");
        sales.max_contacts = max_in_queue;
        let support = QueueConfig::new("support");
        let mut acd = Acd::new(&AcdConfig {
            queues: vec![sales, support],
            profiles: vec![RoutingProfileConfig {
                name: "all".into(),
                queues: vec![
                    ProfileQueue {
                        queue: "sales".into(),
                        priority: 1,
                        delay_s: 0,
                    },
                    ProfileQueue {
                        queue: "support".into(),
                        priority: 1,
                        delay_s: 0,
                    },
                ],
                acw_s: 0,
            }],
            agents: vec![AgentConfig {
                id: "alice".into(),
                profile: "all".into(),
                skills: BTreeMap::new(),
            }],
        })
        .unwrap();
        acd.step(
            Event::SetStatus {
                agent: "alice".into(),
                status: AgentStatus::Available,
            },
            now,
        );
        let office = Hours::from_config(&HoursConfig {
            id: "office".into(),
            time_zone: "America/New_York".into(),
            weekly: ["Mon", "Tue", "Wed", "Thu", "Fri"]
                .iter()
                .map(|d| WeeklyRange {
                    day: (*d).into(),
                    start: "08:00".into(),
                    end: "20:00".into(),
                })
                .collect(),
            overrides: vec![],
        })
        .unwrap();
        let hours = HashMap::from([
            ("sales".to_string(), office.clone()),
            ("support".to_string(), office),
        ]);
        Self {
            interp: Interpreter::new(Arc::new(compiled), 7),
            acd,
            hours,
            caller: caller.into(),
            webhook,
            now,
            log: Vec::new(),
            decisions: Vec::new(),
        }
    }

    /// Runs the contact to the end of the flow; each driver round trip takes one second.
    fn run(&mut self) {
        let contact = ContactInfo {
            contact_id: "c-1".into(),
            customer_address: "+14155550100".into(),
            system_address: "+18005550199".into(),
            channel: "VOICE".into(),
            attributes: BTreeMap::new(),
        };
        let mut effects = self.interp.step(Input::Started(contact), self.now);
        for _ in 0..100 {
            let mut next = None;
            for e in effects.drain(..) {
                self.log.push(e.clone());
                next = self.answer(&e).or(next);
            }
            match next {
                Some(input) => {
                    self.now += 1000;
                    effects = self.interp.step(input, self.now);
                }
                None => break,
            }
        }
        assert!(
            self.interp.is_done(),
            "flow did not finish: {:?}",
            self.interp.waiting()
        );
    }

    fn answer(&mut self, e: &Effect) -> Option<Input> {
        Some(match e {
            Effect::PlayPrompt { .. } => Input::PromptFinished,
            Effect::CollectDigits { .. } => {
                match self.caller.pop_front().expect("script ran out") {
                    Caller::Press(d) => Input::DigitsCollected(d.into()),
                    Caller::Silence => Input::InputTimeout,
                }
            }
            Effect::InvokeWebhook { .. } => Input::WebhookResult(self.webhook.clone()),
            Effect::CheckHours { queue, .. } => {
                match queue.as_ref().and_then(|q| self.hours.get(q)) {
                    Some(h) => Input::HoursChecked {
                        open: h.is_open_ms(self.now),
                    },
                    None => Input::HoursUnknown,
                }
            }
            Effect::EnqueueContact { queue, .. } => {
                let ds = self
                    .acd
                    .step(Event::Enqueue(ContactRequest::new("c-1", queue)), self.now);
                let result = if ds.iter().any(|d| matches!(d, Decision::AtCapacity { .. })) {
                    QueueResult::AtCapacity
                } else {
                    QueueResult::Queued
                };
                self.decisions.extend(ds);
                Input::QueueResult(result)
            }
            _ => return None,
        })
    }

    fn path(&self) -> Vec<&str> {
        self.interp.record().path_ids()
    }
}

/// Tuesday 10 March 2026, 10:00 EDT.
fn tuesday_morning() -> i64 {
    Utc.with_ymd_and_hms(2026, 3, 10, 14, 0, 0)
        .unwrap()
        .timestamp_millis()
}

/// Saturday 14 March 2026, 10:00 EDT.
fn saturday() -> i64 {
    Utc.with_ymd_and_hms(2026, 3, 14, 14, 0, 0)
        .unwrap()
        .timestamp_millis()
}

#[test]
fn gold_caller_retries_the_menu_and_reaches_an_agent() {
    let start = tuesday_morning();
    let mut d = Driver::new(
        start,
        vec![Caller::Press("9"), Caller::Silence, Caller::Press("2")],
        WebhookResult::Ok(json!({"tier": "gold", "name": "Ada"})),
        None,
    );
    d.run();
    assert_eq!(
        d.path(),
        [
            "log",
            "voice",
            "rec",
            "set-lang",
            "lookup",
            "is-vip",
            "set-vip",
            "menu",
            "retry",
            "sorry",
            "menu",
            "retry",
            "sorry",
            "menu",
            "q-support",
            "hours",
            "to-queue"
        ]
    );
    let r = d.interp.record();
    assert_eq!(
        r.outcome,
        Some(FlowOutcome::Queued {
            queue: "support".into()
        })
    );
    assert_eq!(r.attributes.get("vip").map(String::as_str), Some("true"));
    assert_eq!(
        r.attributes.get("caller").map(String::as_str),
        Some("+14155550100")
    );
    assert_eq!(r.attributes.get("name").map(String::as_str), Some("Ada"));
    assert!(r.recording.agent && r.recording.customer && r.flow_logging);
    // Results and timestamps of the path: one second per driver round trip.
    let results: Vec<&str> = r.path.iter().map(|s| s.result.as_str()).collect();
    assert_eq!(
        results[5..9],
        [
            "Condition:gold",
            "Success",
            "Error:NoMatchingCondition",
            "Condition:ContinueLooping"
        ]
    );
    assert_eq!(results[11], "Condition:ContinueLooping");
    assert_eq!(r.path[0].at_ms, start);
    assert_eq!(
        r.path[5].at_ms,
        start + 1000,
        "is-vip runs when the webhook answers"
    );
    assert!(r.path.windows(2).all(|w| w[0].at_ms <= w[1].at_ms));
    assert_eq!(r.ended_at_ms, Some(r.path.last().unwrap().at_ms + 1000));
    // The menu prompt used the attribute set from the webhook, in the chosen voice.
    assert!(d.log.iter().any(|e| matches!(e, Effect::CollectDigits { prompt: PromptSpec::Text(t), voice: Some(v), max_digits: 1, timeout_ms: 5000, .. }
        if t.starts_with("Welcome Ada.") && v == "en-us")));
    // The webhook got a Connect-shaped event with the resolved parameters.
    let payload = d
        .log
        .iter()
        .find_map(|e| match e {
            Effect::InvokeWebhook {
                payload,
                function,
                timeout_ms,
                wait: true,
            } => {
                assert_eq!((function.as_str(), *timeout_ms), ("crm-lookup", 3000));
                Some(payload.clone())
            }
            _ => None,
        })
        .unwrap();
    assert_eq!(
        payload["Details"]["Parameters"],
        json!({"phone": "+14155550100", "dnis": "+18005550199"})
    );
    assert_eq!(
        payload["Details"]["ContactData"]["CustomerEndpoint"]["Address"],
        "+14155550100"
    );
    assert!(matches!(
        d.log.last(),
        Some(Effect::Ended(FlowOutcome::Queued { .. }))
    ));
    // And the ACD offered it to the agent.
    assert!(d.decisions.contains(&Decision::Offer {
        contact: "c-1".into(),
        agent: "alice".into(),
        queue: "support".into(),
        ring_timeout_ms: 20_000
    }));
    // The driver notes the ACD's decisions and the call's end: the record shows every stage.
    let mut record = d.interp.record().clone();
    let queued_at = record.ended_at_ms.unwrap() - 1000;
    for decision in &d.decisions {
        record.note_decision(decision, queued_at);
    }
    let connected_at = queued_at + 4000;
    for decision in d.acd.step(
        Event::Accept {
            contact: "c-1".into(),
            agent: "alice".into(),
        },
        connected_at,
    ) {
        record.note_decision(&decision, connected_at);
    }
    d.acd.step(
        Event::ContactEnded {
            agent: "alice".into(),
        },
        connected_at + 90_000,
    );
    record.note(connected_at + 90_000, "ended", "agent");
    let stages: Vec<(i64, &str, &str)> = record
        .stages
        .iter()
        .map(|s| (s.at_ms - queued_at, s.stage.as_str(), s.detail.as_str()))
        .collect();
    assert_eq!(
        stages,
        [
            (0, "queued", "support"),
            (0, "offered", "alice"),
            (4000, "connected", "alice"),
            (94_000, "ended", "agent"),
        ]
    );
}

#[test]
fn webhook_timeout_takes_the_error_branch_and_closed_hours_disconnect() {
    let mut d = Driver::new(
        saturday(),
        vec![Caller::Press("1")],
        WebhookResult::Timeout,
        None,
    );
    d.run();
    assert_eq!(
        d.path(),
        [
            "log", "voice", "rec", "set-lang", "lookup", "menu", "q-sales", "hours", "closed",
            "bye"
        ]
    );
    let r = d.interp.record();
    assert_eq!(r.path[4].result, "Error:NoMatchingError");
    assert_eq!(r.path[7].result, "Condition:False");
    assert!(r.external.is_empty());
    assert!(d.log.contains(&Effect::PlayPrompt {
        prompt: PromptSpec::Audio("prompts/closed.wav".into()),
        voice: Some("en-us".into())
    }));
    assert_eq!(d.log[d.log.len() - 2], Effect::Disconnect);
    assert_eq!(r.outcome, Some(FlowOutcome::Disconnected));
}

#[test]
fn webhook_error_and_a_non_gold_answer_both_reach_the_menu() {
    let cases: [(WebhookResult, &[&str]); 3] = [
        (
            WebhookResult::Error("HTTP 500".into()),
            &["lookup", "menu", "q-sales", "hours", "to-queue"],
        ),
        (
            WebhookResult::Ok(json!({"tier": "silver"})),
            &["lookup", "is-vip", "menu", "q-sales", "hours", "to-queue"],
        ),
        // A nested value is not a STRING_MAP: the response is rejected like an error.
        (
            WebhookResult::Ok(json!({"tier": {"nested": 1}})),
            &["lookup", "menu", "q-sales", "hours", "to-queue"],
        ),
    ];
    for (webhook, expected) in cases {
        let mut d = Driver::new(
            tuesday_morning(),
            vec![Caller::Press("1")],
            webhook.clone(),
            None,
        );
        d.run();
        assert_eq!(&d.path()[4..], expected, "{webhook:?}");
        assert!(!d.interp.record().attributes.contains_key("vip"));
        assert_eq!(
            d.interp.record().outcome,
            Some(FlowOutcome::Queued {
                queue: "sales".into()
            })
        );
    }
}

#[test]
fn full_queue_plays_the_busy_message() {
    let mut d = Driver::new(
        tuesday_morning(),
        vec![Caller::Press("1")],
        WebhookResult::Ok(json!({})),
        Some(0),
    );
    d.run();
    assert_eq!(&d.path()[d.path().len() - 3..], ["to-queue", "busy", "bye"]);
    assert_eq!(
        d.interp.record().path[d.path().len() - 3].result,
        "Error:QueueAtCapacity"
    );
}

#[test]
fn three_silent_menus_end_the_call() {
    let mut d = Driver::new(
        tuesday_morning(),
        vec![Caller::Silence, Caller::Silence, Caller::Silence],
        WebhookResult::Ok(json!({})),
        None,
    );
    d.run();
    assert_eq!(
        &d.path()[5..],
        [
            "is-vip", "menu", "retry", "sorry", "menu", "retry", "sorry", "menu", "retry", "bye"
        ]
    );
    assert_eq!(d.interp.record().path[13].result, "Condition:DoneLooping");
}

#[test]
fn caller_hangup_ends_the_flow_anywhere() {
    let compiled =
        flow::compile(&flow::FlowDocument::from_json(FLOW).unwrap(), Mode::Strict).unwrap();
    let mut i = Interpreter::new(Arc::new(compiled), 0);
    i.step(
        Input::Started(ContactInfo {
            contact_id: "x".into(),
            ..ContactInfo::default()
        }),
        0,
    );
    assert_eq!(
        i.step(Input::PromptFinished, 1),
        vec![],
        "not waiting for a prompt: ignored"
    );
    assert_eq!(
        i.step(Input::Hangup, 2),
        vec![Effect::Ended(FlowOutcome::CallerHungUp)]
    );
    assert!(i.is_done());
    assert_eq!(i.record().path.last().unwrap().result, "CallerHungUp");
    assert_eq!(
        i.step(Input::WebhookResult(WebhookResult::Timeout), 3),
        vec![]
    );
}
