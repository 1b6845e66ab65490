-- Organizations of tenants (docs/organizations.md): a company, Brew, with two locations, and a
-- second company, Cafe, with one. Each location's token sees its own rows; Brew's token sees
-- its own and both locations'; nobody sees the other company; writes stay with the context's
-- own tenant; deactivation and moves count from the next transaction.
SELECT tenancy.create_tenant('brew', 'Brew Co');
SELECT tenancy.create_tenant('brew_north', 'Brew North', parent => 'brew');
SELECT tenancy.create_tenant('brew_south', 'Brew South', parent => 'brew');
SELECT tenancy.create_tenant('cafe', 'Cafe Ltd');
SELECT tenancy.create_tenant('cafe_main', 'Cafe Main', parent => 'cafe');
SELECT id, parent, depth, root, path, is_leaf FROM tenancy.tenant_tree
 WHERE root IN ('brew', 'cafe') ORDER BY path;

CREATE TABLE visits (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id text NOT NULL,
    guest     text NOT NULL
);
INSERT INTO visits (tenant_id, guest) VALUES
    ('brew', 'head office'), ('brew_north', 'Nia'), ('brew_north', 'Ned'),
    ('brew_south', 'Sol'), ('cafe', 'cafe office'), ('cafe_main', 'Mo');
SELECT tenancy.protect('visits');
GRANT SELECT, INSERT, UPDATE, DELETE ON visits TO regress_app;

SELECT tenancy.sign_token(jsonb_build_object('tenant_id', 'brew_north', 'sub', 'nia',
         'exp', extract(epoch FROM now() + interval '1 hour')::bigint)) AS tok_north \gset
SELECT tenancy.sign_token(jsonb_build_object('tenant_id', 'brew', 'sub', 'boss',
         'exp', extract(epoch FROM now() + interval '1 hour')::bigint)) AS tok_brew \gset
SELECT tenancy.sign_token(jsonb_build_object('tenant_id', 'cafe', 'sub', 'owner',
         'exp', extract(epoch FROM now() + interval '1 hour')::bigint)) AS tok_cafe \gset

SET ROLE regress_app;

-- 1. A location sees its own rows; asking for its sibling's or its parent's finds nothing.
BEGIN;
SELECT tenancy.set_context(:'tok_north') IS NOT NULL AS signed_in;
SELECT tenant_id, guest FROM visits ORDER BY id;
SELECT count(*) FROM visits WHERE tenant_id IN ('brew', 'brew_south');
UPDATE visits SET guest = 'pwned' WHERE tenant_id = 'brew_south';
INSERT INTO visits (tenant_id, guest) VALUES ('brew_south', 'Mallory');
ROLLBACK;

-- 2. The company sees its own rows and both locations', nothing of Cafe.
BEGIN;
SELECT tenancy.set_context(:'tok_brew') IS NOT NULL AS signed_in;
SELECT tenant_id, guest FROM visits ORDER BY id;
SELECT tenancy.current_tenant(), tenancy.current_subtree();
-- Writes stay with its own tenant id: into a location or outside its tree, 42501.
INSERT INTO visits (tenant_id, guest) VALUES ('brew_north', 'Walk-in');
ROLLBACK;
BEGIN;
SELECT tenancy.set_context(:'tok_brew') IS NOT NULL AS signed_in;
INSERT INTO visits (tenant_id, guest) VALUES ('cafe_main', 'Walk-in');
ROLLBACK;
BEGIN;
SELECT tenancy.set_context(:'tok_brew') IS NOT NULL AS signed_in;
INSERT INTO visits (guest) VALUES ('board meeting') RETURNING tenant_id, guest;
UPDATE visits SET guest = guest || ' (seen)' RETURNING tenant_id, guest;
ROLLBACK;

-- 3. The other company sees its own tree only.
BEGIN;
SELECT tenancy.set_context(:'tok_cafe') IS NOT NULL AS signed_in;
SELECT tenant_id, guest FROM visits ORDER BY id;
COMMIT;

-- 4. A statement prepared under the company and run again under a location shows the
-- location's rows alone, and the other way round.
SET plan_cache_mode = force_generic_plan;
BEGIN;
SELECT tenancy.set_context(:'tok_brew') IS NOT NULL AS signed_in;
PREPARE guests AS SELECT string_agg(guest, ', ' ORDER BY id) FROM visits;
EXECUTE guests;
COMMIT;
BEGIN;
SELECT tenancy.set_context(:'tok_north') IS NOT NULL AS signed_in;
EXECUTE guests;
COMMIT;
BEGIN;
SELECT tenancy.set_context(:'tok_brew') IS NOT NULL AS signed_in;
EXECUTE guests;
COMMIT;
DEALLOCATE guests;
RESET plan_cache_mode;

-- 5. A location cannot read the tree or change it.
SELECT id FROM tenancy.tenant_tree;
SELECT tenancy.move_tenant('brew_south', 'brew_north');
RESET ROLE;

-- 6. The hierarchy refuses cycles and depth beyond four levels.
SELECT tenancy.move_tenant('brew', 'brew_north');
SELECT tenancy.create_tenant('brew_n1', parent => 'brew_north');
SELECT tenancy.create_tenant('brew_n2', parent => 'brew_n1');
SELECT tenancy.create_tenant('brew_n3', parent => 'brew_n2');

-- 7. Brew South moves to Cafe: from the next transaction Brew no longer sees it, Cafe does.
SELECT tenancy.move_tenant('brew_south', 'cafe');
SET ROLE regress_app;
BEGIN;
SELECT tenancy.set_context(:'tok_brew') IS NOT NULL AS signed_in;
SELECT tenant_id, guest FROM visits ORDER BY id;
COMMIT;
BEGIN;
SELECT tenancy.set_context(:'tok_cafe') IS NOT NULL AS signed_in;
SELECT tenant_id, guest FROM visits ORDER BY id;
COMMIT;
RESET ROLE;

-- 8. Deactivating Brew stops its location's token from the next transaction, in a session
-- that had it cached and in a new one.
SET ROLE regress_app;
BEGIN;
SELECT tenancy.set_context(:'tok_north') IS NOT NULL AS signed_in;
SELECT count(*) FROM visits;
COMMIT;
RESET ROLE;
SELECT tenancy.deactivate_tenant('brew');
SET ROLE regress_app;
BEGIN;
SELECT tenancy.set_context(:'tok_north') IS NOT NULL AS signed_in;
ROLLBACK;
\c
SET ROLE regress_app;
BEGIN;
SELECT tenancy.set_context(:'tok_north') IS NOT NULL AS signed_in;
ROLLBACK;
RESET ROLE;
SELECT tenancy.reactivate_tenant('brew');
SELECT tenancy.move_tenant('brew_south', 'brew');
DROP TABLE visits;
