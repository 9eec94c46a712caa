//! The UAC side of the core: placing calls (INVITE, 18x, 200/ACK), digest answers to 401/407,
//! ring timeout → CANCEL, the 200-crosses-CANCEL race (ACK, then BYE), trunk failover on
//! congestion, hangup, and our own re-INVITEs for hold/resume.

use std::time::{Duration, Instant};

use rsip::{Method, Request, Response};

use super::{Call, CallTimer, Endpoint, Owner, Peer, random_hex};
use crate::sip::call::{CallEvent, CallId, HangupCause, Originate, Transport};
use crate::sip::dialog::{self, Dialog};
use crate::sip::digest::Challenge;
use crate::sip::message;
use crate::sip::outcome::Outcome;
use crate::sip::sdp;
use crate::sip::session_timer;
use crate::sip::transaction::ClientKey;

/// Outbound-only call state.
pub(crate) struct Outbound {
    pub req: Originate,
    pub trunk: usize,
    pub invite_key: Option<ClientKey>,
    pub invite: Option<Request>,
    pub cseq: u32,
    pub call_id: String,
    pub from_tag: String,
    pub provisional: bool,
    pub ringing_reported: bool,
    pub cancel_sent: bool,
    pub cancel_pending: bool,
    pub cancel_cause: Option<HangupCause>,
    pub ack: Option<(Request, Peer)>,
    pub auth_tries: u32,
    pub nonce: String,
    pub nc: u32,
}

impl Endpoint {
    pub(super) fn originate(&mut self, id: CallId, req: Originate, now: Instant) {
        if req.trunks.is_empty() || self.calls.contains_key(&id) {
            self.emit(CallEvent::Hangup {
                call: id,
                cause: HangupCause::Rejected,
                code: None,
                outcome: Outcome::Unreachable,
            });
            return;
        }
        let Some(rtp_lease) = self.lease_rtp_port() else {
            self.emit(CallEvent::Hangup {
                call: id,
                cause: HangupCause::Rejected,
                code: Some(503),
                outcome: Outcome::Congestion,
            });
            return;
        };
        let trunk = &req.trunks[0];
        let peer = Peer {
            transport: trunk.transport,
            addr: trunk.addr,
            conn: None,
        };
        let ring_timeout = req.ring_timeout;
        let call = Call {
            id,
            inbound: false,
            peer,
            dialog: None,
            rtp_port: rtp_lease.port(),
            _rtp_lease: rtp_lease,
            sdp_version: 1,
            session_id: rand::random::<u32>() as u64,
            media: None,
            answered: false,
            confirmed: false,
            invite_key: None,
            invite: None,
            local_tag: random_hex(),
            pending_2xx: None,
            offer: None,
            reinvite: None,
            session: None,
            session_due: None,
            offered: sdp::Direction::SendRecv,
            out: Some(Outbound {
                req,
                trunk: 0,
                invite_key: None,
                invite: None,
                cseq: 0,
                call_id: format!("{}@{}", random_hex(), self.cfg.advertised),
                from_tag: String::new(),
                provisional: false,
                ringing_reported: false,
                cancel_sent: false,
                cancel_pending: false,
                cancel_cause: None,
                ack: None,
                auth_tries: 0,
                nonce: String::new(),
                nc: 0,
            }),
        };
        self.calls.insert(id, call);
        self.send_invite(id, None, now);
        self.timer(now + ring_timeout, id, CallTimer::RingTimeout);
    }

    /// (Re)sends the INVITE to the current trunk, with an Authorization header if given.
    fn send_invite(&mut self, id: CallId, auth: Option<(&str, String)>, now: Instant) {
        let Some(call) = self.calls.get(&id) else {
            return;
        };
        let Some(o) = &call.out else { return };
        let trunk = o.req.trunks[o.trunk].clone();
        let tp = super::transport_param(trunk.transport);
        let uri = o
            .req
            .request_uri
            .clone()
            .unwrap_or_else(|| format!("sip:{}@{}{tp}", o.req.to_user, trunk.addr));
        let from = format!(
            "<sip:{}@{}>;tag={}",
            o.req.from_user, self.cfg.advertised, call.local_tag
        );
        let contact = self.contact(&o.req.from_user, trunk.transport);
        let body = sdp::offer(&self.local_sdp(call), sdp::Direction::SendRecv).to_text();
        let mut h = rsip::Headers::default();
        h.push(message::header("Via", self.via(trunk.transport)));
        h.push(message::header("Max-Forwards", "70"));
        h.push(message::header("From", from));
        h.push(message::header("To", format!("<{uri}>")));
        h.push(message::header("Call-ID", &o.call_id));
        h.push(message::header("CSeq", format!("{} INVITE", o.cseq + 1)));
        h.push(message::header("Contact", contact));
        h.push(message::header(
            "Allow",
            "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO",
        ));
        h.push(message::header("User-Agent", &self.cfg.user_agent));
        for (name, value) in o
            .req
            .headers
            .iter()
            .filter(|(n, v)| crate::sip::call::is_safe_header(n, v))
        {
            h.push(message::header(name, value));
        }
        if let Some((name, value)) = auth {
            h.push(message::header(name, value));
        }
        if self.cfg.session_interval > 0 {
            for (n, v) in session_timer::request_headers(self.cfg.session_interval, true) {
                h.push(message::header(n, v));
            }
        }
        let mut body_vec = Vec::new();
        message::set_body(
            &mut h,
            &mut body_vec,
            Some("application/sdp"),
            body.into_bytes(),
        );
        let Ok(uri) = rsip::Uri::try_from(uri.as_str()) else {
            return;
        };
        let invite = Request {
            method: Method::Invite,
            uri,
            version: rsip::Version::V2,
            headers: h,
            body: body_vec,
        };
        let peer = Peer {
            transport: trunk.transport,
            addr: trunk.addr,
            conn: None,
        };
        let local_tag = self.calls[&id].local_tag.clone();
        let call = self.calls.get_mut(&id).expect("checked");
        call.peer = peer.clone();
        let o = call.out.as_mut().expect("checked");
        o.cseq += 1;
        o.from_tag = local_tag;
        o.invite = Some(invite.clone());
        o.provisional = false;
        let key = self.send_request(invite, peer, Some(Owner::Call(id)), now);
        if let Some(o) = self.calls.get_mut(&id).and_then(|c| c.out.as_mut()) {
            o.invite_key = key;
        }
    }

    pub(super) fn uac_response(
        &mut self,
        id: CallId,
        key: &ClientKey,
        resp: Response,
        now: Instant,
    ) {
        let code = resp.status_code.code();
        let Some(call) = self.calls.get(&id) else {
            if key.method == "INVITE" && (200..300).contains(&code) {
                self.stray_2xx(&resp, now);
            }
            return;
        };
        if call.reinvite.as_ref() == Some(key) {
            return self.reinvite_response(id, resp, now);
        }
        if key.method == "REFER" {
            if code >= 300 {
                self.emit(CallEvent::TransferProgress { call: id, code });
            }
            return;
        }
        let Some(o) = &call.out else { return };
        if o.invite_key.as_ref() != Some(key) {
            return;
        }
        match code {
            100..=199 => {
                let report = code > 100 && !o.ringing_reported;
                let cancel_now = o.cancel_pending && !o.cancel_sent;
                let o = self
                    .calls
                    .get_mut(&id)
                    .and_then(|c| c.out.as_mut())
                    .expect("checked");
                o.provisional = true;
                if report {
                    o.ringing_reported = true;
                    self.emit(CallEvent::Ringing { call: id, code });
                }
                if cancel_now {
                    self.send_cancel(id, now);
                }
                // Early media (183 + SDP): where the far end's tones/announcements come from.
                let early = (code > 100 && !resp.body.is_empty())
                    .then(|| {
                        std::str::from_utf8(&resp.body)
                            .ok()
                            .and_then(|t| sdp::Sdp::parse(t).ok())
                    })
                    .flatten()
                    .and_then(|a| sdp::accept_answer(&a).ok());
                if let Some(n) = early {
                    let call = self.calls.get_mut(&id).expect("checked");
                    if call.media.is_none() {
                        call.media = Some(n);
                        let media = self.media_info(&self.calls[&id]);
                        self.emit(CallEvent::EarlyMedia {
                            call: id,
                            code,
                            media,
                        });
                    }
                }
            }
            200..=299 => self.uac_2xx(id, resp, now),
            401 | 407
                if o.auth_tries < 2
                    && o.req.trunks[o.trunk].credentials.is_some()
                    && !o.cancel_sent =>
            {
                let (chal_name, auth_name) = if code == 401 {
                    ("WWW-Authenticate", "Authorization")
                } else {
                    ("Proxy-Authenticate", "Proxy-Authorization")
                };
                let Some(ch) = message::raw_values(&resp.headers, chal_name)
                    .iter()
                    .find_map(|v| Challenge::parse(v).ok())
                else {
                    return self.uac_final(id, code, now);
                };
                let creds = o.req.trunks[o.trunk].credentials.clone().expect("checked");
                let Some(inv) = o.invite.clone() else { return };
                let o = self
                    .calls
                    .get_mut(&id)
                    .and_then(|c| c.out.as_mut())
                    .expect("checked");
                // A second challenge with the same nonce means the password is wrong.
                if o.nonce == ch.nonce && !ch.stale {
                    return self.uac_final(id, code, now);
                }
                o.auth_tries += 1;
                o.nc = if o.nonce == ch.nonce { o.nc + 1 } else { 1 };
                o.nonce = ch.nonce.clone();
                let value = creds.authorize(
                    &ch,
                    "INVITE",
                    &inv.uri.to_string(),
                    &inv.body,
                    o.nc,
                    &random_hex(),
                );
                self.send_invite(id, Some((auth_name, value)), now);
            }
            _ => self.uac_final(id, code, now),
        }
    }

    fn uac_final(&mut self, id: CallId, code: u16, now: Instant) {
        let Some(o) = self.calls.get(&id).and_then(|c| c.out.as_ref()) else {
            return;
        };
        let cancelled = o.cancel_sent || o.cancel_pending;
        let mut outcome = Outcome::from_code(code);
        let mut cause = HangupCause::Rejected;
        if cancelled {
            cause = o.cancel_cause.unwrap_or(HangupCause::LocalHangup);
            outcome = Outcome::of_cancelled(cause);
        }
        if !cancelled && outcome.try_next_trunk() && o.trunk + 1 < o.req.trunks.len() {
            let o = self
                .calls
                .get_mut(&id)
                .and_then(|c| c.out.as_mut())
                .expect("checked");
            o.trunk += 1;
            o.auth_tries = 0;
            o.nonce.clear();
            return self.send_invite(id, None, now);
        }
        self.end_call(id, cause, Some(code), outcome);
    }

    pub(super) fn uac_timeout(&mut self, id: CallId, key: &ClientKey, now: Instant) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if call.reinvite.as_ref() == Some(key) {
            call.reinvite = None;
            return;
        }
        let Some(o) = &call.out else { return };
        if o.invite_key.as_ref() != Some(key) || call.answered {
            return;
        }
        let cancelled = o.cancel_sent || o.cancel_pending;
        if !cancelled && o.trunk + 1 < o.req.trunks.len() {
            let o = call.out.as_mut().expect("checked");
            o.trunk += 1;
            o.auth_tries = 0;
            o.nonce.clear();
            return self.send_invite(id, None, now);
        }
        let cause = if cancelled {
            o.cancel_cause.unwrap_or(HangupCause::LocalHangup)
        } else {
            HangupCause::Timeout
        };
        let outcome = if cancelled {
            Outcome::of_cancelled(cause)
        } else {
            Outcome::Unreachable
        };
        self.end_call(id, cause, None, outcome);
    }

    fn uac_2xx(&mut self, id: CallId, resp: Response, now: Instant) {
        let Some(call) = self.calls.get(&id) else {
            return;
        };
        let o = call.out.as_ref().expect("outbound");
        if call.answered {
            let same_dialog = call.dialog.as_ref().map(|d| d.remote_tag.clone())
                == message::to_tag(&resp.headers);
            if same_dialog {
                // A retransmitted 2xx: the same ACK again.
                if let Some((ack, peer)) = o.ack.clone() {
                    self.send_raw(peer, &rsip::SipMessage::Request(ack));
                }
            } else {
                // A forked second answer (another To tag): ACK it and end that dialog.
                self.ack_and_bye(&resp, now);
            }
            return;
        }
        let Some(inv) = o.invite.clone() else { return };
        let Some(d) = Dialog::uac(&inv, &resp) else {
            return;
        };
        let cancelled = o.cancel_sent || o.cancel_pending;
        let cancel_cause = o.cancel_cause;
        let media = std::str::from_utf8(&resp.body)
            .ok()
            .and_then(|t| sdp::Sdp::parse(t).ok())
            .and_then(|a| sdp::accept_answer(&a).ok());
        self.dialogs
            .insert((d.call_id.clone(), d.local_tag.clone()), id);
        let call = self.calls.get_mut(&id).expect("checked");
        call.dialog = Some(d);
        call.answered = true;
        call.confirmed = true;
        if media.is_some() {
            call.media = media;
        }
        let peer = self.dialog_peer(&self.calls[&id]);
        let via = self.via(peer.transport);
        let contact = self.contact("dialbridge", peer.transport);
        let d = self.calls[&id].dialog.as_ref().expect("set above");
        let ack = d.ack(d.local_seq, &via, &contact);
        self.send_raw(peer.clone(), &rsip::SipMessage::Request(ack.clone()));
        if let Some(o) = self.calls.get_mut(&id).and_then(|c| c.out.as_mut()) {
            o.ack = Some((ack, peer));
        }
        if cancelled {
            // The 200 crossed our CANCEL: ACK it, then BYE (RFC 3261 §9.1).
            self.send_bye(id, now);
            let cause = cancel_cause.unwrap_or(HangupCause::LocalHangup);
            self.end_call(id, cause, Some(200), Outcome::of_cancelled(cause));
            return;
        }
        let media = self.media_info(&self.calls[&id]);
        self.emit(CallEvent::Answered { call: id, media });
        self.session_start(id, session_timer::uac_accept(&resp.headers), now);
    }

    pub(super) fn ring_timeout(&mut self, id: CallId, now: Instant) {
        self.cancel_outbound(id, HangupCause::RingTimeout, now);
    }

    fn cancel_outbound(&mut self, id: CallId, cause: HangupCause, now: Instant) {
        let t64 = self.cfg.timers.t64();
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if call.answered {
            return;
        }
        let Some(o) = call.out.as_mut() else { return };
        if o.cancel_sent || o.cancel_pending {
            return;
        }
        o.cancel_cause = Some(cause);
        if o.provisional {
            self.send_cancel(id, now);
        } else {
            // No CANCEL before a provisional response (RFC 3261 §9.1): send it when one comes.
            o.cancel_pending = true;
        }
        self.timer(now + t64, id, CallTimer::CancelGuard);
    }

    fn send_cancel(&mut self, id: CallId, now: Instant) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let peer = call.peer.clone();
        let Some(o) = call.out.as_mut() else { return };
        let Some(inv) = &o.invite else { return };
        o.cancel_sent = true;
        let mut h = rsip::Headers::default();
        if let Some(via) = message::values(&inv.headers, "Via").into_iter().next() {
            h.push(message::header("Via", via));
        }
        for r in message::values(&inv.headers, "Route") {
            h.push(message::header("Route", r));
        }
        for name in ["Max-Forwards", "From", "To", "Call-ID"] {
            if let Some(v) = message::value(&inv.headers, name) {
                h.push(message::header(name, v));
            }
        }
        h.push(message::header("CSeq", format!("{} CANCEL", o.cseq)));
        h.push(rsip::Header::ContentLength(0.into()));
        let cancel = Request {
            method: Method::Cancel,
            uri: inv.uri.clone(),
            version: rsip::Version::V2,
            headers: h,
            body: vec![],
        };
        self.send_request(cancel, peer, None, now);
    }

    pub(super) fn cancel_guard(&mut self, id: CallId) {
        let Some(call) = self.calls.get(&id) else {
            return;
        };
        if call.answered {
            return;
        }
        let cause = call
            .out
            .as_ref()
            .and_then(|o| o.cancel_cause)
            .unwrap_or(HangupCause::RingTimeout);
        self.end_call(id, cause, None, Outcome::of_cancelled(cause));
    }

    pub(super) fn uac_hangup(&mut self, id: CallId, cause: HangupCause, now: Instant) {
        let Some(call) = self.calls.get(&id) else {
            return;
        };
        if call.answered {
            self.send_bye(id, now);
            self.end_call(id, cause, None, Outcome::Answered);
        } else {
            self.cancel_outbound(id, cause, now);
            if cause == HangupCause::Shutdown {
                // Do not hold the shutdown for the 487: the CANCEL is out, the call is over for us
                // (a 200 crossing it is still ACKed and BYEd as a stray).
                self.end_call(id, cause, None, Outcome::NoAnswer);
            }
        }
    }

    /// A 2xx for an INVITE whose call is gone or whose transaction ended.
    pub(super) fn stray_2xx(&mut self, resp: &Response, now: Instant) {
        if let Some(id) = self.find_dialog(&resp.headers, message::from_tag(&resp.headers)) {
            if let Some((ack, peer)) = self
                .calls
                .get(&id)
                .and_then(|c| c.out.as_ref())
                .and_then(|o| o.ack.clone())
            {
                self.send_raw(peer, &rsip::SipMessage::Request(ack));
            }
            return;
        }
        self.ack_and_bye(resp, now);
    }

    /// ACKs a 2xx nobody wants and BYEs its dialog, so the far end does not hold a call open.
    fn ack_and_bye(&mut self, resp: &Response, now: Instant) {
        let h = &resp.headers;
        let (Some(call_id), Some(from), Some(to), Some((seq, _))) = (
            message::call_id(h),
            message::value(h, "From"),
            message::value(h, "To"),
            message::cseq(h),
        ) else {
            return;
        };
        let Some(contact) = message::values(h, "Contact")
            .first()
            .map(|c| message::addr_uri(c))
        else {
            return;
        };
        let Some(addr) = dialog::uri_addr(&contact) else {
            return;
        };
        let mut rr = message::values(h, "Record-Route");
        rr.reverse();
        let mut d = Dialog {
            call_id,
            local_tag: message::param(&from, "tag").unwrap_or_default(),
            remote_tag: message::param(&to, "tag").unwrap_or_default(),
            local_uri: dialog::strip_tag(&from),
            remote_uri: dialog::strip_tag(&to),
            local_seq: seq,
            remote_seq: None,
            remote_target: contact,
            route_set: rr,
        };
        let hop = d.next_hop();
        let transport = dialog::uri_transport(&hop).unwrap_or(Transport::Udp);
        let addr = dialog::uri_addr(&hop).unwrap_or(addr);
        let peer = Peer {
            transport,
            addr,
            conn: None,
        };
        let via = self.via(transport);
        let contact = self.contact("dialbridge", transport);
        let ack = d.ack(seq, &via, &contact);
        self.send_raw(peer.clone(), &rsip::SipMessage::Request(ack));
        let via = self.via(transport);
        let bye = d.request(Method::Bye, &via, &contact);
        self.send_request(bye, peer, None, now);
    }

    /// Hold (sendonly or inactive) or resume (sendrecv) by re-INVITE.
    pub(super) fn set_direction(&mut self, id: CallId, dir: sdp::Direction, now: Instant) {
        if let Some(c) = self.calls.get_mut(&id) {
            c.offered = dir;
        }
        self.send_reinvite(id, dir, now);
    }

    /// Sends a re-INVITE with a new offer in direction `dir`, carrying the session timer.
    pub(super) fn send_reinvite(&mut self, id: CallId, dir: sdp::Direction, now: Instant) {
        let Some(call) = self.calls.get(&id) else {
            return;
        };
        if !call.answered || call.reinvite.is_some() || call.pending_2xx.is_some() {
            return;
        }
        let peer = self.dialog_peer(call);
        let via = self.via(peer.transport);
        let contact = self.contact("dialbridge", peer.transport);
        let mut local = self.local_sdp(call);
        local.session_version += 1;
        let body = sdp::offer(&local, dir).to_text();
        let st = call
            .session
            .map(|t| session_timer::request_headers(t.interval, t.we_refresh))
            .unwrap_or_default();
        let call = self.calls.get_mut(&id).expect("checked");
        call.sdp_version += 1;
        let Some(d) = call.dialog.as_mut() else {
            return;
        };
        let mut req = d.request(Method::Invite, &via, &contact);
        for (n, v) in st {
            req.headers.push(message::header(n, v));
        }
        message::set_body(
            &mut req.headers,
            &mut req.body,
            Some("application/sdp"),
            body.into_bytes(),
        );
        let key = self.send_request(req, peer, Some(Owner::Call(id)), now);
        if let Some(c) = self.calls.get_mut(&id) {
            c.reinvite = key;
        }
    }

    fn reinvite_response(&mut self, id: CallId, resp: Response, now: Instant) {
        let code = resp.status_code.code();
        if code < 200 {
            return;
        }
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        call.reinvite = None;
        if code == 491 {
            // Glare: retry after 2.1–4 s (RFC 3261 §14.1, for the side that did not set up the call).
            let wait = Duration::from_millis(2100 + rand::random::<u64>() % 1900);
            self.timer(now + wait, id, CallTimer::ReinviteRetry);
            return;
        }
        if code >= 300 {
            return;
        }
        let Some(seq) = message::cseq(&resp.headers).map(|c| c.0) else {
            return;
        };
        if let Some(n) = std::str::from_utf8(&resp.body)
            .ok()
            .and_then(|t| sdp::Sdp::parse(t).ok())
            .and_then(|a| sdp::accept_answer(&a).ok())
        {
            call.media = Some(n);
        }
        let peer = self.dialog_peer(&self.calls[&id]);
        let via = self.via(peer.transport);
        let contact = self.contact("dialbridge", peer.transport);
        let Some(d) = self.calls[&id].dialog.as_ref() else {
            return;
        };
        let ack = d.ack(seq, &via, &contact);
        self.send_raw(peer, &rsip::SipMessage::Request(ack));
        let media = self.media_info(&self.calls[&id]);
        self.emit(CallEvent::MediaChanged { call: id, media });
        self.session_start(id, session_timer::uac_accept(&resp.headers), now);
    }
}

impl Endpoint {
    /// Sends an in-dialog request built by `fill` (REFER, NOTIFY), owned by the call.
    fn in_dialog_request(
        &mut self,
        id: CallId,
        method: Method,
        fill: impl FnOnce(&mut Request),
        now: Instant,
    ) {
        let Some(call) = self.calls.get(&id) else {
            return;
        };
        if !call.answered {
            return;
        }
        let peer = self.dialog_peer(call);
        let via = self.via(peer.transport);
        let contact = self.contact("dialbridge", peer.transport);
        let Some(d) = self.calls.get_mut(&id).and_then(|c| c.dialog.as_mut()) else {
            return;
        };
        let mut req = d.request(method, &via, &contact);
        fill(&mut req);
        self.send_request(req, peer, Some(Owner::Call(id)), now);
    }

    /// Blind transfer (RFC 3515): REFER the peer to `target`.
    pub(super) fn transfer(&mut self, id: CallId, target: String, now: Instant) {
        let referred_by = self
            .calls
            .get(&id)
            .and_then(|c| c.dialog.as_ref())
            .map(|d| d.local_uri.clone());
        self.in_dialog_request(
            id,
            Method::Refer,
            |req| {
                req.headers
                    .push(message::header("Refer-To", format!("<{target}>")));
                if let Some(rb) = referred_by {
                    req.headers.push(message::header("Referred-By", rb));
                }
            },
            now,
        );
    }

    /// A digit by SIP INFO (application/dtmf-relay, 160 ms).
    pub(super) fn send_dtmf_info(&mut self, id: CallId, digit: char, now: Instant) {
        if !(digit.is_ascii_digit() || "*#ABCD".contains(digit.to_ascii_uppercase())) {
            return;
        }
        let body = format!("Signal={}\r\nDuration=160\r\n", digit.to_ascii_uppercase());
        self.in_dialog_request(
            id,
            Method::Info,
            |req| {
                message::set_body(
                    &mut req.headers,
                    &mut req.body,
                    Some("application/dtmf-relay"),
                    body.into_bytes(),
                )
            },
            now,
        );
    }

    /// NOTIFY (RFC 3515 §2.4.4) with a sipfrag status line for a REFER we accepted.
    pub(super) fn transfer_notify(&mut self, id: CallId, code: u16, now: Instant) {
        let reason = rsip::StatusCode::from(code).to_string();
        let body = format!("SIP/2.0 {reason}\r\n");
        let state = if code >= 200 {
            "terminated;reason=noresource"
        } else {
            "active;expires=60"
        };
        self.in_dialog_request(
            id,
            Method::Notify,
            |req| {
                req.headers.push(message::header("Event", "refer"));
                req.headers
                    .push(message::header("Subscription-State", state));
                message::set_body(
                    &mut req.headers,
                    &mut req.body,
                    Some("message/sipfrag;version=2.0"),
                    body.into_bytes(),
                );
            },
            now,
        );
    }
}
