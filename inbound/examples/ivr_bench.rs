//! IVR load: N concurrent sipp callers (default 200) walk the menu flow on the inbound runtime
//! (TTS prompt, barge-in digit at PT 96, hours check, queue) and wait in the queue until they
//! hang up. Prints failed calls, closed contact records, the peak of live contacts, and this
//! process's CPU time.
//!
//! `cargo run --release -p inbound --example ivr_bench -- [CALLERS] [HOLD_S]`

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use support::*;

fn cpu_ms() -> u64 {
    // utime + stime (fields 14, 15) of /proc/self/stat, in clock ticks (100 Hz).
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    ticks * 10
}

fn screen_count(screen: &str, label: &str) -> Option<u64> {
    screen
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with(label))
        .and_then(|l| l.rsplit('|').next())
        .and_then(|v| v.trim().parse().ok())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let callers: u32 = args.get(1).and_then(|v| v.parse().ok()).unwrap_or(200);
    let hold_s: u32 = args.get(2).and_then(|v| v.parse().ok()).unwrap_or(20);
    if !foundation::testing::require_tool("sipp", "sip-tester")
        || !foundation::testing::require_tool("espeak-ng", "espeak-ng")
    {
        return;
    }
    let sut = start(40000, |_| {}).await;
    let dir = sut.dir.path().to_path_buf();
    write(
        &dir,
        "c.xml",
        &caller_xml(Dtmf::Pt96("1"), 2000, hold_s * 1000),
    );
    let rate = 50.min(callers);
    let mut args = caller_args(
        sut.sip.udp_addr.port(),
        "c.xml",
        DID,
        callers,
        callers,
        rate,
    );
    args.extend([
        "-trace_screen".into(),
        "-screen_file".into(),
        "screen.log".into(),
    ]);
    let cpu0 = cpu_ms();
    let t0 = Instant::now();
    let child = sipp(&dir, &args);
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (rt, p) = (sut.runtime.clone(), peak.clone());
    let watcher = tokio::spawn(async move {
        loop {
            p.fetch_max(rt.live_contacts(), std::sync::atomic::Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let out = wait_sipp(child, Duration::from_secs(hold_s as u64 + 180)).await;
    let elapsed = t0.elapsed();
    let cpu = cpu_ms() - cpu0;
    // Let the last records close.
    eventually("all contacts closed", Duration::from_secs(20), || async {
        contact_rows(&sut.db).await.iter().all(|r| r.1.is_some())
    })
    .await;
    watcher.abort();
    let peak_live = peak.load(std::sync::atomic::Ordering::Relaxed);
    let screen = std::fs::read_to_string(dir.join("screen.log")).unwrap_or_default();
    let ok = screen_count(&screen, "Successful call");
    let failed = screen_count(&screen, "Failed call");
    let rows = contact_rows(&sut.db).await;
    let recs = contacts(&sut.db).await;
    let queued = recs
        .iter()
        .filter(|r| r.stages.iter().any(|s| s.stage == "queued"))
        .count();
    let digit_ok = recs
        .iter()
        .filter(|r| {
            r.stages
                .iter()
                .any(|s| s.stage == "dtmf" && s.detail.starts_with('1'))
        })
        .count();
    println!(
        "ivr_bench: {callers} callers at {rate}/s, each holding {hold_s} s in the queue after the menu"
    );
    println!(
        "  sipp rc {} | successful calls {:?} | failed calls {:?}",
        out.rc, ok, failed
    );
    println!(
        "  contact records {} (closed {}), menu digit '1' seen {}, reached the queue {}",
        rows.len(),
        rows.iter().filter(|r| r.1.is_some()).count(),
        digit_ok,
        queued
    );
    println!("  peak live contacts (sampled) {peak_live}");
    println!(
        "  wall {:.1} s, this process CPU {:.1} s ({:.0} % of one core)",
        elapsed.as_secs_f64(),
        cpu as f64 / 1000.0,
        cpu as f64 / elapsed.as_millis() as f64 * 100.0
    );
    if out.rc != 0 {
        println!("  sipp output tail:\n{}", out.output);
    }
}
