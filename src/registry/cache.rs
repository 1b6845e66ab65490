//! Per-backend cache of verified contexts.
//!
//! The getters (`tenancy.current_tenant()` and friends) run inside every protected query, so the
//! common path must not parse, MAC or call back into PostgreSQL: it compares two counters and
//! returns an already-built value. Two things make a cached answer stale:
//!
//! * the carrier changed (`SET`, `SET LOCAL`, `RESET`, end of transaction, savepoint rollback):
//!   the GUC assign hook bumps `CARRIER_EPOCH`;
//! * the registry changed (a tenant deactivated, a key retired or revoked): a statement trigger
//!   on the registry tables sends a relcache invalidation, which every backend processes at its
//!   next transaction start (and which a hot standby replays), and our relcache callback bumps
//!   `GENERATION`. That is what makes deactivation effective "from the next transaction on every
//!   backend" without a registry lookup per transaction.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use core::ffi::{c_char, c_void};
use pgrx::prelude::*;
use tenancy_core::carrier::Context;

/// A verified context with the tenant pre-converted for each typed getter.
pub struct Resolved {
    pub ctx: Context,
    pub tenant_uuid: Option<pgrx::Uuid>,
    pub tenant_int8: Option<i64>,
    /// The role (`SET ROLE`'s, outside any SECURITY DEFINER) it was verified for: a support
    /// context holds only for the role that opened it, so a cached one is verified again
    /// after a `SET ROLE` (`context::current`).
    pub verified_for: pg_sys::Oid,
    /// Its tenant has descendants (and it is no support context): it reads their rows too.
    /// Known when it is verified, so that the carrier's assign hook, which may not read the
    /// registry, can tell which plans a new carrier makes stale (scale::routing).
    pub organization: bool,
}

impl Resolved {
    pub fn new(ctx: Context) -> Self {
        let tenant_uuid = parse_uuid(&ctx.tenant).map(pgrx::Uuid::from_bytes);
        let tenant_int8 = parse_int8(&ctx.tenant);
        Resolved {
            ctx,
            tenant_uuid,
            tenant_int8,
            verified_for: outer_user(),
            organization: false,
        }
    }

    pub fn organization(mut self, organization: bool) -> Self {
        self.organization = organization;
        self
    }
}

/// The role acting outside any SECURITY DEFINER function (the session user or `SET ROLE`'s).
pub fn outer_user() -> pg_sys::Oid {
    // SAFETY: reads a backend global.
    unsafe { pg_sys::GetOuterUserId() }
}

/// Canonical decimal only: "007" or "+7" would make two tenant ids map to one bigint.
pub fn parse_int8(s: &str) -> Option<i64> {
    let v: i64 = s.parse().ok()?;
    (v.to_string() == s).then_some(v)
}

pub fn parse_uuid(s: &str) -> Option<[u8; 16]> {
    let b = s.as_bytes();
    if b.len() != 36 || [8, 13, 18, 23].iter().any(|&i| b[i] != b'-') {
        return None;
    }
    let hex: Vec<u8> = b.iter().copied().filter(|&c| c != b'-').collect();
    if hex.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, pair) in hex.chunks(2).enumerate() {
        let hi = lower_hex(pair[0])?;
        let lo = lower_hex(pair[1])?;
        out[i] = (hi * 16 + lo) as u8;
    }
    Some(out)
}

/// Lowercase only, as PostgreSQL prints uuids: otherwise two tenant ids differing in case
/// would map to the same uuid datum.
fn lower_hex(c: u8) -> Option<u32> {
    match c {
        b'0'..=b'9' => Some(u32::from(c - b'0')),
        b'a'..=b'f' => Some(u32::from(c - b'a') + 10),
        _ => None,
    }
}

struct Current {
    epoch: u64,
    generation: u64,
    value: Option<Rc<Resolved>>,
}

const MAX_VERIFIED: usize = 4096;

/// Carrier bytes → (registry generation it was verified under, what it resolved to).
type VerifiedMap = HashMap<Vec<u8>, (u64, Rc<Resolved>)>;
const MAX_REGISTRY_OIDS: usize = 8;

thread_local! {
    static CARRIER_EPOCH: Cell<u64> = const { Cell::new(1) };
    static GENERATION: Cell<u64> = const { Cell::new(1) };
    static CURRENT: RefCell<Option<Current>> = const { RefCell::new(None) };
    static VERIFIED: RefCell<VerifiedMap> = RefCell::new(HashMap::new());
    /// OIDs of the registry tables, once known; `None` means "treat every invalidation as ours".
    static REGISTRY_OIDS: Cell<Option<([pg_sys::Oid; MAX_REGISTRY_OIDS], usize)>> = const { Cell::new(None) };
    /// A registry change arrived during the current transaction.
    static CHANGED_IN_XACT: Cell<bool> = const { Cell::new(false) };
    /// Every support context the current transaction has resolved, whatever the carrier
    /// holds now (see [`saw_support`]).
    static SUPPORT_SEEN: RefCell<Vec<Rc<Resolved>>> = const { RefCell::new(Vec::new()) };
    /// How many times a support context was used in this backend: a statement that used one
    /// sees it grow between its start and its end (support reads, src/audit/support.rs).
    static SUPPORT_USES: Cell<u64> = const { Cell::new(0) };
    /// A statement is running that began unwatched by the support-read hooks (no support
    /// context was possible when it started, so its tables and rows are not being noted).
    static UNWATCHED_RUNNING: Cell<bool> = const { Cell::new(false) };
}

/// Kept by the support-read hooks (src/audit/support.rs), read by [`saw_support`].
pub fn set_unwatched_running(any: bool) {
    UNWATCHED_RUNNING.with(|u| u.set(any));
}

pub fn support_uses() -> u64 {
    SUPPORT_USES.with(Cell::get)
}

/// Notes that the current transaction acted under a support context. Two things follow:
///
/// * its writes to protected tables are recorded as support writes even if the statement
///   clears or replaces `tenancy.context` before its end (the support-write trigger fires at
///   statement end; a CTE, a volatile function or a `RESET` inside the statement could
///   otherwise hide the write): see `support::_support_active`;
/// * the next transaction verifies the support carrier again (session still open, role still
///   holding the support grant), because a `REVOKE` sends no registry invalidation.
///
/// A support context is not used by a statement that began before one was possible (a
/// cursor declared, or a statement started, with no carrier or a tenant's, that switches to a
/// support carrier before it reads): the hooks that put support reads on the record decide at
/// a statement's start what to watch, so such a statement would read off the record.
pub fn saw_support(r: &Rc<Resolved>) {
    if UNWATCHED_RUNNING.with(Cell::get) {
        crate::infra::errors::not_in_state(
            "a support context cannot be used by a statement or cursor that began without one".into(),
            Some("set the support context (tenancy.begin_support() or its carrier) before the statement, or close the cursor first"),
        );
    }
    SUPPORT_USES.with(|u| u.set(u.get().wrapping_add(1)));
    SUPPORT_SEEN.with(|s| {
        let mut s = s.borrow_mut();
        let known = s.iter().any(|x| {
            x.ctx.support_session == r.ctx.support_session && x.ctx.tenant == r.ctx.tenant
        });
        if !known && s.len() < 16 {
            s.push(r.clone());
        }
    });
}

pub fn any_support_seen() -> bool {
    SUPPORT_SEEN.with(|s| !s.borrow().is_empty())
}

/// The support contexts the current transaction has resolved (at most 16 distinct ones; a
/// transaction that used more still has its writes recorded under the first 16).
pub fn support_seen() -> Vec<Rc<Resolved>> {
    SUPPORT_SEEN.with(|s| s.borrow().clone())
}

pub fn init() {
    // SAFETY: registering a callback is allowed at library load; the callback never raises.
    unsafe {
        pg_sys::CacheRegisterRelcacheCallback(Some(relcache_changed), pg_sys::Datum::from(0usize));
        pg_sys::RegisterXactCallback(Some(xact_ended), core::ptr::null_mut());
    }
}

/// A change that arrives in the middle of a REPEATABLE READ transaction may be re-read under
/// the transaction's older snapshot and cached as if it were current. Invalidating once more
/// when such a transaction ends keeps that stale answer from outliving it.
#[pg_guard]
unsafe extern "C-unwind" fn xact_ended(event: pg_sys::XactEvent::Type, _arg: *mut c_void) {
    let ended = matches!(
        event,
        pg_sys::XactEvent::XACT_EVENT_COMMIT
            | pg_sys::XactEvent::XACT_EVENT_ABORT
            | pg_sys::XactEvent::XACT_EVENT_PREPARE
            | pg_sys::XactEvent::XACT_EVENT_PARALLEL_COMMIT
            | pg_sys::XactEvent::XACT_EVENT_PARALLEL_ABORT
    );
    if !ended {
        return;
    }
    let saw_support = SUPPORT_SEEN.with(|s| {
        let mut s = s.borrow_mut();
        let any = !s.is_empty();
        s.clear();
        any
    });
    if CHANGED_IN_XACT.with(|c| c.replace(false)) || saw_support {
        bump_generation();
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn relcache_changed(_arg: pg_sys::Datum, relid: pg_sys::Oid) {
    let ours = relid == pg_sys::InvalidOid
        || REGISTRY_OIDS.with(|o| match o.get() {
            None => true,
            Some((oids, n)) => oids[..n].contains(&relid),
        });
    if ours {
        bump_generation();
        CHANGED_IN_XACT.with(|c| c.set(true));
        if let Some(listener) = REGISTRY_LISTENER.with(Cell::get) {
            listener();
        }
    }
}

/// Forget every cached verification; also forgets the registry OIDs, which a DROP EXTENSION
/// may have just made stale.
pub fn bump_generation() {
    GENERATION.with(|g| g.set(g.get().wrapping_add(1)));
    REGISTRY_OIDS.with(|o| o.set(None));
}

pub fn generation() -> u64 {
    GENERATION.with(Cell::get)
}

pub fn registry_oids_known() -> bool {
    REGISTRY_OIDS.with(|o| o.get().is_some())
}

pub fn set_registry_oids(oids: &[pg_sys::Oid]) {
    let mut arr = [pg_sys::InvalidOid; MAX_REGISTRY_OIDS];
    let n = oids.len().min(MAX_REGISTRY_OIDS);
    arr[..n].copy_from_slice(&oids[..n]);
    REGISTRY_OIDS.with(|o| o.set(Some((arr, n))));
}

#[pg_guard]
pub unsafe extern "C-unwind" fn context_assigned(newval: *const c_char, _extra: *mut c_void) {
    CARRIER_EPOCH.with(|e| e.set(e.get().wrapping_add(1)));
    if let Some(listener) = CARRIER_LISTENER.with(Cell::get) {
        let carrier = if newval.is_null() {
            &[][..]
        } else {
            // SAFETY: a non-NULL GUC string value is NUL-terminated.
            unsafe { core::ffi::CStr::from_ptr(newval) }.to_bytes()
        };
        listener(carrier);
    }
}

/// Gets the new carrier (empty: no context).
pub type CarrierListener = fn(&[u8]);

thread_local! {
    /// Told of every change of the carrier as it happens, before any statement can run under
    /// the new one: `scale::routing` invalidates the plans it made for the old tenant here.
    /// It runs inside the GUC assign hook (also at transaction end), so it must not raise.
    static CARRIER_LISTENER: Cell<Option<CarrierListener>> = const { Cell::new(None) };
}

thread_local! {
    /// Told of every registry change as this backend learns of it: a tenant that gains its
    /// first child (or loses its last) changes what its context reads without any change of
    /// carrier, so `scale::routing` drops the plans made for either kind of context. Runs
    /// inside a relcache callback: must not raise.
    static REGISTRY_LISTENER: Cell<Option<fn()>> = const { Cell::new(None) };
}

/// Registers the one listener of registry changes (from `_PG_init`).
pub fn on_registry_change(listener: fn()) {
    REGISTRY_LISTENER.with(|l| l.set(Some(listener)));
}

/// Registers the one listener of carrier changes (from `_PG_init`); it gets the new carrier.
pub fn on_carrier_change(listener: CarrierListener) {
    CARRIER_LISTENER.with(|l| l.set(Some(listener)));
}

/// Counts changes of the carrier (`SET`, `SET LOCAL`, `RESET`, transaction end).
pub fn carrier_epoch() -> u64 {
    CARRIER_EPOCH.with(Cell::get)
}

/// What the present carrier resolves to, if it was resolved since it last changed and the
/// registry has not changed since: `Some(None)` is a known "no context".
pub fn current_if_fresh() -> Option<Option<Rc<Resolved>>> {
    let epoch = CARRIER_EPOCH.with(Cell::get);
    let generation = generation();
    CURRENT.with(|c| {
        c.borrow()
            .as_ref()
            .filter(|c| c.epoch == epoch && c.generation == generation)
            .map(|c| c.value.clone())
    })
}

/// Remember what the present carrier resolves to.
pub fn set_current(value: Option<Rc<Resolved>>) {
    let epoch = CARRIER_EPOCH.with(Cell::get);
    let generation = generation();
    CURRENT.with(|c| {
        *c.borrow_mut() = Some(Current {
            epoch,
            generation,
            value,
        })
    });
}

/// A carrier verified under the present registry generation.
pub fn verified(carrier: &[u8]) -> Option<Rc<Resolved>> {
    let generation = generation();
    VERIFIED.with(|v| {
        // try_borrow: also called from the carrier's assign hook, which must not panic.
        v.try_borrow()
            .ok()?
            .get(carrier)
            .filter(|(g, _)| *g == generation)
            .map(|(_, r)| r.clone())
    })
}

pub fn remember_verified(carrier: &[u8], resolved: Rc<Resolved>) {
    let generation = generation();
    VERIFIED.with(|v| {
        let mut v = v.borrow_mut();
        if v.len() >= MAX_VERIFIED {
            // Bounded memory under a stream of distinct carriers; re-verifying is cheap.
            v.clear();
        }
        v.insert(carrier.to_vec(), (generation, resolved));
    });
}

/// Seconds since the Unix epoch now, by the clock: what every expiry check uses, so that a
/// context (a support session's time box, a token's exp) dies on time also inside one long
/// statement (a DO loop, a procedure) whose statement start stays fixed.
pub fn clock_now() -> i64 {
    // SAFETY: reads the system clock.
    let ts = unsafe { pg_sys::GetCurrentTimestamp() };
    ts.div_euclid(1_000_000) + 946_684_800
}

/// The system clock now as a timestamptz (what `clock_timestamp()` returns), for writes that
/// may not call a volatile function (Citus refuses them on its tables).
pub fn clock_now_timestamp() -> pgrx::datum::TimestampWithTimeZone {
    // SAFETY: reads the system clock.
    let ts = unsafe { pg_sys::GetCurrentTimestamp() };
    pgrx::datum::TimestampWithTimeZone::try_from(ts)
        .unwrap_or_else(|_| crate::infra::errors::internal("reading the clock", "out of range"))
}

/// Seconds since the Unix epoch at the start of the current statement, the clock every
/// expiry check uses so that one statement sees one answer.
pub fn statement_now() -> i64 {
    // SAFETY: reads a backend-local timestamp; valid whenever a statement runs.
    let ts = unsafe { pg_sys::GetCurrentStatementStartTimestamp() };
    ts.div_euclid(1_000_000) + 946_684_800
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn int8_only_canonical() {
        assert_eq!(parse_int8("42"), Some(42));
        assert_eq!(parse_int8("-7"), Some(-7));
        assert_eq!(parse_int8("007"), None);
        assert_eq!(parse_int8("+7"), None);
        assert_eq!(parse_int8("acme"), None);
        assert_eq!(parse_int8("99999999999999999999"), None);
    }

    #[test]
    fn uuid_forms() {
        let u = parse_uuid("123e4567-e89b-12d3-a456-426614174000").unwrap();
        assert_eq!(u[0], 0x12);
        assert_eq!(u[15], 0x00);
        assert!(parse_uuid("123E4567-E89B-12D3-A456-426614174000").is_none());
        assert!(parse_uuid("123e4567e89b12d3a456426614174000").is_none());
        assert!(parse_uuid("123e4567-e89b-12d3-a456-42661417400g").is_none());
    }
}
