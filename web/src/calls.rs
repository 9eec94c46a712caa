//! Call records over the API: what happened to every call leg (supervisors and admins); the same
//! path places a single outbound call (`crate::outbound`).

use axum::Json;
use axum::extract::State;
use foundation::accounts::Role;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::outbound::{__path_place, place};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct CallParams {
    /// At most this many, newest first (default 100, at most 1000).
    pub limit: Option<i64>,
}

/// Recent call records: direction, parties, times, outcome, cause and SIP code.
#[utoipa::path(get, path = "/api/v1/calls", tag = "calls", security(("api_key" = []), ("session" = [])),
    params(CallParams),
    responses((status = 200, description = "`[{call_ref, node, direction, from_uri, to_uri, state, started_at, answered_at, ended_at, outcome, cause, sip_code}]`")))]
async fn list(
    State(st): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<CallParams>,
) -> Result<Json<Vec<telephony::cdr::CallRecord>>, ApiError> {
    caller.require(&[Role::Admin, Role::Supervisor])?;
    Ok(Json(
        telephony::cdr::recent(&st.db, q.limit.unwrap_or(100).clamp(1, 1000)).await?,
    ))
}

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    // One path, two methods: the records (GET) and placing a call (POST, `crate::outbound`).
    OpenApiRouter::new().routes(routes!(list, place))
}
