//! Candidate IANA time zones for a phone number, each with its source.
//!
//! Sources, most specific first: an explicit time-zone column, the lead's postal code (US ZIP3,
//! Canadian postal district), the NANP area code, and the number's country. Explicit, postal and
//! area-code candidates are all kept when they disagree; the country is used only when none of
//! those gave a zone. A number with no candidate is not dialable.
//!
//! Tables live under `importers/data/` (see its README) and are embedded at build time. A NANP
//! number's area-code zones come from libphonenumber's published time-zone map
//! (`libphonenumber_nanp_timezones.txt`, Apache-2.0), by longest-prefix match on the national
//! number (NPA, NPA-NXX or NPA-NXX-X; the whole-country `1|…` line is never used), labelled
//! `area_code_libphonenumber`. Only when that map has no prefix for the number does the
//! hand-written `nanp_area_codes.tsv` answer, labelled `area_code_hand_written_fallback` (newer
//! overlays the 2018 map lacks). The postal and country tables are hand-written.

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
    /// The NANP area code, from libphonenumber's published time-zone map (longest prefix).
    AreaCodeLibphonenumber,
    /// The NANP area code, from the hand-written table: only for numbers whose prefix the
    /// published map lacks.
    AreaCodeHandWrittenFallback,
    /// The NANP area code, from the hand-written table, where it disagrees with the published
    /// map: a zone of the area code whose clock no published zone of that code keeps (e.g. the
    /// map's 2018 data puts Toronto's overlay 437 in Winnipeg). Sources that disagree keep all
    /// their candidates, so such numbers are called only when both clocks allow it.
    AreaCodeHandWrittenDisagrees,
    Country,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Explicit => "explicit",
            Self::PostalCode => "postal_code",
            Self::AreaCodeLibphonenumber => "area_code_libphonenumber",
            Self::AreaCodeHandWrittenFallback => "area_code_hand_written_fallback",
            Self::AreaCodeHandWrittenDisagrees => "area_code_hand_written_disagrees",
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
    /// The hand-written NPA table: region label (kept for `nanp_region`) and fallback zones.
    npa: Vec<Option<(&'static str, Vec<Tz>)>>,
    published: Published,
    /// Per NPA: the hand-written zones whose clock the published map's zones for that NPA lack.
    disputed: Vec<Option<Vec<Tz>>>,
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
    let published = Published::parse(include_str!("../data/libphonenumber_nanp_timezones.txt"));
    let disputed = (0..1000)
        .map(|i| {
            let hand = &npa[i].as_ref()?.1;
            let (start, end) = published.by_npa[i];
            if start == end {
                return None;
            }
            let theirs: Vec<Tz> = published.prefixes[start as usize..end as usize]
                .iter()
                .flat_map(|p| p.zones.iter().copied())
                .collect();
            let extra: Vec<Tz> = hand
                .iter()
                .copied()
                .filter(|h| !theirs.iter().any(|t| same_clock(*h, *t)))
                .collect();
            (!extra.is_empty()).then_some(extra)
        })
        .collect();
    Tables {
        npa,
        published,
        disputed,
        zip3,
        ca_postal,
        country,
    }
});

/// The region label of a NANP area code in the table (`US-IL`, `CA-ON`, `JM`, …).
pub fn nanp_region(npa: u16) -> Option<&'static str> {
    TABLES.npa.get(npa as usize)?.as_ref().map(|(r, _)| *r)
}

/// One prefix of libphonenumber's NANP time-zone map, as national digits (after the `1`).
struct Prefix {
    /// National digits in the prefix, 3 (NPA) to 7 (NPA-NXX-X).
    len: u8,
    value: u32,
    zones: Vec<Tz>,
}

/// libphonenumber's NANP map, sorted by (NPA, length, value) with each NPA's range, so a lookup
/// is an index and a few binary searches inside one NPA's (usually single-entry) slice.
struct Published {
    prefixes: Vec<Prefix>,
    by_npa: Vec<(u32, u32)>,
}

impl Published {
    fn parse(text: &'static str) -> Self {
        const FILE: &str = "libphonenumber_nanp_timezones.txt";
        let mut prefixes = Vec::new();
        for line in text
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        {
            let (digits, list) = line
                .split_once('|')
                .unwrap_or_else(|| panic!("{FILE}: no '|' in {line:?}"));
            let national = digits
                .strip_prefix('1')
                .unwrap_or_else(|| panic!("{FILE}: {digits} is not NANP"));
            // `1|…` (every NANP zone) is the whole country, not an area-code answer.
            if national.len() < 3 {
                continue;
            }
            assert!(
                national.len() <= 7 && national.bytes().all(|b| b.is_ascii_digit()),
                "{FILE}: prefix {digits}"
            );
            let zones = list
                .split('&')
                .map(|z| Tz::from_str(z).unwrap_or_else(|_| panic!("{FILE}: unknown zone {z:?}")))
                .collect();
            prefixes.push(Prefix {
                len: national.len() as u8,
                value: national.parse().expect("digits"),
                zones,
            });
        }
        let npa_of = |p: &Prefix| p.value / 10u32.pow(u32::from(p.len) - 3);
        prefixes.sort_by_key(|p| (npa_of(p), p.len, p.value));
        for w in prefixes.windows(2) {
            assert!(
                (w[0].len, w[0].value) != (w[1].len, w[1].value),
                "{FILE}: prefix 1{} listed twice",
                w[0].value
            );
        }
        let mut by_npa = vec![(0u32, 0u32); 1000];
        let mut i = 0;
        while i < prefixes.len() {
            let npa = npa_of(&prefixes[i]);
            let start = i;
            while i < prefixes.len() && npa_of(&prefixes[i]) == npa {
                i += 1;
            }
            by_npa[npa as usize] = (start as u32, i as u32);
        }
        Self { prefixes, by_npa }
    }

    /// The longest prefix of a 10-digit national number, as an index into `prefixes`.
    fn longest(&self, national: u64) -> Option<u32> {
        let npa = national / 10_000_000;
        let &(start, end) = self.by_npa.get(usize::try_from(npa).ok()?)?;
        let slice = &self.prefixes[start as usize..end as usize];
        for len in (3..=7u8).rev() {
            let value = (national / 10u64.pow(10 - u32::from(len))) as u32;
            if let Ok(i) = slice.binary_search_by(|p| (p.len, p.value).cmp(&(len, value))) {
                return Some(start + i as u32);
            }
        }
        None
    }
}

/// Which table row gives a NANP number its area-code zones. Numbers with the same key get the
/// same area-code candidates, so the importer memoises on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AreaKey {
    /// A prefix of libphonenumber's map (an index into it).
    Published(u32),
    /// No published prefix: the hand-written table's NPA.
    Fallback(u16),
    /// No area-code zone (not NANP, non-geographic, or unknown NPA).
    None,
}

/// The area-code row of a NANP national (10-digit) number: the longest published prefix, else
/// the hand-written NPA.
pub fn nanp_area_key(national: u64) -> AreaKey {
    let t = &*TABLES;
    if let Some(i) = t.published.longest(national) {
        return AreaKey::Published(i);
    }
    let npa = national / 10_000_000;
    match t.npa.get(npa as usize) {
        Some(Some(_)) => AreaKey::Fallback(npa as u16),
        _ => AreaKey::None,
    }
}

/// The zones of an area-code row, and which source they come from.
pub fn area_key_zones(key: AreaKey) -> Option<(Source, &'static [Tz])> {
    let t = &*TABLES;
    match key {
        AreaKey::Published(i) => Some((
            Source::AreaCodeLibphonenumber,
            t.published.prefixes.get(i as usize)?.zones.as_slice(),
        )),
        AreaKey::Fallback(npa) => t
            .npa
            .get(npa as usize)?
            .as_ref()
            .map(|(_, z)| (Source::AreaCodeHandWrittenFallback, z.as_slice())),
        AreaKey::None => None,
    }
}

/// Whether two zones keep the same clock: the same UTC offset in mid-January and mid-July of
/// 2026 (so the same standard time and the same daylight-saving habit).
fn same_clock(a: Tz, b: Tz) -> bool {
    use chrono::{NaiveDate, Offset, TimeZone};
    [(1, 15), (7, 15)].iter().all(|&(m, d)| {
        let t = NaiveDate::from_ymd_opt(2026, m, d)
            .and_then(|d| d.and_hms_opt(12, 0, 0))
            .expect("a date");
        a.offset_from_utc_datetime(&t).fix() == b.offset_from_utc_datetime(&t).fix()
    })
}

/// For a number whose area-code row is a published prefix: the hand-written zones of its NPA
/// whose clock the published map lacks for that NPA ([`Source::AreaCodeHandWrittenDisagrees`]).
pub fn area_key_disputed(key: AreaKey) -> Option<(Source, &'static [Tz])> {
    let t = &*TABLES;
    let AreaKey::Published(i) = key else {
        return None;
    };
    let p = t.published.prefixes.get(i as usize)?;
    let npa = p.value / 10u32.pow(u32::from(p.len) - 3);
    t.disputed[npa as usize]
        .as_deref()
        .map(|z| (Source::AreaCodeHandWrittenDisagrees, z))
}

/// Area-code zones of a NANP national (10-digit) number, with their source.
pub fn area_code_zones(national: u64) -> Option<(Source, &'static [Tz])> {
    area_key_zones(nanp_area_key(national))
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
        let key = nanp_area_key(phone.national);
        if let Some((source, zones)) = area_key_zones(key) {
            c.add(zones, source);
        }
        if let Some((source, zones)) = area_key_disputed(key) {
            c.add(zones, source);
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
        assert!(
            area_code_zones(8005550100).is_none(),
            "toll-free has no area"
        );
        assert!(TABLES.npa.iter().flatten().count() > 350);
        assert!(TABLES.published.prefixes.len() > 1900);
        assert!(TABLES.zip3.iter().flatten().count() > 850);
        assert_eq!(country_zones("GB").unwrap(), &[Tz::Europe__London]);
    }

    /// The zones the published file lists for exactly `prefix` (read from the data file itself,
    /// not through the lookup table); empty when the file has no such line.
    fn published_line(prefix: &str) -> Vec<&'static str> {
        include_str!("../data/libphonenumber_nanp_timezones.txt")
            .lines()
            .find_map(|l| l.strip_prefix(prefix)?.strip_prefix('|'))
            .map(|z| z.split('&').collect())
            .unwrap_or_default()
    }

    /// Zone names and source of a national number's area-code answer.
    fn area(national: u64) -> Option<(Source, Vec<&'static str>)> {
        area_code_zones(national).map(|(s, z)| (s, z.iter().map(|t| t.name()).collect()))
    }

    #[test]
    fn published_map_longest_prefix_wins() {
        use Source::AreaCodeLibphonenumber as Lpn;
        // 208-201: the file has 12082 (Boise & Los Angeles) and the longer 1208201 (Denver).
        assert_eq!(
            published_line("12082"),
            ["America/Boise", "America/Los_Angeles"]
        );
        assert_eq!(published_line("1208201"), ["America/Denver"]);
        assert_eq!(area(2082011234), Some((Lpn, published_line("1208201"))));
        assert_eq!(
            area(2082011234).unwrap().1,
            ["America/Denver"],
            "Denver only"
        );
        // 208-245: Los Angeles.
        assert_eq!(published_line("1208245"), ["America/Los_Angeles"]);
        assert_eq!(area(2082450000), Some((Lpn, vec!["America/Los_Angeles"])));
        // 208-300: a prefix with two zones gives both (ambiguous).
        assert_eq!(
            published_line("120830"),
            ["America/Boise", "America/Los_Angeles"]
        );
        assert_eq!(area(2083001234), Some((Lpn, published_line("120830"))));
        // A plain 212 number: only the NPA line.
        assert_eq!(published_line("1212"), ["America/New_York"]);
        assert!(published_line("1212555").is_empty() && published_line("121255").is_empty());
        assert_eq!(area(2125550123), Some((Lpn, vec!["America/New_York"])));
        // 250-242 is Edmonton, the rest of 250 (e.g. 250-555) Vancouver.
        assert_eq!(published_line("1250242"), ["America/Edmonton"]);
        assert_eq!(area(2502421234), Some((Lpn, vec!["America/Edmonton"])));
        assert!(published_line("1250555").is_empty() && published_line("125055").is_empty());
        assert_eq!(published_line("1250"), ["America/Vancouver"]);
        assert_eq!(area(2505551234), Some((Lpn, vec!["America/Vancouver"])));
    }

    #[test]
    fn a_hand_written_zone_the_published_map_disagrees_with_is_kept() {
        // The map (2018) gives Toronto's overlay 437 Winnipeg's clock only; the hand-written
        // table says Toronto. Both stay candidates: the number is called when both allow it.
        assert_eq!(published_line("1437"), ["America/Winnipeg"]);
        let mut n = crate::phone::Normalizer::new("US").unwrap();
        let phone = n.normalize("(437) 555-0100").unwrap();
        let c = candidates(&phone, &LeadPlace::default());
        let names: Vec<&str> = c.zones.iter().map(|z| z.tz).collect();
        assert!(
            names.contains(&"America/Winnipeg") && names.contains(&"America/Toronto"),
            "{names:?}"
        );
        assert!(c.ambiguous());
        // Where the map only names the same clock differently (208: Boise and Denver keep
        // Mountain time), its precise answer stands alone.
        let phone = n.normalize("(208) 201-5555").unwrap();
        let c = candidates(&phone, &LeadPlace::default());
        let names: Vec<&str> = c.zones.iter().map(|z| z.tz).collect();
        assert_eq!(names, ["America/Denver"]);
        assert!(same_clock(Tz::America__Boise, Tz::America__Denver));
        assert!(!same_clock(Tz::America__Phoenix, Tz::America__Denver));
    }

    #[test]
    fn whole_country_line_is_not_an_area_answer() {
        // The file's `1|…` line lists every NANP zone; toll-free 800 has no longer prefix, so it
        // must get no area-code zone (not 41 of them).
        assert!(published_line("1").len() > 30);
        assert!(published_line("1800").is_empty() && published_line("180").is_empty());
        assert_eq!(area(8005550100), None);
        assert_eq!(nanp_area_key(8005550100), AreaKey::None);
    }

    #[test]
    fn hand_written_table_is_the_fallback_for_codes_the_map_lacks() {
        // 659 (Alabama overlay, 2019) is not in the 2018 map at all, but is in the hand-written one.
        let text = include_str!("../data/libphonenumber_nanp_timezones.txt");
        assert!(!text.lines().any(|l| l.starts_with("1659")));
        assert_eq!(nanp_region(659), Some("US-AL"));
        assert_eq!(
            area(6595550100),
            Some((Source::AreaCodeHandWrittenFallback, vec!["America/Chicago"]))
        );
        assert_eq!(nanp_area_key(6595550100), AreaKey::Fallback(659));
        // A code in both: the published map answers.
        assert!(matches!(nanp_area_key(2125550123), AreaKey::Published(_)));
    }

    #[test]
    fn candidates_label_the_published_source() {
        let mut n = crate::phone::Normalizer::new("US").unwrap();
        let p = n.normalize("(208) 201-1234").unwrap();
        let c = candidates(&p, &LeadPlace::default());
        assert_eq!(
            c.to_json(),
            r#"[{"tz":"America/Denver","sources":["area_code_libphonenumber"]}]"#
        );
        assert!(!c.ambiguous());
        let p = n.normalize("(208) 300-1234").unwrap();
        let c = candidates(&p, &LeadPlace::default());
        assert!(c.ambiguous(), "{}", c.to_json());
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
