//! `#[pg_test]`s of the min-N guarded aggregates and benchmark views. Same rules as `tests/mod.rs`:
//! each test runs in its own rolled-back transaction, in parallel with the others, as a
//! superuser; names are prefixed per test; what a user sees is asserted after
//! `SET LOCAL ROLE` to a plain role.

#[pgrx::pg_schema]
mod tests {
    use pgrx::prelude::*;

    use crate::tests::fixture::{
        assert_fails, assert_workers_ran, count, one, pay_table, plan_nodes, roles, run, Tier,
    };

    /// An app role `{p}_app` (grant_app), an admin `{p}_admin`, a trusted job `{p}_job`.
    fn app_admin_job(p: &str) {
        roles(
            p,
            &[
                ("app", Tier::App),
                ("admin", Tier::Admin),
                ("job", Tier::Trusted),
            ],
        );
    }

    fn text(sql: &str) -> Option<String> {
        one::<String>(sql)
    }

    fn yes(sql: &str) {
        assert_eq!(one::<bool>(sql), Some(true), "{sql}");
    }

    /// Groups of 4 and 5 people, one row each, read by the app role.
    #[pg_test]
    fn guard_groups_of_four_and_five() {
        app_admin_job("gd45");
        run(
            "CREATE TABLE tests.gd45_t (grp text, person text, pay numeric);
             INSERT INTO tests.gd45_t
             SELECT 'four', 'p' || i, 1000 + i FROM generate_series(1, 4) i
             UNION ALL SELECT 'five', 'p' || i, 1000 + i FROM generate_series(1, 5) i;
             GRANT SELECT ON tests.gd45_t TO gd45_app;
             SET LOCAL ROLE gd45_app",
        );
        let q = |agg: &str, grp: &str| {
            format!("SELECT ({agg})::text FROM tests.gd45_t WHERE grp = '{grp}'")
        };
        for agg in [
            "tenancy.guarded_avg(pay, person)",
            "tenancy.guarded_sum(pay, person)",
            "tenancy.guarded_count(person)",
        ] {
            assert_eq!(text(&q(agg, "four")), None, "{agg} over 4 people");
            assert!(text(&q(agg, "five")).is_some(), "{agg} over 5 people");
        }
        // The median of five is the third person's exact value, with two people on either
        // side: a percentile needs min_n people at or below it and at or above it (issue 13).
        let median = "tenancy.guarded_percentile(pay, 0.5, person)";
        assert_eq!(text(&q(median, "four")), None);
        assert_eq!(text(&q(median, "five")), None);
        assert_eq!(
            text(&q("tenancy.guard_status(person)", "four")).as_deref(),
            Some("too_few_contributors")
        );
        assert_eq!(
            text(&q("tenancy.guard_status(person)", "five")).as_deref(),
            Some("ok")
        );
        yes("SELECT tenancy.guarded_avg(pay, person) = avg(pay)
               AND tenancy.guarded_sum(pay, person) = sum(pay)
               AND tenancy.guarded_count(person) = count(person)
               FROM tests.gd45_t WHERE grp = 'five'");
        // One query, GROUP BY: only the group of five is shown.
        assert_eq!(
            text("SELECT string_agg(grp || '=' || coalesce(a::text, 'NULL'), ',' ORDER BY grp)
                    FROM (SELECT grp, tenancy.guarded_avg(pay, person) a FROM tests.gd45_t GROUP BY grp) s")
                .as_deref(),
            Some("five=1003.0000000000000000,four=NULL")
        );
    }

    /// One person with five rows is one contributor.
    #[pg_test]
    fn guard_one_person_five_rows() {
        app_admin_job("gd1p");
        run("CREATE TABLE tests.gd1p_t (person bigint, pay float8);
             INSERT INTO tests.gd1p_t SELECT 7, i FROM generate_series(1, 5) i;
             GRANT SELECT ON tests.gd1p_t TO gd1p_app;
             SET LOCAL ROLE gd1p_app");
        yes("SELECT tenancy.guarded_avg(pay, person) IS NULL
               AND tenancy.guarded_count(person) IS NULL
               AND tenancy.guard_status(person) = 'too_few_contributors'
               FROM tests.gd1p_t");
        // Four more people make five.
        run("RESET ROLE; INSERT INTO tests.gd1p_t VALUES (1, 10), (2, 10), (3, 10), (4, 10); SET LOCAL ROLE gd1p_app");
        yes("SELECT tenancy.guarded_avg(pay, person) = avg(pay)
               AND tenancy.guarded_count(person) = 9 FROM tests.gd1p_t");
    }

    /// NULL contributors are ignored entirely; a NULL value is skipped and its contributor
    /// counts only through a row with a value.
    #[pg_test]
    fn guard_null_contributors_and_values() {
        app_admin_job("gdnl");
        pay_table(
            "gdnl",
            "text",
            "VALUES ('a', 1), ('b', 2), ('c', 3), ('d', 4), (NULL, 100), (NULL, 200), ('e', NULL)",
        );
        run("SET LOCAL ROLE gdnl_app");
        // 4 people with a value (+ NULL contributors, + 'e' without a value): suppressed.
        yes("SELECT tenancy.guarded_avg(pay, person) IS NULL
               AND tenancy.guarded_sum(pay, person) IS NULL
               AND tenancy.guarded_percentile(pay, 0.5, person) IS NULL FROM tests.gdnl_t");
        // guarded_count has no value: 'e' counts there, NULL contributors still do not.
        yes("SELECT tenancy.guarded_count(person) = 5 AND tenancy.guard_status(person) = 'ok' FROM tests.gdnl_t");
        run("RESET ROLE; INSERT INTO tests.gdnl_t VALUES ('e', 5); SET LOCAL ROLE gdnl_app");
        // Now five; the NULL-contributor rows' values are not in the result, nor is the NULL.
        // (The median of five people is one person's value: blank, see guard_groups_of_four_and_five.)
        yes("SELECT tenancy.guarded_avg(pay, person) = 3
               AND tenancy.guarded_sum(pay, person) = 15
               AND tenancy.guarded_percentile(pay, 0.5, person) IS NULL FROM tests.gdnl_t");
    }

    /// Every contributor type and value type gives what the unguarded aggregate gives, to the
    /// last digit and with the same result type, and nothing for a group of four.
    #[pg_test]
    fn guard_every_type() {
        app_admin_job("gdty");
        run("CREATE TABLE tests.gdty_t (g int, c_text text, c_int8 bigint, c_int4 int, c_uuid uuid,
                                        v_int4 int, v_int8 bigint, v_num numeric, v_f8 float8);
             INSERT INTO tests.gdty_t
             SELECT g, 'p' || p, p, p, md5(p::text)::uuid,
                    (i * 37) % 1000 - 300, ((i * 37) % 1000 - 300) * 1000000000::bigint,
                    ((i * 37) % 1000 - 300) / 7.0, ((i * 37) % 1000 - 300) * 0.25
               FROM generate_series(1, 300) i, LATERAL (SELECT i % 3 AS g, (i / 3) % (4 + i % 3) AS p) x;
             GRANT SELECT ON tests.gdty_t TO gdty_app;
             SET LOCAL ROLE gdty_app");
        // Group 0 has 4 people, groups 1 and 2 have 5 and 6.
        for c in ["c_text", "c_int8", "c_int4", "c_uuid"] {
            for v in ["v_int4", "v_int8", "v_num", "v_f8"] {
                let cast = if v == "v_num" { "" } else { "::float8" };
                let same = format!(
                    "SELECT bool_and(ok) FROM (
                       SELECT g, CASE WHEN g = 0 THEN
                                   s IS NULL AND a IS NULL AND n IS NULL AND pc IS NULL AND st = 'too_few_contributors'
                                 ELSE s = s0 AND a = a0 AND n = n0 AND pc = pc0 AND st = 'ok'
                                      AND pg_typeof(s) = pg_typeof(s0) AND pg_typeof(a) = pg_typeof(a0) END AS ok
                         FROM (SELECT g, tenancy.guarded_sum({v}, {c}) s, sum({v}) s0,
                                      tenancy.guarded_avg({v}, {c}) a, avg({v}) a0,
                                      tenancy.guarded_count({c}) n, count({c}) n0,
                                      tenancy.guarded_percentile({v}, 0.3, {c}) pc,
                                      percentile_cont(0.3) WITHIN GROUP (ORDER BY {v}{cast}) pc0,
                                      tenancy.guard_status({c}) st
                                 FROM tests.gdty_t GROUP BY g) r) x"
                );
                assert_eq!(one::<bool>(&same), Some(true), "contributor {c}, value {v}");
            }
        }
    }

    /// Pooled: tenants, dominance (by contributors, and by magnitude for sums), the residual
    /// rule.
    #[pg_test]
    fn guard_pooled_rules() {
        app_admin_job("gdpl");
        run("CREATE TABLE tests.gdpl_t (cell text, tenant text, person int, pay numeric);
             GRANT SELECT ON tests.gdpl_t TO gdpl_app;
             -- 4 tenants of 3 people.
             INSERT INTO tests.gdpl_t SELECT 'four', 't' || t, p, 100 FROM generate_series(1, 4) t, generate_series(1, 3) p;
             -- 5 tenants, one with 10 people (10 of 18 = 56%).
             INSERT INTO tests.gdpl_t SELECT 'dom', 't' || t, p, 100 FROM generate_series(1, 5) t,
                 generate_series(1, CASE WHEN t = 1 THEN 10 ELSE 2 END) p;
             -- 5 balanced tenants of 2 people.
             INSERT INTO tests.gdpl_t SELECT 'bal', 't' || t, p, 100 + p FROM generate_series(1, 5) t, generate_series(1, 2) p;
             -- 5 tenants of 1 person: balanced, but any tenant that removes itself sees 4.
             INSERT INTO tests.gdpl_t SELECT 'res', 't' || t, 1, 100 FROM generate_series(1, 5) t;
             -- 10 people in one tenant against 4 tenants of one person with 100 rows each.
             INSERT INTO tests.gdpl_t SELECT 'rows', 'big', p, 100 FROM generate_series(1, 10) p;
             INSERT INTO tests.gdpl_t SELECT 'rows', 's' || t, 1, 100 FROM generate_series(1, 4) t, generate_series(1, 100) r;
             -- 6 balanced tenants of 2 people, one paid a thousand times more.
             INSERT INTO tests.gdpl_t SELECT 'mag', 't' || t, p, CASE WHEN t = 1 THEN 100000 ELSE 100 END
               FROM generate_series(1, 6) t, generate_series(1, 2) p;
             SET LOCAL ROLE gdpl_app");
        let status = |cell: &str| {
            text(&format!(
                "SELECT tenancy.guard_status(person, tenant) FROM tests.gdpl_t WHERE cell = '{cell}'"
            ))
            .unwrap()
        };
        assert_eq!(status("four"), "too_few_tenants");
        assert_eq!(status("dom"), "dominated");
        assert_eq!(status("bal"), "ok");
        assert_eq!(status("res"), "too_few_contributors");
        assert_eq!(status("rows"), "dominated");
        assert_eq!(status("mag"), "ok");
        let shown = |agg: &str, cell: &str| {
            one::<bool>(&format!(
                "SELECT ({agg}) IS NOT NULL FROM tests.gdpl_t WHERE cell = '{cell}'"
            ))
            .unwrap()
        };
        for agg in [
            "tenancy.guarded_avg(pay, person, tenant)",
            "tenancy.guarded_sum(pay, person, tenant)",
            "tenancy.guarded_count(person, tenant)",
            "tenancy.guarded_percentile(pay, 0.5, person, tenant)",
        ] {
            for cell in ["four", "dom", "res", "rows"] {
                assert!(!shown(agg, cell), "{agg} shown for {cell}");
            }
            // The median of 10 people has 5 on each side, not min_n = 5 beyond the largest
            // tenant's 2 (pooled percentiles, issue 13's second review).
            let expect = !agg.contains("percentile");
            assert_eq!(shown(agg, "bal"), expect, "{agg} for bal");
        }
        yes("SELECT tenancy.guarded_avg(pay, person, tenant) = avg(pay)
               AND tenancy.guarded_sum(pay, person, tenant) = sum(pay) FROM tests.gdpl_t WHERE cell = 'bal'");
        // By contributors the magnitudes cell is fine; its sum is dominated by tenant t1, and
        // so is its average (avg × count would give the sum back: issue 13).
        assert!(shown("tenancy.guarded_count(person, tenant)", "mag"));
        assert!(!shown("tenancy.guarded_avg(pay, person, tenant)", "mag"));
        assert!(!shown("tenancy.guarded_sum(pay, person, tenant)", "mag"));
        // The same person id in two tenants is two people.
        yes("SELECT tenancy.guarded_count(person, tenant) = 10 FROM tests.gdpl_t WHERE cell = 'bal'");
        // A NULL tenant's rows are ignored like NULL contributors.
        run("RESET ROLE; INSERT INTO tests.gdpl_t SELECT 'four', NULL, p, 1 FROM generate_series(1, 20) p; SET LOCAL ROLE gdpl_app");
        assert_eq!(status("four"), "too_few_tenants");
    }

    /// The thresholds are superuser settings: the app role cannot lower them in any way SET
    /// offers.
    #[pg_test]
    fn guard_app_cannot_lower_thresholds() {
        app_admin_job("gdset");
        pay_table(
            "gdset",
            "text",
            "SELECT 'p' || i, i FROM generate_series(1, 2) i",
        );
        run("SET LOCAL ROLE gdset_app");
        assert_fails("SET tenancy.min_n = 1", "42501", "tenancy.min_n");
        assert_fails("SET LOCAL tenancy.min_n = 1", "42501", "tenancy.min_n");
        assert_fails(
            "SELECT set_config('tenancy.min_n', '1', true)",
            "42501",
            "tenancy.min_n",
        );
        assert_fails(
            "SET tenancy.min_tenants = 1",
            "42501",
            "tenancy.min_tenants",
        );
        assert_fails(
            "SET tenancy.max_tenant_share = 1",
            "42501",
            "tenancy.max_tenant_share",
        );
        assert_fails(
            "SET tenancy.guard_tenant_limit = 16",
            "42501",
            "tenancy.guard_tenant_limit",
        );
        assert_fails(
            "ALTER ROLE gdset_app SET tenancy.min_n = 1",
            "42501",
            "permission denied to set parameter \"tenancy.min_n\"",
        );
        yes("SELECT current_setting('tenancy.min_n') = '5'");
        yes("SELECT tenancy.guarded_avg(pay, person) IS NULL FROM tests.gdset_t");
        // A superuser may lower it (for this transaction).
        run("RESET ROLE; SET LOCAL tenancy.min_n = 2; SET LOCAL ROLE gdset_app");
        yes("SELECT tenancy.guarded_avg(pay, person) = 1.5 FROM tests.gdset_t");
    }

    /// A tenant's settings raise min_n for queries under its context, never lower it.
    #[pg_test]
    fn guard_tenant_settings_raise_only() {
        app_admin_job("gdts");
        run("SELECT tenancy.create_tenant('gdts_strict', settings => '{\"min_n\": 10}');
             SELECT tenancy.create_tenant('gdts_lax', settings => '{\"min_n\": 2}');
             SELECT tenancy.create_tenant('gdts_plain');
             CREATE TABLE tests.gdts_t (grp int, person int, pay numeric);
             INSERT INTO tests.gdts_t SELECT n, p, p FROM generate_series(4, 10) n, generate_series(1, n) p;
             GRANT SELECT ON tests.gdts_t TO gdts_app");
        let smallest_shown = |tenant: &str| {
            run(&format!(
                "RESET ROLE; SELECT tenancy.set_tenant('{tenant}'); SET LOCAL ROLE gdts_app"
            ));
            one::<i32>(
                "SELECT min(grp) FROM (SELECT grp, tenancy.guarded_avg(pay, person) a
                                          FROM tests.gdts_t GROUP BY grp) s WHERE a IS NOT NULL",
            )
        };
        assert_eq!(smallest_shown("gdts_plain"), Some(5));
        assert_eq!(smallest_shown("gdts_strict"), Some(10));
        assert_eq!(smallest_shown("gdts_lax"), Some(5));
        // Raising the setting takes effect from the next statement (the registry cache is
        // invalidated by the change).
        run("RESET ROLE; UPDATE tenancy.tenants SET settings = '{\"min_n\": 8}' WHERE id = 'gdts_lax'");
        assert_eq!(smallest_shown("gdts_lax"), Some(8));
        // No context: the setting alone.
        run("RESET ROLE; SELECT tenancy.clear_context(); SET LOCAL ROLE gdts_app");
        assert_eq!(
            one::<i32>("SELECT min(grp) FROM (SELECT grp, tenancy.guarded_count(person) a FROM tests.gdts_t GROUP BY grp) s WHERE a IS NOT NULL"),
            Some(5)
        );
    }

    /// Sliding window frames would difference groups: refused.
    #[pg_test]
    fn guard_refuses_window_use() {
        app_admin_job("gdwin");
        pay_table("gdwin", "int", "SELECT p, p FROM generate_series(1, 20) p");
        run("SET LOCAL ROLE gdwin_app");
        for q in [
            "SELECT tenancy.guarded_avg(pay, person) OVER (ORDER BY person ROWS 5 PRECEDING) FROM tests.gdwin_t",
            "SELECT tenancy.guarded_sum(pay, person) OVER () FROM tests.gdwin_t",
            "SELECT tenancy.guarded_count(person) OVER (ORDER BY person) FROM tests.gdwin_t",
            "SELECT tenancy.guard_status(person) OVER () FROM tests.gdwin_t",
            "SELECT tenancy.guarded_percentile(pay, 0.5, person) OVER () FROM tests.gdwin_t",
        ] {
            // percentile's final function sorts in place, so PostgreSQL itself refuses it.
            assert_fails(q, "0A000", "window function");
        }
    }

    /// Bad percentile fractions are refused.
    #[pg_test]
    fn guard_percentile_fraction_checked() {
        app_admin_job("gdfr");
        run("CREATE TABLE tests.gdfr_t (person int, pay numeric);
             INSERT INTO tests.gdfr_t SELECT p, p FROM generate_series(1, 20) p");
        assert_fails(
            "SELECT tenancy.guarded_percentile(pay, 1.5, person) FROM tests.gdfr_t",
            "22023",
            "between 0 and 1",
        );
        assert_fails(
            "SELECT tenancy.guarded_percentile(pay, person / 100.0, person) FROM tests.gdfr_t",
            "22023",
            "changes within a group",
        );
    }

    /// Who may use what: the aggregates are for app roles and admins, not PUBLIC; the support
    /// functions for nobody.
    #[pg_test]
    fn guard_privileges() {
        app_admin_job("gdpriv");
        run("CREATE ROLE gdpriv_nobody NOLOGIN");
        yes("SELECT has_function_privilege('gdpriv_app', 'tenancy.guarded_avg(numeric, text)', 'EXECUTE')
               AND has_function_privilege('gdpriv_admin', 'tenancy.guarded_avg(numeric, text, text)', 'EXECUTE')
               AND NOT has_function_privilege('gdpriv_nobody', 'tenancy.guarded_avg(numeric, text)', 'EXECUTE')
               AND NOT has_function_privilege('gdpriv_app', 'tenancy._guard_combine(internal, internal)', 'EXECUTE')
               AND NOT has_function_privilege('gdpriv_app', 'tenancy.create_benchmark_view(text, regclass, name[], text[], name, boolean)', 'EXECUTE')");
        assert_eq!(
            count("SELECT count(*) FROM pg_proc p, aclexplode(p.proacl) a
                    WHERE p.pronamespace = 'tenancy'::regnamespace AND p.proname LIKE '\\_guard\\_%' AND a.grantee = 0"),
            0
        );
    }

    /// A pooled benchmark over a protected table: app roles read guarded cells of every
    /// tenant, never raw rows, and cannot shrink a group with WHERE.
    #[pg_test]
    fn guard_benchmark_view() {
        app_admin_job("gdbv");
        run("CREATE TABLE tests.gdbv_pay (tenant_id text NOT NULL, person int, role text, pay numeric);
             SELECT tenancy.protect('tests.gdbv_pay');
             GRANT SELECT ON tests.gdbv_pay TO gdbv_app, gdbv_admin;
             GRANT CREATE ON SCHEMA tests TO gdbv_admin");
        for t in 1..=6 {
            run(&format!("SELECT tenancy.create_tenant('gdbv_t{t}')"));
        }
        // Engineers: 6 tenants of 3 people. Designers: 5 tenants of 1 person (residual rule).
        run("INSERT INTO tests.gdbv_pay
             SELECT 'gdbv_t' || t, p, 'eng', 1000 + 10 * t + p FROM generate_series(1, 6) t, generate_series(1, 3) p
             UNION ALL
             SELECT 'gdbv_t' || t, 1, 'design', 500 FROM generate_series(1, 5) t");
        run("SET LOCAL ROLE gdbv_admin");
        assert_eq!(
            text("SELECT tenancy.create_benchmark_view('tests.gdbv_bench', 'tests.gdbv_pay', ARRAY['role'],
                      ARRAY['count', 'avg(pay)', 'sum(pay)', 'percentile(pay, 0.5)'], 'person')::text")
                .as_deref(),
            Some("tests.gdbv_bench")
        );
        assert_fails(
            "SELECT tenancy.create_benchmark_view('tests.gdbv_bad', 'tests.gdbv_pay', ARRAY['tenant_id'], ARRAY['count'], 'person')",
            "22023",
            "tenant column",
        );
        assert_fails(
            "SELECT tenancy.create_benchmark_view('tests.gdbv_bad', 'tests.gdbv_pay', ARRAY['role'], ARRAY['max(pay)'], 'person')",
            "22023",
            "not understood",
        );
        run("GRANT SELECT ON tests.gdbv_bench TO gdbv_app; RESET ROLE");
        // The registry has it, and the owner is the extension's owner.
        yes("SELECT EXISTS (SELECT 1 FROM tenancy.benchmark_views WHERE view_name = 'tests.gdbv_bench' AND created_by = 'gdbv_admin')
               AND (SELECT relowner FROM pg_class WHERE oid = 'tests.gdbv_bench'::regclass)
                   = (SELECT extowner FROM pg_extension WHERE extname = 'pg_tenancy')");

        run("SELECT tenancy.set_tenant('gdbv_t1'); SET LOCAL ROLE gdbv_app");
        // Raw rows: only its own tenant's.
        assert_eq!(count("SELECT count(*) FROM tests.gdbv_pay"), 4);
        // The view: the engineers' cell over all six tenants; the designers' cell is hidden
        // (removing any one tenant would leave four people).
        assert_eq!(count("SELECT count(*) FROM tests.gdbv_bench"), 1);
        assert_eq!(
            text("SELECT b::text FROM tests.gdbv_bench b").as_deref(),
            Some("(eng,18,1037.0000000000000000,18666,1037,ok)")
        );
        // A WHERE on the view filters whole cells after aggregation; hidden columns cannot be
        // named at all.
        yes("SELECT count = 18 FROM tests.gdbv_bench WHERE role = 'eng'");
        assert_fails(
            "SELECT * FROM tests.gdbv_bench WHERE tenant_id <> 'gdbv_t2'",
            "42703",
            "column \"tenant_id\" does not exist",
        );
        assert_fails(
            "SELECT * FROM tests.gdbv_bench WHERE pay > 5000",
            "42703",
            "column \"pay\" does not exist",
        );
        // A function of the caller's in the WHERE clause (STABLE, so the planner would push it
        // below the aggregation onto the rows if the view were not a security barrier; not
        // leakproof: it records what it is shown) runs on the view's output rows only.
        run("CREATE FUNCTION pg_temp.gdbv_peek(v text) RETURNS boolean LANGUAGE plpgsql STABLE AS
             $$ BEGIN
                  PERFORM set_config('gdbv.seen', coalesce(current_setting('gdbv.seen', true), '') || v || ',', true);
                  RETURN true;
                END $$");
        assert_eq!(
            count("SELECT count(*) FROM tests.gdbv_bench WHERE pg_temp.gdbv_peek(role)"),
            1
        );
        assert_eq!(
            text("SELECT current_setting('gdbv.seen')").as_deref(),
            Some("eng,")
        );
        // Subtracting its own contribution leaves at least four other tenants and min_n
        // people: 18 - 3 = 15 people in 5 tenants.
        yes("SELECT b.sum_pay - o.own = 18666 - (1011 + 1012 + 1013)
               FROM tests.gdbv_bench b, (SELECT sum(pay) own FROM tests.gdbv_pay WHERE role = 'eng') o");
        // The app role cannot drop, alter or create benchmark views.
        assert_fails(
            "SELECT tenancy.drop_benchmark_view('tests.gdbv_bench')",
            "42501",
            "permission denied for function drop_benchmark_view",
        );
        assert_fails(
            "DROP VIEW tests.gdbv_bench",
            "42501",
            "must be owner of view gdbv_bench",
        );
        assert_fails(
            "SELECT tenancy.create_benchmark_view('tests.gdbv_x', 'tests.gdbv_pay', ARRAY['role'], ARRAY['count'], 'person')",
            "42501",
            "permission denied for function create_benchmark_view",
        );

        // The checker accepts the intact view and reports an altered one.
        run("RESET ROLE");
        assert_eq!(
            count("SELECT count(*) FROM tenancy.check('tests') WHERE object LIKE '%gdbv%'"),
            0
        );
        run("CREATE OR REPLACE VIEW tests.gdbv_bench WITH (security_barrier = true) AS
             SELECT role, count(*)::bigint AS count, avg(pay) AS avg_pay, sum(pay) AS sum_pay,
                    percentile_cont(0.5) WITHIN GROUP (ORDER BY pay) AS p50_pay, 'ok'::text AS status
               FROM tests.gdbv_pay GROUP BY role");
        assert_eq!(
            count("SELECT count(*) FROM tenancy.check('tests') WHERE rule = 'benchmark_view_changed' AND object = 'tests.gdbv_bench'"),
            1
        );
        // drop_benchmark_view is the way out, for an admin.
        run("SET LOCAL ROLE gdbv_admin; SELECT tenancy.drop_benchmark_view('tests.gdbv_bench'); RESET ROLE");
        yes("SELECT to_regclass('tests.gdbv_bench') IS NULL
               AND NOT EXISTS (SELECT 1 FROM tenancy.benchmark_views WHERE view_name = 'tests.gdbv_bench')");
    }

    /// The admin needs to be able to read the columns it pools.
    #[pg_test]
    fn guard_benchmark_view_needs_column_rights() {
        app_admin_job("gdbr");
        run("CREATE TABLE tests.gdbr_pay (tenant_id text NOT NULL, person int, role text, pay numeric);
             SELECT tenancy.protect('tests.gdbr_pay');
             GRANT SELECT (tenant_id, person, role) ON tests.gdbr_pay TO gdbr_admin;
             GRANT CREATE ON SCHEMA tests TO gdbr_admin;
             SET LOCAL ROLE gdbr_admin");
        assert_fails(
            "SELECT tenancy.create_benchmark_view('tests.gdbr_v', 'tests.gdbr_pay', ARRAY['role'], ARRAY['avg(pay)'], 'person')",
            "42501",
            "permission denied for column pay of tests.gdbr_pay",
        );
        assert_eq!(
            text("SELECT tenancy.create_benchmark_view('tests.gdbr_v', 'tests.gdbr_pay', ARRAY['role'], ARRAY['count'], 'person')::text").as_deref(),
            Some("tests.gdbr_v")
        );
        run("RESET ROLE");
        yes("SELECT to_regclass('tests.gdbr_v') IS NOT NULL");
    }

    /// Forced parallel plans give exactly the serial answers (a smaller run of what
    /// tests/pg_regress/sql/guard_parallel.sql does on 1M rows).
    #[pg_test]
    fn guard_parallel_equals_serial() {
        run("CREATE TABLE tests.gdpar_t AS
             SELECT i % 500 AS g, 'p' || ((i / 500) % (i % 500 % 8 + 1)) AS person,
                    't' || CASE WHEN (i / 500) % 3 = 0 THEN 0 ELSE (i / 500) % (i % 500 % 7 + 1) END AS tenant,
                    (i % 1000) - 300 AS v_int, ((i % 1000) - 300) * 0.01 AS v_num,
                    ((i % 1000) - 300) * 0.25::float8 AS v_f8
               FROM generate_series(1, 100000) i;
             ANALYZE tests.gdpar_t");
        let q = "SELECT g, tenancy.guarded_sum(v_num, person) a, tenancy.guarded_avg(v_f8, person) b,
                        tenancy.guarded_percentile(v_int, 0.25, person) c, tenancy.guarded_count(person) d,
                        tenancy.guarded_avg(v_num, person, tenant) e, tenancy.guarded_sum(v_int, person, tenant) f,
                        tenancy.guard_status(person, tenant) s
                   FROM tests.gdpar_t GROUP BY g";
        run(&format!(
            "SET LOCAL max_parallel_workers_per_gather = 0;
             CREATE TABLE tests.gdpar_serial AS {q};
             SET LOCAL max_parallel_workers_per_gather = 2; SET LOCAL parallel_setup_cost = 0;
             SET LOCAL parallel_tuple_cost = 0; SET LOCAL min_parallel_table_scan_size = 0;
             SET LOCAL parallel_leader_participation = off"
        ));
        // The parallel answers must come from workers: partial states built in workers and
        // combined in the leader (the leader takes no share of the rows). A plan that asks for
        // workers and gets none would compare the serial code with itself.
        let plan = assert_workers_ran(&format!("CREATE TABLE tests.gdpar_parallel AS {q}"));
        let mut nodes = Vec::new();
        plan_nodes(&plan[0]["Plan"], &mut nodes);
        assert!(
            nodes
                .iter()
                .any(|n| n.get("Partial Mode").and_then(|m| m.as_str()) == Some("Partial")),
            "no partial aggregation: {plan}"
        );
        assert_eq!(
            count(
                "SELECT count(*) FROM ((TABLE tests.gdpar_serial EXCEPT TABLE tests.gdpar_parallel)
                    UNION ALL (TABLE tests.gdpar_parallel EXCEPT TABLE tests.gdpar_serial)) d"
            ),
            0
        );
        assert_eq!(count("SELECT count(*) FROM tests.gdpar_parallel"), 500);
        // Every outcome occurs, so the comparison covers shown and suppressed cells.
        assert_eq!(count("SELECT count(DISTINCT s) FROM tests.gdpar_serial"), 4);
    }

    #[pg_test]
    fn guard_benchmark_view_in_a_quoted_schema_called_directly_is_intact() {
        app_admin_job("gdq");
        run(r#"CREATE SCHEMA "GdQ Bench";
             GRANT USAGE, CREATE ON SCHEMA "GdQ Bench" TO gdq_admin;
             CREATE TABLE "GdQ Bench".pay (tenant_id text NOT NULL, person int, role text, pay numeric);
             SELECT tenancy.protect('"GdQ Bench".pay');
             GRANT SELECT ON "GdQ Bench".pay TO gdq_admin;"#);
        run("SET LOCAL ROLE gdq_admin");
        // A schema name that needs quoting (the view lands in the source's schema).
        run("SELECT tenancy.create_benchmark_view('bench', '\"GdQ Bench\".pay', ARRAY['role'], ARRAY['count'], 'person')");
        // Called directly, under a search_path that contains the schema, the registered
        // definition must still match what check() prints.
        run(r#"SET LOCAL search_path = "GdQ Bench", public"#);
        run(
            r#"SELECT tenancy._create_benchmark_view('"GdQ Bench".bench2', '"GdQ Bench".pay'::regclass::oid,
                   ARRAY['role'], ARRAY['count'], 'person', false)"#,
        );
        run("RESET ROLE");
        run("RESET search_path");
        assert_eq!(
            count(
                "SELECT count(*) FROM tenancy.check('GdQ Bench')
                  WHERE rule IN ('benchmark_view_changed', 'view_bypasses_rls')"
            ),
            0
        );
    }
}
