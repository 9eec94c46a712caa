//! Calls an agent or the API places one at a time, under the same compliance as campaigns:
//!
//! - preview mode: [`preview_next`] hands an agent the next lead card (its own callbacks first)
//!   whose dial is allowed right now; the agent [`preview_dial`]s it (checked again at dial time,
//!   then bridged to that agent on answer) or [`preview_skip`]s it;
//! - programmatic single calls (`POST /api/v1/calls`): [`single_call`] normalises the number,
//!   finds its time zones, checks window and DNC, writes the attempt, then dials; a block comes
//!   back as [`CallError::Blocked`] (the web layer answers 409 with the reason).
//!
//! Both follow the call to its end and write the final record ([`follow`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use foundation::Db;
use serde::{Deserialize, Serialize};
use telephony::control::{Call, CallControl, Calls, Event};
use tokio::sync::oneshot;

use crate::agents::AgentPort;
use crate::attempts::{self, Final, NewAttempt, Outcome, Progress};
use crate::campaign::{self, CampaignConfig, CampaignState};
use crate::compliance::{self, Counters, Decision, LeadFacts};
use crate::gate::{self, Registries, Verdict};
use crate::hopper::{self, ClaimedLead, LeadPhone};
use crate::runner;

/// Why a single or preview call was not placed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// Compliance said no (HTTP 409).
    #[error("blocked ({code}): {reason}")]
    Blocked { code: String, reason: String },
    /// The request is wrong (HTTP 400 / 404).
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// Everything a single call needs from the appliance.
#[derive(Clone)]
pub struct Dialer {
    pub db: Db,
    pub clock: foundation::SharedClock,
    pub calls: Calls,
    pub agents: Arc<dyn AgentPort>,
    pub node: String,
}

/// A lead card for a preview agent, with the number compliance allows now.
#[derive(Debug, Clone, Serialize)]
pub struct PreviewCard {
    pub lead: ClaimedLead,
    pub phone: LeadPhone,
    pub allowed_reason: String,
    /// Dial automatically after this many seconds (campaign setting), if set.
    pub auto_dial_s: Option<u32>,
}

/// A placed call: its contact id, and for a `flow` request the answered call's control.
pub struct Placed {
    pub contact_id: String,
    /// Fires on answer when the request named a flow (the caller runs the flow on it).
    pub answered: Option<oneshot::Receiver<CallControl>>,
}

/// Preview: the next dialable lead for `agent` in a running preview campaign, or `None`.
/// Leads that may not be dialled now are given back (or finished) with the reason.
pub async fn preview_next(
    d: &Dialer,
    campaign_id: i64,
    agent: &str,
) -> Result<Option<PreviewCard>, CallError> {
    let c = campaign::get(&d.db, campaign_id)
        .await?
        .ok_or_else(|| CallError::Invalid(format!("no campaign {campaign_id}")))?;
    if c.state != CampaignState::Running {
        return Err(CallError::Invalid(format!(
            "campaign {} is {}",
            c.name,
            c.state.as_str()
        )));
    }
    hopper::refill(&d.db, d.clock.as_ref(), &c).await?;
    let mut regs = Registries::default();
    regs.refresh(&d.db).await?;
    for _ in 0..20 {
        let Some(lead) =
            hopper::claim_for_agent(&d.db, d.clock.as_ref(), &c, &d.node, agent).await?
        else {
            return Ok(None);
        };
        let counters = gate::counters(&d.db, &c, d.clock.now_ms(), 0, true).await?;
        match gate::decide(&d.db, d.clock.as_ref(), &c, &lead, &regs, &counters).await? {
            Verdict::Dial { phone, reason } => {
                return Ok(Some(PreviewCard {
                    lead,
                    phone,
                    allowed_reason: reason,
                    auto_dial_s: c.config.preview_auto_dial_s,
                }));
            }
            Verdict::Release {
                next_at, reason, ..
            } => {
                hopper::release(
                    &d.db,
                    d.clock.as_ref(),
                    c.id,
                    lead.lead_id,
                    &d.node,
                    next_at,
                    &reason,
                )
                .await?
            }
            Verdict::Finish { outcome, reason } => {
                hopper::finish(
                    &d.db,
                    d.clock.as_ref(),
                    c.id,
                    lead.lead_id,
                    &d.node,
                    outcome,
                    &reason,
                )
                .await?
            }
            Verdict::Filtered { reason } => {
                hopper::set_filtered(
                    &d.db,
                    d.clock.as_ref(),
                    c.id,
                    lead.lead_id,
                    &d.node,
                    &reason,
                )
                .await?
            }
        }
    }
    Ok(None)
}

/// Preview: the agent skips the card; the lead comes back in `retry_s` seconds.
pub async fn preview_skip(
    d: &Dialer,
    card: &PreviewCard,
    agent: &str,
    retry_s: u32,
) -> Result<(), CallError> {
    let at = d.clock.now_ms() + retry_s as i64 * 1000;
    hopper::release(
        &d.db,
        d.clock.as_ref(),
        card.lead.campaign_id,
        card.lead.lead_id,
        &d.node,
        at,
        &format!("skipped by {agent}"),
    )
    .await?;
    Ok(())
}

/// Preview: the agent dials the card. Compliance is checked again now; on answer the call is
/// bridged to `agent`.
pub async fn preview_dial(
    d: &Dialer,
    card: &PreviewCard,
    agent: &str,
) -> Result<Placed, CallError> {
    let c = campaign::get(&d.db, card.lead.campaign_id)
        .await?
        .ok_or_else(|| CallError::Invalid("campaign vanished".into()))?;
    let mut regs = Registries::default();
    regs.refresh(&d.db).await?;
    let counters = gate::counters(&d.db, &c, d.clock.now_ms(), 0, true).await?;
    let (phone, reason) =
        match gate::decide(&d.db, d.clock.as_ref(), &c, &card.lead, &regs, &counters).await? {
            Verdict::Dial { phone, reason } => (phone, reason),
            Verdict::Release {
                next_at,
                reason,
                code,
            } => {
                hopper::release(
                    &d.db,
                    d.clock.as_ref(),
                    c.id,
                    card.lead.lead_id,
                    &d.node,
                    next_at,
                    &reason,
                )
                .await?;
                return Err(CallError::Blocked {
                    code: code.into(),
                    reason,
                });
            }
            Verdict::Finish { outcome, reason } => {
                hopper::finish(
                    &d.db,
                    d.clock.as_ref(),
                    c.id,
                    card.lead.lead_id,
                    &d.node,
                    outcome,
                    &reason,
                )
                .await?;
                return Err(CallError::Blocked {
                    code: outcome.into(),
                    reason,
                });
            }
            Verdict::Filtered { reason } => {
                hopper::set_filtered(
                    &d.db,
                    d.clock.as_ref(),
                    c.id,
                    card.lead.lead_id,
                    &d.node,
                    &reason,
                )
                .await?;
                return Err(CallError::Blocked {
                    code: "filtered".into(),
                    reason,
                });
            }
        };
    let mut attrs = BTreeMap::new();
    attrs.insert("agent_hint".to_owned(), agent.to_owned());
    place(
        d,
        &c.config,
        Some(c.id),
        Some(card.lead.lead_id),
        Some(phone.position),
        &phone.e164,
        &c.config.caller_id,
        reason,
        Target::Queue(c.config.queue.clone()),
        attrs,
    )
    .await
}

/// A programmatic single call.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SingleCall {
    pub to: String,
    pub from: Option<String>,
    /// Use this campaign's trunk, caller id and compliance profile.
    pub campaign: Option<i64>,
    /// On answer, connect to an agent of this queue.
    pub queue: Option<String>,
    /// On answer, hand the call to this flow (see [`Placed::answered`]).
    pub flow: Option<String>,
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
}

/// Places a single call (`POST /api/v1/calls`). `defaults` gives trunk, caller id and compliance
/// when no campaign is named (`None`: a campaign must be named). Same checks as campaigns: window in every candidate zone of the
/// number (no zone → blocked), internal DNC and registries, the number's retirement and
/// redial limits.
pub async fn single_call(
    d: &Dialer,
    req: &SingleCall,
    defaults: Option<&CampaignConfig>,
    default_region: &str,
) -> Result<Placed, CallError> {
    let config = match req.campaign {
        Some(id) => {
            campaign::get(&d.db, id)
                .await?
                .ok_or_else(|| CallError::Invalid(format!("no campaign {id}")))?
                .config
        }
        None => defaults.cloned().ok_or_else(|| {
            CallError::Invalid(
                "no default outbound trunk is configured (dialer.trunk): name a campaign".into(),
            )
        })?,
    };
    let target = match (&req.queue, &req.flow) {
        (Some(_), Some(_)) => {
            return Err(CallError::Invalid(
                "give a queue or a flow, not both".into(),
            ));
        }
        (Some(q), None) => Target::Queue(q.clone()),
        (None, Some(f)) => Target::Flow(f.clone()),
        (None, None) if req.campaign.is_some() => Target::Queue(config.queue.clone()),
        (None, None) => {
            return Err(CallError::Invalid(
                "a single call needs a campaign, a queue or a flow".into(),
            ));
        }
    };
    let phone = importers::phone::Normalizer::new(default_region)?
        .normalize(&req.to)
        .map_err(|r| {
            CallError::Invalid(format!(
                "{:?} is not a valid number: {}",
                req.to,
                r.as_str()
            ))
        })?;
    let zones: Vec<chrono_tz::Tz> =
        importers::tz::candidates(&phone, &importers::tz::LeadPlace::default())
            .zones
            .iter()
            .filter_map(|c| c.tz.parse().ok())
            .collect();
    let now = d.clock.now_ms();
    let mut regs = Registries::default();
    regs.refresh(&d.db).await?;
    let number = attempts::number_facts(&d.db, &phone.e164, regs.hit(&phone.e164), now).await?;
    let lead = LeadFacts {
        zones,
        country: phone.region.map(str::to_owned),
        ..LeadFacts::default()
    };
    // A single call goes to a reserved target (agent queue or flow): not held by the cap.
    let counters = Counters {
        agent_reserved: true,
        ..Counters::default()
    };
    let reason = match compliance::check(&lead, &number, &config, &regs.facts(), &counters, now) {
        Decision::Allowed { reason } => reason,
        Decision::Blocked { block, reason, .. } => {
            return Err(CallError::Blocked {
                code: block.code().into(),
                reason,
            });
        }
    };
    let from = req.from.clone().unwrap_or_else(|| config.caller_id.clone());
    place(
        d,
        &config,
        req.campaign,
        None,
        None,
        &phone.e164,
        &from,
        reason,
        target,
        req.attributes.clone(),
    )
    .await
}

enum Target {
    Queue(String),
    Flow(String),
}

#[allow(clippy::too_many_arguments)]
async fn place(
    d: &Dialer,
    config: &CampaignConfig,
    campaign_id: Option<i64>,
    lead_id: Option<i64>,
    position: Option<i64>,
    e164: &str,
    from: &str,
    reason: String,
    target: Target,
    attrs: BTreeMap<String, String>,
) -> Result<Placed, CallError> {
    let attempt = attempts::open(
        &d.db,
        d.clock.as_ref(),
        &NewAttempt {
            campaign_id,
            lead_id,
            phone_position: position,
            e164: e164.to_owned(),
            caller_id: from.to_owned(),
            node: d.node.clone(),
            allowed_reason: reason,
            attributes: attrs
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                .collect(),
        },
    )
    .await?;
    let mut invite = runner::originate(config, e164)?;
    invite.from_user = from.to_owned();
    let call = d.calls.originate(invite);
    let (tx, rx) = oneshot::channel();
    let flow = matches!(target, Target::Flow(_));
    let mut attrs = attrs;
    attrs.insert("contact_id".into(), attempt.public_id.clone());
    attrs.insert("number".into(), e164.to_owned());
    if let Target::Flow(f) = &target {
        attrs.insert("flow".into(), f.clone());
    }
    let queue = match target {
        Target::Queue(q) => Some(q),
        Target::Flow(_) => None,
    };
    tokio::spawn(follow(
        d.clone(),
        call,
        attempt.clone(),
        config.clone(),
        queue,
        attrs,
        tx,
    ));
    Ok(Placed {
        contact_id: attempt.public_id,
        answered: flow.then_some(rx),
    })
}

/// Follows a single or preview call to its end: progress marks, the connect to the queue (or
/// the hand-over to a flow) on answer, and the final record.
pub async fn follow(
    d: Dialer,
    mut call: Call,
    attempt: attempts::Attempt,
    config: CampaignConfig,
    queue: Option<String>,
    attrs: BTreeMap<String, String>,
    on_answer: oneshot::Sender<CallControl>,
) {
    let (db, clock) = (&d.db, d.clock.as_ref());
    let mut fin = Final::default();
    let mut on_answer = Some(on_answer);
    let (mut answered, mut connected) = (false, false);
    while let Some(ev) = call.next_event().await {
        match ev {
            Event::Ringing { .. } => {
                let _ = attempts::mark(db, clock, attempt.id, Progress::Ringing).await;
            }
            Event::Answered { .. } => {
                answered = true;
                fin.live = true;
                let _ = attempts::mark(db, clock, attempt.id, Progress::Answered).await;
                match &queue {
                    Some(q) => match d
                        .agents
                        .connect(q, call.control().clone(), attrs.clone())
                        .await
                    {
                        Ok(agent) => {
                            connected = true;
                            fin.agent = Some(agent);
                            fin.bridged_at = Some(clock.now_ms());
                            let _ =
                                attempts::mark(db, clock, attempt.id, Progress::Connected).await;
                        }
                        Err(e) => {
                            fin.detail = Some(e.to_string());
                            fin.abandoned = true;
                            let played = match runner_prompt(&config.safe_harbor.prompt) {
                                Some(p) => call.control().play_prompt(&p).await.is_ok(),
                                None => false,
                            };
                            if !played {
                                let _ = call.control().hangup().await;
                            }
                        }
                    },
                    None => {
                        if let Some(tx) = on_answer.take() {
                            connected = tx.send(call.control().clone()).is_ok();
                        }
                    }
                }
            }
            Event::PlaybackFinished if fin.abandoned => {
                let _ = call.control().hangup().await;
            }
            Event::Hangup { code, outcome, .. } => {
                fin.sip_code = code;
                fin.outcome = Some(if connected {
                    Outcome::Connected
                } else if fin.abandoned {
                    Outcome::Abandoned
                } else if answered {
                    Outcome::Failed
                } else {
                    Outcome::from_sip(outcome)
                });
                break;
            }
            _ => {}
        }
    }
    if fin.outcome.is_none() {
        fin.outcome = Some(if connected {
            Outcome::Connected
        } else {
            Outcome::Failed
        });
    }
    if let Err(e) = attempts::finish(db, clock, attempt.id, &fin, Some(&config)).await {
        tracing::error!(contact = %attempt.public_id, error = %format!("{e:#}"), "final record not written");
    }
}

fn runner_prompt(path: &str) -> Option<telephony::media::prompt::Prompt> {
    telephony::media::prompt::Prompt::from_wav_file(path.as_ref()).ok()
}
