//! A generator of realistic, messy CRM exports of any size, for tests and benchmarks
//! (`cargo run -p importers --example gen_crm -- --rows N …`).
//!
//! Rows mix phone formats (`(312) 555-0100`, `312.555.0100`, `+1 …`, `+44 20 7946 0958`,
//! extensions), invalid cells (letters, too short, premium rate, Excel `#N/A`), blank cells and
//! rows, duplicates (same CRM id or, without an id, same first number, re-formatted), rows whose
//! numbers are on a DNC list, accented names (optionally written as Windows-1252), quoted fields
//! with commas and newlines. The generator records what it wrote in [`Expected`], so tests can
//! assert exact counts per outcome: the expectations come from the generator's own choices, not
//! from the import code.

use std::collections::BTreeMap;
use std::io::Write;

/// Deterministic xorshift64* generator (no dependency, stable across versions).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p && p > 0.0
    }
    pub fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len() as u64) as usize]
    }
}

/// Long-established US area codes with a ZIP in their area (all in libphonenumber's US ranges).
const AREAS: &[(u16, &str, &str)] = &[
    (212, "NY", "10001"),
    (718, "NY", "11201"),
    (917, "NY", "10016"),
    (516, "NY", "11501"),
    (716, "NY", "14201"),
    (312, "IL", "60601"),
    (773, "IL", "60614"),
    (847, "IL", "60201"),
    (630, "IL", "60540"),
    (217, "IL", "62701"),
    (213, "CA", "90012"),
    (415, "CA", "94103"),
    (619, "CA", "92101"),
    (916, "CA", "95814"),
    (818, "CA", "91401"),
    (305, "FL", "33101"),
    (407, "FL", "32801"),
    (813, "FL", "33602"),
    (904, "FL", "32202"),
    (954, "FL", "33301"),
    (713, "TX", "77002"),
    (214, "TX", "75201"),
    (512, "TX", "78701"),
    (210, "TX", "78205"),
    (817, "TX", "76102"),
    (404, "GA", "30303"),
    (617, "MA", "02108"),
    (602, "AZ", "85004"),
    (303, "CO", "80202"),
    (206, "WA", "98101"),
    (503, "OR", "97201"),
    (702, "NV", "89101"),
    (808, "HI", "96813"),
    (215, "PA", "19102"),
    (412, "PA", "15222"),
    (313, "MI", "48226"),
    (614, "OH", "43215"),
    (216, "OH", "44113"),
    (504, "LA", "70112"),
    (615, "TN", "37203"),
    (901, "TN", "38103"),
    (801, "UT", "84101"),
    (505, "NM", "87102"),
    (704, "NC", "28202"),
    (919, "NC", "27601"),
    (804, "VA", "23219"),
    (202, "DC", "20001"),
    (410, "MD", "21201"),
    (201, "NJ", "07302"),
    (612, "MN", "55401"),
];

const FIRST: &[&str] = &[
    "James", "Mary", "John", "Patricia", "Robert", "Jennifer", "Michael", "Linda", "David",
    "Susan", "Maria", "Carlos", "Wei", "Aisha", "Olivia", "Liam", "Noah", "Emma", "Sophia",
    "Mateo",
];
const FIRST_ACCENTED: &[&str] = &[
    "José",
    "Zoë",
    "Françoise",
    "Jürgen",
    "Renée",
    "Søren",
    "Inés",
    "André",
    "Björn",
    "Chloé",
];
const LAST: &[&str] = &[
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Lee",
    "Walker",
    "Hall",
    "Allen",
    "Young",
];
const LAST_ACCENTED: &[&str] = &[
    "Müller",
    "Núñez",
    "Peña",
    "Gómez",
    "Lefèvre",
    "Østergård",
    "Çelik",
    "Brontë",
];
const COMPANIES: &[&str] = &[
    "Acme, Inc.",
    "Globex Corporation",
    "Initech",
    "Umbrella \"Health\" LLC",
    "Stark Industries",
    "Wayne Enterprises",
    "Hooli",
    "Vandelay Industries",
    "Soylent, Corp.",
    "Tyrell Corp",
];
const SOURCES: &[&str] = &["Web", "Trade Show", "Referral", "Partner", "Cold Call"];

/// Header sets of the CRMs whose exports are imitated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrmStyle {
    Salesforce,
    HubSpot,
    Dynamics,
    Zoho,
}

impl CrmStyle {
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "salesforce" | "sf" => Some(Self::Salesforce),
            "hubspot" | "hs" => Some(Self::HubSpot),
            "dynamics" | "d365" => Some(Self::Dynamics),
            "zoho" => Some(Self::Zoho),
            _ => None,
        }
    }

    /// id, first, last, phone, mobile, email, state, zip, company, source, consent type, consent date, notes
    pub fn headers(self) -> [&'static str; 13] {
        match self {
            Self::Salesforce => [
                "Contact ID",
                "First Name",
                "Last Name",
                "Phone",
                "Mobile Phone",
                "Email",
                "Mailing State/Province",
                "Mailing Zip/Postal Code",
                "Account Name",
                "Lead Source",
                "Consent Type",
                "Consent Date",
                "Description",
            ],
            Self::HubSpot => [
                "Record ID",
                "First Name",
                "Last Name",
                "Phone Number",
                "Mobile Phone Number",
                "Email",
                "State/Region",
                "Postal Code",
                "Company Name",
                "Original Source",
                "Consent Type",
                "Consent Date",
                "Notes",
            ],
            Self::Dynamics => [
                "(Do Not Modify) Contact",
                "First Name",
                "Last Name",
                "Business Phone",
                "Mobile Phone",
                "Email",
                "Address 1: State/Province",
                "Address 1: ZIP/Postal Code",
                "Company Name",
                "Origin",
                "Consent Type",
                "Consent Date",
                "Description",
            ],
            Self::Zoho => [
                "CONTACTID",
                "First Name",
                "Last Name",
                "Phone",
                "Mobile",
                "Email",
                "Mailing State",
                "Mailing Zip",
                "Account Name",
                "Lead Source",
                "Consent Type",
                "Consent Date",
                "Description",
            ],
        }
    }
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenOptions {
    pub rows: u64,
    pub seed: u64,
    pub style: CrmStyle,
    /// Shares of rows (the rest are accepted rows).
    pub invalid_share: f64,
    pub duplicate_share: f64,
    pub dnc_share: f64,
    pub blank_row_share: f64,
    /// Share of accepted rows whose second number is on the DNC list (row still accepted).
    pub partial_dnc_share: f64,
    /// Share of rows with accented names.
    pub accented_share: f64,
    /// Share of rows with a UK number instead of a NANP one as first phone (at most 1,000 rows).
    pub uk_share: f64,
    /// Share of rows without a CRM id (deduped on the first number instead).
    pub missing_id_share: f64,
}

impl GenOptions {
    pub fn new(rows: u64, seed: u64) -> Self {
        Self {
            rows,
            seed,
            style: CrmStyle::Salesforce,
            invalid_share: 0.05,
            duplicate_share: 0.03,
            dnc_share: 0.01,
            blank_row_share: 0.002,
            partial_dnc_share: 0.01,
            accented_share: 0.05,
            uk_share: 0.002,
            missing_id_share: 0.02,
        }
    }
}

/// One cell as a spreadsheet would hold it.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Text(String),
    /// A whole number stored as a number (XLSX); CSV writes it without decimals.
    Number(f64),
    /// A date cell (XLSX); CSV writes `YYYY-MM-DD`.
    Date(chrono::NaiveDate),
    Empty,
}

impl Cell {
    pub fn text(&self) -> String {
        match self {
            Cell::Text(s) => s.clone(),
            Cell::Number(n) => format!("{}", *n as i64),
            Cell::Date(d) => d.format("%Y-%m-%d").to_string(),
            Cell::Empty => String::new(),
        }
    }
}

/// What the generated file must import as, row by row outcome.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expected {
    pub rows: u64,
    pub accepted: u64,
    pub rejected_by_reason: BTreeMap<String, u64>,
    /// All duplicates are `duplicate_in_file` (the generator writes no list).
    pub duplicates: u64,
    /// Rows whose every valid number is on the DNC list.
    pub dnc_rows: u64,
    /// Invalid phone cells by reason, over all rows.
    pub invalid_numbers_by_reason: BTreeMap<String, u64>,
    /// Valid numbers that hit the DNC list (in rows that reach the DNC check).
    pub dnc_numbers: u64,
    /// Stored numbers with an extension (on accepted rows).
    pub stored_with_extension: u64,
    /// Rows written as Windows-1252.
    pub windows_1252_rows: u64,
}

impl Expected {
    pub fn rejected(&self) -> u64 {
        self.rejected_by_reason.values().sum()
    }
}

/// A generated row and how it is encoded.
#[derive(Debug, Clone)]
pub struct Row {
    pub cells: Vec<Cell>,
    /// Write this row as Windows-1252 (only in CSV, and only when enabled by the writer).
    pub latin1: bool,
}

struct Source {
    cells: Vec<Cell>,
    phone1: (u16, u16, u16),
    latin1: bool,
    invalid2: Option<&'static str>,
}

/// Generates rows lazily; `expected` and `dnc_numbers` are complete once the iterator is exhausted.
pub struct Generator {
    opts: GenOptions,
    rng: Rng,
    next: u64,
    number_index: u64,
    uk_used: u64,
    accepted_pool: Vec<Source>,
    pub expected: Expected,
    /// E.164 digits of numbers the DNC list must contain.
    pub dnc_numbers: Vec<u64>,
    /// Whether rows with accented names are meant to be written as Windows-1252.
    pub latin1: bool,
}

/// Invalid cells with the reason the importer must give.
const INVALID: &[(&str, &str)] = &[
    ("555-0100 x123", "too_short"),
    ("312-555-01", "too_short"),
    ("call me", "contains_letters"),
    ("N/A", "contains_letters"),
    ("unknown", "contains_letters"),
    ("#N/A", "invalid_characters"),
    ("123-456-7890", "invalid_number"),
    ("1-900-555-0199", "premium_rate"),
];

impl Generator {
    pub fn new(opts: GenOptions, latin1: bool) -> Self {
        let rng = Rng::new(opts.seed);
        Self {
            opts,
            rng,
            next: 0,
            number_index: 0,
            uk_used: 0,
            accepted_pool: Vec::new(),
            expected: Expected::default(),
            dnc_numbers: Vec::new(),
            latin1,
        }
    }

    pub fn headers(&self) -> Vec<String> {
        self.opts
            .style
            .headers()
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    /// A fresh NANP number (npa, nxx, line), never returned before: index `k` goes through a
    /// bijection of the space AREAS × 800 exchanges × 10,000 lines.
    fn fresh(&mut self) -> (u16, u16, u16) {
        let k = self.number_index;
        self.number_index += 1;
        nanp_number(k)
    }

    fn format_nanp(&mut self, (npa, nxx, line): (u16, u16, u16), allow_ext: bool) -> (Cell, bool) {
        let f = self.rng.below(if allow_ext { 9 } else { 8 });
        let cell = match f {
            0 => Cell::Text(format!("({npa}) {nxx}-{line:04}")),
            1 => Cell::Text(format!("{npa}.{nxx}.{line:04}")),
            2 => Cell::Text(format!("{npa}-{nxx}-{line:04}")),
            3 => Cell::Text(format!("+1 {npa} {nxx} {line:04}")),
            4 => Cell::Text(format!("1-{npa}-{nxx}-{line:04}")),
            5 => Cell::Number(
                format!("{npa}{nxx}{line:04}")
                    .parse::<f64>()
                    .expect("digits"),
            ),
            6 => Cell::Text(format!("+1 ({npa}) {nxx}-{line:04}")),
            7 => Cell::Text(format!(" {npa} {nxx} {line:04} ")),
            _ => Cell::Text(format!(
                "{npa}-{nxx}-{line:04} x{}",
                100 + self.rng.below(900)
            )),
        };
        (cell, f == 8)
    }

    fn invalid(&mut self) -> (Cell, &'static str) {
        let (raw, reason) = *self.rng.pick(INVALID);
        (Cell::Text(raw.to_owned()), reason)
    }

    fn crm_id(&mut self, i: u64) -> Cell {
        if self.rng.chance(self.opts.missing_id_share) {
            return Cell::Empty;
        }
        match self.opts.style {
            CrmStyle::Salesforce => Cell::Text(format!("0035g{:013X}", i * 7919 + 17)),
            CrmStyle::HubSpot => Cell::Number((1_000_000 + i) as f64),
            CrmStyle::Dynamics => Cell::Text(format!("{:08x}-4e1b-4c3a-9f00-{:012x}", i, i * 31)),
            CrmStyle::Zoho => Cell::Text(format!("zcrm_{}", 5_725_767_000_000_000u64 + i)),
        }
    }

    fn person(&mut self, i: u64, area: usize, phone1: Cell, phone2: Cell) -> (Vec<Cell>, bool) {
        let accented = self.rng.chance(self.opts.accented_share);
        let (first, last) = if accented {
            (
                self.rng.pick(FIRST_ACCENTED).to_string(),
                self.rng.pick(LAST_ACCENTED).to_string(),
            )
        } else {
            (
                self.rng.pick(FIRST).to_string(),
                self.rng.pick(LAST).to_string(),
            )
        };
        let (_, state, zip) = AREAS[area];
        let zip = if self.rng.chance(0.1) {
            Cell::Empty
        } else {
            Cell::Text(zip.to_owned())
        };
        let company = Cell::Text(self.rng.pick(COMPANIES).to_string());
        let consent = self.rng.chance(0.3);
        let notes = match self.rng.below(20) {
            0 => Cell::Text("Called twice,\nasked for email".to_owned()),
            1 => Cell::Text("VIP; prefers \"mornings\"".to_owned()),
            _ => Cell::Empty,
        };
        let email = Cell::Text(format!(
            "{}.{}{}@example.com",
            first.to_lowercase(),
            last.to_lowercase(),
            i
        ));
        let cells = vec![
            self.crm_id(i),
            Cell::Text(first),
            Cell::Text(last),
            phone1,
            phone2,
            email,
            Cell::Text(state.to_owned()),
            zip,
            company,
            Cell::Text(self.rng.pick(SOURCES).to_string()),
            if consent {
                Cell::Text("pewc".into())
            } else {
                Cell::Empty
            },
            if consent {
                Cell::Date(
                    chrono::NaiveDate::from_ymd_opt(
                        2025,
                        1 + self.rng.below(12) as u32,
                        1 + self.rng.below(28) as u32,
                    )
                    .expect("date"),
                )
            } else {
                Cell::Empty
            },
            notes,
        ];
        (cells, accented && self.latin1)
    }

    fn area_of(npa: u16) -> usize {
        AREAS.iter().position(|a| a.0 == npa).expect("known area")
    }

    fn bump(map: &mut BTreeMap<String, u64>, k: &str) {
        *map.entry(k.to_owned()).or_default() += 1;
    }

    fn make_row(&mut self) -> Row {
        let i = self.next;
        self.next += 1;
        self.expected.rows += 1;
        let o = self.opts.clone();
        let r = (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;

        // Duplicate of an earlier accepted row: same id (or, without one, same first number).
        if r < o.duplicate_share && !self.accepted_pool.is_empty() {
            let j = self.rng.below(self.accepted_pool.len() as u64) as usize;
            let (mut cells, phone1, latin1, invalid2) = {
                let s = &self.accepted_pool[j];
                (s.cells.clone(), s.phone1, s.latin1, s.invalid2)
            };
            let (c, _) = self.format_nanp(phone1, false);
            cells[3] = c;
            if let Some(reason) = invalid2 {
                Self::bump(&mut self.expected.invalid_numbers_by_reason, reason);
            }
            self.expected.duplicates += 1;
            self.expected.windows_1252_rows += latin1 as u64;
            return Row { cells, latin1 };
        }
        let mut r = r - o.duplicate_share;
        // (Never the last row: spreadsheets drop trailing blank rows.)
        if r < o.blank_row_share && i + 1 < o.rows {
            Self::bump(&mut self.expected.rejected_by_reason, "blank_row");
            return Row {
                cells: vec![Cell::Empty; 13],
                latin1: false,
            };
        }
        r -= o.blank_row_share;
        if r < o.invalid_share {
            // No valid number: invalid + (blank | invalid), or both blank.
            let area = self.rng.below(AREAS.len() as u64) as usize;
            let (p1, p2, reason) = match self.rng.below(5) {
                0 => {
                    let (c, reason) = self.invalid();
                    Self::bump(&mut self.expected.invalid_numbers_by_reason, reason);
                    (Cell::Empty, c, reason)
                }
                1 => (Cell::Empty, Cell::Empty, "no_phone"),
                2 | 3 => {
                    let (c1, r1) = self.invalid();
                    let (c2, r2) = self.invalid();
                    Self::bump(&mut self.expected.invalid_numbers_by_reason, r1);
                    Self::bump(&mut self.expected.invalid_numbers_by_reason, r2);
                    (c1, c2, r1)
                }
                _ => {
                    let (c1, r1) = self.invalid();
                    Self::bump(&mut self.expected.invalid_numbers_by_reason, r1);
                    (c1, Cell::Text("   ".into()), r1)
                }
            };
            Self::bump(&mut self.expected.rejected_by_reason, reason);
            let (cells, latin1) = self.person(i, area, p1, p2);
            self.expected.windows_1252_rows += latin1 as u64;
            return Row { cells, latin1 };
        }
        r -= o.invalid_share;
        if r < o.dnc_share {
            let n1 = self.fresh();
            let (c1, _) = self.format_nanp(n1, false);
            self.dnc_numbers.push(e164_digits(n1));
            self.expected.dnc_numbers += 1;
            let p2 = if self.rng.chance(0.5) {
                let n2 = self.fresh();
                self.dnc_numbers.push(e164_digits(n2));
                self.expected.dnc_numbers += 1;
                self.format_nanp(n2, false).0
            } else {
                Cell::Empty
            };
            self.expected.dnc_rows += 1;
            let (cells, latin1) = self.person(i, Self::area_of(n1.0), c1, p2);
            self.expected.windows_1252_rows += latin1 as u64;
            return Row { cells, latin1 };
        }

        // Accepted.
        self.expected.accepted += 1;
        let uk = self.uk_used < 1000 && self.rng.chance(o.uk_share);
        let n1 = self.fresh();
        let (c1, ext1) = if uk {
            let k = self.uk_used;
            self.uk_used += 1;
            (Cell::Text(format!("+44 20 7946 {:04}", k)), false)
        } else {
            self.format_nanp(n1, true)
        };
        self.expected.stored_with_extension += ext1 as u64;
        let mut invalid2 = None;
        let c2 = match self.rng.below(10) {
            0..=4 => {
                let n2 = self.fresh();
                let (c, ext) = self.format_nanp(n2, true);
                if self.rng.chance(o.partial_dnc_share * 2.0) {
                    self.dnc_numbers.push(e164_digits(n2));
                    self.expected.dnc_numbers += 1;
                }
                self.expected.stored_with_extension += ext as u64;
                c
            }
            5..=7 => Cell::Empty,
            _ => {
                let (c, reason) = self.invalid();
                Self::bump(&mut self.expected.invalid_numbers_by_reason, reason);
                invalid2 = Some(reason);
                c
            }
        };
        let (cells, latin1) = self.person(i, Self::area_of(n1.0), c1, c2);
        self.expected.windows_1252_rows += latin1 as u64;
        // UK rows are not duplicated (their first number is not the NANP `n1`).
        if !uk {
            self.accepted_pool.push(Source {
                cells: cells.clone(),
                phone1: n1,
                latin1,
                invalid2,
            });
            if self.accepted_pool.len() > 4096 {
                let k = self.rng.below(4096) as usize;
                self.accepted_pool.swap_remove(k);
            }
        }
        Row { cells, latin1 }
    }
}

impl Iterator for Generator {
    type Item = Row;
    fn next(&mut self) -> Option<Row> {
        (self.next < self.opts.rows).then(|| self.make_row())
    }
}

/// The `k`-th number of a bijective walk over AREAS × 800 × 10,000.
pub fn nanp_number(k: u64) -> (u16, u16, u16) {
    let space = AREAS.len() as u64 * 800 * 10_000;
    let k = (k % space).wrapping_mul(2_654_435_761) % space;
    let (a, rest) = (k / 8_000_000, k % 8_000_000);
    (
        AREAS[a as usize].0,
        200 + (rest / 10_000) as u16,
        (rest % 10_000) as u16,
    )
}

pub fn e164_digits((npa, nxx, line): (u16, u16, u16)) -> u64 {
    10_000_000_000 + npa as u64 * 10_000_000 + nxx as u64 * 10_000 + line as u64
}

/// Output options for CSV.
#[derive(Debug, Clone)]
pub struct CsvStyle {
    pub delimiter: u8,
    pub bom: bool,
}

/// Writes the generator's rows as delimited text (accented rows as Windows-1252 when the
/// generator was built with `latin1`). Returns the expectations.
pub fn write_csv<W: Write>(
    mut generator: Generator,
    style: &CsvStyle,
    out: W,
) -> anyhow::Result<(Expected, Vec<u64>)> {
    let mut out = std::io::BufWriter::with_capacity(1 << 20, out);
    if style.bom {
        out.write_all(&[0xef, 0xbb, 0xbf])?;
    }
    let mut line = String::with_capacity(512);
    write_record(&mut line, &generator.headers(), style.delimiter);
    out.write_all(line.as_bytes())?;
    for row in generator.by_ref() {
        let texts: Vec<String> = row.cells.iter().map(Cell::text).collect();
        line.clear();
        write_record(&mut line, &texts, style.delimiter);
        if row.latin1 {
            let (bytes, _, unmappable) = encoding_rs::WINDOWS_1252.encode(&line);
            anyhow::ensure!(!unmappable, "name not representable in Windows-1252");
            out.write_all(&bytes)?;
        } else {
            out.write_all(line.as_bytes())?;
        }
    }
    out.flush()?;
    Ok((generator.expected, generator.dnc_numbers))
}

/// One CSV record (RFC 4180 quoting: fields holding the delimiter, quotes or line breaks are
/// quoted, quotes doubled), CRLF-terminated as Excel writes it.
fn write_record(line: &mut String, fields: &[String], delimiter: u8) {
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            line.push(delimiter as char);
        }
        if f.contains([delimiter as char, '"', '\n', '\r']) {
            line.push('"');
            line.push_str(&f.replace('"', "\"\""));
            line.push('"');
        } else {
            line.push_str(f);
        }
    }
    line.push_str("\r\n");
}

/// Writes a registry-style DNC file: one 10-digit NANP number a line, with `must` (E.164 digits)
/// plus `decoys` numbers that the generator never uses in rows (drawn far beyond its indexes).
pub fn write_dnc_file<W: Write>(
    must: &[u64],
    decoys: u64,
    seed: u64,
    out: W,
) -> anyhow::Result<()> {
    let mut out = std::io::BufWriter::with_capacity(1 << 20, out);
    let mut rng = Rng::new(seed);
    let mut lines: Vec<u64> = must.to_vec();
    // Decoys: indexes from the top of the walk's range, which no generated file reaches.
    let space = AREAS.len() as u64 * 800 * 10_000;
    for d in 0..decoys {
        lines.push(e164_digits(nanp_number(space - 1 - d)));
    }
    // Shuffle lightly so the file is not sorted.
    for i in (1..lines.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        lines.swap(i, j);
    }
    for n in lines {
        writeln!(out, "{}", n - 10_000_000_000)?;
    }
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn number_walk_does_not_repeat() {
        let mut seen = std::collections::HashSet::new();
        for k in 0..200_000 {
            assert!(seen.insert(nanp_number(k)), "{k}");
        }
    }

    #[test]
    fn expectations_add_up() {
        let mut g = Generator::new(GenOptions::new(5000, 7), true);
        let rows = g.by_ref().count() as u64;
        let e = &g.expected;
        assert_eq!(rows, 5000);
        assert_eq!(
            e.rows,
            e.accepted + e.rejected() + e.duplicates + e.dnc_rows
        );
        assert!(
            e.duplicates > 50 && e.dnc_rows > 10 && e.rejected() > 100,
            "{e:?}"
        );
    }
}
