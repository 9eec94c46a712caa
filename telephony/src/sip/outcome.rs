//! The one outcome table: SIP final code (or the absence of one) → call outcome.
//!
//! Used by the dialer's retry rules and by reports, so every place that needs "what happened to
//! this call" agrees. Tones detected in early media (special-information tones) map to
//! [`Outcome::NumberDisconnected`] through [`Outcome::from_sit`].

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Answered,
    Busy,
    NoAnswer,
    Rejected,
    /// 404, 410, 484, 604 (or a special-information tone).
    NumberDisconnected,
    /// No response at all (transaction timeout) or the transport failed.
    Unreachable,
    /// The trunk is overloaded or failing (5xx); try the next trunk when one is configured.
    Congestion,
}

impl Outcome {
    /// The outcome of a final response code.
    pub fn from_code(code: u16) -> Outcome {
        match code {
            200..=299 => Outcome::Answered,
            486 | 600 => Outcome::Busy,
            404 | 410 | 484 | 604 => Outcome::NumberDisconnected,
            408 | 480 | 487 => Outcome::NoAnswer,
            500..=599 => Outcome::Congestion,
            _ => Outcome::Rejected,
        }
    }

    /// A special-information tone heard in early media.
    pub fn from_sit() -> Outcome {
        Outcome::NumberDisconnected
    }

    /// Whether the call should be retried on the next configured trunk at once.
    pub fn try_next_trunk(self) -> bool {
        matches!(self, Outcome::Congestion | Outcome::Unreachable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let cases = [
            (200, Outcome::Answered),
            (486, Outcome::Busy),
            (600, Outcome::Busy),
            (480, Outcome::NoAnswer),
            (487, Outcome::NoAnswer),
            (404, Outcome::NumberDisconnected),
            (410, Outcome::NumberDisconnected),
            (484, Outcome::NumberDisconnected),
            (604, Outcome::NumberDisconnected),
            (503, Outcome::Congestion),
            (603, Outcome::Rejected),
            (403, Outcome::Rejected),
            (488, Outcome::Rejected),
        ];
        for (code, want) in cases {
            assert_eq!(Outcome::from_code(code), want, "{code}");
        }
        assert!(Outcome::from_code(503).try_next_trunk());
        assert!(!Outcome::from_code(486).try_next_trunk());
    }
}
