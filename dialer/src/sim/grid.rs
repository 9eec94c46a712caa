//! The benchmark grid (agents × live-answer rate × controller) and the reference figures of §4.1
//! of `shared/reference/outbound-dialer.md` to compare against.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::{Deserialize, Serialize};

use super::{SimConfig, SimMode, SimReport, run_seeds};

/// Reference figures (talk-min per agent-hour at a 3% cap, AHT 180 s) for one grid cell.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Reference {
    pub progressive: f64,
    pub ratio_best: f64,
    pub ratio_level: f64,
    pub elapsed_aware: f64,
    pub oracle: f64,
}

/// §4.1 table: (p, agents, progressive, ratio best, its level, elapsed-aware, oracle).
const TABLE: [(f64, u32, f64, f64, f64, f64, f64); 15] = [
    (0.10, 5, 26.5, 31.4, 1.30, 32.3, 32.8),
    (0.10, 10, 26.9, 37.3, 1.42, 38.4, 37.3),
    (0.10, 20, 26.9, 42.5, 1.62, 42.8, 43.7),
    (0.10, 50, 27.3, 47.2, 1.83, 47.5, 47.9),
    (0.10, 100, 27.3, 50.2, 1.95, 50.0, 50.5),
    (0.20, 5, 37.3, 37.1, 1.10, 38.4, 38.7),
    (0.20, 10, 37.2, 40.9, 1.15, 42.1, 41.9),
    (0.20, 20, 37.2, 44.7, 1.23, 45.4, 45.3),
    (0.20, 50, 37.5, 48.8, 1.35, 49.1, 49.7),
    (0.20, 100, 37.3, 50.8, 1.41, 51.1, 51.8),
    (0.30, 5, 41.8, 42.3, 1.10, 43.6, 42.6),
    (0.30, 10, 42.3, 42.3, 1.05, 45.1, 45.1),
    (0.30, 20, 42.5, 46.4, 1.12, 47.3, 47.9),
    (0.30, 50, 42.5, 49.7, 1.19, 50.6, 50.9),
    (0.30, 100, 42.5, 51.5, 1.24, 52.0, 52.3),
];

/// The reference figures for a cell of the grid, if the table has it.
pub fn reference(agents: u32, answer_rate: f64) -> Option<Reference> {
    TABLE
        .iter()
        .find(|r| r.1 == agents && (r.0 - answer_rate).abs() < 1e-9)
        .map(|r| Reference {
            progressive: r.2,
            ratio_best: r.3,
            ratio_level: r.4,
            elapsed_aware: r.5,
            oracle: r.6,
        })
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GridConfig {
    pub agents: Vec<u32>,
    pub answer_rates: Vec<f64>,
    pub modes: Vec<SimMode>,
    pub hours: f64,
    pub seeds: u32,
    pub first_seed: u64,
    pub abandon_cap: f64,
    /// Worker threads.
    pub threads: usize,
}

impl Default for GridConfig {
    fn default() -> Self {
        Self {
            agents: vec![5, 10, 20, 50, 100],
            answer_rates: vec![0.1, 0.2, 0.3],
            modes: vec![SimMode::Progressive, SimMode::Predictive, SimMode::Oracle],
            hours: 8.0,
            seeds: 10,
            first_seed: 1,
            abandon_cap: 0.03,
            threads: 1,
        }
    }
}

/// One cell: the reports of each mode (in `GridConfig::modes` order) and the reference.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GridCell {
    pub agents: u32,
    pub answer_rate: f64,
    pub reports: Vec<SimReport>,
    pub reference: Option<Reference>,
}

/// Runs every cell × mode (means over the seeds), in parallel over `threads`.
pub fn run_grid(g: &GridConfig) -> Vec<GridCell> {
    let mut jobs = Vec::new();
    for &p in &g.answer_rates {
        for &n in &g.agents {
            for &m in &g.modes {
                jobs.push(SimConfig {
                    mode: m,
                    agents: n,
                    answer_rate: p,
                    hours: g.hours,
                    seed: g.first_seed,
                    abandon_cap: g.abandon_cap,
                    ..SimConfig::default()
                });
            }
        }
    }
    // largest teams first so the threads finish together
    let mut order: Vec<usize> = (0..jobs.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(jobs[i].agents));
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<SimReport>>> = Mutex::new(vec![None; jobs.len()]);
    std::thread::scope(|s| {
        for _ in 0..g.threads.max(1) {
            s.spawn(|| {
                loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&i) = order.get(k) else { break };
                    let r = run_seeds(&jobs[i], g.seeds);
                    results.lock().expect("results")[i] = Some(r);
                }
            });
        }
    });
    let results: Vec<SimReport> = results
        .into_inner()
        .expect("results")
        .into_iter()
        .map(|r| r.expect("ran"))
        .collect();
    let mut cells = Vec::new();
    let per_cell = g.modes.len();
    for (c, chunk) in results.chunks(per_cell).enumerate() {
        let job = &jobs[c * per_cell];
        cells.push(GridCell {
            agents: job.agents,
            answer_rate: job.answer_rate,
            reports: chunk.to_vec(),
            reference: reference(job.agents, job.answer_rate),
        });
    }
    cells
}

/// The grid as a text table: talk-min/agent-hour per mode, the reference, and the worst rolling
/// window of each mode.
pub fn format_table(g: &GridConfig, cells: &[GridCell]) -> String {
    let mut s = String::new();
    let names: Vec<String> = g.modes.iter().map(|m| m.name()).collect();
    s.push_str(&format!("{:>5} {:>4} ", "p", "N"));
    for n in &names {
        s.push_str(&format!(
            "| {:>11} {:>5} {:>5} {:>5} ",
            n, "abn%", "win%", "dl/h"
        ));
    }
    s.push_str("| ref: prog ratio(L) elapsed oracle\n");
    for c in cells {
        s.push_str(&format!("{:>5.2} {:>4} ", c.answer_rate, c.agents));
        for r in &c.reports {
            s.push_str(&format!(
                "| {:>11.1} {:>5.2} {:>5.2} {:>5.0} ",
                r.talk_min_per_agent_hour,
                100.0 * r.abandon_rate,
                100.0 * r.max_window_abandon_rate_any_seed,
                r.dials_per_agent_hour
            ));
        }
        if let Some(r) = c.reference {
            s.push_str(&format!(
                "| {:>9.1} {:>4.1}({:.2}) {:>7.1} {:>6.1}",
                r.progressive, r.ratio_best, r.ratio_level, r.elapsed_aware, r.oracle
            ));
        }
        s.push('\n');
    }
    s
}

/// The grid as JSON lines: one object per cell and mode, the mode's [`SimReport`] with the
/// cell's §4.1 figures under `reference` (null outside the table).
pub fn json_lines(cells: &[GridCell]) -> String {
    let mut s = String::new();
    for c in cells {
        for r in &c.reports {
            let mut v = serde_json::to_value(r).expect("report serialises");
            v["reference"] = serde_json::to_value(c.reference).expect("reference serialises");
            s.push_str(&v.to_string());
            s.push('\n');
        }
    }
    s
}
