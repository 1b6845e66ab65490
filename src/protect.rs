//! `tenancy.protect()` / `unprotect()`: row level security generated from one rule.
//!
//! These run with the caller's rights: PostgreSQL itself checks that the caller owns the
//! table. Everything happens in one statement, so an error leaves nothing half-applied.

use pgrx::prelude::*;
use pgrx::spi::quote_identifier;

use crate::errors::{self, SpiOrBug};
use crate::policy::{self, Getter, Placement};

pub const POLICY_NAME: &str = "tenancy_isolation";

struct Rel {
    oid: pg_sys::Oid,
    kind: String,
    schema: String,
    name: String,
}

impl Rel {
    fn qualified(&self) -> String {
        format!(
            "{}.{}",
            quote_identifier(&self.schema),
            quote_identifier(&self.name)
        )
    }
}

fn relation(oid: pg_sys::Oid) -> Rel {
    let row = Spi::connect(|c| {
        let t = c.select(
            "SELECT c.relkind::text, n.nspname::text, c.relname::text
               FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
              WHERE c.oid = $1",
            Some(1),
            &[oid.into()],
        )?;
        if t.is_empty() {
            return Ok(None);
        }
        let r = t.first();
        Ok::<_, pgrx::spi::Error>(Some((
            r.get::<String>(1)?,
            r.get::<String>(2)?,
            r.get::<String>(3)?,
        )))
    })
    .or_bug("reading pg_class");
    match row {
        Some((Some(kind), Some(schema), Some(name))) => Rel {
            oid,
            kind,
            schema,
            name,
        },
        _ => errors::bad_argument(
            format!("relation with OID {} does not exist", u32::from(oid)),
            None,
        ),
    }
}

/// The table itself, then every partition below it (partitions are queried directly too).
fn with_partitions(rel: &Rel) -> Vec<Rel> {
    if rel.kind != "p" {
        return vec![Rel {
            oid: rel.oid,
            kind: rel.kind.clone(),
            schema: rel.schema.clone(),
            name: rel.name.clone(),
        }];
    }
    let oids = Spi::connect(|c| {
        c.select(
            "SELECT t.relid::pg_catalog.oid FROM pg_catalog.pg_partition_tree($1) t
              WHERE t.relid IS NOT NULL ORDER BY t.level, t.relid",
            None,
            &[rel.oid.into()],
        )?
        .map(|r| r.get::<pg_sys::Oid>(1))
        .collect::<Result<Vec<_>, _>>()
    })
    .or_bug("listing partitions");
    oids.into_iter()
        .flatten()
        .map(relation)
        .filter(|r| r.kind == "r" || r.kind == "p")
        .collect()
}

struct Column {
    attnum: i16,
    type_oid: pg_sys::Oid,
    type_sql: String,
    not_null: bool,
}

fn column(rel: &Rel, name: &str) -> Column {
    let row = Spi::connect(|c| {
        let t = c.select(
            "SELECT a.attnum, a.atttypid, pg_catalog.format_type(a.atttypid, a.atttypmod), a.attnotnull
               FROM pg_catalog.pg_attribute a
              WHERE a.attrelid = $1 AND a.attname = $2::pg_catalog.name AND a.attnum > 0 AND NOT a.attisdropped",
            Some(1),
            &[rel.oid.into(), name.into()],
        )?;
        if t.is_empty() {
            return Ok(None);
        }
        let r = t.first();
        Ok::<_, pgrx::spi::Error>(Some((
            r.get::<i16>(1)?,
            r.get::<pg_sys::Oid>(2)?,
            r.get::<String>(3)?,
            r.get::<bool>(4)?,
        )))
    })
    .or_bug("reading pg_attribute");
    match row {
        Some((Some(attnum), Some(type_oid), Some(type_sql), Some(not_null))) => Column {
            attnum,
            type_oid,
            type_sql,
            not_null,
        },
        _ => errors::undefined_column(
            format!(
                "table {} has no column {}",
                rel.qualified(),
                quote_identifier(name)
            ),
            Some("pass the tenant column as the second argument: tenancy.protect('tbl', 'org_id')"),
        ),
    }
}

fn distributed(oid: pg_sys::Oid) -> bool {
    let citus = Spi::get_one::<bool>(
        "SELECT pg_catalog.to_regclass('pg_catalog.pg_dist_partition') IS NOT NULL",
    )
    .or_bug("looking for Citus");
    if citus != Some(true) {
        return false;
    }
    Spi::get_one_with_args::<bool>(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_partition WHERE logicalrelid = $1)",
        &[oid.into()],
    )
    .or_bug("reading pg_dist_partition")
        == Some(true)
}

/// An index (valid, not partial) whose first key column is the tenant column.
fn has_tenant_index(rel: &Rel, attnum: i16) -> bool {
    Spi::get_one_with_args::<bool>(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_index i
                         WHERE i.indrelid = $1 AND i.indkey[0] = $2 AND i.indpred IS NULL AND i.indisvalid)",
        &[rel.oid.into(), attnum.into()],
    )
    .or_bug("reading pg_index")
        == Some(true)
}

/// Tenant column first, then the primary key, so a point lookup by key is one index
/// descent on (tenant, key) rather than a key lookup followed by a filter.
fn create_tenant_index(rel: &Rel, col: &str) -> String {
    let pk_cols = Spi::connect(|c| {
        c.select(
            "SELECT a.attname::text
               FROM pg_catalog.pg_index i
               CROSS JOIN LATERAL pg_catalog.unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
               JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
              WHERE i.indrelid = $1 AND i.indisprimary
              ORDER BY k.ord",
            None,
            &[rel.oid.into()],
        )?
        .map(|r| r.get::<String>(1))
        .collect::<Result<Vec<_>, _>>()
    })
    .or_bug("reading the primary key");
    let mut cols = vec![quote_identifier(col)];
    cols.extend(
        pk_cols
            .into_iter()
            .flatten()
            .filter(|c| c != col)
            .map(quote_identifier),
    );
    let base: String = format!("{}_{}_tenancy_idx", rel.name, col);
    let name = free_index_name(&rel.schema, &base);
    Spi::run(&format!(
        "CREATE INDEX {} ON {} ({})",
        quote_identifier(&name),
        rel.qualified(),
        cols.join(", ")
    ))
    .or_bug("creating the tenant index");
    name
}

fn free_index_name(schema: &str, base: &str) -> String {
    for n in 0..1000 {
        let suffix = if n == 0 { String::new() } else { n.to_string() };
        let mut name = base.to_string();
        // Identifiers are at most 63 bytes; trim on a character boundary.
        while name.len() + suffix.len() > 63 {
            name.pop();
        }
        name.push_str(&suffix);
        let taken = Spi::get_one_with_args::<bool>(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace s ON s.oid = c.relnamespace
                             WHERE s.nspname = $1::pg_catalog.name AND c.relname = $2::pg_catalog.name)",
            &[schema.into(), name.as_str().into()],
        )
        .or_bug("looking up index names");
        if taken != Some(true) {
            return name;
        }
    }
    errors::internal("naming the tenant index", "no free name")
}

fn has_policy(rel: &Rel) -> bool {
    Spi::get_one_with_args::<bool>(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_policy WHERE polrelid = $1 AND polname = $2::pg_catalog.name)",
        &[rel.oid.into(), POLICY_NAME.into()],
    )
    .or_bug("reading pg_policy")
        == Some(true)
}

#[pg_extern(volatile, parallel_unsafe)]
fn _protect(
    tbl: pg_sys::Oid,
    tenant_column: &str,
    shared_column: Option<&str>,
    feature: Option<&str>,
) {
    if shared_column.is_some() || feature.is_some() {
        errors::not_supported(
            "shared_column and feature are not available in this version".into(),
            Some("protect the table without them; shared rows and entitlement-gated tables are planned"),
        );
    }
    let root = relation(tbl);
    if root.kind != "r" && root.kind != "p" {
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
    let placement = if distributed(root.oid) {
        Placement::Distributed
    } else {
        Placement::SingleNode
    };

    for rel in with_partitions(&root) {
        let col = column(&rel, tenant_column);
        let getter = Getter::for_type(col.type_oid);
        let qcol = quote_identifier(tenant_column);
        let table = rel.qualified();
        let predicate = policy::isolation_predicate(&qcol, getter, &col.type_sql, placement);
        let default = policy::column_default(getter, &col.type_sql, col.type_oid);

        let set_not_null = !col.not_null;
        if set_not_null {
            let has_nulls = Spi::get_one::<bool>(&format!(
                "SELECT EXISTS (SELECT 1 FROM {table} WHERE {qcol} IS NULL)"
            ))
            .or_bug("looking for rows without a tenant");
            if has_nulls == Some(true) {
                errors::bad_argument(
                    format!("{table} has rows with a NULL {qcol}"),
                    Some("assign those rows to a tenant (or delete them) before protecting the table"),
                );
            }
        }
        let index_name = if rel.oid == root.oid && !has_tenant_index(&rel, col.attnum) {
            Some(create_tenant_index(&rel, tenant_column))
        } else {
            None
        };
        let policy = quote_identifier(POLICY_NAME);
        // Re-created on every call so that a second protect() converges to the same policy;
        // dropped only when present, to keep the call free of notices.
        let drop_old = if has_policy(&rel) {
            format!("DROP POLICY {policy} ON {table};")
        } else {
            String::new()
        };
        Spi::run(&format!(
            "ALTER TABLE {table} ALTER COLUMN {qcol} SET NOT NULL, ALTER COLUMN {qcol} SET DEFAULT {default};
             ALTER TABLE {table} ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
             {drop_old}
             CREATE POLICY {policy} ON {table} AS PERMISSIVE FOR ALL TO PUBLIC
               USING ({predicate}) WITH CHECK ({predicate});"
        ))
        .or_bug("applying row level security");
        Spi::run_with_args(
            "INSERT INTO tenancy.protected_tables AS p
                    (tbl, tenant_column, column_type, policy_name, index_name, set_not_null)
             VALUES ($1::pg_catalog.oid::pg_catalog.regclass, $2, $3, $4, $5, $6)
             ON CONFLICT (tbl) DO UPDATE
                SET tenant_column = EXCLUDED.tenant_column,
                    column_type = EXCLUDED.column_type,
                    policy_name = EXCLUDED.policy_name,
                    index_name = coalesce(EXCLUDED.index_name, p.index_name),
                    set_not_null = EXCLUDED.set_not_null OR
                                   (p.set_not_null AND p.tenant_column = EXCLUDED.tenant_column),
                    protected_at = now(),
                    protected_by = current_user",
            &[
                rel.oid.into(),
                tenant_column.into(),
                col.type_sql.as_str().into(),
                POLICY_NAME.into(),
                index_name.into(),
                set_not_null.into(),
            ],
        )
        .or_bug("recording the protected table");
    }
}

#[pg_extern(volatile, parallel_unsafe)]
fn _unprotect(tbl: pg_sys::Oid) {
    let root = relation(tbl);
    let mut any = false;
    for rel in with_partitions(&root) {
        let entry = Spi::connect(|c| {
            let t = c.select(
                "SELECT tenant_column::text, index_name::text, set_not_null
                   FROM tenancy.protected_tables WHERE tbl = $1::pg_catalog.oid::pg_catalog.regclass",
                Some(1),
                &[rel.oid.into()],
            )?;
            if t.is_empty() {
                return Ok(None);
            }
            let r = t.first();
            Ok::<_, pgrx::spi::Error>(Some((r.get::<String>(1)?, r.get::<String>(2)?, r.get::<bool>(3)?)))
        })
        .or_bug("reading protected tables");
        let Some((Some(col), index_name, set_not_null)) = entry else {
            continue;
        };
        any = true;
        let table = rel.qualified();
        let qcol = quote_identifier(&col);
        let policy = quote_identifier(POLICY_NAME);
        let drop_old = if has_policy(&rel) {
            format!("DROP POLICY {policy} ON {table};")
        } else {
            String::new()
        };
        let mut sql = format!(
            "{drop_old}
             ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY, DISABLE ROW LEVEL SECURITY;"
        );
        // Only a default that protect() set is ours to remove.
        let ours = Spi::get_one_with_args::<bool>(
            "SELECT coalesce(pg_catalog.pg_get_expr(d.adbin, d.adrelid) LIKE '%tenancy.current_tenant%', false)
               FROM pg_catalog.pg_attribute a
               LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
              WHERE a.attrelid = $1 AND a.attname = $2::pg_catalog.name",
            &[rel.oid.into(), col.as_str().into()],
        )
        .or_bug("reading the column default");
        if ours == Some(true) {
            sql.push_str(&format!(
                "ALTER TABLE {table} ALTER COLUMN {qcol} DROP DEFAULT;"
            ));
        }
        if set_not_null == Some(true) {
            sql.push_str(&format!(
                "ALTER TABLE {table} ALTER COLUMN {qcol} DROP NOT NULL;"
            ));
        }
        if let Some(idx) = index_name {
            sql.push_str(&format!(
                "DROP INDEX IF EXISTS {}.{};",
                quote_identifier(&rel.schema),
                quote_identifier(&idx)
            ));
        }
        Spi::run(&sql).or_bug("removing row level security");
        Spi::run_with_args(
            "DELETE FROM tenancy.protected_tables WHERE tbl = $1::pg_catalog.oid::pg_catalog.regclass",
            &[rel.oid.into()],
        )
        .or_bug("forgetting the protected table");
    }
    if !any {
        errors::bad_argument(
            format!("{} is not protected", root.qualified()),
            Some("see tenancy.protected_tables"),
        );
    }
}
