//! The pacing benchmark: the whole grid of acceptance item 4 (agents × live-answer rate ×
//! progressive / predictive / oracle), means over seeds, next to the reference table.
//!
//! `cargo run --release -p dialer --example grid -- [--hours H] [--seeds N] [--threads T]
//!  [--agents 5,10,...] [--rates 0.1,0.2] [--modes progressive,predictive,oracle,ratio:1.2] [--json]`

use dialer::sim::SimMode;
use dialer::sim::grid::{GridConfig, format_table, run_grid};

fn list<T: std::str::FromStr>(s: &str) -> Vec<T> {
    s.split(',').filter_map(|x| x.trim().parse().ok()).collect()
}

fn main() {
    let mut g = GridConfig {
        threads: 2,
        ..GridConfig::default()
    };
    let mut json = false;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let v = args.get(i + 1).cloned().unwrap_or_default();
        match args[i].as_str() {
            "--hours" => g.hours = v.parse().expect("hours"),
            "--seeds" => g.seeds = v.parse().expect("seeds"),
            "--first-seed" => g.first_seed = v.parse().expect("seed"),
            "--threads" => g.threads = v.parse().expect("threads"),
            "--agents" => g.agents = list(&v),
            "--rates" => g.answer_rates = list(&v),
            "--cap" => g.abandon_cap = v.parse().expect("cap"),
            "--modes" => {
                g.modes = v
                    .split(',')
                    .map(|m| SimMode::parse(m, 1.2).expect("mode"))
                    .collect()
            }
            "--json" => {
                json = true;
                i += 1;
                continue;
            }
            other => panic!("unknown argument {other}"),
        }
        i += 2;
    }
    let t0 = std::time::Instant::now();
    let cells = run_grid(&g);
    if json {
        println!("{}", serde_json::to_string_pretty(&cells).expect("json"));
    } else {
        println!(
            "talk-min per agent-hour; abn% = abandonment over the shift (mean of seeds); win% = worst rolling {}-h window in any seed; dl/h = dials per agent-hour",
            1
        );
        println!(
            "{} seeds x {} h, cap {:.1}%\n",
            g.seeds,
            g.hours,
            100.0 * g.abandon_cap
        );
        print!("{}", format_table(&g, &cells));
        println!("\n({:.1} s)", t0.elapsed().as_secs_f64());
    }
}
