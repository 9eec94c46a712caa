//! SIP: transport, transactions, dialogs and the call API.
//!
//! Layers, bottom up: [`message`] and [`framing`] (what rsip 0.4 lacks), [`transaction`] (sans-IO
//! RFC 3261/6026 machines), [`dialog`], [`sdp`], [`digest`], [`session_timer`], [`registrar`]
//! (bindings, nonces, inbound policy), [`outcome`] (the shared outcome table), [`rtp_ports`];
//! [`endpoint`] is the sans-IO core that routes messages to transactions and runs calls (UAS, UAC,
//! registrar, REGISTER client, transfer); [`driver`] owns the sockets and timers and hands out a
//! [`driver::SipHandle`]; [`listener`] is what the binary starts. [`call`] holds the call API's
//! commands and events.

pub mod framing;
pub mod listener;
pub mod message;
pub mod transaction;
pub mod digest;
pub mod outcome;
pub mod rtp_ports;
pub mod sdp;
pub mod dialog;
pub mod call;
pub mod endpoint;
pub mod driver;
pub mod registrar;
pub mod session_timer;
pub mod fuzzing;
