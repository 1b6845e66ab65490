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

// ---- Citus: the guard on the shards, and on a worker on the shells ----
//
// Citus keeps a distributed table's rows in shards (`orders_102008`) on the workers and a
// reference table's in a copy on every node; a worker also holds a shell, its copy of the
// coordinator's table. Policies on the shards are what the workers enforce, so a change of a
// shard is a change of the protection, whichever way it arrives: Citus propagating DDL from the
// coordinator, `run_command_on_shards()` and its siblings, or a session on the worker itself.
// Each node runs this guard on what it holds (docs/scale-out.md).
//
// What a shard must keep is its table's protection: on the coordinator the registry row, on a
// worker the shell's row in `tenancy.citus_guarded`. A shell's row is taken from the shell
// itself (its policies as protect() made them) when pg_tenancy's own DDL reaches it, or when
// Citus creates it with the table's policies. pg_tenancy's own DDL is recognised on the
// coordinator by the in-process marker, and on a worker by the session's role: protect() and
// unprotect() run their DDL on Citus tables as the extension's owner, so Citus connects to the
// workers as a superuser for them, which no table owner can be. A superuser's DDL is taken as
// it is (it can bypass anything); check() compares every placement with its table.

/// Whether this node's shards and shells are to be guarded: Citus is installed whole (not
/// half-way through its own CREATE EXTENSION, whose commands fire these triggers too), and no
/// extension script is running (none is a table owner's attack).
fn citus_ready() -> bool {
    // SAFETY: reads a backend-global flag.
    if unsafe { pg_sys::creating_extension } {
        return false;
    }
    spi::select_one::<bool>(
        "SELECT pg_catalog.to_regclass('pg_catalog.pg_dist_shard') IS NOT NULL
            AND pg_catalog.to_regclass('pg_catalog.pg_dist_partition') IS NOT NULL
            AND pg_catalog.to_regprocedure('pg_catalog.relation_is_a_known_shard(pg_catalog.regclass)') IS NOT NULL
            AND pg_catalog.to_regprocedure('pg_catalog.citus_is_coordinator()') IS NOT NULL",
        &[],
    )
    .or_bug("looking for Citus")
        == Some(true)
}

/// What this node holds of a Citus table: a shard (on any node) or, on a worker, the shell.
struct CitusRel {
    logical: pg_sys::Oid,
    shard: bool,
    /// A shard the guard knows (its row in tenancy.citus_guarded) whose name no longer ends
    /// in one of its table's shard ids: renamed away from what Citus knows.
    /// Moved to another schema, it stays guarded by OID but is not refused: Citus moves a
    /// table's shards on a worker apart from its shell (`ALTER TABLE orders SET SCHEMA`).
    moved: bool,
}

/// Citus knows a shard by its name (the table's name and the shard id); the guard knows the
/// ones it has seen by OID too, so that a shard renamed or moved to another schema (or a
/// table renamed to another table's shard name) stays guarded as what it was.
fn citus_rel(oid: pg_sys::Oid) -> Option<CitusRel> {
    Spi::connect(|c| {
        let t = c.select(
            "WITH named AS (
                 SELECT s.logicalrelid::pg_catalog.oid AS logical, true AS shard
                   FROM pg_catalog.pg_class k
                   JOIN pg_catalog.pg_dist_shard s
                     ON s.shardid OPERATOR(pg_catalog.=)
                        pg_catalog.substring(k.relname::pg_catalog.text, '_([0-9]+)$')::pg_catalog.int8
                  WHERE k.oid OPERATOR(pg_catalog.=) $1
                    AND pg_catalog.relation_is_a_known_shard(k.oid::pg_catalog.regclass)
                 UNION ALL
                 SELECT p.logicalrelid::pg_catalog.oid, false
                   FROM pg_catalog.pg_dist_partition p
                  WHERE p.logicalrelid OPERATOR(pg_catalog.=) $1::pg_catalog.oid::pg_catalog.regclass
                    AND NOT pg_catalog.citus_is_coordinator()
                 LIMIT 1
             ), kept AS (
                 SELECT g.logical, g.shard FROM tenancy.citus_guarded g
                  WHERE g.rel OPERATOR(pg_catalog.=) $1 AND g.logical IS NOT NULL AND g.shard IS NOT NULL
             )
             SELECT coalesce(kept.logical, named.logical), coalesce(kept.shard, named.shard),
                    coalesce(kept.shard, false) AND NOT EXISTS (
                        SELECT 1 FROM pg_catalog.pg_class k
                          JOIN pg_catalog.pg_dist_shard s
                            ON s.shardid OPERATOR(pg_catalog.=)
                               pg_catalog.substring(k.relname::pg_catalog.text, '_([0-9]+)$')::pg_catalog.int8
                         WHERE k.oid OPERATOR(pg_catalog.=) $1
                           AND s.logicalrelid::pg_catalog.oid OPERATOR(pg_catalog.=) kept.logical)
               FROM (SELECT 1) one LEFT JOIN named ON true LEFT JOIN kept ON true
              WHERE kept.logical IS NOT NULL OR named.logical IS NOT NULL",
            Some(1),
            &[oid.into()],
        )?;
        if t.is_empty() {
            return Ok(None);
        }
        let r = t.first();
        Ok::<_, pgrx::spi::Error>(r.get::<pg_sys::Oid>(1)?.map(|logical| CitusRel {
            logical,
            shard: r.get::<bool>(2).ok().flatten().unwrap_or(false),
            moved: r.get::<bool>(3).ok().flatten().unwrap_or(false),
        }))
    })
    .or_bug("reading Citus's shard metadata")
}

const SHARD_MOVED: &str = "a shard keeps its name: renamed, Citus would no longer know it as its table's shard (and another table could take its name)";

/// Inheritance (partitions included) between a shard or shell of a protected table and any
/// other relation: allowed only under a shard or shell that is itself guarded, with the child
/// whole against that parent's protection (Citus attaches a partition's shards to their
/// parent's shards so, and a query through the parent applies the parent's policies). A shard
/// under another table reads without its policies through that parent; a child without them
/// adds rows the owner wrote to the tenants the shard shows.
fn citus_inheritance(oid: pg_sys::Oid) -> Vec<String> {
    let links = Spi::connect(|c| {
        c.select(
            "SELECT i.inhrelid, i.inhparent FROM pg_catalog.pg_inherits i
              WHERE i.inhrelid OPERATOR(pg_catalog.=) $1 OR i.inhparent OPERATOR(pg_catalog.=) $1",
            None,
            &[oid.into()],
        )?
        .map(|r| Ok((r.get::<pg_sys::Oid>(1)?, r.get::<pg_sys::Oid>(2)?)))
        .collect::<Result<Vec<_>, pgrx::spi::Error>>()
    })
    .or_bug("reading pg_inherits");
    let guarded = |o: pg_sys::Oid| {
        citus_rel(o).and_then(|c| {
            let own = citus_row(o).and_then(|(e, _)| e);
            citus_expected(&c, own).map(|e| (c, e))
        })
    };
    let mut v = Vec::new();
    for (child, parent) in links.into_iter().filter_map(|(c, p)| Some((c?, p?))) {
        let (cc, pc) = (guarded(child), guarded(parent));
        if cc.is_none() && pc.is_none() {
            continue;
        }
        let whole_under_guarded = pc.as_ref().is_some_and(|(p, expected)| {
            !p.moved
                && cc.as_ref().is_none_or(|(c, _)| !c.moved)
                && catalog::relation_opt(child).is_some_and(|r| violations(&r, expected).is_empty())
        });
        if whole_under_guarded {
            continue;
        }
        let name = |o: pg_sys::Oid| {
            catalog::relation_opt(o)
                .map(|r| r.qualified())
                .unwrap_or_default()
        };
        v.push(if cc.is_some() {
            format!(
                "the shard or shell {} is a partition or child of {}: a query on {} would read it without its policies",
                name(child),
                name(parent),
                name(parent)
            )
        } else {
            format!(
                "{} is a partition or child of the shard or shell {}: its rows would show among that table's tenants",
                name(child),
                name(parent)
            )
        });
    }
    v
}

/// Whether the DDL now running is pg_tenancy's own: the marker in this backend (the
/// coordinator, Citus executing a shard's DDL locally), or a session of a superuser (a worker,
/// where Citus connects as the role that ran the DDL on the coordinator: the extension's owner
/// for protect() and unprotect()).
fn trusted_ddl() -> bool {
    // SAFETY: reads the backend's session user and its role's superuser flag.
    own_ddl::in_own_ddl() || unsafe { pg_sys::superuser_arg(pg_sys::GetSessionUserId()) }
}

/// Whether `oid` was created by the current transaction (the relcache knows).
fn created_in_this_transaction(oid: pg_sys::Oid) -> bool {
    // SAFETY: opens and closes a relcache reference of a relation the command just touched;
    // a NULL return (gone meanwhile) is handled.
    unsafe {
        let r = pg_sys::RelationIdGetRelation(oid);
        if r.is_null() {
            return false;
        }
        let created = (*r).rd_createSubid != 0;
        pg_sys::RelationClose(r);
        created
    }
}

/// A relation's protection as its own policies say (the isolation policy's column is the
/// tenant column), or `None` when it has no isolation policy.
fn derived_entry(rel: &Rel) -> Option<Entry> {
    let col_of = |policy: &str| {
        spi::select_one::<String>(
            "SELECT a.attname::pg_catalog.text
               FROM pg_catalog.pg_policy p
               JOIN pg_catalog.pg_depend d
                 ON d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_policy'::pg_catalog.regclass
                AND d.objid OPERATOR(pg_catalog.=) p.oid
                AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
                AND d.refobjid OPERATOR(pg_catalog.=) p.polrelid
                AND d.refobjsubid OPERATOR(pg_catalog.>) 0
               JOIN pg_catalog.pg_attribute a
                 ON a.attrelid OPERATOR(pg_catalog.=) p.polrelid AND a.attnum OPERATOR(pg_catalog.=) d.refobjsubid
              WHERE p.polrelid OPERATOR(pg_catalog.=) $1 AND p.polname OPERATOR(pg_catalog.=) $2::pg_catalog.name
              ORDER BY a.attnum LIMIT 1",
            &[rel.oid.into(), policy.into()],
        )
        .or_bug("reading a policy's columns")
    };
    let pols = policies(rel.oid);
    let iso = pols.iter().find(|p| p.name == ISOLATION_POLICY)?;
    let tenant_column = col_of(ISOLATION_POLICY)?;
    let column_type = catalog::column_opt(rel.oid, &tenant_column)?.type_sql;
    let feature = pols.iter().find(|p| p.name == FEATURE_POLICY);
    let shared_column = if pols.iter().any(|p| p.name == SHARED_POLICY) {
        col_of(SHARED_POLICY)
    } else {
        None
    };
    Some(Entry {
        protection: Protection {
            tenant_column,
            shared_column,
            feature: None,
        },
        column_type,
        index_name: None,
        shared_index_name: None,
        set_not_null: false,
        isolation_qual: iso.qual.clone().unwrap_or_default(),
        feature_qual: feature.and_then(|f| f.qual.clone()),
        feature_check: feature.and_then(|f| f.check.clone()),
        guard_state: Some(Vec::new()),
    })
}

/// This node's row for a shard or shell: (the shell's protection, if it is a shell's row with
/// one; the guard's last view).
fn citus_row(oid: pg_sys::Oid) -> Option<(Option<Entry>, Vec<String>)> {
    Spi::connect(|c| {
        let t = c.select(
            "SELECT tenant_column::pg_catalog.text, column_type, isolation_qual, shared_column::pg_catalog.text,
                    feature_qual, feature_check, guard_state
               FROM tenancy.citus_guarded WHERE rel OPERATOR(pg_catalog.=) $1",
            Some(1),
            &[oid.into()],
        )?;
        if t.is_empty() {
            return Ok(None);
        }
        let r = t.first();
        let state = r.get::<Vec<String>>(7)?.unwrap_or_default();
        let entry = match (r.get::<String>(1)?, r.get::<String>(3)?) {
            (Some(tenant_column), Some(isolation_qual)) => Some(Entry {
                protection: Protection {
                    tenant_column,
                    shared_column: r.get::<String>(4)?,
                    feature: None,
                },
                column_type: r.get::<String>(2)?.unwrap_or_default(),
                index_name: None,
                shared_index_name: None,
                set_not_null: false,
                isolation_qual,
                feature_qual: r.get::<String>(5)?,
                feature_check: r.get::<String>(6)?,
                guard_state: Some(state.clone()),
            }),
            _ => None,
        };
        Ok::<_, pgrx::spi::Error>(Some((entry, state)))
    })
    .or_bug("reading tenancy.citus_guarded")
}

fn save_citus_row(
    oid: pg_sys::Oid,
    c: &CitusRel,
    shell: Option<&Entry>,
    state: &[String],
    building: bool,
) {
    Spi::run_with_args(
        "INSERT INTO tenancy.citus_guarded AS g
                (rel, tenant_column, column_type, isolation_qual, shared_column, feature_qual, feature_check, guard_state, building,
                 logical, shard)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
         ON CONFLICT (rel) DO UPDATE
            SET tenant_column = EXCLUDED.tenant_column, column_type = EXCLUDED.column_type,
                isolation_qual = EXCLUDED.isolation_qual, shared_column = EXCLUDED.shared_column,
                feature_qual = EXCLUDED.feature_qual, feature_check = EXCLUDED.feature_check,
                guard_state = EXCLUDED.guard_state, building = EXCLUDED.building,
                logical = EXCLUDED.logical, shard = EXCLUDED.shard",
        &[
            oid.into(),
            shell.map(|e| e.protection.tenant_column.clone()).into(),
            shell.map(|e| e.column_type.clone()).into(),
            shell.map(|e| e.isolation_qual.clone()).into(),
            shell.and_then(|e| e.protection.shared_column.clone()).into(),
            shell.and_then(|e| e.feature_qual.clone()).into(),
            shell.and_then(|e| e.feature_check.clone()).into(),
            state.to_vec().into(),
            building.into(),
            c.logical.into(),
            c.shard.into(),
        ],
    )
    .or_bug("recording a shard's protection");
}

fn forget_citus_row(oid: pg_sys::Oid) {
    Spi::run_with_args(
        "DELETE FROM tenancy.citus_guarded WHERE rel OPERATOR(pg_catalog.=) $1",
        &[oid.into()],
    )
    .or_bug("forgetting a shard's protection");
}

/// The protection a shard or shell must keep: a shard its table's (the registry's row on the
/// coordinator, the shell's on a worker), a shell its own row's. A shell that has no row yet
/// (Citus created it, and its metadata after it, in one command the guard could not place)
/// takes the protection of one of its shards on this node, which one command does not change
/// together with the shell; a shard in that case its shell's.
fn citus_expected(c: &CitusRel, own: Option<Entry>) -> Option<Entry> {
    if !c.shard {
        return own.or_else(|| {
            let shard = spi::select_one::<pg_sys::Oid>(
                "SELECT k.oid FROM pg_catalog.pg_dist_shard s
                   JOIN pg_catalog.pg_class l ON l.oid OPERATOR(pg_catalog.=) s.logicalrelid
                   JOIN pg_catalog.pg_class k
                     ON k.relnamespace OPERATOR(pg_catalog.=) l.relnamespace
                    AND k.relname OPERATOR(pg_catalog.=) (l.relname::pg_catalog.text OPERATOR(pg_catalog.||) '_' OPERATOR(pg_catalog.||) s.shardid::pg_catalog.text)::pg_catalog.name
                  WHERE s.logicalrelid OPERATOR(pg_catalog.=) $1::pg_catalog.oid::pg_catalog.regclass
                  ORDER BY s.shardid LIMIT 1",
                &[c.logical.into()],
            )
            .or_bug("finding a shard of the table")?;
            derived_entry(&catalog::relation_opt(shard)?)
        });
    }
    protected_tables::entry(c.logical)
        .or_else(|| citus_row(c.logical).and_then(|(e, _)| e))
        .or_else(|| derived_entry(&catalog::relation_opt(c.logical)?))
}

/// What a shard must also share with its table: the owner, and its triggers enabled.
fn shard_violations(rel: &Rel, logical: pg_sys::Oid) -> Vec<(String, String)> {
    let mut v = Vec::new();
    let owners = spi::select_row(
        "SELECT pg_catalog.pg_get_userbyid(s.relowner)::pg_catalog.text, pg_catalog.pg_get_userbyid(l.relowner)::pg_catalog.text
           FROM pg_catalog.pg_class s, pg_catalog.pg_class l
          WHERE s.oid OPERATOR(pg_catalog.=) $1 AND l.oid OPERATOR(pg_catalog.=) $2",
        &[rel.oid.into(), logical.into()],
        |r| Ok((r.get::<String>(1)?, r.get::<String>(2)?)),
    )
    .or_bug("reading the shard's owner");
    if let Some((Some(shard_owner), Some(table_owner))) = owners {
        if shard_owner != table_owner {
            v.push((
                "shard_owner".into(),
                format!(
                    "the shard is owned by {} and its table by {}",
                    quote_identifier(&shard_owner),
                    quote_identifier(&table_owner)
                ),
            ));
        }
    }
    let disabled = Spi::connect(|c| {
        c.select(
            "SELECT t.tgname::pg_catalog.text FROM pg_catalog.pg_trigger t
              WHERE t.tgrelid OPERATOR(pg_catalog.=) $1 AND t.tgenabled OPERATOR(pg_catalog.=) 'D'
                AND NOT t.tgisinternal
                AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger l
                                 WHERE l.tgrelid OPERATOR(pg_catalog.=) $2
                                   -- Citus names a table's trigger on its shards with the shard's id
                                   AND l.tgname::pg_catalog.text IN (t.tgname::pg_catalog.text,
                                        pg_catalog.regexp_replace(t.tgname::pg_catalog.text, '_[0-9]+$', ''))
                                   AND l.tgenabled OPERATOR(pg_catalog.=) 'D')
              ORDER BY 1",
            None,
            &[rel.oid.into(), logical.into()],
        )?
        .map(|r| r.get::<String>(1))
        .collect::<Result<Vec<_>, _>>()
    })
    .or_bug("reading the shard's triggers");
    for t in disabled.into_iter().flatten() {
        v.push((
            format!("trigger_disabled:{t}"),
            format!("trigger {} is disabled", quote_identifier(&t)),
        ));
    }
    v
}

/// The guard for a shard or shell touched by a command (ddl_command_end).
fn citus_guard(rel: &Rel, c: &CitusRel) {
    if catalog::relation_opt(c.logical).is_some_and(|l| l.schema == "tenancy") {
        return;
    }
    let row = citus_row(rel.oid);
    if trusted_ddl() {
        // pg_tenancy's own DDL (or a superuser's): what it leaves is the protection.
        if c.shard {
            if citus_expected(c, None).is_some() {
                save_citus_row(rel.oid, c, None, &[], false);
            } else {
                forget_citus_row(rel.oid);
            }
        } else {
            match derived_entry(rel) {
                Some(e) => save_citus_row(rel.oid, c, Some(&e), &[], false),
                None => forget_citus_row(rel.oid),
            }
        }
        return;
    }
    let (own, before) = match row {
        Some((e, state)) => (e, Some(state)),
        None => (None, None),
    };
    // A shell that Citus creates now (a table distributed after protect()) arrives with the
    // table's policies: they are its protection.
    let own = if !c.shard && own.is_none() && created_in_this_transaction(rel.oid) {
        derived_entry(rel)
    } else {
        own
    };
    let Some(expected) = citus_expected(c, own) else {
        return;
    };
    if c.moved {
        report(&rel.qualified(), &[SHARD_MOVED.to_string()]);
    }
    report(&rel.qualified(), &citus_inheritance(rel.oid));
    let now = citus_violations(rel, c, &expected);
    let created = created_in_this_transaction(rel.oid);
    // A shard never seen before must be whole, unless Citus is building it now (CREATE TABLE,
    // then its flags and policies, one command each).
    let before = before.unwrap_or_default();
    if !created {
        let added: Vec<String> = now
            .iter()
            .filter(|(code, _)| !before.contains(code))
            .map(|(_, msg)| msg.clone())
            .collect();
        report(&rel.qualified(), &added);
    }
    let codes: Vec<String> = now.iter().map(|(code, _)| code.clone()).collect();
    let shell = if c.shard { None } else { Some(&expected) };
    save_citus_row(rel.oid, c, shell, &codes, created && !codes.is_empty());
}

fn citus_violations(rel: &Rel, c: &CitusRel, expected: &Entry) -> Vec<(String, String)> {
    let mut now = violations(rel, expected);
    if c.shard {
        now.extend(shard_violations(rel, c.logical));
    }
    now
}

/// At the commit of a transaction that created a shard or shell (the deferred trigger on
/// tenancy.citus_guarded): it must now hold its table's protection whole.
#[pg_extern(volatile, parallel_unsafe)]
fn _citus_built(rel: pg_sys::Oid) {
    spi::citus_shards_visible(|| {
        let Some(r) = catalog::relation_opt(rel).filter(Rel::is_table) else {
            return;
        };
        let Some(c) = citus_rel(rel) else { return };
        let own = citus_row(rel).and_then(|(e, _)| e);
        let Some(expected) = citus_expected(&c, own) else {
            return;
        };
        if c.moved {
            report(&r.qualified(), &[SHARD_MOVED.to_string()]);
        }
        let now = citus_violations(&r, &c, &expected);
        if !now.is_empty() {
            let problems: Vec<&str> = now.iter().map(|(_, m)| m.as_str()).collect();
            report(
                &r.qualified(),
                &[format!(
                    "this transaction created it without its table's protection ({})",
                    problems.join("; ")
                )],
            );
        }
        let codes: Vec<String> = now.iter().map(|(code, _)| code.clone()).collect();
        let shell = if c.shard { None } else { Some(&expected) };
        save_citus_row(rel, &c, shell, &codes, false);
    })
}

/// sql_drop for a shard or shell: its isolation or entitlement policy, or its tenant column,
/// dropped while it stays.
fn citus_drop_guard(table_oid: pg_sys::Oid, c: &CitusRel, what: &str, column: Option<&str>) {
    if trusted_ddl() {
        return;
    }
    let own = if c.shard {
        None
    } else {
        citus_row(table_oid).and_then(|(e, _)| e)
    };
    let Some(expected) = citus_expected(c, own) else {
        return;
    };
    if column.is_some_and(|col| col != expected.protection.tenant_column) {
        return;
    }
    let Some(rel) = catalog::relation_opt(table_oid) else {
        return;
    };
    report(&rel.qualified(), &[what.to_string()]);
}

/// ddl_command_end: protect what arrived, check what was protected.
#[pg_extern(volatile, parallel_unsafe)]
fn _ddl_command_end() {
    spi::citus_shards_visible(ddl_command_end);
}

fn ddl_command_end() {
    let own = own_ddl::in_own_ddl();
    let citus = citus_ready();
    if own && !citus {
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
    // Shards, and shells on a worker, have a guard of their own; the rest of this function is
    // about the tables the registry of this node knows.
    let touched: Vec<(String, Option<pg_sys::Oid>)> = if citus {
        let mut rest = Vec::new();
        let mut seen = Vec::new();
        for (tag, relid) in touched {
            let c = relid.and_then(citus_rel);
            match (relid, c) {
                (Some(oid), Some(c)) => {
                    if !seen.contains(&oid) {
                        seen.push(oid);
                        if let Some(rel) = catalog::relation_opt(oid).filter(Rel::is_table) {
                            citus_guard(&rel, &c);
                        }
                    }
                }
                _ => {
                    if let Some(oid) = relid.filter(|_| !trusted_ddl()) {
                        if let Some(rel) = catalog::relation_opt(oid) {
                            report(&rel.qualified(), &citus_inheritance(oid));
                        }
                    }
                    rest.push((tag, relid))
                }
            }
        }
        rest
    } else {
        touched
    };
    if own {
        return;
    }
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
    spi::citus_shards_visible(sql_drop);
}

fn sql_drop() {
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
        forget_citus_row(*oid);
    }
    if own_ddl::in_own_ddl() {
        return;
    }
    let citus = citus_ready();
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
        if citus {
            if let Some(c) = citus_rel(table_oid) {
                let column = (kind == "table column")
                    .then(|| names.get(2).cloned().flatten().unwrap_or_default());
                citus_drop_guard(table_oid, &c, &what, column.as_deref());
                continue;
            }
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
