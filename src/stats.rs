//! Counters of refused context attempts, per reason, for `tenancy.stats()`.
//!
//! A refusal cannot be written to the audit log (its transaction is about to fail), so it
//! becomes a LOG line and one increment here. With `shared_preload_libraries = 'pg_tenancy'`
//! the counters live in shared memory and count every backend since the server started; when
//! the library is loaded later (no shared memory can be added then) they count this backend
//! only, and `stats()` says so with a NOTICE.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use pgrx::prelude::*;
use pgrx::{pg_shmem_init, PgAtomic};

/// Every reason a refusal can carry (the `reason` of the LOG line), in the order stats() lists
/// them. Anything else counts as "other", which would be a bug worth seeing.
const REASONS: [&str; 27] = [
    // tokens (tenancy_core::Refusal::reason) and carriers
    "too_long",
    "malformed",
    "bad_base64",
    "bad_json",
    "unsupported_alg",
    "unknown_kid",
    "no_matching_key",
    "bad_signature",
    "expired",
    "not_yet_valid",
    "wrong_audience",
    "wrong_issuer",
    "missing_tenant",
    "bad_tenant",
    "bad_claim",
    "crit_header",
    // tenants
    "inactive_tenant",
    "unregistered_tenant",
    // API keys
    "unknown_key",
    "bad_secret",
    "revoked",
    // a context set earlier that no longer holds
    "api_key_no_longer_valid",
    "signing_key_retired",
    // a support carrier whose session ended, used by another role, or whose role lost the grant
    "support_session_ended",
    "support_session_other_role",
    "support_grant_revoked",
    "other",
];
const N: usize = REASONS.len();

static SHARED: PgAtomic<[AtomicU64; N]> = unsafe { PgAtomic::new(c"pg_tenancy_refusals") };
static SHARED_READY: AtomicBool = AtomicBool::new(false);

thread_local! {
    static LOCAL: RefCell<[u64; N]> = const { RefCell::new([0; N]) };
}

/// From _PG_init: shared counters only while the postmaster preloads the library.
// pg_shmem_init! tests pgrx's pg13..pg18 features in this crate, which has only pg15 and pg18.
#[allow(unexpected_cfgs)]
pub fn init() {
    // SAFETY: reads a flag the postmaster sets while it loads shared_preload_libraries.
    if unsafe { pg_sys::process_shared_preload_libraries_in_progress } {
        pg_shmem_init!(SHARED = [const { AtomicU64::new(0) }; N]);
        SHARED_READY.store(true, Ordering::Relaxed);
    }
}

fn index(reason: &str) -> usize {
    REASONS.iter().position(|r| *r == reason).unwrap_or(N - 1)
}

/// One more refusal for `reason`. Never raises: it runs on the way to an error.
pub fn count(reason: &str) {
    let i = index(reason);
    if SHARED_READY.load(Ordering::Relaxed) {
        SHARED.get()[i].fetch_add(1, Ordering::Relaxed);
    } else {
        LOCAL.with(|l| l.borrow_mut()[i] += 1);
    }
}

/// Refused context attempts by reason (reasons never seen are listed with 0).
#[pg_extern(volatile, parallel_restricted)]
fn stats() -> TableIterator<'static, (name!(reason, String), name!(refused, i64))> {
    let counts: Vec<u64> = if SHARED_READY.load(Ordering::Relaxed) {
        SHARED
            .get()
            .iter()
            .map(|a| a.load(Ordering::Relaxed))
            .collect()
    } else {
        pgrx::notice!(
            "pg_tenancy: these counters are for this session only: add pg_tenancy to shared_preload_libraries to count every session"
        );
        LOCAL.with(|l| l.borrow().to_vec())
    };
    let rows: Vec<(String, i64)> = REASONS
        .iter()
        .zip(counts)
        .map(|(r, c)| ((*r).to_string(), i64::try_from(c).unwrap_or(i64::MAX)))
        .collect();
    TableIterator::new(rows)
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn every_refusal_reason_has_a_counter() {
        for r in &tenancy_core::Refusal::EVERY {
            assert_eq!(REASONS[index(r.reason())], r.reason());
        }
        assert_eq!(REASONS[index("nonsense")], "other");
        assert_eq!(REASONS[N - 1], "other");
    }
}
