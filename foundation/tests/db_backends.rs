//! The same migrations and queries on both backends: SQLite in a temp dir and a throwaway
//! PostgreSQL database.

use foundation::accounts::{self, Role};
use foundation::testing::TempPgDatabase;
use foundation::{Db, audit};

async fn exercise(db: &Db) {
    db.migrate().await.unwrap();
    db.migrate().await.expect("migrating twice is a no-op");
    db.ping().await.unwrap();
    let now = 1_700_000_000_000;

    let first = accounts::ensure_first_admin(db, now, None)
        .await
        .unwrap()
        .unwrap();
    let password = first
        .generated_password
        .expect("generated when none is given");
    assert!(password.len() >= 20);
    assert!(
        accounts::ensure_first_admin(db, now, None)
            .await
            .unwrap()
            .is_none()
    );
    let admin = accounts::verify_login(db, "admin", &password)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(admin.role, Role::Admin);
    assert!(
        accounts::verify_login(db, "admin", "wrong-password")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        accounts::verify_login(db, "nobody", &password)
            .await
            .unwrap()
            .is_none()
    );

    accounts::create_user(db, now, "alice", Role::Agent, "agent-pass-1")
        .await
        .unwrap();
    let dup = accounts::create_user(db, now, "alice", Role::Agent, "agent-pass-1").await;
    assert!(dup.unwrap_err().to_string().contains("already exists"));

    let (key, token) = accounts::create_api_key(
        db,
        now,
        "pbx-a",
        Role::LegacyPbx,
        Some("pool-a"),
        Some(admin.id),
    )
    .await
    .unwrap();
    assert!(token.starts_with(&format!("dbk_{}_", key.prefix)));
    let found = accounts::verify_api_key(db, &token).await.unwrap().unwrap();
    assert_eq!(
        (found.role, found.scope.as_deref()),
        (Role::LegacyPbx, Some("pool-a"))
    );
    let mut forged = token.clone();
    forged.pop();
    forged.push(if token.ends_with('A') { 'B' } else { 'A' });
    assert!(
        accounts::verify_api_key(db, &forged)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        accounts::verify_api_key(db, "garbage")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        accounts::revoke_api_key(db, now, &key.prefix)
            .await
            .unwrap()
    );
    assert!(
        accounts::verify_api_key(db, &token)
            .await
            .unwrap()
            .is_none()
    );

    let log = audit::recent(db, Some("apikey.create"), 10).await.unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].subject.as_deref(), Some(key.prefix.as_str()));
    let mut tx = db.begin_write().await.unwrap();
    audit::record(
        tx.conn(),
        now,
        &audit::Entry {
            actor: "test",
            action: "test.rollback",
            subject: None,
            result: "ok",
            detail: None,
        },
    )
    .await
    .unwrap();
    tx.rollback().await.unwrap();
    assert!(
        audit::recent(db, Some("test.rollback"), 10)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn sqlite_backend() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/t.db", dir.path().display());
    let db = Db::connect(&url, 4).await.unwrap();
    exercise(&db).await;
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(fk, 1);
    assert_eq!(db.server_time_ms().await.unwrap(), None);
}

#[tokio::test]
async fn postgres_backend() {
    let Some(pg) = TempPgDatabase::create().await else {
        return;
    };
    let db = Db::connect(&pg.url, 4).await.unwrap();
    exercise(&db).await;
    let server = db.server_time_ms().await.unwrap().unwrap();
    assert!((server - chrono::Utc::now().timestamp_millis()).abs() < 5_000);
    let clock = foundation::clock::DbClock::new();
    assert!(clock.sync(&db).await.unwrap().abs() < 5_000);
    db.close().await;
}

async fn sessions_and_lockout(db: &Db) {
    use foundation::sessions::{self, Login};
    let now = 1_700_000_000_000;
    accounts::create_user(db, now, "carol", Role::Supervisor, "carol-pass-1")
        .await
        .unwrap();
    let Login::Ok { token, session } =
        sessions::login(db, now, "carol", "carol-pass-1", 3_600_000, "test")
            .await
            .unwrap()
    else {
        panic!("login failed")
    };
    assert_eq!(session.user.role, Role::Supervisor);
    let found = sessions::lookup(db, now + 1000, &token)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.csrf_token, session.csrf_token);
    assert!(
        sessions::lookup(db, now + 3_600_001, &token)
            .await
            .unwrap()
            .is_none(),
        "expired"
    );
    sessions::logout(db, &token).await.unwrap();
    assert!(
        sessions::lookup(db, now + 1000, &token)
            .await
            .unwrap()
            .is_none(),
        "logged out"
    );

    for _ in 0..sessions::MAX_FAILURES {
        assert!(matches!(
            sessions::login(db, now, "carol", "wrong", 1000, "test")
                .await
                .unwrap(),
            Login::Denied
        ));
    }
    assert!(
        matches!(
            sessions::login(db, now + 1, "carol", "carol-pass-1", 1000, "test")
                .await
                .unwrap(),
            Login::Locked { .. }
        ),
        "locked even with the right password"
    );
    assert!(matches!(
        sessions::login(
            db,
            now + sessions::LOCKOUT_MS + 1,
            "carol",
            "carol-pass-1",
            1000,
            "test"
        )
        .await
        .unwrap(),
        Login::Ok { .. }
    ));
    assert!(matches!(
        sessions::login(db, now, "nobody", "x", 1000, "test")
            .await
            .unwrap(),
        Login::Denied
    ));
}

#[tokio::test]
async fn sqlite_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::connect(&format!("sqlite://{}/s.db", dir.path().display()), 2)
        .await
        .unwrap();
    db.migrate().await.unwrap();
    sessions_and_lockout(&db).await;
}

#[tokio::test]
async fn postgres_sessions() {
    let Some(pg) = TempPgDatabase::create().await else {
        return;
    };
    let db = Db::connect(&pg.url, 2).await.unwrap();
    db.migrate().await.unwrap();
    sessions_and_lockout(&db).await;
    db.close().await;
}
