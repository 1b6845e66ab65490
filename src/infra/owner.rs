//! Acting as the extension's owner for one step, the way PostgreSQL runs foreign-key checks
//! as the table's owner: for writes into tables nobody else may write (the audit log) and for
//! objects the owner must own (benchmark views), from functions that otherwise keep the
//! caller's identity and rights. And the reverse: acting as a table's owner, restricted, for
//! every statement the extension runs on a user's table with elevated rights (export, purge,
//! quota counts), so that the owner's code in it never runs with the extension's rights
//! (docs/security.md, class 2).

use pgrx::prelude::*;

use crate::infra::errors::{self, SpiOrBug};
use crate::infra::spi;

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
        let owner = spi::select_one::<pg_sys::Oid>(
            "SELECT e.extowner FROM pg_catalog.pg_extension e
              WHERE e.extname OPERATOR(pg_catalog.=) 'pg_tenancy'",
            &[],
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

/// While alive, the current user is a table's owner, the way PostgreSQL runs index builds,
/// VACUUM and referential-integrity queries: with SECURITY_RESTRICTED_OPERATION (no SET ROLE,
/// no temporary objects), with SECURITY_NOFORCE_RLS (the owner reads its own table whole
/// although row level security is forced: the step's own predicate selects the rows), and in a
/// GUC nesting level of its own, so a setting the owner's code changes (search_path, for one)
/// ends with the step. Everything the step's statement runs that the table's owner wrote or
/// chose (triggers and their WHEN clauses, rules, casts and output functions of its types,
/// domain checks, defaults, operators, foreign-key actions) then runs with the owner's rights,
/// never with the extension's.
pub struct AsTableOwner {
    user: pg_sys::Oid,
    sec: i32,
    guc_level: i32,
}

/// The owner of a relation; 42P01-like refusal through errors when it is gone.
pub fn table_owner(rel: pg_sys::Oid) -> pg_sys::Oid {
    spi::select_one::<pg_sys::Oid>(
        "SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) $1",
        &[rel.into()],
    )
    .or_bug("reading a table's owner")
    .unwrap_or_else(|| {
        errors::bad_argument(
            format!("relation with OID {} does not exist", u32::from(rel)),
            None,
        )
    })
}

impl AsTableOwner {
    pub fn enter(rel: pg_sys::Oid) -> AsTableOwner {
        let owner = table_owner(rel);
        let mut user = pg_sys::InvalidOid;
        let mut sec = 0;
        // SAFETY: reads and writes of the backend's current user, security context and GUC
        // nesting level, restored in Drop (or by the (sub)transaction abort).
        let guc_level = unsafe {
            pg_sys::GetUserIdAndSecContext(&mut user, &mut sec);
            pg_sys::SetUserIdAndSecContext(
                owner,
                sec | (pg_sys::SECURITY_LOCAL_USERID_CHANGE
                    | pg_sys::SECURITY_RESTRICTED_OPERATION
                    | pg_sys::SECURITY_NOFORCE_RLS) as i32,
            );
            pg_sys::NewGUCNestLevel()
        };
        AsTableOwner {
            user,
            sec,
            guc_level,
        }
    }
}

impl AsTableOwner {
    fn leave(&self) {
        // SAFETY: undoes exactly what enter() did. While an ERROR unwinds, the GUC stack is
        // left to the (sub)transaction abort, which pops it (as it would for a function's SET
        // clause); the identity is restored either way.
        unsafe {
            if !std::thread::panicking() {
                pg_sys::AtEOXact_GUC(false, self.guc_level);
            }
            pg_sys::SetUserIdAndSecContext(self.user, self.sec);
        }
    }
}

impl Drop for AsTableOwner {
    fn drop(&mut self) {
        self.leave();
    }
}

impl AsTableOwner {
    /// Restores what the step saved (through Drop).
    fn leave_now(self) {}
}

/// Runs `f` as the owner of `rel` (see [`AsTableOwner`]).
pub fn as_table_owner<R>(rel: pg_sys::Oid, f: impl FnOnce() -> R) -> R {
    let _owner = AsTableOwner::enter(rel);
    f()
}

/// An owner step opened from plpgsql (export_tenant), which cannot hold a Rust guard across
/// its statements. `_owner_step_leave` must be executable by the table's owner (the step
/// runs as that role), so it is granted to PUBLIC and closes a step only when given the
/// step's random token, which lives in the plpgsql function's variable and nowhere the
/// owner's code can read: the owner's code can never end the step early and continue with
/// the extension's identity.
struct Step {
    token: String,
    user: pg_sys::Oid,
    sec: i32,
    guc_level: i32,
}

thread_local! {
    static STEPS: std::cell::RefCell<Vec<Step>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Opens an owner step for `tbl` and returns its token. Granted to nobody: only the
/// extension's own SECURITY DEFINER code calls it.
#[pg_extern(volatile, parallel_unsafe)]
fn _owner_step_enter(tbl: pg_sys::Oid) -> String {
    let token: String = crate::infra::random::strong_random::<16>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    // Kept as plain values, not as a guard: a step left open by an aborted transaction (the
    // abort restored identity and settings) must never be undone a second time later.
    let guard = std::mem::ManuallyDrop::new(AsTableOwner::enter(tbl));
    STEPS.with(|s| {
        s.borrow_mut().push(Step {
            token: token.clone(),
            user: guard.user,
            sec: guard.sec,
            guc_level: guard.guc_level,
        })
    });
    token
}

/// Closes the innermost owner step opened with `token`.
#[pg_extern(volatile, parallel_unsafe)]
fn _owner_step_leave(token: &str) {
    let step = STEPS.with(|s| {
        let mut s = s.borrow_mut();
        let matches = s.last().is_some_and(|top| {
            top.token.len() == token.len()
                && top
                    .token
                    .bytes()
                    .zip(token.bytes())
                    .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                    == 0
        });
        if matches {
            s.pop()
        } else {
            None
        }
    });
    match step {
        Some(step) => AsTableOwner {
            user: step.user,
            sec: step.sec,
            guc_level: step.guc_level,
        }
        .leave_now(),
        None => errors::forbidden(
            "no owner step is open with this token".into(),
            Some("this function is called by tenancy.export_tenant() only"),
        ),
    }
}
