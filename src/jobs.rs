//! Jobs that carry their tenant (docs/jobs.md): `enqueue()` stamps the caller's verified
//! context on a row of `tenancy.jobs`; a worker's `claim_job()` takes the next ready job
//! (`FOR UPDATE SKIP LOCKED`) and makes the job's tenant and actor the context of the claiming
//! transaction; `complete_job()` and `fail_job()` end it, in that same transaction.
//!
//! One transaction per job: the claim's row lock is the job's lease, so a worker that dies
//! releases its job with its transaction, and the job's effects commit with its completion or
//! not at all. The job's context is a carrier bound to the claiming transaction's id
//! (`context::tenant_context`), refused anywhere else.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use pgrx::datum::{Interval, TimestampWithTimeZone};
use pgrx::prelude::*;
use pgrx::spi::{OwnedPreparedStatement, SpiClient};
use pgrx::{JsonB, PgOid};
use serde_json::json;
use tenancy_core::carrier::{Context, JobClaim, Source};
use tenancy_core::ident;

use crate::context::reason::Attempt;
use crate::context::tenant_context;
use crate::infra::errors::{self, SpiOrBug};
use crate::infra::{args, gucs, roles, spi};
use crate::registry::cache;

/// Bounds of a claim's lease, in seconds.
const MIN_LEASE: i64 = 1;
const MAX_LEASE: i64 = 24 * 3600;
/// Bounds of `max_attempts`, as the table's CHECK has them.
const MAX_ATTEMPTS: i32 = 100;
/// The default backoff after the n-th failed attempt: 5 s · 2^(n-1), at most an hour.
const BACKOFF_BASE: i64 = 5;
const BACKOFF_CAP: i64 = 3600;

thread_local! {
    /// The top-level transaction id of this backend's last claim (0: none).
    static CLAIMED_IN: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    static PLANS: RefCell<HashMap<&'static str, Rc<OwnedPreparedStatement>>> =
        RefCell::new(HashMap::new());
}

/// The backend's kept plan of `sql`: a claim and a completion run once per job, and parsing
/// and planning them each time cost more than running them. Every name in them is
/// schema-qualified, and a kept plan is revalidated by PostgreSQL when what it reads changes.
fn kept(
    c: &SpiClient<'_>,
    sql: &'static str,
    args: &[PgOid],
) -> Result<Rc<OwnedPreparedStatement>, pgrx::spi::Error> {
    if let Some(p) = PLANS.with(|m| m.borrow().get(sql).cloned()) {
        return Ok(p);
    }
    let p = Rc::new(c.prepare_mut(sql, args)?.keep());
    PLANS.with(|m| m.borrow_mut().insert(sql, p.clone()));
    Ok(p)
}

const CLAIM: &str = "UPDATE tenancy.jobs j SET attempts = j.attempts + 1
      WHERE j.id = (SELECT c.id FROM tenancy.jobs c
                     WHERE c.queue = $1 AND c.status = 'queued' AND c.run_at <= pg_catalog.now()
                       AND EXISTS (SELECT FROM tenancy.tenants t
                                    WHERE t.id = c.tenant AND t.status = 'active')
                     ORDER BY c.run_at, c.id
                     LIMIT 1
                     FOR UPDATE OF c SKIP LOCKED)
     RETURNING j.id, j.tenant, j.actor, j.roles, j.payload, j.attempts, j.max_attempts";

const COMPLETE: &str =
    "UPDATE tenancy.jobs SET status = 'done', finished_at = pg_catalog.clock_timestamp(),
            last_error = NULL
      WHERE id = $1 AND status = 'queued' RETURNING id";

fn check_queue(queue: &str) {
    if !ident::valid_event(queue) {
        errors::bad_argument(
            "queue must be 1 to 64 characters of a-z, 0-9, '_', '.', ':' or '-'".into(),
            Some("name queues like 'email.send'"),
        );
    }
}

fn seconds(what: &str, i: Interval) -> i64 {
    let micros = i.as_micros();
    if micros < 0 {
        errors::bad_argument(format!("{what} must not be negative"), None);
    }
    i64::try_from(micros / 1_000_000).unwrap_or(i64::MAX)
}

/// Enqueues a job for the current context's tenant and returns its id. The job carries the
/// context's tenant, actor and roles: whoever claims it acts as that tenant and actor, with
/// those roles, and no argument can name another tenant. With `dedup_key`, a job of the same
/// tenant, queue and key still waiting is returned instead of a new one.
#[pg_extern(volatile, parallel_unsafe, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn enqueue(
    queue: Option<&str>,
    payload: default!(Option<JsonB>, "'{}'"),
    run_at: default!(Option<TimestampWithTimeZone>, "NULL"),
    max_attempts: default!(Option<i32>, 5),
    dedup_key: default!(Option<&str>, "NULL"),
) -> i64 {
    let queue = errors::required(queue, "queue");
    check_queue(queue);
    let max_attempts = max_attempts.unwrap_or(5);
    if !(1..=MAX_ATTEMPTS).contains(&max_attempts) {
        errors::bad_argument(
            format!("max_attempts must be between 1 and {MAX_ATTEMPTS}"),
            None,
        );
    }
    if let Some(k) = dedup_key {
        args::plain_text("dedup_key", k, 200);
    }
    let Some(resolved) = tenant_context::current() else {
        errors::no_context()
    };
    let ctx = &resolved.ctx;
    if ctx.source == Source::Support {
        // A job outlives the support session that would have queued it, and would act as
        // the support engineer after the session ended.
        errors::forbidden(
            "a support context cannot enqueue jobs".into(),
            Some("enqueue under the tenant's own token, key or trusted context"),
        );
    }
    let payload = payload.unwrap_or(JsonB(json!({})));
    let inserted = spi::dml_returning::<i64>(
        "INSERT INTO tenancy.jobs (tenant, queue, payload, actor, roles, run_at, max_attempts, dedup_key, enqueued_by)
         VALUES ($1, $2, $3, $4, $5, GREATEST(COALESCE($6, pg_catalog.now()), pg_catalog.now()), $7, $8, $9)
         ON CONFLICT (tenant, queue, dedup_key) WHERE status = 'queued' AND dedup_key IS NOT NULL
         DO NOTHING
         RETURNING id",
        &[
            ctx.tenant.as_str().into(),
            queue.into(),
            payload.into(),
            ctx.actor.clone().into(),
            ctx.roles.clone().into(),
            run_at.into(),
            max_attempts.into(),
            dedup_key.into(),
            roles::acting_role().into(),
        ],
    )
    .or_bug("enqueueing a job");
    match inserted {
        Some(id) => id,
        None => spi::select_one::<i64>(
            "SELECT id FROM tenancy.jobs
              WHERE tenant = $1 AND queue = $2 AND dedup_key = $3 AND status = 'queued'",
            &[ctx.tenant.as_str().into(), queue.into(), dedup_key.into()],
        )
        .or_bug("reading a deduplicated job")
        .unwrap_or_else(|| errors::internal("enqueueing a job", "deduplicated job not found")),
    }
}

/// Claims the next ready job of `queue` and makes its tenant, actor and roles the context of
/// this transaction (source `job`): every statement that follows sees and writes that
/// tenant's rows only. No row when nothing is ready. Jobs of deactivated or removed tenants
/// are not handed out. Refused outside a transaction block, and in a transaction that already
/// has a context: one job per transaction, and never into a context the worker brought.
#[pg_extern(volatile, parallel_unsafe, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn claim_job(
    queue: Option<&str>,
    lease: default!(Option<Interval>, "'5 minutes'"),
) -> TableIterator<
    'static,
    (
        name!(job_id, i64),
        name!(tenant, String),
        name!(actor, Option<String>),
        name!(payload, JsonB),
        name!(attempt, i32),
        name!(max_attempts, i32),
    ),
> {
    let queue = errors::required(queue, "queue");
    check_queue(queue);
    let lease = lease.map_or(300, |l| seconds("lease", l));
    if !(MIN_LEASE..=MAX_LEASE).contains(&lease) {
        errors::bad_argument(
            format!("lease must be between {MIN_LEASE} second and {MAX_LEASE} seconds"),
            None,
        );
    }
    // SAFETY: IsTransactionBlock only reads the transaction state.
    if !unsafe { pg_sys::IsTransactionBlock() } {
        errors::not_in_state(
            "claim_job() must run inside a transaction block: the job is processed and completed in the transaction that claims it".into(),
            Some("run BEGIN, claim the job, do its work, call tenancy.complete_job(), then COMMIT"),
        );
    }
    if tenant_context::current().is_some() {
        errors::not_in_state(
            "this transaction already has a tenant context; a job's context replaces none".into(),
            Some("claim the job in a new transaction, before any set_context(), or call tenancy.clear_context() first"),
        );
    }
    // A savepoint rolled back would release the claim's row lock (the lease) and keep the
    // claim: the job is claimed where no rollback but the transaction's own can undo it.
    // SAFETY: reads the transaction state.
    if unsafe { pg_sys::GetCurrentTransactionNestLevel() } > 1 {
        errors::not_in_state(
            "claim_job() cannot run inside a savepoint or an exception block: rolling it back would release the job's lease and keep its context".into(),
            Some("claim the job at the top level of its transaction; take savepoints after the claim"),
        );
    }
    let row = Spi::connect_mut(|c| {
        let plan = kept(c, CLAIM, &[PgOid::BuiltIn(PgBuiltInOids::TEXTOID)])?;
        let t = c.update(&*plan, None, &[queue.into()])?;
        if t.is_empty() {
            return Ok::<_, pgrx::spi::Error>(None);
        }
        let r = t.first();
        Ok(Some((
            r.get::<i64>(1)?.unwrap_or_default(),
            r.get::<String>(2)?.unwrap_or_default(),
            r.get::<String>(3)?,
            r.get::<Vec<String>>(4)?.unwrap_or_default(),
            r.get::<JsonB>(5)?.unwrap_or(JsonB(json!({}))),
            r.get::<i32>(6)?.unwrap_or_default(),
            r.get::<i32>(7)?.unwrap_or_default(),
        )))
    })
    .or_bug("claiming a job");
    let Some((id, tenant, actor, job_roles, payload, attempt, max_attempts)) = row else {
        return TableIterator::new(Vec::new());
    };
    // The tenant was active when the row was chosen; a deactivation committed since is
    // refused here, and the claim rolls back with the transaction.
    let limits = tenant_context::require_active(Attempt::Context, "job", &tenant);
    // SAFETY: the UPDATE above gave the transaction its id; this reads it.
    let xid = unsafe { pg_sys::GetTopFullTransactionId() }.value;
    let now = cache::statement_now();
    let max_age = i64::from(gucs::CONTEXT_MAX_AGE.get());
    tenant_context::install(
        Context {
            tenant: tenant.clone(),
            actor: actor.clone(),
            roles: job_roles,
            source: Source::Job,
            expires_at: Some(now.saturating_add(lease.min(max_age))),
            api_key_id: None,
            kid: None,
            support_reason: None,
            support_session: None,
            job: Some(JobClaim { id, xid }),
        },
        limits,
        true,
    );
    tenant_context::hold_job(id, xid);
    CLAIMED_IN.with(|c| c.set(xid));
    hold_lease(lease);
    TableIterator::once((id, tenant, actor, payload, attempt, max_attempts))
}

/// A worker that goes silent inside its job's transaction (a hung client, a lost network)
/// is disconnected when the lease ends, which releases the job to the next worker: the
/// transaction's `idle_in_transaction_session_timeout` is lowered to the lease.
fn hold_lease(lease: i64) {
    let ms = lease.saturating_mul(1000).min(i64::from(i32::MAX));
    // SAFETY: reads an integer GUC.
    let current = i64::from(unsafe { pg_sys::IdleInTransactionSessionTimeout });
    if current != 0 && current <= ms {
        return;
    }
    let value = std::ffi::CString::new(ms.to_string()).expect("digits");
    // SAFETY: what `SET LOCAL idle_in_transaction_session_timeout = ms` does.
    unsafe {
        pg_sys::set_config_option(
            c"idle_in_transaction_session_timeout".as_ptr(),
            value.as_ptr(),
            pg_sys::GucContext::PGC_USERSET,
            pg_sys::GucSource::PGC_S_SESSION,
            pg_sys::GucAction::GUC_ACTION_LOCAL,
            true,
            PgLogLevel::ERROR as i32,
            false,
        );
    }
}

/// The job this transaction claimed and its context, from the verified context (55000 when
/// there is none).
fn claimed_job(what: &str) -> (i64, Context) {
    match tenant_context::current() {
        Some(r) if r.ctx.source == Source::Job => match r.ctx.job {
            Some(j) => (j.id, r.ctx.clone()),
            None => errors::internal("reading the job context", "no job in a job context"),
        },
        _ => errors::not_in_state(
            format!("{what}() needs the job this transaction claimed, and there is none"),
            Some("call it in the transaction that ran tenancy.claim_job(), after a claim returned a job"),
        ),
    }
}

/// The current context's job id (a `job` context from `claim_job()`), NULL otherwise.
#[pg_extern(stable, parallel_safe)]
fn current_job() -> Option<i64> {
    tenant_context::current()
        .filter(|r| r.ctx.source == Source::Job)
        .and_then(|r| r.ctx.job.map(|j| j.id))
}

/// Marks the job this transaction claimed as done, and ends its context: the statements
/// after it in this transaction have no tenant. Done means done only if the transaction
/// commits, together with the job's effects.
#[pg_extern(volatile, parallel_unsafe, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn complete_job() -> i64 {
    let (id, _) = claimed_job("complete_job");
    let done = Spi::connect_mut(|c| {
        let plan = kept(c, COMPLETE, &[PgOid::BuiltIn(PgBuiltInOids::INT8OID)])?;
        let t = c.update(&*plan, None, &[id.into()])?;
        if t.is_empty() {
            return Ok::<_, pgrx::spi::Error>(None);
        }
        t.first().get_one::<i64>()
    })
    .or_bug("completing a job");
    tenant_context::release_job();
    tenant_context::clear();
    done.unwrap_or_else(|| errors::internal("completing a job", "claimed job not queued"))
}

/// Records a failed attempt of the job this transaction claimed and ends its context. The job
/// runs again after `retry_in` (default 5 s · 2^(attempt-1), at most an hour), or, when it has
/// had `max_attempts` attempts, is dead-lettered (status `dead`, an audit event in its
/// tenant's chain). Returns the job's status: `queued` or `dead`. Call it after rolling back
/// to a savepoint taken after the claim, so that the attempt's effects are undone and the
/// failure is kept.
#[pg_extern(volatile, parallel_unsafe, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn fail_job(error: Option<&str>, retry_in: default!(Option<Interval>, "NULL")) -> String {
    let (id, ctx) = claimed_job("fail_job");
    let error = error.unwrap_or("");
    // Shortened, not refused: a failure must be recordable whatever the worker caught.
    let error: String = error.chars().take(2000).collect();
    let retry_in = retry_in.map(|r| seconds("retry_in", r));
    let (attempts, max_attempts) = spi::select_row(
        "SELECT attempts, max_attempts FROM tenancy.jobs WHERE id = $1 AND status = 'queued'",
        &[id.into()],
        |r| {
            Ok((
                r.get::<i32>(1)?.unwrap_or_default(),
                r.get::<i32>(2)?.unwrap_or_default(),
            ))
        },
    )
    .or_bug("reading a job")
    .unwrap_or_else(|| errors::internal("failing a job", "claimed job not queued"));
    let dead = attempts >= max_attempts;
    if dead {
        Spi::run_with_args(
            "UPDATE tenancy.jobs SET status = 'dead', finished_at = pg_catalog.clock_timestamp(),
                    last_error = $2
              WHERE id = $1",
            &[id.into(), error.as_str().into()],
        )
        .or_bug("dead-lettering a job");
        // In the tenant's own chain, as the job's actor: the worker acts for the tenant here,
        // like any writer in a context (it waits for the chain's head like they do).
        crate::audit::trail::write(crate::audit::trail::Entry {
            tenant: &ctx.tenant,
            actor: ctx.actor.as_deref(),
            roles: &ctx.roles,
            support: None,
            event: "job_dead_lettered",
            detail: json!({
                "job_id": id,
                "attempts": attempts,
                "error": error,
                "worker": roles::acting_role(),
            }),
        });
    } else {
        let backoff = retry_in.unwrap_or_else(|| {
            let exp = u32::try_from(attempts.saturating_sub(1).clamp(0, 20)).unwrap_or(20);
            BACKOFF_BASE.saturating_mul(1 << exp).min(BACKOFF_CAP)
        });
        Spi::run_with_args(
            "UPDATE tenancy.jobs
                SET run_at = pg_catalog.clock_timestamp() + pg_catalog.make_interval(secs => $2),
                    last_error = $3
              WHERE id = $1",
            &[id.into(), (backoff as f64).into(), error.as_str().into()],
        )
        .or_bug("rescheduling a job");
    }
    tenant_context::release_job();
    tenant_context::clear();
    if dead { "dead" } else { "queued" }.to_string()
}

pub fn init() {
    // SAFETY: registered once at library load.
    unsafe { pg_sys::RegisterXactCallback(Some(xact_event), core::ptr::null_mut()) };
}

#[pg_guard]
unsafe extern "C-unwind" fn xact_event(
    event: pg_sys::XactEvent::Type,
    _arg: *mut core::ffi::c_void,
) {
    match event {
        // A prepared transaction keeps the job's row lock and effects past this backend, to be
        // committed later by anyone, without the lease that ends a silent worker's claim.
        pg_sys::XactEvent::XACT_EVENT_PRE_PREPARE => {
            // SAFETY: reads the transaction state.
            let xid = unsafe { pg_sys::GetTopFullTransactionIdIfAny() }.value;
            if xid != 0 && CLAIMED_IN.with(|c| c.get()) == xid {
                errors::not_in_state(
                    "a transaction that claimed a job cannot be prepared (PREPARE TRANSACTION)".into(),
                    Some("commit the job's transaction: its lease holds only while the claiming session does"),
                );
            }
        }
        pg_sys::XactEvent::XACT_EVENT_COMMIT
        | pg_sys::XactEvent::XACT_EVENT_ABORT
        | pg_sys::XactEvent::XACT_EVENT_PREPARE => {
            CLAIMED_IN.with(|c| c.set(0));
            tenant_context::release_job();
        }
        _ => {}
    }
}
