//! Per-SSRC sequence tracking: the RFC 3550 appendix A.1 algorithm (probation of new sources,
//! 16-bit wrap counting, large jumps resynchronised after two in-order packets, duplicates and
//! late packets told apart), plus the A.8 interarrival-jitter estimate.
//!
//! Extended sequence numbers start at 2^16 so a packet just before the first one never goes
//! negative.

/// Packets needed in sequence before a new source is believed (A.1 `MIN_SEQUENTIAL`).
pub const MIN_SEQUENTIAL: u16 = 2;
/// Largest forward jump treated as loss rather than a restart (A.1 `MAX_DROPOUT`).
pub const MAX_DROPOUT: u16 = 3000;
/// Largest backward step treated as reordering (A.1 `MAX_MISORDER`).
pub const MAX_MISORDER: u16 = 100;
const SEQ_MOD: u32 = 1 << 16;

/// What [`SourceState::update`] decided about one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqVerdict {
    /// In sequence (or late but within the misorder window): deliver with this extended number.
    Accept(u64),
    /// The source is still on probation; `held` is the extended number the packet will have if the
    /// source is validated by the next packet.
    Probation,
    /// The source has just passed probation; this packet and the previous one (extended number
    /// `previous`) are both valid.
    Validated { previous: u64, this: u64 },
    /// A big jump: dropped, but if the next packet follows it the stream is resynchronised there.
    Jump,
    /// The second packet after a big jump followed the first: the source restarted here.
    Resynced(u64),
}

/// RFC 3550 A.1 state for one synchronisation source.
#[derive(Debug, Clone)]
pub struct SourceState {
    max_seq: u16,
    cycles: u64,
    base_seq: u16,
    bad_seq: u32,
    probation: u16,
    received: u64,
    expected_prior: u64,
    received_prior: u64,
    // A.8 jitter, in timestamp units scaled by 16 (the RFC's integer form).
    jitter_q4: u64,
    last_transit: Option<i64>,
}

impl SourceState {
    /// A source first seen with sequence number `seq`; it is on probation.
    pub fn new(seq: u16) -> Self {
        let mut s = SourceState {
            max_seq: 0,
            cycles: SEQ_MOD as u64,
            base_seq: 0,
            bad_seq: 0,
            probation: MIN_SEQUENTIAL,
            received: 0,
            expected_prior: 0,
            received_prior: 0,
            jitter_q4: 0,
            last_transit: None,
        };
        s.init(seq);
        s.max_seq = seq.wrapping_sub(1);
        s
    }

    fn init(&mut self, seq: u16) {
        self.base_seq = seq;
        self.max_seq = seq;
        self.bad_seq = SEQ_MOD + 1;
        self.cycles = SEQ_MOD as u64;
        self.received = 0;
        self.received_prior = 0;
        self.expected_prior = 0;
    }

    fn ext(&self, seq: u16) -> u64 {
        // Position relative to max_seq, so late packets just before a wrap land in the old cycle.
        let delta = seq.wrapping_sub(self.max_seq) as i16 as i64;
        (self.cycles as i64 + self.max_seq as i64 + delta) as u64
    }

    /// True once the source has passed probation.
    pub fn is_valid(&self) -> bool {
        self.probation == 0
    }

    /// Feeds one packet's sequence number (A.1 `update_seq`).
    pub fn update(&mut self, seq: u16) -> SeqVerdict {
        let udelta = seq.wrapping_sub(self.max_seq);
        if self.probation > 0 {
            if seq == self.max_seq.wrapping_add(1) {
                self.probation -= 1;
                self.max_seq = seq;
                if self.probation == 0 {
                    let prev = seq.wrapping_sub(1);
                    self.init(prev);
                    self.max_seq = seq;
                    if seq < prev {
                        self.cycles += SEQ_MOD as u64;
                    }
                    self.received = 2;
                    let this = self.ext(seq);
                    return SeqVerdict::Validated {
                        previous: this - 1,
                        this,
                    };
                }
            } else {
                self.probation = MIN_SEQUENTIAL - 1;
                self.max_seq = seq;
            }
            return SeqVerdict::Probation;
        } else if udelta < MAX_DROPOUT {
            if seq < self.max_seq {
                self.cycles += SEQ_MOD as u64;
            }
            self.max_seq = seq;
        } else if udelta as u32 <= SEQ_MOD - MAX_MISORDER as u32 {
            if seq as u32 == self.bad_seq {
                self.init(seq);
                self.received = 1;
                return SeqVerdict::Resynced(self.ext(seq));
            }
            self.bad_seq = (seq as u32 + 1) & (SEQ_MOD - 1);
            return SeqVerdict::Jump;
        }
        // else: duplicate or reordered within the window; accepted, the caller dedupes.
        self.received += 1;
        SeqVerdict::Accept(self.ext(seq))
    }

    /// Highest extended sequence number seen.
    pub fn extended_max(&self) -> u64 {
        self.cycles + self.max_seq as u64
    }

    /// Packets expected since (re)synchronisation.
    pub fn expected(&self) -> u64 {
        self.extended_max() - (SEQ_MOD as u64 + self.base_seq as u64) + 1
    }

    /// Packets counted as received since (re)synchronisation.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Cumulative loss (may be negative with duplicates, as in RFC 3550).
    pub fn lost(&self) -> i64 {
        self.expected() as i64 - self.received as i64
    }

    /// Fraction lost since the previous call, in 1/256 (the RTCP RR field).
    pub fn fraction_lost_since_last(&mut self) -> u8 {
        let expected = self.expected();
        let expected_interval = expected - self.expected_prior.min(expected);
        self.expected_prior = expected;
        let received_interval = self.received.saturating_sub(self.received_prior);
        self.received_prior = self.received;
        let lost = expected_interval as i64 - received_interval as i64;
        if expected_interval == 0 || lost <= 0 {
            0
        } else {
            ((lost << 8) / expected_interval as i64).min(255) as u8
        }
    }

    /// Updates the interarrival jitter (A.8) with a packet's RTP timestamp and its arrival time
    /// expressed in the same clock units.
    pub fn update_jitter(&mut self, rtp_timestamp: u32, arrival_units: u64) {
        let transit = arrival_units as i64 - rtp_timestamp as i64;
        if let Some(last) = self.last_transit {
            let d = (transit - last).unsigned_abs();
            // J += (|D| - J) / 16, kept scaled by 16.
            self.jitter_q4 = self.jitter_q4 + d - ((self.jitter_q4 + 8) >> 4);
        }
        self.last_transit = Some(transit);
    }

    /// The interarrival jitter in timestamp units.
    pub fn jitter(&self) -> u32 {
        (self.jitter_q4 >> 4) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validated(start: u16) -> SourceState {
        let mut s = SourceState::new(start);
        assert_eq!(s.update(start), SeqVerdict::Probation);
        assert!(matches!(
            s.update(start.wrapping_add(1)),
            SeqVerdict::Validated { .. }
        ));
        s
    }

    #[test]
    fn new_source_needs_two_in_sequence() {
        let mut s = SourceState::new(100);
        assert_eq!(s.update(100), SeqVerdict::Probation);
        assert!(!s.is_valid());
        assert_eq!(
            s.update(101),
            SeqVerdict::Validated {
                previous: 65636,
                this: 65637
            }
        );
        assert!(s.is_valid());
        assert_eq!(s.update(102), SeqVerdict::Accept(65638));
        assert_eq!(s.expected(), 3);
        assert_eq!(s.received(), 3);
    }

    #[test]
    fn probation_restarts_on_a_gap() {
        let mut s = SourceState::new(10);
        assert_eq!(s.update(10), SeqVerdict::Probation);
        assert_eq!(s.update(50), SeqVerdict::Probation);
        assert!(matches!(
            s.update(51),
            SeqVerdict::Validated {
                previous: _,
                this: _
            }
        ));
    }

    #[test]
    fn wraps_around_and_counts_cycles() {
        let mut s = validated(65534);
        let a = match s.update(0) {
            SeqVerdict::Accept(e) => e,
            v => panic!("{v:?}"),
        };
        let b = match s.update(1) {
            SeqVerdict::Accept(e) => e,
            v => panic!("{v:?}"),
        };
        assert_eq!(b, a + 1);
        assert_eq!(a, 2 * 65536);
        // A late packet from before the wrap stays in the old cycle.
        assert_eq!(s.update(65535), SeqVerdict::Accept(2 * 65536 - 1));
        assert_eq!(s.lost(), 0 - 1); // one duplicate of 65535 counted
    }

    #[test]
    fn loss_is_counted() {
        let mut s = validated(1000);
        for seq in [1002u16, 1003, 1005] {
            assert!(matches!(s.update(seq), SeqVerdict::Accept(_)));
        }
        assert_eq!(s.expected(), 6);
        assert_eq!(s.lost(), 1);
        assert_eq!(s.fraction_lost_since_last(), (256 / 6) as u8);
        assert_eq!(s.fraction_lost_since_last(), 0);
    }

    #[test]
    fn big_jump_resynchronises_after_two_packets() {
        let mut s = validated(1000);
        assert_eq!(s.update(30000), SeqVerdict::Jump);
        assert!(matches!(s.update(1002), SeqVerdict::Accept(_)));
        assert_eq!(s.update(40000), SeqVerdict::Jump);
        let r = s.update(40001);
        assert!(matches!(r, SeqVerdict::Resynced(_)), "{r:?}");
        assert!(matches!(s.update(40002), SeqVerdict::Accept(_)));
        assert_eq!(s.expected(), 2);
    }

    #[test]
    fn jitter_is_zero_for_perfect_pacing_and_grows_otherwise() {
        let mut s = validated(1);
        for i in 0..50u32 {
            s.update_jitter(i * 160, 1_000 + i as u64 * 160);
        }
        assert_eq!(s.jitter(), 0);
        for i in 50..100u32 {
            let wobble = if i % 2 == 0 { 80 } else { 0 };
            s.update_jitter(i * 160, 1_000 + i as u64 * 160 + wobble);
        }
        assert!(s.jitter() > 40, "jitter {}", s.jitter());
    }
}
