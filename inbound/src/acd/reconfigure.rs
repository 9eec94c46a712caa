//! A new ACD configuration applied to a running ACD ([`Acd::reconfigure`], a configuration
//! reload): queue settings and routing profiles change for every later decision, new queues and
//! profiles are added, and the contacts and agents in the ACD keep their state.
//!
//! The new configuration is checked exactly as at start ([`Acd::new`]); then a queue that is
//! removed must hold no contact (waiting or being offered) and no agent may be on a contact of it
//! or in its after-contact work, and a routing profile that is removed must be used by no agent.
//! Anything refused leaves the ACD as it was. Queues keep their counters, recent handle times
//! and round-robin position; waiting contacts keep their place (order key) and the time they
//! entered the queue, and their max-wait, delay and escalation timers are set again from the
//! new settings (a contact that has already waited longer than a new max wait overflows or
//! times out at once). Idle sets are rebuilt with the new strategies' keys, and then every
//! waiting contact, in routing order, is tried against the idle agents.

use super::{Acd, AcdConfig, Activity, CState, ConfigError, Decision};

/// Why a new configuration was refused (nothing changed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReconfigureError {
    #[error(transparent)]
    Invalid(#[from] ConfigError),
    #[error("queue {queue:?} cannot be removed: {reason}")]
    QueueInUse { queue: String, reason: String },
    #[error("routing profile {profile:?} cannot be removed: agent {agent:?} uses it{}", if *.logged_in { " and is logged in" } else { "" })]
    ProfileInUse {
        profile: String,
        agent: String,
        logged_in: bool,
    },
}

impl Acd {
    /// Applies a new configuration at `now`; returns the decisions it leads to (offers the new
    /// routing makes possible, overflows and timeouts of a shorter max wait). Agents of the new
    /// configuration that the ACD does not know are added (Offline); known agents keep their
    /// profile and skills ([`Acd::update_agent`] changes them). All or nothing.
    pub fn reconfigure(
        &mut self,
        cfg: &AcdConfig,
        now: i64,
    ) -> Result<Vec<Decision>, ReconfigureError> {
        // Checked as at start; the fresh ACD also supplies the new queues and profiles.
        let fresh = Acd::new(cfg)?;
        let new_queue = |name: &str| {
            cfg.queues
                .iter()
                .position(|q| q.name == name)
                .map(|i| i as u32)
        };
        // Old queue index → new one (None: removed).
        let qmap: Vec<Option<u32>> = self.queues.iter().map(|q| new_queue(&q.name)).collect();
        for (q, to) in qmap.iter().enumerate() {
            if to.is_some() {
                continue;
            }
            let name = &self.queues[q].name;
            let contacts = self
                .contacts
                .iter()
                .flatten()
                .filter(|c| c.queue as usize == q);
            let n = contacts.count();
            if n > 0 {
                return Err(ReconfigureError::QueueInUse {
                    queue: name.clone(),
                    reason: format!("{n} contact(s) waiting in it"),
                });
            }
            if let Some(ag) = self.agents.iter().find(|ag| {
                matches!(ag.activity,
                    Activity::OnContact { queue, .. } | Activity::Acw { queue, .. }
                        if queue as usize == q)
            }) {
                return Err(ReconfigureError::QueueInUse {
                    queue: name.clone(),
                    reason: format!("agent {:?} is handling a contact of it", ag.id),
                });
            }
        }
        let mut old_profile_names = vec![String::new(); self.profiles.len()];
        for (name, &i) in &self.profile_ix {
            old_profile_names[i as usize] = name.clone();
        }
        let pmap: Vec<Option<u32>> = old_profile_names
            .iter()
            .map(|n| fresh.profile_ix.get(n).copied())
            .collect();
        for (a, ag) in self.agents.iter().enumerate() {
            if pmap[ag.profile as usize].is_none() {
                return Err(ReconfigureError::ProfileInUse {
                    profile: old_profile_names[ag.profile as usize].clone(),
                    agent: ag.id.clone(),
                    logged_in: self.logged_in(a as u32),
                });
            }
        }
        // New agents: checked against the fresh ACD (unknown profile, bad proficiency).
        let added: Vec<_> = cfg
            .agents
            .iter()
            .filter(|a| !self.agent_ix.contains_key(&a.id))
            .cloned()
            .collect();

        // ---- from here on nothing can fail ----
        let Acd {
            queues: mut new_queues,
            queue_ix,
            profiles,
            profile_ix,
            ..
        } = fresh;
        for (old, to) in std::mem::take(&mut self.queues).into_iter().zip(&qmap) {
            if let Some(to) = to {
                let q = &mut new_queues[*to as usize];
                q.waiting = old.waiting;
                q.rr_last = old.rr_last;
                q.handle_times = old.handle_times;
                q.counters = old.counters;
            }
        }
        self.queues = new_queues;
        self.queue_ix = queue_ix;
        self.profiles = profiles;
        self.profile_ix = profile_ix;
        let remap = |q: u32| qmap[q as usize].expect("a queue in use is kept");
        for ag in &mut self.agents {
            ag.profile = pmap[ag.profile as usize].expect("checked");
            ag.indexed.clear();
            match &mut ag.activity {
                Activity::OnContact { queue, .. } | Activity::Acw { queue, .. } => {
                    *queue = remap(*queue)
                }
                _ => {}
            }
            if let Some((_, q)) = &mut ag.handling {
                *q = remap(*q);
            }
        }
        for c in self.contacts.iter_mut().flatten() {
            c.queue = remap(c.queue);
        }
        self.staffed_by = vec![Vec::new(); self.queues.len()];
        for (a, ag) in self.agents.iter().enumerate() {
            for &(q, _, _) in &self.profiles[ag.profile as usize].queues {
                self.staffed_by[q as usize].push(a as u32);
            }
        }
        for a in &added {
            self.add_agent(a).expect("checked by Acd::new");
        }
        // Timers of the contacts' queue entries follow the new settings; the entry time stays.
        let slots: Vec<u32> = (0..self.contacts.len() as u32)
            .filter(|&s| self.contact(s).is_some())
            .collect();
        for &slot in &slots {
            self.seq += 1;
            let epoch = self.seq;
            let c = self.contact_mut(slot);
            c.queue_epoch = epoch;
            let (q, entered, waiting) = (c.queue, c.entered, c.state == CState::Waiting);
            self.arm_queue_timers(slot, q, entered, epoch);
            if waiting {
                self.rekey(slot, now);
            }
        }
        // Idle sets with the new strategies' keys.
        for a in 0..self.agents.len() as u32 {
            if self.routable(a) {
                self.index(a);
            }
        }
        let mut out = Vec::new();
        self.run_timers(now, &mut out);
        // What the new configuration makes routable: every waiting contact, oldest first.
        let mut waiting: Vec<_> = self
            .queues
            .iter()
            .flat_map(|q| q.waiting.iter().copied())
            .collect();
        waiting.sort();
        for key in waiting {
            if matches!(self.contact(key.slot), Some(c) if c.key == key && c.state == CState::Waiting)
            {
                self.route_contact(key.slot, now, &mut out);
            }
        }
        Ok(out)
    }
}

/// What a new configuration changes, for the log: `queue "q2" added`, `queue "q1" changed`,
/// `routing profile "p" removed`... (empty: the same queues and profiles).
pub fn changes(old: &AcdConfig, new: &AcdConfig) -> Vec<String> {
    fn diff<T: PartialEq>(
        what: &str,
        old: &[T],
        new: &[T],
        name: impl Fn(&T) -> &str,
        out: &mut Vec<String>,
    ) {
        for n in new {
            match old.iter().find(|o| name(o) == name(n)) {
                None => out.push(format!("{what} {:?} added", name(n))),
                Some(o) if o != n => out.push(format!("{what} {:?} changed", name(n))),
                Some(_) => {}
            }
        }
        for o in old {
            if !new.iter().any(|n| name(n) == name(o)) {
                out.push(format!("{what} {:?} removed", name(o)));
            }
        }
    }
    let mut out = Vec::new();
    diff("queue", &old.queues, &new.queues, |q| &q.name, &mut out);
    diff(
        "routing profile",
        &old.profiles,
        &new.profiles,
        |p| &p.name,
        &mut out,
    );
    diff("agent", &old.agents, &new.agents, |a| &a.id, &mut out);
    out
}
