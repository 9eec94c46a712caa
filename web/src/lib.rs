//! The HTTP face of the appliance, on axum.
//!
//! - [`ops`]: `/healthz`, `/readyz`, `/metrics` and the OpenAPI document — no auth.
//! - [`auth`]: who is calling (API keys by `Authorization: Bearer`, people by session cookie
//!   with a CSRF token), roles enforced server-side.
//! - [`error`]: the one error body every API route answers with; [`extract`]: JSON and query
//!   extractors whose rejections use it.
//! - [`bridge`]: the DNIS pool / lease / lookup API legacy PBXs integrate against.
//! - [`imports`]: CRM list uploads, import progress and reports; [`calls`]: call records.
//! - [`console`]: the web console's pages and embedded assets (outside the OpenAPI router; pages
//!   redirect to `/login` without a session and answer 403 to roles that may not see them).
//!
//! Every API route is registered through [`utoipa_axum`] so that `/api/openapi.json` always
//! describes exactly the routes that exist. Handlers stay thin: they parse, authorise and call
//! the domain crates, which own the logic.

pub mod auth;
pub mod bridge;
pub mod calls;
pub mod console;
pub mod error;
pub mod extract;
pub mod imports;
pub mod ops;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use foundation::lifecycle::Lifecycle;
use foundation::{Db, SharedClock};
use serde::Serialize;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use auth::SecuritySchemes;

/// The addresses the appliance is bound to, as logged at start and reported by `/readyz`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Listening {
    #[schema(value_type = String, example = "127.0.0.1:8080")]
    pub http: SocketAddr,
    #[schema(value_type = String)]
    pub sip_udp: SocketAddr,
    #[schema(value_type = String)]
    pub sip_tcp: SocketAddr,
    /// Inclusive RTP port range, e.g. `10000-20000`.
    pub rtp_ports: String,
    /// The console and API are served over HTTPS (session cookies are then `Secure`).
    pub https: bool,
}

/// What every handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub clock: SharedClock,
    pub lifecycle: Lifecycle,
    pub listening: Arc<Listening>,
    /// Renders the Prometheus text exposition of all metrics.
    pub render_metrics: Arc<dyn Fn() -> String + Send + Sync>,
    /// Where uploaded files are kept while they are imported.
    pub uploads_dir: std::path::PathBuf,
    /// The PostgreSQL URL, for work that streams over its own connection (COPY); `None` on SQLite.
    pub postgres_url: Option<String>,
    /// API key verification cache and per-key rate limit.
    pub keys: Arc<auth::KeyGate>,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Dialbridge API",
        description = "Outbound dialer, inbound IVR/ACD and hybrid migration bridge. \
                       Machine clients authenticate with `Authorization: Bearer <api key>`; \
                       every error has the body `{\"error\": CODE, \"message\": TEXT}`."
    ),
    components(schemas(error::ErrorBody)),
    modifiers(&SecuritySchemes)
)]
struct ApiDoc;

/// The router and its OpenAPI document, built from the same route list.
pub fn api() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(ops::routes())
        .merge(auth::routes())
        .merge(bridge::routes())
        .merge(imports::routes())
        .merge(calls::routes())
        .merge(console::api_routes())
        .split_for_parts()
}

/// The complete application.
pub fn app(state: AppState) -> Router {
    let (router, mut doc) = api();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    let doc = Arc::new(doc);
    router
        .route(
            "/api/openapi.json",
            axum::routing::get(move || {
                let doc = doc.clone();
                async move { axum::Json(doc.as_ref().clone()) }
            }),
        )
        .merge(console::pages())
        .fallback(|| async { error::ApiError::not_found("no such route") })
        .with_state(state)
}
