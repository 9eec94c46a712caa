//! `dialbridge serve --demo`: a newcomer sees calls flowing within a minute, without a SIP trunk.
//!
//! On top of the normal appliance this module
//! 1. starts the carrier simulator (`telephony::carrier_sim`) on loopback as the trunk, with its
//!    own RTP range next to (never inside) `rtp.port_min..=port_max`;
//! 2. seeds, idempotently (a second `--demo` start on the same data finds everything by name and
//!    creates nothing twice): the users `manager`, `supervisor`, `agent1..agent5` with demo
//!    passwords printed in the log, a list of 500 generated US leads, an *informational*
//!    predictive campaign `demo` over it with a 00:00–24:00 local calling window (allowed for
//!    informational calls, so the demo dials whenever it runs), started; and an inbound flow
//!    (menu → queue) on the demo number [`DEMO_NUMBER`];
//! 3. logs [`SIM_AGENTS`] simulated agents in with nailed-up legs to the simulator's agent phones
//!    (which send quiet line noise all along, so RTP inactivity does not end idle legs), and logs
//!    one in again, after a short pause, when its leg drops; when one of their contacts ends (the
//!    simulated customer hangs up after its talk time) it records a disposition after a short
//!    wrap-up, which ends after-contact work;
//! 4. logs one line a minute with the campaign's figures and the agents by state.
//!
//! Nothing here is a shortcut around the product: the campaign, leads, flow and users are the
//! same rows the console and API create, and the calls go through SIP and RTP on loopback.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use dialer::campaign::{self, Action, CampaignConfig, CampaignState};
use foundation::accounts::{self, Role};
use foundation::lifecycle::Lifecycle;
use foundation::{Db, SharedClock};
use inbound::runtime::{AgentEndpoint, AgentMode, Login, Runtime, RuntimeEvent};
use sqlx::Row;
use tracing::{info, warn};

use crate::config::Config;

/// The campaign the demo runs.
pub const CAMPAIGN: &str = "demo";
/// The lead list it dials.
pub const LIST: &str = "demo-leads";
/// The inbound flow and the number that runs it.
pub const FLOW: &str = "demo-menu";
pub const DEMO_NUMBER: &str = "+18005550100";
/// Agents logged in as simulated phones (`agent5` is left for a person in the browser).
pub const SIM_AGENTS: usize = 4;
/// Leads in the generated list.
pub const LEADS: usize = 500;
/// How long a simulated customer talks before hanging up, and a simulated agent's wrap-up.
const TALK: Duration = Duration::from_secs(20);
const WRAP_UP: Duration = Duration::from_secs(3);
/// The pause before a simulated agent whose leg dropped logs in again; doubled (up to
/// [`RELOGIN_MAX`]) while its legs keep dropping within [`RELOGIN_STABLE`] of a login.
const RELOGIN_FIRST: Duration = Duration::from_secs(2);
const RELOGIN_MAX: Duration = Duration::from_secs(60);
const RELOGIN_STABLE: Duration = Duration::from_secs(30);
const FIGURES_EVERY: Duration = Duration::from_secs(60);

/// The demo's users and their passwords (a demo: known passwords, printed in the log).
const USERS: [(&str, Role, &str); 7] = [
    ("manager", Role::CampaignManager, "demo-manager"),
    ("supervisor", Role::Supervisor, "demo-supervisor"),
    ("agent1", Role::Agent, "demo-agent1"),
    ("agent2", Role::Agent, "demo-agent2"),
    ("agent3", Role::Agent, "demo-agent3"),
    ("agent4", Role::Agent, "demo-agent4"),
    ("agent5", Role::Agent, "demo-agent5"),
];

/// Area codes and a ZIP code in each (four US time zones); 100 fictional 555-01xx numbers each.
const AREAS: [(u16, &str, &str); 5] = [
    (212, "10001", "NY"),
    (312, "60601", "IL"),
    (713, "77002", "TX"),
    (303, "80202", "CO"),
    (415, "94103", "CA"),
];

const MENU_FLOW: &str = r#"{"Version": "2019-10-30", "StartAction": "menu", "Actions": [
  {"Identifier": "menu", "Type": "GetParticipantInput",
   "Parameters": {"Text": "Welcome to the Dialbridge demo. Press 1 for sales or 2 for support.", "InputTimeLimitSeconds": "5"},
   "Transitions": {"Conditions": [
       {"NextAction": "q", "Condition": {"Operator": "Equals", "Operands": ["1"]}},
       {"NextAction": "q", "Condition": {"Operator": "Equals", "Operands": ["2"]}}],
     "Errors": [{"NextAction": "q", "ErrorType": "InputTimeLimitExceeded"},
                {"NextAction": "q", "ErrorType": "NoMatchingCondition"}]}},
  {"Identifier": "q", "Type": "UpdateContactTargetQueue", "Parameters": {"QueueId": "QUEUE"},
   "Transitions": {"NextAction": "t", "Errors": [{"NextAction": "bye", "ErrorType": "NoMatchingError"}]}},
  {"Identifier": "t", "Type": "TransferContactToQueue", "Parameters": {},
   "Transitions": {"Errors": [{"NextAction": "bye", "ErrorType": "QueueAtCapacity"}, {"NextAction": "bye", "ErrorType": "NoMatchingError"}]}},
  {"Identifier": "bye", "Type": "DisconnectParticipant", "Parameters": {}, "Transitions": {}}]}"#;

/// Starts the simulator, seeds what is missing, starts the campaign, logs the agents in and
/// spawns the wrap-up and figures tasks; returns the demo campaign's id. Call after the runtime
/// and the dialer's runner started.
pub async fn start(
    cfg: &Config,
    db: &Db,
    clock: &SharedClock,
    runtime: &Runtime,
    lifecycle: &Lifecycle,
) -> anyhow::Result<i64> {
    warn!(
        "DEMO MODE: a simulated carrier is the trunk and demo users with known passwords exist; do not use --demo in production"
    );
    let acd = cfg.inbound.acd_config()?;
    let profile = acd
        .profiles
        .first()
        .context("demo: the ACD configuration has no routing profile")?;
    let queue = profile
        .queues
        .first()
        .context("demo: the first routing profile has no queue")?
        .queue
        .clone();
    let profile = profile.name.clone();

    let (rtp_lo, rtp_hi) = sim_rtp_range(cfg.rtp.port_min, cfg.rtp.port_max);
    let sim_cfg = telephony::carrier_sim::CarrierSimConfig {
        listen: "127.0.0.1:0".parse().expect("valid"),
        rtp_ports: (rtp_lo, rtp_hi),
        agent_prefix: Some("agent".into()),
        plan: telephony::carrier_sim::Plan {
            talk: TALK,
            ..Default::default()
        },
        seed: clock.now_ms() as u64,
        // The appliance may send nothing on an idle nailed-up agent leg: the simulator's agent
        // phones must not hang up on RTP inactivity.
        rtp_inactivity: None,
        ..Default::default()
    };
    let mut sim = telephony::carrier_sim::start(sim_cfg, lifecycle.clone())
        .await
        .context("demo: starting the carrier simulator")?;
    let sim_addr = sim.udp_addr;
    // The simulator's per-call records are not needed here; drain them so it never waits.
    tokio::spawn(async move { while sim.next_record().await.is_some() {} });
    info!(sip = %sim_addr, rtp_ports = %format!("{rtp_lo}-{rtp_hi}"), "demo: carrier simulator running (humans, answering machines, busy, no answer; agent phones)");

    let now = clock.now_ms();
    for (name, role, password) in USERS {
        if accounts::user_by_name(db, name).await?.is_none() {
            accounts::create_user(db, now, name, role, password).await?;
            info!(username = name, role = %role, password, "demo: created user (DEMO password)");
        } else {
            info!(username = name, role = %role, password, "demo: user exists (its DEMO password unless changed)");
        }
    }

    seed_flow(db, now, &queue).await?;
    let prompts = cfg.data_dir.join("prompts");
    let safe_harbor = write_safe_harbor(&prompts).await?;
    let trunk = format!("sip:{sim_addr}");
    let campaign_id = seed_campaign(cfg, db, clock, &queue, &trunk, &safe_harbor).await?;

    let agents = SimAgents {
        runtime: runtime.clone(),
        sim: sim_addr,
        profile,
        lifecycle: lifecycle.clone(),
    };
    // Subscribed before the logins, so no contact of a simulated agent is missed.
    let events = runtime.subscribe();
    let names: Vec<String> = (1..=SIM_AGENTS).map(|i| format!("agent{i}")).collect();
    futures_util::future::join_all(names.iter().map(|a| agents.login(a))).await;
    tokio::spawn(wrap_up(db.clone(), clock.clone(), agents, events));
    tokio::spawn(figures(
        db.clone(),
        clock.clone(),
        runtime.clone(),
        campaign_id,
    ));
    info!(
        campaign = CAMPAIGN,
        campaign_id,
        number = DEMO_NUMBER,
        agents = SIM_AGENTS,
        "demo: running; log in to the console as manager / demo-manager"
    );
    Ok(campaign_id)
}

/// 1,000 ports right above the appliance's RTP range, else right below it.
fn sim_rtp_range(min: u16, max: u16) -> (u16, u16) {
    if max <= u16::MAX - 1001 {
        (max + 1, max + 1000)
    } else {
        (
            min.saturating_sub(1000).max(1024),
            min.saturating_sub(1).max(1025),
        )
    }
}

async fn seed_flow(db: &Db, now: i64, queue: &str) -> anyhow::Result<()> {
    if inbound::store::flow_for_number(db, DEMO_NUMBER)
        .await?
        .is_some()
    {
        info!(
            number = DEMO_NUMBER,
            "demo: the demo number already has a flow"
        );
        return Ok(());
    }
    let text = MENU_FLOW.replace("QUEUE", queue);
    inbound::store::import_flow(db, FLOW, &text, now, "demo")
        .await
        .context("demo: saving the menu flow")?;
    inbound::store::assign_number(db, DEMO_NUMBER, FLOW, now, "demo").await?;
    info!(
        number = DEMO_NUMBER,
        flow = FLOW,
        queue,
        "demo: inbound flow (menu → queue) on the demo number"
    );
    Ok(())
}

/// The safe-harbor message abandoned calls hear: espeak-ng speech at 8 kHz when espeak-ng and
/// sox are installed, else a short tone (the demo still runs).
async fn write_safe_harbor(dir: &Path) -> anyhow::Result<PathBuf> {
    let path = dir.join("demo-safe-harbor.wav");
    if path.exists() {
        return Ok(path);
    }
    tokio::fs::create_dir_all(dir)
        .await
        .with_context(|| format!("demo: cannot create {}", dir.display()))?;
    let text = "This is the Dialbridge demo calling with an information message. Call us back at 3 1 2, 5 5 5, 0 1 0 1. To stop these calls, press 9.";
    let raw = dir.join("demo-safe-harbor.raw.wav");
    let spoke = tokio::process::Command::new("espeak-ng")
        .arg("-w")
        .arg(&raw)
        .arg(text)
        .status()
        .await
        .is_ok_and(|s| s.success())
        && tokio::process::Command::new("sox")
            .arg(&raw)
            .args(["-r", "8000", "-c", "1", "-b", "16", "-e", "signed-integer"])
            .arg(&path)
            .status()
            .await
            .is_ok_and(|s| s.success());
    let _ = tokio::fs::remove_file(&raw).await;
    if !spoke {
        warn!("demo: espeak-ng or sox missing; the safe-harbor message is a tone");
        let pcm: Vec<u8> = (0..8000 * 2)
            .flat_map(|i| {
                (((i as f64 * 2.0 * std::f64::consts::PI * 440.0 / 8000.0).sin() * 6000.0) as i16)
                    .to_le_bytes()
            })
            .collect();
        let mut wav = telephony::media::wav::wav_header(
            telephony::media::wav::WavEncoding::Pcm16,
            1,
            pcm.len(),
        );
        wav.extend_from_slice(&pcm);
        tokio::fs::write(&path, wav).await?;
    }
    Ok(path)
}

/// The generated lead file: 500 fictional numbers over five US area codes with their ZIP codes.
fn leads_csv() -> String {
    const FIRST: [&str; 10] = [
        "Ada", "Alan", "Grace", "Linus", "Barbara", "Dennis", "Frances", "Ken", "Radia", "Edsger",
    ];
    const LAST: [&str; 10] = [
        "Lovelace", "Turing", "Hopper", "Torvalds", "Liskov", "Ritchie", "Allen", "Thompson",
        "Perlman", "Dijkstra",
    ];
    let mut out = String::from("First Name,Last Name,Phone,Zip,State\n");
    for k in 0..LEADS {
        let (npa, zip, state) = AREAS[k % AREAS.len()];
        let line = 100 + (k / AREAS.len()) % 100;
        out.push_str(&format!(
            "{},{},({npa}) 555-0{line},{zip},{state}\n",
            FIRST[k % 10],
            LAST[(k / 10) % 10]
        ));
    }
    out
}

fn demo_campaign_config(
    list_id: i64,
    queue: &str,
    trunk: &str,
    safe_harbor: &Path,
) -> anyhow::Result<CampaignConfig> {
    let c: CampaignConfig = serde_json::from_value(serde_json::json!({
        "lists": [{"list_id": list_id, "weight": 1}],
        "mode": "predictive",
        "purpose": "informational",
        "caller_id": "+13125550101",
        "queue": queue,
        "trunk": {"uri": trunk, "cps": 5, "max_concurrent": 20},
        "amd": "hang_up",
        "safe_harbor": {"seller": "Dialbridge demo", "callback_number": "+13125550101", "opt_out_key": "9",
                        "prompt": safe_harbor.to_string_lossy()},
        "dispositions": {"interested": {"final_": true}, "call_back_later": {"retry_after_s": 3600}},
        // Informational calls may be placed at any hour: the demo must dial whenever it runs.
        "compliance": {"window": {"start": "00:00:00", "end": "23:59:59.999"}}
    }))?;
    Ok(c)
}

async fn seed_campaign(
    cfg: &Config,
    db: &Db,
    clock: &SharedClock,
    queue: &str,
    trunk: &str,
    safe_harbor: &Path,
) -> anyhow::Result<i64> {
    let c = match campaign::by_name(db, CAMPAIGN).await? {
        Some(c) => {
            // The simulator listens on a new port at each start: point the trunk at it.
            if c.config.trunk.uri != trunk && c.state != CampaignState::Completed {
                let mut config = c.config.clone();
                config.trunk.uri = trunk.to_owned();
                campaign::update_config(db, clock.as_ref(), c.id, &config, Some(c.version)).await?;
                info!(
                    campaign = CAMPAIGN,
                    trunk, "demo: campaign exists; its trunk now points at this start's simulator"
                );
            }
            campaign::get(db, c.id)
                .await?
                .context("demo campaign vanished")?
        }
        None => {
            let file = cfg.data_dir.join("demo-leads.csv");
            tokio::fs::write(&file, leads_csv())
                .await
                .with_context(|| format!("demo: writing {}", file.display()))?;
            let mut opts = importers::ImportOptions::new(LIST);
            opts.region = Some("US".into());
            opts.actor = "demo".into();
            let report = importers::import_file(db, clock.as_ref(), &file, &opts, &|_| {})
                .await
                .context("demo: importing the lead list")?;
            info!(
                list = LIST,
                accepted = report.accepted,
                rejected = report.rejected,
                duplicates = report.duplicates,
                "demo: imported the generated lead list"
            );
            let config = demo_campaign_config(report.list_id, queue, trunk, safe_harbor)?;
            let c = campaign::create(db, clock.as_ref(), CAMPAIGN, &config).await?;
            info!(
                campaign = CAMPAIGN,
                id = c.id,
                "demo: created the predictive campaign (informational, window 00:00–24:00 local)"
            );
            c
        }
    };
    match c.state {
        CampaignState::Running => {}
        CampaignState::Completed => warn!(
            campaign = CAMPAIGN,
            "demo: the demo campaign has completed (every lead finished); start over with a fresh data directory"
        ),
        _ => {
            campaign::apply(db, clock.as_ref(), c.id, Action::Start).await?;
            info!(campaign = CAMPAIGN, "demo: campaign started");
        }
    }
    Ok(c.id)
}

/// The simulated agents: phones of the carrier simulator, nailed up.
#[derive(Clone)]
struct SimAgents {
    runtime: Runtime,
    sim: std::net::SocketAddr,
    profile: String,
    lifecycle: Lifecycle,
}

impl SimAgents {
    async fn login(&self, agent: &str) {
        let login = Login {
            agent_id: agent.to_owned(),
            endpoint: AgentEndpoint::Uri(format!("sip:{agent}@{}", self.sim)),
            mode: AgentMode::NailedUp,
            routing_profile: self.profile.clone(),
            skills: BTreeMap::new(),
        };
        match self.runtime.login(login).await {
            Ok(()) => info!(
                agent,
                "demo: simulated agent logged in (nailed-up leg to the simulator's agent phone)"
            ),
            Err(e) => warn!(agent, error = %e, "demo: simulated agent could not log in"),
        }
    }
}

/// The simulated agents' part of a contact: when a demo agent's contact ends, wrap up for a
/// few seconds, then record a disposition (which returns the agent to Available). A simulated
/// agent that went offline (its leg dropped, or someone logged it out) is logged in again after a
/// pause that grows while its legs keep dropping.
async fn wrap_up(
    db: Db,
    clock: SharedClock,
    agents: SimAgents,
    mut events: tokio::sync::broadcast::Receiver<RuntimeEvent>,
) {
    let runtime = agents.runtime.clone();
    let mut handled: u64 = 0;
    // Runtime contact id → the dialer's attempt id (campaign calls only).
    let mut attempts: std::collections::HashMap<String, String> = std::collections::HashMap::new();
    // Per simulated agent: when it was last logged in again, and the pause used then.
    let mut relogins: std::collections::HashMap<String, (tokio::time::Instant, Duration)> =
        std::collections::HashMap::new();
    loop {
        let ev = match events.recv().await {
            Ok(ev) => ev,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                warn!(missed = n, "demo: missed runtime events");
                continue;
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        };
        if let RuntimeEvent::AgentStateChanged {
            agent,
            state: inbound::acd::AgentState::Offline,
            ..
        } = &ev
            && is_sim_agent(agent)
            && !agents.lifecycle.is_draining()
        {
            let now = tokio::time::Instant::now();
            let pause = match relogins.get(agent) {
                Some((at, last)) if now.duration_since(*at) < RELOGIN_STABLE => {
                    (*last * 2).min(RELOGIN_MAX)
                }
                _ => RELOGIN_FIRST,
            };
            relogins.insert(agent.clone(), (now + pause, pause));
            warn!(agent = %agent, pause_s = pause.as_secs(), "demo: a simulated agent went offline (its nailed-up leg ended); logging it in again");
            let (agents, agent) = (agents.clone(), agent.clone());
            tokio::spawn(async move {
                tokio::time::sleep(pause).await;
                if !agents.lifecycle.is_draining() {
                    agents.login(&agent).await;
                }
            });
            continue;
        }
        if let RuntimeEvent::ContactConnected {
            contact,
            agent,
            attributes,
            ..
        } = &ev
            && is_sim_agent(agent)
            && let Some(attempt) = attributes.get("contact_id")
        {
            // A campaign call: the dialer's attempt id, for its disposition.
            attempts.insert(contact.clone(), attempt.clone());
            continue;
        }
        let RuntimeEvent::ContactEnded {
            contact,
            agent: Some(agent),
            ..
        } = ev
        else {
            continue;
        };
        let attempt = attempts.remove(&contact);
        if !is_sim_agent(&agent) {
            continue;
        }
        handled += 1;
        let code = if handled.is_multiple_of(3) {
            "call_back_later"
        } else {
            "interested"
        };
        let (db, clock, runtime) = (db.clone(), clock.clone(), runtime.clone());
        tokio::spawn(async move {
            tokio::time::sleep(WRAP_UP).await;
            // The dialer's record of the attempt, when the contact was a campaign call.
            if let Some(attempt) = &attempt
                && let Err(e) =
                    dialer::attempts::set_disposition(&db, clock.as_ref(), attempt, code, None)
                        .await
            {
                warn!(attempt = %attempt, error = %format!("{e:#}"), "demo: the attempt's disposition was refused");
            }
            match runtime.disposition(&contact, code).await {
                Ok(()) => {
                    info!(agent = %agent, contact = %contact, code, "demo: simulated agent wrapped up")
                }
                Err(e) => {
                    warn!(agent = %agent, contact = %contact, error = %e, "demo: disposition refused")
                }
            }
        });
    }
}

fn is_sim_agent(agent: &str) -> bool {
    agent
        .strip_prefix("agent")
        .and_then(|n| n.parse::<usize>().ok())
        .is_some_and(|n| (1..=SIM_AGENTS).contains(&n))
}

/// The campaign's figures as the stats API computes them.
#[derive(Debug, Default, PartialEq)]
pub struct Figures {
    pub attempts: i64,
    pub last_minute: i64,
    pub live: i64,
    pub abandoned: i64,
    pub to_agent: i64,
}

pub async fn campaign_figures(db: &Db, campaign_id: i64, now_ms: i64) -> anyhow::Result<Figures> {
    let row = sqlx::query(
        "SELECT COUNT(*) AS attempts, \
                COALESCE(SUM(CASE WHEN created_at >= $2 THEN 1 ELSE 0 END), 0) AS last_minute, \
                COALESCE(SUM(live), 0) AS live, COALESCE(SUM(abandoned), 0) AS abandoned, \
                COALESCE(SUM(CASE WHEN agent IS NOT NULL THEN 1 ELSE 0 END), 0) AS to_agent \
         FROM dial_attempts WHERE campaign_id = $1",
    )
    .bind(campaign_id)
    .bind(now_ms - 60_000)
    .fetch_one(db.pool())
    .await?;
    Ok(Figures {
        attempts: row.try_get("attempts")?,
        last_minute: row.try_get("last_minute")?,
        live: row.try_get("live")?,
        abandoned: row.try_get("abandoned")?,
        to_agent: row.try_get("to_agent")?,
    })
}

fn state_name(s: &inbound::acd::AgentState) -> &'static str {
    use inbound::acd::AgentState as S;
    match s {
        S::Offline => "offline",
        S::Available => "available",
        S::Offered(_) => "offered",
        S::OnContact(_) => "on_contact",
        S::AfterContactWork { .. } => "after_contact_work",
        S::NotRoutable(_) => "not_routable",
        S::Missed => "missed",
    }
}

async fn figures(db: Db, clock: SharedClock, runtime: Runtime, campaign_id: i64) {
    let mut tick = tokio::time::interval(FIGURES_EVERY);
    tick.tick().await;
    loop {
        tick.tick().await;
        let cap = match campaign::get(&db, campaign_id).await {
            Ok(Some(c)) => c.config.compliance.abandon_cap,
            _ => 0.03,
        };
        let f = match campaign_figures(&db, campaign_id, clock.now_ms()).await {
            Ok(f) => f,
            Err(e) => {
                warn!(error = %format!("{e:#}"), "demo: cannot read the campaign's figures");
                continue;
            }
        };
        let mut states: BTreeMap<String, usize> = BTreeMap::new();
        if let Ok(agents) = runtime.agent_snapshot(None).await {
            for a in agents {
                *states.entry(state_name(&a.state).to_owned()).or_default() += 1;
            }
        }
        let rate = if f.live > 0 {
            f.abandoned as f64 / f.live as f64
        } else {
            0.0
        };
        let agents = states
            .iter()
            .map(|(s, n)| format!("{s}={n}"))
            .collect::<Vec<_>>()
            .join(" ");
        info!(
            event = "demo_figures",
            campaign = CAMPAIGN,
            dials = f.attempts,
            dials_last_minute = f.last_minute,
            live_answers = f.live,
            to_agents = f.to_agent,
            abandon_rate = format!("{:.1}%", rate * 100.0),
            abandon_cap = format!("{:.1}%", cap * 100.0),
            agents = %agents,
            "demo: {} dials ({} in the last minute), {} live answers, {} to agents, abandoned {:.1}% (cap {:.1}%); agents {}",
            f.attempts, f.last_minute, f.live, f.to_agent, rate * 100.0, cap * 100.0, agents
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lead_file_has_500_distinct_numbers() {
        let csv = leads_csv();
        let numbers: std::collections::BTreeSet<&str> = csv
            .lines()
            .skip(1)
            .map(|l| l.split(',').nth(2).unwrap())
            .collect();
        assert_eq!(numbers.len(), LEADS);
    }

    #[test]
    fn the_simulator_rtp_range_stays_outside_the_appliance_range() {
        assert_eq!(sim_rtp_range(10_000, 20_000), (20_001, 21_000));
        let (lo, hi) = sim_rtp_range(40_000, 65_000);
        assert!(hi < 40_000 && lo < hi);
    }

    #[test]
    fn the_demo_campaign_config_is_valid_and_dials_at_any_hour() {
        let c =
            demo_campaign_config(1, "default", "sip:127.0.0.1:5090", Path::new("x.wav")).unwrap();
        c.validate().unwrap();
        let w = serde_json::to_value(&c.compliance.window).unwrap();
        assert_eq!(w["start"], "00:00:00");
        assert_eq!(w["end"], "23:59:59.999");
    }

    #[test]
    fn only_the_simulated_agents_are_wrapped_up_by_the_demo() {
        assert!(is_sim_agent("agent1") && is_sim_agent("agent4"));
        assert!(!is_sim_agent("agent5") && !is_sim_agent("agentx") && !is_sim_agent("bob"));
    }
}
