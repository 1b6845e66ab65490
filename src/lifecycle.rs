//! Tenant lifecycle: export every row of a tenant, purge them, and the table order both need.
//!
//! Both are SECURITY DEFINER (the extension's owner lists the protected tables and writes the
//! audit trail), but every statement that touches a user's table runs as that table's owner
//! (`owner::AsTableOwner`): whatever the statement makes PostgreSQL run that the owner wrote
//! or chose (triggers and their WHEN clauses, rules, casts and output functions of its types,
//! domain checks, operators, foreign-key actions and the triggers they reach) runs with the
//! owner's rights, never the extension's. The owner step is exempt from forced row level
//! security on the owner's own tables (as PostgreSQL's referential-integrity queries are), so
//! every statement carries an explicit predicate on the tenant column, typed like the table's
//! isolation policy: a uuid column is compared with a uuid, an integer column with a bigint, so
//! the tenant index is used and a tenant id that cannot be stored in a column matches nothing
//! there (as under the policy). `tenancy.export_tenant()` itself is plpgsql
//! (sql/lifecycle.sql): `RETURN QUERY EXECUTE` hands rows to a tuplestore, which spills to disk
//! past work_mem, so no export is ever held in a Rust collection.

use pgrx::prelude::*;
use pgrx::JsonB;
use serde_json::{json, Map, Value};

use crate::infra::args;
use crate::infra::catalog;
use crate::infra::errors::{self, SpiOrBug};
use crate::infra::spi;
use crate::protection::policy;
use crate::registry::protected_tables;

/// Records a lifecycle event from the plpgsql parts (export_tenant) in the tenant's audit
/// trail. Not granted to anyone.
#[pg_extern(volatile, parallel_unsafe)]
fn _lifecycle_audit(tenant: &str, event: &str, detail: JsonB) {
    crate::audit::trail::record(tenant, event, detail.0);
}

/// A protected table as export, purge and quotas read it.
pub struct TenantTable {
    pub oid: pg_sys::Oid,
    /// `schema.table`, quoted.
    pub name: String,
    /// What goes after FROM: `ONLY name` for a plain table (its inheritance children, if
    /// protected, are listed on their own), `name` for a partitioned one (its partitions'
    /// rows come through it, and are not listed again).
    pub source: String,
    /// `col = $1::type`, where $1 is the tenant id as text; None when the tenant id cannot be
    /// a value of the column's type (the table can hold no row of this tenant).
    pub predicate: Option<String>,
}

/// The extension's owner must be able to list every protected table and write the audit
/// trail whatever their policies say.
fn require_rls_bypass() {
    let bypass = spi::select_one::<bool>(
        "SELECT r.rolsuper OR r.rolbypassrls FROM pg_catalog.pg_roles r
              WHERE r.rolname OPERATOR(pg_catalog.=) CURRENT_USER",
        &[],
    )
    .or_bug("reading pg_roles");
    if bypass != Some(true) {
        errors::internal(
            "the extension's owner must be a superuser or have BYPASSRLS",
            "reinstall the extension as a superuser",
        );
    }
}

/// Every protected table that holds rows of its own: roots of partition trees and plain
/// tables, not partitions of a protected parent. In name order.
fn protected_roots(tenant: &str) -> Vec<TenantTable> {
    protected_tables::roots()
        .into_iter()
        .map(|root| {
            let protected_tables::Root {
                oid,
                name,
                partitioned,
                tenant_column: col,
                type_oid: typ,
                type_sql,
            } = root;
            let source = if partitioned {
                name.clone()
            } else {
                format!("ONLY {name}")
            };
            TenantTable {
                oid,
                predicate: policy::tenant_rows_predicate(oid, &col, typ, &type_sql, tenant),
                name,
                source,
            }
        })
        .collect()
}

/// Foreign keys between protected roots as (referencing, referenced) indexes into `tables`,
/// partitions mapped to the protected table they belong to; a table referencing itself is
/// left out (one statement inserts or deletes all of its rows, and foreign keys are checked
/// at its end).
fn references(tables: &[TenantTable]) -> Vec<(usize, usize)> {
    let oids: Vec<pg_sys::Oid> = tables.iter().map(|t| t.oid).collect();
    let rows = Spi::connect(|c| {
        c.select(
            "WITH fk AS (
                 SELECT k.conrelid, k.confrelid FROM pg_catalog.pg_constraint k
                  WHERE k.contype = 'f' AND k.conparentid = 0)
             SELECT DISTINCT
                    coalesce(
                      (SELECT x.relid FROM pg_catalog.pg_partition_ancestors(fk.conrelid) WITH ORDINALITY x(relid, n)
                        WHERE x.relid = ANY ($1) ORDER BY x.n LIMIT 1),
                      CASE WHEN fk.conrelid = ANY ($1) THEN fk.conrelid END),
                    coalesce(
                      (SELECT x.relid FROM pg_catalog.pg_partition_ancestors(fk.confrelid) WITH ORDINALITY x(relid, n)
                        WHERE x.relid = ANY ($1) ORDER BY x.n LIMIT 1),
                      CASE WHEN fk.confrelid = ANY ($1) THEN fk.confrelid END)
               FROM fk",
            None,
            &[oids.clone().into()],
        )?
        .map(|r| Ok((r.get::<pg_sys::Oid>(1)?, r.get::<pg_sys::Oid>(2)?)))
        .collect::<Result<Vec<_>, pgrx::spi::Error>>()
    })
    .or_bug("reading foreign keys");
    let index = |o: pg_sys::Oid| oids.iter().position(|x| *x == o);
    rows.into_iter()
        .filter_map(|(a, b)| Some((index(a?)?, index(b?)?)))
        .filter(|(a, b)| a != b)
        .collect()
}

/// Protected tables with rows of their own, referenced tables before the tables that
/// reference them (name order among equals). The second list holds the tables on a foreign
/// key cycle (and those that depend on one), which have no such order; they follow the
/// others, in name order.
pub fn tables_in_fk_order(tenant: &str) -> (Vec<TenantTable>, Vec<String>) {
    let tables = protected_roots(tenant);
    let refs = references(&tables);
    let mut waiting = vec![0usize; tables.len()];
    for (child, _) in &refs {
        waiting[*child] += 1;
    }
    let mut done = vec![false; tables.len()];
    let mut order: Vec<usize> = Vec::with_capacity(tables.len());
    // The first ready table in name order each time: a deterministic order.
    while let Some(i) = (0..tables.len()).find(|i| !done[*i] && waiting[*i] == 0) {
        done[i] = true;
        order.push(i);
        for (child, parent) in &refs {
            if *parent == i {
                waiting[*child] -= 1;
            }
        }
    }
    let cyclic: Vec<usize> = (0..tables.len()).filter(|i| !done[*i]).collect();
    let cyclic_names = cyclic.iter().map(|i| tables[*i].name.clone()).collect();
    order.extend(cyclic);
    let mut slots: Vec<Option<TenantTable>> = tables.into_iter().map(Some).collect();
    let ordered = order
        .into_iter()
        .map(|i| slots[i].take().expect("each table once"))
        .collect();
    (ordered, cyclic_names)
}

/// The plan of `tenancy.export_tenant()`: what to read, in an order in which re-inserting the
/// rows satisfies foreign keys. Tables that can hold no row of the tenant are left out.
#[pg_extern(stable, parallel_unsafe)]
fn _export_plan(
    tenant: &str,
) -> TableIterator<
    'static,
    (
        name!(table_name, String),
        name!(tbl_oid, pg_sys::Oid),
        name!(source, String),
        name!(predicate, String),
    ),
> {
    args::tenant_id(tenant);
    crate::identity::tenants::require_registered(tenant);
    require_rls_bypass();
    let (tables, _) = tables_in_fk_order(tenant);
    refuse_citus_owners(&tables, false);
    TableIterator::new(
        tables
            .into_iter()
            .filter_map(|t| Some((t.name, t.oid, t.source, t.predicate?))),
    )
}

/// Export and purge read and delete each table as its owner, and Citus reads a distributed or
/// reference table's placements by connecting to the nodes as the current user: an owner
/// without LOGIN fails half-way with a connection error, and the owner step's exemption from
/// forced row level security is this backend's alone, so on the workers the policies hide the
/// tenant's rows from an owner that is neither a superuser nor BYPASSRLS: the export would be
/// short and the purge would delete nothing, both silently. In one transaction Citus also
/// refuses to touch placements another role has modified (25001), so a purge of tables owned
/// by different roles fails at the second owner. All are refused up front, before anything is
/// read or deleted, with what to change.
fn refuse_citus_owners(tables: &[TenantTable], deletes: bool) {
    if !catalog::citus_present() {
        return;
    }
    let oids: Vec<pg_sys::Oid> = tables.iter().map(|t| t.oid).collect();
    let (no_login, owners) = spi::select_row(
        "SELECT pg_catalog.string_agg(DISTINCT pg_catalog.quote_ident(r.rolname), ', ')
                  FILTER (WHERE NOT (r.rolcanlogin AND (r.rolsuper OR r.rolbypassrls))),
                pg_catalog.count(DISTINCT c.relowner)
           FROM pg_catalog.unnest($1::pg_catalog.oid[]) t(oid)
           JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) t.oid
           JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) c.relowner
          WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_dist_partition d
                         WHERE d.logicalrelid OPERATOR(pg_catalog.=) c.oid)",
        &[oids.into()],
        |r| Ok((r.get::<String>(1)?, r.get::<i64>(2)?.unwrap_or(0))),
    )
    .or_bug("reading the owners of the Citus tables")
    .unwrap_or((None, 0));
    if let Some(roles) = no_login {
        errors::not_supported(
            format!("the Citus tables of this tenant are owned by {roles}, without both LOGIN and BYPASSRLS; Citus reads their shards on the workers as their owner, where forced row level security would hide the tenant's rows; nothing was read or deleted"),
            Some("make a role with LOGIN and BYPASSRLS own the distributed and reference tables (ALTER ROLE ... LOGIN BYPASSRLS on the coordinator: Citus propagates it), or a superuser"),
        );
    }
    if deletes && owners > 1 {
        errors::not_supported(
            "the Citus tables of this tenant have different owners, and Citus refuses to change placements of one transaction as several roles; nothing was deleted".into(),
            Some("make one role own every distributed and reference table of the tenant (ALTER TABLE ... OWNER TO), then purge again"),
        );
    }
}

/// The string `purge_tenant` must be given to act.
fn purge_confirmation(tenant: &str) -> String {
    format!("purge {tenant}")
}

/// Triggers that a purge could queue and that would fire only at COMMIT, after the owner
/// step and the purge itself have returned, with the rights of whoever commits (the
/// administrator, often a superuser): enabled user triggers marked DEFERRABLE on the purged
/// tables, their partitions, and every table a foreign-key action (CASCADE, SET NULL, SET
/// DEFAULT) reaches from them, transitively.
fn deferred_triggers(tables: &[TenantTable]) -> Vec<String> {
    let oids: Vec<pg_sys::Oid> = tables.iter().map(|t| t.oid).collect();
    Spi::connect(|c| {
        c.select(
            "WITH RECURSIVE reached(oid) AS (
                 SELECT t.relid FROM pg_catalog.unnest($1::pg_catalog.oid[]) r(oid),
                        LATERAL pg_catalog.pg_partition_tree(r.oid) t
                 UNION
                 SELECT r.oid FROM pg_catalog.unnest($1::pg_catalog.oid[]) r(oid)
                 UNION
                 SELECT x.oid FROM reached
                   JOIN pg_catalog.pg_constraint k ON k.confrelid OPERATOR(pg_catalog.=) reached.oid
                  CROSS JOIN LATERAL (SELECT t.relid FROM pg_catalog.pg_partition_tree(k.conrelid) t
                                      UNION SELECT k.conrelid) x(oid)
                  WHERE k.contype OPERATOR(pg_catalog.=) 'f'
                    AND (k.confdeltype OPERATOR(pg_catalog.=) ANY ('{c,n,d}'::pg_catalog.\"char\"[])
                      OR k.confupdtype OPERATOR(pg_catalog.=) ANY ('{c,n,d}'::pg_catalog.\"char\"[])))
             SELECT pg_catalog.format('trigger %I on %s', tg.tgname, tg.tgrelid::pg_catalog.regclass)
               FROM pg_catalog.pg_trigger tg
              WHERE tg.tgrelid IN (SELECT reached.oid FROM reached)
                AND NOT tg.tgisinternal AND tg.tgenabled OPERATOR(pg_catalog.<>) 'D' AND tg.tgdeferrable
              ORDER BY 1",
            None,
            &[oids.into()],
        )?
        .map(|r| r.get::<String>(1))
        .collect::<Result<Vec<_>, _>>()
    })
    .or_bug("reading triggers")
    .into_iter()
    .flatten()
    .collect()
}

/// Whether `tenant` still has rows in the table (read as its owner).
fn rows_remain(t: &TenantTable, pred: &str, tenant: &str) -> bool {
    let sql = format!("SELECT EXISTS (SELECT 1 FROM {} WHERE {pred})", t.source);
    crate::infra::owner::as_table_owner(t.oid, || {
        spi::select_one::<bool>(&sql, &[tenant.into()]).or_bug("checking the purge")
    }) == Some(true)
}

/// Deletes every row of a deactivated tenant from every protected table, referencing tables
/// first, in one transaction; returns how many rows each table lost. The tenant's registry row
/// (and its audit trail) stay.
#[pg_extern(volatile, parallel_unsafe, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn purge_tenant(
    tenant: Option<&str>,
    confirm: Option<&str>,
) -> TableIterator<'static, (name!(table_name, String), name!(deleted, i64))> {
    let tenant = errors::required(tenant, "tenant");
    args::tenant_id(tenant);
    let expected = purge_confirmation(tenant);
    if confirm != Some(expected.as_str()) {
        errors::bad_argument(
            format!(
                "purge_tenant was not confirmed (confirm must be {}); nothing was deleted",
                errors::quoted(&expected)
            ),
            // A purge cannot be undone: the hint is where an operator about to confirm reads
            // what must come first.
            Some("the confirmation names the tenant so that a purge cannot be run for the wrong one by accident; a purge cannot be undone: first write tenancy.export_tenant() to a file and verify the file (docs/operations.md, \"Purge\")"),
        );
    }
    lock_inactive(
        tenant,
        "purged",
        "no session writes while its rows are deleted",
    );
    require_rls_bypass();
    let (tables, cyclic) = tables_in_fk_order(tenant);
    if !cyclic.is_empty() {
        errors::not_supported(
            format!(
                "the foreign keys between {} form a cycle, so no order deletes their rows; nothing was deleted",
                cyclic.join(", ")
            ),
            Some("delete this tenant's rows of one table of the cycle yourself (or make the constraint DEFERRABLE and defer it), then purge again"),
        );
    }
    refuse_citus_owners(&tables, true);
    let deferred = deferred_triggers(&tables);
    if !deferred.is_empty() {
        errors::not_supported(
            format!(
                "{} is deferrable: it would fire at commit, after the purge has returned, with the rights of whoever commits; nothing was deleted",
                deferred.join(", ")
            ),
            Some("make the trigger NOT DEFERRABLE (it then runs during the purge, as its table's owner) or disable it for the purge"),
        );
    }
    let mut out: Vec<(String, i64)> = Vec::with_capacity(tables.len());
    for t in tables.iter().rev() {
        let Some(pred) = &t.predicate else {
            out.push((t.name.clone(), 0));
            continue;
        };
        let sql = format!("DELETE FROM {} WHERE {pred}", t.source);
        // As the table's owner: its triggers, rules, foreign-key actions and types run with
        // its rights (the AFTER triggers of this statement fire before the step ends).
        let n = crate::infra::owner::as_table_owner(t.oid, || {
            Spi::connect_mut(|c| c.update(&sql, None, &[tenant.into()]).map(|r| r.len()))
                .or_bug("deleting a tenant's rows")
        });
        out.push((t.name.clone(), n as i64));
    }
    // A rule, a BEFORE trigger returning NULL or another table's trigger writing rows back
    // would leave rows behind while the purge reports success.
    let left: Vec<&str> = tables
        .iter()
        .filter(|t| {
            t.predicate
                .as_deref()
                .is_some_and(|pred| rows_remain(t, pred, tenant))
        })
        .map(|t| t.name.as_str())
        .collect();
    if !left.is_empty() {
        errors::not_in_state(
            format!(
                "rows of tenant {} remain in {} after the purge deleted them (a rule or a trigger kept or wrote them back); nothing was deleted",
                errors::quoted(tenant),
                left.join(", ")
            ),
            Some("find the rule or trigger on those tables that skips deletes or inserts rows, drop or disable it, then purge again"),
        );
    }
    // The tenant's jobs hold its payloads and act as its actors: a tenant re-created under
    // the same id must not inherit them, nor a worker run them.
    let jobs = Spi::connect_mut(|c| {
        c.update(
            "DELETE FROM tenancy.jobs WHERE tenant OPERATOR(pg_catalog.=) $1",
            None,
            &[tenant.into()],
        )
        .map(|r| r.len() as i64)
    })
    .or_bug("deleting the tenant's jobs");
    if jobs > 0 {
        out.push(("tenancy.jobs".into(), jobs));
    }
    let counts: Map<String, Value> = out.iter().map(|(t, n)| (t.clone(), json!(n))).collect();
    crate::audit::trail::record(tenant, "tenant_purged", json!({ "deleted": counts }));
    TableIterator::new(out)
}

// ---------------------------------------------------------------------------------------------
// Renaming and dropping tenants (issue 21).

/// 55000 unless the tenant is registered and deactivated (locked until the end of the
/// transaction, so nobody reactivates it half-way); 42704 when it is not registered.
fn lock_inactive(tenant: &str, what: &str, why: &str) {
    let status = Spi::connect_mut(|c| {
        let t = c.update(
            "SELECT status FROM tenancy.tenants WHERE id OPERATOR(pg_catalog.=) $1 FOR UPDATE",
            None,
            &[tenant.into()],
        )?;
        if t.is_empty() {
            return Ok(None);
        }
        t.first().get_one::<String>()
    })
    .or_bug("locking the tenant");
    match status.as_deref() {
        None => errors::not_found(
            format!("tenant {} does not exist", errors::quoted(tenant)),
            None,
        ),
        Some("active") => errors::not_in_state(
            format!(
                "tenant {} is still active: only a deactivated tenant can be {what}",
                errors::quoted(tenant)
            ),
            Some(&format!(
                "deactivate it first (SELECT tenancy.deactivate_tenant({})) so {why}",
                errors::quoted(tenant)
            )),
        ),
        Some(_) => {}
    }
}

/// Foreign keys whose referenced columns include the tenant column of a protected table,
/// as (name, ON UPDATE CASCADE). Renaming changes that column in the referenced rows, so
/// each must cascade.
fn tenant_foreign_keys() -> Vec<(String, bool)> {
    Spi::connect(|c| {
        c.select(
            "SELECT pg_catalog.format('%I.%I', n.nspname, k.conname),
                    k.confupdtype OPERATOR(pg_catalog.=) 'c'
               FROM pg_catalog.pg_constraint k
               JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) k.connamespace
               JOIN tenancy.protected_tables p ON p.tbl::pg_catalog.oid OPERATOR(pg_catalog.=) k.confrelid
               JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) k.confrelid
                                              AND a.attname OPERATOR(pg_catalog.=) p.tenant_column
              WHERE k.contype OPERATOR(pg_catalog.=) 'f' AND k.conparentid OPERATOR(pg_catalog.=) 0
                AND a.attnum OPERATOR(pg_catalog.=) ANY (k.confkey)
              ORDER BY 1",
            None,
            &[],
        )?
        .map(|r| {
            Ok((
                r.get::<String>(1)?.unwrap_or_default(),
                r.get::<bool>(2)?.unwrap_or(false),
            ))
        })
        .collect::<Result<Vec<_>, pgrx::spi::Error>>()
    })
    .or_bug("reading foreign keys on tenant columns")
}

/// `col = <value>` for an UPDATE's SET from a predicate `col = $1…` of
/// [`policy::tenant_rows_predicate`], the value taken from $2.
fn set_clause(pred: &str) -> String {
    let (col, value) = pred
        .rsplit_once(" OPERATOR(pg_catalog.=) ")
        .or_else(|| pred.rsplit_once(" = "))
        .unwrap_or_else(|| errors::internal("renaming a tenant", "unexpected predicate"));
    format!("{col} = {}", value.replacen("$1", "$2", 1))
}

/// Renames a deactivated tenant: every protected row's tenant column, its API keys,
/// entitlements, quotas and registry row follow, in one transaction. The audit chain is not
/// rewritten (its hashes cover the tenant id): the old chain ends with `tenant_renamed`
/// (`to`), and the new one begins with `tenant_renamed` (`from`, and the old chain's head),
/// so a reader follows one into the other. The old id stays taken while its chain exists.
#[pg_extern(volatile, parallel_unsafe, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn rename_tenant(old: Option<&str>, new: Option<&str>) {
    let old = errors::required(old, "old");
    let new = errors::required(new, "new");
    args::tenant_id(old);
    args::tenant_id(new);
    if old == new {
        errors::bad_argument("old and new are the same tenant id".into(), None);
    }
    lock_inactive(old, "renamed", "no session uses it meanwhile");
    crate::identity::tenants::require_unused(new);
    require_rls_bypass();
    let (tables, cyclic) = tables_in_fk_order(old);
    if !cyclic.is_empty() {
        errors::not_supported(
            format!(
                "the foreign keys between {} form a cycle, so no order renames their rows; nothing was renamed",
                cyclic.join(", ")
            ),
            Some("make one foreign key of the cycle DEFERRABLE or ON UPDATE CASCADE, then rename again"),
        );
    }
    refuse_citus_owners(&tables, true);
    let deferred = deferred_triggers(&tables);
    if !deferred.is_empty() {
        errors::not_supported(
            format!(
                "{} is deferrable: it would fire at commit, after the rename has returned, with the rights of whoever commits; nothing was renamed",
                deferred.join(", ")
            ),
            Some("make the trigger NOT DEFERRABLE (it then runs during the rename, as its table's owner) or disable it for the rename"),
        );
    }
    let fks = tenant_foreign_keys();
    let stuck: Vec<&str> = fks
        .iter()
        .filter(|(_, cascade)| !cascade)
        .map(|(name, _)| name.as_str())
        .collect();
    if !stuck.is_empty() {
        errors::not_supported(
            format!(
                "the foreign key{} {} reference{} a tenant column without ON UPDATE CASCADE, so the referenced rows cannot change tenant; nothing was renamed",
                if stuck.len() > 1 { "s" } else { "" },
                stuck.join(", "),
                if stuck.len() > 1 { "" } else { "s" },
            ),
            Some("recreate them with ON UPDATE CASCADE, then rename again (deferring them is no way out: PostgreSQL queues no deferred check inside the owner steps the rename runs in)"),
        );
    }
    // Before anything moves (an ON UPDATE CASCADE moves rows of later tables early).
    for t in &tables {
        if policy_predicate_for(t, new).is_some_and(|p| rows_remain(t, &p, new)) {
            errors::not_in_state(
                format!(
                    "{} already holds rows of tenant {}; nothing was renamed",
                    t.name,
                    errors::quoted(new)
                ),
                Some("rows of an unregistered tenant id: delete them or pick another id"),
            );
        }
    }
    let mut moved = Map::new();
    for t in &tables {
        let Some(pred) = &t.predicate else { continue };
        let new_pred = policy_predicate_for(t, new);
        let Some(new_pred) = new_pred else {
            if rows_remain(t, pred, old) {
                errors::bad_argument(
                    format!(
                        "tenant id {} cannot be stored in the tenant column of {}, which holds rows of {}; nothing was renamed",
                        errors::quoted(new),
                        t.name,
                        errors::quoted(old)
                    ),
                    Some("pick an id of the column's type (a uuid column takes lowercase uuids, an integer column integers)"),
                );
            }
            continue;
        };
        let sql = format!(
            "UPDATE {} SET {} WHERE {pred}",
            t.source,
            set_clause(&new_pred)
        );
        let n = crate::infra::owner::as_table_owner(t.oid, || {
            Spi::connect_mut(|c| {
                c.update(&sql, None, &[old.into(), new.into()])
                    .map(|r| r.len())
            })
            .or_bug("renaming a tenant's rows")
        });
        moved.insert(t.name.clone(), json!(n));
    }
    let left: Vec<&str> = tables
        .iter()
        .filter(|t| {
            t.predicate
                .as_deref()
                .is_some_and(|p| rows_remain(t, p, old))
        })
        .map(|t| t.name.as_str())
        .collect();
    if !left.is_empty() {
        errors::not_in_state(
            format!(
                "rows of tenant {} remain in {} after the rename (a rule or a trigger kept or wrote them back); nothing was renamed",
                errors::quoted(old),
                left.join(", ")
            ),
            Some("find the rule or trigger on those tables that skips updates or inserts rows, drop or disable it, then rename again"),
        );
    }
    // The registry: a new row (in the old one's place in the tenant tree), its dependants and
    // children moved, the old row gone (foreign keys from api_keys, entitlements and quotas to
    // tenants are not ON UPDATE CASCADE).
    Spi::run_with_args(
        "INSERT INTO tenancy.tenants (id, name, plan, status, settings, created_at, deactivated_at, parent)
         SELECT $2, name, plan, status, settings, created_at, deactivated_at, parent
           FROM tenancy.tenants WHERE id OPERATOR(pg_catalog.=) $1;
         UPDATE tenancy.tenants SET parent = $2 WHERE parent OPERATOR(pg_catalog.=) $1;
         UPDATE tenancy.api_keys SET tenant = $2 WHERE tenant OPERATOR(pg_catalog.=) $1;
         UPDATE tenancy.entitlements SET tenant = $2 WHERE tenant OPERATOR(pg_catalog.=) $1;
         INSERT INTO tenancy.quotas (tenant, tbl, max_rows, slots, set_at)
         SELECT $2, tbl, max_rows, slots, set_at FROM tenancy.quotas WHERE tenant OPERATOR(pg_catalog.=) $1;
         UPDATE tenancy.quota_slots SET tenant = $2 WHERE tenant OPERATOR(pg_catalog.=) $1;
         UPDATE tenancy.jobs SET tenant = $2 WHERE tenant OPERATOR(pg_catalog.=) $1;
         DELETE FROM tenancy.quotas WHERE tenant OPERATOR(pg_catalog.=) $1;
         DELETE FROM tenancy.tenants WHERE id OPERATOR(pg_catalog.=) $1;",
        &[old.into(), new.into()],
    )
    .or_bug("renaming the tenant in the registry");
    crate::audit::trail::record(old, "tenant_renamed", json!({ "to": new, "rows": moved }));
    // The new chain starts by naming the old chain's last row (the one just written).
    let (seq, hash) = crate::audit::trail::head(old);
    crate::audit::trail::record(
        new,
        "tenant_renamed",
        json!({ "from": old, "from_seq": seq, "from_hash": hash, "rows": moved }),
    );
}

fn policy_predicate_for(t: &TenantTable, tenant: &str) -> Option<String> {
    let root = protected_tables::roots()
        .into_iter()
        .find(|r| r.oid == t.oid)?;
    policy::tenant_rows_predicate(
        root.oid,
        &root.tenant_column,
        root.type_oid,
        &root.type_sql,
        tenant,
    )
}

/// Removes a purged tenant from the registry: its API keys, entitlements, quotas and row.
/// `audit` chooses what happens to its chain: `keep` (the chain stays, readable by admins,
/// closed by `tenant_dropped`, and the id stays taken) or `purge` (erased as
/// tenancy.purge_audit() erases it: superuser only, recorded in the system chain; the id is
/// free again).
#[pg_extern(volatile, parallel_unsafe, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn drop_tenant(id: Option<&str>, audit: Option<&str>) {
    let id = errors::required(id, "id");
    args::tenant_id(id);
    let audit = match audit {
        Some(a @ ("keep" | "purge")) => a,
        _ => errors::bad_argument(
            "audit must be 'keep' or 'purge'".into(),
            Some("'keep' leaves the tenant's audit chain for the record; 'purge' (superuser) erases it"),
        ),
    };
    lock_inactive(id, "dropped", "no session uses it meanwhile");
    require_rls_bypass();
    let (tables, _) = tables_in_fk_order(id);
    let left: Vec<&str> = tables
        .iter()
        .filter(|t| {
            t.predicate
                .as_deref()
                .is_some_and(|p| rows_remain(t, p, id))
        })
        .map(|t| t.name.as_str())
        .chain(
            (spi::select_one::<bool>(
                "SELECT EXISTS (SELECT FROM tenancy.jobs WHERE tenant OPERATOR(pg_catalog.=) $1)",
                &[id.into()],
            )
            .or_bug("reading the tenant's jobs")
                == Some(true))
            .then_some("tenancy.jobs"),
        )
        .collect();
    // Its children would be left pointing at a tenant that is gone (on Citus the registry has
    // no foreign keys to refuse it: scale/citus.rs).
    let children = spi::select_one::<i64>(
        "SELECT count(*) FROM tenancy.tenants WHERE parent OPERATOR(pg_catalog.=) $1",
        &[id.into()],
    )
    .or_bug("reading the tenant tree")
    .unwrap_or(0);
    if children > 0 {
        errors::not_in_state(
            format!(
                "tenant {} is the parent of {children} tenant(s); nothing was dropped",
                errors::quoted(id)
            ),
            Some("move them first: SELECT tenancy.move_tenant(child, NULL), or to another parent"),
        );
    }
    if !left.is_empty() {
        errors::not_in_state(
            format!(
                "tenant {} still has rows in {}; nothing was dropped",
                errors::quoted(id),
                left.join(", ")
            ),
            Some(&format!(
                "export them, verify the export, then SELECT * FROM tenancy.purge_tenant({0}, 'purge {1}')",
                errors::quoted(id),
                id
            )),
        );
    }
    Spi::run_with_args(
        "DELETE FROM tenancy.api_keys WHERE tenant OPERATOR(pg_catalog.=) $1;
         DELETE FROM tenancy.entitlements WHERE tenant OPERATOR(pg_catalog.=) $1;
         DELETE FROM tenancy.quotas WHERE tenant OPERATOR(pg_catalog.=) $1;
         DELETE FROM tenancy.tenants WHERE id OPERATOR(pg_catalog.=) $1;",
        &[id.into()],
    )
    .or_bug("dropping the tenant from the registry");
    if audit == "purge" {
        crate::audit::trail::purge_audit(id, &format!("purge audit {id}"));
        crate::audit::trail::record(
            crate::audit::trail::SYSTEM_CHAIN,
            "tenant_dropped",
            json!({ "tenant": id, "audit": "purge" }),
        );
    } else {
        crate::audit::trail::record(id, "tenant_dropped", json!({ "audit": "keep" }));
        crate::audit::trail::record(
            crate::audit::trail::SYSTEM_CHAIN,
            "tenant_dropped",
            json!({ "tenant": id, "audit": "keep" }),
        );
    }
}
