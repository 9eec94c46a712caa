//! Do-not-call data: the internal list (one row per number) and national registry files of
//! millions of numbers, kept compactly and tested fast.
//!
//! In memory a set is a sorted `Vec<u64>` of E.164 digits (8 bytes a number: 5 million numbers are
//! 40 MB) plus a bucket index over the value range, so a lookup is an index read and a binary search
//! over one or two entries. In the database a registry is one row whose `numbers` BLOB holds the
//! sorted numbers delta-encoded as LEB128 varints (~2–3 bytes a number), with its download date: the
//! dialer must refuse a registry copy older than 31 days for telemarketing ([`RegistryInfo::is_stale`]).

use std::io::BufRead;
use std::path::Path;

use anyhow::Context;
use foundation::{Clock, Db};
use serde::Serialize;
use sqlx::Row;

/// A set of E.164 numbers (as integers of their digits) with fast membership tests.
#[derive(Debug, Clone, Default)]
pub struct DncSet {
    numbers: Vec<u64>,
    min: u64,
    shift: u32,
    /// `starts[b]` = index of the first number in bucket `b`; one extra entry at the end.
    starts: Vec<u32>,
}

impl DncSet {
    /// Builds from numbers in any order; duplicates are removed.
    pub fn new(mut numbers: Vec<u64>) -> Self {
        numbers.sort_unstable();
        numbers.dedup();
        numbers.shrink_to_fit();
        let Some((&min, &max)) = numbers.first().zip(numbers.last()) else {
            return Self::default();
        };
        // About two numbers per bucket.
        let target_buckets = (numbers.len() as u64 / 2).max(1);
        let span = max - min + 1;
        let mut shift = 0;
        while (span >> shift) > target_buckets {
            shift += 1;
        }
        let buckets = ((max - min) >> shift) as usize + 1;
        let mut starts = vec![0u32; buckets + 1];
        for &n in &numbers {
            starts[((n - min) >> shift) as usize + 1] += 1;
        }
        for i in 1..starts.len() {
            starts[i] += starts[i - 1];
        }
        Self {
            numbers,
            min,
            shift,
            starts,
        }
    }

    pub fn len(&self) -> usize {
        self.numbers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.numbers.is_empty()
    }

    pub fn contains(&self, n: u64) -> bool {
        if self.numbers.is_empty() || n < self.min {
            return false;
        }
        let b = ((n - self.min) >> self.shift) as usize;
        if b + 1 >= self.starts.len() {
            return false;
        }
        let (lo, hi) = (self.starts[b] as usize, self.starts[b + 1] as usize);
        self.numbers[lo..hi].binary_search(&n).is_ok()
    }

    pub fn numbers(&self) -> &[u64] {
        &self.numbers
    }

    /// Delta + LEB128 encoding of the sorted numbers.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.numbers.len() * 3);
        let mut prev = 0u64;
        for &n in &self.numbers {
            let mut d = n - prev;
            prev = n;
            loop {
                let byte = (d & 0x7f) as u8;
                d >>= 7;
                if d == 0 {
                    out.push(byte);
                    break;
                }
                out.push(byte | 0x80);
            }
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> anyhow::Result<Self> {
        let mut numbers = Vec::with_capacity(bytes.len() / 2);
        let (mut prev, mut d, mut shift) = (0u64, 0u64, 0u32);
        for &b in bytes {
            anyhow::ensure!(shift < 64, "corrupt DNC blob");
            d |= ((b & 0x7f) as u64) << shift;
            if b & 0x80 == 0 {
                prev += d;
                numbers.push(prev);
                d = 0;
                shift = 0;
            } else {
                shift += 7;
            }
        }
        anyhow::ensure!(shift == 0, "truncated DNC blob");
        Ok(Self::new(numbers))
    }
}

/// E.164 digits of a registry line, e.g. `2125550123`, `212,5550123`, `+44 20 7946 0958`.
/// National numbers are read in `country_code`'s plan (NANP: 10 digits; elsewhere a leading trunk
/// `0` is dropped). `None` for lines without a plausible number (headers, comments, blanks).
pub fn registry_line_digits(line: &str, country_code: u16) -> Option<u64> {
    let t = line.trim();
    if t.is_empty() || t.starts_with('#') {
        return None;
    }
    let plus = t.starts_with('+');
    let mut digits: u64 = 0;
    let mut len = 0;
    let mut leading_zero = false;
    for b in t.bytes() {
        match b {
            b'0'..=b'9' => {
                if len == 0 && b == b'0' {
                    leading_zero = true;
                }
                if !(leading_zero && len == 0 && b == b'0' && !plus) {
                    digits = digits * 10 + (b - b'0') as u64;
                    len += 1;
                }
                if len > 15 {
                    return None;
                }
            }
            b' ' | b',' | b'-' | b'.' | b'(' | b')' | b'"' | b'\t' | b'+' | b'\r' => {}
            _ => return None,
        }
    }
    if plus {
        return (len >= 7).then_some(digits);
    }
    if country_code == 1 {
        return match len {
            10 => Some(10_000_000_000 + digits),
            11 if digits / 10_000_000_000 == 1 => Some(digits),
            _ => None,
        };
    }
    if len < 6 {
        return None;
    }
    let cc_len = country_code.to_string().len() as u32;
    Some(country_code as u64 * 10u64.pow(len) + digits).filter(|_| len + cc_len <= 15)
}

/// One stored registry.
#[derive(Debug, Clone, Serialize)]
pub struct RegistryInfo {
    pub id: i64,
    pub name: String,
    pub file_name: String,
    pub entries: i64,
    /// When the registry copy was downloaded (epoch ms).
    pub downloaded_at: i64,
    pub loaded_at: i64,
    pub active: bool,
}

impl RegistryInfo {
    /// Telemarketing rules (US TSR) require a registry copy no older than 31 days.
    pub fn is_stale(&self, now_ms: i64, max_age: std::time::Duration) -> bool {
        now_ms - self.downloaded_at > max_age.as_millis() as i64
    }
}

/// `is_registry_stale(now, 31 days)` for the dialer: true when `registry` is older than `max_age`.
pub fn is_registry_stale(
    registry: &RegistryInfo,
    now_ms: i64,
    max_age: std::time::Duration,
) -> bool {
    registry.is_stale(now_ms, max_age)
}

/// The statistics of reading a registry file.
#[derive(Debug, Clone, Serialize)]
pub struct RegistryLoad {
    pub registry: RegistryInfo,
    pub lines: u64,
    pub skipped_lines: u64,
}

/// Reads a registry file (one number a line; gzip accepted) into a set.
pub fn read_registry_file(path: &Path, country_code: u16) -> anyhow::Result<(DncSet, u64, u64)> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut reader = crate::reader::maybe_gunzip(file)?;
    let mut numbers = Vec::new();
    let (mut lines, mut skipped) = (0u64, 0u64);
    let mut line = String::new();
    loop {
        line.clear();
        let mut buf = Vec::new();
        if reader.read_until(b'\n', &mut buf)? == 0 {
            break;
        }
        line.push_str(&String::from_utf8_lossy(&buf));
        lines += 1;
        match registry_line_digits(&line, country_code) {
            Some(n) => numbers.push(n),
            None => skipped += 1,
        }
    }
    Ok((DncSet::new(numbers), lines, skipped))
}

/// Stores a registry file under `name`, replacing (deactivating) earlier copies of the same name.
pub async fn load_registry_file(
    db: &Db,
    clock: &dyn Clock,
    name: &str,
    path: &Path,
    downloaded_at_ms: i64,
    default_region: &str,
) -> anyhow::Result<RegistryLoad> {
    let country_code = crate::phone::Normalizer::new(default_region)?.country_code();
    let p = path.to_owned();
    let (set, lines, skipped) =
        tokio::task::spawn_blocking(move || read_registry_file(&p, country_code)).await??;
    let blob = set.encode();
    let now = clock.now_ms();
    let file_name = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut tx = db.begin_write().await?;
    sqlx::query("UPDATE dnc_registries SET active = 0 WHERE name = $1")
        .bind(name)
        .execute(tx.conn())
        .await?;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO dnc_registries (name, file_name, entries, numbers, downloaded_at, loaded_at, active) \
         VALUES ($1, $2, $3, $4, $5, $6, 1) RETURNING id",
    )
    .bind(name)
    .bind(&file_name)
    .bind(set.len() as i64)
    .bind(blob)
    .bind(downloaded_at_ms)
    .bind(now)
    .fetch_one(tx.conn())
    .await?;
    foundation::audit::record(
        tx.conn(),
        now,
        &foundation::audit::Entry {
            actor: "system",
            action: "dnc.registry_load",
            subject: Some(name),
            result: "ok",
            detail: Some(serde_json::json!({"entries": set.len(), "file": file_name, "downloaded_at": downloaded_at_ms})),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(RegistryLoad {
        registry: RegistryInfo {
            id,
            name: name.to_owned(),
            file_name,
            entries: set.len() as i64,
            downloaded_at: downloaded_at_ms,
            loaded_at: now,
            active: true,
        },
        lines,
        skipped_lines: skipped,
    })
}

/// Active registries (newest copy of each name), without their numbers.
pub async fn registries(db: &Db) -> anyhow::Result<Vec<RegistryInfo>> {
    let rows = sqlx::query(
        "SELECT id, name, file_name, entries, downloaded_at, loaded_at, CAST(active AS BIGINT) AS active \
         FROM dnc_registries WHERE active = 1 ORDER BY name, id",
    )
    .fetch_all(db.pool())
    .await?;
    Ok(rows
        .iter()
        .map(|r| RegistryInfo {
            id: r.get("id"),
            name: r.get("name"),
            file_name: r.get("file_name"),
            entries: r.get("entries"),
            downloaded_at: r.get("downloaded_at"),
            loaded_at: r.get("loaded_at"),
            active: r.get::<i64, _>("active") != 0,
        })
        .collect())
}

/// Active registries older than `max_age` (for the dialer's telemarketing check).
pub async fn stale_registries(
    db: &Db,
    now_ms: i64,
    max_age: std::time::Duration,
) -> anyhow::Result<Vec<RegistryInfo>> {
    Ok(registries(db)
        .await?
        .into_iter()
        .filter(|r| r.is_stale(now_ms, max_age))
        .collect())
}

/// Adds a number (any format the normaliser accepts, read in `default_region`) to the internal list.
/// Returns its E.164 form; adding it again is a no-op.
pub async fn add_internal(
    db: &Db,
    clock: &dyn Clock,
    number: &str,
    default_region: &str,
    reason: &str,
    source: &str,
    added_by: Option<&str>,
) -> anyhow::Result<String> {
    let phone = crate::phone::Normalizer::new(default_region)?
        .normalize(number)
        .map_err(|r| anyhow::anyhow!("{number:?} is not a valid number: {}", r.as_str()))?;
    sqlx::query(
        "INSERT INTO dnc_entries (e164, reason, source, added_at, added_by) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (e164) DO NOTHING",
    )
    .bind(&phone.e164)
    .bind(reason)
    .bind(source)
    .bind(clock.now_ms())
    .bind(added_by)
    .execute(db.pool())
    .await?;
    Ok(phone.e164)
}

/// Removes a number (E.164) from the internal list; true if it was there.
pub async fn remove_internal(db: &Db, e164: &str) -> anyhow::Result<bool> {
    let r = sqlx::query("DELETE FROM dnc_entries WHERE e164 = $1")
        .bind(e164)
        .execute(db.pool())
        .await?;
    Ok(r.rows_affected() > 0)
}

/// Where a number was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hit<'a> {
    Internal,
    Registry(&'a str),
    File(&'a str),
}

impl Hit<'_> {
    pub fn label(&self) -> String {
        match self {
            Hit::Internal => "internal".to_owned(),
            Hit::Registry(n) => format!("registry:{n}"),
            Hit::File(n) => format!("file:{n}"),
        }
    }
}

/// Every DNC source an import scrubs against.
#[derive(Debug, Default)]
pub struct DncIndex {
    pub internal: DncSet,
    pub registries: Vec<(RegistryInfo, DncSet)>,
    /// Files given for one import only (`--dnc FILE`), by file name.
    pub files: Vec<(String, DncSet)>,
}

impl DncIndex {
    /// The internal list and every active registry.
    pub async fn load(db: &Db) -> anyhow::Result<Self> {
        let rows: Vec<String> = sqlx::query_scalar("SELECT e164 FROM dnc_entries")
            .fetch_all(db.pool())
            .await?;
        let internal = DncSet::new(
            rows.iter()
                .filter_map(|e| e.trim_start_matches('+').parse().ok())
                .collect(),
        );
        let mut registries = Vec::new();
        for info in self::registries(db).await? {
            let blob: Vec<u8> =
                sqlx::query_scalar("SELECT numbers FROM dnc_registries WHERE id = $1")
                    .bind(info.id)
                    .fetch_one(db.pool())
                    .await?;
            let set = tokio::task::spawn_blocking(move || DncSet::decode(&blob)).await??;
            registries.push((info, set));
        }
        Ok(Self {
            internal,
            registries,
            files: Vec::new(),
        })
    }

    pub fn check(&self, digits: u64) -> Option<Hit<'_>> {
        if self.internal.contains(digits) {
            return Some(Hit::Internal);
        }
        for (info, set) in &self.registries {
            if set.contains(digits) {
                return Some(Hit::Registry(&info.name));
            }
        }
        for (name, set) in &self.files {
            if set.contains(digits) {
                return Some(Hit::File(name));
            }
        }
        None
    }

    pub fn total(&self) -> usize {
        self.internal.len()
            + self.registries.iter().map(|(_, s)| s.len()).sum::<usize>()
            + self.files.iter().map(|(_, s)| s.len()).sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_find_members_only() {
        let s = DncSet::new(vec![
            13125550100,
            442079460958,
            13125550100,
            12125550123,
            19999999999,
        ]);
        assert_eq!(s.len(), 4);
        for n in [13125550100, 442079460958, 12125550123, 19999999999] {
            assert!(s.contains(n), "{n}");
        }
        for n in [
            0,
            13125550101,
            13125550099,
            442079460959,
            u64::MAX,
            20000000000,
        ] {
            assert!(!s.contains(n), "{n}");
        }
        assert!(!DncSet::default().contains(13125550100));
        let round = DncSet::decode(&s.encode()).unwrap();
        assert_eq!(round.numbers(), s.numbers());
    }

    #[test]
    fn registry_lines() {
        assert_eq!(registry_line_digits("2125550123", 1), Some(12125550123));
        assert_eq!(registry_line_digits("212,5550123", 1), Some(12125550123));
        assert_eq!(registry_line_digits("1-212-555-0123", 1), Some(12125550123));
        assert_eq!(
            registry_line_digits("+44 20 7946 0958", 1),
            Some(442079460958)
        );
        assert_eq!(
            registry_line_digits("020 7946 0958", 44),
            Some(442079460958)
        );
        assert_eq!(registry_line_digits("phone_number", 1), None);
        assert_eq!(registry_line_digits("555-0100", 1), None);
        assert_eq!(registry_line_digits("", 1), None);
    }

    #[test]
    fn staleness_uses_the_download_date() {
        let day = 86_400_000;
        let r = RegistryInfo {
            id: 1,
            name: "us".into(),
            file_name: "f".into(),
            entries: 0,
            downloaded_at: 100 * day,
            loaded_at: 100 * day,
            active: true,
        };
        let max = std::time::Duration::from_secs(31 * 86_400);
        assert!(!is_registry_stale(&r, 131 * day, max));
        assert!(is_registry_stale(&r, 131 * day + 1, max));
    }
}
