//! Acting as the extension's owner for one step, the way PostgreSQL runs foreign-key checks
//! as the table's owner: for writes into tables nobody else may write (the audit log) and for
//! objects the owner must own (benchmark views), from functions that otherwise keep the
//! caller's identity and rights.

use pgrx::prelude::*;

use crate::errors::{self, SpiOrBug};

/// While alive, the current user is the extension's owner (with the caller's security
/// context plus SECURITY_LOCAL_USERID_CHANGE, so `SET ROLE` cannot be used meanwhile). Dropped
/// at the end of its scope, also when an ERROR unwinds through it; a transaction abort
/// restores the identity as well.
pub struct AsExtensionOwner {
    user: pg_sys::Oid,
    sec: i32,
}

impl AsExtensionOwner {
    pub fn enter() -> AsExtensionOwner {
        let owner = Spi::get_one::<pg_sys::Oid>(
            "SELECT e.extowner FROM pg_catalog.pg_extension e
              WHERE e.extname OPERATOR(pg_catalog.=) 'pg_tenancy'",
        )
        .or_bug("reading the extension's owner")
        .unwrap_or_else(|| errors::internal("reading the extension's owner", "not installed"));
        let mut user = pg_sys::InvalidOid;
        let mut sec = 0;
        // SAFETY: plain reads and writes of the backend's current user and security context.
        unsafe {
            pg_sys::GetUserIdAndSecContext(&mut user, &mut sec);
            pg_sys::SetUserIdAndSecContext(
                owner,
                sec | pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32,
            );
        }
        AsExtensionOwner { user, sec }
    }
}

impl Drop for AsExtensionOwner {
    fn drop(&mut self) {
        // SAFETY: restores exactly what enter() saved.
        unsafe { pg_sys::SetUserIdAndSecContext(self.user, self.sec) };
    }
}

/// Runs `f` as the extension's owner.
pub fn as_extension_owner<R>(f: impl FnOnce() -> R) -> R {
    let _owner = AsExtensionOwner::enter();
    f()
}

/// The name of the current user (what `current_user` says), read before a switch to the
/// extension's owner so that records keep who really acted.
pub fn current_user_name() -> String {
    // SAFETY: GetUserId reads a backend global; GetUserNameFromId with noerr = false raises a
    // PostgreSQL error (not UB) for an unknown OID, and returns a palloc'd C string otherwise.
    unsafe {
        let p = pg_sys::GetUserNameFromId(pg_sys::GetUserId(), false);
        std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned()
    }
}
