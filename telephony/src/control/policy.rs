//! The decisions of call control, sans-IO: which media a SIP negotiation asks for, what each media
//! event leads to, how a digit is sent, and why a call ended. The tokio plumbing in
//! [`super::call`] only carries these out.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::media::g711::Codec;
use crate::media::receiver::ReceiverConfig;
use crate::media::session::{MediaEvent, SessionConfig};
use crate::sip::call::{HangupCause, MediaInfo};
use crate::sip::sdp::Direction;

use super::event::{DtmfVia, EndCause, Event};

/// What a call's media session must look like after an offer/answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaPlan {
    /// Our RTP port, chosen by the SIP layer and written in its SDP.
    pub local_port: u16,
    pub codec: Codec,
    pub payload_type: u8,
    /// The peer's telephone-event payload type, if it offered one.
    pub telephone_event: Option<u8>,
    /// Where to send (None: not known, or the peer put the stream on hold with 0.0.0.0 / port 0;
    /// the session then latches onto whatever sends to it).
    pub remote: Option<SocketAddr>,
    /// Our direction.
    pub direction: Direction,
}

/// Settings of call control that shape every session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaSettings {
    pub bind_ip: IpAddr,
    pub inactivity_timeout: Option<Duration>,
    pub inband_dtmf: bool,
    pub jitter_depth: usize,
}

/// Why no media session can be made for a negotiation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported(pub String);

impl MediaPlan {
    /// From the SIP layer's media parameters. Without a negotiation (an INVITE without an offer
    /// whose answer has not been seen) the session sends PCMU and latches onto the peer's RTP.
    pub fn from_info(info: &MediaInfo) -> Result<MediaPlan, Unsupported> {
        let Some(n) = info.negotiated else {
            return Ok(MediaPlan {
                local_port: info.local_rtp_port,
                codec: Codec::Pcmu,
                payload_type: 0,
                telephone_event: None,
                remote: None,
                direction: Direction::SendRecv,
            });
        };
        let codec = Codec::from_payload_type(n.payload_type)
            .ok_or_else(|| Unsupported(format!("payload type {} is not G.711", n.payload_type)))?;
        Ok(MediaPlan {
            local_port: info.local_rtp_port,
            codec,
            payload_type: n.payload_type,
            telephone_event: n.telephone_event,
            remote: n.remote_rtp,
            direction: n.direction,
        })
    }

    /// (send, receive) for `RtpSession::set_direction`: `sendonly` sends only (music on hold),
    /// `recvonly` receives only, `inactive` neither; nothing is sent without a remote address.
    pub fn flow(&self) -> (bool, bool) {
        let send = self.direction.sends();
        let receive = matches!(self.direction, Direction::SendRecv | Direction::RecvOnly);
        (send, receive)
    }

    /// The session configuration for this plan.
    pub fn session_config(&self, s: &MediaSettings) -> SessionConfig {
        let mut c = SessionConfig::negotiated(s.bind_ip, self.payload_type, self.telephone_event)
            .unwrap_or_else(|| SessionConfig::pcmu(s.bind_ip));
        if self.telephone_event.is_none() {
            // No telephone-event negotiated: still understand the two common ones.
            c.receive.telephone_event = vec![101, 96];
        }
        c.inactivity_timeout = s.inactivity_timeout;
        c.inband_dtmf = s.inband_dtmf;
        c.jitter_depth = s.jitter_depth.max(1);
        c
    }

    /// The receive side after a re-INVITE.
    pub fn receiver_config(&self) -> ReceiverConfig {
        ReceiverConfig {
            audio: vec![(0, Codec::Pcmu), (8, Codec::Pcma)],
            telephone_event: match self.telephone_event {
                Some(pt) => vec![pt],
                None => vec![101, 96],
            },
        }
    }
}

/// What changed between two plans of the same call (a re-INVITE).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PlanChange {
    pub codec: bool,
    pub remote: bool,
    pub flow: bool,
}

pub fn diff(old: &MediaPlan, new: &MediaPlan) -> PlanChange {
    PlanChange {
        codec: old.codec != new.codec
            || old.payload_type != new.payload_type
            || old.telephone_event != new.telephone_event,
        // A hold with 0.0.0.0 gives no address: keep the old one (nothing is sent anyway).
        remote: new.remote.is_some() && old.remote != new.remote,
        flow: old.flow() != new.flow(),
    }
}

/// What a media event leads to.
#[derive(Debug, Clone, PartialEq)]
pub enum MediaAction {
    /// Tell the call's owner.
    Emit(Event),
    /// End the call (BYE) and report this cause.
    HangUp(EndCause),
    /// Nothing to do.
    Ignore,
}

/// `held`: the call is not in `sendrecv` (either side holds it). A held peer often sends nothing
/// at all (no music), so silence then is not a dead call.
pub fn on_media_event(ev: MediaEvent, held: bool) -> MediaAction {
    match ev {
        MediaEvent::Dtmf { digit, inband } => MediaAction::Emit(Event::Dtmf {
            digit,
            via: if inband {
                DtmfVia::Inband
            } else {
                DtmfVia::Rfc4733
            },
        }),
        MediaEvent::PlaybackFinished => MediaAction::Emit(Event::PlaybackFinished),
        MediaEvent::Amd(a) => MediaAction::Emit(Event::Amd(a)),
        MediaEvent::Progress(p) => MediaAction::Emit(Event::Progress(p)),
        // The session reports inactivity only while it expects to receive.
        MediaEvent::Inactive if held => MediaAction::Ignore,
        MediaEvent::Inactive => MediaAction::HangUp(EndCause::RtpInactivity),
        MediaEvent::SourceChanged { .. } => MediaAction::Ignore,
    }
}

/// How digits are sent to the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtmfRoute {
    /// RFC 4733 telephone-events (the peer negotiated them).
    Rfc4733,
    /// SIP INFO, for a peer that offered no telephone-event.
    SipInfo,
}

pub fn dtmf_route(plan: Option<&MediaPlan>) -> DtmfRoute {
    match plan.and_then(|p| p.telephone_event) {
        Some(_) => DtmfRoute::Rfc4733,
        None => DtmfRoute::SipInfo,
    }
}

/// The cause reported at hang-up: our own reason when we ended the call (the SIP layer then says
/// only "local hang-up"), otherwise the SIP layer's.
pub fn end_cause(ours: Option<&EndCause>, sip: HangupCause) -> EndCause {
    match (ours, sip) {
        (Some(c), HangupCause::LocalHangup) => c.clone(),
        _ => EndCause::Sip(sip),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::sdp::Negotiated;

    fn info(pt: u8, te: Option<u8>, dir: Direction, remote: Option<&str>) -> MediaInfo {
        MediaInfo {
            local_rtp_port: 20002,
            negotiated: Some(Negotiated {
                payload_type: pt,
                telephone_event: te,
                remote_rtp: remote.map(|r| r.parse().unwrap()),
                direction: dir,
            }),
        }
    }

    fn settings() -> MediaSettings {
        MediaSettings {
            bind_ip: "127.0.0.1".parse().unwrap(),
            inactivity_timeout: Some(Duration::from_secs(30)),
            inband_dtmf: true,
            jitter_depth: 3,
        }
    }

    #[test]
    fn plan_follows_the_negotiation() {
        let p = MediaPlan::from_info(&info(
            8,
            Some(96),
            Direction::SendRecv,
            Some("127.0.0.1:6000"),
        ))
        .unwrap();
        assert_eq!(
            (p.local_port, p.codec, p.payload_type, p.telephone_event),
            (20002, Codec::Pcma, 8, Some(96))
        );
        let c = p.session_config(&settings());
        assert_eq!(
            (c.codec, c.payload_type, c.dtmf.payload_type),
            (Codec::Pcma, 8, 96)
        );
        assert_eq!(c.receive.telephone_event, vec![96]);
        assert_eq!(c.inactivity_timeout, Some(Duration::from_secs(30)));
        assert!(c.inband_dtmf);
        assert_eq!(p.remote, Some("127.0.0.1:6000".parse().unwrap()));
    }

    #[test]
    fn non_g711_is_refused_and_no_negotiation_latches() {
        assert!(MediaPlan::from_info(&info(18, None, Direction::SendRecv, None)).is_err());
        let p = MediaPlan::from_info(&MediaInfo {
            local_rtp_port: 20004,
            negotiated: None,
        })
        .unwrap();
        assert_eq!(
            (p.codec, p.remote, p.flow()),
            (Codec::Pcmu, None, (true, true))
        );
        assert_eq!(
            p.session_config(&settings()).receive.telephone_event,
            vec![101, 96]
        );
    }

    #[test]
    fn hold_directions() {
        let flow = |d| {
            MediaPlan::from_info(&info(0, None, d, None))
                .unwrap()
                .flow()
        };
        assert_eq!(flow(Direction::SendRecv), (true, true));
        assert_eq!(flow(Direction::SendOnly), (true, false));
        assert_eq!(flow(Direction::RecvOnly), (false, true));
        assert_eq!(flow(Direction::Inactive), (false, false));
    }

    #[test]
    fn reinvite_diff() {
        let a = MediaPlan::from_info(&info(
            0,
            Some(101),
            Direction::SendRecv,
            Some("127.0.0.1:6000"),
        ))
        .unwrap();
        let hold = MediaPlan::from_info(&info(0, Some(101), Direction::RecvOnly, None)).unwrap();
        assert_eq!(
            diff(&a, &hold),
            PlanChange {
                codec: false,
                remote: false,
                flow: true
            }
        );
        let moved = MediaPlan::from_info(&info(
            8,
            Some(101),
            Direction::SendRecv,
            Some("127.0.0.1:6002"),
        ))
        .unwrap();
        assert_eq!(
            diff(&a, &moved),
            PlanChange {
                codec: true,
                remote: true,
                flow: false
            }
        );
        assert_eq!(diff(&a, &a), PlanChange::default());
    }

    #[test]
    fn media_events() {
        assert_eq!(
            on_media_event(
                MediaEvent::Dtmf {
                    digit: '5',
                    inband: false
                },
                false
            ),
            MediaAction::Emit(Event::Dtmf {
                digit: '5',
                via: DtmfVia::Rfc4733
            })
        );
        assert_eq!(
            on_media_event(
                MediaEvent::Dtmf {
                    digit: '#',
                    inband: true
                },
                false
            ),
            MediaAction::Emit(Event::Dtmf {
                digit: '#',
                via: DtmfVia::Inband
            })
        );
        assert_eq!(
            on_media_event(MediaEvent::Inactive, false),
            MediaAction::HangUp(EndCause::RtpInactivity)
        );
        assert_eq!(
            on_media_event(MediaEvent::Inactive, true),
            MediaAction::Ignore,
            "a held peer may send nothing"
        );
        assert_eq!(
            on_media_event(MediaEvent::SourceChanged { ssrc: 1 }, false),
            MediaAction::Ignore
        );
        assert_eq!(
            on_media_event(MediaEvent::PlaybackFinished, false),
            MediaAction::Emit(Event::PlaybackFinished)
        );
    }

    #[test]
    fn dtmf_goes_by_info_without_telephone_event() {
        let with = MediaPlan::from_info(&info(0, Some(101), Direction::SendRecv, None)).unwrap();
        let without = MediaPlan::from_info(&info(0, None, Direction::SendRecv, None)).unwrap();
        assert_eq!(dtmf_route(Some(&with)), DtmfRoute::Rfc4733);
        assert_eq!(dtmf_route(Some(&without)), DtmfRoute::SipInfo);
        assert_eq!(dtmf_route(None), DtmfRoute::SipInfo);
    }

    #[test]
    fn our_reason_wins_only_for_our_own_hangup() {
        let ours = EndCause::RtpInactivity;
        assert_eq!(
            end_cause(Some(&ours), HangupCause::LocalHangup),
            EndCause::RtpInactivity
        );
        // The peer's BYE crossed ours: the peer ended it.
        assert_eq!(
            end_cause(Some(&ours), HangupCause::RemoteBye),
            EndCause::Sip(HangupCause::RemoteBye)
        );
        assert_eq!(
            end_cause(None, HangupCause::LocalHangup),
            EndCause::Sip(HangupCause::LocalHangup)
        );
    }
}
