//! Inbound admission and the registrar: trunk ACL, digest challenges (401) for endpoints, and
//! REGISTER handling over the binding table.

use std::time::{Duration, Instant};

use rsip::Request;

use super::{Endpoint, Peer, random_hex};
use crate::sip::digest;
use crate::sip::message;
use crate::sip::registrar::Binding;
use crate::sip::transaction::ServerKey;

enum Auth {
    Ok(String),
    Stale,
    Missing,
    Bad,
}

/// The user part of a SIP URI (`sip:agent1@host` → `agent1`).
fn uri_user(uri: &str) -> Option<String> {
    let rest = uri.split_once(':')?.1;
    let (user, _) = rest.split_once('@')?;
    Some(user.split(';').next()?.to_string())
}

impl Endpoint {
    fn check_auth(&self, req: &Request, now: Instant) -> Auth {
        let Some(p) = &self.cfg.policy else {
            return Auth::Missing;
        };
        let method = req.method.to_string();
        let mut result = Auth::Missing;
        for v in message::raw_values(&req.headers, "Authorization") {
            let params = digest::parse_params(&v);
            let Some(nonce) = params
                .iter()
                .find(|(k, _)| k == "nonce")
                .map(|(_, v)| v.clone())
            else {
                continue;
            };
            match self.nonces.check(&nonce, now) {
                None => continue,
                Some(false) => result = Auth::Stale,
                Some(true) => {
                    let users = p.users.clone();
                    return match digest::verify(
                        &v,
                        &p.realm,
                        &method,
                        &req.body,
                        |u| users(u),
                        |_| true,
                    ) {
                        Some(user) => Auth::Ok(user),
                        None => Auth::Bad,
                    };
                }
            }
        }
        result
    }

    fn challenge(&mut self, key: &ServerKey, req: &Request, stale: bool, now: Instant) {
        let Some(realm) = self.cfg.policy.as_ref().map(|p| p.realm.clone()) else {
            return;
        };
        let mut resp = message::response_to(req, 401, Some(&random_hex()));
        let mut v = format!(
            "Digest realm=\"{realm}\", nonce=\"{}\", qop=\"auth\", algorithm=MD5",
            self.nonces.issue(now)
        );
        if stale {
            v.push_str(", stale=true");
        }
        resp.headers.push(message::header("WWW-Authenticate", v));
        resp.headers
            .push(message::header("Server", &self.cfg.user_agent));
        self.respond(key, resp, now);
    }

    /// Whether a new INVITE may proceed (`Some(user)`, the user `None` for trusted trunks or
    /// without a policy); when not, the response (401/403) has been sent.
    pub(super) fn admit(
        &mut self,
        key: &ServerKey,
        req: &Request,
        peer: &Peer,
        now: Instant,
    ) -> Option<Option<String>> {
        let Some(p) = &self.cfg.policy else {
            return Some(None);
        };
        if p.trusted.contains(&peer.addr.ip()) {
            return Some(None);
        }
        match self.check_auth(req, now) {
            Auth::Ok(user) => Some(Some(user)),
            Auth::Stale => {
                self.challenge(key, req, true, now);
                None
            }
            Auth::Missing => {
                self.challenge(key, req, false, now);
                None
            }
            Auth::Bad => {
                self.respond_code(key, req, 403, now);
                None
            }
        }
    }

    pub(super) fn registrar(&mut self, key: ServerKey, req: Request, peer: Peer, now: Instant) {
        let Some((min, max)) = self.cfg.policy.as_ref().map(|p| p.expires) else {
            return self.respond_code(&key, &req, 501, now);
        };
        let user = match self.check_auth(&req, now) {
            Auth::Ok(u) => u,
            Auth::Stale => return self.challenge(&key, &req, true, now),
            Auth::Missing => return self.challenge(&key, &req, false, now),
            Auth::Bad => return self.respond_code(&key, &req, 403, now),
        };
        let aor = message::value(&req.headers, "To")
            .map(|t| message::addr_uri(&t))
            .and_then(|u| uri_user(&u));
        if aor.as_deref() != Some(user.as_str()) {
            return self.respond_code(&key, &req, 403, now);
        }
        let default_expires: u32 = message::value(&req.headers, "Expires")
            .and_then(|e| e.trim().parse().ok())
            .unwrap_or(3600);
        let contacts = message::values(&req.headers, "Contact");
        if contacts.iter().any(|c| c.trim() == "*") {
            if default_expires != 0 || contacts.len() != 1 {
                return self.respond_code(&key, &req, 400, now);
            }
            self.bindings.remove_all(&user);
        } else {
            for c in &contacts {
                let e: u32 = message::param(c, "expires")
                    .and_then(|e| e.parse().ok())
                    .unwrap_or(default_expires);
                if e != 0 && e < min {
                    let mut resp = message::response_to(&req, 423, Some(&random_hex()));
                    resp.headers
                        .push(message::header("Min-Expires", min.to_string()));
                    return self.respond(&key, resp, now);
                }
                let e = e.min(max);
                let b = Binding {
                    contact: message::addr_uri(c),
                    source: peer.addr,
                    tcp: peer.transport.reliable(),
                    transport: peer.transport,
                    expires_at: now + Duration::from_secs(e as u64),
                };
                self.bindings.update(&user, b, e, now);
            }
        }
        let mut ok = message::response_to(&req, 200, Some(&random_hex()));
        for b in self.bindings.lookup(&user, now) {
            let left = b.expires_at.saturating_duration_since(now).as_secs();
            ok.headers.push(message::header(
                "Contact",
                format!("<{}>;expires={left}", b.contact),
            ));
        }
        ok.headers
            .push(message::header("Server", &self.cfg.user_agent));
        self.respond(&key, ok, now);
    }
}

#[cfg(test)]
mod tests {
    use super::uri_user;

    #[test]
    fn user_of_uri() {
        assert_eq!(
            uri_user("sip:agent1@127.0.0.1:5060").as_deref(),
            Some("agent1")
        );
        assert_eq!(uri_user("sip:127.0.0.1"), None);
    }
}
