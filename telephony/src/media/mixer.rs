//! An N-party mixer for conferences, supervisor barge-in and whisper: each participant hears the
//! sum of everyone else's current frame (never their own), clipped to 16 bits. Participants that
//! may only listen (a supervisor monitoring) are left out of the others' mix; a whisper target
//! list restricts who hears a participant.
//!
//! Sans-IO: one call per 20 ms with the frames that arrived, one frame out per participant.

use std::collections::BTreeMap;

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
}
