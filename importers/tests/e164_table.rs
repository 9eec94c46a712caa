//! A hand-written table of raw phone cells with the E.164 result or the rejection reason expected
//! from the numbering plans (NANP, UK Ofcom, Germany BNetzA, France ARCEP, Australia ACMA, …),
//! written by hand from the plans, not produced by the code under test.

use importers::phone::Normalizer;

/// (default region, raw cell, expected E.164 or `!reason`, expected extension)
const TABLE: &[(&str, &str, &str, Option<&str>)] = &[
    // NANP: 10 digits NXX-NXX-XXXX, trunk prefix 1, IDD 011.
    ("US", "(312) 555-0100", "+13125550100", None),
    ("US", "312.555.0100", "+13125550100", None),
    ("US", "312-555-0100", "+13125550100", None),
    ("US", "3125550100", "+13125550100", None),
    ("US", "1-312-555-0100", "+13125550100", None),
    ("US", "1 (312) 555 0100", "+13125550100", None),
    ("US", "+1 312 555 0100", "+13125550100", None),
    ("US", "  +1-312-555-0100  ", "+13125550100", None),
    ("US", "312/555-0100", "+13125550100", None),
    ("US", "(212) 555-0123 ext. 45", "+12125550123", Some("45")),
    ("US", "212-555-0123 x 9", "+12125550123", Some("9")),
    ("US", "212 555 0123 extension 7", "+12125550123", Some("7")),
    ("US", "+1 (415) 555-2671 #77", "+14155552671", Some("77")),
    ("US", "(312)555-0100;ext=22", "+13125550100", Some("22")),
    ("US", "555-0100 x123", "!too_short", None), // 7-digit local number: no area code
    ("US", "555-0100", "!too_short", None),
    ("US", "(312) 555-010", "!too_short", None), // 9 digits
    ("US", "911", "!too_short", None),
    ("US", "312555010012", "!too_long", None), // 12 digits, not starting with 1
    ("US", "+1 312 555 01000", "!too_long", None),
    ("US", "123-456-7890", "!invalid_number", None), // area code cannot start with 1
    ("US", "023-456-7890", "!invalid_number", None), // … nor with 0
    ("US", "212-155-0100", "!invalid_number", None), // exchange cannot start with 1
    ("US", "0000000000", "!invalid_number", None),
    ("US", "1 900 555 0199", "!premium_rate", None), // NPA 900: premium-rate services
    ("US", "+1 900 222 1234", "!premium_rate", None),
    ("US", "800-555-0199", "+18005550199", None), // toll-free is dialable
    ("US", "(888) 222-3333", "+18882223333", None),
    ("US", "+1 613 555 0123", "+16135550123", None), // Ottawa, Canada
    ("US", "604-555-0199", "+16045550199", None),    // Vancouver, Canada
    ("US", "call me", "!contains_letters", None),
    ("US", "N/A", "!contains_letters", None),
    ("US", "312-555-01OO", "!contains_letters", None), // letter O typed for zero
    ("US", "212 555 0123 ext", "!contains_letters", None), // marker without digits
    ("US", "312*555*0100", "!invalid_characters", None),
    ("US", "", "!blank", None),
    ("US", "   ", "!blank", None),
    ("US", "011 44 20 7946 0958", "+442079460958", None), // US IDD then UK
    ("US", "+44 20 7946 0958", "+442079460958", None),
    ("US", "+44 (0)20 7946 0958", "+442079460958", None), // bracketed UK trunk zero
    ("US", "+999 123 456 789", "!invalid_country_code", None), // +999 is unassigned
    // UK: trunk prefix 0, IDD 00, 10-digit NSNs.
    ("GB", "020 7946 0958", "+442079460958", None), // London
    ("GB", "0161 496 0000", "+441614960000", None), // Manchester
    ("GB", "07400 123456", "+447400123456", None),  // mobile (074xx)
    ("GB", "09098 790000", "!premium_rate", None),  // 09 = premium rate
    ("GB", "020 7946", "!too_short", None),
    ("GB", "001 312 555 0100", "+13125550100", None), // UK IDD then NANP
    // France: 0 + 9 digits; 06/07 mobile; 089x premium.
    ("FR", "01 42 68 53 00", "+33142685300", None), // Paris
    ("FR", "06 12 34 56 78", "+33612345678", None),
    ("US", "+33 1 42 68 53 00", "+33142685300", None),
    ("FR", "08 92 70 12 34", "!premium_rate", None),
    // Germany: trunk 0; Berlin 030; mobile 015x/016x/017x.
    ("DE", "030 12345678", "+493012345678", None),
    ("DE", "0151 12345678", "+4915112345678", None),
    ("US", "+49 30 12345678", "+493012345678", None),
    // Elsewhere.
    ("US", "+61 2 9876 5432", "+61298765432", None), // Sydney
    ("AU", "0412 345 678", "+61412345678", None),    // AU mobile
    ("US", "+81 3-1234-5678", "+81312345678", None), // Tokyo
    ("US", "+353 1 234 5678", "+35312345678", None), // Dublin
    ("US", "+52 55 1234 5678", "+525512345678", None), // Mexico City
];

#[test]
fn hand_written_table_of_raw_numbers() {
    assert!(TABLE.len() >= 40);
    let mut failures = Vec::new();
    for &(region, raw, expected, ext) in TABLE {
        let mut n = Normalizer::new(region).unwrap();
        let got = match n.normalize(raw) {
            Ok(p) => {
                if p.extension.as_deref() != ext {
                    failures.push(format!(
                        "{region} {raw:?}: extension {:?}, expected {ext:?}",
                        p.extension
                    ));
                }
                assert_eq!(p.digits.to_string(), p.e164[1..], "digits and e164 agree");
                p.e164
            }
            Err(r) => format!("!{}", r.as_str()),
        };
        if got != expected {
            failures.push(format!("{region} {raw:?}: got {got}, expected {expected}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} rows differ:\n{}",
        failures.len(),
        TABLE.len(),
        failures.join("\n")
    );
}

#[test]
fn regions_and_kinds() {
    let mut n = Normalizer::new("US").unwrap();
    let ca = n.normalize("613-555-0123").unwrap();
    assert_eq!(ca.region, Some("CA"));
    let us = n.normalize("312-555-0100").unwrap();
    assert_eq!(
        (us.region, us.kind.as_str()),
        (Some("US"), "fixed_line_or_mobile")
    );
    assert_eq!(
        n.normalize("800-555-0199").unwrap().kind.as_str(),
        "toll_free"
    );
    let gb = Normalizer::new("GB")
        .unwrap()
        .normalize("07400 123456")
        .unwrap();
    assert_eq!(
        (gb.region, gb.kind.as_str(), gb.country_code),
        (Some("GB"), "mobile", 44)
    );
    assert!(Normalizer::new("XX").is_err());
}
