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
//! (`context::check_support_session`), on every backend from its next transaction. Clearing
//! the context or disconnecting does not end the session on the record: it stays open, usable
//! only by the role that opened it, until it expires (at most `tenancy.max_support_minutes`).

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
    crate::context::tenant_context::require_active(
        crate::context::reason::Attempt::Support,
        "support context",
        tenant,
    );
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
            detail: json!({ "expired": old.expired_at(now), "replaced": true }),
        });
    }
    Spi::run_with_args(
        "INSERT INTO tenancy.support_sessions
                (id, tenant, opened_by, opened_by_name, reason, expires_at)
         VALUES ($1, $2, $3, $4, $5, pg_catalog.to_timestamp($6))",
        &[
            sid.as_str().into(),
            tenant.into(),
            crate::registry::cache::outer_user().into(),
            ctx.actor.as_deref().into(),
            reason.into(),
            (expires_at as f64).into(),
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
        "UPDATE tenancy.support_sessions SET ended_at = pg_catalog.now()
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

/// Ends the support session (also one that has already expired) and records that.
#[pg_extern(volatile, parallel_unsafe, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn end_support() {
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
        detail: json!({ "expired": expired }),
    });
    crate::context::tenant_context::clear();
    crate::registry::cache::bump_generation();
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
