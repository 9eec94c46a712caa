//! The bridge on the call path: calls arriving from the legacy platform pick up their data.
//!
//! A call to a number of a `from_legacy` pool is looked up (consuming the lease) as it arrives; the
//! data is attached to the call as an arrival record that the contact, the agent's screen pop and
//! the API read. An unknown or expired lease routes the call on without data, and is audited like
//! every lookup. [`on_arrival`] is the decision and its record (no I/O beyond the database); the
//! inbound contact runtime calls it for every arriving call before routing.

use foundation::{Clock, Db};
use serde::Serialize;
use serde_json::Value;
use telephony::sip::driver::SipHandle;

use crate::error::{BridgeError, Result};
use crate::lease;
use crate::pool::{self, Direction};

#[derive(Debug, Clone, Serialize)]
pub struct Arrival {
    pub call_ref: String,
    pub dnis: String,
    pub ani: Option<String>,
    pub pool: String,
    /// `consumed` (data attached), `unknown` or `expired` (routed without data).
    pub result: String,
    pub lease_id: Option<String>,
    pub data: Option<Value>,
    pub arrived_at_ms: i64,
}

/// The user part of a SIP URI or name-addr: `"Bob" <sip:+1312@host;x=y>` → `+1312`.
pub fn uri_user(uri: &str) -> Option<String> {
    let s = uri.split_once('<').map(|(_, r)| r).unwrap_or(uri);
    let s = s.split_once(':').map(|(_, r)| r)?;
    let user = s.split(['@', '>', ';']).next()?;
    (!user.is_empty()).then(|| user.to_owned())
}

/// Handles a call arriving on `dialed` from `caller`. `None` when `dialed` is not a `from_legacy`
/// pool number (the call is none of the bridge's business).
pub async fn on_arrival(
    db: &Db,
    clock: &dyn Clock,
    call_ref: &str,
    dialed: &str,
    caller: Option<&str>,
) -> Result<Option<Arrival>> {
    let Some((pool_name, direction)) = pool::owner_of(db, dialed).await? else {
        return Ok(None);
    };
    if direction != Direction::FromLegacy {
        return Ok(None);
    }
    // A caller id without digits (anonymous, a name) is no ANI to check against.
    let ani = caller.filter(|c| c.chars().any(|ch| ch.is_ascii_digit()));
    let (result, found) = match lease::lookup(db, clock, "sip", None, dialed, ani, true).await {
        Ok(f) => ("consumed", Some(f)),
        Err(BridgeError::Unknown) => ("unknown", None),
        Err(BridgeError::Expired) => ("expired", None),
        Err(e) => return Err(e),
    };
    let arrival = Arrival {
        call_ref: call_ref.to_owned(),
        dnis: dialed.to_owned(),
        ani: ani.map(str::to_owned),
        pool: pool_name,
        result: result.to_owned(),
        lease_id: found.as_ref().map(|f| f.lease_id.clone()),
        data: found.map(|f| f.data),
        arrived_at_ms: clock.now_ms(),
    };
    sqlx::query(
        "INSERT INTO bridge_arrivals (call_ref, dnis, ani, pool_name, result, lease_id, data, arrived_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&arrival.call_ref)
    .bind(&arrival.dnis)
    .bind(&arrival.ani)
    .bind(&arrival.pool)
    .bind(&arrival.result)
    .bind(&arrival.lease_id)
    .bind(arrival.data.as_ref().map(|d| d.to_string()))
    .bind(arrival.arrived_at_ms)
    .execute(db.pool())
    .await?;
    metrics::counter!("dialbridge_bridge_arrivals_total", "pool" => arrival.pool.clone(), "result" => result).increment(1);
    Ok(Some(arrival))
}

type ArrivalRow = (
    String,
    String,
    Option<String>,
    String,
    String,
    Option<String>,
    Option<String>,
    i64,
);

/// The newest arrivals first, optionally for one number.
pub async fn recent(db: &Db, dnis: Option<&str>, limit: i64) -> Result<Vec<Arrival>> {
    let rows: Vec<ArrivalRow> = sqlx::query_as(
        "SELECT call_ref, dnis, ani, pool_name, result, lease_id, data, arrived_at FROM bridge_arrivals \
         WHERE ($1 IS NULL OR dnis = $1) ORDER BY id DESC LIMIT $2",
    )
    .bind(dnis)
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(call_ref, dnis, ani, pool, result, lease_id, data, at)| Arrival {
                call_ref,
                dnis,
                ani,
                pool,
                result,
                lease_id,
                data: data.and_then(|d| serde_json::from_str(&d).ok()),
                arrived_at_ms: at,
            },
        )
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_rides_in_uui_or_x_headers() {
        let small = serde_json::json!({"acct": "A-42"});
        let h = carriage_headers(&HeaderCarriage::Uui, "lease_x", &small);
        assert_eq!(
            h,
            vec![(
                "User-to-User".to_owned(),
                "7b2261636374223a22412d3432227d;encoding=hex".to_owned()
            )]
        );
        let big = serde_json::json!({"notes": "n".repeat(200)});
        let h = carriage_headers(&HeaderCarriage::Uui, "lease_x", &big);
        assert_eq!(
            h[0].1, "6c656173655f78;encoding=hex",
            "too large for UUI: the lease id rides instead"
        );
        let x = carriage_headers(
            &HeaderCarriage::XHeaders {
                prefix: "X-Db-".into(),
            },
            "lease_x",
            &serde_json::json!({"name": "Ada\r\nEvil: 1", "tier": 2, "bad key!": "v"}),
        );
        assert_eq!(x[0], ("X-Db-Lease".to_owned(), "lease_x".to_owned()));
        assert!(
            x.contains(&("X-Db-name".to_owned(), "AdaEvil: 1".to_owned())),
            "{x:?}"
        );
        assert!(x.contains(&("X-Db-tier".to_owned(), "2".to_owned())));
        assert!(x.contains(&("X-Db-badkey".to_owned(), "v".to_owned())));
        assert!(carriage_headers(&HeaderCarriage::None, "l", &small).is_empty());
    }

    #[test]
    fn uri_users() {
        assert_eq!(
            uri_user("sip:+13125550001@127.0.0.1:5060").as_deref(),
            Some("+13125550001")
        );
        assert_eq!(
            uri_user("\"Bob\" <sip:bob@example.com>;tag=1").as_deref(),
            Some("bob")
        );
        assert_eq!(
            uri_user("<sip:2125550100@h;user=phone>").as_deref(),
            Some("2125550100")
        );
        assert_eq!(uri_user("sip:host.only"), Some("host.only".to_owned()));
        assert_eq!(uri_user("garbage"), None);
    }
}

/// How the legacy platform takes calls from us.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LegacyTransferMode {
    /// A new INVITE to the legacy trunk, dialling the leased number (the B2BUA keeps both legs).
    Invite,
    /// REFER the caller to `sip:<dnis>@<legacy host>` (the caller's side places the new call).
    Refer,
}

/// The legacy platform's trunk as the bridge uses it.
#[derive(Debug, Clone)]
pub struct LegacyTrunk {
    pub trunk: telephony::sip::call::Trunk,
    pub mode: LegacyTransferMode,
    pub ring_timeout: std::time::Duration,
    /// Where the trunk carries them, the data also ride in SIP headers of the new INVITE; the
    /// DNIS lease is the fallback that always works.
    pub carry: HeaderCarriage,
}

/// How call data ride in SIP headers, for trunks that pass them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum HeaderCarriage {
    /// Only the DNIS lease carries the data.
    None,
    /// RFC 7433 `User-to-User`, hex-encoded: the data as compact JSON when it fits the ISDN UUI
    /// size most networks pass (128 octets), else the lease id for the lookup.
    Uui,
    /// One header per top-level field (`{prefix}{Field}: value`, values up to 256 characters,
    /// line breaks removed), plus `{prefix}Lease: <lease id>`.
    XHeaders { prefix: String },
}

/// The largest UUI payload sent (ISDN user-to-user information, RFC 7434).
pub const UUI_MAX_OCTETS: usize = 128;

/// The headers that carry `data` (and the lease id) for a trunk that passes them.
pub fn carriage_headers(
    carry: &HeaderCarriage,
    lease_id: &str,
    data: &Value,
) -> Vec<(String, String)> {
    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
    match carry {
        HeaderCarriage::None => Vec::new(),
        HeaderCarriage::Uui => {
            let json = data.to_string();
            let payload = if json.len() <= UUI_MAX_OCTETS {
                json
            } else {
                lease_id.to_owned()
            };
            vec![(
                "User-to-User".into(),
                format!("{};encoding=hex", hex(payload.as_bytes())),
            )]
        }
        HeaderCarriage::XHeaders { prefix } => {
            let mut out = vec![(format!("{prefix}Lease"), lease_id.to_owned())];
            if let Some(obj) = data.as_object() {
                for (k, v) in obj {
                    let name: String = k
                        .chars()
                        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
                        .collect();
                    if name.is_empty() {
                        continue;
                    }
                    let text = match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    let text: String = text
                        .chars()
                        .filter(|c| *c != '\r' && *c != '\n')
                        .take(256)
                        .collect();
                    out.push((format!("{prefix}{name}"), text));
                }
            }
            out
        }
    }
}

/// A transfer under way: the lease that carries the data, and the new leg (INVITE mode).
#[derive(Debug, Clone)]
pub struct LegacyTransfer {
    pub lease: lease::Lease,
    pub leg: Option<telephony::sip::call::CallId>,
}

/// Transfers `call` to the legacy platform with `data`: leases a `to_legacy` number, stores the
/// data against it, and sends the call to that number (new INVITE or REFER). The legacy side looks
/// the data up by the number it was called on. If the transfer then fails (the leg's `Hangup`
/// before `Answered`, or a REFER rejected), call [`abandon_transfer`] so the number is free again
/// and the flow can take its error branch.
#[allow(clippy::too_many_arguments)]
pub async fn transfer_to_legacy(
    db: &Db,
    clock: &dyn Clock,
    sip: &SipHandle,
    call: telephony::sip::call::CallId,
    caller_ani: Option<&str>,
    pool: &str,
    data: Value,
    legacy: &LegacyTrunk,
) -> Result<LegacyTransfer> {
    let req = lease::LeaseRequest {
        pool: pool.to_owned(),
        data,
        ani: caller_ani
            .filter(|a| a.chars().any(|c| c.is_ascii_digit()))
            .map(str::to_owned),
        ttl_s: None,
        idempotency_key: Some(format!("call-{}", call.0)),
    };
    let lease = lease::lease(db, clock, "sip", None, &req).await?;
    let headers = carriage_headers(&legacy.carry, &lease.lease_id, &req.data);
    let leg = match legacy.mode {
        LegacyTransferMode::Invite => Some(sip.originate(telephony::sip::call::Originate {
            to_user: lease.dnis.clone(),
            from_user: caller_ani.unwrap_or("dialbridge").to_owned(),
            trunks: vec![legacy.trunk.clone()],
            ring_timeout: legacy.ring_timeout,
            headers,
            ..Default::default()
        })),
        LegacyTransferMode::Refer => {
            sip.command(telephony::sip::call::Command::Transfer(
                call,
                format!("sip:{}@{}", lease.dnis, legacy.trunk.addr),
            ));
            None
        }
    };
    metrics::counter!("dialbridge_bridge_transfers_total", "pool" => pool.to_owned(), "mode" => match legacy.mode {
        LegacyTransferMode::Invite => "invite",
        LegacyTransferMode::Refer => "refer",
    })
    .increment(1);
    Ok(LegacyTransfer { lease, leg })
}

/// Frees the number of a transfer that did not reach the legacy platform.
pub async fn abandon_transfer(db: &Db, clock: &dyn Clock, t: &LegacyTransfer) -> Result<()> {
    lease::release(db, clock, "sip", None, &t.lease.lease_id).await
}
