//! Pacing simulator: runs the production [`crate::pacing::Pacer`] in virtual time against the
//! reference call model ([`model`]), for one configuration ([`run`]), averaged over seeds
//! ([`run_seeds`]), for every controller at once ([`run_modes`]), over the benchmark grid
//! ([`grid`]) and in the drift scenario ([`drift`]).
//!
//! This is the library behind `dialbridge simulate`: build a [`SimConfig`], call [`run_modes`]
//! (or [`run_seeds`] for one mode) and print the [`SimReport`]s (serde-serialisable; the field
//! names are the CLI's JSON keys) with [`format_reports`] or one JSON object per line.
//! Flag mapping: `--agents` → [`SimConfig::agents`] (default 20), `--answer-rate` →
//! [`SimConfig::answer_rate`] (default 0.2), `--answer-rate-end` → [`SimConfig::answer_rate_end`],
//! `--mode` → [`SimMode::parse`] (`predictive | progressive | ratio[:L] | vicidial | oracle`;
//! without it every mode of [`SimMode::all`] runs), `--ratio-level` → the level of `ratio`
//! (default: [`default_ratio_level`]), `--hours` → [`SimConfig::hours`] (default 8), `--seed` →
//! [`SimConfig::seed`] (first seed, default 1), `--seeds` (default 10) → the `seeds` argument of
//! [`run_seeds`], `--abandon-cap` (alias `--cap`, default 0.03) → [`SimConfig::abandon_cap`];
//! `--json` prints `serde_json::to_string(&report)` per mode, one per line, instead of the table.
//! `--grid` runs [`grid::run_grid`] (restricted to `--agents` / `--answer-rate` when given) and
//! prints [`grid::format_table`], or with `--json` one line per cell and mode
//! ([`grid::json_lines`]).

pub mod drift;
mod engine;
pub mod grid;
pub mod metrics;
pub mod model;

use serde::{Deserialize, Serialize};

pub use model::CallModel;

/// The controller under test.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SimMode {
    /// One call per idle agent.
    Progressive,
    /// Online predictive pacing (no tuning).
    Predictive,
    /// The predictive pacer told each agent's exact free time (a reference, not deployable).
    Oracle,
    /// VICIdial RATIO with a fixed level.
    Ratio { level: f64 },
    /// VICIdial adaptive (ADAPT_HARD_LIMIT).
    Vicidial,
}

impl SimMode {
    pub fn name(&self) -> String {
        match self {
            SimMode::Progressive => "progressive".into(),
            SimMode::Predictive => "predictive".into(),
            SimMode::Oracle => "oracle".into(),
            SimMode::Ratio { level } => format!("ratio@{level:.2}"),
            SimMode::Vicidial => "vicidial".into(),
        }
    }

    /// Every controller `dialbridge simulate` runs when no mode is named, `ratio` at `ratio_level`.
    pub fn all(ratio_level: f64) -> Vec<SimMode> {
        vec![
            SimMode::Predictive,
            SimMode::Progressive,
            SimMode::Ratio { level: ratio_level },
            SimMode::Vicidial,
            SimMode::Oracle,
        ]
    }

    /// Parses `progressive | predictive | oracle | vicidial | ratio[:LEVEL]`
    /// (`ratio` alone takes `default_level`).
    pub fn parse(s: &str, default_level: f64) -> Option<SimMode> {
        let (name, arg) = match s.split_once([':', '@', '=']) {
            Some((n, a)) => (n, Some(a)),
            None => (s, None),
        };
        Some(match name {
            "progressive" => SimMode::Progressive,
            "predictive" => SimMode::Predictive,
            "oracle" => SimMode::Oracle,
            "vicidial" => SimMode::Vicidial,
            "ratio" => SimMode::Ratio {
                level: arg.map_or(Some(default_level), |a| a.parse().ok())?,
            },
            _ => return None,
        })
    }
}

/// A change of the number of logged-in agents during the shift.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AgentStep {
    pub at_hours: f64,
    pub agents: u32,
}

/// One simulation run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SimConfig {
    pub mode: SimMode,
    /// Agents logged in at the start.
    pub agents: u32,
    /// Probability that a dial reaches a live person (at the start of the shift).
    pub answer_rate: f64,
    /// If set, the live-answer probability slides linearly to this by the end of the shift.
    pub answer_rate_end: Option<f64>,
    /// Agent-count changes (agents leave only after finishing their call).
    pub agent_steps: Vec<AgentStep>,
    pub hours: f64,
    pub seed: u64,
    pub abandon_cap: f64,
    /// Length of the rolling compliance window the pacer holds and the report checks.
    pub window_hours: f64,
    pub model: CallModel,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            mode: SimMode::Predictive,
            agents: 20,
            answer_rate: 0.2,
            answer_rate_end: None,
            agent_steps: Vec::new(),
            hours: 8.0,
            seed: 1,
            abandon_cap: 0.03,
            window_hours: 1.0,
            model: CallModel::default(),
        }
    }
}

/// Figures for a part of the shift (between agent-count changes).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SegmentReport {
    pub from_hours: f64,
    pub to_hours: f64,
    pub agents: u32,
    pub talk_min_per_agent_hour: f64,
    pub abandon_rate: f64,
    /// Worst rolling-window abandonment rate among full windows ending in this segment.
    pub max_window_abandon_rate: f64,
    /// Seconds after the start of the segment until the lines in flight per available agent reach
    /// the segment's steady level (see [`metrics::settle_time`]); 0 for the first segment.
    pub settle_s: f64,
}

/// Results of one run, or means over seeds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SimReport {
    pub mode: String,
    pub agents: u32,
    pub answer_rate: f64,
    pub hours: f64,
    pub seeds: u32,
    pub talk_min_per_agent_hour: f64,
    /// (talk + wrap) / logged-in time.
    pub occupancy: f64,
    /// Abandoned / live answers over the shift.
    pub abandon_rate: f64,
    /// Worst abandonment rate over full rolling windows (mean over seeds of each seed's worst).
    pub max_window_abandon_rate: f64,
    /// Worst rolling-window rate in any seed.
    pub max_window_abandon_rate_any_seed: f64,
    pub dials_per_agent_hour: f64,
    pub live_answers_per_agent_hour: f64,
    pub dials: f64,
    pub live_answers: f64,
    pub abandons: f64,
    pub agent_hours: f64,
    pub segments: Vec<SegmentReport>,
}

/// Runs one simulation (one seed). Deterministic given the configuration.
pub fn run(cfg: &SimConfig) -> SimReport {
    engine::Engine::new(cfg).run()
}

/// Runs `seeds` consecutive seeds from `cfg.seed` and averages.
pub fn run_seeds(cfg: &SimConfig, seeds: u32) -> SimReport {
    let reports: Vec<SimReport> = (0..seeds.max(1) as u64)
        .map(|i| {
            run(&SimConfig {
                seed: cfg.seed + i,
                ..cfg.clone()
            })
        })
        .collect();
    metrics::mean_report(&reports)
}

/// The fixed dial level `ratio` uses when none is given: the offline-tuned level of §4.1 for a
/// cell of the reference grid, otherwise 1.2.
pub fn default_ratio_level(agents: u32, answer_rate: f64) -> f64 {
    grid::reference(agents, answer_rate).map_or(1.2, |r| r.ratio_level)
}

/// Runs each of `modes` over `seeds` seeds (means), one thread per mode, in `modes` order.
pub fn run_modes(cfg: &SimConfig, modes: &[SimMode], seeds: u32) -> Vec<SimReport> {
    std::thread::scope(|s| {
        let handles: Vec<_> = modes
            .iter()
            .map(|&mode| {
                let cfg = SimConfig {
                    mode,
                    ..cfg.clone()
                };
                s.spawn(move || run_seeds(&cfg, seeds))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("simulation thread"))
            .collect()
    })
}

/// The per-mode figures as a text table (means over the seeds; the worst window is the mean of
/// each seed's worst rolling window, the worst of any seed in brackets).
pub fn format_reports(cfg: &SimConfig, seeds: u32, reports: &[SimReport]) -> String {
    let mut s = format!(
        "{} agents, live-answer rate {}{}, {} h, {} seed{} from {}, cap {:.1}% per rolling {} h\n",
        cfg.agents,
        cfg.answer_rate,
        cfg.answer_rate_end
            .map_or(String::new(), |p| format!(" -> {p}")),
        cfg.hours,
        seeds,
        if seeds == 1 { "" } else { "s" },
        cfg.seed,
        100.0 * cfg.abandon_cap,
        cfg.window_hours
    );
    s.push_str(&format!(
        "{:<12} {:>9} {:>9} {:>9} {:>15} {:>9} {:>9}\n",
        "mode", "talk-min", "occupancy", "abandon%", "worst window%", "dials", "live"
    ));
    s.push_str(&format!(
        "{:<12} {:>9} {:>9} {:>9} {:>15} {:>9} {:>9}\n",
        "", "/agent-h", "", "", "mean (any seed)", "/agent-h", "/agent-h"
    ));
    for r in reports {
        s.push_str(&format!(
            "{:<12} {:>9.1} {:>9.3} {:>9.2} {:>7.2} ({:>5.2}) {:>9.1} {:>9.1}\n",
            r.mode,
            r.talk_min_per_agent_hour,
            r.occupancy,
            100.0 * r.abandon_rate,
            100.0 * r.max_window_abandon_rate,
            100.0 * r.max_window_abandon_rate_any_seed,
            r.dials_per_agent_hour,
            r.live_answers_per_agent_hour
        ));
    }
    s
}
