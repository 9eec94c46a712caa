//! Session timers (RFC 4028), sans-IO: negotiate Session-Expires/refresher on INVITE and 2xx,
//! and say when the refresher must re-INVITE and when the other side gives up on a silent peer.

use std::time::{Duration, Instant};

use super::message;

/// Our default request and lower bound (RFC 4028 recommends 1800 and at least 90).
pub const DEFAULT_INTERVAL: u32 = 1800;
pub const DEFAULT_MIN_SE: u32 = 90;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresher {
    Uac,
    Uas,
}

impl Refresher {
    fn as_str(self) -> &'static str {
        match self {
            Refresher::Uac => "uac",
            Refresher::Uas => "uas",
        }
    }
}

/// An active session timer on a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionTimer {
    pub interval: u32,
    /// We send the refreshes; otherwise we expect them.
    pub we_refresh: bool,
}

/// What is due next on a call with a session timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// Send a refresh (re-INVITE) at this time.
    Refresh(Instant),
    /// Without a refresh by then, hang up (RFC 4028 §10: interval − min(32 s, interval/3)).
    Expire(Instant),
}

impl SessionTimer {
    pub fn due(&self, refreshed_at: Instant) -> Due {
        let i = Duration::from_secs(self.interval as u64);
        if self.we_refresh {
            Due::Refresh(refreshed_at + i / 2)
        } else {
            Due::Expire(refreshed_at + i - Duration::from_secs(32.min(self.interval as u64 / 3)))
        }
    }
}

/// `1800;refresher=uac` → (1800, Some(Uac)).
pub fn parse(v: &str) -> Option<(u32, Option<Refresher>)> {
    let n = v.split(';').next()?.trim().parse().ok()?;
    let r = message::param(v, "refresher").and_then(|r| match r.to_ascii_lowercase().as_str() {
        "uac" => Some(Refresher::Uac),
        "uas" => Some(Refresher::Uas),
        _ => None,
    });
    Some((n, r))
}

fn supports_timer(h: &rsip::Headers) -> bool {
    message::values(h, "Supported")
        .iter()
        .chain(message::values(h, "Require").iter())
        .any(|v| v.eq_ignore_ascii_case("timer"))
}

/// UAS side of an INVITE (initial or refresh). `Ok(None)`: no session timer asked for;
/// `Ok(Some((timer, headers)))`: headers to add to the 2xx; `Err(min_se)`: answer 422 with Min-SE.
/// Headers to add to a message: (name, value).
pub type ExtraHeaders = Vec<(&'static str, String)>;

pub fn uas_negotiate(
    req: &rsip::Headers,
    min_se: u32,
) -> Result<Option<(SessionTimer, ExtraHeaders)>, u32> {
    let Some((interval, refresher)) =
        message::value(req, "Session-Expires").and_then(|v| parse(&v))
    else {
        return Ok(None);
    };
    if interval < min_se {
        return Err(min_se);
    }
    let uac_supports = supports_timer(req);
    let refresher = refresher.unwrap_or(if uac_supports {
        Refresher::Uac
    } else {
        Refresher::Uas
    });
    let mut headers = vec![(
        "Session-Expires",
        format!("{interval};refresher={}", refresher.as_str()),
    )];
    if uac_supports {
        headers.push(("Require", "timer".to_string()));
    }
    Ok(Some((
        SessionTimer {
            interval,
            we_refresh: refresher == Refresher::Uas,
        },
        headers,
    )))
}

/// UAC side: the session timer a 2xx to our INVITE set up (we are the UAC of that INVITE).
pub fn uac_accept(resp: &rsip::Headers) -> Option<SessionTimer> {
    let (interval, refresher) = message::value(resp, "Session-Expires").and_then(|v| parse(&v))?;
    // A 2xx without refresher means the UAC (us) refreshes (RFC 4028 §7.2).
    Some(SessionTimer {
        interval,
        we_refresh: refresher.unwrap_or(Refresher::Uac) == Refresher::Uac,
    })
}

/// Headers for a request we send (initial INVITE or our refresh).
pub fn request_headers(interval: u32, we_refresh_as_uac: bool) -> Vec<(&'static str, String)> {
    let r = if we_refresh_as_uac { "uac" } else { "uas" };
    vec![
        ("Supported", "timer".into()),
        ("Session-Expires", format!("{interval};refresher={r}")),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(lines: &[(&str, &str)]) -> rsip::Headers {
        let mut h = rsip::Headers::default();
        for (n, v) in lines {
            h.push(message::header(n, v));
        }
        h
    }

    #[test]
    fn uas_negotiation() {
        let h = headers(&[
            ("Session-Expires", "1800;refresher=uac"),
            ("Supported", "timer, 100rel"),
        ]);
        let (t, add) = uas_negotiate(&h, 90).unwrap().unwrap();
        assert_eq!(
            t,
            SessionTimer {
                interval: 1800,
                we_refresh: false
            }
        );
        assert_eq!(
            add,
            [
                ("Session-Expires", "1800;refresher=uac".to_string()),
                ("Require", "timer".to_string())
            ]
        );
        // No refresher and no timer support at the UAC: we refresh.
        let h = headers(&[("Session-Expires", "600")]);
        let (t, add) = uas_negotiate(&h, 90).unwrap().unwrap();
        assert!(t.we_refresh);
        assert_eq!(add.len(), 1);
        assert_eq!(
            uas_negotiate(&headers(&[("Session-Expires", "30")]), 90),
            Err(90)
        );
        assert_eq!(uas_negotiate(&headers(&[]), 90), Ok(None));
    }

    #[test]
    fn due_times() {
        let t0 = Instant::now();
        assert_eq!(
            SessionTimer {
                interval: 1800,
                we_refresh: true
            }
            .due(t0),
            Due::Refresh(t0 + Duration::from_secs(900))
        );
        assert_eq!(
            SessionTimer {
                interval: 1800,
                we_refresh: false
            }
            .due(t0),
            Due::Expire(t0 + Duration::from_secs(1768))
        );
        assert_eq!(
            SessionTimer {
                interval: 90,
                we_refresh: false
            }
            .due(t0),
            Due::Expire(t0 + Duration::from_secs(60))
        );
    }

    #[test]
    fn uac_side() {
        assert_eq!(
            uac_accept(&headers(&[("Session-Expires", "900;refresher=uas")])),
            Some(SessionTimer {
                interval: 900,
                we_refresh: false
            })
        );
        assert_eq!(
            uac_accept(&headers(&[("Session-Expires", "900")])),
            Some(SessionTimer {
                interval: 900,
                we_refresh: true
            })
        );
        assert_eq!(uac_accept(&headers(&[])), None);
    }
}
