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

/// Benchmark (run with `--release -- --ignored --nocapture`): the highest sipp call rate at which
/// every call of a 5-second run is answered, BYE'd and counted successful.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn benchmark_max_answered_calls_per_second() {
    if !foundation::testing::require_tool("sipp", "sip-tester") {
        return;
    }
    let mut best = 0;
    for rate in [200u32, 500, 1000, 1500, 2000, 3000, 4000] {
        let (sut, _lc) = start(SipOptions::default()).await;
        let dir = scratch(&format!("bench-{rate}"));
        let target = sut.udp_addr.to_string();
        let port = free_port().to_string();
        let (r, m) = (rate.to_string(), (rate * 5).to_string());
        let t0 = std::time::Instant::now();
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
        let achieved = run.stats.get("CallRate(C)").cloned().unwrap_or_default();
        eprintln!(
            "BENCH rate={rate} rc={} successful={ok} failed={failed} retransmissions={retrans} sipp-cps={achieved} wall={:?}",
            run.rc,
            t0.elapsed()
        );
        if run.rc != 0 || failed != 0 || ok != rate as u64 * 5 {
            break;
        }
        best = rate;
    }
    eprintln!("BENCH max answered calls/s with 0 failures: {best}");
    assert!(best >= 200, "could not sustain even 200 cps");
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
