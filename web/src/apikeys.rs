//! API keys for machines (issue #5: legacy PBXs, scripts), managed by admins.
//!
//! `POST /api/v1/apikeys` creates a key with a role and an optional bridge-pool scope and answers
//! the secret token once (only its SHA-256 is stored); `GET` lists keys by their clear prefix;
//! `DELETE /api/v1/apikeys/{id}` revokes at once: the row is marked revoked and this node's
//! verification cache ([`crate::auth::KeyGate`]) forgets the key before the answer is sent, so
//! the very next request with it gets 401 (other nodes follow within the cache's 5 s).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use foundation::accounts::{self, AccountError, ApiKeyInfo, Role};
use foundation::clock::rfc3339_ms;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::auth::{Caller, CallerKind};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiQuery};

const ADMIN: &[Role] = &[Role::Admin];

/// An admin caller. The role is checked while extracting, before the body is read, so a caller
/// without the role gets 403 whatever they send (never a 400 describing the body).
pub(crate) struct Admin(pub Caller);

impl axum::extract::FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Self, ApiError> {
        let caller = Caller::from_request_parts(parts, state).await?;
        caller.require(ADMIN)?;
        Ok(Admin(caller))
    }
}

/// Maps the account layer's refusals to the API's error body.
pub(crate) fn account_error(e: AccountError) -> ApiError {
    match e {
        AccountError::Invalid(m) => ApiError::bad_request(m),
        AccountError::NotFound(m) => ApiError::not_found(format!("{m} not found")),
        AccountError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "conflict", m),
        AccountError::Db(e) => ApiError::internal(e),
    }
}

/// A key as listed: never the secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyOut {
    pub id: i64,
    pub name: String,
    /// The clear prefix the token starts with (`dbk_<prefix>_…`), shown in logs and the audit log.
    pub prefix: String,
    /// `admin`, `campaign-manager`, `supervisor`, `agent` or `legacy-pbx`.
    pub role: String,
    /// The bridge pool the key is limited to, if any.
    pub pool: Option<String>,
    pub created_by: Option<String>,
    /// RFC 3339 UTC.
    pub created_at: String,
    /// RFC 3339 UTC; null while the key is live.
    pub revoked_at: Option<String>,
}

impl From<ApiKeyInfo> for ApiKeyOut {
    fn from(k: ApiKeyInfo) -> Self {
        ApiKeyOut {
            id: k.id,
            name: k.name,
            prefix: k.prefix,
            role: k.role.to_string(),
            pool: k.scope,
            created_by: k.created_by,
            created_at: rfc3339_ms(k.created_at),
            revoked_at: k.revoked_at.map(rfc3339_ms),
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// Include revoked keys (default false).
    pub include_revoked: Option<bool>,
}

/// Lists API keys, newest first.
#[utoipa::path(get, path = "/api/v1/apikeys", tag = "apikeys", security(("api_key" = []), ("session" = [])),
    params(ListParams),
    responses((status = 200, body = [ApiKeyOut]), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn list(
    State(st): State<AppState>,
    _: Admin,
    ApiQuery(q): ApiQuery<ListParams>,
) -> Result<Json<Vec<ApiKeyOut>>, ApiError> {
    let keys = accounts::list_api_keys(&st.db, q.include_revoked.unwrap_or(false)).await?;
    Ok(Json(keys.into_iter().map(ApiKeyOut::from).collect()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    /// What the key is for, e.g. `legacy-pbx-chicago` (1-64 characters).
    pub name: String,
    /// `admin`, `campaign-manager`, `supervisor`, `agent` or `legacy-pbx`.
    pub role: String,
    /// Limits the key to one bridge pool (required for `legacy-pbx` keys).
    pub pool: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedKey {
    pub key: ApiKeyOut,
    /// The bearer token. Shown only in this answer: store it now.
    pub token: String,
}

/// Creates a key and answers its token once.
#[utoipa::path(post, path = "/api/v1/apikeys", tag = "apikeys", security(("api_key" = []), ("session" = [])),
    request_body = CreateKey,
    responses((status = 201, body = CreatedKey), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody)))]
async fn create(
    State(st): State<AppState>,
    Admin(caller): Admin,
    ApiJson(b): ApiJson<CreateKey>,
) -> Result<Response, ApiError> {
    let name = b.name.trim();
    if name.is_empty() || name.chars().count() > 64 {
        return Err(ApiError::bad_request("name must be 1-64 characters"));
    }
    let role: Role = b
        .role
        .parse()
        .map_err(|e: anyhow::Error| ApiError::bad_request(e.to_string()))?;
    let pool = b.pool.as_deref().map(str::trim).filter(|p| !p.is_empty());
    if role == Role::LegacyPbx && pool.is_none() {
        return Err(ApiError::bad_request(
            "a legacy-pbx key must name the pool it may use (pool)",
        ));
    }
    if let Some(p) = pool {
        match bridge::pool::get(&st.db, p).await {
            Ok(_) => {}
            Err(bridge::error::BridgeError::UnknownPool(_)) => {
                return Err(ApiError::bad_request(format!("pool {p:?} does not exist")));
            }
            Err(e) => return Err(ApiError::internal(e.into())),
        }
    }
    let created_by = match &caller.kind {
        CallerKind::User { id, .. } => Some(*id),
        CallerKind::Key(_) => None,
    };
    let now = st.clock.now_ms();
    let (key, token) = accounts::create_api_key(&st.db, now, name, role, pool, created_by).await?;
    let info = ApiKeyInfo {
        id: key.id,
        name: key.name,
        prefix: key.prefix,
        role: key.role,
        scope: key.scope,
        created_by: match &caller.kind {
            CallerKind::User { username, .. } => Some(username.clone()),
            CallerKind::Key(_) => None,
        },
        created_at: now,
        revoked_at: None,
    };
    Ok((
        StatusCode::CREATED,
        Json(CreatedKey {
            key: info.into(),
            token,
        }),
    )
        .into_response())
}

/// Revokes a key at once (idempotent: revoking a revoked key answers 204 again).
#[utoipa::path(delete, path = "/api/v1/apikeys/{id}", tag = "apikeys", security(("api_key" = []), ("session" = [])),
    params(("id" = i64, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn revoke(
    State(st): State<AppState>,
    Admin(caller): Admin,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    let prefix = accounts::revoke_api_key_by_id(&st.db, st.clock.now_ms(), id, &caller.actor())
        .await
        .map_err(account_error)?;
    st.keys.forget(&prefix);
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(revoke))
}
