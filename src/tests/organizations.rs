//! `#[pg_test]`s of organizations of tenants (issue 16, docs/organizations.md): the tree and
//! its rules, what a location's and an organization's contexts read and write, the plans
//! (a leaf's unchanged, an organization's one index condition), cached plans that never show
//! rows outside the current context's subtree, and a location's attempts on its parent's and
//! siblings' rows. Unique names per test, `SET LOCAL ROLE` before asserting isolation.

#[pgrx::pg_schema]
mod tests {
    use pgrx::prelude::*;
    use serde_json::json;

    use crate::tests::fixture::*;

    /// Organizations `{p}_o1` (locations `{p}_l1`, `{p}_l2`) and `{p}_o2` (location `{p}_m1`),
    /// a flat tenant `{p}_flat`, roles `{p}_app` (app) and `{p}_admin`, key `{p}_k`, and
    /// `tests.{p}_docs` with rows: o1 ×1, l1 ×2, l2 ×3, o2 ×1, m1 ×4, flat ×5.
    fn orgs(p: &str) {
        roles(p, &[("app", Tier::App), ("admin", Tier::Admin)]);
        signing_key(p);
        run(&format!(
            "SELECT tenancy.create_tenant('{p}_o1', 'Org one');
             SELECT tenancy.create_tenant('{p}_l1', parent => '{p}_o1');
             SELECT tenancy.create_tenant('{p}_l2', parent => '{p}_o1');
             SELECT tenancy.create_tenant('{p}_o2', 'Org two');
             SELECT tenancy.create_tenant('{p}_m1', parent => '{p}_o2');
             SELECT tenancy.create_tenant('{p}_flat');"
        ));
        docs_table(
            p,
            "text",
            &[
                (&format!("{p}_o1"), "o1"),
                (&format!("{p}_l1"), "l1"),
                (&format!("{p}_l1"), "l1"),
                (&format!("{p}_l2"), "l2"),
                (&format!("{p}_l2"), "l2"),
                (&format!("{p}_l2"), "l2"),
                (&format!("{p}_o2"), "o2"),
                (&format!("{p}_m1"), "m1"),
                (&format!("{p}_m1"), "m1"),
                (&format!("{p}_m1"), "m1"),
                (&format!("{p}_m1"), "m1"),
                (&format!("{p}_flat"), "f"),
                (&format!("{p}_flat"), "f"),
                (&format!("{p}_flat"), "f"),
                (&format!("{p}_flat"), "f"),
                (&format!("{p}_flat"), "f"),
            ],
            &format!("{p}_app"),
        );
    }

    /// As the app role, with a token for tenant `t`.
    fn as_token(p: &str, t: &str) {
        run("RESET ROLE");
        let tok = token(p, json!({ "tenant_id": t, "sub": "u" }));
        run(&format!(
            "SET LOCAL ROLE {p}_app; {}",
            set_context_sql(&tok)
        ));
    }

    fn bodies(p: &str) -> String {
        text(&format!(
            "SELECT coalesce(string_agg(body, ',' ORDER BY body), '') FROM tests.{p}_docs"
        ))
    }

    #[pg_test]
    fn a_location_reads_its_rows_its_organization_reads_its_subtree() {
        orgs("org1");
        as_token("org1", "org1_l1");
        assert_eq!(bodies("org1"), "l1,l1");
        assert_eq!(text("SELECT tenancy.current_tenant()"), "org1_l1");
        assert_eq!(
            text("SELECT array_to_string(tenancy.current_subtree(), ',')"),
            "org1_l1"
        );
        as_token("org1", "org1_l2");
        assert_eq!(bodies("org1"), "l2,l2,l2");
        as_token("org1", "org1_o1");
        // The organization's own row and both locations', nothing of o2's tree or flat.
        assert_eq!(bodies("org1"), "l1,l1,l2,l2,l2,o1");
        assert_eq!(text("SELECT tenancy.current_tenant()"), "org1_o1");
        assert_eq!(
            text("SELECT array_to_string(tenancy.current_subtree(), ',')"),
            "org1_l1,org1_l2,org1_o1"
        );
        as_token("org1", "org1_o2");
        assert_eq!(bodies("org1"), "m1,m1,m1,m1,o2");
        as_token("org1", "org1_flat");
        assert_eq!(bodies("org1"), "f,f,f,f,f");
        // An API key names an organization like any tenant, roles included.
        run("RESET ROLE");
        let key = text("SELECT tenancy.create_api_key('org1_o1', 'reports', ARRAY['analyst'])");
        run(&format!(
            "SET LOCAL ROLE org1_app; SELECT tenancy.set_context_from_key('{key}')"
        ));
        assert_eq!(bodies("org1"), "l1,l1,l2,l2,l2,o1");
        assert!(one::<bool>("SELECT tenancy.has_role('analyst')").unwrap());
    }

    /// The lines of `EXPLAIN (COSTS OFF) q`.
    fn plan(q: &str) -> String {
        Spi::connect(|c| {
            c.select(&format!("EXPLAIN (COSTS OFF) {q}"), None, &[])?
                .map(|r| r.get::<String>(1).map(Option::unwrap_or_default))
                .collect::<Result<Vec<_>, pgrx::spi::Error>>()
        })
        .unwrap_or_else(|e| panic!("EXPLAIN {q}: {e}"))
        .join("\n")
    }

    #[pg_test]
    fn a_leaf_keeps_its_plan_an_organization_of_40_seeks_the_index_once() {
        roles("orgp", &[("app", Tier::App)]);
        signing_key("orgp");
        run("SELECT tenancy.create_tenant('orgp_org');
             SELECT tenancy.create_tenant('orgp_loc' || g, parent => 'orgp_org') FROM generate_series(1, 40) g;
             SELECT tenancy.create_tenant('orgp_flat');
             CREATE TABLE tests.orgp_t (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, tenant_id text, v int);
             -- 40 locations of 20 rows each among 400 other tenants of 20 rows each.
             INSERT INTO tests.orgp_t (tenant_id, v) SELECT 'orgp_loc' || (g % 40 + 1), g FROM generate_series(1, 800) g;
             INSERT INTO tests.orgp_t (tenant_id, v) SELECT 'orgp_other' || (g % 400), g FROM generate_series(1, 8000) g;
             INSERT INTO tests.orgp_t (tenant_id, v) SELECT 'orgp_flat', g FROM generate_series(1, 20) g;
             SELECT tenancy.protect('tests.orgp_t');
             ANALYZE tests.orgp_t;
             GRANT SELECT ON tests.orgp_t TO orgp_app;");
        let q = "SELECT v FROM tests.orgp_t";
        as_token("orgp", "orgp_flat");
        let flat = plan(q);
        // PostgreSQL 17 names an init plan's output `(InitPlan 1).col1`, earlier ones `$0`.
        assert!(
            flat.contains("Index Cond: (tenant_id = (InitPlan 1).col1)")
                || flat.contains("Index Cond: (tenant_id = $0)"),
            "{flat}"
        );
        // A location's plan is today's, line for line.
        as_token("orgp", "orgp_loc7");
        assert_eq!(plan(q), flat);
        assert_eq!(count("SELECT count(*) FROM tests.orgp_t"), 20);
        // The organization: one index condition over its subtree, no scan of the table.
        as_token("orgp", "orgp_org");
        let org = plan("SELECT count(*) FROM tests.orgp_t");
        assert!(
            org.contains("Index Cond: (tenant_id = ANY ((InitPlan 1).col1))")
                || org.contains("Index Cond: (tenant_id = ANY ($0))"),
            "{org}"
        );
        assert!(!org.contains("Seq Scan"), "{org}");
        assert_eq!(count("SELECT count(*) FROM tests.orgp_t"), 800);
    }

    #[pg_test]
    fn a_cached_plan_never_shows_rows_outside_the_current_subtree() {
        orgs("orgc");
        run(
            "CREATE FUNCTION tests.orgc_n() RETURNS bigint LANGUAGE plpgsql STABLE AS $$
               BEGIN RETURN (SELECT count(*) FROM tests.orgc_docs); END $$;
             GRANT EXECUTE ON FUNCTION tests.orgc_n() TO orgc_app;
             SET LOCAL plan_cache_mode = force_generic_plan;
             PREPARE orgc_q AS SELECT count(*) FROM tests.orgc_docs WHERE body <> $1;",
        );
        // leaf → org → leaf → org B → org A → leaf of B → no context, each with the prepared
        // statement, the PL/pgSQL function and a plain query agreeing.
        for (t, n) in [
            ("orgc_l1", 2),
            ("orgc_o1", 6),
            ("orgc_l1", 2),
            ("orgc_o2", 5),
            ("orgc_o1", 6),
            ("orgc_m1", 4),
            ("orgc_o1", 6),
            ("orgc_l2", 3),
        ] {
            as_token("orgc", t);
            assert_eq!(count("EXECUTE orgc_q('x')"), n, "prepared under {t}");
            assert_eq!(count("SELECT tests.orgc_n()"), n, "plpgsql under {t}");
            assert_eq!(count("SELECT count(*) FROM tests.orgc_docs"), n, "{t}");
        }
        run("SELECT tenancy.clear_context()");
        assert_eq!(count("EXECUTE orgc_q('x')"), 0);
        assert_eq!(count("SELECT tests.orgc_n()"), 0);
    }

    /// Admin: a tenant with children is not dropped (on Citus the registry has no foreign key
    /// to refuse it, and on one node the refusal used to be a raw 23503).
    #[pg_test]
    fn a_parent_tenant_is_not_dropped_while_it_has_children() {
        install_try_sql();
        run("SELECT tenancy.create_tenant('orgd_org');
             SELECT tenancy.create_tenant('orgd_loc', parent => 'orgd_org');
             SELECT tenancy.deactivate_tenant('orgd_org')");
        assert_fails(
            "SELECT tenancy.drop_tenant('orgd_org', 'purge')",
            "55000",
            "is the parent of 1 tenant(s)",
        );
        run("SELECT tenancy.move_tenant('orgd_loc', NULL)");
        run("SELECT tenancy.drop_tenant('orgd_org', 'purge')");
        assert_eq!(
            count("SELECT count(*) FROM tenancy.tenants WHERE id = 'orgd_org'"),
            0
        );
    }

    #[pg_test]
    fn an_organization_writes_only_its_own_rows() {
        orgs("orgw");
        as_token("orgw", "orgw_o1");
        // Into a location of its own subtree, another organization's, a flat tenant: 42501.
        for t in ["orgw_l1", "orgw_m1", "orgw_flat", "orgw_o2"] {
            assert_fails(
                &format!("INSERT INTO tests.orgw_docs (tenant_id, body) VALUES ('{t}', 'x')"),
                "42501",
                "row-level security policy",
            );
        }
        // Without the tenant column the row is the organization's own, never a location's.
        run("INSERT INTO tests.orgw_docs (body) VALUES ('own')");
        assert_eq!(
            count(
                "SELECT count(*) FROM tests.orgw_docs WHERE body = 'own' AND tenant_id = 'orgw_o1'"
            ),
            1
        );
        // UPDATE and DELETE reach its own rows only, though it reads its locations'.
        assert_fails(
            "UPDATE tests.orgw_docs SET tenant_id = 'orgw_l1'",
            "42501",
            "row-level security policy",
        );
        assert_eq!(
            count("WITH u AS (UPDATE tests.orgw_docs SET body = body || '!' RETURNING 1) SELECT count(*) FROM u"),
            2
        );
        assert_eq!(
            count("WITH d AS (DELETE FROM tests.orgw_docs RETURNING 1) SELECT count(*) FROM d"),
            2
        );
        assert_eq!(bodies("orgw"), "l1,l1,l2,l2,l2");
    }

    #[pg_test]
    fn the_tree_refuses_cycles_and_depth_and_moves_take_effect() {
        orgs("orgt");
        assert_fails(
            "SELECT tenancy.move_tenant('orgt_o1', 'orgt_l1')",
            "22023",
            "which would make a cycle",
        );
        assert_fails(
            "SELECT tenancy.move_tenant('orgt_o1', 'orgt_o1')",
            "22023",
            "which would make a cycle",
        );
        assert_fails(
            "SELECT tenancy.create_tenant('orgt_x', parent => 'orgt_nobody')",
            "42704",
            "parent tenant 'orgt_nobody' does not exist",
        );
        run(
            "SELECT tenancy.create_tenant('orgt_d3', parent => 'orgt_l1');
             SELECT tenancy.create_tenant('orgt_d4', parent => 'orgt_d3');",
        );
        assert_fails(
            "SELECT tenancy.create_tenant('orgt_d5', parent => 'orgt_d4')",
            "54000",
            "at most 4 are allowed",
        );
        // o1 holds three levels below it: it cannot go below o2.
        assert_fails(
            "SELECT tenancy.move_tenant('orgt_o1', 'orgt_o2')",
            "54000",
            "at most 4 are allowed",
        );
        assert_eq!(
            text(
                "SELECT array_to_string(path, '/') || ' ' || depth || ' ' || root || ' ' || is_leaf
                    FROM tenancy.tenant_tree WHERE id = 'orgt_d4'"
            ),
            "orgt_o1/orgt_l1/orgt_d3/orgt_d4 4 orgt_o1 true"
        );
        // l2 moves from o1 to o2: o1 no longer reads its rows, o2 does.
        run("SELECT tenancy.move_tenant('orgt_l2', 'orgt_o2')");
        as_token("orgt", "orgt_o1");
        assert_eq!(bodies("orgt"), "l1,l1,o1");
        as_token("orgt", "orgt_o2");
        assert_eq!(bodies("orgt"), "l2,l2,l2,m1,m1,m1,m1,o2");
        // To the top: nobody's location any more.
        run("RESET ROLE; SELECT tenancy.move_tenant('orgt_l2', NULL)");
        as_token("orgt", "orgt_o2");
        assert_eq!(bodies("orgt"), "m1,m1,m1,m1,o2");
        assert_eq!(
            count("SELECT count(*) FROM tenancy.audit_log WHERE tenant_id = 'orgt_l2' AND event = 'tenant_moved'"),
            0,
            "o2's context reads no audit chain of l2"
        );
        run("RESET ROLE");
        assert_eq!(
            count("SELECT count(*) FROM tenancy.audit_log WHERE tenant_id = 'orgt_l2' AND event = 'tenant_moved'"),
            2
        );
    }

    #[pg_test]
    fn deactivating_an_organization_stops_its_subtree() {
        orgs("orgd");
        let l1 = token("orgd", json!({ "tenant_id": "orgd_l1", "sub": "u" }));
        as_token("orgd", "orgd_l1");
        assert_eq!(bodies("orgd"), "l1,l1");
        run("RESET ROLE; SELECT tenancy.deactivate_tenant('orgd_o1')");
        let toks: Vec<String> = ["orgd_o1", "orgd_l1", "orgd_l2"]
            .iter()
            .map(|t| token("orgd", json!({ "tenant_id": t, "sub": "u" })))
            .collect();
        run("SET LOCAL ROLE orgd_app");
        for tok in &toks {
            assert_fails(&set_context_sql(tok), "28000", "the tenant is deactivated");
        }
        // A context set before the deactivation is refused on its next use.
        assert_fails(
            "SELECT count(*) FROM tests.orgd_docs",
            "28000",
            "the tenant is deactivated",
        );
        // The other organization is untouched.
        as_token("orgd", "orgd_m1");
        assert_eq!(bodies("orgd"), "m1,m1,m1,m1");
        run("RESET ROLE; SELECT tenancy.reactivate_tenant('orgd_o1'); SET LOCAL ROLE orgd_app");
        run(&set_context_sql(&l1));
        assert_eq!(bodies("orgd"), "l1,l1");
    }

    #[pg_test]
    fn a_location_cannot_reach_its_parents_or_siblings_rows() {
        orgs("orga");
        as_token("orga", "orga_l1");
        // Filters, joins, sub-selects, CTEs and set operations all stay inside l1.
        for q in [
            "SELECT count(*) FROM tests.orga_docs WHERE tenant_id IN ('orga_o1', 'orga_l2')",
            "SELECT count(*) FROM tests.orga_docs d JOIN tests.orga_docs e ON e.id <> d.id WHERE e.tenant_id <> 'orga_l1'",
            "SELECT count(*) FROM (SELECT * FROM tests.orga_docs) s WHERE s.tenant_id = ANY (ARRAY['orga_o1', 'orga_l2'])",
            "WITH RECURSIVE r AS (SELECT * FROM tests.orga_docs WHERE tenant_id = 'orga_o1') SELECT count(*) FROM r",
            "SELECT count(*) FROM (SELECT tenant_id FROM tests.orga_docs UNION ALL SELECT tenant_id FROM ONLY tests.orga_docs) u WHERE tenant_id <> 'orga_l1'",
        ] {
            assert_eq!(count(q), 0, "{q}");
        }
        // Its subtree getter names itself alone, and the hierarchy is not readable.
        assert_eq!(
            text("SELECT array_to_string(tenancy.current_subtree(), ',')"),
            "orga_l1"
        );
        assert_fails(
            "SELECT * FROM tenancy.tenant_tree",
            "42501",
            "permission denied for view tenant_tree",
        );
        assert_denied("SELECT * FROM tenancy.tenants");
        assert_denied("SELECT tenancy.move_tenant('orga_l2', 'orga_l1')");
        assert_denied("SELECT tenancy.create_tenant('orga_x', parent => 'orga_l1')");
        // Writing into the parent's or a sibling's rows.
        for t in ["orga_o1", "orga_l2"] {
            assert_fails(
                &format!("INSERT INTO tests.orga_docs (tenant_id, body) VALUES ('{t}', 'x')"),
                "42501",
                "row-level security policy",
            );
        }
        assert_eq!(
            count("WITH u AS (UPDATE tests.orga_docs SET body = 'x' WHERE tenant_id <> 'orga_l1' RETURNING 1) SELECT count(*) FROM u"),
            0
        );
        // A view, a SQL function and a plan prepared under the organization, reused by the
        // location, show the location's rows alone.
        run("RESET ROLE; CREATE VIEW tests.orga_v WITH (security_invoker) AS SELECT * FROM tests.orga_docs;
             GRANT SELECT ON tests.orga_v TO orga_app;
             CREATE FUNCTION tests.orga_f() RETURNS bigint LANGUAGE sql STABLE AS 'SELECT count(*) FROM tests.orga_docs';
             SET LOCAL plan_cache_mode = force_generic_plan;");
        as_token("orga", "orga_o1");
        run("PREPARE orga_q AS SELECT string_agg(body, ',' ORDER BY body) FROM tests.orga_docs");
        assert_eq!(text("EXECUTE orga_q"), "l1,l1,l2,l2,l2,o1");
        assert_eq!(count("SELECT count(*) FROM tests.orga_v"), 6);
        as_token("orga", "orga_l1");
        assert_eq!(text("EXECUTE orga_q"), "l1,l1");
        assert_eq!(count("SELECT count(*) FROM tests.orga_v"), 2);
        assert_eq!(count("SELECT tests.orga_f()"), 2);
    }

    #[pg_test]
    fn an_organization_widens_only_the_isolation_equality_and_never_locks_its_locations() {
        orgs("orgw");
        // The owner's own restrictive policy hides rows that name the reader as blocked:
        // widened, `<>` would become "differs from any tenant of the subtree" and show them.
        run("ALTER TABLE tests.orgw_docs ADD COLUMN blocked text;
             UPDATE tests.orgw_docs SET blocked = 'orgw_o1' WHERE body = 'l2';
             CREATE POLICY orgw_block ON tests.orgw_docs AS RESTRICTIVE FOR SELECT
                 USING (blocked IS NULL OR blocked <> (SELECT tenancy.current_tenant()));");
        as_token("orgw", "orgw_o1");
        assert_eq!(bodies("orgw"), "l1,l1,o1");
        // The same shape on another column than the registered one is not widened either.
        run("RESET ROLE; DROP POLICY orgw_block ON tests.orgw_docs;
             UPDATE tests.orgw_docs SET blocked = 'orgw_l1' WHERE body = 'l2';
             CREATE POLICY orgw_same ON tests.orgw_docs AS RESTRICTIVE FOR SELECT
                 USING (body = 'o1' OR blocked = (SELECT tenancy.current_tenant()));");
        as_token("orgw", "orgw_o1");
        assert_eq!(bodies("orgw"), "o1");
        run("RESET ROLE; DROP POLICY orgw_same ON tests.orgw_docs;");
        // FOR UPDATE/SHARE locks rows the context could change: its own, never its locations'.
        as_token("orgw", "orgw_o1");
        assert_eq!(bodies("orgw"), "l1,l1,l2,l2,l2,o1");
        for lock in ["UPDATE", "NO KEY UPDATE", "SHARE", "KEY SHARE"] {
            assert_eq!(
                text(&format!(
                    "SELECT string_agg(body, ',' ORDER BY body) FROM (SELECT body FROM tests.orgw_docs FOR {lock}) s"
                )),
                "o1",
                "{lock}"
            );
        }
    }

    #[pg_test]
    fn pooled_rules_count_companies_not_locations() {
        roles("orgb", &[("app", Tier::App)]);
        // Six tenants of ten people each, every one a sixth of the pool.
        run("SELECT tenancy.create_tenant('orgb_t' || g) FROM generate_series(1, 6) g;
             SELECT tenancy.create_tenant('orgb_ca'), tenancy.create_tenant('orgb_cb');
             CREATE TABLE tests.orgb_pay (tenant_id text, person int, pay numeric);
             INSERT INTO tests.orgb_pay SELECT 'orgb_t' || t, p, 100 + p FROM generate_series(1, 6) t, generate_series(1, 10) p;");
        let shown = "SELECT coalesce(tenancy.guarded_count(person, tenant_id)::text, 'NULL') || ' ' || tenancy.guard_status(person, tenant_id) FROM tests.orgb_pay";
        // Six independent companies: shown.
        assert_eq!(text(shown), "60 ok");
        // The same rows, the six tenants now the locations of two companies: two contributors.
        run("SELECT tenancy.move_tenant('orgb_t' || g, CASE WHEN g <= 3 THEN 'orgb_ca' ELSE 'orgb_cb' END)
               FROM generate_series(1, 6) g");
        assert_eq!(text(shown), "NULL too_few_tenants");
        // Five companies of which one holds two locations: its weight is theirs together, a
        // third of the pool (had persons 1-10 of t1 and t2 merged, it would be a fifth).
        run(
            "SELECT tenancy.move_tenant('orgb_t' || g, NULL) FROM generate_series(1, 6) g;
             SELECT tenancy.move_tenant('orgb_t2', 'orgb_t1');",
        );
        assert_eq!(text(shown), "NULL dominated");
    }

    #[pg_test]
    fn an_organization_aggregates_its_locations_with_min_n_on_people() {
        orgs("orgg");
        run("CREATE TABLE tests.orgg_pay (tenant_id text, person int, pay numeric);
             INSERT INTO tests.orgg_pay VALUES ('orgg_l1', 1, 10), ('orgg_l1', 2, 20), ('orgg_l1', 3, 30),
                                                ('orgg_l2', 4, 40), ('orgg_l2', 5, 50), ('orgg_l2', 5, 55),
                                                ('orgg_m1', 6, 60), ('orgg_m1', 7, 70), ('orgg_m1', 8, 80);
             SELECT tenancy.protect('tests.orgg_pay');
             GRANT SELECT ON tests.orgg_pay TO orgg_app;
             SELECT tenancy.add_pseudonym_secret('orgg_s');");
        // A location alone has three people: suppressed.
        as_token("orgg", "orgg_l1");
        assert_eq!(
            text(
                "SELECT coalesce(tenancy.guarded_count(person)::text, 'NULL') FROM tests.orgg_pay"
            ),
            "NULL"
        );
        let l1 = text("SELECT tenancy.pseudonymize_for_pool('person-1', 'people')");
        // Its organization reads both locations: six rows of five people, shown.
        as_token("orgg", "orgg_o1");
        assert_eq!(
            text("SELECT tenancy.guarded_count(person)::text || ' ' || tenancy.guarded_sum(pay, person)::text FROM tests.orgg_pay"),
            "6 205"
        );
        // Four people of one location would not do: min-N counts people, not rows or tenants.
        assert_eq!(
            text("SELECT coalesce(tenancy.guarded_count(person)::text, 'NULL') FROM tests.orgg_pay WHERE person <> 1"),
            "NULL"
        );
        // Pool pseudonyms stay the tenant's own: neither its organization nor a sibling nor
        // another company reproduces a location's, and a move does not re-key them.
        for t in ["orgg_o1", "orgg_l2", "orgg_m1"] {
            as_token("orgg", t);
            assert_ne!(
                text("SELECT tenancy.pseudonymize_for_pool('person-1', 'people')"),
                l1,
                "{t}"
            );
        }
        run("RESET ROLE; SELECT tenancy.move_tenant('orgg_l1', 'orgg_o2');");
        as_token("orgg", "orgg_l1");
        assert_eq!(
            text("SELECT tenancy.pseudonymize_for_pool('person-1', 'people')"),
            l1
        );
    }

    #[pg_test]
    fn check_reports_a_tree_broken_behind_the_extension() {
        orgs("orgk");
        // The owner edits the registry directly: a cycle o1 -> l1 -> o1, and a chain of five.
        run(
            "UPDATE tenancy.tenants SET parent = 'orgk_l1' WHERE id = 'orgk_o1';
             SELECT tenancy.create_tenant('orgk_d' || g) FROM generate_series(1, 5) g;
             UPDATE tenancy.tenants SET parent = 'orgk_d' || (substr(id, 7)::int - 1)
              WHERE id IN ('orgk_d2', 'orgk_d3', 'orgk_d4', 'orgk_d5');",
        );
        let mine: Vec<Finding> = findings("tests")
            .into_iter()
            .filter(|f| f.rule.starts_with("tenant_tree") && f.object.contains("orgk_"))
            .collect();
        let names: Vec<(String, String)> = mine
            .iter()
            .map(|f| (f.rule.clone(), f.object.clone()))
            .collect();
        assert_eq!(
            names,
            vec![
                (
                    "tenant_tree_cycle".to_string(),
                    "tenant 'orgk_l1'".to_string()
                ),
                (
                    "tenant_tree_too_deep".to_string(),
                    "tenant 'orgk_d5'".to_string()
                ),
            ],
            "{mine:#?}"
        );
        for f in &mine {
            apply_fix("tests", f, || {});
        }
        assert_eq!(
            text("SELECT parent FROM tenancy.tenants WHERE id = 'orgk_d5'"),
            "orgk_d3"
        );
    }
}
