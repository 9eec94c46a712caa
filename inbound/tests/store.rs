//! Flow storage on SQLite and PostgreSQL: versioned documents validated on save, strict import
//! naming unsupported actions, a version saved with them skipped (compiled leniently, per version),
//! export, DID mapping, rollback, hours and contact records.

use foundation::Db;
use foundation::testing::TempPgDatabase;
use inbound::contact::ContactInfo;
use inbound::flow::FlowError;
use inbound::hours::{HoursConfig, WeeklyRange};
use inbound::interpreter::{Input, Interpreter};
use inbound::store::{self, StoreError};

const MENU: &str = include_str!("fixtures/menu_flow.json");
const CONNECT_EXPORT: &str = include_str!("fixtures/connect_rolling_dnis_receive.json");

async fn exercise(db: &Db) {
    db.migrate().await.unwrap();
    // Save twice: versions 1 and 2; the second changes the goodbye prompt.
    assert_eq!(
        store::import_flow(db, "main", MENU, 1_000, "user:ops")
            .await
            .unwrap(),
        1
    );
    let v2 = MENU.replace(
        "All of our agents are busy. Goodbye.",
        "Everyone is busy, please call later.",
    );
    assert_eq!(
        store::import_flow(db, "main", &v2, 2_000, "user:ops")
            .await
            .unwrap(),
        2
    );
    let versions = store::flow_versions(db, "main").await.unwrap();
    assert_eq!(
        versions,
        vec![
            (1, 1_000, "user:ops".to_string()),
            (2, 2_000, "user:ops".to_string())
        ]
    );
    assert!(
        store::export_flow(db, "main", None)
            .await
            .unwrap()
            .contains("Everyone is busy")
    );
    assert!(
        store::export_flow(db, "main", Some(1))
            .await
            .unwrap()
            .contains("All of our agents are busy")
    );

    // Invalid and unsupported documents are refused with the reason; nothing is stored.
    match store::import_flow(db, "imported", CONNECT_EXPORT, 3_000, "user:ops").await {
        Err(StoreError::Invalid(errors)) => assert_eq!(
            errors,
            vec![FlowError::UnsupportedAction {
                action: "3e419d85-af42-40b1-ad34-8c6f5a0b1d43".into(),
                action_type: "UpdateContactData".into(),
            }]
        ),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        store::load_flow(db, "imported", None).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store::import_flow(db, "x", "{", 3_000, "user:ops").await,
        Err(StoreError::Invalid(_))
    ));

    // Saved with its unsupported actions skipped: that version compiles leniently (the action a
    // stand-in), a later normal save does not, and a rollback brings the lenient one back.
    let doc = inbound::flow::FlowDocument::from_json(CONNECT_EXPORT).unwrap();
    assert_eq!(
        store::save_flow_skipping_unsupported(db, "imported", &doc, 3_100, "user:ops")
            .await
            .unwrap(),
        1
    );
    let skipping = store::load_flow(db, "imported", None).await.unwrap();
    assert!(skipping.skip_unsupported);
    let compiled = skipping.compile().expect("compiles leniently");
    assert_eq!(
        compiled.unsupported,
        [(
            "3e419d85-af42-40b1-ad34-8c6f5a0b1d43".to_string(),
            "UpdateContactData".to_string()
        )]
    );
    let detail: String = sqlx::query_scalar(
        "SELECT detail FROM audit_log WHERE action = 'inbound.flow.save' AND subject = 'imported'",
    )
    .fetch_one(db.pool())
    .await
    .unwrap();
    assert!(detail.contains("UpdateContactData"), "{detail}");
    assert_eq!(
        store::import_flow(db, "imported", MENU, 3_200, "user:ops")
            .await
            .unwrap(),
        2
    );
    let strict = store::load_flow(db, "imported", None).await.unwrap();
    assert!(!strict.skip_unsupported);
    assert!(strict.compile().unwrap().unsupported.is_empty());
    store::set_current_version(db, "imported", 1, 3_300, "user:ops")
        .await
        .unwrap();
    assert!(
        store::load_flow(db, "imported", None)
            .await
            .unwrap()
            .skip_unsupported
    );
    // Other problems are still refused when skipping.
    let broken = CONNECT_EXPORT.replacen(
        "\"NextAction\": \"4f52ae96-b053-41c2-be45-9d7a6b1c2e54\"",
        "\"NextAction\": \"nowhere\"",
        1,
    );
    assert_ne!(broken, CONNECT_EXPORT);
    let broken = inbound::flow::FlowDocument::from_json(&broken).unwrap();
    assert!(matches!(
        store::save_flow_skipping_unsupported(db, "imported", &broken, 3_400, "user:ops").await,
        Err(StoreError::Invalid(errors)) if errors.iter().any(|e| matches!(e, FlowError::DanglingTransition { .. }))
    ));
    assert!(
        !store::load_flow(db, "main", None)
            .await
            .unwrap()
            .skip_unsupported
    );

    // Numbers to flows; the current version is what a call gets; rollback pins version 1.
    store::assign_number(db, "+18005550199", "main", 4_000, "user:ops")
        .await
        .unwrap();
    assert!(matches!(
        store::assign_number(db, "+18005550100", "nope", 4_000, "user:ops").await,
        Err(StoreError::NotFound(_))
    ));
    let flow = store::flow_for_number(db, "+18005550199")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((flow.name.as_str(), flow.version), ("main", 2));
    store::set_current_version(db, "main", 1, 5_000, "user:ops")
        .await
        .unwrap();
    let flow = store::flow_for_number(db, "+18005550199")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(flow.version, 1);
    assert!(
        store::flow_for_number(db, "+18005550000")
            .await
            .unwrap()
            .is_none()
    );

    // Run a contact on the stored flow and keep its record.
    let mut interp = Interpreter::new(flow.compile().unwrap(), 0);
    let contact = ContactInfo {
        contact_id: "c-42".into(),
        system_address: "+18005550199".into(),
        ..ContactInfo::default()
    };
    interp.step(Input::Started(contact), 10_000);
    store::save_contact(db, interp.record(), Some(&flow))
        .await
        .unwrap();
    interp.step(Input::Hangup, 11_000);
    store::save_contact(db, interp.record(), Some(&flow))
        .await
        .unwrap();
    let back = store::load_contact(db, "c-42").await.unwrap();
    assert_eq!(&back, interp.record());
    assert_eq!(back.ended_at_ms, Some(11_000));
    let (outcome, version): (String, i64) =
        sqlx::query_as("SELECT outcome, flow_version FROM inbound_contacts WHERE contact_id = $1")
            .bind("c-42")
            .fetch_one(db.pool())
            .await
            .unwrap();
    assert_eq!((outcome.as_str(), version), ("caller_hung_up", 1));

    store::unassign_number(db, "+18005550199", 12_000, "user:ops")
        .await
        .unwrap();
    assert!(
        store::flow_for_number(db, "+18005550199")
            .await
            .unwrap()
            .is_none()
    );

    // Hours: validated on save, loaded compiled.
    let mut hours = HoursConfig {
        id: "office".into(),
        time_zone: "America/New_York".into(),
        weekly: vec![WeeklyRange {
            day: "Mon".into(),
            start: "09:00".into(),
            end: "17:00".into(),
        }],
        overrides: vec![],
    };
    store::save_hours(db, &hours, 1, "user:ops").await.unwrap();
    // Monday 9 March 2026 13:30 UTC = 09:30 EDT.
    assert!(
        store::load_hours(db, "office")
            .await
            .unwrap()
            .is_open_ms(1_773_063_000_000)
    );
    hours.time_zone = "Nowhere/Land".into();
    assert!(matches!(
        store::save_hours(db, &hours, 2, "user:ops").await,
        Err(StoreError::Hours(_))
    ));

    let audited: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM audit_log WHERE action LIKE 'inbound.%'")
            .fetch_one(db.pool())
            .await
            .unwrap();
    assert_eq!(audited, 9);
}

#[tokio::test]
async fn flows_numbers_and_contacts_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::connect(&format!("sqlite://{}/inbound.db", dir.path().display()), 4)
        .await
        .unwrap();
    exercise(&db).await;
}

#[tokio::test]
async fn flows_numbers_and_contacts_on_postgres() {
    let Some(pg) = TempPgDatabase::create().await else {
        return;
    };
    let db = Db::connect(&pg.url, 4).await.unwrap();
    exercise(&db).await;
    db.close().await;
}

#[tokio::test]
async fn concurrent_saves_number_versions_in_turn_on_postgres() {
    let Some(pg) = TempPgDatabase::create().await else {
        return;
    };
    let db = Db::connect(&pg.url, 8).await.unwrap();
    db.migrate().await.unwrap();
    let saves = (0..6).map(|i| {
        let db = db.clone();
        tokio::spawn(async move {
            store::import_flow(&db, "busy", MENU, i, "user:ops")
                .await
                .unwrap()
        })
    });
    let mut versions = Vec::new();
    for s in saves {
        versions.push(s.await.unwrap());
    }
    versions.sort_unstable();
    assert_eq!(versions, [1, 2, 3, 4, 5, 6]);
    assert_eq!(
        store::load_flow(&db, "busy", None).await.unwrap().version,
        6
    );
    db.close().await;
}
