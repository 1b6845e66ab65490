//! `tenancy.create_benchmark_view()`: pooled benchmarks that tenants can read but not take
//! apart.
//!
//! The view aggregates every tenant's rows of a protected table with the pooled guarded
//! aggregates and fixed groupings. It must read all tenants, so it is owned by the extension's
//! owner (a superuser, which row level security does not filter); it is a `security_barrier`
//! view, exposes only grouping columns and guarded results, and a caller's WHERE on it can
//! only filter whole groups after aggregation. The function itself is not SECURITY DEFINER:
//! it checks with the caller's own rights that the caller may read every column it names, and
//! switches to the owner only to create and register the view (as SECURITY DEFINER would,
//! restored on error by the transaction's abort).

use pgrx::prelude::*;
use pgrx::spi::quote_identifier;

use crate::infra::catalog;
use crate::infra::errors::{self, SpiOrBug};
use crate::infra::spi;
use crate::registry::protected_tables;

const MAX_GROUP_COLUMNS: usize = 16;
const MAX_MEASURES: usize = 32;

enum Measure {
    Count,
    Sum(String),
    Avg(String),
    Percentile(String, f64),
}

impl Measure {
    fn column(&self) -> Option<&str> {
        match self {
            Measure::Count => None,
            Measure::Sum(c) | Measure::Avg(c) | Measure::Percentile(c, _) => Some(c),
        }
    }

    fn output_name(&self) -> String {
        match self {
            Measure::Count => "count".into(),
            Measure::Sum(c) => format!("sum_{c}"),
            Measure::Avg(c) => format!("avg_{c}"),
            Measure::Percentile(c, f) => format!("p{}_{c}", fraction_label(*f)),
        }
    }
}

/// 0.5 → "50", 0.9 → "90", 0.125 → "12_5".
fn fraction_label(f: f64) -> String {
    let s = format!("{}", (f * 100.0 * 1000.0).round() / 1000.0);
    s.replace('.', "_")
}

/// `count`, `count(*)`, `sum(col)`, `avg(col)`, `percentile(col, 0.9)`; `col` is a column
/// name as stored (not quoted).
fn parse_measure(spec: &str) -> Measure {
    let bad = || -> ! {
        errors::bad_argument(
            format!("measure {} is not understood", errors::quoted(spec)),
            Some("write count, sum(column), avg(column) or percentile(column, 0.9)"),
        )
    };
    let s = spec.trim();
    if s.eq_ignore_ascii_case("count") || s.eq_ignore_ascii_case("count(*)") {
        return Measure::Count;
    }
    let Some((func, rest)) = s.split_once('(') else {
        bad()
    };
    let Some(inner) = rest.strip_suffix(')') else {
        bad()
    };
    let func = func.trim().to_ascii_lowercase();
    let mut parts = inner.split(',').map(str::trim);
    let col = parts
        .next()
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| bad());
    let arg = parts.next();
    if parts.next().is_some() {
        bad();
    }
    match (func.as_str(), arg) {
        ("sum", None) => Measure::Sum(col.into()),
        ("avg", None) => Measure::Avg(col.into()),
        ("percentile", Some(f)) => match f.parse::<f64>() {
            Ok(f) if (0.0..=1.0).contains(&f) => Measure::Percentile(col.into(), f),
            _ => bad(),
        },
        _ => bad(),
    }
}

struct Column {
    quoted: String,
    type_name: String,
}

fn column(source: pg_sys::Oid, name: &str, qname: &str) -> Column {
    let t = catalog::column_opt(source, name).map(|c| c.type_name);
    let Some(type_name) = t else {
        errors::undefined_column(
            format!(
                "column {} of {qname} does not exist",
                quote_identifier(name)
            ),
            None,
        )
    };
    let readable = spi::select_one::<bool>(
        "SELECT pg_catalog.has_column_privilege($1, $2, 'SELECT')",
        &[source.into(), name.into()],
    )
    .or_bug("checking column privileges")
    .unwrap_or(false);
    if !readable {
        errors::forbidden(
            format!(
                "permission denied for column {} of {qname}",
                quote_identifier(name)
            ),
            Some("a benchmark view may only use columns its creator may read"),
        );
    }
    Column {
        quoted: quote_identifier(name),
        type_name,
    }
}

/// The column as an argument of a guarded aggregate value, or refused.
fn value_expr(c: &Column, name: &str) -> String {
    match c.type_name.as_str() {
        "integer" | "bigint" | "numeric" | "double precision" => c.quoted.clone(),
        "smallint" => format!("CAST({} AS pg_catalog.int4)", c.quoted),
        "real" => format!("CAST({} AS pg_catalog.float8)", c.quoted),
        t => errors::bad_argument(
            format!(
                "column {} is {t}; measures take integer, bigint, numeric or double precision",
                quote_identifier(name)
            ),
            None,
        ),
    }
}

fn contributor_expr(c: &Column, name: &str) -> String {
    match c.type_name.as_str() {
        "text" | "bigint" | "uuid" => c.quoted.clone(),
        "smallint" | "integer" => format!("CAST({} AS pg_catalog.int8)", c.quoted),
        t if t.starts_with("character") => format!("CAST({} AS pg_catalog.text)", c.quoted),
        t => errors::bad_argument(
            format!(
                "contributor column {} is {t}; contributors are text, bigint, integer or uuid",
                quote_identifier(name)
            ),
            None,
        ),
    }
}

// The registered definition is printed by pg_get_viewdef() under the search_path in force:
// pinned, so that check() (which prints it under the same path) recognises an intact view
// however an admin called this.
#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn _create_benchmark_view(
    name: &str,
    source: pg_sys::Oid,
    group_by: Vec<Option<String>>,
    measures: Vec<Option<String>>,
    contributor: &str,
    include_suppressed: bool,
) -> String {
    let Some(src) = catalog::relation_opt(source) else {
        errors::undefined_table("the source table does not exist".into(), None)
    };
    let (qsource, source_schema) = (src.qualified(), src.schema.clone());
    let tenant_column = protected_tables::entry(source).map(|e| e.protection.tenant_column);
    let Some(tenant_column) = tenant_column else {
        errors::bad_argument(
            format!("{qsource} is not protected"),
            Some("benchmark views pool protected tables; run tenancy.protect() on it first"),
        )
    };
    // Citus runs the shard queries of a view as the session's user, not as the view's owner:
    // on a distributed table the workers apply the reader's row security, so every cell would
    // pool the reader's own rows only, and on a reference table the reader has no right on
    // the placement at all. A benchmark must see every tenant, so it is refused rather than
    // made to look empty (docs/scale-out.md).
    if catalog::citus_table(&src.schema, &src.name) {
        errors::not_supported(
            format!("a benchmark view cannot pool {qsource}, a Citus distributed or reference table"),
            Some("Citus reads the shards as the reader, whose row security shows one tenant; pool the table with the guarded aggregates in a SECURITY DEFINER function owned by a role that reads every tenant (docs/scale-out.md)"),
        );
    }

    // The view's name: schema-qualified, or in the source's schema.
    let parts = spi::select_one::<Vec<String>>("SELECT pg_catalog.parse_ident($1)", &[name.into()])
        .or_bug("parsing the view name")
        .unwrap_or_default();
    let (schema, view) = match parts.as_slice() {
        [v] => (source_schema.clone(), v.clone()),
        [s, v] => (s.clone(), v.clone()),
        _ => errors::bad_argument(
            "name must be view or schema.view".into(),
            Some("for example 'benchmarks.salary_by_role'"),
        ),
    };
    // Names starting with pg_ are the system's (pg_catalog, pg_toast, pg_temp_N): a view in a
    // temporary schema would vanish with its session, leave its registry row behind, and its
    // name would later resolve to whatever another backend creates there.
    if schema.starts_with("pg_") {
        errors::not_supported(
            format!(
                "a benchmark view cannot be created in schema {}",
                quote_identifier(&schema)
            ),
            Some("create it in an ordinary schema"),
        );
    }
    let qview = format!("{}.{}", quote_identifier(&schema), quote_identifier(&view));
    let may_create = spi::select_one::<bool>(
        "SELECT CASE WHEN pg_catalog.to_regnamespace(pg_catalog.quote_ident($1)) IS NULL THEN NULL
                     ELSE pg_catalog.has_schema_privilege(
                              pg_catalog.to_regnamespace(pg_catalog.quote_ident($1))::pg_catalog.oid, 'CREATE') END",
        &[schema.as_str().into()],
    )
    .or_bug("checking the view's schema");
    match may_create {
        None => errors::not_found(
            format!("schema {} does not exist", quote_identifier(&schema)),
            None,
        ),
        Some(false) => errors::forbidden(
            format!(
                "permission denied to create in schema {}",
                quote_identifier(&schema)
            ),
            None,
        ),
        Some(true) => {}
    }
    let exists = spi::select_one::<bool>(
        "SELECT pg_catalog.to_regclass($1) IS NOT NULL",
        &[qview.as_str().into()],
    )
    .or_bug("checking the view's name")
    .unwrap_or(false);
    if exists {
        errors::duplicate(format!("relation {qview} already exists"), None);
    }

    if group_by.len() > MAX_GROUP_COLUMNS || measures.is_empty() || measures.len() > MAX_MEASURES {
        errors::bad_argument(
            format!("a benchmark view has at most {MAX_GROUP_COLUMNS} grouping columns and 1 to {MAX_MEASURES} measures"),
            None,
        );
    }
    let mut groups = Vec::new();
    let mut group_names: Vec<String> = Vec::new();
    for g in &group_by {
        let Some(g) = g.as_deref() else {
            errors::bad_argument("group_by must not contain NULL".into(), None)
        };
        if g == tenant_column {
            errors::bad_argument(
                format!("cannot group by the tenant column {}", quote_identifier(g)),
                Some("a benchmark pools tenants; grouping by tenant would show each tenant alone"),
            );
        }
        if g == "status" || g.starts_with("_tenancy_") {
            errors::bad_argument(
                format!(
                    "cannot group by a column named {}",
                    quote_identifier(errors::user_input(g))
                ),
                Some("the view's status column and its internal columns use these names"),
            );
        }
        groups.push(column(source, g, &qsource).quoted);
        if !group_names.iter().any(|n| n == g) {
            group_names.push(g.to_string());
        }
    }
    let contrib = contributor_expr(&column(source, contributor, &qsource), contributor);
    let tenant = format!(
        "CAST({} AS pg_catalog.text)",
        column(source, &tenant_column, &qsource).quoted
    );
    // Every measure is computed in the inner query under an internal name, with the status of
    // the rows it counts; the outer query decides once per cell and shows every measure of a
    // cell or none (see `cell_status`).
    let mut inner: Vec<String> = Vec::new();
    let mut outer: Vec<String> = Vec::new();
    let mut checks: Vec<String> = Vec::new();
    let mut names: Vec<String> = Vec::new();
    for (i, m) in measures.iter().enumerate() {
        let Some(m) = m.as_deref() else {
            errors::bad_argument("measures must not contain NULL".into(), None)
        };
        let m = parse_measure(m);
        let value = m
            .column()
            .map(|c| value_expr(&column(source, c, &qsource), c));
        let out = m.output_name();
        if names.contains(&out) || groups.contains(&quote_identifier(&out)) || out == "status" {
            errors::bad_argument(
                format!(
                    "two output columns would be named {}",
                    quote_identifier(errors::user_input(&out))
                ),
                None,
            );
        }
        let (expr, why_null) = match (&m, &value) {
            (Measure::Count, _) => (
                format!("tenancy.guarded_count({contrib}, {tenant})"),
                "too_few_contributors",
            ),
            (Measure::Sum(_), Some(v)) => (
                format!("tenancy.guarded_sum({v}, {contrib}, {tenant})"),
                "dominated",
            ),
            (Measure::Avg(_), Some(v)) => (
                format!("tenancy.guarded_avg({v}, {contrib}, {tenant})"),
                "dominated",
            ),
            (Measure::Percentile(_, f), Some(v)) => (
                format!(
                    "tenancy.guarded_percentile({v}, CAST({f:?} AS pg_catalog.float8), {contrib}, {tenant})"
                ),
                "too_few_contributors",
            ),
            _ => unreachable!("measures with a column have a value"),
        };
        inner.push(format!("{expr} AS _tenancy_m{i}"));
        if let Some(v) = &value {
            inner.push(format!(
                "tenancy.guard_status({contrib}, {tenant}) FILTER (WHERE {v} IS NOT NULL) AS _tenancy_s{i}"
            ));
        }
        // The other measures are NULL exactly when suppressed; their reason is the status of
        // the rows they count (those with a value) or, when those pass, the rule only they
        // apply (dominance by magnitude for sum and avg). A percentile NULL only because it
        // would stand at the edge of the crowd blanks itself alone: no other measure (count,
        // sum, average, another fraction) gives back a minimum or a maximum.
        checks.push(match (&m, &value) {
            (Measure::Percentile(..), _) => format!(
                "WHEN a._tenancy_s{i} OPERATOR(pg_catalog.<>) 'ok' THEN a._tenancy_s{i}"
            ),
            (_, Some(_)) => format!(
                "WHEN a._tenancy_m{i} IS NULL THEN COALESCE(NULLIF(a._tenancy_s{i}, 'ok'), '{why_null}')"
            ),
            (_, None) => format!("WHEN a._tenancy_m{i} IS NULL THEN '{why_null}'"),
        });
        outer.push(format!(
            "CASE WHEN c._tenancy_status OPERATOR(pg_catalog.=) 'ok' THEN c._tenancy_m{i} END AS {}",
            quote_identifier(&out)
        ));
        names.push(out);
    }
    let status = format!("tenancy.guard_status({contrib}, {tenant})");
    let (inner_groups, outer_groups, group_clause) = if groups.is_empty() {
        (String::new(), String::new(), String::new())
    } else {
        (
            format!("{}, ", groups.join(", ")),
            format!(
                "{}, ",
                groups
                    .iter()
                    .map(|g| format!("c.{g}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            format!(" GROUP BY {}", groups.join(", ")),
        )
    };
    let filter = if include_suppressed {
        String::new()
    } else {
        " WHERE c._tenancy_status OPERATOR(pg_catalog.=) 'ok'".to_string()
    };
    // cell_status: the first reason any measure of the cell is suppressed. One suppressed
    // measure blanks the whole cell, so that no shown measure rebuilds a hidden one (an
    // average times the count is the sum).
    let sql = format!(
        "CREATE VIEW {qview} WITH (security_barrier = true) AS \
         SELECT {outer_groups}{}, c._tenancy_status AS status FROM (\
           SELECT a.*, CASE WHEN a._tenancy_s OPERATOR(pg_catalog.<>) 'ok' THEN a._tenancy_s {} ELSE 'ok' END AS _tenancy_status FROM (\
             SELECT {inner_groups}{}, {status} AS _tenancy_s FROM {qsource}{group_clause}) a) c{filter}",
        outer.join(", "),
        checks.join(" "),
        inner.join(", "),
    );
    // The caller's name, read before switching identity.
    let caller = crate::infra::roles::current_user_name();
    group_names.sort();
    crate::infra::owner::as_extension_owner(|| {
        refuse_other_groupings(source, &group_names);
        Spi::run(&sql).or_bug("creating the benchmark view");
        Spi::run_with_args(
            "INSERT INTO tenancy.benchmark_views (view_name, source, definition, created_by, group_by)
             VALUES ($1, $2, pg_catalog.pg_get_viewdef(pg_catalog.to_regclass($1)), $3, $4)",
            &[
                qview.as_str().into(),
                qsource.as_str().into(),
                caller.as_str().into(),
                group_names.clone().into(),
            ],
        )
        .or_bug("registering the benchmark view");
        Spi::run(&format!(
            "GRANT SELECT ON {qview} TO {} WITH GRANT OPTION",
            quote_identifier(&caller)
        ))
        .or_bug("granting the benchmark view");
    });
    qview
}

/// Complementary disclosure: two benchmark views over the same rows with different groupings
/// share a margin (the totals over the columns they have in common, at least the grand total),
/// so a cell one view hides can be computed from the other view's cells minus the cells the
/// first shows. Within one view the cells are disjoint and no margin is shown, so the only
/// enforceable rule is at creation: every benchmark view over one table (or one partition
/// tree: a partition's cells are parts of its parent's) uses the same table and the same set
/// of grouping columns. Serialised by a lock so two admins cannot race past it.
fn refuse_other_groupings(source: pg_sys::Oid, group_names: &[String]) {
    Spi::run("LOCK TABLE tenancy.benchmark_views IN SHARE ROW EXCLUSIVE MODE")
        .or_bug("locking the benchmark views");
    let other = crate::infra::spi::select_row(
        "SELECT b.view_name FROM tenancy.benchmark_views b
          WHERE pg_catalog.to_regclass(b.source) IS NOT NULL
            AND COALESCE(pg_catalog.pg_partition_root(pg_catalog.to_regclass(b.source)),
                                    pg_catalog.to_regclass(b.source))
                OPERATOR(pg_catalog.=)
                COALESCE(pg_catalog.pg_partition_root($1::pg_catalog.regclass), $1::pg_catalog.regclass)
            AND (pg_catalog.to_regclass(b.source) OPERATOR(pg_catalog.<>) $1::pg_catalog.regclass
                 OR b.group_by IS NULL
                 OR NOT (b.group_by OPERATOR(pg_catalog.@>) $2 AND b.group_by OPERATOR(pg_catalog.<@) $2))
          ORDER BY b.view_name LIMIT 1",
        &[source.into(), group_names.to_vec().into()],
        |r| r.get::<String>(1),
    )
    .or_bug("reading the benchmark views");
    if let Some(Some(other)) = other {
        errors::not_supported(
            format!(
                "benchmark view {} already pools these rows with another grouping",
                errors::user_input(&other)
            ),
            Some("a second grouping of the same rows would let a hidden cell be computed from the other view's totals (complementary disclosure); group by the same columns as the existing view, or drop it first with tenancy.drop_benchmark_view()"),
        );
    }
}

/// Drops a view made by create_benchmark_view (the caller does not own it) and forgets it.
#[pg_extern(volatile, parallel_unsafe)]
fn _drop_benchmark_view(view: pg_sys::Oid) {
    let qview = spi::select_one::<String>(
        "SELECT b.view_name FROM tenancy.benchmark_views b
          WHERE pg_catalog.to_regclass(b.view_name) OPERATOR(pg_catalog.=) $1",
        &[view.into()],
    )
    .or_bug("reading the benchmark views");
    let Some(qview) = qview else {
        errors::not_found(
            "the view is not a benchmark view made by tenancy.create_benchmark_view()".into(),
            None,
        )
    };
    // The name to drop is built from the catalog, not pasted from the registry's text.
    let target = catalog::relation_opt(view)
        .map(|rel| rel.qualified())
        .unwrap_or_else(|| errors::internal("dropping the benchmark view", "no such relation"));
    crate::infra::owner::as_extension_owner(|| {
        Spi::run(&format!("DROP VIEW {target}")).or_bug("dropping the benchmark view");
        Spi::run_with_args(
            "DELETE FROM tenancy.benchmark_views WHERE view_name OPERATOR(pg_catalog.=) $1",
            &[qview.as_str().into()],
        )
        .or_bug("unregistering the benchmark view");
    });
}
