//! Shared test helpers: databases on both backends, seeded lists and leads, a campaign config.
#![allow(dead_code)]

use dialer::campaign::{
    AmdPolicy, CampaignConfig, DialMode, ListWeight, Purpose, SafeHarbor, TrunkConfig,
};
use foundation::Db;

/// A migrated SQLite database in `dir`.
pub async fn sqlite(dir: &std::path::Path) -> Db {
    let db = Db::connect(&format!("sqlite://{}/t.db", dir.display()), 4)
        .await
        .unwrap();
    db.migrate().await.unwrap();
    db
}

/// Creates a list with `n` leads (numbers +1212555XXXX from `first`, below 10000), each with the given time
/// zones JSON; returns the list id.
pub async fn seed_list(db: &Db, name: &str, n: usize, first: u32, zones: &[&str], now: i64) -> i64 {
    let list_id: i64 = sqlx::query_scalar(
        "INSERT INTO lead_lists (name, created_at, updated_at) VALUES ($1, $2, $2) RETURNING id",
    )
    .bind(name)
    .bind(now)
    .fetch_one(db.pool())
    .await
    .unwrap();
    let tz = serde_json::to_string(
        &zones
            .iter()
            .map(|z| serde_json::json!({"tz": z, "sources": ["area_code"]}))
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let mut tx = db.begin_write().await.unwrap();
    for i in 0..n {
        let e164 = format!("+1212555{:04}", first as usize + i);
        let lead: i64 = sqlx::query_scalar(
            "INSERT INTO leads (list_id, dedupe_key, priority, state, country, attributes, consent_type, created_at, updated_at) \
             VALUES ($1, $2, $3, 'new', 'US', $4, $5, $6, $6) RETURNING id",
        )
        .bind(list_id)
        .bind(format!("tel:{e164}"))
        .bind((i % 3) as i64)
        .bind(serde_json::json!({"segment": if i % 2 == 0 { "gold" } else { "silver" }}).to_string())
        .bind(if i % 2 == 0 { Some("pewc") } else { None })
        .bind(now)
        .fetch_one(tx.conn())
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO lead_phones (lead_id, position, e164, raw, source_column, number_type, region, tz_candidates) \
             VALUES ($1, 0, $2, $2, 'phone', 'fixed_line', 'US', $3)",
        )
        .bind(lead)
        .bind(&e164)
        .bind(&tz)
        .execute(tx.conn())
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
    list_id
}

pub fn config(lists: &[(i64, u32)], mode: DialMode, trunk_uri: &str) -> CampaignConfig {
    CampaignConfig {
        lists: lists
            .iter()
            .map(|(id, w)| ListWeight {
                list_id: *id,
                weight: *w,
            })
            .collect(),
        mode,
        purpose: Purpose::Telemarketing,
        lines_per_agent: 1.0,
        caller_id: "15550001000".into(),
        queue: "sales".into(),
        trunk: TrunkConfig {
            uri: trunk_uri.into(),
            cps: 5,
            max_concurrent: 20,
        },
        retry: Default::default(),
        compliance: Default::default(),
        amd: AmdPolicy::HangUp,
        voicemail_prompt: None,
        agentless_prompt: None,
        agentless_flow: None,
        safe_harbor: SafeHarbor {
            seller: "Acme".into(),
            callback_number: "+15550001000".into(),
            opt_out_key: '9',
            prompt: "sh.wav".into(),
        },
        filters: vec![],
        dispositions: Default::default(),
        preview_auto_dial_s: None,
    }
}
