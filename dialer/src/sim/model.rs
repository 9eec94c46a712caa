//! The stochastic call model of the reference (§4.1 and acceptance item 4): what happens to a dial,
//! and how long agents talk and wrap up.

use rand::Rng;
use rand_distr::{Distribution, LogNormal};
use serde::{Deserialize, Serialize};

/// Parameters of the call model; the defaults are the reference model.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CallModel {
    /// Share of dials picked up by an answering machine.
    pub machine_share: f64,
    /// Share of dials that are busy or invalid.
    pub busy_share: f64,
    /// Pick-up delay of people and machines, uniform in [min, max] seconds.
    pub answer_delay_min_s: f64,
    pub answer_delay_max_s: f64,
    /// Machine detected and released this long after pick-up.
    pub machine_detect_s: f64,
    /// Busy/invalid released after this long.
    pub busy_release_s: f64,
    /// Unanswered dials are released after this long.
    pub no_answer_s: f64,
    /// A live answer not connected to an agent within this is abandoned.
    pub abandon_window_s: f64,
    pub talk_mean_s: f64,
    pub talk_cv: f64,
    pub wrap_mean_s: f64,
    pub wrap_cv: f64,
}

impl Default for CallModel {
    fn default() -> Self {
        Self {
            machine_share: 0.2,
            busy_share: 0.1,
            answer_delay_min_s: 5.0,
            answer_delay_max_s: 20.0,
            machine_detect_s: 3.0,
            busy_release_s: 4.0,
            no_answer_s: 25.0,
            abandon_window_s: 2.0,
            talk_mean_s: 180.0,
            talk_cv: 0.8,
            wrap_mean_s: 15.0,
            wrap_cv: 0.5,
        }
    }
}

/// How the ringing phase of one dial ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialOutcome {
    /// A person answers after this many ms.
    Human(i64),
    /// A machine picks up after this many ms (detected and released `machine_detect_s` later).
    Machine(i64),
    /// Busy/invalid, released after this many ms.
    Busy(i64),
    /// Rings out after this many ms.
    NoAnswer(i64),
}

/// Samplers built from a [`CallModel`].
#[derive(Debug, Clone)]
pub struct Sampler {
    model: CallModel,
    talk: LogNormal<f64>,
    wrap: LogNormal<f64>,
}

fn s_to_ms(s: f64) -> i64 {
    (s * 1000.0).round() as i64
}

impl Sampler {
    pub fn new(model: CallModel) -> Self {
        let talk = LogNormal::from_mean_cv(model.talk_mean_s, model.talk_cv).expect("talk law");
        let wrap = LogNormal::from_mean_cv(model.wrap_mean_s, model.wrap_cv).expect("wrap law");
        Self { model, talk, wrap }
    }

    pub fn model(&self) -> &CallModel {
        &self.model
    }

    /// Outcome of one dial when the live-answer probability is `p_human`.
    pub fn dial<R: Rng>(&self, rng: &mut R, p_human: f64) -> DialOutcome {
        let m = &self.model;
        let u: f64 = rng.random();
        let delay = rng.random_range(m.answer_delay_min_s..=m.answer_delay_max_s);
        if u < p_human {
            DialOutcome::Human(s_to_ms(delay))
        } else if u < p_human + m.machine_share {
            DialOutcome::Machine(s_to_ms(delay))
        } else if u < p_human + m.machine_share + m.busy_share {
            DialOutcome::Busy(s_to_ms(m.busy_release_s))
        } else {
            DialOutcome::NoAnswer(s_to_ms(m.no_answer_s))
        }
    }

    pub fn talk_ms<R: Rng>(&self, rng: &mut R) -> i64 {
        s_to_ms(self.talk.sample(rng)).max(1)
    }

    pub fn wrap_ms<R: Rng>(&self, rng: &mut R) -> i64 {
        s_to_ms(self.wrap.sample(rng)).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn outcome_shares_and_durations_follow_the_model() {
        let s = Sampler::new(CallModel::default());
        let mut rng = StdRng::seed_from_u64(1);
        let n = 200_000;
        let (mut h, mut m, mut b, mut na) = (0, 0, 0, 0);
        for _ in 0..n {
            match s.dial(&mut rng, 0.2) {
                DialOutcome::Human(t) => {
                    assert!((5_000..=20_000).contains(&t));
                    h += 1
                }
                DialOutcome::Machine(_) => m += 1,
                DialOutcome::Busy(t) => {
                    assert_eq!(t, 4_000);
                    b += 1
                }
                DialOutcome::NoAnswer(t) => {
                    assert_eq!(t, 25_000);
                    na += 1
                }
            }
        }
        let f = |x: i32| x as f64 / n as f64;
        assert!((f(h) - 0.2).abs() < 0.005 && (f(m) - 0.2).abs() < 0.005);
        assert!((f(b) - 0.1).abs() < 0.005 && (f(na) - 0.5).abs() < 0.005);
        let talks: Vec<f64> = (0..n)
            .map(|_| s.talk_ms(&mut rng) as f64 / 1000.0)
            .collect();
        let mean = talks.iter().sum::<f64>() / n as f64;
        let sd = (talks.iter().map(|t| (t - mean).powi(2)).sum::<f64>() / n as f64).sqrt();
        assert!((mean - 180.0).abs() < 3.0, "{mean}");
        assert!((sd / mean - 0.8).abs() < 0.03, "{}", sd / mean);
    }
}
