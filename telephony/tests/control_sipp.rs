//! Call control against sipp (Debian `sip-tester`), with real RTP on loopback:
//! - sipp calls in streaming audio; Dialbridge's test endpoint answers, plays a µ-law prompt and
//!   then echoes: the prompt reaches the caller's media address bit-exact over PCMU and with
//!   correlation ≥ 0.95 over PCMA (transcoded), and the echo carries the caller's own frames;
//! - digits from sipp's `play_dtmf` (RFC 4733, PT 96, PT 97 filler, own SSRC) and a SIP INFO
//!   reach the call's event stream once per press;
//! - a B2BUA bridge: sipp calls in (PCMU), Dialbridge calls a sipp callee (PCMA only) and
//!   bridges them; each side hears the other's stream, transcoded; the caller's BYE ends both;
//! - the dialer's path: Dialbridge calls a sipp callee that talks, starts AMD on the answered
//!   call and gets the verdict on the call's stream, then hangs up;
//! - a caller that holds the call (re-INVITE sendonly) gets no audio until it resumes;
//! - a caller that sends no RTP is hung up by Dialbridge with cause `RtpInactivity`;
//! - the dialer's path for a dead number: a callee answers 183 with early media carrying a
//!   special-information tone; the call hears it, hangs up on it (`hangup_on_tone`), and ends
//!   with outcome number-disconnected (from the one outcome table) after the callee's 487.
//!
//! The caller's and callee's SDP point at capture sockets of the test (sipp 3.6.1 cannot record),
//! while sipp streams from its own media socket.

mod control_support;

use std::time::Duration;

use control_support::*;
use telephony::control::endpoint::{self, Mode};
use telephony::control::{Call, DtmfVia, EndCause, Event, OnPeerHangup};
use telephony::media::g711::Codec;
use telephony::media::prompt::Prompt;
use telephony::media::wav::{Wav, WavEncoding, encode_wav};
use telephony::sip::call::{HangupCause, Originate, Transport, Trunk};
use telephony::sip::outcome::Outcome;
use telephony::sip::sdp::Direction;

fn have_sipp() -> bool {
    foundation::testing::require_tool("sipp", "sip-tester")
}

fn uac_args(sut_port: u16, scenario: &str, rtpport: u16) -> Vec<String> {
    let (p, mp) = (free_port(), free_port());
    [
        format!("127.0.0.1:{sut_port}"),
        "-sf".into(),
        scenario.into(),
        "-s".into(),
        "ivr".into(),
        "-i".into(),
        "127.0.0.1".into(),
        "-mi".into(),
        "127.0.0.1".into(),
        "-p".into(),
        p.to_string(),
        "-mp".into(),
        mp.to_string(),
        "-key".into(),
        "rtpport".into(),
        rtpport.to_string(),
        "-m".into(),
        "1".into(),
    ]
    .into()
}

/// Events of a call until its hang-up (or the time runs out).
async fn events_until_hangup(call: &mut Call, within: Duration) -> Vec<Event> {
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + within;
    while let Ok(Some(ev)) = tokio::time::timeout_at(deadline, call.next_event()).await {
        let last = matches!(ev, Event::Hangup { .. });
        got.push(ev);
        if last {
            break;
        }
    }
    got
}

async fn wait_answered(call: &mut Call) -> Event {
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(10), call.next_event())
            .await
            .expect("answered within 10 s")
            .expect("call alive");
        match ev {
            Event::Answered { .. } => return ev,
            Event::Hangup { .. } => panic!("call ended before answer: {ev:?}"),
            _ => {}
        }
    }
}

/// Prompt then echo; returns (prompt bytes as µ-law, what the caller's media address got, the
/// caller's stream bytes, endpoint report).
async fn prompt_and_echo(
    name: &str,
    rtp_base: u16,
    codec: Codec,
) -> (Wav, Vec<Rtp>, Vec<u8>, endpoint::Report) {
    let dir = scratch(name);
    let mut sut = start(rtp_base, Some(Duration::from_secs(10))).await;
    // 1.01 s: the last frame is half filled and padded with silence.
    let wav = Wav::parse(&encode_wav(WavEncoding::Ulaw, &test_audio(1010, 3))).unwrap();
    let prompt = Prompt::from_wav(wav.clone());
    let caller_file = dir.join(format!(
        "caller.{}",
        if codec == Codec::Pcmu { "ulaw" } else { "alaw" }
    ));
    let caller_bytes = write_raw(&caller_file, codec, &test_audio(2000, 5));
    let mut reports = endpoint::serve(
        sut.incoming.take().unwrap(),
        Mode::Prompt {
            prompt,
            then_echo: true,
        },
    );
    let cap = Capture::start().await;
    let pt = codec.payload_type();
    let codecs = [
        (pt, if codec == Codec::Pcmu { "PCMU" } else { "PCMA" }),
        (96, "telephone-event"),
    ];
    let uac = Uac {
        codecs: &codecs,
        stream: Some((&caller_file, pt)),
        play_dtmf: None,
        info_digit: None,
        end: End::ByeAfter(2600),
    };
    std::fs::write(dir.join("uac.xml"), uac.xml()).unwrap();
    let sipp = spawn_sipp(
        &dir,
        &uac_args(sut.sip.udp_addr.port(), "uac.xml", cap.port),
    );
    let out = wait_sipp(&dir, sipp).await;
    assert_eq!(out.rc, 0, "sipp failed: {}\n{}", out.stdout, out.errors);
    let report = tokio::time::timeout(Duration::from_secs(10), reports.recv())
        .await
        .expect("report")
        .expect("report");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let pkts = cap.finish().await;
    let _ = std::fs::remove_dir_all(&dir);
    (wav, pkts, caller_bytes, report)
}

/// The echoed packets (after the prompt) each carry one 20 ms frame the caller sent, unchanged.
fn assert_echo(echo: &[Rtp], caller: &[u8]) {
    eprintln!("echoed packets: {}", echo.len());
    assert!(echo.len() >= 40, "only {} echoed packets", echo.len());
    let frames: std::collections::HashSet<&[u8]> = caller.chunks(160).collect();
    let foreign = echo
        .iter()
        .filter(|p| !frames.contains(p.payload.as_slice()))
        .count();
    assert_eq!(
        foreign,
        0,
        "{foreign} of {} echoed packets are not frames the caller sent",
        echo.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_prompt_is_bit_exact_over_pcmu_then_echo() {
    if !have_sipp() {
        return;
    }
    let (wav, pkts, caller, report) = prompt_and_echo("pcmu", 12000, Codec::Pcmu).await;
    assert!(report.answered && report.prompt_finished, "{report:?}");
    assert_eq!(report.cause, Some(EndCause::Sip(HangupCause::RemoteBye)));
    let stream = stream_of(&pkts, 12000, 0);
    let frames = wav.raw.len().div_ceil(160);
    assert!(
        stream.len() > frames,
        "got {} PCMU packets, the prompt alone is {frames}",
        stream.len()
    );
    assert!(
        stream.iter().all(|p| p.ssrc == stream[0].ssrc),
        "one stream"
    );
    let mut late = 0;
    for w in stream[..frames].windows(2) {
        assert_eq!(
            w[1].seq,
            w[0].seq.wrapping_add(1),
            "no prompt packet lost or reordered"
        );
        // The media clock follows wall time: when this shared machine stalls the sender, the
        // next packet says so with a timestamp gap (a new talkspurt) instead of bunching up.
        let step = w[1].ts.wrapping_sub(w[0].ts);
        assert!(
            step >= 160 && step.is_multiple_of(160) && step < 8000 * 2,
            "timestamp step {step}"
        );
        late += usize::from(step != 160);
    }
    eprintln!("prompt: {frames} packets, {late} sent late (timestamp gap)");
    let sent: Vec<u8> = stream[..frames]
        .iter()
        .flat_map(|p| p.payload.clone())
        .collect();
    assert_eq!(&sent[..wav.raw.len()], &wav.raw[..], "prompt bytes differ");
    assert!(
        sent[wav.raw.len()..].iter().all(|&b| b == 0xFF),
        "padding is µ-law silence"
    );
    assert_echo(&stream[frames..], &caller);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_prompt_over_pcma_correlates_then_echo() {
    if !have_sipp() {
        return;
    }
    let (wav, pkts, caller, report) = prompt_and_echo("pcma", 12200, Codec::Pcma).await;
    assert!(report.answered && report.prompt_finished, "{report:?}");
    assert!(
        stream_of(&pkts, 12200, 0).is_empty(),
        "nothing goes out as PCMU on a PCMA call"
    );
    let stream = stream_of(&pkts, 12200, 8);
    let frames = wav.raw.len().div_ceil(160);
    assert!(stream.len() > frames);
    let heard: Vec<i16> = stream[..frames]
        .iter()
        .flat_map(|p| Codec::Pcma.decode(&p.payload))
        .collect();
    let c = correlation(&wav.pcm, &heard[..wav.pcm.len()]);
    eprintln!("PCMA prompt correlation {c:.5}");
    assert!(c >= 0.95, "correlation {c:.4}");
    assert_echo(&stream[frames..], &caller);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_dtmf_from_sipp_arrives_once_per_digit() {
    if !have_sipp() {
        return;
    }
    let dir = scratch("dtmf");
    let mut sut = start(12400, Some(Duration::from_secs(10))).await;
    let mut incoming = sut.incoming.take().unwrap();
    let cap = Capture::start().await;
    let uac = Uac {
        codecs: &[(0, "PCMU"), (96, "telephone-event")],
        stream: None,
        play_dtmf: Some("1223#"),
        info_digit: Some('7'),
        end: End::ByeAfter(300),
    };
    std::fs::write(dir.join("uac.xml"), uac.xml()).unwrap();
    let sipp = spawn_sipp(
        &dir,
        &uac_args(sut.sip.udp_addr.port(), "uac.xml", cap.port),
    );
    let mut call = tokio::time::timeout(Duration::from_secs(10), incoming.next())
        .await
        .unwrap()
        .unwrap();
    let events = events_until_hangup(&mut call, Duration::from_secs(30)).await;
    let out = wait_sipp(&dir, sipp).await;
    assert_eq!(out.rc, 0, "sipp failed: {}\n{}", out.stdout, out.errors);
    let digits: Vec<(char, DtmfVia)> = events
        .iter()
        .filter_map(|e| match e {
            Event::Dtmf { digit, via } => Some((*digit, *via)),
            _ => None,
        })
        .collect();
    let r = DtmfVia::Rfc4733;
    assert_eq!(
        digits,
        vec![
            ('1', r),
            ('2', r),
            ('2', r),
            ('3', r),
            ('#', r),
            ('7', DtmfVia::SipInfo)
        ],
        "{events:?}"
    );
    assert!(matches!(
        events.last(),
        Some(Event::Hangup {
            cause: EndCause::Sip(HangupCause::RemoteBye),
            ..
        })
    ));
    cap.finish().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_bridge_relays_both_ways_with_transcoding() {
    if !have_sipp() {
        return;
    }
    let dir = scratch("bridge");
    let mut sut = start(12600, Some(Duration::from_secs(10))).await;
    let mut incoming = sut.incoming.take().unwrap();
    let a_file = dir.join("a.ulaw");
    let a_bytes = write_raw(&a_file, Codec::Pcmu, &test_audio(2000, 5));
    let b_file = dir.join("b.alaw");
    let b_bytes = write_raw(&b_file, Codec::Pcma, &test_audio(2000, 11));
    let (cap_a, cap_b) = (Capture::start().await, Capture::start().await);

    // The callee: PCMA only.
    std::fs::write(
        dir.join("uas.xml"),
        uas_xml(
            &[(8, "PCMA"), (101, "telephone-event")],
            Some((&b_file, 8)),
            20_000,
        ),
    )
    .unwrap();
    let uas_port = free_port();
    let uas_args: Vec<String> = [
        "-sf",
        "uas.xml",
        "-i",
        "127.0.0.1",
        "-mi",
        "127.0.0.1",
        "-m",
        "1",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([
        "-p".into(),
        uas_port.to_string(),
        "-mp".into(),
        free_port().to_string(),
        "-key".into(),
        "rtpport".into(),
        cap_b.port.to_string(),
    ])
    .collect();
    let uas = spawn_sipp(&dir, &uas_args);
    // The caller: PCMU.
    let uac = Uac {
        codecs: &[(0, "PCMU"), (101, "telephone-event")],
        stream: Some((&a_file, 0)),
        play_dtmf: None,
        info_digit: None,
        end: End::ByeAfter(3000),
    };
    std::fs::write(dir.join("uac.xml"), uac.xml()).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let uac = spawn_sipp(
        &dir,
        &uac_args(sut.sip.udp_addr.port(), "uac.xml", cap_a.port),
    );

    let mut a = tokio::time::timeout(Duration::from_secs(10), incoming.next())
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(
        wait_answered(&mut a).await,
        Event::Answered {
            codec: Codec::Pcmu,
            ..
        }
    ));
    let mut b = sut.calls.originate(Originate {
        to_user: "agent".into(),
        trunks: vec![Trunk {
            addr: ([127, 0, 0, 1], uas_port).into(),
            transport: Transport::Udp,
            credentials: None,
        }],
        ring_timeout: Duration::from_secs(10),
        ..Originate::default()
    });
    assert!(matches!(
        wait_answered(&mut b).await,
        Event::Answered {
            codec: Codec::Pcma,
            ..
        }
    ));
    a.control()
        .bridge(b.control(), OnPeerHangup::HangUp)
        .await
        .expect("bridged");

    let a_events = events_until_hangup(&mut a, Duration::from_secs(20)).await;
    let b_events = events_until_hangup(&mut b, Duration::from_secs(10)).await;
    let (out_a, out_b) = (wait_sipp(&dir, uac).await, wait_sipp(&dir, uas).await);
    assert_eq!(out_a.rc, 0, "caller: {}\n{}", out_a.stdout, out_a.errors);
    assert_eq!(out_b.rc, 0, "callee: {}\n{}", out_b.stdout, out_b.errors);
    assert!(
        a_events.contains(&Event::Bridged { peer: b.id() }),
        "{a_events:?}"
    );
    assert!(
        b_events.contains(&Event::Bridged { peer: a.id() }),
        "{b_events:?}"
    );
    assert!(
        matches!(
            a_events.last(),
            Some(Event::Hangup {
                cause: EndCause::Sip(HangupCause::RemoteBye),
                ..
            })
        ),
        "{a_events:?}"
    );
    assert!(b_events.contains(&Event::Unbridged {
        peer: a.id(),
        peer_ended: true
    }));
    assert_eq!(
        b_events.last().map(|e| match e {
            Event::Hangup { cause, .. } => Some(cause.clone()),
            _ => None,
        }),
        Some(Some(EndCause::BridgePeerEnded(a.id())))
    );

    // The callee's media address heard the caller (PCMU → PCMA), and the other way round.
    let (heard_a, heard_b) = (cap_a.finish().await, cap_b.finish().await);
    let to_b: Vec<i16> = stream_of(&heard_b, 12600, 8)
        .iter()
        .flat_map(|p| Codec::Pcma.decode(&p.payload))
        .collect();
    let to_a: Vec<i16> = stream_of(&heard_a, 12600, 0)
        .iter()
        .flat_map(|p| Codec::Pcmu.decode(&p.payload))
        .collect();
    assert!(
        to_b.len() >= 160 * 50 && to_a.len() >= 160 * 50,
        "relayed {} / {} samples",
        to_b.len(),
        to_a.len()
    );
    let (_, c_ab) = best_alignment(&Codec::Pcmu.decode(&a_bytes), &to_b);
    let (_, c_ba) = best_alignment(&Codec::Pcma.decode(&b_bytes), &to_a);
    eprintln!(
        "bridge: {} / {} samples relayed, correlation caller→callee {c_ab:.5}, callee→caller {c_ba:.5}",
        to_b.len(),
        to_a.len()
    );
    assert!(c_ab >= 0.95, "caller → callee correlation {c_ab:.4}");
    assert!(c_ba >= 0.95, "callee → caller correlation {c_ba:.4}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_rtp_inactivity_hangs_up_a_dead_call() {
    if !have_sipp() {
        return;
    }
    let dir = scratch("inactive");
    let mut sut = start(12800, Some(Duration::from_millis(1500))).await;
    let mut reports = endpoint::serve(sut.incoming.take().unwrap(), Mode::Echo);
    let cap = Capture::start().await;
    let uac = Uac {
        codecs: &[(0, "PCMU")],
        stream: None,
        play_dtmf: None,
        info_digit: None,
        end: End::WaitBye(15_000),
    };
    std::fs::write(dir.join("uac.xml"), uac.xml()).unwrap();
    let sipp = spawn_sipp(
        &dir,
        &uac_args(sut.sip.udp_addr.port(), "uac.xml", cap.port),
    );
    let out = wait_sipp(&dir, sipp).await;
    assert_eq!(
        out.rc, 0,
        "sipp expected our BYE: {}\n{}",
        out.stdout, out.errors
    );
    let report = tokio::time::timeout(Duration::from_secs(5), reports.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(report.answered);
    assert_eq!(report.cause, Some(EndCause::RtpInactivity));
    cap.finish().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_hold_stops_our_audio_until_resumed() {
    if !have_sipp() {
        return;
    }
    let dir = scratch("hold");
    let mut sut = start(13000, Some(Duration::from_secs(10))).await;
    let mut incoming = sut.incoming.take().unwrap();
    let cap = Capture::start().await;
    std::fs::write(dir.join("uac.xml"), hold_xml(1000, 1500)).unwrap();
    let sipp = spawn_sipp(
        &dir,
        &uac_args(sut.sip.udp_addr.port(), "uac.xml", cap.port),
    );
    let mut call = tokio::time::timeout(Duration::from_secs(10), incoming.next())
        .await
        .unwrap()
        .unwrap();
    wait_answered(&mut call).await;
    let tone = telephony::media::tone::ToneSpec::beep(440.0, 60_000);
    call.control().play_tone(tone).await.expect("playing");
    let mut changes = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut last = None;
    while let Ok(Some(ev)) = tokio::time::timeout_at(deadline, call.next_event()).await {
        match ev {
            Event::MediaChanged { direction } => {
                changes.push((direction, std::time::Instant::now()))
            }
            Event::Hangup { .. } => {
                last = Some(ev);
                break;
            }
            _ => {}
        }
    }
    let out = wait_sipp(&dir, sipp).await;
    assert_eq!(out.rc, 0, "sipp failed: {}\n{}", out.stdout, out.errors);
    assert!(
        matches!(
            last,
            Some(Event::Hangup {
                cause: EndCause::Sip(HangupCause::RemoteBye),
                ..
            })
        ),
        "{last:?}"
    );
    let dirs: Vec<Direction> = changes.iter().map(|c| c.0).collect();
    assert_eq!(
        dirs,
        vec![Direction::RecvOnly, Direction::SendRecv],
        "our direction on hold, then resumed"
    );
    let (held, resumed) = (changes[0].1, changes[1].1);
    let pkts = stream_of(&cap.finish().await, 13000, 0);
    let before = pkts.iter().filter(|p| p.at < held).count();
    // Packets already on their way when the hold was applied may still land just after it.
    let during = pkts
        .iter()
        .filter(|p| p.at > held + Duration::from_millis(100) && p.at < resumed)
        .count();
    let after = pkts.iter().filter(|p| p.at > resumed).count();
    eprintln!("hold: {before} packets before, {during} during, {after} after");
    assert!(before >= 30, "audio before the hold: {before}");
    assert_eq!(during, 0, "no audio while the peer holds the call");
    assert!(after >= 30, "audio after resuming: {after}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_outbound_call_gets_an_amd_verdict_then_hangs_up() {
    if !have_sipp() {
        return;
    }
    let dir = scratch("amd");
    let sut = start(13200, Some(Duration::from_secs(10))).await;
    let greeting = dir.join("greeting.ulaw");
    write_raw(&greeting, Codec::Pcmu, &test_audio(6000, 7));
    std::fs::write(
        dir.join("uas.xml"),
        uas_xml(
            &[(0, "PCMU"), (101, "telephone-event")],
            Some((&greeting, 0)),
            20_000,
        ),
    )
    .unwrap();
    let uas_port = free_port();
    let args: Vec<String> = [
        "-sf",
        "uas.xml",
        "-i",
        "127.0.0.1",
        "-mi",
        "127.0.0.1",
        "-m",
        "1",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([
        "-p".into(),
        uas_port.to_string(),
        "-mp".into(),
        free_port().to_string(),
        "-key".into(),
        "rtpport".into(),
        free_port().to_string(),
    ])
    .collect();
    let uas = spawn_sipp(&dir, &args);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut call = sut.calls.originate(Originate {
        to_user: "15551234".into(),
        trunks: vec![Trunk {
            addr: ([127, 0, 0, 1], uas_port).into(),
            transport: Transport::Udp,
            credentials: None,
        }],
        ring_timeout: Duration::from_secs(10),
        ..Originate::default()
    });
    assert!(!call.info().inbound);
    wait_answered(&mut call).await;
    call.control()
        .start_amd(telephony::media::amd::AmdConfig::default())
        .await
        .expect("AMD starts");
    let verdict = loop {
        match tokio::time::timeout(Duration::from_secs(6), call.next_event())
            .await
            .expect("a verdict within 6 s")
        {
            Some(Event::Amd(telephony::media::amd::AmdEvent::Verdict {
                verdict,
                at,
                reason,
                ..
            })) => break (verdict, at, reason),
            Some(Event::Hangup { .. }) | None => panic!("call ended before the AMD verdict"),
            Some(_) => {}
        }
    };
    eprintln!(
        "AMD verdict {:?} at {:?} ({})",
        verdict.0, verdict.1, verdict.2
    );
    assert!(
        verdict.1 <= Duration::from_millis(3600),
        "decided by the deadline"
    );
    call.control().hangup().await.unwrap();
    let rest = events_until_hangup(&mut call, Duration::from_secs(10)).await;
    assert!(
        matches!(
            rest.last(),
            Some(Event::Hangup {
                cause: EndCause::Sip(HangupCause::LocalHangup),
                ..
            })
        ),
        "{rest:?}"
    );
    let out = wait_sipp(&dir, uas).await;
    assert_eq!(out.rc, 0, "callee: {}\n{}", out.stdout, out.errors);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_special_information_tone_in_early_media_ends_number_disconnected() {
    if !have_sipp() {
        return;
    }
    let dir = scratch("sit");
    let sut = start(13400, None).await;
    // The "network" sends the announcement from the address the 183 names.
    let phone = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let phone_port = phone.local_addr().unwrap().port();
    let sdp = format!(
        "v=0\n      o=user1 1 1 IN IP4 [local_ip]\n      s=-\n      c=IN IP4 127.0.0.1\n      t=0 0\n      m=audio {phone_port} RTP/AVP 0\n      a=rtpmap:0 PCMU/8000\n"
    );
    let reply = |code: &str, body: &str, cseq: &str| {
        format!(
            "  <send><![CDATA[\n      SIP/2.0 {code}\n      [last_Via:]\n      [last_From:]\n      [last_To:];tag=[pid]SIPpTag01[call_number]\n      [last_Call-ID:]\n      {cseq}\n      Contact: <sip:[local_ip]:[local_port];transport=[transport]>\n{}      Content-Length: [len]\n\n      {body}\n    ]]></send>\n",
            if body.is_empty() {
                ""
            } else {
                "      Content-Type: application/sdp\n"
            }
        )
    };
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"ISO-8859-1\" ?>\n<scenario name=\"sit callee\">\n  <recv request=\"INVITE\"/>\n{}  <recv request=\"CANCEL\" timeout=\"15000\"/>\n{}{}  <recv request=\"ACK\"/>\n  <timewait milliseconds=\"200\"/>\n</scenario>\n",
        reply("183 Session Progress", &sdp, "[last_CSeq:]"),
        reply("200 OK", "", "[last_CSeq:]"),
        reply("487 Request Terminated", "", "CSeq: 1 INVITE"),
    );
    std::fs::write(dir.join("uas.xml"), xml).unwrap();
    let uas_port = free_port();
    let args: Vec<String> = [
        "-sf",
        "uas.xml",
        "-i",
        "127.0.0.1",
        "-mi",
        "127.0.0.1",
        "-m",
        "1",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain(["-p".into(), uas_port.to_string()])
    .collect();
    let uas = spawn_sipp(&dir, &args);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut sip_events = sut.sip.handle.subscribe();
    let mut call = sut.calls.originate(Originate {
        to_user: "15550000".into(),
        trunks: vec![Trunk {
            addr: ([127, 0, 0, 1], uas_port).into(),
            transport: Transport::Udp,
            credentials: None,
        }],
        ring_timeout: Duration::from_secs(20),
        ..Originate::default()
    });
    loop {
        match tokio::time::timeout(Duration::from_secs(10), call.next_event())
            .await
            .expect("early media within 10 s")
        {
            Some(Event::EarlyMedia { code: 183 }) => break,
            Some(Event::Hangup { .. }) | None => panic!("call ended before its early media"),
            Some(_) => {}
        }
    }
    let ours = loop {
        match sip_events.recv().await.unwrap() {
            telephony::sip::call::CallEvent::EarlyMedia { media, .. } => {
                break media.local_rtp_port;
            }
            _ => continue,
        }
    };
    call.control().detect_progress_tones().await.unwrap();
    // SIT "intercept" (913.8 Hz, 1370.6 Hz, 1776.7 Hz), then silence, as µ-law RTP every 20 ms.
    let mut pcm = vec![0i16; 1600];
    for (hz, ms) in [(913.8f64, 274usize), (1370.6, 274), (1776.7, 380)] {
        pcm.extend((0..ms * 8).map(|i| {
            (8000.0 * (2.0 * std::f64::consts::PI * hz * i as f64 / 8000.0).sin()) as i16
        }));
    }
    pcm.extend(std::iter::repeat_n(0, 8000));
    let sender = tokio::spawn(async move {
        let mut pace = tokio::time::interval(Duration::from_millis(20));
        for (n, frame) in pcm.chunks(160).enumerate() {
            pace.tick().await;
            let mut pkt = vec![0x80, 0];
            pkt.extend((n as u16).to_be_bytes());
            pkt.extend(((n * 160) as u32).to_be_bytes());
            pkt.extend(0x5151_u32.to_be_bytes());
            pkt.extend(Codec::Pcmu.encode(frame));
            let _ = phone.send_to(&pkt, ("127.0.0.1", ours)).await;
        }
    });
    let tone = loop {
        match tokio::time::timeout(Duration::from_secs(10), call.next_event())
            .await
            .expect("the tone is heard within 10 s")
        {
            Some(Event::Progress(p)) => break p.tone,
            Some(Event::Hangup { .. }) | None => panic!("call ended before the tone"),
            Some(_) => {}
        }
    };
    assert!(
        matches!(tone, telephony::media::progress::ProgressTone::Sit(_)),
        "{tone:?}"
    );
    assert_eq!(
        call.control().hangup_on_tone(tone).await.unwrap(),
        Some(Outcome::NumberDisconnected)
    );
    let rest = events_until_hangup(&mut call, Duration::from_secs(10)).await;
    assert!(
        matches!(
            rest.last(),
            Some(Event::Hangup {
                cause: EndCause::Sip(HangupCause::SpecialInformationTone),
                code: Some(487),
                outcome: Outcome::NumberDisconnected,
            })
        ),
        "{rest:?}"
    );
    sender.abort();
    let out = wait_sipp(&dir, uas).await;
    assert_eq!(out.rc, 0, "callee: {}\n{}", out.stdout, out.errors);
    let _ = std::fs::remove_dir_all(&dir);
}
