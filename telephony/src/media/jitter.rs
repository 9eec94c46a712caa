//! A small fixed-delay jitter buffer for 20 ms audio frames, ordered by extended sequence number.
//!
//! Packets are pushed as they arrive (any order, duplicates allowed); the playout clock calls
//! [`JitterBuffer::pop`] once per frame interval. Playout starts once `depth` frames are buffered,
//! a missing frame is reported as [`Playout::Lost`] (the caller conceals it) when a later one is
//! already there, late frames are dropped, and an empty buffer re-primes (a tail shorter than the
//! depth still plays after `depth` intervals).

use std::collections::BTreeMap;

/// One buffered frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Buffered<T> {
    /// Extended sequence number ([`super::source::SourceState`]).
    pub seq: u64,
    /// RTP timestamp.
    pub timestamp: u32,
    /// The payload (already decoded or still encoded: the buffer does not care).
    pub item: T,
}

/// What the playout clock gets for one frame interval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Playout<T> {
    /// The next frame in order.
    Frame(Buffered<T>),
    /// The frame with this sequence number never arrived (in time).
    Lost(u64),
    /// Nothing to play (not primed yet, or ran dry).
    Empty,
}

/// Counters for monitoring.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JitterStats {
    /// Frames dropped because they arrived after their playout time.
    pub late: u64,
    /// Frames dropped because they were already buffered or played.
    pub duplicate: u64,
    /// Frames reported lost.
    pub lost: u64,
    /// Frames dropped because the buffer overflowed.
    pub overflow: u64,
}

/// The buffer.
#[derive(Debug)]
pub struct JitterBuffer<T> {
    depth: usize,
    max: usize,
    frames: BTreeMap<u64, Buffered<T>>,
    next: Option<u64>,
    primed: bool,
    waited: usize,
    stats: JitterStats,
}

impl<T> JitterBuffer<T> {
    /// A buffer that delays playout by `depth` frames and never holds more than `max`.
    pub fn new(depth: usize, max: usize) -> Self {
        assert!(
            depth >= 1 && max >= depth,
            "jitter buffer depth {depth} max {max}"
        );
        JitterBuffer {
            depth,
            max,
            frames: BTreeMap::new(),
            next: None,
            primed: false,
            waited: 0,
            stats: JitterStats::default(),
        }
    }

    /// Buffers one frame.
    pub fn push(&mut self, seq: u64, timestamp: u32, item: T) {
        if self.next.is_some_and(|next| seq < next) {
            self.stats.late += 1;
            return;
        }
        if self.frames.contains_key(&seq) {
            self.stats.duplicate += 1;
            return;
        }
        self.frames.insert(
            seq,
            Buffered {
                seq,
                timestamp,
                item,
            },
        );
        while self.frames.len() > self.max {
            // Too far behind: skip the oldest.
            let (&first, _) = self.frames.iter().next().expect("non-empty");
            self.frames.remove(&first);
            self.stats.overflow += 1;
            self.next = Some(first + 1);
        }
        if !self.primed && self.frames.len() >= self.depth {
            self.primed = true;
            self.waited = 0;
        }
    }

    /// The frame for the next playout interval.
    pub fn pop(&mut self) -> Playout<T> {
        if !self.primed {
            // Not enough buffered yet; but don't hold a stream's last frames forever: after
            // `depth` intervals of waiting, play what is there.
            if self.frames.is_empty() {
                self.waited = 0;
                return Playout::Empty;
            }
            self.waited += 1;
            if self.waited < self.depth {
                return Playout::Empty;
            }
            self.primed = true;
        }
        let Some((&first, _)) = self.frames.iter().next() else {
            // Ran dry: wait for `depth` frames again before resuming.
            self.primed = false;
            self.waited = 0;
            return Playout::Empty;
        };
        let next = self.next.unwrap_or(first);
        if first == next {
            self.next = Some(next + 1);
            let f = self.frames.remove(&first).expect("present");
            Playout::Frame(f)
        } else {
            // first > next: `next` is missing but something later is here.
            self.next = Some(next + 1);
            self.stats.lost += 1;
            Playout::Lost(next)
        }
    }

    /// Frames currently buffered.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// True when nothing is buffered.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Forgets everything (e.g. after the source changed); the counters stay.
    pub fn reset(&mut self) {
        self.frames.clear();
        self.next = None;
        self.primed = false;
        self.waited = 0;
    }

    /// The counters.
    pub fn stats(&self) -> JitterStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seqs(jb: &mut JitterBuffer<u8>, n: usize) -> Vec<String> {
        (0..n)
            .map(|_| match jb.pop() {
                Playout::Frame(f) => format!("{}", f.seq),
                Playout::Lost(s) => format!("lost{s}"),
                Playout::Empty => "empty".into(),
            })
            .collect()
    }

    #[test]
    fn reorders_and_waits_for_depth() {
        let mut jb = JitterBuffer::new(3, 10);
        jb.push(11, 160, 0);
        assert_eq!(jb.pop(), Playout::Empty);
        jb.push(10, 0, 0);
        assert_eq!(jb.pop(), Playout::Empty);
        jb.push(12, 320, 0);
        assert_eq!(seqs(&mut jb, 4), ["10", "11", "12", "empty"]);
    }

    #[test]
    fn gap_reported_as_lost_and_late_frame_dropped() {
        let mut jb = JitterBuffer::new(2, 10);
        for s in [1u64, 2, 4, 5] {
            jb.push(s, 0, 0);
        }
        assert_eq!(seqs(&mut jb, 3), ["1", "2", "lost3"]);
        jb.push(3, 0, 0); // too late now
        jb.push(4, 0, 0); // duplicate
        assert_eq!(seqs(&mut jb, 3), ["4", "5", "empty"]);
        let st = jb.stats();
        assert_eq!((st.late, st.duplicate, st.lost), (1, 1, 1));
    }

    #[test]
    fn a_stream_tail_shorter_than_the_depth_still_plays() {
        let mut jb = JitterBuffer::new(3, 10);
        jb.push(7, 0, 0);
        assert_eq!(seqs(&mut jb, 4), ["empty", "empty", "7", "empty"]);
    }

    #[test]
    fn overflow_skips_oldest() {
        let mut jb = JitterBuffer::new(1, 3);
        for s in 0..6u64 {
            jb.push(s, 0, 0);
        }
        assert_eq!(jb.len(), 3);
        assert_eq!(seqs(&mut jb, 4), ["3", "4", "5", "empty"]);
        assert_eq!(jb.stats().overflow, 3);
    }
}
