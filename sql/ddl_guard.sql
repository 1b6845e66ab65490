-- pg_tenancy: the event triggers of the DDL guard (src/protection/ddl_guard.rs): protection
-- on arrival of new tables and partitions, refusal of DDL that breaks a protected table, and
-- the registry following dropped tables.
--
-- Comes after every other sql/ file but privileges.sql: from the moment these triggers exist,
-- every later DDL statement of the install script runs them. pgrx cannot place a file after
-- all of its own CREATE FUNCTIONs and still before `finalize`, so some of those may follow;
-- the guard returns at once for them (a function is not a table), as it does for
-- privileges.sql's GRANTs. Needs _ddl_command_end and _sql_drop (Rust). See src/install.rs.

-- Citus: what this node's DDL guard knows of the shards it holds of protected tables and, on
-- a worker, of their shells (the worker's copy of the coordinator's table): for a shell, the
-- protection it must keep (as protect() left it, NULL for a shard, whose protection is its
-- table's); for both, the violations it had after the last command, as guard_state in
-- tenancy.protected_tables. Written by the guard only, local to each node, never a Citus
-- table (src/protection/ddl_guard.rs, docs/scale-out.md).
CREATE TABLE tenancy.citus_guarded (
    rel oid PRIMARY KEY,
    tenant_column name,
    column_type text,
    isolation_qual text,
    shared_column name,
    feature_qual text,
    feature_check text,
    guard_state text[] NOT NULL DEFAULT '{}',
    -- created by the current transaction and not whole yet: it must be by its commit
    building boolean NOT NULL DEFAULT false,
    -- the Citus table it belongs to, and whether it is a shard (else a shell): the guard
    -- knows it by OID from then on, whatever its name becomes (Citus knows a shard by name)
    logical oid,
    shard boolean
);
REVOKE ALL ON tenancy.citus_guarded FROM PUBLIC;

-- A shard is built by several commands (CREATE TABLE, then its flags, policies, owner), which
-- the guard lets pass one by one while the transaction that created it runs; at its commit
-- the shard must hold its table's protection. Citus builds shards so; a table owner who drops
-- a shard and creates a table of that name (citus.enable_manual_changes_to_shards) does not.
CREATE FUNCTION tenancy._on_citus_guarded_built() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM tenancy._citus_built(NEW.rel);
    RETURN NULL;
END
$$;
CREATE CONSTRAINT TRIGGER tenancy_citus_built AFTER INSERT OR UPDATE ON tenancy.citus_guarded
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (NEW.building)
    EXECUTE FUNCTION tenancy._on_citus_guarded_built();

-- Event triggers: the DDL guard, protection on arrival of new tables and partitions, and the
-- registry following dropped tables (src/protection/ddl_guard.rs). SECURITY DEFINER: whoever
-- runs the DDL may not write the registry, and protection on arrival alters the new table.
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
