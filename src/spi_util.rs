//! SPI helpers the pgrx wrappers do not cover.

use std::ffi::CString;

use pgrx::prelude::*;

use crate::errors;

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
