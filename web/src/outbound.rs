//! Outbound calls outside the pacer: a programmatic single call (`POST /api/v1/calls`, like
//! StartOutboundVoiceContact) and preview dialling for agents (the lead card first, then dial or
//! skip). Thin handlers over [`dialer::single`], which applies the same compliance checks as
//! campaigns; a blocked call is answered 409 with the reason.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use dialer::campaign::CampaignConfig;
use dialer::single::{self, CallError, Dialer, PreviewCard, SingleCall};
use foundation::accounts::Role;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiQuery};

/// What the outbound handlers need: the dialer's handles, the defaults for single calls that
/// name no campaign, and the preview card each agent holds.
pub struct Outbound {
    pub dialer: Dialer,
    /// Trunk, caller id and compliance for single calls without a campaign (`None`: a single
    /// call must name a campaign).
    pub defaults: Option<CampaignConfig>,
    /// Region for numbers written without a country code (e.g. `US`).
    pub region: String,
    cards: Mutex<HashMap<String, PreviewCard>>,
}

impl Outbound {
    pub fn new(dialer: Dialer, defaults: Option<CampaignConfig>, region: &str) -> Self {
        Outbound {
            dialer,
            defaults,
            region: region.to_owned(),
            cards: Mutex::new(HashMap::new()),
        }
    }
}

fn outbound(st: &AppState) -> Result<&Outbound, ApiError> {
    st.outbound.as_deref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "outbound calling is not running on this node",
        )
    })
}

impl From<CallError> for ApiError {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Blocked { code, reason } => {
                ApiError::new(StatusCode::CONFLICT, "blocked", format!("{code}: {reason}"))
            }
            CallError::Invalid(m) => ApiError::bad_request(m),
            other => ApiError::internal(anyhow::anyhow!("{other}")),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CallBody {
    /// The number to call (E.164, or national in the appliance's default region).
    pub to: String,
    /// Caller id (default: the campaign's or the configured one).
    pub from: Option<String>,
    /// Use this campaign's trunk, caller id and compliance profile (and its queue on answer).
    pub campaign: Option<i64>,
    /// On answer, connect to an agent of this queue.
    pub queue: Option<String>,
    /// On answer, run this flow (an id of the flows store; not with `queue`). The campaign's
    /// (or the defaults') opt-out key works throughout the flow.
    pub flow: Option<String>,
    /// Contact attributes (shown to the agent; the flow's contact attributes).
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Placed {
    pub contact_id: String,
}

/// Places one outbound call (registered with the call records' route in [`crate::calls`]) through the same compliance checks as campaigns (calling window in
/// every candidate zone of the number, DNC, registries, retired numbers, redial limits).
#[utoipa::path(post, path = "/api/v1/calls", tag = "calls", security(("api_key" = []), ("session" = [])),
    request_body = CallBody,
    responses((status = 201, body = Placed), (status = 400, body = ErrorBody, description = "a bad field, named: the number, a queue and a flow together, an unknown flow"),
              (status = 409, body = ErrorBody, description = "a compliance check blocks the call; the message says which and why")))]
pub(crate) async fn place(
    State(st): State<AppState>,
    caller: Caller,
    ApiJson(b): ApiJson<CallBody>,
) -> Result<Response, ApiError> {
    caller.require(&[Role::Admin, Role::CampaignManager, Role::Agent])?;
    let o = outbound(&st)?;
    let req = SingleCall {
        to: b.to,
        from: b.from,
        campaign: b.campaign,
        queue: b.queue,
        flow: b.flow,
        attributes: b.attributes,
    };
    let placed = single::single_call(&o.dialer, &req, o.defaults.as_ref(), &o.region).await?;
    Ok((
        StatusCode::CREATED,
        Json(Placed {
            contact_id: placed.contact_id,
        }),
    )
        .into_response())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PreviewParams {
    /// A running preview campaign.
    pub campaign: i64,
}

/// The agent's next lead card in a preview campaign (the same card until it is dialled — by the
/// agent or, with the campaign's countdown, by the appliance — or skipped); 204 when no lead may
/// be dialled now.
#[utoipa::path(get, path = "/api/v1/agent/preview", tag = "agents", security(("session" = []), ("api_key" = [])),
    params(PreviewParams),
    responses((status = 200, description = "the lead card: lead, phone, allowed_reason, auto_dial_s"), (status = 204), (status = 400, body = ErrorBody)))]
async fn preview(
    State(st): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<PreviewParams>,
) -> Result<Response, ApiError> {
    caller.require(&[Role::Agent, Role::Supervisor, Role::Admin])?;
    let o = outbound(&st)?;
    let agent = caller.agent_id();
    let kept = o
        .cards
        .lock()
        .expect("cards")
        .get(&agent)
        .filter(|c| c.lead.campaign_id == q.campaign)
        .cloned();
    if let Some(card) = kept {
        // The countdown may have dialled it (or the lead was given back): then it is done with.
        if single::held(&o.dialer, &card).await? {
            return Ok(
                Json(serde_json::to_value(&card).map_err(anyhow::Error::from)?).into_response(),
            );
        }
        o.cards.lock().expect("cards").remove(&agent);
    }
    match single::preview_next(&o.dialer, q.campaign, &agent).await? {
        Some(card) => {
            let body = serde_json::to_value(&card).map_err(anyhow::Error::from)?;
            o.cards.lock().expect("cards").insert(agent, card);
            Ok(Json(body).into_response())
        }
        None => Ok(StatusCode::NO_CONTENT.into_response()),
    }
}

fn take_card(o: &Outbound, agent: &str) -> Result<PreviewCard, ApiError> {
    o.cards
        .lock()
        .expect("cards")
        .remove(agent)
        .ok_or_else(|| ApiError::not_found("no lead card: GET /api/v1/agent/preview first"))
}

/// Dials the agent's lead card (compliance is checked again now); on answer the call is
/// connected to this agent.
#[utoipa::path(post, path = "/api/v1/agent/preview/dial", tag = "agents", security(("session" = []), ("api_key" = [])),
    responses((status = 201, body = Placed), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn preview_dial(State(st): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    caller.require(&[Role::Agent, Role::Supervisor, Role::Admin])?;
    let o = outbound(&st)?;
    let agent = caller.agent_id();
    let card = take_card(o, &agent)?;
    let placed = single::preview_dial(&o.dialer, &card, &agent).await?;
    Ok((
        StatusCode::CREATED,
        Json(Placed {
            contact_id: placed.contact_id,
        }),
    )
        .into_response())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SkipBody {
    /// Offer the lead again after this many seconds (default 3600).
    pub retry_s: Option<u32>,
}

/// Skips the agent's lead card; the lead comes back later.
#[utoipa::path(post, path = "/api/v1/agent/preview/skip", tag = "agents", security(("session" = []), ("api_key" = [])),
    request_body = SkipBody, responses((status = 204), (status = 404, body = ErrorBody)))]
async fn preview_skip(
    State(st): State<AppState>,
    caller: Caller,
    ApiJson(b): ApiJson<SkipBody>,
) -> Result<StatusCode, ApiError> {
    caller.require(&[Role::Agent, Role::Supervisor, Role::Admin])?;
    let o = outbound(&st)?;
    let agent = caller.agent_id();
    let card = take_card(o, &agent)?;
    single::preview_skip(&o.dialer, &card, &agent, b.retry_s.unwrap_or(3600)).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(preview))
        .routes(routes!(preview_dial))
        .routes(routes!(preview_skip))
}
