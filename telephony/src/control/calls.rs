//! The dispatcher: owns the [`SipHandle`], subscribes to its events, starts a call task for each
//! inbound call (handed out by [`IncomingCalls`]) and each call placed through [`Calls::originate`],
//! and routes every SIP event to its call's task.
//!
//! A call placed here can report events before `originate` has registered it (the SIP core runs
//! in its own task); such events wait briefly as orphans and are replayed on registration.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{broadcast, mpsc};

use crate::sip::call::{CallEvent, CallId, Originate};
use crate::sip::driver::SipHandle;

use super::call::{self, Call, CallInfo};
use super::policy::MediaSettings;

/// How call control sets up media.
#[derive(Debug, Clone)]
pub struct ControlConfig {
    /// Address RTP sockets bind to (the SIP layer's advertised media address, or unspecified
    /// for all interfaces).
    pub media_ip: IpAddr,
    /// A call with no RTP for this long is hung up ([`super::EndCause::RtpInactivity`]).
    pub inactivity_timeout: Option<Duration>,
    /// Also detect DTMF tones in the audio (off for the rest of a call once RFC 4733 arrives).
    pub inband_dtmf: bool,
    /// Jitter buffer depth in 20 ms frames for local consumers (relaying is not delayed).
    pub jitter_depth: usize,
}

impl Default for ControlConfig {
    fn default() -> Self {
        ControlConfig {
            media_ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            inactivity_timeout: Some(Duration::from_secs(30)),
            inband_dtmf: true,
            jitter_depth: 3,
        }
    }
}

impl ControlConfig {
    fn settings(&self) -> MediaSettings {
        MediaSettings {
            bind_ip: self.media_ip,
            inactivity_timeout: self.inactivity_timeout,
            inband_dtmf: self.inband_dtmf,
            jitter_depth: self.jitter_depth,
        }
    }
}

/// How long events of a not-yet-registered call are kept.
const ORPHAN_TTL: Duration = Duration::from_secs(10);
const MAX_ORPHANS: usize = 10_000;

#[derive(Default)]
struct Registry {
    routes: HashMap<CallId, mpsc::UnboundedSender<CallEvent>>,
    orphans: VecDeque<(Instant, CallEvent)>,
}

struct Shared {
    sip: SipHandle,
    settings: MediaSettings,
    registry: Mutex<Registry>,
    live: Arc<AtomicUsize>,
}

/// Places calls and reports how many are under control. Cheap to clone.
#[derive(Clone)]
pub struct Calls {
    shared: Arc<Shared>,
}

/// The inbound calls, each already ringing (answered by the SIP layer when it auto-answers).
pub struct IncomingCalls {
    rx: mpsc::UnboundedReceiver<Call>,
}

impl IncomingCalls {
    /// The next inbound call; `None` once the SIP layer is gone.
    pub async fn next(&mut self) -> Option<Call> {
        self.rx.recv().await
    }
}

impl Calls {
    /// Starts the dispatcher on `sip`'s events. Dropping the [`IncomingCalls`] makes new inbound
    /// calls be refused (480).
    pub fn start(sip: SipHandle, config: ControlConfig) -> (Calls, IncomingCalls) {
        let shared = Arc::new(Shared {
            settings: config.settings(),
            registry: Mutex::new(Registry::default()),
            live: Arc::new(AtomicUsize::new(0)),
            sip: sip.clone(),
        });
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(dispatch(shared.clone(), sip.subscribe(), tx));
        (Calls { shared }, IncomingCalls { rx })
    }

    /// Places a call; its progress arrives on the returned call's event stream.
    pub fn originate(&self, o: Originate) -> Call {
        let info = CallInfo {
            id: CallId(0),
            inbound: false,
            from: o.from_user.clone(),
            to: o.to_user.clone(),
            request_uri: o.request_uri.clone().unwrap_or_default(),
            user: None,
            source: None,
        };
        let id = self.shared.sip.originate(o);
        let info = CallInfo { id, ..info };
        let (call, tx) = call::spawn(
            info,
            self.shared.sip.clone(),
            self.shared.settings,
            self.shared.live.clone(),
        );
        let mut reg = self.shared.registry.lock().expect("registry");
        let mut ended = false;
        let orphans = std::mem::take(&mut reg.orphans);
        for (at, ev) in orphans {
            if ev.call() == Some(id) {
                ended |= matches!(ev, CallEvent::Hangup { .. });
                let _ = tx.send(ev);
            } else {
                reg.orphans.push_back((at, ev));
            }
        }
        if !ended {
            reg.routes.insert(id, tx);
        }
        call
    }

    /// The SIP layer's handle (registrations, stats, transfers).
    pub fn sip(&self) -> &SipHandle {
        &self.shared.sip
    }

    /// Calls whose task still runs (not yet hung up).
    pub fn live(&self) -> usize {
        self.shared.live.load(Ordering::Relaxed)
    }
}

async fn dispatch(
    shared: Arc<Shared>,
    mut rx: broadcast::Receiver<CallEvent>,
    incoming: mpsc::UnboundedSender<Call>,
) {
    loop {
        let ev = match rx.recv().await {
            Ok(ev) => ev,
            Err(broadcast::error::RecvError::Lagged(n)) => {
                tracing::error!(
                    lost = n,
                    "call control fell behind the SIP events; some calls may miss events"
                );
                continue;
            }
            Err(broadcast::error::RecvError::Closed) => break,
        };
        let Some(id) = ev.call() else { continue };
        if let CallEvent::Incoming {
            from,
            to,
            request_uri,
            user,
            source,
            ..
        } = &ev
        {
            let info = CallInfo {
                id,
                inbound: true,
                from: from.clone(),
                to: to.clone(),
                request_uri: request_uri.clone(),
                user: user.clone(),
                source: Some(*source),
            };
            let (call, tx) = call::spawn(
                info,
                shared.sip.clone(),
                shared.settings,
                shared.live.clone(),
            );
            shared
                .registry
                .lock()
                .expect("registry")
                .routes
                .insert(id, tx);
            if incoming.send(call).is_err() {
                // Nobody takes inbound calls.
                shared.sip.reject(id, 480);
            }
            continue;
        }
        let mut reg = shared.registry.lock().expect("registry");
        let last = matches!(ev, CallEvent::Hangup { .. });
        match reg.routes.get(&id) {
            Some(tx) => {
                let gone = tx.send(ev).is_err();
                if last || gone {
                    reg.routes.remove(&id);
                }
            }
            None => {
                let now = Instant::now();
                while reg
                    .orphans
                    .front()
                    .is_some_and(|(at, _)| now.duration_since(*at) > ORPHAN_TTL)
                    || reg.orphans.len() >= MAX_ORPHANS
                {
                    reg.orphans.pop_front();
                }
                reg.orphans.push_back((now, ev));
            }
        }
    }
    // The SIP layer is gone: dropping the routes ends every call task.
    shared.registry.lock().expect("registry").routes.clear();
}
