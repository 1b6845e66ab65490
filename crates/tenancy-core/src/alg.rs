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

    /// Constant-time comparison of the expected MAC with `sig`. A key shorter than
    /// [`Alg::min_key_len`] never verifies: an empty or truncated key (a bug loading key
    /// material) would otherwise let anyone who guesses it mint tokens and carriers.
    pub fn verify(self, key: &[u8], data: &[u8], sig: &[u8]) -> bool {
        if key.len() < self.min_key_len() {
            return false;
        }
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
        assert_eq!(Alg::parse("HS256 "), None);
        assert_eq!(Alg::parse(""), None);
        for alg in [Alg::HS256, Alg::HS384, Alg::HS512] {
            assert_eq!(Alg::parse(alg.as_str()), Some(alg));
        }
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// RFC 4231 test case 2, all three hashes.
    #[test]
    fn rfc4231_case_2() {
        let (key, data) = (b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            hex(&Alg::HS256.mac(key, data)),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            hex(&Alg::HS384.mac(key, data)),
            "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e\
             8e2240ca5e69e2c78b3239ecfab21649"
        );
        assert_eq!(
            hex(&Alg::HS512.mac(key, data)),
            "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea250554\
             9758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737"
        );
    }

    #[test]
    fn verify_is_exact() {
        for alg in [Alg::HS256, Alg::HS384, Alg::HS512] {
            let key = vec![0x5a; alg.min_key_len()];
            let mac = alg.mac(&key, b"data");
            assert!(alg.verify(&key, b"data", &mac));
            assert!(!alg.verify(&key, b"datA", &mac));
            let mut bad = mac.clone();
            bad[mac.len() - 1] ^= 1;
            assert!(!alg.verify(&key, b"data", &bad));
            assert!(!alg.verify(&key, b"data", &mac[..mac.len() - 1]));
            assert!(!alg.verify(&key, b"data", &[mac.clone(), vec![0]].concat()));
            assert!(!alg.verify(&key, b"data", &[]));
        }
    }

    #[test]
    fn short_keys_never_verify() {
        for alg in [Alg::HS256, Alg::HS384, Alg::HS512] {
            let short = vec![1u8; alg.min_key_len() - 1];
            assert!(!alg.verify(&short, b"d", &alg.mac(&short, b"d")));
            assert!(!alg.verify(&[], b"d", &alg.mac(&[], b"d")));
        }
    }
}
