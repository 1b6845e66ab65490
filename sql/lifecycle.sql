-- pg_tenancy: tenant export (src/lifecycle.rs): tenancy.export_tenant(), and _castable(),
-- which export, purge and the quota code use to skip tables whose tenant column cannot hold a
-- tenant id.
--
-- plpgsql because export streams query results into the function's tuplestore. Comes after
-- the registry tables and the Rust helpers it calls (_export_plan, _owner_step_enter/_leave,
-- _lifecycle_audit): see src/install.rs.

-- Every row of every protected table of one tenant, referenced tables first. SECURITY
-- DEFINER: the extension's owner lists the tables and writes the audit row. Each table is read
-- as its owner (tenancy._owner_step_enter/_leave, src/infra/owner.rs): to_jsonb() runs the output
-- functions and json casts of the columns' types, and the predicate may cast to a domain, all
-- of which the table's owner chose, so they run with its rights, never the extension's. The
-- step is exempt from forced row level security on the owner's own table, and
-- tenancy._export_plan() gives each table an explicit predicate on its tenant column, typed
-- like its policy. RETURN QUERY puts rows in the function's tuplestore, which spills to disk
-- past work_mem: nothing is built in memory. row_security = off makes a read that RLS would
-- filter an error, never a silently short export.
CREATE FUNCTION tenancy.export_tenant(tenant text)
RETURNS TABLE (table_name text, "row" jsonb)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET row_security = off
AS $$
DECLARE
    t record;
    n bigint;
    counts jsonb := '{}';
    step text;
BEGIN
    IF tenant IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'pg_tenancy: tenant must not be NULL';
    END IF;
    FOR t IN SELECT p.table_name AS tbl, p.tbl_oid, p.source, p.predicate FROM tenancy._export_plan(tenant) p LOOP
        step := tenancy._owner_step_enter(t.tbl_oid);
        RETURN QUERY EXECUTE pg_catalog.format(
            'SELECT %L::pg_catalog.text, pg_catalog.to_jsonb(x.*) FROM %s x WHERE %s',
            t.tbl, t.source, t.predicate) USING tenant;
        GET DIAGNOSTICS n = ROW_COUNT;
        PERFORM tenancy._owner_step_leave(step);
        counts := counts || pg_catalog.jsonb_build_object(t.tbl, n);
    END LOOP;
    -- The tenant's jobs are its data too (payloads, actors, errors).
    RETURN QUERY SELECT 'tenancy.jobs'::pg_catalog.text, pg_catalog.to_jsonb(j.*)
                   FROM tenancy.jobs j WHERE j.tenant OPERATOR(pg_catalog.=) export_tenant.tenant
                  ORDER BY j.id;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n > 0 THEN
        counts := counts || pg_catalog.jsonb_build_object('tenancy.jobs', n);
    END IF;
    PERFORM tenancy._lifecycle_audit(tenant, 'tenant_exported', pg_catalog.jsonb_build_object('rows', counts));
    RETURN;
END
$$;

-- Whether a tenant id is valid input for a column type (export, purge and quotas skip a
-- table whose tenant column cannot hold it, as its policy would match nothing there). Called
-- as the table's owner (a domain's CHECK runs in the cast), so executable by PUBLIC: it tells
-- nothing a caller could not learn with a cast of its own.
CREATE FUNCTION tenancy._castable(value text, typ regtype) RETURNS boolean
LANGUAGE plpgsql STABLE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    EXECUTE pg_catalog.format('SELECT $1::%s', typ) USING value;
    RETURN true;
EXCEPTION WHEN data_exception THEN
    RETURN false;
END
$$;
