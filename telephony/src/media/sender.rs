//! The sending half of one RTP stream: SSRC, sequence numbers, the 8 kHz media clock and the
//! marker bit (set on the first packet of a talkspurt, i.e. at the start and after any gap).
//!
//! Sans-IO: it builds `rtp::packet::Packet`s; the caller marshals and sends them.

use bytes::Bytes;
use rtp::header::Header;
use rtp::packet::Packet;

/// Samples per 20 ms frame at 8 kHz.
pub const FRAME_SAMPLES: usize = 160;
/// The packet time used throughout.
pub const PTIME_MS: u64 = 20;

/// One outgoing RTP stream.
#[derive(Debug, Clone)]
pub struct RtpSender {
    ssrc: u32,
    seq: u16,
    timestamp: u32,
    talkspurt: bool,
    sent_packets: u64,
    sent_octets: u64,
}

impl RtpSender {
    /// A stream with the given SSRC, first sequence number and first timestamp (RFC 3550 wants the
    /// last two random; see [`RtpSender::random`]).
    pub fn new(ssrc: u32, first_seq: u16, first_timestamp: u32) -> Self {
        RtpSender {
            ssrc,
            seq: first_seq,
            timestamp: first_timestamp,
            talkspurt: false,
            sent_packets: 0,
            sent_octets: 0,
        }
    }

    /// A stream with random SSRC, sequence and timestamp.
    pub fn random() -> Self {
        let (a, b) = random_u64_pair();
        RtpSender::new(a as u32, (a >> 32) as u16, b as u32)
    }

    /// This stream's SSRC.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// The sequence number the next packet will carry.
    pub fn next_sequence(&self) -> u16 {
        self.seq
    }

    /// The media timestamp of the next audio frame.
    pub fn timestamp(&self) -> u32 {
        self.timestamp
    }

    /// Packets and payload octets sent (for RTCP SR and statistics).
    pub fn counters(&self) -> (u64, u64) {
        (self.sent_packets, self.sent_octets)
    }

    /// Builds a packet with explicit fields, taking the next sequence number. The media clock is
    /// not advanced.
    pub fn packet(
        &mut self,
        payload_type: u8,
        marker: bool,
        timestamp: u32,
        payload: Bytes,
    ) -> Packet {
        let header = Header {
            version: 2,
            marker,
            payload_type,
            sequence_number: self.seq,
            timestamp,
            ssrc: self.ssrc,
            ..Default::default()
        };
        self.seq = self.seq.wrapping_add(1);
        self.sent_packets += 1;
        self.sent_octets += payload.len() as u64;
        Packet { header, payload }
    }

    /// Builds the next audio packet (one byte per sample, as G.711) and advances the media clock by
    /// its length. The marker is set on the first packet of a talkspurt.
    pub fn audio(&mut self, payload_type: u8, payload: Bytes) -> Packet {
        let marker = !self.talkspurt;
        self.talkspurt = true;
        let samples = payload.len() as u32;
        let ts = self.timestamp;
        self.timestamp = self.timestamp.wrapping_add(samples);
        self.packet(payload_type, marker, ts, payload)
    }

    /// Advances the media clock over `samples` that were not sent (silence, or time covered by a
    /// telephone-event); the next audio packet starts a new talkspurt.
    pub fn skip(&mut self, samples: u32) {
        self.timestamp = self.timestamp.wrapping_add(samples);
        self.talkspurt = false;
    }

    /// Moves the media clock to `timestamp` (e.g. to the wall-clock grid after a pause) and starts
    /// a new talkspurt if that is not where the clock already was.
    pub fn set_timestamp(&mut self, timestamp: u32) {
        if timestamp != self.timestamp {
            self.timestamp = timestamp;
            self.talkspurt = false;
        }
    }

    /// Marks the next audio packet as the start of a talkspurt without moving the clock (used when
    /// the audio source behind this stream changes, e.g. a switched agent leg).
    pub fn new_talkspurt(&mut self) {
        self.talkspurt = false;
    }
}

/// Two random 64-bit values from the OS (via std's hasher keys) without another dependency.
pub(crate) fn random_u64_pair() -> (u64, u64) {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    let s = RandomState::new();
    let mut h = s.build_hasher();
    h.write_u64(0x5EED);
    let a = h.finish();
    let mut h = s.build_hasher();
    h.write_u64(a);
    (a, h.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audio_advances_sequence_and_clock_with_marker_on_talkspurts() {
        let mut s = RtpSender::new(0xABCD, 65535, 1000);
        let p1 = s.audio(0, Bytes::from(vec![0xFF; 160]));
        let p2 = s.audio(0, Bytes::from(vec![0xFF; 160]));
        assert_eq!(
            (
                p1.header.sequence_number,
                p1.header.timestamp,
                p1.header.marker
            ),
            (65535, 1000, true)
        );
        assert_eq!(
            (
                p2.header.sequence_number,
                p2.header.timestamp,
                p2.header.marker
            ),
            (0, 1160, false)
        );
        s.skip(320);
        let p3 = s.audio(8, Bytes::from(vec![0xD5; 160]));
        assert_eq!(
            (
                p3.header.sequence_number,
                p3.header.timestamp,
                p3.header.marker
            ),
            (1, 1640, true)
        );
        assert_eq!(p3.header.ssrc, 0xABCD);
        assert_eq!(p3.header.payload_type, 8);
        assert_eq!(s.counters(), (3, 480));
    }

    #[test]
    fn random_streams_differ() {
        let a = RtpSender::random();
        let b = RtpSender::random();
        assert_ne!((a.ssrc(), a.timestamp()), (b.ssrc(), b.timestamp()));
    }
}
