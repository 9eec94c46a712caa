//! The import report: every row read ends in exactly one outcome, counted here with its reason,
//! beside per-number counts. Serialised as the JSON the CLI prints with `--json` and the HTTP API
//! returns.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Counts over phone cells (a row can hold several).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct NumberCounts {
    /// Non-blank phone cells seen.
    pub seen: u64,
    /// Valid numbers (after dropping repeats of the same number within a row).
    pub valid: u64,
    pub invalid: u64,
    pub invalid_by_reason: BTreeMap<String, u64>,
    /// The same number twice in one row (kept once).
    pub repeated_in_row: u64,
    /// Valid numbers found on a DNC list.
    pub dnc: u64,
    pub dnc_by_source: BTreeMap<String, u64>,
    /// Valid, not DNC, but without any candidate time zone: stored as not dialable.
    pub no_timezone: u64,
    /// Numbers with more than one candidate zone.
    pub timezone_ambiguous: u64,
    pub timezone_by_source: BTreeMap<String, u64>,
    pub with_extension: u64,
    /// Valid numbers written to the database (on accepted leads).
    pub stored: u64,
    pub dialable: u64,
}

/// The outcome of an import (or of its committed prefix while it runs).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ImportReport {
    pub job_id: String,
    pub list: String,
    pub list_id: i64,
    pub file: String,
    pub format: Option<crate::reader::FileFormat>,
    /// `running`, `completed` or `failed`.
    pub state: String,
    /// Data rows read (header excluded) = accepted + rejected + duplicates + dnc.
    pub rows_read: u64,
    pub accepted: u64,
    pub rejected: u64,
    pub duplicates: u64,
    pub dnc: u64,
    /// accepted = inserted + updated.
    pub inserted: u64,
    pub updated: u64,
    pub rejected_by_reason: BTreeMap<String, u64>,
    pub duplicates_by_reason: BTreeMap<String, u64>,
    pub dnc_by_source: BTreeMap<String, u64>,
    pub numbers: NumberCounts,
    /// Rows decoded as Windows-1252 because they were not valid UTF-8.
    pub windows_1252_rows: u64,
    pub mapping: crate::mapping::MappingSummary,
    /// DNC sources scrubbed against, with their sizes.
    pub dnc_sources: BTreeMap<String, u64>,
    pub warnings: Vec<String>,
    /// Data rows skipped because an earlier run of this job had committed them.
    pub resumed_after_row: u64,
    pub elapsed_ms: u64,
    pub error: Option<String>,
}

impl ImportReport {
    /// The invariant every report must satisfy.
    pub fn is_balanced(&self) -> bool {
        self.rows_read == self.accepted + self.rejected + self.duplicates + self.dnc
            && self.accepted == self.inserted + self.updated
            && self.rejected == self.rejected_by_reason.values().sum::<u64>()
            && self.duplicates == self.duplicates_by_reason.values().sum::<u64>()
            && self.dnc == self.dnc_by_source.values().sum::<u64>()
    }
}

pub(crate) fn bump(map: &mut BTreeMap<String, u64>, key: &str) {
    match map.get_mut(key) {
        Some(v) => *v += 1,
        None => {
            map.insert(key.to_owned(), 1);
        }
    }
}
