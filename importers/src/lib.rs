//! CRM contact lists in, clean dialable leads out.
//!
//! `import_file` reads a CSV/TSV (delimiter sniffed, quoted fields, UTF-8 with or without BOM,
//! Windows-1252 fallback per row, gzip) or XLSX export, recognises the CRM's columns (or follows a
//! mapping file), normalises every phone cell to E.164 with a reason for each rejection, dedupes
//! within the file and against the list, scrubs against the internal DNC list and registry files,
//! assigns candidate IANA time zones with their sources, and writes leads in batched transactions
//! with a report in which `rows_read = accepted + rejected + duplicates + dnc`.
//!
//! Modules: [`reader`] (files to records), [`mapping`] (columns to roles), [`phone`] (E.164),
//! [`tz`] (time-zone candidates, tables in `data/`), [`dnc`] (DNC sets and registries),
//! [`store`] (database writes; [`pgcopy`] and [`sqlite_bulk`] are the bulk fast paths), [`import`] (the pipeline), [`report`], [`generate`] (messy CRM
//! exports for tests and benchmarks).
//!
//! ## Why no polars
//! The issue suggested `polars`. It is not used, after measuring: the pipeline is row-at-a-time
//! work (phone parsing, hash lookups, per-row outcomes) that a columnar engine does not speed up;
//! the `csv` crate streams the file with a reused record buffer in constant memory, and reading is a
//! small share of the import. `examples/bench_import.rs` on the 1,000,000-row, 124 MiB file (release,
//! shared 2-core machine): read + decode 0.34–0.51 s, read + E.164 of both phone columns 1.8–2.0 s,
//! whole import into SQLite 15.7 s CPU then (about 10.8 s now, see `BENCHMARKS.md`) — reading is
//! never the large part. polars with lazy CSV would
//! add ~3 min to a clean debug build and 10–18 min to a release build here and ~50 MB to the binary
//! (`../shared/reference/rust-crates.md`) to speed up the 0.4 s part. If a columnar step is ever
//! needed (e.g. list analytics), put it in a separate crate.
//!
//! ## Performance notes
//! - E.164: `phonenumber` costs ~5 µs a number (regexes behind a locked cache); 10-digit NANP
//!   numbers are memoised per NPA-NXX (see [`phone`]), which makes the common case ~50× cheaper.
//! - SQLite: bulk inserts use anonymous `?` placeholders (sqlx-sqlite resolves `$N` by name with a
//!   linear scan: O(n²) per statement, 70% of the time before the fix), 20,000+ rows per
//!   transaction. `lead_phones` has no index on `e164` (a random-insert index was 55% of SQLite's
//!   time at 1M rows).
//! - SQLite writes run on a raw connection of their own ([`sqlite_bulk`] over a small safe wrapper
//!   of the C API, `sqlite_raw`; inside the write lane) on a writer thread: the batch's strings are
//!   bound in place into prepared 256-row INSERTs instead of being copied into sqlx arguments,
//!   and the written batch goes back to the row thread, which frees it and reuses its buffers.
//! - Rows are processed on a thread of their own (`import-rows`) with few allocations: a lead's
//!   text fields share one buffer ([`store::LeadText`]), phone digits stay on the stack, hash maps
//!   use foldhash. `examples/bench_import.rs` prints CPU seconds per thread; the history of these
//!   changes with figures is in `importers/BENCHMARKS.md` (1,000,000 rows into SQLite: 18.5 → about
//!   10.8 CPU seconds).
//! - PostgreSQL: COPY ([`pgcopy`]), two batches in flight on two connections, committed in order;
//!   the server's per-row foreign-key checks are most of its time.
//!
//! ## Calling it (CLI / HTTP)
//! ```no_run
//! # async fn f(db: &foundation::Db) -> anyhow::Result<()> {
//! let clock = foundation::clock::SystemClock;
//! let mut opts = importers::ImportOptions::new("spring-campaign");
//! opts.region = Some("US".into());
//! opts.mapping = Some(importers::MappingSpec::load("map.toml".as_ref())?);
//! opts.dnc_files.push("dnc.txt".into());
//! // HTTP: set opts.job_id = Some(foundation::ids::public_id("import", now)) to answer with the id
//! // at once, run import_file in a task, and serve importers::job_report(db, &id) for progress.
//! let report = importers::import_file(db, &clock, "leads.csv".as_ref(), &opts, &|p| {
//!     eprintln!("{} rows, {}/{} bytes", p.rows_committed, p.bytes_read, p.bytes_total)
//! })
//! .await?;
//! println!("{}", serde_json::to_string(&report)?);
//! # Ok(()) }
//! ```

pub mod dnc;
pub mod generate;
pub mod import;
pub mod mapping;
pub mod pgcopy;
pub mod phone;
pub mod reader;
pub mod report;
pub mod sqlite_bulk;
mod sqlite_raw;
pub mod store;
pub mod tz;

pub use dnc::{DncIndex, DncSet, RegistryInfo, is_registry_stale};
pub use import::{DuplicatePolicy, ImportOptions, Progress, import_file, job_report};
pub use mapping::MappingSpec;
pub use report::{ImportReport, NumberCounts};
pub use store::{LeadList, write_outcomes_csv};
