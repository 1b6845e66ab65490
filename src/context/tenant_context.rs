//! The tenant context: setting it (token, API key, trusted), reading it, clearing it.
//!
//! Setting verifies the credential once, then stores a *carrier* (a compact value MAC'd with
//! the database's carrier key) in `tenancy.context` as `SET LOCAL` would (see
//! `spi::set_carrier`: a real `SET LOCAL` statement under Citus). Reading verifies the
//! carrier on first use and caches the answer (see `registry::cache`), so a protected query pays for
//! a pointer comparison, not a MAC.

use std::rc::Rc;

use pgrx::prelude::*;
use pgrx::JsonB;
use serde_json::{Map, Value};
use tenancy_core::carrier::{self, Context, Source};
use tenancy_core::{apikey, claims, ident, jwt, Alg, Refusal};

use crate::context::reason::{Attempt, Reason};
use crate::context::refusal;
use crate::context::setting;
use crate::infra::args;
use crate::infra::catalog;
use crate::infra::errors;
use crate::infra::gucs;
use crate::infra::spi;
use crate::registry::cache::{self, Resolved};
use crate::registry::lookup::{self, TenantStatus};
use crate::registry::plans::{self, Limits};

fn tenant_refused(attempt: Attempt, subject: &str, tenant: &str, status: TenantStatus) -> ! {
    let (reason, message) = match status {
        TenantStatus::Inactive => (Reason::InactiveTenant, "the tenant is deactivated"),
        _ => (Reason::UnregisteredTenant, "the tenant is not registered"),
    };
    refusal::refuse(
        attempt,
        reason,
        Some(tenant),
        subject,
        message,
        "an administrator registers tenants with tenancy.create_tenant() and reactivates them with tenancy.reactivate_tenant()",
    )
}

/// The tenant's cached limits, if it is active (refused otherwise).
pub fn require_active(attempt: Attempt, subject: &str, tenant: &str) -> Option<Rc<Limits>> {
    let entry = lookup::tenant(tenant);
    if entry.status != TenantStatus::Active {
        tenant_refused(attempt, subject, tenant, entry.status);
    }
    entry.limits
}

/// The latest moment a new context may live to, from `tenancy.context_max_age`.
fn max_expiry(now: i64) -> i64 {
    now.saturating_add(i64::from(gucs::CONTEXT_MAX_AGE.get()))
}

/// Stores a verified context in `tenancy.context`, primes this backend's cache with it, and
/// lowers the tenant's limits into effect with the same scope.
pub fn install(ctx: Context, limits: Option<Rc<Limits>>, is_local: bool) -> Rc<Resolved> {
    // SAFETY: IsTransactionBlock only reads the transaction state.
    if is_local && !unsafe { pg_sys::IsTransactionBlock() } {
        errors::context_outside_transaction();
    }
    let key = lookup::carrier_key();
    let value = carrier::encode(&ctx, &key);
    let organization = organization_of(&ctx);
    let resolved = Rc::new(Resolved::new(ctx).organization(organization));
    // Known as verified before it is set: the carrier's assign hook can then tell which
    // tenant it names (routed plans survive a new carrier of the same tenant).
    cache::remember_verified(value.as_bytes(), resolved.clone());
    spi::set_carrier(&value, is_local);
    cache::set_current(Some(resolved.clone()));
    if let Some(l) = limits {
        plans::apply(&l, is_local);
    }
    resolved
}

fn verify_token(token: &str) -> (claims::Identity, Map<String, Value>, String) {
    let parsed = jwt::parse(token).unwrap_or_else(|r| refusal::token(&r, None));
    let tenant_claim = gucs::tenant_claim();
    // What the token claims, for the refusal log line only (it is not verified yet).
    let claimed = claims::claim_at(&parsed.claims, &tenant_claim).and_then(Value::as_str);
    let refuse = |r: Refusal| -> ! { refusal::token(&r, claimed) };
    let Some(alg) = Alg::parse(&parsed.header.alg) else {
        refuse(Refusal::UnsupportedAlg)
    };
    let keys = lookup::signing_keys();
    let key = match &parsed.header.kid {
        Some(kid) => {
            let Some(key) = keys.iter().find(|k| &k.kid == kid) else {
                refuse(Refusal::UnknownKid)
            };
            if key.alg != alg {
                refuse(Refusal::UnsupportedAlg);
            }
            if !parsed.verify(alg, &key.secret) {
                refuse(Refusal::BadSignature);
            }
            key
        }
        None => {
            let mut candidates = keys.iter().filter(|k| k.alg == alg).peekable();
            if candidates.peek().is_none() {
                refuse(Refusal::NoMatchingKey);
            }
            candidates
                .find(|k| parsed.verify(alg, &k.secret))
                .unwrap_or_else(|| refuse(Refusal::BadSignature))
        }
    };
    let audience = gucs::audience();
    let issuer = gucs::issuer();
    let rules = claims::Rules {
        now: cache::statement_now(),
        leeway: i64::from(gucs::JWT_LEEWAY.get()),
        audience: audience.as_deref(),
        issuer: issuer.as_deref(),
        tenant_claim: &tenant_claim,
    };
    let identity = claims::validate(&parsed.claims, &rules).unwrap_or_else(|r| refuse(r));
    (identity, parsed.claims, key.kid.clone())
}

/// Verifies a signed token (a compact JWT) and makes its tenant the context of this
/// transaction (or session, with `is_local => false`). Returns the token's claims.
///
/// Not SECURITY DEFINER: the registry comes from this backend's cache (filled by the
/// `_registry_load` definer on a miss), and storing the carrier names no object a caller's
/// search_path could shadow (under Citus it is a `SET LOCAL tenancy.context` statement).
#[pg_extern(volatile, parallel_unsafe)]
fn set_context(token: Option<&str>, is_local: default!(Option<bool>, true)) -> JsonB {
    let Some(token) = token else {
        errors::bad_argument(
            "token must not be NULL".into(),
            Some("pass the bearer token"),
        )
    };
    let is_local = is_local.unwrap_or(true);
    let (identity, claims, kid) = verify_token(token);
    let limits = require_active(Attempt::Token, "token", &identity.tenant);
    let leeway = i64::from(gucs::JWT_LEEWAY.get());
    let now = cache::statement_now();
    let expires_at = identity
        .expires_at
        .map(|e| e.saturating_add(leeway))
        .map_or(max_expiry(now), |e| e.min(max_expiry(now)));
    install(
        Context {
            tenant: identity.tenant,
            actor: identity.actor,
            roles: identity.roles,
            source: Source::Token,
            expires_at: Some(expires_at),
            api_key_id: None,
            kid: Some(kid),
            support_reason: None,
            support_session: None,
            job: None,
        },
        limits,
        is_local,
    );
    JsonB(Value::Object(claims))
}

/// Verifies an API key (`tk_<key_id>_<secret>`) and makes its tenant the context.
#[pg_extern(volatile, parallel_unsafe)]
fn set_context_from_key(api_key: Option<&str>, is_local: default!(Option<bool>, true)) -> JsonB {
    let Some(api_key) = api_key else {
        errors::bad_argument(
            "api_key must not be NULL".into(),
            Some("pass the key returned by tenancy.create_api_key()"),
        )
    };
    let is_local = is_local.unwrap_or(true);
    let invalid = |reason: Reason| -> ! {
        refusal::refuse(
            Attempt::ApiKey,
            reason,
            None,
            "API key",
            "it is not a valid key",
            "use the whole key exactly as tenancy.create_api_key() returned it",
        )
    };
    let Some((key_id, secret)) = apikey::parse(api_key) else {
        invalid(Reason::Malformed)
    };
    let Some(row) = lookup::api_key(key_id) else {
        invalid(Reason::UnknownKey)
    };
    if !apikey::secret_matches(secret, &row.secret_hash) {
        invalid(Reason::BadSecret);
    }
    let now = cache::statement_now();
    if row.revoked {
        refusal::refuse(
            Attempt::ApiKey,
            Reason::Revoked,
            Some(&row.tenant),
            "API key",
            "it has been revoked",
            "ask an administrator for a new key",
        );
    }
    if row.expires_at.is_some_and(|e| now >= e) {
        refusal::refuse(
            Attempt::ApiKey,
            Reason::Expired,
            Some(&row.tenant),
            "API key",
            "it has expired",
            "ask an administrator for a new key",
        );
    }
    let limits = require_active(Attempt::ApiKey, "API key", &row.tenant);
    let expires_at = row
        .expires_at
        .map_or(max_expiry(now), |e| e.min(max_expiry(now)));
    let resolved = install(
        Context {
            tenant: row.tenant.clone(),
            actor: Some(format!("api_key:{key_id}")),
            roles: row.roles.clone(),
            source: Source::ApiKey,
            expires_at: Some(expires_at),
            api_key_id: Some(key_id.to_string()),
            kid: None,
            support_reason: None,
            support_session: None,
            job: None,
        },
        limits,
        is_local,
    );
    let mut out = resolved.ctx.to_json();
    if let Value::Object(m) = &mut out {
        m.insert("key_id".into(), Value::String(key_id.into()));
        m.insert("label".into(), Value::String(row.label));
    }
    JsonB(out)
}

/// Sets the context without a credential: for backend services, jobs and migrations running
/// under a role granted `tenancy.grant_trusted()`.
#[pg_extern(volatile, parallel_unsafe)]
fn set_tenant(
    tenant: Option<&str>,
    actor: default!(Option<&str>, "NULL"),
    roles: default!(Option<Vec<Option<String>>>, "'{}'"),
    is_local: default!(Option<bool>, true),
) -> JsonB {
    let Some(tenant) = tenant else {
        errors::bad_argument("tenant must not be NULL".into(), None)
    };
    args::tenant_id(tenant);
    if let Some(a) = actor {
        args::plain_text("actor", a, 256);
    }
    let roles = checked_roles(roles.unwrap_or_default());
    let limits = require_active(Attempt::Trusted, "trusted context", tenant);
    let now = cache::statement_now();
    let resolved = install(
        Context {
            tenant: tenant.to_string(),
            actor: actor.map(str::to_string),
            roles,
            source: Source::Trusted,
            // What the trusted tier makes lives no longer than what it mints: revoking its
            // grant leaves no day-long carrier behind (tenancy.sign_token_max_age).
            expires_at: Some(
                max_expiry(now).min(now.saturating_add(i64::from(gucs::SIGN_TOKEN_MAX_AGE.get()))),
            ),
            api_key_id: None,
            kid: None,
            support_reason: None,
            support_session: None,
            job: None,
        },
        limits,
        is_local.unwrap_or(true),
    );
    JsonB(resolved.ctx.to_json())
}

/// Validated, de-duplicated role names (22023 otherwise).
pub fn checked_roles(roles: Vec<Option<String>>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for r in roles {
        match r {
            Some(r) if ident::valid_role(&r) => {
                if !out.contains(&r) {
                    out.push(r);
                }
            }
            _ => errors::bad_argument(
                "roles must be non-NULL names of 1 to 64 characters without spaces, control or invisible characters".into(),
                None,
            ),
        }
    }
    if out.len() > 64 {
        errors::bad_argument("at most 64 roles".into(), None);
    }
    out
}

/// Verifies a carrier that this backend has not seen under the present registry generation.
/// SECURITY DEFINER because the carrier key and the registry are not readable by the roles
/// whose queries call the getters; it reveals nothing a caller does not already hold.
#[pg_extern(stable, parallel_safe, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn _resolve_context(carrier_value: &str) -> bool {
    let key = lookup::carrier_key();
    let ctx = carrier::decode(carrier_value, &key).unwrap_or_else(|r| refusal::carrier(&r));
    if ctx.expired_at(cache::clock_now()) {
        context_expired(&ctx.tenant);
    }
    // Resolving a forwarded carrier checks the tenant but applies no limits: those come with
    // the setters (docs/operations.md).
    require_active(Attempt::Context, "tenant context", &ctx.tenant);
    if let Some(key_id) = &ctx.api_key_id {
        let live = lookup::api_key(key_id).is_some_and(|row| {
            !row.revoked
                && row.tenant == ctx.tenant
                && row.expires_at.is_none_or(|e| cache::clock_now() < e)
        });
        if !live {
            refusal::refuse(
                Attempt::Context,
                Reason::ApiKeyNoLongerValid,
                Some(&ctx.tenant),
                "tenant context",
                "its API key has been revoked or has expired",
                "ask an administrator for a new key",
            );
        }
    }
    if ctx.source == Source::Support {
        check_support_session(&ctx);
    }
    if let Some(kid) = &ctx.kid {
        if !lookup::signing_keys().iter().any(|k| &k.kid == kid) {
            refusal::refuse(
                Attempt::Context,
                Reason::SigningKeyRetired,
                Some(&ctx.tenant),
                "tenant context",
                "the key that signed its token has been retired",
                "sign in again with a fresh token",
            );
        }
    }
    let organization = organization_of(&ctx);
    cache::remember_verified(
        carrier_value.as_bytes(),
        Rc::new(Resolved::new(ctx).organization(organization)),
    );
    true
}

/// A support carrier lives only as long as its session (`tenancy.support_sessions`), and
/// only in sessions of the role that opened it while that role holds the support grant.
/// Checked on every verification; a support context is verified again in each transaction
/// (`cache::saw_support`), so a `REVOKE` counts from the next transaction.
fn check_support_session(ctx: &Context) {
    if let Err((reason, message)) = support_session_state(ctx) {
        refusal::refuse(
            Attempt::Context,
            reason,
            Some(&ctx.tenant),
            "support context",
            message,
            "a support engineer opens a new session with tenancy.begin_support()",
        )
    }
}

/// Whether a support context's session is open and may be used by the acting role: `Err`
/// carries the refusal's reason and message. Needs read access to `tenancy.support_sessions`
/// (the extension owner's).
pub fn support_session_state(ctx: &Context) -> Result<(), (Reason, &'static str)> {
    const ENDED: (Reason, &str) = (Reason::SupportSessionEnded, "its support session has ended");
    let Some(sid) = &ctx.support_session else {
        return Err(ENDED);
    };
    let user = cache::outer_user();
    // Only the row's own values come from the table: under Citus it is a reference table
    // (scale/citus.rs) that Citus may read on another node, where a role OID means another
    // role, so the role checks run here, on this node's catalog.
    let row = crate::infra::spi::registry_reads(|| {
        spi::select_row(
            "SELECT s.ended_at IS NULL, s.opened_by::pg_catalog.int8, s.opened_by_name::pg_catalog.text,
                    -- The opening backend still runs: a session ends with it (issue 21).
                    s.opened_backend_start IS NULL
                    OR s.opened_system IS DISTINCT FROM (SELECT c.system_identifier FROM pg_catalog.pg_control_system() c)
                    OR EXISTS (SELECT 1 FROM pg_catalog.pg_stat_get_activity(s.opened_pid) a
                                WHERE a.backend_start OPERATOR(pg_catalog.=) s.opened_backend_start)
               FROM tenancy.support_sessions s
              WHERE s.id OPERATOR(pg_catalog.=) $1 AND s.tenant OPERATOR(pg_catalog.=) $2",
            &[sid.as_str().into(), ctx.tenant.as_str().into()],
            |r| {
                Ok((
                    r.get::<bool>(1)?.unwrap_or(false),
                    r.get::<i64>(2)?,
                    r.get::<String>(3)?,
                    r.get::<bool>(4)?.unwrap_or(false),
                ))
            },
        )
    })
    .unwrap_or_else(|e| errors::internal("reading support sessions", e));
    let row = row.map(|(open, opened_by, opened_by_name, backend_alive)| {
        let citus = catalog::citus_table("tenancy", "support_sessions");
        // The opening backend is checked on the node that opened the session (another node
        // cannot see it, and learns of its exit when a sweep there records the end).
        let open = open && backend_alive;
        // Role OIDs differ from node to node of a Citus cluster, names do not (Citus creates
        // roles on every node by name); on one node the OID is the exact answer (a renamed
        // role stays the same role).
        let same_role = if citus {
            matches!((crate::infra::roles::role_name(user), opened_by_name), (Some(a), Some(b)) if a == b)
        } else {
            opened_by == Some(i64::from(u32::from(user)))
        };
        let granted = spi::select_one::<bool>(
            "SELECT pg_catalog.has_function_privilege($1,
                 'tenancy.begin_support(pg_catalog.text, pg_catalog.text, pg_catalog.int4)'::pg_catalog.regprocedure::pg_catalog.oid,
                 'EXECUTE')",
            &[user.into()],
        )
        .unwrap_or_else(|e| errors::internal("reading support sessions", e))
            == Some(true);
        (open, same_role, granted)
    });
    match row {
        None | Some((false, _, _)) => Err(ENDED),
        Some((true, false, _)) => Err((
            Reason::SupportSessionOtherRole,
            "its support session belongs to another role",
        )),
        Some((true, true, false)) => Err((
            Reason::SupportGrantRevoked,
            "the role no longer holds the support grant",
        )),
        Some((true, true, true)) => Ok(()),
    }
}

fn context_expired(tenant: &str) -> ! {
    refusal::refuse(
        Attempt::Context,
        Reason::Expired,
        Some(tenant),
        "tenant context",
        "it has expired",
        "set the context again with a fresh token or key",
    )
}

/// Whether a job context was claimed by the running transaction. Checked on every read, not
/// only on verification: the verified-carrier cache outlives transactions, and a carrier
/// copied out of the claiming transaction (into a later one, or another session) must not
/// carry the job's tenant there. A full transaction id is never reused, and a transaction
/// without one has claimed nothing.
fn claimed_in_this_transaction(ctx: &Context) -> bool {
    // SAFETY: reads the transaction state; parallel workers inherit the leader's top-level id.
    let xid = unsafe { pg_sys::GetTopFullTransactionIdIfAny() }.value;
    let Some(j) = ctx.job else { return false };
    if xid == 0 || j.xid != xid {
        return false;
    }
    // The carrier is a setting, which a rolled-back savepoint restores and set_config() can
    // set again: it proves which job was claimed, not that the claim still holds. The claim
    // this backend holds does. A parallel worker has no such memory and falls back to the
    // transaction id (docs/jobs.md, "What holds").
    // SAFETY: reads a backend flag.
    if unsafe { pg_sys::ParallelWorkerNumber } >= 0 {
        return true;
    }
    LIVE_JOB.with(|l| l.get()) == Some((j.id, xid))
}

thread_local! {
    /// The job this backend holds a claim on, with the top-level transaction that claimed it:
    /// set by claim_job(), ended by complete_job(), fail_job() and the end of the transaction.
    static LIVE_JOB: std::cell::Cell<Option<(i64, u64)>> = const { std::cell::Cell::new(None) };
}

/// Records the claim this backend now holds (claim_job()).
pub fn hold_job(id: i64, xid: u64) {
    LIVE_JOB.with(|l| l.set(Some((id, xid))));
}

/// Ends the claim: a job carrier no longer carries its tenant in this backend.
pub fn release_job() {
    LIVE_JOB.with(|l| l.set(None));
}

fn job_context_elsewhere(tenant: &str) -> ! {
    refusal::refuse(
        Attempt::Context,
        Reason::JobContextElsewhere,
        Some(tenant),
        "tenant context",
        "it is a job's context, valid only in the transaction that claimed the job",
        "claim the job again with tenancy.claim_job(); a job is processed in the transaction that claims it",
    )
}

enum Probe {
    Empty,
    Hit(Rc<Resolved>),
    Miss(Vec<u8>),
}

/// The verified context of the current statement, if any.
pub fn current() -> Option<Rc<Resolved>> {
    let value = match cache::current_if_fresh() {
        Some(Some(r))
            if r.ctx.source == Source::Support && r.verified_for != cache::outer_user() =>
        {
            // A support context verified for another role (a SET ROLE since): verify again.
            let value = Some(resolve(setting::with_carrier(<[u8]>::to_vec)));
            cache::set_current(value.clone());
            value
        }
        Some(v) => v,
        None => {
            let probe = setting::with_carrier(|c| {
                if c.is_empty() {
                    Probe::Empty
                } else if let Some(r) = cache::verified(c).filter(|r| {
                    r.ctx.source != Source::Support || r.verified_for == cache::outer_user()
                }) {
                    Probe::Hit(r)
                } else {
                    Probe::Miss(c.to_vec())
                }
            });
            let value = match probe {
                Probe::Empty => None,
                Probe::Hit(r) => Some(r),
                Probe::Miss(bytes) => Some(resolve(bytes)),
            };
            cache::set_current(value.clone());
            value
        }
    };
    if let Some(r) = &value {
        if r.ctx.expired_at(cache::clock_now()) {
            context_expired(&r.ctx.tenant);
        }
        if r.ctx.source == Source::Job && !claimed_in_this_transaction(&r.ctx) {
            job_context_elsewhere(&r.ctx.tenant);
        }
        if r.ctx.source == Source::Support {
            cache::saw_support(r);
        }
    }
    value
}

/// The context the carrier holds if its MAC verifies, expired or not, without raising and
/// without checking the registry: for recording who acted (end_support() of an expired
/// session, the support mark of the extension's own events).
pub fn peek_unexpired_or_not() -> Option<Context> {
    let bytes = setting::with_carrier(<[u8]>::to_vec);
    if bytes.is_empty() {
        return None;
    }
    if let Some(r) = cache::verified(&bytes) {
        return Some(r.ctx.clone());
    }
    let text = String::from_utf8(bytes).ok()?;
    carrier::decode(&text, &lookup::carrier_key()).ok()
}

/// [`peek_unexpired_or_not`], unexpired only.
pub fn peek() -> Option<Context> {
    peek_unexpired_or_not().filter(|c| !c.expired_at(cache::clock_now()))
}

/// Removes the context (local and session) for the rest of the session.
pub fn clear() {
    spi::set_carrier("", false);
    cache::set_current(None);
}

fn resolve(bytes: Vec<u8>) -> Rc<Resolved> {
    let Ok(text) = String::from_utf8(bytes) else {
        refusal::carrier(&Refusal::Malformed)
    };
    if text.len() > tenancy_core::MAX_TOKEN_BYTES {
        refusal::carrier(&Refusal::TooLong);
    }
    crate::infra::spi::pinned(|| {
        Spi::connect(|c| {
            c.select(
                "SELECT tenancy._resolve_context($1)",
                Some(1),
                &[text.as_str().into()],
            )
            .map(|_| ())
        })
    })
    .unwrap_or_else(|e| errors::internal("verifying the tenant context", e));
    cache::verified(text.as_bytes()).unwrap_or_else(|| {
        errors::internal(
            "verifying the tenant context",
            "verified carrier not cached",
        )
    })
}

fn required() -> Option<Rc<Resolved>> {
    let v = current();
    if v.is_none() && gucs::REQUIRE_CONTEXT.get() {
        errors::no_context();
    }
    v
}

/// The current tenant, or NULL without a context (so protected tables show nothing).
#[pg_extern(stable, parallel_safe)]
fn current_tenant() -> Option<String> {
    required().map(|r| r.ctx.tenant.clone())
}

/// The current tenant as a uuid (NULL when there is none or it is not a canonical uuid).
#[pg_extern(stable, parallel_safe)]
fn current_tenant_uuid() -> Option<pgrx::Uuid> {
    required().and_then(|r| r.tenant_uuid)
}

/// The current tenant as a bigint (NULL when there is none or it is not a canonical integer).
#[pg_extern(stable, parallel_safe)]
fn current_tenant_int8() -> Option<i64> {
    required().and_then(|r| r.tenant_int8)
}

/// The tenants a context reads: its tenant and every descendant (docs/organizations.md); its
/// tenant alone for a leaf and for a support context (support opens one tenant, never a tree).
pub fn subtree(r: &Resolved) -> Rc<Vec<String>> {
    if r.ctx.source == Source::Support {
        return Rc::new(vec![r.ctx.tenant.clone()]);
    }
    lookup::tenant(&r.ctx.tenant).subtree
}

/// Whether a context reads more than its own tenant.
pub fn organization_of(ctx: &Context) -> bool {
    ctx.source != Source::Support && lookup::tenant(&ctx.tenant).is_organization()
}

/// The tenants the current context reads (its tenant and every descendant), NULL without a
/// context. What an organization context's isolation predicate compares with
/// (`scale::organizations`); a leaf's is its own tenant alone.
#[pg_extern(stable, parallel_safe)]
fn current_subtree() -> Option<Vec<String>> {
    required().map(|r| subtree(&r).as_ref().clone())
}

/// [`current_subtree`] as uuids (tenants whose id is not a canonical uuid are left out).
#[pg_extern(stable, parallel_safe)]
fn current_subtree_uuid() -> Option<Vec<pgrx::Uuid>> {
    required().map(|r| {
        subtree(&r)
            .iter()
            .filter_map(|t| cache::parse_uuid(t).map(pgrx::Uuid::from_bytes))
            .collect()
    })
}

/// [`current_subtree`] as bigints (tenants whose id is not a canonical integer are left out).
#[pg_extern(stable, parallel_safe)]
fn current_subtree_int8() -> Option<Vec<i64>> {
    required().map(|r| {
        subtree(&r)
            .iter()
            .filter_map(|t| cache::parse_int8(t))
            .collect()
    })
}

/// Who the context acts for (the token's `sub`, `api_key:<id>`, or set_tenant's actor).
#[pg_extern(stable, parallel_safe)]
fn current_actor() -> Option<String> {
    current().and_then(|r| r.ctx.actor.clone())
}

/// Whether the context carries the role (from the token's `roles`, the API key's roles, or
/// set_tenant's roles). False without a context.
#[pg_extern(stable, parallel_safe)]
fn has_role(role: &str) -> bool {
    current().is_some_and(|r| r.ctx.roles.iter().any(|x| x == role))
}

/// The whole context as jsonb (tenant, actor, roles, source, expires_at), NULL without one.
#[pg_extern(stable, parallel_safe)]
fn context() -> Option<JsonB> {
    current().map(|r| JsonB(r.ctx.to_json()))
}
