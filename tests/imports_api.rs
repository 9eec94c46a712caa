//! List upload over HTTP: streamed multipart, progress by job id, exact report, rejected rows CSV.

mod common;

use std::time::Duration;

use common::{Appliance, run};
use importers::generate::{CsvStyle, GenOptions, Generator, write_csv};
use serde_json::Value;

#[tokio::test]
async fn upload_watch_and_download_rejected_rows() {
    let dir = tempfile::tempdir().unwrap();
    let key = |role: &str| {
        let out = run(dir.path(), &["apikey", "create", "--role", role], &[]);
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let (manager, agent) = (key("campaign-manager"), key("agent"));
    let app = Appliance::start(dir.path(), &[]);
    let c = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();

    let mut csv = Vec::new();
    let mut gen_opts = GenOptions::new(3000, 7);
    gen_opts.dnc_share = 0.0; // no DNC file rides along with an upload
    let (expected, _) = write_csv(
        Generator::new(gen_opts, true),
        &CsvStyle {
            delimiter: b';',
            bom: true,
        },
        &mut csv,
    )
    .unwrap();
    let form = || {
        reqwest::multipart::Form::new()
            .part(
                "file",
                reqwest::multipart::Part::bytes(csv.clone()).file_name("export.csv"),
            )
            .text("region", "US")
    };

    // (A small body: the server refuses before reading it, and a large unread body may be cut.)
    let small = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(b"Phone\n3125550100\n".to_vec()).file_name("a.csv"),
    );
    let resp = c
        .post(app.url("/api/v1/lists/spring/imports"))
        .bearer_auth(&agent)
        .multipart(small)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    let resp = c
        .post(app.url("/api/v1/lists/spring/imports"))
        .bearer_auth(&manager)
        .multipart(form())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let started: Value = resp.json().await.unwrap();
    let status_url = app.url(started["status_url"].as_str().unwrap());

    let mut report = Value::Null;
    for _ in 0..300 {
        report = c
            .get(&status_url)
            .bearer_auth(&manager)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if report["state"] != "running" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(report["state"], "completed", "{report}");
    let n = |k: &str| report[k].as_u64().unwrap();
    assert_eq!(n("rows_read"), expected.rows);
    assert_eq!(
        (n("accepted"), n("rejected"), n("duplicates"), n("dnc")),
        (
            expected.accepted,
            expected.rejected(),
            expected.duplicates,
            expected.dnc_rows
        )
    );
    assert_eq!(
        n("rows_read"),
        n("accepted") + n("rejected") + n("duplicates") + n("dnc")
    );

    let resp = c
        .get(format!("{status_url}/rejected.csv"))
        .bearer_auth(&manager)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let text = resp.text().await.unwrap();
    let mut rows = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(text.as_bytes());
    assert_eq!(
        rows.headers().unwrap().iter().take(3).collect::<Vec<_>>(),
        ["source_row", "outcome", "reason"]
    );
    assert_eq!(
        rows.records().count() as u64,
        n("rejected") + n("duplicates") + n("dnc"),
        "every row not imported is accounted for"
    );

    // The same file again creates no duplicates.
    let resp = c
        .post(app.url("/api/v1/lists/spring/imports"))
        .bearer_auth(&manager)
        .multipart(form())
        .send()
        .await
        .unwrap();
    let again: Value = resp.json().await.unwrap();
    let url = app.url(again["status_url"].as_str().unwrap());
    let mut report = Value::Null;
    for _ in 0..300 {
        report = c
            .get(&url)
            .bearer_auth(&manager)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if report["state"] != "running" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(report["accepted"], 0, "{report}");

    // Bad uploads: no file field, an unreadable file, an unknown job.
    let resp = c
        .post(app.url("/api/v1/lists/spring/imports"))
        .bearer_auth(&manager)
        .multipart(reqwest::multipart::Form::new().text("region", "US"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "bad_request");
    let resp = c
        .post(app.url("/api/v1/lists/spring/imports"))
        .bearer_auth(&manager)
        .multipart(reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(b"PK\x03\x04garbage".to_vec()).file_name("x.xlsx"),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400, "{}", resp.text().await.unwrap());
    let resp = c
        .get(app.url("/api/v1/lists/spring/imports/import_nope"))
        .bearer_auth(&manager)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
}

#[test]
fn cli_import_prints_an_exact_json_report() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("crm.csv");
    let (expected, dnc) = write_csv(
        Generator::new(GenOptions::new(1500, 3), false),
        &CsvStyle {
            delimiter: b',',
            bom: false,
        },
        std::fs::File::create(&file).unwrap(),
    )
    .unwrap();
    let dnc_file = dir.path().join("dnc.txt");
    importers::generate::write_dnc_file(&dnc, 1000, 5, std::fs::File::create(&dnc_file).unwrap())
        .unwrap();
    assert!(expected.dnc_rows > 0);
    let out = run(
        dir.path(),
        &[
            "import",
            file.to_str().unwrap(),
            "--list",
            "l1",
            "--dnc",
            dnc_file.to_str().unwrap(),
            "--json",
        ],
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let n = |k: &str| report[k].as_u64().unwrap();
    assert_eq!(
        (
            n("rows_read"),
            n("accepted"),
            n("rejected"),
            n("duplicates"),
            n("dnc")
        ),
        (
            expected.rows,
            expected.accepted,
            expected.rejected(),
            expected.duplicates,
            expected.dnc_rows
        )
    );
    assert!(report["rejected_by_reason"].is_object());
    let out = run(
        dir.path(),
        &["import", "/nonexistent.csv", "--list", "l1"],
        &[],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nonexistent.csv"));
}

#[tokio::test]
async fn cli_import_on_postgresql_uses_copy_and_reports_exactly() {
    let Some(pg) = foundation::testing::TempPgDatabase::create().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("crm.csv");
    let (expected, dnc) = write_csv(
        Generator::new(GenOptions::new(2500, 11), true),
        &CsvStyle {
            delimiter: b'\t',
            bom: true,
        },
        std::fs::File::create(&file).unwrap(),
    )
    .unwrap();
    let dnc_file = dir.path().join("dnc.txt");
    importers::generate::write_dnc_file(&dnc, 100, 5, std::fs::File::create(&dnc_file).unwrap())
        .unwrap();
    let env = [("DIALBRIDGE_DATABASE_URL", pg.url.as_str())];
    for round in 0..2 {
        let out = run(
            dir.path(),
            &[
                "import",
                file.to_str().unwrap(),
                "--list",
                "pg",
                "--dnc",
                dnc_file.to_str().unwrap(),
                "--json",
            ],
            &env,
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        let n = |k: &str| report[k].as_u64().unwrap();
        if round == 0 {
            assert_eq!(
                (
                    n("rows_read"),
                    n("accepted"),
                    n("rejected"),
                    n("duplicates"),
                    n("dnc")
                ),
                (
                    expected.rows,
                    expected.accepted,
                    expected.rejected(),
                    expected.duplicates,
                    expected.dnc_rows
                )
            );
        } else {
            assert_eq!(
                n("accepted"),
                0,
                "importing the same file twice creates no duplicates"
            );
        }
    }
}

/// Upload with a `mapping` field: it overrides header recognition (JSON or TOML, the CLI's format),
/// and a mapping that does not parse or does not fit the file is refused with 400 naming the problem.
#[tokio::test]
async fn upload_with_a_mapping_override() {
    let dir = tempfile::tempdir().unwrap();
    let manager = {
        let out = run(
            dir.path(),
            &["apikey", "create", "--role", "campaign-manager"],
            &[],
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let app = Appliance::start(dir.path(), &[]);
    let c = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    // "Office" is not a header the importer recognises as a phone; "Cell" is.
    let csv = b"Acct,Office,Cell,Notes\nA1,312-555-0101,,first\nA2,312-555-0102,212-555-0123,second\nA3,,415-555-2671,third\nA1,312-555-0199,,again\n";
    let post = |list: &'static str, mapping: Option<&'static str>| {
        let mut form = reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(csv.to_vec()).file_name("crm.csv"),
        );
        if let Some(m) = mapping {
            form = form.text("mapping", m);
        }
        c.post(app.url(&format!("/api/v1/lists/{list}/imports")))
            .bearer_auth(&manager)
            .multipart(form)
            .send()
    };
    let finished = |resp: reqwest::Response| async {
        assert_eq!(resp.status(), 202);
        let started: Value = resp.json().await.unwrap();
        let url = app.url(started["status_url"].as_str().unwrap());
        for _ in 0..300 {
            let report: Value = c
                .get(&url)
                .bearer_auth(&manager)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if report["state"] != "running" {
                return report;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the import did not finish");
    };

    // Recognition alone: only Cell is a phone column, no CRM id (dedupe on the first number).
    let auto = finished(post("auto", None).await.unwrap()).await;
    assert_eq!(auto["state"], "completed", "{auto}");
    assert_eq!(auto["mapping"]["phones"], serde_json::json!(["Cell"]));
    assert_eq!(
        (auto["accepted"].as_u64(), auto["rejected"].as_u64()),
        (Some(2), Some(2)),
        "{auto}"
    );

    // The same file with the mapping changed before the import (JSON).
    let json = r#"{"crm_id": "Acct", "phones": ["Office", "Cell"], "ignore": ["Notes"]}"#;
    let mapped = finished(post("mapped", Some(json)).await.unwrap()).await;
    assert_eq!(mapped["state"], "completed", "{mapped}");
    assert_eq!(
        mapped["mapping"]["phones"],
        serde_json::json!(["Office", "Cell"]),
        "phones in the mapping's order"
    );
    assert_eq!(mapped["mapping"]["crm_id"], "Acct");
    assert_eq!(
        mapped["mapping"]["attributes"],
        serde_json::json!([]),
        "Notes is ignored"
    );
    let n = |k: &str| mapped[k].as_u64().unwrap();
    assert_eq!(
        (
            n("rows_read"),
            n("accepted"),
            n("rejected"),
            n("duplicates"),
            n("dnc")
        ),
        (4, 3, 0, 1, 0),
        "{mapped}"
    );
    assert_eq!(
        mapped["duplicates_by_reason"]["duplicate_in_file"], 1,
        "A1 twice: deduped on the CRM id"
    );

    // TOML works too (the CLI's mapping file format).
    let toml = "auto = false\nphones = [\"Cell\"]\ncrm_id = \"Acct\"\n";
    let t = finished(post("toml", Some(toml)).await.unwrap()).await;
    assert_eq!(
        (
            t["accepted"].as_u64(),
            t["rejected"].as_u64(),
            t["mapping"]["crm_id"].as_str()
        ),
        (Some(2), Some(2), Some("Acct")),
        "{t}"
    );

    // An empty field (a form that sends one) means no override.
    let blank = finished(post("blank", Some("  ")).await.unwrap()).await;
    assert_eq!(
        blank["mapping"]["phones"],
        serde_json::json!(["Cell"]),
        "{blank}"
    );

    // Refused with 400 naming the problem.
    for (mapping, expect) in [
        (r#"{"phones": ["Fax"]}"#, "\"Fax\""),
        (r#"{"phone": ["Cell"]}"#, "unknown field `phone`"),
        ("phones = [\"Cell\"", "bad TOML mapping"),
        (r#"{"phones": ["Cell"], "crm_id": "Cell"}"#, "two roles"),
        (r#"{"auto": false, "crm_id": "Acct"}"#, "no phone column"),
    ] {
        let resp = post("refused", Some(mapping)).await.unwrap();
        assert_eq!(resp.status(), 400, "{mapping}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "bad_request");
        assert!(
            body["message"].as_str().unwrap().contains(expect),
            "{mapping}: {body}"
        );
    }
}
