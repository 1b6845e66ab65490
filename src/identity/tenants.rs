//! The tenant registry: create, deactivate, reactivate.

use pgrx::prelude::*;
use pgrx::JsonB;

use tenancy_core::ident;

use crate::infra::args;
use crate::infra::errors::{self, SpiOrBug};
use crate::infra::random::strong_random;
use crate::infra::spi;

/// 22023 for a uuid spelled other than canonically (upper case, no hyphens, ...). Refused
/// rather than rewritten: a token's tenant claim is matched to the registry as written, so a
/// silently lowercased tenant would refuse the very tokens that name it; and a tenant id is
/// a text key, so two spellings of one uuid would be two tenants, of which uuid tenant
/// columns can hold only the canonical one (`current_tenant_uuid()` is NULL for the other,
/// whose writes then fail with a bare row-level-security error).
fn refuse_other_uuid_spelling(id: &str) {
    if let Some(canonical) = ident::canonical_uuid(id) {
        if canonical != id {
            errors::bad_argument(
                format!(
                    "tenant id {} is a uuid not in its canonical spelling",
                    errors::quoted(id)
                ),
                Some(&format!(
                    "register it as '{canonical}' (lowercase, 8-4-4-4-12 hex digits), and have tokens carry that spelling: it is the only one uuid tenant columns match"
                )),
            );
        }
    }
}

/// 42704 unless the tenant is registered (active or not).
pub fn require_registered(id: &str) {
    let registered = spi::select_one::<bool>(
        "SELECT EXISTS (SELECT 1 FROM tenancy.tenants WHERE id = $1)",
        &[id.into()],
    );
    if !matches!(registered, Ok(Some(true))) {
        errors::not_found(
            format!("tenant {} does not exist", errors::quoted(id)),
            Some("register it with tenancy.create_tenant()"),
        );
    }
}

/// Registers a tenant and returns its id.
#[pg_extern(volatile, parallel_unsafe, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn create_tenant(
    id: &str,
    name: default!(Option<&str>, "NULL"),
    plan: default!(Option<&str>, "NULL"),
    settings: default!(Option<JsonB>, "'{}'"),
) -> String {
    args::tenant_id(id);
    refuse_other_uuid_spelling(id);
    require_no_chain(id);
    if let Some(p) = plan {
        crate::registry::plans::check_plan_name(p);
    }
    let settings = settings.unwrap_or(JsonB(serde_json::json!({})));
    if !settings.0.is_object() {
        errors::bad_argument("settings must be a jsonb object".into(), None);
    }
    crate::registry::plans::check_json_size("a tenant's settings", &settings);
    let inserted = crate::infra::spi::dml_returning::<String>(
        "INSERT INTO tenancy.tenants (id, name, plan, settings) VALUES ($1, $2, $3, $4)
         ON CONFLICT (id) DO NOTHING RETURNING id",
        &[id.into(), name.into(), plan.into(), settings.into()],
    );
    match inserted {
        Ok(Some(id)) => {
            crate::audit::trail::record(
                &id,
                "tenant_created",
                serde_json::json!({ "name": name, "plan": plan }),
            );
            id
        }
        Ok(None) => errors::duplicate(
            format!("tenant {} already exists", errors::quoted(id)),
            Some("use tenancy.reactivate_tenant() for a deactivated tenant"),
        ),
        Err(e) => errors::internal("registering a tenant", e),
    }
}

fn set_status(id: &str, status: &str) {
    args::tenant_id(id);
    // now() read first: Citus refuses a function that is not IMMUTABLE inside CASE or
    // COALESCE in a write to its tables (the registry is one under Citus, scale/citus.rs).
    let now =
        crate::infra::spi::select_one::<pgrx::datum::TimestampWithTimeZone>("SELECT now()", &[])
            .or_bug("reading the transaction's time");
    let found = crate::infra::spi::dml_returning::<String>(
        "UPDATE tenancy.tenants
            SET status = $2,
                deactivated_at = CASE WHEN $2 = 'inactive' THEN coalesce(deactivated_at, $3) END
          WHERE id = $1 RETURNING id",
        &[id.into(), status.into(), now.into()],
    );
    match found {
        Ok(Some(_)) => {}
        Ok(None) => errors::not_found(
            format!("tenant {} does not exist", errors::quoted(id)),
            None,
        ),
        Err(e) => errors::internal("updating a tenant", e),
    }
    let event = if status == "inactive" {
        "tenant_deactivated"
    } else {
        "tenant_reactivated"
    };
    crate::audit::trail::record(id, event, serde_json::json!({}));
}

/// Stops every token, API key and context of the tenant from the next transaction on.
#[pg_extern(volatile, parallel_unsafe, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn deactivate_tenant(id: &str) {
    set_status(id, "inactive");
    crate::audit::support::end_tenant_sessions(id);
}

/// Lets a deactivated tenant's tokens and keys work again.
#[pg_extern(volatile, parallel_unsafe, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn reactivate_tenant(id: &str) {
    set_status(id, "active");
}

/// Random bytes for the extension's own keys (used once, by CREATE EXTENSION).
#[pg_extern(volatile, parallel_safe)]
fn _random_bytes(n: i32) -> Vec<u8> {
    if !(1..=1024).contains(&n) {
        errors::bad_argument("n must be between 1 and 1024".into(), None);
    }
    let mut out = Vec::with_capacity(n as usize);
    while out.len() < n as usize {
        out.extend_from_slice(&strong_random::<32>());
    }
    out.truncate(n as usize);
    out
}

/// Sends a relcache invalidation for a registry table so every backend drops its cached
/// verifications at its next transaction (see registry::cache). Called by the registry triggers.
#[pg_extern(volatile, parallel_unsafe)]
fn _registry_changed(rel: pg_sys::Oid) {
    // SAFETY: registers an invalidation message for the current transaction.
    unsafe { pg_sys::CacheInvalidateRelcacheByRelid(rel) };
}

/// Runs `sql`, an UPDATE of the tenant `id` ($1) with one value ($2) that returns the id;
/// 42704 when there is no such tenant.
fn update_tenant(id: &str, sql: &str, value: pgrx::datum::DatumWithOid) {
    match crate::infra::spi::dml_returning::<String>(sql, &[id.into(), value]) {
        Ok(Some(_)) => {}
        Ok(None) => errors::not_found(
            format!("tenant {} does not exist", errors::quoted(id)),
            None,
        ),
        Err(e) => errors::internal("updating a tenant", e),
    }
}

/// Moves a tenant to another plan (NULL: no plan). Its limits change on every backend from
/// the next transaction (a registry change).
#[pg_extern(volatile, parallel_unsafe, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn set_tenant_plan(id: Option<&str>, plan: Option<&str>) {
    let id = errors::required(id, "id");
    args::tenant_id(id);
    if let Some(p) = plan {
        crate::registry::plans::check_plan_name(p);
    }
    update_tenant(
        id,
        "UPDATE tenancy.tenants SET plan = $2 WHERE id = $1 RETURNING id",
        plan.into(),
    );
    crate::audit::trail::record(id, "tenant_plan_set", serde_json::json!({ "plan": plan }));
}

/// Replaces a tenant's settings (a jsonb object; its statement_timeout, lock_timeout and
/// work_mem can only lower the plan's).
#[pg_extern(volatile, parallel_unsafe, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn set_tenant_settings(id: Option<&str>, settings: Option<JsonB>) {
    let id = errors::required(id, "id");
    let settings = errors::required(settings, "settings");
    args::tenant_id(id);
    if !settings.0.is_object() {
        errors::bad_argument("settings must be a jsonb object".into(), None);
    }
    crate::registry::plans::check_json_size("a tenant's settings", &settings);
    let detail = serde_json::json!({ "settings": settings.0.clone() });
    update_tenant(
        id,
        "UPDATE tenancy.tenants SET settings = $2 WHERE id = $1 RETURNING id",
        settings.into(),
    );
    crate::audit::trail::record(id, "tenant_settings_set", detail);
}

// ---- Ids used before (issue 21: rename_tenant, drop_tenant) ----

/// 55000 when an audit chain of `id` remains without its tenant (a renamed tenant's old
/// chain, a dropped tenant's kept chain): a new tenant of that id would read that history.
pub fn require_no_chain(id: &str) {
    let chain = spi::select_one::<bool>(
        "SELECT EXISTS (SELECT 1 FROM tenancy.audit_heads h
                         WHERE h.tenant_id OPERATOR(pg_catalog.=) $1 AND h.seq OPERATOR(pg_catalog.>) 0)
            AND NOT EXISTS (SELECT 1 FROM tenancy.tenants t WHERE t.id OPERATOR(pg_catalog.=) $1)",
        &[id.into()],
    );
    if matches!(chain, Ok(Some(true))) {
        errors::not_in_state(
            format!(
                "tenant id {} was used before and its audit trail remains: a new tenant of that id would read it",
                errors::quoted(id)
            ),
            Some("choose another id, or have a superuser erase the old trail with tenancy.purge_audit()"),
        );
    }
}

/// 42710 when `id` is registered, 55000 when its old audit chain remains.
pub fn require_unused(id: &str) {
    let registered = spi::select_one::<bool>(
        "SELECT EXISTS (SELECT 1 FROM tenancy.tenants WHERE id OPERATOR(pg_catalog.=) $1)",
        &[id.into()],
    );
    if matches!(registered, Ok(Some(true))) {
        errors::duplicate(
            format!("tenant {} already exists", errors::quoted(id)),
            None,
        );
    }
    require_no_chain(id);
}
