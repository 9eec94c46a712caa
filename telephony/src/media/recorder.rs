//! Call recording: both directions captured on a common time line (frames placed by arrival
//! time, gaps filled with silence) and written as a WAV file, mono mix or stereo (left = what the
//! remote party said, right = what we sent). Long calls can be drained to a file as they go
//! (`drain`), so memory holds only a short lag.

use std::time::{Duration, Instant};

use super::wav::{WavEncoding, encode_samples, wav_from_raw};

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

/// Accumulates a call's audio. For long calls, [`CallRecorder::drain`] hands out the aligned
/// samples older than a small lag so they can be written to a file as the call goes, keeping only
/// that lag in memory.
#[derive(Debug)]
pub struct CallRecorder {
    start: Instant,
    // Samples already drained (both tracks start at this position).
    base: usize,
    inbound: Vec<i16>,
    outbound: Vec<i16>,
}

impl CallRecorder {
    /// Recording starts at `now`.
    pub fn new(now: Instant) -> Self {
        CallRecorder {
            start: now,
            base: 0,
            inbound: Vec::new(),
            outbound: Vec::new(),
        }
    }

    fn position(&self, t: Instant) -> usize {
        t.saturating_duration_since(self.start).as_micros() as usize * 8 / 1000
    }

    /// Adds one frame heard or sent at `now`.
    pub fn push(&mut self, direction: Direction, pcm: &[i16], now: Instant) {
        // Where this frame belongs (its start), at 8 samples/ms; frames that arrive in a burst are
        // appended back to back rather than overlapped.
        let at = self
            .position(now)
            .saturating_sub(pcm.len())
            .saturating_sub(self.base);
        let track = match direction {
            Direction::Inbound => &mut self.inbound,
            Direction::Outbound => &mut self.outbound,
        };
        if at > track.len() + pcm.len() {
            track.resize(at, 0);
        }
        track.extend_from_slice(pcm);
    }

    /// Samples recorded so far (the longer direction), drained ones included.
    pub fn len(&self) -> usize {
        self.base + self.inbound.len().max(self.outbound.len())
    }

    /// True if nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Removes and returns the samples up to `lag` before `now` (a direction with nothing there is
    /// silence), mixed or interleaved per `layout`.
    pub fn drain(&mut self, now: Instant, lag: Duration, layout: RecordingLayout) -> Vec<i16> {
        let cut = self
            .position(now.checked_sub(lag).unwrap_or(self.start))
            .saturating_sub(self.base);
        self.take(cut, layout)
    }

    fn take(&mut self, n: usize, layout: RecordingLayout) -> Vec<i16> {
        for t in [&mut self.inbound, &mut self.outbound] {
            if t.len() < n {
                t.resize(n, 0);
            }
        }
        let a: Vec<i16> = self.inbound.drain(..n).collect();
        let b: Vec<i16> = self.outbound.drain(..n).collect();
        self.base += n;
        match layout {
            RecordingLayout::Mono => a
                .iter()
                .zip(&b)
                .map(|(x, y)| (*x as i32 + *y as i32).clamp(-32768, 32767) as i16)
                .collect(),
            RecordingLayout::Stereo => a.iter().zip(&b).flat_map(|(x, y)| [*x, *y]).collect(),
        }
    }

    /// Removes and returns everything not yet drained.
    pub fn drain_all(&mut self, layout: RecordingLayout) -> Vec<i16> {
        let n = self.inbound.len().max(self.outbound.len());
        self.take(n, layout)
    }

    /// The whole recording (what has not been drained) as a WAV file.
    pub fn finish(mut self, layout: RecordingLayout, encoding: WavEncoding) -> Vec<u8> {
        let samples = self.drain_all(layout);
        wav_from_raw(
            encoding,
            channels(layout),
            &encode_samples(encoding, &samples),
        )
    }
}

/// Channels in a file of this layout.
pub fn channels(layout: RecordingLayout) -> u16 {
    match layout {
        RecordingLayout::Mono => 1,
        RecordingLayout::Stereo => 2,
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
        let st = {
            let mut copy = CallRecorder::new(t0);
            copy.inbound = r.inbound.clone();
            copy.outbound = r.outbound.clone();
            copy.finish(RecordingLayout::Stereo, WavEncoding::Pcm16)
        };
        let w = Wav::parse(&r.finish(RecordingLayout::Mono, WavEncoding::Pcm16)).unwrap();
        assert_eq!(w.pcm.len(), 800);
        assert_eq!(w.pcm[0], 100);
        assert_eq!(w.pcm[479], 100);
        assert_eq!(w.pcm[480], 107);
        assert_eq!(u16::from_le_bytes([st[22], st[23]]), 2);
        assert_eq!(st.len(), 44 + 800 * 2 * 2);
    }

    #[test]
    fn draining_as_the_call_goes_gives_the_same_audio() {
        let t0 = Instant::now();
        let mut whole = CallRecorder::new(t0);
        let mut streamed = CallRecorder::new(t0);
        let mut out = Vec::new();
        for i in 1..=200u64 {
            let now = t0 + Duration::from_millis(20 * i);
            let a = vec![i as i16; 160];
            let b = vec![-(i as i16) * 2; 160];
            for r in [&mut whole, &mut streamed] {
                r.push(Direction::Inbound, &a, now);
                if i % 7 != 0 {
                    r.push(Direction::Outbound, &b, now); // some outbound frames missing
                }
            }
            if i % 10 == 0 {
                out.extend(streamed.drain(
                    now,
                    Duration::from_millis(100),
                    RecordingLayout::Stereo,
                ));
                // Only the lag stays in memory.
                assert!(
                    streamed.inbound.len() <= 800 + 160,
                    "{}",
                    streamed.inbound.len()
                );
            }
        }
        out.extend(streamed.drain_all(RecordingLayout::Stereo));
        let want = whole.drain_all(RecordingLayout::Stereo);
        assert_eq!(out.len(), want.len());
        assert!(out == want);
        assert_eq!(streamed.len(), 200 * 160);
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
