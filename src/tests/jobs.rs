//! Jobs that carry their tenant (issue 16, docs/jobs.md): enqueue() stamps the verified
//! context, a claim sets the job's context for its transaction only, a worker reads and ends
//! only the job it claimed, and neither an app nor a worker can put a job in another tenant.

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use crate::tests::fixture::*;
    use pgrx::prelude::*;
    use serde_json::json;

    /// Tenants `{p}_a` and `{p}_b`, an app role, a worker role and a trusted role, a signing
    /// key, and the protected table `tests.{p}_docs` (two rows of a, one of b) that the
    /// worker may read and write.
    fn fixture(p: &str) {
        roles(
            p,
            &[
                ("app", Tier::App),
                ("trusted", Tier::Trusted),
                ("worker", Tier::Worker),
            ],
        );
        tenants(p);
        signing_key(p);
        let (a, b) = (format!("{p}_a"), format!("{p}_b"));
        docs_table(
            p,
            "text",
            &[(&a, "a1"), (&a, "a2"), (&b, "b1")],
            &format!("{p}_app, {p}_worker"),
        );
    }

    /// Enqueues `payload` on queue `{p}` as the app role under a token of `tenant` (subject
    /// alice, role hr), and returns to the superuser with no context.
    fn enqueue_as(p: &str, tenant: &str, payload: &str) -> i64 {
        let tok = token(
            p,
            json!({"tenant_id": tenant, "sub": "alice", "roles": ["hr"]}),
        );
        run(&format!("SET LOCAL ROLE {p}_app"));
        run(&set_context_sql(&tok));
        let id = one::<i64>(&format!(
            "SELECT tenancy.enqueue('{p}', '{payload}'::jsonb)"
        ))
        .expect("job id");
        run("SELECT tenancy.clear_context(); RESET ROLE");
        id
    }

    fn claim(p: &str) -> Option<i64> {
        // A scalar subquery: NULL, not an empty result, when nothing is ready.
        one::<i64>(&format!(
            "SELECT (SELECT job_id FROM tenancy.claim_job('{p}'))"
        ))
    }

    #[pg_test]
    fn enqueue_stamps_the_verified_context_not_the_payload() {
        let p = "job_stamp";
        fixture(p);
        // The payload names another tenant: it is only a payload.
        let id = enqueue_as(p, "job_stamp_a", r#"{"tenant_id": "job_stamp_b", "n": 1}"#);
        let row = text(&format!(
            "SELECT concat_ws('|', tenant, actor, roles::text, enqueued_by, status, attempts)
               FROM tenancy.jobs WHERE id = {id}"
        ));
        assert_eq!(row, "job_stamp_a|alice|{hr}|job_stamp_app|queued|0");
        run(&format!("SET LOCAL ROLE {p}_worker"));
        assert_eq!(claim(p), Some(id));
        assert_eq!(
            one::<String>("SELECT tenancy.current_tenant()").as_deref(),
            Some("job_stamp_a")
        );
        assert_eq!(
            one::<String>("SELECT tenancy.current_actor()").as_deref(),
            Some("alice")
        );
        assert_eq!(one::<bool>("SELECT tenancy.has_role('hr')"), Some(true));
        assert_eq!(
            one::<String>("SELECT tenancy.context()->>'source'").as_deref(),
            Some("job")
        );
        assert_eq!(
            one::<i64>("SELECT (tenancy.context()->>'job')::bigint"),
            Some(id)
        );
    }

    #[pg_test]
    fn enqueue_needs_a_verified_context() {
        let p = "job_noctx";
        fixture(p);
        let tok = token(p, json!({"tenant_id": "job_noctx_a"}));
        run(&format!("SET LOCAL ROLE {p}_app"));
        assert_fails(
            &format!("SELECT tenancy.enqueue('{p}', '{{}}')"),
            "55000",
            "no tenant context",
        );
        // A carrier that does not verify is no context either.
        run("SET LOCAL tenancy.context = 'v1.eyJ0Ijoiam9iX25vY3R4X2IiLCJzIjoidHJ1c3RlZCJ9.AAAA'");
        assert_fails(
            &format!("SELECT tenancy.enqueue('{p}', '{{}}')"),
            "28000",
            "signature does not verify",
        );
        run("RESET tenancy.context");
        assert_eq!(
            count(&format!(
                "SELECT count(*) FROM tenancy.jobs WHERE queue = '{p}'"
            )),
            0
        );
        // Arguments: a queue name like an event name, a bounded max_attempts.
        run(&set_context_sql(&tok));
        assert_fails(
            "SELECT tenancy.enqueue('Bad Queue', '{}')",
            "22023",
            "queue must be",
        );
        assert_fails(
            &format!("SELECT tenancy.enqueue('{p}', '{{}}', max_attempts => 0)"),
            "22023",
            "max_attempts",
        );
    }

    #[pg_test]
    fn the_claim_confines_the_transaction_to_the_jobs_tenant() {
        let p = "job_confine";
        fixture(p);
        let id = enqueue_as(p, "job_confine_a", "{}");
        run(&format!("SET LOCAL ROLE {p}_worker"));
        // Before the claim the worker sees no row.
        assert_eq!(count(&format!("SELECT count(*) FROM tests.{p}_docs")), 0);
        assert_eq!(claim(p), Some(id));
        assert_eq!(
            text(&format!(
                "SELECT string_agg(body, ',' ORDER BY body) FROM tests.{p}_docs"
            )),
            "a1,a2"
        );
        // An insert is stamped with the job's tenant without naming it...
        run(&format!(
            "INSERT INTO tests.{p}_docs (body) VALUES ('derived')"
        ));
        run("RESET ROLE");
        assert_eq!(
            text(&format!(
                "SELECT tenant_id FROM tests.{p}_docs WHERE body = 'derived'"
            )),
            "job_confine_a"
        );
        // ... and one naming another tenant is refused.
        run(&format!("SET LOCAL ROLE {p}_worker"));
        assert_fails(
            &format!("INSERT INTO tests.{p}_docs (tenant_id, body) VALUES ('job_confine_b', 'x')"),
            "42501",
            "row-level security",
        );
        // A job it enqueues is the job's tenant's, whatever the payload says.
        let next = one::<i64>(&format!(
            "SELECT tenancy.enqueue('{p}.next', '{{\"tenant_id\": \"job_confine_b\"}}')"
        ))
        .unwrap();
        assert_eq!(
            count(&format!(
                "WITH u AS (UPDATE tests.{p}_docs SET body = body
                             WHERE tenant_id = 'job_confine_b' RETURNING 1)
                 SELECT count(*) FROM u"
            )),
            0
        );
        run("RESET ROLE");
        assert_eq!(
            text(&format!(
                "SELECT tenant FROM tenancy.jobs WHERE id = {next}"
            )),
            "job_confine_a"
        );
    }

    #[pg_test]
    fn a_worker_reads_only_the_job_it_claimed_and_an_app_only_its_tenants_jobs() {
        let p = "job_read";
        fixture(p);
        let a1 = enqueue_as(p, "job_read_a", r#"{"n": 1}"#);
        let _a2 = enqueue_as(p, "job_read_a", r#"{"n": 2}"#);
        let _b1 = enqueue_as(p, "job_read_b", r#"{"secret": "b"}"#);
        let q = format!("SELECT count(*) FROM tenancy.jobs WHERE queue = '{p}'");
        // The worker without a job: nothing.
        run(&format!("SET LOCAL ROLE {p}_worker"));
        assert_eq!(count(&q), 0);
        assert_eq!(claim(p), Some(a1));
        // In the job: its own job only, not its tenant's other job.
        assert_eq!(
            text(&format!(
                "SELECT string_agg(id::text, ',') FROM tenancy.jobs WHERE queue = '{p}'"
            )),
            a1.to_string()
        );
        run("RESET ROLE");
        // The app under a's token: a's two jobs, never b's.
        let tok = token(p, json!({"tenant_id": "job_read_a"}));
        run(&format!("SET LOCAL ROLE {p}_app"));
        run(&set_context_sql(&tok));
        assert_eq!(count(&q), 2);
        assert_eq!(
            count(&format!(
                "SELECT count(*) FROM tenancy.jobs WHERE queue = '{p}' AND payload ? 'secret'"
            )),
            0
        );
        run("SELECT tenancy.clear_context()");
        assert_eq!(count(&q), 0);
    }

    #[pg_test]
    fn nobody_writes_the_jobs_table_and_only_workers_claim() {
        let p = "job_write";
        fixture(p);
        let id = enqueue_as(p, "job_write_a", "{}");
        for role in ["app", "worker"] {
            run(&format!("SET LOCAL ROLE {p}_{role}"));
            assert_denied(&format!(
                "UPDATE tenancy.jobs SET tenant = 'job_write_b' WHERE id = {id}"
            ));
            assert_denied(
                "INSERT INTO tenancy.jobs (tenant, queue, enqueued_by) VALUES ('job_write_b', 'q', 'x')",
            );
            assert_denied(&format!("DELETE FROM tenancy.jobs WHERE id = {id}"));
            run("RESET ROLE");
        }
        // The app tier cannot claim, complete or fail a job (nor the trusted tier).
        for role in ["app", "trusted"] {
            run(&format!("SET LOCAL ROLE {p}_{role}"));
            assert_denied(&format!("SELECT * FROM tenancy.claim_job('{p}')"));
            assert_denied("SELECT tenancy.complete_job()");
            assert_denied("SELECT tenancy.fail_job('x')");
            run("RESET ROLE");
        }
        // Not even in the worker's job: the job's row keeps its tenant.
        run(&format!("SET LOCAL ROLE {p}_worker"));
        assert_eq!(claim(p), Some(id));
        assert_denied(&format!(
            "UPDATE tenancy.jobs SET tenant = 'job_write_b' WHERE id = {id}"
        ));
        run("RESET ROLE");
        assert_eq!(
            text(&format!("SELECT tenant FROM tenancy.jobs WHERE id = {id}")),
            "job_write_a"
        );
        // grant_worker grants the worker functions and nothing of trusted or admin.
        for (f, want) in [
            ("tenancy.claim_job(text, interval)", true),
            ("tenancy.complete_job()", true),
            ("tenancy.fail_job(text, interval)", true),
            (
                "tenancy.enqueue(text, jsonb, timestamptz, integer, text)",
                true,
            ),
            ("tenancy.set_tenant(text, text, text[], boolean)", false),
            (
                "tenancy.create_tenant(text, text, text, jsonb, text)",
                false,
            ),
        ] {
            assert_eq!(
                one::<bool>(&format!(
                    "SELECT has_function_privilege('{p}_worker', '{f}', 'EXECUTE')"
                )),
                Some(want),
                "{f}"
            );
        }
    }

    #[pg_test]
    fn a_worker_cannot_claim_into_a_context_it_brought() {
        let p = "job_ctx";
        fixture(p);
        enqueue_as(p, "job_ctx_a", "{}");
        // The worker holds a token of b: with that context set, no claim.
        let tok = token(p, json!({"tenant_id": "job_ctx_b"}));
        run(&format!("SET LOCAL ROLE {p}_worker"));
        run(&set_context_sql(&tok));
        assert_fails(
            &format!("SELECT * FROM tenancy.claim_job('{p}')"),
            "55000",
            "already has a tenant context",
        );
        // A job's context is not a second claim's either: one job at a time.
        run("SELECT tenancy.clear_context(); RESET ROLE");
        enqueue_as(p, "job_ctx_b", "{}");
        run(&format!("SET LOCAL ROLE {p}_worker"));
        assert!(claim(p).is_some());
        assert_fails(
            &format!("SELECT * FROM tenancy.claim_job('{p}')"),
            "55000",
            "already has a tenant context",
        );
        // After the job ends, the next claim is a new context (the other job).
        run("SELECT tenancy.complete_job()");
        assert!(claim(p).is_some());
        assert_eq!(
            one::<String>("SELECT tenancy.current_tenant()").as_deref(),
            Some("job_ctx_b")
        );
    }

    #[pg_test]
    fn a_job_context_is_refused_outside_the_claiming_transaction() {
        let p = "job_xid";
        fixture(p);
        run(&format!("SET LOCAL ROLE {p}_worker"));
        // SAFETY: reads the transaction state.
        let xid = unsafe { pg_sys::GetTopFullTransactionId() }.value;
        // A job carrier of another transaction (an earlier claim, copied): valid MAC, not
        // expired, and refused.
        for other in [xid - 1, xid + 1, 0] {
            crate::context::tenant_context::install(
                tenancy_core::carrier::Context {
                    tenant: format!("{p}_a"),
                    actor: None,
                    roles: vec![],
                    source: tenancy_core::carrier::Source::Job,
                    expires_at: Some(crate::registry::cache::statement_now() + 60),
                    api_key_id: None,
                    kid: None,
                    support_reason: None,
                    support_session: None,
                    job: Some(tenancy_core::carrier::JobClaim { id: 1, xid: other }),
                },
                None,
                true,
            );
            assert_fails(
                &format!("SELECT count(*) FROM tests.{p}_docs"),
                "28000",
                "valid only in the transaction that claimed the job",
            );
            run("RESET tenancy.context");
        }
        // The same carrier with this transaction's id works while this backend holds the
        // job's claim, and only then (the carrier is a setting; the claim is not).
        let job1 = || {
            crate::context::tenant_context::install(
                tenancy_core::carrier::Context {
                    tenant: format!("{p}_a"),
                    actor: None,
                    roles: vec![],
                    source: tenancy_core::carrier::Source::Job,
                    expires_at: Some(crate::registry::cache::statement_now() + 60),
                    api_key_id: None,
                    kid: None,
                    support_reason: None,
                    support_session: None,
                    job: Some(tenancy_core::carrier::JobClaim { id: 1, xid }),
                },
                None,
                true,
            )
        };
        job1();
        assert_fails(
            &format!("SELECT count(*) FROM tests.{p}_docs"),
            "28000",
            "valid only in the transaction that claimed the job",
        );
        run("RESET tenancy.context");
        crate::context::tenant_context::hold_job(1, xid);
        job1();
        assert_eq!(count(&format!("SELECT count(*) FROM tests.{p}_docs")), 2);
        crate::context::tenant_context::release_job();
    }

    /// Review of issue 16: a job's carrier saved and set again after its job ended (here: a
    /// second job claimed in the same transaction) carried the first job's tenant, so one
    /// transaction wrote as two tenants; and a claim in a subtransaction lost its lease (the
    /// row lock) with a rolled-back savepoint while keeping its context.
    #[pg_test]
    fn a_job_carrier_holds_only_while_its_claim_does() {
        let p = "job_replay";
        fixture(p);
        let a = enqueue_as(p, "job_replay_a", "{}");
        let b = enqueue_as(p, "job_replay_b", "{}");
        run(&format!("SET LOCAL ROLE {p}_worker"));
        // Inside an exception block (a subtransaction) the claim is refused, and nothing is
        // claimed.
        assert_fails(
            &format!("SELECT * FROM tenancy.claim_job('{p}')"),
            "55000",
            "cannot run inside a savepoint",
        );
        assert_eq!(claim(p), Some(a));
        let c1 = text("SELECT current_setting('tenancy.context')");
        run("SELECT tenancy.complete_job()");
        assert_eq!(claim(p), Some(b));
        assert_eq!(
            one::<String>("SELECT tenancy.current_tenant()").as_deref(),
            Some("job_replay_b")
        );
        let c2 = text("SELECT current_setting('tenancy.context')");
        run(&format!(
            "SELECT set_config('tenancy.context', {}, true)",
            pgrx::spi::quote_literal(&c1)
        ));
        assert_fails(
            &format!("SELECT count(*) FROM tests.{p}_docs"),
            "28000",
            "valid only in the transaction that claimed the job",
        );
        assert_fails(
            "SELECT tenancy.complete_job()",
            "28000",
            "valid only in the transaction that claimed the job",
        );
        // The live job's own carrier set again works; after complete_job() it is dead too.
        run(&format!(
            "SELECT set_config('tenancy.context', {}, true)",
            pgrx::spi::quote_literal(&c2)
        ));
        run("SELECT tenancy.complete_job()");
        run(&format!(
            "SELECT set_config('tenancy.context', {}, true)",
            pgrx::spi::quote_literal(&c2)
        ));
        assert_fails(
            &format!("SELECT count(*) FROM tests.{p}_docs"),
            "28000",
            "valid only in the transaction that claimed the job",
        );
        run("RESET tenancy.context");
    }

    /// Review of issue 16: a run_at in the far past ('-infinity') put a job ahead of every
    /// job already waiting.
    #[pg_test]
    fn a_run_at_in_the_past_does_not_jump_the_queue() {
        let p = "job_past";
        fixture(p);
        let first = enqueue_as(p, "job_past_a", "{}");
        let tok = token(p, json!({"tenant_id": "job_past_b", "sub": "bob"}));
        run(&format!("SET LOCAL ROLE {p}_app"));
        run(&set_context_sql(&tok));
        let late = one::<i64>(&format!(
            "SELECT tenancy.enqueue('{p}', '{{}}', '-infinity')"
        ))
        .expect("job id");
        run("SELECT tenancy.clear_context(); RESET ROLE");
        assert_eq!(
            one::<bool>(&format!(
                "SELECT run_at = now() FROM tenancy.jobs WHERE id = {late}"
            )),
            Some(true)
        );
        run(&format!("SET LOCAL ROLE {p}_worker"));
        assert_eq!(claim(p), Some(first));
    }

    /// Review of issue 16: purge and drop left a tenant's jobs (payloads, actors) for a
    /// tenant re-created under the same id, rename left them under the old id, export
    /// omitted them.
    #[pg_test]
    fn a_tenants_jobs_follow_its_lifecycle() {
        let p = "job_life";
        fixture(p);
        let (a, c) = (format!("{p}_a"), format!("{p}_c"));
        let id = enqueue_as(p, &a, r#"{"secret": 1}"#);
        run(&format!("SELECT tenancy.deactivate_tenant('{a}')"));
        assert_eq!(
            count(&format!(
                "SELECT count(*) FROM tenancy.export_tenant('{a}')
                  WHERE table_name = 'tenancy.jobs' AND \"row\" ->> 'id' = '{id}'
                    AND \"row\" -> 'payload' = '{{\"secret\": 1}}'"
            )),
            1
        );
        run(&format!("SELECT tenancy.rename_tenant('{a}', '{c}')"));
        assert_eq!(
            text(&format!("SELECT tenant FROM tenancy.jobs WHERE id = {id}")),
            c
        );
        assert_fails(
            &format!("SELECT tenancy.drop_tenant('{c}', 'keep')"),
            "55000",
            "tenancy.jobs",
        );
        assert_eq!(
            count(&format!(
                "SELECT deleted FROM tenancy.purge_tenant('{c}', 'purge {c}')
                  WHERE table_name = 'tenancy.jobs'"
            )),
            1
        );
        assert_eq!(
            count(&format!(
                "SELECT count(*) FROM tenancy.jobs WHERE id = {id}"
            )),
            0
        );
        run(&format!("SELECT tenancy.drop_tenant('{c}', 'keep')"));
    }

    #[pg_test]
    fn a_support_context_cannot_enqueue() {
        let p = "job_sup";
        roles(p, &[("sup", Tier::Support)]);
        tenants(p);
        run(&format!("SET LOCAL ROLE {p}_sup"));
        run(&format!(
            "SELECT tenancy.begin_support('{p}_a', 'ticket 16', 10)"
        ));
        assert_fails(
            &format!("SELECT tenancy.enqueue('{p}', '{{}}')"),
            "42501",
            "a support context cannot enqueue jobs",
        );
        run("SELECT tenancy.end_support()");
    }

    /// Review of issue 16: tenancy.jobs is not a protected table, so a support context's
    /// reads of it (payloads, actors, errors) were not on the support record: it reads none.
    #[pg_test]
    fn a_support_context_reads_no_jobs() {
        let p = "job_supread";
        roles(p, &[("app", Tier::App), ("sup", Tier::Support)]);
        tenants(p);
        signing_key(p);
        enqueue_as(p, "job_supread_a", "{}");
        run(&format!("GRANT SELECT ON tenancy.jobs TO {p}_sup"));
        run(&format!("SET LOCAL ROLE {p}_sup"));
        run(&format!(
            "SELECT tenancy.begin_support('{p}_a', 'ticket 16', 10)"
        ));
        assert_eq!(count("SELECT count(*) FROM tenancy.jobs"), 0);
        run("SELECT tenancy.end_support()");
    }

    #[pg_test]
    fn jobs_of_a_deactivated_tenant_are_not_handed_out() {
        let p = "job_inactive";
        fixture(p);
        let a = enqueue_as(p, "job_inactive_a", "{}");
        let b = enqueue_as(p, "job_inactive_b", "{}");
        run("SELECT tenancy.deactivate_tenant('job_inactive_a')");
        run(&format!("SET LOCAL ROLE {p}_worker"));
        assert_eq!(claim(p), Some(b));
        run("SELECT tenancy.complete_job()");
        assert_eq!(claim(p), None);
        run("RESET ROLE; SELECT tenancy.reactivate_tenant('job_inactive_a')");
        run(&format!("SET LOCAL ROLE {p}_worker"));
        assert_eq!(claim(p), Some(a));
    }

    #[pg_test]
    fn complete_ends_the_job_and_its_context() {
        let p = "job_done";
        fixture(p);
        let id = enqueue_as(p, "job_done_a", "{}");
        run(&format!("SET LOCAL ROLE {p}_worker"));
        assert_fails(
            "SELECT tenancy.complete_job()",
            "55000",
            "needs the job this transaction claimed",
        );
        assert_eq!(claim(p), Some(id));
        assert_eq!(one::<i64>("SELECT tenancy.complete_job()"), Some(id));
        // No tenant for the rest of the transaction, and nothing left to complete.
        assert_eq!(one::<String>("SELECT tenancy.current_tenant()"), None);
        assert_eq!(count(&format!("SELECT count(*) FROM tests.{p}_docs")), 0);
        assert_fails(
            "SELECT tenancy.complete_job()",
            "55000",
            "needs the job this transaction claimed",
        );
        assert_eq!(claim(p), None);
        run("RESET ROLE");
        assert_eq!(
            text(&format!(
                "SELECT status || '|' || attempts FROM tenancy.jobs WHERE id = {id}"
            )),
            "done|1"
        );
    }

    #[pg_test]
    fn a_failed_job_is_retried_after_backoff_then_dead_lettered() {
        let p = "job_fail";
        fixture(p);
        let tok = token(p, json!({"tenant_id": "job_fail_a", "sub": "alice"}));
        run(&format!("SET LOCAL ROLE {p}_app"));
        run(&set_context_sql(&tok));
        let id = one::<i64>(&format!(
            "SELECT tenancy.enqueue('{p}', '{{}}', max_attempts => 2)"
        ))
        .unwrap();
        run("SELECT tenancy.clear_context(); RESET ROLE");
        run(&format!("SET LOCAL ROLE {p}_worker"));
        assert_eq!(claim(p), Some(id));
        assert_eq!(
            one::<String>("SELECT tenancy.fail_job('smtp down')").as_deref(),
            Some("queued")
        );
        assert_eq!(one::<String>("SELECT tenancy.current_tenant()"), None);
        // Not ready before its backoff (5 s after the first attempt).
        assert_eq!(claim(p), None);
        run("RESET ROLE");
        assert_eq!(
            text(&format!(
                "SELECT concat_ws('|', status, attempts, last_error,
                        run_at > clock_timestamp() + interval '4 seconds',
                        run_at < clock_timestamp() + interval '6 seconds')
                   FROM tenancy.jobs WHERE id = {id}"
            )),
            "queued|1|smtp down|t|t"
        );
        // Its backoff passed (made, not waited for), the second and last attempt fails.
        run(&format!(
            "UPDATE tenancy.jobs SET run_at = now() - interval '1 second' WHERE id = {id}"
        ));
        run(&format!("SET LOCAL ROLE {p}_worker"));
        assert_eq!(
            one::<i32>(&format!(
                "SELECT (SELECT attempt FROM tenancy.claim_job('{p}'))"
            )),
            Some(2)
        );
        assert_eq!(
            one::<String>("SELECT tenancy.fail_job('smtp still down')").as_deref(),
            Some("dead")
        );
        run("RESET ROLE");
        assert_eq!(
            text(&format!(
                "SELECT status || '|' || attempts FROM tenancy.jobs WHERE id = {id}"
            )),
            "dead|2"
        );
        // Dead-lettered on the tenant's own chain, as the job's actor, with the worker named.
        assert_eq!(
            text(&format!(
                "SELECT concat_ws('|', actor, detail->>'worker', detail->>'error')
                   FROM tenancy.audit_log
                  WHERE tenant_id = 'job_fail_a' AND event = 'job_dead_lettered'
                    AND (detail->>'job_id')::bigint = {id}"
            )),
            "alice|job_fail_worker|smtp still down"
        );
        // A dead job is never handed out again; nobody may write its event themselves.
        run(&format!("SET LOCAL ROLE {p}_worker"));
        assert_eq!(claim(p), None);
        run(&set_context_sql(&tok));
        assert_fails(
            "SELECT tenancy.audit('job_dead_lettered')",
            "22023",
            "reserved",
        );
    }

    #[pg_test]
    fn a_retry_delay_and_a_dedup_key() {
        let p = "job_opts";
        fixture(p);
        let tok = token(p, json!({"tenant_id": "job_opts_a"}));
        let tok_b = token(p, json!({"tenant_id": "job_opts_b"}));
        run(&format!("SET LOCAL ROLE {p}_app"));
        run(&set_context_sql(&tok));
        let first = one::<i64>(&format!(
            "SELECT tenancy.enqueue('{p}', '{{\"n\": 1}}', dedup_key => 'invoice-7')"
        ));
        let again = one::<i64>(&format!(
            "SELECT tenancy.enqueue('{p}', '{{\"n\": 2}}', dedup_key => 'invoice-7')"
        ));
        assert_eq!(first, again);
        // Another tenant's key of the same name is its own job.
        run(&set_context_sql(&tok_b));
        let other = one::<i64>(&format!(
            "SELECT tenancy.enqueue('{p}', '{{}}', dedup_key => 'invoice-7')"
        ));
        assert_ne!(first, other);
        // A job for later is not ready now.
        run(&format!(
            "SELECT tenancy.enqueue('{p}.later', '{{}}', run_at => now() + interval '1 hour')"
        ));
        run("SELECT tenancy.clear_context(); RESET ROLE");
        run(&format!("SET LOCAL ROLE {p}_worker"));
        assert_eq!(
            one::<i64>(&format!(
                "SELECT (SELECT job_id FROM tenancy.claim_job('{p}.later'))"
            )),
            None
        );
        assert_eq!(claim(p), first);
        assert_eq!(
            one::<String>("SELECT tenancy.fail_job('later', retry_in => interval '0')").as_deref(),
            Some("queued")
        );
        assert_fails(
            &format!("SELECT * FROM tenancy.claim_job('{p}', lease => interval '0')"),
            "22023",
            "lease must be between",
        );
    }
}
