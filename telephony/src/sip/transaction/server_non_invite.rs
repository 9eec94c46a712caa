//! Non-INVITE server transaction (RFC 3261 §17.2.2).

use std::time::Instant;

use rsip::{Request, Response, SipMessage};

use super::{Armed, Output, TimerConfig, TimerId, absorb_wait};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Trying,
    Proceeding,
    Completed,
    Terminated,
}

#[derive(Debug)]
pub struct ServerNonInvite {
    state: State,
    request: Request,
    last: Option<Response>,
    reliable: bool,
    cfg: TimerConfig,
    armed: Armed,
}

impl ServerNonInvite {
    pub fn start(
        request: Request,
        reliable: bool,
        cfg: TimerConfig,
        _now: Instant,
    ) -> (Self, Vec<Output>) {
        let me = Self {
            state: State::Trying,
            request,
            last: None,
            reliable,
            cfg,
            armed: Armed::default(),
        };
        (me, Vec::new())
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn request(&self) -> &Request {
        &self.request
    }

    /// A retransmission of the request: the last response again, if there is one.
    pub fn on_request(&mut self, _req: &Request, _now: Instant) -> Vec<Output> {
        match (self.state, &self.last) {
            (State::Proceeding | State::Completed, Some(last)) => {
                vec![Output::Send(SipMessage::Response(last.clone()))]
            }
            _ => Vec::new(),
        }
    }

    pub fn respond(&mut self, resp: Response, now: Instant) -> Vec<Output> {
        let code = resp.status_code.code();
        let mut out = Vec::new();
        match (self.state, code) {
            (State::Trying | State::Proceeding, 100..=199) => {
                self.state = State::Proceeding;
                self.last = Some(resp.clone());
                out.push(Output::Send(SipMessage::Response(resp)));
            }
            (State::Trying | State::Proceeding, 200..=699) => {
                self.state = State::Completed;
                self.last = Some(resp.clone());
                out.push(Output::Send(SipMessage::Response(resp)));
                let j = absorb_wait(self.reliable, self.cfg.t64());
                self.armed.start(TimerId::J, now + j, &mut out);
            }
            _ => {}
        }
        out
    }

    pub fn on_timer(&mut self, id: TimerId, now: Instant) -> Vec<Output> {
        let mut out = Vec::new();
        if self.armed.take_due(id, now) && id == TimerId::J && self.state == State::Completed {
            self.state = State::Terminated;
            self.armed.clear();
            out.push(Output::Terminated);
        }
        out
    }

    pub fn on_transport_error(&mut self) -> Vec<Output> {
        self.state = State::Terminated;
        self.armed.clear();
        vec![Output::TransportError, Output::Terminated]
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    #[test]
    fn retransmission_before_response_is_absorbed_after_it_answered() {
        let now = Instant::now();
        let cfg = TimerConfig::default();
        let bye = request("BYE");
        let (mut tx, out) = ServerNonInvite::start(bye.clone(), false, cfg, now);
        assert!(out.is_empty());
        assert!(tx.on_request(&bye, now).is_empty());
        let out = tx.respond(response(&bye, 200), now);
        assert_eq!(sent_codes(&out), [200]);
        let j = timer(&out, TimerId::J).unwrap();
        assert_eq!(j, now + cfg.t64());
        assert_eq!(sent_codes(&tx.on_request(&bye, now)), [200]);
        assert!(
            tx.respond(response(&bye, 500), now).is_empty(),
            "only one final"
        );
        assert_eq!(tx.on_timer(TimerId::J, j), vec![Output::Terminated]);
    }

    #[test]
    fn reliable_transport_terminates_at_once() {
        let now = Instant::now();
        let bye = request("BYE");
        let (mut tx, _) = ServerNonInvite::start(bye.clone(), true, TimerConfig::default(), now);
        let out = tx.respond(response(&bye, 200), now);
        assert_eq!(timer(&out, TimerId::J), Some(now));
    }
}
