//! INVITE server transaction (RFC 3261 §17.2.1, RFC 6026 §7.1: the Accepted state and Timer L).
//!
//! A 100 Trying goes out at once (the TU may take longer than 200 ms to answer). 2xx responses
//! are sent once here; their retransmission until the ACK is the UAS core's job (RFC 3261 §13.3.1.4),
//! and the ACK for a 2xx is a separate transaction that the dialog layer matches.

use std::time::{Duration, Instant};

use rsip::{Method, Request, Response, SipMessage};

use super::{Armed, Output, TimerConfig, TimerId, absorb_wait};
use crate::sip::message;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Proceeding,
    Accepted,
    Completed,
    Confirmed,
    Terminated,
}

#[derive(Debug)]
pub struct ServerInvite {
    state: State,
    request: Request,
    last: Option<Response>,
    reliable: bool,
    cfg: TimerConfig,
    g_interval: Duration,
    armed: Armed,
}

impl ServerInvite {
    /// Takes a new INVITE; sends 100 Trying.
    pub fn start(
        request: Request,
        reliable: bool,
        cfg: TimerConfig,
        _now: Instant,
    ) -> (Self, Vec<Output>) {
        let trying = message::response_to(&request, 100, None);
        let me = Self {
            state: State::Proceeding,
            request,
            last: Some(trying.clone()),
            reliable,
            cfg,
            g_interval: cfg.t1,
            armed: Armed::default(),
        };
        (me, vec![Output::Send(SipMessage::Response(trying))])
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn request(&self) -> &Request {
        &self.request
    }

    /// The final response sent, if any.
    pub fn final_code(&self) -> Option<u16> {
        self.last
            .as_ref()
            .map(|r| r.status_code.code())
            .filter(|c| *c >= 200)
    }

    /// A retransmitted INVITE or an ACK (for a non-2xx final) matched to this transaction.
    pub fn on_request(&mut self, req: &Request, now: Instant) -> Vec<Output> {
        let mut out = Vec::new();
        match (self.state, &req.method) {
            (State::Proceeding | State::Completed, Method::Invite) => {
                if let Some(last) = &self.last {
                    out.push(Output::Send(SipMessage::Response(last.clone())));
                }
            }
            (State::Completed, Method::Ack) => {
                self.state = State::Confirmed;
                self.armed.stop(TimerId::G);
                self.armed.stop(TimerId::H);
                let i = absorb_wait(self.reliable, self.cfg.t4);
                self.armed.start(TimerId::I, now + i, &mut out);
            }
            // Accepted: INVITE retransmissions are absorbed (the UAS core retransmits the 2xx);
            // Confirmed: ACK retransmissions are absorbed.
            _ => {}
        }
        out
    }

    /// A response from the TU.
    pub fn respond(&mut self, resp: Response, now: Instant) -> Vec<Output> {
        let code = resp.status_code.code();
        let mut out = Vec::new();
        match (self.state, code) {
            (State::Proceeding, 100..=199) => {
                self.last = Some(resp.clone());
                out.push(Output::Send(SipMessage::Response(resp)));
            }
            (State::Proceeding, 200..=299) => {
                self.state = State::Accepted;
                self.last = Some(resp.clone());
                out.push(Output::Send(SipMessage::Response(resp)));
                self.armed.start(TimerId::L, now + self.cfg.t64(), &mut out);
            }
            // RFC 6026: the TU's 2xx retransmissions pass through the Accepted state.
            (State::Accepted, 200..=299) => out.push(Output::Send(SipMessage::Response(resp))),
            (State::Proceeding, 300..=699) => {
                self.state = State::Completed;
                self.last = Some(resp.clone());
                out.push(Output::Send(SipMessage::Response(resp)));
                if !self.reliable {
                    self.armed
                        .start(TimerId::G, now + self.g_interval, &mut out);
                }
                self.armed.start(TimerId::H, now + self.cfg.t64(), &mut out);
            }
            _ => {}
        }
        out
    }

    pub fn on_timer(&mut self, id: TimerId, now: Instant) -> Vec<Output> {
        let mut out = Vec::new();
        if !self.armed.take_due(id, now) {
            return out;
        }
        match (self.state, id) {
            (State::Completed, TimerId::G) => {
                if let Some(last) = &self.last {
                    out.push(Output::Send(SipMessage::Response(last.clone())));
                }
                self.g_interval = (self.g_interval * 2).min(self.cfg.t2);
                self.armed
                    .start(TimerId::G, now + self.g_interval, &mut out);
            }
            (State::Completed, TimerId::H) => {
                out.push(Output::Timeout);
                self.terminate(&mut out);
            }
            (State::Confirmed, TimerId::I) | (State::Accepted, TimerId::L) => {
                self.terminate(&mut out)
            }
            _ => {}
        }
        out
    }

    pub fn on_transport_error(&mut self) -> Vec<Output> {
        let mut out = vec![Output::TransportError];
        self.terminate(&mut out);
        out
    }

    fn terminate(&mut self, out: &mut Vec<Output>) {
        self.state = State::Terminated;
        self.armed.clear();
        out.push(Output::Terminated);
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    #[test]
    fn trying_at_once_and_retransmitted_invite_gets_last_provisional() {
        let now = Instant::now();
        let inv = request("INVITE");
        let (mut tx, out) = ServerInvite::start(inv.clone(), false, TimerConfig::default(), now);
        assert_eq!(sent_codes(&out), [100]);
        tx.respond(response(&inv, 180), now);
        assert_eq!(sent_codes(&tx.on_request(&inv, now)), [180]);
    }

    #[test]
    fn non2xx_retransmitted_on_g_until_ack_then_i() {
        let now = Instant::now();
        let cfg = TimerConfig::default();
        let inv = request("INVITE");
        let (mut tx, _) = ServerInvite::start(inv.clone(), false, cfg, now);
        let out = tx.respond(response(&inv, 487), now);
        assert_eq!(sent_codes(&out), [487]);
        let g = timer(&out, TimerId::G).unwrap();
        assert_eq!(g, now + cfg.t1);
        let out = tx.on_timer(TimerId::G, g);
        assert_eq!(sent_codes(&out), [487]);
        assert_eq!(timer(&out, TimerId::G), Some(g + cfg.t1 * 2));
        // Retransmitted INVITE: the 487 again.
        assert_eq!(sent_codes(&tx.on_request(&inv, g)), [487]);
        let out = tx.on_request(&request("ACK"), g);
        assert_eq!(tx.state(), State::Confirmed);
        let i = timer(&out, TimerId::I).unwrap();
        assert!(
            tx.on_timer(TimerId::G, g + cfg.t1 * 2).is_empty(),
            "G stopped by the ACK"
        );
        assert_eq!(tx.on_timer(TimerId::I, i), vec![Output::Terminated]);
    }

    #[test]
    fn no_ack_means_h_timeout() {
        let now = Instant::now();
        let cfg = TimerConfig::default();
        let inv = request("INVITE");
        let (mut tx, _) = ServerInvite::start(inv.clone(), false, cfg, now);
        tx.respond(response(&inv, 486), now);
        let out = tx.on_timer(TimerId::H, now + cfg.t64());
        assert_eq!(out, vec![Output::Timeout, Output::Terminated]);
    }

    #[test]
    fn two_hundred_enters_accepted_and_absorbs_invite_retransmissions() {
        let now = Instant::now();
        let cfg = TimerConfig::default();
        let inv = request("INVITE");
        let (mut tx, _) = ServerInvite::start(inv.clone(), false, cfg, now);
        let out = tx.respond(response(&inv, 200), now);
        assert_eq!(tx.state(), State::Accepted);
        let l = timer(&out, TimerId::L).unwrap();
        assert!(tx.on_request(&inv, now).is_empty());
        // The core's 2xx retransmission passes through.
        assert_eq!(sent_codes(&tx.respond(response(&inv, 200), now)), [200]);
        // A late 487 is refused once a 2xx went out.
        assert!(tx.respond(response(&inv, 487), now).is_empty());
        assert_eq!(tx.on_timer(TimerId::L, l), vec![Output::Terminated]);
    }
}
