//! Row quotas per (tenant, protected table): `tenancy.set_quota()`.
//!
//! Enforcement is escrow: what a tenant may still insert is split over `slots` rows of
//! `tenancy.quota_slots`; an inserting statement spends from the slot its backend maps to
//! (`pg_backend_pid() % slots`), so concurrent inserters of one tenant lock different rows, and
//! only when its slot runs short does it lock every slot, count exactly (rows in use are
//! `max_rows - sum(budget)`, always) and share out what is left. The triggers and that logic
//! are plpgsql (sql/quotas.sql), which sees statement transition tables directly; this
//! module installs them and counts.

use pgrx::prelude::*;
use pgrx::spi::quote_literal;
use serde_json::json;

use crate::infra::catalog::{self, Rel};
use crate::infra::errors::{self, SpiOrBug};
use crate::infra::spi;
use crate::protection::own_ddl::OwnDdl;
use crate::protection::policy;
use crate::registry::protected_tables::{self};

pub const SLOTS: i32 = 8;
pub const INSERT_TRIGGER: &str = "tenancy_quota_insert";
pub const DELETE_TRIGGER: &str = "tenancy_quota_delete";
pub const TRUNCATE_TRIGGER: &str = "tenancy_quota_truncate";

fn has_trigger(rel: &Rel, name: &str) -> bool {
    spi::select_one::<bool>(
"SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger WHERE tgrelid = $1 AND tgname = $2::pg_catalog.name)",
&[rel.oid.into(), name.into()],
)
    .or_bug("reading pg_trigger")
        == Some(true)
}

/// The three statement triggers on the table and on each of its partitions (a statement
/// fires the triggers of the table it names only, so an insert straight into a partition is
/// counted by the partition's trigger).
fn install_triggers(root: &Rel, column: &str) {
    let col = quote_literal(column);
    for rel in catalog::with_partitions(root) {
        let t = rel.qualified();
        let mut sql = String::new();
        if !has_trigger(&rel, INSERT_TRIGGER) {
            sql.push_str(&format!(
                "CREATE TRIGGER {INSERT_TRIGGER} AFTER INSERT ON {t} REFERENCING NEW TABLE AS tenancy_new_rows
                 FOR EACH STATEMENT EXECUTE FUNCTION tenancy._quota_spend({col});"
            ));
        }
        if !has_trigger(&rel, DELETE_TRIGGER) {
            sql.push_str(&format!(
                "CREATE TRIGGER {DELETE_TRIGGER} AFTER DELETE ON {t} REFERENCING OLD TABLE AS tenancy_old_rows
                 FOR EACH STATEMENT EXECUTE FUNCTION tenancy._quota_refund({col});"
            ));
        }
        if !has_trigger(&rel, TRUNCATE_TRIGGER) {
            sql.push_str(&format!(
                "CREATE TRIGGER {TRUNCATE_TRIGGER} AFTER TRUNCATE ON {t}
                 FOR EACH STATEMENT EXECUTE FUNCTION tenancy._quota_truncated();"
            ));
        }
        if !sql.is_empty() {
            Spi::run(&sql).or_bug("creating the quota triggers");
        }
    }
}

/// Whether `tbl` itself carries row quotas.
pub fn has_quotas(tbl: pg_sys::Oid) -> bool {
    spi::select_one::<bool>(
        "SELECT EXISTS (SELECT 1 FROM tenancy.quotas q
                         WHERE q.tbl OPERATOR(pg_catalog.=) $1::pg_catalog.oid::pg_catalog.regclass)",
        &[tbl.into()],
    )
    .or_bug("reading tenancy.quotas")
        == Some(true)
}

/// Keeps the quotas of the partition tree `touched` belongs to whole after DDL (called by the
/// DDL guard as the extension's owner): a partition created or attached after set_quota() gets
/// the quota triggers (an insert straight into it is counted), and when `rows_moved` (ALTER
/// TABLE on a partitioned table: ATTACH or DETACH moves rows into or out of the tree) every
/// quota of the root is counted again.
///
/// Triggers are added only while the root has its own: during a restore, pg_restore creates
/// every quota trigger itself after the tables' constraints (which are DDL on them), and
/// would fail on one created here first.
pub fn follow_partitions(touched: &Rel, rows_moved: bool) {
    let root_oid = spi::select_one::<pg_sys::Oid>(
        "SELECT coalesce(pg_catalog.pg_partition_root($1), $1::pg_catalog.regclass)::pg_catalog.oid",
        &[touched.oid.into()],
    )
    .or_bug("finding the partition root");
    let Some(root_oid) = root_oid else { return };
    let tenants = Spi::connect(|c| {
        c.select(
            "SELECT q.tenant FROM tenancy.quotas q
              WHERE q.tbl OPERATOR(pg_catalog.=) $1::pg_catalog.oid::pg_catalog.regclass ORDER BY q.tenant",
            None,
            &[root_oid.into()],
        )?
        .map(|r| r.get::<String>(1))
        .collect::<Result<Vec<_>, _>>()
    })
    .or_bug("reading tenancy.quotas");
    if tenants.is_empty() {
        return;
    }
    let root = catalog::relation(root_oid);
    let Some(entry) = protected_tables::entry(root_oid) else {
        return;
    };
    let _own = OwnDdl::enter();
    if has_trigger(&root, INSERT_TRIGGER) {
        install_triggers(&root, &entry.protection.tenant_column);
    }
    if rows_moved {
        let col = catalog::column(&root, &entry.protection.tenant_column);
        Spi::run(&format!(
            "LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE",
            root.qualified()
        ))
        .or_bug("locking the table");
        for tenant in tenants.into_iter().flatten() {
            recount(
                &tenant,
                &root,
                &entry.protection.tenant_column,
                (col.type_oid, &col.type_sql),
            );
        }
    }
}

/// Removes every quota on `root` (its triggers and the registry rows): unprotect() calls it,
/// since a quota on an unprotected table could neither be enforced nor removed afterwards.
pub fn forget(root: &Rel) {
    // The caller may unprotect (it owns the table) without any right on the quota registry.
    drop_triggers(root);
    crate::infra::owner::as_extension_owner(|| {
        Spi::run_with_args(
            "DELETE FROM tenancy.quotas WHERE tbl OPERATOR(pg_catalog.=) $1::pg_catalog.oid::pg_catalog.regclass",
            &[root.oid.into()],
        )
        .or_bug("forgetting the table's quotas")
    });
}

fn drop_triggers(root: &Rel) {
    // Only those that exist: Citus refuses DROP TRIGGER, even IF EXISTS, on its tables.
    for rel in catalog::with_partitions(root) {
        let t = rel.qualified();
        for name in [INSERT_TRIGGER, DELETE_TRIGGER, TRUNCATE_TRIGGER] {
            if has_trigger(&rel, name) {
                Spi::run(&format!("DROP TRIGGER {name} ON {t}"))
                    .or_bug("dropping the quota triggers");
            }
        }
    }
}

/// The tenant's rows in the table, counted exactly while every slot is locked (so no spender
/// is half-way), and the budgets reset from that count.
fn recount(tenant: &str, root: &Rel, column: &str, column_type: (pg_sys::Oid, &str)) {
    Spi::connect_mut(|c| {
        c.update(
            "SELECT 1 FROM tenancy.quota_slots
              WHERE tenant = $1 AND tbl = $2::pg_catalog.oid::pg_catalog.regclass ORDER BY slot FOR UPDATE",
            None,
            &[tenant.into(), root.oid.into()],
        )
        .map(|_| ())
    })
    .or_bug("locking the quota slots");
    let source = if root.kind == "p" {
        root.qualified()
    } else {
        format!("ONLY {}", root.qualified())
    };
    // Counted as the table's owner: the predicate may cast to the owner's domain (class 2,
    // docs/security.md).
    let used =
        match policy::tenant_rows_predicate(root.oid, column, column_type.0, column_type.1, tenant)
        {
            Some(pred) => crate::infra::owner::as_table_owner(root.oid, || {
                spi::select_one::<i64>(
                    &format!("SELECT pg_catalog.count(*) FROM {source} WHERE {pred}"),
                    &[tenant.into()],
                )
                .or_bug("counting the tenant's rows")
            })
            .unwrap_or(0),
            None => 0,
        };
    Spi::run_with_args(
        "DELETE FROM tenancy.quota_slots WHERE tenant = $1 AND tbl = $2::pg_catalog.oid::pg_catalog.regclass",
        &[tenant.into(), root.oid.into()],
    )
    .or_bug("resetting the quota slots");
    Spi::run_with_args(
        "INSERT INTO tenancy.quota_slots (tenant, tbl, slot, budget)
         SELECT q.tenant, q.tbl, s.n,
                CASE WHEN q.max_rows - $3 < 0 THEN CASE WHEN s.n = 0 THEN q.max_rows - $3 ELSE 0 END
                     ELSE (q.max_rows - $3) / q.slots + CASE WHEN s.n < (q.max_rows - $3) % q.slots THEN 1 ELSE 0 END
                END
           FROM tenancy.quotas q, pg_catalog.generate_series(0, q.slots - 1) s(n)
          WHERE q.tenant = $1 AND q.tbl = $2::pg_catalog.oid::pg_catalog.regclass",
        &[tenant.into(), root.oid.into(), used.into()],
    )
    .or_bug("resetting the quota slots");
}

struct QuotaTable {
    rel: Rel,
    column: String,
    type_oid: pg_sys::Oid,
    type_sql: String,
}

fn quota_table(tbl: pg_sys::Oid) -> QuotaTable {
    let rel = catalog::relation(tbl);
    let Some(entry) = protected_tables::entry(tbl) else {
        errors::bad_argument(
            format!("{} is not protected", rel.qualified()),
            Some("quotas count a tenant's rows in a protected table: run tenancy.protect() first"),
        )
    };
    let is_partition = spi::select_one::<bool>(
        "SELECT relispartition FROM pg_catalog.pg_class WHERE oid = $1",
        &[tbl.into()],
    )
    .or_bug("reading pg_class");
    if is_partition == Some(true) {
        errors::bad_argument(
            format!("{} is a partition", rel.qualified()),
            Some("set the quota on the partitioned table at the top: it counts the rows of every partition"),
        );
    }
    let col = catalog::column(&rel, &entry.protection.tenant_column);
    QuotaTable {
        column: entry.protection.tenant_column,
        type_oid: col.type_oid,
        type_sql: col.type_sql,
        rel,
    }
}

/// Quotas are statement triggers on the table, which Citus refuses on its tables (and would
/// fire on the workers, where the quota registry is not): refused before any DDL, with what
/// to do instead. Removing a quota stays allowed.
fn refuse_citus_table(rel: &Rel) {
    if catalog::citus_table(&rel.schema, &rel.name) {
        errors::not_supported(
            format!(
                "row quotas cannot be set on {}, a Citus distributed or reference table",
                rel.qualified()
            ),
            Some("quotas count rows with statement triggers, which Citus does not run on its tables; limit the tenant's rows in the application, or keep the table local (docs/scale-out.md)"),
        );
    }
}

/// The quota triggers run as the extension's owner (they write the slots) and turn the tenant
/// column into text: for a type a user defined (an enum, a composite, a range), that may be a
/// cast the type's owner wrote, which would run with the extension's rights. Built-in types
/// and domains over them convert with built-in code only (casting from a domain runs no check).
fn refuse_user_defined_type(q: &QuotaTable) {
    // SAFETY: a syscache lookup of an existing type.
    let base = unsafe { pg_sys::getBaseType(q.type_oid) };
    if u32::from(base) >= pg_sys::FirstNormalObjectId {
        errors::not_supported(
            format!(
                "quotas need a tenant column of a built-in type, and {}.{} is of type {}",
                q.rel.qualified(),
                pgrx::spi::quote_identifier(&q.column),
                q.type_sql
            ),
            Some("the quota triggers convert the tenant column to text with the extension's rights, which must not run a cast its owner wrote: use text, uuid or an integer type"),
        );
    }
}

#[pg_extern(volatile, parallel_unsafe, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn _set_quota(tenant: Option<&str>, tbl: Option<pg_sys::Oid>, max_rows: Option<i64>) {
    let tenant = errors::required(tenant, "tenant");
    let tbl = errors::required(tbl, "tbl");
    crate::identity::tenants::require_registered(tenant);
    if max_rows.is_some_and(|m| m < 0) {
        errors::bad_argument(
            "max_rows must be zero or more (NULL removes the quota)".into(),
            None,
        );
    }
    let q = quota_table(tbl);
    let _own = OwnDdl::enter();
    // Waits for inserts and deletes in flight and holds new ones until commit, so the count
    // below is exact and no statement runs between it and the triggers.
    Spi::run(&format!(
        "LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE",
        q.rel.qualified()
    ))
    .or_bug("locking the table");
    match max_rows {
        None => {
            Spi::run_with_args(
                "DELETE FROM tenancy.quotas WHERE tenant = $1 AND tbl = $2::pg_catalog.oid::pg_catalog.regclass",
                &[tenant.into(), tbl.into()],
            )
            .or_bug("removing the quota");
            let left = spi::select_one::<bool>(
                "SELECT EXISTS (SELECT 1 FROM tenancy.quotas WHERE tbl = $1::pg_catalog.oid::pg_catalog.regclass)",
                &[tbl.into()],
            )
            .or_bug("reading tenancy.quotas");
            if left != Some(true) {
                drop_triggers(&q.rel);
            }
        }
        Some(max) => {
            refuse_citus_table(&q.rel);
            refuse_user_defined_type(&q);
            install_triggers(&q.rel, &q.column);
            Spi::run_with_args(
                "INSERT INTO tenancy.quotas (tenant, tbl, max_rows, slots)
                 VALUES ($1, $2::pg_catalog.oid::pg_catalog.regclass, $3, $4)
                 ON CONFLICT (tenant, tbl) DO UPDATE SET max_rows = EXCLUDED.max_rows, set_at = now()",
                &[tenant.into(), tbl.into(), max.into(), SLOTS.into()],
            )
            .or_bug("recording the quota");
            recount(tenant, &q.rel, &q.column, (q.type_oid, &q.type_sql));
        }
    }
    crate::audit::trail::record(
        tenant,
        "quota_set",
        json!({ "table": q.rel.qualified(), "max_rows": max_rows }),
    );
}

/// After a TRUNCATE: every quota of the table is counted again. Called by the truncate
/// trigger (as the extension's owner).
#[pg_extern(volatile, parallel_unsafe)]
fn _quota_recount(tenant: &str, tbl: pg_sys::Oid) {
    let q = quota_table(tbl);
    recount(tenant, &q.rel, &q.column, (q.type_oid, &q.type_sql));
}
