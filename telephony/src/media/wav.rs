//! WAV files for prompts and recordings: 8 kHz mono PCM16, µ-law or A-law (including
//! WAVE_FORMAT_EXTENSIBLE headers and the `fact`/`LIST` chunks sox writes). Other rates, widths
//! and channel counts are refused with an error that says what the file is and how to convert it
//! (no resampling here).

use std::path::Path;

use super::g711::{Codec, alaw_to_linear, ulaw_to_linear};

/// Sample encoding of a WAV file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WavEncoding {
    /// 16-bit signed little-endian linear.
    Pcm16,
    /// G.711 µ-law, 8 bits.
    Ulaw,
    /// G.711 A-law, 8 bits.
    Alaw,
}

impl WavEncoding {
    /// The G.711 codec for the companded encodings.
    pub fn codec(self) -> Option<Codec> {
        match self {
            WavEncoding::Pcm16 => None,
            WavEncoding::Ulaw => Some(Codec::Pcmu),
            WavEncoding::Alaw => Some(Codec::Pcma),
        }
    }
}

/// A decoded WAV file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wav {
    /// How the samples were stored.
    pub encoding: WavEncoding,
    /// The samples as stored: 1 byte each for µ-law/A-law, 2 (LE) for PCM16.
    pub raw: Vec<u8>,
    /// The samples as 16-bit linear.
    pub pcm: Vec<i16>,
}

/// Why a WAV file was refused.
#[derive(Debug, thiserror::Error)]
pub enum WavError {
    /// Reading failed.
    #[error("cannot read WAV: {0}")]
    Io(#[from] std::io::Error),
    /// Not RIFF/WAVE or a chunk is cut short.
    #[error("not a WAV file: {0}")]
    Malformed(&'static str),
    /// A rate other than 8000 Hz.
    #[error(
        "WAV sample rate is {0} Hz; only 8000 Hz is supported (convert with: sox in.wav -r 8000 -c 1 out.wav)"
    )]
    UnsupportedRate(u32),
    /// More than one channel.
    #[error("WAV has {0} channels; only mono is supported (convert with: sox in.wav -c 1 out.wav)")]
    UnsupportedChannels(u16),
    /// An encoding other than PCM16/µ-law/A-law.
    #[error(
        "WAV format tag {format:#06x} with {bits} bits per sample is not supported (use PCM16, µ-law or A-law)"
    )]
    UnsupportedFormat {
        /// The WAVE format tag.
        format: u16,
        /// Bits per sample.
        bits: u16,
    },
}

fn u16le(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32le(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

impl Wav {
    /// Parses a WAV file from memory.
    pub fn parse(b: &[u8]) -> Result<Wav, WavError> {
        if b.len() < 12 || &b[0..4] != b"RIFF" || &b[8..12] != b"WAVE" {
            return Err(WavError::Malformed("no RIFF/WAVE header"));
        }
        let mut pos = 12;
        let mut fmt: Option<(WavEncoding, usize)> = None;
        while pos + 8 <= b.len() {
            let id = &b[pos..pos + 4];
            let size = u32le(b, pos + 4) as usize;
            let body = pos + 8;
            match id {
                b"fmt " => {
                    if size < 16 || body + 16 > b.len() {
                        return Err(WavError::Malformed("short fmt chunk"));
                    }
                    let mut format = u16le(b, body);
                    let channels = u16le(b, body + 2);
                    let rate = u32le(b, body + 4);
                    let bits = u16le(b, body + 14);
                    if format == 0xFFFE && size >= 40 && body + 26 <= b.len() {
                        // WAVE_FORMAT_EXTENSIBLE: the real tag starts the SubFormat GUID.
                        format = u16le(b, body + 24);
                    }
                    if rate != 8000 {
                        return Err(WavError::UnsupportedRate(rate));
                    }
                    if channels != 1 {
                        return Err(WavError::UnsupportedChannels(channels));
                    }
                    let enc = match (format, bits) {
                        (1, 16) => WavEncoding::Pcm16,
                        (7, 8) => WavEncoding::Ulaw,
                        (6, 8) => WavEncoding::Alaw,
                        _ => return Err(WavError::UnsupportedFormat { format, bits }),
                    };
                    fmt = Some((enc, if bits == 16 { 2 } else { 1 }));
                }
                b"data" => {
                    let Some((encoding, width)) = fmt else {
                        return Err(WavError::Malformed("data chunk before fmt chunk"));
                    };
                    // Tolerate a data size larger than the file (streams written without a final size).
                    let end = (body + size).min(b.len());
                    let end = body + (end - body) / width * width;
                    let raw = b[body..end].to_vec();
                    let pcm = match encoding {
                        WavEncoding::Pcm16 => raw
                            .chunks_exact(2)
                            .map(|c| i16::from_le_bytes([c[0], c[1]]))
                            .collect(),
                        WavEncoding::Ulaw => raw.iter().map(|&x| ulaw_to_linear(x)).collect(),
                        WavEncoding::Alaw => raw.iter().map(|&x| alaw_to_linear(x)).collect(),
                    };
                    return Ok(Wav { encoding, raw, pcm });
                }
                _ => {}
            }
            pos = body + size + (size & 1);
        }
        Err(WavError::Malformed("no data chunk"))
    }

    /// Reads and parses a WAV file.
    pub fn read(path: &Path) -> Result<Wav, WavError> {
        Wav::parse(&std::fs::read(path)?)
    }

    /// Duration in milliseconds.
    pub fn duration_ms(&self) -> u64 {
        self.pcm.len() as u64 / 8
    }
}

/// Builds a mono 8 kHz WAV file from linear samples in the given encoding.
pub fn encode_wav(encoding: WavEncoding, pcm: &[i16]) -> Vec<u8> {
    wav_from_raw(encoding, 1, &encode_samples(encoding, pcm))
}

/// Encodes linear samples as stored in a WAV file of `encoding` (PCM16 little-endian, or G.711).
pub fn encode_samples(encoding: WavEncoding, pcm: &[i16]) -> Vec<u8> {
    match encoding {
        WavEncoding::Pcm16 => pcm.iter().flat_map(|s| s.to_le_bytes()).collect(),
        WavEncoding::Ulaw => Codec::Pcmu.encode(pcm),
        WavEncoding::Alaw => Codec::Pcma.encode(pcm),
    }
}

/// The header of an 8 kHz WAV file whose data chunk holds `data_len` bytes (write it first with
/// 0 and again at the end when streaming to a file: it has a fixed length for a given encoding).
pub fn wav_header(encoding: WavEncoding, channels: u16, data_len: usize) -> Vec<u8> {
    let (tag, bits): (u16, u16) = match encoding {
        WavEncoding::Pcm16 => (1, 16),
        WavEncoding::Ulaw => (7, 8),
        WavEncoding::Alaw => (6, 8),
    };
    let block_align = channels * bits / 8;
    let byte_rate = 8000 * block_align as u32;
    let companded = encoding != WavEncoding::Pcm16;
    // Non-PCM formats carry cbSize in fmt and a fact chunk (sample frames), as sox writes them.
    let fmt_size: u32 = if companded { 18 } else { 16 };
    let fact_len: u32 = if companded { 12 } else { 0 };
    let pad = data_len & 1;
    let riff_size = 4 + (8 + fmt_size) + fact_len + 8 + data_len as u32 + pad as u32;
    let mut out = Vec::with_capacity(60);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&riff_size.to_le_bytes());
    out.extend_from_slice(b"WAVE");
    out.extend_from_slice(b"fmt ");
    out.extend_from_slice(&fmt_size.to_le_bytes());
    out.extend_from_slice(&tag.to_le_bytes());
    out.extend_from_slice(&channels.to_le_bytes());
    out.extend_from_slice(&8000u32.to_le_bytes());
    out.extend_from_slice(&byte_rate.to_le_bytes());
    out.extend_from_slice(&block_align.to_le_bytes());
    out.extend_from_slice(&bits.to_le_bytes());
    if companded {
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(b"fact");
        out.extend_from_slice(&4u32.to_le_bytes());
        out.extend_from_slice(&((data_len / block_align as usize) as u32).to_le_bytes());
    }
    out.extend_from_slice(b"data");
    out.extend_from_slice(&(data_len as u32).to_le_bytes());
    out
}

/// Builds an 8 kHz WAV file around already-encoded sample bytes (interleaved if `channels` > 1).
pub fn wav_from_raw(encoding: WavEncoding, channels: u16, data: &[u8]) -> Vec<u8> {
    let mut out = wav_header(encoding, channels, data.len());
    out.extend_from_slice(data);
    if data.len() & 1 == 1 {
        out.push(0);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_all_encodings() {
        let pcm: Vec<i16> = (0..801)
            .map(|i| ((i as f64 * 0.05).sin() * 9000.0) as i16)
            .collect();
        for enc in [WavEncoding::Pcm16, WavEncoding::Ulaw, WavEncoding::Alaw] {
            let w = Wav::parse(&encode_wav(enc, &pcm)).unwrap();
            assert_eq!(w.encoding, enc);
            assert_eq!(w.pcm.len(), 801);
            match enc.codec() {
                None => assert_eq!(w.pcm, pcm),
                Some(c) => assert_eq!(w.raw, c.encode(&pcm)),
            }
        }
    }

    #[test]
    fn other_rates_and_channels_are_refused_clearly() {
        let mut w = encode_wav(WavEncoding::Pcm16, &[0; 10]);
        w[24..28].copy_from_slice(&16000u32.to_le_bytes());
        let e = Wav::parse(&w).unwrap_err();
        assert!(matches!(e, WavError::UnsupportedRate(16000)));
        assert!(e.to_string().contains("only 8000 Hz"));
        let st = wav_from_raw(WavEncoding::Pcm16, 2, &[0; 8]);
        assert!(matches!(
            Wav::parse(&st),
            Err(WavError::UnsupportedChannels(2))
        ));
        assert!(matches!(
            Wav::parse(b"RIFF\0\0\0\0WAVEjunk"),
            Err(WavError::Malformed(_))
        ));
        assert!(matches!(Wav::parse(b"hello"), Err(WavError::Malformed(_))));
    }
}
