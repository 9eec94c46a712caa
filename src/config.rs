//! The appliance's configuration: one TOML file plus `DIALBRIDGE_*` environment overrides.
//!
//! Precedence: built-in defaults < the file (`--config PATH`, else `./dialbridge.toml` when it
//! exists) < environment variables. An environment variable names a key by its dotted path in
//! upper case with `_` for `.`: `DIALBRIDGE_DATABASE_URL` sets `database.url`. Unknown keys, in
//! the file or the environment, and bad values stop the appliance with a message naming the key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

/// Environment variables with the prefix that are not configuration keys (besides the
/// `DIALBRIDGE_TEST_*` variables of the test harness).
const NON_CONFIG_ENV: &[&str] = &[
    "DIALBRIDGE_ADMIN_PASSWORD",
    "DIALBRIDGE_USER_PASSWORD",
    "DIALBRIDGE_BENCH_KEY",
];
const TEST_ENV_PREFIX: &str = "DIALBRIDGE_TEST_";
const ENV_PREFIX: &str = "DIALBRIDGE_";
const DEFAULT_FILE: &str = "dialbridge.toml";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the embedded database, recordings and uploads live.
    pub data_dir: PathBuf,
    /// This node's name in shared records (call records, leases of work). Empty: the host name.
    /// Nodes sharing one PostgreSQL database must have different names.
    pub node_name: String,
    pub database: Database,
    pub http: Http,
    pub sip: Sip,
    pub rtp: Rtp,
    pub log: Log,
    pub shutdown: Shutdown,
    pub api: Api,
    pub bridge: Bridge,
    pub inbound: Inbound,
    pub dialer: Dialer,
    /// Webhooks to the CRM (`docs/webhooks.md`): `[integrations.webhooks.<name>]` subscriptions.
    /// An `https://` receiver is verified against its `ca_file` (PEM CA certificates, read when
    /// the configuration is checked), else the system's trusted roots.
    pub integrations: web::integrations::IntegrationsConfig,
    /// Call recordings: retention.
    pub recordings: web::recordings::RecordingsConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Api {
    /// Requests per second each API key may make (per node); more get 429.
    pub rate_limit_per_s: u32,
    /// Requests a key may make at once above the steady rate.
    pub rate_limit_burst: u32,
}

impl Default for Api {
    fn default() -> Self {
        Self {
            rate_limit_per_s: 2000,
            rate_limit_burst: 4000,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Bridge {
    /// Seconds between reaper runs (closing expired leases, wiping data, pool gauges).
    pub reaper_interval_s: u64,
    /// The legacy platform that calls are transferred to during a migration.
    pub legacy: Legacy,
}

impl Default for Bridge {
    fn default() -> Self {
        Self {
            reaper_interval_s: 5,
            legacy: Legacy::default(),
        }
    }
}

/// Outbound calls placed outside campaigns (`POST /api/v1/calls` without a campaign).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Dialer {
    /// The outbound trunk as a SIP URI, e.g. "sip:10.0.0.9:5060". Empty: single calls must name
    /// a campaign (whose trunk they use).
    pub trunk: String,
    /// Caller id of single calls.
    pub caller_id: String,
    /// Calls per second and calls at once on that trunk.
    pub cps: u32,
    pub max_concurrent: u32,
    /// Region for numbers written without a country code.
    pub region: String,
}

impl Default for Dialer {
    fn default() -> Self {
        Self {
            trunk: String::new(),
            caller_id: String::new(),
            cps: 5,
            max_concurrent: 50,
            region: "US".into(),
        }
    }
}

impl Dialer {
    /// The campaign-shaped defaults of single calls: informational purpose, the legal default
    /// window and limits (`dialer::campaign::ComplianceProfile::default`).
    pub fn single_call_defaults(&self) -> anyhow::Result<Option<dialer::campaign::CampaignConfig>> {
        if self.trunk.is_empty() {
            return Ok(None);
        }
        let config: dialer::campaign::CampaignConfig = serde_json::from_value(serde_json::json!({
            "lists": [{"list_id": 0}],
            "mode": "progressive",
            "purpose": "informational",
            "caller_id": self.caller_id,
            "queue": "default",
            "trunk": {"uri": self.trunk, "cps": self.cps, "max_concurrent": self.max_concurrent},
            "amd": "pass_to_agent",
            "safe_harbor": {"seller": "-", "callback_number": "-", "opt_out_key": "9", "prompt": "-"}
        }))?;
        config
            .validate()
            .map_err(|e| anyhow::anyhow!("invalid configuration at key `dialer`: {e}"))?;
        Ok(Some(config))
    }
}

/// Calls to the appliance's numbers: flows and the ACD.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Inbound {
    /// A JSON file with the ACD's queues and routing profiles (`{"queues": [...], "profiles":
    /// [...], "agents": []}`). Empty: one queue `default` and one routing profile `default`.
    pub acd: String,
    /// The text-to-speech voice for prompts given as text (espeak-ng voice names).
    pub tts_voice: String,
    /// SIP answer to a call for a number with no flow: 404 (not found) or 480 (unavailable).
    pub unknown_number_code: u16,
    /// Flow webhook names (e.g. a Lambda function name in an imported flow) → URL.
    pub webhooks: std::collections::BTreeMap<String, String>,
}

impl Default for Inbound {
    fn default() -> Self {
        Self {
            acd: String::new(),
            tts_voice: "en-us".into(),
            unknown_number_code: 404,
            webhooks: Default::default(),
        }
    }
}

impl Inbound {
    /// The ACD configuration: the file's, or the built-in single queue.
    pub fn acd_config(&self) -> anyhow::Result<inbound::acd::AcdConfig> {
        use inbound::acd::{AcdConfig, ProfileQueue, QueueConfig, RoutingProfileConfig};
        if self.acd.is_empty() {
            return Ok(AcdConfig {
                queues: vec![QueueConfig::new("default")],
                profiles: vec![RoutingProfileConfig {
                    name: "default".into(),
                    queues: vec![ProfileQueue {
                        queue: "default".into(),
                        priority: 1,
                        delay_s: 0,
                    }],
                    acw_s: 10,
                }],
                agents: Vec::new(),
            });
        }
        let text = std::fs::read_to_string(&self.acd)
            .with_context(|| format!("inbound.acd: cannot read {}", self.acd))?;
        let acd: AcdConfig = serde_json::from_str(&text).map_err(|e| {
            anyhow::anyhow!("inbound.acd: {} is not an ACD configuration: {e}", self.acd)
        })?;
        inbound::acd::Acd::new(&acd)
            .map_err(|e| anyhow::anyhow!("inbound.acd: {}: {e}", self.acd))?;
        Ok(acd)
    }
}

/// The legacy platform's SIP trunk, as flows' "transfer to legacy" steps use it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Legacy {
    /// `host:port` of the legacy PBX's SIP trunk. Empty: no legacy platform (transfers take the
    /// flow's error branch).
    pub trunk: String,
    /// "udp", "tcp" or "tls" (verified against `sip.tls_ca`, else the system roots).
    pub transport: String,
    /// "invite": a new call to the leased number, bridged by us; "refer": the caller is referred.
    pub mode: bridge::calls::LegacyTransferMode,
    /// Data also ride in SIP headers: "none", "uui" (RFC 7433 User-to-User) or "x-headers".
    pub carry: String,
    /// Prefix of the headers when `carry = "x-headers"`.
    pub header_prefix: String,
    pub ring_timeout_s: u64,
    /// Digest credentials when the legacy trunk challenges our INVITEs (empty: none).
    pub username: String,
    pub password: String,
}

impl Default for Legacy {
    fn default() -> Self {
        Self {
            trunk: String::new(),
            transport: "udp".into(),
            mode: bridge::calls::LegacyTransferMode::Invite,
            carry: "none".into(),
            header_prefix: "X-Dialbridge-".into(),
            ring_timeout_s: 30,
            username: String::new(),
            password: String::new(),
        }
    }
}

impl Legacy {
    /// The trunk for `bridge::calls::transfer_to_legacy`, or `None` when no legacy platform is set.
    pub fn trunk(&self) -> anyhow::Result<Option<bridge::calls::LegacyTrunk>> {
        use bridge::calls::HeaderCarriage;
        use telephony::sip::call::{Transport, Trunk};
        if self.trunk.is_empty() {
            return Ok(None);
        }
        let addr: SocketAddr = self.trunk.parse().map_err(|_| {
            anyhow::anyhow!("invalid configuration at key `bridge.legacy.trunk`: {:?} is not host:port (an IP address and a port)", self.trunk)
        })?;
        let transport = match self.transport.as_str() {
            "udp" => Transport::Udp,
            "tcp" => Transport::Tcp,
            "tls" => Transport::Tls,
            other => bail!(
                "invalid configuration at key `bridge.legacy.transport`: {other:?} is not \"udp\", \"tcp\" or \"tls\""
            ),
        };
        let carry = match self.carry.as_str() {
            "none" => HeaderCarriage::None,
            "uui" => HeaderCarriage::Uui,
            "x-headers" if self.header_prefix.starts_with("X-") && self.header_prefix.len() > 2 => {
                HeaderCarriage::XHeaders {
                    prefix: self.header_prefix.clone(),
                }
            }
            "x-headers" => bail!(
                "invalid configuration at key `bridge.legacy.header_prefix`: must start with \"X-\""
            ),
            other => bail!(
                "invalid configuration at key `bridge.legacy.carry`: {other:?} is not \"none\", \"uui\" or \"x-headers\""
            ),
        };
        if !(1..=300).contains(&self.ring_timeout_s) {
            bail!(
                "invalid configuration at key `bridge.legacy.ring_timeout_s`: between 1 and 300 seconds"
            );
        }
        let credentials =
            (!self.username.is_empty()).then(|| telephony::sip::digest::Credentials {
                username: self.username.clone(),
                password: self.password.clone(),
            });
        Ok(Some(bridge::calls::LegacyTrunk {
            trunk: Trunk {
                addr,
                transport,
                credentials,
            },
            mode: self.mode,
            ring_timeout: std::time::Duration::from_secs(self.ring_timeout_s),
            carry,
        }))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Database {
    /// Empty: SQLite at `<data_dir>/dialbridge.db`. `postgres://…` for the multi-node mode.
    pub url: String,
    pub max_connections: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Http {
    pub listen: SocketAddr,
    /// PEM certificate chain and private key: with both set the console and API are served over
    /// HTTPS only (and session cookies get `Secure`). Empty: plain HTTP.
    pub tls_cert: String,
    pub tls_key: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Sip {
    pub udp_listen: SocketAddr,
    pub tcp_listen: SocketAddr,
    /// Address for SDP `c=` and Contact when it differs from the bound one (NAT). Empty: bound.
    pub advertised_address: String,
    /// Larger messages are answered with 513.
    pub max_message_bytes: usize,
    /// Addresses (trunks, the legacy PBX) whose calls are accepted without authentication. Calls
    /// from anywhere else must authenticate as a registered endpoint, or are refused.
    pub trusted_addresses: Vec<std::net::IpAddr>,
    /// Digest realm for endpoints (desk phones, softphones).
    pub realm: String,
    /// SIP over TLS listener, e.g. "0.0.0.0:5061". Empty: no TLS listener (trunks over TLS can
    /// still be called).
    pub tls_listen: String,
    /// PEM certificate chain and private key of the TLS listener (also presented to TLS trunks
    /// that ask for a client certificate).
    pub tls_cert: String,
    pub tls_key: String,
    /// PEM CA certificates that TLS peers' certificates must chain to. Empty: the system's
    /// trusted roots.
    pub tls_ca: String,
    /// Multi-node: answered calls handed to an agent on another node go through this SIP proxy
    /// (Kamailio, "host:port" as an IP address and port). Empty: straight to the node.
    pub handoff_proxy: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Rtp {
    pub port_min: u16,
    pub port_max: u16,
    /// A call from which no RTP arrives for this many seconds is dead and is hung up. 0: never.
    /// (Phones that suppress silence on an idle nailed-up leg need it raised or off.)
    pub inactivity_timeout_s: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Log {
    /// `text` (human-readable) or `json` (one object per line).
    pub format: LogFormat,
    /// A tracing filter: `info`, `debug`, `dialbridge=debug,sqlx=warn`, …
    pub level: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Shutdown {
    /// Seconds that calls in progress get to finish after SIGTERM before they are ended.
    pub drain_s: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./data"),
            node_name: String::new(),
            database: Database::default(),
            http: Http::default(),
            sip: Sip::default(),
            rtp: Rtp::default(),
            log: Log::default(),
            shutdown: Shutdown::default(),
            api: Api::default(),
            bridge: Bridge::default(),
            inbound: Inbound::default(),
            dialer: Dialer::default(),
            integrations: Default::default(),
            recordings: Default::default(),
        }
    }
}

impl Default for Database {
    fn default() -> Self {
        Self {
            url: String::new(),
            max_connections: 16,
        }
    }
}

impl Default for Http {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".parse().expect("valid"),
            tls_cert: String::new(),
            tls_key: String::new(),
        }
    }
}

impl Default for Sip {
    fn default() -> Self {
        Self {
            udp_listen: "127.0.0.1:5060".parse().expect("valid"),
            tcp_listen: "127.0.0.1:5060".parse().expect("valid"),
            advertised_address: String::new(),
            max_message_bytes: 32 * 1024,
            trusted_addresses: vec!["127.0.0.1".parse().expect("valid")],
            realm: "dialbridge".into(),
            tls_listen: String::new(),
            tls_cert: String::new(),
            tls_key: String::new(),
            tls_ca: String::new(),
            handoff_proxy: String::new(),
        }
    }
}

impl Default for Rtp {
    fn default() -> Self {
        Self {
            port_min: 10_000,
            port_max: 20_000,
            inactivity_timeout_s: 30,
        }
    }
}

impl Default for Log {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

impl Default for Shutdown {
    fn default() -> Self {
        Self { drain_s: 5 }
    }
}

/// Where the configuration came from, for `config show` and the start-up log.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    pub file: Option<PathBuf>,
    pub env_keys: Vec<String>,
}

/// Loads the configuration from `path` (or the default file if present) and the process
/// environment.
pub fn load(path: Option<&Path>) -> anyhow::Result<Loaded> {
    let env: Vec<(String, String)> = std::env::vars().collect();
    load_from(path, &env)
}

pub fn load_from(path: Option<&Path>, env: &[(String, String)]) -> anyhow::Result<Loaded> {
    let file = match path {
        Some(p) => Some(p.to_path_buf()),
        None => Path::new(DEFAULT_FILE)
            .exists()
            .then(|| PathBuf::from(DEFAULT_FILE)),
    };
    let mut value = match &file {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read config file {}", p.display()))?;
            let table: toml::Table = toml::from_str(&text)
                .map_err(|e| anyhow::anyhow!("config file {}: {e}", p.display()))?;
            toml::Value::Table(table)
        }
        None => toml::Value::Table(Default::default()),
    };
    let env_keys = apply_env(&mut value, env)?;
    let config: Config = serde_path_to_error::deserialize(value).map_err(|e| {
        let origin = file
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "environment".into());
        let path = e.path().to_string();
        let key = if path == "." {
            String::new()
        } else {
            format!(" at key `{path}`")
        };
        anyhow::anyhow!("invalid configuration ({origin}){key}: {}", e.into_inner())
    })?;
    config.validate()?;
    Ok(Loaded {
        config,
        file,
        env_keys,
    })
}

/// Every dotted key the configuration knows, with its default value (for typing env values).
fn known_keys() -> Vec<(String, toml::Value)> {
    Config::default().flatten()
}

impl Config {
    /// Every dotted key with its value in this configuration.
    pub fn flatten(&self) -> Vec<(String, toml::Value)> {
        fn walk(prefix: &str, v: &toml::Value, out: &mut Vec<(String, toml::Value)>) {
            match v {
                toml::Value::Table(t) => {
                    for (k, v) in t {
                        let key = if prefix.is_empty() {
                            k.clone()
                        } else {
                            format!("{prefix}.{k}")
                        };
                        walk(&key, v, out);
                    }
                }
                _ => out.push((prefix.to_owned(), v.clone())),
            }
        }
        let value = toml::Value::try_from(self).expect("config serializes");
        let mut out = Vec::new();
        walk("", &value, &mut out);
        out
    }

    /// This configuration with one dotted key set to `value` (a value it held before).
    pub fn with_key(self, key: &str, value: toml::Value) -> Config {
        let mut v = toml::Value::try_from(&self).expect("config serializes");
        set_path(&mut v, key, value);
        v.try_into().unwrap_or(self)
    }

    /// The dotted keys whose values differ between `self` and `other`.
    pub fn changed_keys(&self, other: &Config) -> Vec<String> {
        let theirs: std::collections::HashMap<String, toml::Value> =
            other.flatten().into_iter().collect();
        self.flatten()
            .into_iter()
            .filter(|(k, v)| theirs.get(k) != Some(v))
            .map(|(k, _)| k)
            .collect()
    }
}

fn apply_env(value: &mut toml::Value, env: &[(String, String)]) -> anyhow::Result<Vec<String>> {
    let known = known_keys();
    let mut applied = Vec::new();
    for (name, raw) in env {
        let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        if NON_CONFIG_ENV.contains(&name.as_str()) || name.starts_with(TEST_ENV_PREFIX) {
            continue;
        }
        let Some((key, default)) = known
            .iter()
            .find(|(k, _)| k.replace('.', "_").eq_ignore_ascii_case(rest))
        else {
            bail!("unknown configuration key in environment variable {name}");
        };
        let parsed = match default {
            toml::Value::String(_) => toml::Value::String(raw.clone()),
            toml::Value::Integer(_) => toml::Value::Integer(raw.trim().parse().map_err(|_| {
                anyhow::anyhow!(
                    "invalid configuration in {name} (key `{key}`): {raw:?} is not an integer"
                )
            })?),
            toml::Value::Boolean(_) => toml::Value::Boolean(raw.trim().parse().map_err(|_| {
                anyhow::anyhow!(
                    "invalid configuration in {name} (key `{key}`): {raw:?} is not true or false"
                )
            })?),
            _ => toml::from_str::<toml::Table>(&format!("v = {raw}"))
                .ok()
                .and_then(|mut t| t.remove("v"))
                .with_context(|| {
                    format!("invalid configuration in {name} (key `{key}`): {raw:?}")
                })?,
        };
        set_path(value, key, parsed);
        applied.push(key.clone());
    }
    Ok(applied)
}

fn set_path(value: &mut toml::Value, key: &str, new: toml::Value) {
    let mut cur = value;
    let parts: Vec<&str> = key.split('.').collect();
    for part in &parts[..parts.len() - 1] {
        let table = cur.as_table_mut().expect("config root is a table");
        cur = table
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(Default::default()));
    }
    if let Some(t) = cur.as_table_mut() {
        t.insert(parts[parts.len() - 1].to_owned(), new);
    }
}

impl Config {
    fn validate(&self) -> anyhow::Result<()> {
        if self.rtp.port_min == 0 || self.rtp.port_min > self.rtp.port_max {
            bail!(
                "invalid configuration at key `rtp.port_min`: {} must be ≥ 1 and ≤ rtp.port_max ({})",
                self.rtp.port_min,
                self.rtp.port_max
            );
        }
        if self.rtp.port_max - self.rtp.port_min < 1 {
            bail!(
                "invalid configuration at key `rtp.port_max`: the RTP range needs at least one even/odd port pair"
            );
        }
        if !self.sip.handoff_proxy.is_empty()
            && self.sip.handoff_proxy.parse::<SocketAddr>().is_err()
        {
            bail!(
                "invalid configuration at key `sip.handoff_proxy`: {:?} is not an IP address and port such as \"127.0.0.1:5060\"",
                self.sip.handoff_proxy
            );
        }
        if !(512..=65_535).contains(&self.sip.max_message_bytes) {
            bail!(
                "invalid configuration at key `sip.max_message_bytes`: must be between 512 and 65535"
            );
        }
        if !self.database.url.is_empty() {
            foundation::Backend::from_url(&self.database.url)
                .map_err(|e| anyhow::anyhow!("invalid configuration at key `database.url`: {e}"))?;
        }
        if self.database.max_connections == 0 {
            bail!("invalid configuration at key `database.max_connections`: must be at least 1");
        }
        if self.api.rate_limit_per_s == 0 || self.api.rate_limit_burst == 0 {
            bail!(
                "invalid configuration at key `api.rate_limit_per_s`: rate and burst must be at least 1"
            );
        }
        if !(1..=3600).contains(&self.bridge.reaper_interval_s) {
            bail!(
                "invalid configuration at key `bridge.reaper_interval_s`: between 1 and 3600 seconds"
            );
        }
        self.bridge.legacy.trunk()?;
        self.inbound.acd_config()?;
        self.dialer.single_call_defaults()?;
        // These answer "key: what is wrong".
        let keyed = |e: String| {
            let (key, what) = e.split_once(": ").unwrap_or((e.as_str(), "invalid"));
            anyhow::anyhow!("invalid configuration at key `{key}`: {what}")
        };
        self.integrations.validate().map_err(keyed)?;
        self.recordings.validate().map_err(keyed)?;
        if importers::phone::Normalizer::new(&self.dialer.region).is_err() {
            bail!(
                "invalid configuration at key `dialer.region`: {:?} is not a region code like \"US\"",
                self.dialer.region
            );
        }
        if !matches!(self.inbound.unknown_number_code, 404 | 480 | 403 | 503) {
            bail!(
                "invalid configuration at key `inbound.unknown_number_code`: use 404, 480, 403 or 503"
            );
        }
        for (name, url) in &self.inbound.webhooks {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                bail!(
                    "invalid configuration at key `inbound.webhooks.{name}`: {url:?} is not an http(s) URL"
                );
            }
        }
        if let Some(tls) = self.sip_tls()? {
            tls.build().map_err(|e| {
                anyhow::anyhow!(
                    "invalid configuration at key `sip.tls_{}`: {}",
                    e.key,
                    e.message
                )
            })?;
        }
        if self.http.tls_cert.is_empty() != self.http.tls_key.is_empty() {
            bail!(
                "invalid configuration at key `http.tls_cert`: set both http.tls_cert and http.tls_key, or neither"
            );
        }
        if self.shutdown.drain_s > 3600 {
            bail!("invalid configuration at key `shutdown.drain_s`: at most 3600 seconds");
        }
        tracing_subscriber::EnvFilter::try_new(&self.log.level)
            .map_err(|e| anyhow::anyhow!("invalid configuration at key `log.level`: {e}"))?;
        Ok(())
    }

    /// This node's name: `node_name`, else the host name.
    pub fn node(&self) -> String {
        if !self.node_name.is_empty() {
            return self.node_name.clone();
        }
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "dialbridge".to_owned())
    }

    /// The database URL in effect (the SQLite default resolved under the data directory).
    pub fn database_url(&self) -> String {
        if self.database.url.is_empty() {
            format!("sqlite://{}", self.data_dir.join("dialbridge.db").display())
        } else {
            self.database.url.clone()
        }
    }

    /// The effective configuration as TOML with secrets masked.
    pub fn to_masked_toml(&self) -> String {
        let mut value = toml::Value::try_from(self).expect("config serializes");
        mask(&mut value);
        toml::to_string_pretty(&value).expect("config serializes")
    }

    /// The SIP layer's TLS settings (`sip.tls_*`), or `None` when none is set.
    pub fn sip_tls(&self) -> anyhow::Result<Option<telephony::sip::tls::TlsOptions>> {
        use telephony::sip::tls::{TlsOptions, Verify};
        let s = &self.sip;
        if s.tls_listen.is_empty()
            && s.tls_cert.is_empty()
            && s.tls_key.is_empty()
            && s.tls_ca.is_empty()
        {
            return Ok(None);
        }
        let listen = match s.tls_listen.as_str() {
            "" => None,
            l => Some(l.parse::<SocketAddr>().map_err(|_| {
                anyhow::anyhow!(
                    "invalid configuration at key `sip.tls_listen`: {l:?} is not an address:port such as \"0.0.0.0:5061\""
                )
            })?),
        };
        if listen.is_some() && (s.tls_cert.is_empty() || s.tls_key.is_empty()) {
            bail!(
                "invalid configuration at key `sip.tls_cert`: sip.tls_listen needs sip.tls_cert and sip.tls_key"
            );
        }
        if s.tls_cert.is_empty() != s.tls_key.is_empty() {
            bail!(
                "invalid configuration at key `sip.tls_cert`: set both sip.tls_cert and sip.tls_key, or neither"
            );
        }
        let path = |p: &str| (!p.is_empty()).then(|| PathBuf::from(p));
        Ok(Some(TlsOptions {
            listen,
            cert: path(&s.tls_cert),
            key: path(&s.tls_key),
            verify: match path(&s.tls_ca) {
                Some(ca) => Verify::CaFile(ca),
                None => Verify::SystemRoots,
            },
        }))
    }

    pub fn telephony(&self) -> telephony::Config {
        telephony::Config {
            udp: self.sip.udp_listen,
            tcp: self.sip.tcp_listen,
            advertised_address: Some(self.sip.advertised_address.clone()).filter(|a| !a.is_empty()),
            rtp_ports: (self.rtp.port_min, self.rtp.port_max),
            max_message_bytes: self.sip.max_message_bytes,
        }
    }
}

fn mask(v: &mut toml::Value) {
    if let toml::Value::Table(t) = v {
        for (k, v) in t.iter_mut() {
            let secret = ["password", "secret", "token"]
                .iter()
                .any(|s| k.contains(s));
            match v {
                toml::Value::String(s) if secret && !s.is_empty() => *s = "***".into(),
                toml::Value::String(s) if k == "url" => *s = foundation::db::redact_url(s),
                _ => mask(v),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    fn file(text: &str) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), text).unwrap();
        f
    }

    #[test]
    fn defaults_are_good_enough_to_start() {
        let c = load_from(None, &[]).unwrap().config;
        assert_eq!(c.http.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.sip.udp_listen.port(), 5060);
        assert_eq!(c.database_url(), "sqlite://./data/dialbridge.db");
    }

    #[test]
    fn the_sample_file_is_valid_and_matches_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/dialbridge.toml");
        let sample = load_from(Some(&path), &[]).unwrap().config;
        assert_eq!(
            toml::to_string(&sample).unwrap(),
            toml::to_string(&Config::default()).unwrap(),
            "deploy/dialbridge.toml should document the defaults"
        );
    }

    #[test]
    fn a_misspelled_key_is_named() {
        let f = file("[http]\nlisten = \"127.0.0.1:1\"\nlistn = \"x\"\n");
        let err = load_from(Some(f.path()), &[]).unwrap_err().to_string();
        assert!(err.contains("listn") && err.contains("http"), "{err}");
        let f = file("[htp]\nlisten = \"127.0.0.1:1\"\n");
        let err = load_from(Some(f.path()), &[]).unwrap_err().to_string();
        assert!(err.contains("htp"), "{err}");
    }

    #[test]
    fn a_bad_value_is_named() {
        let f = file("[sip]\nudp_listen = \"not an address\"\n");
        let err = load_from(Some(f.path()), &[]).unwrap_err().to_string();
        assert!(err.contains("sip.udp_listen"), "{err}");
        let f = file("[rtp]\nport_min = 30000\nport_max = 20000\n");
        let err = load_from(Some(f.path()), &[]).unwrap_err().to_string();
        assert!(err.contains("rtp.port_min"), "{err}");
        let err = load_from(None, &env(&[("DIALBRIDGE_RTP_PORT_MIN", "ten")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("rtp.port_min") && err.contains("ten"), "{err}");
        let err = load_from(None, &env(&[("DIALBRIDGE_DATABASE_URL", "mysql://x")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("database.url"), "{err}");
    }

    #[test]
    fn sip_tls_settings_are_checked_and_named() {
        let err = |text: &str| {
            load_from(Some(file(text).path()), &[])
                .unwrap_err()
                .to_string()
        };
        let e = err("[sip]\ntls_listen = \"5061\"\n");
        assert!(e.contains("sip.tls_listen"), "{e}");
        let e = err("[sip]\nhandoff_proxy = \"kamailio\"\n");
        assert!(e.contains("sip.handoff_proxy"), "{e}");
        let e = err("[sip]\ntls_listen = \"127.0.0.1:5061\"\n");
        assert!(e.contains("sip.tls_cert"), "{e}");
        let e = err("[sip]\ntls_cert = \"/nonexistent/c.pem\"\n");
        assert!(e.contains("sip.tls_cert"), "{e}");
        let e = err(
            "[sip]\ntls_listen = \"127.0.0.1:5061\"\ntls_cert = \"/nonexistent/c.pem\"\ntls_key = \"/nonexistent/k.pem\"\n",
        );
        assert!(
            e.contains("sip.tls_cert") && e.contains("/nonexistent/c.pem"),
            "{e}"
        );
        let e = err("[sip]\ntls_ca = \"/nonexistent/ca.pem\"\n");
        assert!(e.contains("sip.tls_ca"), "{e}");
        let e = err("[bridge.legacy]\ntrunk = \"127.0.0.1:5061\"\ntransport = \"sctp\"\n");
        assert!(e.contains("bridge.legacy.transport"), "{e}");
        let f = file("[bridge.legacy]\ntrunk = \"127.0.0.1:5061\"\ntransport = \"tls\"\n");
        let c = load_from(Some(f.path()), &[]).unwrap().config;
        let t = c.bridge.legacy.trunk().unwrap().unwrap();
        assert_eq!(t.trunk.transport, telephony::sip::call::Transport::Tls);
        assert!(Config::default().sip_tls().unwrap().is_none());
    }

    #[test]
    fn environment_overrides_the_file_and_unknown_variables_fail() {
        let f = file("[http]\nlisten = \"127.0.0.1:1111\"\n[shutdown]\ndrain_s = 7\n");
        let l = load_from(
            Some(f.path()),
            &env(&[
                ("DIALBRIDGE_HTTP_LISTEN", "127.0.0.1:2222"),
                ("DIALBRIDGE_SIP_ADVERTISED_ADDRESS", "203.0.113.5"),
                ("DIALBRIDGE_ADMIN_PASSWORD", "not config"),
                ("DIALBRIDGE_TEST_PG", "test harness"),
                ("OTHER", "ignored"),
            ]),
        )
        .unwrap();
        assert_eq!(l.config.http.listen.port(), 2222);
        assert_eq!(l.config.shutdown.drain_s, 7);
        assert_eq!(l.config.sip.advertised_address, "203.0.113.5");
        assert_eq!(l.env_keys.len(), 2);
        let err = load_from(None, &env(&[("DIALBRIDGE_HTTP_LISTN", "x")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("DIALBRIDGE_HTTP_LISTN"), "{err}");
    }

    #[test]
    fn secrets_are_masked_in_show() {
        let mut c = Config::default();
        c.database.url = "postgres://dial:hunter2@db/dial".into();
        let shown = c.to_masked_toml();
        assert!(
            !shown.contains("hunter2") && shown.contains("dial:***@db"),
            "{shown}"
        );
    }

    #[test]
    fn webhook_subscriptions_are_checked_by_key_and_their_secrets_masked() {
        let good = file(
            "[integrations.webhooks.crm]\nurl = \"http://127.0.0.1:9000/hook\"\n\
             secret = \"0123456789abcdef-secret\"\nevents = [\"contact.ended\", \"lead.dnc\"]\n\
             [recordings]\nretention_days = 30\n",
        );
        let c = load_from(Some(good.path()), &[]).unwrap().config;
        assert_eq!(c.integrations.webhooks["crm"].max_attempts, 8);
        assert_eq!(c.recordings.retention_days, 30);
        let shown = c.to_masked_toml();
        assert!(!shown.contains("0123456789abcdef-secret"), "{shown}");
        for (text, key) in [
            (
                "[integrations.webhooks.crm]\nurl = \"ftp://crm\"\nsecret = \"0123456789abcdef\"\n",
                "`integrations.webhooks.crm.url`",
            ),
            (
                "[integrations.webhooks.crm]\nurl = \"https://crm\"\nca_file = \"/nonexistent/crm-ca.pem\"\nsecret = \"0123456789abcdef\"\n",
                "`integrations.webhooks.crm.ca_file`",
            ),
            (
                "[integrations.webhooks.crm]\nurl = \"http://crm\"\nsecret = \"short\"\n",
                "`integrations.webhooks.crm.secret`",
            ),
            (
                "[integrations.webhooks.crm]\nurl = \"http://crm\"\nsecret = \"0123456789abcdef\"\nevents = [\"call.ended\"]\n",
                "`integrations.webhooks.crm.events`",
            ),
            (
                "[recordings]\nsweep_interval_s = 0\n",
                "`recordings.sweep_interval_s`",
            ),
        ] {
            let f = file(text);
            let e = load_from(Some(f.path()), &[]).unwrap_err().to_string();
            assert!(e.contains(key), "{key}: {e}");
        }
    }
}
