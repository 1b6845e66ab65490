-- tenancy.check(): a schema with the usual holes, what check() reports, assert_isolated() as a
-- CI gate, and the suggested fixes run as they are.
BEGIN;
CREATE SCHEMA shop;
CREATE TABLE shop.orders (id uuid PRIMARY KEY, tenant_id text, code text, total numeric);
SELECT tenancy.protect('shop.orders');
-- Holes: a table nobody protected, a global unique key, a view owned by a superuser, TRUNCATE
-- for the app, a SECURITY DEFINER function without a search_path, a policy on a forgeable
-- setting, and a materialized view.
CREATE TABLE shop."order notes" (tenant_id text, body text);
CREATE UNIQUE INDEX orders_code ON shop.orders (code);
CREATE VIEW shop.order_totals AS SELECT tenant_id, sum(total) FROM shop.orders GROUP BY tenant_id;
CREATE MATERIALIZED VIEW shop.order_counts AS SELECT tenant_id, count(*) FROM shop.orders GROUP BY tenant_id;
GRANT SELECT, TRUNCATE ON shop.orders TO regress_app;
CREATE FUNCTION shop.next_code() RETURNS text LANGUAGE sql SECURITY DEFINER
    AS $$ SELECT 'X-' || floor(random() * 1000)::int $$;
CREATE TABLE shop.coupons (org text, code text);
ALTER TABLE shop.coupons ENABLE ROW LEVEL SECURITY;
CREATE POLICY by_org ON shop.coupons USING (org = current_setting('app.org'));

SELECT severity, rule, object, fix FROM tenancy.check('shop');

-- The CI gate fails with every critical and high finding in the message.
SAVEPOINT gate;
SELECT tenancy.assert_isolated('shop');
ROLLBACK TO gate;

-- Run the suggested fixes as docs/reference.md shows, critical and high ones, in the order
-- check() lists them; nothing is left.
DO $$
DECLARE f text;
BEGIN
    FOR f IN SELECT fix FROM tenancy.check('shop')
              WHERE severity IN ('critical', 'high') AND fix IS NOT NULL LOOP
        EXECUTE f;
    END LOOP;
END
$$;
SELECT count(*) AS findings FROM tenancy.check('shop');
SELECT tenancy.assert_isolated('shop');
SELECT tbl, tenant_column FROM tenancy.protected_tables WHERE tbl::text LIKE 'shop.%' ORDER BY 1;

-- A schema protected with every option is clean.
CREATE SCHEMA clinic;
CREATE TABLE clinic.patients (id uuid PRIMARY KEY, tenant_id text, email text UNIQUE);
CREATE TABLE clinic.visits (id uuid PRIMARY KEY, tenant_id text, patient_id uuid REFERENCES clinic.patients);
CREATE TABLE clinic.forms (id uuid, tenant_id text, shared boolean NOT NULL DEFAULT false);
CREATE TABLE clinic.invoices (id uuid, tenant_id text);
SELECT tenancy.protect_schema('clinic');
SELECT tenancy.protect('clinic.forms', shared_column => 'shared');
SELECT tenancy.protect('clinic.invoices', feature => 'billing');
SELECT tenancy.scope_foreign_key('clinic.visits', '{patient_id}', 'clinic.patients');
SELECT tenancy.scope_unique('clinic.patients', '{id}'), tenancy.scope_unique('clinic.patients', '{email}'),
       tenancy.scope_unique('clinic.visits', '{id}');
SELECT * FROM tenancy.check('clinic');
ROLLBACK;

-- The checker is for admins: it lists every table and role.
SET ROLE regress_app;
SELECT * FROM tenancy.check();
SELECT tenancy.assert_isolated();
RESET ROLE;
