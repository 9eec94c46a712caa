//! The transaction layer (RFC 3261 §17 with RFC 6026's corrections) as sans-IO state machines.
//!
//! Each machine is fed a message or a timer firing together with `now`, and answers with
//! [`Output`]s: messages to send to its peer, timers to start, responses for the transaction user
//! (TU), timeouts, termination. It owns no socket and never sleeps; the driver turns `StartTimer`
//! into a deadline and calls `on_timer(id, now)` when it passes (a stale firing is ignored, so the
//! driver never has to cancel anything).

pub mod client_invite;
pub mod client_non_invite;
pub mod server_invite;
pub mod server_non_invite;

use std::time::{Duration, Instant};

use rsip::Method;

pub use client_invite::ClientInvite;
pub use client_non_invite::ClientNonInvite;
pub use server_invite::ServerInvite;
pub use server_non_invite::ServerNonInvite;

use super::message;

/// RFC 3261 timer base values.
#[derive(Debug, Clone, Copy)]
pub struct TimerConfig {
    pub t1: Duration,
    pub t2: Duration,
    pub t4: Duration,
}

impl Default for TimerConfig {
    fn default() -> Self {
        Self {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

impl TimerConfig {
    pub fn t64(&self) -> Duration {
        self.t1 * 64
    }
}

/// The wait of a timer that only absorbs retransmissions (D, I, J, K): `wait` on an unreliable
/// transport, zero on a reliable one, where the peer retransmits nothing.
pub(crate) fn absorb_wait(reliable: bool, wait: Duration) -> Duration {
    if reliable { Duration::ZERO } else { wait }
}

/// The RFC 3261 / RFC 6026 transaction timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TimerId {
    /// INVITE client: retransmit (unreliable transports).
    A,
    /// INVITE client: transaction timeout.
    B,
    /// INVITE client: wait time for response retransmissions after a non-2xx final.
    D,
    /// Non-INVITE client: retransmit.
    E,
    /// Non-INVITE client: transaction timeout.
    F,
    /// INVITE server: retransmit the non-2xx final.
    G,
    /// INVITE server: give up waiting for the ACK.
    H,
    /// INVITE server: absorb ACK retransmissions.
    I,
    /// Non-INVITE server: absorb request retransmissions.
    J,
    /// Non-INVITE client: absorb response retransmissions.
    K,
    /// INVITE server (RFC 6026): absorb INVITE retransmissions after a 2xx.
    L,
    /// INVITE client (RFC 6026): accept 2xx retransmissions.
    M,
}

/// What a machine asks of its driver and its TU.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Send this message to the transaction's peer.
    Send(rsip::SipMessage),
    /// Call `on_timer(id, at)` once `at` has passed.
    StartTimer(TimerId, Instant),
    /// Client: a response for the TU.
    Response(rsip::Response),
    /// Client: no final response in time (B/F); server INVITE: no ACK for a non-2xx (H).
    Timeout,
    /// The transport could not deliver.
    TransportError,
    /// The machine is done and can be forgotten.
    Terminated,
}

/// Armed timers of one machine.
#[derive(Debug, Default, Clone)]
pub(crate) struct Armed(Vec<(TimerId, Instant)>);

impl Armed {
    pub(crate) fn start(&mut self, id: TimerId, at: Instant, out: &mut Vec<Output>) {
        self.stop(id);
        self.0.push((id, at));
        out.push(Output::StartTimer(id, at));
    }

    pub(crate) fn stop(&mut self, id: TimerId) {
        self.0.retain(|(t, _)| *t != id);
    }

    /// True when `id` is armed and due: it is then disarmed.
    pub(crate) fn take_due(&mut self, id: TimerId, now: Instant) -> bool {
        match self.0.iter().position(|(t, at)| *t == id && *at <= now) {
            Some(i) => {
                self.0.remove(i);
                true
            }
            None => false,
        }
    }

    pub(crate) fn clear(&mut self) {
        self.0.clear();
    }
}

/// Identifies a client transaction: top Via branch + CSeq method (RFC 3261 §17.1.3).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientKey {
    pub branch: String,
    pub method: String,
}

impl ClientKey {
    pub fn of(headers: &rsip::Headers) -> Option<Self> {
        Some(Self {
            branch: message::branch(headers)?,
            method: message::cseq(headers)?.1.to_string(),
        })
    }
}

/// Identifies a server transaction: branch + sent-by + method, an ACK matching its INVITE
/// (RFC 3261 §17.2.3).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServerKey {
    pub branch: String,
    pub sent_by: String,
    pub method: String,
}

impl ServerKey {
    pub fn of(req: &rsip::Request) -> Option<Self> {
        let method = if req.method == Method::Ack {
            Method::Invite
        } else {
            req.method
        };
        Some(Self {
            branch: message::branch(&req.headers)?,
            sent_by: message::via_sent_by(&req.headers).unwrap_or_default(),
            method: method.to_string(),
        })
    }

    /// The key of the INVITE a CANCEL with this key targets.
    pub fn invite_for_cancel(&self) -> Self {
        Self {
            method: Method::Invite.to_string(),
            ..self.clone()
        }
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::*;

    pub fn request(method: &str) -> rsip::Request {
        let raw = format!(
            "{method} sip:bob@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKtest1\r\n\
From: <sip:alice@127.0.0.1>;tag=a1\r\nTo: <sip:bob@127.0.0.1>\r\nCall-ID: call-1\r\n\
CSeq: 1 {method}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        );
        match message::parse(raw.as_bytes(), 65535).unwrap() {
            rsip::SipMessage::Request(r) => r,
            _ => unreachable!(),
        }
    }

    pub fn response(req: &rsip::Request, code: u16) -> rsip::Response {
        message::response_to(req, code, Some("b1"))
    }

    pub fn sent(out: &[Output]) -> Vec<rsip::SipMessage> {
        out.iter()
            .filter_map(|o| {
                if let Output::Send(m) = o {
                    Some(m.clone())
                } else {
                    None
                }
            })
            .collect()
    }

    pub fn timer(out: &[Output], id: TimerId) -> Option<Instant> {
        out.iter().find_map(|o| match o {
            Output::StartTimer(t, at) if *t == id => Some(*at),
            _ => None,
        })
    }

    pub fn sent_codes(out: &[Output]) -> Vec<u16> {
        sent(out)
            .into_iter()
            .filter_map(|m| {
                if let rsip::SipMessage::Response(r) = m {
                    Some(r.status_code.code())
                } else {
                    None
                }
            })
            .collect()
    }
}
