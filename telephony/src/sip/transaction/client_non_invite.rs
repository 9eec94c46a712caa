//! Non-INVITE client transaction (RFC 3261 §17.1.2): BYE, CANCEL, OPTIONS, REGISTER, …

use std::time::{Duration, Instant};

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
pub struct ClientNonInvite {
    state: State,
    request: Request,
    reliable: bool,
    cfg: TimerConfig,
    e_interval: Duration,
    armed: Armed,
}

impl ClientNonInvite {
    /// Sends the request and arms E (unreliable transports) and F.
    pub fn start(
        request: Request,
        reliable: bool,
        cfg: TimerConfig,
        now: Instant,
    ) -> (Self, Vec<Output>) {
        let mut me = Self {
            state: State::Trying,
            request,
            reliable,
            cfg,
            e_interval: cfg.t1,
            armed: Armed::default(),
        };
        let mut out = vec![Output::Send(SipMessage::Request(me.request.clone()))];
        if !reliable {
            me.armed.start(TimerId::E, now + cfg.t1, &mut out);
        }
        me.armed.start(TimerId::F, now + cfg.t64(), &mut out);
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
            (State::Trying | State::Proceeding, 100..=199) => {
                self.state = State::Proceeding;
                out.push(Output::Response(resp));
            }
            (State::Trying | State::Proceeding, 200..=699) => {
                self.state = State::Completed;
                self.armed.clear();
                out.push(Output::Response(resp));
                let k = absorb_wait(self.reliable, self.cfg.t4);
                self.armed.start(TimerId::K, now + k, &mut out);
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
            (State::Trying | State::Proceeding, TimerId::E) => {
                out.push(Output::Send(SipMessage::Request(self.request.clone())));
                // Trying: double up to T2; Proceeding: every T2.
                self.e_interval = if self.state == State::Trying {
                    (self.e_interval * 2).min(self.cfg.t2)
                } else {
                    self.cfg.t2
                };
                self.armed
                    .start(TimerId::E, now + self.e_interval, &mut out);
            }
            (State::Trying | State::Proceeding, TimerId::F) => {
                out.push(Output::Timeout);
                self.terminate(&mut out);
            }
            (State::Completed, TimerId::K) => self.terminate(&mut out),
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
    fn e_doubles_up_to_t2_then_f_times_out() {
        let now = Instant::now();
        let cfg = TimerConfig::default();
        let (mut tx, out) = ClientNonInvite::start(request("BYE"), false, cfg, now);
        let mut at = timer(&out, TimerId::E).unwrap();
        let mut intervals = Vec::new();
        let mut prev = now;
        while at < now + cfg.t64() {
            let out = tx.on_timer(TimerId::E, at);
            assert_eq!(sent(&out).len(), 1);
            intervals.push(at - prev);
            prev = at;
            at = timer(&out, TimerId::E).unwrap();
        }
        let ms: Vec<u128> = intervals.iter().take(6).map(|d| d.as_millis()).collect();
        assert_eq!(ms, [500, 1000, 2000, 4000, 4000, 4000]);
        let out = tx.on_timer(TimerId::F, now + cfg.t64());
        assert_eq!(out, vec![Output::Timeout, Output::Terminated]);
    }

    #[test]
    fn final_response_completes_then_k() {
        let now = Instant::now();
        let cfg = TimerConfig::default();
        let bye = request("BYE");
        let (mut tx, _) = ClientNonInvite::start(bye.clone(), false, cfg, now);
        let out = tx.on_response(response(&bye, 200), now);
        assert!(matches!(out[0], Output::Response(_)));
        assert_eq!(timer(&out, TimerId::K), Some(now + cfg.t4));
        // Retransmitted 200 is absorbed; E no longer fires.
        assert!(tx.on_response(response(&bye, 200), now).is_empty());
        assert!(tx.on_timer(TimerId::E, now + cfg.t1).is_empty());
        assert_eq!(
            tx.on_timer(TimerId::K, now + cfg.t4),
            vec![Output::Terminated]
        );
    }

    #[test]
    fn proceeding_retransmits_every_t2() {
        let now = Instant::now();
        let cfg = TimerConfig::default();
        let req = request("OPTIONS");
        let (mut tx, _) = ClientNonInvite::start(req.clone(), false, cfg, now);
        tx.on_response(response(&req, 100), now);
        let out = tx.on_timer(TimerId::E, now + cfg.t1);
        assert_eq!(timer(&out, TimerId::E), Some(now + cfg.t1 + cfg.t2));
    }
}
