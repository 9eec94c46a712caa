//! Queue position and estimated wait time (EWT) for announcements and the flow: pure functions
//! over what the ACD knows (the contact's place, the agents staffing the queue, recent handle
//! times). No clock: the ACD passes the figures it keeps.

use std::collections::VecDeque;

/// Handle times kept per queue for the estimate.
pub const RECENT_HANDLE_TIMES: usize = 20;

/// The average handle time assumed before a queue has handled anything (3 minutes).
pub const DEFAULT_AHT_MS: i64 = 180_000;

/// Where a waiting contact stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Estimate {
    pub queue: String,
    /// 1-based: 1 is the next contact to be served.
    pub position: usize,
    /// Estimated wait in ms; `None` when no agent staffs the queue (nobody can tell).
    pub wait_ms: Option<i64>,
    /// Being offered to an agent right now (not waiting).
    pub offered: bool,
}

/// The last [`RECENT_HANDLE_TIMES`] handle times (talk + after-contact work) of a queue.
#[derive(Debug, Clone, Default)]
pub struct HandleTimes(VecDeque<i64>);

impl HandleTimes {
    pub fn push(&mut self, ms: i64) {
        if self.0.len() == RECENT_HANDLE_TIMES {
            self.0.pop_front();
        }
        self.0.push_back(ms.max(0));
    }

    /// The mean of the recent handle times, or [`DEFAULT_AHT_MS`] before the first.
    pub fn average_ms(&self) -> i64 {
        if self.0.is_empty() {
            DEFAULT_AHT_MS
        } else {
            self.0.iter().sum::<i64>() / self.0.len() as i64
        }
    }
}

/// Estimated wait of the contact at 1-based `position` when `staffed` agents (logged in and
/// Available: idle or busy) serve the queue and a contact takes `aht_ms` on average: each agent
/// frees up once per AHT, so the `position`-th contact is reached after `position × AHT /
/// staffed`, less the time until the first agent is free when some are idle now. `None` with
/// no staffed agent.
pub fn estimated_wait_ms(position: usize, staffed: usize, idle: usize, aht_ms: i64) -> Option<i64> {
    if staffed == 0 {
        return None;
    }
    if position <= idle {
        return Some(0);
    }
    let ahead_of_busy = (position - idle) as i64;
    Some(ahead_of_busy * aht_ms.max(0) / staffed as i64)
}

/// Whole minutes for an announcement: rounded up, at least 1.
pub fn minutes_for(wait_ms: i64) -> i64 {
    ((wait_ms.max(0) + 59_999) / 60_000).max(1)
}

/// The words callers hear; `None` when there is nothing to say.
pub fn announcement_text(position: Option<usize>, wait_ms: Option<i64>) -> Option<String> {
    let mut parts = Vec::new();
    if let Some(p) = position {
        parts.push(format!("You are caller number {p}."));
    }
    if let Some(w) = wait_ms {
        let m = minutes_for(w);
        let unit = if m == 1 { "minute" } else { "minutes" };
        parts.push(format!("Your estimated wait is about {m} {unit}."));
    }
    (!parts.is_empty()).then(|| parts.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn average_is_the_recent_window() {
        let mut h = HandleTimes::default();
        assert_eq!(h.average_ms(), DEFAULT_AHT_MS);
        h.push(60_000);
        h.push(120_000);
        assert_eq!(h.average_ms(), 90_000);
        for _ in 0..RECENT_HANDLE_TIMES {
            h.push(30_000);
        }
        assert_eq!(h.average_ms(), 30_000, "old handle times leave the window");
    }

    #[test]
    fn estimate_scales_with_position_and_agents() {
        assert_eq!(estimated_wait_ms(1, 0, 0, 60_000), None);
        assert_eq!(estimated_wait_ms(1, 1, 0, 60_000), Some(60_000));
        assert_eq!(estimated_wait_ms(3, 1, 0, 60_000), Some(180_000));
        assert_eq!(estimated_wait_ms(3, 3, 0, 60_000), Some(60_000));
        assert_eq!(estimated_wait_ms(2, 2, 2, 60_000), Some(0));
        assert_eq!(estimated_wait_ms(3, 2, 1, 60_000), Some(60_000));
    }

    #[test]
    fn words() {
        assert_eq!(minutes_for(0), 1);
        assert_eq!(minutes_for(60_000), 1);
        assert_eq!(minutes_for(60_001), 2);
        assert_eq!(
            announcement_text(Some(2), Some(150_000)).as_deref(),
            Some("You are caller number 2. Your estimated wait is about 3 minutes.")
        );
        assert_eq!(
            announcement_text(None, Some(10_000)).as_deref(),
            Some("Your estimated wait is about 1 minute.")
        );
        assert_eq!(announcement_text(None, None), None);
    }
}
