//! The unit of audio that moves between media pieces: one 20 ms frame of 160 linear samples,
//! optionally with the G.711 bytes it came from so that a same-codec relay or a µ-law prompt goes
//! out bit-exact instead of being decoded and re-encoded.

use bytes::Bytes;

use super::g711::Codec;
use super::sender::FRAME_SAMPLES;

/// One 20 ms frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// 16-bit linear samples (normally 160).
    pub pcm: Vec<i16>,
    /// The encoded form it arrived in, if any.
    pub encoded: Option<(Codec, Bytes)>,
}

impl Frame {
    /// A frame of linear samples.
    pub fn from_pcm(pcm: Vec<i16>) -> Self {
        Frame { pcm, encoded: None }
    }

    /// A frame from G.711 bytes (kept, and decoded).
    pub fn from_encoded(codec: Codec, bytes: Bytes) -> Self {
        Frame {
            pcm: codec.decode(&bytes),
            encoded: Some((codec, bytes)),
        }
    }

    /// 20 ms of digital silence.
    pub fn silence() -> Self {
        Frame::from_pcm(vec![0; FRAME_SAMPLES])
    }

    /// The payload to send with `codec`: the original bytes when they are already in that codec,
    /// otherwise the linear samples encoded (PCMU↔PCMA transcoding happens here).
    pub fn payload(&self, codec: Codec) -> Bytes {
        match &self.encoded {
            Some((c, b)) if *c == codec => b.clone(),
            _ => Bytes::from(codec.encode(&self.pcm)),
        }
    }
}

/// Anything that produces outgoing audio frame by frame (prompts, tones, a relay queue).
pub trait FrameSource: Send {
    /// The next 20 ms; `None` when finished.
    fn next_frame(&mut self) -> Option<Frame>;
}

/// Plays several sources one after another.
pub struct Sequence {
    parts: std::collections::VecDeque<Box<dyn FrameSource>>,
}

impl Sequence {
    /// Sources played in order.
    pub fn new(parts: Vec<Box<dyn FrameSource>>) -> Self {
        Sequence {
            parts: parts.into(),
        }
    }
}

impl FrameSource for Sequence {
    fn next_frame(&mut self) -> Option<Frame> {
        while let Some(p) = self.parts.front_mut() {
            if let Some(f) = p.next_frame() {
                return Some(f);
            }
            self.parts.pop_front();
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_keeps_original_bytes_for_the_same_codec_and_transcodes_otherwise() {
        // 0x7F is µ-law negative zero: only the kept bytes preserve it.
        let raw = Bytes::from(vec![0x7Fu8; 160]);
        let f = Frame::from_encoded(Codec::Pcmu, raw.clone());
        assert_eq!(f.payload(Codec::Pcmu), raw);
        assert_eq!(f.payload(Codec::Pcma), Bytes::from(vec![0xD5u8; 160]));
        assert_eq!(
            Frame::silence().payload(Codec::Pcmu),
            Bytes::from(vec![0xFFu8; 160])
        );
    }
}
