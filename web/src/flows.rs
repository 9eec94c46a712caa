//! Inbound configuration over the API (admins): flows (Amazon Connect flow language) with
//! versions, validation that points at the line and action of each problem, import of a Connect
//! export with a report naming the unsupported actions (and, when asked, saved with them skipped:
//! they take their error branch at run time), numbers (DIDs) → flows, and hours of operation.
//!
//! Writes go through `inbound::store`, which validates (strictly, except an import saved with
//! `allow_unsupported`, which the stored version remembers) and audits. The editor sends the
//! document as text so that problems can be placed: a JSON syntax error carries its line and
//! column, and every validator finding that names an action carries that action's `Identifier`
//! and the line where it is declared. Lists (flows, numbers, hours) are read-only queries here
//! until `inbound::store` grows list functions of its own.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use foundation::clock::rfc3339_ms;
use inbound::flow::{FlowDocument, FlowError, Mode, compile};
use inbound::hours::{Hours, HoursConfig};
use inbound::store::{self, StoreError};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::apikeys::Admin;
use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiJson;

/// Largest flow document accepted (Connect's own limit is far lower at 250 actions).
const MAX_FLOW_TEXT: usize = 1024 * 1024;

fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::Invalid(errs) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_flow",
            errs.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        ),
        StoreError::Hours(e) => ApiError::bad_request(format!("hours are not valid: {e}")),
        StoreError::NotFound(what) => ApiError::not_found(format!("{what} not found")),
        StoreError::Db(e) => ApiError::internal(e),
    }
}

fn check_name(kind: &str, name: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "{kind} name must be 1-64 letters, digits, '.', '_' or '-'"
        )))
    }
}

/// One problem in a flow document, placed where the editor can show it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    pub message: String,
    /// The `Identifier` of the action concerned, when the problem is about one action.
    pub action: Option<String>,
    /// The action's `Type`, when known.
    pub action_type: Option<String>,
    /// 1-based line in the text sent: of the JSON error, or of the action's `Identifier`.
    pub line: Option<usize>,
    pub column: Option<usize>,
}

/// The action a validator finding is about, if it names one.
fn action_of(e: &FlowError) -> (Option<&str>, Option<&str>) {
    match e {
        FlowError::UnknownActionType {
            action,
            action_type,
        }
        | FlowError::UnsupportedAction {
            action,
            action_type,
        } => (Some(action), Some(action_type)),
        FlowError::Parameter {
            action,
            action_type,
            ..
        }
        | FlowError::UnexpectedBranch {
            action,
            action_type,
            ..
        } => (Some(action), Some(action_type)),
        FlowError::DanglingTransition { action, .. }
        | FlowError::MissingTransition { action, .. }
        | FlowError::BadCondition { action, .. } => (Some(action), None),
        FlowError::Unreachable(a) | FlowError::DuplicateIdentifier(a) => (Some(a), None),
        FlowError::BadIdentifier { id, .. } => (Some(id), None),
        FlowError::MissingStartAction(_) => (None, None),
        FlowError::LoopWithoutExit { actions, .. } => (actions.first().map(String::as_str), None),
        _ => (None, None),
    }
}

/// The 1-based line where action `id` is declared (`"Identifier": "id"`), if found.
fn line_of_action(text: &str, id: &str) -> Option<usize> {
    let quoted = serde_json::to_string(id).ok()?;
    text.lines()
        .position(|l| l.contains("\"Identifier\"") && l.contains(&quoted))
        .map(|i| i + 1)
}

fn problem(text: &str, e: &FlowError) -> Problem {
    let (action, action_type) = action_of(e);
    let line = match e {
        FlowError::MissingStartAction(_) | FlowError::BadVersion(_) => {
            let key = if matches!(e, FlowError::BadVersion(_)) {
                "\"Version\""
            } else {
                "\"StartAction\""
            };
            text.lines().position(|l| l.contains(key)).map(|i| i + 1)
        }
        _ => action.and_then(|a| line_of_action(text, a)),
    };
    Problem {
        message: e.to_string(),
        action: action.map(str::to_owned),
        action_type: action_type.map(str::to_owned),
        line,
        column: None,
    }
}

/// Parses `text` as a flow document, or the JSON error placed at its line and column.
fn parse(text: &str) -> Result<FlowDocument, Problem> {
    FlowDocument::from_json(text).map_err(|e| Problem {
        message: format!("not a flow document: {e}"),
        action: None,
        action_type: None,
        line: Some(e.line()).filter(|l| *l > 0),
        column: Some(e.column()).filter(|c| *c > 0),
    })
}

/// Strict validation (what saving requires): every problem, placed.
fn validate_text(text: &str) -> Vec<Problem> {
    match parse(text) {
        Err(p) => vec![p],
        Ok(doc) => match compile(&doc, Mode::Strict) {
            Ok(_) => vec![],
            Err(errs) => errs.iter().map(|e| problem(text, e)).collect(),
        },
    }
}

fn check_size(text: &str) -> Result<(), ApiError> {
    if text.len() > MAX_FLOW_TEXT {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "flow documents are limited to 1 MiB",
        ));
    }
    Ok(())
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FlowSummary {
    pub name: String,
    pub current_version: i64,
    pub versions: i64,
    /// The current version was imported with its unsupported actions skipped (they take their
    /// error branch at run time).
    pub skips_unsupported: bool,
    /// Numbers (DIDs) that run this flow.
    pub numbers: Vec<String>,
    pub updated_at: String,
}

/// Every flow with its current version and the numbers that run it.
#[utoipa::path(get, path = "/api/v1/flows", tag = "inbound", security(("api_key" = []), ("session" = [])),
    responses((status = 200, body = [FlowSummary]), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn list_flows(
    State(st): State<AppState>,
    _: Admin,
) -> Result<Json<Vec<FlowSummary>>, ApiError> {
    let rows: Vec<(i64, String, i64, i64, i64, i16)> = sqlx::query_as(
        "SELECT f.id, f.name, f.current_version, f.updated_at, \
         (SELECT COUNT(*) FROM inbound_flow_versions v WHERE v.flow_id = f.id), \
         COALESCE((SELECT v.skip_unsupported FROM inbound_flow_versions v \
                   WHERE v.flow_id = f.id AND v.version = f.current_version), 0) \
         FROM inbound_flows f ORDER BY f.name",
    )
    .fetch_all(st.db.pool())
    .await
    .map_err(anyhow::Error::from)?;
    let numbers: Vec<(i64, String)> =
        sqlx::query_as("SELECT flow_id, did FROM inbound_numbers ORDER BY did")
            .fetch_all(st.db.pool())
            .await
            .map_err(anyhow::Error::from)?;
    Ok(Json(
        rows.into_iter()
            .map(
                |(id, name, current_version, updated_at, versions, skips)| FlowSummary {
                    name,
                    current_version,
                    versions,
                    skips_unsupported: skips != 0,
                    numbers: numbers
                        .iter()
                        .filter(|(f, _)| *f == id)
                        .map(|(_, d)| d.clone())
                        .collect(),
                    updated_at: rfc3339_ms(updated_at),
                },
            )
            .collect(),
    ))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VersionOut {
    pub version: i64,
    pub created_at: String,
    pub created_by: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FlowOut {
    pub name: String,
    /// The version shown (the current one).
    pub version: i64,
    /// The document as pretty JSON text, ready for the editor or for import elsewhere.
    pub text: String,
    /// This version was imported with its unsupported actions skipped: they take their error
    /// branch at run time, and saving it from the editor (strict) is refused until they are gone.
    pub skips_unsupported: bool,
    pub versions: Vec<VersionOut>,
}

/// A flow's current document and its version history.
#[utoipa::path(get, path = "/api/v1/flows/{name}", tag = "inbound", security(("api_key" = []), ("session" = [])),
    params(("name" = String, Path)),
    responses((status = 200, body = FlowOut), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_flow(
    State(st): State<AppState>,
    _: Admin,
    Path(name): Path<String>,
) -> Result<Json<FlowOut>, ApiError> {
    let f = store::load_flow(&st.db, &name, None)
        .await
        .map_err(store_error)?;
    let versions = store::flow_versions(&st.db, &name)
        .await
        .map_err(store_error)?;
    Ok(Json(FlowOut {
        name: f.name,
        version: f.version,
        text: f.document.to_json(),
        skips_unsupported: f.skip_unsupported,
        versions: versions
            .into_iter()
            .map(|(version, at, by)| VersionOut {
                version,
                created_at: rfc3339_ms(at),
                created_by: by,
            })
            .collect(),
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FlowText {
    /// The flow document (Amazon Connect flow language, `Version` 2019-10-30) as JSON text.
    pub text: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Validation {
    pub valid: bool,
    pub problems: Vec<Problem>,
}

/// Validates a document strictly, as saving would, without saving it.
#[utoipa::path(post, path = "/api/v1/flows/validate", tag = "inbound", security(("api_key" = []), ("session" = [])),
    request_body = FlowText,
    responses((status = 200, body = Validation), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn validate(_: Admin, ApiJson(b): ApiJson<FlowText>) -> Result<Json<Validation>, ApiError> {
    check_size(&b.text)?;
    let problems = validate_text(&b.text);
    Ok(Json(Validation {
        valid: problems.is_empty(),
        problems,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Saved {
    pub name: String,
    pub version: i64,
}

/// Saves a new version of a flow (creating it) and makes it current. A document with problems
/// is refused with 422; `POST /api/v1/flows/validate` lists them with their places.
#[utoipa::path(put, path = "/api/v1/flows/{name}", tag = "inbound", security(("api_key" = []), ("session" = [])),
    params(("name" = String, Path)), request_body = FlowText,
    responses((status = 200, body = Saved), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 422, body = ErrorBody, description = "the document is not valid (the message lists every problem)")))]
async fn save(
    State(st): State<AppState>,
    Admin(caller): Admin,
    Path(name): Path<String>,
    ApiJson(b): ApiJson<FlowText>,
) -> Result<Json<Saved>, ApiError> {
    check_name("flow", &name)?;
    check_size(&b.text)?;
    let doc = parse(&b.text)
        .map_err(|p| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_flow", p.message))?;
    let version = store::save_flow(&st.db, &name, &doc, st.clock.now_ms(), &caller.actor())
        .await
        .map_err(store_error)?;
    Ok(Json(Saved { name, version }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CurrentVersion {
    pub version: i64,
}

/// Makes an earlier version current again (a rollback).
#[utoipa::path(put, path = "/api/v1/flows/{name}/current", tag = "inbound", security(("api_key" = []), ("session" = [])),
    params(("name" = String, Path)), request_body = CurrentVersion,
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn set_current(
    State(st): State<AppState>,
    Admin(caller): Admin,
    Path(name): Path<String>,
    ApiJson(b): ApiJson<CurrentVersion>,
) -> Result<StatusCode, ApiError> {
    store::set_current_version(&st.db, &name, b.version, st.clock.now_ms(), &caller.actor())
        .await
        .map_err(store_error)?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportBody {
    /// The name to save the flow under.
    pub name: String,
    /// The Connect export (JSON text).
    pub text: String,
    /// Save it when the report is clean (default false: report only).
    #[serde(default)]
    pub save: bool,
    /// With `save`: save it also when its only findings are unsupported actions, which then take
    /// their error branch at run time (default false: only a clean flow is saved). Any other
    /// problem still refuses it.
    #[serde(default)]
    pub allow_unsupported: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UnsupportedAction {
    /// The action's `Type`, e.g. `UpdateContactData`.
    pub action_type: String,
    pub action: String,
    pub line: Option<usize>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ImportOut {
    /// True when the flow can be saved as it is (no unsupported actions, no problems).
    pub clean: bool,
    /// Set when the flow was saved (`save: true` and clean, or with `allow_unsupported` and no
    /// problems).
    pub saved_version: Option<i64>,
    /// Actions this engine does not run, by type: they block a save unless `allow_unsupported`,
    /// and then take their error branch at run time.
    pub unsupported: Vec<UnsupportedAction>,
    /// Every other problem.
    pub problems: Vec<Problem>,
    pub warnings: Vec<String>,
    pub actions: usize,
}

/// Imports an Amazon Connect flow export: reports what would not run (unsupported actions by
/// type), and saves it when asked and clean — or, with `allow_unsupported`, when its only
/// findings are unsupported actions, which are then skipped (they take their error branch).
#[utoipa::path(post, path = "/api/v1/flows/import", tag = "inbound", security(("api_key" = []), ("session" = [])),
    request_body = ImportBody,
    responses((status = 200, body = ImportOut), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn import(
    State(st): State<AppState>,
    Admin(caller): Admin,
    ApiJson(b): ApiJson<ImportBody>,
) -> Result<Json<ImportOut>, ApiError> {
    check_name("flow", &b.name)?;
    check_size(&b.text)?;
    let report = inbound::flow::import(&b.text);
    let actions = FlowDocument::from_json(&b.text)
        .map(|d| d.actions.len())
        .unwrap_or(0);
    let problems: Vec<Problem> = report
        .errors
        .iter()
        .map(|e| match e {
            FlowError::Json(_) => parse(&b.text).err().unwrap_or_else(|| problem(&b.text, e)),
            e => problem(&b.text, e),
        })
        .collect();
    let unsupported: Vec<UnsupportedAction> = report
        .unsupported
        .iter()
        .map(|(id, t)| UnsupportedAction {
            action_type: t.clone(),
            action: id.clone(),
            line: line_of_action(&b.text, id),
        })
        .collect();
    let clean = report.is_clean();
    let saved_version = if clean && b.save {
        Some(
            store::import_flow(&st.db, &b.name, &b.text, st.clock.now_ms(), &caller.actor())
                .await
                .map_err(store_error)?,
        )
    } else if b.save && b.allow_unsupported && report.errors.is_empty() {
        // Only unsupported actions: `report.runnable` compiled leniently, so the document parsed.
        let doc = parse(&b.text).map_err(|p| {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_flow", p.message)
        })?;
        Some(
            store::save_flow_skipping_unsupported(
                &st.db,
                &b.name,
                &doc,
                st.clock.now_ms(),
                &caller.actor(),
            )
            .await
            .map_err(store_error)?,
        )
    } else {
        None
    };
    Ok(Json(ImportOut {
        clean,
        saved_version,
        unsupported,
        problems,
        warnings: report.warnings,
        actions,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NumberOut {
    /// The dialled number (E.164).
    pub did: String,
    pub flow: String,
    pub updated_at: String,
}

/// Every number (DID) and the flow it runs.
#[utoipa::path(get, path = "/api/v1/numbers", tag = "inbound", security(("api_key" = []), ("session" = [])),
    responses((status = 200, body = [NumberOut]), (status = 403, body = ErrorBody)))]
async fn list_numbers(
    State(st): State<AppState>,
    _: Admin,
) -> Result<Json<Vec<NumberOut>>, ApiError> {
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT n.did, f.name, n.updated_at FROM inbound_numbers n JOIN inbound_flows f ON f.id = n.flow_id ORDER BY n.did",
    )
    .fetch_all(st.db.pool())
    .await
    .map_err(anyhow::Error::from)?;
    Ok(Json(
        rows.into_iter()
            .map(|(did, flow, at)| NumberOut {
                did,
                flow,
                updated_at: rfc3339_ms(at),
            })
            .collect(),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignNumber {
    pub flow: String,
}

/// Points a number at a flow (replacing any earlier mapping).
#[utoipa::path(put, path = "/api/v1/numbers/{did}", tag = "inbound", security(("api_key" = []), ("session" = [])),
    params(("did" = String, Path, description = "E.164, e.g. +13125550100")), request_body = AssignNumber,
    responses((status = 204), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody, description = "no such flow")))]
async fn assign(
    State(st): State<AppState>,
    Admin(caller): Admin,
    Path(did): Path<String>,
    ApiJson(b): ApiJson<AssignNumber>,
) -> Result<StatusCode, ApiError> {
    if !bridge::pool::is_e164(&did) {
        return Err(ApiError::bad_request(format!(
            "{did:?} is not an E.164 number (+ and 8-15 digits)"
        )));
    }
    store::assign_number(&st.db, &did, &b.flow, st.clock.now_ms(), &caller.actor())
        .await
        .map_err(store_error)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Removes a number's mapping (calls to it then run no flow).
#[utoipa::path(delete, path = "/api/v1/numbers/{did}", tag = "inbound", security(("api_key" = []), ("session" = [])),
    params(("did" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn unassign(
    State(st): State<AppState>,
    Admin(caller): Admin,
    Path(did): Path<String>,
) -> Result<StatusCode, ApiError> {
    store::unassign_number(&st.db, &did, st.clock.now_ms(), &caller.actor())
        .await
        .map_err(store_error)?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HoursOut {
    /// The schedule: `{id, time_zone, weekly: [{day, start, end}], overrides: [{date, name, ranges}]}`.
    #[schema(value_type = Object)]
    pub config: HoursConfig,
    /// Open at the appliance's current time.
    pub open_now: bool,
    pub updated_at: String,
}

/// Every hours-of-operation schedule, and whether it is open now.
#[utoipa::path(get, path = "/api/v1/hours", tag = "inbound", security(("api_key" = []), ("session" = [])),
    responses((status = 200, body = [HoursOut]), (status = 403, body = ErrorBody)))]
async fn list_hours(State(st): State<AppState>, _: Admin) -> Result<Json<Vec<HoursOut>>, ApiError> {
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT config, updated_at FROM inbound_hours ORDER BY name")
            .fetch_all(st.db.pool())
            .await
            .map_err(anyhow::Error::from)?;
    let now = st.clock.now_ms();
    let mut out = Vec::with_capacity(rows.len());
    for (text, at) in rows {
        let config: HoursConfig = serde_json::from_str(&text).map_err(anyhow::Error::from)?;
        let open_now = Hours::from_config(&config)
            .map(|h| h.is_open_ms(now))
            .unwrap_or(false);
        out.push(HoursOut {
            config,
            open_now,
            updated_at: rfc3339_ms(at),
        });
    }
    Ok(Json(out))
}

/// Creates or replaces a schedule (validated: zone, days, times, dates). The body's `id`, when
/// given, must equal the name in the path.
#[utoipa::path(put, path = "/api/v1/hours/{name}", tag = "inbound", security(("api_key" = []), ("session" = [])),
    params(("name" = String, Path)),
    request_body(content = Object, description = "`{time_zone, weekly: [{day, start, end}], overrides: [{date, name, ranges: [{start, end}]}]}`"),
    responses((status = 200, body = HoursOut), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn save_hours(
    State(st): State<AppState>,
    Admin(caller): Admin,
    Path(name): Path<String>,
    ApiJson(mut body): ApiJson<serde_json::Value>,
) -> Result<Json<HoursOut>, ApiError> {
    check_name("schedule", &name)?;
    let obj = body
        .as_object_mut()
        .ok_or_else(|| ApiError::bad_request("send the schedule as a JSON object"))?;
    match obj.get("id") {
        None => {
            obj.insert("id".into(), serde_json::Value::String(name.clone()));
        }
        Some(id) if id.as_str() == Some(name.as_str()) => {}
        Some(id) => {
            return Err(ApiError::bad_request(format!(
                "the body's id {id} differs from the name in the path {name:?}"
            )));
        }
    }
    let config: HoursConfig = serde_json::from_value(body)
        .map_err(|e| ApiError::bad_request(format!("not a schedule: {e}")))?;
    let now = st.clock.now_ms();
    store::save_hours(&st.db, &config, now, &caller.actor())
        .await
        .map_err(store_error)?;
    let open_now = store::load_hours(&st.db, &name)
        .await
        .map_err(store_error)?
        .is_open_ms(now);
    Ok(Json(HoursOut {
        config,
        open_now,
        updated_at: rfc3339_ms(now),
    }))
}

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_flows))
        .routes(routes!(validate))
        .routes(routes!(import))
        .routes(routes!(get_flow, save))
        .routes(routes!(set_current))
        .routes(routes!(list_numbers))
        .routes(routes!(assign, unassign))
        .routes(routes!(list_hours))
        .routes(routes!(save_hours))
        .layer(axum::extract::DefaultBodyLimit::max(
            MAX_FLOW_TEXT + 64 * 1024,
        ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXPORT: &str =
        include_str!("../../inbound/tests/fixtures/connect_rolling_dnis_receive.json");

    #[test]
    fn json_errors_carry_line_and_column() {
        let p = validate_text("{\n  \"Version\": \"2019-10-30\",\n  \"StartAction\": 12\n}");
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].line, Some(3), "{p:?}");
        assert!(p[0].column.is_some());
    }

    #[test]
    fn validator_findings_point_at_the_action_line() {
        let text = EXPORT;
        let problems = validate_text(text);
        let unsupported = problems
            .iter()
            .find(|p| p.action_type.as_deref() == Some("UpdateContactData"))
            .expect("named");
        let id = unsupported.action.as_deref().unwrap();
        let line = unsupported.line.expect("placed");
        assert!(
            text.lines().nth(line - 1).unwrap().contains(id),
            "line {line} declares {id}"
        );
    }

    /// An admin API caller, for calling the handlers directly.
    fn admin() -> Admin {
        Admin(crate::auth::Caller {
            role: foundation::accounts::Role::Admin,
            scope: None,
            kind: crate::auth::CallerKind::User {
                id: 1,
                username: "admin".into(),
                csrf_token: String::new(),
            },
        })
    }

    async fn import_as(
        st: &AppState,
        name: &str,
        text: &str,
        allow_unsupported: bool,
    ) -> Result<ImportOut, ApiError> {
        import(
            State(st.clone()),
            admin(),
            ApiJson(ImportBody {
                name: name.into(),
                text: text.into(),
                save: true,
                allow_unsupported,
            }),
        )
        .await
        .map(|Json(out)| out)
    }

    /// The published Connect export: refused without `allow_unsupported` (UpdateContactData
    /// named); with it saved, listed as skipping, and the stored version compiles the way the
    /// runtime compiles it (a number's flow), with UpdateContactData as a stand-in that takes its
    /// error branch. Saving the same text from the editor stays strict.
    #[tokio::test]
    async fn a_connect_export_saves_with_its_unsupported_actions_skipped_only_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let st = crate::test_state(dir.path()).await;
        let uncd = "3e419d85-af42-40b1-ad34-8c6f5a0b1d43";

        let out = import_as(&st, "connect", EXPORT, false).await.unwrap();
        assert!(!out.clean);
        assert_eq!(out.saved_version, None, "not saved without the flag");
        assert_eq!(
            out.unsupported
                .iter()
                .map(|u| (u.action.as_str(), u.action_type.as_str()))
                .collect::<Vec<_>>(),
            [(uncd, "UpdateContactData")]
        );
        assert!(out.problems.is_empty(), "{:?}", out.problems);
        assert!(matches!(
            store::load_flow(&st.db, "connect", None).await,
            Err(StoreError::NotFound(_))
        ));

        let out = import_as(&st, "connect", EXPORT, true).await.unwrap();
        assert!(!out.clean, "still not clean");
        assert_eq!(out.saved_version, Some(1));
        assert_eq!(out.unsupported.len(), 1);
        assert_eq!(out.unsupported[0].action_type, "UpdateContactData");
        assert!(out.unsupported[0].line.is_some());

        let Json(list) = list_flows(State(st.clone()), admin()).await.unwrap();
        let listed = list.iter().find(|f| f.name == "connect").expect("listed");
        assert_eq!(
            (listed.current_version, listed.skips_unsupported),
            (1, true)
        );
        let Json(shown) = get_flow(State(st.clone()), admin(), Path("connect".into()))
            .await
            .unwrap();
        assert!(shown.skips_unsupported);

        // As the runtime does: the number's flow, loaded and compiled.
        store::assign_number(&st.db, "+18885550142", "connect", 0, "test")
            .await
            .unwrap();
        let stored = store::flow_for_number(&st.db, "+18885550142")
            .await
            .unwrap()
            .expect("the number runs the flow");
        assert!(stored.skip_unsupported);
        let compiled = stored.compile().expect("compiles as saved");
        assert_eq!(
            compiled.unsupported,
            [(uncd.to_string(), "UpdateContactData".to_string())]
        );
        let stand_in = &compiled.actions[compiled.index_of(uncd).unwrap()];
        assert!(
            matches!(&stand_in.kind, inbound::flow::Kind::Unsupported { action_type } if action_type == "UpdateContactData"),
            "{:?}",
            stand_in.kind
        );
        assert!(
            stand_in.error_target("NoMatchingError").is_some(),
            "the stand-in has an error branch to take"
        );

        // The editor's save (PUT) is strict: the same document is refused, naming the action.
        let Err(refused) = save(
            State(st.clone()),
            admin(),
            Path("connect".into()),
            ApiJson(FlowText {
                text: EXPORT.into(),
            }),
        )
        .await
        else {
            panic!("a strict save refuses it");
        };
        assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            refused.message.contains("UpdateContactData"),
            "{}",
            refused.message
        );
        assert_eq!(
            store::load_flow(&st.db, "connect", None)
                .await
                .unwrap()
                .version,
            1
        );
    }

    /// `allow_unsupported` skips unsupported actions only: any other problem still refuses the
    /// import; a clean flow saved with the flag is a normal (strict) version.
    #[tokio::test]
    async fn allow_unsupported_does_not_save_other_problems() {
        let dir = tempfile::tempdir().unwrap();
        let st = crate::test_state(dir.path()).await;
        let broken = r#"{
  "Version": "2019-10-30",
  "StartAction": "a",
  "Actions": [
    { "Identifier": "a", "Type": "UpdateContactData", "Parameters": {},
      "Transitions": { "NextAction": "zzz", "Errors": [{ "NextAction": "b", "ErrorType": "NoMatchingError" }] } },
    { "Identifier": "b", "Type": "DisconnectParticipant", "Parameters": {}, "Transitions": {} }
  ]
}"#;
        let out = import_as(&st, "broken", broken, true).await.unwrap();
        assert_eq!(out.saved_version, None);
        assert!(
            out.problems.iter().any(|p| p.message.contains("zzz")),
            "{:?}",
            out.problems
        );
        assert!(store::load_flow(&st.db, "broken", None).await.is_err());

        let clean = r#"{
  "Version": "2019-10-30",
  "StartAction": "b",
  "Actions": [
    { "Identifier": "b", "Type": "DisconnectParticipant", "Parameters": {}, "Transitions": {} }
  ]
}"#;
        let out = import_as(&st, "clean", clean, true).await.unwrap();
        assert_eq!((out.clean, out.saved_version), (true, Some(1)));
        assert!(
            !store::load_flow(&st.db, "clean", None)
                .await
                .unwrap()
                .skip_unsupported
        );
    }

    #[test]
    fn a_dangling_transition_names_its_action() {
        let text = r#"{
  "Version": "2019-10-30",
  "StartAction": "a",
  "Actions": [
    { "Identifier": "a", "Type": "DisconnectParticipant", "Parameters": {}, "Transitions": {} },
    { "Identifier": "b", "Type": "MessageParticipant", "Parameters": { "Text": "hi" },
      "Transitions": { "NextAction": "zzz" } }
  ]
}"#;
        let problems = validate_text(text);
        let p = problems
            .iter()
            .find(|p| p.message.contains("zzz"))
            .unwrap_or_else(|| panic!("{problems:?}"));
        assert_eq!((p.action.as_deref(), p.line), (Some("b"), Some(6)));
    }
}
