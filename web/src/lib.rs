//! The HTTP face of the appliance, on axum.
//!
//! - [`ops`]: `/healthz`, `/readyz`, `/metrics` and the OpenAPI document — no auth.
//! - [`auth`]: who is calling (API keys by `Authorization: Bearer`, people by session cookie
//!   with a CSRF token), roles enforced server-side.
//! - [`error`]: the one error body every API route answers with; [`extract`]: JSON and query
//!   extractors whose rejections use it.
//! - [`bridge`]: the DNIS pool / lease / lookup API legacy PBXs integrate against.
//! - [`imports`]: CRM list uploads, import progress and reports; [`calls`]: call records.
//! - [`apikeys`] and [`users`]: API keys (shown once, revoked at once) and console users and
//!   agents with skills, for admins.
//! - [`flows`]: inbound flows (placed validation problems, Connect import), numbers, hours;
//!   [`contacts`]: contact search and CSV/JSON export; [`recordings`]: search, playback,
//!   retention; [`integrations`]: signed, retried webhooks to the CRM; [`callbacks`]: the
//!   callbacks callers asked for; [`system`]: health, trunks and queues for the admin pages.
//! - [`console`]: the web console's pages and embedded assets (outside the OpenAPI router; pages
//!   redirect to `/login` without a session and answer 403 to roles that may not see them).
//!
//! Every API route is registered through [`utoipa_axum`] so that `/api/openapi.json` always
//! describes exactly the routes that exist. Handlers stay thin: they parse, authorise and call
//! the domain crates, which own the logic.

pub mod agent_controls;
pub mod agents;
pub mod apikeys;
pub mod auth;
pub mod bridge;
pub mod callbacks;
pub mod calls;
pub mod campaigns;
pub mod console;
pub mod contacts;
pub mod error;
pub mod extract;
pub mod flows;
pub mod imports;
pub mod integrations;
pub mod ops;
pub mod outbound;
pub mod recordings;
pub mod softphone;
pub mod system;
pub mod users;

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
    /// The SIP over TLS listener, when `sip.tls_listen` is set.
    #[schema(value_type = Option<String>)]
    pub sip_tls: Option<SocketAddr>,
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
    /// The contact runtime (flows, ACD, agents); `None` where calls are not handled (tests of
    /// the API alone).
    pub runtime: Option<inbound::runtime::Runtime>,
    /// Single calls and preview dialling; `None` where calls are not handled.
    pub outbound: Option<Arc<outbound::Outbound>>,
    /// The browser softphone's WebRTC gateway; `None` where calls are not handled.
    pub softphone: Option<Arc<softphone::Gateway>>,
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
        .merge(campaigns::routes())
        .merge(outbound::routes())
        .merge(agents::routes())
        .merge(agent_controls::routes())
        .merge(softphone::routes())
        .merge(console::api_routes())
        .merge(apikeys::routes())
        .merge(users::routes())
        .merge(flows::routes())
        .merge(contacts::routes())
        .merge(callbacks::routes())
        .merge(integrations::routes())
        .merge(recordings::routes())
        .merge(system::routes())
        .split_for_parts()
}

/// The complete application.
pub fn app(state: AppState) -> Router {
    router().with_state(state)
}

/// Every route, API and console, before the state is attached.
pub fn router() -> Router<AppState> {
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
}

/// An [`AppState`] on a fresh SQLite database in `dir`, with no runtime, dialer or softphone:
/// for calling handlers directly in unit tests.
#[cfg(test)]
pub(crate) async fn test_state(dir: &std::path::Path) -> AppState {
    let db = Db::connect(&format!("sqlite://{}/o.db", dir.display()), 1)
        .await
        .unwrap();
    db.migrate().await.unwrap();
    let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
    AppState {
        db,
        clock: Arc::new(foundation::clock::SystemClock),
        lifecycle: Lifecycle::new(),
        listening: Arc::new(Listening {
            http: addr,
            sip_udp: addr,
            sip_tcp: addr,
            rtp_ports: "1-2".into(),
            https: false,
            sip_tls: None,
        }),
        render_metrics: Arc::new(String::new),
        uploads_dir: dir.join("uploads"),
        postgres_url: None,
        keys: Arc::new(auth::KeyGate::new(100, 100)),
        runtime: None,
        outbound: None,
        softphone: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::{Method, Request, StatusCode};
    use tower::ServiceExt;

    /// The paths axum has registered, read from the router itself (its `Debug` lists them).
    fn registered_paths(router: &Router<AppState>) -> Vec<String> {
        let dbg = format!("{router:?}");
        let mut paths: Vec<String> = dbg
            .split('"')
            .skip(1)
            .step_by(2)
            .filter(|s| s.starts_with('/'))
            .map(str::to_owned)
            .collect();
        paths.sort();
        paths.dedup();
        paths
    }

    /// A login attempt from one client address beyond the burst (10) is refused with 429
    /// before the password is checked; another address is still heard (401: wrong password).
    #[tokio::test]
    async fn login_attempts_beyond_the_burst_get_429_per_address() {
        let dir = tempfile::tempdir().unwrap();
        let app = app(crate::test_state(dir.path()).await);
        let attempt = |ip: &str| {
            let mut req = Request::builder()
                .method(Method::POST)
                .uri("/api/v1/auth/login")
                .header("content-type", "application/json")
                .body(Body::from(r#"{"username": "nobody", "password": "wrong"}"#))
                .unwrap();
            let peer: SocketAddr = format!("{ip}:40000").parse().unwrap();
            req.extensions_mut()
                .insert(axum::extract::ConnectInfo(peer));
            let app = app.clone();
            async move {
                let resp = app.oneshot(req).await.unwrap();
                let status = resp.status();
                let body = axum::body::to_bytes(resp.into_body(), 4096).await.unwrap();
                (status, String::from_utf8_lossy(&body).into_owned())
            }
        };
        // The burst: ten attempts are heard (and refused for the wrong password).
        for i in 0..10 {
            let (status, body) = attempt("192.0.2.7").await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "attempt {i}: {body}");
        }
        // Then 20 a minute: thirty more attempts cannot all be heard (that would take a minute).
        let mut limited = None;
        for _ in 0..30 {
            let (status, body) = attempt("192.0.2.7").await;
            if status == StatusCode::TOO_MANY_REQUESTS {
                limited = Some(body);
                break;
            }
        }
        let body = limited.expect("no 429 after 40 attempts from one address");
        assert!(body.contains("rate_limited"), "{body}");
        let (status, body) = attempt("192.0.2.8").await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "another address is not limited: {body}"
        );
    }

    /// Every API route the router serves, with every method it answers, is in the OpenAPI
    /// document: the router is walked (paths from axum, methods by asking each path with each
    /// method and seeing which are not 404/405), so a route added with plain axum `.route(…)`
    /// instead of through `utoipa_axum` fails here.
    #[tokio::test]
    async fn every_api_route_is_in_the_openapi_document() {
        let dir = tempfile::tempdir().unwrap();
        let state = crate::test_state(dir.path()).await;
        let router = router();
        let paths = registered_paths(&router);
        assert!(
            paths.iter().any(|p| p == "/api/v1/apikeys"),
            "the router walk finds routes: {paths:?}"
        );
        let (_, doc) = api();
        let app = router.with_state(state);
        // Served outside the document on purpose: the document itself.
        let exempt = ["/api/openapi.json"];
        let mut missing = Vec::new();
        let mut checked = 0;
        for path in paths
            .iter()
            .filter(|p| p.starts_with("/api/") && !exempt.contains(&p.as_str()))
        {
            let concrete: String = path
                .split('/')
                .map(|seg| if seg.starts_with('{') { "1" } else { seg })
                .collect::<Vec<_>>()
                .join("/");
            let item = doc.paths.paths.get(path.as_str());
            for method in [
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::DELETE,
                Method::PATCH,
            ] {
                let req = Request::builder()
                    .method(method.clone())
                    .uri(&concrete)
                    .body(Body::empty())
                    .unwrap();
                let status = app.clone().oneshot(req).await.unwrap().status();
                if status == StatusCode::METHOD_NOT_ALLOWED || status == StatusCode::NOT_FOUND {
                    continue;
                }
                checked += 1;
                let documented = item.is_some_and(|i| match method {
                    Method::GET => i.get.is_some(),
                    Method::POST => i.post.is_some(),
                    Method::PUT => i.put.is_some(),
                    Method::DELETE => i.delete.is_some(),
                    _ => i.patch.is_some(),
                });
                if !documented {
                    missing.push(format!("{method} {path} (answered {status})"));
                }
            }
        }
        assert!(checked >= 30, "only {checked} API operations found");
        assert!(
            missing.is_empty(),
            "served but missing from the OpenAPI document: {missing:#?}"
        );
        // And the other way: every documented operation is served.
        for (path, item) in &doc.paths.paths {
            assert!(paths.contains(path), "{path} is documented but not routed");
            let _ = item;
        }
    }
}
