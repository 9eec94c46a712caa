//! The simulator's voices: "hello?" for a person and a voicemail greeting ending in a beep for a
//! machine, spoken by espeak-ng and resampled by sox to 8 kHz on first use, then cached as WAV
//! files. Without espeak-ng or sox the clips are synthetic voice-like tones (a buzzy harmonic
//! "syllable" train, so AMD hears speech, not a beep), and [`Clips::source`] says why.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::media::prompt::Prompt;
use crate::media::wav::Wav;

/// An agent phone's open microphone: endless 20 ms frames of quiet white noise (about −60 dBFS:
/// a quiet room, far below AMD's and any voice detector's speech level), so the far end receives
/// RTP for the whole call. Deterministic for a seed.
pub struct LineNoise {
    state: u64,
}

/// Peak amplitude of [`LineNoise`] (16-bit linear).
pub const LINE_NOISE_PEAK: i16 = 32;

impl LineNoise {
    pub fn new(seed: u64) -> Self {
        LineNoise {
            state: seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1,
        }
    }
}

impl crate::media::frame::FrameSource for LineNoise {
    fn next_frame(&mut self) -> Option<crate::media::frame::Frame> {
        let span = 2 * LINE_NOISE_PEAK as u64 + 1;
        let pcm = (0..crate::media::sender::FRAME_SAMPLES)
            .map(|_| {
                // xorshift64
                self.state ^= self.state << 13;
                self.state ^= self.state >> 7;
                self.state ^= self.state << 17;
                (self.state % span) as i16 - LINE_NOISE_PEAK
            })
            .collect();
        Some(crate::media::frame::Frame::from_pcm(pcm))
    }
}

/// What a person says on answering.
pub const HELLO_TEXT: &str = "Hello?";
/// The voicemail greeting (one long sentence: an answering machine keeps talking).
pub const GREETING_TEXT: &str = "Hi, you have reached the voicemail of Alex Morgan, I cannot take your call right now, \
     so please leave your name, your number and a short message after the tone and I will call you back as soon as I can.";
/// The beep after the greeting.
pub const BEEP_HZ: f64 = 1000.0;
pub const BEEP_MS: u32 = 500;
const RATE: u32 = 8000;
/// Part of the cache file name: bump when the generation changes.
const GENERATION: &str = "v1 espeak-ng en-us s165";

/// Where the audio came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AudioSource {
    /// espeak-ng speech (cached in the directory).
    Speech { cache: PathBuf },
    /// Synthetic tones, and why speech was not available.
    Tones { why: String },
}

impl std::fmt::Display for AudioSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AudioSource::Speech { cache } => {
                write!(f, "espeak-ng speech (cached in {})", cache.display())
            }
            AudioSource::Tones { why } => write!(f, "synthetic tones instead of speech: {why}"),
        }
    }
}

/// The clips, 8 kHz linear PCM.
#[derive(Debug, Clone)]
pub struct Clips {
    pub hello: Vec<i16>,
    /// Greeting, a short pause, then the beep.
    pub greeting: Vec<i16>,
    pub source: AudioSource,
}

impl Clips {
    /// Speech from the cache or espeak-ng + sox; tones when either tool is missing or fails.
    pub fn load(cache_dir: &Path) -> Clips {
        match (
            speak(HELLO_TEXT, cache_dir),
            speak(GREETING_TEXT, cache_dir),
        ) {
            (Ok(hello), Ok(greeting)) => Clips {
                hello: trim_silence(&hello),
                greeting: with_beep(trim_silence(&greeting)),
                source: AudioSource::Speech {
                    cache: cache_dir.to_path_buf(),
                },
            },
            (Err(why), _) | (_, Err(why)) => Clips::tones(why),
        }
    }

    /// Synthetic clips: a 0.6 s "hello" and a 5 s "greeting" plus the beep.
    pub fn tones(why: impl Into<String>) -> Clips {
        Clips {
            hello: babble(3, 1),
            greeting: with_beep(babble(24, 2)),
            source: AudioSource::Tones { why: why.into() },
        }
    }

    pub fn hello_prompt(&self) -> Prompt {
        Prompt::from_pcm(self.hello.clone())
    }

    pub fn greeting_prompt(&self) -> Prompt {
        Prompt::from_pcm(self.greeting.clone())
    }
}

fn tool_present(name: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
        .unwrap_or(false)
}

/// `text` as 8 kHz speech, from the cache or generated into it.
fn speak(text: &str, cache_dir: &Path) -> Result<Vec<i16>, String> {
    let file = cache_dir.join(format!(
        "speech-{:016x}.wav",
        fnv1a(&format!("{GENERATION}\n{text}"))
    ));
    if let Ok(w) = Wav::read(&file) {
        return Ok(w.pcm);
    }
    for tool in ["espeak-ng", "sox"] {
        if !tool_present(tool) {
            return Err(format!(
                "{tool} is not installed (apt-get install espeak-ng sox)"
            ));
        }
    }
    std::fs::create_dir_all(cache_dir)
        .map_err(|e| format!("cannot create the audio cache {}: {e}", cache_dir.display()))?;
    let raw = file.with_extension(format!("{}.espeak.wav", std::process::id()));
    let tmp = file.with_extension(format!("{}.tmp.wav", std::process::id()));
    let run = |cmd: &mut Command| -> Result<(), String> {
        let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{cmd:?} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    };
    let result = run(Command::new("espeak-ng")
        .args(["-v", "en-us", "-s", "165", "-w"])
        .arg(&raw)
        .arg(text))
    .and_then(|()| {
        run(Command::new("sox")
            .arg(&raw)
            .args(["-r", "8000", "-c", "1", "-b", "16", "-e", "signed-integer"])
            .arg(&tmp))
    })
    .and_then(|()| {
        std::fs::rename(&tmp, &file).map_err(|e| format!("cannot write {}: {e}", file.display()))
    });
    let _ = std::fs::remove_file(&raw);
    let _ = std::fs::remove_file(&tmp);
    result?;
    Wav::read(&file)
        .map(|w| w.pcm)
        .map_err(|e| format!("{}: {e}", file.display()))
}

fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Drops leading and trailing near-silence (espeak pads its output).
fn trim_silence(pcm: &[i16]) -> Vec<i16> {
    let loud = |s: &i16| s.unsigned_abs() > 300;
    let start = pcm.iter().position(loud).unwrap_or(0);
    let end = pcm.iter().rposition(loud).map(|i| i + 1).unwrap_or(start);
    pcm[start..end].to_vec()
}

/// Appends 300 ms of silence and the beep.
fn with_beep(mut pcm: Vec<i16>) -> Vec<i16> {
    pcm.extend(std::iter::repeat_n(0, (RATE * 300 / 1000) as usize));
    let n = (RATE * BEEP_MS / 1000) as usize;
    pcm.extend((0..n).map(|i| {
        let t = i as f64 / RATE as f64;
        (0.3 * 32767.0 * (2.0 * std::f64::consts::PI * BEEP_HZ * t).sin()).round() as i16
    }));
    pcm
}

/// A voice-like sound: `syllables` harmonic bursts of 180 ms (pitch wandering around 140 Hz,
/// harmonics to 3 kHz) with 40 ms gaps; `seed` varies the pitch pattern.
fn babble(syllables: usize, seed: u64) -> Vec<i16> {
    let syl = (RATE * 180 / 1000) as usize;
    let gap = (RATE * 40 / 1000) as usize;
    let mut out = Vec::with_capacity(syllables * (syl + gap));
    let mut phase = 0.0f64;
    for k in 0..syllables {
        let f0 = 120.0 + ((k as u64 * 37 + seed * 11) % 50) as f64;
        for i in 0..syl {
            let env = (std::f64::consts::PI * i as f64 / syl as f64).sin();
            phase += 2.0 * std::f64::consts::PI * f0 / RATE as f64;
            let harmonics = (1..=(3000.0 / f0) as usize)
                .map(|h| (phase * h as f64).sin() / h as f64)
                .sum::<f64>();
            out.push((0.25 * 32767.0 * env * harmonics / 2.0).clamp(-32768.0, 32767.0) as i16);
        }
        out.extend(std::iter::repeat_n(0, gap));
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::media::amd::{AmdConfig, AmdDetector, AmdEvent, AmdVerdict};

    /// Feeds `pcm` (then silence) to the detector in 20 ms frames on a virtual clock.
    fn classify(pcm: &[i16]) -> (Option<AmdVerdict>, bool) {
        let mut d = AmdDetector::new(AmdConfig::default());
        let t0 = Instant::now();
        let mut beep = false;
        let frames = pcm.len().div_ceil(160) + 300;
        for i in 0..frames {
            let mut f: Vec<i16> = pcm.iter().skip(i * 160).take(160).copied().collect();
            f.resize(160, 0);
            for ev in d.push(&f, t0 + Duration::from_millis(20 * i as u64)) {
                beep |= matches!(ev, AmdEvent::Beep { .. });
            }
        }
        (d.verdict(), beep)
    }

    #[test]
    fn synthetic_clips_are_classified_as_their_class() {
        let c = Clips::tones("test");
        assert_eq!(classify(&c.hello), (Some(AmdVerdict::Human), false));
        assert_eq!(classify(&c.greeting), (Some(AmdVerdict::Machine), true));
    }

    #[test]
    fn speech_clips_are_classified_as_their_class_and_cached() {
        if !tool_present("espeak-ng") || !tool_present("sox") {
            eprintln!("SKIP: espeak-ng or sox missing");
            return;
        }
        let dir =
            std::env::temp_dir().join(format!("dialbridge-carrier-audio-{}", std::process::id()));
        let c = Clips::load(&dir);
        assert!(
            matches!(c.source, AudioSource::Speech { .. }),
            "{}",
            c.source
        );
        assert!(
            c.hello.len() > 1600 && c.hello.len() < 8000 * 2,
            "hello is short: {} samples",
            c.hello.len()
        );
        assert!(
            c.greeting.len() > 8000 * 5,
            "the greeting is long: {} samples",
            c.greeting.len()
        );
        let cached = std::fs::read_dir(&dir).unwrap().count();
        assert_eq!(cached, 2, "two cached clips and no leftovers");
        // From the cache the second time: the same samples.
        assert_eq!(Clips::load(&dir).greeting, c.greeting);
        assert_eq!(classify(&c.hello), (Some(AmdVerdict::Human), false));
        assert_eq!(classify(&c.greeting), (Some(AmdVerdict::Machine), true));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn line_noise_never_ends_stays_quiet_and_is_silence_to_amd() {
        use crate::media::frame::FrameSource;
        let mut n = LineNoise::new(7);
        let mut pcm = Vec::new();
        for _ in 0..500 {
            let f = n.next_frame().expect("endless");
            assert_eq!(f.pcm.len(), 160);
            pcm.extend(f.pcm);
        }
        assert!(pcm.iter().all(|s| s.abs() <= LINE_NOISE_PEAK));
        assert!(pcm.iter().any(|s| *s != 0), "noise, not digital silence");
        // 10 s of it is no voice: AMD cannot tell (silence), hears no beep.
        assert_eq!(classify(&pcm), (Some(AmdVerdict::Unknown), false));
        // The same seed gives the same noise.
        assert_eq!(LineNoise::new(7).next_frame().unwrap().pcm[..], pcm[..160]);
    }

    #[test]
    fn missing_tools_fall_back_to_tones_with_the_reason() {
        let c = Clips::tones("espeak-ng is not installed");
        assert_eq!(
            c.source.to_string(),
            "synthetic tones instead of speech: espeak-ng is not installed"
        );
        assert!(c.greeting.len() > 8000 * 4);
    }
}
