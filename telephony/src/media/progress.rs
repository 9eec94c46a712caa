//! Call-progress tones in early media (or after answer), sans-IO: special information tones
//! (SIT: "the number you have dialed is not in service"), busy, reorder (fast busy) and North
//! American ringback, so the dialer's outcome table can use what the network *played* when the
//! SIP response alone is not telling (a 183 with a SIT and then a 487, a busy tone under a 200).
//!
//! Each 20 ms frame is classified over a 40 ms window (25 Hz resolution: enough to tell 440 from
//! 480 Hz) by Goertzel power at the tone frequencies; runs of the same class are then matched
//! against the tone patterns:
//! - SIT: three tones in sequence, 913.8 or 985.2 Hz, then 1370.6 or 1428.5 Hz, then 1776.7 Hz,
//!   the first two short (274 ms) or long (380 ms). The four common codes are named (IC intercept,
//!   VC vacant code, NC no circuit, RO reorder); other combinations are reported as they are.
//! - Busy: 480+620 Hz, 0.5 s on / 0.5 s off; reorder: the same tones 0.25 s on / 0.25 s off.
//! - Ringback: 440+480 Hz held for 1.5 s.

use std::time::{Duration, Instant};

use super::goertzel::{Goertzel, dbfs, energy};

const SIT_FREQS: [f64; 5] = [913.8, 985.2, 1370.6, 1428.5, 1776.7];
const FRAME_MS: u64 = 20;

/// Which special information tone was heard.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SitKind {
    /// IC: 913.8 short, 1370.6 short — number changed or disconnected (intercept).
    Intercept,
    /// VC: 985.2 long, 1370.6 short — unassigned number.
    VacantCode,
    /// NC: 985.2 long, 1428.5 long — no circuit available.
    NoCircuit,
    /// RO: 913.8 short, 1428.5 long — reorder (call failed in the network).
    Reorder,
    /// Another combination: the first two tones' frequencies and whether each was long.
    Other {
        /// First tone (913.8 or 985.2 Hz).
        first_hz: f64,
        /// First tone long (380 ms) rather than short (274 ms).
        first_long: bool,
        /// Second tone (1370.6 or 1428.5 Hz).
        second_hz: f64,
        /// Second tone long.
        second_long: bool,
    },
}

/// A recognised tone pattern.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ProgressTone {
    /// A special information tone.
    Sit(SitKind),
    /// Busy (480+620 Hz, 0.5 s cadence).
    Busy,
    /// Reorder / fast busy (480+620 Hz, 0.25 s cadence).
    Reorder,
    /// Ringback (440+480 Hz).
    Ringback,
}

/// A detection, with when the pattern began (time since the first frame's start).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProgressEvent {
    /// What was heard.
    pub tone: ProgressTone,
    /// When it started.
    pub at: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Class {
    Silence,
    Other,
    Sit(usize),
    BusyPair,
    RingPair,
}

#[derive(Debug, Clone, Copy)]
struct Run {
    class: Class,
    start: Duration,
    ms: u64,
}

/// The detector; reports each kind of tone once.
#[derive(Debug)]
pub struct ProgressDetector {
    sit: Vec<Goertzel>,
    g440: Goertzel,
    g480: Goertzel,
    g620: Goertzel,
    prev: Vec<i16>,
    origin: Option<Instant>,
    runs: Vec<Run>,
    reported: Vec<ProgressTone>,
}

impl Default for ProgressDetector {
    fn default() -> Self {
        Self::new()
    }
}

impl ProgressDetector {
    /// A fresh detector.
    pub fn new() -> Self {
        ProgressDetector {
            sit: SIT_FREQS
                .iter()
                .map(|f| Goertzel::new(*f, 8000.0))
                .collect(),
            g440: Goertzel::new(440.0, 8000.0),
            g480: Goertzel::new(480.0, 8000.0),
            g620: Goertzel::new(620.0, 8000.0),
            prev: Vec::new(),
            origin: None,
            runs: Vec::new(),
            reported: Vec::new(),
        }
    }

    fn classify(&self, window: &[i16]) -> Class {
        if dbfs(window) < -45.0 {
            return Class::Silence;
        }
        let e = energy(window);
        let p = |g: &Goertzel| g.relative_power(window, e);
        let (p440, p480, p620) = (p(&self.g440), p(&self.g480), p(&self.g620));
        if p480 >= 0.2 && p620 >= 0.2 && p480 + p620 >= 0.7 {
            return Class::BusyPair;
        }
        if p440 >= 0.2 && p480 >= 0.2 && p440 + p480 >= 0.7 {
            return Class::RingPair;
        }
        let (best, power) = self
            .sit
            .iter()
            .map(p)
            .enumerate()
            .fold((0, 0.0), |acc, (i, v)| if v > acc.1 { (i, v) } else { acc });
        if power >= 0.7 {
            Class::Sit(best)
        } else {
            Class::Other
        }
    }

    /// Feeds one 20 ms frame that ends at `now`.
    pub fn push(&mut self, pcm: &[i16], now: Instant) -> Option<ProgressEvent> {
        let origin = *self
            .origin
            .get_or_insert(now - Duration::from_millis(FRAME_MS));
        let t = now.saturating_duration_since(origin);
        let mut window = std::mem::take(&mut self.prev);
        window.extend_from_slice(pcm);
        let class = self.classify(&window);
        self.prev = pcm.to_vec();
        // A run starts with the frame that brought the new class into the window.
        match self.runs.last_mut() {
            Some(r) if r.class == class => r.ms += FRAME_MS,
            _ => self.runs.push(Run {
                class,
                start: t.saturating_sub(Duration::from_millis(FRAME_MS)),
                ms: FRAME_MS,
            }),
        }
        if self.runs.len() > 64 {
            self.runs.drain(..32);
        }
        let found = self.match_patterns()?;
        if self.reported.contains(&found.tone) {
            return None;
        }
        self.reported.push(found.tone);
        Some(found)
    }

    // Runs with short mixed/transition runs (≤ 60 ms of "other") merged away.
    fn cleaned(&self) -> Vec<Run> {
        let mut out: Vec<Run> = Vec::new();
        for r in &self.runs {
            if r.class == Class::Other && r.ms <= 60 {
                continue;
            }
            match out.last_mut() {
                Some(last) if last.class == r.class => last.ms += r.ms,
                _ => out.push(*r),
            }
        }
        out
    }

    fn match_patterns(&self) -> Option<ProgressEvent> {
        let runs = self.cleaned();
        let n = runs.len();
        // SIT: the last three runs are the three tones, the third at least 200 ms so far.
        if n >= 3
            && let (Class::Sit(a), Class::Sit(b), Class::Sit(4)) =
                (runs[n - 3].class, runs[n - 2].class, runs[n - 1].class)
        {
            let ok_len = |ms: u64| (200..=460).contains(&ms);
            if a <= 1
                && (2..=3).contains(&b)
                && ok_len(runs[n - 3].ms)
                && ok_len(runs[n - 2].ms)
                && runs[n - 1].ms >= 200
            {
                let long1 = runs[n - 3].ms >= 327;
                let long2 = runs[n - 2].ms >= 327;
                let kind = match (a, long1, b, long2) {
                    (0, false, 2, false) => SitKind::Intercept,
                    (1, true, 2, false) => SitKind::VacantCode,
                    (1, true, 3, true) => SitKind::NoCircuit,
                    (0, false, 3, true) => SitKind::Reorder,
                    _ => SitKind::Other {
                        first_hz: SIT_FREQS[a],
                        first_long: long1,
                        second_hz: SIT_FREQS[b],
                        second_long: long2,
                    },
                };
                return Some(ProgressEvent {
                    tone: ProgressTone::Sit(kind),
                    at: runs[n - 3].start,
                });
            }
        }
        // Busy / reorder: on, off, on (the last on at least as long as the cadence's on time).
        if n >= 3
            && runs[n - 3].class == Class::BusyPair
            && runs[n - 2].class == Class::Silence
            && runs[n - 1].class == Class::BusyPair
        {
            let (on, off, on2) = (runs[n - 3].ms, runs[n - 2].ms, runs[n - 1].ms);
            if (400..=620).contains(&on) && (380..=620).contains(&off) && on2 >= 400 {
                return Some(ProgressEvent {
                    tone: ProgressTone::Busy,
                    at: runs[n - 3].start,
                });
            }
            if (180..=320).contains(&on) && (180..=320).contains(&off) && (180..=320).contains(&on2)
            {
                return Some(ProgressEvent {
                    tone: ProgressTone::Reorder,
                    at: runs[n - 3].start,
                });
            }
        }
        if n >= 1 && runs[n - 1].class == Class::RingPair && runs[n - 1].ms >= 1500 {
            return Some(ProgressEvent {
                tone: ProgressTone::Ringback,
                at: runs[n - 1].start,
            });
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::frame::FrameSource;
    use crate::media::tone::{ToneGenerator, ToneSpec, dual_tone};

    fn run(audio: &[i16]) -> Vec<ProgressEvent> {
        let mut d = ProgressDetector::new();
        let t0 = Instant::now();
        audio
            .chunks(160)
            .enumerate()
            .filter_map(|(i, f)| d.push(f, t0 + Duration::from_millis(20 * (i as u64 + 1))))
            .collect()
    }

    fn sine(f: f64, ms: u32) -> Vec<i16> {
        dual_tone(f, f, 8000, 0.15, ms)
    }

    fn sit(f1: f64, d1: u32, f2: f64, d2: u32) -> Vec<i16> {
        [
            vec![0; 800],
            sine(f1, d1),
            sine(f2, d2),
            sine(1776.7, 380),
            vec![0; 4000],
        ]
        .concat()
    }

    #[test]
    fn the_four_named_sits() {
        for (audio, kind) in [
            (sit(913.8, 274, 1370.6, 274), SitKind::Intercept),
            (sit(985.2, 380, 1370.6, 274), SitKind::VacantCode),
            (sit(985.2, 380, 1428.5, 380), SitKind::NoCircuit),
            (sit(913.8, 274, 1428.5, 380), SitKind::Reorder),
        ] {
            let ev = run(&audio);
            assert_eq!(ev.len(), 1, "{kind:?}: {ev:?}");
            assert_eq!(ev[0].tone, ProgressTone::Sit(kind));
            assert!(
                (ev[0].at.as_millis() as i64 - 100).abs() <= 40,
                "{:?}",
                ev[0].at
            );
        }
        let other = run(&sit(913.8, 380, 1370.6, 274));
        assert!(matches!(
            other[0].tone,
            ProgressTone::Sit(SitKind::Other {
                first_long: true,
                ..
            })
        ));
    }

    fn cadence(spec: ToneSpec) -> Vec<i16> {
        let mut g = ToneGenerator::new(spec);
        std::iter::from_fn(|| g.next_frame())
            .flat_map(|f| f.pcm)
            .collect()
    }

    #[test]
    fn busy_reorder_and_ringback() {
        let busy = cadence(ToneSpec {
            total_ms: Some(3000),
            ..ToneSpec::busy()
        });
        assert_eq!(
            run(&busy).iter().map(|e| e.tone).collect::<Vec<_>>(),
            [ProgressTone::Busy]
        );
        let reorder = cadence(ToneSpec {
            cadence: vec![(250, 250)],
            total_ms: Some(2000),
            ..ToneSpec::busy()
        });
        assert_eq!(
            run(&reorder).iter().map(|e| e.tone).collect::<Vec<_>>(),
            [ProgressTone::Reorder]
        );
        let ring = cadence(ToneSpec {
            total_ms: Some(6000),
            ..ToneSpec::ringback()
        });
        let ev = run(&ring);
        assert_eq!(
            ev.iter().map(|e| e.tone).collect::<Vec<_>>(),
            [ProgressTone::Ringback]
        );
        assert!(ev[0].at <= Duration::from_millis(40));
    }

    #[test]
    fn speech_like_audio_and_a_lone_beep_are_nothing() {
        let speech: Vec<i16> = (0..8000 * 3)
            .map(|i| {
                let t = i as f64 / 8000.0;
                let v: f64 = (1..12)
                    .map(|h| (2.0 * std::f64::consts::PI * 190.0 * h as f64 * t).sin() / h as f64)
                    .sum();
                (v * 3000.0) as i16
            })
            .collect();
        assert!(run(&speech).is_empty());
        assert!(run(&[sine(1776.7, 600), vec![0; 2000]].concat()).is_empty());
    }
}
