-- pg_tenancy: feature entitlements (src/protection/features.rs): tenancy.entitled() and the
-- policy that shows each tenant only its own rows of tenancy.entitlements.
--
-- Comes after the registry tables (tenancy.entitlements) and tenancy.current_tenant() (Rust),
-- which the policy names: PostgreSQL resolves a policy's functions when the policy is
-- created. See src/install.rs. Privileges: privileges.sql (entitled() is for everyone).

-- Whether the current tenant is entitled to a feature now (by the clock, so an open
-- transaction does not keep a feature past enabled_until). Runs with the caller's rights;
-- the table's own policy shows each tenant only its entitlements.
--
-- On Citus, entitlements is a reference table, and a call inside a query Citus sends to a
-- shard (a query on a distributed table) reads it from there, which Citus refuses unless
-- nested distributed execution is allowed: allowed for this read only, as for the registry
-- reads of context verification (a reference table has a copy on every node). Without Citus
-- the setting is a placeholder nobody reads; the function is not inlined either way (it
-- already pins search_path).
CREATE FUNCTION tenancy.entitled(feature text) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
SET citus.allow_nested_distributed_execution = on
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
