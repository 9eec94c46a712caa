//! The call API's vocabulary: ids, commands the appliance sends, events it consumes.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Serialize;

use super::digest::Credentials;
use super::outcome::Outcome;
use super::sdp::{Direction, Negotiated};

/// One call leg, inbound or outbound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct CallId(pub u64);

impl std::fmt::Display for CallId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "call-{}", self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
    /// SIP over TLS over TCP (RFC 3261 §26.2.1, Via `SIP/2.0/TLS`, `;transport=tls`, port 5061).
    Tls,
}

impl Transport {
    /// Stream transports (TCP, TLS): no retransmissions, Content-Length framing.
    pub fn reliable(self) -> bool {
        self != Transport::Udp
    }

    pub fn via_name(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
        }
    }

    /// The URI parameter naming it (`None` for UDP, the default).
    pub fn uri_param(self) -> Option<&'static str> {
        match self {
            Transport::Udp => None,
            Transport::Tcp => Some("tcp"),
            Transport::Tls => Some("tls"),
        }
    }

    /// The default port (RFC 3261 §19.1.2): 5061 for TLS, 5060 otherwise.
    pub fn default_port(self) -> u16 {
        if self == Transport::Tls { 5061 } else { 5060 }
    }

    /// A configuration word: `udp`, `tcp` or `tls` (any case).
    pub fn parse(word: &str) -> Option<Transport> {
        match word.to_ascii_lowercase().as_str() {
            "udp" => Some(Transport::Udp),
            "tcp" => Some(Transport::Tcp),
            "tls" => Some(Transport::Tls),
            _ => None,
        }
    }
}

impl Trunk {
    /// Where a call to an endpoint's SIP URI goes (an agent's phone given as a URI): the URI's
    /// address and the transport it names (`sips:`, `;transport=`), UDP when it names none.
    /// `None` when the host is not an IP address.
    pub fn for_uri(uri: &str) -> Option<Trunk> {
        Some(Trunk {
            addr: super::dialog::uri_addr(uri)?,
            transport: super::dialog::uri_transport(uri).unwrap_or(Transport::Udp),
            credentials: None,
        })
    }

    /// Where a call to a registered contact goes: the Contact's address (else where the REGISTER
    /// came from) over the transport the Contact names, else the one the REGISTER came over.
    pub fn for_binding(b: &super::registrar::Binding) -> Trunk {
        Trunk {
            addr: super::dialog::uri_addr(&b.contact).unwrap_or(b.source),
            transport: super::dialog::uri_transport(&b.contact).unwrap_or(b.transport),
            credentials: None,
        }
    }

    /// A trunk from a SIP URI: `sip:HOST[:PORT][;transport=udp|tcp|tls]` or `sips:HOST[:PORT]`
    /// (TLS). HOST must be an IP address (a user part is ignored); the port defaults to 5060, or
    /// 5061 over TLS. Errors name what is wrong.
    pub fn from_uri(uri: &str) -> Result<Trunk, String> {
        let lower = uri.to_ascii_lowercase();
        let (rest, sips) = if let Some(r) = lower.strip_prefix("sips:") {
            (r, true)
        } else if let Some(r) = lower.strip_prefix("sip:") {
            (r, false)
        } else {
            return Err(format!("trunk {uri:?} is not a sip: or sips: URI"));
        };
        let (hostport, params) = rest.split_once(';').unwrap_or((rest, ""));
        let hostport = hostport.rsplit('@').next().unwrap_or(hostport);
        let mut transport = if sips { Transport::Tls } else { Transport::Udp };
        for p in params.split(';') {
            if let Some(t) = p.trim().strip_prefix("transport=") {
                let t = Transport::parse(t)
                    .ok_or_else(|| format!("trunk {uri:?}: unknown transport {t:?}"))?;
                if sips && t != Transport::Tls {
                    return Err(format!("trunk {uri:?}: a sips: URI goes over TLS only"));
                }
                transport = t;
            }
        }
        let addr = match hostport.parse::<SocketAddr>() {
            Ok(a) => a,
            Err(_) => {
                let ip = hostport
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<std::net::IpAddr>()
                    .map_err(|_| {
                        format!(
                            "trunk {uri:?}: the host must be an IP address with an optional port"
                        )
                    })?;
                SocketAddr::new(ip, transport.default_port())
            }
        };
        Ok(Trunk {
            addr,
            transport,
            credentials: None,
        })
    }
}

/// A trunk (carrier or PBX) calls can be sent to.
#[derive(Debug, Clone)]
pub struct Trunk {
    pub addr: SocketAddr,
    pub transport: Transport,
    /// Used when the trunk challenges with 401/407.
    pub credentials: Option<Credentials>,
}

/// A request to place a call.
#[derive(Debug, Clone)]
pub struct Originate {
    /// A full Request-URI (e.g. a registered agent's contact); `None`: `sip:{to_user}@{trunk}`.
    pub request_uri: Option<String>,
    /// The number or user to call (the user part of the Request-URI).
    pub to_user: String,
    /// Our caller id (user part of From).
    pub from_user: String,
    /// Tried in order: a congestion (5xx) or unreachable outcome moves to the next one.
    pub trunks: Vec<Trunk>,
    /// Without an answer by then the call is cancelled (outcome NoAnswer).
    pub ring_timeout: Duration,
    /// Extra headers for the INVITE (e.g. `User-to-User`, `X-…` call data). A header whose name is
    /// not a SIP token or whose value holds a line break is not sent.
    pub headers: Vec<(String, String)>,
}

impl Default for Originate {
    fn default() -> Self {
        Self {
            request_uri: None,
            to_user: String::new(),
            from_user: "dialbridge".into(),
            trunks: Vec::new(),
            ring_timeout: Duration::from_secs(30),
            headers: Vec::new(),
        }
    }
}

/// Whether an extra header may be sent as is: a token name, and no line break in the value.
pub fn is_safe_header(name: &str, value: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b))
        && !value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0)
}

/// What the appliance asks of the SIP layer.
#[derive(Debug, Clone)]
pub enum Command {
    Originate(CallId, Originate),
    /// Answer a ringing inbound call (when auto-answer is off).
    Answer(CallId),
    /// Early media on a ringing inbound call: 183 Session Progress with our SDP answer.
    Progress(CallId),
    /// Refuse a ringing inbound call with this final code.
    Reject(CallId, u16),
    /// End a call in any state (BYE, CANCEL, or a 480 for a ringing inbound call).
    Hangup(CallId),
    /// As `Hangup`, for this reason (e.g. `SpecialInformationTone`), which the hang-up event
    /// reports and the outcome table reads.
    HangupBecause(CallId, HangupCause),
    /// Put a call on hold (re-INVITE sendonly) or take it off hold (sendrecv).
    Hold(CallId, bool),
    /// Re-INVITE with this direction (e.g. inactive for a full hold).
    SetDirection(CallId, Direction),
    /// End every call (shutdown).
    HangupAll,
    /// Blind transfer: send REFER asking the peer to call this URI; progress arrives as
    /// `CallEvent::TransferProgress`.
    Transfer(CallId, String),
    /// Report progress of a transfer the peer asked of us (NOTIFY with a sipfrag status line).
    TransferNotify(CallId, u16),
    /// Send a digit by SIP INFO (application/dtmf-relay), for peers that want DTMF that way.
    SendDtmfInfo(CallId, char),
    /// Probe a trunk with OPTIONS (health check); the result arrives as `CallEvent::TrunkStatus`.
    Ping(u64, Trunk),
    /// Register to a trunk (and keep the registration refreshed) under this id.
    Register(u64, Registration),
    /// Remove a registration (REGISTER with Expires: 0).
    Unregister(u64),
    /// Replace the trunk ACL / endpoint authentication (configuration reload; calls in progress
    /// and registrations are kept).
    SetPolicy(Option<super::registrar::InboundPolicy>),
}

/// A registration we keep with a trunk or upstream registrar.
#[derive(Debug, Clone)]
pub struct Registration {
    pub trunk: Trunk,
    /// The user part of our address-of-record at the trunk.
    pub user: String,
    /// Requested lifetime in seconds (refreshed at half of what is granted).
    pub expires: u32,
}

/// Media parameters of a call, for the media layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaInfo {
    /// Our RTP port (from the configured range).
    pub local_rtp_port: u16,
    pub negotiated: Option<Negotiated>,
}

impl MediaInfo {
    pub fn direction(&self) -> Direction {
        self.negotiated
            .map(|n| n.direction)
            .unwrap_or(Direction::SendRecv)
    }
}

/// Why a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HangupCause {
    /// The peer sent BYE.
    RemoteBye,
    /// We ended it (BYE, or CANCEL before answer).
    LocalHangup,
    /// The caller cancelled before we answered.
    RemoteCancel,
    /// A final non-2xx ended the attempt (ours for inbound, theirs for outbound).
    Rejected,
    /// Outbound: no answer within the ring timeout.
    RingTimeout,
    /// Inbound: our 200 was never acknowledged.
    AckTimeout,
    /// Outbound: no response at all from any trunk.
    Timeout,
    /// The appliance is stopping.
    Shutdown,
    /// The session timer (RFC 4028) ran out without a refresh.
    SessionExpired,
    /// Outbound: we ended it before answer because a special-information tone in early media
    /// said the number is not in service (outcome: number disconnected, see
    /// [`super::outcome::Outcome::of_cancelled`]).
    SpecialInformationTone,
}

/// What happened, for the rest of the appliance.
#[derive(Debug, Clone, PartialEq)]
pub enum CallEvent {
    /// A new inbound call (it rings; it is answered automatically if so configured).
    /// `user` is the endpoint's digest username when it authenticated (calls from trusted trunks
    /// have none); `source` is where the INVITE came from.
    Incoming {
        call: CallId,
        from: String,
        to: String,
        request_uri: String,
        user: Option<String>,
        source: std::net::SocketAddr,
    },
    /// Outbound: the callee rings (18x); inbound: we sent 180.
    Ringing { call: CallId, code: u16 },
    /// Outbound: a provisional response with SDP (183 Session Progress): early media (ringback,
    /// announcements, special-information tones) arrives from `media.negotiated.remote_rtp`.
    /// Inbound: we sent 183 (`Command::Progress`): prompts may be played before answering.
    EarlyMedia {
        call: CallId,
        code: u16,
        media: MediaInfo,
    },
    /// The call is up (inbound: our 200 was acknowledged; outbound: 200 received and ACKed).
    Answered { call: CallId, media: MediaInfo },
    /// A re-INVITE changed the media (hold/resume).
    MediaChanged { call: CallId, media: MediaInfo },
    /// The peer asked us (REFER, answered 202) to transfer the call to `target`; report
    /// progress with `Command::TransferNotify`.
    TransferRequested { call: CallId, target: String },
    /// Our REFER's progress: the REFER's own rejection, or a status line from the peer's NOTIFY.
    TransferProgress { call: CallId, code: u16 },
    /// A digit received by SIP INFO (application/dtmf-relay).
    Dtmf { call: CallId, digit: char },
    /// The call is over.
    Hangup {
        call: CallId,
        cause: HangupCause,
        code: Option<u16>,
        outcome: Outcome,
    },
    /// A trunk probe's result: the response code (any response means the trunk is alive),
    /// or `None` when nothing answered; `rtt_ms` is the round trip.
    TrunkStatus {
        ping: u64,
        trunk: std::net::SocketAddr,
        code: Option<u16>,
        rtt_ms: u64,
    },
    /// A registration of ours changed state (`code` is the final response, if any).
    Registration {
        registration: u64,
        registered: bool,
        code: Option<u16>,
        expires: u32,
    },
}

impl CallEvent {
    /// The call the event is about (registration events have none).
    pub fn call(&self) -> Option<CallId> {
        match self {
            CallEvent::Incoming { call, .. }
            | CallEvent::Ringing { call, .. }
            | CallEvent::EarlyMedia { call, .. }
            | CallEvent::Answered { call, .. }
            | CallEvent::MediaChanged { call, .. }
            | CallEvent::Dtmf { call, .. }
            | CallEvent::TransferRequested { call, .. }
            | CallEvent::TransferProgress { call, .. }
            | CallEvent::Hangup { call, .. } => Some(*call),
            CallEvent::Registration { .. } | CallEvent::TrunkStatus { .. } => None,
        }
    }
}

#[cfg(test)]
mod trunk_uri_tests {
    use super::*;

    #[test]
    fn transports_and_default_ports() {
        let t = |u: &str| {
            let t = Trunk::from_uri(u).unwrap();
            (t.addr.to_string(), t.transport)
        };
        assert_eq!(t("sip:10.0.0.1"), ("10.0.0.1:5060".into(), Transport::Udp));
        assert_eq!(
            t("sip:10.0.0.1:5080;transport=TCP"),
            ("10.0.0.1:5080".into(), Transport::Tcp)
        );
        assert_eq!(
            t("sip:10.0.0.1;transport=tls"),
            ("10.0.0.1:5061".into(), Transport::Tls)
        );
        assert_eq!(
            t("sips:gw@10.0.0.1"),
            ("10.0.0.1:5061".into(), Transport::Tls)
        );
        assert_eq!(t("sips:[::1]:5071"), ("[::1]:5071".into(), Transport::Tls));
        let phone = Trunk::for_uri("sip:agent1@10.0.0.7:5070;transport=tls").unwrap();
        assert_eq!(
            (phone.addr.to_string(), phone.transport),
            ("10.0.0.7:5070".into(), Transport::Tls)
        );
        assert_eq!(
            Trunk::for_uri("sip:a@10.0.0.7").unwrap().transport,
            Transport::Udp
        );
        assert!(Trunk::for_uri("sip:a@phone.example").is_none());
        let binding = |contact: &str, transport| super::super::registrar::Binding {
            contact: contact.into(),
            source: "10.0.0.8:40000".parse().unwrap(),
            tcp: transport != Transport::Udp,
            transport,
            expires_at: std::time::Instant::now(),
        };
        let t = Trunk::for_binding(&binding("sip:a@10.0.0.8:5061", Transport::Tls));
        assert_eq!((t.addr.port(), t.transport), (5061, Transport::Tls));
        let t = Trunk::for_binding(&binding("sip:a@10.0.0.8;transport=tcp", Transport::Udp));
        assert_eq!((t.addr.port(), t.transport), (5060, Transport::Tcp));
        let t = Trunk::for_binding(&binding("sip:a@phone.example", Transport::Tls));
        assert_eq!((t.addr.port(), t.transport), (40000, Transport::Tls));
        for bad in [
            "http://x",
            "sip:carrier.example",
            "sip:1.2.3.4;transport=sctp",
            "sips:1.2.3.4;transport=udp",
        ] {
            assert!(Trunk::from_uri(bad).is_err(), "{bad}");
        }
    }
}

#[cfg(test)]
mod header_tests {
    use super::is_safe_header;

    #[test]
    fn only_token_names_and_single_line_values_are_sent() {
        assert!(is_safe_header("User-to-User", "00fa;encoding=hex"));
        assert!(is_safe_header("X-Dialbridge-Lease", "lease_01"));
        assert!(!is_safe_header("X Bad", "v"));
        assert!(!is_safe_header("", "v"));
        assert!(!is_safe_header("X-Evil", "v\r\nBYE sip:x SIP/2.0"));
    }
}
