//! Prompt playback: a WAV file (or any samples) cut into 20 ms frames. Companded prompts keep
//! their original bytes so a µ-law prompt goes out on a PCMU call bit-exact; the last frame is
//! padded with silence.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;

use super::frame::{Frame, FrameSource};
use super::g711::Codec;
use super::sender::FRAME_SAMPLES;
use super::wav::{Wav, WavError};

/// Loaded prompt audio, cheap to clone and share between calls.
#[derive(Debug, Clone)]
pub struct Prompt {
    pcm: Arc<Vec<i16>>,
    encoded: Option<(Codec, Arc<Vec<u8>>)>,
}

impl Prompt {
    /// Loads a WAV file (8 kHz mono PCM16/µ-law/A-law).
    pub fn from_wav_file(path: &Path) -> Result<Prompt, WavError> {
        Ok(Prompt::from_wav(Wav::read(path)?))
    }

    /// From a parsed WAV.
    pub fn from_wav(w: Wav) -> Prompt {
        let encoded = w.encoding.codec().map(|c| (c, Arc::new(w.raw)));
        Prompt {
            pcm: Arc::new(w.pcm),
            encoded,
        }
    }

    /// From linear samples.
    pub fn from_pcm(pcm: Vec<i16>) -> Prompt {
        Prompt {
            pcm: Arc::new(pcm),
            encoded: None,
        }
    }

    /// Length in samples.
    pub fn len(&self) -> usize {
        self.pcm.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.pcm.is_empty()
    }

    /// A player positioned at the start.
    pub fn player(&self) -> PromptPlayer {
        PromptPlayer {
            prompt: self.clone(),
            pos: 0,
            loops_left: 1,
        }
    }

    /// A player that repeats the prompt `times` times (e.g. hold music).
    pub fn player_looped(&self, times: u32) -> PromptPlayer {
        PromptPlayer {
            prompt: self.clone(),
            pos: 0,
            loops_left: times,
        }
    }
}

/// Plays a [`Prompt`].
#[derive(Debug, Clone)]
pub struct PromptPlayer {
    prompt: Prompt,
    pos: usize,
    loops_left: u32,
}

impl FrameSource for PromptPlayer {
    fn next_frame(&mut self) -> Option<Frame> {
        if self.pos >= self.prompt.pcm.len() {
            if self.loops_left <= 1 || self.prompt.pcm.is_empty() {
                return None;
            }
            self.loops_left -= 1;
            self.pos = 0;
        }
        let end = (self.pos + FRAME_SAMPLES).min(self.prompt.pcm.len());
        let mut pcm = self.prompt.pcm[self.pos..end].to_vec();
        let encoded = self.prompt.encoded.as_ref().map(|(c, raw)| {
            let mut b = raw[self.pos..end].to_vec();
            b.resize(FRAME_SAMPLES, c.silence());
            (*c, Bytes::from(b))
        });
        pcm.resize(FRAME_SAMPLES, 0);
        self.pos = end;
        Some(Frame { pcm, encoded })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::wav::{WavEncoding, encode_wav};

    #[test]
    fn frames_cover_the_prompt_and_pad_the_last() {
        let pcm: Vec<i16> = (0..400).map(|i| (i * 50) as i16).collect();
        let w = Wav::parse(&encode_wav(WavEncoding::Ulaw, &pcm)).unwrap();
        let raw = w.raw.clone();
        let mut p = Prompt::from_wav(w).player();
        let frames: Vec<Frame> = std::iter::from_fn(|| p.next_frame()).collect();
        assert_eq!(frames.len(), 3);
        let sent: Vec<u8> = frames
            .iter()
            .flat_map(|f| f.payload(Codec::Pcmu).to_vec())
            .collect();
        assert_eq!(&sent[..400], &raw[..]);
        assert!(sent[400..].iter().all(|&b| b == 0xFF));
        assert!(frames[2].pcm[80..].iter().all(|&s| s == 0));
    }

    #[test]
    fn looping() {
        let mut p = Prompt::from_pcm(vec![1; 320]).player_looped(3);
        assert_eq!(std::iter::from_fn(|| p.next_frame()).count(), 6);
    }
}
