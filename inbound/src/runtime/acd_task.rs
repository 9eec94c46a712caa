//! The ACD driver: one task owns the [`Acd`] state machine (its `next_deadline` is the task's
//! only timer), the logged-in agents with their audio endpoints, and the queued contacts' call
//! handles. It turns commands (enqueue, login, state changes, dispositions, the dialer's
//! `connect_outbound`) and call events into ACD events, and carries out the ACD's decisions:
//! an offer rings the agent's endpoint (ring per offer) or, for a nailed-up agent, switches the
//! contact's media onto the agent's standing leg and accepts at once. Stages go to each
//! contact's record; state changes go out on the runtime's event broadcast.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use telephony::control::{CallControl, Event as CallEvent, OnPeerHangup, Room};
use telephony::sip::call::{Originate, Trunk};
use tokio::sync::{mpsc, oneshot};

use crate::acd::{
    Acd, AcdConfig, AgentConfig, AgentState, AgentStatus, ContactRequest, Decision, Event,
    QueueStats,
};
use crate::contact::{ContactInfo, ContactRecord, Stage};
use crate::interpreter::QueueResult;

use super::contact::Note;
use super::{AgentEndpoint, AgentMode, AgentView, Login, RuntimeError, RuntimeEvent, Shared};

#[path = "controls.rs"]
pub mod controls;

/// No agent of the queue was ready to take the call at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("no agent ready in the queue")]
pub struct NoAgent;

type Reply<T> = oneshot::Sender<Result<T, RuntimeError>>;

pub(crate) enum Cmd {
    /// Agents' call control (hold, mute, DTMF, transfers, conference).
    Control(controls::Op),
    Enqueue {
        req: ContactRequest,
        call: CallControl,
        attributes: BTreeMap<String, String>,
        notes: mpsc::UnboundedSender<Note>,
        reply: oneshot::Sender<QueueResult>,
    },
    CustomerGone {
        contact: String,
    },
    EndContact {
        contact: String,
        reply: Reply<()>,
    },
    Login {
        login: Login,
        auto_accept: bool,
        reply: Reply<()>,
    },
    /// The agent answers (`take`) or rejects the contact offered to them.
    Answer {
        agent: String,
        contact: String,
        take: bool,
        reply: Reply<()>,
    },
    Logout {
        agent: String,
        reply: Reply<()>,
    },
    SetState {
        agent: String,
        status: AgentStatus,
        reply: Reply<()>,
    },
    Disposition {
        contact: String,
        code: String,
        reply: Reply<()>,
    },
    Snapshot {
        queue: Option<String>,
        reply: oneshot::Sender<Vec<AgentView>>,
    },
    QueueStats {
        queue: String,
        reply: Reply<QueueStats>,
    },
    ConnectOutbound {
        queue: String,
        call: CallControl,
        attributes: BTreeMap<String, String>,
        reply: oneshot::Sender<Result<String, NoAgent>>,
    },
    /// The calls of a connected contact (for supervisors and conferences).
    ContactMedia {
        contact: String,
        reply: Reply<ContactMedia>,
    },
    /// A supervisor's or third party's leg joined the contact's room.
    AttachLeg {
        contact: String,
        room: Room,
        leg: CallControl,
        supervisor: bool,
        reply: Reply<()>,
    },
    /// An agent leg's progress (`leg_no` tells a current leg from an old one).
    Leg {
        agent: String,
        leg_no: u64,
        what: LegEvent,
    },
    /// A callback is due: it joins its queue with the caller's original time.
    Callback {
        entry: super::callbacks::Entry,
    },
    /// A callback's dial ended (see [`super::callbacks::dial`]).
    CallbackDialed {
        contact: String,
        agent: String,
        result: super::callbacks::Dialed,
    },
    /// A queued contact's place and estimated wait (`None`: not queued).
    Estimate {
        contact: String,
        reply: oneshot::Sender<Option<crate::acd::Estimate>>,
    },
    /// Plays an announcement (then the hold audio) to a caller still waiting.
    Announce {
        contact: String,
        detail: String,
        audio: Box<dyn telephony::media::frame::FrameSource>,
    },
    /// An admin changed an agent's routing profile or skills.
    UpdateAgent {
        agent: String,
        profile: Option<String>,
        skills: BTreeMap<String, u8>,
        reply: Reply<()>,
    },
    /// A configuration reload: the ACD's queues and routing profiles change in place.
    ReconfigureAcd {
        config: Box<AcdConfig>,
        reply: oneshot::Sender<Result<Vec<String>, crate::acd::ReconfigureError>>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LegEvent {
    Answered,
    /// The contact bridged to this leg hung up (the leg stays up).
    PeerGone,
    Ended,
}

/// A connected contact's calls and room.
#[derive(Clone)]
pub(crate) struct ContactMedia {
    pub customer: CallControl,
    pub agent_leg: CallControl,
    pub room: Option<Room>,
    pub supervisor: Option<CallControl>,
}

struct AgentSlot {
    login: Login,
    /// Offers connect by themselves; `false`: the agent answers each (see `awaiting`).
    auto_accept: bool,
    /// An offer waiting for the agent's answer, with its ring timeout.
    awaiting: Option<(String, i64)>,
    leg: Option<CallControl>,
    leg_no: u64,
    leg_up: bool,
    /// Ring per offer: the contact this leg was placed for.
    leg_for: Option<String>,
    pending_login: Option<Reply<()>>,
    contact: Option<String>,
    last_contact: Option<String>,
    logout_pending: bool,
    state: AgentState,
    since_ms: i64,
}

struct ContactSlot {
    call: CallControl,
    queue: String,
    attributes: BTreeMap<String, String>,
    /// Inbound: the contact driver's stage channel.
    notes: Option<mpsc::UnboundedSender<Note>>,
    /// Outbound: the record, kept here (the dialer owns the call).
    record: Option<ContactRecord>,
    agent: Option<String>,
    connected: bool,
    timed_out: bool,
    /// Set once a supervisor or third party joined: the room and the extra legs.
    room: Option<Room>,
    supervisor: Option<CallControl>,
    extra_legs: Vec<CallControl>,
}

struct Task {
    sh: Arc<Shared>,
    acd: Acd,
    agents: HashMap<String, AgentSlot>,
    contacts: HashMap<String, ContactSlot>,
    serving: HashMap<String, Vec<String>>,
    leg_no: u64,
    tx: mpsc::WeakUnboundedSender<Cmd>,
    ctl: controls::Controls,
    /// Queued callbacks by ACD contact id (true once being dialled).
    callbacks: HashMap<String, (super::callbacks::Entry, bool)>,
}

/// Stops what a queued caller hears (hold audio) before the media goes to an agent.
async fn stop_hold(call: &CallControl) -> &CallControl {
    let _ = call.stop_playback().await;
    call
}

/// The SIP request that reaches an endpoint (an agent's or supervisor's phone).
pub(crate) async fn originate_to(
    sh: &Shared,
    ep: &AgentEndpoint,
    ring: Duration,
) -> Result<Originate, String> {
    // The transport the phone asked for: its URI's (`transport=`, `sips:`), or for a
    // registered phone its Contact's, else the one it registered over (UDP, TCP or TLS).
    let (uri, trunk) = match ep {
        AgentEndpoint::Uri(u) => {
            let trunk =
                Trunk::for_uri(u).ok_or_else(|| format!("{u:?} has no IP address and port"))?;
            (u.clone(), trunk)
        }
        AgentEndpoint::Registered(user) => {
            let b = sh
                .calls
                .sip()
                .bindings(user)
                .await
                .into_iter()
                .max_by_key(|b| b.expires_at)
                .ok_or_else(|| format!("{user:?} is not registered"))?;
            let trunk = Trunk::for_binding(&b);
            (b.contact, trunk)
        }
    };
    Ok(Originate {
        to_user: bridge::calls::uri_user(&uri).unwrap_or_default(),
        request_uri: Some(uri),
        from_user: sh.cfg.agent_caller_id.clone(),
        trunks: vec![trunk],
        ring_timeout: ring,
        headers: Vec::new(),
    })
}

pub(crate) async fn run(sh: Arc<Shared>, acd: Acd, mut rx: mpsc::UnboundedReceiver<Cmd>) {
    let serving = super::profiles_serving(&sh.cfg.acd);
    let tx = sh.acd.downgrade();
    let mut t = Task {
        sh,
        acd,
        agents: HashMap::new(),
        contacts: HashMap::new(),
        serving,
        leg_no: 0,
        tx,
        ctl: Default::default(),
        callbacks: HashMap::new(),
    };
    loop {
        let cmd = match t.acd.next_deadline() {
            Some(at) => {
                let wait = (at - t.sh.clock.now_ms()).max(0) as u64;
                tokio::select! {
                    c = rx.recv() => c,
                    _ = tokio::time::sleep(Duration::from_millis(wait)) => {
                        t.step(Event::Tick).await;
                        continue;
                    }
                }
            }
            None => rx.recv().await,
        };
        let Some(cmd) = cmd else { break };
        t.handle(cmd).await;
        t.refresh_states();
    }
}

impl Task {
    fn now(&self) -> i64 {
        self.sh.clock.now_ms()
    }

    fn emit(&self, e: RuntimeEvent) {
        let _ = self.sh.events.send(e);
    }

    /// Feeds the ACD one event and carries out its decisions (and the events they lead to).
    async fn step(&mut self, first: Event) {
        let mut pending = VecDeque::from([first]);
        while let Some(ev) = pending.pop_front() {
            let decisions = self.acd.step(ev, self.now());
            for d in decisions {
                self.apply(d, &mut pending).await;
            }
        }
        self.refresh_states();
    }

    fn note(&mut self, contact: &str, stage: &str, detail: &str) {
        let at = self.now();
        if let Some(c) = self.contacts.get_mut(contact) {
            let s = Stage {
                at_ms: at,
                stage: stage.into(),
                detail: detail.into(),
            };
            if let Some(n) = &c.notes {
                let _ = n.send(s.clone());
            }
            if let Some(r) = &mut c.record {
                r.stages.push(s);
            }
        }
    }

    async fn apply(&mut self, d: Decision, pending: &mut VecDeque<Event>) {
        let now = self.now();
        match d {
            Decision::Queued { contact, queue } => {
                self.note(&contact, "queued", &queue);
                self.emit(RuntimeEvent::ContactQueued {
                    contact,
                    queue,
                    at_ms: now,
                });
            }
            Decision::AtCapacity { contact, queue } => self.note(&contact, "at_capacity", &queue),
            Decision::Overflow { contact, from, to } => {
                self.note(&contact, "overflow", &format!("{from} -> {to}"));
                if let Some(c) = self.contacts.get_mut(&contact) {
                    c.queue = to;
                }
            }
            Decision::Offer {
                contact,
                agent,
                queue,
                ring_timeout_ms,
            } => {
                self.note(&contact, "offered", &agent);
                let needs_answer = self.needs_answer(&contact, &agent);
                self.emit(RuntimeEvent::ContactOffered {
                    contact: contact.clone(),
                    agent: agent.clone(),
                    queue,
                    needs_answer,
                    expires_at_ms: now + ring_timeout_ms,
                    at_ms: now,
                });
                if let Some(c) = self.contacts.get_mut(&contact) {
                    c.agent = Some(agent.clone());
                }
                if let Some(a) = self.agents.get_mut(&agent) {
                    a.contact = Some(contact.clone());
                }
                if self.callbacks.contains_key(&contact) {
                    self.callback_offer(&contact, &agent, pending);
                } else {
                    self.offer(&contact, &agent, ring_timeout_ms, pending).await;
                }
            }
            Decision::RetractOffer { contact, agent } => {
                self.note(&contact, "offer_retracted", &agent);
                self.drop_ring_leg(&agent).await;
                if let Some(a) = self.agents.get_mut(&agent) {
                    a.contact = None;
                    a.awaiting = None;
                }
                if let Some(c) = self.contacts.get_mut(&contact) {
                    c.agent = None;
                }
            }
            Decision::Missed { contact, agent } => {
                self.note(&contact, "missed", &agent);
                self.drop_ring_leg(&agent).await;
                if let Some(a) = self.agents.get_mut(&agent) {
                    a.contact = None;
                    a.awaiting = None;
                }
                if let Some(c) = self.contacts.get_mut(&contact) {
                    c.agent = None;
                }
            }
            Decision::Connected { contact, agent } => {
                self.note(&contact, "connected", &agent);
                let mut attributes = BTreeMap::new();
                if let Some(c) = self.contacts.get_mut(&contact) {
                    c.connected = true;
                    c.agent = Some(agent.clone());
                    attributes = c.attributes.clone();
                }
                self.save_outbound(&contact).await;
                self.emit(RuntimeEvent::ContactConnected {
                    contact,
                    agent,
                    attributes,
                    at_ms: now,
                });
            }
            Decision::Timeout { contact, queue } => {
                self.callback_timed_out(&contact);
                self.note(&contact, "queue_timeout", &queue);
                if let Some(c) = self.contacts.get_mut(&contact) {
                    c.timed_out = true;
                    let _ = c.call.hangup().await;
                }
            }
            Decision::AcwStarted { .. } | Decision::AcwEnded { .. } => {}
            Decision::Ignored { reason } => tracing::debug!(reason, "ACD ignored an event"),
        }
    }

    /// Carries out an offer: media switch on a nailed-up leg, else ring the agent's endpoint.
    async fn offer(
        &mut self,
        contact: &str,
        agent: &str,
        ring_timeout_ms: i64,
        pending: &mut VecDeque<Event>,
    ) {
        if !self.contacts.contains_key(contact) {
            pending.push_back(Event::Reject {
                contact: contact.into(),
                agent: agent.into(),
            });
            return;
        }
        let Some(a) = self.agents.get(agent) else {
            pending.push_back(Event::Reject {
                contact: contact.into(),
                agent: agent.into(),
            });
            return;
        };
        let nailed_up = a.login.mode == AgentMode::NailedUp;
        if self.needs_answer(contact, agent) {
            if nailed_up && !a.leg_up {
                pending.push_back(Event::Reject {
                    contact: contact.into(),
                    agent: agent.into(),
                });
            } else if let Some(a) = self.agents.get_mut(agent) {
                // Nothing rings and no media moves until the agent answers.
                a.awaiting = Some((contact.into(), ring_timeout_ms));
            }
            return;
        }
        if nailed_up {
            let ok = match self.switch_media(contact, agent).await {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!(agent, contact, error = %e, "media switch to the agent's leg failed");
                    false
                }
            };
            pending.push_back(if ok {
                Event::Accept {
                    contact: contact.into(),
                    agent: agent.into(),
                }
            } else {
                Event::Reject {
                    contact: contact.into(),
                    agent: agent.into(),
                }
            });
            return;
        }
        if let Err(e) = self.ring(contact, agent, ring_timeout_ms).await {
            tracing::warn!(agent, error = %e, "agent endpoint unreachable");
            pending.push_back(Event::Reject {
                contact: contact.into(),
                agent: agent.into(),
            });
        }
    }

    /// Switches `contact`'s caller from the hold audio to `agent`'s nailed-up leg.
    async fn switch_media(&self, contact: &str, agent: &str) -> Result<(), String> {
        let call = self
            .contacts
            .get(contact)
            .map(|c| c.call.clone())
            .ok_or_else(|| format!("{contact} has no call"))?;
        let leg = self
            .agents
            .get(agent)
            .and_then(|a| a.leg.clone().filter(|_| a.leg_up))
            .ok_or_else(|| format!("{agent}'s nailed-up leg is down"))?;
        stop_hold(&call)
            .await
            .bridge(&leg, OnPeerHangup::Stay)
            .await
            .map_err(|e| e.to_string())
    }

    /// Whether an offer of `contact` waits for `agent`'s answer: the agent does not
    /// auto-accept and the contact is an inbound caller (the dialer's calls and callbacks
    /// connect at once).
    fn needs_answer(&self, contact: &str, agent: &str) -> bool {
        self.agents.get(agent).is_some_and(|a| !a.auto_accept)
            && !self.callbacks.contains_key(contact)
            && self
                .contacts
                .get(contact)
                .is_some_and(|c| c.record.is_none())
    }

    /// Rings a ring-per-offer agent's endpoint for `contact` (it connects when answered).
    async fn ring(
        &mut self,
        contact: &str,
        agent: &str,
        ring_timeout_ms: i64,
    ) -> Result<(), String> {
        let endpoint = self
            .agents
            .get(agent)
            .map(|a| a.login.endpoint.clone())
            .ok_or_else(|| format!("{agent} is not logged in"))?;
        let ring = Duration::from_millis(ring_timeout_ms.clamp(1_000, 600_000) as u64);
        match self.originate_to(&endpoint, ring).await {
            Ok(o) => {
                let leg = self.sh.calls.originate(o);
                self.leg_no += 1;
                let leg_no = self.leg_no;
                let (_, ctl, events) = leg.split();
                if let Some(a) = self.agents.get_mut(agent) {
                    a.leg = Some(ctl);
                    a.leg_no = leg_no;
                    a.leg_up = false;
                    a.leg_for = Some(contact.into());
                }
                self.watch_leg(agent, leg_no, events);
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// The agent answers (`take`) or rejects the contact offered to them.
    async fn answer(&mut self, agent: &str, contact: &str, take: bool) -> Result<(), RuntimeError> {
        let Some(a) = self.agents.get(agent) else {
            return Err(RuntimeError::UnknownAgent(agent.into()));
        };
        if self.acd.agent_state(agent) != Some(AgentState::Offered(contact.into())) {
            return Err(RuntimeError::UnknownContact(format!(
                "{contact} is not offered to {agent}"
            )));
        }
        let awaited = a
            .awaiting
            .as_ref()
            .filter(|(c, _)| c == contact)
            .map(|(_, ring)| *ring);
        let nailed_up = a.login.mode == AgentMode::NailedUp;
        if !take {
            self.note(contact, "rejected", agent);
            if let Some(a) = self.agents.get_mut(agent) {
                a.awaiting = None;
            }
            self.drop_ring_leg(agent).await;
            self.step(Event::Reject {
                contact: contact.into(),
                agent: agent.into(),
            })
            .await;
            return Ok(());
        }
        let Some(ring_timeout_ms) = awaited else {
            return Err(RuntimeError::InvalidAgent(format!(
                "{agent} takes offers by answering the phone (auto-accept)"
            )));
        };
        if let Some(a) = self.agents.get_mut(agent) {
            a.awaiting = None;
        }
        self.note(contact, "answered_on_desktop", agent);
        if !nailed_up {
            return match self.ring(contact, agent, ring_timeout_ms).await {
                Ok(()) => Ok(()),
                Err(e) => {
                    self.step(Event::Reject {
                        contact: contact.into(),
                        agent: agent.into(),
                    })
                    .await;
                    Err(RuntimeError::EndpointUnreachable(e))
                }
            };
        }
        match self.switch_media(contact, agent).await {
            Ok(()) => {
                self.step(Event::Accept {
                    contact: contact.into(),
                    agent: agent.into(),
                })
                .await;
                Ok(())
            }
            Err(e) => {
                self.step(Event::Reject {
                    contact: contact.into(),
                    agent: agent.into(),
                })
                .await;
                Err(RuntimeError::Media(e))
            }
        }
    }

    async fn drop_ring_leg(&mut self, agent: &str) {
        if let Some(a) = self.agents.get_mut(agent)
            && a.login.mode == AgentMode::RingPerOffer
            && let Some(leg) = a.leg.take()
        {
            a.leg_up = false;
            a.leg_for = None;
            let _ = leg.hangup().await;
        }
    }

    async fn originate_to(&self, ep: &AgentEndpoint, ring: Duration) -> Result<Originate, String> {
        originate_to(&self.sh, ep, ring).await
    }

    fn watch_leg(&self, agent: &str, leg_no: u64, mut events: mpsc::UnboundedReceiver<CallEvent>) {
        let tx = self.tx.clone();
        let agent = agent.to_owned();
        tokio::spawn(async move {
            while let Some(ev) = events.recv().await {
                let what = match ev {
                    CallEvent::Answered { .. } => LegEvent::Answered,
                    CallEvent::Unbridged {
                        peer_ended: true, ..
                    } => LegEvent::PeerGone,
                    CallEvent::Hangup { .. } => LegEvent::Ended,
                    _ => continue,
                };
                let Some(tx) = tx.upgrade() else { return };
                let _ = tx.send(Cmd::Leg {
                    agent: agent.clone(),
                    leg_no,
                    what,
                });
                if what == LegEvent::Ended {
                    return;
                }
            }
            if let Some(tx) = tx.upgrade() {
                let _ = tx.send(Cmd::Leg {
                    agent,
                    leg_no,
                    what: LegEvent::Ended,
                });
            }
        });
    }

    async fn handle(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Enqueue {
                req,
                call,
                attributes,
                notes,
                reply,
            } => {
                let id = req.contact_id.clone();
                let queue = req.queue.clone();
                self.contacts.insert(
                    id.clone(),
                    ContactSlot {
                        call,
                        queue,
                        attributes,
                        notes: Some(notes),
                        record: None,
                        agent: None,
                        connected: false,
                        timed_out: false,
                        room: None,
                        supervisor: None,
                        extra_legs: Vec::new(),
                    },
                );
                let decisions = self.acd.step(Event::Enqueue(req), self.now());
                let result = if decisions.iter().any(|d| matches!(d, Decision::AtCapacity { contact, .. } if *contact == id)) {
                    QueueResult::AtCapacity
                } else if decisions.iter().any(|d| matches!(d, Decision::Queued { contact, .. } | Decision::Offer { contact, .. } if *contact == id)) {
                    QueueResult::Queued
                } else {
                    QueueResult::Error
                };
                let mut pending = VecDeque::new();
                for d in decisions {
                    self.apply(d, &mut pending).await;
                }
                if result != QueueResult::Queued {
                    self.contacts.remove(&id);
                } else if super::announce::any(&self.sh) {
                    let queue = self.contacts.get(&id).map(|c| c.queue.clone());
                    super::announce::spawn(self.sh.clone(), id.clone(), queue.unwrap_or_default());
                }
                let _ = reply.send(result);
                while let Some(ev) = pending.pop_front() {
                    self.step(ev).await;
                }
            }
            Cmd::CustomerGone { contact } => self.contact_gone(&contact).await,
            Cmd::EndContact { contact, reply } => {
                let r = match self.contacts.get(&contact) {
                    Some(c) => {
                        let _ = c.call.hangup().await;
                        if c.record.is_some() {
                            self.contact_gone(&contact).await;
                        }
                        Ok(())
                    }
                    None => Err(RuntimeError::UnknownContact(contact)),
                };
                let _ = reply.send(r);
            }
            Cmd::Login {
                login,
                auto_accept,
                reply,
            } => self.login(login, auto_accept, reply).await,
            Cmd::Answer {
                agent,
                contact,
                take,
                reply,
            } => {
                let r = self.answer(&agent, &contact, take).await;
                let _ = reply.send(r);
            }
            Cmd::Logout { agent, reply } => {
                let r = match self.agents.get_mut(&agent) {
                    None => Err(RuntimeError::UnknownAgent(agent.clone())),
                    Some(a) => {
                        if a.contact.is_some() {
                            a.logout_pending = true;
                        } else if let Some(leg) = a.leg.take() {
                            a.leg_up = false;
                            let _ = leg.hangup().await;
                        }
                        Ok(())
                    }
                };
                if r.is_ok() {
                    self.step(Event::SetStatus {
                        agent,
                        status: AgentStatus::Offline,
                    })
                    .await;
                }
                let _ = reply.send(r);
            }
            Cmd::SetState {
                agent,
                status,
                reply,
            } => {
                let r = match self.agents.get(&agent) {
                    None => Err(RuntimeError::UnknownAgent(agent.clone())),
                    Some(a)
                        if status == AgentStatus::Available
                            && a.login.mode == AgentMode::NailedUp
                            && !a.leg_up =>
                    {
                        Err(RuntimeError::EndpointUnreachable(format!(
                            "{agent}'s nailed-up leg is down; log in again"
                        )))
                    }
                    Some(_) => Ok(()),
                };
                if r.is_ok() {
                    self.step(Event::SetStatus { agent, status }).await;
                }
                let _ = reply.send(r);
            }
            Cmd::Disposition {
                contact,
                code,
                reply,
            } => {
                let agent = self
                    .agents
                    .iter()
                    .find(|(_, a)| {
                        a.contact.as_deref() == Some(&contact)
                            || a.last_contact.as_deref() == Some(&contact)
                    })
                    .map(|(id, _)| id.clone());
                let r = match agent {
                    None => Err(RuntimeError::UnknownContact(contact.clone())),
                    Some(agent) => {
                        if self.contacts.contains_key(&contact) {
                            self.note(&contact, "disposition", &code);
                        } else {
                            let (db, now) = (self.sh.db.clone(), self.now());
                            let (contact, code) = (contact.clone(), code.clone());
                            tokio::spawn(async move {
                                match crate::store::load_contact(&db, &contact).await {
                                    Ok(mut rec) => {
                                        rec.note(now, "disposition", &code);
                                        if let Err(e) =
                                            crate::store::save_contact(&db, &rec, None).await
                                        {
                                            tracing::error!(contact, error = %e, "disposition not saved");
                                        }
                                    }
                                    Err(e) => {
                                        tracing::error!(contact, error = %e, "disposition: contact record not found")
                                    }
                                }
                            });
                        }
                        if matches!(
                            self.acd.agent_state(&agent),
                            Some(AgentState::AfterContactWork { .. })
                        ) {
                            self.step(Event::AcwDone { agent }).await;
                        }
                        Ok(())
                    }
                };
                let _ = reply.send(r);
            }
            Cmd::Snapshot { queue, reply } => {
                let _ = reply.send(self.snapshot(queue.as_deref()));
            }
            Cmd::QueueStats { queue, reply } => {
                let _ = reply.send(
                    self.acd
                        .queue_stats(&queue, self.now())
                        .ok_or(RuntimeError::UnknownQueue(queue)),
                );
            }
            Cmd::ConnectOutbound {
                queue,
                call,
                attributes,
                reply,
            } => {
                let r = self.connect_outbound(&queue, call, attributes).await;
                let _ = reply.send(r);
            }
            Cmd::Control(op) => self.control(op).await,
            Cmd::Leg {
                agent,
                leg_no,
                what,
            } => self.leg_event(&agent, leg_no, what).await,
            Cmd::Callback { entry } => self.callback_due(entry).await,
            Cmd::CallbackDialed {
                contact,
                agent,
                result,
            } => self.callback_dialed(&contact, &agent, result).await,
            Cmd::Estimate { contact, reply } => {
                let _ = reply.send(self.acd.estimate(&contact));
            }
            Cmd::Announce {
                contact,
                detail,
                audio,
            } => self.announce(&contact, &detail, audio).await,
            Cmd::UpdateAgent {
                agent,
                profile,
                skills,
                reply,
            } => {
                let r = self.update_agent(&agent, profile, skills).await;
                let _ = reply.send(r);
            }
            Cmd::ReconfigureAcd { config, reply } => {
                let r = self.reconfigure_acd(*config).await;
                let _ = reply.send(r);
            }
            Cmd::ContactMedia { contact, reply } => {
                let r = match self.contacts.get(&contact) {
                    Some(c) if c.connected => {
                        let leg = c
                            .agent
                            .as_ref()
                            .and_then(|a| self.agents.get(a))
                            .and_then(|a| a.leg.clone());
                        match leg {
                            Some(agent_leg) => Ok(ContactMedia {
                                customer: c.call.clone(),
                                agent_leg,
                                room: c.room.clone(),
                                supervisor: c.supervisor.clone(),
                            }),
                            None => Err(RuntimeError::UnknownContact(format!(
                                "{contact} (the agent's leg is gone)"
                            ))),
                        }
                    }
                    _ => Err(RuntimeError::UnknownContact(contact)),
                };
                let _ = reply.send(r);
            }
            Cmd::AttachLeg {
                contact,
                room,
                leg,
                supervisor,
                reply,
            } => {
                let r = match self.contacts.get_mut(&contact) {
                    Some(c) => {
                        c.room = Some(room);
                        if supervisor && let Some(old) = c.supervisor.replace(leg.clone()) {
                            let _ = old.hangup().await;
                        }
                        c.extra_legs.push(leg);
                        Ok(())
                    }
                    None => {
                        // The contact ended meanwhile.
                        let _ = leg.hangup().await;
                        room.close().await;
                        Err(RuntimeError::UnknownContact(contact))
                    }
                };
                let _ = reply.send(r);
            }
        }
    }

    async fn login(&mut self, login: Login, auto_accept: bool, reply: Reply<()>) {
        let id = login.agent_id.clone();
        let cfg = AgentConfig {
            id: id.clone(),
            profile: login.routing_profile.clone(),
            skills: login.skills.clone(),
        };
        match self.acd.add_agent(&cfg) {
            Ok(()) | Err(crate::acd::ConfigError::DuplicateAgent(_)) => {}
            Err(e) => {
                let _ = reply.send(Err(RuntimeError::InvalidAgent(e.to_string())));
                return;
            }
        }
        if let Some(old) = self.agents.get_mut(&id)
            && let Some(leg) = old.leg.take()
        {
            let _ = leg.hangup().await;
        }
        let now = self.now();
        let mut slot = AgentSlot {
            login: login.clone(),
            auto_accept,
            awaiting: None,
            leg: None,
            leg_no: 0,
            leg_up: false,
            leg_for: None,
            pending_login: None,
            contact: None,
            last_contact: None,
            logout_pending: false,
            state: self.acd.agent_state(&id).unwrap_or(AgentState::Offline),
            since_ms: now,
        };
        if let Some(old) = self.agents.remove(&id) {
            slot.last_contact = old.last_contact;
        }
        match login.mode {
            AgentMode::RingPerOffer => {
                if let AgentEndpoint::Registered(_) = &login.endpoint
                    && let Err(e) = self
                        .originate_to(&login.endpoint, Duration::from_secs(1))
                        .await
                {
                    let _ = reply.send(Err(RuntimeError::EndpointUnreachable(e)));
                    return;
                }
                self.agents.insert(id.clone(), slot);
                self.step(Event::SetStatus {
                    agent: id,
                    status: AgentStatus::Available,
                })
                .await;
                let _ = reply.send(Ok(()));
            }
            AgentMode::NailedUp => match self
                .originate_to(&login.endpoint, self.sh.cfg.login_ring_timeout)
                .await
            {
                Err(e) => {
                    let _ = reply.send(Err(RuntimeError::EndpointUnreachable(e)));
                }
                Ok(o) => {
                    let leg = self.sh.calls.originate(o);
                    self.leg_no += 1;
                    let (_, ctl, events) = leg.split();
                    slot.leg = Some(ctl);
                    slot.leg_no = self.leg_no;
                    slot.pending_login = Some(reply);
                    self.agents.insert(id.clone(), slot);
                    self.watch_leg(&id, self.leg_no, events);
                }
            },
        }
    }

    async fn leg_event(&mut self, agent: &str, leg_no: u64, what: LegEvent) {
        let Some(a) = self.agents.get_mut(agent) else {
            return;
        };
        if a.leg_no != leg_no {
            return;
        }
        match (a.login.mode, what) {
            (AgentMode::NailedUp, LegEvent::Answered) => {
                a.leg_up = true;
                let reply = a.pending_login.take();
                self.step(Event::SetStatus {
                    agent: agent.into(),
                    status: AgentStatus::Available,
                })
                .await;
                if let Some(r) = reply {
                    let _ = r.send(Ok(()));
                }
            }
            (AgentMode::NailedUp, LegEvent::PeerGone) => {
                // Only outbound contacts are ended from here; an inbound contact's own driver
                // reports its caller's hang-up.
                if let Some(c) = a.contact.clone()
                    && self.contacts.get(&c).is_some_and(|s| s.record.is_some())
                {
                    self.contact_gone(&c).await;
                }
            }
            (AgentMode::NailedUp, LegEvent::Ended) => {
                a.leg_up = false;
                a.leg = None;
                let contact = a.contact.clone();
                if let Some(r) = a.pending_login.take() {
                    let _ = r.send(Err(RuntimeError::EndpointUnreachable(format!(
                        "{agent}'s endpoint did not answer"
                    ))));
                }
                tracing::info!(agent, "the agent's nailed-up leg ended");
                self.control_leg_ended(agent).await;
                if let Some(c) = contact {
                    self.hang_up_contact(&c).await;
                }
                self.step(Event::SetStatus {
                    agent: agent.into(),
                    status: AgentStatus::Offline,
                })
                .await;
            }
            (AgentMode::RingPerOffer, LegEvent::Answered) => {
                a.leg_up = true;
                let contact = a.leg_for.clone().unwrap_or_default();
                let leg = a.leg.clone();
                let call = self.contacts.get(&contact).map(|c| c.call.clone());
                let accepted = match (call, leg) {
                    (Some(call), Some(leg))
                        if self.acd.agent_state(agent)
                            == Some(AgentState::Offered(contact.clone())) =>
                    {
                        stop_hold(&call)
                            .await
                            .bridge(&leg, OnPeerHangup::HangUp)
                            .await
                            .is_ok()
                    }
                    _ => false,
                };
                if accepted {
                    self.step(Event::Accept {
                        contact,
                        agent: agent.into(),
                    })
                    .await;
                } else {
                    self.drop_ring_leg(agent).await;
                    if self.contacts.contains_key(&contact) {
                        self.step(Event::Reject {
                            contact,
                            agent: agent.into(),
                        })
                        .await;
                    }
                }
            }
            (AgentMode::RingPerOffer, LegEvent::Ended) => {
                let was_up = a.leg_up;
                a.leg = None;
                a.leg_up = false;
                let contact = a.leg_for.take();
                let offered = contact.as_ref().is_some_and(|c| {
                    self.acd.agent_state(agent) == Some(AgentState::Offered(c.clone()))
                });
                if let Some(c) = contact {
                    if offered && !was_up {
                        self.step(Event::Reject {
                            contact: c,
                            agent: agent.into(),
                        })
                        .await;
                    } else if self.contacts.get(&c).is_some_and(|s| s.record.is_some()) {
                        self.contact_gone(&c).await;
                    }
                }
            }
            (AgentMode::RingPerOffer, LegEvent::PeerGone) => {}
        }
    }

    async fn hang_up_contact(&mut self, contact: &str) {
        let outbound = match self.contacts.get(contact) {
            Some(c) => {
                let _ = c.call.hangup().await;
                c.record.is_some()
            }
            None => false,
        };
        if outbound {
            self.contact_gone(contact).await;
        }
    }

    /// The customer's side of a contact is over (hung up, or ended by the agent).
    async fn contact_gone(&mut self, contact: &str) {
        let Some(slot) = self.contacts.get_mut(contact) else {
            return;
        };
        let extras = std::mem::take(&mut slot.extra_legs);
        let room = slot.room.take();
        for leg in extras {
            let _ = leg.hangup().await;
        }
        if let Some(room) = room {
            room.close().await;
        }
        let Some(slot) = self.contacts.get(contact) else {
            return;
        };
        let agent = slot.agent.clone();
        let connected = slot.connected;
        let timed_out = slot.timed_out;
        match (&agent, connected) {
            (Some(agent), true) => {
                self.note(contact, "ended", agent);
                // A ring-per-offer leg ends with its contact (a room never hangs anybody up).
                self.drop_ring_leg(agent).await;
                self.step(Event::ContactEnded {
                    agent: agent.clone(),
                })
                .await;
            }
            // Transferred to a number: the agent was released at the transfer.
            (None, true) => self.note(contact, "ended", "transferred"),
            _ => {
                if let Some(agent) = &agent {
                    self.drop_ring_leg(agent).await;
                }
                self.note(contact, if timed_out { "ended" } else { "abandoned" }, "");
                if !timed_out {
                    self.step(Event::Abandon {
                        contact: contact.into(),
                    })
                    .await;
                    self.note(contact, "ended", "");
                }
            }
        }
        if let Some(agent) = &agent
            && let Some(a) = self.agents.get_mut(agent)
            && a.contact.as_deref() == Some(contact)
        {
            a.contact = None;
            a.last_contact = Some(contact.into());
            if a.logout_pending {
                a.logout_pending = false;
                if let Some(leg) = a.leg.take() {
                    a.leg_up = false;
                    let _ = leg.hangup().await;
                }
            }
        }
        if let Some(c) = self.contacts.get_mut(contact)
            && let Some(r) = &mut c.record
        {
            r.ended_at_ms = Some(self.sh.clock.now_ms());
        }
        self.save_outbound(contact).await;
        self.contacts.remove(contact);
        self.control_contact_gone(contact).await;
        self.emit(RuntimeEvent::ContactEnded {
            contact: contact.into(),
            agent,
            at_ms: self.now(),
        });
    }

    async fn connect_outbound(
        &mut self,
        queue: &str,
        call: CallControl,
        attributes: BTreeMap<String, String>,
    ) -> Result<String, NoAgent> {
        if self.acd.queue_stats(queue, self.now()).is_none() {
            return Err(NoAgent);
        }
        let id = telephony::cdr::call_ref(call.id());
        let mut record = ContactRecord::new(
            ContactInfo {
                contact_id: id.clone(),
                // The customer is the callee: the dialer passes the number it called.
                customer_address: attributes.get("number").cloned().unwrap_or_default(),
                channel: "VOICE".into(),
                attributes: attributes.clone(),
                ..Default::default()
            },
            self.now(),
        );
        record.target_queue = Some(queue.into());
        record.note(self.now(), "outbound", queue);
        self.contacts.insert(
            id.clone(),
            ContactSlot {
                call,
                queue: queue.into(),
                attributes,
                notes: None,
                record: Some(record),
                agent: None,
                connected: false,
                timed_out: false,
                room: None,
                supervisor: None,
                extra_legs: Vec::new(),
            },
        );
        let mut req = ContactRequest::new(&id, queue);
        req.priority = 0;
        self.step(Event::Enqueue(req)).await;
        match self.contacts.get(&id).and_then(|c| c.agent.clone()) {
            Some(agent) => Ok(agent),
            None => {
                if self.contacts.contains_key(&id) {
                    let _ = self.acd.step(
                        Event::Abandon {
                            contact: id.clone(),
                        },
                        self.now(),
                    );
                    self.contacts.remove(&id);
                }
                Err(NoAgent)
            }
        }
    }

    /// Writes an outbound contact's record (awaited, so a later disposition finds it).
    async fn save_outbound(&self, contact: &str) {
        if let Some(rec) = self.contacts.get(contact).and_then(|c| c.record.as_ref())
            && let Err(e) =
                crate::store::save_contact_on(&self.sh.db, Some(&self.sh.cfg.node), rec, None).await
        {
            tracing::error!(contact = %rec.contact.contact_id, error = %e, "outbound contact record not saved");
        }
    }

    fn snapshot(&self, queue: Option<&str>) -> Vec<AgentView> {
        let profiles = queue.map(|q| self.serving.get(q).cloned().unwrap_or_default());
        let mut out: Vec<AgentView> = self
            .agents
            .iter()
            .filter(|(_, a)| {
                profiles
                    .as_ref()
                    .is_none_or(|p| p.contains(&a.login.routing_profile))
            })
            .map(|(id, a)| {
                let (talk_ms, calls) = self.acd.agent_totals(id).unwrap_or((0, 0));
                AgentView {
                    id: id.clone(),
                    state: a.state.clone(),
                    since_ms: a.since_ms,
                    mode: a.login.mode,
                    endpoint: a.login.endpoint.clone(),
                    routing_profile: a.login.routing_profile.clone(),
                    leg_up: a.leg_up,
                    auto_accept: a.auto_accept,
                    contact: a.contact.clone(),
                    contacts_handled: calls,
                    talk_ms,
                }
            })
            .collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
    }

    /// Publishes agent state changes.
    fn refresh_states(&mut self) {
        let now = self.now();
        let mut changed = Vec::new();
        for (id, a) in self.agents.iter_mut() {
            let st = self.acd.agent_state(id).unwrap_or(AgentState::Offline);
            if st != a.state {
                a.state = st.clone();
                a.since_ms = now;
                changed.push(RuntimeEvent::AgentStateChanged {
                    agent: id.clone(),
                    state: st,
                    at_ms: now,
                });
            }
        }
        for e in changed {
            self.emit(e);
        }
    }
}

// ---- callbacks, announcements, live agent changes -------------------------------------------

impl Task {
    /// Carries out decisions the ACD returned outside [`Task::step`].
    async fn apply_all(&mut self, decisions: Vec<Decision>) {
        let mut pending = VecDeque::new();
        for d in decisions {
            self.apply(d, &mut pending).await;
        }
        while let Some(ev) = pending.pop_front() {
            self.step(ev).await;
        }
        self.refresh_states();
    }

    /// A callback is due: queued with the caller's original time and an offer long enough to
    /// ring the agent and then the customer.
    async fn callback_due(&mut self, entry: super::callbacks::Entry) {
        let contact = entry.acd_contact();
        if self.callbacks.contains_key(&contact) {
            return;
        }
        let now = self.now();
        if self.acd.queue_stats(&entry.queue, now).is_none() {
            tracing::warn!(callback = entry.id, queue = %entry.queue, "callback for an unknown queue closed");
            let db = self.sh.db.clone();
            tokio::spawn(async move {
                super::callbacks::close_pending(&db, entry.id, "unknown_queue", now).await
            });
            return;
        }
        let ring = self
            .sh
            .queue_cfg(&entry.queue)
            .map_or(20, |q| q.ring_timeout_s);
        let mut req = ContactRequest::new(&contact, &entry.queue);
        req.waiting_since_ms = Some(entry.waiting_since);
        req.offer_timeout_s = Some(ring + super::callbacks::ring_s(&self.sh, &entry.queue) + 15);
        self.callbacks.insert(contact.clone(), (entry, false));
        self.step(Event::Enqueue(req)).await;
        if self.acd.estimate(&contact).is_none()
            && matches!(self.callbacks.get(&contact), Some((_, false)))
            && let Some((mut entry, _)) = self.callbacks.remove(&contact)
        {
            // The queue is full: try again later, keeping the place.
            entry.due_at = now + 30_000;
            let _ = self.sh.callbacks.send(entry);
        }
    }

    /// The ACD offered a callback to `agent`: the agent is reserved while the customer is
    /// dialled.
    fn callback_offer(&mut self, contact: &str, agent: &str, pending: &mut VecDeque<Event>) {
        let Some((entry, dialing)) = self.callbacks.get_mut(contact) else {
            return;
        };
        if *dialing {
            // Offered again while a dial is under way (the first agent left): that dial
            // decides; this offer times out.
            return;
        }
        let side = match self.agents.get(agent) {
            Some(a) if a.login.mode == AgentMode::NailedUp && a.leg_up => {
                super::callbacks::AgentSide::Leg
            }
            Some(a) if a.login.mode == AgentMode::RingPerOffer => {
                let ring = self
                    .sh
                    .queue_cfg(&entry.queue)
                    .map_or(20, |q| q.ring_timeout_s);
                super::callbacks::AgentSide::Ring(
                    a.login.endpoint.clone(),
                    Duration::from_secs(ring.clamp(1, 600) as u64),
                )
            }
            _ => {
                pending.push_back(Event::Reject {
                    contact: contact.into(),
                    agent: agent.into(),
                });
                return;
            }
        };
        *dialing = true;
        let entry = entry.clone();
        self.note_callback(contact, "callback_dialing", &entry.number);
        super::callbacks::dial(self.sh.clone(), entry, agent.into(), side);
    }

    fn note_callback(&self, contact: &str, what: &str, detail: &str) {
        tracing::info!(contact, what, detail, "callback");
    }

    /// The ACD dropped a queued callback (max wait with no overflow): closed for good.
    fn callback_timed_out(&mut self, contact: &str) {
        if let Some((entry, _)) = self.callbacks.remove(contact) {
            let (db, now) = (self.sh.db.clone(), self.now());
            tokio::spawn(async move {
                super::callbacks::close_pending(&db, entry.id, "queue_timeout", now).await
            });
        }
    }

    /// A callback's dial ended: connect agent and customer, or free the agent.
    async fn callback_dialed(
        &mut self,
        contact: &str,
        agent: &str,
        result: super::callbacks::Dialed,
    ) {
        let Some((entry, _)) = self.callbacks.remove(contact) else {
            return;
        };
        let offered = self.acd.agent_state(agent) == Some(AgentState::Offered(contact.into()));
        let (customer, customer_events, agent_leg) = match result {
            super::callbacks::Dialed::Answered {
                customer,
                customer_events,
                agent_leg,
            } if offered => (customer, customer_events, agent_leg),
            super::callbacks::Dialed::Answered {
                customer,
                agent_leg,
                ..
            } => {
                // The agent went away meanwhile: nobody to connect the customer with.
                tracing::warn!(contact, agent, "callback answered but the agent left");
                let _ = customer.hangup().await;
                if let Some((leg, _)) = agent_leg {
                    let _ = leg.hangup().await;
                }
                self.step(Event::Abandon {
                    contact: contact.into(),
                })
                .await;
                return;
            }
            super::callbacks::Dialed::NotConnected { why, .. } => {
                self.note_callback(contact, "callback_not_connected", &why);
                if let Some(a) = self.agents.get_mut(agent)
                    && a.contact.as_deref() == Some(contact)
                {
                    a.contact = None;
                }
                let ev = if offered {
                    Event::Withdraw {
                        contact: contact.into(),
                        agent: agent.into(),
                    }
                } else {
                    Event::Abandon {
                        contact: contact.into(),
                    }
                };
                self.step(ev).await;
                return;
            }
        };
        let now = self.now();
        let mut attributes = BTreeMap::new();
        attributes.insert("callback_id".to_string(), entry.id.to_string());
        attributes.insert("callback_of".to_string(), entry.contact_id.clone());
        let mut record = ContactRecord::new(
            ContactInfo {
                contact_id: contact.into(),
                customer_address: entry.number.clone(),
                channel: "VOICE".into(),
                attributes: attributes.clone(),
                ..Default::default()
            },
            now,
        );
        record.target_queue = Some(entry.queue.clone());
        record.note(now, "callback", &entry.contact_id);
        record.note(now, "customer_answered", &entry.number);
        // Media: the customer onto the agent's standing leg, or onto the leg just answered.
        let bridged = match agent_leg {
            Some((leg, events)) => {
                self.leg_no += 1;
                let leg_no = self.leg_no;
                let ok = customer.bridge(&leg, OnPeerHangup::HangUp).await.is_ok();
                if let Some(a) = self.agents.get_mut(agent) {
                    a.leg = Some(leg);
                    a.leg_no = leg_no;
                    a.leg_up = true;
                    a.leg_for = Some(contact.into());
                }
                self.watch_leg(agent, leg_no, events);
                ok
            }
            None => match self.agents.get(agent).and_then(|a| a.leg.clone()) {
                Some(leg) => customer.bridge(&leg, OnPeerHangup::Stay).await.is_ok(),
                None => false,
            },
        };
        self.contacts.insert(
            contact.into(),
            ContactSlot {
                call: customer.clone(),
                queue: entry.queue.clone(),
                attributes,
                notes: None,
                record: Some(record),
                agent: Some(agent.into()),
                connected: false,
                timed_out: false,
                room: None,
                supervisor: None,
                extra_legs: Vec::new(),
            },
        );
        // The customer's hang-up ends the contact.
        let tx = self.tx.clone();
        let id = contact.to_owned();
        let mut events = customer_events;
        tokio::spawn(async move {
            while let Some(ev) = events.recv().await {
                if matches!(ev, CallEvent::Hangup { .. }) {
                    break;
                }
            }
            if let Some(tx) = tx.upgrade() {
                let _ = tx.send(Cmd::CustomerGone { contact: id });
            }
        });
        if bridged {
            self.step(Event::Accept {
                contact: contact.into(),
                agent: agent.into(),
            })
            .await;
        } else {
            tracing::warn!(contact, agent, "callback: the media could not be connected");
            let _ = customer.hangup().await;
            self.step(Event::Withdraw {
                contact: contact.into(),
                agent: agent.into(),
            })
            .await;
        }
    }

    /// Plays an announcement to a caller still waiting (not offered, no agent).
    async fn announce(
        &mut self,
        contact: &str,
        detail: &str,
        audio: Box<dyn telephony::media::frame::FrameSource>,
    ) {
        let waiting = self
            .contacts
            .get(contact)
            .filter(|c| !c.connected && c.agent.is_none() && c.room.is_none())
            .map(|c| c.call.clone());
        if let Some(call) = waiting
            && call.play(audio).await.is_ok()
        {
            self.note(contact, "announcement", detail);
        }
    }

    /// An admin changed an agent's routing profile or skills: the ACD routes with them at once
    /// (a logged-in agent keeps them in its login for snapshots and the next login).
    async fn update_agent(
        &mut self,
        agent: &str,
        profile: Option<String>,
        skills: BTreeMap<String, u8>,
    ) -> Result<(), RuntimeError> {
        let current = self
            .agents
            .get(agent)
            .map(|a| a.login.routing_profile.clone())
            .or_else(|| {
                self.sh
                    .acd_cfg()
                    .agents
                    .iter()
                    .find(|a| a.id == agent)
                    .map(|a| a.profile.clone())
            })
            .ok_or_else(|| RuntimeError::UnknownAgent(agent.into()))?;
        let cfg = AgentConfig {
            id: agent.into(),
            profile: profile.unwrap_or(current),
            skills,
        };
        let decisions = self
            .acd
            .update_agent(&cfg, self.now())
            .map_err(|e| match e {
                crate::acd::ConfigError::UnknownAgent(a) => RuntimeError::UnknownAgent(a),
                e => RuntimeError::InvalidAgent(e.to_string()),
            })?;
        if let Some(a) = self.agents.get_mut(agent) {
            a.login.routing_profile = cfg.profile.clone();
            a.login.skills = cfg.skills.clone();
        }
        self.apply_all(decisions).await;
        Ok(())
    }

    /// A configuration reload: the ACD takes the new queues and routing profiles (all or
    /// nothing) and the decisions it makes at once are carried out; returns what changed.
    async fn reconfigure_acd(
        &mut self,
        config: AcdConfig,
    ) -> Result<Vec<String>, crate::acd::ReconfigureError> {
        let decisions = self.acd.reconfigure(&config, self.now())?;
        let changed = crate::acd::changes(&self.sh.acd_cfg(), &config);
        self.serving = super::profiles_serving(&config);
        *self.sh.acd_live.write().expect("acd config lock") = Arc::new(config);
        self.apply_all(decisions).await;
        Ok(changed)
    }
}
