//! k-anonymity checks: how small is the smallest group of rows that share the same
//! quasi-identifiers?
//!
//! Both functions run with the caller's rights (STABLE, never SECURITY DEFINER), so row level
//! security and column privileges apply: an app role measures only the rows it can see.
//! Identifiers are checked against the catalog and quoted; nothing the caller passes is
//! spliced into SQL as written. The SQL-facing signatures (`regclass`, `name[]`) are thin
//! wrappers in sql/deid.sql.

use pgrx::prelude::*;
use pgrx::spi::{quote_identifier, quote_literal};
use pgrx::JsonB;

use crate::infra::errors;

/// jsonb_build_object takes at most 100 arguments: 50 key/value pairs.
const MAX_COLUMNS: usize = 32;

/// `schema.table` quoted, and the checked, quoted column list, in the caller's order.
fn target(tbl: pg_sys::Oid, columns: &[Option<String>]) -> (String, Vec<(String, String)>) {
    if columns.is_empty() {
        errors::bad_argument(
            "quasi_identifiers must name at least one column".into(),
            Some("for example ARRAY['region', 'age_band']"),
        );
    }
    if columns.len() > MAX_COLUMNS {
        errors::bad_argument(format!("at most {MAX_COLUMNS} quasi-identifiers"), None);
    }
    let mut names: Vec<&str> = Vec::with_capacity(columns.len());
    for c in columns {
        let Some(c) = c.as_deref() else {
            errors::bad_argument("quasi_identifiers must not contain NULL".into(), None)
        };
        if names.contains(&c) {
            errors::bad_argument(
                format!("quasi-identifier {} is listed twice", quote_identifier(c)),
                None,
            );
        }
        names.push(c);
    }
    let rel = crate::infra::catalog::relation_opt(tbl);
    let Some(rel) = rel else {
        errors::undefined_table(
            format!("relation with OID {} does not exist", tbl.to_u32()),
            None,
        )
    };
    if !matches!(rel.kind.as_str(), "r" | "p" | "v" | "m" | "f") {
        errors::bad_argument(
            format!(
                "{} is not a table, view or materialized view",
                quote_identifier(&rel.name)
            ),
            None,
        );
    }
    let existing = crate::infra::catalog::column_names(tbl);
    let cols = names
        .iter()
        .map(|n| {
            if !existing.iter().any(|e| e == n) {
                errors::undefined_column(
                    format!(
                        "column {} of {} does not exist",
                        quote_identifier(n),
                        quote_identifier(&rel.name)
                    ),
                    Some("quasi_identifiers are column names, one per array element"),
                );
            }
            (quote_identifier(n), quote_literal(n))
        })
        .collect();
    (rel.qualified(), cols)
}

fn group_by(cols: &[(String, String)]) -> String {
    cols.iter()
        .map(|(ident, _)| format!("t.{ident}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The size of the smallest equivalence class of `tbl` over the quasi-identifier columns (NULL
/// when the caller sees no rows). NULLs form a class of their own, as in GROUP BY.
#[pg_extern(stable, parallel_restricted)]
fn _k_anonymity(tbl: pg_sys::Oid, quasi_identifiers: Vec<Option<String>>) -> Option<i64> {
    let (table, cols) = target(tbl, &quasi_identifiers);
    let sql = format!(
        "SELECT pg_catalog.min(s.n) FROM (SELECT pg_catalog.count(*) AS n FROM {table} t GROUP BY {}) s",
        group_by(&cols)
    );
    crate::infra::spi::select_one::<i64>(&sql, &[])
        .unwrap_or_else(|e| errors::internal("measuring k-anonymity", e))
}

/// The equivalence classes of `tbl` with fewer than `k` rows: their quasi-identifier values as
/// a jsonb object, and their size; smallest first.
#[pg_extern(stable, parallel_restricted)]
fn _k_anonymity_report(
    tbl: pg_sys::Oid,
    quasi_identifiers: Vec<Option<String>>,
    k: i64,
) -> TableIterator<'static, (name!(class, JsonB), name!(class_size, i64))> {
    if k < 1 {
        errors::bad_argument("k must be at least 1".into(), None);
    }
    let (table, cols) = target(tbl, &quasi_identifiers);
    let object = cols
        .iter()
        .map(|(ident, lit)| format!("{lit}, t.{ident}"))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "SELECT pg_catalog.jsonb_build_object({object}), pg_catalog.count(*)
           FROM {table} t GROUP BY {}
         HAVING pg_catalog.count(*) OPERATOR(pg_catalog.<) $1
          ORDER BY 2, 1",
        group_by(&cols)
    );
    let rows = Spi::connect(|c| {
        c.select(&sql, None, &[k.into()])?
            .map(|r| Ok((r.get::<JsonB>(1)?, r.get::<i64>(2)?)))
            .collect::<Result<Vec<_>, pgrx::spi::Error>>()
    })
    .unwrap_or_else(|e| errors::internal("listing small equivalence classes", e));
    TableIterator::new(rows.into_iter().map(|(class, n)| {
        (
            class.unwrap_or(JsonB(serde_json::Value::Null)),
            n.unwrap_or(0),
        )
    }))
}
