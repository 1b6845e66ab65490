//! The `tenancy.*` settings.
//!
//! `tenancy.context` itself belongs to the context (`context::setting`). Everything that
//! decides what verifies (leeway, audience, issuer, claim path, maximum
//! age) is SUSET, so the application role cannot loosen it.

use core::ffi::{c_char, c_void, CStr};
use std::ffi::CString;

use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use pgrx::prelude::*;

pub static REQUIRE_CONTEXT: GucSetting<bool> = GucSetting::<bool>::new(false);
pub static JWT_LEEWAY: GucSetting<i32> = GucSetting::<i32>::new(30);
pub static JWT_TENANT_CLAIM: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"tenant_id"));
pub static JWT_AUDIENCE: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
pub static JWT_ISSUER: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
pub static CONTEXT_MAX_AGE: GucSetting<i32> = GucSetting::<i32>::new(86_400);
pub static DDL_GUARD: GucSetting<DdlGuard> = GucSetting::<DdlGuard>::new(DdlGuard::Error);
pub static CARRIER_AS_STATEMENT: GucSetting<bool> = GucSetting::<bool>::new(false);
pub static MAX_SUPPORT_MINUTES: GucSetting<i32> = GucSetting::<i32>::new(60);
pub static SIGN_TOKEN_MAX_AGE: GucSetting<i32> = GucSetting::<i32>::new(3600);
pub static TENANT_COLUMN_NAMES: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"tenant_id"));

pub static MIN_N: GucSetting<i32> = GucSetting::<i32>::new(5);
pub static MIN_TENANTS: GucSetting<i32> = GucSetting::<i32>::new(5);
pub static MAX_TENANT_SHARE: GucSetting<f64> = GucSetting::<f64>::new(0.25);
pub static GUARD_TENANT_LIMIT: GucSetting<i32> = GucSetting::<i32>::new(1024);
/// Most values a guarded_percentile group keeps, and most tenants a pooled group tracks.
pub static GUARD_GROUP_LIMIT: GucSetting<i32> = GucSetting::<i32>::new(1_000_000);
/// Largest `tenancy.min_n` (and tenant `min_n` setting) accepted.
pub const MAX_MIN_N: i32 = 1_000_000;

/// What the DDL guard does when a command would weaken a protected table.
#[derive(PostgresGucEnum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum DdlGuard {
    #[name = c"error"]
    Error,
    #[name = c"warn"]
    Warn,
    #[name = c"off"]
    Off,
}

pub fn init() {
    // SAFETY: the hooks are #[pg_guard]ed, never raise and never call back into PostgreSQL
    // beyond the GUC_check_err* helpers.
    unsafe {
        GucRegistry::define_string_guc_with_hooks(
            c"tenancy.jwt_tenant_claim",
            c"Claim (a dotted path for nested claims) that names the tenant in a token.",
            c"For example tenant_id or app_metadata.tenant_id.",
            &JWT_TENANT_CLAIM,
            GucContext::Suset,
            GucFlags::default(),
            Some(check_claim_path),
            None,
            None,
        );
    }
    GucRegistry::define_bool_guc(
        c"tenancy.require_context",
        c"Raise SQLSTATE 55000 instead of returning NULL when no tenant context is set.",
        c"Off: tenancy.current_tenant() is NULL without a context, so protected tables show zero rows and refuse writes. On: the same access raises an error.",
        &REQUIRE_CONTEXT,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"tenancy.jwt_leeway",
        c"Seconds of clock skew tolerated when checking a token's exp and nbf claims.",
        c"",
        &JWT_LEEWAY,
        0,
        3600,
        GucContext::Suset,
        GucFlags::UNIT_S,
    );
    GucRegistry::define_string_guc(
        c"tenancy.jwt_audience",
        c"When set, tokens must carry this value in their aud claim.",
        c"",
        &JWT_AUDIENCE,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"tenancy.jwt_issuer",
        c"When set, tokens must carry exactly this iss claim.",
        c"",
        &JWT_ISSUER,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"tenancy.context_max_age",
        c"Longest time a context set by pg_tenancy stays valid, in seconds.",
        c"A token's own exp (plus leeway) or an API key's expiry shortens it further.",
        &CONTEXT_MAX_AGE,
        60,
        31_536_000,
        GucContext::Suset,
        GucFlags::UNIT_S,
    );
    // sign_token() is reachable by the trusted tier: without a cap, a job could mint a token
    // that outlives its grant (revoking EXECUTE does not revoke what it already signed).
    GucRegistry::define_int_guc(
        c"tenancy.sign_token_max_age",
        c"Longest lifetime, in seconds, of a token minted by tenancy.sign_token().",
        c"sign_token() adds iat and, when the claims carry none, exp = now + this; a later exp is refused.",
        &SIGN_TOKEN_MAX_AGE,
        60,
        604_800,
        GucContext::Suset,
        GucFlags::UNIT_S,
    );
    GucRegistry::define_enum_guc(
        c"tenancy.ddl_guard",
        c"What to do with DDL that would weaken a protected table: error, warn or off.",
        c"Guards against DISABLE / NO FORCE ROW LEVEL SECURITY, dropping or altering the isolation policy, extra permissive policies, rules, and changing or dropping the tenant column.",
        &DDL_GUARD,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_bool_guc(
        c"tenancy.carrier_as_statement",
        c"Store the context with a SET LOCAL statement through SPI even without Citus.",
        c"Under Citus the context always travels as a SET LOCAL statement, which Citus forwards to its workers. Elsewhere it is set directly, which is faster; turn this on only for a middleware that, like Citus, forwards SET statements.",
        &CARRIER_AS_STATEMENT,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"tenancy.tenant_column_names",
        c"Column names that mark a table as holding tenant data, for tenancy.check().",
        c"A comma-separated list. tenancy.check() reports tables with one of these columns (or a column protect() was given) that are not protected.",
        &TENANT_COLUMN_NAMES,
        GucContext::Suset,
        GucFlags::from_bits_retain(pg_sys::GUC_LIST_INPUT as i32),
    );
    GucRegistry::define_int_guc(
        c"tenancy.max_support_minutes",
        c"Longest support session tenancy.begin_support() may open, in minutes.",
        c"begin_support(tenant, reason, minutes) refuses minutes above this with SQLSTATE 22023.",
        &MAX_SUPPORT_MINUTES,
        1,
        10_080,
        GucContext::Suset,
        GucFlags::UNIT_MIN,
    );
    // The guarded aggregates' thresholds: SUSET, so the application role can neither lower
    // them with SET nor through ALTER ROLE / ALTER DATABASE.
    GucRegistry::define_int_guc(
        c"tenancy.min_n",
        c"Fewest distinct contributors behind a value a guarded aggregate shows.",
        c"Below it the guarded aggregates return NULL. A tenant's settings (min_n) may raise it for queries under that tenant's context, never lower it.",
        &MIN_N,
        1,
        MAX_MIN_N,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"tenancy.min_tenants",
        c"Fewest distinct tenants behind a value the pooled guarded aggregates show.",
        c"",
        &MIN_TENANTS,
        1,
        10_000,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_float_guc(
        c"tenancy.max_tenant_share",
        c"Largest share of a pooled statistic one tenant may weigh (0.25 = 25%).",
        c"Its share of contributors for count, avg and percentile; of the sum of absolute values for sum.",
        &MAX_TENANT_SHARE,
        0.01,
        1.0,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"tenancy.guard_tenant_limit",
        c"Distinct contributors per tenant and group the pooled guarded aggregates track exactly.",
        c"Past it a tenant counts as exactly this many toward totals and as all of its rows toward its own share, which can only suppress more. Memory per tenant and group is about 16 bytes per tracked contributor.",
        &GUARD_TENANT_LIMIT,
        16,
        1_000_000,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"tenancy.guard_group_limit",
        c"Most values one guarded_percentile group keeps, and most tenants one pooled group tracks.",
        c"Past it the query fails with 54000 instead of growing without bound: the guard's state lives outside PostgreSQL's memory accounting. About 24 bytes per percentile value.",
        &GUARD_GROUP_LIMIT,
        1_000,
        100_000_000,
        GucContext::Suset,
        GucFlags::default(),
    );
    // SAFETY: called once from _PG_init with a static C string.
    unsafe { pg_sys::MarkGUCPrefixReserved(c"tenancy".as_ptr()) };
}

#[pg_guard]
unsafe extern "C-unwind" fn check_claim_path(
    newval: *mut *mut c_char,
    _extra: *mut *mut c_void,
    _source: pg_sys::GucSource::Type,
) -> bool {
    // SAFETY: PostgreSQL passes a valid pointer to the proposed value (which may be NULL).
    let raw = unsafe { *newval };
    if raw.is_null() {
        return false;
    }
    // SAFETY: a non-NULL proposed value is a NUL-terminated string owned by the GUC machinery.
    let value = unsafe { CStr::from_ptr(raw) };
    if value
        .to_str()
        .is_ok_and(tenancy_core::claims::valid_claim_path)
    {
        return true;
    }
    // SAFETY: GUC_check_* are the documented way for a check hook to explain a refusal.
    unsafe {
        pg_sys::GUC_check_errcode(PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE as i32);
        pg_sys::GUC_check_errdetail_string = pg_sys::pstrdup(
            c"a claim path is 1 to 8 dot-separated names of letters, digits, '_', ':' or '-'"
                .as_ptr(),
        );
    }
    false
}

fn string_setting(s: &GucSetting<Option<CString>>) -> Option<String> {
    s.get()
        .and_then(|c| c.into_string().ok())
        .filter(|v| !v.is_empty())
}

pub fn audience() -> Option<String> {
    string_setting(&JWT_AUDIENCE)
}

pub fn issuer() -> Option<String> {
    string_setting(&JWT_ISSUER)
}

pub fn tenant_claim() -> String {
    string_setting(&JWT_TENANT_CLAIM).unwrap_or_else(|| "tenant_id".into())
}
