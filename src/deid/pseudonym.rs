//! Keyed pseudonyms: `tenancy.pseudonymize()` and `tenancy.pseudonymize_for_pool()`.
//!
//! The derivation is documented and pinned in `tenancy_core::deid`. This module is about
//! where the keys live and what a call costs:
//!
//! * the master secret sits in `tenancy.pseudonym_secrets`, readable by the extension owner
//!   only; the newest row is the one in use;
//! * `pseudonymize` runs with the caller's rights (no SECURITY DEFINER, no SET clause: it is
//!   called once per row of large tables). The first call for a domain in a registry
//!   generation reaches the SECURITY DEFINER loader `tenancy._load_pseudonym_key()` through
//!   SPI; the loader derives the domain key and leaves it in this backend's memory, never in
//!   its result, so calling the loader directly teaches the caller nothing;
//! * every later call is a hash-map lookup and one HMAC over the value;
//! * a change to `tenancy.pseudonym_secrets` (or any registry table) bumps the registry
//!   generation on every backend from its next transaction (see `registry::cache`), which drops the
//!   derived keys: a rotation takes effect everywhere without a lookup per call.

use std::cell::RefCell;
use std::collections::HashMap;

use pgrx::prelude::*;
use tenancy_core::deid::{self, DomainKey};

use crate::infra::args;
use crate::infra::errors;
use crate::registry::cache;

/// Derived keys of one registry generation. Pool keys are per (domain, tenant).
#[derive(Default)]
struct Keys {
    generation: u64,
    plain: HashMap<String, DomainKey>,
    pool: HashMap<String, HashMap<String, DomainKey>>,
    entries: usize,
}

/// Bounds memory under a stream of distinct domains; deriving again is cheap.
const MAX_KEYS: usize = 1024;

thread_local! {
    static KEYS: RefCell<Keys> = RefCell::new(Keys::default());
}

fn lookup<R>(domain: &str, tenant: Option<&str>, f: impl FnOnce(&DomainKey) -> R) -> Option<R> {
    let generation = cache::generation();
    KEYS.with(|k| {
        let k = k.borrow();
        if k.generation != generation {
            return None;
        }
        let key = match tenant {
            None => k.plain.get(domain),
            Some(t) => k.pool.get(domain).and_then(|m| m.get(t)),
        }?;
        Some(f(key))
    })
}

fn remember(generation: u64, domain: &str, tenant: Option<&str>, key: DomainKey) {
    KEYS.with(|k| {
        let mut k = k.borrow_mut();
        if k.generation != generation || k.entries >= MAX_KEYS {
            *k = Keys {
                generation,
                ..Keys::default()
            };
        }
        k.entries += 1;
        match tenant {
            None => {
                k.plain.insert(domain.to_string(), key);
            }
            Some(t) => {
                k.pool
                    .entry(domain.to_string())
                    .or_default()
                    .insert(t.to_string(), key);
            }
        }
    });
}

fn check_domain(domain: &str) {
    if !deid::valid_domain(domain) {
        errors::bad_argument(
            "a pseudonym domain must be 1 to 256 bytes".into(),
            Some("name what the values identify, for example 'employee' or 'customer'"),
        );
    }
}

/// Derives the key of `domain` (mixed with the current tenant when `for_pool`) and leaves it in
/// this backend's memory. SECURITY DEFINER because the master secret is readable by the
/// extension owner only; it returns nothing derived from the secret.
#[pg_extern(stable, parallel_safe, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn _load_pseudonym_key(domain: &str, for_pool: bool) -> bool {
    check_domain(domain);
    // The generation before reading: a change that lands while we read makes this entry stale
    // at once instead of letting an old secret pass for the new one.
    let generation = cache::generation();
    let tenant = if for_pool {
        // The tenant itself, as pool_pseudonym() asks for it.
        match crate::context::tenant_context::current() {
            Some(r) => Some(r.ctx.tenant.to_string()),
            None => errors::no_context(),
        }
    } else {
        None
    };
    let Some(secret) = crate::registry::lookup::pseudonym_secret() else {
        errors::no_pseudonym_secret()
    };
    let key = deid::derive_domain_key(&secret, domain, tenant.as_deref());
    remember(generation, domain, tenant.as_deref(), DomainKey::new(&key));
    true
}

fn load(domain: &str, for_pool: bool) {
    crate::infra::spi::pinned(|| {
        Spi::connect(|c| {
            c.select(
                "SELECT tenancy._load_pseudonym_key($1, $2)",
                Some(1),
                &[domain.into(), for_pool.into()],
            )
            .map(|_| ())
        })
    })
    .unwrap_or_else(|e| errors::internal("loading a pseudonym key", e));
}

fn pseudonym(value: &[u8], domain: &str, tenant: Option<&str>) -> String {
    let make = |k: &DomainKey| {
        let p = k.pseudonym(value);
        // SAFETY: base32 output is ASCII.
        unsafe { String::from_utf8_unchecked(p.to_vec()) }
    };
    if let Some(p) = lookup(domain, tenant, make) {
        return p;
    }
    load(domain, tenant.is_some());
    lookup(domain, tenant, make).unwrap_or_else(|| {
        errors::internal("loading a pseudonym key", "the derived key was not cached")
    })
}

fn pool_pseudonym(value: &[u8], domain: &str) -> String {
    let Some(ctx) = crate::context::tenant_context::current() else {
        errors::no_context()
    };
    // Keyed by the tenant itself, never by the top of its tree: a location must not
    // reproduce its siblings' or its organization's pool pseudonyms, and a move must not
    // re-key a pooled table. Pooled aggregates merge a company's locations on their own
    // (the `tenant` argument counts the top of the tree: docs/organizations.md).
    pseudonym(value, domain, Some(&ctx.ctx.tenant))
}

/// The canonical text form PostgreSQL prints for a uuid (lowercase, hyphenated), so that a
/// uuid column and a text copy of it get the same pseudonym.
fn uuid_text(u: &pgrx::Uuid) -> [u8; 36] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [b'-'; 36];
    let mut j = 0;
    for (i, b) in u.as_bytes().iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            j += 1;
        }
        out[j] = HEX[usize::from(b >> 4)];
        out[j + 1] = HEX[usize::from(b & 15)];
        j += 2;
    }
    out
}

/// Keyed pseudonym of `value` in `domain`: 26 lowercase base32 characters (128 bits),
/// deterministic for a given secret and domain, unlinkable across domains.
#[pg_extern(stable, parallel_safe)]
fn pseudonymize(value: &str, domain: &str) -> String {
    pseudonym(value.as_bytes(), domain, None)
}

/// The pseudonym of the uuid's canonical text form (`pseudonymize(u::text, domain)`).
#[pg_extern(stable, parallel_safe, name = "pseudonymize")]
fn pseudonymize_uuid(value: pgrx::Uuid, domain: &str) -> String {
    pseudonym(&uuid_text(&value), domain, None)
}

/// The pseudonym of the integer's decimal text form (`pseudonymize(n::text, domain)`).
#[pg_extern(stable, parallel_safe, name = "pseudonymize")]
fn pseudonymize_int8(value: i64, domain: &str) -> String {
    pseudonym(value.to_string().as_bytes(), domain, None)
}

/// Like `pseudonymize`, under a key that also mixes in the current tenant: one tenant's
/// pooled pseudonyms cannot be recomputed from another tenant's context. 55000 without one.
#[pg_extern(stable, parallel_safe)]
fn pseudonymize_for_pool(value: &str, domain: &str) -> String {
    pool_pseudonym(value.as_bytes(), domain)
}

#[pg_extern(stable, parallel_safe, name = "pseudonymize_for_pool")]
fn pseudonymize_for_pool_uuid(value: pgrx::Uuid, domain: &str) -> String {
    pool_pseudonym(&uuid_text(&value), domain)
}

#[pg_extern(stable, parallel_safe, name = "pseudonymize_for_pool")]
fn pseudonymize_for_pool_int8(value: i64, domain: &str) -> String {
    pool_pseudonym(value.to_string().as_bytes(), domain)
}

/// Registers a master secret for pseudonyms and makes it the one in use (the newest wins).
/// Without `secret`, 32 random bytes are generated in the server, so the secret never
/// appears in a query text or a log. A new secret means new pseudonyms for every value.
#[pg_extern(volatile, parallel_unsafe, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn add_pseudonym_secret(id: &str, secret: default!(Option<&[u8]>, "NULL")) {
    args::key_name("pseudonym secret id", id);
    let generated;
    let secret = match secret {
        Some(s) => s,
        None => {
            generated = crate::infra::random::strong_random::<32>();
            &generated[..]
        }
    };
    if !(deid::MIN_SECRET_LEN..=deid::MAX_SECRET_LEN).contains(&secret.len()) {
        errors::bad_argument(
            format!(
                "a pseudonym secret must be {} to {} bytes",
                deid::MIN_SECRET_LEN,
                deid::MAX_SECRET_LEN
            ),
            Some(
                "omit the secret to have one generated, or take 32 bytes from your secret manager",
            ),
        );
    }
    let inserted = crate::infra::spi::dml_returning::<String>(
        "INSERT INTO tenancy.pseudonym_secrets (id, secret) VALUES ($1, $2)
         ON CONFLICT (id) DO NOTHING RETURNING id",
        &[id.into(), secret.into()],
    );
    match inserted {
        Ok(Some(_)) => {}
        Ok(None) => errors::duplicate(
            format!("pseudonym secret {} already exists", errors::quoted(id)),
            Some("choose another id"),
        ),
        Err(e) => errors::internal("adding a pseudonym secret", e),
    }
}

/// Deletes a pseudonym secret. Dropping the newest puts the previous one back in use;
/// dropping the last leaves pseudonymize() refusing with 55000.
#[pg_extern(volatile, parallel_unsafe, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn drop_pseudonym_secret(id: &str) {
    let deleted = crate::infra::spi::dml_returning::<String>(
        "DELETE FROM tenancy.pseudonym_secrets WHERE id = $1 RETURNING id",
        &[id.into()],
    );
    match deleted {
        Ok(Some(_)) => {}
        Ok(None) => errors::not_found(
            format!("pseudonym secret {} does not exist", errors::quoted(id)),
            None,
        ),
        Err(e) => errors::internal("dropping a pseudonym secret", e),
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn uuid_text_is_canonical() {
        let u = pgrx::Uuid::from_bytes([
            0x12, 0x3e, 0x45, 0x67, 0xe8, 0x9b, 0x12, 0xd3, 0xa4, 0x56, 0x42, 0x66, 0x14, 0x17,
            0x40, 0x00,
        ]);
        assert_eq!(&uuid_text(&u), b"123e4567-e89b-12d3-a456-426614174000");
    }
}
