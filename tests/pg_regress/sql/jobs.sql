-- Jobs that carry their tenant (docs/jobs.md). The application enqueues a job under acme's
-- token; a worker, which names no tenant, claims it, and the claim makes acme the context of
-- the worker's transaction: its statements see only acme's rows and stamp acme on what they
-- insert.
CREATE ROLE regress_worker NOLOGIN;
SELECT tenancy.grant_worker('regress_worker');
CREATE TABLE invoices (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id text NOT NULL,
    amount    numeric NOT NULL
);
CREATE TABLE invoice_totals (
    tenant_id text NOT NULL,
    job_id    bigint NOT NULL,
    total     numeric NOT NULL
);
INSERT INTO invoices (tenant_id, amount) VALUES ('acme', 100), ('acme', 20), ('globex', 5000);
SELECT tenancy.protect('invoices'), tenancy.protect('invoice_totals');
GRANT SELECT ON invoices TO regress_worker;
GRANT SELECT, INSERT ON invoice_totals TO regress_worker;
SELECT tenancy.sign_token(jsonb_build_object('tenant_id', 'acme', 'sub', 'ada', 'roles', jsonb_build_array('billing'),
         'exp', extract(epoch FROM now() + interval '1 hour')::bigint)) AS tok_acme \gset
SELECT tenancy.sign_token(jsonb_build_object('tenant_id', 'globex', 'sub', 'gus',
         'exp', extract(epoch FROM now() + interval '1 hour')::bigint)) AS tok_globex \gset

-- The application, under acme's token, enqueues. The job is stamped with the token's tenant,
-- subject and roles; a payload naming another tenant is only a payload.
SET ROLE regress_app;
BEGIN;
SELECT tenancy.set_context(:'tok_acme') ->> 'sub' AS actor;
SELECT tenancy.enqueue('invoices.total', '{"tenant_id": "globex", "note": "month end"}') AS job_id \gset
COMMIT;
-- Without a context there is no tenant to stamp.
SELECT tenancy.enqueue('invoices.total', '{}');
-- The application reads its own tenant's jobs, and without a context none.
BEGIN;
SELECT tenancy.set_context(:'tok_acme') IS NOT NULL AS set;
SELECT queue, tenant, actor, roles, status, attempts, payload FROM tenancy.jobs;
COMMIT;
SELECT count(*) AS jobs_without_context FROM tenancy.jobs;
-- globex sees none of acme's jobs.
BEGIN;
SELECT tenancy.set_context(:'tok_globex') IS NOT NULL AS set;
SELECT count(*) AS acme_jobs_seen_by_globex FROM tenancy.jobs;
COMMIT;
-- Nobody writes the queue directly, and the app tier does not claim.
UPDATE tenancy.jobs SET tenant = 'globex';
SELECT * FROM tenancy.claim_job('invoices.total');
RESET ROLE;

-- The worker: before its claim it is no tenant.
SET ROLE regress_worker;
SELECT tenancy.current_tenant() AS before_claim, count(*) AS invoices_visible FROM invoices;
-- A claim outside a transaction block would end with its statement: refused.
SELECT * FROM tenancy.claim_job('invoices.total');
BEGIN;
SELECT job_id = :job_id AS the_job, tenant, actor, payload, attempt, max_attempts
  FROM tenancy.claim_job('invoices.total');
SELECT tenancy.current_tenant(), tenancy.current_actor(), tenancy.has_role('billing') AS billing,
       tenancy.context() ->> 'source' AS source;
-- Everything the transaction runs is acme's, without naming acme.
SELECT array_agg(amount ORDER BY amount) AS amounts, sum(amount) AS total FROM invoices;
INSERT INTO invoice_totals (job_id, total)
    SELECT tenancy.current_job(), sum(amount) FROM invoices;
-- Naming another tenant is refused.
SAVEPOINT other_tenant;
INSERT INTO invoice_totals (tenant_id, job_id, total) VALUES ('globex', 0, 0);
ROLLBACK TO SAVEPOINT other_tenant;
-- The worker sees the job it claimed and no other.
SELECT count(*) AS jobs_visible FROM tenancy.jobs;
-- The context is the job's and this transaction's only: kept to try it later.
SELECT current_setting('tenancy.context') AS job_carrier \gset
SELECT tenancy.complete_job() = :job_id AS completed;
SELECT tenancy.current_tenant() AS after_complete;
COMMIT;

-- Done, and the totals row carries acme.
RESET ROLE;
SELECT tenant_id, job_id = :job_id AS the_job, total FROM invoice_totals;
SELECT status, attempts, finished_at IS NOT NULL AS finished FROM tenancy.jobs WHERE id = :job_id;

-- The job's carrier, copied into a later transaction, is refused.
SET ROLE regress_worker;
BEGIN;
SELECT set_config('tenancy.context', :'job_carrier', true) IS NOT NULL AS replayed;
SELECT count(*) FROM invoices;
ROLLBACK;

-- A failing job: its work is rolled back to a savepoint taken after the claim, and the
-- failure is recorded; after max_attempts it is dead-lettered in the tenant's audit chain.
RESET ROLE;
SET ROLE regress_app;
BEGIN;
SELECT tenancy.set_context(:'tok_acme') IS NOT NULL AS set;
SELECT tenancy.enqueue('invoices.total', '{"poison": true}', max_attempts => 1) AS poison_id \gset
COMMIT;
SET ROLE regress_worker;
BEGIN;
SELECT job_id = :poison_id AS the_job, attempt FROM tenancy.claim_job('invoices.total');
SAVEPOINT job;
INSERT INTO invoice_totals (job_id, total) VALUES (tenancy.current_job(), 1 / 0);
ROLLBACK TO SAVEPOINT job;
SELECT tenancy.fail_job('division by zero') AS status;
COMMIT;
-- A dead job is not handed out again.
BEGIN;
SELECT count(*) AS claimed FROM tenancy.claim_job('invoices.total');
ROLLBACK;
RESET ROLE;
SELECT status, attempts, last_error FROM tenancy.jobs WHERE id = :poison_id;
SELECT tenant_id, actor, event, detail ->> 'error' AS error, detail ->> 'worker' AS worker
  FROM tenancy.audit_log WHERE event = 'job_dead_lettered';
SELECT ok FROM tenancy.verify_audit('acme');

-- A worker with a context of its own cannot claim into it; and jobs of a deactivated tenant
-- wait.
SET ROLE regress_app;
BEGIN;
SELECT tenancy.set_context(:'tok_globex') IS NOT NULL AS set;
SELECT tenancy.enqueue('invoices.total', '{}') AS globex_job \gset
COMMIT;
RESET ROLE;
SELECT tenancy.deactivate_tenant('globex');
SET ROLE regress_worker;
BEGIN;
SELECT count(*) AS claimed FROM tenancy.claim_job('invoices.total');
ROLLBACK;
RESET ROLE;
SELECT tenancy.reactivate_tenant('globex');
SET ROLE regress_worker;
BEGIN;
SELECT tenancy.set_context(:'tok_acme') IS NOT NULL AS set;
SELECT * FROM tenancy.claim_job('invoices.total');
ROLLBACK;
BEGIN;
SELECT job_id = :globex_job AS the_job, tenant FROM tenancy.claim_job('invoices.total');
SELECT array_agg(amount) AS amounts FROM invoices;
SELECT tenancy.complete_job() = :globex_job AS completed;
COMMIT;
RESET ROLE;

-- A claim holds only where nothing but its own transaction's rollback undoes it. Claimed in a
-- savepoint, a ROLLBACK TO would release the job's row lock (the lease: another worker claims
-- it meanwhile) and keep its context: refused. A prepared transaction would keep the job's
-- lock and effects past the worker's session and its lease: refused, and the job waits.
SET ROLE regress_app;
BEGIN;
SELECT tenancy.set_context(:'tok_acme') IS NOT NULL AS set;
SELECT tenancy.enqueue('invoices.review', '{}') AS review_job \gset
COMMIT;
SET ROLE regress_worker;
BEGIN;
SAVEPOINT s;
SELECT * FROM tenancy.claim_job('invoices.review');
ROLLBACK;
BEGIN;
SELECT job_id = :review_job AS the_job FROM tenancy.claim_job('invoices.review');
SAVEPOINT after_claim;
SELECT tenancy.complete_job() = :review_job AS completed;
ROLLBACK TO SAVEPOINT after_claim;
-- The completion was rolled back, and the context it ended stays ended: the carrier came back
-- with the savepoint, the claim's hold on it did not.
SELECT tenancy.current_tenant();
ROLLBACK;
BEGIN;
SELECT job_id = :review_job AS the_job FROM tenancy.claim_job('invoices.review');
SELECT tenancy.complete_job() = :review_job AS completed;
PREPARE TRANSACTION 'regress_job';
RESET ROLE;
SELECT status, attempts FROM tenancy.jobs WHERE id = :review_job;

-- The jobs are acme's and globex's data: the lifecycle scenario's exports would list them.
DELETE FROM tenancy.jobs;
DROP TABLE invoices, invoice_totals;
