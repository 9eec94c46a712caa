//! Session-timer glue: arming the refresh/expiry timer, sending refresh re-INVITEs, hanging up
//! sessions whose peer stopped refreshing.

use std::time::Instant;

use super::{CallTimer, Endpoint};
use crate::sip::call::{CallId, HangupCause};
use crate::sip::outcome::Outcome;
use crate::sip::session_timer::{Due, SessionTimer};

impl Endpoint {
    /// (Re)starts the session timer of a call from `now` (an answer, an ACK, a refresh).
    pub(super) fn session_start(&mut self, id: CallId, timer: Option<SessionTimer>, now: Instant) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if timer.is_some() {
            call.session = timer;
        }
        let Some(t) = call.session else { return };
        let at = match t.due(now) {
            Due::Refresh(at) | Due::Expire(at) => at,
        };
        call.session_due = Some(at);
        self.timer(at, id, CallTimer::Session);
    }

    pub(super) fn session_timer_fired(&mut self, id: CallId, now: Instant) {
        let Some(call) = self.calls.get(&id) else {
            return;
        };
        let (Some(t), Some(due)) = (call.session, call.session_due) else {
            return;
        };
        if now < due {
            return; // refreshed since this timer was armed
        }
        if t.we_refresh {
            let dir = call.offered;
            self.send_reinvite(id, dir, now);
            // If the refresh cannot go now (another re-INVITE in flight), try again shortly.
            self.session_start(id, None, now);
        } else {
            self.send_bye(id, now);
            self.end_call(id, HangupCause::SessionExpired, None, Outcome::Answered);
        }
    }
}
