//! What a DBA evaluating the extension met in a first week (issue 21), as plain roles see it:
//! uuid tenant ids in one spelling, the checker naming tenant ids a column cannot hold and
//! schemas that mix tenant column types, `protected_by` naming the role that created a table
//! in an enrolled schema, the feature gate's refusal naming the feature, a write without a
//! context (42501, or 55000 with `require_context`), what an admin may and may not do to a
//! tenant's settings, and the purge's hint. The autocommit cases (a context set outside a
//! transaction block, re-import as the tables' owner) need statements outside a transaction
//! and live in `tests/pg_regress/sql/dba_first_week.sql`.

#[pgrx::pg_schema]
mod tests {
    use pgrx::prelude::*;

    use crate::tests::fixture::*;

    /// An app role `{p}_app`, an admin `{p}_adm`, a schema `{p}_s` owned by the admin, and a
    /// signing key `{p}_k`. grant_app first, like every fixture (pg_proc rows lock in one order).
    fn base(p: &str) {
        install_try_sql();
        run(&format!(
            "CREATE ROLE {p}_app NOLOGIN; SELECT tenancy.grant_app('{p}_app');
             CREATE ROLE {p}_adm NOLOGIN; SELECT tenancy.grant_admin('{p}_adm');
             CREATE SCHEMA {p}_s AUTHORIZATION {p}_adm;
             GRANT USAGE ON SCHEMA {p}_s TO {p}_app;
             SELECT tenancy.add_signing_key('{p}_k', decode(repeat('64', 32), 'hex'));"
        ));
    }

    /// A token for `tenant`, minted by the superuser with the fixture's key.
    fn token(p: &str, tenant: &str) -> String {
        text(&format!(
            "SELECT tenancy.sign_token(jsonb_build_object('tenant_id', {}), '{p}_k')",
            pgrx::spi::quote_literal(tenant)
        ))
    }

    /// As the app role, with `tenant`'s token (as an application would).
    fn as_app(p: &str, tenant: &str) {
        run("RESET ROLE");
        let t = token(p, tenant);
        run(&format!(
            "SET LOCAL ROLE {p}_app; SELECT tenancy.set_context({})",
            pgrx::spi::quote_literal(&t)
        ));
    }

    /// A uuid spelled in upper case (or without hyphens) was accepted as a second tenant that
    /// no uuid column can hold: its writes failed with a bare 42501. create_tenant() refuses
    /// every non-canonical spelling and names the canonical one; the canonical tenant writes
    /// uuid and text tables alike with its token.
    #[pg_test]
    fn a_uuid_tenant_has_one_spelling_and_writes_uuid_tables() {
        base("dfu");
        let canonical = "3f2c9a0e-6b1d-4c7e-9a55-0d1e2f3a4b5c";
        for spelling in [
            "3F2C9A0E-6B1D-4C7E-9A55-0D1E2F3A4B5C",
            "3f2c9a0e6b1d4c7e9a550d1e2f3a4b5c",
            "3f2c-9a0e-6b1d-4c7e-9a55-0d1e-2f3a-4b5c",
        ] {
            let f = assert_fails(
                &format!("SELECT tenancy.create_tenant('{spelling}')"),
                "22023",
                "not in its canonical spelling",
            );
            assert!(f.contains(spelling), "{f}");
            assert_eq!(
                count(&format!(
                    "SELECT count(*) FROM tenancy.tenants WHERE lower(replace(id, '-', '')) = '{}'",
                    canonical.replace('-', "")
                )),
                0
            );
        }
        // The hint names the spelling to register.
        let hint = text(&format!(
            "DO $$ BEGIN PERFORM tenancy.create_tenant('{}');
             EXCEPTION WHEN invalid_parameter_value THEN
                 DECLARE h text; BEGIN GET STACKED DIAGNOSTICS h = PG_EXCEPTION_HINT;
                 PERFORM set_config('dfu.hint', h, true); END;
             END $$; SELECT current_setting('dfu.hint')",
            canonical.to_uppercase()
        ));
        assert!(hint.contains(&format!("'{canonical}'")), "{hint}");
        // Ids that only look like uuids stay ordinary text ids.
        run("SELECT tenancy.create_tenant('dfu-3f2c9a0e'), tenancy.create_tenant('dfu_ACME')");

        run(&format!(
            "SELECT tenancy.create_tenant('{canonical}');
             SET LOCAL ROLE dfu_adm;
             CREATE TABLE dfu_s.u (id int, tenant_id uuid, PRIMARY KEY (tenant_id, id));
             CREATE TABLE dfu_s.t (id int, tenant_id text, PRIMARY KEY (tenant_id, id));
             SELECT tenancy.protect('dfu_s.u'), tenancy.protect('dfu_s.t');
             GRANT SELECT, INSERT ON dfu_s.u, dfu_s.t TO dfu_app;"
        ));
        as_app("dfu", canonical);
        run("INSERT INTO dfu_s.u (id) VALUES (1); INSERT INTO dfu_s.t (id) VALUES (1);");
        assert_eq!(
            text("SELECT tenant_id::text FROM dfu_s.u"),
            canonical,
            "stamped from the context"
        );
        assert_eq!(count("SELECT count(*) FROM dfu_s.t"), 1);
        assert_eq!(
            one::<bool>(&format!(
                "SELECT tenancy.current_tenant_uuid() = '{canonical}'::uuid"
            )),
            Some(true)
        );
    }

    /// check() names the active tenants a protected tenant column cannot hold (per column,
    /// with the ids) and the schemas whose protected tables mix kinds of tenant column; a
    /// schema of one kind whose tenants all fit is not reported.
    #[pg_test]
    fn check_reports_tenant_ids_a_column_cannot_hold_and_mixed_kinds() {
        base("dfc");
        run(
            "SELECT tenancy.create_tenant('dfc-acme'), tenancy.create_tenant('077');
             CREATE SCHEMA dfc_one;
             CREATE TABLE dfc_s.u (id int, tenant_id uuid, PRIMARY KEY (tenant_id, id));
             CREATE TABLE dfc_s.i (id int, tenant_id integer, PRIMARY KEY (tenant_id, id));
             CREATE TABLE dfc_s.t (id int, tenant_id text, PRIMARY KEY (tenant_id, id));
             CREATE TABLE dfc_s.v (id int, tenant_id varchar(4), PRIMARY KEY (tenant_id, id));
             CREATE TABLE dfc_one.a (id int, tenant_id text, PRIMARY KEY (tenant_id, id));
             CREATE TABLE dfc_one.b (id int, tenant_id varchar(200), PRIMARY KEY (tenant_id, id));
             SELECT tenancy.protect_schema('dfc_s'), tenancy.protect_schema('dfc_one');",
        );
        let f = findings("dfc_s");
        let rule = |r: &str| -> Vec<String> {
            f.iter()
                .filter(|x| x.rule == r)
                .map(|x| format!("{} {}", x.severity, x.object))
                .collect()
        };
        assert_eq!(
            rule("tenant_id_not_representable"),
            vec![
                "medium dfc_s.i.tenant_id".to_string(),
                "medium dfc_s.u.tenant_id".to_string(),
                "medium dfc_s.v.tenant_id".to_string(),
            ]
        );
        assert_eq!(
            rule("mixed_tenant_column_types"),
            vec!["medium schema dfc_s".to_string()]
        );
        assert!(f
            .iter()
            .filter(|x| x.rule == "tenant_id_not_representable"
                || x.rule == "mixed_tenant_column_types")
            .all(|x| x.fix.is_none()));
        let detail = |object: &str| {
            text(&format!(
                "SELECT detail FROM tenancy.check('dfc_s') WHERE rule = 'tenant_id_not_representable' AND object = '{object}'"
            ))
        };
        let u = detail("dfc_s.u.tenant_id");
        assert!(
            u.contains("'077'") && u.contains("'dfc-acme'") && u.contains("uuid"),
            "{u}"
        );
        // '077' is not the canonical decimal of 77: it matches no integer row either.
        let i = detail("dfc_s.i.tenant_id");
        assert!(i.contains("'077'") && i.contains("'dfc-acme'"), "{i}");
        let v = detail("dfc_s.v.tenant_id");
        assert!(v.contains("'dfc-acme'") && !v.contains("'077'"), "{v}");
        let mixed = text(
            "SELECT detail FROM tenancy.check('dfc_s') WHERE rule = 'mixed_tenant_column_types'",
        );
        assert!(
            mixed.contains("integer (dfc_s.i)")
                && mixed.contains("text (dfc_s.t, dfc_s.v)")
                && mixed.contains("uuid (dfc_s.u)"),
            "{mixed}"
        );
        // text and varchar(200) are one kind, and hold every id registered here.
        assert!(findings("dfc_one")
            .iter()
            .all(|x| x.rule != "tenant_id_not_representable"
                && x.rule != "mixed_tenant_column_types"));
        // Deactivated tenants are not reported: they have no context to be confused.
        run("SELECT tenancy.deactivate_tenant('dfc-acme')");
        let v = detail("dfc_s.u.tenant_id");
        assert!(!v.contains("dfc-acme") && v.contains("'077'"), "{v}");
        assert!(!findings("dfc_s")
            .iter()
            .any(|x| x.rule == "tenant_id_not_representable" && x.object == "dfc_s.v.tenant_id"));
    }

    /// A table created in an enrolled schema is protected on arrival by the event trigger
    /// (which runs as the extension's owner); the registry names the role that created it, as
    /// its audit row does, not the extension's owner.
    #[pg_test]
    fn protected_by_names_the_role_that_created_the_table() {
        base("dfp");
        run(
            "CREATE ROLE dfp_dev NOLOGIN; GRANT USAGE, CREATE ON SCHEMA dfp_s TO dfp_dev;
             SELECT tenancy.protect_schema('dfp_s');
             SET LOCAL ROLE dfp_dev;
             CREATE TABLE dfp_s.t (id int, tenant_id text, PRIMARY KEY (tenant_id, id));
             RESET ROLE;",
        );
        assert_eq!(
            text("SELECT protected_by::text FROM tenancy.protected_tables WHERE tbl = 'dfp_s.t'::regclass"),
            "dfp_dev"
        );
        assert_eq!(
            text("SELECT actor FROM tenancy.audit_log WHERE tenant_id = '(system)' AND event = 'table_protected'
                   AND detail->>'table' = 'dfp_s.t' ORDER BY seq DESC LIMIT 1"),
            "dfp_dev"
        );
    }

    /// A write into a feature-gated table outside the tenant's entitlement names the feature
    /// (PostgreSQL's own error names only the policy); reads stay silent, and an entitled
    /// tenant writes.
    #[pg_test]
    fn the_feature_gate_names_the_feature_it_refuses() {
        base("dff");
        run(
            "SELECT tenancy.create_tenant('dff_a'), tenancy.create_tenant('dff_b');
             SELECT tenancy.grant_feature('dff_b', 'dff.payroll');
             SET LOCAL ROLE dff_adm;
             CREATE TABLE dff_s.pay (id int, tenant_id text, PRIMARY KEY (tenant_id, id));
             SELECT tenancy.protect('dff_s.pay', feature => 'dff.payroll');
             GRANT SELECT, INSERT, UPDATE ON dff_s.pay TO dff_app;",
        );
        as_app("dff", "dff_a");
        assert_fails(
            "INSERT INTO dff_s.pay (id) VALUES (1)",
            "42501",
            "tenant 'dff_a' is not entitled to feature 'dff.payroll' now",
        );
        assert_eq!(count("SELECT count(*) FROM dff_s.pay"), 0);
        as_app("dff", "dff_b");
        run("INSERT INTO dff_s.pay (id) VALUES (1); UPDATE dff_s.pay SET id = 2");
        assert_eq!(count("SELECT count(*) FROM dff_s.pay WHERE id = 2"), 1);
        // Another tenant's row is still the isolation policy's refusal.
        assert_fails(
            "INSERT INTO dff_s.pay (id, tenant_id) VALUES (3, 'dff_a')",
            "42501",
            "new row violates row-level security policy for table \"pay\"",
        );
        // The gate is still what the DDL guard and check() know (its USING is unchanged).
        run("RESET ROLE");
        assert!(findings("dff_s")
            .iter()
            .all(|x| x.severity != "critical" && x.severity != "high"));
    }

    /// A write into a protected table without a context is PostgreSQL's row level security
    /// refusal (42501; no row is anyone's); with tenancy.require_context = on it is 55000,
    /// naming the missing context. Reads: no rows, or 55000.
    #[pg_test]
    fn a_write_without_a_context_is_42501_or_55000_with_require_context() {
        base("dfn");
        run("SELECT tenancy.create_tenant('dfn_a');
             SET LOCAL ROLE dfn_adm;
             CREATE TABLE dfn_s.t (id int, tenant_id text, PRIMARY KEY (tenant_id, id));
             SELECT tenancy.protect('dfn_s.t');
             GRANT SELECT, INSERT ON dfn_s.t TO dfn_app;
             RESET ROLE; SET LOCAL ROLE dfn_app;");
        assert_fails(
            "INSERT INTO dfn_s.t (id) VALUES (1)",
            "42501",
            "new row violates row-level security policy",
        );
        assert_eq!(count("SELECT count(*) FROM dfn_s.t"), 0);
        run("SET LOCAL tenancy.require_context = on");
        assert_fails(
            "INSERT INTO dfn_s.t (id) VALUES (1)",
            "55000",
            "no tenant context is set",
        );
        assert_fails("SELECT count(*) FROM dfn_s.t", "55000", "no tenant context");
    }

    /// An admin changes a tenant's settings through set_tenant_settings() (the registry is
    /// read-only to it: UPDATE is 42501), may mint tokens with sign_token(), and a purge
    /// refused for want of its confirmation says to export to a file and verify it first.
    #[pg_test]
    fn what_an_admin_does_to_a_tenant() {
        base("dfa");
        run(
            "SELECT tenancy.create_tenant('dfa_a', settings => '{\"region\": \"eu\"}');
             SET LOCAL ROLE dfa_adm;",
        );
        assert_denied(
            "UPDATE tenancy.tenants SET settings = settings || '{\"min_n\": 10}' WHERE id = 'dfa_a'",
        );
        run("SELECT tenancy.set_tenant_settings('dfa_a',
                 (SELECT settings FROM tenancy.tenants WHERE id = 'dfa_a') || '{\"min_n\": 10}')");
        assert_eq!(
            text("SELECT settings::text FROM tenancy.tenants WHERE id = 'dfa_a'"),
            "{\"min_n\": 10, \"region\": \"eu\"}"
        );
        let tok = text("SELECT tenancy.sign_token('{\"tenant_id\": \"dfa_a\"}', 'dfa_k')");
        assert_eq!(tok.split('.').count(), 3);
        run("SELECT tenancy.deactivate_tenant('dfa_a')");
        let hint = text(
            "DO $$ BEGIN PERFORM tenancy.purge_tenant('dfa_a', 'purge dfa_b');
             EXCEPTION WHEN invalid_parameter_value THEN
                 DECLARE h text; BEGIN GET STACKED DIAGNOSTICS h = PG_EXCEPTION_HINT;
                 PERFORM set_config('dfa.hint', h, true); END;
             END $$; SELECT current_setting('dfa.hint')",
        );
        assert!(
            hint.contains("export_tenant() to a file and verify the file"),
            "{hint}"
        );
    }
}
