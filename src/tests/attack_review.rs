//! What the attacker's review of issue #14's reshaping found (docs/security.md, class 13), each
//! tried as the tier that found it: SQL the extension runs with the caller's rights steered by
//! an operator the caller planted, and the owner loosening the entitlement gate's WITH CHECK or
//! its roles, which the DDL guard and check() did not compare.

#[pgrx::pg_schema]
mod tests {
    use pgrx::prelude::*;

    use crate::tests::fixture::*;

    /// The app role plants `=(oid, regnamespace)` (an exact match beats pg_catalog's
    /// `=(oid, oid)`, which needs a cast) on its search_path before its first context: the
    /// backend must still learn every registry table, so a revocation reaches it.
    #[pg_test]
    fn a_planted_operator_cannot_hide_the_registry_from_a_backend() {
        docs_fixture("rvop", "text", "rvop_a", "rvop_b");
        let key = one::<String>("SELECT tenancy.create_api_key('rvop_a', 'ci')").unwrap();
        run("CREATE SCHEMA rvop_evil AUTHORIZATION rvop_app");
        run("SET LOCAL ROLE rvop_app");
        run(
            "CREATE FUNCTION rvop_evil.never(oid, regnamespace) RETURNS boolean
                 LANGUAGE sql IMMUTABLE AS 'SELECT false';
             CREATE OPERATOR rvop_evil.= (leftarg = oid, rightarg = regnamespace,
                                          function = rvop_evil.never);
             CREATE FUNCTION rvop_evil.never(name, text) RETURNS boolean
                 LANGUAGE sql IMMUTABLE AS 'SELECT false';
             CREATE OPERATOR rvop_evil.= (leftarg = name, rightarg = text,
                                          function = rvop_evil.never);
             SET LOCAL search_path = rvop_evil, pg_catalog, public",
        );
        run(&format!("SELECT tenancy.set_context_from_key('{key}')"));
        assert_eq!(count("SELECT count(*) FROM tests.rvop_docs"), 2);
        run("RESET ROLE");
        let key_id = key.split('_').nth(1).unwrap();
        run(&format!("SELECT tenancy.revoke_api_key('{key_id}')"));
        run("SET LOCAL ROLE rvop_app");
        assert_fails("SELECT count(*) FROM tests.rvop_docs", "28000", "revoked");
    }

    /// The owner of a feature-gated table may not loosen the gate in any part protect() set:
    /// its WITH CHECK, its USING, its roles or its command. With the guard off, check()
    /// reports it.
    #[pg_test]
    fn the_owner_cannot_loosen_the_feature_gate() {
        app_and_owner("rvfg");
        tenants("rvfg");
        run("SET LOCAL ROLE rvfg_owner;
             CREATE TABLE tests.rvfg_f (id int, tenant_id text, PRIMARY KEY (tenant_id, id));
             SELECT tenancy.protect('tests.rvfg_f', feature => 'rvfg.payroll');");
        for ddl in [
            "ALTER POLICY tenancy_feature ON tests.rvfg_f WITH CHECK (true)",
            "ALTER POLICY tenancy_feature ON tests.rvfg_f USING (true)",
            "ALTER POLICY tenancy_feature ON tests.rvfg_f TO rvfg_owner",
        ] {
            assert_fails(
                ddl,
                "42501",
                "the entitlement policy tenancy_feature is gone or altered",
            );
        }
        assert_fails(
            "DROP POLICY tenancy_feature ON tests.rvfg_f",
            "42501",
            "the policy tenancy_feature is dropped",
        );
        run("RESET ROLE");
        assert!(!findings("tests")
            .iter()
            .any(|f| f.object == "tests.rvfg_f" && f.rule == "feature_policy_altered"));
        run("SET LOCAL tenancy.ddl_guard = off;
             ALTER POLICY tenancy_feature ON tests.rvfg_f WITH CHECK (true);");
        let found: Vec<Finding> = findings("tests")
            .into_iter()
            .filter(|f| f.object == "tests.rvfg_f" && f.rule == "feature_policy_altered")
            .collect();
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].severity, "high");
        apply_fix("tests", &found[0], || {});
    }
}
