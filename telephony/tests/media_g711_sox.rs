//! Our G.711 encoders and decoders against sox's (an independent implementation), over every
//! 16-bit value and every code.

mod media_support;

use media_support::{Scratch, read_s16, run, write_s16};
use telephony::media::g711::{alaw_to_linear, linear_to_alaw, linear_to_ulaw, ulaw_to_linear};

/// sox converts 16-bit samples to the 14-bit (µ-law) / 13-bit (A-law) uniform code by rounding to
/// nearest and then applies the classic Sun encoder; we follow ITU-T G.191 (truncation, one's
/// complement for negatives). The G.711 step itself is the same, so the codes must agree except
/// on the few samples that sit within rounding distance of a decision level, and there the two
/// codes must be neighbours (or both a zero).
#[test]
fn encoders_match_sox_except_at_rounding_boundaries() {
    if !foundation::testing::require_tool("sox", "sox") {
        return;
    }
    let dir = Scratch::new("g711");
    let all: Vec<i16> = (i16::MIN..=i16::MAX).collect();
    let input = dir.path("all.s16");
    write_s16(&input, &all);
    let inp = input.to_str().unwrap();
    type Enc = fn(i16) -> u8;
    type Dec = fn(u8) -> i16;
    for (law, enc, dec, max_boundary) in [
        ("ul", linear_to_ulaw as Enc, ulaw_to_linear as Dec, 2 * 256),
        ("al", linear_to_alaw as Enc, alaw_to_linear as Dec, 4 * 256),
    ] {
        let out = dir.path(&format!("all.{law}"));
        // -D: no dither, so sox's encoder sees exactly our input.
        run(
            "sox",
            &[
                "-D",
                "-t",
                "s16",
                "-r",
                "8000",
                "-c",
                "1",
                inp,
                "-t",
                law,
                out.to_str().unwrap(),
            ],
        );
        let theirs = std::fs::read(&out).unwrap();
        assert_eq!(theirs.len(), all.len());
        let mut boundary = 0;
        for (s, t) in all.iter().zip(&theirs) {
            let o = enc(*s);
            if o == *t {
                continue;
            }
            // A-law toggles the even bits on the wire; adjacent levels are adjacent once untoggled.
            let key = |c: u8| {
                if law == "al" {
                    (c ^ 0x55) as i32
                } else {
                    c as i32
                }
            };
            let neighbours = (key(o) - key(*t)).abs() == 1 || dec(o) == dec(*t)
                // A-law has no zero: the two smallest levels (±8) straddle it.
                || (dec(o) == -dec(*t) && dec(o).abs() == 8);
            assert!(
                neighbours,
                "{law}: sample {s}: ours {o:#04x} ({}), sox {t:#04x} ({})",
                dec(o),
                dec(*t)
            );
            // sox's code must be ours for a sample within rounding distance (half a 14-/13-bit unit,
            // plus the one's-complement offset): the sample sits on a decision boundary.
            let reach = if law == "ul" { 4 } else { 8 };
            let near = (-reach..=reach).any(|d| {
                (*s as i32 + d).clamp(-32768, 32767) as i16 != *s
                    && enc((*s as i32 + d).clamp(-32768, 32767) as i16) == *t
            });
            assert!(near, "{law}: sample {s} is not at a decision boundary");
            boundary += 1;
        }
        assert!(
            boundary <= max_boundary,
            "{law}: {boundary} differing samples"
        );
    }
}

#[test]
fn decoders_match_sox_for_every_code() {
    if !foundation::testing::require_tool("sox", "sox") {
        return;
    }
    let dir = Scratch::new("g711dec");
    let codes: Vec<u8> = (0..=255).collect();
    for (law, ours) in [
        ("ul", ulaw_to_linear as fn(u8) -> i16),
        ("al", alaw_to_linear as fn(u8) -> i16),
    ] {
        let input = dir.path(&format!("codes.{law}"));
        std::fs::write(&input, &codes).unwrap();
        let out = dir.path(&format!("codes-{law}.s16"));
        run(
            "sox",
            &[
                "-D",
                "-t",
                law,
                "-r",
                "8000",
                "-c",
                "1",
                input.to_str().unwrap(),
                "-t",
                "s16",
                out.to_str().unwrap(),
            ],
        );
        let theirs = read_s16(&out);
        let ours: Vec<i16> = codes.iter().map(|c| ours(*c)).collect();
        assert_eq!(ours, theirs, "{law}");
    }
}
