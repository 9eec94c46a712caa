//! Browser legs against another real WebRTC stack on loopback: str0m as the "browser" (its own
//! ICE agent, DTLS handshake and SRTP; no browser needed, so these run everywhere):
//! - an offer with only PCMA is answered with PCMA, and audio flows both ways (1 kHz from the
//!   client is detected by Goertzel on the leg's output; 700 Hz played by the leg reaches the
//!   client), and `close` ends the leg with `Ended { Closed }`;
//! - an offer without G.711 (Opus only) is refused with `NoG711`;
//! - a leg whose peer never connects ends with `ConnectTimeout`;
//! - [`webrtc::connect`] joins a leg and an `RtpSession` (whose remote is a plain UDP socket
//!   standing for a SIP phone): the phone's RTP reaches the client and the client's audio reaches
//!   the phone.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::change::SdpAnswer;
use str0m::media::{Direction, Frequency, MediaKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc, RtcConfig};
use telephony::media::frame::{Frame, FrameSource};
use telephony::media::g711::Codec;
use telephony::media::goertzel::{Goertzel, energy, rms};
use telephony::media::session::{RtpSession, SessionConfig};
use telephony::webrtc::{self, EndReason, WebRtcConfig, WebRtcEndpoint, WebRtcError, WebRtcEvent};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};

const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

struct Sine {
    hz: f64,
    n: u64,
}

impl Sine {
    fn pcm(&mut self) -> Vec<i16> {
        let v = (0..160)
            .map(|i| {
                let t = (self.n + i) as f64 / 8000.0;
                ((2.0 * std::f64::consts::PI * self.hz * t).sin() * 10_000.0) as i16
            })
            .collect();
        self.n += 160;
        v
    }
}

impl FrameSource for Sine {
    fn next_frame(&mut self) -> Option<Frame> {
        Some(Frame::from_pcm(self.pcm()))
    }
}

fn dominated_by(hz: f64, pcm: &[i16]) -> bool {
    rms(pcm) > 300.0 && Goertzel::new(hz, 8000.0).relative_power(pcm, energy(pcm)) > 0.5
}

/// A str0m client with one sendrecv audio section offering `codecs`.
struct Client {
    rtc: Rtc,
    socket: UdpSocket,
    mid: Mid,
}

impl Client {
    async fn offer(pcma_only: bool) -> (Client, String, str0m::change::SdpPendingOffer) {
        let mut cfg = RtcConfig::new()
            .set_crypto_provider(Arc::new(str0m::crypto::from_feature_flags()))
            .clear_codecs();
        cfg = if pcma_only {
            cfg.enable_pcma(true, false)
        } else {
            cfg.enable_opus(true, false)
        };
        let mut rtc = cfg.build(Instant::now());
        let socket = UdpSocket::bind((LO, 0)).await.unwrap();
        rtc.add_local_candidate(Candidate::host(socket.local_addr().unwrap(), "udp").unwrap());
        let mut change = rtc.sdp_api();
        let mid = change.add_media(MediaKind::Audio, Direction::SendRecv, None, None, None);
        let (offer, pending) = change.apply().unwrap();
        (Client { rtc, socket, mid }, offer.to_sdp_string(), pending)
    }

    /// Drives the client: sends `tone` frames every 20 ms once connected, reports the decoded
    /// audio it receives on `heard`, until `stop` flips.
    async fn run(
        mut self,
        tone: f64,
        heard: mpsc::UnboundedSender<Vec<i16>>,
        mut stop: watch::Receiver<bool>,
    ) {
        let local = self.socket.local_addr().unwrap();
        let mut buf = vec![0u8; 2000];
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        let mut sine = Sine { hz: tone, n: 0 };
        let mut connected = false;
        let start = Instant::now();
        loop {
            let deadline = loop {
                match self.rtc.poll_output().unwrap() {
                    Output::Timeout(t) => break t,
                    Output::Transmit(t) => {
                        let _ = self.socket.send_to(&t.contents, t.destination).await;
                    }
                    Output::Event(Event::Connected) => connected = true,
                    Output::Event(Event::MediaData(d)) => {
                        let codec = match d.params.spec().codec {
                            str0m::format::Codec::PCMA => Codec::Pcma,
                            _ => Codec::Pcmu,
                        };
                        let _ = heard.send(codec.decode(&d.data));
                    }
                    Output::Event(_) => {}
                }
            };
            tokio::select! {
                _ = stop.changed() => return,
                r = self.socket.recv_from(&mut buf) => {
                    let (n, source) = r.unwrap();
                    let input = Input::Receive(Instant::now(), Receive {
                        proto: Protocol::Udp, source, destination: local,
                        contents: buf[..n].try_into().unwrap(),
                    });
                    self.rtc.handle_input(input).unwrap();
                }
                _ = tokio::time::sleep_until(tokio::time::Instant::from_std(deadline)) => {
                    self.rtc.handle_input(Input::Timeout(Instant::now())).unwrap();
                }
                _ = tick.tick() => {
                    if connected && let Some(w) = self.rtc.writer(self.mid) {
                        let pt = w.payload_params().next().unwrap().pt();
                        let ts = (start.elapsed().as_millis() as u64 / 20) * 160;
                        let _ = w.write(pt, Instant::now(), MediaTime::new(ts, Frequency::EIGHT_KHZ), Codec::Pcma.encode(&sine.pcm()));
                    }
                    self.rtc.handle_input(Input::Timeout(Instant::now())).unwrap();
                }
            }
        }
    }
}

async fn wait_for<T>(
    rx: &mut mpsc::UnboundedReceiver<T>,
    mut ok: impl FnMut(&T) -> bool,
    what: &str,
) {
    let mut hits = 0;
    tokio::time::timeout(Duration::from_secs(15), async {
        while let Some(v) = rx.recv().await {
            if ok(&v) {
                hits += 1;
                if hits >= 10 {
                    return;
                }
            }
        }
        panic!("stream ended before {what}");
    })
    .await
    .unwrap_or_else(|_| panic!("no {what} within 15 s"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pcma_offer_audio_both_ways_then_close() {
    let ep = WebRtcEndpoint::new(WebRtcConfig::on(LO), None).unwrap();
    let (client, offer, pending) = Client::offer(true).await;
    let t = Instant::now();
    let (answer, mut leg) = ep.accept_offer(&offer).await.unwrap();
    eprintln!(
        "accept_offer took {:?} (socket, DTLS certificate, answer)",
        t.elapsed()
    );
    assert_eq!(leg.codec(), Codec::Pcma);
    assert!(
        answer.contains("PCMA/8000") && !answer.contains("opus"),
        "{answer}"
    );
    let mut client = client;
    client
        .rtc
        .sdp_api()
        .accept_answer(pending, SdpAnswer::from_sdp_string(&answer).unwrap())
        .unwrap();

    let (frames_tx, mut frames_rx) = mpsc::channel(64);
    leg.forward_to(Some(frames_tx));
    leg.play(Box::new(Sine { hz: 700.0, n: 0 }));
    let (heard_tx, mut heard_rx) = mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = watch::channel(false);
    let t0 = Instant::now();
    let task = tokio::spawn(client.run(1000.0, heard_tx, stop_rx));

    assert_eq!(
        tokio::time::timeout(Duration::from_secs(10), leg.next_event())
            .await
            .unwrap(),
        Some(WebRtcEvent::Connected)
    );
    eprintln!("connected in {:?}", t0.elapsed());
    wait_for(
        &mut heard_rx,
        |pcm| dominated_by(700.0, pcm),
        "700 Hz at the client",
    )
    .await;
    let (got_tx, mut got_rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some((_, f)) = frames_rx.recv().await {
            let _ = got_tx.send(f);
        }
    });
    wait_for(
        &mut got_rx,
        |f: &Frame| {
            f.encoded.as_ref().is_some_and(|(c, _)| *c == Codec::Pcma)
                && dominated_by(1000.0, &f.pcm)
        },
        "1 kHz from the client",
    )
    .await;
    eprintln!("audio both ways within {:?}", t0.elapsed());

    let stats = leg.close().await;
    assert!(stats.frames_in >= 10 && stats.frames_out >= 10, "{stats:?}");
    let _ = stop_tx.send(true);
    task.await.unwrap();
}

#[tokio::test]
async fn an_offer_without_g711_is_refused() {
    let ep = WebRtcEndpoint::new(WebRtcConfig::on(LO), None).unwrap();
    let (_client, offer, _) = Client::offer(false).await;
    match ep.accept_offer(&offer).await {
        Err(WebRtcError::NoG711) => {}
        other => panic!("expected NoG711, got {:?}", other.map(|(a, _)| a)),
    }
}

#[tokio::test]
async fn a_peer_that_never_connects_times_out() {
    let mut config = WebRtcConfig::on(LO);
    config.connect_timeout = Duration::from_millis(500);
    let ep = WebRtcEndpoint::new(config, None).unwrap();
    let (_client, offer, _) = Client::offer(true).await;
    let (_, mut leg) = ep.accept_offer(&offer).await.unwrap();
    match tokio::time::timeout(Duration::from_secs(10), leg.next_event())
        .await
        .unwrap()
    {
        Some(WebRtcEvent::Ended {
            reason: EndReason::ConnectTimeout,
            stats,
        }) => assert_eq!(stats.frames_in, 0),
        other => panic!("{other:?}"),
    }
    assert_eq!(leg.next_event().await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_joins_a_leg_and_an_rtp_session() {
    let ep = WebRtcEndpoint::new(WebRtcConfig::on(LO), None).unwrap();
    let (mut client, offer, pending) = Client::offer(true).await;
    let (answer, mut leg) = ep.accept_offer(&offer).await.unwrap();
    client
        .rtc
        .sdp_api()
        .accept_answer(pending, SdpAnswer::from_sdp_string(&answer).unwrap())
        .unwrap();

    // The SIP phone: a UDP socket speaking PCMU RTP with the session.
    let phone = UdpSocket::bind((LO, 0)).await.unwrap();
    let session = RtpSession::bind(SessionConfig::pcmu(LO), None)
        .await
        .unwrap();
    session.set_remote(phone.local_addr().unwrap());
    webrtc::connect(&session, &leg);

    let (heard_tx, mut heard_rx) = mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = watch::channel(false);
    let task = tokio::spawn(client.run(1000.0, heard_tx, stop_rx));
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(10), leg.next_event())
            .await
            .unwrap(),
        Some(WebRtcEvent::Connected)
    );

    // The phone talks (700 Hz, PCMU) and listens.
    let to: SocketAddr = session.local_addr();
    let (phone_heard_tx, mut phone_heard_rx) = mpsc::unbounded_channel();
    let phone_task = tokio::spawn(async move {
        let mut sine = Sine { hz: 700.0, n: 0 };
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        let mut buf = vec![0u8; 2048];
        let (mut seq, mut ts) = (0u16, 0u32);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    let mut p = vec![0x80u8, 0, 0, 0, 0, 0, 0, 0, 0x12, 0x34, 0x56, 0x78];
                    p[2..4].copy_from_slice(&seq.to_be_bytes());
                    p[4..8].copy_from_slice(&ts.to_be_bytes());
                    p.extend(Codec::Pcmu.encode(&sine.pcm()));
                    let _ = phone.send_to(&p, to).await;
                    seq = seq.wrapping_add(1);
                    ts = ts.wrapping_add(160);
                }
                r = phone.recv_from(&mut buf) => {
                    let Ok((n, _)) = r else { continue };
                    if n > 12
                        && buf[1] & 0x7f == 0
                        && phone_heard_tx.send(Codec::Pcmu.decode(&buf[12..n])).is_err()
                    {
                        return;
                    }
                }
            }
        }
    });
    wait_for(
        &mut heard_rx,
        |pcm| dominated_by(700.0, pcm),
        "the phone's 700 Hz at the browser",
    )
    .await;
    wait_for(
        &mut phone_heard_rx,
        |pcm| dominated_by(1000.0, pcm),
        "the browser's 1 kHz at the phone",
    )
    .await;

    webrtc::disconnect(&session, &leg);
    drop(phone_heard_rx);
    phone_task.abort();
    let stats = leg.close().await;
    assert!(stats.frames_in >= 10 && stats.frames_out >= 10, "{stats:?}");
    session.close().await;
    let _ = stop_tx.send(true);
    task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_vanishes_ends_the_leg_as_disconnected() {
    let ep = WebRtcEndpoint::new(WebRtcConfig::on(LO), None).unwrap();
    let (mut client, offer, pending) = Client::offer(true).await;
    let (answer, mut leg) = ep.accept_offer(&offer).await.unwrap();
    client
        .rtc
        .sdp_api()
        .accept_answer(pending, SdpAnswer::from_sdp_string(&answer).unwrap())
        .unwrap();
    let (heard_tx, mut heard_rx) = mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = watch::channel(false);
    let task = tokio::spawn(client.run(1000.0, heard_tx, stop_rx));
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(10), leg.next_event())
            .await
            .unwrap(),
        Some(WebRtcEvent::Connected)
    );
    leg.play(Box::new(Sine { hz: 700.0, n: 0 }));
    wait_for(
        &mut heard_rx,
        |pcm| dominated_by(700.0, pcm),
        "700 Hz at the client",
    )
    .await;
    // The peer goes silent without a word (tab killed, network gone): ICE consent runs out.
    let _ = stop_tx.send(true);
    task.await.unwrap();
    let gone = Instant::now();
    match tokio::time::timeout(Duration::from_secs(60), leg.next_event())
        .await
        .unwrap()
    {
        Some(WebRtcEvent::Ended { reason, stats }) => {
            eprintln!(
                "vanished peer noticed after {:?}: {reason:?}",
                gone.elapsed()
            );
            assert_eq!(reason, EndReason::Disconnected);
            assert!(stats.frames_out >= 10, "{stats:?}");
        }
        other => panic!("{other:?}"),
    }
}
