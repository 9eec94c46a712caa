//! Identifiers and secrets.
//!
//! Rows use database-generated integer keys. Anything that leaves the process (lease ids, job ids,
//! call ids) gets a [`public_id`]: a kind prefix plus 26 Crockford base32 characters holding a
//! 48-bit millisecond timestamp and 80 random bits, so ids sort by creation time, need no
//! coordination between nodes, and cannot be guessed.

use rand::RngCore;

const CROCKFORD: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// A new time-ordered, unguessable id such as `lease_01jdx8...`.
pub fn public_id(kind: &str, now_ms: i64) -> String {
    let mut random = [0u8; 10];
    rand::rng().fill_bytes(&mut random);
    let mut value: u128 = (now_ms as u128 & 0xffff_ffff_ffff) << 80;
    for (i, b) in random.iter().enumerate() {
        value |= (*b as u128) << (8 * (9 - i));
    }
    let mut out = String::with_capacity(kind.len() + 27);
    out.push_str(kind);
    out.push('_');
    for i in (0..26).rev() {
        out.push(CROCKFORD[((value >> (5 * i)) & 31) as usize] as char);
    }
    out
}

/// `n` random bytes from the operating system's CSPRNG, as lowercase Crockford base32.
pub fn random_base32(n_chars: usize) -> String {
    let mut rng = rand::rng();
    (0..n_chars)
        .map(|_| CROCKFORD[(rng.next_u32() & 31) as usize] as char)
        .collect()
}

/// `n` random bytes as unpadded base64url text.
pub fn random_base64url(n_bytes: usize) -> String {
    use base64::Engine;
    let mut buf = vec![0u8; n_bytes];
    rand::rng().fill_bytes(&mut buf);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_ids_sort_by_time_and_do_not_repeat() {
        let a = public_id("lease", 1_700_000_000_000);
        let b = public_id("lease", 1_700_000_000_001);
        assert!(a.starts_with("lease_") && a.len() == 6 + 26);
        assert!(a < b, "{a} should sort before {b}");
        let same: std::collections::HashSet<_> = (0..1000).map(|_| public_id("x", 5)).collect();
        assert_eq!(same.len(), 1000);
    }

    #[test]
    fn random_text_has_the_asked_length() {
        assert_eq!(random_base32(8).len(), 8);
        assert_eq!(random_base64url(32).len(), 43);
    }
}
