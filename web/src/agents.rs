//! Agents and supervisors over HTTP: an agent logs in with an audio endpoint, sets its state,
//! ends and dispositions contacts; supervisors see agents and queues live, force states, and
//! listen / whisper / barge. The agent desktop's real-time feed is one WebSocket per agent
//! (`GET /api/v1/agent/events`): its messages are documented in `docs/desktop-events.md`.
//!
//! Thin handlers over [`inbound::runtime::Runtime`]; the ACD decides everything. An agent is
//! the logged-in console user (their user name), or an agent-role API key (its name).

use axum::Json;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use foundation::accounts::Role;
use inbound::acd::{AgentStatus, QueueStats};
use inbound::runtime::{
    AgentEndpoint, AgentMode, AgentView, Login, Runtime, RuntimeError, RuntimeEvent, Supervise,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiJson;

const AGENT: &[Role] = &[Role::Agent, Role::Supervisor, Role::Admin];
const SUPERVISE: &[Role] = &[Role::Supervisor, Role::Admin];
/// May open the events socket: agents (their own events), supervisors and admins (all events),
/// and campaign managers (all events, watch only: their dashboards refresh on them).
const SOCKET: &[Role] = &[
    Role::Agent,
    Role::Supervisor,
    Role::Admin,
    Role::CampaignManager,
];

impl From<RuntimeError> for ApiError {
    fn from(e: RuntimeError) -> Self {
        let message = e.to_string();
        let (status, code) = match e {
            RuntimeError::UnknownAgent(_) => (StatusCode::NOT_FOUND, "unknown_agent"),
            RuntimeError::UnknownContact(_) => (StatusCode::NOT_FOUND, "unknown_contact"),
            RuntimeError::UnknownQueue(_) => (StatusCode::NOT_FOUND, "unknown_queue"),
            RuntimeError::InvalidAgent(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            RuntimeError::EndpointUnreachable(_) => {
                (StatusCode::BAD_GATEWAY, "endpoint_unreachable")
            }
            RuntimeError::Media(_) => (StatusCode::CONFLICT, "media"),
            RuntimeError::Stopped => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        };
        ApiError::new(status, code, message)
    }
}

fn runtime(st: &AppState) -> Result<&Runtime, ApiError> {
    st.runtime.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the contact runtime is not running on this node",
        )
    })
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    /// `{"kind": "uri", "value": "sip:alice@10.0.0.7:5060"}` or `{"kind": "registered", "value":
    /// "alice"}` (a phone registered to the appliance).
    #[schema(value_type = Object)]
    pub endpoint: AgentEndpoint,
    /// `nailed_up` (called once, the leg stays up for the shift; default) or `ring_per_offer`.
    #[schema(value_type = Option<String>)]
    pub mode: Option<AgentMode>,
    /// The routing profile (default `default`).
    pub routing_profile: Option<String>,
    /// Skill → proficiency 1..=5.
    #[serde(default)]
    pub skills: std::collections::BTreeMap<String, u8>,
    /// `true` (default): offers connect by themselves (a nailed-up leg's media is switched at
    /// once; a phone rung per offer connects when it is answered). `false`: every inbound offer
    /// waits for the agent's answer (`POST /api/v1/agent/contacts/{contact}/accept`, or the
    /// socket's `accept`) or rejection; a ring-per-offer phone is rung only when the agent
    /// answers. An offer left unanswered for the queue's ring timeout is missed and the contact
    /// goes back to the head of its queue.
    pub auto_accept: Option<bool>,
}

/// Logs the calling agent in: with a nailed-up leg the phone is called now and must answer.
#[utoipa::path(post, path = "/api/v1/agent/login", tag = "agents", security(("session" = []), ("api_key" = [])),
    request_body = LoginBody,
    responses((status = 204), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 502, body = ErrorBody, description = "the agent's phone did not answer")))]
async fn login(
    State(st): State<AppState>,
    caller: Caller,
    ApiJson(b): ApiJson<LoginBody>,
) -> Result<StatusCode, ApiError> {
    caller.require(AGENT)?;
    let login = Login {
        agent_id: caller.agent_id(),
        endpoint: b.endpoint,
        mode: b.mode.unwrap_or(AgentMode::NailedUp),
        routing_profile: b.routing_profile.unwrap_or_else(|| "default".into()),
        skills: b.skills,
    };
    runtime(&st)?
        .login_with(login, b.auto_accept.unwrap_or(true))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The calling agent answers the contact offered to them (agents logged in with `auto_accept:
/// false`): a nailed-up leg is connected before the reply; a ring-per-offer phone is rung and
/// connects when it answers.
#[utoipa::path(post, path = "/api/v1/agent/contacts/{contact}/accept", tag = "agents", security(("session" = []), ("api_key" = [])),
    params(("contact" = String, Path)),
    responses((status = 204), (status = 400, body = ErrorBody, description = "the agent auto-accepts (answer the phone)"),
              (status = 404, body = ErrorBody, description = "the contact is not offered to this agent"),
              (status = 409, body = ErrorBody, description = "the media could not be connected (the contact goes back to its queue)"),
              (status = 502, body = ErrorBody)))]
async fn accept(
    State(st): State<AppState>,
    caller: Caller,
    Path(contact): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(AGENT)?;
    runtime(&st)?.answer(&caller.agent_id(), &contact).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The calling agent turns down the contact offered to them: the agent goes to `Missed` (not
/// routable until they set a state) and the contact back to the head of its queue.
#[utoipa::path(post, path = "/api/v1/agent/contacts/{contact}/reject", tag = "agents", security(("session" = []), ("api_key" = [])),
    params(("contact" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody, description = "the contact is not offered to this agent")))]
async fn reject(
    State(st): State<AppState>,
    caller: Caller,
    Path(contact): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(AGENT)?;
    runtime(&st)?.reject(&caller.agent_id(), &contact).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Logs the calling agent out (a nailed-up leg is hung up; a contact in hand stays up).
#[utoipa::path(post, path = "/api/v1/agent/logout", tag = "agents", security(("session" = []), ("api_key" = [])),
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn logout(State(st): State<AppState>, caller: Caller) -> Result<StatusCode, ApiError> {
    caller.require(AGENT)?;
    runtime(&st)?.logout(&caller.agent_id()).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StateBody {
    /// `available`, `offline`, or `break` with a `reason` (Lunch, Training…).
    pub status: String,
    pub reason: Option<String>,
}

fn status_of(b: &StateBody) -> Result<AgentStatus, ApiError> {
    match (b.status.as_str(), &b.reason) {
        ("available", _) => Ok(AgentStatus::Available),
        ("offline", _) => Ok(AgentStatus::Offline),
        ("break", Some(r)) if !r.trim().is_empty() => {
            Ok(AgentStatus::NotRoutable(r.trim().to_owned()))
        }
        ("break", _) => Err(ApiError::bad_request("a break needs a reason")),
        (other, _) => Err(ApiError::bad_request(format!(
            "unknown status {other:?}: available, offline or break"
        ))),
    }
}

/// Sets the calling agent's status.
#[utoipa::path(put, path = "/api/v1/agent/state", tag = "agents", security(("session" = []), ("api_key" = [])),
    request_body = StateBody, responses((status = 204), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn set_state(
    State(st): State<AppState>,
    caller: Caller,
    ApiJson(b): ApiJson<StateBody>,
) -> Result<StatusCode, ApiError> {
    caller.require(AGENT)?;
    runtime(&st)?
        .set_state(&caller.agent_id(), status_of(&b)?)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A supervisor forces an agent's status.
#[utoipa::path(put, path = "/api/v1/agents/{agent}/state", tag = "agents", security(("session" = []), ("api_key" = [])),
    params(("agent" = String, Path)), request_body = StateBody,
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn force_state(
    State(st): State<AppState>,
    caller: Caller,
    Path(agent): Path<String>,
    ApiJson(b): ApiJson<StateBody>,
) -> Result<StatusCode, ApiError> {
    caller.require(SUPERVISE)?;
    runtime(&st)?.set_state(&agent, status_of(&b)?).await?;
    caller.audit_ok(&st, "agent.force_state", &agent).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DispositionBody {
    pub code: String,
    /// On a campaign call: call the lead back at this time (the lead is reopened for it).
    #[serde(default)]
    pub callback: Option<CallbackBody>,
}

/// An agent-scheduled callback of a campaign lead.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CallbackBody {
    /// When, RFC 3339 (e.g. `2026-11-25T15:00:00Z`); in the future, within 90 days.
    pub at: String,
    /// Only this agent gets the callback (default); `false`: any agent of the campaign.
    #[serde(default = "yes")]
    pub mine: bool,
}

fn yes() -> bool {
    true
}

/// The callback of a disposition, checked against the clock.
fn callback_of(
    b: Option<&CallbackBody>,
    agent: &str,
    now_ms: i64,
) -> Result<Option<dialer::attempts::Callback>, String> {
    let Some(b) = b else { return Ok(None) };
    let at = chrono::DateTime::parse_from_rfc3339(b.at.trim())
        .map_err(|e| format!("callback.at {:?} is not an RFC 3339 time: {e}", b.at))?
        .timestamp_millis();
    if at <= now_ms {
        return Err(format!("callback.at {:?} is in the past", b.at));
    }
    if at > now_ms + 90 * 86_400_000 {
        return Err(format!("callback.at {:?} is more than 90 days ahead", b.at));
    }
    Ok(Some(dialer::attempts::Callback {
        at,
        agent: b.mine.then(|| agent.to_owned()),
    }))
}

/// Records the agent's disposition on a contact (ends after-contact work).
#[utoipa::path(post, path = "/api/v1/agent/contacts/{contact}/disposition", tag = "agents", security(("session" = []), ("api_key" = [])),
    params(("contact" = String, Path)), request_body = DispositionBody,
    responses((status = 204), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn disposition(
    State(st): State<AppState>,
    caller: Caller,
    Path(contact): Path<String>,
    ApiJson(b): ApiJson<DispositionBody>,
) -> Result<StatusCode, ApiError> {
    caller.require(AGENT)?;
    if b.code.trim().is_empty() || b.code.len() > 64 {
        return Err(ApiError::bad_request(
            "a disposition code is 1–64 characters",
        ));
    }
    let callback = callback_of(b.callback.as_ref(), &caller.agent_id(), st.clock.now_ms())
        .map_err(ApiError::bad_request)?;
    // An agent dispositions only contacts they were connected to; supervisors any.
    let only = (caller.role == Role::Agent).then(|| caller.agent_id());
    record_disposition(
        &st.db,
        st.clock.as_ref(),
        runtime(&st)?,
        &contact,
        b.code.trim(),
        callback,
        only.as_deref(),
    )
    .await
    .map_err(|e| match e {
        DispositionError::Forbidden(m) => ApiError::forbidden(m),
        DispositionError::Refused(m) => ApiError::bad_request(m),
        DispositionError::Runtime(e) => e.into(),
        DispositionError::Internal(e) => ApiError::internal(e),
    })?;
    Ok(StatusCode::NO_CONTENT)
}

enum DispositionError {
    /// The agent was never connected to the contact.
    Forbidden(String),
    /// The campaign does not define the code, or a callback where there can be none.
    Refused(String),
    Runtime(inbound::runtime::RuntimeError),
    Internal(anyhow::Error),
}

/// An agent's disposition ends the contact's after-contact work; for a campaign call (its record
/// carries the dialer's attempt id as `contact_id`) it is also the attempt's disposition, which
/// drives the campaign's retry and final rules, or reopens the lead for the agent's `callback`.
/// A code the campaign does not define, or a callback on a call that is not a campaign's, is
/// refused before anything changes.
async fn record_disposition(
    db: &foundation::Db,
    clock: &dyn foundation::Clock,
    rt: &Runtime,
    contact: &str,
    code: &str,
    callback: Option<dialer::attempts::Callback>,
    only_agent: Option<&str>,
) -> Result<(), DispositionError> {
    let record = inbound::store::load_contact(db, contact).await.ok();
    // Every agent who was connected to the contact gives their own disposition (after a
    // transfer both the first agent and the target are in after-contact work).
    if let (Some(me), Some(r)) = (only_agent, record.as_ref())
        && r.stages.iter().any(|s| s.stage == "connected")
        && !r
            .stages
            .iter()
            .any(|s| s.stage == "connected" && s.detail == me)
    {
        return Err(DispositionError::Forbidden(format!(
            "contact {contact} was not handled by {me}"
        )));
    }
    let attempt = record.and_then(|r| {
        r.attributes
            .get("contact_id")
            .or_else(|| r.contact.attributes.get("contact_id"))
            .cloned()
    });
    match (&attempt, &callback) {
        (None, Some(_)) => {
            return Err(DispositionError::Refused(
                "a callback is scheduled on a campaign call (inbound callers ask for theirs in the flow)"
                    .to_owned(),
            ));
        }
        (Some(attempt), None) => {
            dialer::attempts::check_disposition(db, attempt, code)
                .await
                .map_err(DispositionError::Internal)?
                .map_err(DispositionError::Refused)?;
        }
        _ => {}
    }
    rt.disposition(contact, code)
        .await
        .map_err(DispositionError::Runtime)?;
    if let Some(attempt) = &attempt {
        dialer::attempts::set_disposition(db, clock, attempt, code, callback.as_ref())
            .await
            .map_err(DispositionError::Internal)?;
    }
    Ok(())
}

/// Hangs up a contact's customer leg.
#[utoipa::path(post, path = "/api/v1/agent/contacts/{contact}/hangup", tag = "agents", security(("session" = []), ("api_key" = [])),
    params(("contact" = String, Path)), responses((status = 204), (status = 404, body = ErrorBody)))]
async fn hangup(
    State(st): State<AppState>,
    caller: Caller,
    Path(contact): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(AGENT)?;
    runtime(&st)?.end_contact(&contact).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Logged-in agents with their states (all, or those staffing `queue`).
#[utoipa::path(get, path = "/api/v1/agents", tag = "agents", security(("session" = []), ("api_key" = [])),
    params(("queue" = Option<String>, Query)),
    responses((status = 200, body = Vec<Object>), (status = 403, body = ErrorBody)))]
async fn agents(
    State(st): State<AppState>,
    caller: Caller,
    q: axum::extract::Query<QueueQuery>,
) -> Result<Json<Vec<AgentView>>, ApiError> {
    caller.require(SUPERVISE)?;
    Ok(Json(
        runtime(&st)?.agent_snapshot(q.queue.as_deref()).await?,
    ))
}

/// The name of an agent state on dashboards (`Available`, `OnContact`, `NotRoutable`…).
fn state_name(state: &inbound::acd::AgentState) -> &'static str {
    use inbound::acd::AgentState as S;
    match state {
        S::Offline => "Offline",
        S::Available => "Available",
        S::Offered(_) => "Offered",
        S::OnContact(_) => "OnContact",
        S::AfterContactWork { .. } => "AfterContactWork",
        S::NotRoutable(_) => "NotRoutable",
        S::Missed => "Missed",
    }
}

/// How many logged-in agents are in each state (all, or those staffing `queue`): the campaign
/// dashboard's "agents by state", open to campaign managers (who do not see agents one by one).
#[utoipa::path(get, path = "/api/v1/agents/states", tag = "agents", security(("session" = []), ("api_key" = [])),
    params(("queue" = Option<String>, Query)),
    responses((status = 200, body = std::collections::BTreeMap<String, u64>), (status = 403, body = ErrorBody)))]
async fn agent_states(
    State(st): State<AppState>,
    caller: Caller,
    q: axum::extract::Query<QueueQuery>,
) -> Result<Json<std::collections::BTreeMap<&'static str, u64>>, ApiError> {
    caller.require(&[Role::Supervisor, Role::Admin, Role::CampaignManager])?;
    let mut counts = std::collections::BTreeMap::new();
    for a in runtime(&st)?.agent_snapshot(q.queue.as_deref()).await? {
        *counts.entry(state_name(&a.state)).or_insert(0) += 1;
    }
    Ok(Json(counts))
}

#[derive(Debug, Deserialize)]
pub struct QueueQuery {
    pub queue: Option<String>,
}

/// Real-time statistics of a queue: waiting, oldest, service level, ASA, AHT, occupancy.
#[utoipa::path(get, path = "/api/v1/queues/{queue}/stats", tag = "agents", security(("session" = []), ("api_key" = [])),
    params(("queue" = String, Path)), responses((status = 200, body = QueueStatsOut), (status = 404, body = ErrorBody)))]
async fn queue_stats(
    State(st): State<AppState>,
    caller: Caller,
    Path(queue): Path<String>,
) -> Result<Json<QueueStatsOut>, ApiError> {
    caller.require(&[Role::Supervisor, Role::Admin, Role::CampaignManager])?;
    let s = runtime(&st)?.queue_stats(&queue).await?;
    Ok(Json(QueueStatsOut::from(s)))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct QueueStatsOut {
    pub waiting: usize,
    pub oldest_wait_ms: i64,
    pub agents_available: usize,
    pub agents_staffed: usize,
    pub answered: u64,
    pub abandoned: u64,
    pub timed_out: u64,
    /// Average speed of answer, ms.
    pub asa_ms: i64,
    /// Average handle time (talk + after-contact work), ms.
    pub aht_ms: i64,
    /// Share answered within the queue's service-level threshold.
    pub service_level: f64,
}

impl From<QueueStats> for QueueStatsOut {
    fn from(s: QueueStats) -> Self {
        QueueStatsOut {
            waiting: s.waiting,
            oldest_wait_ms: s.oldest_wait_ms,
            agents_available: s.agents_available,
            agents_staffed: s.agents_staffed,
            answered: s.counters.answered,
            abandoned: s.counters.abandoned,
            timed_out: s.counters.timed_out,
            asa_ms: s.asa_ms,
            aht_ms: s.aht_ms,
            service_level: s.service_level,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SuperviseBody {
    /// `listen`, `whisper` or `barge`; sending another mode changes the role on the same call.
    #[schema(value_type = String)]
    pub mode: Supervise,
    /// The supervisor's phone (called now).
    #[schema(value_type = Object)]
    pub endpoint: AgentEndpoint,
}

/// A supervisor listens to, whispers to, or barges into a connected contact.
#[utoipa::path(post, path = "/api/v1/contacts/{contact}/supervise", tag = "agents", security(("session" = []), ("api_key" = [])),
    params(("contact" = String, Path)), request_body = SuperviseBody,
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 502, body = ErrorBody)))]
async fn supervise(
    State(st): State<AppState>,
    caller: Caller,
    Path(contact): Path<String>,
    ApiJson(b): ApiJson<SuperviseBody>,
) -> Result<StatusCode, ApiError> {
    caller.require(SUPERVISE)?;
    runtime(&st)?
        .supervise(&contact, b.endpoint, b.mode)
        .await?;
    caller.audit_ok(&st, "contact.supervise", &contact).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// What the desktop socket sends (server → browser). See `docs/desktop-events.md`.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Outgoing<'a> {
    /// First message: who the socket belongs to and the agent's current view (None: logged out).
    Hello {
        agent: &'a str,
        view: Option<AgentView>,
    },
    /// A runtime event concerning this agent (all events for supervisors).
    Event { event: &'a RuntimeEvent },
    /// Events were dropped because the socket fell behind; refresh the state with GET.
    Lagged { missed: u64 },
    /// A command from the socket was refused.
    Error { message: String },
    /// A command from the socket was carried out.
    Ok { command: &'a str },
    /// The reply to `softphone_offer` (in place of its `ok`): the gateway's SDP answer and the
    /// SIP URI to log in with.
    SoftphoneAnswer { sdp: String, endpoint: String },
}

/// A socket command's successful reply.
enum Done {
    Ok(&'static str),
    Softphone(crate::softphone::OfferReply),
}

/// What the desktop socket accepts (browser → server).
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Incoming {
    State {
        status: String,
        reason: Option<String>,
    },
    Disposition {
        contact: String,
        code: String,
        #[serde(default)]
        callback: Option<CallbackBody>,
    },
    /// Keypad digits for the customer's leg (RFC 4733), only on the agent's own contact;
    /// `digits` checked as `POST /api/v1/agent/contacts/{contact}/dtmf`'s body.
    Dtmf {
        contact: String,
        digits: String,
    },
    Hangup {
        contact: String,
    },
    /// Answers the contact offered to this agent (agents who do not auto-accept).
    Accept {
        contact: String,
    },
    /// Turns down the contact offered to this agent.
    Reject {
        contact: String,
    },
    /// The browser softphone's SDP offer (whole, after ICE gathering): answered with
    /// `softphone_answer`.
    SoftphoneOffer {
        sdp: String,
    },
    /// Closes the agent's browser softphone leg.
    SoftphoneClose,
    Ping,
}

fn concerns(event: &RuntimeEvent, agent: &str) -> bool {
    match event {
        RuntimeEvent::AgentStateChanged { agent: a, .. }
        | RuntimeEvent::ContactOffered { agent: a, .. }
        | RuntimeEvent::ContactConnected { agent: a, .. } => a == agent,
        RuntimeEvent::ContactEnded { agent: a, .. } => a.as_deref() == Some(agent),
        RuntimeEvent::ContactQueued { .. } => false,
        RuntimeEvent::CallControl { .. } => event.involves(agent),
    }
}

/// The agent desktop's real-time socket: events out, commands in. Browsers authenticate with
/// their session cookie; the Origin must be this appliance (no cross-site socket).
#[utoipa::path(get, path = "/api/v1/agent/events", tag = "agents", security(("session" = []), ("api_key" = [])),
    responses((status = 101, description = "WebSocket: see docs/desktop-events.md"), (status = 403, body = ErrorBody)))]
async fn events(
    State(st): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    caller.require(SOCKET)?;
    if let (Some(origin), Some(host)) = (headers.get(header::ORIGIN), headers.get(header::HOST)) {
        let origin = origin.to_str().unwrap_or("");
        let host = host.to_str().unwrap_or("");
        let same = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"))
            == Some(host);
        if !same {
            return Err(ApiError::forbidden(
                "the socket must be opened from this appliance's pages",
            ));
        }
    }
    let rt = runtime(&st)?.clone();
    let agent = caller.agent_id();
    let everyone = SUPERVISE.contains(&caller.role) || caller.role == Role::CampaignManager;
    let watch_only = !AGENT.contains(&caller.role);
    Ok(ws
        .on_upgrade(move |socket| desktop(socket, st, rt, agent, everyone, watch_only))
        .into_response())
}

async fn desktop(
    mut socket: WebSocket,
    st: AppState,
    rt: Runtime,
    agent: String,
    everyone: bool,
    watch_only: bool,
) {
    let mut feed = rt.subscribe();
    let view = rt
        .agent_snapshot(None)
        .await
        .ok()
        .and_then(|all| all.into_iter().find(|v| v.id == agent));
    if send(
        &mut socket,
        &Outgoing::Hello {
            agent: &agent,
            view,
        },
    )
    .await
    .is_err()
    {
        return;
    }
    loop {
        tokio::select! {
            ev = feed.recv() => match ev {
                Ok(ev) if everyone || concerns(&ev, &agent) => {
                    if send(&mut socket, &Outgoing::Event { event: &ev }).await.is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                    if send(&mut socket, &Outgoing::Lagged { missed }).await.is_err() {
                        return;
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            },
            msg = socket.recv() => match msg {
                Some(Ok(Message::Text(text))) => {
                    let reply = match serde_json::from_str::<Incoming>(&text) {
                        Ok(Incoming::Ping) => Ok(Done::Ok("ping")),
                        Ok(_) if watch_only => Err("this socket only watches: a campaign manager is not an agent".to_owned()),
                        Ok(cmd) => command(&st, &rt, &agent, cmd).await,
                        Err(e) => Err(format!("unreadable command: {e}")),
                    };
                    let out = match reply {
                        Ok(Done::Ok(name)) => Outgoing::Ok { command: name },
                        Ok(Done::Softphone(r)) => Outgoing::SoftphoneAnswer { sdp: r.sdp, endpoint: r.endpoint },
                        Err(message) => Outgoing::Error { message },
                    };
                    if send(&mut socket, &out).await.is_err() {
                        return;
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
        }
    }
}

async fn command(st: &AppState, rt: &Runtime, agent: &str, cmd: Incoming) -> Result<Done, String> {
    let done = match cmd {
        Incoming::SoftphoneOffer { sdp } => {
            return crate::softphone::offer(st, agent, &sdp)
                .await
                .map(Done::Softphone)
                .map_err(|e| e.message);
        }
        Incoming::SoftphoneClose => {
            crate::softphone::close_for(st, agent)
                .await
                .map_err(|e| e.message)?;
            "softphone_close"
        }
        Incoming::Accept { contact } => {
            rt.answer(agent, &contact)
                .await
                .map_err(|e| e.to_string())?;
            "accept"
        }
        Incoming::Reject { contact } => {
            rt.reject(agent, &contact)
                .await
                .map_err(|e| e.to_string())?;
            "reject"
        }
        Incoming::State { status, reason } => {
            let status = status_of(&StateBody { status, reason }).map_err(|e| e.message)?;
            rt.set_state(agent, status)
                .await
                .map_err(|e| e.to_string())?;
            "state"
        }
        Incoming::Dtmf { contact, digits } => {
            // Checked as the REST body is, before the contact is looked at.
            let body = crate::agent_controls::DtmfBody { digits };
            body.check().map_err(|e| e.message)?;
            let view = rt
                .control_state(&contact)
                .await
                .map_err(|e| e.to_string())?;
            if view.agent != agent {
                return Err(format!("contact {contact} is handled by another agent"));
            }
            rt.send_dtmf(&contact, &body.digits)
                .await
                .map_err(|e| e.to_string())?;
            "dtmf"
        }
        Incoming::Disposition {
            contact,
            code,
            callback,
        } => {
            let callback = callback_of(callback.as_ref(), agent, st.clock.now_ms())?;
            record_disposition(
                &st.db,
                st.clock.as_ref(),
                rt,
                &contact,
                &code,
                callback,
                Some(agent),
            )
            .await
            .map_err(|e| match e {
                DispositionError::Forbidden(m) | DispositionError::Refused(m) => m,
                DispositionError::Runtime(e) => e.to_string(),
                DispositionError::Internal(e) => format!("{e:#}"),
            })?;
            "disposition"
        }
        Incoming::Hangup { contact } => {
            rt.end_contact(&contact).await.map_err(|e| e.to_string())?;
            "hangup"
        }
        Incoming::Ping => "ping",
    };
    Ok(Done::Ok(done))
}

async fn send(socket: &mut WebSocket, out: &Outgoing<'_>) -> Result<(), axum::Error> {
    let text = serde_json::to_string(out).expect("events serialize");
    socket.send(Message::Text(text.into())).await
}

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(login))
        .routes(routes!(logout))
        .routes(routes!(set_state))
        .routes(routes!(force_state))
        .routes(routes!(disposition))
        .routes(routes!(hangup))
        .routes(routes!(accept))
        .routes(routes!(reject))
        .routes(routes!(agents))
        .routes(routes!(agent_states))
        .routes(routes!(queue_stats))
        .routes(routes!(supervise))
        .routes(routes!(events))
}
