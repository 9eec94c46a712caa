//! The web console: server-rendered pages and their static assets, embedded in the binary.
//!
//! Pages are plain HTML (one layout, one CSS file, a small vanilla script per page) that talk to
//! the same REST API as integrators; they are not API routes, so they live outside the OpenAPI
//! router ([`pages`]). Every page needs a session: a page request without one is redirected to
//! `/login?next=…` (a browser, unlike an API client, should land on the login form, not a JSON
//! 401), and a role that may not see a page gets an HTML 403. Roles are checked here, on the
//! server, not only by hiding links in the navigation.
//!
//! Assets are public only when the login page needs them (its script and the stylesheet, which
//! carry no data); the others need a session like the pages. Responses carry a strict Content
//! Security Policy (no inline script), and assets an `ETag` so browsers revalidate cheaply.
//!
//! Two API routes live here too ([`api_routes`], in the OpenAPI document): the column-mapping
//! preview the list upload page shows before a file is sent, answered by the importer's own
//! header recognition so the preview and the import cannot disagree; and the lead lists
//! (`GET /api/v1/lists`) the campaign form picks from.
//!
//! Vendored front-end libraries (pinned, unchanged, with their licences) are in
//! `web/assets/vendor/` and listed in its README; the campaign dashboard's chart is uPlot.

use std::collections::HashMap;
use std::sync::LazyLock;

use axum::Json;
use axum::Router;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use foundation::accounts::Role;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::auth::{Caller, CallerKind};
use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiJson;

const LAYOUT: &str = include_str!("../assets/layout.html");
const LOGIN: &str = include_str!("../assets/login.html");
const HOME: &str = include_str!("../assets/pages/home.html");
const LISTS: &str = include_str!("../assets/pages/lists.html");
const BRIDGE: &str = include_str!("../assets/pages/bridge.html");
const APIKEYS: &str = include_str!("../assets/pages/apikeys.html");
const USERS: &str = include_str!("../assets/pages/users.html");
const FLOWS: &str = include_str!("../assets/pages/flows.html");
const CONTACTS: &str = include_str!("../assets/pages/contacts.html");
const RECORDINGS: &str = include_str!("../assets/pages/recordings.html");
const CAMPAIGNS: &str = include_str!("../assets/pages/campaigns.html");
const DESKTOP: &str = include_str!("../assets/pages/desktop.html");
const SUPERVISOR: &str = include_str!("../assets/pages/supervisor.html");
const SYSTEM: &str = include_str!("../assets/pages/system.html");
const TRUNKS: &str = include_str!("../assets/pages/trunks.html");
const QUEUES: &str = include_str!("../assets/pages/queues.html");

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// A static file: URL name, content type, bytes, and whether it is served without a session.
struct Asset {
    content_type: &'static str,
    bytes: &'static [u8],
    public: bool,
    etag: String,
}

static ASSETS: LazyLock<HashMap<&'static str, Asset>> = LazyLock::new(|| {
    let list: [(&str, &str, &[u8], bool); 18] = [
        (
            "console.css",
            "text/css; charset=utf-8",
            include_bytes!("../assets/console.css"),
            true,
        ),
        (
            "login.js",
            "text/javascript; charset=utf-8",
            include_bytes!("../assets/login.js"),
            true,
        ),
        (
            "shell.js",
            "text/javascript; charset=utf-8",
            include_bytes!("../assets/shell.js"),
            false,
        ),
        (
            "lists.js",
            "text/javascript; charset=utf-8",
            include_bytes!("../assets/lists.js"),
            false,
        ),
        (
            "bridge.js",
            "text/javascript; charset=utf-8",
            include_bytes!("../assets/bridge.js"),
            false,
        ),
        (
            "apikeys.js",
            "text/javascript; charset=utf-8",
            include_bytes!("../assets/apikeys.js"),
            false,
        ),
        (
            "users.js",
            "text/javascript; charset=utf-8",
            include_bytes!("../assets/users.js"),
            false,
        ),
        (
            "flows.js",
            "text/javascript; charset=utf-8",
            include_bytes!("../assets/flows.js"),
            false,
        ),
        (
            "contacts.js",
            "text/javascript; charset=utf-8",
            include_bytes!("../assets/contacts.js"),
            false,
        ),
        (
            "recordings.js",
            "text/javascript; charset=utf-8",
            include_bytes!("../assets/recordings.js"),
            false,
        ),
        (
            "campaigns.js",
            "text/javascript; charset=utf-8",
            include_bytes!("../assets/campaigns.js"),
            false,
        ),
        (
            "desktop.js",
            "text/javascript; charset=utf-8",
            include_bytes!("../assets/desktop.js"),
            false,
        ),
        (
            "supervisor.js",
            "text/javascript; charset=utf-8",
            include_bytes!("../assets/supervisor.js"),
            false,
        ),
        (
            "system.js",
            "text/javascript; charset=utf-8",
            include_bytes!("../assets/system.js"),
            false,
        ),
        (
            "trunks.js",
            "text/javascript; charset=utf-8",
            include_bytes!("../assets/trunks.js"),
            false,
        ),
        (
            "queues.js",
            "text/javascript; charset=utf-8",
            include_bytes!("../assets/queues.js"),
            false,
        ),
        // Vendored, pinned libraries (web/assets/vendor/README.md: source, version, licence).
        (
            "uplot.esm.js",
            "text/javascript; charset=utf-8",
            include_bytes!("../assets/vendor/uplot-1.6.32.esm.js"),
            false,
        ),
        (
            "uplot.min.css",
            "text/css; charset=utf-8",
            include_bytes!("../assets/vendor/uplot-1.6.32.min.css"),
            false,
        ),
    ];
    list.into_iter()
        .map(|(name, content_type, bytes, public)| {
            let digest = Sha256::digest(bytes);
            let etag = format!(
                "\"{}\"",
                digest
                    .iter()
                    .take(12)
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>()
            );
            (
                name,
                Asset {
                    content_type,
                    bytes,
                    public,
                    etag,
                },
            )
        })
        .collect()
});

/// A console page in the navigation: path, label, roles that may open it.
struct NavItem {
    path: &'static str,
    label: &'static str,
    roles: &'static [Role],
}

const LIST_ROLES: &[Role] = &[Role::Admin, Role::CampaignManager];
const ADMIN: &[Role] = &[Role::Admin];
const PEOPLE: &[Role] = &[
    Role::Admin,
    Role::CampaignManager,
    Role::Supervisor,
    Role::Agent,
];
/// Campaigns: managed by admins and campaign managers, watched (read-only) by supervisors.
const CAMPAIGN_ROLES: &[Role] = &[Role::Admin, Role::CampaignManager, Role::Supervisor];
/// The agent desktop: the same roles as the agent API (`web/src/agents.rs`).
const DESKTOP_ROLES: &[Role] = &[Role::Agent, Role::Supervisor, Role::Admin];
const SUPERVISOR_ROLES: &[Role] = &[Role::Supervisor, Role::Admin];

const NAV: &[NavItem] = &[
    NavItem {
        path: "/",
        label: "Home",
        roles: PEOPLE,
    },
    NavItem {
        path: "/lists",
        label: "Lists",
        roles: LIST_ROLES,
    },
    NavItem {
        path: "/campaigns",
        label: "Campaigns",
        roles: CAMPAIGN_ROLES,
    },
    NavItem {
        path: "/desktop",
        label: "Desktop",
        roles: DESKTOP_ROLES,
    },
    NavItem {
        path: "/supervisor",
        label: "Supervisor",
        roles: SUPERVISOR_ROLES,
    },
    NavItem {
        path: "/contacts",
        label: "Contacts",
        roles: crate::contacts::ROLES,
    },
    NavItem {
        path: "/recordings",
        label: "Recordings",
        // Agents may open it (their own contacts' recordings); it is not in their navigation.
        roles: crate::contacts::ROLES,
    },
    NavItem {
        path: "/admin/flows",
        label: "Flows",
        roles: ADMIN,
    },
    NavItem {
        path: "/admin/users",
        label: "Users",
        roles: ADMIN,
    },
    NavItem {
        path: "/admin/apikeys",
        label: "API keys",
        roles: ADMIN,
    },
    NavItem {
        path: "/admin/bridge",
        label: "Bridge",
        roles: ADMIN,
    },
    NavItem {
        path: "/admin/queues",
        label: "Queues",
        roles: ADMIN,
    },
    NavItem {
        path: "/admin/trunks",
        label: "Trunks",
        roles: ADMIN,
    },
    NavItem {
        path: "/admin/system",
        label: "System",
        roles: ADMIN,
    },
];

/// Escapes text for HTML element content and double-quoted attributes.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn html(status: StatusCode, body: String) -> Response {
    let mut resp = (status, body).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    resp
}

fn display_name(c: &Caller) -> String {
    match &c.kind {
        CallerKind::User { username, .. } => username.clone(),
        CallerKind::Key(k) => format!("API key {}", k.name),
    }
}

/// The page frame: header with the navigation the caller's role may use, who is signed in, and
/// the logout button; `main` is the page's own HTML, `script` its script (or none).
fn render(
    c: &Caller,
    status: StatusCode,
    title: &str,
    active: &str,
    main: &str,
    script: Option<&str>,
) -> Response {
    let nav: String = NAV
        .iter()
        .filter(|n| n.roles.contains(&c.role))
        .map(|n| {
            let current = if n.path == active {
                " aria-current=\"page\""
            } else {
                ""
            };
            format!(
                "<li><a href=\"{}\"{current}>{}</a></li>",
                n.path,
                escape(n.label)
            )
        })
        .collect();
    let script = script
        .map(|s| format!("<script type=\"module\" src=\"/assets/{s}\"></script>"))
        .unwrap_or_default();
    let page = LAYOUT
        .replace("{{title}}", &escape(title))
        .replace("{{nav}}", &nav)
        .replace("{{user}}", &escape(&display_name(c)))
        .replace("{{role}}", &escape(c.role.as_str()))
        .replace("{{script}}", &script)
        .replace("{{main}}", main);
    html(status, page)
}

/// The caller of a page. Without a valid credential the page answers with a redirect to the login
/// form (remembering where to come back to) instead of the API's JSON 401.
pub struct PageCaller(pub Caller);

impl FromRequestParts<AppState> for PageCaller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        match Caller::from_request_parts(parts, state).await {
            Ok(c) => Ok(PageCaller(c)),
            Err(e) if e.status == StatusCode::UNAUTHORIZED => {
                let next = parts
                    .uri
                    .path_and_query()
                    .map(|p| p.as_str())
                    .unwrap_or("/");
                let to = if next == "/" {
                    "/login".to_owned()
                } else {
                    format!("/login?next={}", percent_encode(next))
                };
                Err(Redirect::to(&to).into_response())
            }
            Err(e) => Err(e.into_response()),
        }
    }
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A 403 page (with the navigation the caller may use) when the caller has none of `roles`.
fn forbidden(c: &Caller, roles: &[Role]) -> Option<Response> {
    if roles.contains(&c.role) {
        return None;
    }
    let main = format!(
        "<section class=\"panel\"><h1>Not allowed</h1><p id=\"forbidden\">Your role, <strong>{}</strong>, may not open this page.</p>\
         <p><a href=\"/\">Back to the console home</a></p></section>",
        escape(c.role.as_str())
    );
    Some(render(
        c,
        StatusCode::FORBIDDEN,
        "Not allowed",
        "",
        &main,
        None,
    ))
}

/// The login form, open to everyone; someone already signed in goes to the console home.
async fn login_page(caller: Result<Caller, ApiError>) -> Response {
    match caller {
        Ok(Caller {
            kind: CallerKind::User { .. },
            ..
        }) => Redirect::to("/").into_response(),
        _ => html(StatusCode::OK, LOGIN.to_owned()),
    }
}

async fn home(PageCaller(c): PageCaller) -> Response {
    if let Some(r) = forbidden(&c, PEOPLE) {
        return r;
    }
    let links: String = NAV
        .iter()
        .skip(1)
        .filter(|n| n.roles.contains(&c.role))
        .map(|n| format!("<li><a href=\"{}\">{}</a></li>", n.path, escape(n.label)))
        .collect();
    let links = if links.is_empty() {
        "<p>No console pages for your role yet.</p>".to_owned()
    } else {
        format!("<ul class=\"links\">{links}</ul>")
    };
    let main = HOME
        .replace("{{user}}", &escape(&display_name(&c)))
        .replace("{{role}}", &escape(c.role.as_str()))
        .replace("{{links}}", &links);
    render(&c, StatusCode::OK, "Console", "/", &main, None)
}

async fn lists(PageCaller(c): PageCaller) -> Response {
    if let Some(r) = forbidden(&c, LIST_ROLES) {
        return r;
    }
    render(
        &c,
        StatusCode::OK,
        "Lists",
        "/lists",
        LISTS,
        Some("lists.js"),
    )
}

async fn bridge_page(PageCaller(c): PageCaller) -> Response {
    if let Some(r) = forbidden(&c, ADMIN) {
        return r;
    }
    render(
        &c,
        StatusCode::OK,
        "Bridge",
        "/admin/bridge",
        BRIDGE,
        Some("bridge.js"),
    )
}

/// Admin: API keys (create, shown once; revoke).
async fn apikeys_page(PageCaller(c): PageCaller) -> Response {
    if let Some(r) = forbidden(&c, ADMIN) {
        return r;
    }
    render(
        &c,
        StatusCode::OK,
        "API keys",
        "/admin/apikeys",
        APIKEYS,
        Some("apikeys.js"),
    )
}

/// Admin: users and agents with their skills.
async fn users_page(PageCaller(c): PageCaller) -> Response {
    if let Some(r) = forbidden(&c, ADMIN) {
        return r;
    }
    render(
        &c,
        StatusCode::OK,
        "Users",
        "/admin/users",
        USERS,
        Some("users.js"),
    )
}

/// Admin: flows (editor, Connect import), numbers and hours of operation.
async fn flows_page(PageCaller(c): PageCaller) -> Response {
    if let Some(r) = forbidden(&c, ADMIN) {
        return r;
    }
    render(
        &c,
        StatusCode::OK,
        "Flows",
        "/admin/flows",
        FLOWS,
        Some("flows.js"),
    )
}

/// Contact search and CSV export (admins and supervisors).
async fn contacts_page(PageCaller(c): PageCaller) -> Response {
    if let Some(r) = forbidden(&c, crate::contacts::ROLES) {
        return r;
    }
    render(
        &c,
        StatusCode::OK,
        "Contacts",
        "/contacts",
        CONTACTS,
        Some("contacts.js"),
    )
}

/// Recordings: search, play, download (agents: their own contacts' only).
async fn recordings_page(PageCaller(c): PageCaller) -> Response {
    if let Some(r) = forbidden(&c, crate::recordings::ROLES) {
        return r;
    }
    render(
        &c,
        StatusCode::OK,
        "Recordings",
        "/recordings",
        RECORDINGS,
        Some("recordings.js"),
    )
}

/// Campaigns: list, create / edit, lifecycle buttons, the live dashboard. Supervisors see it
/// read-only (the page hides the controls; the API refuses their changes anyway).
async fn campaigns_page(PageCaller(c): PageCaller) -> Response {
    if let Some(r) = forbidden(&c, CAMPAIGN_ROLES) {
        return r;
    }
    let can_manage = [Role::Admin, Role::CampaignManager].contains(&c.role);
    let main = CAMPAIGNS.replace("{{manage}}", if can_manage { "true" } else { "false" });
    render(
        &c,
        StatusCode::OK,
        "Campaigns",
        "/campaigns",
        &main,
        Some("campaigns.js"),
    )
}

/// The agent desktop: login with an endpoint, state, contacts with screen pop, disposition.
async fn desktop_page(PageCaller(c): PageCaller) -> Response {
    if let Some(r) = forbidden(&c, DESKTOP_ROLES) {
        return r;
    }
    render(
        &c,
        StatusCode::OK,
        "Agent desktop",
        "/desktop",
        DESKTOP,
        Some("desktop.js"),
    )
}

/// The supervisor view: live agents and queues, force state, listen / whisper / barge.
async fn supervisor_page(PageCaller(c): PageCaller) -> Response {
    if let Some(r) = forbidden(&c, SUPERVISOR_ROLES) {
        return r;
    }
    render(
        &c,
        StatusCode::OK,
        "Supervisor",
        "/supervisor",
        SUPERVISOR,
        Some("supervisor.js"),
    )
}

/// Admin: system health (status, version, uptime, database, draining, addresses).
async fn system_page(PageCaller(c): PageCaller) -> Response {
    if let Some(r) = forbidden(&c, ADMIN) {
        return r;
    }
    render(
        &c,
        StatusCode::OK,
        "System",
        "/admin/system",
        SYSTEM,
        Some("system.js"),
    )
}

/// Admin: SIP trunks, where they are used and their limits.
async fn trunks_page(PageCaller(c): PageCaller) -> Response {
    if let Some(r) = forbidden(&c, ADMIN) {
        return r;
    }
    render(
        &c,
        StatusCode::OK,
        "Trunks",
        "/admin/trunks",
        TRUNKS,
        Some("trunks.js"),
    )
}

/// Admin: queues with live figures, and the routing profiles in use.
async fn queues_page(PageCaller(c): PageCaller) -> Response {
    if let Some(r) = forbidden(&c, ADMIN) {
        return r;
    }
    render(
        &c,
        StatusCode::OK,
        "Queues",
        "/admin/queues",
        QUEUES,
        Some("queues.js"),
    )
}

/// Any other `/admin/…` page: admins get a 404 page, everyone else 403 (what exists under
/// `/admin` is not disclosed to other roles).
async fn admin_other(PageCaller(c): PageCaller) -> Response {
    if let Some(r) = forbidden(&c, ADMIN) {
        return r;
    }
    let main =
        "<section class=\"panel\"><h1>Not found</h1><p>There is no such admin page.</p></section>";
    render(&c, StatusCode::NOT_FOUND, "Not found", "", main, None)
}

async fn asset(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(a) = ASSETS.get(name.as_str()) else {
        return ApiError::not_found("no such asset").into_response();
    };
    if !a.public {
        let (mut parts, _) = axum::http::Request::new(()).into_parts();
        parts.headers = headers.clone();
        if let Err(e) = Caller::from_request_parts(&mut parts, &state).await {
            return e.into_response();
        }
    }
    let mut resp = if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        == Some(a.etag.as_str())
    {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut r = a.bytes.into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(a.content_type),
        );
        r
    };
    let h = resp.headers_mut();
    h.insert(
        header::ETAG,
        HeaderValue::from_str(&a.etag).expect("hex etag"),
    );
    let cache = if a.public {
        "no-cache"
    } else {
        "private, no-cache"
    };
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    resp
}

/// `/console` is a common guess; send it home.
async fn to_home() -> Redirect {
    Redirect::to("/")
}

/// The console's pages and assets (not API routes; not in the OpenAPI document).
pub fn pages() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/login", get(login_page))
        .route("/console", get(to_home))
        .route("/lists", get(lists))
        .route("/admin/bridge", get(bridge_page))
        .route("/admin/apikeys", get(apikeys_page))
        .route("/admin/users", get(users_page))
        .route("/admin/flows", get(flows_page))
        .route("/admin/system", get(system_page))
        .route("/admin/trunks", get(trunks_page))
        .route("/admin/queues", get(queues_page))
        .route("/contacts", get(contacts_page))
        .route("/recordings", get(recordings_page))
        .route("/campaigns", get(campaigns_page))
        .route("/desktop", get(desktop_page))
        .route("/supervisor", get(supervisor_page))
        .route("/admin", get(admin_other))
        .route("/admin/{*rest}", get(admin_other))
        .route("/assets/{name}", get(asset))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MappingPreviewBody {
    /// The file's header row, as the browser read it.
    pub headers: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ColumnRole {
    pub header: String,
    /// `crm_id`, `phone`, `first_name`, `last_name`, `email`, `postal_code`, `subdivision`,
    /// `country`, `timezone`, `priority`, `consent_type`, `consent_source`, `consent_at`,
    /// `do_not_call`, or `attribute` (kept on the lead under its header).
    pub role: &'static str,
    /// For phone columns: the order in which numbers are tried (1 first).
    pub phone_order: Option<usize>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MappingPreview {
    pub columns: Vec<ColumnRole>,
    /// Why this header row cannot be imported as it is (e.g. no phone column), else null.
    pub error: Option<String>,
}

/// How the importer would map these columns (the list upload page shows it before sending).
#[utoipa::path(post, path = "/api/v1/imports/mapping-preview", tag = "lists", security(("api_key" = []), ("session" = [])),
    request_body = MappingPreviewBody,
    responses((status = 200, body = MappingPreview), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn mapping_preview(
    caller: Caller,
    ApiJson(b): ApiJson<MappingPreviewBody>,
) -> Result<Json<MappingPreview>, ApiError> {
    caller.require(LIST_ROLES)?;
    if b.headers.len() > 1000 {
        return Err(ApiError::bad_request("at most 1000 columns"));
    }
    let m = match importers::mapping::Mapping::resolve(&b.headers, None) {
        Ok(m) => m,
        Err(e) => {
            let columns = b
                .headers
                .iter()
                .map(|h| ColumnRole {
                    header: h.clone(),
                    role: "attribute",
                    phone_order: None,
                })
                .collect();
            return Ok(Json(MappingPreview {
                columns,
                error: Some(format!("{e:#}")),
            }));
        }
    };
    let singles = [
        (m.crm_id, "crm_id"),
        (m.first_name, "first_name"),
        (m.last_name, "last_name"),
        (m.email, "email"),
        (m.postal_code, "postal_code"),
        (m.subdivision, "subdivision"),
        (m.country, "country"),
        (m.timezone, "timezone"),
        (m.priority, "priority"),
        (m.consent_type, "consent_type"),
        (m.consent_source, "consent_source"),
        (m.consent_at, "consent_at"),
        (m.do_not_call, "do_not_call"),
    ];
    let columns = b
        .headers
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let phone_order = m.phones.iter().position(|&p| p == i).map(|n| n + 1);
            let role = if phone_order.is_some() {
                "phone"
            } else {
                singles
                    .iter()
                    .find(|(slot, _)| *slot == Some(i))
                    .map(|(_, r)| *r)
                    .unwrap_or("attribute")
            };
            ColumnRole {
                header: h.clone(),
                role,
                phone_order,
            }
        })
        .collect();
    Ok(Json(MappingPreview {
        columns,
        error: None,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ListSummary {
    pub id: i64,
    pub name: String,
    /// Leads in the list (any state).
    pub leads: i64,
    pub created_at: String,
}

/// The lead lists (from the imports), for the campaign form's list picker.
#[utoipa::path(get, path = "/api/v1/lists", tag = "lists", security(("api_key" = []), ("session" = [])),
    responses((status = 200, body = Vec<ListSummary>), (status = 403, body = ErrorBody)))]
async fn list_lists(
    State(st): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<ListSummary>>, ApiError> {
    caller.require(CAMPAIGN_ROLES)?;
    let rows = sqlx::query(
        "SELECT l.id, l.name, l.created_at, (SELECT COUNT(*) FROM leads d WHERE d.list_id = l.id) AS leads \
         FROM lead_lists l WHERE l.active = 1 ORDER BY l.name",
    )
    .fetch_all(st.db.pool())
    .await
    .map_err(anyhow::Error::from)?;
    use sqlx::Row;
    Ok(Json(
        rows.into_iter()
            .map(|r| ListSummary {
                id: r.get("id"),
                name: r.get("name"),
                leads: r.get("leads"),
                created_at: foundation::clock::rfc3339_ms(r.get("created_at")),
            })
            .collect(),
    ))
}

/// The console's API routes (in the OpenAPI document).
pub(crate) fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(mapping_preview))
        .routes(routes!(list_lists))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            escape("<a href=\"x\">O'Neil & co</a>"),
            "&lt;a href=&quot;x&quot;&gt;O&#39;Neil &amp; co&lt;/a&gt;"
        );
    }

    #[test]
    fn next_parameter_is_percent_encoded() {
        assert_eq!(
            percent_encode("/admin/bridge?x=1&y=2"),
            "/admin/bridge%3Fx%3D1%26y%3D2"
        );
    }

    #[test]
    fn every_page_script_is_an_asset() {
        for page in [
            LISTS, BRIDGE, HOME, LOGIN, LAYOUT, APIKEYS, USERS, FLOWS, CONTACTS, CAMPAIGNS,
            DESKTOP, SUPERVISOR, SYSTEM, TRUNKS, QUEUES,
        ] {
            for part in page.split("/assets/").skip(1) {
                let name = part.split('"').next().unwrap();
                assert!(
                    ASSETS.contains_key(name),
                    "{name} is referenced but not embedded"
                );
            }
        }
        assert!(
            ASSETS["login.js"].public && ASSETS["console.css"].public && !ASSETS["lists.js"].public
        );
        for script in [
            "apikeys.js",
            "users.js",
            "flows.js",
            "contacts.js",
            "campaigns.js",
            "desktop.js",
            "supervisor.js",
            "system.js",
            "trunks.js",
            "queues.js",
            "uplot.esm.js",
        ] {
            assert!(!ASSETS[script].public, "{script} needs a session");
        }
    }
}
