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

pub struct NewKey {
    pub plaintext: String,
    pub key_id: String,
    pub secret_hash: [u8; 32],
}

pub fn from_random(key_id_bytes: [u8; 10], secret_bytes: [u8; 32]) -> NewKey {
    let key_id = base32(&key_id_bytes);
    let secret = base32(&secret_bytes);
    NewKey {
        plaintext: format!("{PREFIX}{key_id}_{secret}"),
        secret_hash: hash_secret(&secret),
        key_id,
    }
}

/// `(key_id, secret)` of a well-formed key.
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

pub fn hash_secret(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

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
}
