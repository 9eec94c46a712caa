//! End-to-end imports of generated messy CRM exports on SQLite and PostgreSQL, with exact counts
//! per outcome taken from the generator's record of what it wrote.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use foundation::Db;
use foundation::clock::VirtualClock;
use foundation::testing::TempPgDatabase;
use importers::generate::{
    CrmStyle, CsvStyle, Expected, GenOptions, Generator, write_csv, write_dnc_file,
};
use importers::{DuplicatePolicy, ImportOptions, ImportReport, import_file};

const NOW: i64 = 1_764_000_000_000; // 2025-11-24

async fn sqlite(dir: &Path) -> Db {
    let db = Db::connect(&format!("sqlite://{}/t.db", dir.display()), 4)
        .await
        .unwrap();
    db.migrate().await.unwrap();
    db
}

fn no_progress(_: &importers::Progress) {}

fn gen_csv(
    dir: &Path,
    name: &str,
    opts: GenOptions,
    latin1: bool,
    style: CsvStyle,
) -> (PathBuf, Expected, Vec<u64>) {
    let path = dir.join(name);
    let file = std::fs::File::create(&path).unwrap();
    let (e, dnc) = write_csv(Generator::new(opts, latin1), &style, file).unwrap();
    (path, e, dnc)
}

fn map(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs
        .iter()
        .filter(|(_, v)| *v > 0)
        .map(|(k, v)| (k.to_string(), *v))
        .collect()
}

/// The report must match the generator's expectations exactly.
fn assert_matches(r: &ImportReport, e: &Expected, dnc_label: &str) {
    assert!(r.is_balanced(), "{r:#?}");
    assert_eq!(r.rows_read, e.rows, "rows");
    assert_eq!(r.accepted, e.accepted, "accepted");
    assert_eq!(
        r.rejected_by_reason, e.rejected_by_reason,
        "rejected by reason"
    );
    assert_eq!(r.duplicates, e.duplicates, "duplicates");
    assert_eq!(
        r.duplicates_by_reason,
        map(&[("duplicate_in_file", e.duplicates)])
    );
    assert_eq!(r.dnc, e.dnc_rows, "dnc rows");
    assert_eq!(r.dnc_by_source, map(&[(dnc_label, e.dnc_rows)]));
    assert_eq!(
        r.numbers.invalid_by_reason, e.invalid_numbers_by_reason,
        "invalid numbers"
    );
    assert_eq!(r.numbers.dnc, e.dnc_numbers, "dnc numbers");
    assert_eq!(
        r.numbers.with_extension, e.stored_with_extension,
        "extensions"
    );
    assert_eq!(r.numbers.no_timezone, 0);
}

async fn count(db: &Db, sql: &str, job: Option<&str>) -> i64 {
    match job {
        Some(j) => sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
            .bind(j)
            .fetch_one(db.pool())
            .await
            .unwrap(),
        None => sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
            .fetch_one(db.pool())
            .await
            .unwrap(),
    }
}

/// Import, re-import (no duplicates created), re-import with the update policy.
async fn messy_csv_round(db: &Db, dir: &Path, postgres_url: Option<&str>) {
    let clock = VirtualClock::at_ms(NOW);
    let mut opts = GenOptions::new(3000, 42);
    opts.invalid_share = 0.06;
    opts.duplicate_share = 0.04;
    opts.dnc_share = 0.02;
    opts.blank_row_share = 0.005;
    opts.uk_share = 0.01;
    opts.accented_share = 0.1;
    let (path, e, dnc_numbers) = gen_csv(
        dir,
        "salesforce.csv",
        opts,
        true,
        CsvStyle {
            delimiter: b',',
            bom: true,
        },
    );
    let dnc_path = dir.join("dnc.txt");
    write_dnc_file(
        &dnc_numbers,
        1000,
        1,
        std::fs::File::create(&dnc_path).unwrap(),
    )
    .unwrap();
    assert!(
        e.windows_1252_rows > 100 && e.duplicates > 50 && e.dnc_rows > 20,
        "{e:?}"
    );

    let mut o = ImportOptions::new("spring");
    o.region = Some("US".into());
    o.dnc_files.push(dnc_path.clone());
    o.batch_rows = 500;
    o.postgres_url = postgres_url.map(str::to_owned);
    let progress_calls = std::sync::atomic::AtomicU64::new(0);
    let r = import_file(db, &clock, &path, &o, &|p| {
        assert!(p.rows_committed <= 3000);
        progress_calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    })
    .await
    .unwrap();
    assert_matches(&r, &e, "file:dnc.txt");
    assert!(
        progress_calls.into_inner() >= 5,
        "one progress call per batch"
    );
    assert_eq!(r.inserted, e.accepted);
    assert_eq!(r.windows_1252_rows, e.windows_1252_rows);
    assert_eq!(r.format.as_ref().unwrap().encoding, "utf-8-bom");
    assert_eq!(r.mapping.phones, ["Phone", "Mobile Phone"]);
    assert_eq!(r.mapping.crm_id.as_deref(), Some("Contact ID"));
    assert_eq!(r.state, "completed");

    // The database agrees with the report.
    let list_id = r.list_id;
    assert_eq!(
        importers::store::lead_count(db, list_id).await.unwrap(),
        e.accepted as i64
    );
    let phones = count(db, "SELECT COUNT(*) FROM lead_phones", None).await;
    assert_eq!(phones, r.numbers.stored as i64);
    let orphan_leads = count(db, "SELECT COUNT(*) FROM leads l WHERE NOT EXISTS (SELECT 1 FROM lead_phones p WHERE p.lead_id = l.id)", None).await;
    assert_eq!(orphan_leads, 0, "every lead has its numbers");
    let dnc_phones = count(
        db,
        "SELECT COUNT(*) FROM lead_phones WHERE dnc = 1 AND dialable = 0",
        None,
    )
    .await;
    assert!(dnc_phones > 0);
    assert_eq!(
        dnc_phones as u64,
        r.numbers.stored - r.numbers.dialable,
        "partial-DNC numbers are stored, not dialable"
    );
    let outcomes = count(
        db,
        "SELECT COUNT(*) FROM import_row_outcomes o JOIN import_jobs j ON j.id = o.job_id WHERE j.public_id = $1",
        Some(&r.job_id),
    )
    .await;
    assert_eq!(outcomes as u64, r.rejected + r.duplicates + r.dnc);
    // An accented name written as Windows-1252 arrives as UTF-8.
    let accented = count(db, "SELECT COUNT(*) FROM leads WHERE first_name IN ('José','Zoë','Françoise','Jürgen','Renée','Søren','Inés','André','Björn','Chloé')", None).await;
    assert!(accented > 0);
    let consent = count(
        db,
        "SELECT COUNT(*) FROM leads WHERE consent_type = 'pewc' AND consent_at > 1735689600000",
        None,
    )
    .await;
    assert!(consent > 0, "consent type and date mapped");

    // Rejected rows download as CSV with a reason column.
    let mut csv_out = Vec::new();
    let n = importers::write_outcomes_csv(db, &r.job_id, Some("rejected"), &mut csv_out)
        .await
        .unwrap();
    assert_eq!(n, r.rejected);
    let text = String::from_utf8(csv_out).unwrap();
    assert!(
        text.starts_with("source_row,outcome,reason,Contact ID,First Name"),
        "{}",
        &text[..80]
    );
    assert_eq!(
        csv::Reader::from_reader(text.as_bytes()).records().count() as u64,
        r.rejected
    );

    // The same file again: nothing new.
    let again = import_file(db, &clock, &path, &o, &no_progress)
        .await
        .unwrap();
    assert!(again.is_balanced());
    assert_eq!(
        (again.accepted, again.rejected, again.dnc),
        (0, r.rejected, r.dnc)
    );
    assert_eq!(again.duplicates, e.accepted + e.duplicates);
    assert_eq!(again.duplicates_by_reason["duplicate_in_list"], e.accepted);
    assert_eq!(
        importers::store::lead_count(db, list_id).await.unwrap(),
        e.accepted as i64
    );

    // Update policy: every existing lead is refreshed, none added.
    o.duplicate_policy = DuplicatePolicy::Update;
    let upd = import_file(db, &clock, &path, &o, &no_progress)
        .await
        .unwrap();
    assert!(upd.is_balanced());
    assert_eq!(
        (upd.inserted, upd.updated, upd.duplicates),
        (0, e.accepted, e.duplicates)
    );
    assert_eq!(
        importers::store::lead_count(db, list_id).await.unwrap(),
        e.accepted as i64
    );
    assert_eq!(
        count(db, "SELECT COUNT(*) FROM lead_phones", None).await,
        phones,
        "numbers replaced, not added"
    );
}

#[tokio::test]
async fn messy_csv_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite(dir.path()).await;
    messy_csv_round(&db, dir.path(), None).await;
}

#[tokio::test]
async fn messy_csv_postgres() {
    let Some(pg) = TempPgDatabase::create().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db = Db::connect(&pg.url, 4).await.unwrap();
    db.migrate().await.unwrap();
    messy_csv_round(&db, dir.path(), None).await;
    db.close().await;
}

#[tokio::test]
async fn messy_csv_postgres_copy() {
    let Some(pg) = TempPgDatabase::create().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db = Db::connect(&pg.url, 4).await.unwrap();
    db.migrate().await.unwrap();
    messy_csv_round(&db, dir.path(), Some(&pg.url)).await;
    db.close().await;
}

#[tokio::test]
async fn every_crm_style_delimiter_and_gzip() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite(dir.path()).await;
    let clock = VirtualClock::at_ms(NOW);
    let cases = [
        (CrmStyle::HubSpot, b'\t', false, false, "hubspot.tsv"),
        (CrmStyle::Dynamics, b';', true, false, "dynamics.csv"),
        (CrmStyle::Zoho, b'|', false, true, "zoho.csv"),
        (CrmStyle::Salesforce, b',', false, true, "sf.csv"),
    ];
    for (i, (style, delim, bom, gzip, name)) in cases.into_iter().enumerate() {
        let mut opts = GenOptions::new(800, 100 + i as u64);
        opts.style = style;
        let (mut path, e, dnc) = gen_csv(
            dir.path(),
            name,
            opts,
            !gzip,
            CsvStyle {
                delimiter: delim,
                bom,
            },
        );
        if gzip {
            let gz = dir.path().join(format!("{name}.gz"));
            let mut enc = flate2::write::GzEncoder::new(
                std::fs::File::create(&gz).unwrap(),
                flate2::Compression::fast(),
            );
            std::io::copy(&mut std::fs::File::open(&path).unwrap(), &mut enc).unwrap();
            enc.finish().unwrap();
            path = gz;
        }
        let dnc_path = dir.path().join(format!("dnc{i}.txt"));
        write_dnc_file(&dnc, 50, 2, std::fs::File::create(&dnc_path).unwrap()).unwrap();
        let mut o = ImportOptions::new(&format!("list-{i}"));
        o.dnc_files.push(dnc_path);
        let r = import_file(&db, &clock, &path, &o, &no_progress)
            .await
            .unwrap();
        assert_matches(&r, &e, &format!("file:dnc{i}.txt"));
        let f = r.format.unwrap();
        assert_eq!(f.delimiter, (delim as char).to_string(), "{name}");
        assert_eq!(f.container, if gzip { "csv.gz" } else { "csv" });
        assert_eq!(r.mapping.phones.len(), 2, "{name}: {:?}", r.mapping.phones);
        assert!(r.mapping.crm_id.is_some(), "{name}");
    }
}

#[tokio::test]
async fn xlsx_with_numbers_and_dates_stored_as_such() {
    use importers::generate::Cell;
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite(dir.path()).await;
    let clock = VirtualClock::at_ms(NOW);
    let mut opts = GenOptions::new(1500, 9);
    opts.style = CrmStyle::HubSpot;
    let mut g = Generator::new(opts, false);
    let mut wb = rust_xlsxwriter::Workbook::new();
    let ws = wb.add_worksheet();
    let date_fmt = rust_xlsxwriter::Format::new().set_num_format("yyyy-mm-dd");
    for (c, h) in g.headers().iter().enumerate() {
        ws.write_string(0, c as u16, h).unwrap();
    }
    let (mut numbers, mut dates) = (0, 0);
    for (r, row) in g.by_ref().enumerate() {
        for (c, cell) in row.cells.iter().enumerate() {
            let (r, c) = (r as u32 + 1, c as u16);
            match cell {
                Cell::Text(s) => {
                    ws.write_string(r, c, s).unwrap();
                }
                Cell::Number(n) => {
                    ws.write_number(r, c, *n).unwrap();
                    numbers += 1;
                }
                Cell::Date(d) => {
                    let dt = rust_xlsxwriter::ExcelDateTime::from_ymd(
                        d.year_ce().1 as u16,
                        d.month0() as u8 + 1,
                        d.day0() as u8 + 1,
                    )
                    .unwrap();
                    ws.write_datetime_with_format(r, c, &dt, &date_fmt).unwrap();
                    dates += 1;
                }
                Cell::Empty => {}
            }
        }
    }
    use chrono::Datelike;
    let path = dir.path().join("hubspot.xlsx");
    wb.save(&path).unwrap();
    assert!(
        numbers > 100 && dates > 100,
        "the file really holds numbers and dates"
    );
    let dnc_path = dir.path().join("dnc.txt");
    write_dnc_file(
        &g.dnc_numbers,
        10,
        3,
        std::fs::File::create(&dnc_path).unwrap(),
    )
    .unwrap();
    let mut o = ImportOptions::new("xlsx");
    o.dnc_files.push(dnc_path);
    let r = import_file(&db, &clock, &path, &o, &no_progress)
        .await
        .unwrap();
    assert_matches(&r, &g.expected, "file:dnc.txt");
    assert_eq!(r.format.unwrap().container, "xlsx");
    // HubSpot record ids stored as numbers come back without ".0"; dates as ISO dates.
    let crm: Vec<String> =
        sqlx::query_scalar("SELECT crm_id FROM leads WHERE crm_id IS NOT NULL ORDER BY id LIMIT 3")
            .fetch_all(db.pool())
            .await
            .unwrap();
    assert!(crm.iter().all(|c| c.parse::<u64>().is_ok()), "{crm:?}");
    let consent = count(
        &db,
        "SELECT COUNT(*) FROM leads WHERE consent_at IS NOT NULL",
        None,
    )
    .await;
    assert!(consent > 0);
}

fn zones(json: &str) -> Vec<(String, Vec<String>)> {
    let v: Vec<serde_json::Value> = serde_json::from_str(json).unwrap();
    v.iter()
        .map(|c| {
            (
                c["tz"].as_str().unwrap().to_owned(),
                c["sources"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| s.as_str().unwrap().to_owned())
                    .collect(),
            )
        })
        .collect()
}

async fn tz_of(db: &Db, crm: &str) -> (Vec<(String, Vec<String>)>, i64, i64) {
    let row: (String, i64, i64) = sqlx::query_as(
        "SELECT p.tz_candidates, CAST(p.tz_ambiguous AS BIGINT), CAST(p.dialable AS BIGINT) FROM lead_phones p \
         JOIN leads l ON l.id = p.lead_id WHERE l.crm_id = $1 AND p.position = 0",
    )
    .bind(crm)
    .fetch_one(db.pool())
    .await
    .unwrap();
    (zones(&row.0), row.1, row.2)
}

fn s(v: &[(&str, &[&str])]) -> Vec<(String, Vec<String>)> {
    v.iter()
        .map(|(t, src)| (t.to_string(), src.iter().map(|x| x.to_string()).collect()))
        .collect()
}

#[tokio::test]
async fn time_zones_by_postal_code_area_code_explicit_and_country() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite(dir.path()).await;
    let clock = VirtualClock::at_ms(NOW);
    let csv = "Id,Name,Work,TZ,Zip\n\
        a1,ZIP and area agree,(312) 555-0100,,60601\n\
        a2,area code only,212-555-0123,,\n\
        a3,explicit disagrees,312-555-0101,America/Denver,\n\
        a4,explicit agrees,312-555-0102,Central,\n\
        a5,toll-free with El Paso ZIP,800-555-0199,,79901\n\
        a6,toll-free alone,888-222-3333,,\n\
        a7,UK,+44 20 7946 0958,,\n\
        a8,South Dakota spans zones,605-555-0100,,\n\
        a9,Greenland (no zone table),+299 321000,,\n\
        a10,Canada by postal code,613-555-0123,,K1A 0B1\n\
        a11,mobile moved to another state,415-555-0100,,10001\n";
    let path = dir.path().join("tz.csv");
    std::fs::write(&path, csv).unwrap();
    let mapping_path = dir.path().join("map.toml");
    std::fs::write(
        &mapping_path,
        "crm_id = \"Id\"\nphones = [\"Work\"]\ntimezone = \"TZ\"\npostal_code = \"Zip\"\n",
    )
    .unwrap();
    let mut o = ImportOptions::new("tz");
    o.mapping = Some(importers::MappingSpec::load(&mapping_path).unwrap());
    let r = import_file(&db, &clock, &path, &o, &no_progress)
        .await
        .unwrap();
    assert!(r.is_balanced());
    assert_eq!((r.rows_read, r.accepted, r.rejected), (11, 10, 1));
    assert_eq!(
        r.rejected_by_reason,
        map(&[("no_timezone", 1)]),
        "Greenland has no candidate zone"
    );
    assert_eq!(r.numbers.no_timezone, 1);

    assert_eq!(
        tz_of(&db, "a1").await,
        (
            s(&[(
                "America/Chicago",
                &["postal_code", "area_code_libphonenumber"]
            )]),
            0,
            1
        )
    );
    assert_eq!(
        tz_of(&db, "a2").await,
        (
            s(&[("America/New_York", &["area_code_libphonenumber"])]),
            0,
            1
        )
    );
    assert_eq!(
        tz_of(&db, "a3").await,
        (
            s(&[
                ("America/Denver", &["explicit"]),
                ("America/Chicago", &["area_code_libphonenumber"])
            ]),
            1,
            1
        ),
        "disagreeing sources are all kept and flagged"
    );
    assert_eq!(
        tz_of(&db, "a4").await,
        (
            s(&[("America/Chicago", &["explicit", "area_code_libphonenumber"])]),
            0,
            1
        )
    );
    assert_eq!(
        tz_of(&db, "a5").await,
        (s(&[("America/Denver", &["postal_code"])]), 0, 1)
    );
    let (a6, amb6, _) = tz_of(&db, "a6").await;
    assert_eq!(
        a6.len(),
        7,
        "a US number known only by its country gets every US zone"
    );
    assert!(a6.iter().all(|(_, src)| src == &["country"]) && amb6 == 1);
    assert_eq!(
        tz_of(&db, "a7").await,
        (s(&[("Europe/London", &["country"])]), 0, 1)
    );
    assert_eq!(
        tz_of(&db, "a8").await,
        (
            s(&[
                ("America/Denver", &["area_code_libphonenumber"]),
                ("America/North_Dakota/Center", &["area_code_libphonenumber"])
            ]),
            1,
            1
        ),
        "an area code spanning zones keeps both (libphonenumber's map: \
         `1605|America/Denver&America/North_Dakota/Center`, no longer prefix for 605-555)"
    );
    assert_eq!(
        tz_of(&db, "a10").await,
        (
            s(&[(
                "America/Toronto",
                &["postal_code", "area_code_libphonenumber"]
            )]),
            0,
            1
        )
    );
    assert_eq!(
        tz_of(&db, "a11").await,
        (
            s(&[
                ("America/New_York", &["postal_code"]),
                ("America/Los_Angeles", &["area_code_libphonenumber"])
            ]),
            1,
            1
        )
    );
    let outcome: String =
        sqlx::query_scalar("SELECT reason FROM import_row_outcomes WHERE source_row = 9")
            .fetch_one(db.pool())
            .await
            .unwrap();
    assert_eq!(outcome, "no_timezone");
}

#[tokio::test]
async fn internal_dnc_and_crm_flag() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite(dir.path()).await;
    let clock = VirtualClock::at_ms(NOW);
    let e = importers::dnc::add_internal(
        &db,
        &clock,
        "(312) 555-0100",
        "US",
        "asked",
        "agent",
        Some("alice"),
    )
    .await
    .unwrap();
    assert_eq!(e, "+13125550100");
    importers::dnc::add_internal(&db, &clock, "312.555.0100", "US", "again", "agent", None)
        .await
        .unwrap();
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM dnc_entries", None).await,
        1,
        "adding twice is a no-op"
    );
    let csv = "Contact ID,Phone,Mobile,Do Not Call\n\
        1,312-555-0100,,\n\
        2,312-555-0100,212-555-0123,\n\
        3,415-555-0100,,true\n\
        4,415-555-0101,,no\n";
    let path = dir.path().join("dnc.csv");
    std::fs::write(&path, csv).unwrap();
    let r = import_file(&db, &clock, &path, &ImportOptions::new("d"), &no_progress)
        .await
        .unwrap();
    assert!(r.is_balanced());
    assert_eq!((r.accepted, r.dnc), (2, 2));
    assert_eq!(
        r.dnc_by_source,
        map(&[("internal", 1), ("crm_do_not_call", 1)])
    );
    assert_eq!(r.numbers.dnc_by_source, map(&[("internal", 2)]));
    assert!(
        importers::dnc::remove_internal(&db, "+13125550100")
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn failure_mid_import_leaves_a_resumable_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite(dir.path()).await;
    let clock = VirtualClock::at_ms(NOW);
    let mut gen_opts = GenOptions::new(4000, 5);
    gen_opts.dnc_share = 0.0;
    gen_opts.partial_dnc_share = 0.0;
    let (csv_path, e, _) = gen_csv(
        dir.path(),
        "full.csv",
        gen_opts,
        false,
        CsvStyle {
            delimiter: b',',
            bom: false,
        },
    );
    let gz_full = dir.path().join("full.csv.gz");
    let mut enc = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz_full).unwrap(),
        flate2::Compression::default(),
    );
    std::io::copy(&mut std::fs::File::open(&csv_path).unwrap(), &mut enc).unwrap();
    enc.finish().unwrap();
    // A copy cut in the middle: the gzip stream ends early, an I/O error mid-file.
    let bytes = std::fs::read(&gz_full).unwrap();
    let cut = dir.path().join("cut.csv.gz");
    std::fs::write(&cut, &bytes[..bytes.len() * 6 / 10]).unwrap();

    let mut o = ImportOptions::new("resume");
    o.batch_rows = 300;
    let err = import_file(&db, &clock, &cut, &o, &no_progress)
        .await
        .unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains("resume it with resume_job"), "{msg}");
    let job_id = msg
        .split_whitespace()
        .skip_while(|w| *w != "job")
        .nth(1)
        .unwrap()
        .to_owned();
    let job = importers::store::job(&db, &job_id).await.unwrap().unwrap();
    assert_eq!(job.state, "failed");
    assert!(
        job.rows_committed >= 300 && job.rows_committed < 4000,
        "{}",
        job.rows_committed
    );
    // The committed prefix is consistent: its report matches the database.
    assert!(job.report.is_balanced());
    assert_eq!(job.report.rows_read, job.rows_committed);
    let list_id = job.list_id;
    assert_eq!(
        importers::store::lead_count(&db, list_id).await.unwrap() as u64,
        job.report.accepted
    );
    let orphan = count(&db, "SELECT COUNT(*) FROM leads l WHERE NOT EXISTS (SELECT 1 FROM lead_phones p WHERE p.lead_id = l.id)", None).await;
    assert_eq!(orphan, 0);

    // Resume with the whole file: the final report equals the generator's expectations.
    o.resume_job = Some(job_id.clone());
    let r = import_file(&db, &clock, &gz_full, &o, &no_progress)
        .await
        .unwrap();
    assert_matches(&r, &e, "none");
    assert_eq!(r.resumed_after_row, job.rows_committed);
    assert_eq!(r.job_id, job_id);
    assert_eq!(
        importers::store::lead_count(&db, list_id).await.unwrap() as u64,
        e.accepted
    );
    let rerun = importers::job_report(&db, &job_id).await.unwrap().unwrap();
    assert_eq!(rerun.state, "completed");
}

/// The HTTP handler runs imports in `tokio::spawn`: the future must be `Send`.
#[allow(dead_code)]
fn import_future_is_send(
    db: Db,
    clock: std::sync::Arc<dyn foundation::Clock>,
    opts: ImportOptions,
) {
    fn send<T: Send>(_: T) {}
    send(async move {
        let path = std::path::PathBuf::from("x.csv");
        let progress = |_: &importers::Progress| {};
        let _ = import_file(&db, clock.as_ref(), &path, &opts, &progress).await;
    });
}
