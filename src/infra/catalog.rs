//! Catalog lookups shared by every domain (relations, columns, indexes, policies). All reads,
//! all through `Spi::connect` so they work wherever a read works (a hot standby too), and
//! written so that the caller's search_path cannot change their meaning: they run with the
//! caller's rights, and a table owner is one of the tiers the extension defends against.

use pgrx::prelude::*;
use pgrx::spi::quote_identifier;

use crate::infra::errors::{self, SpiOrBug};
use crate::infra::spi;

pub struct Rel {
    pub oid: pg_sys::Oid,
    pub kind: String,
    pub schema: String,
    pub name: String,
}

impl Rel {
    /// `schema.table`, both quoted as needed.
    pub fn qualified(&self) -> String {
        format!(
            "{}.{}",
            quote_identifier(&self.schema),
            quote_identifier(&self.name)
        )
    }

    pub fn is_table(&self) -> bool {
        self.kind == "r" || self.kind == "p"
    }
}

pub fn relation_opt(oid: pg_sys::Oid) -> Option<Rel> {
    let row = crate::infra::spi::select_row(
        "SELECT c.relkind::pg_catalog.text, n.nspname::pg_catalog.text, c.relname::pg_catalog.text
               FROM pg_catalog.pg_class c
               JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
              WHERE c.oid OPERATOR(pg_catalog.=) $1",
        &[oid.into()],
        |r| {
            Ok((
                r.get::<String>(1)?,
                r.get::<String>(2)?,
                r.get::<String>(3)?,
            ))
        },
    )
    .or_bug("reading pg_class");
    match row {
        Some((Some(kind), Some(schema), Some(name))) => Some(Rel {
            oid,
            kind,
            schema,
            name,
        }),
        _ => None,
    }
}

pub fn relation(oid: pg_sys::Oid) -> Rel {
    relation_opt(oid).unwrap_or_else(|| {
        errors::bad_argument(
            format!("relation with OID {} does not exist", u32::from(oid)),
            None,
        )
    })
}

/// The table itself, then every partition below it, parents before children.
pub fn with_partitions(rel: &Rel) -> Vec<Rel> {
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
        .filter_map(relation_opt)
        .filter(Rel::is_table)
        .collect()
}

pub struct Column {
    pub attnum: i16,
    pub type_oid: pg_sys::Oid,
    pub type_sql: String,
    /// The type's name without its modifier (`numeric`, not `numeric(10,2)`), for casts.
    pub type_name: String,
    pub not_null: bool,
    /// The type below any domains (what decides how tenant ids compare).
    pub base_type_oid: pg_sys::Oid,
    /// Whether the column's collation (if any) is deterministic: a nondeterministic one makes
    /// distinct strings such as 'ACME' and 'acme' compare equal.
    pub deterministic: bool,
}

pub fn column_opt(rel_oid: pg_sys::Oid, name: &str) -> Option<Column> {
    let row = crate::infra::spi::select_row(
            "SELECT a.attnum, a.atttypid, pg_catalog.format_type(a.atttypid, a.atttypmod), a.attnotnull,
                    coalesce((SELECT k.collisdeterministic FROM pg_catalog.pg_collation k
                               WHERE k.oid OPERATOR(pg_catalog.=) a.attcollation), true),
                    pg_catalog.format_type(a.atttypid, NULL)
               FROM pg_catalog.pg_attribute a
              WHERE a.attrelid OPERATOR(pg_catalog.=) $1
                AND a.attname OPERATOR(pg_catalog.=) $2::pg_catalog.name
                AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped",
            &[rel_oid.into(), name.into()],
            |r| Ok((
            r.get::<i16>(1)?,
            r.get::<pg_sys::Oid>(2)?,
            r.get::<String>(3)?,
            r.get::<bool>(4)?,
            r.get::<bool>(5)?,
            r.get::<String>(6)?,
        )),
    )
    .or_bug("reading pg_attribute");
    match row {
        Some((
            Some(attnum),
            Some(type_oid),
            Some(type_sql),
            Some(not_null),
            deterministic,
            Some(type_name),
        )) => {
            // SAFETY: a catalog lookup by OID; an unknown OID returns itself.
            let base_type_oid = unsafe { pg_sys::getBaseType(type_oid) };
            Some(Column {
                attnum,
                type_oid,
                type_sql,
                type_name,
                not_null,
                base_type_oid,
                deterministic: deterministic.unwrap_or(true),
            })
        }
        _ => None,
    }
}

/// The names of the relation's live columns, in order.
pub fn column_names(rel_oid: pg_sys::Oid) -> Vec<String> {
    Spi::connect(|c| {
        c.select(
            "SELECT a.attname::pg_catalog.text FROM pg_catalog.pg_attribute a
              WHERE a.attrelid OPERATOR(pg_catalog.=) $1 AND a.attnum OPERATOR(pg_catalog.>) 0
                AND NOT a.attisdropped
              ORDER BY a.attnum",
            None,
            &[rel_oid.into()],
        )?
        .map(|r| r.get::<String>(1))
        .collect::<Result<Vec<_>, _>>()
    })
    .or_bug("reading pg_attribute")
    .into_iter()
    .flatten()
    .collect()
}

pub fn column(rel: &Rel, name: &str) -> Column {
    column_opt(rel.oid, name).unwrap_or_else(|| {
        errors::undefined_column(
            format!(
                "table {} has no column {}",
                rel.qualified(),
                quote_identifier(name)
            ),
            Some("name the tenant column: tenancy.protect('tbl', 'org_id')"),
        )
    })
}

/// Whether the Citus extension exists in this database (its metadata table does).
pub fn citus_present() -> bool {
    spi::select_one::<bool>(
        "SELECT pg_catalog.to_regclass('pg_catalog.pg_dist_partition') IS NOT NULL",
        &[],
    )
    .or_bug("looking for Citus")
        == Some(true)
}

/// Whether `schema.name` is one of Citus's tables (distributed, reference or added to its
/// metadata), whose rows Citus may read on another node.
pub fn citus_table(schema: &str, name: &str) -> bool {
    citus_present()
        && spi::select_one::<bool>(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_partition
                             WHERE logicalrelid OPERATOR(pg_catalog.=)
                                   pg_catalog.to_regclass(pg_catalog.format('%I.%I', $1::pg_catalog.text, $2::pg_catalog.text)))",
            &[schema.into(), name.into()],
        )
        .or_bug("reading pg_dist_partition")
            == Some(true)
}

/// The distribution column of a Citus hash-distributed table, by name; `None` for every other
/// table (reference tables and local tables have none). Citus refuses to change its default
/// or drop its NOT NULL.
pub fn distribution_column(oid: pg_sys::Oid) -> Option<String> {
    if !citus_present() {
        return None;
    }
    spi::select_one::<String>(
        "SELECT pg_catalog.column_to_column_name(p.logicalrelid, p.partkey)::pg_catalog.text
           FROM pg_catalog.pg_dist_partition p
          WHERE p.logicalrelid OPERATOR(pg_catalog.=) $1 AND p.partkey IS NOT NULL",
        &[oid.into()],
    )
    .or_bug("reading pg_dist_partition")
}

/// A valid, non-partial index whose first key column is `attnum`.
pub fn has_index_led_by(rel: &Rel, attnum: i16) -> bool {
    spi::select_one::<bool>(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_index i
                         WHERE i.indrelid OPERATOR(pg_catalog.=) $1
                           AND i.indkey[0] OPERATOR(pg_catalog.=) $2
                           AND i.indpred IS NULL AND i.indisvalid)",
        &[rel.oid.into(), attnum.into()],
    )
    .or_bug("reading pg_index")
        == Some(true)
}

pub fn primary_key_columns(rel: &Rel) -> Vec<String> {
    Spi::connect(|c| {
        c.select(
            "SELECT a.attname::pg_catalog.text
               FROM pg_catalog.pg_index i
               CROSS JOIN LATERAL pg_catalog.unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
               JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) i.indrelid
                                              AND a.attnum OPERATOR(pg_catalog.=) k.attnum
              WHERE i.indrelid OPERATOR(pg_catalog.=) $1 AND i.indisprimary
              ORDER BY k.ord",
            None,
            &[rel.oid.into()],
        )?
        .map(|r| r.get::<String>(1))
        .collect::<Result<Vec<_>, _>>()
    })
    .or_bug("reading the primary key")
    .into_iter()
    .flatten()
    .collect()
}

/// `base`, trimmed to 63 bytes, with a numeric suffix if a relation or constraint of that name
/// already exists in the schema.
pub fn free_name(schema: &str, base: &str) -> String {
    for n in 0..1000 {
        let suffix = if n == 0 { String::new() } else { n.to_string() };
        let mut name = base.to_string();
        while name.len() + suffix.len() > 63 {
            name.pop();
        }
        name.push_str(&suffix);
        let taken = spi::select_one::<bool>(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class c
                              JOIN pg_catalog.pg_namespace s ON s.oid OPERATOR(pg_catalog.=) c.relnamespace
                             WHERE s.nspname OPERATOR(pg_catalog.=) $1::pg_catalog.name
                               AND c.relname OPERATOR(pg_catalog.=) $2::pg_catalog.name)
                 OR EXISTS (SELECT 1 FROM pg_catalog.pg_constraint k
                              JOIN pg_catalog.pg_namespace s ON s.oid OPERATOR(pg_catalog.=) k.connamespace
                             WHERE s.nspname OPERATOR(pg_catalog.=) $1::pg_catalog.name
                               AND k.conname OPERATOR(pg_catalog.=) $2::pg_catalog.name)",
            &[schema.into(), name.as_str().into()],
        )
        .or_bug("looking up names");
        if taken != Some(true) {
            return name;
        }
    }
    errors::internal("naming an index", "no free name")
}

pub fn has_policy(rel_oid: pg_sys::Oid, name: &str) -> bool {
    spi::select_one::<bool>(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_policy
                         WHERE polrelid OPERATOR(pg_catalog.=) $1
                           AND polname OPERATOR(pg_catalog.=) $2::pg_catalog.name)",
        &[rel_oid.into(), name.into()],
    )
    .or_bug("reading pg_policy")
        == Some(true)
}

pub fn has_trigger(rel_oid: pg_sys::Oid, name: &str) -> bool {
    spi::select_one::<bool>(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger
                         WHERE tgrelid OPERATOR(pg_catalog.=) $1
                           AND tgname OPERATOR(pg_catalog.=) $2::pg_catalog.name)",
        &[rel_oid.into(), name.into()],
    )
    .or_bug("reading pg_trigger")
        == Some(true)
}
