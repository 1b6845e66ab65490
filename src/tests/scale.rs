//! `#[pg_test]`s for `scale`: without Citus (every PostgreSQL 18 cluster, and 15 without it)
//! the routing hook changes nothing; Citus itself is exercised by tests/system/citus-routing.sh.

#[pgrx::pg_schema]
mod tests {
    use pgrx::prelude::*;

    use crate::tests::fixture::*;

    /// The lines of `EXPLAIN (VERBOSE, COSTS OFF) q`.
    fn plan(q: &str) -> String {
        Spi::connect(|c| {
            c.select(&format!("EXPLAIN (VERBOSE, COSTS OFF) {q}"), None, &[])?
                .map(|r| r.get::<String>(1).map(Option::unwrap_or_default))
                .collect::<Result<Vec<_>, pgrx::spi::Error>>()
        })
        .unwrap_or_else(|e| panic!("EXPLAIN {q}: {e}"))
        .join("\n")
    }

    #[pg_test]
    fn routing_is_inert_without_citus_and_only_a_superuser_turns_it_off() {
        install_try_sql();
        assert_eq!(text("SHOW tenancy.citus_routing"), "on");
        // The bare-call policy protect() writes for distributed tables, on a table that is not
        // distributed: nothing may be added to its queries.
        run(
            "CREATE ROLE rt_app NOLOGIN; SELECT tenancy.grant_app('rt_app');
             SELECT tenancy.create_tenant('rt_a'), tenancy.create_tenant('rt_b');
             CREATE TABLE tests.rt_t (tenant_id text NOT NULL, v text);
             INSERT INTO tests.rt_t VALUES ('rt_a', 'a1'), ('rt_a', 'a2'), ('rt_b', 'b1');
             ALTER TABLE tests.rt_t ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
             CREATE POLICY rt_isolation ON tests.rt_t USING (tenant_id = tenancy.current_tenant());
             GRANT USAGE ON SCHEMA tests TO rt_app;
             GRANT SELECT ON tests.rt_t TO rt_app;
             SELECT tenancy.set_tenant('rt_a');
             SET LOCAL ROLE rt_app;",
        );
        assert_eq!(count("SELECT count(*) FROM tests.rt_t"), 2);
        let p = plan("SELECT v FROM tests.rt_t WHERE v <> 'x'");
        assert!(p.contains("current_tenant()"), "{p}");
        assert!(!p.contains("'rt_a'"), "a tenant constant was added:\n{p}");
        assert_fails(
            "SET tenancy.citus_routing = off",
            "42501",
            "tenancy.citus_routing",
        );
    }
}
