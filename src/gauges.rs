//! Wiring: Prometheus gauges sampled from the domain crates every few seconds — agents by state,
//! queue depth and service figures (service level, ASA, AHT, occupancy of its logged-in agents), and each running campaign's abandonment rate against its cap.
//! (Counters are incremented where things happen; this module only samples levels.)

use std::collections::BTreeMap;
use std::time::Duration;

use foundation::Db;
use inbound::acd::AgentState;
use inbound::runtime::Runtime;
use sqlx::Row;

const EVERY: Duration = Duration::from_secs(5);
const STATES: [&str; 7] = [
    "offline",
    "available",
    "offered",
    "on_contact",
    "after_contact_work",
    "not_routable",
    "missed",
];

fn state_label(s: &AgentState) -> &'static str {
    match s {
        AgentState::Offline => "offline",
        AgentState::Available => "available",
        AgentState::Offered(_) => "offered",
        AgentState::OnContact(_) => "on_contact",
        AgentState::AfterContactWork { .. } => "after_contact_work",
        AgentState::NotRoutable(_) => "not_routable",
        AgentState::Missed => "missed",
    }
}

/// Samples until the process ends.
pub async fn run(db: Db, runtime: Runtime) {
    loop {
        if let Ok(agents) = runtime.agent_snapshot(None).await {
            let mut by_state: BTreeMap<&str, f64> = STATES.iter().map(|s| (*s, 0.0)).collect();
            for a in &agents {
                *by_state.entry(state_label(&a.state)).or_default() += 1.0;
            }
            for (state, n) in by_state {
                metrics::gauge!("dialbridge_agents", "state" => state).set(n);
            }
        }
        // The queues in force (a SIGHUP may have added some since the start).
        let queues: Vec<String> = runtime
            .acd_config()
            .queues
            .iter()
            .map(|q| q.name.clone())
            .collect();
        for q in &queues {
            if let Ok(s) = runtime.queue_stats(q).await {
                metrics::gauge!("dialbridge_queue_contacts", "queue" => q.clone())
                    .set(s.waiting as f64);
                metrics::gauge!("dialbridge_queue_oldest_wait_seconds", "queue" => q.clone())
                    .set(s.oldest_wait_ms as f64 / 1000.0);
                metrics::gauge!("dialbridge_queue_service_level", "queue" => q.clone())
                    .set(s.service_level);
                metrics::gauge!("dialbridge_queue_agents_available", "queue" => q.clone())
                    .set(s.agents_available as f64);
                metrics::gauge!("dialbridge_queue_asa_seconds", "queue" => q.clone())
                    .set(s.asa_ms as f64 / 1000.0);
                metrics::gauge!("dialbridge_queue_aht_seconds", "queue" => q.clone())
                    .set(s.aht_ms as f64 / 1000.0);
                metrics::gauge!("dialbridge_queue_occupancy", "queue" => q.clone())
                    .set(s.occupancy.ratio());
            }
        }
        if let Err(e) = campaigns(&db).await {
            tracing::debug!(error = %e, "campaign gauges not sampled");
        }
        tokio::time::sleep(EVERY).await;
    }
}

async fn campaigns(db: &Db) -> anyhow::Result<()> {
    let rows = sqlx::query(
        "SELECT c.name AS name, COALESCE(SUM(a.live), 0) AS live, COALESCE(SUM(a.abandoned), 0) AS abandoned, \
                COALESCE(SUM(CASE WHEN a.state <> 'final' THEN 1 ELSE 0 END), 0) AS in_progress \
         FROM campaigns c LEFT JOIN dial_attempts a ON a.campaign_id = c.id \
         WHERE c.state = 'running' GROUP BY c.name",
    )
    .fetch_all(db.pool())
    .await?;
    for r in rows {
        let name: String = r.get("name");
        let (live, abandoned, in_progress): (i64, i64, i64) =
            (r.get("live"), r.get("abandoned"), r.get("in_progress"));
        let rate = if live > 0 {
            abandoned as f64 / live as f64
        } else {
            0.0
        };
        metrics::gauge!("dialbridge_campaign_abandon_rate", "campaign" => name.clone()).set(rate);
        metrics::gauge!("dialbridge_campaign_calls_in_progress", "campaign" => name)
            .set(in_progress as f64);
    }
    Ok(())
}
