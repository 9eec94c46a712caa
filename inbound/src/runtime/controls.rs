//! Agents' call control on a live contact: hold, mute, DTMF towards the customer, blind and
//! consultative transfer (to an agent, a queue or a number) and the three-way conference. The
//! agent desktop's buttons (issues #6 and #8) end up here, through [`Runtime`]'s methods.
//!
//! Composed of the `telephony::control` primitives, like `telephony::control::consult`, but with
//! the ACD's bookkeeping: this module is a child of the ACD task (`acd_task.rs` declares it), so
//! every step that changes who handles a contact runs inside the one task that owns agents and
//! contacts. Only the wait for a target to answer runs outside it ([`Runtime`] dials, then
//! reports the answer or the failure back).
//! Transfers and consultations (the ACD task's side) are in `controls_transfer.rs`.
//!
//! - Hold: the customer leaves the bridge and hears `RuntimeConfig::hold_audio` (or silence);
//!   nothing is re-signalled. Mute: the agent's leg and the customer in a room with the agent
//!   as a listener (the agent still hears the customer). DTMF: RFC 4733 on the customer's leg
//!   (SIP INFO if it did not negotiate telephone-event).
//! - Transfer to a queue (blind): the contact is queued again with its attributes; the agent is
//!   released at once. Transfer to an agent or a number: the customer is held while the target
//!   is called (an agent's nailed-up leg is used as it is; a ring-per-offer agent's phone or the
//!   number through the configured trunks is called). Blind completes as soon as the target
//!   answers; a consult bridges the agent with the target until `complete` (customer ↔ target,
//!   the agent released; a nailed-up agent leg stays up for the next contact), `cancel` (target
//!   released, back to the customer) or `conference` (all three hear each other). A target that
//!   fails puts the customer back with the agent. A consult to a queue consults the longest-idle
//!   available agent of that queue.
//! - An agent taken as a target is set not routable (`NotRoutable("transfer")`) until the
//!   contact or the consultation ends, then Available again (the ACD has no "assign" event, so
//!   such an agent's talk time is not in the queue statistics and it gets no after-contact work).
//! - Starting a consultation or a blind transfer ends supervision and mute on the contact (their
//!   room is closed, supervisors' legs hung up).
//! - Every step is a stage on the contact record (`hold`, `resume`, `mute`, `unmute`,
//!   `dtmf_sent` (the number of digits, not the digits), `consult`, `transfer`,
//!   `consult_answered`, `consult_failed`, `transfer_failed`, `consult_cancelled`,
//!   `consult_ended`, `conference`, `transferred`) and a [`RuntimeEvent::CallControl`] event.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use telephony::control::{CallControl, Event as CallEvent, HoldAudio, OnPeerHangup, Role, Room};
use telephony::sip::call::{CallId, Originate};
use tokio::sync::{mpsc, oneshot};

use crate::acd::{ContactRequest, Decision, Event};

use super::super::{AgentMode, Runtime, RuntimeError, RuntimeEvent};
use super::{Cmd, Task};

#[path = "controls_transfer.rs"]
mod transfer;

/// The status an agent is given while it is the target of a transfer or consultation.
pub const RESERVED_STATUS: &str = "transfer";

/// Digits `send_dtmf` accepts, at most [`MAX_DIGITS`] at a time.
pub const DTMF_DIGITS: &str = "0123456789*#ABCD";
pub const MAX_DIGITS: usize = 32;

/// Where a contact is transferred.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// A logged-in agent (by id).
    Agent(String),
    /// A queue: blind re-queues the contact, consult takes the queue's longest-idle agent.
    Queue(String),
    /// A number, called through the configured trunks (E.164, `+` and 2–15 digits).
    Number(String),
}

impl Target {
    fn label(&self) -> String {
        match self {
            Target::Agent(a) => format!("agent {a}"),
            Target::Queue(q) => format!("queue {q}"),
            Target::Number(n) => format!("number {n}"),
        }
    }
}

/// Blind (the agent is released when the target answers) or consultative.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferMode {
    Blind,
    Consult,
}

/// Where a consultation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsultPhase {
    /// The target is being called; the customer is on hold.
    Ringing,
    /// The agent talks with the target; the customer is on hold.
    Talking,
    /// All three hear each other.
    Conference,
}

/// What the desktop shows of a contact's call control (see [`Runtime::control_state`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ControlView {
    pub contact: String,
    /// The agent handling the contact.
    pub agent: String,
    pub held: bool,
    pub muted: bool,
    pub consult: Option<ConsultView>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConsultView {
    pub target: String,
    pub target_agent: Option<String>,
    pub mode: TransferMode,
    pub phase: ConsultPhase,
}

/// What happened, in [`RuntimeEvent::CallControl`] (flattened: `"action": "hold"`, …).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum ControlEvent {
    Hold {
        on: bool,
    },
    Mute {
        on: bool,
    },
    ConsultRinging {
        target: String,
        mode: TransferMode,
    },
    ConsultAnswered {
        target: String,
    },
    ConsultFailed {
        target: String,
        mode: TransferMode,
        reason: String,
    },
    ConsultEnded {
        target: String,
        reason: String,
    },
    ConferenceStarted {
        target: String,
    },
    TransferCompleted {
        target: String,
        mode: TransferMode,
    },
}

/// Why a call-control command was not carried out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlRefused {
    /// Unknown contact, runtime stopped, media failure.
    #[error("{0}")]
    Runtime(#[from] RuntimeError),
    /// Not possible in the contact's current state (no consultation in progress, on hold, not
    /// connected, target not available…).
    #[error("{0}")]
    Conflict(String),
    /// The target does not exist (unknown agent or queue, not a number).
    #[error("{0}")]
    BadTarget(String),
    /// Bad input (digits).
    #[error("{0}")]
    Invalid(String),
    /// The target was called and did not answer; the customer is back with the agent.
    #[error("{0}")]
    TargetFailed(String),
}

fn conflict(m: impl Into<String>) -> ControlRefused {
    ControlRefused::Conflict(m.into())
}

fn media(e: impl std::fmt::Display) -> ControlRefused {
    ControlRefused::Runtime(RuntimeError::Media(e.to_string()))
}

type Answer<T> = oneshot::Sender<Result<T, ControlRefused>>;

/// The ACD task's call-control commands.
pub(crate) enum Op {
    Hold {
        contact: String,
        on: bool,
        reply: Answer<()>,
    },
    Mute {
        contact: String,
        on: bool,
        reply: Answer<()>,
    },
    Dtmf {
        contact: String,
        digits: String,
        reply: Answer<()>,
    },
    Requeue {
        contact: String,
        queue: String,
        reply: Answer<()>,
    },
    Begin {
        contact: String,
        target: Target,
        mode: TransferMode,
        reply: Answer<(u64, Dial)>,
    },
    Answered {
        contact: String,
        epoch: u64,
        leg: CallControl,
        events: Option<mpsc::UnboundedReceiver<CallEvent>>,
        reply: Answer<()>,
    },
    Failed {
        contact: String,
        epoch: u64,
        reason: String,
        reply: Answer<()>,
    },
    Complete {
        contact: String,
        reply: Answer<()>,
    },
    Cancel {
        contact: String,
        reply: Answer<()>,
    },
    Conference {
        contact: String,
        reply: Answer<()>,
    },
    TargetGone {
        contact: String,
        leg: CallId,
    },
    State {
        contact: String,
        reply: Answer<ControlView>,
    },
    /// A queued caller's hold audio, played only while it still waits (no agent connected).
    HoldAudio {
        contact: String,
        audio: Box<dyn telephony::media::frame::FrameSource>,
    },
}

/// How the target is reached.
pub(crate) enum Dial {
    /// A nailed-up agent leg, already up.
    Ready(CallControl),
    /// A call to place and wait for.
    Call(Originate),
}

/// Call-control state the ACD task keeps (a field of the task).
#[derive(Default)]
pub(crate) struct Controls {
    consults: HashMap<String, Consult>,
    held: HashSet<String>,
    muted: HashSet<String>,
    /// Agents taken out of routing as a target → the contact.
    reserved: HashMap<String, String>,
    epoch: u64,
}

struct Consult {
    label: String,
    mode: TransferMode,
    phase: ConsultPhase,
    epoch: u64,
    leg: Option<CallControl>,
    target_agent: Option<String>,
    /// The target leg is that agent's nailed-up leg: never hung up here.
    nailed: bool,
}

/// What a live contact's controls work on.
struct Live {
    customer: CallControl,
    agent: String,
    leg: CallControl,
    mode: AgentMode,
}

fn policy(mode: AgentMode) -> OnPeerHangup {
    match mode {
        AgentMode::NailedUp => OnPeerHangup::Stay,
        AgentMode::RingPerOffer => OnPeerHangup::HangUp,
    }
}

/// `+` and 2–15 digits.
pub fn valid_number(n: &str) -> bool {
    n.strip_prefix('+').is_some_and(|d| {
        (2..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()) && !d.starts_with('0')
    })
}

/// Checks keypad digits: 1–32 of `0-9 * # A-D`.
pub fn check_digits(digits: &str) -> Result<(), ControlRefused> {
    if digits.is_empty() || digits.chars().count() > MAX_DIGITS {
        return Err(ControlRefused::Invalid(format!(
            "digits: 1 to {MAX_DIGITS} keys"
        )));
    }
    if let Some(bad) = digits.chars().find(|c| !DTMF_DIGITS.contains(*c)) {
        return Err(ControlRefused::Invalid(format!(
            "digits: {bad:?} is not a key (0-9, *, #, A-D)"
        )));
    }
    Ok(())
}

impl RuntimeEvent {
    /// Whether `agent`'s desktop should get this event.
    pub fn involves(&self, agent: &str) -> bool {
        match self {
            RuntimeEvent::AgentStateChanged { agent: a, .. }
            | RuntimeEvent::ContactOffered { agent: a, .. }
            | RuntimeEvent::ContactConnected { agent: a, .. } => a == agent,
            RuntimeEvent::ContactEnded { agent: a, .. } => a.as_deref() == Some(agent),
            RuntimeEvent::ContactQueued { .. } => false,
            RuntimeEvent::CallControl {
                agent: a,
                target_agent: t,
                ..
            } => a == agent || t.as_deref() == Some(agent),
        }
    }
}

impl Runtime {
    async fn control<T>(&self, make: impl FnOnce(Answer<T>) -> Op) -> Result<T, ControlRefused> {
        let (tx, rx) = oneshot::channel();
        self.shared
            .acd
            .send(Cmd::Control(make(tx)))
            .map_err(|_| RuntimeError::Stopped)?;
        rx.await.map_err(|_| RuntimeError::Stopped)?
    }

    /// Holds (`on`) or resumes the customer of an agent's contact: on hold the customer hears
    /// the hold audio and neither side hears the other.
    pub async fn hold(&self, contact: &str, on: bool) -> Result<(), ControlRefused> {
        let contact = contact.to_owned();
        self.control(|reply| Op::Hold { contact, on, reply }).await
    }

    /// Mutes (`on`) the agent towards the customer (the agent still hears the customer).
    pub async fn mute(&self, contact: &str, on: bool) -> Result<(), ControlRefused> {
        let contact = contact.to_owned();
        self.control(|reply| Op::Mute { contact, on, reply }).await
    }

    /// Sends keypad digits to the customer's leg (RFC 4733), e.g. to work a third party's IVR.
    pub async fn send_dtmf(&self, contact: &str, digits: &str) -> Result<(), ControlRefused> {
        check_digits(digits)?;
        let (contact, digits) = (contact.to_owned(), digits.to_owned());
        self.control(|reply| Op::Dtmf {
            contact,
            digits,
            reply,
        })
        .await
    }

    /// Blind transfer: to a queue at once (re-queued with its attributes); to an agent or a
    /// number once the target answers (the customer is on hold meanwhile; if the target fails,
    /// the customer is back with the agent and `TargetFailed` is returned).
    pub async fn blind_transfer(
        &self,
        contact: &str,
        target: Target,
    ) -> Result<(), ControlRefused> {
        let contact = contact.to_owned();
        match target {
            Target::Queue(queue) => {
                self.control(|reply| Op::Requeue {
                    contact,
                    queue,
                    reply,
                })
                .await
            }
            t => self.dial(contact, t, TransferMode::Blind).await,
        }
    }

    /// Starts a consultation: the customer on hold, the target called; returns once the agent
    /// is connected with the target (or with `TargetFailed`, the customer back with the agent).
    pub async fn consult_start(&self, contact: &str, target: Target) -> Result<(), ControlRefused> {
        self.dial(contact.to_owned(), target, TransferMode::Consult)
            .await
    }

    /// Completes the consultation: the customer and the target are connected, the agent is
    /// released (a nailed-up leg stays up for the next contact).
    pub async fn consult_complete(&self, contact: &str) -> Result<(), ControlRefused> {
        let contact = contact.to_owned();
        self.control(|reply| Op::Complete { contact, reply }).await
    }

    /// Cancels the consultation: the target is released, the agent is back with the customer.
    pub async fn consult_cancel(&self, contact: &str) -> Result<(), ControlRefused> {
        let contact = contact.to_owned();
        self.control(|reply| Op::Cancel { contact, reply }).await
    }

    /// Turns the consultation into a three-way conference.
    pub async fn consult_conference(&self, contact: &str) -> Result<(), ControlRefused> {
        let contact = contact.to_owned();
        self.control(|reply| Op::Conference { contact, reply })
            .await
    }

    /// The contact's call-control state (who handles it, hold, mute, consultation).
    pub async fn control_state(&self, contact: &str) -> Result<ControlView, ControlRefused> {
        let contact = contact.to_owned();
        self.control(|reply| Op::State { contact, reply }).await
    }

    async fn dial(
        &self,
        contact: String,
        target: Target,
        mode: TransferMode,
    ) -> Result<(), ControlRefused> {
        let c = contact.clone();
        let (epoch, dial) = self
            .control(|reply| Op::Begin {
                contact: c,
                target,
                mode,
                reply,
            })
            .await?;
        let answered = match dial {
            Dial::Ready(leg) => Ok((leg, None)),
            Dial::Call(o) => {
                let wait = o.ring_timeout + Duration::from_secs(5);
                let (_, leg, mut events) = self.shared.calls.originate(o).split();
                let r = tokio::time::timeout(wait, async {
                    loop {
                        match events.recv().await {
                            Some(CallEvent::Answered { .. }) => return Ok(()),
                            Some(CallEvent::Hangup { outcome, .. }) => {
                                return Err(format!("the target did not answer ({outcome:?})"));
                            }
                            None => return Err("the target's call ended".to_owned()),
                            Some(_) => {}
                        }
                    }
                })
                .await
                .unwrap_or_else(|_| Err("the target did not answer in time".to_owned()));
                match r {
                    Ok(()) => Ok((leg, Some(events))),
                    Err(e) => {
                        let _ = leg.hangup().await;
                        Err(e)
                    }
                }
            }
        };
        match answered {
            Ok((leg, events)) => {
                self.control(|reply| Op::Answered {
                    contact,
                    epoch,
                    leg,
                    events,
                    reply,
                })
                .await
            }
            Err(reason) => {
                let r = reason.clone();
                self.control(|reply| Op::Failed {
                    contact,
                    epoch,
                    reason: r,
                    reply,
                })
                .await?;
                Err(ControlRefused::TargetFailed(reason))
            }
        }
    }
}

impl Task {
    pub(super) async fn control(&mut self, op: Op) {
        match op {
            Op::Hold { contact, on, reply } => {
                let r = self.hold_op(&contact, on).await;
                let _ = reply.send(r);
            }
            Op::Mute { contact, on, reply } => {
                let r = self.mute_op(&contact, on).await;
                let _ = reply.send(r);
            }
            Op::Dtmf {
                contact,
                digits,
                reply,
            } => {
                let r = match self.live(&contact) {
                    Ok(l) => match l.customer.send_dtmf(&digits).await {
                        Ok(()) => {
                            let n = digits.chars().count();
                            self.note(&contact, "dtmf_sent", &format!("{n} digits"));
                            Ok(())
                        }
                        Err(e) => Err(media(e)),
                    },
                    Err(e) => Err(e),
                };
                let _ = reply.send(r);
            }
            Op::Requeue {
                contact,
                queue,
                reply,
            } => {
                let r = self.requeue(&contact, &queue).await;
                let _ = reply.send(r);
            }
            Op::Begin {
                contact,
                target,
                mode,
                reply,
            } => {
                let r = self.begin(&contact, target, mode).await;
                let _ = reply.send(r);
            }
            Op::Answered {
                contact,
                epoch,
                leg,
                events,
                reply,
            } => {
                let r = self.answered(&contact, epoch, leg, events).await;
                let _ = reply.send(r);
            }
            Op::Failed {
                contact,
                epoch,
                reason,
                reply,
            } => {
                self.failed(&contact, epoch, &reason).await;
                let _ = reply.send(Ok(()));
            }
            Op::Complete { contact, reply } => {
                let r = self.complete(&contact).await;
                let _ = reply.send(r);
            }
            Op::Cancel { contact, reply } => {
                let r = self.cancel(&contact).await;
                let _ = reply.send(r);
            }
            Op::Conference { contact, reply } => {
                let r = self.conference_op(&contact).await;
                let _ = reply.send(r);
            }
            Op::TargetGone { contact, leg } => {
                self.target_gone(&contact, Some(leg), None).await;
                self.transferred_leg_gone(&contact, leg).await;
            }
            Op::HoldAudio { contact, audio } => {
                let waiting = self
                    .contacts
                    .get(&contact)
                    .filter(|c| !c.connected && c.room.is_none())
                    .map(|c| c.call.clone());
                if let Some(call) = waiting
                    && call.play(audio).await.is_ok()
                {
                    self.note(&contact, "hold_audio", "");
                }
            }
            Op::State { contact, reply } => {
                let r = self.live(&contact).map(|l| ControlView {
                    contact: contact.clone(),
                    agent: l.agent,
                    held: self.ctl.held.contains(&contact),
                    muted: self.ctl.muted.contains(&contact),
                    consult: self.ctl.consults.get(&contact).map(|c| ConsultView {
                        target: c.label.clone(),
                        target_agent: c.target_agent.clone(),
                        mode: c.mode,
                        phase: c.phase,
                    }),
                });
                let _ = reply.send(r);
            }
        }
    }

    /// An outbound contact (the dialer owns its call, so no contact driver reports its end)
    /// transferred to a number or a ring-per-offer agent ends with that leg (bridged with
    /// `HangUp`: the customer went with it).
    async fn transferred_leg_gone(&mut self, contact: &str, leg: CallId) {
        if self.ctl.consults.contains_key(contact) {
            return;
        }
        let Some(slot) = self.contacts.get(contact) else {
            return;
        };
        if slot.record.is_none() || !slot.connected {
            return;
        }
        let by_leg = match &slot.agent {
            None => slot.extra_legs.iter().any(|l| l.id() == leg),
            Some(a) => self
                .agents
                .get(a)
                .and_then(|a| a.leg.as_ref())
                .is_some_and(|l| l.id() == leg),
        };
        if by_leg {
            self.contact_gone(contact).await;
        }
    }

    fn live(&self, contact: &str) -> Result<Live, ControlRefused> {
        let c = self
            .contacts
            .get(contact)
            .ok_or_else(|| RuntimeError::UnknownContact(contact.into()))?;
        if !c.connected {
            return Err(conflict(format!(
                "contact {contact} is not connected to an agent"
            )));
        }
        let agent = c
            .agent
            .clone()
            .ok_or_else(|| conflict(format!("contact {contact} has left its agent")))?;
        let a = self
            .agents
            .get(&agent)
            .ok_or_else(|| RuntimeError::UnknownAgent(agent.clone()))?;
        let leg = a
            .leg
            .clone()
            .filter(|_| a.leg_up)
            .ok_or_else(|| conflict(format!("{agent}'s leg is down")))?;
        Ok(Live {
            customer: c.call.clone(),
            agent,
            leg,
            mode: a.login.mode,
        })
    }

    fn emit_control(
        &self,
        contact: &str,
        agent: &str,
        target_agent: Option<String>,
        what: ControlEvent,
    ) {
        self.emit(RuntimeEvent::CallControl {
            contact: contact.into(),
            agent: agent.into(),
            target_agent,
            what,
            at_ms: self.now(),
        });
    }

    async fn hold_audio(&self) -> HoldAudio {
        match &self.sh.cfg.hold_audio {
            Some(spec) => match self.sh.prompts.get(spec, None).await {
                Ok(p) => HoldAudio::Prompt(p),
                Err(e) => {
                    tracing::warn!(error = %e, "hold audio unavailable; holding with silence");
                    HoldAudio::Silence
                }
            },
            None => HoldAudio::Silence,
        }
    }

    /// Puts the customer on hold (out of any bridge or room, hearing the hold audio).
    async fn hold_customer(&self, customer: &CallControl) -> Result<(), ControlRefused> {
        let audio = self.hold_audio().await;
        telephony::control::consult::hold(customer, &audio)
            .await
            .map_err(media)
    }

    /// The customer back with the agent (in the contact's room when it has one).
    async fn back_to_agent(&self, contact: &str, l: &Live) -> Result<(), ControlRefused> {
        let _ = l.customer.stop_playback().await;
        match self.contacts.get(contact).and_then(|c| c.room.clone()) {
            Some(room) => room
                .join(&l.customer, Role::Full)
                .await
                .map_err(|e| media(e.to_string())),
            None => l
                .leg
                .bridge(&l.customer, policy(l.mode))
                .await
                .map_err(media),
        }
    }

    /// Ends supervision and mute: supervisors' and third parties' legs hung up, room closed.
    async fn close_room(&mut self, contact: &str, agent: &str) {
        if let Some(slot) = self.contacts.get_mut(contact) {
            let extras = std::mem::take(&mut slot.extra_legs);
            slot.supervisor = None;
            let room = slot.room.take();
            for leg in extras {
                let _ = leg.hangup().await;
            }
            if let Some(room) = room {
                room.close().await;
            }
        }
        if self.ctl.muted.remove(contact) {
            self.note(contact, "unmute", agent);
            self.emit_control(contact, agent, None, ControlEvent::Mute { on: false });
        }
    }

    async fn hold_op(&mut self, contact: &str, on: bool) -> Result<(), ControlRefused> {
        let l = self.live(contact)?;
        if self.ctl.consults.contains_key(contact) {
            return Err(conflict(
                "a consultation is in progress: complete, cancel or conference it first",
            ));
        }
        if self.ctl.held.contains(contact) == on {
            return Ok(());
        }
        if on {
            self.hold_customer(&l.customer).await?;
            self.ctl.held.insert(contact.into());
        } else {
            self.back_to_agent(contact, &l).await?;
            self.ctl.held.remove(contact);
        }
        self.note(contact, if on { "hold" } else { "resume" }, &l.agent);
        self.emit_control(contact, &l.agent, None, ControlEvent::Hold { on });
        Ok(())
    }

    async fn mute_op(&mut self, contact: &str, on: bool) -> Result<(), ControlRefused> {
        let l = self.live(contact)?;
        if self.ctl.consults.contains_key(contact) {
            return Err(conflict("a consultation is in progress"));
        }
        if self.ctl.held.contains(contact) {
            return Err(conflict("the customer is on hold"));
        }
        if self.ctl.muted.contains(contact) == on {
            return Ok(());
        }
        let room = self.contacts.get(contact).and_then(|c| c.room.clone());
        let role = if on { Role::Listen } else { Role::Full };
        match room {
            Some(room) => room
                .set_role(l.leg.id(), role)
                .await
                .map_err(|e| media(e.to_string()))?,
            None => {
                let room = Room::new();
                let joined = async {
                    room.join(&l.leg, role).await?;
                    room.join(&l.customer, Role::Full).await
                }
                .await;
                if let Err(e) = joined {
                    room.close().await;
                    let _ = l.leg.bridge(&l.customer, policy(l.mode)).await;
                    return Err(media(e.to_string()));
                }
                if let Some(c) = self.contacts.get_mut(contact) {
                    c.room = Some(room);
                }
            }
        }
        if on {
            self.ctl.muted.insert(contact.into());
        } else {
            self.ctl.muted.remove(contact);
        }
        self.note(contact, if on { "mute" } else { "unmute" }, &l.agent);
        self.emit_control(contact, &l.agent, None, ControlEvent::Mute { on });
        Ok(())
    }

    /// Blind transfer to a queue: the contact is queued again (attributes kept), the agent
    /// released.
    async fn requeue(&mut self, contact: &str, queue: &str) -> Result<(), ControlRefused> {
        let l = self.live(contact)?;
        if self.ctl.consults.contains_key(contact) {
            return Err(conflict("a consultation is in progress"));
        }
        if self.acd.queue_stats(queue, self.now()).is_none() {
            return Err(ControlRefused::BadTarget(format!(
                "unknown queue {queue:?}"
            )));
        }
        self.close_room(contact, &l.agent).await;
        self.hold_customer(&l.customer).await?;
        self.ctl.held.remove(contact);
        let decisions = self.acd.step(
            Event::Enqueue(ContactRequest::new(contact, queue)),
            self.now(),
        );
        let queued = decisions.iter().any(|d| {
            matches!(d, Decision::Queued { contact: c, .. } | Decision::Offer { contact: c, .. } if c == contact)
        });
        let mut pending = VecDeque::new();
        if !queued {
            for d in decisions {
                self.apply(d, &mut pending).await;
            }
            let _ = self.back_to_agent(contact, &l).await;
            while let Some(ev) = pending.pop_front() {
                self.step(ev).await;
            }
            return Err(conflict(format!(
                "queue {queue} cannot take the contact (at capacity)"
            )));
        }
        // The agent is released before the ACD's decisions are carried out (an offer may go to
        // any agent, the releasing one included once it is idle).
        if let Some(c) = self.contacts.get_mut(contact) {
            c.agent = None;
            c.connected = false;
            c.queue = queue.into();
        }
        if let Some(a) = self.agents.get_mut(&l.agent)
            && a.contact.as_deref() == Some(contact)
        {
            a.contact = None;
            a.last_contact = Some(contact.into());
        }
        self.drop_ring_leg(&l.agent).await;
        let label = Target::Queue(queue.into()).label();
        self.note(
            contact,
            "transferred",
            &format!("{label} (blind, by {})", l.agent),
        );
        self.emit_control(
            contact,
            &l.agent,
            None,
            ControlEvent::TransferCompleted {
                target: label,
                mode: TransferMode::Blind,
            },
        );
        for d in decisions {
            self.apply(d, &mut pending).await;
        }
        pending.push_back(Event::ContactEnded {
            agent: l.agent.clone(),
        });
        while let Some(ev) = pending.pop_front() {
            self.step(ev).await;
        }
        Ok(())
    }
}
