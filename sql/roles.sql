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

-- Every change to the registry tells every backend to drop its cached verifications at its
-- next transaction (src/cache.rs).
CREATE FUNCTION tenancy._on_registry_change() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM tenancy._registry_changed(TG_RELID);
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

INSERT INTO tenancy.carrier_key (secret) VALUES (tenancy._random_bytes(32));

-- A dropped table leaves the registry with it. SECURITY DEFINER: whoever drops a protected
-- table may not write tenancy.protected_tables.
CREATE FUNCTION tenancy._on_sql_drop() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    DELETE FROM tenancy.protected_tables p
     USING pg_catalog.pg_event_trigger_dropped_objects() d
     WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
       AND d.objid = p.tbl::pg_catalog.oid;
END
$$;
CREATE EVENT TRIGGER tenancy_sql_drop ON sql_drop EXECUTE FUNCTION tenancy._on_sql_drop();

-- Privileges. Nothing is for everyone except what policies and column defaults evaluate
-- with the querying role's rights, plus reading and clearing one's own context.
REVOKE ALL ON ALL TABLES IN SCHEMA tenancy FROM PUBLIC;
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA tenancy FROM PUBLIC;
GRANT USAGE ON SCHEMA tenancy TO PUBLIC;
GRANT SELECT ON tenancy.protected_tables TO PUBLIC;

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
    'has_role', 'context', 'clear_context', '_resolve_context']);
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
    PERFORM tenancy._grant_functions(role, ARRAY['set_context', 'set_context_from_key']);
    PERFORM tenancy._grant_functions(role, ARRAY[
        'pseudonymize', 'pseudonymize_for_pool', '_load_pseudonym_key']);
END
$$;

CREATE FUNCTION tenancy.grant_trusted(role regrole) RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM tenancy.grant_app(role);
    PERFORM tenancy._grant_functions(role, ARRAY['set_tenant', 'sign_token']);
END
$$;

CREATE FUNCTION tenancy.grant_support(role regrole) RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM tenancy.grant_app(role);
    PERFORM tenancy._grant_functions(role, ARRAY['begin_support', 'end_support']);
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
        'protect', 'unprotect', '_protect', '_unprotect']);
    PERFORM tenancy._grant_functions(role, ARRAY['add_pseudonym_secret', 'drop_pseudonym_secret']);
    EXECUTE pg_catalog.format(
        'GRANT SELECT (id, created_at) ON tenancy.pseudonym_secrets TO %s', role);
    EXECUTE pg_catalog.format('GRANT SELECT ON tenancy.tenants TO %s', role);
    EXECUTE pg_catalog.format(
        'GRANT SELECT (kid, alg, created_at, retired_at) ON tenancy.signing_keys TO %s', role);
    EXECUTE pg_catalog.format(
        'GRANT SELECT (key_id, tenant, label, roles, created_at, expires_at, revoked_at) ON tenancy.api_keys TO %s',
        role);
    EXECUTE pg_catalog.format(
        'GRANT SELECT, INSERT, UPDATE, DELETE ON tenancy.protected_tables TO %s', role);
END
$$;

REVOKE EXECUTE ON FUNCTION tenancy.grant_app(regrole), tenancy.grant_trusted(regrole),
    tenancy.grant_support(regrole), tenancy.grant_admin(regrole) FROM PUBLIC;
-- Internal helpers revoked above stay revoked: protect/unprotect are granted by grant_admin.
REVOKE EXECUTE ON FUNCTION tenancy.protect(regclass, name, name, text), tenancy.unprotect(regclass) FROM PUBLIC;

-- pg_dump keeps the registry (the carrier key is per installation and is made anew).
SELECT pg_catalog.pg_extension_config_dump('tenancy.tenants', '');
SELECT pg_catalog.pg_extension_config_dump('tenancy.signing_keys', '');
SELECT pg_catalog.pg_extension_config_dump('tenancy.api_keys', '');
SELECT pg_catalog.pg_extension_config_dump('tenancy.protected_tables', '');
-- Pseudonym secrets travel with a dump: a restored database computes the same pseudonyms.
SELECT pg_catalog.pg_extension_config_dump('tenancy.pseudonym_secrets', '');
