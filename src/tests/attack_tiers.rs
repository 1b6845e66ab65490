//! Attacks by the tiers above the application role (admin, trusted) that found their way in
//! through grants rather than through one function: writing the protected-table registry
//! (which export, purge and the quota code trust with the extension owner's rights), and
//! minting tokens that outlive the grant that minted them.

#[pgrx::pg_schema]
mod tests {
    use pgrx::prelude::*;

    use crate::tests::fixture::*;

    /// An app role `{p}_app`; `{p}_adm` with its own schema and `{p}_job`, whose tiers each
    /// test grants; tenants `{p}_a`/`{p}_b`; the signing key `{p}_k`.
    fn tiers(p: &str) {
        roles(p, &[("app", Tier::App)]);
        run(&format!(
            "CREATE ROLE {p}_adm NOLOGIN; CREATE ROLE {p}_job NOLOGIN;
             CREATE SCHEMA {p}_s AUTHORIZATION {p}_adm;"
        ));
        tenants(p);
        signing_key(p);
    }

    /// The registry is read-only to admins in every form: a view, a catalog table and the
    /// extension's own key table registered by hand, a weakened guard state, a forgotten entry.
    #[pg_test]
    fn an_admin_cannot_write_the_protected_table_registry() {
        tiers("atr");
        run("SELECT tenancy.grant_admin('atr_adm')");
        run("SET LOCAL ROLE atr_adm;
             CREATE TABLE atr_s.t (id int, tenant_id text NOT NULL);
             SELECT tenancy.protect('atr_s.t');
             CREATE VIEW atr_s.v AS SELECT 'atr_a'::text AS tenant_id, current_user AS who;");
        for (what, sql) in [
            ("a view", "INSERT INTO tenancy.protected_tables (tbl, tenant_column, column_type, policy_name, isolation_qual) VALUES ('atr_s.v', 'tenant_id', 'text', 'x', 'x')"),
            ("a catalog", "INSERT INTO tenancy.protected_tables (tbl, tenant_column, column_type, policy_name, isolation_qual) VALUES ('pg_catalog.pg_authid', 'rolname', 'name', 'x', 'x')"),
            ("the key table", "INSERT INTO tenancy.protected_tables (tbl, tenant_column, column_type, policy_name, isolation_qual) VALUES ('tenancy.signing_keys', 'kid', 'text', 'x', 'x')"),
            ("a guard state", "UPDATE tenancy.protected_tables SET guard_state = '{rls_not_forced}' WHERE tbl = 'atr_s.t'::regclass"),
            ("an isolation qual", "UPDATE tenancy.protected_tables SET isolation_qual = 'true' WHERE tbl = 'atr_s.t'::regclass"),
            ("an entry", "DELETE FROM tenancy.protected_tables WHERE tbl = 'atr_s.t'::regclass"),
            ("an enrolment", "INSERT INTO tenancy.enrolled_schemas (schema_name, tenant_column) VALUES ('atr_s', 'tenant_id')"),
        ] {
            let f = failure(sql).unwrap_or_else(|| panic!("an admin wrote {what}: {sql}"));
            let table = if sql.contains("enrolled_schemas") {
                "enrolled_schemas"
            } else {
                "protected_tables"
            };
            assert_failure(
                &f,
                "42501",
                &format!("permission denied for table {table}"),
                what,
            );
        }
        // Registered only through protect(), and the registry says who did it.
        assert_eq!(
            text("SELECT protected_by::text FROM tenancy.protected_tables WHERE tbl = 'atr_s.t'::regclass"),
            "atr_adm"
        );
        assert_eq!(
            count("SELECT count(*) FROM tenancy.protected_tables WHERE tbl::text IN ('atr_s.v', 'pg_catalog.pg_authid', 'tenancy.signing_keys')"),
            0
        );
        // export_tenant therefore never reads the view (or a catalog) with the owner's rights.
        assert_eq!(
            count(
                "SELECT count(*) FROM tenancy.export_tenant('atr_a') WHERE table_name <> 'atr_s.t'"
            ),
            0
        );
    }

    /// What the admin keeps: protect/unprotect of its own tables, enrolment through
    /// protect_schema() and removing it; protect() of a table it does not own still fails.
    #[pg_test]
    fn an_admin_still_protects_its_own_tables_and_manages_enrolment() {
        tiers("atk");
        run("SELECT tenancy.grant_admin('atk_adm')");
        run(
            "CREATE TABLE public.atk_foreign (id int, tenant_id text NOT NULL);
             SET LOCAL ROLE atk_adm;
             CREATE TABLE atk_s.t (id int, tenant_id text NOT NULL);
             SELECT tenancy.protect('atk_s.t');
             SELECT tenancy.unprotect('atk_s.t');
             SELECT tenancy.protect_schema('atk_s');",
        );
        assert_eq!(
            count("SELECT count(*) FROM tenancy.enrolled_schemas WHERE schema_name = 'atk_s'"),
            1
        );
        assert_eq!(
            count("SELECT count(*) FROM tenancy.protected_tables WHERE tbl = 'atk_s.t'::regclass AND protected_by = 'atk_adm'"),
            1
        );
        run("DELETE FROM tenancy.enrolled_schemas WHERE schema_name = 'atk_s'");
        assert_fails(
            "SELECT tenancy.protect('public.atk_foreign')",
            "42501",
            "must be owner",
        );
        assert_eq!(
            count("SELECT count(*) FROM tenancy.protected_tables WHERE tbl = 'public.atk_foreign'::regclass"),
            0
        );
    }

    fn claims_of(token: &str) -> serde_json::Value {
        let payload = token.split('.').nth(1).expect("payload");
        let json = text(&format!(
            "SELECT convert_from(decode(translate({}, '-_', '+/') || repeat('=', (4 - length({0}) % 4) % 4), 'base64'), 'UTF8')",
            pgrx::spi::quote_literal(payload)
        ));
        serde_json::from_str(&json).expect("claims")
    }

    /// A token minted by the trusted tier always expires within the cap: without exp, with an
    /// exp years away, with a non-numeric exp; and the cap is not the minter's to raise.
    #[pg_test]
    fn trusted_tokens_expire_within_the_cap() {
        tiers("ttk");
        run("SELECT tenancy.grant_trusted('ttk_job')");
        let now = one::<i64>("SELECT extract(epoch FROM statement_timestamp())::bigint").unwrap();
        run("SET LOCAL ROLE ttk_job");
        let tok = text(
            "SELECT tenancy.sign_token('{\"tenant_id\": \"ttk_b\", \"sub\": \"ceo\"}', 'ttk_k')",
        );
        let c = claims_of(&tok);
        let exp = c["exp"].as_i64().expect("exp added");
        assert!(exp > now && exp <= now + 3600 + 1, "exp {exp} now {now}");
        assert!(c["iat"].as_i64().is_some(), "iat added: {c}");
        for claims in [
            "{\"tenant_id\": \"ttk_b\", \"exp\": 4102444800}",
            "{\"tenant_id\": \"ttk_b\", \"exp\": \"4102444800\"}",
            "{\"tenant_id\": \"ttk_b\", \"exp\": 1e12}",
        ] {
            assert_fails(
                &format!("SELECT tenancy.sign_token('{claims}', 'ttk_k')"),
                "22023",
                "exp",
            );
        }
        assert_fails(
            "SET tenancy.sign_token_max_age = 604800",
            "42501",
            "permission denied to set parameter \"tenancy.sign_token_max_age\"",
        );
        assert_fails(
            "SELECT set_config('tenancy.sign_token_max_age', '604800', true)",
            "42501",
            "permission denied to set parameter \"tenancy.sign_token_max_age\"",
        );
        // A superuser may shorten (or lengthen) the cap; the minted exp follows it.
        run("RESET ROLE; SET LOCAL tenancy.sign_token_max_age = 60; SET LOCAL ROLE ttk_job");
        let c = claims_of(&text(
            "SELECT tenancy.sign_token('{\"tenant_id\": \"ttk_b\"}', 'ttk_k')",
        ));
        assert!(c["exp"].as_i64().unwrap() <= now + 61, "{c}");
    }

    /// The extension's own triggers on a protected table cannot be silenced unseen: enabled
    /// for replicas only (they then never fire), disabled, or replaced by a look-alike of the
    /// same name; check() reports each, and its fixes make them fire again.
    #[pg_test]
    fn check_sees_the_extensions_triggers_silenced_in_every_form() {
        tiers("tsil");
        run("SELECT tenancy.grant_admin('tsil_adm');
             SET LOCAL ROLE tsil_adm;
             CREATE TABLE tsil_s.t (id int, tenant_id text NOT NULL DEFAULT 'x');
             SELECT tenancy.protect('tsil_s.t');
             SELECT tenancy.set_quota('tsil_a', 'tsil_s.t', 2);
             GRANT USAGE ON SCHEMA tsil_s TO tsil_app;
             GRANT INSERT, SELECT ON tsil_s.t TO tsil_app;
             ALTER TABLE tsil_s.t ENABLE REPLICA TRIGGER tenancy_support_audit;
             ALTER TABLE tsil_s.t ENABLE REPLICA TRIGGER tenancy_quota_insert;
             RESET ROLE;");
        let rules = |p: &str| {
            text(&format!(
                "SELECT coalesce(string_agg(rule, ',' ORDER BY rule), '') FROM tenancy.check('tsil_s') WHERE object LIKE '%{p}%'"
            ))
        };
        assert_eq!(rules("t"), "quota_not_enforced,support_writes_unrecorded");
        // The silenced quota is real: the tenant goes past it.
        run(
            "SELECT tenancy.set_tenant('tsil_a'); SET LOCAL ROLE tsil_app;
             INSERT INTO tsil_s.t (id) SELECT g FROM generate_series(1, 5) g; RESET ROLE",
        );
        assert_eq!(count("SELECT count(*) FROM tsil_s.t"), 5);
        // The fixes, run by the admin as the docs' loop does, make both fire again.
        run("SET LOCAL ROLE tsil_adm;
             DO $$ DECLARE f text; BEGIN
               FOR f IN SELECT fix FROM tenancy.check('tsil_s')
                         WHERE rule IN ('quota_not_enforced', 'support_writes_unrecorded') LOOP
                 EXECUTE f; END LOOP; END $$;
             RESET ROLE");
        assert_eq!(rules("t"), "");
        run("SELECT tenancy.set_tenant('tsil_a'); SET LOCAL ROLE tsil_app");
        assert_fails("INSERT INTO tsil_s.t (id) VALUES (6)", "54000", "quota");
        run("RESET ROLE");
        // Disabled, and a look-alike trigger of the same name calling the owner's function.
        run("SET LOCAL ROLE tsil_adm;
             ALTER TABLE tsil_s.t DISABLE TRIGGER tenancy_quota_delete;
             CREATE FUNCTION tsil_s.nop() RETURNS trigger LANGUAGE plpgsql AS $f$ BEGIN RETURN NULL; END $f$;
             DROP TRIGGER tenancy_support_audit ON tsil_s.t;
             CREATE TRIGGER tenancy_support_audit AFTER INSERT ON tsil_s.t
                 FOR EACH STATEMENT EXECUTE FUNCTION tsil_s.nop();
             RESET ROLE");
        assert_eq!(
            rules("t"),
            "owner_trigger_on_protected_table,quota_not_enforced,support_writes_unrecorded"
        );
    }

    /// Time limits hold inside one long statement (a pg_test is one: its statement start
    /// stays fixed, like a DO loop's or a procedure's): a feature's enabled_until, then a
    /// token's exp. Both used to be compared with the transaction's or the statement's start.
    #[pg_test]
    fn expiry_is_by_the_clock_inside_a_long_statement() {
        tiers("tclk");
        run("CREATE TABLE public.tclk_t (id int, tenant_id text NOT NULL);
             INSERT INTO public.tclk_t VALUES (1, 'tclk_a');
             SELECT tenancy.protect('public.tclk_t');
             CREATE TABLE public.tclk_f (id int, tenant_id text NOT NULL);
             INSERT INTO public.tclk_f VALUES (1, 'tclk_a');
             SELECT tenancy.protect('public.tclk_f', feature => 'tclk_feat');
             SELECT tenancy.grant_feature('tclk_a', 'tclk_feat', clock_timestamp() - interval '1 hour',
                                          clock_timestamp() + interval '2 seconds');
             GRANT SELECT ON public.tclk_t, public.tclk_f TO tclk_app;
             SELECT tenancy.set_tenant('tclk_a'); SET LOCAL ROLE tclk_app;");
        assert_eq!(count("SELECT count(*) FROM public.tclk_f"), 1);
        run("SELECT pg_sleep(2.5)");
        assert_eq!(count("SELECT count(*) FROM public.tclk_f"), 0);
        run("RESET ROLE; SET LOCAL tenancy.jwt_leeway = 0");
        let tok = text(
            "SELECT tenancy.sign_token(jsonb_build_object('tenant_id', 'tclk_a',
                 'exp', extract(epoch FROM clock_timestamp())::bigint + 2), 'tclk_k')",
        );
        run(&format!(
            "SET LOCAL ROLE tclk_app; SELECT tenancy.set_context({})",
            pgrx::spi::quote_literal(&tok)
        ));
        assert_eq!(count("SELECT count(*) FROM public.tclk_t"), 1);
        run("SELECT pg_sleep(3.2)");
        assert_fails("SELECT count(*) FROM public.tclk_t", "28000", "expired");
    }

    /// An application role that may create objects can plant a view that stands in for the
    /// name other tenants' queries use (on any connection, not only a pooled one): check()
    /// reports it in every form — CREATE granted on a schema, a schema it owns, CREATE on the
    /// database — and the fixes it can give close it.
    #[pg_test]
    fn check_reports_application_roles_that_can_create_objects() {
        tiers("tcre");
        run(
            "CREATE SCHEMA tcre_granted; GRANT CREATE ON SCHEMA tcre_granted TO tcre_app;
             CREATE SCHEMA tcre_owned AUTHORIZATION tcre_app;
             CREATE SCHEMA tcre_clean; GRANT USAGE ON SCHEMA tcre_clean TO tcre_app;",
        );
        let found = |schema: &str| {
            findings(schema)
                .into_iter()
                .filter(|f| f.rule == "app_role_can_create")
                .map(|f| (f.object, f.fix))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            found("tcre_granted"),
            vec![(
                "role tcre_app on schema tcre_granted".to_string(),
                Some("REVOKE CREATE ON SCHEMA tcre_granted FROM tcre_app;".to_string())
            )]
        );
        assert_eq!(
            found("tcre_owned"),
            vec![("role tcre_app on schema tcre_owned".to_string(), None)]
        );
        assert_eq!(found("tcre_clean"), vec![]);
        run(&format!(
            "GRANT CREATE ON DATABASE {} TO tcre_app",
            text("SELECT quote_ident(current_database())")
        ));
        let db = found("tcre_clean");
        assert_eq!(db.len(), 1, "{db:?}");
        assert!(db[0].0.starts_with("role tcre_app on database "), "{db:?}");
        for (_, fix) in found("tcre_granted").into_iter().chain(db) {
            run(&fix.expect("a fix"));
        }
        assert_eq!(found("tcre_granted"), vec![]);
        assert_eq!(found("tcre_clean"), vec![]);
    }

    /// The owner's function behind a domain: a cast to a domain whose CHECK calls it runs the
    /// function wherever the expression is evaluated, over every tenant's rows. The DDL guard
    /// follows casts to domains (nested ones too) in CHECKs, indexes and policies, and a CHECK
    /// added to a domain a protected table already uses; check() reports what predates it.
    #[pg_test]
    fn owner_code_behind_a_domain_is_owner_code() {
        tiers("tdom");
        run("SELECT tenancy.grant_admin('tdom_adm');
             SET LOCAL ROLE tdom_adm;
             CREATE FUNCTION tdom_s.spy(v text) RETURNS boolean LANGUAGE sql IMMUTABLE AS $f$ SELECT true $f$;
             CREATE DOMAIN tdom_s.spy_dom AS text CHECK (tdom_s.spy(VALUE));
             CREATE DOMAIN tdom_s.outer_dom AS tdom_s.spy_dom;
             CREATE DOMAIN tdom_s.tid AS text;
             CREATE TABLE tdom_s.t (tenant_id tdom_s.tid NOT NULL, salary int);
             SELECT tenancy.protect('tdom_s.t');");
        for sql in [
            "ALTER TABLE tdom_s.t ADD CONSTRAINT c3 CHECK ((tenant_id || ':' || salary)::tdom_s.spy_dom IS NOT NULL)",
            "CREATE INDEX tdom_ix ON tdom_s.t (((tenant_id || '/' || salary)::tdom_s.spy_dom))",
            "CREATE POLICY rp ON tdom_s.t AS RESTRICTIVE FOR SELECT USING ((tenant_id || '#' || salary)::tdom_s.spy_dom IS NOT NULL)",
            "ALTER TABLE tdom_s.t ADD CONSTRAINT c4 CHECK ((salary::text)::tdom_s.outer_dom IS NOT NULL)",
            "ALTER DOMAIN tdom_s.tid ADD CONSTRAINT d1 CHECK (tdom_s.spy(VALUE))",
        ] {
            assert_fails(sql, "42501", "tdom_s.spy");
        }
        // Built in functions behind a domain are fine.
        run("CREATE DOMAIN tdom_s.plain AS text CHECK (length(VALUE) < 100);
             ALTER TABLE tdom_s.t ADD CONSTRAINT c5 CHECK ((salary::text)::tdom_s.plain IS NOT NULL);
             RESET ROLE");
        // What went past the guard (off) is reported, and the fix removes it.
        run("SET LOCAL tenancy.ddl_guard = off;
             ALTER TABLE tdom_s.t ADD CONSTRAINT c6 CHECK ((salary::text)::tdom_s.outer_dom IS NOT NULL);
             RESET tenancy.ddl_guard");
        let found: Vec<Finding> = findings("tdom_s")
            .into_iter()
            .filter(|f| f.rule == "owner_code_on_protected_table")
            .collect();
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].object.contains("named by an expression"),
            "{found:?}"
        );
        run(found[0].fix_text());
        assert_eq!(
            findings("tdom_s")
                .into_iter()
                .filter(|f| f.rule == "owner_code_on_protected_table")
                .count(),
            0
        );
    }

    /// The owner's function behind what a column's type is built from: a range type's
    /// subtype_diff (GiST calls it on every insert and split, over every tenant's entries), a
    /// composite whose attribute is a domain with the owner's CHECK, a cast into the owner's
    /// enum created after the column (it runs in every tenant's statements). Each refused by
    /// the DDL guard; what went past it is reported by check().
    #[pg_test]
    fn owner_code_behind_a_type_is_owner_code() {
        tiers("ttyp");
        run("SELECT tenancy.grant_admin('ttyp_adm');
             SET LOCAL ROLE ttyp_adm;
             CREATE FUNCTION ttyp_s.sd(a int4, b int4) RETURNS float8 LANGUAGE sql IMMUTABLE
                 AS $f$ SELECT (a - b)::float8 $f$;
             CREATE TYPE ttyp_s.myr AS RANGE (subtype = int4, subtype_diff = ttyp_s.sd);
             CREATE FUNCTION ttyp_s.spy(v text) RETURNS boolean LANGUAGE sql IMMUTABLE AS $f$ SELECT true $f$;
             CREATE DOMAIN ttyp_s.spy_dom AS text CHECK (ttyp_s.spy(VALUE));
             CREATE TYPE ttyp_s.comp AS (x ttyp_s.spy_dom);
             CREATE TYPE ttyp_s.e AS ENUM ('a', 'b');
             CREATE FUNCTION ttyp_s.ce(v text) RETURNS ttyp_s.e LANGUAGE sql IMMUTABLE AS $f$ SELECT 'a'::ttyp_s.e $f$;
             CREATE TABLE ttyp_s.t (tenant_id text NOT NULL, e ttyp_s.e);
             SELECT tenancy.protect('ttyp_s.t');");
        for (sql, needle) in [
            ("ALTER TABLE ttyp_s.t ADD COLUMN mr ttyp_s.myr", "ttyp_s.sd"),
            (
                "ALTER TABLE ttyp_s.t ADD COLUMN mm ttyp_s.myr_multirange",
                "ttyp_s.sd",
            ),
            (
                "ALTER TABLE ttyp_s.t ADD COLUMN c ttyp_s.comp",
                "ttyp_s.spy",
            ),
            (
                "CREATE CAST (text AS ttyp_s.e) WITH FUNCTION ttyp_s.ce(text) AS ASSIGNMENT",
                "ttyp_s.ce",
            ),
        ] {
            assert_fails(sql, "42501", needle);
        }
        run("RESET ROLE; SET LOCAL tenancy.ddl_guard = off;
             ALTER TABLE ttyp_s.t ADD COLUMN mr ttyp_s.myr;
             RESET tenancy.ddl_guard");
        let found: Vec<Finding> = findings("ttyp_s")
            .into_iter()
            .filter(|f| f.rule == "owner_code_on_protected_table")
            .collect();
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].object.contains("column mr"), "{found:?}");
        assert_eq!(found[0].fix, None, "{found:?}");
    }
}
