//! Time as domain code sees it.
//!
//! Nothing in the domain crates calls `Utc::now()` or `SystemTime::now()`: it asks a [`Clock`]. That
//! is what lets pacing, lease expiry and hours-of-operation logic run under a [`VirtualClock`] in
//! tests and in the simulator. SQL that depends on time takes `now` as a bound parameter from the
//! clock (SQLite has no server clock). With several nodes on PostgreSQL, [`DbClock`] follows the
//! database server's time so that nodes agree on expiry.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, TimeDelta, Utc};

/// A source of wall-clock time (UTC).
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;

    /// Milliseconds since the Unix epoch: the representation stored in the database.
    fn now_ms(&self) -> i64 {
        self.now().timestamp_millis()
    }
}

pub type SharedClock = Arc<dyn Clock>;

/// The machine's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that only moves when told to. Cloning shares the same time.
#[derive(Debug, Clone)]
pub struct VirtualClock(Arc<Mutex<DateTime<Utc>>>);

impl VirtualClock {
    pub fn new(start: DateTime<Utc>) -> Self {
        Self(Arc::new(Mutex::new(start)))
    }

    /// Starts at the given epoch milliseconds.
    pub fn at_ms(ms: i64) -> Self {
        Self::new(from_ms(ms))
    }

    pub fn set(&self, t: DateTime<Utc>) {
        *self.0.lock().expect("clock poisoned") = t;
    }

    pub fn advance(&self, by: std::time::Duration) {
        let mut t = self.0.lock().expect("clock poisoned");
        *t += TimeDelta::from_std(by).expect("duration in range");
    }
}

impl Clock for VirtualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().expect("clock poisoned")
    }
}

/// The machine's clock corrected by an offset to the database server's clock.
///
/// Reading the database on every `now()` would put a round trip in every hot path, so the offset is
/// measured by [`DbClock::sync`] (the driver calls it periodically) and applied locally. The error
/// is half the round-trip time of the last sync, typically well under a millisecond on a LAN.
const SYNC_SAMPLES: usize = 7;

#[derive(Debug, Default)]
pub struct DbClock {
    offset_ms: AtomicI64,
}

impl DbClock {
    pub fn new() -> Self {
        Self::default()
    }

    /// Measures the offset between the database's clock and ours; returns it in milliseconds.
    ///
    /// Takes several samples and keeps the one with the shortest round trip (as NTP does): a
    /// sample delayed by a busy server or a queue for a connection would otherwise shift the
    /// offset by half its delay, and nodes would disagree on expiry by that much.
    pub async fn sync(&self, db: &crate::Db) -> anyhow::Result<i64> {
        let mut best: Option<(i64, i64)> = None; // (round trip µs, offset ms)
        for _ in 0..SYNC_SAMPLES {
            let before = Utc::now().timestamp_micros();
            let Some(server_ms) = db.server_time_ms().await? else {
                return Ok(0);
            };
            let after = Utc::now().timestamp_micros();
            let rtt = after - before;
            let offset = server_ms - (before + after) / 2 / 1000;
            if best.is_none_or(|(r, _)| rtt < r) {
                best = Some((rtt, offset));
            }
        }
        let offset = best.map(|(_, o)| o).unwrap_or(0);
        self.offset_ms.store(offset, Ordering::Relaxed);
        Ok(offset)
    }

    pub fn offset_ms(&self) -> i64 {
        self.offset_ms.load(Ordering::Relaxed)
    }
}

impl Clock for DbClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + TimeDelta::milliseconds(self.offset_ms())
    }
}

/// Epoch milliseconds as a UTC time (the database's representation back to a time).
pub fn from_ms(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).expect("epoch milliseconds in range")
}

/// Epoch milliseconds as an RFC 3339 UTC string, the API's time format.
pub fn rfc3339_ms(ms: i64) -> String {
    from_ms(ms).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtual_clock_moves_only_when_told_and_clones_share_time() {
        let c = VirtualClock::at_ms(1_700_000_000_000);
        let c2 = c.clone();
        assert_eq!(c.now_ms(), 1_700_000_000_000);
        c.advance(std::time::Duration::from_millis(1500));
        assert_eq!(c2.now_ms(), 1_700_000_001_500);
        assert_eq!(rfc3339_ms(c2.now_ms()), "2023-11-14T22:13:21.500Z");
    }

    #[test]
    fn db_clock_applies_its_offset() {
        let c = DbClock::new();
        c.offset_ms.store(3_600_000, Ordering::Relaxed);
        let delta = c.now_ms() - Utc::now().timestamp_millis();
        assert!((3_599_000..=3_600_100).contains(&delta), "{delta}");
    }
}
