//! Call recording: both directions captured on a common time line (frames placed by arrival
//! time, gaps filled with silence) and written as a WAV file, mono mix or stereo (left = what the
//! remote party said, right = what we sent).

use std::time::Instant;

use super::wav::{WavEncoding, wav_from_raw};

/// Which way a frame went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Received from the remote party.
    Inbound,
    /// Sent by us (prompts, relayed audio from the other leg).
    Outbound,
}

/// Layout of the resulting file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordingLayout {
    /// Both directions summed (clipped) into one channel.
    Mono,
    /// Inbound left, outbound right.
    Stereo,
}

/// Accumulates a call's audio.
#[derive(Debug)]
pub struct CallRecorder {
    start: Instant,
    inbound: Vec<i16>,
    outbound: Vec<i16>,
}

impl CallRecorder {
    /// Recording starts at `now`.
    pub fn new(now: Instant) -> Self {
        CallRecorder {
            start: now,
            inbound: Vec::new(),
            outbound: Vec::new(),
        }
    }

    /// Adds one frame heard or sent at `now`.
    pub fn push(&mut self, direction: Direction, pcm: &[i16], now: Instant) {
        let track = match direction {
            Direction::Inbound => &mut self.inbound,
            Direction::Outbound => &mut self.outbound,
        };
        // Where this frame belongs (its start), at 8 samples/ms; frames that arrive in a burst are
        // appended back to back rather than overlapped.
        let at = (now.saturating_duration_since(self.start).as_micros() as usize * 8 / 1000)
            .saturating_sub(pcm.len());
        if at > track.len() + pcm.len() {
            track.resize(at, 0);
        }
        track.extend_from_slice(pcm);
    }

    /// Recorded length in samples (the longer direction).
    pub fn len(&self) -> usize {
        self.inbound.len().max(self.outbound.len())
    }

    /// True if nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The WAV file.
    pub fn finish(&self, layout: RecordingLayout, encoding: WavEncoding) -> Vec<u8> {
        let n = self.len();
        let get = |t: &Vec<i16>, i: usize| t.get(i).copied().unwrap_or(0);
        let samples: Vec<i16> = match layout {
            RecordingLayout::Mono => (0..n)
                .map(|i| {
                    (get(&self.inbound, i) as i32 + get(&self.outbound, i) as i32)
                        .clamp(-32768, 32767) as i16
                })
                .collect(),
            RecordingLayout::Stereo => (0..n)
                .flat_map(|i| [get(&self.inbound, i), get(&self.outbound, i)])
                .collect(),
        };
        let channels = if layout == RecordingLayout::Stereo {
            2
        } else {
            1
        };
        let raw: Vec<u8> = match encoding {
            WavEncoding::Pcm16 => samples.iter().flat_map(|s| s.to_le_bytes()).collect(),
            WavEncoding::Ulaw => super::g711::Codec::Pcmu.encode(&samples),
            WavEncoding::Alaw => super::g711::Codec::Pcma.encode(&samples),
        };
        wav_from_raw(encoding, channels, &raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::wav::Wav;
    use std::time::Duration;

    #[test]
    fn aligns_directions_and_fills_gaps() {
        let t0 = Instant::now();
        let mut r = CallRecorder::new(t0);
        for i in 1..=5u64 {
            r.push(
                Direction::Inbound,
                &[100; 160],
                t0 + Duration::from_millis(20 * i),
            );
        }
        // Outbound starts 60 ms later.
        for i in 4..=5u64 {
            r.push(
                Direction::Outbound,
                &[7; 160],
                t0 + Duration::from_millis(20 * i),
            );
        }
        let w = Wav::parse(&r.finish(RecordingLayout::Mono, WavEncoding::Pcm16)).unwrap();
        assert_eq!(w.pcm.len(), 800);
        assert_eq!(w.pcm[0], 100);
        assert_eq!(w.pcm[479], 100);
        assert_eq!(w.pcm[480], 107);
        let st = r.finish(RecordingLayout::Stereo, WavEncoding::Pcm16);
        assert_eq!(u16::from_le_bytes([st[22], st[23]]), 2);
        assert_eq!(st.len(), 44 + 800 * 2 * 2);
    }

    #[test]
    fn a_silent_stretch_is_kept_as_silence() {
        let t0 = Instant::now();
        let mut r = CallRecorder::new(t0);
        r.push(
            Direction::Inbound,
            &[5; 160],
            t0 + Duration::from_millis(20),
        );
        r.push(
            Direction::Inbound,
            &[5; 160],
            t0 + Duration::from_millis(1020),
        );
        assert_eq!(r.len(), 8160);
        let w = Wav::parse(&r.finish(RecordingLayout::Mono, WavEncoding::Ulaw)).unwrap();
        assert_eq!(w.pcm[4000], 0);
    }
}
