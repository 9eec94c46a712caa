//! Outbound webhooks without I/O: subscriptions (what `[integrations.webhooks.<name>]` says and
//! its validation), the signature (`X-Dialbridge-Signature: sha256=<hex HMAC-SHA256 of
//! "<timestamp>.<body>">`, Stripe/GitHub style) and the retry schedule (exponential backoff with
//! downward jitter, capped, then `failed`). The driver in [`super::outbox`] feeds it the outcome
//! of each try and the current time. Validation reads one thing: the CA certificates of an
//! `https://` receiver (its `ca_file`, else the system roots), so a bad file stops the start.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The events a subscription can ask for.
pub const EVENTS: &[&str] = &[
    "contact.ended",
    "contact.disposition",
    "attempt.ended",
    "lead.dnc",
];

/// One receiver of events (`[integrations.webhooks.<name>]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Subscription {
    /// `http://host:port/path` or `https://host:port/path` of the receiver.
    pub url: String,
    /// `https://` only: a PEM file of the CA certificates the receiver's certificate must chain
    /// to, instead of the system's trusted roots.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<std::path::PathBuf>,
    /// The shared secret the body is signed with (at least 16 characters).
    pub secret: String,
    /// Which events to send (see [`EVENTS`]).
    pub events: Vec<String>,
    /// Tries before the delivery ends `failed`.
    pub max_attempts: u32,
    /// The wait after the first failed try; doubled after each next one, up to `backoff_cap_ms`.
    pub backoff_base_ms: u64,
    pub backoff_cap_ms: u64,
    /// How long one try may take (connect, send, status line).
    pub timeout_ms: u64,
    /// false: nothing is queued for it (deliveries already queued still go out).
    pub enabled: bool,
}

impl Default for Subscription {
    fn default() -> Self {
        Self {
            url: String::new(),
            ca_file: None,
            secret: String::new(),
            events: vec!["contact.ended".into()],
            max_attempts: 8,
            backoff_base_ms: 10_000,
            backoff_cap_ms: 3_600_000,
            timeout_ms: 10_000,
            enabled: true,
        }
    }
}

/// `[integrations]`: the webhook subscriptions by name, and the outbox's pace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IntegrationsConfig {
    /// How often new events are looked for and due deliveries tried, in milliseconds.
    pub poll_ms: u64,
    /// Deliveries posted at once by this node.
    pub concurrency: u32,
    pub webhooks: BTreeMap<String, Subscription>,
}

impl Default for IntegrationsConfig {
    fn default() -> Self {
        Self {
            poll_ms: 1000,
            concurrency: 4,
            webhooks: BTreeMap::new(),
        }
    }
}

impl IntegrationsConfig {
    /// Checks every key; the error names the first bad one (`integrations.webhooks.crm.url`).
    pub fn validate(&self) -> Result<(), String> {
        if !(50..=60_000).contains(&self.poll_ms) {
            return Err("integrations.poll_ms: between 50 and 60000".into());
        }
        if !(1..=64).contains(&self.concurrency) {
            return Err("integrations.concurrency: between 1 and 64".into());
        }
        for (name, s) in &self.webhooks {
            let key = |k: &str| format!("integrations.webhooks.{name}.{k}");
            if name.is_empty()
                || name.len() > 64
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(format!(
                    "integrations.webhooks.{name}: a name is 1-64 letters, digits, - or _"
                ));
            }
            let target =
                super::http::Target::parse(&s.url).map_err(|e| format!("{}: {e}", key("url")))?;
            match (&s.ca_file, target.tls) {
                (Some(_), false) => {
                    return Err(format!(
                        "{}: only for https:// receivers (url is http://)",
                        key("ca_file")
                    ));
                }
                (ca_file, true) => {
                    super::tls::client_config(ca_file.as_deref())
                        .map_err(|e| format!("{}: {e}", key("ca_file")))?;
                }
                (None, false) => {}
            }
            if s.secret.chars().count() < 16 {
                return Err(format!("{}: at least 16 characters", key("secret")));
            }
            if s.events.is_empty() {
                return Err(format!(
                    "{}: name at least one of {}",
                    key("events"),
                    EVENTS.join(", ")
                ));
            }
            if let Some(bad) = s.events.iter().find(|e| !EVENTS.contains(&e.as_str())) {
                return Err(format!(
                    "{}: {bad:?} is not one of {}",
                    key("events"),
                    EVENTS.join(", ")
                ));
            }
            if !(1..=100).contains(&s.max_attempts) {
                return Err(format!("{}: between 1 and 100", key("max_attempts")));
            }
            if !(10..=86_400_000).contains(&s.backoff_base_ms) {
                return Err(format!(
                    "{}: between 10 ms and 1 day",
                    key("backoff_base_ms")
                ));
            }
            if s.backoff_cap_ms < s.backoff_base_ms || s.backoff_cap_ms > 7 * 86_400_000 {
                return Err(format!(
                    "{}: at least backoff_base_ms and at most 7 days",
                    key("backoff_cap_ms")
                ));
            }
            if !(100..=60_000).contains(&s.timeout_ms) {
                return Err(format!("{}: between 100 and 60000", key("timeout_ms")));
            }
        }
        Ok(())
    }

    /// The enabled subscriptions that want `event`.
    pub fn wanting<'a>(&'a self, event: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.webhooks
            .iter()
            .filter(move |(_, s)| s.enabled && s.events.iter().any(|e| e == event))
            .map(|(n, _)| n.as_str())
    }
}

/// HMAC-SHA256 (RFC 2104) of `message` with `key`.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(k.map(|b| b ^ 0x36));
    inner.update(message);
    let inner = inner.finalize();
    let mut outer = Sha256::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(inner);
    outer.finalize().into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The `X-Dialbridge-Signature` value: `sha256=` and the hex HMAC of `"<timestamp>.<body>"`.
pub fn signature(secret: &str, timestamp_s: i64, body: &[u8]) -> String {
    let mut msg = format!("{timestamp_s}.").into_bytes();
    msg.extend_from_slice(body);
    format!("sha256={}", hex(&hmac_sha256(secret.as_bytes(), &msg)))
}

/// What a receiver does to check a request: the same HMAC, compared in constant time, and the
/// timestamp within `tolerance_s` of now.
pub fn verify(
    secret: &str,
    timestamp_s: i64,
    body: &[u8],
    header: &str,
    now_s: i64,
    tolerance_s: i64,
) -> bool {
    let expected = signature(secret, timestamp_s, body);
    let same = expected.len() == header.len()
        && expected
            .bytes()
            .zip(header.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    same && (now_s - timestamp_s).abs() <= tolerance_s
}

/// How one try ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TryOutcome {
    /// The receiver answered with this HTTP status.
    Status(u16),
    /// No answer: refused, timed out, reset (the reason).
    NoAnswer(String),
}

/// What happens to the delivery after a try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    Delivered,
    /// Try again at this time (epoch ms).
    RetryAt(i64),
    /// No tries left.
    Failed,
}

/// The wait after the `n`-th failed try (1-based): `base · 2^(n-1)` capped at `cap`, less up to
/// 20 % jitter (`jitter` in [0, 1)), so waits grow and receivers are not hit in lockstep.
pub fn backoff_ms(s: &Subscription, n: u32, jitter: f64) -> i64 {
    let exp = n.saturating_sub(1).min(40);
    let full = (s.backoff_base_ms as f64) * 2f64.powi(exp as i32);
    let capped = full.min(s.backoff_cap_ms as f64);
    (capped * (1.0 - 0.2 * jitter.clamp(0.0, 1.0))).round() as i64
}

/// The decision after try number `attempts` (1-based, this one included) ended with `outcome`.
pub fn after_try(
    s: &Subscription,
    attempts: u32,
    outcome: &TryOutcome,
    now_ms: i64,
    jitter: f64,
) -> Next {
    if matches!(outcome, TryOutcome::Status(code) if (200..300).contains(code)) {
        return Next::Delivered;
    }
    if attempts >= s.max_attempts {
        return Next::Failed;
    }
    Next::RetryAt(now_ms + backoff_ms(s, attempts, jitter))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub() -> Subscription {
        Subscription {
            url: "http://127.0.0.1:9/hook".into(),
            secret: "0123456789abcdef".into(),
            max_attempts: 4,
            backoff_base_ms: 1000,
            backoff_cap_ms: 5000,
            ..Default::default()
        }
    }

    #[test]
    fn hmac_matches_rfc_4231() {
        // Test case 2 and test case 6 (a key longer than the block).
        assert_eq!(
            hex(&hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            hex(&hmac_sha256(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn signature_covers_timestamp_and_body() {
        let sig = signature("0123456789abcdef", 1_795_478_400, b"{\"a\":1}");
        assert!(sig.starts_with("sha256=") && sig.len() == 7 + 64, "{sig}");
        assert!(verify(
            "0123456789abcdef",
            1_795_478_400,
            b"{\"a\":1}",
            &sig,
            1_795_478_410,
            300
        ));
        assert!(!verify(
            "0123456789abcdef",
            1_795_478_400,
            b"{\"a\":2}",
            &sig,
            1_795_478_410,
            300
        ));
        assert!(!verify(
            "0123456789abcdef",
            1_795_478_401,
            b"{\"a\":1}",
            &sig,
            1_795_478_410,
            300
        ));
        assert!(!verify(
            "another-secret-16",
            1_795_478_400,
            b"{\"a\":1}",
            &sig,
            1_795_478_410,
            300
        ));
        assert!(
            !verify(
                "0123456789abcdef",
                1_795_478_400,
                b"{\"a\":1}",
                &sig,
                1_795_479_000,
                300
            ),
            "too old"
        );
    }

    #[test]
    fn retries_back_off_exponentially_with_a_cap_then_fail() {
        let s = sub();
        let fail = TryOutcome::Status(500);
        assert_eq!(after_try(&s, 1, &fail, 0, 0.0), Next::RetryAt(1000));
        assert_eq!(after_try(&s, 2, &fail, 0, 0.0), Next::RetryAt(2000));
        assert_eq!(after_try(&s, 3, &fail, 0, 0.0), Next::RetryAt(4000));
        assert_eq!(after_try(&s, 4, &fail, 0, 0.0), Next::Failed);
        let no = TryOutcome::NoAnswer("refused".into());
        assert_eq!(after_try(&s, 1, &no, 10, 0.0), Next::RetryAt(1010));
        assert_eq!(
            after_try(&s, 4, &TryOutcome::Status(204), 0, 0.0),
            Next::Delivered
        );
        assert_eq!(
            after_try(&s, 1, &TryOutcome::Status(302), 0, 0.0),
            Next::RetryAt(1000),
            "a redirect is not a delivery"
        );
        let long = Subscription {
            max_attempts: 100,
            ..s.clone()
        };
        assert_eq!(backoff_ms(&long, 10, 0.0), 5000, "capped");
        assert_eq!(backoff_ms(&long, 99, 0.0), 5000, "no overflow");
    }

    #[test]
    fn jitter_only_shortens_and_waits_still_grow() {
        let s = sub();
        for n in 1..3 {
            let longest_now = backoff_ms(&s, n, 0.0);
            let shortest_next = backoff_ms(&s, n + 1, 0.999);
            assert!(shortest_next > longest_now, "try {n}");
        }
        assert_eq!(backoff_ms(&s, 1, 1.0), 800);
    }

    #[test]
    fn validation_names_the_key() {
        let mut c = IntegrationsConfig::default();
        c.webhooks.insert("crm".into(), sub());
        assert_eq!(c.validate(), Ok(()));
        let bad = |f: &dyn Fn(&mut Subscription)| {
            let mut c = c.clone();
            f(c.webhooks.get_mut("crm").unwrap());
            c.validate().unwrap_err()
        };
        assert!(
            bad(&|s| s.url = "ftp://x".into()).starts_with("integrations.webhooks.crm.url:"),
            "{}",
            bad(&|s| s.url = "ftp://x".into())
        );
        assert!(
            bad(&|s| s.secret = "short".into()).starts_with("integrations.webhooks.crm.secret:")
        );
        let e = bad(&|s| s.events = vec!["contact.eneded".into()]);
        assert!(
            e.starts_with("integrations.webhooks.crm.events:") && e.contains("contact.eneded"),
            "{e}"
        );
        assert!(bad(&|s| s.max_attempts = 0).contains("max_attempts"));
        assert!(bad(&|s| s.backoff_cap_ms = 10).contains("backoff_cap_ms"));
        // ca_file: read at validation; only for https.
        let e = bad(&|s| {
            s.url = "https://crm.example.com/hook".into();
            s.ca_file = Some("/nonexistent/crm-ca.pem".into());
        });
        assert!(
            e.starts_with("integrations.webhooks.crm.ca_file:") && e.contains("crm-ca.pem"),
            "{e}"
        );
        let e = bad(&|s| s.ca_file = Some("/nonexistent/crm-ca.pem".into()));
        assert!(
            e.starts_with("integrations.webhooks.crm.ca_file:") && e.contains("https"),
            "{e}"
        );
        let mut named = c.clone();
        named.webhooks.insert("bad name".into(), sub());
        assert!(named.validate().unwrap_err().contains("bad name"));
        assert_eq!(c.wanting("contact.ended").collect::<Vec<_>>(), ["crm"]);
        assert_eq!(c.wanting("lead.dnc").count(), 0);
    }
}
