-- PostgREST: its db-pre-request hook is tenancy.postgrest_pre_request(). PostgREST runs each
-- request in a transaction, as the authenticator's target role, after setting request.headers
-- (lower-cased header names, as JSON) with set_config(..., true). This file does the same.
SELECT tenancy.sign_token(jsonb_build_object('tenant_id', 'globex', 'sub', 'gus',
         'exp', extract(epoch FROM now() + interval '1 hour')::bigint)) AS tok \gset
SET ROLE regress_app;

-- A request with a bearer token sees its tenant's rows.
BEGIN;
SELECT set_config('request.headers', json_build_object('authorization', 'Bearer ' || :'tok')::text, true) IS NOT NULL AS headers_set;
SELECT tenancy.postgrest_pre_request();
SELECT tenancy.current_tenant(), array_agg(name ORDER BY name) FROM people;
COMMIT;

-- An anonymous request (no Authorization header) sees nothing.
BEGIN;
SELECT set_config('request.headers', '{"accept": "application/json"}', true) IS NOT NULL AS headers_set;
SELECT tenancy.postgrest_pre_request();
SELECT tenancy.current_tenant(), count(*) FROM people;
COMMIT;

-- A forged or non-bearer Authorization header fails the request.
BEGIN;
SELECT set_config('request.headers', json_build_object('authorization', 'Bearer ' || :'tok' || 'x')::text, true) IS NOT NULL AS headers_set;
SELECT tenancy.postgrest_pre_request();
ROLLBACK;
BEGIN;
SELECT set_config('request.headers', '{"authorization": "Basic dXNlcjpwYXNz"}', true) IS NOT NULL AS headers_set;
SELECT tenancy.postgrest_pre_request();
ROLLBACK;
RESET ROLE;
