//! What `dialbridge import` shows a person: a progress line while it runs, a summary at the end.

use std::io::{IsTerminal, Write};

use importers::{ImportReport, Progress};

/// One line, rewritten in place on a terminal; one line per batch otherwise (logs, CI).
pub fn print(p: &Progress) {
    let pct = if p.bytes_total > 0 {
        p.bytes_read as f64 * 100.0 / p.bytes_total as f64
    } else {
        0.0
    };
    let line = format!(
        "importing {}: {:5.1}%  {} rows  ({} accepted, {} rejected, {} duplicates, {} dnc)",
        p.job_id, pct, p.rows_committed, p.accepted, p.rejected, p.duplicates, p.dnc
    );
    let mut err = std::io::stderr();
    if err.is_terminal() {
        let _ = write!(err, "\r{line}\x1b[K");
    } else {
        let _ = writeln!(err, "{line}");
    }
}

/// Ends the progress line.
pub fn done() {
    if std::io::stderr().is_terminal() {
        eprintln!();
    }
}

pub fn summary(r: &ImportReport) -> String {
    let mut out = format!(
        "import {} into list {:?}: {}\n  rows read   {:>9}\n  accepted    {:>9}  ({} new, {} updated)\n  rejected    {:>9}\n  duplicates  {:>9}\n  dnc         {:>9}\n",
        r.job_id,
        r.list,
        r.state,
        r.rows_read,
        r.accepted,
        r.inserted,
        r.updated,
        r.rejected,
        r.duplicates,
        r.dnc
    );
    for (reason, n) in &r.rejected_by_reason {
        out.push_str(&format!("    rejected: {reason:<28} {n:>9}\n"));
    }
    out.push_str(&format!(
        "  numbers: {} valid, {} invalid, {} on DNC, {} without a time zone ({} ambiguous)\n",
        r.numbers.valid,
        r.numbers.invalid,
        r.numbers.dnc,
        r.numbers.no_timezone,
        r.numbers.timezone_ambiguous
    ));
    for w in &r.warnings {
        out.push_str(&format!("  warning: {w}\n"));
    }
    if r.rejected + r.duplicates + r.dnc > 0 {
        out.push_str(&format!(
            "  rows not imported, with reasons: GET /api/v1/lists/{}/imports/{}/rejected.csv\n",
            r.list, r.job_id
        ));
    }
    out
}
