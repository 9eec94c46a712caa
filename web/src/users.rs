//! Console users and agents, managed by admins: `GET/POST /api/v1/users`,
//! `GET/PUT/DELETE /api/v1/users/{id}`.
//!
//! A user has a role, a password (argon2id; set on create, reset with PUT, which also ends the
//! user's sessions), can be disabled (sessions end at once: every request re-reads the user), and
//! agents carry skills with a proficiency 1..=5, kept in the user's JSON attributes (migration
//! 0410) as `{"skills": {…}}`. The last enabled admin can be neither demoted, disabled nor
//! deleted, and nobody deletes their own account. Every change is audited with the caller.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use foundation::accounts::{self, Role, UserChanges, UserInfo};
use foundation::clock::rfc3339_ms;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::apikeys::Admin;
use crate::apikeys::account_error;
use crate::auth::CallerKind;
use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiJson;

#[derive(Debug, Serialize, ToSchema)]
pub struct UserOut {
    pub id: i64,
    pub username: String,
    pub display_name: String,
    /// `admin`, `campaign-manager`, `supervisor` or `agent`.
    pub role: String,
    pub disabled: bool,
    /// Skill name → proficiency 1..=5 (agents).
    pub skills: BTreeMap<String, i64>,
    /// Locked after repeated wrong passwords until this time (RFC 3339), else null.
    pub locked_until: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

fn skills_of(attributes: &serde_json::Value) -> BTreeMap<String, i64> {
    attributes
        .get("skills")
        .and_then(|s| s.as_object())
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_i64().map(|v| (k.clone(), v)))
                .collect()
        })
        .unwrap_or_default()
}

fn out(u: UserInfo, now_ms: i64) -> UserOut {
    UserOut {
        skills: skills_of(&u.attributes),
        id: u.user.id,
        username: u.user.username,
        display_name: u.user.display_name,
        role: u.user.role.to_string(),
        disabled: u.user.disabled,
        locked_until: (u.locked_until > now_ms).then(|| rfc3339_ms(u.locked_until)),
        created_at: rfc3339_ms(u.created_at),
        updated_at: rfc3339_ms(u.updated_at),
    }
}

fn parse_role(s: &str) -> Result<Role, ApiError> {
    s.parse()
        .map_err(|e: anyhow::Error| ApiError::bad_request(e.to_string()))
}

/// Every user, by name.
#[utoipa::path(get, path = "/api/v1/users", tag = "users", security(("api_key" = []), ("session" = [])),
    responses((status = 200, body = [UserOut]), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn list(State(st): State<AppState>, _: Admin) -> Result<Json<Vec<UserOut>>, ApiError> {
    let now = st.clock.now_ms();
    Ok(Json(
        accounts::list_users(&st.db)
            .await?
            .into_iter()
            .map(|u| out(u, now))
            .collect(),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    /// 1-64 letters, digits, `.`, `_`, `-`, `@`.
    pub username: String,
    pub role: String,
    /// At least 8 characters.
    pub password: String,
    #[serde(default)]
    pub display_name: String,
    /// Skill name → proficiency 1..=5.
    #[serde(default)]
    pub skills: BTreeMap<String, serde_json::Value>,
}

/// Creates a user (an agent with skills, a supervisor, …).
#[utoipa::path(post, path = "/api/v1/users", tag = "users", security(("api_key" = []), ("session" = [])),
    request_body = CreateUser,
    responses((status = 201, body = UserOut), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "the user name is taken")))]
async fn create(
    State(st): State<AppState>,
    Admin(caller): Admin,
    ApiJson(b): ApiJson<CreateUser>,
) -> Result<Response, ApiError> {
    let role = parse_role(&b.role)?;
    let attributes = serde_json::json!({ "skills": b.skills });
    let now = st.clock.now_ms();
    let u = accounts::create_user_with(
        &st.db,
        now,
        b.username.trim(),
        role,
        &b.password,
        b.display_name.trim(),
        &attributes,
        &caller.actor(),
    )
    .await
    .map_err(account_error)?;
    Ok((StatusCode::CREATED, Json(out(u, now))).into_response())
}

/// One user.
#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "users", security(("api_key" = []), ("session" = [])),
    params(("id" = i64, Path)),
    responses((status = 200, body = UserOut), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_one(
    State(st): State<AppState>,
    _: Admin,
    Path(id): Path<i64>,
) -> Result<Json<UserOut>, ApiError> {
    let u = accounts::user_info(&st.db, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("user {id} not found")))?;
    Ok(Json(out(u, st.clock.now_ms())))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUser {
    pub display_name: Option<String>,
    pub role: Option<String>,
    pub disabled: Option<bool>,
    /// A new password (at least 8 characters); ends the user's sessions and any lockout.
    pub password: Option<String>,
    /// Replaces the skills (name → proficiency 1..=5); other attributes are kept.
    pub skills: Option<BTreeMap<String, serde_json::Value>>,
}

/// Changes a user; fields left out stay as they are.
#[utoipa::path(put, path = "/api/v1/users/{id}", tag = "users", security(("api_key" = []), ("session" = [])),
    params(("id" = i64, Path)), request_body = UpdateUser,
    responses((status = 200, body = UserOut), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "would leave no enabled admin")))]
async fn update(
    State(st): State<AppState>,
    Admin(caller): Admin,
    Path(id): Path<i64>,
    ApiJson(b): ApiJson<UpdateUser>,
) -> Result<Json<UserOut>, ApiError> {
    let live_skills = b.skills.clone();
    let attributes = match b.skills {
        Some(skills) => {
            let current = accounts::user_info(&st.db, id)
                .await?
                .ok_or_else(|| ApiError::not_found(format!("user {id} not found")))?;
            let mut attrs = current.attributes;
            if !attrs.is_object() {
                attrs = serde_json::json!({});
            }
            attrs["skills"] = serde_json::json!(skills);
            Some(attrs)
        }
        None => None,
    };
    let changes = UserChanges {
        display_name: b.display_name.map(|d| d.trim().to_owned()),
        role: b.role.as_deref().map(parse_role).transpose()?,
        disabled: b.disabled,
        attributes,
        password: b.password,
    };
    let now = st.clock.now_ms();
    let u = accounts::update_user(&st.db, now, id, &changes, &caller.actor())
        .await
        .map_err(account_error)?;
    // A logged-in agent routes with the new skills at once (not only from its next login).
    if let (Some(rt), Some(skills)) = (&st.runtime, live_skills) {
        let skills = skills
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), u8::try_from(v.as_u64()?).ok()?)))
            .collect();
        match rt
            .update_agent_profile(&u.user.username, None, skills)
            .await
        {
            Ok(()) | Err(inbound::runtime::RuntimeError::UnknownAgent(_)) => {}
            Err(e) => {
                tracing::warn!(user = %u.user.username, error = %e, "skills saved; the logged-in agent keeps its routing until its next login")
            }
        }
    }
    Ok(Json(out(u, now)))
}

/// Deletes a user and their sessions (their audit trail stays).
#[utoipa::path(delete, path = "/api/v1/users/{id}", tag = "users", security(("api_key" = []), ("session" = [])),
    params(("id" = i64, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "the last enabled admin, or your own account")))]
async fn delete(
    State(st): State<AppState>,
    Admin(caller): Admin,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    if matches!(caller.kind, CallerKind::User { id: me, .. } if me == id) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            "you cannot delete your own account",
        ));
    }
    accounts::delete_user(&st.db, st.clock.now_ms(), id, &caller.actor())
        .await
        .map_err(account_error)?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get_one, update, delete))
}
