//! Who is calling, and what they may do.
//!
//! Machine clients (legacy PBXs, scripts) send `Authorization: Bearer <api key>`. The key is
//! checked against its SHA-256 hash on every request; a missing, malformed, unknown or revoked key
//! is answered 401 with no hint which. Roles are checked in the handlers with [`Caller::require`].

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::Json;
use foundation::accounts::{self, ApiKey, Role};
use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::error::ApiError;

/// Requests per second and burst allowed for each API key (per node).
pub type KeyLimiter = governor::DefaultKeyedRateLimiter<String>;

pub fn key_limiter(per_second: u32, burst: u32) -> KeyLimiter {
    let rate = std::num::NonZeroU32::new(per_second.max(1)).expect("non-zero");
    let burst = std::num::NonZeroU32::new(burst.max(1)).expect("non-zero");
    governor::RateLimiter::keyed(governor::Quota::per_second(rate).allow_burst(burst))
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub key: ApiKey,
}

impl Caller {
    /// 403 unless the caller has one of `roles`.
    pub fn require(&self, roles: &[Role]) -> Result<(), ApiError> {
        if roles.contains(&self.key.role) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!("role {} may not do this", self.key.role)))
        }
    }

    /// The audit log's name for this caller.
    pub fn actor(&self) -> String {
        format!("apikey:{}", self.key.prefix)
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or_else(ApiError::unauthorized)?;
        let Some(key) = accounts::verify_api_key(&state.db, token).await? else {
            return Err(ApiError::unauthorized());
        };
        if state.key_limiter.check_key(&key.prefix).is_err() {
            return Err(ApiError::new(
                axum::http::StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "too many requests for this API key; slow down",
            ));
        }
        Ok(Caller { key })
    }
}

/// Registers the bearer scheme in the OpenAPI document.
pub(crate) struct BearerScheme;

impl utoipa::Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WhoAmI {
    /// `api_key`.
    pub kind: &'static str,
    pub name: String,
    /// The key's public prefix (the secret part is never shown again).
    pub prefix: String,
    pub role: String,
    pub scope: Option<String>,
}

/// Describes the calling API key.
#[utoipa::path(
    get, path = "/api/v1/whoami", tag = "auth",
    security(("api_key" = [])),
    responses(
        (status = 200, body = WhoAmI),
        (status = 401, body = crate::error::ErrorBody, description = "missing or invalid key"),
    )
)]
async fn whoami(caller: Caller) -> Json<WhoAmI> {
    Json(WhoAmI {
        kind: "api_key",
        name: caller.key.name,
        prefix: caller.key.prefix,
        role: caller.key.role.to_string(),
        scope: caller.key.scope,
    })
}

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(whoami))
}
