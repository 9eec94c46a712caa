//! Callbacks callers asked for in a flow ("call me back when it's my turn"): the list a
//! supervisor watches, and cancelling one that has not been dialled yet. The callbacks themselves
//! live in the inbound runtime (`inbound::runtime::callbacks`), which queues them in their
//! caller's place and dials them.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::auth::Caller;
use crate::contacts::ROLES;
use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiQuery;

const STATUSES: &[&str] = &[
    "pending",
    "dialing",
    "done",
    "failed",
    "cancelled",
    "interrupted",
];

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct CallbackQuery {
    /// Only callbacks in this state: pending, dialing, done, failed, cancelled or interrupted.
    pub status: Option<String>,
    /// At most this many, newest first (1–1000, default 100).
    pub limit: Option<i64>,
}

/// One callback (`inbound::runtime::callbacks::CallbackView`).
#[derive(Debug, Serialize, ToSchema)]
pub struct CallbackOut {
    pub id: i64,
    /// The contact that asked for the callback.
    pub contact_id: String,
    pub number: String,
    pub queue: String,
    /// pending, dialing, done, failed, cancelled or interrupted.
    pub status: String,
    /// The final outcome once closed (done, no_answer, busy, …, cancelled, queue_timeout,
    /// interrupted).
    pub outcome: Option<String>,
    /// The place kept in the queue: the caller's arrival (immediate callbacks) or the due time.
    pub waiting_since_ms: i64,
    pub due_at_ms: i64,
    pub attempts_made: i64,
    pub attempts_left: i64,
    /// The contact record of the call that reached the customer.
    pub callback_contact: Option<String>,
    pub ended_at_ms: Option<i64>,
}

impl From<inbound::runtime::callbacks::CallbackView> for CallbackOut {
    fn from(v: inbound::runtime::callbacks::CallbackView) -> Self {
        Self {
            id: v.id,
            contact_id: v.contact_id,
            number: v.number,
            queue: v.queue,
            status: v.status,
            outcome: v.outcome,
            waiting_since_ms: v.waiting_since_ms,
            due_at_ms: v.due_at_ms,
            attempts_made: v.attempts_made,
            attempts_left: v.attempts_left,
            callback_contact: v.callback_contact,
            ended_at_ms: v.ended_at_ms,
        }
    }
}

/// Lists callbacks, newest first.
#[utoipa::path(get, path = "/api/v1/callbacks", tag = "contacts", security(("api_key" = []), ("session" = [])),
    params(CallbackQuery),
    responses((status = 200, body = [CallbackOut]), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn list(
    State(st): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<CallbackQuery>,
) -> Result<Json<Vec<CallbackOut>>, ApiError> {
    caller.require(ROLES)?;
    if let Some(s) = q.status.as_deref()
        && !STATUSES.contains(&s)
    {
        return Err(ApiError::bad_request(format!(
            "status {s:?} is not one of {}",
            STATUSES.join(", ")
        )));
    }
    let limit = match q.limit {
        None => 100,
        Some(n) if (1..=1000).contains(&n) => n,
        Some(n) => {
            return Err(ApiError::bad_request(format!(
                "limit {n} is outside 1–1000"
            )));
        }
    };
    let rows = inbound::runtime::callbacks::list(&st.db, q.status.as_deref(), limit)
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(rows.into_iter().map(CallbackOut::from).collect()))
}

/// Cancels a callback that is still pending (not being dialled, not closed).
#[utoipa::path(delete, path = "/api/v1/callbacks/{id}", tag = "contacts", security(("api_key" = []), ("session" = [])),
    params(("id" = i64, Path)),
    responses((status = 204), (status = 404, body = ErrorBody, description = "no pending callback with this id"),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn cancel(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    caller.require(ROLES)?;
    let now = st.clock.now_ms();
    if !inbound::runtime::callbacks::cancel(&st.db, id, now)
        .await
        .map_err(ApiError::internal)?
    {
        return Err(ApiError::not_found(format!(
            "no pending callback {id} (it is being dialled, closed, or does not exist)"
        )));
    }
    caller
        .audit_ok(&st, "callback.cancel", &id.to_string())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(cancel))
}
