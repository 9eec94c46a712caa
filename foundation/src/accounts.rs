//! Users, roles, passwords and API keys.
//!
//! Passwords are hashed with argon2id (slow on purpose: checked once per login). API keys are
//! checked on every machine request, so they are 256-bit random secrets hashed with SHA-256 (fast,
//! and safe because the secret has full entropy). A key reads `dbk_<prefix>_<secret>`; the 8-char
//! prefix is stored in clear to find the row without a scan, and is what logs and the console show.

use std::fmt;
use std::str::FromStr;

use anyhow::{Context, bail};
use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::{Db, audit, ids};

/// What a user or a key may do. Enforced server-side on every route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    Admin,
    CampaignManager,
    Supervisor,
    Agent,
    /// A legacy PBX integrating with the bridge: lease, look up and release in its pools only.
    LegacyPbx,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Admin,
        Role::CampaignManager,
        Role::Supervisor,
        Role::Agent,
        Role::LegacyPbx,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::CampaignManager => "campaign-manager",
            Role::Supervisor => "supervisor",
            Role::Agent => "agent",
            Role::LegacyPbx => "legacy-pbx",
        }
    }

    /// Roles a person can log in with (legacy-pbx is for machines only).
    pub fn is_for_users(self) -> bool {
        self != Role::LegacyPbx
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Self> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .with_context(|| {
                let names: Vec<_> = Role::ALL.iter().map(|r| r.as_str()).collect();
                format!("unknown role {s:?} (one of: {})", names.join(", "))
            })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub display_name: String,
    pub role: Role,
    pub disabled: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct ApiKey {
    pub id: i64,
    pub name: String,
    pub prefix: String,
    pub role: Role,
    /// Limits the key to one resource, e.g. a bridge pool name.
    pub scope: Option<String>,
}

pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>())
        .map_err(|e| anyhow::anyhow!("salt: {e}"))?;
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| anyhow::anyhow!("hashing password: {e}"))?
        .to_string())
}

pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

fn validate_username(username: &str) -> anyhow::Result<()> {
    let ok = !username.is_empty()
        && username.len() <= 64
        && username
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if !ok {
        bail!("username must be 1-64 characters of letters, digits, '.', '_', '-', '@'");
    }
    Ok(())
}

pub async fn create_user(
    db: &Db,
    now_ms: i64,
    username: &str,
    role: Role,
    password: &str,
) -> anyhow::Result<i64> {
    validate_username(username)?;
    if !role.is_for_users() {
        bail!("role {role} is for API keys only");
    }
    if password.len() < 8 {
        bail!("password must be at least 8 characters");
    }
    let hash = hash_password(password)?;
    let id: Option<i64> = sqlx::query_scalar(
        "INSERT INTO users (username, role, password_hash, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $4) ON CONFLICT (username) DO NOTHING RETURNING id",
    )
    .bind(username)
    .bind(role.as_str())
    .bind(hash)
    .bind(now_ms)
    .fetch_optional(db.pool())
    .await?;
    id.with_context(|| format!("user {username:?} already exists"))
}

/// When no admin exists (a new database, or one seeded with other users first), creates the
/// `admin` user. The password is `given` or, when none is given, a random one that is returned so
/// the caller can print it once. Returns `None` when an admin already exists (nothing is created;
/// no default password ever exists).
pub async fn ensure_first_admin(
    db: &Db,
    now_ms: i64,
    given: Option<&str>,
) -> anyhow::Result<Option<FirstAdmin>> {
    let admins: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE role = 'admin'")
        .fetch_one(db.pool())
        .await?;
    if admins > 0 {
        return Ok(None);
    }
    let (password, generated) = match given {
        Some(p) => (p.to_owned(), false),
        None => (ids::random_base64url(18), true),
    };
    let hash = hash_password(&password)?;
    // Two nodes starting at once on one PostgreSQL: only the one whose insert lands reports it.
    let inserted = sqlx::query(
        "INSERT INTO users (username, display_name, role, password_hash, created_at, updated_at) \
         VALUES ('admin', 'Administrator', 'admin', $1, $2, $2) ON CONFLICT (username) DO NOTHING",
    )
    .bind(hash)
    .bind(now_ms)
    .execute(db.pool())
    .await?
    .rows_affected();
    if inserted == 0 {
        return Ok(None);
    }
    audit::record(
        db.pool(),
        now_ms,
        &audit::Entry {
            actor: "system",
            action: "user.create",
            subject: Some("admin"),
            result: "ok",
            detail: Some(serde_json::json!({"first_run": true, "generated_password": generated})),
        },
    )
    .await?;
    Ok(Some(FirstAdmin {
        generated_password: generated.then_some(password),
    }))
}

#[derive(Debug)]
pub struct FirstAdmin {
    /// Set only when the password was generated (to be shown once).
    pub generated_password: Option<String>,
}

type UserRow = (i64, String, String, String, String, i16);

fn user_from_row(r: UserRow) -> anyhow::Result<(User, String)> {
    let (id, username, display_name, role, hash, disabled) = r;
    Ok((
        User {
            id,
            username,
            display_name,
            role: role.parse()?,
            disabled: disabled != 0,
        },
        hash,
    ))
}

/// Checks a username and password; `None` for an unknown user, a wrong password or a disabled
/// account (callers must not tell these apart to the client).
pub async fn verify_login(db: &Db, username: &str, password: &str) -> anyhow::Result<Option<User>> {
    let row: Option<UserRow> = sqlx::query_as(
        "SELECT id, username, display_name, role, password_hash, disabled FROM users WHERE username = $1",
    )
    .bind(username)
    .fetch_optional(db.pool())
    .await?;
    let Some(row) = row else {
        // Spend the same time as a real check so timing does not reveal which usernames exist.
        let _ = verify_password(password, DUMMY_HASH);
        return Ok(None);
    };
    let (user, hash) = user_from_row(row)?;
    Ok((verify_password(password, &hash) && !user.disabled).then_some(user))
}

/// A valid argon2id hash of a random password, for constant-time misses.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$N0oO2nZ2mc4bXqS6Xf7pYhU0x6rY0G0oUQ4b0QJkC9E";

pub async fn user_by_name(db: &Db, username: &str) -> anyhow::Result<Option<User>> {
    let row: Option<UserRow> = sqlx::query_as(
        "SELECT id, username, display_name, role, password_hash, disabled FROM users WHERE username = $1",
    )
    .bind(username)
    .fetch_optional(db.pool())
    .await?;
    row.map(|r| user_from_row(r).map(|(u, _)| u)).transpose()
}

pub async fn user_by_id(db: &Db, id: i64) -> anyhow::Result<Option<User>> {
    let row: Option<UserRow> = sqlx::query_as(
        "SELECT id, username, display_name, role, password_hash, disabled FROM users WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(db.pool())
    .await?;
    row.map(|r| user_from_row(r).map(|(u, _)| u)).transpose()
}

const KEY_TAG: &str = "dbk";

fn key_hash(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Creates a key and returns it with the token, which is shown once and never stored.
pub async fn create_api_key(
    db: &Db,
    now_ms: i64,
    name: &str,
    role: Role,
    scope: Option<&str>,
    created_by: Option<i64>,
) -> anyhow::Result<(ApiKey, String)> {
    if name.trim().is_empty() {
        bail!("an API key needs a name");
    }
    let prefix = ids::random_base32(8);
    let token = format!("{KEY_TAG}_{prefix}_{}", ids::random_base64url(32));
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO api_keys (name, prefix, secret_hash, role, scope, created_by, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
    )
    .bind(name)
    .bind(&prefix)
    .bind(key_hash(&token))
    .bind(role.as_str())
    .bind(scope)
    .bind(created_by)
    .bind(now_ms)
    .fetch_one(db.pool())
    .await?;
    audit::record(
        db.pool(),
        now_ms,
        &audit::Entry {
            actor: "system",
            action: "apikey.create",
            subject: Some(&prefix),
            result: "ok",
            detail: Some(serde_json::json!({"role": role, "scope": scope, "name": name})),
        },
    )
    .await?;
    let key = ApiKey {
        id,
        name: name.to_owned(),
        prefix,
        role,
        scope: scope.map(str::to_owned),
    };
    Ok((key, token))
}

/// The key a bearer token belongs to, if it is valid and not revoked.
pub async fn verify_api_key(db: &Db, token: &str) -> anyhow::Result<Option<ApiKey>> {
    let mut parts = token.splitn(3, '_');
    let (Some(KEY_TAG), Some(prefix), Some(secret)) = (parts.next(), parts.next(), parts.next())
    else {
        return Ok(None);
    };
    if prefix.len() != 8 || secret.len() != 43 {
        return Ok(None);
    }
    let row: Option<(i64, String, String, String, Option<String>)> = sqlx::query_as(
        "SELECT id, name, secret_hash, role, scope FROM api_keys \
         WHERE prefix = $1 AND revoked_at IS NULL",
    )
    .bind(prefix)
    .fetch_optional(db.pool())
    .await?;
    let Some((id, name, stored, role, scope)) = row else {
        return Ok(None);
    };
    if !bool::from(key_hash(token).as_bytes().ct_eq(stored.as_bytes())) {
        return Ok(None);
    }
    Ok(Some(ApiKey {
        id,
        name,
        prefix: prefix.to_owned(),
        role: role.parse()?,
        scope,
    }))
}

/// Revokes a key by its prefix; true when a live key was revoked.
pub async fn revoke_api_key(db: &Db, now_ms: i64, prefix: &str) -> anyhow::Result<bool> {
    let n =
        sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE prefix = $2 AND revoked_at IS NULL")
            .bind(now_ms)
            .bind(prefix)
            .execute(db.pool())
            .await?
            .rows_affected();
    Ok(n == 1)
}

/// Why an account change was refused; the web layer maps these to 400 / 404 / 409.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Db(#[from] anyhow::Error),
}

impl From<sqlx::Error> for AccountError {
    fn from(e: sqlx::Error) -> Self {
        Self::Db(e.into())
    }
}

/// A key as the console lists it (never the secret, which exists only in the create answer).
#[derive(Debug, Clone, Serialize)]
pub struct ApiKeyInfo {
    pub id: i64,
    pub name: String,
    pub prefix: String,
    pub role: Role,
    pub scope: Option<String>,
    /// The user who created it (None for keys made on the command line).
    pub created_by: Option<String>,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

/// Every key, newest first; revoked keys too when `include_revoked`.
pub async fn list_api_keys(db: &Db, include_revoked: bool) -> anyhow::Result<Vec<ApiKeyInfo>> {
    type Row = (
        i64,
        String,
        String,
        String,
        Option<String>,
        Option<String>,
        i64,
        Option<i64>,
    );
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT k.id, k.name, k.prefix, k.role, k.scope, u.username, k.created_at, k.revoked_at \
         FROM api_keys k LEFT JOIN users u ON u.id = k.created_by \
         WHERE $1 = 1 OR k.revoked_at IS NULL ORDER BY k.id DESC",
    )
    .bind(i64::from(include_revoked))
    .fetch_all(db.pool())
    .await?;
    rows.into_iter()
        .map(
            |(id, name, prefix, role, scope, created_by, created_at, revoked_at)| {
                Ok(ApiKeyInfo {
                    id,
                    name,
                    prefix,
                    role: role.parse()?,
                    scope,
                    created_by,
                    created_at,
                    revoked_at,
                })
            },
        )
        .collect()
}

/// Revokes key `id` (audited under `actor`) and returns its prefix, so callers can drop it from
/// any verification cache. Revoking a revoked key again is not an error (same prefix back).
pub async fn revoke_api_key_by_id(
    db: &Db,
    now_ms: i64,
    id: i64,
    actor: &str,
) -> Result<String, AccountError> {
    let mut tx = db.begin_write().await?;
    let row: Option<(String, Option<i64>)> =
        sqlx::query_as("SELECT prefix, revoked_at FROM api_keys WHERE id = $1")
            .bind(id)
            .fetch_optional(tx.conn())
            .await?;
    let Some((prefix, revoked_at)) = row else {
        return Err(AccountError::NotFound(format!("API key {id}")));
    };
    if revoked_at.is_none() {
        sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(now_ms)
            .bind(id)
            .execute(tx.conn())
            .await?;
        audit::record(
            tx.conn(),
            now_ms,
            &audit::Entry {
                actor,
                action: "apikey.revoke",
                subject: Some(&prefix),
                result: "ok",
                detail: None,
            },
        )
        .await?;
    }
    tx.commit().await?;
    Ok(prefix)
}

/// A user as the console lists it, with attributes (an agent's skills) and lockout state.
#[derive(Debug, Clone, Serialize)]
pub struct UserInfo {
    #[serde(flatten)]
    pub user: User,
    /// JSON object; agents carry `{"skills": {NAME: 1..=5}}`.
    pub attributes: serde_json::Value,
    pub created_at: i64,
    pub updated_at: i64,
    /// Epoch ms until which logins are refused after repeated failures (0 when not locked).
    pub locked_until: i64,
}

/// What to change on a user; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct UserChanges {
    pub display_name: Option<String>,
    pub role: Option<Role>,
    pub disabled: Option<bool>,
    /// Replaces the attributes (a JSON object).
    pub attributes: Option<serde_json::Value>,
    /// Sets a new password (at least 8 characters); ends the user's sessions and lockout.
    pub password: Option<String>,
}

type InfoRow = (i64, String, String, String, i16, String, i64, i64, i64);

fn info_from_row(r: InfoRow) -> anyhow::Result<UserInfo> {
    let (
        id,
        username,
        display_name,
        role,
        disabled,
        attributes,
        created_at,
        updated_at,
        locked_until,
    ) = r;
    Ok(UserInfo {
        user: User {
            id,
            username,
            display_name,
            role: role.parse()?,
            disabled: disabled != 0,
        },
        attributes: serde_json::from_str(&attributes)
            .with_context(|| format!("user {id}: attributes are not JSON"))?,
        created_at,
        updated_at,
        locked_until,
    })
}

macro_rules! info_select {
    ($rest:literal) => {
        concat!(
            "SELECT id, username, display_name, role, disabled, attributes, created_at, updated_at, locked_until FROM users ",
            $rest
        )
    };
}

/// Every user, by name.
pub async fn list_users(db: &Db) -> anyhow::Result<Vec<UserInfo>> {
    let rows: Vec<InfoRow> = sqlx::query_as(info_select!("ORDER BY username"))
        .fetch_all(db.pool())
        .await?;
    rows.into_iter().map(info_from_row).collect()
}

pub async fn user_info(db: &Db, id: i64) -> anyhow::Result<Option<UserInfo>> {
    let row: Option<InfoRow> = sqlx::query_as(info_select!("WHERE id = $1"))
        .bind(id)
        .fetch_optional(db.pool())
        .await?;
    row.map(info_from_row).transpose()
}

/// Checks attributes: a JSON object whose `skills`, when present, maps names to proficiency 1..=5.
pub fn validate_attributes(attributes: &serde_json::Value) -> Result<(), AccountError> {
    let obj = attributes
        .as_object()
        .ok_or_else(|| AccountError::Invalid("attributes must be a JSON object".into()))?;
    if attributes.to_string().len() > 16 * 1024 {
        return Err(AccountError::Invalid(
            "attributes are limited to 16 KiB".into(),
        ));
    }
    if let Some(skills) = obj.get("skills") {
        let skills = skills.as_object().ok_or_else(|| {
            AccountError::Invalid(
                "attributes.skills must be an object of skill name to proficiency".into(),
            )
        })?;
        for (name, level) in skills {
            if name.trim().is_empty() || name.len() > 64 {
                return Err(AccountError::Invalid(format!(
                    "skill name {name:?} must be 1-64 characters"
                )));
            }
            match level.as_i64() {
                Some(1..=5) => {}
                _ => {
                    return Err(AccountError::Invalid(format!(
                        "skill {name:?}: proficiency {level} is outside 1..=5"
                    )));
                }
            }
        }
    }
    Ok(())
}

fn validate_password(password: &str) -> Result<(), AccountError> {
    if password.len() < 8 {
        return Err(AccountError::Invalid(
            "password must be at least 8 characters".into(),
        ));
    }
    Ok(())
}

/// Refuses a change that would leave no enabled admin. On PostgreSQL the admin rows are locked
/// so two concurrent changes cannot each remove "another" admin; SQLite's write transaction
/// already excludes other writers.
async fn keep_an_admin(db: &Db, tx: &mut crate::WriteTx, id: i64) -> Result<(), AccountError> {
    let sql = match db.backend() {
        crate::db::Backend::Postgres => {
            "SELECT id FROM users WHERE role = 'admin' AND disabled = 0 FOR UPDATE"
        }
        crate::db::Backend::Sqlite => "SELECT id FROM users WHERE role = 'admin' AND disabled = 0",
    };
    let admins: Vec<(i64,)> = sqlx::query_as(sql).fetch_all(tx.conn()).await?;
    if admins.iter().all(|(a,)| *a == id) {
        return Err(AccountError::Conflict(
            "this is the last enabled admin; make another admin first".into(),
        ));
    }
    Ok(())
}

/// Creates a user with a display name and attributes in one audited transaction.
#[allow(clippy::too_many_arguments)]
pub async fn create_user_with(
    db: &Db,
    now_ms: i64,
    username: &str,
    role: Role,
    password: &str,
    display_name: &str,
    attributes: &serde_json::Value,
    actor: &str,
) -> Result<UserInfo, AccountError> {
    validate_username(username).map_err(|e| AccountError::Invalid(e.to_string()))?;
    if !role.is_for_users() {
        return Err(AccountError::Invalid(format!(
            "role {role} is for API keys only"
        )));
    }
    validate_password(password)?;
    validate_attributes(attributes)?;
    let hash = hash_password(password)?;
    let mut tx = db.begin_write().await?;
    let id: Option<i64> = sqlx::query_scalar(
        "INSERT INTO users (username, display_name, role, password_hash, attributes, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT (username) DO NOTHING RETURNING id",
    )
    .bind(username)
    .bind(display_name)
    .bind(role.as_str())
    .bind(hash)
    .bind(attributes.to_string())
    .bind(now_ms)
    .fetch_optional(tx.conn())
    .await?;
    let Some(id) = id else {
        return Err(AccountError::Conflict(format!(
            "user {username:?} already exists"
        )));
    };
    audit::record(
        tx.conn(),
        now_ms,
        &audit::Entry {
            actor,
            action: "user.create",
            subject: Some(username),
            result: "ok",
            detail: Some(serde_json::json!({"role": role})),
        },
    )
    .await?;
    tx.commit().await?;
    user_info(db, id)
        .await?
        .ok_or_else(|| AccountError::NotFound(format!("user {id}")))
}

/// Applies `changes` to user `id` in one audited transaction. Refuses to demote, disable or
/// (see [`delete_user`]) remove the last enabled admin. Disabling or a new password ends the
/// user's sessions.
pub async fn update_user(
    db: &Db,
    now_ms: i64,
    id: i64,
    changes: &UserChanges,
    actor: &str,
) -> Result<UserInfo, AccountError> {
    if let Some(role) = changes.role
        && !role.is_for_users()
    {
        return Err(AccountError::Invalid(format!(
            "role {role} is for API keys only"
        )));
    }
    if let Some(a) = &changes.attributes {
        validate_attributes(a)?;
    }
    if let Some(name) = &changes.display_name
        && name.chars().count() > 128
    {
        return Err(AccountError::Invalid(
            "display_name is limited to 128 characters".into(),
        ));
    }
    let hash = match &changes.password {
        Some(p) => {
            validate_password(p)?;
            Some(hash_password(p)?)
        }
        None => None,
    };
    let mut tx = db.begin_write().await?;
    let current: Option<(String, String, i16)> =
        sqlx::query_as("SELECT username, role, disabled FROM users WHERE id = $1")
            .bind(id)
            .fetch_optional(tx.conn())
            .await?;
    let Some((username, role, disabled)) = current else {
        return Err(AccountError::NotFound(format!("user {id}")));
    };
    let stays_admin = changes
        .role
        .map(|r| r == Role::Admin)
        .unwrap_or(role == "admin")
        && !changes.disabled.unwrap_or(disabled != 0);
    if role == "admin" && disabled == 0 && !stays_admin {
        keep_an_admin(db, &mut tx, id).await?;
    }
    sqlx::query(
        "UPDATE users SET display_name = COALESCE($1, display_name), role = COALESCE($2, role), \
         disabled = COALESCE($3, disabled), attributes = COALESCE($4, attributes), \
         password_hash = COALESCE($5, password_hash), updated_at = $6 WHERE id = $7",
    )
    .bind(changes.display_name.as_deref())
    .bind(changes.role.map(Role::as_str))
    .bind(changes.disabled.map(i16::from))
    .bind(changes.attributes.as_ref().map(|a| a.to_string()))
    .bind(hash.as_deref())
    .bind(now_ms)
    .bind(id)
    .execute(tx.conn())
    .await?;
    if hash.is_some() {
        sqlx::query("UPDATE users SET failed_logins = 0, locked_until = 0 WHERE id = $1")
            .bind(id)
            .execute(tx.conn())
            .await?;
    }
    if hash.is_some() || changes.disabled == Some(true) {
        sqlx::query("DELETE FROM sessions WHERE user_id = $1")
            .bind(id)
            .execute(tx.conn())
            .await?;
    }
    let changed: Vec<&str> = [
        changes.display_name.as_ref().map(|_| "display_name"),
        changes.role.map(|_| "role"),
        changes.disabled.map(|_| "disabled"),
        changes.attributes.as_ref().map(|_| "attributes"),
        hash.as_ref().map(|_| "password"),
    ]
    .into_iter()
    .flatten()
    .collect();
    audit::record(
        tx.conn(),
        now_ms,
        &audit::Entry {
            actor,
            action: "user.update",
            subject: Some(&username),
            result: "ok",
            detail: Some(serde_json::json!({"changed": changed, "role": changes.role, "disabled": changes.disabled})),
        },
    )
    .await?;
    tx.commit().await?;
    user_info(db, id)
        .await?
        .ok_or_else(|| AccountError::NotFound(format!("user {id}")))
}

/// Deletes user `id` and their sessions (keys they created stay, without a creator). Refuses to
/// delete the last enabled admin. Returns the user name.
pub async fn delete_user(
    db: &Db,
    now_ms: i64,
    id: i64,
    actor: &str,
) -> Result<String, AccountError> {
    let mut tx = db.begin_write().await?;
    let current: Option<(String, String, i16)> =
        sqlx::query_as("SELECT username, role, disabled FROM users WHERE id = $1")
            .bind(id)
            .fetch_optional(tx.conn())
            .await?;
    let Some((username, role, disabled)) = current else {
        return Err(AccountError::NotFound(format!("user {id}")));
    };
    if role == "admin" && disabled == 0 {
        keep_an_admin(db, &mut tx, id).await?;
    }
    sqlx::query("DELETE FROM sessions WHERE user_id = $1")
        .bind(id)
        .execute(tx.conn())
        .await?;
    sqlx::query("UPDATE api_keys SET created_by = NULL WHERE created_by = $1")
        .bind(id)
        .execute(tx.conn())
        .await?;
    sqlx::query("DELETE FROM users WHERE id = $1")
        .bind(id)
        .execute(tx.conn())
        .await?;
    audit::record(
        tx.conn(),
        now_ms,
        &audit::Entry {
            actor,
            action: "user.delete",
            subject: Some(&username),
            result: "ok",
            detail: None,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(username)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip_and_unknown_roles_are_named() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>().unwrap(), r);
        }
        let err = "superuser".parse::<Role>().unwrap_err().to_string();
        assert!(
            err.contains("superuser") && err.contains("legacy-pbx"),
            "{err}"
        );
    }

    #[test]
    fn passwords_verify_only_with_the_right_secret() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("correct hors", &h));
        assert!(!verify_password("x", "not a hash"));
        assert!(PasswordHash::new(DUMMY_HASH).is_ok());
    }

    /// Listing and revoking keys, and managing users, on one backend.
    async fn exercise_admin_functions(db: &Db) {
        db.migrate().await.unwrap();
        let now = 1_700_000_000_000;
        ensure_first_admin(db, now, Some("first-admin-pw"))
            .await
            .unwrap()
            .unwrap();
        let admin = user_by_name(db, "admin").await.unwrap().unwrap();

        // Keys: listed newest first with their creator; a revoked key leaves the live list.
        let (a, token_a) = create_api_key(
            db,
            now,
            "pbx-a",
            Role::LegacyPbx,
            Some("pool-a"),
            Some(admin.id),
        )
        .await
        .unwrap();
        let (b, _) = create_api_key(db, now + 1, "script", Role::Supervisor, None, None)
            .await
            .unwrap();
        let keys = list_api_keys(db, false).await.unwrap();
        assert_eq!(
            keys.iter().map(|k| k.prefix.as_str()).collect::<Vec<_>>(),
            [b.prefix.as_str(), a.prefix.as_str()]
        );
        assert_eq!(
            (
                keys[1].created_by.as_deref(),
                keys[1].scope.as_deref(),
                keys[1].role
            ),
            (Some("admin"), Some("pool-a"), Role::LegacyPbx)
        );
        assert_eq!(
            revoke_api_key_by_id(db, now + 5, a.id, "user:admin")
                .await
                .unwrap(),
            a.prefix
        );
        assert_eq!(
            revoke_api_key_by_id(db, now + 6, a.id, "user:admin")
                .await
                .unwrap(),
            a.prefix,
            "idempotent"
        );
        assert!(verify_api_key(db, &token_a).await.unwrap().is_none());
        assert_eq!(list_api_keys(db, false).await.unwrap().len(), 1);
        let all = list_api_keys(db, true).await.unwrap();
        assert_eq!(
            all.iter().find(|k| k.id == a.id).unwrap().revoked_at,
            Some(now + 5)
        );
        assert!(matches!(
            revoke_api_key_by_id(db, now, 9999, "x").await,
            Err(AccountError::NotFound(_))
        ));

        // Users: create with skills, bad skills refused, update, password reset, delete.
        let skills = serde_json::json!({"skills": {"sales": 4, "billing": 2}});
        let agnes = create_user_with(
            db,
            now,
            "agnes",
            Role::Agent,
            "agent-pass-1",
            "Agnes A.",
            &skills,
            "user:admin",
        )
        .await
        .unwrap();
        assert_eq!(
            (agnes.user.display_name.as_str(), &agnes.attributes),
            ("Agnes A.", &skills)
        );
        assert!(matches!(
            create_user_with(
                db,
                now,
                "agnes",
                Role::Agent,
                "agent-pass-1",
                "",
                &serde_json::json!({}),
                "x"
            )
            .await,
            Err(AccountError::Conflict(_))
        ));
        for bad in [
            serde_json::json!({"skills": {"sales": 6}}),
            serde_json::json!({"skills": ["sales"]}),
            serde_json::json!([1]),
        ] {
            let err = create_user_with(db, now, "bob", Role::Agent, "agent-pass-1", "", &bad, "x")
                .await
                .unwrap_err();
            assert!(matches!(err, AccountError::Invalid(_)), "{bad}: {err}");
        }
        assert!(matches!(
            create_user_with(
                db,
                now,
                "bob",
                Role::LegacyPbx,
                "agent-pass-1",
                "",
                &serde_json::json!({}),
                "x"
            )
            .await,
            Err(AccountError::Invalid(_))
        ));
        assert!(matches!(
            create_user_with(
                db,
                now,
                "bob",
                Role::Agent,
                "short",
                "",
                &serde_json::json!({}),
                "x"
            )
            .await,
            Err(AccountError::Invalid(_))
        ));

        let changes = UserChanges {
            role: Some(Role::Supervisor),
            password: Some("new-password-2".into()),
            ..Default::default()
        };
        let updated = update_user(db, now + 10, agnes.user.id, &changes, "user:admin")
            .await
            .unwrap();
        assert_eq!(
            (updated.user.role, updated.updated_at),
            (Role::Supervisor, now + 10)
        );
        assert_eq!(
            updated.attributes, skills,
            "attributes untouched when not given"
        );
        assert!(
            verify_login(db, "agnes", "agent-pass-1")
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            verify_login(db, "agnes", "new-password-2")
                .await
                .unwrap()
                .is_some()
        );
        let disabled = update_user(
            db,
            now + 11,
            agnes.user.id,
            &UserChanges {
                disabled: Some(true),
                ..Default::default()
            },
            "x",
        )
        .await
        .unwrap();
        assert!(disabled.user.disabled);
        assert!(
            verify_login(db, "agnes", "new-password-2")
                .await
                .unwrap()
                .is_none(),
            "a disabled user cannot log in"
        );

        // The last enabled admin can be neither demoted, disabled nor deleted.
        let demote = UserChanges {
            role: Some(Role::Agent),
            ..Default::default()
        };
        assert!(matches!(
            update_user(db, now, admin.id, &demote, "x").await,
            Err(AccountError::Conflict(_))
        ));
        let disable = UserChanges {
            disabled: Some(true),
            ..Default::default()
        };
        assert!(matches!(
            update_user(db, now, admin.id, &disable, "x").await,
            Err(AccountError::Conflict(_))
        ));
        assert!(matches!(
            delete_user(db, now, admin.id, "x").await,
            Err(AccountError::Conflict(_))
        ));
        // With a second admin, the first may go.
        let other = create_user_with(
            db,
            now,
            "root2",
            Role::Admin,
            "admin-pass-2",
            "",
            &serde_json::json!({}),
            "x",
        )
        .await
        .unwrap();
        update_user(db, now, admin.id, &demote, "x").await.unwrap();
        assert!(matches!(
            delete_user(db, now, other.user.id, "x").await,
            Err(AccountError::Conflict(_))
        ));
        assert_eq!(delete_user(db, now, admin.id, "x").await.unwrap(), "admin");
        assert!(user_info(db, admin.id).await.unwrap().is_none());
        assert_eq!(
            list_api_keys(db, true)
                .await
                .unwrap()
                .iter()
                .filter(|k| k.created_by.is_some())
                .count(),
            0,
            "keys outlive their creator"
        );
        assert_eq!(
            list_users(db)
                .await
                .unwrap()
                .iter()
                .map(|u| u.user.username.as_str())
                .collect::<Vec<_>>(),
            ["agnes", "root2"]
        );
        let actions: Vec<String> = audit::recent(db, None, 100)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.action)
            .collect();
        for a in ["apikey.revoke", "user.create", "user.update", "user.delete"] {
            assert!(actions.iter().any(|x| x == a), "{a} audited: {actions:?}");
        }
        assert!(matches!(
            update_user(db, now, 424242, &demote, "x").await,
            Err(AccountError::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn admin_functions_on_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::connect(&format!("sqlite://{}/a.db", dir.path().display()), 2)
            .await
            .unwrap();
        exercise_admin_functions(&db).await;
    }

    #[tokio::test]
    async fn admin_functions_on_postgres() {
        let Some(pg) = crate::testing::TempPgDatabase::create().await else {
            return;
        };
        let db = Db::connect(&pg.url, 2).await.unwrap();
        exercise_admin_functions(&db).await;
        db.close().await;
    }
}

/// Sets (or with `None` removes) the SIP credentials of `username`'s phones: the digest HA1
/// (`MD5(username:realm:password)`, computed by the caller for the appliance's realm). Audited.
pub async fn set_sip_ha1(
    db: &Db,
    now_ms: i64,
    username: &str,
    ha1: Option<&str>,
    actor: &str,
) -> anyhow::Result<()> {
    if let Some(h) = ha1 {
        anyhow::ensure!(
            h.len() == 32 && h.chars().all(|c| c.is_ascii_hexdigit()),
            "a SIP HA1 is 32 hex digits"
        );
    }
    let mut tx = db.begin_write().await?;
    let n = sqlx::query("UPDATE users SET sip_ha1 = $1 WHERE username = $2")
        .bind(ha1.map(str::to_ascii_lowercase))
        .bind(username)
        .execute(tx.conn())
        .await?
        .rows_affected();
    if n == 0 {
        bail!("no user named {username:?}");
    }
    let entry = audit::Entry {
        actor,
        action: if ha1.is_some() {
            "user.sip_credentials.set"
        } else {
            "user.sip_credentials.remove"
        },
        subject: Some(username),
        result: "ok",
        detail: None,
    };
    audit::record(tx.conn(), now_ms, &entry).await?;
    tx.commit().await?;
    Ok(())
}

/// Every enabled user with SIP credentials: username → HA1 (the registrar's lookup table).
pub async fn sip_ha1_table(db: &Db) -> anyhow::Result<std::collections::HashMap<String, String>> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT username, sip_ha1 FROM users WHERE sip_ha1 IS NOT NULL AND disabled = 0",
    )
    .fetch_all(db.pool())
    .await?;
    Ok(rows.into_iter().collect())
}
