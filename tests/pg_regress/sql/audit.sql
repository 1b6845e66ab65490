-- The audit trail and support access, as the application, a support engineer and an auditor
-- see them. Times, transaction ids and hashes differ on every run, so they are compared, not
-- shown.
DROP ROLE IF EXISTS regress_support;
CREATE ROLE regress_support NOLOGIN;
SELECT tenancy.grant_support('regress_support');
CREATE TABLE tickets (id int PRIMARY KEY, tenant_id text, subject text);
INSERT INTO tickets VALUES (1, 'acme', 'login fails'), (2, 'globex', 'slow export');
SELECT tenancy.protect('tickets');
GRANT SELECT, INSERT, UPDATE ON tickets TO regress_support, regress_app;
SELECT tenancy.sign_token(jsonb_build_object('tenant_id', 'acme', 'sub', 'ada', 'roles', '["hr"]'::jsonb,
         'exp', extract(epoch FROM now() + interval '1 hour')::bigint)) AS tok_acme \gset
SELECT tenancy.sign_token(jsonb_build_object('tenant_id', 'globex', 'sub', 'gus',
         'exp', extract(epoch FROM now() + interval '1 hour')::bigint)) AS tok_globex \gset

-- 1. The application records events; who, for whom and when come from the context.
SET ROLE regress_app;
SELECT tenancy.audit('no.context');
BEGIN;
SELECT tenancy.set_context(:'tok_acme') IS NOT NULL AS set;
SELECT tenancy.audit('invoice.approved', '{"invoice": 4711, "tenant": "globex"}') > 0 AS recorded;
SELECT seq, tenant_id, actor, roles, support, event, detail,
       at >= now() AND at <= clock_timestamp() AS at_now, txid = pg_current_xact_id() AS this_txid
  FROM tenancy.audit_log ORDER BY seq;
SELECT * FROM tenancy.verify_audit('acme');
COMMIT;
BEGIN;
SELECT tenancy.set_context(:'tok_acme') IS NOT NULL AS set;
SELECT * FROM tenancy.verify_audit('globex');
ROLLBACK;

-- 2. Another tenant sees its own trail only; no context, nothing.
BEGIN;
SELECT tenancy.set_context(:'tok_globex') IS NOT NULL AS set;
SELECT seq, tenant_id, event FROM tenancy.audit_log ORDER BY seq;
COMMIT;
SELECT count(*) AS without_context FROM tenancy.audit_log;

-- 3. Nobody rewrites it: not the application ...
UPDATE tenancy.audit_log SET event = 'x';
DELETE FROM tenancy.audit_log;
TRUNCATE tenancy.audit_log;
INSERT INTO tenancy.audit_log (tenant_id, seq, at, txid, roles, event, detail, prev_hash, hash)
VALUES ('acme', 9, now(), pg_current_xact_id(), '{}', 'forged', '{}', '\x00', '\x00');
RESET ROLE;
-- ... nor the owner.
UPDATE tenancy.audit_log SET event = 'x' WHERE tenant_id = 'acme';
DELETE FROM tenancy.audit_log WHERE tenant_id = 'acme';
TRUNCATE tenancy.audit_log;

-- 4. A support session: only for support roles, with a reason, for a while.
SET ROLE regress_app;
SELECT tenancy.begin_support('acme', 'INC-1', 5);
RESET ROLE;
SET ROLE regress_support;
SELECT tenancy.begin_support('acme', '  ', 5);
SELECT tenancy.begin_support('acme', 'INC-1', 600);
SELECT tenancy.begin_support('acme', 'INC-1: login fails', 5) - 'expires_at' - 'support'
       AS support_context;
SELECT tenancy.context() -> 'support' ->> 'reason' AS reason,
       (tenancy.context() -> 'support' ->> 'until')::bigint
         - extract(epoch FROM statement_timestamp())::bigint BETWEEN 299 AND 300 AS five_minutes;
SELECT id, subject FROM tickets ORDER BY id;
UPDATE tickets SET subject = 'login fails (fixed)' WHERE id = 1;
SELECT id, subject FROM tickets ORDER BY id;
SELECT tenancy.end_support();
SELECT tenancy.current_tenant() AS after_end;
SELECT tenancy.end_support();
RESET ROLE;

-- 5. The tenant (and an admin) read what support did.
SET ROLE regress_app;
BEGIN;
SELECT tenancy.set_context(:'tok_acme') IS NOT NULL AS set;
SELECT seq, actor, event, detail, support ->> 'by' AS by, support ->> 'reason' AS reason
  FROM tenancy.audit_log WHERE seq > 2 ORDER BY seq;
COMMIT;
RESET ROLE;

-- 6. A superuser who changes one byte behind the triggers' back is found out, by row.
SET session_replication_role = replica;
UPDATE tenancy.audit_log SET detail = '{"invoice": 4712, "tenant": "globex"}'
 WHERE tenant_id = 'acme' AND event = 'invoice.approved';
RESET session_replication_role;
SELECT ok, checked, first_bad_id = (SELECT id FROM tenancy.audit_log
                                     WHERE tenant_id = 'acme' AND event = 'invoice.approved') AS that_row
  FROM tenancy.verify_audit('acme');
SET session_replication_role = replica;
UPDATE tenancy.audit_log SET detail = '{"invoice": 4711, "tenant": "globex"}'
 WHERE tenant_id = 'acme' AND event = 'invoice.approved';
RESET session_replication_role;
SELECT * FROM tenancy.verify_audit('acme');

-- 7. The system chain, for admins: what the extension itself did in this file.
SELECT seq, event, detail ->> 'table' AS tbl FROM tenancy.audit_log
 WHERE tenant_id = '(system)' AND detail ->> 'table' = 'public.tickets' ORDER BY seq;
DROP TABLE tickets;
