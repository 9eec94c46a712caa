//! Typed actions: the supported `Type`s with their `Parameters` parsed and checked (static vs
//! dynamic, ranges), and what each action's transitions must look like. Parameter names and
//! error types follow the Amazon Connect flow language; the one Dialbridge-only action is
//! `TransferToLegacyPlatform` (a transfer through the migration bridge's DNIS pool).

use serde_json::{Map, Value};

use super::value::{BadPath, DataPath, Dyn};
use crate::acd::CriteriaStep;

/// The Dialbridge extension action type: transfer to the legacy platform through the bridge.
pub const TRANSFER_TO_LEGACY: &str = "TransferToLegacyPlatform";

/// Amazon Connect action types this engine knows of but does not run. An imported flow using one
/// is rejected with the type named (see [`super::FlowError::UnsupportedAction`]).
pub const KNOWN_UNSUPPORTED: &[&str] = &[
    "CheckMetricData",
    "CheckOutboundCallStatus",
    "CheckVoiceId",
    "CompleteOutboundCall",
    "ConnectParticipantWithLexBot",
    "CreateCase",
    "CreateTask",
    "CreateWisdomSession",
    "DequeueContactAndTransferToQueue",
    "EndFlowExecution",
    "EndFlowModuleExecution",
    "GetCase",
    "GetMetricData",
    "InvokeExternalResource",
    "InvokeFlowModule",
    "MessageParticipantIteratively",
    "ResumeContact",
    "ShowView",
    "StartOutboundChatContact",
    "StartVoiceIdStream",
    "TagContact",
    "TransferContactToAgent",
    "UnTagContact",
    "UpdateCase",
    "UpdateContactData",
    "UpdateContactEventHooks",
    "UpdateContactMediaProcessing",
    "UpdateContactMediaStreamingBehavior",
    "UpdateContactRecordingAndAnalyticsBehavior",
    "UpdateFlowAttributes",
    "UpdatePreviousContactParticipantState",
    "Wait",
];

/// What a prompt plays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prompt {
    /// Plain text for the TTS engine.
    Text(Dyn),
    Ssml(Dyn),
    /// A stored prompt (audio file) by id.
    PromptId(Dyn),
    /// An audio file by URI.
    Media(Dyn),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseType {
    StringMap,
    Json,
}

/// A supported action with its parameters parsed.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    MessageParticipant {
        prompt: Prompt,
    },
    GetParticipantInput {
        prompt: Prompt,
        timeout_ms: i64,
        /// True: multi-digit input stored in `$.StoredCustomerInput`; false: one-digit menu.
        store: bool,
        max_digits: u32,
        terminator: Option<char>,
        /// Dialbridge extension `Retries`: replays on timeout or no match before branching.
        retries: u32,
    },
    UpdateContactAttributes {
        attributes: Vec<(String, Dyn)>,
    },
    Compare {
        value: Dyn,
    },
    CheckHoursOfOperation {
        hours: Option<Dyn>,
    },
    InvokeLambdaFunction {
        function: Dyn,
        timeout_ms: i64,
        synchronous: bool,
        parameters: Vec<(String, Dyn)>,
        response: ResponseType,
    },
    UpdateContactTargetQueue {
        queue: Dyn,
    },
    UpdateContactRoutingBehavior {
        priority: Option<i64>,
        age_adjustment_s: Option<i64>,
    },
    /// Skills the contact needs, in steps that relax over time; skill keys are `Name:Value`.
    UpdateRoutingCriteria {
        steps: Vec<CriteriaStep>,
    },
    TransferContactToQueue,
    TransferParticipantToThirdParty {
        number: Dyn,
        timeout_s: i64,
        continue_flow: bool,
        dtmf: Option<String>,
        caller_id_number: Option<Dyn>,
    },
    TransferToLegacy {
        pool: String,
        data: Vec<(String, Dyn)>,
    },
    /// Continue the contact in another flow (by id or name).
    TransferToFlow {
        flow: Dyn,
    },
    DistributeByPercentage,
    Loop {
        count: u32,
    },
    UpdateContactRecordingBehavior {
        agent: bool,
        customer: bool,
    },
    UpdateContactCallbackNumber {
        number: DataPath,
    },
    CreateCallbackContact {
        queue: Option<Dyn>,
        delay_s: i64,
        attempts: i64,
        retry_delay_s: i64,
    },
    UpdateContactTextToSpeechVoice {
        voice: String,
    },
    UpdateFlowLoggingBehavior {
        enabled: bool,
    },
    DisconnectParticipant,
    /// Only in a leniently imported flow: a type this engine does not run. At run time it takes
    /// its `NoMatchingError` branch, or ends the flow with an error.
    Unsupported {
        action_type: String,
    },
}

/// What conditions an action may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConditionRule {
    None,
    /// Any operator from [`Operator`].
    Any,
    /// `Equals` on one DTMF key.
    Digit,
    /// `Equals True` and `Equals False`, both present.
    HoursBool,
    /// `Equals ContinueLooping` and `Equals DoneLooping`, both present.
    Loop,
    /// `NumberLessThan` a cumulative percentage 1..=100.
    Percent,
}

/// A problem with one parameter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    #[error("missing parameter {0}")]
    Missing(&'static str),
    #[error("parameter {name}: {reason}")]
    Invalid { name: &'static str, reason: String },
    #[error("parameter {0} must be static")]
    MustBeStatic(&'static str),
    #[error("parameter {0} must be a single JSONPath reference")]
    MustBePath(&'static str),
}

type P = Map<String, Value>;

fn invalid(name: &'static str, reason: impl Into<String>) -> ParamError {
    ParamError::Invalid {
        name,
        reason: reason.into(),
    }
}

fn bad_path(name: &'static str) -> impl Fn(BadPath) -> ParamError {
    move |e| invalid(name, e.to_string())
}

fn text(p: &P, name: &'static str) -> Result<Option<String>, ParamError> {
    match p.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(Value::Bool(b)) => Ok(Some(if *b { "True" } else { "False" }.to_string())),
        Some(_) => Err(invalid(name, "expected text")),
    }
}

fn req_text(p: &P, name: &'static str) -> Result<String, ParamError> {
    text(p, name)?.ok_or(ParamError::Missing(name))
}

/// A static integer parameter, checked against a range.
fn static_int(p: &P, name: &'static str, lo: i64, hi: i64) -> Result<Option<i64>, ParamError> {
    let Some(t) = text(p, name)? else {
        return Ok(None);
    };
    if t.starts_with("$.") {
        return Err(ParamError::MustBeStatic(name));
    }
    let n: i64 = t
        .trim()
        .parse()
        .map_err(|_| invalid(name, format!("{t:?} is not an integer")))?;
    if n < lo || n > hi {
        return Err(invalid(name, format!("{n} is outside {lo}..={hi}")));
    }
    Ok(Some(n))
}

fn static_bool(p: &P, name: &'static str) -> Result<Option<bool>, ParamError> {
    match text(p, name)?.as_deref() {
        None => Ok(None),
        Some(t) if t.eq_ignore_ascii_case("true") => Ok(Some(true)),
        Some(t) if t.eq_ignore_ascii_case("false") => Ok(Some(false)),
        Some(t) => Err(invalid(name, format!("{t:?} is not True or False"))),
    }
}

fn dyn_value(p: &P, name: &'static str) -> Result<Option<Dyn>, ParamError> {
    text(p, name)?
        .map(|t| Dyn::parse_value(&t).map_err(bad_path(name)))
        .transpose()
}

fn object<'a>(p: &'a P, name: &'static str) -> Result<Option<&'a P>, ParamError> {
    match p.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m)),
        Some(_) => Err(invalid(name, "expected an object")),
    }
}

fn dyn_map(m: &P, name: &'static str) -> Result<Vec<(String, Dyn)>, ParamError> {
    m.iter()
        .map(|(k, v)| {
            if k.is_empty()
                || !k
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(invalid(
                    name,
                    format!("key {k:?} must be letters, digits, '-' or '_'"),
                ));
            }
            let t = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => return Err(invalid(name, format!("value of {k:?} must be text"))),
            };
            Ok((k.clone(), Dyn::parse_template(&t).map_err(bad_path(name))?))
        })
        .collect()
}

fn prompt(p: &P) -> Result<Prompt, ParamError> {
    let template = |name| -> Result<Option<Dyn>, ParamError> {
        text(p, name)?
            .map(|t| Dyn::parse_template(&t).map_err(bad_path(name)))
            .transpose()
    };
    if let Some(t) = template("Text")? {
        return Ok(Prompt::Text(t));
    }
    if let Some(t) = template("SSML")? {
        return Ok(Prompt::Ssml(t));
    }
    if let Some(t) = dyn_value(p, "PromptId")? {
        return Ok(Prompt::PromptId(t));
    }
    if let Some(media) = object(p, "Media")? {
        let uri = text(media, "Uri")?.ok_or(ParamError::Missing("Media.Uri"))?;
        return Ok(Prompt::Media(
            Dyn::parse_value(&uri).map_err(bad_path("Media.Uri"))?,
        ));
    }
    Err(ParamError::Missing("Text, SSML, PromptId or Media"))
}

/// Parses the parameters of a supported action type; `Ok(None)` when the type is not supported.
pub fn parse(action_type: &str, p: &P) -> Result<Option<Kind>, ParamError> {
    let kind = match action_type {
        "MessageParticipant" => Kind::MessageParticipant { prompt: prompt(p)? },
        "GetParticipantInput" => {
            let store = static_bool(p, "StoreInput")?.unwrap_or(false);
            let timeout_s = static_int(p, "InputTimeLimitSeconds", 1, 180)?.unwrap_or(5);
            let dtmf = object(p, "DTMFConfiguration")?;
            let terminator = match dtmf
                .map(|d| text(d, "InputTerminationSequence"))
                .transpose()?
                .flatten()
            {
                None => store.then_some('#'),
                Some(t) => {
                    let mut chars = t.chars();
                    match (chars.next(), chars.next()) {
                        (Some(c), None) if is_dtmf(c) => Some(c),
                        _ => {
                            return Err(invalid(
                                "DTMFConfiguration.InputTerminationSequence",
                                "must be one DTMF key",
                            ));
                        }
                    }
                }
            };
            let max_digits =
                match object(p, "InputValidation")?.and_then(|v| v.get("CustomValidation")) {
                    Some(Value::Object(cv)) => {
                        static_int(cv, "MaximumLength", 1, 20)?.unwrap_or(20) as u32
                    }
                    _ if store => 20,
                    _ => 1,
                };
            Kind::GetParticipantInput {
                prompt: prompt(p)?,
                timeout_ms: timeout_s * 1000,
                store,
                max_digits,
                terminator,
                retries: static_int(p, "Retries", 0, 5)?.unwrap_or(0) as u32,
            }
        }
        "UpdateContactAttributes" => {
            let attrs = object(p, "Attributes")?.ok_or(ParamError::Missing("Attributes"))?;
            if let Some(t) = text(p, "TargetContact")?
                && t != "Current"
            {
                return Err(invalid(
                    "TargetContact",
                    format!("{t:?}: only Current is supported"),
                ));
            }
            Kind::UpdateContactAttributes {
                attributes: dyn_map(attrs, "Attributes")?,
            }
        }
        "Compare" => {
            let v = req_text(p, "ComparisonValue")?;
            if !v.starts_with("$.") {
                return Err(ParamError::MustBePath("ComparisonValue"));
            }
            Kind::Compare {
                value: Dyn::parse_value(&v).map_err(bad_path("ComparisonValue"))?,
            }
        }
        "CheckHoursOfOperation" => Kind::CheckHoursOfOperation {
            hours: dyn_value(p, "HoursOfOperationId")?,
        },
        "InvokeLambdaFunction" => {
            let function = dyn_value(p, "LambdaFunctionARN")?
                .ok_or(ParamError::Missing("LambdaFunctionARN"))?;
            let timeout_s = static_int(p, "InvocationTimeLimitSeconds", 1, 8)?.unwrap_or(3);
            let synchronous = match text(p, "InvocationType")?.as_deref() {
                None | Some("SYNCHRONOUS") => true,
                Some("ASYNCHRONOUS") => false,
                Some(t) => return Err(invalid("InvocationType", format!("{t:?}"))),
            };
            let response = match object(p, "ResponseValidation")?
                .map(|r| text(r, "ResponseType"))
                .transpose()?
                .flatten()
                .as_deref()
            {
                None | Some("STRING_MAP") => ResponseType::StringMap,
                Some("JSON") => ResponseType::Json,
                Some(t) => {
                    return Err(invalid("ResponseValidation.ResponseType", format!("{t:?}")));
                }
            };
            let parameters = match object(p, "LambdaInvocationAttributes")? {
                Some(m) => dyn_map(m, "LambdaInvocationAttributes")?,
                None => Vec::new(),
            };
            Kind::InvokeLambdaFunction {
                function,
                timeout_ms: timeout_s * 1000,
                synchronous,
                parameters,
                response,
            }
        }
        "UpdateContactTargetQueue" => {
            if p.contains_key("AgentId") && !p.contains_key("QueueId") {
                return Err(invalid(
                    "AgentId",
                    "agent queues are not supported; use QueueId",
                ));
            }
            Kind::UpdateContactTargetQueue {
                queue: dyn_value(p, "QueueId")?.ok_or(ParamError::Missing("QueueId"))?,
            }
        }
        "UpdateContactRoutingBehavior" => {
            let priority = static_int(p, "QueuePriority", 1, i64::from(u32::MAX))?;
            let age = static_int(p, "QueueTimeAdjustmentSeconds", -86_400, 86_400)?;
            if priority.is_some() == age.is_some() {
                return Err(invalid(
                    "QueuePriority",
                    "give exactly one of QueuePriority and QueueTimeAdjustmentSeconds",
                ));
            }
            Kind::UpdateContactRoutingBehavior {
                priority,
                age_adjustment_s: age,
            }
        }
        "UpdateRoutingCriteria" => Kind::UpdateRoutingCriteria {
            steps: routing_criteria(p)?,
        },
        "TransferContactToQueue" => Kind::TransferContactToQueue,
        "TransferParticipantToThirdParty" => {
            let number = dyn_value(p, "ThirdPartyPhoneNumber")?
                .ok_or(ParamError::Missing("ThirdPartyPhoneNumber"))?;
            if let Dyn::Static(n) = &number
                && !is_e164(n)
            {
                return Err(invalid(
                    "ThirdPartyPhoneNumber",
                    format!("{n:?} is not E.164"),
                ));
            }
            let dtmf = text(p, "ThirdPartyDTMFDigits")?;
            if let Some(d) = &dtmf
                && (d.len() > 50
                    || !d
                        .chars()
                        .all(|c| c.is_ascii_digit() || matches!(c, ',' | '*' | '#')))
            {
                return Err(invalid("ThirdPartyDTMFDigits", "at most 50 of 0-9 , * #"));
            }
            let caller_id_number = match object(p, "CallerId")? {
                Some(c) => dyn_value(c, "Number")?,
                None => None,
            };
            Kind::TransferParticipantToThirdParty {
                number,
                timeout_s: static_int(p, "ThirdPartyConnectionTimeoutSeconds", 0, 600)?
                    .unwrap_or(30),
                continue_flow: static_bool(p, "ContinueFlowExecution")?.unwrap_or(false),
                dtmf,
                caller_id_number,
            }
        }
        TRANSFER_TO_LEGACY => {
            let pool = req_text(p, "Pool")?;
            if pool.starts_with("$.") {
                return Err(ParamError::MustBeStatic("Pool"));
            }
            let data = match object(p, "Data")? {
                Some(m) => dyn_map(m, "Data")?,
                None => Vec::new(),
            };
            Kind::TransferToLegacy { pool, data }
        }
        "TransferToFlow" => Kind::TransferToFlow {
            flow: dyn_value(p, "ContactFlowId")?.ok_or(ParamError::Missing("ContactFlowId"))?,
        },
        "DistributeByPercentage" => Kind::DistributeByPercentage,
        "Loop" => Kind::Loop {
            count: static_int(p, "LoopCount", 0, 100)?.ok_or(ParamError::Missing("LoopCount"))?
                as u32,
        },
        "UpdateContactRecordingBehavior" => {
            let rb =
                object(p, "RecordingBehavior")?.ok_or(ParamError::Missing("RecordingBehavior"))?;
            let who = match rb.get("RecordedParticipants") {
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|v| v.as_str().unwrap_or_default().to_string())
                    .collect::<Vec<_>>(),
                _ => {
                    return Err(ParamError::Missing(
                        "RecordingBehavior.RecordedParticipants",
                    ));
                }
            };
            if let Some(other) = who.iter().find(|w| *w != "Agent" && *w != "Customer") {
                return Err(invalid(
                    "RecordingBehavior.RecordedParticipants",
                    format!("{other:?}"),
                ));
            }
            Kind::UpdateContactRecordingBehavior {
                agent: who.iter().any(|w| w == "Agent"),
                customer: who.iter().any(|w| w == "Customer"),
            }
        }
        "UpdateContactCallbackNumber" => {
            let v = req_text(p, "CallbackNumber")?;
            match Dyn::parse_value(&v).map_err(bad_path("CallbackNumber"))? {
                Dyn::Path(path) => Kind::UpdateContactCallbackNumber { number: path },
                _ => return Err(ParamError::MustBePath("CallbackNumber")),
            }
        }
        "CreateCallbackContact" => Kind::CreateCallbackContact {
            queue: dyn_value(p, "QueueId")?,
            delay_s: static_int(p, "InitialCallDelaySeconds", 1, 259_200)?.unwrap_or(1),
            attempts: static_int(p, "MaximumConnectionAttempts", 1, 100)?.unwrap_or(1),
            retry_delay_s: static_int(p, "RetryDelaySeconds", 1, 259_200)?.unwrap_or(600),
        },
        "UpdateContactTextToSpeechVoice" => Kind::UpdateContactTextToSpeechVoice {
            voice: req_text(p, "TextToSpeechVoice")?,
        },
        "UpdateFlowLoggingBehavior" => Kind::UpdateFlowLoggingBehavior {
            enabled: match req_text(p, "FlowLoggingBehavior")?.as_str() {
                "Enabled" => true,
                "Disabled" => false,
                t => return Err(invalid("FlowLoggingBehavior", format!("{t:?}"))),
            },
        },
        "DisconnectParticipant" => Kind::DisconnectParticipant,
        _ => return Ok(None),
    };
    Ok(Some(kind))
}

/// `RoutingCriteria.Steps[]`: each an `AttributeCondition` or an `AndExpression` of them
/// (`NumberGreaterOrEqualTo` on a proficiency 1..=5), with an optional `Expiry.DurationInSeconds`.
fn routing_criteria(p: &P) -> Result<Vec<CriteriaStep>, ParamError> {
    const NAME: &str = "RoutingCriteria.Steps";
    let steps = object(p, "RoutingCriteria")?
        .and_then(|rc| rc.get("Steps"))
        .and_then(Value::as_array)
        .ok_or(ParamError::Missing("RoutingCriteria.Steps"))?;
    let condition = |c: &Value| -> Result<(String, u8), ParamError> {
        let c = c
            .get("AttributeCondition")
            .and_then(Value::as_object)
            .ok_or_else(|| invalid(NAME, "expected AttributeCondition"))?;
        let field = |k: &str| {
            c.get(k).and_then(|v| {
                v.as_str()
                    .map(str::to_string)
                    .or_else(|| v.as_f64().map(|n| n.to_string()))
            })
        };
        let (Some(name), Some(value)) = (field("Name"), field("Value")) else {
            return Err(invalid(NAME, "AttributeCondition needs Name and Value"));
        };
        if let Some(op) = field("ComparisonOperator")
            && op != "NumberGreaterOrEqualTo"
        {
            return Err(invalid(
                NAME,
                format!("ComparisonOperator {op:?} is not supported"),
            ));
        }
        let level = field("ProficiencyLevel")
            .and_then(|l| l.parse::<f64>().ok())
            .unwrap_or(1.0);
        if !(1.0..=5.0).contains(&level) {
            return Err(invalid(
                NAME,
                format!("ProficiencyLevel {level} is outside 1..=5"),
            ));
        }
        Ok((format!("{name}:{value}"), level.ceil() as u8))
    };
    steps
        .iter()
        .map(|step| {
            let expr = step
                .get("Expression")
                .ok_or_else(|| invalid(NAME, "a step needs an Expression"))?;
            let skills = if let Some(and) = expr.get("AndExpression").and_then(Value::as_array) {
                and.iter().map(condition).collect::<Result<_, _>>()?
            } else if expr.get("OrExpression").is_some() {
                return Err(invalid(NAME, "OrExpression is not supported"));
            } else {
                std::collections::BTreeMap::from([condition(expr)?])
            };
            let expiry_s = match step.get("Expiry").and_then(|e| e.get("DurationInSeconds")) {
                None => None,
                Some(v) => Some(
                    v.as_i64()
                        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                        .filter(|s| *s > 0)
                        .ok_or_else(|| {
                            invalid(
                                NAME,
                                "Expiry.DurationInSeconds must be a positive static number",
                            )
                        })?,
                ),
            };
            Ok(CriteriaStep { skills, expiry_s })
        })
        .collect()
}

pub fn is_dtmf(c: char) -> bool {
    c.is_ascii_digit() || c == '*' || c == '#'
}

/// `+` then 2 to 15 digits, the first not 0.
pub fn is_e164(n: &str) -> bool {
    n.strip_prefix('+').is_some_and(|d| {
        (2..=15).contains(&d.len()) && d.chars().all(|c| c.is_ascii_digit()) && !d.starts_with('0')
    })
}

impl Kind {
    /// Error types this action may take (anything else in `Errors` is reported).
    pub fn error_types(&self) -> &'static [&'static str] {
        match self {
            Kind::GetParticipantInput { store: false, .. } => &[
                "InputTimeLimitExceeded",
                "NoMatchingCondition",
                "NoMatchingError",
            ],
            Kind::GetParticipantInput { store: true, .. } => {
                &["InputTimeLimitExceeded", "NoMatchingError"]
            }
            Kind::Compare { .. } | Kind::DistributeByPercentage => {
                &["NoMatchingCondition", "NoMatchingError"]
            }
            Kind::TransferContactToQueue => &["QueueAtCapacity", "NoMatchingError"],
            Kind::TransferParticipantToThirdParty { .. } => &[
                "CallFailed",
                "ConnectionTimeLimitExceeded",
                "NoMatchingError",
            ],
            Kind::TransferToLegacy { .. } => {
                &["NoNumberAvailable", "CallFailed", "NoMatchingError"]
            }
            Kind::UpdateContactCallbackNumber { .. } => &[
                "InvalidCallbackNumber",
                "CallbackNumberNotDialable",
                "NoMatchingError",
            ],
            Kind::DisconnectParticipant | Kind::Loop { .. } | Kind::Unsupported { .. } => &[],
            _ => &["NoMatchingError"],
        }
    }

    /// Error branches that must be wired because the action takes them in normal operation.
    pub fn required_errors(&self) -> &'static [&'static str] {
        match self {
            Kind::GetParticipantInput { store: false, .. } => {
                &["InputTimeLimitExceeded", "NoMatchingCondition"]
            }
            Kind::GetParticipantInput { store: true, .. } => &["InputTimeLimitExceeded"],
            Kind::Compare { .. } => &["NoMatchingCondition"],
            Kind::TransferContactToQueue => &["QueueAtCapacity"],
            _ => &[],
        }
    }

    pub fn condition_rule(&self) -> ConditionRule {
        match self {
            Kind::GetParticipantInput { store: false, .. } => ConditionRule::Digit,
            Kind::Compare { .. } => ConditionRule::Any,
            Kind::CheckHoursOfOperation { .. } => ConditionRule::HoursBool,
            Kind::Loop { .. } => ConditionRule::Loop,
            Kind::DistributeByPercentage => ConditionRule::Percent,
            Kind::Unsupported { .. } => ConditionRule::Any,
            _ => ConditionRule::None,
        }
    }

    /// True when success ends this flow's part in the contact (so no `NextAction` is needed).
    pub fn success_exits(&self) -> bool {
        match self {
            Kind::DisconnectParticipant
            | Kind::TransferContactToQueue
            | Kind::TransferToLegacy { .. }
            | Kind::TransferToFlow { .. }
            | Kind::Unsupported { .. } => true,
            Kind::TransferParticipantToThirdParty { continue_flow, .. } => !continue_flow,
            _ => false,
        }
    }

    /// True when the action's success goes through `NextAction` (conditions-only actions do not).
    pub fn needs_next_action(&self) -> bool {
        !self.success_exits()
            && !matches!(
                self.condition_rule(),
                ConditionRule::Digit
                    | ConditionRule::Any
                    | ConditionRule::HoursBool
                    | ConditionRule::Loop
                    | ConditionRule::Percent
            )
    }

    /// True when the action waits for the caller (a cycle through it is an input loop).
    pub fn waits_for_caller(&self) -> bool {
        matches!(
            self,
            Kind::GetParticipantInput { .. } | Kind::MessageParticipant { .. }
        )
    }
}

/// Comparison operators of `Compare` conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    Equals,
    NumberGreaterThan,
    NumberGreaterOrEqualTo,
    NumberLessThan,
    NumberLessOrEqualTo,
    TextStartsWith,
    TextEndsWith,
    TextContains,
}

impl Operator {
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "Equals" => Self::Equals,
            "NumberGreaterThan" => Self::NumberGreaterThan,
            "NumberGreaterOrEqualTo" => Self::NumberGreaterOrEqualTo,
            "NumberLessThan" => Self::NumberLessThan,
            "NumberLessOrEqualTo" => Self::NumberLessOrEqualTo,
            "TextStartsWith" => Self::TextStartsWith,
            "TextEndsWith" => Self::TextEndsWith,
            "TextContains" => Self::TextContains,
            _ => return None,
        })
    }

    fn numeric(self) -> bool {
        matches!(
            self,
            Self::NumberGreaterThan
                | Self::NumberGreaterOrEqualTo
                | Self::NumberLessThan
                | Self::NumberLessOrEqualTo
        )
    }

    /// Applies the operator; numeric operators are false when either side is not a number.
    pub fn holds(self, value: &str, operand: &str) -> bool {
        if self.numeric() {
            let (Ok(a), Ok(b)) = (value.trim().parse::<f64>(), operand.trim().parse::<f64>())
            else {
                return false;
            };
            return match self {
                Self::NumberGreaterThan => a > b,
                Self::NumberGreaterOrEqualTo => a >= b,
                Self::NumberLessThan => a < b,
                _ => a <= b,
            };
        }
        match self {
            Self::Equals => value == operand,
            Self::TextStartsWith => value.starts_with(operand),
            Self::TextEndsWith => value.ends_with(operand),
            _ => value.contains(operand),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn params(v: Value) -> P {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn lambda_timeout_must_be_static_and_in_range() {
        let p =
            params(json!({"LambdaFunctionARN": "https://x/y", "InvocationTimeLimitSeconds": "9"}));
        assert!(matches!(
            parse("InvokeLambdaFunction", &p),
            Err(ParamError::Invalid {
                name: "InvocationTimeLimitSeconds",
                ..
            })
        ));
        let p = params(
            json!({"LambdaFunctionARN": "https://x/y", "InvocationTimeLimitSeconds": "$.Attributes.t"}),
        );
        assert_eq!(
            parse("InvokeLambdaFunction", &p),
            Err(ParamError::MustBeStatic("InvocationTimeLimitSeconds"))
        );
        let p =
            params(json!({"LambdaFunctionARN": "https://x/y", "InvocationTimeLimitSeconds": 8}));
        assert!(matches!(
            parse("InvokeLambdaFunction", &p),
            Ok(Some(Kind::InvokeLambdaFunction {
                timeout_ms: 8000,
                ..
            }))
        ));
    }

    #[test]
    fn stored_input_reads_length_and_terminator() {
        let p = params(
            json!({"Text": "Enter your account", "StoreInput": "True", "InputTimeLimitSeconds": "7",
            "InputValidation": {"CustomValidation": {"MaximumLength": "8"}},
            "DTMFConfiguration": {"InputTerminationSequence": "*"}}),
        );
        match parse("GetParticipantInput", &p).unwrap().unwrap() {
            Kind::GetParticipantInput {
                store,
                max_digits,
                terminator,
                timeout_ms,
                ..
            } => {
                assert!(store);
                assert_eq!((max_digits, terminator, timeout_ms), (8, Some('*'), 7000));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn operators_compare_text_and_numbers() {
        assert!(Operator::NumberGreaterThan.holds("10", "9"));
        assert!(!Operator::NumberGreaterThan.holds("abc", "9"));
        assert!(Operator::TextStartsWith.holds("gold-1", "gold"));
        assert!(!Operator::Equals.holds("1", "01"));
    }

    #[test]
    fn e164_check() {
        assert!(is_e164("+14155550100"));
        assert!(!is_e164("4155550100"));
        assert!(!is_e164("+0123"));
    }
}
