//! Per-tenant limits: `statement_timeout`, `lock_timeout` and `work_mem` from the tenant's
//! plan (`tenancy.plans`) and its own `settings`, applied when a context is set.
//!
//! The effective limits are computed once, when the tenant's registry row is loaded into this
//! backend's cache (`registry::lookup`), so setting a context costs a hash lookup more than before
//! and nothing at all for a tenant without limits. A change to `tenancy.plans` or
//! `tenancy.tenants` invalidates every backend's cache from its next transaction (see
//! `registry::cache`), like a deactivation.
//!
//! Applying goes straight to `set_config_option()` with the arguments `SET [LOCAL]` itself
//! uses (`PGC_S_SESSION`, `GUC_ACTION_LOCAL` or `GUC_ACTION_SET`, SUSET context for superusers,
//! USERSET otherwise): the value is reverted at the end of the transaction, or of a subtransaction
//! rolled back, exactly as `SET LOCAL` would be, without planning and executing an SPI
//! statement per limit. A limit is only ever applied when it is lower than the value in effect
//! (0, no timeout, counts as infinite), so a tenant can never raise what the role already has.

use std::ffi::CString;

use pgrx::prelude::*;
use pgrx::JsonB;
use serde_json::{Map, Value};

use crate::infra::args;
use crate::infra::errors;

/// Limits in the GUCs' base units: milliseconds for the timeouts, kilobytes for work_mem.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    pub statement_timeout: Option<i32>,
    pub lock_timeout: Option<i32>,
    pub work_mem: Option<i32>,
}

#[derive(Clone, Copy)]
enum Key {
    StatementTimeout,
    LockTimeout,
    WorkMem,
}

const KEYS: [(&str, Key); 3] = [
    ("statement_timeout", Key::StatementTimeout),
    ("lock_timeout", Key::LockTimeout),
    ("work_mem", Key::WorkMem),
];

impl Key {
    fn unit_flag(self) -> u32 {
        match self {
            Key::StatementTimeout | Key::LockTimeout => pg_sys::GUC_UNIT_MS,
            Key::WorkMem => pg_sys::GUC_UNIT_KB,
        }
    }

    /// work_mem's own lower bound; a timeout of 0 would mean "no timeout", i.e. a raise.
    fn min(self) -> i32 {
        match self {
            Key::StatementTimeout | Key::LockTimeout => 1,
            Key::WorkMem => 64,
        }
    }

    fn guc(self) -> &'static core::ffi::CStr {
        match self {
            Key::StatementTimeout => c"statement_timeout",
            Key::LockTimeout => c"lock_timeout",
            Key::WorkMem => c"work_mem",
        }
    }

    /// The value in effect in this backend right now.
    fn current(self) -> i32 {
        // SAFETY: plain reads of backend-local GUC variables.
        unsafe {
            match self {
                Key::StatementTimeout => pg_sys::StatementTimeout,
                Key::LockTimeout => pg_sys::LockTimeout,
                Key::WorkMem => pg_sys::work_mem,
            }
        }
    }

    fn get(self, l: &Limits) -> Option<i32> {
        match self {
            Key::StatementTimeout => l.statement_timeout,
            Key::LockTimeout => l.lock_timeout,
            Key::WorkMem => l.work_mem,
        }
    }

    fn set(self, l: &mut Limits, v: i32) {
        match self {
            Key::StatementTimeout => l.statement_timeout = Some(v),
            Key::LockTimeout => l.lock_timeout = Some(v),
            Key::WorkMem => l.work_mem = Some(v),
        }
    }
}

/// One value: a JSON integer in the base unit, or a string PostgreSQL's own GUC parser
/// accepts for that setting ('100ms', '2s', '4MB').
fn parse_value(name: &str, key: Key, v: &Value) -> Result<i32, String> {
    let parsed = match v {
        Value::Number(n) => n.as_i64().and_then(|n| i32::try_from(n).ok()),
        Value::String(s) => {
            let c = CString::new(s.as_str()).map_err(|_| format!("{name} contains a NUL byte"))?;
            let mut out: core::ffi::c_int = 0;
            let mut hint: *const core::ffi::c_char = core::ptr::null();
            // SAFETY: parse_int reads a NUL-terminated string and writes an int and a hint
            // pointer; it never raises.
            let ok = unsafe {
                pg_sys::parse_int(c.as_ptr(), &mut out, key.unit_flag() as i32, &mut hint)
            };
            ok.then_some(out)
        }
        _ => None,
    };
    match parsed {
        Some(n) if n >= key.min() => Ok(n),
        Some(_) => Err(format!(
            "{name} must be at least {} {}",
            key.min(),
            if matches!(key, Key::WorkMem) {
                "kB"
            } else {
                "ms"
            }
        )),
        None => Err(format!(
            "{name} must be an integer ({}) or a string such as {}",
            if matches!(key, Key::WorkMem) {
                "kB"
            } else {
                "ms"
            },
            if matches!(key, Key::WorkMem) {
                "'4MB'"
            } else {
                "'100ms'"
            }
        )),
    }
}

/// The limit keys of a jsonb object. `strict`: every key must be a limit (a plan's `limits`);
/// otherwise other keys are left alone (a tenant's `settings` carry other things too).
pub fn parse(obj: &Map<String, Value>, strict: bool) -> Result<Limits, String> {
    let mut out = Limits::default();
    for (k, v) in obj {
        match KEYS.iter().find(|(n, _)| n == k) {
            Some((name, key)) => key.set(&mut out, parse_value(name, *key, v)?),
            None if strict => {
                return Err(format!(
                "unknown limit {k:?}: plans may set statement_timeout, lock_timeout and work_mem"
            ))
            }
            None => {}
        }
    }
    Ok(out)
}

impl Limits {
    pub fn is_empty(&self) -> bool {
        *self == Limits::default()
    }

    /// The plan's limits, lowered (never raised) by the tenant's own settings.
    pub fn lowered_by(self, tenant: Limits) -> Limits {
        let low = |a: Option<i32>, b: Option<i32>| match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Limits {
            statement_timeout: low(self.statement_timeout, tenant.statement_timeout),
            lock_timeout: low(self.lock_timeout, tenant.lock_timeout),
            work_mem: low(self.work_mem, tenant.work_mem),
        }
    }
}

/// The effective limits of a tenant from its plan's `limits` and its `settings` (both jsonb
/// objects already validated by the registry's CHECK constraints).
pub fn effective(plan: Option<&Value>, settings: Option<&Value>) -> Option<Limits> {
    let of = |v: Option<&Value>, strict: bool| match v {
        Some(Value::Object(m)) => {
            parse(m, strict).unwrap_or_else(|e| errors::internal("reading a tenant's limits", e))
        }
        _ => Limits::default(),
    };
    let limits = of(plan, true).lowered_by(of(settings, false));
    (!limits.is_empty()).then_some(limits)
}

/// Lowers statement_timeout, lock_timeout and work_mem to the tenant's limits where the value
/// in effect is higher, for the transaction (`is_local`) or the session.
pub fn apply(limits: &Limits, is_local: bool) {
    for (_, key) in KEYS {
        let Some(want) = key.get(limits) else {
            continue;
        };
        let current = key.current();
        let timeout = !matches!(key, Key::WorkMem);
        let lower = want < current || (timeout && current == 0);
        if !lower {
            continue;
        }
        let value = CString::new(want.to_string()).expect("digits");
        // SAFETY: the same call `SET [LOCAL] name = value` makes (ExecSetVariableStmt); an
        // invalid value raises an ordinary ERROR, which cannot happen for a validated limit.
        unsafe {
            let context = if pg_sys::superuser() {
                pg_sys::GucContext::PGC_SUSET
            } else {
                pg_sys::GucContext::PGC_USERSET
            };
            let action = if is_local {
                pg_sys::GucAction::GUC_ACTION_LOCAL
            } else {
                pg_sys::GucAction::GUC_ACTION_SET
            };
            pg_sys::set_config_option(
                key.guc().as_ptr(),
                value.as_ptr(),
                context,
                pg_sys::GucSource::PGC_S_SESSION,
                action,
                true,
                PgLogLevel::ERROR as i32,
                false,
            );
        }
    }
}

/// Largest `settings` of a tenant or `limits` of a plan, as jsonb text.
pub const MAX_JSON_BYTES: usize = 64 * 1024;

/// 54000 past [`MAX_JSON_BYTES`]: every backend that sets a tenant's context reads its settings
/// and plan, so their size is bounded when they are written.
pub fn check_json_size(what: &str, value: &JsonB) {
    let len = serde_json::to_string(&value.0).map_or(usize::MAX, |t| t.len());
    if len > MAX_JSON_BYTES {
        errors::too_large(
            format!("{what} may be at most {MAX_JSON_BYTES} bytes of JSON"),
            Some("keep large per-tenant data in your own tables"),
        );
    }
}

/// CHECK constraint of `tenancy.plans.limits` (strict) and `tenancy.tenants.settings`: raises
/// 22023 with what is wrong, so a bad limit is refused when it is written, not when a tenant
/// next sets its context.
#[pg_extern(immutable, parallel_safe)]
fn _limits_valid(value: JsonB, strict: bool) -> bool {
    let Value::Object(m) = &value.0 else {
        errors::bad_argument("limits must be a jsonb object".into(), None)
    };
    if let Err(e) = parse(m, strict) {
        errors::bad_argument(
            e,
            Some("for example '{\"statement_timeout\": \"5s\", \"lock_timeout\": \"1s\", \"work_mem\": \"16MB\"}'"),
        );
    }
    true
}

/// 22023 unless `plan` is a name no other can look like (`ident::valid_text`): a tenant put
/// on `gold` + NBSP would run without gold's limits while every listing shows `gold`.
pub fn check_plan_name(plan: &str) {
    args::text(
        plan,
        64,
        "plan names are 1 to 64 characters without control or invisible characters, spaces only inside",
        None,
    );
}

/// Defines or replaces a plan's limits; NULL limits remove the plan (its tenants then have
/// no plan limits).
#[pg_extern(volatile, parallel_unsafe, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn set_plan(plan: Option<&str>, limits: Option<JsonB>) {
    let plan = errors::required(plan, "plan");
    check_plan_name(plan);
    if limits.as_ref().is_some_and(|l| !l.0.is_object()) {
        errors::bad_argument(
            "limits must be a jsonb object".into(),
            Some(r#"for example '{"statement_timeout": "2s", "work_mem": "8MB"}'"#),
        );
    }
    if let Some(l) = &limits {
        check_json_size("a plan's limits", l);
    }
    let result = match limits {
        Some(l) => Spi::run_with_args(
            "INSERT INTO tenancy.plans (plan, limits) VALUES ($1, $2)
             ON CONFLICT (plan) DO UPDATE SET limits = EXCLUDED.limits, updated_at = now()",
            &[plan.into(), l.into()],
        ),
        None => Spi::run_with_args("DELETE FROM tenancy.plans WHERE plan = $1", &[plan.into()]),
    };
    if let Err(e) = result {
        errors::internal("writing tenancy.plans", e);
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn tenant_settings_only_lower() {
        let plan = Limits {
            statement_timeout: Some(1000),
            lock_timeout: None,
            work_mem: Some(4096),
        };
        let tenant = Limits {
            statement_timeout: Some(5000),
            lock_timeout: Some(200),
            work_mem: Some(1024),
        };
        assert_eq!(
            plan.lowered_by(tenant),
            Limits {
                statement_timeout: Some(1000),
                lock_timeout: Some(200),
                work_mem: Some(1024),
            }
        );
    }
}
