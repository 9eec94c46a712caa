//! Prompt audio for the contact driver: a flow's prompt spec becomes a loaded
//! [`Prompt`]. Audio prompts are WAV files (8 kHz mono PCM16 / µ-law / A-law) found by name in
//! the prompt directory; text and SSML go through the TTS program (`espeak-ng`), resampled to
//! 8 kHz and cached as a WAV file named by the SHA-256 of (voice, kind, text), so each distinct
//! prompt is synthesized once per machine and loaded once per process.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};
use telephony::media::prompt::Prompt;
use telephony::media::wav::{WavEncoding, encode_wav};
use tokio::sync::OnceCell;

use crate::interpreter::PromptSpec;

use super::RuntimeConfig;

type Slot = Arc<OnceCell<Result<Prompt, String>>>;

/// Loaded and synthesized prompts, shared by all contacts.
pub struct Prompts {
    dir: PathBuf,
    cache_dir: PathBuf,
    program: String,
    default_voice: String,
    loaded: Mutex<HashMap<String, Slot>>,
}

impl Prompts {
    pub fn new(cfg: &RuntimeConfig) -> Self {
        Prompts {
            dir: cfg.prompt_dir.clone(),
            cache_dir: cfg.tts_cache_dir.clone(),
            program: cfg.tts_program.clone(),
            default_voice: cfg.tts_voice.clone(),
            loaded: Mutex::new(HashMap::new()),
        }
    }

    /// The audio for `spec` (voice: the contact's TTS voice, if the flow set one).
    pub async fn get(&self, spec: &PromptSpec, voice: Option<&str>) -> Result<Prompt, String> {
        let voice = voice
            .filter(|v| is_voice_name(v))
            .unwrap_or(&self.default_voice)
            .to_owned();
        let key = match spec {
            PromptSpec::Audio(id) => format!("audio\0{id}"),
            PromptSpec::Text(t) => format!("text\0{voice}\0{t}"),
            PromptSpec::Ssml(t) => format!("ssml\0{voice}\0{t}"),
        };
        let slot = self
            .loaded
            .lock()
            .expect("prompts")
            .entry(key)
            .or_default()
            .clone();
        slot.get_or_init(|| async {
            match spec {
                PromptSpec::Audio(id) => self.audio(id),
                PromptSpec::Text(t) => self.tts(t, &voice, false).await,
                PromptSpec::Ssml(t) => self.tts(t, &voice, true).await,
            }
        })
        .await
        .clone()
    }

    fn audio(&self, id: &str) -> Result<Prompt, String> {
        if id.contains("://") && !id.starts_with("file://") {
            return Err(format!("prompt {id:?}: only local WAV files are supported"));
        }
        let name = id.trim_start_matches("file://");
        let mut path = Path::new(name).to_path_buf();
        if path.is_relative() {
            path = self.dir.join(name);
        }
        if path.extension().is_none() {
            path.set_extension("wav");
        }
        Prompt::from_wav_file(&path).map_err(|e| format!("prompt {}: {e}", path.display()))
    }

    async fn tts(&self, text: &str, voice: &str, ssml: bool) -> Result<Prompt, String> {
        if text.trim().is_empty() {
            return Ok(Prompt::from_pcm(vec![0; 1600]));
        }
        let digest = Sha256::digest(format!("{voice}\0{ssml}\0{text}").as_bytes());
        let name: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
        let cached = self.cache_dir.join(format!("{name}.wav"));
        if let Ok(p) = Prompt::from_wav_file(&cached) {
            return Ok(p);
        }
        std::fs::create_dir_all(&self.cache_dir)
            .map_err(|e| format!("TTS cache {}: {e}", self.cache_dir.display()))?;
        let raw = self
            .cache_dir
            .join(format!("{name}.{}.raw.wav", std::process::id()));
        let mut cmd = tokio::process::Command::new(&self.program);
        cmd.arg("-v").arg(voice).arg("-w").arg(&raw);
        if ssml {
            cmd.arg("-m");
        }
        // "--" so a text starting with '-' is never taken for an option.
        cmd.arg("--")
            .arg(text)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        let out = cmd
            .output()
            .await
            .map_err(|e| format!("TTS program {:?}: {e}", self.program))?;
        if !out.status.success() {
            let _ = std::fs::remove_file(&raw);
            return Err(format!(
                "TTS failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let bytes = std::fs::read(&raw).map_err(|e| format!("TTS output: {e}"));
        let _ = std::fs::remove_file(&raw);
        let (rate, pcm) = read_pcm16_wav(&bytes?)?;
        let pcm = resample_to_8k(&pcm, rate);
        let tmp = self
            .cache_dir
            .join(format!("{name}.{}.tmp", std::process::id()));
        std::fs::write(&tmp, encode_wav(WavEncoding::Pcm16, &pcm))
            .and_then(|_| std::fs::rename(&tmp, &cached))
            .map_err(|e| format!("TTS cache write: {e}"))?;
        Ok(Prompt::from_pcm(pcm))
    }
}

/// A voice name passed to the TTS program: letters, digits, `-`, `+`, `_` only.
fn is_voice_name(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 64
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-+_".contains(&b))
}

/// (sample rate, mono PCM16 samples) of a PCM16 WAV file (what espeak-ng writes).
pub fn read_pcm16_wav(b: &[u8]) -> Result<(u32, Vec<i16>), String> {
    if b.len() < 12 || &b[0..4] != b"RIFF" || &b[8..12] != b"WAVE" {
        return Err("TTS output is not a WAV file".into());
    }
    let mut at = 12;
    let (mut rate, mut channels, mut bits) = (0u32, 0u16, 0u16);
    while at + 8 <= b.len() {
        let id = &b[at..at + 4];
        let len = u32::from_le_bytes([b[at + 4], b[at + 5], b[at + 6], b[at + 7]]) as usize;
        let body = at + 8;
        if id == b"fmt " && body + 16 <= b.len() {
            channels = u16::from_le_bytes([b[body + 2], b[body + 3]]);
            rate = u32::from_le_bytes([b[body + 4], b[body + 5], b[body + 6], b[body + 7]]);
            bits = u16::from_le_bytes([b[body + 14], b[body + 15]]);
        } else if id == b"data" {
            if bits != 16 || channels == 0 || rate == 0 {
                return Err(format!(
                    "TTS output: {bits}-bit, {channels} channels, {rate} Hz; 16-bit PCM expected"
                ));
            }
            // espeak-ng writing to a file leaves the data length at its maximum: read to the end.
            let end = body.saturating_add(len).min(b.len());
            let frame = 2 * channels as usize;
            let pcm = b[body..end]
                .chunks_exact(frame)
                .map(|f| i16::from_le_bytes([f[0], f[1]]))
                .collect();
            return Ok((rate, pcm));
        }
        at = body + len + (len & 1);
    }
    Err("TTS output has no data chunk".into())
}

/// Resamples to 8 kHz: a box filter over each output period (anti-aliasing) with linear
/// positions, good enough for speech prompts.
pub fn resample_to_8k(pcm: &[i16], rate: u32) -> Vec<i16> {
    if rate == 8000 || pcm.is_empty() {
        return pcm.to_vec();
    }
    let step = rate as f64 / 8000.0;
    let n = (pcm.len() as f64 / step) as usize;
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let start = i as f64 * step;
        let (a, b) = (
            start as usize,
            ((start + step) as usize)
                .min(pcm.len())
                .max(start as usize + 1),
        );
        let sum: i64 = pcm[a..b.min(pcm.len())].iter().map(|&s| s as i64).sum();
        out.push((sum / (b - a) as i64) as i16);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resampling_keeps_duration_and_level() {
        let pcm = vec![1000i16; 22050];
        let out = resample_to_8k(&pcm, 22050);
        assert_eq!(out.len(), 8000);
        assert!(out.iter().all(|&s| s == 1000));
        assert_eq!(resample_to_8k(&[5, 6], 8000), vec![5, 6]);
    }

    #[test]
    fn reads_pcm16_wav_and_refuses_others() {
        let wav = encode_wav(WavEncoding::Pcm16, &[1, -2, 3]);
        assert_eq!(read_pcm16_wav(&wav).unwrap(), (8000, vec![1, -2, 3]));
        assert!(read_pcm16_wav(b"not a wav").is_err());
        let ulaw = encode_wav(WavEncoding::Ulaw, &[1, 2]);
        assert!(read_pcm16_wav(&ulaw).unwrap_err().contains("8-bit"));
    }

    #[test]
    fn voice_names_are_checked() {
        assert!(is_voice_name("en-us"));
        assert!(is_voice_name("en+f3"));
        assert!(!is_voice_name("-w /etc/passwd"));
        assert!(!is_voice_name(""));
    }
}
