//! `dialbridge`: the one binary of the appliance. Command-line parsing and wiring only; every
//! piece of logic lives in a workspace crate (see ARCHITECTURE.md).

mod agents_port;
mod backup;
mod bench;
mod config;
mod demo;
mod flow_port;
mod gauges;
mod progress;
mod reload;
mod serve;
mod tls;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use foundation::accounts::{self, Role};
use foundation::clock::{Clock, SystemClock};

use crate::config::LogFormat;

#[derive(Parser)]
#[command(
    name = "dialbridge",
    version,
    about = "Outbound dialer, inbound IVR/ACD and migration bridge in one appliance"
)]
struct Cli {
    /// Configuration file (default: ./dialbridge.toml when it exists, else built-in defaults).
    #[arg(long, global = true, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Overrides `log.format`.
    #[arg(long, global = true, value_enum)]
    log_format: Option<LogFormat>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the appliance.
    Serve {
        /// Demo mode: a simulated carrier as the trunk, demo users, a lead list, a running
        /// predictive campaign, simulated agents and an inbound menu (see src/demo.rs).
        #[arg(long)]
        demo: bool,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Import a CRM contact list (CSV/TSV, gzip, XLSX) into a lead list.
    Import {
        file: PathBuf,
        /// The list to import into (created when it does not exist).
        #[arg(long)]
        list: String,
        /// Default region for numbers without a country code (ISO, e.g. US, GB).
        #[arg(long)]
        region: Option<String>,
        /// An explicit column mapping file (TOML or JSON).
        #[arg(long)]
        mapping: Option<PathBuf>,
        /// A do-not-call file to scrub against for this import (repeatable).
        #[arg(long)]
        dnc: Vec<PathBuf>,
        /// Update leads that already exist (default: count them as duplicates).
        #[arg(long)]
        update: bool,
        /// Continue a failed import job.
        #[arg(long, value_name = "JOB")]
        resume: Option<String>,
        /// Print the report as one JSON object on stdout.
        #[arg(long)]
        json: bool,
    },
    /// A simulated carrier on loopback: answers calls as humans, answering machines, busy or no
    /// answer (JSON lines: listening, each call, totals at exit).
    CarrierSim {
        /// SIP address (UDP and TCP).
        #[arg(long, default_value = "127.0.0.1:5090")]
        listen: std::net::SocketAddr,
        #[arg(long, default_value_t = 0.6)]
        human: f64,
        #[arg(long, default_value_t = 0.2)]
        machine: f64,
        #[arg(long, default_value_t = 0.1)]
        busy: f64,
        #[arg(long, default_value_t = 0.1)]
        no_answer: f64,
        /// Seconds a human stays on the line (a machine records after its beep).
        #[arg(long, default_value_t = 30.0)]
        talk_s: f64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Classes by the dialled number's last digit, e.g. 0-5=human,6-7=machine,8=busy,9=no-answer.
        #[arg(long)]
        by_last_digit: Option<String>,
        /// Humans press this DTMF key, --press-after-s after saying hello.
        #[arg(long)]
        press: Option<char>,
        #[arg(long, default_value_t = 3.0)]
        press_after_s: f64,
        /// Calls to users starting with this are agent phones (answered, kept up until BYE).
        #[arg(long)]
        agent_prefix: Option<String>,
        #[arg(long, default_value_t = 1.5)]
        ring_s: f64,
        /// Unanswered calls are refused with 480 after ringing this long.
        #[arg(long, default_value_t = 60.0)]
        no_answer_after_s: f64,
        #[arg(long, default_value = "40000-40999")]
        rtp_ports: String,
        /// Where generated speech is cached (default ~/.cache/dialbridge/carrier-sim).
        #[arg(long)]
        audio_dir: Option<PathBuf>,
        /// Also print the totals every this many seconds.
        #[arg(long)]
        totals_every_s: Option<u64>,
    },
    /// Run the pacing simulator (the reference call model) and print its figures per mode.
    Simulate {
        /// predictive, progressive, ratio[:LEVEL], vicidial or oracle; every mode when absent.
        #[arg(long)]
        mode: Option<String>,
        /// Agents logged in (default 20; with --grid, restricts the grid to this team size).
        #[arg(long)]
        agents: Option<u32>,
        /// Probability that a dial reaches a live person (default 0.2; with --grid, restricts the
        /// grid to this rate).
        #[arg(long)]
        answer_rate: Option<f64>,
        /// Slide the answer rate linearly to this by the end of the shift.
        #[arg(long)]
        answer_rate_end: Option<f64>,
        /// Dial level of `ratio` (default: the offline-tuned level of the reference table, else 1.2).
        #[arg(long)]
        ratio_level: Option<f64>,
        #[arg(long, default_value_t = 8.0)]
        hours: f64,
        /// Seeds to average over (consecutive, from --seed).
        #[arg(long, default_value_t = 10)]
        seeds: u32,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Abandonment cap (abandoned / live answers) per rolling hour.
        #[arg(long = "abandon-cap", alias = "cap", default_value_t = 0.03)]
        abandon_cap: f64,
        /// One JSON object per line (per mode; with --grid per cell and mode) instead of a table.
        #[arg(long)]
        json: bool,
        /// Run the whole grid (agents 5..100 × answer rates 0.1..0.3) next to the reference table.
        #[arg(long)]
        grid: bool,
    },
    /// Inspect the configuration.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Manage API keys.
    Apikey {
        #[command(subcommand)]
        action: ApikeyAction,
    },
    /// Manage console users.
    User {
        #[command(subcommand)]
        action: UserAction,
    },
    /// Write a consistent copy of the embedded database (safe while serving).
    Backup { file: PathBuf },
    /// Replace the embedded database with a backup (the appliance must be stopped).
    Restore { file: PathBuf },
    /// Load generators that print their figures.
    Bench {
        #[command(subcommand)]
        what: BenchWhat,
    },
}

#[derive(Subcommand)]
enum UserAction {
    /// Create a user; the password comes from DIALBRIDGE_USER_PASSWORD or is generated and printed once.
    Create {
        #[arg(long)]
        username: String,
        /// admin, campaign-manager, supervisor or agent.
        #[arg(long)]
        role: Role,
    },
    /// Set the SIP password with which the user's phones register to the appliance (from
    /// DIALBRIDGE_USER_PASSWORD, or generated and printed once); only its digest HA1 is stored.
    SipPassword {
        #[arg(long)]
        username: String,
    },
}

#[derive(Subcommand)]
enum BenchWhat {
    /// Lease → lookup(consume) storm against running appliances; fails on any double lease.
    Bridge {
        /// Base URL of an appliance; repeat for several nodes (clients are spread over them).
        #[arg(long = "url", required = true)]
        urls: Vec<String>,
        /// An admin API key (the bench creates and deletes its own pool).
        #[arg(long, env = "DIALBRIDGE_BENCH_KEY")]
        key: String,
        #[arg(long, default_value_t = 8)]
        clients: usize,
        #[arg(long, default_value_t = 10_000)]
        cycles: usize,
        #[arg(long, default_value_t = 50)]
        numbers: usize,
        #[arg(long, default_value_t = 0)]
        cooldown_s: u64,
        #[arg(long, default_value_t = 60)]
        lease_ttl_s: u64,
    },
    /// Call offered → agent's desktop socket notified, with many desktops connected (prints
    /// p50/p90/p99/max); starts its own appliance unless given --url and --key.
    Desktop {
        /// A running appliance (plain HTTP); default: start one in a scratch directory.
        #[arg(long, requires = "key")]
        url: Option<String>,
        /// An admin API key of that appliance.
        #[arg(long, env = "DIALBRIDGE_BENCH_KEY")]
        key: Option<String>,
        #[arg(long, default_value_t = 100)]
        agents: usize,
        #[arg(long, default_value_t = 200)]
        calls: usize,
        /// New calls per second (sipp).
        #[arg(long, default_value_t = 10.0)]
        cps: f64,
        /// How long each caller stays after the answer.
        #[arg(long, default_value_t = 2000)]
        talk_ms: u64,
    },
}

#[derive(Subcommand)]
enum ConfigAction {
    /// Validate the configuration; exit non-zero with the offending key on error.
    Check,
    /// Print the effective configuration (secrets masked).
    Show,
}

#[derive(Subcommand)]
enum ApikeyAction {
    /// Create a key and print it once.
    Create {
        /// admin, campaign-manager, supervisor, agent or legacy-pbx.
        #[arg(long)]
        role: Role,
        /// Limit the key to one bridge pool.
        #[arg(long)]
        pool: Option<String>,
        /// A label for people (default: the role).
        #[arg(long)]
        name: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let loaded = match config::load(cli.config.as_deref()) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("dialbridge: {e:#}");
            return ExitCode::from(2);
        }
    };
    let mut cfg = loaded.config.clone();
    if let Some(f) = cli.log_format {
        cfg.log.format = f;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve { demo } => {
                let set_log_level = serve::init_logging(&cfg);
                serve::run(cfg, loaded.file, set_log_level, demo).await
            }
            Command::Migrate => {
                let _ = serve::init_logging(&cfg);
                let db = serve::open_database(&cfg).await?;
                db.migrate().await?;
                println!("database {} is at migration {} ({})", foundation::db::redact_url(&cfg.database_url()), db.known_migrations(), db.backend().name());
                Ok(())
            }
            Command::Config { action: ConfigAction::Check } => {
                println!("configuration OK ({})", source(&loaded));
                Ok(())
            }
            Command::Config { action: ConfigAction::Show } => {
                println!("# effective configuration ({})", source(&loaded));
                print!("{}", cfg.to_masked_toml());
                Ok(())
            }
            Command::Apikey { action: ApikeyAction::Create { role, pool, name } } => {
                let db = serve::open_database(&cfg).await?;
                db.migrate().await?;
                let name = name.unwrap_or_else(|| role.to_string());
                let (key, token) = accounts::create_api_key(&db, SystemClock.now_ms(), &name, role, pool.as_deref(), None).await?;
                eprintln!("created API key {} (role {}{}); it is shown once:", key.prefix, key.role, pool.map(|p| format!(", pool {p}")).unwrap_or_default());
                println!("{token}");
                Ok(())
            }
            Command::User { action: UserAction::Create { username, role } } => {
                let db = serve::open_database(&cfg).await?;
                db.migrate().await?;
                let given = std::env::var("DIALBRIDGE_USER_PASSWORD").ok().filter(|p| !p.is_empty());
                let password = given.clone().unwrap_or_else(|| foundation::ids::random_base64url(18));
                accounts::create_user(&db, SystemClock.now_ms(), &username, role, &password).await?;
                eprintln!("created user {username} (role {role})");
                if given.is_none() {
                    eprintln!("its generated password is shown once:");
                    println!("{password}");
                }
                Ok(())
            }
            Command::User { action: UserAction::SipPassword { username } } => {
                let db = serve::open_database(&cfg).await?;
                db.migrate().await?;
                let given = std::env::var("DIALBRIDGE_USER_PASSWORD").ok().filter(|p| !p.is_empty());
                let password = given.clone().unwrap_or_else(|| foundation::ids::random_base64url(18));
                let ha1 = telephony::sip::digest::ha1_hex(&username, &cfg.sip.realm, &password);
                accounts::set_sip_ha1(&db, SystemClock.now_ms(), &username, Some(&ha1), "cli").await?;
                eprintln!("set the SIP password of {username} (realm {}); a running appliance picks it up within 5 s", cfg.sip.realm);
                if given.is_none() {
                    eprintln!("the generated SIP password is shown once:");
                    println!("{password}");
                }
                Ok(())
            }
            Command::Backup { file } => backup::backup(&cfg, &file).await,
            Command::Restore { file } => backup::restore(&cfg, &file).await,
            Command::Bench { what: BenchWhat::Bridge { urls, key, clients, cycles, numbers, cooldown_s, lease_ttl_s } } => {
                let opts = bench::StormOptions {
                    urls, key, clients, cycles, numbers, cooldown_s, lease_ttl_s,
                    request_timeout: std::time::Duration::from_secs(10),
                };
                let report = bench::bridge_storm(&opts).await?;
                println!("{}", serde_json::to_string_pretty(&report)?);
                if report.double_leases > 0 || report.hung > 0 || report.errors > 0 {
                    anyhow::bail!("bridge storm failed: {} double leases, {} hung, {} errors", report.double_leases, report.hung, report.errors);
                }
                Ok(())
            }
            Command::Bench { what: BenchWhat::Desktop { url, key, agents, calls, cps, talk_ms } } => {
                let opts = bench::desktop::DesktopOptions { target: url.zip(key), agents, calls, cps, talk_ms };
                let report = bench::desktop::desktop(&opts).await?;
                println!("{}", serde_json::to_string_pretty(&report)?);
                if report.offers_measured < report.calls {
                    anyhow::bail!("{} calls placed, {} offers seen on the desktops", report.calls, report.offers_measured);
                }
                Ok(())
            }
            Command::Import { file, list, region, mapping, dnc, update, resume, json } => {
                let db = serve::open_database(&cfg).await?;
                db.migrate().await?;
                let mut opts = importers::ImportOptions::new(&list);
                opts.region = region;
                opts.mapping = mapping.as_deref().map(importers::MappingSpec::load).transpose()?;
                opts.dnc_files = dnc;
                opts.resume_job = resume;
                opts.actor = "cli".into();
                // On PostgreSQL the importer streams leads with COPY over its own connection.
                opts.postgres_url = (db.backend() == foundation::Backend::Postgres).then(|| cfg.database_url());
                if update {
                    opts.duplicate_policy = importers::DuplicatePolicy::Update;
                }
                let report = importers::import_file(&db, &SystemClock, &file, &opts, &progress::print).await;
                progress::done();
                let report = report?;
                if json {
                    println!("{}", serde_json::to_string(&report)?);
                } else {
                    print!("{}", progress::summary(&report));
                }
                Ok(())
            }
            Command::CarrierSim {
                listen, human, machine, busy, no_answer, talk_s, seed, by_last_digit, press, press_after_s,
                agent_prefix, ring_s, no_answer_after_s, rtp_ports, audio_dir, totals_every_s,
            } => {
                let _ = serve::init_logging(&cfg);
                use telephony::carrier_sim::{self as sim, Flags};
                let flags = Flags {
                    listen, human, machine, busy, no_answer, talk_s, seed, by_last_digit, press, press_after_s,
                    agent_prefix, ring_s, no_answer_after_s, rtp_ports, audio_dir,
                };
                sim::run_cli(flags.into_config()?, totals_every_s.map(std::time::Duration::from_secs)).await
            }
            Command::Simulate {
                mode, agents, answer_rate, answer_rate_end, ratio_level, hours, seeds, seed, abandon_cap, json, grid,
            } => {
                use dialer::sim;
                anyhow::ensure!(hours > 0.0 && seeds > 0, "--hours and --seeds must be positive");
                anyhow::ensure!(agents != Some(0), "--agents must be positive");
                for (flag, p) in [("--answer-rate", answer_rate), ("--answer-rate-end", answer_rate_end)] {
                    anyhow::ensure!(p.is_none_or(|p| (0.0..=1.0).contains(&p)), "{flag} must be between 0 and 1");
                }
                anyhow::ensure!(abandon_cap > 0.0 && abandon_cap <= 1.0, "--abandon-cap must be in (0, 1]");
                let (n, p) = (agents.unwrap_or(20), answer_rate.unwrap_or(0.2));
                let level = ratio_level.unwrap_or_else(|| sim::default_ratio_level(n, p));
                let modes = match &mode {
                    Some(m) => vec![sim::SimMode::parse(m, level).ok_or_else(|| {
                        anyhow::anyhow!("unknown --mode {m:?}: predictive, progressive, ratio:LEVEL, vicidial or oracle")
                    })?],
                    None if grid => vec![sim::SimMode::Progressive, sim::SimMode::Predictive, sim::SimMode::Vicidial, sim::SimMode::Oracle],
                    None => sim::SimMode::all(level),
                };
                if grid {
                    let mut g = sim::grid::GridConfig {
                        modes, hours, seeds, first_seed: seed, abandon_cap,
                        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
                        ..Default::default()
                    };
                    if let Some(n) = agents {
                        g.agents = vec![n];
                    }
                    if let Some(p) = answer_rate {
                        g.answer_rates = vec![p];
                    }
                    let out = tokio::task::spawn_blocking(move || {
                        let cells = sim::grid::run_grid(&g);
                        if json { sim::grid::json_lines(&cells) } else { sim::grid::format_table(&g, &cells) }
                    })
                    .await?;
                    print!("{out}");
                    return Ok(());
                }
                let cfg = sim::SimConfig {
                    agents: n, answer_rate: p, answer_rate_end, hours, seed, abandon_cap, ..Default::default()
                };
                let reports = {
                    let cfg = cfg.clone();
                    tokio::task::spawn_blocking(move || sim::run_modes(&cfg, &modes, seeds)).await?
                };
                if json {
                    for r in &reports {
                        println!("{}", serde_json::to_string(r)?);
                    }
                } else {
                    print!("{}", sim::format_reports(&cfg, seeds, &reports));
                }
                Ok(())
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is::<NotYet>() => {
            eprintln!("dialbridge: {e}");
            ExitCode::from(3)
        }
        Err(e) => {
            eprintln!("dialbridge: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn source(loaded: &config::Loaded) -> String {
    let file = loaded
        .file
        .as_ref()
        .map(|p| format!("file {}", p.display()))
        .unwrap_or_else(|| "built-in defaults".into());
    if loaded.env_keys.is_empty() {
        file
    } else {
        format!("{file}; environment sets {}", loaded.env_keys.join(", "))
    }
}

#[derive(Debug)]
struct NotYet;

impl std::fmt::Display for NotYet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("this command is not yet available in this version")
    }
}

impl std::error::Error for NotYet {}
