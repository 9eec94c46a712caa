//! The hybrid migration bridge: calls cross between Dialbridge and a legacy platform with their data.
//!
//! The pattern is "translation routing": lease a number (DNIS) from a pool, store the contact's
//! data against it, transfer the call to that number; the other side looks the data up by the
//! number it was called on. This crate owns the semantics, all of them in the database:
//!
//! - [`pool`]: pools of numbers, created, changed and emptied at runtime.
//! - [`lease`]: lease (one atomic claim), lookup (optionally consuming), release, and the reaper.
//! - [`calls`]: the bridge on the call path (calls from the legacy platform pick up their data).
//! - [`router`]: the migration router (per number, line of business or site: local, legacy, split).
//!
//! Invariants, each covered by tests on SQLite and PostgreSQL:
//! - No lease state lives in memory. A claim is one compare-and-set in a write transaction
//!   (`FOR UPDATE SKIP LOCKED` on PostgreSQL), so two processes never lease one number twice.
//! - Expiry is decided by comparing with `now` from the caller's clock; an expired lease is
//!   claimable by the same statement, so correctness never waits for the reaper, which only wipes
//!   data and writes the final records.
//! - A lookup never returns data of a lease other than the current one; data is wiped on release
//!   and expiry (a consumed lease keeps it through its cooldown, for a retried lookup).
//! - Every lease ends with a final record (`bridge_leases.ended_at`, `end_reason`) and every lease,
//!   lookup, release and expiry is in the audit log.

pub mod calls;
pub mod error;
pub mod lease;
pub mod pool;
pub mod router;

pub use error::BridgeError;
