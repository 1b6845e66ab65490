-- A DBA's first week (issue 21), as psql runs it: statements in autocommit where that is what
-- a DBA or an application does. Runs after setup.sql (tenants acme and globex, roles
-- regress_app and regress_job, table people).

-- A transaction-local context set outside a transaction block ends with its statement: a
-- WARNING says so, and the next statement has no context.
SELECT tenancy.sign_token('{"tenant_id": "acme", "sub": "dfw"}') AS acme_token \gset
SET ROLE regress_app;
SELECT tenancy.set_context(:'acme_token') ->> 'tenant_id' AS tenant;
SELECT tenancy.current_tenant() IS NULL AS no_context_after, count(*) AS visible FROM people;
-- Inside a transaction block: no warning, and the context holds until COMMIT.
BEGIN;
SELECT tenancy.set_context(:'acme_token') ->> 'tenant_id' AS tenant;
SELECT tenancy.current_tenant() AS tenant, count(*) AS visible FROM people;
COMMIT;
-- A session context (is_local => false) is meant to outlive the statement: no warning.
SELECT tenancy.set_context(:'acme_token', is_local => false) ->> 'tenant_id' AS tenant;
SELECT tenancy.current_tenant() AS tenant;
SELECT tenancy.clear_context();
RESET ROLE;
-- The same for a trusted role's set_tenant().
SET ROLE regress_job;
SELECT tenancy.set_tenant('globex') ->> 'tenant' AS tenant;
SELECT tenancy.current_tenant() IS NULL AS no_context_after;
RESET ROLE;

-- A write without a context: row level security's 42501 (no row is anyone's); with
-- tenancy.require_context = on, 55000 naming the missing context.
SET ROLE regress_app;
INSERT INTO people (name) VALUES ('Nobody');
\echo :LAST_ERROR_SQLSTATE
SET tenancy.require_context = on;
INSERT INTO people (name) VALUES ('Nobody');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM people;
\echo :LAST_ERROR_SQLSTATE
RESET tenancy.require_context;
RESET ROLE;

-- Export to a file, verify the file, purge, and re-import as the tables' owner
-- (docs/operations.md, "Purge" and "Re-import").
CREATE ROLE dfw_owner NOLOGIN;
CREATE SCHEMA dfw AUTHORIZATION dfw_owner;
SELECT tenancy.create_tenant('dfw_acme');
SET ROLE dfw_owner;
CREATE TABLE dfw.staff (id bigint GENERATED ALWAYS AS IDENTITY, tenant_id text NOT NULL, name text,
                        PRIMARY KEY (tenant_id, id));
CREATE TABLE dfw.notes (id bigint GENERATED ALWAYS AS IDENTITY, tenant_id text NOT NULL,
                        staff_id bigint NOT NULL, body text, PRIMARY KEY (tenant_id, id),
                        FOREIGN KEY (tenant_id, staff_id) REFERENCES dfw.staff (tenant_id, id));
RESET ROLE;
SELECT tenancy.protect('dfw.staff'), tenancy.protect('dfw.notes');
INSERT INTO dfw.staff (tenant_id, name) VALUES ('dfw_acme', 'Ada'), ('dfw_acme', 'Brian');
INSERT INTO dfw.notes (tenant_id, staff_id, body)
VALUES ('dfw_acme', 1, 'first'), ('dfw_acme', 2, E'tab\there, "quoted", back\\slash, new\nline');

SELECT tenancy.deactivate_tenant('dfw_acme');
\copy (SELECT * FROM tenancy.export_tenant('dfw_acme')) TO 'results/dfw_acme.tsv'
BEGIN;
CREATE TEMP TABLE acme_file (table_name text, "row" jsonb) ON COMMIT DROP;
\copy acme_file FROM 'results/dfw_acme.tsv'
SELECT count(*) AS rows_in_file,
       NOT EXISTS ((SELECT * FROM tenancy.export_tenant('dfw_acme') EXCEPT ALL SELECT * FROM acme_file)
                   UNION ALL
                   (SELECT * FROM acme_file EXCEPT ALL SELECT * FROM tenancy.export_tenant('dfw_acme'))) AS identical
  FROM acme_file;
COMMIT;
SELECT * FROM tenancy.purge_tenant('dfw_acme', 'purge dfw_acme') ORDER BY table_name;
SELECT tenancy.reactivate_tenant('dfw_acme');

-- The owner without the trusted tier cannot set the tenant's context, and without a context
-- its forced row level security refuses the rows.
SET ROLE dfw_owner;
BEGIN;
SELECT tenancy.set_tenant('dfw_acme');
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
INSERT INTO dfw.staff (id, tenant_id, name) OVERRIDING SYSTEM VALUE VALUES (1, 'dfw_acme', 'Ada');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;

-- With the trusted tier, the documented re-import works as the owner.
SELECT tenancy.grant_trusted('dfw_owner');
SET ROLE dfw_owner;
BEGIN;
CREATE TEMP TABLE acme_export (n bigint GENERATED ALWAYS AS IDENTITY, table_name text, "row" jsonb)
    ON COMMIT DROP;
\copy acme_export (table_name, "row") FROM 'results/dfw_acme.tsv'
SELECT tenancy.set_tenant('dfw_acme') ->> 'tenant' AS tenant;
DO $$
DECLARE t text;
BEGIN
    FOR t IN SELECT table_name FROM acme_export GROUP BY table_name ORDER BY min(n) LOOP
        EXECUTE format('INSERT INTO %s OVERRIDING SYSTEM VALUE
                        SELECT r.* FROM acme_export e, jsonb_populate_record(NULL::%s, e."row") r
                         WHERE e.table_name = %L ORDER BY e.n', t, t, t);
    END LOOP;
END $$;
COMMIT;
RESET ROLE;
-- The re-imported rows equal the file, row for row.
BEGIN;
CREATE TEMP TABLE acme_file (table_name text, "row" jsonb) ON COMMIT DROP;
\copy acme_file FROM 'results/dfw_acme.tsv'
SELECT (SELECT count(*) FROM tenancy.export_tenant('dfw_acme')) AS reimported,
       NOT EXISTS ((SELECT * FROM tenancy.export_tenant('dfw_acme') EXCEPT ALL SELECT * FROM acme_file)
                   UNION ALL
                   (SELECT * FROM acme_file EXCEPT ALL SELECT * FROM tenancy.export_tenant('dfw_acme'))) AS identical;
COMMIT;
SELECT tenant_id, name FROM dfw.staff ORDER BY tenant_id, id;
SELECT id, tenant_id, staff_id, body FROM dfw.notes ORDER BY id;

-- Leave nothing behind for the scenarios after this one (their exports and checks).
DROP SCHEMA dfw CASCADE;
DROP OWNED BY dfw_owner;
DROP ROLE dfw_owner;
SELECT tenancy.deactivate_tenant('dfw_acme');
