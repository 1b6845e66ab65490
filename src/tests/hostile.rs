//! `#[pg_test]`s feeding hostile inputs to every entry point that takes a credential: each
//! must end in a clean SQLSTATE (28000 or 22023), never a crash or an internal error.

#[pgrx::pg_schema]
mod tests {
    use crate::tests::fixture::*;
    use pgrx::prelude::*;

    fn hostile_fixture(p: &str) {
        roles(p, &[("app", Tier::App)]);
        run(&format!(
            "SELECT tenancy.create_tenant('{p}_a');
             SELECT tenancy.add_signing_key('{p}_k', '\\x{}');",
            "ab".repeat(32)
        ));
    }

    /// Every hostile value through every credential entry point.
    fn refuse_all(values: &[String]) {
        for v in values {
            let lit = pgrx::spi::quote_literal(v);
            for sql in [
                format!("SELECT tenancy.set_context({lit})"),
                format!("SELECT tenancy.set_context_from_key({lit})"),
                format!("SET LOCAL tenancy.context = {lit}; SELECT tenancy.current_tenant()"),
                format!("SELECT tenancy._resolve_context({lit})"),
            ] {
                let f = failure(&sql)
                    .unwrap_or_else(|| panic!("accepted: {}", &sql[..sql.len().min(200)]));
                assert!(
                    f.starts_with("28000: pg_tenancy:") || f.starts_with("22023: "),
                    "{}: {}",
                    &sql[..sql.len().min(120)],
                    &f[..f.len().min(300)]
                );
            }
        }
    }

    fn b64(bytes: &[u8]) -> String {
        tenancy_core::b64::encode(bytes)
    }

    #[pg_test]
    fn oversized_and_malformed_tokens_are_clean_refusals() {
        hostile_fixture("hx1");
        run("SET LOCAL ROLE hx1_app");
        let header = b64(br#"{"alg":"HS256","kid":"hx1_k"}"#);
        let sig = b64(&[0u8; 32]);
        refuse_all(&[
            "a".repeat(1 << 20),
            format!("{header}.{}.{sig}", "A".repeat(1 << 20)),
            "...".into(),
            "a.b.c.d.e".into(),
            format!("{header}.e30.{sig}"),
            "\u{7f}\u{1}.\u{2}.\u{3}".into(),
            "ẞ.ü.€".into(),
            format!("v1.{}.{}", b64(br#"{"t":"hx1_a","s":"trusted"}"#), sig),
            "tk_".repeat(10),
            format!("tk_{}_{}", "a".repeat(16), "a".repeat(51)),
        ]);
    }

    #[pg_test]
    fn empty_credentials() {
        hostile_fixture("hx0");
        run("SET LOCAL ROLE hx0_app");
        assert_fails("SELECT tenancy.set_context('')", "28000", "token refused");
        assert_fails(
            "SELECT tenancy.set_context_from_key('')",
            "28000",
            "not a valid key",
        );
        // An empty carrier is what RESET leaves: no context, not an error.
        run("SET LOCAL tenancy.context = ''");
        assert_eq!(one::<String>("SELECT tenancy.current_tenant()"), None);
    }

    #[pg_test]
    fn hostile_json_claims_are_clean_refusals() {
        hostile_fixture("hx2");
        run("SET LOCAL ROLE hx2_app");
        let header = b64(br#"{"alg":"HS256","kid":"hx2_k"}"#);
        let sig = b64(&[7u8; 32]);
        let deep = format!(
            "{{\"tenant_id\":\"hx2_a\",\"x\":{}1{}}}",
            "[".repeat(3000),
            "]".repeat(3000)
        );
        // 10,000 levels (the issue's figure) is over the 8 KiB token limit and refused before
        // parsing; 3,000 fits and reaches the JSON parser, whose recursion limit refuses it.
        let deeper = format!(
            "{{\"tenant_id\":\"hx2_a\",\"x\":{}1{}}}",
            "[".repeat(10_000),
            "]".repeat(10_000)
        );
        refuse_all(&[
            format!("{header}.{}.{sig}", b64(deep.as_bytes())),
            format!("{header}.{}.{sig}", b64(deeper.as_bytes())),
            format!(
                "{header}.{}.{sig}",
                b64(br#"{"tenant_id":"hx2_a","exp":1e999999}"#)
            ),
            format!(
                "{header}.{}.{sig}",
                b64(br#"{"tenant_id":"hx2_a","exp":-99999999999999999999999}"#)
            ),
            format!("{header}.{}.{sig}", b64(b"{\"tenant_id\":\"hx2\\u0000a\"}")),
            format!("{header}.{}.{sig}", b64(&[0xff, 0xfe, 0x7b, 0x7d])),
            format!(
                "{header}.{}.{sig}",
                b64(br#"{"tenant_id":"hx2_a","tenant_id":"other"}"#)
            ),
            format!(
                "{}.{}.{sig}",
                b64(br#"{"alg":"HS256","alg":"none"}"#),
                b64(br#"{"tenant_id":"hx2_a"}"#)
            ),
        ]);
    }

    #[pg_test]
    fn validly_signed_but_hostile_claims_are_clean_refusals() {
        hostile_fixture("hx3");
        run("SET LOCAL ROLE hx3_app");
        let key = [0xabu8; 32];
        let sign = |claims: serde_json::Value| {
            tenancy_core::jwt::sign(
                tenancy_core::Alg::HS256,
                Some("hx3_k"),
                &key,
                claims.as_object().unwrap(),
            )
        };
        refuse_all(&[
            sign(serde_json::json!({"tenant_id": "hx3_a", "exp": "tomorrow"})),
            sign(serde_json::json!({"tenant_id": "hx3_a", "exp": -1e300})),
            sign(serde_json::json!({"tenant_id": "hx3_a'; DROP TABLE x; --"})),
            sign(serde_json::json!({"tenant_id": "hx3_a", "roles": "admin"})),
            sign(serde_json::json!({"tenant_id": "hx3_a", "sub": "a\u{0}b"})),
            sign(serde_json::json!({"tenant_id": ["hx3_a"]})),
            sign(serde_json::json!({"tenant_id": "x".repeat(200)})),
            sign(serde_json::json!({"sub": "nobody"})),
        ]);
        // The server survived all of it, and a well-formed token still works.
        let good = sign(serde_json::json!({"tenant_id": "hx3_a"}));
        assert_eq!(
            one::<String>(&format!(
                "SELECT tenancy.set_context({}) ->> 'tenant_id'",
                pgrx::spi::quote_literal(&good)
            )),
            Some("hx3_a".into())
        );
    }
}
