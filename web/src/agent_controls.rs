//! Agents' call control over HTTP (the desktop's Hold, Mute, keypad, Transfer, Complete, Cancel
//! and Conference buttons): thin handlers over `inbound::runtime::Runtime`'s call-control
//! methods (`inbound/src/runtime/controls.rs` holds the logic).
//!
//! Only the agent handling the contact, or a supervisor or admin, may act on it (403 otherwise).
//! Errors: 404 unknown contact, 400 bad digits or target, 409 when the contact's state does not
//! allow it (no consultation in progress, on hold, target not available…), 502 when the target
//! was called and did not answer (the customer is then back with the agent). The outcome also
//! goes out on the desktop WebSocket as `call_control` events (`docs/desktop-events.md`). The
//! keypad also works over that socket (its `dtmf` command, `agents.rs`), checked by the same
//! [`DtmfBody::check`].

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use foundation::accounts::Role;
use inbound::runtime::{ControlRefused, ControlView, Runtime, Target, TransferMode};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiJson;

const AGENT: &[Role] = &[Role::Agent, Role::Supervisor, Role::Admin];

fn refused(e: ControlRefused) -> ApiError {
    let message = e.to_string();
    match e {
        ControlRefused::Runtime(r) => ApiError::from(r),
        ControlRefused::Conflict(_) => ApiError::new(StatusCode::CONFLICT, "conflict", message),
        ControlRefused::BadTarget(_) => {
            ApiError::new(StatusCode::BAD_REQUEST, "bad_target", message)
        }
        ControlRefused::Invalid(_) => ApiError::bad_request(message),
        ControlRefused::TargetFailed(_) => {
            ApiError::new(StatusCode::BAD_GATEWAY, "target_failed", message)
        }
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

/// The contact's call-control state, once the caller may act on it: 404 unknown contact, 403
/// when an agent asks about another agent's contact.
async fn owned(st: &AppState, caller: &Caller, contact: &str) -> Result<ControlView, ApiError> {
    caller.require(AGENT)?;
    let view = runtime(st)?.control_state(contact).await.map_err(refused)?;
    if caller.role == Role::Agent && view.agent != caller.agent_id() {
        return Err(ApiError::forbidden(format!(
            "contact {contact} is handled by another agent"
        )));
    }
    Ok(view)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OnBody {
    /// `true` to hold / mute, `false` to resume / unmute.
    pub on: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DtmfBody {
    /// 1–32 keys of `0-9 * # A-D`, sent to the customer's leg as RFC 4733 events.
    pub digits: String,
}

impl DtmfBody {
    /// The one check of keypad digits, for `POST …/dtmf` and the desktop socket's `dtmf`
    /// command alike: 400 naming the problem (none, more than 32, a key that is not one).
    pub(crate) fn check(&self) -> Result<(), ApiError> {
        inbound::runtime::acd_task::controls::check_digits(&self.digits).map_err(refused)
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferBody {
    /// Exactly one of `{"agent": "bob"}`, `{"queue": "sales"}`, `{"number": "+15551234567"}`.
    #[schema(value_type = Object)]
    pub to: Target,
    /// `blind` or `consult`.
    #[schema(value_type = String)]
    pub mode: TransferMode,
}

/// The contact's call-control state: handling agent, hold, mute, consultation in progress.
#[utoipa::path(get, path = "/api/v1/agent/contacts/{contact}/controls", tag = "agents", security(("session" = []), ("api_key" = [])),
    params(("contact" = String, Path)),
    responses((status = 200, body = Object), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn controls(
    State(st): State<AppState>,
    caller: Caller,
    Path(contact): Path<String>,
) -> Result<Json<ControlView>, ApiError> {
    Ok(Json(owned(&st, &caller, &contact).await?))
}

/// Holds (`on: true`) or resumes the customer: on hold the customer hears the hold audio.
#[utoipa::path(post, path = "/api/v1/agent/contacts/{contact}/hold", tag = "agents", security(("session" = []), ("api_key" = [])),
    params(("contact" = String, Path)), request_body = OnBody,
    responses((status = 204), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn hold(
    State(st): State<AppState>,
    caller: Caller,
    Path(contact): Path<String>,
    ApiJson(b): ApiJson<OnBody>,
) -> Result<StatusCode, ApiError> {
    owned(&st, &caller, &contact).await?;
    runtime(&st)?.hold(&contact, b.on).await.map_err(refused)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Mutes (`on: true`) the agent towards the customer; the agent still hears the customer.
#[utoipa::path(post, path = "/api/v1/agent/contacts/{contact}/mute", tag = "agents", security(("session" = []), ("api_key" = [])),
    params(("contact" = String, Path)), request_body = OnBody,
    responses((status = 204), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn mute(
    State(st): State<AppState>,
    caller: Caller,
    Path(contact): Path<String>,
    ApiJson(b): ApiJson<OnBody>,
) -> Result<StatusCode, ApiError> {
    owned(&st, &caller, &contact).await?;
    runtime(&st)?.mute(&contact, b.on).await.map_err(refused)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sends keypad digits to the customer's leg (RFC 4733), e.g. to work a third party's IVR.
#[utoipa::path(post, path = "/api/v1/agent/contacts/{contact}/dtmf", tag = "agents", security(("session" = []), ("api_key" = [])),
    params(("contact" = String, Path)), request_body = DtmfBody,
    responses((status = 204), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn dtmf(
    State(st): State<AppState>,
    caller: Caller,
    Path(contact): Path<String>,
    ApiJson(b): ApiJson<DtmfBody>,
) -> Result<StatusCode, ApiError> {
    b.check()?;
    owned(&st, &caller, &contact).await?;
    runtime(&st)?
        .send_dtmf(&contact, &b.digits)
        .await
        .map_err(refused)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Transfers the contact to an agent, a queue or a number, blind or after a consultation. Blind
/// to a queue re-queues at once; otherwise the answer comes when the target answered (consult:
/// the agent now talks with the target, the customer on hold) or failed (502, the customer back
/// with the agent).
#[utoipa::path(post, path = "/api/v1/agent/contacts/{contact}/transfer", tag = "agents", security(("session" = []), ("api_key" = [])),
    params(("contact" = String, Path)), request_body = TransferBody,
    responses((status = 204), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 502, body = ErrorBody, description = "the target did not answer")))]
async fn transfer(
    State(st): State<AppState>,
    caller: Caller,
    Path(contact): Path<String>,
    ApiJson(b): ApiJson<TransferBody>,
) -> Result<StatusCode, ApiError> {
    if let Target::Number(n) = &b.to
        && !inbound::runtime::acd_task::controls::valid_number(n)
    {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_target",
            format!("to.number: {n:?} is not E.164 (+ and 2-15 digits)"),
        ));
    }
    owned(&st, &caller, &contact).await?;
    let rt = runtime(&st)?;
    let done = match b.mode {
        TransferMode::Blind => rt.blind_transfer(&contact, b.to).await,
        TransferMode::Consult => rt.consult_start(&contact, b.to).await,
    };
    done.map_err(refused)?;
    let action = match b.mode {
        TransferMode::Blind => "contact.transfer_blind",
        TransferMode::Consult => "contact.consult",
    };
    caller.audit_ok(&st, action, &contact).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Completes the consultation: customer and target connected, the agent released.
#[utoipa::path(post, path = "/api/v1/agent/contacts/{contact}/consult/complete", tag = "agents", security(("session" = []), ("api_key" = [])),
    params(("contact" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn consult_complete(
    State(st): State<AppState>,
    caller: Caller,
    Path(contact): Path<String>,
) -> Result<StatusCode, ApiError> {
    owned(&st, &caller, &contact).await?;
    runtime(&st)?
        .consult_complete(&contact)
        .await
        .map_err(refused)?;
    caller
        .audit_ok(&st, "contact.transfer_consult", &contact)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Cancels the consultation: the target released, the agent back with the customer.
#[utoipa::path(post, path = "/api/v1/agent/contacts/{contact}/consult/cancel", tag = "agents", security(("session" = []), ("api_key" = [])),
    params(("contact" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn consult_cancel(
    State(st): State<AppState>,
    caller: Caller,
    Path(contact): Path<String>,
) -> Result<StatusCode, ApiError> {
    owned(&st, &caller, &contact).await?;
    runtime(&st)?
        .consult_cancel(&contact)
        .await
        .map_err(refused)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Turns the consultation into a three-way conference.
#[utoipa::path(post, path = "/api/v1/agent/contacts/{contact}/consult/conference", tag = "agents", security(("session" = []), ("api_key" = [])),
    params(("contact" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn consult_conference(
    State(st): State<AppState>,
    caller: Caller,
    Path(contact): Path<String>,
) -> Result<StatusCode, ApiError> {
    owned(&st, &caller, &contact).await?;
    runtime(&st)?
        .consult_conference(&contact)
        .await
        .map_err(refused)?;
    caller.audit_ok(&st, "contact.conference", &contact).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(controls))
        .routes(routes!(hold))
        .routes(routes!(mute))
        .routes(routes!(dtmf))
        .routes(routes!(transfer))
        .routes(routes!(consult_complete))
        .routes(routes!(consult_cancel))
        .routes(routes!(consult_conference))
}
