//! Hours of operation in America/New_York across both 2026 DST changes (8 March, 1 November),
//! with holiday overrides and an overnight range.

use chrono::{DateTime, Duration, TimeZone, Utc};
use inbound::hours::{Hours, HoursConfig, OverrideConfig, TimeRange, WeeklyRange};

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
}

fn range(day: &str, start: &str, end: &str) -> WeeklyRange {
    WeeklyRange {
        day: day.into(),
        start: start.into(),
        end: end.into(),
    }
}

fn new_york() -> Hours {
    let mut weekly: Vec<WeeklyRange> = ["Mon", "Tue", "Wed", "Thu", "Fri"]
        .iter()
        .map(|d| range(d, "09:00", "17:00"))
        .collect();
    weekly.push(range("Sat", "22:00", "02:00"));
    weekly.push(range("Sun", "01:00", "03:30"));
    Hours::from_config(&HoursConfig {
        id: "ny".into(),
        time_zone: "America/New_York".into(),
        weekly,
        overrides: vec![
            OverrideConfig {
                date: "2026-12-25".into(),
                name: "Christmas".into(),
                ranges: vec![],
            },
            OverrideConfig {
                date: "2026-12-24".into(),
                name: "Christmas Eve".into(),
                ranges: vec![TimeRange {
                    start: "09:00".into(),
                    end: "12:00".into(),
                }],
            },
        ],
    })
    .unwrap()
}

#[test]
fn opening_follows_local_time_across_spring_forward() {
    let h = new_york();
    // Friday 6 March, EST (UTC-5): opens at 14:00 UTC.
    assert!(!h.is_open(utc(2026, 3, 6, 13, 59)));
    assert!(h.is_open(utc(2026, 3, 6, 14, 0)));
    assert!(!h.is_open(utc(2026, 3, 6, 13, 30)));
    // Monday 9 March, EDT (UTC-4): the same 13:30 UTC is now 09:30 local, open.
    assert!(h.is_open(utc(2026, 3, 9, 13, 30)));
    assert!(!h.is_open(utc(2026, 3, 9, 12, 59)));
    assert!(h.is_open(utc(2026, 3, 9, 20, 59)));
    assert!(!h.is_open(utc(2026, 3, 9, 21, 0)));
}

#[test]
fn a_range_spanning_the_skipped_hour() {
    let h = new_york();
    // Sunday 8 March: 01:59 EST is 06:59 UTC; one minute later it is 03:00 EDT.
    assert!(h.is_open(utc(2026, 3, 8, 6, 59)));
    assert!(h.is_open(utc(2026, 3, 8, 7, 0)));
    assert!(h.is_open(utc(2026, 3, 8, 7, 29)));
    assert!(!h.is_open(utc(2026, 3, 8, 7, 30)), "03:30 EDT closes");
}

#[test]
fn the_repeated_hour_in_november_counts_twice() {
    let h = new_york();
    // Sunday 1 November: the Saturday 22:00-02:00 overnight range and Sunday 01:00-03:30.
    // 01:30 EDT = 05:30 UTC and 01:30 EST = 06:30 UTC are both open; 03:30 EST = 08:30 UTC closes.
    assert!(h.is_open(utc(2026, 11, 1, 5, 30)));
    assert!(h.is_open(utc(2026, 11, 1, 6, 30)));
    assert!(h.is_open(utc(2026, 11, 1, 8, 29)));
    assert!(!h.is_open(utc(2026, 11, 1, 8, 30)));
    // The following Monday is on EST: 09:00 local is 14:00 UTC.
    assert!(!h.is_open(utc(2026, 11, 2, 13, 30)));
    assert!(h.is_open(utc(2026, 11, 2, 14, 0)));
}

#[test]
fn overnight_range_spills_into_the_next_day() {
    let h = new_york();
    // Saturday 14 March 23:00 EDT = Sunday 03:00 UTC; Sunday 00:30 EDT = 04:30 UTC (from Saturday's range).
    assert!(h.is_open(utc(2026, 3, 15, 3, 0)));
    assert!(h.is_open(utc(2026, 3, 15, 4, 30)));
    // Saturday 21:59 EDT is before the range.
    assert!(!h.is_open(utc(2026, 3, 15, 1, 59)));
}

#[test]
fn holiday_overrides_replace_the_weekly_hours() {
    let h = new_york();
    // Friday 18 December 10:00 EST: open. Friday 25 December: closed all day.
    assert!(h.is_open(utc(2026, 12, 18, 15, 0)));
    assert!(!h.is_open(utc(2026, 12, 25, 15, 0)));
    // Thursday 24 December: open 09:00-12:00 only.
    assert!(h.is_open(utc(2026, 12, 24, 16, 0)));
    assert!(!h.is_open(utc(2026, 12, 24, 18, 0)));
    assert!(h.is_open_ms(utc(2026, 12, 24, 14, 0).timestamp_millis()));
}

#[test]
fn next_change_finds_closing_time() {
    let h = new_york();
    let from = utc(2026, 3, 6, 21, 30);
    assert_eq!(
        h.next_change(from, Duration::hours(2)),
        Some(utc(2026, 3, 6, 22, 0))
    );
    // Closed from Friday evening: the next change is Saturday 22:00 EST = Sunday 03:00 UTC.
    assert_eq!(
        h.next_change(utc(2026, 3, 6, 22, 0), Duration::days(2)),
        Some(utc(2026, 3, 8, 3, 0))
    );
}

#[test]
fn the_hours_book_answers_by_id_or_by_queue() {
    use inbound::hours::HoursBook;
    let mut book = HoursBook::new();
    book.insert(new_york());
    book.set_queue_hours("sales", "ny");
    let monday_morning = utc(2026, 3, 9, 13, 30).timestamp_millis();
    let monday_night = utc(2026, 3, 10, 2, 0).timestamp_millis();
    assert_eq!(book.check(None, Some("sales"), monday_morning), Some(true));
    assert_eq!(book.check(None, Some("sales"), monday_night), Some(false));
    assert_eq!(book.check(Some("ny"), None, monday_morning), Some(true));
    assert_eq!(book.check(None, Some("support"), monday_morning), None);
    assert_eq!(
        book.check(Some("missing"), Some("sales"), monday_morning),
        None
    );
}
