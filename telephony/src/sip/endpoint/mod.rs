//! The sans-IO SIP core: routes parsed messages to transactions, runs the transaction user (the
//! UAS in [`uas`], the UAC in [`uac`]) and reports what to send, which timers to arm and which
//! call events happened, as [`Effect`]s. The tokio driver feeds it and carries the effects out;
//! tests can drive it directly with a virtual `now`.

mod register;
mod registrar;
mod session;
mod uac;
mod uas;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rsip::{Method, Request, Response, SipMessage};

use super::call::{CallEvent, CallId, Command, HangupCause, MediaInfo, Transport};
use super::dialog::{self, Dialog};
use super::message;
use super::outcome::Outcome;
use super::registrar::{Bindings, InboundPolicy, Nonces};
use super::sdp;
use super::transaction::{
    self, ClientInvite, ClientKey, ClientNonInvite, ServerInvite, ServerKey, ServerNonInvite,
    TimerConfig, TimerId,
};
use crate::media::ports::{PortAllocator, PortLease, SharedPorts};

/// Where a message comes from or goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub transport: Transport,
    pub addr: SocketAddr,
    /// The TCP connection it arrived on (replies go back on it while it is open).
    pub conn: Option<u64>,
}

/// Timers the core asks for; the driver hands them back through [`Endpoint::on_timer`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TimerKey {
    Client(ClientKey, TimerId),
    Server(ServerKey, TimerId),
    Call(CallId, CallTimer),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallTimer {
    /// UAS: retransmit the 2xx until the ACK (RFC 3261 §13.3.1.4).
    Retransmit2xx,
    /// UAS: give up on the ACK after 64·T1 and hang up.
    AckTimeout,
    /// UAS: auto-answer after the configured ring time.
    Answer,
    /// UAC: no answer in time → CANCEL.
    RingTimeout,
    /// UAC: the CANCEL got no final response for the INVITE → give up.
    CancelGuard,
    /// Our registration (id in the CallId slot) is due for refresh or retry.
    RegistrationRefresh,
    /// Session timer: refresh (we are the refresher) or expiry check.
    Session,
    /// Our re-INVITE met glare (491): try again (RFC 3261 §14.1).
    ReinviteRetry,
}

/// What the driver must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    Send { peer: Peer, bytes: Vec<u8> },
    Timer { at: Instant, key: TimerKey },
    Event(CallEvent),
}

/// The core's settings.
#[derive(Debug, Clone)]
pub struct EndpointConfig {
    pub udp_addr: SocketAddr,
    pub tcp_addr: SocketAddr,
    /// The TLS listener (`None`: TLS is used only for connections we open; Via and Contact then
    /// name the TCP port, and in-dialog requests from TLS peers reach us only on our
    /// connections).
    pub tls_addr: Option<SocketAddr>,
    /// Host written into Via, Contact and SDP.
    pub advertised: String,
    pub rtp_ports: (u16, u16),
    pub timers: TimerConfig,
    /// `Some(ring)`: inbound calls are answered after ringing this long; `None`: the appliance
    /// answers with [`Command::Answer`].
    pub auto_answer: Option<Duration>,
    pub user_agent: String,
    /// Smallest session interval we accept (RFC 4028 Min-SE); 422 below it.
    pub min_se: u32,
    /// Session interval we ask for on our INVITEs (0: no session timer).
    pub session_interval: u32,
    /// Trunk ACL, endpoint authentication and the registrar; `None`: every INVITE is accepted and
    /// REGISTER is refused with 501.
    pub policy: Option<InboundPolicy>,
}

enum ServerTx {
    Invite(ServerInvite),
    NonInvite(ServerNonInvite),
}

struct ServerEntry {
    tx: ServerTx,
    peer: Peer,
}

// Both variants are a few hundred bytes; boxing one buys nothing.
#[allow(clippy::large_enum_variant)]
enum ClientTx {
    Invite(ClientInvite),
    NonInvite(ClientNonInvite),
}

struct ClientEntry {
    tx: ClientTx,
    peer: Peer,
    owner: Option<Owner>,
}

/// Who gets a client transaction's responses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Owner {
    Call(CallId),
    Registration(u64),
    Ping(u64),
}

/// Call state shared by inbound and outbound legs.
pub(crate) struct Call {
    pub id: CallId,
    pub inbound: bool,
    pub peer: Peer,
    pub dialog: Option<Dialog>,
    pub rtp_port: u16,
    /// Holds `rtp_port` until the call is forgotten (released on drop).
    pub _rtp_lease: PortLease,
    pub sdp_version: u64,
    pub session_id: u64,
    pub media: Option<sdp::Negotiated>,
    pub answered: bool,
    pub confirmed: bool,
    // Inbound.
    pub invite_key: Option<ServerKey>,
    pub invite: Option<Request>,
    pub local_tag: String,
    pub pending_2xx: Option<Pending2xx>,
    pub offer: Option<sdp::Sdp>,
    /// Our re-INVITE (hold/resume/refresh) in progress.
    pub reinvite: Option<ClientKey>,
    /// RFC 4028 session timer, and when the next refresh or expiry is due.
    pub session: Option<super::session_timer::SessionTimer>,
    pub session_due: Option<Instant>,
    /// The direction we offer (hold = sendonly or inactive); refreshes keep it.
    pub offered: sdp::Direction,
    // Outbound.
    pub out: Option<uac::Outbound>,
}

/// A 2xx being retransmitted until its ACK.
pub(crate) struct Pending2xx {
    pub response: Response,
    pub cseq: u32,
    pub interval: Duration,
    pub key: ServerKey,
    pub initial: bool,
}

/// The SIP core. Not thread-safe by design: one task owns it.
pub struct Endpoint {
    cfg: EndpointConfig,
    server: HashMap<ServerKey, ServerEntry>,
    client: HashMap<ClientKey, ClientEntry>,
    calls: HashMap<CallId, Call>,
    /// (Call-ID, local tag) → call.
    dialogs: HashMap<(String, String), CallId>,
    ports: SharedPorts,
    ids: Arc<AtomicU64>,
    draining: bool,
    out: Vec<Effect>,
    created_inbound: u64,
    nonces: Nonces,
    bindings: Bindings,
    registrations: HashMap<u64, register::RegClient>,
    /// Trunk probes in flight: id → (trunk, sent at).
    pings: HashMap<u64, (SocketAddr, Instant)>,
}

/// `;transport=tcp` / `;transport=tls` for URIs (nothing for UDP).
pub(crate) fn transport_param(t: Transport) -> String {
    t.uri_param()
        .map(|p| format!(";transport={p}"))
        .unwrap_or_default()
}

pub(crate) fn random_hex() -> String {
    format!("{:016x}", rand::random::<u64>())
}

impl Endpoint {
    /// `ids` hands out call ids; share it with whoever issues [`Command::Originate`].
    pub fn new(cfg: EndpointConfig, ids: Arc<AtomicU64>) -> Self {
        // A range without an even/odd pair gives every call 503 (the appliance's configuration
        // validation refuses such ranges before this).
        let ports = SharedPorts::new(
            PortAllocator::new(cfg.rtp_ports.0, cfg.rtp_ports.1)
                .unwrap_or_else(|_| PortAllocator::empty())
                .with_random_start(),
        );
        Self {
            cfg,
            server: HashMap::new(),
            client: HashMap::new(),
            calls: HashMap::new(),
            dialogs: HashMap::new(),
            ports,
            ids,
            draining: false,
            out: Vec::new(),
            created_inbound: 0,
            nonces: Nonces::new(Instant::now()),
            bindings: Bindings::default(),
            registrations: HashMap::new(),
            pings: HashMap::new(),
        }
    }

    pub fn set_draining(&mut self, draining: bool) {
        self.draining = draining;
    }

    /// Calls in progress.
    pub fn active_calls(&self) -> usize {
        self.calls.len()
    }

    /// Inbound calls created since start (retransmissions never create a second one).
    pub fn inbound_calls_created(&self) -> u64 {
        self.created_inbound
    }

    /// Live transactions (client, server).
    pub fn transactions(&self) -> (usize, usize) {
        (self.client.len(), self.server.len())
    }

    /// Live contacts registered by `user`.
    pub fn bindings(&self, user: &str, now: Instant) -> Vec<super::registrar::Binding> {
        self.bindings.lookup(user, now)
    }

    pub fn rtp_ports_available(&self) -> usize {
        self.ports.available()
    }

    /// The allocator the endpoint takes call legs' RTP ports from.
    pub fn rtp_ports(&self) -> SharedPorts {
        self.ports.clone()
    }

    /// An RTP port for a new call leg (bindable now), or `None` when the range is exhausted.
    pub(crate) fn lease_rtp_port(&self) -> Option<PortLease> {
        self.ports.lease_bindable()
    }

    /// Takes the effects produced so far.
    pub fn take_effects(&mut self) -> Vec<Effect> {
        std::mem::take(&mut self.out)
    }

    pub fn on_message(&mut self, msg: SipMessage, peer: Peer, now: Instant) {
        match msg {
            SipMessage::Request(req) => self.on_request(req, peer, now),
            SipMessage::Response(resp) => self.on_response(resp, now),
        }
    }

    /// The transport could not reach `peer` (a TCP connect failed): its client transactions fail
    /// at once instead of waiting for Timer B/F.
    pub fn on_transport_error(&mut self, peer: &Peer, now: Instant) {
        let keys: Vec<ClientKey> = self
            .client
            .iter()
            .filter(|(_, e)| e.peer.addr == peer.addr && e.peer.transport == peer.transport)
            .map(|(k, _)| k.clone())
            .collect();
        for k in keys {
            let outs = match self.client.get_mut(&k) {
                Some(ClientEntry {
                    tx: ClientTx::Invite(t),
                    ..
                }) => t.on_transport_error(),
                Some(ClientEntry {
                    tx: ClientTx::NonInvite(t),
                    ..
                }) => t.on_transport_error(),
                None => continue,
            };
            self.client_outputs(&k, outs, now);
        }
    }

    pub fn on_command(&mut self, cmd: Command, now: Instant) {
        match cmd {
            Command::Originate(id, o) => self.originate(id, o, now),
            Command::Answer(id) => self.answer(id, now),
            Command::Progress(id) => self.progress(id, now),
            Command::Reject(id, code) => self.reject(id, code, now),
            Command::Hangup(id) => self.hangup(id, HangupCause::LocalHangup, now),
            Command::HangupBecause(id, cause) => self.hangup(id, cause, now),
            Command::Hold(id, hold) => {
                let dir = if hold {
                    sdp::Direction::SendOnly
                } else {
                    sdp::Direction::SendRecv
                };
                self.set_direction(id, dir, now)
            }
            Command::SetDirection(id, dir) => self.set_direction(id, dir, now),
            Command::SendDtmfInfo(id, digit) => self.send_dtmf_info(id, digit, now),
            Command::Transfer(id, target) => self.transfer(id, target, now),
            Command::TransferNotify(id, code) => self.transfer_notify(id, code, now),
            Command::Ping(id, trunk) => self.ping(id, trunk, now),
            Command::Register(id, r) => self.register(id, r, now),
            Command::Unregister(id) => self.unregister(id, now),
            Command::SetPolicy(policy) => self.cfg.policy = policy,
            Command::HangupAll => {
                let ids: Vec<CallId> = self.calls.keys().copied().collect();
                for id in ids {
                    self.hangup(id, HangupCause::Shutdown, now);
                }
            }
        }
    }

    pub fn on_timer(&mut self, key: TimerKey, now: Instant) {
        match key {
            TimerKey::Client(k, id) => {
                let outs = match self.client.get_mut(&k) {
                    Some(ClientEntry {
                        tx: ClientTx::Invite(t),
                        ..
                    }) => t.on_timer(id, now),
                    Some(ClientEntry {
                        tx: ClientTx::NonInvite(t),
                        ..
                    }) => t.on_timer(id, now),
                    None => return,
                };
                self.client_outputs(&k, outs, now);
            }
            TimerKey::Server(k, id) => {
                let outs = match self.server.get_mut(&k) {
                    Some(ServerEntry {
                        tx: ServerTx::Invite(t),
                        ..
                    }) => t.on_timer(id, now),
                    Some(ServerEntry {
                        tx: ServerTx::NonInvite(t),
                        ..
                    }) => t.on_timer(id, now),
                    None => return,
                };
                self.server_outputs(&k, outs);
            }
            TimerKey::Call(id, t) => self.call_timer(id, t, now),
        }
    }

    // -----------------------------------------------------------------------------------------
    // Requests.

    fn on_request(&mut self, req: Request, peer: Peer, now: Instant) {
        let Some(key) = ServerKey::of(&req) else {
            return;
        };
        if let Some(entry) = self.server.get_mut(&key) {
            let outs = match &mut entry.tx {
                ServerTx::Invite(t) => {
                    if req.method == Method::Ack && t.final_code().is_some_and(|c| c < 300) {
                        // An ACK for our 2xx that reused the INVITE's branch.
                        self.ack_2xx(&req, now);
                        return;
                    }
                    t.on_request(&req, now)
                }
                ServerTx::NonInvite(t) => t.on_request(&req, now),
            };
            self.server_outputs(&key, outs);
            return;
        }
        if req.method == Method::Ack {
            self.ack_2xx(&req, now);
            return;
        }
        let reliable = peer.transport.reliable();
        let (tx, outs) = if req.method == Method::Invite {
            let (t, o) = ServerInvite::start(req.clone(), reliable, self.cfg.timers, now);
            (ServerTx::Invite(t), o)
        } else {
            let (t, o) = ServerNonInvite::start(req.clone(), reliable, self.cfg.timers, now);
            (ServerTx::NonInvite(t), o)
        };
        self.server.insert(
            key.clone(),
            ServerEntry {
                tx,
                peer: peer.clone(),
            },
        );
        self.server_outputs(&key, outs);
        self.on_new_request(key, req, peer, now);
    }

    /// Sends a response through the server transaction `key`.
    pub(crate) fn respond(&mut self, key: &ServerKey, resp: Response, now: Instant) {
        let outs = match self.server.get_mut(key) {
            Some(ServerEntry {
                tx: ServerTx::Invite(t),
                ..
            }) => t.respond(resp, now),
            Some(ServerEntry {
                tx: ServerTx::NonInvite(t),
                ..
            }) => t.respond(resp, now),
            None => return,
        };
        self.server_outputs(key, outs);
    }

    /// A plain response to the request of transaction `key`.
    pub(crate) fn respond_code(&mut self, key: &ServerKey, req: &Request, code: u16, now: Instant) {
        let tag = (code >= 200 && message::to_tag(&req.headers).is_none()).then(random_hex);
        let mut resp = message::response_to(req, code, tag.as_deref());
        resp.headers
            .push(message::header("Server", &self.cfg.user_agent));
        self.respond(key, resp, now);
    }

    pub(crate) fn server_invite_state(
        &self,
        key: &ServerKey,
    ) -> Option<transaction::server_invite::State> {
        match self.server.get(key) {
            Some(ServerEntry {
                tx: ServerTx::Invite(t),
                ..
            }) => Some(t.state()),
            _ => None,
        }
    }

    fn server_outputs(&mut self, key: &ServerKey, outs: Vec<transaction::Output>) {
        for o in outs {
            match o {
                transaction::Output::Send(m) => {
                    if let Some(e) = self.server.get(key) {
                        self.out.push(Effect::Send {
                            peer: e.peer.clone(),
                            bytes: message::to_bytes(&m),
                        });
                    }
                }
                transaction::Output::StartTimer(id, at) => self.out.push(Effect::Timer {
                    at,
                    key: TimerKey::Server(key.clone(), id),
                }),
                transaction::Output::Terminated => {
                    self.server.remove(key);
                }
                // H (no ACK for a non-2xx) needs nothing more: the call already ended.
                _ => {}
            }
        }
    }

    // -----------------------------------------------------------------------------------------
    // Responses and client transactions.

    fn on_response(&mut self, resp: Response, now: Instant) {
        let Some(key) = ClientKey::of(&resp.headers) else {
            return;
        };
        let outs = match self.client.get_mut(&key) {
            Some(ClientEntry {
                tx: ClientTx::Invite(t),
                ..
            }) => t.on_response(resp, now),
            Some(ClientEntry {
                tx: ClientTx::NonInvite(t),
                ..
            }) => t.on_response(resp, now),
            None => {
                // A 2xx retransmission after the transaction ended: ACK it again.
                if key.method == "INVITE" && (200..300).contains(&resp.status_code.code()) {
                    self.stray_2xx(&resp, now);
                }
                return;
            }
        };
        self.client_outputs(&key, outs, now);
    }

    /// Starts a client transaction for `req` towards `peer`, owned by `call`.
    pub(crate) fn send_request(
        &mut self,
        req: Request,
        peer: Peer,
        owner: Option<Owner>,
        now: Instant,
    ) -> Option<ClientKey> {
        let key = ClientKey::of(&req.headers)?;
        let reliable = peer.transport.reliable();
        let (tx, outs) = if req.method == Method::Invite {
            let (t, o) = ClientInvite::start(req, reliable, self.cfg.timers, now);
            (ClientTx::Invite(t), o)
        } else {
            let (t, o) = ClientNonInvite::start(req, reliable, self.cfg.timers, now);
            (ClientTx::NonInvite(t), o)
        };
        self.client
            .insert(key.clone(), ClientEntry { tx, peer, owner });
        self.client_outputs(&key, outs, now);
        Some(key)
    }

    fn client_outputs(&mut self, key: &ClientKey, outs: Vec<transaction::Output>, now: Instant) {
        let (peer, owner) = match self.client.get(key) {
            Some(e) => (e.peer.clone(), e.owner),
            None => return,
        };
        for o in outs {
            match o {
                transaction::Output::Send(m) => self.out.push(Effect::Send {
                    peer: peer.clone(),
                    bytes: message::to_bytes(&m),
                }),
                transaction::Output::StartTimer(id, at) => self.out.push(Effect::Timer {
                    at,
                    key: TimerKey::Client(key.clone(), id),
                }),
                transaction::Output::Response(r) => match owner {
                    Some(Owner::Call(call)) => self.uac_response(call, key, r, now),
                    Some(Owner::Registration(reg)) => self.register_response(reg, r, now),
                    Some(Owner::Ping(p)) => self.ping_result(p, Some(r.status_code.code()), now),
                    None => {}
                },
                transaction::Output::Timeout | transaction::Output::TransportError => match owner {
                    Some(Owner::Call(call)) => self.uac_timeout(call, key, now),
                    Some(Owner::Registration(reg)) => self.register_failed(reg, None, now),
                    Some(Owner::Ping(p)) => self.ping_result(p, None, now),
                    None => {}
                },
                transaction::Output::Terminated => {
                    self.client.remove(key);
                }
            }
        }
    }

    // -----------------------------------------------------------------------------------------
    // Shared helpers.

    pub(crate) fn emit(&mut self, e: CallEvent) {
        self.out.push(Effect::Event(e));
    }

    pub(crate) fn timer(&mut self, at: Instant, call: CallId, t: CallTimer) {
        self.out.push(Effect::Timer {
            at,
            key: TimerKey::Call(call, t),
        });
    }

    pub(crate) fn send_raw(&mut self, peer: Peer, msg: &SipMessage) {
        self.out.push(Effect::Send {
            peer,
            bytes: message::to_bytes(msg),
        });
    }

    pub(crate) fn local_addr(&self, t: Transport) -> SocketAddr {
        match t {
            Transport::Udp => self.cfg.udp_addr,
            Transport::Tcp => self.cfg.tcp_addr,
            Transport::Tls => self.cfg.tls_addr.unwrap_or(self.cfg.tcp_addr),
        }
    }

    pub(crate) fn via(&self, t: Transport) -> String {
        format!(
            "SIP/2.0/{} {}:{};branch=z9hG4bK{};rport",
            t.via_name(),
            self.cfg.advertised,
            self.local_addr(t).port(),
            random_hex()
        )
    }

    pub(crate) fn contact(&self, user: &str, t: Transport) -> String {
        let tp = transport_param(t);
        format!(
            "<sip:{user}@{}:{}{tp}>",
            self.cfg.advertised,
            self.local_addr(t).port()
        )
    }

    /// Where in-dialog requests of `call` go: the first route or the remote target when its host
    /// is an IP literal, else back to where the call came from. The transport is the one that
    /// URI names (`sips:`, `;transport=`), else the call's own.
    pub(crate) fn dialog_peer(&self, call: &Call) -> Peer {
        let Some(hop) = call.dialog.as_ref().map(|d| d.next_hop()) else {
            return call.peer.clone();
        };
        let transport = dialog::uri_transport(&hop).unwrap_or(call.peer.transport);
        match dialog::uri_addr(&hop) {
            Some(addr) if addr == call.peer.addr && transport == call.peer.transport => {
                call.peer.clone()
            }
            Some(addr) => Peer {
                transport,
                addr,
                conn: None,
            },
            None => call.peer.clone(),
        }
    }

    pub(crate) fn media_info(&self, call: &Call) -> MediaInfo {
        MediaInfo {
            local_rtp_port: call.rtp_port,
            negotiated: call.media,
        }
    }

    pub(crate) fn local_sdp(&self, call: &Call) -> sdp::Local {
        sdp::Local {
            address: self.cfg.advertised.clone(),
            rtp_port: call.rtp_port,
            session_id: call.session_id,
            session_version: call.sdp_version,
        }
    }

    pub(crate) fn new_call_id(&self) -> CallId {
        CallId(self.ids.fetch_add(1, Ordering::Relaxed))
    }

    /// Sends BYE for a call with a dialog (fire and forget: the call is over for us).
    pub(crate) fn send_bye(&mut self, id: CallId, now: Instant) {
        let Some(call) = self.calls.get(&id) else {
            return;
        };
        let peer = self.dialog_peer(call);
        let via = self.via(peer.transport);
        let contact = self.contact("dialbridge", peer.transport);
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let Some(d) = call.dialog.as_mut() else {
            return;
        };
        let bye = d.request(Method::Bye, &via, &contact);
        self.send_request(bye, peer, None, now);
    }

    /// Forgets a call, frees its port and reports the hangup.
    pub(crate) fn end_call(
        &mut self,
        id: CallId,
        cause: HangupCause,
        code: Option<u16>,
        outcome: Outcome,
    ) {
        let Some(call) = self.calls.remove(&id) else {
            return;
        };
        if let Some(d) = &call.dialog {
            self.dialogs
                .remove(&(d.call_id.clone(), d.local_tag.clone()));
        }
        drop(call); // gives its RTP port back
        self.emit(CallEvent::Hangup {
            call: id,
            cause,
            code,
            outcome,
        });
    }

    pub(crate) fn find_dialog(
        &self,
        h: &rsip::Headers,
        local_tag: Option<String>,
    ) -> Option<CallId> {
        let key = (message::call_id(h)?, local_tag?);
        self.dialogs.get(&key).copied()
    }

    fn call_timer(&mut self, id: CallId, t: CallTimer, now: Instant) {
        match t {
            CallTimer::Retransmit2xx => self.retransmit_2xx(id, now),
            CallTimer::AckTimeout => self.ack_timeout(id, now),
            CallTimer::Answer => self.answer(id, now),
            CallTimer::RingTimeout => self.ring_timeout(id, now),
            CallTimer::CancelGuard => self.cancel_guard(id),
            CallTimer::RegistrationRefresh => self.register_refresh(id.0, now),
            CallTimer::Session => self.session_timer_fired(id, now),
            CallTimer::ReinviteRetry => {
                let dir = self
                    .calls
                    .get(&id)
                    .map(|c| c.offered)
                    .unwrap_or(sdp::Direction::SendRecv);
                self.send_reinvite(id, dir, now);
            }
        }
    }

    fn hangup(&mut self, id: CallId, cause: HangupCause, now: Instant) {
        let Some(call) = self.calls.get(&id) else {
            return;
        };
        if call.inbound {
            if call.answered {
                self.send_bye(id, now);
                self.end_call(id, cause, None, Outcome::Answered);
            } else {
                self.reject_with_cause(id, 480, cause, now);
            }
        } else {
            self.uac_hangup(id, cause, now);
        }
    }
}

#[cfg(test)]
mod tests;
