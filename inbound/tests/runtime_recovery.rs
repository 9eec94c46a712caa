//! Contacts left open by a crash (no `ended_at`) are closed as interrupted at the next start,
//! with their path and stages kept, on SQLite and PostgreSQL; closed contacts, and another node's
//! live ones, are untouched.

use foundation::Db;
use foundation::testing::TempPgDatabase;
use inbound::contact::{ContactInfo, ContactRecord, FlowOutcome};
use inbound::runtime::contact::close_interrupted;
use inbound::store;

async fn exercise(db: &Db) {
    db.migrate().await.unwrap();
    let mut open = ContactRecord::new(
        ContactInfo {
            contact_id: "c-open".into(),
            system_address: "+1555".into(),
            ..Default::default()
        },
        1_000,
    );
    open.note(1_100, "queued", "sales");
    store::save_contact(db, &open, None).await.unwrap();
    let mut done = ContactRecord::new(
        ContactInfo {
            contact_id: "c-done".into(),
            ..Default::default()
        },
        1_000,
    );
    done.ended_at_ms = Some(2_000);
    done.outcome = Some(FlowOutcome::Disconnected);
    store::save_contact(db, &done, None).await.unwrap();
    // Another node's live contact (several nodes share PostgreSQL) is not this node's to close.
    let theirs = ContactRecord::new(
        ContactInfo {
            contact_id: "c-theirs".into(),
            ..Default::default()
        },
        1_000,
    );
    store::save_contact_on(db, Some("node-b"), &theirs, None)
        .await
        .unwrap();
    // A record that cannot be read is still closed.
    let mut tx = db.begin_write().await.unwrap();
    sqlx::query("INSERT INTO inbound_contacts (contact_id, started_at, record) VALUES ('c-bad', 1000, 'not json')").execute(tx.conn()).await.unwrap();
    tx.commit().await.unwrap();

    assert_eq!(close_interrupted(db, 5_000, "dialbridge").await.unwrap(), 2);
    let r = store::load_contact(db, "c-open").await.unwrap();
    assert_eq!(r.ended_at_ms, Some(5_000));
    assert_eq!(r.outcome, Some(FlowOutcome::Interrupted));
    assert_eq!(
        r.stages
            .iter()
            .map(|s| s.stage.as_str())
            .collect::<Vec<_>>(),
        ["queued", "interrupted"]
    );
    let r = store::load_contact(db, "c-done").await.unwrap();
    assert_eq!(r.ended_at_ms, Some(2_000));
    assert_eq!(r.outcome, Some(FlowOutcome::Disconnected));
    let rows: Vec<(String, Option<i64>, Option<String>)> = sqlx::query_as(
        "SELECT contact_id, ended_at, outcome FROM inbound_contacts ORDER BY contact_id",
    )
    .fetch_all(db.pool())
    .await
    .unwrap();
    assert_eq!(
        rows[0],
        ("c-bad".into(), Some(5_000), Some("interrupted".into()))
    );
    assert_eq!(
        close_interrupted(db, 6_000, "dialbridge").await.unwrap(),
        0,
        "nothing of this node is left open"
    );
    assert_eq!(
        store::load_contact(db, "c-theirs")
            .await
            .unwrap()
            .ended_at_ms,
        None,
        "node-b's contact is still live"
    );
    assert_eq!(
        close_interrupted(db, 7_000, "node-b").await.unwrap(),
        1,
        "node-b's own restart closes it"
    );
}

#[tokio::test]
async fn open_contacts_are_closed_as_interrupted_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::connect(&format!("sqlite://{}/r.db", dir.path().display()), 4)
        .await
        .unwrap();
    exercise(&db).await;
}

#[tokio::test]
async fn open_contacts_are_closed_as_interrupted_on_postgres() {
    let Some(pg) = TempPgDatabase::create().await else {
        return;
    };
    let db = Db::connect(&pg.url, 4).await.unwrap();
    exercise(&db).await;
}
