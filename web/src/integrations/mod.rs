//! Integration out: signed, retried webhooks to the CRM (`docs/webhooks.md`).
//!
//! - [`webhooks`]: subscriptions (`[integrations.webhooks.<name>]` in the configuration, the one
//!   source of truth), the signature and the retry schedule, without I/O.
//! - [`outbox`]: the driver — events from the final records into `webhook_deliveries`, claimed
//!   and posted until each ends `delivered` or `failed`.
//! - [`http`]: the HTTP/1.1 POST it needs, over TCP or TLS ([`tls`]: `https://` receivers
//!   verified against their `ca_file` or the system roots).
//! - The admin API here: `GET /api/v1/webhooks/deliveries` and
//!   `POST /api/v1/webhooks/deliveries/{id}/redeliver`.
//!
//! [`start`] runs the outbox and the recordings' retention sweeper in the background.

pub mod http;
pub mod outbox;
pub mod tls;
pub mod webhooks;

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use foundation::accounts::Role;
use foundation::clock::rfc3339_ms;
use foundation::{Db, SharedClock};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use webhooks::{IntegrationsConfig, Subscription};

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiQuery;

/// Starts the webhook outbox and the recordings' retention sweeper (both run until the process
/// ends). `node` is this node's name (claims carry it).
pub fn start(
    db: Db,
    clock: SharedClock,
    node: String,
    integrations: IntegrationsConfig,
    recordings: crate::recordings::RecordingsConfig,
) {
    tokio::spawn(crate::recordings::sweeper(
        db.clone(),
        clock.clone(),
        node.clone(),
        recordings,
    ));
    tokio::spawn(outbox::run(db, clock, node, Arc::new(integrations)));
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DeliveryQuery {
    /// pending, delivered or failed.
    pub status: Option<String>,
    /// contact.ended, contact.disposition, attempt.ended, lead.dnc.
    pub event: Option<String>,
    /// The subscription's name.
    pub subscription: Option<String>,
    /// At most this many, newest first (default 100, at most 1000).
    pub limit: Option<i64>,
    /// Only deliveries older than this one (paging: the last `delivery_id` of the previous page).
    pub before: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryOut {
    pub delivery_id: String,
    pub subscription: String,
    pub event: String,
    /// What happened, once (e.g. `contact.ended:<contact id>`).
    pub event_key: String,
    /// pending, delivered or failed.
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: Option<String>,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub last_attempt_at: Option<String>,
    pub created_at: String,
    pub ended_at: Option<String>,
    /// The body posted (JSON).
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
}

type DeliveryRow = (
    i64,
    String,
    String,
    String,
    String,
    String,
    i64,
    i64,
    Option<i64>,
    Option<String>,
    Option<i64>,
    i64,
    Option<i64>,
    String,
);

const DELIVERY_COLUMNS: &str = "id, delivery_id, subscription, event, event_key, status, attempts, next_attempt_at, \
     last_status, last_error, last_attempt_at, created_at, ended_at, payload";

fn delivery_out(r: DeliveryRow) -> DeliveryOut {
    let (
        _,
        delivery_id,
        subscription,
        event,
        event_key,
        status,
        attempts,
        next,
        last_status,
        last_error,
        last_at,
        created,
        ended,
        payload,
    ) = r;
    DeliveryOut {
        next_attempt_at: (status == "pending").then(|| rfc3339_ms(next)),
        delivery_id,
        subscription,
        event,
        event_key,
        status,
        attempts,
        last_status,
        last_error,
        last_attempt_at: last_at.map(rfc3339_ms),
        created_at: rfc3339_ms(created),
        ended_at: ended.map(rfc3339_ms),
        payload: serde_json::from_str(&payload).unwrap_or(serde_json::Value::Null),
    }
}

/// Webhook deliveries, newest first (admins).
#[utoipa::path(get, path = "/api/v1/webhooks/deliveries", tag = "webhooks", security(("api_key" = []), ("session" = [])),
    params(DeliveryQuery),
    responses((status = 200, body = [DeliveryOut]), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn list_deliveries(
    State(st): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<DeliveryQuery>,
) -> Result<Json<Vec<DeliveryOut>>, ApiError> {
    caller.require(&[Role::Admin])?;
    if let Some(s) = q.status.as_deref()
        && !["pending", "delivered", "failed"].contains(&s)
    {
        return Err(ApiError::bad_request(format!(
            "status {s:?}: one of pending, delivered, failed"
        )));
    }
    if let Some(e) = q.event.as_deref()
        && !webhooks::EVENTS.contains(&e)
    {
        return Err(ApiError::bad_request(format!(
            "event {e:?}: one of {}",
            webhooks::EVENTS.join(", ")
        )));
    }
    let before: i64 = match q.before.as_deref().filter(|s| !s.is_empty()) {
        None => i64::MAX,
        Some(d) => sqlx::query_scalar("SELECT id FROM webhook_deliveries WHERE delivery_id = $1")
            .bind(d)
            .fetch_optional(st.db.pool())
            .await
            .map_err(anyhow::Error::from)?
            .ok_or_else(|| ApiError::bad_request(format!("before {d:?}: no such delivery")))?,
    };
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let rows: Vec<DeliveryRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries \
         WHERE id < $1 AND ($2 = '' OR status = $2) AND ($3 = '' OR event = $3) AND ($4 = '' OR subscription = $4) \
         ORDER BY id DESC LIMIT $5"
    )))
    .bind(before)
    .bind(q.status.unwrap_or_default())
    .bind(q.event.unwrap_or_default())
    .bind(q.subscription.unwrap_or_default())
    .bind(limit)
    .fetch_all(st.db.pool())
    .await
    .map_err(anyhow::Error::from)?;
    Ok(Json(rows.into_iter().map(delivery_out).collect()))
}

/// Sends a delivery again from its first try (a `failed` one, or a `delivered` one the receiver
/// lost); the delivery id stays the same, so the receiver can tell (admins).
#[utoipa::path(post, path = "/api/v1/webhooks/deliveries/{id}/redeliver", tag = "webhooks", security(("api_key" = []), ("session" = [])),
    params(("id" = String, Path, description = "The delivery id (whd_…)")),
    responses((status = 200, body = DeliveryOut), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn redeliver(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<DeliveryOut>, ApiError> {
    caller.require(&[Role::Admin])?;
    let now = st.clock.now_ms();
    let mut tx = st.db.begin_write().await?;
    let r = sqlx::query(
        "UPDATE webhook_deliveries SET status = 'pending', attempts = 0, next_attempt_at = $1, ended_at = NULL, \
         lease_owner = NULL, lease_until = NULL WHERE delivery_id = $2 AND status <> 'pending'",
    )
    .bind(now)
    .bind(&id)
    .execute(tx.conn())
    .await
    .map_err(anyhow::Error::from)?;
    let row: Option<DeliveryRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE delivery_id = $1"
    )))
    .bind(&id)
    .fetch_optional(tx.conn())
    .await
    .map_err(anyhow::Error::from)?;
    let Some(row) = row else {
        tx.rollback().await?;
        return Err(ApiError::not_found(format!("no webhook delivery {id:?}")));
    };
    let actor = caller.actor();
    foundation::audit::record(
        tx.conn(),
        now,
        &foundation::audit::Entry {
            actor: &actor,
            action: "webhooks.redeliver",
            subject: Some(&id),
            result: if r.rows_affected() > 0 {
                "ok"
            } else {
                "already_pending"
            },
            detail: None,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(Json(delivery_out(row)))
}

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_deliveries))
        .routes(routes!(redeliver))
}
