//! `#[pg_test]`s for the audit trail, support access and refusal counters. Same conventions as
//! `tests/mod.rs`: unique names per test (prefix `aud`/`sup`), a plain role before asserting
//! anything RLS decides, SQLSTATEs through `pg_temp.try_sql()`. The concurrent-writer and
//! outside-verifier checks are in `tests/system/audit-concurrency.sh`.

#[pgrx::pg_schema]
mod tests {
    use pgrx::prelude::*;
    use pgrx::spi::quote_literal;
    use serde_json::json;
    use tenancy_core::carrier::{Context, Source};

    use crate::tests::fixture::*;

    /// Tenants `{p}_a`, `{p}_b`; roles `{p}_app` (app), `{p}_trusted`, `{p}_admin`,
    /// `{p}_sup` (support); a signing key `{p}_k`; a protected table `tests.{p}_docs`.
    fn fixture(p: &str) {
        roles(
            p,
            &[
                ("app", Tier::App),
                ("trusted", Tier::Trusted),
                ("admin", Tier::Admin),
                ("sup", Tier::Support),
            ],
        );
        tenants(p);
        signing_key(p);
        docs_table(p, "text", &[], &format!("{p}_app, {p}_trusted, {p}_sup"));
    }

    fn audit_token(p: &str, tenant: &str, sub: &str) -> String {
        token(
            p,
            json!({"tenant_id": tenant, "sub": sub, "roles": ["hr"], "exp": epoch_now() + 600}),
        )
    }

    fn as_tenant(p: &str, tenant: &str, sub: &str) {
        let tok = audit_token(p, tenant, sub);
        run(&format!("SET LOCAL ROLE {p}_app"));
        run(&set_context_sql(&tok));
    }

    fn verify(tenant: &str) -> (bool, i64, Option<i64>) {
        Spi::connect(|c| {
            let t = c.select(
                "SELECT ok, checked, first_bad_id FROM tenancy.verify_audit($1)",
                None,
                &[tenant.into()],
            )?;
            let r = t.first();
            Ok::<_, pgrx::spi::Error>((
                r.get::<bool>(1)?.unwrap(),
                r.get::<i64>(2)?.unwrap(),
                r.get::<i64>(3)?,
            ))
        })
        .unwrap()
    }

    #[pg_test]
    fn audit_rows_are_stamped_from_the_verified_context() {
        let p = "aud_stamp";
        fixture(p);
        run(&format!("SET LOCAL ROLE {p}_app"));
        assert_fails("SELECT tenancy.audit('x')", "55000", "no tenant context");
        run("RESET ROLE");
        as_tenant(p, "aud_stamp_a", "alice");
        // What the caller passes is only event and detail: a tenant or actor inside the
        // detail is data, not the row's tenant or actor.
        let id = one::<i64>(
            "SELECT tenancy.audit('invoice.approved', '{\"n\": 1, \"tenant_id\": \"aud_stamp_b\", \"actor\": \"mallory\"}')",
        )
        .unwrap();
        let row = one::<pgrx::JsonB>(&format!(
            "SELECT jsonb_build_object('tenant', tenant_id, 'actor', actor, 'roles', roles,
                    'support', support, 'event', event, 'detail', detail,
                    'now', at >= now() AND at <= clock_timestamp(), 'txid', txid = pg_current_xact_id(),
                    'linked', length(hash) = 32 AND length(prev_hash) = 32)
               FROM tenancy.audit_log WHERE id = {id}"
        ))
        .expect("the tenant reads its new row")
        .0;
        assert_eq!(
            row,
            json!({"tenant": "aud_stamp_a", "actor": "alice", "roles": ["hr"], "support": null,
                   "event": "invoice.approved",
                   "detail": {"n": 1, "tenant_id": "aud_stamp_b", "actor": "mallory"},
                   "now": true, "txid": true, "linked": true})
        );
        assert_fails("SELECT tenancy.audit('x', '[1]')", "22023", "jsonb object");
        assert_fails("SELECT tenancy.audit('')", "22023", "event must be");
        assert_fails("SELECT tenancy.audit(NULL)", "22023", "must not be NULL");
        assert_fails(
            "SELECT * FROM tenancy.verify_audit(NULL)",
            "22023",
            "must not be NULL",
        );
        assert_fails(
            &format!("SELECT tenancy.audit({})", quote_literal("e".repeat(201))),
            "22023",
            "event must be",
        );
        // No direct way in: no INSERT grant, and the head table is not even readable.
        assert_denied("INSERT INTO tenancy.audit_log (tenant_id, seq, at, txid, roles, event, detail, prev_hash, hash)
             VALUES ('aud_stamp_a', 99, now(), pg_current_xact_id(), '{}', 'forged', '{}', '\\x00', '\\x00')");
        assert_denied("SELECT * FROM tenancy.audit_heads");
        assert_eq!(verify("aud_stamp_a"), (true, 2, None));
    }

    #[pg_test]
    fn a_callers_search_path_cannot_forge_time_or_position() {
        let p = "aud_path";
        fixture(p);
        run(&format!(
            "CREATE SCHEMA {p}_evil AUTHORIZATION {p}_app;
             SET LOCAL ROLE {p}_app;
             CREATE FUNCTION {p}_evil.now() RETURNS timestamptz LANGUAGE sql AS $$ SELECT '2000-01-01'::timestamptz $$;
             CREATE FUNCTION {p}_evil.to_timestamp(float8) RETURNS timestamptz LANGUAGE sql AS $$ SELECT '2000-01-01'::timestamptz $$;
             CREATE FUNCTION {p}_evil.clock_timestamp() RETURNS timestamptz LANGUAGE sql AS $$ SELECT '2000-01-01'::timestamptz $$;
             CREATE FUNCTION {p}_evil.nextval(regclass) RETURNS bigint LANGUAGE sql AS $$ SELECT 1::bigint $$;
             CREATE FUNCTION {p}_evil.pg_current_xact_id() RETURNS xid8 LANGUAGE sql AS $$ SELECT '1'::xid8 $$;
             RESET ROLE"
        ));
        as_tenant(p, "aud_path_a", "alice");
        run(&format!(
            "SET LOCAL search_path = {p}_evil, pg_catalog, public"
        ));
        let id = one::<i64>("SELECT tenancy.audit('e')").unwrap();
        run("RESET search_path");
        assert!(id > 1);
        assert_eq!(
            one::<bool>(&format!(
                "SELECT at >= now() AND at <= clock_timestamp() AND txid = pg_current_xact_id() FROM tenancy.audit_log WHERE id = {id}"
            )),
            Some(true)
        );
        assert_eq!(verify("aud_path_a"), (true, 2, None));
    }

    #[pg_test]
    fn the_audit_log_is_append_only_even_for_its_owner() {
        let p = "aud_ro";
        fixture(p);
        as_tenant(p, "aud_ro_a", "alice");
        run("SELECT tenancy.audit('e')");
        // Neither the application (with its context) nor an admin may rewrite it.
        for role in ["app", "admin"] {
            run(&format!("SET LOCAL ROLE {p}_{role}"));
            for sql in [
                "UPDATE tenancy.audit_log SET event = 'x'",
                "DELETE FROM tenancy.audit_log",
                "TRUNCATE tenancy.audit_log",
            ] {
                assert_fails(sql, "42501", "permission denied for table audit_log");
            }
            run("RESET ROLE");
        }
        // The owner (a superuser here) is refused by the triggers. (TRUNCATE by the owner is
        // in tests/system/audit-concurrency.sh: its ACCESS EXCLUSIVE lock would wait for
        // every other test writing audit rows in parallel.)
        for (sql, op) in [
            (
                "UPDATE tenancy.audit_log SET event = 'x' WHERE tenant_id = 'aud_ro_a'",
                "UPDATE",
            ),
            (
                "DELETE FROM tenancy.audit_log WHERE tenant_id = 'aud_ro_a'",
                "DELETE",
            ),
        ] {
            assert_fails(sql, "42501", &format!("append-only: {op} is refused"));
        }
        assert_eq!(verify("aud_ro_a"), (true, 2, None));
    }

    #[pg_test]
    fn a_tenant_reads_only_its_own_audit_rows_and_admins_read_all() {
        let p = "aud_iso";
        fixture(p);
        as_tenant(p, "aud_iso_b", "bob");
        run("SELECT tenancy.audit('b.1'), tenancy.audit('b.2')");
        run("RESET ROLE");
        as_tenant(p, "aud_iso_a", "alice");
        run("SELECT tenancy.audit('a.1')");
        let mine = "SELECT count(*) FROM tenancy.audit_log WHERE tenant_id LIKE 'aud_iso_%'";
        assert_eq!(count(mine), 2); // tenant_created + a.1
        assert_eq!(
            count("SELECT count(*) FROM tenancy.audit_log WHERE tenant_id <> 'aud_iso_a'"),
            0
        );
        run("SELECT tenancy.clear_context()");
        assert_eq!(count("SELECT count(*) FROM tenancy.audit_log"), 0);
        run("RESET ROLE");
        // A trusted role in tenant b's context sees b's rows only.
        run(&format!(
            "SET LOCAL ROLE {p}_trusted; SELECT tenancy.set_tenant('aud_iso_b', 'job')"
        ));
        assert_eq!(count(mine), 3);
        run("SELECT tenancy.clear_context(); RESET ROLE");
        // An admin reads every chain, the system chain included.
        run(&format!("SET LOCAL ROLE {p}_admin"));
        assert_eq!(count(mine), 5);
        assert!(
            count(&format!(
                "SELECT count(*) FROM tenancy.audit_log WHERE tenant_id = '(system)'
                   AND event = 'signing_key_added' AND detail->>'kid' = '{p}_k'"
            )) == 1
        );
    }

    #[pg_test]
    fn verify_audit_is_own_tenant_only_for_app_roles() {
        let p = "aud_ver";
        fixture(p);
        run(&format!("SET LOCAL ROLE {p}_app"));
        assert_fails(
            "SELECT * FROM tenancy.verify_audit('aud_ver_a')",
            "55000",
            "no tenant context",
        );
        run("RESET ROLE");
        as_tenant(p, "aud_ver_a", "alice");
        assert_eq!(verify("aud_ver_a"), (true, 1, None));
        assert_fails(
            "SELECT * FROM tenancy.verify_audit('aud_ver_b')",
            "42501",
            "only its own audit trail",
        );
        assert_fails(
            "SELECT * FROM tenancy.verify_audit('(system)')",
            "42501",
            "only its own audit trail",
        );
        run("RESET ROLE");
        run(&format!("SET LOCAL ROLE {p}_admin"));
        assert_eq!(verify("aud_ver_b"), (true, 1, None));
        assert!(verify("(system)").0);
        assert_eq!(verify("aud_ver_nobody"), (true, 0, None));
        assert_fails(
            "SELECT * FROM tenancy.verify_audit('bad id')",
            "22023",
            "invalid tenant id",
        );
    }

    /// Writes `n` events for a fresh tenant; returns the ids in seq order.
    fn chain(p: &str, tenant: &str, n: usize) -> Vec<i64> {
        run(&format!("SELECT tenancy.create_tenant('{tenant}')"));
        run(&format!(
            "SET LOCAL ROLE {p}_trusted; SELECT tenancy.set_tenant('{tenant}', 'worker', '{{ops}}')"
        ));
        for i in 0..n {
            run(&format!("SELECT tenancy.audit('step', '{{\"i\": {i}}}')"));
        }
        run("SELECT tenancy.clear_context(); RESET ROLE");
        Spi::connect(|c| {
            c.select(
                "SELECT id FROM tenancy.audit_log WHERE tenant_id = $1 ORDER BY seq",
                None,
                &[tenant.into()],
            )?
            .map(|r| r.get::<i64>(1).map(Option::unwrap))
            .collect::<Result<Vec<_>, _>>()
        })
        .unwrap()
    }

    #[pg_test]
    fn verify_audit_reports_the_changed_row() {
        let p = "aud_tamper";
        fixture(p);
        // One byte of one column of the 4th row (of 6: tenant_created + 5 events), as a
        // superuser with the append-only triggers bypassed.
        let cases = [
            ("ev", "event = overlay(event placing 'S' from 1 for 1)"),
            ("hash", "hash = set_byte(hash, 31, get_byte(hash, 31) # 1)"),
            (
                "prev",
                "prev_hash = set_byte(prev_hash, 0, get_byte(prev_hash, 0) # 1)",
            ),
            ("detail", "detail = jsonb_set(detail, '{i}', '9')"),
            ("actor", "actor = 'workex'"),
            ("roles", "roles = '{opt}'"),
            ("at", "at = at + interval '1 microsecond'"),
            ("txid", "txid = (txid::text::bigint + 1)::text::xid8"),
            ("support", "support = '{\"by\": \"x\"}'"),
            ("seq", "seq = seq + 100"),
        ];
        for (name, set) in cases {
            let tenant = format!("{p}_{name}");
            let ids = chain(p, &tenant, 5);
            assert_eq!(verify(&tenant), (true, 6, None), "{name} before");
            run(&format!(
                "SET LOCAL session_replication_role = replica;
                 UPDATE tenancy.audit_log SET {set} WHERE id = {};
                 SET LOCAL session_replication_role = origin",
                ids[3]
            ));
            assert_eq!(verify(&tenant), (false, 6, Some(ids[3])), "{name}");
        }
    }

    #[pg_test]
    fn verify_audit_reports_deleted_inserted_and_reordered_rows() {
        let p = "aud_del";
        fixture(p);
        let bypass = "SET LOCAL session_replication_role = replica";
        let restore = "SET LOCAL session_replication_role = origin";
        // A row deleted in the middle: the next row is out of sequence.
        let ids = chain(p, "aud_del_mid", 5);
        run(&format!(
            "{bypass}; DELETE FROM tenancy.audit_log WHERE id = {}; {restore}",
            ids[2]
        ));
        assert_eq!(verify("aud_del_mid"), (false, 5, Some(ids[3])));
        // The first row deleted.
        let ids = chain(p, "aud_del_first", 3);
        run(&format!(
            "{bypass}; DELETE FROM tenancy.audit_log WHERE id = {}; {restore}",
            ids[0]
        ));
        assert_eq!(verify("aud_del_first"), (false, 3, Some(ids[1])));
        // The last row deleted: the chain ends short of its head.
        let ids = chain(p, "aud_del_last", 3);
        run(&format!(
            "{bypass}; DELETE FROM tenancy.audit_log WHERE id = {}; {restore}",
            ids[3]
        ));
        assert_eq!(verify("aud_del_last"), (false, 3, None));
        // Two rows' contents swapped (positions kept).
        let ids = chain(p, "aud_del_swap", 4);
        run(&format!(
            "{bypass};
             UPDATE tenancy.audit_log a SET detail = b.detail FROM tenancy.audit_log b
              WHERE (a.id, b.id) IN (({x}, {y}), ({y}, {x}));
             {restore}",
            x = ids[1],
            y = ids[2]
        ));
        assert_eq!(verify("aud_del_swap"), (false, 5, Some(ids[1])));
        // A row inserted: a forged row at the next position, with a hash of its own.
        let ids = chain(p, "aud_del_ins", 2);
        run(&format!(
            "INSERT INTO tenancy.audit_log
                    (tenant_id, seq, at, txid, actor, roles, event, detail, prev_hash, hash)
             SELECT tenant_id, seq + 1, at, txid, actor, roles, 'forged', detail, hash,
                    sha256(hash || 'forged'::bytea)
               FROM tenancy.audit_log WHERE id = {}",
            ids[2]
        ));
        let forged = one::<i64>(
            "SELECT id FROM tenancy.audit_log WHERE tenant_id = 'aud_del_ins' AND event = 'forged'",
        );
        assert_eq!(verify("aud_del_ins"), (false, 4, forged));
    }

    #[pg_test]
    fn a_rolled_back_audit_write_leaves_no_gap() {
        let p = "aud_gap";
        fixture(p);
        as_tenant(p, "aud_gap_a", "alice");
        run("SELECT tenancy.audit('one')");
        assert_fails(
            "SELECT tenancy.audit('lost'), 1/0",
            "22012",
            "division by zero",
        );
        run("SELECT tenancy.audit('two')");
        assert_eq!(
            one::<String>(
                "SELECT string_agg(seq || ':' || event, ',' ORDER BY seq) FROM tenancy.audit_log"
            )
            .unwrap(),
            "1:tenant_created,2:one,3:two"
        );
        assert_eq!(verify("aud_gap_a"), (true, 3, None));
    }

    #[pg_test]
    fn the_extensions_own_events_are_recorded() {
        let p = "aud_own";
        fixture(p);
        run(&format!(
            "SELECT tenancy.deactivate_tenant('{p}_a'), tenancy.reactivate_tenant('{p}_a');
             SELECT tenancy.revoke_api_key(tenancy.create_api_key('{p}_a', 'ci', '{{ops}}'));
             SELECT tenancy.retire_signing_key('{p}_k');
             SELECT tenancy.unprotect('tests.{p}_docs')"
        ));
        let events = |tenant: &str| {
            one::<String>(&format!(
                "SELECT string_agg(event, ',' ORDER BY seq) FROM tenancy.audit_log
                  WHERE tenant_id = '{tenant}'"
            ))
            .unwrap_or_default()
        };
        assert_eq!(
            events("aud_own_a"),
            "tenant_created,tenant_deactivated,tenant_reactivated,api_key_created,api_key_revoked"
        );
        assert_eq!(
            one::<String>(
                "SELECT actor || ' ' || (detail ? 'key_id') FROM tenancy.audit_log
                  WHERE tenant_id = 'aud_own_a' AND event = 'api_key_created'"
            ),
            Some(format!(
                "{} true",
                one::<String>("SELECT session_user::text").unwrap()
            ))
        );
        let system = count(&format!(
            "SELECT count(*) FROM tenancy.audit_log WHERE tenant_id = '(system)' AND (
                (event IN ('signing_key_added', 'signing_key_retired') AND detail->>'kid' = '{p}_k')
             OR (event IN ('table_protected', 'table_unprotected') AND detail->>'table' = 'tests.{p}_docs'))"
        ));
        assert_eq!(system, 4);
        // An admin's own actions carry the admin's role as actor.
        run(&format!(
            "SET LOCAL ROLE {p}_admin; SELECT tenancy.create_tenant('{p}_c'); RESET ROLE"
        ));
        assert_eq!(
            one::<String>(&format!(
                "SELECT actor FROM tenancy.audit_log WHERE tenant_id = '{p}_c'"
            )),
            Some(format!("{p}_admin"))
        );
        assert!(verify("aud_own_a").0);
        assert!(verify("(system)").0);
    }

    #[pg_test]
    fn ddl_guard_overrides_are_recorded() {
        let p = "aud_guard";
        fixture(p);
        run(&format!(
            "SET LOCAL client_min_messages = error; SET LOCAL tenancy.ddl_guard = warn;
             ALTER TABLE tests.{p}_docs NO FORCE ROW LEVEL SECURITY;
             SET LOCAL tenancy.ddl_guard = off;
             ALTER TABLE tests.{p}_docs DISABLE ROW LEVEL SECURITY"
        ));
        assert_eq!(
            one::<String>(&format!(
                "SELECT string_agg(detail->>'ddl_guard', ',' ORDER BY seq) FROM tenancy.audit_log
                  WHERE tenant_id = '(system)' AND event = 'ddl_guard_override'
                    AND detail->>'table' = 'tests.{p}_docs'"
            )),
            Some("warn,off".into())
        );
    }

    #[pg_test]
    fn purge_audit_is_superuser_only_and_needs_the_confirmation() {
        let p = "aud_purge";
        fixture(p);
        chain(p, "aud_purge_x", 3);
        run(&format!("SET LOCAL ROLE {p}_admin"));
        assert_denied("SELECT tenancy.purge_audit('aud_purge_x', 'purge audit aud_purge_x')");
        run("RESET ROLE");
        let rows = "SELECT count(*) FROM tenancy.audit_log WHERE tenant_id = 'aud_purge_x'";
        // Neither a wrong word, nor the bare tenant id, nor purge_tenant's own phrase.
        for confirm in ["yes", "aud_purge_x", "purge aud_purge_x"] {
            assert_fails(
                &format!("SELECT tenancy.purge_audit('aud_purge_x', '{confirm}')"),
                "22023",
                "nothing was purged",
            );
        }
        assert_fails(
            "SELECT tenancy.purge_audit('(system)', 'purge audit (system)')",
            "22023",
            "cannot be purged",
        );
        assert_eq!(count(rows), 4);
        assert_eq!(
            one::<i64>("SELECT tenancy.purge_audit('aud_purge_x', 'purge audit aud_purge_x')"),
            Some(4)
        );
        assert_eq!(count(rows), 0);
        assert_eq!(
            one::<String>(
                "SELECT detail->>'rows' || ' ' || (detail->>'verified_before_purge') FROM tenancy.audit_log
                  WHERE tenant_id = '(system)' AND event = 'audit_purged' AND detail->>'tenant' = 'aud_purge_x'"
            ),
            Some("4 true".into())
        );
        // The purge flag does not outlive the purge.
        assert_fails(
            "DELETE FROM tenancy.audit_log WHERE tenant_id = 'aud_purge_a'",
            "42501",
            "append-only",
        );
        // The chain starts again at 1 and verifies.
        chain(p, "aud_purge_y", 1);
        run("SELECT tenancy.purge_audit('aud_purge_y', 'purge audit aud_purge_y')");
        run("SET LOCAL ROLE aud_purge_trusted; SELECT tenancy.set_tenant('aud_purge_y'); SELECT tenancy.audit('again'); RESET ROLE");
        assert_eq!(verify("aud_purge_y"), (true, 1, None));
    }

    // ---- support access ----

    fn begin(tenant: &str, reason: &str, minutes: &str) -> String {
        format!(
            "SELECT tenancy.begin_support('{tenant}', {}, {minutes})",
            quote_literal(reason)
        )
    }

    #[pg_test]
    fn begin_support_needs_the_grant_a_reason_and_sane_minutes() {
        let p = "sup_args";
        fixture(p);
        for role in ["app", "trusted", "admin"] {
            run(&format!("SET LOCAL ROLE {p}_{role}"));
            assert_denied(&begin("sup_args_a", "ticket 1", "5"));
            assert_denied("SELECT tenancy.end_support()");
            run("RESET ROLE");
        }
        run(&format!("SET LOCAL ROLE {p}_sup"));
        for reason in ["", "   ", "\t"] {
            assert_fails(&begin("sup_args_a", reason, "5"), "22023", "needs a reason");
        }
        assert_fails(
            "SELECT tenancy.begin_support('sup_args_a', NULL)",
            "22023",
            "needs a reason",
        );
        for minutes in ["0", "-1", "61", "NULL"] {
            assert_fails(
                &begin("sup_args_a", "ticket 1", minutes),
                "22023",
                "minutes must be between 1 and 60",
            );
        }
        assert_denied("SET tenancy.max_support_minutes = 600");
        assert_fails(
            &begin("sup_args_nobody", "ticket 1", "5"),
            "28000",
            "not registered",
        );
        run("RESET ROLE");
        run("SELECT tenancy.deactivate_tenant('sup_args_b')");
        run(&format!("SET LOCAL ROLE {p}_sup"));
        assert_fails(
            &begin("sup_args_b", "ticket 1", "5"),
            "28000",
            "deactivated",
        );
        assert_fails(
            "SELECT tenancy.end_support()",
            "55000",
            "no support session",
        );
        run("RESET ROLE");
        run("SET LOCAL tenancy.max_support_minutes = 90");
        run(&format!("SET LOCAL ROLE {p}_sup"));
        run(&begin("sup_args_a", "ticket 1", "61"));
        // Nothing was recorded for the refused attempts.
        run("RESET ROLE");
        assert_eq!(
            count(
                "SELECT count(*) FROM tenancy.audit_log WHERE event = 'support_begun'
                  AND tenant_id LIKE 'sup_args_%'"
            ),
            1
        );
    }

    #[pg_test]
    fn a_support_session_is_marked_audited_and_ends() {
        let p = "sup_run";
        fixture(p);
        run("INSERT INTO tests.sup_run_docs (tenant_id, body) VALUES ('sup_run_a', 'a1'), ('sup_run_b', 'b1')");
        run(&format!("SET LOCAL ROLE {p}_sup"));
        let ctx = one::<pgrx::JsonB>(&begin("sup_run_a", "  ticket 4711: export fails ", "15"))
            .unwrap()
            .0;
        let started =
            one::<i64>("SELECT extract(epoch FROM statement_timestamp())::bigint").unwrap();
        assert_eq!(ctx["source"], "support");
        assert_eq!(ctx["tenant"], "sup_run_a");
        assert_eq!(ctx["actor"], "sup_run_sup");
        assert_eq!(
            ctx["support"],
            json!({"by": "sup_run_sup", "reason": "ticket 4711: export fails",
                   "until": ctx["expires_at"]})
        );
        let until = ctx["expires_at"].as_i64().unwrap();
        assert!(
            (until - started - 15 * 60).abs() <= 1,
            "until {until}, started {started}"
        );
        assert_eq!(
            one::<pgrx::JsonB>("SELECT tenancy.context()").unwrap().0,
            ctx
        );
        // Inside the tenant, and only that tenant.
        assert_eq!(
            one::<String>("SELECT tenancy.current_tenant()"),
            Some("sup_run_a".into())
        );
        assert_eq!(
            one::<String>("SELECT string_agg(body, ',') FROM tests.sup_run_docs"),
            Some("a1".into())
        );
        // Every write under it is recorded as support, and so is every read (the SELECT
        // above: support_read, issue 21; and what the UPDATE and DELETE found).
        run("INSERT INTO tests.sup_run_docs (body) VALUES ('fixed 1'), ('fixed 2')");
        run("UPDATE tests.sup_run_docs SET body = body || '!' WHERE body = 'a1'");
        run("DELETE FROM tests.sup_run_docs WHERE body = 'nothing'");
        run("SELECT tenancy.audit('note', '{\"text\": \"looked at the export\"}')");
        run("SELECT tenancy.end_support()");
        assert_eq!(one::<String>("SELECT tenancy.current_tenant()"), None);
        assert_fails(
            "SELECT tenancy.end_support()",
            "55000",
            "no support session",
        );
        run("RESET ROLE");
        let rows = Spi::connect(|c| {
            c.select(
                "SELECT event, detail::text, support->>'by', support->>'reason', actor
                   FROM tenancy.audit_log WHERE tenant_id = 'sup_run_a' AND seq > 1 ORDER BY seq",
                None,
                &[],
            )?
            .map(|r| {
                Ok::<_, pgrx::spi::Error>(format!(
                    "{}|{}|{}|{}|{}",
                    r.get::<String>(1)?.unwrap_or_default(),
                    r.get::<String>(2)?.unwrap_or_default(),
                    r.get::<String>(3)?.unwrap_or_default(),
                    r.get::<String>(4)?.unwrap_or_default(),
                    r.get::<String>(5)?.unwrap_or_default()
                ))
            })
            .collect::<Result<Vec<_>, _>>()
        })
        .unwrap();
        let m = "sup_run_sup|ticket 4711: export fails|sup_run_sup";
        assert_eq!(
            rows,
            vec![
                format!("support_begun|{{\"minutes\": 15}}|{m}"),
                format!("support_read|{{\"rows\": 1, \"table\": \"tests.sup_run_docs\"}}|{m}"),
                format!("support_write|{{\"table\": \"tests.sup_run_docs\", \"operation\": \"insert\"}}|{m}"),
                format!("support_write|{{\"table\": \"tests.sup_run_docs\", \"operation\": \"update\"}}|{m}"),
                // The rows an UPDATE or DELETE finds are reads too (its expressions and
                // RETURNING see them): review of session 5.
                format!("support_read|{{\"rows\": 1, \"table\": \"tests.sup_run_docs\"}}|{m}"),
                format!("support_write|{{\"table\": \"tests.sup_run_docs\", \"operation\": \"delete\"}}|{m}"),
                format!("support_read|{{\"rows\": 0, \"table\": \"tests.sup_run_docs\"}}|{m}"),
                format!("note|{{\"text\": \"looked at the export\"}}|{m}"),
                format!("support_ended|{{\"how\": \"end_support\", \"expired\": false}}|{m}"),
            ]
        );
        assert_eq!(verify("sup_run_a"), (true, 10, None));
        // Tenant b's chain saw nothing.
        assert_eq!(
            count("SELECT count(*) FROM tenancy.audit_log WHERE tenant_id = 'sup_run_b'"),
            1
        );
    }

    #[pg_test]
    fn a_second_support_session_ends_the_first_and_hand_calls_stay_honest() {
        let p = "sup_two";
        fixture(p);
        run(&format!("SET LOCAL ROLE {p}_sup"));
        run(&begin("sup_two_a", "ticket 1", "5"));
        // A support engineer can neither record a write that never happened nor write a
        // row that looks like the extension's own.
        assert_denied(
            "SELECT tenancy._audit_support_write('tests.sup_two_docs'::regclass, 'DELETE')",
        );
        assert_fails(
            "SELECT tenancy.audit('support_ended', '{\"expired\": false}')",
            "22023",
            "reserved",
        );
        run(&begin("sup_two_b", "ticket 2", "5"));
        assert_eq!(
            one::<String>("SELECT tenancy.current_tenant()"),
            Some("sup_two_b".into())
        );
        run("SELECT tenancy.end_support()");
        run("RESET ROLE");
        assert_eq!(
            one::<String>(
                "SELECT string_agg(tenant_id || ':' || event || ':' || detail::text, ' | ' ORDER BY id)
                   FROM tenancy.audit_log WHERE tenant_id LIKE 'sup_two_%' AND event LIKE 'support%'"
            ),
            Some(
                "sup_two_a:support_begun:{\"minutes\": 5} | \
                 sup_two_a:support_ended:{\"how\": \"replaced\", \"expired\": false, \"replaced\": true} | \
                 sup_two_b:support_begun:{\"minutes\": 5} | \
                 sup_two_b:support_ended:{\"how\": \"end_support\", \"expired\": false}"
                    .into()
            )
        );
    }

    #[pg_test]
    fn check_reports_a_dropped_or_disabled_support_trigger() {
        let p = "sup_chk";
        fixture(p);
        let findings = "SELECT count(*) FROM tenancy.check('tests')
                         WHERE rule = 'support_writes_unrecorded' AND object = 'tests.sup_chk_docs'";
        assert_eq!(count(findings), 0);
        run("ALTER TABLE tests.sup_chk_docs DISABLE TRIGGER tenancy_support_audit");
        assert_eq!(count(findings), 1);
        run("DROP TRIGGER tenancy_support_audit ON tests.sup_chk_docs");
        assert_eq!(count(findings), 1);
        let fix = one::<String>(
            "SELECT fix FROM tenancy.check('tests')
              WHERE rule = 'support_writes_unrecorded' AND object = 'tests.sup_chk_docs'",
        )
        .expect("fix");
        run(&fix);
        assert_eq!(count(findings), 0);
    }

    #[pg_test]
    fn writes_outside_support_are_not_recorded() {
        let p = "sup_quiet";
        fixture(p);
        as_tenant(p, "sup_quiet_a", "alice");
        run("INSERT INTO tests.sup_quiet_docs (body) SELECT 'x' FROM generate_series(1, 50)");
        run("UPDATE tests.sup_quiet_docs SET body = 'y'");
        assert_eq!(one::<bool>("SELECT tenancy._support_active()"), Some(false));
        assert_denied(
            "SELECT tenancy._audit_support_write('tests.sup_quiet_docs'::regclass, 'INSERT')",
        );
        assert_fails(
            "SELECT tenancy.audit('tenant_deactivated')",
            "22023",
            "reserved",
        );
        run("RESET ROLE");
        assert_eq!(
            count("SELECT count(*) FROM tenancy.audit_log WHERE tenant_id = 'sup_quiet_a'"),
            1
        );
        // The trigger is statement-level (no per-row work), on the table protect() made,
        // and unprotect() removes it.
        assert_eq!(
            one::<String>(
                "SELECT string_agg(tgname || ':' || (tgtype & 1 = 0)::text, ',') FROM pg_trigger
                  WHERE tgrelid = 'tests.sup_quiet_docs'::regclass"
            ),
            Some("tenancy_support_audit:true".into())
        );
        run("SELECT tenancy.unprotect('tests.sup_quiet_docs')");
        assert_eq!(
            count(
                "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'tests.sup_quiet_docs'::regclass"
            ),
            0
        );
    }

    #[pg_test]
    fn an_admin_protects_its_own_table_and_the_support_trigger_comes_along() {
        let p = "sup_own";
        fixture(p);
        run(&format!(
            "CREATE SCHEMA {p}_s AUTHORIZATION {p}_admin;
             SET LOCAL ROLE {p}_admin;
             CREATE TABLE {p}_s.t (id int PRIMARY KEY, tenant_id text);
             SELECT tenancy.protect('{p}_s.t');
             RESET ROLE"
        ));
        assert_eq!(
            count(&format!(
                "SELECT count(*) FROM pg_trigger WHERE tgrelid = '{p}_s.t'::regclass
                   AND tgname = 'tenancy_support_audit'"
            )),
            1
        );
        assert_eq!(
            one::<String>(&format!(
                "SELECT actor FROM tenancy.audit_log WHERE tenant_id = '(system)'
                   AND event = 'table_protected' AND detail->>'table' = '{p}_s.t'"
            )),
            Some(format!("{p}_admin"))
        );
    }

    #[pg_test]
    fn an_expired_support_session_stops_and_can_still_be_ended() {
        let p = "sup_exp";
        fixture(p);
        // A support carrier that expired a second ago, as begin_support would have made it
        // (statement clocks do not move inside one test, so the expiry is made, not waited
        // for; tests/system/audit-concurrency.sh waits for a real one), with its session.
        let now = crate::registry::cache::statement_now();
        run(&format!(
            "INSERT INTO tenancy.support_sessions (id, tenant, opened_by, opened_by_name, reason, expires_at)
             VALUES ('sup_exp_s1', 'sup_exp_a', '{p}_sup'::regrole, '{p}_sup', 'ticket 9', to_timestamp({}))",
            now - 1
        ));
        run(&format!("SET LOCAL ROLE {p}_sup"));
        crate::context::tenant_context::install(
            Context {
                tenant: "sup_exp_a".into(),
                actor: Some("sup_exp_sup".into()),
                roles: vec![],
                source: Source::Support,
                expires_at: Some(now - 1),
                api_key_id: None,
                kid: None,
                support_reason: Some("ticket 9".into()),
                support_session: Some("sup_exp_s1".into()),
                job: None,
            },
            None,
            false,
        );
        assert_fails("SELECT tenancy.current_tenant()", "28000", "expired");
        assert_fails(
            "SELECT count(*) FROM tests.sup_exp_docs",
            "28000",
            "expired",
        );
        run("SELECT tenancy.end_support()");
        assert_eq!(one::<String>("SELECT tenancy.current_tenant()"), None);
        run("RESET ROLE");
        assert_eq!(
            one::<String>(
                "SELECT event || ' ' || (detail->>'expired') || ' ' || (support->>'reason')
                   FROM tenancy.audit_log WHERE tenant_id = 'sup_exp_a' AND seq = 2"
            ),
            Some("support_ended true ticket 9".into())
        );
    }

    #[pg_test]
    fn other_contexts_carry_no_support_mark() {
        let p = "sup_none";
        fixture(p);
        run(&format!(
            "SET LOCAL ROLE {p}_trusted; SELECT tenancy.set_tenant('sup_none_a', 'job')"
        ));
        assert_eq!(
            one::<bool>("SELECT tenancy.context() ? 'support'"),
            Some(false)
        );
        run("SELECT tenancy.audit('e')");
        run("SELECT tenancy.clear_context(); RESET ROLE");
        assert_eq!(
            count("SELECT count(*) FROM tenancy.audit_log WHERE tenant_id = 'sup_none_a' AND support IS NOT NULL"),
            0
        );
    }

    // ---- refusal counters ----

    fn refused(reason: &str) -> i64 {
        one::<i64>(&format!(
            "SELECT refused FROM tenancy.stats() WHERE reason = '{reason}'"
        ))
        .unwrap_or_else(|| panic!("no counter for {reason}"))
    }

    #[pg_test]
    fn refusals_are_counted_by_reason() {
        let p = "aud_stats";
        fixture(p);
        let before_sig = refused("bad_signature");
        let before_inactive = refused("inactive_tenant");
        let tok = audit_token(p, "aud_stats_a", "alice");
        let (head, _) = tok.rsplit_once('.').unwrap();
        let forged = format!("{head}.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
        run("SELECT tenancy.deactivate_tenant('aud_stats_b')");
        let tok_b = audit_token(p, "aud_stats_b", "bob");
        run(&format!("SET LOCAL ROLE {p}_app"));
        for _ in 0..3 {
            assert_fails(&set_context_sql(&forged), "28000", "signature");
        }
        assert_fails(&set_context_sql(&tok_b), "28000", "deactivated");
        assert_denied("SELECT * FROM tenancy.stats()");
        run("RESET ROLE");
        // Other tests run at the same time and may add refusals of their own.
        assert!(refused("bad_signature") >= before_sig + 3);
        assert!(refused("inactive_tenant") > before_inactive);
        run(&format!("SET LOCAL ROLE {p}_admin"));
        assert!(count("SELECT count(*) FROM tenancy.stats()") >= 23);
    }
}
