//! Signing keys (token verification) and token minting.

use pgrx::prelude::*;
use pgrx::JsonB;
use tenancy_core::{jwt, Alg};

use crate::infra::args;
use crate::infra::errors::{self, SpiOrBug};
use crate::infra::spi;

/// Longest signing secret accepted.
pub const MAX_SECRET_BYTES: usize = 1024;
/// Most signing keys live at once.
pub const MAX_LIVE_KEYS: i64 = 64;

/// Registers an HMAC key that signs tokens. Several keys may be live at once (rotation).
#[pg_extern(volatile, parallel_unsafe, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn add_signing_key(kid: &str, secret: &[u8], alg: default!(&str, "'HS256'")) {
    args::key_name("key id", kid);
    let Some(parsed) = Alg::parse(alg) else {
        errors::bad_argument(
            format!("unsupported algorithm {}", errors::quoted(alg)),
            Some("use HS256, HS384 or HS512"),
        )
    };
    if secret.len() < parsed.min_key_len() {
        errors::bad_argument(
            format!(
                "an {} secret must be at least {} bytes",
                parsed.as_str(),
                parsed.min_key_len()
            ),
            Some("generate one with gen_random_bytes() from pgcrypto or your secret manager"),
        );
    }
    // Every backend that verifies a token caches every live key: both their size and their
    // number are bounded when they are written.
    if secret.len() > MAX_SECRET_BYTES {
        errors::too_large(
            format!("a signing secret may be at most {MAX_SECRET_BYTES} bytes"),
            Some("HMAC gains nothing from a secret longer than its hash's block size (128 bytes for HS512)"),
        );
    }
    let live = spi::select_one::<i64>(
        "SELECT pg_catalog.count(*) FROM tenancy.signing_keys WHERE retired_at IS NULL",
        &[],
    )
    .or_bug("counting live signing keys")
    .unwrap_or(0);
    if live >= MAX_LIVE_KEYS {
        errors::too_large(
            format!("at most {MAX_LIVE_KEYS} signing keys may be live at once"),
            Some("retire old keys with tenancy.retire_signing_key(kid) first"),
        );
    }
    let inserted = crate::infra::spi::dml_returning::<String>(
        "INSERT INTO tenancy.signing_keys (kid, alg, secret) VALUES ($1, $2, $3)
         ON CONFLICT (kid) DO NOTHING RETURNING kid",
        &[kid.into(), parsed.as_str().into(), secret.into()],
    );
    match inserted {
        Ok(Some(_)) => {
            crate::audit::trail::record(
                crate::audit::trail::SYSTEM_CHAIN,
                "signing_key_added",
                serde_json::json!({ "kid": kid, "alg": parsed.as_str() }),
            );
        }
        Ok(None) => errors::duplicate(
            format!("signing key {} already exists", errors::quoted(kid)),
            Some("key ids are never reused, even after retirement; choose a new kid"),
        ),
        Err(e) => errors::internal("adding a signing key", e),
    }
}

/// Retires a signing key: tokens it signed stop verifying, and contexts set from them stop
/// working from the next transaction.
#[pg_extern(volatile, parallel_unsafe, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn retire_signing_key(kid: &str) {
    let retired = crate::infra::spi::dml_returning::<String>(
        "UPDATE tenancy.signing_keys SET retired_at = now()
          WHERE kid = $1 AND retired_at IS NULL RETURNING kid",
        &[kid.into()],
    );
    match retired {
        Ok(Some(_)) => {
            crate::audit::trail::record(
                crate::audit::trail::SYSTEM_CHAIN,
                "signing_key_retired",
                serde_json::json!({ "kid": kid }),
            );
        }
        Ok(None) => errors::not_found(format!("no live signing key {}", errors::quoted(kid)), None),
        Err(e) => errors::internal("retiring a signing key", e),
    }
}

/// Mints a token with the given claims, signed by `kid` or by the newest live key.
#[pg_extern(volatile, parallel_unsafe, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn sign_token(claims: JsonB, kid: default!(Option<&str>, "NULL")) -> String {
    let serde_json::Value::Object(mut claims) = claims.0 else {
        errors::bad_argument("claims must be a jsonb object".into(), None)
    };
    bound_lifetime(&mut claims, crate::registry::cache::statement_now());
    let row = crate::infra::spi::select_row(
        "SELECT kid, alg, secret FROM tenancy.signing_keys
              WHERE retired_at IS NULL AND ($1::text IS NULL OR kid = $1)
              ORDER BY created_at DESC, kid DESC LIMIT 1",
        &[kid.into()],
        |r| {
            Ok((
                r.get::<String>(1)?,
                r.get::<String>(2)?,
                r.get::<Vec<u8>>(3)?,
            ))
        },
    )
    .or_bug("reading signing keys");
    let Some((Some(kid), Some(alg), Some(secret))) = row else {
        match kid {
            Some(k) => {
                errors::not_found(format!("no live signing key {}", errors::quoted(k)), None)
            }
            None => errors::no_signing_key(),
        }
    };
    let Some(alg) = Alg::parse(&alg) else {
        errors::internal("signing key", "unknown algorithm")
    };
    jwt::sign(alg, Some(&kid), &secret, &claims)
}

/// Every minted token expires within `tenancy.sign_token_max_age`: `iat` is now, a missing
/// `exp` becomes now + the cap, and an `exp` past the cap plus `tenancy.jwt_leeway` (or not an
/// integer) is refused.
fn bound_lifetime(claims: &mut serde_json::Map<String, serde_json::Value>, now: i64) {
    let max_age = i64::from(crate::infra::gucs::SIGN_TOKEN_MAX_AGE.get());
    let latest = now.saturating_add(max_age);
    // The leeway that verification grants clocks also absorbs a caller's rounding
    // (`extract(epoch FROM now() + interval '1 hour')::bigint` may round up).
    let leeway = i64::from(crate::infra::gucs::JWT_LEEWAY.get());
    let exp = match claims.get("exp") {
        None => latest,
        Some(v) => match v.as_i64() {
            Some(e) if e <= latest.saturating_add(leeway) => e,
            Some(_) => errors::bad_argument(
                format!("exp is more than tenancy.sign_token_max_age ({max_age} s) away"),
                Some("mint shorter-lived tokens; a superuser may raise tenancy.sign_token_max_age"),
            ),
            None => {
                errors::bad_argument("exp must be an integer (seconds since 1970)".into(), None)
            }
        },
    };
    claims.insert("exp".into(), exp.into());
    claims.insert("iat".into(), now.into());
}
