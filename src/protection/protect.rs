//! `tenancy.protect()`, `unprotect()` and `protect_schema()`: row level security generated
//! from one rule.
//!
//! These run with the caller's rights, so PostgreSQL itself checks that the caller owns the
//! table (the event triggers call them as the extension's owner). Each call is one statement:
//! an error leaves nothing half-applied.

use pgrx::prelude::*;
use pgrx::spi::quote_identifier;

use crate::infra::args;
use crate::infra::catalog::{self, Rel};
use crate::infra::errors::{self, SpiOrBug};
use crate::infra::spi;
use crate::protection::own_ddl::{
    OwnDdl, FEATURE_POLICY, ISOLATION_POLICY, SHARED_POLICY, SUPPORT_TRIGGER,
};
use crate::protection::policy::{self, Getter, Placement};
use crate::registry::protected_tables::{entry, Protection};

fn policy_qual(rel_oid: pg_sys::Oid, name: &str) -> Option<String> {
    policy_expr(rel_oid, name, "polqual")
}

/// A policy's USING (`polqual`) or WITH CHECK (`polwithcheck`) as PostgreSQL deparses it:
/// what the DDL guard compares the policy with later.
fn policy_expr(rel_oid: pg_sys::Oid, name: &str, column: &str) -> Option<String> {
    let expr = if column == "polwithcheck" {
        "pg_catalog.pg_get_expr(polwithcheck, polrelid)"
    } else {
        "pg_catalog.pg_get_expr(polqual, polrelid)"
    };
    spi::select_one::<String>(
        &format!(
            "SELECT {expr} FROM pg_catalog.pg_policy
              WHERE polrelid OPERATOR(pg_catalog.=) $1
                AND polname OPERATOR(pg_catalog.=) $2::pg_catalog.name"
        ),
        &[rel_oid.into(), name.into()],
    )
    .or_bug("reading pg_policy")
}

fn validate(root: &Rel, p: &Protection) {
    if !root.is_table() {
        errors::bad_argument(
            format!("{} is not a table", root.qualified()),
            Some("only ordinary and partitioned tables can be protected; protect the tables a view reads instead"),
        );
    }
    if root.schema == "tenancy" {
        errors::bad_argument(
            "the extension's own tables cannot be protected".into(),
            None,
        );
    }
    if let Some(f) = &p.feature {
        args::feature(f);
        // Citus re-creates a table's policies on its shards from its own deparse, which drops
        // AS RESTRICTIVE: the feature gate would be ORed with the isolation policy there, and
        // an entitled tenant would read the other tenants' rows of its shard.
        if catalog::citus_table(&root.schema, &root.name) {
            errors::not_supported(
                format!(
                    "{} is a Citus distributed or reference table, and feature-gated tables are not supported on Citus",
                    root.qualified()
                ),
                Some("Citus copies the feature policy to the shards as a permissive policy, which would widen what tenants see; protect it without feature, or keep the table local (docs/scale-out.md)"),
            );
        }
    }
    if let Some(existing) = entry(root.oid) {
        if existing.protection.tenant_column != p.tenant_column {
            errors::bad_argument(
                format!(
                    "{} is already protected on column {}",
                    root.qualified(),
                    quote_identifier(&existing.protection.tenant_column)
                ),
                Some("run tenancy.unprotect() first to protect it on another column"),
            );
        }
    }
}

/// Protects a table and every partition below it. Returns how many relations it protected.
pub fn protect_tree(root_oid: pg_sys::Oid, p: &Protection) -> i32 {
    let _own = OwnDdl::enter();
    let root = catalog::relation(root_oid);
    validate(&root, p);
    // In a Citus database every table gets the form Citus accepts, local ones too: a table
    // protected first and distributed later (create_distributed_table refuses sub-selects in
    // policies, and triggers) then needs no second protect() (docs/scale-out.md).
    let placement = if catalog::citus_present() {
        Placement::Distributed
    } else {
        Placement::SingleNode
    };
    let mut n = 0;
    for rel in catalog::with_partitions(&root) {
        protect_one(&rel, rel.oid == root.oid, p, placement);
        n += 1;
    }
    crate::audit::trail::record(
        crate::audit::trail::SYSTEM_CHAIN,
        "table_protected",
        serde_json::json!({
            "table": root.qualified(),
            "tenant_column": p.tenant_column,
            "shared_column": p.shared_column,
            "feature": p.feature,
            "relations": n,
        }),
    );
    n
}

/// The getter for the tenant column, or 0A000 when its type lets distinct tenant ids alias.
fn tenant_getter(rel: &Rel, tenant_column: &str, col: &catalog::Column) -> Getter {
    Getter::for_tenant_column(col.base_type_oid, col.deterministic).unwrap_or_else(|a| {
        errors::not_supported(
            format!(
                "cannot protect {} on column {} of type {}: {}",
                rel.qualified(),
                quote_identifier(tenant_column),
                col.type_sql,
                a.reason
            ),
            Some("make the tenant column text or varchar (deterministic collation), uuid, bigint, integer or smallint; see docs/schema-design.md"),
        )
    })
}

fn protect_one(rel: &Rel, is_root: bool, p: &Protection, placement: Placement) {
    let col = catalog::column(rel, &p.tenant_column);
    let getter = tenant_getter(rel, &p.tenant_column, &col);
    let qcol = quote_identifier(&p.tenant_column);
    let table = rel.qualified();
    let predicate = policy::isolation_predicate(&qcol, getter, &col.type_sql, placement);
    let default = policy::column_default(getter, &col.type_sql, col.type_oid);
    let previous = entry(rel.oid);

    let shared = p.shared_column.as_ref().map(|s| {
        let c = catalog::column(rel, s);
        if c.type_oid != pg_sys::BOOLOID {
            errors::bad_argument(
                format!(
                    "shared column {} of {table} must be boolean, not {}",
                    quote_identifier(s),
                    c.type_sql
                ),
                None,
            );
        }
        quote_identifier(s)
    });

    // A NULL tenant would be a row no tenant can see, and one the default cannot fix.
    let set_not_null = !col.not_null;
    if set_not_null {
        let has_nulls = spi::select_one::<bool>(
            &format!("SELECT EXISTS (SELECT 1 FROM {table} WHERE {qcol} IS NULL)"),
            &[],
        )
        .or_bug("looking for rows without a tenant");
        if has_nulls == Some(true) {
            errors::bad_argument(
                format!("{table} has rows with a NULL {qcol}"),
                Some("assign those rows to a tenant (or delete them) before protecting the table"),
            );
        }
    }

    // Indexes are created on the root only: a partitioned index cascades to every partition.
    let mut index_name = previous.as_ref().and_then(|e| e.index_name.clone());
    if is_root && !catalog::has_index_led_by(rel, col.attnum) {
        index_name = Some(create_tenant_index(rel, &p.tenant_column));
    }
    let mut shared_index_name = previous.as_ref().and_then(|e| e.shared_index_name.clone());
    if let (true, Some(s), None) = (is_root, &shared, &shared_index_name) {
        // Lets `tenant = $t OR shared` become a BitmapOr of two index scans, not a scan.
        let name = catalog::free_name(&rel.schema, &format!("{}_tenancy_shared_idx", rel.name));
        let _owner = citus_owner(rel);
        crate::infra::spi::citus_ddl(|| {
            Spi::run(&format!(
                "CREATE INDEX {} ON {table} ({qcol}) WHERE {s}",
                quote_identifier(&name)
            ))
            .or_bug("creating the shared-rows index")
        });
        shared_index_name = Some(name);
    }
    if shared.is_none() {
        if let Some(old) = shared_index_name.take() {
            let _owner = citus_owner(rel);
            crate::infra::spi::citus_ddl(|| {
                Spi::run(&format!(
                    "DROP INDEX IF EXISTS {}.{}",
                    quote_identifier(&rel.schema),
                    quote_identifier(&old)
                ))
                .or_bug("dropping the shared-rows index")
            });
        }
    }

    // Citus refuses to change the default of a distribution column: a table distributed
    // before protect() keeps its own (inserts name the tenant; the policy checks it). One
    // protected before create_distributed_table() keeps the default protect() set.
    let distribution_column = catalog::distribution_column(rel.oid);
    let set_default = if distribution_column.as_deref() == Some(p.tenant_column.as_str()) {
        String::new()
    } else {
        format!(", ALTER COLUMN {qcol} SET DEFAULT {default}")
    };
    // One statement per entry: Citus sends a DDL statement's text to the shards, and a text
    // holding several statements is refused there.
    let mut sql = vec![
        format!("ALTER TABLE {table} ALTER COLUMN {qcol} SET NOT NULL{set_default}"),
        format!("ALTER TABLE {table} ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY"),
    ];
    // Re-created on every call so that protect() converges to the same policies.
    sql.extend(drop_our_policies(rel));
    sql.push(format!(
        "CREATE POLICY {} ON {table} AS PERMISSIVE FOR ALL TO PUBLIC USING ({predicate}) WITH CHECK ({predicate})",
        quote_identifier(ISOLATION_POLICY)
    ));
    if let Some(s) = &shared {
        // Reading only: UPDATE and DELETE still need the isolation policy's USING, so another
        // tenant's shared rows can be read but never changed.
        sql.push(format!(
            "CREATE POLICY {} ON {table} AS PERMISSIVE FOR SELECT TO PUBLIC USING ({s})",
            quote_identifier(SHARED_POLICY)
        ));
    }
    if let Some(f) = &p.feature {
        let gate = policy::feature_gate(f, placement);
        let write_gate = policy::feature_write_gate(f, placement);
        sql.push(format!(
            "CREATE POLICY {} ON {table} AS RESTRICTIVE FOR ALL TO PUBLIC USING ({gate}) WITH CHECK ({write_gate})",
            quote_identifier(FEATURE_POLICY)
        ));
    }
    // One call per statement (the WHEN clause: a cached lookup, no PL/pgSQL frame), false
    // outside a support context; writes made under one are recorded in the tenant's audit chain (sql/audit.sql). Citus refuses triggers on
    // distributed tables (unless citus.enable_unsafe_triggers, which would run it on every
    // shard, on the workers' own audit chains), so in a Citus database tables go without,
    // and one protected before Citus came loses it here (docs/scale-out.md).
    if placement == Placement::SingleNode {
        sql.push(format!(
            "CREATE OR REPLACE TRIGGER {} AFTER INSERT OR UPDATE OR DELETE ON {table}
               FOR EACH STATEMENT WHEN (tenancy._support_active())
               EXECUTE FUNCTION tenancy._support_write_trigger()",
            quote_identifier(SUPPORT_TRIGGER)
        ));
    } else if catalog::has_trigger(rel.oid, SUPPORT_TRIGGER) {
        sql.push(format!(
            "DROP TRIGGER {} ON {table}",
            quote_identifier(SUPPORT_TRIGGER)
        ));
    }
    run_each(rel, &sql, "applying row level security");

    let isolation_qual = policy_qual(rel.oid, ISOLATION_POLICY).unwrap_or_default();
    let feature_qual = p
        .feature
        .as_ref()
        .and_then(|_| policy_qual(rel.oid, FEATURE_POLICY));
    let feature_check = p
        .feature
        .as_ref()
        .and_then(|_| policy_expr(rel.oid, FEATURE_POLICY, "polwithcheck"));
    let set_not_null = set_not_null || previous.as_ref().is_some_and(|e| e.set_not_null);
    // The registry is written as the extension's owner: nobody else may write it (an entry
    // makes export/purge and the quota code act on the table with the owner's rights), and
    // reaching this point proves the caller owns the table (its ALTER TABLEs succeeded).
    // protected_by names the role acting, as the audit row does: on arrival in an enrolled
    // schema this runs inside the SECURITY DEFINER event trigger, whose current user is the
    // extension's owner, not the role that created the table.
    let caller = crate::infra::roles::acting_role();
    let _owner = crate::infra::owner::AsExtensionOwner::enter();
    Spi::run_with_args(
        "INSERT INTO tenancy.protected_tables AS p
                (tbl, tenant_column, column_type, policy_name, index_name, set_not_null,
                 shared_column, shared_index_name, feature, isolation_qual, feature_qual, feature_check,
                 guard_state, protected_by)
         VALUES ($1::pg_catalog.oid::pg_catalog.regclass, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $13,
                 '{}', $12::pg_catalog.name)
         ON CONFLICT (tbl) DO UPDATE
            SET tenant_column = EXCLUDED.tenant_column, column_type = EXCLUDED.column_type,
                policy_name = EXCLUDED.policy_name, index_name = EXCLUDED.index_name,
                set_not_null = EXCLUDED.set_not_null, shared_column = EXCLUDED.shared_column,
                shared_index_name = EXCLUDED.shared_index_name, feature = EXCLUDED.feature,
                isolation_qual = EXCLUDED.isolation_qual, feature_qual = EXCLUDED.feature_qual,
                feature_check = EXCLUDED.feature_check,
                guard_state = '{}',
                protected_at = pg_catalog.now(), protected_by = EXCLUDED.protected_by",
        &[
            rel.oid.into(),
            p.tenant_column.as_str().into(),
            col.type_sql.as_str().into(),
            ISOLATION_POLICY.into(),
            index_name.into(),
            set_not_null.into(),
            p.shared_column.clone().into(),
            shared_index_name.into(),
            p.feature.clone().into(),
            isolation_qual.into(),
            feature_qual.into(),
            caller.into(),
            feature_check.into(),
        ],
    )
    .or_bug("recording the protected table");
}

/// DROP POLICY statements for the policies protect() creates that exist on `rel` (dropped only
/// when present, so the calls print no notices).
fn drop_our_policies(rel: &Rel) -> Vec<String> {
    [ISOLATION_POLICY, SHARED_POLICY, FEATURE_POLICY]
        .into_iter()
        .filter(|name| catalog::has_policy(rel.oid, name))
        // IF EXISTS: on Citus the statement reaches every shard, and one that lost the
        // policy must not stop protect() from restoring it.
        .map(|name| {
            format!(
                "DROP POLICY IF EXISTS {} ON {}",
                quote_identifier(name),
                rel.qualified()
            )
        })
        .collect()
}

fn run_each(rel: &Rel, statements: &[String], what: &str) {
    let _owner = citus_owner(rel);
    crate::infra::spi::citus_ddl(|| {
        for s in statements {
            Spi::run(s).or_bug(what);
        }
    })
}

/// On a Citus table (distributed or reference), protection's DDL runs as the extension's
/// owner, after checking here what PostgreSQL would check (the caller owns the table): Citus
/// sends DDL to the workers over connections of the role running it, and the DDL guard of a
/// worker takes a superuser's DDL on a shard as pg_tenancy's own and refuses a table owner's
/// that weakens it (docs/scale-out.md). Elsewhere, the caller's rights, as before.
fn citus_owner(rel: &Rel) -> Option<crate::infra::owner::AsExtensionOwner> {
    if !crate::infra::spi::citus_loaded() || !catalog::citus_table(&rel.schema, &rel.name) {
        return None;
    }
    let owns = spi::select_one::<bool>(
        "SELECT pg_catalog.pg_has_role(c.relowner, 'USAGE') FROM pg_catalog.pg_class c
          WHERE c.oid OPERATOR(pg_catalog.=) $1",
        &[rel.oid.into()],
    )
    .or_bug("checking the table's owner");
    if owns != Some(true) {
        errors::forbidden(format!("must be owner of table {}", rel.qualified()), None);
    }
    Some(crate::infra::owner::AsExtensionOwner::enter())
}

/// Tenant column first, then the primary key, so a lookup by key within the tenant is one
/// descent on (tenant, key).
fn create_tenant_index(rel: &Rel, col: &str) -> String {
    let mut cols = vec![quote_identifier(col)];
    cols.extend(
        catalog::primary_key_columns(rel)
            .into_iter()
            .filter(|c| c != col)
            .map(quote_identifier),
    );
    let name = catalog::free_name(&rel.schema, &format!("{}_{}_tenancy_idx", rel.name, col));
    let _owner = citus_owner(rel);
    crate::infra::spi::citus_ddl(|| {
        Spi::run(&format!(
            "CREATE INDEX {} ON {} ({})",
            quote_identifier(&name),
            rel.qualified(),
            cols.join(", ")
        ))
        .or_bug("creating the tenant index")
    });
    name
}

#[pg_extern(volatile, parallel_unsafe)]
fn _protect(
    tbl: pg_sys::Oid,
    tenant_column: &str,
    shared_column: Option<&str>,
    feature: Option<&str>,
) {
    protect_tree(
        tbl,
        &Protection {
            tenant_column: tenant_column.to_string(),
            shared_column: shared_column.map(str::to_string),
            feature: feature.map(str::to_string),
        },
    );
}

/// Undoes exactly what protect() did, on the table and every partition below it.
#[pg_extern(volatile, parallel_unsafe)]
fn _unprotect(tbl: pg_sys::Oid) {
    let _own = OwnDdl::enter();
    let root = catalog::relation(tbl);
    let mut any = false;
    for rel in catalog::with_partitions(&root) {
        let Some(e) = entry(rel.oid) else { continue };
        any = true;
        let table = rel.qualified();
        let qcol = quote_identifier(&e.protection.tenant_column);
        let mut sql = drop_our_policies(&rel);
        sql.push(format!(
            "ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY, DISABLE ROW LEVEL SECURITY"
        ));
        if catalog::has_trigger(rel.oid, SUPPORT_TRIGGER) {
            sql.push(format!(
                "DROP TRIGGER {} ON {table}",
                quote_identifier(SUPPORT_TRIGGER)
            ));
        }
        // Only a default that protect() set is ours to remove.
        let ours = spi::select_one::<bool>(
            "SELECT coalesce(pg_catalog.pg_get_expr(d.adbin, d.adrelid) LIKE 'tenancy.current_tenant%', false)
               FROM pg_catalog.pg_attribute a
               LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
              WHERE a.attrelid = $1 AND a.attname = $2::pg_catalog.name",
            &[rel.oid.into(), e.protection.tenant_column.as_str().into()],
        )
        .or_bug("reading the column default");
        // Citus refuses both on a distribution column (which can hold no NULL anyway).
        let distribution = catalog::distribution_column(rel.oid).as_deref()
            == Some(e.protection.tenant_column.as_str());
        if ours == Some(true) && !distribution {
            sql.push(format!(
                "ALTER TABLE {table} ALTER COLUMN {qcol} DROP DEFAULT"
            ));
        }
        // Not when a primary key now holds the column (scope_unique on the primary key):
        // PostgreSQL refuses it, and the key needs it.
        if e.set_not_null
            && !distribution
            && !catalog::primary_key_columns(&rel).contains(&e.protection.tenant_column)
        {
            sql.push(format!(
                "ALTER TABLE {table} ALTER COLUMN {qcol} DROP NOT NULL"
            ));
        }
        for idx in [e.index_name, e.shared_index_name].into_iter().flatten() {
            sql.push(format!(
                "DROP INDEX IF EXISTS {}.{}",
                quote_identifier(&rel.schema),
                quote_identifier(&idx)
            ));
        }
        run_each(&rel, &sql, "removing row level security");
        // As the extension's owner, like protect()'s registry write (the caller owns the table).
        crate::infra::owner::as_extension_owner(|| {
            Spi::run_with_args(
                "DELETE FROM tenancy.protected_tables WHERE tbl = $1::pg_catalog.oid::pg_catalog.regclass",
                &[rel.oid.into()],
            )
        })
        .or_bug("forgetting the protected table");
    }
    if !any {
        errors::bad_argument(
            format!("{} is not protected", root.qualified()),
            Some("see tenancy.protected_tables"),
        );
    }
    crate::protection::quota::forget(&root);
    crate::audit::trail::record(
        crate::audit::trail::SYSTEM_CHAIN,
        "table_unprotected",
        serde_json::json!({ "table": root.qualified() }),
    );
}

/// Protects every table of the schema that has the tenant column and enrols the schema, so
/// that tables created in it later are protected on creation. Returns how many tables
/// (partitions included) it protected.
#[pg_extern(volatile, parallel_unsafe)]
fn _protect_schema(schema: &str, tenant_column: &str) -> i32 {
    if schema == "tenancy" || schema == "pg_catalog" || schema == "information_schema" {
        errors::bad_argument(
            format!("schema {} cannot be enrolled", quote_identifier(schema)),
            None,
        );
    }
    let exists = spi::select_one::<bool>(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1::pg_catalog.name)",
        &[schema.into()],
    )
    .or_bug("reading pg_namespace");
    if exists != Some(true) {
        errors::not_found(
            format!("schema {} does not exist", quote_identifier(schema)),
            None,
        );
    }
    // Roots only: partitions are protected with their parent.
    let roots = Spi::connect(|c| {
        c.select(
            "SELECT c.oid FROM pg_catalog.pg_class c
               JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
               JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid
              WHERE n.nspname = $1::pg_catalog.name AND c.relkind IN ('r', 'p') AND NOT c.relispartition
                AND a.attname = $2::pg_catalog.name AND a.attnum > 0 AND NOT a.attisdropped
              ORDER BY c.oid",
            None,
            &[schema.into(), tenant_column.into()],
        )?
        .map(|r| r.get::<pg_sys::Oid>(1))
        .collect::<Result<Vec<_>, _>>()
    })
    .or_bug("listing the schema's tables");
    let mut n = 0;
    for oid in roots.into_iter().flatten() {
        let previous = entry(oid).map(|e| e.protection);
        let p = previous.unwrap_or(Protection {
            tenant_column: tenant_column.to_string(),
            shared_column: None,
            feature: None,
        });
        n += protect_tree(oid, &p);
    }
    // Admins may read and delete enrolments, not write them: only protect_schema() enrols.
    let _owner = crate::infra::owner::AsExtensionOwner::enter();
    Spi::run_with_args(
        "INSERT INTO tenancy.enrolled_schemas (schema_name, tenant_column) VALUES ($1, $2)
         ON CONFLICT (schema_name) DO UPDATE SET tenant_column = EXCLUDED.tenant_column, enrolled_at = pg_catalog.now()",
        &[schema.into(), tenant_column.into()],
    )
    .or_bug("enrolling the schema");
    n
}
