//! The tokio driver of a mixing room: one task with a 20 ms clock that takes the frames its legs
//! forward to it, mixes them through a [`MixingDesk`] (each leg hears the others per its
//! [`Role`], never itself) and hands each leg its mix as frames from the room's own [`PeerId`].
//!
//! A leg joins with its [`RtpSession::input`](super::session::RtpSession::input) and is routed
//! with `forward_to(Some(room.input()))` + `listen_to(Some(room.id()))`; the leg's own
//! [`SwitchableLeg`](super::bridge::SwitchableLeg) encodes the mix in its codec (µ-law or A-law),
//! so legs of both laws share one room. Frames go out with `try_send`: a leg that is slow or gone
//! loses its own frames (or is dropped from the room) and never delays the others.

use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use super::bridge::PeerId;
use super::frame::Frame;
use super::mixer::{DeskStats, MixingDesk, Role};
use super::sender::PTIME_MS;

/// Counters of a room.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RoomStats {
    /// The mixing desk's counters (ticks, frames mixed, overflows, underruns).
    pub desk: DeskStats,
    /// Mixed frames handed to legs.
    pub delivered: u64,
    /// Mixed frames dropped because a leg's queue was full.
    pub delivery_dropped: u64,
    /// Legs removed because their session had ended.
    pub legs_gone: u64,
    /// Legs in the room now.
    pub legs: usize,
}

enum Command {
    Add(PeerId, mpsc::Sender<(PeerId, Frame)>, Role),
    SetRole(PeerId, Role),
    Remove(PeerId),
    Stats(oneshot::Sender<RoomStats>),
}

/// A running mixing room. Dropping it (or [`MixRoom::close`]) stops the task.
pub struct MixRoom {
    id: PeerId,
    cmd: mpsc::UnboundedSender<Command>,
    input: mpsc::Sender<(PeerId, Frame)>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for MixRoom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MixRoom({:?})", self.id)
    }
}

impl MixRoom {
    /// Starts an empty room whose frames carry `id` (use a fresh id from
    /// [`super::session::next_peer_id`], distinct from every session's).
    pub fn start(id: PeerId) -> MixRoom {
        let (cmd, cmd_rx) = mpsc::unbounded_channel();
        // Room for a few frames of every leg between two ticks.
        let (input, input_rx) = mpsc::channel(256);
        let task = tokio::spawn(run(id, cmd_rx, input_rx));
        MixRoom {
            id,
            cmd,
            input,
            task,
        }
    }

    /// The id the room's frames carry (what legs `listen_to`).
    pub fn id(&self) -> PeerId {
        self.id
    }

    /// Where legs forward what they receive (`forward_to(Some(room.input()))`).
    pub fn input(&self) -> mpsc::Sender<(PeerId, Frame)> {
        self.input.clone()
    }

    /// Adds leg `peer` (mixes go to `output`, its session's input) or changes its role.
    pub fn add(&self, peer: PeerId, output: mpsc::Sender<(PeerId, Frame)>, role: Role) {
        let _ = self.cmd.send(Command::Add(peer, output, role));
    }

    /// Changes a leg's role.
    pub fn set_role(&self, peer: PeerId, role: Role) {
        let _ = self.cmd.send(Command::SetRole(peer, role));
    }

    /// Removes a leg (it is no longer mixed nor sent anything).
    pub fn remove(&self, peer: PeerId) {
        let _ = self.cmd.send(Command::Remove(peer));
    }

    /// Counters.
    pub async fn stats(&self) -> RoomStats {
        let (tx, rx) = oneshot::channel();
        let _ = self.cmd.send(Command::Stats(tx));
        rx.await.unwrap_or_default()
    }

    /// Stops the room's task.
    pub async fn close(self) {
        drop(self.cmd);
        let _ = self.task.await;
    }
}

async fn run(
    id: PeerId,
    mut cmd_rx: mpsc::UnboundedReceiver<Command>,
    mut input_rx: mpsc::Receiver<(PeerId, Frame)>,
) {
    let mut desk = MixingDesk::new();
    let mut outputs: std::collections::BTreeMap<PeerId, mpsc::Sender<(PeerId, Frame)>> =
        Default::default();
    let mut stats = RoomStats::default();
    let mut tick = tokio::time::interval(Duration::from_millis(PTIME_MS));
    tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            biased;
            c = cmd_rx.recv() => match c {
                None => break,
                Some(Command::Add(peer, out, role)) => {
                    desk.set(peer, role);
                    outputs.insert(peer, out);
                }
                Some(Command::SetRole(peer, role)) => {
                    if outputs.contains_key(&peer) {
                        desk.set(peer, role);
                    }
                }
                Some(Command::Remove(peer)) => {
                    desk.remove(peer);
                    outputs.remove(&peer);
                }
                Some(Command::Stats(reply)) => {
                    let _ = reply.send(RoomStats { desk: desk.stats(), legs: outputs.len(), ..stats });
                }
            },
            _ = tick.tick() => {
                for (peer, pcm) in desk.tick() {
                    let Some(out) = outputs.get(&peer) else { continue };
                    match out.try_send((id, Frame::from_pcm(pcm))) {
                        Ok(()) => stats.delivered += 1,
                        Err(mpsc::error::TrySendError::Full(_)) => stats.delivery_dropped += 1,
                        Err(mpsc::error::TrySendError::Closed(_)) => {
                            // The leg's session ended: it leaves the mix at once.
                            desk.remove(peer);
                            outputs.remove(&peer);
                            stats.legs_gone += 1;
                        }
                    }
                }
            }
            Some((from, frame)) = input_rx.recv() => desk.push(from, frame.pcm),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(v: i16) -> Frame {
        Frame::from_pcm(vec![v; 160])
    }

    /// Feeds every leg one frame per mixing interval until `done` says so (bounded).
    async fn feed_until(room: &MixRoom, legs: &[PeerId], mut done: impl FnMut() -> bool) {
        for _ in 0..500 {
            for (i, &p) in legs.iter().enumerate() {
                let _ = room.input().try_send((p, frame(100 * (i as i16 + 1))));
            }
            tokio::time::sleep(Duration::from_millis(PTIME_MS)).await;
            if done() {
                return;
            }
        }
        panic!("the room never delivered");
    }

    #[tokio::test]
    async fn a_leg_that_is_gone_leaves_the_mix_and_the_others_keep_hearing() {
        let room = MixRoom::start(PeerId(1000));
        let (a, b, c) = (PeerId(1), PeerId(2), PeerId(3));
        let (ta, mut ra) = mpsc::channel(64);
        let (tb, mut rb) = mpsc::channel(64);
        let (tc, rc) = mpsc::channel(64);
        room.add(a, ta, Role::Talker);
        room.add(b, tb, Role::Talker);
        room.add(c, tc, Role::Listener);
        // The listener's session ends.
        drop(rc);
        let mut heard_a = Vec::new();
        let mut heard_b = Vec::new();
        feed_until(&room, &[a, b, c], || {
            while let Ok((from, f)) = ra.try_recv() {
                assert_eq!(from, PeerId(1000), "frames carry the room's id");
                heard_a.push(f.pcm[0]);
            }
            while let Ok((_, f)) = rb.try_recv() {
                heard_b.push(f.pcm[0]);
            }
            heard_a.contains(&200) && heard_b.contains(&100)
        })
        .await;
        // a hears b (200) and never itself nor the listener (300); b hears a (100).
        assert!(heard_a.iter().all(|&v| v == 0 || v == 200), "{heard_a:?}");
        assert!(heard_b.iter().all(|&v| v == 0 || v == 100), "{heard_b:?}");
        let s = room.stats().await;
        assert_eq!((s.legs, s.legs_gone), (2, 1), "{s:?}");
        room.close().await;
    }
}
