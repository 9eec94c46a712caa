//! Running or draining: the appliance-wide switch for graceful shutdown.
//!
//! On SIGTERM the binary calls [`Lifecycle::start_draining`]. From then on every listener refuses
//! new work (SIP answers 503, `/readyz` answers 503) while work already in progress — each call is
//! held as a [`tokio_util::task::TaskTracker`] task — gets the configured drain time to finish.
//! Whatever remains is then told to end through [`Lifecycle::stop_token`] and must write its final
//! record before its task returns.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

#[derive(Clone, Default)]
pub struct Lifecycle {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    draining: AtomicBool,
    drain_started: CancellationToken,
    stop: CancellationToken,
    work: TaskTracker,
}

/// How a drain ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DrainOutcome {
    /// Everything in progress finished by itself within the drain time.
    Finished,
    /// The drain time ran out; the remaining work was told to stop and has written its records.
    Stopped,
}

impl Lifecycle {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn is_draining(&self) -> bool {
        self.inner.draining.load(Ordering::SeqCst)
    }

    /// Resolves when draining starts (listeners use it to stop accepting).
    pub fn draining(&self) -> tokio_util::sync::WaitForCancellationFuture<'_> {
        self.inner.drain_started.cancelled()
    }

    /// Cancelled when remaining work must end now (after the drain time).
    pub fn stop_token(&self) -> CancellationToken {
        self.inner.stop.clone()
    }

    /// Tracks a unit of work (a call, an import, a pacer) that must finish or be stopped.
    pub fn tracker(&self) -> &TaskTracker {
        &self.inner.work
    }

    pub fn start_draining(&self) {
        self.inner.draining.store(true, Ordering::SeqCst);
        self.inner.drain_started.cancel();
    }

    /// Starts draining, waits up to `drain` for tracked work, then stops what remains and waits up
    /// to `grace` for it to record its final state.
    pub async fn drain(&self, drain: Duration, grace: Duration) -> DrainOutcome {
        self.start_draining();
        self.inner.work.close();
        if tokio::time::timeout(drain, self.inner.work.wait())
            .await
            .is_ok()
        {
            return DrainOutcome::Finished;
        }
        self.inner.stop.cancel();
        if tokio::time::timeout(grace, self.inner.work.wait())
            .await
            .is_err()
        {
            tracing::error!(
                remaining = self.inner.work.len(),
                "work still running after the stop grace period"
            );
        }
        DrainOutcome::Stopped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn drain_waits_for_work_then_stops_the_rest() {
        let lc = Lifecycle::new();
        let quick = lc
            .tracker()
            .spawn(tokio::time::sleep(Duration::from_secs(1)));
        let stop = lc.stop_token();
        let (tx, rx) = tokio::sync::oneshot::channel();
        lc.tracker().spawn(async move {
            stop.cancelled().await;
            tx.send("recorded as interrupted").unwrap();
        });
        assert!(!lc.is_draining());
        let outcome = lc
            .drain(Duration::from_secs(5), Duration::from_secs(2))
            .await;
        assert!(lc.is_draining());
        assert_eq!(outcome, DrainOutcome::Stopped);
        assert!(quick.is_finished());
        assert_eq!(rx.await.unwrap(), "recorded as interrupted");
    }

    #[tokio::test(start_paused = true)]
    async fn drain_with_no_work_finishes_at_once() {
        let lc = Lifecycle::new();
        let t0 = tokio::time::Instant::now();
        assert_eq!(
            lc.drain(Duration::from_secs(5), Duration::from_secs(1))
                .await,
            DrainOutcome::Finished
        );
        assert!(t0.elapsed() < Duration::from_millis(10));
    }
}
