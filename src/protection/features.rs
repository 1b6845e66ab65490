//! Entitlements: is feature X on for this tenant, from when until when.
//! `tenancy.entitled()` itself is SQL (sql/features.sql): one indexed lookup, evaluated once per
//! statement when a protected table's feature policy calls it.

use pgrx::datum::TimestampWithTimeZone;
use pgrx::prelude::*;
use pgrx::JsonB;

use crate::infra::args;
use crate::infra::errors::{self, SpiOrBug};
use crate::infra::spi;

fn check_feature(feature: &str) {
    args::feature(feature);
}

/// Turns a feature on for a tenant from `enabled_from` until `enabled_until` (open-ended when
/// NULL). Granting again replaces the window and the config.
#[pg_extern(volatile, parallel_unsafe, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn grant_feature(
    tenant: &str,
    feature: &str,
    enabled_from: default!(Option<TimestampWithTimeZone>, "now()"),
    enabled_until: default!(Option<TimestampWithTimeZone>, "NULL"),
    config: default!(Option<JsonB>, "'{}'"),
) {
    check_feature(feature);
    let config = config.unwrap_or(JsonB(serde_json::json!({})));
    if !config.0.is_object() {
        errors::bad_argument("config must be a jsonb object".into(), None);
    }
    crate::identity::tenants::require_registered(tenant);
    let valid_window = spi::select_one::<bool>(
        "SELECT $2::timestamptz IS NULL OR $2 > coalesce($1, now())",
        &[enabled_from.into(), enabled_until.into()],
    )
    .or_bug("checking the window");
    if valid_window != Some(true) {
        errors::bad_argument("enabled_until must be later than enabled_from".into(), None);
    }
    // now() read first: Citus refuses a function that is not IMMUTABLE inside COALESCE or an
    // ON CONFLICT's SET in a write to its tables (entitlements are one under Citus,
    // scale/citus.rs).
    let now = spi::select_one::<TimestampWithTimeZone>("SELECT now()", &[])
        .or_bug("reading the transaction's time");
    let enabled_from = enabled_from.or(now);
    Spi::run_with_args(
        "INSERT INTO tenancy.entitlements (tenant, feature, enabled_from, enabled_until, config)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (tenant, feature) DO UPDATE
            SET enabled_from = EXCLUDED.enabled_from, enabled_until = EXCLUDED.enabled_until,
                config = EXCLUDED.config, granted_at = $6",
        &[
            tenant.into(),
            feature.into(),
            enabled_from.into(),
            enabled_until.into(),
            config.into(),
            now.into(),
        ],
    )
    .or_bug("granting a feature");
}

/// Turns a feature off for a tenant at once.
#[pg_extern(volatile, parallel_unsafe, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn revoke_feature(tenant: &str, feature: &str) {
    check_feature(feature);
    let removed = crate::infra::spi::dml_returning::<String>(
        "DELETE FROM tenancy.entitlements WHERE tenant = $1 AND feature = $2 RETURNING feature",
        &[tenant.into(), feature.into()],
    )
    .or_bug("revoking a feature");
    if removed.is_none() {
        errors::not_found(
            format!(
                "tenant {} has no feature {}",
                errors::quoted(tenant),
                errors::quoted(feature)
            ),
            None,
        );
    }
}

/// The write side of a feature-gated table's entitlement policy (its `WITH CHECK`): true when
/// the current tenant is entitled to `feature` now; otherwise 42501 naming the feature, where
/// PostgreSQL's own error would name only the policy (`tenancy_feature`). Reads stay silent
/// (the policy's `USING` is `entitled()` itself: a table outside its window is empty). Runs
/// with the writer's rights, like `entitled()`; it names only the writer's own tenant.
#[pg_extern(stable, parallel_safe)]
fn _entitled_to_write(feature: &str) -> bool {
    let (entitled, tenant) = crate::infra::spi::select_row(
        "SELECT tenancy.entitled($1), tenancy.current_tenant()",
        &[feature.into()],
        |r| Ok((r.get::<bool>(1)?, r.get::<String>(2)?)),
    )
    .or_bug("checking an entitlement")
    .unwrap_or_default();
    if entitled == Some(true) {
        return true;
    }
    let who = tenant.map_or_else(
        || "without a tenant context no tenant is".to_string(),
        |t| format!("tenant {} is not", errors::quoted(&t)),
    );
    errors::forbidden(
        format!(
            "row-level security refuses the write: {who} entitled to feature {} now, and this table belongs to that feature",
            errors::quoted(feature)
        ),
        Some("an admin grants it with tenancy.grant_feature(tenant, feature); tenancy.entitled(feature) says whether the current tenant has it"),
    )
}
