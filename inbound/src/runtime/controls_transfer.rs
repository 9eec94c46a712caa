//! Transfers and consultations of [`super`] (the ACD task's side): choosing and reserving the
//! target agent, holding the customer while the target is called, then completing (customer ↔
//! target, the agent released), cancelling (back to the customer) or turning the consultation
//! into a conference; a target that hangs up or a contact that ends cleans up here.

use std::time::Duration;

use telephony::control::{CallControl, Event as CallEvent, OnPeerHangup, Role, Room};
use telephony::sip::call::{CallId, Originate};
use tokio::sync::mpsc;

use crate::acd::{AgentState, AgentStatus, Event};

use super::super::super::{AgentMode, RuntimeEvent};
use super::super::{Cmd, Task};
use super::{
    Consult, ConsultPhase, ControlEvent, ControlRefused, Dial, Op, RESERVED_STATUS, Target,
    TransferMode, conflict, media, valid_number,
};

impl Task {
    /// The longest-idle available agent staffing `queue` (not `me`).
    fn pick_agent(&self, queue: &str, me: &str) -> Result<String, ControlRefused> {
        if self.acd.queue_stats(queue, self.now()).is_none() {
            return Err(ControlRefused::BadTarget(format!(
                "unknown queue {queue:?}"
            )));
        }
        let profiles = self.serving.get(queue).cloned().unwrap_or_default();
        self.agents
            .iter()
            .filter(|(id, a)| {
                id.as_str() != me
                    && profiles.contains(&a.login.routing_profile)
                    && self.acd.agent_state(id) == Some(AgentState::Available)
            })
            .min_by_key(|(_, a)| a.since_ms)
            .map(|(id, _)| id.clone())
            .ok_or_else(|| conflict(format!("no agent of queue {queue} is available")))
    }

    /// Takes agent `b` out of routing as the target for `contact`; how to reach it.
    async fn reserve(
        &mut self,
        contact: &str,
        me: &str,
        b: &str,
    ) -> Result<(Dial, bool), ControlRefused> {
        if b == me {
            return Err(ControlRefused::BadTarget(
                "an agent cannot transfer a contact to themself".into(),
            ));
        }
        let Some(a) = self.agents.get(b) else {
            return Err(ControlRefused::BadTarget(format!(
                "agent {b:?} is not logged in"
            )));
        };
        if self.acd.agent_state(b) != Some(AgentState::Available) {
            return Err(conflict(format!("agent {b} is not available")));
        }
        let (dial, nailed) = match a.login.mode {
            AgentMode::NailedUp => match (&a.leg, a.leg_up) {
                (Some(leg), true) => (Dial::Ready(leg.clone()), true),
                _ => return Err(conflict(format!("agent {b}'s leg is down"))),
            },
            AgentMode::RingPerOffer => {
                let ep = a.login.endpoint.clone();
                let o = self
                    .originate_to(&ep, self.sh.cfg.login_ring_timeout)
                    .await
                    .map_err(|e| conflict(format!("agent {b} cannot be called: {e}")))?;
                (Dial::Call(o), false)
            }
        };
        self.step(Event::SetStatus {
            agent: b.into(),
            status: AgentStatus::NotRoutable(RESERVED_STATUS.into()),
        })
        .await;
        self.ctl.reserved.insert(b.into(), contact.into());
        Ok((dial, nailed))
    }

    /// An agent taken as a target goes back to routing (unless it chose another status).
    async fn unreserve(&mut self, b: &str) {
        if self.ctl.reserved.remove(b).is_some()
            && self.acd.agent_state(b) == Some(AgentState::NotRoutable(RESERVED_STATUS.into()))
        {
            self.step(Event::SetStatus {
                agent: b.into(),
                status: AgentStatus::Available,
            })
            .await;
        }
    }

    pub(super) async fn begin(
        &mut self,
        contact: &str,
        target: Target,
        mode: TransferMode,
    ) -> Result<(u64, Dial), ControlRefused> {
        let l = self.live(contact)?;
        if self.ctl.consults.contains_key(contact) {
            return Err(conflict("a consultation is already in progress"));
        }
        let (target_agent, dial, nailed) = match &target {
            Target::Number(n) => {
                if !valid_number(n) {
                    return Err(ControlRefused::BadTarget(format!(
                        "number {n:?} is not E.164 (+ and 2-15 digits)"
                    )));
                }
                if self.sh.cfg.trunks.is_empty() {
                    return Err(conflict("no trunk is configured for calls to numbers"));
                }
                let o = Originate {
                    to_user: n.clone(),
                    from_user: self.sh.cfg.agent_caller_id.clone(),
                    trunks: self.sh.cfg.trunks.clone(),
                    ring_timeout: Duration::from_secs(30),
                    ..Default::default()
                };
                (None, Dial::Call(o), false)
            }
            Target::Agent(b) => {
                let (d, n) = self.reserve(contact, &l.agent, b).await?;
                (Some(b.clone()), d, n)
            }
            Target::Queue(q) => {
                let b = self.pick_agent(q, &l.agent)?;
                let (d, n) = self.reserve(contact, &l.agent, &b).await?;
                (Some(b), d, n)
            }
        };
        self.close_room(contact, &l.agent).await;
        if let Err(e) = self.hold_customer(&l.customer).await {
            if let Some(b) = &target_agent {
                self.unreserve(b).await;
            }
            return Err(e);
        }
        self.ctl.held.remove(contact);
        self.ctl.epoch += 1;
        let epoch = self.ctl.epoch;
        let label = match (&target, &target_agent) {
            (Target::Queue(q), Some(b)) => format!("agent {b} (queue {q})"),
            _ => target.label(),
        };
        self.ctl.consults.insert(
            contact.into(),
            Consult {
                label: label.clone(),
                mode,
                phase: ConsultPhase::Ringing,
                epoch,
                leg: None,
                target_agent: target_agent.clone(),
                nailed,
            },
        );
        let stage = match mode {
            TransferMode::Blind => "transfer",
            TransferMode::Consult => "consult",
        };
        self.note(contact, stage, &format!("{label} (by {})", l.agent));
        self.emit_control(
            contact,
            &l.agent,
            target_agent,
            ControlEvent::ConsultRinging {
                target: label,
                mode,
            },
        );
        Ok((epoch, dial))
    }

    pub(super) async fn answered(
        &mut self,
        contact: &str,
        epoch: u64,
        leg: CallControl,
        events: Option<mpsc::UnboundedReceiver<CallEvent>>,
    ) -> Result<(), ControlRefused> {
        let current = self
            .ctl
            .consults
            .get(contact)
            .is_some_and(|c| c.epoch == epoch && c.phase == ConsultPhase::Ringing);
        if !current {
            if events.is_some() {
                let _ = leg.hangup().await;
            }
            return Err(conflict("the consultation was cancelled meanwhile"));
        }
        if let Some(events) = events {
            self.watch_target(contact, leg.id(), events);
        }
        let l = match self.live(contact) {
            Ok(l) => l,
            Err(e) => {
                self.end_consult(contact).await;
                return Err(e);
            }
        };
        let (mode, label, target_agent) = {
            let c = self.ctl.consults.get_mut(contact).expect("checked");
            c.leg = Some(leg.clone());
            (c.mode, c.label.clone(), c.target_agent.clone())
        };
        match mode {
            TransferMode::Blind => self.complete(contact).await,
            TransferMode::Consult => {
                if let Err(e) = l.leg.bridge(&leg, OnPeerHangup::Stay).await {
                    self.failed(contact, epoch, &e.to_string()).await;
                    return Err(media(e));
                }
                if let Some(c) = self.ctl.consults.get_mut(contact) {
                    c.phase = ConsultPhase::Talking;
                }
                self.note(contact, "consult_answered", &label);
                self.emit_control(
                    contact,
                    &l.agent,
                    target_agent,
                    ControlEvent::ConsultAnswered { target: label },
                );
                Ok(())
            }
        }
    }

    /// The target's call events: its hang-up ends the consultation.
    fn watch_target(
        &self,
        contact: &str,
        leg: CallId,
        mut events: mpsc::UnboundedReceiver<CallEvent>,
    ) {
        let tx = self.tx.clone();
        let contact = contact.to_owned();
        tokio::spawn(async move {
            while let Some(ev) = events.recv().await {
                if matches!(ev, CallEvent::Hangup { .. }) {
                    break;
                }
            }
            if let Some(tx) = tx.upgrade() {
                let _ = tx.send(Cmd::Control(Op::TargetGone { contact, leg }));
            }
        });
    }

    /// Drops a consultation's state: its target leg released, its agent back to routing.
    async fn end_consult(&mut self, contact: &str) -> Option<Consult> {
        let c = self.ctl.consults.remove(contact)?;
        if let Some(leg) = &c.leg
            && !c.nailed
        {
            let _ = leg.hangup().await;
        }
        if let Some(b) = &c.target_agent {
            self.unreserve(b).await;
        }
        Some(c)
    }

    pub(super) async fn failed(&mut self, contact: &str, epoch: u64, reason: &str) {
        if !self
            .ctl
            .consults
            .get(contact)
            .is_some_and(|c| c.epoch == epoch)
        {
            return;
        }
        let Some(c) = self.end_consult(contact).await else {
            return;
        };
        let Ok(l) = self.live(contact) else { return };
        if let Err(e) = self.back_to_agent(contact, &l).await {
            tracing::warn!(contact, error = %e, "customer not put back with the agent");
        }
        let stage = match c.mode {
            TransferMode::Blind => "transfer_failed",
            TransferMode::Consult => "consult_failed",
        };
        self.note(contact, stage, &format!("{}: {reason}", c.label));
        self.emit_control(
            contact,
            &l.agent,
            c.target_agent,
            ControlEvent::ConsultFailed {
                target: c.label,
                mode: c.mode,
                reason: reason.into(),
            },
        );
    }

    pub(super) async fn complete(&mut self, contact: &str) -> Result<(), ControlRefused> {
        let Some(c) = self.ctl.consults.get(contact) else {
            return Err(conflict("no consultation in progress"));
        };
        if c.phase == ConsultPhase::Ringing && c.leg.is_none() {
            return Err(conflict("the target has not answered yet"));
        }
        let l = self.live(contact)?;
        let c = self.ctl.consults.remove(contact).expect("checked");
        let tleg = c.leg.clone().expect("an answered target has a leg");
        self.close_room(contact, &l.agent).await;
        let _ = l.customer.stop_playback().await;
        let tpolicy = if c.nailed {
            OnPeerHangup::Stay
        } else {
            OnPeerHangup::HangUp
        };
        if let Err(e) = l.customer.bridge(&tleg, tpolicy).await {
            self.ctl.consults.insert(contact.into(), c);
            let _ = self.hold_customer(&l.customer).await;
            return Err(media(e));
        }
        // The first agent is released (a ring-per-offer leg is no longer bridged: hung up).
        if let Some(a) = self.agents.get_mut(&l.agent)
            && a.contact.as_deref() == Some(contact)
        {
            a.contact = None;
            a.last_contact = Some(contact.into());
        }
        self.drop_ring_leg(&l.agent).await;
        let mut attributes = Default::default();
        match &c.target_agent {
            Some(b) => {
                if let Some(slot) = self.contacts.get_mut(contact) {
                    slot.agent = Some(b.clone());
                    attributes = slot.attributes.clone();
                }
                self.leg_no += 1;
                let leg_no = self.leg_no;
                if let Some(a) = self.agents.get_mut(b) {
                    a.contact = Some(contact.into());
                    if a.login.mode == AgentMode::RingPerOffer {
                        a.leg = Some(tleg.clone());
                        a.leg_no = leg_no;
                        a.leg_up = true;
                        a.leg_for = Some(contact.into());
                    }
                }
            }
            None => {
                if let Some(slot) = self.contacts.get_mut(contact) {
                    slot.agent = None;
                    slot.extra_legs.push(tleg.clone());
                }
            }
        }
        let mode = match c.mode {
            TransferMode::Blind => "blind",
            TransferMode::Consult => "consult",
        };
        self.note(
            contact,
            "transferred",
            &format!("{} ({mode}, by {})", c.label, l.agent),
        );
        self.emit_control(
            contact,
            &l.agent,
            c.target_agent.clone(),
            ControlEvent::TransferCompleted {
                target: c.label.clone(),
                mode: c.mode,
            },
        );
        if let Some(b) = &c.target_agent {
            self.note(contact, "connected", b);
            self.emit(RuntimeEvent::ContactConnected {
                contact: contact.into(),
                agent: b.clone(),
                attributes,
                at_ms: self.now(),
            });
        }
        self.step(Event::ContactEnded {
            agent: l.agent.clone(),
        })
        .await;
        Ok(())
    }

    pub(super) async fn cancel(&mut self, contact: &str) -> Result<(), ControlRefused> {
        if !self.ctl.consults.contains_key(contact) {
            return Err(conflict("no consultation in progress"));
        }
        let l = self.live(contact)?;
        if self
            .ctl
            .consults
            .get(contact)
            .is_some_and(|c| c.phase == ConsultPhase::Conference)
        {
            // Everybody leaves the conference room; the agent and customer are bridged again.
            if let Some(room) = self.contacts.get_mut(contact).and_then(|c| c.room.take()) {
                room.close().await;
            }
        }
        let c = self.end_consult(contact).await.expect("checked");
        self.back_to_agent(contact, &l).await?;
        self.note(contact, "consult_cancelled", &c.label);
        self.emit_control(
            contact,
            &l.agent,
            c.target_agent,
            ControlEvent::ConsultEnded {
                target: c.label,
                reason: "cancelled".into(),
            },
        );
        Ok(())
    }

    pub(super) async fn conference_op(&mut self, contact: &str) -> Result<(), ControlRefused> {
        let Some(c) = self.ctl.consults.get(contact) else {
            return Err(conflict("no consultation in progress"));
        };
        match c.phase {
            ConsultPhase::Conference => return Ok(()),
            ConsultPhase::Ringing => return Err(conflict("the target has not answered yet")),
            ConsultPhase::Talking => {}
        }
        let (tleg, label, target_agent) = (
            c.leg.clone().expect("answered"),
            c.label.clone(),
            c.target_agent.clone(),
        );
        let l = self.live(contact)?;
        let _ = l.customer.stop_playback().await;
        let room = Room::new();
        let joined = async {
            room.join(&l.leg, Role::Full).await?;
            room.join(&tleg, Role::Full).await?;
            room.join(&l.customer, Role::Full).await
        }
        .await;
        if let Err(e) = joined {
            room.close().await;
            let _ = self.hold_customer(&l.customer).await;
            let _ = l.leg.bridge(&tleg, OnPeerHangup::Stay).await;
            return Err(media(e.to_string()));
        }
        if let Some(slot) = self.contacts.get_mut(contact) {
            slot.room = Some(room);
        }
        if let Some(c) = self.ctl.consults.get_mut(contact) {
            c.phase = ConsultPhase::Conference;
        }
        self.note(contact, "conference", &label);
        self.emit_control(
            contact,
            &l.agent,
            target_agent,
            ControlEvent::ConferenceStarted { target: label },
        );
        Ok(())
    }

    /// The target's leg ended (`leg`), or target agent `agent`'s nailed-up leg did.
    pub(super) async fn target_gone(
        &mut self,
        contact: &str,
        leg: Option<CallId>,
        agent: Option<&str>,
    ) {
        let Some(c) = self.ctl.consults.get(contact) else {
            return;
        };
        let ours = match (leg, agent) {
            (Some(id), _) => c.leg.as_ref().is_some_and(|l| l.id() == id),
            (None, Some(b)) => c.target_agent.as_deref() == Some(b),
            _ => false,
        };
        if !ours || c.phase == ConsultPhase::Ringing {
            return;
        }
        let phase = c.phase;
        let Some(c) = self.end_consult(contact).await else {
            return;
        };
        let Ok(l) = self.live(contact) else { return };
        if phase == ConsultPhase::Talking
            && let Err(e) = self.back_to_agent(contact, &l).await
        {
            tracing::warn!(contact, error = %e, "customer not put back with the agent");
        }
        // In a conference the room goes on with the agent and the customer.
        self.note(contact, "consult_ended", &format!("{} hung up", c.label));
        self.emit_control(
            contact,
            &l.agent,
            c.target_agent,
            ControlEvent::ConsultEnded {
                target: c.label,
                reason: "target_hung_up".into(),
            },
        );
    }

    /// Hook: an agent's nailed-up leg ended (it may be a consultation's target).
    pub(crate) async fn control_leg_ended(&mut self, agent: &str) {
        let contact = self
            .ctl
            .consults
            .iter()
            .find(|(_, c)| c.nailed && c.target_agent.as_deref() == Some(agent))
            .map(|(k, _)| k.clone());
        if let Some(contact) = contact {
            self.target_gone(&contact, None, Some(agent)).await;
        }
    }

    /// Hook: the contact is over (end of `contact_gone`): its consultation's target released,
    /// agents taken as targets for it back to routing.
    pub(crate) async fn control_contact_gone(&mut self, contact: &str) {
        self.ctl.held.remove(contact);
        self.ctl.muted.remove(contact);
        if let Some(c) = self.ctl.consults.remove(contact)
            && let Some(leg) = &c.leg
        {
            if c.nailed {
                let _ = leg.unbridge().await;
            } else {
                let _ = leg.hangup().await;
            }
        }
        let agents: Vec<String> = self
            .ctl
            .reserved
            .iter()
            .filter(|(_, c)| c.as_str() == contact)
            .map(|(a, _)| a.clone())
            .collect();
        for b in agents {
            self.unreserve(&b).await;
        }
    }
}
