-- pg_tenancy: the triggers that keep every backend's registry cache current
-- (src/registry/cache.rs): a change to any table a verification or a context depends on
-- invalidates the cached verifications of every backend.
--
-- Comes after every table it watches: the registry tables, and tenancy.support_sessions
-- (audit.sql). See src/install.rs.

-- Every change to the registry tells every backend to drop its cached verifications at its
-- next transaction (src/registry/cache.rs).
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
-- A plan's limits are cached with each of its tenants (src/registry/plans.rs).
CREATE TRIGGER registry_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON tenancy.plans
    FOR EACH STATEMENT EXECUTE FUNCTION tenancy._on_registry_change();

-- Ending a support session kills every copy of its carrier (src/audit/support.rs).
CREATE TRIGGER registry_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON tenancy.support_sessions
    FOR EACH STATEMENT EXECUTE FUNCTION tenancy._on_registry_change();
