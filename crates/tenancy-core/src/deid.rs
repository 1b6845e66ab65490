//! De-identification: keyed pseudonyms and the arithmetic of the generalisation helpers.
//!
//! # Pseudonyms (derivation v1, pinned by known-answer tests)
//!
//! ```text
//! domain_key = HMAC-SHA256(key = master_secret,
//!                          msg = "pg_tenancy pseudonym v1" || 0x00 || domain)              -- pseudonymize
//! domain_key = HMAC-SHA256(key = master_secret,
//!                          msg = "pg_tenancy pseudonym v1" || 0x00 || domain || 0x00 || tenant) -- pseudonymize_for_pool
//! pseudonym  = base32_lower_nopad( first 16 bytes of HMAC-SHA256(key = domain_key, msg = value) )
//! ```
//!
//! `domain`, `tenant` and `value` are UTF-8 bytes. PostgreSQL text never contains a NUL byte, so
//! the 0x00 separators make the derivation input injective: no domain can be chosen to collide
//! with another domain, nor with a (domain, tenant) pair. The output is 26 characters of
//! `a–z2–7` carrying 128 bits (the last character holds the last 3 bits followed by two zero
//! bits, as RFC 4648 does without padding).

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Label that versions the derivation; a v2 would change it.
pub const PSEUDONYM_LABEL: &[u8] = b"pg_tenancy pseudonym v1";
/// Characters in a pseudonym.
pub const PSEUDONYM_LEN: usize = 26;
/// Shortest master secret accepted (the HMAC-SHA256 output size).
pub const MIN_SECRET_LEN: usize = 32;
/// Longest master secret accepted.
pub const MAX_SECRET_LEN: usize = 1024;
/// Longest domain, in bytes.
pub const MAX_DOMAIN_BYTES: usize = 256;

const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// A domain is 1 to 256 bytes without NUL (the separator of the derivation input).
pub fn valid_domain(domain: &str) -> bool {
    !domain.is_empty() && domain.len() <= MAX_DOMAIN_BYTES && !domain.contains('\0')
}

/// The message the domain key is derived from (see the module documentation).
pub fn derivation_input(domain: &str, tenant: Option<&str>) -> Vec<u8> {
    let mut msg =
        Vec::with_capacity(PSEUDONYM_LABEL.len() + 2 + domain.len() + tenant.map_or(0, str::len));
    msg.extend_from_slice(PSEUDONYM_LABEL);
    msg.push(0);
    msg.extend_from_slice(domain.as_bytes());
    if let Some(t) = tenant {
        msg.push(0);
        msg.extend_from_slice(t.as_bytes());
    }
    msg
}

/// `HMAC-SHA256(master, derivation_input(domain, tenant))`.
pub fn derive_domain_key(master: &[u8], domain: &str, tenant: Option<&str>) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(master).expect("HMAC accepts keys of any length");
    mac.update(&derivation_input(domain, tenant));
    mac.finalize().into_bytes().into()
}

/// A domain key with HMAC's inner and outer pads already absorbed: each pseudonym costs a
/// clone of that state and two SHA-256 compressions for values up to 55 bytes.
#[derive(Clone)]
pub struct DomainKey {
    mac: HmacSha256,
}

impl DomainKey {
    pub fn new(key: &[u8; 32]) -> Self {
        DomainKey {
            mac: HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length"),
        }
    }

    /// The pseudonym of `value` as 26 ASCII bytes.
    pub fn pseudonym(&self, value: &[u8]) -> [u8; PSEUDONYM_LEN] {
        let mut mac = self.mac.clone();
        mac.update(value);
        let tag = mac.finalize().into_bytes();
        let mut first = [0u8; 16];
        first.copy_from_slice(&tag[..16]);
        base32_128(first)
    }
}

/// RFC 4648 base32, lowercase, without padding, of exactly 128 bits.
pub fn base32_128(bytes: [u8; 16]) -> [u8; PSEUDONYM_LEN] {
    let v = u128::from_be_bytes(bytes);
    let mut out = [0u8; PSEUDONYM_LEN];
    for (i, c) in out.iter_mut().take(25).enumerate() {
        *c = ALPHABET[((v >> (123 - 5 * i)) & 31) as usize];
    }
    out[25] = ALPHABET[((v & 7) << 2) as usize];
    out
}

/// Decodes what [`base32_128`] produced (used by tests that count differing bits).
pub fn base32_128_decode(s: &[u8]) -> Option<[u8; 16]> {
    if s.len() != PSEUDONYM_LEN {
        return None;
    }
    let mut v: u128 = 0;
    for (i, &c) in s.iter().enumerate() {
        let d = ALPHABET.iter().position(|&a| a == c)? as u128;
        if i < 25 {
            v |= d << (123 - 5 * i);
        } else {
            if d & 3 != 0 {
                return None;
            }
            v |= d >> 2;
        }
    }
    Some(v.to_be_bytes())
}

// ---- generalisation ----

/// Units for date generalisation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DateUnit {
    Month,
    Quarter,
    Year,
}

impl DateUnit {
    pub fn parse(s: &str) -> Option<DateUnit> {
        match s.to_ascii_lowercase().as_str() {
            "month" => Some(DateUnit::Month),
            "quarter" => Some(DateUnit::Quarter),
            "year" => Some(DateUnit::Year),
            _ => None,
        }
    }

    /// The (year, month) of the first day of the period that contains (year, month).
    pub fn truncate(self, year: i32, month: u8) -> (i32, u8) {
        match self {
            DateUnit::Month => (year, month),
            DateUnit::Quarter => (year, (month - 1) / 3 * 3 + 1),
            DateUnit::Year => (year, 1),
        }
    }
}

/// Completed years between two dates given as (year, month, day): the age on `at` of someone
/// born on `birth`. Someone born on 29 February completes a year on 1 March in common years.
/// Negative when `birth` is after `at`.
pub fn completed_years(birth: (i32, u8, u8), at: (i32, u8, u8)) -> i64 {
    let mut years = i64::from(at.0) - i64::from(birth.0);
    if (at.1, at.2) < (birth.1, birth.2) {
        years -= 1;
    }
    years
}

/// `[lower, lower + width)` containing `v`, with `lower` a multiple of `width` (floor
/// semantics, so negative values band downwards). `None` if `width <= 0` or on overflow.
pub fn band_i64(v: i64, width: i64) -> Option<(i64, i64)> {
    if width <= 0 {
        return None;
    }
    let lower = v.div_euclid(width).checked_mul(width)?;
    Some((lower, lower.checked_add(width)?))
}

/// A compact label for a canonical decimal (as PostgreSQL's `numeric` prints it, trailing
/// zeros removed): `50000` → `50k`, `12500` → `12.5k`, `1250000` → `1.25M`, `-10000` → `-10k`.
/// A suffix (k, M, B, T) is used only when the scaled value needs at most two decimals, so the
/// label is always exact: `12345` stays `12345`. `None` for anything that is not a plain
/// decimal (NaN, Infinity, exponents).
pub fn compact_number(s: &str) -> Option<String> {
    let (neg, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if int.is_empty()
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let int = int.trim_start_matches('0');
    let frac = frac.trim_end_matches('0');
    let sign = if neg && !(int.is_empty() && frac.is_empty()) {
        "-"
    } else {
        ""
    };
    for (exp, suffix) in [(12usize, 'T'), (9, 'B'), (6, 'M'), (3, 'k')] {
        if frac.is_empty() && int.len() > exp {
            let (head, tail) = int.split_at(int.len() - exp);
            let tail = tail.trim_end_matches('0');
            if tail.len() <= 2 {
                let dot = if tail.is_empty() { "" } else { "." };
                return Some(format!("{sign}{head}{dot}{tail}{suffix}"));
            }
        }
    }
    let int = if int.is_empty() { "0" } else { int };
    let dot = if frac.is_empty() { "" } else { "." };
    Some(format!("{sign}{int}{dot}{frac}"))
}

/// `"<lower>–<upper>"` with an en dash, both ends compacted; `None` if either is not a plain
/// decimal.
pub fn band_label(lower: &str, upper: &str) -> Option<String> {
    Some(format!(
        "{}\u{2013}{}",
        compact_number(lower)?,
        compact_number(upper)?
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oracle::{base32, hmac_sha256 as rfc2104, pseudonym};

    const MASTER: &[u8; 32] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn derivation_matches_the_written_definition() {
        let mut msg = b"pg_tenancy pseudonym v1".to_vec();
        msg.push(0);
        msg.extend_from_slice(b"employee");
        let key = rfc2104(MASTER, &msg);
        assert_eq!(derive_domain_key(MASTER, "employee", None), key);
        let tag = rfc2104(&key, b"42");
        let mut first = [0u8; 16];
        first.copy_from_slice(&tag[..16]);
        let got = DomainKey::new(&key).pseudonym(b"42");
        assert_eq!(got, base32_128(first));
        assert_eq!(
            std::str::from_utf8(&got).unwrap(),
            pseudonym(MASTER, "employee", None, "42")
        );
        // Pinned value, computed with Python's hmac module (docs/anonymization.md shows how).
        assert_eq!(
            std::str::from_utf8(&got).unwrap(),
            "gdib2k2irmp4b5rfqvxrqtmbke"
        );
    }

    #[test]
    fn pool_derivation_mixes_the_tenant_after_a_second_nul() {
        let msg = b"pg_tenancy pseudonym v1\0employee\0acme";
        assert_eq!(
            derive_domain_key(MASTER, "employee", Some("acme")),
            rfc2104(MASTER, msg)
        );
        let pool = DomainKey::new(&derive_domain_key(MASTER, "employee", Some("acme")));
        assert_eq!(&pool.pseudonym(b"42"), b"tzjw2fku55l4gepaag4nbveltm");
        assert_ne!(
            derive_domain_key(MASTER, "employee", Some("acme")),
            derive_domain_key(MASTER, "employee", None)
        );
        assert_ne!(
            derive_domain_key(MASTER, "employee", Some("acme")),
            derive_domain_key(MASTER, "employee", Some("globex"))
        );
    }

    #[test]
    fn base32_is_rfc4648_lowercase_without_padding() {
        // RFC 4648 §10 vectors extend to 16 bytes: compare with the oracle's bit-by-bit encoder.
        for seed in 0u8..=255 {
            let bytes: [u8; 16] =
                core::array::from_fn(|i| seed.wrapping_mul(31).wrapping_add(i as u8 * 17));
            let enc = base32_128(bytes);
            assert_eq!(std::str::from_utf8(&enc).unwrap(), base32(&bytes));
            assert_eq!(base32_128_decode(&enc), Some(bytes));
        }
        assert_eq!(&base32_128([0; 16]), b"aaaaaaaaaaaaaaaaaaaaaaaaaa");
        assert_eq!(&base32_128([0xff; 16]), b"77777777777777777777777774");
        assert_eq!(base32_128_decode(b"77777777777777777777777777"), None);
        assert_eq!(base32_128_decode(b"short"), None);
    }

    #[test]
    fn one_changed_byte_flips_about_half_the_bits() {
        let key = DomainKey::new(&derive_domain_key(MASTER, "employee", None));
        let n = 4000u32;
        let mut total = 0u32;
        for i in 0..n {
            let a = format!("employee-{i:06}");
            let mut b = a.clone().into_bytes();
            let pos = (i as usize) % b.len();
            b[pos] ^= 1 << (i % 7);
            let pa = u128::from_be_bytes(base32_128_decode(&key.pseudonym(a.as_bytes())).unwrap());
            let pb = u128::from_be_bytes(base32_128_decode(&key.pseudonym(&b)).unwrap());
            let d = (pa ^ pb).count_ones();
            assert!((30..=98).contains(&d), "{d} bits differ for {a}");
            total += d;
        }
        let mean = f64::from(total) / f64::from(n);
        assert!((62.0..66.0).contains(&mean), "mean {mean}");
    }

    #[test]
    fn domains() {
        assert!(valid_domain("employee"));
        assert!(valid_domain("a b/c:ü"));
        assert!(!valid_domain(""));
        assert!(!valid_domain("a\0b"));
        assert!(valid_domain(&"x".repeat(256)));
        assert!(!valid_domain(&"x".repeat(257)));
    }

    #[test]
    fn date_units() {
        assert_eq!(DateUnit::parse("Quarter"), Some(DateUnit::Quarter));
        assert_eq!(DateUnit::parse("week"), None);
        assert_eq!(DateUnit::Month.truncate(2024, 5), (2024, 5));
        for (m, q) in [
            (1, 1),
            (3, 1),
            (4, 4),
            (6, 4),
            (7, 7),
            (9, 7),
            (10, 10),
            (12, 10),
        ] {
            assert_eq!(DateUnit::Quarter.truncate(2024, m), (2024, q));
        }
        assert_eq!(DateUnit::Year.truncate(-44, 3), (-44, 1));
    }

    #[test]
    fn ages() {
        assert_eq!(completed_years((1990, 6, 15), (2024, 6, 14)), 33);
        assert_eq!(completed_years((1990, 6, 15), (2024, 6, 15)), 34);
        assert_eq!(completed_years((2000, 2, 29), (2023, 2, 28)), 22);
        assert_eq!(completed_years((2000, 2, 29), (2023, 3, 1)), 23);
        assert_eq!(completed_years((2000, 2, 29), (2024, 2, 29)), 24);
        assert_eq!(completed_years((2024, 1, 2), (2024, 1, 1)), -1);
    }

    #[test]
    fn integer_bands() {
        assert_eq!(band_i64(34, 10), Some((30, 40)));
        assert_eq!(band_i64(40, 10), Some((40, 50)));
        assert_eq!(band_i64(0, 5), Some((0, 5)));
        assert_eq!(band_i64(-1, 10), Some((-10, 0)));
        assert_eq!(band_i64(7, 0), None);
        assert_eq!(band_i64(7, -5), None);
        assert_eq!(band_i64(i64::MAX, 10), None);
    }

    #[test]
    fn compact_numbers() {
        for (input, want) in [
            ("50000", "50k"),
            ("60000", "60k"),
            ("12500", "12.5k"),
            ("12345", "12345"),
            ("1250000", "1.25M"),
            ("1234567", "1234567"),
            ("1000000000", "1B"),
            ("2500000000000", "2.5T"),
            ("999", "999"),
            ("1000", "1k"),
            ("0", "0"),
            ("-0", "0"),
            ("-10000", "-10k"),
            ("0.5", "0.5"),
            ("12.50", "12.5"),
            ("007", "7"),
            ("1000.5", "1000.5"),
        ] {
            assert_eq!(compact_number(input).as_deref(), Some(want), "{input}");
        }
        for bad in [
            "NaN",
            "Infinity",
            "-Infinity",
            "",
            "-",
            "1e5",
            "1.2.3",
            ".5",
        ] {
            assert_eq!(compact_number(bad), None, "{bad}");
        }
        assert_eq!(band_label("50000", "60000").as_deref(), Some("50k–60k"));
        assert_eq!(band_label("-10000", "0").as_deref(), Some("-10k–0"));
    }
}
