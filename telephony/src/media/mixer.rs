//! An N-party mixer for conferences, supervisor barge-in and whisper: each participant hears the
//! sum of everyone else's current frame (never their own), clipped to 16 bits. Participants that
//! may only listen (a supervisor monitoring) are left out of the others' mix; a whisper target
//! list restricts who hears a participant.
//!
//! Sans-IO: one call per 20 ms with the frames that arrived, one frame out per participant.
//! [`MixingDesk`] adds an inbox per participant (frames arrive whenever their packets do; each
//! tick takes at most one from each), so the driver ([`super::conference`]) only moves frames.

use std::collections::{BTreeMap, VecDeque};

use super::bridge::PeerId;
use super::sender::FRAME_SAMPLES;

/// How a participant takes part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// Heard by everyone, hears everyone.
    Talker,
    /// Hears everyone, heard by nobody (silent monitoring).
    Listener,
    /// Hears everyone, heard only by these participants (coaching an agent).
    Whisper(Vec<PeerId>),
}

/// The conference state: who is in and in what role.
#[derive(Debug, Default)]
pub struct Mixer {
    members: BTreeMap<PeerId, Role>,
}

impl Mixer {
    /// An empty conference.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or changes a participant.
    pub fn set(&mut self, who: PeerId, role: Role) {
        self.members.insert(who, role);
    }

    /// Removes a participant.
    pub fn remove(&mut self, who: PeerId) {
        self.members.remove(&who);
    }

    /// Participants.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// True with nobody in.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    fn audible(&self, speaker: PeerId, hearer: PeerId) -> bool {
        speaker != hearer
            && match self.members.get(&speaker) {
                Some(Role::Talker) => true,
                Some(Role::Listener) | None => false,
                Some(Role::Whisper(to)) => to.contains(&hearer),
            }
    }

    /// Mixes one interval: `frames` holds what each participant said (missing = silence).
    /// Returns the frame each participant should hear.
    pub fn mix(&self, frames: &BTreeMap<PeerId, Vec<i16>>) -> BTreeMap<PeerId, Vec<i16>> {
        self.members
            .keys()
            .map(|&hearer| {
                let mut acc = [0i32; FRAME_SAMPLES];
                for (&speaker, pcm) in frames {
                    if self.audible(speaker, hearer) {
                        for (a, &s) in acc.iter_mut().zip(pcm) {
                            *a += s as i32;
                        }
                    }
                }
                (
                    hearer,
                    acc.iter()
                        .map(|&v| v.clamp(i16::MIN as i32, i16::MAX as i32) as i16)
                        .collect(),
                )
            })
            .collect()
    }
}

/// Frames a participant's inbox keeps waiting; beyond this the oldest is dropped, so a leg that
/// sends in bursts (or faster than real time) never adds delay for the others.
pub const MAX_QUEUED_FRAMES: usize = 4;
/// Frames an inbox gathers before the mix starts taking from it (and again after it ran dry):
/// one frame of slack absorbs the phase difference between a leg's packets and the mixing tick.
pub const PRIME_FRAMES: usize = 2;

/// Counters of a [`MixingDesk`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeskStats {
    /// Mixing intervals run.
    pub ticks: u64,
    /// Frames taken into a mix.
    pub mixed: u64,
    /// Frames dropped because an inbox was full.
    pub overflow: u64,
    /// Ticks where a primed participant had no frame (it counts as silent for that interval).
    pub underruns: u64,
    /// Frames from someone who is not (or no longer) a participant.
    pub strangers: u64,
}

#[derive(Debug, Default)]
struct Inbox {
    frames: VecDeque<Vec<i16>>,
    primed: bool,
}

/// A [`Mixer`] with an inbox per participant: `push` frames as they arrive, `tick` every 20 ms.
#[derive(Debug, Default)]
pub struct MixingDesk {
    mixer: Mixer,
    inbox: BTreeMap<PeerId, Inbox>,
    stats: DeskStats,
}

impl MixingDesk {
    /// An empty desk.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a participant or changes its role (its inbox is kept).
    pub fn set(&mut self, who: PeerId, role: Role) {
        self.mixer.set(who, role);
        self.inbox.entry(who).or_default();
    }

    /// Removes a participant and drops what it had queued.
    pub fn remove(&mut self, who: PeerId) {
        self.mixer.remove(who);
        self.inbox.remove(&who);
    }

    /// The participants.
    pub fn members(&self) -> impl Iterator<Item = PeerId> + '_ {
        self.inbox.keys().copied()
    }

    /// Participants.
    pub fn len(&self) -> usize {
        self.inbox.len()
    }

    /// True with nobody in.
    pub fn is_empty(&self) -> bool {
        self.inbox.is_empty()
    }

    /// A frame `from` said; ignored (and counted) when `from` is not a participant.
    pub fn push(&mut self, from: PeerId, pcm: Vec<i16>) {
        let Some(inbox) = self.inbox.get_mut(&from) else {
            self.stats.strangers += 1;
            return;
        };
        if inbox.frames.len() >= MAX_QUEUED_FRAMES {
            inbox.frames.pop_front();
            self.stats.overflow += 1;
        }
        inbox.frames.push_back(pcm);
    }

    /// One 20 ms interval: takes at most one frame per participant and returns what each
    /// participant hears (every participant gets a frame, silence when nobody is audible).
    pub fn tick(&mut self) -> BTreeMap<PeerId, Vec<i16>> {
        self.stats.ticks += 1;
        let mut said = BTreeMap::new();
        for (&who, inbox) in &mut self.inbox {
            if !inbox.primed && inbox.frames.len() >= PRIME_FRAMES {
                inbox.primed = true;
            }
            if !inbox.primed {
                continue;
            }
            match inbox.frames.pop_front() {
                Some(f) => {
                    self.stats.mixed += 1;
                    said.insert(who, f);
                }
                None => {
                    inbox.primed = false;
                    self.stats.underruns += 1;
                }
            }
        }
        self.mixer.mix(&said)
    }

    /// Counters.
    pub fn stats(&self) -> DeskStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(v: &[(u64, i16)]) -> BTreeMap<PeerId, Vec<i16>> {
        v.iter()
            .map(|(p, x)| (PeerId(*p), vec![*x; FRAME_SAMPLES]))
            .collect()
    }

    #[test]
    fn everyone_hears_the_others_but_not_themselves() {
        let mut m = Mixer::new();
        for p in 1..=3 {
            m.set(PeerId(p), Role::Talker);
        }
        let out = m.mix(&frames(&[(1, 100), (2, 20), (3, 3)]));
        assert_eq!(out[&PeerId(1)][0], 23);
        assert_eq!(out[&PeerId(2)][0], 103);
        assert_eq!(out[&PeerId(3)][0], 120);
    }

    #[test]
    fn listener_is_silent_and_whisper_reaches_only_its_target() {
        let mut m = Mixer::new();
        let (customer, agent, supervisor) = (PeerId(1), PeerId(2), PeerId(3));
        m.set(customer, Role::Talker);
        m.set(agent, Role::Talker);
        m.set(supervisor, Role::Listener);
        let f = frames(&[(1, 1000), (2, 200), (3, 30)]);
        let out = m.mix(&f);
        assert_eq!(
            (out[&customer][0], out[&agent][0], out[&supervisor][0]),
            (200, 1000, 1200)
        );
        m.set(supervisor, Role::Whisper(vec![agent]));
        let out = m.mix(&f);
        assert_eq!(
            (out[&customer][0], out[&agent][0], out[&supervisor][0]),
            (200, 1030, 1200)
        );
    }

    #[test]
    fn sums_are_clipped() {
        let mut m = Mixer::new();
        for p in 1..=3 {
            m.set(PeerId(p), Role::Talker);
        }
        let out = m.mix(&frames(&[(1, 30000), (2, 30000), (3, -30000)]));
        assert_eq!(out[&PeerId(3)][0], i16::MAX);
        m.remove(PeerId(3));
        assert_eq!(m.mix(&frames(&[(1, 5)])).len(), 2);
    }

    #[test]
    fn desk_takes_one_frame_per_tick_after_priming_and_bounds_the_queue() {
        let mut d = MixingDesk::new();
        let (a, b, stranger) = (PeerId(1), PeerId(2), PeerId(9));
        d.set(a, Role::Talker);
        d.set(b, Role::Talker);
        d.push(a, vec![10; FRAME_SAMPLES]);
        // Not primed yet: b hears silence.
        assert_eq!(d.tick()[&b][0], 0);
        d.push(a, vec![20; FRAME_SAMPLES]);
        assert_eq!(d.tick()[&b][0], 10);
        assert_eq!(d.tick()[&b][0], 20);
        // Ran dry: an underrun, then it primes again.
        assert_eq!(d.tick()[&b][0], 0);
        assert_eq!(d.stats().underruns, 1);
        for v in 1..=6 {
            d.push(a, vec![v; FRAME_SAMPLES]);
        }
        // Only the newest MAX_QUEUED_FRAMES are kept.
        assert_eq!(d.tick()[&b][0], 3);
        assert_eq!(d.stats().overflow, 2);
        d.push(stranger, vec![1; FRAME_SAMPLES]);
        assert_eq!(d.stats().strangers, 1);
        d.remove(a);
        assert_eq!(d.tick().len(), 1);
    }

    #[test]
    fn desk_frames_are_never_heard_by_their_speaker() {
        let mut d = MixingDesk::new();
        for p in 1..=3 {
            d.set(PeerId(p), Role::Talker);
            for _ in 0..PRIME_FRAMES {
                d.push(PeerId(p), vec![p as i16 * 100; FRAME_SAMPLES]);
            }
        }
        let out = d.tick();
        assert_eq!(
            (out[&PeerId(1)][0], out[&PeerId(2)][0], out[&PeerId(3)][0]),
            (500, 400, 300)
        );
    }
}
