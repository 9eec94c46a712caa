//! Outbound webhooks against the real appliance and a real HTTP receiver (axum, in the test):
//! a signed `contact.ended` after a sipp call through a flow; retries with growing gaps and the
//! same delivery id; a delivery that runs out of tries ends `failed` and is re-delivered through
//! the API; and a process killed with deliveries pending delivers each exactly once after its
//! restart.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use common::{Appliance, QUEUE_FLOW, admin_key, route_numbers};
use serde_json::Value;

const SECRET: &str = "test-secret-0123456789";

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Got {
    at: Instant,
    event: String,
    delivery: String,
    attempt: String,
    timestamp: String,
    signature: String,
    body: Vec<u8>,
    answered: u16,
}

/// How the receiver answers: the first `fail_first` tries of each delivery get 500, later ones
/// `then`.
#[derive(Clone)]
struct Receiver {
    got: Arc<Mutex<Vec<Got>>>,
    plan: Arc<Mutex<(u32, u16)>>,
    url: String,
}

impl Receiver {
    async fn start(fail_first: u32, then: u16) -> Receiver {
        let (got, plan, app) = Self::app(fail_first, then);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver { got, plan, url }
    }

    /// The same receiver over HTTPS with this certificate and key (PEM files).
    async fn start_https(fail_first: u32, then: u16, cert: &Path, key: &Path) -> Receiver {
        use tokio_rustls::rustls;
        use tokio_rustls::rustls::pki_types::pem::PemObject;
        use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let chain = CertificateDer::pem_file_iter(cert)
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_file(key).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
        let (got, plan, app) = Self::app(fail_first, then);
        let listener = TlsListener {
            tcp: tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        };
        let url = format!("https://{}/hook", listener.tcp.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver { got, plan, url }
    }

    #[allow(clippy::type_complexity)]
    fn app(
        fail_first: u32,
        then: u16,
    ) -> (Arc<Mutex<Vec<Got>>>, Arc<Mutex<(u32, u16)>>, axum::Router) {
        let got: Arc<Mutex<Vec<Got>>> = Arc::default();
        let plan = Arc::new(Mutex::new((fail_first, then)));
        let (g, p) = (got.clone(), plan.clone());
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |h: HeaderMap, body: axum::body::Bytes| {
                let (got, plan) = (g.clone(), p.clone());
                async move {
                    let s = |k: &str| {
                        h.get(k)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_owned()
                    };
                    let delivery = s("x-dialbridge-delivery");
                    let mut got = got.lock().unwrap();
                    let before = got.iter().filter(|g| g.delivery == delivery).count() as u32;
                    let (fail_first, then) = *plan.lock().unwrap();
                    let answered = if before < fail_first { 500 } else { then };
                    got.push(Got {
                        at: Instant::now(),
                        event: s("x-dialbridge-event"),
                        delivery,
                        attempt: s("x-dialbridge-attempt"),
                        timestamp: s("x-dialbridge-timestamp"),
                        signature: s("x-dialbridge-signature"),
                        body: body.to_vec(),
                        answered,
                    });
                    StatusCode::from_u16(answered).unwrap()
                }
            }),
        );
        (got, plan, app)
    }

    fn got(&self) -> Vec<Got> {
        self.got.lock().unwrap().clone()
    }

    async fn wait_for(&self, what: &str, limit: Duration, f: impl Fn(&[Got]) -> bool) -> Vec<Got> {
        let t0 = Instant::now();
        loop {
            let got = self.got();
            if f(&got) {
                return got;
            }
            assert!(
                t0.elapsed() < limit,
                "{what}: not within {limit:?}; received {got:#?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Hands axum TLS connections (the handshake done in `accept`; a failed one is skipped).
struct TlsListener {
    tcp: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, peer)) = self.tcp.accept().await else {
                continue;
            };
            if let Ok(tls) = self.acceptor.accept(tcp).await {
                return (tls, peer);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

/// A CA and a server certificate it signed for `sans` (openssl's subjectAltName syntax), made
/// with the openssl CLI in `dir`: (CA certificate, server certificate, server key).
fn make_certs(dir: &Path, name: &str, sans: &str) -> (PathBuf, PathBuf, PathBuf) {
    let p = |f: &str| dir.join(format!("{name}-{f}")).display().to_string();
    std::fs::write(
        p("ext.cnf"),
        format!("subjectAltName={sans}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"),
    )
    .unwrap();
    let ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    for args in [
        format!(
            "req -x509 {ec} -keyout {} -out {} -days 2 -subj /CN={name}-test-ca \
             -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign",
            p("ca.key"),
            p("ca.pem")
        ),
        format!(
            "req -new {ec} -keyout {} -out {} -subj /CN=receiver",
            p("server.key"),
            p("server.csr")
        ),
        format!(
            "x509 -req -days 2 -CAcreateserial -in {} -CA {} -CAkey {} -out {} -extfile {}",
            p("server.csr"),
            p("ca.pem"),
            p("ca.key"),
            p("server.pem"),
            p("ext.cnf")
        ),
    ] {
        let out = Command::new("openssl")
            .args(args.split_whitespace())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl {args}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    (
        p("ca.pem").into(),
        p("server.pem").into(),
        p("server.key").into(),
    )
}

/// `dialbridge.toml` in `dir` with one subscription `crm` to `url`.
fn write_config(dir: &std::path::Path, url: &str, events: &str, max_attempts: u32, base_ms: u64) {
    std::fs::write(
        dir.join("dialbridge.toml"),
        format!(
            "[integrations]\npoll_ms = 100\n\n[integrations.webhooks.crm]\nurl = \"{url}\"\nsecret = \"{SECRET}\"\n\
             events = [{events}]\nmax_attempts = {max_attempts}\nbackoff_base_ms = {base_ms}\nbackoff_cap_ms = 60000\ntimeout_ms = 2000\n"
        ),
    )
    .unwrap();
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The receiver's check, done independently of the sender's code path: HMAC-SHA256 (the RFC 4231
/// checked primitive) over "<timestamp>.<body>", compared with the header.
fn signature_ok(g: &Got) -> bool {
    let mut msg = format!("{}.", g.timestamp).into_bytes();
    msg.extend_from_slice(&g.body);
    let mac = web::integrations::webhooks::hmac_sha256(SECRET.as_bytes(), &msg);
    g.signature == format!("sha256={}", hex(&mac))
}

async fn db(dir: &std::path::Path) -> foundation::Db {
    foundation::Db::connect(&format!("sqlite://{}/data/dialbridge.db", dir.display()), 1)
        .await
        .unwrap()
}

/// A number added to the internal do-not-call list (as the dialer's opt-out key does).
async fn add_dnc(db: &foundation::Db, number: &str) {
    let now = now_ms();
    sqlx::query(
        "INSERT INTO dnc_entries (e164, reason, source, added_at) VALUES ($1, 'asked not to be called', 'agent', $2)",
    )
    .bind(number)
    .bind(now)
    .execute(db.pool())
    .await
    .unwrap();
}

async fn deliveries(app: &Appliance, key: &str, status: &str) -> Vec<Value> {
    reqwest::Client::new()
        .get(app.url(&format!("/api/v1/webhooks/deliveries?status={status}")))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// One sipp call to +18005550100 (routed to the queue flow), held a second.
fn call(dir: &Path, app: &Appliance) {
    let status = Command::new("sipp")
        .current_dir(dir)
        .args([
            "-sn",
            "uac",
            "-s",
            "+18005550100",
            "-m",
            "1",
            "-i",
            "127.0.0.1",
            "-p",
            "0",
        ])
        .args(["-nostdin", "-timeout", "20s", "-d", "1000", &app.sip_udp])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "sipp call failed");
}

#[tokio::test]
async fn a_call_through_a_flow_posts_a_signed_contact_ended() {
    if !foundation::testing::require_tool("sipp", "sip-tester") {
        return;
    }
    let rx = Receiver::start(0, 200).await;
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), &rx.url, "\"contact.ended\"", 8, 200);
    let key = admin_key(dir.path());
    let app = Appliance::start(dir.path(), &[]);
    route_numbers(&app, &key, "queue", QUEUE_FLOW, &["+18005550100"]).await;

    call(dir.path(), &app);

    let got = rx
        .wait_for("contact.ended", Duration::from_secs(20), |g| !g.is_empty())
        .await;
    let g = &got[0];
    assert_eq!(g.event, "contact.ended");
    assert_eq!(g.attempt, "1");
    assert!(signature_ok(g), "signature {} does not verify", g.signature);
    let ts: i64 = g.timestamp.parse().unwrap();
    assert!((now_ms() / 1000 - ts).abs() < 60, "timestamp {ts}");
    let body: Value = serde_json::from_slice(&g.body).unwrap();
    assert_eq!(body["event"], "contact.ended");
    assert_eq!(
        body["id"],
        g.delivery.as_str(),
        "the body names its delivery"
    );
    let d = &body["data"];
    assert_eq!(d["did"], "+18005550100");
    assert_eq!(d["channel"], "inbound");
    assert_eq!(d["queue"], "default");
    assert!(!d["contact_id"].as_str().unwrap().is_empty(), "{d}");
    assert!(d["ended_at"].is_string() && d["outcome"].is_string(), "{d}");
    // A tampered body or another secret does not verify.
    let mut tampered = g.clone();
    tampered.body.push(b' ');
    assert!(!signature_ok(&tampered));

    // Delivered once; the API shows it.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(rx.got().len(), 1, "one call, one event");
    let done = deliveries(&app, &key, "delivered").await;
    assert_eq!(done.len(), 1, "{done:#?}");
    assert_eq!(done[0]["delivery_id"], g.delivery.as_str());
    assert_eq!(done[0]["attempts"], 1);
    assert_eq!(done[0]["last_status"], 200);
    // Admins only.
    let agent = common::api_key(dir.path(), "supervisor");
    let r = reqwest::Client::new()
        .get(app.url("/api/v1/webhooks/deliveries"))
        .bearer_auth(&agent)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}

/// An `https://` receiver whose certificate chains to the subscription's `ca_file` gets the
/// signed `contact.ended`; a second subscription to the same receiver with another CA never
/// reaches it, and its delivery records why.
#[tokio::test]
async fn an_https_receiver_with_ca_file_gets_a_signed_contact_ended() {
    if !foundation::testing::require_tool("sipp", "sip-tester")
        || !foundation::testing::require_tool("openssl", "openssl")
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = make_certs(dir.path(), "crm", "DNS:localhost,IP:127.0.0.1");
    let (other_ca, _, _) = make_certs(dir.path(), "other", "DNS:localhost");
    let rx = Receiver::start_https(0, 200, &cert, &key).await;
    write_config(dir.path(), &rx.url, "\"contact.ended\"", 8, 200);
    let mut config = std::fs::read_to_string(dir.path().join("dialbridge.toml")).unwrap();
    config.push_str(&format!(
        "ca_file = {:?}\n\n[integrations.webhooks.untrusted]\nurl = \"{}\"\nca_file = {:?}\n\
         secret = \"{SECRET}\"\nevents = [\"contact.ended\"]\nmax_attempts = 2\nbackoff_base_ms = 100\n",
        ca.display().to_string(),
        rx.url,
        other_ca.display().to_string()
    ));
    std::fs::write(dir.path().join("dialbridge.toml"), config).unwrap();
    let key = admin_key(dir.path());
    let app = Appliance::start(dir.path(), &[]);
    route_numbers(&app, &key, "queue", QUEUE_FLOW, &["+18005550100"]).await;
    call(dir.path(), &app);

    let got = rx
        .wait_for("contact.ended over https", Duration::from_secs(20), |g| {
            !g.is_empty()
        })
        .await;
    let g = &got[0];
    assert_eq!(
        (g.event.as_str(), g.attempt.as_str()),
        ("contact.ended", "1")
    );
    assert!(signature_ok(g), "signature {} does not verify", g.signature);
    let body: Value = serde_json::from_slice(&g.body).unwrap();
    assert_eq!(body["id"], g.delivery.as_str());
    assert_eq!(body["data"]["did"], "+18005550100");

    // The untrusted subscription: two tries, both refused in the handshake, then `failed`.
    let t0 = Instant::now();
    let failed = loop {
        let failed = deliveries(&app, &key, "failed").await;
        if !failed.is_empty() {
            break failed;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "the untrusted delivery did not end failed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(failed[0]["subscription"], "untrusted");
    assert_eq!(failed[0]["attempts"], 2);
    let error = failed[0]["last_error"].as_str().unwrap_or_default();
    assert!(
        error.contains("TLS handshake") && error.contains("certificate is not trusted"),
        "{error}"
    );
    let done = deliveries(&app, &key, "delivered").await;
    assert_eq!(done.len(), 1, "{done:#?}");
    assert_eq!(done[0]["subscription"], "crm");
    assert_eq!(
        rx.got().len(),
        1,
        "only the trusted subscription reached the receiver"
    );
}

#[tokio::test]
async fn failed_tries_are_retried_with_growing_gaps_under_the_same_delivery_id() {
    let rx = Receiver::start(2, 200).await;
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), &rx.url, "\"lead.dnc\"", 5, 1000);
    let key = admin_key(dir.path());
    let app = Appliance::start(dir.path(), &[]);
    let db = db(dir.path()).await;
    add_dnc(&db, "+13125550101").await;

    let got = rx
        .wait_for("three tries", Duration::from_secs(20), |g| {
            g.iter().any(|g| g.answered == 200)
        })
        .await;
    assert_eq!(got.len(), 3, "{got:#?}");
    assert!(
        got.iter().all(|g| g.delivery == got[0].delivery),
        "one delivery id"
    );
    assert_eq!(
        got.iter().map(|g| g.attempt.as_str()).collect::<Vec<_>>(),
        ["1", "2", "3"]
    );
    assert!(got.iter().all(signature_ok));
    let bodies: Vec<&[u8]> = got.iter().map(|g| g.body.as_slice()).collect();
    assert!(
        bodies.iter().all(|b| *b == bodies[0]),
        "the body does not change"
    );
    let gap1 = got[1].at - got[0].at;
    let gap2 = got[2].at - got[1].at;
    eprintln!("retry gaps: {gap1:?}, then {gap2:?}");
    // 1 s less up to 20 % jitter, then 2 s less up to 20 %.
    assert!(gap1 >= Duration::from_millis(800), "first gap {gap1:?}");
    assert!(gap2 > gap1, "gaps grow: {gap1:?} then {gap2:?}");
    let body: Value = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(body["data"]["number"], "+13125550101");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(rx.got().len(), 3, "nothing after the 200");
    let done = deliveries(&app, &key, "delivered").await;
    assert_eq!(done.len(), 1);
    assert_eq!(done[0]["attempts"], 3);
}

#[tokio::test]
async fn a_receiver_that_always_fails_ends_failed_and_can_be_redelivered() {
    let rx = Receiver::start(u32::MAX, 200).await;
    let dir = tempfile::tempdir().unwrap();
    write_config(
        dir.path(),
        &rx.url,
        "\"lead.dnc\", \"contact.ended\"",
        3,
        100,
    );
    let key = admin_key(dir.path());
    let app = Appliance::start(dir.path(), &[]);
    let db = db(dir.path()).await;
    add_dnc(&db, "+13125550102").await;

    let c = reqwest::Client::new();
    let t0 = Instant::now();
    let failed = loop {
        let f = deliveries(&app, &key, "failed").await;
        if !f.is_empty() {
            break f;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "no failed delivery; received {:#?}",
            rx.got()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(failed.len(), 1);
    let f = &failed[0];
    assert_eq!(f["attempts"], 3);
    assert_eq!(f["last_status"], 500);
    assert_eq!(f["last_error"], "HTTP 500");
    assert_eq!(rx.got().len(), 3, "max_attempts tries, no more");
    assert!(deliveries(&app, &key, "pending").await.is_empty());

    // The receiver is fixed; an admin sends it again, with the same delivery id.
    rx.plan.lock().unwrap().0 = 0;
    let id = f["delivery_id"].as_str().unwrap();
    let r = c
        .post(app.url(&format!("/api/v1/webhooks/deliveries/{id}/redeliver")))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let got = rx
        .wait_for("redelivery", Duration::from_secs(10), |g| {
            g.iter().any(|g| g.answered == 200)
        })
        .await;
    assert_eq!(got.last().unwrap().delivery, id);
    assert_eq!(got.last().unwrap().attempt, "1", "tries count again from 1");
    let t0 = Instant::now();
    while deliveries(&app, &key, "delivered").await.is_empty() {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "not marked delivered"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = c
        .post(app.url("/api/v1/webhooks/deliveries/whd_nope/redeliver"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn pending_deliveries_survive_a_kill_and_are_delivered_once_after_restart() {
    let rx = Receiver::start(u32::MAX, 200).await;
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), &rx.url, "\"lead.dnc\"", 8, 300);
    let key = admin_key(dir.path());
    let mut app = Appliance::start(dir.path(), &[]);
    let db = db(dir.path()).await;
    let numbers = ["+13125550111", "+13125550112", "+13125550113"];
    for n in numbers {
        add_dnc(&db, n).await;
    }
    // Each is tried (and refused) at least once, so all three are queued and pending.
    rx.wait_for("first tries", Duration::from_secs(20), |g| {
        g.iter()
            .map(|g| g.delivery.as_str())
            .collect::<std::collections::HashSet<_>>()
            .len()
            == 3
    })
    .await;
    assert_eq!(deliveries(&app, &key, "pending").await.len(), 3);
    app.child.kill().unwrap();
    app.child.wait().unwrap();
    db.close().await;

    // The receiver works again; the restarted appliance delivers each exactly once.
    rx.plan.lock().unwrap().0 = 0;
    let before = rx.got().len();
    let app = Appliance::start(dir.path(), &[]);
    let got = rx
        .wait_for("deliveries after restart", Duration::from_secs(20), |g| {
            g.iter().filter(|g| g.answered == 200).count() >= 3
        })
        .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let got_all = rx.got();
    let mut ok: HashMap<&str, usize> = HashMap::new();
    for g in got_all.iter().filter(|g| g.answered == 200) {
        *ok.entry(g.delivery.as_str()).or_default() += 1;
    }
    assert_eq!(ok.len(), 3, "{got:#?}");
    assert!(
        ok.values().all(|n| *n == 1),
        "each delivered exactly once: {ok:?}"
    );
    assert!(
        got_all[before..].iter().all(|g| g.answered == 200),
        "after the restart only successful tries"
    );
    let numbers_got: std::collections::BTreeSet<String> = got_all[before..]
        .iter()
        .map(|g| {
            serde_json::from_slice::<Value>(&g.body).unwrap()["data"]["number"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(numbers_got, numbers.iter().map(|s| s.to_string()).collect());
    assert_eq!(deliveries(&app, &key, "delivered").await.len(), 3);
    assert!(deliveries(&app, &key, "pending").await.is_empty());
}
