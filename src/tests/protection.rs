//! `#[pg_test]`s for protection beyond one plain table: partitions, shared rows,
//! entitlement-gated tables, tenant-scoped keys, enrolled schemas and the DDL guard.
//! Same conventions as `tests.rs`: unique names, `SET LOCAL ROLE` before asserting isolation.

#[pgrx::pg_schema]
mod tests {
    use pgrx::prelude::*;

    use crate::tests::fixture::*;

    /// Tenants `{p}_a`, `{p}_b`, an app role `{p}_app` and a table owner `{p}_owner`.
    fn base(p: &str) {
        install_try_sql();
        run(&format!(
            "CREATE ROLE {p}_app NOLOGIN; SELECT tenancy.grant_app('{p}_app');
             CREATE ROLE {p}_owner NOLOGIN; SELECT tenancy.grant_admin('{p}_owner');
             GRANT USAGE, CREATE ON SCHEMA tests TO {p}_app, {p}_owner;
             SELECT tenancy.create_tenant('{p}_a'), tenancy.create_tenant('{p}_b');"
        ));
    }

    /// Acts as the app role for tenant `t` (set_tenant needs a trusted role, so it runs first).
    fn as_tenant(p: &str, t: &str) {
        run(&format!(
            "RESET ROLE; SELECT tenancy.set_tenant('{t}'); SET LOCAL ROLE {p}_app"
        ));
    }

    #[pg_test]
    fn every_partition_is_isolated_including_later_ones() {
        base("part");
        run("CREATE TABLE tests.part_t (id int, tenant_id text NOT NULL, v text) PARTITION BY RANGE (id);
             CREATE TABLE tests.part_t1 PARTITION OF tests.part_t FOR VALUES FROM (0) TO (100);
             CREATE TABLE tests.part_t2 PARTITION OF tests.part_t FOR VALUES FROM (100) TO (200);
             SELECT tenancy.protect('tests.part_t');
             -- after protect: created as a partition, and attached
             CREATE TABLE tests.part_t3 PARTITION OF tests.part_t FOR VALUES FROM (200) TO (300);
             CREATE TABLE tests.part_t4 (id int, tenant_id text NOT NULL, v text);
             ALTER TABLE tests.part_t ATTACH PARTITION tests.part_t4 FOR VALUES FROM (300) TO (400);
             INSERT INTO tests.part_t SELECT g, CASE WHEN g % 2 = 0 THEN 'part_a' ELSE 'part_b' END, 'x'
               FROM generate_series(0, 399) g;
             GRANT SELECT ON tests.part_t, tests.part_t1, tests.part_t2, tests.part_t3, tests.part_t4 TO part_app;");
        assert_eq!(count("SELECT count(*) FROM tenancy.protected_tables WHERE tbl::text LIKE 'tests.part_t%'"), 5);
        as_tenant("part", "part_a");
        assert_eq!(count("SELECT count(*) FROM tests.part_t"), 200);
        for t in ["part_t1", "part_t2", "part_t3", "part_t4"] {
            assert_eq!(count(&format!("SELECT count(*) FROM tests.{t}")), 50, "{t}");
            assert_eq!(
                count(&format!(
                    "SELECT count(*) FROM tests.{t} WHERE tenant_id <> 'part_a'"
                )),
                0,
                "{t}"
            );
        }
    }

    #[pg_test]
    fn shared_rows_are_readable_never_writable_by_others() {
        base("shr");
        run("CREATE TABLE tests.shr_t (id int PRIMARY KEY, tenant_id text, shared boolean NOT NULL DEFAULT false, v text);
             INSERT INTO tests.shr_t VALUES (1, 'shr_a', true, 'a public'), (2, 'shr_a', false, 'a private'),
                                            (3, 'shr_b', false, 'b private');
             SELECT tenancy.protect('tests.shr_t', 'tenant_id', 'shared');
             GRANT ALL ON tests.shr_t TO shr_app;");
        as_tenant("shr", "shr_b");
        assert_eq!(
            one::<String>("SELECT string_agg(v, ',' ORDER BY id) FROM tests.shr_t"),
            Some("a public,b private".into())
        );
        // A's shared row cannot be changed, deleted, unshared, or A's private row shared.
        assert_eq!(count("WITH u AS (UPDATE tests.shr_t SET v = 'pwn' WHERE id = 1 RETURNING 1) SELECT count(*) FROM u"), 0);
        assert_eq!(count("WITH u AS (UPDATE tests.shr_t SET shared = false WHERE id = 1 RETURNING 1) SELECT count(*) FROM u"), 0);
        assert_eq!(count("WITH d AS (DELETE FROM tests.shr_t WHERE id = 1 RETURNING 1) SELECT count(*) FROM d"), 0);
        assert_eq!(count("WITH u AS (UPDATE tests.shr_t SET shared = true WHERE id = 2 RETURNING 1) SELECT count(*) FROM u"), 0);
        // B cannot plant a row (shared or not) in A's name.
        assert_fails(
            "INSERT INTO tests.shr_t VALUES (4, 'shr_a', true, 'forged')",
            "42501",
            "row-level security",
        );
        assert_fails(
            "UPDATE tests.shr_t SET tenant_id = 'shr_a', shared = true WHERE id = 3",
            "42501",
            "row-level security",
        );
        // B may share its own row.
        assert_eq!(count("WITH u AS (UPDATE tests.shr_t SET shared = true WHERE id = 3 RETURNING 1) SELECT count(*) FROM u"), 1);
        run("RESET ROLE");
        assert_eq!(
            one::<String>(
                "SELECT string_agg(v || ':' || shared, ',' ORDER BY id) FROM tests.shr_t"
            ),
            Some("a public:true,a private:false,b private:true".into())
        );
        // A sees B's newly shared row; a tenant without shared rows still sees only the shared ones.
        as_tenant("shr", "shr_a");
        assert_eq!(count("SELECT count(*) FROM tests.shr_t"), 3);
    }

    #[pg_test]
    fn feature_gated_table_follows_the_entitlement_window() {
        base("feat");
        run("CREATE TABLE tests.feat_t (id bigint PRIMARY KEY, tenant_id text, v text);
             INSERT INTO tests.feat_t SELECT g, CASE WHEN g % 2 = 0 THEN 'feat_a' ELSE 'feat_b' END, 'x'
               FROM generate_series(1, 20000) g;
             SELECT tenancy.protect('tests.feat_t', feature => 'payroll');
             ANALYZE tests.feat_t;
             GRANT ALL ON tests.feat_t TO feat_app;");
        as_tenant("feat", "feat_a");
        assert_eq!(
            count("SELECT count(*) FROM tests.feat_t"),
            0,
            "not entitled"
        );
        assert_fails(
            "INSERT INTO tests.feat_t (id, v) VALUES (100001, 'x')",
            "42501",
            "row-level security",
        );
        run("RESET ROLE; SELECT tenancy.grant_feature('feat_a', 'payroll', now() + interval '1 day')");
        as_tenant("feat", "feat_a");
        assert_eq!(
            count("SELECT count(*) FROM tests.feat_t"),
            0,
            "before enabled_from"
        );
        run("RESET ROLE; SELECT tenancy.grant_feature('feat_a', 'payroll', now() - interval '1 day', now() + interval '1 day')");
        as_tenant("feat", "feat_a");
        assert_eq!(
            count("SELECT count(*) FROM tests.feat_t"),
            10000,
            "entitled"
        );
        assert_eq!(
            one::<bool>("SELECT tenancy.entitled('payroll')"),
            Some(true)
        );
        // Entitled or not, only the own tenant's rows; a point query seeks the tenant index.
        assert_eq!(count("SELECT count(*) FROM tests.feat_t WHERE id = 3"), 0);
        let plan =
            one::<pgrx::Json>("EXPLAIN (FORMAT JSON) SELECT * FROM tests.feat_t WHERE id = 4")
                .unwrap()
                .0
                .to_string();
        assert!(
            plan.contains("feat_t_tenant_id_tenancy_idx") || plan.contains("feat_t_pkey"),
            "{plan}"
        );
        assert!(!plan.contains("Seq Scan"), "{plan}");
        // B is not entitled and cannot see A's entitlements either.
        as_tenant("feat", "feat_b");
        assert_eq!(count("SELECT count(*) FROM tests.feat_t"), 0);
        assert_eq!(count("SELECT count(*) FROM tenancy.entitlements"), 0);
        run("RESET ROLE; SELECT tenancy.grant_feature('feat_a', 'payroll', now() - interval '2 days', now() - interval '1 day')");
        as_tenant("feat", "feat_a");
        assert_eq!(
            count("SELECT count(*) FROM tests.feat_t"),
            0,
            "after enabled_until"
        );
        run("RESET ROLE; SELECT tenancy.grant_feature('feat_a', 'payroll'); SELECT tenancy.revoke_feature('feat_a', 'payroll')");
        as_tenant("feat", "feat_a");
        assert_eq!(
            count("SELECT count(*) FROM tests.feat_t"),
            0,
            "after revoke"
        );
        run("RESET ROLE");
        assert_fails(
            "SELECT tenancy.revoke_feature('feat_a', 'payroll')",
            "42704",
            "has no feature",
        );
        assert_fails(
            "SELECT tenancy.grant_feature('feat_nobody', 'payroll')",
            "42704",
            "does not exist",
        );
        assert_fails(
            "SELECT tenancy.grant_feature('feat_a', 'pay roll')",
            "22023",
            "invalid feature name",
        );
        assert_fails(
            "SELECT tenancy.grant_feature('feat_a', 'payroll', now(), now() - interval '1 day')",
            "22023",
            "later than",
        );
    }

    #[pg_test]
    fn scope_unique_makes_keys_unique_per_tenant() {
        base("uniq");
        run("CREATE TABLE tests.uniq_t (id int GENERATED ALWAYS AS IDENTITY, tenant_id text, email text UNIQUE);
             INSERT INTO tests.uniq_t (tenant_id, email) VALUES ('uniq_a', 'ann@example.com');
             SELECT tenancy.protect('tests.uniq_t');
             GRANT ALL ON tests.uniq_t TO uniq_app;");
        // Before: B's insert of A's email fails, telling B that the address exists elsewhere.
        as_tenant("uniq", "uniq_b");
        assert_fails(
            "INSERT INTO tests.uniq_t (email) VALUES ('ann@example.com')",
            "23505",
            "duplicate key",
        );
        run("RESET ROLE; SELECT tenancy.scope_unique('tests.uniq_t', '{email}'); SELECT tenancy.scope_unique('tests.uniq_t', '{email}')");
        as_tenant("uniq", "uniq_b");
        run("INSERT INTO tests.uniq_t (email) VALUES ('ann@example.com')");
        assert_eq!(count("SELECT count(*) FROM tests.uniq_t"), 1);
        as_tenant("uniq", "uniq_a");
        assert_fails(
            "INSERT INTO tests.uniq_t (email) VALUES ('ann@example.com')",
            "23505",
            "duplicate key",
        );
        run("RESET ROLE");
        assert_eq!(count("SELECT count(*) FROM pg_indexes WHERE tablename = 'uniq_t' AND indexdef LIKE '%UNIQUE%(tenant_id, email)%'"), 1);
        assert_fails(
            "SELECT tenancy.scope_unique('tests.uniq_t', '{nope}')",
            "42703",
            "has no column",
        );
    }

    #[pg_test]
    fn scoped_foreign_keys_stay_inside_the_tenant_and_reveal_nothing() {
        base("fk");
        run("CREATE TABLE tests.fk_orders (id int PRIMARY KEY, tenant_id text);
             CREATE TABLE tests.fk_lines (id int PRIMARY KEY, tenant_id text,
                                          order_id int REFERENCES tests.fk_orders (id) ON DELETE CASCADE);
             INSERT INTO tests.fk_orders VALUES (1, 'fk_a'), (2, 'fk_b');
             SELECT tenancy.protect('tests.fk_orders'), tenancy.protect('tests.fk_lines');
             GRANT ALL ON tests.fk_orders, tests.fk_lines TO fk_app;");
        // A plain foreign key is checked without RLS: B links to A's order, learning it exists.
        as_tenant("fk", "fk_b");
        run("INSERT INTO tests.fk_lines (id, order_id) VALUES (10, 1)");
        run("RESET ROLE; DELETE FROM tests.fk_lines; SELECT tenancy.scope_foreign_key('tests.fk_lines', '{order_id}', 'tests.fk_orders')");
        as_tenant("fk", "fk_b");
        let exists_elsewhere =
            failure("INSERT INTO tests.fk_lines (id, order_id) VALUES (10, 1)").expect("refused");
        let exists_nowhere =
            failure("INSERT INTO tests.fk_lines (id, order_id) VALUES (10, 99)").expect("refused");
        assert!(
            exists_elsewhere.starts_with("23503: "),
            "{exists_elsewhere}"
        );
        assert_eq!(
            exists_elsewhere, exists_nowhere,
            "the error must not tell the two apart"
        );
        run("INSERT INTO tests.fk_lines (id, order_id) VALUES (11, 2)");
        run("RESET ROLE");
        assert_eq!(
            count("SELECT count(*) FROM pg_constraint WHERE conrelid = 'tests.fk_lines'::regclass AND contype = 'f'
                    AND pg_get_constraintdef(oid) LIKE 'FOREIGN KEY (tenant_id, order_id) REFERENCES tests.fk_orders(tenant_id, id) ON DELETE CASCADE'"),
            1
        );
    }

    fn guarded_table(p: &str) {
        base(p);
        run(&format!(
            "CREATE TABLE tests.{p}_t (id int PRIMARY KEY, tenant_id text, v text);
             ALTER TABLE tests.{p}_t OWNER TO {p}_owner;
             SET LOCAL ROLE {p}_owner;
             SELECT tenancy.protect('tests.{p}_t');
             RESET ROLE;"
        ));
    }

    #[pg_test]
    fn ddl_guard_refuses_the_owner() {
        guarded_table("guard");
        run("SET LOCAL ROLE guard_owner");
        for ddl in [
            "ALTER TABLE tests.guard_t DISABLE ROW LEVEL SECURITY",
            "ALTER TABLE tests.guard_t NO FORCE ROW LEVEL SECURITY",
            "DROP POLICY tenancy_isolation ON tests.guard_t",
            "ALTER POLICY tenancy_isolation ON tests.guard_t USING (true)",
            "ALTER POLICY tenancy_isolation ON tests.guard_t RENAME TO other",
            "CREATE POLICY everyone ON tests.guard_t USING (true)",
            "CREATE RULE r AS ON INSERT TO tests.guard_t DO INSTEAD NOTHING",
            "ALTER TABLE tests.guard_t RENAME COLUMN tenant_id TO org",
            "ALTER TABLE tests.guard_t DROP COLUMN tenant_id CASCADE",
            "ALTER TABLE tests.guard_t ALTER COLUMN tenant_id TYPE varchar(20)",
        ] {
            let f = failure(ddl).unwrap_or_else(|| panic!("{ddl} was allowed"));
            assert!(
                f.starts_with("42501: pg_tenancy: refusing DDL on protected table tests.guard_t")
                    // PostgreSQL's own dependency checks may refuse first; either way nothing changes.
                    || f.starts_with("0A000: cannot alter type of a column used in a policy definition"),
                "{ddl}: {f}"
            );
        }
        // Restrictive policies narrow; they are fine.
        run("CREATE POLICY positive_ids ON tests.guard_t AS RESTRICTIVE USING (id > 0)");
        assert_fails("SET tenancy.ddl_guard = off", "42501", "permission denied");
        run("RESET ROLE");
        assert_eq!(one::<bool>("SELECT relrowsecurity AND relforcerowsecurity FROM pg_class WHERE oid = 'tests.guard_t'::regclass"), Some(true));
        // unprotect() is the way out, and then anything goes.
        run(
            "SET LOCAL ROLE guard_owner; SELECT tenancy.unprotect('tests.guard_t');
             ALTER TABLE tests.guard_t DISABLE ROW LEVEL SECURITY; RESET ROLE",
        );
    }

    #[pg_test]
    fn ddl_guard_warn_lets_a_superuser_through() {
        guarded_table("gwarn");
        run("SET LOCAL tenancy.ddl_guard = warn; ALTER TABLE tests.gwarn_t NO FORCE ROW LEVEL SECURITY");
        assert_eq!(
            one::<bool>(
                "SELECT relforcerowsecurity FROM pg_class WHERE oid = 'tests.gwarn_t'::regclass"
            ),
            Some(false)
        );
        run("SET LOCAL tenancy.ddl_guard = error");
        assert_fails(
            "ALTER TABLE tests.gwarn_t DISABLE ROW LEVEL SECURITY",
            "42501",
            "refusing DDL",
        );
    }

    #[pg_test]
    fn enrolled_schema_protects_new_tables_on_creation() {
        base("enr");
        run(
            "CREATE SCHEMA enr_s; GRANT USAGE ON SCHEMA enr_s TO enr_app;
             CREATE TABLE enr_s.before (id int, tenant_id text);
             CREATE TABLE enr_s.no_tenant (id int);",
        );
        assert_eq!(
            one::<i32>("SELECT tenancy.protect_schema('enr_s')"),
            Some(1)
        );
        run("CREATE TABLE enr_s.after (id int, tenant_id text);
             CREATE TABLE enr_s.later_no_tenant (id int);
             INSERT INTO enr_s.after VALUES (1, 'enr_a'), (2, 'enr_b');
             GRANT SELECT ON enr_s.after TO enr_app;");
        assert_eq!(
            one::<String>("SELECT string_agg(tbl::text, ',' ORDER BY tbl::text) FROM tenancy.protected_tables WHERE tbl::text LIKE 'enr_s.%'"),
            Some("enr_s.after,enr_s.before".into())
        );
        as_tenant("enr", "enr_b");
        assert_eq!(one::<i32>("SELECT min(id) FROM enr_s.after"), Some(2));
        assert_eq!(count("SELECT count(*) FROM enr_s.after"), 1);
        run("RESET ROLE");
        assert_fails(
            "SELECT tenancy.protect_schema('enr_nowhere')",
            "42704",
            "does not exist",
        );
    }

    #[pg_test]
    fn unprotect_removes_shared_and_feature_policies_too() {
        base("unp");
        run("CREATE TABLE tests.unp_t (id int PRIMARY KEY, tenant_id text, shared boolean NOT NULL DEFAULT false);
             SELECT tenancy.protect('tests.unp_t', 'tenant_id', 'shared', 'reports');
             SELECT tenancy.unprotect('tests.unp_t');");
        assert_eq!(
            count("SELECT count(*) FROM pg_policy WHERE polrelid = 'tests.unp_t'::regclass"),
            0
        );
        assert_eq!(count("SELECT count(*) FROM pg_indexes WHERE tablename = 'unp_t' AND indexname LIKE '%tenancy%'"), 0);
        assert_eq!(
            one::<bool>("SELECT attnotnull FROM pg_attribute WHERE attrelid = 'tests.unp_t'::regclass AND attname = 'tenant_id'"),
            Some(false)
        );
        assert_fails(
            "SELECT tenancy.protect('tests.unp_t', 'id', 'tenant_id')",
            "22023",
            "must be boolean",
        );
    }
}
