//! `#[pg_test]`s of protect() and what it makes: rows isolated per tenant for every tenant
//! column type, protect/unprotect recorded and undone, plans that seek the tenant index and
//! parallel workers that see the context; and protection beyond one plain table: partitions,
//! shared rows, entitlement-gated tables, tenant-scoped keys, enrolled schemas, the DDL guard.
//! Unique names per test, `SET LOCAL ROLE` before asserting isolation.

#[pgrx::pg_schema]
mod tests {
    use pgrx::prelude::*;
    use serde_json::json;

    use crate::tests::fixture::*;

    /// Tenants `{p}_a`, `{p}_b`, an app role `{p}_app` and a table owner `{p}_owner`.
    fn base(p: &str) {
        app_and_owner(p);
        tenants(p);
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
        assert_failure(
            &exists_elsewhere,
            "23503",
            "violates foreign key constraint",
            "a reference to another tenant's row",
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
        assert_denied("SET tenancy.ddl_guard = off");
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

    // ---- protect() on one table: isolation, records, plans ----

    fn isolation_for(p: &str, tenant_type: &str, a: &str, b: &str) {
        docs_fixture(p, tenant_type, a, b);
        let tok_a = token(
            p,
            json!({"tenant_id": a, "sub": "alice", "exp": epoch_now() + 600}),
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
    fn protect_is_idempotent_and_recorded() {
        docs_fixture("idem", "text", "idem_a", "idem_b");
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
        docs_fixture("unprot", "text", "unprot_a", "unprot_b");
        run("SELECT tenancy.unprotect('tests.unprot_docs')");
        assert_eq!(
            count("SELECT count(*) FROM pg_policies WHERE tablename = 'unprot_docs'"),
            0
        );
        assert_eq!(count("SELECT count(*) FROM pg_indexes WHERE tablename = 'unprot_docs' AND indexname LIKE '%tenancy%'"), 0);
        assert_eq!(one::<bool>("SELECT relrowsecurity OR relforcerowsecurity FROM pg_class WHERE oid = 'tests.unprot_docs'::regclass"), Some(false));
        assert_eq!(count("SELECT count(*) FROM tenancy.protected_tables WHERE tbl = 'tests.unprot_docs'::regclass"), 0);
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
        // The getter runs once per query, in one InitPlan.
        let one_initplan = |nodes: &[serde_json::Value], text: &str| {
            assert_eq!(
                nodes
                    .iter()
                    .filter(|n| field(n, "Parent Relationship") == "InitPlan")
                    .count(),
                1,
                "{text}"
            );
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
        one_initplan(&nodes, &text);

        // The tenant's latest rows: a seek on the tenant index, tenant inside the index condition.
        let (text, nodes) =
            explain("SELECT id, body FROM tests.plan_docs ORDER BY id DESC LIMIT 50");
        let scan = nodes
            .iter()
            .find(|n| field(n, "Index Name") == "plan_docs_tenant_id_tenancy_idx")
            .unwrap_or_else(|| panic!("tenant index unused: {text}"));
        assert!(against_initplan(field(scan, "Index Cond")), "{text}");
        assert!(scan.get("Filter").is_none(), "{text}");
        one_initplan(&nodes, &text);

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
        assert_workers_ran("SELECT sum(n) FROM tests.par_docs");
        let expected: i64 = (1..=200000i64).filter(|g| g % 4 == 2).sum();
        assert_eq!(
            one::<i64>("SELECT sum(n)::bigint FROM tests.par_docs"),
            Some(expected)
        );
    }
}
