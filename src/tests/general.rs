//! `#[pg_test]`s: function behaviour against a real server. Each test runs in its own
//! rolled-back transaction, in parallel with the others, as a superuser, so every test uses
//! its own object names and switches to a plain role (`SET LOCAL ROLE`) before asserting
//! anything about isolation: superusers bypass row level security.

#[pgrx::pg_schema]
mod tests {
    use pgrx::prelude::*;
    use serde_json::json;

    const SECRET_HEX: &str = "7365637265742d7365637265742d7365637265742d7365637265742d31323334";

    use crate::tests::fixture::*;

    /// Two tenants `{p}_a` and `{p}_b`, a signing key `{p}_k`, an app role and a trusted role,
    /// and a protected table `{p}_docs` with two rows for a and one for b.
    fn fixture(p: &str, tenant_type: &str, a: &str, b: &str) {
        install_try_sql();
        run(&format!(
            "CREATE ROLE {p}_app NOLOGIN; SELECT tenancy.grant_app('{p}_app');
             CREATE ROLE {p}_trusted NOLOGIN; SELECT tenancy.grant_trusted('{p}_trusted');
             GRANT USAGE ON SCHEMA tests TO {p}_app, {p}_trusted;
             SELECT tenancy.create_tenant('{a}', 'Tenant A');
             SELECT tenancy.create_tenant('{b}', 'Tenant B');
             SELECT tenancy.add_signing_key('{p}_k', '\\x{SECRET_HEX}');
             CREATE TABLE tests.{p}_docs (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                                          tenant_id {tenant_type}, body text);
             INSERT INTO tests.{p}_docs (tenant_id, body) VALUES ('{a}', 'a1'), ('{a}', 'a2'), ('{b}', 'b1');
             SELECT tenancy.protect('tests.{p}_docs');
             GRANT SELECT, INSERT, UPDATE, DELETE ON tests.{p}_docs TO {p}_app, {p}_trusted;"
        ));
    }

    fn token(p: &str, claims: serde_json::Value) -> String {
        one::<String>(&format!(
            "SELECT tenancy.sign_token({}::jsonb, '{p}_k')",
            pgrx::spi::quote_literal(claims.to_string())
        ))
        .expect("token")
    }

    fn now() -> i64 {
        one::<i64>("SELECT extract(epoch FROM now())::bigint").unwrap()
    }

    fn set_context_sql(tok: &str) -> String {
        format!(
            "SELECT tenancy.set_context({})",
            pgrx::spi::quote_literal(tok)
        )
    }

    fn isolation_for(p: &str, tenant_type: &str, a: &str, b: &str) {
        fixture(p, tenant_type, a, b);
        let tok_a = token(
            p,
            json!({"tenant_id": a, "sub": "alice", "exp": now() + 600}),
        );
        run(&format!("SET LOCAL ROLE {p}_app"));
        // No context: nothing visible, nothing writable.
        assert_eq!(count(&format!("SELECT count(*) FROM tests.{p}_docs")), 0);
        assert_fails(
            &format!("INSERT INTO tests.{p}_docs (tenant_id, body) VALUES ('{a}', 'x')"),
            "42501",
            "row-level security",
        );
        run(&set_context_sql(&tok_a));
        assert_eq!(count(&format!("SELECT count(*) FROM tests.{p}_docs")), 2);
        assert_eq!(
            count(&format!(
                "SELECT count(*) FROM tests.{p}_docs WHERE tenant_id::text = '{a}'"
            )),
            2
        );
        // A row inserted without a tenant lands in the context's tenant.
        run(&format!(
            "INSERT INTO tests.{p}_docs (body) VALUES ('stamped')"
        ));
        assert_eq!(
            one::<String>(&format!(
                "SELECT tenant_id::text FROM tests.{p}_docs WHERE body = 'stamped'"
            )),
            Some(a.to_string())
        );
        // Writing into the other tenant is refused, inserting or moving a row.
        assert_fails(
            &format!("INSERT INTO tests.{p}_docs (tenant_id, body) VALUES ('{b}', 'x')"),
            "42501",
            "row-level security",
        );
        assert_fails(
            &format!("UPDATE tests.{p}_docs SET tenant_id = '{b}' WHERE body = 'a1'"),
            "42501",
            "row-level security",
        );
        // The other tenant's rows cannot be touched.
        assert_eq!(count(&format!("WITH d AS (DELETE FROM tests.{p}_docs WHERE body = 'b1' RETURNING 1) SELECT count(*) FROM d")), 0);
        assert_eq!(count(&format!("WITH u AS (UPDATE tests.{p}_docs SET body = 'x' WHERE body = 'b1' RETURNING 1) SELECT count(*) FROM u")), 0);
        run("RESET ROLE");
        assert_eq!(
            count(&format!(
                "SELECT count(*) FROM tests.{p}_docs WHERE body = 'b1'"
            )),
            1
        );
    }

    #[pg_test]
    fn isolates_text_tenants() {
        isolation_for("iso_text", "text", "iso_text_a", "iso_text_b");
    }

    #[pg_test]
    fn isolates_uuid_tenants() {
        isolation_for(
            "iso_uuid",
            "uuid",
            "0b5c8c9e-58c4-4d2c-9a53-3f2a1d1e0001",
            "0b5c8c9e-58c4-4d2c-9a53-3f2a1d1e0002",
        );
    }

    #[pg_test]
    fn isolates_bigint_tenants() {
        isolation_for("iso_int8", "bigint", "9100001", "9100002");
    }

    #[pg_test]
    fn isolates_integer_tenants() {
        isolation_for("iso_int4", "integer", "9200001", "9200002");
    }

    #[pg_test]
    fn require_context_raises_55000() {
        fixture("reqctx", "text", "reqctx_a", "reqctx_b");
        run("SET LOCAL ROLE reqctx_app; SET LOCAL tenancy.require_context = on");
        assert_fails(
            "SELECT count(*) FROM tests.reqctx_docs",
            "55000",
            "pg_tenancy: no tenant context is set",
        );
        assert_fails(
            "INSERT INTO tests.reqctx_docs (body) VALUES ('x')",
            "55000",
            "no tenant context",
        );
    }

    // ---- refusals: each its own test, each 28000 ----

    fn refused_token(p: &str, tok: &str, needle: &str) {
        fixture(p, "text", &format!("{p}_a"), &format!("{p}_b"));
        run(&format!("SET LOCAL ROLE {p}_app"));
        assert_fails(&set_context_sql(tok), "28000", needle);
        assert_eq!(count(&format!("SELECT count(*) FROM tests.{p}_docs")), 0);
        assert_eq!(one::<String>("SELECT tenancy.current_tenant()"), None);
    }

    fn b64(bytes: &[u8]) -> String {
        tenancy_core::b64::encode(bytes)
    }

    #[pg_test]
    fn refuses_garbage_carrier() {
        fixture("garbage", "text", "garbage_a", "garbage_b");
        run("SET LOCAL ROLE garbage_app; SET LOCAL tenancy.context = 'v1.eyJ0IjoiZ2FyYmFnZV9hIn0.AAAA'");
        assert_fails(
            "SELECT count(*) FROM tests.garbage_docs",
            "28000",
            "pg_tenancy: tenant context refused",
        );
        run("SET LOCAL tenancy.context = 'not a carrier at all'");
        assert_fails(
            "SELECT tenancy.current_tenant()",
            "28000",
            "tenant context refused",
        );
    }

    #[pg_test]
    fn refuses_flipped_payload_byte() {
        run("SELECT 1");
        let p = "flip";
        fixture(p, "text", "flip_a", "flip_b");
        let tok = token(p, json!({"tenant_id": "flip_a", "exp": now() + 600}));
        let parts: Vec<&str> = tok.split('.').collect();
        let mut payload = tenancy_core::b64::decode(parts[1]).unwrap();
        // "flip_a" -> "flip_b": the tampered claim names a real tenant.
        let pos = payload.windows(6).position(|w| w == b"flip_a").unwrap() + 5;
        payload[pos] = b'b';
        let forged = format!("{}.{}.{}", parts[0], b64(&payload), parts[2]);
        run("SET LOCAL ROLE flip_app");
        assert_fails(&set_context_sql(&forged), "28000", "signature");
        assert_eq!(count("SELECT count(*) FROM tests.flip_docs"), 0);
    }

    #[pg_test]
    fn refuses_wrong_key() {
        let p = "wrongkey";
        fixture(p, "text", "wrongkey_a", "wrongkey_b");
        let claims = json!({"tenant_id": "wrongkey_a", "exp": now() + 600});
        let forged = tenancy_core::jwt::sign(
            tenancy_core::Alg::HS256,
            Some("wrongkey_k"),
            b"another-secret-another-secret-another-secret",
            claims.as_object().unwrap(),
        );
        run("SET LOCAL ROLE wrongkey_app");
        assert_fails(&set_context_sql(&forged), "28000", "signature");
    }

    #[pg_test]
    fn refuses_alg_none() {
        let header = b64(br#"{"alg":"none","typ":"JWT"}"#);
        let payload = b64(br#"{"tenant_id":"algnone_a"}"#);
        refused_token("algnone", &format!("{header}.{payload}."), "token refused");
        fixture_free_check_alg_none_with_signature();
    }

    fn fixture_free_check_alg_none_with_signature() {
        let header = b64(br#"{"alg":"none","kid":"algnone_k"}"#);
        let payload = b64(br#"{"tenant_id":"algnone_a"}"#);
        assert_fails(
            &set_context_sql(&format!("{header}.{payload}.{}", b64(b"x"))),
            "28000",
            "token refused",
        );
    }

    #[pg_test]
    fn refuses_unknown_kid() {
        let p = "unkid";
        fixture(p, "text", "unkid_a", "unkid_b");
        let claims = json!({"tenant_id": "unkid_a", "exp": now() + 600});
        let tok = tenancy_core::jwt::sign(
            tenancy_core::Alg::HS256,
            Some("no_such_kid"),
            &hex(SECRET_HEX),
            claims.as_object().unwrap(),
        );
        run("SET LOCAL ROLE unkid_app");
        assert_fails(&set_context_sql(&tok), "28000", "token refused");
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[pg_test]
    fn refuses_retired_kid() {
        let p = "retired";
        fixture(p, "text", "retired_a", "retired_b");
        let tok = token(p, json!({"tenant_id": "retired_a", "exp": now() + 600}));
        run("SELECT tenancy.retire_signing_key('retired_k')");
        run("SET LOCAL ROLE retired_app");
        assert_fails(&set_context_sql(&tok), "28000", "token refused");
    }

    #[pg_test]
    fn refuses_expired() {
        let p = "expired";
        fixture(p, "text", "expired_a", "expired_b");
        // Past the default 30 s leeway.
        let tok = token(p, json!({"tenant_id": "expired_a", "exp": now() - 120}));
        run("SET LOCAL ROLE expired_app");
        assert_fails(&set_context_sql(&tok), "28000", "expired");
    }

    #[pg_test]
    fn accepts_within_leeway() {
        let p = "leeway";
        fixture(p, "text", "leeway_a", "leeway_b");
        let tok = token(p, json!({"tenant_id": "leeway_a", "exp": now() - 5}));
        run("SET LOCAL ROLE leeway_app");
        run(&set_context_sql(&tok));
        assert_eq!(count("SELECT count(*) FROM tests.leeway_docs"), 2);
    }

    #[pg_test]
    fn refuses_not_yet_valid() {
        let p = "nbf";
        fixture(p, "text", "nbf_a", "nbf_b");
        let tok = token(p, json!({"tenant_id": "nbf_a", "nbf": now() + 3600}));
        run("SET LOCAL ROLE nbf_app");
        assert_fails(&set_context_sql(&tok), "28000", "token refused");
    }

    #[pg_test]
    fn refuses_wrong_audience() {
        let p = "aud";
        fixture(p, "text", "aud_a", "aud_b");
        run("SET LOCAL tenancy.jwt_audience = 'payroll'");
        let wrong = token(
            p,
            json!({"tenant_id": "aud_a", "aud": "crm", "exp": now() + 600}),
        );
        let missing = token(p, json!({"tenant_id": "aud_a", "exp": now() + 600}));
        let right = token(
            p,
            json!({"tenant_id": "aud_a", "aud": ["crm", "payroll"], "exp": now() + 600}),
        );
        run("SET LOCAL ROLE aud_app");
        assert_fails(&set_context_sql(&wrong), "28000", "audience");
        assert_fails(&set_context_sql(&missing), "28000", "audience");
        run(&set_context_sql(&right));
        assert_eq!(count("SELECT count(*) FROM tests.aud_docs"), 2);
    }

    #[pg_test]
    fn app_role_cannot_change_verification_settings() {
        fixture("susetgucs", "text", "susetgucs_a", "susetgucs_b");
        run("SET LOCAL ROLE susetgucs_app");
        for guc in [
            "tenancy.jwt_audience = 'x'",
            "tenancy.jwt_leeway = 3600",
            "tenancy.jwt_tenant_claim = 'sub'",
            "tenancy.jwt_issuer = 'x'",
            "tenancy.context_max_age = 999999",
        ] {
            assert_fails(&format!("SET LOCAL {guc}"), "42501", "permission denied");
        }
    }

    #[pg_test]
    fn refuses_wrong_issuer() {
        let p = "iss";
        fixture(p, "text", "iss_a", "iss_b");
        run("SET LOCAL tenancy.jwt_issuer = 'https://idp.example'");
        let wrong = token(
            p,
            json!({"tenant_id": "iss_a", "iss": "https://evil.example", "exp": now() + 600}),
        );
        let right = token(
            p,
            json!({"tenant_id": "iss_a", "iss": "https://idp.example", "exp": now() + 600}),
        );
        run("SET LOCAL ROLE iss_app");
        assert_fails(&set_context_sql(&wrong), "28000", "issuer");
        run(&set_context_sql(&right));
        assert_eq!(count("SELECT count(*) FROM tests.iss_docs"), 2);
    }

    #[pg_test]
    fn context_cannot_be_stored_as_a_role_or_database_default() {
        fixture("stored", "text", "stored_a", "stored_b");
        let tok = token(
            "stored",
            json!({"tenant_id": "stored_a", "exp": now() + 600}),
        );
        run("SET LOCAL ROLE stored_app");
        run(&set_context_sql(&tok));
        let carrier = one::<String>("SELECT current_setting('tenancy.context')").unwrap();
        let lit = pgrx::spi::quote_literal(&carrier);
        // An injected ALTER ROLE would give every later session of the role this tenant.
        assert_fails(
            &format!("ALTER ROLE CURRENT_USER SET tenancy.context = {lit}"),
            "22023",
            "cannot be stored as a default",
        );
        run("RESET ROLE");
        let db =
            pgrx::spi::quote_identifier(one::<String>("SELECT current_database()::text").unwrap());
        assert_fails(
            &format!("ALTER DATABASE {db} SET tenancy.context = {lit}"),
            "22023",
            "cannot be stored as a default",
        );
        assert_fails(
            &format!("ALTER ROLE stored_app SET tenancy.context = {lit}"),
            "22023",
            "cannot be stored as a default",
        );
        // Clearing a stored value stays possible.
        run("ALTER ROLE stored_app SET tenancy.context = ''");
        run("ALTER ROLE stored_app RESET tenancy.context");
    }

    #[pg_test]
    fn refuses_deactivated_tenant() {
        let p = "deact";
        fixture(p, "text", "deact_a", "deact_b");
        let tok = token(p, json!({"tenant_id": "deact_a", "exp": now() + 600}));
        run("SELECT tenancy.deactivate_tenant('deact_a')");
        run("SET LOCAL ROLE deact_app");
        assert_fails(&set_context_sql(&tok), "28000", "deactivated");
        run("RESET ROLE");
        run("SELECT tenancy.reactivate_tenant('deact_a')");
        run("SET LOCAL ROLE deact_app");
        run(&set_context_sql(&tok));
        assert_eq!(count("SELECT count(*) FROM tests.deact_docs"), 2);
    }

    #[pg_test]
    fn deactivation_stops_a_context_already_set() {
        let p = "deact2";
        fixture(p, "text", "deact2_a", "deact2_b");
        let tok = token(p, json!({"tenant_id": "deact2_a", "exp": now() + 600}));
        run("SET LOCAL ROLE deact2_app");
        run(&set_context_sql(&tok));
        assert_eq!(count("SELECT count(*) FROM tests.deact2_docs"), 2);
        run("RESET ROLE");
        run("SELECT tenancy.deactivate_tenant('deact2_a')");
        run("SET LOCAL ROLE deact2_app");
        assert_fails(
            "SELECT count(*) FROM tests.deact2_docs",
            "28000",
            "deactivated",
        );
    }

    #[pg_test]
    fn refuses_unregistered_tenant() {
        let p = "unreg";
        fixture(p, "text", "unreg_a", "unreg_b");
        let tok = token(
            p,
            json!({"tenant_id": "nobody_registered_this", "exp": now() + 600}),
        );
        run("SET LOCAL ROLE unreg_app");
        assert_fails(&set_context_sql(&tok), "28000", "not registered");
    }

    #[pg_test]
    fn refuses_over_long_token() {
        let big = format!("{}.{}.{}", "a".repeat(10), "b".repeat(9000), "c".repeat(10));
        refused_token("toolong", &big, "token refused");
        let huge = "x".repeat(1 << 20);
        assert_fails(&set_context_sql(&huge), "28000", "token refused");
    }

    #[pg_test]
    fn refuses_broken_base64() {
        refused_token(
            "badb64",
            "eyJhbGciOiJIUzI1NiJ9.!!!not-base64!!!.c2ln",
            "token refused",
        );
    }

    #[pg_test]
    fn refuses_broken_json() {
        let header = b64(br#"{"alg":"HS256","kid":"badjson_k"}"#);
        let payload = b64(br#"{"tenant_id": "badjson_a""#);
        refused_token(
            "badjson",
            &format!("{header}.{payload}.{}", b64(&[0u8; 32])),
            "token refused",
        );
    }

    #[pg_test]
    fn nested_tenant_claim_path() {
        let p = "nested";
        fixture(p, "text", "nested_a", "nested_b");
        run("SET LOCAL tenancy.jwt_tenant_claim = 'app_metadata.tenant_id'");
        let tok = token(
            p,
            json!({"app_metadata": {"tenant_id": "nested_b"}, "exp": now() + 600}),
        );
        run("SET LOCAL ROLE nested_app");
        run(&set_context_sql(&tok));
        assert_eq!(count("SELECT count(*) FROM tests.nested_docs"), 1);
    }

    // ---- API keys ----

    #[pg_test]
    fn api_key_sets_context_and_is_stored_hashed() {
        fixture("akey", "text", "akey_a", "akey_b");
        let key =
            one::<String>("SELECT tenancy.create_api_key('akey_b', 'ci', '{reader}')").unwrap();
        assert!(key.starts_with("tk_"));
        let key_id = key.split('_').nth(1).unwrap().to_string();
        // The plaintext is nowhere in the table.
        assert_eq!(
            count(&format!("SELECT count(*) FROM tenancy.api_keys WHERE key_id = '{key_id}' AND position(convert_to('{key}', 'UTF8') in secret_hash) = 0")),
            1
        );
        run("SET LOCAL ROLE akey_app");
        let claims =
            one::<pgrx::JsonB>(&format!("SELECT tenancy.set_context_from_key('{key}')")).unwrap();
        assert_eq!(claims.0["tenant"], "akey_b");
        assert_eq!(count("SELECT count(*) FROM tests.akey_docs"), 1);
        assert_eq!(one::<bool>("SELECT tenancy.has_role('reader')"), Some(true));
        assert_eq!(one::<bool>("SELECT tenancy.has_role('admin')"), Some(false));
        // A guessed secret with a real key id is refused.
        let forged = format!("tk_{key_id}_{}", "a".repeat(52));
        assert_fails(
            &format!("SELECT tenancy.set_context_from_key('{forged}')"),
            "28000",
            "not a valid key",
        );
    }

    #[pg_test]
    fn refuses_revoked_api_key() {
        fixture("akrev", "text", "akrev_a", "akrev_b");
        let key = one::<String>("SELECT tenancy.create_api_key('akrev_a', 'ci')").unwrap();
        run(&format!("SELECT tenancy.revoke_api_key('{key}')"));
        run("SET LOCAL ROLE akrev_app");
        assert_fails(
            &format!("SELECT tenancy.set_context_from_key('{key}')"),
            "28000",
            "revoked",
        );
    }

    #[pg_test]
    fn revocation_stops_a_context_already_set() {
        fixture("akrev2", "text", "akrev2_a", "akrev2_b");
        let key = one::<String>("SELECT tenancy.create_api_key('akrev2_a', 'ci')").unwrap();
        run("SET LOCAL ROLE akrev2_app");
        run(&format!("SELECT tenancy.set_context_from_key('{key}')"));
        assert_eq!(count("SELECT count(*) FROM tests.akrev2_docs"), 2);
        run("RESET ROLE");
        let key_id = key.split('_').nth(1).unwrap();
        run(&format!("SELECT tenancy.revoke_api_key('{key_id}')"));
        run("SET LOCAL ROLE akrev2_app");
        assert_fails("SELECT count(*) FROM tests.akrev2_docs", "28000", "revoked");
    }

    #[pg_test]
    fn refuses_expired_api_key() {
        fixture("akexp", "text", "akexp_a", "akexp_b");
        let key = one::<String>(
            "SELECT tenancy.create_api_key('akexp_a', 'ci', '{}', now() + interval '1 hour')",
        )
        .unwrap();
        let key_id = key.split('_').nth(1).unwrap();
        // Age the key as the registry's owner would see it after an hour.
        run(&format!("UPDATE tenancy.api_keys SET expires_at = now() - interval '1 second' WHERE key_id = '{key_id}'"));
        run("SET LOCAL ROLE akexp_app");
        assert_fails(
            &format!("SELECT tenancy.set_context_from_key('{key}')"),
            "28000",
            "expired",
        );
        assert_fails(
            "SELECT tenancy.set_context_from_key('tk_garbage')",
            "28000",
            "not a valid key",
        );
    }

    // ---- privileges ----

    #[pg_test]
    fn app_role_cannot_reach_admin_functions_or_secrets() {
        fixture("priv", "text", "priv_a", "priv_b");
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
            assert_fails(sql, "42501", "permission denied");
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

    #[pg_test]
    fn trusted_role_sets_tenant_without_token() {
        fixture("trust", "text", "trust_a", "trust_b");
        run("SET LOCAL ROLE trust_trusted");
        let ctx =
            one::<pgrx::JsonB>("SELECT tenancy.set_tenant('trust_b', 'job:nightly', '{etl}')")
                .unwrap();
        assert_eq!(ctx.0["tenant"], "trust_b");
        assert_eq!(count("SELECT count(*) FROM tests.trust_docs"), 1);
        assert_eq!(
            one::<String>("SELECT tenancy.current_actor()"),
            Some("job:nightly".into())
        );
        assert_eq!(one::<bool>("SELECT tenancy.has_role('etl')"), Some(true));
        let ctx = one::<pgrx::JsonB>("SELECT tenancy.context()").unwrap();
        assert_eq!(ctx.0["source"], "trusted");
        assert!(!ctx.0.to_string().contains("secret"));
        assert_fails(
            "SELECT tenancy.set_tenant('trust_nobody')",
            "28000",
            "not registered",
        );
        assert_fails(
            "SELECT tenancy.set_tenant('bad tenant')",
            "22023",
            "invalid tenant id",
        );
    }

    #[pg_test]
    fn context_json_and_getters() {
        fixture("getters", "text", "getters_a", "getters_b");
        let tok = token(
            "getters",
            json!({"tenant_id": "getters_a", "sub": "alice", "roles": ["hr", "viewer"], "exp": now() + 600}),
        );
        run("SET LOCAL ROLE getters_app");
        assert_eq!(
            one::<pgrx::JsonB>("SELECT tenancy.context()").map(|j| j.0),
            None
        );
        let claims = one::<pgrx::JsonB>(&set_context_sql(&tok)).unwrap();
        assert_eq!(claims.0["sub"], "alice");
        let ctx = one::<pgrx::JsonB>("SELECT tenancy.context()").unwrap().0;
        assert_eq!(ctx["tenant"], "getters_a");
        assert_eq!(ctx["actor"], "alice");
        assert_eq!(ctx["roles"], json!(["hr", "viewer"]));
        assert_eq!(ctx["source"], "token");
        assert_eq!(one::<bool>("SELECT tenancy.has_role('hr')"), Some(true));
        run("SELECT tenancy.clear_context()");
        assert_eq!(one::<String>("SELECT tenancy.current_tenant()"), None);
        assert_eq!(count("SELECT count(*) FROM tests.getters_docs"), 0);
    }

    #[pg_test]
    fn carrier_copied_verbatim_verifies_and_edited_does_not() {
        fixture("carrier", "text", "carrier_a", "carrier_b");
        let tok = token(
            "carrier",
            json!({"tenant_id": "carrier_a", "exp": now() + 600}),
        );
        run("SET LOCAL ROLE carrier_app");
        run(&set_context_sql(&tok));
        let value = one::<String>("SELECT current_setting('tenancy.context')").unwrap();
        run("SELECT tenancy.clear_context()");
        // What a pooler or PostgREST does: forward the carrier verbatim.
        run(&format!(
            "SET LOCAL tenancy.context = {}",
            pgrx::spi::quote_literal(&value)
        ));
        assert_eq!(count("SELECT count(*) FROM tests.carrier_docs"), 2);
        // Swap the tenant inside the carrier, keep the MAC: refused.
        let parts: Vec<&str> = value.splitn(3, '.').collect();
        let payload = String::from_utf8(tenancy_core::b64::decode(parts[1]).unwrap()).unwrap();
        let edited = payload.replace("carrier_a", "carrier_b");
        let forged = format!("{}.{}.{}", parts[0], b64(edited.as_bytes()), parts[2]);
        run(&format!(
            "SET LOCAL tenancy.context = {}",
            pgrx::spi::quote_literal(&forged)
        ));
        assert_fails(
            "SELECT count(*) FROM tests.carrier_docs",
            "28000",
            "tenant context refused",
        );
        // RESET leaves an empty string: no context, zero rows.
        run("RESET tenancy.context");
        assert_eq!(count("SELECT count(*) FROM tests.carrier_docs"), 0);
    }

    #[pg_test]
    fn protect_is_idempotent_and_recorded() {
        fixture("idem", "text", "idem_a", "idem_b");
        run("SELECT tenancy.protect('tests.idem_docs')");
        run("SELECT tenancy.protect('tests.idem_docs', 'tenant_id')");
        assert_eq!(
            count("SELECT count(*) FROM pg_policies WHERE tablename = 'idem_docs'"),
            1
        );
        assert_eq!(
            count("SELECT count(*) FROM pg_indexes WHERE tablename = 'idem_docs' AND indexdef LIKE '%(tenant_id, id)%'"),
            1
        );
        assert_eq!(
            one::<String>("SELECT qual FROM pg_policies WHERE tablename = 'idem_docs'"),
            Some("(tenant_id = ( SELECT tenancy.current_tenant() AS current_tenant))".into())
        );
        assert_eq!(count("SELECT count(*) FROM tenancy.protected_tables WHERE tbl = 'tests.idem_docs'::regclass"), 1);
        assert_eq!(
            one::<bool>("SELECT relrowsecurity AND relforcerowsecurity FROM pg_class WHERE oid = 'tests.idem_docs'::regclass"),
            Some(true)
        );
        assert_eq!(
            one::<bool>("SELECT attnotnull FROM pg_attribute WHERE attrelid = 'tests.idem_docs'::regclass AND attname = 'tenant_id'"),
            Some(true)
        );
    }

    #[pg_test]
    fn protect_refuses_bad_input_and_leaves_nothing() {
        install_try_sql();
        run("CREATE TABLE tests.pbad (id int, org text); INSERT INTO tests.pbad VALUES (1, NULL)");
        assert_fails(
            "SELECT tenancy.protect('tests.pbad')",
            "42703",
            "has no column",
        );
        assert_fails(
            "SELECT tenancy.protect('tests.pbad', 'org')",
            "22023",
            "NULL",
        );
        assert_eq!(
            one::<bool>("SELECT relrowsecurity FROM pg_class WHERE oid = 'tests.pbad'::regclass"),
            Some(false)
        );
        run("CREATE VIEW tests.pbad_v AS SELECT * FROM tests.pbad");
        assert_fails(
            "SELECT tenancy.protect('tests.pbad_v', 'org')",
            "22023",
            "not a table",
        );
        assert_fails(
            "SELECT tenancy.protect('tests.pbad', 'org', 'shared')",
            "42703",
            "has no column",
        );
    }

    #[pg_test]
    fn unprotect_undoes_protect() {
        fixture("unprot", "text", "unprot_a", "unprot_b");
        run("SELECT tenancy.unprotect('tests.unprot_docs')");
        assert_eq!(
            count("SELECT count(*) FROM pg_policies WHERE tablename = 'unprot_docs'"),
            0
        );
        assert_eq!(count("SELECT count(*) FROM pg_indexes WHERE tablename = 'unprot_docs' AND indexname LIKE '%tenancy%'"), 0);
        assert_eq!(one::<bool>("SELECT relrowsecurity OR relforcerowsecurity FROM pg_class WHERE oid = 'tests.unprot_docs'::regclass"), Some(false));
        assert_eq!(count("SELECT count(*) FROM tenancy.protected_tables WHERE tbl = 'tests.unprot_docs'::regclass"), 0);
    }

    /// Every node of a JSON plan, depth first.
    fn plan_nodes<'a>(plan: &'a serde_json::Value, out: &mut Vec<&'a serde_json::Value>) {
        out.push(plan);
        if let Some(children) = plan.get("Plans").and_then(|p| p.as_array()) {
            for c in children {
                plan_nodes(c, out);
            }
        }
    }

    fn field<'a>(node: &'a serde_json::Value, key: &str) -> &'a str {
        node.get(key).and_then(|v| v.as_str()).unwrap_or("")
    }

    #[pg_test]
    fn protected_queries_seek_the_tenant_index() {
        run("CREATE ROLE planapp NOLOGIN; SELECT tenancy.grant_app('planapp');
             GRANT USAGE ON SCHEMA tests TO planapp;
             CREATE TABLE tests.plan_docs (id bigint PRIMARY KEY, tenant_id bigint, body text);
             INSERT INTO tests.plan_docs SELECT g, g % 100 + 1, 'row ' || g FROM generate_series(1, 100000) g;
             SELECT tenancy.create_tenant(t::text) FROM generate_series(1, 100) t;
             SELECT tenancy.protect('tests.plan_docs');
             ANALYZE tests.plan_docs;
             GRANT SELECT ON tests.plan_docs TO planapp;
             SET LOCAL ROLE planapp");
        // set_tenant is for trusted roles; the plan shape does not depend on how the context came.
        run("RESET ROLE; SELECT tenancy.set_tenant('42'); SET LOCAL ROLE planapp");
        let explain = |sql: &str| -> (String, Vec<serde_json::Value>) {
            let plan = one::<pgrx::Json>(&format!("EXPLAIN (FORMAT JSON) {sql}")).unwrap();
            let mut nodes = Vec::new();
            plan_nodes(&plan.0[0]["Plan"], &mut nodes);
            (plan.0.to_string(), nodes.into_iter().cloned().collect())
        };
        // The tenant is compared with the InitPlan's result (spelled $0 up to PostgreSQL 16,
        // (InitPlan 1).col1 from 17), never by calling the getter per row.
        let against_initplan = |cond: &str| {
            cond.contains("tenant_id = $0") || cond.contains("tenant_id = (InitPlan 1)")
        };

        // A point lookup by key: one index descent, the tenant checked on that one row.
        let (text, nodes) = explain("SELECT * FROM tests.plan_docs WHERE id = 4241");
        assert!(
            nodes
                .iter()
                .all(|n| !field(n, "Node Type").contains("Seq Scan")),
            "{text}"
        );
        let scan = nodes
            .iter()
            .find(|n| field(n, "Node Type") == "Index Scan")
            .unwrap_or_else(|| panic!("no index scan: {text}"));
        assert!(
            against_initplan(field(scan, "Index Cond")) || against_initplan(field(scan, "Filter")),
            "{text}"
        );
        assert_eq!(
            nodes
                .iter()
                .filter(|n| field(n, "Parent Relationship") == "InitPlan")
                .count(),
            1,
            "{text}"
        );

        // The tenant's latest rows: a seek on the tenant index, tenant inside the index condition.
        let (text, nodes) =
            explain("SELECT id, body FROM tests.plan_docs ORDER BY id DESC LIMIT 50");
        let scan = nodes
            .iter()
            .find(|n| field(n, "Index Name") == "plan_docs_tenant_id_tenancy_idx")
            .unwrap_or_else(|| panic!("tenant index unused: {text}"));
        assert!(against_initplan(field(scan, "Index Cond")), "{text}");
        assert!(scan.get("Filter").is_none(), "{text}");
        assert_eq!(
            nodes
                .iter()
                .filter(|n| field(n, "Parent Relationship") == "InitPlan")
                .count(),
            1,
            "{text}"
        );

        assert_eq!(
            one::<String>("SELECT body FROM tests.plan_docs WHERE id = 4241"),
            Some("row 4241".into())
        );
        assert_eq!(
            count("SELECT count(*) FROM tests.plan_docs WHERE id = 4242"),
            0
        );
        assert_eq!(count("SELECT count(*) FROM tests.plan_docs"), 1000);
    }

    #[pg_test]
    fn parallel_workers_see_the_context() {
        run("CREATE ROLE parapp NOLOGIN; SELECT tenancy.grant_app('parapp');
             GRANT USAGE ON SCHEMA tests TO parapp;
             CREATE TABLE tests.par_docs (tenant_id text, n int);
             INSERT INTO tests.par_docs SELECT 'par_' || (g % 4), g FROM generate_series(1, 200000) g;
             SELECT tenancy.create_tenant('par_' || t) FROM generate_series(0, 3) t;
             SELECT tenancy.protect('tests.par_docs');
             ANALYZE tests.par_docs;
             GRANT SELECT ON tests.par_docs TO parapp;
             SELECT tenancy.set_tenant('par_2');
             SET LOCAL parallel_setup_cost = 0; SET LOCAL parallel_tuple_cost = 0;
             SET LOCAL min_parallel_table_scan_size = 0; SET LOCAL max_parallel_workers_per_gather = 2;
             SET LOCAL enable_indexscan = off; SET LOCAL enable_bitmapscan = off; SET LOCAL enable_indexonlyscan = off;
             SET LOCAL ROLE parapp");
        let plan =
            one::<pgrx::Json>("EXPLAIN (ANALYZE, FORMAT JSON) SELECT sum(n) FROM tests.par_docs")
                .unwrap();
        let text = plan.0.to_string();
        let mut nodes = Vec::new();
        plan_nodes(&plan.0[0]["Plan"], &mut nodes);
        let launched: i64 = nodes
            .iter()
            .filter_map(|n| n.get("Workers Launched")?.as_i64())
            .sum();
        assert!(launched > 0, "no parallel worker ran: {text}");
        let expected: i64 = (1..=200000i64).filter(|g| g % 4 == 2).sum();
        assert_eq!(
            one::<i64>("SELECT sum(n)::bigint FROM tests.par_docs"),
            Some(expected)
        );
    }

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
}
