//! Hostile input never panics the media parsers: random and mutated datagrams into the RTP
//! receiver (and telephone-event parsing), random and truncated WAV and pcap files.

use std::time::Instant;

use telephony::media::pcap::udp_datagrams;
use telephony::media::receiver::{ReceiverConfig, RtpReceiver};
use telephony::media::sender::RtpSender;
use telephony::media::wav::{Wav, WavEncoding, encode_wav};
use webrtc_util::marshal::Marshal;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn bytes(&mut self, max: u64) -> Vec<u8> {
        let n = self.next() % max;
        (0..n).map(|_| self.next() as u8).collect()
    }
    /// Flips, overwrites or truncates a few bytes of a valid input.
    fn mutate(&mut self, mut v: Vec<u8>) -> Vec<u8> {
        for _ in 0..1 + self.next() % 4 {
            if v.is_empty() {
                break;
            }
            let i = (self.next() % v.len() as u64) as usize;
            match self.next() % 3 {
                0 => v[i] ^= 1 << (self.next() % 8),
                1 => v[i] = self.next() as u8,
                _ => v.truncate(i),
            }
        }
        v
    }
}

#[test]
fn rtp_receiver_survives_garbage() {
    let mut rng = Rng(0x9E3779B97F4A7C15);
    let mut rx = RtpReceiver::new(ReceiverConfig {
        telephone_event: vec![96, 101],
        ..Default::default()
    });
    let mut tx = RtpSender::new(1, 0, 0);
    let now = Instant::now();
    for i in 0..50_000 {
        let d = if i % 2 == 0 {
            let mut b = rng.bytes(300);
            if let Some(first) = b.first_mut() {
                *first = 0x80 | (*first & 0x3F); // mostly version 2, any flags/CSRC count
            }
            b
        } else {
            let pt = [0u8, 8, 96, 101, 97][(rng.next() % 5) as usize];
            let p = tx.packet(pt, false, rng.next() as u32, rng.bytes(200).into());
            rng.mutate(p.marshal().unwrap().to_vec())
        };
        let _ = rx.on_datagram(&d, now);
    }
    let st = rx.stats();
    assert!(st.malformed > 0 && st.audio + st.events > 0, "{st:?}");
}

#[test]
fn wav_parser_survives_garbage() {
    let mut rng = Rng(42);
    let valid: Vec<Vec<u8>> = [WavEncoding::Pcm16, WavEncoding::Ulaw, WavEncoding::Alaw]
        .iter()
        .map(|e| encode_wav(*e, &[100i16; 50]))
        .collect();
    let mut ok = 0;
    for i in 0..30_000 {
        let input = if i % 3 == 0 {
            let mut b = b"RIFF\0\0\0\0WAVE".to_vec();
            b.extend(rng.bytes(100));
            b
        } else {
            rng.mutate(valid[i % 3].clone())
        };
        ok += Wav::parse(&input).is_ok() as u32;
    }
    assert!(ok > 0);
}

#[test]
fn pcap_reader_survives_garbage() {
    let mut rng = Rng(7);
    let valid = std::fs::read("/usr/share/sip-tester/dtmf_2833_1.pcap").unwrap_or_else(|_| {
        // Without sipp's captures, a minimal valid capture header plus one Ethernet/IPv4/UDP frame.
        let mut f = Vec::new();
        for v in [0xa1b2c3d4u32, 0x0004_0002, 0, 0, 65535, 1] {
            f.extend_from_slice(&v.to_le_bytes());
        }
        let frame: Vec<u8> = [
            vec![0u8; 12],
            vec![8, 0, 0x45, 0, 0, 32],
            vec![0; 3],
            vec![64, 17],
            vec![0; 10],
            vec![0, 1, 0, 2, 0, 12, 0, 0],
            vec![1, 2, 3, 4],
        ]
        .concat();
        for v in [0u32, 0, frame.len() as u32, frame.len() as u32] {
            f.extend_from_slice(&v.to_le_bytes());
        }
        f.extend(frame);
        f
    });
    assert!(udp_datagrams(&valid).is_ok());
    for _ in 0..30_000 {
        let _ = udp_datagrams(&rng.mutate(valid.clone()));
    }
}
