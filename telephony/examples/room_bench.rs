//! What mixing rooms cost: prints figures, asserts nothing.
//!
//! 1. Sans-IO: one 20 ms interval of a three-leg room (µ-law and A-law legs: decode what each
//!    said, `MixingDesk::tick`, encode each leg's mix) timed over many intervals.
//! 2. Driver: `ROOMS` [`MixRoom`]s of three legs each (default 300), every leg fed a frame every
//!    20 ms through the room's input channel and drained on its output channel, for 10 s; the
//!    process's CPU time over that window (from /proc/self/stat) and the mixer counters.
//!
//! `cargo run --release -p telephony --example room_bench [ROOMS]`

use std::time::{Duration, Instant};

use telephony::media::bridge::PeerId;
use telephony::media::conference::MixRoom;
use telephony::media::frame::Frame;
use telephony::media::g711::Codec;
use telephony::media::mixer::{MixingDesk, Role};
use telephony::media::session::next_peer_id;

fn tone(freq: f64) -> Vec<i16> {
    (0..160)
        .map(|i| (8000.0 * (2.0 * std::f64::consts::PI * freq * i as f64 / 8000.0).sin()) as i16)
        .collect()
}

fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses): utime is the 14th, stime the 15th.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

fn sans_io() {
    let legs = [
        (PeerId(1), Codec::Pcmu, 500.0),
        (PeerId(2), Codec::Pcma, 800.0),
        (PeerId(3), Codec::Pcmu, 1300.0),
    ];
    let mut desk = MixingDesk::new();
    let encoded: Vec<(PeerId, Codec, Vec<u8>)> = legs
        .iter()
        .map(|&(p, c, f)| {
            desk.set(
                p,
                if p == PeerId(3) {
                    Role::Whisper(vec![PeerId(2)])
                } else {
                    Role::Talker
                },
            );
            (p, c, c.encode(&tone(f)))
        })
        .collect();
    let n = 200_000u32;
    let t0 = Instant::now();
    let mut sink = 0u64;
    for _ in 0..n {
        for (p, c, bytes) in &encoded {
            desk.push(*p, c.decode(bytes));
        }
        for (p, pcm) in desk.tick() {
            let codec = if p == PeerId(2) {
                Codec::Pcma
            } else {
                Codec::Pcmu
            };
            sink += codec.encode(&pcm)[0] as u64;
        }
    }
    let per = t0.elapsed() / n;
    println!(
        "sans-IO: one interval of a 3-leg room (decode 3, mix, encode 3): {:.2} µs; {} rooms fit one core at 20 ms (checksum {sink})",
        per.as_nanos() as f64 / 1000.0,
        (Duration::from_millis(20).as_nanos() / per.as_nanos().max(1))
    );
}

async fn driver(rooms: usize) {
    let mut all = Vec::new();
    let mut feeds = Vec::new();
    let mut drains = Vec::new();
    for _ in 0..rooms {
        let room = MixRoom::start(next_peer_id());
        for (i, f) in [500.0, 800.0, 1300.0].into_iter().enumerate() {
            let peer = next_peer_id();
            let (tx, mut rx) = tokio::sync::mpsc::channel::<(PeerId, Frame)>(16);
            room.add(peer, tx, if i == 2 { Role::Listener } else { Role::Talker });
            feeds.push((
                room.input(),
                peer,
                Frame::from_encoded(Codec::Pcmu, Codec::Pcmu.encode(&tone(f)).into()),
            ));
            drains.push(tokio::spawn(async move {
                let mut n = 0u64;
                while rx.recv().await.is_some() {
                    n += 1;
                }
                n
            }));
        }
        all.push(room);
    }
    let secs = 10;
    let (t0, c0) = (Instant::now(), cpu_seconds());
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let mut late_feeds = 0u64;
    for _ in 0..secs * 50 {
        tick.tick().await;
        for (input, peer, frame) in &feeds {
            if input.try_send((*peer, frame.clone())).is_err() {
                late_feeds += 1;
            }
        }
    }
    let (wall, cpu) = (t0.elapsed().as_secs_f64(), cpu_seconds() - c0);
    let mut totals = (0u64, 0u64, 0u64, 0u64);
    for r in &all {
        let s = r.stats().await;
        totals.0 += s.desk.ticks;
        totals.1 += s.desk.underruns;
        totals.2 += s.desk.overflow;
        totals.3 += s.delivery_dropped;
    }
    println!(
        "driver: {rooms} rooms × 3 legs for {wall:.1} s: {:.0} % of one core ({:.1} µs CPU per room-interval incl. feeding); ticks {} (expected ~{}), underruns {}, overflow {}, deliveries dropped {}, input full {late_feeds}",
        100.0 * cpu / wall,
        cpu * 1e6 / (rooms as f64 * wall * 50.0),
        totals.0,
        rooms * secs * 50,
        totals.1,
        totals.2,
        totals.3
    );
    for r in all {
        r.close().await;
    }
    for d in drains {
        let _ = d.await;
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let rooms: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(300);
    sans_io();
    driver(rooms).await;
}
