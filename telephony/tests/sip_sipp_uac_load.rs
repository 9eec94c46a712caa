//! sipp as the caller (`-sn uac`) against Dialbridge answering: load, and load with packet loss
//! forcing retransmissions in both directions.

mod sip_common;

use std::time::Duration;

use sip_common::*;
use telephony::sip::listener::SipOptions;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_uac_1000_calls_at_100_cps_none_fail() {
    if !foundation::testing::require_tool("sipp", "sip-tester") {
        return;
    }
    let (sut, _lc) = start(SipOptions::default()).await;
    let dir = scratch("uac-load");
    let target = sut.udp_addr.to_string();
    let port = free_port().to_string();
    let run = run_sipp(
        &dir,
        &[
            "-sn",
            "uac",
            &target,
            "-i",
            "127.0.0.1",
            "-mi",
            "127.0.0.1",
            "-p",
            &port,
            "-r",
            "100",
            "-m",
            "1000",
            "-l",
            "300",
            "-timeout",
            "60s",
            "-timeout_error",
        ],
    )
    .await;
    assert_eq!(run.rc, 0, "sipp failed: {run:?}");
    assert_eq!(run.stat("SuccessfulCall(C)"), 1000, "{run:?}");
    assert_eq!(run.stat("FailedCall(C)"), 0, "{run:?}");
    let stats = settle(&sut, Duration::from_secs(5)).await;
    assert_eq!(stats.inbound_calls_created, 1000);
    assert_eq!(stats.active_calls, 0, "every call ended with its BYE");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_uac_with_10_percent_loss_retransmits_without_duplicate_calls() {
    if !foundation::testing::require_tool("sipp", "sip-tester") {
        return;
    }
    let (sut, _lc) = start(SipOptions::default()).await;
    let dir = scratch("uac-lost");
    let target = sut.udp_addr.to_string();
    let port = free_port().to_string();
    let run = run_sipp(
        &dir,
        &[
            "-sn",
            "uac",
            &target,
            "-i",
            "127.0.0.1",
            "-mi",
            "127.0.0.1",
            "-p",
            &port,
            "-r",
            "50",
            "-m",
            "300",
            "-l",
            "300",
            "-lost",
            "10",
            "-timeout",
            "90s",
            "-timeout_error",
        ],
    )
    .await;
    let created = run.stat("TotalCallCreated");
    let retrans = run.stat("Retransmissions(C)");
    assert!(
        retrans > 0,
        "loss must have forced retransmissions: {run:?}"
    );
    assert_eq!(run.rc, 0, "sipp failed: {run:?}");
    assert_eq!(run.stat("SuccessfulCall(C)"), 300, "{run:?}");
    let stats = settle(&sut, Duration::from_secs(40)).await;
    assert_eq!(
        stats.inbound_calls_created, created,
        "a retransmitted INVITE must never create a second call"
    );
    assert_eq!(stats.active_calls, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_uac_over_tcp_one_connection_and_one_per_call() {
    if !foundation::testing::require_tool("sipp", "sip-tester") {
        return;
    }
    let (sut, _lc) = start(SipOptions::default()).await;
    for (mode, calls) in [("t1", 1000u64), ("tn", 300)] {
        let max_socket: &[&str] = if mode == "tn" {
            &["-max_socket", "1000"]
        } else {
            &[]
        };
        let dir = scratch(&format!("uac-tcp-{mode}"));
        let target = sut.tcp_addr.to_string();
        let port = free_port().to_string();
        let m = calls.to_string();
        let mut args = vec![
            "-sn",
            "uac",
            &target,
            "-t",
            mode,
            "-i",
            "127.0.0.1",
            "-mi",
            "127.0.0.1",
            "-p",
            &port,
            "-r",
            "100",
            "-m",
            &m,
            "-l",
            "300",
            "-timeout",
            "60s",
            "-timeout_error",
        ];
        args.extend_from_slice(max_socket);
        let run = run_sipp(&dir, &args).await;
        assert_eq!(run.rc, 0, "{mode}: {run:?}");
        assert_eq!(run.stat("SuccessfulCall(C)"), calls, "{mode}: {run:?}");
    }
    let stats = settle(&sut, Duration::from_secs(5)).await;
    assert_eq!((stats.inbound_calls_created, stats.active_calls), (1300, 0));
    // Connections closed by sipp are forgotten.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stats = sut.handle.stats().await.unwrap();
    assert!(
        stats.tcp_connections <= 1,
        "closed connections were kept: {stats:?}"
    );
}

/// (user + system) CPU seconds of this process (the SUT; sipp is a child) and of its reaped
/// children (the sipp runs that have ended).
fn cpu_seconds() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let f: Vec<f64> = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .unwrap_or("")
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(0.0))
        .collect();
    let ticks = |a: usize, b: usize| (f.get(a).unwrap_or(&0.0) + f.get(b).unwrap_or(&0.0)) / 100.0;
    (ticks(11, 12), ticks(13, 14))
}

/// Benchmark (run with `--release -- --ignored --nocapture`): the highest sipp call rate at which
/// a 5-second run is sustained: every call answered, BYE'd and counted successful, and sipp
/// reaching at least 95 % of the asked rate (beyond that it only queues calls, which retransmit).
/// Prints, per rate, the SUT's CPU per call and sipp's CPU (whichever is near a full core is the
/// limit). `DIALBRIDGE_BENCH_RATES=500,1000,…` overrides the rates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn benchmark_max_answered_calls_per_second() {
    if !foundation::testing::require_tool("sipp", "sip-tester") {
        return;
    }
    let rates: Vec<u32> = std::env::var("DIALBRIDGE_BENCH_RATES")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![200, 500, 1000, 1500, 2000, 2500, 3000, 3500, 4000]);
    let mut best = 0;
    for rate in rates {
        let (sut, _lc) = start(SipOptions::default()).await;
        let dir = scratch(&format!("bench-{rate}"));
        let target = sut.udp_addr.to_string();
        let port = free_port().to_string();
        let (r, m) = (rate.to_string(), (rate * 5).to_string());
        let t0 = std::time::Instant::now();
        let (cpu0, sipp_cpu0) = cpu_seconds();
        let run = run_sipp(
            &dir,
            &[
                "-sn",
                "uac",
                &target,
                "-i",
                "127.0.0.1",
                "-mi",
                "127.0.0.1",
                "-p",
                &port,
                "-r",
                &r,
                "-m",
                &m,
                "-l",
                "5000",
                "-timeout",
                "60s",
                "-timeout_error",
            ],
        )
        .await;
        let wall = t0.elapsed();
        let (cpu1, sipp_cpu1) = cpu_seconds();
        let ok = run
            .stats
            .get("SuccessfulCall(C)")
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        let failed = run
            .stats
            .get("FailedCall(C)")
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(u64::MAX);
        let retrans = run
            .stats
            .get("Retransmissions(C)")
            .cloned()
            .unwrap_or_default();
        let achieved: f64 = run
            .stats
            .get("CallRate(C)")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        let stats = settle(&sut, Duration::from_secs(10)).await;
        let cpu = cpu1 - cpu0;
        eprintln!(
            "BENCH rate={rate} rc={} successful={ok} failed={failed} retransmissions={retrans} sipp-cps={achieved:.1} wall={:.2}s \
             SUT: {} calls created, {} left active, CPU {cpu:.2} s = {:.0} µs per call ({:.0} % of one core); sipp CPU {:.2} s",
            run.rc,
            wall.as_secs_f64(),
            stats.inbound_calls_created,
            stats.active_calls,
            cpu * 1e6 / ok.max(1) as f64,
            100.0 * cpu / wall.as_secs_f64(),
            sipp_cpu1 - sipp_cpu0,
        );
        if run.rc != 0
            || failed != 0
            || ok != rate as u64 * 5
            || stats.active_calls != 0
            || achieved < 0.95 * rate as f64
        {
            break;
        }
        best = rate;
    }
    eprintln!("BENCH max sustained answered calls/s with 0 failures: {best}");
    assert!(best >= 500, "could not sustain 500 cps");
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Benchmark (run with `--release -- --ignored --nocapture`): signalling memory per established
/// call, with 5,000 concurrent 15-second calls from sipp.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn benchmark_memory_per_call() {
    if !foundation::testing::require_tool("sipp", "sip-tester") {
        return;
    }
    let (sut, _lc) = start(SipOptions::default()).await;
    let dir = scratch("bench-mem");
    let target = sut.udp_addr.to_string();
    let port = free_port().to_string();
    // Warm up allocator pools with a few calls first.
    let _ = run_sipp(
        &dir,
        &[
            "-sn",
            "uac",
            &target,
            "-i",
            "127.0.0.1",
            "-mi",
            "127.0.0.1",
            "-p",
            &port,
            "-r",
            "100",
            "-m",
            "200",
            "-timeout",
            "30s",
        ],
    )
    .await;
    settle(&sut, Duration::from_secs(5)).await;
    let base = rss_kib();
    let child = spawn_sipp(
        &dir,
        &[
            "-sn",
            "uac",
            &target,
            "-i",
            "127.0.0.1",
            "-mi",
            "127.0.0.1",
            "-p",
            &port,
            "-r",
            "500",
            "-m",
            "5000",
            "-l",
            "6000",
            "-d",
            "15000",
            "-timeout",
            "60s",
            "-timeout_error",
        ],
    );
    tokio::time::sleep(Duration::from_secs(11)).await;
    let peak = rss_kib();
    let active = sut.handle.stats().await.unwrap().active_calls;
    let run = wait_sipp(&dir, child).await;
    eprintln!(
        "BENCH memory: base {base} KiB, with {active} established calls {peak} KiB → {:.1} KiB per call (sipp rc {})",
        (peak.saturating_sub(base)) as f64 / active.max(1) as f64,
        run.rc
    );
    assert!(active > 1000, "calls were established concurrently");
    assert_eq!(run.rc, 0, "{run:?}");
}
