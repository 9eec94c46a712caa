//! `dialbridge serve`: opens the database, binds the listeners, runs until SIGTERM/SIGINT, drains.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use foundation::clock::{DbClock, SystemClock};
use foundation::lifecycle::{DrainOutcome, Lifecycle};
use foundation::{Backend, Db, SharedClock, accounts};
use tracing::{info, warn};

use crate::config::{Config, LogFormat};

/// How long work that was told to stop gets to write its final records.
const STOP_GRACE: Duration = Duration::from_secs(2);
/// After that, how long the call records and the HTTP server get (together) to finish: with the
/// default 5 s drain the process exits within 5 + 2 + 2 = 9 s of SIGTERM.
const CLOSE_GRACE: Duration = Duration::from_secs(2);
const DB_CLOCK_SYNC: Duration = Duration::from_secs(30);

/// Changes the log filter of the running process (configuration reload).
pub type SetLogLevel = Box<dyn Fn(&str) -> anyhow::Result<()> + Send + Sync>;

pub fn init_logging(cfg: &Config) -> SetLogLevel {
    use std::io::IsTerminal;
    let filter =
        tracing_subscriber::EnvFilter::try_new(&cfg.log.level).expect("validated with the config");
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    macro_rules! install {
        ($builder:expr) => {{
            let builder = $builder.with_filter_reloading();
            let handle = builder.reload_handle();
            builder.init();
            Box::new(move |level: &str| {
                handle.reload(tracing_subscriber::EnvFilter::try_new(level)?)?;
                Ok(())
            })
        }};
    }
    match cfg.log.format {
        LogFormat::Text => install!(builder),
        LogFormat::Json => install!(builder.json().flatten_event(true)),
    }
}

pub async fn open_database(cfg: &Config) -> anyhow::Result<Db> {
    let url = cfg.database_url();
    if Backend::from_url(&url)? == Backend::Sqlite {
        std::fs::create_dir_all(&cfg.data_dir).with_context(|| {
            format!(
                "cannot create the data directory {}",
                cfg.data_dir.display()
            )
        })?;
    }
    Db::connect(&url, cfg.database.max_connections).await
}

pub async fn run(
    cfg: Config,
    file: Option<PathBuf>,
    set_log_level: SetLogLevel,
    demo: bool,
) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    // Handlers first: a SIGTERM that arrives right after the listening line must drain, not kill.
    let shutdown = shutdown_signal()?;
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("installing the SIGHUP handler")?;
    info!(version = env!("CARGO_PKG_VERSION"), config = ?file, "starting dialbridge");
    let _data_dir_lock = crate::backup::lock_data_dir(&cfg)?;
    let db = open_database(&cfg).await?;
    db.migrate().await?;
    let clock = clock_for(&db).await?;

    let admin_password = std::env::var("DIALBRIDGE_ADMIN_PASSWORD")
        .ok()
        .filter(|p| !p.is_empty());
    if let Some(first) =
        accounts::ensure_first_admin(&db, clock.now_ms(), admin_password.as_deref()).await?
    {
        match first.generated_password {
            Some(p) => {
                warn!(username = "admin", password = %p, "first run: created the admin user with this generated password; it is shown only once")
            }
            None => info!(
                username = "admin",
                "first run: created the admin user with the password from DIALBRIDGE_ADMIN_PASSWORD"
            ),
        }
    }

    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .context("installing the metrics recorder")?;
    metrics::gauge!("dialbridge_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    metrics::gauge!("dialbridge_up").set(1.0);

    let lifecycle = Lifecycle::new();
    // Calls are answered by the contact runtime (a flow), not by the SIP layer.
    let sip_users: SipUsers = Arc::new(std::sync::RwLock::new(accounts::sip_ha1_table(&db).await?));
    tokio::spawn(refresh_sip_users(db.clone(), sip_users.clone()));
    let sip_options = telephony::sip::listener::SipOptions {
        policy: Some(sip_policy(&cfg, &sip_users)),
        auto_answer: None,
        tls: cfg.sip_tls()?,
        ..Default::default()
    };
    let sip =
        telephony::sip::listener::start_with(&cfg.telephony(), sip_options, lifecycle.clone())
            .await?;
    let http = tokio::net::TcpListener::bind(cfg.http.listen)
        .await
        .with_context(|| format!("cannot bind HTTP on {}", cfg.http.listen))?;
    let listening = web::Listening {
        http: http.local_addr()?,
        sip_udp: sip.udp_addr,
        sip_tcp: sip.tcp_addr,
        rtp_ports: format!("{}-{}", cfg.rtp.port_min, cfg.rtp.port_max),
        https: !cfg.http.tls_cert.is_empty(),
        sip_tls: sip.tls_addr,
    };
    let node = cfg.node();
    let interrupted = telephony::cdr::close_interrupted(&db, clock.now_ms(), &node).await?;
    if interrupted > 0 {
        warn!(calls = interrupted, node = %node, "closed call records left open by the last stop as interrupted");
    }
    let cdr_stop = tokio_util::sync::CancellationToken::new();
    let cdr = tokio::spawn(telephony::cdr::run(
        db.clone(),
        clock.clone(),
        sip.handle.clone(),
        node.clone(),
        cdr_stop.clone(),
    ));
    let (runtime, calls) = start_runtime(&cfg, &db, &clock, &sip).await?;
    // Webhooks to the CRM (the outbox of final records) and the recordings' retention sweeper.
    web::integrations::start(
        db.clone(),
        clock.clone(),
        node.clone(),
        cfg.integrations.clone(),
        cfg.recordings.clone(),
    );
    // The browser softphone's WebRTC gateway: the runtime calls agents' browsers through it.
    let softphone = web::softphone::Gateway::start(web::softphone::GatewayConfig {
        webrtc: telephony::webrtc::WebRtcConfig::on(webrtc_ip(&cfg, &listening)),
        rtp_ports: Some((cfg.rtp.port_min, cfg.rtp.port_max)),
        appliance_sip: Some(sip.udp_addr),
    })
    .await?;
    tokio::spawn(crate::gauges::run(db.clone(), runtime.clone()));
    // PostgreSQL: agents are published to, and reached on, the other nodes (issue #9).
    let cluster =
        crate::agents_port::start_cluster(&cfg, &db, &clock, &runtime, sip.udp_addr).await?;
    let agents: Arc<dyn dialer::agents::AgentPort> =
        crate::agents_port::RuntimeAgents::start(runtime.clone(), cluster);
    let flows: Arc<dyn dialer::flows::FlowPort> =
        crate::flow_port::RuntimeFlows::new(runtime.clone());
    let dialer = dialer::runner::start_with(
        db.clone(),
        clock.clone(),
        calls.clone(),
        agents.clone(),
        Some(flows.clone()),
        dialer::runner::RunnerConfig::new(&node),
    )
    .await?;
    let single = dialer::single::Dialer {
        db: db.clone(),
        clock: clock.clone(),
        calls,
        agents,
        flows: Some(flows),
        node: node.clone(),
    };
    let outbound = Arc::new(web::outbound::Outbound::new(
        single,
        cfg.dialer.single_call_defaults()?,
        &cfg.dialer.region,
    ));
    if dialer.recovery != Default::default() {
        warn!(recovery = ?dialer.recovery, "dial attempts left open by the last stop were closed as interrupted");
    }
    if demo {
        crate::demo::start(&cfg, &db, &clock, &runtime, &lifecycle).await?;
    }
    tokio::spawn(bridge::lease::reaper_loop(
        db.clone(),
        clock.clone(),
        Duration::from_secs(cfg.bridge.reaper_interval_s),
    ));
    let state = web::AppState {
        db: db.clone(),
        clock,
        uploads_dir: cfg.data_dir.join("uploads"),
        postgres_url: (db.backend() == Backend::Postgres).then(|| cfg.database_url()),
        keys: Arc::new(web::auth::KeyGate::new(
            cfg.api.rate_limit_per_s,
            cfg.api.rate_limit_burst,
        )),
        lifecycle: lifecycle.clone(),
        listening: Arc::new(listening.clone()),
        render_metrics: Arc::new(move || recorder.render()),
        runtime: Some(runtime.clone()),
        outbound: Some(outbound),
        softphone: Some(softphone),
    };
    let http_stop = tokio_util::sync::CancellationToken::new();
    let tls = match (cfg.http.tls_cert.is_empty(), cfg.http.tls_key.is_empty()) {
        (false, false) => Some(crate::tls::server_config(
            &cfg.http.tls_cert,
            &cfg.http.tls_key,
        )?),
        _ => None,
    };
    let app = web::app(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    let server = tokio::spawn({
        let stop = http_stop.clone();
        async move {
            match tls {
                Some(config) => {
                    // `tap_io` only for axum's `ConnectInfo<SocketAddr>` impl on tapped listeners.
                    use axum::serve::ListenerExt;
                    axum::serve(
                        crate::tls::TlsListener::new(http, config)?.tap_io(|_| {}),
                        app,
                    )
                    .with_graceful_shutdown(async move { stop.cancelled().await })
                    .await
                }
                None => {
                    axum::serve(http, app)
                        .with_graceful_shutdown(async move { stop.cancelled().await })
                        .await
                }
            }
        }
    });
    info!(
        event = "listening",
        http = %listening.http,
        https = listening.https,
        sip_udp = %listening.sip_udp,
        sip_tcp = %listening.sip_tcp,
        sip_tls = %sip.tls_addr.map(|a| a.to_string()).unwrap_or_default(),
        rtp_ports = %listening.rtp_ports,
        backend = db.backend().name(),
        startup_ms = started.elapsed().as_millis() as u64,
        "listening"
    );

    let mut reloader = crate::reload::Reloader {
        file,
        current: cfg.clone(),
        set_log_level,
        sip: sip.handle.clone(),
        sip_users,
        runtime: runtime.clone(),
    };
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            _ = hangup.recv() => {
                info!("SIGHUP received: reloading the configuration");
                reloader.reload().await;
            }
        }
    }
    let drain = Duration::from_secs(cfg.shutdown.drain_s);
    info!(
        drain_s = cfg.shutdown.drain_s,
        "shutting down: refusing new work, draining calls in progress"
    );
    // The dialer places no new call from now; its calls and the rest drain together.
    let (outcome, _) = tokio::join!(lifecycle.drain(drain, STOP_GRACE), dialer.stop(drain));
    if outcome == DrainOutcome::Stopped {
        warn!("drain time ran out: remaining work was ended and recorded as interrupted");
    }
    // Every call has ended by now and its hangup event is sent: write those records and close
    // the HTTP connections, side by side.
    cdr_stop.cancel();
    http_stop.cancel();
    let (records, http) = tokio::join!(
        tokio::time::timeout(CLOSE_GRACE, cdr),
        tokio::time::timeout(CLOSE_GRACE, server)
    );
    if records.is_err() {
        warn!(
            "call records still being written after the close grace; the next start closes them as interrupted"
        );
    }
    match http {
        Ok(Ok(Err(e))) => warn!(error = %e, "HTTP server ended with an error"),
        Err(_) => warn!("HTTP connections still open after shutdown; closing them"),
        _ => {}
    }
    db.close().await;
    info!("stopped");
    Ok(())
}

/// Call control over the SIP layer, and the contact runtime taking every inbound call: the
/// migration router, bridge arrivals, the number's flow, the ACD and agents.
async fn start_runtime(
    cfg: &Config,
    db: &Db,
    clock: &SharedClock,
    sip: &telephony::sip::listener::SipListeners,
) -> anyhow::Result<(inbound::runtime::Runtime, telephony::control::Calls)> {
    let media_ip = media_bind_ip(&cfg.sip.advertised_address, sip.udp_addr.ip());
    let inactivity = (cfg.rtp.inactivity_timeout_s > 0)
        .then(|| Duration::from_secs(cfg.rtp.inactivity_timeout_s));
    let control = telephony::control::ControlConfig {
        media_ip,
        inactivity_timeout: inactivity,
        ..Default::default()
    };
    let (calls, incoming) = telephony::control::Calls::start(sip.handle.clone(), control);
    let mut webhooks = inbound::webhook::WebhookTargets::new();
    for (name, url) in &cfg.inbound.webhooks {
        webhooks.register(name, url);
    }
    let rc = inbound::runtime::RuntimeConfig {
        acd: cfg.inbound.acd_config()?,
        webhooks,
        prompt_dir: cfg.data_dir.join("prompts"),
        tts_cache_dir: cfg.data_dir.join("tts"),
        tts_voice: cfg.inbound.tts_voice.clone(),
        recording_dir: cfg.data_dir.join("recordings"),
        legacy: cfg.bridge.legacy.trunk()?,
        unknown_number_code: cfg.inbound.unknown_number_code,
        node: cfg.node(),
        // Callbacks are dialled through the outbound trunk of single calls.
        callback_trunk: telephony::sip::call::Trunk::for_uri(&cfg.dialer.trunk),
        ..Default::default()
    };
    let runtime =
        inbound::runtime::Runtime::start(db.clone(), clock.clone(), calls.clone(), incoming, rc)
            .await?;
    Ok((runtime, calls))
}

/// Where RTP sockets bind. The advertised address goes into SDP `c=` either way; sockets bind to
/// it only when it is an address of this machine. Behind NAT it is the public address, which no
/// local socket can bind, so media binds where the SIP listener does.
fn media_bind_ip(advertised: &str, sip_ip: std::net::IpAddr) -> std::net::IpAddr {
    match advertised.parse::<std::net::IpAddr>() {
        Ok(ip) if std::net::UdpSocket::bind((ip, 0)).is_ok() => ip,
        Ok(ip) => {
            info!(advertised = %ip, bind = %sip_ip, "the advertised address is not local (NAT): RTP binds to the SIP listener's address");
            sip_ip
        }
        Err(_) => sip_ip,
    }
}

/// The SIP credentials of users' phones (username → digest HA1), refreshed from the database.
pub type SipUsers = Arc<std::sync::RwLock<std::collections::HashMap<String, String>>>;

/// How often the registrar's credentials are re-read (a new agent phone registers within this).
const SIP_USERS_REFRESH: Duration = Duration::from_secs(5);

/// Where browsers' WebRTC legs bind: the HTTP listener's address (browsers reach the console
/// there), else the advertised SIP address, else loopback.
fn webrtc_ip(cfg: &Config, listening: &web::Listening) -> std::net::IpAddr {
    let http = listening.http.ip();
    if !http.is_unspecified() {
        return http;
    }
    cfg.sip
        .advertised_address
        .parse()
        .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST))
}

/// Who may call in and register: the configured trunks, and users' phones with SIP credentials.
pub fn sip_policy(cfg: &Config, users: &SipUsers) -> telephony::sip::registrar::InboundPolicy {
    let users = users.clone();
    telephony::sip::registrar::InboundPolicy {
        trusted: cfg.sip.trusted_addresses.clone(),
        realm: cfg.sip.realm.clone(),
        users: Arc::new(move |name: &str| {
            let table = users.read().expect("sip users");
            table
                .get(name)
                .map(|ha1| format!("{}{ha1}", telephony::sip::digest::HA1_PREFIX))
        }),
        expires: (60, 3600),
    }
}

/// Keeps `users` equal to the database's table.
async fn refresh_sip_users(db: Db, users: SipUsers) {
    loop {
        match accounts::sip_ha1_table(&db).await {
            Ok(table) => *users.write().expect("sip users") = table,
            Err(e) => warn!(error = %e, "could not read SIP credentials; keeping the last ones"),
        }
        tokio::time::sleep(SIP_USERS_REFRESH).await;
    }
}

/// SQLite: the machine's clock. PostgreSQL: the database server's clock, so that nodes agree.
async fn clock_for(db: &Db) -> anyhow::Result<SharedClock> {
    match db.backend() {
        Backend::Sqlite => Ok(Arc::new(SystemClock)),
        Backend::Postgres => {
            let clock = Arc::new(DbClock::new());
            let offset = clock.sync(db).await?;
            info!(offset_ms = offset, "following the database server's clock");
            let (c, db) = (clock.clone(), db.clone());
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(DB_CLOCK_SYNC).await;
                    if let Err(e) = c.sync(&db).await {
                        warn!(error = %e, "could not read the database clock; keeping the last offset");
                    }
                }
            });
            Ok(clock)
        }
    }
}

fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => info!("SIGTERM received"),
            _ = int.recv() => info!("SIGINT received"),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::media_bind_ip;

    #[test]
    fn media_binds_the_advertised_address_only_when_it_is_local() {
        let sip: std::net::IpAddr = "127.0.0.1".parse().unwrap();
        // A local address (any of 127/8 on Linux) is bound as advertised.
        assert_eq!(
            media_bind_ip("127.0.0.2", sip),
            "127.0.0.2".parse::<std::net::IpAddr>().unwrap()
        );
        // A public address behind NAT (TEST-NET-3, on no interface here): bind where SIP listens.
        assert_eq!(media_bind_ip("203.0.113.7", sip), sip);
        // A host name is not an address to bind.
        assert_eq!(media_bind_ip("pbx.example.com", sip), sip);
    }
}
