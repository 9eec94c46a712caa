//! A flow on an already-answered outbound call (the dialer's agentless flows and single calls to
//! a flow, through its `FlowPort` implemented in `src/`). The driver is the inbound contact's
//! ([`super::contact`]) without the arrival part: no routing, no answer, no bridge data — the
//! flow named by the caller starts at once, on a contact record whose `contact_id` is the dial
//! attempt's, `$.CustomerEndpoint.Address` the callee and `$.SystemEndpoint.Address` the caller
//! id, with the lead's attributes and `direction=outbound`. A "2 for an agent" branch is the
//! flow's `TransferContactToQueue`: the ACD offers the contact like an inbound one.
//!
//! Supported effects: prompts, digit collection (barge-in), attributes, hours, queues, flow
//! transfers, webhooks, disconnect. Transfers to numbers or to the legacy platform, callbacks and
//! recording are refused on outbound flows (the flow takes its error branch; a stage says so).
//! The events come from the dialer, which keeps the opt-out key for itself.

use std::collections::VecDeque;
use std::time::Duration;

use telephony::control::{CallControl, Event};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::acd::ContactRequest;
use crate::contact::{ContactInfo, ContactRecord, FlowOutcome, Stage};
use crate::interpreter::{Effect, Input, Interpreter, PromptSpec, QueueResult, TransferResult};
use crate::store::{self, StoredFlow};

use super::Runtime;
use super::acd_task::Cmd;

impl Runtime {
    /// Whether `flow` is a stored flow that compiles.
    pub async fn check_flow(&self, flow: &str) -> Result<(), String> {
        let f = store::load_flow(&self.shared.db, flow, None)
            .await
            .map_err(|e| e.to_string())?;
        f.compile().map(|_| ()).map_err(|e| e.to_string())
    }

    /// Runs `flow` on an answered outbound call until the call ends, and returns the contact's
    /// final record (attributes the flow set, the path, the stages: `dtmf` per key, `queued`,
    /// `connected` with the agent...). `Err` when the flow cannot start (unknown, does not
    /// compile): the call is left to the caller. `events` must end with the call's `Hangup`.
    pub async fn run_flow_on_call(
        &self,
        ctl: CallControl,
        events: mpsc::UnboundedReceiver<Event>,
        flow: &str,
        mut contact: ContactInfo,
    ) -> Result<ContactRecord, String> {
        let stored = store::load_flow(&self.shared.db, flow, None)
            .await
            .map_err(|e| e.to_string())?;
        let compiled = stored.compile().map_err(|e| e.to_string())?;
        contact.channel = "VOICE".into();
        contact
            .attributes
            .insert("direction".into(), "outbound".into());
        let seed = contact
            .contact_id
            .bytes()
            .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(b as u64));
        let (notes_tx, notes) = mpsc::unbounded_channel();
        let now = self.shared.clock.now_ms();
        let mut d = Driver {
            rt: self.clone(),
            ctl,
            events,
            notes_tx,
            notes,
            base: ContactRecord::new(contact, now),
            stages: Vec::new(),
            flow: stored,
            gone: false,
            in_acd: false,
            typeahead: VecDeque::new(),
        };
        d.stage("outbound", flow);
        let mut interp = Interpreter::new(compiled, seed);
        let mut effects = interp.step(Input::Started(d.base.contact.clone()), d.now());
        d.save(&interp).await;
        let outcome = loop {
            let (mut awaited, mut ended) = (None, None);
            for e in effects.drain(..) {
                match e {
                    Effect::Ended(o) => ended = Some(o),
                    e if e.is_awaited() => awaited = Some(e),
                    e => d.carry_out(e).await,
                }
            }
            if let Some(o) = ended {
                break o;
            }
            let Some(e) = awaited else {
                break FlowOutcome::Error {
                    action: String::new(),
                    reason: "flow stalled".into(),
                };
            };
            effects = match d.perform(e, &mut interp).await {
                Ok(inputs) => {
                    let mut out = Vec::new();
                    for i in inputs {
                        out.extend(interp.step(i, d.now()));
                    }
                    out
                }
                Err(more) => more,
            };
            d.save(&interp).await;
        };
        d.stage("flow_ended", &format!("{outcome:?}"));
        if !matches!(outcome, FlowOutcome::Queued { .. }) && !d.gone {
            let _ = d.ctl.hangup().await;
        }
        d.finish(&interp).await;
        Ok(d.record(&interp))
    }
}

struct Driver {
    rt: Runtime,
    ctl: CallControl,
    events: mpsc::UnboundedReceiver<Event>,
    notes_tx: mpsc::UnboundedSender<Stage>,
    notes: mpsc::UnboundedReceiver<Stage>,
    base: ContactRecord,
    stages: Vec<Stage>,
    flow: StoredFlow,
    gone: bool,
    in_acd: bool,
    typeahead: VecDeque<char>,
}

enum Waited {
    Event(Event),
    Timeout,
    Gone,
}

impl Driver {
    fn now(&self) -> i64 {
        self.rt.shared.clock.now_ms()
    }

    fn id(&self) -> String {
        self.base.contact.contact_id.clone()
    }

    fn stage(&mut self, stage: &str, detail: &str) {
        let at = self.now();
        self.push(Stage {
            at_ms: at,
            stage: stage.into(),
            detail: detail.into(),
        });
    }

    fn push(&mut self, s: Stage) {
        let at = self
            .stages
            .iter()
            .rposition(|x| x.at_ms <= s.at_ms)
            .map_or(0, |i| i + 1);
        self.stages.insert(at, s);
    }

    fn record(&self, interp: &Interpreter) -> ContactRecord {
        let mut r = if interp.record().started_at_ms != 0 {
            interp.record().clone()
        } else {
            self.base.clone()
        };
        r.started_at_ms = self.base.started_at_ms;
        r.stages = self.stages.clone();
        r
    }

    async fn save(&self, interp: &Interpreter) {
        let sh = &self.rt.shared;
        if let Err(e) = store::save_contact_on(
            &sh.db,
            Some(&sh.cfg.node),
            &self.record(interp),
            Some(&self.flow),
        )
        .await
        {
            tracing::error!(contact = %self.id(), error = %e, "outbound contact record not saved");
        }
    }

    async fn wait(&mut self, deadline: Option<Instant>) -> Waited {
        if self.gone {
            return Waited::Gone;
        }
        let ev = match deadline {
            Some(d) => match tokio::time::timeout_at(d, self.events.recv()).await {
                Ok(ev) => ev,
                Err(_) => return Waited::Timeout,
            },
            None => self.events.recv().await,
        };
        match ev {
            None | Some(Event::Hangup { .. }) => {
                self.gone = true;
                Waited::Gone
            }
            Some(ev) => Waited::Event(ev),
        }
    }

    /// Waits for the end of the call (taking ACD stages meanwhile), then closes the record.
    async fn finish(&mut self, interp: &Interpreter) {
        while !self.gone {
            tokio::select! {
                ev = self.events.recv() => if matches!(ev, None | Some(Event::Hangup { .. })) {
                    self.gone = true;
                },
                Some(n) = self.notes.recv() => {
                    self.push(n);
                    self.save(interp).await;
                }
            }
        }
        if self.in_acd {
            let _ = self
                .rt
                .shared
                .acd
                .send(Cmd::CustomerGone { contact: self.id() });
            let until = Instant::now() + Duration::from_millis(500);
            while let Ok(Some(n)) = tokio::time::timeout_at(until, self.notes.recv()).await {
                let last = n.stage == "ended";
                self.push(n);
                if last {
                    break;
                }
            }
        }
        while let Ok(n) = self.notes.try_recv() {
            self.push(n);
        }
        if !self.stages.iter().any(|s| s.stage == "ended") {
            self.stage("ended", "");
        }
        let mut rec = self.record(interp);
        rec.ended_at_ms = Some(self.now());
        let sh = &self.rt.shared;
        if let Err(e) =
            store::save_contact_on(&sh.db, Some(&sh.cfg.node), &rec, Some(&self.flow)).await
        {
            tracing::error!(contact = %self.id(), error = %e, "outbound contact record not closed");
        }
        self.base.ended_at_ms = rec.ended_at_ms;
    }

    async fn carry_out(&mut self, e: Effect) {
        match e {
            Effect::Disconnect => {
                self.stage("disconnect", "");
                let _ = self.ctl.hangup().await;
            }
            Effect::SetRecording { .. } => {
                self.stage("recording_unsupported", "outbound flow");
            }
            Effect::InvokeWebhook {
                function,
                payload,
                timeout_ms,
                ..
            } => {
                let sh = self.rt.shared.clone();
                tokio::spawn(async move {
                    let r = crate::webhook::invoke(
                        &sh.http,
                        &sh.cfg.webhooks,
                        &function,
                        &payload,
                        timeout_ms,
                    )
                    .await;
                    tracing::debug!(?r, function, "webhook (no wait)");
                });
            }
            other => tracing::warn!(effect = ?other, "unexpected effect without wait"),
        }
    }

    /// Carries out an awaited effect: the inputs for the interpreter, or (a flow transfer) the
    /// effects of the next flow.
    async fn perform(
        &mut self,
        e: Effect,
        interp: &mut Interpreter,
    ) -> Result<Vec<Input>, Vec<Effect>> {
        let unsupported = |d: &mut Self, what: &str| d.stage("unsupported", what);
        Ok(vec![match e {
            Effect::PlayPrompt { prompt, voice } => self.play(&prompt, voice.as_deref()).await,
            Effect::CollectDigits {
                prompt,
                voice,
                max_digits,
                timeout_ms,
                terminator,
            } => {
                self.collect(
                    &prompt,
                    voice.as_deref(),
                    max_digits,
                    timeout_ms,
                    terminator,
                )
                .await
            }
            Effect::InvokeWebhook {
                function,
                payload,
                timeout_ms,
                ..
            } => {
                let sh = self.rt.shared.clone();
                let call = crate::webhook::invoke(
                    &sh.http,
                    &sh.cfg.webhooks,
                    &function,
                    &payload,
                    timeout_ms,
                );
                tokio::pin!(call);
                loop {
                    tokio::select! {
                        r = &mut call => {
                            self.stage("webhook", &function);
                            break Input::WebhookResult(r);
                        }
                        ev = self.events.recv() => if matches!(ev, None | Some(Event::Hangup { .. })) {
                            self.gone = true;
                            break Input::Hangup;
                        },
                    }
                }
            }
            Effect::CheckHours { hours_id, queue } => {
                let now = self.now();
                let sh = self.rt.shared.clone();
                let open = match sh
                    .cfg
                    .hours
                    .check(hours_id.as_deref(), queue.as_deref(), now)
                {
                    Some(open) => Some(open),
                    None => match &hours_id {
                        Some(id) => store::load_hours(&sh.db, id)
                            .await
                            .ok()
                            .map(|h| h.is_open_ms(now)),
                        None => None,
                    },
                };
                match open {
                    Some(open) => Input::HoursChecked { open },
                    None => Input::HoursUnknown,
                }
            }
            Effect::EnqueueContact {
                queue,
                priority,
                time_adjustment_s,
                criteria,
            } => {
                let mut req = ContactRequest::new(&self.id(), &queue);
                if let Some(p) = priority {
                    req.priority = p;
                }
                req.time_adjustment_s = time_adjustment_s.unwrap_or(0);
                req.criteria = criteria;
                let (reply, rx) = oneshot::channel();
                let cmd = Cmd::Enqueue {
                    req,
                    call: self.ctl.clone(),
                    attributes: interp.record().attributes.clone(),
                    notes: self.notes_tx.clone(),
                    reply,
                };
                let r = if self.rt.shared.acd.send(cmd).is_ok() {
                    rx.await.unwrap_or(QueueResult::Error)
                } else {
                    QueueResult::Error
                };
                self.in_acd = r == QueueResult::Queued;
                while let Ok(n) = self.notes.try_recv() {
                    self.push(n);
                }
                Input::QueueResult(r)
            }
            Effect::TransferToFlow { flow } => {
                match store::load_flow(&self.rt.shared.db, &flow, None)
                    .await
                    .ok()
                    .and_then(|f| f.compile().ok())
                {
                    Some(compiled) => {
                        self.stage("flow", &flow);
                        return Err(interp.continue_in(compiled, self.now()));
                    }
                    None => Input::FlowNotFound,
                }
            }
            Effect::TransferToNumber { number, .. } => {
                unsupported(self, &format!("transfer to {number}"));
                Input::TransferResult(TransferResult::Failed)
            }
            Effect::TransferToLegacy { pool, .. } => {
                unsupported(self, &format!("transfer to legacy pool {pool}"));
                Input::TransferResult(TransferResult::Failed)
            }
            Effect::ScheduleCallback { .. } => {
                unsupported(self, "callback");
                Input::CallbackResult { ok: false }
            }
            other => {
                tracing::error!(effect = ?other, "effect not awaited");
                Input::Hangup
            }
        }])
    }

    async fn play(&mut self, spec: &PromptSpec, voice: Option<&str>) -> Input {
        let prompt = match self.rt.shared.prompts.get(spec, voice).await {
            Ok(p) => p,
            Err(e) => {
                self.stage("prompt_failed", &e);
                return Input::PromptFailed;
            }
        };
        if self.ctl.play_prompt(&prompt).await.is_err() {
            return if self.gone {
                Input::Hangup
            } else {
                Input::PromptFailed
            };
        }
        let deadline = Instant::now() + Duration::from_millis(prompt.len() as u64 / 8 + 5_000);
        loop {
            match self.wait(Some(deadline)).await {
                Waited::Event(Event::PlaybackFinished) | Waited::Timeout => {
                    return Input::PromptFinished;
                }
                Waited::Event(Event::Dtmf { digit, .. }) => self.typeahead.push_back(digit),
                Waited::Event(_) => {}
                Waited::Gone => return Input::Hangup,
            }
        }
    }

    async fn collect(
        &mut self,
        spec: &PromptSpec,
        voice: Option<&str>,
        max_digits: u32,
        timeout_ms: i64,
        terminator: Option<char>,
    ) -> Input {
        let timeout = Duration::from_millis(timeout_ms.clamp(100, 600_000) as u64);
        let mut playing = match self.rt.shared.prompts.get(spec, voice).await {
            Ok(p) => self.ctl.play_prompt(&p).await.is_ok(),
            Err(e) => {
                self.stage("prompt_failed", &e);
                false
            }
        };
        let mut digits = String::new();
        let mut deadline = Instant::now()
            + if playing {
                Duration::from_secs(300)
            } else {
                timeout
            };
        loop {
            let waited = match self.typeahead.pop_front() {
                Some(digit) => Waited::Event(Event::Dtmf {
                    digit,
                    via: telephony::control::DtmfVia::Rfc4733,
                }),
                None => self.wait(Some(deadline)).await,
            };
            match waited {
                Waited::Gone => return Input::Hangup,
                Waited::Timeout => {
                    return if digits.is_empty() {
                        Input::InputTimeout
                    } else {
                        Input::DigitsCollected(digits)
                    };
                }
                Waited::Event(Event::PlaybackFinished) => {
                    playing = false;
                    deadline = Instant::now() + timeout;
                }
                Waited::Event(Event::Dtmf { digit, .. }) => {
                    if playing {
                        let _ = self.ctl.stop_playback().await;
                        playing = false;
                    }
                    self.stage("dtmf", &digit.to_string());
                    if Some(digit) == terminator {
                        return Input::DigitsCollected(digits);
                    }
                    digits.push(digit);
                    if digits.chars().count() as u32 >= max_digits.max(1) {
                        return Input::DigitsCollected(digits);
                    }
                    deadline = Instant::now() + timeout;
                }
                Waited::Event(_) => {}
            }
        }
    }
}
