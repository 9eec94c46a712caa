//! Who is calling, and what they may do.
//!
//! Two kinds of caller, one [`Caller`]:
//! - machines (legacy PBXs, scripts) send `Authorization: Bearer <api key>`. The key is checked
//!   against its SHA-256 hash (then trusted for a few seconds, see [`KeyGate`]);
//! - people log in to the console and carry a session cookie (HttpOnly, SameSite=Lax). A request
//!   that changes state with a cookie must also send the session's CSRF token in `X-CSRF-Token`.
//!
//! A missing, malformed, unknown, expired or revoked credential is answered 401 with no hint
//! which. Roles are checked server-side in every handler with [`Caller::require`]. Logins are
//! limited per client address (`governor`) and accounts lock after repeated failures
//! ([`foundation::sessions`]).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use foundation::accounts::{self, ApiKey, Role};
use foundation::sessions::{self, Login};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::openapi::security::{
    ApiKey as ApiKeyScheme, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme,
};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiJson;

pub const SESSION_COOKIE: &str = "dialbridge_session";
pub const CSRF_HEADER: &str = "x-csrf-token";

/// How long a verified key is trusted without asking the database again. A revoked key stops
/// working within this time on every node.
const KEY_CACHE_TTL: Duration = Duration::from_secs(5);
const KEY_CACHE_MAX: usize = 10_000;

/// Checks credentials for every request: a short cache of verified API keys (so a busy PBX costs
/// no database read per request), a per-key rate limit and a per-address login limit (per node).
pub struct KeyGate {
    limiter: governor::DefaultKeyedRateLimiter<String>,
    logins: governor::DefaultKeyedRateLimiter<IpAddr>,
    verified: Mutex<HashMap<[u8; 32], (ApiKey, Instant)>>,
}

/// How long a console session lasts. (The cookie is `Secure` when the console serves HTTPS.)
const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);

impl KeyGate {
    pub fn new(per_second: u32, burst: u32) -> Self {
        let nz = |n: u32| std::num::NonZeroU32::new(n.max(1)).expect("non-zero");
        Self {
            limiter: governor::RateLimiter::keyed(
                governor::Quota::per_second(nz(per_second)).allow_burst(nz(burst)),
            ),
            logins: governor::RateLimiter::keyed(
                governor::Quota::per_minute(nz(20)).allow_burst(nz(10)),
            ),
            verified: Mutex::new(HashMap::new()),
        }
    }

    /// Stops trusting a key at once on this node (called when it is revoked); other nodes stop
    /// within `KEY_CACHE_TTL`.
    pub fn forget(&self, prefix: &str) {
        self.verified
            .lock()
            .expect("key cache")
            .retain(|_, (k, _)| k.prefix != prefix);
    }

    async fn verify_key(
        &self,
        db: &foundation::Db,
        token: &str,
    ) -> Result<Option<ApiKey>, ApiError> {
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

/// An authenticated caller: an API key or a logged-in person.
#[derive(Debug, Clone)]
pub struct Caller {
    pub role: Role,
    /// Limits the caller to one resource (a key's bridge pool).
    pub scope: Option<String>,
    pub kind: CallerKind,
}

#[derive(Debug, Clone)]
pub enum CallerKind {
    Key(ApiKey),
    User {
        id: i64,
        username: String,
        csrf_token: String,
    },
}

impl Caller {
    /// 403 unless the caller has one of `roles`.
    pub fn require(&self, roles: &[Role]) -> Result<(), ApiError> {
        if roles.contains(&self.role) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "role {} may not do this",
                self.role
            )))
        }
    }

    /// The caller as an agent of the contact runtime: the console user's name, or an API key's
    /// name (keys for synthetic or integrated agents).
    pub fn agent_id(&self) -> String {
        match &self.kind {
            CallerKind::Key(k) => k.name.clone(),
            CallerKind::User { username, .. } => username.clone(),
        }
    }

    /// Writes a successful `action` on `subject` by this caller to the audit log.
    pub async fn audit_ok(
        &self,
        st: &crate::AppState,
        action: &str,
        subject: &str,
    ) -> anyhow::Result<()> {
        let actor = self.actor();
        let entry = foundation::audit::Entry {
            actor: &actor,
            action,
            subject: Some(subject),
            result: "ok",
            detail: None,
        };
        foundation::audit::record(st.db.pool(), st.clock.now_ms(), &entry).await
    }

    /// The audit log's name for this caller.
    pub fn actor(&self) -> String {
        match &self.kind {
            CallerKind::Key(k) => format!("apikey:{}", k.prefix),
            CallerKind::User { username, .. } => format!("user:{username}"),
        }
    }
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

fn changes_state(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let bearer = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        if let Some(token) = bearer {
            let Some(key) = state.keys.verify_key(&state.db, token).await? else {
                return Err(ApiError::unauthorized());
            };
            if state.keys.limiter.check_key(&key.prefix).is_err() {
                return Err(ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limited",
                    "too many requests for this API key; slow down",
                ));
            }
            return Ok(Caller {
                role: key.role,
                scope: key.scope.clone(),
                kind: CallerKind::Key(key),
            });
        }
        let Some(token) = cookie(&parts.headers, SESSION_COOKIE) else {
            return Err(ApiError::unauthorized());
        };
        let Some(session) = sessions::lookup(&state.db, state.clock.now_ms(), &token).await? else {
            return Err(ApiError::unauthorized());
        };
        if changes_state(&parts.method) {
            let sent = parts
                .headers
                .get(CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let ok: bool = subtle_eq(sent.as_bytes(), session.csrf_token.as_bytes());
            if !ok {
                return Err(ApiError::forbidden(
                    "missing or wrong CSRF token (send X-CSRF-Token)",
                ));
            }
        }
        Ok(Caller {
            role: session.user.role,
            scope: None,
            kind: CallerKind::User {
                id: session.user.id,
                username: session.user.username,
                csrf_token: session.csrf_token,
            },
        })
    }
}

fn subtle_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Registers both schemes in the OpenAPI document.
pub(crate) struct SecuritySchemes;

impl utoipa::Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKeyScheme::Cookie(ApiKeyValue::new(SESSION_COOKIE))),
        );
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WhoAmI {
    /// `api_key` or `user`.
    pub kind: &'static str,
    /// The user name, or the key's name.
    pub name: String,
    /// The key's public prefix (API keys only; the secret is never shown again).
    pub prefix: Option<String>,
    pub role: String,
    pub scope: Option<String>,
    /// The session's CSRF token (sessions only).
    pub csrf_token: Option<String>,
}

impl From<&Caller> for WhoAmI {
    fn from(c: &Caller) -> Self {
        match &c.kind {
            CallerKind::Key(k) => WhoAmI {
                kind: "api_key",
                name: k.name.clone(),
                prefix: Some(k.prefix.clone()),
                role: c.role.to_string(),
                scope: c.scope.clone(),
                csrf_token: None,
            },
            CallerKind::User {
                username,
                csrf_token,
                ..
            } => WhoAmI {
                kind: "user",
                name: username.clone(),
                prefix: None,
                role: c.role.to_string(),
                scope: None,
                csrf_token: Some(csrf_token.clone()),
            },
        }
    }
}

/// Describes the caller.
#[utoipa::path(
    get, path = "/api/v1/whoami", tag = "auth",
    security(("api_key" = []), ("session" = [])),
    responses((status = 200, body = WhoAmI), (status = 401, body = ErrorBody, description = "no valid credential"))
)]
async fn whoami(caller: Caller) -> Json<WhoAmI> {
    Json(WhoAmI::from(&caller))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    pub username: String,
    pub password: String,
}

/// Logs a person in: sets the session cookie and returns the CSRF token.
#[utoipa::path(
    post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginBody,
    responses(
        (status = 200, body = WhoAmI),
        (status = 401, body = ErrorBody, description = "wrong credentials or locked account"),
        (status = 429, body = ErrorBody, description = "too many attempts from this address"),
    )
)]
async fn login(
    State(st): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ApiJson(b): ApiJson<LoginBody>,
) -> Result<Response, ApiError> {
    if st.keys.logins.check_key(&peer.ip()).is_err() {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many login attempts; wait a minute",
        ));
    }
    let ttl_ms = SESSION_TTL.as_millis() as i64;
    match sessions::login(
        &st.db,
        st.clock.now_ms(),
        &b.username,
        &b.password,
        ttl_ms,
        &peer.ip().to_string(),
    )
    .await?
    {
        Login::Ok { token, session } => {
            let secure = if st.listening.https { "; Secure" } else { "" };
            let cookie = format!(
                "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{secure}",
                SESSION_TTL.as_secs()
            );
            let caller = Caller {
                role: session.user.role,
                scope: None,
                kind: CallerKind::User {
                    id: session.user.id,
                    username: session.user.username,
                    csrf_token: session.csrf_token,
                },
            };
            let mut resp = Json(WhoAmI::from(&caller)).into_response();
            resp.headers_mut().insert(
                header::SET_COOKIE,
                HeaderValue::from_str(&cookie).expect("cookie is ASCII"),
            );
            Ok(resp)
        }
        Login::Denied | Login::Locked { .. } => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "wrong user name or password, or the account is locked for a while",
        )),
    }
}

/// Ends the session.
#[utoipa::path(
    post, path = "/api/v1/auth/logout", tag = "auth", security(("session" = [])),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody, description = "CSRF token missing"))
)]
async fn logout(
    State(st): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if let (CallerKind::User { .. }, Some(token)) = (&caller.kind, cookie(&headers, SESSION_COOKIE))
    {
        sessions::logout(&st.db, &token).await?;
    }
    let mut resp = StatusCode::NO_CONTENT.into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("dialbridge_session=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0"),
    );
    Ok(resp)
}

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(whoami))
        .routes(routes!(login))
        .routes(routes!(logout))
}
