-- The application role, with arbitrary SQL (an injection), tries to reach another tenant.
SELECT tenancy.sign_token(jsonb_build_object('tenant_id', 'acme', 'sub', 'ada',
         'exp', extract(epoch FROM now() + interval '1 hour')::bigint)) AS tok_acme \gset
SET ROLE regress_app;
BEGIN;
SELECT tenancy.set_context(:'tok_acme') IS NOT NULL AS signed_in;

-- 1. A query without any WHERE still sees only acme.
SELECT tenant_id, name FROM people ORDER BY id;

-- 2. Asking for globex's rows by name finds nothing, and touching them changes nothing.
SELECT count(*) FROM people WHERE tenant_id = 'globex';
UPDATE people SET name = 'pwned' WHERE tenant_id = 'globex';
DELETE FROM people WHERE tenant_id = 'globex';

COMMIT;

-- 3. Writing a row into globex, or moving an acme row there, is refused.
BEGIN;
SELECT tenancy.set_context(:'tok_acme') IS NOT NULL AS signed_in;
INSERT INTO people (tenant_id, name) VALUES ('globex', 'Mallory');
ROLLBACK;
BEGIN;
SELECT tenancy.set_context(:'tok_acme') IS NOT NULL AS signed_in;
UPDATE people SET tenant_id = 'globex' WHERE name = 'Ada';
ROLLBACK;

-- 4. Forging the carrier: rewriting it by hand does not verify.
BEGIN;
SELECT tenancy.set_context(:'tok_acme') IS NOT NULL AS signed_in;
SELECT current_setting('tenancy.context') AS carrier \gset
SELECT split_part(:'carrier', '.', 1) || '.' ||
       translate(encode(convert_to(replace(convert_from(decode(
           rpad(translate(split_part(:'carrier', '.', 2), '-_', '+/'),
                (length(split_part(:'carrier', '.', 2)) + 3) / 4 * 4, '='), 'base64'), 'UTF8'),
           '"acme"', '"globex"'), 'UTF8'), 'base64'), '+/=', '-_') || '.' ||
       split_part(:'carrier', '.', 3) AS forged \gset
SET LOCAL tenancy.context = :'forged';
SELECT count(*) FROM people;
ROLLBACK;

-- 5. Loosening verification or switching RLS off is not the app role's to do.
SET tenancy.jwt_leeway = 3600;
SET tenancy.jwt_tenant_claim = 'sub';
SET row_security = off;
SELECT count(*) FROM people;
RESET row_security;
ALTER TABLE people DISABLE ROW LEVEL SECURITY;
DROP POLICY tenancy_isolation ON people;

-- 6. Shadowing the getter with a temporary function changes nothing: policies call it
--    schema-qualified.
BEGIN;
SELECT tenancy.set_context(:'tok_acme') IS NOT NULL AS signed_in;
CREATE FUNCTION pg_temp.current_tenant() RETURNS text LANGUAGE sql AS $$ SELECT 'globex' $$;
SET LOCAL search_path = pg_temp, tenancy, public;
SELECT array_agg(name ORDER BY name) FROM public.people;
ROLLBACK;

-- 7. Minting a token, setting a tenant without one, or reading keys is refused.
SELECT tenancy.sign_token('{"tenant_id": "globex"}');
SELECT tenancy.set_tenant('globex');
SELECT tenancy.create_tenant('evil');
SELECT kid, secret FROM tenancy.signing_keys;
SELECT secret_hash FROM tenancy.api_keys;
SELECT secret FROM tenancy.carrier_key;
SELECT id FROM tenancy.tenants;

-- 8. COPY goes through the same policy.
BEGIN;
SELECT tenancy.set_context(:'tok_acme') IS NOT NULL AS signed_in;
COPY people (tenant_id, name) TO STDOUT;
COMMIT;

-- 9. A garbage carrier is an error, not an empty context.
SET tenancy.context = 'v1.garbage.garbage';
SELECT count(*) FROM people;
RESET tenancy.context;
SELECT count(*) AS no_context FROM people;
RESET ROLE;

-- Afterwards, as the superuser: globex's rows are exactly as they were.
SELECT tenant_id, name FROM people ORDER BY id;
