//! The platform under the Dialbridge domains, and nothing domain-specific.
//!
//! - [`db`]: the one database handle (SQLite embedded by default, PostgreSQL for multi-node),
//!   migrations, and the few statements that differ between the two dialects.
//! - [`clock`]: the time source that domain code uses instead of calling `now()` itself.
//! - [`ids`]: time-ordered public ids and random tokens.
//! - [`accounts`]: users with roles, passwords (argon2) and API keys (SHA-256).
//! - [`audit`]: the append-only audit log every domain writes to.
//! - [`sessions`]: console sessions for people (cookie + CSRF token) and login lockout.
//! - [`lifecycle`]: running vs draining, shared by every listener for graceful shutdown.

pub mod accounts;
pub mod audit;
pub mod clock;
pub mod db;
pub mod ids;
pub mod lifecycle;
pub mod sessions;
pub mod testing;

pub use clock::{Clock, SharedClock};
pub use db::{Backend, Db, WriteTx};
