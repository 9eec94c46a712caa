//! The tokio driver for one call leg's media: owns the UDP socket (a port leased from the
//! configured range), runs the 20 ms clock and wires the sans-IO pieces together:
//! receive → [`RtpReceiver`] → relay to the connected peer leg at once, and through the
//! [`JitterBuffer`] to local consumers (in-band DTMF, recorder, taps, AMD); send ← DTMF, prompt or
//! tone, or audio relayed from a peer through the [`SwitchableLeg`].
//!
//! The SIP layer creates one `RtpSession` per call leg, puts `local_addr()` in its SDP, calls
//! `set_remote` with the peer's `c=`/`m=` address, and reads [`MediaEvent`]s.

use std::io::{Seek, SeekFrom, Write};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use webrtc_util::marshal::Marshal;

use super::amd::{AmdConfig, AmdDetector, AmdEvent};
use super::bridge::{PeerId, SwitchableLeg};
use super::frame::{Frame, FrameSource};
use super::g711::Codec;
use super::inband_dtmf::{InbandDtmfConfig, InbandDtmfDetector};
use super::jitter::{JitterBuffer, JitterStats, Playout};
use super::ports::{PortLease, SharedPorts};
use super::progress::{ProgressDetector, ProgressEvent};
use super::receiver::{Received, ReceiverConfig, ReceiverStats, RtpReceiver};
use super::recorder::{CallRecorder, Direction, RecordingLayout};
use super::rfc4733::DtmfSendConfig;
use super::sender::{PTIME_MS, RtpSender};
use super::tap::{MediaTap, TapFrame};
use super::wav::{WavEncoding, encode_samples, wav_header};

/// How a session is set up (from configuration plus the SDP negotiation).
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Address to bind (127.0.0.1 in tests; the media interface in production).
    pub bind_ip: IpAddr,
    /// Codec we send.
    pub codec: Codec,
    /// Payload type we send it with.
    pub payload_type: u8,
    /// Payload types we accept.
    pub receive: ReceiverConfig,
    /// Telephone-events we send.
    pub dtmf: DtmfSendConfig,
    /// Also look for DTMF tones in the audio (switched off for the rest of the session as soon as
    /// an RFC 4733 event arrives, so keys are not reported twice).
    pub inband_dtmf: bool,
    /// Report [`MediaEvent::Inactive`] after this long without RTP.
    pub inactivity_timeout: Option<Duration>,
    /// Jitter buffer delay in frames (for local consumers; relaying is not delayed).
    pub jitter_depth: usize,
    /// With no remote address set, send to wherever RTP comes from (symmetric RTP).
    pub latch_remote: bool,
    /// Once the remote address is known, drop RTP from any other address (stray or injected
    /// streams, late packets of a previous call on a reused port). Off by default: peers behind
    /// NAT send from an address other than the one in their SDP.
    pub strict_source: bool,
}

impl SessionConfig {
    /// PCMU with telephone-event 101, accepting PCMU/PCMA, on `bind_ip`.
    pub fn pcmu(bind_ip: IpAddr) -> Self {
        SessionConfig {
            bind_ip,
            codec: Codec::Pcmu,
            payload_type: 0,
            receive: ReceiverConfig::default(),
            dtmf: DtmfSendConfig::default(),
            inband_dtmf: false,
            inactivity_timeout: None,
            jitter_depth: 3,
            latch_remote: true,
            strict_source: false,
        }
    }

    /// From an SDP negotiation: the audio payload type chosen (0 or 8; `None` otherwise) and the
    /// peer's telephone-event payload type, if it offered one. We send what was chosen and accept
    /// both G.711 laws.
    pub fn negotiated(
        bind_ip: IpAddr,
        payload_type: u8,
        telephone_event: Option<u8>,
    ) -> Option<Self> {
        let codec = Codec::from_payload_type(payload_type)?;
        let mut c = SessionConfig::pcmu(bind_ip).with_codec(codec);
        c.receive.telephone_event = telephone_event.into_iter().collect();
        if let Some(pt) = telephone_event {
            c.dtmf.payload_type = pt;
        }
        Some(c)
    }

    /// The same with another codec sent.
    pub fn with_codec(mut self, codec: Codec) -> Self {
        self.codec = codec;
        self.payload_type = codec.payload_type();
        self
    }
}

/// What a session reports.
#[derive(Debug, Clone, PartialEq)]
pub enum MediaEvent {
    /// A key press (RFC 4733, or detected in the audio when `inband` is true).
    Dtmf {
        /// The key.
        digit: char,
        /// Detected in the audio rather than received as a telephone-event.
        inband: bool,
    },
    /// The prompt or tone given to `play` has finished.
    PlaybackFinished,
    /// No RTP for the configured inactivity timeout (reported once until RTP resumes).
    Inactive,
    /// The remote audio source changed (new SSRC or restarted sequence).
    SourceChanged {
        /// The new SSRC.
        ssrc: u32,
    },
    /// Answering-machine detection output.
    Amd(AmdEvent),
    /// A call-progress tone was recognised (see [`RtpSession::detect_progress_tones`]).
    Progress(ProgressEvent),
}

/// Counters of a session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionStats {
    /// Receive side.
    pub receiver: ReceiverStats,
    /// Playout side.
    pub jitter: JitterStats,
    /// RTP packets sent.
    pub sent: u64,
    /// Frames handed to the connected peer leg.
    pub relayed: u64,
    /// Frames dropped because the peer leg's queue was full.
    pub relay_dropped: u64,
    /// Send errors (e.g. ICMP unreachable surfaced by the OS).
    pub send_errors: u64,
    /// Datagrams dropped because they came from an address other than the remote one
    /// (`strict_source`).
    pub foreign_dropped: u64,
}

enum Command {
    Remote(SocketAddr),
    Play(Box<dyn FrameSource>),
    StopPlayback,
    Dtmf(String),
    Tap(MediaTap),
    Forward(Option<mpsc::Sender<(PeerId, Frame)>>),
    Peer(Option<PeerId>),
    StartRecording,
    StopRecording(RecordingLayout, WavEncoding, oneshot::Sender<Vec<u8>>),
    RecordTo(
        PathBuf,
        RecordingLayout,
        WavEncoding,
        oneshot::Sender<std::io::Result<()>>,
    ),
    FinishFile(oneshot::Sender<std::io::Result<u64>>),
    StartAmd(AmdConfig),
    StartProgress,
    SetCodec(Codec, u8, ReceiverConfig),
    Direction {
        send: bool,
        receive: bool,
    },
    Stats(oneshot::Sender<SessionStats>),
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A fresh relay identity, distinct from every session's (e.g. for a mixing room's frames).
pub fn next_peer_id() -> PeerId {
    PeerId(NEXT_ID.fetch_add(1, Ordering::Relaxed))
}

/// One call leg's media.
pub struct RtpSession {
    id: PeerId,
    local: SocketAddr,
    cmd: mpsc::UnboundedSender<Command>,
    relay: mpsc::Sender<(PeerId, Frame)>,
    events: mpsc::UnboundedReceiver<MediaEvent>,
    task: JoinHandle<()>,
    _lease: Option<PortLease>,
}

impl std::fmt::Debug for RtpSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RtpSession")
            .field("id", &self.id)
            .field("local", &self.local)
            .finish()
    }
}

impl RtpSession {
    /// Binds a socket (on an even port from `ports`, or any port when `None`) and starts the driver.
    pub async fn bind(
        config: SessionConfig,
        ports: Option<&SharedPorts>,
    ) -> std::io::Result<RtpSession> {
        let (socket, lease) = match ports {
            None => (UdpSocket::bind((config.bind_ip, 0)).await?, None),
            Some(pool) => {
                let mut last_err = None;
                let mut found = None;
                for _ in 0..pool.capacity().max(1) {
                    let Some(lease) = pool.lease() else { break };
                    match UdpSocket::bind((config.bind_ip, lease.port())).await {
                        Ok(s) => {
                            found = Some((s, Some(lease)));
                            break;
                        }
                        Err(e) => last_err = Some(e),
                    }
                }
                found.ok_or_else(|| {
                    last_err.unwrap_or_else(|| {
                        std::io::Error::new(
                            std::io::ErrorKind::AddrNotAvailable,
                            "RTP port range exhausted",
                        )
                    })
                })?
            }
        };
        RtpSession::start(config, socket, lease)
    }

    /// Binds a port chosen by the caller (e.g. from the SIP layer's own allocator; 0 = any).
    pub async fn bind_on(config: SessionConfig, port: u16) -> std::io::Result<RtpSession> {
        let socket = UdpSocket::bind((config.bind_ip, port)).await?;
        RtpSession::start(config, socket, None)
    }

    fn start(
        config: SessionConfig,
        socket: UdpSocket,
        lease: Option<PortLease>,
    ) -> std::io::Result<RtpSession> {
        let local = socket.local_addr()?;
        let id = next_peer_id();
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (relay_tx, relay_rx) = mpsc::channel(16);
        let (ev_tx, ev_rx) = mpsc::unbounded_channel();
        let driver = Driver::new(config, id, ev_tx);
        let task = tokio::spawn(driver.run(socket, cmd_rx, relay_rx));
        Ok(RtpSession {
            id,
            local,
            cmd: cmd_tx,
            relay: relay_tx,
            events: ev_rx,
            task,
            _lease: lease,
        })
    }

    /// Media direction from SDP (hold: `sendonly` = send only, e.g. music on hold; `inactive` =
    /// neither). While not receiving, incoming RTP is ignored and no inactivity is reported.
    pub fn set_direction(&self, send: bool, receive: bool) {
        self.send(Command::Direction { send, receive });
    }

    /// This leg's identity as a relay peer.
    pub fn id(&self) -> PeerId {
        self.id
    }

    /// The bound address (for the SDP `c=`/`m=` lines).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    fn send(&self, c: Command) {
        let _ = self.cmd.send(c);
    }

    /// Where to send RTP (from the remote SDP).
    pub fn set_remote(&self, addr: SocketAddr) {
        self.send(Command::Remote(addr));
    }

    /// Renegotiated codecs (re-INVITE).
    pub fn set_codec(&self, codec: Codec, payload_type: u8, receive: ReceiverConfig) {
        self.send(Command::SetCodec(codec, payload_type, receive));
    }

    /// Plays a prompt or tone (replacing any current one); [`MediaEvent::PlaybackFinished`] at the end.
    pub fn play(&self, source: Box<dyn FrameSource>) {
        self.send(Command::Play(source));
    }

    /// Stops the current prompt or tone (no `PlaybackFinished`).
    pub fn stop_playback(&self) {
        self.send(Command::StopPlayback);
    }

    /// Sends digits as RFC 4733 telephone-events.
    pub fn send_dtmf(&self, digits: &str) {
        self.send(Command::Dtmf(digits.to_owned()));
    }

    /// A copy of the audio both ways (after the jitter buffer inbound, as sent outbound).
    pub fn tap(&self, capacity: usize) -> mpsc::Receiver<TapFrame> {
        let (tap, rx) = MediaTap::channel(capacity);
        self.send(Command::Tap(tap));
        rx
    }

    /// Starts recording both directions.
    pub fn start_recording(&self) {
        self.send(Command::StartRecording);
    }

    /// Stops recording and returns the WAV file (empty if recording was never started).
    pub async fn stop_recording(&self, layout: RecordingLayout, encoding: WavEncoding) -> Vec<u8> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::StopRecording(layout, encoding, tx));
        rx.await.unwrap_or_default()
    }

    /// Starts recording both directions straight to a WAV file (written every second, so a long
    /// call holds only about a second of audio in memory). Finish with
    /// [`RtpSession::finish_recording_file`]; closing the session also finishes it.
    pub async fn record_to_file(
        &self,
        path: PathBuf,
        layout: RecordingLayout,
        encoding: WavEncoding,
    ) -> std::io::Result<()> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::RecordTo(path, layout, encoding, tx));
        rx.await
            .unwrap_or_else(|_| Err(std::io::Error::other("media session ended")))
    }

    /// Writes the rest of the file recording and its final header; returns the audio bytes written.
    pub async fn finish_recording_file(&self) -> std::io::Result<u64> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::FinishFile(tx));
        rx.await
            .unwrap_or_else(|_| Err(std::io::Error::other("media session ended")))
    }

    /// Starts answering-machine detection from now (the moment of answer).
    pub fn start_amd(&self, config: AmdConfig) {
        self.send(Command::StartAmd(config));
    }

    /// Starts looking for call-progress tones (SIT, busy, reorder, ringback) in what this leg
    /// receives, e.g. in early media before answer; each kind is reported once.
    pub fn detect_progress_tones(&self) {
        self.send(Command::StartProgress);
    }

    /// Sends the audio this leg receives to `other`, and makes `other` send it (its outgoing
    /// stream switches to this leg as its peer). One direction; see [`bridge`].
    pub fn connect_to(&self, other: &RtpSession) {
        self.send(Command::Forward(Some(other.relay.clone())));
        other.send(Command::Peer(Some(self.id)));
    }

    /// Where other pieces (a bridge partner, a mixing room) deliver frames for this leg to send.
    /// A frame is sent only when it comes from the peer set with [`RtpSession::listen_to`];
    /// deliver with `try_send` so a slow or closed leg never stalls the sender.
    pub fn input(&self) -> mpsc::Sender<(PeerId, Frame)> {
        self.relay.clone()
    }

    /// Sends every frame this leg receives, tagged with [`RtpSession::id`], to `sink` (a peer
    /// leg's [`RtpSession::input`] or a mixing room's), or nowhere.
    pub fn forward_to(&self, sink: Option<mpsc::Sender<(PeerId, Frame)>>) {
        self.send(Command::Forward(sink));
    }

    /// Makes this leg send the frames that arrive on its input from `peer` (and only those), or
    /// none; switching sets the marker bit on the next packet (same stream, no re-signalling).
    pub fn listen_to(&self, peer: Option<PeerId>) {
        self.send(Command::Peer(peer));
    }

    /// Stops relaying this leg's audio anywhere and stops sending any peer's audio on it.
    pub fn disconnect(&self) {
        self.send(Command::Forward(None));
        self.send(Command::Peer(None));
    }

    /// The next event; `None` once the session has ended.
    pub async fn next_event(&mut self) -> Option<MediaEvent> {
        self.events.recv().await
    }

    /// Counters.
    pub async fn stats(&self) -> SessionStats {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Stats(tx));
        rx.await.unwrap_or_default()
    }

    /// Stops the driver and releases the port.
    pub async fn close(self) {
        drop(self.cmd);
        let _ = self.task.await;
    }
}

/// Bridges two legs both ways. For an agent's long-lived leg, call this again with the next
/// customer: the agent's stream switches peer without any re-signalling; then `disconnect` the
/// previous customer.
pub fn bridge(a: &RtpSession, b: &RtpSession) {
    a.connect_to(b);
    b.connect_to(a);
}

struct Driver {
    config: SessionConfig,
    id: PeerId,
    events: mpsc::UnboundedSender<MediaEvent>,
    receiver: RtpReceiver,
    jitter: JitterBuffer<Frame>,
    leg: SwitchableLeg,
    remote: Option<SocketAddr>,
    player: Option<Box<dyn FrameSource>>,
    forward: Option<mpsc::Sender<(PeerId, Frame)>>,
    taps: Vec<MediaTap>,
    recorder: Option<CallRecorder>,
    file: Option<FileRecording>,
    ticks: u64,
    inband: Option<InbandDtmfDetector>,
    amd: Option<AmdDetector>,
    progress: Option<ProgressDetector>,
    started: Instant,
    inactive_reported: bool,
    last_frame: Option<Vec<i16>>,
    sending: bool,
    receiving: bool,
    stats: SessionStats,
}

impl Driver {
    fn new(config: SessionConfig, id: PeerId, events: mpsc::UnboundedSender<MediaEvent>) -> Self {
        let leg = SwitchableLeg::new(
            config.codec,
            config.payload_type,
            RtpSender::random(),
            config.dtmf,
        );
        Driver {
            receiver: RtpReceiver::new(config.receive.clone()),
            jitter: JitterBuffer::new(
                config.jitter_depth.max(1),
                config.jitter_depth.max(1) * 4 + 4,
            ),
            inband: config
                .inband_dtmf
                .then(|| InbandDtmfDetector::new(InbandDtmfConfig::default())),
            leg,
            id,
            events,
            remote: None,
            player: None,
            forward: None,
            taps: Vec::new(),
            recorder: None,
            file: None,
            ticks: 0,
            amd: None,
            progress: None,
            started: Instant::now(),
            inactive_reported: false,
            last_frame: None,
            sending: true,
            receiving: true,
            stats: SessionStats::default(),
            config,
        }
    }

    async fn run(
        mut self,
        socket: UdpSocket,
        mut cmd_rx: mpsc::UnboundedReceiver<Command>,
        mut relay_rx: mpsc::Receiver<(PeerId, Frame)>,
    ) {
        let mut buf = vec![0u8; 2048];
        let mut tick = tokio::time::interval(Duration::from_millis(PTIME_MS));
        tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                // Commands first: anything the caller asked before a packet arrived (a remote
                // address, a hold) applies to that packet. Then the clock, so pacing holds.
                biased;
                c = cmd_rx.recv() => match c {
                    None => break,
                    Some(c) => self.on_command(c),
                },
                _ = tick.tick() => {
                    let packets = self.on_tick(Instant::now());
                    self.transmit(&socket, packets).await;
                }
                r = socket.recv_from(&mut buf) => {
                    match r {
                        Ok((n, from)) => self.on_datagram(&buf[..n], from, Instant::now()),
                        // ICMP port unreachable from an earlier send shows up here on Linux.
                        Err(_) => continue,
                    }
                }
                Some((from, frame)) = relay_rx.recv() => {
                    let now = Instant::now();
                    if let Some(p) = self.leg.relay(from, &frame, now) {
                        self.outbound(&frame, now);
                        self.transmit(&socket, vec![p]).await;
                    }
                }
            }
        }
        if self.file.is_some() {
            let _ = self.finish_file();
        }
    }

    async fn transmit(&mut self, socket: &UdpSocket, packets: Vec<rtp::packet::Packet>) {
        let Some(remote) = self.remote.filter(|_| self.sending) else {
            return;
        };
        for p in packets {
            match p.marshal() {
                Ok(bytes) => match socket.send_to(&bytes, remote).await {
                    Ok(_) => self.stats.sent += 1,
                    Err(_) => self.stats.send_errors += 1,
                },
                Err(_) => self.stats.send_errors += 1,
            }
        }
    }

    fn emit(&self, e: MediaEvent) {
        let _ = self.events.send(e);
    }

    fn on_command(&mut self, c: Command) {
        match c {
            Command::Remote(a) => self.remote = Some(a),
            Command::Play(src) => self.player = Some(src),
            Command::StopPlayback => self.player = None,
            Command::Dtmf(d) => {
                // Invalid characters are skipped; the rest are sent.
                let valid: String = d
                    .chars()
                    .filter(|c| super::rfc4733::digit_to_event(*c).is_some())
                    .collect();
                let _ = self.leg.queue_dtmf(&valid);
            }
            Command::Tap(t) => self.taps.push(t),
            Command::Forward(f) => self.forward = f,
            Command::Peer(p) => self.leg.connect(p),
            Command::StartRecording => self.recorder = Some(CallRecorder::new(Instant::now())),
            Command::StopRecording(layout, enc, reply) => {
                if self.file.is_some() {
                    let _ = self.finish_file();
                    let _ = reply.send(Vec::new());
                    return;
                }
                let wav = self
                    .recorder
                    .take()
                    .map(|r| r.finish(layout, enc))
                    .unwrap_or_default();
                let _ = reply.send(wav);
            }
            Command::RecordTo(path, layout, encoding, reply) => {
                let opened = std::fs::File::create(&path).and_then(|mut f| {
                    f.write_all(&wav_header(encoding, super::recorder::channels(layout), 0))?;
                    Ok(f)
                });
                let result = opened.map(|file| {
                    self.recorder = Some(CallRecorder::new(Instant::now()));
                    self.file = Some(FileRecording {
                        file,
                        layout,
                        encoding,
                        data_len: 0,
                        error: None,
                    });
                });
                let _ = reply.send(result);
            }
            Command::FinishFile(reply) => {
                let _ = reply.send(self.finish_file());
            }
            Command::StartAmd(cfg) => self.amd = Some(AmdDetector::new(cfg)),
            Command::StartProgress => self.progress = Some(ProgressDetector::new()),
            Command::SetCodec(codec, pt, rx) => {
                self.leg.set_codec(codec, pt);
                self.receiver.set_config(rx);
            }
            Command::Direction { send, receive } => {
                self.sending = send;
                if receive && !self.receiving {
                    // Resuming: the inactivity clock restarts now.
                    self.started = Instant::now();
                    self.inactive_reported = false;
                }
                self.receiving = receive;
            }
            Command::Stats(reply) => {
                let mut s = self.stats;
                s.receiver = self.receiver.stats();
                s.jitter = self.jitter.stats();
                let _ = reply.send(s);
            }
        }
    }

    fn on_datagram(&mut self, bytes: &[u8], from: SocketAddr, now: Instant) {
        if !self.receiving {
            return;
        }
        if self.config.strict_source && self.remote.is_some_and(|r| r != from) {
            self.stats.foreign_dropped += 1;
            return;
        }
        let out = self.receiver.on_datagram(bytes, now);
        if self.remote.is_none()
            && self.config.latch_remote
            && self.receiver.last_packet() == Some(now)
        {
            self.remote = Some(from);
        }
        for r in out {
            match r {
                Received::Audio(a) => {
                    let frame = Frame::from_encoded(a.codec, a.payload);
                    if let Some(fwd) = &self.forward {
                        match fwd.try_send((self.id, frame.clone())) {
                            Ok(()) => self.stats.relayed += 1,
                            Err(mpsc::error::TrySendError::Full(_)) => {
                                self.stats.relay_dropped += 1
                            }
                            Err(mpsc::error::TrySendError::Closed(_)) => self.forward = None,
                        }
                    }
                    self.jitter.push(a.seq, a.timestamp, frame);
                }
                Received::Dtmf(d) => {
                    // A peer that sends telephone-events may also leave the tones in the audio:
                    // from now on trust the events only, so no key is reported twice.
                    self.inband = None;
                    self.emit(MediaEvent::Dtmf {
                        digit: d.digit,
                        inband: false,
                    });
                }
                Received::SourceChanged { ssrc } => {
                    self.jitter.reset();
                    self.emit(MediaEvent::SourceChanged { ssrc });
                }
            }
        }
    }

    fn on_tick(&mut self, now: Instant) -> Vec<rtp::packet::Packet> {
        self.ticks += 1;
        if self.ticks.is_multiple_of(50) {
            self.write_file(now);
        }
        // Inbound playout to local consumers.
        let pcm = match self.jitter.pop() {
            Playout::Frame(f) => Some(f.item.pcm),
            // Conceal one lost frame by repeating the previous one at half level.
            Playout::Lost(_) => Some(
                self.last_frame
                    .as_ref()
                    .map(|p| p.iter().map(|s| s / 2).collect())
                    .unwrap_or_else(|| vec![0; 160]),
            ),
            Playout::Empty => None,
        };
        if let Some(pcm) = pcm {
            self.inbound(&pcm, now);
            self.last_frame = Some(pcm);
        } else if let Some(amd) = &mut self.amd {
            // Nothing arrived: AMD still needs time to pass (silence).
            let evs = amd.push(&[0; 160], now);
            for e in evs {
                self.emit(MediaEvent::Amd(e));
            }
        }
        // Inactivity.
        if let Some(limit) = self.config.inactivity_timeout.filter(|_| self.receiving) {
            let last = self
                .receiver
                .last_packet()
                .unwrap_or(self.started)
                .max(self.started);
            if now.duration_since(last) >= limit {
                if !self.inactive_reported {
                    self.inactive_reported = true;
                    self.emit(MediaEvent::Inactive);
                }
            } else {
                self.inactive_reported = false;
            }
        }
        // Outbound: DTMF first, then our own prompt/tone.
        let dtmf = self.leg.tick_dtmf(now);
        if !dtmf.is_empty() {
            return dtmf;
        }
        if let Some(player) = &mut self.player {
            match player.next_frame() {
                Some(frame) => {
                    if let Some(p) = self.leg.send_local(&frame, now) {
                        self.outbound(&frame, now);
                        return vec![p];
                    }
                }
                None => {
                    self.player = None;
                    self.emit(MediaEvent::PlaybackFinished);
                }
            }
        }
        Vec::new()
    }

    // Appends what the recorder holds up to 300 ms ago to the file.
    fn write_file(&mut self, now: Instant) {
        let (Some(rec), Some(f)) = (&mut self.recorder, &mut self.file) else {
            return;
        };
        let samples = rec.drain(now, Duration::from_millis(300), f.layout);
        f.append(&samples);
    }

    fn finish_file(&mut self) -> std::io::Result<u64> {
        let Some(mut f) = self.file.take() else {
            return Err(std::io::Error::other("no file recording in progress"));
        };
        if let Some(mut rec) = self.recorder.take() {
            let rest = rec.drain_all(f.layout);
            f.append(&rest);
        }
        f.finish()
    }

    fn inbound(&mut self, pcm: &[i16], now: Instant) {
        if let Some(digit) = self.inband.as_mut().and_then(|det| det.push(pcm)) {
            self.emit(MediaEvent::Dtmf {
                digit,
                inband: true,
            });
        }
        if let Some(e) = self.progress.as_mut().and_then(|d| d.push(pcm, now)) {
            self.emit(MediaEvent::Progress(e));
        }
        if let Some(r) = &mut self.recorder {
            r.push(Direction::Inbound, pcm, now);
        }
        self.taps
            .retain_mut(|t| t.offer(Direction::Inbound, pcm, now));
        if let Some(amd) = &mut self.amd {
            let evs = amd.push(pcm, now);
            for e in evs {
                let _ = self.events.send(MediaEvent::Amd(e));
            }
        }
    }

    fn outbound(&mut self, frame: &Frame, now: Instant) {
        if let Some(r) = &mut self.recorder {
            r.push(Direction::Outbound, &frame.pcm, now);
        }
        self.taps
            .retain_mut(|t| t.offer(Direction::Outbound, &frame.pcm, now));
    }
}

/// A recording being written to a WAV file as the call goes.
struct FileRecording {
    file: std::fs::File,
    layout: RecordingLayout,
    encoding: WavEncoding,
    data_len: u64,
    error: Option<std::io::Error>,
}

impl FileRecording {
    fn append(&mut self, samples: &[i16]) {
        if samples.is_empty() || self.error.is_some() {
            return;
        }
        let bytes = encode_samples(self.encoding, samples);
        match self.file.write_all(&bytes) {
            Ok(()) => self.data_len += bytes.len() as u64,
            Err(e) => self.error = Some(e),
        }
    }

    fn finish(mut self) -> std::io::Result<u64> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        if !self.data_len.is_multiple_of(2) {
            self.file.write_all(&[0])?;
        }
        let header = wav_header(
            self.encoding,
            super::recorder::channels(self.layout),
            self.data_len as usize,
        );
        self.file.seek(SeekFrom::Start(0))?;
        self.file.write_all(&header)?;
        self.file.flush()?;
        Ok(self.data_len)
    }
}
