//! The sans-IO audio side of a browser leg: which frame goes to the browser next and with which
//! RTP timestamp, and how the browser's G.711 payloads become 20 ms [`Frame`]s. No sockets, no
//! clock: the driver passes the elapsed media time in.
//!
//! Outgoing audio comes either from a local [`FrameSource`] (a prompt or tone played to the
//! agent; it wins while it plays) or from the one peer the leg listens to (the SIP call's media,
//! relayed frame by frame as it arrives, bit-exact when the codecs match). The RTP clock follows
//! wall time, so silence gaps keep their length, and never goes backwards or repeats a timestamp,
//! so bursts are sent as consecutive frames.

use bytes::Bytes;

use crate::media::bridge::PeerId;
use crate::media::frame::{Frame, FrameSource};
use crate::media::g711::Codec;
use crate::media::sender::FRAME_SAMPLES;

/// The G.711 codec behind a negotiated str0m codec, if it is one.
pub fn g711_of(codec: str0m::format::Codec) -> Option<Codec> {
    match codec {
        str0m::format::Codec::PCMU => Some(Codec::Pcmu),
        str0m::format::Codec::PCMA => Some(Codec::Pcma),
        _ => None,
    }
}

/// One payload to write toward the browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutFrame {
    /// RTP timestamp (8 kHz units since the leg started).
    pub rtp_time: u64,
    /// G.711 bytes in the leg's codec.
    pub payload: Bytes,
}

/// What goes to the browser.
pub struct Outgoing {
    codec: Codec,
    peer: Option<PeerId>,
    playing: Option<Box<dyn FrameSource>>,
    next_ts: Option<u64>,
    /// Frames from a peer other than the one listened to (or while a local source played).
    pub ignored: u64,
}

impl Outgoing {
    /// Nothing to send yet, in `codec`.
    pub fn new(codec: Codec) -> Self {
        Outgoing {
            codec,
            peer: None,
            playing: None,
            next_ts: None,
            ignored: 0,
        }
    }

    /// The codec the browser receives.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// Relay frames from `peer` only (or from nobody).
    pub fn listen_to(&mut self, peer: Option<PeerId>) {
        self.peer = peer;
    }

    /// The peer listened to.
    pub fn peer(&self) -> Option<PeerId> {
        self.peer
    }

    /// Plays `source` (replacing what played), ahead of relayed audio until it ends.
    pub fn play(&mut self, source: Box<dyn FrameSource>) {
        self.playing = Some(source);
    }

    /// Stops local playback; true if something was playing.
    pub fn stop(&mut self) -> bool {
        self.playing.take().is_some()
    }

    /// Whether a local source is playing.
    pub fn is_playing(&self) -> bool {
        self.playing.is_some()
    }

    fn stamp(&mut self, elapsed_samples: u64) -> u64 {
        // Align wall time down to a frame boundary; never reuse or go below the next slot.
        let wall = elapsed_samples / FRAME_SAMPLES as u64 * FRAME_SAMPLES as u64;
        let ts = match self.next_ts {
            Some(next) => next.max(wall),
            None => wall,
        };
        self.next_ts = Some(ts + FRAME_SAMPLES as u64);
        ts
    }

    /// A frame arrived from `from` at `elapsed_samples` (8 kHz units since start): what to send.
    pub fn relay(&mut self, from: PeerId, frame: &Frame, elapsed_samples: u64) -> Option<OutFrame> {
        if self.peer != Some(from) || self.playing.is_some() {
            self.ignored += 1;
            return None;
        }
        let rtp_time = self.stamp(elapsed_samples);
        Some(OutFrame {
            rtp_time,
            payload: frame.payload(self.codec),
        })
    }

    /// The 20 ms clock ticked: the local source's next frame, and whether it just finished.
    pub fn tick(&mut self, elapsed_samples: u64) -> (Option<OutFrame>, bool) {
        let Some(source) = self.playing.as_mut() else {
            return (None, false);
        };
        match source.next_frame() {
            Some(frame) => {
                let payload = frame.payload(self.codec);
                let rtp_time = self.stamp(elapsed_samples);
                (Some(OutFrame { rtp_time, payload }), false)
            }
            None => {
                self.playing = None;
                (None, true)
            }
        }
    }
}

/// Cuts the browser's payloads (whatever their packet time) into 20 ms frames.
#[derive(Debug, Default)]
pub struct Reframer {
    pending: Vec<u8>,
    codec: Option<Codec>,
}

impl Reframer {
    /// Empty.
    pub fn new() -> Self {
        Reframer::default()
    }

    /// Adds one payload in `codec`; returns the whole frames now complete. A codec change drops
    /// the partial frame of the previous codec.
    pub fn push(&mut self, codec: Codec, payload: &[u8]) -> Vec<Frame> {
        if self.codec != Some(codec) {
            self.pending.clear();
            self.codec = Some(codec);
        }
        let mut out = Vec::new();
        if self.pending.is_empty() && payload.len() == FRAME_SAMPLES {
            out.push(Frame::from_encoded(codec, Bytes::copy_from_slice(payload)));
            return out;
        }
        self.pending.extend_from_slice(payload);
        while self.pending.len() >= FRAME_SAMPLES {
            let rest = self.pending.split_off(FRAME_SAMPLES);
            let whole = std::mem::replace(&mut self.pending, rest);
            out.push(Frame::from_encoded(codec, Bytes::from(whole)));
        }
        out
    }

    /// Drops a partial frame (after a gap in the stream).
    pub fn reset(&mut self) {
        self.pending.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Count(u32);
    impl FrameSource for Count {
        fn next_frame(&mut self) -> Option<Frame> {
            if self.0 == 0 {
                return None;
            }
            self.0 -= 1;
            Some(Frame::from_pcm(vec![1000; FRAME_SAMPLES]))
        }
    }

    #[test]
    fn relays_only_the_listened_peer_and_local_playback_wins() {
        let mut out = Outgoing::new(Codec::Pcmu);
        let f = Frame::from_encoded(Codec::Pcmu, Bytes::from(vec![0x55u8; 160]));
        assert_eq!(out.relay(PeerId(7), &f, 0), None);
        out.listen_to(Some(PeerId(7)));
        assert_eq!(out.relay(PeerId(8), &f, 0), None);
        let sent = out.relay(PeerId(7), &f, 0).unwrap();
        assert_eq!(
            sent.payload,
            Bytes::from(vec![0x55u8; 160]),
            "same codec: bit-exact"
        );
        out.play(Box::new(Count(2)));
        assert_eq!(out.relay(PeerId(7), &f, 160), None);
        assert_eq!(out.ignored, 3);
        assert!(out.tick(160).0.is_some());
        assert!(out.tick(320).0.is_some());
        assert_eq!(out.tick(480), (None, true));
        assert!(!out.is_playing());
        assert!(out.relay(PeerId(7), &f, 640).is_some());
    }

    #[test]
    fn transcodes_when_the_browser_took_the_other_law() {
        let mut out = Outgoing::new(Codec::Pcma);
        out.listen_to(Some(PeerId(1)));
        let f = Frame::from_encoded(Codec::Pcmu, Bytes::from(vec![0xFFu8; 160]));
        // µ-law silence becomes A-law silence.
        assert_eq!(
            out.relay(PeerId(1), &f, 0).unwrap().payload,
            Bytes::from(vec![0xD5u8; 160])
        );
    }

    #[test]
    fn timestamps_follow_wall_time_and_never_repeat() {
        let mut out = Outgoing::new(Codec::Pcmu);
        out.listen_to(Some(PeerId(1)));
        let f = Frame::silence();
        let ts: Vec<u64> = [0u64, 170, 170, 170, 2000]
            .iter()
            .map(|&t| out.relay(PeerId(1), &f, t).unwrap().rtp_time)
            .collect();
        // A burst of three gets consecutive slots; after a gap the clock jumps to wall time.
        assert_eq!(ts, vec![0, 160, 320, 480, 1920]);
    }

    #[test]
    fn reframes_10_and_30_ms_packets_into_20_ms_frames() {
        let mut r = Reframer::new();
        assert!(r.push(Codec::Pcmu, &[1u8; 80]).is_empty());
        let a = r.push(Codec::Pcmu, &[2u8; 240]);
        assert_eq!(a.len(), 2);
        assert_eq!(
            &a[0].encoded.as_ref().unwrap().1[..],
            &[[1u8; 80], [2u8; 80]].concat()[..]
        );
        assert_eq!(a[1].pcm.len(), 160);
        // A codec change drops the half frame left over.
        assert!(r.push(Codec::Pcma, &[3u8; 80]).is_empty());
        let b = r.push(Codec::Pcma, &[3u8; 80]);
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].encoded.as_ref().unwrap().0, Codec::Pcma);
        assert_eq!(g711_of(str0m::format::Codec::PCMA), Some(Codec::Pcma));
        assert_eq!(g711_of(str0m::format::Codec::Opus), None);
    }
}
