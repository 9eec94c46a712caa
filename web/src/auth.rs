//! Who is calling, and what they may do.
//!
//! Machine clients (legacy PBXs, scripts) send `Authorization: Bearer <api key>`. The key is
//! checked against its SHA-256 hash (then trusted for a few seconds, see [`KeyGate`]); a missing,
//! malformed, unknown or revoked key is answered 401 with no hint which. Roles are checked in the handlers with [`Caller::require`].

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::Json;
use foundation::accounts::{self, ApiKey, Role};
use serde::Serialize;
use sha2::{Digest, Sha256};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::error::ApiError;

/// How long a verified key is trusted without asking the database again. A revoked key stops
/// working within this time on every node.
const KEY_CACHE_TTL: Duration = Duration::from_secs(5);
const KEY_CACHE_MAX: usize = 10_000;

/// Checks API keys for every request: a short cache of verified keys (so a busy PBX costs no
/// database read per request) and a per-key rate limit (per node).
pub struct KeyGate {
    limiter: governor::DefaultKeyedRateLimiter<String>,
    /// SHA-256 of the token → the key and when it was verified.
    verified: Mutex<HashMap<[u8; 32], (ApiKey, Instant)>>,
}

impl KeyGate {
    pub fn new(per_second: u32, burst: u32) -> Self {
        let rate = std::num::NonZeroU32::new(per_second.max(1)).expect("non-zero");
        let burst = std::num::NonZeroU32::new(burst.max(1)).expect("non-zero");
        Self {
            limiter: governor::RateLimiter::keyed(governor::Quota::per_second(rate).allow_burst(burst)),
            verified: Mutex::new(HashMap::new()),
        }
    }

    async fn verify(&self, db: &foundation::Db, token: &str) -> Result<Option<ApiKey>, ApiError> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some((key, at)) = self.verified.lock().expect("key cache").get(&digest) {
            if at.elapsed() < KEY_CACHE_TTL {
                return Ok(Some(key.clone()));
            }
        }
        let key = accounts::verify_api_key(db, token).await?;
        if let Some(k) = &key {
            let mut cache = self.verified.lock().expect("key cache");
            if cache.len() >= KEY_CACHE_MAX {
                cache.retain(|_, (_, at)| at.elapsed() < KEY_CACHE_TTL);
            }
            cache.insert(digest, (k.clone(), Instant::now()));
        }
        Ok(key)
    }
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
        let Some(key) = state.keys.verify(&state.db, token).await? else {
            return Err(ApiError::unauthorized());
        };
        if state.keys.limiter.check_key(&key.prefix).is_err() {
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
