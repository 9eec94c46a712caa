//! One call under control: the task that owns the call's media session and follows its SIP
//! events, and the handles the appliance holds ([`Call`] = [`CallControl`] + the event stream).
//!
//! The task creates the [`RtpSession`] on the port the SIP layer put in its SDP when the call is
//! answered (or gets early media), applies re-INVITEs, turns media events into [`Event`]s
//! through [`policy`], hangs up a call whose RTP stopped, and closes the session at hang-up.
//! Commands come from [`CallControl`] with a reply each, so a command on a call without media
//! fails visibly ([`ControlError::NoMedia`]).
//!
//! Bridging needs both sessions at once: the bridging caller borrows them from their tasks
//! ("loans", always in call-id order so two bridges cannot wait on each other), connects them
//! and hands them back.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::media::amd::AmdConfig;
use crate::media::frame::FrameSource;
use crate::media::progress::ProgressTone;
use crate::media::prompt::Prompt;
use crate::media::recorder::RecordingLayout;
use crate::media::session::{self, MediaEvent, RtpSession, SessionStats};
use crate::media::tone::{ToneGenerator, ToneSpec};
use crate::media::wav::WavEncoding;
use crate::sip::call::{CallEvent, CallId, HangupCause};
use crate::sip::driver::SipHandle;
use crate::sip::outcome::Outcome;

use super::event::{ControlError, DtmfVia, EndCause, Event};
use super::policy::{self, DtmfRoute, MediaAction, MediaPlan, MediaSettings};
use super::room::{Role, Room, Route};

/// Which way a call goes and what the INVITE said (inbound).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallInfo {
    pub id: CallId,
    pub inbound: bool,
    pub from: String,
    pub to: String,
    pub request_uri: String,
    /// The endpoint's digest username when it authenticated.
    pub user: Option<String>,
    /// Where the INVITE came from (inbound).
    pub source: Option<SocketAddr>,
}

/// What a bridged call does when its peer hangs up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnPeerHangup {
    /// Hang up too (a B2BUA call: both legs end together).
    HangUp,
    /// Stay up, unbridged (an agent's leg waiting for the next customer).
    Stay,
}

type Reply<T> = oneshot::Sender<Result<T, ControlError>>;

/// A call's media as a relay endpoint: its identity and where frames for it go.
#[derive(Clone)]
pub(crate) struct MediaPort {
    pub peer: crate::media::bridge::PeerId,
    pub input: mpsc::Sender<(crate::media::bridge::PeerId, crate::media::frame::Frame)>,
}

/// The new bridge partner handed back with a loan (none when the bridge did not happen).
type NewPartner = Option<(CallControl, OnPeerHangup)>;

/// A borrowed media session, to be handed back on `back` together with the call's new partner:
/// the task records the partner in the same step as it gets its session back, so a departing old
/// partner's `PeerLeft` can never undo the new connection.
pub(crate) struct Loan {
    session: RtpSession,
    back: oneshot::Sender<(RtpSession, NewPartner)>,
}

pub(crate) enum Cmd {
    Answer,
    Reject(u16),
    Hangup(Reply<()>),
    HangupBecause(HangupCause, Reply<()>),
    Hold(bool, Reply<()>),
    Play(Box<dyn FrameSource>, Reply<()>),
    StopPlayback(Reply<()>),
    SendDtmf(String, Reply<()>),
    Record(PathBuf, RecordingLayout, WavEncoding, Reply<()>),
    StopRecording(Reply<u64>),
    StartAmd(AmdConfig, Reply<()>),
    DetectProgress(Reply<()>),
    Echo(bool, Reply<()>),
    Lend(Reply<Loan>),
    Unbridge(Reply<()>),
    PeerLeft { peer: CallId, ended: bool },
    Stats(Reply<SessionStats>),
    Port(Reply<MediaPort>),
    Route(Route, Reply<()>),
}

/// Commands to one call; cheap to clone and hand around (IVR step, bridge, supervisor).
#[derive(Clone)]
pub struct CallControl {
    id: CallId,
    tx: mpsc::UnboundedSender<Cmd>,
}

impl std::fmt::Debug for CallControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CallControl({})", self.id)
    }
}

/// A call: its info, its commands and its event stream.
pub struct Call {
    info: CallInfo,
    control: CallControl,
    events: mpsc::UnboundedReceiver<Event>,
}

impl Call {
    pub fn id(&self) -> CallId {
        self.info.id
    }

    pub fn info(&self) -> &CallInfo {
        &self.info
    }

    pub fn control(&self) -> &CallControl {
        &self.control
    }

    /// The next event; `None` after [`Event::Hangup`].
    pub async fn next_event(&mut self) -> Option<Event> {
        self.events.recv().await
    }

    /// Splits the call into its commands and its event stream.
    pub fn split(self) -> (CallInfo, CallControl, mpsc::UnboundedReceiver<Event>) {
        (self.info, self.control, self.events)
    }
}

impl CallControl {
    pub fn id(&self) -> CallId {
        self.id
    }

    fn post(&self, c: Cmd) -> Result<(), ControlError> {
        self.tx.send(c).map_err(|_| ControlError::Ended)
    }

    async fn ask<T>(&self, make: impl FnOnce(Reply<T>) -> Cmd) -> Result<T, ControlError> {
        let (tx, rx) = oneshot::channel();
        self.post(make(tx))?;
        rx.await.map_err(|_| ControlError::Ended)?
    }

    /// Answers a ringing inbound call (when the SIP layer does not auto-answer).
    pub fn answer(&self) -> Result<(), ControlError> {
        self.post(Cmd::Answer)
    }

    /// Refuses a ringing inbound call.
    pub fn reject(&self, code: u16) -> Result<(), ControlError> {
        self.post(Cmd::Reject(code))
    }

    /// Ends the call in any state; [`Event::Hangup`] follows.
    pub async fn hangup(&self) -> Result<(), ControlError> {
        self.ask(Cmd::Hangup).await
    }

    /// A call-progress tone was heard ([`Event::Progress`]): when the outcome table says the tone
    /// decides the call ([`Outcome::from_tone`], a special-information tone), hangs up for that
    /// reason, so [`Event::Hangup`] and the call record carry that outcome (number disconnected)
    /// rather than no-answer; returns it. Other tones change nothing (`None`).
    pub async fn hangup_on_tone(
        &self,
        tone: ProgressTone,
    ) -> Result<Option<Outcome>, ControlError> {
        let Some(outcome) = Outcome::from_tone(tone) else {
            return Ok(None);
        };
        self.ask(|r| Cmd::HangupBecause(HangupCause::SpecialInformationTone, r))
            .await?;
        Ok(Some(outcome))
    }

    /// Puts the peer on hold (re-INVITE sendonly) or resumes; [`Event::MediaChanged`] follows.
    pub async fn hold(&self, on: bool) -> Result<(), ControlError> {
        self.ask(|r| Cmd::Hold(on, r)).await
    }

    /// Plays a loaded prompt (replacing what plays); [`Event::PlaybackFinished`] at its end.
    /// A µ-law prompt goes out bit-exact on a PCMU call.
    pub async fn play_prompt(&self, prompt: &Prompt) -> Result<(), ControlError> {
        self.play(Box::new(prompt.player())).await
    }

    /// Loads a WAV file (8 kHz mono PCM16 / µ-law / A-law) and plays it.
    pub async fn play_wav(&self, path: impl Into<PathBuf>) -> Result<(), ControlError> {
        let path = path.into();
        let prompt = tokio::task::spawn_blocking(move || Prompt::from_wav_file(&path))
            .await
            .map_err(|e| ControlError::Io(e.to_string()))?
            .map_err(|e| ControlError::Io(e.to_string()))?;
        self.play_prompt(&prompt).await
    }

    /// Plays a tone plan (ringback, busy, beep, in-band DTMF).
    pub async fn play_tone(&self, spec: ToneSpec) -> Result<(), ControlError> {
        self.play(Box::new(ToneGenerator::new(spec))).await
    }

    /// Plays any frame source.
    pub async fn play(&self, source: Box<dyn FrameSource>) -> Result<(), ControlError> {
        self.ask(|r| Cmd::Play(source, r)).await
    }

    /// Stops the prompt or tone (no `PlaybackFinished`).
    pub async fn stop_playback(&self) -> Result<(), ControlError> {
        self.ask(Cmd::StopPlayback).await
    }

    /// Sends digits: RFC 4733 when the peer negotiated telephone-event, SIP INFO otherwise.
    pub async fn send_dtmf(&self, digits: &str) -> Result<(), ControlError> {
        self.ask(|r| Cmd::SendDtmf(digits.to_string(), r)).await
    }

    /// Records both directions to a WAV file as the call goes (finished at hang-up, or by
    /// [`CallControl::stop_recording`]).
    pub async fn record_to(
        &self,
        path: impl Into<PathBuf>,
        layout: RecordingLayout,
        encoding: WavEncoding,
    ) -> Result<(), ControlError> {
        let path = path.into();
        self.ask(|r| Cmd::Record(path, layout, encoding, r)).await
    }

    /// Finishes the file recording; returns the audio bytes written.
    pub async fn stop_recording(&self) -> Result<u64, ControlError> {
        self.ask(Cmd::StopRecording).await
    }

    /// Starts answering-machine detection (verdict and beep arrive as [`Event::Amd`]).
    pub async fn start_amd(&self, config: AmdConfig) -> Result<(), ControlError> {
        self.ask(|r| Cmd::StartAmd(config, r)).await
    }

    /// Looks for call-progress tones in what the call receives ([`Event::Progress`]).
    pub async fn detect_progress_tones(&self) -> Result<(), ControlError> {
        self.ask(Cmd::DetectProgress).await
    }

    /// Sends back what the call hears (on) or stops doing so (off).
    pub async fn echo(&self, on: bool) -> Result<(), ControlError> {
        self.ask(|r| Cmd::Echo(on, r)).await
    }

    /// Media counters of the call's session.
    pub async fn media_stats(&self) -> Result<SessionStats, ControlError> {
        self.ask(Cmd::Stats).await
    }

    /// Relays media both ways between this call and `other` (PCMU↔PCMA transcoded when the legs
    /// differ); both get [`Event::Bridged`]. Bridging a call again with a third call switches its
    /// media to that one. `on_peer_hangup` says what each leg does when the other ends.
    pub async fn bridge(
        &self,
        other: &CallControl,
        on_peer_hangup: OnPeerHangup,
    ) -> Result<(), ControlError> {
        if self.id == other.id {
            return Err(ControlError::SameCall);
        }
        // Borrow in call-id order: two bridges over the same calls never wait on each other.
        let (first, second) = if self.id < other.id {
            (self, other)
        } else {
            (other, self)
        };
        let a = first.ask(Cmd::Lend).await?;
        let b = match second.ask(Cmd::Lend).await {
            Ok(b) => b,
            Err(e) => {
                let _ = a.back.send((a.session, None));
                return Err(e);
            }
        };
        session::bridge(&a.session, &b.session);
        let _ = a
            .back
            .send((a.session, Some((second.clone(), on_peer_hangup))));
        let _ = b
            .back
            .send((b.session, Some((first.clone(), on_peer_hangup))));
        Ok(())
    }

    /// The call's media as a relay endpoint (for a [`Room`]).
    pub(crate) async fn media_port(&self) -> Result<MediaPort, ControlError> {
        self.ask(Cmd::Port).await
    }

    /// Routes the call's media as a room decided (and records its membership).
    pub(crate) async fn route(&self, route: Route) -> Result<(), ControlError> {
        self.ask(|r| Cmd::Route(route, r)).await
    }

    /// Ends the bridge this call is in (both legs stop relaying; both get [`Event::Unbridged`]).
    pub async fn unbridge(&self) -> Result<(), ControlError> {
        self.ask(Cmd::Unbridge).await
    }
}

/// Per-call task state.
pub(crate) struct CallTask {
    id: CallId,
    sip: SipHandle,
    settings: MediaSettings,
    session: Option<RtpSession>,
    plan: Option<MediaPlan>,
    /// Our reason for ending the call, once we decided to.
    ending: Option<EndCause>,
    partner: Option<(CallControl, OnPeerHangup)>,
    /// The room this call is in, and its role there.
    room: Option<(Room, Role)>,
    echoing: bool,
    events: mpsc::UnboundedSender<Event>,
    live: Arc<std::sync::atomic::AtomicUsize>,
}

/// Starts the task of a call; returns the handle and the sender the dispatcher feeds SIP events to.
pub(crate) fn spawn(
    info: CallInfo,
    sip: SipHandle,
    settings: MediaSettings,
    live: Arc<std::sync::atomic::AtomicUsize>,
) -> (Call, mpsc::UnboundedSender<CallEvent>) {
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let (sip_tx, sip_rx) = mpsc::unbounded_channel();
    let (ev_tx, ev_rx) = mpsc::unbounded_channel();
    live.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let task = CallTask {
        id: info.id,
        sip,
        settings,
        session: None,
        plan: None,
        ending: None,
        partner: None,
        room: None,
        echoing: false,
        events: ev_tx,
        live,
    };
    tokio::spawn(task.run(sip_rx, cmd_rx));
    let control = CallControl {
        id: info.id,
        tx: cmd_tx,
    };
    (
        Call {
            info,
            control,
            events: ev_rx,
        },
        sip_tx,
    )
}

async fn next_media(s: &mut Option<RtpSession>) -> Option<MediaEvent> {
    match s {
        Some(s) => s.next_event().await,
        None => std::future::pending().await,
    }
}

impl CallTask {
    async fn run(
        mut self,
        mut sip_rx: mpsc::UnboundedReceiver<CallEvent>,
        mut cmd_rx: mpsc::UnboundedReceiver<Cmd>,
    ) {
        let mut commands_open = true;
        loop {
            tokio::select! {
                ev = sip_rx.recv() => match ev {
                    Some(ev) => {
                        if self.on_sip(ev).await {
                            break;
                        }
                    }
                    // The SIP layer is gone: nothing more will happen to this call.
                    None => {
                        self.finish(EndCause::Sip(crate::sip::call::HangupCause::Shutdown), None, crate::sip::outcome::Outcome::Answered).await;
                        break;
                    }
                },
                cmd = cmd_rx.recv(), if commands_open => match cmd {
                    Some(c) => self.on_cmd(c).await,
                    None => commands_open = false,
                },
                Some(mev) = next_media(&mut self.session) => self.on_media(mev),
            }
        }
        self.live.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }

    fn emit(&self, e: Event) {
        let _ = self.events.send(e);
    }

    /// Returns true when the call is over.
    async fn on_sip(&mut self, ev: CallEvent) -> bool {
        match ev {
            CallEvent::Ringing { code, .. } => self.emit(Event::Ringing { code }),
            CallEvent::EarlyMedia { code, media, .. } => {
                let up = self.apply_media(&media).await;
                if up {
                    self.emit(Event::EarlyMedia { code });
                }
            }
            CallEvent::Answered { media, .. } => {
                if self.apply_media(&media).await
                    && let Some(p) = &self.plan
                {
                    self.emit(Event::Answered {
                        codec: p.codec,
                        remote: p.remote,
                    });
                }
            }
            CallEvent::MediaChanged { media, .. } => {
                let up = self.apply_media(&media).await;
                if up {
                    self.emit(Event::MediaChanged {
                        direction: media.direction(),
                    });
                }
            }
            CallEvent::Dtmf { digit, .. } => self.emit(Event::Dtmf {
                digit,
                via: DtmfVia::SipInfo,
            }),
            CallEvent::TransferRequested { target, .. } => {
                self.emit(Event::TransferRequested { target })
            }
            CallEvent::TransferProgress { code, .. } => self.emit(Event::TransferProgress { code }),
            CallEvent::Hangup {
                cause,
                code,
                outcome,
                ..
            } => {
                let cause = policy::end_cause(self.ending.as_ref(), cause);
                self.finish(cause, code, outcome).await;
                return true;
            }
            // Incoming is the dispatcher's; registrations and trunk state are not about this call.
            _ => {}
        }
        false
    }

    async fn finish(
        &mut self,
        cause: EndCause,
        code: Option<u16>,
        outcome: crate::sip::outcome::Outcome,
    ) {
        if let Some((peer, _)) = self.partner.take() {
            let _ = peer.post(Cmd::PeerLeft {
                peer: self.id,
                ended: true,
            });
        }
        self.leave_room();
        if let Some(s) = self.session.take() {
            s.close().await;
        }
        self.emit(Event::Hangup {
            cause,
            code,
            outcome,
        });
    }

    /// Creates or updates the media session; false when the call had to be ended.
    async fn apply_media(&mut self, info: &crate::sip::call::MediaInfo) -> bool {
        let plan = match MediaPlan::from_info(info) {
            Ok(p) => p,
            Err(e) => {
                self.end(EndCause::MediaUnavailable(e.0));
                return false;
            }
        };
        match (&self.session, &self.plan) {
            (Some(s), Some(old)) => {
                let change = policy::diff(old, &plan);
                if change.codec {
                    s.set_codec(plan.codec, plan.payload_type, plan.receiver_config());
                }
                if change.remote
                    && let Some(r) = plan.remote
                {
                    s.set_remote(r);
                }
                if change.flow {
                    let (send, receive) = plan.flow();
                    s.set_direction(send, receive);
                }
                let mut kept = plan;
                if plan.remote.is_none() {
                    kept.remote = old.remote;
                }
                self.plan = Some(kept);
                true
            }
            _ => match bind(&plan, &self.settings).await {
                Ok(s) => {
                    if let Some(r) = plan.remote {
                        s.set_remote(r);
                    }
                    let (send, receive) = plan.flow();
                    if (send, receive) != (true, true) {
                        s.set_direction(send, receive);
                    }
                    self.session = Some(s);
                    self.plan = Some(plan);
                    true
                }
                Err(e) => {
                    self.end(EndCause::MediaUnavailable(format!(
                        "cannot bind RTP port {}: {e}",
                        plan.local_port
                    )));
                    false
                }
            },
        }
    }

    /// Decides to end the call for our own reason (the SIP Hangup event then finishes it).
    fn end(&mut self, cause: EndCause) {
        if self.ending.is_none() {
            self.ending = Some(cause);
        }
        self.sip.hangup(self.id);
    }

    fn on_media(&mut self, ev: MediaEvent) {
        let held = self
            .plan
            .is_some_and(|p| p.direction != crate::sip::sdp::Direction::SendRecv);
        match policy::on_media_event(ev, held) {
            MediaAction::Emit(e) => self.emit(e),
            MediaAction::HangUp(cause) => self.end(cause),
            MediaAction::Ignore => {}
        }
    }

    fn media(&self) -> Result<&RtpSession, ControlError> {
        self.session.as_ref().ok_or(ControlError::NoMedia)
    }

    async fn on_cmd(&mut self, c: Cmd) {
        match c {
            Cmd::Answer => self.sip.answer(self.id),
            Cmd::Reject(code) => self.sip.reject(self.id, code),
            Cmd::Hangup(r) => {
                self.sip.hangup(self.id);
                let _ = r.send(Ok(()));
            }
            Cmd::HangupBecause(cause, r) => {
                self.sip.hangup_because(self.id, cause);
                let _ = r.send(Ok(()));
            }
            Cmd::Hold(on, r) => {
                self.sip.hold(self.id, on);
                let _ = r.send(Ok(()));
            }
            Cmd::Play(src, r) => {
                let _ = r.send(self.media().map(|s| s.play(src)));
            }
            Cmd::StopPlayback(r) => {
                let _ = r.send(self.media().map(|s| s.stop_playback()));
            }
            Cmd::SendDtmf(digits, r) => {
                let res = match policy::dtmf_route(self.plan.as_ref()) {
                    DtmfRoute::Rfc4733 => self.media().map(|s| s.send_dtmf(&digits)),
                    DtmfRoute::SipInfo => {
                        for d in digits.chars() {
                            self.sip.send_dtmf_info(self.id, d);
                        }
                        Ok(())
                    }
                };
                let _ = r.send(res);
            }
            Cmd::Record(path, layout, enc, r) => {
                let res = match self.media() {
                    Ok(s) => s
                        .record_to_file(path, layout, enc)
                        .await
                        .map_err(|e| ControlError::Io(e.to_string())),
                    Err(e) => Err(e),
                };
                let _ = r.send(res);
            }
            Cmd::StopRecording(r) => {
                let res = match self.media() {
                    Ok(s) => s
                        .finish_recording_file()
                        .await
                        .map_err(|e| ControlError::Io(e.to_string())),
                    Err(e) => Err(e),
                };
                let _ = r.send(res);
            }
            Cmd::StartAmd(cfg, r) => {
                let _ = r.send(self.media().map(|s| s.start_amd(cfg)));
            }
            Cmd::DetectProgress(r) => {
                let _ = r.send(self.media().map(|s| s.detect_progress_tones()));
            }
            Cmd::Echo(on, r) => {
                let res = self.media().map(|s| {
                    if on {
                        // A leg connected to itself sends back what it receives.
                        session::bridge(s, s);
                    } else {
                        s.disconnect();
                    }
                });
                if res.is_ok() {
                    self.echoing = on;
                    if on {
                        self.leave_bridge();
                        self.leave_room();
                    }
                }
                let _ = r.send(res);
            }
            Cmd::Lend(r) => {
                let Some(session) = self.session.take() else {
                    let _ = r.send(Err(ControlError::NoMedia));
                    return;
                };
                let (back_tx, back_rx) = oneshot::channel();
                if let Err(Ok(loan)) = r.send(Ok(Loan {
                    session,
                    back: back_tx,
                })) {
                    self.session = Some(loan.session);
                    return;
                }
                // The borrower only connects the two sessions; it hands this one back at once.
                match tokio::time::timeout(Duration::from_secs(5), back_rx).await {
                    Ok(Ok((s, partner))) => {
                        self.session = Some(s);
                        if let Some((peer, on_hangup)) = partner {
                            self.partnered(peer, on_hangup);
                        }
                    }
                    _ => self.end(EndCause::MediaUnavailable(
                        "media session lost while bridging".into(),
                    )),
                }
            }
            Cmd::Unbridge(r) => {
                let res = self.media().map(|s| s.disconnect());
                self.leave_bridge();
                self.leave_room();
                let _ = r.send(res);
            }
            Cmd::PeerLeft { peer, ended } => {
                // Only the current partner's departure concerns us (a stale one is ignored).
                if self.partner.as_ref().is_some_and(|(p, _)| p.id == peer) {
                    let (_, on_hangup) = self.partner.take().expect("checked");
                    if let Some(s) = &self.session {
                        s.disconnect();
                    }
                    self.emit(Event::Unbridged {
                        peer,
                        peer_ended: ended,
                    });
                    if ended && on_hangup == OnPeerHangup::HangUp {
                        self.end(EndCause::BridgePeerEnded(peer));
                    }
                }
            }
            Cmd::Stats(r) => {
                let res = match self.media() {
                    Ok(s) => Ok(s.stats().await),
                    Err(e) => Err(e),
                };
                let _ = r.send(res);
            }
            Cmd::Port(r) => {
                let _ = r.send(self.media().map(|s| MediaPort {
                    peer: s.id(),
                    input: s.input(),
                }));
            }
            Cmd::Route(route, r) => {
                let res = self.media().map(|s| {
                    s.forward_to(route.forward);
                    s.listen_to(route.listen);
                });
                if res.is_ok() {
                    if route.room.is_some() {
                        // The room routes this call now: out of any two-party bridge or echo.
                        self.leave_bridge();
                        self.echoing = false;
                    }
                    let old = self.room.take();
                    let before = old.as_ref().map(|(room, role)| (room.id(), *role));
                    let after = route.room.as_ref().map(|(room, role)| (room.id(), *role));
                    if let Some((old_room, _)) = old
                        && after.is_none_or(|(r, _)| r != old_room.id())
                    {
                        self.emit(Event::RoomLeft {
                            room: old_room.id(),
                        });
                        // Moved to another room: the old one forgets it (a no-op when the old
                        // room is the one taking it out).
                        let id = self.id;
                        tokio::spawn(async move { old_room.detach(id).await });
                    }
                    if let Some((room, role)) = after
                        && before != after
                    {
                        self.emit(Event::RoomJoined { room, role });
                    }
                    self.room = route.room;
                }
                let _ = r.send(res);
            }
        }
    }

    /// Leaves the room this call is in (it went elsewhere or ended): the room forgets it and
    /// re-routes the others.
    fn leave_room(&mut self) {
        if let Some((room, _)) = self.room.take() {
            self.emit(Event::RoomLeft { room: room.id() });
            let id = self.id;
            tokio::spawn(async move { room.detach(id).await });
        }
    }

    /// Records a new bridge partner (the media is already connected), telling the old one.
    fn partnered(&mut self, peer: CallControl, on_hangup: OnPeerHangup) {
        if let Some((old, _)) = self.partner.take()
            && old.id != peer.id
        {
            let _ = old.post(Cmd::PeerLeft {
                peer: self.id,
                ended: false,
            });
        }
        self.echoing = false;
        self.leave_room();
        self.emit(Event::Bridged { peer: peer.id });
        self.partner = Some((peer, on_hangup));
    }

    /// Leaves the current bridge, telling the partner.
    fn leave_bridge(&mut self) {
        if let Some((peer, _)) = self.partner.take() {
            let _ = peer.post(Cmd::PeerLeft {
                peer: self.id,
                ended: false,
            });
            self.emit(Event::Unbridged {
                peer: peer.id,
                peer_ended: false,
            });
        }
    }
}

/// Binds the session on the SIP layer's port. The port of a call that just ended can be handed
/// out again at once while its session is still closing: retry briefly on "address in use".
async fn bind(plan: &MediaPlan, settings: &MediaSettings) -> std::io::Result<RtpSession> {
    let mut tries = 0;
    loop {
        match RtpSession::bind_on(plan.session_config(settings), plan.local_port).await {
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && tries < 50 => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            r => return r,
        }
    }
}
