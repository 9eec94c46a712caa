//! The browser softphone's gateway: lets an agent's browser be their nailed-up phone without any
//! change to the contact runtime.
//!
//! The gateway is a small SIP user agent inside the appliance, on its own SIP listener on
//! 127.0.0.1 (port 0), whose calls are answered by bridging them to browsers' WebRTC legs
//! ([`telephony::webrtc`]):
//! 1. The agent's page sends its SDP offer — on the desktop socket (`{"type": "softphone_offer",
//!    "sdp": …}`, answered by a `softphone_answer` message; the console's desktop does this) or
//!    with `POST /api/v1/agent/softphone {sdp}` (integrators' pages) —; the gateway
//!    answers it with a [`WebRtcLeg`] kept for that agent (a newer offer replaces and closes the
//!    older leg) and returns `{sdp, endpoint}`, `endpoint` being the SIP URI
//!    `sip:webrtc-<agent>@127.0.0.1:<gateway port>`.
//! 2. The page logs the agent in (`POST /api/v1/agent/login`) with that URI, nailed-up: the
//!    runtime calls it like any phone. The gateway answers and [`telephony::webrtc::attach`]es the
//!    call's media to the agent's browser leg; the runtime then switches contacts' media to that
//!    call as it does for a desk phone. A call for an agent with no leg is refused with 480.
//! 3. When either side ends, the other follows: the SIP call hung up (logout, appliance side)
//!    detaches the browser leg, which stays for a later login; the browser gone (page closed, ICE
//!    consent lost, connect timeout) or `DELETE /api/v1/agent/softphone` hangs up the SIP call, so
//!    the runtime sees its agent's leg drop.
//!
//! Only calls from the appliance's own SIP listener are accepted (loopback source and, when
//! known, the appliance's SIP port); anything else gets 403. REGISTER is refused (no policy).
//! The gateway's SIP legs take RTP ports from the appliance's range (the SIP layer checks each
//! port is bindable, so the two listeners share the range); browser legs lease theirs from the
//! same range through a [`SharedPorts`] of their own, binding the next lease if a port is taken.
//!
//! Metrics: `dialbridge_softphone_legs_total{end}` (browser legs by how they ended) and
//! `dialbridge_softphone_calls_total{outcome}` (gateway calls: `attached`, `no_leg`,
//! `forbidden`, `failed`). The gateway's SIP legs are internal (appliance ↔ itself): they get no
//! CDR of their own; the appliance's side of each is the agent's nailed-up leg.
//!
//! # Measured (`tests/softphone_browser.rs`: chromium 156, loopback, debug build, 2 shared cores)
//! - Console login → offer/answer → ICE+DTLS connected → nailed-up login answered: 2.4–3.0 s
//!   (most of it chromium's ICE gathering before the whole offer is posted).
//! - A queued sipp caller: the page detects the caller's tone 0.6–0.7 s after the INVITE; the
//!   browser's tone reaches the caller about 0.3 s after its media starts, and every 20 ms block
//!   of the 12 s call (600 of 600) carried it.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use foundation::accounts::Role;
use foundation::lifecycle::Lifecycle;
use serde::{Deserialize, Serialize};
use telephony::control::{Call, Calls, ControlConfig, Event, IncomingCalls};
use telephony::media::ports::{PortAllocator, SharedPorts};
use telephony::webrtc::{self, WebRtcConfig, WebRtcEndpoint, WebRtcError, WebRtcEvent, WebRtcLeg};
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiJson;

const AGENT: &[Role] = &[Role::Agent, Role::Supervisor, Role::Admin];
/// The user part prefix of the gateway's URIs.
const PREFIX: &str = "webrtc-";

/// How the gateway is set up.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Where browsers' legs bind and what they advertise (the address agents reach the
    /// appliance at).
    pub webrtc: WebRtcConfig,
    /// The appliance's RTP range (inclusive), for both the gateway's SIP legs and browser legs;
    /// `None`: any free port.
    pub rtp_ports: Option<(u16, u16)>,
    /// The appliance's own SIP UDP address: the only source (with its port, on loopback) whose
    /// calls are accepted. `None`: any loopback source.
    pub appliance_sip: Option<SocketAddr>,
}

/// The running gateway. Cheap to share (`Arc`).
pub struct Gateway {
    endpoint: WebRtcEndpoint,
    sip_addr: SocketAddr,
    /// The gateway's call control (keeps its SIP stack and dispatcher alive).
    calls: Calls,
    agents: Arc<Mutex<HashMap<String, Slot>>>,
    generation: AtomicU64,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("sip_addr", &self.sip_addr)
            .finish()
    }
}

/// An agent's browser leg, owned by its task.
struct Slot {
    generation: u64,
    commands: mpsc::UnboundedSender<Command>,
}

enum Command {
    /// A ringing call from the appliance for this agent.
    Call(Call),
    /// Close the leg (and hang up its call); replies when done.
    Close(oneshot::Sender<()>),
}

/// Why an offer was not taken.
#[derive(Debug)]
pub enum OfferError {
    /// The agent name cannot be put in a SIP URI.
    BadAgent(String),
    /// The offer was refused (bad SDP, no G.711, no port).
    WebRtc(WebRtcError),
}

impl std::fmt::Display for OfferError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OfferError::BadAgent(a) => write!(f, "agent name {a:?} cannot be used in a SIP URI"),
            OfferError::WebRtc(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for OfferError {}

impl Gateway {
    /// Binds the gateway's SIP listener on 127.0.0.1 (port 0) and starts taking the appliance's
    /// calls.
    pub async fn start(config: GatewayConfig) -> anyhow::Result<Arc<Gateway>> {
        let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let rtp = config.rtp_ports.unwrap_or((40_000, 40_999));
        let tel = telephony::Config {
            udp: SocketAddr::new(lo, 0),
            tcp: SocketAddr::new(lo, 0),
            advertised_address: Some(lo.to_string()),
            rtp_ports: rtp,
            max_message_bytes: 65_535,
        };
        let options = telephony::sip::listener::SipOptions {
            auto_answer: None,
            policy: None,
            ..Default::default()
        };
        // Its own lifecycle: the appliance's drain is about its own calls; these legs end with them.
        let sip = telephony::sip::listener::start_with(&tel, options, Lifecycle::new()).await?;
        // No RTP-inactivity hang-up on the gateway's legs: the appliance may send nothing on an
        // idle nailed-up leg, and the browser leg's liveness is ICE consent (its `Ended`).
        let control = ControlConfig {
            media_ip: lo,
            inactivity_timeout: None,
            ..Default::default()
        };
        let (calls, incoming) = Calls::start(sip.handle.clone(), control);
        let ports = match config.rtp_ports {
            Some((low, high)) => Some(SharedPorts::new(PortAllocator::new(low, high)?)),
            None => None,
        };
        let endpoint = WebRtcEndpoint::new(config.webrtc, ports)?;
        let gateway = Arc::new(Gateway {
            endpoint,
            sip_addr: sip.udp_addr,
            calls,
            agents: Arc::new(Mutex::new(HashMap::new())),
            generation: AtomicU64::new(1),
        });
        tokio::spawn(take_calls(
            gateway.agents.clone(),
            incoming,
            config.appliance_sip,
        ));
        info!(sip = %sip.udp_addr, "softphone gateway listening");
        Ok(gateway)
    }

    /// The gateway's SIP UDP address.
    pub fn sip_addr(&self) -> SocketAddr {
        self.sip_addr
    }

    /// The SIP URI the runtime calls for `agent`'s browser.
    pub fn endpoint_uri(&self, agent: &str) -> Result<String, OfferError> {
        if agent.is_empty()
            || !agent
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.!~*'".contains(c))
        {
            return Err(OfferError::BadAgent(agent.to_owned()));
        }
        Ok(format!("sip:{PREFIX}{agent}@{}", self.sip_addr))
    }

    /// Answers `agent`'s browser offer: the answer SDP and the endpoint URI. An older leg of the
    /// same agent is closed (its call hung up).
    pub async fn offer(&self, agent: &str, sdp: &str) -> Result<(String, String), OfferError> {
        let uri = self.endpoint_uri(agent)?;
        let (answer, leg) = self
            .endpoint
            .accept_offer(sdp)
            .await
            .map_err(OfferError::WebRtc)?;
        let generation = self.generation.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::unbounded_channel();
        let old = self.agents.lock().expect("softphone agents").insert(
            agent.to_owned(),
            Slot {
                generation,
                commands: tx,
            },
        );
        if let Some(old) = old {
            let (done, wait) = oneshot::channel();
            if old.commands.send(Command::Close(done)).is_ok() {
                let _ = wait.await;
            }
        }
        info!(agent, codec = webrtc::codec_name(leg.codec()), local = %leg.local_addr(), "softphone leg started");
        tokio::spawn(run_leg(
            agent.to_owned(),
            generation,
            leg,
            rx,
            self.agents.clone(),
        ));
        Ok((answer, uri))
    }

    /// Closes `agent`'s browser leg (and hangs up its call); `false` when there was none.
    pub async fn close(&self, agent: &str) -> bool {
        let slot = self.agents.lock().expect("softphone agents").remove(agent);
        let Some(slot) = slot else { return false };
        let (done, wait) = oneshot::channel();
        if slot.commands.send(Command::Close(done)).is_ok() {
            let _ = wait.await;
        }
        true
    }

    /// Calls between the appliance and browsers now.
    pub fn live_calls(&self) -> usize {
        self.calls.live()
    }

    /// Agents with a browser leg now.
    pub fn legs(&self) -> usize {
        self.agents.lock().expect("softphone agents").len()
    }
}

/// The agent a request URI (`sip:webrtc-<agent>@…`) is for.
fn agent_of(request_uri: &str) -> Option<&str> {
    let rest = request_uri
        .strip_prefix("sip:")
        .or_else(|| request_uri.strip_prefix("sips:"))?;
    let user = rest.split(['@', ';', '?']).next()?;
    user.strip_prefix(PREFIX).filter(|a| !a.is_empty())
}

/// Whether a call from `source` comes from the appliance itself.
fn from_appliance(source: Option<SocketAddr>, appliance: Option<SocketAddr>) -> bool {
    let Some(source) = source else { return false };
    if !source.ip().is_loopback() {
        return false;
    }
    match appliance {
        Some(a) => a.port() == source.port(),
        None => true,
    }
}

/// Hands each call from the appliance to its agent's leg task; refuses the rest.
async fn take_calls(
    agents: Arc<Mutex<HashMap<String, Slot>>>,
    mut incoming: IncomingCalls,
    appliance: Option<SocketAddr>,
) {
    while let Some(call) = incoming.next().await {
        let info = call.info().clone();
        if !from_appliance(info.source, appliance) {
            warn!(source = ?info.source, uri = %info.request_uri, "softphone gateway: call not from the appliance refused (403)");
            metrics::counter!("dialbridge_softphone_calls_total", "outcome" => "forbidden")
                .increment(1);
            let _ = call.control().reject(403);
            continue;
        }
        let agent = agent_of(&info.request_uri).unwrap_or("").to_owned();
        let sent = {
            let map = agents.lock().expect("softphone agents");
            match map.get(&agent) {
                Some(slot) => slot
                    .commands
                    .send(Command::Call(call))
                    .map_err(|e| match e.0 {
                        Command::Call(c) => c,
                        Command::Close(_) => unreachable!("only a call was sent"),
                    }),
                None => Err(call),
            }
        };
        if let Err(call) = sent {
            info!(agent, uri = %info.request_uri, "softphone gateway: no browser leg for this agent (480)");
            metrics::counter!("dialbridge_softphone_calls_total", "outcome" => "no_leg")
                .increment(1);
            let _ = call.control().reject(480);
        }
    }
}

/// One agent's browser leg and, while the appliance calls it, the SIP call it is attached to.
async fn run_leg(
    agent: String,
    generation: u64,
    mut leg: WebRtcLeg,
    mut commands: mpsc::UnboundedReceiver<Command>,
    agents: Arc<Mutex<HashMap<String, Slot>>>,
) {
    let mut call: Option<Call> = None;
    let mut attached = false;
    let end = loop {
        tokio::select! {
            ev = leg.next_event() => match ev {
                Some(WebRtcEvent::Ended { reason, stats }) => {
                    info!(agent, end = reason.label(), frames_in = stats.frames_in, frames_out = stats.frames_out, "softphone leg ended");
                    break reason.label();
                }
                Some(_) => {}
                None => break "failed",
            },
            cmd = commands.recv() => match cmd {
                Some(Command::Call(new)) => {
                    if let Some(old) = call.take() {
                        // The appliance called again (a new login): the newer call wins.
                        let _ = old.control().hangup().await;
                    }
                    let _ = new.control().answer();
                    attached = false;
                    call = Some(new);
                }
                Some(Command::Close(done)) => {
                    hang_up(&mut call).await;
                    let stats = leg.close().await;
                    info!(agent, frames_in = stats.frames_in, frames_out = stats.frames_out, "softphone leg closed");
                    metrics::counter!("dialbridge_softphone_legs_total", "end" => "closed").increment(1);
                    let _ = done.send(());
                    return;
                }
                None => break "closed",
            },
            ev = next_call_event(&mut call) => match ev {
                Some(Event::Answered { .. }) if !attached => {
                    let c = call.as_ref().expect("an event came from the call");
                    match webrtc::attach(c.control(), &leg).await {
                        Ok(()) => {
                            attached = true;
                            info!(agent, call = %c.id(), "softphone call attached to the browser leg");
                            metrics::counter!("dialbridge_softphone_calls_total", "outcome" => "attached").increment(1);
                        }
                        Err(e) => {
                            warn!(agent, error = %e, "softphone: attaching the browser leg failed; hanging up");
                            metrics::counter!("dialbridge_softphone_calls_total", "outcome" => "failed").increment(1);
                            hang_up(&mut call).await;
                        }
                    }
                }
                Some(Event::Hangup { cause, .. }) => {
                    info!(agent, cause = ?cause, "softphone call ended; the browser leg stays for the next login");
                    leg.forward_to(None);
                    leg.listen_to(None);
                    call = None;
                    attached = false;
                }
                Some(_) => {}
                None => {
                    leg.forward_to(None);
                    leg.listen_to(None);
                    call = None;
                    attached = false;
                }
            },
        }
    };
    // The browser is gone: the appliance's leg to it ends too.
    hang_up(&mut call).await;
    metrics::counter!("dialbridge_softphone_legs_total", "end" => end).increment(1);
    let mut map = agents.lock().expect("softphone agents");
    if map.get(&agent).is_some_and(|s| s.generation == generation) {
        map.remove(&agent);
    }
}

async fn next_call_event(call: &mut Option<Call>) -> Option<Event> {
    match call {
        Some(c) => c.next_event().await,
        None => std::future::pending().await,
    }
}

async fn hang_up(call: &mut Option<Call>) {
    if let Some(c) = call.take() {
        let _ = c.control().hangup().await;
    }
}

fn gateway(st: &AppState) -> Result<&Arc<Gateway>, ApiError> {
    st.softphone.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the softphone gateway is not running on this node",
        )
    })
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OfferBody {
    /// The browser's whole SDP offer (after ICE gathering completed; no trickle).
    pub sdp: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OfferReply {
    /// The answer SDP for `setRemoteDescription`.
    pub sdp: String,
    /// The SIP URI to log in with (`POST /api/v1/agent/login`, kind `uri`, nailed-up).
    pub endpoint: String,
}

/// Opens the calling agent's browser softphone leg (replacing an older one).
#[utoipa::path(post, path = "/api/v1/agent/softphone", tag = "agents", security(("session" = []), ("api_key" = [])),
    request_body = OfferBody,
    responses((status = 200, body = OfferReply), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 503, body = ErrorBody, description = "no softphone gateway on this node")))]
async fn open(
    State(st): State<AppState>,
    caller: Caller,
    ApiJson(b): ApiJson<OfferBody>,
) -> Result<Json<OfferReply>, ApiError> {
    caller.require(AGENT)?;
    Ok(Json(offer(&st, &caller.agent_id(), &b.sdp).await?))
}

/// Answers `agent`'s browser offer (the REST route and the desktop socket's `softphone_offer`).
pub(crate) async fn offer(st: &AppState, agent: &str, sdp: &str) -> Result<OfferReply, ApiError> {
    match gateway(st)?.offer(agent, sdp).await {
        Ok((sdp, endpoint)) => Ok(OfferReply { sdp, endpoint }),
        Err(OfferError::WebRtc(WebRtcError::Io(e))) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            format!("no media port for the browser leg: {e}"),
        )),
        Err(e) => Err(ApiError::bad_request(e.to_string())),
    }
}

/// Closes the calling agent's browser softphone leg (its call, if any, is hung up).
#[utoipa::path(delete, path = "/api/v1/agent/softphone", tag = "agents", security(("session" = []), ("api_key" = [])),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn close(State(st): State<AppState>, caller: Caller) -> Result<StatusCode, ApiError> {
    caller.require(AGENT)?;
    close_for(&st, &caller.agent_id()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Closes `agent`'s browser leg (the REST route and the desktop socket's `softphone_close`).
pub(crate) async fn close_for(st: &AppState, agent: &str) -> Result<(), ApiError> {
    if gateway(st)?.close(agent).await {
        Ok(())
    } else {
        Err(ApiError::not_found("no softphone leg open for this agent"))
    }
}

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(open, close))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_names_come_back_from_request_uris() {
        assert_eq!(agent_of("sip:webrtc-agent1@127.0.0.1:5070"), Some("agent1"));
        assert_eq!(
            agent_of("sip:webrtc-a.b_c@127.0.0.1;transport=udp"),
            Some("a.b_c")
        );
        assert_eq!(agent_of("sip:agent1@127.0.0.1"), None);
        assert_eq!(agent_of("sip:webrtc-@127.0.0.1"), None);
        assert_eq!(agent_of("tel:+15551234"), None);
    }

    #[test]
    fn only_the_appliance_may_call() {
        let app: SocketAddr = "127.0.0.1:5060".parse().unwrap();
        assert!(from_appliance(Some(app), Some(app)));
        assert!(from_appliance(
            Some("127.0.0.1:5060".parse().unwrap()),
            Some("0.0.0.0:5060".parse().unwrap())
        ));
        assert!(!from_appliance(
            Some("127.0.0.1:5999".parse().unwrap()),
            Some(app)
        ));
        assert!(!from_appliance(
            Some("10.0.0.7:5060".parse().unwrap()),
            Some(app)
        ));
        assert!(!from_appliance(
            Some("10.0.0.7:5060".parse().unwrap()),
            None
        ));
        assert!(from_appliance(
            Some("127.0.0.1:40000".parse().unwrap()),
            None
        ));
        assert!(!from_appliance(None, None));
    }
}
