//! Support access: a support engineer enters one tenant with a reason, for a while, on the
//! record.
//!
//! `begin_support()` installs a context whose source is `support`, with the engineer as actor,
//! the reason, and an expiry; all three live inside the MAC'd carrier, so nobody can add,
//! remove or extend the mark. The context is session-scoped: an engineer in psql works across
//! transactions until `end_support()` or the expiry, after which every use raises 28000 like
//! any expired context. Opening, ending and every write to a protected table under it are
//! recorded in the tenant's audit chain, marked as support.
//!
//! The audit trail and the carrier cannot disagree: each session is a row of
//! `tenancy.support_sessions` named inside the carrier, and verification refuses a carrier
//! whose session has ended, that another role presents, or whose role lost the support grant
//! (`context::check_support_session`), or whose opening backend has exited, on every backend
//! from its next transaction. `clear_context()` ends the session on the record; `RESET
//! tenancy.context` does not: it stays open, usable only by the role that opened it, until it
//! expires (at most `tenancy.max_support_minutes`). Endings nobody is present for (expiry,
//! the backend's exit, a revoked grant) are recorded by the next sweep ([`record_endings`]).

use pgrx::prelude::*;
use pgrx::JsonB;
use serde_json::json;
use tenancy_core::carrier::{Context, Source};

use crate::audit::trail;
use crate::infra::args;
use crate::infra::errors::{self, SpiOrBug};
use crate::infra::gucs;

const MAX_REASON_CHARS: usize = 500;

/// Opens a support context for `tenant` (session-scoped, expiring after `minutes`) and
/// returns it as `tenancy.context()` shows it.
#[pg_extern(volatile, parallel_unsafe, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn begin_support(
    tenant: Option<&str>,
    reason: Option<&str>,
    minutes: default!(Option<i32>, 30),
) -> JsonB {
    let Some(tenant) = tenant else {
        errors::bad_argument("tenant must not be NULL".into(), None)
    };
    args::tenant_id(tenant);
    let reason = reason.map(str::trim).unwrap_or_default();
    args::text(
        reason,
        MAX_REASON_CHARS,
        &format!("a support session needs a reason of 1 to {MAX_REASON_CHARS} characters without control or invisible characters"),
        Some("say why, for example the ticket number: begin_support('acme', 'ticket 4711: payroll export fails')"),
    );
    let max = gucs::MAX_SUPPORT_MINUTES.get();
    let minutes = minutes.unwrap_or(-1);
    if !(1..=max).contains(&minutes) {
        errors::bad_argument(
            format!("minutes must be between 1 and {max} (tenancy.max_support_minutes)"),
            None,
        );
    }
    // Its support_begun, reads and support_ended belong in the coordinator's chain.
    trail::refuse_on_citus_worker();
    crate::context::tenant_context::require_active(
        crate::context::reason::Attempt::Support,
        "support context",
        tenant,
    );
    record_endings();
    let now = crate::registry::cache::statement_now();
    let expires_at = now
        .saturating_add(i64::from(minutes) * 60)
        .min(now.saturating_add(i64::from(gucs::CONTEXT_MAX_AGE.get())));
    let sid: String = crate::infra::random::strong_random::<16>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let ctx = Context {
        tenant: tenant.to_string(),
        actor: Some(crate::infra::roles::acting_role()),
        roles: Vec::new(),
        source: Source::Support,
        expires_at: Some(expires_at),
        api_key_id: None,
        kid: None,
        support_reason: Some(reason.to_string()),
        support_session: Some(sid.clone()),
        job: None,
    };
    let shown = ctx.to_json();
    // Support events go to the tenant's own chain, the one the tenant reads, never to the
    // system chain: they wait for the tenant's chain head (lock_timeout applies) rather than
    // fall back where the tenant cannot see them, and a support transaction never holds the
    // system chain's head that operators need.
    // One support session at a time: an open one is ended first, on the record (a carrier of
    // a session already ended, or another role's, ends nothing and records nothing).
    if let Some(old) = crate::context::tenant_context::peek_unexpired_or_not()
        .filter(|c| c.source == Source::Support)
        .filter(end_session)
    {
        trail::write(trail::Entry {
            tenant: &old.tenant,
            actor: old.actor.as_deref(),
            roles: &[],
            support: old.support_mark(),
            event: "support_ended",
            detail: json!({ "how": "replaced", "expired": old.expired_at(now), "replaced": true }),
        });
    }
    // The opening backend and the node it runs on, read first: Citus refuses volatile
    // functions in a write to its tables, and on Citus only the opening node can see the
    // backend (its exit ends the session there; the other nodes learn it from the sweep).
    let (pid, backend_start, system) = crate::infra::spi::select_row(
        "SELECT a.pid, a.backend_start, (SELECT c.system_identifier FROM pg_catalog.pg_control_system() c)
           FROM pg_catalog.pg_stat_get_activity(pg_catalog.pg_backend_pid()) a",
        &[],
        |r| {
            Ok((
                r.get::<i32>(1)?,
                r.get::<pgrx::datum::TimestampWithTimeZone>(2)?,
                r.get::<i64>(3)?,
            ))
        },
    )
    .or_bug("reading this backend's start")
    .unwrap_or((None, None, None));
    Spi::run_with_args(
        "INSERT INTO tenancy.support_sessions
                (id, tenant, opened_by, opened_by_name, reason, expires_at, opened_pid,
                 opened_backend_start, opened_system)
         VALUES ($1, $2, $3, $4, $5, pg_catalog.to_timestamp($6), $7, $8, $9)",
        &[
            sid.as_str().into(),
            tenant.into(),
            crate::registry::cache::outer_user().into(),
            ctx.actor.as_deref().into(),
            reason.into(),
            (expires_at as f64).into(),
            pid.into(),
            backend_start.into(),
            system.into(),
        ],
    )
    .or_bug("recording the support session");
    trail::write(trail::Entry {
        tenant,
        actor: ctx.actor.as_deref(),
        roles: &[],
        support: ctx.support_mark(),
        event: "support_begun",
        detail: json!({ "minutes": minutes }),
    });
    // This backend forgets what it verified under the old session list at once; the others
    // at their next transaction (the table's registry trigger).
    crate::registry::cache::bump_generation();
    // Support staff are not the tenant's workload: the tenant's plan limits are not applied.
    crate::context::tenant_context::install(ctx, None, false);
    JsonB(shown)
}

/// Marks the carrier's session ended; false when there is nothing to end (no session id,
/// already ended, or opened by another role).
fn end_session(ctx: &Context) -> bool {
    let Some(sid) = &ctx.support_session else {
        return false;
    };
    crate::infra::spi::dml_returning::<String>(
        "UPDATE tenancy.support_sessions SET ended_at = pg_catalog.now(), end_recorded = true
          WHERE id OPERATOR(pg_catalog.=) $1 AND ended_at IS NULL
            AND opened_by OPERATOR(pg_catalog.=) $2
          RETURNING id",
        &[
            sid.as_str().into(),
            crate::registry::cache::outer_user().into(),
        ],
    )
    .or_bug("ending the support session")
    .is_some()
}

/// Removes the context for the rest of the session (both a transaction-local and a session
/// context), so later queries see no tenant. A support session of the caller's own role ends
/// with it, on the record (`support_ended`, `"how": "clear_context"`): leaving the tenant is
/// ending the visit. Not SECURITY DEFINER (everyone may call it); the session row and the
/// chain are written as the extension's owner, and only for a carrier whose MAC verifies and
/// whose session the caller's role opened.
#[pg_extern(volatile, parallel_unsafe)]
fn clear_context() {
    {
        let carrier = crate::context::setting::with_carrier(|c| !c.is_empty());
        // The carrier key is the extension owner's to read.
        let _owner = carrier.then(crate::infra::owner::AsExtensionOwner::enter);
        if let Some(ctx) = carrier
            .then(crate::context::tenant_context::peek_unexpired_or_not)
            .flatten()
            .filter(|c| c.source == Source::Support)
        {
            if end_session(&ctx) {
                trail::write(trail::Entry {
                    tenant: &ctx.tenant,
                    actor: ctx.actor.as_deref(),
                    roles: &[],
                    support: ctx.support_mark(),
                    event: "support_ended",
                    detail: json!({
                        "how": "clear_context",
                        "expired": ctx.expired_at(crate::registry::cache::clock_now()),
                    }),
                });
                crate::registry::cache::bump_generation();
            }
            record_endings();
        }
    }
    crate::context::tenant_context::clear();
}

/// Writes the `support_ended` row of every session that ended without one: past its expiry,
/// its opening backend gone, its role no longer holding the support grant (or dropped). Such endings happen with nobody
/// present to write the row (the session is dead by the rule from that moment, on every
/// backend); the row is written by the next begin_support(), end_support(), clear_context()
/// of a support session, or tenancy.close_support_sessions(), on any backend. Returns how
/// many rows it wrote. Sessions another transaction is ending, and tenants whose chain head
/// another transaction holds, are skipped (left for a later sweep), not waited for.
fn record_endings() -> i64 {
    let _owner = crate::infra::owner::AsExtensionOwner::enter();
    let due = Spi::connect_mut(|c| {
        c.update(
            "SELECT s.id, s.tenant, s.opened_by_name::pg_catalog.text, s.reason,
                    pg_catalog.date_part('epoch', s.expires_at)::pg_catalog.int8,
                    CASE WHEN s.ended_at IS NOT NULL THEN 'ended'
                         WHEN s.expires_at OPERATOR(pg_catalog.<=) pg_catalog.clock_timestamp() THEN 'expired'
                         WHEN s.opened_backend_start IS NOT NULL
                              AND s.opened_system IS NOT DISTINCT FROM (SELECT c.system_identifier FROM pg_catalog.pg_control_system() c)
                              AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_stat_get_activity(s.opened_pid) a
                                               WHERE a.backend_start OPERATOR(pg_catalog.=) s.opened_backend_start)
                              THEN 'backend_exited'
                         ELSE 'grant_lost' END
               FROM tenancy.support_sessions s
              WHERE NOT s.end_recorded
                AND (s.ended_at IS NOT NULL
                     OR s.expires_at OPERATOR(pg_catalog.<=) pg_catalog.clock_timestamp()
                     OR (s.opened_backend_start IS NOT NULL
                         AND s.opened_system IS NOT DISTINCT FROM (SELECT c.system_identifier FROM pg_catalog.pg_control_system() c)
                         AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_stat_get_activity(s.opened_pid) a
                                          WHERE a.backend_start OPERATOR(pg_catalog.=) s.opened_backend_start))
                     OR NOT coalesce(pg_catalog.has_function_privilege(s.opened_by,
                            'tenancy.begin_support(pg_catalog.text, pg_catalog.text, pg_catalog.int4)'::pg_catalog.regprocedure::pg_catalog.oid,
                            'EXECUTE'), false))
              ORDER BY s.began_at
              FOR UPDATE SKIP LOCKED",
            None,
            &[],
        )?
        .map(|r| {
            Ok((
                r.get::<String>(1)?.unwrap_or_default(),
                r.get::<String>(2)?.unwrap_or_default(),
                r.get::<String>(3)?,
                r.get::<String>(4)?,
                r.get::<i64>(5)?,
                r.get::<String>(6)?.unwrap_or_default(),
            ))
        })
        .collect::<Result<Vec<_>, pgrx::spi::Error>>()
    })
    .or_bug("finding ended support sessions");
    let mut n = 0;
    for (id, tenant, by, reason, until, how) in due {
        // Whoever sweeps must not wait for some other tenant's open transaction: a chain
        // whose head is held is left for a later sweep.
        if !trail::head_free(&tenant) {
            continue;
        }
        // The clock is read first: Citus refuses a volatile function in a write to its tables
        // (the registry is one under Citus, scale/citus.rs).
        let now = crate::registry::cache::clock_now_timestamp();
        Spi::run_with_args(
            "UPDATE tenancy.support_sessions
                SET end_recorded = true,
                    ended_at = coalesce(ended_at, LEAST(expires_at, $2))
              WHERE id OPERATOR(pg_catalog.=) $1",
            &[id.as_str().into(), now.into()],
        )
        .or_bug("recording an ended support session");
        trail::write(trail::Entry {
            tenant: &tenant,
            actor: by.as_deref(),
            roles: &[],
            support: Some(json!({ "by": by, "reason": reason, "until": until })),
            event: "support_ended",
            detail: json!({ "how": how, "expired": how == "expired", "recorded_late": true }),
        });
        n += 1;
    }
    if n > 0 {
        crate::registry::cache::bump_generation();
    }
    n
}

/// Ends every open support session of `tenant` (its deactivation: a session must not outlive
/// the tenant it was opened for, nor meet a new tenant registered later under the same id) and
/// writes their `support_ended` rows.
pub fn end_tenant_sessions(tenant: &str) {
    {
        let _owner = crate::infra::owner::AsExtensionOwner::enter();
        let now = crate::registry::cache::clock_now_timestamp();
        Spi::run_with_args(
            "UPDATE tenancy.support_sessions SET ended_at = $2
              WHERE tenant OPERATOR(pg_catalog.=) $1 AND ended_at IS NULL",
            &[tenant.into(), now.into()],
        )
        .or_bug("ending the tenant's support sessions");
    }
    record_endings();
    crate::registry::cache::bump_generation();
}

/// Writes the missing `support_ended` rows now (see [`record_endings`]) and returns how many.
/// For admins, e.g. from a scheduler every minute, so that an expired session's end is on
/// the record even when nobody opens or ends another session.
#[pg_extern(volatile, parallel_unsafe, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn close_support_sessions() -> i64 {
    record_endings()
}

/// Ends the support session (also one that has already expired) and records that.
#[pg_extern(volatile, parallel_unsafe, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn end_support() {
    trail::refuse_on_citus_worker();
    let Some(ctx) = crate::context::tenant_context::peek_unexpired_or_not()
        .filter(|c| c.source == Source::Support)
    else {
        errors::no_support_session()
    };
    let expired = ctx.expired_at(crate::registry::cache::clock_now());
    if !end_session(&ctx) {
        errors::not_in_state(
            "this support session has already ended or was opened by another role".into(),
            Some("tenancy.clear_context() removes the carrier; tenancy.begin_support() opens a new session"),
        );
    }
    trail::write(trail::Entry {
        tenant: &ctx.tenant,
        actor: ctx.actor.as_deref(),
        roles: &[],
        support: ctx.support_mark(),
        event: "support_ended",
        detail: json!({ "how": "end_support", "expired": expired }),
    });
    crate::context::tenant_context::clear();
    crate::registry::cache::bump_generation();
    record_endings();
}

/// For the statement trigger on protected tables (its WHEN clause, evaluated at statement
/// end): did this statement's transaction act under a support context, up to now? Not only
/// "is the context support now": a statement can clear or replace `tenancy.context` before
/// its end (a CTE calling `set_config()` or `clear_context()`, a volatile function, a
/// `RESET` inside a function) after writing under support. Costs a cached lookup; without a
/// support context it returns false at once.
#[pg_extern(stable, parallel_safe)]
fn _support_active() -> bool {
    crate::registry::cache::any_support_seen()
        || crate::context::tenant_context::current()
            .is_some_and(|r| r.ctx.source == Source::Support)
}

/// Records a write to a protected table under the support contexts its transaction used;
/// does nothing otherwise. Called only by the SECURITY DEFINER trigger function (granted to
/// nobody).
#[pg_extern(volatile, parallel_unsafe, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn _audit_support_write(tbl: pg_sys::Oid, operation: &str) {
    // Resolving the present carrier adds it to the transaction's support contexts if it is one.
    let _ = crate::context::tenant_context::current();
    let sessions = crate::registry::cache::support_seen();
    if sessions.is_empty() {
        return;
    }
    // Called by hand, it may only state a true kind of write on a protected table.
    if !matches!(operation, "INSERT" | "UPDATE" | "DELETE") {
        errors::bad_argument("operation must be INSERT, UPDATE or DELETE".into(), None);
    }
    let table = crate::infra::catalog::relation_opt(tbl)
        .filter(|rel| crate::registry::protected_tables::is_protected(rel.oid))
        .map(|rel| rel.qualified())
        .unwrap_or_else(|| {
            errors::bad_argument(
                "not a protected table".into(),
                Some("this function is called by the tenancy_support_audit trigger"),
            )
        });
    for resolved in sessions {
        let ctx = &resolved.ctx;
        trail::write(trail::Entry {
            tenant: &ctx.tenant,
            actor: ctx.actor.as_deref(),
            roles: &ctx.roles,
            support: ctx.support_mark(),
            event: "support_write",
            detail: json!({ "table": table, "operation": operation.to_lowercase() }),
        });
    }
}

// ---------------------------------------------------------------------------------------------
// Support reads. PostgreSQL has no SELECT triggers, so reads are seen by the executor hooks:
// ExecutorStart turns on row counting (INSTRUMENT_ROWS, no timers) when the statement may run
// under a support context, and ExecutorEnd walks the finished plan, sums the rows each scan of
// a protected table returned (after row level security), and records one `support_read` per
// table in the tenant's chain, in the statement's transaction. Without a support context the
// cost is one thread-local check per statement (and, at ExecutorStart, reading the carrier
// setting).
//
// A row written in a transaction that rolls back would vanish while the rows it records were
// already sent. So every read is also kept in backend memory until its transaction commits; on
// rollback it is logged at once (LOG, server log) and written again, marked `rolled_back`, by
// the next statement of this backend that runs in a writable transaction.

use std::cell::{Cell, RefCell};

#[derive(Clone)]
struct ReadRecord {
    tenant: String,
    actor: Option<String>,
    roles: Vec<String>,
    support: Option<serde_json::Value>,
    table: String,
    /// For a read cut short by an error (its statement never reached ExecutorEnd): the
    /// relation, named and checked for protection when the record is written again.
    relid: Option<pg_sys::Oid>,
    rows: Option<i64>,
    rolled_back: bool,
    /// The subtransaction that wrote it: a ROLLBACK TO (or a PL/pgSQL exception block) undoes
    /// its row as surely as a rollback.
    subxact: pg_sys::SubTransactionId,
}

/// Past this many reads waiting to be written again, the LOG line is their only record: a
/// loop of rollbacks must not grow the backend's memory without bound.
const MAX_PENDING: usize = 10_000;

thread_local! {
    static IN_HOOK: Cell<bool> = const { Cell::new(false) };
    /// Reads recorded in the current transaction (written to the chain, not yet committed).
    static XACT_READS: RefCell<Vec<ReadRecord>> = const { RefCell::new(Vec::new()) };
    /// The statements running now, innermost last.
    static RUNNING: RefCell<Vec<Running>> = const { RefCell::new(Vec::new()) };
    /// Reads whose transaction rolled back: written again by the next writable statement.
    static PENDING: RefCell<Vec<ReadRecord>> = const { RefCell::new(Vec::new()) };
}

/// A statement between ExecutorStart and ExecutorEnd. A statement cut short by an error never
/// reaches ExecutorEnd (its portal is marked failed), though it may have sent rows: the abort
/// callbacks record what it read from the relations it named.
struct Running {
    query: usize,
    /// `support_uses()` when it started: a change means it ran under a support context.
    uses: u64,
    subxact: pg_sys::SubTransactionId,
    /// The relations it reads or hands back, when it may run under support.
    relids: Vec<pg_sys::Oid>,
    /// Whether it began watched: a support context possible then (or the hooks' own
    /// statement), or no relation named. An unwatched statement must not go on under a
    /// support context (`cache::saw_support` refuses).
    watched: bool,
}

/// Tells the registry cache whether an unwatched statement is running (see `Running`).
fn note_unwatched(running: &[Running]) {
    crate::registry::cache::set_unwatched_running(running.iter().any(|s| !s.watched));
}

static mut PREV_START: pg_sys::ExecutorStart_hook_type = None;
static mut PREV_END: pg_sys::ExecutorEnd_hook_type = None;

pub fn init() {
    // SAFETY: hooks are chained at library load, before any query runs in this backend.
    unsafe {
        PREV_START = pg_sys::ExecutorStart_hook;
        pg_sys::ExecutorStart_hook = Some(executor_start);
        PREV_END = pg_sys::ExecutorEnd_hook;
        pg_sys::ExecutorEnd_hook = Some(executor_end);
        pg_sys::RegisterXactCallback(Some(reads_xact_ended), core::ptr::null_mut());
        pg_sys::RegisterSubXactCallback(Some(reads_subxact_ended), core::ptr::null_mut());
    }
}

/// Whether this statement may read under a support context: a support context seen in this
/// transaction, a current carrier known to be support, or a carrier not yet verified under the
/// present registry generation (verified only once the statement runs).
fn support_possible() -> bool {
    if crate::registry::cache::any_support_seen() {
        return true;
    }
    match crate::registry::cache::current_if_fresh() {
        Some(Some(r)) => r.ctx.source == Source::Support,
        Some(None) => false,
        None => crate::context::setting::with_carrier(|c| !c.is_empty()),
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn executor_start(qd: *mut pg_sys::QueryDesc, eflags: core::ffi::c_int) {
    let hooked = IN_HOOK.get();
    let possible = !hooked && support_possible();
    // SAFETY: the executor hands a valid QueryDesc with its planned statement.
    let relids = if possible {
        unsafe { read_relids(qd) }
    } else {
        Vec::new()
    };
    // A statement that names no relation reads nothing itself (the statements of functions
    // it calls start, and are watched, on their own).
    // SAFETY: as above.
    let watched = possible || hooked || unsafe { !names_relation(qd) };
    RUNNING.with(|r| {
        let mut r = r.borrow_mut();
        // Never trimmed: entries leave at ExecutorEnd or with their (sub)transaction's end, so
        // a statement that is still running is never forgotten.
        r.push(Running {
            query: qd as usize,
            uses: crate::registry::cache::support_uses(),
            // SAFETY: reads a backend global.
            subxact: unsafe { pg_sys::GetCurrentSubTransactionId() },
            relids,
            watched,
        });
        note_unwatched(&r);
    });
    // Not under Citus: an instrumented statement makes Citus run its tasks the way EXPLAIN
    // ANALYZE does, which breaks the remote transaction of the first statement after a
    // context is set (support reads are not counted on Citus; docs/scale-out.md).
    // Nor in a parallel worker: the leader decided for the whole plan (a worker inherits its
    // instrumentation), and a worker that instruments alone looks for shared instrumentation the
    // leader never allocated ("could not find key ... in shm TOC" from a Parallel Hash).
    // SAFETY: reads a backend global.
    let worker = unsafe { pg_sys::ParallelWorkerNumber >= 0 };
    if possible && !worker && !crate::infra::spi::citus_loaded() {
        // SAFETY: the executor hands a valid QueryDesc; the option is read by ExecInitNode.
        unsafe {
            (*qd).instrument_options |=
                pg_sys::InstrumentOption::INSTRUMENT_ROWS as core::ffi::c_int;
        }
    }
    // SAFETY: chaining to the previous hook or the standard executor with the same arguments.
    unsafe {
        match PREV_START {
            Some(prev) => prev(qd, eflags),
            None => pg_sys::standard_ExecutorStart(qd, eflags),
        }
    }
}

/// The plain relations a statement names. Its result relations count too, unless it is a
/// plain INSERT: an UPDATE, DELETE or MERGE reads the rows it changes (its expressions and
/// RETURNING see them), and so does an INSERT with RETURNING or ON CONFLICT.
unsafe fn read_relids(qd: *mut pg_sys::QueryDesc) -> Vec<pg_sys::Oid> {
    // SAFETY: a QueryDesc at ExecutorStart has its planned statement.
    unsafe {
        let stmt = (*qd).plannedstmt;
        if stmt.is_null() {
            return Vec::new();
        }
        let results = if plain_insert(stmt) {
            list_ints((*stmt).resultRelations)
        } else {
            Vec::new()
        };
        let mut out = Vec::new();
        for (i, rte) in list_ptrs((*stmt).rtable).into_iter().enumerate() {
            let rte = rte as *mut pg_sys::RangeTblEntry;
            if (*rte).rtekind == pg_sys::RTEKind::RTE_RELATION
                && !results.contains(&(i as i32 + 1))
                && !out.contains(&(*rte).relid)
            {
                out.push((*rte).relid);
            }
        }
        out
    }
}

/// An INSERT that hands nothing back: no RETURNING, no ON CONFLICT.
unsafe fn plain_insert(stmt: *mut pg_sys::PlannedStmt) -> bool {
    // SAFETY: the caller passes a planned statement; the node type is checked before the cast.
    unsafe {
        if (*stmt).commandType != pg_sys::CmdType::CMD_INSERT || (*stmt).hasReturning {
            return false;
        }
        let top = (*stmt).planTree;
        top.is_null()
            || (*top).type_ != pg_sys::NodeTag::T_ModifyTable
            || (*(top as *mut pg_sys::ModifyTable)).onConflictAction
                == pg_sys::OnConflictAction::ONCONFLICT_NONE
    }
}

/// Whether a statement names a plain relation at all.
unsafe fn names_relation(qd: *mut pg_sys::QueryDesc) -> bool {
    // SAFETY: a QueryDesc at ExecutorStart has its planned statement.
    unsafe {
        let stmt = (*qd).plannedstmt;
        !stmt.is_null()
            && list_ptrs((*stmt).rtable).into_iter().any(|rte| {
                (*(rte as *mut pg_sys::RangeTblEntry)).rtekind == pg_sys::RTEKind::RTE_RELATION
            })
    }
}

/// Reads of statements cut short in the (sub)transaction that is aborting: those that started
/// in it (`since` and later) and ran under a support context. Rows unknown.
fn cut_short(since: pg_sys::SubTransactionId) -> Vec<ReadRecord> {
    let stopped: Vec<Running> = RUNNING.with(|r| {
        let mut r = r.borrow_mut();
        let (stopped, kept) = std::mem::take(&mut *r)
            .into_iter()
            .partition(|s| s.subxact >= since);
        *r = kept;
        note_unwatched(&r);
        stopped
    });
    let uses = crate::registry::cache::support_uses();
    let stopped: Vec<Running> = stopped
        .into_iter()
        .filter(|s| s.uses != uses && !s.relids.is_empty())
        .collect();
    if stopped.is_empty() {
        return Vec::new();
    }
    let sessions = crate::registry::cache::support_seen();
    let mut out = Vec::new();
    for s in stopped {
        for relid in s.relids {
            for resolved in &sessions {
                let ctx = &resolved.ctx;
                out.push(ReadRecord {
                    tenant: ctx.tenant.clone(),
                    actor: ctx.actor.clone(),
                    roles: ctx.roles.clone(),
                    support: ctx.support_mark(),
                    table: format!("relation {}", u32::from(relid)),
                    relid: Some(relid),
                    rows: None,
                    rolled_back: false,
                    subxact: 0,
                });
            }
        }
    }
    out
}

#[pg_guard]
unsafe extern "C-unwind" fn executor_end(qd: *mut pg_sys::QueryDesc) {
    let started = RUNNING.with(|r| {
        let mut r = r.borrow_mut();
        let at = r.iter().rposition(|s| s.query == qd as usize)?;
        let s = r.remove(at);
        note_unwatched(&r);
        Some(s)
    });
    // Under support during this statement: a support context was used since it started (the
    // isolation policy asks for the tenant while the statement runs). Reads under another
    // context later in a transaction that used support are not support reads.
    let mut under_support = started
        .as_ref()
        .is_some_and(|s| crate::registry::cache::support_uses() != s.uses);
    let relids = started.map(|s| s.relids).unwrap_or_default();
    if !under_support && !IN_HOOK.get() && crate::infra::spi::citus_loaded() && !relids.is_empty() {
        // Under Citus the policy of a distributed table is evaluated on the workers: the
        // coordinator sees no use of the context. A statement that named a protected table
        // under a support carrier read under support. The carrier was verified while the
        // statement was planned (routing asks for the tenant), so the cache knows it; nothing
        // is verified here, at the end of Citus's own execution.
        let support_now = matches!(
            crate::registry::cache::current_if_fresh(),
            Some(Some(r)) if r.ctx.source == Source::Support
        );
        if support_now {
            IN_HOOK.set(true);
            let _reset = ResetOnDrop;
            under_support = relids
                .iter()
                .any(|r| crate::registry::protected_tables::is_protected(*r));
        }
    }
    // A parallel worker cannot write; its rows reach the leader's counts, and the leader
    // records them.
    // SAFETY: reads a backend global.
    let worker = unsafe { pg_sys::ParallelWorkerNumber >= 0 };
    if !IN_HOOK.get() && !worker && (under_support || PENDING.with(|p| !p.borrow().is_empty())) {
        IN_HOOK.set(true);
        // Cleared on error too: the next statement must be seen again.
        let _reset = ResetOnDrop;
        // A top-level statement ends when its portal is dropped, with no snapshot active: SPI
        // needs one. Popped on success; an error's abort clears the stack anyway.
        // SAFETY: snapshot stack calls inside a transaction; the QueryDesc is valid until
        // standard_ExecutorEnd below frees it.
        unsafe {
            let pushed = !pg_sys::ActiveSnapshotSet();
            if pushed {
                pg_sys::PushActiveSnapshot(pg_sys::GetTransactionSnapshot());
            }
            record_reads(qd, under_support, &relids);
            if pushed {
                pg_sys::PopActiveSnapshot();
            }
        }
    }
    // SAFETY: as in executor_start.
    unsafe {
        match PREV_END {
            Some(prev) => prev(qd),
            None => pg_sys::standard_ExecutorEnd(qd),
        }
    }
}

struct ResetOnDrop;
impl Drop for ResetOnDrop {
    fn drop(&mut self) {
        IN_HOOK.set(false);
    }
}

/// The elements of a pointer list.
unsafe fn list_ptrs(list: *mut pg_sys::List) -> Vec<*mut core::ffi::c_void> {
    if list.is_null() {
        return Vec::new();
    }
    // SAFETY: a non-NIL List has `length` initialised cells.
    unsafe {
        (0..(*list).length as usize)
            .map(|i| (*(*list).elements.add(i)).ptr_value)
            .collect()
    }
}

unsafe fn list_ints(list: *mut pg_sys::List) -> Vec<i32> {
    if list.is_null() {
        return Vec::new();
    }
    // SAFETY: as in list_ptrs, for an integer list.
    unsafe {
        (0..(*list).length as usize)
            .map(|i| (*(*list).elements.add(i)).int_value)
            .collect()
    }
}

/// The `n` plan states of a node's child array.
unsafe fn children(
    array: *mut *mut pg_sys::PlanState,
    n: core::ffi::c_int,
) -> Vec<*mut pg_sys::PlanState> {
    // SAFETY: the caller passes a node's array with its stated length.
    (0..n.max(0) as usize)
        .map(|i| unsafe { *array.add(i) })
        .collect()
}

/// Calls `f` on every node of a plan-state tree (children, init plans, subplans, and the
/// arrays of Append, MergeAppend, BitmapAnd/Or, SubqueryScan, CustomScan).
unsafe fn walk(ps: *mut pg_sys::PlanState, f: &mut dyn FnMut(*mut pg_sys::PlanState)) {
    if ps.is_null() {
        return;
    }
    f(ps);
    // SAFETY: node types are checked before each cast; arrays have the stated lengths.
    unsafe {
        let arrays: Vec<*mut pg_sys::PlanState> = match (*ps).type_ {
            pg_sys::NodeTag::T_AppendState => {
                let a = ps as *mut pg_sys::AppendState;
                children((*a).appendplans, (*a).as_nplans)
            }
            pg_sys::NodeTag::T_MergeAppendState => {
                let a = ps as *mut pg_sys::MergeAppendState;
                children((*a).mergeplans, (*a).ms_nplans)
            }
            pg_sys::NodeTag::T_BitmapAndState => {
                let a = ps as *mut pg_sys::BitmapAndState;
                children((*a).bitmapplans, (*a).nplans)
            }
            pg_sys::NodeTag::T_BitmapOrState => {
                let a = ps as *mut pg_sys::BitmapOrState;
                children((*a).bitmapplans, (*a).nplans)
            }
            pg_sys::NodeTag::T_SubqueryScanState => {
                vec![(*(ps as *mut pg_sys::SubqueryScanState)).subplan]
            }
            pg_sys::NodeTag::T_CustomScanState => {
                list_ptrs((*(ps as *mut pg_sys::CustomScanState)).custom_ps)
                    .into_iter()
                    .map(|p| p as *mut pg_sys::PlanState)
                    .collect()
            }
            _ => Vec::new(),
        };
        for child in arrays {
            walk(child, f);
        }
        walk((*ps).lefttree, f);
        walk((*ps).righttree, f);
        for sp in list_ptrs((*ps).initPlan)
            .into_iter()
            .chain(list_ptrs((*ps).subPlan))
        {
            walk((*(sp as *mut pg_sys::SubPlanState)).planstate, f);
        }
    }
}

/// (relation, rows returned by its scans, None when rows were not counted) for every relation
/// the plan scanned: also the scans that find the rows an UPDATE, DELETE or MERGE changes
/// (its expressions and RETURNING see them), and the existing rows an INSERT ... ON CONFLICT
/// DO UPDATE met (at most the rows it processed).
unsafe fn scanned(qd: *mut pg_sys::QueryDesc) -> Vec<(pg_sys::Oid, Option<i64>)> {
    // SAFETY: a QueryDesc that reached ExecutorEnd has an estate, a plan and a planned stmt.
    unsafe {
        let estate = (*qd).estate;
        if estate.is_null()
            || (*estate).es_top_eflags & pg_sys::EXEC_FLAG_EXPLAIN_ONLY as core::ffi::c_int != 0
        {
            return Vec::new();
        }
        let rtable = list_ptrs((*estate).es_range_table);
        let mut out: Vec<(pg_sys::Oid, Option<i64>)> = Vec::new();
        let mut add = |rti: i32, rows: Option<i64>| {
            if rti < 1 || rti as usize > rtable.len() {
                return;
            }
            let rte = rtable[rti as usize - 1] as *mut pg_sys::RangeTblEntry;
            if (*rte).rtekind != pg_sys::RTEKind::RTE_RELATION {
                return;
            }
            match out.iter_mut().find(|(oid, _)| *oid == (*rte).relid) {
                Some((_, r)) => *r = r.zip(rows).map(|(a, b)| a + b),
                None => out.push(((*rte).relid, rows)),
            }
        };
        let processed = (*estate).es_processed as i64;
        walk((*qd).planstate, &mut |ps| {
            let plan = (*ps).plan;
            if (*plan).type_ == pg_sys::NodeTag::T_ModifyTable {
                let mt = plan as *mut pg_sys::ModifyTable;
                if (*mt).onConflictAction == pg_sys::OnConflictAction::ONCONFLICT_UPDATE {
                    for rti in list_ints((*mt).resultRelations) {
                        add(rti, Some(processed));
                    }
                }
                return;
            }
            let is_scan = matches!(
                (*plan).type_,
                pg_sys::NodeTag::T_SeqScan
                    | pg_sys::NodeTag::T_SampleScan
                    | pg_sys::NodeTag::T_IndexScan
                    | pg_sys::NodeTag::T_IndexOnlyScan
                    | pg_sys::NodeTag::T_BitmapHeapScan
                    | pg_sys::NodeTag::T_TidScan
                    | pg_sys::NodeTag::T_TidRangeScan
            );
            if !is_scan {
                return;
            }
            let rti = (*(plan as *mut pg_sys::Scan)).scanrelid as i32;
            let instr = (*ps).instrument;
            let rows = (!instr.is_null()).then(|| ((*instr).ntuples + (*instr).tuplecount) as i64);
            add(rti, rows);
        });
        out
    }
}

unsafe fn record_reads(qd: *mut pg_sys::QueryDesc, under_support: bool, named: &[pg_sys::Oid]) {
    flush_pending();
    if !under_support {
        return;
    }
    // SAFETY: passed on from executor_end.
    let mut rels = unsafe { scanned(qd) };
    // SAFETY: a QueryDesc that reached ExecutorEnd has its estate.
    let explain_only = unsafe {
        let estate = (*qd).estate;
        estate.is_null()
            || (*estate).es_top_eflags & pg_sys::EXEC_FLAG_EXPLAIN_ONLY as core::ffi::c_int != 0
    };
    if crate::infra::spi::citus_loaded() && !explain_only {
        // A distributed table is read by Citus's own plan node on the workers, not by a scan
        // here: on the record with its rows unknown.
        for oid in named {
            if !rels.iter().any(|(r, _)| r == oid) {
                rels.push((*oid, None));
            }
        }
    }
    if rels.is_empty() {
        return;
    }
    let sessions = crate::registry::cache::support_seen();
    for (oid, rows) in rels {
        if !crate::registry::protected_tables::is_protected(oid) {
            continue;
        }
        let Some(table) = crate::infra::catalog::relation_opt(oid).map(|r| r.qualified()) else {
            continue;
        };
        for resolved in &sessions {
            let ctx = &resolved.ctx;
            let rec = ReadRecord {
                tenant: ctx.tenant.clone(),
                actor: ctx.actor.clone(),
                roles: ctx.roles.clone(),
                support: ctx.support_mark(),
                table: table.clone(),
                relid: None,
                rows,
                rolled_back: false,
                subxact: 0,
            };
            write_read(rec);
        }
    }
}

/// Remembers the read before writing it, so that a failed write (a read-only transaction, a
/// lock timeout) still reaches the rollback path and its LOG line.
fn write_read(mut rec: ReadRecord) {
    // SAFETY: reads a backend global.
    rec.subxact = unsafe { pg_sys::GetCurrentSubTransactionId() };
    XACT_READS.with(|x| x.borrow_mut().push(rec.clone()));
    trail::write(trail::Entry {
        tenant: &rec.tenant,
        actor: rec.actor.as_deref(),
        roles: &rec.roles,
        support: rec.support.clone(),
        event: "support_read",
        detail: read_detail(&rec),
    });
}

fn read_detail(rec: &ReadRecord) -> serde_json::Value {
    let mut d = json!({ "table": rec.table, "rows": rec.rows });
    if rec.rolled_back {
        d["rolled_back"] = json!(true);
    }
    d
}

/// Writes the reads of rolled-back transactions, in a transaction that can write.
fn flush_pending() {
    if PENDING.with(|p| p.borrow().is_empty()) {
        return;
    }
    // SAFETY: plain reads of backend globals.
    let writable = unsafe { !pg_sys::XactReadOnly && !pg_sys::RecoveryInProgress() };
    if !writable {
        return;
    }
    let pending: Vec<ReadRecord> = PENDING.with(|p| std::mem::take(&mut *p.borrow_mut()));
    for mut rec in pending {
        if let Some(relid) = rec.relid.take() {
            // A statement cut short named it: on the record if it is a protected table.
            if !crate::registry::protected_tables::is_protected(relid) {
                continue;
            }
            if let Some(rel) = crate::infra::catalog::relation_opt(relid) {
                rec.table = rel.qualified();
            }
        }
        write_read(rec);
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn reads_xact_ended(
    event: pg_sys::XactEvent::Type,
    _arg: *mut core::ffi::c_void,
) {
    match event {
        // A prepared transaction can be rolled back later, by anyone, after this backend has
        // forgotten its reads: a transaction that acted under support is not prepared.
        pg_sys::XactEvent::XACT_EVENT_PRE_PREPARE
            if crate::registry::cache::any_support_seen()
                || XACT_READS.with(|x| !x.borrow().is_empty()) =>
        {
            errors::not_in_state(
                "a transaction that used a support context cannot be prepared (PREPARE TRANSACTION)".into(),
                Some("commit it, or leave the support session before preparing"),
            );
        }
        pg_sys::XactEvent::XACT_EVENT_COMMIT
        | pg_sys::XactEvent::XACT_EVENT_PARALLEL_COMMIT
        | pg_sys::XactEvent::XACT_EVENT_PREPARE => {
            XACT_READS.with(|x| x.borrow_mut().clear());
            RUNNING.with(|r| r.borrow_mut().clear());
            crate::registry::cache::set_unwatched_running(false);
        }
        pg_sys::XactEvent::XACT_EVENT_ABORT | pg_sys::XactEvent::XACT_EVENT_PARALLEL_ABORT => {
            let mut lost = cut_short(0);
            lost.extend(XACT_READS.with(|x| std::mem::take(&mut *x.borrow_mut())));
            keep_lost(lost);
        }
        _ => {}
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn reads_subxact_ended(
    event: pg_sys::SubXactEvent::Type,
    my: pg_sys::SubTransactionId,
    parent: pg_sys::SubTransactionId,
    _arg: *mut core::ffi::c_void,
) {
    match event {
        pg_sys::SubXactEvent::SUBXACT_EVENT_COMMIT_SUB => XACT_READS.with(|x| {
            for rec in x.borrow_mut().iter_mut().filter(|r| r.subxact == my) {
                rec.subxact = parent;
            }
        }),
        pg_sys::SubXactEvent::SUBXACT_EVENT_ABORT_SUB => {
            // Subtransaction ids only grow: ids at or above `my` are it and its children.
            let mut lost = cut_short(my);
            lost.extend(XACT_READS.with(|x| {
                let mut x = x.borrow_mut();
                let (lost, kept) = std::mem::take(&mut *x)
                    .into_iter()
                    .partition(|r| r.subxact >= my);
                *x = kept;
                lost
            }));
            keep_lost(lost);
        }
        _ => {}
    }
}

/// Reads whose rows were rolled back: logged at once, written again later.
fn keep_lost(lost: Vec<ReadRecord>) {
    for mut rec in lost {
        if !rec.rolled_back {
            // Never the reason (free text): tenant, engineer, table and rows.
            pgrx::log!(
                "pg_tenancy: support read rolled back: tenant {:?}, by {:?}, table {}, rows {}",
                rec.tenant,
                rec.actor.as_deref().unwrap_or(""),
                rec.table,
                rec.rows
                    .map_or_else(|| "unknown".to_string(), |r| r.to_string())
            );
        }
        rec.rolled_back = true;
        PENDING.with(|p| {
            let mut p = p.borrow_mut();
            if p.len() < MAX_PENDING {
                p.push(rec);
            }
        });
    }
}
