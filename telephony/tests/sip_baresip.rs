//! A real softphone (baresip) as an agent's phone: it registers to Dialbridge with digest, is
//! called at its registered contact (auto-answer), and places an authenticated call into
//! Dialbridge through its ctrl_tcp interface.

mod sip_common;

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use sip_common::*;
use telephony::sip::call::{CallEvent, HangupCause};
use telephony::sip::listener::SipOptions;
use telephony::sip::registrar::InboundPolicy;
use telephony::sip::sdp::Direction;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// baresip in the background; SIGTERM (twice if needed) when dropped.
struct Baresip {
    child: std::process::Child,
}

impl Baresip {
    fn start(dir: &Path, sip_port: u16, ctrl_port: u16, account: &str) -> Baresip {
        let conf = format!(
            "poll_method epoll\nsip_listen 127.0.0.1:{sip_port}\nnet_interface 127.0.0.1\n\
audio_player aubridge,sink\naudio_alert aubridge,sink\naudio_source aufile,{mic}\n\
ausrc_srate 8000\nauplay_srate 8000\nausrc_channels 1\nauplay_channels 1\nrtp_ports 31000-31999\n\
module_path /usr/lib/baresip/modules\nmodule g711.so\nmodule aufile.so\nmodule aubridge.so\n\
module_tmp uuid.so\nmodule_tmp account.so\nmodule_app menu.so\nmodule_app ctrl_tcp.so\n\
ctrl_tcp_listen 127.0.0.1:{ctrl_port}\n",
            mic = dir.join("mic.wav").display()
        );
        // The microphone: 30 s of a quiet 440 Hz tone (baresip hangs up when its file ends).
        std::fs::write(dir.join("mic.wav"), sine_wav(30)).unwrap();
        std::fs::write(dir.join("config"), conf).unwrap();
        std::fs::write(dir.join("accounts"), format!("{account}\n")).unwrap();
        let log = std::fs::File::create(dir.join("baresip.log")).unwrap();
        let child = std::process::Command::new("baresip")
            .arg("-f")
            .arg(dir)
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("baresip starts");
        Baresip { child }
    }
}

impl Drop for Baresip {
    fn drop(&mut self) {
        for _ in 0..2 {
            let _ = std::process::Command::new("kill")
                .arg("-TERM")
                .arg(self.child.id().to_string())
                .status();
            let deadline = std::time::Instant::now() + Duration::from_secs(4);
            while std::time::Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An 8 kHz mono 16-bit PCM WAV of a 440 Hz tone.
fn sine_wav(seconds: u32) -> Vec<u8> {
    let n = 8000 * seconds;
    let mut w = Vec::with_capacity(44 + 2 * n as usize);
    w.extend_from_slice(b"RIFF");
    w.extend_from_slice(&(36 + 2 * n).to_le_bytes());
    w.extend_from_slice(b"WAVEfmt ");
    w.extend_from_slice(&16u32.to_le_bytes());
    w.extend_from_slice(&1u16.to_le_bytes()); // PCM
    w.extend_from_slice(&1u16.to_le_bytes()); // mono
    w.extend_from_slice(&8000u32.to_le_bytes());
    w.extend_from_slice(&16000u32.to_le_bytes());
    w.extend_from_slice(&2u16.to_le_bytes());
    w.extend_from_slice(&16u16.to_le_bytes());
    w.extend_from_slice(b"data");
    w.extend_from_slice(&(2 * n).to_le_bytes());
    for i in 0..n {
        let v = (f64::sin(i as f64 * 2.0 * std::f64::consts::PI * 440.0 / 8000.0) * 3000.0) as i16;
        w.extend_from_slice(&v.to_le_bytes());
    }
    w
}

/// One ctrl_tcp command (netstring-framed JSON).
async fn ctrl(port: u16, command: &str, params: &str) {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("baresip ctrl_tcp");
    let json = format!("{{\"command\":\"{command}\",\"params\":\"{params}\",\"token\":\"t1\"}}");
    s.write_all(format!("{}:{json},", json.len()).as_bytes())
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let _ = tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baresip_registers_is_called_and_calls_in() {
    if !foundation::testing::require_tool("baresip", "baresip-core") {
        return;
    }
    let users = HashMap::from([("agent1".to_string(), "pw1".to_string())]);
    let policy = InboundPolicy::with_users(vec![], "dialbridge", users);
    let (sut, _lc) = start(SipOptions {
        policy: Some(policy),
        ..Default::default()
    })
    .await;
    let mut rx = sut.handle.subscribe();
    let dir = scratch("baresip");
    let (sip_port, ctrl_port) = (free_port(), free_port());
    let account = format!(
        "<sip:agent1@127.0.0.1:{}>;auth_pass=pw1;regint=60;answermode=auto;audio_codecs=PCMU",
        sut.udp_addr.port()
    );
    let _phone = Baresip::start(&dir, sip_port, ctrl_port, &account);
    let log = || std::fs::read_to_string(dir.join("baresip.log")).unwrap_or_default();

    // 1. It registers (401 → digest → 200).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let bindings = loop {
        let b = sut.handle.bindings("agent1").await;
        if !b.is_empty() || tokio::time::Instant::now() > deadline {
            break b;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(bindings.len(), 1, "baresip did not register:\n{}", log());

    // 2. We call it at its contact; it answers by itself; we hang up.
    let id = sut
        .handle
        .originate_registered("agent1", "ivr", Duration::from_secs(10))
        .await
        .unwrap();
    let ev = collect_events(&mut rx, Duration::from_secs(10), |e| {
        e.iter().any(|e| {
            e.call() == Some(id)
                && matches!(e, CallEvent::Answered { .. } | CallEvent::Hangup { .. })
        })
    })
    .await;
    let Some(CallEvent::Answered { media, .. }) = ev.last() else {
        panic!("{ev:?}\n{}", log())
    };
    assert_eq!(media.negotiated.unwrap().payload_type, 0);
    tokio::time::sleep(Duration::from_millis(500)).await;
    sut.handle.hangup(id);
    tokio::time::sleep(Duration::from_millis(500)).await;

    // 3. It calls us (authenticating its INVITE); we answer, it hangs up via ctrl_tcp.
    ctrl(
        ctrl_port,
        "dial",
        &format!("sip:ivr@127.0.0.1:{}", sut.udp_addr.port()),
    )
    .await;
    let ev = collect_events(&mut rx, Duration::from_secs(10), |e| {
        e.iter().any(|e| matches!(e, CallEvent::Answered { .. }))
    })
    .await;
    let incoming = ev.iter().find_map(|e| {
        if let CallEvent::Incoming { call, user, .. } = e {
            Some((*call, user.clone()))
        } else {
            None
        }
    });
    let Some((call, user)) = incoming else {
        panic!("{ev:?}\n{}", log())
    };
    assert_eq!(user.as_deref(), Some("agent1"));
    assert!(
        ev.iter()
            .any(|e| matches!(e, CallEvent::Answered { call: c, .. } if *c == call)),
        "{ev:?}\n{}",
        log()
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    ctrl(ctrl_port, "hangup", "").await;
    let ev = collect_events(&mut rx, Duration::from_secs(5), |e| {
        e.iter().any(|e| matches!(e, CallEvent::Hangup { .. }))
    })
    .await;
    assert!(
        matches!(
            ev.last(),
            Some(CallEvent::Hangup {
                cause: HangupCause::RemoteBye,
                ..
            })
        ),
        "{ev:?}\n{}",
        log()
    );

    // 4. Hold and resume by re-INVITE, then a blind transfer: the phone is REFERred back to us
    //    (sip:queue@…), calls that target, and reports success by NOTIFY.
    let id = sut
        .handle
        .originate_registered("agent1", "ivr", Duration::from_secs(10))
        .await
        .unwrap();
    let ev = collect_events(&mut rx, Duration::from_secs(10), |e| {
        e.iter().any(|e| {
            e.call() == Some(id)
                && matches!(e, CallEvent::Answered { .. } | CallEvent::Hangup { .. })
        })
    })
    .await;
    assert!(
        matches!(ev.last(), Some(CallEvent::Answered { .. })),
        "{ev:?}\n{}",
        log()
    );
    sut.handle.hold(id, true);
    let ev = collect_events(&mut rx, Duration::from_secs(5), |e| {
        e.iter()
            .any(|e| matches!(e, CallEvent::MediaChanged { .. }))
    })
    .await;
    assert!(
        matches!(ev.last(), Some(CallEvent::MediaChanged { media, .. }) if media.direction() == Direction::SendOnly),
        "{ev:?}\n{}",
        log()
    );
    sut.handle.hold(id, false);
    let ev = collect_events(&mut rx, Duration::from_secs(5), |e| {
        e.iter()
            .any(|e| matches!(e, CallEvent::MediaChanged { .. }))
    })
    .await;
    assert!(
        matches!(ev.last(), Some(CallEvent::MediaChanged { media, .. }) if media.direction() == Direction::SendRecv),
        "{ev:?}\n{}",
        log()
    );
    sut.handle
        .transfer(id, &format!("sip:queue@127.0.0.1:{}", sut.udp_addr.port()));
    let ev = collect_events(&mut rx, Duration::from_secs(10), |e| {
        e.iter()
            .any(|e| matches!(e, CallEvent::TransferProgress { code: 200.., .. }))
            && e.iter().any(|e| matches!(e, CallEvent::Incoming { .. }))
    })
    .await;
    let transferred = ev.iter().find_map(|e| {
        if let CallEvent::Incoming {
            request_uri, user, ..
        } = e
        {
            Some((request_uri.clone(), user.clone()))
        } else {
            None
        }
    });
    assert!(
        matches!(&transferred, Some((uri, Some(u))) if uri.contains("queue@") && u == "agent1"),
        "{ev:?}\n{}",
        log()
    );
    assert!(
        ev.iter()
            .any(|e| matches!(e, CallEvent::TransferProgress { call, code: 200 } if *call == id)),
        "{ev:?}\n{}",
        log()
    );
}
