//! Compliance at dial time, as one pure function: [`check`] takes the facts about a lead, the
//! number, the campaign, the DNC data and the campaign's counters at `now`, and says
//! [`Decision::Allowed`] (with the reason written on the attempt) or [`Decision::Blocked`] (with
//! the reason, whether it is permanent, and when the lead may be tried again).
//!
//! Rules (see `shared/reference/outbound-dialer.md` §3): the calling window in the callee's local
//! time, in every candidate zone (the intersection; no zone → no call), DST-correct through
//! chrono-tz; the internal DNC list as of now and the national registries (a copy older than
//! 31 days blocks telemarketing); abandonment under the cap over the campaign to date, the
//! current 30-day period and an optional rolling window (when over, only calls with an agent
//! already reserved are placed); prior express written consent for agentless telemarketing;
//! attempts per lead and per number per day; no redial after an abandoned call within the
//! configured window; retired (disconnected) numbers; the trunk's concurrent-call limit.

use std::fmt;

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use crate::campaign::{CampaignConfig, DialMode, LocalWindow, Purpose};

/// One 30-day abandonment period (the US rule counts per campaign per 30 days).
pub const PERIOD_MS: i64 = 30 * 24 * 3600 * 1000;
const DAY_MS: i64 = 24 * 3600 * 1000;

/// What the check needs to know about the lead.
#[derive(Debug, Clone, Default)]
pub struct LeadFacts {
    /// Candidate time zones of the number (from the importer). Empty: unknown → no call.
    pub zones: Vec<Tz>,
    /// ISO subdivision (`US-TX`) if known, for per-region windows.
    pub subdivision: Option<String>,
    /// ISO country (`US`) if known.
    pub country: Option<String>,
    /// The lead has recorded prior express written consent.
    pub written_consent: bool,
    /// Attempts made so far in this campaign.
    pub attempts: u32,
}

/// What the check needs to know about the number.
#[derive(Debug, Clone, Default)]
pub struct NumberFacts {
    pub e164: String,
    /// Found on a DNC source (e.g. `internal`, `registry:US`).
    pub dnc: Option<String>,
    /// Retired as disconnected (reason).
    pub retired: Option<String>,
    /// Attempts to this number in the last 24 hours (any campaign).
    pub attempts_last_24h: u32,
    /// When a call to it was last abandoned.
    pub last_abandoned_at: Option<i64>,
}

/// A loaded national registry copy.
#[derive(Debug, Clone)]
pub struct RegistryFact {
    pub name: String,
    pub downloaded_at: i64,
}

/// DNC data beyond the number's own hit.
#[derive(Debug, Clone, Default)]
pub struct DncFacts {
    pub registries: Vec<RegistryFact>,
}

/// Live answers and abandoned calls over some span.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct AbandonCount {
    pub live: u64,
    pub abandoned: u64,
}

impl AbandonCount {
    pub fn rate(&self) -> f64 {
        if self.live == 0 {
            0.0
        } else {
            self.abandoned as f64 / self.live as f64
        }
    }
}

/// The campaign's running figures.
#[derive(Debug, Clone, Default)]
pub struct Counters {
    /// When the campaign first started (the 30-day periods count from here).
    pub campaign_started_at: i64,
    pub to_date: AbandonCount,
    /// The 30-day period `now` falls in.
    pub period: AbandonCount,
    /// The optional rolling window.
    pub rolling: Option<AbandonCount>,
    /// Calls up on the trunk now.
    pub trunk_in_flight: u32,
    /// An agent is reserved for this call (preview, progressive with a free agent): the call
    /// cannot be abandoned, so the abandonment cap does not hold it back.
    pub agent_reserved: bool,
}

/// Why a dial was blocked.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum Block {
    NoZone,
    OutsideWindow {
        zone: String,
        local: String,
        window: String,
    },
    Dnc {
        source: String,
    },
    RegistryStale {
        name: String,
        age_days: i64,
    },
    NoRegistry,
    AbandonCap {
        span: String,
        rate: f64,
        cap: f64,
    },
    NoConsent,
    MaxAttemptsLead {
        attempts: u32,
    },
    MaxAttemptsNumberDay {
        attempts: u32,
    },
    RecentAbandon {
        until: i64,
    },
    Retired {
        reason: String,
    },
    TrunkFull {
        in_flight: u32,
    },
}

impl Block {
    /// A short stable code (`window`, `dnc`, …) for reports and the API.
    pub fn code(&self) -> &'static str {
        match self {
            Block::NoZone => "no_zone",
            Block::OutsideWindow { .. } => "window",
            Block::Dnc { .. } => "dnc",
            Block::RegistryStale { .. } => "registry_stale",
            Block::NoRegistry => "no_registry",
            Block::AbandonCap { .. } => "abandon_cap",
            Block::NoConsent => "no_consent",
            Block::MaxAttemptsLead { .. } => "max_attempts",
            Block::MaxAttemptsNumberDay { .. } => "max_attempts_number_day",
            Block::RecentAbandon { .. } => "recent_abandon",
            Block::Retired { .. } => "retired",
            Block::TrunkFull { .. } => "trunk_full",
        }
    }

    /// This number will never be dialled by this campaign (try another number or finish).
    pub fn permanent_for_number(&self) -> bool {
        matches!(
            self,
            Block::Dnc { .. } | Block::Retired { .. } | Block::NoZone
        )
    }

    /// This lead will never be dialled by this campaign.
    pub fn permanent_for_lead(&self) -> bool {
        matches!(self, Block::NoConsent | Block::MaxAttemptsLead { .. })
    }
}

impl fmt::Display for Block {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Block::NoZone => write!(f, "no time zone is known for the number: no call"),
            Block::OutsideWindow {
                zone,
                local,
                window,
            } => {
                write!(
                    f,
                    "outside the calling window {window} in {zone} (local time {local})"
                )
            }
            Block::Dnc { source } => write!(f, "on the do-not-call list ({source})"),
            Block::RegistryStale { name, age_days } => {
                write!(
                    f,
                    "DNC registry {name} is {age_days} days old (over the limit): telemarketing blocked"
                )
            }
            Block::NoRegistry => write!(f, "no DNC registry loaded: telemarketing blocked"),
            Block::AbandonCap { span, rate, cap } => write!(
                f,
                "abandonment {:.2}% over {span} is at or above the cap {:.2}%: only calls with a reserved agent",
                rate * 100.0,
                cap * 100.0
            ),
            Block::NoConsent => write!(
                f,
                "agentless telemarketing needs prior express written consent"
            ),
            Block::MaxAttemptsLead { attempts } => {
                write!(f, "lead reached max attempts ({attempts})")
            }
            Block::MaxAttemptsNumberDay { attempts } => {
                write!(
                    f,
                    "number reached max attempts per day ({attempts} in 24 h)"
                )
            }
            Block::RecentAbandon { until } => {
                write!(
                    f,
                    "an abandoned call to this number: no redial until {}",
                    foundation::clock::rfc3339_ms(*until)
                )
            }
            Block::Retired { reason } => write!(f, "number retired: {reason}"),
            Block::TrunkFull { in_flight } => {
                write!(f, "trunk at its concurrent-call limit ({in_flight})")
            }
        }
    }
}

/// The verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    Allowed {
        reason: String,
    },
    /// `retry_at`: the earliest time the same check may pass (window opening, redial window
    /// end); `None` when only a change of facts can unblock it.
    Blocked {
        block: Block,
        reason: String,
        retry_at: Option<i64>,
    },
}

impl Decision {
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allowed { .. })
    }

    fn blocked(block: Block, retry_at: Option<i64>) -> Self {
        Decision::Blocked {
            reason: block.to_string(),
            block,
            retry_at,
        }
    }
}

/// The window for this lead: the most specific region override, else the campaign's.
pub fn window_for<'a>(campaign: &'a CampaignConfig, lead: &LeadFacts) -> &'a LocalWindow {
    let c = &campaign.compliance;
    lead.subdivision
        .as_deref()
        .and_then(|s| c.region_windows.get(s))
        .or_else(|| {
            lead.country
                .as_deref()
                .and_then(|s| c.region_windows.get(s))
        })
        .unwrap_or(&c.window)
}

fn open_in(window: &LocalWindow, tz: Tz, now: DateTime<Utc>) -> bool {
    let local = now.with_timezone(&tz);
    let t = local.time();
    (window.days.is_empty() || window.days.contains(&local.weekday()))
        && t >= window.start
        && t < window.end
}

fn window_text(w: &LocalWindow) -> String {
    let mut s = format!("{}–{}", w.start.format("%H:%M"), w.end.format("%H:%M"));
    if !w.days.is_empty() {
        s.push_str(&format!(" {:?}", w.days));
    }
    s
}

/// The first instant ≥ `now` (within 8 days) when the window is open in every zone.
pub fn next_open(window: &LocalWindow, zones: &[Tz], now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    if zones.iter().all(|tz| open_in(window, *tz, now)) {
        return Some(now);
    }
    // Every opening of the intersection is the opening of the window in one of the zones.
    let mut candidates = Vec::new();
    for tz in zones {
        let today: NaiveDate = now.with_timezone(tz).date_naive();
        for d in 0..9 {
            let day = today + Duration::days(d);
            let start = day.and_time(window.start);
            // DST gap: the first valid instant at or after the local start.
            let mut instant = tz.from_local_datetime(&start).earliest();
            let mut probe = start;
            while instant.is_none() {
                probe += Duration::minutes(15);
                instant = tz.from_local_datetime(&probe).earliest();
            }
            let at = instant.expect("found").with_timezone(&Utc);
            if at > now {
                candidates.push(at);
            }
        }
    }
    candidates.sort();
    candidates
        .into_iter()
        .find(|at| zones.iter().all(|tz| open_in(window, *tz, *at)))
}

/// The dial-time decision.
pub fn check(
    lead: &LeadFacts,
    number: &NumberFacts,
    campaign: &CampaignConfig,
    dnc: &DncFacts,
    counters: &Counters,
    now_ms: i64,
) -> Decision {
    let c = &campaign.compliance;
    let now = foundation::clock::from_ms(now_ms);
    let telemarketing = campaign.purpose == Purpose::Telemarketing;

    if lead.attempts >= c.max_attempts_per_lead {
        return Decision::blocked(
            Block::MaxAttemptsLead {
                attempts: lead.attempts,
            },
            None,
        );
    }
    if campaign.mode == DialMode::Agentless && telemarketing && !lead.written_consent {
        return Decision::blocked(Block::NoConsent, None);
    }
    if let Some(source) = &number.dnc {
        return Decision::blocked(
            Block::Dnc {
                source: source.clone(),
            },
            None,
        );
    }
    if let Some(reason) = &number.retired {
        return Decision::blocked(
            Block::Retired {
                reason: reason.clone(),
            },
            None,
        );
    }
    if telemarketing {
        if c.require_registry && dnc.registries.is_empty() {
            return Decision::blocked(Block::NoRegistry, None);
        }
        let max_age = c.registry_max_age_days as i64 * DAY_MS;
        if let Some(r) = dnc
            .registries
            .iter()
            .find(|r| now_ms - r.downloaded_at > max_age)
        {
            return Decision::blocked(
                Block::RegistryStale {
                    name: r.name.clone(),
                    age_days: (now_ms - r.downloaded_at) / DAY_MS,
                },
                None,
            );
        }
    }
    if lead.zones.is_empty() {
        return Decision::blocked(Block::NoZone, None);
    }
    let window = window_for(campaign, lead);
    if let Some(tz) = lead.zones.iter().find(|tz| !open_in(window, **tz, now)) {
        let retry_at = next_open(window, &lead.zones, now).map(|t| t.timestamp_millis());
        return Decision::blocked(
            Block::OutsideWindow {
                zone: tz.name().to_owned(),
                local: now.with_timezone(tz).format("%a %H:%M %Z").to_string(),
                window: window_text(window),
            },
            retry_at,
        );
    }
    if let Some(at) = number.last_abandoned_at {
        let until = at + c.no_redial_after_abandon_h as i64 * 3_600_000;
        if now_ms < until {
            return Decision::blocked(Block::RecentAbandon { until }, Some(until));
        }
    }
    if number.attempts_last_24h >= c.max_attempts_per_number_per_day {
        return Decision::blocked(
            Block::MaxAttemptsNumberDay {
                attempts: number.attempts_last_24h,
            },
            Some(now_ms + 3_600_000),
        );
    }
    if counters.trunk_in_flight >= campaign.trunk.max_concurrent {
        return Decision::blocked(
            Block::TrunkFull {
                in_flight: counters.trunk_in_flight,
            },
            Some(now_ms + 1000),
        );
    }
    let can_abandon = !counters.agent_reserved && campaign.mode != DialMode::Agentless;
    if can_abandon {
        let period_no = (now_ms - counters.campaign_started_at).max(0) / PERIOD_MS + 1;
        let mut spans = vec![
            ("the campaign to date".to_owned(), counters.to_date),
            (format!("30-day period {period_no}"), counters.period),
        ];
        if let (Some(r), Some(h)) = (counters.rolling, c.rolling_window_h) {
            spans.push((format!("the last {h} h"), r));
        }
        for (span, count) in spans {
            if count.live > 0 && count.rate() >= c.abandon_cap {
                return Decision::blocked(
                    Block::AbandonCap {
                        span,
                        rate: count.rate(),
                        cap: c.abandon_cap,
                    },
                    Some(now_ms + 1000),
                );
            }
        }
    }
    let zones: Vec<String> = lead
        .zones
        .iter()
        .map(|tz| format!("{} {}", tz.name(), now.with_timezone(tz).format("%H:%M")))
        .collect();
    let mut reason = format!(
        "window {} open in {}; not on DNC ({} registr{} current); attempt {} of {}",
        window_text(window),
        zones.join(", "),
        dnc.registries.len(),
        if dnc.registries.len() == 1 {
            "y"
        } else {
            "ies"
        },
        lead.attempts + 1,
        c.max_attempts_per_lead
    );
    if can_abandon {
        reason.push_str(&format!(
            "; abandonment {:.2}% to date, {:.2}% this period",
            counters.to_date.rate() * 100.0,
            counters.period.rate() * 100.0
        ));
    } else if counters.agent_reserved {
        reason.push_str("; agent reserved");
    }
    if campaign.mode == DialMode::Agentless && telemarketing {
        reason.push_str("; prior express written consent on file");
    }
    Decision::Allowed { reason }
}

/// Parses the importer's `tz_candidates` JSON (`[{"tz":"America/Chicago",…}]`). Any unreadable
/// document or unknown zone name gives no zones at all (a zone that cannot be checked must not
/// widen the window), so the number is not called.
pub fn parse_zones(json: &str) -> Vec<Tz> {
    #[derive(serde::Deserialize)]
    struct C {
        tz: String,
    }
    serde_json::from_str::<Vec<C>>(json)
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.tz.parse::<Tz>().ok())
        .collect::<Option<Vec<_>>>()
        .unwrap_or_default()
}
