//! The migration router: sends each inbound call to local flows or straight to the legacy
//! platform, per number, line of business or site, with a percentage split for gradual cutover.
//!
//! The table is edited at runtime (API and console) and read on every call, so a change applies
//! to the next call without a restart. The split is decided by hashing a stable key — the caller's
//! number when known, else the call id — so a repeat caller keeps landing on the same side while
//! the percentage stays put.

use foundation::{Db, audit};
use serde::{Deserialize, Serialize};

use crate::error::{BridgeError, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchKind {
    Number,
    LineOfBusiness,
    Site,
}

impl MatchKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MatchKind::Number => "number",
            MatchKind::LineOfBusiness => "line_of_business",
            MatchKind::Site => "site",
        }
    }
    fn parse(s: &str) -> Result<Self> {
        match s {
            "number" => Ok(Self::Number),
            "line_of_business" => Ok(Self::LineOfBusiness),
            "site" => Ok(Self::Site),
            _ => Err(BridgeError::Internal(anyhow::anyhow!(
                "bad match_kind {s:?} in database"
            ))),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    pub match_kind: MatchKind,
    pub match_value: String,
    /// 0: all local; 100: all legacy; between: a split.
    pub legacy_percent: u8,
    /// The local flow to run (required unless everything goes to legacy).
    pub local_flow: Option<String>,
    /// What to dial on the legacy trunk (required unless everything stays local).
    pub legacy_target: Option<String>,
}

/// What the router decided for one call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "to", rename_all = "snake_case")]
pub enum Decision {
    /// No route matched: the number's own flow mapping applies.
    Default,
    Local {
        flow: String,
    },
    Legacy {
        target: String,
    },
}

/// What is known about a call when it is routed.
#[derive(Debug, Clone, Default)]
pub struct CallFacts<'a> {
    pub dialed: &'a str,
    pub line_of_business: Option<&'a str>,
    pub site: Option<&'a str>,
    pub caller: Option<&'a str>,
    pub call_id: &'a str,
}

fn validate(r: &Route) -> Result<()> {
    if r.match_value.trim().is_empty() {
        return Err(BridgeError::Invalid("match_value must not be empty".into()));
    }
    if r.legacy_percent > 100 {
        return Err(BridgeError::Invalid(
            "legacy_percent must be between 0 and 100".into(),
        ));
    }
    if r.legacy_percent < 100 && r.local_flow.as_deref().is_none_or(str::is_empty) {
        return Err(BridgeError::Invalid(
            "local_flow is required unless legacy_percent is 100".into(),
        ));
    }
    if r.legacy_percent > 0 && r.legacy_target.as_deref().is_none_or(str::is_empty) {
        return Err(BridgeError::Invalid(
            "legacy_target is required unless legacy_percent is 0".into(),
        ));
    }
    Ok(())
}

/// Creates or replaces the route for (kind, value).
pub async fn put(db: &Db, now_ms: i64, actor: &str, r: &Route) -> Result<()> {
    validate(r)?;
    let mut tx = db.begin_write().await?;
    sqlx::query(
        "INSERT INTO migration_routes (match_kind, match_value, legacy_percent, local_flow, legacy_target, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (match_kind, match_value) DO UPDATE SET \
         legacy_percent = $3, local_flow = $4, legacy_target = $5, updated_at = $6",
    )
    .bind(r.match_kind.as_str())
    .bind(&r.match_value)
    .bind(r.legacy_percent as i16)
    .bind(&r.local_flow)
    .bind(&r.legacy_target)
    .bind(now_ms)
    .execute(tx.conn())
    .await?;
    audit::record(
        tx.conn(),
        now_ms,
        &audit::Entry {
            actor,
            action: "bridge.route.put",
            subject: Some(&format!("{}:{}", r.match_kind.as_str(), r.match_value)),
            result: "ok",
            detail: Some(serde_json::to_value(r).map_err(anyhow::Error::from)?),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

pub async fn delete(
    db: &Db,
    now_ms: i64,
    actor: &str,
    kind: MatchKind,
    value: &str,
) -> Result<bool> {
    let mut tx = db.begin_write().await?;
    let n = sqlx::query("DELETE FROM migration_routes WHERE match_kind = $1 AND match_value = $2")
        .bind(kind.as_str())
        .bind(value)
        .execute(tx.conn())
        .await?
        .rows_affected();
    audit::record(
        tx.conn(),
        now_ms,
        &audit::Entry {
            actor,
            action: "bridge.route.delete",
            subject: Some(&format!("{}:{value}", kind.as_str())),
            result: if n > 0 { "ok" } else { "not_found" },
            detail: None,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(n > 0)
}

type RouteRow = (String, String, i16, Option<String>, Option<String>);

fn from_row((kind, value, pct, flow, target): RouteRow) -> Result<Route> {
    Ok(Route {
        match_kind: MatchKind::parse(&kind)?,
        match_value: value,
        legacy_percent: pct.clamp(0, 100) as u8,
        local_flow: flow,
        legacy_target: target,
    })
}

pub async fn list(db: &Db) -> Result<Vec<Route>> {
    let rows: Vec<RouteRow> = sqlx::query_as(
        "SELECT match_kind, match_value, legacy_percent, local_flow, legacy_target FROM migration_routes \
         ORDER BY match_kind, match_value",
    )
    .fetch_all(db.pool())
    .await?;
    rows.into_iter().map(from_row).collect()
}

/// Routes one call: the number's route wins over its line of business, which wins over its site.
pub async fn route(db: &Db, call: &CallFacts<'_>) -> Result<Decision> {
    let rows: Vec<RouteRow> = sqlx::query_as(
        "SELECT match_kind, match_value, legacy_percent, local_flow, legacy_target FROM migration_routes \
         WHERE (match_kind = 'number' AND match_value = $1) \
            OR (match_kind = 'line_of_business' AND match_value = $2) \
            OR (match_kind = 'site' AND match_value = $3)",
    )
    .bind(call.dialed)
    .bind(call.line_of_business.unwrap_or(""))
    .bind(call.site.unwrap_or(""))
    .fetch_all(db.pool())
    .await?;
    let routes: Vec<Route> = rows.into_iter().map(from_row).collect::<Result<_>>()?;
    Ok(decide(&routes, call))
}

/// The pure decision over the matching routes (exposed for tests and the simulator).
pub fn decide(routes: &[Route], call: &CallFacts<'_>) -> Decision {
    let best = [
        MatchKind::Number,
        MatchKind::LineOfBusiness,
        MatchKind::Site,
    ]
    .into_iter()
    .find_map(|k| routes.iter().find(|r| r.match_kind == k));
    let Some(r) = best else {
        return Decision::Default;
    };
    let key = call
        .caller
        .filter(|c| !c.is_empty())
        .unwrap_or(call.call_id);
    if split_bucket(key) < r.legacy_percent as u64 {
        Decision::Legacy {
            target: r.legacy_target.clone().unwrap_or_default(),
        }
    } else {
        Decision::Local {
            flow: r.local_flow.clone().unwrap_or_default(),
        }
    }
}

/// A stable bucket in 0..100 for a key (FNV-1a; the same on every node and every release).
fn split_bucket(key: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h % 100
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(kind: MatchKind, value: &str, pct: u8) -> Route {
        Route {
            match_kind: kind,
            match_value: value.into(),
            legacy_percent: pct,
            local_flow: Some(format!("flow-{value}")),
            legacy_target: Some(format!("legacy-{value}")),
        }
    }

    #[test]
    fn the_most_specific_route_wins() {
        let routes = [
            route(MatchKind::Site, "chicago", 100),
            route(MatchKind::Number, "+13125550100", 0),
        ];
        let call = CallFacts {
            dialed: "+13125550100",
            site: Some("chicago"),
            call_id: "c1",
            ..Default::default()
        };
        assert_eq!(
            decide(&routes, &call),
            Decision::Local {
                flow: "flow-+13125550100".into()
            }
        );
        assert_eq!(
            decide(&routes[..1], &call),
            Decision::Legacy {
                target: "legacy-chicago".into()
            }
        );
        assert_eq!(decide(&[], &call), Decision::Default);
    }

    #[test]
    fn a_split_follows_its_percentage_and_is_sticky_per_caller() {
        let routes = [route(MatchKind::Number, "+1", 30)];
        let legacy = (0..10_000)
            .filter(|i| {
                let caller = format!("+1312555{i:04}");
                let call = CallFacts {
                    dialed: "+1",
                    caller: Some(&caller),
                    call_id: "x",
                    ..Default::default()
                };
                matches!(decide(&routes, &call), Decision::Legacy { .. })
            })
            .count();
        assert!(
            (2_700..=3_300).contains(&legacy),
            "{legacy} of 10000 went to legacy at 30%"
        );
        let call = |id: &'static str| CallFacts {
            dialed: "+1",
            caller: Some("+13125550100"),
            call_id: id,
            ..Default::default()
        };
        assert_eq!(
            decide(&routes, &call("a")),
            decide(&routes, &call("b")),
            "same caller, same side"
        );
    }

    #[test]
    fn routes_need_the_targets_they_use() {
        let mut r = route(MatchKind::Number, "+1", 50);
        r.legacy_target = None;
        assert!(validate(&r).is_err());
        r.legacy_percent = 0;
        assert!(validate(&r).is_ok());
        r.local_flow = None;
        assert!(validate(&r).is_err());
    }
}
