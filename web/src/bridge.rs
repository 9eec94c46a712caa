//! The bridge API legacy PBXs integrate against: pools, leases, lookups. Keep it stable.
//!
//! Handlers authorise (pool management: `admin`; lease, lookup, release: `admin` or a
//! `legacy-pbx` key, limited to its pool when the key has one) and call [`bridge`], which owns
//! every semantic. Errors map one-to-one: see [`impl From<BridgeError> for ApiError`].

use axum::Json;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use bridge::BridgeError;
use bridge::lease::{self, LeaseRequest};
use bridge::pool::{self, Direction, PoolSpec};
use bridge::router;
use foundation::accounts::Role;
use foundation::clock::rfc3339_ms;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiQuery};

/// Bodies above this are refused with 413 before they are parsed (lease data may be 32 KiB).
const BODY_LIMIT: usize = 64 * 1024;
const LEASE_ROLES: &[Role] = &[Role::Admin, Role::LegacyPbx];
const ADMIN: &[Role] = &[Role::Admin];

impl From<BridgeError> for ApiError {
    fn from(e: BridgeError) -> Self {
        let message = e.to_string();
        let (status, code) = match e {
            BridgeError::Invalid(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            BridgeError::DataTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            BridgeError::UnknownPool(_) => (StatusCode::NOT_FOUND, "unknown_pool"),
            BridgeError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            BridgeError::PoolExhausted(_) => (StatusCode::SERVICE_UNAVAILABLE, "pool_exhausted"),
            BridgeError::Unknown => (StatusCode::NOT_FOUND, "unknown"),
            BridgeError::Expired => (StatusCode::GONE, "expired"),
            BridgeError::NoSuchLease => (StatusCode::NOT_FOUND, "unknown_lease"),
            BridgeError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            BridgeError::Internal(e) => return ApiError::internal(e),
        };
        ApiError::new(status, code, message)
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PoolBody {
    pub name: String,
    /// E.164 numbers, e.g. `+13125550100`.
    pub numbers: Vec<String>,
    #[schema(value_type = String, example = "to_legacy")]
    pub direction: Direction,
    /// Default 120.
    pub lease_ttl_s: Option<u64>,
    /// Default 10.
    pub cooldown_s: Option<u64>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PoolUpdateBody {
    /// The complete new set of numbers; numbers left out are removed.
    pub numbers: Vec<String>,
    #[schema(value_type = String, example = "to_legacy")]
    pub direction: Direction,
    pub lease_ttl_s: Option<u64>,
    pub cooldown_s: Option<u64>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NumbersBody {
    pub numbers: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PoolOut {
    pub name: String,
    #[schema(value_type = String, example = "to_legacy")]
    pub direction: Direction,
    pub lease_ttl_s: u64,
    pub cooldown_s: u64,
    pub numbers: Vec<String>,
    /// Numbers holding an unexpired lease now.
    pub leased: u64,
    /// Numbers that could be leased now.
    pub available: u64,
}

impl From<pool::PoolView> for PoolOut {
    fn from(v: pool::PoolView) -> Self {
        PoolOut {
            name: v.pool.name,
            direction: v.pool.direction,
            lease_ttl_s: v.pool.lease_ttl_s,
            cooldown_s: v.pool.cooldown_s,
            numbers: v.numbers,
            leased: v.leased,
            available: v.available,
        }
    }
}

fn spec(
    name: String,
    numbers: Vec<String>,
    direction: Direction,
    ttl: Option<u64>,
    cooldown: Option<u64>,
) -> PoolSpec {
    PoolSpec {
        name,
        numbers,
        direction,
        lease_ttl_s: ttl.unwrap_or(pool::DEFAULT_LEASE_TTL_S),
        cooldown_s: cooldown.unwrap_or(pool::DEFAULT_COOLDOWN_S),
    }
}

/// Creates a DNIS pool.
#[utoipa::path(post, path = "/api/v1/bridge/pools", tag = "bridge", security(("api_key" = [])),
    request_body = PoolBody,
    responses((status = 201, body = PoolOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 409, body = ErrorBody, description = "name or number taken")))]
async fn create_pool(
    State(st): State<AppState>,
    caller: Caller,
    ApiJson(b): ApiJson<PoolBody>,
) -> Result<impl IntoResponse, ApiError> {
    caller.require(ADMIN)?;
    let now = st.clock.now_ms();
    let s = spec(b.name, b.numbers, b.direction, b.lease_ttl_s, b.cooldown_s);
    pool::create(&st.db, now, &caller.actor(), &s).await?;
    let view = pool::view(&st.db, now, &s.name).await?;
    Ok((StatusCode::CREATED, Json(PoolOut::from(view))))
}

/// Lists pools (a pool-limited key sees its own).
#[utoipa::path(get, path = "/api/v1/bridge/pools", tag = "bridge", security(("api_key" = [])),
    responses((status = 200, body = Vec<PoolOut>), (status = 401, body = ErrorBody)))]
async fn list_pools(
    State(st): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<PoolOut>>, ApiError> {
    caller.require(LEASE_ROLES)?;
    let pools = pool::list(&st.db, st.clock.now_ms()).await?;
    Ok(Json(
        pools
            .into_iter()
            .filter(|p| caller.scope.as_ref().is_none_or(|s| *s == p.pool.name))
            .map(PoolOut::from)
            .collect(),
    ))
}

fn scoped(caller: &Caller, pool: &str) -> Result<(), ApiError> {
    match &caller.scope {
        Some(s) if s != pool => Err(BridgeError::UnknownPool(pool.to_owned()).into()),
        _ => Ok(()),
    }
}

/// One pool with its numbers and usage.
#[utoipa::path(get, path = "/api/v1/bridge/pools/{name}", tag = "bridge", security(("api_key" = [])),
    params(("name" = String, Path)),
    responses((status = 200, body = PoolOut), (status = 404, body = ErrorBody)))]
async fn get_pool(
    State(st): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<PoolOut>, ApiError> {
    caller.require(LEASE_ROLES)?;
    scoped(&caller, &name)?;
    Ok(Json(
        pool::view(&st.db, st.clock.now_ms(), &name).await?.into(),
    ))
}

/// Replaces a pool's settings and number set.
#[utoipa::path(put, path = "/api/v1/bridge/pools/{name}", tag = "bridge", security(("api_key" = [])),
    params(("name" = String, Path)), request_body = PoolUpdateBody,
    responses((status = 200, body = PoolOut), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn update_pool(
    State(st): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    ApiJson(b): ApiJson<PoolUpdateBody>,
) -> Result<Json<PoolOut>, ApiError> {
    caller.require(ADMIN)?;
    let now = st.clock.now_ms();
    pool::update(
        &st.db,
        now,
        &caller.actor(),
        &spec(
            name.clone(),
            b.numbers,
            b.direction,
            b.lease_ttl_s,
            b.cooldown_s,
        ),
    )
    .await?;
    Ok(Json(pool::view(&st.db, now, &name).await?.into()))
}

/// Deletes a pool; its open leases end with reason `pool_deleted`.
#[utoipa::path(delete, path = "/api/v1/bridge/pools/{name}", tag = "bridge", security(("api_key" = [])),
    params(("name" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn delete_pool(
    State(st): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(ADMIN)?;
    pool::delete(&st.db, st.clock.now_ms(), &caller.actor(), &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Adds numbers to a pool at runtime.
#[utoipa::path(post, path = "/api/v1/bridge/pools/{name}/numbers", tag = "bridge", security(("api_key" = [])),
    params(("name" = String, Path)), request_body = NumbersBody,
    responses((status = 200, body = PoolOut), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn add_numbers(
    State(st): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    ApiJson(b): ApiJson<NumbersBody>,
) -> Result<Json<PoolOut>, ApiError> {
    caller.require(ADMIN)?;
    let now = st.clock.now_ms();
    pool::add_numbers(&st.db, now, &caller.actor(), &name, &b.numbers).await?;
    Ok(Json(pool::view(&st.db, now, &name).await?.into()))
}

/// Removes a number at runtime (a leased number keeps serving its lease, then goes).
#[utoipa::path(delete, path = "/api/v1/bridge/pools/{name}/numbers/{dnis}", tag = "bridge", security(("api_key" = [])),
    params(("name" = String, Path), ("dnis" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn remove_number(
    State(st): State<AppState>,
    caller: Caller,
    Path((name, dnis)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    caller.require(ADMIN)?;
    pool::remove_numbers(&st.db, st.clock.now_ms(), &caller.actor(), &name, &[dnis]).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LeaseBody {
    pub pool: String,
    /// The contact's data, a JSON object of at most 32 KiB.
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
    /// Caller's number; when set, lookups that give an ANI must match it.
    pub ani: Option<String>,
    /// Overrides the pool's lease TTL (1-86400 s).
    pub ttl_s: Option<u64>,
    /// Repeating a request with the same key returns the same lease.
    pub idempotency_key: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LeaseOut {
    pub lease_id: String,
    pub dnis: String,
    pub pool: String,
    /// RFC 3339 UTC.
    pub expires_at: String,
}

/// Leases a number and stores data against it. Never blocks: an exhausted pool answers 503 at once.
#[utoipa::path(post, path = "/api/v1/bridge/leases", tag = "bridge", security(("api_key" = [])),
    request_body = LeaseBody,
    responses((status = 201, body = LeaseOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody, description = "unknown pool"),
              (status = 413, body = ErrorBody), (status = 429, body = ErrorBody),
              (status = 503, body = ErrorBody, description = "pool_exhausted")))]
async fn create_lease(
    State(st): State<AppState>,
    caller: Caller,
    ApiJson(b): ApiJson<LeaseBody>,
) -> Result<impl IntoResponse, ApiError> {
    caller.require(LEASE_ROLES)?;
    let req = LeaseRequest {
        pool: b.pool,
        data: b.data,
        ani: b.ani,
        ttl_s: b.ttl_s,
        idempotency_key: b.idempotency_key,
    };
    let l = lease::lease(
        &st.db,
        st.clock.as_ref(),
        &caller.actor(),
        caller.scope.as_deref(),
        &req,
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(LeaseOut {
            lease_id: l.lease_id,
            dnis: l.dnis,
            pool: l.pool,
            expires_at: rfc3339_ms(l.expires_at_ms),
        }),
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct LookupParams {
    /// The number the call arrived on.
    pub dnis: String,
    /// The calling number, checked against the lease's ANI when both are known.
    pub ani: Option<String>,
    /// End the lease in the same atomic step (a retry within the cooldown gets the same data).
    #[serde(default)]
    pub consume: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LookupOut {
    pub lease_id: String,
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
    /// RFC 3339 UTC.
    pub leased_at: String,
    pub dnis: String,
    pub pool: String,
}

/// Looks up the data leased on a number.
#[utoipa::path(get, path = "/api/v1/bridge/lookup", tag = "bridge", security(("api_key" = [])),
    params(LookupParams),
    responses((status = 200, body = LookupOut), (status = 404, body = ErrorBody, description = "unknown"),
              (status = 410, body = ErrorBody, description = "expired")))]
async fn lookup(
    State(st): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<LookupParams>,
) -> Result<Json<LookupOut>, ApiError> {
    caller.require(LEASE_ROLES)?;
    let f = lease::lookup(
        &st.db,
        st.clock.as_ref(),
        &caller.actor(),
        caller.scope.as_deref(),
        &q.dnis,
        q.ani.as_deref(),
        q.consume,
    )
    .await?;
    Ok(Json(LookupOut {
        lease_id: f.lease_id,
        data: f.data,
        leased_at: rfc3339_ms(f.leased_at_ms),
        dnis: f.dnis,
        pool: f.pool,
    }))
}

/// Releases a lease early and wipes its data (idempotent).
#[utoipa::path(delete, path = "/api/v1/bridge/leases/{lease_id}", tag = "bridge", security(("api_key" = [])),
    params(("lease_id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn release(
    State(st): State<AppState>,
    caller: Caller,
    Path(lease_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(LEASE_ROLES)?;
    lease::release(
        &st.db,
        st.clock.as_ref(),
        &caller.actor(),
        caller.scope.as_deref(),
        &lease_id,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_pool, list_pools))
        .routes(routes!(get_pool, update_pool, delete_pool))
        .routes(routes!(add_numbers))
        .routes(routes!(remove_number))
        .routes(routes!(create_lease))
        .routes(routes!(lookup))
        .routes(routes!(release))
        .merge(router_routes())
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteBody {
    /// `number`, `line_of_business` or `site`.
    #[schema(value_type = String, example = "number")]
    pub match_kind: router::MatchKind,
    pub match_value: String,
    /// Share of calls (0-100) sent to the legacy platform.
    pub legacy_percent: u8,
    pub local_flow: Option<String>,
    pub legacy_target: Option<String>,
}

impl From<RouteBody> for router::Route {
    fn from(b: RouteBody) -> Self {
        router::Route {
            match_kind: b.match_kind,
            match_value: b.match_value,
            legacy_percent: b.legacy_percent,
            local_flow: b.local_flow,
            legacy_target: b.legacy_target,
        }
    }
}

impl From<router::Route> for RouteBody {
    fn from(r: router::Route) -> Self {
        RouteBody {
            match_kind: r.match_kind,
            match_value: r.match_value,
            legacy_percent: r.legacy_percent,
            local_flow: r.local_flow,
            legacy_target: r.legacy_target,
        }
    }
}

/// The migration router's table.
#[utoipa::path(get, path = "/api/v1/bridge/routes", tag = "bridge", security(("api_key" = [])),
    responses((status = 200, body = Vec<RouteBody>), (status = 403, body = ErrorBody)))]
async fn list_routes(
    State(st): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<RouteBody>>, ApiError> {
    caller.require(ADMIN)?;
    Ok(Json(
        router::list(&st.db)
            .await?
            .into_iter()
            .map(RouteBody::from)
            .collect(),
    ))
}

/// Creates or replaces a route; the next call follows it (no restart).
#[utoipa::path(put, path = "/api/v1/bridge/routes", tag = "bridge", security(("api_key" = [])),
    request_body = RouteBody,
    responses((status = 200, body = RouteBody), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn put_route(
    State(st): State<AppState>,
    caller: Caller,
    ApiJson(b): ApiJson<RouteBody>,
) -> Result<Json<RouteBody>, ApiError> {
    caller.require(ADMIN)?;
    let r: router::Route = b.into();
    router::put(&st.db, st.clock.now_ms(), &caller.actor(), &r).await?;
    Ok(Json(r.into()))
}

/// Deletes a route.
#[utoipa::path(delete, path = "/api/v1/bridge/routes/{match_kind}/{match_value}", tag = "bridge", security(("api_key" = [])),
    params(("match_kind" = String, Path), ("match_value" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn delete_route(
    State(st): State<AppState>,
    caller: Caller,
    Path((kind, value)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    caller.require(ADMIN)?;
    let kind: router::MatchKind =
        serde_json::from_value(serde_json::Value::String(kind)).map_err(|_| {
            ApiError::bad_request("match_kind must be number, line_of_business or site")
        })?;
    if router::delete(&st.db, st.clock.now_ms(), &caller.actor(), kind, &value).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("no such route"))
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DecisionParams {
    pub dialed: String,
    pub caller: Option<String>,
    pub line_of_business: Option<String>,
    pub site: Option<String>,
}

/// Where a call with these facts would go now (for checking a cutover before it takes calls).
#[utoipa::path(get, path = "/api/v1/bridge/routes/decision", tag = "bridge", security(("api_key" = [])),
    params(DecisionParams),
    responses((status = 200, description = "`{\"to\": \"default\" | \"local\" | \"legacy\", ...}`")))]
async fn route_decision(
    State(st): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<DecisionParams>,
) -> Result<Json<router::Decision>, ApiError> {
    caller.require(ADMIN)?;
    let facts = router::CallFacts {
        dialed: &q.dialed,
        line_of_business: q.line_of_business.as_deref(),
        site: q.site.as_deref(),
        caller: q.caller.as_deref(),
        call_id: "preview",
    };
    Ok(Json(router::route(&st.db, &facts).await?))
}

pub(crate) fn router_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_routes, put_route))
        .routes(routes!(delete_route))
        .routes(routes!(route_decision))
        .routes(routes!(arrivals))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ArrivalParams {
    pub dnis: Option<String>,
    /// At most this many, newest first (default 50, at most 1000).
    pub limit: Option<i64>,
}

/// Calls that arrived from the legacy platform on a `from_legacy` number, with the data attached.
#[utoipa::path(get, path = "/api/v1/bridge/arrivals", tag = "bridge", security(("api_key" = []), ("session" = [])),
    params(ArrivalParams),
    responses((status = 200, description = "`[{call_ref, dnis, ani, pool, result, lease_id, data, arrived_at_ms}]`")))]
async fn arrivals(
    State(st): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ArrivalParams>,
) -> Result<Json<Vec<bridge::calls::Arrival>>, ApiError> {
    caller.require(&[Role::Admin, Role::Supervisor])?;
    let limit = q.limit.unwrap_or(50).clamp(1, 1000);
    Ok(Json(
        bridge::calls::recent(&st.db, q.dnis.as_deref(), limit).await?,
    ))
}
