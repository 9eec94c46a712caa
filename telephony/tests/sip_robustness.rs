//! Malformed input over UDP and TCP: 400/513 where a response is possible, silence otherwise,
//! and the listeners keep serving; TCP framing with two messages in one write and one message
//! split across writes.

mod sip_common;

use std::time::Duration;

use sip_common::*;
use telephony::sip::listener::SipOptions;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

fn options(branch: &str, extra: &str, transport: &str) -> String {
    format!(
        "OPTIONS sip:ivr@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/{transport} 127.0.0.1:5999;branch=z9hG4bK{branch}\r\n\
From: <sip:probe@127.0.0.1>;tag=p{branch}\r\nTo: <sip:ivr@127.0.0.1>\r\nCall-ID: {branch}@probe\r\nCSeq: 1 OPTIONS\r\n\
Max-Forwards: 70\r\n{extra}Content-Length: 0\r\n\r\n"
    )
}

async fn udp_exchange(sock: &UdpSocket, to: std::net::SocketAddr, data: &[u8]) -> Option<String> {
    sock.send_to(data, to).await.unwrap();
    let mut buf = vec![0u8; 65535];
    match tokio::time::timeout(Duration::from_millis(700), sock.recv_from(&mut buf)).await {
        Ok(Ok((n, _))) => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
        _ => None,
    }
}

#[tokio::test]
async fn udp_malformed_messages_get_400_or_nothing_and_the_listener_survives() {
    let (sut, _lc) = start(SipOptions::default()).await;
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let to = sut.udp_addr;

    let ok = udp_exchange(&sock, to, options("a1", "", "UDP").as_bytes())
        .await
        .unwrap();
    assert!(ok.starts_with("SIP/2.0 200 "), "{ok}");

    // A header line without a colon.
    let bad = options("a2", "This is not a header\r\n", "UDP");
    let r = udp_exchange(&sock, to, bad.as_bytes()).await.unwrap();
    assert!(r.starts_with("SIP/2.0 400 "), "{r}");
    assert!(r.contains("Call-ID: a2@probe"));

    // Content-Length larger than the body.
    let bad = options("a3", "", "UDP").replace("Content-Length: 0", "Content-Length: 500");
    let r = udp_exchange(&sock, to, bad.as_bytes()).await.unwrap();
    assert!(r.starts_with("SIP/2.0 400 "), "{r}");

    // Over the size limit (8192 in the test config).
    let big = options("a4", &format!("X-Pad: {}\r\n", "x".repeat(9000)), "UDP");
    let r = udp_exchange(&sock, to, big.as_bytes()).await.unwrap();
    assert!(r.starts_with("SIP/2.0 513 "), "{r}");

    // Garbage bytes, a truncated start line, a malformed ACK: no response possible.
    for junk in [
        &b"\x00\x01\x02\xff\xfe garbage"[..],
        b"INVITE sip:x",
        b"ACK sip:x SIP/2.0\r\nVia: broken\r\n\r\n",
        b"SIP/2.0 200 OK\r\n\r\n",
    ] {
        assert_eq!(udp_exchange(&sock, to, junk).await, None);
    }

    // An unknown method: 501; a BYE outside any dialog: 481; still serving.
    let r = udp_exchange(
        &sock,
        to,
        options("a5", "", "UDP")
            .replace("OPTIONS", "FOO")
            .as_bytes(),
    )
    .await
    .unwrap();
    assert!(r.starts_with("SIP/2.0 501 "), "{r}");
    let r = udp_exchange(
        &sock,
        to,
        options("a7", "", "UDP")
            .replace("OPTIONS", "BYE")
            .as_bytes(),
    )
    .await
    .unwrap();
    assert!(r.starts_with("SIP/2.0 481 "), "{r}");
    let ok = udp_exchange(&sock, to, options("a6", "", "UDP").as_bytes())
        .await
        .unwrap();
    assert!(ok.starts_with("SIP/2.0 200 "), "{ok}");
}

async fn read_responses(stream: &mut TcpStream, want: usize) -> Vec<String> {
    let mut framer = telephony::sip::framing::Framer::new(65535);
    let mut out = Vec::new();
    let mut buf = vec![0u8; 65535];
    while out.len() < want {
        let n = match tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => n,
            _ => break,
        };
        for f in framer.push(&buf[..n]) {
            if let telephony::sip::framing::Frame::Message(m) = f {
                out.push(String::from_utf8_lossy(&m).into_owned());
            }
        }
    }
    out
}

#[tokio::test]
async fn tcp_two_messages_in_one_write_and_one_message_over_many_writes() {
    let (sut, _lc) = start(SipOptions::default()).await;
    let mut s = TcpStream::connect(sut.tcp_addr).await.unwrap();
    s.set_nodelay(true).unwrap();
    let two = format!("{}{}", options("t1", "", "TCP"), options("t2", "", "TCP"));
    s.write_all(two.as_bytes()).await.unwrap();
    let r = read_responses(&mut s, 2).await;
    assert_eq!(r.len(), 2, "{r:?}");
    assert!(r[0].starts_with("SIP/2.0 200 ") && r[0].contains("Call-ID: t1@probe"));
    assert!(r[1].starts_with("SIP/2.0 200 ") && r[1].contains("Call-ID: t2@probe"));

    let one = options("t3", "", "TCP");
    for chunk in one.as_bytes().chunks(13) {
        s.write_all(chunk).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let r = read_responses(&mut s, 1).await;
    assert!(r.len() == 1 && r[0].contains("Call-ID: t3@probe"), "{r:?}");
}

#[tokio::test]
async fn tcp_malformed_gets_400_and_the_listener_survives() {
    let (sut, _lc) = start(SipOptions::default()).await;
    // A bad header inside a well-framed message: 400, the connection stays usable.
    let mut s = TcpStream::connect(sut.tcp_addr).await.unwrap();
    s.write_all(options("m1", "Broken header line\r\n", "TCP").as_bytes())
        .await
        .unwrap();
    let r = read_responses(&mut s, 1).await;
    assert!(r.len() == 1 && r[0].starts_with("SIP/2.0 400 "), "{r:?}");
    s.write_all(options("m2", "", "TCP").as_bytes())
        .await
        .unwrap();
    let r = read_responses(&mut s, 1).await;
    assert!(r.len() == 1 && r[0].starts_with("SIP/2.0 200 "), "{r:?}");

    // A garbled Content-Length breaks the framing: 400, then the connection is closed.
    let mut s = TcpStream::connect(sut.tcp_addr).await.unwrap();
    s.write_all(
        options("m3", "", "TCP")
            .replace("Content-Length: 0", "Content-Length: zero")
            .as_bytes(),
    )
    .await
    .unwrap();
    let mut buf = vec![0u8; 4096];
    let mut got = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf)).await {
            Ok(Ok(0)) => break,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            other => panic!("connection neither answered nor closed: {other:?}"),
        }
    }
    assert!(String::from_utf8_lossy(&got).starts_with("SIP/2.0 400 "));

    // Pure garbage: closed without a response.
    let mut s = TcpStream::connect(sut.tcp_addr).await.unwrap();
    s.write_all(b"\xff\xfe\x00garbage\r\n\r\n").await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0);

    // Over the size limit: 513.
    let mut s = TcpStream::connect(sut.tcp_addr).await.unwrap();
    let big = options("m4", "", "TCP").replace(
        "Content-Length: 0\r\n\r\n",
        &format!("Content-Length: 9000\r\n\r\n{}", "x".repeat(9000)),
    );
    s.write_all(big.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    while let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf)).await {
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    assert!(
        String::from_utf8_lossy(&got).starts_with("SIP/2.0 513 "),
        "{}",
        String::from_utf8_lossy(&got)
    );

    // Still serving.
    let mut s = TcpStream::connect(sut.tcp_addr).await.unwrap();
    s.write_all(options("m5", "", "TCP").as_bytes())
        .await
        .unwrap();
    let r = read_responses(&mut s, 1).await;
    assert!(r.len() == 1 && r[0].starts_with("SIP/2.0 200 "), "{r:?}");
}

#[tokio::test]
async fn draining_answers_new_invites_503_and_stop_hangs_up_calls() {
    let (sut, lc) = start(SipOptions::default()).await;
    let mut rx = sut.handle.subscribe();
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let me = sock.local_addr().unwrap();
    let invite = |branch: &str, call: &str| {
        format!(
            "INVITE sip:ivr@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK{branch}\r\n\
From: <sip:c@127.0.0.1>;tag=f{branch}\r\nTo: <sip:ivr@127.0.0.1>\r\nCall-ID: {call}\r\nCSeq: 1 INVITE\r\n\
Contact: <sip:c@{me}>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        )
    };
    // One call up before draining (late offer: no SDP in the INVITE).
    sock.send_to(invite("d1", "drain-1").as_bytes(), sut.udp_addr)
        .await
        .unwrap();
    let ev = sip_common::collect_events(&mut rx, Duration::from_secs(2), |e| {
        e.iter()
            .any(|e| matches!(e, telephony::sip::call::CallEvent::Incoming { .. }))
    })
    .await;
    assert!(!ev.is_empty());
    lc.start_draining();
    let mut buf = vec![0u8; 65535];
    // Drain the first call's responses, then check the new INVITE gets 503.
    while let Ok(Ok(_)) =
        tokio::time::timeout(Duration::from_millis(300), sock.recv_from(&mut buf)).await
    {}
    sock.send_to(invite("d2", "drain-2").as_bytes(), sut.udp_addr)
        .await
        .unwrap();
    let mut got = Vec::new();
    while let Ok(Ok((n, _))) =
        tokio::time::timeout(Duration::from_millis(500), sock.recv_from(&mut buf)).await
    {
        got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    assert!(
        got.iter()
            .any(|m| m.starts_with("SIP/2.0 503 ") && m.contains("Call-ID: drain-2")),
        "{got:?}"
    );
    // The drain time runs out: the call in progress is ended with a BYE.
    let outcome = lc
        .drain(Duration::from_millis(100), Duration::from_secs(2))
        .await;
    assert_eq!(outcome, foundation::lifecycle::DrainOutcome::Stopped);
    let mut saw_bye = false;
    while let Ok(Ok((n, _))) =
        tokio::time::timeout(Duration::from_millis(500), sock.recv_from(&mut buf)).await
    {
        saw_bye |= buf[..n].starts_with(b"BYE ");
    }
    assert!(saw_bye, "the answered call got a BYE at shutdown");
}

#[tokio::test]
async fn trunk_ping_reports_alive_and_dead_trunks() {
    use telephony::sip::call::{CallEvent, Transport, Trunk};
    use telephony::sip::transaction::TimerConfig;
    // T1 = 50 ms: a dead trunk is declared after 64*T1 = 3.2 s.
    let timers = TimerConfig {
        t1: Duration::from_millis(50),
        ..Default::default()
    };
    let (a, _la) = start(SipOptions {
        timers,
        ..Default::default()
    })
    .await;
    let (b, _lb) = start(SipOptions::default()).await;
    let mut rx = a.handle.subscribe();
    for (addr, transport) in [(b.udp_addr, Transport::Udp), (b.tcp_addr, Transport::Tcp)] {
        let id = a.handle.ping(Trunk {
            addr,
            transport,
            credentials: None,
        });
        let ev = sip_common::collect_events(&mut rx, Duration::from_secs(3), |e| {
            e.iter().any(|e| matches!(e, CallEvent::TrunkStatus { .. }))
        })
        .await;
        assert!(
            matches!(ev.last(), Some(CallEvent::TrunkStatus { ping, code: Some(200), .. }) if *ping == id),
            "{transport:?}: {ev:?}"
        );
    }
    let dead: std::net::SocketAddr = format!("127.0.0.1:{}", sip_common::free_port())
        .parse()
        .unwrap();
    let id = a.handle.ping(Trunk {
        addr: dead,
        transport: Transport::Udp,
        credentials: None,
    });
    let ev = sip_common::collect_events(&mut rx, Duration::from_secs(6), |e| {
        e.iter().any(|e| matches!(e, CallEvent::TrunkStatus { .. }))
    })
    .await;
    assert!(
        matches!(ev.last(), Some(CallEvent::TrunkStatus { ping, code: None, .. }) if *ping == id),
        "{ev:?}"
    );
}
