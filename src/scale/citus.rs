//! `tenancy.citus_setup()`: the registry becomes Citus reference tables.
//!
//! Every node verifies contexts itself (a worker never trusts what the coordinator forwards),
//! so every node must read the same tenants, keys, carrier key, API keys, entitlements, plans,
//! support sessions and pseudonym secrets. Each node's `CREATE EXTENSION` made its own copy,
//! with its own random carrier key: carriers MAC'd on the coordinator would never verify on a
//! worker. Reference tables are Citus's own way to have one table with a copy on every node,
//! written in one distributed transaction (two-phase commit), so the registry needs no
//! replication of ours. Citus skips creating shells of extension-owned tables on workers:
//! each worker's own table is the shell, and reads of it go to the local copy.
//!
//! A change must also reach every backend's cache (registry/cache.rs) on every node: the
//! registry triggers are created on each copy (Citus creates a table's triggers on its
//! shards when `citus.enable_unsafe_triggers` is on), so a change committed on the cluster
//! sends the invalidation on each node (roles.sql, `_on_registry_change`). The coordinator
//! must hold a copy too (`citus_set_coordinator_host`), or its own backends would hear of no
//! change.

use pgrx::prelude::*;

use crate::infra::catalog;
use crate::infra::errors::{self, SpiOrBug};
use crate::infra::spi;

/// The registry tables that become reference tables, in no particular order: the foreign
/// keys between them are dropped first (Citus cannot convert an extension's tables linked by
/// foreign keys one at a time) and the extension's functions check tenants exist.
pub const REGISTRY: [&str; 8] = [
    "tenants",
    "signing_keys",
    "api_keys",
    "carrier_key",
    "pseudonym_secrets",
    "plans",
    "entitlements",
    "support_sessions",
];

/// Foreign keys to `tenancy.tenants`, from tables that become reference tables or that stay
/// local on the coordinator (quotas; a local table may not reference a reference table
/// without Citus converting it).
const FOREIGN_KEYS: [(&str, &str); 4] = [
    ("api_keys", "api_keys_tenant_fkey"),
    ("entitlements", "entitlements_tenant_fkey"),
    ("quotas", "quotas_tenant_fkey"),
    // The tenant tree: create_tenant() and move_tenant() check the parent, rename_tenant()
    // moves the children, drop_tenant() refuses a parent.
    ("tenants", "tenants_parent_fkey"),
];

fn require_cluster() {
    // SAFETY: reads the session's privilege state.
    if !unsafe { pg_sys::superuser() } {
        errors::forbidden(
            "tenancy.citus_setup() needs a superuser".into(),
            Some("run it as the extension's owner, on the coordinator"),
        );
    }
    if !catalog::citus_present() {
        errors::not_in_state(
            "Citus is not installed in this database".into(),
            Some("preload citus before pg_tenancy, CREATE EXTENSION citus, add the workers, then call tenancy.citus_setup()"),
        );
    }
    let coordinator = spi::select_one::<bool>("SELECT pg_catalog.citus_is_coordinator()", &[])
        .or_bug("asking Citus for the coordinator");
    if coordinator != Some(true) {
        errors::not_in_state(
            "tenancy.citus_setup() runs on the coordinator".into(),
            Some("connect to the coordinator"),
        );
    }
    let in_metadata = spi::select_one::<bool>(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_node
                         WHERE groupid OPERATOR(pg_catalog.=) 0)",
        &[],
    )
    .or_bug("reading pg_dist_node");
    if in_metadata != Some(true) {
        errors::not_in_state(
            "the coordinator is not in Citus's metadata: its backends would never hear of a registry change".into(),
            Some("SELECT citus_set_coordinator_host('<coordinator host>', <port>); then call tenancy.citus_setup() again"),
        );
    }
}

/// Makes the registry Citus reference tables (copies on the coordinator and every worker).
/// Idempotent; returns how many tables it converted now. Workers added later receive their
/// copies from `replicate_reference_tables()` (or Citus's next `create_distributed_table`).
#[pg_extern(volatile, parallel_unsafe)]
fn citus_setup() -> i32 {
    require_cluster();
    let previous = spi::select_one::<String>(
        "SELECT pg_catalog.current_setting('citus.enable_unsafe_triggers')",
        &[],
    )
    .or_bug("reading citus.enable_unsafe_triggers")
    .unwrap_or_else(|| "off".into());
    // Only for the conversions below: the registry triggers must reach every copy.
    Spi::run("SELECT pg_catalog.set_config('citus.enable_unsafe_triggers', 'on', true)")
        .or_bug("enabling Citus triggers for the registry");

    for (table, constraint) in FOREIGN_KEYS {
        let exists = spi::select_one::<bool>(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint
                             WHERE conrelid OPERATOR(pg_catalog.=)
                                   pg_catalog.format('tenancy.%I', $1::pg_catalog.text)::pg_catalog.regclass
                               AND conname OPERATOR(pg_catalog.=) $2::pg_catalog.name)",
            &[table.into(), constraint.into()],
        )
        .or_bug("reading pg_constraint");
        if exists == Some(true) {
            Spi::run(&format!(
                "ALTER TABLE tenancy.{table} DROP CONSTRAINT {constraint}"
            ))
            .or_bug("dropping a registry foreign key");
        }
    }
    if !catalog::citus_table("tenancy", "entitlements") {
        // Citus refuses sub-selects in policies of its tables: the bare call, as protect()
        // writes it on distributed tables.
        Spi::run(
            "DROP POLICY IF EXISTS tenancy_isolation ON tenancy.entitlements;
             CREATE POLICY tenancy_isolation ON tenancy.entitlements FOR SELECT TO PUBLIC
                 USING (tenant OPERATOR(pg_catalog.=) tenancy.current_tenant());",
        )
        .or_bug("rewriting the entitlements policy");
    }
    let mut converted = 0;
    for table in REGISTRY {
        if catalog::citus_table("tenancy", table) {
            continue;
        }
        Spi::run(&format!(
            "SELECT pg_catalog.create_reference_table('tenancy.{table}'::pg_catalog.regclass)"
        ))
        .or_bug("making a registry table a reference table");
        // The coordinator's own rows stay on disk under the shell, read by nobody: drop
        // them, secrets included.
        Spi::run(&format!(
            "SELECT pg_catalog.truncate_local_data_after_distributing_table('tenancy.{table}'::pg_catalog.regclass)"
        ))
        .or_bug("dropping the local copy of a registry table");
        converted += 1;
    }
    Spi::run_with_args(
        "SELECT pg_catalog.set_config('citus.enable_unsafe_triggers', $1, true)",
        &[previous.as_str().into()],
    )
    .or_bug("restoring citus.enable_unsafe_triggers");
    crate::audit::trail::record(
        crate::audit::trail::SYSTEM_CHAIN,
        "citus_setup",
        serde_json::json!({ "reference_tables": converted }),
    );
    converted
}

/// Gives `role` on every worker the EXECUTE grants it holds on the extension's functions here,
/// when this is a Citus coordinator; nothing elsewhere.
///
/// The role helpers (`grant_app`, `grant_support`, ...) grant EXECUTE on the extension's
/// functions, and Citus propagates no grant on an extension's own functions. Workers check
/// some of them themselves (a support carrier needs its role to hold `begin_support` there),
/// so the helpers end here, which repeats the grants on each worker through Citus's own API.
/// Grants on the registry's tables need nothing: they are Citus tables, whose grants Citus
/// propagates. The workers' grants commit in their own transactions: the helpers are
/// idempotent, run one again after a failure.
#[pg_extern(volatile, parallel_unsafe)]
fn _grants_to_workers(role: pg_sys::Oid) {
    if !catalog::citus_present() {
        return;
    }
    let coordinator = spi::select_one::<bool>("SELECT pg_catalog.citus_is_coordinator()", &[])
        .or_bug("asking Citus for the coordinator");
    if coordinator != Some(true) {
        return;
    }
    let grant = spi::select_one::<String>(
        "SELECT 'GRANT EXECUTE ON FUNCTION '
                || pg_catalog.string_agg(p.oid::pg_catalog.regprocedure::pg_catalog.text, ', ' ORDER BY p.oid)
                || ' TO ' || pg_catalog.quote_ident(r.rolname)
           FROM pg_catalog.pg_proc p
           CROSS JOIN LATERAL pg_catalog.aclexplode(p.proacl) a
           JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) a.grantee
          WHERE p.pronamespace OPERATOR(pg_catalog.=) 'tenancy'::pg_catalog.regnamespace
            AND a.grantee OPERATOR(pg_catalog.=) $1 AND a.privilege_type OPERATOR(pg_catalog.=) 'EXECUTE'
          GROUP BY r.rolname",
        &[role.into()],
    )
    .or_bug("reading the role's grants");
    let Some(grant) = grant else { return };
    let failed = spi::select_one::<String>(
        "SELECT pg_catalog.string_agg(nodename || ':' || nodeport || ': ' || result, '; ')
           FROM pg_catalog.run_command_on_workers($1) WHERE NOT success",
        &[grant.as_str().into()],
    )
    .or_bug("granting on the workers");
    if let Some(failed) = failed {
        errors::not_in_state(
            format!(
                "a worker refused the grants: {}",
                errors::user_input(&failed)
            ),
            Some("fix the worker, then call the role helper again (it is idempotent)"),
        );
    }
}
