//! G.711 µ-law (PCMU, RTP payload type 0) and A-law (PCMA, payload type 8) companding, exactly as
//! ITU-T G.711 specifies, bit for bit as the ITU-T G.191 software tools library (`g711.c`)
//! compresses and expands 16-bit samples (sox does the same; a test checks every value).
//!
//! All four directions are table lookups; the tables are computed at compile time from the
//! reference rules, so there is no per-sample branching at run time.

/// The two G.711 laws.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// µ-law, static RTP payload type 0.
    Pcmu,
    /// A-law, static RTP payload type 8.
    Pcma,
}

impl Codec {
    /// The static RTP payload type (RFC 3551).
    pub const fn payload_type(self) -> u8 {
        match self {
            Codec::Pcmu => 0,
            Codec::Pcma => 8,
        }
    }

    /// The codec for a static payload type, if it is a G.711 one.
    pub const fn from_payload_type(pt: u8) -> Option<Codec> {
        match pt {
            0 => Some(Codec::Pcmu),
            8 => Some(Codec::Pcma),
            _ => None,
        }
    }

    /// The SDP encoding name (`a=rtpmap:0 PCMU/8000`).
    pub const fn name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
        }
    }

    /// Encodes 16-bit linear samples, one byte per sample.
    pub fn encode(self, pcm: &[i16]) -> Vec<u8> {
        match self {
            Codec::Pcmu => pcm.iter().map(|&s| linear_to_ulaw(s)).collect(),
            Codec::Pcma => pcm.iter().map(|&s| linear_to_alaw(s)).collect(),
        }
    }

    /// Decodes one byte per sample to 16-bit linear samples.
    pub fn decode(self, bytes: &[u8]) -> Vec<i16> {
        match self {
            Codec::Pcmu => bytes.iter().map(|&b| ulaw_to_linear(b)).collect(),
            Codec::Pcma => bytes.iter().map(|&b| alaw_to_linear(b)).collect(),
        }
    }

    /// The code of digital silence for this law (what a linear 0 encodes to).
    pub const fn silence(self) -> u8 {
        match self {
            Codec::Pcmu => 0xFF,
            Codec::Pcma => 0xD5,
        }
    }
}

const ULAW_BIAS: i32 = 0x84;

/// The ITU-T G.191 (STL `g711.c`) µ-law compressor for one 16-bit sample: negative values are
/// taken in one's complement, so -1 is "negative zero" (0x7F) as G.711 intends.
const fn ulaw_encode16(s: i32) -> u8 {
    let mag = if s < 0 { !s } else { s };
    let mut absno = (mag >> 2) + 33;
    if absno > 0x1FFF {
        absno = 0x1FFF;
    }
    let mut i = absno >> 6;
    let mut segno = 1;
    while i != 0 {
        segno += 1;
        i >>= 1;
    }
    let high = 8 - segno;
    let low = 0xF - ((absno >> segno) & 0xF);
    let code = (high << 4) | low;
    (if s >= 0 { code | 0x80 } else { code }) as u8
}

/// The ITU-T G.191 A-law compressor for one 16-bit sample (12 most significant bits used).
const fn alaw_encode16(s: i32) -> u8 {
    let mut ix = if s < 0 { !s } else { s } >> 4;
    if ix > 15 {
        let mut iexp = 1;
        while ix > 16 + 15 {
            ix >>= 1;
            iexp += 1;
        }
        ix -= 16;
        ix += iexp << 4;
    }
    if s >= 0 {
        ix |= 0x80;
    }
    (ix ^ 0x55) as u8
}

const fn ulaw_decode(u: u8) -> i16 {
    let u = !u as i32;
    let mut t = ((u & 0x0F) << 3) + ULAW_BIAS;
    t <<= (u & 0x70) >> 4;
    (if u & 0x80 != 0 {
        ULAW_BIAS - t
    } else {
        t - ULAW_BIAS
    }) as i16
}

const fn alaw_decode(a: u8) -> i16 {
    let a = (a ^ 0x55) as i32;
    let mut t = (a & 0x0F) << 4;
    let seg = (a & 0x70) >> 4;
    match seg {
        0 => t += 8,
        1 => t += 0x108,
        _ => {
            t += 0x108;
            t <<= seg - 1;
        }
    }
    (if a & 0x80 != 0 { t } else { -t }) as i16
}

/// µ-law encoder table indexed by the 14-bit two's-complement sample (`(s >> 2) & 0x3FFF`).
static ULAW_ENCODE: [u8; 16384] = {
    let mut t = [0u8; 16384];
    let mut i = 0;
    while i < 16384 {
        let v = if i >= 8192 {
            i as i32 - 16384
        } else {
            i as i32
        };
        t[i] = ulaw_encode16(v << 2);
        i += 1;
    }
    t
};

/// A-law encoder table indexed by the 13-bit two's-complement sample (`(s >> 3) & 0x1FFF`).
static ALAW_ENCODE: [u8; 8192] = {
    let mut t = [0u8; 8192];
    let mut i = 0;
    while i < 8192 {
        let v = if i >= 4096 { i as i32 - 8192 } else { i as i32 };
        t[i] = alaw_encode16(v << 3);
        i += 1;
    }
    t
};

static ULAW_DECODE: [i16; 256] = {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = ulaw_decode(i as u8);
        i += 1;
    }
    t
};

static ALAW_DECODE: [i16; 256] = {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = alaw_decode(i as u8);
        i += 1;
    }
    t
};

/// Encodes one 16-bit linear sample to µ-law.
#[inline]
pub fn linear_to_ulaw(s: i16) -> u8 {
    ULAW_ENCODE[((s >> 2) as u16 & 0x3FFF) as usize]
}

/// Decodes one µ-law byte to a 16-bit linear sample.
#[inline]
pub fn ulaw_to_linear(u: u8) -> i16 {
    ULAW_DECODE[u as usize]
}

/// Encodes one 16-bit linear sample to A-law.
#[inline]
pub fn linear_to_alaw(s: i16) -> u8 {
    ALAW_ENCODE[((s >> 3) as u16 & 0x1FFF) as usize]
}

/// Decodes one A-law byte to a 16-bit linear sample.
#[inline]
pub fn alaw_to_linear(a: u8) -> i16 {
    ALAW_DECODE[a as usize]
}

/// Converts µ-law bytes to A-law directly (through the linear value; the result is the A-law code
/// nearest to the µ-law level).
pub fn ulaw_to_alaw(bytes: &[u8]) -> Vec<u8> {
    bytes
        .iter()
        .map(|&b| linear_to_alaw(ulaw_to_linear(b)))
        .collect()
}

/// Converts A-law bytes to µ-law directly.
pub fn alaw_to_ulaw(bytes: &[u8]) -> Vec<u8> {
    bytes
        .iter()
        .map(|&b| linear_to_ulaw(alaw_to_linear(b)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulaw_known_values() {
        // Values from the G.711 tables: code 0xFF/0x7F are ±0, 0x80/0x00 are ±32124.
        assert_eq!(ulaw_to_linear(0xFF), 0);
        assert_eq!(ulaw_to_linear(0x7F), 0);
        assert_eq!(ulaw_to_linear(0x80), 32124);
        assert_eq!(ulaw_to_linear(0x00), -32124);
        assert_eq!(ulaw_to_linear(0xFE), 8);
        assert_eq!(ulaw_to_linear(0x7E), -8);
        assert_eq!(ulaw_to_linear(0xEF), 132);
        assert_eq!(linear_to_ulaw(0), 0xFF);
        // One's complement for negatives: -1..-4 are negative zero.
        assert_eq!(linear_to_ulaw(-1), 0x7F);
        assert_eq!(linear_to_ulaw(-4), 0x7F);
        assert_eq!(linear_to_ulaw(-5), 0x7E);
        assert_eq!(linear_to_ulaw(3), 0xFF);
        assert_eq!(linear_to_ulaw(i16::MAX), 0x80);
        assert_eq!(linear_to_ulaw(i16::MIN), 0x00);
        assert_eq!(linear_to_ulaw(1000), 0xCE);
        assert_eq!(linear_to_ulaw(-1000), 0x4E);
    }

    #[test]
    fn alaw_known_values() {
        assert_eq!(alaw_to_linear(0xD5), 8);
        assert_eq!(alaw_to_linear(0x55), -8);
        assert_eq!(alaw_to_linear(0xAA), 32256);
        assert_eq!(alaw_to_linear(0x2A), -32256);
        assert_eq!(linear_to_alaw(0), 0xD5);
        assert_eq!(linear_to_alaw(-1), 0x55);
        assert_eq!(linear_to_alaw(i16::MAX), 0xAA);
        assert_eq!(linear_to_alaw(i16::MIN), 0x2A);
        assert_eq!(linear_to_alaw(1000), 0xFA);
        assert_eq!(linear_to_alaw(-1000), 0x7A);
    }

    #[test]
    fn decode_then_encode_is_identity() {
        for code in 0..=255u8 {
            let back = linear_to_ulaw(ulaw_to_linear(code));
            // 0x7F is µ-law "negative zero": it decodes to 0, which encodes as 0xFF.
            let want = if code == 0x7F { 0xFF } else { code };
            assert_eq!(back, want, "µ-law code {code:#04x}");
            assert_eq!(
                linear_to_alaw(alaw_to_linear(code)),
                code,
                "A-law code {code:#04x}"
            );
        }
    }

    #[test]
    fn decode_is_monotonic_in_level() {
        // Codes 0x80..=0xFF are positive; larger magnitude as the code falls (µ-law).
        let pos: Vec<i16> = (0x80..=0xFFu8).rev().map(ulaw_to_linear).collect();
        assert!(pos.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn encode_error_is_within_one_quantisation_step() {
        // Every linear value must encode to the code whose level is nearest (within the step of its
        // segment), for both laws.
        for s in (i16::MIN as i32..=i16::MAX as i32).step_by(7) {
            let s = s as i16;
            let u = ulaw_to_linear(linear_to_ulaw(s)) as i32;
            let a = alaw_to_linear(linear_to_alaw(s)) as i32;
            let mag = (s as i32).abs();
            // A segment's step is between 1/16 and 1/8 of the levels it covers (16 at the bottom).
            let ustep = if mag > 32124 {
                2 * (mag - 32124) + 1100
            } else {
                (mag / 8).max(16)
            };
            let astep = if mag > 32256 {
                2 * (mag - 32256) + 1100
            } else {
                (mag / 8).max(16)
            };
            assert!((u - s as i32).abs() <= ustep, "µ-law {s} -> {u}");
            assert!((a - s as i32).abs() <= astep, "A-law {s} -> {a}");
        }
    }

    #[test]
    fn transcoding_round_trip_stays_close() {
        let pcm: Vec<i16> = (0..160)
            .map(|i| ((i as f64 * 0.3).sin() * 12000.0) as i16)
            .collect();
        let u = Codec::Pcmu.encode(&pcm);
        let a = ulaw_to_alaw(&u);
        let back = alaw_to_ulaw(&a);
        for (x, y) in u.iter().zip(&back) {
            let d = (ulaw_to_linear(*x) as i32 - ulaw_to_linear(*y) as i32).abs();
            assert!(d <= (ulaw_to_linear(*x) as i32).abs() / 8 + 16);
        }
        assert_eq!(Codec::from_payload_type(8), Some(Codec::Pcma));
        assert_eq!(Codec::Pcmu.payload_type(), 0);
    }
}
