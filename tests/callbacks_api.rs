//! `GET /api/v1/callbacks` and `DELETE /api/v1/callbacks/{id}` through the real appliance: the
//! list by state, cancelling a pending callback (once), and the refusals (bad filters, agents).

mod common;

use common::{Appliance, api_key};
use serde_json::Value;

async fn get(c: &reqwest::Client, app: &Appliance, key: &str, path: &str) -> (u16, Value) {
    let r = c.get(app.url(path)).bearer_auth(key).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn supervisors_list_and_cancel_callbacks() {
    let dir = tempfile::tempdir().unwrap();
    let supervisor = api_key(dir.path(), "supervisor");
    let agent = api_key(dir.path(), "agent");
    let app = Appliance::start(dir.path(), &[]);
    let c = reqwest::Client::new();

    // A caller's callback, as a flow stores it (due in an hour, so the runtime leaves it alone).
    let db = foundation::Db::connect(
        &format!("sqlite://{}/data/dialbridge.db", dir.path().display()),
        1,
    )
    .await
    .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    sqlx::query(
        "INSERT INTO inbound_callbacks (contact_id, number, queue, waiting_since, due_at, attempts_left, \
         retry_delay_s, status, created_at, updated_at) VALUES ('contact-cb1', '+13125550123', 'default', $1, $2, 2, 60, 'pending', $1, $1)",
    )
    .bind(now)
    .bind(now + 3_600_000)
    .execute(db.pool())
    .await
    .unwrap();

    let (s, list) = get(&c, &app, &supervisor, "/api/v1/callbacks?status=pending").await;
    assert_eq!(s, 200, "{list}");
    let rows = list.as_array().unwrap();
    assert_eq!(rows.len(), 1, "{list}");
    assert_eq!(rows[0]["number"], "+13125550123");
    assert_eq!(rows[0]["status"], "pending");
    let id = rows[0]["id"].as_i64().unwrap();

    let del = |key: &str| {
        c.delete(app.url(&format!("/api/v1/callbacks/{id}")))
            .bearer_auth(key.to_owned())
            .send()
    };
    assert_eq!(
        del(&agent).await.unwrap().status(),
        403,
        "agents cannot cancel"
    );
    assert_eq!(del(&supervisor).await.unwrap().status(), 204);
    let again = del(&supervisor).await.unwrap();
    assert_eq!(
        again.status(),
        404,
        "a closed callback is not cancelled twice"
    );

    let (_, cancelled) = get(&c, &app, &supervisor, "/api/v1/callbacks?status=cancelled").await;
    assert_eq!(cancelled[0]["id"], id, "{cancelled}");
    assert_eq!(cancelled[0]["outcome"], "cancelled", "{cancelled}");
    let (_, pending) = get(&c, &app, &supervisor, "/api/v1/callbacks?status=pending").await;
    assert_eq!(pending, Value::Array(vec![]));

    let (s, e) = get(&c, &app, &supervisor, "/api/v1/callbacks?status=soon").await;
    assert_eq!(s, 400, "{e}");
    assert!(e.to_string().contains("status"), "{e}");
    let (s, e) = get(&c, &app, &supervisor, "/api/v1/callbacks?limit=0").await;
    assert_eq!(s, 400, "{e}");
    let (s, _) = get(&c, &app, &agent, "/api/v1/callbacks").await;
    assert_eq!(s, 403, "agents do not see the callback list");
}
