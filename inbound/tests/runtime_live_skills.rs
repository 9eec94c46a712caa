//! An admin's change to a logged-in agent's routing reaches the ACD at once: a sipp caller waits
//! in sales while the only agent's routing profile lets it take sales calls only after an hour;
//! `Runtime::update_agent_profile` moves the agent to a profile without that delay and the
//! waiting caller is offered to the agent's phone (a sipp UAS) and connected right away. A bad
//! change (unknown profile, proficiency out of range) is refused with the reason and changes
//! nothing; an agent nobody knows is `UnknownAgent`.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use inbound::acd::{ProfileQueue, RoutingProfileConfig};
use inbound::runtime::{AgentEndpoint, AgentMode, Login, RuntimeError};
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_profile_change_routes_a_waiting_caller_at_once() {
    if !foundation::testing::require_tool("sipp", "sip-tester") {
        return;
    }
    let sut = start(39_000, |c| {
        c.acd.profiles.push(RoutingProfileConfig {
            name: "late".into(),
            queues: vec![ProfileQueue {
                queue: "sales".into(),
                priority: 1,
                delay_s: 3_600,
            }],
            acw_s: 0,
        })
    })
    .await;
    let dir = sut.dir.path().to_path_buf();
    let agent_port = free_port();
    write(&dir, "phone.xml", &agent_xml(60_000));
    write(&dir, "c.xml", &caller_xml(Dtmf::Pt96("1"), 1_500, 60_000));
    let phone = sipp(
        &dir,
        &[
            "-sf".into(),
            "phone.xml".into(),
            "-p".into(),
            agent_port.to_string(),
            "-mp".into(),
            free_port().to_string(),
            "-m".into(),
            "1".into(),
            "-timeout".into(),
            "60s".into(),
        ],
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    sut.runtime
        .login(Login {
            agent_id: "dave".into(),
            endpoint: AgentEndpoint::Uri(format!("sip:dave@127.0.0.1:{agent_port}")),
            mode: AgentMode::RingPerOffer,
            routing_profile: "late".into(),
            skills: BTreeMap::new(),
        })
        .await
        .unwrap();
    let caller = sipp(
        &dir,
        &caller_args(sut.sip.udp_addr.port(), "c.xml", DID, 1, 1, 1),
    );
    eventually("the caller waits in sales", Duration::from_secs(30), || {
        let db = sut.db.clone();
        async move {
            contacts(&db)
                .await
                .iter()
                .any(|r| r.stages.iter().any(|s| s.stage == "queued"))
        }
    })
    .await;
    let contact = contacts(&sut.db).await[0].contact.contact_id.clone();
    // The agent is available but may not take sales calls yet.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let pos = sut.runtime.queue_position(&contact).await.unwrap().unwrap();
    assert_eq!((pos.position, pos.offered), (1, false));

    // Refused changes leave the routing as it was.
    let err = sut
        .runtime
        .update_agent_profile("dave", Some("nope"), BTreeMap::new())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, RuntimeError::InvalidAgent(m) if m.contains("nope")),
        "{err}"
    );
    let err = sut
        .runtime
        .update_agent_profile("dave", None, BTreeMap::from([("spanish".into(), 7)]))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, RuntimeError::InvalidAgent(m) if m.contains("spanish")),
        "{err}"
    );
    assert_eq!(
        sut.runtime
            .update_agent_profile("nobody", None, BTreeMap::new())
            .await
            .unwrap_err(),
        RuntimeError::UnknownAgent("nobody".into())
    );
    assert!(
        !sut.runtime
            .queue_position(&contact)
            .await
            .unwrap()
            .unwrap()
            .offered
    );

    // The admin's change: the waiting caller goes to dave at once.
    sut.runtime
        .update_agent_profile("dave", Some("all"), BTreeMap::from([("english".into(), 4)]))
        .await
        .unwrap();
    let view = sut.runtime.agent_snapshot(None).await.unwrap();
    assert_eq!(view[0].routing_profile, "all");
    eventually(
        "the caller is connected to dave",
        Duration::from_secs(20),
        || {
            let db = sut.db.clone();
            let c = contact.clone();
            async move {
                inbound::store::load_contact(&db, &c).await.is_ok_and(|r| {
                    r.stages
                        .iter()
                        .any(|s| s.stage == "connected" && s.detail == "dave")
                })
            }
        },
    )
    .await;
    sut.runtime.end_contact(&contact).await.unwrap();
    let _ = wait_sipp(caller, Duration::from_secs(30)).await;
    let out = wait_sipp(phone, Duration::from_secs(30)).await;
    assert_eq!(out.rc, 0, "agent phone: {}", out.output);
}
