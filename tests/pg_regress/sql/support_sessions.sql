-- Support sessions end everywhere, and no statement hides a support write (issue 13, class 5);
-- event names cannot look like one another (class 10). Carriers are kept in psql variables,
-- never shown.
DROP ROLE IF EXISTS regress_sup_a;
DROP ROLE IF EXISTS regress_sup_b;
CREATE ROLE regress_sup_a NOLOGIN;
CREATE ROLE regress_sup_b NOLOGIN;
SELECT tenancy.grant_support('regress_sup_a'), tenancy.grant_support('regress_sup_b');
CREATE TABLE cases (id int PRIMARY KEY, tenant_id text, note text);
INSERT INTO cases VALUES (1, 'acme', 'open'), (2, 'acme', 'open'), (3, 'globex', 'open');
SELECT tenancy.protect('cases');
GRANT SELECT, INSERT, UPDATE, DELETE ON cases TO regress_sup_a, regress_sup_b, regress_app;
-- Prepared transactions are enabled in this cluster (so that the refusal in 5. can fail).
BEGIN;
SELECT count(*) AS all_cases FROM cases;
PREPARE TRANSACTION 'regress_plain';
COMMIT PREPARED 'regress_plain';

-- 1. A support carrier copied before end_support() is dead after it, and the trail cannot be
--    made to say the session ended twice.
SET ROLE regress_sup_a;
SELECT tenancy.begin_support('acme', 'INC-13: replay', 5) IS NOT NULL AS begun;
SELECT current_setting('tenancy.context') AS saved \gset
SELECT count(*) AS acme_cases FROM cases;
SELECT tenancy.end_support();
SELECT set_config('tenancy.context', :'saved', false) <> '' AS replayed;
SELECT count(*) FROM cases;
SELECT tenancy.end_support();
SELECT set_config('tenancy.context', '', false) = '' AS cleared;
RESET ROLE;

-- 2. A support carrier works only for the role that opened it.
SET ROLE regress_sup_a;
SELECT tenancy.begin_support('acme', 'INC-13: roles', 5) IS NOT NULL AS begun;
SELECT current_setting('tenancy.context') AS saved \gset
SET ROLE regress_app;
SELECT count(*) FROM cases;
SET ROLE regress_sup_b;
SELECT count(*) FROM cases;
SET ROLE regress_sup_a;
SELECT count(*) AS acme_cases FROM cases;

-- 3. A statement that clears the context after the isolation policy has read it still leaves
--    its support_write row.
WITH c AS (SELECT set_config('tenancy.context', '', false) AS v)
DELETE FROM cases d
 WHERE d.id = 1 AND EXISTS (SELECT 1 FROM c WHERE c.v <> d.note);
SELECT tenancy.current_tenant() IS NULL AS cleared_by_the_statement;
SELECT set_config('tenancy.context', :'saved', false) <> '' AS back;
SELECT tenancy.end_support();
RESET ROLE;
SELECT id, tenant_id FROM cases ORDER BY id;
SELECT event, detail ->> 'table' AS tbl, detail ->> 'operation' AS op, support ->> 'reason' AS reason
  FROM tenancy.audit_log
 WHERE tenant_id = 'acme' AND support ->> 'reason' LIKE 'INC-13:%' ORDER BY seq;
SELECT tenant, opened_by_name, reason, ended_at IS NOT NULL AS ended
  FROM tenancy.support_sessions WHERE reason LIKE 'INC-13:%' ORDER BY began_at, reason;

-- 4. Event names: lowercase ASCII, and nothing that reads as the extension's own events.
SELECT tenancy.sign_token(jsonb_build_object('tenant_id', 'acme', 'sub', 'ada',
         'exp', extract(epoch FROM now() + interval '1 hour')::bigint)) AS tok \gset
SET ROLE regress_app;
BEGIN;
SELECT tenancy.set_context(:'tok') IS NOT NULL AS set;
SAVEPOINT s;
SELECT tenancy.audit('support_ended ');
ROLLBACK TO s;
SELECT tenancy.audit(E'support_ended\u200b');
ROLLBACK TO s;
SELECT tenancy.audit('Support_Ended');
ROLLBACK TO s;
SELECT tenancy.audit('support.ended');
ROLLBACK TO s;
SELECT tenancy.audit('case.closed') > 0 AS recorded;
COMMIT;
RESET ROLE;

-- 5. Support reads are on the record, one row per statement and table (issue 21); a read whose
--    transaction rolls back is written again by the next statement, marked rolled_back; a
--    savepoint rolled back likewise; clear_context() ends the session on the record.
SET ROLE regress_sup_a;
SELECT tenancy.begin_support('acme', 'INC-21: reads', 5) IS NOT NULL AS begun;
SELECT current_setting('tenancy.context') AS saved21 \gset
SELECT count(*) AS acme_cases FROM cases;
-- With parallel query encouraged (not asserted: a plan detail): the read is recorded once.
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
SELECT count(*) AS acme_cases FROM cases;
RESET parallel_setup_cost;
RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size;
RESET max_parallel_workers_per_gather;
BEGIN;
SELECT count(*) AS acme_cases FROM cases;
ROLLBACK;
BEGIN;
SAVEPOINT s;
SELECT note FROM cases ORDER BY id;
ROLLBACK TO s;
COMMIT;
-- A transaction that read under support is not prepared: a prepared transaction can be ended
-- later, by anyone, after this backend has forgotten its reads (55000; the read is kept as
-- rolled back).
BEGIN;
SELECT count(*) AS acme_cases FROM cases;
PREPARE TRANSACTION 'regress_support_read';
SELECT count(*) AS prepared FROM pg_prepared_xacts WHERE gid = 'regress_support_read';
SELECT 1 AS next_statement;
SELECT tenancy.clear_context();
SELECT set_config('tenancy.context', :'saved21', false) <> '' AS replayed;
SELECT count(*) FROM cases;
SELECT set_config('tenancy.context', '', false) = '' AS cleared;
RESET ROLE;
SELECT event, detail ->> 'table' AS tbl, detail ->> 'rows' AS rows,
       detail ->> 'rolled_back' AS rolled_back, detail ->> 'how' AS how
  FROM tenancy.audit_log
 WHERE tenant_id = 'acme' AND support ->> 'reason' = 'INC-21: reads' ORDER BY seq;
SELECT ended_at IS NOT NULL AS ended, end_recorded
  FROM tenancy.support_sessions WHERE reason = 'INC-21: reads';

-- 6. (review, session 5) Rows handed back by a write are reads: an UPDATE ... RETURNING rolled
--    back, and an upsert's RETURNING, each leave a support_read. A statement or cursor that
--    began without a support context cannot go on under one (55000): the hooks decide at a
--    statement's start what to watch. A temporary type named text does not break
--    clear_context().
SET ROLE regress_sup_a;
SELECT tenancy.begin_support('acme', 'INC-31: writes', 5) IS NOT NULL AS begun;
SELECT current_setting('tenancy.context') AS saved31 \gset
BEGIN;
UPDATE cases SET note = note WHERE id <= 6 RETURNING id, note;
ROLLBACK;
SELECT 1 AS next_statement;
INSERT INTO cases VALUES (1, 'acme', 'x') ON CONFLICT (id) DO UPDATE SET note = cases.note
RETURNING id, note;
BEGIN;
SET LOCAL tenancy.context = '';
DECLARE early CURSOR FOR SELECT id, note FROM cases ORDER BY id;
SET LOCAL tenancy.context = :'saved31';
FETCH ALL FROM early;
ROLLBACK;
SELECT set_config('tenancy.context', '', false) = '' AS cleared;
SELECT id, note FROM cases
 WHERE (SELECT set_config('tenancy.context', :'saved31', false)) IS NOT NULL ORDER BY id;
SELECT set_config('tenancy.context', :'saved31', false) <> '' AS replayed;
CREATE TYPE pg_temp.text AS (x int);
SELECT tenancy.clear_context();
DROP TYPE pg_temp.text;
RESET ROLE;
SELECT event, detail ->> 'table' AS tbl, detail ->> 'rows' AS rows,
       detail ->> 'rolled_back' AS rolled_back, detail ->> 'operation' AS op, detail ->> 'how' AS how
  FROM tenancy.audit_log
 WHERE tenant_id = 'acme' AND support ->> 'reason' = 'INC-31: writes' ORDER BY seq;
DROP TABLE cases;
