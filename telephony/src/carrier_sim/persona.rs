//! What one simulated callee does, sans-IO: the class drawn for the call and the plan go in, then
//! call inputs with the current time; [`Action`]s come out, and [`Persona::deadline`] says when
//! to call back with [`Input::Timer`]. The driver in [`super`] owns the call and the timer.
//!
//! - Human: rings, answers, says "hello?", listens; presses the configured DTMF key at its time;
//!   hangs up when the talk time (from the answer) is over, or earlier on the peer's BYE.
//! - Machine: rings, answers, plays the greeting that ends with a beep, "records" for the talk
//!   time, hangs up.
//! - Busy: refuses with 486 after the busy delay.
//! - No answer: rings until `no_answer_after`, then refuses with 480 (the caller usually gives up
//!   first and cancels).
//! - Agent: an agent phone: answers and stays (a nailed-up leg) until the peer hangs up, sending
//!   quiet line noise the whole time (a real phone's RTP never stops, and the appliance hangs up
//!   legs whose RTP stopped).

use std::time::{Duration, Instant};

use serde::Serialize;

/// How a simulated callee behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Class {
    Human,
    Machine,
    Busy,
    NoAnswer,
    Agent,
}

impl Class {
    pub const ALL: [Class; 5] = [
        Class::Human,
        Class::Machine,
        Class::Busy,
        Class::NoAnswer,
        Class::Agent,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Class::Human => "human",
            Class::Machine => "machine",
            Class::Busy => "busy",
            Class::NoAnswer => "no-answer",
            Class::Agent => "agent",
        }
    }

    /// Parses `human`, `machine`, `busy`, `no-answer` (or `noanswer`, `no_answer`), `agent`.
    pub fn parse(s: &str) -> Option<Class> {
        match s.trim().to_ascii_lowercase().replace('_', "-").as_str() {
            "human" => Some(Class::Human),
            "machine" | "am" | "answering-machine" => Some(Class::Machine),
            "busy" => Some(Class::Busy),
            "no-answer" | "noanswer" => Some(Class::NoAnswer),
            "agent" => Some(Class::Agent),
            _ => None,
        }
    }
}

/// Timings shared by every call.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Ringing before a human, machine or agent phone answers.
    pub ring: Duration,
    /// Before a busy callee's 486.
    pub busy_after: Duration,
    /// A no-answer callee refuses with 480 after ringing this long.
    pub no_answer_after: Duration,
    /// A human stays this long after answering (a machine records this long after its beep).
    pub talk: Duration,
    /// A human presses this key this long after saying hello.
    pub press: Option<(char, Duration)>,
}

impl Default for Plan {
    fn default() -> Self {
        Plan {
            ring: Duration::from_millis(1500),
            busy_after: Duration::from_millis(300),
            no_answer_after: Duration::from_secs(60),
            talk: Duration::from_secs(30),
            press: None,
        }
    }
}

/// Audio a persona plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clip {
    /// "Hello?"
    Hello,
    /// The voicemail greeting, ending with the beep.
    Greeting,
    /// Quiet line noise that never ends (an agent phone's open microphone).
    Line,
}

/// What happened on the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// The INVITE arrived (the call rings).
    Offered,
    /// Our answer was accepted (media is up).
    Answered,
    /// A clip finished playing.
    PlaybackFinished,
    /// The deadline passed.
    Timer,
    /// The call ended (either side).
    Ended,
}

/// What the driver must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Answer,
    Reject(u16),
    Play(Clip),
    SendDtmf(char),
    Hangup,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Idle,
    Ringing,
    Answering,
    Speaking,
    Listening,
    Done,
}

/// One callee.
#[derive(Debug, Clone)]
pub struct Persona {
    class: Class,
    plan: Plan,
    state: State,
    deadline: Option<Instant>,
    hang_up_at: Option<Instant>,
    press_at: Option<Instant>,
    pressed: bool,
}

impl Persona {
    pub fn new(class: Class, plan: Plan) -> Persona {
        Persona {
            class,
            plan,
            state: State::Idle,
            deadline: None,
            hang_up_at: None,
            press_at: None,
            pressed: false,
        }
    }

    pub fn class(&self) -> Class {
        self.class
    }

    /// When to feed [`Input::Timer`].
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    pub fn done(&self) -> bool {
        self.state == State::Done
    }

    /// Whether the key press (if any) went out.
    pub fn pressed(&self) -> bool {
        self.pressed
    }

    pub fn on(&mut self, input: Input, now: Instant) -> Vec<Action> {
        use State::*;
        match (self.state, input) {
            (_, Input::Ended) => {
                self.state = Done;
                self.deadline = None;
                vec![]
            }
            (Idle, Input::Offered) => {
                self.state = Ringing;
                let wait = match self.class {
                    Class::Busy => self.plan.busy_after,
                    Class::NoAnswer => self.plan.no_answer_after,
                    _ => self.plan.ring,
                };
                self.deadline = Some(now + wait);
                vec![]
            }
            (Ringing, Input::Timer) if self.due(now) => {
                self.deadline = None;
                match self.class {
                    Class::Busy => {
                        self.state = Done;
                        vec![Action::Reject(486)]
                    }
                    Class::NoAnswer => {
                        self.state = Done;
                        vec![Action::Reject(480)]
                    }
                    _ => {
                        self.state = Answering;
                        vec![Action::Answer]
                    }
                }
            }
            (Answering | Ringing, Input::Answered) => match self.class {
                Class::Human => {
                    self.state = Speaking;
                    self.hang_up_at = Some(now + self.plan.talk);
                    self.deadline = self.hang_up_at;
                    vec![Action::Play(Clip::Hello)]
                }
                Class::Machine => {
                    self.state = Speaking;
                    vec![Action::Play(Clip::Greeting)]
                }
                // Agent phones stay until the peer hangs up, sending audio all along.
                Class::Agent => {
                    self.state = Listening;
                    self.deadline = None;
                    vec![Action::Play(Clip::Line)]
                }
                // Busy and no-answer never answer.
                _ => {
                    self.state = Listening;
                    self.deadline = None;
                    vec![]
                }
            },
            (Speaking, Input::PlaybackFinished) => {
                self.state = Listening;
                match self.class {
                    Class::Human => {
                        self.press_at = self.plan.press.map(|(_, after)| now + after);
                    }
                    _ => {
                        // A machine records the message for the talk time after its beep.
                        self.hang_up_at = Some(now + self.plan.talk);
                    }
                }
                self.deadline = self.next_deadline();
                vec![]
            }
            (Speaking | Listening, Input::Timer) if self.due(now) => {
                let mut out = vec![];
                if let (Some(at), Some((key, _))) = (self.press_at, self.plan.press)
                    && !self.pressed
                    && at <= now
                {
                    self.pressed = true;
                    out.push(Action::SendDtmf(key));
                }
                if self.hang_up_at.is_some_and(|at| at <= now) {
                    self.state = Done;
                    self.deadline = None;
                    out.push(Action::Hangup);
                } else {
                    self.deadline = self.next_deadline();
                }
                out
            }
            _ => vec![],
        }
    }

    fn due(&self, now: Instant) -> bool {
        self.deadline.is_some_and(|d| d <= now)
    }

    fn next_deadline(&self) -> Option<Instant> {
        let press = self.press_at.filter(|_| !self.pressed);
        match (press, self.hang_up_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> Plan {
        Plan {
            ring: Duration::from_secs(1),
            busy_after: Duration::from_millis(200),
            no_answer_after: Duration::from_secs(20),
            talk: Duration::from_secs(10),
            press: Some(('1', Duration::from_secs(2))),
        }
    }

    #[test]
    fn human_answers_says_hello_presses_then_hangs_up_at_talk_end() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut p = Persona::new(Class::Human, plan());
        assert_eq!(p.on(Input::Offered, t0), vec![]);
        assert_eq!(p.deadline(), Some(t0 + s(1)));
        assert_eq!(
            p.on(Input::Timer, t0 + Duration::from_millis(500)),
            vec![],
            "not due yet"
        );
        assert_eq!(p.on(Input::Timer, t0 + s(1)), vec![Action::Answer]);
        assert_eq!(
            p.on(Input::Answered, t0 + s(1)),
            vec![Action::Play(Clip::Hello)]
        );
        assert_eq!(
            p.deadline(),
            Some(t0 + s(11)),
            "talk time counts from the answer"
        );
        assert_eq!(p.on(Input::PlaybackFinished, t0 + s(2)), vec![]);
        assert_eq!(p.deadline(), Some(t0 + s(4)), "the key press comes first");
        assert_eq!(p.on(Input::Timer, t0 + s(4)), vec![Action::SendDtmf('1')]);
        assert!(p.pressed());
        assert_eq!(p.deadline(), Some(t0 + s(11)));
        assert_eq!(p.on(Input::Timer, t0 + s(11)), vec![Action::Hangup]);
        assert!(p.done());
        assert_eq!(p.deadline(), None);
    }

    #[test]
    fn human_hung_up_on_stops_everything() {
        let t0 = Instant::now();
        let mut p = Persona::new(Class::Human, plan());
        p.on(Input::Offered, t0);
        p.on(Input::Timer, t0 + Duration::from_secs(1));
        p.on(Input::Answered, t0 + Duration::from_secs(1));
        assert_eq!(p.on(Input::Ended, t0 + Duration::from_secs(2)), vec![]);
        assert!(p.done());
        assert_eq!(p.on(Input::Timer, t0 + Duration::from_secs(30)), vec![]);
        assert!(!p.pressed());
    }

    #[test]
    fn machine_plays_greeting_then_records_for_the_talk_time() {
        let t0 = Instant::now();
        let mut p = Persona::new(
            Class::Machine,
            Plan {
                press: None,
                ..plan()
            },
        );
        p.on(Input::Offered, t0);
        assert_eq!(
            p.on(Input::Timer, t0 + Duration::from_secs(1)),
            vec![Action::Answer]
        );
        assert_eq!(
            p.on(Input::Answered, t0 + Duration::from_secs(1)),
            vec![Action::Play(Clip::Greeting)]
        );
        assert_eq!(p.deadline(), None, "no timer while the greeting plays");
        p.on(Input::PlaybackFinished, t0 + Duration::from_secs(7));
        assert_eq!(p.deadline(), Some(t0 + Duration::from_secs(17)));
        assert_eq!(
            p.on(Input::Timer, t0 + Duration::from_secs(17)),
            vec![Action::Hangup]
        );
    }

    #[test]
    fn busy_and_no_answer_refuse_after_their_delays() {
        let t0 = Instant::now();
        let mut b = Persona::new(Class::Busy, plan());
        b.on(Input::Offered, t0);
        assert_eq!(b.deadline(), Some(t0 + Duration::from_millis(200)));
        assert_eq!(
            b.on(Input::Timer, t0 + Duration::from_millis(200)),
            vec![Action::Reject(486)]
        );
        assert!(b.done());
        let mut n = Persona::new(Class::NoAnswer, plan());
        n.on(Input::Offered, t0);
        assert_eq!(n.on(Input::Timer, t0 + Duration::from_secs(19)), vec![]);
        assert_eq!(
            n.on(Input::Timer, t0 + Duration::from_secs(20)),
            vec![Action::Reject(480)]
        );
        // The caller cancelling first just ends it.
        let mut c = Persona::new(Class::NoAnswer, plan());
        c.on(Input::Offered, t0);
        assert_eq!(c.on(Input::Ended, t0 + Duration::from_secs(5)), vec![]);
        assert!(c.done());
    }

    #[test]
    fn agent_phone_answers_and_stays_until_the_peer_leaves() {
        let t0 = Instant::now();
        let mut a = Persona::new(Class::Agent, plan());
        a.on(Input::Offered, t0);
        assert_eq!(
            a.on(Input::Timer, t0 + Duration::from_secs(1)),
            vec![Action::Answer]
        );
        assert_eq!(
            a.on(Input::Answered, t0 + Duration::from_secs(1)),
            vec![Action::Play(Clip::Line)]
        );
        assert_eq!(a.deadline(), None);
        assert!(!a.done());
        a.on(Input::Ended, t0 + Duration::from_secs(3600));
        assert!(a.done());
    }

    #[test]
    fn class_names_round_trip() {
        for c in Class::ALL {
            assert_eq!(Class::parse(c.name()), Some(c));
        }
        assert_eq!(Class::parse("No_Answer"), Some(Class::NoAnswer));
        assert_eq!(Class::parse("fax"), None);
    }
}
