//! SIP: transport, transactions, dialogs and the call API.
//!
//! Layers, bottom up: [`message`] and [`framing`] (what rsip 0.4 lacks), [`transaction`] (sans-IO
//! RFC 3261/6026 machines), [`dialog`], [`sdp`], [`digest`], [`outcome`]; [`endpoint`] is the
//! sans-IO core that routes messages to transactions and runs calls; [`driver`] owns the sockets.

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
