-- pg_tenancy 0.1.0 -> 0.2.0, run by ALTER EXTENSION pg_tenancy UPDATE.
-- 0.2.0 is UNRELEASED: this script is maintained (each merge that changes the SQL surface adds
-- to it; scripts/schema-check.sh in make lint says what is missing) until 0.2.0 is released,
-- then never edited again. Hand-checked against the catalog listing of a fresh 0.2.0 install
-- (scripts/catalog-listing.sql); tests/system/upgrade.sh runs it on a database in use.
-- What this script cannot do, docs/upgrading.md (0.1.0 -> 0.2.0) asks after it: grant_admin()
-- again for each admin role; protect() again over tenancy.protected_tables (objects protect()
-- made on the application's tables under 0.1.0 keep working until then); scope_unique() again
-- for keys scoped under 0.1.0.
\echo Use "ALTER EXTENSION pg_tenancy UPDATE" to load this file. \quit

-- Registry columns (added last, as the 0.2.0 install script declares them).
-- The entitlement policy's WITH CHECK as PostgreSQL deparses it (DDL guard, check()'s
-- feature_policy_altered). NULL for tables protected under 0.1.0, whose policies have no WITH
-- CHECK of their own: both compare the USING expression then, as 0.1.0 did.
ALTER TABLE tenancy.protected_tables ADD COLUMN feature_check text;

-- A support session ends with the backend that opened it (NULL: a session opened under 0.1.0,
-- tied to no backend, ends by end_support() or expiry as it did), and its support_ended row is
-- on the record.
ALTER TABLE tenancy.support_sessions
    ADD COLUMN opened_pid integer,
    ADD COLUMN opened_backend_start timestamptz,
    ADD COLUMN opened_system bigint,
    ADD COLUMN end_recorded boolean NOT NULL DEFAULT false;
-- 0.1.0 wrote support_ended whenever it set ended_at (end_support(), a replacing
-- begin_support()); sessions that only expired had no row: the next sweep writes it.
UPDATE tenancy.support_sessions SET end_recorded = true WHERE ended_at IS NOT NULL;

-- New functions of the library.
-- pg_tenancy::protection::features::_entitled_to_write (the entitlement policy's WITH CHECK:
-- its refusal names the feature)
CREATE FUNCTION tenancy."_entitled_to_write"(
	"feature" TEXT /* & str */
) RETURNS bool /* bool */
STRICT STABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', '_entitled_to_write_wrapper';

-- pg_tenancy::scale::citus::_grants_to_workers
CREATE FUNCTION tenancy."_grants_to_workers"(
	"role" oid /* pg_sys :: Oid */
) RETURNS void
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', '_grants_to_workers_wrapper';

-- pg_tenancy::scale::citus::citus_setup
CREATE FUNCTION tenancy."citus_setup"() RETURNS INT /* i32 */
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'citus_setup_wrapper';

-- pg_tenancy::audit::support::close_support_sessions
CREATE FUNCTION tenancy."close_support_sessions"() RETURNS bigint /* i64 */
STRICT VOLATILE SECURITY DEFINER PARALLEL UNSAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'close_support_sessions_wrapper';

-- pg_tenancy::lifecycle::drop_tenant
CREATE FUNCTION tenancy."drop_tenant"(
	"id" TEXT, /* Option < & str > */
	"audit" TEXT /* Option < & str > */
) RETURNS void
VOLATILE SECURITY DEFINER PARALLEL UNSAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'drop_tenant_wrapper';

-- pg_tenancy::lifecycle::rename_tenant
CREATE FUNCTION tenancy."rename_tenant"(
	"old" TEXT, /* Option < & str > */
	"new" TEXT /* Option < & str > */
) RETURNS void
VOLATILE SECURITY DEFINER PARALLEL UNSAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'rename_tenant_wrapper';

-- The registry trigger also names the registry table when it fires on a Citus node's copy of
-- a reference table (sql/registry_triggers.sql).
CREATE OR REPLACE FUNCTION tenancy._on_registry_change() RETURNS trigger
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

CREATE OR REPLACE FUNCTION tenancy.grant_trusted(role regrole) RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM tenancy.grant_app(role);
    PERFORM tenancy._grant_functions(role, ARRAY['set_tenant', 'sign_token']);
    PERFORM tenancy._grants_to_workers(role);
END
$$;

CREATE OR REPLACE FUNCTION tenancy.grant_support(role regrole) RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM tenancy.grant_app(role);
    PERFORM tenancy._grant_functions(role, ARRAY['begin_support', 'end_support']);
    PERFORM tenancy._grants_to_workers(role);
END
$$;

-- ---- 0.2.0, merged in session 5 (organizations, jobs, Citus on every node) ----
-- Organizations (docs/organizations.md): the tenant tree, added last as the install declares it.
ALTER TABLE tenancy.tenants ADD COLUMN parent text REFERENCES tenancy.tenants (id) ON UPDATE CASCADE,
    ADD CHECK (parent IS DISTINCT FROM id);
CREATE INDEX tenants_parent_idx ON tenancy.tenants (parent);
-- create_tenant() gained a parent argument (a 0.1.0 dump's GRANT on the old signature fails
-- to restore: docs/upgrading.md).
DROP FUNCTION tenancy.create_tenant(text, text, text, jsonb);

CREATE VIEW tenancy.tenant_tree WITH (security_invoker = true) AS
WITH RECURSIVE tree (id, parent, depth, root, path) AS (
    SELECT t.id, t.parent, 1, t.id, ARRAY[t.id]
      FROM tenancy.tenants t WHERE t.parent IS NULL
    UNION ALL
    SELECT t.id, t.parent, tree.depth + 1, tree.root, tree.path || t.id
      FROM tenancy.tenants t JOIN tree ON t.parent = tree.id
     WHERE tree.depth < 8
)
SELECT tree.id, tree.parent, tree.depth, tree.root, tree.path,
       t.name, t.status,
       NOT EXISTS (SELECT 1 FROM tenancy.tenants c WHERE c.parent = tree.id) AS is_leaf
  FROM tree JOIN tenancy.tenants t ON t.id = tree.id;

CREATE OR REPLACE FUNCTION tenancy._citus_findings(schema name)
RETURNS TABLE (severity text, rule text, object text, detail text, fix text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $citus$
DECLARE
    -- citus_shard_unprotected: what a placement must share with its table, read on the
    -- placement's node by run_command_on_placements() (%s: the shard's name) and here (%s: the
    -- table's OID): the row level security flags, the owner, the policies pg_tenancy made or
    -- that widen what tenants see (permissive ones), and how many parents and children it has
    -- in pg_inherits (a query through a parent skips the placement's policies; a child adds
    -- rows to what it shows; Citus gives a partition's placements their table's).
    placement_state CONSTANT text := $s$SELECT pg_catalog.jsonb_build_object(
        'rls', c.relrowsecurity, 'force', c.relforcerowsecurity, 'owner', pg_catalog.pg_get_userbyid(c.relowner),
        'parents', (SELECT pg_catalog.count(*) FROM pg_catalog.pg_inherits i WHERE i.inhrelid OPERATOR(pg_catalog.=) c.oid),
        'children', (SELECT pg_catalog.count(*) FROM pg_catalog.pg_inherits i WHERE i.inhparent OPERATOR(pg_catalog.=) c.oid),
        'policies', coalesce((SELECT pg_catalog.jsonb_object_agg(p.polname, pg_catalog.jsonb_build_object(
                                  'permissive', p.polpermissive, 'cmd', p.polcmd,
                                  'roles', (SELECT pg_catalog.jsonb_agg(CASE WHEN r OPERATOR(pg_catalog.=) 0 THEN 'public' ELSE pg_catalog.pg_get_userbyid(r)::pg_catalog.text END ORDER BY 1)
                                              FROM pg_catalog.unnest(p.polroles) r),
                                  'using', pg_catalog.pg_get_expr(p.polqual, p.polrelid),
                                  'check', pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid)))
                                FROM pg_catalog.pg_policy p
                               WHERE p.polrelid OPERATOR(pg_catalog.=) c.oid
                                 AND (p.polpermissive OR p.polname::pg_catalog.text IN ('tenancy_isolation', 'tenancy_shared', 'tenancy_feature'))),
                              '{}'::pg_catalog.jsonb))::pg_catalog.text
          FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) '%s'::pg_catalog.regclass::pg_catalog.oid$s$;
    t record;
    mine jsonb;
BEGIN
    IF to_regclass('pg_catalog.pg_dist_partition') IS NULL THEN
        RETURN;
    END IF;
    -- A placement of a protected distributed or reference table that differs from its table
    -- (docs/checker.md, citus_shard_unprotected): the workers enforce the shards' policies, so
    -- a shard without them leaks whatever the coordinator's table says. Asked from the
    -- coordinator, through Citus's own API, as the caller.
    IF citus_is_coordinator() THEN
        FOR t IN
            SELECT p.tbl, format('%I.%I', n.nspname, c.relname) AS name, p.tenant_column, p.shared_column, p.feature
              FROM tenancy.protected_tables p
              JOIN pg_dist_partition d ON d.logicalrelid = p.tbl
              JOIN pg_class c ON c.oid = p.tbl
              JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE (schema IS NULL OR n.nspname = schema)
             ORDER BY 2
        LOOP
            EXECUTE format(placement_state, t.tbl::oid) INTO mine;
            RETURN QUERY
            SELECT 'critical'::text, 'citus_shard_unprotected'::text,
                   format('shard %s of %s on %s:%s', w.shardid, t.name, w.nodename, w.nodeport),
                   CASE WHEN s.st IS NULL
                        THEN format('could not be read (%s): whether its policies isolate tenants is unknown', w.result)
                        ELSE 'differs from its table, and the workers enforce the shard''s policies, not the table''s: '
                             || concat_ws('; ',
                                  CASE WHEN (s.st ->> 'rls') IS DISTINCT FROM (mine ->> 'rls') THEN
                                       format('row level security is %s', CASE WHEN (s.st ->> 'rls')::boolean THEN 'enabled' ELSE 'disabled' END) END,
                                  CASE WHEN (s.st ->> 'force') IS DISTINCT FROM (mine ->> 'force') THEN
                                       format('row level security is %s', CASE WHEN (s.st ->> 'force')::boolean THEN 'forced' ELSE 'not forced' END) END,
                                  CASE WHEN (s.st ->> 'owner') IS DISTINCT FROM (mine ->> 'owner') THEN
                                       format('it is owned by %I, its table by %I', s.st ->> 'owner', mine ->> 'owner') END,
                                  CASE WHEN (s.st ->> 'parents') IS DISTINCT FROM (mine ->> 'parents') THEN
                                       format('it is a partition or inheritance child of %s table(s), its table of %s (a query through such a parent skips its policies)', s.st ->> 'parents', mine ->> 'parents') END,
                                  CASE WHEN (s.st ->> 'children') IS DISTINCT FROM (mine ->> 'children') THEN
                                       format('it has %s partition(s) or inheritance children, its table %s (their rows show among its tenants)', s.st ->> 'children', mine ->> 'children') END,
                                  (SELECT string_agg(CASE WHEN NOT (s.st -> 'policies') ? k THEN format('policy %I is missing', k)
                                                          WHEN NOT (mine -> 'policies') ? k THEN format('policy %I is not on its table', k)
                                                          ELSE format('policy %I differs', k) END, '; ' ORDER BY k)
                                     FROM (SELECT jsonb_object_keys(mine -> 'policies') UNION SELECT jsonb_object_keys(s.st -> 'policies')) AS keys(k)
                                    WHERE (s.st -> 'policies' -> k) IS DISTINCT FROM (mine -> 'policies' -> k)))
                   END,
                   concat_ws(' ',
                       format('SELECT tenancy.protect(%L, %L%s%s);', t.name, t.tenant_column,
                              CASE WHEN t.shared_column IS NOT NULL OR t.feature IS NOT NULL THEN format(', %L', t.shared_column) ELSE '' END,
                              CASE WHEN t.feature IS NOT NULL THEN format(', %L', t.feature) ELSE '' END),
                       CASE WHEN (s.st ->> 'owner') IS DISTINCT FROM (mine ->> 'owner') THEN
                            format('SELECT run_command_on_placements(%L, %L);', t.name, format('ALTER TABLE %%s OWNER TO %I', mine ->> 'owner')) END,
                       (SELECT string_agg(format('SELECT run_command_on_placements(%L, %L);', t.name, format('DROP POLICY IF EXISTS %I ON %%s', k)), ' ' ORDER BY k)
                          FROM jsonb_object_keys(s.st -> 'policies') AS keys(k)
                         WHERE NOT (mine -> 'policies') ? k))
              FROM run_command_on_placements(t.tbl, placement_state) w
             CROSS JOIN LATERAL (SELECT CASE WHEN w.success AND left(w.result, 1) = '{' THEN w.result::jsonb END AS st) s
             WHERE s.st IS DISTINCT FROM mine
             ORDER BY w.shardid, w.nodename, w.nodeport;
        END LOOP;
    END IF;
    -- The registry left local while the cluster has workers: each worker verifies contexts
    -- against its own tenants and keys, and its own carrier key.
    RETURN QUERY EXECUTE $q$
        SELECT 'critical'::text, 'citus_registry_local'::text, 'schema tenancy'::text,
               format('the registry (%s) is local to this node while Citus has workers: each worker verifies contexts with its own tenants, keys and carrier key, so contexts made here do not verify there, and deactivations, retirements and revocations made here do not reach them',
                      string_agg('tenancy.' || r.name, ', ' ORDER BY r.name)),
               'SELECT tenancy.citus_setup();'::text
          FROM unnest('{tenants,signing_keys,api_keys,carrier_key,pseudonym_secrets,plans,entitlements,support_sessions}'::text[]) AS r(name)
         WHERE NOT EXISTS (SELECT 1 FROM pg_dist_partition d
                            WHERE d.logicalrelid = to_regclass('tenancy.' || quote_ident(r.name)))
           AND EXISTS (SELECT 1 FROM pg_dist_node n WHERE n.groupid <> 0 AND n.noderole = 'primary')
        HAVING count(*) > 0
    $q$;
    -- A protected table distributed by another column than its tenant column.
    RETURN QUERY EXECUTE $q$
        SELECT 'medium'::text, 'citus_not_distributed_by_tenant'::text, format('%I.%I', n.nspname, c.relname),
               format('is distributed by column %I, not by its tenant column %I: every query of one tenant goes to every shard, it cannot be joined co-located with the other tenant tables, and a large tenant cannot be moved to its own shard',
                      column_to_column_name(d.logicalrelid, d.partkey), p.tenant_column),
               format('SELECT alter_distributed_table(%L, distribution_column := %L);',
                      format('%I.%I', n.nspname, c.relname), p.tenant_column)
          FROM tenancy.protected_tables p
          JOIN pg_dist_partition d ON d.logicalrelid = p.tbl
          JOIN pg_class c ON c.oid = p.tbl
          JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE d.partkey IS NOT NULL AND NOT c.relispartition
           AND column_to_column_name(d.logicalrelid, d.partkey) IS DISTINCT FROM p.tenant_column::text
           AND ($1 IS NULL OR n.nspname = $1)
    $q$ USING schema;
    -- A table protected before Citus was installed: its policies hold a sub-select and it has
    -- the support-write trigger, both of which Citus refuses, so it cannot be distributed.
    RETURN QUERY EXECUTE $q$
        SELECT 'medium'::text, 'citus_single_node_protection'::text, format('%I.%I', n.nspname, c.relname),
               'was protected before Citus was installed: its policies hold a sub-select and it has the support-write trigger, which Citus refuses, so create_distributed_table() and create_reference_table() fail on it'::text,
               format('SELECT tenancy.protect(%L, %L%s%s);', format('%I.%I', n.nspname, c.relname), p.tenant_column,
                      CASE WHEN p.shared_column IS NOT NULL OR p.feature IS NOT NULL THEN format(', %L', p.shared_column) ELSE '' END,
                      CASE WHEN p.feature IS NOT NULL THEN format(', %L', p.feature) ELSE '' END)
          FROM tenancy.protected_tables p
          JOIN pg_class c ON c.oid = p.tbl
          JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE NOT EXISTS (SELECT 1 FROM pg_dist_partition d WHERE d.logicalrelid = p.tbl)
           AND (EXISTS (SELECT 1 FROM pg_policy pol
                         WHERE pol.polrelid = p.tbl AND pol.polname IN ('tenancy_isolation', 'tenancy_feature')
                           AND pg_get_expr(pol.polqual, pol.polrelid) ~* '\mSELECT\M')
                OR EXISTS (SELECT 1 FROM pg_trigger tg WHERE tg.tgrelid = p.tbl AND tg.tgname = 'tenancy_support_audit'))
           AND ($1 IS NULL OR n.nspname = $1)
    $q$ USING schema;
    -- A worker without pg_tenancy, or with another version: its shards' policies call
    -- functions it does not have, or that verify by other rules. Asked from the coordinator
    -- only (through Citus's own API), and only for a check of the whole database.
    IF schema IS NULL AND citus_is_coordinator()
       AND EXISTS (SELECT 1 FROM pg_dist_node n WHERE n.groupid <> 0 AND n.noderole = 'primary') THEN
        RETURN QUERY EXECUTE $q$
            SELECT 'critical'::text, 'citus_worker_version'::text,
                   format('node %s:%s', w.nodename, w.nodeport),
                   CASE WHEN NOT w.success
                        THEN format('could not be asked for its pg_tenancy version (%s): its policies and context verification are unknown', w.result)
                        WHEN w.result = ''
                        THEN 'has no pg_tenancy: the policies of its shards call functions it does not have, and it cannot verify a context'
                        ELSE format('has pg_tenancy %s where the coordinator has %s: its shards are protected and contexts verified by other rules', w.result, e.extversion)
                   END,
                   NULL::text
              FROM run_command_on_workers($w$SELECT coalesce((SELECT extversion FROM pg_extension WHERE extname = 'pg_tenancy'), '')$w$) w
             CROSS JOIN (SELECT extversion FROM pg_extension WHERE extname = 'pg_tenancy') e
             WHERE NOT w.success OR w.result IS DISTINCT FROM e.extversion::text
        $q$;
    END IF;
END
$citus$;

CREATE OR REPLACE FUNCTION tenancy._citus_colocation_findings(schema name)
RETURNS TABLE (severity text, rule text, object text, detail text, fix text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $citus_colocation$
BEGIN
    IF to_regclass('pg_catalog.pg_dist_partition') IS NULL THEN
        RETURN;
    END IF;
    RETURN QUERY EXECUTE $q$
        WITH dist AS (
            SELECT d.logicalrelid AS rel, d.colocationid,
                   column_to_column_name(d.logicalrelid, d.partkey) AS distcol,
                   (SELECT count(*) FROM pg_dist_shard s WHERE s.logicalrelid = d.logicalrelid) AS shards
              FROM pg_dist_partition d
              JOIN tenancy.protected_tables p ON p.tbl = d.logicalrelid
             WHERE d.partmethod = 'h'
        )
        SELECT 'high'::text, 'citus_not_colocated'::text,
               format('%I.%I.%I', n.nspname, c.relname, k.conname),
               CASE WHEN ch.colocationid <> pa.colocationid
                    THEN format('references %s, which is distributed but not co-located with %I.%I: Citus checks the key on each shard against a shard of %s that holds other tenants, so the key does not hold per tenant, and joins along it go to every shard',
                                k.confrelid::regclass, n.nspname, c.relname, k.confrelid::regclass)
                    ELSE format('references %s without pairing the distribution columns (%I with %I): Citus checks the key on one shard, which holds only some tenants, so it does not hold per tenant; scope the key with tenancy.scope_foreign_key() (see the rule global_foreign_key)',
                                k.confrelid::regclass, ch.distcol, pa.distcol)
               END,
               CASE WHEN ch.colocationid = pa.colocationid THEN NULL
                    WHEN ch.shards = pa.shards
                    THEN format('SELECT update_distributed_table_colocation(%L, colocate_with => %L);',
                                format('%I.%I', n.nspname, c.relname), k.confrelid::regclass::text)
                    ELSE format('SELECT alter_distributed_table(%L, shard_count := %s, colocate_with := %L);',
                                format('%I.%I', n.nspname, c.relname), pa.shards, k.confrelid::regclass::text)
               END
          FROM pg_constraint k
          JOIN dist ch ON ch.rel = k.conrelid
          JOIN dist pa ON pa.rel = k.confrelid
          JOIN pg_class c ON c.oid = k.conrelid
          JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE k.contype = 'f'
           AND k.conrelid <> k.confrelid
           AND (ch.colocationid <> pa.colocationid
                OR NOT EXISTS (SELECT 1 FROM generate_subscripts(k.conkey, 1) i
                                WHERE k.conkey[i] = (SELECT a.attnum FROM pg_attribute a WHERE a.attrelid = k.conrelid AND a.attname = ch.distcol)
                                  AND k.confkey[i] = (SELECT a.attnum FROM pg_attribute a WHERE a.attrelid = k.confrelid AND a.attname = pa.distcol)))
           AND ($1 IS NULL OR n.nspname = $1)
    $q$ USING schema;
    -- A feature-gated table that is one of Citus's tables: Citus re-creates its policies on the
    -- shards without AS RESTRICTIVE, so there the feature gate is ORed with the isolation
    -- policy: a tenant entitled to the feature reads every tenant's rows of its shard, and one
    -- that is not still reads its own. protect() refuses a feature on a Citus table; this is a
    -- table gated first and distributed after.
    RETURN QUERY EXECUTE $q$
        SELECT 'critical'::text, 'citus_feature_gate'::text, format('%I.%I', n.nspname, c.relname),
               format('is gated by feature %L and is a Citus table: Citus copies the feature policy to the shards as a permissive policy, so on the shards an entitled tenant reads every tenant''s rows and a tenant without the feature still reads its own', p.feature),
               -- undistribute_table() re-creates the table from Citus's deparse (the gate stays
               -- permissive, and the new table is not in the registry): protect() it again.
               format('SELECT undistribute_table(%L); SELECT tenancy.protect(%L, %L, %L, %L);',
                      format('%I.%I', n.nspname, c.relname), format('%I.%I', n.nspname, c.relname),
                      p.tenant_column, p.shared_column, p.feature)
          FROM tenancy.protected_tables p
          JOIN pg_dist_partition d ON d.logicalrelid = p.tbl
          JOIN pg_class c ON c.oid = p.tbl
          JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE p.feature IS NOT NULL AND NOT c.relispartition
           AND ($1 IS NULL OR n.nspname = $1)
    $q$ USING schema;
END
$citus_colocation$;

CREATE OR REPLACE FUNCTION tenancy.check(schema name DEFAULT NULL)
RETURNS TABLE (severity text, rule text, object text, detail text, fix text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $check$
WITH RECURSIVE
ext AS (
    SELECT e.extowner FROM pg_extension e WHERE e.extname = 'pg_tenancy'
),
-- Schemas in scope: the one asked for, or every schema but the system's and the extension's.
scope AS (
    SELECT n.oid, n.nspname FROM pg_namespace n
     WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast', 'tenancy')
       AND n.nspname !~ '^pg_(toast_)?temp_'
       AND ($1 IS NULL OR n.nspname = $1)
),
-- Objects that belong to an extension (ours or another's) are not the DBA's to fix.
ext_member AS (
    SELECT d.classid, d.objid FROM pg_depend d WHERE d.deptype = 'e'
),
-- Every protected table (in any schema), with what the registry says about it.
prot_all AS (
    SELECT c.oid, c.relname, c.relkind, c.relowner, c.relnamespace, c.relispartition,
           c.relrowsecurity AS rls, c.relforcerowsecurity AS forced,
           format('%I.%I', n.nspname, c.relname) AS qname,
           p.tenant_column::text AS tcol, p.shared_column::text AS scol, p.feature,
           p.isolation_qual, p.feature_qual, p.feature_check, a.attnum AS tattnum, coalesce(a.attnotnull, false) AS tnotnull,
           format('SELECT tenancy.protect(%L, %L%s%s);',
                  format('%I.%I', n.nspname, c.relname), p.tenant_column,
                  CASE WHEN p.shared_column IS NOT NULL OR p.feature IS NOT NULL
                       THEN format(', %L', p.shared_column) ELSE '' END,
                  CASE WHEN p.feature IS NOT NULL THEN format(', %L', p.feature) ELSE '' END)
               AS reprotect
      FROM tenancy.protected_tables p
      JOIN pg_class c ON c.oid = p.tbl
      JOIN pg_namespace n ON n.oid = c.relnamespace
      LEFT JOIN pg_attribute a
             ON a.attrelid = c.oid AND a.attname = p.tenant_column AND a.attnum > 0 AND NOT a.attisdropped
),
prot AS (
    SELECT t.* FROM prot_all t WHERE t.relnamespace IN (SELECT oid FROM scope)
),
-- The base type of each protected tenant column in scope (domains stripped), with the type
-- modifier in effect (varchar(n): n + 4; -1 for none), and the kind of getter its policy
-- compares with: text, uuid or integer (docs/schema-design.md); other types are aliases.
prot_type AS (
    SELECT p.oid, p.qname, p.tcol, p.relnamespace, p.relispartition, bt.typid, bt.typmod,
           CASE WHEN bt.typid = 'uuid'::regtype THEN 'uuid'
                WHEN bt.typid IN ('int2'::regtype, 'int4'::regtype, 'int8'::regtype) THEN 'integer'
                WHEN bt.typid IN ('text'::regtype, 'varchar'::regtype) THEN 'text'
                ELSE format_type(bt.typid, NULL) END AS kind
      FROM prot p
      JOIN pg_attribute a ON a.attrelid = p.oid AND a.attnum = p.tattnum
      CROSS JOIN LATERAL (
          WITH RECURSIVE b(typid, typtype, typbasetype, typtypmod, typmod) AS (
              SELECT t.oid, t.typtype, t.typbasetype, t.typtypmod, a.atttypmod FROM pg_type t WHERE t.oid = a.atttypid
              UNION ALL
              SELECT t.oid, t.typtype, t.typbasetype, t.typtypmod,
                     CASE WHEN b.typmod >= 0 THEN b.typmod ELSE b.typtypmod END
                FROM b JOIN pg_type t ON t.oid = b.typbasetype WHERE b.typtype = 'd')
          SELECT b.typid, b.typmod FROM b WHERE b.typtype <> 'd') bt
),
-- Column names that mark tenant data: the setting, plus every column protect() or
-- protect_schema() was told about.
tenant_names AS (
    SELECT CASE WHEN x ~ '^".*"$' THEN replace(substr(x, 2, length(x) - 2), '""', '"') ELSE x END AS name
      FROM (SELECT btrim(s) AS x
              FROM unnest(string_to_array(coalesce(current_setting('tenancy.tenant_column_names', true), ''), ',')) s) l
     WHERE x <> ''
    UNION SELECT tenant_column::text FROM tenancy.protected_tables
    UNION SELECT tenant_column::text FROM tenancy.enrolled_schemas
),
-- Roles that may bypass row level security on their own.
bypass AS (
    SELECT r.oid, r.rolname, r.rolsuper, r.rolbypassrls FROM pg_roles r WHERE r.rolsuper OR r.rolbypassrls
),
-- Application roles: granted EXECUTE on tenancy.set_context by grant_app() (directly, or
-- through a role they inherit from), other than the extension's owner.
app AS (
    SELECT r.oid, r.rolname, r.rolsuper, r.rolbypassrls
      FROM pg_roles r
     WHERE r.rolname !~ '^pg_'
       AND r.oid NOT IN (SELECT extowner FROM ext)
       AND ((NOT r.rolsuper
             AND has_function_privilege(r.oid, 'tenancy.set_context(text, boolean)', 'EXECUTE'))
            OR EXISTS (SELECT 1 FROM pg_proc f, aclexplode(f.proacl) g
                        WHERE f.oid = to_regprocedure('tenancy.set_context(text, boolean)')
                          AND g.grantee = r.oid AND g.privilege_type = 'EXECUTE'))
),
-- Policies of tables in scope, deparsed.
pol AS (
    SELECT po.oid AS poloid, po.polname, po.polpermissive, po.polcmd, po.polroles, po.polrelid,
           pg_get_expr(po.polqual, po.polrelid) AS qual,
           pg_get_expr(po.polwithcheck, po.polrelid) AS wcheck,
           format('%I.%I', n.nspname, c.relname) AS qname
      FROM pg_policy po
      JOIN pg_class c ON c.oid = po.polrelid
      JOIN scope n ON n.oid = c.relnamespace
),
-- Views and materialized views that read a protected table, directly or through other views.
-- all_invoker: every view between the reader and the table is security_invoker, so the
-- reader's owner is the role whose rights reach the table.
reads (reader, base, all_invoker) AS (
    SELECT DISTINCT rw.ev_class, d.refobjid, true
      FROM pg_depend d
      JOIN pg_rewrite rw ON d.classid = 'pg_rewrite'::regclass AND rw.oid = d.objid AND rw.rulename = '_RETURN'
     WHERE d.refclassid = 'pg_class'::regclass AND d.refobjid IN (SELECT oid FROM prot_all)
       AND rw.ev_class <> d.refobjid
    UNION
    SELECT rw.ev_class, r.base,
           r.all_invoker AND EXISTS (SELECT 1 FROM pg_class v, pg_options_to_table(v.reloptions) o
                                      WHERE v.oid = r.reader AND o.option_name = 'security_invoker'
                                        AND lower(o.option_value) ~ '^(t(r(ue?)?)?|y(es?)?|on|1)$')
      FROM reads r
      JOIN pg_class v ON v.oid = r.reader AND v.relkind = 'v'
      JOIN pg_depend d ON d.refclassid = 'pg_class'::regclass AND d.refobjid = r.reader
                      AND d.classid = 'pg_rewrite'::regclass
      JOIN pg_rewrite rw ON rw.oid = d.objid AND rw.rulename = '_RETURN' AND rw.ev_class <> r.reader
),
reader AS (
    SELECT v.oid, v.relkind, v.relowner, format('%I.%I', vn.nspname, v.relname) AS qname,
           EXISTS (SELECT 1 FROM pg_options_to_table(v.reloptions) o
                    WHERE o.option_name = 'security_invoker'
                      AND lower(o.option_value) ~ '^(t(r(ue?)?)?|y(es?)?|on|1)$') AS invoker,
           vn.oid IN (SELECT oid FROM scope) AS in_scope
      FROM pg_class v JOIN pg_namespace vn ON vn.oid = v.relnamespace
     WHERE v.oid IN (SELECT reader FROM reads)
       AND v.oid NOT IN (SELECT objid FROM ext_member WHERE classid = 'pg_class'::regclass)
       AND vn.nspname <> 'tenancy'
),
-- Benchmark views made by tenancy.create_benchmark_view(): they read every tenant's rows with
-- their owner's rights by design (pooled guarded aggregates, fixed groupings). Intact ones
-- are exempt from view_bypasses_rls; altered ones are reported by benchmark_view_changed.
bench AS (
    SELECT b.view_name, v.oid, v.relnamespace,
           pg_get_viewdef(v.oid) = b.definition
           AND EXISTS (SELECT 1 FROM pg_options_to_table(v.reloptions) o
                        WHERE o.option_name = 'security_barrier'
                          AND lower(o.option_value) ~ '^(t(r(ue?)?)?|y(es?)?|on|1)$') AS intact
      FROM tenancy.benchmark_views b
      JOIN pg_class v ON v.oid = to_regclass(b.view_name) AND v.relkind = 'v'
),
-- SECURITY DEFINER functions outside the system schemas.
-- Functions called by the policies, column defaults and CHECK constraints of protected
-- tables: they run with the rights (and the search_path) of whoever queries or writes.
table_funcs AS (
    SELECT d.refobjid AS fid, po.polrelid AS tbl, 'policy ' || quote_ident(po.polname) AS used_in
      FROM pg_policy po
      JOIN pg_depend d ON d.classid = 'pg_policy'::regclass AND d.objid = po.oid AND d.refclassid = 'pg_proc'::regclass
     WHERE po.polrelid IN (SELECT oid FROM prot_all)
    UNION
    SELECT d.refobjid, ad.adrelid, 'the default of column ' || quote_ident(a.attname)
      FROM pg_attrdef ad
      JOIN pg_attribute a ON a.attrelid = ad.adrelid AND a.attnum = ad.adnum
      JOIN pg_depend d ON d.classid = 'pg_attrdef'::regclass AND d.objid = ad.oid AND d.refclassid = 'pg_proc'::regclass
     WHERE ad.adrelid IN (SELECT oid FROM prot_all)
    UNION
    SELECT d.refobjid, k.conrelid, 'constraint ' || quote_ident(k.conname)
      FROM pg_constraint k
      JOIN pg_depend d ON d.classid = 'pg_constraint'::regclass AND d.objid = k.oid AND d.refclassid = 'pg_proc'::regclass
     WHERE k.contype = 'c' AND k.conrelid IN (SELECT oid FROM prot_all)
),
-- The stored search_path of the functions whose path matters (SECURITY DEFINER ones and the
-- ones above), split into its elements as PostgreSQL splits it (SplitIdentifierString:
-- "quoted" kept as written with "" undoubled, unquoted folded to lower case ASCII), NULL when
-- it is not a valid list. The stored text is whatever the function's owner put there
-- (set_config() then SET search_path FROM CURRENT stores a raw string such as
-- x;ALTER/**/ROLE...;--), so a fix only ever carries these elements, each through quote_ident().
proc_path AS (
    SELECT f.oid, sp.path,
           CASE WHEN sp.path ~ ('^[[:space:]]*(?:"(?:[^"]|"")*"|[^[:space:],"][^[:space:],]*)'
                                || '(?:[[:space:]]*,[[:space:]]*(?:"(?:[^"]|"")*"|[^[:space:],"][^[:space:],]*))*[[:space:]]*$')
                THEN ARRAY(SELECT CASE WHEN e.m[1] IS NOT NULL THEN replace(e.m[1], '""', '"')
                                       ELSE translate(e.m[2], 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz') END
                             FROM regexp_matches(sp.path, '"((?:[^"]|"")*)"|([^[:space:],"][^[:space:],]*)', 'g')
                                  WITH ORDINALITY e(m, ord)
                            ORDER BY e.ord)
           END AS path_elems
      FROM pg_proc f
      LEFT JOIN LATERAL (
          SELECT substr(c, length('search_path=') + 1) AS path
            FROM unnest(f.proconfig) c WHERE c LIKE 'search_path=%' LIMIT 1) sp ON true
     WHERE f.prosecdef OR f.oid IN (SELECT fid FROM table_funcs)
),
-- SECURITY DEFINER functions outside the system schemas.
secdef AS (
    SELECT f.oid, f.proowner, f.prosrc, f.proconfig, n.nspname, f.oid::regprocedure::text AS sig,
           n.oid IN (SELECT oid FROM scope) AS in_scope, pp.path, pp.path_elems
      FROM pg_proc f JOIN pg_namespace n ON n.oid = f.pronamespace
      JOIN proc_path pp ON pp.oid = f.oid
     WHERE f.prosecdef
       AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'tenancy')
       AND f.oid NOT IN (SELECT objid FROM ext_member WHERE classid = 'pg_proc'::regclass)
),
-- Relations a SECURITY DEFINER function reads: named in its source (best effort: a word or a
-- quoted identifier of plpgsql, a string-bodied SQL function, other languages), or recorded in
-- pg_depend, which is all there is for an SQL-standard body (BEGIN ATOMIC ... END or RETURN
-- ...: prosrc is empty, the parsed body is in prosqlbody).
secdef_words AS (
    SELECT DISTINCT f.oid AS fid,
           CASE WHEN t.m[1] IS NOT NULL THEN replace(t.m[1], '""', '"') ELSE lower(t.m[2]) END AS word
      FROM secdef f
     CROSS JOIN LATERAL regexp_matches(coalesce(f.prosrc, ''), '"((?:[^"]|"")+)"|([[:alpha:]_][[:alnum:]_$]*)', 'g') AS t(m)
),
secdef_rels AS (
    SELECT w.fid, c.oid AS rel
      FROM secdef_words w
      JOIN pg_class c ON c.relname = w.word AND c.relkind IN ('r', 'p', 'v')
    UNION
    SELECT d.objid, d.refobjid
      FROM pg_depend d
     WHERE d.classid = 'pg_proc'::regclass AND d.refclassid = 'pg_class'::regclass
       AND d.objid IN (SELECT oid FROM secdef)
),
-- The protected tables behind them: directly, or through views that are all security_invoker
-- (then the function's owner is the role whose rights reach the table).
secdef_reads AS (
    SELECT s.fid, s.rel AS base FROM secdef_rels s WHERE s.rel IN (SELECT oid FROM prot_all)
    UNION
    SELECT s.fid, r.base
      FROM secdef_rels s
      JOIN reads r ON r.reader = s.rel AND r.all_invoker
      JOIN reader v ON v.oid = r.reader AND v.relkind = 'v' AND v.invoker
),
-- Inheritance ancestors (and partitioned parents) of protected tables, with the child on the
-- way down. A query on a parent applies the parent's policies to the rows of its children.
ancestors (prot, parent, child) AS (
    SELECT i.inhrelid, i.inhparent, i.inhrelid
      FROM pg_inherits i WHERE i.inhrelid IN (SELECT oid FROM prot_all)
    UNION
    SELECT a.prot, i.inhparent, a.parent
      FROM ancestors a JOIN pg_inherits i ON i.inhrelid = a.parent
),
-- A role bypasses row level security on a protected table when it is a superuser, has
-- BYPASSRLS, or has its owner's privileges while RLS is not forced (the rules below spell
-- this out where they need it).
findings AS (

-- A table with a tenant column that pg_tenancy does not protect.
SELECT 'critical' AS severity, 'unprotected_tenant_table' AS rule,
       format('%I.%I', n.nspname, c.relname) AS object,
       CASE WHEN c.relkind = 'f'
            THEN format('is a foreign table with the tenant column %I: row level security cannot be enabled on a foreign table, so every role that may read it sees every tenant''s rows. Revoke application roles'' access to it, or keep tenant data in protected tables', a.attname)
            ELSE format('has the tenant column %I but is not protected: every role that may read it sees every tenant''s rows', a.attname)
       END AS detail,
       -- No automatic fix for a foreign table: nothing protects it, and dropping it is not safe.
       CASE WHEN c.relkind <> 'f'
            THEN format('SELECT tenancy.protect(%L, %L);', format('%I.%I', n.nspname, c.relname), a.attname) END AS fix
  FROM pg_class c
  JOIN scope n ON n.oid = c.relnamespace
  CROSS JOIN LATERAL (
      SELECT a.attname FROM pg_attribute a
       WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
         AND a.attname::text IN (SELECT name FROM tenant_names)
       ORDER BY a.attnum LIMIT 1) a
 WHERE c.relkind IN ('r', 'p', 'f') AND NOT c.relispartition
   AND c.oid NOT IN (SELECT oid FROM prot_all)
   AND c.oid NOT IN (SELECT i.inhrelid FROM pg_inherits i WHERE i.inhparent IN (SELECT oid FROM prot_all))
   AND c.oid NOT IN (SELECT parent FROM ancestors)
   AND c.oid NOT IN (SELECT objid FROM ext_member WHERE classid = 'pg_class'::regclass)

UNION ALL
-- A partition or inheritance child of a protected table that is not protected itself.
SELECT 'critical', 'unprotected_child', format('%I.%I', n.nspname, c.relname),
       CASE WHEN c.relkind = 'f'
            THEN format('is a foreign table under protected table %s: row level security cannot be enabled on a foreign table, so querying it directly returns every tenant''s rows it holds. Revoke application roles'' access to it, or detach it (ALTER TABLE %s DETACH PARTITION, or NO INHERIT)', p.qname, p.qname)
            ELSE format('inherits from protected table %s but has no row level security of its own: querying it directly bypasses the parent''s policy', p.qname)
       END,
       -- No automatic fix for a foreign table: detaching it changes what the parent returns.
       CASE WHEN c.relkind <> 'f'
            THEN format('SELECT tenancy.protect(%L, %L%s%s);', format('%I.%I', n.nspname, c.relname), p.tcol,
                        CASE WHEN p.scol IS NOT NULL OR p.feature IS NOT NULL THEN format(', %L', p.scol) ELSE '' END,
                        CASE WHEN p.feature IS NOT NULL THEN format(', %L', p.feature) ELSE '' END) END
  FROM pg_inherits i
  JOIN prot_all p ON p.oid = i.inhparent
  JOIN pg_class c ON c.oid = i.inhrelid AND c.relkind IN ('r', 'p', 'f')
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.oid NOT IN (SELECT oid FROM prot_all)
   AND (c.relnamespace IN (SELECT oid FROM scope) OR p.relnamespace IN (SELECT oid FROM scope))

UNION ALL
SELECT 'critical', 'rls_disabled', p.qname,
       'row level security is disabled on this protected table: its policies are ignored and every role that may read it sees every tenant''s rows',
       p.reprotect
  FROM prot p WHERE NOT p.rls

UNION ALL
SELECT 'high', 'rls_not_forced', p.qname,
       'row level security is not forced: the table''s owner, and every role inheriting its privileges, bypasses the isolation policy',
       p.reprotect
  FROM prot p WHERE NOT p.forced

UNION ALL
SELECT 'critical', 'missing_isolation_policy', p.qname,
       CASE WHEN iso.polname IS NULL
            THEN 'the isolation policy tenancy_isolation is gone: only other policies (if any) decide which rows are visible'
            ELSE 'the isolation policy tenancy_isolation was altered: it is no longer the permissive FOR ALL TO PUBLIC policy on the tenant column that protect() made'
       END,
       p.reprotect
  FROM prot p
  LEFT JOIN pol iso ON iso.polrelid = p.oid AND iso.polname = 'tenancy_isolation'
 WHERE iso.polname IS NULL
    OR NOT (iso.polpermissive AND iso.polcmd = '*' AND iso.polroles = '{0}'::oid[]
            AND iso.qual IS NOT DISTINCT FROM p.isolation_qual
            AND iso.wcheck IS NOT DISTINCT FROM p.isolation_qual)

UNION ALL
-- The entitlement gate must stay the restrictive FOR ALL TO PUBLIC policy protect() made, with
-- its USING and its WITH CHECK: either one loosened, or the policy narrowed to some roles,
-- lets a tenant read or write a feature's table outside its entitlement.
SELECT 'high', 'feature_policy_altered', p.qname,
       CASE WHEN fp.polname IS NULL
            THEN format('the entitlement policy tenancy_feature for feature %L is gone: every tenant reads and writes the table whatever its entitlements', p.feature)
            ELSE format('the entitlement policy tenancy_feature for feature %L was altered: it is no longer the restrictive FOR ALL TO PUBLIC policy with the USING and WITH CHECK that protect() made', p.feature)
       END,
       p.reprotect
  FROM prot p
  LEFT JOIN pol fp ON fp.polrelid = p.oid AND fp.polname = 'tenancy_feature'
 WHERE p.feature IS NOT NULL
   AND (fp.polname IS NULL
        OR NOT (NOT fp.polpermissive AND fp.polcmd = '*' AND fp.polroles = '{0}'::oid[]
                AND fp.qual IS NOT DISTINCT FROM p.feature_qual
                AND coalesce(fp.wcheck, fp.qual) IS NOT DISTINCT FROM coalesce(p.feature_check, p.feature_qual)))

UNION ALL
-- Permissive policies are OR-ed: any other one widens what a tenant sees or may write.
-- tenancy_shared (FOR SELECT USING (shared_column)) is protect()'s own.
SELECT 'critical', 'permissive_policy', format('policy %I on %s', po.polname, p.qname),
       format('permissive policies are combined with OR, so %I widens the isolation policy (USING %s%s); recreate it AS RESTRICTIVE if it is meant to narrow access',
              po.polname, coalesce(po.qual, 'none'), coalesce(', WITH CHECK ' || po.wcheck, '')),
       format('DROP POLICY IF EXISTS %I ON %s;', po.polname, p.qname)
  FROM prot p
  JOIN pol po ON po.polrelid = p.oid
 WHERE po.polpermissive AND po.polname <> 'tenancy_isolation'
   AND NOT (po.polname = 'tenancy_shared' AND po.polcmd = 'r' AND p.scol IS NOT NULL
            AND po.qual = quote_ident(p.scol))

UNION ALL
-- A policy that trusts a setting anyone may SET.
SELECT 'critical', 'forgeable_policy_context', format('policy %I on %s', po.polname, po.qname),
       format('the policy reads the setting %s with current_setting(); any role may SET it to another tenant''s id. Use tenancy.protect(), whose policy reads the verified context',
              string_agg(DISTINCT quote_literal(g.m[1]), ', ')),
       format('DROP POLICY IF EXISTS %I ON %s;', po.polname, po.qname)
  FROM pol po
  -- The policy's expressions, and the bodies of the functions they call (one level: a
  -- helper such as app.current_org() that returns current_setting('app.org') is the usual
  -- form; an SQL-standard body is printed by pg_get_function_sqlbody()).
  CROSS JOIN LATERAL (
      SELECT coalesce(po.qual, '') || ' ' || coalesce(po.wcheck, '') || ' '
             || coalesce(string_agg(coalesce(nullif(f.prosrc, ''), pg_get_function_sqlbody(f.oid)), ' '), '') AS src
        FROM pg_depend d
        JOIN pg_proc f ON f.oid = d.refobjid
        JOIN pg_namespace fn ON fn.oid = f.pronamespace
       WHERE d.classid = 'pg_policy'::regclass AND d.objid = po.poloid AND d.refclassid = 'pg_proc'::regclass
         AND fn.nspname NOT IN ('pg_catalog', 'tenancy')) x
  CROSS JOIN LATERAL regexp_matches(x.src, 'current_setting[[:space:]]*\([[:space:]]*''((?:[^'']|'''')+)''', 'g') AS g(m)
 WHERE g.m[1] !~ '^tenancy\.'
   AND NOT (NOT po.polpermissive AND po.polrelid IN (SELECT oid FROM prot_all))
 GROUP BY po.polname, po.qname

UNION ALL
-- A benchmark view altered since create_benchmark_view() made it: it still reads every
-- tenant's rows with its owner's rights, but no longer (provably) only through guarded
-- aggregates behind a security barrier.
SELECT 'critical', 'benchmark_view_changed', b.view_name,
       'the benchmark view reads every tenant''s rows with its owner''s rights and its definition or options are no longer what tenancy.create_benchmark_view() made',
       format('SELECT tenancy.drop_benchmark_view(%L);  -- then make it again with tenancy.create_benchmark_view()', b.view_name)
  FROM bench b
 WHERE NOT b.intact AND b.relnamespace IN (SELECT oid FROM scope)

UNION ALL
SELECT 'critical', 'view_bypasses_rls', v.qname,
       format('the view reads %s with the rights of its owner %I, who %s; without security_invoker every role that may read the view sees every tenant''s rows',
              string_agg(DISTINCT p.qname, ', '), o.rolname,
              CASE WHEN o.rolsuper THEN 'is a superuser'
                   WHEN o.rolbypassrls THEN 'has BYPASSRLS'
                   ELSE 'owns the table and row level security is not forced' END),
       format('ALTER VIEW IF EXISTS %s SET (security_invoker = true);', v.qname)
  FROM reads r
  JOIN reader v ON v.oid = r.reader AND v.relkind = 'v' AND NOT v.invoker
  JOIN prot_all p ON p.oid = r.base
  JOIN pg_roles o ON o.oid = v.relowner
 WHERE r.all_invoker
   AND v.oid NOT IN (SELECT oid FROM bench WHERE intact)
   AND (v.in_scope OR p.relnamespace IN (SELECT oid FROM scope))
   AND (o.rolsuper OR o.rolbypassrls OR (NOT p.forced AND pg_has_role(o.oid, p.relowner, 'USAGE')))
 GROUP BY v.qname, o.rolname, o.rolsuper, o.rolbypassrls

UNION ALL
SELECT 'critical', 'materialized_view', v.qname,
       format('the materialized view copies rows of %s into a relation that row level security cannot filter: whoever may read it sees what its last refresh saw. Replace it with a protected table or a security_invoker view',
              string_agg(DISTINCT p.qname, ', ')),
       format('DROP MATERIALIZED VIEW IF EXISTS %s;', v.qname)
  FROM reads r
  JOIN reader v ON v.oid = r.reader AND v.relkind = 'm'
  JOIN prot_all p ON p.oid = r.base
 WHERE v.in_scope OR p.relnamespace IN (SELECT oid FROM scope)
 GROUP BY v.qname

UNION ALL
SELECT 'critical', 'rule_on_protected_table', format('rule %I on %s', rw.rulename, p.qname),
       'a rule rewrites queries on the protected table, and can send them (or their rows) where its policies do not apply',
       format('DROP RULE IF EXISTS %I ON %s;', rw.rulename, p.qname)
  FROM prot p
  JOIN pg_rewrite rw ON rw.ev_class = p.oid AND rw.rulename <> '_RETURN'

UNION ALL
-- The tables it reads: see secdef_rels and secdef_reads.
SELECT 'high', 'security_definer_bypass', f.sig,
       format('SECURITY DEFINER function owned by %I, who %s, reads %s: it reads it with every tenant''s rows visible, whoever calls it',
              o.rolname,
              CASE WHEN o.rolsuper THEN 'is a superuser'
                   WHEN o.rolbypassrls THEN 'has BYPASSRLS'
                   ELSE 'owns the table and row level security is not forced' END,
              string_agg(DISTINCT p.qname, ', ')),
       format('ALTER FUNCTION %s SECURITY INVOKER;', f.sig)
  FROM secdef f
  JOIN pg_roles o ON o.oid = f.proowner
  JOIN secdef_reads sr ON sr.fid = f.oid
  JOIN prot_all p ON p.oid = sr.base
 WHERE (f.in_scope OR p.relnamespace IN (SELECT oid FROM scope))
   AND (o.rolsuper OR o.rolbypassrls OR (NOT p.forced AND pg_has_role(o.oid, p.relowner, 'USAGE')))
 GROUP BY f.sig, o.rolname, o.rolsuper, o.rolbypassrls

UNION ALL
-- search_path must be pinned, with pg_temp last (otherwise a temporary object shadows names).
-- The fix keeps the path's other schemas, each quoted on its own (see secdef).
SELECT 'high', 'security_definer_search_path', f.sig,
       CASE WHEN f.path IS NULL
            THEN 'SECURITY DEFINER function without a pinned search_path: a caller can shadow the names it uses with its own objects and run code with the owner''s rights'
            ELSE format('SECURITY DEFINER function whose search_path (%s) does not end with pg_temp: a temporary table or function shadows the names it uses', f.path)
       END,
       format('ALTER FUNCTION %s SET search_path = %s;', f.sig,
              CASE WHEN f.path_elems IS NULL THEN format('pg_catalog, %I, pg_temp', f.nspname)
                   ELSE concat_ws(', ',
                                  nullif(array_to_string(ARRAY(
                                      SELECT quote_ident(e.x) FROM unnest(f.path_elems) WITH ORDINALITY e(x, ord)
                                       WHERE e.x NOT IN ('pg_temp', '') ORDER BY e.ord), ', '), ''),
                                  'pg_temp') END)
  FROM secdef f
 WHERE f.in_scope
   AND (f.path_elems IS NULL OR f.path_elems[cardinality(f.path_elems)] IS DISTINCT FROM 'pg_temp')

UNION ALL
SELECT 'high', 'risky_table_privilege',
       format('%s on %s', CASE WHEN g.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(g.grantee)) END, p.qname),
       format('%s granted to a role other than the owner: TRUNCATE empties every tenant''s rows (row level security does not apply to it), TRIGGER runs the grantee''s code on other tenants'' writes, REFERENCES lets a foreign key probe other tenants'' values',
              string_agg(DISTINCT g.privilege_type, ', ')),
       format('REVOKE %s ON TABLE %s FROM %s;', string_agg(DISTINCT g.privilege_type, ', '), p.qname,
              CASE WHEN g.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(g.grantee)) END)
  FROM prot p
  JOIN pg_class c ON c.oid = p.oid
  CROSS JOIN LATERAL aclexplode(c.relacl) g
 WHERE g.privilege_type IN ('TRUNCATE', 'TRIGGER', 'REFERENCES') AND g.grantee <> c.relowner
 GROUP BY g.grantee, p.qname

UNION ALL
SELECT 'critical', 'app_role_superuser', format('role %I', a.rolname),
       'an application role is a superuser: row level security does not apply to it, nor does anything else',
       format('ALTER ROLE %I NOSUPERUSER;', a.rolname)
  FROM app a WHERE a.rolsuper

UNION ALL
SELECT 'critical', 'app_role_bypassrls', format('role %I', a.rolname),
       'an application role has BYPASSRLS: it sees every tenant''s rows in every protected table',
       format('ALTER ROLE %I NOBYPASSRLS;', a.rolname)
  FROM app a WHERE a.rolbypassrls

UNION ALL
-- SET ROLE to a superuser or BYPASSRLS role (membership, direct or through other roles).
SELECT 'critical', 'app_role_can_become_privileged', format('role %I', a.rolname),
       format('the application role is a member of %s and can SET ROLE to it, which bypasses row level security',
              string_agg(DISTINCT format('%I (%s)', b.rolname,
                         CASE WHEN b.rolsuper THEN 'superuser' ELSE 'BYPASSRLS' END), ', ')),
       (SELECT string_agg(DISTINCT format('REVOKE %I FROM %I;', pg_get_userbyid(m.roleid), a.rolname), ' ')
          FROM pg_auth_members m
         WHERE m.member = a.oid
           AND EXISTS (SELECT 1 FROM bypass b2
                        WHERE b2.oid <> a.oid AND pg_has_role(m.roleid, b2.oid, 'MEMBER')))
  FROM app a
  JOIN bypass b ON b.oid <> a.oid AND pg_has_role(a.oid, b.oid, 'MEMBER')
 WHERE NOT a.rolsuper
 GROUP BY a.oid, a.rolname

UNION ALL
SELECT 'high', 'app_role_owns_protected_table', format('role %I on %s', a.rolname, p.qname),
       CASE WHEN a.oid = p.relowner
            THEN format('the application role owns %s: an owner can grant, truncate and (if row level security is ever unforced) read around every policy', p.qname)
            ELSE format('the application role is a member of %I, which owns %s, and can act as the owner', pg_get_userbyid(p.relowner), p.qname)
       END,
       CASE WHEN a.oid = p.relowner
            THEN format('ALTER TABLE %s OWNER TO %I;', p.qname, (SELECT pg_get_userbyid(extowner) FROM ext))
            ELSE (SELECT string_agg(DISTINCT format('REVOKE %I FROM %I;', pg_get_userbyid(m.roleid), a.rolname), ' ')
                    FROM pg_auth_members m
                   WHERE m.member = a.oid AND pg_has_role(m.roleid, p.relowner, 'MEMBER'))
       END
  FROM app a
  JOIN prot p ON pg_has_role(a.oid, p.relowner, 'MEMBER')
 WHERE NOT a.rolsuper

UNION ALL
-- Unique keys without the tenant column answer "does this value exist in another tenant?"
-- with a duplicate-key error. Indexes inherited by partitions are reported once, on the parent.
SELECT 'high', 'global_unique_key', format('%I.%I', n.nspname, ic.relname),
       format('unique %s on %s does not include the tenant column %I: a duplicate-key error tells a tenant that a value exists in another tenant',
              CASE WHEN k.conname IS NOT NULL THEN 'constraint' ELSE 'index' END, p.qname, p.tcol),
       CASE WHEN i.indexprs IS NULL AND i.indpred IS NULL
            THEN format('SELECT tenancy.scope_unique(%L, ARRAY[%s]::name[]);', p.qname,
                        (SELECT string_agg(quote_literal(at.attname), ', ' ORDER BY u.ord)
                           FROM unnest(i.indkey::int2[]) WITH ORDINALITY u(attnum, ord)
                           JOIN pg_attribute at ON at.attrelid = i.indrelid AND at.attnum = u.attnum
                          WHERE u.ord <= i.indnkeyatts))
            -- An expression or partial index is rebuilt from its definition as PostgreSQL
            -- prints it, with the tenant column put first. The head of that definition is
            -- rebuilt here from the catalog and must match exactly: a search in the text
            -- would also find ' USING x (' inside an index or table name its owner chose.
            ELSE (SELECT CASE WHEN left(x.def, length(x.head)) = x.head
                               THEN format('DROP INDEX IF EXISTS %I.%I; %s%I, %s;', n.nspname, ic.relname,
                                           x.head, p.tcol, substr(x.def, length(x.head) + 1))
                              WHEN left(x.def, length(x.head_only)) = x.head_only
                               THEN format('DROP INDEX IF EXISTS %I.%I; %s%I, %s;', n.nspname, ic.relname,
                                           x.head, p.tcol, substr(x.def, length(x.head_only) + 1))
                         END
                    FROM (SELECT pg_get_indexdef(i.indexrelid) AS def,
                                 format('CREATE UNIQUE INDEX %I ON %s USING %I (', ic.relname, p.qname, am.amname) AS head,
                                 format('CREATE UNIQUE INDEX %I ON ONLY %s USING %I (', ic.relname, p.qname, am.amname) AS head_only
                            FROM pg_am am WHERE am.oid = ic.relam) x)
       END
  FROM prot p
  JOIN pg_index i ON i.indrelid = p.oid AND i.indisunique
  JOIN pg_class ic ON ic.oid = i.indexrelid
  JOIN pg_namespace n ON n.oid = ic.relnamespace
  LEFT JOIN pg_constraint k ON k.conindid = i.indexrelid AND k.conrelid = p.oid AND k.contype IN ('p', 'u')
 WHERE p.tattnum IS NOT NULL AND NOT (p.tattnum = ANY (i.indkey::int2[]))
   AND i.indexrelid NOT IN (SELECT inhrelid FROM pg_inherits)

UNION ALL
-- Foreign keys are checked without row level security.
SELECT 'high', 'global_foreign_key', format('constraint %I on %s', k.conname, p.qname),
       format('the foreign key to %s does not include the tenant columns: it is checked without row level security, so a row can reference, and learn of, another tenant''s row',
              r.qname),
       format('SELECT tenancy.scope_foreign_key(%L, ARRAY[%s]::name[], %L, ARRAY[%s]::name[]);',
              p.qname, string_agg(quote_literal(fa.attname), ', ' ORDER BY u.ord),
              r.qname, string_agg(quote_literal(ta.attname), ', ' ORDER BY u.ord))
  FROM prot p
  JOIN pg_constraint k ON k.conrelid = p.oid AND k.contype = 'f' AND k.conparentid = 0
  JOIN prot_all r ON r.oid = k.confrelid
  CROSS JOIN LATERAL unnest(k.conkey, k.confkey) WITH ORDINALITY u(fnum, tnum, ord)
  JOIN pg_attribute fa ON fa.attrelid = k.conrelid AND fa.attnum = u.fnum
  JOIN pg_attribute ta ON ta.attrelid = k.confrelid AND ta.attnum = u.tnum
 WHERE NOT (p.tattnum = ANY (k.conkey) AND r.tattnum = ANY (k.confkey))
   AND fa.attnum IS DISTINCT FROM p.tattnum AND ta.attnum IS DISTINCT FROM r.tattnum
 GROUP BY k.oid, k.conname, p.qname, r.qname

UNION ALL
SELECT 'medium', 'no_tenant_index', p.qname,
       format('no valid, non-partial index is led by the tenant column %I: every query on the table scans it (isolation costs a scan, not an index seek)', p.tcol),
       format('CREATE INDEX ON %s (%I);', p.qname, p.tcol)
  FROM prot p
 WHERE p.tattnum IS NOT NULL
   AND NOT EXISTS (SELECT 1 FROM pg_index i
                    WHERE i.indrelid = p.oid AND i.indkey[0] = p.tattnum AND i.indpred IS NULL AND i.indisvalid)

UNION ALL
SELECT 'medium', 'nullable_tenant_column', p.qname,
       format('the tenant column %I allows NULL: such rows belong to no tenant, and a table that accepts them was not protected as protect() leaves it', p.tcol),
       p.reprotect
  FROM prot p
 WHERE p.tattnum IS NOT NULL AND NOT p.tnotnull

UNION ALL
SELECT 'info', 'published_protected_table', format('publication %I', pb.pubname),
       format('the publication sends %s to its subscribers with every tenant''s rows: replication ignores row level security',
              CASE WHEN pb.puballtables THEN 'every table (FOR ALL TABLES), including the protected ones,'
                   ELSE string_agg(DISTINCT p.qname, ', ') END),
       CASE WHEN pb.puballtables THEN format('DROP PUBLICATION IF EXISTS %I;', pb.pubname)
            ELSE string_agg(DISTINCT format('ALTER PUBLICATION %I DROP TABLE %s;', pb.pubname, p.qname), ' ')
       END
  FROM pg_publication pb
  LEFT JOIN pg_publication_rel pr ON pr.prpubid = pb.oid
  JOIN prot p ON pb.puballtables OR p.oid = pr.prrelid
 GROUP BY pb.pubname, pb.puballtables

UNION ALL
SELECT 'info', 'published_protected_schema', format('publication %I', pb.pubname),
       format('the publication sends every table of schema %I, protected ones included, to its subscribers with every tenant''s rows', pn_n.nspname),
       format('ALTER PUBLICATION %I DROP TABLES IN SCHEMA %I;', pb.pubname, pn_n.nspname)
  FROM pg_publication pb
  JOIN pg_publication_namespace pn ON pn.pnpubid = pb.oid
  JOIN scope pn_n ON pn_n.oid = pn.pnnspid
 WHERE EXISTS (SELECT 1 FROM prot p WHERE p.relnamespace = pn.pnnspid)

UNION ALL
-- Identity and serial columns: one sequence numbers the rows of every tenant.
SELECT 'info', 'shared_sequence', format('%s.%I', p.qname, a.attname),
       format('the column takes its values from sequence %s, shared by every tenant: the gaps between a tenant''s own ids reveal how many rows other tenants add. Where volumes are sensitive, move to uuids (a uuid column with DEFAULT gen_random_uuid()) or per-tenant numbering, with the application''s inserts changed to match',
              min(format('%I.%I', sn.nspname, sc.relname))),
       -- No fix: every mechanical one (DROP IDENTITY, DROP DEFAULT) makes the inserts that
       -- rely on the sequence fail (23502), and a fix must be safe to run unattended (issue 21).
       NULL::text
  FROM prot p
  JOIN (SELECT d.refobjid AS relid, d.refobjsubid AS attnum, d.objid AS seq
          FROM pg_depend d
         WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass AND d.deptype = 'i'
        UNION ALL
        SELECT ad.adrelid, ad.adnum, d.refobjid
          FROM pg_attrdef ad
          JOIN pg_depend d ON d.classid = 'pg_attrdef'::regclass AND d.objid = ad.oid
                          AND d.refclassid = 'pg_class'::regclass) u ON u.relid = p.oid
  JOIN pg_class sc ON sc.oid = u.seq AND sc.relkind = 'S'
  JOIN pg_namespace sn ON sn.oid = sc.relnamespace
  JOIN pg_attribute a ON a.attrelid = p.oid AND a.attnum = u.attnum AND NOT a.attisdropped
 WHERE NOT p.relispartition
 GROUP BY p.qname, a.attname, a.attidentity

UNION ALL
-- A row quota is enforced by statement triggers on the table and on each of its partitions
-- (src/protection/quota.rs); a partition attached later, or a dropped or disabled trigger, lets inserts
-- past the quota. set_quota() again installs what is missing.
SELECT 'medium', 'quota_not_enforced', format('%I.%I', n.nspname, c.relname),
       format('row quotas of %s are not enforced on this table: its trigger%s %s %s missing, disabled or enabled for replicas only, so inserts there are not counted',
              qt.tbl, CASE WHEN cardinality(m.missing) > 1 THEN 's' ELSE '' END,
              array_to_string(m.missing, ', '), CASE WHEN cardinality(m.missing) > 1 THEN 'are' ELSE 'is' END),
       concat((SELECT string_agg(format('ALTER TABLE %I.%I ENABLE TRIGGER %I;', n.nspname, c.relname, tg.tgname), ' ' ORDER BY tg.tgname)
                 FROM pg_trigger tg WHERE tg.tgrelid = c.oid AND tg.tgname = ANY (m.missing)) || ' ',
              (SELECT string_agg(format('SELECT tenancy.set_quota(%L, %L, %s);', q.tenant, q.tbl::text, q.max_rows), ' ' ORDER BY q.tenant)
                 FROM tenancy.quotas q WHERE q.tbl = qt.tbl))
  FROM (SELECT DISTINCT q.tbl FROM tenancy.quotas q) qt
  CROSS JOIN LATERAL (SELECT t.relid FROM pg_partition_tree(qt.tbl) t
                      UNION SELECT qt.tbl::oid) part
  JOIN pg_class c ON c.oid = part.relid AND c.relkind IN ('r', 'p')
  JOIN scope n ON n.oid = c.relnamespace
  CROSS JOIN LATERAL (
      SELECT array_agg(w.name ORDER BY w.name) AS missing
        FROM unnest(ARRAY['tenancy_quota_insert', 'tenancy_quota_delete', 'tenancy_quota_truncate']) w(name)
       WHERE NOT EXISTS (SELECT 1 FROM pg_trigger tg JOIN pg_proc f ON f.oid = tg.tgfoid
                          WHERE tg.tgrelid = c.oid AND tg.tgname = w.name AND tg.tgenabled IN ('O', 'A')
                            AND f.pronamespace = 'tenancy'::regnamespace)) m
 WHERE m.missing IS NOT NULL

UNION ALL
-- protect() puts a statement trigger on every protected table (not on Citus distributed tables)
-- that records writes made under a support session (sql/audit.sql); the table's owner can drop
-- or disable it, and support writes then go unrecorded. protect() again restores it.
SELECT 'medium', 'support_writes_unrecorded', t.qname,
       'writes to this table under a support session are not recorded in the audit trail: its trigger tenancy_support_audit is missing, disabled, enabled for replicas only, or calls another function',
       t.reprotect
  FROM prot t
 WHERE NOT EXISTS (SELECT 1 FROM pg_extension e WHERE e.extname = 'citus')
   AND NOT EXISTS (SELECT 1 FROM pg_trigger tg
                    WHERE tg.tgrelid = t.oid AND tg.tgname = 'tenancy_support_audit' AND tg.tgenabled IN ('O', 'A')
                      AND tg.tgfoid = 'tenancy._support_write_trigger()'::regprocedure)

UNION ALL
-- Issue 13, class 4 (table owner paths): code of the table owner's (or any non-superuser's)
-- stored on a protected table where it runs over every tenant's rows regardless of row level
-- security. The DDL guard refuses adding it (src/protection/ddl_guard.rs, owner_code); this reports what
-- predates the guard or went past it with ddl_guard = warn/off. Trusted: pg_catalog, members
-- of an extension, functions owned by a superuser.
SELECT 'high', 'owner_code_on_protected_table', format('%s on %s', oc.what, p.qname),
       format('%s calls %s, owned by %I: it runs over every tenant''s rows (when validated or rebuilt, and on every write), so its owner can read them all',
              oc.what, oc.fn::regprocedure, fo.rolname),
       oc.fix
  FROM prot p
  CROSS JOIN LATERAL (
      SELECT format('constraint %I', k.conname) AS what, d.refobjid AS fn,
             format('ALTER TABLE %s DROP CONSTRAINT IF EXISTS %I;', p.qname, k.conname) AS fix,
             d.refclassid, d.refobjid
        FROM pg_constraint k JOIN pg_depend d ON d.classid = 'pg_constraint'::regclass AND d.objid = k.oid
       WHERE k.conrelid = p.oid
      UNION ALL
      SELECT format('index %I', ic.relname), d.refobjid,
             format('DROP INDEX IF EXISTS %I.%I;', icn.nspname, ic.relname), d.refclassid, d.refobjid
        FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_namespace icn ON icn.oid = ic.relnamespace
        JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = i.indexrelid
       WHERE i.indrelid = p.oid
      UNION ALL
      SELECT format('generated column %I', a.attname), d.refobjid,
             CASE WHEN a.attgenerated = 's' THEN format('ALTER TABLE %s ALTER COLUMN %I DROP EXPRESSION IF EXISTS;', p.qname, a.attname)
                  ELSE format('ALTER TABLE %s DROP COLUMN IF EXISTS %I;', p.qname, a.attname) END,
             d.refclassid, d.refobjid
        FROM pg_attrdef ad JOIN pg_attribute a ON a.attrelid = ad.adrelid AND a.attnum = ad.adnum
        JOIN pg_depend d ON d.classid = 'pg_attrdef'::regclass AND d.objid = ad.oid
       WHERE ad.adrelid = p.oid AND a.attgenerated <> ''
      UNION ALL
      SELECT format('policy %I', pol.polname), d.refobjid,
             format('DROP POLICY IF EXISTS %I ON %s;', pol.polname, p.qname), d.refclassid, d.refobjid
        FROM pg_policy pol JOIN pg_depend d ON d.classid = 'pg_policy'::regclass AND d.objid = pol.oid
       WHERE pol.polrelid = p.oid
      UNION ALL
      SELECT format('statistics %I', st.stxname), d.refobjid,
             format('DROP STATISTICS IF EXISTS %I.%I;', stn.nspname, st.stxname), d.refclassid, d.refobjid
        FROM pg_statistic_ext st JOIN pg_namespace stn ON stn.oid = st.stxnamespace
        JOIN pg_depend d ON d.classid = 'pg_statistic_ext'::regclass AND d.objid = st.oid
       WHERE st.stxrelid = p.oid
      UNION ALL
      -- check constraints of the domains a column (or its array elements) is made of
      SELECT format('the domain %s of column %I', k.contypid::regtype, ct.attname), d.refobjid,
             format('ALTER DOMAIN %s DROP CONSTRAINT IF EXISTS %I;', k.contypid::regtype, k.conname),
             d.refclassid, d.refobjid
        FROM (WITH RECURSIVE coltype(attname, typid) AS (
                  SELECT a.attname, a.atttypid FROM pg_attribute a
                   WHERE a.attrelid = p.oid AND a.attnum > 0 AND NOT a.attisdropped
                  UNION
                  SELECT c2.attname, nx.typid FROM coltype c2 CROSS JOIN LATERAL (
                      SELECT CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.typelem END AS typid
                        FROM pg_type t WHERE t.oid = c2.typid AND (t.typtype = 'd' OR t.typelem <> 0)
                      UNION ALL SELECT r.rngsubtype FROM pg_range r WHERE r.rngtypid = c2.typid
                      UNION ALL SELECT r.rngtypid FROM pg_range r WHERE r.rngmultitypid = c2.typid
                      UNION ALL SELECT a.atttypid FROM pg_type t
                                  JOIN pg_attribute a ON a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped
                                 WHERE t.oid = c2.typid AND t.typtype = 'c') nx
                   WHERE nx.typid <> 0)
              SELECT * FROM coltype) ct
        JOIN pg_constraint k ON k.contypid = ct.typid
        JOIN pg_depend d ON d.classid = 'pg_constraint'::regclass AND d.objid = k.oid
      UNION ALL
      -- range types' subtype_diff/canonical functions and casts of user-defined types that a
      -- column is built from (GiST runs the former over every tenant's entries; a cast runs
      -- in every tenant's statements): no safe automatic fix
      SELECT format('the type %s of column %I', ct.typid::regtype, ct.attname), v.fn, NULL,
             'pg_proc'::regclass, v.fn
        FROM (WITH RECURSIVE coltype(attname, typid) AS (
                  SELECT a.attname, a.atttypid FROM pg_attribute a
                   WHERE a.attrelid = p.oid AND a.attnum > 0 AND NOT a.attisdropped
                  UNION
                  SELECT c2.attname, nx.typid FROM coltype c2 CROSS JOIN LATERAL (
                      SELECT CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.typelem END AS typid
                        FROM pg_type t WHERE t.oid = c2.typid AND (t.typtype = 'd' OR t.typelem <> 0)
                      UNION ALL SELECT r.rngsubtype FROM pg_range r WHERE r.rngtypid = c2.typid
                      UNION ALL SELECT r.rngtypid FROM pg_range r WHERE r.rngmultitypid = c2.typid
                      UNION ALL SELECT a.atttypid FROM pg_type t
                                  JOIN pg_attribute a ON a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped
                                 WHERE t.oid = c2.typid AND t.typtype = 'c') nx
                   WHERE nx.typid <> 0)
              SELECT * FROM coltype) ct
        CROSS JOIN LATERAL (
            SELECT r.rngsubdiff::oid FROM pg_range r WHERE r.rngtypid = ct.typid
            UNION ALL SELECT r.rngcanonical::oid FROM pg_range r WHERE r.rngtypid = ct.typid
            UNION ALL SELECT k.castfunc FROM pg_cast k
                       WHERE (k.casttarget = ct.typid OR k.castsource = ct.typid) AND ct.typid >= 16384
        ) v(fn)
      UNION ALL
      -- check constraints of the domains a stored expression casts to (a CHECK, an index, a
      -- policy ... naming `x::some_domain`), followed through base and element types and
      -- through types the domains' own constraints name
      SELECT format('the domain %s named by an expression', k.contypid::regtype), d.refobjid,
             format('ALTER DOMAIN %s DROP CONSTRAINT IF EXISTS %I;', k.contypid::regtype, k.conname),
             d.refclassid, d.refobjid
        FROM (WITH RECURSIVE exprtype(typid) AS (
                  SELECT d0.refobjid FROM pg_depend d0
                   WHERE d0.refclassid = 'pg_type'::regclass
                     AND ((d0.classid = 'pg_constraint'::regclass
                           AND d0.objid IN (SELECT k0.oid FROM pg_constraint k0 WHERE k0.conrelid = p.oid))
                       OR (d0.classid = 'pg_class'::regclass
                           AND d0.objid IN (SELECT i0.indexrelid FROM pg_index i0 WHERE i0.indrelid = p.oid))
                       OR (d0.classid = 'pg_attrdef'::regclass
                           AND d0.objid IN (SELECT a0.oid FROM pg_attrdef a0 WHERE a0.adrelid = p.oid))
                       OR (d0.classid = 'pg_policy'::regclass
                           AND d0.objid IN (SELECT po0.oid FROM pg_policy po0 WHERE po0.polrelid = p.oid))
                       OR (d0.classid = 'pg_statistic_ext'::regclass
                           AND d0.objid IN (SELECT s0.oid FROM pg_statistic_ext s0 WHERE s0.stxrelid = p.oid)))
                  UNION
                  SELECT nx.typid FROM exprtype e CROSS JOIN LATERAL (
                      SELECT CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.typelem END AS typid
                        FROM pg_type t WHERE t.oid = e.typid AND (t.typtype = 'd' OR t.typelem <> 0)
                      UNION ALL
                      SELECT d1.refobjid FROM pg_constraint k1
                        JOIN pg_depend d1 ON d1.classid = 'pg_constraint'::regclass AND d1.objid = k1.oid
                                         AND d1.refclassid = 'pg_type'::regclass
                       WHERE k1.contypid = e.typid) nx)
              SELECT * FROM exprtype) et
        JOIN pg_constraint k ON k.contypid = et.typid
        JOIN pg_depend d ON d.classid = 'pg_constraint'::regclass AND d.objid = k.oid
  ) dep
  CROSS JOIN LATERAL (
      SELECT dep.what, dep.fix,
             CASE WHEN dep.refclassid = 'pg_proc'::regclass THEN dep.refobjid
                  WHEN dep.refclassid = 'pg_operator'::regclass
                  THEN (SELECT op.oprcode::oid FROM pg_operator op WHERE op.oid = dep.refobjid) END AS fn
  ) oc
  JOIN pg_proc f ON f.oid = oc.fn
  JOIN pg_roles fo ON fo.oid = f.proowner
 WHERE f.pronamespace <> 'pg_catalog'::regnamespace
   AND NOT fo.rolsuper
   AND NOT EXISTS (SELECT 1 FROM ext_member e WHERE e.classid = 'pg_proc'::regclass AND e.objid = f.oid)

UNION ALL
-- Issue 13, class 3: a tenant column of a type in which distinct tenant ids can be one value
-- (protected before protect() refused such types: see src/protection/policy.rs, for_tenant_column). The
-- fix converts the column to text in one statement (a DO block: nothing half-applied).
SELECT 'critical', 'tenant_column_type_aliases', format('%s.%I', p.qname, p.tcol),
       format('the tenant column is of type %s, in which distinct tenant ids can be one value (numeric ''77'' = ''077'', character(n) truncation, case-insensitive comparison): tenants can read each other''s rows',
              format_type(a.atttypid, a.atttypmod)),
       format('DO %L;', format('BEGIN EXECUTE %L; EXECUTE %L; EXECUTE %L; END',
              format('SELECT tenancy.unprotect(%L)', p.qname),
              format('ALTER TABLE %s ALTER COLUMN %I TYPE pg_catalog.text COLLATE pg_catalog."default" USING %I::pg_catalog.text',
                     p.qname, p.tcol, p.tcol),
              p.reprotect))
  FROM prot p
  JOIN pg_attribute a ON a.attrelid = p.oid AND a.attnum = p.tattnum
  LEFT JOIN pg_collation co ON co.oid = a.attcollation
  CROSS JOIN LATERAL (
      WITH RECURSIVE b(typid, typtype, typbasetype) AS (
          SELECT t.oid, t.typtype, t.typbasetype FROM pg_type t WHERE t.oid = a.atttypid
          UNION ALL
          SELECT t.oid, t.typtype, t.typbasetype FROM b JOIN pg_type t ON t.oid = b.typbasetype WHERE b.typtype = 'd')
      SELECT b.typid FROM b WHERE b.typtype <> 'd') bt
 WHERE NOT p.relispartition
   AND NOT (bt.typid IN ('text'::regtype, 'varchar'::regtype, 'uuid'::regtype, 'int2'::regtype, 'int4'::regtype, 'int8'::regtype)
            AND coalesce(co.collisdeterministic, true))

UNION ALL
-- Issue 21: an active tenant whose id no value of a protected table's tenant column can stand
-- for (the generated policy compares typed values): 'acme' or an upper-case uuid and a uuid
-- column, '077' or an id past the type's range and an integer column, an id longer than
-- varchar(n). Under its context the table is empty and every write fails with a bare 42501.
-- No leak between tenants, and no automatic fix: the ids or the column's type must change.
SELECT 'medium', 'tenant_id_not_representable', format('%s.%I', pt.qname, pt.tcol),
       format('%s active tenant%s (%s%s) cannot be a value of this tenant column of type %s: under %s context the table shows no rows and refuses every write (42501). Register tenants under ids the column can hold (a uuid column: the lowercase canonical uuid; an integer column: the decimal number), or give the column a type that holds them (unprotect, ALTER, protect)',
              count(*), CASE WHEN count(*) > 1 THEN 's' ELSE '' END,
              array_to_string((array_agg(quote_literal(t.id) ORDER BY t.id))[1:5], ', '),
              CASE WHEN count(*) > 5 THEN ', …' ELSE '' END,
              format_type(pt.typid, pt.typmod),
              CASE WHEN count(*) > 1 THEN 'their' ELSE 'its' END),
       NULL
  FROM prot_type pt
  JOIN tenancy.tenants t ON t.status = 'active'
 WHERE NOT pt.relispartition
   AND NOT CASE
       WHEN pt.kind = 'uuid' THEN t.id ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
       WHEN pt.kind = 'integer' THEN
           CASE WHEN t.id ~ '^(0|-?[1-9][0-9]{0,18})$'
                THEN t.id::numeric BETWEEN CASE pt.typid WHEN 'int2'::regtype THEN -32768
                                                         WHEN 'int4'::regtype THEN -2147483648
                                                         ELSE -9223372036854775808 END
                                       AND CASE pt.typid WHEN 'int2'::regtype THEN 32767
                                                         WHEN 'int4'::regtype THEN 2147483647
                                                         ELSE 9223372036854775807 END
                ELSE false END
       WHEN pt.typid = 'varchar'::regtype THEN pt.typmod < 4 OR char_length(t.id) <= pt.typmod - 4
       ELSE true END
 GROUP BY pt.qname, pt.tcol, pt.typid, pt.typmod

UNION ALL
-- Issue 21: one schema whose protected tables keep tenant ids in different kinds of column
-- (text, uuid, integer): no tenant id other than a canonical uuid or decimal fits them all,
-- so some tenants' contexts see only part of their data (tenant_id_not_representable names
-- which). schema-design.md: one type for the tenant column everywhere.
SELECT 'medium', 'mixed_tenant_column_types', format('schema %I', n.nspname),
       format('the protected tables of schema %I keep tenant ids in columns of different kinds: %s; a tenant id fits all of them only if every kind can hold it, so a tenant may see and write only part of its data. Use one type for the tenant column everywhere',
              n.nspname, string_agg(k.kind || ' (' || k.tables || ')', '; ' ORDER BY k.kind)),
       NULL
  FROM (SELECT pt.relnamespace, pt.kind,
               array_to_string((array_agg(pt.qname ORDER BY pt.qname))[1:3], ', ')
               || CASE WHEN count(*) > 3 THEN ', …' ELSE '' END AS tables
          FROM prot_type pt WHERE NOT pt.relispartition
         GROUP BY pt.relnamespace, pt.kind) k
  JOIN pg_namespace n ON n.oid = k.relnamespace
 GROUP BY n.nspname
HAVING count(*) > 1

UNION ALL
-- Issue 13, class 4: a trigger on a protected table runs its function on the rows every tenant
-- writes. That is what a table owner is trusted with (docs/security.md, "The table owner");
-- reported so that an admin knows whose code sees those rows.
SELECT 'info', 'owner_trigger_on_protected_table', format('trigger %I on %s', tg.tgname, p.qname),
       format('the trigger runs %s, owned by %I, on the rows every tenant writes: its owner sees them (and can copy them anywhere it may write)',
              f.oid::regprocedure, fo.rolname),
       format('DROP TRIGGER IF EXISTS %I ON %s;', tg.tgname, p.qname)
  FROM prot p
  JOIN pg_trigger tg ON tg.tgrelid = p.oid AND NOT tg.tgisinternal
  JOIN pg_proc f ON f.oid = tg.tgfoid
  JOIN pg_roles fo ON fo.oid = f.proowner
 WHERE f.pronamespace <> 'pg_catalog'::regnamespace
   AND NOT fo.rolsuper
   AND NOT EXISTS (SELECT 1 FROM ext_member e WHERE e.classid = 'pg_proc'::regclass AND e.objid = f.oid)

UNION ALL
-- Schemas in the search_path of application roles where anyone may create objects.
SELECT 'high', 'public_create_on_search_path', format('schema %I', n.nspname),
       format('PUBLIC may create objects in schema %I, which is on the search_path of application role%s %s: anyone can plant a function or table that shadows a name the application or a function uses',
              n.nspname, CASE WHEN count(DISTINCT ap.rolname) > 1 THEN 's' ELSE '' END,
              string_agg(DISTINCT quote_ident(ap.rolname), ', ')),
       format('REVOKE CREATE ON SCHEMA %I FROM PUBLIC;', n.nspname)
  FROM (SELECT a.rolname,
               coalesce(
                   (SELECT substr(c, length('search_path=') + 1) FROM pg_db_role_setting s, unnest(s.setconfig) c
                     WHERE s.setrole = a.oid AND s.setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())
                       AND c LIKE 'search_path=%' LIMIT 1),
                   (SELECT substr(c, length('search_path=') + 1) FROM pg_db_role_setting s, unnest(s.setconfig) c
                     WHERE s.setrole = a.oid AND s.setdatabase = 0 AND c LIKE 'search_path=%' LIMIT 1),
                   (SELECT substr(c, length('search_path=') + 1) FROM pg_db_role_setting s, unnest(s.setconfig) c
                     WHERE s.setrole = 0 AND s.setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())
                       AND c LIKE 'search_path=%' LIMIT 1),
                   (SELECT boot_val FROM pg_settings WHERE name = 'search_path')) AS path
          FROM app a) ap
  CROSS JOIN LATERAL (
      -- Split as PostgreSQL splits a search_path (see secdef): a quoted element may hold
      -- commas and spaces.
      SELECT CASE WHEN e.x = '$user' THEN ap.rolname ELSE e.x END AS nspname
        FROM (SELECT CASE WHEN r.m[1] IS NOT NULL THEN replace(r.m[1], '""', '"')
                          ELSE translate(r.m[2], 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz') END AS x
                FROM regexp_matches(ap.path, '"((?:[^"]|"")*)"|([^[:space:],"][^[:space:],]*)', 'g') AS r(m)) e) sp
  JOIN scope n ON n.nspname = sp.nspname
  JOIN pg_namespace nn ON nn.oid = n.oid
 WHERE EXISTS (SELECT 1 FROM aclexplode(nn.nspacl) g WHERE g.grantee = 0 AND g.privilege_type = 'CREATE')
 GROUP BY n.nspname

UNION ALL
-- Application roles that may create objects (not only PUBLIC, above): a view or function it
-- plants in a schema the application's queries search (or a new schema named like "$user")
-- runs inside every later tenant's transaction, with that tenant's context, and can copy its
-- rows or its carrier out. Found by the tier review of issue 13.
SELECT 'high', 'app_role_can_create', format('role %I on %s', a.rolname, w.what),
       format('application role %I may create objects in %s: a view or function it plants there can stand in for a name other tenants'' queries use and copy their rows out',
              a.rolname, w.what),
       w.fix
  FROM app a
  CROSS JOIN LATERAL (
      SELECT format('schema %I', n.nspname) AS what,
             CASE WHEN nn.nspowner = a.oid THEN NULL
                  WHEN EXISTS (SELECT 1 FROM aclexplode(nn.nspacl) g
                                WHERE g.grantee = a.oid AND g.privilege_type = 'CREATE')
                  THEN format('REVOKE CREATE ON SCHEMA %I FROM %I;', n.nspname, a.rolname)
             END AS fix
        FROM scope n
        JOIN pg_namespace nn ON nn.oid = n.oid
       WHERE has_schema_privilege(a.oid, n.oid, 'CREATE')
         AND NOT EXISTS (SELECT 1 FROM aclexplode(nn.nspacl) g
                          WHERE g.grantee = 0 AND g.privilege_type = 'CREATE')
      UNION ALL
      SELECT format('database %I', d.datname),
             CASE WHEN d.datdba = a.oid THEN NULL
                  WHEN EXISTS (SELECT 1 FROM aclexplode(d.datacl) g
                                WHERE g.grantee = a.oid AND g.privilege_type = 'CREATE')
                  THEN format('REVOKE CREATE ON DATABASE %I FROM %I;', d.datname, a.rolname)
             END
        FROM pg_database d
       WHERE d.datname = current_database()
         AND has_database_privilege(a.oid, d.oid, 'CREATE')) w
 WHERE NOT a.rolsuper

UNION ALL
-- A parent (by inheritance, or a partitioned table above a protected partition) that is not
-- protected: a query on it returns its children's rows under its own policies, none. The fix
-- protects it when it has the tenant column, else detaches the inheritance child below it.
SELECT 'critical', 'unprotected_parent', format('%I.%I', n.nspname, c.relname),
       format('is a parent of protected table %s but has no row level security of its own: a query on it returns every tenant''s rows of %s',
              string_agg(DISTINCT p.qname, ', '),
              CASE WHEN count(DISTINCT p.oid) > 1 THEN 'those tables' ELSE 'that table' END),
       CASE WHEN min(ta.attname::text) IS NOT NULL
            THEN format('SELECT tenancy.protect(%L, %L);', format('%I.%I', n.nspname, c.relname), min(ta.attname::text))
            WHEN c.relkind = 'r'
            THEN string_agg(DISTINCT format('ALTER TABLE %s NO INHERIT %s;',
                                            a.child::regclass::text, format('%I.%I', n.nspname, c.relname)), ' ')
       END
  FROM ancestors a
  JOIN prot_all p ON p.oid = a.prot
  JOIN pg_class c ON c.oid = a.parent AND c.relkind IN ('r', 'p')
  JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_attribute ta ON ta.attrelid = c.oid AND ta.attname = p.tcol AND ta.attnum > 0 AND NOT ta.attisdropped
 WHERE c.oid NOT IN (SELECT oid FROM prot_all)
   AND c.oid NOT IN (SELECT objid FROM ext_member WHERE classid = 'pg_class'::regclass)
   AND (c.relnamespace IN (SELECT oid FROM scope) OR p.relnamespace IN (SELECT oid FROM scope))
 GROUP BY c.oid, n.nspname, c.relname, c.relkind

UNION ALL
-- REFERENCES granted on columns (pg_attribute.attacl) rather than on the table: the same
-- existence oracle as risky_table_privilege's, through a foreign key the grantee creates.
-- Column SELECT, INSERT and UPDATE grants stay under the table's policies and are not reported.
SELECT 'high', 'risky_column_privilege',
       format('%s on %s', CASE WHEN g.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(g.grantee)) END, p.qname),
       format('REFERENCES on column%s %s granted to a role other than the owner: a foreign key from a table of the grantee is checked without row level security, so inserting a value there tells whether it exists in any tenant',
              CASE WHEN count(*) > 1 THEN 's' ELSE '' END, string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum)),
       format('REVOKE REFERENCES (%s) ON TABLE %s FROM %s;', string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum), p.qname,
              CASE WHEN g.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(g.grantee)) END)
  FROM prot p
  JOIN pg_attribute a ON a.attrelid = p.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attacl IS NOT NULL
  CROSS JOIN LATERAL aclexplode(a.attacl) g
 WHERE g.privilege_type = 'REFERENCES' AND g.grantee <> p.relowner
 GROUP BY g.grantee, p.qname

UNION ALL
-- A foreign key into a protected table from a table that is not tenant data (not protected
-- and without a tenant column: those are unprotected_tenant_table, then global_foreign_key).
SELECT 'high', 'foreign_key_into_protected_table', format('constraint %I on %I.%I', k.conname, n.nspname, c.relname),
       format('the foreign key into protected table %s is checked without row level security: whoever may write %I.%I learns whether a value exists in any tenant, and links rows of every tenant. Drop it, or make the table tenant data (protect it, then tenancy.scope_foreign_key())',
              r.qname, n.nspname, c.relname),
       format('ALTER TABLE %I.%I DROP CONSTRAINT IF EXISTS %I;', n.nspname, c.relname, k.conname)
  FROM pg_constraint k
  JOIN prot_all r ON r.oid = k.confrelid
  JOIN pg_class c ON c.oid = k.conrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE k.contype = 'f' AND k.conparentid = 0
   AND c.oid NOT IN (SELECT oid FROM prot_all)
   AND NOT EXISTS (SELECT 1 FROM pg_attribute a
                    WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
                      AND a.attname::text IN (SELECT name FROM tenant_names))
   AND (c.relnamespace IN (SELECT oid FROM scope) OR r.relnamespace IN (SELECT oid FROM scope))

UNION ALL
-- Functions that policies, column defaults and CHECK constraints of protected tables call run
-- with the querying or writing role's rights and search_path. A body parsed at run time
-- (plpgsql, an SQL function with a string body, other languages) then resolves its names
-- there: a temporary table (pg_temp is searched first) or an object in a schema the caller may
-- write shadows a table the function reads and changes what the policy decides. SQL-standard
-- bodies (BEGIN ATOMIC) are bound at creation and are safe; SECURITY DEFINER functions are
-- security_definer_search_path's. The fix pins the path, keeping its schemas (see proc_path).
SELECT 'high', 'expression_function_search_path', f.oid::regprocedure::text,
       format('called by %s, with the rights and search_path of whoever reads or writes the table, and %s: a temporary table or an object in a schema the caller may write shadows a name it uses and changes what it decides',
              string_agg(DISTINCT tf.used_in || ' on ' || p.qname, ', '),
              CASE WHEN pp.path IS NULL THEN 'has no pinned search_path'
                   ELSE format('its search_path (%s) does not end with pg_temp', pp.path) END),
       format('ALTER FUNCTION %s SET search_path = %s;', f.oid::regprocedure::text,
              CASE WHEN pp.path_elems IS NULL THEN format('pg_catalog, %I, pg_temp', fn.nspname)
                   ELSE concat_ws(', ',
                                  nullif(array_to_string(ARRAY(
                                      SELECT quote_ident(e.x) FROM unnest(pp.path_elems) WITH ORDINALITY e(x, ord)
                                       WHERE e.x NOT IN ('pg_temp', '') ORDER BY e.ord), ', '), ''),
                                  'pg_temp') END)
  FROM table_funcs tf
  JOIN prot_all p ON p.oid = tf.tbl
  JOIN pg_proc f ON f.oid = tf.fid
  JOIN pg_namespace fn ON fn.oid = f.pronamespace
  JOIN pg_language l ON l.oid = f.prolang
  JOIN proc_path pp ON pp.oid = f.oid
 WHERE NOT f.prosecdef
   AND l.lanname NOT IN ('internal', 'c')
   AND f.prosqlbody IS NULL
   AND fn.nspname NOT IN ('pg_catalog', 'information_schema', 'tenancy')
   AND f.oid NOT IN (SELECT objid FROM ext_member WHERE classid = 'pg_proc'::regclass)
   AND (pp.path_elems IS NULL OR pp.path_elems[cardinality(pp.path_elems)] IS DISTINCT FROM 'pg_temp')
   AND (fn.oid IN (SELECT oid FROM scope) OR p.relnamespace IN (SELECT oid FROM scope))
 GROUP BY f.oid, fn.nspname, pp.path, pp.path_elems

UNION ALL
-- A SECURITY DEFINER function that calls one of pg_tenancy's functions of a higher tier
-- (set_tenant() names any tenant without a credential, sign_token() mints one, begin_support()
-- reads any tenant, ...) and that an application role without that tier may execute: it
-- lends its owner's tier to every such caller. What it calls: pg_depend for an SQL-standard
-- body, the words of its source otherwise (best effort).
SELECT 'high', 'security_definer_lends_tier', f.sig,
       format('SECURITY DEFINER function owned by %I calls %s, which %s may not call but may call this function: it lends them its owner''s rights to choose a tenant or act for one',
              pg_get_userbyid(f.proowner),
              string_agg(DISTINCT 'tenancy.' || tf.proname || '()', ', '),
              string_agg(DISTINCT CASE WHEN a.rolname IS NOT NULL THEN 'application role ' || quote_ident(a.rolname) END, ', ')),
       format('ALTER FUNCTION %s SECURITY INVOKER;', f.sig)
  FROM secdef f
  JOIN (SELECT p.oid, p.proname::text AS proname
          FROM pg_proc p JOIN pg_namespace pn ON pn.oid = p.pronamespace
         WHERE pn.nspname = 'tenancy'
           AND p.proname IN ('set_tenant', 'sign_token', 'begin_support', 'create_api_key', 'add_signing_key',
                             'export_tenant', 'purge_tenant', 'purge_audit', 'unprotect', '_unprotect',
                             'set_tenant_settings', 'set_tenant_plan', 'set_plan', 'reactivate_tenant',
                             'create_tenant', 'grant_feature')) tf
    ON tf.oid IN (SELECT d.refobjid FROM pg_depend d
                   WHERE d.classid = 'pg_proc'::regclass AND d.objid = f.oid AND d.refclassid = 'pg_proc'::regclass)
    OR tf.proname IN (SELECT w.word FROM secdef_words w WHERE w.fid = f.oid)
  JOIN app a ON a.oid <> f.proowner
            AND has_function_privilege(a.oid, f.oid, 'EXECUTE')
            AND NOT has_function_privilege(a.oid, tf.oid, 'EXECUTE')
 WHERE f.in_scope
 GROUP BY f.sig, f.proowner

UNION ALL
-- Organizations (docs/organizations.md). create_tenant() and move_tenant() keep the tenant tree
-- acyclic and at most 4 levels deep; a row of tenancy.tenants changed behind them (an UPDATE by
-- its owner, a restore of hand-edited data) can break both. On a cycle every member is an
-- ancestor of the others, so each one's context reads the others' rows; reported once per
-- cycle, on its smallest id, whose move to the top breaks it.
SELECT 'high', 'tenant_tree_cycle', format('tenant %L', w.start),
       format('tenant %L is its own ancestor (%s): every tenant on the cycle reads the others'' rows',
              w.start, array_to_string(w.path, ' -> ')),
       format('SELECT tenancy.move_tenant(%L, NULL);', w.start)
  FROM (WITH RECURSIVE up (start, cur, path, steps) AS (
            SELECT t.id, t.parent, ARRAY[t.id], 1 FROM tenancy.tenants t WHERE t.parent IS NOT NULL
            UNION ALL
            SELECT up.start, t.parent, up.path || t.id, up.steps + 1
              FROM up JOIN tenancy.tenants t ON t.id = up.cur
             WHERE up.cur <> up.start AND up.steps < 16 AND t.parent IS NOT NULL)
        SELECT up.start, up.path || up.cur AS path FROM up WHERE up.cur = up.start) w
 WHERE w.start = (SELECT min(x) FROM unnest(w.path) x)

UNION ALL
-- A tenant more than 4 levels down is outside what the top of its tree reads (organizations
-- read 4 levels): that organization silently misses its rows. The fix attaches it to its
-- ancestor on level 3.
SELECT 'medium', 'tenant_tree_too_deep', format('tenant %L', d.id),
       format('tenant %L is %s levels deep (%s); an organization reads at most 4 levels, so %L does not read its rows',
              d.id, d.depth, array_to_string(d.path, ' -> '), d.root),
       format('SELECT tenancy.move_tenant(%L, %L);', d.id, d.path[3])
  FROM tenancy.tenant_tree d
 WHERE d.depth > 4

UNION ALL
-- Rules on Citus's metadata (none without Citus).
SELECT cf.severity, cf.rule, cf.object, cf.detail, cf.fix FROM tenancy._citus_findings($1) cf

UNION ALL
-- Citus co-location and feature gates (none without Citus).
SELECT cc.severity, cc.rule, cc.object, cc.detail, cc.fix FROM tenancy._citus_colocation_findings($1) cc
)
SELECT f.severity, f.rule, f.object, f.detail, f.fix
  FROM findings f
 ORDER BY CASE f.severity WHEN 'critical' THEN 0 WHEN 'high' THEN 1 WHEN 'medium' THEN 2 ELSE 3 END,
          -- re-protecting first: other DDL on a table the guard still finds broken is refused
          coalesce(f.fix LIKE 'SELECT tenancy.protect(%', false) DESC,
          f.rule, f.object
$check$;

COMMENT ON FUNCTION tenancy.check(name) IS
    'Every way the schema (or, with NULL, the database) can leak across tenants, with the SQL that fixes each; see docs/checker.md.';

CREATE OR REPLACE FUNCTION tenancy."_citus_built"(
	"rel" oid /* pg_sys :: Oid */
) RETURNS void
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', '_citus_built_wrapper';

CREATE OR REPLACE FUNCTION tenancy.export_tenant(tenant text)
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

CREATE OR REPLACE FUNCTION tenancy."claim_job"(
	"queue" TEXT, /* Option < & str > */
	"lease" interval DEFAULT '5 minutes' /* Option < Interval > */
) RETURNS TABLE (
	"job_id" bigint,  /* i64 */
	"tenant" TEXT,  /* String */
	"actor" TEXT,  /* Option < String > */
	"payload" jsonb,  /* JsonB */
	"attempt" INT,  /* i32 */
	"max_attempts" INT  /* i32 */
)
VOLATILE SECURITY DEFINER PARALLEL UNSAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'claim_job_wrapper';

CREATE OR REPLACE FUNCTION tenancy."complete_job"() RETURNS bigint /* i64 */
STRICT VOLATILE SECURITY DEFINER PARALLEL UNSAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'complete_job_wrapper';

CREATE OR REPLACE FUNCTION tenancy."create_tenant"(
	"id" TEXT, /* & str */
	"name" TEXT DEFAULT NULL, /* Option < & str > */
	"plan" TEXT DEFAULT NULL, /* Option < & str > */
	"settings" jsonb DEFAULT '{}', /* Option < JsonB > */
	"parent" TEXT DEFAULT NULL /* Option < & str > */
) RETURNS TEXT /* String */
VOLATILE SECURITY DEFINER PARALLEL UNSAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'create_tenant_wrapper';

CREATE OR REPLACE FUNCTION tenancy."current_job"() RETURNS bigint /* Option < i64 > */
STRICT STABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'current_job_wrapper';

CREATE OR REPLACE FUNCTION tenancy."current_subtree"() RETURNS TEXT[] /* :: std :: option :: Option < Vec < String > > */
STRICT STABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'current_subtree_wrapper';

CREATE OR REPLACE FUNCTION tenancy."current_subtree_int8"() RETURNS bigint[] /* :: std :: option :: Option < Vec < i64 > > */
STRICT STABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'current_subtree_int8_wrapper';

CREATE OR REPLACE FUNCTION tenancy."current_subtree_uuid"() RETURNS uuid[] /* :: std :: option :: Option < Vec < pgrx :: Uuid > > */
STRICT STABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'current_subtree_uuid_wrapper';

CREATE OR REPLACE FUNCTION tenancy.entitled(feature text) RETURNS boolean
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

CREATE OR REPLACE FUNCTION tenancy."enqueue"(
	"queue" TEXT, /* Option < & str > */
	"payload" jsonb DEFAULT '{}', /* Option < JsonB > */
	"run_at" timestamp with time zone DEFAULT NULL, /* Option < TimestampWithTimeZone > */
	"max_attempts" INT DEFAULT 5, /* Option < i32 > */
	"dedup_key" TEXT DEFAULT NULL /* Option < & str > */
) RETURNS bigint /* i64 */
VOLATILE SECURITY DEFINER PARALLEL UNSAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'enqueue_wrapper';

CREATE OR REPLACE FUNCTION tenancy."fail_job"(
	"error" TEXT, /* Option < & str > */
	"retry_in" interval DEFAULT NULL /* Option < Interval > */
) RETURNS TEXT /* String */
VOLATILE SECURITY DEFINER PARALLEL UNSAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'fail_job_wrapper';

CREATE TABLE tenancy.jobs (
    id           bigint GENERATED ALWAYS AS IDENTITY (SEQUENCE NAME tenancy.jobs_id_seq) PRIMARY KEY,
    tenant       text NOT NULL,
    queue        text NOT NULL,
    payload      jsonb NOT NULL DEFAULT '{}',
    actor        text,
    roles        text[] NOT NULL DEFAULT '{}',
    status       text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'done', 'dead')),
    attempts     integer NOT NULL DEFAULT 0,
    max_attempts integer NOT NULL DEFAULT 5 CHECK (max_attempts BETWEEN 1 AND 100),
    run_at       timestamptz NOT NULL DEFAULT now(),
    dedup_key    text,
    enqueued_by  text NOT NULL,
    enqueued_at  timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    last_error   text,
    -- A queue is no place for documents: a bounded row keeps a claim cheap.
    CONSTRAINT jobs_payload_size CHECK (pg_catalog.pg_column_size(payload) <= 1048576)
);

CREATE INDEX jobs_ready ON tenancy.jobs (queue, run_at, id) WHERE status = 'queued';

CREATE UNIQUE INDEX jobs_dedup ON tenancy.jobs (tenant, queue, dedup_key)
    WHERE status = 'queued' AND dedup_key IS NOT NULL;

CREATE INDEX jobs_tenant ON tenancy.jobs (tenant, id);

ALTER TABLE tenancy.jobs ENABLE ROW LEVEL SECURITY;

ALTER TABLE tenancy.jobs FORCE ROW LEVEL SECURITY;

CREATE POLICY jobs_read ON tenancy.jobs FOR SELECT
    USING (tenant OPERATOR(pg_catalog.=) (SELECT tenancy.current_tenant())
           AND id OPERATOR(pg_catalog.=) COALESCE((SELECT tenancy.current_job()), id)
           AND (SELECT tenancy.context() OPERATOR(pg_catalog.->>) 'source') OPERATOR(pg_catalog.<>) 'support');

SELECT pg_catalog.pg_extension_config_dump('tenancy.jobs', '');

SELECT pg_catalog.pg_extension_config_dump('tenancy.jobs_id_seq', '');

CREATE OR REPLACE FUNCTION tenancy."move_tenant"(
	"id" TEXT, /* Option < & str > */
	"parent" TEXT /* Option < & str > */
) RETURNS void
VOLATILE SECURITY DEFINER PARALLEL UNSAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'move_tenant_wrapper';

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

CREATE OR REPLACE FUNCTION tenancy._on_citus_guarded_built() RETURNS trigger
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

CREATE OR REPLACE FUNCTION tenancy.grant_app(role regrole) RETURNS void
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

CREATE OR REPLACE FUNCTION tenancy.grant_worker(role regrole) RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM tenancy.grant_app(role);
    PERFORM tenancy._grant_functions(role, ARRAY['claim_job', 'complete_job', 'fail_job']);
    PERFORM tenancy._grants_to_workers(role);
END
$$;

CREATE OR REPLACE FUNCTION tenancy.grant_admin(role regrole) RETURNS void
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
-- ---- end of session 5's block ----

-- Privileges as a fresh 0.2.0 install sets them: nothing to PUBLIC but what the policies and
-- getters need (the entitlement policy's WITH CHECK runs with the writer's rights).
REVOKE EXECUTE ON FUNCTION tenancy._citus_findings(name), tenancy._grants_to_workers(oid),
    tenancy.citus_setup(), tenancy.close_support_sessions(), tenancy.drop_tenant(text, text),
    tenancy.rename_tenant(text, text) FROM PUBLIC;
-- Granted to PUBLIC explicitly, as the install script's _grant_functions(NULL, ...) does, so
-- that its ACL and pg_init_privs (what pg_dump compares with) are the same as a fresh install's.
REVOKE EXECUTE ON FUNCTION tenancy._entitled_to_write(text) FROM PUBLIC;
SELECT tenancy._grant_functions(NULL, ARRAY['_entitled_to_write']);

-- The same for what session 5 merged: the tenant tree, jobs, Citus on every node.
REVOKE EXECUTE ON FUNCTION tenancy._citus_built(oid), tenancy._citus_colocation_findings(name),
    tenancy._on_citus_guarded_built(), tenancy.claim_job(text, interval), tenancy.complete_job(),
    tenancy.create_tenant(text, text, text, jsonb, text), tenancy.enqueue(text, jsonb, timestamptz, integer, text),
    tenancy.fail_job(text, interval), tenancy.grant_worker(regrole), tenancy.move_tenant(text, text)
    FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION tenancy.current_job(), tenancy.current_subtree(), tenancy.current_subtree_int8(),
    tenancy.current_subtree_uuid() FROM PUBLIC;
SELECT tenancy._grant_functions(NULL, ARRAY['current_job', 'current_subtree', 'current_subtree_uuid', 'current_subtree_int8']);
REVOKE ALL ON tenancy.jobs, tenancy.tenant_tree FROM PUBLIC;

-- Roles granted the admin tier under 0.1.0 do not get 0.2.0's new admin functions here: a GRANT
-- made inside an extension script becomes part of the extension's initial privileges, which
-- pg_dump leaves out, so a dump would lose it. docs/upgrading.md: run tenancy.grant_admin()
-- again for each admin role after the update (check() needs _citus_findings).
