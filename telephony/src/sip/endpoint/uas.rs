//! The UAS side of the core: new requests, inbound calls, 2xx retransmission until the ACK,
//! BYE, CANCEL (487), OPTIONS, re-INVITE (hold/resume), INFO digits.

use std::time::Instant;

use rsip::{Method, Request, SipMessage};

use super::{Call, CallTimer, Endpoint, Peer, Pending2xx, random_hex};
use crate::sip::call::{CallEvent, CallId, HangupCause};
use crate::sip::dialog::Dialog;
use crate::sip::message;
use crate::sip::outcome::Outcome;
use crate::sip::sdp;
use crate::sip::session_timer;
use crate::sip::transaction::{ServerKey, server_invite};

const ALLOW: &str = "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, REGISTER, REFER, NOTIFY, UPDATE";

fn sdp_body(req: &Request) -> Option<Result<sdp::Sdp, String>> {
    if req.body.is_empty() {
        return None;
    }
    let ct = message::value(&req.headers, "Content-Type").unwrap_or_default();
    if !ct.to_ascii_lowercase().starts_with("application/sdp") {
        return Some(Err(format!("unsupported body type {ct}")));
    }
    Some(
        std::str::from_utf8(&req.body)
            .map_err(|e| e.to_string())
            .and_then(sdp::Sdp::parse),
    )
}

impl Endpoint {
    pub(super) fn on_new_request(
        &mut self,
        key: ServerKey,
        req: Request,
        peer: Peer,
        now: Instant,
    ) {
        // RFC 3261 §16.3/§8.2.2.3: exhausted Max-Forwards, and extensions we do not support.
        if message::value(&req.headers, "Max-Forwards").is_some_and(|m| m.trim() == "0")
            && req.method != Method::Options
        {
            return self.respond_code(&key, &req, 483, now);
        }
        let unsupported: Vec<String> = message::values(&req.headers, "Require")
            .into_iter()
            .filter(|r| !r.eq_ignore_ascii_case("timer"))
            .collect();
        if !unsupported.is_empty() && req.method != Method::Cancel {
            let tag = message::to_tag(&req.headers).is_none().then(random_hex);
            let mut resp = message::response_to(&req, 420, tag.as_deref());
            resp.headers
                .push(message::header("Unsupported", unsupported.join(", ")));
            return self.respond(&key, resp, now);
        }
        let to_tag = message::to_tag(&req.headers);
        if to_tag.is_some() {
            return self.in_dialog(key, req, now);
        }
        match req.method {
            Method::Invite => self.new_invite(key, req, peer, now),
            Method::Cancel => self.cancel(key, req, now),
            Method::Options => {
                let mut resp = message::response_to(&req, 200, Some(&random_hex()));
                resp.headers.push(message::header("Allow", ALLOW));
                resp.headers
                    .push(message::header("Accept", "application/sdp"));
                resp.headers
                    .push(message::header("Server", &self.cfg.user_agent));
                self.respond(&key, resp, now);
            }
            Method::Bye | Method::Info | Method::Refer | Method::Notify | Method::Update => {
                self.respond_code(&key, &req, 481, now)
            }
            Method::Register => self.registrar(key, req, peer, now),
            Method::Subscribe | Method::Message => self.respond_code(&key, &req, 501, now),
            _ => self.respond_code(&key, &req, 405, now),
        }
    }

    fn new_invite(&mut self, key: ServerKey, req: Request, peer: Peer, now: Instant) {
        if self.draining {
            return self.respond_code(&key, &req, 503, now);
        }
        let Some(user) = self.admit(&key, &req, &peer, now) else {
            return;
        };
        if let Err(min) = session_timer::uas_negotiate(&req.headers, self.cfg.min_se) {
            let mut resp = message::response_to(&req, 422, Some(&random_hex()));
            resp.headers
                .push(message::header("Min-SE", min.to_string()));
            return self.respond(&key, resp, now);
        }
        let offer = match sdp_body(&req) {
            None => None,
            Some(Ok(o)) => Some(o),
            Some(Err(_)) => return self.respond_code(&key, &req, 488, now),
        };
        let Some(rtp_lease) = self.lease_rtp_port() else {
            return self.respond_code(&key, &req, 503, now);
        };
        let local_tag = random_hex();
        let Some(dialog) = Dialog::uas(&req, &local_tag) else {
            return self.respond_code(&key, &req, 400, now);
        };
        let id = self.new_call_id();
        self.created_inbound += 1;
        let source = peer.addr;
        let call = Call {
            id,
            inbound: true,
            peer,
            dialog: Some(dialog.clone()),
            rtp_port: rtp_lease.port(),
            _rtp_lease: rtp_lease,
            sdp_version: 1,
            session_id: rand::random::<u32>() as u64,
            media: None,
            answered: false,
            confirmed: false,
            invite_key: Some(key.clone()),
            invite: Some(req.clone()),
            local_tag: local_tag.clone(),
            pending_2xx: None,
            offer,
            reinvite: None,
            session: None,
            session_due: None,
            offered: sdp::Direction::SendRecv,
            out: None,
        };
        // Check the offer can be answered before ringing.
        if let Some(o) = &call.offer
            && sdp::answer(o, &self.local_sdp(&call)).is_err()
        {
            // Dropping `call` gives its port back.
            return self.respond_code(&key, &req, 488, now);
        }
        self.dialogs
            .insert((dialog.call_id.clone(), local_tag.clone()), id);
        self.calls.insert(id, call);
        let mut ringing = message::response_to(&req, 180, Some(&local_tag));
        ringing.headers.push(message::header(
            "Contact",
            self.contact("dialbridge", key_transport(&self.calls[&id])),
        ));
        self.respond(&key, ringing, now);
        self.emit(CallEvent::Incoming {
            call: id,
            from: message::value(&req.headers, "From").unwrap_or_default(),
            to: message::value(&req.headers, "To").unwrap_or_default(),
            request_uri: req.uri.to_string(),
            user,
            source,
        });
        self.emit(CallEvent::Ringing {
            call: id,
            code: 180,
        });
        match self.cfg.auto_answer {
            Some(d) if d.is_zero() => self.answer(id, now),
            Some(d) => self.timer(now + d, id, CallTimer::Answer),
            None => {}
        }
    }

    /// Answers a ringing inbound call with 200 + SDP.
    pub(super) fn answer(&mut self, id: CallId, now: Instant) {
        let Some(call) = self.calls.get(&id) else {
            return;
        };
        if !call.inbound || call.answered {
            return;
        }
        let (Some(key), Some(req)) = (call.invite_key.clone(), call.invite.clone()) else {
            return;
        };
        let local = self.local_sdp(call);
        let (body, media) = match &call.offer {
            Some(o) => match sdp::answer(o, &local) {
                Ok((a, n)) => (a.to_text(), Some(n)),
                Err(_) => return self.reject(id, 488, now),
            },
            // No offer in the INVITE: we offer in the 200, the answer comes in the ACK.
            None => (sdp::offer(&local, sdp::Direction::SendRecv).to_text(), None),
        };
        let mut ok = message::response_to(&req, 200, Some(&call.local_tag));
        ok.headers.push(message::header(
            "Contact",
            self.contact("dialbridge", key_transport(call)),
        ));
        ok.headers.push(message::header("Allow", ALLOW));
        let session = session_timer::uas_negotiate(&req.headers, self.cfg.min_se)
            .ok()
            .flatten();
        if let Some((_, add)) = &session {
            for (n, v) in add {
                ok.headers.push(message::header(n, v));
            }
        }
        message::set_body(
            &mut ok.headers,
            &mut ok.body,
            Some("application/sdp"),
            body.into_bytes(),
        );
        let cseq = message::cseq(&req.headers).map(|c| c.0).unwrap_or(0);
        let reliable = call.peer.transport.reliable();
        let t1 = self.cfg.timers.t1;
        let call = self.calls.get_mut(&id).expect("checked");
        call.answered = true;
        call.media = media;
        call.pending_2xx = Some(Pending2xx {
            response: ok.clone(),
            cseq,
            interval: t1,
            key: key.clone(),
            initial: true,
        });
        self.respond(&key, ok, now);
        if !reliable {
            self.timer(now + t1, id, CallTimer::Retransmit2xx);
        }
        self.timer(now + self.cfg.timers.t64(), id, CallTimer::AckTimeout);
        if let Some((t, _)) = session {
            self.session_start(id, Some(t), now);
        }
    }

    pub(super) fn reject(&mut self, id: CallId, code: u16, now: Instant) {
        self.reject_with_cause(id, code, HangupCause::Rejected, now);
    }

    pub(super) fn reject_with_cause(
        &mut self,
        id: CallId,
        code: u16,
        cause: HangupCause,
        now: Instant,
    ) {
        let Some(call) = self.calls.get(&id) else {
            return;
        };
        if !call.inbound || call.answered {
            return;
        }
        let (Some(key), Some(req)) = (call.invite_key.clone(), call.invite.clone()) else {
            return;
        };
        let mut resp = message::response_to(&req, code, Some(&call.local_tag));
        resp.headers
            .push(message::header("Server", &self.cfg.user_agent));
        self.respond(&key, resp, now);
        self.end_call(id, cause, Some(code), Outcome::from_code(code));
    }

    pub(super) fn retransmit_2xx(&mut self, id: CallId, now: Instant) {
        let t2 = self.cfg.timers.t2;
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let Some(p) = call.pending_2xx.as_mut() else {
            return;
        };
        let resp = p.response.clone();
        let key = p.key.clone();
        p.interval = (p.interval * 2).min(t2);
        let next = now + p.interval;
        let peer = call.peer.clone();
        if self.server.contains_key(&key) {
            self.respond(&key, resp, now);
        } else {
            self.send_raw(peer, &SipMessage::Response(resp));
        }
        self.timer(next, id, CallTimer::Retransmit2xx);
    }

    pub(super) fn ack_timeout(&mut self, id: CallId, now: Instant) {
        let Some(call) = self.calls.get(&id) else {
            return;
        };
        if call.pending_2xx.is_none() {
            return;
        }
        let initial = call.pending_2xx.as_ref().is_some_and(|p| p.initial);
        if let Some(call) = self.calls.get_mut(&id) {
            call.pending_2xx = None;
        }
        self.send_bye(id, now);
        let cause = if initial {
            HangupCause::AckTimeout
        } else {
            HangupCause::LocalHangup
        };
        self.end_call(id, cause, None, Outcome::Answered);
    }

    /// An ACK that is not part of a server transaction: the ACK for our 2xx.
    pub(super) fn ack_2xx(&mut self, ack: &Request, _now: Instant) {
        let Some(id) = self.find_dialog(&ack.headers, message::to_tag(&ack.headers)) else {
            return;
        };
        let seq = message::cseq(&ack.headers).map(|c| c.0);
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let Some(p) = &call.pending_2xx else { return };
        if Some(p.cseq) != seq {
            return;
        }
        let initial = p.initial;
        call.pending_2xx = None;
        if call.offer.is_none() && initial && !ack.body.is_empty() {
            // Late offer: the answer is in the ACK.
            if let Some(n) = std::str::from_utf8(&ack.body)
                .ok()
                .and_then(|t| sdp::Sdp::parse(t).ok())
                .and_then(|a| sdp::accept_answer(&a).ok())
            {
                call.media = Some(n);
            }
        }
        if initial {
            call.confirmed = true;
            let media = self.media_info(&self.calls[&id]);
            self.emit(CallEvent::Answered { call: id, media });
        }
    }

    fn cancel(&mut self, key: ServerKey, req: Request, now: Instant) {
        let invite_key = key.invite_for_cancel();
        match self.server_invite_state(&invite_key) {
            None => self.respond_code(&key, &req, 481, now),
            Some(state) => {
                // The CANCEL's 200 carries the same To tag as the INVITE's responses.
                let call = self
                    .calls
                    .values()
                    .find(|c| c.invite_key.as_ref() == Some(&invite_key))
                    .map(|c| c.id);
                let tag = call
                    .and_then(|id| self.calls.get(&id))
                    .map(|c| c.local_tag.clone())
                    .unwrap_or_else(random_hex);
                let mut ok = message::response_to(&req, 200, Some(&tag));
                ok.headers
                    .push(message::header("Server", &self.cfg.user_agent));
                self.respond(&key, ok, now);
                if state == server_invite::State::Proceeding {
                    match call {
                        Some(id) => self.reject_with_cause(id, 487, HangupCause::RemoteCancel, now),
                        None => {
                            if let Some(inv) = self.invite_request(&invite_key) {
                                self.respond_code(&invite_key, &inv, 487, now);
                            }
                        }
                    }
                }
            }
        }
    }

    fn invite_request(&self, key: &ServerKey) -> Option<Request> {
        match self.server.get(key) {
            Some(super::ServerEntry {
                tx: super::ServerTx::Invite(t),
                ..
            }) => Some(t.request().clone()),
            _ => None,
        }
    }

    fn in_dialog(&mut self, key: ServerKey, req: Request, now: Instant) {
        let Some(id) = self.find_dialog(&req.headers, message::to_tag(&req.headers)) else {
            return self.respond_code(&key, &req, 481, now);
        };
        let Some((seq, method)) = message::cseq(&req.headers) else {
            return;
        };
        let in_order = self
            .calls
            .get_mut(&id)
            .and_then(|c| c.dialog.as_mut())
            .map(|d| d.accept_remote_seq(seq, &method));
        if in_order == Some(false) {
            return self.respond_code(&key, &req, 500, now);
        }
        match req.method {
            Method::Bye => {
                self.respond_code(&key, &req, 200, now);
                let answered = self.calls.get(&id).is_some_and(|c| c.answered);
                let outcome = if answered {
                    Outcome::Answered
                } else {
                    Outcome::NoAnswer
                };
                if !answered && self.calls.get(&id).is_some_and(|c| c.inbound) {
                    // BYE before our final response (RFC 3261 §15.1.2): end the INVITE with 487.
                    self.reject_with_cause(id, 487, HangupCause::RemoteBye, now);
                    return;
                }
                self.end_call(id, HangupCause::RemoteBye, None, outcome);
            }
            Method::Invite => self.reinvite(id, key, req, now),
            Method::Info => {
                self.respond_code(&key, &req, 200, now);
                if let Some(d) = info_digit(&req) {
                    self.emit(CallEvent::Dtmf { call: id, digit: d });
                }
            }
            Method::Options => self.respond_code(&key, &req, 200, now),
            Method::Update => self.update(id, key, req, now),
            Method::Refer => {
                let Some(target) =
                    message::value(&req.headers, "Refer-To").map(|v| message::addr_uri(&v))
                else {
                    return self.respond_code(&key, &req, 400, now);
                };
                self.respond_code(&key, &req, 202, now);
                self.emit(CallEvent::TransferRequested { call: id, target });
            }
            Method::Notify => {
                self.respond_code(&key, &req, 200, now);
                let is_refer = message::value(&req.headers, "Event")
                    .is_some_and(|e| e.to_ascii_lowercase().starts_with("refer"));
                let code = std::str::from_utf8(&req.body)
                    .ok()
                    .and_then(|b| b.lines().next())
                    .and_then(|l| l.strip_prefix("SIP/2.0 "))
                    .and_then(|l| l.split_whitespace().next())
                    .and_then(|c| c.parse::<u16>().ok());
                if let (true, Some(code)) = (is_refer, code) {
                    self.emit(CallEvent::TransferProgress { call: id, code });
                }
            }
            _ => self.respond_code(&key, &req, 501, now),
        }
    }

    /// UPDATE (RFC 3311): a session refresh (RFC 4028), with or without a new offer.
    fn update(&mut self, id: CallId, key: ServerKey, req: Request, now: Instant) {
        let Some(call) = self.calls.get(&id) else {
            return;
        };
        let (mut ok, session) = match self.refresh_ok(call, &req) {
            Ok(r) => r,
            Err(too_brief) => return self.respond(&key, too_brief, now),
        };
        let mut changed = None;
        match sdp_body(&req) {
            None => {}
            Some(Err(_)) => return self.respond_code(&key, &req, 488, now),
            Some(Ok(offer)) => {
                let mut local = self.local_sdp(call);
                local.session_version += 1;
                let Ok((answer, neg)) = sdp::answer(&offer, &local) else {
                    return self.respond_code(&key, &req, 488, now);
                };
                message::set_body(
                    &mut ok.headers,
                    &mut ok.body,
                    Some("application/sdp"),
                    answer.to_text().into_bytes(),
                );
                changed = Some(neg);
            }
        }
        self.respond(&key, ok, now);
        if let Some(neg) = changed {
            let call = self.calls.get_mut(&id).expect("checked");
            call.sdp_version += 1;
            call.media = Some(neg);
            let media = self.media_info(&self.calls[&id]);
            self.emit(CallEvent::MediaChanged { call: id, media });
        }
        self.session_start(id, session, now);
    }

    /// Sends 183 Session Progress with our SDP answer on a ringing inbound call, so prompts can
    /// be played before (or instead of) answering.
    pub(super) fn progress(&mut self, id: CallId, now: Instant) {
        let Some(call) = self.calls.get(&id) else {
            return;
        };
        if !call.inbound || call.answered {
            return;
        }
        let (Some(key), Some(req), Some(offer)) = (
            call.invite_key.clone(),
            call.invite.clone(),
            call.offer.clone(),
        ) else {
            return;
        };
        let Ok((answer, neg)) = sdp::answer(&offer, &self.local_sdp(call)) else {
            return;
        };
        let mut p = message::response_to(&req, 183, Some(&call.local_tag));
        p.headers.push(message::header(
            "Contact",
            self.contact("dialbridge", key_transport(call)),
        ));
        message::set_body(
            &mut p.headers,
            &mut p.body,
            Some("application/sdp"),
            answer.to_text().into_bytes(),
        );
        self.respond(&key, p, now);
        let call = self.calls.get_mut(&id).expect("checked");
        call.media = Some(neg);
        let media = self.media_info(&self.calls[&id]);
        self.emit(CallEvent::EarlyMedia {
            call: id,
            code: 183,
            media,
        });
    }

    fn reinvite(&mut self, id: CallId, key: ServerKey, req: Request, now: Instant) {
        let Some(call) = self.calls.get(&id) else {
            return;
        };
        // Glare (RFC 3261 §14.2): an offer of ours is outstanding, or our 2xx awaits its ACK.
        if call.pending_2xx.is_some() || call.reinvite.is_some() || !call.answered {
            return self.respond_code(&key, &req, 491, now);
        }
        let offer = match sdp_body(&req) {
            Some(Ok(o)) => o,
            // A re-INVITE without an offer: offer what we have (we keep it simple: same media).
            None => sdp::offer(
                &self.local_sdp(call),
                call.media
                    .map(|m| m.direction)
                    .unwrap_or(sdp::Direction::SendRecv),
            ),
            Some(Err(_)) => return self.respond_code(&key, &req, 488, now),
        };
        let mut local = self.local_sdp(call);
        local.session_version += 1;
        let Ok((answer, neg)) = sdp::answer(&offer, &local) else {
            return self.respond_code(&key, &req, 488, now);
        };
        let (mut ok, session) = match self.refresh_ok(call, &req) {
            Ok(r) => r,
            Err(too_brief) => return self.respond(&key, too_brief, now),
        };
        message::set_body(
            &mut ok.headers,
            &mut ok.body,
            Some("application/sdp"),
            answer.to_text().into_bytes(),
        );
        let reliable = call.peer.transport.reliable();
        let t1 = self.cfg.timers.t1;
        let call = self.calls.get_mut(&id).expect("checked");
        call.sdp_version += 1;
        call.media = Some(neg);
        let cseq = message::cseq(&req.headers).map(|c| c.0).unwrap_or(0);
        call.pending_2xx = Some(Pending2xx {
            response: ok.clone(),
            cseq,
            interval: t1,
            key: key.clone(),
            initial: false,
        });
        self.respond(&key, ok, now);
        if !reliable {
            self.timer(now + t1, id, CallTimer::Retransmit2xx);
        }
        self.timer(now + self.cfg.timers.t64(), id, CallTimer::AckTimeout);
        let media = self.media_info(&self.calls[&id]);
        self.emit(CallEvent::MediaChanged { call: id, media });
        // Any re-INVITE refreshes the session (RFC 4028 §10).
        self.session_start(id, session, now);
    }

    /// The 200 for a session refresh (a re-INVITE or an UPDATE): our Contact and the negotiated
    /// session-timer headers (RFC 4028), with the timer; or the 422 with our Min-SE when the
    /// requested interval is too brief.
    fn refresh_ok(
        &self,
        call: &Call,
        req: &Request,
    ) -> Result<(rsip::Response, Option<session_timer::SessionTimer>), rsip::Response> {
        let session =
            session_timer::uas_negotiate(&req.headers, self.cfg.min_se).map_err(|min| {
                let mut resp = message::response_to(req, 422, None);
                resp.headers
                    .push(message::header("Min-SE", min.to_string()));
                resp
            })?;
        let mut ok = message::response_to(req, 200, None);
        ok.headers.push(message::header(
            "Contact",
            self.contact("dialbridge", key_transport(call)),
        ));
        let timer = session.map(|(timer, add)| {
            for (n, v) in add {
                ok.headers.push(message::header(n, v));
            }
            timer
        });
        Ok((ok, timer))
    }
}

fn key_transport(call: &Call) -> crate::sip::call::Transport {
    call.peer.transport
}

/// `Signal=5` from an application/dtmf-relay INFO body.
fn info_digit(req: &Request) -> Option<char> {
    let ct = message::value(&req.headers, "Content-Type")?;
    if !ct.to_ascii_lowercase().contains("dtmf") {
        return None;
    }
    let body = std::str::from_utf8(&req.body).ok()?;
    body.lines().find_map(|l| {
        let (k, v) = l.split_once('=')?;
        if !k.trim().eq_ignore_ascii_case("signal") {
            return None;
        }
        v.trim()
            .chars()
            .next()
            .filter(|c| c.is_ascii_digit() || "*#ABCDabcd".contains(*c))
    })
}
