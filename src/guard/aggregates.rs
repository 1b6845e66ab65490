//! Min-N guarded aggregates: the PostgreSQL side.
//!
//! The aggregates themselves are hand-written `CREATE AGGREGATE`s in sql/guard.sql (an
//! `internal` state with parallel aggregation hits pgrx issue #2351, PostgreSQL rejects a
//! STRICT combine function for an `internal` state, and pgrx cannot set SSPACE). The support
//! functions below read their arguments straight from `fcinfo`, so one Rust function serves
//! every argument type: the types are learnt once per group from the call's expression
//! (`get_fn_expr_argtype`, as PostgreSQL's own polymorphic aggregates do). Everything that
//! decides — capped contributor sets, tenant bounds, the rules, exact sums — is in
//! `tenancy_core::guard`, tested without a server.
//!
//! Memory per group: the plain forms keep at most `min_n` contributor keys (16 bytes each) and
//! stop hashing once they have them; the pooled forms keep, per tenant, at most
//! `tenancy.guard_tenant_limit` keys and at most `tenancy.guard_group_limit` tenants;
//! `guarded_percentile` keeps every value with its contributor's key (24 bytes each), at most
//! `tenancy.guard_group_limit` of them. Past a limit the query fails (54000).

use pgrx::datum::Internal;
use pgrx::fcinfo::{pg_arg_is_null, pg_getarg_datum_raw, pg_getarg_type};
use pgrx::prelude::*;
use pgrx::{AnyNumeric, PgMemoryContexts};
use tenancy_core::guard::{
    hash_bytes, hash_i64, hash_tenant, hash_uuid, percentile_guarded, Key, NumericView, Special,
    State, Status, Thresholds, ValueAcc, ValueKind, Weighting,
};

use crate::infra::errors;
use crate::infra::gucs;

#[derive(Clone, Copy)]
enum ContributorType {
    Text,
    Int8,
    Uuid,
}

#[derive(Clone, Copy)]
enum ValueType {
    None,
    Int4,
    Int8,
    Float8,
    Numeric,
}

/// What the aggregate's arguments after the state are.
#[derive(Clone, Copy)]
enum Layout {
    /// (contributor [, tenant])
    Rows,
    /// (value, contributor [, tenant])
    Value,
    /// (value, fraction, contributor [, tenant])
    Percentile,
}

impl Layout {
    fn contributor_arg(self) -> usize {
        match self {
            Layout::Rows => 1,
            Layout::Value => 2,
            Layout::Percentile => 3,
        }
    }
}

struct GuardState {
    core: State,
    /// Known in the transition function; `None` in states rebuilt from bytes, which only
    /// combine and finish.
    types: Option<(ContributorType, ValueType)>,
}

fn thresholds() -> Thresholds {
    Thresholds {
        min_n: effective_min_n(),
        min_tenants: gucs::MIN_TENANTS.get().max(1) as u32,
        max_share: gucs::MAX_TENANT_SHARE.get(),
    }
}

/// `tenancy.min_n`, raised (never lowered) by the current tenant's `settings->'min_n'`.
/// Read once per group, from per-backend caches (the context and the registry).
fn effective_min_n() -> u32 {
    let base = gucs::MIN_N.get().max(1) as u32;
    crate::context::tenant_context::current()
        .and_then(|r| crate::registry::lookup::tenant_min_n(&r.ctx.tenant))
        .map_or(base, |t| t.max(base))
}

fn refuse_window() -> ! {
    errors::not_supported(
        "guarded aggregates cannot run as window functions".into(),
        Some("a window frame that slides one row at a time lets differences between frames reveal single contributors; aggregate with GROUP BY instead"),
    )
}

/// The aggregate's memory context; refuses window use.
unsafe fn agg_context(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::MemoryContext {
    let mut ctx: pg_sys::MemoryContext = std::ptr::null_mut();
    // SAFETY: fcinfo is the live call's; AggCheckCallContext only inspects it.
    let kind = unsafe { pg_sys::AggCheckCallContext(fcinfo, &mut ctx) };
    if kind == pg_sys::AGG_CONTEXT_WINDOW as i32 {
        refuse_window();
    }
    if kind == 0 || ctx.is_null() {
        errors::internal(
            "guarded aggregate support function",
            "called outside an aggregate",
        );
    }
    ctx
}

unsafe fn state_arg<'a>(fcinfo: pg_sys::FunctionCallInfo, n: usize) -> Option<&'a mut GuardState> {
    // SAFETY: argument n of an aggregate support function declared `internal` is either NULL
    // or a GuardState made by this module.
    unsafe {
        if pg_arg_is_null(fcinfo, n) {
            return None;
        }
        pg_getarg_datum_raw(fcinfo, n)
            .cast_mut_ptr::<GuardState>()
            .as_mut()
    }
}

fn internal_of(ptr: *mut GuardState) -> Internal {
    Internal::from(Some(pg_sys::Datum::from(ptr)))
}

/// Bytes of a text-like datum, detoasted.
unsafe fn text_bytes<'a>(d: pg_sys::Datum) -> &'a [u8] {
    // SAFETY: d is a non-NULL varlena datum of the argument's declared type.
    unsafe {
        let v = pg_sys::pg_detoast_datum_packed(d.cast_mut_ptr());
        pgrx::varlena::varlena_to_byte_slice(v)
    }
}

unsafe fn contributor_key(t: ContributorType, d: pg_sys::Datum) -> Key {
    match t {
        // SAFETY (all arms): d is a non-NULL datum of the declared type.
        ContributorType::Text => hash_bytes(unsafe { text_bytes(d) }),
        ContributorType::Int8 => hash_i64(d.value() as i64),
        ContributorType::Uuid => hash_uuid(unsafe { &*d.cast_mut_ptr::<[u8; 16]>() }),
    }
}

fn type_of(fcinfo: pg_sys::FunctionCallInfo, n: usize) -> pg_sys::Oid {
    // SAFETY: flinfo of a live call; an unknown expression yields InvalidOid.
    unsafe { pg_getarg_type(fcinfo, n) }
}

fn contributor_type(oid: pg_sys::Oid) -> ContributorType {
    match oid {
        pg_sys::TEXTOID | pg_sys::VARCHAROID => ContributorType::Text,
        pg_sys::INT8OID => ContributorType::Int8,
        pg_sys::UUIDOID => ContributorType::Uuid,
        other => errors::internal("guarded aggregate contributor type", other.to_u32()),
    }
}

fn value_type(oid: pg_sys::Oid) -> ValueType {
    match oid {
        pg_sys::INT4OID => ValueType::Int4,
        pg_sys::INT8OID => ValueType::Int8,
        pg_sys::FLOAT8OID => ValueType::Float8,
        pg_sys::NUMERICOID => ValueType::Numeric,
        other => errors::internal("guarded aggregate value type", other.to_u32()),
    }
}

unsafe fn new_state(
    fcinfo: pg_sys::FunctionCallInfo,
    layout: Layout,
    pooled: bool,
) -> &'static mut GuardState {
    // SAFETY: a live aggregate call.
    let ctx = unsafe { agg_context(fcinfo) };
    let contributor = contributor_type(type_of(fcinfo, layout.contributor_arg()));
    let value = match layout {
        Layout::Rows => ValueType::None,
        _ => value_type(type_of(fcinfo, 1)),
    };
    let kind = match (layout, value) {
        (Layout::Rows, _) => ValueKind::Rows,
        (Layout::Percentile, _) => ValueKind::Values,
        (_, ValueType::Int4 | ValueType::Int8) => ValueKind::Int,
        (_, ValueType::Float8) => ValueKind::Float,
        _ => ValueKind::Numeric,
    };
    let core = State::new(
        kind,
        pooled,
        effective_min_n(),
        gucs::GUARD_TENANT_LIMIT.get().max(1) as u32,
    );
    let ptr = PgMemoryContexts::For(ctx).leak_and_drop_on_delete(GuardState {
        core,
        types: Some((contributor, value)),
    });
    // SAFETY: just allocated in the aggregate's context, which outlives the group.
    unsafe { &mut *ptr }
}

/// The top of the named tenant's tree when it is a registered tenant below an organization;
/// None otherwise (the name is pooled as it is).
fn pool_tenant(name: &[u8]) -> Option<std::rc::Rc<str>> {
    let name = std::str::from_utf8(name).ok()?;
    let entry = crate::registry::lookup::tenant(name);
    (&*entry.root != name).then_some(entry.root)
}

/// One row: NULL contributor (or tenant) — ignored entirely; NULL value — skipped, and its
/// contributor does not count.
unsafe fn transition(fcinfo: pg_sys::FunctionCallInfo, layout: Layout) -> Internal {
    // SAFETY: fcinfo is the live call of a support function declared in sql/guard.sql with
    // the arguments `layout` names (plus an optional trailing tenant).
    unsafe {
        let nargs = (*fcinfo).nargs as usize;
        let cpos = layout.contributor_arg();
        let tpos = (nargs > cpos + 1).then_some(cpos + 1);
        let existing = state_arg(fcinfo, 0);
        let skip = pg_arg_is_null(fcinfo, cpos)
            || tpos.is_some_and(|t| pg_arg_is_null(fcinfo, t))
            || (!matches!(layout, Layout::Rows) && pg_arg_is_null(fcinfo, 1));
        if skip {
            return match existing {
                Some(s) => internal_of(s),
                None => Internal::default(),
            };
        }
        let s = match existing {
            Some(s) => s,
            None => new_state(fcinfo, layout, tpos.is_some()),
        };
        let Some((ctype, vtype)) = s.types else {
            errors::internal("guarded aggregate", "transition on a combined state")
        };
        let vd = pg_getarg_datum_raw(fcinfo, 1);
        let numeric = match vtype {
            ValueType::Numeric => Some(
                NumericView::parse(text_bytes(vd))
                    .unwrap_or_else(|| errors::internal("guarded aggregate", "malformed numeric")),
            ),
            _ => None,
        };
        if let Layout::Percentile = layout {
            if pg_arg_is_null(fcinfo, 2) {
                errors::bad_argument("fraction must not be NULL".into(), None);
            }
            let f = f64::from_bits(pg_getarg_datum_raw(fcinfo, 2).value() as u64);
            if !(0.0..=1.0).contains(&f) {
                errors::bad_argument(
                    format!("percentile fraction {f} is not between 0 and 1"),
                    None,
                );
            }
            if let Err((a, b)) = s.core.set_fraction(f) {
                errors::bad_argument(
                    format!("percentile fraction changes within a group ({a} and {b})"),
                    Some("pass the same constant fraction for every row"),
                );
            }
        }
        // Percentiles keep every row's key: their rule counts people beside the result.
        // Percentiles keep every row's key: their rule counts people beside the result.
        let percentile = matches!(layout, Layout::Percentile);
        let mut person: Key = 0;
        if s.core.wants_contributor() || percentile {
            let key = contributor_key(ctype, pg_getarg_datum_raw(fcinfo, cpos));
            let named = tpos.map(|t| text_bytes(pg_getarg_datum_raw(fcinfo, t)));
            let tenant = named.map(hash_tenant);
            // The same contributor id in two tenants is two people (tenant keys are 64-bit,
            // so the upper half keeps bigint ids apart; a collision only merges people).
            person = tenant.map_or(key, |t| key ^ (t << 64));
            // The pooled rules count companies, not locations (docs/organizations.md): the
            // tenant a contributor is pooled under is the top of its tree, so one company's
            // five locations are one tenant of the pool, and its weight is theirs together.
            // People stay apart per location (`person` above).
            let (key, tenant) = match named.and_then(pool_tenant) {
                Some(root) => (person, Some(hash_tenant(root.as_bytes()))),
                None => (key, tenant),
            };
            if s.core.wants_contributor() {
                let magnitude = if tenant.is_some() {
                    match (vtype, &numeric) {
                        (ValueType::Int4, _) => f64::from((vd.value() as i32).unsigned_abs()),
                        (ValueType::Int8, _) => (vd.value() as i64).unsigned_abs() as f64,
                        (ValueType::Float8, _) => f64::from_bits(vd.value() as u64).abs(),
                        (_, Some(n)) => n.abs_f64_approx(),
                        _ => 0.0,
                    }
                } else {
                    0.0
                };
                s.core.admit(key, tenant, magnitude);
            } else {
                s.core.admit_known();
            }
        } else {
            s.core.admit_known();
        }
        let key = person;
        check_group_size(&s.core);
        match (layout, vtype) {
            (Layout::Rows, _) | (_, ValueType::None) => {}
            (Layout::Value, ValueType::Int4) => s.core.add_int(i64::from(vd.value() as i32)),
            (Layout::Value, ValueType::Int8) => s.core.add_int(vd.value() as i64),
            (Layout::Value, ValueType::Float8) => {
                s.core.add_float(f64::from_bits(vd.value() as u64))
            }
            (Layout::Value, ValueType::Numeric) => {
                if let Some(n) = &numeric {
                    s.core.add_numeric(n);
                }
            }
            (Layout::Percentile, ValueType::Int4) => {
                s.core.push_value(f64::from(vd.value() as i32), key)
            }
            (Layout::Percentile, ValueType::Int8) => {
                s.core.push_value(vd.value() as i64 as f64, key)
            }
            (Layout::Percentile, ValueType::Float8) => {
                s.core.push_value(f64::from_bits(vd.value() as u64), key)
            }
            (Layout::Percentile, ValueType::Numeric) => {
                if let Some(n) = &numeric {
                    s.core.push_value(n.to_f64(), key);
                }
            }
        }
        internal_of(s)
    }
}

/// The per-group bound: the state lives outside PostgreSQL's memory accounting, so nothing
/// else would stop one group (a percentile over a huge table, or a pooled form whose tenant
/// argument is a different text on every row) from growing until the server runs out.
fn check_group_size(s: &State) {
    let limit = gucs::GUARD_GROUP_LIMIT.get().max(1) as usize;
    if s.values_len() > limit || s.tenants_len() > limit || s.tenant_keys() > limit as u64 {
        errors::too_large(
            format!("a guarded aggregate group holds more than {limit} values, tenants or contributors"),
            Some("aggregate over smaller groups, or have a superuser raise tenancy.guard_group_limit"),
        );
    }
}

/// Transition of guarded_count and guard_status: (internal, contributor [, tenant]).
#[pg_extern(sql = false, stable, parallel_safe)]
fn _guard_trans_rows(fcinfo: pg_sys::FunctionCallInfo) -> Internal {
    // SAFETY: declared in sql/guard.sql with exactly this layout.
    unsafe { transition(fcinfo, Layout::Rows) }
}

/// Transition of guarded_sum and guarded_avg: (internal, value, contributor [, tenant]).
#[pg_extern(sql = false, stable, parallel_safe)]
fn _guard_trans_value(fcinfo: pg_sys::FunctionCallInfo) -> Internal {
    // SAFETY: declared in sql/guard.sql with exactly this layout.
    unsafe { transition(fcinfo, Layout::Value) }
}

/// Transition of guarded_percentile: (internal, value, fraction, contributor [, tenant]).
#[pg_extern(sql = false, stable, parallel_safe)]
fn _guard_trans_percentile(fcinfo: pg_sys::FunctionCallInfo) -> Internal {
    // SAFETY: declared in sql/guard.sql with exactly this layout.
    unsafe { transition(fcinfo, Layout::Percentile) }
}

/// Combine (internal, internal): never returns the second state, which may live in a
/// per-tuple context.
#[pg_extern(sql = false, stable, parallel_safe)]
fn _guard_combine(fcinfo: pg_sys::FunctionCallInfo) -> Internal {
    // SAFETY: declared (internal, internal) in sql/guard.sql.
    unsafe {
        let a = state_arg(fcinfo, 0);
        let Some(b) = state_arg(fcinfo, 1) else {
            return a.map_or_else(Internal::default, |s| internal_of(s));
        };
        let a = match a {
            Some(a) => a,
            None => {
                let ctx = agg_context(fcinfo);
                let fresh = State::new(b.core.kind(), b.core.pooled(), 1, 1);
                let ptr = PgMemoryContexts::For(ctx).leak_and_drop_on_delete(GuardState {
                    core: fresh,
                    types: None,
                });
                &mut *ptr
            }
        };
        if let Err((x, y)) = a.core.merge(&b.core) {
            errors::bad_argument(
                format!("percentile fraction changes within a group ({x} and {y})"),
                Some("pass the same constant fraction for every row"),
            );
        }
        check_group_size(&a.core);
        internal_of(a)
    }
}

#[pg_extern(sql = false, immutable, parallel_safe)]
fn _guard_serialize(fcinfo: pg_sys::FunctionCallInfo) -> Option<Vec<u8>> {
    // SAFETY: declared (internal) STRICT in sql/guard.sql.
    unsafe { state_arg(fcinfo, 0) }.map(|s| s.core.encode())
}

#[pg_extern(sql = false, immutable, parallel_safe)]
fn _guard_deserialize(fcinfo: pg_sys::FunctionCallInfo) -> Internal {
    // SAFETY: declared (bytea, internal) STRICT in sql/guard.sql.
    let bytes = unsafe { text_bytes(pg_getarg_datum_raw(fcinfo, 0)) };
    let core = State::decode(bytes)
        .unwrap_or_else(|_| errors::internal("guarded aggregate", "malformed state bytes"));
    // The result lives in the calling (per-tuple) context; combine copies what it needs.
    let ptr = PgMemoryContexts::CurrentMemoryContext
        .leak_and_drop_on_delete(GuardState { core, types: None });
    internal_of(ptr)
}

/// The group's state when its value may be shown.
fn shown<'a>(fcinfo: pg_sys::FunctionCallInfo, w: Weighting) -> Option<&'a mut GuardState> {
    // SAFETY: finals are declared (internal) in sql/guard.sql; agg_context refuses windows.
    unsafe {
        agg_context(fcinfo);
        let s = state_arg(fcinfo, 0)?;
        (s.core.status(&thresholds(), w) == Status::Ok).then_some(s)
    }
}

fn numeric(text: &str) -> AnyNumeric {
    AnyNumeric::try_from(text).unwrap_or_else(|e| errors::internal("guarded aggregate", e))
}

fn special_text(s: Special) -> &'static str {
    match s {
        Special::NaN => "NaN",
        Special::PosInf => "Infinity",
        Special::NegInf => "-Infinity",
    }
}

fn sum_numeric(acc: &ValueAcc) -> Option<AnyNumeric> {
    match acc {
        ValueAcc::Int(v) => Some(numeric(&v.to_string())),
        ValueAcc::Numeric(d) => Some(match d.special() {
            Some(sp) => numeric(special_text(sp)),
            None => numeric(&d.to_decimal_string()),
        }),
        _ => None,
    }
}

#[pg_extern(sql = false, stable, parallel_safe)]
fn _guard_count_final(fcinfo: pg_sys::FunctionCallInfo) -> Option<i64> {
    shown(fcinfo, Weighting::Contributors).map(|s| s.core.rows as i64)
}

#[pg_extern(sql = false, stable, parallel_safe)]
fn _guard_status_final(fcinfo: pg_sys::FunctionCallInfo) -> &'static str {
    // SAFETY: declared (internal) in sql/guard.sql; agg_context refuses windows.
    unsafe {
        agg_context(fcinfo);
        match state_arg(fcinfo, 0) {
            Some(s) => s
                .core
                .status(&thresholds(), Weighting::Contributors)
                .as_str(),
            None => Status::TooFewContributors.as_str(),
        }
    }
}

/// guarded_sum over integer values: bigint, like sum(integer).
#[pg_extern(sql = false, stable, parallel_safe)]
fn _guard_sum_final_int8(fcinfo: pg_sys::FunctionCallInfo) -> Option<i64> {
    let s = shown(fcinfo, Weighting::AbsoluteSum)?;
    match s.core.acc {
        ValueAcc::Int(v) => {
            Some(i64::try_from(v).unwrap_or_else(|_| {
                errors::internal("guarded_sum", "an integer sum exceeded bigint")
            }))
        }
        _ => None,
    }
}

#[pg_extern(sql = false, stable, parallel_safe)]
fn _guard_sum_final_numeric(fcinfo: pg_sys::FunctionCallInfo) -> Option<AnyNumeric> {
    sum_numeric(&shown(fcinfo, Weighting::AbsoluteSum)?.core.acc)
}

#[pg_extern(sql = false, stable, parallel_safe)]
fn _guard_sum_final_float8(fcinfo: pg_sys::FunctionCallInfo) -> Option<f64> {
    match shown(fcinfo, Weighting::AbsoluteSum)?.core.acc {
        ValueAcc::Float(v) => Some(v),
        _ => None,
    }
}

/// guarded_avg over integer and numeric values: numeric, divided as avg() divides.
#[pg_extern(sql = false, stable, parallel_safe)]
fn _guard_avg_final_numeric(fcinfo: pg_sys::FunctionCallInfo) -> Option<AnyNumeric> {
    let s = shown(fcinfo, Weighting::Both)?;
    let sum = sum_numeric(&s.core.acc)?;
    Some(sum / AnyNumeric::from(s.core.rows))
}

#[pg_extern(sql = false, stable, parallel_safe)]
fn _guard_avg_final_float8(fcinfo: pg_sys::FunctionCallInfo) -> Option<f64> {
    let s = shown(fcinfo, Weighting::Both)?;
    match s.core.acc {
        ValueAcc::Float(v) => Some(v / s.core.rows as f64),
        _ => None,
    }
}

/// Sorts the kept values in place (declared FINALFUNC_MODIFY = READ_WRITE). Shown only with
/// min_n people at or below the result and min_n at or above it, beyond the largest tenant's
/// people in the pooled forms (`percentile_guarded`).
#[pg_extern(sql = false, stable, parallel_safe)]
fn _guard_percentile_final(fcinfo: pg_sys::FunctionCallInfo) -> Option<f64> {
    let s = shown(fcinfo, Weighting::Contributors)?;
    let fraction = s.core.fraction?;
    let min_n = thresholds().min_n;
    let residual = s
        .core
        .tallies()
        .and_then(|ts| ts.iter().map(|t| t.hi).max())
        .unwrap_or(0);
    match &mut s.core.acc {
        ValueAcc::Values(vs) => percentile_guarded(vs, fraction, min_n, residual),
        _ => None,
    }
}
