//! Hours of operation: a weekly schedule in an IANA time zone with holiday (date) overrides.
//! `is_open(instant)` converts the instant to local time in the schedule's zone, so schedules
//! follow daylight-saving changes. A range whose end is not after its start runs past midnight
//! into the next day; `24:00` ends at midnight.

use std::collections::HashMap;

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, Timelike, Utc, Weekday};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// A schedule as configured (JSON from the web layer or the database).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoursConfig {
    pub id: String,
    /// IANA zone name, e.g. `America/New_York`.
    pub time_zone: String,
    pub weekly: Vec<WeeklyRange>,
    #[serde(default)]
    pub overrides: Vec<OverrideConfig>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WeeklyRange {
    /// `Mon`..`Sun` (or the full English name).
    pub day: String,
    /// `HH:MM`.
    pub start: String,
    /// `HH:MM`, or `24:00`.
    pub end: String,
}

/// One date with its own hours: closed all day (no ranges) or open only in the ranges given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OverrideConfig {
    /// `YYYY-MM-DD`, in the schedule's zone.
    pub date: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub ranges: Vec<TimeRange>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeRange {
    pub start: String,
    pub end: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HoursError {
    #[error("unknown time zone {0:?}")]
    TimeZone(String),
    #[error("unknown day {0:?}")]
    Day(String),
    #[error("bad time {0:?} (expected HH:MM, or 24:00 as an end)")]
    Time(String),
    #[error("bad date {0:?} (expected YYYY-MM-DD)")]
    Date(String),
}

/// Minutes since local midnight: start inclusive, end exclusive; `end <= start` spans midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    start: u32,
    end: u32,
}

impl Span {
    fn overnight(self) -> bool {
        self.end <= self.start
    }
}

/// A compiled schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct Hours {
    pub id: String,
    pub zone: Tz,
    weekly: [Vec<Span>; 7],
    overrides: Vec<(NaiveDate, Vec<Span>)>,
}

fn minutes(text: &str, is_end: bool) -> Result<u32, HoursError> {
    if is_end && text == "24:00" {
        return Ok(24 * 60);
    }
    let t =
        NaiveTime::parse_from_str(text, "%H:%M").map_err(|_| HoursError::Time(text.to_string()))?;
    Ok(t.hour() * 60 + t.minute())
}

fn span(start: &str, end: &str) -> Result<Span, HoursError> {
    Ok(Span {
        start: minutes(start, false)?,
        end: minutes(end, true)?,
    })
}

impl Hours {
    pub fn from_config(cfg: &HoursConfig) -> Result<Self, HoursError> {
        let zone: Tz = cfg
            .time_zone
            .parse()
            .map_err(|_| HoursError::TimeZone(cfg.time_zone.clone()))?;
        let mut weekly: [Vec<Span>; 7] = Default::default();
        for r in &cfg.weekly {
            let day: Weekday = r.day.parse().map_err(|_| HoursError::Day(r.day.clone()))?;
            weekly[day.num_days_from_monday() as usize].push(span(&r.start, &r.end)?);
        }
        let mut overrides = Vec::new();
        for o in &cfg.overrides {
            let date = NaiveDate::parse_from_str(&o.date, "%Y-%m-%d")
                .map_err(|_| HoursError::Date(o.date.clone()))?;
            let spans = o
                .ranges
                .iter()
                .map(|r| span(&r.start, &r.end))
                .collect::<Result<Vec<_>, _>>()?;
            overrides.push((date, spans));
        }
        Ok(Self {
            id: cfg.id.clone(),
            zone,
            weekly,
            overrides,
        })
    }

    fn spans_on(&self, date: NaiveDate) -> &[Span] {
        match self.overrides.iter().find(|(d, _)| *d == date) {
            Some((_, spans)) => spans,
            None => &self.weekly[date.weekday().num_days_from_monday() as usize],
        }
    }

    /// Is the schedule open at this instant?
    pub fn is_open(&self, at: DateTime<Utc>) -> bool {
        let local = at.with_timezone(&self.zone).naive_local();
        let date = local.date();
        let minute = local.hour() * 60 + local.minute();
        let today = self.spans_on(date).iter().any(|s| {
            if s.overnight() {
                minute >= s.start
            } else {
                minute >= s.start && minute < s.end
            }
        });
        let spill = date.pred_opt().is_some_and(|y| {
            self.spans_on(y)
                .iter()
                .any(|s| s.overnight() && minute < s.end)
        });
        today || spill
    }

    /// Is the schedule open at this instant (epoch milliseconds)?
    pub fn is_open_ms(&self, at_ms: i64) -> bool {
        DateTime::from_timestamp_millis(at_ms).is_some_and(|t| self.is_open(t))
    }

    /// The next instant at or after `from` when the open/closed state differs from now, searched
    /// minute by minute up to `horizon` (for "we open at..." announcements and callback timing).
    pub fn next_change(&self, from: DateTime<Utc>, horizon: Duration) -> Option<DateTime<Utc>> {
        let now_open = self.is_open(from);
        let start = from.with_second(0)?.with_nanosecond(0)?;
        let steps = horizon.num_minutes();
        (1..=steps)
            .map(|m| start + Duration::minutes(m))
            .find(|t| self.is_open(*t) != now_open)
    }
}

/// The schedules a driver knows, and which schedule each queue uses: answers the interpreter's
/// `CheckHours { hours_id, queue }` effect (an explicit id wins; otherwise the queue's hours).
#[derive(Debug, Clone, Default)]
pub struct HoursBook {
    hours: HashMap<String, Hours>,
    queue_hours: HashMap<String, String>,
}

impl HoursBook {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert(&mut self, hours: Hours) {
        self.hours.insert(hours.id.clone(), hours);
    }

    pub fn set_queue_hours(&mut self, queue: &str, hours_id: &str) {
        self.queue_hours
            .insert(queue.to_string(), hours_id.to_string());
    }

    /// `Some(open)`, or `None` when no schedule applies (the flow then takes its error branch).
    pub fn check(&self, hours_id: Option<&str>, queue: Option<&str>, now_ms: i64) -> Option<bool> {
        let id = match hours_id {
            Some(id) => id,
            None => self.queue_hours.get(queue?)?.as_str(),
        };
        Some(self.hours.get(id)?.is_open_ms(now_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_configuration_with_the_value_named() {
        let mut cfg = HoursConfig {
            id: "h".into(),
            time_zone: "Mars/Olympus".into(),
            weekly: vec![],
            overrides: vec![],
        };
        assert_eq!(
            Hours::from_config(&cfg),
            Err(HoursError::TimeZone("Mars/Olympus".into()))
        );
        cfg.time_zone = "UTC".into();
        cfg.weekly.push(WeeklyRange {
            day: "Funday".into(),
            start: "09:00".into(),
            end: "17:00".into(),
        });
        assert_eq!(
            Hours::from_config(&cfg),
            Err(HoursError::Day("Funday".into()))
        );
        cfg.weekly[0] = WeeklyRange {
            day: "Mon".into(),
            start: "9am".into(),
            end: "17:00".into(),
        };
        assert_eq!(
            Hours::from_config(&cfg),
            Err(HoursError::Time("9am".into()))
        );
    }
}
