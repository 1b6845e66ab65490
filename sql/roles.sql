-- pg_tenancy: SQL-level wrappers, role helpers, triggers and privileges. Runs last in the
-- install script, after every Rust function exists.

-- The contract spells these with `name` arguments; pgrx has no `name` type, so thin SQL
-- wrappers give the exact signature and the work happens in Rust.
CREATE FUNCTION tenancy.protect(
    tbl regclass,
    tenant_column name DEFAULT 'tenant_id',
    shared_column name DEFAULT NULL,
    feature text DEFAULT NULL
) RETURNS void
LANGUAGE sql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT tenancy._protect(tbl::oid, tenant_column::text, shared_column::text, feature) $$;

CREATE FUNCTION tenancy.unprotect(tbl regclass) RETURNS void
LANGUAGE sql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT tenancy._unprotect(tbl::oid) $$;

CREATE FUNCTION tenancy.protect_schema(schema name, tenant_column name DEFAULT 'tenant_id') RETURNS integer
LANGUAGE sql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT tenancy._protect_schema(schema::text, tenant_column::text) $$;

CREATE FUNCTION tenancy.scope_unique(tbl regclass, columns name[]) RETURNS void
LANGUAGE sql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT tenancy._scope_unique(tbl::oid, columns::text[]) $$;

CREATE FUNCTION tenancy.scope_foreign_key(tbl regclass, columns name[], ref_tbl regclass,
                                          ref_columns name[] DEFAULT NULL) RETURNS void
LANGUAGE sql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT tenancy._scope_foreign_key(tbl::oid, columns::text[], ref_tbl::oid, ref_columns::text[]) $$;

-- PostgREST's db-pre-request hook: verify the request's bearer token and set the context
-- for the request's transaction. No Authorization header: no context (zero rows). PostgREST
-- passes headers, lower-cased, as JSON in request.headers.
CREATE FUNCTION tenancy.postgrest_pre_request() RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    headers text := pg_catalog.current_setting('request.headers', true);
    auth text;
BEGIN
    IF headers IS NULL OR headers OPERATOR(pg_catalog.=) '' THEN
        RETURN;
    END IF;
    -- Anyone may SET request.headers: bound it, and never let the JSON parser's error (which
    -- quotes the offending token whole) carry the caller's text into the log.
    IF pg_catalog.octet_length(headers) OPERATOR(pg_catalog.>) 65536 THEN
        RAISE EXCEPTION USING ERRCODE = '54000',
            MESSAGE = 'pg_tenancy: request.headers is longer than 65536 bytes';
    END IF;
    BEGIN
        auth := headers::pg_catalog.json OPERATOR(pg_catalog.->>) 'authorization';
    EXCEPTION WHEN invalid_text_representation THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = 'pg_tenancy: request.headers is not JSON';
    END;
    IF auth IS NULL OR auth OPERATOR(pg_catalog.=) '' THEN
        RETURN;
    END IF;
    IF pg_catalog.lower(pg_catalog.left(auth, 7)) OPERATOR(pg_catalog.<>) 'bearer ' THEN
        RAISE EXCEPTION USING ERRCODE = '28000',
            MESSAGE = 'pg_tenancy: token refused: the Authorization header is not a Bearer token',
            HINT = 'send Authorization: Bearer <token>';
    END IF;
    PERFORM tenancy.set_context(pg_catalog.btrim(pg_catalog.substr(auth, 8)), true);
END
$$;

-- Whether the current tenant is entitled to a feature now (by the clock, so an open
-- transaction does not keep a feature past enabled_until). Runs with the caller's rights;
-- the table's own policy shows each tenant only its entitlements.
CREATE FUNCTION tenancy.entitled(feature text) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT EXISTS (
        SELECT 1 FROM tenancy.entitlements e
         WHERE e.tenant OPERATOR(pg_catalog.=) tenancy.current_tenant()
           AND e.feature OPERATOR(pg_catalog.=) $1
           AND e.enabled_from OPERATOR(pg_catalog.<=) pg_catalog.clock_timestamp()
           AND (e.enabled_until IS NULL OR pg_catalog.clock_timestamp() OPERATOR(pg_catalog.<) e.enabled_until))
$$;
ALTER TABLE tenancy.entitlements ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenancy_isolation ON tenancy.entitlements FOR SELECT TO PUBLIC
    USING (tenant = (SELECT tenancy.current_tenant()));

-- The audit log (sql/audit.sql): each tenant reads its own chain; admins (the role
-- grant_admin gives SELECT on tenancy.tenants) read every chain, the system chain included.
-- Nobody is granted INSERT: rows come from the extension's code, as the extension's owner.
ALTER TABLE tenancy.audit_log ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenancy_isolation ON tenancy.audit_log FOR SELECT TO PUBLIC
    USING (tenant_id = (SELECT tenancy.current_tenant()));
CREATE POLICY tenancy_audit_admin ON tenancy.audit_log FOR SELECT TO PUBLIC
    USING ((SELECT pg_catalog.has_table_privilege('tenancy.tenants'::pg_catalog.regclass, 'SELECT')));

-- Every change to the registry tells every backend to drop its cached verifications at its
-- next transaction (src/cache.rs).
CREATE FUNCTION tenancy._on_registry_change() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM tenancy._registry_changed(TG_RELID);
    -- Under Citus (src/scale/citus.rs) this fires on a node's copy of a reference table,
    -- tenancy.tenants_102008, while the caches watch tenancy.tenants: name it too.
    IF TG_TABLE_NAME OPERATOR(pg_catalog.~) '_[0-9]+$' THEN
        PERFORM tenancy._registry_changed(pg_catalog.to_regclass(pg_catalog.format('%I.%I',
            TG_TABLE_SCHEMA, pg_catalog.regexp_replace(TG_TABLE_NAME, '_[0-9]+$', ''))));
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER registry_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON tenancy.tenants
    FOR EACH STATEMENT EXECUTE FUNCTION tenancy._on_registry_change();
CREATE TRIGGER registry_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON tenancy.signing_keys
    FOR EACH STATEMENT EXECUTE FUNCTION tenancy._on_registry_change();
CREATE TRIGGER registry_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON tenancy.api_keys
    FOR EACH STATEMENT EXECUTE FUNCTION tenancy._on_registry_change();
CREATE TRIGGER registry_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON tenancy.carrier_key
    FOR EACH STATEMENT EXECUTE FUNCTION tenancy._on_registry_change();
CREATE TRIGGER registry_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON tenancy.pseudonym_secrets
    FOR EACH STATEMENT EXECUTE FUNCTION tenancy._on_registry_change();
-- A plan's limits are cached with each of its tenants (src/limits.rs).
CREATE TRIGGER registry_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON tenancy.plans
    FOR EACH STATEMENT EXECUTE FUNCTION tenancy._on_registry_change();

-- Ending a support session kills every copy of its carrier (src/support.rs).
CREATE TRIGGER registry_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON tenancy.support_sessions
    FOR EACH STATEMENT EXECUTE FUNCTION tenancy._on_registry_change();

-- Limits are checked when they are written (22023 naming the bad key), not when a tenant next
-- sets its context.
ALTER TABLE tenancy.plans ADD CONSTRAINT plans_limits_valid CHECK (tenancy._limits_valid(limits, true));
ALTER TABLE tenancy.tenants ADD CONSTRAINT tenants_limits_valid CHECK (tenancy._limits_valid(settings, false));

CREATE FUNCTION tenancy.set_quota(tenant text, tbl regclass, max_rows bigint) RETURNS void
LANGUAGE sql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT tenancy._set_quota(tenant, tbl::oid, max_rows) $$;

INSERT INTO tenancy.carrier_key (secret) VALUES (tenancy._random_bytes(32));

-- A registry row that does not come from protect() (pg_restore's COPY, a hand-written
-- INSERT) has an unknown guard state: the DDL guard then takes the table's state as it finds
-- it, so a restore rebuilding RLS and policies after the data is never refused half-way.
CREATE FUNCTION tenancy._protected_row_incoming() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT tenancy._in_own_ddl() THEN
        NEW.guard_state := NULL;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER protected_row_incoming BEFORE INSERT ON tenancy.protected_tables
    FOR EACH ROW EXECUTE FUNCTION tenancy._protected_row_incoming();

-- Event triggers: the DDL guard, protection on arrival of new tables and partitions, and
-- the registry following dropped tables (src/ddl_guard.rs). SECURITY DEFINER: whoever runs
-- the DDL may not write the registry, and protection on arrival alters the new table.
CREATE FUNCTION tenancy._on_ddl_command_end() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM tenancy._ddl_command_end();
END
$$;
CREATE EVENT TRIGGER tenancy_ddl_command_end ON ddl_command_end
    EXECUTE FUNCTION tenancy._on_ddl_command_end();

CREATE FUNCTION tenancy._on_sql_drop() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM tenancy._sql_drop();
END
$$;
CREATE EVENT TRIGGER tenancy_sql_drop ON sql_drop EXECUTE FUNCTION tenancy._on_sql_drop();

-- Privileges. Nothing is for everyone except what policies and column defaults evaluate
-- with the querying role's rights, plus reading and clearing one's own context.
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
    'has_role', 'context', 'clear_context', '_resolve_context', '_registry_load', 'entitled']);
-- Whoever runs protect() must be able to attach the support-write trigger, and its WHEN clause
-- (_support_active) runs with the writer's rights; the trigger function itself is SECURITY
-- DEFINER and calls _audit_support_write, which is granted to nobody.
SELECT tenancy._grant_functions(NULL, ARRAY[
    '_support_write_trigger', '_support_active', '_audit_purging']);
-- Export reads each table as its owner (src/owner.rs): the step is closed, as that owner, by a
-- call that needs the step's secret token; the tenant-id cast check runs as that owner too.
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
        'create_tenant', 'deactivate_tenant', 'reactivate_tenant',
        'add_signing_key', 'retire_signing_key', 'sign_token',
        'create_api_key', 'revoke_api_key',
        'protect', 'unprotect', '_protect', '_unprotect',
        'protect_schema', '_protect_schema', 'scope_unique', '_scope_unique',
        'scope_foreign_key', '_scope_foreign_key', 'grant_feature', 'revoke_feature',
        'check', '_citus_findings', 'assert_isolated', '_assert_isolated',
        'export_tenant', 'purge_tenant', 'set_plan', 'set_quota', '_set_quota',
        'set_tenant_plan', 'set_tenant_settings']);
    PERFORM tenancy._grant_functions(role, ARRAY['audit', 'verify_audit', 'stats']);
    PERFORM tenancy._grant_functions(role, ARRAY['add_pseudonym_secret', 'drop_pseudonym_secret']);
    PERFORM tenancy._grant_functions(role, ARRAY[
        'guarded_count', 'guarded_sum', 'guarded_avg', 'guarded_percentile', 'guard_status',
        'create_benchmark_view', '_create_benchmark_view', 'drop_benchmark_view', '_drop_benchmark_view']);
    EXECUTE pg_catalog.format('GRANT SELECT ON tenancy.benchmark_views TO %s', role);
    EXECUTE pg_catalog.format(
        'GRANT SELECT (id, created_at) ON tenancy.pseudonym_secrets TO %s', role);
    EXECUTE pg_catalog.format('GRANT SELECT ON tenancy.tenants TO %s', role);
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
    tenancy.grant_support(regrole), tenancy.grant_admin(regrole) FROM PUBLIC;
-- Internal helpers revoked above stay revoked: protect/unprotect are granted by grant_admin.
REVOKE EXECUTE ON FUNCTION tenancy.protect(regclass, name, name, text), tenancy.unprotect(regclass) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION tenancy.set_quota(text, regclass, bigint) FROM PUBLIC;

-- pg_dump keeps the registry (the carrier key is per installation and is made anew).
SELECT pg_catalog.pg_extension_config_dump('tenancy.tenants', '');
SELECT pg_catalog.pg_extension_config_dump('tenancy.signing_keys', '');
SELECT pg_catalog.pg_extension_config_dump('tenancy.api_keys', '');
SELECT pg_catalog.pg_extension_config_dump('tenancy.protected_tables', '');
SELECT pg_catalog.pg_extension_config_dump('tenancy.enrolled_schemas', '');
SELECT pg_catalog.pg_extension_config_dump('tenancy.entitlements', '');
SELECT pg_catalog.pg_extension_config_dump('tenancy.plans', '');
SELECT pg_catalog.pg_extension_config_dump('tenancy.quotas', '');
SELECT pg_catalog.pg_extension_config_dump('tenancy.quota_slots', '');
-- The audit trail travels with a dump, with its chain heads and its id sequence, so that
-- verify_audit() passes after a restore and new rows continue the chains.
SELECT pg_catalog.pg_extension_config_dump('tenancy.audit_log', '');
SELECT pg_catalog.pg_extension_config_dump('tenancy.audit_heads', '');
SELECT pg_catalog.pg_extension_config_dump('tenancy.audit_log_id_seq', '');
-- Pseudonym secrets travel with a dump: a restored database computes the same pseudonyms.
SELECT pg_catalog.pg_extension_config_dump('tenancy.pseudonym_secrets', '');
-- Benchmark views are the owner's objects outside the extension; their registry travels too.
SELECT pg_catalog.pg_extension_config_dump('tenancy.benchmark_views', '');
