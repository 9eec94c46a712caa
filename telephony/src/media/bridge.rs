//! Bridging: the outgoing stream toward one call leg, fed by whichever peer leg it is currently
//! connected to ("switchable leg"), with PCMU↔PCMA transcoding when the legs differ.
//!
//! An agent's long-lived leg keeps one SSRC, a continuous sequence and a media clock that follows
//! wall time, whoever the audio comes from; switching the peer only sets the marker bit on the next
//! packet. The agent's phone therefore never sees a new stream and nothing is re-signalled.
//! Frames still in flight from the previous peer are dropped.
//!
//! Sans-IO: frames and `now` in, RTP packets out. A bridge between two calls is two of these,
//! each connected to the other (see `session::bridge`).

use std::time::Instant;

use rtp::packet::Packet;

use super::frame::Frame;
use super::g711::Codec;
use super::rfc4733::{DtmfSendConfig, DtmfSender};
use super::sender::{FRAME_SAMPLES, RtpSender};

/// Identifies a frame producer (a session id, or [`PeerId::LOCAL`] for our own prompts/tones).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PeerId(pub u64);

impl PeerId {
    /// Audio we generate ourselves (prompts, tones): always accepted.
    pub const LOCAL: PeerId = PeerId(0);
}

/// The outgoing stream toward one leg.
#[derive(Debug)]
pub struct SwitchableLeg {
    codec: Codec,
    payload_type: u8,
    rtp: RtpSender,
    dtmf: DtmfSender,
    peer: Option<PeerId>,
    epoch: Option<(Instant, u32)>,
    sent_since_align: bool,
    stale: u64,
    switches: u64,
}

/// Allowed lead of the media clock over wall time before it is pulled back, in frames.
const MAX_LEAD_FRAMES: i64 = 3;
/// Allowed lag (a source a little slower than real time, scheduling jitter) before the clock jumps
/// forward to wall time with a new talkspurt, in frames.
const MAX_LAG_FRAMES: i64 = 2;

impl SwitchableLeg {
    /// A leg sending `codec` with `payload_type`, telephone-events per `dtmf`.
    pub fn new(codec: Codec, payload_type: u8, rtp: RtpSender, dtmf: DtmfSendConfig) -> Self {
        SwitchableLeg {
            codec,
            payload_type,
            rtp,
            dtmf: DtmfSender::new(dtmf),
            peer: None,
            epoch: None,
            sent_since_align: false,
            stale: 0,
            switches: 0,
        }
    }

    /// The codec this leg sends.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// Changes codec/payload type (after a re-INVITE); the stream continues.
    pub fn set_codec(&mut self, codec: Codec, payload_type: u8) {
        self.codec = codec;
        self.payload_type = payload_type;
    }

    /// The SSRC (constant for the life of the leg).
    pub fn ssrc(&self) -> u32 {
        self.rtp.ssrc()
    }

    /// Connects the leg to another peer (or to nobody); the next packet carries the marker bit.
    pub fn connect(&mut self, peer: Option<PeerId>) {
        if peer != self.peer {
            self.peer = peer;
            self.switches += 1;
            self.rtp.new_talkspurt();
        }
    }

    /// The peer whose audio is relayed.
    pub fn peer(&self) -> Option<PeerId> {
        self.peer
    }

    /// Frames dropped because they came from a peer that is no longer connected.
    pub fn stale_frames(&self) -> u64 {
        self.stale
    }

    /// Queues RFC 4733 digits toward this leg.
    pub fn queue_dtmf(&mut self, digits: &str) -> Result<(), char> {
        self.dtmf.queue(digits)
    }

    /// True while digits are being sent (audio is then suppressed).
    pub fn dtmf_busy(&self) -> bool {
        self.dtmf.busy()
    }

    // Keeps the media clock on the wall-clock grid: a pause shows up as a timestamp gap and a new
    // talkspurt; small drift either way is tolerated so a steady relay stays one talkspurt.
    fn align(&mut self, now: Instant) {
        let (t0, ts0) = *self.epoch.get_or_insert((now, self.rtp.timestamp()));
        let elapsed = now.saturating_duration_since(t0).as_micros() as i64 * 8 / 1000;
        let grid = ts0.wrapping_add((elapsed / FRAME_SAMPLES as i64 * FRAME_SAMPLES as i64) as u32);
        let lead = self.rtp.timestamp().wrapping_sub(grid) as i32 as i64;
        if lead < -MAX_LAG_FRAMES * FRAME_SAMPLES as i64
            || lead > MAX_LEAD_FRAMES * FRAME_SAMPLES as i64
        {
            self.rtp.set_timestamp(grid);
        }
    }

    /// Relays a frame received from `from`; `None` when that is not the connected peer or while
    /// DTMF is being sent.
    pub fn relay(&mut self, from: PeerId, frame: &Frame, now: Instant) -> Option<Packet> {
        if Some(from) != self.peer {
            self.stale += 1;
            return None;
        }
        self.send(frame, now)
    }

    /// Sends a frame of our own (prompt, tone).
    pub fn send_local(&mut self, frame: &Frame, now: Instant) -> Option<Packet> {
        self.send(frame, now)
    }

    fn send(&mut self, frame: &Frame, now: Instant) -> Option<Packet> {
        if self.dtmf.busy() {
            return None;
        }
        self.align(now);
        self.sent_since_align = true;
        Some(self.rtp.audio(self.payload_type, frame.payload(self.codec)))
    }

    /// Called every 20 ms: the telephone-event packets due now (empty when no digit is playing).
    pub fn tick_dtmf(&mut self, now: Instant) -> Vec<Packet> {
        if !self.dtmf.busy() {
            return Vec::new();
        }
        self.align(now);
        self.dtmf.tick(&mut self.rtp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn leg() -> SwitchableLeg {
        SwitchableLeg::new(
            Codec::Pcmu,
            0,
            RtpSender::new(77, 1000, 50_000),
            DtmfSendConfig::default(),
        )
    }

    #[test]
    fn switching_peers_keeps_one_continuous_stream() {
        let mut l = leg();
        let t0 = Instant::now();
        let a = PeerId(1);
        let b = PeerId(2);
        l.connect(Some(a));
        let f = Frame::from_pcm(vec![1000; 160]);
        let mut out = Vec::new();
        for i in 0..5u64 {
            out.push(l.relay(a, &f, t0 + Duration::from_millis(20 * i)).unwrap());
        }
        l.connect(Some(b));
        // A late frame from the old peer is dropped.
        assert!(l.relay(a, &f, t0 + Duration::from_millis(100)).is_none());
        for i in 5..10u64 {
            out.push(l.relay(b, &f, t0 + Duration::from_millis(20 * i)).unwrap());
        }
        assert!(out.iter().all(|p| p.header.ssrc == 77));
        let seqs: Vec<u16> = out.iter().map(|p| p.header.sequence_number).collect();
        assert_eq!(seqs, (1000..1010).collect::<Vec<u16>>());
        let ts: Vec<u32> = out.iter().map(|p| p.header.timestamp).collect();
        assert_eq!(ts, (0..10).map(|i| 50_000 + 160 * i).collect::<Vec<u32>>());
        let markers: Vec<usize> = out
            .iter()
            .enumerate()
            .filter(|(_, p)| p.header.marker)
            .map(|(i, _)| i)
            .collect();
        assert_eq!(markers, [0, 5]);
        assert_eq!(l.stale_frames(), 1);
    }

    #[test]
    fn transcodes_to_the_leg_codec_and_passes_same_codec_bytes_through() {
        let mut l = SwitchableLeg::new(
            Codec::Pcma,
            8,
            RtpSender::new(1, 0, 0),
            DtmfSendConfig::default(),
        );
        let now = Instant::now();
        let u = Frame::from_encoded(Codec::Pcmu, bytes::Bytes::from(vec![0x7Fu8; 160]));
        let p = l.send_local(&u, now).unwrap();
        assert_eq!(p.header.payload_type, 8);
        assert_eq!(&p.payload[..], &[0xD5u8; 160][..]);
        l.set_codec(Codec::Pcmu, 0);
        let p = l.send_local(&u, now + Duration::from_millis(20)).unwrap();
        assert_eq!(&p.payload[..], &[0x7Fu8; 160][..]);
    }

    #[test]
    fn a_pause_becomes_a_timestamp_gap_with_a_marker() {
        let mut l = leg();
        let t0 = Instant::now();
        let f = Frame::silence();
        let p0 = l.send_local(&f, t0).unwrap();
        let p1 = l.send_local(&f, t0 + Duration::from_millis(1000)).unwrap();
        assert_eq!(p1.header.timestamp.wrapping_sub(p0.header.timestamp), 8000);
        assert!(p1.header.marker);
        assert_eq!(
            p1.header.sequence_number,
            p0.header.sequence_number.wrapping_add(1)
        );
    }

    #[test]
    fn dtmf_suppresses_audio_and_shares_the_stream() {
        let mut l = leg();
        let t0 = Instant::now();
        l.queue_dtmf("7").unwrap();
        let mut events = 0;
        let mut i = 0u64;
        while l.dtmf_busy() {
            let now = t0 + Duration::from_millis(20 * i);
            let ev = l.tick_dtmf(now);
            if !ev.is_empty() {
                assert!(l.send_local(&Frame::silence(), now).is_none());
            }
            events += ev.len();
            assert!(
                ev.iter()
                    .all(|p| p.header.ssrc == 77 && p.header.payload_type == 101)
            );
            i += 1;
        }
        assert_eq!(events, 7 + 3); // 160 ms: 8 packets, the last sent 3 times
    }
}
