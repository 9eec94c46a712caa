//! The tokio driver: owns the UDP socket and the TCP listener/connections, feeds the sans-IO
//! [`Endpoint`] and carries out its effects (send, arm timers, publish call events).
//!
//! One task owns the endpoint; socket readers parse in their own tasks (parsing is pure) and send
//! it parsed messages, so a malformed message is answered (400/513) or dropped before it ever
//! reaches the core. Timers live in one ordered map keyed by deadline.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use foundation::lifecycle::Lifecycle;
use rsip::SipMessage;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{broadcast, mpsc, oneshot};

use super::call::{CallEvent, CallId, Command, Originate, Registration, Transport};
use super::endpoint::{Effect, Endpoint, EndpointConfig, Peer, TimerKey};
use super::framing::{Frame, Framer};
use super::message;
use super::registrar::Binding;

/// Counters for tests and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub active_calls: usize,
    pub inbound_calls_created: u64,
    pub client_transactions: usize,
    pub server_transactions: usize,
    pub rtp_ports_available: usize,
    pub tcp_connections: usize,
}

pub(crate) enum Input {
    Message(SipMessage, Peer),
    Command(Command),
    Stats(oneshot::Sender<Stats>),
    Bindings(String, oneshot::Sender<Vec<Binding>>),
    TcpOpened {
        id: u64,
        addr: SocketAddr,
        writer: mpsc::UnboundedSender<Vec<u8>>,
    },
    TcpClosed {
        id: u64,
        addr: SocketAddr,
    },
    TcpConnectFailed(SocketAddr),
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
        // The Contact's own address when it is an IP literal, else where the REGISTER came from.
        let addr = super::dialog::uri_addr(&b.contact).unwrap_or(b.source);
        let transport = if b.tcp || super::dialog::uri_wants_tcp(&b.contact) {
            Transport::Tcp
        } else {
            Transport::Udp
        };
        Some(self.originate(Originate {
            request_uri: Some(b.contact.clone()),
            to_user: user.to_string(),
            from_user: from_user.to_string(),
            trunks: vec![super::call::Trunk {
                addr,
                transport,
                credentials: None,
            }],
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

/// Binds the sockets and starts the driver; returns the bound addresses and the handle.
pub async fn spawn(
    udp_bind: SocketAddr,
    tcp_bind: SocketAddr,
    mut cfg: EndpointConfig,
    max_message_bytes: usize,
    lifecycle: Lifecycle,
) -> anyhow::Result<(SocketAddr, SocketAddr, SipHandle)> {
    let udp = Arc::new(
        UdpSocket::bind(udp_bind)
            .await
            .map_err(|e| anyhow::anyhow!("cannot bind SIP UDP on {udp_bind}: {e}"))?,
    );
    let tcp = TcpListener::bind(tcp_bind)
        .await
        .map_err(|e| anyhow::anyhow!("cannot bind SIP TCP on {tcp_bind}: {e}"))?;
    let (udp_addr, tcp_addr) = (udp.local_addr()?, tcp.local_addr()?);
    cfg.udp_addr = udp_addr;
    cfg.tcp_addr = tcp_addr;
    let ids = Arc::new(AtomicU64::new(1));
    let (tx, rx) = mpsc::unbounded_channel();
    let (events, _) = broadcast::channel(4096);
    let handle = SipHandle {
        tx: tx.clone(),
        ids: ids.clone(),
        events: events.clone(),
    };
    let conn_ids = Arc::new(AtomicU64::new(1));

    tokio::spawn(udp_reader(udp.clone(), tx.clone(), max_message_bytes));
    tokio::spawn(tcp_acceptor(
        tcp,
        tx.clone(),
        max_message_bytes,
        conn_ids.clone(),
    ));
    let core = Core {
        ep: Endpoint::new(cfg, ids),
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
    };
    tokio::spawn(core.run(rx));
    Ok((udp_addr, tcp_addr, handle))
}

struct Core {
    ep: Endpoint,
    udp: Arc<UdpSocket>,
    tx: mpsc::UnboundedSender<Input>,
    events: broadcast::Sender<CallEvent>,
    timers: BTreeMap<(Instant, u64), TimerKey>,
    timer_seq: u64,
    conns: HashMap<u64, (SocketAddr, mpsc::UnboundedSender<Vec<u8>>)>,
    conn_by_addr: HashMap<SocketAddr, u64>,
    connecting: HashMap<SocketAddr, Vec<Vec<u8>>>,
    conn_ids: Arc<AtomicU64>,
    max_message_bytes: usize,
    /// Calls in progress, each held open in the lifecycle's tracker until it ends.
    tracked: HashMap<CallId, oneshot::Sender<()>>,
    lifecycle: Lifecycle,
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
                    tcp_connections: self.conns.len(),
                });
            }
            Input::Bindings(user, reply) => {
                let _ = reply.send(self.ep.bindings(&user, now));
            }
            Input::TcpOpened { id, addr, writer } => {
                for bytes in self.connecting.remove(&addr).unwrap_or_default() {
                    let _ = writer.send(bytes);
                }
                self.conns.insert(id, (addr, writer));
                self.conn_by_addr.insert(addr, id);
            }
            Input::TcpConnectFailed(addr) => {
                self.connecting.remove(&addr);
                self.ep.on_transport_error(
                    &Peer {
                        transport: Transport::Tcp,
                        addr,
                        conn: None,
                    },
                    now,
                );
            }
            Input::TcpClosed { id, addr } => {
                self.conns.remove(&id);
                if self.conn_by_addr.get(&addr) == Some(&id) {
                    self.conn_by_addr.remove(&addr);
                }
                self.connecting.remove(&addr);
            }
        }
        self.effects();
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
            Transport::Tcp => {
                let id = peer
                    .conn
                    .filter(|c| self.conns.contains_key(c))
                    .or_else(|| self.conn_by_addr.get(&peer.addr).copied());
                if let Some((_, w)) = id.and_then(|id| self.conns.get(&id)) {
                    let _ = w.send(bytes);
                    return;
                }
                let first = !self.connecting.contains_key(&peer.addr);
                self.connecting.entry(peer.addr).or_default().push(bytes);
                if first {
                    let (tx, ids, max, addr) = (
                        self.tx.clone(),
                        self.conn_ids.clone(),
                        self.max_message_bytes,
                        peer.addr,
                    );
                    tokio::spawn(async move {
                        match TcpStream::connect(addr).await {
                            Ok(s) => {
                                tcp_connection(
                                    s,
                                    addr,
                                    tx,
                                    max,
                                    ids.fetch_add(1, Ordering::Relaxed),
                                )
                                .await
                            }
                            Err(e) => {
                                tracing::debug!(%addr, error = %e, "SIP TCP connect failed");
                                let _ = tx.send(Input::TcpConnectFailed(addr));
                            }
                        }
                    });
                }
            }
        }
    }
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
                tokio::spawn(tcp_connection(stream, addr, tx.clone(), max, id));
            }
            Err(e) => {
                tracing::warn!(error = %e, "SIP TCP accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn tcp_connection(
    stream: TcpStream,
    addr: SocketAddr,
    tx: mpsc::UnboundedSender<Input>,
    max: usize,
    id: u64,
) {
    let _ = stream.set_nodelay(true);
    let (mut rd, mut wr) = stream.into_split();
    let (wtx, mut wrx) = mpsc::unbounded_channel::<Vec<u8>>();
    if tx
        .send(Input::TcpOpened {
            id,
            addr,
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
                                transport: Transport::Tcp,
                                addr,
                                conn: Some(id),
                            },
                        ));
                    }
                    Err(rej) => {
                        tracing::debug!(%addr, reason = %rej.reason, "refused SIP message on TCP");
                        if let Some(resp) = rej.response {
                            let _ = wtx.send(resp);
                        }
                    }
                },
                Frame::Fatal { reason, response } => {
                    tracing::debug!(%addr, %reason, "closing SIP TCP connection");
                    if let Some(resp) = response {
                        let _ = wtx.send(resp);
                    }
                    break 'read;
                }
            }
        }
    }
    let _ = tx.send(Input::TcpClosed { id, addr });
    drop(wtx);
    // Let queued responses (a 400 before closing) go out.
    let _ = tokio::time::timeout(Duration::from_secs(2), writer).await;
}
