//! Dial-time compliance as a pure function, on a virtual clock: the calling window in one and
//! several time zones (intersection), DST changes (US and UK on different dates), no zone, DNC,
//! registry age, abandonment cap, consent, attempt limits, redial after abandon; and the campaign
//! configuration and lifecycle rules.

use chrono::{DateTime, Duration, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use dialer::campaign::{
    self, Action, AmdPolicy, CampaignConfig, CampaignState, DialMode, ListWeight, LocalWindow,
    Purpose, SafeHarbor, TrunkConfig,
};
use dialer::compliance::{
    AbandonCount, Block, Counters, Decision, DncFacts, LeadFacts, NumberFacts, RegistryFact, check,
    next_open,
};

pub fn config(mode: DialMode, purpose: Purpose) -> CampaignConfig {
    CampaignConfig {
        lists: vec![ListWeight {
            list_id: 1,
            weight: 1,
        }],
        mode,
        purpose,
        lines_per_agent: 1.0,
        caller_id: "15550001000".into(),
        queue: "sales".into(),
        trunk: TrunkConfig {
            uri: "sip:127.0.0.1:5080".into(),
            cps: 5,
            max_concurrent: 10,
        },
        retry: Default::default(),
        compliance: Default::default(),
        amd: AmdPolicy::HangUp,
        voicemail_prompt: None,
        agentless_prompt: Some("msg.wav".into()),
        agentless_flow: None,
        safe_harbor: SafeHarbor {
            seller: "Acme".into(),
            callback_number: "+15550001000".into(),
            opt_out_key: '9',
            prompt: "sh.wav".into(),
        },
        filters: vec![],
        dispositions: Default::default(),
        preview_auto_dial_s: None,
    }
}

fn utc(s: &str) -> i64 {
    DateTime::parse_from_rfc3339(s).unwrap().timestamp_millis()
}

fn lead(zones: &[Tz]) -> LeadFacts {
    LeadFacts {
        zones: zones.to_vec(),
        country: Some("US".into()),
        ..Default::default()
    }
}

fn number() -> NumberFacts {
    NumberFacts {
        e164: "+12125550100".into(),
        ..Default::default()
    }
}

fn decide(l: &LeadFacts, n: &NumberFacts, c: &CampaignConfig, now: i64) -> Decision {
    check(l, n, c, &DncFacts::default(), &Counters::default(), now)
}

fn code(d: &Decision) -> &'static str {
    match d {
        Decision::Allowed { .. } => "allowed",
        Decision::Blocked { block, .. } => block.code(),
    }
}

fn retry_at(d: &Decision) -> Option<i64> {
    match d {
        Decision::Blocked { retry_at, .. } => *retry_at,
        _ => None,
    }
}

const NY: Tz = chrono_tz::America::New_York;
const LA: Tz = chrono_tz::America::Los_Angeles;
const CHI: Tz = chrono_tz::America::Chicago;
const LON: Tz = chrono_tz::Europe::London;

#[test]
fn window_table_across_zones_and_dst() {
    let tm = config(DialMode::Predictive, Purpose::Telemarketing);
    // (zones, now UTC, expected, expected retry_at)
    let table: &[(&[Tz], &str, &str, Option<&str>)] = &[
        // US spring forward 2026-03-08 07:00 UTC: 12:30 UTC is 07:30 EST the day before, 08:30 EDT after.
        (
            &[NY],
            "2026-03-07T12:30:00Z",
            "window",
            Some("2026-03-07T13:00:00Z"),
        ),
        (&[NY], "2026-03-08T12:30:00Z", "allowed", None),
        // 21:00 local is closed (end exclusive); 20:59 open.
        (&[NY], "2026-03-09T00:59:00Z", "allowed", None),
        (
            &[NY],
            "2026-03-09T01:00:00Z",
            "window",
            Some("2026-03-09T12:00:00Z"),
        ),
        // US fall back 2026-11-01 07:00 UTC (Chicago: 13:30 UTC is 08:30 CDT before, 07:30 CST after).
        (&[CHI], "2026-10-31T13:30:00Z", "allowed", None),
        (
            &[CHI],
            "2026-11-01T13:30:00Z",
            "window",
            Some("2026-11-01T14:00:00Z"),
        ),
        // Two candidate zones: only the intersection (LA opens at 15:00 UTC in summer, NY closes at 01:00 UTC).
        (
            &[NY, LA],
            "2026-06-01T14:30:00Z",
            "window",
            Some("2026-06-01T15:00:00Z"),
        ),
        (&[NY, LA], "2026-06-01T15:30:00Z", "allowed", None),
        (&[NY, LA], "2026-06-02T00:30:00Z", "allowed", None),
        (
            &[NY, LA],
            "2026-06-02T01:30:00Z",
            "window",
            Some("2026-06-02T15:00:00Z"),
        ),
        // No zone: no call, ever.
        (&[], "2026-06-01T16:00:00Z", "no_zone", None),
    ];
    for (zones, now, want, want_retry) in table {
        let d = decide(&lead(zones), &number(), &tm, utc(now));
        assert_eq!(code(&d), *want, "{zones:?} at {now}: {d:?}");
        assert_eq!(
            retry_at(&d),
            want_retry.map(utc),
            "{zones:?} at {now}: {d:?}"
        );
        // A blocked lead retried at its retry time is allowed (the hopper's next_at).
        if let Some(at) = retry_at(&d) {
            assert!(
                decide(&lead(zones), &number(), &tm, at).is_allowed(),
                "{zones:?} at retry {at}"
            );
        }
    }
}

/// Sweeps a virtual clock over three weeks in 15-minute steps through the US (Mar 8) and UK
/// (Mar 29) DST changes: every allowed instant is inside 08:00–21:00 local in every candidate zone,
/// and the number of open slots per UTC day is exactly the intersection's length.
#[test]
fn virtual_clock_sweep_never_outside_the_window() {
    let tm = config(DialMode::Predictive, Purpose::Telemarketing);
    let clock =
        foundation::clock::VirtualClock::new(Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap());
    let zones = [NY, LON];
    let mut per_day = std::collections::BTreeMap::<String, u32>::new();
    let mut single = std::collections::BTreeMap::<String, u32>::new();
    use foundation::Clock;
    while clock.now() < Utc.with_ymd_and_hms(2026, 4, 5, 0, 0, 0).unwrap() {
        let now = clock.now();
        let d = decide(&lead(&zones), &number(), &tm, clock.now_ms());
        if d.is_allowed() {
            for tz in zones {
                let t = now.with_timezone(&tz).time();
                assert!(
                    t >= NaiveTime::from_hms_opt(8, 0, 0).unwrap()
                        && t < NaiveTime::from_hms_opt(21, 0, 0).unwrap(),
                    "{now} {tz}"
                );
            }
            *per_day.entry(now.format("%m-%d").to_string()).or_default() += 1;
        }
        if decide(&lead(&[LA]), &number(), &tm, clock.now_ms()).is_allowed() {
            *single
                .entry(now.with_timezone(&LA).format("%m-%d").to_string())
                .or_default() += 1;
        }
        clock.advance(std::time::Duration::from_secs(900));
    }
    // London GMT + New York EST: 13:00–21:00 UTC (8 h = 32 slots); EDT from Mar 8: 12:00–21:00
    // (9 h); BST from Mar 29: 12:00–20:00 (8 h).
    assert_eq!(per_day["03-02"], 32);
    assert_eq!(per_day["03-09"], 36);
    assert_eq!(per_day["03-28"], 36);
    assert_eq!(per_day["03-30"], 32);
    // One zone: 13 h = 52 slots on every local day, also the one with 23 hours.
    for (day, n) in single
        .iter()
        .filter(|(d, _)| d.as_str() >= "03-01" && d.as_str() < "04-04")
    {
        assert_eq!(*n, 52, "{day}");
    }
}

#[test]
fn next_open_skips_a_dst_gap() {
    // Window opening at 02:30 on the spring-forward day: 02:30 does not exist, 03:00 EDT does.
    let w = LocalWindow {
        start: NaiveTime::from_hms_opt(2, 30, 0).unwrap(),
        end: NaiveTime::from_hms_opt(21, 0, 0).unwrap(),
        days: vec![],
    };
    let now = Utc.with_ymd_and_hms(2026, 3, 8, 6, 0, 0).unwrap(); // 01:00 EST
    assert_eq!(
        next_open(&w, &[NY], now),
        Some(Utc.with_ymd_and_hms(2026, 3, 8, 7, 0, 0).unwrap())
    );
    // Weekdays only: Saturday 2026-06-06 → Monday 08:00 EDT.
    let w = LocalWindow {
        days: vec![
            chrono::Weekday::Mon,
            chrono::Weekday::Tue,
            chrono::Weekday::Wed,
            chrono::Weekday::Thu,
            chrono::Weekday::Fri,
        ],
        ..LocalWindow::default()
    };
    let now = Utc.with_ymd_and_hms(2026, 6, 6, 16, 0, 0).unwrap();
    assert_eq!(
        next_open(&w, &[NY], now),
        Some(Utc.with_ymd_and_hms(2026, 6, 8, 12, 0, 0).unwrap())
    );
}

#[test]
fn region_override_narrows_the_window() {
    let mut tm = config(DialMode::Predictive, Purpose::Telemarketing);
    tm.compliance.region_windows.insert(
        "US-TX".into(),
        LocalWindow {
            start: NaiveTime::from_hms_opt(9, 0, 0).unwrap(),
            end: NaiveTime::from_hms_opt(20, 0, 0).unwrap(),
            days: vec![],
        },
    );
    let mut tx = lead(&[CHI]);
    tx.subdivision = Some("US-TX".into());
    let now = utc("2026-06-01T13:30:00Z"); // 08:30 CDT
    assert_eq!(code(&decide(&tx, &number(), &tm, now)), "window");
    assert_eq!(code(&decide(&lead(&[CHI]), &number(), &tm, now)), "allowed");
}

#[test]
fn dnc_registry_consent_and_limits() {
    let now = utc("2026-06-01T16:00:00Z");
    let tm = config(DialMode::Predictive, Purpose::Telemarketing);
    let info = config(DialMode::Predictive, Purpose::Informational);
    let l = lead(&[NY]);
    let dnc = NumberFacts {
        dnc: Some("internal".into()),
        ..number()
    };
    assert_eq!(code(&decide(&l, &dnc, &tm, now)), "dnc");
    assert_eq!(code(&decide(&l, &dnc, &info, now)), "dnc");
    let retired = NumberFacts {
        retired: Some("disconnected (SIP 404)".into()),
        ..number()
    };
    assert_eq!(code(&decide(&l, &retired, &tm, now)), "retired");

    // Registry copy 32 days old: telemarketing blocked, informational not.
    let old = DncFacts {
        registries: vec![RegistryFact {
            name: "US".into(),
            downloaded_at: now - Duration::days(32).num_milliseconds(),
        }],
    };
    let fresh = DncFacts {
        registries: vec![RegistryFact {
            name: "US".into(),
            downloaded_at: now - Duration::days(30).num_milliseconds(),
        }],
    };
    let c = Counters::default();
    assert_eq!(
        code(&check(&l, &number(), &tm, &old, &c, now)),
        "registry_stale"
    );
    assert_eq!(code(&check(&l, &number(), &info, &old, &c, now)), "allowed");
    assert_eq!(code(&check(&l, &number(), &tm, &fresh, &c, now)), "allowed");
    let mut req = tm.clone();
    req.compliance.require_registry = true;
    assert_eq!(
        code(&check(&l, &number(), &req, &DncFacts::default(), &c, now)),
        "no_registry"
    );

    // Agentless telemarketing only with prior express written consent.
    let agentless = config(DialMode::Agentless, Purpose::Telemarketing);
    assert_eq!(code(&decide(&l, &number(), &agentless, now)), "no_consent");
    let consented = LeadFacts {
        written_consent: true,
        ..l.clone()
    };
    assert_eq!(
        code(&decide(&consented, &number(), &agentless, now)),
        "allowed"
    );
    assert_eq!(
        code(&decide(
            &l,
            &number(),
            &config(DialMode::Agentless, Purpose::Informational),
            now
        )),
        "allowed"
    );

    // Attempts per lead, per number per day, and no redial within 72 h of an abandoned call.
    let tried = LeadFacts {
        attempts: 3,
        ..l.clone()
    };
    assert_eq!(code(&decide(&tried, &number(), &tm, now)), "max_attempts");
    let busy_number = NumberFacts {
        attempts_last_24h: 2,
        ..number()
    };
    assert_eq!(
        code(&decide(&l, &busy_number, &tm, now)),
        "max_attempts_number_day"
    );
    let abandoned_at = now - Duration::hours(71).num_milliseconds();
    let dropped = NumberFacts {
        last_abandoned_at: Some(abandoned_at),
        ..number()
    };
    let d = decide(&l, &dropped, &tm, now);
    assert_eq!(code(&d), "recent_abandon");
    assert_eq!(
        retry_at(&d),
        Some(abandoned_at + Duration::hours(72).num_milliseconds())
    );
    let long_ago = NumberFacts {
        last_abandoned_at: Some(now - Duration::hours(73).num_milliseconds()),
        ..number()
    };
    assert_eq!(code(&decide(&l, &long_ago, &tm, now)), "allowed");

    // Trunk concurrent limit.
    let full = Counters {
        trunk_in_flight: 10,
        ..Counters::default()
    };
    assert_eq!(
        code(&check(&l, &number(), &tm, &DncFacts::default(), &full, now)),
        "trunk_full"
    );
}

#[test]
fn abandonment_cap_over_campaign_period_and_rolling_window() {
    let now = utc("2026-06-01T16:00:00Z");
    let mut tm = config(DialMode::Predictive, Purpose::Telemarketing);
    tm.compliance.rolling_window_h = Some(24);
    let l = lead(&[NY]);
    let ok = AbandonCount {
        live: 100,
        abandoned: 2,
    };
    let over = AbandonCount {
        live: 100,
        abandoned: 3,
    };
    let cases = [
        (ok, ok, Some(ok), false, "allowed"),
        (over, ok, Some(ok), false, "abandon_cap"),
        (ok, over, Some(ok), false, "abandon_cap"),
        (ok, ok, Some(over), false, "abandon_cap"),
        // With an agent reserved the call cannot be abandoned: allowed at any rate.
        (over, over, Some(over), true, "allowed"),
    ];
    for (to_date, period, rolling, agent_reserved, want) in cases {
        let c = Counters {
            campaign_started_at: now - Duration::days(40).num_milliseconds(),
            to_date,
            period,
            rolling,
            trunk_in_flight: 0,
            agent_reserved,
        };
        let d = check(&l, &number(), &tm, &DncFacts::default(), &c, now);
        assert_eq!(code(&d), want, "{c:?} {d:?}");
        if let Decision::Blocked {
            block: Block::AbandonCap { span, .. },
            ..
        } = &d
            && period.abandoned == 3
        {
            assert_eq!(span, "30-day period 2");
        }
    }
    // Agentless plays the message to every answer: never abandoned, never held by the cap.
    let mut agentless = config(DialMode::Agentless, Purpose::Informational);
    agentless.compliance.rolling_window_h = None;
    let c = Counters {
        to_date: over,
        period: over,
        ..Counters::default()
    };
    assert!(check(&l, &number(), &agentless, &DncFacts::default(), &c, now).is_allowed());
}

#[test]
fn allowed_reason_says_why() {
    let d = decide(
        &lead(&[NY, CHI]),
        &number(),
        &config(DialMode::Predictive, Purpose::Telemarketing),
        utc("2026-06-01T16:00:00Z"),
    );
    let Decision::Allowed { reason } = d else {
        panic!("{d:?}")
    };
    assert!(
        reason.contains("America/New_York 12:00") && reason.contains("America/Chicago 11:00"),
        "{reason}"
    );
    assert!(reason.contains("attempt 1 of 3"), "{reason}");
}

#[test]
fn config_validation_and_lifecycle() {
    let good = config(DialMode::Predictive, Purpose::Telemarketing);
    good.validate().unwrap();
    type Mutation = Box<dyn Fn(&mut CampaignConfig)>;
    let bad: Vec<(&str, Mutation)> = vec![
        ("cap", Box::new(|c| c.compliance.abandon_cap = 0.05)),
        ("ring", Box::new(|c| c.compliance.min_ring_s = 10)),
        (
            "window",
            Box::new(|c| c.compliance.window.start = NaiveTime::from_hms_opt(7, 0, 0).unwrap()),
        ),
        (
            "registry age",
            Box::new(|c| c.compliance.registry_max_age_days = 45),
        ),
        ("trunk", Box::new(|c| c.trunk.uri = "http://x".into())),
        ("cps", Box::new(|c| c.trunk.cps = 0)),
        ("queue", Box::new(|c| c.queue.clear())),
        ("opt-out key", Box::new(|c| c.safe_harbor.opt_out_key = 'x')),
        ("lists", Box::new(|c| c.lists.clear())),
        ("voicemail", Box::new(|c| c.amd = AmdPolicy::LeaveMessage)),
    ];
    for (what, f) in bad {
        let mut c = good.clone();
        f(&mut c);
        assert!(c.validate().is_err(), "{what} accepted");
    }
    // Agentless: a message or a flow, exactly one of them, and a flow only for agentless.
    let agentless = config(DialMode::Agentless, Purpose::Informational);
    let mut flow = agentless.clone();
    flow.agentless_prompt = None;
    flow.agentless_flow = Some("confirm".into());
    flow.validate().unwrap();
    let mut both = flow.clone();
    both.agentless_prompt = Some("msg.wav".into());
    let e = both.validate().unwrap_err().to_string();
    assert!(
        e.contains("agentless_prompt") && e.contains("agentless_flow"),
        "{e}"
    );
    let mut neither = flow.clone();
    neither.agentless_flow = None;
    assert!(neither.validate().is_err());
    let mut blank = flow.clone();
    blank.agentless_flow = Some(" ".into());
    assert!(blank.validate().is_err());
    let mut predictive = good.clone();
    predictive.agentless_prompt = None;
    predictive.agentless_flow = Some("confirm".into());
    let e = predictive.validate().unwrap_err().to_string();
    assert!(e.contains("agentless_flow"), "{e}");
    // Informational campaigns may use a wider window; JSON round trip keeps everything.
    let mut info = config(DialMode::Agentless, Purpose::Informational);
    info.compliance.window.start = NaiveTime::from_hms_opt(7, 0, 0).unwrap();
    info.validate().unwrap();
    let json = serde_json::to_string(&info).unwrap();
    assert_eq!(serde_json::from_str::<CampaignConfig>(&json).unwrap(), info);
    assert!(serde_json::from_str::<CampaignConfig>(&json.replace("\"mode\"", "\"moed\"")).is_err());

    use CampaignState::*;
    let table = [
        (Draft, Action::Start, Some(Running)),
        (Draft, Action::Pause, None),
        (Draft, Action::Complete, None),
        (Running, Action::Pause, Some(Paused)),
        (Running, Action::Start, None),
        (Paused, Action::Resume, Some(Running)),
        (Paused, Action::Complete, Some(Completed)),
        (Running, Action::Complete, Some(Completed)),
        (Completed, Action::Resume, None),
        (Completed, Action::Start, None),
    ];
    for (from, action, want) in table {
        assert_eq!(
            campaign::transition(from, action).ok(),
            want,
            "{from:?} {action:?}"
        );
    }
}
