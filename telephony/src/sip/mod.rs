//! SIP: transport, transactions, dialogs and the call API.
//!
//! Layers, bottom up: [`message`] and [`framing`] (what rsip 0.4 lacks), [`transaction`] (sans-IO
//! RFC 3261/6026 machines), [`dialog`], [`sdp`], [`digest`], [`session_timer`], [`registrar`]
//! (bindings, nonces, inbound policy), [`outcome`] (the shared outcome table);
//! [`endpoint`] is the sans-IO core that routes messages to transactions and runs calls (UAS, UAC,
//! registrar, REGISTER client, transfer); [`driver`] owns the sockets and timers and hands out a
//! [`driver::SipHandle`]; [`listener`] is what the binary starts. [`call`] holds the call API's
//! commands and events.
//!
//! [`tls`] holds the TLS configurations (listener, verification of peers) the driver's TLS
//! connections use; TLS streams are framed and handled exactly like TCP.
//!
//! Using it: `listener::start_with(&config, SipOptions { .. }, lifecycle)` binds UDP+TCP (and
//! TLS when `SipOptions::tls` asks) and
//! returns the addresses and a [`driver::SipHandle`]: `subscribe()` for [`call::CallEvent`]s,
//! `originate`, `originate_registered`, `answer`/`progress`/`reject`, `hangup`, `hold`/
//! `set_direction`, `transfer`/`transfer_notify`, `send_dtmf_info`, `register`/`unregister`,
//! `ping`, `bindings`, `stats`. Media: `CallEvent::Answered`/`EarlyMedia`/`MediaChanged` carry
//! the RTP port we advertised and the negotiated payload types and remote address; bind the RTP
//! session on exactly that port.

pub mod call;
pub mod dialog;
pub mod digest;
pub mod driver;
pub mod endpoint;
pub mod framing;
pub mod fuzzing;
pub mod listener;
pub mod message;
pub mod outcome;
pub mod registrar;
pub mod sdp;
pub mod session_timer;
pub mod tls;
pub mod transaction;
