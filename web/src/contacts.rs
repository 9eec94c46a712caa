//! Contact search and export over the inbound contact records (`inbound_contacts`, one final
//! record per contact): `GET /api/v1/contacts?number=&from=&to=&queue=&agent=&outcome=`.
//!
//! `number` matches the dialled number or the caller's; `agent` the agent the contact connected
//! to; `from`/`to` bound the start time (RFC 3339, a date `YYYY-MM-DD` meaning midnight UTC, or
//! epoch ms; `from` inclusive, `to` exclusive). Newest first. The answer is JSON, or CSV when the
//! request asks `Accept: text/csv` or `?format=csv` (the integration export, up to 100,000 rows),
//! or JSON lines (`format=jsonl` or `Accept: application/x-ndjson`: one [`ContactOut`] object per
//! line, the stable export schema, up to 10,000 rows per page). Large exports page with a cursor:
//! when a page is full the answer carries `X-Next-Cursor`, and `cursor=<it>` with the same filters
//! continues after the last row (keyset paging on start time and row id: stable while new contacts
//! arrive, and each page is read on its own, so memory stays bounded).
//! Caller number and agent live inside the stored record (JSON text), so they are matched with an
//! escaped `LIKE` on its exact serialized form, which works the same on SQLite and PostgreSQL.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDate};
use foundation::accounts::Role;
use foundation::clock::rfc3339_ms;
use inbound::contact::ContactRecord;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiQuery;

/// Who may search contacts and export them.
pub const ROLES: &[Role] = &[Role::Admin, Role::Supervisor];
const OUTCOMES: &[&str] = &[
    "disconnected",
    "queued",
    "transferred_to_number",
    "transferred_to_legacy",
    "caller_hung_up",
    "error",
];

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ContactQuery {
    /// The dialled number or the caller's number (exact, e.g. `+13125550100`).
    pub number: Option<String>,
    /// Started at or after (RFC 3339, `YYYY-MM-DD` or epoch ms).
    pub from: Option<String>,
    /// Started before (RFC 3339, `YYYY-MM-DD` or epoch ms).
    pub to: Option<String>,
    pub queue: Option<String>,
    /// The agent's user name the contact was connected to.
    pub agent: Option<String>,
    /// disconnected, queued, transferred_to_number, transferred_to_legacy, caller_hung_up, error.
    pub outcome: Option<String>,
    /// A campaign's id: its calls handed to agents carry the contact attribute `campaign_id`
    /// (a contact attribute `campaign` of that value, set by a flow, matches too).
    pub campaign: Option<String>,
    /// `json` (default), `csv` or `jsonl` (JSON lines).
    pub format: Option<String>,
    /// At most this many (JSON: default 100, at most 1000; CSV: default and at most 100000).
    pub limit: Option<i64>,
    /// Skip this many (paging).
    pub offset: Option<i64>,
    /// Continue after this position: the `X-Next-Cursor` header of the previous page.
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ContactOut {
    pub contact_id: String,
    /// The number dialled (DID).
    pub did: Option<String>,
    /// The caller's number.
    pub customer_number: String,
    pub started_at: String,
    pub ended_at: Option<String>,
    pub outcome: Option<String>,
    pub queue: Option<String>,
    /// The agent the contact was connected to, if any.
    pub agent: Option<String>,
    pub flow: Option<String>,
    pub flow_version: Option<i64>,
    /// Contact attributes at the end of the flow.
    #[schema(value_type = Object)]
    pub attributes: std::collections::BTreeMap<String, String>,
}

/// Parses a time bound: RFC 3339, `YYYY-MM-DD` (midnight UTC) or epoch milliseconds.
pub fn parse_time(name: &str, s: &str) -> Result<i64, ApiError> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_millis());
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d
            .and_hms_opt(0, 0, 0)
            .expect("midnight")
            .and_utc()
            .timestamp_millis());
    }
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    Err(ApiError::bad_request(format!(
        "{name}={s:?}: use RFC 3339 (2026-11-24T09:00:00Z), a date (2026-11-24) or epoch ms"
    )))
}

/// `%…%` pattern matching `fragment` literally (LIKE wildcards and the escape escaped).
pub(crate) fn like_fragment(fragment: &str) -> String {
    let mut p = String::from("%");
    for c in fragment.chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

pub(crate) fn json_str(s: &str) -> String {
    serde_json::to_string(s).expect("strings serialize")
}

/// The filters as SQL conditions with their bound values, in order ($1…).
#[derive(Debug)]
pub(crate) struct Filter {
    pub(crate) sql: String,
    pub(crate) text: Vec<String>,
    pub(crate) from: Option<i64>,
    pub(crate) to: Option<i64>,
    /// Rows before (started_at, id) only, newest first: bound as `$3`, `$4`.
    pub(crate) cursor: Option<(i64, i64)>,
}

/// The number of leading BIGINT binds of a [`Filter`]: from, to, cursor time, cursor id.
pub(crate) const FIXED_BINDS: usize = 4;

/// Parses a cursor (`<started_at>.<row id>`), naming the parameter when it is not one.
fn parse_cursor(s: &str) -> Result<(i64, i64), ApiError> {
    s.split_once('.')
        .and_then(|(t, id)| Some((t.parse().ok()?, id.parse().ok()?)))
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "cursor={s:?}: pass the X-Next-Cursor header of the previous page as it is"
            ))
        })
}

pub(crate) fn build_filter(q: &ContactQuery) -> Result<Filter, ApiError> {
    let mut conds = Vec::new();
    let mut text = Vec::new();
    let mut n = 0;
    let mut next = || {
        n += 1;
        format!("${n}")
    };
    let from = q
        .from
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(|s| parse_time("from", s))
        .transpose()?;
    let to =
        q.to.as_deref()
            .filter(|s| !s.is_empty())
            .map(|s| parse_time("to", s))
            .transpose()?;
    // Time bounds come first so their placeholders are $1 and $2 (bound as BIGINT).
    let p_from = next();
    let p_to = next();
    let (p_ct, p_cid) = (next(), next());
    conds.push(format!("({p_from} = -1 OR c.started_at >= {p_from})"));
    conds.push(format!("({p_to} = -1 OR c.started_at < {p_to})"));
    conds.push(format!(
        "({p_ct} = -1 OR c.started_at < {p_ct} OR (c.started_at = {p_ct} AND c.id < {p_cid}))"
    ));
    let cursor = q
        .cursor
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(parse_cursor)
        .transpose()?;
    if let Some(num) = q.number.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        if num.len() > 32 || !num.chars().all(|c| c.is_ascii_digit() || c == '+') {
            return Err(ApiError::bad_request(
                "number must be digits with an optional leading +",
            ));
        }
        let (a, b) = (next(), next());
        conds.push(format!("(c.did = {a} OR c.record LIKE {b} ESCAPE '\\')"));
        text.push(num.to_owned());
        text.push(like_fragment(&format!(
            "\"customer_address\":{}",
            json_str(num)
        )));
    }
    if let Some(queue) = q.queue.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        let a = next();
        conds.push(format!("c.queue = {a}"));
        text.push(queue.to_owned());
    }
    if let Some(agent) = q.agent.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        let a = next();
        conds.push(format!("c.record LIKE {a} ESCAPE '\\'"));
        text.push(like_fragment(&format!(
            "\"stage\":\"connected\",\"detail\":{}",
            json_str(agent)
        )));
    }
    if let Some(outcome) = q
        .outcome
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        if !OUTCOMES.contains(&outcome) {
            return Err(ApiError::bad_request(format!(
                "outcome {outcome:?}: one of {}",
                OUTCOMES.join(", ")
            )));
        }
        let a = next();
        conds.push(format!("c.outcome = {a}"));
        text.push(outcome.to_owned());
    }
    if let Some(campaign) = q
        .campaign
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        if campaign.len() > 64 {
            return Err(ApiError::bad_request("campaign is at most 64 characters"));
        }
        let (a, b) = (next(), next());
        conds.push(format!(
            "(c.record LIKE {a} ESCAPE '\\' OR c.record LIKE {b} ESCAPE '\\')"
        ));
        text.push(like_fragment(&format!(
            "\"campaign_id\":{}",
            json_str(campaign)
        )));
        text.push(like_fragment(&format!(
            "\"campaign\":{}",
            json_str(campaign)
        )));
    }
    Ok(Filter {
        sql: conds.join(" AND "),
        text,
        from,
        to,
        cursor,
    })
}

pub(crate) fn agent_of(r: &ContactRecord) -> Option<String> {
    r.stages
        .iter()
        .rev()
        .find(|s| s.stage == "connected" && !s.detail.is_empty())
        .map(|s| s.detail.clone())
}

/// Runs the search.
pub async fn search(
    db: &foundation::Db,
    q: &ContactQuery,
    limit: i64,
) -> Result<Vec<ContactOut>, ApiError> {
    Ok(search_page(db, q, limit).await?.0)
}

/// Runs the search; with a full page, also the cursor that continues after it.
pub async fn search_page(
    db: &foundation::Db,
    q: &ContactQuery,
    limit: i64,
) -> Result<(Vec<ContactOut>, Option<String>), ApiError> {
    let f = build_filter(q)?;
    let n = f.text.len() + FIXED_BINDS;
    let sql = format!(
        "SELECT c.contact_id, c.did, fl.name, c.flow_version, c.started_at, c.ended_at, c.outcome, c.queue, c.record, c.id \
         FROM inbound_contacts c LEFT JOIN inbound_flows fl ON fl.id = c.flow_id WHERE {} \
         ORDER BY c.started_at DESC, c.id DESC LIMIT ${} OFFSET ${}",
        f.sql,
        n + 1,
        n + 2
    );
    type Row = (
        String,
        Option<String>,
        Option<String>,
        Option<i64>,
        i64,
        Option<i64>,
        Option<String>,
        Option<String>,
        String,
        i64,
    );
    let (cursor_t, cursor_id) = f.cursor.unwrap_or((-1, -1));
    let mut query = sqlx::query_as::<_, Row>(sqlx::AssertSqlSafe(sql))
        .bind(f.from.unwrap_or(-1))
        .bind(f.to.unwrap_or(-1))
        .bind(cursor_t)
        .bind(cursor_id);
    for t in &f.text {
        query = query.bind(t.clone());
    }
    let rows = query
        .bind(limit)
        .bind(q.offset.unwrap_or(0).max(0))
        .fetch_all(db.pool())
        .await
        .map_err(anyhow::Error::from)?;
    let next = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|r| format!("{}.{}", r.4, r.9)))
        .flatten();
    let out = rows
        .into_iter()
        .map(
            |(
                contact_id,
                did,
                flow,
                flow_version,
                started_at,
                ended_at,
                outcome,
                queue,
                record,
                _,
            )| {
                let r: ContactRecord = serde_json::from_str(&record).map_err(|e| {
                    anyhow::anyhow!("contact {contact_id}: record is not readable: {e}")
                })?;
                Ok(ContactOut {
                    agent: agent_of(&r),
                    customer_number: r.contact.customer_address.clone(),
                    attributes: r.attributes,
                    contact_id,
                    did,
                    started_at: rfc3339_ms(started_at),
                    ended_at: ended_at.map(rfc3339_ms),
                    outcome,
                    queue,
                    flow,
                    flow_version,
                })
            },
        )
        .collect::<Result<Vec<_>, ApiError>>()?;
    Ok((out, next))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Csv,
    JsonLines,
}

fn format_of(q: &ContactQuery, headers: &HeaderMap) -> Result<Format, ApiError> {
    match q.format.as_deref() {
        Some("csv") => Ok(Format::Csv),
        Some("json") => Ok(Format::Json),
        Some("jsonl" | "ndjson") => Ok(Format::JsonLines),
        Some(other) => Err(ApiError::bad_request(format!(
            "format {other:?}: use json, csv or jsonl"
        ))),
        None => {
            let first = headers
                .get(header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .and_then(|a| a.split(',').next())
                .map(str::trim)
                .unwrap_or_default();
            Ok(if first.starts_with("text/csv") {
                Format::Csv
            } else if first.starts_with("application/x-ndjson")
                || first.starts_with("application/jsonl")
            {
                Format::JsonLines
            } else {
                Format::Json
            })
        }
    }
}

/// One JSON object per line (`\n`-terminated), in the [`ContactOut`] schema.
fn to_json_lines(rows: &[ContactOut]) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    for r in rows {
        serde_json::to_writer(&mut out, r)?;
        out.push(b'\n');
    }
    Ok(out)
}

fn to_csv(rows: &[ContactOut]) -> anyhow::Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "contact_id",
        "started_at",
        "ended_at",
        "did",
        "customer_number",
        "flow",
        "flow_version",
        "queue",
        "agent",
        "outcome",
        "attributes",
    ])?;
    for r in rows {
        w.write_record([
            r.contact_id.as_str(),
            &r.started_at,
            r.ended_at.as_deref().unwrap_or(""),
            r.did.as_deref().unwrap_or(""),
            &r.customer_number,
            r.flow.as_deref().unwrap_or(""),
            &r.flow_version.map(|v| v.to_string()).unwrap_or_default(),
            r.queue.as_deref().unwrap_or(""),
            r.agent.as_deref().unwrap_or(""),
            r.outcome.as_deref().unwrap_or(""),
            &serde_json::to_string(&r.attributes)?,
        ])?;
    }
    w.into_inner().map_err(|e| anyhow::anyhow!("csv: {e}"))
}

/// Finds contacts; JSON, or CSV (`Accept: text/csv` or `format=csv`) or JSON lines (`Accept:
/// application/x-ndjson` or `format=jsonl`) for exports. A full page carries `X-Next-Cursor`;
/// pass it as `cursor` with the same filters for the next page.
#[utoipa::path(get, path = "/api/v1/contacts", tag = "contacts", security(("api_key" = []), ("session" = [])),
    params(ContactQuery),
    responses((status = 200, body = [ContactOut], description = "JSON; text/csv or application/x-ndjson (one ContactOut per line) when asked. \
               A full page has the header X-Next-Cursor: pass it as `cursor` for the next page.",
               headers(("X-Next-Cursor" = String, description = "Where the next page starts (only when this page is full)"))),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn list(
    State(st): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<ContactQuery>,
) -> Result<Response, ApiError> {
    caller.require(ROLES)?;
    let format = format_of(&q, &headers)?;
    let limit = match format {
        Format::Csv => q.limit.unwrap_or(100_000).clamp(1, 100_000),
        Format::JsonLines => q.limit.unwrap_or(10_000).clamp(1, 10_000),
        Format::Json => q.limit.unwrap_or(100).clamp(1, 1000),
    };
    let (rows, next) = search_page(&st.db, &q, limit).await?;
    let mut resp = match format {
        Format::Json => Json(rows).into_response(),
        Format::Csv => (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"contacts.csv\"",
                ),
            ],
            to_csv(&rows)?,
        )
            .into_response(),
        Format::JsonLines => (
            [(header::CONTENT_TYPE, "application/x-ndjson")],
            to_json_lines(&rows)?,
        )
            .into_response(),
    };
    if let Some(v) = next.and_then(|n| header::HeaderValue::from_str(&n).ok()) {
        resp.headers_mut().insert("x-next-cursor", v);
    }
    Ok(resp)
}

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_bounds_accept_three_forms_and_name_the_bad_one() {
        assert_eq!(parse_time("from", "2026-11-24").unwrap(), 1_795_478_400_000);
        assert_eq!(
            parse_time("from", "2026-11-24T00:00:00Z").unwrap(),
            1_795_478_400_000
        );
        assert_eq!(
            parse_time("from", "1795478400000").unwrap(),
            1_795_478_400_000
        );
        let e = parse_time("to", "yesterday").unwrap_err();
        assert!(e.message.contains("to=\"yesterday\""), "{}", e.message);
    }

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(like_fragment("a_b%c\\"), "%a\\_b\\%c\\\\%");
    }

    #[test]
    fn bad_filters_are_refused() {
        let q = ContactQuery {
            number: Some("12%".into()),
            ..Default::default()
        };
        assert!(build_filter(&q).is_err());
        let q = ContactQuery {
            outcome: Some("won".into()),
            ..Default::default()
        };
        assert!(
            build_filter(&q)
                .unwrap_err()
                .message
                .contains("caller_hung_up")
        );
    }

    use inbound::contact::{ContactInfo, FlowOutcome, Stage};

    fn record(
        id: &str,
        caller: &str,
        did: &str,
        at: i64,
        agent: Option<&str>,
        outcome: FlowOutcome,
    ) -> ContactRecord {
        let info = ContactInfo {
            contact_id: id.into(),
            customer_address: caller.into(),
            system_address: did.into(),
            channel: "VOICE".into(),
            attributes: [("account".to_string(), format!("A-{id}"))].into(),
        };
        let mut r = ContactRecord::new(info, at);
        if let FlowOutcome::Queued { queue } = &outcome {
            r.target_queue = Some(queue.clone());
            r.stages.push(Stage {
                at_ms: at + 5,
                stage: "queued".into(),
                detail: queue.clone(),
            });
        }
        if let Some(a) = agent {
            r.stages.push(Stage {
                at_ms: at + 10,
                stage: "offered".into(),
                detail: "someone_else".into(),
            });
            r.stages.push(Stage {
                at_ms: at + 20,
                stage: "connected".into(),
                detail: a.into(),
            });
        }
        r.ended_at_ms = Some(at + 60_000);
        r.outcome = Some(outcome);
        r
    }

    /// Seeds contact records through `inbound::store` and searches them with every filter.
    async fn exercise_search(db: &foundation::Db) {
        db.migrate().await.unwrap();
        let day = 1_795_478_400_000; // 2026-11-24T00:00:00Z
        let sales = || FlowOutcome::Queued {
            queue: "sales".into(),
        };
        let rows = [
            record(
                "c1",
                "+13125550001",
                "+18005550100",
                day + 1_000,
                Some("agnes"),
                sales(),
            ),
            record(
                "c2",
                "+13125550002",
                "+18005550100",
                day + 2_000,
                Some("a_nes"),
                sales(),
            ),
            record(
                "c3",
                "+13125550001",
                "+18005550199",
                day - 3_600_000,
                None,
                FlowOutcome::CallerHungUp,
            ),
            record(
                "c4",
                "+13125550004",
                "+18005550100",
                day + 86_400_000,
                None,
                FlowOutcome::Queued {
                    queue: "support".into(),
                },
            ),
        ];
        for r in &rows {
            inbound::store::save_contact(db, r, None).await.unwrap();
        }
        let ids = |q: ContactQuery| async move {
            search(db, &q, 100)
                .await
                .unwrap()
                .into_iter()
                .map(|c| c.contact_id)
                .collect::<Vec<_>>()
        };
        // Campaign calls: the dialer's `campaign_id` attribute (campaign 7 and 17), and a flow's
        // `campaign` attribute.
        let mut campaign_rows = Vec::new();
        for (id, key, value, at) in [
            ("c5", "campaign_id", "7", day + 3_000),
            ("c6", "campaign_id", "17", day + 4_000),
            ("c7", "campaign", "7", day + 5_000),
        ] {
            let mut r = record(id, "+13125550005", "", at, Some("agnes"), sales());
            r.contact.attributes.insert(key.into(), value.into());
            r.attributes.insert(key.into(), value.into());
            inbound::store::save_contact(db, &r, None).await.unwrap();
            campaign_rows.push(r);
        }
        let by_campaign = |c: &str| ContactQuery {
            campaign: Some(c.into()),
            ..Default::default()
        };
        assert_eq!(
            ids(by_campaign("7")).await,
            ["c7", "c5"],
            "campaign 7, not 17"
        );
        assert_eq!(ids(by_campaign("17")).await, ["c6"]);
        assert_eq!(ids(by_campaign("8")).await, Vec::<String>::new());
        assert!(build_filter(&by_campaign(&"9".repeat(65))).is_err());
        for r in &campaign_rows {
            sqlx::query("DELETE FROM inbound_contacts WHERE contact_id = $1")
                .bind(&r.contact.contact_id)
                .execute(db.pool())
                .await
                .unwrap();
        }
        assert_eq!(
            ids(ContactQuery::default()).await,
            ["c4", "c2", "c1", "c3"],
            "newest first"
        );
        assert_eq!(
            ids(ContactQuery {
                number: Some("+13125550001".into()),
                ..Default::default()
            })
            .await,
            ["c1", "c3"],
            "caller number"
        );
        assert_eq!(
            ids(ContactQuery {
                number: Some("+18005550199".into()),
                ..Default::default()
            })
            .await,
            ["c3"],
            "dialled number"
        );
        assert_eq!(
            ids(ContactQuery {
                agent: Some("agnes".into()),
                ..Default::default()
            })
            .await,
            ["c1"],
            "`_` is not a wildcard"
        );
        assert_eq!(
            ids(ContactQuery {
                agent: Some("someone_else".into()),
                ..Default::default()
            })
            .await,
            Vec::<String>::new(),
            "offered is not connected"
        );
        assert_eq!(
            ids(ContactQuery {
                queue: Some("sales".into()),
                ..Default::default()
            })
            .await,
            ["c2", "c1"]
        );
        assert_eq!(
            ids(ContactQuery {
                outcome: Some("caller_hung_up".into()),
                ..Default::default()
            })
            .await,
            ["c3"]
        );
        let on_the_day = ContactQuery {
            from: Some("2026-11-24".into()),
            to: Some("2026-11-25".into()),
            ..Default::default()
        };
        assert_eq!(
            ids(on_the_day).await,
            ["c2", "c1"],
            "from inclusive, to exclusive"
        );
        let combined = ContactQuery {
            number: Some("+18005550100".into()),
            queue: Some("sales".into()),
            agent: Some("a_nes".into()),
            ..Default::default()
        };
        assert_eq!(ids(combined).await, ["c2"]);
        let page = ContactQuery {
            offset: Some(1),
            ..Default::default()
        };
        assert_eq!(
            search(db, &page, 2)
                .await
                .unwrap()
                .iter()
                .map(|c| c.contact_id.as_str())
                .collect::<Vec<_>>(),
            ["c2", "c1"]
        );

        // Cursor paging: full pages carry the cursor, the last page none; a bad cursor is named.
        let (p1, next) = search_page(db, &ContactQuery::default(), 3).await.unwrap();
        let page_ids =
            |p: &[ContactOut]| p.iter().map(|c| c.contact_id.clone()).collect::<Vec<_>>();
        assert_eq!(page_ids(&p1), ["c4", "c2", "c1"]);
        let (p2, last) = search_page(
            db,
            &ContactQuery {
                cursor: next.clone(),
                ..Default::default()
            },
            3,
        )
        .await
        .unwrap();
        assert_eq!(page_ids(&p2), ["c3"], "after {next:?}");
        assert_eq!(last, None);
        let (p3, _) = search_page(
            db,
            &ContactQuery {
                cursor: next,
                number: Some("+13125550001".into()),
                ..Default::default()
            },
            3,
        )
        .await
        .unwrap();
        assert_eq!(page_ids(&p3), ["c3"], "filters apply after the cursor");
        let bad = ContactQuery {
            cursor: Some("yesterday".into()),
            ..Default::default()
        };
        assert!(build_filter(&bad).unwrap_err().message.contains("cursor="));
        let lines = String::from_utf8(to_json_lines(&p1).unwrap()).unwrap();
        let parsed: Vec<serde_json::Value> = lines
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(parsed.len(), 3);
        assert_eq!(parsed[0]["contact_id"], "c4");
        assert!(parsed[0]["attributes"].is_object() && parsed[0]["started_at"].is_string());

        let found = search(
            db,
            &ContactQuery {
                agent: Some("agnes".into()),
                ..Default::default()
            },
            10,
        )
        .await
        .unwrap();
        let c = &found[0];
        assert_eq!(
            (
                c.customer_number.as_str(),
                c.did.as_deref(),
                c.queue.as_deref(),
                c.agent.as_deref()
            ),
            (
                "+13125550001",
                Some("+18005550100"),
                Some("sales"),
                Some("agnes")
            )
        );
        assert_eq!(
            (c.started_at.as_str(), c.outcome.as_deref()),
            ("2026-11-24T00:00:01.000Z", Some("queued"))
        );
        let csv = String::from_utf8(to_csv(&found).unwrap()).unwrap();
        let mut lines = csv.lines();
        assert!(lines.next().unwrap().starts_with("contact_id,started_at,"));
        let line = lines.next().unwrap();
        assert!(
            line.starts_with("c1,2026-11-24T00:00:01.000Z,")
                && line.contains(",agnes,queued,")
                && line.contains("\"{\"\"account\"\":\"\"A-c1\"\"}\""),
            "{line}"
        );
    }

    #[tokio::test]
    async fn search_on_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let db = foundation::Db::connect(&format!("sqlite://{}/c.db", dir.path().display()), 2)
            .await
            .unwrap();
        exercise_search(&db).await;
    }

    #[tokio::test]
    async fn search_on_postgres() {
        let Some(pg) = foundation::testing::TempPgDatabase::create().await else {
            return;
        };
        let db = foundation::Db::connect(&pg.url, 2).await.unwrap();
        exercise_search(&db).await;
        db.close().await;
    }
}
