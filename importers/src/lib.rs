//! importers
