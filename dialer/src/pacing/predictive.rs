//! The predictive decision: how many extra dials keep the abandonment probability of the marginal
//! call under a threshold, and the online loop that sets that threshold from the cap.
//!
//! Model (no offline parameters): a dial placed now is answered by a live person with probability
//! p after a delay drawn from the learnt answer-delay law. If it is answered at time τ it is
//! abandoned when the agents free by τ + window (idle agents now, plus each busy agent with the
//! probability of finishing talk + wrap by then given the time already spent, from the learnt
//! lognormal laws) do not outnumber the live answers that precede it (calls already waiting, each
//! ringing call with its conditional probability of a live answer by τ given how long it has rung,
//! and the other dials of this batch). The margin is a sum of independent Bernoulli terms; its law
//! is taken as normal. Averaged over τ this gives the probability that the k-th extra call of the
//! batch is abandoned; the pacer places calls while that stays under θ.
//!
//! θ is set online: the mean predicted abandonment probability of recent dials, calibrated by the
//! ratio of observed to predicted abandons, is steered to a target below the cap; and θ is cut back
//! as the abandonment budget of the trailing compliance window is consumed, down to progressive
//! dialing when one more abandon would breach the cap.

use super::stats::phi;

/// Number of quadrature points over the answer delay of the new call.
pub const DELAY_POINTS: usize = 8;
/// Number of quadrature points over the wrap-up duration of a talking agent.
pub const WRAP_POINTS: usize = 5;

/// Means and variances of agent supply and live-answer demand at each delay point.
#[derive(Debug, Clone, Default)]
pub struct Margin {
    /// answer delay of the new call at each point (ms)
    pub tau_ms: Vec<f64>,
    pub supply_mean: Vec<f64>,
    pub supply_var: Vec<f64>,
    pub demand_mean: Vec<f64>,
    pub demand_var: Vec<f64>,
    /// P(another dial of this batch is answered by a person before the point)
    pub batch_before: Vec<f64>,
}

impl Margin {
    pub fn new(tau_ms: Vec<f64>) -> Self {
        let n = tau_ms.len();
        Self {
            tau_ms,
            supply_mean: vec![0.0; n],
            supply_var: vec![0.0; n],
            demand_mean: vec![0.0; n],
            demand_var: vec![0.0; n],
            batch_before: vec![0.0; n],
        }
    }

    /// Probability that the `k`-th dial (1-based) of a batch placed now is abandoned if a person
    /// answers it.
    pub fn abandon_probability(&self, k: u32) -> f64 {
        let n = self.tau_ms.len();
        if n == 0 {
            return 1.0;
        }
        let others = (k - 1) as f64;
        let mut sum = 0.0;
        for i in 0..n {
            let g = self.batch_before[i];
            let mean = self.supply_mean[i] - self.demand_mean[i] - others * g;
            let var = self.supply_var[i] + self.demand_var[i] + others * g * (1.0 - g) + 1e-9;
            // P(margin ≤ 0) with a continuity correction
            sum += phi((0.5 - mean) / var.sqrt());
        }
        sum / n as f64
    }
}

/// Online setting of the marginal-abandonment threshold θ.
#[derive(Debug, Clone)]
pub struct ThresholdLoop {
    pub theta: f64,
    cap: f64,
    target: f64,
    // recent dials: EW mean of predicted abandonment probability
    dial_decay: f64,
    pred_w: f64,
    pred_s: f64,
    // calibration: predicted vs observed abandons among live answers
    cal_decay: f64,
    cal_pred: f64,
    cal_obs: f64,
}

/// Pseudo-count (abandons) pulling the calibration ratio towards 1 while evidence is thin.
const CAL_PRIOR: f64 = 3.0;
/// Per-tick gain of the θ loop (log scale).
const GAIN: f64 = 0.02;

impl ThresholdLoop {
    pub fn new(cap: f64, target_fraction: f64) -> Self {
        Self {
            theta: cap,
            cap,
            target: cap * target_fraction,
            dial_decay: 0.5f64.powf(1.0 / 200.0),
            pred_w: 0.0,
            pred_s: 0.0,
            cal_decay: 0.5f64.powf(1.0 / 1000.0),
            cal_pred: 0.0,
            cal_obs: 0.0,
        }
    }

    /// Sets the average abandonment rate the loop steers to.
    pub fn set_target(&mut self, rate: f64) {
        self.target = rate;
    }

    pub fn target(&self) -> f64 {
        self.target
    }

    pub fn on_dial(&mut self, predicted: f64) {
        self.pred_w = self.pred_w * self.dial_decay + 1.0;
        self.pred_s = self.pred_s * self.dial_decay + predicted;
    }

    pub fn on_live_answer(&mut self, predicted: f64) {
        self.cal_pred = self.cal_pred * self.cal_decay + predicted;
        self.cal_obs *= self.cal_decay;
    }

    pub fn on_abandon(&mut self) {
        self.cal_obs += 1.0;
    }

    /// Observed / predicted abandons, shrunk towards 1.
    pub fn calibration(&self) -> f64 {
        (self.cal_obs + CAL_PRIOR) / (self.cal_pred + CAL_PRIOR)
    }

    /// Calibrated abandonment rate the recent dials are expected to produce.
    pub fn expected_rate(&self) -> f64 {
        if self.pred_w <= 0.0 {
            0.0
        } else {
            self.calibration() * self.pred_s / self.pred_w
        }
    }

    /// One loop step (per pacing tick while predictive dialing is unconstrained).
    pub fn update(&mut self) {
        if self.pred_w < 20.0 {
            return;
        }
        let rate = self.expected_rate().max(self.target * 1e-3);
        let err = (self.target / rate).ln().clamp(-1.0, 1.0);
        self.theta = (self.theta * (GAIN * err).exp()).clamp(self.cap * 0.05, 0.5);
    }

    /// θ after the compliance-window guard (see [`guard_factor`]).
    pub fn effective(&self, slack: f64, budget: f64) -> f64 {
        self.theta * guard_factor(slack, budget)
    }
}

/// Share of θ usable with `slack` abandons of budget left in the trailing window (projected, after
/// the abandons expected from calls already ringing) when the whole window allows `budget`
/// abandons: all of it from [`guard_full`], tapering linearly to none (progressive only) at
/// [`guard_cut`].
pub fn guard_factor(slack: f64, budget: f64) -> f64 {
    let (cut, full) = (guard_cut(budget), guard_full(budget));
    ((slack - cut) / (full - cut).max(1e-9)).clamp(0.0, 1.0)
}

/// Budget (abandons) below which only progressive dialing is allowed: one abandon plus a reserve
/// for a burst of simultaneous abandons, which grows like the square root of the window budget
/// (1 + 0.75·√budget).
pub fn guard_cut(budget: f64) -> f64 {
    1.0 + 0.75 * budget.max(0.0).sqrt()
}

/// Budget (abandons) from which the guard leaves θ untouched: 2 + 1.5·√budget (≥ 3). Inside the
/// taper the pacer also bounds a bad case: the live answers the lines in flight will bring
/// (mean + 3 sd, from the ringing calls' conditional answer probabilities) beyond the ready agents
/// must fit in the remaining budget, as if no busy agent were to finish in time.
pub fn guard_full(budget: f64) -> f64 {
    (2.0 + 1.5 * budget.max(0.0).sqrt()).max(3.0)
}

/// z-score of the safety margin against the noise of abandons in a window.
pub const WINDOW_Z: f64 = 3.0;

/// Average abandonment rate to aim at so that a window with `answers` live answers stays under
/// `cap` with margin: the largest mean count x with x + z·√(D·x) ≤ cap·answers, as a rate, where D
/// is the overdispersion of abandons (variance / mean of their count; 1 for Poisson). Small windows
/// (small teams, low answer rates) and bursty abandons get a larger relative margin.
pub fn window_target(cap: f64, answers: f64, ceiling: f64, dispersion: f64) -> f64 {
    if answers <= 0.0 {
        return 0.0;
    }
    let budget = cap * answers;
    let zd = WINDOW_Z * dispersion.max(1.0).sqrt();
    let root = (-zd + (zd * zd + 4.0 * budget).sqrt()) / 2.0;
    (root * root / answers).min(cap * ceiling)
}

/// Online estimate of the overdispersion of abandons: variance / mean of the number of abandons
/// per 5-minute bin, exponentially weighted, shrunk towards 1 while there are few bins.
#[derive(Debug, Clone)]
pub struct Dispersion {
    bin_ms: i64,
    bin_start: Option<i64>,
    count: f64,
    decay: f64,
    w: f64,
    s1: f64,
    s2: f64,
}

impl Dispersion {
    pub fn new() -> Self {
        Self {
            bin_ms: 300_000,
            bin_start: None,
            count: 0.0,
            decay: 0.5f64.powf(1.0 / 24.0),
            w: 0.0,
            s1: 0.0,
            s2: 0.0,
        }
    }

    fn roll(&mut self, now: i64) {
        let start = *self.bin_start.get_or_insert(now);
        let mut start = start;
        while now - start >= self.bin_ms {
            self.w = self.w * self.decay + 1.0;
            self.s1 = self.s1 * self.decay + self.count;
            self.s2 = self.s2 * self.decay + self.count * self.count;
            self.count = 0.0;
            start += self.bin_ms;
        }
        self.bin_start = Some(start);
    }

    pub fn on_abandon(&mut self, now: i64) {
        self.roll(now);
        self.count += 1.0;
    }

    pub fn tick(&mut self, now: i64) {
        self.roll(now);
    }

    /// Variance / mean of abandons per bin (≥ 1).
    pub fn factor(&self) -> f64 {
        if self.w <= 0.0 || self.s1 <= 0.0 {
            return 1.0;
        }
        let mean = self.s1 / self.w;
        let var = (self.s2 / self.w - mean * mean).max(0.0) * self.w / (self.w - 1.0).max(1.0);
        let raw = (var / mean).max(1.0);
        // two pseudo-bins of Poisson behaviour
        (raw * self.w + 2.0) / (self.w + 2.0)
    }
}

impl Default for Dispersion {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abandon_probability_grows_with_batch_position_and_demand() {
        let mut m = Margin::new(vec![10_000.0; 2]);
        m.supply_mean = vec![3.0; 2];
        m.supply_var = vec![0.5; 2];
        m.demand_mean = vec![1.0; 2];
        m.demand_var = vec![0.2; 2];
        m.batch_before = vec![0.1; 2];
        let p1 = m.abandon_probability(1);
        let p10 = m.abandon_probability(10);
        let p30 = m.abandon_probability(30);
        assert!(p1 < 0.05, "{p1}");
        assert!(p1 < p10 && p10 < p30, "{p1} {p10} {p30}");
        m.demand_mean = vec![4.0; 2];
        assert!(m.abandon_probability(1) > 0.5);
    }

    #[test]
    fn dispersion_is_one_for_regular_and_large_for_bursty_abandons() {
        let mut regular = Dispersion::new();
        let mut bursty = Dispersion::new();
        for bin in 0..48i64 {
            let t = bin * 300_000 + 1;
            for _ in 0..3 {
                regular.on_abandon(t);
            }
            if bin % 4 == 0 {
                for _ in 0..12 {
                    bursty.on_abandon(t);
                }
            }
        }
        regular.tick(48 * 300_000 + 1);
        bursty.tick(48 * 300_000 + 1);
        assert!(regular.factor() < 1.1, "{}", regular.factor());
        assert!(bursty.factor() > 5.0, "{}", bursty.factor());
    }

    #[test]
    fn threshold_loop_tightens_when_abandons_exceed_prediction() {
        let mut l = ThresholdLoop::new(0.03, 0.9);
        let t0 = l.theta;
        for _ in 0..500 {
            l.on_dial(0.02);
            l.on_live_answer(0.02);
        }
        for _ in 0..30 {
            l.on_abandon();
        }
        for _ in 0..100 {
            l.update();
        }
        assert!(l.calibration() > 2.0);
        assert!(l.theta < t0);
        assert_eq!(l.effective(1.5, 4.0), 0.0);
        // a small window gets a larger relative margin than a big one
        let small = window_target(0.03, 100.0, 0.85, 1.0);
        let big = window_target(0.03, 2000.0, 0.85, 1.0);
        assert!(window_target(0.03, 2000.0, 0.85, 4.0) < big);
        assert!(small < big && big <= 0.03 * 0.85 + 1e-12, "{small} {big}");
        assert!(small > 0.0);
        assert_eq!(l.effective(5.0, 4.0), l.theta);
        assert!(guard_cut(100.0) > guard_cut(4.0) && guard_cut(100.0) < guard_full(100.0));
        assert!(guard_full(100.0) > guard_full(4.0));
    }
}
