//! The protected-table registry, `tenancy.protected_tables`: what each protected table's
//! row says (its protection, its generated policies' expressions, the DDL guard's last view
//! of it), the names of the objects protection makes, and the marker for the extension's own
//! DDL. Every read of the registry table goes through here.

use std::cell::Cell;

use pgrx::prelude::*;

use crate::infra::errors::SpiOrBug;

pub const ISOLATION_POLICY: &str = "tenancy_isolation";
pub const SHARED_POLICY: &str = "tenancy_shared";
pub const FEATURE_POLICY: &str = "tenancy_feature";
/// Statement trigger that records writes made under a support context (sql/audit.sql).
pub const SUPPORT_TRIGGER: &str = "tenancy_support_audit";

thread_local! {
    static OWN_DDL: Cell<u32> = const { Cell::new(0) };
}

/// Marks the extension's own DDL, which the DDL guard and the auto-protection event trigger
/// must not second-guess. Dropped on every exit, including an ERROR unwinding through it.
pub struct OwnDdl;

impl OwnDdl {
    pub fn enter() -> OwnDdl {
        OWN_DDL.with(|d| d.set(d.get() + 1));
        OwnDdl
    }
}

impl Drop for OwnDdl {
    fn drop(&mut self) {
        OWN_DDL.with(|d| d.set(d.get().saturating_sub(1)));
    }
}

pub fn in_own_ddl() -> bool {
    OWN_DDL.with(|d| d.get() > 0)
}

/// For the registry's restore trigger: rows written by protect() itself keep their state.
#[pg_extern(volatile, parallel_unsafe)]
fn _in_own_ddl() -> bool {
    in_own_ddl()
}

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
    /// Violation codes after the last DDL command; None = unknown (a restored row).
    pub guard_state: Option<Vec<String>>,
}

pub fn entry(oid: pg_sys::Oid) -> Option<Entry> {
    Spi::connect(|c| {
        let t = c.select(
            "SELECT tenant_column::text, shared_column::text, feature, column_type, index_name::text,
                    shared_index_name::text, set_not_null, isolation_qual, feature_qual, guard_state
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
        }))
    })
    .or_bug("reading tenancy.protected_tables")
}
