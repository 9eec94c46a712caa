//! One contact on a real call: the tokio driver of the sans-IO interpreter. It routes the call
//! (migration router, bridge arrival, number → flow), answers, feeds the interpreter the call's
//! events and the results of each effect (prompt played, digits, webhook, hours, queue,
//! transfers, callback, recording), follows the contact through the queue and the agent
//! (stages sent by the ACD task) and keeps the contact record in the store from the first
//! moment to the final one. A record left open by a crash is closed by [`close_interrupted`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use foundation::Db;
use serde_json::Value;
use telephony::control::{Call, CallControl, CallInfo, Event, OnPeerHangup};
use telephony::media::recorder::RecordingLayout;
use telephony::media::wav::WavEncoding;
use telephony::sip::call::Originate;
use telephony::sip::outcome::Outcome;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::acd::ContactRequest;
use crate::contact::{ContactInfo, ContactRecord, FlowOutcome, Stage};
use crate::interpreter::{Effect, Input, Interpreter, QueueResult, TransferResult};
use crate::store::{self, StoredFlow};

use super::Shared;
use super::acd_task::Cmd;

/// Contacts whose driver runs.
pub static LIVE: AtomicUsize = AtomicUsize::new(0);

struct LiveGuard;
impl Drop for LiveGuard {
    fn drop(&mut self) {
        LIVE.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A stage the ACD task reports for a contact (queued, offered, connected...).
pub(crate) type Note = Stage;

/// What waiting on the call gave.
enum Waited {
    Event(Event),
    Timeout,
    /// The caller hung up (or the call is gone).
    Gone,
}

/// What carrying out an awaited effect gave the interpreter.
enum Next {
    Inputs(Vec<Input>),
    Effects(Vec<Effect>),
}

struct Contact {
    sh: Arc<Shared>,
    info: CallInfo,
    ctl: CallControl,
    events: mpsc::UnboundedReceiver<Event>,
    notes_tx: mpsc::UnboundedSender<Note>,
    notes: mpsc::UnboundedReceiver<Note>,
    /// The record before the flow starts (and for contacts that never reach one).
    base: ContactRecord,
    stages: Vec<Stage>,
    flow: Option<StoredFlow>,
    gone: bool,
    in_acd: bool,
    recording: bool,
    ended_at: Option<i64>,
    /// Digits pressed while no input was being collected (type-ahead for the next menu).
    typeahead: Vec<(char, telephony::control::DtmfVia)>,
}

/// Drives one inbound call from arrival to its final record.
pub(crate) async fn run(sh: Arc<Shared>, call: Call) {
    let Some(call) = super::handoff::take(&sh, call).await else {
        return;
    };
    LIVE.fetch_add(1, Ordering::Relaxed);
    let _live = LiveGuard;
    let (info, ctl, events) = call.split();
    let (notes_tx, notes) = mpsc::unbounded_channel();
    let now = sh.clock.now_ms();
    let contact_id = telephony::cdr::call_ref(info.id);
    let dialed = bridge::calls::uri_user(&info.request_uri)
        .or_else(|| bridge::calls::uri_user(&info.to))
        .unwrap_or_default();
    let caller = bridge::calls::uri_user(&info.from).unwrap_or_default();
    let base = ContactRecord::new(
        ContactInfo {
            contact_id,
            customer_address: caller,
            system_address: dialed,
            channel: "VOICE".into(),
            attributes: BTreeMap::new(),
        },
        now,
    );
    let mut c = Contact {
        sh,
        info,
        ctl,
        events,
        notes_tx,
        notes,
        base,
        stages: Vec::new(),
        flow: None,
        gone: false,
        in_acd: false,
        recording: false,
        ended_at: None,
        typeahead: Vec::new(),
    };
    c.stage("arrived", &c.base.contact.system_address.clone());
    c.drive().await;
}

impl Contact {
    fn now(&self) -> i64 {
        self.sh.clock.now_ms()
    }

    fn id(&self) -> String {
        self.base.contact.contact_id.clone()
    }

    fn stage(&mut self, stage: &str, detail: &str) {
        let at = self.now();
        self.push_stage(Stage {
            at_ms: at,
            stage: stage.into(),
            detail: detail.into(),
        });
    }

    /// Adds a stage in time order (the ACD task's stages can arrive after later local ones).
    fn push_stage(&mut self, s: Stage) {
        let at = self
            .stages
            .iter()
            .rposition(|x| x.at_ms <= s.at_ms)
            .map_or(0, |i| i + 1);
        self.stages.insert(at, s);
    }

    /// The record as it stands (the interpreter's part, our stages, the contact's end).
    fn record(&self, interp: Option<&Interpreter>) -> ContactRecord {
        let mut r = match interp {
            Some(i) if i.record().started_at_ms != 0 => i.record().clone(),
            _ => self.base.clone(),
        };
        r.started_at_ms = self.base.started_at_ms;
        r.stages = self.stages.clone();
        r.ended_at_ms = self.ended_at;
        r
    }

    async fn save(&self, interp: Option<&Interpreter>) {
        if let Err(e) = store::save_contact_on(
            &self.sh.db,
            Some(&self.sh.cfg.node),
            &self.record(interp),
            self.flow.as_ref(),
        )
        .await
        {
            tracing::error!(contact = %self.id(), error = %e, "contact record not saved");
        }
    }

    async fn drive(&mut self) {
        self.save(None).await;
        let dialed = self.base.contact.system_address.clone();
        let caller = self.base.contact.customer_address.clone();
        let id = self.id();
        // 1. The migration router: local flow, the number's own mapping, or straight to legacy.
        let facts = bridge::router::CallFacts {
            dialed: &dialed,
            caller: Some(&caller),
            call_id: &id,
            ..Default::default()
        };
        let decision = match bridge::router::route(&self.sh.db, &facts).await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(contact = %id, error = %e, "migration router unavailable; using the number's flow");
                bridge::router::Decision::Default
            }
        };
        // 2. A call from the legacy platform picks up its data (consumed; unknown/expired audited).
        match bridge::calls::on_arrival(
            &self.sh.db,
            self.sh.clock.as_ref(),
            &id,
            &dialed,
            Some(&caller),
        )
        .await
        {
            Ok(Some(a)) => {
                let attrs = &mut self.base.contact.attributes;
                attrs.insert("bridge_result".into(), a.result.clone());
                attrs.insert("bridge_pool".into(), a.pool.clone());
                if let Some(l) = &a.lease_id {
                    attrs.insert("bridge_lease_id".into(), l.clone());
                }
                if let Some(Value::Object(data)) = &a.data {
                    for (k, v) in data {
                        let v = match v {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        };
                        attrs.insert(k.clone(), v);
                    }
                }
                self.base.attributes = self.base.contact.attributes.clone();
                self.stage("bridge_arrival", &a.result);
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(contact = %id, error = %e, "bridge lookup failed; routing without data")
            }
        }
        // 3. The flow.
        let flow = match &decision {
            bridge::router::Decision::Legacy { target } => {
                let target = target.clone();
                return self.route_to_legacy(&target).await;
            }
            bridge::router::Decision::Local { flow } => {
                store::load_flow(&self.sh.db, flow, None).await.map(Some)
            }
            bridge::router::Decision::Default => store::flow_for_number(&self.sh.db, &dialed).await,
        };
        let compiled = match flow {
            Ok(Some(f)) => match f.compile() {
                Ok(c) => {
                    self.flow = Some(f);
                    c
                }
                Err(e) => {
                    return self
                        .reject(&format!("the number's flow does not compile: {e}"))
                        .await;
                }
            },
            Ok(None) => return self.reject(&format!("no flow for number {dialed:?}")).await,
            Err(e) => return self.reject(&format!("flow lookup failed: {e}")).await,
        };
        if !self.answer().await {
            return self.finish(None).await;
        }
        let seed = self.info.id.0;
        let mut interp = Interpreter::new(compiled, seed);
        let mut effects = interp.step(Input::Started(self.base.contact.clone()), self.now());
        self.save(Some(&interp)).await;
        let outcome = loop {
            let mut awaited = None;
            let mut ended = None;
            for e in effects.drain(..) {
                match e {
                    Effect::Ended(o) => ended = Some(o),
                    e if e.is_awaited() => awaited = Some(e),
                    e => self.carry_out(e, &interp).await,
                }
            }
            if let Some(o) = ended {
                break o;
            }
            let Some(e) = awaited else {
                tracing::error!(contact = %id, "the flow waits on nothing; ending the contact");
                break FlowOutcome::Error {
                    action: String::new(),
                    reason: "flow stalled".into(),
                };
            };
            effects = match self.perform(e, &mut interp).await {
                Next::Effects(v) => v,
                Next::Inputs(inputs) => {
                    let mut out = Vec::new();
                    for i in inputs {
                        out.extend(interp.step(i, self.now()));
                    }
                    out
                }
            };
            self.save(Some(&interp)).await;
        };
        let detail = serde_json::to_value(&outcome)
            .ok()
            .and_then(|v| v.get("outcome").and_then(|o| o.as_str()).map(str::to_owned))
            .unwrap_or_default();
        self.stage("flow_ended", &detail);
        self.save(Some(&interp)).await;
        match outcome {
            FlowOutcome::Queued { .. }
            | FlowOutcome::TransferredToNumber { .. }
            | FlowOutcome::TransferredToLegacy { .. } => {}
            _ => {
                if !self.gone {
                    let _ = self.ctl.hangup().await;
                }
            }
        }
        self.finish(Some(&interp)).await;
    }

    /// Answers (when the SIP layer does not auto-answer) and waits for the media.
    async fn answer(&mut self) -> bool {
        let _ = self.ctl.answer();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.wait(Some(deadline)).await {
                Waited::Event(Event::Answered { .. }) => {
                    self.stage("answered", "");
                    return true;
                }
                Waited::Event(Event::Dtmf { digit, via }) => self.typeahead.push((digit, via)),
                Waited::Event(_) => {}
                Waited::Timeout => {
                    tracing::warn!(contact = %self.id(), "call not answered within 10 s");
                    let _ = self.ctl.hangup().await;
                    return false;
                }
                Waited::Gone => return false,
            }
        }
    }

    /// A number with no usable flow: refused with the configured code, recorded.
    async fn reject(&mut self, reason: &str) {
        let code = self.sh.cfg.unknown_number_code;
        tracing::info!(contact = %self.id(), reason, code, "inbound call refused");
        if self.ctl.reject(code).is_err() {
            let _ = self.ctl.hangup().await;
        }
        self.stage("rejected", reason);
        self.base.outcome = Some(FlowOutcome::Rejected {
            code,
            reason: reason.into(),
        });
        self.finish(None).await;
    }

    /// The router sent the number straight to the legacy platform: a B2BUA leg to `target`.
    async fn route_to_legacy(&mut self, target: &str) {
        let Some(legacy) = self.sh.cfg.legacy.clone() else {
            return self
                .reject("routed to the legacy platform, but no legacy trunk is configured")
                .await;
        };
        if !self.answer().await {
            return self.finish(None).await;
        }
        let o = Originate {
            to_user: target.to_owned(),
            from_user: self.base.contact.customer_address.clone(),
            trunks: vec![legacy.trunk.clone()],
            ring_timeout: legacy.ring_timeout,
            ..Default::default()
        };
        let r = self.connect_leg(o, OnPeerHangup::HangUp).await;
        self.stage("routed_to_legacy", &format!("{target}: {r:?}"));
        self.base.outcome = Some(match r {
            TransferResult::Connected => FlowOutcome::RoutedToLegacy {
                target: target.into(),
            },
            other => FlowOutcome::Error {
                action: "migration-router".into(),
                reason: format!("legacy leg: {other:?}"),
            },
        });
        if r != TransferResult::Connected && !self.gone {
            let _ = self.ctl.hangup().await;
        }
        self.finish(None).await;
    }

    /// Waits for the end of the call (taking ACD stages meanwhile), then writes the final record.
    async fn finish(&mut self, interp: Option<&Interpreter>) {
        while !self.gone {
            tokio::select! {
                ev = self.events.recv() => match ev {
                    None | Some(Event::Hangup { .. }) => self.gone = true,
                    Some(_) => {}
                },
                Some(n) = self.notes.recv() => {
                    self.push_stage(n);
                    self.save(interp).await;
                }
            }
        }
        if self.in_acd {
            let _ = self.sh.acd.send(Cmd::CustomerGone { contact: self.id() });
            // The ACD's last word on the contact (abandoned, ended with agent) arrives shortly.
            let until = Instant::now() + Duration::from_millis(500);
            while let Ok(Some(n)) = tokio::time::timeout_at(until, self.notes.recv()).await {
                let last = n.stage == "ended";
                self.push_stage(n);
                if last {
                    break;
                }
            }
        }
        if self.recording {
            let _ = self.ctl.stop_recording().await;
        }
        self.ended_at = Some(self.now());
        if !self.stages.iter().any(|s| s.stage == "ended") {
            self.stage("ended", "");
        }
        self.save(interp).await;
    }

    /// Waits for the next call event (or `deadline`).
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

    /// Effects carried out without waiting.
    async fn carry_out(&mut self, e: Effect, interp: &Interpreter) {
        match e {
            Effect::Disconnect => {
                self.stage("disconnect", "");
                let _ = self.ctl.hangup().await;
            }
            Effect::SetRecording { agent, customer } => {
                let on = agent || customer;
                if on && !self.recording {
                    let dir = &self.sh.cfg.recording_dir;
                    let path = dir.join(format!("{}.wav", self.id()));
                    let r = match std::fs::create_dir_all(dir) {
                        Ok(()) => self
                            .ctl
                            .record_to(path.clone(), RecordingLayout::Stereo, WavEncoding::Ulaw)
                            .await
                            .map_err(|e| e.to_string()),
                        Err(e) => Err(e.to_string()),
                    };
                    match r {
                        Ok(()) => {
                            self.recording = true;
                            self.stage("recording_on", &path.display().to_string());
                        }
                        Err(e) => self.stage("recording_failed", &e),
                    }
                } else if !on && self.recording {
                    self.recording = false;
                    let _ = self.ctl.stop_recording().await;
                    self.stage("recording_off", "");
                }
            }
            Effect::InvokeWebhook {
                function,
                payload,
                timeout_ms,
                ..
            } => {
                // Fire and forget: the flow does not wait for the result.
                let sh = self.sh.clone();
                let _ = interp;
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

    /// Carries out an awaited effect and gives what the interpreter must hear.
    async fn perform(&mut self, e: Effect, interp: &mut Interpreter) -> Next {
        let one = |i: Input| Next::Inputs(vec![i]);
        match e {
            Effect::PlayPrompt { prompt, voice } => one(self.play(&prompt, voice.as_deref()).await),
            Effect::CollectDigits {
                prompt,
                voice,
                max_digits,
                timeout_ms,
                terminator,
            } => one(self
                .collect(
                    &prompt,
                    voice.as_deref(),
                    max_digits,
                    timeout_ms,
                    terminator,
                )
                .await),
            Effect::InvokeWebhook {
                function,
                payload,
                timeout_ms,
                ..
            } => {
                let sh = self.sh.clone();
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
                            self.stage("webhook", &format!("{function}: {}", match &r {
                                crate::interpreter::WebhookResult::Ok(_) => "ok".to_string(),
                                crate::interpreter::WebhookResult::Timeout => "timeout".to_string(),
                                crate::interpreter::WebhookResult::Error(e) => format!("error: {e}"),
                            }));
                            return one(Input::WebhookResult(r));
                        }
                        ev = self.events.recv() => match ev {
                            None | Some(Event::Hangup { .. }) => { self.gone = true; return one(Input::Hangup); }
                            Some(_) => {}
                        }
                    }
                }
            }
            Effect::CheckHours { hours_id, queue } => {
                let now = self.now();
                let open = match self
                    .sh
                    .cfg
                    .hours
                    .check(hours_id.as_deref(), queue.as_deref(), now)
                {
                    Some(open) => Some(open),
                    None => match &hours_id {
                        Some(id) => store::load_hours(&self.sh.db, id)
                            .await
                            .ok()
                            .map(|h| h.is_open_ms(now)),
                        None => None,
                    },
                };
                self.stage(
                    "hours",
                    &format!("{}: {open:?}", hours_id.or(queue).unwrap_or_default()),
                );
                one(match open {
                    Some(open) => Input::HoursChecked { open },
                    None => Input::HoursUnknown,
                })
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
                let r = if self.sh.acd.send(cmd).is_ok() {
                    rx.await.unwrap_or(QueueResult::Error)
                } else {
                    QueueResult::Error
                };
                if r == QueueResult::Queued {
                    self.in_acd = true;
                }
                // Stages the ACD sent with its answer (queued, offered...).
                while let Ok(n) = self.notes.try_recv() {
                    self.push_stage(n);
                }
                if r == QueueResult::Queued {
                    self.hold_audio().await;
                }
                one(Input::QueueResult(r))
            }
            Effect::TransferToNumber {
                number,
                timeout_s,
                dtmf,
                caller_id,
                continue_flow,
            } => {
                if self.sh.cfg.trunks.is_empty() {
                    self.stage("transfer_failed", "no trunk configured");
                    return one(Input::TransferResult(TransferResult::Failed));
                }
                let o = Originate {
                    to_user: number.clone(),
                    from_user: caller_id
                        .unwrap_or_else(|| self.base.contact.customer_address.clone()),
                    trunks: self.sh.cfg.trunks.clone(),
                    ring_timeout: Duration::from_secs(timeout_s.clamp(1, 600) as u64),
                    ..Default::default()
                };
                let policy = if continue_flow {
                    OnPeerHangup::Stay
                } else {
                    OnPeerHangup::HangUp
                };
                let (r, leg) = self.connect_leg_keep(o, policy).await;
                self.stage("transfer", &format!("{number}: {r:?}"));
                if self.gone {
                    return one(Input::Hangup);
                }
                if r != TransferResult::Connected {
                    return one(Input::TransferResult(r));
                }
                let leg = leg.expect("a connected transfer has a leg");
                if let Some(d) = dtmf.filter(|d| !d.is_empty()) {
                    let _ = leg.0.send_dtmf(&d).await;
                }
                if !continue_flow {
                    return one(Input::TransferResult(TransferResult::Connected));
                }
                // The third party talks with the caller; the flow resumes when that leg ends.
                let (ctl, mut events) = leg;
                loop {
                    tokio::select! {
                        ev = events.recv() => if matches!(ev, None | Some(Event::Hangup { .. })) { break },
                        ev = self.events.recv() => if matches!(ev, None | Some(Event::Hangup { .. })) {
                            self.gone = true;
                            let _ = ctl.hangup().await;
                            return one(Input::Hangup);
                        },
                    }
                }
                self.stage("transfer_ended", &number);
                Next::Inputs(vec![
                    Input::TransferResult(TransferResult::Connected),
                    Input::TransferResult(TransferResult::Ended),
                ])
            }
            Effect::TransferToLegacy { pool, data } => one(Input::TransferResult(
                self.transfer_to_legacy(&pool, data).await,
            )),
            Effect::ScheduleCallback {
                number,
                queue,
                delay_s,
                attempts,
                retry_delay_s,
            } => {
                let r = super::callbacks::schedule(
                    &self.sh,
                    super::callbacks::Request {
                        contact_id: &self.id(),
                        number: &number,
                        queue: &queue,
                        arrived_ms: self.base.started_at_ms,
                        delay_s,
                        attempts,
                        retry_delay_s,
                    },
                )
                .await;
                if let Err(e) = &r {
                    tracing::error!(contact = %self.id(), error = %e, "callback not stored");
                }
                self.stage("callback_scheduled", &format!("{number} via {queue}"));
                one(Input::CallbackResult { ok: r.is_ok() })
            }
            Effect::TransferToFlow { flow } => match store::load_flow(&self.sh.db, &flow, None)
                .await
                .ok()
                .and_then(|f| f.compile().ok())
            {
                Some(compiled) => {
                    self.stage("flow", &flow);
                    Next::Effects(interp.continue_in(compiled, self.now()))
                }
                None => one(Input::FlowNotFound),
            },
            other => {
                tracing::error!(effect = ?other, "effect not awaited");
                one(Input::Hangup)
            }
        }
    }

    /// Starts the hold audio for a queued caller not yet connected (the ACD stops it before it
    /// switches the media to an agent).
    async fn hold_audio(&mut self) {
        let Some(spec) = self.sh.cfg.hold_audio.clone() else {
            return;
        };
        if self.stages.iter().any(|s| s.stage == "connected") {
            return;
        }
        match self.sh.prompts.get(&spec, None).await {
            Ok(p) => {
                // Played by the ACD task, only while the caller still waits: a nailed-up agent
                // may be connected already (a media switch right after the ACD's answer).
                let _ = self
                    .sh
                    .acd
                    .send(Cmd::Control(super::acd_task::controls::Op::HoldAudio {
                        contact: self.id(),
                        audio: Box::new(p.player_looped(u32::MAX)),
                    }));
            }
            Err(e) => tracing::warn!(contact = %self.id(), error = %e, "hold audio unavailable"),
        }
    }

    async fn play(&mut self, spec: &crate::interpreter::PromptSpec, voice: Option<&str>) -> Input {
        let prompt = match self.sh.prompts.get(spec, voice).await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(contact = %self.id(), error = %e, "prompt unavailable");
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
        // A prompt never plays longer than its audio; the margin covers a stalled media task.
        let deadline = Instant::now() + Duration::from_millis(prompt.len() as u64 / 8 + 5_000);
        loop {
            match self.wait(Some(deadline)).await {
                Waited::Event(Event::PlaybackFinished) => return Input::PromptFinished,
                Waited::Event(Event::Dtmf { digit, via }) => self.typeahead.push((digit, via)),
                Waited::Event(_) => {}
                Waited::Timeout => return Input::PromptFinished,
                Waited::Gone => return Input::Hangup,
            }
        }
    }

    async fn collect(
        &mut self,
        spec: &crate::interpreter::PromptSpec,
        voice: Option<&str>,
        max_digits: u32,
        timeout_ms: i64,
        terminator: Option<char>,
    ) -> Input {
        let timeout = Duration::from_millis(timeout_ms.clamp(100, 600_000) as u64);
        let mut playing = match self.sh.prompts.get(spec, voice).await {
            Ok(p) => self.ctl.play_prompt(&p).await.is_ok(),
            Err(e) => {
                tracing::warn!(contact = %self.id(), error = %e, "menu prompt unavailable; collecting digits anyway");
                false
            }
        };
        let mut digits = String::new();
        // While the prompt plays there is no timeout; it starts when the prompt ends and again
        // after each digit. The margin covers a prompt whose end never arrives.
        let mut deadline = if playing {
            Instant::now() + Duration::from_secs(300)
        } else {
            Instant::now() + timeout
        };
        let mut early: std::collections::VecDeque<_> = std::mem::take(&mut self.typeahead).into();
        loop {
            let waited = match early.pop_front() {
                Some((digit, via)) => Waited::Event(Event::Dtmf { digit, via }),
                None => self.wait(Some(deadline)).await,
            };
            match waited {
                Waited::Gone => return Input::Hangup,
                Waited::Timeout => {
                    self.stage("input_timeout", &digits);
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
                Waited::Event(Event::Dtmf { digit, via }) => {
                    if playing {
                        // Barge-in.
                        let _ = self.ctl.stop_playback().await;
                        playing = false;
                    }
                    self.stage(
                        "dtmf",
                        &format!(
                            "{digit} {}",
                            serde_json::to_value(via)
                                .ok()
                                .and_then(|v| v.as_str().map(str::to_owned))
                                .unwrap_or_default()
                        ),
                    );
                    if Some(digit) == terminator {
                        self.typeahead.extend(early);
                        return Input::DigitsCollected(digits);
                    }
                    digits.push(digit);
                    if digits.chars().count() as u32 >= max_digits.max(1) {
                        self.typeahead.extend(early);
                        return Input::DigitsCollected(digits);
                    }
                    deadline = Instant::now() + timeout;
                }
                Waited::Event(_) => {}
            }
        }
    }

    /// Places a leg, bridges it with the caller when it answers; the leg is hung up otherwise.
    async fn connect_leg(&mut self, o: Originate, policy: OnPeerHangup) -> TransferResult {
        self.connect_leg_keep(o, policy).await.0
    }

    async fn connect_leg_keep(
        &mut self,
        o: Originate,
        policy: OnPeerHangup,
    ) -> (
        TransferResult,
        Option<(CallControl, mpsc::UnboundedReceiver<Event>)>,
    ) {
        let leg = self.sh.calls.originate(o);
        let (_, ctl, mut events) = leg.split();
        loop {
            tokio::select! {
                ev = events.recv() => match ev {
                    Some(Event::Answered { .. }) => break,
                    None => return (TransferResult::Failed, None),
                    Some(Event::Hangup { outcome, .. }) => {
                        let r = if outcome == Outcome::NoAnswer { TransferResult::Timeout } else { TransferResult::Failed };
                        return (r, None);
                    }
                    Some(_) => {}
                },
                ev = self.events.recv() => if matches!(ev, None | Some(Event::Hangup { .. })) {
                    self.gone = true;
                    let _ = ctl.hangup().await;
                    return (TransferResult::Failed, None);
                },
            }
        }
        if let Err(e) = self.ctl.bridge(&ctl, policy).await {
            tracing::warn!(contact = %self.id(), error = %e, "bridge to the transfer leg failed");
            let _ = ctl.hangup().await;
            return (TransferResult::Failed, None);
        }
        (TransferResult::Connected, Some((ctl, events)))
    }

    async fn transfer_to_legacy(
        &mut self,
        pool: &str,
        data: BTreeMap<String, String>,
    ) -> TransferResult {
        let Some(legacy) = self.sh.cfg.legacy.clone() else {
            self.stage("legacy_transfer_failed", "no legacy trunk configured");
            return TransferResult::Failed;
        };
        let data = serde_json::to_value(&data).unwrap_or(Value::Null);
        let ani = Some(self.base.contact.customer_address.clone())
            .filter(|a| a.chars().any(|c| c.is_ascii_digit()));
        let (db, clock) = (self.sh.db.clone(), self.sh.clock.clone());
        if legacy.mode == bridge::calls::LegacyTransferMode::Refer {
            let t = match bridge::calls::transfer_to_legacy(
                &db,
                clock.as_ref(),
                self.sh.calls.sip(),
                self.info.id,
                ani.as_deref(),
                pool,
                data,
                &legacy,
            )
            .await
            {
                Ok(t) => t,
                Err(e) => return self.legacy_lease_failed(e),
            };
            self.stage("legacy_transfer", &format!("REFER to {}", t.lease.dnis));
            loop {
                match self.wait(Some(Instant::now() + legacy.ring_timeout)).await {
                    Waited::Event(Event::TransferProgress { code })
                        if (200..300).contains(&code) =>
                    {
                        return TransferResult::Connected;
                    }
                    Waited::Event(Event::TransferProgress { code }) if code >= 300 => break,
                    Waited::Event(_) => {}
                    // The caller's side took the transfer and left.
                    Waited::Gone => return TransferResult::Connected,
                    Waited::Timeout => break,
                }
            }
            let _ = bridge::calls::abandon_transfer(&db, clock.as_ref(), &t).await;
            return TransferResult::Failed;
        }
        let req = bridge::lease::LeaseRequest {
            pool: pool.into(),
            data,
            ani: ani.clone(),
            ttl_s: None,
            idempotency_key: Some(self.id()),
        };
        let lease = match bridge::lease::lease(&db, clock.as_ref(), "inbound", None, &req).await {
            Ok(l) => l,
            Err(e) => return self.legacy_lease_failed(e),
        };
        let headers = bridge::calls::carriage_headers(&legacy.carry, &lease.lease_id, &req.data);
        let o = Originate {
            to_user: lease.dnis.clone(),
            from_user: ani.unwrap_or_else(|| "dialbridge".into()),
            trunks: vec![legacy.trunk.clone()],
            ring_timeout: legacy.ring_timeout,
            headers,
            ..Default::default()
        };
        let r = self.connect_leg(o, OnPeerHangup::HangUp).await;
        self.stage(
            "legacy_transfer",
            &format!("{} ({}): {r:?}", lease.dnis, lease.lease_id),
        );
        if r != TransferResult::Connected {
            let t = bridge::calls::LegacyTransfer { lease, leg: None };
            let _ = bridge::calls::abandon_transfer(&db, clock.as_ref(), &t).await;
        }
        r
    }

    fn legacy_lease_failed(&mut self, e: bridge::BridgeError) -> TransferResult {
        self.stage("legacy_transfer_failed", &e.to_string());
        match e {
            bridge::BridgeError::PoolExhausted(_) => TransferResult::NoNumberAvailable,
            _ => TransferResult::Failed,
        }
    }
}

/// Closes the records of contacts a previous run left open (`ended_at` unset) as interrupted:
/// `node`'s, and those written before contacts named their node.
pub async fn close_interrupted(db: &Db, now_ms: i64, node: &str) -> anyhow::Result<usize> {
    close_open(
        db,
        now_ms,
        node,
        "SELECT contact_id, record FROM inbound_contacts WHERE ended_at IS NULL AND (node = $1 OR node IS NULL)",
    )
    .await
}

/// Closes the open contact records of `node`, a node whose heartbeat stopped, as interrupted
/// (done by the nodes still running: only rows that name that node).
pub async fn close_interrupted_of_node(db: &Db, now_ms: i64, node: &str) -> anyhow::Result<usize> {
    close_open(
        db,
        now_ms,
        node,
        "SELECT contact_id, record FROM inbound_contacts WHERE ended_at IS NULL AND node = $1",
    )
    .await
}

/// Closes the contacts `select` (bound to `node`) finds.
async fn close_open(
    db: &Db,
    now_ms: i64,
    node: &str,
    select: &'static str,
) -> anyhow::Result<usize> {
    let rows: Vec<(String, String)> = sqlx::query_as(select)
        .bind(node)
        .fetch_all(db.pool())
        .await?;
    let n = rows.len();
    for (id, text) in rows {
        match serde_json::from_str::<ContactRecord>(&text) {
            Ok(mut rec) => {
                rec.ended_at_ms = Some(now_ms);
                rec.outcome = Some(FlowOutcome::Interrupted);
                rec.stages.push(Stage {
                    at_ms: now_ms,
                    stage: "interrupted".into(),
                    detail: "closed after the node carrying it stopped".into(),
                });
                store::save_contact(db, &rec, None).await?;
            }
            Err(e) => {
                tracing::error!(contact = %id, error = %e, "unreadable contact record; closing it as interrupted");
                let mut tx = db.begin_write().await?;
                sqlx::query("UPDATE inbound_contacts SET ended_at = $1, outcome = 'interrupted' WHERE contact_id = $2")
                    .bind(now_ms)
                    .bind(&id)
                    .execute(tx.conn())
                    .await?;
                tx.commit().await?;
            }
        }
    }
    Ok(n)
}
