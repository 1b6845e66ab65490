//! `#[pg_test]`s of the registries an administrator manages: tenants and signing keys (each
//! refusal with its SQLSTATE, no secret echoed), and that none of them, nor any secret, is
//! reachable by an application role.

#[pgrx::pg_schema]
mod tests {
    use pgrx::prelude::*;

    use crate::tests::fixture::*;

    #[pg_test]
    fn tenant_registry_errors() {
        install_try_sql();
        assert_eq!(
            one::<String>(
                "SELECT tenancy.create_tenant('reg_a', 'A', 'pro', '{\"work_mem\": \"8MB\"}')"
            ),
            Some("reg_a".into())
        );
        assert_fails(
            "SELECT tenancy.create_tenant('reg_a')",
            "42710",
            "already exists",
        );
        assert_fails(
            "SELECT tenancy.create_tenant('has space')",
            "22023",
            "invalid tenant id",
        );
        assert_fails(
            "SELECT tenancy.create_tenant('reg_b', settings => '[1]')",
            "22023",
            "object",
        );
        assert_fails(
            "SELECT tenancy.deactivate_tenant('reg_nobody')",
            "42704",
            "does not exist",
        );
        assert_fails(
            "SELECT tenancy.add_signing_key('reg_k', '\\x0011')",
            "22023",
            "at least 32 bytes",
        );
        assert_fails("SELECT tenancy.add_signing_key('reg_k', '\\x00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff', 'none')", "22023", "unsupported algorithm");
        run("SELECT tenancy.add_signing_key('reg_k', '\\x00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff')");
        assert_fails("SELECT tenancy.add_signing_key('reg_k', '\\x00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff')", "42710", "already exists");
        assert_fails(
            "SELECT tenancy.retire_signing_key('reg_nokey')",
            "42704",
            "no live signing key",
        );
        // Error text never echoes the secret.
        let f = failure("SELECT tenancy.add_signing_key('reg_k2', '\\xdeadbeefcafe')").unwrap();
        assert!(!f.contains("deadbeef"), "{f}");
    }

    #[pg_test]
    fn app_role_cannot_reach_admin_functions_or_secrets() {
        docs_fixture("priv", "text", "priv_a", "priv_b");
        run("SET LOCAL ROLE priv_app");
        for sql in [
            "SELECT tenancy.set_tenant('priv_a')",
            "SELECT tenancy.sign_token('{\"tenant_id\":\"priv_a\"}')",
            "SELECT tenancy.add_signing_key('evil', '\\x00000000000000000000000000000000000000000000000000000000000000ff')",
            "SELECT tenancy.create_tenant('evil')",
            "SELECT tenancy.deactivate_tenant('priv_b')",
            "SELECT tenancy.create_api_key('priv_b', 'evil')",
            "SELECT tenancy.protect('tests.priv_docs')",
            "SELECT secret FROM tenancy.signing_keys",
            "SELECT kid FROM tenancy.signing_keys",
            "SELECT secret_hash FROM tenancy.api_keys",
            "SELECT secret FROM tenancy.carrier_key",
            "SELECT * FROM tenancy.tenants",
            "UPDATE tenancy.tenants SET status = 'active'",
            "SELECT tenancy.grant_trusted('priv_app')",
        ] {
            assert_denied(sql);
        }
        // Nothing key-like in the settings an app role can list.
        assert_eq!(
            count("SELECT count(*) FROM pg_settings WHERE name LIKE 'tenancy.%' AND (setting ~ '[0-9a-f]{32}' OR name LIKE '%secret%' OR name LIKE '%key%')"),
            0
        );
        assert_fails(
            "SELECT tenancy.set_context(NULL)",
            "22023",
            "must not be NULL",
        );
    }
}
