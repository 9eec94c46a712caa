//! Online estimators the predictive pacer learns from live traffic, with exponential forgetting so
//! that they follow drift: the ringing-phase outcome/timing distribution of a dial
//! ([`AnswerModel`]) and lognormal fits of talk and wrap-up durations ([`LogNormalFit`]).

use super::stats::{phi, phi_inv};

/// Bin width of the answer-delay histogram (milliseconds).
const BIN_MS: i64 = 250;
/// Histogram horizon: ringing outcomes later than this fall in the last bin.
const BINS: usize = 480;

/// How the ringing phase of a dial ended, as far as pacing cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RingOutcome {
    /// A live person answered.
    Human,
    /// Anything else that ended the ringing phase: machine pick-up, busy, invalid, no answer.
    Other,
}

/// Time-binned distribution of the ringing phase: when dials end and whether a live person answered.
///
/// Weights decay per observation (half-life in observations), so the estimate tracks a drifting
/// answer rate. All queries interpolate linearly inside a bin.
#[derive(Debug, Clone)]
pub struct AnswerModel {
    human: Vec<f64>,
    other: Vec<f64>,
    weight: f64,
    growth: f64,
    count: u64,
    human_count: u64,
    // prefix sums, rebuilt by `refresh`
    hcum: Vec<f64>,
    ocum: Vec<f64>,
    dirty: bool,
}

impl AnswerModel {
    pub fn new(half_life_obs: f64) -> Self {
        Self {
            human: vec![0.0; BINS],
            other: vec![0.0; BINS],
            weight: 1.0,
            growth: 2f64.powf(1.0 / half_life_obs.max(1.0)),
            count: 0,
            human_count: 0,
            hcum: vec![0.0; BINS + 1],
            ocum: vec![0.0; BINS + 1],
            dirty: false,
        }
    }

    pub fn observe(&mut self, outcome: RingOutcome, after_ms: i64) {
        let b = ((after_ms.max(0) / BIN_MS) as usize).min(BINS - 1);
        self.weight *= self.growth;
        match outcome {
            RingOutcome::Human => {
                self.human[b] += self.weight;
                self.human_count += 1;
            }
            RingOutcome::Other => self.other[b] += self.weight,
        }
        self.count += 1;
        if self.weight > 1e200 {
            let s = 1.0 / self.weight;
            self.human
                .iter_mut()
                .chain(self.other.iter_mut())
                .for_each(|w| *w *= s);
            self.weight = 1.0;
        }
        self.dirty = true;
    }

    /// Rebuilds the prefix sums after new observations (cheap: one pass over the bins).
    pub fn refresh(&mut self) {
        if !self.dirty {
            return;
        }
        for b in 0..BINS {
            self.hcum[b + 1] = self.hcum[b] + self.human[b];
            self.ocum[b + 1] = self.ocum[b] + self.other[b];
        }
        self.dirty = false;
    }

    /// Resolved dials observed so far (unweighted).
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Live answers observed so far (unweighted).
    pub fn human_count(&self) -> u64 {
        self.human_count
    }

    fn total(&self) -> f64 {
        self.hcum[BINS] + self.ocum[BINS]
    }

    fn cum(v: &[f64], bins: &[f64], t_ms: f64) -> f64 {
        let x = (t_ms / BIN_MS as f64).max(0.0);
        let b = x.floor() as usize;
        if b >= BINS {
            return v[BINS];
        }
        v[b] + (x - b as f64) * bins[b]
    }

    /// Probability that a dial ends in a live answer (requires `refresh`).
    pub fn p_human(&self) -> f64 {
        let t = self.total();
        if t <= 0.0 { 0.0 } else { self.hcum[BINS] / t }
    }

    /// Mean time (ms) from placing a dial to the end of its ringing phase, any outcome.
    pub fn mean_ring_ms(&self) -> f64 {
        let t = self.total();
        if t <= 0.0 {
            return 0.0;
        }
        let s: f64 = (0..BINS)
            .map(|b| (self.human[b] + self.other[b]) * (b as f64 + 0.5) * BIN_MS as f64)
            .sum();
        s / t
    }

    /// P(a dial placed now is answered by a person within `h_ms`).
    pub fn human_by(&self, h_ms: f64) -> f64 {
        let t = self.total();
        if t <= 0.0 {
            0.0
        } else {
            Self::cum(&self.hcum, &self.human, h_ms) / t
        }
    }

    /// P(a still-ringing dial, `elapsed_ms` old, is answered by a person within the next `h_ms`).
    pub fn human_within(&self, elapsed_ms: f64, h_ms: f64) -> f64 {
        let h0 = Self::cum(&self.hcum, &self.human, elapsed_ms);
        let o0 = Self::cum(&self.ocum, &self.other, elapsed_ms);
        let at_risk = self.total() - h0 - o0;
        if at_risk <= self.total() * 1e-9 {
            return 0.0;
        }
        let h1 = Self::cum(&self.hcum, &self.human, elapsed_ms + h_ms);
        ((h1 - h0) / at_risk).clamp(0.0, 1.0)
    }

    /// `k` equally weighted quadrature points (ms) of the answer delay of a live answer:
    /// the conditional quantiles at (i + ½)/k.
    pub fn human_delay_points(&self, k: usize) -> Vec<f64> {
        let total_h = self.hcum[BINS];
        let mut out = Vec::with_capacity(k);
        if total_h <= 0.0 {
            return out;
        }
        let mut b = 0usize;
        for i in 0..k {
            let target = total_h * (i as f64 + 0.5) / k as f64;
            while b < BINS - 1 && self.hcum[b + 1] < target {
                b += 1;
            }
            let within = if self.human[b] > 0.0 {
                (target - self.hcum[b]) / self.human[b]
            } else {
                0.5
            };
            out.push((b as f64 + within.clamp(0.0, 1.0)) * BIN_MS as f64);
        }
        out
    }
}

/// Exponentially weighted fit of a lognormal law from the moments of ln(x).
#[derive(Debug, Clone)]
pub struct LogNormalFit {
    decay: f64,
    w: f64,
    s1: f64,
    s2: f64,
    count: u64,
}

impl LogNormalFit {
    pub fn new(half_life_obs: f64) -> Self {
        Self {
            decay: 0.5f64.powf(1.0 / half_life_obs.max(1.0)),
            w: 0.0,
            s1: 0.0,
            s2: 0.0,
            count: 0,
        }
    }

    pub fn observe(&mut self, x_ms: i64) {
        let l = (x_ms.max(1) as f64 / 1000.0).ln();
        self.w = self.w * self.decay + 1.0;
        self.s1 = self.s1 * self.decay + l;
        self.s2 = self.s2 * self.decay + l * l;
        self.count += 1;
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// Location of ln(x) (x in seconds).
    pub fn mu(&self) -> f64 {
        if self.w > 0.0 { self.s1 / self.w } else { 0.0 }
    }

    /// Scale of ln(x), floored to keep the law proper with few observations.
    pub fn sigma(&self) -> f64 {
        if self.w <= 0.0 {
            return 1.0;
        }
        let m = self.mu();
        (self.s2 / self.w - m * m).max(1e-4).sqrt()
    }

    /// Mean of the fitted law, in seconds.
    pub fn mean_s(&self) -> f64 {
        let s = self.sigma();
        (self.mu() + 0.5 * s * s).exp()
    }

    /// P(X ≤ x_s).
    pub fn cdf(&self, x_s: f64) -> f64 {
        if x_s <= 0.0 {
            return 0.0;
        }
        phi((x_s.ln() - self.mu()) / self.sigma())
    }

    /// P(X > x_s), accurate in the tail.
    pub fn sf(&self, x_s: f64) -> f64 {
        if x_s <= 0.0 {
            return 1.0;
        }
        phi(-(x_s.ln() - self.mu()) / self.sigma())
    }

    /// `k` equally weighted quadrature points (seconds) of the law.
    pub fn points(&self, k: usize) -> Vec<f64> {
        (0..k)
            .map(|i| (self.mu() + self.sigma() * phi_inv((i as f64 + 0.5) / k as f64)).exp())
            .collect()
    }
}

/// Lognormal fit of durations that corrects for censoring: the sample is the cohort of the last
/// `capacity` started intervals (calls or wrap-ups), finished ones exact, unfinished ones known only
/// to exceed their elapsed time. Fitted by EM on ln(duration). Unlike a fit of finished durations
/// only, this is not biased short at the start of a shift or after a change.
#[derive(Debug, Clone)]
pub struct CensoredLogNormal {
    capacity: usize,
    /// (key, start ms, duration ms if finished)
    cohort: std::collections::VecDeque<(u64, i64, Option<i64>)>,
    finished: u64,
    mu: f64,
    sigma: f64,
    fitted_at: Option<i64>,
    dirty: bool,
}

impl CensoredLogNormal {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(10),
            cohort: std::collections::VecDeque::new(),
            finished: 0,
            mu: 0.0,
            sigma: 1.0,
            fitted_at: None,
            dirty: false,
        }
    }

    pub fn start(&mut self, key: u64, now: i64) {
        self.cohort.push_back((key, now, None));
        if self.cohort.len() > self.capacity {
            self.cohort.pop_front();
        }
        self.dirty = true;
    }

    pub fn finish(&mut self, key: u64, now: i64) {
        if let Some(e) = self
            .cohort
            .iter_mut()
            .rev()
            .find(|e| e.0 == key && e.2.is_none())
        {
            e.2 = Some((now - e.1).max(1));
            self.finished += 1;
            self.dirty = true;
        }
    }

    /// An unfinished interval that will never finish (e.g. the agent logged out mid-call).
    pub fn forget(&mut self, key: u64) {
        if let Some(i) = self
            .cohort
            .iter()
            .rposition(|e| e.0 == key && e.2.is_none())
        {
            self.cohort.remove(i);
        }
    }

    /// Intervals finished so far.
    pub fn finished(&self) -> u64 {
        self.finished
    }

    /// Refits if something changed and at least `every_ms` passed since the last fit.
    pub fn refit(&mut self, now: i64, every_ms: i64) {
        if !self.dirty || self.fitted_at.is_some_and(|t| now - t < every_ms) {
            return;
        }
        self.fitted_at = Some(now);
        self.dirty = false;
        let mut exact = Vec::new();
        let mut censored = Vec::new();
        for &(_, start, dur) in &self.cohort {
            match dur {
                Some(d) => exact.push((d as f64 / 1000.0).ln()),
                None => censored.push((((now - start).max(1)) as f64 / 1000.0).ln()),
            }
        }
        if exact.len() < 2 {
            return;
        }
        let n = (exact.len() + censored.len()) as f64;
        let (se, se2) = exact
            .iter()
            .fold((0.0, 0.0), |(a, b), &l| (a + l, b + l * l));
        let mut mu = se / exact.len() as f64;
        let mut sigma = (se2 / exact.len() as f64 - mu * mu).max(1e-4).sqrt();
        for _ in 0..30 {
            let (mut s1, mut s2) = (se, se2);
            for &c in &censored {
                let a = (c - mu) / sigma;
                let tail = phi(-a).max(1e-300);
                let lam = (-0.5 * a * a).exp() / (2.0 * std::f64::consts::PI).sqrt() / tail;
                let ex = mu + sigma * lam;
                let ex2 = mu * mu + sigma * sigma + sigma * (c + mu) * lam;
                s1 += ex;
                s2 += ex2;
            }
            let new_mu = s1 / n;
            let new_sigma = (s2 / n - new_mu * new_mu).max(1e-4).sqrt();
            let done = (new_mu - mu).abs() < 1e-6 && (new_sigma - sigma).abs() < 1e-6;
            mu = new_mu;
            sigma = new_sigma;
            if done {
                break;
            }
        }
        self.mu = mu;
        self.sigma = sigma;
    }

    /// The current fit as a [`LogNormalFit`]-like view.
    pub fn law(&self) -> LogNormalLaw {
        LogNormalLaw {
            mu: self.mu,
            sigma: self.sigma,
        }
    }
}

/// A fixed lognormal law of durations in seconds.
#[derive(Debug, Clone, Copy)]
pub struct LogNormalLaw {
    pub mu: f64,
    pub sigma: f64,
}

impl LogNormalLaw {
    pub fn mean_s(&self) -> f64 {
        (self.mu + 0.5 * self.sigma * self.sigma).exp()
    }

    /// P(X > x_s), accurate in the tail.
    pub fn sf(&self, x_s: f64) -> f64 {
        if x_s <= 0.0 {
            return 1.0;
        }
        phi(-(x_s.ln() - self.mu) / self.sigma)
    }

    /// `k` equally weighted quadrature points (seconds).
    pub fn points(&self, k: usize) -> Vec<f64> {
        (0..k)
            .map(|i| (self.mu + self.sigma * phi_inv((i as f64 + 0.5) / k as f64)).exp())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answer_model_learns_rate_and_conditional_answer_probability() {
        let mut m = AnswerModel::new(1e9);
        // 20% humans at 10 s, 80% others at 25 s
        for i in 0..1000 {
            if i % 5 == 0 {
                m.observe(RingOutcome::Human, 10_000);
            } else {
                m.observe(RingOutcome::Other, 25_000);
            }
        }
        m.refresh();
        assert!((m.p_human() - 0.2).abs() < 1e-9);
        assert!(m.human_by(5_000.0) < 1e-9);
        assert!((m.human_by(11_000.0) - 0.2).abs() < 1e-9);
        // still ringing at 12 s: no human answer can come any more
        assert!(m.human_within(12_000.0, 20_000.0) < 1e-9);
        // at 2 s nothing is resolved yet: conditional = unconditional
        assert!((m.human_within(2_000.0, 10_000.0) - 0.2).abs() < 1e-9);
        let pts = m.human_delay_points(4);
        assert!(
            pts.iter().all(|&t| (10_000.0..10_250.0).contains(&t)),
            "{pts:?}"
        );
    }

    #[test]
    fn answer_model_forgets_old_traffic() {
        let mut m = AnswerModel::new(200.0);
        for _ in 0..2000 {
            m.observe(RingOutcome::Human, 8_000);
        }
        for _ in 0..2000 {
            m.observe(RingOutcome::Other, 25_000);
        }
        m.refresh();
        assert!(m.p_human() < 0.01, "{}", m.p_human());
    }

    #[test]
    fn censored_fit_is_not_biased_by_unfinished_long_intervals() {
        use rand::SeedableRng;
        use rand_distr::{Distribution, LogNormal};
        let law = LogNormal::from_mean_cv(180.0, 0.8).unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut f = CensoredLogNormal::new(2000);
        // 1000 intervals all starting at 0, observed at 200 s: only the short ones have finished
        let now = 200_000;
        let mut naive = LogNormalFit::new(1e9);
        for k in 0..1000u64 {
            f.start(k, 0);
            let d = (law.sample(&mut rng) * 1000.0) as i64;
            if d <= now {
                f.finish(k, d);
                naive.observe(d);
            }
        }
        f.refit(now, 0);
        let l = f.law();
        assert!(
            (l.mean_s() - 180.0).abs() < 15.0,
            "censored fit mean {}",
            l.mean_s()
        );
        assert!(naive.mean_s() < 120.0, "naive fit mean {}", naive.mean_s());
    }

    #[test]
    fn lognormal_fit_recovers_parameters() {
        let mut f = LogNormalFit::new(1e9);
        // a symmetric set of ln-values around ln(100) with sd 0.5
        for z in [-1.0, 1.0] {
            for _ in 0..100 {
                f.observe(((100f64.ln() + 0.5 * z).exp() * 1000.0) as i64);
            }
        }
        assert!((f.mu() - 100f64.ln()).abs() < 1e-3);
        assert!((f.sigma() - 0.5).abs() < 1e-3);
        assert!((f.cdf(100.0) - 0.5).abs() < 1e-3);
        assert!((f.cdf(60.0) + f.sf(60.0) - 1.0).abs() < 1e-9);
        assert_eq!(f.points(5).len(), 5);
    }
}
