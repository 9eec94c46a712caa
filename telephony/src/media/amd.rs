//! Answering-machine detection for a freshly answered outbound call, sans-IO: 20 ms frames and
//! their times in, [`AmdEvent`]s out.
//!
//! - An energy voice-activity detector with an adaptive noise floor (minimum level over the last
//!   1.5 s) turns frames into speech and silence; words shorter than `min_word_ms` are ignored (clicks, noise bursts).
//! - Cadence rules: a person answers with a short greeting and then waits, so a greeting followed
//!   by `after_greeting_silence_ms` of silence is **Human**, declared that long after the greeting
//!   ends; a recorded greeting keeps talking, so speech still going `max_greeting_ms` after it began
//!   is **Machine**; whatever is undecided at `decision_deadline_ms` after pick-up is Machine if
//!   someone is talking at that moment, **Unknown** if they are in a pause (a person who spoke at
//!   length may just have finished: calling them a machine would drop a live call); nothing said
//!   for `initial_silence_ms` is Unknown.
//! - A beep detector (Goertzel sweep over `beep_min_hz..=beep_max_hz`) looks for a steady pure
//!   tone and reports [`AmdEvent::Beep`] so a message can be left after it; a beep before any
//!   verdict also means Machine. It keeps listening after the verdict for `beep_listen_ms`.

use std::time::{Duration, Instant};

use super::goertzel::{Goertzel, dbfs, energy};

/// Thresholds (all configurable).
#[derive(Debug, Clone)]
pub struct AmdConfig {
    /// Frames louder than the noise floor by this many dB are speech.
    pub speech_margin_db: f64,
    /// ... and must be at least this loud (dBFS).
    pub min_speech_dbfs: f64,
    /// Speech shorter than this is not a word.
    pub min_word_ms: u64,
    /// Silence after the greeting that means "a person waiting for an answer".
    pub after_greeting_silence_ms: u64,
    /// A greeting still going this long after it began is a recording.
    pub max_greeting_ms: u64,
    /// Machine rules fire only while someone is talking: at most this much silence so far
    /// (a gap between words). In a longer pause the speaker may be a person who has finished.
    pub talking_gap_ms: u64,
    /// Decide by this long after pick-up.
    pub decision_deadline_ms: u64,
    /// No speech at all for this long: Unknown.
    pub initial_silence_ms: u64,
    /// Beep search range.
    pub beep_min_hz: f64,
    /// Beep search range.
    pub beep_max_hz: f64,
    /// A tone must hold this long to be a beep.
    pub beep_min_ms: u64,
    /// Share of a frame's energy at the tone frequency.
    pub beep_purity: f64,
    /// How long to keep listening for a beep after pick-up.
    pub beep_listen_ms: u64,
}

impl Default for AmdConfig {
    fn default() -> Self {
        AmdConfig {
            speech_margin_db: 12.0,
            min_speech_dbfs: -42.0,
            min_word_ms: 60,
            after_greeting_silence_ms: 460,
            max_greeting_ms: 3000,
            talking_gap_ms: 100,
            decision_deadline_ms: 3480,
            initial_silence_ms: 3000,
            beep_min_hz: 900.0,
            beep_max_hz: 2100.0,
            beep_min_ms: 160,
            beep_purity: 0.8,
            beep_listen_ms: 30_000,
        }
    }
}

/// The classification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AmdVerdict {
    /// A person answered.
    Human,
    /// A voicemail / answering machine.
    Machine,
    /// Could not tell (silence, or undecided by the deadline).
    Unknown,
}

/// What the detector reports.
#[derive(Debug, Clone, PartialEq)]
pub enum AmdEvent {
    /// The verdict (once), with the time since pick-up it was reached and why.
    Verdict {
        /// Human, machine or unknown.
        verdict: AmdVerdict,
        /// Time since pick-up.
        at: Duration,
        /// The rule that decided.
        reason: &'static str,
        /// When the last speech before the verdict ended (time since pick-up): for a Human
        /// verdict, the end of the greeting, `after_greeting_silence_ms` before `at`. `None` if
        /// nobody spoke. The answerer's 2-s abandonment window runs from this instant.
        speech_end: Option<Duration>,
    },
    /// A steady tone (the "leave a message" beep) began at `at` after pick-up.
    Beep {
        /// When the tone started.
        at: Duration,
        /// Its frequency.
        freq: f64,
    },
}

/// The detector for one call.
#[derive(Debug)]
pub struct AmdDetector {
    config: AmdConfig,
    beep_bank: Vec<Goertzel>,
    pickup: Option<Instant>,
    noise_db: f64,
    levels: std::collections::VecDeque<f64>,
    // Current run of speech-like frames (ms) and when it began.
    run_ms: u64,
    run_start: Duration,
    greeting_start: Option<Duration>,
    last_speech_end: Option<Duration>,
    in_word: bool,
    verdict: Option<AmdVerdict>,
    tone_run: Option<(Duration, f64, u32)>,
    beep_reported: bool,
}

const FRAME_MS: u64 = 20;
/// Background level window: 1.5 s.
const NOISE_WINDOW_FRAMES: usize = 75;

impl AmdDetector {
    /// A detector; pick-up is taken to be the start of the first frame pushed.
    pub fn new(config: AmdConfig) -> Self {
        let mut bank = Vec::new();
        let mut f = config.beep_min_hz;
        while f <= config.beep_max_hz {
            bank.push(Goertzel::new(f, 8000.0));
            f += 20.0;
        }
        AmdDetector {
            config,
            beep_bank: bank,
            pickup: None,
            noise_db: -100.0,
            levels: std::collections::VecDeque::with_capacity(NOISE_WINDOW_FRAMES),
            run_ms: 0,
            run_start: Duration::ZERO,
            greeting_start: None,
            last_speech_end: None,
            in_word: false,
            verdict: None,
            tone_run: None,
            beep_reported: false,
        }
    }

    /// The verdict so far.
    pub fn verdict(&self) -> Option<AmdVerdict> {
        self.verdict
    }

    /// True when nothing more will be reported.
    pub fn finished(&self, now: Instant) -> bool {
        self.verdict.is_some()
            && (self.beep_reported
                || self.pickup.is_some_and(|p| {
                    now.duration_since(p) >= Duration::from_millis(self.config.beep_listen_ms)
                }))
    }

    /// Feeds one 20 ms frame that ends at `now`.
    pub fn push(&mut self, pcm: &[i16], now: Instant) -> Vec<AmdEvent> {
        let pickup = *self
            .pickup
            .get_or_insert(now - Duration::from_millis(FRAME_MS));
        let t = now.saturating_duration_since(pickup);
        let mut out = Vec::new();
        if self.finished(now) {
            return out;
        }
        let level = dbfs(pcm);
        let tone = self.tone(pcm, level);
        if let Some(beep_at) = self.track_beep(tone, t) {
            out.push(AmdEvent::Beep {
                at: beep_at.0,
                freq: beep_at.1,
            });
            if self.verdict.is_none() {
                self.decide(AmdVerdict::Machine, t, "beep", &mut out);
            }
        }
        if self.verdict.is_some() {
            return out;
        }
        self.update_noise(level);
        let speech = tone.is_none()
            && level
                > (self.noise_db + self.config.speech_margin_db).max(self.config.min_speech_dbfs);
        self.update_vad(speech, t);
        self.rules(t, &mut out);
        out
    }

    // Minimum statistics: the background level is the quietest frame of the recent window (speech
    // has gaps between words that fall to the background; noise never rises above its floor for
    // long).
    fn update_noise(&mut self, level: f64) {
        if self.levels.len() == NOISE_WINDOW_FRAMES {
            self.levels.pop_front();
        }
        self.levels.push_back(level);
        self.noise_db = self.levels.iter().copied().fold(f64::INFINITY, f64::min);
    }

    fn update_vad(&mut self, speech: bool, t: Duration) {
        if speech {
            if self.run_ms == 0 {
                self.run_start = t - Duration::from_millis(FRAME_MS);
            }
            self.run_ms += FRAME_MS;
            if self.greeting_start.is_some() {
                // Once a greeting has begun, any voiced frame (even a short burst) means the
                // speaker has not stopped.
                self.last_speech_end = Some(t);
            }
            if self.run_ms >= self.config.min_word_ms {
                if !self.in_word {
                    self.in_word = true;
                    self.greeting_start.get_or_insert(self.run_start);
                }
                self.last_speech_end = Some(t);
            }
        } else {
            self.run_ms = 0;
            self.in_word = false;
        }
    }

    fn rules(&mut self, t: Duration, out: &mut Vec<AmdEvent>) {
        let c = self.config.clone();
        let ms = |d: Duration| d.as_millis() as u64;
        match (self.greeting_start, self.last_speech_end) {
            (Some(start), Some(end)) => {
                let silence = ms(t.saturating_sub(end));
                let greeting = ms(end.saturating_sub(start));
                let talking = silence <= c.talking_gap_ms;
                if silence >= c.after_greeting_silence_ms {
                    if greeting < c.max_greeting_ms {
                        self.decide(AmdVerdict::Human, t, "short greeting then silence", out);
                    }
                } else if talking && ms(t.saturating_sub(start)) >= c.max_greeting_ms {
                    self.decide(AmdVerdict::Machine, t, "long greeting", out);
                } else if ms(t) >= c.decision_deadline_ms {
                    if talking {
                        self.decide(AmdVerdict::Machine, t, "still talking at deadline", out);
                    } else {
                        self.decide(AmdVerdict::Unknown, t, "pausing at deadline", out);
                    }
                }
            }
            _ => {
                if ms(t) >= c.initial_silence_ms {
                    self.decide(AmdVerdict::Unknown, t, "no speech", out);
                }
            }
        }
        if self.verdict.is_none() && ms(t) >= c.decision_deadline_ms.max(c.initial_silence_ms) {
            self.decide(AmdVerdict::Unknown, t, "undecided at deadline", out);
        }
    }

    fn decide(
        &mut self,
        verdict: AmdVerdict,
        at: Duration,
        reason: &'static str,
        out: &mut Vec<AmdEvent>,
    ) {
        if self.verdict.is_none() {
            self.verdict = Some(verdict);
            out.push(AmdEvent::Verdict {
                verdict,
                at,
                reason,
                speech_end: self.last_speech_end,
            });
        }
    }

    // The dominant frequency of a frame if the frame is (almost) a pure tone in the beep range.
    fn tone(&self, pcm: &[i16], level: f64) -> Option<f64> {
        if level < self.config.min_speech_dbfs {
            return None;
        }
        let e = energy(pcm);
        let (mut best_f, mut best_p) = (0.0, 0.0);
        for g in &self.beep_bank {
            let p = g.relative_power(pcm, e);
            if p > best_p {
                best_p = p;
                best_f = g.freq;
            }
        }
        (best_p >= self.config.beep_purity).then_some(best_f)
    }

    fn track_beep(&mut self, tone: Option<f64>, t: Duration) -> Option<(Duration, f64)> {
        if self.beep_reported {
            return None;
        }
        match (tone, self.tone_run) {
            (Some(f), Some((start, f0, n))) if (f - f0).abs() <= 40.0 => {
                let n = n + 1;
                self.tone_run = Some((start, f0, n));
                if n as u64 * FRAME_MS >= self.config.beep_min_ms {
                    self.beep_reported = true;
                    return Some((start, f0));
                }
            }
            (Some(f), _) => self.tone_run = Some((t - Duration::from_millis(FRAME_MS), f, 1)),
            (None, _) => self.tone_run = None,
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::tone::dual_tone;

    fn run(audio: &[i16]) -> Vec<AmdEvent> {
        let mut d = AmdDetector::new(AmdConfig::default());
        let t0 = Instant::now();
        let mut out = Vec::new();
        for (i, f) in audio.chunks(160).enumerate() {
            out.extend(d.push(f, t0 + Duration::from_millis(20 * (i as u64 + 1))));
        }
        out
    }

    // Speech-like test signal: a 200 Hz buzz with harmonics, amplitude-modulated at syllable rate.
    fn babble(ms: u32) -> Vec<i16> {
        (0..ms as usize * 8)
            .map(|i| {
                let t = i as f64 / 8000.0;
                let env = 0.55 + 0.45 * (2.0 * std::f64::consts::PI * 4.0 * t).sin();
                let v: f64 = (1..12)
                    .map(|h| (2.0 * std::f64::consts::PI * 200.0 * h as f64 * t).sin() / h as f64)
                    .sum();
                (v * env * 4000.0) as i16
            })
            .collect()
    }

    fn silence(ms: u32) -> Vec<i16> {
        vec![0; ms as usize * 8]
    }

    fn verdict(ev: &[AmdEvent]) -> (AmdVerdict, u128) {
        ev.iter()
            .find_map(|e| match e {
                AmdEvent::Verdict { verdict, at, .. } => Some((*verdict, at.as_millis())),
                _ => None,
            })
            .expect("a verdict")
    }

    #[test]
    fn short_greeting_then_silence_is_human_within_500_ms() {
        let audio = [silence(400), babble(700), silence(3000)].concat();
        let (v, at) = verdict(&run(&audio));
        assert_eq!(v, AmdVerdict::Human);
        assert!((1100..=1600).contains(&at), "{at}");
    }

    #[test]
    fn the_verdict_says_when_the_greeting_ended() {
        let audio = [silence(400), babble(700), silence(3000)].concat();
        let (at, end) = run(&audio)
            .into_iter()
            .find_map(|e| match e {
                AmdEvent::Verdict { at, speech_end, .. } => Some((at, speech_end)),
                _ => None,
            })
            .expect("a verdict");
        let end = end.expect("someone spoke").as_millis();
        // the babble ends at 1100 ms (its last frames may be quiet); the verdict follows the
        // after-greeting silence
        assert!((1000..=1100).contains(&end), "{end}");
        let quiet = AmdConfig::default().after_greeting_silence_ms as u128;
        assert_eq!(at.as_millis() - end, quiet);
        let dead_air = run(&silence(5000));
        assert!(
            matches!(
                dead_air[0],
                AmdEvent::Verdict {
                    speech_end: None,
                    ..
                }
            ),
            "{dead_air:?}"
        );
    }

    #[test]
    fn long_greeting_is_machine_within_3500_ms_and_beep_is_found() {
        let audio = [
            silence(300),
            babble(4000),
            silence(300),
            dual_tone(1000.0, 1000.0, 8000, 0.2, 600),
            silence(1000),
        ]
        .concat();
        let ev = run(&audio);
        let (v, at) = verdict(&ev);
        assert_eq!(v, AmdVerdict::Machine);
        assert!(at <= 3500, "{at}");
        let beep = ev.iter().find_map(|e| match e {
            AmdEvent::Beep { at, freq } => Some((at.as_millis(), *freq)),
            _ => None,
        });
        let (bt, bf) = beep.expect("beep");
        assert!((4600..=4700).contains(&bt), "beep at {bt}");
        assert!((bf - 1000.0).abs() <= 20.0);
    }

    #[test]
    fn dead_air_is_unknown() {
        let (v, at) = verdict(&run(&silence(5000)));
        assert_eq!(v, AmdVerdict::Unknown);
        assert_eq!(at, 3000);
    }

    #[test]
    fn a_click_is_not_a_greeting() {
        let audio = [silence(500), babble(40), silence(4000)].concat();
        assert_eq!(verdict(&run(&audio)).0, AmdVerdict::Unknown);
    }
}
