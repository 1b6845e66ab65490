-- Protection under a real schema, as its owner and two tenants see it.
DROP ROLE IF EXISTS regress_owner;
CREATE ROLE regress_owner NOLOGIN;
SELECT tenancy.grant_admin('regress_owner');
CREATE SCHEMA crm AUTHORIZATION regress_owner;
GRANT USAGE ON SCHEMA crm TO regress_app;
SET ROLE regress_owner;

-- The owner enrols the schema; tables created afterwards are protected as they arrive.
SELECT tenancy.protect_schema('crm');
CREATE TABLE crm.accounts (id int, tenant_id text, name text, PRIMARY KEY (tenant_id, id));
CREATE TABLE crm.templates (id int PRIMARY KEY, tenant_id text, is_public boolean NOT NULL DEFAULT false, body text);
SELECT tenancy.protect('crm.templates', shared_column => 'is_public');
CREATE TABLE crm.contacts (id int PRIMARY KEY, tenant_id text, account_id int, email text UNIQUE);
SELECT tenancy.scope_unique('crm.contacts', '{email}');
SELECT tenancy.scope_foreign_key('crm.contacts', '{account_id}', 'crm.accounts');
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA crm TO regress_app;
SELECT tbl, tenant_column, shared_column FROM tenancy.protected_tables WHERE tbl::text LIKE 'crm.%' ORDER BY tbl::text;
RESET ROLE;

INSERT INTO crm.accounts VALUES (1, 'acme', 'Acme HQ'), (7, 'acme', 'Acme Labs'), (1, 'globex', 'Globex HQ');
INSERT INTO crm.templates VALUES (1, 'acme', true, 'acme: welcome (public)'), (2, 'acme', false, 'acme: internal'),
                                 (3, 'globex', false, 'globex: internal');
INSERT INTO crm.contacts VALUES (1, 'acme', 1, 'ann@example.com');

-- globex reads acme's public template, not its internal one, and can change neither.
SET ROLE regress_job;
BEGIN;
SELECT tenancy.set_tenant('globex') ->> 'tenant' AS tenant;
SET LOCAL ROLE regress_app;
SELECT id, tenant_id, body FROM crm.templates ORDER BY id;
UPDATE crm.templates SET body = 'defaced' WHERE id = 1;
DELETE FROM crm.templates WHERE id = 1;
-- The same email as acme's contact is fine within globex, and reveals nothing.
INSERT INTO crm.contacts VALUES (2, DEFAULT, 1, 'ann@example.com');
-- Account 1 means globex's own account 1; acme's account 7 cannot be referenced, and the
-- error is the same as for an account that exists nowhere.
SELECT c.email, a.name FROM crm.contacts c JOIN crm.accounts a USING (tenant_id) WHERE a.id = c.account_id;
SAVEPOINT s;
INSERT INTO crm.contacts VALUES (3, DEFAULT, 7, 'bob@example.com');
ROLLBACK TO SAVEPOINT s;
INSERT INTO crm.contacts VALUES (3, DEFAULT, 99, 'bob@example.com');
ROLLBACK;
RESET ROLE;

-- The owner cannot switch isolation off, not even by accident in a migration.
SET ROLE regress_owner;
ALTER TABLE crm.accounts NO FORCE ROW LEVEL SECURITY;
CREATE POLICY see_all ON crm.accounts USING (true);
ALTER TABLE crm.accounts RENAME COLUMN tenant_id TO org_id;
-- Restrictive policies only narrow, and are allowed.
CREATE POLICY only_named ON crm.accounts AS RESTRICTIVE USING (name IS NOT NULL);
RESET ROLE;

DROP SCHEMA crm CASCADE;
SELECT count(*) AS crm_tables_left FROM tenancy.protected_tables WHERE tbl::text LIKE 'crm.%';
DELETE FROM tenancy.enrolled_schemas WHERE schema_name = 'crm';
DROP OWNED BY regress_owner;
DROP ROLE regress_owner;
