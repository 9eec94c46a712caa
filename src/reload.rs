//! Configuration reload on SIGHUP, without dropping calls: the file and environment are read and
//! validated again; the keys that can change in a running appliance take effect at once, and any
//! other changed key is named in the log as needing a restart. A file that no longer validates
//! changes nothing. The ACD's file (`inbound.acd`) is read again on every reload, its path
//! changed or not, checked as at start and applied to the running ACD
//! ([`inbound::runtime::Runtime::reconfigure_acd`]: queue settings and routing profiles change for
//! later decisions, queues and profiles are added; calls, waiting contacts and agents stay); the
//! log's `acd_reloaded` line names what changed, and a refused file (a queue removed while
//! contacts wait in it, a profile removed that an agent uses, a file that does not validate)
//! leaves the running ACD as it was, with a warning naming the problem. (Routing — numbers → flows, the migration router, pools — lives in the
//! database and is edited at runtime through the API; it needs no reload.)

use std::path::PathBuf;

use tracing::{info, warn};

use crate::config::Config;
use crate::serve::SetLogLevel;

/// Keys applied to a running appliance.
const LIVE_KEYS: &[&str] = &[
    "log.level",
    "sip.trusted_addresses",
    "sip.realm",
    "inbound.acd",
];

pub struct Reloader {
    pub file: Option<PathBuf>,
    pub current: Config,
    pub set_log_level: SetLogLevel,
    pub sip: telephony::sip::driver::SipHandle,
    pub sip_users: crate::serve::SipUsers,
    /// The inbound runtime, whose ACD takes the re-read ACD file.
    pub runtime: inbound::runtime::Runtime,
}

impl Reloader {
    /// Reads the configuration again and applies what changed; returns the keys applied.
    pub async fn reload(&mut self) -> Vec<String> {
        let mut next = match crate::config::load(self.file.as_deref()) {
            Ok(loaded) => loaded.config,
            Err(e) => {
                warn!(error = %format!("{e:#}"), "configuration reload refused; the running configuration is unchanged");
                return Vec::new();
            }
        };
        // The command line's --log-format is not in the file; keep what is running.
        next.log.format = self.current.log.format;
        let changed = next.changed_keys(&self.current);
        let (mut live, mut later): (Vec<String>, Vec<String>) = changed
            .into_iter()
            .partition(|k| LIVE_KEYS.contains(&k.as_str()));
        if live.iter().any(|k| k == "log.level") {
            if let Err(e) = (self.set_log_level)(&next.log.level) {
                warn!(error = %e, "could not change the log level");
            }
        }
        if live.iter().any(|k| k.starts_with("sip.")) {
            self.sip
                .set_policy(Some(crate::serve::sip_policy(&next, &self.sip_users)));
        }
        // The ACD file's content may have changed under the same path: always read it again.
        let applied = match next.inbound.acd_config() {
            Ok(cfg) => self
                .runtime
                .reconfigure_acd(cfg)
                .await
                .map_err(|e| anyhow::anyhow!("inbound.acd: {}: {e}", next.inbound.acd)),
            Err(e) => Err(e),
        };
        match applied {
            Ok(changes) if !changes.is_empty() => {
                info!(event = "acd_reloaded", file = %next.inbound.acd, changes = %changes.join("; "), "ACD queues and routing profiles reloaded");
            }
            Ok(_) => {}
            Err(e) => {
                warn!(error = %format!("{e:#}"), "ACD configuration not applied; the running queues and routing profiles are unchanged");
                // A new path that failed stays as it was, so that the next reload tries again.
                if let Some(i) = live.iter().position(|k| k == "inbound.acd") {
                    later.push(live.remove(i));
                }
            }
        }
        if later.iter().any(|k| k != "inbound.acd") {
            warn!(keys = ?later.iter().filter(|k| *k != "inbound.acd").collect::<Vec<_>>(), "changed configuration keys take effect after a restart");
        }
        info!(event = "config_reloaded", applied = ?live, "configuration reloaded");
        // Keys that need a restart stay as they run, so that a later reload names them again.
        for key in &later {
            if let Some(v) = self
                .current
                .flatten()
                .into_iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v)
            {
                next = next.with_key(key, v);
            }
        }
        self.current = next;
        live
    }
}
