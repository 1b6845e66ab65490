//! SPI helpers the pgrx wrappers do not cover.

use std::ffi::CString;

use pgrx::prelude::*;

use crate::infra::errors;

/// Runs a utility statement such as `SET LOCAL tenancy.context = '...'`.
///
/// pgrx's mutating SPI entry points assign a transaction id first, which fails on a hot
/// standby; a `SET` needs none, so this goes to `SPI_execute` directly. The statement must
/// come through SPI (not `set_config()`): Citus forwards `SET LOCAL` statements to its
/// workers and nothing else.
pub fn run_utility(sql: &str) {
    let Ok(c) = CString::new(sql) else {
        errors::internal("utility statement", "contains a NUL byte")
    };
    // SAFETY: SPI_connect/SPI_finish bracket a single SPI_execute; an ERROR raised inside
    // unwinds through here and the transaction abort releases the SPI connection.
    let rc = unsafe {
        let rc = pg_sys::SPI_connect();
        if rc < 0 {
            errors::internal("SPI_connect", rc);
        }
        let rc = pg_sys::SPI_execute(c.as_ptr(), false, 0);
        pg_sys::SPI_finish();
        rc
    };
    if rc < 0 {
        errors::internal("running a utility statement", rc);
    }
}

/// A setting changed for as long as this lives, the way a function's SET clause
/// does it (a GUC nesting level of its own, action SAVE, so it is allowed in parallel workers
/// and a `SET LOCAL` made meanwhile is kept).
///
/// Much of what the extension reads runs with the caller's rights and search_path: the
/// getters a policy calls, the setters, everything reached before a SECURITY DEFINER step. A
/// role that may create objects could otherwise plant an operator or function of the exact
/// argument types in a schema on its path, which wins over pg_catalog's when pg_catalog's needs
/// an implicit cast, and change what the query means (e.g. learn no registry table, so that
/// revocations never reach its backend). Every read through [`select_one`], [`select_row`] and
/// [`pinned`] is made under this path; the SQL is also written schema-qualified.
struct SetFor {
    guc_level: i32,
}

impl SetFor {
    fn enter(name: &core::ffi::CStr, value: &core::ffi::CStr) -> SetFor {
        // SAFETY: a new GUC nesting level and one SAVE-action assignment, undone in Drop (or
        // by the (sub)transaction abort while an ERROR unwinds).
        let guc_level = unsafe {
            let level = pg_sys::NewGUCNestLevel();
            pg_sys::set_config_option(
                name.as_ptr(),
                value.as_ptr(),
                pg_sys::GucContext::PGC_USERSET,
                pg_sys::GucSource::PGC_S_SESSION,
                pg_sys::GucAction::GUC_ACTION_SAVE,
                true,
                pgrx::PgLogLevel::ERROR as i32,
                false,
            );
            level
        };
        SetFor { guc_level }
    }
}

impl Drop for SetFor {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            // SAFETY: pops the level enter() pushed; `true` keeps what was SET LOCAL inside it
            // and restores the SAVE, as a function's SET clause does on return.
            unsafe { pg_sys::AtEOXact_GUC(true, self.guc_level) };
        }
    }
}

/// `f` with one setting changed for its duration only, like a function's SET clause.
fn with_setting<R>(name: &core::ffi::CStr, value: &core::ffi::CStr, f: impl FnOnce() -> R) -> R {
    let _set = SetFor::enter(name, value);
    f()
}

/// Runs `f` (SPI reads) under `search_path = pg_catalog, pg_temp` (see [`SetFor`]).
pub fn pinned<R>(f: impl FnOnce() -> R) -> R {
    with_setting(c"search_path", c"pg_catalog, pg_temp", f)
}

/// The first row of a read-only query, handed to `read`; `None` when there is no row. Reads
/// through `Spi::connect` (no transaction id), so it also works on a hot standby.
pub fn select_row<T>(
    sql: &str,
    args: &[pgrx::datum::DatumWithOid],
    read: impl FnOnce(&pgrx::spi::SpiTupleTable) -> Result<T, pgrx::spi::Error>,
) -> Result<Option<T>, pgrx::spi::Error> {
    let _path = SetFor::enter(c"search_path", c"pg_catalog, pg_temp");
    Spi::connect(|c| {
        let t = c.select(sql, Some(1), args)?;
        if t.is_empty() {
            return Ok(None);
        }
        read(&t.first()).map(Some)
    })
}

/// The first column of the first row of a read-only query; `None` when there is no row or
/// the value is NULL. Unlike `Spi::get_one`, it assigns no transaction id (a hot standby
/// refuses one), so every read of the extension goes through here or [`select_row`].
pub fn select_one<T: FromDatum + IntoDatum>(
    sql: &str,
    args: &[pgrx::datum::DatumWithOid],
) -> Result<Option<T>, pgrx::spi::Error> {
    select_row(sql, args, |r| r.get_one::<T>()).map(Option::flatten)
}

/// Runs an INSERT/UPDATE/DELETE … RETURNING and gives the first returned value.
///
/// `Spi::get_one*` runs its query with a row limit of 1. A data-modifying statement stopped
/// after its first row never finishes its ModifyTable node, so its AFTER STATEMENT triggers
/// never fire: the registry triggers that invalidate every backend's cache would be skipped.
/// This runs the statement to completion.
pub fn dml_returning<T: FromDatum + IntoDatum>(
    sql: &str,
    args: &[pgrx::datum::DatumWithOid],
) -> Result<Option<T>, pgrx::spi::Error> {
    Spi::connect_mut(|c| {
        let table = c.update(sql, None, args)?;
        if table.is_empty() {
            return Ok(None);
        }
        table.first().get_one::<T>()
    })
}

/// Citus registers this setting when it is loaded, which it must be at server start
/// (`shared_preload_libraries`), so the answer cannot change within a backend.
pub fn citus_loaded() -> bool {
    thread_local! {
        static CITUS: std::cell::OnceCell<bool> = const { std::cell::OnceCell::new() };
    }
    CITUS.with(|c| {
        *c.get_or_init(|| {
            // SAFETY: a read-only lookup in the GUC table; missing_ok = true returns NULL for
            // an unknown name instead of raising.
            unsafe {
                !pg_sys::GetConfigOption(c"citus.propagate_set_commands".as_ptr(), true, false)
                    .is_null()
            }
        })
    })
}

/// Stores `value` in the setting `tenancy.context`, for the transaction (`SET LOCAL`) or the
/// session (`SET`).
///
/// Under Citus the value must travel as a `SET LOCAL` statement, which Citus forwards to its
/// workers. Without Citus nothing reads the statement, only the setting, so it is set
/// directly, as `SET` itself does it (`ExecSetVariableStmt` calls `set_config_option` with
/// source PGC_S_SESSION and the same actions): the same check and assign hooks run, the same
/// transaction-end rollback applies, and a transaction saves the SPI round (parse, plan and
/// execute of a utility statement) that was most of what setting a context cost.
pub fn set_carrier(value: &str, is_local: bool) {
    if citus_loaded() || crate::infra::gucs::CARRIER_AS_STATEMENT.get() {
        let scope = if is_local { "LOCAL " } else { "" };
        run_utility(&format!(
            "SET {scope}tenancy.context = {}",
            pgrx::spi::quote_literal(value)
        ));
        return;
    }
    let Ok(v) = CString::new(value) else {
        errors::internal("context carrier", "contains a NUL byte")
    };
    let action = if is_local {
        pg_sys::GucAction::GUC_ACTION_LOCAL
    } else {
        pg_sys::GucAction::GUC_ACTION_SET
    };
    // SAFETY: both strings are NUL-terminated and outlive the call; an ERROR from the check
    // hook (elevel ERROR) unwinds through pgrx's guarded FFI boundary.
    unsafe {
        pg_sys::set_config_option(
            c"tenancy.context".as_ptr(),
            v.as_ptr(),
            pg_sys::GucContext::PGC_USERSET,
            pg_sys::GucSource::PGC_S_SESSION,
            action,
            true,
            pgrx::PgLogLevel::ERROR as i32,
            false,
        );
    }
}

/// Runs `f`, the extension's own DDL on a user's table, with Citus propagating DDL to the
/// table's shards whatever the caller set: `citus.enable_ddl_propagation` is a setting any
/// role may turn off, and protect() with it off would protect the coordinator's table and
/// none of its shards. Without Citus, `f()`.
pub fn citus_ddl<R>(f: impl FnOnce() -> R) -> R {
    if !citus_loaded() {
        return f();
    }
    with_setting(c"citus.enable_ddl_propagation", c"on", f)
}

/// Runs `f` with the shards of Citus tables visible in `pg_class`: Citus hides them from
/// the catalog queries of ordinary sessions (`citus.override_table_visibility`), and the DDL
/// guard must see a shard that such a session alters. Without Citus, `f()`.
pub fn citus_shards_visible<R>(f: impl FnOnce() -> R) -> R {
    if !citus_loaded() {
        return f();
    }
    with_setting(c"citus.override_table_visibility", c"off", f)
}

/// Runs `f`, which reads the registry, with Citus allowing it inside a query on a shard.
///
/// Under Citus the registry is made of reference tables (scale/citus.rs), and a policy on a
/// shard verifies the context on the worker: that read is a distributed query nested in a
/// query on a shard, which Citus refuses unless `citus.allow_nested_distributed_execution`
/// is on. Its worry is a shard moving away under the nested query; a reference table has a
/// copy on every node, read locally. The setting holds for `f` alone, like a function's
/// `SET` clause (a nested GUC level, undone by an error's rollback too).
pub fn registry_reads<R>(f: impl FnOnce() -> R) -> R {
    if !citus_loaded() {
        return f();
    }
    with_setting(c"citus.allow_nested_distributed_execution", c"on", f)
}
