//! The drift scenario of acceptance item 5: the live-answer share slides 0.30 → 0.10 over the
//! shift while the team goes 20 → 10 → 20 agents (an agent leaves only after finishing a call).
//! A controller is compared per segment with the best fixed ratio for that segment.

use serde::{Deserialize, Serialize};

use super::{AgentStep, SimConfig, SimMode, SimReport, run_seeds};

/// The drift scenario for `mode` (8-h shift, changes at 1/3 and 2/3 of it).
pub fn scenario(mode: SimMode) -> SimConfig {
    SimConfig {
        mode,
        agents: 20,
        answer_rate: 0.30,
        answer_rate_end: Some(0.10),
        agent_steps: vec![
            AgentStep {
                at_hours: 8.0 / 3.0,
                agents: 10,
            },
            AgentStep {
                at_hours: 16.0 / 3.0,
                agents: 20,
            },
        ],
        hours: 8.0,
        ..SimConfig::default()
    }
}

/// The best fixed ratio of one segment: the level with the most talk time whose windows ending in
/// the segment stay under the cap in every seed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SegmentBest {
    pub segment: usize,
    pub level: f64,
    pub talk_min_per_agent_hour: f64,
    pub max_window_abandon_rate: f64,
}

/// Runs fixed ratios at each level and picks, per segment, the best compliant one.
pub fn best_fixed_ratio(
    base: &SimConfig,
    levels: &[f64],
    seeds: u32,
) -> (Vec<SegmentBest>, Vec<SimReport>) {
    let runs: Vec<SimReport> = levels
        .iter()
        .map(|&level| {
            run_seeds(
                &SimConfig {
                    mode: SimMode::Ratio { level },
                    ..base.clone()
                },
                seeds,
            )
        })
        .collect();
    let segments = runs.first().map_or(0, |r| r.segments.len());
    let best = (0..segments)
        .map(|i| {
            let mut best = SegmentBest {
                segment: i,
                level: 1.0,
                talk_min_per_agent_hour: 0.0,
                max_window_abandon_rate: 0.0,
            };
            for (r, &level) in runs.iter().zip(levels) {
                let s = &r.segments[i];
                if s.max_window_abandon_rate <= base.abandon_cap
                    && s.talk_min_per_agent_hour > best.talk_min_per_agent_hour
                {
                    best = SegmentBest {
                        segment: i,
                        level,
                        talk_min_per_agent_hour: s.talk_min_per_agent_hour,
                        max_window_abandon_rate: s.max_window_abandon_rate,
                    };
                }
            }
            best
        })
        .collect();
    (best, runs)
}
