//! Tone generation: single and dual tones with on/off cadences (ringback, busy, beeps, DTMF
//! keys), as sample buffers or as a [`FrameSource`] for playing into a call.

use super::frame::{Frame, FrameSource};
use super::sender::FRAME_SAMPLES;

/// `ms` of the sum of two sines, each at `amplitude` × full scale.
pub fn dual_tone(f1: f64, f2: f64, rate: u32, amplitude: f64, ms: u32) -> Vec<i16> {
    let n = (rate as u64 * ms as u64 / 1000) as usize;
    (0..n)
        .map(|i| sample(&[f1, f2], amplitude, i as u64, rate))
        .collect()
}

fn sample(freqs: &[f64], amplitude: f64, i: u64, rate: u32) -> i16 {
    let t = i as f64 / rate as f64;
    let v: f64 = freqs
        .iter()
        .map(|f| (2.0 * std::f64::consts::PI * f * t).sin())
        .sum();
    (v * amplitude * 32767.0).round().clamp(-32768.0, 32767.0) as i16
}

/// A tone plan.
#[derive(Debug, Clone, PartialEq)]
pub struct ToneSpec {
    /// Frequencies summed (one or two usually).
    pub freqs: Vec<f64>,
    /// Amplitude of each frequency, as a fraction of full scale.
    pub amplitude: f64,
    /// (on ms, off ms) steps, played in order.
    pub cadence: Vec<(u32, u32)>,
    /// Repeat the cadence until stopped (or until `total_ms`).
    pub repeat: bool,
    /// Stop after this long, if set.
    pub total_ms: Option<u32>,
}

impl ToneSpec {
    /// North-American ringback: 440+480 Hz, 2 s on, 4 s off.
    pub fn ringback() -> Self {
        ToneSpec {
            freqs: vec![440.0, 480.0],
            amplitude: 0.1,
            cadence: vec![(2000, 4000)],
            repeat: true,
            total_ms: None,
        }
    }

    /// Busy: 480+620 Hz, 0.5 s on, 0.5 s off.
    pub fn busy() -> Self {
        ToneSpec {
            freqs: vec![480.0, 620.0],
            amplitude: 0.1,
            cadence: vec![(500, 500)],
            repeat: true,
            total_ms: None,
        }
    }

    /// A single beep.
    pub fn beep(freq: f64, ms: u32) -> Self {
        ToneSpec {
            freqs: vec![freq],
            amplitude: 0.3,
            cadence: vec![(ms, 0)],
            repeat: false,
            total_ms: None,
        }
    }

    /// In-band DTMF key (for peers that cannot take RFC 4733).
    pub fn dtmf(key: char, ms: u32) -> Option<Self> {
        let (r, c) = match key {
            '1' => (697.0, 1209.0),
            '2' => (697.0, 1336.0),
            '3' => (697.0, 1477.0),
            'A' => (697.0, 1633.0),
            '4' => (770.0, 1209.0),
            '5' => (770.0, 1336.0),
            '6' => (770.0, 1477.0),
            'B' => (770.0, 1633.0),
            '7' => (852.0, 1209.0),
            '8' => (852.0, 1336.0),
            '9' => (852.0, 1477.0),
            'C' => (852.0, 1633.0),
            '*' => (941.0, 1209.0),
            '0' => (941.0, 1336.0),
            '#' => (941.0, 1477.0),
            'D' => (941.0, 1633.0),
            _ => return None,
        };
        Some(ToneSpec {
            freqs: vec![r, c],
            amplitude: 0.2,
            cadence: vec![(ms, 60)],
            repeat: false,
            total_ms: None,
        })
    }
}

/// Plays a [`ToneSpec`] 20 ms at a time.
#[derive(Debug, Clone)]
pub struct ToneGenerator {
    spec: ToneSpec,
    sample: u64,
}

impl ToneGenerator {
    /// A generator at the start of its cadence.
    pub fn new(spec: ToneSpec) -> Self {
        ToneGenerator { spec, sample: 0 }
    }

    fn is_on(&self, i: u64) -> Option<bool> {
        let ms = i / 8;
        if self.spec.total_ms.is_some_and(|total| ms >= total as u64) {
            return None;
        }
        let period: u64 = self
            .spec
            .cadence
            .iter()
            .map(|(a, b)| (*a + *b) as u64)
            .sum();
        if period == 0 {
            return None;
        }
        let mut pos = if self.spec.repeat {
            ms % period
        } else if ms >= period {
            return None;
        } else {
            ms
        };
        for (on, off) in &self.spec.cadence {
            if pos < *on as u64 {
                return Some(true);
            }
            pos -= *on as u64;
            if pos < *off as u64 {
                return Some(false);
            }
            pos -= *off as u64;
        }
        Some(false)
    }
}

impl FrameSource for ToneGenerator {
    fn next_frame(&mut self) -> Option<Frame> {
        self.is_on(self.sample)?;
        let mut pcm = Vec::with_capacity(FRAME_SAMPLES);
        for _ in 0..FRAME_SAMPLES {
            let v = match self.is_on(self.sample) {
                Some(true) => sample(&self.spec.freqs, self.spec.amplitude, self.sample, 8000),
                _ => 0,
            };
            pcm.push(v);
            self.sample += 1;
        }
        Some(Frame::from_pcm(pcm))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::goertzel::{Goertzel, energy};

    #[test]
    fn busy_cadence_and_frequencies() {
        let mut g = ToneGenerator::new(ToneSpec {
            total_ms: Some(2000),
            ..ToneSpec::busy()
        });
        let frames: Vec<Frame> = std::iter::from_fn(|| g.next_frame()).collect();
        assert_eq!(frames.len(), 100);
        let on: Vec<bool> = frames.iter().map(|f| energy(&f.pcm) > 0.0).collect();
        assert!(
            on[..25].iter().all(|x| *x)
                && on[25..50].iter().all(|x| !*x)
                && on[50..75].iter().all(|x| *x)
        );
        let f = &frames[3].pcm;
        let e = energy(f);
        let p480 = Goertzel::new(480.0, 8000.0).relative_power(f, e);
        let p620 = Goertzel::new(620.0, 8000.0).relative_power(f, e);
        assert!(p480 > 0.35 && p620 > 0.35, "{p480} {p620}");
    }

    #[test]
    fn one_shot_beep_ends() {
        let mut g = ToneGenerator::new(ToneSpec::beep(1000.0, 100));
        assert_eq!(std::iter::from_fn(|| g.next_frame()).count(), 5);
        assert!(ToneSpec::dtmf('x', 100).is_none());
    }
}
