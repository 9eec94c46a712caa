//! The web console in a real browser: starts the appliance with an admin, an agent and a campaign
//! manager, writes a messy CRM export with known expectations, and runs the Playwright script
//! `tests/console/console.test.mjs` (playwright-core driving Debian's chromium) against it. The
//! test fails when any browser step fails. Screenshots of each main page go to
//! `$DIALBRIDGE_ARTIFACTS/console` (default: `<target>/tmp/artifacts/console`).
//!
//! For the campaign, desktop and supervisor pages it also imports a small list with the CLI and
//! starts a sipp UAS (`-sn uas`) as the agent's phone, which the appliance calls when the agent
//! logs in nailed-up from the desktop page, another as the supervisor's phone, and routes a
//! number to a queue flow that the script has a sipp caller dial (screen pop, listen, hang up,
//! disposition).

mod common;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Appliance, run};
use foundation::testing::{on_ci, report_skip, require_tool};
use importers::generate::{CsvStyle, GenOptions, Generator, write_csv};

const TIMEOUT: Duration = Duration::from_secs(240);

fn console_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/console")
}

/// Chromium, node and the script's npm packages, or the reason the test cannot run here.
fn tools_present() -> bool {
    if !require_tool("chromium", "chromium")
        || !require_tool("node", "nodejs")
        || !require_tool("sipp", "sip-tester")
    {
        return false;
    }
    if !console_dir()
        .join("node_modules/playwright-core/package.json")
        .exists()
    {
        let msg = "tests/console has no node_modules (run `npm ci` there, with PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1)";
        if on_ci() {
            panic!("{msg}; CI must not skip this test");
        }
        report_skip(msg);
        return false;
    }
    true
}

/// Sets contact attributes (the agent's screen pop) and queues the caller for the agents.
const SCREEN_POP_FLOW: &str = r#"{"Version": "2019-10-30", "StartAction": "attrs", "Actions": [
  {"Identifier": "attrs", "Type": "UpdateContactAttributes",
   "Parameters": {"Attributes": {"account": "A-991", "caller": "$.CustomerEndpoint.Address"}, "TargetContact": "Current"},
   "Transitions": {"NextAction": "q", "Errors": [{"NextAction": "bye", "ErrorType": "NoMatchingError"}]}},
  {"Identifier": "q", "Type": "UpdateContactTargetQueue", "Parameters": {"QueueId": "default"},
   "Transitions": {"NextAction": "t", "Errors": [{"NextAction": "bye", "ErrorType": "NoMatchingError"}]}},
  {"Identifier": "t", "Type": "TransferContactToQueue", "Parameters": {},
   "Transitions": {"Errors": [{"NextAction": "bye", "ErrorType": "QueueAtCapacity"}, {"NextAction": "bye", "ErrorType": "NoMatchingError"}]}},
  {"Identifier": "bye", "Type": "DisconnectParticipant", "Parameters": {}, "Transitions": {}}]}"#;

/// A UDP port free on loopback now (for the sipp agent phone and its media).
fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Kills the agent phone when the test ends, however it ends.
struct Phone(std::process::Child);

impl Drop for Phone {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn create_user(dir: &Path, name: &str, role: &str, password: &str) {
    let out = run(
        dir,
        &["user", "create", "--username", name, "--role", role],
        &[("DIALBRIDGE_USER_PASSWORD", password)],
    );
    assert!(
        out.status.success(),
        "user create {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn console_in_chromium_login_roles_list_upload_bridge() {
    if !tools_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (admin_pw, agent_pw, manager_pw) = ("admin-Secret-1", "agent-Secret-2", "manager-Secret-3");
    create_user(dir.path(), "agnes", "agent", agent_pw);
    create_user(dir.path(), "carl", "campaign-manager", manager_pw);
    let supervisor_pw = "supervisor-Secret-4";
    create_user(dir.path(), "sue", "supervisor", supervisor_pw);

    // A small list for the campaign created in the browser, imported by the CLI.
    std::fs::write(
        dir.path().join("pilot.csv"),
        "First Name,Phone,Zip\nAda,(312) 555-0100,60601\nAlan,312.555.0101,60601\n",
    )
    .unwrap();
    let out = run(
        dir.path(),
        &[
            "import",
            "pilot.csv",
            "--list",
            "pilot",
            "--region",
            "US",
            "--json",
        ],
        &[],
    );
    assert!(
        out.status.success(),
        "import: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let list_id = report["list_id"]
        .as_i64()
        .expect("list_id in the import report");

    // The agent's phone: sipp's built-in UAS answers the nailed-up call and holds it until BYE.
    let phone_port = free_udp_port();
    // The supervisor's phone likewise, called when the supervisor listens in from the browser.
    let uas = |port: u16, work: &str| {
        let work = dir.path().join(work);
        std::fs::create_dir_all(&work).unwrap();
        Command::new("sipp")
            .args([
                "-sn",
                "uas",
                "-i",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-mp",
                &free_udp_port().to_string(),
            ])
            .args(["-nostdin", "-m", "1", "-timeout", "300s"])
            .current_dir(work)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map(Phone)
            .expect("start sipp")
    };
    let phone = uas(phone_port, "agent-phone");
    let supervisor_port = free_udp_port();
    let supervisor_phone = uas(supervisor_port, "supervisor-phone");

    // A messy Salesforce-style export: BOM, semicolons, Windows-1252 rows, invalid numbers,
    // duplicates, blank rows. 50,000 rows: more than two of the importer's 20,000-row batches, so
    // the page has progress to show between the upload and the report.
    let csv_path = dir.path().join("salesforce-export.csv");
    let mut opts = GenOptions::new(50_000, 11);
    opts.dnc_share = 0.0; // no DNC file rides along with a browser upload
    let (expected, _) = write_csv(
        Generator::new(opts, true),
        &CsvStyle {
            delimiter: b';',
            bom: true,
        },
        std::fs::File::create(&csv_path).unwrap(),
    )
    .unwrap();
    assert!(
        expected.rejected() > 0 && expected.duplicates > 0,
        "the file must have rows to reject"
    );
    let rejected_by_reason: BTreeMap<&String, &u64> = expected
        .rejected_by_reason
        .iter()
        .filter(|(_, n)| **n > 0)
        .collect();
    let expected_json = serde_json::json!({
        "rows_read": expected.rows,
        "accepted": expected.accepted,
        "rejected": expected.rejected(),
        "duplicates": expected.duplicates,
        "dnc": expected.dnc_rows,
        "rejected_by_reason": rejected_by_reason,
        "delimiter_name": "semicolon",
    });

    let app = Appliance::start(dir.path(), &[("DIALBRIDGE_ADMIN_PASSWORD", admin_pw)]);
    // A number whose flow queues the caller for the agents (the browser script has sipp call it).
    let admin_key = common::admin_key(dir.path());
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(common::route_numbers(
            &app,
            &admin_key,
            "to-agents",
            SCREEN_POP_FLOW,
            &["+18005550200"],
        ));
    let artifacts = std::env::var_os("DIALBRIDGE_ARTIFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_TARGET_TMPDIR")).join("artifacts"))
        .join("console");
    std::fs::create_dir_all(&artifacts).unwrap();
    let _ = std::fs::remove_file(artifacts.join("FAILED.png")); // from an earlier failed run
    eprintln!("console screenshots: {}", artifacts.display());

    let mut child = Command::new("node")
        .arg("console.test.mjs")
        .current_dir(console_dir())
        .env("DIALBRIDGE_URL", &app.http)
        .env("ADMIN_PASSWORD", admin_pw)
        .env("AGENT_USER", "agnes")
        .env("AGENT_PASSWORD", agent_pw)
        .env("MANAGER_USER", "carl")
        .env("MANAGER_PASSWORD", manager_pw)
        .env("SUPERVISOR_USER", "sue")
        .env("SUPERVISOR_PASSWORD", supervisor_pw)
        .env("AGENT_PHONE", format!("sip:agnes@127.0.0.1:{phone_port}"))
        .env("CAMPAIGN_LIST_ID", list_id.to_string())
        .env(
            "SUPERVISOR_PHONE",
            format!("sip:sue@127.0.0.1:{supervisor_port}"),
        )
        .env("SIP_TARGET", &app.sip_udp)
        .env("CALL_NUMBER", "+18005550200")
        .env("CSV_FILE", &csv_path)
        .env("EXPECTED", expected_json.to_string())
        .env("ARTIFACTS", &artifacts)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start node");
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let t0 = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if t0.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let (out, err) = (out_reader.join().unwrap(), err_reader.join().unwrap());
    eprintln!("{out}");
    let ok = status.is_some_and(|s| s.success());
    assert!(
        ok,
        "browser test {} (after {:?}):\n--- stdout\n{out}\n--- stderr\n{err}\n--- appliance log (tail)\n{}",
        if status.is_none() {
            "timed out"
        } else {
            "failed"
        },
        t0.elapsed(),
        app.log_text()
            .lines()
            .rev()
            .take(40)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        out.contains("steps passed"),
        "the script ended without its summary line:\n{out}"
    );
    drop(phone);
    drop(supervisor_phone);
    for name in [
        "01-login",
        "03-home-admin",
        "04-bridge",
        "06-agent-forbidden",
        "07-lists-preview",
        "08-lists-report",
        "15-campaigns",
        "16-campaign-dashboard",
        "17-agent-desktop",
        "18-supervisor",
        "19-agent-on-contact",
    ] {
        let shot = artifacts.join(format!("{name}.png"));
        let len = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
        assert!(len > 1000, "screenshot {} missing or empty", shot.display());
    }
}
