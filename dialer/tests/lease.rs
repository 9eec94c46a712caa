//! The pacer lease on SQLite and PostgreSQL, each node with its own connection pool as separate
//! processes would have: one holder at a time, renewal keeps the token, expiry lets another node
//! take over with a newer token and close the old holder's open attempts and claims, the old
//! holder's claims and attempts are refused by the fencing token afterwards, a clean release is
//! taken without recovery, and racing claimers never both win. A taker that dies during its
//! recovery leaves it pending, and the next holder redoes exactly the unfinished part.

mod support;

use std::time::Duration;

use chrono::{TimeZone, Utc};
use dialer::attempts::{self, NewAttempt, Progress};
use dialer::campaign::{self, Action, Campaign, DialMode};
use dialer::hopper::{self, ListMix};
use dialer::lease::{self, Acquired, Fence, Fenced};
use foundation::clock::VirtualClock;
use foundation::testing::TempPgDatabase;
use foundation::{Clock, Db};
use sqlx::Row;

const TTL: Duration = Duration::from_secs(5);

fn clock() -> VirtualClock {
    VirtualClock::new(Utc.with_ymd_and_hms(2026, 6, 1, 16, 0, 0).unwrap())
}

async fn campaign(db: &Db, clock: &VirtualClock, name: &str, first: u32) -> Campaign {
    let list = support::seed_list(db, name, 10, first, &["America/New_York"], clock.now_ms()).await;
    let mut cfg = support::config(&[(list, 1)], DialMode::Predictive, "sip:127.0.0.1:5080");
    cfg.compliance.max_attempts_per_lead = 1;
    let c = campaign::create(db, clock, name, &cfg).await.unwrap();
    let c = campaign::apply(db, clock, c.id, Action::Start)
        .await
        .unwrap();
    hopper::refill(db, clock, &c).await.unwrap();
    c
}

fn held(a: Acquired) -> lease::Lease {
    match a {
        Acquired::Held(l) => l,
        other => panic!("expected the lease, got {other:?}"),
    }
}

fn is_fenced(e: &anyhow::Error) -> bool {
    e.downcast_ref::<Fenced>().is_some()
}

async fn open(
    db: &Db,
    clock: &VirtualClock,
    c: &Campaign,
    lead: &hopper::ClaimedLead,
    fence: Fence<'_>,
) -> anyhow::Result<attempts::Attempt> {
    attempts::open_fenced(
        db,
        clock,
        &NewAttempt {
            campaign_id: Some(c.id),
            lead_id: Some(lead.lead_id),
            phone_position: Some(lead.phones[0].position),
            e164: lead.phones[0].e164.clone(),
            caller_id: c.config.caller_id.clone(),
            node: fence.node.to_owned(),
            allowed_reason: "test".into(),
            attributes: Default::default(),
        },
        Some(fence),
    )
    .await
}

/// `a` and `b` are separate pools on one database.
async fn lease_lifecycle(a: &Db, b: &Db) {
    let clock = clock();
    let c = campaign(a, &clock, "spring", 1000).await;

    // One holder; renewal keeps the token; the other node is told who holds it.
    let la = held(lease::acquire(a, &clock, c.id, "na", TTL).await.unwrap());
    assert_eq!((la.token, la.takeover.clone()), (1, None));
    match lease::acquire(b, &clock, c.id, "nb", TTL).await.unwrap() {
        Acquired::Busy { holder, expires_at } => {
            assert_eq!((holder.as_str(), expires_at), ("na", clock.now_ms() + 5000))
        }
        other => panic!("{other:?}"),
    }
    clock.advance(Duration::from_secs(3));
    let la = held(lease::acquire(a, &clock, c.id, "na", TTL).await.unwrap());
    assert_eq!(la.token, 1);
    clock.advance(Duration::from_secs(3));
    // Renewed 3 s ago: still held at 6 s after the first grant.
    assert!(matches!(
        lease::acquire(b, &clock, c.id, "nb", TTL).await.unwrap(),
        Acquired::Busy { .. }
    ));

    // The holder claims 3 leads and dials 2 of them (one answered), then stops renewing.
    let fa = Fence {
        node: "na",
        token: 1,
    };
    let leads = hopper::claim_fenced(a, &clock, &c, "na", Some(1), 3, &mut ListMix::default())
        .await
        .unwrap();
    assert_eq!(leads.len(), 3);
    let first = open(a, &clock, &c, &leads[0], fa).await.unwrap();
    let second = open(a, &clock, &c, &leads[1], fa).await.unwrap();
    attempts::mark(a, &clock, second.id, Progress::Answered)
        .await
        .unwrap();
    // A wrong token is refused even while the lease is current.
    let wrong =
        hopper::claim_fenced(a, &clock, &c, "na", Some(7), 1, &mut ListMix::default()).await;
    assert!(wrong.as_ref().is_err_and(is_fenced), "{wrong:?}");

    // Expired: the other node takes over with token 2 and closes what the old holder left.
    clock.advance(Duration::from_millis(5001));
    let lb = held(lease::acquire(b, &clock, c.id, "nb", TTL).await.unwrap());
    assert_eq!(lb.token, 2);
    let t = lb.takeover.expect("a takeover");
    assert_eq!(t.from, "na");
    assert_eq!(
        t.recovery,
        attempts::Recovery {
            interrupted: 2,
            counted_abandoned: 1,
            released: 1
        }
    );
    let rows = sqlx::query("SELECT id, state, outcome, abandoned FROM dial_attempts ORDER BY id")
        .fetch_all(b.pool())
        .await
        .unwrap();
    let got: Vec<(i64, String, String, i16)> = rows
        .iter()
        .map(|r| {
            (
                r.get("id"),
                r.get("state"),
                r.get("outcome"),
                r.get("abandoned"),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (first.id, "final".into(), "interrupted".into(), 0),
            (second.id, "final".into(), "interrupted".into(), 1)
        ]
    );

    // The old holder wakes up: its claims and attempts are refused, and it cannot renew.
    let late = hopper::claim_fenced(a, &clock, &c, "na", Some(1), 5, &mut ListMix::default()).await;
    assert!(late.as_ref().is_err_and(is_fenced), "{late:?}");
    let late = open(a, &clock, &c, &leads[2], fa).await;
    assert!(late.as_ref().is_err_and(is_fenced), "{late:?}");
    match lease::acquire(a, &clock, c.id, "na", TTL).await.unwrap() {
        Acquired::Busy { holder, .. } => assert_eq!(holder, "nb"),
        other => panic!("{other:?}"),
    }
    assert_eq!(lease::get(a, c.id).await.unwrap().unwrap().token, 2);

    // The new pacer dials everything else: the released lead too; the interrupted ones are done
    // (max_attempts = 1): every lead gets at most one attempt.
    let fb = Fence {
        node: "nb",
        token: 2,
    };
    let rest = hopper::claim_fenced(b, &clock, &c, "nb", Some(2), 20, &mut ListMix::default())
        .await
        .unwrap();
    assert_eq!(rest.len(), 8);
    assert!(rest.iter().any(|l| l.lead_id == leads[2].lead_id));
    for l in &rest {
        open(b, &clock, &c, l, fb).await.unwrap();
    }
    let max: i64 = sqlx::query_scalar(
        "SELECT MAX(n) FROM (SELECT COUNT(*) AS n FROM dial_attempts GROUP BY lead_id) t",
    )
    .fetch_one(b.pool())
    .await
    .unwrap();
    let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM dial_attempts")
        .fetch_one(b.pool())
        .await
        .unwrap();
    assert_eq!((max, total), (1, 10));

    // Recorded: who took over from whom.
    let recs = lease::takeovers(a, c.id).await.unwrap();
    assert_eq!(recs.len(), 1);
    assert_eq!(
        (
            recs[0].from_node.as_str(),
            recs[0].to_node.as_str(),
            recs[0].token,
            recs[0].interrupted,
            recs[0].released
        ),
        ("na", "nb", 2, 2, 1)
    );
    let audit = foundation::audit::recent(a, Some("dialer.pacer_takeover"), 10)
        .await
        .unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].actor, "node:nb");

    // A clean release is taken at once, with a newer token and no recovery.
    assert!(lease::release(b, &clock, c.id, "nb", 2).await.unwrap());
    assert!(!lease::release(b, &clock, c.id, "nb", 2).await.unwrap());
    let la = held(lease::acquire(a, &clock, c.id, "na", TTL).await.unwrap());
    assert_eq!((la.token, la.takeover), (3, None));
    assert_eq!(lease::release_node(a, &clock, "na").await.unwrap(), 1);
    assert_eq!(lease::takeovers(a, c.id).await.unwrap().len(), 1);
}

/// Two nodes asking at the same moment: exactly one gets the lease each round, and the token grows
/// by exactly one per takeover.
async fn racing_claimers(a: &Db, b: &Db) {
    let clock = clock();
    let c = campaign(a, &clock, "race", 3000).await;
    held(lease::acquire(a, &clock, c.id, "gone", TTL).await.unwrap());
    let (mut holder, mut token, mut taken) = ("gone", 1, 0);
    for round in 0..10i64 {
        clock.advance(Duration::from_secs(6));
        let (ra, rb) = tokio::join!(
            lease::acquire(a, &clock, c.id, "na", TTL),
            lease::acquire(b, &clock, c.id, "nb", TTL)
        );
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        let winners: Vec<_> = [("na", &ra), ("nb", &rb)]
            .into_iter()
            .filter_map(|(n, r)| match r {
                Acquired::Held(l) => Some((n, l.clone())),
                _ => None,
            })
            .collect();
        assert_eq!(winners.len(), 1, "round {round}: {ra:?} {rb:?}");
        let (n, l) = &winners[0];
        // The lapsed holder may renew its own lease (same token); another node takes it over
        // with the next token.
        if *n == holder {
            assert_eq!(
                (l.token, l.takeover.is_none()),
                (token, true),
                "round {round}"
            );
        } else {
            assert_eq!(
                (l.token, l.takeover.as_ref().map(|t| t.from.as_str())),
                (token + 1, Some(holder)),
                "round {round}"
            );
            (holder, token, taken) = (n, token + 1, taken + 1);
        }
    }
    assert!(taken >= 1);
    assert_eq!(lease::takeovers(a, c.id).await.unwrap().len(), taken);
}

/// The node that took over ("nc") dies after taking the lease and while recovering (it closed
/// one of the dead holder's two open attempts): the recovery stays pending in the database,
/// keyed to the dead holder's token. The next holder ("nd", taking over from the dead taker)
/// redoes the unfinished part once: the other attempt is closed, the claimed lead is given back,
/// both takeovers are recorded, and nothing is redone afterwards. A taker restarted under its
/// own name redoes its pending recovery on its next renewal.
async fn takeover_recovery_retried(a: &Db, b: &Db) {
    let clock = clock();
    let c = campaign(a, &clock, "retry", 5000).await;
    held(lease::acquire(a, &clock, c.id, "na", TTL).await.unwrap());
    let fa = Fence {
        node: "na",
        token: 1,
    };
    let leads = hopper::claim_fenced(a, &clock, &c, "na", Some(1), 3, &mut ListMix::default())
        .await
        .unwrap();
    let first = open(a, &clock, &c, &leads[0], fa).await.unwrap();
    let second = open(a, &clock, &c, &leads[1], fa).await.unwrap();
    attempts::mark(a, &clock, second.id, Progress::Answered)
        .await
        .unwrap();

    // "na" dies; "nc" takes over (token 2) and dies mid-recovery.
    clock.advance(Duration::from_millis(5001));
    let (got, pending) = lease::claim(b, &clock, c.id, "nc", TTL).await.unwrap();
    assert_eq!(held(got).token, 2);
    assert_eq!(pending, Some(Some(("na".to_owned(), 1))));
    let partial = attempts::Final {
        outcome: Some(attempts::Outcome::Interrupted),
        detail: Some("closed by nc before it died".into()),
        ..Default::default()
    };
    attempts::finish(b, &clock, first.id, &partial, Some(&c.config))
        .await
        .unwrap();
    let row = lease::get(a, c.id).await.unwrap().unwrap();
    assert_eq!(
        (row.node.as_str(), row.token, row.recovering),
        ("nc", 2, true)
    );
    assert!(lease::takeovers(a, c.id).await.unwrap().is_empty());

    // "nc"'s lease expires; "nd" takes over from it and finishes "na"'s recovery too.
    clock.advance(Duration::from_millis(5001));
    let ld = held(lease::acquire(a, &clock, c.id, "nd", TTL).await.unwrap());
    assert_eq!(ld.token, 3);
    let t = ld.takeover.expect("a takeover");
    assert_eq!(
        (t.from.as_str(), t.resumed.clone()),
        ("nc", vec!["na".to_owned()])
    );
    assert_eq!(t.recovery, attempts::Recovery::default());
    let states: Vec<(i64, String, String, i16)> =
        sqlx::query(
            "SELECT id, state, outcome, abandoned FROM dial_attempts WHERE campaign_id = $1 ORDER BY id",
        )
        .bind(c.id)
        .fetch_all(a.pool())
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get("id"), r.get("state"), r.get("outcome"), r.get("abandoned")))
            .collect();
    assert_eq!(
        states,
        vec![
            (first.id, "final".into(), "interrupted".into(), 0),
            (second.id, "final".into(), "interrupted".into(), 1)
        ]
    );
    let lead_state: String = sqlx::query_scalar(
        "SELECT state FROM campaign_leads WHERE campaign_id = $1 AND lead_id = $2",
    )
    .bind(c.id)
    .bind(leads[2].lead_id)
    .fetch_one(a.pool())
    .await
    .unwrap();
    assert_eq!(lead_state, "ready");
    let recs = lease::takeovers(a, c.id).await.unwrap();
    let got: Vec<_> = recs
        .iter()
        .map(|r| {
            (
                r.from_node.as_str(),
                r.to_node.as_str(),
                r.token,
                r.interrupted,
                r.counted_abandoned,
                r.released,
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![("na", "nd", 3, 1, 1, 1), ("nc", "nd", 3, 0, 0, 0)]
    );
    let done: Vec<(String, i64, Option<String>)> = sqlx::query(
        "SELECT from_node, from_token, done_by FROM campaign_pacer_recoveries WHERE campaign_id = $1 ORDER BY id",
    )
    .bind(c.id)
    .fetch_all(a.pool())
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get("from_node"), r.get("from_token"), r.get("done_by")))
    .collect();
    assert_eq!(
        done,
        vec![
            ("na".into(), 1, Some("nd".into())),
            ("nc".into(), 2, Some("nd".into()))
        ]
    );
    assert!(!lease::get(a, c.id).await.unwrap().unwrap().recovering);

    // Renewing redoes nothing.
    let ld = held(lease::acquire(a, &clock, c.id, "nd", TTL).await.unwrap());
    assert_eq!((ld.token, ld.takeover), (3, None));
    assert_eq!(lease::takeovers(a, c.id).await.unwrap().len(), 2);

    // A taker restarted under its own name: "nd" dies, "ne" takes over and dies before
    // recovering, comes back within its lease and renews: the pending recovery runs then.
    let fd = Fence {
        node: "nd",
        token: 3,
    };
    let more = hopper::claim_fenced(a, &clock, &c, "nd", Some(3), 1, &mut ListMix::default())
        .await
        .unwrap();
    let third = open(a, &clock, &c, &more[0], fd).await.unwrap();
    clock.advance(Duration::from_millis(5001));
    let (got, pending) = lease::claim(b, &clock, c.id, "ne", TTL).await.unwrap();
    assert_eq!(
        (held(got).token, pending),
        (4, Some(Some(("nd".to_owned(), 3))))
    );
    clock.advance(Duration::from_secs(1));
    let le = held(lease::acquire(b, &clock, c.id, "ne", TTL).await.unwrap());
    let t = le.takeover.expect("the resumed recovery");
    assert_eq!(
        (t.from.as_str(), t.recovery.interrupted, t.resumed.len()),
        ("nd", 1, 0)
    );
    let st: String = sqlx::query_scalar("SELECT state FROM dial_attempts WHERE id = $1")
        .bind(third.id)
        .fetch_one(a.pool())
        .await
        .unwrap();
    assert_eq!(st, "final");
    assert!(!lease::get(a, c.id).await.unwrap().unwrap().recovering);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pacer_lease_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let a = support::sqlite(dir.path()).await;
    let b = Db::connect(&format!("sqlite://{}/t.db", dir.path().display()), 2)
        .await
        .unwrap();
    lease_lifecycle(&a, &b).await;
    racing_claimers(&a, &b).await;
    takeover_recovery_retried(&a, &b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pacer_lease_postgres() {
    let Some(pg) = TempPgDatabase::create().await else {
        return;
    };
    let a = Db::connect(&pg.url, 4).await.unwrap();
    a.migrate().await.unwrap();
    let b = Db::connect(&pg.url, 4).await.unwrap();
    lease_lifecycle(&a, &b).await;
    racing_claimers(&a, &b).await;
    takeover_recovery_retried(&a, &b).await;
    a.close().await;
    b.close().await;
}
