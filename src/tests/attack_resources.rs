//! Attack class 7 of issue 13: resources a low-privileged caller can exhaust. Every function
//! PUBLIC or the app tier can reach takes bounded input, fills only bounded caches, and quotes
//! at most a short prefix of what it was given; admin-set data that every backend caches is
//! bounded when written; a guarded aggregate group is bounded. Same rules as `tests/mod.rs`.

#[pgrx::pg_schema]
mod tests {
    use pgrx::prelude::*;

    use crate::tests::fixture::{assert_fails, failure, one, pay_table, roles, run, Tier};

    /// The longest error a test accepts: the extension quotes at most 64 characters of input.
    const SHORT: usize = 300;

    fn every_tier(p: &str) {
        roles(
            p,
            &[
                ("app", Tier::App),
                ("job", Tier::Trusted),
                ("worker", Tier::Worker),
                ("admin", Tier::Admin),
                ("nobody", Tier::None),
            ],
        );
    }

    /// Runs `sql` as `role`; if it fails, the SQLSTATE must be one of `states` and the message
    /// short. Returns the failure, if any.
    fn short_or_ok(role: &str, sql: &str, states: &[&str]) -> Option<String> {
        run(&format!("SET LOCAL ROLE {role}"));
        let f = failure(sql);
        run("RESET ROLE");
        if let Some(f) = &f {
            assert!(
                states.iter().any(|s| f.starts_with(&format!("{s}: "))),
                "{role}: {sql}: unexpected {}",
                f.chars().take(200).collect::<String>()
            );
            assert!(
                f.chars().count() <= SHORT,
                "{role}: {sql}: an error of {} characters",
                f.chars().count()
            );
        }
        f
    }

    /// The inventory: exactly these functions are executable by PUBLIC and by the app tier
    /// (beyond what PUBLIC has). A function added to either list must be reviewed for bounded
    /// input, bounded caches and short errors, and tried in `attack_resources_oversized_inputs`.
    #[pg_test]
    fn attack_resources_inventory() {
        every_tier("arin");
        let list = |role: &str| {
            one::<String>(&format!(
                "SELECT string_agg(DISTINCT p.proname, ',' ORDER BY p.proname)
                   FROM pg_proc p
                  WHERE p.pronamespace = 'tenancy'::regnamespace
                    AND has_function_privilege('{role}', p.oid, 'EXECUTE')"
            ))
            .unwrap_or_default()
        };
        assert_eq!(
            list("arin_nobody"),
            "_audit_purging,_castable,_entitled_to_write,_k_anonymity,_k_anonymity_report,_owner_step_leave,\
             _registry_load,_resolve_context,_support_active,_support_write_trigger,age_band,band,band_label,clear_context,context,\
             current_actor,current_job,current_subtree,current_subtree_int8,current_subtree_uuid,current_tenant,\
             current_tenant_int8,current_tenant_uuid,entitled,\
             generalize_date,has_role,k_anonymity,k_anonymity_report,top_code"
        );
        let public = list("arin_nobody");
        let app: Vec<String> = list("arin_app")
            .split(',')
            .filter(|f| !public.split(',').any(|p| p == *f))
            .map(String::from)
            .collect();
        assert_eq!(
            app.join(","),
            "_load_pseudonym_key,audit,enqueue,guard_status,guarded_avg,guarded_count,guarded_percentile,\
             guarded_sum,postgrest_pre_request,pseudonymize,pseudonymize_for_pool,set_context,\
             set_context_from_key,verify_audit"
        );
    }

    /// Oversized arguments to every function PUBLIC, the app, a trusted job and an admin can
    /// reach: refused (or harmless), with a short error. Before the fix `verify_audit`,
    /// `set_tenant`, `create_tenant` and others quoted a megabyte back into the error and the
    /// server log, and the registry loader cached any string it was given.
    #[pg_test]
    fn attack_resources_oversized_inputs() {
        every_tier("arov");
        let big = "repeat('x', 1000000)";
        let errs = [
            "22023", "28000", "42501", "54000", "55000", "42704", "0A000",
        ];
        for sql in [
            format!("SELECT tenancy._registry_load('tenant', {big})"),
            format!("SELECT tenancy._registry_load('api_key', {big})"),
            format!("SELECT tenancy._registry_load('tenant_min_n', {big})"),
            format!("SELECT tenancy._registry_load({big}, 'x')"),
            format!("SELECT tenancy._resolve_context({big})"),
            format!("SELECT tenancy.entitled({big})"),
            format!("SELECT tenancy.has_role({big})"),
            format!("SELECT tenancy.generalize_date(current_date, {big})"),
            "SELECT tenancy.k_anonymity('pg_catalog.pg_class', array_fill('x'::name, ARRAY[100000]))"
                .to_string(),
            format!("SELECT set_config('tenancy.context', {big}, true), tenancy.current_tenant()"),
        ] {
            short_or_ok("arov_nobody", &sql, &errs);
        }
        for sql in [
            format!("SELECT * FROM tenancy.verify_audit({big})"),
            format!("SELECT tenancy.set_context({big})"),
            format!("SELECT tenancy.set_context_from_key({big})"),
            format!("SELECT tenancy.pseudonymize('v', {big})"),
            format!("SELECT tenancy.pseudonymize_for_pool('v', {big})"),
            format!("SELECT tenancy._load_pseudonym_key({big}, false)"),
            format!("SELECT tenancy.audit({big})"),
            format!("SELECT tenancy.audit('x', jsonb_build_object('k', {big}))"),
            format!("SELECT tenancy.enqueue({big})"),
            format!("SELECT tenancy.enqueue('q', jsonb_build_object('k', {big}))"),
            format!("SELECT tenancy.enqueue('q', '{{}}', dedup_key => {big})"),
            format!(
                "SELECT set_config('request.headers', {big}, true), tenancy.postgrest_pre_request()"
            ),
        ] {
            short_or_ok("arov_app", &sql, &errs);
        }
        for sql in [
            format!("SELECT tenancy.set_tenant({big})"),
            format!("SELECT tenancy.set_tenant('arov_t', {big})"),
            format!("SELECT tenancy.sign_token(jsonb_build_object('tenant_id', {big}))"),
        ] {
            short_or_ok("arov_job", &sql, &errs);
        }
        for sql in [
            format!("SELECT * FROM tenancy.claim_job({big})"),
            format!("SELECT tenancy.fail_job({big})"),
            "SELECT tenancy.current_job()".to_string(),
        ] {
            short_or_ok("arov_worker", &sql, &errs);
        }
        for sql in [
            format!("SELECT tenancy.create_tenant({big})"),
            format!("SELECT tenancy.deactivate_tenant({big})"),
            format!("SELECT tenancy.grant_feature('arov_t', {big})"),
            format!("SELECT tenancy.create_api_key({big}, 'l')"),
            format!("SELECT tenancy.revoke_api_key({big})"),
            format!("SELECT tenancy.add_signing_key({big}, gen_random_uuid()::text::bytea)"),
            format!("SELECT tenancy.retire_signing_key({big})"),
            format!("SELECT tenancy.set_plan({big}, '{{}}')"),
            format!("SELECT tenancy.export_tenant({big})"),
            format!("SELECT tenancy.purge_tenant({big}, {big})"),
            format!(
                "SELECT tenancy.create_benchmark_view('tests.arov_v', 'pg_catalog.pg_class', ARRAY['relname'], ARRAY[{big}], 'relname')"
            ),
        ] {
            short_or_ok("arov_admin", &sql, &errs);
        }
        // The forms the fix changed, asserted exactly.
        assert_fails(
            &format!("SELECT * FROM tenancy.verify_audit({big})"),
            "22023",
            "invalid tenant id 'xxxx",
        );
        run("SET LOCAL ROLE arov_job");
        let f = assert_fails(&format!("SELECT tenancy.set_tenant({big})"), "22023", "…");
        assert!(f.chars().count() < 200, "{f}");
        run("RESET ROLE");
        // The JSON parser would quote a bad token whole in its DETAIL: refused before it.
        run("SET LOCAL ROLE arov_app");
        assert_fails(
            &format!(
                "SELECT set_config('request.headers', '{{\"a\": ' || {big} || '}}', true), tenancy.postgrest_pre_request()"
            ),
            "54000",
            "request.headers",
        );
        assert_fails(
            "SELECT set_config('request.headers', '{\"a\": ' || repeat('x', 60000) || '}', true), tenancy.postgrest_pre_request()",
            "22023",
            "not JSON",
        );
        run("RESET ROLE");
    }

    /// The registry loader (SECURITY DEFINER, executable by PUBLIC) caches what it is asked
    /// about, found or not: only keys that can name a row reach the cache, so its entries are
    /// bounded in number (10,000 per kind) and in size (128 characters).
    #[pg_test]
    fn attack_resources_registry_cache_bounded() {
        every_tier("arrc");
        run("SET LOCAL ROLE arrc_nobody");
        for (kind, key) in [
            ("tenant", "repeat('a', 129)"),
            ("tenant", "'a b'"),
            ("tenant_min_n", "repeat('a', 129)"),
            ("api_key", "repeat('a', 17)"),
            ("api_key", "repeat('x', 100000)"),
        ] {
            assert_fails(
                &format!("SELECT tenancy._registry_load('{kind}', {key})"),
                "22023",
                "not a valid",
            );
        }
        // The largest keys that can exist still load (and find nothing).
        run("SELECT tenancy._registry_load('tenant', repeat('a', 128));
             SELECT tenancy._registry_load('api_key', repeat('a', 16))");
    }

    /// Admin-set data that every backend caches or reads on each context is bounded when it is
    /// written: tenant settings, plan limits, signing secrets and the number of live keys.
    #[pg_test]
    fn attack_resources_admin_writes_bounded() {
        every_tier("araw");
        run("SET LOCAL ROLE araw_admin");
        let big_json = "jsonb_build_object('note', repeat('x', 70000))";
        assert_fails(
            &format!("SELECT tenancy.create_tenant('araw_t', settings => {big_json})"),
            "54000",
            "settings",
        );
        run("SELECT tenancy.create_tenant('araw_t', settings => jsonb_build_object('note', repeat('x', 1000)))");
        assert_fails(
            &format!("SELECT tenancy.set_tenant_settings('araw_t', {big_json})"),
            "54000",
            "settings",
        );
        assert_fails(
            "SELECT tenancy.set_plan('araw_plan', jsonb_build_object('statement_timeout', '1s') || jsonb_object_agg('k' || i, repeat('y', 100)))
               FROM generate_series(1, 1000) i",
            "54000",
            "limits",
        );
        assert_fails(
            "SELECT tenancy.add_signing_key('araw_big', convert_to(repeat('k', 1025), 'UTF8'))",
            "54000",
            "at most 1024 bytes",
        );
        run("SELECT tenancy.add_signing_key('araw_ok', convert_to(repeat('k', 1024), 'UTF8'))");
        run("RESET ROLE;
             SELECT tenancy.add_signing_key('araw_k' || i, convert_to(repeat('k', 64), 'UTF8'))
               FROM generate_series(1, 64 - (SELECT count(*) FROM tenancy.signing_keys WHERE retired_at IS NULL)::int) i;
             SET LOCAL ROLE araw_admin");
        assert_fails(
            "SELECT tenancy.add_signing_key('araw_one_more', convert_to(repeat('k', 64), 'UTF8'))",
            "54000",
            "live at once",
        );
    }

    /// One group of a guarded aggregate is bounded by `tenancy.guard_group_limit` (which the app
    /// cannot raise): a percentile's values, a pooled form's tenants (a different tenant text on
    /// every row) and its contributors across tenants.
    #[pg_test]
    fn attack_resources_guard_group_bounded() {
        every_tier("argg");
        pay_table("argg", "int", "SELECT p, p FROM generate_series(1, 1500) p");
        run("SET LOCAL tenancy.guard_group_limit = 1000;
             SET LOCAL max_parallel_workers_per_gather = 0;
             SET LOCAL ROLE argg_app");
        assert_fails(
            "SET tenancy.guard_group_limit = 100000000",
            "42501",
            "permission denied to set parameter \"tenancy.guard_group_limit\"",
        );
        for sql in [
            "SELECT tenancy.guarded_percentile(pay, 0.5, person) FROM tests.argg_t",
            "SELECT tenancy.guarded_count(person, person::text) FROM tests.argg_t",
            "SELECT tenancy.guarded_sum(pay, person, 'one') FROM tests.argg_t",
        ] {
            assert_fails(sql, "54000", "more than 1000");
        }
        // Under the limit the same queries answer.
        assert_eq!(
            one::<bool>(
                "SELECT tenancy.guarded_percentile(pay, 0.5, person) IS NOT NULL
                   FROM tests.argg_t WHERE person <= 1000"
            ),
            Some(true)
        );
    }
}
