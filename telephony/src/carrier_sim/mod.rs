//! The carrier simulator (`dialbridge carrier-sim`): a real SIP trunk on loopback for demos and
//! tests, so the appliance can dial without a carrier of its own.
//!
//! Each inbound INVITE gets a class ([`picker`]: agent-phone prefix, else a per-number rule on
//! the last digit, else a seeded draw by shares) and is played out by a [`persona`] (sans-IO):
//! humans say "hello?", stay for the talk time and may press a DTMF key; answering machines
//! play a greeting ending in a beep; busy numbers answer 486; unanswered ones ring until the
//! caller gives up (or 480 after `no_answer_after`); agent phones answer and stay until BYE
//! (nailed-up agent legs), sending quiet line noise (20 ms PCMU frames) for the whole call. The voices are espeak-ng speech cached on disk, or tones when
//! espeak-ng/sox are missing ([`audio`]). Every call ends with one [`CallRecord`]; the
//! [`Counters`] keep totals by class and by ending.
//!
//! The driver here is thin: it feeds call events and timer expiries to the persona and carries
//! out its actions through [`crate::control`].
//!
//! # Measured (release build, 2 shared cores, loopback)
//!
//! 1,000 sipp calls (`-sn uac -r 50 -d 5000`, ≈ 250 at once), every one a human saying
//! "hello?": 1,000 successful, 0 failed; 2 s of CPU in all (≈ 8 % of one core), 28 MB RSS.
//! Speech generation at first start (espeak-ng + sox, two clips): ≈ 0.2 s; cached afterwards.

pub mod audio;
pub mod persona;
pub mod picker;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use foundation::lifecycle::Lifecycle;
use serde::Serialize;
use tokio::sync::mpsc;

use crate::control::{Call, Calls, ControlConfig, EndCause, Event};
use crate::media::prompt::Prompt;
use crate::sip::call::HangupCause;
use crate::sip::listener::{self, SipOptions};

pub use audio::{AudioSource, Clips};
pub use persona::{Class, Plan};
pub use picker::{LastDigitRule, Shares};

use persona::{Action, Clip, Input, Persona};
use picker::Picker;

/// Everything the simulator is told.
#[derive(Debug, Clone)]
pub struct CarrierSimConfig {
    /// SIP address, UDP and TCP (port 0: any free port).
    pub listen: SocketAddr,
    /// RTP ports, inclusive (kept apart from the appliance's own range).
    pub rtp_ports: (u16, u16),
    pub shares: Shares,
    /// Per-number overrides by last digit (empty: shares only).
    pub rule: LastDigitRule,
    /// Calls to users starting with this are agent phones (answer and stay).
    pub agent_prefix: Option<String>,
    pub plan: Plan,
    pub seed: u64,
    /// Where generated speech is cached.
    pub audio_dir: PathBuf,
    /// Hang up a call whose RTP stopped for this long (`None`: never).
    pub rtp_inactivity: Option<Duration>,
}

impl Default for CarrierSimConfig {
    fn default() -> Self {
        CarrierSimConfig {
            listen: "127.0.0.1:5090".parse().expect("valid"),
            rtp_ports: (40000, 40999),
            shares: Shares::default(),
            rule: LastDigitRule::default(),
            agent_prefix: None,
            plan: Plan::default(),
            seed: 1,
            audio_dir: default_audio_dir(),
            rtp_inactivity: None,
        }
    }
}

/// `$XDG_CACHE_HOME/dialbridge/carrier-sim`, else `~/.cache/...`, else the temp directory.
pub fn default_audio_dir() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
        .join("dialbridge")
        .join("carrier-sim")
}

impl CarrierSimConfig {
    /// Refuses settings the simulator cannot honour, naming them.
    pub fn validate(&self) -> anyhow::Result<()> {
        self.shares.validate().map_err(anyhow::Error::msg)?;
        anyhow::ensure!(
            self.rtp_ports.0 > 0 && self.rtp_ports.0 < self.rtp_ports.1,
            "rtp_ports must be a range low < high, got {:?}",
            self.rtp_ports
        );
        if let Some((key, _)) = self.plan.press {
            anyhow::ensure!(
                key.is_ascii_digit() || matches!(key, '*' | '#' | 'A'..='D'),
                "the DTMF key to press must be 0-9, *, # or A-D, got {key:?}"
            );
        }
        Ok(())
    }
}

/// The command-line flags as given (`dialbridge carrier-sim --help` documents them); turned into
/// a [`CarrierSimConfig`] by [`Flags::into_config`], which names the flag at fault.
#[derive(Debug, Clone)]
pub struct Flags {
    pub listen: SocketAddr,
    pub human: f64,
    pub machine: f64,
    pub busy: f64,
    pub no_answer: f64,
    pub talk_s: f64,
    pub seed: u64,
    pub by_last_digit: Option<String>,
    pub press: Option<char>,
    pub press_after_s: f64,
    pub agent_prefix: Option<String>,
    pub ring_s: f64,
    pub no_answer_after_s: f64,
    /// `LOW-HIGH`.
    pub rtp_ports: String,
    pub audio_dir: Option<PathBuf>,
}

impl Flags {
    pub fn into_config(self) -> anyhow::Result<CarrierSimConfig> {
        let secs = |name: &str, v: f64| -> anyhow::Result<Duration> {
            anyhow::ensure!(
                v.is_finite() && v >= 0.0,
                "--{name} must be a non-negative number of seconds, got {v}"
            );
            Ok(Duration::from_secs_f64(v))
        };
        let rtp_ports = self
            .rtp_ports
            .split_once('-')
            .and_then(|(a, b)| Some((a.trim().parse::<u16>().ok()?, b.trim().parse::<u16>().ok()?)))
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "--rtp-ports must be LOW-HIGH, e.g. 40000-40999, got {:?}",
                    self.rtp_ports
                )
            })?;
        let rule = match &self.by_last_digit {
            Some(r) => {
                LastDigitRule::parse(r).map_err(|e| anyhow::anyhow!("--by-last-digit: {e}"))?
            }
            None => LastDigitRule::default(),
        };
        let config = CarrierSimConfig {
            listen: self.listen,
            rtp_ports,
            shares: Shares {
                human: self.human,
                machine: self.machine,
                busy: self.busy,
                no_answer: self.no_answer,
            },
            rule,
            agent_prefix: self.agent_prefix,
            plan: Plan {
                ring: secs("ring-s", self.ring_s)?,
                busy_after: Plan::default().busy_after,
                no_answer_after: secs("no-answer-after-s", self.no_answer_after_s)?,
                talk: secs("talk-s", self.talk_s)?,
                press: match self.press {
                    Some(k) => Some((k, secs("press-after-s", self.press_after_s)?)),
                    None => None,
                },
            },
            seed: self.seed,
            audio_dir: self.audio_dir.unwrap_or_else(default_audio_dir),
            rtp_inactivity: None,
        };
        config.validate()?;
        Ok(config)
    }
}

/// How a call ended, from the simulator's side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Ending {
    /// We hung up (talk time over, machine done recording).
    Completed,
    /// The caller hung up after the answer.
    CallerHungUp,
    /// The caller gave up while it rang.
    CallerCancelled,
    /// We refused it (486 busy, 480 no answer).
    Refused,
    /// Anything else (media failure, shutdown, timeouts).
    Failed,
}

/// One finished call.
#[derive(Debug, Clone, Serialize)]
pub struct CallRecord {
    pub call: u64,
    pub from: String,
    pub to: String,
    pub class: Class,
    pub answered: bool,
    pub ending: Ending,
    /// The final SIP code when the call was refused or failed.
    pub code: Option<u16>,
    /// The DTMF key sent, if any.
    pub pressed: Option<char>,
    pub duration_ms: u64,
    /// Why it failed (for `Failed`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Running totals.
#[derive(Debug, Default)]
pub struct Counters {
    by_class: [AtomicU64; 5],
    answered: AtomicU64,
    completed: AtomicU64,
    caller_hung_up: AtomicU64,
    caller_cancelled: AtomicU64,
    refused: AtomicU64,
    failed: AtomicU64,
    dtmf_sent: AtomicU64,
    active: AtomicU64,
}

/// A copy of the totals, printable as JSON.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CountersSnapshot {
    pub calls: u64,
    pub human: u64,
    pub machine: u64,
    pub busy: u64,
    pub no_answer: u64,
    pub agent: u64,
    pub answered: u64,
    pub completed: u64,
    pub caller_hung_up: u64,
    pub caller_cancelled: u64,
    pub refused: u64,
    pub failed: u64,
    pub dtmf_sent: u64,
    pub active: u64,
}

fn class_index(c: Class) -> usize {
    Class::ALL.iter().position(|x| *x == c).expect("listed")
}

impl Counters {
    fn record(&self, r: &CallRecord) {
        let c = match r.ending {
            Ending::Completed => &self.completed,
            Ending::CallerHungUp => &self.caller_hung_up,
            Ending::CallerCancelled => &self.caller_cancelled,
            Ending::Refused => &self.refused,
            Ending::Failed => &self.failed,
        };
        c.fetch_add(1, Ordering::Relaxed);
        if r.answered {
            self.answered.fetch_add(1, Ordering::Relaxed);
        }
        if r.pressed.is_some() {
            self.dtmf_sent.fetch_add(1, Ordering::Relaxed);
        }
        self.active.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> CountersSnapshot {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let by = |c| get(&self.by_class[class_index(c)]);
        CountersSnapshot {
            calls: self.by_class.iter().map(get).sum(),
            human: by(Class::Human),
            machine: by(Class::Machine),
            busy: by(Class::Busy),
            no_answer: by(Class::NoAnswer),
            agent: by(Class::Agent),
            answered: get(&self.answered),
            completed: get(&self.completed),
            caller_hung_up: get(&self.caller_hung_up),
            caller_cancelled: get(&self.caller_cancelled),
            refused: get(&self.refused),
            failed: get(&self.failed),
            dtmf_sent: get(&self.dtmf_sent),
            active: get(&self.active),
        }
    }
}

/// A running simulator.
pub struct CarrierSim {
    pub udp_addr: SocketAddr,
    pub tcp_addr: SocketAddr,
    /// Where the voices came from (speech, or tones and why).
    pub audio: AudioSource,
    counters: Arc<Counters>,
    records: mpsc::UnboundedReceiver<CallRecord>,
    lifecycle: Lifecycle,
}

impl CarrierSim {
    pub fn counters(&self) -> CountersSnapshot {
        self.counters.snapshot()
    }

    /// The next finished call.
    pub async fn next_record(&mut self) -> Option<CallRecord> {
        self.records.recv().await
    }

    /// Stops taking calls (the SIP layer drains).
    pub fn stop(&self) {
        self.lifecycle.start_draining();
    }
}

struct Voices {
    hello: Prompt,
    greeting: Prompt,
}

/// Loads the voices (generating them on first use) and binds the trunk.
pub async fn start(config: CarrierSimConfig, lifecycle: Lifecycle) -> anyhow::Result<CarrierSim> {
    config.validate()?;
    let dir = config.audio_dir.clone();
    let clips = tokio::task::spawn_blocking(move || Clips::load(&dir)).await?;
    if let AudioSource::Tones { why } = &clips.source {
        tracing::warn!(%why, "carrier-sim speaks in tones, not speech");
    }
    let voices = Arc::new(Voices {
        hello: clips.hello_prompt(),
        greeting: clips.greeting_prompt(),
    });
    let sip_config = crate::Config {
        udp: config.listen,
        tcp: config.listen,
        advertised_address: None,
        rtp_ports: config.rtp_ports,
        max_message_bytes: 16 * 1024,
    };
    let options = SipOptions {
        auto_answer: None,
        user_agent: format!("Dialbridge-carrier-sim/{}", env!("CARGO_PKG_VERSION")),
        ..SipOptions::default()
    };
    let sip = listener::start_with(&sip_config, options, lifecycle.clone()).await?;
    let control = ControlConfig {
        media_ip: if config.listen.ip().is_unspecified() {
            ControlConfig::default().media_ip
        } else {
            config.listen.ip()
        },
        inactivity_timeout: config.rtp_inactivity,
        inband_dtmf: false,
        jitter_depth: 3,
    };
    let (calls, mut incoming) = Calls::start(sip.handle.clone(), control);
    let counters = Arc::new(Counters::default());
    let (tx, records) = mpsc::unbounded_channel();
    let picker = Arc::new(Mutex::new(Picker::new(
        config.shares,
        config.rule.clone(),
        config.agent_prefix.clone(),
        config.seed,
    )));
    let plan = config.plan.clone();
    let c2 = counters.clone();
    tokio::spawn(async move {
        let _calls = calls;
        while let Some(call) = incoming.next().await {
            let user = called_user(&call);
            let class = picker.lock().expect("picker").pick(&user);
            c2.by_class[class_index(class)].fetch_add(1, Ordering::Relaxed);
            c2.active.fetch_add(1, Ordering::Relaxed);
            let (voices, plan, counters, tx) =
                (voices.clone(), plan.clone(), c2.clone(), tx.clone());
            tokio::spawn(async move {
                let record = run_call(call, user, Persona::new(class, plan), &voices).await;
                counters.record(&record);
                let _ = tx.send(record);
            });
        }
    });
    Ok(CarrierSim {
        udp_addr: sip.udp_addr,
        tcp_addr: sip.tcp_addr,
        audio: clips.source,
        counters,
        records,
        lifecycle,
    })
}

/// The Request-URI user (what was dialled), else the To user.
fn called_user(call: &Call) -> String {
    let info = call.info();
    uri_user(&info.request_uri)
        .unwrap_or_else(|| uri_user(&info.to).unwrap_or_else(|| info.to.clone()))
}

/// The user part of the first `sip:`/`sips:` URI in a header value or URI (`"A" <sip:123@h>;tag=x`
/// gives `123`).
fn uri_user(s: &str) -> Option<String> {
    let at = s
        .find("sip:")
        .map(|i| i + 4)
        .or_else(|| s.find("sips:").map(|i| i + 5))?;
    let rest = &s[at..];
    let end = rest.find(['@', '>', ';', ' ']).unwrap_or(rest.len());
    (rest[end..].starts_with('@') && end > 0).then(|| rest[..end].to_string())
}

/// Plays one call out: persona decisions in, control commands out.
async fn run_call(mut call: Call, to: String, mut persona: Persona, voices: &Voices) -> CallRecord {
    let started = Instant::now();
    let ctl = call.control().clone();
    let mut record = CallRecord {
        call: call.id().0,
        from: uri_user(&call.info().from).unwrap_or_else(|| call.info().from.clone()),
        to,
        class: persona.class(),
        answered: false,
        ending: Ending::Failed,
        code: None,
        pressed: None,
        duration_ms: 0,
        detail: None,
    };
    let mut pending = persona.on(Input::Offered, Instant::now());
    loop {
        for action in std::mem::take(&mut pending) {
            let result = match action {
                Action::Answer => ctl.answer(),
                Action::Reject(code) => ctl.reject(code),
                Action::Play(Clip::Hello) => ctl.play_prompt(&voices.hello).await,
                Action::Play(Clip::Greeting) => ctl.play_prompt(&voices.greeting).await,
                Action::Play(Clip::Line) => {
                    ctl.play(Box::new(audio::LineNoise::new(record.call))).await
                }
                Action::SendDtmf(key) => {
                    record.pressed = Some(key);
                    ctl.send_dtmf(&key.to_string()).await
                }
                Action::Hangup => ctl.hangup().await,
            };
            if let Err(e) = result {
                // The call is gone or lost its media: the hang-up event that follows says why.
                tracing::debug!(call = record.call, ?action, error = %e, "carrier-sim action failed");
                record
                    .detail
                    .get_or_insert_with(|| format!("{action:?}: {e}"));
            }
        }
        let event = match persona.deadline() {
            Some(at) => {
                match tokio::time::timeout_at(tokio::time::Instant::from_std(at), call.next_event())
                    .await
                {
                    Ok(ev) => ev,
                    Err(_) => {
                        pending = persona.on(Input::Timer, Instant::now());
                        continue;
                    }
                }
            }
            None => call.next_event().await,
        };
        let Some(event) = event else { break };
        let now = Instant::now();
        match event {
            Event::Answered { .. } => {
                record.answered = true;
                pending = persona.on(Input::Answered, now);
            }
            Event::PlaybackFinished => pending = persona.on(Input::PlaybackFinished, now),
            Event::Hangup { cause, code, .. } => {
                persona.on(Input::Ended, now);
                record.code = code.filter(|c| *c >= 300);
                record.ending = match cause {
                    EndCause::Sip(HangupCause::LocalHangup) if record.answered => Ending::Completed,
                    EndCause::Sip(HangupCause::Rejected) => Ending::Refused,
                    EndCause::Sip(HangupCause::RemoteBye) => Ending::CallerHungUp,
                    EndCause::Sip(HangupCause::RemoteCancel) => Ending::CallerCancelled,
                    other => {
                        record.detail.get_or_insert_with(|| format!("{other:?}"));
                        Ending::Failed
                    }
                };
                break;
            }
            _ => {}
        }
    }
    record.duration_ms = started.elapsed().as_millis() as u64;
    record
}

/// The command line: binds, prints one JSON line when listening, one per finished call, and the
/// totals every `totals_every` and at Ctrl-C / SIGTERM.
pub async fn run_cli(
    config: CarrierSimConfig,
    totals_every: Option<Duration>,
) -> anyhow::Result<()> {
    let lifecycle = Lifecycle::new();
    let mut sim = start(config.clone(), lifecycle).await?;
    let listening = serde_json::json!({
        "event": "listening",
        "udp": sim.udp_addr.to_string(),
        "tcp": sim.tcp_addr.to_string(),
        "audio": sim.audio.to_string(),
        "speech": matches!(sim.audio, AudioSource::Speech { .. }),
        "rtp_ports": [config.rtp_ports.0, config.rtp_ports.1],
    });
    println!("{listening}");
    if let AudioSource::Tones { why } = &sim.audio {
        eprintln!("carrier-sim: no speech ({why}); humans and machines speak in tones");
    }
    let mut tick =
        tokio::time::interval(totals_every.unwrap_or(Duration::from_secs(3600 * 24 * 365)));
    tick.tick().await;
    let stop = async {
        #[cfg(unix)]
        {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
            tokio::select! {
                r = tokio::signal::ctrl_c() => r,
                _ = term.recv() => Ok(()),
            }
        }
        #[cfg(not(unix))]
        tokio::signal::ctrl_c().await
    };
    tokio::pin!(stop);
    loop {
        tokio::select! {
            r = &mut stop => { r?; break; }
            rec = sim.next_record() => match rec {
                Some(rec) => println!("{}", serde_json::json!({ "event": "call", "record": rec })),
                None => break,
            },
            _ = tick.tick() => println!("{}", serde_json::json!({ "event": "totals", "counters": sim.counters() })),
        }
    }
    sim.stop();
    println!(
        "{}",
        serde_json::json!({ "event": "totals", "final": true, "counters": sim.counters() })
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_add_up_by_class_and_ending() {
        let c = Counters::default();
        for (class, ending, answered, pressed) in [
            (Class::Human, Ending::Completed, true, Some('1')),
            (Class::Machine, Ending::CallerHungUp, true, None),
            (Class::Busy, Ending::Refused, false, None),
            (Class::NoAnswer, Ending::CallerCancelled, false, None),
        ] {
            c.by_class[class_index(class)].fetch_add(1, Ordering::Relaxed);
            c.active.fetch_add(1, Ordering::Relaxed);
            let r = CallRecord {
                call: 1,
                from: "a".into(),
                to: "b".into(),
                class,
                answered,
                ending,
                code: None,
                pressed,
                duration_ms: 0,
                detail: None,
            };
            c.record(&r);
        }
        let s = c.snapshot();
        assert_eq!(
            (s.calls, s.human, s.machine, s.busy, s.no_answer, s.agent),
            (4, 1, 1, 1, 1, 0)
        );
        assert_eq!(
            (
                s.answered,
                s.completed,
                s.caller_hung_up,
                s.refused,
                s.caller_cancelled,
                s.failed
            ),
            (2, 1, 1, 1, 1, 0)
        );
        assert_eq!((s.dtmf_sent, s.active), (1, 0));
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["no_answer"], 1);
    }

    fn flags() -> Flags {
        Flags {
            listen: "127.0.0.1:5090".parse().unwrap(),
            human: 0.6,
            machine: 0.2,
            busy: 0.1,
            no_answer: 0.1,
            talk_s: 30.0,
            seed: 3,
            by_last_digit: Some("0-5=human,6-7=machine,8=busy,9=no-answer".into()),
            press: Some('1'),
            press_after_s: 2.5,
            agent_prefix: Some("agent".into()),
            ring_s: 1.0,
            no_answer_after_s: 60.0,
            rtp_ports: "41000-41999".into(),
            audio_dir: None,
        }
    }

    #[test]
    fn flags_become_a_config_or_name_the_bad_flag() {
        let c = flags().into_config().unwrap();
        assert_eq!(c.rtp_ports, (41000, 41999));
        assert_eq!(c.plan.press, Some(('1', Duration::from_millis(2500))));
        assert_eq!(c.plan.talk, Duration::from_secs(30));
        assert_eq!(c.rule, LastDigitRule::standard());
        let err = |f: Flags| f.into_config().unwrap_err().to_string();
        assert!(
            err(Flags {
                rtp_ports: "40000".into(),
                ..flags()
            })
            .contains("--rtp-ports")
        );
        assert!(
            err(Flags {
                talk_s: -1.0,
                ..flags()
            })
            .contains("--talk-s")
        );
        assert!(
            err(Flags {
                by_last_digit: Some("0=fax".into()),
                ..flags()
            })
            .contains("--by-last-digit")
        );
        assert!(
            err(Flags {
                busy: -0.5,
                ..flags()
            })
            .contains("--busy")
        );
        assert!(
            err(Flags {
                press: Some('x'),
                ..flags()
            })
            .contains("DTMF key")
        );
    }

    #[test]
    fn uri_users_are_read_from_headers_and_uris() {
        assert_eq!(
            uri_user("sip:15550101@127.0.0.1:5090").as_deref(),
            Some("15550101")
        );
        assert_eq!(
            uri_user("sipp <sip:sipp@127.0.0.1:5097>;tag=1SIPpTag001").as_deref(),
            Some("sipp")
        );
        assert_eq!(
            uri_user("\"Desk\" <sips:agent7@example.com;transport=tls>").as_deref(),
            Some("agent7")
        );
        assert_eq!(uri_user("<sip:127.0.0.1:5090>"), None);
        assert_eq!(uri_user("15550101"), None);
    }

    #[test]
    fn bad_configuration_is_refused_by_name() {
        let mut c = CarrierSimConfig::default();
        assert!(c.validate().is_ok());
        c.plan.press = Some(('x', Duration::ZERO));
        assert!(c.validate().unwrap_err().to_string().contains("DTMF key"));
        c.plan.press = None;
        c.rtp_ports = (5000, 4000);
        assert!(c.validate().unwrap_err().to_string().contains("rtp_ports"));
        c.rtp_ports = (40000, 40999);
        c.shares.machine = f64::NAN;
        assert!(c.validate().unwrap_err().to_string().contains("--machine"));
    }
}
