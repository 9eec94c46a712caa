//! Users, roles, passwords and API keys.
//!
//! Passwords are hashed with argon2id (slow on purpose: checked once per login). API keys are
//! checked on every machine request, so they are 256-bit random secrets hashed with SHA-256 (fast,
//! and safe because the secret has full entropy). A key reads `dbk_<prefix>_<secret>`; the 8-char
//! prefix is stored in clear to find the row without a scan, and is what logs and the console show.

use std::fmt;
use std::str::FromStr;

use anyhow::{Context, bail};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
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
        .map(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
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
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$N0oO2nZ2mc4bXqS6Xf7pYhU0x6rY0G0oUQ4b0QJkC9E";

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
    let n = sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE prefix = $2 AND revoked_at IS NULL")
        .bind(now_ms)
        .bind(prefix)
        .execute(db.pool())
        .await?
        .rows_affected();
    Ok(n == 1)
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
        assert!(err.contains("superuser") && err.contains("legacy-pbx"), "{err}");
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
}
