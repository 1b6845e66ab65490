//! API keys shaped `tk_<key_id>_<secret>`: a 16-character key id (80 random bits) and a
//! 52-character secret (256 random bits), both lowercase RFC 4648 base32 so that the key is
//! one word to a double-click and has no `_` inside its parts.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
pub const KEY_ID_LEN: usize = 16;
pub const SECRET_LEN: usize = 52;
const PREFIX: &str = "tk_";

fn base32(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let (mut buf, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buf = (buf << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buf >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buf << (5 - bits)) & 31) as usize] as char);
    }
    out
}

fn is_base32(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|c| ALPHABET.contains(&c))
}

/// A freshly made key. `plaintext` is shown once to its owner and never stored; only
/// `key_id` and `secret_hash` are.
pub struct NewKey {
    pub plaintext: String,
    pub key_id: String,
    pub secret_hash: [u8; 32],
}

/// Builds a key from caller-supplied random bytes (this crate makes no randomness).
pub fn from_random(key_id_bytes: [u8; 10], secret_bytes: [u8; 32]) -> NewKey {
    let key_id = base32(&key_id_bytes);
    let secret = base32(&secret_bytes);
    NewKey {
        plaintext: format!("{PREFIX}{key_id}_{secret}"),
        secret_hash: hash_secret(&secret),
        key_id,
    }
}

/// `(key_id, secret)` of a well-formed key: exactly `tk_` + 16 + `_` + 52 lowercase base32
/// characters, length checked first.
pub fn parse(s: &str) -> Option<(&str, &str)> {
    if s.len() != PREFIX.len() + KEY_ID_LEN + 1 + SECRET_LEN {
        return None;
    }
    let rest = s.strip_prefix(PREFIX)?;
    let (key_id, secret) = rest.split_once('_')?;
    (is_base32(key_id, KEY_ID_LEN) && is_base32(secret, SECRET_LEN)).then_some((key_id, secret))
}

/// The key id of a whole key, or a bare key id.
pub fn parse_key_or_id(s: &str) -> Option<&str> {
    if is_base32(s, KEY_ID_LEN) {
        return Some(s);
    }
    parse(s).map(|(id, _)| id)
}

/// SHA-256 of the secret's text (not of its decoded bytes). A plain hash suffices: the
/// secret carries 256 random bits, so there is nothing to brute-force.
pub fn hash_secret(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Constant-time comparison with a stored hash; false when `stored` is not 32 bytes.
pub fn secret_matches(secret: &str, stored: &[u8]) -> bool {
    stored.len() == 32 && bool::from(hash_secret(secret).ct_eq(stored))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base32_vectors() {
        // RFC 4648 §10, lowercase, unpadded.
        assert_eq!(base32(b"f"), "my");
        assert_eq!(base32(b"foobar"), "mzxw6ytboi");
    }

    #[test]
    fn shape_and_round_trip() {
        let k = from_random([1; 10], [2; 32]);
        assert!(k.plaintext.starts_with("tk_"));
        assert_eq!(k.key_id.len(), 16);
        let (id, secret) = parse(&k.plaintext).unwrap();
        assert_eq!(id, k.key_id);
        assert!(secret_matches(secret, &k.secret_hash));
        assert!(!secret_matches(&secret.replace('a', "b"), &k.secret_hash));
        assert!(!secret_matches(secret, &k.secret_hash[..31]));
        assert_eq!(parse_key_or_id(&k.plaintext), Some(k.key_id.as_str()));
        assert_eq!(parse_key_or_id(&k.key_id), Some(k.key_id.as_str()));
    }

    #[test]
    fn strict_parsing() {
        let k = from_random([3; 10], [4; 32]).plaintext;
        assert!(parse(&k.replacen("tk_", "tx_", 1)).is_none());
        assert!(parse(&k.to_uppercase()).is_none());
        assert!(parse(&k[..k.len() - 1]).is_none());
        assert!(parse(&format!("{k}a")).is_none());
        let mut extra = k.clone();
        extra.replace_range(10..11, "_");
        assert!(parse(&extra).is_none());
        assert!(parse("").is_none());
        assert!(parse_key_or_id("tk_short").is_none());
    }

    #[test]
    fn from_random_shape() {
        let k = from_random([0xff; 10], [0; 32]);
        assert_eq!(k.key_id, "7".repeat(16));
        assert_eq!(k.plaintext.len(), 3 + 16 + 1 + 52);
        assert_eq!(
            k.plaintext,
            format!("tk_{}_{}", "7".repeat(16), "a".repeat(52))
        );
        assert_eq!(k.secret_hash, hash_secret(&"a".repeat(52)));
        let other = from_random([0xff; 10], [1; 32]);
        assert_ne!(other.secret_hash, k.secret_hash);
        assert!(from_random([7; 10], [9; 32])
            .plaintext
            .bytes()
            .all(|c| c == b'_' || ALPHABET.contains(&c)));
    }

    #[test]
    fn wrong_part_lengths_refused() {
        let id = "a".repeat(16);
        let secret = "b".repeat(52);
        assert!(parse(&format!("tk_{id}_{secret}")).is_some());
        // Same total length, split in the wrong place.
        assert!(parse(&format!("tk_{}_{}", &id[..15], "b".repeat(53))).is_none());
        assert!(parse(&format!("tk_{}a_{}", id, &secret[..51])).is_none());
        assert!(parse(&format!("tk_{id}{secret}_")).is_none());
        assert!(parse(&format!("tk_{id}__{}", &secret[..51])).is_none());
        assert!(parse(&format!("tk_{id}-{secret}")).is_none());
        assert!(parse(&format!("TK_{id}_{secret}")).is_none());
        assert!(parse(&format!("tk_{id}_{}1", &secret[..51])).is_none());
        assert!(parse(&format!("tk_{id}_{}8", &secret[..51])).is_none());
        assert!(parse(&format!("tk_{id}_{}=", &secret[..51])).is_none());
        assert!(parse(&format!("tk_{id}_{}é", &secret[..50])).is_none());
        assert!(parse(&format!(" tk_{id}_{}", &secret[..51])).is_none());
        assert!(parse(&format!("tk_{id}_{secret}").repeat(1000)).is_none());
    }

    #[test]
    fn key_or_id() {
        let k = from_random([5; 10], [6; 32]);
        assert_eq!(parse_key_or_id(&k.key_id), Some(k.key_id.as_str()));
        assert_eq!(parse_key_or_id(&k.plaintext), Some(k.key_id.as_str()));
        assert!(parse_key_or_id(&k.key_id.to_uppercase()).is_none());
        assert!(parse_key_or_id(&k.key_id[..15]).is_none());
        assert!(parse_key_or_id(&format!("tk_{}", k.key_id)).is_none());
        assert!(parse_key_or_id("").is_none());
    }

    #[test]
    fn hash_and_match() {
        // SHA-256("abc"), FIPS 180-2.
        let h = hash_secret("abc");
        assert_eq!(h[..4], [0xba, 0x78, 0x16, 0xbf]);
        assert_eq!(h[28..], [0xf2, 0x00, 0x15, 0xad]);
        let k = from_random([1; 10], [2; 32]);
        let (_, secret) = parse(&k.plaintext).unwrap();
        assert!(secret_matches(secret, &k.secret_hash));
        let mut flipped = k.secret_hash;
        flipped[0] ^= 1;
        assert!(!secret_matches(secret, &flipped));
        assert!(!secret_matches("", &k.secret_hash));
        assert!(!secret_matches(secret, &[]));
        assert!(!secret_matches(
            secret,
            &[k.secret_hash.to_vec(), vec![0]].concat()
        ));
        let other = from_random([1; 10], [3; 32]);
        let (_, other_secret) = parse(&other.plaintext).unwrap();
        assert!(!secret_matches(other_secret, &k.secret_hash));
    }
}
