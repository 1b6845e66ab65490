-- Shared fixture for the regress suite: the extension, two tenants, a signing key, an
-- application role, a trusted role and a protected table. Runs first, as a superuser.
CREATE EXTENSION pg_tenancy;

DROP ROLE IF EXISTS regress_app;
DROP ROLE IF EXISTS regress_job;
CREATE ROLE regress_app NOLOGIN;
CREATE ROLE regress_job NOLOGIN;
SELECT tenancy.grant_app('regress_app');
SELECT tenancy.grant_trusted('regress_job');

SELECT tenancy.create_tenant('acme', 'Acme Corp');
SELECT tenancy.create_tenant('globex', 'Globex');
SELECT tenancy.add_signing_key('regress-key', decode(repeat('42', 32), 'hex'));

CREATE TABLE people (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id text NOT NULL,
    name      text NOT NULL
);
INSERT INTO people (tenant_id, name) VALUES
    ('acme', 'Ada'), ('acme', 'Brian'), ('globex', 'Grace'), ('globex', 'Gus');
SELECT tenancy.protect('people');
GRANT SELECT, INSERT, UPDATE, DELETE ON people TO regress_app, regress_job;

SELECT tbl, tenant_column, column_type, policy_name, index_name FROM tenancy.protected_tables;
SELECT policyname, cmd, roles, qual, with_check FROM pg_policies WHERE tablename = 'people';
