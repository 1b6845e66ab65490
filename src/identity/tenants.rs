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
    parent: default!(Option<&str>, "NULL"),
) -> String {
    args::tenant_id(id);
    refuse_other_uuid_spelling(id);
    require_no_chain(id);
    if let Some(p) = parent {
        args::tenant_id(p);
        check_attach(id, p, 1);
    }
    if let Some(p) = plan {
        crate::registry::plans::check_plan_name(p);
    }
    let settings = settings.unwrap_or(JsonB(serde_json::json!({})));
    if !settings.0.is_object() {
        errors::bad_argument("settings must be a jsonb object".into(), None);
    }
    crate::registry::plans::check_json_size("a tenant's settings", &settings);
    let inserted = crate::infra::spi::dml_returning::<String>(
        "INSERT INTO tenancy.tenants (id, name, plan, settings, parent) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (id) DO NOTHING RETURNING id",
        &[
            id.into(),
            name.into(),
            plan.into(),
            settings.into(),
            parent.into(),
        ],
    );
    match inserted {
        Ok(Some(id)) => {
            let mut detail = serde_json::json!({ "name": name, "plan": plan });
            if let Some(p) = parent {
                detail["parent"] = p.into();
            }
            crate::audit::trail::record(&id, "tenant_created", detail);
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

// ---- The tenant tree (issue 16, docs/organizations.md) ----

/// 42704 unless `parent` exists; 22023 when attaching `id` below `parent` would make a cycle;
/// 54000 when the tree would be deeper than `lookup::MAX_DEPTH`. `height` is how many levels
/// `id`'s own subtree has (1 for a leaf).
///
/// The chain above `parent` is read one row at a time `FOR UPDATE`: two concurrent moves that
/// would close a cycle between them (a under b, b under a) then meet on a row, and the second
/// reads the first's committed parent (READ COMMITTED) or fails to serialize (REPEATABLE
/// READ, SERIALIZABLE) instead of both passing on snapshots that predate each other.
fn check_attach(id: &str, parent: &str, height: usize) {
    let max = crate::registry::lookup::MAX_DEPTH;
    let mut current = parent.to_string();
    let mut depth = 0;
    loop {
        if current == id {
            errors::bad_argument(
                format!(
                    "tenant {} cannot be placed below {}: that is the tenant itself or one of its descendants, which would make a cycle",
                    errors::quoted(id),
                    errors::quoted(parent)
                ),
                Some("move the tenant below one outside its subtree, or move that tenant first"),
            );
        }
        depth += 1;
        let above = spi::dml_returning::<String>(
            "SELECT COALESCE(t.parent, '') FROM tenancy.tenants t
              WHERE t.id OPERATOR(pg_catalog.=) $1 FOR UPDATE",
            &[current.as_str().into()],
        )
        .unwrap_or_else(|e| errors::internal("reading the tenant tree", e));
        match above {
            None if depth == 1 => errors::not_found(
                format!("parent tenant {} does not exist", errors::quoted(parent)),
                Some("register it with tenancy.create_tenant() first"),
            ),
            None => errors::internal("reading the tenant tree", "a parent vanished"),
            Some(p) if p.is_empty() => break,
            Some(p) => current = p,
        }
        if depth > max {
            break;
        }
    }
    if depth + height > max {
        errors::too_large(
            format!(
                "placing tenant {} below {} would make the tenant tree {} levels deep; at most {max} are allowed",
                errors::quoted(id),
                errors::quoted(parent),
                depth + height
            ),
            Some("attach it higher up, or flatten the levels below it"),
        );
    }
}

/// Moves a tenant (with everything below it) below another organization, or to the top
/// (`parent` NULL). From the next transaction on every backend, the old organization's
/// contexts no longer read its rows and the new one's do.
#[pg_extern(volatile, parallel_unsafe, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn move_tenant(id: Option<&str>, parent: Option<&str>) {
    let id = errors::required(id, "id");
    args::tenant_id(id);
    // The moved row first: a concurrent attach below it waits for this move, then sees it.
    let old = spi::dml_returning::<String>(
        "SELECT COALESCE(t.parent, '') FROM tenancy.tenants t
          WHERE t.id OPERATOR(pg_catalog.=) $1 FOR UPDATE",
        &[id.into()],
    )
    .unwrap_or_else(|e| errors::internal("reading the tenant tree", e));
    let Some(old) = old else {
        errors::not_found(
            format!("tenant {} does not exist", errors::quoted(id)),
            None,
        )
    };
    if let Some(p) = parent {
        args::tenant_id(p);
        let (_, height) =
            crate::registry::lookup::tree_below(id, crate::registry::lookup::MAX_DEPTH + 1);
        check_attach(id, p, height);
    }
    update_tenant(
        id,
        "UPDATE tenancy.tenants SET parent = $2 WHERE id OPERATOR(pg_catalog.=) $1 RETURNING id",
        parent.into(),
    );
    crate::audit::trail::record(
        id,
        "tenant_moved",
        serde_json::json!({
            "from": (!old.is_empty()).then_some(old),
            "to": parent,
        }),
    );
}
