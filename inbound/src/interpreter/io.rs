//! The interpreter's vocabulary with its driver: [`Input`]s the driver reports (the contact
//! started, a prompt finished, digits arrived, a webhook answered...) and [`Effect`]s the
//! interpreter asks the driver to carry out (play, collect digits, call a webhook, enqueue,
//! transfer, disconnect...).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::contact::{ContactInfo, FlowOutcome};

/// What the driver tells the interpreter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Input {
    /// The contact reached this flow.
    Started(ContactInfo),
    PromptFinished,
    /// The prompt could not be played (missing file, TTS failure).
    PromptFailed,
    /// Digits the caller entered, without the terminator.
    DigitsCollected(String),
    InputTimeout,
    WebhookResult(WebhookResult),
    HoursChecked {
        open: bool,
    },
    /// The hours (or the queue's hours) could not be found.
    HoursUnknown,
    QueueResult(QueueResult),
    TransferResult(TransferResult),
    CallbackResult {
        ok: bool,
    },
    /// The flow named by `Effect::TransferToFlow` does not exist (when it does, the driver calls
    /// `Interpreter::continue_in` instead).
    FlowNotFound,
    /// The caller hung up.
    Hangup,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum WebhookResult {
    /// The response body (a JSON object).
    Ok(Value),
    Timeout,
    Error(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum QueueResult {
    Queued,
    AtCapacity,
    Error,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TransferResult {
    /// The far end answered and the caller is connected to it.
    Connected,
    /// The third-party leg ended and the caller is back in the flow (`ContinueFlowExecution`).
    Ended,
    Failed,
    Timeout,
    /// Legacy transfer: the bridge's pool had no free number.
    NoNumberAvailable,
}

/// What to play.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PromptSpec {
    /// Text for the TTS engine, references already resolved.
    Text(String),
    Ssml(String),
    /// A stored prompt id or an audio URI.
    Audio(String),
}

/// What the interpreter asks the driver to do. Effects come in order; at most the last one of a
/// step is awaited (the interpreter then waits for the matching [`Input`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Effect {
    /// Play, then report `PromptFinished` (or `PromptFailed`).
    PlayPrompt {
        prompt: PromptSpec,
        voice: Option<String>,
    },
    /// Play while listening for DTMF (barge-in), then report `DigitsCollected` or `InputTimeout`.
    /// Collection stops at `max_digits` or the terminator.
    CollectDigits {
        prompt: PromptSpec,
        voice: Option<String>,
        max_digits: u32,
        timeout_ms: i64,
        terminator: Option<char>,
    },
    /// POST `payload` as JSON to the function (URL or a name the driver maps to one). When `wait`
    /// is false the call is fire-and-forget and no result is expected.
    InvokeWebhook {
        function: String,
        payload: Value,
        timeout_ms: i64,
        wait: bool,
    },
    /// Check hours `hours_id`, or those of `queue` when no id is given; report `HoursChecked`.
    CheckHours {
        hours_id: Option<String>,
        queue: Option<String>,
    },
    /// Hand the contact to the ACD; report `QueueResult`.
    EnqueueContact {
        queue: String,
        priority: Option<i64>,
        time_adjustment_s: Option<i64>,
        criteria: Vec<crate::acd::CriteriaStep>,
    },
    TransferToNumber {
        number: String,
        timeout_s: i64,
        dtmf: Option<String>,
        caller_id: Option<String>,
        continue_flow: bool,
    },
    /// Transfer through the migration bridge (lease a DNIS from `pool`, pass `data`).
    TransferToLegacy {
        pool: String,
        data: BTreeMap<String, String>,
    },
    ScheduleCallback {
        number: String,
        queue: String,
        delay_s: i64,
        attempts: i64,
        retry_delay_s: i64,
    },
    SetRecording {
        agent: bool,
        customer: bool,
    },
    /// Load flow `flow` and call `Interpreter::continue_in` with it (or report `FlowNotFound`).
    TransferToFlow {
        flow: String,
    },
    Disconnect,
    /// The flow is done with the contact (always the last effect of a contact).
    Ended(FlowOutcome),
}

impl Effect {
    /// True when the interpreter waits for an input after this effect.
    pub fn is_awaited(&self) -> bool {
        match self {
            Effect::InvokeWebhook { wait, .. } => *wait,
            Effect::PlayPrompt { .. }
            | Effect::CollectDigits { .. }
            | Effect::CheckHours { .. }
            | Effect::EnqueueContact { .. }
            | Effect::TransferToNumber { .. }
            | Effect::TransferToLegacy { .. }
            | Effect::ScheduleCallback { .. }
            | Effect::TransferToFlow { .. } => true,
            Effect::SetRecording { .. } | Effect::Disconnect | Effect::Ended(_) => false,
        }
    }
}
