//! INVITE client transaction (RFC 3261 §17.1.1, RFC 6026 §8.4: the Accepted state and Timer M).

use std::time::{Duration, Instant};

use rsip::{Request, Response, SipMessage};

use super::{Armed, Output, TimerConfig, TimerId, absorb_wait};
use crate::sip::message;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Calling,
    Proceeding,
    Accepted,
    Completed,
    Terminated,
}

#[derive(Debug)]
pub struct ClientInvite {
    state: State,
    request: Request,
    ack: Option<Request>,
    reliable: bool,
    cfg: TimerConfig,
    a_interval: Duration,
    armed: Armed,
}

impl ClientInvite {
    /// Sends the INVITE and arms A (unreliable transports) and B.
    pub fn start(
        request: Request,
        reliable: bool,
        cfg: TimerConfig,
        now: Instant,
    ) -> (Self, Vec<Output>) {
        let mut me = Self {
            state: State::Calling,
            request,
            ack: None,
            reliable,
            cfg,
            a_interval: cfg.t1,
            armed: Armed::default(),
        };
        let mut out = vec![Output::Send(SipMessage::Request(me.request.clone()))];
        if !reliable {
            me.armed.start(TimerId::A, now + cfg.t1, &mut out);
        }
        me.armed.start(TimerId::B, now + cfg.t64(), &mut out);
        (me, out)
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn request(&self) -> &Request {
        &self.request
    }

    pub fn on_response(&mut self, resp: Response, now: Instant) -> Vec<Output> {
        let code = resp.status_code.code();
        let mut out = Vec::new();
        match (self.state, code) {
            (State::Calling | State::Proceeding, 100..=199) => {
                self.state = State::Proceeding;
                self.armed.stop(TimerId::A);
                self.armed.stop(TimerId::B);
                out.push(Output::Response(resp));
            }
            (State::Calling | State::Proceeding, 200..=299) => {
                self.state = State::Accepted;
                self.armed.clear();
                self.armed.start(TimerId::M, now + self.cfg.t64(), &mut out);
                out.push(Output::Response(resp));
            }
            (State::Calling | State::Proceeding, 300..=699) => {
                self.state = State::Completed;
                self.armed.clear();
                let ack = ack_for(&self.request, &resp);
                out.push(Output::Send(SipMessage::Request(ack.clone())));
                self.ack = Some(ack);
                let d = absorb_wait(self.reliable, Duration::from_secs(32));
                self.armed.start(TimerId::D, now + d, &mut out);
                out.push(Output::Response(resp));
            }
            // RFC 6026: 2xx retransmissions go to the TU, which ACKs them again.
            (State::Accepted, 200..=299) => out.push(Output::Response(resp)),
            (State::Completed, 300..=699) => {
                if let Some(ack) = &self.ack {
                    out.push(Output::Send(SipMessage::Request(ack.clone())));
                }
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
            (State::Calling, TimerId::A) => {
                out.push(Output::Send(SipMessage::Request(self.request.clone())));
                self.a_interval *= 2;
                self.armed
                    .start(TimerId::A, now + self.a_interval, &mut out);
            }
            (State::Calling, TimerId::B) => {
                self.terminate(&mut out);
                out.insert(0, Output::Timeout);
            }
            (State::Completed, TimerId::D) | (State::Accepted, TimerId::M) => {
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

/// The ACK for a non-2xx final (RFC 3261 §17.1.1.3): same Request-URI, Call-ID, From, CSeq
/// number, top Via and Route as the INVITE; To from the response.
pub fn ack_for(invite: &Request, resp: &Response) -> Request {
    let mut headers = rsip::Headers::default();
    if let Some(via) = message::values(&invite.headers, "Via").into_iter().next() {
        headers.push(message::header("Via", via));
    }
    for r in message::values(&invite.headers, "Route") {
        headers.push(message::header("Route", r));
    }
    for name in ["From", "Call-ID"] {
        if let Some(v) = message::value(&invite.headers, name) {
            headers.push(message::header(name, v));
        }
    }
    if let Some(v) = message::value(&resp.headers, "To") {
        headers.push(message::header("To", v));
    }
    let n = message::cseq(&invite.headers).map(|c| c.0).unwrap_or(1);
    headers.push(message::header("CSeq", format!("{n} ACK")));
    headers.push(message::header("Max-Forwards", "70"));
    headers.push(rsip::Header::ContentLength(0.into()));
    Request {
        method: rsip::Method::Ack,
        uri: invite.uri.clone(),
        version: rsip::Version::V2,
        headers,
        body: vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    fn t0() -> Instant {
        Instant::now()
    }

    #[test]
    fn retransmits_on_a_doubling_until_b() {
        let now = t0();
        let cfg = TimerConfig::default();
        let (mut tx, out) = ClientInvite::start(request("INVITE"), false, cfg, now);
        assert_eq!(sent(&out).len(), 1);
        assert_eq!(timer(&out, TimerId::A), Some(now + cfg.t1));
        assert_eq!(timer(&out, TimerId::B), Some(now + cfg.t64()));
        let mut at = now + cfg.t1;
        let mut gaps = Vec::new();
        let mut last = now;
        loop {
            let out = tx.on_timer(TimerId::A, at);
            if out.is_empty() {
                break;
            }
            assert_eq!(sent(&out).len(), 1);
            gaps.push(at - last);
            last = at;
            at = timer(&out, TimerId::A).unwrap();
            if at > now + cfg.t64() {
                break;
            }
        }
        assert_eq!(gaps[..4], [cfg.t1, cfg.t1 * 2, cfg.t1 * 4, cfg.t1 * 8]);
        let out = tx.on_timer(TimerId::B, now + cfg.t64());
        assert_eq!(out.first(), Some(&Output::Timeout));
        assert_eq!(tx.state(), State::Terminated);
        // A stale A firing after termination does nothing.
        assert!(tx.on_timer(TimerId::A, now + cfg.t64() * 2).is_empty());
    }

    #[test]
    fn early_timer_is_ignored() {
        let now = t0();
        let (mut tx, _) =
            ClientInvite::start(request("INVITE"), false, TimerConfig::default(), now);
        assert!(
            tx.on_timer(TimerId::A, now + Duration::from_millis(100))
                .is_empty()
        );
    }

    #[test]
    fn reliable_transport_has_no_a() {
        let (_, out) = ClientInvite::start(request("INVITE"), true, TimerConfig::default(), t0());
        assert!(timer(&out, TimerId::A).is_none());
        assert!(timer(&out, TimerId::B).is_some());
    }

    #[test]
    fn provisional_stops_retransmissions_and_final_non2xx_is_acked() {
        let now = t0();
        let inv = request("INVITE");
        let (mut tx, _) = ClientInvite::start(inv.clone(), false, TimerConfig::default(), now);
        let out = tx.on_response(response(&inv, 180), now);
        assert!(matches!(out[..], [Output::Response(_)]));
        assert_eq!(tx.state(), State::Proceeding);
        assert!(
            tx.on_timer(TimerId::A, now + Duration::from_secs(1))
                .is_empty()
        );
        let out = tx.on_response(response(&inv, 486), now);
        let acks = sent(&out);
        assert_eq!(acks.len(), 1);
        let SipMessage::Request(ack) = &acks[0] else {
            panic!()
        };
        assert_eq!(ack.method, rsip::Method::Ack);
        assert_eq!(
            message::branch(&ack.headers).as_deref(),
            Some("z9hG4bKtest1")
        );
        assert_eq!(message::to_tag(&ack.headers).as_deref(), Some("b1"));
        assert_eq!(message::cseq(&ack.headers), Some((1, rsip::Method::Ack)));
        assert_eq!(tx.state(), State::Completed);
        // A retransmitted 486 is ACKed again and not passed up.
        let out = tx.on_response(response(&inv, 486), now);
        assert_eq!(sent(&out).len(), 1);
        assert!(!out.iter().any(|o| matches!(o, Output::Response(_))));
        let d = timer(&tx.on_response(response(&inv, 486), now), TimerId::D);
        assert!(d.is_none());
        let out = tx.on_timer(TimerId::D, now + Duration::from_secs(32));
        assert_eq!(out, vec![Output::Terminated]);
    }

    #[test]
    fn two_hundred_goes_to_accepted_and_retransmissions_reach_tu() {
        let now = t0();
        let cfg = TimerConfig::default();
        let inv = request("INVITE");
        let (mut tx, _) = ClientInvite::start(inv.clone(), false, cfg, now);
        let out = tx.on_response(response(&inv, 200), now);
        assert_eq!(tx.state(), State::Accepted);
        assert!(
            sent(&out).is_empty(),
            "the TU ACKs a 2xx, not the transaction"
        );
        assert_eq!(timer(&out, TimerId::M), Some(now + cfg.t64()));
        let out = tx.on_response(response(&inv, 200), now + Duration::from_secs(1));
        assert!(matches!(out[..], [Output::Response(_)]));
        assert_eq!(
            tx.on_timer(TimerId::M, now + cfg.t64()),
            vec![Output::Terminated]
        );
    }
}
