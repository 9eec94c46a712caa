//! The REGISTER client: keeps our registration with a trunk alive (digest on 401/407, refresh at
//! half the granted lifetime, retry after failures) and reports its state as call events.

use std::time::{Duration, Instant};

use rsip::{Method, Request, Response};

use super::{CallTimer, Endpoint, Owner, Peer, random_hex};
use crate::sip::call::{CallEvent, CallId, Registration};
use crate::sip::digest::Challenge;
use crate::sip::message;

const RETRY_AFTER: Duration = Duration::from_secs(30);

pub(crate) struct RegClient {
    reg: Registration,
    call_id: String,
    from_tag: String,
    cseq: u32,
    nonce: String,
    nc: u32,
    auth_tries: u32,
    stopping: bool,
    last: Option<Request>,
}

impl Endpoint {
    /// OPTIONS to a trunk (out of dialog) as a health probe.
    pub(super) fn ping(&mut self, id: u64, trunk: crate::sip::call::Trunk, now: Instant) {
        let t = trunk.transport;
        let tp = super::transport_param(t);
        let Ok(uri) = rsip::Uri::try_from(format!("sip:{}{tp}", trunk.addr).as_str()) else {
            return;
        };
        let mut h = rsip::Headers::default();
        h.push(message::header("Via", self.via(t)));
        h.push(message::header("Max-Forwards", "70"));
        h.push(message::header(
            "From",
            format!(
                "<sip:dialbridge@{}>;tag={}",
                self.cfg.advertised,
                random_hex()
            ),
        ));
        h.push(message::header("To", format!("<sip:{}>", trunk.addr)));
        h.push(message::header(
            "Call-ID",
            format!("{}@{}", random_hex(), self.cfg.advertised),
        ));
        h.push(message::header("CSeq", "1 OPTIONS"));
        h.push(message::header("User-Agent", &self.cfg.user_agent));
        h.push(rsip::Header::ContentLength(0.into()));
        let req = Request {
            method: Method::Options,
            uri,
            version: rsip::Version::V2,
            headers: h,
            body: vec![],
        };
        self.pings.insert(id, (trunk.addr, now));
        let peer = Peer {
            transport: t,
            addr: trunk.addr,
            conn: None,
        };
        self.send_request(req, peer, Some(Owner::Ping(id)), now);
    }

    pub(super) fn ping_result(&mut self, id: u64, code: Option<u16>, now: Instant) {
        if code.is_some_and(|c| c < 200) {
            return;
        }
        let Some((trunk, sent)) = self.pings.remove(&id) else {
            return;
        };
        let rtt_ms = now.saturating_duration_since(sent).as_millis() as u64;
        self.emit(CallEvent::TrunkStatus {
            ping: id,
            trunk,
            code,
            rtt_ms,
        });
    }

    pub(super) fn register(&mut self, id: u64, reg: Registration, now: Instant) {
        let c = RegClient {
            reg,
            call_id: format!("{}@{}", random_hex(), self.cfg.advertised),
            from_tag: random_hex(),
            cseq: 0,
            nonce: String::new(),
            nc: 0,
            auth_tries: 0,
            stopping: false,
            last: None,
        };
        self.registrations.insert(id, c);
        self.register_send(id, None, now);
    }

    pub(super) fn unregister(&mut self, id: u64, now: Instant) {
        let Some(c) = self.registrations.get_mut(&id) else {
            return;
        };
        c.stopping = true;
        c.auth_tries = 0;
        self.register_send(id, None, now);
    }

    pub(super) fn register_refresh(&mut self, id: u64, now: Instant) {
        if let Some(c) = self.registrations.get_mut(&id) {
            c.auth_tries = 0;
            self.register_send(id, None, now);
        }
    }

    fn register_send(&mut self, id: u64, auth: Option<(&str, String)>, now: Instant) {
        let Some(c) = self.registrations.get(&id) else {
            return;
        };
        let t = c.reg.trunk.transport;
        let tp = super::transport_param(t);
        let registrar = format!("sip:{}{tp}", c.reg.trunk.addr);
        let aor = format!("<sip:{}@{}>", c.reg.user, c.reg.trunk.addr);
        let expires = if c.stopping { 0 } else { c.reg.expires };
        let mut h = rsip::Headers::default();
        h.push(message::header("Via", self.via(t)));
        h.push(message::header("Max-Forwards", "70"));
        h.push(message::header("From", format!("{aor};tag={}", c.from_tag)));
        h.push(message::header("To", aor));
        h.push(message::header("Call-ID", &c.call_id));
        h.push(message::header("CSeq", format!("{} REGISTER", c.cseq + 1)));
        h.push(message::header("Contact", self.contact(&c.reg.user, t)));
        h.push(message::header("Expires", expires.to_string()));
        h.push(message::header("User-Agent", &self.cfg.user_agent));
        if let Some((name, value)) = auth {
            h.push(message::header(name, value));
        }
        h.push(rsip::Header::ContentLength(0.into()));
        let Ok(uri) = rsip::Uri::try_from(registrar.as_str()) else {
            return;
        };
        let req = Request {
            method: Method::Register,
            uri,
            version: rsip::Version::V2,
            headers: h,
            body: vec![],
        };
        let peer = Peer {
            transport: t,
            addr: c.reg.trunk.addr,
            conn: None,
        };
        let c = self.registrations.get_mut(&id).expect("checked");
        c.cseq += 1;
        c.last = Some(req.clone());
        self.send_request(req, peer, Some(Owner::Registration(id)), now);
    }

    pub(super) fn register_response(&mut self, id: u64, resp: Response, now: Instant) {
        let code = resp.status_code.code();
        let Some(c) = self.registrations.get_mut(&id) else {
            return;
        };
        match code {
            100..=199 => {}
            200..=299 => {
                if c.stopping {
                    self.registrations.remove(&id);
                    self.emit(CallEvent::Registration {
                        registration: id,
                        registered: false,
                        code: Some(code),
                        expires: 0,
                    });
                    return;
                }
                // The granted lifetime: our Contact's expires, else Expires, else what we asked.
                let ours = message::values(&resp.headers, "Contact")
                    .into_iter()
                    .find(|v| message::addr_uri(v).contains(&format!("{}@", c.reg.user)))
                    .and_then(|v| message::param(&v, "expires"))
                    .and_then(|e| e.parse().ok());
                let header =
                    message::value(&resp.headers, "Expires").and_then(|e| e.trim().parse().ok());
                let granted: u32 = ours.or(header).unwrap_or(c.reg.expires).max(2);
                c.auth_tries = 0;
                self.emit(CallEvent::Registration {
                    registration: id,
                    registered: true,
                    code: Some(code),
                    expires: granted,
                });
                self.timer(
                    now + Duration::from_secs(granted as u64 / 2),
                    CallId(id),
                    CallTimer::RegistrationRefresh,
                );
            }
            401 | 407 if c.auth_tries < 2 && c.reg.trunk.credentials.is_some() => {
                let (chal, auth) = if code == 401 {
                    ("WWW-Authenticate", "Authorization")
                } else {
                    ("Proxy-Authenticate", "Proxy-Authorization")
                };
                let Some(ch) = message::raw_values(&resp.headers, chal)
                    .iter()
                    .find_map(|v| Challenge::parse(v).ok())
                else {
                    return self.register_failed(id, Some(code), now);
                };
                if c.nonce == ch.nonce && !ch.stale {
                    return self.register_failed(id, Some(code), now);
                }
                c.auth_tries += 1;
                c.nc = if c.nonce == ch.nonce { c.nc + 1 } else { 1 };
                c.nonce = ch.nonce.clone();
                let creds = c.reg.trunk.credentials.clone().expect("checked");
                let uri = c
                    .last
                    .as_ref()
                    .map(|r| r.uri.to_string())
                    .unwrap_or_default();
                let value = creds.authorize(&ch, "REGISTER", &uri, b"", c.nc, &random_hex());
                self.register_send(id, Some((auth, value)), now);
            }
            _ => self.register_failed(id, Some(code), now),
        }
    }

    pub(super) fn register_failed(&mut self, id: u64, code: Option<u16>, now: Instant) {
        let Some(c) = self.registrations.get(&id) else {
            return;
        };
        if c.stopping {
            self.registrations.remove(&id);
        } else {
            self.timer(
                now + RETRY_AFTER,
                CallId(id),
                CallTimer::RegistrationRefresh,
            );
        }
        self.emit(CallEvent::Registration {
            registration: id,
            registered: false,
            code,
            expires: 0,
        });
    }
}
