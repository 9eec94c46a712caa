//! HTTP digest authentication for SIP (RFC 2617 / RFC 7616 with MD5), computed by us.
//!
//! rsip 0.4's digest support is wrong in ways that matter (nc formatted in decimal, MD5-sess
//! ignoring the session HA1, auth-int hashing an empty body, `qop="auth,auth-int"` failing to
//! parse), so challenges are parsed tolerantly here and responses computed with the `md-5` crate.
//! Both sides: [`Challenge`] + [`Credentials::authorize`] for a client answering 401/407, and
//! [`verify`] for a server checking an Authorization header.

use md5::{Digest, Md5};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn md5_hex(data: &[u8]) -> String {
    hex(&Md5::digest(data))
}

/// Splits `Digest a="x, y", b=z` into lowercase-name/value pairs (quotes removed).
pub fn parse_params(v: &str) -> Vec<(String, String)> {
    let v = v.trim();
    let rest = match v.split_once(char::is_whitespace) {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("digest") => rest,
        _ => v,
    };
    let mut out = Vec::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let name: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if name.trim().is_empty() {
            break;
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            let mut escaped = false;
            for c in chars.by_ref() {
                match (escaped, c) {
                    (false, '\\') => escaped = true,
                    (false, '"') => break,
                    _ => {
                        value.push(c);
                        escaped = false;
                    }
                }
            }
        } else {
            while let Some(c) = chars.peek() {
                if *c == ',' {
                    break;
                }
                value.push(*c);
                chars.next();
            }
        }
        out.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Qop {
    Auth,
    AuthInt,
}

/// A WWW-Authenticate / Proxy-Authenticate challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub realm: String,
    pub nonce: String,
    pub opaque: Option<String>,
    pub algorithm_sess: bool,
    /// The qop we will use: auth when offered, else auth-int when only that is offered.
    pub qop: Option<Qop>,
    pub stale: bool,
}

impl Challenge {
    pub fn parse(v: &str) -> Result<Challenge, String> {
        let scheme = v.split_whitespace().next().unwrap_or("");
        if !scheme.eq_ignore_ascii_case("digest") {
            return Err(format!("not a Digest challenge: {scheme:.20}"));
        }
        let p = parse_params(v);
        let get = |n: &str| p.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        let algorithm = get("algorithm").unwrap_or_else(|| "MD5".into());
        let algorithm_sess = match algorithm.to_ascii_uppercase().as_str() {
            "MD5" => false,
            "MD5-SESS" => true,
            other => return Err(format!("unsupported algorithm {other}")),
        };
        let qops: Vec<String> = get("qop")
            .map(|q| {
                q.split(',')
                    .map(|s| s.trim().to_ascii_lowercase())
                    .collect()
            })
            .unwrap_or_default();
        let qop = if qops.iter().any(|q| q == "auth") {
            Some(Qop::Auth)
        } else if qops.iter().any(|q| q == "auth-int") {
            Some(Qop::AuthInt)
        } else {
            None
        };
        Ok(Challenge {
            realm: get("realm").ok_or("challenge without realm")?,
            nonce: get("nonce").ok_or("challenge without nonce")?,
            opaque: get("opaque"),
            algorithm_sess,
            qop,
            stale: get("stale").is_some_and(|s| s.eq_ignore_ascii_case("true")),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

/// Prefix marking a stored secret as the precomputed `MD5(user:realm:password)` (what a registrar
/// keeps instead of the password) rather than the password itself.
pub const HA1_PREFIX: &str = "ha1:";

/// `MD5(user:realm:password)` as lowercase hex, the form registrars store (see [`HA1_PREFIX`]).
pub fn ha1_hex(user: &str, realm: &str, password: &str) -> String {
    md5_hex(format!("{user}:{realm}:{password}").as_bytes())
}

fn ha1(user: &str, realm: &str, password: &str, sess: Option<(&str, &str)>) -> String {
    let h = match password.strip_prefix(HA1_PREFIX) {
        Some(stored) => stored.to_ascii_lowercase(),
        None => ha1_hex(user, realm, password),
    };
    match sess {
        Some((nonce, cnonce)) => md5_hex(format!("{h}:{nonce}:{cnonce}").as_bytes()),
        None => h,
    }
}

/// The request-digest of RFC 2617 §3.2.2.1.
#[allow(clippy::too_many_arguments)]
pub fn response(
    user: &str,
    realm: &str,
    password: &str,
    nonce: &str,
    method: &str,
    uri: &str,
    body: &[u8],
    qop: Option<(Qop, u32, &str)>,
    sess: bool,
) -> String {
    let cnonce = qop.map(|(_, _, c)| c).unwrap_or("");
    let ha1 = ha1(user, realm, password, sess.then_some((nonce, cnonce)));
    let ha2 = match qop {
        Some((Qop::AuthInt, _, _)) => {
            md5_hex(format!("{method}:{uri}:{}", md5_hex(body)).as_bytes())
        }
        _ => md5_hex(format!("{method}:{uri}").as_bytes()),
    };
    match qop {
        Some((q, nc, cnonce)) => {
            let q = if q == Qop::Auth { "auth" } else { "auth-int" };
            md5_hex(format!("{ha1}:{nonce}:{nc:08x}:{cnonce}:{q}:{ha2}").as_bytes())
        }
        None => md5_hex(format!("{ha1}:{nonce}:{ha2}").as_bytes()),
    }
}

impl Credentials {
    /// The Authorization / Proxy-Authorization value answering `ch` for this request.
    pub fn authorize(
        &self,
        ch: &Challenge,
        method: &str,
        uri: &str,
        body: &[u8],
        nc: u32,
        cnonce: &str,
    ) -> String {
        let qop = ch.qop.map(|q| (q, nc, cnonce));
        let r = response(
            &self.username,
            &ch.realm,
            &self.password,
            &ch.nonce,
            method,
            uri,
            body,
            qop,
            ch.algorithm_sess,
        );
        let mut v = format!(
            "Digest username=\"{}\", realm=\"{}\", nonce=\"{}\", uri=\"{}\", response=\"{}\", algorithm={}",
            self.username,
            ch.realm,
            ch.nonce,
            uri,
            r,
            if ch.algorithm_sess { "MD5-sess" } else { "MD5" }
        );
        if let Some((q, nc, cnonce)) = qop {
            let q = if q == Qop::Auth { "auth" } else { "auth-int" };
            v.push_str(&format!(", cnonce=\"{cnonce}\", qop={q}, nc={nc:08x}"));
        }
        if let Some(o) = &ch.opaque {
            v.push_str(&format!(", opaque=\"{o}\""));
        }
        v
    }
}

/// Server side: checks an Authorization value against the password of the user it names.
/// Returns the username when the response is right for `realm`, `nonce_ok` accepts the nonce,
/// and the method/body match.
pub fn verify(
    authorization: &str,
    realm: &str,
    method: &str,
    body: &[u8],
    password_of: impl Fn(&str) -> Option<String>,
    nonce_ok: impl Fn(&str) -> bool,
) -> Option<String> {
    let p = parse_params(authorization);
    let get = |n: &str| p.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
    let user = get("username")?;
    if get("realm")? != realm || !nonce_ok(get("nonce")?) {
        return None;
    }
    let password = password_of(user)?;
    let sess = get("algorithm").is_some_and(|a| a.eq_ignore_ascii_case("MD5-sess"));
    let qop = match get("qop") {
        Some(q) => {
            let q = if q.eq_ignore_ascii_case("auth-int") {
                Qop::AuthInt
            } else {
                Qop::Auth
            };
            let nc = u32::from_str_radix(get("nc")?, 16).ok()?;
            Some((q, nc, get("cnonce")?))
        }
        None => None,
    };
    let want = response(
        user,
        realm,
        &password,
        get("nonce")?,
        method,
        get("uri")?,
        body,
        qop,
        sess,
    );
    (want.eq_ignore_ascii_case(get("response")?)).then(|| user.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_ha1_verifies_like_the_password() {
        // RFC 2617 §3.5's example: Mufasa / "Circle Of Life" in testrealm@host.com.
        let auth = "Digest username=\"Mufasa\", realm=\"testrealm@host.com\", nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", \
                    uri=\"/dir/index.html\", qop=auth, nc=00000001, cnonce=\"0a4f113b\", \
                    response=\"6629fae49393a05397450978507c4ef1\", opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"";
        let by_password = verify(
            auth,
            "testrealm@host.com",
            "GET",
            b"",
            |_| Some("Circle Of Life".into()),
            |_| true,
        );
        let stored = format!(
            "{HA1_PREFIX}{}",
            ha1_hex("Mufasa", "testrealm@host.com", "Circle Of Life")
        );
        let by_ha1 = verify(
            auth,
            "testrealm@host.com",
            "GET",
            b"",
            |_| Some(stored.clone()),
            |_| true,
        );
        assert_eq!(
            (by_password.as_deref(), by_ha1.as_deref()),
            (Some("Mufasa"), Some("Mufasa"))
        );
        let wrong = format!(
            "{HA1_PREFIX}{}",
            ha1_hex("Mufasa", "testrealm@host.com", "Circle of Life")
        );
        assert_eq!(
            verify(
                auth,
                "testrealm@host.com",
                "GET",
                b"",
                |_| Some(wrong.clone()),
                |_| true
            ),
            None
        );
    }

    #[test]
    fn rfc2617_example_vector() {
        // RFC 2617 §3.5.
        let r = response(
            "Mufasa",
            "testrealm@host.com",
            "Circle Of Life",
            "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            "GET",
            "/dir/index.html",
            b"",
            Some((Qop::Auth, 1, "0a4f113b")),
            false,
        );
        assert_eq!(r, "6629fae49393a05397450978507c4ef1");
    }

    #[test]
    fn nc_is_eight_hex_digits() {
        let ch = Challenge::parse(r#"Digest realm="r", nonce="n", qop="auth""#).unwrap();
        let c = Credentials {
            username: "u".into(),
            password: "p".into(),
        };
        let v = c.authorize(&ch, "INVITE", "sip:x@h", b"", 10, "c");
        assert!(v.contains("nc=0000000a"), "{v}");
    }

    #[test]
    fn tolerant_challenge_parsing() {
        let ch = Challenge::parse(
            "Digest  realm=\"asterisk, inc\",nonce=\"abc\" , qop=\"auth,auth-int\", algorithm=md5, opaque=\"o\", stale=TRUE",
        )
        .unwrap();
        assert_eq!(ch.realm, "asterisk, inc");
        assert_eq!(ch.qop, Some(Qop::Auth));
        assert_eq!(ch.opaque.as_deref(), Some("o"));
        assert!(ch.stale);
        let only_int = Challenge::parse(r#"Digest realm="r", nonce="n", qop="auth-int""#).unwrap();
        assert_eq!(only_int.qop, Some(Qop::AuthInt));
        let none = Challenge::parse(r#"digest realm=r,nonce=n"#).unwrap();
        assert_eq!((none.qop, none.realm.as_str()), (None, "r"));
        assert!(Challenge::parse("Basic realm=\"x\"").is_err());
        assert!(Challenge::parse("Digest nonce=\"x\"").is_err());
    }

    #[test]
    fn md5_sess_uses_session_ha1_and_auth_int_hashes_body() {
        let plain = response(
            "u",
            "r",
            "p",
            "n",
            "INVITE",
            "sip:x",
            b"body",
            Some((Qop::Auth, 1, "c")),
            false,
        );
        let sess = response(
            "u",
            "r",
            "p",
            "n",
            "INVITE",
            "sip:x",
            b"body",
            Some((Qop::Auth, 1, "c")),
            true,
        );
        assert_ne!(plain, sess);
        let int_a = response(
            "u",
            "r",
            "p",
            "n",
            "INVITE",
            "sip:x",
            b"body",
            Some((Qop::AuthInt, 1, "c")),
            false,
        );
        let int_b = response(
            "u",
            "r",
            "p",
            "n",
            "INVITE",
            "sip:x",
            b"",
            Some((Qop::AuthInt, 1, "c")),
            false,
        );
        assert_ne!(int_a, int_b);
    }

    #[test]
    fn client_and_server_agree() {
        for qop in ["auth", "auth-int", ""] {
            let chal = if qop.is_empty() {
                r#"Digest realm="dialbridge", nonce="xyz""#.to_string()
            } else {
                format!(
                    r#"Digest realm="dialbridge", nonce="xyz", qop="{qop}", algorithm=MD5-sess"#
                )
            };
            let ch = Challenge::parse(&chal).unwrap();
            let c = Credentials {
                username: "agent1".into(),
                password: "s3cret".into(),
            };
            let auth = c.authorize(&ch, "REGISTER", "sip:127.0.0.1", b"b", 3, "cn");
            let pw = |u: &str| (u == "agent1").then(|| "s3cret".to_string());
            assert_eq!(
                verify(&auth, "dialbridge", "REGISTER", b"b", pw, |n| n == "xyz").as_deref(),
                Some("agent1")
            );
            assert!(verify(&auth, "dialbridge", "INVITE", b"b", pw, |_| true).is_none());
            let wrong = |_: &str| Some("nope".to_string());
            assert!(verify(&auth, "dialbridge", "REGISTER", b"b", wrong, |_| true).is_none());
        }
    }
}
