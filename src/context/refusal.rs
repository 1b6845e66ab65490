//! Refusing a context attempt: one structured LOG line, one more in `tenancy.stats()`, then
//! the 28000 error. Every refusal of a token, an API key or a carrier goes through
//! [`refuse`], so the three never drift apart, and its reason is a [`Reason`], so a misspelt
//! reason cannot compile.

use serde_json::json;
use tenancy_core::Refusal;

use crate::context::reason::{Attempt, Reason};
use crate::context::stats;
use crate::infra::{errors, roles, spi};

/// Logs, counts and raises 28000 "pg_tenancy: {subject} refused: {message}".
/// `tenant_claim` is the tenant the attempt named (unverified), for the LOG line only.
pub fn refuse(
    attempt: Attempt,
    reason: Reason,
    tenant_claim: Option<&str>,
    subject: &str,
    message: &str,
    hint: &str,
) -> ! {
    log(attempt, reason, tenant_claim);
    errors::refused(subject, message, hint)
}

/// A token whose own content is refused.
pub fn token(r: &Refusal, tenant_claim: Option<&str>) -> ! {
    refuse(
        Attempt::Token,
        r.into(),
        tenant_claim,
        "token",
        &r.message(),
        "mint a fresh token signed with a live key registered by tenancy.add_signing_key()",
    )
}

/// A carrier in `tenancy.context` that does not decode or verify.
pub fn carrier(r: &Refusal) -> ! {
    refuse(
        Attempt::Context,
        r.into(),
        None,
        "tenant context",
        &r.message(),
        "tenancy.context must hold a value set by tenancy.set_context(), set_context_from_key() or set_tenant(); call one of them again",
    )
}

/// One structured LOG line per refused attempt, and one more in `tenancy.stats()`: what was
/// refused, why, the tenant it claimed, the session user and the client's address; never the
/// credential itself.
fn log(attempt: Attempt, reason: Reason, tenant_claim: Option<&str>) {
    stats::count(reason);
    let role = roles::session_user_name();
    // An unverified claim is the attacker's text: bounded, and JSON-escaped by serde.
    let tenant_claim = tenant_claim.map(|t| t.chars().take(128).collect::<String>());
    let line = json!({
        "event": "context_refused",
        "what": attempt.name(),
        "reason": reason.name(),
        "tenant_claim": tenant_claim,
        "session_user": role,
        "client_addr": client_addr(),
    });
    pgrx::log!("pg_tenancy: {line}");
}

/// The client's address as `inet_client_addr()` gives it; NULL for a Unix-socket connection.
/// A read-only select, as a hot standby refuses a transaction id (and refusals happen there too).
fn client_addr() -> Option<String> {
    spi::select_one::<String>("SELECT pg_catalog.host(pg_catalog.inet_client_addr())", &[])
        .ok()
        .flatten()
}
