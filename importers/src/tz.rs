//! Candidate IANA time zones for a phone number, each with its source.
//!
//! Sources, most specific first: an explicit time-zone column, the lead's postal code (US ZIP3,
//! Canadian postal district), the NANP area code, and the number's country. Explicit, postal and
//! area-code candidates are all kept when they disagree; the country is used only when none of
//! those gave a zone. Tables are the hand-written files under `importers/data/` (see its README),
//! embedded at build time. A number with no candidate is not dialable.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::LazyLock;

use chrono_tz::Tz;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Explicit,
    PostalCode,
    AreaCode,
    Country,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Explicit => "explicit",
            Self::PostalCode => "postal_code",
            Self::AreaCode => "area_code",
            Self::Country => "country",
        }
    }
}

/// One candidate zone and every source that proposed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Candidate {
    pub tz: &'static str,
    pub sources: Vec<Source>,
}

/// All candidate zones of one number.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Candidates {
    pub zones: Vec<Candidate>,
}

impl Candidates {
    /// More than one distinct zone: sources disagree or a key spans zones.
    pub fn ambiguous(&self) -> bool {
        self.zones.len() > 1
    }

    pub fn is_empty(&self) -> bool {
        self.zones.is_empty()
    }

    fn add(&mut self, zones: &[Tz], source: Source) {
        for tz in zones {
            let name = tz.name();
            match self.zones.iter_mut().find(|c| c.tz == name) {
                Some(c) if !c.sources.contains(&source) => c.sources.push(source),
                Some(_) => {}
                None => self.zones.push(Candidate {
                    tz: name,
                    sources: vec![source],
                }),
            }
        }
    }

    /// `[{"tz":"America/Chicago","sources":["postal_code","area_code"]}, …]`
    pub fn to_json(&self) -> String {
        serde_json::to_string(&self.zones).expect("serialisable")
    }
}

struct Tables {
    npa: Vec<Option<(&'static str, Vec<Tz>)>>,
    zip3: Vec<Option<Vec<Tz>>>,
    ca_postal: HashMap<char, Vec<Tz>>,
    country: HashMap<&'static str, Vec<Tz>>,
}

fn zones(list: &str, file: &str) -> Vec<Tz> {
    list.split(',')
        .map(|z| Tz::from_str(z.trim()).unwrap_or_else(|_| panic!("{file}: unknown zone {z:?}")))
        .collect()
}

fn data_lines(text: &'static str) -> impl Iterator<Item = Vec<&'static str>> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| l.split('\t').collect())
}

static TABLES: LazyLock<Tables> = LazyLock::new(|| {
    let mut npa = vec![None; 1000];
    for f in data_lines(include_str!("../data/nanp_area_codes.tsv")) {
        let z = zones(f[1], "nanp_area_codes.tsv");
        for code in f[2].split_whitespace() {
            let i: usize = code.parse().expect("nanp_area_codes.tsv: NPA");
            assert!(
                npa[i].is_none(),
                "nanp_area_codes.tsv: NPA {code} listed twice"
            );
            npa[i] = Some((f[0], z.clone()));
        }
    }
    let mut zip3 = vec![None; 1000];
    for f in data_lines(include_str!("../data/us_zip3_tz.tsv")) {
        let (a, b) = f[0].split_once('-').expect("us_zip3_tz.tsv: range");
        let (a, b): (usize, usize) = (a.parse().expect("zip3"), b.parse().expect("zip3"));
        let z = zones(f[1], "us_zip3_tz.tsv");
        for slot in &mut zip3[a..=b] {
            *slot = Some(z.clone());
        }
    }
    let ca_postal = data_lines(include_str!("../data/ca_postal_tz.tsv"))
        .map(|f| {
            (
                f[0].chars().next().expect("letter"),
                zones(f[1], "ca_postal_tz.tsv"),
            )
        })
        .collect();
    let country = data_lines(include_str!("../data/country_zones.tsv"))
        .map(|f| (f[0], zones(f[1], "country_zones.tsv")))
        .collect();
    Tables {
        npa,
        zip3,
        ca_postal,
        country,
    }
});

/// The region label of a NANP area code in the table (`US-IL`, `CA-ON`, `JM`, …).
pub fn nanp_region(npa: u16) -> Option<&'static str> {
    TABLES.npa.get(npa as usize)?.as_ref().map(|(r, _)| *r)
}

pub fn area_code_zones(npa: u16) -> Option<&'static [Tz]> {
    TABLES
        .npa
        .get(npa as usize)?
        .as_ref()
        .map(|(_, z)| z.as_slice())
}

/// Zones for a US ZIP (`60601`, `60601-1234`, `606`) or a Canadian postal code (`K1A 0B1`).
pub fn postal_zones(postal: &str) -> Option<(PostalKind, &'static [Tz])> {
    let p = postal.trim();
    let digits: String = p.chars().take_while(|c| c.is_ascii_digit()).collect();
    if digits.len() >= 3
        && (digits.len() == 5 || digits.len() == 9 || digits.len() == 3 || p.len() > 5)
    {
        let i: usize = digits[..3].parse().ok()?;
        return TABLES.zip3[i].as_deref().map(|z| (PostalKind::UsZip, z));
    }
    // Excel drops the leading zero of New England ZIPs: 2134 → 02134.
    if digits.len() == 4 && digits.len() == p.len() {
        let i: usize = digits[..2].parse().ok()?;
        return TABLES.zip3[i].as_deref().map(|z| (PostalKind::UsZip, z));
    }
    let compact: Vec<char> = p.chars().filter(|c| !c.is_whitespace()).collect();
    if compact.len() == 6
        && compact[0].is_ascii_alphabetic()
        && compact[1].is_ascii_digit()
        && compact[2].is_ascii_alphabetic()
        && compact[3].is_ascii_digit()
    {
        let letter = compact[0].to_ascii_uppercase();
        return TABLES
            .ca_postal
            .get(&letter)
            .map(|z| (PostalKind::CaPostal, z.as_slice()));
    }
    None
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PostalKind {
    UsZip,
    CaPostal,
}

pub fn country_zones(region: &str) -> Option<&'static [Tz]> {
    TABLES.country.get(region).map(|z| z.as_slice())
}

/// Reads an explicit time-zone cell: an IANA name, a common US/Canadian name or abbreviation
/// (`Eastern`, `CST`, `PT`, `Arizona`), or a fixed UTC offset (`UTC-5`, `GMT+01:00`, `-0500`).
pub fn parse_explicit(cell: &str) -> Option<Tz> {
    let s = cell.trim();
    if s.is_empty() {
        return None;
    }
    if let Ok(tz) = Tz::from_str(s) {
        return Some(tz);
    }
    let key: String = s
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_ascii_lowercase();
    let named = match key.as_str() {
        "eastern" | "easterntime" | "est" | "edt" | "et" | "useastern" | "easternstandardtime" => {
            Some("America/New_York")
        }
        "central" | "centraltime" | "cst" | "cdt" | "ct" | "uscentral" | "centralstandardtime" => {
            Some("America/Chicago")
        }
        "mountain"
        | "mountaintime"
        | "mst"
        | "mdt"
        | "mt"
        | "usmountain"
        | "mountainstandardtime" => Some("America/Denver"),
        "pacific" | "pacifictime" | "pst" | "pdt" | "pt" | "uspacific" | "pacificstandardtime" => {
            Some("America/Los_Angeles")
        }
        "arizona" | "usarizona" => Some("America/Phoenix"),
        "alaska" | "akst" | "akdt" | "usalaska" => Some("America/Anchorage"),
        "hawaii" | "hst" | "ushawaii" => Some("Pacific/Honolulu"),
        "atlantic" | "ast" | "adt" => Some("America/Halifax"),
        "newfoundland" | "nst" | "ndt" => Some("America/St_Johns"),
        "utc" | "gmt" | "z" => Some("UTC"),
        _ => None,
    };
    if let Some(name) = named {
        return Tz::from_str(name).ok();
    }
    // Fixed offsets: UTC-5, GMT+1, -05:00, +0100 (whole hours only; IANA Etc/GMT signs are inverted).
    let rest = s
        .trim_start_matches(|c: char| c.is_ascii_alphabetic())
        .trim();
    let (sign, num) = match rest.chars().next()? {
        '+' => (1, &rest[1..]),
        '-' | '\u{2212}' => (-1, rest.trim_start_matches(['-', '\u{2212}'])),
        _ => return None,
    };
    let digits: String = num.chars().filter(|c| c.is_ascii_digit()).collect();
    let (h, m) = match digits.len() {
        1 | 2 => (digits.parse::<i32>().ok()?, 0),
        3 | 4 => (
            digits[..digits.len() - 2].parse::<i32>().ok()?,
            digits[digits.len() - 2..].parse::<i32>().ok()?,
        ),
        _ => return None,
    };
    if m != 0 || h > 14 {
        return None;
    }
    let name = if h == 0 {
        "Etc/GMT".to_owned()
    } else {
        format!("Etc/GMT{}{h}", if sign > 0 { '-' } else { '+' })
    };
    Tz::from_str(&name).ok()
}

/// What is known about a lead's location, shared by all its numbers.
#[derive(Debug, Default, Clone, Copy)]
pub struct LeadPlace<'a> {
    pub explicit: Option<Tz>,
    pub postal: Option<&'a str>,
}

/// Candidate zones of one number of a lead.
pub fn candidates(phone: &crate::phone::Phone, place: &LeadPlace<'_>) -> Candidates {
    let mut c = Candidates::default();
    if let Some(tz) = place.explicit {
        c.add(&[tz], Source::Explicit);
    }
    let region = phone.region.unwrap_or("");
    if let Some(postal) = place.postal
        && let Some((kind, zones)) = postal_zones(postal)
    {
        let applies = match kind {
            PostalKind::UsZip => matches!(region, "US" | "PR" | "VI" | "GU" | "MP" | "AS"),
            PostalKind::CaPostal => region == "CA",
        };
        if applies {
            c.add(zones, Source::PostalCode);
        }
    }
    if phone.country_code == 1 {
        let npa = (phone.national / 10_000_000) as u16;
        if let Some(zones) = area_code_zones(npa) {
            c.add(zones, Source::AreaCode);
        }
    }
    if c.is_empty()
        && let Some(zones) = country_zones(region)
    {
        c.add(zones, Source::Country);
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_load_and_every_zone_exists() {
        // Loading panics on an unknown zone or a repeated NPA.
        assert_eq!(nanp_region(312), Some("US-IL"));
        assert_eq!(area_code_zones(212).unwrap(), &[Tz::America__New_York]);
        assert!(area_code_zones(800).is_none(), "toll-free has no area");
        assert!(TABLES.npa.iter().flatten().count() > 350);
        assert!(TABLES.zip3.iter().flatten().count() > 850);
        assert_eq!(country_zones("GB").unwrap(), &[Tz::Europe__London]);
    }

    #[test]
    fn postal_codes() {
        assert_eq!(postal_zones("60601").unwrap().1, &[Tz::America__Chicago]);
        assert_eq!(
            postal_zones("79901-1234").unwrap().1,
            &[Tz::America__Denver]
        );
        assert_eq!(
            postal_zones("2134").unwrap().1,
            &[Tz::America__New_York],
            "Excel-stripped 02134"
        );
        assert_eq!(postal_zones("K1A 0B1").unwrap().1, &[Tz::America__Toronto]);
        assert_eq!(postal_zones("T2P1J9").unwrap().1, &[Tz::America__Edmonton]);
        assert!(postal_zones("SW1A 1AA").is_none());
        assert!(postal_zones("09001").is_none(), "military APO");
    }

    #[test]
    fn explicit_cells() {
        assert_eq!(
            parse_explicit("America/Chicago"),
            Some(Tz::America__Chicago)
        );
        assert_eq!(parse_explicit("Eastern"), Some(Tz::America__New_York));
        assert_eq!(parse_explicit("PST"), Some(Tz::America__Los_Angeles));
        assert_eq!(parse_explicit("UTC-5"), Some(Tz::Etc__GMTPlus5));
        assert_eq!(parse_explicit("GMT+01:00"), Some(Tz::Etc__GMTMinus1));
        assert_eq!(parse_explicit("somewhere"), None);
        assert_eq!(parse_explicit(""), None);
    }
}
