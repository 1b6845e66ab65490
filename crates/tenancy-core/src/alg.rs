//! The HMAC algorithms a signing key may be registered with.

use hmac::{Hmac, Mac};
use sha2::{Sha256, Sha384, Sha512};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    HS256,
    HS384,
    HS512,
}

impl Alg {
    /// Exact and case-sensitive, as JWS requires; `none` is never an algorithm here.
    pub fn parse(s: &str) -> Option<Alg> {
        match s {
            "HS256" => Some(Alg::HS256),
            "HS384" => Some(Alg::HS384),
            "HS512" => Some(Alg::HS512),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Alg::HS256 => "HS256",
            Alg::HS384 => "HS384",
            Alg::HS512 => "HS512",
        }
    }

    /// RFC 7518 §3.2: a key at least as long as the hash output.
    pub fn min_key_len(self) -> usize {
        match self {
            Alg::HS256 => 32,
            Alg::HS384 => 48,
            Alg::HS512 => 64,
        }
    }

    pub fn mac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        // new_from_slice accepts keys of any length for HMAC; it cannot fail.
        match self {
            Alg::HS256 => mac_with::<Hmac<Sha256>>(key, data),
            Alg::HS384 => mac_with::<Hmac<Sha384>>(key, data),
            Alg::HS512 => mac_with::<Hmac<Sha512>>(key, data),
        }
    }

    /// Constant-time comparison of the expected MAC with `sig`.
    pub fn verify(self, key: &[u8], data: &[u8], sig: &[u8]) -> bool {
        match self {
            Alg::HS256 => verify_with::<Hmac<Sha256>>(key, data, sig),
            Alg::HS384 => verify_with::<Hmac<Sha384>>(key, data, sig),
            Alg::HS512 => verify_with::<Hmac<Sha512>>(key, data, sig),
        }
    }
}

fn mac_with<M: Mac + hmac::digest::KeyInit>(key: &[u8], data: &[u8]) -> Vec<u8> {
    match <M as Mac>::new_from_slice(key) {
        Ok(mut m) => {
            m.update(data);
            m.finalize().into_bytes().to_vec()
        }
        Err(_) => Vec::new(),
    }
}

fn verify_with<M: Mac + hmac::digest::KeyInit>(key: &[u8], data: &[u8], sig: &[u8]) -> bool {
    match <M as Mac>::new_from_slice(key) {
        Ok(mut m) => {
            m.update(data);
            m.verify_slice(sig).is_ok()
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_is_exact() {
        assert_eq!(Alg::parse("HS256"), Some(Alg::HS256));
        assert_eq!(Alg::parse("hs256"), None);
        assert_eq!(Alg::parse("none"), None);
        assert_eq!(Alg::parse("RS256"), None);
    }

    #[test]
    fn rfc4231_case_2() {
        let mac = Alg::HS256.mac(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            mac.iter().map(|b| format!("{b:02x}")).collect::<String>(),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert!(Alg::HS256.verify(b"Jefe", b"what do ya want for nothing?", &mac));
        let mut bad = mac.clone();
        bad[31] ^= 1;
        assert!(!Alg::HS256.verify(b"Jefe", b"what do ya want for nothing?", &bad));
        assert!(!Alg::HS256.verify(b"Jefe", b"what do ya want for nothing?", &mac[..31]));
        assert_eq!(Alg::HS384.mac(b"k", b"d").len(), 48);
        assert_eq!(Alg::HS512.mac(b"k", b"d").len(), 64);
    }
}
