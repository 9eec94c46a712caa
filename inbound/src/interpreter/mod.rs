//! The sans-IO flow interpreter (str0m style): [`Interpreter::step`] takes an [`Input`] and the
//! current time (epoch ms) and returns the [`Effect`]s for the driver to carry out. It never
//! touches a socket, a timer or the clock; all waiting is the driver's, so the same interpreter
//! runs under the SIP driver, in tests with scripted inputs, and in a simulator.

mod io;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde_json::{Map, Value};

pub use io::{Effect, Input, PromptSpec, QueueResult, TransferResult, WebhookResult};

use crate::contact::{ContactRecord, FlowOutcome, MAX_ATTRIBUTE_BYTES, PathStep};
use crate::flow::action::is_e164;
use crate::flow::{CompiledFlow, Dyn, Kind, Lookup, Prompt, ResponseType};

/// Actions run without waiting on the driver before the interpreter declares a runaway loop.
pub const MAX_ACTIONS_PER_STEP: usize = 1_000;

/// What the interpreter is waiting for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waiting {
    Start,
    Prompt,
    Digits,
    Webhook,
    Hours,
    Queue,
    Transfer,
    Callback,
    Flow,
    Done,
}

/// How an action finished.
enum Branch<'a> {
    Next,
    Condition(usize, &'a str),
    Error(&'a str),
}

/// One contact's run through one flow.
#[derive(Debug)]
pub struct Interpreter {
    flow: Arc<CompiledFlow>,
    seed: u64,
    record: ContactRecord,
    current: usize,
    waiting: Waiting,
    attempts: u32,
    loops: HashMap<usize, u32>,
}

impl Interpreter {
    /// `seed` makes `DistributeByPercentage` deterministic per contact (with the contact id).
    pub fn new(flow: Arc<CompiledFlow>, seed: u64) -> Self {
        let current = flow.start;
        Self {
            flow,
            seed,
            record: ContactRecord::default(),
            current,
            waiting: Waiting::Start,
            attempts: 0,
            loops: HashMap::new(),
        }
    }

    pub fn record(&self) -> &ContactRecord {
        &self.record
    }

    pub fn into_record(self) -> ContactRecord {
        self.record
    }

    pub fn waiting(&self) -> Waiting {
        self.waiting
    }

    pub fn is_done(&self) -> bool {
        self.waiting == Waiting::Done
    }

    /// Feeds one input. An input the interpreter is not waiting for is ignored (no effects),
    /// except `Hangup`, which always ends the flow.
    pub fn step(&mut self, input: Input, now: i64) -> Vec<Effect> {
        let mut out = Vec::new();
        if self.waiting == Waiting::Done {
            return out;
        }
        if input == Input::Hangup {
            self.finish_path("CallerHungUp");
            self.end(FlowOutcome::CallerHungUp, now, &mut out);
            return out;
        }
        let flow = Arc::clone(&self.flow);
        let action = &flow.actions[self.current];
        let branch = match (self.waiting, input, &action.kind) {
            (Waiting::Start, Input::Started(contact), _) => {
                self.record = ContactRecord::new(contact, now);
                self.run(self.current, now, &mut out);
                return out;
            }
            (Waiting::Prompt, Input::PromptFinished, _) => Branch::Next,
            (Waiting::Prompt, Input::PromptFailed, _) => Branch::Error("NoMatchingError"),
            (
                Waiting::Digits,
                Input::DigitsCollected(d),
                Kind::GetParticipantInput { store, retries, .. },
            ) => {
                if *store {
                    self.record.stored_input = Some(d);
                    Branch::Next
                } else if let Some(c) = action
                    .conditions
                    .iter()
                    .find(|c| c.operator.holds(&d, &c.operand))
                {
                    Branch::Condition(c.target, &c.operand)
                } else if self.attempts < *retries {
                    return self.retry_input(now);
                } else {
                    Branch::Error("NoMatchingCondition")
                }
            }
            (
                Waiting::Digits,
                Input::InputTimeout,
                Kind::GetParticipantInput { store, retries, .. },
            ) => {
                if self.attempts < *retries {
                    return self.retry_input(now);
                }
                if *store {
                    self.record.stored_input = Some("Timeout".into());
                }
                Branch::Error("InputTimeLimitExceeded")
            }
            (
                Waiting::Webhook,
                Input::WebhookResult(result),
                Kind::InvokeLambdaFunction { response, .. },
            ) => match accept_response(result, *response) {
                Ok(external) => {
                    self.record.external = external;
                    Branch::Next
                }
                Err(_) => {
                    self.record.external = Map::new();
                    Branch::Error("NoMatchingError")
                }
            },
            (Waiting::Hours, Input::HoursChecked { open }, _) => {
                let want = if open { "True" } else { "False" };
                match action.conditions.iter().find(|c| c.operand == want) {
                    Some(c) => Branch::Condition(c.target, &c.operand),
                    None => Branch::Error("NoMatchingError"),
                }
            }
            (Waiting::Hours, Input::HoursUnknown, _) => Branch::Error("NoMatchingError"),
            (Waiting::Queue, Input::QueueResult(r), _) => match r {
                QueueResult::Queued => {
                    self.finish_path("Success");
                    let queue = self.record.target_queue.clone().unwrap_or_default();
                    self.end(FlowOutcome::Queued { queue }, now, &mut out);
                    return out;
                }
                QueueResult::AtCapacity => Branch::Error("QueueAtCapacity"),
                QueueResult::Error => Branch::Error("NoMatchingError"),
            },
            (Waiting::Transfer, Input::TransferResult(r), kind) => {
                let continue_flow = matches!(
                    kind,
                    Kind::TransferParticipantToThirdParty {
                        continue_flow: true,
                        ..
                    }
                );
                match r {
                    TransferResult::Connected if continue_flow => return out,
                    TransferResult::Connected => {
                        self.finish_path("Success");
                        let outcome = match kind {
                            Kind::TransferToLegacy { pool, .. } => {
                                FlowOutcome::TransferredToLegacy { pool: pool.clone() }
                            }
                            _ => FlowOutcome::TransferredToNumber {
                                number: self.last_transfer_number(kind),
                            },
                        };
                        self.end(outcome, now, &mut out);
                        return out;
                    }
                    TransferResult::Ended if continue_flow => Branch::Next,
                    TransferResult::Ended => return out,
                    TransferResult::Failed => Branch::Error("CallFailed"),
                    TransferResult::Timeout => Branch::Error("ConnectionTimeLimitExceeded"),
                    TransferResult::NoNumberAvailable => Branch::Error("NoNumberAvailable"),
                }
            }
            (Waiting::Flow, Input::FlowNotFound, _) => Branch::Error("NoMatchingError"),
            (Waiting::Callback, Input::CallbackResult { ok }, _) => {
                if ok {
                    Branch::Next
                } else {
                    Branch::Error("NoMatchingError")
                }
            }
            _ => return out,
        };
        let target = self.take(branch, now, &mut out);
        if let Some(next) = target {
            self.run(next, now, &mut out);
        }
        out
    }

    /// Continues the contact in `flow` after `Effect::TransferToFlow`: the record (attributes,
    /// path, routing choices) carries over; loop counters start afresh.
    pub fn continue_in(&mut self, flow: Arc<CompiledFlow>, now: i64) -> Vec<Effect> {
        let mut out = Vec::new();
        if self.waiting != Waiting::Flow {
            return out;
        }
        self.finish_path("Success");
        self.loops.clear();
        self.current = flow.start;
        self.flow = flow;
        self.run(self.current, now, &mut out);
        out
    }

    fn last_transfer_number(&self, kind: &Kind) -> String {
        match kind {
            Kind::TransferParticipantToThirdParty { number, .. } => number.resolve(&self.record),
            _ => String::new(),
        }
    }

    fn retry_input(&mut self, now: i64) -> Vec<Effect> {
        self.attempts += 1;
        let mut out = Vec::new();
        self.finish_path("Retry");
        self.run(self.current, now, &mut out);
        out
    }

    /// Closes the current path step with `result`, then resolves the branch to a target; a
    /// branch with no transition ends the flow with an error.
    fn take(&mut self, branch: Branch<'_>, now: i64, out: &mut Vec<Effect>) -> Option<usize> {
        let flow = Arc::clone(&self.flow);
        let action = &flow.actions[self.current];
        let (result, target) = match branch {
            Branch::Next => ("Success".to_string(), action.next),
            Branch::Condition(t, operand) => (format!("Condition:{operand}"), Some(t)),
            Branch::Error(e) => (format!("Error:{e}"), action.error_target(e)),
        };
        self.finish_path(&result);
        if target.is_none() {
            let reason = format!("no transition for {result}");
            let id = action.id.clone();
            out.push(Effect::Disconnect);
            self.end(FlowOutcome::Error { action: id, reason }, now, out);
        }
        target
    }

    fn finish_path(&mut self, result: &str) {
        if let Some(step) = self.record.path.last_mut()
            && step.result.is_empty()
        {
            step.result = result.to_string();
        }
    }

    fn end(&mut self, outcome: FlowOutcome, now: i64, out: &mut Vec<Effect>) {
        self.waiting = Waiting::Done;
        self.record.ended_at_ms = Some(now);
        self.record.outcome = Some(outcome.clone());
        out.push(Effect::Ended(outcome));
    }

    fn prompt(&self, p: &Prompt) -> PromptSpec {
        match p {
            Prompt::Text(t) => PromptSpec::Text(t.resolve(&self.record)),
            Prompt::Ssml(t) => PromptSpec::Ssml(t.resolve(&self.record)),
            Prompt::PromptId(t) | Prompt::Media(t) => PromptSpec::Audio(t.resolve(&self.record)),
        }
    }

    fn resolve_map(&self, pairs: &[(String, Dyn)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.clone(), v.resolve(&self.record)))
            .collect()
    }

    /// Runs actions from `from` until one waits on the driver or the flow ends.
    fn run(&mut self, from: usize, now: i64, out: &mut Vec<Effect>) {
        let flow = Arc::clone(&self.flow);
        let mut at = from;
        for _ in 0..MAX_ACTIONS_PER_STEP {
            if at != self.current {
                self.attempts = 0;
            }
            self.current = at;
            let action = &flow.actions[at];
            self.record.path.push(PathStep {
                at_ms: now,
                action: action.id.clone(),
                action_type: action.action_type.clone(),
                result: String::new(),
            });
            let branch = match &action.kind {
                Kind::MessageParticipant { prompt } => {
                    out.push(Effect::PlayPrompt {
                        prompt: self.prompt(prompt),
                        voice: self.record.voice.clone(),
                    });
                    self.waiting = Waiting::Prompt;
                    return;
                }
                Kind::GetParticipantInput {
                    prompt,
                    timeout_ms,
                    max_digits,
                    terminator,
                    ..
                } => {
                    out.push(Effect::CollectDigits {
                        prompt: self.prompt(prompt),
                        voice: self.record.voice.clone(),
                        max_digits: *max_digits,
                        timeout_ms: *timeout_ms,
                        terminator: *terminator,
                    });
                    self.waiting = Waiting::Digits;
                    return;
                }
                Kind::UpdateContactAttributes { attributes } => {
                    let mut updated = self.record.attributes.clone();
                    updated.extend(self.resolve_map(attributes));
                    if ContactRecord::attribute_bytes(&updated) > MAX_ATTRIBUTE_BYTES {
                        Branch::Error("NoMatchingError")
                    } else {
                        self.record.attributes = updated;
                        Branch::Next
                    }
                }
                Kind::Compare { value } => {
                    let v = value.resolve(&self.record);
                    match action
                        .conditions
                        .iter()
                        .find(|c| c.operator.holds(&v, &c.operand))
                    {
                        Some(c) => Branch::Condition(c.target, &c.operand),
                        None => Branch::Error("NoMatchingCondition"),
                    }
                }
                Kind::CheckHoursOfOperation { hours } => {
                    out.push(Effect::CheckHours {
                        hours_id: hours.as_ref().map(|h| h.resolve(&self.record)),
                        queue: self.record.target_queue.clone(),
                    });
                    self.waiting = Waiting::Hours;
                    return;
                }
                Kind::InvokeLambdaFunction {
                    function,
                    timeout_ms,
                    synchronous,
                    parameters,
                    ..
                } => {
                    let params: Map<String, Value> = self
                        .resolve_map(parameters)
                        .into_iter()
                        .map(|(k, v)| (k, Value::String(v)))
                        .collect();
                    out.push(Effect::InvokeWebhook {
                        function: function.resolve(&self.record),
                        payload: self.record.webhook_event(params),
                        timeout_ms: *timeout_ms,
                        wait: *synchronous,
                    });
                    if *synchronous {
                        self.waiting = Waiting::Webhook;
                        return;
                    }
                    Branch::Next
                }
                Kind::UpdateContactTargetQueue { queue } => {
                    let q = queue.resolve(&self.record);
                    if q.is_empty() {
                        Branch::Error("NoMatchingError")
                    } else {
                        self.record.target_queue = Some(q);
                        Branch::Next
                    }
                }
                Kind::UpdateContactRoutingBehavior {
                    priority,
                    age_adjustment_s,
                } => {
                    if priority.is_some() {
                        self.record.queue_priority = *priority;
                    }
                    if age_adjustment_s.is_some() {
                        self.record.queue_time_adjustment_s = *age_adjustment_s;
                    }
                    Branch::Next
                }
                Kind::UpdateRoutingCriteria { steps } => {
                    self.record.routing_criteria = steps.clone();
                    Branch::Next
                }
                Kind::TransferContactToQueue => match &self.record.target_queue {
                    None => Branch::Error("NoMatchingError"),
                    Some(q) => {
                        out.push(Effect::EnqueueContact {
                            queue: q.clone(),
                            priority: self.record.queue_priority,
                            time_adjustment_s: self.record.queue_time_adjustment_s,
                            criteria: self.record.routing_criteria.clone(),
                        });
                        self.waiting = Waiting::Queue;
                        return;
                    }
                },
                Kind::TransferParticipantToThirdParty {
                    number,
                    timeout_s,
                    continue_flow,
                    dtmf,
                    caller_id_number,
                } => {
                    let n = number.resolve(&self.record);
                    if !is_e164(&n) {
                        Branch::Error("CallFailed")
                    } else {
                        out.push(Effect::TransferToNumber {
                            number: n,
                            timeout_s: *timeout_s,
                            dtmf: dtmf.clone(),
                            caller_id: caller_id_number.as_ref().map(|c| c.resolve(&self.record)),
                            continue_flow: *continue_flow,
                        });
                        self.waiting = Waiting::Transfer;
                        return;
                    }
                }
                Kind::TransferToLegacy { pool, data } => {
                    out.push(Effect::TransferToLegacy {
                        pool: pool.clone(),
                        data: self.resolve_map(data),
                    });
                    self.waiting = Waiting::Transfer;
                    return;
                }
                Kind::TransferToFlow { flow } => {
                    out.push(Effect::TransferToFlow {
                        flow: flow.resolve(&self.record),
                    });
                    self.waiting = Waiting::Flow;
                    return;
                }
                Kind::DistributeByPercentage => {
                    let roll = percent_roll(self.seed, &self.record.contact.contact_id, &action.id);
                    let hit = action
                        .conditions
                        .iter()
                        .find(|c| c.operand.parse::<u32>().is_ok_and(|p| roll < p));
                    match hit {
                        Some(c) => Branch::Condition(c.target, &c.operand),
                        // The remainder: Connect's default branch is NoMatchingCondition.
                        None if action.error_target("NoMatchingCondition").is_none()
                            && action.next.is_some() =>
                        {
                            Branch::Next
                        }
                        None => Branch::Error("NoMatchingCondition"),
                    }
                }
                Kind::Loop { count } => {
                    let done = self.loops.get(&at).copied().unwrap_or(0);
                    let want = if done < *count {
                        self.loops.insert(at, done + 1);
                        "ContinueLooping"
                    } else {
                        self.loops.remove(&at);
                        "DoneLooping"
                    };
                    match action.conditions.iter().find(|c| c.operand == want) {
                        Some(c) => Branch::Condition(c.target, &c.operand),
                        None => Branch::Error("NoMatchingError"),
                    }
                }
                Kind::UpdateContactRecordingBehavior { agent, customer } => {
                    self.record.recording = crate::contact::Recording {
                        agent: *agent,
                        customer: *customer,
                    };
                    out.push(Effect::SetRecording {
                        agent: *agent,
                        customer: *customer,
                    });
                    Branch::Next
                }
                Kind::UpdateContactCallbackNumber { number } => match self.record.lookup(number) {
                    Some(n) if is_e164(&n) => {
                        self.record.callback_number = Some(n);
                        Branch::Next
                    }
                    _ => Branch::Error("InvalidCallbackNumber"),
                },
                Kind::CreateCallbackContact {
                    queue,
                    delay_s,
                    attempts,
                    retry_delay_s,
                } => {
                    let queue = queue
                        .as_ref()
                        .map(|q| q.resolve(&self.record))
                        .or_else(|| self.record.target_queue.clone());
                    let number = self.record.callback_number.clone().filter(|n| is_e164(n));
                    match (number, queue.filter(|q| !q.is_empty())) {
                        (Some(number), Some(queue)) => {
                            out.push(Effect::ScheduleCallback {
                                number,
                                queue,
                                delay_s: *delay_s,
                                attempts: *attempts,
                                retry_delay_s: *retry_delay_s,
                            });
                            self.waiting = Waiting::Callback;
                            return;
                        }
                        _ => Branch::Error("NoMatchingError"),
                    }
                }
                Kind::UpdateContactTextToSpeechVoice { voice } => {
                    self.record.voice = Some(voice.clone());
                    Branch::Next
                }
                Kind::UpdateFlowLoggingBehavior { enabled } => {
                    self.record.flow_logging = *enabled;
                    Branch::Next
                }
                Kind::DisconnectParticipant => {
                    self.finish_path("Success");
                    out.push(Effect::Disconnect);
                    self.end(FlowOutcome::Disconnected, now, out);
                    return;
                }
                Kind::Unsupported { .. } => Branch::Error("NoMatchingError"),
            };
            match self.take(branch, now, out) {
                Some(next) => at = next,
                None => return,
            }
        }
        let id = flow.actions[at].id.clone();
        out.push(Effect::Disconnect);
        self.end(
            FlowOutcome::Error {
                action: id,
                reason: format!("more than {MAX_ACTIONS_PER_STEP} actions without waiting"),
            },
            now,
            out,
        );
    }
}

/// Checks a webhook response against the expected shape and returns the new `$.External`.
fn accept_response(
    result: WebhookResult,
    response: ResponseType,
) -> Result<Map<String, Value>, String> {
    let body = match result {
        WebhookResult::Ok(body) => body,
        WebhookResult::Timeout => return Err("timeout".into()),
        WebhookResult::Error(e) => return Err(e),
    };
    let Value::Object(map) = body else {
        return Err("response is not a JSON object".into());
    };
    match response {
        ResponseType::Json => Ok(map),
        ResponseType::StringMap => map
            .into_iter()
            .map(|(k, v)| match v {
                Value::String(_) => Ok((k, v)),
                Value::Number(n) => Ok((k, Value::String(n.to_string()))),
                Value::Bool(b) => Ok((k, Value::String(b.to_string()))),
                _ => Err(format!("{k}: a STRING_MAP response holds only flat values")),
            })
            .collect(),
    }
}

/// A number in 0..100 fixed by (seed, contact, action): FNV-1a, then a multiply-shift mix.
pub fn percent_roll(seed: u64, contact_id: &str, action_id: &str) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ seed;
    for b in contact_id.bytes().chain([0]).chain(action_id.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    (h % 100) as u32
}
