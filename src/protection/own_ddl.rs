//! The names of the objects protection makes, and the marker for the extension's own DDL,
//! which the DDL guard and protection on arrival must not second-guess.

use std::cell::Cell;

use pgrx::prelude::*;

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
