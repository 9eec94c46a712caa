//! VICIdial-style adaptive dial level (`AST_VDadapt.pl`, ADAPT_HARD_LIMIT flavour), kept as a
//! baseline: lines = level × (ready + talking agents); every second the ready agents and waiting
//! calls are sampled, every 15 s the level moves by the normalised differential of their 15-sample
//! averages, clamped to [1, max]; it is halved on a bad last minute and forced to 1.0 while the
//! day's drop rate is over the cap.

use std::collections::VecDeque;

use super::Ms;

#[derive(Debug, Clone)]
pub struct AdaptiveLevel {
    pub level: f64,
    max_level: f64,
    intensity: f64,
    samples: VecDeque<(f64, f64, f64)>,
    last_adjust: Option<Ms>,
}

impl AdaptiveLevel {
    pub fn new() -> Self {
        Self {
            level: 1.0,
            max_level: 3.0,
            intensity: 0.0,
            samples: VecDeque::new(),
            last_adjust: None,
        }
    }

    /// One 1-second sample: ready agents, calls waiting for an agent, agents counted.
    pub fn sample(&mut self, ready: u32, waiting: u32, agents: u32) {
        self.samples
            .push_back((ready as f64, waiting as f64, agents as f64));
        if self.samples.len() > 15 {
            self.samples.pop_front();
        }
    }

    /// Recomputes the level every 15 s. `today` and `last_minute` are (live answers, drops).
    pub fn adjust(
        &mut self,
        now: Ms,
        cap: f64,
        today: (u64, u64),
        last_minute: (u64, u64),
        dials_last_minute: u64,
    ) {
        if self.last_adjust.is_some_and(|t| now - t < 15_000) || self.samples.is_empty() {
            return;
        }
        self.last_adjust = Some(now);
        let n = self.samples.len() as f64;
        let ready = self.samples.iter().map(|s| s.0).sum::<f64>() / n;
        let waiting = self.samples.iter().map(|s| s.1).sum::<f64>() / n;
        let agents = self.samples.iter().map(|s| s.2).sum::<f64>() / n;
        let mut level = self.level;
        if agents > 0.0 {
            let mut diff_mul = (ready - waiting) / agents;
            if diff_mul < 0.0 {
                diff_mul *= (self.intensity - 1.0).abs();
            } else {
                diff_mul *= self.intensity + 1.0;
            }
            level *= 1.0 + diff_mul;
        }
        level = level.clamp(1.0, self.max_level);
        if dials_last_minute > 20
            && last_minute.0 > 0
            && last_minute.1 as f64 / last_minute.0 as f64 > 0.5
        {
            level /= 2.0;
        }
        if today.0 > 50 && today.1 as f64 / today.0 as f64 > cap {
            level = 1.0;
        }
        self.level = level.max(1.0);
    }
}

impl Default for AdaptiveLevel {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_rises_with_idle_agents_and_falls_to_one_over_the_cap() {
        let mut a = AdaptiveLevel::new();
        for _ in 0..15 {
            a.sample(5, 0, 10);
        }
        a.adjust(15_000, 0.03, (100, 0), (10, 0), 30);
        assert!((a.level - 1.5).abs() < 1e-9, "{}", a.level);
        a.adjust(20_000, 0.03, (100, 0), (10, 0), 30);
        assert!((a.level - 1.5).abs() < 1e-9, "adjusts only every 15 s");
        a.adjust(30_000, 0.03, (100, 5), (10, 0), 30);
        assert_eq!(a.level, 1.0);
    }
}
