//! Keys scoped to the tenant: uniqueness per tenant, and references that stay inside the
//! tenant. Both matter for isolation, not only integrity: a global unique index answers
//! "does this value exist anywhere?" with a duplicate-key error, and a plain foreign key is
//! checked without row level security, so it both reveals and links another tenant's rows.

use pgrx::prelude::*;
use pgrx::spi::quote_identifier;

use crate::infra::catalog::{self, Rel};
use crate::infra::errors::{self, SpiOrBug};
use crate::protection::own_ddl::OwnDdl;
use crate::registry::protected_tables::{self};

fn protected(rel: &Rel) -> protected_tables::Entry {
    protected_tables::entry(rel.oid).unwrap_or_else(|| {
        errors::bad_argument(
            format!("{} is not protected", rel.qualified()),
            Some("run tenancy.protect() on it first"),
        )
    })
}

fn checked_columns(rel: &Rel, columns: Vec<Option<String>>) -> Vec<String> {
    let cols: Vec<String> = columns
        .into_iter()
        .map(|c| {
            c.unwrap_or_else(|| errors::bad_argument("column names must not be NULL".into(), None))
        })
        .collect();
    if cols.is_empty() {
        errors::bad_argument("at least one column is needed".into(), None);
    }
    for c in &cols {
        catalog::column(rel, c);
    }
    cols
}

struct UniqueKey {
    index: String,
    constraint: Option<String>,
    primary: bool,
    columns: Vec<String>,
}

fn unique_keys(rel: &Rel) -> Vec<UniqueKey> {
    Spi::connect(|c| {
        c.select(
            "SELECT ic.relname::text, k.conname::text, i.indisprimary,
                    ARRAY(SELECT a.attname::text FROM pg_catalog.unnest(i.indkey) WITH ORDINALITY u(attnum, ord)
                            JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = u.attnum
                           ORDER BY u.ord)
               FROM pg_catalog.pg_index i
               JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
               LEFT JOIN pg_catalog.pg_constraint k ON k.conindid = i.indexrelid AND k.contype IN ('u', 'p')
              WHERE i.indrelid = $1 AND i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL
              ORDER BY 1",
            None,
            &[rel.oid.into()],
        )?
        .map(|r| {
            Ok(UniqueKey {
                index: r.get::<String>(1)?.unwrap_or_default(),
                constraint: r.get::<String>(2)?,
                primary: r.get::<bool>(3)?.unwrap_or(false),
                columns: r.get::<Vec<String>>(4)?.unwrap_or_default(),
            })
        })
        .collect::<Result<Vec<_>, pgrx::spi::Error>>()
    })
    .or_bug("reading unique indexes")
}

fn same_set(a: &[String], b: &[String]) -> bool {
    a.len() == b.len() && a.iter().all(|x| b.contains(x))
}

fn col_list(cols: &[String]) -> String {
    cols.iter()
        .map(quote_identifier)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Makes a unique key on `columns` unique per tenant: (tenant_column, columns...).
#[pg_extern(volatile, parallel_unsafe)]
fn _scope_unique(tbl: pg_sys::Oid, columns: Vec<Option<String>>) {
    // Citus propagates the key's DDL to every shard whatever the caller set (review of
    // session 5: with citus.enable_ddl_propagation off the key reached no shard).
    crate::infra::spi::citus_ddl(|| scope_unique(tbl, columns))
}

fn scope_unique(tbl: pg_sys::Oid, columns: Vec<Option<String>>) {
    let _own = OwnDdl::enter();
    let rel = catalog::relation(tbl);
    let entry = protected(&rel);
    let tenant = entry.protection.tenant_column.clone();
    let cols = checked_columns(&rel, columns);
    if cols.contains(&tenant) {
        errors::bad_argument(
            "list the key's columns without the tenant column".into(),
            None,
        );
    }
    let mut scoped = vec![tenant.clone()];
    scoped.extend(cols.iter().cloned());
    let keys = unique_keys(&rel);
    let table = rel.qualified();
    let mut sql = String::new();
    for k in keys.iter().filter(|k| same_set(&k.columns, &cols)) {
        match &k.constraint {
            Some(con) => {
                let kind = if k.primary { "PRIMARY KEY" } else { "UNIQUE" };
                sql.push_str(&format!(
                    "ALTER TABLE {table} DROP CONSTRAINT {c}, ADD CONSTRAINT {c} {kind} ({});",
                    col_list(&scoped),
                    c = quote_identifier(con)
                ));
            }
            None => sql.push_str(&format!(
                "DROP INDEX {s}.{i}; CREATE UNIQUE INDEX {i} ON {table} ({});",
                col_list(&scoped),
                s = quote_identifier(&rel.schema),
                i = quote_identifier(&k.index)
            )),
        }
    }
    if sql.is_empty() && !keys.iter().any(|k| same_set(&k.columns, &scoped)) {
        let name = catalog::free_name(
            &rel.schema,
            &format!("{}_{}_tenancy_key", rel.name, cols.join("_")),
        );
        sql = format!(
            "ALTER TABLE {table} ADD CONSTRAINT {} UNIQUE ({});",
            quote_identifier(&name),
            col_list(&scoped)
        );
    }
    if !sql.is_empty() {
        Spi::run(&sql).or_bug("scoping a unique key");
    }
    drop_redundant_tenant_index(&rel, &entry);
}

/// Drops the tenant index protect() created once another index answers every lookup it
/// answered: same access method, its key columns (with their operator classes and
/// collations) a leading prefix of the other's, and the other valid and neither partial nor
/// on expressions. After scope_unique that is the scoped key, which leads with the tenant
/// column: keeping both would cost every write a second index for nothing. Only the index
/// named in the registry is ever dropped (never one the owner made), and the registry
/// forgets it, so unprotect() does not drop it again and protect() does not re-create one
/// while the key leads with the tenant column.
fn drop_redundant_tenant_index(rel: &Rel, entry: &protected_tables::Entry) {
    let Some(index) = &entry.index_name else {
        return;
    };
    let covered = crate::infra::spi::select_one::<bool>(
        "SELECT EXISTS (
             SELECT 1 FROM pg_catalog.pg_index mine
               JOIN pg_catalog.pg_class mc ON mc.oid OPERATOR(pg_catalog.=) mine.indexrelid
               JOIN pg_catalog.pg_index other ON other.indrelid OPERATOR(pg_catalog.=) mine.indrelid
                                              AND other.indexrelid OPERATOR(pg_catalog.<>) mine.indexrelid
               JOIN pg_catalog.pg_class oc ON oc.oid OPERATOR(pg_catalog.=) other.indexrelid
              WHERE mine.indrelid OPERATOR(pg_catalog.=) $1
                AND mc.relname OPERATOR(pg_catalog.=) $2::pg_catalog.name
                AND mine.indpred IS NULL AND mine.indexprs IS NULL
                AND oc.relam OPERATOR(pg_catalog.=) mc.relam
                AND other.indisvalid AND other.indpred IS NULL AND other.indexprs IS NULL
                AND other.indnkeyatts OPERATOR(pg_catalog.>=) mine.indnkeyatts
                AND (other.indkey::pg_catalog.int2[])[0:mine.indnkeyatts - 1]
                    OPERATOR(pg_catalog.=) (mine.indkey::pg_catalog.int2[])[0:mine.indnkeyatts - 1]
                AND (other.indclass::pg_catalog.oid[])[0:mine.indnkeyatts - 1]
                    OPERATOR(pg_catalog.=) (mine.indclass::pg_catalog.oid[])[0:mine.indnkeyatts - 1]
                AND (other.indcollation::pg_catalog.oid[])[0:mine.indnkeyatts - 1]
                    OPERATOR(pg_catalog.=) (mine.indcollation::pg_catalog.oid[])[0:mine.indnkeyatts - 1])",
        &[rel.oid.into(), index.as_str().into()],
    )
    .or_bug("comparing the tenant index with the scoped key")
        == Some(true);
    if !covered {
        return;
    }
    Spi::run(&format!(
        "DROP INDEX {}.{}",
        quote_identifier(&rel.schema),
        quote_identifier(index)
    ))
    .or_bug("dropping the redundant tenant index");
    // The registry is the extension owner's to write (see protect()).
    crate::infra::owner::as_extension_owner(|| {
        Spi::run_with_args(
            "UPDATE tenancy.protected_tables SET index_name = NULL
              WHERE tbl = $1::pg_catalog.oid::pg_catalog.regclass",
            &[rel.oid.into()],
        )
    })
    .or_bug("forgetting the dropped tenant index");
}

fn fk_action(code: &str, cols: &[String], on_delete: bool) -> String {
    match code {
        "r" => "RESTRICT".into(),
        "c" => "CASCADE".into(),
        // A composite key must not null or reset the tenant column with the reference.
        "n" if on_delete => format!("SET NULL ({})", col_list(cols)),
        "d" if on_delete => format!("SET DEFAULT ({})", col_list(cols)),
        "n" | "d" => errors::not_supported(
            "ON UPDATE SET NULL / SET DEFAULT cannot be kept on a tenant-scoped foreign key".into(),
            Some("change the foreign key's ON UPDATE action first"),
        ),
        _ => "NO ACTION".into(),
    }
}

/// Replaces the foreign key from `columns` to `ref_tbl(ref_columns)` (creating one if there is
/// none) with one on (tenant, columns) → (tenant, ref_columns): a row can then only reference
/// a row of its own tenant, and the error for a missing row is the same whether it exists in
/// another tenant or nowhere.
#[pg_extern(volatile, parallel_unsafe)]
fn _scope_foreign_key(
    tbl: pg_sys::Oid,
    columns: Vec<Option<String>>,
    ref_tbl: pg_sys::Oid,
    ref_columns: Option<Vec<Option<String>>>,
) {
    // Citus propagates the key's DDL to every shard whatever the caller set (review of
    // session 5: with citus.enable_ddl_propagation off the key reached no shard).
    crate::infra::spi::citus_ddl(|| scope_foreign_key(tbl, columns, ref_tbl, ref_columns))
}

fn scope_foreign_key(
    tbl: pg_sys::Oid,
    columns: Vec<Option<String>>,
    ref_tbl: pg_sys::Oid,
    ref_columns: Option<Vec<Option<String>>>,
) {
    let _own = OwnDdl::enter();
    let rel = catalog::relation(tbl);
    let target = catalog::relation(ref_tbl);
    let tenant = protected(&rel).protection.tenant_column;
    let ref_tenant = protected(&target).protection.tenant_column;
    let cols = checked_columns(&rel, columns);
    let ref_cols = match ref_columns {
        Some(rc) => checked_columns(&target, rc),
        None => {
            let pk: Vec<String> = catalog::primary_key_columns(&target)
                .into_iter()
                .filter(|c| c != &ref_tenant)
                .collect();
            if pk.is_empty() {
                errors::bad_argument(
                    format!(
                        "{} has no primary key; name ref_columns",
                        target.qualified()
                    ),
                    None,
                );
            }
            pk
        }
    };
    if cols.len() != ref_cols.len() {
        errors::bad_argument(
            "columns and ref_columns must have the same length".into(),
            None,
        );
    }
    if cols.contains(&tenant) || ref_cols.contains(&ref_tenant) {
        errors::bad_argument(
            "list the key's columns without the tenant columns".into(),
            None,
        );
    }
    let mut ref_scoped = vec![ref_tenant];
    ref_scoped.extend(ref_cols.iter().cloned());
    if !unique_keys(&target)
        .iter()
        .any(|k| same_set(&k.columns, &ref_scoped))
    {
        let name = catalog::free_name(
            &target.schema,
            &format!("{}_{}_tenancy_key", target.name, ref_cols.join("_")),
        );
        Spi::run(&format!(
            "ALTER TABLE {} ADD CONSTRAINT {} UNIQUE ({})",
            target.qualified(),
            quote_identifier(&name),
            col_list(&ref_scoped)
        ))
        .or_bug("adding the referenced tenant-scoped key");
    }
    let mut scoped = vec![tenant];
    scoped.extend(cols.iter().cloned());

    // Existing foreign keys on exactly these columns to exactly that table.
    let existing = Spi::connect(|c| {
        c.select(
            "SELECT k.conname::text, k.confdeltype::text, k.confupdtype::text,
                    ARRAY(SELECT a.attname::text FROM pg_catalog.unnest(k.conkey) WITH ORDINALITY u(n, ord)
                            JOIN pg_catalog.pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.n ORDER BY u.ord),
                    ARRAY(SELECT a.attname::text FROM pg_catalog.unnest(k.confkey) WITH ORDINALITY u(n, ord)
                            JOIN pg_catalog.pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = u.n ORDER BY u.ord)
               FROM pg_catalog.pg_constraint k
              WHERE k.contype = 'f' AND k.conrelid = $1 AND k.confrelid = $2 AND k.conparentid = 0",
            None,
            &[rel.oid.into(), target.oid.into()],
        )?
        .map(|r| {
            Ok((
                r.get::<String>(1)?.unwrap_or_default(),
                r.get::<String>(2)?.unwrap_or_default(),
                r.get::<String>(3)?.unwrap_or_default(),
                r.get::<Vec<String>>(4)?.unwrap_or_default(),
                r.get::<Vec<String>>(5)?.unwrap_or_default(),
            ))
        })
        .collect::<Result<Vec<_>, pgrx::spi::Error>>()
    })
    .or_bug("reading foreign keys");
    let table = rel.qualified();
    let references = format!(
        "REFERENCES {} ({})",
        target.qualified(),
        col_list(&ref_scoped)
    );
    let mut sql = String::new();
    for (name, del, upd, from, to) in &existing {
        if from == &scoped && to == &ref_scoped {
            return; // already scoped
        }
        if from == &cols && to == &ref_cols {
            sql.push_str(&format!(
                "ALTER TABLE {table} DROP CONSTRAINT {n}, ADD CONSTRAINT {n} FOREIGN KEY ({}) {references} ON DELETE {} ON UPDATE {};",
                col_list(&scoped),
                fk_action(del, &cols, true),
                fk_action(upd, &cols, false),
                n = quote_identifier(name)
            ));
        }
    }
    if sql.is_empty() {
        let name = catalog::free_name(
            &rel.schema,
            &format!("{}_{}_tenancy_fkey", rel.name, cols.join("_")),
        );
        sql = format!(
            "ALTER TABLE {table} ADD CONSTRAINT {} FOREIGN KEY ({}) {references};",
            quote_identifier(&name),
            col_list(&scoped)
        );
    }
    Spi::run(&sql).or_bug("scoping a foreign key");
}
