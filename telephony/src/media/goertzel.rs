//! The Goertzel algorithm: the power of one frequency in a block of samples, for DTMF and
//! beep detection. Evaluated at the exact target frequency (no bin rounding).

/// A precomputed single-frequency detector.
#[derive(Debug, Clone, Copy)]
pub struct Goertzel {
    coeff: f64,
    /// The frequency in Hz.
    pub freq: f64,
}

impl Goertzel {
    /// A detector for `freq` Hz at `rate` samples/s.
    pub fn new(freq: f64, rate: f64) -> Self {
        Goertzel {
            coeff: 2.0 * (2.0 * std::f64::consts::PI * freq / rate).cos(),
            freq,
        }
    }

    /// |X(f)|² over the block.
    pub fn power(&self, samples: &[i16]) -> f64 {
        let (mut s1, mut s2) = (0.0f64, 0.0f64);
        for &x in samples {
            let s0 = x as f64 + self.coeff * s1 - s2;
            s2 = s1;
            s1 = s0;
        }
        s1 * s1 + s2 * s2 - self.coeff * s1 * s2
    }

    /// The share of the block's energy at this frequency: 1.0 for a pure tone exactly at `freq`
    /// (over a block of whole-ish periods), near 0 for anything far away.
    pub fn relative_power(&self, samples: &[i16], energy: f64) -> f64 {
        if energy <= 0.0 || samples.is_empty() {
            return 0.0;
        }
        2.0 * self.power(samples) / (samples.len() as f64 * energy)
    }
}

/// Σx² of a block.
pub fn energy(samples: &[i16]) -> f64 {
    samples.iter().map(|&x| (x as f64) * (x as f64)).sum()
}

/// Root-mean-square level of a block.
pub fn rms(samples: &[i16]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    (energy(samples) / samples.len() as f64).sqrt()
}

/// Level in dB relative to a full-scale sine (RMS 23170).
pub fn dbfs(samples: &[i16]) -> f64 {
    20.0 * (rms(samples).max(1e-3) / 23170.0).log10()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(freq: f64, amp: f64, n: usize) -> Vec<i16> {
        (0..n)
            .map(|i| (amp * (2.0 * std::f64::consts::PI * freq * i as f64 / 8000.0).sin()) as i16)
            .collect()
    }

    #[test]
    fn pure_tone_is_found_and_others_rejected() {
        let x = tone(1000.0, 10000.0, 160);
        let e = energy(&x);
        let on = Goertzel::new(1000.0, 8000.0).relative_power(&x, e);
        let off = Goertzel::new(1200.0, 8000.0).relative_power(&x, e);
        assert!((on - 1.0).abs() < 0.05, "on {on}");
        assert!(off < 0.01, "off {off}");
        assert!((dbfs(&x) - 20.0 * (10000.0f64 / 32767.0).log10()).abs() < 0.3);
    }
}
