-- pg_tenancy: privileges. What PUBLIC may use (almost nothing), _grant_functions(), and the
-- four tier helpers grant_app(), grant_trusted(), grant_support() and grant_admin(), each of
-- which grants exactly one tier (docs/security.md).
--
-- Runs last (`finalize` in src/install.rs): REVOKE ... ON ALL FUNCTIONS/TABLES IN SCHEMA
-- tenancy reaches only what exists, so every function and table must exist by now; and
-- _grant_functions() grants by name, which needs every function it names.

-- Nothing is for everyone except what policies and column defaults evaluate with the
-- querying role's rights, plus reading and clearing one's own context.
REVOKE ALL ON ALL TABLES IN SCHEMA tenancy FROM PUBLIC;
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA tenancy FROM PUBLIC;
GRANT USAGE ON SCHEMA tenancy TO PUBLIC;
GRANT SELECT ON tenancy.protected_tables TO PUBLIC;
GRANT SELECT ON tenancy.entitlements TO PUBLIC;
GRANT SELECT ON tenancy.audit_log TO PUBLIC;

CREATE FUNCTION tenancy._grant_functions(role regrole, functions text[]) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    f regprocedure;
BEGIN
    FOR f IN
        SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p
         WHERE p.pronamespace = 'tenancy'::regnamespace AND p.proname = ANY (functions)
         ORDER BY 1
    LOOP
        IF role IS NULL THEN
            EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION %s TO PUBLIC', f);
        ELSE
            EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION %s TO %s', f, role);
        END IF;
    END LOOP;
END
$$;
REVOKE EXECUTE ON FUNCTION tenancy._grant_functions(regrole, text[]) FROM PUBLIC;

SELECT tenancy._grant_functions(NULL, ARRAY[
    'current_tenant', 'current_tenant_uuid', 'current_tenant_int8', 'current_actor',
    'has_role', 'context', 'clear_context', '_resolve_context', '_registry_load', 'entitled',
    '_entitled_to_write', 'current_job', 'current_subtree', 'current_subtree_uuid', 'current_subtree_int8']);
-- Whoever runs protect() must be able to attach the support-write trigger, and its WHEN clause
-- (_support_active) runs with the writer's rights; the trigger function itself is SECURITY
-- DEFINER and calls _audit_support_write, which is granted to nobody.
SELECT tenancy._grant_functions(NULL, ARRAY[
    '_support_write_trigger', '_support_active', '_audit_purging']);
-- Export reads each table as its owner (src/infra/owner.rs): the step is closed, as that owner,
-- by a call that needs the step's secret token; the tenant-id cast check runs as that owner
-- too.
SELECT tenancy._grant_functions(NULL, ARRAY['_owner_step_leave', '_castable']);
-- De-identification helpers that read nothing but their arguments, or only what the caller
-- can already read (k_anonymity runs with the caller's rights).
SELECT tenancy._grant_functions(NULL, ARRAY[
    'band', 'band_label', 'generalize_date', 'age_band', 'top_code',
    'k_anonymity', 'k_anonymity_report', '_k_anonymity', '_k_anonymity_report']);

-- Role helpers: each grants exactly one tier, idempotently. Callable by the extension's
-- owner (a superuser), who holds the grant options.
CREATE FUNCTION tenancy.grant_app(role regrole) RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF role IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'pg_tenancy: role must not be NULL';
    END IF;
    PERFORM tenancy._grant_functions(role, ARRAY['set_context', 'set_context_from_key', 'postgrest_pre_request']);
    PERFORM tenancy._grant_functions(role, ARRAY['audit', 'verify_audit']);
    -- Jobs: enqueued for the context's own tenant only; its own jobs readable (docs/jobs.md).
    PERFORM tenancy._grant_functions(role, ARRAY['enqueue']);
    EXECUTE pg_catalog.format('GRANT SELECT ON tenancy.jobs TO %s', role);
    PERFORM tenancy._grant_functions(role, ARRAY[
        'pseudonymize', 'pseudonymize_for_pool', '_load_pseudonym_key']);
    -- The guarded aggregates (their support functions run with the aggregate owner's rights).
    PERFORM tenancy._grant_functions(role, ARRAY[
        'guarded_count', 'guarded_sum', 'guarded_avg', 'guarded_percentile', 'guard_status']);
    -- Citus propagates no grant on an extension's functions: the same on every worker.
    PERFORM tenancy._grants_to_workers(role);
END
$$;

CREATE FUNCTION tenancy.grant_trusted(role regrole) RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM tenancy.grant_app(role);
    PERFORM tenancy._grant_functions(role, ARRAY['set_tenant', 'sign_token']);
    PERFORM tenancy._grants_to_workers(role);
END
$$;

-- Workers (docs/jobs.md): the app tier plus claiming and ending jobs. A claim takes the
-- job's context from the job's row and nothing else, so the tier names no tenant.
CREATE FUNCTION tenancy.grant_worker(role regrole) RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM tenancy.grant_app(role);
    PERFORM tenancy._grant_functions(role, ARRAY['claim_job', 'complete_job', 'fail_job']);
    PERFORM tenancy._grants_to_workers(role);
END
$$;

CREATE FUNCTION tenancy.grant_support(role regrole) RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM tenancy.grant_app(role);
    PERFORM tenancy._grant_functions(role, ARRAY['begin_support', 'end_support']);
    PERFORM tenancy._grants_to_workers(role);
END
$$;

CREATE FUNCTION tenancy.grant_admin(role regrole) RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF role IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'pg_tenancy: role must not be NULL';
    END IF;
    PERFORM tenancy._grant_functions(role, ARRAY[
        'create_tenant', 'deactivate_tenant', 'reactivate_tenant', 'move_tenant',
        'add_signing_key', 'retire_signing_key', 'sign_token',
        'create_api_key', 'revoke_api_key',
        'protect', 'unprotect', '_protect', '_unprotect',
        'protect_schema', '_protect_schema', 'scope_unique', '_scope_unique',
        'scope_foreign_key', '_scope_foreign_key', 'grant_feature', 'revoke_feature',
        'check', '_citus_findings', 'assert_isolated', '_assert_isolated',
        'export_tenant', 'purge_tenant', 'set_plan', 'set_quota', '_set_quota',
        'set_tenant_plan', 'set_tenant_settings']);
    -- Issue 21: support endings nobody was present for, tenant rename and removal.
    PERFORM tenancy._grant_functions(role, ARRAY['close_support_sessions', 'rename_tenant', 'drop_tenant']);
    PERFORM tenancy._grant_functions(role, ARRAY['audit', 'verify_audit', 'stats']);
    -- Issue 15: check()'s Citus co-location rules.
    PERFORM tenancy._grant_functions(role, ARRAY['_citus_colocation_findings']);
    PERFORM tenancy._grant_functions(role, ARRAY['add_pseudonym_secret', 'drop_pseudonym_secret']);
    PERFORM tenancy._grant_functions(role, ARRAY[
        'guarded_count', 'guarded_sum', 'guarded_avg', 'guarded_percentile', 'guard_status',
        'create_benchmark_view', '_create_benchmark_view', 'drop_benchmark_view', '_drop_benchmark_view']);
    EXECUTE pg_catalog.format('GRANT SELECT ON tenancy.benchmark_views TO %s', role);
    EXECUTE pg_catalog.format(
        'GRANT SELECT (id, created_at) ON tenancy.pseudonym_secrets TO %s', role);
    EXECUTE pg_catalog.format('GRANT SELECT ON tenancy.tenants, tenancy.tenant_tree TO %s', role);
    EXECUTE pg_catalog.format('GRANT SELECT ON tenancy.support_sessions TO %s', role);
    EXECUTE pg_catalog.format('GRANT SELECT ON tenancy.plans, tenancy.quotas, tenancy.quota_slots TO %s', role);
    EXECUTE pg_catalog.format(
        'GRANT SELECT (kid, alg, created_at, retired_at) ON tenancy.signing_keys TO %s', role);
    EXECUTE pg_catalog.format(
        'GRANT SELECT (key_id, tenant, label, roles, created_at, expires_at, revoked_at) ON tenancy.api_keys TO %s',
        role);
    -- Read-only registry: a row in protected_tables makes export, purge and the quota code act
    -- on that relation with the extension owner's rights, so rows come only from protect()
    -- (which proves ownership of the table) and pg_restore. Deleting an enrolment only stops
    -- protecting tables created there later.
    EXECUTE pg_catalog.format('GRANT SELECT ON tenancy.protected_tables TO %s', role);
    EXECUTE pg_catalog.format('GRANT SELECT, DELETE ON tenancy.enrolled_schemas TO %s', role);
    PERFORM tenancy._grants_to_workers(role);
END
$$;

REVOKE EXECUTE ON FUNCTION tenancy.grant_app(regrole), tenancy.grant_trusted(regrole),
    tenancy.grant_worker(regrole),
    tenancy.grant_support(regrole), tenancy.grant_admin(regrole) FROM PUBLIC;
-- Internal helpers revoked above stay revoked: protect/unprotect are granted by grant_admin.
REVOKE EXECUTE ON FUNCTION tenancy.protect(regclass, name, name, text), tenancy.unprotect(regclass) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION tenancy.set_quota(text, regclass, bigint) FROM PUBLIC;
