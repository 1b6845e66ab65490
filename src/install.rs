//! The install script's order: every hand-written `sql/*.sql` file, in one place.
//!
//! pgrx builds `pg_tenancy--<version>.sql` by sorting its pieces (these files and the
//! functions `#[pg_extern]` declares) so that each comes after what it `requires`; the order
//! of the declarations below is only for reading. Rules:
//! - `registry_tables.sql` is the `bootstrap` (first) and `privileges.sql` the `finalize` (last:
//!   its `REVOKE ... ON ALL FUNCTIONS IN SCHEMA` reaches only what already exists).
//! - A file requires the files whose objects it names and the Rust functions its SQL calls. Rust
//!   functions are named by their module path under the crate root, without `crate::` (pgrx
//!   matches the path against the end of `module_path!()`, which starts with `pg_tenancy`).
//!   What PostgreSQL resolves while the script runs needs its functions first: a policy's
//!   expression, a CHECK constraint, a statement the script executes. Function bodies are not
//!   checked then (CREATE EXTENSION turns `check_function_bodies` off), but listing what they
//!   call keeps the order true if a file is ever run on its own.
//! - `scripts/catalog-listing.sql` lists what an install created; compare it before and after
//!   changing this order.

use pgrx::prelude::*;

// Tables first: they name no function, and everything after may name them.
extension_sql_file!(
    "../sql/registry_tables.sql",
    name = "tenancy_registry_tables",
    bootstrap
);

// The guarded aggregates (C symbols of the library, declared by hand) and the registry of the
// benchmark views made over them.
extension_sql_file!(
    "../sql/guard.sql",
    name = "tenancy_guard",
    requires = ["tenancy_registry_tables"]
);
extension_sql_file!(
    "../sql/guard_views.sql",
    name = "tenancy_guard_views",
    requires = [
        "tenancy_guard",
        guard::benchmark::_create_benchmark_view,
        guard::benchmark::_drop_benchmark_view,
    ]
);

// The audit trail's tables, triggers and read policies.
extension_sql_file!(
    "../sql/audit.sql",
    name = "tenancy_audit",
    requires = [
        "tenancy_registry_tables",
        context::tenant_context::current_tenant,
        audit::trail::_audit_purging,
        audit::support::_support_active,
        audit::support::_audit_support_write,
    ]
);

// The checker reads the registry and the benchmark-view registry.
extension_sql_file!(
    "../sql/check.sql",
    name = "tenancy_check",
    requires = [
        "tenancy_registry_tables",
        "tenancy_guard",
        checker::_assert_isolated,
    ]
);

extension_sql_file!(
    "../sql/lifecycle.sql",
    name = "tenancy_lifecycle",
    requires = [
        "tenancy_registry_tables",
        lifecycle::_export_plan,
        lifecycle::_lifecycle_audit,
        infra::owner::_owner_step_enter,
        infra::owner::_owner_step_leave,
    ]
);

extension_sql_file!(
    "../sql/quotas.sql",
    name = "tenancy_quotas",
    requires = [
        "tenancy_registry_tables",
        protection::quota::_quota_recount,
        protection::quota::_set_quota,
    ]
);

extension_sql_file!(
    "../sql/limits.sql",
    name = "tenancy_limits",
    requires = ["tenancy_registry_tables", registry::plans::_limits_valid]
);

extension_sql_file!(
    "../sql/deid.sql",
    name = "tenancy_deid",
    requires = [deid::kanon::_k_anonymity, deid::kanon::_k_anonymity_report,]
);

extension_sql_file!(
    "../sql/protection.sql",
    name = "tenancy_protection",
    requires = [
        "tenancy_registry_tables",
        protection::protect::_protect,
        protection::protect::_unprotect,
        protection::protect::_protect_schema,
        protection::scoping::_scope_unique,
        protection::scoping::_scope_foreign_key,
        protection::own_ddl::_in_own_ddl,
    ]
);

extension_sql_file!(
    "../sql/features.sql",
    name = "tenancy_features",
    requires = [
        "tenancy_registry_tables",
        context::tenant_context::current_tenant,
    ]
);

extension_sql_file!(
    "../sql/postgrest.sql",
    name = "tenancy_postgrest",
    requires = [context::tenant_context::set_context]
);

// The job queue: its table, indexes and read policy (the policy calls the getters).
extension_sql_file!(
    "../sql/jobs.sql",
    name = "tenancy_jobs",
    requires = [
        "tenancy_registry_tables",
        context::tenant_context::current_tenant,
        jobs::current_job,
        jobs::enqueue,
        jobs::claim_job,
        jobs::complete_job,
        jobs::fail_job,
    ]
);

// Cache invalidation on every registry table, support sessions (audit.sql) included.
extension_sql_file!(
    "../sql/registry_triggers.sql",
    name = "tenancy_registry_triggers",
    requires = [
        "tenancy_registry_tables",
        "tenancy_audit",
        identity::tenants::_registry_changed,
    ]
);

// Made once the registry triggers exist, so that making it is a registry change.
extension_sql_file!(
    "../sql/carrier_key.sql",
    name = "tenancy_carrier_key",
    requires = [
        "tenancy_registry_triggers",
        identity::tenants::_random_bytes,
    ]
);

extension_sql_file!(
    "../sql/dump.sql",
    name = "tenancy_dump",
    requires = ["tenancy_registry_tables", "tenancy_audit", "tenancy_guard"]
);

// The DDL guard's event triggers run on every DDL statement after them, the install script's
// own included: after every other file but privileges.sql.
extension_sql_file!(
    "../sql/ddl_guard.sql",
    name = "tenancy_ddl_guard",
    requires = [
        "tenancy_guard",
        "tenancy_guard_views",
        "tenancy_audit",
        "tenancy_check",
        "tenancy_lifecycle",
        "tenancy_quotas",
        "tenancy_limits",
        "tenancy_deid",
        "tenancy_protection",
        "tenancy_features",
        "tenancy_postgrest",
        "tenancy_registry_triggers",
        "tenancy_carrier_key",
        "tenancy_dump",
        "tenancy_jobs",
        protection::ddl_guard::_ddl_command_end,
        protection::ddl_guard::_sql_drop,
        protection::ddl_guard::_citus_built,
    ]
);

extension_sql_file!(
    "../sql/privileges.sql",
    name = "tenancy_privileges",
    finalize
);
