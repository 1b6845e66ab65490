//! The `tenancy.context` setting: the carrier of the verified tenant context.
//!
//! It is deliberately USERSET: poolers, PostgREST and Citus forward it with `SET LOCAL`, and a
//! forged value simply does not verify. Its check hook refuses it as a stored default and on a
//! connection with leftover temporary objects; its assign hook tells the cache that the carrier
//! changed.

use core::ffi::{c_char, c_void, CStr};
use std::ffi::CString;

use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use pgrx::prelude::*;

use crate::context::session_objects;
use crate::registry::cache;

static CONTEXT: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);

/// From _PG_init, before `gucs::init` reserves the `tenancy` prefix.
pub fn init() {
    // SAFETY: the hooks are #[pg_guard]ed, never raise and never call back into PostgreSQL
    // beyond the GUC_check_err* helpers.
    unsafe {
        GucRegistry::define_string_guc_with_hooks(
            c"tenancy.context",
            c"Signed tenant context of this transaction or session.",
            c"Set by tenancy.set_context(), set_context_from_key() or set_tenant(); may be forwarded verbatim with SET LOCAL. A value that does not verify raises SQLSTATE 28000 when it is used; empty means no context.",
            &CONTEXT,
            GucContext::Userset,
            GucFlags::default(),
            Some(check_context),
            Some(cache::context_assigned),
            None,
        );
    }
}

/// The carrier may arrive with `SET` / `SET LOCAL` (or a client's startup options, as a pooler
/// forwards it), never as a stored default: `ALTER ROLE … SET tenancy.context` would hand one
/// tenant's context to every later session of that role, and a request that forgot to set its
/// own context would see that tenant's rows instead of none. Empty (no context) is always fine.
#[pg_guard]
unsafe extern "C-unwind" fn check_context(
    newval: *mut *mut c_char,
    _extra: *mut *mut c_void,
    source: pg_sys::GucSource::Type,
) -> bool {
    // SAFETY: PostgreSQL passes a valid pointer to the proposed value (which may be NULL).
    let raw = unsafe { *newval };
    // SAFETY: a non-NULL proposed value is a NUL-terminated string.
    if raw.is_null() || unsafe { *raw } == 0 {
        return true;
    }
    use pg_sys::GucSource::*;
    // A carrier assigned at run time (SET, SET LOCAL, set_config: a pooler or PostgREST
    // forwarding it) on a connection holding temporary relations from an earlier transaction
    // is refused here, before any statement of the transaction can name such a relation: a
    // check at the first getter call would miss a planted view or table that calls none.
    // SAFETY: plain reads of backend state; ParallelWorkerNumber is -1 outside workers (whose
    // GUCs are copied from a leader that checked already).
    if matches!(source, PGC_S_SESSION | PGC_S_INTERACTIVE)
        && unsafe { pg_sys::IsTransactionState() && pg_sys::ParallelWorkerNumber < 0 }
    {
        if let Some(name) = session_objects::leftover() {
            let message = std::ffi::CString::new(format!(
                "pg_tenancy: tenant context refused: {}",
                session_objects::message(&name)
            ))
            .unwrap_or_default();
            let hint = std::ffi::CString::new(session_objects::HINT).unwrap_or_default();
            // SAFETY: GUC_check_* are the documented way for a check hook to explain a refusal.
            unsafe {
                pg_sys::GUC_check_errcode(
                    PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE as i32,
                );
                pg_sys::GUC_check_errmsg_string = pg_sys::pstrdup(message.as_ptr());
                pg_sys::GUC_check_errhint_string = pg_sys::pstrdup(hint.as_ptr());
            }
            return false;
        }
    }
    if matches!(
        source,
        PGC_S_DEFAULT
            | PGC_S_DYNAMIC_DEFAULT
            | PGC_S_CLIENT
            | PGC_S_OVERRIDE
            | PGC_S_INTERACTIVE
            | PGC_S_SESSION
    ) {
        return true;
    }
    // SAFETY: GUC_check_* are the documented way for a check hook to explain a refusal.
    unsafe {
        pg_sys::GUC_check_errcode(PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE as i32);
        pg_sys::GUC_check_errmsg_string =
            pg_sys::pstrdup(c"pg_tenancy: tenancy.context cannot be stored as a default".as_ptr());
        pg_sys::GUC_check_errhint_string = pg_sys::pstrdup(
            c"set it per transaction with tenancy.set_context() (or SET LOCAL); never with ALTER ROLE, ALTER DATABASE or postgresql.conf"
                .as_ptr(),
        );
    }
    false
}

/// The carrier's current bytes without copying; empty when unset or RESET.
pub fn with_carrier<R>(f: impl FnOnce(&[u8]) -> R) -> R {
    // SAFETY: the GUC machinery owns the string and only replaces it between statements or
    // in SET, never while this backend is inside this function.
    let raw = unsafe { *CONTEXT.as_ptr() };
    if raw.is_null() {
        return f(&[]);
    }
    // SAFETY: non-NULL GUC string values are NUL-terminated.
    f(unsafe { CStr::from_ptr(raw) }.to_bytes())
}
