//! Calls an agent or the API places one at a time, under the same compliance as campaigns:
//!
//! - preview mode: [`preview_next`] hands an agent the next lead card (its own callbacks first)
//!   whose dial is allowed right now; the agent [`preview_dial`]s it (checked again at dial time,
//!   then bridged to that agent on answer) or [`preview_skip`]s it. When the campaign sets
//!   `preview_auto_dial_s`, the server dials the card itself when that countdown ends
//!   ([`preview_auto_dial`], scheduled by [`preview_next`]; once the agent is ready, never into
//!   after-contact work or a call) if the agent has neither dialled nor
//!   skipped it, and gives the lead back instead if the agent has logged out. A card is dialled
//!   at most once: dial, skip and auto-dial act only while the lead is still held under this
//!   card's claim, and the attempt moves the lead from `claimed` to `dialing` atomically, so
//!   the agent's Dial after an auto-dial (or the reverse) is refused with `not_held`;
//! - programmatic single calls (`POST /api/v1/calls`): [`single_call`] normalises the number,
//!   finds its time zones, checks window and DNC, writes the attempt, then dials; a block comes
//!   back as [`CallError::Blocked`] (the web layer answers 409 with the reason).
//!
//! Both follow the call to its end and write the final record ([`follow`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use foundation::Db;
use serde::{Deserialize, Serialize};
use telephony::control::{Call, Calls, Event};
use tokio::sync::mpsc;

use crate::agents::{AgentPort, AgentState};
use crate::attempts::{self, Final, NewAttempt, Outcome, Progress};
use crate::campaign::{self, CampaignConfig, CampaignState};
use crate::compliance::{self, Counters, Decision, LeadFacts};
use crate::flows::{FlowCall, FlowPort, FlowRun};
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
    /// Runs flows on answered calls (`None`: single calls to a flow are refused).
    pub flows: Option<Arc<dyn FlowPort>>,
    pub node: String,
}

/// A lead card for a preview agent, with the number compliance allows now.
#[derive(Debug, Clone, Serialize)]
pub struct PreviewCard {
    pub lead: ClaimedLead,
    pub phone: LeadPhone,
    pub allowed_reason: String,
    /// Dial automatically after this many seconds (campaign setting), if set; the server does
    /// it ([`preview_auto_dial`]).
    pub auto_dial_s: Option<u32>,
}

/// A placed call: its contact id.
pub struct Placed {
    pub contact_id: String,
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
                let card = PreviewCard {
                    lead,
                    phone,
                    allowed_reason: reason,
                    auto_dial_s: c.config.preview_auto_dial_s,
                };
                schedule_auto_dial(d, &card, agent);
                return Ok(Some(card));
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

/// Whether the lead is still held under this card's claim (not dialled — by the agent or by the
/// auto-dial countdown —, skipped or given back). A caller keeping cards (the web layer) drops one
/// that is no longer held.
pub async fn held(d: &Dialer, card: &PreviewCard) -> anyhow::Result<bool> {
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM campaign_leads WHERE campaign_id = $1 AND lead_id = $2 \
         AND state = 'claimed' AND claimed_by = $3 AND claimed_at = $4",
    )
    .bind(card.lead.campaign_id)
    .bind(card.lead.lead_id)
    .bind(&d.node)
    .bind(card.lead.claimed_at)
    .fetch_one(d.db.pool())
    .await?;
    Ok(n == 1)
}

fn not_held() -> CallError {
    CallError::Blocked {
        code: "not_held".into(),
        reason:
            "the card was already dialled (perhaps automatically at the end of its countdown), \
                 skipped or given back"
                .into(),
    }
}

/// Starts the server's countdown of a card whose campaign sets `preview_auto_dial_s`.
fn schedule_auto_dial(d: &Dialer, card: &PreviewCard, agent: &str) {
    let Some(s) = card.auto_dial_s else {
        return;
    };
    let (d, card, agent) = (d.clone(), card.clone(), agent.to_owned());
    tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_secs(s as u64)).await;
        match preview_auto_dial(&d, &card, &agent).await {
            Ok(Some(p)) => tracing::info!(
                agent,
                contact = p.contact_id,
                "preview card dialled at the end of its countdown"
            ),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(agent, lead = card.lead.lead_id, error = %e, "preview auto-dial failed")
            }
        }
    });
}

/// How long an expired card waits for its agent to become ready (out of a call, after-contact
/// work or a break) before the lead is given back.
const AUTO_DIAL_MAX_WAIT: std::time::Duration = std::time::Duration::from_secs(600);

/// Preview auto-dial, at the end of the card's countdown: dials the card for `agent` unless it
/// was already dialled or skipped (`None`). The call is placed only while the agent is ready: an
/// agent still on a call, in after-contact work or on a break is waited for (checked every
/// second, at most [`AUTO_DIAL_MAX_WAIT`]), since a customer answering with no agent free would
/// be an abandoned call. If the agent is no longer in the campaign's queue (logged out), or the
/// wait runs out, the lead is given back instead (`None`).
pub async fn preview_auto_dial(
    d: &Dialer,
    card: &PreviewCard,
    agent: &str,
) -> Result<Option<Placed>, CallError> {
    let c = campaign::get(&d.db, card.lead.campaign_id)
        .await?
        .ok_or_else(|| CallError::Invalid("campaign vanished".into()))?;
    let give_back = |why: String| async move {
        hopper::release(
            &d.db,
            d.clock.as_ref(),
            c.id,
            card.lead.lead_id,
            &d.node,
            d.clock.now_ms(),
            &why,
        )
        .await
    };
    let waited_from = tokio::time::Instant::now();
    let mut first = true;
    loop {
        if !held(d, card).await? {
            return Ok(None);
        }
        let mut present = d.agents.snapshot(&c.config.queue);
        if present.is_empty() && first {
            // The appliance's port answers a first question about a queue empty and fills its
            // cache within 250 ms: an empty answer is asked again before anyone counts as gone.
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            present = d.agents.snapshot(&c.config.queue);
        }
        first = false;
        match present.iter().find(|a| a.id == agent).map(|a| &a.state) {
            None => {
                give_back(format!("{agent} logged out holding the preview card")).await?;
                return Ok(None);
            }
            Some(AgentState::Ready) => break,
            Some(_) if waited_from.elapsed() >= AUTO_DIAL_MAX_WAIT => {
                give_back(format!(
                    "{agent} was not ready within {} s of the preview countdown",
                    AUTO_DIAL_MAX_WAIT.as_secs()
                ))
                .await?;
                return Ok(None);
            }
            Some(_) => tokio::time::sleep(std::time::Duration::from_secs(1)).await,
        }
    }
    match preview_dial(d, card, agent).await {
        Ok(p) => Ok(Some(p)),
        Err(CallError::Blocked { code, .. }) if code == "not_held" => Ok(None),
        Err(e) => Err(e),
    }
}

/// Preview: the agent skips the card; the lead comes back in `retry_s` seconds. Refused with
/// `not_held` once the card was dialled.
pub async fn preview_skip(
    d: &Dialer,
    card: &PreviewCard,
    agent: &str,
    retry_s: u32,
) -> Result<(), CallError> {
    if !held(d, card).await? {
        return Err(not_held());
    }
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
/// bridged to `agent`. Refused with `not_held` once the card was dialled (by the agent or at the
/// end of its countdown) or skipped.
pub async fn preview_dial(
    d: &Dialer,
    card: &PreviewCard,
    agent: &str,
) -> Result<Placed, CallError> {
    if !held(d, card).await? {
        return Err(not_held());
    }
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
    .map_err(|e| match e {
        // Dialled at the same moment by the other side (agent or countdown): the attempt's
        // claimed → dialing move let only one through, before any INVITE.
        CallError::Other(e) if e.to_string().contains("is not claimed by") => not_held(),
        e => e,
    })
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
        (None, Some(f)) => {
            let Some(port) = &d.flows else {
                return Err(CallError::Invalid(
                    "flow: this node runs no flows on outbound calls".into(),
                ));
            };
            port.check(f)
                .await
                .map_err(|why| CallError::Invalid(format!("flow {f:?}: {why}")))?;
            Target::Flow(f.clone())
        }
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

/// What an answered single call goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// An agent of this queue.
    Queue(String),
    /// This flow (through the [`FlowPort`]).
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
    let mut attrs = attrs;
    attrs.insert("contact_id".into(), attempt.public_id.clone());
    attrs.insert("number".into(), e164.to_owned());
    if let Some(c) = campaign_id {
        attrs.insert("campaign_id".into(), c.to_string());
    }
    if let Target::Flow(f) = &target {
        attrs.insert("flow".into(), f.clone());
    }
    tokio::spawn(follow(
        d.clone(),
        call,
        attempt.clone(),
        config.clone(),
        target,
        attrs,
    ));
    Ok(Placed {
        contact_id: attempt.public_id,
    })
}

/// Follows a single or preview call to its end: progress marks, the connect to the queue (or
/// the run of the flow, with the opt-out key taken before the flow's input) on answer, and the
/// final record.
pub async fn follow(
    d: Dialer,
    mut call: Call,
    attempt: attempts::Attempt,
    config: CampaignConfig,
    target: Target,
    attrs: BTreeMap<String, String>,
) {
    let (db, clock) = (&d.db, d.clock.as_ref());
    let mut fin = Final::default();
    let (mut answered, mut connected, mut opted_out) = (false, false, false);
    let mut flow: Option<(
        mpsc::UnboundedSender<Event>,
        tokio::sync::oneshot::Receiver<_>,
    )> = None;
    let opt_out_key = config.safe_harbor.opt_out_key;
    while let Some(ev) = call.next_event().await {
        if let Some((tx, _)) = &flow {
            match &ev {
                Event::Dtmf { digit, .. } if *digit == opt_out_key => {
                    match importers::dnc::add_internal(
                        db,
                        clock,
                        &attempt_e164(&attrs),
                        "US",
                        "opt-out key during a flow",
                        "opt_out",
                        None,
                    )
                    .await
                    {
                        Ok(_) => opted_out = true,
                        Err(e) => {
                            tracing::error!(error = %format!("{e:#}"), "opt-out not recorded")
                        }
                    }
                    let _ = call.control().hangup().await;
                    continue;
                }
                Event::Hangup { .. } => {
                    let _ = tx.send(ev.clone());
                }
                other => {
                    let _ = tx.send(other.clone());
                    continue;
                }
            }
        }
        match ev {
            Event::Ringing { .. } => {
                let _ = attempts::mark(db, clock, attempt.id, Progress::Ringing).await;
            }
            Event::Answered { .. } => {
                answered = true;
                fin.live = true;
                let _ = attempts::mark(db, clock, attempt.id, Progress::Answered).await;
                match &target {
                    Target::Queue(q) => match d
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
                    Target::Flow(f) => match &d.flows {
                        Some(port) => {
                            fin.flow_id = Some(f.clone());
                            let (tx, rx) = mpsc::unbounded_channel();
                            let (done_tx, done) = tokio::sync::oneshot::channel();
                            let mut attributes = attrs.clone();
                            attributes.insert("direction".into(), "outbound".into());
                            let fut = port.run_flow(
                                FlowCall {
                                    info: call.info().clone(),
                                    control: call.control().clone(),
                                    events: rx,
                                },
                                FlowRun {
                                    flow: f.clone(),
                                    contact_id: attempt.public_id.clone(),
                                    customer: attempt_e164(&attrs),
                                    system: config.caller_id.clone(),
                                    attributes,
                                },
                            );
                            tokio::spawn(async move {
                                let _ = done_tx.send(fut.await);
                            });
                            flow = Some((tx, done));
                        }
                        None => {
                            fin.detail = Some(format!("flow {f}: no flow runner on this node"));
                            let _ = call.control().hangup().await;
                        }
                    },
                }
            }
            Event::PlaybackFinished if fin.abandoned => {
                let _ = call.control().hangup().await;
            }
            Event::Hangup { code, outcome, .. } => {
                let mut ran = false;
                if let Some((tx, done)) = flow.take() {
                    drop(tx);
                    let f = fin.flow_id.clone().unwrap_or_default();
                    match tokio::time::timeout(std::time::Duration::from_secs(15), done).await {
                        Ok(Ok(r)) => {
                            ran = r.error.is_none();
                            connected = r.agent.is_some();
                            runner::apply_flow_result(&mut fin, &f, &r);
                        }
                        _ => fin.detail = Some(format!("flow {f}: no result")),
                    }
                }
                fin.sip_code = code;
                fin.outcome = Some(if opted_out {
                    Outcome::Dnc
                } else if connected {
                    Outcome::Connected
                } else if fin.abandoned {
                    Outcome::Abandoned
                } else if ran {
                    Outcome::Message
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

/// The dialled number (`number` of the call's attributes).
fn attempt_e164(attrs: &BTreeMap<String, String>) -> String {
    attrs.get("number").cloned().unwrap_or_default()
}

fn runner_prompt(path: &str) -> Option<telephony::media::prompt::Prompt> {
    telephony::media::prompt::Prompt::from_wav_file(path.as_ref()).ok()
}
