//! Every user-facing failure of the extension, with its SQLSTATE, in one place.
//!
//! Messages start with `pg_tenancy:`, never contain a token, key or secret, and carry a hint
//! when the caller can act on it.

use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;

/// Longest message any error of the extension carries (assert_isolated lists every finding,
/// so it is not short): a backstop behind [`user_input`], so that no path, even one that
/// forgot to shorten what it quotes, can send megabytes into the server log and the client's
/// error.
const MAX_MESSAGE_CHARS: usize = 8192;

fn raise(code: PgSqlErrorCode, message: String, hint: Option<&str>) -> ! {
    let message = match message.char_indices().nth(MAX_MESSAGE_CHARS) {
        None => message,
        Some((cut, _)) => format!("{}…", &message[..cut]),
    };
    let mut report = ErrorReport::new(code, message, "pg_tenancy");
    if let Some(hint) = hint {
        report = report.set_hint(hint);
    }
    report.report(PgLogLevel::ERROR);
    unreachable!("ERROR does not return")
}

/// 28000: a token, API key or context carrier that does not verify, or an inactive tenant.
pub fn refused(what: &str, reason: &str, hint: &str) -> ! {
    raise(
        PgSqlErrorCode::ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION,
        format!("pg_tenancy: {what} refused: {reason}"),
        Some(hint),
    )
}

/// 55000: a context is required and there is none.
pub fn no_context() -> ! {
    raise(
        PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
        "pg_tenancy: no tenant context is set".into(),
        Some("call tenancy.set_context(token) (or set_context_from_key / set_tenant) at the start of the transaction"),
    )
}

/// WARNING 25P01 (what PostgreSQL's own `SET LOCAL` warns with at top level): a
/// transaction-local context set outside a transaction block lives only as long as the one
/// statement that set it, so the statements after it run without a context. Not an error: a
/// single statement that sets the context and uses it (a CTE, a function) is fine.
pub fn context_outside_transaction() {
    ErrorReport::new(
        PgSqlErrorCode::ERRCODE_NO_ACTIVE_SQL_TRANSACTION,
        "pg_tenancy: the tenant context was set outside a transaction block: it ends with this statement, and the next statement has no context".to_string(),
        "pg_tenancy",
    )
    .set_hint("run BEGIN first and set the context inside the transaction (is_local => false sets it for the session, which a transaction pooler would hand to other clients)")
    .report(PgLogLevel::WARNING);
}

/// 55000: an object that is not in the state the operation needs (e.g. purging an active tenant).
pub fn not_in_state(message: String, hint: Option<&str>) -> ! {
    raise(
        PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
        format!("pg_tenancy: {message}"),
        hint,
    )
}

/// The argument, or 22023 when it is NULL.
pub fn required<T>(value: Option<T>, name: &str) -> T {
    match value {
        Some(v) => v,
        None => bad_argument(format!("{name} must not be NULL"), None),
    }
}

/// 55000: end_support() without a support session.
pub fn no_support_session() -> ! {
    raise(
        PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
        "pg_tenancy: no support session is open in this session".into(),
        Some("open one with tenancy.begin_support(tenant, reason, minutes)"),
    )
}

/// How much of a caller's input an error message or log line may quote.
pub const QUOTE_CHARS: usize = 64;

/// At most the first [`QUOTE_CHARS`] characters of user input, with an ellipsis when cut, for
/// error messages and log lines: quoting a whole argument would let any caller write megabytes
/// into the server log and into every client's error.
pub fn user_input(s: &str) -> String {
    match s.char_indices().nth(QUOTE_CHARS) {
        None => s.to_string(),
        Some((cut, _)) => format!("{}…", &s[..cut]),
    }
}

/// A caller's string as an SQL literal for a message, shortened by [`user_input`] first.
pub fn quoted(s: &str) -> String {
    pgrx::spi::quote_literal(user_input(s))
}

/// 54000: an input or a state past a documented limit.
pub fn too_large(message: String, hint: Option<&str>) -> ! {
    raise(
        PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
        format!("pg_tenancy: {message}"),
        hint,
    )
}

/// 22023: a malformed argument.
pub fn bad_argument(message: String, hint: Option<&str>) -> ! {
    raise(
        PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
        format!("pg_tenancy: {message}"),
        hint,
    )
}

/// 42501: a role acting beyond its grant.
pub fn forbidden(message: String, hint: Option<&str>) -> ! {
    raise(
        PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
        format!("pg_tenancy: {message}"),
        hint,
    )
}

/// 42704: a named object (tenant, key) that does not exist.
pub fn not_found(message: String, hint: Option<&str>) -> ! {
    raise(
        PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
        format!("pg_tenancy: {message}"),
        hint,
    )
}

/// 42710: creating something that already exists.
pub fn duplicate(message: String, hint: Option<&str>) -> ! {
    raise(
        PgSqlErrorCode::ERRCODE_DUPLICATE_OBJECT,
        format!("pg_tenancy: {message}"),
        hint,
    )
}

/// 0A000: a use that is not supported: part of the contract this version does not implement
/// yet, or a guarded aggregate used as a window function.
pub fn not_supported(message: String, hint: Option<&str>) -> ! {
    raise(
        PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
        format!("pg_tenancy: {message}"),
        hint,
    )
}

/// XX000 for failures that are bugs or broken installations, never for user input.
pub fn internal(context: &str, e: impl std::fmt::Display) -> ! {
    raise(
        PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
        format!("pg_tenancy: {context}: {e}"),
        None,
    )
}

/// Unwraps an SPI result; an SPI failure here means the extension's own SQL is broken.
pub trait SpiOrBug<T> {
    fn or_bug(self, context: &str) -> T;
}

impl<T> SpiOrBug<T> for Result<T, pgrx::spi::Error> {
    fn or_bug(self, context: &str) -> T {
        match self {
            Ok(v) => v,
            Err(e) => internal(context, e),
        }
    }
}

/// 55000: minting a token needs a live signing key.
pub fn no_signing_key() -> ! {
    raise(
        PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
        "pg_tenancy: there is no live signing key".into(),
        Some("register one with tenancy.add_signing_key(kid, secret)"),
    )
}

/// 42703: a column that does not exist.
pub fn undefined_column(message: String, hint: Option<&str>) -> ! {
    raise(
        PgSqlErrorCode::ERRCODE_UNDEFINED_COLUMN,
        format!("pg_tenancy: {message}"),
        hint,
    )
}

/// 55000: pseudonyms need a master secret; never hash with an empty or default key.
pub fn no_pseudonym_secret() -> ! {
    raise(
        PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
        "pg_tenancy: no pseudonym secret is configured".into(),
        Some("an administrator adds one with tenancy.add_pseudonym_secret(id)"),
    )
}

/// 42P01: a table that does not exist (any more).
pub fn undefined_table(message: String, hint: Option<&str>) -> ! {
    raise(
        PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE,
        format!("pg_tenancy: {message}"),
        hint,
    )
}
