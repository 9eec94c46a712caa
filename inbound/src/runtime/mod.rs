//! The inbound runtime: thin tokio drivers that run flows and the ACD on real calls. The
//! decisions stay in the sans-IO machines ([`crate::interpreter::Interpreter`],
//! [`crate::acd::Acd`]); this module only carries out their effects with
//! [`telephony::control`] calls and feeds the results back.
//!
//! - [`Runtime::start`] takes the inbound calls of a [`telephony::control::Calls`] dispatcher. Each
//!   call becomes a contact ([`contact`]): the dialled number goes through the migration router
//!   (`bridge::router`), a `from_legacy` bridge number's lease is consumed and its data attached
//!   (`bridge::calls::on_arrival`), the number's flow runs in the interpreter (prompts from WAV
//!   files or `espeak-ng` text, digits, webhooks, hours, queue, transfers, callbacks, recording)
//!   and a contact record is written at the start, at every stage and at the end. Contacts left
//!   open by a crash are closed as `interrupted` at the next start.
//! - One task owns the ACD ([`acd_task`]): queued contacts, logged-in agents with their audio
//!   endpoints (ring per offer, or a nailed-up leg kept for the shift where an offer is a media
//!   switch), offers, after-contact work and the agent/queue read side.
//! - [`prompts`] turns prompt specs into audio (WAV files, cached TTS).
//!
//! Handles are cheap to clone; the API used by the web layer and the dialer is on [`Runtime`].
//! Supervisors (listen, whisper, barge) and three-way conferences use `telephony::control`
//! rooms: the agent's leg and the customer stay a direct bridge until a third leg joins.
//! Agents' call controls (hold, mute, DTMF to the customer, blind and consultative transfer to
//! an agent, a queue or a number, the three-way conference) are [`acd_task::controls`].
//!
//! The integrator runs the SIP layer with `auto_answer: None` (the runtime answers after it
//! found a flow, and refuses unknown numbers with 404) and must not also run
//! `bridge::calls::arrivals_loop` (the runtime consumes bridge leases itself).
//!
//! # Measured (`examples/ivr_bench.rs`, release, 2 shared cores, loopback, SQLite)
//!
//! 200 sipp callers (50/s) each hear the TTS menu, barge in with an RFC 4733 digit, pass the
//! hours check into the queue and wait 20 s: 200/200 successful calls, 0 failed, 200 contact
//! records closed, peak 200 live contacts, 2.3 s CPU of this process over 26 s (9 % of one
//! core).

pub mod acd_task;
mod announce;
pub mod callbacks;
pub mod contact;
pub mod handoff;
mod outbound_flow;
pub mod prompts;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use foundation::{Db, SharedClock};
use serde::Serialize;
use tokio::sync::{broadcast, mpsc, oneshot};

use telephony::control::{CallControl, Calls, IncomingCalls};
use telephony::sip::call::Trunk;

use crate::acd::{AcdConfig, AgentState, AgentStatus, QueueStats};
use crate::hours::HoursBook;
use crate::webhook::WebhookTargets;

pub use acd_task::NoAgent;
pub use acd_task::controls::{
    ConsultPhase, ConsultView, ControlEvent, ControlRefused, ControlView, Target, TransferMode,
};

/// What the runtime needs besides the database, the clock and the calls.
#[derive(Clone)]
pub struct RuntimeConfig {
    /// Queues and routing profiles (agents log in at run time; agents listed here start Offline
    /// with no endpoint).
    pub acd: AcdConfig,
    /// Hours by id, and which hours a queue keeps. Ids not found here are loaded from the store.
    pub hours: HoursBook,
    /// Flow function names (Lambda ARNs) → webhook URLs.
    pub webhooks: WebhookTargets,
    /// Where `PromptId`/audio prompts are found (relative names resolve here).
    pub prompt_dir: PathBuf,
    /// Where synthesized prompts are cached as 8 kHz WAV files.
    pub tts_cache_dir: PathBuf,
    /// The TTS program (`espeak-ng` or a compatible one: `-v VOICE -w FILE [-m] TEXT`).
    pub tts_program: String,
    /// The default TTS voice (a flow's `UpdateContactTextToSpeechVoice` overrides it).
    pub tts_voice: String,
    /// What queued callers hear until an agent takes them (looped); `None`: silence.
    pub hold_audio: Option<crate::interpreter::PromptSpec>,
    /// Where recordings go (`<contact id>.wav`).
    pub recording_dir: PathBuf,
    /// Trunks for transfers to external numbers (tried in order).
    pub trunks: Vec<Trunk>,
    /// The trunk that dials customers back (flows' callbacks); `None`: callbacks are stored but
    /// close as `no_trunk` when their turn comes.
    pub callback_trunk: Option<Trunk>,
    /// The legacy platform, for `TransferToLegacy` and router decisions to legacy.
    pub legacy: Option<bridge::calls::LegacyTrunk>,
    /// Our caller id on calls to agents.
    pub agent_caller_id: String,
    /// How long an agent's endpoint rings at login (nailed-up leg).
    pub login_ring_timeout: Duration,
    /// SIP code for a call to a number with no flow (404 or 480).
    pub unknown_number_code: u16,
    /// Capacity of the [`RuntimeEvent`] broadcast.
    pub event_capacity: usize,
    /// This node's name: its contact records carry it, and its start closes only its own open
    /// contacts (nodes sharing PostgreSQL need distinct names).
    pub node: String,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        let base = std::env::temp_dir().join("dialbridge-inbound");
        RuntimeConfig {
            acd: AcdConfig::default(),
            hours: HoursBook::new(),
            webhooks: WebhookTargets::new(),
            prompt_dir: PathBuf::from("prompts"),
            tts_cache_dir: base.join("tts"),
            tts_program: "espeak-ng".into(),
            tts_voice: "en-us".into(),
            recording_dir: base.join("recordings"),
            hold_audio: None,
            trunks: Vec::new(),
            callback_trunk: None,
            legacy: None,
            agent_caller_id: "dialbridge".into(),
            login_ring_timeout: Duration::from_secs(30),
            unknown_number_code: 404,
            event_capacity: 1024,
            node: "dialbridge".into(),
        }
    }
}

/// Where an agent's audio is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "value")]
pub enum AgentEndpoint {
    /// A SIP URI the appliance calls directly (`sip:agent@127.0.0.1:5160`).
    Uri(String),
    /// A user registered to the appliance's registrar: its newest binding is called.
    Registered(String),
}

/// How an agent's audio reaches contacts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentMode {
    /// The endpoint rings for every offer.
    RingPerOffer,
    /// The endpoint is called once at login and the leg stays up for the shift; an offer is a
    /// media switch (auto-accepted).
    NailedUp,
}

/// An agent logging in.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Login {
    pub agent_id: String,
    pub endpoint: AgentEndpoint,
    pub mode: AgentMode,
    /// A routing profile of the ACD configuration.
    pub routing_profile: String,
    /// Skill → proficiency 1..=5.
    #[serde(default)]
    pub skills: BTreeMap<String, u8>,
}

/// An agent as dashboards and the desktop show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentView {
    pub id: String,
    pub state: AgentState,
    /// When the state last changed (epoch ms).
    pub since_ms: i64,
    pub mode: AgentMode,
    pub endpoint: AgentEndpoint,
    pub routing_profile: String,
    /// Nailed-up: whether the agent's leg is up.
    pub leg_up: bool,
    /// Offers connect by themselves (a nailed-up leg's media switch, a rung phone answered);
    /// `false`: the agent answers each offer on the desktop ([`Runtime::answer`]).
    pub auto_accept: bool,
    /// The contact the agent is offered or handles.
    pub contact: Option<String>,
    pub contacts_handled: u64,
    pub talk_ms: i64,
}

/// What happened, for the agent desktop and dashboards.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum RuntimeEvent {
    AgentStateChanged {
        agent: String,
        state: AgentState,
        at_ms: i64,
    },
    ContactQueued {
        contact: String,
        queue: String,
        at_ms: i64,
    },
    ContactOffered {
        contact: String,
        agent: String,
        queue: String,
        /// The agent answers (or rejects) on the desktop: nothing connects until then.
        needs_answer: bool,
        /// When the offer counts as missed if not taken (epoch ms).
        expires_at_ms: i64,
        at_ms: i64,
    },
    ContactConnected {
        contact: String,
        agent: String,
        attributes: BTreeMap<String, String>,
        at_ms: i64,
    },
    ContactEnded {
        contact: String,
        agent: Option<String>,
        at_ms: i64,
    },
    /// An agent's call control on a contact (`action`: hold, mute, consult_ringing, …; see
    /// [`ControlEvent`] and `docs/desktop-events.md`).
    CallControl {
        contact: String,
        agent: String,
        /// The agent taken as the target of a transfer or consultation.
        target_agent: Option<String>,
        #[serde(flatten)]
        what: ControlEvent,
        at_ms: i64,
    },
}

/// How a supervisor takes part in an agent's contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Supervise {
    /// Hears both, heard by nobody.
    Listen,
    /// Hears both, heard only by the agent (coaching).
    Whisper,
    /// A full party: heard by both.
    Barge,
}

impl Supervise {
    fn role(self, media: &acd_task::ContactMedia) -> telephony::control::Role {
        match self {
            Supervise::Listen => telephony::control::Role::Listen,
            Supervise::Whisper => telephony::control::Role::Whisper {
                to: media.agent_leg.id(),
            },
            Supervise::Barge => telephony::control::Role::Full,
        }
    }
}

fn room_error(e: telephony::control::RoomError) -> RuntimeError {
    RuntimeError::Media(e.to_string())
}

/// Why a runtime command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuntimeError {
    #[error("unknown agent {0:?}")]
    UnknownAgent(String),
    #[error("unknown contact {0:?}")]
    UnknownContact(String),
    #[error("unknown queue {0:?}")]
    UnknownQueue(String),
    #[error("invalid agent: {0}")]
    InvalidAgent(String),
    #[error("the agent's endpoint could not be reached: {0}")]
    EndpointUnreachable(String),
    #[error("media: {0}")]
    Media(String),
    #[error("the runtime has stopped")]
    Stopped,
}

pub(crate) struct Shared {
    pub db: Db,
    pub clock: SharedClock,
    pub calls: Calls,
    pub cfg: RuntimeConfig,
    pub prompts: prompts::Prompts,
    pub http: reqwest::Client,
    pub acd: mpsc::UnboundedSender<acd_task::Cmd>,
    pub events: broadcast::Sender<RuntimeEvent>,
    /// New and retried callbacks, to the scheduler ([`callbacks::run_scheduler`]).
    pub callbacks: mpsc::UnboundedSender<callbacks::Entry>,
    /// The queues and routing profiles in force: `cfg.acd` at start, replaced by the ACD task
    /// when it accepts a [`Runtime::reconfigure_acd`] (the task, announcements, callbacks and the
    /// admin pages read it here).
    pub acd_live: std::sync::RwLock<Arc<AcdConfig>>,
}

impl Shared {
    /// The ACD configuration in force.
    pub(crate) fn acd_cfg(&self) -> Arc<AcdConfig> {
        self.acd_live.read().expect("acd config lock").clone()
    }

    /// The settings in force of `queue` (by name or alias).
    pub(crate) fn queue_cfg(&self, queue: &str) -> Option<crate::acd::QueueConfig> {
        self.acd_cfg()
            .queues
            .iter()
            .find(|q| q.name == queue || q.aliases.iter().any(|a| a == queue))
            .cloned()
    }
}

/// The running inbound side. Cheap to clone.
#[derive(Clone)]
pub struct Runtime {
    shared: Arc<Shared>,
}

impl Runtime {
    /// Closes contacts a previous run left open, starts the ACD task and takes every call of
    /// `incoming` as a contact. Fails only when the ACD configuration is invalid or the
    /// database cannot be read.
    pub async fn start(
        db: Db,
        clock: SharedClock,
        calls: Calls,
        incoming: IncomingCalls,
        cfg: RuntimeConfig,
    ) -> anyhow::Result<Runtime> {
        let acd = crate::acd::Acd::new(&cfg.acd)
            .map_err(|e| anyhow::anyhow!("ACD configuration: {e}"))?;
        let closed = contact::close_interrupted(&db, clock.now_ms(), &cfg.node).await?;
        if closed > 0 {
            tracing::warn!(
                contacts = closed,
                "closed contacts left open by the previous run as interrupted"
            );
        }
        let (settled, due) = callbacks::recover(&db, &cfg.node, clock.now_ms()).await?;
        if settled > 0 {
            tracing::warn!(
                callbacks = settled,
                "closed callbacks the previous run left dialling as interrupted"
            );
        }
        let (cb_tx, cb_rx) = mpsc::unbounded_channel();
        let (tx, rx) = mpsc::unbounded_channel();
        let (events, _) = broadcast::channel(cfg.event_capacity.max(16));
        let shared = Arc::new(Shared {
            prompts: prompts::Prompts::new(&cfg),
            db,
            clock,
            calls,
            http: reqwest::Client::new(),
            acd: tx,
            events,
            callbacks: cb_tx,
            acd_live: std::sync::RwLock::new(Arc::new(cfg.acd.clone())),
            cfg,
        });
        tokio::spawn(acd_task::run(shared.clone(), acd, rx));
        tokio::spawn(callbacks::run_scheduler(
            Arc::downgrade(&shared),
            cb_rx,
            due,
        ));
        tokio::spawn(take_calls(shared.clone(), incoming));
        Ok(Runtime { shared })
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> acd_task::Cmd,
    ) -> Result<T, RuntimeError> {
        let (tx, rx) = oneshot::channel();
        self.shared
            .acd
            .send(make(tx))
            .map_err(|_| RuntimeError::Stopped)?;
        rx.await.map_err(|_| RuntimeError::Stopped)
    }

    /// Logs an agent in. Nailed-up: returns once the agent's leg is answered (or the endpoint
    /// failed). The agent is then Available. Offers connect by themselves (auto-accept).
    pub async fn login(&self, login: Login) -> Result<(), RuntimeError> {
        self.login_with(login, true).await
    }

    /// Logs an agent in as [`Runtime::login`]; with `auto_accept` false the agent answers every
    /// offer of an inbound contact with [`Runtime::answer`] (or turns it down with
    /// [`Runtime::reject`]): a nailed-up leg's media is switched only then, a ring-per-offer
    /// endpoint is rung only then (an auto-answering phone, such as the browser softphone,
    /// connects at once). An offer neither answered nor rejected within the queue's ring timeout
    /// is missed: the contact goes back to the head of its queue. Calls the dialer hands over
    /// and callbacks are still connected at once (the dialer's connect rule allows no wait).
    pub async fn login_with(&self, login: Login, auto_accept: bool) -> Result<(), RuntimeError> {
        self.ask(|reply| acd_task::Cmd::Login {
            login,
            auto_accept,
            reply,
        })
        .await?
    }

    /// The agent answers the contact offered to them (not auto-accepting agents only): a
    /// nailed-up leg is connected before this returns; a ring-per-offer endpoint is rung and the
    /// contact connects when it answers.
    pub async fn answer(&self, agent: &str, contact: &str) -> Result<(), RuntimeError> {
        let (agent, contact) = (agent.to_owned(), contact.to_owned());
        self.ask(|reply| acd_task::Cmd::Answer {
            agent,
            contact,
            take: true,
            reply,
        })
        .await?
    }

    /// The agent turns down the contact offered to them (any agent; a ringing endpoint stops
    /// ringing): the agent goes to Missed and the contact back to the head of its queue.
    pub async fn reject(&self, agent: &str, contact: &str) -> Result<(), RuntimeError> {
        let (agent, contact) = (agent.to_owned(), contact.to_owned());
        self.ask(|reply| acd_task::Cmd::Answer {
            agent,
            contact,
            take: false,
            reply,
        })
        .await?
    }

    /// Logs an agent out (Offline; a nailed-up leg is hung up; a contact in hand stays up).
    pub async fn logout(&self, agent: &str) -> Result<(), RuntimeError> {
        let agent = agent.to_owned();
        self.ask(|reply| acd_task::Cmd::Logout { agent, reply })
            .await?
    }

    /// Sets an agent's own status (Available, a break code, Offline); a supervisor forcing a
    /// state uses the same call.
    pub async fn set_state(&self, agent: &str, status: AgentStatus) -> Result<(), RuntimeError> {
        let agent = agent.to_owned();
        self.ask(|reply| acd_task::Cmd::SetState {
            agent,
            status,
            reply,
        })
        .await?
    }

    /// Records the agent's disposition code on the contact record and ends after-contact work.
    pub async fn disposition(&self, contact: &str, code: &str) -> Result<(), RuntimeError> {
        let (contact, code) = (contact.to_owned(), code.to_owned());
        self.ask(|reply| acd_task::Cmd::Disposition {
            contact,
            code,
            reply,
        })
        .await?
    }

    /// Hangs up a contact's customer leg (the agent ends the contact from the desktop).
    pub async fn end_contact(&self, contact: &str) -> Result<(), RuntimeError> {
        let contact = contact.to_owned();
        self.ask(|reply| acd_task::Cmd::EndContact { contact, reply })
            .await?
    }

    /// Agents staffing `queue` (all logged-in agents when `None`).
    pub async fn agent_snapshot(
        &self,
        queue: Option<&str>,
    ) -> Result<Vec<AgentView>, RuntimeError> {
        let queue = queue.map(str::to_owned);
        self.ask(|reply| acd_task::Cmd::Snapshot { queue, reply })
            .await
    }

    /// Changes an agent's routing profile (`None` keeps it) and skills at once: a logged-in
    /// agent routes with them from now on (an admin edited the user). `UnknownAgent` when the
    /// agent is neither logged in nor configured.
    pub async fn update_agent_profile(
        &self,
        agent: &str,
        routing_profile: Option<&str>,
        skills: BTreeMap<String, u8>,
    ) -> Result<(), RuntimeError> {
        let agent = agent.to_owned();
        let profile = routing_profile.map(str::to_owned);
        self.ask(|reply| acd_task::Cmd::UpdateAgent {
            agent,
            profile,
            skills,
            reply,
        })
        .await?
    }

    /// A configuration reload: the ACD's queues and routing profiles become `config`'s, for
    /// every later decision, without touching contacts or agents ([`crate::acd::Acd::reconfigure`]:
    /// a queue with contacts, or a routing profile an agent uses, cannot be removed; all or
    /// nothing). Offers the change makes possible go out at once. Returns what changed (`queue
    /// "b" added`...). Announcements, callback settings and [`Runtime::acd_config`] follow.
    pub async fn reconfigure_acd(&self, config: AcdConfig) -> anyhow::Result<Vec<String>> {
        let config = Box::new(config);
        Ok(self
            .ask(|reply| acd_task::Cmd::ReconfigureAcd { config, reply })
            .await??)
    }

    /// A queued contact's queue, position and estimated wait (`None`: not queued).
    pub async fn queue_position(
        &self,
        contact: &str,
    ) -> Result<Option<crate::acd::Estimate>, RuntimeError> {
        let contact = contact.to_owned();
        self.ask(|reply| acd_task::Cmd::Estimate { contact, reply })
            .await
    }

    /// Callbacks, newest first (at most `limit`), optionally only those with `status`
    /// (`pending`, `dialing`, `done`, `failed`, `cancelled`, `interrupted`).
    pub async fn callbacks(
        &self,
        status: Option<&str>,
        limit: i64,
    ) -> anyhow::Result<Vec<callbacks::CallbackView>> {
        callbacks::list(&self.shared.db, status, limit).await
    }

    /// Cancels a callback not dialled yet; false when it was not pending.
    pub async fn cancel_callback(&self, id: i64) -> anyhow::Result<bool> {
        callbacks::cancel(&self.shared.db, id, self.shared.clock.now_ms()).await
    }

    /// Real-time statistics of a queue (waiting, oldest, service level, ASA, AHT...).
    pub async fn queue_stats(&self, queue: &str) -> Result<QueueStats, RuntimeError> {
        let queue = queue.to_owned();
        self.ask(|reply| acd_task::Cmd::QueueStats { queue, reply })
            .await?
    }

    /// Agent and contact events (the agent desktop's WebSocket feed).
    pub fn subscribe(&self) -> broadcast::Receiver<RuntimeEvent> {
        self.shared.events.subscribe()
    }

    /// For the outbound dialer: hands an answered call to a ready agent of `queue` at once (no
    /// waiting: `Err(NoAgent)` when none is ready; the dialer handles abandonment). With a
    /// nailed-up agent the media is switched before this returns. The contact gets a record like
    /// an inbound one; it ends when either leg hangs up.
    pub async fn connect_outbound(
        &self,
        queue: &str,
        call: &CallControl,
        attributes: BTreeMap<String, String>,
    ) -> Result<String, NoAgent> {
        let queue = queue.to_owned();
        let call = call.clone();
        match self
            .ask(|reply| acd_task::Cmd::ConnectOutbound {
                queue,
                call,
                attributes,
                reply,
            })
            .await
        {
            Ok(r) => r,
            Err(_) => Err(NoAgent),
        }
    }

    /// A supervisor joins a connected contact: their phone (`supervisor`) is called and, once
    /// answered, put in the contact's room with the agent and the customer — listening,
    /// whispering to the agent, or barged in (a full party). Calling again with another mode
    /// changes the role without a new call. The supervisor's leg ends with the contact.
    pub async fn supervise(
        &self,
        contact: &str,
        supervisor: AgentEndpoint,
        mode: Supervise,
    ) -> Result<(), RuntimeError> {
        let media = self.contact_media(contact).await?;
        if let (Some(room), Some(sup)) = (&media.room, &media.supervisor) {
            return room
                .set_role(sup.id(), mode.role(&media))
                .await
                .map_err(room_error);
        }
        let leg = self.call_endpoint(&supervisor).await?;
        self.join_leg(contact, media, leg, Some(mode)).await
    }

    /// A three-way conference: `party` (a phone, or the agent's choice of endpoint) is called
    /// and joins the contact with the agent and the customer as a full party. It ends with the
    /// contact (or when it hangs up, leaving the other two connected).
    pub async fn conference(
        &self,
        contact: &str,
        party: AgentEndpoint,
    ) -> Result<(), RuntimeError> {
        let media = self.contact_media(contact).await?;
        let leg = self.call_endpoint(&party).await?;
        self.join_leg(contact, media, leg, None).await
    }

    /// The members of a contact's room and their roles (empty while it is a plain bridge).
    pub async fn room_members(
        &self,
        contact: &str,
    ) -> Result<Vec<(telephony::sip::call::CallId, telephony::control::Role)>, RuntimeError> {
        let media = self.contact_media(contact).await?;
        Ok(match media.room {
            Some(r) => r.members().await,
            None => Vec::new(),
        })
    }

    async fn contact_media(&self, contact: &str) -> Result<acd_task::ContactMedia, RuntimeError> {
        let contact = contact.to_owned();
        self.ask(|reply| acd_task::Cmd::ContactMedia { contact, reply })
            .await?
    }

    /// Calls an endpoint and waits for the answer.
    async fn call_endpoint(&self, ep: &AgentEndpoint) -> Result<CallControl, RuntimeError> {
        let o = acd_task::originate_to(&self.shared, ep, self.shared.cfg.login_ring_timeout)
            .await
            .map_err(RuntimeError::EndpointUnreachable)?;
        let (_, ctl, mut events) = self.shared.calls.originate(o).split();
        loop {
            match events.recv().await {
                Some(telephony::control::Event::Answered { .. }) => break,
                None | Some(telephony::control::Event::Hangup { .. }) => {
                    return Err(RuntimeError::EndpointUnreachable(format!(
                        "{ep:?} did not answer"
                    )));
                }
                Some(_) => {}
            }
        }
        // The leg's later events (its hang-up makes it leave the room by itself).
        tokio::spawn(async move { while events.recv().await.is_some() {} });
        Ok(ctl)
    }

    async fn join_leg(
        &self,
        contact: &str,
        media: acd_task::ContactMedia,
        leg: CallControl,
        mode: Option<Supervise>,
    ) -> Result<(), RuntimeError> {
        let room = match &media.room {
            Some(r) => r.clone(),
            None => {
                let r = telephony::control::Room::new();
                r.join(&media.agent_leg, telephony::control::Role::Full)
                    .await
                    .map_err(room_error)?;
                r.join(&media.customer, telephony::control::Role::Full)
                    .await
                    .map_err(room_error)?;
                r
            }
        };
        let role = mode.map_or(telephony::control::Role::Full, |m| m.role(&media));
        if let Err(e) = room.join(&leg, role).await {
            let _ = leg.hangup().await;
            return Err(room_error(e));
        }
        let contact = contact.to_owned();
        let supervisor = mode.is_some();
        self.ask(|reply| acd_task::Cmd::AttachLeg {
            contact,
            room,
            leg,
            supervisor,
            reply,
        })
        .await?
    }

    /// Live contacts (in a flow, queued or with an agent).
    pub fn live_contacts(&self) -> usize {
        contact::LIVE.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The queues and routing profiles in force: as configured at start, or as last reloaded
    /// ([`Runtime::reconfigure_acd`]); the admin console and the metrics read them. Agents'
    /// profiles changed live since are in [`Runtime::agent_snapshot`].
    pub fn acd_config(&self) -> Arc<AcdConfig> {
        self.shared.acd_cfg()
    }

    /// This node's name.
    pub fn node(&self) -> &str {
        &self.shared.cfg.node
    }
}

/// Takes every inbound call as a contact.
async fn take_calls(shared: Arc<Shared>, mut incoming: IncomingCalls) {
    while let Some(call) = incoming.next().await {
        tokio::spawn(contact::run(shared.clone(), call));
    }
    tracing::info!("inbound calls ended: the SIP layer is gone");
}

/// Queue → routing profiles that serve it (for snapshots).
pub(crate) fn profiles_serving(cfg: &AcdConfig) -> HashMap<String, Vec<String>> {
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    for p in &cfg.profiles {
        for q in &p.queues {
            out.entry(q.queue.clone()).or_default().push(p.name.clone());
        }
    }
    out
}
