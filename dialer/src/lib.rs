//! The outbound dialer.
//!
//! - [`pacing`]: the sans-IO pacing state machine (progressive, fixed ratio, VICIdial-style adaptive
//!   and predictive modes) that decides how many calls to place, routes live answers to free agents
//!   and abandons a live answer that finds no agent within the abandonment window.
//! - [`sim`]: a discrete-event simulator that drives the same state machine in virtual time against
//!   the stochastic call model of the reference (`shared/reference/outbound-dialer.md` §4.1), plus
//!   the benchmark grid and the drift scenario.

pub mod pacing;
pub mod sim;
