//! Campaigns over HTTP, for campaign managers and the console: create and edit a campaign's
//! configuration, start / pause / resume / complete it, watch its figures, and export its attempts
//! and dispositions as CSV. Thin handlers over [`dialer::campaign`]; every rule (validation,
//! lifecycle, optimistic versions) lives there.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use dialer::campaign::{self, Action, Campaign, CampaignConfig, CampaignState, ConfigError};
use foundation::accounts::Role;
use serde::{Deserialize, Serialize};
use sqlx::Row;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiJson;

const MANAGE: &[Role] = &[Role::Admin, Role::CampaignManager];
const WATCH: &[Role] = &[Role::Admin, Role::CampaignManager, Role::Supervisor];

/// Campaign errors: a configuration or lifecycle problem is the caller's (400 / 409), anything
/// else is ours (500).
fn campaign_error(e: anyhow::Error) -> ApiError {
    match e.downcast_ref::<ConfigError>() {
        Some(c) if c.0.contains("exists") || c.0.contains("cannot") || c.0.contains("version") => {
            ApiError::new(StatusCode::CONFLICT, "conflict", c.to_string())
        }
        Some(c) => ApiError::bad_request(c.to_string()),
        None => ApiError::internal(e),
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCampaign {
    pub name: String,
    /// The campaign configuration (lists with weights, mode, purpose, caller id, queue, trunk,
    /// retry policy, compliance profile, AMD policy, safe-harbor message, filters).
    #[schema(value_type = Object)]
    pub config: CampaignConfig,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CampaignUpdate {
    #[schema(value_type = Object)]
    pub config: CampaignConfig,
    /// The version this edit is based on; a newer stored version answers 409.
    pub version: Option<i64>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionBody {
    /// `start`, `pause`, `resume` or `complete`.
    #[schema(value_type = String, example = "start")]
    pub action: Action,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CampaignOut {
    pub id: i64,
    pub name: String,
    /// `draft`, `running`, `paused` or `completed`.
    #[schema(value_type = String)]
    pub state: CampaignState,
    #[schema(value_type = Object)]
    pub config: CampaignConfig,
    pub version: i64,
    pub created_at: String,
    pub updated_at: String,
    pub started_at: Option<String>,
    pub completed_at: Option<String>,
}

impl From<Campaign> for CampaignOut {
    fn from(c: Campaign) -> Self {
        let t = foundation::clock::rfc3339_ms;
        CampaignOut {
            id: c.id,
            name: c.name,
            state: c.state,
            config: c.config,
            version: c.version,
            created_at: t(c.created_at),
            updated_at: t(c.updated_at),
            started_at: c.started_at.map(t),
            completed_at: c.completed_at.map(t),
        }
    }
}

/// Creates a campaign (state `draft`).
#[utoipa::path(post, path = "/api/v1/campaigns", tag = "campaigns", security(("api_key" = []), ("session" = [])),
    request_body = NewCampaign,
    responses((status = 201, body = CampaignOut), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "name taken")))]
async fn create(
    State(st): State<AppState>,
    caller: Caller,
    ApiJson(b): ApiJson<NewCampaign>,
) -> Result<impl IntoResponse, ApiError> {
    caller.require(MANAGE)?;
    let c = campaign::create(&st.db, st.clock.as_ref(), &b.name, &b.config)
        .await
        .map_err(campaign_error)?;
    caller.audit_ok(&st, "campaign.create", &c.name).await?;
    Ok((StatusCode::CREATED, Json(CampaignOut::from(c))))
}

/// Lists campaigns.
#[utoipa::path(get, path = "/api/v1/campaigns", tag = "campaigns", security(("api_key" = []), ("session" = [])),
    responses((status = 200, body = Vec<CampaignOut>), (status = 403, body = ErrorBody)))]
async fn list(
    State(st): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<CampaignOut>>, ApiError> {
    caller.require(WATCH)?;
    Ok(Json(
        campaign::list(&st.db, None)
            .await?
            .into_iter()
            .map(CampaignOut::from)
            .collect(),
    ))
}

async fn load(st: &AppState, id: i64) -> Result<Campaign, ApiError> {
    campaign::get(&st.db, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no campaign {id}")))
}

/// One campaign.
#[utoipa::path(get, path = "/api/v1/campaigns/{id}", tag = "campaigns", security(("api_key" = []), ("session" = [])),
    params(("id" = i64, Path)),
    responses((status = 200, body = CampaignOut), (status = 404, body = ErrorBody)))]
async fn get(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Json<CampaignOut>, ApiError> {
    caller.require(WATCH)?;
    Ok(Json(load(&st, id).await?.into()))
}

/// Replaces a campaign's configuration; a running campaign picks it up within a second.
#[utoipa::path(put, path = "/api/v1/campaigns/{id}", tag = "campaigns", security(("api_key" = []), ("session" = [])),
    params(("id" = i64, Path)), request_body = CampaignUpdate,
    responses((status = 200, body = CampaignOut), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "completed, or edited since `version`")))]
async fn update(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    ApiJson(b): ApiJson<CampaignUpdate>,
) -> Result<Json<CampaignOut>, ApiError> {
    caller.require(MANAGE)?;
    load(&st, id).await?;
    let c = campaign::update_config(&st.db, st.clock.as_ref(), id, &b.config, b.version)
        .await
        .map_err(campaign_error)?;
    caller.audit_ok(&st, "campaign.update", &c.name).await?;
    Ok(Json(c.into()))
}

/// Starts, pauses, resumes or completes a campaign.
#[utoipa::path(post, path = "/api/v1/campaigns/{id}/actions", tag = "campaigns", security(("api_key" = []), ("session" = [])),
    params(("id" = i64, Path)), request_body = ActionBody,
    responses((status = 200, body = CampaignOut), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "not allowed from the current state")))]
async fn act(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    ApiJson(b): ApiJson<ActionBody>,
) -> Result<Json<CampaignOut>, ApiError> {
    caller.require(MANAGE)?;
    load(&st, id).await?;
    let c = campaign::apply(&st.db, st.clock.as_ref(), id, b.action)
        .await
        .map_err(campaign_error)?;
    let what = format!(
        "campaign.{}",
        serde_json::to_value(b.action)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    );
    caller.audit_ok(&st, &what, &c.name).await?;
    Ok(Json(c.into()))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CampaignStats {
    pub campaign_id: i64,
    /// Attempts started in the last minute.
    pub dials_last_minute: i64,
    /// Calls placed and not yet finished.
    pub in_progress: i64,
    pub attempts: i64,
    pub live_answers: i64,
    pub abandoned: i64,
    /// abandoned / live answers over the campaign to date (0 without live answers).
    pub abandon_rate: f64,
    /// The campaign's cap (e.g. 0.03).
    pub abandon_cap: f64,
    /// Leads still to dial now or later (ready, claimed or dialing).
    pub hopper_depth: i64,
    /// Leads finished, by final outcome.
    pub outcomes: std::collections::BTreeMap<String, i64>,
}

/// Live figures of a campaign (the dashboard polls nothing: it refreshes this on campaign events).
#[utoipa::path(get, path = "/api/v1/campaigns/{id}/stats", tag = "campaigns", security(("api_key" = []), ("session" = [])),
    params(("id" = i64, Path)),
    responses((status = 200, body = CampaignStats), (status = 404, body = ErrorBody)))]
async fn stats(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Json<CampaignStats>, ApiError> {
    caller.require(WATCH)?;
    let c = load(&st, id).await?;
    let now = st.clock.now_ms();
    let pool = st.db.pool();
    let row = sqlx::query(
        "SELECT COUNT(*) AS attempts, \
                COALESCE(SUM(CASE WHEN created_at >= $2 THEN 1 ELSE 0 END), 0) AS last_minute, \
                COALESCE(SUM(CASE WHEN state <> 'final' THEN 1 ELSE 0 END), 0) AS in_progress, \
                COALESCE(SUM(live), 0) AS live, COALESCE(SUM(abandoned), 0) AS abandoned \
         FROM dial_attempts WHERE campaign_id = $1",
    )
    .bind(id)
    .bind(now - 60_000)
    .fetch_one(pool)
    .await
    .map_err(anyhow::Error::from)?;
    let (attempts, dials_last_minute, in_progress, live_answers, abandoned): (
        i64,
        i64,
        i64,
        i64,
        i64,
    ) = (
        row.get("attempts"),
        row.get("last_minute"),
        row.get("in_progress"),
        row.get("live"),
        row.get("abandoned"),
    );
    let hopper_depth: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM campaign_leads WHERE campaign_id = $1 AND state IN ('ready', 'claimed', 'dialing')")
        .bind(id)
        .fetch_one(pool)
        .await
        .map_err(anyhow::Error::from)?;
    let mut outcomes = std::collections::BTreeMap::new();
    for r in sqlx::query("SELECT final_outcome, COUNT(*) AS n FROM campaign_leads WHERE campaign_id = $1 AND state = 'done' GROUP BY final_outcome")
        .bind(id)
        .fetch_all(pool)
        .await
        .map_err(anyhow::Error::from)?
    {
        let outcome: Option<String> = r.get("final_outcome");
        outcomes.insert(outcome.unwrap_or_else(|| "unknown".into()), r.get::<i64, _>("n"));
    }
    let abandon_rate = if live_answers > 0 {
        abandoned as f64 / live_answers as f64
    } else {
        0.0
    };
    Ok(Json(CampaignStats {
        campaign_id: id,
        dials_last_minute,
        in_progress,
        attempts,
        live_answers,
        abandoned,
        abandon_rate,
        abandon_cap: c.config.compliance.abandon_cap,
        hopper_depth,
        outcomes,
    }))
}

/// Every attempt of a campaign with its outcome and disposition, as CSV (one row per attempt).
#[utoipa::path(get, path = "/api/v1/campaigns/{id}/attempts.csv", tag = "campaigns", security(("api_key" = []), ("session" = [])),
    params(("id" = i64, Path)),
    responses((status = 200, content_type = "text/csv", body = String), (status = 404, body = ErrorBody)))]
async fn attempts_csv(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    caller.require(WATCH)?;
    let c = load(&st, id).await?;
    let rows = sqlx::query(
        "SELECT public_id, lead_id, e164, caller_id, state, allowed_reason, outcome, disposition, agent, live, abandoned, \
                sip_code, amd, created_at, answered_at, bridged_at, ended_at \
         FROM dial_attempts WHERE campaign_id = $1 ORDER BY id",
    )
    .bind(id)
    .fetch_all(st.db.pool())
    .await
    .map_err(anyhow::Error::from)?;
    let mut w = csv::Writer::from_writer(Vec::new());
    let header = [
        "contact_id",
        "lead_id",
        "number",
        "caller_id",
        "state",
        "allowed_reason",
        "outcome",
        "disposition",
        "agent",
        "live",
        "abandoned",
        "sip_code",
        "amd",
        "created_at",
        "answered_at",
        "bridged_at",
        "ended_at",
    ];
    w.write_record(header).map_err(anyhow::Error::from)?;
    let t = |v: Option<i64>| v.map(foundation::clock::rfc3339_ms).unwrap_or_default();
    let s = |v: Option<String>| v.unwrap_or_default();
    for r in rows {
        w.write_record([
            r.get::<String, _>("public_id"),
            r.get::<Option<i64>, _>("lead_id")
                .map(|v| v.to_string())
                .unwrap_or_default(),
            r.get::<String, _>("e164"),
            r.get::<String, _>("caller_id"),
            r.get::<String, _>("state"),
            r.get::<String, _>("allowed_reason"),
            s(r.get("outcome")),
            s(r.get("disposition")),
            s(r.get("agent")),
            r.get::<i64, _>("live").to_string(),
            r.get::<i64, _>("abandoned").to_string(),
            r.get::<Option<i64>, _>("sip_code")
                .map(|v| v.to_string())
                .unwrap_or_default(),
            s(r.get("amd")),
            t(Some(r.get("created_at"))),
            t(r.get("answered_at")),
            t(r.get("bridged_at")),
            t(r.get("ended_at")),
        ])
        .map_err(anyhow::Error::from)?;
    }
    let body = w.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?;
    let file = format!(
        "attachment; filename=\"campaign-{}-attempts.csv\"",
        c.name
            .replace(|ch: char| !ch.is_ascii_alphanumeric() && ch != '-', "_")
    );
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (header::CONTENT_DISPOSITION, file),
        ],
        body,
    )
        .into_response())
}

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(get, update))
        .routes(routes!(act))
        .routes(routes!(stats))
        .routes(routes!(attempts_csv))
}
