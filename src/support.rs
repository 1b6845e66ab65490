//! Support access: a support engineer enters one tenant with a reason, for a while, on the
//! record.
//!
//! `begin_support()` installs a context whose source is `support`, with the engineer as actor,
//! the reason, and an expiry; all three live inside the MAC'd carrier, so nobody can add,
//! remove or extend the mark. The context is session-scoped: an engineer in psql works across
//! transactions until `end_support()` or the expiry, after which every use raises 28000 like
//! any expired context. Opening, ending and every write to a protected table under it are
//! recorded in the tenant's audit chain, marked as support.

use pgrx::prelude::*;
use pgrx::JsonB;
use serde_json::json;
use tenancy_core::carrier::{Context, Source};
use tenancy_core::ident;

use crate::audit;
use crate::errors;
use crate::gucs;

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
    if !ident::valid_tenant_id(tenant) {
        errors::bad_argument(
            format!("invalid tenant id {}", errors::quoted(tenant)),
            None,
        );
    }
    let reason = reason.map(str::trim).unwrap_or_default();
    if reason.is_empty()
        || reason.chars().count() > MAX_REASON_CHARS
        || reason.chars().any(char::is_control)
    {
        errors::bad_argument(
            format!("a support session needs a reason of 1 to {MAX_REASON_CHARS} characters without control characters"),
            Some("say why, for example the ticket number: begin_support('acme', 'ticket 4711: payroll export fails')"),
        );
    }
    let max = gucs::MAX_SUPPORT_MINUTES.get();
    let minutes = minutes.unwrap_or(-1);
    if !(1..=max).contains(&minutes) {
        errors::bad_argument(
            format!("minutes must be between 1 and {max} (tenancy.max_support_minutes)"),
            None,
        );
    }
    crate::context::require_active("support context", tenant);
    let now = crate::cache::statement_now();
    let expires_at = now
        .saturating_add(i64::from(minutes) * 60)
        .min(now.saturating_add(i64::from(gucs::CONTEXT_MAX_AGE.get())));
    let ctx = Context {
        tenant: tenant.to_string(),
        actor: Some(audit::acting_role()),
        roles: Vec::new(),
        source: Source::Support,
        expires_at: Some(expires_at),
        api_key_id: None,
        kid: None,
        support_reason: Some(reason.to_string()),
    };
    let shown = ctx.to_json();
    // One support session at a time: an open one is ended first, on the record.
    if let Some(old) =
        crate::context::peek_unexpired_or_not().filter(|c| c.source == Source::Support)
    {
        audit::write(audit::Entry {
            tenant: &old.tenant,
            actor: old.actor.as_deref(),
            roles: &[],
            support: old.support_mark(),
            event: "support_ended",
            detail: json!({ "expired": old.expired_at(now), "replaced": true }),
        });
    }
    audit::write(audit::Entry {
        tenant,
        actor: ctx.actor.as_deref(),
        roles: &[],
        support: ctx.support_mark(),
        event: "support_begun",
        detail: json!({ "minutes": minutes }),
    });
    // Support staff are not the tenant's workload: the tenant's plan limits are not applied.
    crate::context::install(ctx, None, false);
    JsonB(shown)
}

/// Ends the support session (also one that has already expired) and records that.
#[pg_extern(volatile, parallel_unsafe, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn end_support() {
    let Some(ctx) = crate::context::peek_unexpired_or_not().filter(|c| c.source == Source::Support)
    else {
        errors::no_support_session()
    };
    let expired = ctx.expired_at(crate::cache::statement_now());
    audit::write(audit::Entry {
        tenant: &ctx.tenant,
        actor: ctx.actor.as_deref(),
        roles: &[],
        support: ctx.support_mark(),
        event: "support_ended",
        detail: json!({ "expired": expired }),
    });
    crate::context::clear();
}

/// For the statement trigger on protected tables: is this statement under a support context?
/// Costs a cached lookup; a normal context or none returns false at once.
#[pg_extern(stable, parallel_safe)]
fn _support_active() -> bool {
    crate::context::current().is_some_and(|r| r.ctx.source == Source::Support)
}

/// Records a write to a protected table under the current support context; does nothing
/// otherwise. Called only by the SECURITY DEFINER trigger function (granted to nobody).
#[pg_extern(volatile, parallel_unsafe, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn _audit_support_write(tbl: pg_sys::Oid, operation: &str) {
    let Some(resolved) = crate::context::current() else {
        return;
    };
    let ctx = &resolved.ctx;
    if ctx.source != Source::Support {
        return;
    }
    // Called by hand, it may only state a true kind of write on a protected table.
    if !matches!(operation, "INSERT" | "UPDATE" | "DELETE") {
        errors::bad_argument("operation must be INSERT, UPDATE or DELETE".into(), None);
    }
    let table = Spi::get_one_with_args::<String>(
        "SELECT p.tbl::pg_catalog.text FROM tenancy.protected_tables p
          WHERE p.tbl OPERATOR(pg_catalog.=) $1::pg_catalog.regclass",
        &[tbl.into()],
    )
    .ok()
    .flatten()
    .unwrap_or_else(|| {
        errors::bad_argument(
            "not a protected table".into(),
            Some("this function is called by the tenancy_support_audit trigger"),
        )
    });
    audit::write(audit::Entry {
        tenant: &ctx.tenant,
        actor: ctx.actor.as_deref(),
        roles: &ctx.roles,
        support: ctx.support_mark(),
        event: "support_write",
        detail: json!({ "table": table, "operation": operation.to_lowercase() }),
    });
}
