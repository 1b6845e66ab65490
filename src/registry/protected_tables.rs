//! The protected-table registry, `tenancy.protected_tables`, read side: what each protected
//! table's row says (its protection, its generated policies' expressions, the DDL guard's last
//! view of it). Every read of the registry table goes through here; `protection` writes it.

use pgrx::prelude::*;

use crate::infra::errors::SpiOrBug;
use crate::infra::spi;

/// How a table is protected (what the registry row says).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Protection {
    pub tenant_column: String,
    pub shared_column: Option<String>,
    pub feature: Option<String>,
}

/// The registry row of a protected table.
pub struct Entry {
    pub protection: Protection,
    pub column_type: String,
    pub index_name: Option<String>,
    pub shared_index_name: Option<String>,
    pub set_not_null: bool,
    pub isolation_qual: String,
    pub feature_qual: Option<String>,
    /// The entitlement policy's WITH CHECK as deparsed (None: not recorded, an older row).
    pub feature_check: Option<String>,
    /// Violation codes after the last DDL command; None = unknown (a restored row).
    pub guard_state: Option<Vec<String>>,
}

pub fn entry(oid: pg_sys::Oid) -> Option<Entry> {
    Spi::connect(|c| {
        let t = c.select(
            "SELECT tenant_column::text, shared_column::text, feature, column_type, index_name::text,
                    shared_index_name::text, set_not_null, isolation_qual, feature_qual, guard_state,
                    feature_check
               FROM tenancy.protected_tables WHERE tbl = $1::pg_catalog.oid::pg_catalog.regclass",
            Some(1),
            &[oid.into()],
        )?;
        if t.is_empty() {
            return Ok(None);
        }
        let r = t.first();
        Ok::<_, pgrx::spi::Error>(Some(Entry {
            protection: Protection {
                tenant_column: r.get::<String>(1)?.unwrap_or_default(),
                shared_column: r.get::<String>(2)?,
                feature: r.get::<String>(3)?,
            },
            column_type: r.get::<String>(4)?.unwrap_or_default(),
            index_name: r.get::<String>(5)?,
            shared_index_name: r.get::<String>(6)?,
            set_not_null: r.get::<bool>(7)?.unwrap_or(false),
            isolation_qual: r.get::<String>(8)?.unwrap_or_default(),
            feature_qual: r.get::<String>(9)?,
            guard_state: r.get::<Vec<String>>(10)?,
            feature_check: r.get::<String>(11)?,
        }))
    })
    .or_bug("reading tenancy.protected_tables")
}

/// Whether `oid` is a protected table (has a registry row of its own).
pub fn is_protected(oid: pg_sys::Oid) -> bool {
    spi::select_one::<bool>(
        "SELECT EXISTS (SELECT FROM tenancy.protected_tables p
                         WHERE p.tbl OPERATOR(pg_catalog.=) $1::pg_catalog.oid::pg_catalog.regclass)",
        &[oid.into()],
    )
    .or_bug("reading tenancy.protected_tables")
        == Some(true)
}

/// Every protected table.
pub fn all() -> Vec<pg_sys::Oid> {
    Spi::connect(|c| {
        c.select(
            "SELECT p.tbl::pg_catalog.oid FROM tenancy.protected_tables p",
            None,
            &[],
        )?
        .map(|r| r.get::<pg_sys::Oid>(1))
        .collect::<Result<Vec<_>, pgrx::spi::Error>>()
    })
    .or_bug("reading tenancy.protected_tables")
    .into_iter()
    .flatten()
    .collect()
}

/// A protected table that holds rows of its own: the root of a partition tree or a plain table,
/// not a partition of a protected parent.
pub struct Root {
    pub oid: pg_sys::Oid,
    /// `schema.table`, quoted as needed.
    pub name: String,
    pub partitioned: bool,
    pub tenant_column: String,
    pub type_oid: pg_sys::Oid,
    /// The tenant column's type as `format_type` spells it (schema-qualified where needed).
    pub type_sql: String,
}

/// Every protected root, in name order.
pub fn roots() -> Vec<Root> {
    let rows = Spi::connect(|c| {
        c.select(
            "SELECT c.oid, pg_catalog.format('%I.%I', n.nspname, c.relname), c.relkind = 'p',
                    p.tenant_column::pg_catalog.text, a.atttypid,
                    pg_catalog.format_type(a.atttypid, a.atttypmod)
               FROM tenancy.protected_tables p
               JOIN pg_catalog.pg_class c ON c.oid = p.tbl::pg_catalog.oid
               JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
               JOIN pg_catalog.pg_attribute a
                 ON a.attrelid = c.oid AND a.attname = p.tenant_column AND a.attnum > 0 AND NOT a.attisdropped
              WHERE NOT (c.relispartition AND EXISTS (
                        SELECT 1 FROM pg_catalog.pg_partition_ancestors(c.oid) x
                         WHERE x.relid <> c.oid
                           AND x.relid IN (SELECT q.tbl::pg_catalog.oid FROM tenancy.protected_tables q)))
              ORDER BY 2",
            None,
            &[],
        )?
        .map(|r| {
            Ok((
                r.get::<pg_sys::Oid>(1)?,
                r.get::<String>(2)?,
                r.get::<bool>(3)?,
                r.get::<String>(4)?,
                r.get::<pg_sys::Oid>(5)?,
                r.get::<String>(6)?,
            ))
        })
        .collect::<Result<Vec<_>, pgrx::spi::Error>>()
    })
    .or_bug("listing protected tables");
    rows.into_iter()
        .filter_map(|(oid, name, partitioned, col, typ, type_sql)| {
            Some(Root {
                oid: oid?,
                name: name?,
                partitioned: partitioned == Some(true),
                tenant_column: col?,
                type_oid: typ?,
                type_sql: type_sql?,
            })
        })
        .collect()
}
