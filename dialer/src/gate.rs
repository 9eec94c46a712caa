//! The dial gate: for a claimed lead, gathers the facts compliance needs from the database (DNC as
//! of now, registry copies, the number's history, the campaign's abandonment counts), picks the
//! number to dial and applies [`crate::compliance::check`]. The verdict says what to do with the
//! lead: dial this number with this reason, give it back until a time, finish it, or set it aside
//! by the campaign's filters.

use foundation::{Clock, Db};
use importers::DncSet;
use serde::Serialize;

use crate::attempts;
use crate::campaign::Campaign;
use crate::compliance::{self, Counters, Decision, DncFacts, LeadFacts, PERIOD_MS, RegistryFact};
use crate::hopper::{ClaimedLead, LeadPhone};

/// The active national registries with their numbers, reloaded when the set of copies changes.
#[derive(Default)]
pub struct Registries {
    key: Vec<i64>,
    loaded: bool,
    sets: Vec<(RegistryFact, DncSet)>,
}

impl Registries {
    /// Reloads when a registry copy was added or deactivated since the last call.
    pub async fn refresh(&mut self, db: &Db) -> anyhow::Result<()> {
        let infos = importers::dnc::registries(db).await?;
        let key: Vec<i64> = infos.iter().map(|r| r.id).collect();
        if key == self.key && self.loaded {
            return Ok(());
        }
        let index = importers::DncIndex::load(db).await?;
        self.sets = index
            .registries
            .into_iter()
            .map(|(info, set)| {
                (
                    RegistryFact {
                        name: info.name,
                        downloaded_at: info.downloaded_at,
                    },
                    set,
                )
            })
            .collect();
        self.key = key;
        self.loaded = true;
        Ok(())
    }

    /// Whether these are still the active copies (a cheap query, no numbers loaded).
    pub async fn is_current(&self, db: &Db) -> anyhow::Result<bool> {
        let key: Vec<i64> = importers::dnc::registries(db)
            .await?
            .iter()
            .map(|r| r.id)
            .collect();
        Ok(key == self.key && (self.loaded || key.is_empty()))
    }

    pub fn facts(&self) -> DncFacts {
        DncFacts {
            registries: self.sets.iter().map(|(f, _)| f.clone()).collect(),
        }
    }

    /// The registry holding `e164`, as `registry:NAME`.
    pub fn hit(&self, e164: &str) -> Option<String> {
        let digits: u64 = e164.trim_start_matches('+').parse().ok()?;
        self.sets
            .iter()
            .find(|(_, s)| s.contains(digits))
            .map(|(f, _)| format!("registry:{}", f.name))
    }
}

/// The campaign's abandonment counters at `now` (campaign to date, current 30-day period,
/// optional rolling window).
pub async fn counters(
    db: &Db,
    campaign: &Campaign,
    now: i64,
    trunk_in_flight: u32,
    agent_reserved: bool,
) -> anyhow::Result<Counters> {
    let started = campaign.started_at.unwrap_or(now);
    let period_start = started + ((now - started).max(0) / PERIOD_MS) * PERIOD_MS;
    let rolling = match campaign.config.compliance.rolling_window_h {
        Some(h) => {
            Some(attempts::abandon_count(db, campaign.id, now - h as i64 * 3_600_000).await?)
        }
        None => None,
    };
    Ok(Counters {
        campaign_started_at: started,
        to_date: attempts::abandon_count(db, campaign.id, 0).await?,
        period: attempts::abandon_count(db, campaign.id, period_start).await?,
        rolling,
        trunk_in_flight,
        agent_reserved,
    })
}

/// What to do with a claimed lead.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    Dial {
        phone: LeadPhone,
        reason: String,
    },
    /// Back to the hopper from `next_at` (window closed, redial wait, cap, trunk full).
    Release {
        next_at: i64,
        reason: String,
        code: &'static str,
    },
    /// Never dialable by this campaign (all numbers DNC/retired/no zone, no consent, attempts used).
    Finish {
        outcome: &'static str,
        reason: String,
    },
    /// Fails the campaign's lead filters.
    Filtered {
        reason: String,
    },
}

/// Decides for one claimed lead: tries its numbers in order from the one after the last tried
/// (rotating with the attempt count).
pub async fn decide(
    db: &Db,
    clock: &dyn Clock,
    campaign: &Campaign,
    lead: &ClaimedLead,
    registries: &Registries,
    counters: &Counters,
) -> anyhow::Result<Verdict> {
    let now = clock.now_ms();
    let cfg = &campaign.config;
    if let Some(f) = cfg
        .filters
        .iter()
        .find(|f| !f.matches(&|a| lead.attribute(a)))
    {
        return Ok(Verdict::Filtered {
            reason: format!("lead filter {f:?} not met"),
        });
    }
    if lead.phones.is_empty() {
        return Ok(Verdict::Finish {
            outcome: "no_number",
            reason: "the lead has no number".into(),
        });
    }
    let facts = LeadFacts {
        zones: Vec::new(),
        subdivision: lead.region_key(),
        country: lead.country.clone(),
        written_consent: lead.written_consent(),
        attempts: lead.attempts,
    };
    let dnc = registries.facts();
    let n = lead.phones.len();
    let first = lead.attempts as usize % n;
    let mut earliest: Option<(i64, String, &'static str)> = None;
    let mut permanent = Vec::new();
    for k in 0..n {
        let phone = &lead.phones[(first + k) % n];
        let number =
            attempts::number_facts(db, &phone.e164, registries.hit(&phone.e164), now).await?;
        let lf = LeadFacts {
            zones: phone.zones.clone(),
            ..facts.clone()
        };
        match compliance::check(&lf, &number, cfg, &dnc, counters, now) {
            Decision::Allowed { reason } => {
                return Ok(Verdict::Dial {
                    phone: phone.clone(),
                    reason,
                });
            }
            Decision::Blocked {
                block,
                reason,
                retry_at,
            } => {
                if block.permanent_for_lead() {
                    return Ok(Verdict::Finish {
                        outcome: block.code(),
                        reason,
                    });
                }
                if block.permanent_for_number() {
                    permanent.push(format!("{}: {reason}", phone.e164));
                    continue;
                }
                let at = retry_at.unwrap_or(now + 60_000);
                if earliest.as_ref().is_none_or(|(e, _, _)| at < *e) {
                    earliest = Some((at, format!("{}: {reason}", phone.e164), block.code()));
                }
            }
        }
    }
    Ok(match earliest {
        Some((next_at, reason, code)) => Verdict::Release {
            next_at,
            reason,
            code,
        },
        None => Verdict::Finish {
            outcome: "undialable",
            reason: permanent.join("; "),
        },
    })
}
