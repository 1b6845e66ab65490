//! API keys: `tk_<key_id>_<secret>`, shown once; only SHA-256 of the secret is stored.

use pgrx::datum::TimestampWithTimeZone;
use pgrx::prelude::*;
use tenancy_core::apikey;

use crate::infra::args;
use crate::infra::errors::{self, SpiOrBug};
use crate::infra::random::strong_random;
use crate::infra::spi;

/// Creates an API key for a tenant and returns it. The plaintext is not stored anywhere:
/// show it to its owner now.
#[pg_extern(volatile, parallel_unsafe, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn create_api_key(
    tenant: &str,
    label: &str,
    roles: default!(Option<Vec<Option<String>>>, "'{}'"),
    expires_at: default!(Option<TimestampWithTimeZone>, "NULL"),
) -> String {
    args::tenant_id(tenant);
    args::plain_text("label", label, 200);
    let checked = crate::context::tenant_context::checked_roles(roles.unwrap_or_default());
    crate::identity::tenants::require_registered(tenant);
    if let Some(e) = expires_at {
        let future =
            spi::select_one::<bool>("SELECT $1 > now()", &[e.into()]).or_bug("checking expires_at");
        if future != Some(true) {
            errors::bad_argument("expires_at must be in the future".into(), None);
        }
    }
    let key = apikey::from_random(strong_random::<10>(), strong_random::<32>());
    Spi::run_with_args(
        "INSERT INTO tenancy.api_keys (key_id, tenant, label, roles, secret_hash, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            key.key_id.as_str().into(),
            tenant.into(),
            label.into(),
            checked.clone().into(),
            key.secret_hash.to_vec().into(),
            expires_at.into(),
        ],
    )
    .or_bug("storing an API key");
    crate::audit::trail::record(
        tenant,
        "api_key_created",
        serde_json::json!({
            "key_id": key.key_id,
            "label": label,
            "roles": checked,
            "expires_at": serde_json::to_value(expires_at).unwrap_or_default(),
        }),
    );
    key.plaintext
}

/// Revokes an API key, given its key id or the whole key. Contexts set from it stop working
/// from the next transaction.
#[pg_extern(volatile, parallel_unsafe, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn revoke_api_key(key: &str) {
    let Some(key_id) = apikey::parse_key_or_id(key) else {
        errors::bad_argument(
            "not an API key or key id".into(),
            Some("pass the key id (the part after tk_) or the whole key"),
        )
    };
    let revoked = crate::infra::spi::dml_returning::<String>(
        "UPDATE tenancy.api_keys SET revoked_at = now()
          WHERE key_id = $1 AND revoked_at IS NULL RETURNING tenant",
        &[key_id.into()],
    );
    match revoked {
        Ok(Some(tenant)) => {
            crate::audit::trail::record(
                &tenant,
                "api_key_revoked",
                serde_json::json!({ "key_id": key_id }),
            );
        }
        Ok(None) => errors::not_found(
            format!("no live API key with id {}", errors::quoted(key_id)),
            None,
        ),
        Err(e) => errors::internal("revoking an API key", e),
    }
}
