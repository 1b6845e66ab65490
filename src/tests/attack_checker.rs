//! Attack class 9 of issue #13: checker blind spots. Each test builds the catalog shapes a
//! rule used not to read, shows (where it is a leak through SQL) what an application role
//! gets from it, checks that `tenancy.check()` reports every form, and runs the fixes, after
//! which the findings are gone. The clean-schema test in `check.rs` stays silent.

#[pgrx::pg_schema]
mod tests {
    use pgrx::prelude::*;

    use crate::tests::fixture::{
        apply_fix, assert_failure, count, failure, findings, install_try_sql, one, run, Finding,
    };

    fn of_rule<'a>(found: &'a [Finding], rule: &str) -> Vec<&'a Finding> {
        found.iter().filter(|f| f.rule == rule).collect()
    }

    fn objects(found: &[Finding], rule: &str) -> Vec<String> {
        let mut v: Vec<String> = of_rule(found, rule)
            .iter()
            .map(|f| f.object.clone())
            .collect();
        v.sort();
        v
    }

    /// Runs the fixes of `rule` in check()'s order; each succeeds and its finding goes.
    fn run_fixes(schema: &str, rule: &str) {
        for f in of_rule(&findings(schema), rule) {
            apply_fix(schema, f, || {});
        }
        assert!(of_rule(&findings(schema), rule).is_empty());
    }

    fn tenants_and_app(p: &str) {
        install_try_sql();
        run(&format!(
            "CREATE ROLE {p}_app NOLOGIN; SELECT tenancy.grant_app('{p}_app');
             GRANT EXECUTE ON FUNCTION pg_temp.try_sql(text) TO {p}_app;
             SELECT tenancy.create_tenant('{p}_a'), tenancy.create_tenant('{p}_b');
             CREATE SCHEMA {p}; GRANT USAGE ON SCHEMA {p} TO {p}_app;"
        ));
    }

    /// SECURITY DEFINER functions owned by a role that bypasses row level security, reading a
    /// protected table through an SQL-standard body (empty prosrc: read from pg_depend) or
    /// through security_invoker views: four forms, each reported and each fixed.
    #[pg_test]
    fn security_definer_functions_with_sql_standard_bodies_are_read() {
        tenants_and_app("h1k1");
        run("CREATE TABLE h1k1.pay (tenant_id text, amount numeric);
             SELECT tenancy.protect('h1k1.pay');
             INSERT INTO h1k1.pay VALUES ('h1k1_a', 1), ('h1k1_b', 1000);
             CREATE VIEW h1k1.pay_v WITH (security_invoker = true) AS SELECT amount FROM h1k1.pay;
             CREATE VIEW h1k1.pay_v2 WITH (security_invoker = true) AS SELECT amount FROM h1k1.pay_v;
             CREATE TABLE h1k1.other (v int);
             -- BEGIN ATOMIC
             CREATE FUNCTION h1k1.total_atomic() RETURNS numeric LANGUAGE sql SECURITY DEFINER
                 SET search_path = pg_catalog, pg_temp
             BEGIN ATOMIC SELECT sum(amount) FROM h1k1.pay; END;
             -- RETURN
             CREATE FUNCTION h1k1.total_return() RETURNS numeric LANGUAGE sql SECURITY DEFINER
                 SET search_path = pg_catalog, pg_temp
             RETURN (SELECT sum(amount) FROM h1k1.pay);
             -- BEGIN ATOMIC through two invoker views
             CREATE FUNCTION h1k1.total_view() RETURNS numeric LANGUAGE sql SECURITY DEFINER
                 SET search_path = pg_catalog, pg_temp
             BEGIN ATOMIC SELECT sum(amount) FROM h1k1.pay_v2; END;
             -- plpgsql naming an invoker view
             CREATE FUNCTION h1k1.total_plpgsql() RETURNS numeric LANGUAGE plpgsql SECURITY DEFINER
                 SET search_path = pg_catalog, pg_temp
             AS $$ BEGIN RETURN (SELECT sum(amount) FROM h1k1.\"pay_v\"); END $$;
             -- not reported: reads an unprotected table only
             CREATE FUNCTION h1k1.other_atomic() RETURNS bigint LANGUAGE sql SECURITY DEFINER
                 SET search_path = pg_catalog, pg_temp
             BEGIN ATOMIC SELECT count(*) FROM h1k1.other; END;
             GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA h1k1 TO h1k1_app;
             GRANT SELECT ON ALL TABLES IN SCHEMA h1k1 TO h1k1_app;");
        // What the application role gets: every tenant's total, through each form.
        // Tenant a's total through each form, as the application role.
        let totals = |expected: &str| {
            for f in [
                "total_atomic",
                "total_return",
                "total_view",
                "total_plpgsql",
            ] {
                assert_eq!(
                    one::<pgrx::AnyNumeric>(&format!(
                        "SELECT tenancy.set_tenant('h1k1_a'); SET LOCAL ROLE h1k1_app; SELECT h1k1.{f}()"
                    ))
                    .map(|n| n.to_string()),
                    Some(expected.to_string()),
                    "{f}"
                );
                run("RESET ROLE");
            }
        };
        totals("1001");
        let found = findings("h1k1");
        assert_eq!(
            objects(&found, "security_definer_bypass"),
            vec![
                "h1k1.total_atomic()",
                "h1k1.total_plpgsql()",
                "h1k1.total_return()",
                "h1k1.total_view()"
            ],
            "{found:#?}"
        );
        run_fixes("h1k1", "security_definer_bypass");
        // After the fixes, only tenant a's own row.
        totals("1");
    }

    /// A parent of a protected table that is not protected returns the child's rows under
    /// its own policies (none): a plain inheritance parent without the tenant column, a
    /// grandparent, an inheritance parent with the tenant column, and a partitioned table
    /// above a protected sub-partitioned partition.
    #[pg_test]
    fn unprotected_parents_of_protected_tables_are_reported() {
        tenants_and_app("h1k2");
        run("CREATE TABLE h1k2.grand (id int, v text);
             CREATE TABLE h1k2.base (w text) INHERITS (h1k2.grand);
             CREATE TABLE h1k2.emp (tenant_id text) INHERITS (h1k2.base);
             CREATE TABLE h1k2.with_col (tenant_id text, v text);
             CREATE TABLE h1k2.notes (x int) INHERITS (h1k2.with_col);
             CREATE TABLE h1k2.top (at date, tenant_id text, v text) PARTITION BY RANGE (at);
             CREATE TABLE h1k2.mid PARTITION OF h1k2.top FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')
                 PARTITION BY LIST (tenant_id);
             CREATE TABLE h1k2.leaf PARTITION OF h1k2.mid DEFAULT;
             SELECT tenancy.protect('h1k2.emp'), tenancy.protect('h1k2.notes'), tenancy.protect('h1k2.mid');
             INSERT INTO h1k2.emp (id, v, tenant_id) VALUES (1, 'a salary', 'h1k2_a'), (2, 'b salary', 'h1k2_b');
             INSERT INTO h1k2.notes VALUES ('h1k2_a', 'a note', 1), ('h1k2_b', 'b note', 2);
             INSERT INTO h1k2.mid VALUES ('2026-05-01', 'h1k2_a', 'a'), ('2026-05-01', 'h1k2_b', 'b');
             GRANT SELECT ON ALL TABLES IN SCHEMA h1k2 TO h1k2_app;");
        let leak = |sql: &str| -> i64 {
            let n = one::<i64>(&format!(
                "SELECT tenancy.set_tenant('h1k2_a'); SET LOCAL ROLE h1k2_app; {sql}"
            ))
            .unwrap_or(-1);
            run("RESET ROLE");
            n
        };
        // Tenant a, through each parent, reads tenant b's rows.
        assert_eq!(
            leak("SELECT count(*) FROM h1k2.grand WHERE v = 'b salary'"),
            1
        );
        assert_eq!(
            leak("SELECT count(*) FROM h1k2.base WHERE v = 'b salary'"),
            1
        );
        assert_eq!(
            leak("SELECT count(*) FROM h1k2.with_col WHERE v = 'b note'"),
            1
        );
        assert_eq!(leak("SELECT count(*) FROM h1k2.top WHERE v = 'b'"), 1);

        let found = findings("h1k2");
        assert_eq!(
            objects(&found, "unprotected_parent"),
            vec!["h1k2.base", "h1k2.grand", "h1k2.top", "h1k2.with_col"],
            "{found:#?}"
        );
        assert!(
            of_rule(&found, "unprotected_tenant_table").is_empty(),
            "a parent is reported once: {found:#?}"
        );
        let fix = |o: &str| {
            of_rule(&found, "unprotected_parent")
                .into_iter()
                .find(|f| f.object == o)
                .and_then(|f| f.fix.clone())
                .unwrap_or_default()
        };
        assert_eq!(
            fix("h1k2.base"),
            "ALTER TABLE h1k2.emp NO INHERIT h1k2.base;"
        );
        assert_eq!(
            fix("h1k2.grand"),
            "ALTER TABLE h1k2.base NO INHERIT h1k2.grand;"
        );
        assert_eq!(
            fix("h1k2.with_col"),
            "SELECT tenancy.protect('h1k2.with_col', 'tenant_id');"
        );
        assert_eq!(
            fix("h1k2.top"),
            "SELECT tenancy.protect('h1k2.top', 'tenant_id');"
        );
        run_fixes("h1k2", "unprotected_parent");
        for sql in [
            "SELECT count(*) FROM h1k2.grand WHERE v = 'b salary'",
            "SELECT count(*) FROM h1k2.base WHERE v = 'b salary'",
            "SELECT count(*) FROM h1k2.with_col WHERE v = 'b note'",
            "SELECT count(*) FROM h1k2.top WHERE v = 'b'",
        ] {
            assert_eq!(leak(sql), 0, "{sql}");
        }
        assert_eq!(leak("SELECT count(*) FROM h1k2.top"), 1);
        assert!(findings("h1k2").is_empty(), "{:#?}", findings("h1k2"));
    }

    /// Column-level REFERENCES grants (to a role, to PUBLIC, on several columns) and foreign
    /// keys into a protected table from tables that are not tenant data (one column, two
    /// columns, from a partitioned table): each answers "does this value exist in another
    /// tenant?", because foreign keys are checked without row level security.
    #[pg_test]
    fn column_references_and_foreign_keys_into_protected_tables_are_reported() {
        tenants_and_app("h1k3");
        run("CREATE ROLE h1k3_other NOLOGIN;
             CREATE TABLE h1k3.staff (tenant_id text NOT NULL, id int, email text, badge int,
                                      UNIQUE (id), UNIQUE (email, badge));
             CREATE TABLE h1k3.badges (tenant_id text, id int UNIQUE);
             CREATE TABLE h1k3.cards (tenant_id text, id int UNIQUE);
             SELECT tenancy.protect('h1k3.staff'), tenancy.protect('h1k3.badges'), tenancy.protect('h1k3.cards');
             INSERT INTO h1k3.staff VALUES ('h1k3_b', 7, 'ceo@b.example', 1);
             GRANT REFERENCES (id) ON h1k3.staff TO h1k3_app;
             GRANT REFERENCES (id) ON h1k3.badges TO PUBLIC;
             GRANT REFERENCES (id, tenant_id) ON h1k3.cards TO h1k3_other;
             CREATE SCHEMA h1k3_own AUTHORIZATION h1k3_app;");
        // The oracle: tenant a's application role learns that id 7 exists (in tenant b).
        let probe = |v: i32| {
            let r = failure(&format!(
                "SELECT tenancy.set_tenant('h1k3_a'); SET LOCAL ROLE h1k3_app;
                 CREATE TABLE IF NOT EXISTS h1k3_own.probe (x int REFERENCES h1k3.staff (id));
                 INSERT INTO h1k3_own.probe VALUES ({v})"
            ));
            run("RESET ROLE");
            r
        };
        assert_eq!(probe(7), None, "7 exists in another tenant");
        assert_failure(
            &probe(8).unwrap_or_default(),
            "23503",
            "violates foreign key constraint",
            "a reference to a row that exists nowhere",
        );
        // Foreign keys that exist already, from tables that are not tenant data.
        run("CREATE TABLE h1k3.lookup (staff_id int REFERENCES h1k3.staff (id));
             CREATE TABLE h1k3.lookup2 (e text, b int, FOREIGN KEY (e, b) REFERENCES h1k3.staff (email, badge));
             CREATE TABLE h1k3.lookup3 (d date, staff_id int REFERENCES h1k3.staff (id)) PARTITION BY RANGE (d);
             CREATE TABLE h1k3.lookup3_26 PARTITION OF h1k3.lookup3 FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');");
        let found = findings("h1k3");
        assert_eq!(
            objects(&found, "risky_column_privilege"),
            vec![
                "PUBLIC on h1k3.badges",
                "h1k3_app on h1k3.staff",
                "h1k3_other on h1k3.cards"
            ],
            "{found:#?}"
        );
        assert_eq!(
            objects(&found, "foreign_key_into_protected_table"),
            vec![
                "constraint lookup2_e_b_fkey on h1k3.lookup2",
                "constraint lookup3_staff_id_fkey on h1k3.lookup3",
                "constraint lookup_staff_id_fkey on h1k3.lookup",
                "constraint probe_x_fkey on h1k3_own.probe",
            ],
            "{found:#?}"
        );
        assert!(of_rule(&found, "risky_column_privilege")
            .iter()
            .any(|f| f.fix.as_deref()
                == Some("REVOKE REFERENCES (tenant_id, id) ON TABLE h1k3.cards FROM h1k3_other;")));
        run_fixes("h1k3", "risky_column_privilege");
        run_fixes("h1k3", "foreign_key_into_protected_table");
        // The grant is gone: no new probe can be built.
        let e = failure(
            "SET LOCAL ROLE h1k3_app;
             CREATE TABLE h1k3_own.probe2 (x int REFERENCES h1k3.staff (id))",
        )
        .unwrap_or_default();
        run("RESET ROLE");
        assert_failure(
            &e,
            "42501",
            "permission denied for table staff",
            "REFERENCES",
        );
        run_fixes("h1k3", "global_unique_key");
        let left = findings("h1k3");
        assert!(left.is_empty(), "{left:#?}");
    }

    /// Functions that a protected table's restrictive policy, column default or CHECK
    /// constraint calls run with the caller's search_path: without a pinned one, a temporary
    /// table shadows what they read. Three forms reported and fixed; an SQL-standard body and
    /// a pinned path are not reported.
    #[pg_test]
    fn functions_in_policies_defaults_and_checks_need_a_pinned_search_path() {
        tenants_and_app("h1k4");
        run("SET LOCAL check_function_bodies = off;
             CREATE TABLE h1k4.hr_members (member text);
             INSERT INTO h1k4.hr_members VALUES ('alice');
             GRANT SELECT ON h1k4.hr_members TO h1k4_app;
             CREATE FUNCTION h1k4.is_hr() RETURNS boolean LANGUAGE plpgsql STABLE
             AS $$ BEGIN RETURN EXISTS (SELECT 1 FROM hr_members WHERE member = tenancy.current_actor()); END $$;
             CREATE FUNCTION h1k4.default_grade() RETURNS text LANGUAGE sql STABLE
             AS 'SELECT min(member) FROM hr_members';
             CREATE FUNCTION h1k4.valid_grade(g text) RETURNS boolean LANGUAGE plpgsql IMMUTABLE
             AS $$ BEGIN RETURN g IS NOT NULL; END $$;
             CREATE FUNCTION h1k4.is_hr_atomic() RETURNS boolean LANGUAGE sql STABLE
             BEGIN ATOMIC SELECT EXISTS (SELECT 1 FROM h1k4.hr_members WHERE member = tenancy.current_actor()); END;
             CREATE FUNCTION h1k4.is_hr_pinned() RETURNS boolean LANGUAGE plpgsql STABLE
                 SET search_path = pg_catalog, h1k4, pg_temp
             AS $$ BEGIN RETURN EXISTS (SELECT 1 FROM hr_members WHERE member = tenancy.current_actor()); END $$;
             CREATE TABLE h1k4.salaries (tenant_id text, who text, amount int,
                                         grade text DEFAULT h1k4.default_grade() CHECK (h1k4.valid_grade(grade)));
             SELECT tenancy.protect('h1k4.salaries');
             CREATE POLICY hr_only ON h1k4.salaries AS RESTRICTIVE USING (h1k4.is_hr());
             CREATE POLICY hr_only2 ON h1k4.salaries AS RESTRICTIVE USING (h1k4.is_hr_atomic() OR h1k4.is_hr_pinned() OR true);
             INSERT INTO h1k4.salaries VALUES ('h1k4_a', 'bob', 100, 'x');
             GRANT SELECT ON h1k4.salaries TO h1k4_app;
             RESET check_function_bodies;");
        // mallory is not in HR, but mallory's temporary table shadows the table the policy's
        // function reads (a cached plan would not see a shadow made after it, so it is made
        // first).
        run("SET LOCAL ROLE h1k4_app;
             CREATE TEMP TABLE hr_members (member text);
             INSERT INTO hr_members VALUES ('mallory');
             RESET ROLE");
        let seen = || {
            let n = one::<i64>(
                "SELECT tenancy.set_tenant('h1k4_a', 'mallory'); SET LOCAL ROLE h1k4_app;
                 SET LOCAL search_path = h1k4, public;
                 SELECT count(*) FROM h1k4.salaries",
            );
            run("RESET ROLE; RESET search_path");
            n
        };
        assert_eq!(seen(), Some(1), "the shadowing works before the fix");

        let found = findings("h1k4");
        assert_eq!(
            objects(&found, "expression_function_search_path"),
            vec![
                "h1k4.default_grade()",
                "h1k4.is_hr()",
                "h1k4.valid_grade(text)"
            ],
            "{found:#?}"
        );
        assert!(of_rule(&found, "expression_function_search_path")
            .iter()
            .all(|f| f.severity == "high"));
        run_fixes("h1k4", "expression_function_search_path");
        assert_eq!(seen(), Some(0), "the pinned path is not shadowed");
        assert!(findings("h1k4").is_empty(), "{:#?}", findings("h1k4"));
    }

    /// The loop the docs show (docs/reference.md) runs the critical and high fixes only: the
    /// application keeps inserting into a table with an identity column afterwards. And every
    /// fix is safe to run: shared_sequence, whose old fix dropped the identity (inserts then
    /// failed 23502), offers none, so a loop over every severity keeps the inserts working too.
    #[pg_test]
    fn the_documented_fix_loop_keeps_the_application_working() {
        tenants_and_app("h1k5");
        run("CREATE TABLE h1k5.orders (id bigint GENERATED ALWAYS AS IDENTITY, tenant_id text, code text);
             SELECT tenancy.protect('h1k5.orders');
             CREATE UNIQUE INDEX orders_code ON h1k5.orders (code);
             CREATE VIEW h1k5.order_codes AS SELECT code FROM h1k5.orders;
             CREATE TABLE h1k5.plain (tenant_id text, v text);
             GRANT SELECT, INSERT ON h1k5.orders TO h1k5_app;");
        let before = findings("h1k5");
        for r in [
            "global_unique_key",
            "view_bypasses_rls",
            "unprotected_tenant_table",
            "shared_sequence",
        ] {
            assert!(!of_rule(&before, r).is_empty(), "{r}: {before:#?}");
        }
        run("DO $$ DECLARE f text; BEGIN
                 FOR f IN SELECT fix FROM tenancy.check('h1k5')
                           WHERE severity IN ('critical', 'high') AND fix IS NOT NULL
                 LOOP EXECUTE f; END LOOP;
             END $$;");
        let after = findings("h1k5");
        assert!(
            after
                .iter()
                .all(|f| f.severity != "critical" && f.severity != "high"),
            "{after:#?}"
        );
        assert_eq!(of_rule(&after, "shared_sequence").len(), 1);
        let insert = "SELECT tenancy.set_tenant('h1k5_a'); SET LOCAL ROLE h1k5_app;
                      INSERT INTO h1k5.orders (code) VALUES ('c1')";
        assert_eq!(failure(insert), None);
        run("RESET ROLE");
        assert_eq!(count("SELECT count(*) FROM h1k5.orders"), 1);
        assert_eq!(of_rule(&after, "shared_sequence")[0].fix, None);
        run("DO $$ DECLARE f text; BEGIN
                 FOR f IN SELECT fix FROM tenancy.check('h1k5') WHERE fix IS NOT NULL
                 LOOP EXECUTE f; END LOOP;
             END $$;");
        assert_eq!(failure(&insert.replace("'c1'", "'c2'")), None);
        run("RESET ROLE");
        assert_eq!(count("SELECT count(*) FROM h1k5.orders"), 2);
    }
    /// A SECURITY DEFINER function that calls a higher tier's function (set_tenant,
    /// sign_token, begin_support) and that an application role may execute lends that tier:
    /// plpgsql owned by a trusted role, an SQL-standard body, a string SQL body. One callable
    /// by trusted roles only is not reported.
    #[pg_test]
    fn security_definer_wrappers_that_lend_a_tier_are_reported() {
        tenants_and_app("h1k6");
        run("CREATE ROLE h1k6_trusted NOLOGIN; SELECT tenancy.grant_trusted('h1k6_trusted');
             CREATE TABLE h1k6.docs (tenant_id text, v text);
             SELECT tenancy.protect('h1k6.docs');
             INSERT INTO h1k6.docs VALUES ('h1k6_a', 'a'), ('h1k6_b', 'b');
             GRANT SELECT ON h1k6.docs TO h1k6_app;
             CREATE FUNCTION h1k6.switch_to(t text) RETURNS void LANGUAGE plpgsql SECURITY DEFINER
                 SET search_path = pg_catalog, pg_temp
             AS $$ BEGIN PERFORM tenancy.set_tenant(t); END $$;
             ALTER FUNCTION h1k6.switch_to(text) OWNER TO h1k6_trusted;
             CREATE FUNCTION h1k6.mint(t text) RETURNS text LANGUAGE sql SECURITY DEFINER
                 SET search_path = pg_catalog, pg_temp
             BEGIN ATOMIC SELECT tenancy.sign_token(pg_catalog.jsonb_build_object('tenant_id', t)); END;
             CREATE FUNCTION h1k6.peek(t text) RETURNS jsonb LANGUAGE sql SECURITY DEFINER
                 SET search_path = pg_catalog, pg_temp
             AS 'SELECT tenancy.begin_support(t, ''debugging'')';
             CREATE FUNCTION h1k6.switch_trusted(t text) RETURNS void LANGUAGE plpgsql SECURITY DEFINER
                 SET search_path = pg_catalog, pg_temp
             AS $$ BEGIN PERFORM tenancy.set_tenant(t); END $$;
             REVOKE EXECUTE ON FUNCTION h1k6.switch_trusted(text) FROM PUBLIC;
             GRANT EXECUTE ON FUNCTION h1k6.switch_trusted(text) TO h1k6_trusted;");
        // Tenant a's application role moves itself into tenant b.
        let other = || {
            let r = failure(
                "SELECT tenancy.set_tenant('h1k6_a'); SET LOCAL ROLE h1k6_app;
                 SELECT h1k6.switch_to('h1k6_b');
                 DO $$ BEGIN IF (SELECT count(*) FROM h1k6.docs WHERE v = 'b') <> 1 THEN
                     RAISE EXCEPTION USING ERRCODE = 'P0001', MESSAGE = 'no b rows'; END IF; END $$",
            );
            run("RESET ROLE");
            r
        };
        assert_eq!(other(), None, "the wrapper lends set_tenant()");
        let found = findings("h1k6");
        assert_eq!(
            objects(&found, "security_definer_lends_tier"),
            vec!["h1k6.mint(text)", "h1k6.peek(text)", "h1k6.switch_to(text)"],
            "{found:#?}"
        );
        run_fixes("h1k6", "security_definer_lends_tier");
        let e = other().unwrap_or_default();
        assert_failure(
            &e,
            "42501",
            "permission denied for function set_tenant",
            "switch_to",
        );
        assert!(findings("h1k6").is_empty(), "{:#?}", findings("h1k6"));
    }

    /// A policy that trusts a plain setting through a helper function is as forgeable as one
    /// that calls current_setting() itself: an SQL function, a plpgsql function, an
    /// SQL-standard body.
    #[pg_test]
    fn policies_reading_a_setting_through_a_function_are_forgeable() {
        tenants_and_app("h1k7");
        run(
            "CREATE FUNCTION h1k7.current_org() RETURNS text LANGUAGE sql STABLE
                 AS 'SELECT current_setting(''app.h1k7_org'', true)';
             CREATE FUNCTION h1k7.org_ok(o text) RETURNS boolean LANGUAGE plpgsql STABLE
                 AS $$ BEGIN RETURN o = current_setting('app.h1k7_org', true); END $$;
             CREATE FUNCTION h1k7.org_atomic() RETURNS text LANGUAGE sql STABLE
             BEGIN ATOMIC SELECT current_setting('app.h1k7_org', true); END;",
        );
        for (t, using) in [
            ("legacy1", "org = h1k7.current_org()"),
            ("legacy2", "h1k7.org_ok(org)"),
            ("legacy3", "org = h1k7.org_atomic()"),
        ] {
            run(&format!(
                "CREATE TABLE h1k7.{t} (org text, v text);
                 ALTER TABLE h1k7.{t} ENABLE ROW LEVEL SECURITY;
                 CREATE POLICY by_org ON h1k7.{t} USING ({using});
                 INSERT INTO h1k7.{t} VALUES ('a', 'mine'), ('b', 'theirs');
                 GRANT SELECT ON h1k7.{t} TO h1k7_app;"
            ));
        }
        let theirs = |t: &str| {
            let n = one::<i64>(&format!(
                "SET LOCAL ROLE h1k7_app; SET LOCAL app.h1k7_org = 'b';
                 SELECT count(*) FROM h1k7.{t} WHERE v = 'theirs'"
            ));
            run("RESET ROLE");
            n
        };
        for t in ["legacy1", "legacy2", "legacy3"] {
            assert_eq!(theirs(t), Some(1), "{t}: any role may SET the setting");
        }
        let found = findings("h1k7");
        assert_eq!(
            objects(&found, "forgeable_policy_context"),
            vec![
                "policy by_org on h1k7.legacy1",
                "policy by_org on h1k7.legacy2",
                "policy by_org on h1k7.legacy3"
            ],
            "{found:#?}"
        );
        run_fixes("h1k7", "forgeable_policy_context");
        for t in ["legacy1", "legacy2", "legacy3"] {
            assert_eq!(theirs(t), Some(0), "{t} after its fix");
        }
    }
    /// Foreign tables cannot have row level security: a foreign partition of a protected
    /// table, a foreign inheritance child, and a foreign table with a tenant column are
    /// reported, without an automatic fix (the detail says what to do); doing it clears them.
    #[pg_test]
    fn foreign_tables_holding_tenant_rows_are_reported() {
        tenants_and_app("h1k8");
        run("CREATE FOREIGN DATA WRAPPER h1k8_fdw;
             CREATE SERVER h1k8_srv FOREIGN DATA WRAPPER h1k8_fdw;
             CREATE TABLE h1k8.events (tenant_id text, v text) PARTITION BY LIST (tenant_id);
             CREATE TABLE h1k8.events_a PARTITION OF h1k8.events FOR VALUES IN ('h1k8_a');
             CREATE TABLE h1k8.notes (tenant_id text, v text);
             SELECT tenancy.protect('h1k8.events'), tenancy.protect('h1k8.notes');
             SET LOCAL tenancy.ddl_guard = off;
             CREATE FOREIGN TABLE h1k8.events_b PARTITION OF h1k8.events FOR VALUES IN ('h1k8_b')
                 SERVER h1k8_srv;
             CREATE FOREIGN TABLE h1k8.notes_archive () INHERITS (h1k8.notes) SERVER h1k8_srv;
             CREATE FOREIGN TABLE h1k8.remote_staff (tenant_id text, name text) SERVER h1k8_srv;
             SET LOCAL tenancy.ddl_guard = error;");
        let e =
            failure("ALTER TABLE h1k8.remote_staff ENABLE ROW LEVEL SECURITY").unwrap_or_default();
        assert!(!e.is_empty(), "a foreign table takes no row level security");
        let found = findings("h1k8");
        let mut got: Vec<(String, String, bool)> = found
            .iter()
            .map(|f| (f.rule.clone(), f.object.clone(), f.fix.is_none()))
            .collect();
        got.sort();
        assert_eq!(
            got,
            vec![
                ("unprotected_child".into(), "h1k8.events_b".into(), true),
                (
                    "unprotected_child".into(),
                    "h1k8.notes_archive".into(),
                    true
                ),
                (
                    "unprotected_tenant_table".into(),
                    "h1k8.remote_staff".into(),
                    true
                ),
            ],
            "{found:#?}"
        );
        assert!(found.iter().all(|f| f.severity == "critical"));
        run("ALTER TABLE h1k8.events DETACH PARTITION h1k8.events_b;
             DROP FOREIGN TABLE h1k8.events_b;
             ALTER TABLE h1k8.notes_archive NO INHERIT h1k8.notes;
             DROP FOREIGN TABLE h1k8.notes_archive, h1k8.remote_staff;");
        assert!(findings("h1k8").is_empty(), "{:#?}", findings("h1k8"));
    }
}
