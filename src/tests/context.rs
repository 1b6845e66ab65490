//! `#[pg_test]`s of the tenant context: setting it from a token, an API key or the trusted
//! tier, reading and clearing it, forwarding its carrier, and every refusal (28000) of a
//! credential that is forged, expired, retired, revoked, for another audience or issuer, or
//! for a tenant that is deactivated or unregistered; the verification settings are not the
//! application role's to change, and a context cannot be stored as a role or database default.

#[pgrx::pg_schema]
mod tests {
    use pgrx::prelude::*;
    use serde_json::json;

    use crate::tests::fixture::*;

    #[pg_test]
    fn require_context_raises_55000() {
        docs_fixture("reqctx", "text", "reqctx_a", "reqctx_b");
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

    /// A fresh `docs_fixture` for `p`, then `assert_refused`.
    fn refused_token(p: &str, tok: &str, needle: &str) {
        docs_fixture(p, "text", &format!("{p}_a"), &format!("{p}_b"));
        assert_refused(p, tok, needle);
    }

    /// As `{p}_app`: `tok` is refused (28000, `needle`), and leaves no context and no rows.
    fn assert_refused(p: &str, tok: &str, needle: &str) {
        run(&format!("SET LOCAL ROLE {p}_app"));
        assert_fails(&set_context_sql(tok), "28000", needle);
        assert_eq!(count(&format!("SELECT count(*) FROM tests.{p}_docs")), 0);
        assert_eq!(one::<String>("SELECT tenancy.current_tenant()"), None);
    }

    #[pg_test]
    fn refuses_garbage_carrier() {
        docs_fixture("garbage", "text", "garbage_a", "garbage_b");
        run("SET LOCAL ROLE garbage_app; SET LOCAL tenancy.context = 'v1.eyJ0IjoiZ2FyYmFnZV9hIn0.AAAA'");
        assert_fails(
            "SELECT count(*) FROM tests.garbage_docs",
            "28000",
            "pg_tenancy: tenant context refused: its signature does not verify",
        );
        run("SET LOCAL tenancy.context = 'not a carrier at all'");
        assert_fails(
            "SELECT tenancy.current_tenant()",
            "28000",
            "tenant context refused: it is not three base64url segments separated by dots",
        );
    }

    #[pg_test]
    fn refuses_flipped_payload_byte() {
        run("SELECT 1");
        let p = "flip";
        docs_fixture(p, "text", "flip_a", "flip_b");
        let tok = token(p, json!({"tenant_id": "flip_a", "exp": epoch_now() + 600}));
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
        docs_fixture(p, "text", "wrongkey_a", "wrongkey_b");
        let claims = json!({"tenant_id": "wrongkey_a", "exp": epoch_now() + 600});
        let forged = tenancy_core::jwt::sign(
            tenancy_core::Alg::HS256,
            Some("wrongkey_k"),
            b"another-secret-another-secret-another-secret",
            claims.as_object().unwrap(),
        );
        assert_refused("wrongkey", &forged, "signature");
    }

    #[pg_test]
    fn refuses_alg_none() {
        let header = b64(br#"{"alg":"none","typ":"JWT"}"#);
        let payload = b64(br#"{"tenant_id":"algnone_a"}"#);
        refused_token(
            "algnone",
            &format!("{header}.{payload}."),
            "token refused: it is not three base64url segments separated by dots",
        );
        fixture_free_check_alg_none_with_signature();
    }

    fn fixture_free_check_alg_none_with_signature() {
        let header = b64(br#"{"alg":"none","kid":"algnone_k"}"#);
        let payload = b64(br#"{"tenant_id":"algnone_a"}"#);
        assert_fails(
            &set_context_sql(&format!("{header}.{payload}.{}", b64(b"x"))),
            "28000",
            "token refused: its algorithm is not the one registered for the signing key",
        );
    }

    #[pg_test]
    fn refuses_unknown_kid() {
        let p = "unkid";
        docs_fixture(p, "text", "unkid_a", "unkid_b");
        let claims = json!({"tenant_id": "unkid_a", "exp": epoch_now() + 600});
        let tok = tenancy_core::jwt::sign(
            tenancy_core::Alg::HS256,
            Some("no_such_kid"),
            &tenancy_core::oracle::unhex(SECRET_HEX),
            claims.as_object().unwrap(),
        );
        assert_refused(
            "unkid",
            &tok,
            "token refused: its kid does not name a live signing key",
        );
    }

    #[pg_test]
    fn refuses_retired_kid() {
        let p = "retired";
        docs_fixture(p, "text", "retired_a", "retired_b");
        let tok = token(
            p,
            json!({"tenant_id": "retired_a", "exp": epoch_now() + 600}),
        );
        run("SELECT tenancy.retire_signing_key('retired_k')");
        assert_refused(
            "retired",
            &tok,
            "token refused: its kid does not name a live signing key",
        );
    }

    #[pg_test]
    fn refuses_expired() {
        let p = "expired";
        docs_fixture(p, "text", "expired_a", "expired_b");
        // Past the default 30 s leeway.
        let tok = token(
            p,
            json!({"tenant_id": "expired_a", "exp": epoch_now() - 120}),
        );
        assert_refused("expired", &tok, "expired");
    }

    #[pg_test]
    fn accepts_within_leeway() {
        let p = "leeway";
        docs_fixture(p, "text", "leeway_a", "leeway_b");
        let tok = token(p, json!({"tenant_id": "leeway_a", "exp": epoch_now() - 5}));
        run("SET LOCAL ROLE leeway_app");
        run(&set_context_sql(&tok));
        assert_eq!(count("SELECT count(*) FROM tests.leeway_docs"), 2);
    }

    #[pg_test]
    fn refuses_not_yet_valid() {
        let p = "nbf";
        docs_fixture(p, "text", "nbf_a", "nbf_b");
        let tok = token(p, json!({"tenant_id": "nbf_a", "nbf": epoch_now() + 3600}));
        assert_refused("nbf", &tok, "token refused: it is not valid yet (nbf)");
    }

    #[pg_test]
    fn refuses_wrong_audience() {
        let p = "aud";
        docs_fixture(p, "text", "aud_a", "aud_b");
        run("SET LOCAL tenancy.jwt_audience = 'payroll'");
        let wrong = token(
            p,
            json!({"tenant_id": "aud_a", "aud": "crm", "exp": epoch_now() + 600}),
        );
        let missing = token(p, json!({"tenant_id": "aud_a", "exp": epoch_now() + 600}));
        let right = token(
            p,
            json!({"tenant_id": "aud_a", "aud": ["crm", "payroll"], "exp": epoch_now() + 600}),
        );
        run("SET LOCAL ROLE aud_app");
        assert_fails(&set_context_sql(&wrong), "28000", "audience");
        assert_fails(&set_context_sql(&missing), "28000", "audience");
        run(&set_context_sql(&right));
        assert_eq!(count("SELECT count(*) FROM tests.aud_docs"), 2);
    }

    #[pg_test]
    fn app_role_cannot_change_verification_settings() {
        docs_fixture("susetgucs", "text", "susetgucs_a", "susetgucs_b");
        run("SET LOCAL ROLE susetgucs_app");
        for guc in [
            "tenancy.jwt_audience = 'x'",
            "tenancy.jwt_leeway = 3600",
            "tenancy.jwt_tenant_claim = 'sub'",
            "tenancy.jwt_issuer = 'x'",
            "tenancy.context_max_age = 999999",
        ] {
            assert_denied(&format!("SET LOCAL {guc}"));
        }
    }

    #[pg_test]
    fn refuses_wrong_issuer() {
        let p = "iss";
        docs_fixture(p, "text", "iss_a", "iss_b");
        run("SET LOCAL tenancy.jwt_issuer = 'https://idp.example'");
        let wrong = token(
            p,
            json!({"tenant_id": "iss_a", "iss": "https://evil.example", "exp": epoch_now() + 600}),
        );
        let right = token(
            p,
            json!({"tenant_id": "iss_a", "iss": "https://idp.example", "exp": epoch_now() + 600}),
        );
        run("SET LOCAL ROLE iss_app");
        assert_fails(&set_context_sql(&wrong), "28000", "issuer");
        run(&set_context_sql(&right));
        assert_eq!(count("SELECT count(*) FROM tests.iss_docs"), 2);
    }

    #[pg_test]
    fn context_cannot_be_stored_as_a_role_or_database_default() {
        docs_fixture("stored", "text", "stored_a", "stored_b");
        let tok = token(
            "stored",
            json!({"tenant_id": "stored_a", "exp": epoch_now() + 600}),
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
        docs_fixture(p, "text", "deact_a", "deact_b");
        let tok = token(p, json!({"tenant_id": "deact_a", "exp": epoch_now() + 600}));
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
        docs_fixture(p, "text", "deact2_a", "deact2_b");
        let tok = token(
            p,
            json!({"tenant_id": "deact2_a", "exp": epoch_now() + 600}),
        );
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
        docs_fixture(p, "text", "unreg_a", "unreg_b");
        let tok = token(
            p,
            json!({"tenant_id": "nobody_registered_this", "exp": epoch_now() + 600}),
        );
        assert_refused("unreg", &tok, "not registered");
    }

    #[pg_test]
    fn refuses_over_long_token() {
        let big = format!("{}.{}.{}", "a".repeat(10), "b".repeat(9000), "c".repeat(10));
        let too_long = "token refused: it is longer than 8192 bytes";
        refused_token("toolong", &big, too_long);
        let huge = "x".repeat(1 << 20);
        assert_fails(&set_context_sql(&huge), "28000", too_long);
    }

    #[pg_test]
    fn refuses_broken_base64() {
        refused_token(
            "badb64",
            "eyJhbGciOiJIUzI1NiJ9.!!!not-base64!!!.c2ln",
            "token refused: it is not three base64url segments separated by dots",
        );
    }

    #[pg_test]
    fn refuses_broken_json() {
        let header = b64(br#"{"alg":"HS256","kid":"badjson_k"}"#);
        let payload = b64(br#"{"tenant_id": "badjson_a""#);
        refused_token(
            "badjson",
            &format!("{header}.{payload}.{}", b64(&[0u8; 32])),
            "token refused: its header or payload is not a valid JSON object",
        );
    }

    #[pg_test]
    fn nested_tenant_claim_path() {
        let p = "nested";
        docs_fixture(p, "text", "nested_a", "nested_b");
        run("SET LOCAL tenancy.jwt_tenant_claim = 'app_metadata.tenant_id'");
        let tok = token(
            p,
            json!({"app_metadata": {"tenant_id": "nested_b"}, "exp": epoch_now() + 600}),
        );
        run("SET LOCAL ROLE nested_app");
        run(&set_context_sql(&tok));
        assert_eq!(count("SELECT count(*) FROM tests.nested_docs"), 1);
    }

    // ---- API keys ----

    #[pg_test]
    fn api_key_sets_context_and_is_stored_hashed() {
        docs_fixture("akey", "text", "akey_a", "akey_b");
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
        docs_fixture("akrev", "text", "akrev_a", "akrev_b");
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
        docs_fixture("akrev2", "text", "akrev2_a", "akrev2_b");
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
        docs_fixture("akexp", "text", "akexp_a", "akexp_b");
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

    // ---- contexts without a token, reading and forwarding them ----

    #[pg_test]
    fn trusted_role_sets_tenant_without_token() {
        docs_fixture("trust", "text", "trust_a", "trust_b");
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
        docs_fixture("getters", "text", "getters_a", "getters_b");
        let tok = token(
            "getters",
            json!({"tenant_id": "getters_a", "sub": "alice", "roles": ["hr", "viewer"], "exp": epoch_now() + 600}),
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
        docs_fixture("carrier", "text", "carrier_a", "carrier_b");
        let tok = token(
            "carrier",
            json!({"tenant_id": "carrier_a", "exp": epoch_now() + 600}),
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
            "tenant context refused: its signature does not verify",
        );
        // RESET leaves an empty string: no context, zero rows.
        run("RESET tenancy.context");
        assert_eq!(count("SELECT count(*) FROM tests.carrier_docs"), 0);
    }
}
