//! Abandonment bookkeeping: live answers and abandoned calls over the campaign and over a trailing
//! window, giving the abandonment rate and the remaining "abandonment budget" (slack) the pacer may
//! still spend without breaking the cap in the window that ends now.

use std::collections::VecDeque;

use super::Ms;

#[derive(Debug, Clone)]
pub struct AbandonLedger {
    window_ms: Ms,
    answers: VecDeque<Ms>,
    abandons: VecDeque<Ms>,
    total_answers: u64,
    total_abandons: u64,
}

impl AbandonLedger {
    pub fn new(window_ms: Ms) -> Self {
        Self {
            window_ms,
            answers: VecDeque::new(),
            abandons: VecDeque::new(),
            total_answers: 0,
            total_abandons: 0,
        }
    }

    /// A live person answered (the denominator of the abandonment rate).
    pub fn record_answer(&mut self, now: Ms) {
        self.answers.push_back(now);
        self.total_answers += 1;
    }

    pub fn record_abandon(&mut self, now: Ms) {
        self.abandons.push_back(now);
        self.total_abandons += 1;
    }

    fn expire(&mut self, now: Ms) {
        let from = now - self.window_ms;
        while self.answers.front().is_some_and(|&t| t <= from) {
            self.answers.pop_front();
        }
        while self.abandons.front().is_some_and(|&t| t <= from) {
            self.abandons.pop_front();
        }
    }

    /// (live answers, abandons) in the trailing window ending at `now`.
    pub fn window_counts(&mut self, now: Ms) -> (u64, u64) {
        self.expire(now);
        (self.answers.len() as u64, self.abandons.len() as u64)
    }

    /// (live answers, abandons) since the start.
    pub fn totals(&self) -> (u64, u64) {
        (self.total_answers, self.total_abandons)
    }

    /// Abandons that may still happen in the trailing window before the rate exceeds `cap`
    /// (negative when it already does).
    pub fn slack(&mut self, now: Ms, cap: f64) -> f64 {
        let (a, b) = self.window_counts(now);
        cap * a as f64 - b as f64
    }

    /// The smallest slack over the coming window if no further abandon happens and live answers
    /// keep arriving at `answers_per_ms`: as the window slides, old answers leave it (the budget
    /// shrinks) and old abandons leave it (the budget grows). Checked at each answer or abandon that
    /// leaves the window, so it is exact for a constant arrival rate.
    pub fn projected_slack(&mut self, now: Ms, cap: f64, answers_per_ms: f64) -> f64 {
        self.expire(now);
        let mut a = self.answers.len() as f64;
        let mut b = self.abandons.len() as f64;
        let mut min = cap * a - b;
        let (mut i, mut j) = (0usize, 0usize);
        let from = now - self.window_ms;
        loop {
            let next_a = self.answers.get(i).copied();
            let next_b = self.abandons.get(j).copied();
            let t = match (next_a, next_b) {
                (Some(x), Some(y)) => x.min(y),
                (Some(x), None) => x,
                (None, Some(y)) => y,
                (None, None) => break,
            };
            // the event at t leaves the window at t + window, i.e. after (t - from) ms
            let arrived = answers_per_ms * (t - from) as f64;
            if next_a == Some(t) {
                a -= 1.0;
                i += 1;
                min = min.min(cap * (a + arrived) - b);
            } else {
                b -= 1.0;
                j += 1;
            }
        }
        min
    }

    /// (live answers, abandons) in the last `span_ms` (at most the window).
    pub fn recent_counts(&mut self, now: Ms, span_ms: Ms) -> (u64, u64) {
        self.expire(now);
        let from = now - span_ms;
        let a = self.answers.iter().rev().take_while(|&&t| t > from).count() as u64;
        let b = self
            .abandons
            .iter()
            .rev()
            .take_while(|&&t| t > from)
            .count() as u64;
        (a, b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_expires_old_events_and_slack_follows() {
        let mut l = AbandonLedger::new(3_600_000);
        for i in 0..100 {
            l.record_answer(i * 1000);
        }
        l.record_abandon(50_000);
        assert_eq!(l.window_counts(100_000), (100, 1));
        assert!((l.slack(100_000, 0.03) - 2.0).abs() < 1e-9);
        // an hour later the first 51 answers and the abandon have left the window
        assert_eq!(l.window_counts(3_650_000), (49, 0));
        assert_eq!(l.totals(), (100, 1));
        assert_eq!(l.recent_counts(3_650_000, 60_000), (0, 0));
        // no new answers: the budget melts as the answers leave the window before the abandon does
        let mut l = AbandonLedger::new(100_000);
        for i in 0..100 {
            l.record_answer(i * 1000);
        }
        l.record_abandon(99_000);
        let now = 99_500;
        assert!((l.slack(now, 0.03) - 2.0).abs() < 1e-9);
        assert!(l.projected_slack(now, 0.03, 0.0) < -0.9);
        // answers arriving as fast as they leave keep it
        assert!((l.projected_slack(now, 0.03, 0.001) - 2.0).abs() < 0.05);
    }
}
