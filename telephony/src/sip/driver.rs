//! The tokio driver: owns the UDP socket, the TCP and TLS listeners and the stream connections,
//! feeds the sans-IO [`Endpoint`] and carries out its effects (send, arm timers, publish call
//! events).
//!
//! One task owns the endpoint; socket readers parse in their own tasks (parsing is pure) and send
//! it parsed messages, so a malformed message is answered (400/513) or dropped before it ever
//! reaches the core. Timers live in one ordered map keyed by deadline. TCP and TLS connections
//! are the same code over different streams ([`stream_connection`]): one connection per peer
//! and transport, reused for every request; TLS handshakes (see [`super::tls`]) run in the
//! connection's own task and never hold up the others.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use foundation::lifecycle::Lifecycle;
use rsip::SipMessage;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{broadcast, mpsc, oneshot};

use super::call::{CallEvent, CallId, Command, HangupCause, Originate, Registration, Transport};
use super::endpoint::{Effect, Endpoint, EndpointConfig, Peer, TimerKey};
use super::framing::{Frame, Framer};
use super::message;
use super::registrar::Binding;
use super::tls::TlsSetup;

/// A TLS handshake (either direction) gets this long.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Counters for tests and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub active_calls: usize,
    pub inbound_calls_created: u64,
    pub client_transactions: usize,
    pub server_transactions: usize,
    pub rtp_ports_available: usize,
    pub tcp_connections: usize,
    pub tls_connections: usize,
    /// TLS handshakes that failed since start (both directions: bad certificates, garbage,
    /// timeouts).
    pub tls_handshake_failures: u64,
}

pub(crate) enum Input {
    Message(SipMessage, Peer),
    Command(Command),
    Stats(oneshot::Sender<Stats>),
    Bindings(String, oneshot::Sender<Vec<Binding>>),
    StreamOpened {
        id: u64,
        addr: SocketAddr,
        transport: Transport,
        writer: mpsc::UnboundedSender<Vec<u8>>,
    },
    StreamClosed {
        id: u64,
        addr: SocketAddr,
        transport: Transport,
    },
    ConnectFailed(SocketAddr, Transport),
}

/// The appliance's handle on the SIP layer: place and control calls, watch call events.
#[derive(Clone)]
pub struct SipHandle {
    tx: mpsc::UnboundedSender<Input>,
    ids: Arc<AtomicU64>,
    events: broadcast::Sender<CallEvent>,
}

impl SipHandle {
    /// Places a call; its progress arrives as [`CallEvent`]s with the returned id.
    pub fn originate(&self, o: Originate) -> CallId {
        let id = CallId(self.ids.fetch_add(1, Ordering::Relaxed));
        let _ = self.tx.send(Input::Command(Command::Originate(id, o)));
        id
    }

    pub fn command(&self, c: Command) {
        let _ = self.tx.send(Input::Command(c));
    }

    pub fn answer(&self, id: CallId) {
        self.command(Command::Answer(id));
    }

    /// 183 with SDP on a ringing inbound call (early media before answering).
    pub fn progress(&self, id: CallId) {
        self.command(Command::Progress(id));
    }

    pub fn reject(&self, id: CallId, code: u16) {
        self.command(Command::Reject(id, code));
    }

    pub fn hangup(&self, id: CallId) {
        self.command(Command::Hangup(id));
    }

    /// Ends a call for this reason (reported in the hang-up event; see
    /// [`HangupCause::SpecialInformationTone`]).
    pub fn hangup_because(&self, id: CallId, cause: HangupCause) {
        self.command(Command::HangupBecause(id, cause));
    }

    /// Blind transfer of the peer to `target` (a SIP URI) by REFER.
    pub fn transfer(&self, id: CallId, target: &str) {
        self.command(Command::Transfer(id, target.to_string()));
    }

    /// Progress of a transfer the peer requested (`CallEvent::TransferRequested`).
    pub fn transfer_notify(&self, id: CallId, code: u16) {
        self.command(Command::TransferNotify(id, code));
    }

    /// Sends a digit by SIP INFO (RFC 4733 telephone-events are the media layer's job).
    pub fn send_dtmf_info(&self, id: CallId, digit: char) {
        self.command(Command::SendDtmfInfo(id, digit));
    }

    /// Re-INVITE offering this direction (sendonly/inactive hold, sendrecv resume).
    pub fn set_direction(&self, id: CallId, dir: super::sdp::Direction) {
        self.command(Command::SetDirection(id, dir));
    }

    pub fn hold(&self, id: CallId, hold: bool) {
        self.command(Command::Hold(id, hold));
    }

    /// Call events from now on (a slow subscriber loses the oldest events, never blocks calls).
    pub fn subscribe(&self) -> broadcast::Receiver<CallEvent> {
        self.events.subscribe()
    }

    /// Probes a trunk with OPTIONS; the answer arrives as `CallEvent::TrunkStatus` with this id.
    pub fn ping(&self, trunk: super::call::Trunk) -> u64 {
        let id = self.ids.fetch_add(1, Ordering::Relaxed);
        self.command(Command::Ping(id, trunk));
        id
    }

    /// Registers to a trunk and keeps the registration refreshed; state changes arrive as
    /// `CallEvent::Registration` with the returned id.
    pub fn register(&self, r: Registration) -> u64 {
        let id = self.ids.fetch_add(1, Ordering::Relaxed);
        self.command(Command::Register(id, r));
        id
    }

    pub fn unregister(&self, id: u64) {
        self.command(Command::Unregister(id));
    }

    /// Replaces the inbound policy (trusted trunks, endpoint users) without touching calls.
    pub fn set_policy(&self, policy: Option<super::registrar::InboundPolicy>) {
        self.command(Command::SetPolicy(policy));
    }

    /// Calls an endpoint registered with us (an agent's phone) at its most recent contact; `None`
    /// when it has no live registration.
    pub async fn originate_registered(
        &self,
        user: &str,
        from_user: &str,
        ring_timeout: std::time::Duration,
    ) -> Option<CallId> {
        let b = self
            .bindings(user)
            .await
            .into_iter()
            .max_by_key(|b| b.expires_at)?;
        Some(self.originate(Originate {
            request_uri: Some(b.contact.clone()),
            to_user: user.to_string(),
            from_user: from_user.to_string(),
            trunks: vec![super::call::Trunk::for_binding(&b)],
            ring_timeout,
            headers: Vec::new(),
        }))
    }

    /// The contacts an endpoint (agent phone) has registered with us.
    pub async fn bindings(&self, user: &str) -> Vec<Binding> {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Input::Bindings(user.to_string(), tx)).is_err() {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }

    pub async fn stats(&self) -> Option<Stats> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(Input::Stats(tx)).ok()?;
        rx.await.ok()
    }
}

/// The bound sockets of a running driver.
pub struct Bound {
    pub udp: SocketAddr,
    pub tcp: SocketAddr,
    pub tls: Option<SocketAddr>,
    pub handle: SipHandle,
    /// The allocator of the endpoint's RTP ports.
    pub rtp_ports: crate::media::ports::SharedPorts,
}

/// Binds the sockets and starts the driver; returns the bound addresses and the handle.
/// `tls`: the TLS listener (when `tls.listen` is set) and the configuration for TLS connections
/// we open; `None`: TLS connections are verified against the system roots, no listener.
pub async fn spawn(
    udp_bind: SocketAddr,
    tcp_bind: SocketAddr,
    mut cfg: EndpointConfig,
    max_message_bytes: usize,
    tls: Option<TlsSetup>,
    lifecycle: Lifecycle,
) -> anyhow::Result<Bound> {
    let udp = Arc::new(
        UdpSocket::bind(udp_bind)
            .await
            .map_err(|e| anyhow::anyhow!("cannot bind SIP UDP on {udp_bind}: {e}"))?,
    );
    let tcp = TcpListener::bind(tcp_bind)
        .await
        .map_err(|e| anyhow::anyhow!("cannot bind SIP TCP on {tcp_bind}: {e}"))?;
    let (udp_addr, tcp_addr) = (udp.local_addr()?, tcp.local_addr()?);
    let tls_listener = match tls.as_ref().and_then(|t| t.listen) {
        Some(bind) => Some(
            TcpListener::bind(bind)
                .await
                .map_err(|e| anyhow::anyhow!("cannot bind SIP TLS on {bind}: {e}"))?,
        ),
        None => None,
    };
    let tls_addr = match &tls_listener {
        Some(l) => Some(l.local_addr()?),
        None => None,
    };
    cfg.udp_addr = udp_addr;
    cfg.tcp_addr = tcp_addr;
    cfg.tls_addr = tls_addr;
    let ids = Arc::new(AtomicU64::new(1));
    let (tx, rx) = mpsc::unbounded_channel();
    let (events, _) = broadcast::channel(4096);
    let handle = SipHandle {
        tx: tx.clone(),
        ids: ids.clone(),
        events: events.clone(),
    };
    let conn_ids = Arc::new(AtomicU64::new(1));
    let tls_failures = Arc::new(AtomicU64::new(0));

    tokio::spawn(udp_reader(udp.clone(), tx.clone(), max_message_bytes));
    tokio::spawn(tcp_acceptor(
        tcp,
        tx.clone(),
        max_message_bytes,
        conn_ids.clone(),
    ));
    if let (Some(listener), Some(server)) =
        (tls_listener, tls.as_ref().and_then(|t| t.server.clone()))
    {
        tokio::spawn(tls_acceptor(
            listener,
            tokio_rustls::TlsAcceptor::from(server),
            tx.clone(),
            max_message_bytes,
            conn_ids.clone(),
            tls_failures.clone(),
        ));
    }
    let ep = Endpoint::new(cfg, ids);
    let rtp_ports = ep.rtp_ports();
    let core = Core {
        ep,
        udp,
        tx,
        events,
        timers: BTreeMap::new(),
        timer_seq: 0,
        conns: HashMap::new(),
        conn_by_addr: HashMap::new(),
        connecting: HashMap::new(),
        conn_ids,
        max_message_bytes,
        tracked: HashMap::new(),
        lifecycle,
        tls_client: tls.map(|t| t.client),
        tls_failures,
    };
    tokio::spawn(core.run(rx));
    Ok(Bound {
        udp: udp_addr,
        tcp: tcp_addr,
        tls: tls_addr,
        handle,
        rtp_ports,
    })
}

struct Core {
    ep: Endpoint,
    udp: Arc<UdpSocket>,
    tx: mpsc::UnboundedSender<Input>,
    events: broadcast::Sender<CallEvent>,
    timers: BTreeMap<(Instant, u64), TimerKey>,
    timer_seq: u64,
    /// Stream connections (TCP and TLS) by id: peer, transport, writer.
    conns: HashMap<u64, (SocketAddr, Transport, mpsc::UnboundedSender<Vec<u8>>)>,
    conn_by_addr: HashMap<(Transport, SocketAddr), u64>,
    /// Connections being opened, with what waits to be sent on them.
    connecting: HashMap<(Transport, SocketAddr), Vec<Vec<u8>>>,
    conn_ids: Arc<AtomicU64>,
    max_message_bytes: usize,
    /// Calls in progress, each held open in the lifecycle's tracker until it ends.
    tracked: HashMap<CallId, oneshot::Sender<()>>,
    lifecycle: Lifecycle,
    /// For TLS connections we open; built on first use (system roots) when not configured.
    tls_client: Option<Arc<tokio_rustls::rustls::ClientConfig>>,
    tls_failures: Arc<AtomicU64>,
}

impl Core {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Input>) {
        let stop = self.lifecycle.stop_token();
        let mut stopped = false;
        loop {
            let next = self.timers.first_key_value().map(|((at, _), _)| *at);
            let sleep = tokio::time::sleep_until(
                next.map(tokio::time::Instant::from_std)
                    .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600)),
            );
            tokio::select! {
                input = rx.recv() => {
                    let Some(input) = input else { return };
                    self.ep.set_draining(self.lifecycle.is_draining());
                    self.input(input);
                    // Take what else is queued before carrying out effects.
                    for _ in 0..64 {
                        match rx.try_recv() {
                            Ok(i) => self.input(i),
                            Err(_) => break,
                        }
                    }
                }
                _ = sleep => {
                    let now = Instant::now();
                    while let Some(entry) = self.timers.first_entry() {
                        if entry.key().0 > now {
                            break;
                        }
                        let key = entry.remove();
                        self.ep.on_timer(key, now);
                        self.effects();
                    }
                }
                _ = stop.cancelled(), if !stopped => {
                    stopped = true;
                    self.ep.on_command(Command::HangupAll, Instant::now());
                }
            }
            self.effects();
        }
    }

    fn input(&mut self, input: Input) {
        let now = Instant::now();
        match input {
            Input::Message(msg, peer) => self.ep.on_message(msg, peer, now),
            Input::Command(c) => {
                if let Command::Originate(id, _) = &c {
                    self.track(*id);
                }
                self.ep.on_command(c, now)
            }
            Input::Stats(reply) => {
                let (c, s) = self.ep.transactions();
                let _ = reply.send(Stats {
                    active_calls: self.ep.active_calls(),
                    inbound_calls_created: self.ep.inbound_calls_created(),
                    client_transactions: c,
                    server_transactions: s,
                    rtp_ports_available: self.ep.rtp_ports_available(),
                    tcp_connections: self.count_conns(Transport::Tcp),
                    tls_connections: self.count_conns(Transport::Tls),
                    tls_handshake_failures: self.tls_failures.load(Ordering::Relaxed),
                });
            }
            Input::Bindings(user, reply) => {
                let _ = reply.send(self.ep.bindings(&user, now));
            }
            Input::StreamOpened {
                id,
                addr,
                transport,
                writer,
            } => {
                for bytes in self
                    .connecting
                    .remove(&(transport, addr))
                    .unwrap_or_default()
                {
                    let _ = writer.send(bytes);
                }
                self.conns.insert(id, (addr, transport, writer));
                self.conn_by_addr.insert((transport, addr), id);
            }
            Input::ConnectFailed(addr, transport) => {
                self.connecting.remove(&(transport, addr));
                self.ep.on_transport_error(
                    &Peer {
                        transport,
                        addr,
                        conn: None,
                    },
                    now,
                );
            }
            Input::StreamClosed {
                id,
                addr,
                transport,
            } => {
                self.conns.remove(&id);
                if self.conn_by_addr.get(&(transport, addr)) == Some(&id) {
                    self.conn_by_addr.remove(&(transport, addr));
                }
                self.connecting.remove(&(transport, addr));
            }
        }
        self.effects();
    }

    fn count_conns(&self, t: Transport) -> usize {
        self.conns.values().filter(|(_, ct, _)| *ct == t).count()
    }

    fn track(&mut self, id: CallId) {
        let (tx, rx) = oneshot::channel::<()>();
        self.tracked.insert(id, tx);
        self.lifecycle.tracker().spawn(async move {
            let _ = rx.await;
        });
    }

    fn effects(&mut self) {
        for e in self.ep.take_effects() {
            match e {
                Effect::Send { peer, bytes } => self.send(peer, bytes),
                Effect::Timer { at, key } => {
                    self.timer_seq += 1;
                    self.timers.insert((at, self.timer_seq), key);
                }
                Effect::Event(ev) => {
                    match &ev {
                        CallEvent::Incoming { call, .. } => self.track(*call),
                        CallEvent::Hangup { call, .. } => {
                            if let Some(t) = self.tracked.remove(call) {
                                let _ = t.send(());
                            }
                        }
                        _ => {}
                    }
                    let _ = self.events.send(ev);
                }
            }
        }
    }

    fn send(&mut self, peer: Peer, bytes: Vec<u8>) {
        match peer.transport {
            Transport::Udp => {
                if let Err(e) = self.udp.try_send_to(&bytes, peer.addr) {
                    if e.kind() == std::io::ErrorKind::WouldBlock {
                        let udp = self.udp.clone();
                        tokio::spawn(async move {
                            let _ = udp.send_to(&bytes, peer.addr).await;
                        });
                    } else {
                        tracing::debug!(addr = %peer.addr, error = %e, "SIP UDP send failed");
                    }
                }
            }
            Transport::Tcp | Transport::Tls => {
                let t = peer.transport;
                let id = peer
                    .conn
                    .filter(|c| self.conns.get(c).is_some_and(|(_, ct, _)| *ct == t))
                    .or_else(|| self.conn_by_addr.get(&(t, peer.addr)).copied());
                if let Some((_, _, w)) = id.and_then(|id| self.conns.get(&id)) {
                    let _ = w.send(bytes);
                    return;
                }
                let first = !self.connecting.contains_key(&(t, peer.addr));
                self.connecting
                    .entry((t, peer.addr))
                    .or_default()
                    .push(bytes);
                if first {
                    self.connect(t, peer.addr);
                }
            }
        }
    }

    /// Opens a stream connection to `addr`; what waits in `connecting` goes out once it is up.
    fn connect(&mut self, t: Transport, addr: SocketAddr) {
        let (tx, ids, max) = (
            self.tx.clone(),
            self.conn_ids.clone(),
            self.max_message_bytes,
        );
        let tls = if t == Transport::Tls {
            match self.tls_client() {
                Some(c) => Some((c, self.tls_failures.clone())),
                None => {
                    let _ = tx.send(Input::ConnectFailed(addr, t));
                    return;
                }
            }
        } else {
            None
        };
        tokio::spawn(async move {
            let tcp = match TcpStream::connect(addr).await {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    s
                }
                Err(e) => {
                    tracing::debug!(%addr, transport = t.via_name(), error = %e, "SIP connect failed");
                    let _ = tx.send(Input::ConnectFailed(addr, t));
                    return;
                }
            };
            let id = ids.fetch_add(1, Ordering::Relaxed);
            let Some((client, failures)) = tls else {
                return stream_connection(tcp, addr, Transport::Tcp, tx, max, id).await;
            };
            let connector = tokio_rustls::TlsConnector::from(client);
            let handshake = connector.connect(super::tls::server_name(addr), tcp);
            match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, handshake).await {
                Ok(Ok(s)) => stream_connection(s, addr, Transport::Tls, tx, max, id).await,
                outcome => {
                    let error = match outcome {
                        Ok(Err(e)) => e.to_string(),
                        _ => "timed out".to_string(),
                    };
                    tls_failed(&failures, "outbound", addr, &error);
                    let _ = tx.send(Input::ConnectFailed(addr, t));
                }
            }
        });
    }

    /// The configuration for TLS connections we open (system roots unless configured).
    fn tls_client(&mut self) -> Option<Arc<tokio_rustls::rustls::ClientConfig>> {
        if self.tls_client.is_none() {
            match super::tls::TlsOptions::default().build() {
                Ok(s) => self.tls_client = Some(s.client),
                Err(e) => {
                    tracing::warn!(error = %e, "SIP TLS: cannot build a client configuration");
                    return None;
                }
            }
        }
        self.tls_client.clone()
    }
}

/// Logs and counts a failed TLS handshake.
fn tls_failed(failures: &AtomicU64, direction: &'static str, addr: SocketAddr, error: &str) {
    failures.fetch_add(1, Ordering::Relaxed);
    metrics::counter!("dialbridge_sip_tls_handshake_failures_total", "direction" => direction)
        .increment(1);
    tracing::warn!(%addr, direction, %error, "SIP TLS handshake failed");
}

async fn udp_reader(udp: Arc<UdpSocket>, tx: mpsc::UnboundedSender<Input>, max: usize) {
    let mut buf = vec![0u8; 65_536];
    loop {
        let (n, src) = match udp.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                tracing::debug!(error = %e, "SIP UDP receive error");
                continue;
            }
        };
        let data = &buf[..n];
        if data.iter().all(|b| matches!(b, b'\r' | b'\n' | 0)) {
            continue; // keep-alive
        }
        match message::parse(data, max) {
            Ok(msg) => {
                if tx
                    .send(Input::Message(
                        msg,
                        Peer {
                            transport: Transport::Udp,
                            addr: src,
                            conn: None,
                        },
                    ))
                    .is_err()
                {
                    return;
                }
            }
            Err(rej) => {
                tracing::debug!(%src, reason = %rej.reason, "refused SIP datagram");
                if let Some(resp) = rej.response {
                    let _ = udp.send_to(&resp, src).await;
                }
            }
        }
    }
}

async fn tcp_acceptor(
    listener: TcpListener,
    tx: mpsc::UnboundedSender<Input>,
    max: usize,
    ids: Arc<AtomicU64>,
) {
    loop {
        match listener.accept().await {
            Ok((stream, addr)) => {
                let id = ids.fetch_add(1, Ordering::Relaxed);
                let _ = stream.set_nodelay(true);
                tokio::spawn(stream_connection(
                    stream,
                    addr,
                    Transport::Tcp,
                    tx.clone(),
                    max,
                    id,
                ));
            }
            Err(e) => {
                tracing::warn!(error = %e, "SIP TCP accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Accepts TLS connections: each handshake runs in its own task (with a time limit), so a slow,
/// silent or garbage-sending peer holds up nobody; a failed one is logged and counted.
async fn tls_acceptor(
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    tx: mpsc::UnboundedSender<Input>,
    max: usize,
    ids: Arc<AtomicU64>,
    failures: Arc<AtomicU64>,
) {
    loop {
        match listener.accept().await {
            Ok((stream, addr)) => {
                let _ = stream.set_nodelay(true);
                let (acceptor, tx, ids, failures) =
                    (acceptor.clone(), tx.clone(), ids.clone(), failures.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await
                    {
                        Ok(Ok(tls)) => {
                            let id = ids.fetch_add(1, Ordering::Relaxed);
                            stream_connection(tls, addr, Transport::Tls, tx, max, id).await
                        }
                        Ok(Err(e)) => tls_failed(&failures, "inbound", addr, &e.to_string()),
                        Err(_) => tls_failed(&failures, "inbound", addr, "timed out"),
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "SIP TLS accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// One stream connection (TCP, or TLS after its handshake): frames what arrives by
/// Content-Length and writes what the core sends, until either side closes.
async fn stream_connection<S>(
    stream: S,
    addr: SocketAddr,
    transport: Transport,
    tx: mpsc::UnboundedSender<Input>,
    max: usize,
    id: u64,
) where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut rd, mut wr) = tokio::io::split(stream);
    let (wtx, mut wrx) = mpsc::unbounded_channel::<Vec<u8>>();
    if tx
        .send(Input::StreamOpened {
            id,
            addr,
            transport,
            writer: wtx.clone(),
        })
        .is_err()
    {
        return;
    }
    let writer = tokio::spawn(async move {
        while let Some(bytes) = wrx.recv().await {
            if wr.write_all(&bytes).await.is_err() {
                break;
            }
        }
        let _ = wr.shutdown().await;
    });
    let mut framer = Framer::new(max);
    let mut buf = vec![0u8; 16_384];
    'read: loop {
        let n = match rd.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        for frame in framer.push(&buf[..n]) {
            match frame {
                Frame::Message(bytes) => match message::parse(&bytes, max) {
                    Ok(msg) => {
                        let _ = tx.send(Input::Message(
                            msg,
                            Peer {
                                transport,
                                addr,
                                conn: Some(id),
                            },
                        ));
                    }
                    Err(rej) => {
                        tracing::debug!(%addr, transport = transport.via_name(), reason = %rej.reason, "refused SIP message on a stream");
                        if let Some(resp) = rej.response {
                            let _ = wtx.send(resp);
                        }
                    }
                },
                Frame::Fatal { reason, response } => {
                    tracing::debug!(%addr, transport = transport.via_name(), %reason, "closing SIP stream connection");
                    if let Some(resp) = response {
                        let _ = wtx.send(resp);
                    }
                    break 'read;
                }
            }
        }
    }
    let _ = tx.send(Input::StreamClosed {
        id,
        addr,
        transport,
    });
    drop(wtx);
    // Let queued responses (a 400 before closing) go out.
    let _ = tokio::time::timeout(Duration::from_secs(2), writer).await;
}
