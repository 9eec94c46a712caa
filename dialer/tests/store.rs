//! Campaign store, hopper, dial gate and attempts on SQLite and PostgreSQL: concurrent claimers
//! (separate connection pools, as separate processes would have) never get the same lead; a
//! number added to the internal DNC list mid-campaign is not dialled; open attempts are closed as
//! interrupted after a crash and no lead is lost or dialled twice; retries, callbacks and
//! dispositions reopen leads as configured.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use dialer::attempts::{self, Callback, Final, LeadNext, NewAttempt, Outcome, Progress};
use dialer::campaign::{
    self, Action, CampaignState, DialMode, DispositionRule, LeadFilter, ListWeight,
};
use dialer::gate::{self, Registries, Verdict};
use dialer::hopper::{self, ListMix};
use foundation::clock::VirtualClock;
use foundation::testing::TempPgDatabase;
use foundation::{Clock, Db};
use sqlx::Row;

fn clock() -> VirtualClock {
    // 12:00 in New York: inside the window.
    VirtualClock::new(Utc.with_ymd_and_hms(2026, 6, 1, 16, 0, 0).unwrap())
}

#[test]
fn list_mix_follows_weights() {
    let mut mix = ListMix::default();
    let lists = [
        ListWeight {
            list_id: 1,
            weight: 3,
        },
        ListWeight {
            list_id: 2,
            weight: 1,
        },
    ];
    let q = mix.quotas(&lists, 8);
    assert_eq!((q[&1], q[&2]), (6, 2));
    // Across small claims the shares still hold.
    let mut total = [0u32; 2];
    for _ in 0..40 {
        for (id, n) in mix.quotas(&lists, 1) {
            total[id as usize - 1] += n;
        }
    }
    assert_eq!(total, [30, 10]);
}

async fn concurrent_claims(
    db: &Db,
    open: impl Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = Db>>>,
) {
    let clock = clock();
    let a = support::seed_list(db, "a", 120, 1000, &["America/New_York"], clock.now_ms()).await;
    let b = support::seed_list(db, "b", 80, 5000, &["America/New_York"], clock.now_ms()).await;
    let cfg = support::config(
        &[(a, 3), (b, 1)],
        DialMode::Predictive,
        "sip:127.0.0.1:5080",
    );
    let c = campaign::create(db, &clock, "spring", &cfg).await.unwrap();
    assert_eq!(c.state, CampaignState::Draft);
    assert!(
        campaign::create(db, &clock, "spring", &cfg).await.is_err(),
        "duplicate name"
    );
    let c = campaign::apply(db, &clock, c.id, Action::Start)
        .await
        .unwrap();
    assert_eq!(c.state, CampaignState::Running);
    assert_eq!(c.started_at, Some(clock.now_ms()));
    assert_eq!(hopper::refill(db, &clock, &c).await.unwrap(), 200);
    assert_eq!(hopper::refill(db, &clock, &c).await.unwrap(), 0);

    // First claim follows the weights.
    let first = hopper::claim(db, &clock, &c, "node-0", 8, &mut ListMix::default())
        .await
        .unwrap();
    assert_eq!(first.iter().filter(|l| l.list_id == a).count(), 6);
    assert_eq!(first.iter().filter(|l| l.list_id == b).count(), 2);
    assert!(
        first
            .windows(2)
            .all(|w| w[0].list_id != w[1].list_id || w[0].priority >= w[1].priority)
    );

    let mut tasks = Vec::new();
    for k in 0..4 {
        let db = open().await;
        let c = c.clone();
        let clock = clock.clone();
        tasks.push(tokio::task::spawn_local(async move {
            let mut mine = Vec::new();
            let mut mix = ListMix::default();
            loop {
                let got = hopper::claim(&db, &clock, &c, &format!("node-{}", k + 1), 5, &mut mix)
                    .await
                    .unwrap();
                if got.is_empty() {
                    break;
                }
                mine.extend(got.iter().map(|l| l.lead_id));
                tokio::task::yield_now().await;
            }
            db.close().await;
            mine
        }));
    }
    let mut all: Vec<i64> = first.iter().map(|l| l.lead_id).collect();
    let mut per_claimer = Vec::new();
    for t in tasks {
        let mine = t.await.unwrap();
        per_claimer.push(mine.len());
        all.extend(mine);
    }
    let distinct: BTreeSet<i64> = all.iter().copied().collect();
    assert_eq!(all.len(), 200, "every lead handed out ({per_claimer:?})");
    assert_eq!(distinct.len(), 200, "no lead handed out twice");
    assert!(
        per_claimer.iter().filter(|n| **n > 0).count() >= 2,
        "claimers ran concurrently: {per_claimer:?}"
    );
    let counts = hopper::counts(db, c.id, clock.now_ms()).await.unwrap();
    assert_eq!((counts.claimed, counts.ready), (200, 0));
}

#[tokio::test(flavor = "current_thread")]
async fn hopper_concurrent_claimers_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let db = support::sqlite(dir.path()).await;
    let url = format!("sqlite://{}/t.db", dir.path().display());
    tokio::task::LocalSet::new()
        .run_until(concurrent_claims(&db, move || {
            let url = url.clone();
            Box::pin(async move { Db::connect(&url, 2).await.unwrap() })
        }))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hopper_concurrent_claimers_postgres() {
    let Some(pg) = TempPgDatabase::create().await else {
        return;
    };
    let db = Db::connect(&pg.url, 4).await.unwrap();
    db.migrate().await.unwrap();
    let url = pg.url.clone();
    tokio::task::LocalSet::new()
        .run_until(concurrent_claims(&db, move || {
            let url = url.clone();
            Box::pin(async move { Db::connect(&url, 2).await.unwrap() })
        }))
        .await;
    db.close().await;
}

async fn attempts_and_recovery(db: &Db) {
    let clock = clock();
    let list = support::seed_list(db, "l", 6, 2000, &["America/New_York"], clock.now_ms()).await;
    let mut cfg = support::config(&[(list, 1)], DialMode::Progressive, "sip:127.0.0.1:5080");
    cfg.compliance.max_attempts_per_lead = 1;
    let c = campaign::create(db, &clock, "crash", &cfg).await.unwrap();
    let c = campaign::apply(db, &clock, c.id, Action::Start)
        .await
        .unwrap();
    hopper::refill(db, &clock, &c).await.unwrap();
    let leads = hopper::claim(db, &clock, &c, "n1", 10, &mut ListMix::default())
        .await
        .unwrap();
    assert_eq!(leads.len(), 6);
    let mut regs = Registries::default();
    regs.refresh(db).await.unwrap();
    let counters = gate::counters(db, &c, clock.now_ms(), 0, true)
        .await
        .unwrap();

    // A number put on the internal DNC list after the lead was claimed is not dialled.
    let e164 = leads[1].phones[0].e164.clone();
    let before = gate::decide(db, &clock, &c, &leads[1], &regs, &counters)
        .await
        .unwrap();
    assert!(matches!(before, Verdict::Dial { .. }), "{before:?}");
    importers::dnc::add_internal(db, &clock, &e164, "US", "asked", "agent", Some("bob"))
        .await
        .unwrap();
    let after = gate::decide(db, &clock, &c, &leads[1], &regs, &counters)
        .await
        .unwrap();
    let Verdict::Finish { outcome, reason } = after else {
        panic!("{after:?}")
    };
    assert!(
        outcome == "undialable" && reason.contains("do-not-call") && reason.contains("internal"),
        "{reason}"
    );
    hopper::finish(db, &clock, c.id, leads[1].lead_id, "n1", outcome, &reason)
        .await
        .unwrap();

    // Attempts written before dialling, in various states when the process dies.
    let mut ids = Vec::new();
    for (i, p) in [
        (0, None),
        (2, Some(Progress::Ringing)),
        (3, Some(Progress::Answered)),
        (4, Some(Progress::Connected)),
    ] {
        let Verdict::Dial { phone, reason } =
            gate::decide(db, &clock, &c, &leads[i], &regs, &counters)
                .await
                .unwrap()
        else {
            panic!()
        };
        let a = attempts::open(
            db,
            &clock,
            &NewAttempt {
                campaign_id: Some(c.id),
                lead_id: Some(leads[i].lead_id),
                phone_position: Some(phone.position),
                e164: phone.e164.clone(),
                caller_id: cfg.caller_id.clone(),
                node: "n1".into(),
                allowed_reason: reason,
                attributes: Default::default(),
            },
        )
        .await
        .unwrap();
        assert!(a.public_id.starts_with("contact_"));
        if let Some(p) = p {
            if p == Progress::Connected {
                attempts::mark(db, &clock, a.id, Progress::Answered)
                    .await
                    .unwrap();
            }
            attempts::mark(db, &clock, a.id, p).await.unwrap();
        }
        ids.push(a.id);
    }
    // A second open of the same claim fails: a lead cannot be dialled twice from one claim.
    let again = attempts::open(
        db,
        &clock,
        &NewAttempt {
            campaign_id: Some(c.id),
            lead_id: Some(leads[0].lead_id),
            e164: "+12120000000".into(),
            node: "n1".into(),
            ..Default::default()
        },
    )
    .await;
    assert!(again.is_err());

    // Another node's recovery does not touch n1's attempts.
    assert_eq!(
        attempts::recover(db, &clock, "n2").await.unwrap(),
        attempts::Recovery::default()
    );
    clock.advance(Duration::from_secs(5));
    let rec = attempts::recover(db, &clock, "n1").await.unwrap();
    assert_eq!(
        rec,
        attempts::Recovery {
            interrupted: 4,
            counted_abandoned: 1,
            released: 1
        }
    );
    let rows = sqlx::query(
        "SELECT lead_id, state, outcome, live, abandoned FROM dial_attempts ORDER BY id",
    )
    .fetch_all(db.pool())
    .await
    .unwrap();
    let got: Vec<(String, String, i64, i64)> = rows
        .iter()
        .map(|r| {
            (
                r.get("state"),
                r.get::<Option<String>, _>("outcome").unwrap(),
                r.get::<i16, _>("live") as i64,
                r.get::<i16, _>("abandoned") as i64,
            )
        })
        .collect();
    let f = |l: i64, a: i64| ("final".to_owned(), "interrupted".to_owned(), l, a);
    assert_eq!(got, vec![f(0, 0), f(0, 0), f(1, 1), f(1, 0)]);
    // Recovery is idempotent.
    assert_eq!(
        attempts::recover(db, &clock, "n1")
            .await
            .unwrap()
            .interrupted,
        0
    );

    // max_attempts = 1: the interrupted leads are done; only the never-dialled lead comes back.
    let counts = hopper::counts(db, c.id, clock.now_ms()).await.unwrap();
    assert_eq!(
        (counts.done, counts.ready, counts.claimed, counts.dialing),
        (5, 1, 0, 0)
    );
    let back = hopper::claim(db, &clock, &c, "n1", 10, &mut ListMix::default())
        .await
        .unwrap();
    assert_eq!(
        back.iter().map(|l| l.lead_id).collect::<Vec<_>>(),
        vec![leads[5].lead_id]
    );
    let ab = attempts::abandon_count(db, c.id, 0).await.unwrap();
    assert_eq!((ab.live, ab.abandoned), (2, 1));
    assert!(
        hopper::claim(db, &clock, &c, "n1", 10, &mut ListMix::default())
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn attempts_and_recovery_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let db = support::sqlite(dir.path()).await;
    attempts_and_recovery(&db).await;
}

#[tokio::test]
async fn attempts_and_recovery_postgres() {
    let Some(pg) = TempPgDatabase::create().await else {
        return;
    };
    let db = Db::connect(&pg.url, 4).await.unwrap();
    db.migrate().await.unwrap();
    attempts_and_recovery(&db).await;
    db.close().await;
}

async fn retries_callbacks_filters(db: &Db) {
    let clock = clock();
    let list = support::seed_list(db, "r", 4, 3000, &["America/New_York"], clock.now_ms()).await;
    let mut cfg = support::config(&[(list, 1)], DialMode::Preview, "sip:127.0.0.1:5080");
    cfg.dispositions.insert(
        "sale".into(),
        DispositionRule {
            final_: true,
            retry_after_s: None,
        },
    );
    cfg.dispositions.insert(
        "think".into(),
        DispositionRule {
            final_: false,
            retry_after_s: Some(86_400),
        },
    );
    cfg.filters = vec![LeadFilter::Eq {
        attribute: "segment".into(),
        value: "gold".into(),
    }];
    let c = campaign::create(db, &clock, "retry", &cfg).await.unwrap();
    let c = campaign::apply(db, &clock, c.id, Action::Start)
        .await
        .unwrap();
    hopper::refill(db, &clock, &c).await.unwrap();
    let regs = Registries::default();
    let counters = gate::counters(db, &c, clock.now_ms(), 0, true)
        .await
        .unwrap();

    // Filters: the silver leads are set aside; the gold ones go on.
    let leads = hopper::claim(db, &clock, &c, "n", 10, &mut ListMix::default())
        .await
        .unwrap();
    let mut gold = Vec::new();
    for l in &leads {
        match gate::decide(db, &clock, &c, l, &regs, &counters)
            .await
            .unwrap()
        {
            Verdict::Filtered { reason } => {
                hopper::set_filtered(db, &clock, c.id, l.lead_id, "n", &reason)
                    .await
                    .unwrap()
            }
            Verdict::Dial { phone, reason } => gold.push((l.clone(), phone, reason)),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(gold.len(), 2);
    let open = |i: usize| {
        let (l, phone, reason) = gold[i].clone();
        let (c, clock) = (c.clone(), clock.clone());
        async move {
            attempts::open(
                db,
                &clock,
                &NewAttempt {
                    campaign_id: Some(c.id),
                    lead_id: Some(l.lead_id),
                    phone_position: Some(phone.position),
                    e164: phone.e164,
                    caller_id: "1".into(),
                    node: "n".into(),
                    allowed_reason: reason,
                    attributes: Default::default(),
                },
            )
            .await
            .unwrap()
        }
    };
    // No answer → retry after the policy's 2 h; busy number limit aside.
    let a0 = open(0).await;
    let next = attempts::finish(
        db,
        &clock,
        a0.id,
        &Final {
            outcome: Some(Outcome::NoAnswer),
            sip_code: Some(487),
            ..Final::default()
        },
        Some(&c.config),
    )
    .await
    .unwrap();
    assert_eq!(
        next,
        LeadNext::Retry {
            at: clock.now_ms() + 2 * 3_600_000
        }
    );
    // Finishing twice changes nothing.
    assert_eq!(
        attempts::finish(
            db,
            &clock,
            a0.id,
            &Final {
                outcome: Some(Outcome::Busy),
                ..Final::default()
            },
            Some(&c.config)
        )
        .await
        .unwrap(),
        LeadNext::Nothing
    );
    // Connected, then the agent schedules a same-agent callback in 1 h.
    let a1 = open(1).await;
    attempts::mark(db, &clock, a1.id, Progress::Answered)
        .await
        .unwrap();
    attempts::mark(db, &clock, a1.id, Progress::Connected)
        .await
        .unwrap();
    attempts::finish(
        db,
        &clock,
        a1.id,
        &Final {
            outcome: Some(Outcome::Connected),
            live: true,
            agent: Some("bob".into()),
            ..Final::default()
        },
        Some(&c.config),
    )
    .await
    .unwrap();
    assert!(
        attempts::set_disposition(db, &clock, &a1.public_id, "nonsense", None)
            .await
            .is_err()
    );
    attempts::set_disposition(
        db,
        &clock,
        &a1.public_id,
        "callback",
        Some(&Callback {
            at: clock.now_ms() + 3_600_000,
            agent: Some("bob".into()),
        }),
    )
    .await
    .unwrap();

    assert!(
        hopper::claim(db, &clock, &c, "n", 10, &mut ListMix::default())
            .await
            .unwrap()
            .is_empty()
    );
    clock.advance(Duration::from_secs(3600));
    // Due, but only for bob.
    assert!(
        hopper::claim(db, &clock, &c, "n", 10, &mut ListMix::default())
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        hopper::claim_for_agent(db, &clock, &c, "n", "alice")
            .await
            .unwrap()
            .is_none()
    );
    let cb = hopper::claim_for_agent(db, &clock, &c, "n", "bob")
        .await
        .unwrap()
        .expect("bob's callback");
    assert_eq!(cb.lead_id, gold[1].0.lead_id);
    assert_eq!(cb.callback_agent.as_deref(), Some("bob"));
    hopper::release(
        db,
        &clock,
        c.id,
        cb.lead_id,
        "n",
        clock.now_ms() + 1000,
        "test",
    )
    .await
    .unwrap();

    // Changing the filters brings the set-aside leads back.
    let mut cfg2 = c.config.clone();
    cfg2.filters.clear();
    assert!(
        campaign::update_config(db, &clock, c.id, &cfg2, Some(c.version - 1))
            .await
            .is_err(),
        "stale version"
    );
    let c2 = campaign::update_config(db, &clock, c.id, &cfg2, Some(c.version))
        .await
        .unwrap();
    assert_eq!(c2.version, c.version + 1);
    let counts = hopper::counts(db, c.id, clock.now_ms()).await.unwrap();
    assert_eq!((counts.filtered, counts.ready), (0, 4));
    let c3 = campaign::apply(db, &clock, c.id, Action::Complete)
        .await
        .unwrap();
    assert!(
        campaign::update_config(db, &clock, c3.id, &cfg2, None)
            .await
            .is_err(),
        "completed is read-only"
    );
}

#[tokio::test]
async fn retries_callbacks_filters_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let db = support::sqlite(dir.path()).await;
    retries_callbacks_filters(&db).await;
}

#[tokio::test]
async fn retries_callbacks_filters_postgres() {
    let Some(pg) = TempPgDatabase::create().await else {
        return;
    };
    let db = Db::connect(&pg.url, 4).await.unwrap();
    db.migrate().await.unwrap();
    retries_callbacks_filters(&db).await;
    db.close().await;
}

/// An AMD "machine" verdict on a live person counts as abandoned: the attempt is marked
/// `live_person_after_machine` with its evidence and counts as a live answer and an abandoned
/// call in every abandonment rate (campaign to date, 30-day period, rolling window).
async fn false_machine_counts_as_abandoned(db: &Db) {
    let clock = clock();
    let list = support::seed_list(db, "fm", 1, 8000, &["America/New_York"], clock.now_ms()).await;
    let mut cfg = support::config(&[(list, 1)], DialMode::Predictive, "sip:127.0.0.1:5090");
    cfg.compliance.rolling_window_h = Some(24);
    let c = campaign::create(db, &clock, "false machine", &cfg)
        .await
        .unwrap();
    let c = campaign::apply(db, &clock, c.id, Action::Start)
        .await
        .unwrap();
    let open = |n: u32| NewAttempt {
        campaign_id: Some(c.id),
        e164: format!("+1212555{n:04}"),
        caller_id: "15550001000".into(),
        node: "n1".into(),
        allowed_reason: "test".into(),
        ..NewAttempt::default()
    };
    let mut finals = Vec::new();
    // Two live answers connected, one real machine, one machine verdict on a person who then
    // pressed a key.
    let connected = Final {
        outcome: Some(Outcome::Connected),
        live: true,
        amd: Some("human".into()),
        ..Final::default()
    };
    finals.push(connected.clone());
    finals.push(connected);
    finals.push(Final {
        outcome: Some(Outcome::Machine),
        amd: Some("machine".into()),
        ..Final::default()
    });
    let mut fm = Final {
        outcome: Some(Outcome::Abandoned),
        amd: Some("machine".into()),
        ..Final::default()
    };
    fm.live_person_after_machine("key 5 pressed after the machine verdict");
    assert!(fm.live && fm.abandoned && fm.live_person_after_machine);
    finals.push(fm);
    let mut ids = Vec::new();
    for (i, f) in finals.iter().enumerate() {
        let a = attempts::open(db, &clock, &open(i as u32)).await.unwrap();
        attempts::finish(db, &clock, a.id, f, Some(&c.config))
            .await
            .unwrap();
        ids.push(a.id);
    }
    let r = sqlx::query(
        "SELECT outcome, live, abandoned, live_person_after_machine, evidence FROM dial_attempts WHERE id = $1",
    )
    .bind(ids[3])
    .fetch_one(db.pool())
    .await
    .unwrap();
    assert_eq!(r.get::<String, _>("outcome"), "abandoned");
    assert_eq!(
        (
            r.get::<i16, _>("live"),
            r.get::<i16, _>("abandoned"),
            r.get::<i16, _>("live_person_after_machine")
        ),
        (1, 1, 1)
    );
    assert_eq!(
        r.get::<Option<String>, _>("evidence").as_deref(),
        Some("key 5 pressed after the machine verdict")
    );
    let machine: i16 =
        sqlx::query_scalar("SELECT live_person_after_machine FROM dial_attempts WHERE id = $1")
            .bind(ids[2])
            .fetch_one(db.pool())
            .await
            .unwrap();
    assert_eq!(machine, 0, "a real machine is not a live person");

    clock.advance(Duration::from_secs(60));
    let counters = gate::counters(db, &c, clock.now_ms(), 0, false)
        .await
        .unwrap();
    let rolling = counters.rolling.clone().expect("a rolling window");
    for (span, n) in [
        ("to date", &counters.to_date),
        ("period", &counters.period),
        ("rolling", &rolling),
    ] {
        assert_eq!((n.live, n.abandoned), (3, 1), "{span}");
    }
    // 1 of 3 live answers abandoned: over the 3 % cap, so only agent-reserved dials go out.
    hopper::refill(db, &clock, &c).await.unwrap();
    let lead = hopper::claim(db, &clock, &c, "n1", 1, &mut ListMix::default())
        .await
        .unwrap()
        .pop()
        .expect("a lead");
    let v = gate::decide(db, &clock, &c, &lead, &Registries::default(), &counters)
        .await
        .unwrap();
    assert!(
        matches!(&v, Verdict::Release { code, .. } if *code == "abandon_cap"),
        "{v:?}"
    );
}

#[tokio::test]
async fn false_machine_counts_as_abandoned_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let db = support::sqlite(dir.path()).await;
    false_machine_counts_as_abandoned(&db).await;
    db.close().await;
}

#[tokio::test]
async fn false_machine_counts_as_abandoned_postgres() {
    let Some(pg) = TempPgDatabase::create().await else {
        return;
    };
    let db = Db::connect(&pg.url, 4).await.unwrap();
    db.migrate().await.unwrap();
    false_machine_counts_as_abandoned(&db).await;
    db.close().await;
}
