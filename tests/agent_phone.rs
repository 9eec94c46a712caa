//! An agent's desk phone against the real appliance: SIP credentials set with the CLI (only their
//! digest HA1 is stored), the phone registers with digest (a wrong password is refused), and the
//! agent logging in with "my registered phone" gets that phone called and kept as a nailed-up leg.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Appliance, free_port, run};
use serde_json::json;

fn register_scenario(dir: &std::path::Path, password: &str, fin: u16, contact_port: u16) -> String {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/telephony/tests/sip_scenarios/uac_register.xml"
    ))
    .unwrap()
    .replace("@CONTACT_PORT@", &contact_port.to_string())
    .replace("@PASSWORD@", password)
    .replace("@FINAL@", &fin.to_string());
    let path = dir.join(format!("register-{fin}.xml"));
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[tokio::test]
async fn a_desk_phone_registers_with_its_sip_password_and_becomes_the_agents_leg() {
    if !foundation::testing::require_tool("sipp", "sip-tester") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pw = [("DIALBRIDGE_USER_PASSWORD", "desk-phone-secret")];
    assert!(
        run(
            dir.path(),
            &["user", "create", "--username", "agent1", "--role", "agent"],
            &pw
        )
        .status
        .success()
    );
    let out = run(
        dir.path(),
        &["user", "sip-password", "--username", "agent1"],
        &pw,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(
        dir.path(),
        &["user", "sip-password", "--username", "nobody"],
        &pw,
    );
    assert!(!out.status.success(), "an unknown user is refused");
    let key = String::from_utf8(
        run(
            dir.path(),
            &["apikey", "create", "--role", "agent", "--name", "agent1"],
            &[],
        )
        .stdout,
    )
    .unwrap()
    .trim()
    .to_owned();
    let app = Appliance::start(dir.path(), &[]);

    let sipp = |sf: &str, port: u16| {
        Command::new("sipp")
            .current_dir(dir.path())
            .args([
                "-sf",
                sf,
                &app.sip_udp,
                "-s",
                "agent1",
                "-i",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-m",
                "1",
                "-nostdin",
                "-timeout",
                "10s",
                "-timeout_error",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap()
    };
    // A wrong password is refused (403); the right one registers (200).
    let bad_port = free_port();
    assert!(
        sipp(
            &register_scenario(dir.path(), "guess", 403, bad_port),
            bad_port
        )
        .success()
    );
    let phone_port = free_port();
    assert!(
        sipp(
            &register_scenario(dir.path(), "desk-phone-secret", 200, phone_port),
            phone_port
        )
        .success()
    );

    // The phone (sipp answering on its registered contact) is called when the agent logs in.
    let mut phone = Command::new("sipp")
        .current_dir(dir.path())
        .args([
            "-sn",
            "uas",
            "-i",
            "127.0.0.1",
            "-p",
            &phone_port.to_string(),
            "-m",
            "1",
            "-nostdin",
            "-timeout",
            "20s",
            "-trace_msg",
            "-message_file",
            "phone.log",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let c = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let resp = c
        .post(app.url("/api/v1/agent/login"))
        .bearer_auth(&key)
        .json(&json!({"endpoint": {"kind": "registered", "value": "agent1"}, "mode": "nailed_up"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204, "{}", resp.text().await.unwrap());
    let log = std::fs::read_to_string(dir.path().join("phone.log")).unwrap_or_default();
    assert!(
        log.contains(&format!("INVITE sip:agent1@127.0.0.1:{phone_port}")),
        "the registered contact was called:\n{log}"
    );
    // Logging out hangs the leg up.
    let resp = c
        .post(app.url("/api/v1/agent/logout"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let done = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Some(status) = phone.try_wait().unwrap() {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the leg ended at logout");
    assert!(done.success(), "the phone's call ended normally (BYE)");
}
