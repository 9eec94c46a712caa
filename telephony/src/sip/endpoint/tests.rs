//! Endpoint tests with a virtual clock: inbound and outbound calls driven message by message.

use super::*;
use crate::sip::call::{Originate, Trunk};
use rsip::message::HasHeaders;

fn cfg(auto: Option<Duration>) -> EndpointConfig {
    EndpointConfig {
        udp_addr: "127.0.0.1:5060".parse().unwrap(),
        tls_addr: None,
        tcp_addr: "127.0.0.1:5060".parse().unwrap(),
        advertised: "127.0.0.1".into(),
        rtp_ports: (20000, 20010),
        timers: TimerConfig::default(),
        auto_answer: auto,
        user_agent: "dialbridge-test".into(),
        policy: None,
        min_se: 90,
        session_interval: 1800,
    }
}

fn peer() -> Peer {
    Peer {
        transport: Transport::Udp,
        addr: "127.0.0.1:5070".parse().unwrap(),
        conn: None,
    }
}

fn parse(s: &str) -> SipMessage {
    message::parse(s.as_bytes(), 65535).unwrap()
}

const OFFER: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n";

fn invite(branch: &str) -> String {
    format!(
        "INVITE sip:ivr@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch={branch}\r\n\
From: <sip:caller@127.0.0.1:5070>;tag=ct1\r\nTo: <sip:ivr@127.0.0.1:5060>\r\nCall-ID: inbound-1\r\n\
CSeq: 1 INVITE\r\nContact: <sip:caller@127.0.0.1:5070>\r\nContent-Type: application/sdp\r\n\
Content-Length: {}\r\n\r\n{OFFER}",
        OFFER.len()
    )
}

fn sent(effects: &[Effect]) -> Vec<SipMessage> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Send { bytes, .. } => Some(message::parse(bytes, 65535).unwrap()),
            _ => None,
        })
        .collect()
}

fn codes(effects: &[Effect]) -> Vec<u16> {
    sent(effects)
        .into_iter()
        .filter_map(|m| {
            if let SipMessage::Response(r) = m {
                Some(r.status_code.code())
            } else {
                None
            }
        })
        .collect()
}

fn events(effects: &[Effect]) -> Vec<CallEvent> {
    effects
        .iter()
        .filter_map(|e| {
            if let Effect::Event(ev) = e {
                Some(ev.clone())
            } else {
                None
            }
        })
        .collect()
}

fn to_tag_of(effects: &[Effect]) -> String {
    sent(effects)
        .iter()
        .find_map(|m| {
            if let SipMessage::Response(r) = m {
                message::to_tag(&r.headers)
            } else {
                None
            }
        })
        .unwrap()
}

fn ep(auto: Option<Duration>) -> Endpoint {
    Endpoint::new(cfg(auto), Arc::new(AtomicU64::new(1)))
}

#[test]
fn inbound_call_answered_retransmitted_until_ack_then_bye() {
    let mut e = ep(Some(Duration::ZERO));
    let t0 = Instant::now();
    e.on_message(parse(&invite("z9hG4bKin1")), peer(), t0);
    let fx = e.take_effects();
    assert_eq!(codes(&fx), [100, 180, 200]);
    let tag = to_tag_of(&fx[1..]);
    let ok = sent(&fx).pop().unwrap();
    let body = String::from_utf8(ok.body().clone()).unwrap();
    assert!(
        body.contains("m=audio 200") && body.contains(" RTP/AVP 0 101\r\n"),
        "{body}"
    );
    // A retransmitted INVITE creates nothing new.
    e.on_message(parse(&invite("z9hG4bKin1")), peer(), t0);
    assert!(e.take_effects().is_empty());
    assert_eq!(e.inbound_calls_created(), 1);
    // The 2xx is retransmitted on T1, 2·T1 … until the ACK.
    e.on_timer(
        TimerKey::Call(CallId(1), CallTimer::Retransmit2xx),
        t0 + Duration::from_millis(500),
    );
    let fx = e.take_effects();
    assert_eq!(codes(&fx), [200]);
    let ack = format!(
        "ACK sip:ivr@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKack\r\n\
From: <sip:caller@127.0.0.1:5070>;tag=ct1\r\nTo: <sip:ivr@127.0.0.1:5060>;tag={tag}\r\nCall-ID: inbound-1\r\n\
CSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"
    );
    e.on_message(parse(&ack), peer(), t0 + Duration::from_secs(1));
    let ev = events(&e.take_effects());
    assert!(matches!(ev[..], [CallEvent::Answered { .. }]), "{ev:?}");
    e.on_timer(
        TimerKey::Call(CallId(1), CallTimer::Retransmit2xx),
        t0 + Duration::from_millis(1500),
    );
    assert!(
        e.take_effects().is_empty(),
        "no retransmission after the ACK"
    );
    let bye = ack
        .replace("ACK sip", "BYE sip")
        .replace("1 ACK", "2 BYE")
        .replace("z9hG4bKack", "z9hG4bKbye");
    e.on_message(parse(&bye), peer(), t0 + Duration::from_secs(2));
    let fx = e.take_effects();
    assert_eq!(codes(&fx), [200]);
    assert!(matches!(
        events(&fx)[..],
        [CallEvent::Hangup {
            cause: HangupCause::RemoteBye,
            ..
        }]
    ));
    assert_eq!(e.active_calls(), 0);
    assert_eq!(e.rtp_ports_available(), 5);
}

#[test]
fn cancel_before_answer_gives_487() {
    let mut e = ep(Some(Duration::from_secs(5)));
    let t0 = Instant::now();
    e.on_message(parse(&invite("z9hG4bKc1")), peer(), t0);
    e.take_effects();
    let cancel = "CANCEL sip:ivr@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKc1\r\n\
From: <sip:caller@127.0.0.1:5070>;tag=ct1\r\nTo: <sip:ivr@127.0.0.1:5060>\r\nCall-ID: inbound-1\r\nCSeq: 1 CANCEL\r\nContent-Length: 0\r\n\r\n";
    e.on_message(parse(cancel), peer(), t0);
    let fx = e.take_effects();
    assert_eq!(codes(&fx), [200, 487]);
    assert!(matches!(
        events(&fx)[..],
        [CallEvent::Hangup {
            cause: HangupCause::RemoteCancel,
            code: Some(487),
            ..
        }]
    ));
    // The auto-answer timer firing later does nothing.
    e.on_timer(
        TimerKey::Call(CallId(1), CallTimer::Answer),
        t0 + Duration::from_secs(5),
    );
    assert!(codes(&e.take_effects()).is_empty());
    // CANCEL for an unknown transaction: 481.
    e.on_message(
        parse(&cancel.replace("z9hG4bKc1", "z9hG4bKnone")),
        peer(),
        t0,
    );
    assert_eq!(codes(&e.take_effects()), [481]);
}

#[test]
fn draining_refuses_new_invites_with_503() {
    let mut e = ep(Some(Duration::ZERO));
    e.set_draining(true);
    e.on_message(parse(&invite("z9hG4bKd1")), peer(), Instant::now());
    assert_eq!(codes(&e.take_effects()), [100, 503]);
    assert_eq!(e.active_calls(), 0);
}

#[test]
fn no_ack_means_bye_after_64_t1() {
    let mut e = ep(Some(Duration::ZERO));
    let t0 = Instant::now();
    e.on_message(parse(&invite("z9hG4bKna")), peer(), t0);
    e.take_effects();
    e.on_timer(
        TimerKey::Call(CallId(1), CallTimer::AckTimeout),
        t0 + Duration::from_secs(32),
    );
    let fx = e.take_effects();
    let bye = sent(&fx);
    assert!(matches!(&bye[..], [SipMessage::Request(r)] if r.method == Method::Bye));
    assert!(matches!(
        events(&fx)[..],
        [CallEvent::Hangup {
            cause: HangupCause::AckTimeout,
            ..
        }]
    ));
}

fn trunk(port: u16) -> Trunk {
    Trunk {
        addr: format!("127.0.0.1:{port}").parse().unwrap(),
        transport: Transport::Udp,
        credentials: None,
    }
}

fn originate(e: &mut Endpoint, trunks: Vec<Trunk>, now: Instant) -> Request {
    e.on_command(
        Command::Originate(
            CallId(100),
            Originate {
                to_user: "15551234".into(),
                from_user: "dialer".into(),
                trunks,
                ring_timeout: Duration::from_secs(30),
                ..Default::default()
            },
        ),
        now,
    );
    let fx = e.take_effects();
    match sent(&fx).pop() {
        Some(SipMessage::Request(r)) => r,
        other => panic!("{other:?}"),
    }
}

fn reply(req: &Request, code: u16) -> SipMessage {
    let mut r = message::response_to(req, code, Some("callee"));
    r.headers
        .push(message::header("Contact", "<sip:callee@127.0.0.1:5080>"));
    SipMessage::Response(r)
}

#[test]
fn outbound_503_fails_over_then_486_is_busy() {
    let mut e = ep(None);
    let t0 = Instant::now();
    let inv = originate(&mut e, vec![trunk(5080), trunk(5090)], t0);
    e.on_message(reply(&inv, 503), peer(), t0);
    let fx = e.take_effects();
    let msgs = sent(&fx);
    // ACK for the 503, then a new INVITE to the second trunk.
    assert!(matches!(&msgs[0], SipMessage::Request(r) if r.method == Method::Ack));
    let SipMessage::Request(inv2) = &msgs[1] else {
        panic!()
    };
    assert!(inv2.uri.to_string().contains("127.0.0.1:5090"));
    assert!(events(&fx).is_empty());
    e.on_message(reply(inv2, 486), peer(), t0);
    let ev = events(&e.take_effects());
    assert!(
        matches!(
            ev[..],
            [CallEvent::Hangup {
                code: Some(486),
                outcome: Outcome::Busy,
                ..
            }]
        ),
        "{ev:?}"
    );
}

#[test]
fn ring_timeout_cancels_and_200_crossing_cancel_is_acked_then_byed() {
    let mut e = ep(None);
    let t0 = Instant::now();
    let inv = originate(&mut e, vec![trunk(5080)], t0);
    e.on_message(reply(&inv, 180), peer(), t0);
    assert!(matches!(
        events(&e.take_effects())[..],
        [CallEvent::Ringing { code: 180, .. }]
    ));
    e.on_timer(
        TimerKey::Call(CallId(100), CallTimer::RingTimeout),
        t0 + Duration::from_secs(30),
    );
    let msgs = sent(&e.take_effects());
    assert!(matches!(&msgs[..], [SipMessage::Request(r)] if r.method == Method::Cancel));
    // The 200 crosses the CANCEL.
    e.on_message(reply(&inv, 200), peer(), t0 + Duration::from_secs(30));
    let fx = e.take_effects();
    let methods: Vec<Method> = sent(&fx)
        .into_iter()
        .filter_map(|m| {
            if let SipMessage::Request(r) = m {
                Some(r.method)
            } else {
                None
            }
        })
        .collect();
    assert_eq!(methods, [Method::Ack, Method::Bye]);
    assert!(matches!(
        events(&fx)[..],
        [CallEvent::Hangup {
            cause: HangupCause::RingTimeout,
            code: Some(200),
            outcome: Outcome::NoAnswer,
            ..
        }]
    ));
}

#[test]
fn digest_challenge_is_answered_once() {
    let mut e = ep(None);
    let t0 = Instant::now();
    let mut t = trunk(5080);
    t.credentials = Some(crate::sip::digest::Credentials {
        username: "u".into(),
        password: "p".into(),
    });
    let inv = originate(&mut e, vec![t], t0);
    let mut r = message::response_to(&inv, 407, Some("x"));
    r.headers.push(message::header(
        "Proxy-Authenticate",
        "Digest realm=\"r\", nonce=\"n1\", qop=\"auth,auth-int\"",
    ));
    e.on_message(SipMessage::Response(r.clone()), peer(), t0);
    let msgs = sent(&e.take_effects());
    let SipMessage::Request(inv2) = &msgs[1] else {
        panic!()
    };
    let auth = message::value(&inv2.headers, "Proxy-Authorization").unwrap();
    assert!(
        auth.contains("nc=00000001") && auth.contains("qop=auth,"),
        "{auth}"
    );
    assert_eq!(message::cseq(&inv2.headers).unwrap().0, 2);
    // Same nonce again: wrong password, give up.
    let mut r2 = message::response_to(inv2, 407, Some("x"));
    r2.headers.push(message::header(
        "Proxy-Authenticate",
        "Digest realm=\"r\", nonce=\"n1\", qop=\"auth\"",
    ));
    e.on_message(SipMessage::Response(r2), peer(), t0);
    assert!(matches!(
        events(&e.take_effects())[..],
        [CallEvent::Hangup {
            code: Some(407),
            outcome: Outcome::Rejected,
            ..
        }]
    ));
}

#[test]
fn session_timer_expiry_hangs_up_a_silent_peer_and_refresh_resets_it() {
    let mut e = ep(Some(Duration::ZERO));
    let t0 = Instant::now();
    let inv = invite("z9hG4bKst1").replace(
        "CSeq: 1 INVITE\r\n",
        "CSeq: 1 INVITE\r\nSupported: timer\r\nx: 90;refresher=uac\r\n",
    );
    e.on_message(parse(&inv), peer(), t0);
    let fx = e.take_effects();
    let ok = sent(&fx).pop().unwrap();
    assert_eq!(
        message::value(ok.headers(), "Session-Expires").as_deref(),
        Some("90;refresher=uac")
    );
    assert_eq!(
        message::value(ok.headers(), "Require").as_deref(),
        Some("timer")
    );
    // The peer refreshes: expiry pushed out; the old timer firing does nothing.
    let expiry = t0 + Duration::from_secs(60);
    e.on_timer(
        TimerKey::Call(CallId(1), CallTimer::Session),
        expiry - Duration::from_secs(1),
    );
    assert!(sent(&e.take_effects()).is_empty());
    e.on_timer(TimerKey::Call(CallId(1), CallTimer::Session), expiry);
    let fx = e.take_effects();
    assert!(matches!(&sent(&fx)[..], [SipMessage::Request(r)] if r.method == Method::Bye));
    assert!(matches!(
        events(&fx)[..],
        [CallEvent::Hangup {
            cause: HangupCause::SessionExpired,
            ..
        }]
    ));
}

#[test]
fn too_small_session_interval_gets_422() {
    let mut e = ep(Some(Duration::ZERO));
    let inv = invite("z9hG4bKst2").replace(
        "CSeq: 1 INVITE\r\n",
        "CSeq: 1 INVITE\r\nSession-Expires: 30\r\n",
    );
    e.on_message(parse(&inv), peer(), Instant::now());
    let fx = e.take_effects();
    assert_eq!(codes(&fx), [100, 422]);
    let r = sent(&fx).pop().unwrap();
    assert_eq!(message::value(r.headers(), "Min-SE").as_deref(), Some("90"));
}

#[test]
fn we_refresh_when_we_are_the_refresher() {
    let mut e = ep(Some(Duration::ZERO));
    let t0 = Instant::now();
    let inv = invite("z9hG4bKst3").replace(
        "CSeq: 1 INVITE\r\n",
        "CSeq: 1 INVITE\r\nSession-Expires: 120;refresher=uas\r\n",
    );
    e.on_message(parse(&inv), peer(), t0);
    let fx = e.take_effects();
    let tag = to_tag_of(&fx[1..]);
    let ack = format!(
        "ACK sip:ivr@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKack3\r\n\
From: <sip:caller@127.0.0.1:5070>;tag=ct1\r\nTo: <sip:ivr@127.0.0.1:5060>;tag={tag}\r\nCall-ID: inbound-1\r\n\
CSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"
    );
    e.on_message(parse(&ack), peer(), t0);
    e.take_effects();
    e.on_timer(
        TimerKey::Call(CallId(1), CallTimer::Session),
        t0 + Duration::from_secs(60),
    );
    let msgs = sent(&e.take_effects());
    let [SipMessage::Request(re)] = &msgs[..] else {
        panic!("{msgs:?}")
    };
    assert_eq!(re.method, Method::Invite);
    assert_eq!(
        message::value(&re.headers, "Session-Expires").as_deref(),
        Some("120;refresher=uac")
    );
    assert_eq!(
        message::cseq(&re.headers).unwrap().0,
        1,
        "our first request in the dialog"
    );
}

#[test]
fn early_media_183_with_sdp_is_reported_and_kept_for_the_answer() {
    let mut e = ep(None);
    let t0 = Instant::now();
    let inv = originate(&mut e, vec![trunk(5080)], t0);
    let SipMessage::Response(mut r183) = reply(&inv, 183) else {
        unreachable!()
    };
    let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 7000 RTP/AVP 8\r\n";
    message::set_body(
        &mut r183.headers,
        &mut r183.body,
        Some("application/sdp"),
        sdp.as_bytes().to_vec(),
    );
    e.on_message(SipMessage::Response(r183), peer(), t0);
    let ev = events(&e.take_effects());
    let early = ev
        .iter()
        .find_map(|e| {
            if let CallEvent::EarlyMedia {
                media, code: 183, ..
            } = e
            {
                Some(*media)
            } else {
                None
            }
        })
        .expect("early media");
    let n = early.negotiated.unwrap();
    assert_eq!(
        (n.payload_type, n.remote_rtp),
        (8, Some("127.0.0.1:7000".parse().unwrap()))
    );
    // A 200 without SDP keeps the early-media negotiation.
    e.on_message(reply(&inv, 200), peer(), t0);
    let ev = events(&e.take_effects());
    assert!(
        matches!(ev[..], [CallEvent::Answered { media, .. }] if media.negotiated == Some(n)),
        "{ev:?}"
    );
}

/// Mutated but parseable messages, in any order, never panic the core and never leak calls
/// beyond what was created (a stable-toolchain stand-in for a fuzzer on the whole core).
#[test]
fn mutated_message_storm_never_panics() {
    let mut e = ep(Some(Duration::ZERO));
    let t0 = Instant::now();
    let inv = invite("z9hG4bKfz");
    let bases: Vec<String> = vec![
        inv.clone(),
        inv.replace("INVITE sip", "ACK sip").replace("1 INVITE", "1 ACK"),
        inv.replace("INVITE sip", "BYE sip").replace("1 INVITE", "2 BYE"),
        inv.replace("INVITE sip", "CANCEL sip").replace("1 INVITE", "1 CANCEL"),
        inv.replace("INVITE sip", "REFER sip").replace("1 INVITE", "3 REFER"),
        inv.replace("INVITE sip", "REGISTER sip").replace("1 INVITE", "1 REGISTER"),
        "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKx\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:b@h>;tag=2\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n".into(),
    ];
    let tokens = [
        "tag=",
        ";",
        "<",
        ">",
        "0",
        "4294967295",
        "INVITE",
        "z9hG4bK",
        "\"",
        ",",
        " ",
        "sip:",
        "@",
        ":",
        "=",
        "x",
    ];
    let mut seed = 0x9e37_79b9u32;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        seed
    };
    let mut parsed = 0;
    for i in 0..5000u32 {
        let mut m = bases[(rnd() as usize) % bases.len()].clone().into_bytes();
        for _ in 0..(rnd() % 4) {
            // Splice a token at a random place inside the head.
            let head = message::head_end(&m).unwrap_or(m.len());
            let at = (rnd() as usize) % head.max(1);
            let tok = tokens[(rnd() as usize) % tokens.len()].as_bytes();
            if rnd() % 2 == 0 {
                m.splice(at..at, tok.iter().copied());
            } else {
                let end = (at + tok.len()).min(head);
                m.splice(at..end, tok.iter().copied());
            }
        }
        let now = t0 + Duration::from_millis(i as u64 * 7);
        if let Ok(msg) = message::parse(&m, 65535) {
            parsed += 1;
            e.on_message(msg, peer(), now);
        }
        // Fire whatever timers are due, as the driver would.
        for fx in e.take_effects() {
            if let Effect::Timer { at, key } = fx
                && at <= now + Duration::from_secs(1)
            {
                e.on_timer(key, now + Duration::from_secs(1));
            }
        }
        let _ = e.take_effects();
    }
    assert!(parsed > 1000, "most mutations stay parseable ({parsed})");
    assert!(e.active_calls() as u64 <= e.inbound_calls_created());
}

#[test]
fn unsupported_require_gets_420_and_max_forwards_zero_483() {
    let mut e = ep(Some(Duration::ZERO));
    let inv = invite("z9hG4bKrq").replace(
        "CSeq: 1 INVITE\r\n",
        "CSeq: 1 INVITE\r\nRequire: 100rel, timer\r\n",
    );
    e.on_message(parse(&inv), peer(), Instant::now());
    let fx = e.take_effects();
    assert_eq!(codes(&fx), [100, 420]);
    assert_eq!(
        message::value(sent(&fx)[1].headers(), "Unsupported").as_deref(),
        Some("100rel")
    );
    let inv = invite("z9hG4bKmf").replace(
        "CSeq: 1 INVITE\r\n",
        "CSeq: 1 INVITE\r\nMax-Forwards: 0\r\n",
    );
    e.on_message(parse(&inv), peer(), Instant::now());
    assert_eq!(codes(&e.take_effects()), [100, 483]);
    assert_eq!(e.active_calls(), 0);
}

#[test]
fn our_hold_sends_sendonly_reinvite_and_reports_the_answer() {
    let mut e = ep(None);
    let t0 = Instant::now();
    let inv = originate(&mut e, vec![trunk(5080)], t0);
    let SipMessage::Response(mut ok) = reply(&inv, 200) else {
        unreachable!()
    };
    let answer = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 7000 RTP/AVP 0\r\n";
    message::set_body(
        &mut ok.headers,
        &mut ok.body,
        Some("application/sdp"),
        answer.as_bytes().to_vec(),
    );
    e.on_message(SipMessage::Response(ok), peer(), t0);
    e.take_effects();
    e.on_command(Command::Hold(CallId(100), true), t0);
    let msgs = sent(&e.take_effects());
    let [SipMessage::Request(re)] = &msgs[..] else {
        panic!("{msgs:?}")
    };
    assert_eq!(re.method, Method::Invite);
    assert!(String::from_utf8_lossy(&re.body).contains("a=sendonly"));
    assert_eq!(message::to_tag(&re.headers).as_deref(), Some("callee"));
    assert_eq!(message::cseq(&re.headers).unwrap().0, 2);
    let SipMessage::Response(mut ok2) = reply(re, 200) else {
        unreachable!()
    };
    let held = answer.replace("RTP/AVP 0\r\n", "RTP/AVP 0\r\na=recvonly\r\n");
    message::set_body(
        &mut ok2.headers,
        &mut ok2.body,
        Some("application/sdp"),
        held.into_bytes(),
    );
    e.on_message(SipMessage::Response(ok2), peer(), t0);
    let fx = e.take_effects();
    assert!(matches!(&sent(&fx)[..], [SipMessage::Request(a)] if a.method == Method::Ack));
    assert!(
        matches!(events(&fx)[..], [CallEvent::MediaChanged { media, .. }] if media.direction() == crate::sip::sdp::Direction::SendOnly),
        "{:?}",
        events(&fx)
    );
}

#[test]
fn info_dtmf_goes_out_in_dialog() {
    let mut e = ep(None);
    let t0 = Instant::now();
    let inv = originate(&mut e, vec![trunk(5080)], t0);
    e.on_message(reply(&inv, 200), peer(), t0);
    e.take_effects();
    e.on_command(Command::SendDtmfInfo(CallId(100), '#'), t0);
    let msgs = sent(&e.take_effects());
    let [SipMessage::Request(info)] = &msgs[..] else {
        panic!("{msgs:?}")
    };
    assert_eq!(info.method, Method::Info);
    assert_eq!(
        String::from_utf8_lossy(&info.body),
        "Signal=#\r\nDuration=160\r\n"
    );
    assert_eq!(
        message::value(&info.headers, "Content-Type").as_deref(),
        Some("application/dtmf-relay")
    );
    e.on_command(Command::SendDtmfInfo(CallId(100), 'x'), t0);
    assert!(sent(&e.take_effects()).is_empty(), "not a DTMF key");
}

#[test]
fn a_forked_second_200_is_acked_and_byed_without_touching_the_call() {
    let mut e = ep(None);
    let t0 = Instant::now();
    let inv = originate(&mut e, vec![trunk(5080)], t0);
    e.on_message(reply(&inv, 200), peer(), t0);
    assert!(matches!(
        events(&e.take_effects())[..],
        [CallEvent::Answered { .. }]
    ));
    // The same 200 again: the same ACK.
    e.on_message(reply(&inv, 200), peer(), t0);
    let m: Vec<Method> = sent(&e.take_effects())
        .into_iter()
        .filter_map(|m| {
            if let SipMessage::Request(r) = m {
                Some(r.method)
            } else {
                None
            }
        })
        .collect();
    assert_eq!(m, [Method::Ack]);
    // Another branch of a fork answers too (different To tag, its own Contact).
    let mut r2 = message::response_to(&inv, 200, Some("other-fork"));
    r2.headers
        .push(message::header("Contact", "<sip:fork2@127.0.0.1:5082>"));
    e.on_message(SipMessage::Response(r2), peer(), t0);
    let fx = e.take_effects();
    let reqs: Vec<(Method, Option<String>)> = sent(&fx)
        .into_iter()
        .filter_map(|m| {
            if let SipMessage::Request(r) = m {
                Some((r.method, message::to_tag(&r.headers)))
            } else {
                None
            }
        })
        .collect();
    assert_eq!(
        reqs,
        [
            (Method::Ack, Some("other-fork".into())),
            (Method::Bye, Some("other-fork".into()))
        ]
    );
    assert!(events(&fx).is_empty(), "the established call is untouched");
    assert_eq!(e.active_calls(), 1);
}

#[test]
fn update_refreshes_the_session_and_can_change_media() {
    let mut e = ep(Some(Duration::ZERO));
    let t0 = Instant::now();
    let inv = invite("z9hG4bKup").replace(
        "CSeq: 1 INVITE\r\n",
        "CSeq: 1 INVITE\r\nSession-Expires: 90;refresher=uac\r\n",
    );
    e.on_message(parse(&inv), peer(), t0);
    let fx = e.take_effects();
    let tag = to_tag_of(&fx[1..]);
    let update = format!(
        "UPDATE sip:ivr@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKupd\r\n\
From: <sip:caller@127.0.0.1:5070>;tag=ct1\r\nTo: <sip:ivr@127.0.0.1:5060>;tag={tag}\r\nCall-ID: inbound-1\r\n\
CSeq: 2 UPDATE\r\nSession-Expires: 90;refresher=uac\r\nContent-Length: 0\r\n\r\n"
    );
    let t1 = t0 + Duration::from_secs(50);
    e.on_message(parse(&update), peer(), t1);
    let fx = e.take_effects();
    assert_eq!(codes(&fx), [200]);
    assert!(events(&fx).is_empty(), "no media change without an offer");
    // The original expiry (t0 + 60 s) no longer ends the call; the refreshed one (t1 + 60 s) does.
    e.on_timer(
        TimerKey::Call(CallId(1), CallTimer::Session),
        t0 + Duration::from_secs(60),
    );
    assert!(events(&e.take_effects()).is_empty());
    e.on_timer(
        TimerKey::Call(CallId(1), CallTimer::Session),
        t1 + Duration::from_secs(60),
    );
    assert!(matches!(
        events(&e.take_effects())[..],
        [CallEvent::Hangup {
            cause: HangupCause::SessionExpired,
            ..
        }]
    ));
}

#[test]
fn progress_sends_183_with_sdp_before_answer() {
    let mut e = ep(None);
    let t0 = Instant::now();
    e.on_message(parse(&invite("z9hG4bKpr")), peer(), t0);
    e.take_effects();
    e.on_command(Command::Progress(CallId(1)), t0);
    let fx = e.take_effects();
    assert_eq!(codes(&fx), [183]);
    assert!(String::from_utf8_lossy(sent(&fx)[0].body()).contains(" RTP/AVP 0 101\r\n"));
    assert!(matches!(
        events(&fx)[..],
        [CallEvent::EarlyMedia { code: 183, .. }]
    ));
    e.on_command(Command::Answer(CallId(1)), t0);
    assert_eq!(codes(&e.take_effects()), [200]);
}

#[test]
fn shutdown_ends_ringing_outbound_calls_at_once() {
    let mut e = ep(None);
    let t0 = Instant::now();
    let inv = originate(&mut e, vec![trunk(5080)], t0);
    e.on_message(reply(&inv, 180), peer(), t0);
    e.take_effects();
    e.on_command(Command::HangupAll, t0);
    let fx = e.take_effects();
    assert!(matches!(&sent(&fx)[..], [SipMessage::Request(r)] if r.method == Method::Cancel));
    assert!(matches!(
        events(&fx)[..],
        [CallEvent::Hangup {
            cause: HangupCause::Shutdown,
            ..
        }]
    ));
    assert_eq!(e.active_calls(), 0);
    // The 200 that crosses the CANCEL is ACKed and BYEd.
    e.on_message(reply(&inv, 200), peer(), t0);
    let m: Vec<Method> = sent(&e.take_effects())
        .into_iter()
        .filter_map(|m| {
            if let SipMessage::Request(r) = m {
                Some(r.method)
            } else {
                None
            }
        })
        .collect();
    assert_eq!(m, [Method::Ack, Method::Bye]);
}

#[test]
fn glare_491_retries_our_reinvite_later() {
    let mut e = ep(None);
    let t0 = Instant::now();
    let inv = originate(&mut e, vec![trunk(5080)], t0);
    e.on_message(reply(&inv, 200), peer(), t0);
    e.take_effects();
    e.on_command(Command::Hold(CallId(100), true), t0);
    let msgs = sent(&e.take_effects());
    let [SipMessage::Request(re)] = &msgs[..] else {
        panic!()
    };
    e.on_message(reply(re, 491), peer(), t0);
    let fx = e.take_effects();
    let retry = fx.iter().find_map(|f| match f {
        Effect::Timer {
            at,
            key: TimerKey::Call(_, CallTimer::ReinviteRetry),
        } => Some(*at),
        _ => None,
    });
    let at = retry.expect("a retry is scheduled");
    assert!(at >= t0 + Duration::from_millis(2100) && at <= t0 + Duration::from_secs(4));
    e.on_timer(TimerKey::Call(CallId(100), CallTimer::ReinviteRetry), at);
    let msgs = sent(&e.take_effects());
    assert!(
        matches!(&msgs[..], [SipMessage::Request(r)] if r.method == Method::Invite && String::from_utf8_lossy(&r.body).contains("a=sendonly"))
    );
}

#[test]
fn inactive_hold_is_offered() {
    let mut e = ep(None);
    let t0 = Instant::now();
    let inv = originate(&mut e, vec![trunk(5080)], t0);
    e.on_message(reply(&inv, 200), peer(), t0);
    e.take_effects();
    e.on_command(
        Command::SetDirection(CallId(100), crate::sip::sdp::Direction::Inactive),
        t0,
    );
    let msgs = sent(&e.take_effects());
    assert!(
        matches!(&msgs[..], [SipMessage::Request(r)] if String::from_utf8_lossy(&r.body).contains("a=inactive"))
    );
}

#[test]
fn register_answers_a_407_with_proxy_authorization() {
    let mut e = ep(None);
    let t0 = Instant::now();
    let mut t = trunk(5080);
    t.credentials = Some(crate::sip::digest::Credentials {
        username: "trunkuser".into(),
        password: "secret".into(),
    });
    e.on_command(
        Command::Register(
            7,
            crate::sip::call::Registration {
                trunk: t,
                user: "trunkuser".into(),
                expires: 300,
            },
        ),
        t0,
    );
    let SipMessage::Request(reg) = sent(&e.take_effects()).pop().unwrap() else {
        panic!("no REGISTER sent")
    };
    assert_eq!(reg.method, Method::Register);
    assert!(message::value(&reg.headers, "Proxy-Authorization").is_none());
    // A proxy in front of the registrar challenges with 407 Proxy-Authenticate.
    let mut r = message::response_to(&reg, 407, None);
    r.headers.push(message::header(
        "Proxy-Authenticate",
        "Digest realm=\"proxy.example\", nonce=\"pn1\", qop=\"auth\", algorithm=MD5",
    ));
    e.on_message(SipMessage::Response(r), peer(), t0);
    let SipMessage::Request(reg2) = sent(&e.take_effects()).pop().unwrap() else {
        panic!("no second REGISTER")
    };
    assert_eq!(reg2.method, Method::Register);
    assert_eq!(
        message::cseq(&reg2.headers).unwrap().0,
        message::cseq(&reg.headers).unwrap().0 + 1
    );
    assert!(
        message::value(&reg2.headers, "Authorization").is_none(),
        "a 407 is answered in Proxy-Authorization, not Authorization"
    );
    let auth = message::value(&reg2.headers, "Proxy-Authorization").expect("Proxy-Authorization");
    let user = crate::sip::digest::verify(
        &auth,
        "proxy.example",
        "REGISTER",
        b"",
        |u| (u == "trunkuser").then(|| "secret".to_owned()),
        |n| n == "pn1",
    );
    assert_eq!(user.as_deref(), Some("trunkuser"), "{auth}");
    // The proxy accepts it: registered for what the registrar grants.
    let mut ok = message::response_to(&reg2, 200, Some("r"));
    ok.headers.push(message::header("Expires", "120"));
    e.on_message(SipMessage::Response(ok), peer(), t0);
    assert!(matches!(
        events(&e.take_effects())[..],
        [CallEvent::Registration {
            registration: 7,
            registered: true,
            code: Some(200),
            expires: 120,
        }]
    ));
}

#[test]
fn hanging_up_on_a_special_information_tone_ends_number_disconnected_in_the_call_record() {
    let mut e = ep(None);
    let t0 = Instant::now();
    let inv = originate(&mut e, vec![trunk(5080)], t0);
    let mut cdr = crate::cdr::CdrBook::default();
    e.on_message(reply(&inv, 183), peer(), t0);
    for ev in events(&e.take_effects()) {
        cdr.on_event(&ev, 0);
    }
    // The media layer heard a SIT in the early media: hang up for that reason.
    e.on_command(
        Command::HangupBecause(CallId(100), HangupCause::SpecialInformationTone),
        t0 + Duration::from_secs(2),
    );
    let msgs = sent(&e.take_effects());
    assert!(matches!(&msgs[..], [SipMessage::Request(r)] if r.method == Method::Cancel));
    // The callee's 487 ends it: the outcome table says number disconnected, not no answer.
    e.on_message(reply(&inv, 487), peer(), t0 + Duration::from_secs(2));
    let ev = events(&e.take_effects());
    assert!(
        matches!(
            ev[..],
            [CallEvent::Hangup {
                cause: HangupCause::SpecialInformationTone,
                code: Some(487),
                outcome: Outcome::NumberDisconnected,
                ..
            }]
        ),
        "{ev:?}"
    );
    let changes = cdr.on_event(&ev[0], 1);
    assert!(
        matches!(&changes[..], [crate::cdr::Change::Close { outcome: "number_disconnected", cause, code: Some(487), .. }] if cause == "special_information_tone"),
        "{changes:?}"
    );
    // A plain hang-up of a ringing call stays no answer.
    let inv = {
        e.on_command(
            Command::Originate(
                CallId(101),
                Originate {
                    to_user: "15551235".into(),
                    from_user: "dialer".into(),
                    trunks: vec![trunk(5080)],
                    ring_timeout: Duration::from_secs(30),
                    ..Default::default()
                },
            ),
            t0,
        );
        match sent(&e.take_effects()).pop() {
            Some(SipMessage::Request(r)) => r,
            other => panic!("{other:?}"),
        }
    };
    e.on_message(reply(&inv, 180), peer(), t0);
    e.take_effects();
    e.on_command(Command::Hangup(CallId(101)), t0);
    e.take_effects();
    e.on_message(reply(&inv, 487), peer(), t0);
    assert!(matches!(
        events(&e.take_effects())[..],
        [CallEvent::Hangup {
            cause: HangupCause::LocalHangup,
            outcome: Outcome::NoAnswer,
            ..
        }]
    ));
}
