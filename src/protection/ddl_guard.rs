//! Event-trigger side of protection: the DDL guard, and protection on arrival of new tables
//! and partitions.
//!
//! The guard checks invariants *after* each DDL command (ddl_command_end, and sql_drop for
//! drops) rather than parsing commands: whatever route a change takes (ALTER TABLE, ALTER
//! POLICY, a rename, a rule), a protected table must still be forced under RLS with its own
//! isolation policy unchanged, no extra permissive policy, no rule, and the tenant column
//! with its type. With `tenancy.ddl_guard = error` the command is rolled back.
//!
//! Only a command that *adds* a violation is refused: each table's registry row keeps the
//! violations it had after the last command (`guard_state`). protect() records none. A row
//! restored by pg_restore arrives with an unknown state (a trigger clears it), so a restore,
//! which rebuilds RLS and policies one command at a time after the registry data, only ever
//! improves the table and is never refused half-way, which would leave tables without RLS.

use pgrx::prelude::*;
use pgrx::spi::quote_identifier;

use crate::infra::catalog::{self, Rel};
use crate::infra::errors::{self, SpiOrBug};
use crate::infra::gucs::{self, DdlGuard};
use crate::infra::spi;
use crate::protection::own_ddl::{self, FEATURE_POLICY, ISOLATION_POLICY, SHARED_POLICY};
use crate::protection::protect;
use crate::registry::protected_tables::{self, Entry, Protection};

struct PolicyRow {
    name: String,
    permissive: bool,
    cmd: String,
    public: bool,
    qual: Option<String>,
    check: Option<String>,
}

fn policies(rel_oid: pg_sys::Oid) -> Vec<PolicyRow> {
    Spi::connect(|c| {
        c.select(
            "SELECT polname::text, polpermissive, polcmd::text, polroles = '{0}'::pg_catalog.oid[],
                    pg_catalog.pg_get_expr(polqual, polrelid), pg_catalog.pg_get_expr(polwithcheck, polrelid)
               FROM pg_catalog.pg_policy WHERE polrelid = $1 ORDER BY polname",
            None,
            &[rel_oid.into()],
        )?
        .map(|r| {
            Ok(PolicyRow {
                name: r.get::<String>(1)?.unwrap_or_default(),
                permissive: r.get::<bool>(2)?.unwrap_or(true),
                cmd: r.get::<String>(3)?.unwrap_or_default(),
                public: r.get::<bool>(4)?.unwrap_or(false),
                qual: r.get::<String>(5)?,
                check: r.get::<String>(6)?,
            })
        })
        .collect::<Result<Vec<_>, pgrx::spi::Error>>()
    })
    .or_bug("reading pg_policy")
}

/// Everything about `rel` that no longer matches its protection, as (stable code, message).
fn violations(rel: &Rel, e: &Entry) -> Vec<(String, String)> {
    let mut v = Vec::new();
    let (rls, force) = Spi::connect(|c| {
        let t = c.select(
            "SELECT relrowsecurity, relforcerowsecurity FROM pg_catalog.pg_class WHERE oid = $1",
            Some(1),
            &[rel.oid.into()],
        )?;
        let r = t.first();
        Ok::<_, pgrx::spi::Error>((
            r.get::<bool>(1)?.unwrap_or(false),
            r.get::<bool>(2)?.unwrap_or(false),
        ))
    })
    .or_bug("reading pg_class");
    if !rls {
        v.push((
            "rls_disabled".into(),
            "row level security is disabled".to_string(),
        ));
    }
    if !force {
        v.push((
            "rls_not_forced".into(),
            "row level security is no longer forced (the owner would bypass it)".to_string(),
        ));
    }
    let pols = policies(rel.oid);
    match pols.iter().find(|p| p.name == ISOLATION_POLICY) {
        None => v.push((
            "isolation_policy_gone".into(),
            format!("the isolation policy {ISOLATION_POLICY} is gone"),
        )),
        Some(p) => {
            let same = p.permissive
                && p.cmd == "*"
                && p.public
                && p.qual.as_deref() == Some(e.isolation_qual.as_str())
                && p.check.as_deref() == Some(e.isolation_qual.as_str());
            if !same {
                v.push((
                    "isolation_policy_altered".into(),
                    format!("the isolation policy {ISOLATION_POLICY} was altered"),
                ));
            }
        }
    }
    if let Some(f) = &e.feature_qual {
        // The whole policy as protect() made it: restrictive, FOR ALL, TO PUBLIC, the same
        // USING and the same WITH CHECK (a row written before the check was recorded expects
        // none but the USING's).
        let check = e.feature_check.as_deref().unwrap_or(f.as_str());
        let ok = pols.iter().any(|p| {
            p.name == FEATURE_POLICY
                && !p.permissive
                && p.cmd == "*"
                && p.public
                && p.qual.as_deref() == Some(f.as_str())
                && p.check.as_deref().unwrap_or(f.as_str()) == check
        });
        if !ok {
            v.push((
                "feature_policy".into(),
                format!("the entitlement policy {FEATURE_POLICY} is gone or altered"),
            ));
        }
    }
    for p in pols
        .iter()
        .filter(|p| p.permissive && p.name != ISOLATION_POLICY)
    {
        let ours = p.name == SHARED_POLICY
            && p.cmd == "r"
            && e.protection
                .shared_column
                .as_ref()
                .is_some_and(|s| p.qual.as_deref() == Some(quote_identifier(s).as_str()));
        if !ours {
            v.push((
                format!("permissive:{}", p.name),
                format!(
                    "permissive policy {} would widen what tenants see (add it AS RESTRICTIVE instead)",
                    quote_identifier(&p.name)
                ),
            ));
        }
    }
    let rules = Spi::connect(|c| {
        c.select(
            "SELECT rulename::text FROM pg_catalog.pg_rewrite WHERE ev_class = $1 AND rulename <> '_RETURN'",
            None,
            &[rel.oid.into()],
        )?
        .map(|r| r.get::<String>(1))
        .collect::<Result<Vec<_>, _>>()
    })
    .or_bug("reading pg_rewrite");
    for r in rules.into_iter().flatten() {
        v.push((
            format!("rule:{r}"),
            format!(
                "rule {} rewrites queries around row level security",
                quote_identifier(&r)
            ),
        ));
    }
    for (parent_oid, parent) in inheritance_parents(rel.oid) {
        let same = protected_tables::entry(parent_oid)
            .is_some_and(|pe| pe.protection.tenant_column == e.protection.tenant_column);
        if !same {
            v.push((
                format!("inherits:{parent}"),
                format!(
                    "it inherits from {parent}, which is not protected on the same column: a query on {parent} would read every tenant's rows of this table"
                ),
            ));
        }
    }
    for (what, function) in owner_code(rel.oid) {
        v.push((
            format!("owner_code:{what}:{function}"),
            format!(
                "{what} calls {function}, which is neither built in nor part of an extension: it would run over every tenant's rows"
            ),
        ));
    }
    match catalog::column_opt(rel.oid, &e.protection.tenant_column) {
        None => v.push((
            "tenant_column_gone".into(),
            format!(
                "the tenant column {} is gone",
                quote_identifier(&e.protection.tenant_column)
            ),
        )),
        Some(c) if c.type_sql != e.column_type => v.push((
            "tenant_column_type".into(),
            format!(
                "the tenant column {} changed type from {} to {}",
                quote_identifier(&e.protection.tenant_column),
                e.column_type,
                c.type_sql
            ),
        )),
        Some(_) => {}
    }
    v
}

const FOREIGN_PARTITION: &str = "a foreign table cannot be a partition of a protected table: it carries no row level security, so every tenant's rows in it are readable by querying it directly, and are stored where its server's owner reads them";

/// Foreign tables anywhere below a partitioned table, as quoted names.
fn foreign_partitions(oid: pg_sys::Oid) -> Vec<String> {
    Spi::connect(|c| {
        c.select(
            "SELECT pg_catalog.format('%I.%I', n.nspname, k.relname)
               FROM pg_catalog.pg_partition_tree($1) t
               JOIN pg_catalog.pg_class k ON k.oid OPERATOR(pg_catalog.=) t.relid
               JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) k.relnamespace
              WHERE k.relkind OPERATOR(pg_catalog.=) 'f'
              ORDER BY 1",
            None,
            &[oid.into()],
        )?
        .map(|r| r.get::<String>(1))
        .collect::<Result<Vec<_>, _>>()
    })
    .or_bug("listing foreign partitions")
    .into_iter()
    .flatten()
    .collect()
}

/// Inheritance parents (not partition parents) of a table, as (oid, quoted name).
fn inheritance_parents(oid: pg_sys::Oid) -> Vec<(pg_sys::Oid, String)> {
    Spi::connect(|c| {
        c.select(
            "SELECT i.inhparent, pg_catalog.format('%I.%I', n.nspname, pc.relname)
               FROM pg_catalog.pg_inherits i
               JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) i.inhrelid
               JOIN pg_catalog.pg_class pc ON pc.oid OPERATOR(pg_catalog.=) i.inhparent
               JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) pc.relnamespace
              WHERE i.inhrelid OPERATOR(pg_catalog.=) $1 AND NOT c.relispartition
              ORDER BY 2",
            None,
            &[oid.into()],
        )?
        .map(|r| Ok((r.get::<pg_sys::Oid>(1)?, r.get::<String>(2)?)))
        .collect::<Result<Vec<_>, pgrx::spi::Error>>()
    })
    .or_bug("reading pg_inherits")
    .into_iter()
    .filter_map(|(o, n)| Some((o?, n?)))
    .collect()
}

/// Expressions stored on the table that evaluate a function over its rows regardless of
/// row level security (constraints when validated and on every write, index expressions and
/// predicates on every write and rebuild, generated columns, extended statistics at ANALYZE,
/// policies before or beside the isolation predicate; the check constraints of domains, the
/// subtype_diff/canonical functions of ranges and the casts of user-defined types that its
/// columns or those expressions are built from), and the functions they call that are
/// the table owner's (or anyone's) code: not in pg_catalog, not part of an extension, not
/// owned by a superuser. Operators count through their function. As (what, function).
fn owner_code(oid: pg_sys::Oid) -> Vec<(String, String)> {
    Spi::connect(|c| {
        c.select(
            "WITH RECURSIVE coltype(attname, typid) AS (
                 SELECT a.attname, a.atttypid FROM pg_catalog.pg_attribute a
                  WHERE a.attrelid OPERATOR(pg_catalog.=) $1 AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped
                 UNION
                 -- what a column's type is built from: domain bases, array elements, range
                 -- subtypes, a multirange's range, a composite's attributes
                 SELECT ct.attname, nx.typid FROM coltype ct CROSS JOIN LATERAL (
                     SELECT CASE WHEN t.typtype OPERATOR(pg_catalog.=) 'd' THEN t.typbasetype ELSE t.typelem END AS typid
                       FROM pg_catalog.pg_type t
                      WHERE t.oid OPERATOR(pg_catalog.=) ct.typid AND (t.typtype OPERATOR(pg_catalog.=) 'd' OR t.typelem OPERATOR(pg_catalog.<>) 0::pg_catalog.oid)
                     UNION ALL
                     SELECT r.rngsubtype FROM pg_catalog.pg_range r WHERE r.rngtypid OPERATOR(pg_catalog.=) ct.typid
                     UNION ALL
                     SELECT r.rngtypid FROM pg_catalog.pg_range r WHERE r.rngmultitypid OPERATOR(pg_catalog.=) ct.typid
                     UNION ALL
                     SELECT a.atttypid FROM pg_catalog.pg_type t
                       JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) t.typrelid AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped
                      WHERE t.oid OPERATOR(pg_catalog.=) ct.typid AND t.typtype OPERATOR(pg_catalog.=) 'c') nx
                  WHERE nx.typid OPERATOR(pg_catalog.<>) 0::pg_catalog.oid
             ), obj(classid, objid, what) AS (
                 SELECT 'pg_catalog.pg_constraint'::pg_catalog.regclass, k.oid, pg_catalog.format('constraint %I', k.conname)
                   FROM pg_catalog.pg_constraint k WHERE k.conrelid OPERATOR(pg_catalog.=) $1
                 UNION ALL
                 SELECT 'pg_catalog.pg_class'::pg_catalog.regclass, i.indexrelid, pg_catalog.format('index %I', ic.relname)
                   FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class ic ON ic.oid OPERATOR(pg_catalog.=) i.indexrelid
                  WHERE i.indrelid OPERATOR(pg_catalog.=) $1
                 UNION ALL
                 SELECT 'pg_catalog.pg_attrdef'::pg_catalog.regclass, d.oid, pg_catalog.format('generated column %I', a.attname)
                   FROM pg_catalog.pg_attrdef d
                   JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) d.adrelid AND a.attnum OPERATOR(pg_catalog.=) d.adnum
                  WHERE d.adrelid OPERATOR(pg_catalog.=) $1 AND a.attgenerated OPERATOR(pg_catalog.<>) ''
                 UNION ALL
                 SELECT 'pg_catalog.pg_policy'::pg_catalog.regclass, p.oid, pg_catalog.format('policy %I', p.polname)
                   FROM pg_catalog.pg_policy p WHERE p.polrelid OPERATOR(pg_catalog.=) $1
                 UNION ALL
                 SELECT 'pg_catalog.pg_statistic_ext'::pg_catalog.regclass, s.oid, pg_catalog.format('statistics %I', s.stxname)
                   FROM pg_catalog.pg_statistic_ext s WHERE s.stxrelid OPERATOR(pg_catalog.=) $1
                 UNION ALL
                 SELECT 'pg_catalog.pg_constraint'::pg_catalog.regclass, k.oid,
                        pg_catalog.format('the domain %s of column %I', k.contypid::pg_catalog.regtype, ct.attname)
                   FROM coltype ct JOIN pg_catalog.pg_constraint k ON k.contypid OPERATOR(pg_catalog.=) ct.typid
             ), dtypes(what, typid) AS (
                 -- Types an expression names (a cast to a domain, a domain array): a domain's
                 -- CHECK runs wherever a value is cast to it, so its functions are the
                 -- expression's too; followed through base and element types and through
                 -- types the domain's own constraints name.
                 SELECT o.what, d.refobjid FROM obj o
                   JOIN pg_catalog.pg_depend d ON d.classid OPERATOR(pg_catalog.=) o.classid AND d.objid OPERATOR(pg_catalog.=) o.objid
                  WHERE d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_type'::pg_catalog.regclass
                 UNION
                 SELECT dt.what, nx.typid FROM dtypes dt CROSS JOIN LATERAL (
                     SELECT CASE WHEN t.typtype OPERATOR(pg_catalog.=) 'd' THEN t.typbasetype ELSE t.typelem END AS typid
                       FROM pg_catalog.pg_type t
                      WHERE t.oid OPERATOR(pg_catalog.=) dt.typid AND (t.typtype OPERATOR(pg_catalog.=) 'd' OR t.typelem OPERATOR(pg_catalog.<>) 0::pg_catalog.oid)
                     UNION ALL
                     SELECT r.rngsubtype FROM pg_catalog.pg_range r WHERE r.rngtypid OPERATOR(pg_catalog.=) dt.typid
                     UNION ALL
                     SELECT r.rngtypid FROM pg_catalog.pg_range r WHERE r.rngmultitypid OPERATOR(pg_catalog.=) dt.typid
                     UNION ALL
                     SELECT a.atttypid FROM pg_catalog.pg_type t
                       JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) t.typrelid AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped
                      WHERE t.oid OPERATOR(pg_catalog.=) dt.typid AND t.typtype OPERATOR(pg_catalog.=) 'c'
                     UNION ALL
                     SELECT d.refobjid FROM pg_catalog.pg_constraint k
                       JOIN pg_catalog.pg_depend d ON d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_constraint'::pg_catalog.regclass
                                                  AND d.objid OPERATOR(pg_catalog.=) k.oid
                                                  AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_type'::pg_catalog.regclass
                      WHERE k.contypid OPERATOR(pg_catalog.=) dt.typid) nx
                  WHERE nx.typid OPERATOR(pg_catalog.<>) 0::pg_catalog.oid
             ), alltypes(what, typid) AS (
                 SELECT pg_catalog.format('the type %s of column %I', ct.typid::pg_catalog.regtype, ct.attname), ct.typid
                   FROM coltype ct
                 UNION
                 SELECT pg_catalog.format('%s (through the type %s)', dt.what, dt.typid::pg_catalog.regtype), dt.typid
                   FROM dtypes dt
             ), obj2(classid, objid, what) AS (
                 SELECT o.classid, o.objid, o.what FROM obj o
                 UNION ALL
                 SELECT 'pg_catalog.pg_constraint'::pg_catalog.regclass, k.oid,
                        pg_catalog.format('%s (through the domain %s)', dt.what, k.contypid::pg_catalog.regtype)
                   FROM dtypes dt JOIN pg_catalog.pg_constraint k ON k.contypid OPERATOR(pg_catalog.=) dt.typid
             ), called(what, fn) AS (
                 SELECT o.what, d.refobjid FROM obj2 o
                   JOIN pg_catalog.pg_depend d ON d.classid OPERATOR(pg_catalog.=) o.classid AND d.objid OPERATOR(pg_catalog.=) o.objid
                  WHERE d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass
                 UNION ALL
                 SELECT o.what, op.oprcode::pg_catalog.oid FROM obj2 o
                   JOIN pg_catalog.pg_depend d ON d.classid OPERATOR(pg_catalog.=) o.classid AND d.objid OPERATOR(pg_catalog.=) o.objid
                   JOIN pg_catalog.pg_operator op ON op.oid OPERATOR(pg_catalog.=) d.refobjid
                  WHERE d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_operator'::pg_catalog.regclass
                 UNION ALL
                 -- a range type's subtype_diff and canonical functions (GiST calls them on
                 -- every insert and split, over every tenant's entries)
                 SELECT at.what, v.fn FROM alltypes at
                   JOIN pg_catalog.pg_range r ON r.rngtypid OPERATOR(pg_catalog.=) at.typid
                  CROSS JOIN LATERAL (VALUES (r.rngsubdiff::pg_catalog.oid), (r.rngcanonical::pg_catalog.oid)) v(fn)
                 UNION ALL
                 -- casts to or from a user-defined type the table is built from
                 SELECT at.what, k.castfunc FROM alltypes at
                   JOIN pg_catalog.pg_cast k ON k.casttarget OPERATOR(pg_catalog.=) at.typid
                                            OR k.castsource OPERATOR(pg_catalog.=) at.typid
                  WHERE at.typid OPERATOR(pg_catalog.>=) 16384::pg_catalog.oid
             )
             SELECT DISTINCT c.what, f.oid::pg_catalog.regprocedure::pg_catalog.text
               FROM called c JOIN pg_catalog.pg_proc f ON f.oid OPERATOR(pg_catalog.=) c.fn
              WHERE f.pronamespace OPERATOR(pg_catalog.<>) 'pg_catalog'::pg_catalog.regnamespace
                AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend e
                                 WHERE e.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass
                                   AND e.objid OPERATOR(pg_catalog.=) f.oid AND e.deptype OPERATOR(pg_catalog.=) 'e')
                AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles r
                                 WHERE r.oid OPERATOR(pg_catalog.=) f.proowner AND r.rolsuper)
              ORDER BY 1, 2",
            None,
            &[oid.into()],
        )?
        .map(|r| Ok((r.get::<String>(1)?, r.get::<String>(2)?)))
        .collect::<Result<Vec<_>, pgrx::spi::Error>>()
    })
    .or_bug("reading the table's expressions")
    .into_iter()
    .filter_map(|(w, f)| Some((w?, f?)))
    .collect()
}

/// Protects a table that arrived under a protected parent (a partition created or attached,
/// or a table in an enrolled schema) and refuses what it brought along that protect() does
/// not remove: its own permissive policies and rules, owner code over its rows, an
/// unprotected inheritance parent. The guard's state starts from what it finds.
fn protect_arrival(oid: pg_sys::Oid, p: &Protection) {
    protect::protect_tree(oid, p);
    let root = catalog::relation(oid);
    for rel in catalog::with_partitions(&root) {
        let Some(e) = protected_tables::entry(rel.oid) else {
            continue;
        };
        let now = violations(&rel, &e);
        let msgs: Vec<String> = now.iter().map(|(_, m)| m.clone()).collect();
        report(&rel.qualified(), &msgs);
        record_state(rel.oid, &now);
    }
}

fn report(table: &str, problems: &[String]) {
    if problems.is_empty() {
        return;
    }
    let message = format!(
        "refusing DDL on protected table {table}: {}",
        problems.join("; ")
    );
    let mut hint = format!(
        "to change how {table} is isolated, run tenancy.unprotect('{}') first and protect it again afterwards; a superuser may SET tenancy.ddl_guard = warn",
        table.replace('\'', "''")
    );
    if problems.iter().any(|p| p.contains(" calls ")) {
        hint.push_str("; functions in constraints, indexes, generated columns, policies, statistics and domains of a protected table must be built in, part of an extension or owned by a superuser");
    }
    let guard = gucs::DDL_GUARD.get();
    if guard != DdlGuard::Error {
        crate::audit::trail::record(
            crate::audit::trail::SYSTEM_CHAIN,
            "ddl_guard_override",
            serde_json::json!({
                "table": table,
                "violations": problems,
                "ddl_guard": if guard == DdlGuard::Warn { "warn" } else { "off" },
            }),
        );
    }
    match guard {
        DdlGuard::Off => {}
        DdlGuard::Warn => {
            pgrx::pg_sys::panic::ErrorReport::new(
                PgSqlErrorCode::ERRCODE_WARNING,
                format!("pg_tenancy: {message}"),
                "pg_tenancy",
            )
            .set_hint(hint)
            .report(PgLogLevel::WARNING);
        }
        DdlGuard::Error => errors::forbidden(message, Some(&hint)),
    }
}

fn record_state(oid: pg_sys::Oid, now: &[(String, String)]) {
    let codes: Vec<String> = now.iter().map(|(c, _)| c.clone()).collect();
    Spi::run_with_args(
        "UPDATE tenancy.protected_tables SET guard_state = $2
          WHERE tbl = $1::pg_catalog.oid::pg_catalog.regclass AND guard_state IS DISTINCT FROM $2",
        &[oid.into(), codes.into()],
    )
    .or_bug("recording the guard state");
}

/// The nearest protected ancestor of a partition, if any.
fn protected_ancestor(oid: pg_sys::Oid) -> Option<Protection> {
    let ancestors = Spi::connect(|c| {
        c.select(
            "SELECT a.relid::pg_catalog.oid FROM pg_catalog.pg_partition_ancestors($1) WITH ORDINALITY a(relid, ord)
              WHERE a.relid <> $1 ORDER BY a.ord",
            None,
            &[oid.into()],
        )?
        .map(|r| r.get::<pg_sys::Oid>(1))
        .collect::<Result<Vec<_>, _>>()
    })
    .or_bug("reading partition ancestors");
    ancestors
        .into_iter()
        .flatten()
        .find_map(|a| protected_tables::entry(a).map(|e| e.protection))
}

fn enrolled_column(schema: &str) -> Option<String> {
    spi::select_one::<String>(
        "SELECT e.tenant_column::pg_catalog.text FROM tenancy.enrolled_schemas e
          WHERE e.schema_name OPERATOR(pg_catalog.=) $1::pg_catalog.name",
        &[schema.into()],
    )
    .or_bug("reading tenancy.enrolled_schemas")
}

/// ddl_command_end: protect what arrived, check what was protected.
#[pg_extern(volatile, parallel_unsafe)]
fn _ddl_command_end() {
    if own_ddl::in_own_ddl() {
        return;
    }
    let touched = Spi::connect(|c| {
        c.select(
            "SELECT DISTINCT d.command_tag, CASE d.object_type
                        WHEN 'table' THEN d.objid
                        WHEN 'foreign table' THEN d.objid
                        WHEN 'table column' THEN d.objid
                        WHEN 'policy' THEN (SELECT p.polrelid FROM pg_catalog.pg_policy p WHERE p.oid = d.objid)
                        WHEN 'rule' THEN (SELECT r.ev_class FROM pg_catalog.pg_rewrite r WHERE r.oid = d.objid)
                        WHEN 'index' THEN (SELECT i.indrelid FROM pg_catalog.pg_index i WHERE i.indexrelid = d.objid)
                        WHEN 'statistics object' THEN (SELECT s.stxrelid FROM pg_catalog.pg_statistic_ext s WHERE s.oid = d.objid)
                    END AS relid
               FROM pg_catalog.pg_event_trigger_ddl_commands() d
              WHERE d.object_type IN ('table', 'foreign table', 'table column', 'policy', 'rule', 'index', 'statistics object')",
            None,
            &[],
        )?
        .map(|r| Ok((r.get::<String>(1)?.unwrap_or_default(), r.get::<pg_sys::Oid>(2)?)))
        .collect::<Result<Vec<_>, pgrx::spi::Error>>()
    })
    .or_bug("reading pg_event_trigger_ddl_commands()");
    // A domain's constraints run wherever a value is cast to it: a CHECK added to a domain a
    // protected table uses (as a column type, or in a stored expression) is owner code over
    // its rows like a CHECK on the table. ALTER/CREATE DOMAIN is rare, so every protected
    // table is looked at again.
    let domains_touched = Spi::connect(|c| {
        c.select(
            "SELECT 1 FROM pg_catalog.pg_event_trigger_ddl_commands() d
              WHERE d.object_type IN ('domain', 'domain constraint', 'type', 'cast') LIMIT 1",
            None,
            &[],
        )
        .map(|t| !t.is_empty())
    })
    .or_bug("reading pg_event_trigger_ddl_commands()");
    let mut touched = touched;
    if domains_touched {
        let all = protected_tables::all();
        touched.extend(
            all.into_iter()
                .map(|oid| ("ALTER DOMAIN".to_string(), Some(oid))),
        );
    }
    for (tag, relid) in touched {
        let Some(relid) = relid else { continue };
        let Some(rel) = catalog::relation_opt(relid) else {
            continue;
        };
        if rel.kind == "f" && protected_ancestor(rel.oid).is_some() {
            report(&rel.qualified(), &[FOREIGN_PARTITION.to_string()]);
        }
        if !rel.is_table() {
            continue;
        }
        match protected_tables::entry(rel.oid) {
            Some(e) => {
                let now = violations(&rel, &e);
                let added: Vec<String> = now
                    .iter()
                    .filter(|(code, _)| {
                        e.guard_state
                            .as_ref()
                            .is_some_and(|before| !before.contains(code))
                    })
                    .map(|(_, msg)| msg.clone())
                    .collect();
                report(&rel.qualified(), &added);
                // Reached only when the command stands (no new violation, or guard warn/off).
                record_state(rel.oid, &now);
                // ATTACH PARTITION: a newcomer gets its parent's protection, and one that was
                // protected on its own converges to it (partitions inherit every per-table
                // mechanism). A restore brings every registry row back, equal to its
                // parent's, before its policies, which must not be created twice.
                if rel.kind == "p" {
                    for part in catalog::with_partitions(&rel).into_iter().skip(1) {
                        let differs = protected_tables::entry(part.oid)
                            .is_none_or(|pe| pe.protection != e.protection);
                        if differs {
                            protect_arrival(part.oid, &e.protection);
                        }
                    }
                }
                if rel.kind == "p" {
                    let foreign: Vec<String> = foreign_partitions(rel.oid)
                        .into_iter()
                        .map(|f| format!("partition {f}: {FOREIGN_PARTITION}"))
                        .collect();
                    report(&rel.qualified(), &foreign);
                    // A table attached with quotas of its own: as a partition they would be
                    // neither enforced (the root's are) nor removable (set_quota refuses
                    // partitions), so it must shed them first.
                    let stranded: Vec<String> = catalog::with_partitions(&rel)
                        .into_iter()
                        .skip(1)
                        .filter(|part| crate::protection::quota::has_quotas(part.oid))
                        .map(|part| {
                            format!(
                                "partition {} has row quotas of its own, which its parent's quotas would replace (remove them with tenancy.set_quota(tenant, {}, NULL) first)",
                                part.qualified(),
                                pgrx::spi::quote_literal(part.qualified())
                            )
                        })
                        .collect();
                    report(&rel.qualified(), &stranded);
                }
                crate::protection::quota::follow_partitions(
                    &rel,
                    tag == "ALTER TABLE" && rel.kind == "p",
                );
            }
            None => {
                if let Some(p) = protected_ancestor(rel.oid) {
                    protect_arrival(rel.oid, &p);
                    crate::protection::quota::follow_partitions(&rel, false);
                } else if matches!(
                    tag.as_str(),
                    "CREATE TABLE" | "CREATE TABLE AS" | "SELECT INTO"
                ) {
                    if let Some(col) = enrolled_column(&rel.schema) {
                        if catalog::column_opt(rel.oid, &col).is_some() {
                            protect_arrival(
                                rel.oid,
                                &Protection {
                                    tenant_column: col,
                                    shared_column: None,
                                    feature: None,
                                },
                            );
                        }
                    }
                }
                if protected_tables::entry(rel.oid).is_none() {
                    // An unprotected table under a protected one (INHERIT, INHERITS): rows
                    // written into it without any policy show up in the parent's tenants.
                    let mut problems: Vec<String> = inheritance_parents(rel.oid)
                        .into_iter()
                        .filter(|(o, _)| protected_tables::entry(*o).is_some())
                        .map(|(_, n)| {
                            format!("it inherits from protected table {n} but is not protected itself (protect it on the same tenant column first)")
                        })
                        .collect();
                    // A protected table attached under an unprotected partitioned one: a
                    // query on the parent reads its rows without its policy.
                    if rel.kind == "p" {
                        problems.extend(
                            catalog::with_partitions(&rel)
                                .into_iter()
                                .skip(1)
                                .filter(|part| protected_tables::entry(part.oid).is_some())
                                .map(|part| {
                                    format!(
                                        "its partition {} is protected but it is not: a query on it would read every tenant's rows of {} (protect the parent instead)",
                                        part.qualified(),
                                        part.qualified()
                                    )
                                }),
                        );
                    }
                    report(&rel.qualified(), &problems);
                }
            }
        }
    }
}

/// sql_drop: dropping a protected table is fine (its registry row goes with it); dropping its
/// isolation or entitlement policy, or its tenant column, while the table stays is not.
#[pg_extern(volatile, parallel_unsafe)]
fn _sql_drop() {
    let dropped = Spi::connect(|c| {
        c.select(
            "SELECT d.object_type, d.objid, d.address_names FROM pg_catalog.pg_event_trigger_dropped_objects() d",
            None,
            &[],
        )?
        .map(|r| {
            Ok((
                r.get::<String>(1)?.unwrap_or_default(),
                r.get::<pg_sys::Oid>(2)?,
                r.get::<Vec<Option<String>>>(3)?.unwrap_or_default(),
            ))
        })
        .collect::<Result<Vec<_>, pgrx::spi::Error>>()
    })
    .or_bug("reading pg_event_trigger_dropped_objects()");
    let dropped_tables: Vec<pg_sys::Oid> = dropped
        .iter()
        .filter(|d| d.0 == "table")
        .filter_map(|d| d.1)
        .collect();
    for oid in &dropped_tables {
        Spi::run_with_args(
            "DELETE FROM tenancy.protected_tables WHERE tbl = $1::pg_catalog.oid::pg_catalog.regclass",
            &[(*oid).into()],
        )
        .or_bug("forgetting a dropped table");
        Spi::run_with_args(
            "DELETE FROM tenancy.quotas WHERE tbl = $1::pg_catalog.oid::pg_catalog.regclass",
            &[(*oid).into()],
        )
        .or_bug("forgetting a dropped table's quotas");
    }
    if own_ddl::in_own_ddl() {
        return;
    }
    for (kind, objid, names) in &dropped {
        let (table_oid, what) = match kind.as_str() {
            "policy" if names.len() == 3 => {
                let name = names[2].clone().unwrap_or_default();
                if name != ISOLATION_POLICY && name != FEATURE_POLICY {
                    continue;
                }
                let qualified = format!(
                    "{}.{}",
                    quote_identifier(names[0].as_deref().unwrap_or("")),
                    quote_identifier(names[1].as_deref().unwrap_or(""))
                );
                let oid = spi::select_one::<pg_sys::Oid>(
                    "SELECT pg_catalog.to_regclass($1)::pg_catalog.oid",
                    &[qualified.as_str().into()],
                )
                .or_bug("resolving a policy's table");
                (
                    oid,
                    format!("the policy {} is dropped", quote_identifier(&name)),
                )
            }
            "table column" if names.len() == 3 => (
                *objid,
                format!(
                    "the column {} is dropped",
                    quote_identifier(names[2].as_deref().unwrap_or(""))
                ),
            ),
            _ => continue,
        };
        let Some(table_oid) = table_oid else { continue };
        if dropped_tables.contains(&table_oid) {
            continue;
        }
        let Some(e) = protected_tables::entry(table_oid) else {
            continue;
        };
        let column_dropped = kind == "table column"
            && names.get(2).cloned().flatten().as_deref()
                != Some(e.protection.tenant_column.as_str());
        if column_dropped {
            continue;
        }
        let Some(rel) = catalog::relation_opt(table_oid) else {
            continue;
        };
        report(&rel.qualified(), &[what]);
    }
}
