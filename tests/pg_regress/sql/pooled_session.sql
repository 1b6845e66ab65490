-- What one client of a pooled connection can leave for the next (issue 13, reviewer findings):
-- temporary relations that shadow the next tenant's tables, and support sessions that were
-- never committed. Tokens and carriers stay in psql variables, never shown.
SELECT tenancy.sign_token(jsonb_build_object('tenant_id', 'acme', 'sub', 'mallory')) AS tok_a \gset
SELECT tenancy.sign_token(jsonb_build_object('tenant_id', 'globex', 'sub', 'gus')) AS tok_b \gset
GRANT TEMPORARY ON DATABASE pg_tenancy_regress TO regress_app;
-- globex's carrier as a pooler or PostgREST would forward it, made on a clean connection.
BEGIN;
SELECT tenancy.set_context(:'tok_b') IS NOT NULL AS globex_set;
SELECT current_setting('tenancy.context') AS carrier_b \gset
ROLLBACK;

-- 1. Tenant acme (an injection) leaves a temporary view named like the table the app queries
--    unqualified, and a table to collect what it sees. The next client on this connection is
--    tenant globex: its context is refused until the connection is clean.
SET ROLE regress_app;
BEGIN;
SELECT tenancy.set_context(:'tok_a') IS NOT NULL AS acme_set;
CREATE TEMP TABLE loot (carrier text, name text);
CREATE FUNCTION pg_temp.grab(r public.people) RETURNS boolean LANGUAGE sql VOLATILE
    AS $$ INSERT INTO pg_temp.loot VALUES (current_setting('tenancy.context'), r.name) RETURNING true $$;
CREATE TEMP VIEW people AS SELECT p.* FROM public.people p WHERE pg_temp.grab(p);
COMMIT;
BEGIN;
SELECT tenancy.set_context(:'tok_b') IS NOT NULL AS globex_set;
ROLLBACK;
-- A carrier forwarded by SET (a pooler, PostgREST, Citus) is refused the same way, when it is
-- set: before any statement could name the planted view.
BEGIN;
SELECT set_config('tenancy.context', :'carrier_b', true) <> '' AS forwarded;
ROLLBACK;
BEGIN;
SET LOCAL tenancy.context = :'carrier_b';
ROLLBACK;
-- So a planted view that never reads a protected table (never asks for the context) gets
-- nothing either. Nothing reached the loot table; DISCARD TEMP (a pooler's reset) makes the
-- connection usable again.
DROP VIEW pg_temp.people;
CREATE TEMP VIEW people AS SELECT 1::bigint AS id, 'x'::text AS tenant_id, 'n'::text AS name
    WHERE pg_temp.grab(NULL::public.people);
BEGIN;
SELECT set_config('tenancy.context', :'carrier_b', true) <> '' AS forwarded;
SELECT count(*) FROM people;
COMMIT;
SELECT count(*) AS looted FROM pg_temp.loot;
DISCARD TEMP;
BEGIN;
SELECT tenancy.set_context(:'tok_b') IS NOT NULL AS globex_set;
SELECT name FROM people ORDER BY name;
COMMIT;
-- A temporary type shadows type names the same way; it is refused too.
CREATE DOMAIN pg_temp.tenant_text AS text;
BEGIN;
SELECT tenancy.set_context(:'tok_b') IS NOT NULL AS globex_set;
ROLLBACK;
DISCARD TEMP;
-- Work tables of the transaction itself are fine.
BEGIN;
SELECT tenancy.set_context(:'tok_a') IS NOT NULL AS acme_set;
CREATE TEMP TABLE work ON COMMIT DROP AS SELECT name FROM people;
SELECT count(*) AS acme_rows FROM pg_temp.work;
COMMIT;
BEGIN;
SELECT tenancy.set_context(:'tok_b') IS NOT NULL AS globex_set;
COMMIT;
-- A session context (is_local => false) may keep temporary tables it makes: they hold its own
-- tenant's rows. The rule applies when the next context is set on the connection.
SELECT tenancy.set_context(:'tok_a', false) IS NOT NULL AS session_set;
CREATE TEMP TABLE keep AS SELECT name FROM people;
SELECT count(*) AS acme_rows FROM people;
SELECT tenancy.set_context(:'tok_b', false) IS NOT NULL AS session_set;
DISCARD TEMP;
SELECT tenancy.set_context(:'tok_b', false) IS NOT NULL AS session_set;
SELECT tenancy.clear_context();
RESET ROLE;

-- 2. A support session whose opening was rolled back (so no support_begun row exists) is no
--    session: its carrier is refused, after ROLLBACK and after ROLLBACK TO SAVEPOINT.
DROP ROLE IF EXISTS regress_sup_p;
CREATE ROLE regress_sup_p NOLOGIN;
SELECT tenancy.grant_support('regress_sup_p');
GRANT SELECT ON people TO regress_sup_p;
SET ROLE regress_sup_p;
BEGIN;
SELECT tenancy.begin_support('globex', 'INC-99: unrecorded', 5) IS NOT NULL AS begun;
SELECT current_setting('tenancy.context') AS sup \gset
ROLLBACK;
SELECT set_config('tenancy.context', :'sup', false) <> '' AS replayed;
SELECT count(*) FROM people;
SELECT set_config('tenancy.context', '', false) = '' AS cleared;
BEGIN;
SAVEPOINT s;
SELECT tenancy.begin_support('globex', 'INC-99: savepoint', 5) IS NOT NULL AS begun;
SELECT current_setting('tenancy.context') AS sup \gset
ROLLBACK TO s;
SELECT set_config('tenancy.context', :'sup', true) <> '' AS replayed;
SELECT count(*) FROM people;
ROLLBACK;
RESET ROLE;
SELECT count(*) AS unrecorded_sessions FROM tenancy.support_sessions WHERE reason LIKE 'INC-99:%';
SELECT count(*) AS unrecorded_rows FROM tenancy.audit_log WHERE support ->> 'reason' LIKE 'INC-99:%';
REVOKE TEMPORARY ON DATABASE pg_tenancy_regress FROM regress_app;
DROP OWNED BY regress_sup_p;
DROP ROLE regress_sup_p;
