//! Contributor and tenant identities as 128-bit keys.
//!
//! bigint and uuid contributors map to their own value (no collision is possible); text is
//! hashed with two independent SipHash-1-3 runs (fixed keys, so that every parallel worker and
//! the leader agree). A collision merges two people into one: a group can only look smaller,
//! never larger. The state holds keys, never the identities themselves.

use std::hash::{DefaultHasher, Hasher};

pub type Key = u128;

pub fn hash_i64(v: i64) -> Key {
    u128::from(v as u64)
}

pub fn hash_uuid(v: &[u8; 16]) -> Key {
    u128::from_be_bytes(*v)
}

/// Tenants: a fast 64-bit FNV-1a, widened. A collision merges two tenants into one — fewer
/// tenants, a larger largest tenant, a smaller residual — so it can only suppress more.
pub fn hash_tenant(v: &[u8]) -> Key {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in v {
        h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
    }
    u128::from(h)
}

pub fn hash_bytes(v: &[u8]) -> Key {
    // DefaultHasher::new() is SipHash-1-3 with zero keys: deterministic within one build,
    // which is all that parallel workers of one server need.
    let mut a = DefaultHasher::new();
    a.write_u8(0xa5);
    a.write(v);
    let mut b = DefaultHasher::new();
    b.write_u8(0x5a);
    b.write(v);
    (u128::from(a.finish()) << 64) | u128::from(b.finish())
}
