//! The outbound dialer.
//!
//! - [`campaign`]: campaigns (configuration, lifecycle draft → running ↔ paused → completed, store).
//! - [`hopper`]: the next dialable leads of a campaign, each handed out once (also across nodes).
//! - [`compliance`]: the pure dial-time check (window in every candidate zone, DNC, registry age,
//!   abandonment cap, consent, attempt limits, trunk limit) and [`gate`], which feeds it from the
//!   database.
//! - [`attempts`]: attempt records (written before the INVITE, final exactly once), outcomes,
//!   dispositions, callbacks and crash recovery.
//! - [`lease`]: the pacer lease (one pacer per campaign across nodes, fencing token, takeover of
//!   an expired node's campaign).
//! - [`agents`]: the port through which the dialer sees and connects agents; [`flows`]: the port
//!   through which it runs a flow on an answered call (agentless flows, single calls to a flow).
//! - [`runner`]: the tokio driver running campaigns over telephony; [`single`]: programmatic single
//!   calls and preview mode.
//! - [`pacing`]: the sans-IO pacing state machine (progressive, fixed ratio, VICIdial-style adaptive
//!   and predictive modes) that decides how many calls to place, routes live answers to free agents
//!   and abandons a live answer that finds no agent within the abandonment window.
//! - [`sim`]: a discrete-event simulator that drives the same state machine in virtual time against
//!   the stochastic call model of the reference (`shared/reference/outbound-dialer.md` §4.1), plus
//!   the benchmark grid and the drift scenario.

pub mod agents;
pub mod attempts;
pub mod campaign;
pub mod compliance;
pub mod flows;
pub mod gate;
pub mod hopper;
pub mod lease;
pub mod pacing;
pub mod runner;
pub mod sim;
pub mod single;
