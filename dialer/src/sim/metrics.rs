//! What the simulator measures: talk, wrap and logged-in time (split by agent-count segments),
//! live answers and abandons per second (for the worst rolling window), dials, and lines in flight
//! per agent (for the settling time after a change); and averaging of reports over seeds.

use super::{SegmentReport, SimConfig, SimReport};
use crate::pacing::Ms;

pub struct Recorder {
    end: Ms,
    window_ms: Ms,
    /// (start, agents) of each segment
    bounds: Vec<(Ms, u32)>,
    talk: Vec<f64>,
    wrap: Vec<f64>,
    logged: Vec<f64>,
    answers: Vec<u32>,
    abandons: Vec<u32>,
    lines_per_agent: Vec<f64>,
    dials: u64,
}

impl Recorder {
    pub fn new(end: Ms, window_ms: Ms, bounds: Vec<(Ms, u32)>) -> Self {
        let secs = (end / 1000 + 1) as usize;
        let n = bounds.len();
        Self {
            end,
            window_ms,
            bounds,
            talk: vec![0.0; n],
            wrap: vec![0.0; n],
            logged: vec![0.0; n],
            answers: vec![0; secs],
            abandons: vec![0; secs],
            lines_per_agent: vec![f64::NAN; secs],
            dials: 0,
        }
    }

    fn seg_end(&self, i: usize) -> Ms {
        self.bounds.get(i + 1).map_or(self.end, |b| b.0)
    }

    fn split(&self, acc: &mut [f64], from: Ms, to: Ms) {
        let to = to.min(self.end);
        for (i, a) in acc.iter_mut().enumerate().take(self.bounds.len()) {
            let (s, e) = (self.bounds[i].0, self.seg_end(i));
            let overlap = to.min(e) - from.max(s);
            if overlap > 0 {
                *a += overlap as f64;
            }
        }
    }

    pub fn talk(&mut self, from: Ms, to: Ms) {
        let mut acc = std::mem::take(&mut self.talk);
        self.split(&mut acc, from, to);
        self.talk = acc;
    }

    pub fn wrap(&mut self, from: Ms, to: Ms) {
        let mut acc = std::mem::take(&mut self.wrap);
        self.split(&mut acc, from, to);
        self.wrap = acc;
    }

    pub fn logged(&mut self, from: Ms, to: Ms) {
        let mut acc = std::mem::take(&mut self.logged);
        self.split(&mut acc, from, to);
        self.logged = acc;
    }

    pub fn dial(&mut self) {
        self.dials += 1;
    }

    pub fn answer(&mut self, now: Ms) {
        let i = (now / 1000) as usize;
        if i < self.answers.len() {
            self.answers[i] += 1;
        }
    }

    pub fn abandon(&mut self, now: Ms) {
        let i = (now / 1000) as usize;
        if i < self.abandons.len() {
            self.abandons[i] += 1;
        }
    }

    pub fn sample_lines(&mut self, now: Ms, lines: u32, agents: u32) {
        let i = (now / 1000) as usize;
        if i < self.lines_per_agent.len() && agents > 0 {
            self.lines_per_agent[i] = lines as f64 / agents as f64;
        }
    }

    pub fn report(&self, cfg: &SimConfig) -> SimReport {
        let sum = |v: &[f64]| v.iter().sum::<f64>();
        let logged_ms = sum(&self.logged);
        let agent_hours = logged_ms / 3_600_000.0;
        let answers: u64 = self.answers.iter().map(|&x| x as u64).sum();
        let abandons: u64 = self.abandons.iter().map(|&x| x as u64).sum();
        let per_ah = |x: f64| {
            if agent_hours > 0.0 {
                x / agent_hours
            } else {
                0.0
            }
        };
        let windows = window_rates(
            &self.answers,
            &self.abandons,
            (self.window_ms / 1000) as usize,
        );
        let segments = (0..self.bounds.len())
            .map(|i| {
                let (s, e) = (self.bounds[i].0, self.seg_end(i));
                let (si, ei) = (
                    (s / 1000) as usize,
                    ((e / 1000) as usize).min(self.answers.len()),
                );
                let a: u64 = self.answers[si..ei].iter().map(|&x| x as u64).sum();
                let b: u64 = self.abandons[si..ei].iter().map(|&x| x as u64).sum();
                let wmax = windows
                    .iter()
                    .filter(|(end, _)| *end >= si && *end < ei)
                    .map(|w| w.1)
                    .fold(0.0, f64::max);
                SegmentReport {
                    from_hours: s as f64 / 3_600_000.0,
                    to_hours: e as f64 / 3_600_000.0,
                    agents: self.bounds[i].1,
                    talk_min_per_agent_hour: if self.logged[i] > 0.0 {
                        60.0 * self.talk[i] / self.logged[i]
                    } else {
                        0.0
                    },
                    abandon_rate: if a > 0 { b as f64 / a as f64 } else { 0.0 },
                    max_window_abandon_rate: wmax,
                    settle_s: if i == 0 {
                        0.0
                    } else {
                        settle_time(&self.lines_per_agent[si..ei])
                    },
                }
            })
            .collect();
        SimReport {
            mode: cfg.mode.name(),
            agents: cfg.agents,
            answer_rate: cfg.answer_rate,
            hours: cfg.hours,
            seeds: 1,
            talk_min_per_agent_hour: if logged_ms > 0.0 {
                60.0 * sum(&self.talk) / logged_ms
            } else {
                0.0
            },
            occupancy: if logged_ms > 0.0 {
                (sum(&self.talk) + sum(&self.wrap)) / logged_ms
            } else {
                0.0
            },
            abandon_rate: if answers > 0 {
                abandons as f64 / answers as f64
            } else {
                0.0
            },
            max_window_abandon_rate: windows.iter().map(|w| w.1).fold(0.0, f64::max),
            max_window_abandon_rate_any_seed: windows.iter().map(|w| w.1).fold(0.0, f64::max),
            dials_per_agent_hour: per_ah(self.dials as f64),
            live_answers_per_agent_hour: per_ah(answers as f64),
            dials: self.dials as f64,
            live_answers: answers as f64,
            abandons: abandons as f64,
            agent_hours,
            segments,
        }
    }
}

/// Abandonment rate of every full window of `w` seconds, as (last second, rate), sliding by one
/// second. A shift shorter than the window is judged as one window over the whole shift.
pub fn window_rates(answers: &[u32], abandons: &[u32], w: usize) -> Vec<(usize, f64)> {
    let n = answers.len();
    let mut pa = vec![0u64; n + 1];
    let mut pb = vec![0u64; n + 1];
    for i in 0..n {
        pa[i + 1] = pa[i] + answers[i] as u64;
        pb[i + 1] = pb[i] + abandons[i] as u64;
    }
    let w = w.clamp(1, n.max(1));
    (w..=n)
        .map(|end| {
            let a = pa[end] - pa[end - w];
            let b = pb[end] - pb[end - w];
            (
                end - 1,
                if a > 0 {
                    b as f64 / a as f64
                } else if b > 0 {
                    1.0
                } else {
                    0.0
                },
            )
        })
        .collect()
}

/// Seconds from the start of a segment until the lines in flight per available agent first come
/// within 25% of the segment's steady level (the median of its 10-s bins after the first 10
/// minutes), in 10-s bins.
pub fn settle_time(lines_per_agent: &[f64]) -> f64 {
    let bins: Vec<f64> = lines_per_agent
        .chunks(10)
        .map(|c| {
            let v: Vec<f64> = c.iter().copied().filter(|x| x.is_finite()).collect();
            if v.is_empty() {
                f64::NAN
            } else {
                v.iter().sum::<f64>() / v.len() as f64
            }
        })
        .collect();
    if bins.len() < 61 {
        return f64::NAN;
    }
    let mut steady: Vec<f64> = bins[60..]
        .iter()
        .copied()
        .filter(|x| x.is_finite())
        .collect();
    if steady.is_empty() {
        return f64::NAN;
    }
    steady.sort_by(f64::total_cmp);
    let level = steady[steady.len() / 2];
    bins.iter()
        .position(|&x| (x - level).abs() <= 0.25 * level.max(1e-9))
        .map_or(f64::NAN, |i| (i * 10) as f64)
}

/// Mean of per-seed reports (worst windows: mean of each seed's worst, and the worst of all).
pub fn mean_report(reports: &[SimReport]) -> SimReport {
    let n = reports.len().max(1) as f64;
    let mean = |f: &dyn Fn(&SimReport) -> f64| reports.iter().map(f).sum::<f64>() / n;
    let first = reports.first().cloned().unwrap_or_default();
    let segments = (0..first.segments.len())
        .map(|i| {
            let seg = |f: &dyn Fn(&SegmentReport) -> f64| {
                reports.iter().map(|r| f(&r.segments[i])).sum::<f64>() / n
            };
            SegmentReport {
                from_hours: first.segments[i].from_hours,
                to_hours: first.segments[i].to_hours,
                agents: first.segments[i].agents,
                talk_min_per_agent_hour: seg(&|s| s.talk_min_per_agent_hour),
                abandon_rate: seg(&|s| s.abandon_rate),
                max_window_abandon_rate: reports
                    .iter()
                    .map(|r| r.segments[i].max_window_abandon_rate)
                    .fold(0.0, f64::max),
                settle_s: seg(&|s| s.settle_s),
            }
        })
        .collect();
    SimReport {
        mode: first.mode.clone(),
        agents: first.agents,
        answer_rate: first.answer_rate,
        hours: first.hours,
        seeds: reports.len() as u32,
        talk_min_per_agent_hour: mean(&|r| r.talk_min_per_agent_hour),
        occupancy: mean(&|r| r.occupancy),
        abandon_rate: mean(&|r| r.abandon_rate),
        max_window_abandon_rate: mean(&|r| r.max_window_abandon_rate),
        max_window_abandon_rate_any_seed: reports
            .iter()
            .map(|r| r.max_window_abandon_rate_any_seed)
            .fold(0.0, f64::max),
        dials_per_agent_hour: mean(&|r| r.dials_per_agent_hour),
        live_answers_per_agent_hour: mean(&|r| r.live_answers_per_agent_hour),
        dials: mean(&|r| r.dials),
        live_answers: mean(&|r| r.live_answers),
        abandons: mean(&|r| r.abandons),
        agent_hours: mean(&|r| r.agent_hours),
        segments,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_rates_slide_by_the_second() {
        let mut a = vec![0u32; 10];
        let mut b = vec![0u32; 10];
        a[0] = 10;
        b[0] = 1;
        a[5] = 10;
        let w = window_rates(&a, &b, 5);
        assert_eq!(w.len(), 6);
        assert_eq!(w[0], (4, 0.1));
        assert_eq!(w[1], (5, 0.0));
        // with abandons but no answers in a window the rate counts as 100%
        let w = window_rates(&[0, 0], &[1, 0], 1);
        assert_eq!(w[0].1, 1.0);
    }

    #[test]
    fn settle_time_finds_the_first_stable_minute() {
        let mut v = vec![3.0; 120];
        v.extend(vec![1.0; 1200]);
        assert_eq!(settle_time(&v), 120.0);
        assert!(settle_time(&[1.0; 100]).is_nan());
    }
}
