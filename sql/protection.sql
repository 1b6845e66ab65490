-- pg_tenancy: the SQL face of protection (src/protection/): the `name`-argument wrappers of
-- protect(), unprotect(), protect_schema(), scope_unique() and scope_foreign_key(), and the
-- trigger that marks registry rows restored by pg_restore.
--
-- Comes after the registry tables (tenancy.protected_tables) and the Rust functions the
-- wrappers call (_protect, _unprotect, _protect_schema, _scope_unique, _scope_foreign_key,
-- _in_own_ddl): see src/install.rs. Privileges: privileges.sql (grant_admin).

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
