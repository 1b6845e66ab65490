-- pg_tenancy walk-through: two tenants, one protected table, a token per tenant.
-- Run by `make demo` against a throwaway cluster, as a superuser (the "DBA").
-- Statements that are meant to fail run with ON_ERROR_STOP off, so their errors show.
\pset footer off
\set ECHO all

-- == 1. The DBA installs the extension and registers two tenants
CREATE EXTENSION pg_tenancy;
SELECT tenancy.create_tenant('acme', 'Acme Corp', 'pro');
SELECT tenancy.create_tenant('globex', 'Globex', 'free');
-- The key your identity provider signs tokens with (HS256, at least 32 bytes).
SELECT tenancy.add_signing_key('idp-2026', decode(repeat('5a', 32), 'hex'));

-- == 2. An application role and a protected table
CREATE ROLE demo_app NOLOGIN;
SELECT tenancy.grant_app('demo_app');
-- The key includes the tenant column: a global key would tell one tenant another's ids.
CREATE TABLE employees (
    id        bigint GENERATED ALWAYS AS IDENTITY,
    tenant_id text NOT NULL,
    name      text NOT NULL,
    salary    numeric NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
INSERT INTO employees (tenant_id, name, salary) VALUES
    ('acme', 'Ada', 120000), ('acme', 'Brian', 95000), ('globex', 'Grace', 130000);
SELECT tenancy.protect('employees');
GRANT SELECT, INSERT, UPDATE, DELETE ON employees TO demo_app;
-- What protect() generated:
SELECT policyname, qual FROM pg_policies WHERE tablename = 'employees';
SELECT indexname FROM pg_indexes WHERE tablename = 'employees' ORDER BY 1;

-- == 3. Tokens, as an identity provider would mint them (standard HS256 JWTs)
SELECT tenancy.sign_token(jsonb_build_object('tenant_id', 'acme', 'sub', 'alice@acme',
         'exp', extract(epoch FROM now() + interval '1 hour')::bigint)) AS acme_token \gset
SELECT tenancy.sign_token(jsonb_build_object('tenant_id', 'globex', 'sub', 'gus@globex',
         'exp', extract(epoch FROM now() + interval '1 hour')::bigint)) AS globex_token \gset

-- == 4. The application (any SQL it likes) acting for acme, then for globex
SET ROLE demo_app;
BEGIN;
SELECT tenancy.set_context(:'acme_token') ->> 'sub' AS signed_in_as;
SELECT id, tenant_id, name, salary FROM employees ORDER BY id;
-- No tenant_id given: the row is stamped with the context's tenant.
INSERT INTO employees (name, salary) VALUES ('Chen', 88000) RETURNING tenant_id, name;
-- Trying to write into the other tenant is refused.
\set ON_ERROR_STOP off
INSERT INTO employees (tenant_id, name, salary) VALUES ('globex', 'Mallory', 1);
\set ON_ERROR_STOP on
ROLLBACK;

BEGIN;
SELECT tenancy.set_context(:'globex_token') ->> 'sub' AS signed_in_as;
SELECT id, tenant_id, name, salary FROM employees ORDER BY id;
-- Even an UPDATE without WHERE touches only globex's rows.
UPDATE employees SET salary = salary * 1.01;
COMMIT;

-- == 5. A forged token (globex claims under acme's signature) is refused
SELECT split_part(:'acme_token', '.', 1) || '.' || split_part(:'globex_token', '.', 2)
       || '.' || split_part(:'acme_token', '.', 3) AS forged_token \gset
\set ON_ERROR_STOP off
BEGIN;
SELECT tenancy.set_context(:'forged_token');
ROLLBACK;
-- Setting the carrier directly with a made-up value does not work either.
BEGIN;
SET LOCAL tenancy.context = 'v1.eyJ0IjoiYWNtZSJ9.AAAA';
SELECT count(*) FROM employees;
ROLLBACK;
\set ON_ERROR_STOP on

-- == 6. No context: zero rows, and writes are refused
SELECT tenancy.current_tenant() IS NULL AS no_context, count(*) AS visible_rows FROM employees;
\set ON_ERROR_STOP off
INSERT INTO employees (tenant_id, name, salary) VALUES ('acme', 'Nobody', 1);
\set ON_ERROR_STOP on
RESET ROLE;

-- == 7. Deactivating a tenant stops its tokens from the next transaction
SELECT tenancy.deactivate_tenant('globex');
SET ROLE demo_app;
\set ON_ERROR_STOP off
BEGIN;
SELECT tenancy.set_context(:'globex_token');
ROLLBACK;
\set ON_ERROR_STOP on
RESET ROLE;

-- == 8. An audit trail stamped from the verified context, and a min-N guarded average
SET ROLE demo_app;
BEGIN;
SELECT tenancy.set_context(:'acme_token') IS NOT NULL AS signed_in;
-- Tenant, actor, time and transaction come from the context, not from the caller.
SELECT tenancy.audit('salary.reviewed', '{"employee": "Ada"}') > 0 AS recorded;
-- Two people are too few to show an average salary (tenancy.min_n = 5): NULL, and why.
SELECT tenancy.guarded_avg(salary, id) AS avg_salary, tenancy.guard_status(id) AS status
  FROM employees;
COMMIT;
-- The application cannot lower the threshold.
\set ON_ERROR_STOP off
SET tenancy.min_n = 1;
\set ON_ERROR_STOP on
RESET ROLE;
SELECT seq, actor, event, detail FROM tenancy.audit_log WHERE tenant_id = 'acme' ORDER BY seq;
SELECT * FROM tenancy.verify_audit('acme');

-- == 9. Support access: one tenant, with a reason, for a limited time, on the record
CREATE ROLE demo_support NOLOGIN;
SELECT tenancy.grant_support('demo_support');
GRANT SELECT ON employees TO demo_support;
SET ROLE demo_support;
SELECT tenancy.begin_support('acme', 'ticket 4711: payroll question', 15) IS NOT NULL AS started;
SELECT name FROM employees ORDER BY id;
SELECT tenancy.end_support();
RESET ROLE;
SELECT seq, actor, event, support ->> 'reason' AS reason
  FROM tenancy.audit_log WHERE tenant_id = 'acme' AND event LIKE 'support%' ORDER BY seq;

-- == 10. A background job carries its tenant: enqueued under acme's token, processed by a
-- worker that names no tenant (docs/jobs.md)
CREATE ROLE demo_worker NOLOGIN;
SELECT tenancy.grant_worker('demo_worker');
CREATE TABLE payslips (
    tenant_id text NOT NULL,
    employee  text NOT NULL,
    amount    numeric NOT NULL,
    PRIMARY KEY (tenant_id, employee)
);
SELECT tenancy.protect('payslips');
GRANT SELECT ON employees TO demo_worker;
GRANT SELECT, INSERT ON payslips TO demo_worker;
SET ROLE demo_app;
BEGIN;
SELECT tenancy.set_context(:'acme_token') IS NOT NULL AS signed_in;
SELECT tenancy.enqueue('payroll.run', '{"month": "2026-11"}') > 0 AS enqueued;
COMMIT;
SET ROLE demo_worker;
BEGIN;
SELECT tenant, actor, payload FROM tenancy.claim_job('payroll.run');
-- The claim made acme this transaction's context: acme's employees only, payslips stamped acme.
INSERT INTO payslips (employee, amount)
    SELECT name, round(salary / 12, 2) FROM employees RETURNING tenant_id, employee, amount;
SELECT tenancy.complete_job() > 0 AS completed;
COMMIT;
RESET ROLE;
SELECT tenant, actor, queue, status, attempts FROM tenancy.jobs;

-- == 11. Organizations: a company with two locations (docs/organizations.md)
SELECT tenancy.create_tenant('initech', 'Initech');
SELECT tenancy.create_tenant('initech_east', 'Initech East', parent => 'initech');
SELECT tenancy.create_tenant('initech_west', 'Initech West', parent => 'initech');
SELECT id, parent, depth, root FROM tenancy.tenant_tree WHERE root = 'initech' ORDER BY path;
INSERT INTO employees (tenant_id, name, salary) VALUES
    ('initech', 'Bill', 150000), ('initech_east', 'Peter', 70000), ('initech_west', 'Milton', 40000);
SELECT tenancy.sign_token(jsonb_build_object('tenant_id', 'initech_east', 'sub', 'peter',
         'exp', extract(epoch FROM now() + interval '1 hour')::bigint)) AS east_token \gset
SELECT tenancy.sign_token(jsonb_build_object('tenant_id', 'initech', 'sub', 'bill',
         'exp', extract(epoch FROM now() + interval '1 hour')::bigint)) AS initech_token \gset
SET ROLE demo_app;
-- A location sees its own rows, not its sibling's or its company's.
BEGIN;
SELECT tenancy.set_context(:'east_token') ->> 'sub' AS signed_in_as;
SELECT tenant_id, name FROM employees ORDER BY id;
COMMIT;
-- The company sees its own rows and both locations', nothing of acme or globex ...
BEGIN;
SELECT tenancy.set_context(:'initech_token') ->> 'sub' AS signed_in_as;
SELECT tenant_id, name FROM employees ORDER BY id;
-- ... and writes only its own: a row for a location is refused.
\set ON_ERROR_STOP off
INSERT INTO employees (tenant_id, name, salary) VALUES ('initech_west', 'Lumbergh', 1);
\set ON_ERROR_STOP on
ROLLBACK;
RESET ROLE;

-- == 12. The isolation checker finds nothing critical or high (CI runs this after migrations)
SELECT tenancy.assert_isolated();

-- Done: each tenant saw only its rows; forged, missing and deactivated contexts saw none;
-- what was done for acme, and by whom, is on a chain that verifies.
