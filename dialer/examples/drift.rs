//! The drift scenario (acceptance item 5): live-answer share 0.30 → 0.10 over the shift, agents
//! 20 → 10 → 20. Prints, per segment, the talk time of the predictive pacer next to the best fixed
//! ratio for that segment (found by sweeping the level), the worst rolling-hour abandonment rate
//! and the settling time after each change.
//!
//! `cargo run --release -p dialer --example drift -- [--seeds N] [--ratio-seeds N]`

use dialer::sim::drift::{best_fixed_ratio, scenario};
use dialer::sim::{SimMode, run_seeds};

fn main() {
    let mut seeds = 10u32;
    let mut ratio_seeds = 3u32;
    let args: Vec<String> = std::env::args().skip(1).collect();
    for w in args.chunks(2) {
        match (w[0].as_str(), w.get(1)) {
            ("--seeds", Some(v)) => seeds = v.parse().expect("seeds"),
            ("--ratio-seeds", Some(v)) => ratio_seeds = v.parse().expect("ratio seeds"),
            (other, _) => panic!("unknown argument {other}"),
        }
    }
    let levels: Vec<f64> = (0..=24).map(|i| 1.0 + 0.05 * i as f64).collect();
    let (best, _) = best_fixed_ratio(&scenario(SimMode::Progressive), &levels, ratio_seeds);
    println!(
        "drift: p 0.30 -> 0.10 linearly over 8 h; agents 20 -> 10 (at 2h40) -> 20 (at 5h20); cap 3%"
    );
    println!(
        "best fixed ratio per segment ({ratio_seeds} seeds, levels 1.00..2.20 step 0.05, every rolling hour ending in the segment <= cap):"
    );
    for b in &best {
        println!(
            "  segment {}: L = {:.2}  talk {:.1} min/agent-h  worst window {:.2}%",
            b.segment,
            b.level,
            b.talk_min_per_agent_hour,
            100.0 * b.max_window_abandon_rate
        );
    }
    for mode in [
        SimMode::Progressive,
        SimMode::Predictive,
        SimMode::Oracle,
        SimMode::Vicidial,
    ] {
        let r = run_seeds(&scenario(mode), seeds);
        println!(
            "\n{} ({} seeds): talk {:.1} min/agent-h, abandonment {:.2}%, worst rolling hour {:.2}% (any seed)",
            r.mode,
            r.seeds,
            r.talk_min_per_agent_hour,
            100.0 * r.abandon_rate,
            100.0 * r.max_window_abandon_rate_any_seed
        );
        for (s, b) in r.segments.iter().zip(&best) {
            println!(
                "  {:.2}-{:.2} h, {:>2} agents: talk {:.1} (best ratio {:.1}, diff {:+.1}), abandonment {:.2}%, worst window {:.2}%, settle {:.0} s",
                s.from_hours,
                s.to_hours,
                s.agents,
                s.talk_min_per_agent_hour,
                b.talk_min_per_agent_hour,
                s.talk_min_per_agent_hour - b.talk_min_per_agent_hour,
                100.0 * s.abandon_rate,
                100.0 * s.max_window_abandon_rate,
                s.settle_s
            );
        }
    }
}
