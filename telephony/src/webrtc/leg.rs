//! The tokio driver of one browser leg: owns the leg's UDP socket and str0m's [`Rtc`], feeds it
//! datagrams and time, writes out what it asks to send, and turns its events into frames and
//! [`WebRtcEvent`]s. All protocol work (ICE, DTLS, SRTP, RTP/RTCP) is in str0m; the audio
//! decisions are in [`super::audio`].

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use str0m::media::{MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Event, IceConnectionState, Input, Output, Rtc};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::audio::{Outgoing, Reframer, g711_of};
use crate::media::bridge::PeerId;
use crate::media::frame::{Frame, FrameSource};
use crate::media::g711::Codec;
use crate::media::ports::PortLease;

/// Why a browser leg ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndReason {
    /// We closed it ([`WebRtcLeg::close`] or the handle was dropped).
    Closed,
    /// The browser went away: ICE consent lost (page closed, network gone) or a DTLS close.
    Disconnected,
    /// ICE/DTLS never completed within the configured time.
    ConnectTimeout,
    /// str0m or the socket failed; the text says how.
    Failed(String),
}

impl EndReason {
    /// A short label for metrics and records: `closed`, `disconnected`, `connect_timeout`, `failed`.
    pub fn label(&self) -> &'static str {
        match self {
            EndReason::Closed => "closed",
            EndReason::Disconnected => "disconnected",
            EndReason::ConnectTimeout => "connect_timeout",
            EndReason::Failed(_) => "failed",
        }
    }
}

/// Counters of one leg.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WebRtcStats {
    /// 20 ms frames received from the browser.
    pub frames_in: u64,
    /// Frames written toward the browser.
    pub frames_out: u64,
    /// Received frames dropped because the consumer was full.
    pub frames_dropped: u64,
    /// Relayed frames not sent (wrong peer, or a local source was playing).
    pub frames_ignored: u64,
    /// Datagrams str0m could not use (not STUN/DTLS/RTP, or rejected).
    pub bad_datagrams: u64,
}

/// What a leg reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebRtcEvent {
    /// ICE and DTLS are up: audio flows from now on.
    Connected,
    /// A local source started with [`WebRtcLeg::play`] ended.
    PlaybackFinished,
    /// The leg is over (always the last event), with its final counters.
    Ended {
        /// Why.
        reason: EndReason,
        /// Final counters.
        stats: WebRtcStats,
    },
}

pub(crate) enum Command {
    Play(Box<dyn FrameSource>),
    StopPlayback,
    Forward(Option<mpsc::Sender<(PeerId, Frame)>>),
    Listen(Option<PeerId>),
    Stats(oneshot::Sender<WebRtcStats>),
    Close,
}

/// A browser's audio leg. Dropping it closes the leg.
pub struct WebRtcLeg {
    id: PeerId,
    local: SocketAddr,
    codec: Codec,
    cmd: mpsc::UnboundedSender<Command>,
    relay: mpsc::Sender<(PeerId, Frame)>,
    events: mpsc::UnboundedReceiver<WebRtcEvent>,
    task: Option<JoinHandle<()>>,
    _lease: Option<PortLease>,
}

impl std::fmt::Debug for WebRtcLeg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebRtcLeg")
            .field("id", &self.id)
            .field("local", &self.local)
            .field("codec", &self.codec)
            .finish()
    }
}

impl WebRtcLeg {
    pub(crate) fn start(
        rtc: Rtc,
        mid: Mid,
        codec: Codec,
        socket: UdpSocket,
        lease: Option<PortLease>,
        connect_timeout: Duration,
    ) -> std::io::Result<WebRtcLeg> {
        let local = socket.local_addr()?;
        let id = crate::media::session::next_peer_id();
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (relay_tx, relay_rx) = mpsc::channel(16);
        let (ev_tx, ev_rx) = mpsc::unbounded_channel();
        let driver = Driver {
            rtc,
            mid,
            socket,
            local,
            out: Outgoing::new(codec),
            reframer: Reframer::new(),
            forward: None,
            id,
            events: ev_tx,
            stats: WebRtcStats::default(),
            start: Instant::now(),
            connected: false,
            connect_timeout,
        };
        metrics::gauge!("dialbridge_webrtc_legs_active").increment(1.0);
        let task = tokio::spawn(driver.run(cmd_rx, relay_rx));
        Ok(WebRtcLeg {
            id,
            local,
            codec,
            cmd: cmd_tx,
            relay: relay_tx,
            events: ev_rx,
            task: Some(task),
            _lease: lease,
        })
    }

    /// The identity frames from this leg carry (what a SIP leg `listen_to`s).
    pub fn id(&self) -> PeerId {
        self.id
    }

    /// The UDP address in the answer's candidate.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The G.711 law negotiated with the browser.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// Where other pieces deliver frames for the browser; only frames from the peer set with
    /// [`WebRtcLeg::listen_to`] are sent. Deliver with `try_send`.
    pub fn input(&self) -> mpsc::Sender<(PeerId, Frame)> {
        self.relay.clone()
    }

    /// Sends every 20 ms frame received from the browser, tagged with [`WebRtcLeg::id`], to
    /// `sink` (a SIP leg's `RtpSession::input`, a mixing room's input, a test), or nowhere.
    pub fn forward_to(&self, sink: Option<mpsc::Sender<(PeerId, Frame)>>) {
        let _ = self.cmd.send(Command::Forward(sink));
    }

    /// Sends the browser the frames arriving on [`WebRtcLeg::input`] from `peer`, or none.
    pub fn listen_to(&self, peer: Option<PeerId>) {
        let _ = self.cmd.send(Command::Listen(peer));
    }

    /// Plays a local source to the browser (ahead of relayed audio, until it ends:
    /// [`WebRtcEvent::PlaybackFinished`]).
    pub fn play(&self, source: Box<dyn FrameSource>) {
        let _ = self.cmd.send(Command::Play(source));
    }

    /// Stops local playback.
    pub fn stop_playback(&self) {
        let _ = self.cmd.send(Command::StopPlayback);
    }

    /// Counters so far (the final ones come with [`WebRtcEvent::Ended`]).
    pub async fn stats(&self) -> WebRtcStats {
        let (tx, rx) = oneshot::channel();
        let _ = self.cmd.send(Command::Stats(tx));
        rx.await.unwrap_or_default()
    }

    /// The next event; `None` after [`WebRtcEvent::Ended`].
    pub async fn next_event(&mut self) -> Option<WebRtcEvent> {
        self.events.recv().await
    }

    /// Ends the leg from our side and waits for the driver; returns the final counters.
    pub async fn close(mut self) -> WebRtcStats {
        let _ = self.cmd.send(Command::Close);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        let mut last = WebRtcStats::default();
        while let Ok(ev) = self.events.try_recv() {
            if let WebRtcEvent::Ended { stats, .. } = ev {
                last = stats;
            }
        }
        last
    }
}

struct Driver {
    rtc: Rtc,
    mid: Mid,
    socket: UdpSocket,
    local: SocketAddr,
    out: Outgoing,
    reframer: Reframer,
    forward: Option<mpsc::Sender<(PeerId, Frame)>>,
    id: PeerId,
    events: mpsc::UnboundedSender<WebRtcEvent>,
    stats: WebRtcStats,
    start: Instant,
    connected: bool,
    connect_timeout: Duration,
}

impl Driver {
    fn elapsed_samples(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.start).as_micros() as u64 * 8 / 1000
    }

    /// Runs str0m until it wants input; `Err` ends the leg.
    async fn drain(&mut self) -> Result<Instant, EndReason> {
        loop {
            if !self.rtc.is_alive() {
                return Err(EndReason::Disconnected);
            }
            match self.rtc.poll_output() {
                Ok(Output::Timeout(t)) => return Ok(t),
                Ok(Output::Transmit(t)) => {
                    // A lost datagram is like a lost packet on the wire; ICE/DTLS retransmit.
                    let _ = self.socket.send_to(&t.contents, t.destination).await;
                }
                Ok(Output::Event(e)) => self.on_event(e)?,
                Err(e) => return Err(EndReason::Failed(e.to_string())),
            }
        }
    }

    fn on_event(&mut self, e: Event) -> Result<(), EndReason> {
        match e {
            Event::Connected if !self.connected => {
                self.connected = true;
                let _ = self.events.send(WebRtcEvent::Connected);
            }
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                return Err(EndReason::Disconnected);
            }
            Event::MediaData(d) => {
                let Some(codec) = g711_of(d.params.spec().codec) else {
                    self.stats.bad_datagrams += 1;
                    return Ok(());
                };
                if !d.contiguous {
                    self.reframer.reset();
                }
                for frame in self.reframer.push(codec, &d.data) {
                    self.stats.frames_in += 1;
                    if let Some(sink) = &self.forward {
                        match sink.try_send((self.id, frame)) {
                            Ok(()) => {}
                            Err(mpsc::error::TrySendError::Full(_)) => {
                                self.stats.frames_dropped += 1
                            }
                            Err(mpsc::error::TrySendError::Closed(_)) => self.forward = None,
                        }
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn write(&mut self, frame: super::audio::OutFrame, now: Instant) {
        if !self.connected {
            return;
        }
        let Some(writer) = self.rtc.writer(self.mid) else {
            return;
        };
        let want = self.out.codec();
        let Some(pt) = writer
            .payload_params()
            .find(|p| g711_of(p.spec().codec) == Some(want))
            .map(|p| p.pt())
        else {
            return;
        };
        let time = MediaTime::new(frame.rtp_time, str0m::media::Frequency::EIGHT_KHZ);
        if writer.write(pt, now, time, frame.payload.to_vec()).is_ok() {
            self.stats.frames_out += 1;
        }
    }

    fn on_command(&mut self, c: Command) -> Option<EndReason> {
        match c {
            Command::Play(s) => self.out.play(s),
            Command::StopPlayback => {
                self.out.stop();
            }
            Command::Forward(sink) => self.forward = sink,
            Command::Listen(peer) => self.out.listen_to(peer),
            Command::Stats(tx) => {
                let _ = tx.send(self.snapshot());
            }
            Command::Close => return Some(EndReason::Closed),
        }
        None
    }

    fn snapshot(&self) -> WebRtcStats {
        WebRtcStats {
            frames_ignored: self.out.ignored,
            ..self.stats
        }
    }

    async fn run(
        mut self,
        mut cmd: mpsc::UnboundedReceiver<Command>,
        mut relay: mpsc::Receiver<(PeerId, Frame)>,
    ) {
        let mut buf = vec![0u8; 2000];
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let reason = loop {
            let deadline = match self.drain().await {
                Ok(t) => t,
                Err(r) => break r,
            };
            if !self.connected && self.start.elapsed() > self.connect_timeout {
                break EndReason::ConnectTimeout;
            }
            let sleep = tokio::time::sleep_until(tokio::time::Instant::from_std(deadline));
            let input_time;
            tokio::select! {
                r = self.socket.recv_from(&mut buf) => {
                    input_time = Instant::now();
                    let (n, source) = match r {
                        Ok(v) => v,
                        // ICMP port unreachable and the like surface here on Linux: keep going.
                        Err(_) => continue,
                    };
                    let Ok(contents) = buf[..n].try_into() else {
                        self.stats.bad_datagrams += 1;
                        continue;
                    };
                    let input = Input::Receive(
                        input_time,
                        Receive { proto: Protocol::Udp, source, destination: self.local, contents },
                    );
                    if !self.rtc.accepts(&input) {
                        self.stats.bad_datagrams += 1;
                        continue;
                    }
                    if let Err(e) = self.rtc.handle_input(input) {
                        break EndReason::Failed(e.to_string());
                    }
                }
                _ = sleep => {
                    if let Err(e) = self.rtc.handle_input(Input::Timeout(Instant::now())) {
                        break EndReason::Failed(e.to_string());
                    }
                }
                c = cmd.recv() => match c {
                    Some(c) => if let Some(r) = self.on_command(c) { break r },
                    None => break EndReason::Closed,
                },
                Some((from, frame)) = relay.recv() => {
                    let now = Instant::now();
                    if let Some(f) = self.out.relay(from, &frame, self.elapsed_samples(now)) {
                        self.write(f, now);
                    }
                }
                _ = tick.tick() => {
                    let now = Instant::now();
                    let (frame, finished) = self.out.tick(self.elapsed_samples(now));
                    if let Some(f) = frame {
                        self.write(f, now);
                    }
                    if finished {
                        let _ = self.events.send(WebRtcEvent::PlaybackFinished);
                    }
                    if let Err(e) = self.rtc.handle_input(Input::Timeout(now)) {
                        break EndReason::Failed(e.to_string());
                    }
                }
            }
        };
        self.rtc.disconnect();
        let stats = self.snapshot();
        tracing::debug!(leg = self.id.0, ?reason, ?stats, "webrtc leg ended");
        metrics::gauge!("dialbridge_webrtc_legs_active").decrement(1.0);
        metrics::counter!("dialbridge_webrtc_legs_total", "end" => reason.label()).increment(1);
        let _ = self.events.send(WebRtcEvent::Ended { reason, stats });
    }
}
