//! Consultative transfer, composed of the call-control primitives: the agent's call with the
//! customer is split, the customer hears hold audio, the agent calls the target and talks to it,
//! then the agent either completes the transfer (customer ↔ target bridged, the agent's leg
//! leaves and stays up for the next call), cancels it (target hung up, back to the customer), or
//! turns it into a three-way conference (a [`Room`] with all three `Full`).
//!
//! Hold is done in the media (the customer's leg is disconnected and fed hold audio), not with a
//! re-INVITE: the customer's phone sees one continuous stream and nothing is re-signalled.
//!
//! ```no_run
//! # async fn demo(calls: telephony::control::Calls, agent: telephony::control::CallControl,
//! #               customer: telephony::control::CallControl, target: telephony::sip::call::Originate)
//! #               -> Result<(), telephony::control::ConsultError> {
//! use telephony::control::{Consult, HoldAudio, OnPeerHangup};
//! let consult = Consult::start(&calls, &agent, &customer, target, HoldAudio::Silence).await?;
//! // ... the agent talks to the target (consult.target_mut().next_event() for its events) ...
//! let target_call = consult.complete(OnPeerHangup::HangUp).await?; // or .cancel(..) / .conference()
//! # drop(target_call); Ok(()) }
//! ```
//!
//! [`hold`] / [`resume`] are the same hold on its own (the desktop's hold button).
//!
//! Every step reports failure as a [`ConsultError`]; a target that does not answer puts the
//! customer back with the agent before the error is returned, so no leg is left on hold.

use std::time::Duration;

use crate::media::frame::{Frame, FrameSource};
use crate::media::prompt::Prompt;
use crate::media::tone::{ToneGenerator, ToneSpec};
use crate::sip::call::Originate;

use super::call::{Call, CallControl, OnPeerHangup};
use super::calls::Calls;
use super::event::{ControlError, EndCause, Event};
use super::room::{Role, Room, RoomError};

/// What the customer hears while on hold.
#[derive(Debug, Clone)]
pub enum HoldAudio {
    /// Silence (sent as audio frames, so the customer's phone keeps receiving a stream).
    Silence,
    /// A prompt, looped.
    Prompt(Prompt),
    /// A tone plan (make it `repeat` for a long hold).
    Tone(ToneSpec),
}

impl HoldAudio {
    fn source(&self) -> Box<dyn FrameSource> {
        match self {
            HoldAudio::Silence => Box::new(EndlessSilence),
            HoldAudio::Prompt(p) => Box::new(p.player_looped(u32::MAX)),
            HoldAudio::Tone(t) => Box::new(ToneGenerator::new(t.clone())),
        }
    }
}

struct EndlessSilence;

impl FrameSource for EndlessSilence {
    fn next_frame(&mut self) -> Option<Frame> {
        Some(Frame::silence())
    }
}

/// Holds `customer` in the media (the agent's "hold" button): it leaves its bridge (the agent's
/// leg stays up, hearing nothing) and hears `audio` until [`resume`]. Nothing is re-signalled.
pub async fn hold(customer: &CallControl, audio: &HoldAudio) -> Result<(), ControlError> {
    customer.unbridge().await?;
    customer.play(audio.source()).await
}

/// Ends a [`hold`]: the hold audio stops and `agent` and `customer` are bridged again.
pub async fn resume(
    agent: &CallControl,
    customer: &CallControl,
    on_peer_hangup: OnPeerHangup,
) -> Result<(), ControlError> {
    customer.stop_playback().await?;
    agent.bridge(customer, on_peer_hangup).await
}

/// Why a consultative transfer step failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConsultError {
    /// A command on the agent's or the customer's call failed (e.g. the customer hung up).
    #[error("{0}")]
    Call(#[from] ControlError),
    /// The target's call ended before it answered (rejected, no answer, unreachable).
    #[error("the consultation call ended before it was answered: {0:?}")]
    TargetFailed(EndCause),
    /// The target did not answer in time (ring timeout plus a margin); it was hung up.
    #[error("the consultation call was not answered in time")]
    TargetTimeout,
    /// Building the conference failed.
    #[error("{0}")]
    Room(#[from] RoomError),
}

/// A consultation in progress: the customer on hold, the agent bridged with the target.
pub struct Consult {
    agent: CallControl,
    customer: CallControl,
    target: Call,
}

/// How long past the target's ring timeout `start` waits for the SIP layer's verdict.
const ANSWER_MARGIN: Duration = Duration::from_secs(5);

impl Consult {
    /// Puts `customer` on hold with `hold` audio (out of its bridge with `agent`), places the
    /// call to `target` and, once it answers, bridges the agent with it. When the target fails,
    /// the customer is bridged back with the agent (`OnPeerHangup::Stay`) and the error returned.
    pub async fn start(
        calls: &Calls,
        agent: &CallControl,
        customer: &CallControl,
        target: Originate,
        hold: HoldAudio,
    ) -> Result<Consult, ConsultError> {
        let wait = target.ring_timeout + ANSWER_MARGIN;
        self::hold(customer, &hold).await?;
        let mut target = calls.originate(target);
        let answered = tokio::time::timeout(wait, async {
            while let Some(ev) = target.next_event().await {
                match ev {
                    Event::Answered { .. } => return Ok(()),
                    Event::Hangup { cause, .. } => return Err(ConsultError::TargetFailed(cause)),
                    _ => {}
                }
            }
            Err(ConsultError::Call(ControlError::Ended))
        })
        .await
        .unwrap_or(Err(ConsultError::TargetTimeout));
        let joined = match answered {
            Ok(()) => agent
                .bridge(target.control(), OnPeerHangup::Stay)
                .await
                .map_err(ConsultError::from),
            Err(e) => Err(e),
        };
        if let Err(e) = joined {
            let _ = target.control().hangup().await;
            Self::back_to_customer(agent, customer, OnPeerHangup::Stay).await?;
            return Err(e);
        }
        Ok(Consult {
            agent: agent.clone(),
            customer: customer.clone(),
            target,
        })
    }

    /// The target's call (its id, info).
    pub fn target(&self) -> &Call {
        &self.target
    }

    /// The target's call, to read its events while consulting.
    pub fn target_mut(&mut self) -> &mut Call {
        &mut self.target
    }

    /// Completes the transfer: the customer and the target are bridged (each doing
    /// `on_peer_hangup` when the other ends); the agent's leg is left unbridged and stays up
    /// ([`Event::Unbridged`] on it). Returns the target's call to the caller.
    pub async fn complete(self, on_peer_hangup: OnPeerHangup) -> Result<Call, ConsultError> {
        self.customer.stop_playback().await?;
        self.customer
            .bridge(self.target.control(), on_peer_hangup)
            .await?;
        Ok(self.target)
    }

    /// Cancels: the target is hung up and the agent is bridged back with the customer.
    pub async fn cancel(self, on_peer_hangup: OnPeerHangup) -> Result<(), ConsultError> {
        let _ = self.target.control().hangup().await;
        Self::back_to_customer(&self.agent, &self.customer, on_peer_hangup).await
    }

    /// All three in a new room, each `Full`. Returns the room and the target's call.
    pub async fn conference(self) -> Result<(Room, Call), ConsultError> {
        self.customer.stop_playback().await?;
        let room = Room::new();
        room.join(&self.agent, Role::Full).await?;
        room.join(self.target.control(), Role::Full).await?;
        room.join(&self.customer, Role::Full).await?;
        Ok((room, self.target))
    }

    async fn back_to_customer(
        agent: &CallControl,
        customer: &CallControl,
        on: OnPeerHangup,
    ) -> Result<(), ConsultError> {
        Ok(resume(agent, customer, on).await?)
    }
}
