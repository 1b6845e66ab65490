-- How long a context lives, as the application sees it. Tokens are minted here by the
-- superuser (your identity provider, in production) and kept in psql variables.
SELECT tenancy.sign_token(jsonb_build_object('tenant_id', 'acme', 'sub', 'ada',
         'exp', extract(epoch FROM now() + interval '1 hour')::bigint)) AS tok_acme \gset
SELECT tenancy.sign_token(jsonb_build_object('tenant_id', 'globex', 'sub', 'gus',
         'exp', extract(epoch FROM now() + interval '1 hour')::bigint)) AS tok_globex \gset
SET ROLE regress_app;

-- Transaction-local by default: gone after COMMIT ...
BEGIN;
SELECT tenancy.set_context(:'tok_acme') ->> 'sub' AS actor;
SELECT tenancy.current_tenant(), array_agg(name ORDER BY name) FROM people;
COMMIT;
SELECT tenancy.current_tenant() AS after_commit, count(*) AS visible FROM people;

-- ... and after ROLLBACK.
BEGIN;
SELECT tenancy.set_context(:'tok_globex') ->> 'sub' AS actor;
SELECT array_agg(name ORDER BY name) FROM people;
ROLLBACK;
SELECT tenancy.current_tenant() AS after_rollback, count(*) AS visible FROM people;

-- Outside an explicit transaction, a local context lasts for its own statement only.
SELECT tenancy.set_context(:'tok_acme') IS NOT NULL AS set;
SELECT count(*) AS visible_next_statement FROM people;

-- ROLLBACK TO SAVEPOINT restores the context the savepoint saw.
BEGIN;
SELECT tenancy.set_context(:'tok_acme') IS NOT NULL AS set;
SAVEPOINT s1;
SELECT tenancy.set_context(:'tok_globex') IS NOT NULL AS set;
SELECT tenancy.current_tenant() AS inside_savepoint;
ROLLBACK TO SAVEPOINT s1;
SELECT tenancy.current_tenant() AS after_rollback_to, array_agg(name ORDER BY name) FROM people;
COMMIT;

-- Session scope (is_local => false) survives transactions ...
SELECT tenancy.set_context(:'tok_globex', is_local => false) IS NOT NULL AS set;
BEGIN;
SELECT tenancy.current_tenant() AS in_next_transaction;
COMMIT;
SELECT tenancy.current_tenant() AS still_set, count(*) AS visible FROM people;
-- ... until RESET ALL, which leaves the carrier empty: no context.
RESET ALL;
SELECT tenancy.current_tenant() AS after_reset_all, count(*) AS visible FROM people;
SELECT tenancy.set_context(:'tok_globex', is_local => false) IS NOT NULL AS set;
SELECT tenancy.clear_context();
SELECT tenancy.current_tenant() AS after_clear_context;

-- DISCARD ALL (what a pooler runs between clients) clears it too. It also resets the role.
SELECT tenancy.set_context(:'tok_globex', is_local => false) IS NOT NULL AS set;
DISCARD ALL;
SET ROLE regress_app;
SELECT tenancy.current_tenant() AS after_discard_all, count(*) AS visible FROM people;

-- A prepared statement planned for one tenant answers for the next one, with custom and
-- with generic plans.
PREPARE names AS SELECT array_agg(name ORDER BY name) FROM people;
BEGIN;
SELECT tenancy.set_context(:'tok_acme') IS NOT NULL AS set;
EXECUTE names;
COMMIT;
BEGIN;
SELECT tenancy.set_context(:'tok_globex') IS NOT NULL AS set;
EXECUTE names;
COMMIT;
SET plan_cache_mode = force_generic_plan;
PREPARE names_generic AS SELECT array_agg(name ORDER BY name) FROM people WHERE id > $1;
BEGIN;
SELECT tenancy.set_context(:'tok_acme') IS NOT NULL AS set;
EXECUTE names_generic(0);
COMMIT;
BEGIN;
SELECT tenancy.set_context(:'tok_globex') IS NOT NULL AS set;
EXECUTE names_generic(0);
COMMIT;
EXECUTE names_generic(0);
RESET plan_cache_mode;
DEALLOCATE ALL;

-- A trusted job sets the context without a token; the app role may not.
SELECT tenancy.set_tenant('acme');
RESET ROLE;
SET ROLE regress_job;
BEGIN;
SELECT tenancy.set_tenant('acme', actor => 'job:payroll', roles => '{etl}') ->> 'actor' AS actor;
SELECT tenancy.current_actor(), tenancy.has_role('etl') AS etl, array_agg(name ORDER BY name) FROM people;
COMMIT;
RESET ROLE;

-- The same lifetimes when the carrier is stored by a SET statement through SPI, the path
-- taken under Citus (which forwards SET LOCAL to its workers) or with
-- tenancy.carrier_as_statement = on; the app role cannot change that setting.
SET tenancy.carrier_as_statement = on;
SET ROLE regress_app;
SET tenancy.carrier_as_statement = off;
BEGIN;
SELECT tenancy.set_context(:'tok_acme') ->> 'sub' AS actor;
SELECT tenancy.current_tenant(), array_agg(name ORDER BY name) FROM people;
SAVEPOINT s1;
SELECT tenancy.set_context(:'tok_globex') IS NOT NULL AS set;
ROLLBACK TO SAVEPOINT s1;
SELECT tenancy.current_tenant() AS after_rollback_to;
COMMIT;
SELECT tenancy.current_tenant() AS after_commit, count(*) AS visible FROM people;
SELECT tenancy.set_context(:'tok_globex', is_local => false) IS NOT NULL AS set;
BEGIN;
SELECT tenancy.current_tenant() AS in_next_transaction;
COMMIT;
SELECT tenancy.clear_context();
SELECT tenancy.current_tenant() AS after_clear_context, count(*) AS visible FROM people;
RESET ROLE;
RESET tenancy.carrier_as_statement;

-- A parallel plan under a verified context (review of session 5: a parallel worker, which has
-- not verified the carrier yet, switched on row counting on its own, and a Parallel Hash then
-- failed with "could not find key ... in shm TOC").
SET ROLE regress_app;
BEGIN;
SELECT tenancy.set_context(:'tok_acme') IS NOT NULL AS set;
SELECT count(*) AS warm FROM people;
-- Every plan run by a parallel worker (debug_parallel_query; force_parallel_mode before 16).
SELECT set_config(CASE WHEN current_setting('server_version_num')::int >= 160000
                       THEN 'debug_parallel_query' ELSE 'force_parallel_mode' END, 'on', true) AS forced;
SET LOCAL enable_nestloop = off;
SET LOCAL enable_mergejoin = off;
SET LOCAL parallel_leader_participation = off;
SELECT count(*) AS joined FROM people a JOIN people b ON a.name = b.name;
COMMIT;
RESET ROLE;
