//! A media tap: hands copies of a call's audio frames to a consumer (ASR, streaming, analytics)
//! over a bounded channel. Media never waits for the consumer: when the channel is full the frame
//! is dropped and counted.

use std::time::Instant;

use tokio::sync::mpsc;

use super::recorder::Direction;

/// One tapped frame.
#[derive(Debug, Clone)]
pub struct TapFrame {
    /// Which way it went.
    pub direction: Direction,
    /// When it was played out / sent.
    pub at: Instant,
    /// 160 linear samples.
    pub pcm: Vec<i16>,
}

/// The producing end.
#[derive(Debug)]
pub struct MediaTap {
    tx: mpsc::Sender<TapFrame>,
    dropped: u64,
}

impl MediaTap {
    /// A tap holding up to `capacity` frames, and its consumer end.
    pub fn channel(capacity: usize) -> (MediaTap, mpsc::Receiver<TapFrame>) {
        let (tx, rx) = mpsc::channel(capacity);
        (MediaTap { tx, dropped: 0 }, rx)
    }

    /// Offers a frame; false once the consumer has gone away (the tap can be removed).
    pub fn offer(&mut self, direction: Direction, pcm: &[i16], at: Instant) -> bool {
        match self.tx.try_send(TapFrame {
            direction,
            at,
            pcm: pcm.to_vec(),
        }) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.dropped += 1;
                true
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Frames dropped because the consumer was slow.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_when_full_and_reports_closed() {
        let (mut tap, mut rx) = MediaTap::channel(2);
        let now = Instant::now();
        for _ in 0..3 {
            assert!(tap.offer(Direction::Inbound, &[1; 160], now));
        }
        assert_eq!(tap.dropped(), 1);
        assert_eq!(rx.try_recv().unwrap().pcm.len(), 160);
        drop(rx);
        assert!(!tap.offer(Direction::Outbound, &[1; 160], now));
    }
}
