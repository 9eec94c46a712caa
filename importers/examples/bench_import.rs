//! End-to-end import benchmark (figures printed, not a timed test): a generated 1,000,000-row CSV
//! with two phone columns (~5% invalid rows, ~3% duplicates) scrubbed against a 5,000,000-number
//! DNC registry, imported into SQLite (or PostgreSQL with `--pg URL`).
//!
//! cargo run --release -p importers --example bench_import -- [--rows 1000000] [--dnc 5000000]
//!     [--dir DIR] [--pg postgres://…]

use std::time::Instant;

use foundation::Db;
use foundation::clock::SystemClock;
use importers::generate::{CsvStyle, GenOptions, Generator, write_csv, write_dnc_file};

/// CPU seconds (user + system) used by this process so far, from /proc (the machine is shared, so
/// wall time alone overstates the cost).
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// CPU seconds per thread id (with its name) from /proc.
fn cpu_by_tid() -> std::collections::BTreeMap<String, (String, f64)> {
    let mut out = std::collections::BTreeMap::new();
    for t in std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
    {
        let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
        let name = stat
            .split_once('(')
            .and_then(|(_, r)| r.rsplit_once(')'))
            .map(|(n, _)| n.to_owned())
            .unwrap_or_default();
        let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        let f: Vec<&str> = after.split_whitespace().collect();
        let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        let tid = t.file_name().to_string_lossy().into_owned();
        out.insert(tid, (name, (ticks(11) + ticks(12)) / 100.0));
    }
    out
}

/// Samples every thread's CPU time every 100 ms until stopped, so threads that exit before the end
/// (the bulk writer) are still counted with their last sample (at most 100 ms short).
struct ThreadCpu {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    handle: std::thread::JoinHandle<std::collections::BTreeMap<String, (String, f64)>>,
}

impl ThreadCpu {
    fn start() -> Self {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s = stop.clone();
        let handle = std::thread::Builder::new()
            .name("cpu-sampler".into())
            .spawn(move || {
                let start = cpu_by_tid();
                let mut last = start.clone();
                while !s.load(std::sync::atomic::Ordering::Relaxed) {
                    std::thread::sleep(std::time::Duration::from_millis(100));
                    last.extend(cpu_by_tid());
                }
                for (tid, (_, v)) in last.iter_mut() {
                    *v -= start.get(tid).map(|x| x.1).unwrap_or(0.0);
                }
                last
            })
            .expect("sampler thread");
        Self { stop, handle }
    }

    /// CPU seconds per thread name since `start`.
    fn finish(self) -> std::collections::BTreeMap<String, f64> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut out = std::collections::BTreeMap::new();
        for (_, (name, v)) in self.handle.join().expect("sampler") {
            if name != "cpu-sampler" {
                *out.entry(name).or_insert(0.0) += v;
            }
        }
        out
    }
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).map(|l| {
                l.split_whitespace()
                    .nth(1)
                    .unwrap_or("0")
                    .parse::<f64>()
                    .unwrap_or(0.0)
            })
        })
        .unwrap_or(0.0)
        / 1024.0
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |k: &str| {
        args.iter()
            .position(|a| a == k)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let rows: u64 = arg("--rows")
        .map(|v| v.parse())
        .transpose()?
        .unwrap_or(1_000_000);
    let dnc_total: u64 = arg("--dnc")
        .map(|v| v.parse())
        .transpose()?
        .unwrap_or(5_000_000);
    let tmp = tempfile::tempdir()?;
    let dir = arg("--dir")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| tmp.path().to_owned());
    std::fs::create_dir_all(&dir)?;

    let t = Instant::now();
    let csv_path = dir.join("bench.csv");
    let mut opts = GenOptions::new(rows, 2026);
    opts.invalid_share = 0.05;
    opts.duplicate_share = 0.03;
    opts.dnc_share = 0.01;
    let dnc_path = dir.join("dnc.txt");
    // --reuse: keep the files generated by an earlier run in the same --dir (the generator is
    // deterministic, so the expectations are recomputed without writing); the database is new.
    let reuse = args.iter().any(|a| a == "--reuse") && csv_path.exists() && dnc_path.exists();
    let (expected, _) = if reuse {
        for f in ["bench.db", "bench.db-wal", "bench.db-shm"] {
            let _ = std::fs::remove_file(dir.join(f));
        }
        write_csv(
            Generator::new(opts, true),
            &CsvStyle {
                delimiter: b',',
                bom: true,
            },
            std::io::sink(),
        )?
    } else {
        let (expected, dnc_numbers) = write_csv(
            Generator::new(opts, true),
            &CsvStyle {
                delimiter: b',',
                bom: true,
            },
            std::fs::File::create(&csv_path)?,
        )?;
        write_dnc_file(
            &dnc_numbers,
            dnc_total.saturating_sub(dnc_numbers.len() as u64),
            7,
            std::fs::File::create(&dnc_path)?,
        )?;
        (expected, dnc_numbers)
    };
    let size = std::fs::metadata(&csv_path)?.len();
    println!(
        "{} {rows} rows ({:.1} MiB) and {dnc_total} DNC numbers in {:.2?}",
        if reuse { "reused" } else { "generated" },
        size as f64 / 1048576.0,
        t.elapsed()
    );
    let only_import = args.iter().any(|a| a == "--import-only");

    // Reading alone (the share polars could have helped with).
    if !only_import {
        let t = Instant::now();
        let mut reader = importers::reader::RecordReader::open(&csv_path)?;
        let mut fields = Vec::new();
        let mut n = 0u64;
        while !matches!(
            reader.next_row(&mut fields),
            importers::reader::ReadRow::End
        ) {
            n += 1;
        }
        println!("read+decode only: {n} rows in {:.2?}", t.elapsed());

        // Normalisation alone.
        let t = Instant::now();
        let mut norm = importers::phone::Normalizer::new("US")?;
        let mut reader = importers::reader::RecordReader::open(&csv_path)?;
        let (mut ok, mut bad) = (0u64, 0u64);
        while !matches!(
            reader.next_row(&mut fields),
            importers::reader::ReadRow::End
        ) {
            for c in [3, 4] {
                if let Some(f) = fields.get(c) {
                    match norm.normalize(f) {
                        Ok(_) => ok += 1,
                        Err(_) => bad += 1,
                    }
                }
            }
        }
        println!(
            "read+E.164 only: {ok} valid, {bad} not, in {:.2?}",
            t.elapsed()
        );
    }

    let db = match arg("--pg") {
        Some(url) => Db::connect(&url, 4).await?,
        None => Db::connect(&format!("sqlite://{}/bench.db", dir.display()), 4).await?,
    };
    db.migrate().await?;
    let clock = SystemClock;
    let t = Instant::now();
    let load = importers::dnc::load_registry_file(
        &db,
        &clock,
        "us-national",
        &dnc_path,
        clock_now(),
        "US",
    )
    .await?;
    println!(
        "DNC registry: {} numbers stored in {:.2?}",
        load.registry.entries,
        t.elapsed()
    );

    let mut o = importers::ImportOptions::new("bench");
    if !args.iter().any(|a| a == "--no-copy") {
        o.postgres_url = arg("--pg");
    }
    o.batch_rows = 50_000;
    let t = Instant::now();
    let cpu0 = cpu_secs();
    let sampler = ThreadCpu::start();
    let verbose = args.iter().any(|a| a == "--verbose");
    let report = importers::import_file(&db, &clock, &csv_path, &o, &|p| {
        if verbose {
            println!(
                "  {:>8} rows committed at {:.2?}",
                p.rows_committed,
                t.elapsed()
            );
        }
    })
    .await?;
    let secs = t.elapsed().as_secs_f64();
    let cpu = cpu_secs() - cpu0;
    let threads: Vec<String> = sampler
        .finish()
        .into_iter()
        .filter(|(_, v)| *v >= 0.005)
        .map(|(k, v)| format!("{k} {v:.2}"))
        .collect();
    println!("CPU by thread during the import: {}", threads.join(", "));
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "IMPORT ({}): {} rows in {secs:.2} s wall ({:.0} rows/s), {cpu:.2} s CPU; peak RSS {:.0} MiB; loadavg {}",
        db.backend().name(),
        report.rows_read,
        report.rows_read as f64 / secs,
        peak_rss_mib(),
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!(
        "accepted {} rejected {} duplicates {} dnc {} | numbers valid {} invalid {} dnc {}",
        report.accepted,
        report.rejected,
        report.duplicates,
        report.dnc,
        report.numbers.valid,
        report.numbers.invalid,
        report.numbers.dnc
    );
    anyhow::ensure!(report.is_balanced(), "unbalanced report");
    anyhow::ensure!(
        (report.accepted, report.duplicates, report.dnc)
            == (expected.accepted, expected.duplicates, expected.dnc_rows)
            && report.rejected_by_reason == expected.rejected_by_reason,
        "report differs from the generator's expectations: {report:?} vs {expected:?}"
    );
    println!("report matches the generator's expectations");
    Ok(())
}

fn clock_now() -> i64 {
    use foundation::Clock;
    SystemClock.now_ms()
}
