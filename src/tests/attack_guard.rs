//! Attack class 6 of issue 13: pooled results that disclose what they suppress. Each test is
//! the attack of a reader (an app role reading a benchmark view, an admin running the pooled
//! aggregates) through SQL: rebuilding a suppressed sum from the average and the count,
//! differencing two groupings of the same rows, and reading one person's value through an
//! extreme percentile. Same rules as `tests/mod.rs`: rolled back, parallel, names prefixed per test.

#[pgrx::pg_schema]
mod tests {
    use pgrx::prelude::*;

    use crate::tests::fixture::{assert_fails, one, pay_table, roles, run, Tier};

    fn text(sql: &str) -> Option<String> {
        one::<String>(sql)
    }

    fn yes(sql: &str) {
        assert_eq!(one::<bool>(sql), Some(true), "{sql}");
    }

    /// `{p}_app`, `{p}_admin` (with CREATE on tests), a protected `tests.{p}_pay` of six tenants
    /// (and `tests.{p}_flat`, an unprotected copy the admin reads)
    /// readable by both, three people per tenant in each role (head counts balanced). In 'eng'
    /// tenant 1's three earn a thousand times more (pay dominated by magnitude, bonus even);
    /// in 'ops' pay is even and tenant 1 takes every bonus (bonus dominated).
    fn setup(p: &str) {
        roles(p, &[("app", Tier::App), ("admin", Tier::Admin)]);
        run(&format!(
            "GRANT CREATE ON SCHEMA tests TO {p}_admin;
             CREATE TABLE tests.{p}_pay (tenant_id text NOT NULL, person int, role text,
                                         pay numeric, bonus numeric);
             SELECT tenancy.protect('tests.{p}_pay');
             GRANT SELECT ON tests.{p}_pay TO {p}_app, {p}_admin;
             SELECT tenancy.create_tenant('{p}_t' || t) FROM generate_series(1, 6) t;
             INSERT INTO tests.{p}_pay
             SELECT '{p}_t' || t, p, 'eng',
                    CASE WHEN t = 1 THEN 1000000 + p ELSE 1000 + 10 * t + p END,
                    100
               FROM generate_series(1, 6) t, generate_series(1, 3) p
             UNION ALL
             SELECT '{p}_t' || t, p, 'ops', 2000 + 10 * t + p, CASE WHEN t = 1 THEN 50000 ELSE 0 END
               FROM generate_series(1, 6) t, generate_series(1, 3) p;
             -- The same rows outside row level security, for the pooled aggregates called
             -- directly by the admin.
             CREATE TABLE tests.{p}_flat AS SELECT * FROM tests.{p}_pay;
             GRANT SELECT ON tests.{p}_flat TO {p}_admin"
        ));
    }

    /// Product of average and count, through the pooled aggregates themselves: an average is
    /// its sum over its count, so it is suppressed whenever the sum is dominated. Three forms:
    /// avg × count, avg × guarded_count of the same rows, and the float8 average.
    #[pg_test]
    fn attack_guard_average_times_count_of_a_dominated_sum() {
        setup("agpc");
        run("SET LOCAL ROLE agpc_admin");
        yes("SELECT tenancy.guarded_sum(pay, person, tenant_id) IS NULL
                AND tenancy.guard_status(person, tenant_id) = 'ok'
                AND tenancy.guarded_count(person, tenant_id) = 18
               FROM tests.agpc_flat WHERE role = 'eng'");
        // Before the fix the average was shown: avg × 18 = the hidden sum.
        yes("SELECT tenancy.guarded_avg(pay, person, tenant_id) IS NULL
                AND tenancy.guarded_avg(pay::float8, person, tenant_id) IS NULL
                AND tenancy.guarded_avg(pay::bigint, person, tenant_id) IS NULL
               FROM tests.agpc_flat WHERE role = 'eng'");
        // Balanced magnitudes: all shown, and avg × count is the sum.
        yes("SELECT tenancy.guarded_avg(pay, person, tenant_id) * tenancy.guarded_count(person, tenant_id)
                    = tenancy.guarded_sum(pay, person, tenant_id)
               FROM tests.agpc_flat WHERE role = 'ops'");
    }

    /// The same attack on a benchmark view: one suppressed measure blanks every measure of its
    /// cell, also measures over other columns of the same rows, and the status says why.
    #[pg_test]
    fn attack_guard_view_cell_suppressed_across_measures() {
        setup("agvc");
        run("SET LOCAL ROLE agvc_admin;
             SELECT tenancy.create_benchmark_view('tests.agvc_a', 'tests.agvc_pay', ARRAY['role'],
                      ARRAY['count', 'avg(pay)', 'sum(pay)'], 'person', include_suppressed => true);
             SELECT tenancy.create_benchmark_view('tests.agvc_b', 'tests.agvc_pay', ARRAY['role'],
                      ARRAY['count', 'avg(pay)', 'sum(bonus)'], 'person', include_suppressed => true);
             SELECT tenancy.create_benchmark_view('tests.agvc_c', 'tests.agvc_pay', ARRAY['role'],
                      ARRAY['sum(bonus)', 'count'], 'person');
             GRANT SELECT ON tests.agvc_a, tests.agvc_b, tests.agvc_c TO agvc_app;
             RESET ROLE;
             SELECT tenancy.set_tenant('agvc_t2');
             SET LOCAL ROLE agvc_app");
        // Form 1: the sum is dominated; the average and the count of that cell are blank too.
        assert_eq!(
            text("SELECT v::text FROM tests.agvc_a v WHERE role = 'eng'").as_deref(),
            Some("(eng,,,,dominated)")
        );
        // Form 2: in 'ops' only the bonus sum is dominated; the count and the (undominated)
        // average pay of the same rows go with it (before the fix they were shown with
        // status 'ok' beside a blank bonus).
        assert_eq!(
            text("SELECT v::text FROM tests.agvc_b v WHERE role = 'ops'").as_deref(),
            Some("(ops,,,,dominated)")
        );
        assert_eq!(
            text("SELECT v::text FROM tests.agvc_b v WHERE role = 'eng'").as_deref(),
            Some("(eng,,,,dominated)")
        );
        // Form 3: without include_suppressed the cell is not there at all.
        assert_eq!(
            text("SELECT string_agg(role, ',' ORDER BY role) FROM tests.agvc_c").as_deref(),
            Some("eng")
        );
        // Cells with nothing suppressed are whole.
        yes(
            "SELECT count = 18 AND avg_pay * count = sum_pay AND status = 'ok'
               FROM tests.agvc_a WHERE role = 'ops'",
        );
    }

    /// Difference of totals: a second grouping of the same rows (coarser, finer, crossed, the
    /// grand total, or the same grouping over a partition of the table) would let a hidden
    /// cell be computed from the other view's totals; refused. The same grouping is fine.
    #[pg_test]
    fn attack_guard_second_grouping_refused() {
        setup("aggr");
        run("ALTER TABLE tests.aggr_pay ADD COLUMN level text;
             GRANT SELECT ON tests.aggr_pay TO aggr_admin;
             SET LOCAL ROLE aggr_admin;
             SELECT tenancy.create_benchmark_view('tests.aggr_fine', 'tests.aggr_pay',
                      ARRAY['role', 'level'], ARRAY['count', 'avg(pay)'], 'person')");
        for (name, groups) in [
            ("coarse", "ARRAY['role']"),
            ("total", "ARRAY[]::name[]"),
            ("crossed", "ARRAY['level']"),
            ("finer", "ARRAY['role', 'level', 'person']"),
        ] {
            let f = assert_fails(
                &format!(
                    "SELECT tenancy.create_benchmark_view('tests.aggr_{name}', 'tests.aggr_pay', {groups},
                              ARRAY['sum(pay)'], 'person')"
                ),
                "0A000",
                "another grouping",
            );
            assert!(f.contains("tests.aggr_fine"), "{f}");
        }
        // Same columns in another order, other measures: the same cells.
        run(
            "SELECT tenancy.create_benchmark_view('tests.aggr_same', 'tests.aggr_pay',
                      ARRAY['level', 'role'], ARRAY['sum(bonus)'], 'person')",
        );
        // A partition and its parent pool the same people.
        run("RESET ROLE;
             CREATE TABLE tests.aggr_part (tenant_id text NOT NULL, person int, role text, pay numeric)
               PARTITION BY LIST (role);
             CREATE TABLE tests.aggr_part_eng PARTITION OF tests.aggr_part FOR VALUES IN ('eng');
             SELECT tenancy.protect('tests.aggr_part');
             GRANT SELECT ON tests.aggr_part, tests.aggr_part_eng TO aggr_admin;
             SET LOCAL ROLE aggr_admin;
             SELECT tenancy.create_benchmark_view('tests.aggr_parent', 'tests.aggr_part',
                      ARRAY['role'], ARRAY['count'], 'person')");
        assert_fails(
            "SELECT tenancy.create_benchmark_view('tests.aggr_child', 'tests.aggr_part_eng',
                      ARRAY['role'], ARRAY['count'], 'person')",
            "0A000",
            "tests.aggr_parent",
        );
        // Dropping the other views frees the table for another grouping.
        run("SELECT tenancy.drop_benchmark_view('tests.aggr_fine');
             SELECT tenancy.drop_benchmark_view('tests.aggr_same');
             SELECT tenancy.create_benchmark_view('tests.aggr_coarse', 'tests.aggr_pay',
                      ARRAY['role'], ARRAY['count'], 'person')");
    }

    /// Extreme and near-extreme percentiles return one person's value; they are shown only with
    /// min_n people at or below and at or above the result. Plain and pooled, exact ends, near
    /// ends, one person's many rows at the top, and in a benchmark view (where only the
    /// percentile itself is blank: nothing else gives back a maximum).
    #[pg_test]
    fn attack_guard_extreme_percentiles() {
        setup("agxp");
        pay_table(
            "agxp",
            "int",
            "SELECT p, 1000 + p FROM generate_series(1, 20) p",
        );
        run("SET LOCAL ROLE agxp_app");
        for f in ["0", "1", "0.01", "0.99", "0.9", "0.1"] {
            assert_eq!(
                text(&format!(
                    "SELECT tenancy.guarded_percentile(pay, {f}, person)::text FROM tests.agxp_t"
                )),
                None,
                "fraction {f} over 20 people"
            );
        }
        // 0.75 lies between the 15th and 16th of 20: five people at or above.
        yes("SELECT tenancy.guarded_percentile(pay, 0.75, person) = percentile_cont(0.75) WITHIN GROUP (ORDER BY pay)
               AND tenancy.guarded_percentile(pay, 0.5, person) = 1010.5 FROM tests.agxp_t");
        // The top earner with a hundred rows is still one person at the top.
        run(
            "RESET ROLE; INSERT INTO tests.agxp_t SELECT 20, 1020 FROM generate_series(1, 100);
             SET LOCAL ROLE agxp_app",
        );
        yes("SELECT tenancy.guarded_percentile(pay, 0.9, person) IS NULL FROM tests.agxp_t");
        // Pooled, as the admin: the maximum of 36 people across six tenants.
        run("RESET ROLE; SET LOCAL ROLE agxp_admin");
        yes(
            "SELECT tenancy.guarded_percentile(pay, 1, person, tenant_id) IS NULL
                AND tenancy.guarded_percentile(pay, 0.0, person, tenant_id) IS NULL
                AND tenancy.guarded_percentile(pay, 0.5, person, tenant_id) IS NOT NULL
               FROM tests.agxp_flat WHERE role = 'ops'",
        );
        run(
            "SELECT tenancy.create_benchmark_view('tests.agxp_v', 'tests.agxp_pay', ARRAY['role'],
                      ARRAY['count', 'percentile(pay, 1)', 'percentile(pay, 0.5)'], 'person')",
        );
        assert_eq!(
            text("SELECT v::text FROM tests.agxp_v v WHERE role = 'ops'").as_deref(),
            Some("(ops,18,,2037,ok)")
        );
    }

    /// A tenant cannot be the crowd itself: five planted values above everyone (under the
    /// share cap, past the residual rule) used to make a pooled p90 appear, and interpolating
    /// it against the known planted value gave back another tenant's exact maximum. Each side
    /// now needs min_n people beyond the largest tenant's. Also below (the minimum) and in the
    /// middle of a small crowd.
    #[pg_test]
    fn attack_guard_planted_crowd_for_a_pooled_percentile() {
        setup("agpc");
        run(
            "CREATE TABLE tests.agpc_t (tenant_id text, person int, pay numeric);
             INSERT INTO tests.agpc_t SELECT 'v' || t, t * 100 + p, 1000 + t * 10 + p
               FROM generate_series(1, 5) t, generate_series(1, 8) p;
             UPDATE tests.agpc_t SET pay = 123457 WHERE person = 308;",
        );
        let p = |f: &str| {
            format!(
                "SELECT tenancy.guarded_percentile(pay, {f}, person, tenant_id) IS NULL FROM tests.agpc_t"
            )
        };
        yes(&p("0.9"));
        // The attacker (tenant 'x') plants five people at a known value above everyone ...
        run("INSERT INTO tests.agpc_t SELECT 'x', 9000 + i, 1000000 FROM generate_series(1, 5) i");
        yes(&p("0.9"));
        yes(&p("0.85"));
        // ... or below everyone, for the minimum.
        run("DELETE FROM tests.agpc_t WHERE tenant_id = 'x';
             INSERT INTO tests.agpc_t SELECT 'x', 9000 + i, 0 FROM generate_series(1, 5) i");
        yes(&p("0.1"));
        yes(&p("0.15"));
        // A crowd on both sides beyond any one tenant still shows the median.
        yes("SELECT tenancy.guarded_percentile(pay, 0.5, person, tenant_id) IS NOT NULL FROM tests.agpc_t");
    }

    /// A benchmark view cannot live in a temporary or system schema: in pg_temp_N it would
    /// vanish with the session and leave a registry row whose name later resolves to another
    /// backend's object (found by the second tier review).
    #[pg_test]
    fn attack_guard_benchmark_view_in_a_temporary_schema_refused() {
        setup("agtv");
        run("SET LOCAL ROLE agtv_admin; CREATE TEMP TABLE agtv_x (i int)");
        let temp = text("SELECT nspname::text FROM pg_namespace WHERE oid = pg_my_temp_schema()")
            .expect("a temporary schema");
        for name in [
            format!("{temp}.bv"),
            "pg_temp.bv".into(),
            "pg_catalog.bv".into(),
        ] {
            assert_fails(
                &format!(
                    "SELECT tenancy.create_benchmark_view('{name}', 'tests.agtv_pay', ARRAY['role'], ARRAY['count'], 'person')"
                ),
                "0A000",
                "cannot be created in schema",
            );
        }
        yes("SELECT count(*) = 0 FROM tenancy.benchmark_views WHERE view_name LIKE '%.bv'");
    }

    /// Plain (not pooled) forms have no dominance rule (documented); what they show is
    /// consistent: when the sum is blank, so is the average of the same rows (a count that
    /// includes a person without a value does not rebuild it), and over exactly min_n people
    /// the median — the middle person's exact value — is blank while the sum and average show.
    #[pg_test]
    fn attack_guard_plain_forms_agree() {
        setup("agpl");
        pay_table(
            "agpl",
            "int",
            "VALUES (1, 10), (2, 20), (3, 30), (4, 40), (5, NULL)",
        );
        run("SET LOCAL ROLE agpl_app");
        yes("SELECT tenancy.guarded_count(person) = 5
                AND tenancy.guarded_sum(pay, person) IS NULL
                AND tenancy.guarded_avg(pay, person) IS NULL
                AND tenancy.guarded_percentile(pay, 0.5, person) IS NULL
               FROM tests.agpl_t");
        run("RESET ROLE; UPDATE tests.agpl_t SET pay = 50 WHERE person = 5; SET LOCAL ROLE agpl_app");
        yes("SELECT tenancy.guarded_sum(pay, person) = 150
                AND tenancy.guarded_avg(pay, person) = 30
                AND tenancy.guarded_percentile(pay, 0.5, person) IS NULL
                AND tenancy.guarded_percentile(pay, 0.0, person) IS NULL
               FROM tests.agpl_t");
    }
}
