//! The browser softphone's media: WebRTC audio between an agent's browser and the appliance,
//! through str0m (a sans-IO WebRTC stack: ICE, DTLS, SRTP, RTP/RTCP) run by a thin tokio driver.
//!
//! The browser and the appliance negotiate G.711 only (PCMU, then PCMA; every browser offers
//! both), so a browser leg and a SIP leg exchange the same 20 ms frames the rest of
//! [`crate::media`] uses, bit-exact when both sides took the same law, with no transcoding to Opus.
//!
//! # Use
//! 1. `WebRtcEndpoint::new(WebRtcConfig { bind_ip, advertise_ip, connect_timeout }, ports)`.
//! 2. The page sends its offer (the whole SDP, after ICE gathering completed, so no trickle) over
//!    the desktop's signalling socket; `accept_offer(&sdp).await` returns the answer SDP for the
//!    page's `setRemoteDescription`, and the [`WebRtcLeg`]. A bad offer is an error naming why
//!    ([`WebRtcError`]); nothing is left running.
//! 3. [`attach`] the leg to a SIP call (`CallControl`), or at the media layer [`connect`] it with a
//!    SIP leg's [`RtpSession`] (both ways; calling it again with
//!    another session switches the agent's audio without re-signalling the browser), or
//!    `forward_to` / `listen_to` / `input` for a mixing room, or `play` a prompt or tone.
//! 4. Read [`WebRtcEvent`]s: `Connected`, `PlaybackFinished`, and always last
//!    `Ended { reason, stats }` — the page closed (ICE consent lost: [`EndReason::Disconnected`]),
//!    it never connected ([`EndReason::ConnectTimeout`]) or we closed it ([`WebRtcLeg::close`],
//!    or the handle dropped).
//!
//! Metrics: `dialbridge_webrtc_legs_active` (gauge) and `dialbridge_webrtc_legs_total{end}`
//! (`closed`, `disconnected`, `connect_timeout`, `failed`).
//!
//! Each leg has its own UDP port (from the RTP port range when one is given) on `bind_ip`, offered
//! as one host candidate (`advertise_ip` when the agents reach the appliance through another
//! address). No STUN/TURN: agents' browsers reach the appliance's address directly, as they do
//! its web console. Keypad digits go over the signalling socket and are sent with
//! `CallControl::send_dtmf` (RFC 4733 on the SIP leg), not as browser telephone-events.
//!
//! # Chromium on loopback (the tests' recipe)
//! Debian's `chromium` leaves loopback out of ICE gathering; `--allow-loopback-in-peer-connection`
//! makes it offer a `127.0.0.1` host candidate (checked with chromium 156). With
//! `--use-fake-ui-for-media-stream --use-fake-device-for-media-stream
//! --use-file-for-fake-audio-capture=FILE.wav` getUserMedia grants itself and captures the file
//! (looped), and because the page holds a capture permission chromium puts plain addresses, not
//! mDNS names, in its candidates. The page must be a secure context: `http://127.0.0.1` is one.
//! Add `--autoplay-policy=no-user-gesture-required` so the page's `AudioContext` runs without a
//! click. Remote audio is analysed with an `AnalyserNode` fed by `createMediaStreamSource` of the
//! remote stream, which the page also plays in a muted `<audio>` element (Chromium has long
//! needed that before it feeds a remote WebRTC track to WebAudio; not re-checked without it).
//! See `tests/console/webrtc.mjs` and `webrtc.html`; `telephony/tests/webrtc_browser.rs` runs it.
//!
//! # Measured (loopback, debug build, 2 shared cores)
//! - Chromium 156: offer → answer → ICE+DTLS → the page detects the appliance's tone in
//!   0.5–0.65 s; the appliance has detected the browser's tone (200 ms of it) before that.
//! - The page's `pc.close()` ends the leg (`Disconnected`) before the browser process has exited;
//!   a peer that vanishes without a word (tab killed, network gone) is noticed by ICE after
//!   19.6 s, so the web layer should also close the leg when the agent's signalling socket drops.
//! - str0m as the peer: connected, and audio both ways, within 0.2 s; `accept_offer` (socket,
//!   DTLS certificate, answer) about 2 ms.
//! - Build: str0m 0.24 with aws-lc-rs adds about 100 crates; their clean debug build took 3 min
//!   9 s wall (1 min 40 s CPU, niced beside other builds), mostly aws-lc-sys (C).

pub mod audio;
pub mod leg;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::change::SdpOffer;
use str0m::media::{MediaKind, Mid};
use str0m::{Candidate, Rtc, RtcConfig};
use tokio::net::UdpSocket;

use crate::control::room::Route;
use crate::control::{CallControl, ControlError};
use crate::media::g711::Codec;
use crate::media::ports::{PortLease, SharedPorts};
use crate::media::session::RtpSession;

pub use leg::{EndReason, WebRtcEvent, WebRtcLeg, WebRtcStats};

/// Where browser legs live.
#[derive(Debug, Clone)]
pub struct WebRtcConfig {
    /// Address the legs' UDP sockets bind.
    pub bind_ip: IpAddr,
    /// Address put in the answer's candidate; `bind_ip` when `None` (which must then be a
    /// concrete address, not `0.0.0.0`).
    pub advertise_ip: Option<IpAddr>,
    /// A leg whose ICE and DTLS have not completed by then ends with
    /// [`EndReason::ConnectTimeout`].
    pub connect_timeout: Duration,
}

impl WebRtcConfig {
    /// Legs on `ip`, 20 s to connect.
    pub fn on(ip: IpAddr) -> Self {
        WebRtcConfig {
            bind_ip: ip,
            advertise_ip: None,
            connect_timeout: Duration::from_secs(20),
        }
    }
}

/// Why an offer was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum WebRtcError {
    /// The SDP did not parse.
    #[error("the offer is not valid SDP: {0}")]
    BadOffer(String),
    /// str0m refused the offer (e.g. no ICE credentials or DTLS fingerprint).
    #[error("the offer was refused: {0}")]
    Refused(String),
    /// The offer has no audio section.
    #[error("the offer has no audio")]
    NoAudio,
    /// The offer's audio has neither PCMU nor PCMA.
    #[error("the offer's audio has neither PCMU nor PCMA")]
    NoG711,
    /// The advertised address cannot be an ICE candidate.
    #[error("{0} cannot be offered as an ICE candidate (set advertise_ip)")]
    BadAddress(IpAddr),
    /// No UDP port could be bound.
    #[error("binding the leg's UDP port: {0}")]
    Io(#[from] std::io::Error),
}

/// Accepts browsers' offers and starts their legs.
#[derive(Debug, Clone)]
pub struct WebRtcEndpoint {
    config: WebRtcConfig,
    ports: Option<SharedPorts>,
    crypto: Arc<str0m::config::CryptoProvider>,
}

impl WebRtcEndpoint {
    /// An endpoint; legs take their ports from `ports` (any free port when `None`).
    pub fn new(config: WebRtcConfig, ports: Option<SharedPorts>) -> Result<Self, WebRtcError> {
        let ip = config.advertise_ip.unwrap_or(config.bind_ip);
        Candidate::host(SocketAddr::new(ip, 9), "udp").map_err(|_| WebRtcError::BadAddress(ip))?;
        Ok(WebRtcEndpoint {
            config,
            ports,
            crypto: Arc::new(str0m::crypto::from_feature_flags()),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &WebRtcConfig {
        &self.config
    }

    /// Answers a browser's offer: the answer SDP and the running leg.
    pub async fn accept_offer(&self, offer_sdp: &str) -> Result<(String, WebRtcLeg), WebRtcError> {
        let offer = SdpOffer::from_sdp_string(offer_sdp)
            .map_err(|e| WebRtcError::BadOffer(e.to_string()))?;
        let now = Instant::now();
        let mut rtc: Rtc = RtcConfig::new()
            .set_crypto_provider(self.crypto.clone())
            .clear_codecs()
            .enable_pcmu(true, false)
            .enable_pcma(true, false)
            .build(now);
        let (socket, lease) = self.bind().await?;
        let advertised = SocketAddr::new(
            self.config.advertise_ip.unwrap_or(self.config.bind_ip),
            socket.local_addr()?.port(),
        );
        let candidate = Candidate::host(advertised, "udp")
            .map_err(|_| WebRtcError::BadAddress(advertised.ip()))?;
        rtc.add_local_candidate(candidate);
        let answer = rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| WebRtcError::Refused(e.to_string()))?;
        // str0m announces media sections only once connected; the offer names the audio one.
        let mid = audio_mid(offer_sdp)
            .map(Mid::from)
            .filter(|m| rtc.media(*m).is_some_and(|m| m.kind() == MediaKind::Audio))
            .ok_or(WebRtcError::NoAudio)?;
        let codec = rtc
            .writer(mid)
            .and_then(|w| {
                w.payload_params()
                    .find_map(|p| audio::g711_of(p.spec().codec))
            })
            .ok_or(WebRtcError::NoG711)?;
        let leg = WebRtcLeg::start(rtc, mid, codec, socket, lease, self.config.connect_timeout)?;
        Ok((answer.to_sdp_string(), leg))
    }

    async fn bind(&self) -> Result<(UdpSocket, Option<PortLease>), WebRtcError> {
        let ip = self.config.bind_ip;
        let Some(pool) = &self.ports else {
            return Ok((UdpSocket::bind((ip, 0)).await?, None));
        };
        let mut last = None;
        for _ in 0..pool.capacity().max(1) {
            let Some(lease) = pool.lease() else { break };
            match UdpSocket::bind((ip, lease.port())).await {
                Ok(s) => return Ok((s, Some(lease))),
                Err(e) => last = Some(e),
            }
        }
        Err(WebRtcError::Io(last.unwrap_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::AddrNotAvailable,
                "RTP port range exhausted",
            )
        })))
    }
}

/// Connects a browser leg and a SIP leg both ways: what the caller says goes to the browser and
/// what the agent says goes to the caller. Connecting the same browser leg to another session
/// switches it (then [`disconnect`] the previous one).
pub fn connect(session: &RtpSession, leg: &WebRtcLeg) {
    session.forward_to(Some(leg.input()));
    session.listen_to(Some(leg.id()));
    leg.forward_to(Some(session.input()));
    leg.listen_to(Some(session.id()));
}

/// Undoes [`connect`]: neither side relays to the other any more.
pub fn disconnect(session: &RtpSession, leg: &WebRtcLeg) {
    session.disconnect();
    leg.forward_to(None);
    leg.listen_to(None);
}

/// Puts a browser leg on a SIP call's media (the call layer's way to [`connect`]): the caller
/// hears the agent's browser and the browser hears the caller. For a call that is neither
/// bridged to another call nor in a room (a room routes its members' media itself; joining one
/// takes the call off the browser). Fails with `ControlError::NoMedia` before the call has media.
pub async fn attach(call: &CallControl, leg: &WebRtcLeg) -> Result<(), ControlError> {
    let port = call.media_port().await?;
    call.route(Route {
        forward: Some(leg.input()),
        listen: Some(leg.id()),
        room: None,
    })
    .await?;
    leg.forward_to(Some(port.input));
    leg.listen_to(Some(port.peer));
    Ok(())
}

/// Takes a browser leg off a call's media again (both directions stop).
pub async fn detach(call: &CallControl, leg: &WebRtcLeg) -> Result<(), ControlError> {
    leg.forward_to(None);
    leg.listen_to(None);
    call.route(Route {
        forward: None,
        listen: None,
        room: None,
    })
    .await
}

/// The `a=mid` of the first audio section of an SDP.
pub fn audio_mid(sdp: &str) -> Option<&str> {
    let mut in_audio = false;
    for line in sdp.lines().map(str::trim) {
        if let Some(m) = line.strip_prefix("m=") {
            in_audio = m.starts_with("audio ");
        } else if in_audio && let Some(mid) = line.strip_prefix("a=mid:") {
            return Some(mid.trim());
        }
    }
    None
}

/// Which G.711 law a leg speaks, for logs and the desktop's media info.
pub fn codec_name(codec: Codec) -> &'static str {
    match codec {
        Codec::Pcmu => "PCMU",
        Codec::Pcma => "PCMA",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_audio_mid_after_other_sections() {
        let sdp = "v=0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:0\r\n\
                   m=audio 9 UDP/TLS/RTP/SAVPF 0 8\r\na=mid:1\r\n";
        assert_eq!(audio_mid(sdp), Some("1"));
        assert_eq!(
            audio_mid("v=0\r\nm=video 9 RTP/AVP 96\r\na=mid:v\r\n"),
            None
        );
    }

    #[tokio::test]
    async fn refuses_bad_offers_with_a_reason() {
        let ep = WebRtcEndpoint::new(WebRtcConfig::on(IpAddr::from([127, 0, 0, 1])), None).unwrap();
        assert!(matches!(
            ep.accept_offer("hello").await,
            Err(WebRtcError::BadOffer(_))
        ));
        assert!(matches!(
            WebRtcEndpoint::new(WebRtcConfig::on(IpAddr::from([0, 0, 0, 0])), None),
            Err(WebRtcError::BadAddress(_))
        ));
    }
}
