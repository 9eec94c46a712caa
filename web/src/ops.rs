//! Operations endpoints, open without auth: liveness, readiness, metrics.
//!
//! `/healthz` says the process serves HTTP. `/readyz` says it can take work: the database answers,
//! the SIP listeners are bound and the appliance is not draining; load balancers and the tests
//! wait on it. `/metrics` is the Prometheus text format.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::{AppState, Listening};

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok`.
    pub status: &'static str,
    pub version: &'static str,
}

/// Liveness: 200 while the process serves HTTP.
#[utoipa::path(get, path = "/healthz", tag = "ops", responses((status = 200, body = Health)))]
async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
    })
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Readiness {
    /// `ready`, `draining` or `unavailable`.
    pub status: &'static str,
    pub version: &'static str,
    /// `ok` or the reason the database does not answer.
    pub database: String,
    pub backend: &'static str,
    pub draining: bool,
    pub listening: Listening,
}

/// Readiness: 200 only when the database answers, SIP is bound and the appliance is not draining.
#[utoipa::path(
    get, path = "/readyz", tag = "ops",
    responses((status = 200, body = Readiness), (status = 503, body = Readiness))
)]
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let database = match tokio::time::timeout(Duration::from_secs(2), state.db.ping()).await {
        Ok(Ok(())) => "ok".to_owned(),
        Ok(Err(e)) => format!("error: {e}"),
        Err(_) => "timeout".to_owned(),
    };
    let draining = state.lifecycle.is_draining();
    let status = match (database == "ok", draining) {
        (_, true) => "draining",
        (true, false) => "ready",
        (false, false) => "unavailable",
    };
    let code = if status == "ready" {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = Readiness {
        status,
        version: env!("CARGO_PKG_VERSION"),
        database,
        backend: state.db.backend().name(),
        draining,
        listening: state.listening.as_ref().clone(),
    };
    (code, Json(body))
}

/// Prometheus metrics, text exposition format.
#[utoipa::path(
    get, path = "/metrics", tag = "ops",
    responses((status = 200, content_type = "text/plain", body = String))
)]
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        (state.render_metrics)(),
    )
}

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
}
