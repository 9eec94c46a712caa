//! The browser softphone's media against a real browser: Debian's chromium, driven by
//! playwright-core (`tests/console/webrtc.mjs`), opens a page this test serves on 127.0.0.1,
//! captures a 1 kHz tone file as its microphone and negotiates WebRTC audio with a
//! [`WebRtcEndpoint`] on loopback. Audio is proven both ways by content:
//! - the browser's 1 kHz is detected on the Rust side (Goertzel), and
//! - a 700 Hz tone from the Rust side is detected in the page (WebAudio `AnalyserNode`), with the
//!   browser's own 1 kHz far below it (no loop-back).
//!
//! `browser_and_a_rust_leg_hear_each_other`: the 700 Hz is played by the leg itself.
//! `a_sipp_caller_and_the_browser_talk_through_the_call`: a sipp caller streams 700 Hz over a
//! real SIP call, the browser leg is `attach`ed to that call, and the browser's 1 kHz is detected
//! in the RTP the call sends to the caller's media address. Both end with the page closing and the
//! leg reporting `Ended { Disconnected }` with its final counters.
//!
//! Needs chromium, node, sox, sipp and `tests/console/node_modules` (`npm ci` there):
//! skipped without them, failing under CI=true.

mod control_support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use control_support::{
    End, Uac, free_port, parse_rtp, scratch, spawn_sipp, start, wait_sipp, write_raw,
};
use telephony::control::Event;
use telephony::media::bridge::PeerId;
use telephony::media::frame::{Frame, FrameSource};
use telephony::media::g711::Codec;
use telephony::media::goertzel::{Goertzel, energy, rms};
use telephony::webrtc::{self, EndReason, WebRtcConfig, WebRtcEndpoint, WebRtcEvent, WebRtcLeg};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{mpsc, oneshot, watch};

const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const BROWSER_HZ: f64 = 1000.0;
const RUST_HZ: f64 = 700.0;

fn console_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/console")
}

/// Every tool the browser tests need (SKIP outside CI, fail under CI=true).
fn have_browser_tools() -> bool {
    let tools = foundation::testing::require_tool("chromium", "chromium")
        & foundation::testing::require_tool("node", "nodejs")
        & foundation::testing::require_tool("sox", "sox");
    if !tools {
        return false;
    }
    if !console_dir().join("node_modules/playwright-core").exists() {
        let msg =
            "tests/console/node_modules/playwright-core is missing (run `npm ci` in tests/console)";
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{msg}");
        }
        eprintln!("SKIP: {msg}");
        return false;
    }
    true
}

/// An endless sine at 8 kHz, 20 ms at a time.
struct Sine {
    hz: f64,
    n: u64,
}

impl FrameSource for Sine {
    fn next_frame(&mut self) -> Option<Frame> {
        let pcm = (0..160)
            .map(|i| {
                let t = (self.n + i) as f64 / 8000.0;
                ((2.0 * std::f64::consts::PI * self.hz * t).sin() * 10_000.0) as i16
            })
            .collect();
        self.n += 160;
        Some(Frame::from_pcm(pcm))
    }
}

/// Counts 20 ms blocks dominated by `hz`; flips `heard` after 10 of them (200 ms).
struct Detector {
    target: Goertzel,
    other: Goertzel,
    hits: u32,
    other_hits: u32,
    blocks: u32,
    heard: watch::Sender<bool>,
}

impl Detector {
    fn new(hz: f64, other_hz: f64, heard: watch::Sender<bool>) -> Self {
        Detector {
            target: Goertzel::new(hz, 8000.0),
            other: Goertzel::new(other_hz, 8000.0),
            hits: 0,
            other_hits: 0,
            blocks: 0,
            heard,
        }
    }

    fn feed(&mut self, pcm: &[i16]) {
        self.blocks += 1;
        if rms(pcm) < 300.0 {
            return;
        }
        let e = energy(pcm);
        if self.target.relative_power(pcm, e) > 0.5 {
            self.hits += 1;
        }
        if self.other.relative_power(pcm, e) > 0.5 {
            self.other_hits += 1;
        }
        if self.hits >= 10 {
            let _ = self.heard.send(true);
        }
    }
}

/// What the page asks for.
enum Request {
    Offer(String, oneshot::Sender<Result<String, String>>),
}

/// Serves the page, `/offer` (handed to the test) and `/hangup` (answered once `heard` is true,
/// or after 20 s) on 127.0.0.1.
async fn page_server(requests: mpsc::Sender<Request>, heard: watch::Receiver<bool>) -> SocketAddr {
    let page = std::fs::read_to_string(console_dir().join("webrtc.html")).expect("the test page");
    let listener = TcpListener::bind((LO, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                return;
            };
            let (page, requests, mut heard) = (page.clone(), requests.clone(), heard.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let (head, body_start) = loop {
                    let n = conn.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break (String::from_utf8_lossy(&buf[..p]).to_string(), p + 4);
                    }
                };
                let len: usize = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse().unwrap_or(0))
                    })
                    .unwrap_or(0);
                while buf.len() < body_start + len {
                    let n = conn.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                let body = String::from_utf8_lossy(&buf[body_start..body_start + len]).to_string();
                let line = head.lines().next().unwrap_or("").to_string();
                let (status, ctype, out) = if line.starts_with("GET / ") {
                    ("200 OK", "text/html", page)
                } else if line.starts_with("POST /offer ") {
                    let (tx, rx) = oneshot::channel();
                    let _ = requests.send(Request::Offer(body, tx)).await;
                    match rx.await {
                        Ok(Ok(answer)) => ("200 OK", "application/sdp", answer),
                        Ok(Err(e)) => ("400 Bad Request", "text/plain", e),
                        Err(_) => (
                            "500 Internal Server Error",
                            "text/plain",
                            "no answer".into(),
                        ),
                    }
                } else if line.starts_with("GET /hangup ") {
                    let ok = tokio::time::timeout(Duration::from_secs(20), heard.wait_for(|h| *h))
                        .await
                        .is_ok();
                    (
                        "200 OK",
                        "text/plain",
                        if ok { "heard" } else { "not heard" }.to_string(),
                    )
                } else {
                    ("404 Not Found", "text/plain", "not found".into())
                };
                let resp = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\nCache-Control: no-store\r\n\r\n{out}",
                    out.len()
                );
                let _ = conn.write_all(resp.as_bytes()).await;
                let _ = conn.shutdown().await;
            });
        }
    });
    addr
}

/// What the page reported.
struct PageResult {
    ok: bool,
    json: String,
}

/// Runs `webrtc.mjs` against the page: the browser captures `wav` and must hear RUST_HZ.
async fn run_browser(page: SocketAddr, wav: &Path) -> PageResult {
    let out = tokio::time::timeout(
        Duration::from_secs(90),
        tokio::process::Command::new("node")
            .arg(console_dir().join("webrtc.mjs"))
            .current_dir(console_dir())
            .env("PAGE_URL", format!("http://{page}/"))
            .env("FAKE_AUDIO", wav)
            .env("EXPECT_HZ", RUST_HZ.to_string())
            .env("OTHER_HZ", BROWSER_HZ.to_string())
            .env("TIMEOUT_MS", "15000")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the browser run ends within 90 s")
    .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json = stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .unwrap_or_else(|| {
            panic!(
                "no RESULT line: {stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
        .to_string();
    PageResult {
        ok: out.status.success(),
        json,
    }
}

/// The browser's microphone: 30 s of 1 kHz (chromium loops it).
fn browser_tone(dir: &Path) -> PathBuf {
    let wav = dir.join("mic-1k.wav");
    let st = std::process::Command::new("sox")
        .args(["-n", "-r", "48000", "-c", "1", "-b", "16"])
        .arg(&wav)
        .args(["synth", "30", "sine", &BROWSER_HZ.to_string(), "vol", "0.5"])
        .status()
        .expect("sox runs");
    assert!(st.success());
    wav
}

/// Waits for the leg's `Ended` (the browser closed the page), skipping other events.
async fn wait_ended(
    leg: &mut WebRtcLeg,
    saw_connected: &mut bool,
) -> (EndReason, webrtc::WebRtcStats) {
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(60), leg.next_event())
            .await
            .expect("the leg ends within 60 s of the page closing")
            .expect("Ended comes before the stream closes");
        match ev {
            WebRtcEvent::Connected => *saw_connected = true,
            WebRtcEvent::Ended { reason, stats } => return (reason, stats),
            WebRtcEvent::PlaybackFinished => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_and_a_rust_leg_hear_each_other() {
    if !have_browser_tools() {
        return;
    }
    let dir = scratch("webrtc-leg");
    let wav = browser_tone(&dir);
    let endpoint = WebRtcEndpoint::new(WebRtcConfig::on(LO), None).unwrap();
    let (heard_tx, heard_rx) = watch::channel(false);
    let (req_tx, mut req_rx) = mpsc::channel(4);
    let page = page_server(req_tx, heard_rx).await;

    // The appliance side: answer the offer, play 700 Hz, listen for 1 kHz.
    let (leg_tx, leg_rx) = oneshot::channel();
    let (detector_tx, detector_rx) = oneshot::channel();
    tokio::spawn(async move {
        let Some(Request::Offer(sdp, reply)) = req_rx.recv().await else {
            return;
        };
        match endpoint.accept_offer(&sdp).await {
            Ok((answer, leg)) => {
                let (tx, mut frames) = mpsc::channel::<(PeerId, Frame)>(64);
                leg.forward_to(Some(tx));
                leg.play(Box::new(Sine { hz: RUST_HZ, n: 0 }));
                let id = leg.id();
                let _ = leg_tx.send(leg);
                let _ = reply.send(Ok(answer));
                let mut det = Detector::new(BROWSER_HZ, RUST_HZ, heard_tx);
                while let Some((from, frame)) = frames.recv().await {
                    assert_eq!(from, id);
                    det.feed(&frame.pcm);
                }
                let _ = detector_tx.send((det.hits, det.other_hits, det.blocks));
            }
            Err(e) => {
                let _ = reply.send(Err(e.to_string()));
            }
        }
    });

    let result = run_browser(page, &wav).await;
    eprintln!("page: {}", result.json);
    let mut leg = leg_rx.await.expect("the page's offer was accepted");
    assert_eq!(
        leg.codec(),
        Codec::Pcmu,
        "PCMU is the first law the browser offers"
    );
    assert!(
        result.ok,
        "the page did not hear {RUST_HZ} Hz: {}",
        result.json
    );
    assert!(
        result.json.contains("\"codec\":\"audio/PCMU\""),
        "{}",
        result.json
    );
    assert!(
        result.json.contains("\"rustHeard\":true"),
        "{}",
        result.json
    );

    let mut connected = false;
    let closed = std::time::Instant::now();
    let (reason, stats) = wait_ended(&mut leg, &mut connected).await;
    eprintln!(
        "leg Ended {:?} after the browser process exited (0 = before)",
        closed.elapsed()
    );
    assert!(connected);
    assert_eq!(reason, EndReason::Disconnected);
    eprintln!("leg stats: {stats:?}");
    assert!(stats.frames_in >= 10 && stats.frames_out >= 10, "{stats:?}");
    drop(leg); // closes the forward channel: the detector reports
    let (hits, other_hits, blocks) = detector_rx.await.unwrap();
    eprintln!(
        "rust side: {hits} of {blocks} blocks at {BROWSER_HZ} Hz, {other_hits} at {RUST_HZ} Hz"
    );
    assert!(
        hits >= 10 && other_hits == 0,
        "{hits} / {other_hits} of {blocks}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn uac_args(sut_port: u16, scenario: &str, rtpport: u16) -> Vec<String> {
    let (p, mp) = (free_port(), free_port());
    [
        format!("127.0.0.1:{sut_port}"),
        "-sf".into(),
        scenario.into(),
        "-s".into(),
        "agent".into(),
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sipp_caller_and_the_browser_talk_through_the_call() {
    if !have_browser_tools() || !foundation::testing::require_tool("sipp", "sip-tester") {
        return;
    }
    let dir = scratch("webrtc-sip");
    let wav = browser_tone(&dir);
    let mut sut = start(15800, Some(Duration::from_secs(20))).await;
    let mut incoming = sut.incoming.take().unwrap();

    // The caller's media address: what the call sends to the caller, decoded and listened to.
    let caller_media = UdpSocket::bind((LO, 0)).await.unwrap();
    let caller_port = caller_media.local_addr().unwrap().port();
    let (heard_tx, heard_rx) = watch::channel(false);
    let (stop_tx, mut stop_rx) = oneshot::channel::<()>();
    let caller_ear = tokio::spawn(async move {
        let mut det = Detector::new(BROWSER_HZ, RUST_HZ, heard_tx);
        let mut buf = vec![0u8; 2048];
        loop {
            tokio::select! {
                _ = &mut stop_rx => break,
                r = caller_media.recv_from(&mut buf) => {
                    if let Ok((n, from)) = r
                        && let Some(p) = parse_rtp(&buf[..n], from)
                        && p.pt == 0
                    {
                        det.feed(&Codec::Pcmu.decode(&p.payload));
                    }
                }
            }
        }
        (det.hits, det.other_hits, det.blocks)
    });

    // A sipp caller streaming 700 Hz (µ-law, looped) from its own media port.
    let tone: Vec<i16> = {
        let mut s = Sine { hz: RUST_HZ, n: 0 };
        (0..100).flat_map(|_| s.next_frame().unwrap().pcm).collect()
    };
    let tone_file = dir.join("caller-700.ulaw");
    write_raw(&tone_file, Codec::Pcmu, &tone);
    let uac = Uac {
        codecs: &[(0, "PCMU")],
        stream: Some((&tone_file, 0)),
        play_dtmf: None,
        info_digit: None,
        end: End::WaitBye(35_000),
    };
    std::fs::write(dir.join("uac.xml"), uac.xml()).unwrap();
    let sipp = spawn_sipp(
        &dir,
        &uac_args(sut.sip.udp_addr.port(), "uac.xml", caller_port),
    );
    let mut call = tokio::time::timeout(Duration::from_secs(10), incoming.next())
        .await
        .unwrap()
        .unwrap();
    loop {
        match tokio::time::timeout(Duration::from_secs(10), call.next_event())
            .await
            .unwrap()
            .unwrap()
        {
            Event::Answered { .. } => break,
            ev @ Event::Hangup { .. } => panic!("{ev:?}"),
            _ => {}
        }
    }

    // The agent's browser: its offer is answered and the leg attached to the call.
    let endpoint = WebRtcEndpoint::new(WebRtcConfig::on(LO), None).unwrap();
    let (req_tx, mut req_rx) = mpsc::channel(4);
    let page = page_server(req_tx, heard_rx).await;
    let control = call.control().clone();
    let (leg_tx, leg_rx) = oneshot::channel();
    tokio::spawn(async move {
        let Some(Request::Offer(sdp, reply)) = req_rx.recv().await else {
            return;
        };
        match endpoint.accept_offer(&sdp).await {
            Ok((answer, leg)) => {
                webrtc::attach(&control, &leg)
                    .await
                    .expect("attached to the call");
                let _ = leg_tx.send(leg);
                let _ = reply.send(Ok(answer));
            }
            Err(e) => {
                let _ = reply.send(Err(e.to_string()));
            }
        }
    });

    let result = run_browser(page, &wav).await;
    eprintln!("page: {}", result.json);
    let mut leg = leg_rx.await.expect("the page's offer was accepted");
    assert!(
        result.ok,
        "the page did not hear the caller's {RUST_HZ} Hz: {}",
        result.json
    );
    assert!(
        result.json.contains("\"rustHeard\":true"),
        "{}",
        result.json
    );
    let mut connected = false;
    let closed = std::time::Instant::now();
    let (reason, stats) = wait_ended(&mut leg, &mut connected).await;
    eprintln!(
        "leg Ended {:?} after the browser process exited (0 = before)",
        closed.elapsed()
    );
    assert!(connected);
    assert_eq!(reason, EndReason::Disconnected);
    eprintln!("leg stats: {stats:?}");
    assert!(stats.frames_in >= 10 && stats.frames_out >= 10, "{stats:?}");

    call.control().hangup().await.expect("hang up");
    let out = wait_sipp(&dir, sipp).await;
    assert_eq!(out.rc, 0, "sipp: {}\n{}", out.stdout, out.errors);
    let _ = stop_tx.send(());
    let (hits, other_hits, blocks) = caller_ear.await.unwrap();
    eprintln!(
        "caller side: {hits} of {blocks} blocks at {BROWSER_HZ} Hz, {other_hits} at {RUST_HZ} Hz"
    );
    assert!(hits >= 10, "{hits} of {blocks}");
    assert_eq!(other_hits, 0, "the caller must not hear its own tone back");
    let _ = std::fs::remove_dir_all(&dir);
}
