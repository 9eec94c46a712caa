//! One entry point for fuzzers over everything that handles untrusted bytes: the message layer,
//! TCP framing and the sans-IO core. A `cargo fuzz` target is then just
//! `fuzz_target!(|data: &[u8]| telephony::sip::fuzzing::exercise(data));`.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use super::call::Transport;
use super::endpoint::{Effect, Endpoint, EndpointConfig, Peer};
use super::framing::{Frame, Framer};
use super::message;
use super::transaction::TimerConfig;

fn endpoint() -> Endpoint {
    let cfg = EndpointConfig {
        udp_addr: "127.0.0.1:5060".parse().expect("static address"),
        tls_addr: None,
        tcp_addr: "127.0.0.1:5060".parse().expect("static address"),
        advertised: "127.0.0.1".into(),
        rtp_ports: (20000, 20100),
        timers: TimerConfig::default(),
        auto_answer: Some(Duration::ZERO),
        user_agent: "fuzz".into(),
        policy: None,
        min_se: 90,
        session_interval: 1800,
    };
    Endpoint::new(cfg, Arc::new(AtomicU64::new(1)))
}

/// Feeds `data` as a datagram and as a TCP stream (split in two reads) through parsing, framing
/// and a fresh endpoint, firing every timer it arms. Must never panic.
pub fn exercise(data: &[u8]) {
    let now = Instant::now();
    let mut ep = endpoint();
    let peer = Peer {
        transport: Transport::Udp,
        addr: "127.0.0.1:5070".parse().expect("static address"),
        conn: None,
    };
    let mut messages = Vec::new();
    if let Ok(m) = message::parse(data, 65_535) {
        messages.push(m);
    }
    let mut framer = Framer::new(65_535);
    let (a, b) = data.split_at(data.len() / 2);
    for chunk in [a, b] {
        for f in framer.push(chunk) {
            if let Frame::Message(bytes) = f
                && let Ok(m) = message::parse(&bytes, 65_535)
            {
                messages.push(m);
            }
        }
    }
    for m in messages {
        ep.on_message(m, peer.clone(), now);
    }
    // Run the timers forward, as the driver would, for a bounded number of rounds.
    for _ in 0..8 {
        let timers: Vec<_> = ep
            .take_effects()
            .into_iter()
            .filter_map(|e| {
                if let Effect::Timer { at, key } = e {
                    Some((at, key))
                } else {
                    None
                }
            })
            .collect();
        if timers.is_empty() {
            break;
        }
        for (at, key) in timers {
            ep.on_timer(key, at.max(now) + Duration::from_millis(1));
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn exercise_survives_random_and_near_valid_input() {
        let valid = b"INVITE sip:a@127.0.0.1 SIP/2.0\r\nv: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKf\r\nf: <sip:b@h>;tag=1\r\nt: <sip:a@h>\r\ni: x\r\nCSeq: 1 INVITE\r\nc: application/sdp\r\nl: 87\r\n\r\nv=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\n";
        // The seed itself reaches the core and is answered (100, 180, 200 and the 2xx timers).
        let parsed = crate::sip::message::parse(valid, 65_535).expect("seed parses");
        assert_eq!(parsed.body().len(), 87);
        super::exercise(valid);
        let mut seed = 7u64;
        for _ in 0..2000 {
            let mut v = valid.to_vec();
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let i = (seed >> 33) as usize % v.len();
            v[i] = (seed >> 17) as u8;
            v.truncate(v.len() - (seed as usize % 20));
            super::exercise(&v);
        }
    }
}
