//! `GET /api/v1/system` (admins): the appliance's health at a glance for the console's system,
//! trunks and queues pages — version, uptime, database, draining, listening addresses, live
//! contacts, calls and agents, the campaigns' outbound trunks with their limits, and live
//! statistics of the queues known here: the configured queues the metrics sampler reports
//! (`dialbridge_queue_contacts{queue=…}` in `/metrics`), campaign queues, and any named with
//! `?queues=a,b`.
//!
//! The ACD's queue and routing-profile settings are not reachable from [`AppState`] (the runtime
//! keeps its `AcdConfig` private), so routing profiles are those of the agents the ACD knows now.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Query, State};
use foundation::accounts::Role;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::{AppState, Listening};

/// When the router was built (at start): the origin of `uptime_s`.
static STARTED: LazyLock<Instant> = LazyLock::new(Instant::now);

#[derive(Debug, Serialize, ToSchema)]
pub struct SystemOut {
    /// `ready`, `draining` or `unavailable` (as `/readyz`).
    pub status: &'static str,
    pub version: &'static str,
    pub uptime_s: u64,
    /// `sqlite` or `postgres`.
    pub backend: &'static str,
    /// `ok` or why the database does not answer.
    pub database: String,
    pub draining: bool,
    pub listening: Listening,
    /// Whether this node handles calls (the contact runtime runs).
    pub runtime: bool,
    /// This node's name (when it handles calls).
    pub node: Option<String>,
    /// The queues and routing profiles as configured (`inbound.acd`): each queue's limits,
    /// overflow, strategy, announcements and callback policy; each profile's queues with
    /// priority and delay.
    #[schema(value_type = Object)]
    pub acd: Option<serde_json::Value>,
    /// Contacts in a flow, queued or with an agent, now.
    pub live_contacts: Option<usize>,
    /// SIP calls up now (`dialbridge_calls_active`; `None` before the first call).
    pub calls_active: Option<f64>,
    /// Bridge DNIS leases held now (`dialbridge_bridge_leases_active`).
    pub bridge_leases_active: Option<f64>,
    /// Browser softphone legs up now (`dialbridge_webrtc_legs_active`).
    pub webrtc_legs_active: Option<f64>,
    /// Agents the ACD knows (logged in, or configured and offline) by state (`Available`,
    /// `OnContact`, `Offline`, ...).
    pub agents: BTreeMap<String, u64>,
    pub trunks: Vec<TrunkOut>,
    pub queues: Vec<QueueOut>,
    pub routing_profiles: Vec<ProfileOut>,
}

/// An outbound trunk and where it is used.
#[derive(Debug, Serialize, ToSchema)]
pub struct TrunkOut {
    pub uri: String,
    /// The campaigns dialling through it, with their limits on it.
    pub used_by: Vec<TrunkUse>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TrunkUse {
    pub campaign: String,
    /// `draft`, `running`, `paused` or `completed`.
    pub state: String,
    pub cps: u32,
    pub max_concurrent: u32,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct QueueOut {
    pub name: String,
    /// Campaigns sending answered calls here.
    pub campaigns: Vec<String>,
    /// Live statistics; `None` with `error` when the ACD does not know the queue.
    pub stats: Option<crate::agents::QueueStatsOut>,
    pub error: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProfileOut {
    pub name: String,
    /// Agents the ACD knows with this profile.
    pub agents: Vec<String>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct SystemQuery {
    /// More queues to report, comma-separated.
    pub queues: Option<String>,
}

/// System health, trunks, queues and the routing profiles of known agents (admins).
#[utoipa::path(get, path = "/api/v1/system", tag = "ops", security(("session" = []), ("api_key" = [])),
    params(SystemQuery),
    responses((status = 200, body = SystemOut), (status = 403, body = ErrorBody)))]
async fn system(
    State(st): State<AppState>,
    caller: Caller,
    Query(q): Query<SystemQuery>,
) -> Result<Json<SystemOut>, ApiError> {
    caller.require(&[Role::Admin])?;
    let database = match tokio::time::timeout(Duration::from_secs(2), st.db.ping()).await {
        Ok(Ok(())) => "ok".to_owned(),
        Ok(Err(e)) => format!("error: {e}"),
        Err(_) => "timeout".to_owned(),
    };
    let draining = st.lifecycle.is_draining();
    let status = match (database == "ok", draining) {
        (_, true) => "draining",
        (true, false) => "ready",
        (false, false) => "unavailable",
    };

    let campaigns = dialer::campaign::list(&st.db, None)
        .await
        .map_err(ApiError::internal)?;
    let mut trunks: BTreeMap<String, Vec<TrunkUse>> = BTreeMap::new();
    let mut queue_campaigns: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for c in &campaigns {
        trunks
            .entry(c.config.trunk.uri.clone())
            .or_default()
            .push(TrunkUse {
                campaign: c.name.clone(),
                state: c.state.as_str().to_owned(),
                cps: c.config.trunk.cps,
                max_concurrent: c.config.trunk.max_concurrent,
            });
        if !c.config.queue.is_empty() {
            queue_campaigns
                .entry(c.config.queue.clone())
                .or_default()
                .push(c.name.clone());
        }
    }
    let metrics = (st.render_metrics)();
    let mut names: BTreeSet<String> = queue_campaigns.keys().cloned().collect();
    names.extend(metric_labels(
        &metrics,
        "dialbridge_queue_contacts",
        "queue",
    ));
    names.extend(
        q.queues
            .iter()
            .flat_map(|s| s.split(','))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned),
    );

    let mut agents = BTreeMap::new();
    let mut profiles: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut queues = Vec::new();
    if let Some(rt) = &st.runtime {
        for a in rt.agent_snapshot(None).await? {
            // The variant's name (`Available`, `OnContact`, ...), without its data.
            let debug = format!("{:?}", a.state);
            let state = debug
                .split(['(', ' ', '{'])
                .next()
                .unwrap_or_default()
                .to_owned();
            *agents.entry(state).or_insert(0) += 1;
            profiles.entry(a.routing_profile).or_default().push(a.id);
        }
        for name in &names {
            let (stats, error) = match rt.queue_stats(name).await {
                Ok(s) => (Some(s.into()), None),
                Err(e) => (None, Some(e.to_string())),
            };
            queues.push(QueueOut {
                campaigns: queue_campaigns.get(name).cloned().unwrap_or_default(),
                name: name.clone(),
                stats,
                error,
            });
        }
    } else {
        for name in &names {
            queues.push(QueueOut {
                campaigns: queue_campaigns.get(name).cloned().unwrap_or_default(),
                name: name.clone(),
                stats: None,
                error: Some("the contact runtime is not running on this node".into()),
            });
        }
    }

    Ok(Json(SystemOut {
        status,
        version: env!("CARGO_PKG_VERSION"),
        uptime_s: STARTED.elapsed().as_secs(),
        backend: st.db.backend().name(),
        database,
        draining,
        listening: st.listening.as_ref().clone(),
        runtime: st.runtime.is_some(),
        node: st.runtime.as_ref().map(|r| r.node().to_owned()),
        acd: st.runtime.as_ref().map(|r| {
            let c = r.acd_config();
            serde_json::json!({"queues": c.queues, "profiles": c.profiles})
        }),
        live_contacts: st.runtime.as_ref().map(|r| r.live_contacts()),
        calls_active: metric_value(&metrics, "dialbridge_calls_active"),
        bridge_leases_active: metric_value(&metrics, "dialbridge_bridge_leases_active"),
        webrtc_legs_active: metric_value(&metrics, "dialbridge_webrtc_legs_active"),
        agents,
        trunks: trunks
            .into_iter()
            .map(|(uri, used_by)| TrunkOut { uri, used_by })
            .collect(),
        queues,
        routing_profiles: profiles
            .into_iter()
            .map(|(name, agents)| ProfileOut { name, agents })
            .collect(),
    }))
}

/// The value of an unlabelled sample `name` in the Prometheus text exposition.
fn metric_value(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(name)?.strip_prefix(' ')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// The values of label `label` on the samples of `name` (`name{label="v",…} 1`).
fn metric_labels(text: &str, name: &str, label: &str) -> Vec<String> {
    let key = format!("{label}=\"");
    text.lines()
        .filter_map(|l| l.strip_prefix(name)?.strip_prefix('{'))
        .filter_map(|labels| {
            let start = labels.find(&key)? + key.len();
            let mut out = String::new();
            let mut chars = labels[start..].chars();
            while let Some(c) = chars.next() {
                match c {
                    '"' => return Some(out),
                    '\\' => match chars.next()? {
                        'n' => out.push('\n'),
                        other => out.push(other),
                    },
                    c => out.push(c),
                }
            }
            None
        })
        .collect()
}

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    LazyLock::force(&STARTED);
    OpenApiRouter::new().routes(routes!(system))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_samples_and_labels_from_the_exposition() {
        let text = "# TYPE dialbridge_calls_active gauge\n\
                    dialbridge_calls_active 3\n\
                    dialbridge_calls_active_x 9\n\
                    dialbridge_queue_contacts{queue=\"default\"} 0\n\
                    dialbridge_queue_contacts{node=\"a\",queue=\"sa\\\"les\"} 2\n\
                    dialbridge_queue_contacts_total{queue=\"no\"} 1\n";
        assert_eq!(metric_value(text, "dialbridge_calls_active"), Some(3.0));
        assert_eq!(metric_value(text, "dialbridge_webrtc_legs_active"), None);
        assert_eq!(
            metric_labels(text, "dialbridge_queue_contacts", "queue"),
            ["default", "sa\"les"]
        );
    }
}
