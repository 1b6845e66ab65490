//! Role names from role OIDs, for records of who acted: the current user, the outer (acting)
//! user, the session user. One lookup, with PostgreSQL's "no such role" answered as `None`.

use pgrx::prelude::*;

/// The role's name, or `None` for an OID that names no role (a role dropped meanwhile).
pub fn role_name(oid: pg_sys::Oid) -> Option<String> {
    // SAFETY: GetUserNameFromId with noerr = true returns NULL rather than raising for an
    // unknown OID, and a palloc'd C string otherwise.
    unsafe {
        let p = pg_sys::GetUserNameFromId(oid, true);
        (!p.is_null()).then(|| std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned())
    }
}

/// The name of the current user (what `current_user` says), read before a switch to the
/// extension's owner so that records keep who really acted.
pub fn current_user_name() -> String {
    // SAFETY: GetUserId reads a backend global.
    role_name(unsafe { pg_sys::GetUserId() }).unwrap_or_default()
}

/// The role acting, outside any SECURITY DEFINER function: the session user or the role
/// chosen with SET ROLE ("" for a role dropped meanwhile).
pub fn acting_role() -> String {
    // SAFETY: GetOuterUserId reads a backend global.
    role_name(unsafe { pg_sys::GetOuterUserId() }).unwrap_or_default()
}

/// The session user's name ("" for a role dropped meanwhile).
pub fn session_user_name() -> String {
    // SAFETY: GetSessionUserId reads a backend global.
    role_name(unsafe { pg_sys::GetSessionUserId() }).unwrap_or_default()
}
