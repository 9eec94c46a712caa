//! Inbound contact handling, as pure logic: flow documents in the Amazon Connect flow language and
//! their validator ([`flow`]), the sans-IO flow interpreter ([`interpreter`]), hours of operation
//! ([`hours`]) and the ACD ([`acd`]). Drivers (SIP/media, web) feed these state machines inputs
//! and the current time and carry out the effects they return.

pub mod acd;
pub mod contact;
pub mod flow;
pub mod hours;
pub mod interpreter;
pub mod store;
pub mod webhook;
