//! The one outcome table: SIP final code (or the absence of one), or a tone detected in early
//! media → call outcome.
//!
//! Used by the SIP layer for every hang-up event (hence the call records in [`crate::cdr`]), by
//! the dialer's retry rules and by reports, so every place that needs "what happened to this
//! call" agrees. Tones detected in early media: a special-information tone maps to
//! [`Outcome::NumberDisconnected`] ([`Outcome::from_tone`]); whoever hears one hangs up with
//! [`HangupCause::SpecialInformationTone`] (`CallControl::hangup_on_tone`), and the cancelled
//! call then ends with that outcome instead of no-answer ([`Outcome::of_cancelled`]).

use serde::Serialize;

use crate::media::progress::ProgressTone;
use crate::sip::call::HangupCause;

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

    /// A tone heard in early media that decides the outcome by itself: special-information tones
    /// (number disconnected). Busy, reorder and ringback decide nothing: the final response does.
    pub fn from_tone(tone: ProgressTone) -> Option<Outcome> {
        match tone {
            ProgressTone::Sit(_) => Some(Outcome::from_sit()),
            ProgressTone::Busy | ProgressTone::Reorder | ProgressTone::Ringback => None,
        }
    }

    /// The outcome of an outbound call we cancelled before it was answered (its 487, the 200 that
    /// crossed our CANCEL, or no answer to the CANCEL at all): no answer, unless we hung up
    /// because a tone said the number is not in service.
    pub fn of_cancelled(cause: HangupCause) -> Outcome {
        match cause {
            HangupCause::SpecialInformationTone => Outcome::from_sit(),
            _ => Outcome::NoAnswer,
        }
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

    #[test]
    fn special_information_tones_mean_number_disconnected() {
        use crate::media::progress::SitKind;
        for kind in [
            SitKind::Intercept,
            SitKind::VacantCode,
            SitKind::NoCircuit,
            SitKind::Reorder,
        ] {
            assert_eq!(
                Outcome::from_tone(ProgressTone::Sit(kind)),
                Some(Outcome::NumberDisconnected),
                "{kind:?}"
            );
        }
        for tone in [
            ProgressTone::Busy,
            ProgressTone::Reorder,
            ProgressTone::Ringback,
        ] {
            assert_eq!(Outcome::from_tone(tone), None, "{tone:?}");
        }
        // Cancelled because of the tone: number disconnected; cancelled otherwise: no answer.
        assert_eq!(
            Outcome::of_cancelled(HangupCause::SpecialInformationTone),
            Outcome::NumberDisconnected
        );
        for cause in [
            HangupCause::LocalHangup,
            HangupCause::RingTimeout,
            HangupCause::Shutdown,
        ] {
            assert_eq!(Outcome::of_cancelled(cause), Outcome::NoAnswer, "{cause:?}");
        }
    }
}
