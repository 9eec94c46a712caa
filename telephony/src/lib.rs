//! The call layer: everything that speaks SIP or carries audio.
//!
//! - [`sip`]: transport (UDP, TCP), transactions, dialogs, digest auth, the call API.
//! - [`media`]: RTP, G.711, DTMF, prompts, recording, answering-machine detection, bridging.
//! - [`control`]: SIP calls with their media attached: per-call handles and merged event streams.
//! - [`webrtc`]: the browser softphone's audio (str0m; G.711 with the browser, no transcoding).
//! - [`cdr`]: a record for every call leg, always closed with an outcome; call metrics.
//! - [`carrier_sim`]: a simulated carrier on loopback (humans, machines, busy, no answer; agent phones).
//!
//! Protocol logic is written as state machines that take (input, now) and return actions; the
//! tokio drivers in this crate own the sockets and timers.

pub mod carrier_sim;
pub mod cdr;
pub mod control;
pub mod media;
pub mod sip;
pub mod webrtc;

use std::net::SocketAddr;

/// What the appliance's configuration says about the call layer.
#[derive(Debug, Clone)]
pub struct Config {
    /// UDP listen address (port 0: any free port).
    pub udp: SocketAddr,
    /// TCP listen address (port 0: any free port).
    pub tcp: SocketAddr,
    /// Address written into SDP `c=` lines and Contact headers (e.g. the public address behind
    /// NAT); the bound address when `None`.
    pub advertised_address: Option<String>,
    /// RTP ports are taken from this inclusive range, one even port per call leg.
    pub rtp_ports: (u16, u16),
    /// Larger SIP messages are answered with 513.
    pub max_message_bytes: usize,
}
