//! Issue 21, a DBA's first week: support reads and endings on the record, the tenant index
//! after scope_unique, renaming and dropping tenants, platform rows, the checker's safe fixes.
//! Conventions as in `tests.rs`: unique names per test (prefix `dba`), a plain role before
//! asserting anything RLS decides, SQLSTATEs through `pg_temp.try_sql()`.

#[pgrx::pg_schema]
mod tests {
    use pgrx::prelude::*;
    use pgrx::spi::quote_literal;

    use crate::tests::fixture::*;

    /// Tenants `{p}_a`, `{p}_b`; roles `{p}_app` (app), `{p}_sup` (support), `{p}_admin`;
    /// a protected table `tests.{p}_docs` with two rows of `{p}_a` and one of `{p}_b`.
    fn fixture(p: &str) {
        install_try_sql();
        run(&format!(
            "CREATE ROLE {p}_app NOLOGIN; SELECT tenancy.grant_app('{p}_app');
             CREATE ROLE {p}_admin NOLOGIN; SELECT tenancy.grant_admin('{p}_admin');
             CREATE ROLE {p}_sup NOLOGIN; SELECT tenancy.grant_support('{p}_sup');
             CREATE ROLE {p}_trusted NOLOGIN; SELECT tenancy.grant_trusted('{p}_trusted');
             GRANT USAGE ON SCHEMA tests TO {p}_app, {p}_admin, {p}_sup, {p}_trusted;
             SELECT tenancy.create_tenant('{p}_a'), tenancy.create_tenant('{p}_b');
             CREATE TABLE tests.{p}_docs (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                                          tenant_id text, body text);
             SELECT tenancy.protect('tests.{p}_docs');
             INSERT INTO tests.{p}_docs (tenant_id, body)
                  VALUES ('{p}_a', 'a1'), ('{p}_a', 'a2'), ('{p}_b', 'b1');
             GRANT SELECT, INSERT, UPDATE, DELETE ON tests.{p}_docs
                TO {p}_app, {p}_sup, {p}_trusted;"
        ));
    }

    fn open_support(p: &str) -> String {
        run(&format!("SET LOCAL ROLE {p}_sup"));
        run(&format!(
            "SELECT tenancy.begin_support('{p}_a', 'ticket 21', 10)"
        ));
        text("SELECT current_setting('tenancy.context')")
    }

    fn replay(carrier: &str) {
        run(&format!(
            "SELECT set_config('tenancy.context', {}, false)",
            quote_literal(carrier)
        ));
    }

    /// (rows, rolled_back) of every support_read in `{p}_a`'s chain, in order; read as the
    /// superuser.
    fn reads(p: &str) -> Vec<(Option<i64>, bool)> {
        Spi::connect(|c| {
            c.select(
                &format!(
                    "SELECT (detail->>'rows')::bigint, coalesce((detail->>'rolled_back')::boolean, false)
                       FROM tenancy.audit_log
                      WHERE tenant_id = '{p}_a' AND event = 'support_read'
                        AND detail->>'table' = 'tests.{p}_docs'
                        AND support->>'reason' = 'ticket 21'
                      ORDER BY seq"
                ),
                None,
                &[],
            )?
            .map(|r| Ok((r.get::<i64>(1)?, r.get::<bool>(2)?.unwrap_or(false))))
            .collect::<Result<Vec<_>, pgrx::spi::Error>>()
        })
        .unwrap()
    }

    fn ended_rows(p: &str) -> Vec<String> {
        Spi::connect(|c| {
            c.select(
                &format!(
                    "SELECT detail->>'how' FROM tenancy.audit_log
                      WHERE tenant_id = '{p}_a' AND event = 'support_ended' ORDER BY seq"
                ),
                None,
                &[],
            )?
            .map(|r| r.get::<String>(1).map(Option::unwrap_or_default))
            .collect::<Result<Vec<_>, pgrx::spi::Error>>()
        })
        .unwrap()
    }

    // ---- item 10: support reads and endings ----

    /// Support engineer: every statement that reads a protected table leaves one row per table
    /// with the rows it returned; an app context's reads leave none.
    #[pg_test]
    fn dba_support_reads_are_recorded_per_statement_with_row_counts() {
        let p = "dba_rd";
        fixture(p);
        open_support(p);
        assert_eq!(count(&format!("SELECT count(*) FROM tests.{p}_docs")), 2);
        assert_eq!(
            count(&format!(
                "SELECT count(*) FROM tests.{p}_docs WHERE body = 'a1'"
            )),
            1
        );
        run("RESET ROLE");
        assert_eq!(reads(p), vec![(Some(2), false), (Some(1), false)]);
        // A trusted job's reads of the same tenant are not support reads.
        run(&format!(
            "SET LOCAL ROLE {p}_trusted; SELECT tenancy.set_tenant('{p}_b')"
        ));
        assert_eq!(count(&format!("SELECT count(*) FROM tests.{p}_docs")), 1);
        run("RESET ROLE");
        assert_eq!(
            count(&format!(
                "SELECT count(*) FROM tenancy.audit_log
                  WHERE tenant_id = '{p}_b' AND event = 'support_read'"
            )),
            0
        );
    }

    /// Support engineer: the ways to read without a row. A CTE that clears the context, a
    /// function that reads for you, EXPLAIN ANALYZE: each leaves its row. A read whose
    /// subtransaction rolls back (an exception block) is written again by the next statement,
    /// marked rolled_back; audit() cannot forge one.
    #[pg_test]
    fn dba_a_support_engineer_cannot_read_without_a_row_or_suppress_it() {
        let p = "dba_sup";
        fixture(p);
        run(&format!(
            "CREATE FUNCTION tests.{p}_peek() RETURNS bigint LANGUAGE sql
                 AS 'SELECT count(*) FROM tests.{p}_docs';
             GRANT EXECUTE ON FUNCTION tests.{p}_peek() TO {p}_sup"
        ));
        let saved = open_support(p);
        assert_eq!(
            count(&format!(
                "WITH c AS (SELECT set_config('tenancy.context', '', false) AS v)
                 SELECT count(*) FROM tests.{p}_docs d
                  WHERE EXISTS (SELECT 1 FROM c WHERE c.v IS DISTINCT FROM d.body)"
            )),
            2
        );
        replay(&saved);
        assert_eq!(reads(p).len(), 1, "the CTE");
        assert_eq!(one::<i64>(&format!("SELECT tests.{p}_peek()")), Some(2));
        assert_eq!(reads(p).len(), 2, "the function");
        run(&format!(
            "EXPLAIN (ANALYZE, COSTS OFF) SELECT * FROM tests.{p}_docs"
        ));
        assert_eq!(reads(p).len(), 3, "EXPLAIN ANALYZE");
        run(&format!(
            "DO $$ BEGIN
                 PERFORM count(*) FROM tests.{p}_docs;
                 RAISE EXCEPTION 'undo';
             EXCEPTION WHEN raise_exception THEN NULL;
             END $$"
        ));
        // The next statement of the backend writes the rolled-back read again.
        run("SELECT 1");
        assert_fails(
            "SELECT tenancy.audit('support_read', '{\"rows\": 0}')",
            "22023",
            "reserved",
        );
        run("RESET ROLE");
        let r = reads(p);
        // The exception block's own row went with its subtransaction; the read is written
        // again, marked.
        assert_eq!(r.len(), 4, "{r:?}");
        assert_eq!(r[0], (Some(2), false), "the CTE that cleared the context");
        assert_eq!(r[1], (Some(2), false), "the function");
        assert_eq!(r[2], (Some(2), false), "EXPLAIN ANALYZE");
        assert_eq!(r[3], (Some(2), true), "the rolled-back read, written again");
    }

    /// Support engineer: clear_context() ends the session on the record, and a copy of the
    /// carrier is dead after it.
    #[pg_test]
    fn dba_clear_context_ends_a_support_session_on_the_record() {
        let p = "dba_clr";
        fixture(p);
        let saved = open_support(p);
        run("SELECT tenancy.clear_context()");
        replay(&saved);
        assert_fails(
            &format!("SELECT count(*) FROM tests.{p}_docs"),
            "28000",
            "support session has ended",
        );
        run("RESET ROLE");
        assert_eq!(ended_rows(p), vec!["clear_context".to_string()]);
        assert_eq!(
            one::<bool>(&format!(
                "SELECT ended_at IS NOT NULL AND end_recorded FROM tenancy.support_sessions
                  WHERE tenant = '{p}_a'"
            )),
            Some(true)
        );
    }

    /// Admin: endings nobody was present for (the role lost the grant, the expiry) get their
    /// support_ended row at the next sweep, once each; end_support() records its own.
    #[pg_test]
    fn dba_endings_nobody_saw_are_recorded_at_the_next_sweep() {
        let p = "dba_swp";
        fixture(p);
        open_support(p);
        run("RESET ROLE");
        run(&format!(
            "REVOKE EXECUTE ON FUNCTION tenancy.begin_support(text, text, integer) FROM {p}_sup"
        ));
        run(&format!("SET LOCAL ROLE {p}_admin"));
        assert!(one::<i64>("SELECT tenancy.close_support_sessions()").unwrap() >= 1);
        run("RESET ROLE");
        assert_eq!(ended_rows(p), vec!["grant_lost".to_string()]);
        run(&format!(
            "GRANT EXECUTE ON FUNCTION tenancy.begin_support(text, text, integer) TO {p}_sup"
        ));
        open_support(p);
        run("RESET ROLE");
        // The clock passing the session's expiry, without waiting for it.
        run(&format!(
            "UPDATE tenancy.support_sessions SET expires_at = clock_timestamp() - interval '1 second'
              WHERE tenant = '{p}_a' AND ended_at IS NULL"
        ));
        run(&format!("SET LOCAL ROLE {p}_admin"));
        run("SELECT tenancy.close_support_sessions()");
        run("SELECT tenancy.close_support_sessions()");
        run("RESET ROLE");
        assert_eq!(
            ended_rows(p),
            vec!["grant_lost".to_string(), "expired".to_string()]
        );
        open_support(p);
        run("SELECT tenancy.end_support()");
        run("RESET ROLE");
        assert_eq!(
            ended_rows(p),
            vec![
                "grant_lost".to_string(),
                "expired".to_string(),
                "end_support".to_string()
            ]
        );
        // The app role cannot run the sweep (it writes every tenant's chain).
        run(&format!("SET LOCAL ROLE {p}_app"));
        assert_fails("SELECT tenancy.close_support_sessions()", "42501", "");
    }
}
