//! The SIP listeners the appliance binds at start (UDP, TCP, and TLS when configured), and the
//! handle on the call layer.
//!
//! [`start`] is what the binary calls; [`start_with`] takes [`SipOptions`] for everything the
//! appliance configuration does not carry yet (auto-answer, timers, TLS).

use std::net::SocketAddr;
use std::time::Duration;

use foundation::lifecycle::Lifecycle;

use super::driver::{self, SipHandle};
use super::endpoint::EndpointConfig;
use super::registrar::InboundPolicy;
use super::transaction::TimerConfig;
use crate::Config;

/// The bound SIP listeners.
pub struct SipListeners {
    pub udp_addr: SocketAddr,
    pub tcp_addr: SocketAddr,
    /// The TLS listener, when [`SipOptions::tls`] asked for one.
    pub tls_addr: Option<SocketAddr>,
    /// The allocator the SIP layer takes call legs' RTP ports from (share it with other media
    /// users of the same range).
    pub rtp_ports: crate::media::ports::SharedPorts,
    /// Place and control calls; subscribe to call events.
    pub handle: SipHandle,
}

/// Call-layer behaviour not (yet) in [`Config`].
#[derive(Debug, Clone)]
pub struct SipOptions {
    /// `Some(ring)`: inbound calls are answered after ringing this long; `None`: the appliance
    /// answers through [`SipHandle::answer`] after a `CallEvent::Incoming`.
    pub auto_answer: Option<Duration>,
    pub timers: TimerConfig,
    pub user_agent: String,
    /// Trunk ACL, endpoint authentication and the registrar (`None`: accept every INVITE,
    /// refuse REGISTER).
    pub policy: Option<InboundPolicy>,
    /// RFC 4028: the smallest session interval accepted (422 below) and the one we ask for on
    /// our INVITEs (0: none).
    pub min_se: u32,
    pub session_interval: u32,
    /// SIP over TLS: the listener and how TLS peers are verified (`None`: no listener; trunks
    /// over TLS are verified against the system roots).
    pub tls: Option<super::tls::TlsOptions>,
}

impl Default for SipOptions {
    fn default() -> Self {
        Self {
            auto_answer: Some(Duration::ZERO),
            timers: TimerConfig::default(),
            user_agent: format!("Dialbridge/{}", env!("CARGO_PKG_VERSION")),
            policy: None,
            min_se: crate::sip::session_timer::DEFAULT_MIN_SE,
            session_interval: crate::sip::session_timer::DEFAULT_INTERVAL,
            tls: None,
        }
    }
}

/// Binds UDP and TCP and serves them until the process ends; inbound calls are answered at once.
pub async fn start(config: &Config, lifecycle: Lifecycle) -> anyhow::Result<SipListeners> {
    start_with(config, SipOptions::default(), lifecycle).await
}

pub async fn start_with(
    config: &Config,
    options: SipOptions,
    lifecycle: Lifecycle,
) -> anyhow::Result<SipListeners> {
    let advertised = config
        .advertised_address
        .clone()
        .filter(|a| !a.is_empty())
        .unwrap_or_else(|| {
            if config.udp.ip().is_unspecified() {
                "127.0.0.1".to_string()
            } else {
                config.udp.ip().to_string()
            }
        });
    let tls = match &options.tls {
        Some(t) => Some(t.build().map_err(|e| anyhow::anyhow!("SIP TLS {e}"))?),
        None => None,
    };
    let cfg = EndpointConfig {
        udp_addr: config.udp,
        tcp_addr: config.tcp,
        tls_addr: None,
        advertised,
        rtp_ports: config.rtp_ports,
        timers: options.timers,
        auto_answer: options.auto_answer,
        user_agent: options.user_agent,
        policy: options.policy,
        min_se: options.min_se,
        session_interval: options.session_interval,
    };
    let bound = driver::spawn(
        config.udp,
        config.tcp,
        cfg,
        config.max_message_bytes,
        tls,
        lifecycle,
    )
    .await?;
    Ok(SipListeners {
        udp_addr: bound.udp,
        tcp_addr: bound.tcp,
        tls_addr: bound.tls,
        rtp_ports: bound.rtp_ports,
        handle: bound.handle,
    })
}
