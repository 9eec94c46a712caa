//! What a controlled call reports to its owner: one stream merging SIP events (ringing, answer,
//! hold, INFO digits, hang-up) and media events (RFC 4733 / in-band digits, end of playback, AMD,
//! call-progress tones), and the errors of call commands.

use std::net::SocketAddr;

use serde::Serialize;

use crate::media::amd::AmdEvent;
use crate::media::g711::Codec;
use crate::media::progress::ProgressEvent;
use crate::sip::call::{CallId, HangupCause};
use crate::sip::outcome::Outcome;
use crate::sip::sdp::Direction;

use super::room::{Role, RoomId};

/// How a digit reached us.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DtmfVia {
    /// RFC 4733 telephone-event in the RTP stream.
    Rfc4733,
    /// SIP INFO (application/dtmf-relay).
    SipInfo,
    /// Detected in the audio (Goertzel).
    Inband,
}

/// Why a call ended: the SIP layer's cause, unless call control ended it for a reason of its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EndCause {
    /// As the SIP layer reports it (remote BYE, our hang-up, cancel, rejection, timeouts...).
    Sip(HangupCause),
    /// No RTP arrived for the configured inactivity timeout: a dead call, hung up by us.
    RtpInactivity,
    /// The call's media could not be set up (port not bindable, unsupported codec): hung up.
    MediaUnavailable(String),
    /// The call was bridged with `OnPeerHangup::HangUp` and the other leg ended.
    BridgePeerEnded(CallId),
}

/// One event of a call, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Outbound: the callee rings (18x); inbound: we sent 180.
    Ringing { code: u16 },
    /// Outbound: 183 with SDP; the media session exists (progress tones can be detected).
    EarlyMedia { code: u16 },
    /// The call is up and its media session runs.
    Answered {
        codec: Codec,
        remote: Option<SocketAddr>,
    },
    /// A re-INVITE changed the media (hold / resume); `direction` is ours.
    MediaChanged { direction: Direction },
    /// A key, once per press.
    Dtmf { digit: char, via: DtmfVia },
    /// The prompt or tone given to `play_*` has finished.
    PlaybackFinished,
    /// Answering-machine detection: the verdict, or the beep.
    Amd(AmdEvent),
    /// A call-progress tone in early media (SIT, busy, reorder, ringback).
    Progress(ProgressEvent),
    /// The media now flows between this call and `peer`.
    Bridged { peer: CallId },
    /// The bridge with `peer` is gone (`peer_ended`: because the peer hung up).
    Unbridged { peer: CallId, peer_ended: bool },
    /// The call is in a room (conference, supervised call) with this role; again on a role
    /// change.
    RoomJoined { room: RoomId, role: Role },
    /// The call left the room (it hears nothing from it any more; the call stays up).
    RoomLeft { room: RoomId },
    /// The peer asked us to transfer it (REFER); answer with [`crate::sip::driver::SipHandle::transfer_notify`].
    TransferRequested { target: String },
    /// Progress of our REFER.
    TransferProgress { code: u16 },
    /// The call is over; the last event.
    Hangup {
        cause: EndCause,
        code: Option<u16>,
        outcome: Outcome,
    },
}

/// Why a call command was not carried out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    /// The call has ended.
    #[error("the call has ended")]
    Ended,
    /// The call has no media yet (not answered, no early media).
    #[error("the call has no media session (not answered yet)")]
    NoMedia,
    /// A call cannot be bridged with itself (use `echo`).
    #[error("a call cannot be bridged with itself")]
    SameCall,
    /// File or I/O error (recording, prompt file).
    #[error("{0}")]
    Io(String),
}
