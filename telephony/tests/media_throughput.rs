//! Throughput figures (ignored by default; run in release):
//!
//! ```text
//! cargo test --release -p telephony --test media_throughput -- --ignored --nocapture
//! ```
//!
//! 1. CPU cost of one 20 ms frame through the sans-IO path (send: encode + packetise + marshal;
//!    receive: parse + RFC 3550 A.1 + jitter buffer + decode), hence streams per core.
//! 2. End to end: N `RtpSession`s on one single-threaded runtime (one core), in bridged pairs:
//!    A plays a prompt to a sipp `-rtp_echo`, relays the echo to B, B sends it to another echo;
//!    every hop counted, plus kernel drops and the CPU time the runtime used.

mod media_support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use media_support::{Kill, free_udp_port};
use telephony::media::frame::Frame;
use telephony::media::g711::Codec;
use telephony::media::jitter::{JitterBuffer, Playout};
use telephony::media::prompt::Prompt;
use telephony::media::receiver::{Received, ReceiverConfig, RtpReceiver};
use telephony::media::sender::RtpSender;
use telephony::media::session::{RtpSession, SessionConfig};
use webrtc_util::marshal::Marshal;

const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn thread_cpu() -> Duration {
    // utime + stime of this thread, in clock ticks (100 Hz on Linux).
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = f.get(11).and_then(|x| x.parse().ok()).unwrap_or(0)
        + f.get(12).and_then(|x| x.parse().ok()).unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

#[test]
#[ignore]
fn sans_io_frame_cost() {
    let pcm: Vec<i16> = (0..160)
        .map(|i| ((i as f64 * 0.2).sin() * 8000.0) as i16)
        .collect();
    let mut tx = RtpSender::new(1, 0, 0);
    let mut rx = RtpReceiver::new(ReceiverConfig::default());
    let mut jb: JitterBuffer<Frame> = JitterBuffer::new(3, 16);
    let n = 200_000u32;
    let now = Instant::now();
    let start = Instant::now();
    let mut decoded = 0usize;
    for _ in 0..n {
        let payload = Codec::Pcmu.encode(&pcm);
        let wire = tx.audio(0, payload.into()).marshal().unwrap();
        for r in rx.on_datagram(&wire, now) {
            if let Received::Audio(a) = r {
                jb.push(a.seq, a.timestamp, Frame::from_encoded(a.codec, a.payload));
            }
        }
        if let Playout::Frame(f) = jb.pop() {
            decoded += f.item.pcm.len();
        }
    }
    let per_frame = start.elapsed() / n;
    assert!(decoded > 0);
    let streams = Duration::from_millis(20).as_nanos() / per_frame.as_nanos().max(1);
    println!(
        "sans-IO send+receive of one 20 ms G.711 frame: {per_frame:?} => {streams} full-duplex streams per core (CPU only, no syscalls)"
    );
}

/// Resident set size of this process.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

/// `RcvbufErrors` from /proc/net/snmp (datagrams the kernel dropped because a socket was full).
fn udp_receive_buffer_errors() -> u64 {
    let snmp = std::fs::read_to_string("/proc/net/snmp").unwrap_or_default();
    let udp: Vec<&str> = snmp.lines().filter(|l| l.starts_with("Udp:")).collect();
    if udp.len() < 2 {
        return 0;
    }
    let names: Vec<&str> = udp[0].split_whitespace().collect();
    let values: Vec<&str> = udp[1].split_whitespace().collect();
    names
        .iter()
        .position(|n| *n == "RcvbufErrors")
        .and_then(|i| values.get(i)?.parse().ok())
        .unwrap_or(0)
}

/// The `drops` counter of the UDP socket bound to 127.0.0.1:`port` (from /proc/net/udp).
fn socket_drops(port: u16) -> u64 {
    let table = std::fs::read_to_string("/proc/net/udp").unwrap_or_default();
    let local = format!("0100007F:{port:04X}");
    table
        .lines()
        .filter(|l| l.split_whitespace().nth(1) == Some(local.as_str()))
        .filter_map(|l| l.split_whitespace().last()?.parse::<u64>().ok())
        .sum()
}

/// One sipp `-rtp_echo` per this many legs (sipp echoes from a single socket on one thread).
const LEGS_PER_ECHO: usize = 200;

fn start_echoes(n: usize) -> (Vec<Kill>, Vec<u16>) {
    let mut procs = Vec::new();
    let mut ports = Vec::new();
    for _ in 0..n.div_ceil(LEGS_PER_ECHO).max(1) {
        let port = free_udp_port();
        procs.push(Kill(
            Command::new("sipp")
                .args(["-sn", "uas", "-i", "127.0.0.1", "-mi", "127.0.0.1"])
                .args(["-p", &free_udp_port().to_string(), "-mp", &port.to_string()])
                .args(["-rtp_echo", "-nostdin"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        ));
        ports.push(port);
    }
    std::thread::sleep(Duration::from_millis(500));
    (procs, ports)
}

/// `n` call legs on one single-threaded runtime, in pairs: leg A plays a prompt to a sipp echo
/// and relays what comes back to leg B (a bridge), which sends it to another sipp echo. Counts
/// every hop: played by A, echoed back to A, relayed out by B, echoed back to B.
#[test]
#[ignore]
fn sessions_against_sipp_echo_on_one_core() {
    if !foundation::testing::require_tool("sipp", "sip-tester") {
        return;
    }
    let counts: Vec<usize> = std::env::var("DIALBRIDGE_MEDIA_STREAMS")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.parse().ok()).collect())
        .unwrap_or_else(|| vec![500, 1000]);
    let secs = 5u64;
    for n in counts {
        let n = n / 2 * 2;
        let (_echoes, echo_ports) = start_echoes(n);
        let drops0 = udp_receive_buffer_errors();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (hops, lost, cpu, wall, idle_kib, busy_kib) = rt.block_on(async {
            let prompt = Prompt::from_pcm(
                (0..8000 * secs as usize)
                    .map(|i| ((i as f64 * 0.07).sin() * 6000.0) as i16)
                    .collect(),
            );
            let rss0 = rss_kib();
            let mut legs = Vec::with_capacity(n);
            for i in 0..n {
                // Calls start at different moments: spread the legs' 20 ms clocks over one frame
                // (all in phase, every frame would be one burst of n packets at the echoes).
                if i % (n / 20).max(1) == 0 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                let s = RtpSession::bind(SessionConfig::pcmu(LO), None)
                    .await
                    .unwrap();
                s.set_remote(SocketAddr::new(LO, echo_ports[i / LEGS_PER_ECHO]));
                legs.push(s);
            }
            for pair in legs.chunks(2) {
                pair[0].connect_to(&pair[1]);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            let idle_kib_per_leg = (rss_kib().saturating_sub(rss0)) as f64 / n as f64;
            let cpu0 = thread_cpu();
            let t0 = Instant::now();
            for pair in legs.chunks(2) {
                pair[0].play(Box::new(prompt.player()));
            }
            tokio::time::sleep(Duration::from_secs(secs) + Duration::from_millis(500)).await;
            let wall = t0.elapsed();
            let cpu = thread_cpu() - cpu0;
            let busy_kib_per_leg = (rss_kib().saturating_sub(rss0)) as f64 / n as f64;
            let mut hops = [0u64; 4];
            let mut lost = 0;
            for pair in legs.chunks(2) {
                let (a, b) = (pair[0].stats().await, pair[1].stats().await);
                hops[0] += a.sent;
                hops[1] += a.receiver.audio;
                hops[2] += b.sent;
                hops[3] += b.receiver.audio;
                lost += a.jitter.lost + b.jitter.lost;
            }
            for s in legs {
                s.close().await;
            }
            (hops, lost, cpu, wall, idle_kib_per_leg, busy_kib_per_leg)
        });
        let expected = (n / 2) as u64 * secs * 50;
        let drops = udp_receive_buffer_errors().saturating_sub(drops0);
        let at_echo: u64 = echo_ports.iter().map(|p| socket_drops(*p)).sum();
        println!(
            "{n:>5} legs ({} bridged pairs), {secs} s, one core, {} sipp echoes: A played {} of {expected}, echoed to A {}, relayed by B {}, echoed to B {} \
             => end-to-end {:.3} % delivered; jitter-buffer gaps {lost}; kernel receive-buffer drops {drops} (at the sipp echo sockets {at_echo}); CPU {:.0} % of one core; memory per leg {idle_kib:.0} KiB idle, {busy_kib:.0} KiB while playing and relaying",
            n / 2,
            echo_ports.len(),
            hops[0],
            hops[1],
            hops[2],
            hops[3],
            100.0 * hops[3] as f64 / expected as f64,
            100.0 * cpu.as_secs_f64() / wall.as_secs_f64()
        );
    }
}
