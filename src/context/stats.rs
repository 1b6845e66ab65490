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

use crate::context::reason::Reason;

const N: usize = Reason::ALL.len();

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

/// One more refusal for `reason`. Never raises: it runs on the way to an error.
pub fn count(reason: Reason) {
    let i = reason as usize;
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
    let rows: Vec<(String, i64)> = Reason::ALL
        .iter()
        .zip(counts)
        .map(|(r, c)| (r.name().to_string(), i64::try_from(c).unwrap_or(i64::MAX)))
        .collect();
    TableIterator::new(rows)
}
