//! Console sessions for people, and login lockout.
//!
//! A session is a random 256-bit token in an HttpOnly cookie; only its SHA-256 is stored, so a
//! stolen database holds no usable session. Each session has its own CSRF token, which the console
//! sends back on every state-changing request. Lockout state lives in the users table so that every
//! node enforces the same count: after `MAX_FAILURES` wrong passwords in a row an account is locked
//! for `LOCKOUT`, whatever node the attempts hit.

use sha2::{Digest, Sha256};

use crate::accounts::{self, User};
use crate::{Db, audit, ids};

pub const MAX_FAILURES: i64 = 5;
pub const LOCKOUT_MS: i64 = 15 * 60 * 1000;

#[derive(Debug, Clone)]
pub struct Session {
    pub user: User,
    pub csrf_token: String,
    pub expires_at: i64,
}

/// What a login attempt came to. Callers answer `Denied` and `Locked` alike to the client.
#[derive(Debug)]
pub enum Login {
    Ok { token: String, session: Session },
    Denied,
    Locked { until_ms: i64 },
}

fn hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Checks the password and opens a session of `ttl_ms`; counts failures and locks the account.
pub async fn login(
    db: &Db,
    now_ms: i64,
    username: &str,
    password: &str,
    ttl_ms: i64,
    from: &str,
) -> anyhow::Result<Login> {
    let locked: Option<i64> =
        sqlx::query_scalar("SELECT locked_until FROM users WHERE username = $1")
            .bind(username)
            .fetch_optional(db.pool())
            .await?;
    if let Some(until) = locked.filter(|u| *u > now_ms) {
        audit::record(
            db.pool(),
            now_ms,
            &audit::Entry {
                actor: &format!("user:{username}"),
                action: "auth.login",
                subject: Some(from),
                result: "locked",
                detail: None,
            },
        )
        .await?;
        return Ok(Login::Locked { until_ms: until });
    }
    let Some(user) = accounts::verify_login(db, username, password).await? else {
        // Count the failure; lock on reaching the limit.
        sqlx::query(
            "UPDATE users SET failed_logins = failed_logins + 1, \
             locked_until = CASE WHEN failed_logins + 1 >= $1 THEN $2 ELSE locked_until END WHERE username = $3",
        )
        .bind(MAX_FAILURES)
        .bind(now_ms + LOCKOUT_MS)
        .bind(username)
        .execute(db.pool())
        .await?;
        audit::record(
            db.pool(),
            now_ms,
            &audit::Entry {
                actor: &format!("user:{username}"),
                action: "auth.login",
                subject: Some(from),
                result: "denied",
                detail: None,
            },
        )
        .await?;
        return Ok(Login::Denied);
    };
    sqlx::query("UPDATE users SET failed_logins = 0, locked_until = 0 WHERE id = $1")
        .bind(user.id)
        .execute(db.pool())
        .await?;
    let token = ids::random_base64url(32);
    let csrf_token = ids::random_base64url(24);
    let expires_at = now_ms + ttl_ms;
    sqlx::query("INSERT INTO sessions (token_hash, user_id, csrf_token, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(hash(&token))
        .bind(user.id)
        .bind(&csrf_token)
        .bind(now_ms)
        .bind(expires_at)
        .execute(db.pool())
        .await?;
    audit::record(
        db.pool(),
        now_ms,
        &audit::Entry {
            actor: &format!("user:{username}"),
            action: "auth.login",
            subject: Some(from),
            result: "ok",
            detail: None,
        },
    )
    .await?;
    Ok(Login::Ok {
        token,
        session: Session {
            user,
            csrf_token,
            expires_at,
        },
    })
}

/// The live session for a cookie token, if any.
pub async fn lookup(db: &Db, now_ms: i64, token: &str) -> anyhow::Result<Option<Session>> {
    let row: Option<(i64, String, i64)> = sqlx::query_as(
        "SELECT s.user_id, s.csrf_token, s.expires_at FROM sessions s WHERE s.token_hash = $1 AND s.expires_at > $2",
    )
    .bind(hash(token))
    .bind(now_ms)
    .fetch_optional(db.pool())
    .await?;
    let Some((user_id, csrf_token, expires_at)) = row else {
        return Ok(None);
    };
    let Some(user) = accounts::user_by_id(db, user_id)
        .await?
        .filter(|u| !u.disabled)
    else {
        return Ok(None);
    };
    Ok(Some(Session {
        user,
        csrf_token,
        expires_at,
    }))
}

pub async fn logout(db: &Db, token: &str) -> anyhow::Result<()> {
    sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
        .bind(hash(token))
        .execute(db.pool())
        .await?;
    Ok(())
}

/// Deletes expired sessions; returns how many.
pub async fn purge_expired(db: &Db, now_ms: i64) -> anyhow::Result<u64> {
    Ok(sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
        .bind(now_ms)
        .execute(db.pool())
        .await?
        .rows_affected())
}
