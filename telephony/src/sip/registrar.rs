//! Registrar state and inbound admission, sans-IO: the binding table (RFC 3261 §10.3), stateless
//! digest nonces, and the inbound policy (trunk ACL + authenticated endpoints).
//!
//! Nonces carry their own issue time and a keyed MD5 over it, so nothing is stored per challenge;
//! they are accepted for [`NONCE_LIFETIME`].

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::digest;

pub const NONCE_LIFETIME: Duration = Duration::from_secs(300);

/// Looks up an endpoint's password by username.
pub type PasswordLookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Who may place calls into the appliance and register to it.
#[derive(Clone)]
pub struct InboundPolicy {
    /// Trunk addresses whose INVITEs are accepted without authentication.
    pub trusted: Vec<IpAddr>,
    /// Digest realm for endpoints.
    pub realm: String,
    /// Endpoints (desk phones, softphones): username → password.
    pub users: PasswordLookup,
    /// Registration lifetimes granted: (min, max) seconds.
    pub expires: (u32, u32),
}

impl std::fmt::Debug for InboundPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InboundPolicy")
            .field("trusted", &self.trusted)
            .field("realm", &self.realm)
            .finish_non_exhaustive()
    }
}

impl InboundPolicy {
    /// A policy from a fixed user table.
    pub fn with_users(trusted: Vec<IpAddr>, realm: &str, users: HashMap<String, String>) -> Self {
        Self {
            trusted,
            realm: realm.into(),
            users: Arc::new(move |u| users.get(u).cloned()),
            expires: (60, 3600),
        }
    }
}

/// Issues and checks stateless nonces.
#[derive(Debug, Clone)]
pub struct Nonces {
    secret: String,
    epoch: Instant,
}

impl Nonces {
    pub fn new(epoch: Instant) -> Self {
        Self {
            secret: format!("{:032x}", rand::random::<u128>()),
            epoch,
        }
    }

    pub fn issue(&self, now: Instant) -> String {
        let t = now.saturating_duration_since(self.epoch).as_secs();
        format!(
            "{t:x}.{}",
            &digest::md5_hex(format!("{t}:{}", self.secret).as_bytes())[..20]
        )
    }

    /// `Some(true)`: ours and fresh; `Some(false)`: ours but stale; `None`: not ours.
    pub fn check(&self, nonce: &str, now: Instant) -> Option<bool> {
        let (t, mac) = nonce.split_once('.')?;
        let t = u64::from_str_radix(t, 16).ok()?;
        if digest::md5_hex(format!("{t}:{}", self.secret).as_bytes())[..20] != *mac {
            return None;
        }
        let age = now
            .saturating_duration_since(self.epoch)
            .as_secs()
            .saturating_sub(t);
        Some(age <= NONCE_LIFETIME.as_secs())
    }
}

/// One registered contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The Contact URI the endpoint registered.
    pub contact: String,
    /// Where the REGISTER came from (used to reach endpoints behind NAT).
    pub source: std::net::SocketAddr,
    /// It came over a stream transport (TCP or TLS).
    pub tcp: bool,
    /// The transport the REGISTER came over.
    pub transport: super::call::Transport,
    pub expires_at: Instant,
}

/// Address-of-record (username) → contacts.
#[derive(Debug, Default)]
pub struct Bindings {
    by_user: HashMap<String, Vec<Binding>>,
}

impl Bindings {
    /// Adds or refreshes a contact; `expires == 0` removes it.
    pub fn update(&mut self, user: &str, b: Binding, expires: u32, now: Instant) {
        let list = self.by_user.entry(user.to_string()).or_default();
        list.retain(|x| x.contact != b.contact && x.expires_at > now);
        if expires > 0 {
            list.push(b);
        }
        if list.is_empty() {
            self.by_user.remove(user);
        }
    }

    pub fn remove_all(&mut self, user: &str) {
        self.by_user.remove(user);
    }

    /// Live contacts of a user.
    pub fn lookup(&self, user: &str, now: Instant) -> Vec<Binding> {
        self.by_user
            .get(user)
            .map(|l| l.iter().filter(|b| b.expires_at > now).cloned().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_are_checked_and_expire() {
        let t0 = Instant::now();
        let n = Nonces::new(t0);
        let nonce = n.issue(t0 + Duration::from_secs(10));
        assert_eq!(n.check(&nonce, t0 + Duration::from_secs(20)), Some(true));
        assert_eq!(n.check(&nonce, t0 + Duration::from_secs(400)), Some(false));
        assert_eq!(n.check("0.forged", t0), None);
        assert_eq!(Nonces::new(t0).check(&nonce, t0), None, "another secret");
    }

    #[test]
    fn bindings_refresh_expire_and_remove() {
        let t0 = Instant::now();
        let mut b = Bindings::default();
        let bind = |c: &str, secs| Binding {
            contact: c.into(),
            source: "127.0.0.1:5070".parse().unwrap(),
            tcp: false,
            transport: crate::sip::call::Transport::Udp,
            expires_at: t0 + Duration::from_secs(secs),
        };
        b.update("agent1", bind("sip:a@127.0.0.1:5070", 60), 60, t0);
        b.update("agent1", bind("sip:a@127.0.0.1:5071", 120), 120, t0);
        b.update("agent1", bind("sip:a@127.0.0.1:5070", 90), 90, t0);
        assert_eq!(b.lookup("agent1", t0).len(), 2);
        assert_eq!(b.lookup("agent1", t0 + Duration::from_secs(100)).len(), 1);
        b.update("agent1", bind("sip:a@127.0.0.1:5071", 0), 0, t0);
        assert_eq!(b.lookup("agent1", t0).len(), 1);
        b.remove_all("agent1");
        assert!(b.lookup("agent1", t0).is_empty());
    }
}
