//! The admin APIs end to end against the real appliance (issue #8, with #5's API keys): keys
//! (created once, revoked at once even while cached), users and agents with skills, flows with
//! placed validation problems and Connect import, numbers, hours, contact search and export, the
//! roles on every route (401 without a credential, 403 for an agent or a supervisor where only an
//! admin may go, on APIs and pages), and the OpenAPI document listing every new route.

mod common;

use std::time::Duration;

use common::{Appliance, api_key};
use serde_json::{Value, json};

const ADMIN_PW: &str = "admin-Secret-1";
const CONNECT_EXPORT: &str =
    include_str!("../inbound/tests/fixtures/connect_rolling_dnis_receive.json");

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn send(req: reqwest::RequestBuilder) -> (u16, Value) {
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// A console session: the cookie and the CSRF token from logging in.
struct Session {
    cookie: String,
    csrf: String,
}

async fn login(
    c: &reqwest::Client,
    app: &Appliance,
    user: &str,
    password: &str,
) -> Result<Session, u16> {
    let resp = c
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({"username": user, "password": password}))
        .send()
        .await
        .unwrap();
    if resp.status() != 200 {
        return Err(resp.status().as_u16());
    }
    let cookie = resp.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let me: Value = resp.json().await.unwrap();
    Ok(Session {
        cookie,
        csrf: me["csrf_token"].as_str().unwrap().to_owned(),
    })
}

impl Session {
    fn on(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        req.header("cookie", &self.cookie)
            .header("x-csrf-token", &self.csrf)
    }
}

#[tokio::test]
async fn admin_apis_keys_users_flows_contacts_and_roles() {
    let dir = tempfile::tempdir().unwrap();
    let admin = api_key(dir.path(), "admin");
    let agent_key = api_key(dir.path(), "agent");
    let supervisor_key = api_key(dir.path(), "supervisor");
    let app = Appliance::start(dir.path(), &[("DIALBRIDGE_ADMIN_PASSWORD", ADMIN_PW)]);
    let c = http();
    let url = |p: &str| app.url(p);

    // ---- API keys -------------------------------------------------------------------------
    let (s, b) = send(
        c.post(url("/api/v1/apikeys"))
            .bearer_auth(&admin)
            .json(&json!({"name": "pbx", "role": "legacy-pbx"})),
    )
    .await;
    assert_eq!(
        (s, b["error"].as_str()),
        (400, Some("bad_request")),
        "a legacy-pbx key needs a pool: {b}"
    );
    let (s, b) = send(
        c.post(url("/api/v1/apikeys"))
            .bearer_auth(&admin)
            .json(&json!({"name": "pbx", "role": "legacy-pbx", "pool": "nope"})),
    )
    .await;
    assert!(
        s == 400 && b["message"].as_str().unwrap().contains("nope"),
        "{s} {b}"
    );
    let (s, b) = send(
        c.post(url("/api/v1/apikeys"))
            .bearer_auth(&admin)
            .json(&json!({"name": "x", "role": "superuser"})),
    )
    .await;
    assert!(
        s == 400 && b["message"].as_str().unwrap().contains("superuser"),
        "{s} {b}"
    );
    let pool = json!({"name": "east", "numbers": ["+13125550001"], "direction": "to_legacy", "cooldown_s": 0});
    assert_eq!(
        send(
            c.post(url("/api/v1/bridge/pools"))
                .bearer_auth(&admin)
                .json(&pool)
        )
        .await
        .0,
        201
    );
    let (s, made) = send(
        c.post(url("/api/v1/apikeys"))
            .bearer_auth(&admin)
            .json(&json!({"name": "pbx-east", "role": "legacy-pbx", "pool": "east"})),
    )
    .await;
    assert_eq!(s, 201, "{made}");
    let token = made["token"].as_str().unwrap().to_owned();
    let prefix = made["key"]["prefix"].as_str().unwrap().to_owned();
    assert!(token.starts_with(&format!("dbk_{prefix}_")));
    assert_eq!(
        (made["key"]["role"].as_str(), made["key"]["pool"].as_str()),
        (Some("legacy-pbx"), Some("east"))
    );
    // The new key works (and is now in the verification cache)...
    let (s, me) = send(c.get(url("/api/v1/whoami")).bearer_auth(&token)).await;
    assert_eq!((s, me["scope"].as_str()), (200, Some("east")));
    let (s, keys) = send(c.get(url("/api/v1/apikeys")).bearer_auth(&admin)).await;
    assert_eq!(s, 200);
    let listed = keys
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["prefix"] == prefix.as_str())
        .expect("listed")
        .clone();
    assert!(
        listed.get("token").is_none() && !listed.to_string().contains(&token[13..]),
        "the secret is never listed: {listed}"
    );
    assert_eq!(
        keys.as_array().unwrap().len(),
        4,
        "three from the command line and one from the API: {keys}"
    );
    // ...and stops working the moment it is revoked, cache or not.
    let id = listed["id"].as_i64().unwrap();
    let (s, _) = send(
        c.delete(url(&format!("/api/v1/apikeys/{id}")))
            .bearer_auth(&admin),
    )
    .await;
    assert_eq!(s, 204);
    assert_eq!(
        send(c.get(url("/api/v1/whoami")).bearer_auth(&token))
            .await
            .0,
        401,
        "revocation is immediate"
    );
    assert_eq!(
        send(
            c.delete(url(&format!("/api/v1/apikeys/{id}")))
                .bearer_auth(&admin)
        )
        .await
        .0,
        204,
        "idempotent"
    );
    assert_eq!(
        send(c.delete(url("/api/v1/apikeys/999999")).bearer_auth(&admin))
            .await
            .0,
        404
    );
    let (_, live) = send(c.get(url("/api/v1/apikeys")).bearer_auth(&admin)).await;
    assert!(
        live.as_array()
            .unwrap()
            .iter()
            .all(|k| k["prefix"] != prefix.as_str()),
        "revoked keys leave the list"
    );
    let (_, all) = send(
        c.get(url("/api/v1/apikeys?include_revoked=true"))
            .bearer_auth(&admin),
    )
    .await;
    assert!(
        all.as_array()
            .unwrap()
            .iter()
            .any(|k| k["prefix"] == prefix.as_str() && k["revoked_at"].is_string())
    );

    // ---- users and agents -----------------------------------------------------------------
    let agnes = json!({"username": "agnes", "role": "agent", "password": "agent-pass-1", "display_name": "Agnes", "skills": {"sales": 4, "billing": 2}});
    let (s, u) = send(
        c.post(url("/api/v1/users"))
            .bearer_auth(&admin)
            .json(&agnes),
    )
    .await;
    assert_eq!(s, 201, "{u}");
    assert_eq!(u["skills"], json!({"billing": 2, "sales": 4}));
    let agnes_id = u["id"].as_i64().unwrap();
    assert_eq!(
        send(
            c.post(url("/api/v1/users"))
                .bearer_auth(&admin)
                .json(&agnes)
        )
        .await
        .0,
        409
    );
    let bad = json!({"username": "bob", "role": "agent", "password": "agent-pass-1", "skills": {"sales": 9}});
    let (s, b) = send(c.post(url("/api/v1/users")).bearer_auth(&admin).json(&bad)).await;
    assert!(
        s == 400 && b["message"].as_str().unwrap().contains("1..=5"),
        "{s} {b}"
    );
    let short = json!({"username": "bob", "role": "agent", "password": "short"});
    assert_eq!(
        send(
            c.post(url("/api/v1/users"))
                .bearer_auth(&admin)
                .json(&short)
        )
        .await
        .0,
        400
    );
    let sup = json!({"username": "sam", "role": "supervisor", "password": "super-pass-1"});
    assert_eq!(
        send(c.post(url("/api/v1/users")).bearer_auth(&admin).json(&sup))
            .await
            .0,
        201
    );

    let agent_session = login(&c, &app, "agnes", "agent-pass-1")
        .await
        .expect("agnes logs in");
    let (s, u) = send(
        c.put(url(&format!("/api/v1/users/{agnes_id}")))
            .bearer_auth(&admin)
            .json(&json!({"skills": {"support": 5}, "display_name": "Agnes A."})),
    )
    .await;
    assert_eq!(
        (s, &u["skills"], u["display_name"].as_str()),
        (200, &json!({"support": 5}), Some("Agnes A."))
    );
    // A password reset ends her sessions; the old password stops working.
    let (s, _) = send(
        c.put(url(&format!("/api/v1/users/{agnes_id}")))
            .bearer_auth(&admin)
            .json(&json!({"password": "agent-pass-2"})),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(
        send(agent_session.on(c.get(url("/api/v1/whoami")))).await.0,
        401
    );
    assert!(login(&c, &app, "agnes", "agent-pass-1").await.is_err());
    let agent_session = login(&c, &app, "agnes", "agent-pass-2")
        .await
        .expect("new password");
    let (s, users) = send(c.get(url("/api/v1/users")).bearer_auth(&admin)).await;
    assert_eq!(s, 200);
    let names: Vec<&str> = users
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["admin", "agnes", "sam"]);
    let admin_id = users[0]["id"].as_i64().unwrap();
    // The last admin stays an admin; an admin cannot delete their own account.
    let (s, b) = send(
        c.put(url(&format!("/api/v1/users/{admin_id}")))
            .bearer_auth(&admin)
            .json(&json!({"role": "agent"})),
    )
    .await;
    assert_eq!((s, b["error"].as_str()), (409, Some("conflict")));
    let admin_session = login(&c, &app, "admin", ADMIN_PW)
        .await
        .expect("admin logs in");
    assert_eq!(
        send(admin_session.on(c.delete(url(&format!("/api/v1/users/{admin_id}")))))
            .await
            .0,
        409
    );
    // A cookie request that changes state needs the CSRF token.
    let (s, _) = send(
        c.put(url(&format!("/api/v1/users/{agnes_id}")))
            .header("cookie", &admin_session.cookie)
            .json(&json!({"disabled": true})),
    )
    .await;
    assert_eq!(s, 403);
    assert_eq!(
        send(c.get(url("/api/v1/users/4242")).bearer_auth(&admin))
            .await
            .0,
        404
    );

    // ---- flows, numbers, hours ------------------------------------------------------------
    let (s, v) = send(
        c.post(url("/api/v1/flows/validate"))
            .bearer_auth(&admin)
            .json(&json!({"text": "{\n \"Version\": \"2019-10-30\",\n \"Actions\": [\n"})),
    )
    .await;
    assert_eq!((s, v["valid"].as_bool()), (200, Some(false)));
    assert!(
        v["problems"][0]["line"].as_u64().is_some(),
        "a JSON error is placed: {v}"
    );
    let good = json!({
        "Version": "2019-10-30", "StartAction": "greet",
        "Actions": [
            {"Identifier": "greet", "Type": "MessageParticipant", "Parameters": {"Text": "Hello"},
             "Transitions": {"NextAction": "bye", "Errors": [{"NextAction": "bye", "ErrorType": "NoMatchingError"}]}},
            {"Identifier": "bye", "Type": "DisconnectParticipant", "Parameters": {}, "Transitions": {}}
        ]
    });
    let good_text = serde_json::to_string_pretty(&good).unwrap();
    let (s, v) = send(
        c.post(url("/api/v1/flows/validate"))
            .bearer_auth(&admin)
            .json(&json!({"text": good_text})),
    )
    .await;
    assert_eq!((s, v["valid"].as_bool()), (200, Some(true)), "{v}");
    let bad_text = good_text.replacen("\"NextAction\": \"bye\"", "\"NextAction\": \"nowhere\"", 1);
    assert_ne!(bad_text, good_text);
    let (_, v) = send(
        c.post(url("/api/v1/flows/validate"))
            .bearer_auth(&admin)
            .json(&json!({"text": bad_text})),
    )
    .await;
    let p = v["problems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["message"].as_str().unwrap().contains("nowhere"))
        .expect("dangling transition")
        .clone();
    assert_eq!(p["action"], "greet");
    let line = p["line"].as_u64().unwrap() as usize;
    assert!(
        bad_text
            .lines()
            .nth(line - 1)
            .unwrap()
            .contains("\"greet\""),
        "line {line} declares the action"
    );
    let (s, b) = send(
        c.put(url("/api/v1/flows/main"))
            .bearer_auth(&admin)
            .json(&json!({"text": bad_text})),
    )
    .await;
    assert_eq!((s, b["error"].as_str()), (422, Some("invalid_flow")));
    let (s, b) = send(
        c.put(url("/api/v1/flows/main"))
            .bearer_auth(&admin)
            .json(&json!({"text": good_text})),
    )
    .await;
    assert_eq!((s, b["version"].as_i64()), (200, Some(1)));
    assert_eq!(
        send(
            c.put(url("/api/v1/flows/main"))
                .bearer_auth(&admin)
                .json(&json!({"text": good_text}))
        )
        .await
        .1["version"],
        2
    );
    assert_eq!(
        send(
            c.put(url("/api/v1/flows/bad%20name"))
                .bearer_auth(&admin)
                .json(&json!({"text": good_text}))
        )
        .await
        .0,
        400
    );
    let (s, f) = send(c.get(url("/api/v1/flows/main")).bearer_auth(&admin)).await;
    assert_eq!(
        (
            s,
            f["version"].as_i64(),
            f["versions"].as_array().map(Vec::len)
        ),
        (200, Some(2), Some(2))
    );
    assert_eq!(
        send(
            c.put(url("/api/v1/flows/main/current"))
                .bearer_auth(&admin)
                .json(&json!({"version": 1}))
        )
        .await
        .0,
        204
    );
    assert_eq!(
        send(c.get(url("/api/v1/flows/main")).bearer_auth(&admin))
            .await
            .1["version"],
        1
    );
    assert_eq!(
        send(c.get(url("/api/v1/flows/none")).bearer_auth(&admin))
            .await
            .0,
        404
    );

    let (s, r) = send(
        c.post(url("/api/v1/flows/import"))
            .bearer_auth(&admin)
            .json(&json!({"name": "connect", "text": CONNECT_EXPORT, "save": true})),
    )
    .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(
        (r["clean"].as_bool(), r["saved_version"].as_i64()),
        (Some(false), None),
        "an unclean import is not saved"
    );
    let unsupported = r["unsupported"].as_array().unwrap();
    assert_eq!(unsupported.len(), 1, "{r}");
    assert_eq!(unsupported[0]["action_type"], "UpdateContactData");
    assert!(unsupported[0]["line"].as_u64().is_some());
    assert_eq!(
        send(c.get(url("/api/v1/flows/connect")).bearer_auth(&admin))
            .await
            .0,
        404
    );
    let (_, r) = send(
        c.post(url("/api/v1/flows/import"))
            .bearer_auth(&admin)
            .json(&json!({"name": "simple", "text": good_text, "save": true})),
    )
    .await;
    assert_eq!(
        (r["clean"].as_bool(), r["saved_version"].as_i64()),
        (Some(true), Some(1)),
        "{r}"
    );

    assert_eq!(
        send(
            c.put(url("/api/v1/numbers/+18005550100"))
                .bearer_auth(&admin)
                .json(&json!({"flow": "main"}))
        )
        .await
        .0,
        204
    );
    assert_eq!(
        send(
            c.put(url("/api/v1/numbers/18005550100x"))
                .bearer_auth(&admin)
                .json(&json!({"flow": "main"}))
        )
        .await
        .0,
        400
    );
    assert_eq!(
        send(
            c.put(url("/api/v1/numbers/+18005550101"))
                .bearer_auth(&admin)
                .json(&json!({"flow": "nope"}))
        )
        .await
        .0,
        404
    );
    let (_, numbers) = send(c.get(url("/api/v1/numbers")).bearer_auth(&admin)).await;
    assert_eq!(
        numbers
            .as_array()
            .unwrap()
            .iter()
            .map(|n| (n["did"].as_str().unwrap(), n["flow"].as_str().unwrap()))
            .collect::<Vec<_>>(),
        [("+18005550100", "main")]
    );
    let (_, flows) = send(c.get(url("/api/v1/flows")).bearer_auth(&admin)).await;
    let main = flows
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "main")
        .unwrap();
    assert_eq!(
        (
            main["current_version"].as_i64(),
            main["versions"].as_i64(),
            &main["numbers"]
        ),
        (Some(1), Some(2), &json!(["+18005550100"]))
    );
    assert_eq!(
        send(
            c.delete(url("/api/v1/numbers/+18005550100"))
                .bearer_auth(&admin)
        )
        .await
        .0,
        204
    );
    assert_eq!(
        send(
            c.delete(url("/api/v1/numbers/+18005550100"))
                .bearer_auth(&admin)
        )
        .await
        .0,
        404
    );

    let week: Vec<Value> = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
        .iter()
        .map(|d| json!({"day": d, "start": "00:00", "end": "24:00"}))
        .collect();
    let always = json!({"time_zone": "UTC", "weekly": week});
    let (s, h) = send(
        c.put(url("/api/v1/hours/always"))
            .bearer_auth(&admin)
            .json(&always),
    )
    .await;
    assert_eq!(
        (s, h["open_now"].as_bool(), h["config"]["id"].as_str()),
        (200, Some(true), Some("always")),
        "{h}"
    );
    let (s, b) = send(
        c.put(url("/api/v1/hours/mars"))
            .bearer_auth(&admin)
            .json(&json!({"time_zone": "Mars/Olympus", "weekly": []})),
    )
    .await;
    assert!(
        s == 400 && b["message"].as_str().unwrap().contains("Mars/Olympus"),
        "{s} {b}"
    );
    assert_eq!(
        send(
            c.put(url("/api/v1/hours/x"))
                .bearer_auth(&admin)
                .json(&json!({"id": "y", "time_zone": "UTC", "weekly": []}))
        )
        .await
        .0,
        400
    );
    let (_, hours) = send(c.get(url("/api/v1/hours")).bearer_auth(&admin)).await;
    assert_eq!(hours.as_array().unwrap().len(), 1);

    // ---- contacts -------------------------------------------------------------------------
    let (s, list) = send(
        c.get(url("/api/v1/contacts?outcome=queued&from=2026-01-01"))
            .bearer_auth(&supervisor_key),
    )
    .await;
    assert_eq!((s, list), (200, json!([])));
    let resp = c
        .get(url("/api/v1/contacts"))
        .bearer_auth(&admin)
        .header("accept", "text/csv")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    assert!(
        resp.text()
            .await
            .unwrap()
            .starts_with("contact_id,started_at,ended_at,did,customer_number")
    );
    let resp = c
        .get(url("/api/v1/contacts?format=csv"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert!(
        resp.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("contacts.csv")
    );
    let (s, b) = send(
        c.get(url("/api/v1/contacts?from=yesterday"))
            .bearer_auth(&admin),
    )
    .await;
    assert!(
        s == 400 && b["message"].as_str().unwrap().contains("from"),
        "{s} {b}"
    );
    assert_eq!(
        send(
            c.get(url("/api/v1/contacts?outcome=won"))
                .bearer_auth(&admin)
        )
        .await
        .0,
        400
    );
    assert_eq!(
        send(
            c.get(url("/api/v1/contacts?colour=red"))
                .bearer_auth(&admin)
        )
        .await
        .0,
        400
    );

    // ---- roles: 401 without a credential, 403 for the wrong role (keys and sessions) --------
    let admin_only: Vec<(reqwest::Method, &str)> = vec![
        (reqwest::Method::GET, "/api/v1/apikeys"),
        (reqwest::Method::POST, "/api/v1/apikeys"),
        (reqwest::Method::DELETE, "/api/v1/apikeys/1"),
        (reqwest::Method::GET, "/api/v1/users"),
        (reqwest::Method::POST, "/api/v1/users"),
        (reqwest::Method::GET, "/api/v1/users/1"),
        (reqwest::Method::PUT, "/api/v1/users/1"),
        (reqwest::Method::DELETE, "/api/v1/users/1"),
        (reqwest::Method::GET, "/api/v1/flows"),
        (reqwest::Method::GET, "/api/v1/flows/main"),
        (reqwest::Method::PUT, "/api/v1/flows/main"),
        (reqwest::Method::PUT, "/api/v1/flows/main/current"),
        (reqwest::Method::POST, "/api/v1/flows/validate"),
        (reqwest::Method::POST, "/api/v1/flows/import"),
        (reqwest::Method::GET, "/api/v1/numbers"),
        (reqwest::Method::PUT, "/api/v1/numbers/+18005550100"),
        (reqwest::Method::DELETE, "/api/v1/numbers/+18005550100"),
        (reqwest::Method::GET, "/api/v1/hours"),
        (reqwest::Method::PUT, "/api/v1/hours/always"),
    ];
    let body = json!({"name": "x", "role": "admin", "username": "x", "password": "xxxxxxxxx", "text": "{}", "flow": "main", "version": 1, "time_zone": "UTC", "weekly": []});
    for (m, p) in &admin_only {
        let (s, _) = send(c.request(m.clone(), url(p)).json(&body)).await;
        assert_eq!(s, 401, "{m} {p} without a credential");
        for k in [&agent_key, &supervisor_key] {
            let (s, b) = send(c.request(m.clone(), url(p)).bearer_auth(k).json(&body)).await;
            assert_eq!(
                (s, b["error"].as_str()),
                (403, Some("forbidden")),
                "{m} {p} with a non-admin key"
            );
        }
        let (s, _) = send(agent_session.on(c.request(m.clone(), url(p))).json(&body)).await;
        assert_eq!(s, 403, "{m} {p} as a logged-in agent");
    }
    assert_eq!(
        send(c.get(url("/api/v1/contacts")).bearer_auth(&agent_key))
            .await
            .0,
        403
    );
    assert_eq!(
        send(agent_session.on(c.get(url("/api/v1/contacts"))))
            .await
            .0,
        403
    );
    assert_eq!(send(c.get(url("/api/v1/contacts"))).await.0, 401);
    // Pages: an agent gets 403, nobody gets in without a session, the admin gets the page.
    for page in [
        "/admin/apikeys",
        "/admin/users",
        "/admin/flows",
        "/contacts",
    ] {
        let (s, _) = send(agent_session.on(c.get(url(page)))).await;
        assert_eq!(s, 403, "{page} as an agent");
        let resp = c.get(url(page)).send().await.unwrap();
        assert_eq!(resp.status(), 303, "{page} without a session");
        let (s, html) = send(admin_session.on(c.get(url(page)))).await;
        assert_eq!(s, 200, "{page} as the admin");
        assert!(html.as_str().unwrap().contains("<main>"));
    }
    let sam = login(&c, &app, "sam", "super-pass-1").await.unwrap();
    assert_eq!(
        send(sam.on(c.get(url("/contacts")))).await.0,
        200,
        "supervisors search contacts"
    );
    assert_eq!(send(sam.on(c.get(url("/admin/users")))).await.0, 403);

    // Disabling a user ends their session at once; deleting removes them.
    assert_eq!(
        send(
            c.put(url(&format!("/api/v1/users/{agnes_id}")))
                .bearer_auth(&admin)
                .json(&json!({"disabled": true}))
        )
        .await
        .0,
        200
    );
    assert_eq!(
        send(agent_session.on(c.get(url("/api/v1/whoami")))).await.0,
        401
    );
    assert_eq!(
        login(&c, &app, "agnes", "agent-pass-2").await.err(),
        Some(401)
    );
    assert_eq!(
        send(
            c.delete(url(&format!("/api/v1/users/{agnes_id}")))
                .bearer_auth(&admin)
        )
        .await
        .0,
        204
    );
    assert_eq!(
        send(
            c.get(url(&format!("/api/v1/users/{agnes_id}")))
                .bearer_auth(&admin)
        )
        .await
        .0,
        404
    );

    // ---- the OpenAPI document lists every new route --------------------------------------
    let (_, doc) = send(c.get(url("/api/openapi.json"))).await;
    for (p, methods) in [
        ("/api/v1/apikeys", &["get", "post"][..]),
        ("/api/v1/apikeys/{id}", &["delete"]),
        ("/api/v1/users", &["get", "post"]),
        ("/api/v1/users/{id}", &["get", "put", "delete"]),
        ("/api/v1/flows", &["get"]),
        ("/api/v1/flows/{name}", &["get", "put"]),
        ("/api/v1/flows/{name}/current", &["put"]),
        ("/api/v1/flows/validate", &["post"]),
        ("/api/v1/flows/import", &["post"]),
        ("/api/v1/numbers", &["get"]),
        ("/api/v1/numbers/{did}", &["put", "delete"]),
        ("/api/v1/hours", &["get"]),
        ("/api/v1/hours/{name}", &["put"]),
        ("/api/v1/contacts", &["get"]),
    ] {
        for m in methods {
            assert!(
                doc["paths"][p][m].is_object(),
                "{m} {p} is in the OpenAPI document"
            );
        }
    }
}

/// `GET /api/v1/system` (issue #8's "system health"): an admin sees status, version, uptime,
/// database, draining, the listening addresses, the runtime's figures and live statistics of
/// the queues asked for (an unknown queue is named in its error, not dropped); an agent gets 403;
/// the route is in the OpenAPI document.
#[tokio::test]
async fn system_health_for_admins_only() {
    let dir = tempfile::tempdir().unwrap();
    let admin = api_key(dir.path(), "admin");
    let agent_key = api_key(dir.path(), "agent");
    let app = Appliance::start(dir.path(), &[]);
    let c = http();

    let (s, b) = send(
        c.get(app.url("/api/v1/system?queues=default,no-such-queue"))
            .bearer_auth(&admin),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["status"], "ready", "{b}");
    assert_eq!(b["version"], env!("CARGO_PKG_VERSION"), "{b}");
    assert_eq!(b["backend"], "sqlite", "{b}");
    assert_eq!(b["database"], "ok", "{b}");
    assert_eq!(b["draining"], false, "{b}");
    assert!(b["uptime_s"].is_u64(), "{b}");
    let http_addr = b["listening"]["http"].as_str().unwrap();
    assert!(
        app.url("/").contains(http_addr),
        "{http_addr} is where we reached it"
    );
    assert!(b["listening"]["sip_udp"].is_string(), "{b}");
    assert_eq!(b["runtime"], true, "{b}");
    assert_eq!(b["live_contacts"], 0, "{b}");
    assert!(b["node"].is_string(), "{b}");
    // The configured ACD (default: one queue `default`) with its limits and profiles.
    assert_eq!(b["acd"]["queues"][0]["name"], "default", "{b}");
    assert!(b["acd"]["queues"][0]["strategy"].is_string(), "{b}");
    assert!(b["acd"]["profiles"].is_array(), "{b}");
    // No call yet: the gauge is absent (never set) or 0.
    assert!(
        b["calls_active"].is_null() || b["calls_active"] == 0.0,
        "{b}"
    );
    assert!(
        b["trunks"].as_array().unwrap().is_empty(),
        "no campaigns yet: {b}"
    );
    let queues = b["queues"].as_array().unwrap();
    assert_eq!(queues.len(), 2, "{b}");
    let default = queues.iter().find(|q| q["name"] == "default").unwrap();
    assert_eq!(default["stats"]["waiting"], 0, "{b}");
    assert_eq!(default["stats"]["agents_available"], 0, "{b}");
    let unknown = queues
        .iter()
        .find(|q| q["name"] == "no-such-queue")
        .unwrap();
    assert!(unknown["stats"].is_null(), "{b}");
    assert!(
        unknown["error"].as_str().unwrap().contains("no-such-queue"),
        "{b}"
    );

    let (s, b) = send(c.get(app.url("/api/v1/system")).bearer_auth(&agent_key)).await;
    assert_eq!((s, b["error"].as_str()), (403, Some("forbidden")), "{b}");
    let (s, _) = send(c.get(app.url("/api/v1/system"))).await;
    assert_eq!(s, 401);

    let (_, doc) = send(c.get(app.url("/api/openapi.json"))).await;
    assert!(doc["paths"]["/api/v1/system"]["get"].is_object());
}

/// Issue #6 acceptance 5 through the real appliance: the published Connect export, imported
/// with `allow_unsupported`, is saved (a strict import is not) and a call to its number runs
/// through it (sipp): the contact is recorded against the saved version, and its path shows the
/// unsupported `UpdateContactData` standing in and taking its error branch to the next action.
#[tokio::test]
async fn a_connect_export_saved_with_unsupported_actions_skipped_runs_a_call() {
    const UNSUPPORTED: &str = "3e419d85-af42-40b1-ad34-8c6f5a0b1d43";
    const AFTER_IT: &str = "4f52ae96-b053-41c2-be45-9d7a6b1c2e54";
    const NUMBER: &str = "+18885550142";
    let dir = tempfile::tempdir().unwrap();
    let admin = api_key(dir.path(), "admin");
    let app = Appliance::start(dir.path(), &[]);
    let c = http();

    let (s, r) = send(
        c.post(app.url("/api/v1/flows/import"))
            .bearer_auth(&admin)
            .json(&json!({"name": "connect", "text": CONNECT_EXPORT, "save": true})),
    )
    .await;
    assert_eq!((s, r["saved_version"].as_i64()), (200, None), "{r}");
    let (s, r) = send(c.post(app.url("/api/v1/flows/import")).bearer_auth(&admin).json(
        &json!({"name": "connect", "text": CONNECT_EXPORT, "save": true, "allow_unsupported": true}),
    ))
    .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(
        (r["clean"].as_bool(), r["saved_version"].as_i64()),
        (Some(false), Some(1)),
        "{r}"
    );
    assert_eq!(
        r["unsupported"][0]["action_type"], "UpdateContactData",
        "{r}"
    );
    assert_eq!(r["unsupported"][0]["action"], UNSUPPORTED, "{r}");
    let (s, flows) = send(c.get(app.url("/api/v1/flows")).bearer_auth(&admin)).await;
    assert_eq!(s, 200);
    let listed = flows
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "connect")
        .unwrap_or_else(|| panic!("listed: {flows}"));
    assert_eq!(listed["skips_unsupported"], true, "{listed}");
    let (s, b) = send(
        c.put(app.url(&format!("/api/v1/numbers/{NUMBER}")))
            .bearer_auth(&admin)
            .json(&json!({"flow": "connect"})),
    )
    .await;
    assert_eq!(s, 204, "{b}");

    let work = dir.path().join("caller");
    std::fs::create_dir_all(&work).unwrap();
    let _ = common::sipp_uac(&work, &app.sip_udp, NUMBER, 3000).wait();

    let db = foundation::Db::connect(
        &format!("sqlite://{}/data/dialbridge.db", dir.path().display()),
        1,
    )
    .await
    .unwrap();
    let mut row: Option<(String, Option<i64>, Option<String>, Option<i64>)> = None;
    for _ in 0..150 {
        row = sqlx::query_as(
            "SELECT record, flow_version, outcome, ended_at FROM inbound_contacts WHERE did = $1",
        )
        .bind(NUMBER)
        .fetch_optional(db.pool())
        .await
        .unwrap();
        if row.as_ref().is_some_and(|r| r.3.is_some()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (record, version, outcome, ended) = row.expect("the call is a contact");
    assert!(ended.is_some(), "the contact is closed: {record}");
    assert_eq!(version, Some(1), "it ran the saved version: {record}");
    assert_ne!(
        outcome.as_deref(),
        Some("rejected"),
        "the flow compiled: {record}"
    );
    let record: Value = serde_json::from_str(&record).unwrap();
    let path = record["path"].as_array().cloned().unwrap_or_default();
    let at = path
        .iter()
        .position(|p| p["action"] == UNSUPPORTED)
        .unwrap_or_else(|| panic!("the stand-in is on the path: {record}"));
    assert_eq!(path[at]["action_type"], "UpdateContactData", "{record}");
    assert_eq!(path[at]["result"], "Error:NoMatchingError", "{record}");
    assert_eq!(
        path.get(at + 1).map(|p| &p["action"]),
        Some(&json!(AFTER_IT)),
        "then its error branch: {record}"
    );
}
