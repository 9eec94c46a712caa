//! Phone cells to E.164: extension split, character checks, validation with libphonenumber
//! metadata (`phonenumber` 0.3.10), and a reason for every rejection.
//!
//! Steps for one raw cell:
//! 1. split off a trailing extension (`x123`, `ext. 45`, `extension 7`, `#77`, `;ext=22`), kept;
//! 2. reject letters (`contains_letters`) and other stray symbols (`invalid_characters`);
//! 3. NANP rules that need no metadata (an area code or exchange cannot start with 0 or 1) and
//!    length limits, then `phonenumber` parsing and validation against its metadata;
//! 4. reject numbers that must not be dialled by a campaign (premium rate, pagers, voicemail access).
//!
//! Fast path: `phonenumber` validation costs ~5 µs a number in release (its regexes sit behind a
//! locked cache). For 10-digit NANP numbers the verdict is memoised per NPA-NXX (6 digits): US and
//! Canadian metadata never looks deeper than the exchange (checked over every NPA-NXX by the
//! `fast_path_agrees_with_phonenumber` test). Other NANP regions (Caribbean) look deeper and always
//! take the slow path.

use std::collections::HashMap;

use phonenumber::country::Id;
use phonenumber::metadata::DATABASE;
use phonenumber::{Mode, Type};
use serde::Serialize;

/// Why a phone cell is not a usable number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reject {
    Blank,
    ContainsLetters,
    InvalidCharacters,
    TooShort,
    TooLong,
    InvalidCountryCode,
    InvalidNumber,
    PremiumRate,
    NotDialableType,
}

impl Reject {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Blank => "blank",
            Self::ContainsLetters => "contains_letters",
            Self::InvalidCharacters => "invalid_characters",
            Self::TooShort => "too_short",
            Self::TooLong => "too_long",
            Self::InvalidCountryCode => "invalid_country_code",
            Self::InvalidNumber => "invalid_number",
            Self::PremiumRate => "premium_rate",
            Self::NotDialableType => "not_dialable_type",
        }
    }
}

/// The kind of line, from the metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    FixedLine,
    Mobile,
    FixedLineOrMobile,
    TollFree,
    SharedCost,
    Voip,
    PersonalNumber,
    Uan,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FixedLine => "fixed_line",
            Self::Mobile => "mobile",
            Self::FixedLineOrMobile => "fixed_line_or_mobile",
            Self::TollFree => "toll_free",
            Self::SharedCost => "shared_cost",
            Self::Voip => "voip",
            Self::PersonalNumber => "personal_number",
            Self::Uan => "uan",
        }
    }

    fn from_type(t: Type) -> Result<Self, Reject> {
        Ok(match t {
            Type::FixedLine => Self::FixedLine,
            Type::Mobile => Self::Mobile,
            Type::FixedLineOrMobile => Self::FixedLineOrMobile,
            Type::TollFree => Self::TollFree,
            Type::SharedCost => Self::SharedCost,
            Type::Voip => Self::Voip,
            Type::PersonalNumber => Self::PersonalNumber,
            Type::Uan => Self::Uan,
            Type::PremiumRate => return Err(Reject::PremiumRate),
            Type::Unknown => return Err(Reject::InvalidNumber),
            _ => return Err(Reject::NotDialableType),
        })
    }
}

/// A valid, dialable number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phone {
    /// `+` and digits.
    pub e164: String,
    /// The E.164 digits as an integer (DNC sets and dedupe use this).
    pub digits: u64,
    pub country_code: u16,
    /// National significant number as an integer (no leading zeros).
    pub national: u64,
    pub extension: Option<String>,
    /// ISO region, e.g. `US`, `CA`, `GB`.
    pub region: Option<&'static str>,
    pub kind: Kind,
}

#[derive(Clone, Copy)]
struct Verdict {
    result: Result<(Kind, Option<&'static str>), Reject>,
}

/// Normalises raw cells for one list (one default region). Not `Sync`: one per worker.
pub struct Normalizer {
    default: Option<Id>,
    default_code: u16,
    /// NPA*1000+NXX → 1 + index into `verdicts` for 10-digit NANP numbers (US/CA only); 0 = not
    /// known yet. Allocated on first use (2 MB).
    nanp_memo: Vec<u16>,
    verdicts: Vec<Verdict>,
    /// NPA-NXX keys known to need the slow path every time (non US/CA regions).
    nanp_no_memo: HashMap<u32, ()>,
}

/// ISO region names as `'static` strings (the set is small and fixed by the metadata).
fn static_region(id: Id) -> &'static str {
    use std::sync::{Mutex, OnceLock};
    static NAMES: OnceLock<Mutex<HashMap<Id, &'static str>>> = OnceLock::new();
    let map = NAMES.get_or_init(|| Mutex::new(HashMap::new()));
    let mut map = map.lock().expect("region names poisoned");
    map.entry(id)
        .or_insert_with(|| Box::leak(id.as_ref().to_owned().into_boxed_str()))
}

impl Normalizer {
    /// `default_region` is an ISO code such as `US`, `GB`, `DE`; numbers written without `+CC` are
    /// read in that region's national format.
    pub fn new(default_region: &str) -> anyhow::Result<Self> {
        let id: Id = default_region
            .trim()
            .to_ascii_uppercase()
            .parse()
            .map_err(|_| {
                anyhow::anyhow!(
                    "unknown region {default_region:?} (use an ISO code such as US, GB, DE)"
                )
            })?;
        let meta = DATABASE.by_id(id.as_ref()).ok_or_else(|| {
            anyhow::anyhow!("no numbering metadata for region {default_region:?}")
        })?;
        Ok(Self {
            default: Some(id),
            default_code: meta.country_code(),
            nanp_memo: Vec::new(),
            verdicts: Vec::new(),
            nanp_no_memo: HashMap::new(),
        })
    }

    /// The default region's country calling code (1 for NANP).
    pub fn country_code(&self) -> u16 {
        self.default_code
    }

    pub fn default_region(&self) -> &'static str {
        self.default.map(static_region).unwrap_or("")
    }

    /// Normalises one cell. Blank cells give `Err(Reject::Blank)`.
    pub fn normalize(&mut self, raw: &str) -> Result<Phone, Reject> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err(Reject::Blank);
        }
        let (main, extension) = split_extension(raw);
        let main = strip_international_trunk_zero(main);
        // The digits on the stack (no allocation per cell); only their count past 17 matters.
        let mut buf = [0u8; 18];
        let mut count = 0usize;
        let mut plus = false;
        for (i, c) in main.char_indices() {
            match c {
                '0'..='9' => {
                    if count < buf.len() {
                        buf[count] = c as u8;
                    }
                    count += 1;
                }
                '+' if count == 0 && !plus && main[..i].chars().all(is_separator) => plus = true,
                c if is_separator(c) => {}
                c if c.is_alphabetic() => return Err(Reject::ContainsLetters),
                _ => return Err(Reject::InvalidCharacters),
            }
        }
        if count == 0 {
            return Err(Reject::TooShort);
        }
        if count > 17 {
            return Err(Reject::TooLong);
        }
        let digits = std::str::from_utf8(&buf[..count]).expect("ASCII digits");
        let extension = extension.map(str::to_owned);

        // NANP numbers: the plan's own rules first, then the memoised fast path.
        let nanp_national = if plus {
            (digits.len() == 11 && digits.starts_with('1')).then(|| &digits[1..])
        } else if self.default_code == 1 {
            match digits.len() {
                10 => Some(&digits[..]),
                11 if digits.starts_with('1') => Some(&digits[1..]),
                n if n < 10 => return Err(Reject::TooShort),
                _ => None,
            }
        } else {
            None
        };
        if let Some(national) = nanp_national {
            let b = national.as_bytes();
            // NXX-NXX-XXXX: neither the area code nor the exchange may start with 0 or 1.
            if b[0] < b'2' || b[3] < b'2' {
                return Err(Reject::InvalidNumber);
            }
            let n: u64 = national.parse().expect("ten digits");
            return self.nanp(n, extension);
        }
        if plus && digits.starts_with('1') {
            // +1 with the wrong length.
            return Err(if digits.len() < 11 {
                Reject::TooShort
            } else {
                Reject::TooLong
            });
        }
        let text = if plus {
            format!("+{digits}")
        } else {
            digits.to_owned()
        };
        let first = slow(self.default, &text, extension.clone());
        if plus
            && first
                .as_ref()
                .is_err_and(|r| matches!(r, Reject::InvalidNumber | Reject::TooShort))
        {
            // phonenumber 0.3.10 strips a "national prefix" from some +CC numbers (+33 1…,
            // +353 1… lose their leading 1). Re-read the NSN in its country's national format.
            if let Some(retry) = retry_national(digits, extension) {
                return Ok(retry);
            }
        }
        first
    }

    fn nanp(&mut self, national: u64, extension: Option<String>) -> Result<Phone, Reject> {
        let key = (national / 10_000) as u32;
        if self.nanp_memo.is_empty() {
            self.nanp_memo = vec![0; 1_000_000];
        }
        let verdict = match self.nanp_memo[key as usize] {
            0 => {
                let text = format!("+1{national}");
                let v = verdict_of(&text);
                let memo = matches!(v.result, Ok((_, Some("US" | "CA"))) | Err(_))
                    && !self.nanp_no_memo.contains_key(&key);
                if memo && region_of_npa_is_us_or_ca(national) {
                    let i = match self.verdicts.iter().position(|x| x.result == v.result) {
                        Some(i) => i,
                        None => {
                            self.verdicts.push(v);
                            self.verdicts.len() - 1
                        }
                    };
                    self.nanp_memo[key as usize] = (i + 1) as u16;
                } else {
                    self.nanp_no_memo.insert(key, ());
                }
                v
            }
            i => self.verdicts[i as usize - 1],
        };
        let (kind, region) = verdict.result?;
        Ok(Phone {
            e164: format!("+1{national}"),
            digits: 10_000_000_000 + national,
            country_code: 1,
            national,
            extension,
            region,
            kind,
        })
    }
}

/// Whether an NPA belongs to the US or Canada (where metadata stops at NPA-NXX), so that
/// rejections (which carry no region) are only memoised there too.
fn region_of_npa_is_us_or_ca(national: u64) -> bool {
    let npa = (national / 10_000_000) as u16;
    // US toll-free and premium codes are defined at NPA level in the metadata too.
    matches!(npa, 800 | 833 | 844 | 855 | 866 | 877 | 888 | 900)
        || crate::tz::nanp_region(npa).is_some_and(|r| r.starts_with("US") || r.starts_with("CA"))
}

fn verdict_of(e164: &str) -> Verdict {
    let result = match phonenumber::parse(None, e164) {
        Ok(n) => classify(&n).map(|(kind, region, _)| (kind, region)),
        Err(e) => Err(parse_error(e)),
    };
    Verdict { result }
}

fn slow(default: Option<Id>, text: &str, extension: Option<String>) -> Result<Phone, Reject> {
    let n = phonenumber::parse(default, text).map_err(parse_error)?;
    let (kind, region, n) = classify(&n)?;
    let e164 = n.format().mode(Mode::E164).to_string();
    let digits: u64 = e164[1..].parse().map_err(|_| Reject::TooLong)?;
    Ok(Phone {
        e164,
        digits,
        country_code: n.code().value(),
        national: n.national().value(),
        extension,
        region,
        kind,
    })
}

/// `digits` = country code + NSN. Parses `national prefix + NSN` in the code's main region.
fn retry_national(digits: &str, extension: Option<String>) -> Option<Phone> {
    for cc_len in 1..=3 {
        let Ok(cc) = digits.get(..cc_len)?.parse::<u16>() else {
            continue;
        };
        let Some(metas) = DATABASE.by_code(&cc) else {
            continue;
        };
        let meta = metas
            .iter()
            .find(|m| m.is_main_country_for_code())
            .or(metas.first())?;
        let region: Id = meta.id().parse().ok()?;
        let prefix = meta.national_prefix().unwrap_or("");
        let text = format!("{prefix}{}", &digits[cc_len..]);
        return slow(Some(region), &text, extension)
            .ok()
            .filter(|p| p.country_code == cc);
    }
    None
}

fn classify(
    n: &phonenumber::PhoneNumber,
) -> Result<(Kind, Option<&'static str>, &phonenumber::PhoneNumber), Reject> {
    let code = n.code().value();
    let Some(metas) = DATABASE.by_code(&code) else {
        return Err(Reject::InvalidCountryCode);
    };
    // `is_valid` is exactly `number_type != Unknown` (both look the number's metadata up and run
    // the same type match), so the type is computed once instead of twice.
    let number_type = n.number_type(&DATABASE);
    if number_type == Type::Unknown {
        // Explain by length where the metadata allows it.
        let len = national_len(n) as u16;
        let lengths: Vec<u16> = metas
            .iter()
            .flat_map(|m| {
                let d = m.descriptors();
                [
                    d.general(),
                    d.fixed_line().unwrap_or(d.general()),
                    d.mobile().unwrap_or(d.general()),
                    d.toll_free().unwrap_or(d.general()),
                    d.premium_rate().unwrap_or(d.general()),
                    d.shared_cost().unwrap_or(d.general()),
                    d.personal_number().unwrap_or(d.general()),
                    d.voip().unwrap_or(d.general()),
                    d.uan().unwrap_or(d.general()),
                ]
                .into_iter()
                .flat_map(|x| x.possible_length().iter().copied())
                .collect::<Vec<_>>()
            })
            .collect();
        if let (Some(min), Some(max)) = (lengths.iter().min(), lengths.iter().max()) {
            if len < *min {
                return Err(Reject::TooShort);
            }
            if len > *max {
                return Err(Reject::TooLong);
            }
        }
        return Err(Reject::InvalidNumber);
    }
    let kind = Kind::from_type(number_type)?;
    Ok((kind, n.country().id().map(static_region), n))
}

fn national_len(n: &phonenumber::PhoneNumber) -> usize {
    let nat = n.national();
    nat.zeros() as usize
        + if nat.value() == 0 {
            0
        } else {
            nat.value().to_string().len()
        }
}

fn parse_error(e: phonenumber::ParseError) -> Reject {
    use phonenumber::ParseError as P;
    match e {
        P::InvalidCountryCode => Reject::InvalidCountryCode,
        P::TooLong => Reject::TooLong,
        P::NoNumber | P::TooShortAfterIdd | P::TooShortNsn => Reject::TooShort,
        #[allow(unreachable_patterns)]
        _ => Reject::InvalidNumber,
    }
}

fn is_separator(c: char) -> bool {
    matches!(
        c,
        ' ' | '-' | '.' | '(' | ')' | '/' | '\t' | '\u{a0}' | '\u{2010}'..='\u{2015}'
    )
}

/// `+44 (0)20 …`: the bracketed trunk zero some Europeans write after the country code.
fn strip_international_trunk_zero(s: &str) -> std::borrow::Cow<'_, str> {
    if s.trim_start().starts_with('+') && s.contains("(0)") {
        std::borrow::Cow::Owned(s.replacen("(0)", "", 1))
    } else {
        std::borrow::Cow::Borrowed(s)
    }
}

/// Splits `main ext` at the last extension marker followed only by 1–7 digits.
pub fn split_extension(raw: &str) -> (&str, Option<&str>) {
    // Every marker has a letter, `#`, `,` or `;`: most cells have none of them.
    if !raw
        .bytes()
        .any(|b| b.is_ascii_alphabetic() || matches!(b, b'#' | b',' | b';'))
    {
        return (raw, None);
    }
    let lower = raw.to_ascii_lowercase();
    // Longest markers first so that "extension" is not read as "ext" + "ension".
    const MARKERS: [&str; 8] = [";ext=", "extension", "ext.", "ext", "x.", "x", "#", ","];
    let mut best: Option<(usize, usize)> = None; // (marker start, digits start)
    for m in MARKERS {
        if let Some(pos) = lower.rfind(m) {
            let after = &lower[pos + m.len()..];
            let digits = after.trim_start_matches([' ', ':', '.', '\t']);
            let ok = !digits.is_empty()
                && digits.len() <= 7
                && digits.bytes().all(|b| b.is_ascii_digit())
                && lower[..pos].bytes().any(|b| b.is_ascii_digit());
            if ok && best.is_none_or(|(p, _)| pos < p) {
                best = Some((pos, raw.len() - digits.len()));
            }
        }
    }
    match best {
        Some((pos, d)) => (raw[..pos].trim_end(), Some(&raw[d..])),
        None => (raw, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions_are_split_at_the_marker() {
        assert_eq!(split_extension("555-0100 x123"), ("555-0100", Some("123")));
        assert_eq!(
            split_extension("(212) 555-0123 ext. 45"),
            ("(212) 555-0123", Some("45"))
        );
        assert_eq!(
            split_extension("212 555 0123 extension 7"),
            ("212 555 0123", Some("7"))
        );
        assert_eq!(
            split_extension("+1 415 555 2671 #77"),
            ("+1 415 555 2671", Some("77"))
        );
        assert_eq!(
            split_extension("(312)555-0100;ext=22"),
            ("(312)555-0100", Some("22"))
        );
        assert_eq!(split_extension("3125550100"), ("3125550100", None));
        assert_eq!(split_extension("ext 12"), ("ext 12", None));
    }

    #[test]
    fn fast_path_agrees_with_phonenumber() {
        // Every 17th NPA-NXX with a varying subscriber part: the memoised verdict (filled by the
        // first number of each exchange) must equal a fresh slow-path verdict for the others.
        let mut n = Normalizer::new("US").unwrap();
        let mut checked = 0;
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for key in (200_200u32..1_000_000).step_by(17) {
            if key % 1000 < 200 {
                continue;
            }
            for _ in 0..2 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let national = key as u64 * 10_000 + seed % 10_000;
                let fast = n
                    .normalize(&national.to_string())
                    .map(|p| (p.e164, p.kind, p.region));
                let slow = slow(Some(Id::US), &format!("+1{national}"), None)
                    .map(|p| (p.e164, p.kind, p.region));
                assert_eq!(fast, slow, "{national}");
                checked += 1;
            }
        }
        assert!(checked > 60_000, "{checked}");
    }
}
