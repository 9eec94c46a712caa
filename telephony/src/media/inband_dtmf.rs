//! In-band DTMF detection (the fallback when a peer sends key tones as audio instead of RFC 4733):
//! Goertzel power at the 4 row and 4 column frequencies per 20 ms frame, with purity, twist and
//! "second strongest" checks; a key is reported once when it holds for two frames, and released
//! after two frames without it.

use super::goertzel::{Goertzel, energy};

const ROWS: [f64; 4] = [697.0, 770.0, 852.0, 941.0];
const COLS: [f64; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
const KEYS: [[char; 4]; 4] = [
    ['1', '2', '3', 'A'],
    ['4', '5', '6', 'B'],
    ['7', '8', '9', 'C'],
    ['*', '0', '#', 'D'],
];

/// Detection thresholds.
#[derive(Debug, Clone, Copy)]
pub struct InbandDtmfConfig {
    /// Frames quieter than this RMS are not examined.
    pub min_rms: f64,
    /// Share of the frame's energy the two tones must carry together.
    pub min_purity: f64,
    /// Largest row/column power ratio (either way); 6.3 ≈ 8 dB of twist.
    pub max_twist: f64,
    /// The runner-up row (or column) must be below this fraction of the winner.
    pub max_runner_up: f64,
    /// Consecutive frames needed to report a key.
    pub on_frames: u32,
    /// Consecutive frames without it before the same key can be reported again.
    pub off_frames: u32,
}

impl Default for InbandDtmfConfig {
    fn default() -> Self {
        InbandDtmfConfig {
            min_rms: 150.0,
            min_purity: 0.7,
            max_twist: 6.3,
            max_runner_up: 0.25,
            on_frames: 2,
            off_frames: 2,
        }
    }
}

/// The detector state.
#[derive(Debug)]
pub struct InbandDtmfDetector {
    config: InbandDtmfConfig,
    rows: [Goertzel; 4],
    cols: [Goertzel; 4],
    candidate: Option<char>,
    count: u32,
    reported: Option<char>,
    off: u32,
}

impl InbandDtmfDetector {
    /// A detector for 8 kHz audio.
    pub fn new(config: InbandDtmfConfig) -> Self {
        InbandDtmfDetector {
            config,
            rows: ROWS.map(|f| Goertzel::new(f, 8000.0)),
            cols: COLS.map(|f| Goertzel::new(f, 8000.0)),
            candidate: None,
            count: 0,
            reported: None,
            off: 0,
        }
    }

    /// The key present in one frame, if any (no history).
    pub fn classify(&self, frame: &[i16]) -> Option<char> {
        let e = energy(frame);
        if frame.is_empty() || (e / frame.len() as f64).sqrt() < self.config.min_rms {
            return None;
        }
        let r: Vec<f64> = self
            .rows
            .iter()
            .map(|g| g.relative_power(frame, e))
            .collect();
        let c: Vec<f64> = self
            .cols
            .iter()
            .map(|g| g.relative_power(frame, e))
            .collect();
        let (ri, rp, r2) = best_two(&r);
        let (ci, cp, c2) = best_two(&c);
        let cfg = &self.config;
        if rp + cp < cfg.min_purity
            || rp > cp * cfg.max_twist
            || cp > rp * cfg.max_twist
            || r2 > rp * cfg.max_runner_up
            || c2 > cp * cfg.max_runner_up
        {
            return None;
        }
        Some(KEYS[ri][ci])
    }

    /// Feeds one frame; returns a key when a press is recognised (once per press).
    pub fn push(&mut self, frame: &[i16]) -> Option<char> {
        let key = self.classify(frame);
        match key {
            Some(k) => {
                self.off = 0;
                if self.candidate == Some(k) {
                    self.count += 1;
                } else {
                    self.candidate = Some(k);
                    self.count = 1;
                }
                if self.count >= self.config.on_frames && self.reported != Some(k) {
                    self.reported = Some(k);
                    return Some(k);
                }
            }
            None => {
                self.off += 1;
                self.candidate = None;
                self.count = 0;
                if self.off >= self.config.off_frames {
                    self.reported = None;
                }
            }
        }
        None
    }
}

fn best_two(p: &[f64]) -> (usize, f64, f64) {
    let mut idx = 0;
    for i in 1..p.len() {
        if p[i] > p[idx] {
            idx = i;
        }
    }
    let second = p
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != idx)
        .map(|(_, v)| *v)
        .fold(0.0, f64::max);
    (idx, p[idx], second)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::tone::dual_tone;

    fn frames(samples: &[i16]) -> impl Iterator<Item = &[i16]> {
        samples.chunks(160)
    }

    #[test]
    fn detects_every_key_once() {
        let mut det = InbandDtmfDetector::new(InbandDtmfConfig::default());
        let mut audio = Vec::new();
        let keys = "123A456B789C*0#D55";
        for k in keys.chars() {
            let (r, c) = key_freqs(k);
            audio.extend(dual_tone(r, c, 8000, 0.25, 100));
            audio.extend(std::iter::repeat_n(0i16, 8 * 70)); // 70 ms pause
        }
        let got: String = frames(&audio).filter_map(|f| det.push(f)).collect();
        assert_eq!(got, keys);
    }

    #[test]
    fn single_tones_and_speechlike_noise_are_not_keys() {
        let det = InbandDtmfDetector::new(InbandDtmfConfig::default());
        let one: Vec<i16> = dual_tone(697.0, 697.0, 8000, 0.4, 20);
        assert_eq!(det.classify(&one), None);
        let mut x: u32 = 12345;
        let noise: Vec<i16> = (0..160)
            .map(|_| {
                x = x.wrapping_mul(1103515245).wrapping_add(12345);
                ((x >> 16) as i16) / 4
            })
            .collect();
        assert_eq!(det.classify(&noise), None);
    }

    fn key_freqs(k: char) -> (f64, f64) {
        for (ri, row) in KEYS.iter().enumerate() {
            if let Some(ci) = row.iter().position(|c| *c == k) {
                return (ROWS[ri], COLS[ci]);
            }
        }
        panic!("{k}")
    }
}
