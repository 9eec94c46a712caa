//! SIP: transport, transactions, dialogs and the call API.

pub mod listener;
