-- Tenant lifecycle and per-tenant limits as an operator and an application see them.
-- Runs after setup.sql (tenants acme and globex, roles regress_app and regress_job, table people).

-- Plans carry limits; a tenant's settings may lower them, never raise them.
SELECT tenancy.set_plan('starter', '{"statement_timeout": "100ms", "work_mem": "1MB"}');
SELECT tenancy.create_tenant('initech', 'Initech', plan => 'starter');
SELECT tenancy.create_tenant('hooli', 'Hooli', plan => 'starter', settings => '{"statement_timeout": "10s", "lock_timeout": "200ms"}');
SELECT plan, limits FROM tenancy.plans ORDER BY plan;
-- A bad limit is refused when written.
SELECT tenancy.set_plan('broken', '{"statement_timeout": "soon"}');
SELECT tenancy.set_plan('broken', '{"max_connections": 5}');

SET ROLE regress_job;
-- Initech's plan: a one-second sleep is cancelled after 100ms.
BEGIN;
SELECT tenancy.set_tenant('initech') ->> 'tenant' AS tenant;
SELECT current_setting('statement_timeout') AS statement_timeout, current_setting('work_mem') AS work_mem;
SELECT pg_sleep(1);
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
-- Transaction-local: gone with the transaction.
SELECT current_setting('statement_timeout') AS statement_timeout_after;
-- Acme has no plan: the same sleep completes.
BEGIN;
SELECT tenancy.set_tenant('acme') ->> 'tenant' AS tenant;
SELECT current_setting('statement_timeout') AS statement_timeout;
SELECT pg_sleep(0.2);
COMMIT;
-- Hooli's own 10s cannot raise the plan's 100ms; its lock_timeout applies.
BEGIN;
SELECT tenancy.set_tenant('hooli') ->> 'tenant' AS tenant;
SELECT current_setting('statement_timeout') AS statement_timeout, current_setting('lock_timeout') AS lock_timeout;
ROLLBACK;
-- The role's own lower setting is kept.
BEGIN;
SET LOCAL statement_timeout = '40ms';
SELECT tenancy.set_tenant('initech') ->> 'tenant' AS tenant;
SELECT current_setting('statement_timeout') AS statement_timeout;
ROLLBACK;
-- A session context (is_local => false) lowers them for the session, like SET.
SELECT tenancy.set_tenant('initech', is_local => false) ->> 'tenant' AS tenant;
SELECT current_setting('statement_timeout') AS statement_timeout_next_statement;
SELECT tenancy.clear_context();
RESET statement_timeout;
RESET work_mem;
RESET ROLE;

-- Export, purge, re-import. Two related tables: orders reference people.
CREATE TABLE orders (
    id        bigint PRIMARY KEY,
    tenant_id text NOT NULL,
    person_id bigint NOT NULL REFERENCES people,
    amount    numeric(10,2) NOT NULL
);
INSERT INTO orders SELECT p.id * 10, p.tenant_id, p.id, p.id * 1.25 FROM people p;
SELECT tenancy.protect('orders');
GRANT SELECT, INSERT, DELETE ON orders TO regress_app, regress_job;

-- Referenced tables first, so the rows re-insert in this order.
SELECT table_name, "row" - 'id' AS "row" FROM tenancy.export_tenant('globex');
CREATE TEMP TABLE globex_export AS
    SELECT e.n, e.table_name, e."row" FROM tenancy.export_tenant('globex') WITH ORDINALITY e(table_name, "row", n);

-- Purge needs the confirmation string and a deactivated tenant.
SELECT * FROM tenancy.purge_tenant('globex', 'yes');
SELECT * FROM tenancy.purge_tenant('globex', 'purge globex');
SELECT tenancy.deactivate_tenant('globex');
SELECT * FROM tenancy.purge_tenant('globex', 'purge globex');
SELECT tenant_id, count(*) FROM people GROUP BY 1 ORDER BY 1;
SELECT id, status FROM tenancy.tenants WHERE id = 'globex';

-- Re-import, table by table in export order (docs/operations.md).
SELECT tenancy.reactivate_tenant('globex');
DO $$
DECLARE t text;
BEGIN
    FOR t IN SELECT table_name FROM globex_export GROUP BY table_name ORDER BY min(n) LOOP
        EXECUTE format('INSERT INTO %s OVERRIDING SYSTEM VALUE
                        SELECT r.* FROM globex_export e, jsonb_populate_record(NULL::%s, e."row") r
                         WHERE e.table_name = %L ORDER BY e.n', t, t, t);
    END LOOP;
END $$;
SELECT count(*) AS differences FROM (
    (SELECT table_name, "row" FROM globex_export EXCEPT ALL SELECT * FROM tenancy.export_tenant('globex'))
    UNION ALL
    (SELECT * FROM tenancy.export_tenant('globex') EXCEPT ALL SELECT table_name, "row" FROM globex_export)) d;
-- A connection holding a temporary table from an earlier transaction cannot set a context.
DROP TABLE globex_export;

-- Neither is for the application.
SET ROLE regress_app;
SELECT * FROM tenancy.export_tenant('acme');
SELECT * FROM tenancy.purge_tenant('acme', 'purge acme');
RESET ROLE;

-- Quotas: globex may keep 3 orders (it has 2).
SELECT tenancy.set_quota('globex', 'orders', 3);
SET ROLE regress_job;
BEGIN;
SELECT tenancy.set_tenant('globex') ->> 'tenant' AS tenant;
INSERT INTO orders (id, person_id, amount) SELECT 900, min(id), 1 FROM people;
COMMIT;
BEGIN;
SELECT tenancy.set_tenant('globex') ->> 'tenant' AS tenant;
INSERT INTO orders (id, person_id, amount) SELECT 901, min(id), 1 FROM people;
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
BEGIN;
SELECT tenancy.set_tenant('globex') ->> 'tenant' AS tenant;
SELECT count(*) AS globex_orders FROM orders;
-- Deleting frees room again.
DELETE FROM orders WHERE id = 900;
INSERT INTO orders (id, person_id, amount) SELECT 901, min(id), 1 FROM people;
SELECT count(*) AS globex_orders FROM orders;
COMMIT;
RESET ROLE;
SELECT severity, rule, object FROM tenancy.check() WHERE rule = 'quota_not_enforced';
DROP TABLE orders;
SELECT count(*) AS quotas_left FROM tenancy.quotas;
