//! Through Kamailio as a Record-Routing proxy and registrar with digest auth, over UDP and TCP:
//! Dialbridge registers, receives a call routed by the proxy, and calls out through it after a
//! 407; in-dialog requests follow the route set both ways. That is checked from the proxy's side
//! (Kamailio logs every request it receives, with its source and transport: the caller's ACK and
//! BYE, which follow the Record-Route our 200 echoes, and our own ACK and BYE) and from the
//! gateway's (sipp's message trace shows Kamailio's Via on top of ours in the ACK and BYE), since
//! sipp's `uas` would accept an ACK or BYE sent to it directly.

mod sip_common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use sip_common::*;
use telephony::sip::call::{CallEvent, HangupCause, Originate, Registration, Transport, Trunk};
use telephony::sip::digest::Credentials;
use telephony::sip::listener::SipOptions;
use telephony::sip::outcome::Outcome;

fn scenario(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sip_scenarios")
        .join(name)
        .display()
        .to_string()
}

/// Kamailio running in the foreground; stopped (SIGTERM to its main process, which ends its
/// children) when dropped.
struct Kamailio {
    child: std::process::Child,
}

impl Kamailio {
    fn start(dir: &Path, port: u16, gw_port: u16) -> Kamailio {
        let cfg = std::fs::read_to_string(scenario("kamailio.cfg"))
            .unwrap()
            .replace("KAMPORT", &port.to_string())
            .replace("KAMPASS", "s3cret")
            .replace("GWPORT", &gw_port.to_string());
        let path = dir.join("kamailio.cfg");
        std::fs::write(&path, cfg).unwrap();
        let log = std::fs::File::create(dir.join("kamailio.log")).unwrap();
        let child = std::process::Command::new("kamailio")
            .args(["-DD", "-E", "-f"])
            .arg(&path)
            .arg("-P")
            .arg(dir.join("kamailio.pid"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("kamailio starts");
        Kamailio { child }
    }
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_receive_and_call_out_through_kamailio_over_udp_and_tcp() {
    if !foundation::testing::require_tool("sipp", "sip-tester")
        || !foundation::testing::require_tool("kamailio", "kamailio")
    {
        return;
    }
    let dir = scratch("kamailio");
    let kam_port = free_port();
    let gw_port = free_port();
    let _kam = Kamailio::start(&dir, kam_port, gw_port);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let kam: std::net::SocketAddr = format!("127.0.0.1:{kam_port}").parse().unwrap();
    let log = || std::fs::read_to_string(dir.join("kamailio.log")).unwrap_or_default();

    for (t, tp) in [(Transport::Udp, "u1"), (Transport::Tcp, "t1")] {
        // Ring 100 ms before answering: Kamailio forwards replies from several worker
        // processes, so a 180 sent in the same instant as the 200 can reach sipp after it.
        let (sut, _lc) = start(SipOptions {
            auto_answer: Some(std::time::Duration::from_millis(100)),
            ..SipOptions::default()
        })
        .await;
        let mut rx = sut.handle.subscribe();
        let trunk = Trunk {
            addr: kam,
            transport: t,
            credentials: Some(Credentials {
                username: "dialbridge".into(),
                password: "s3cret".into(),
            }),
        };

        // 1. Register (401 → digest → 200).
        let reg = sut.handle.register(Registration {
            trunk: trunk.clone(),
            user: "dialbridge".into(),
            expires: 300,
        });
        let ev = collect_events(&mut rx, Duration::from_secs(5), |e| {
            e.iter()
                .any(|e| matches!(e, CallEvent::Registration { .. }))
        })
        .await;
        assert!(
            matches!(ev.last(), Some(CallEvent::Registration { registration, registered: true, .. }) if *registration == reg),
            "{tp}: {ev:?}\n{}",
            log()
        );

        // 2. A caller reaches us through the proxy (lookup → our Contact, Record-Route).
        let seen = log().len();
        let cdir = scratch(&format!("kam-caller-{tp}"));
        let cp = free_port().to_string();
        let r = run_sipp(
            &cdir,
            &[
                "-sf",
                &scenario("uac_via_proxy.xml"),
                &kam.to_string(),
                "-s",
                "dialbridge",
                "-t",
                tp,
                "-i",
                "127.0.0.1",
                "-mi",
                "127.0.0.1",
                "-p",
                &cp,
                "-m",
                "1",
                "-timeout",
                "15s",
                "-timeout_error",
            ],
        )
        .await;
        assert_eq!(r.rc, 0, "{tp}: {r:?}\n{}", log());
        let ev = collect_events(&mut rx, Duration::from_secs(3), |e| {
            e.iter().any(|e| matches!(e, CallEvent::Hangup { .. }))
        })
        .await;
        assert!(
            ev.iter().any(|e| matches!(e, CallEvent::Answered { .. })),
            "{tp}: {ev:?}"
        );
        assert!(
            matches!(
                ev.last(),
                Some(CallEvent::Hangup {
                    cause: HangupCause::RemoteBye,
                    ..
                })
            ),
            "{tp}: {ev:?}"
        );
        // The caller's ACK and BYE reached the proxy (the route set from our 200's Record-Route).
        let proto = if t == Transport::Udp { "udp" } else { "tcp" };
        // (sipp's TCP connection has a port of its own)
        let caller = if t == Transport::Udp {
            format!("127.0.0.1:{cp}")
        } else {
            "127.0.0.1:".to_owned()
        };
        let phase = log()[seen..].to_owned();
        for method in ["ACK", "BYE"] {
            assert_eq!(
                requests_logged(&phase, method, "", &caller, proto),
                1,
                "{tp}: Kamailio relays the caller's {method} to us:\n{phase}"
            );
        }

        // 3. We call out through the proxy: 407 → digest → relayed to the gateway (a sipp UAS that echoes Record-Route);
        //    our ACK and BYE go through the proxy on the route set.
        let gdir = scratch(&format!("kam-gw-{tp}"));
        let gp = gw_port.to_string();
        let gw_scenario = scenario("uas_record_route.xml");
        let gw = spawn_sipp(
            &gdir,
            &[
                "-sf",
                &gw_scenario,
                "-t",
                tp,
                "-i",
                "127.0.0.1",
                "-mi",
                "127.0.0.1",
                "-p",
                &gp,
                "-m",
                "1",
                "-timeout",
                "15s",
                "-timeout_error",
                "-trace_msg",
                "-message_file",
                "messages.log",
            ],
        );
        tokio::time::sleep(Duration::from_millis(400)).await;
        let seen = log().len();
        let id = sut.handle.originate(Originate {
            to_user: "15551234".into(),
            from_user: "dialbridge".into(),
            trunks: vec![trunk.clone()],
            ..Default::default()
        });
        let ev = collect_events(&mut rx, Duration::from_secs(5), |e| {
            e.iter().any(|e| {
                e.call() == Some(id)
                    && matches!(e, CallEvent::Answered { .. } | CallEvent::Hangup { .. })
            })
        })
        .await;
        assert!(
            matches!(ev.last(), Some(CallEvent::Answered { .. })),
            "{tp}: {ev:?}\n{}",
            log()
        );
        sut.handle.hangup(id);
        let r = wait_sipp(&gdir, gw).await;
        assert_eq!(
            r.rc,
            0,
            "{tp}: the gateway must see ACK and BYE through the proxy: {r:?}\n{}",
            log()
        );
        let ev = collect_events(&mut rx, Duration::from_secs(2), |e| {
            e.iter().any(|e| matches!(e, CallEvent::Hangup { .. }))
        })
        .await;
        assert!(
            matches!(
                ev.last(),
                Some(CallEvent::Hangup {
                    outcome: Outcome::Answered,
                    ..
                })
            ),
            "{tp}: {ev:?}"
        );
        // Our ACK and BYE to the gateway's Contact went to the proxy (logged with our address
        // as source over UDP; over TCP from our connection's port; the ACK of the 407 is
        // Kamailio's own and has the INVITE's Request-URI)…
        let phase = log()[seen..].to_owned();
        let ours = match t {
            Transport::Udp => sut.udp_addr.to_string(),
            _ => "127.0.0.1:".to_owned(),
        };
        for method in ["ACK", "BYE"] {
            assert_eq!(
                requests_logged(
                    &phase,
                    method,
                    &format!("127.0.0.1:{gw_port};"),
                    &ours,
                    proto
                ),
                1,
                "{tp}: our {method} goes through Kamailio:\n{phase}"
            );
        }
        // …and reached the gateway through it: Kamailio's Via above ours.
        let trace = std::fs::read_to_string(gdir.join("messages.log")).unwrap_or_default();
        let kam_via = format!("Via: SIP/2.0/{} 127.0.0.1:{kam_port}", proto.to_uppercase());
        for method in ["ACK", "BYE"] {
            let msg = received(&trace, method)
                .unwrap_or_else(|| panic!("{tp}: the gateway got no {method}:\n{trace}"));
            let vias: Vec<&str> = msg
                .lines()
                .filter(|l| l.to_ascii_lowercase().starts_with("via:"))
                .collect();
            assert!(
                vias.len() == 2 && vias[0].starts_with(&kam_via),
                "{tp}: the gateway's {method} came through Kamailio ({kam_via} first, then ours):\n{msg}"
            );
        }

        sut.handle.unregister(reg);
        let _ = collect_events(&mut rx, Duration::from_secs(2), |e| {
            e.iter()
                .any(|e| matches!(e, CallEvent::Registration { .. }))
        })
        .await;
    }
}

/// How many `method` requests Kamailio logged (its `request $rm $ru from $si:$sp over $pr` line)
/// whose Request-URI contains `uri_has`, from a source starting with `from`, over `proto`.
fn requests_logged(log: &str, method: &str, uri_has: &str, from: &str, proto: &str) -> usize {
    log.lines()
        .filter_map(|l| l.split_once(&format!("request {method} ")).map(|(_, r)| r))
        .filter_map(|r| r.split_once(" from "))
        .filter(|(uri, src)| {
            uri.contains(uri_has)
                && src.starts_with(from)
                && src.ends_with(&format!(" over {proto}"))
        })
        .count()
}

/// The first `method` request in a sipp message trace (`-trace_msg`) that sipp received.
fn received(trace: &str, method: &str) -> Option<String> {
    trace
        .split("----------------------------------------------")
        .filter(|block| block.contains("message received"))
        .find_map(|block| {
            let start = block.find(&format!("{method} sip:"))?;
            Some(block[start..].to_owned())
        })
}
