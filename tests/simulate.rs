//! `dialbridge simulate` end to end: the real binary runs the pacing simulator for every mode and
//! prints one JSON object per mode per line (`--json`) or a table, and `--grid --json` one line
//! per cell and mode.

mod common;

use common::run;

fn stdout_lines(out: &std::process::Output) -> Vec<serde_json::Value> {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn num(v: &serde_json::Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} missing or not a number: {v}"))
}

#[test]
fn simulate_prints_every_mode_as_json_lines() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "simulate", "--agents", "5", "--hours", "0.5", "--seeds", "2", "--json",
    ];
    let lines = stdout_lines(&run(dir.path(), &args, &[]));
    let modes: Vec<&str> = lines.iter().map(|l| l["mode"].as_str().unwrap()).collect();
    assert_eq!(lines.len(), 5, "{modes:?}");
    for want in ["predictive", "progressive", "ratio", "vicidial", "oracle"] {
        assert_eq!(
            modes.iter().filter(|m| m.starts_with(want)).count(),
            1,
            "{want} in {modes:?}"
        );
    }
    for l in &lines {
        let mode = l["mode"].as_str().unwrap();
        assert_eq!(l["agents"], 5, "{l}");
        assert_eq!(l["seeds"], 2, "{l}");
        let talk = num(l, "talk_min_per_agent_hour");
        let occupancy = num(l, "occupancy");
        let abandon = num(l, "abandon_rate");
        let window = num(l, "max_window_abandon_rate");
        let dials = num(l, "dials_per_agent_hour");
        let live = num(l, "live_answers_per_agent_hour");
        // talk minutes fit in an hour and are part of the occupied (talk + wrap) time
        assert!(talk > 10.0 && talk < 60.0, "{l}");
        assert!(occupancy <= 1.0 && occupancy * 60.0 >= talk, "{l}");
        // about a fifth of the dials reach a person (the default live-answer rate is 0.2)
        assert!(
            live > 0.1 * dials && live < 0.3 * dials && dials > 0.0,
            "{l}"
        );
        assert!((0.0..=1.0).contains(&abandon) && window >= 0.0, "{l}");
        match mode {
            "progressive" => assert_eq!(abandon, 0.0, "progressive never abandons: {l}"),
            // the pacers that hold the cap, judged in every window (a half-hour shift is one window)
            "predictive" | "oracle" => assert!(abandon <= 0.03 && window <= 0.03, "{l}"),
            _ => {}
        }
    }
    let progressive = lines.iter().find(|l| l["mode"] == "progressive").unwrap();
    let predictive = lines.iter().find(|l| l["mode"] == "predictive").unwrap();
    assert!(
        num(predictive, "dials_per_agent_hour") >= num(progressive, "dials_per_agent_hour"),
        "predictive dials ahead of progressive"
    );

    // the same run as a table names every mode; one mode alone prints one line of JSON
    let out = run(dir.path(), &args[..args.len() - 1], &[]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    for want in [
        "talk-min",
        "occupancy",
        "abandon%",
        "worst window%",
        "vicidial",
        "oracle",
    ] {
        assert!(table.contains(want), "{want} missing:\n{table}");
    }
    let one = stdout_lines(&run(
        dir.path(),
        &[
            "simulate",
            "--agents",
            "5",
            "--hours",
            "0.5",
            "--seeds",
            "1",
            "--mode",
            "ratio:1.4",
            "--cap",
            "0.05",
            "--json",
        ],
        &[],
    ));
    assert_eq!(one.len(), 1);
    assert_eq!(one[0]["mode"], "ratio@1.40");
}

#[test]
fn simulate_grid_prints_a_json_line_per_cell_and_mode() {
    let dir = tempfile::tempdir().unwrap();
    let lines = stdout_lines(&run(
        dir.path(),
        &[
            "simulate", "--grid", "--agents", "5", "--hours", "0.25", "--seeds", "1", "--json",
        ],
        &[],
    ));
    // 5 agents × the three answer rates × progressive, predictive, vicidial and oracle
    assert_eq!(lines.len(), 12, "{lines:?}");
    for l in &lines {
        assert_eq!(l["agents"], 5, "{l}");
        assert!(num(l, "talk_min_per_agent_hour") > 0.0, "{l}");
        // the §4.1 reference figures of the cell come along
        assert!(num(&l["reference"], "oracle") > 30.0, "{l}");
    }
    let rates: std::collections::BTreeSet<String> =
        lines.iter().map(|l| l["answer_rate"].to_string()).collect();
    assert_eq!(rates.len(), 3, "{rates:?}");
    let out = run(dir.path(), &["simulate", "--mode", "wild"], &[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--mode"));
}
