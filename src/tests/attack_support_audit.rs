//! Attack tests for issue 13, classes 5 (support and audit state that can be desynchronised),
//! 8 (locks a tenant can hold against the operator: the two-session part is
//! `tests/system/operator-lock.sh`) and 10 (look-alike names). Each test attacks as the tier
//! named in its comment, through SQL. Conventions as in `tests/mod.rs`: unique names per test
//! (prefix `atk5`/`atk8`/`atk10`), a plain role before asserting anything RLS decides,
//! SQLSTATEs through `pg_temp.try_sql()`.

#[pgrx::pg_schema]
mod tests {
    use pgrx::prelude::*;
    use pgrx::spi::quote_literal;
    use serde_json::json;

    use crate::tests::fixture::*;

    /// Tenants `{p}_a`, `{p}_b`; roles `{p}_app` (app), `{p}_sup` and `{p}_sup2` (support),
    /// `{p}_admin`; a signing key `{p}_k`; a protected table `tests.{p}_docs` with two rows of
    /// a and one of b.
    fn fixture(p: &str) {
        roles(
            p,
            &[
                ("app", Tier::App),
                ("admin", Tier::Admin),
                ("sup", Tier::Support),
                ("sup2", Tier::Support),
            ],
        );
        tenants(p);
        signing_key(p);
        let (a, b) = (format!("{p}_a"), format!("{p}_b"));
        docs_table(
            p,
            "text",
            &[(&a, "a1"), (&a, "a2"), (&b, "b1")],
            &format!("{p}_app, {p}_sup, {p}_sup2"),
        );
    }

    fn alice_token(p: &str, tenant: &str) -> String {
        token(
            p,
            json!({"tenant_id": tenant, "sub": "alice", "exp": epoch_now() + 600}),
        )
    }

    /// Opens a support session on `{p}_a` as `{p}_sup` (left as the current role) and
    /// returns its carrier, as an engineer could copy it with `SHOW tenancy.context`.
    fn open_support(p: &str) -> String {
        run(&format!("SET LOCAL ROLE {p}_sup"));
        run(&format!(
            "SELECT tenancy.begin_support('{p}_a', 'ticket 13', 10)"
        ));
        text("SELECT current_setting('tenancy.context')")
    }

    fn replay(carrier: &str) {
        run(&format!(
            "SELECT set_config('tenancy.context', {}, false)",
            quote_literal(carrier)
        ));
    }

    fn support_rows(p: &str, event: &str) -> i64 {
        count(&format!(
            "SELECT count(*) FROM tenancy.audit_log
              WHERE event = '{event}' AND (tenant_id = '{p}_a' OR detail->>'tenant' = '{p}_a')"
        ))
    }

    // ---- class 5: a support carrier is only as alive as its session ----

    /// Support engineer: a carrier saved before end_support() is dead after it, in the same
    /// session; ending it again records nothing.
    #[pg_test]
    fn atk5_carrier_saved_before_end_support_is_dead_after_it() {
        let p = "atk5_end";
        fixture(p);
        let saved = open_support(p);
        assert_eq!(count(&format!("SELECT count(*) FROM tests.{p}_docs")), 2);
        run("SELECT tenancy.end_support()");
        replay(&saved);
        assert_fails(
            &format!("SELECT count(*) FROM tests.{p}_docs"),
            "28000",
            "support session has ended",
        );
        assert_fails(
            "SELECT tenancy.current_tenant()",
            "28000",
            "support session has ended",
        );
        assert_fails(
            &format!("INSERT INTO tests.{p}_docs (body) VALUES ('late')"),
            "28000",
            "support session has ended",
        );
        // The trail cannot be made to say the session ended twice.
        assert_fails("SELECT tenancy.end_support()", "55000", "already ended");
        run("RESET ROLE; SELECT set_config('tenancy.context', '', false)");
        assert_eq!(support_rows(p, "support_ended"), 1);
        assert_eq!(
            count(&format!(
                "SELECT count(*) FROM tenancy.support_sessions
                  WHERE tenant = '{p}_a' AND ended_at IS NOT NULL"
            )),
            1
        );
    }

    /// Support engineer: the carrier is already verified and cached in this backend when the
    /// session is ended elsewhere (another backend's end_support() is this UPDATE plus the
    /// registry invalidation its trigger sends); the cached verification does not outlive it.
    #[pg_test]
    fn atk5_a_session_ended_by_another_backend_stops_a_cached_carrier() {
        let p = "atk5_other";
        fixture(p);
        let saved = open_support(p);
        assert_eq!(count(&format!("SELECT count(*) FROM tests.{p}_docs")), 2);
        run("RESET ROLE");
        run(&format!(
            "UPDATE tenancy.support_sessions SET ended_at = now() WHERE tenant = '{p}_a'"
        ));
        run(&format!("SET LOCAL ROLE {p}_sup"));
        assert_fails(
            &format!("SELECT count(*) FROM tests.{p}_docs"),
            "28000",
            "support session has ended",
        );
        // A fresh copy of the same carrier is no better.
        replay(&saved);
        assert_fails(
            "SELECT tenancy.context()",
            "28000",
            "support session has ended",
        );
    }

    /// App role (and another support engineer): a support carrier copied into another
    /// role's session does not work there.
    #[pg_test]
    fn atk5_a_support_carrier_works_only_for_the_role_that_opened_it() {
        let p = "atk5_role";
        fixture(p);
        let saved = open_support(p);
        run("RESET ROLE; SELECT set_config('tenancy.context', '', false)");
        for role in ["app", "sup2"] {
            run(&format!("SET LOCAL ROLE {p}_{role}"));
            replay(&saved);
            assert_fails(
                &format!("SELECT count(*) FROM tests.{p}_docs"),
                "28000",
                "belongs to another role",
            );
            if role == "app" {
                assert_denied("SELECT tenancy.end_support()");
            } else {
                assert_fails(
                    "SELECT tenancy.end_support()",
                    "55000",
                    "opened by another role",
                );
            }
            run("RESET ROLE; SELECT set_config('tenancy.context', '', false)");
        }
        // The session is still open for its own role, and nobody else ended it.
        run(&format!("SET LOCAL ROLE {p}_sup"));
        replay(&saved);
        assert_eq!(count(&format!("SELECT count(*) FROM tests.{p}_docs")), 2);
        run("RESET ROLE");
        assert_eq!(support_rows(p, "support_ended"), 0);
    }

    /// Admin revokes the support grant: the open session stops from the engineer's next
    /// transaction (the end of a transaction that used a support context makes the next one
    /// verify it again, which is what `bump_generation` stands for here: a pg_test is one
    /// transaction).
    #[pg_test]
    fn atk5_a_support_carrier_stops_when_the_role_loses_the_grant() {
        let p = "atk5_revoke";
        fixture(p);
        open_support(p);
        assert_eq!(count(&format!("SELECT count(*) FROM tests.{p}_docs")), 2);
        assert!(crate::registry::cache::any_support_seen());
        run("RESET ROLE");
        run(&format!(
            "REVOKE EXECUTE ON FUNCTION tenancy.begin_support(text, text, integer) FROM {p}_sup"
        ));
        crate::registry::cache::bump_generation();
        run(&format!("SET LOCAL ROLE {p}_sup"));
        assert_fails(
            &format!("SELECT count(*) FROM tests.{p}_docs"),
            "28000",
            "no longer holds the support grant",
        );
    }

    /// Support engineer: after the session's expiry and after the tenant's deactivation,
    /// a saved carrier is refused like any other context.
    #[pg_test]
    fn atk5_a_support_carrier_stops_at_expiry_and_at_deactivation() {
        let p = "atk5_exp";
        fixture(p);
        let saved = open_support(p);
        run("RESET ROLE");
        run("SELECT tenancy.deactivate_tenant('atk5_exp_a')");
        run(&format!("SET LOCAL ROLE {p}_sup"));
        replay(&saved);
        assert_fails(
            &format!("SELECT count(*) FROM tests.{p}_docs"),
            "28000",
            "deactivated",
        );
        run("RESET ROLE; SELECT tenancy.reactivate_tenant('atk5_exp_a')");
        // The same session's carrier, past its expiry (made, not waited for: statement
        // clocks do not move inside one test; tests/system/audit-concurrency.sh waits).
        let sid = text(&format!(
            "SELECT id FROM tenancy.support_sessions WHERE tenant = '{p}_a'"
        ));
        let now = crate::registry::cache::statement_now();
        run(&format!("SET LOCAL ROLE {p}_sup"));
        crate::context::tenant_context::install(
            tenancy_core::carrier::Context {
                tenant: format!("{p}_a"),
                actor: Some(format!("{p}_sup")),
                roles: vec![],
                source: tenancy_core::carrier::Source::Support,
                expires_at: Some(now - 1),
                api_key_id: None,
                kid: None,
                support_reason: Some("ticket 13".into()),
                support_session: Some(sid),
                job: None,
            },
            None,
            false,
        );
        assert_fails(
            &format!("SELECT count(*) FROM tests.{p}_docs"),
            "28000",
            "expired",
        );
    }

    /// Decided and documented (issue 21): clearing the context ends the session on the record
    /// (`support_ended`, how `clear_context`), and a copy of the carrier is dead after it.
    #[pg_test]
    fn atk5_clear_context_ends_the_session_on_the_record() {
        let p = "atk5_clear";
        fixture(p);
        let saved = open_support(p);
        run("SELECT tenancy.clear_context()");
        assert_eq!(one::<String>("SELECT tenancy.current_tenant()"), None);
        replay(&saved);
        assert_fails(
            &format!("SELECT count(*) FROM tests.{p}_docs"),
            "28000",
            "support session has ended",
        );
        run("RESET ROLE");
        assert_eq!(
            one::<bool>(&format!(
                "SELECT ended_at IS NOT NULL FROM tenancy.support_sessions WHERE tenant = '{p}_a'"
            )),
            Some(true)
        );
        assert_eq!(support_rows(p, "support_ended"), 1);
    }

    // ---- class 5: a write under support is recorded whatever the statement does to the
    // context before its end ----

    fn support_writes(p: &str) -> i64 {
        count(&format!(
            "SELECT count(*) FROM tenancy.audit_log
              WHERE tenant_id = '{p}_a' AND event = 'support_write'"
        ))
    }

    /// Support engineer: a DELETE whose own WHERE clause (a CTE) clears the context after
    /// the isolation policy has read it.
    #[pg_test]
    fn atk5_a_cte_that_clears_the_context_does_not_hide_a_support_write() {
        let p = "atk5_cte";
        fixture(p);
        let saved = open_support(p);
        run(&format!(
            "WITH c AS (SELECT set_config('tenancy.context', '', false) AS v)
             DELETE FROM tests.{p}_docs d
              WHERE d.body = 'a1' AND EXISTS (SELECT 1 FROM c WHERE c.v <> d.body)"
        ));
        replay(&saved);
        run(&format!(
            "WITH c AS (SELECT tenancy.clear_context()::text AS v)
             DELETE FROM tests.{p}_docs d
              WHERE d.body = 'a2' AND EXISTS (SELECT 1 FROM c WHERE c.v IS DISTINCT FROM d.body)"
        ));
        run("RESET ROLE");
        assert_eq!(
            count(&format!(
                "SELECT count(*) FROM tests.{p}_docs WHERE tenant_id = '{p}_a'"
            )),
            0,
            "both rows were deleted under support"
        );
        assert_eq!(support_writes(p), 2);
    }

    /// Support engineer: a volatile function in the statement that runs `RESET
    /// tenancy.context` (which no check hook sees) after the first row.
    #[pg_test]
    fn atk5_a_reset_inside_a_function_does_not_hide_a_support_write() {
        let p = "atk5_reset";
        fixture(p);
        run(
            "CREATE FUNCTION pg_temp.atk5_body(n int) RETURNS text LANGUAGE plpgsql AS $$
             BEGIN
                 IF n = 2 THEN EXECUTE 'RESET tenancy.context'; END IF;
                 RETURN 'row ' || n;
             END $$",
        );
        open_support(p);
        run(&format!(
            "INSERT INTO tests.{p}_docs (tenant_id, body)
             SELECT '{p}_a', pg_temp.atk5_body(n) FROM generate_series(1, 3) n"
        ));
        assert_eq!(one::<String>("SELECT tenancy.current_tenant()"), None);
        run("RESET ROLE");
        assert_eq!(
            count(&format!(
                "SELECT count(*) FROM tests.{p}_docs WHERE body LIKE 'row %'"
            )),
            3
        );
        assert_eq!(support_writes(p), 1);
    }

    /// Support engineer (who also holds the app grant): the statement swaps the support
    /// context for a token's context of the same tenant before it ends.
    #[pg_test]
    fn atk5_switching_to_a_token_context_does_not_hide_a_support_write() {
        let p = "atk5_swap";
        fixture(p);
        let tok = alice_token(p, "atk5_swap_a");
        open_support(p);
        run(&format!(
            "WITH c AS (SELECT tenancy.set_context({}, false)::text AS v)
             DELETE FROM tests.{p}_docs d
              WHERE d.body = 'a1' AND EXISTS (SELECT 1 FROM c WHERE c.v <> d.body)",
            quote_literal(&tok)
        ));
        assert_eq!(
            one::<String>("SELECT tenancy.context()->>'source'"),
            Some("token".into())
        );
        run("RESET ROLE");
        assert_eq!(support_writes(p), 1);
    }

    /// Support engineer: a function whose SET clause would carry (or drop) the support
    /// carrier for the length of a call cannot even be created; a write inside a function
    /// that installs the carrier with set_config() and removes it again is recorded.
    #[pg_test]
    fn atk5_a_function_set_clause_does_not_hide_a_support_write() {
        let p = "atk5_set";
        fixture(p);
        let saved = open_support(p);
        assert_fails(
            &format!(
                "CREATE FUNCTION pg_temp.atk5_write() RETURNS void LANGUAGE sql
                 SET tenancy.context = {} AS $$ INSERT INTO tests.{p}_docs (body) VALUES ('x') $$",
                quote_literal(&saved)
            ),
            "22023",
            "cannot be stored as a default",
        );
        // Removes the carrier without ending the session (clear_context() would end it).
        run("SELECT set_config('tenancy.context', '', false)");
        run(&format!(
            "CREATE FUNCTION pg_temp.atk5_write(c text) RETURNS void LANGUAGE plpgsql AS $$
             BEGIN
                 PERFORM set_config('tenancy.context', c, false);
                 INSERT INTO tests.{p}_docs (body) VALUES ('via function');
                 PERFORM set_config('tenancy.context', '', false);
             END $$"
        ));
        run(&format!(
            "SELECT pg_temp.atk5_write({})",
            quote_literal(&saved)
        ));
        assert_eq!(one::<String>("SELECT tenancy.current_tenant()"), None);
        run("RESET ROLE");
        assert_eq!(support_writes(p), 1);
    }

    // ---- class 10: look-alike names ----

    /// App role with a valid token: no event beside a reserved one that reads like it, and no
    /// event name that differs from another only in what a reader cannot see.
    #[pg_test]
    fn atk10_audit_refuses_look_alikes_of_reserved_and_other_events() {
        let p = "atk10_ev";
        fixture(p);
        let tok = alice_token(p, "atk10_ev_a");
        run(&format!("SET LOCAL ROLE {p}_app"));
        run(&set_context_sql(&tok));
        for event in [
            "'support_ended '",
            r"E'support_ended\u00a0'",
            r"E'support_ended\u200b'",
            r"E'\u200dsupport_ended'",
            "'Support_Ended'",
            "'SUPPORT_ENDED'",
            r"E'support_end\u0435d'",
            r"E'support_ended\n'",
            r"E'support_ended\u202e'",
            r"E'invoice.approved\ufeff'",
            "'invoice approved'",
        ] {
            assert_fails(
                &format!("SELECT tenancy.audit({event})"),
                "22023",
                "event must be",
            );
        }
        for event in [
            "support.ended",
            "support-ended",
            "support:ended",
            "_support_ended",
            "support__ended",
            "tenant.deactivated",
            "supp0rt_ended",
            "api_key_rev0ked",
            "tenant_deact1vated",
            "5upport_ended",
        ] {
            assert_fails(
                &format!("SELECT tenancy.audit('{event}')"),
                "22023",
                "reserved",
            );
        }
        run("SELECT tenancy.audit('invoice.approved'), tenancy.audit('support.ticket:42-closed')");
        run("RESET ROLE");
        assert_eq!(
            count(
                "SELECT count(*) FROM tenancy.audit_log
                  WHERE tenant_id = 'atk10_ev_a' AND seq > 1"
            ),
            2
        );
    }

    /// Support engineer, trusted service and admin: the free-text names they give (support
    /// reason, actor, roles, API key label, plan) refuse invisible and control characters,
    /// whitespace other than inner spaces, and spaces at either end.
    #[pg_test]
    fn atk10_names_a_reader_or_a_check_relies_on_refuse_invisible_characters() {
        let p = "atk10_names";
        fixture(p);
        run(&format!(
            "CREATE ROLE {p}_trusted NOLOGIN; SELECT tenancy.grant_trusted('{p}_trusted')"
        ));
        let hidden = [
            r"\u200b", r"\u200d", r"\u2060", r"\ufeff", r"\u202e", r"\u00a0", r"\u3000", r"\u00ad",
            r"\ufe0f",
        ];
        run(&format!("SET LOCAL ROLE {p}_sup"));
        for h in hidden {
            assert_fails(
                &format!("SELECT tenancy.begin_support('{p}_a', E'ticket{h}13', 5)"),
                "22023",
                "needs a reason",
            );
        }
        run(&format!("RESET ROLE; SET LOCAL ROLE {p}_trusted"));
        for h in hidden {
            assert_fails(
                &format!("SELECT tenancy.set_tenant('{p}_a', E'alice{h}')"),
                "22023",
                "actor must be",
            );
            assert_fails(
                &format!("SELECT tenancy.set_tenant('{p}_a', 'alice', ARRAY[E'admin{h}'])"),
                "22023",
                "roles must be",
            );
        }
        assert_fails(
            &format!("SELECT tenancy.set_tenant('{p}_a', 'alice ')"),
            "22023",
            "actor must be",
        );
        run(&format!("RESET ROLE; SET LOCAL ROLE {p}_admin"));
        for h in hidden {
            assert_fails(
                &format!("SELECT tenancy.create_api_key('{p}_a', E'ci-deploy{h}')"),
                "22023",
                "label must be",
            );
            assert_fails(
                &format!("SELECT tenancy.set_plan(E'gold{h}', '{{}}')"),
                "22023",
                "plan names are",
            );
            assert_fails(
                &format!("SELECT tenancy.set_tenant_plan('{p}_a', E'gold{h}')"),
                "22023",
                "plan names are",
            );
            assert_fails(
                &format!("SELECT tenancy.create_tenant('{p}_c', plan => E'gold{h}')"),
                "22023",
                "plan names are",
            );
        }
        for name in ["'gold '", "' gold'", r"E'gold\t'"] {
            assert_fails(
                &format!("SELECT tenancy.set_tenant_plan('{p}_a', {name})"),
                "22023",
                "plan names are",
            );
        }
        // Ordinary names in any script still work.
        run(&format!(
            "SELECT tenancy.set_plan('gold plus', '{{}}'), tenancy.set_tenant_plan('{p}_a', 'gold plus'),
                    tenancy.create_api_key('{p}_a', 'Zürich – CI deploy')"
        ));
    }

    /// A token whose subject or roles carry an invisible character is refused: its actor
    /// would be recorded as a look-alike of another, and a role as a look-alike of a role
    /// `has_role()` checks.
    #[pg_test]
    fn atk10_tokens_with_look_alike_subjects_or_roles_are_refused() {
        let p = "atk10_tok";
        fixture(p);
        let now = epoch_now();
        for claims in [
            json!({"tenant_id": "atk10_tok_a", "sub": "alice\u{200b}", "exp": now + 60}),
            json!({"tenant_id": "atk10_tok_a", "sub": "alice ", "exp": now + 60}),
            json!({"tenant_id": "atk10_tok_a", "sub": "\u{202e}ecila", "exp": now + 60}),
            json!({"tenant_id": "atk10_tok_a", "roles": ["admin\u{2060}"], "exp": now + 60}),
            json!({"tenant_id": "atk10_tok_a", "roles": ["hr\u{feff}"], "exp": now + 60}),
        ] {
            let tok = token(p, claims);
            run(&format!("SET LOCAL ROLE {p}_app"));
            assert_fails(
                &set_context_sql(&tok),
                "28000",
                "has the wrong type or shape",
            );
            run("RESET ROLE");
        }
    }
}
