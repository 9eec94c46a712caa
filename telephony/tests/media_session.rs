//! `RtpSession` over loopback UDP against plain sockets acting as phones: prompt playback
//! (bit-exact µ-law, A-law correlation), bridging with transcoding, switching an agent's leg
//! between customers, DTMF both ways (including sipp-style PT 96 events with PT 97 filler on
//! another SSRC, and in-band), recording, taps, inactivity, AMD and port leasing.

mod media_support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use rtp::packet::Packet;
use telephony::media::amd::{AmdConfig, AmdEvent, AmdVerdict};
use telephony::media::g711::{Codec, ulaw_to_alaw};
use telephony::media::ports::{PortAllocator, SharedPorts};
use telephony::media::prompt::Prompt;
use telephony::media::receiver::{Received, ReceiverConfig, RtpReceiver};
use telephony::media::recorder::{Direction, RecordingLayout};
use telephony::media::rfc4733::EventPayload;
use telephony::media::sender::RtpSender;
use telephony::media::session::{MediaEvent, RtpSession, SessionConfig, bridge};
use telephony::media::tone::{ToneGenerator, ToneSpec, dual_tone};
use telephony::media::wav::{Wav, WavEncoding, encode_wav};
use tokio::net::UdpSocket;
use tokio::time::timeout;
use webrtc_util::marshal::{Marshal, Unmarshal};

const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

async fn phone() -> (UdpSocket, SocketAddr) {
    let s = UdpSocket::bind((LO, 0)).await.unwrap();
    let a = s.local_addr().unwrap();
    (s, a)
}

/// Receives RTP packets until `quiet` passes without one.
async fn collect(sock: &UdpSocket, quiet: Duration) -> Vec<Packet> {
    let mut out = Vec::new();
    let mut buf = [0u8; 2048];
    while let Ok(Ok((n, _))) = timeout(quiet, sock.recv_from(&mut buf)).await {
        let mut b = &buf[..n];
        out.push(Packet::unmarshal(&mut b).unwrap());
    }
    out
}

async fn next_event(s: &mut RtpSession, within: Duration) -> Option<MediaEvent> {
    timeout(within, s.next_event()).await.ok().flatten()
}

fn speechlike(ms: u32) -> Vec<i16> {
    (0..ms as usize * 8)
        .map(|i| {
            let t = i as f64 / 8000.0;
            let env = 0.55 + 0.45 * (2.0 * std::f64::consts::PI * 3.0 * t).sin();
            let v: f64 = (1..10)
                .map(|h| (2.0 * std::f64::consts::PI * 180.0 * h as f64 * t).sin() / h as f64)
                .sum();
            (v * env * 5000.0) as i16
        })
        .collect()
}

fn assert_one_stream(pkts: &[Packet]) {
    let ssrc = pkts[0].header.ssrc;
    for w in pkts.windows(2) {
        assert_eq!(w[1].header.ssrc, ssrc);
        assert_eq!(
            w[1].header.sequence_number,
            w[0].header.sequence_number.wrapping_add(1)
        );
    }
}

#[tokio::test]
async fn ulaw_prompt_goes_out_bit_exact_and_paced() {
    // A µ-law prompt with every code in it (including 0x7F, which a decode/encode would alter).
    let raw: Vec<u8> = (0..4000u32).map(|i| (i * 37 % 256) as u8).collect();
    let wav = Wav::parse(&telephony::media::wav::wav_from_raw(
        WavEncoding::Ulaw,
        1,
        &raw,
    ))
    .unwrap();
    let (phone, phone_addr) = phone().await;
    let mut s = RtpSession::bind(SessionConfig::pcmu(LO), None)
        .await
        .unwrap();
    s.set_remote(phone_addr);
    let start = std::time::Instant::now();
    s.play(Box::new(Prompt::from_wav(wav).player()));
    assert_eq!(
        next_event(&mut s, Duration::from_secs(3)).await,
        Some(MediaEvent::PlaybackFinished)
    );
    let pkts = collect(&phone, Duration::from_millis(200)).await;
    let elapsed = start.elapsed();
    assert_eq!(pkts.len(), 25); // 4000 samples = 25 frames
    assert_one_stream(&pkts);
    assert!(pkts[0].header.marker && pkts[1..].iter().all(|p| !p.header.marker));
    for w in pkts.windows(2) {
        assert_eq!(
            w[1].header.timestamp.wrapping_sub(w[0].header.timestamp),
            160
        );
    }
    assert!(
        pkts.iter()
            .all(|p| p.header.payload_type == 0 && p.payload.len() == 160)
    );
    let got: Vec<u8> = pkts.iter().flat_map(|p| p.payload.to_vec()).collect();
    assert_eq!(got, raw, "µ-law bytes altered");
    // Real-time pacing: 25 frames take about 500 ms.
    assert!(elapsed >= Duration::from_millis(480), "{elapsed:?}");
    s.close().await;
}

#[tokio::test]
async fn pcma_prompt_correlates_with_its_source() {
    let src: Vec<i16> = speechlike(1000);
    let prompt = Prompt::from_wav(Wav::parse(&encode_wav(WavEncoding::Pcm16, &src)).unwrap());
    let (phone, phone_addr) = phone().await;
    let mut s = RtpSession::bind(SessionConfig::pcmu(LO).with_codec(Codec::Pcma), None)
        .await
        .unwrap();
    s.set_remote(phone_addr);
    s.play(Box::new(prompt.player()));
    assert_eq!(
        next_event(&mut s, Duration::from_secs(3)).await,
        Some(MediaEvent::PlaybackFinished)
    );
    let pkts = collect(&phone, Duration::from_millis(200)).await;
    assert!(pkts.iter().all(|p| p.header.payload_type == 8));
    let got: Vec<i16> = pkts
        .iter()
        .flat_map(|p| Codec::Pcma.decode(&p.payload))
        .collect();
    let c = media_support::correlation(&src, &got);
    assert!(c >= 0.95, "correlation {c}");
    s.close().await;
}

#[tokio::test]
async fn bridge_transcodes_pcmu_to_pcma_and_back() {
    let (phone_a, addr_a) = phone().await;
    let (phone_b, addr_b) = phone().await;
    let a = RtpSession::bind(SessionConfig::pcmu(LO), None)
        .await
        .unwrap();
    let b = RtpSession::bind(SessionConfig::pcmu(LO).with_codec(Codec::Pcma), None)
        .await
        .unwrap();
    a.set_remote(addr_a);
    b.set_remote(addr_b);
    bridge(&a, &b);
    tokio::time::sleep(Duration::from_millis(30)).await;
    // Phone A talks PCMU; phone B must hear the same audio as PCMA.
    let mut tx = RtpSender::new(0xA, 100, 0);
    let mut sent = Vec::new();
    for i in 0..20u32 {
        let payload: Vec<u8> = (0..160).map(|j| ((i * 7 + j) % 256) as u8).collect();
        sent.extend_from_slice(&payload);
        let p = tx.audio(0, Bytes::from(payload));
        phone_a
            .send_to(&p.marshal().unwrap(), a.local_addr())
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let at_b = collect(&phone_b, Duration::from_millis(200)).await;
    assert!(at_b.iter().all(|p| p.header.payload_type == 8));
    assert_one_stream(&at_b);
    let heard: Vec<u8> = at_b.iter().flat_map(|p| p.payload.to_vec()).collect();
    // The first packet completes A.1 probation and both first packets are relayed.
    assert_eq!(heard.len(), sent.len());
    assert_eq!(heard, ulaw_to_alaw(&sent));
    // And B → A comes out as PCMU.
    let mut tx = RtpSender::new(0xB, 7, 0);
    for _ in 0..5 {
        let p = tx.audio(8, Bytes::from(vec![0xD5u8; 160]));
        phone_b
            .send_to(&p.marshal().unwrap(), b.local_addr())
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let at_a = collect(&phone_a, Duration::from_millis(200)).await;
    assert_eq!(at_a.len(), 5);
    let want = telephony::media::g711::alaw_to_ulaw(&[0xD5]);
    assert!(
        at_a.iter()
            .all(|p| p.header.payload_type == 0 && p.payload.iter().all(|&x| x == want[0]))
    );
    a.close().await;
    b.close().await;
}

#[tokio::test]
async fn agent_leg_switches_customers_without_a_new_stream() {
    let (agent_phone, agent_addr) = phone().await;
    let (c1_phone, c1_addr) = phone().await;
    let (c2_phone, c2_addr) = phone().await;
    let agent = RtpSession::bind(SessionConfig::pcmu(LO), None)
        .await
        .unwrap();
    let c1 = RtpSession::bind(SessionConfig::pcmu(LO), None)
        .await
        .unwrap();
    let c2 = RtpSession::bind(SessionConfig::pcmu(LO).with_codec(Codec::Pcma), None)
        .await
        .unwrap();
    agent.set_remote(agent_addr);
    c1.set_remote(c1_addr);
    c2.set_remote(c2_addr);
    bridge(&agent, &c1);
    tokio::time::sleep(Duration::from_millis(30)).await;
    let mut t1 = RtpSender::new(1, 0, 0);
    let mut t2 = RtpSender::new(2, 0, 0);
    for _ in 0..10 {
        let p = t1.audio(0, Bytes::from(vec![0x11u8; 160]));
        c1_phone
            .send_to(&p.marshal().unwrap(), c1.local_addr())
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Switch the agent to customer 2 (customer 1 keeps talking: it must not reach the agent).
    bridge(&agent, &c2);
    c1.disconnect();
    tokio::time::sleep(Duration::from_millis(30)).await;
    for _ in 0..10 {
        let p = t1.audio(0, Bytes::from(vec![0x11u8; 160]));
        c1_phone
            .send_to(&p.marshal().unwrap(), c1.local_addr())
            .await
            .unwrap();
        let p = t2.audio(8, Bytes::from(vec![0x22u8; 160]));
        c2_phone
            .send_to(&p.marshal().unwrap(), c2.local_addr())
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let heard = collect(&agent_phone, Duration::from_millis(200)).await;
    assert_one_stream(&heard);
    let from_c1 = heard.iter().filter(|p| p.payload[0] == 0x11).count();
    let from_c2: Vec<&Packet> = heard.iter().filter(|p| p.payload[0] != 0x11).collect();
    assert_eq!(from_c1, 10, "customer 1 audio before the switch only");
    assert_eq!(from_c2.len(), 10);
    // Customer 2's A-law arrives at the agent as µ-law.
    let want = telephony::media::g711::alaw_to_ulaw(&[0x22]);
    assert!(
        from_c2
            .iter()
            .all(|p| p.payload[0] == want[0] && p.header.payload_type == 0)
    );
    let markers: Vec<usize> = heard
        .iter()
        .enumerate()
        .filter(|(_, p)| p.header.marker)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(markers, [0, 10], "marker at stream start and at the switch");
    // The agent's audio now goes to customer 2 only.
    let mut ta = RtpSender::new(3, 0, 0);
    for _ in 0..5 {
        let p = ta.audio(0, Bytes::from(vec![0x33u8; 160]));
        agent_phone
            .send_to(&p.marshal().unwrap(), agent.local_addr())
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        collect(&c2_phone, Duration::from_millis(200)).await.len(),
        5
    );
    let c1_heard = collect(&c1_phone, Duration::from_millis(50)).await;
    assert!(
        c1_heard.iter().all(|p| p.payload[0] != 0x33),
        "customer 1 still hears the agent"
    );
    for s in [agent, c1, c2] {
        s.close().await;
    }
}

#[tokio::test]
async fn dtmf_sent_as_rfc4733_is_received_once_per_digit() {
    let (ph, addr) = phone().await;
    let s = RtpSession::bind(SessionConfig::pcmu(LO), None)
        .await
        .unwrap();
    s.set_remote(addr);
    s.send_dtmf("1223#");
    let pkts = collect(&ph, Duration::from_millis(400)).await;
    let mut rx = RtpReceiver::new(ReceiverConfig {
        audio: vec![(0, Codec::Pcmu)],
        telephone_event: vec![101],
    });
    let now = std::time::Instant::now();
    let digits: String = pkts
        .into_iter()
        .flat_map(|p| rx.on_packet(p, now))
        .filter_map(|r| match r {
            Received::Dtmf(d) => Some(d.digit),
            _ => None,
        })
        .collect();
    assert_eq!(digits, "1223#");
    s.close().await;
}

#[tokio::test]
async fn sipp_style_events_with_filler_on_another_ssrc() {
    let (ph, _) = phone().await;
    let mut cfg = SessionConfig::pcmu(LO);
    cfg.receive = ReceiverConfig {
        audio: vec![(0, Codec::Pcmu)],
        telephone_event: vec![96],
    };
    let mut s = RtpSession::bind(cfg, None).await.unwrap();
    let mut audio = RtpSender::new(0x1111, 0, 0);
    let mut ev = RtpSender::new(0x01020305, 500, 0);
    let to = s.local_addr();
    for _ in 0..5 {
        let p = ev.packet(97, false, 0, Bytes::from_static(&[0u8; 4]));
        ph.send_to(&p.marshal().unwrap(), to).await.unwrap();
    }
    for (k, digit) in [1u8, 1, 9].into_iter().enumerate() {
        let ts = 8000 * (k as u32 + 1);
        for step in 1..=8u16 {
            let a = audio.audio(0, Bytes::from(vec![0xFFu8; 160]));
            ph.send_to(&a.marshal().unwrap(), to).await.unwrap();
            let end = step == 8;
            let pl = EventPayload {
                event: digit,
                end,
                volume: 10,
                duration: 160 * step,
            };
            for _ in 0..(if end { 3 } else { 1 }) {
                let p = ev.packet(96, step == 1, ts, Bytes::copy_from_slice(&pl.to_bytes()));
                ph.send_to(&p.marshal().unwrap(), to).await.unwrap();
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let mut digits = String::new();
    while let Some(e) = next_event(&mut s, Duration::from_millis(300)).await {
        if let MediaEvent::Dtmf { digit, inband } = e {
            assert!(!inband);
            digits.push(digit);
        }
    }
    assert_eq!(digits, "119");
    let st = s.stats().await;
    assert_eq!(st.receiver.unknown_payload_type, 5);
    assert_eq!(st.receiver.audio, 24);
    s.close().await;
}

#[tokio::test]
async fn inband_dtmf_recording_tap_and_inactivity() {
    let (ph, addr) = phone().await;
    let mut cfg = SessionConfig::pcmu(LO);
    cfg.inband_dtmf = true;
    cfg.inactivity_timeout = Some(Duration::from_millis(300));
    let mut s = RtpSession::bind(cfg, None).await.unwrap();
    s.set_remote(addr);
    let mut tap = s.tap(1000);
    s.start_recording();
    let mut audio = dual_tone(852.0, 1477.0, 8000, 0.2, 120); // '9'
    audio.extend(vec![0i16; 8 * 100]);
    audio.extend(dual_tone(941.0, 1209.0, 8000, 0.2, 120)); // '*'
    audio.resize(audio.len().div_ceil(160) * 160 + 1600, 0);
    let mut tx = RtpSender::new(5, 0, 0);
    for f in audio.chunks(160) {
        let p = tx.audio(0, Bytes::from(Codec::Pcmu.encode(f)));
        ph.send_to(&p.marshal().unwrap(), s.local_addr())
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut digits = String::new();
    let mut inactive = false;
    while let Some(e) = next_event(&mut s, Duration::from_millis(800)).await {
        match e {
            MediaEvent::Dtmf {
                digit,
                inband: true,
            } => digits.push(digit),
            MediaEvent::Inactive => {
                inactive = true;
                break;
            }
            _ => {}
        }
    }
    assert_eq!(digits, "9*");
    assert!(inactive, "no inactivity event");
    let wav = Wav::parse(
        &s.stop_recording(RecordingLayout::Mono, WavEncoding::Pcm16)
            .await,
    )
    .unwrap();
    let n = audio.len();
    assert!(
        wav.pcm.len() >= n - 480 && wav.pcm.len() <= n + 3200,
        "recorded {} of {}",
        wav.pcm.len(),
        n
    );
    let mut tapped = 0;
    while let Ok(f) = tap.try_recv() {
        assert_eq!(f.direction, Direction::Inbound);
        tapped += 1;
    }
    // Everything but the jitter-buffer tail and the probation packet's predecessor is tapped.
    assert!(tapped >= audio.len() / 160 - 4, "tapped {tapped}");
    s.close().await;
}

#[tokio::test]
async fn inband_detection_stops_once_rfc4733_events_arrive() {
    let (ph, _) = phone().await;
    let mut cfg = SessionConfig::pcmu(LO);
    cfg.inband_dtmf = true;
    let mut s = RtpSession::bind(cfg, None).await.unwrap();
    let to = s.local_addr();
    // A phone sending '5' both ways: the telephone-event and the tone in the audio.
    let mut audio_tx = RtpSender::new(1, 0, 0);
    let mut ev_tx = RtpSender::new(1, 0, 0);
    let tone = dual_tone(770.0, 1336.0, 8000, 0.2, 200);
    let mut frames: Vec<Vec<i16>> = vec![vec![0; 160]; 3];
    frames.extend(tone.chunks(160).map(|c| c.to_vec()));
    frames.extend(vec![vec![0; 160]; 6]);
    for (i, f) in frames.iter().enumerate() {
        let a = audio_tx.audio(0, Bytes::from(Codec::Pcmu.encode(f)));
        ph.send_to(&a.marshal().unwrap(), to).await.unwrap();
        if (3..13).contains(&i) {
            let step = (i - 2) as u16;
            let pl = EventPayload {
                event: 5,
                end: step == 10,
                volume: 10,
                duration: 160 * step,
            };
            let e = ev_tx.packet(101, step == 1, 480, Bytes::copy_from_slice(&pl.to_bytes()));
            ph.send_to(&e.marshal().unwrap(), to).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut got = Vec::new();
    while let Some(e) = next_event(&mut s, Duration::from_millis(300)).await {
        if let MediaEvent::Dtmf { digit, inband } = e {
            got.push((digit, inband));
        }
    }
    assert_eq!(got, [('5', false)]);
    s.close().await;
}

#[tokio::test]
async fn amd_in_a_session_reports_machine_and_beep() {
    let (ph, addr) = phone().await;
    let mut s = RtpSession::bind(SessionConfig::pcmu(LO), None)
        .await
        .unwrap();
    s.set_remote(addr);
    s.start_amd(AmdConfig::default());
    let mut audio = vec![0i16; 8 * 300];
    audio.extend(speechlike(4000));
    audio.extend(vec![0i16; 8 * 300]);
    let mut beep = ToneGenerator::new(ToneSpec::beep(1400.0, 600));
    while let Some(f) = telephony::media::frame::FrameSource::next_frame(&mut beep) {
        audio.extend(f.pcm);
    }
    audio.extend(vec![0i16; 8 * 400]);
    let mut tx = RtpSender::new(9, 0, 0);
    // Paced on an absolute 20 ms schedule, as a phone would.
    let mut pace = tokio::time::interval(Duration::from_millis(20));
    for f in audio.chunks(160) {
        pace.tick().await;
        let p = tx.audio(0, Bytes::from(Codec::Pcmu.encode(f)));
        ph.send_to(&p.marshal().unwrap(), s.local_addr())
            .await
            .unwrap();
    }
    let mut verdict = None;
    let mut beep_at = None;
    while let Some(e) = next_event(&mut s, Duration::from_millis(300)).await {
        match e {
            MediaEvent::Amd(AmdEvent::Verdict { verdict: v, at, .. }) => verdict = Some((v, at)),
            MediaEvent::Amd(AmdEvent::Beep { at, .. }) => beep_at = Some(at),
            _ => {}
        }
    }
    let (v, at) = verdict.expect("verdict");
    assert_eq!(v, AmdVerdict::Machine);
    assert!(at <= Duration::from_millis(3500), "{at:?}");
    let b = beep_at.expect("beep").as_millis() as i64;
    // The beep started 4.6 s after the first frame; pick-up is when AMD started (just before),
    // and the jitter buffer adds 60 ms; allow for scheduling on a loaded machine.
    assert!((b - 4660).abs() <= 250, "beep at {b} ms");
    s.close().await;
}

#[tokio::test]
async fn hold_directions_gate_sending_receiving_and_inactivity() {
    let (ph, addr) = phone().await;
    let mut cfg = SessionConfig::negotiated(LO, 8, Some(96)).expect("PCMA");
    cfg.inactivity_timeout = Some(Duration::from_millis(200));
    let port = {
        let probe = std::net::UdpSocket::bind((LO, 0)).unwrap();
        probe.local_addr().unwrap().port()
    };
    let mut s = RtpSession::bind_on(cfg, port).await.unwrap();
    assert_eq!(s.local_addr().port(), port);
    s.set_remote(addr);
    // Inactive (both ways held): nothing is sent, nothing received, no inactivity report.
    s.set_direction(false, false);
    s.play(Box::new(ToneGenerator::new(ToneSpec {
        total_ms: Some(2000),
        ..ToneSpec::ringback()
    })));
    let mut ev = RtpSender::new(4, 0, 0);
    let pl = EventPayload {
        event: 4,
        end: true,
        volume: 10,
        duration: 800,
    };
    let p = ev.packet(96, true, 0, Bytes::copy_from_slice(&pl.to_bytes()));
    ph.send_to(&p.marshal().unwrap(), s.local_addr())
        .await
        .unwrap();
    assert!(
        collect(&ph, Duration::from_millis(400)).await.is_empty(),
        "sent while inactive"
    );
    let mut quiet = true;
    while let Some(e) = next_event(&mut s, Duration::from_millis(100)).await {
        quiet &= !matches!(e, MediaEvent::Dtmf { .. } | MediaEvent::Inactive);
    }
    assert!(quiet, "events while inactive");
    // Resumed: PCMA audio flows, a telephone-event at PT 96 is a digit, and silence from the
    // peer is reported once the timeout passes.
    s.set_direction(true, true);
    let pkts = collect(&ph, Duration::from_millis(200)).await;
    assert!(!pkts.is_empty() && pkts.iter().all(|p| p.header.payload_type == 8));
    let p = ev.packet(96, true, 960, Bytes::copy_from_slice(&pl.to_bytes()));
    ph.send_to(&p.marshal().unwrap(), s.local_addr())
        .await
        .unwrap();
    let mut got = (false, false);
    while let Some(e) = next_event(&mut s, Duration::from_millis(500)).await {
        match e {
            MediaEvent::Dtmf { digit: '4', .. } => got.0 = true,
            MediaEvent::Inactive => got.1 = true,
            _ => {}
        }
    }
    assert_eq!(got, (true, true));
    assert!(
        SessionConfig::negotiated(LO, 18, None).is_none(),
        "G.729 is not supported"
    );
    s.close().await;
}

#[tokio::test]
async fn strict_source_drops_rtp_from_other_addresses() {
    let (peer, peer_addr) = phone().await;
    let (intruder, _) = phone().await;
    let mut cfg = SessionConfig::pcmu(LO);
    cfg.strict_source = true;
    let mut s = RtpSession::bind(cfg, None).await.unwrap();
    s.set_remote(peer_addr);
    let mut good = RtpSender::new(1, 0, 0);
    let mut bad = RtpSender::new(2, 0, 0);
    let pl = EventPayload {
        event: 1,
        end: true,
        volume: 10,
        duration: 800,
    };
    let e = bad.packet(101, true, 0, Bytes::copy_from_slice(&pl.to_bytes()));
    intruder
        .send_to(&e.marshal().unwrap(), s.local_addr())
        .await
        .unwrap();
    for _ in 0..3 {
        let p = good.audio(0, Bytes::from(vec![0xFFu8; 160]));
        peer.send_to(&p.marshal().unwrap(), s.local_addr())
            .await
            .unwrap();
        let p = bad.audio(0, Bytes::from(vec![0x00u8; 160]));
        intruder
            .send_to(&p.marshal().unwrap(), s.local_addr())
            .await
            .unwrap();
    }
    let mut digits = 0;
    while let Some(e) = next_event(&mut s, Duration::from_millis(200)).await {
        digits += matches!(e, MediaEvent::Dtmf { .. }) as u32;
    }
    assert_eq!(digits, 0, "intruder's digit accepted");
    let st = s.stats().await;
    assert_eq!((st.foreign_dropped, st.receiver.audio), (4, 3));
    assert_eq!(s.stats().await.receiver.rejected_sequence, 0);
    s.close().await;
}

#[tokio::test]
async fn long_recording_streams_to_a_wav_file() {
    let dir = media_support::Scratch::new("record-file");
    let path = dir.path("call.wav");
    let (ph, addr) = phone().await;
    let s = RtpSession::bind(SessionConfig::pcmu(LO), None)
        .await
        .unwrap();
    s.set_remote(addr);
    s.record_to_file(path.clone(), RecordingLayout::Stereo, WavEncoding::Pcm16)
        .await
        .unwrap();
    // 2.6 s of a constant level from the phone while we play a tone back.
    s.play(Box::new(ToneGenerator::new(ToneSpec {
        total_ms: Some(2600),
        ..ToneSpec::beep(1000.0, 2600)
    })));
    let mut tx = RtpSender::new(8, 0, 0);
    let mut pace = tokio::time::interval(Duration::from_millis(20));
    for _ in 0..130 {
        pace.tick().await;
        let p = tx.audio(0, Bytes::from(vec![0xA0u8; 160]));
        ph.send_to(&p.marshal().unwrap(), s.local_addr())
            .await
            .unwrap();
    }
    // Written as the call goes: the file already holds audio before the end.
    let partial = std::fs::metadata(&path).unwrap().len();
    assert!(
        partial > 44 + 8000 * 4,
        "only {partial} bytes written so far"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    let bytes = s.finish_recording_file().await.unwrap();
    let wav_bytes = std::fs::read(&path).unwrap();
    assert_eq!(wav_bytes.len() as u64, 44 + bytes);
    assert_eq!(u16::from_le_bytes([wav_bytes[22], wav_bytes[23]]), 2);
    // Read the stereo PCM by hand (the WAV reader takes mono only).
    let frames: Vec<(i16, i16)> = wav_bytes[44..]
        .chunks_exact(4)
        .map(|c| {
            (
                i16::from_le_bytes([c[0], c[1]]),
                i16::from_le_bytes([c[2], c[3]]),
            )
        })
        .collect();
    let secs = frames.len() as f64 / 8000.0;
    assert!((2.5..3.2).contains(&secs), "{secs} s recorded");
    let level = telephony::media::g711::ulaw_to_linear(0xA0);
    let left_ok = frames.iter().filter(|(l, _)| *l == level).count();
    assert!(
        left_ok as f64 > 0.9 * 2.6 * 8000.0,
        "inbound samples {left_ok}"
    );
    let right: Vec<i16> = frames.iter().map(|(_, r)| *r).collect();
    let loud = right.iter().filter(|r| r.abs() > 3000).count();
    assert!(
        loud as f64 > 0.4 * 2.6 * 8000.0,
        "outbound tone samples {loud}"
    );
    s.close().await;
}

#[tokio::test]
async fn sessions_lease_even_ports_from_the_range_and_give_them_back() {
    let pool = SharedPorts::new(PortAllocator::new(31000, 31005).unwrap());
    let a = RtpSession::bind(SessionConfig::pcmu(LO), Some(&pool))
        .await
        .unwrap();
    let b = RtpSession::bind(SessionConfig::pcmu(LO), Some(&pool))
        .await
        .unwrap();
    let c = RtpSession::bind(SessionConfig::pcmu(LO), Some(&pool))
        .await
        .unwrap();
    let ports: Vec<u16> = [&a, &b, &c].iter().map(|s| s.local_addr().port()).collect();
    assert!(
        ports
            .iter()
            .all(|p| p % 2 == 0 && (31000..=31005).contains(p)),
        "{ports:?}"
    );
    assert!(
        RtpSession::bind(SessionConfig::pcmu(LO), Some(&pool))
            .await
            .is_err()
    );
    a.close().await;
    assert_eq!(pool.in_use(), 2);
    let d = RtpSession::bind(SessionConfig::pcmu(LO), Some(&pool))
        .await
        .unwrap();
    assert_eq!(d.local_addr().port(), ports[0]);
    for s in [b, c, d] {
        s.close().await;
    }
    assert_eq!(pool.in_use(), 0);
}
