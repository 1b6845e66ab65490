//! Test oracles written from the published definitions, independent of the code the extension
//! runs (the `hmac` crate, `deid`'s derivation and base32 encoder): tenancy-core's unit tests
//! and pg_tenancy's `#[pg_test]`s check the real code against these, so there is one oracle.
//! Compiled only for tests and under the `oracle` feature (which pg_tenancy's `pg_test`
//! feature turns on); nothing in the extension calls it.

use sha2::{Digest, Sha256};

/// HMAC-SHA256 written out from RFC 2104 with the sha2 crate.
pub fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let ipad: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
    let opad: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
    let inner = Sha256::new()
        .chain_update(&ipad)
        .chain_update(msg)
        .finalize();
    Sha256::new()
        .chain_update(&opad)
        .chain_update(inner)
        .finalize()
        .into()
}

/// RFC 4648 base32, lowercase, no padding, bit by bit.
pub fn base32(bytes: &[u8]) -> String {
    let bits: Vec<u8> = bytes
        .iter()
        .flat_map(|b| (0..8).rev().map(move |i| (b >> i) & 1))
        .collect();
    bits.chunks(5)
        .map(|c| {
            let v = (0..5).fold(0u8, |v, i| (v << 1) | c.get(i).copied().unwrap_or(0));
            b"abcdefghijklmnopqrstuvwxyz234567"[v as usize] as char
        })
        .collect()
}

/// The bytes of a hex string; panics on anything else.
pub fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

/// The pseudonym of `value` as docs/anonymization.md defines it: the domain key is
/// HMAC(master, "pg_tenancy pseudonym v1" 0x00 domain [0x00 tenant]), the pseudonym the
/// base32 of the first 16 bytes of HMAC(domain key, value).
pub fn pseudonym(master: &[u8], domain: &str, tenant: Option<&str>, value: &str) -> String {
    let mut msg = b"pg_tenancy pseudonym v1\0".to_vec();
    msg.extend_from_slice(domain.as_bytes());
    if let Some(t) = tenant {
        msg.push(0);
        msg.extend_from_slice(t.as_bytes());
    }
    let key = hmac_sha256(master, &msg);
    base32(&hmac_sha256(&key, value.as_bytes())[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4231_case_2() {
        assert_eq!(
            hmac_sha256(b"Jefe", b"what do ya want for nothing?").to_vec(),
            unhex("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        );
    }

    #[test]
    fn rfc4231_case_6_key_longer_than_a_block() {
        assert_eq!(
            hmac_sha256(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )
            .to_vec(),
            unhex("60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54")
        );
    }

    #[test]
    fn rfc4648_base32_vectors() {
        for (input, out) in [
            ("", ""),
            ("f", "my"),
            ("fo", "mzxq"),
            ("foo", "mzxw6"),
            ("foob", "mzxw6yq"),
            ("fooba", "mzxw6ytb"),
            ("foobar", "mzxw6ytboi"),
        ] {
            assert_eq!(base32(input.as_bytes()), out);
        }
    }
}
