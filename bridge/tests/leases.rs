//! Lease semantics on both backends, with time passed in explicitly (a virtual clock).

use bridge::BridgeError;
use bridge::lease::{self, LeaseRequest};
use bridge::pool::{self, Direction, PoolSpec};
use foundation::Db;
use foundation::clock::VirtualClock;
use foundation::testing::TempPgDatabase;
use serde_json::json;

const T0: i64 = 1_800_000_000_000;

/// A clock stopped at `ms`.
fn at(ms: i64) -> VirtualClock {
    VirtualClock::at_ms(ms)
}
const S: i64 = 1000;

fn spec(name: &str, numbers: &[&str], ttl: u64, cooldown: u64) -> PoolSpec {
    PoolSpec {
        name: name.into(),
        numbers: numbers.iter().map(|s| s.to_string()).collect(),
        direction: Direction::ToLegacy,
        lease_ttl_s: ttl,
        cooldown_s: cooldown,
    }
}

fn req(pool: &str, data: serde_json::Value) -> LeaseRequest {
    LeaseRequest {
        pool: pool.into(),
        data,
        ani: None,
        ttl_s: None,
        idempotency_key: None,
    }
}

async fn sqlite() -> (Db, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::connect(&format!("sqlite://{}/b.db", dir.path().display()), 8)
        .await
        .unwrap();
    db.migrate().await.unwrap();
    (db, dir)
}

async fn open_leases(db: &Db) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM bridge_leases WHERE ended_at IS NULL")
        .fetch_one(db.pool())
        .await
        .unwrap()
}

async fn end_reason(db: &Db, lease_id: &str) -> (Option<i64>, Option<String>) {
    sqlx::query_as("SELECT ended_at, end_reason FROM bridge_leases WHERE lease_id = $1")
        .bind(lease_id)
        .fetch_one(db.pool())
        .await
        .unwrap()
}

async fn semantics(db: &Db) {
    pool::create(
        db,
        T0,
        "t",
        &spec(
            "east",
            &["+13125550001", "+13125550002", "+13125550003"],
            60,
            10,
        ),
    )
    .await
    .unwrap();
    assert!(matches!(
        pool::create(db, T0, "t", &spec("east", &["+13125550009"], 60, 10)).await,
        Err(BridgeError::Conflict(_))
    ));
    assert!(matches!(
        pool::create(db, T0, "t", &spec("west", &["+13125550001"], 60, 10)).await,
        Err(BridgeError::Conflict(_))
    ));
    assert!(matches!(
        pool::create(db, T0, "t", &spec("bad", &["3125550001"], 60, 10)).await,
        Err(BridgeError::Invalid(_))
    ));
    assert!(
        matches!(pool::get(db, "bad").await, Err(BridgeError::UnknownPool(_))),
        "a failed create leaves nothing"
    );

    // Lease, look up without consuming, consume, retry within the cooldown, then nothing.
    let a = lease::lease(
        db,
        &at(T0),
        "t",
        None,
        &req("east", json!({"name": "Ada", "acct": 1})),
    )
    .await
    .unwrap();
    assert_eq!(a.dnis, "+13125550001", "never-used numbers go in order");
    assert_eq!(a.expires_at_ms, T0 + 60 * S);
    let f = lease::lookup(db, &at(T0 + S), "t", None, &a.dnis, None, false)
        .await
        .unwrap();
    assert_eq!(
        (f.lease_id.as_str(), f.data["name"].as_str(), f.consumed),
        (a.lease_id.as_str(), Some("Ada"), false)
    );
    let f = lease::lookup(db, &at(T0 + 2 * S), "t", None, &a.dnis, None, true)
        .await
        .unwrap();
    assert!(f.consumed);
    assert_eq!(
        end_reason(db, &a.lease_id).await,
        (Some(T0 + 2 * S), Some("consumed".into()))
    );
    let retry = lease::lookup(db, &at(T0 + 5 * S), "t", None, &a.dnis, None, true)
        .await
        .unwrap();
    assert_eq!(
        retry.data, f.data,
        "a retried consuming lookup in the cooldown gets the same data"
    );
    assert!(matches!(
        lease::lookup(db, &at(T0 + 12 * S), "t", None, &a.dnis, None, true).await,
        Err(BridgeError::Unknown)
    ));
    assert!(matches!(
        lease::lookup(db, &at(T0), "t", None, "+19999999999", None, false).await,
        Err(BridgeError::Unknown)
    ));

    // Least recently released first, after its cooldown.
    let b = lease::lease(
        db,
        &at(T0 + 3 * S),
        "t",
        None,
        &req("east", json!({"n": "b"})),
    )
    .await
    .unwrap();
    let c = lease::lease(
        db,
        &at(T0 + 3 * S),
        "t",
        None,
        &req("east", json!({"n": "c"})),
    )
    .await
    .unwrap();
    assert_eq!(
        (b.dnis.as_str(), c.dnis.as_str()),
        ("+13125550002", "+13125550003")
    );
    assert!(
        matches!(
            lease::lease(db, &at(T0 + 4 * S), "t", None, &req("east", json!({}))).await,
            Err(BridgeError::PoolExhausted(_))
        ),
        "0001 is cooling down until T0+12s, the others are leased"
    );
    lease::release(db, &at(T0 + 20 * S), "t", None, &c.lease_id)
        .await
        .unwrap();
    lease::release(db, &at(T0 + 20 * S), "t", None, &c.lease_id)
        .await
        .expect("release is idempotent");
    lease::release(db, &at(T0 + 21 * S), "t", None, &b.lease_id)
        .await
        .unwrap();
    assert!(
        matches!(
            lease::lookup(db, &at(T0 + 21 * S), "t", None, &c.dnis, None, false).await,
            Err(BridgeError::Unknown)
        ),
        "data wiped on release"
    );
    assert!(matches!(
        lease::release(db, &at(T0), "t", None, "lease_nope").await,
        Err(BridgeError::NoSuchLease)
    ));
    let d = lease::lease(db, &at(T0 + 40 * S), "t", None, &req("east", json!({})))
        .await
        .unwrap();
    let e = lease::lease(db, &at(T0 + 40 * S), "t", None, &req("east", json!({})))
        .await
        .unwrap();
    let f2 = lease::lease(db, &at(T0 + 40 * S), "t", None, &req("east", json!({})))
        .await
        .unwrap();
    assert_eq!(
        [d.dnis.as_str(), e.dnis.as_str(), f2.dnis.as_str()],
        ["+13125550001", "+13125550003", "+13125550002"],
        "released at T0+2s, T0+20s, T0+21s"
    );

    // Expiry: 410 after the TTL, and the expired number is claimable with no reaper run.
    let t = T0 + 40 * S + 61 * S;
    assert!(matches!(
        lease::lookup(db, &at(t), "t", None, &d.dnis, None, true).await,
        Err(BridgeError::Expired)
    ));
    assert_eq!(
        end_reason(db, &d.lease_id).await,
        (Some(d.expires_at_ms), Some("expired".into()))
    );
    let g = lease::lease(
        db,
        &at(t + 20 * S),
        "t",
        None,
        &req("east", json!({"n": "g"})),
    )
    .await
    .unwrap();
    let found = lease::lookup(db, &at(t + 21 * S), "t", None, &g.dnis, None, true)
        .await
        .unwrap();
    assert_eq!(found.data["n"], "g", "never a previous lessee's data");
    let g2 = lease::lease(
        db,
        &at(t + 20 * S),
        "t",
        None,
        &req("east", json!({"n": "g2"})),
    )
    .await
    .unwrap();
    assert_eq!(
        g2.dnis, f2.dnis,
        "an expired lease nobody looked up is reclaimed by the claim itself"
    );
    assert_eq!(
        end_reason(db, &f2.lease_id).await,
        (Some(f2.expires_at_ms), Some("expired".into()))
    );
    lease::release(db, &at(t + 20 * S), "t", None, &g2.lease_id)
        .await
        .unwrap();

    // ANI: a stranger gets nothing; no ANI in the lookup is allowed; the audit log tells them apart.
    let mut r = req("east", json!({"n": "ani"}));
    r.ani = Some("+13125557777".into());
    let h = lease::lease(db, &at(t + 30 * S), "t", None, &r)
        .await
        .unwrap();
    assert!(matches!(
        lease::lookup(
            db,
            &at(t + 31 * S),
            "t",
            None,
            &h.dnis,
            Some("+13125558888"),
            true
        )
        .await,
        Err(BridgeError::Unknown)
    ));
    let ok = lease::lookup(
        db,
        &at(t + 31 * S),
        "t",
        None,
        &h.dnis,
        Some("+1 312 555 7777"),
        true,
    )
    .await
    .unwrap();
    assert_eq!(ok.data["n"], "ani");
    let log = foundation::audit::recent(db, Some("bridge.lookup"), 50)
        .await
        .unwrap();
    assert!(log.iter().any(|r| r.result == "ani_mismatch"));

    // Idempotency: the same key returns the same lease.
    let mut r = req("east", json!({"n": "idem"}));
    r.idempotency_key = Some("contact-42".into());
    let i1 = lease::lease(db, &at(t + 40 * S), "t", None, &r)
        .await
        .unwrap();
    let i2 = lease::lease(db, &at(t + 41 * S), "t", None, &r)
        .await
        .unwrap();
    assert_eq!(
        (i1.lease_id.as_str(), i1.dnis.as_str(), i2.replayed),
        (i2.lease_id.as_str(), i2.dnis.as_str(), true)
    );

    // Scope: a key limited to another pool can neither lease here nor see these numbers.
    assert!(matches!(
        lease::lease(db, &at(t), "t", Some("west"), &req("east", json!({}))).await,
        Err(BridgeError::Forbidden(_))
    ));
    assert!(matches!(
        lease::lookup(
            db,
            &at(t + 42 * S),
            "t",
            Some("west"),
            &i1.dnis,
            None,
            false
        )
        .await,
        Err(BridgeError::Unknown)
    ));
    assert!(matches!(
        lease::release(db, &at(t + 42 * S), "t", Some("west"), &i1.lease_id).await,
        Err(BridgeError::NoSuchLease)
    ));

    // Removing a leased number: its lease still answers, it is never claimed again, the reaper
    // deletes it once idle.
    pool::remove_numbers(db, t + 43 * S, "t", "east", &[i1.dnis.clone()])
        .await
        .unwrap();
    assert!(
        lease::lookup(db, &at(t + 44 * S), "t", None, &i1.dnis, None, false)
            .await
            .is_ok()
    );
    let view = pool::view(db, t + 44 * S, "east").await.unwrap();
    assert_eq!(view.numbers.len(), 2);
    let later = t + 200 * S;
    let report = lease::reap(db, &at(later)).await.unwrap();
    assert!(
        report.expired >= 1 && report.deleted_numbers == 1,
        "{report:?}"
    );
    assert_eq!(open_leases(db).await, 0, "every lease has its final record");

    // Deleting a pool closes its open leases.
    let j = lease::lease(db, &at(later), "t", None, &req("east", json!({})))
        .await
        .unwrap();
    pool::delete(db, later + S, "t", "east").await.unwrap();
    assert_eq!(
        end_reason(db, &j.lease_id).await.1.as_deref(),
        Some("pool_deleted")
    );
    assert!(matches!(
        lease::lookup(db, &at(later + S), "t", None, &j.dnis, None, false).await,
        Err(BridgeError::Unknown)
    ));
}

/// Clients on separate database handles (separate "processes") cycle lease → consume on a small
/// pool; each lookup must return exactly what its own lessee stored.
async fn storm(handles: &[Db], clients: usize, cycles: usize) -> (u64, u64) {
    pool::create(
        &handles[0],
        T0,
        "t",
        &spec(
            "storm",
            &(0..5)
                .map(|i| format!("+1312555{i:04}"))
                .collect::<Vec<_>>()
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>(),
            60,
            0,
        ),
    )
    .await
    .unwrap();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let db = handles[c % handles.len()].clone();
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut exhausted) = (0u64, 0u64);
            for i in 0..cycles {
                let token = format!("{c}-{i}");
                let now = T0 + (i as i64) * 10;
                match lease::lease(
                    &db,
                    &at(now),
                    "t",
                    None,
                    &req("storm", json!({"token": token})),
                )
                .await
                {
                    Ok(l) => {
                        let found =
                            lease::lookup(&db, &at(now + 1), "t", None, &l.dnis, None, true)
                                .await
                                .unwrap();
                        assert_eq!(
                            found.data["token"],
                            token.as_str(),
                            "double lease: got someone else's data"
                        );
                        assert_eq!(found.lease_id, l.lease_id);
                        ok += 1;
                    }
                    Err(BridgeError::PoolExhausted(_)) => exhausted += 1,
                    Err(e) => panic!("{e}"),
                }
            }
            (ok, exhausted)
        }));
    }
    let mut total = (0, 0);
    for t in tasks {
        let (a, b) = t.await.unwrap();
        total = (total.0 + a, total.1 + b);
    }
    assert_eq!(open_leases(&handles[0]).await, 0);
    total
}

#[tokio::test]
async fn sqlite_semantics() {
    let (db, _dir) = sqlite().await;
    semantics(&db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_concurrent_clients_never_share_a_lease() {
    let (db, dir) = sqlite().await;
    let other = Db::connect(&format!("sqlite://{}/b.db", dir.path().display()), 8)
        .await
        .unwrap();
    let (ok, exhausted) = storm(&[db, other], 8, 150).await;
    assert_eq!(ok + exhausted, 8 * 150);
    assert!(ok > 0);
}

#[tokio::test]
async fn postgres_semantics() {
    let Some(pg) = TempPgDatabase::create().await else {
        return;
    };
    let db = Db::connect(&pg.url, 8).await.unwrap();
    db.migrate().await.unwrap();
    semantics(&db).await;
    db.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_two_nodes_never_share_a_lease() {
    let Some(pg) = TempPgDatabase::create().await else {
        return;
    };
    let a = Db::connect(&pg.url, 8).await.unwrap();
    a.migrate().await.unwrap();
    let b = Db::connect(&pg.url, 8).await.unwrap();
    let (ok, exhausted) = storm(&[a.clone(), b.clone()], 8, 150).await;
    assert_eq!(ok + exhausted, 8 * 150);
    assert!(ok > 0);
    a.close().await;
    b.close().await;
}
