# shellcheck shell=bash
# Shared by tests/system/upgrade.sh and tests/system/pg-upgrade.sh; source it after lib.sh and
# scripts/releases.sh, with a cluster up and `db` defined (psql -v ON_ERROR_STOP=1 -q -At -d).
# A realistic database, written against the oldest release's SQL API (0.1.0) so that every
# release can build it: tenants, a signing key, API keys, roles of every tier, protected tables
# of every kind (plain, shared rows, feature-gated, partitioned, protected on arrival in an
# enrolled schema), scoped keys, a plan, a row quota, a benchmark view, a pseudonym secret,
# audit chains with the extension's rows and an application's, a support session opened and
# ended. Then the checks a DBA needs to hold after an upgrade, each printed as one line.

# fixture_roles: the cluster-wide roles (once per cluster).
fixture_roles() {
    db postgres <<'SQL'
CREATE ROLE fx_app LOGIN;
CREATE ROLE fx_owner LOGIN;
CREATE ROLE fx_admin LOGIN;
CREATE ROLE fx_support LOGIN;
SQL
}

# fixture_build DB: the database (the extension must exist in DB, at any version).
fixture_build() {
    db "$1" >/dev/null <<'SQL'
SELECT tenancy.grant_app('fx_app');
SELECT tenancy.grant_admin('fx_admin');
SELECT tenancy.grant_support('fx_support');
SELECT tenancy.create_tenant('acme'), tenancy.create_tenant('globex');
SELECT tenancy.add_signing_key('fx-key', decode(repeat('3c', 32), 'hex'));
SELECT tenancy.grant_feature('acme', 'payroll');
SELECT tenancy.add_pseudonym_secret('fx-secret', decode(repeat('5a', 32), 'hex'));
CREATE SCHEMA app AUTHORIZATION fx_owner;
GRANT USAGE ON SCHEMA app TO fx_app, fx_support;
SET ROLE fx_owner;
CREATE TABLE app.people (id int PRIMARY KEY, tenant_id text, name text);
CREATE TABLE app.orders (id int, tenant_id text, person_id int, PRIMARY KEY (tenant_id, id));
CREATE TABLE app.templates (id int, tenant_id text, shared boolean NOT NULL DEFAULT false, body text, PRIMARY KEY (tenant_id, id));
CREATE TABLE app.payslips (id int, tenant_id text, amount int, PRIMARY KEY (tenant_id, id));
CREATE TABLE app.events (id int, tenant_id text NOT NULL, at date NOT NULL) PARTITION BY RANGE (at);
CREATE TABLE app.events_2026 PARTITION OF app.events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
RESET ROLE;
SELECT tenancy.protect_schema('app');
SELECT tenancy.protect('app.templates', shared_column => 'shared');
SELECT tenancy.protect('app.payslips', feature => 'payroll');
SELECT tenancy.scope_unique('app.people', '{id}');
SELECT tenancy.scope_foreign_key('app.orders', '{person_id}', 'app.people', '{id}');
-- Protected on arrival: the schema is enrolled.
SET ROLE fx_owner;
CREATE TABLE app.notes (id int, tenant_id text, body text);
RESET ROLE;
INSERT INTO app.people VALUES (1, 'acme', 'Ada'), (2, 'globex', 'Grace');
INSERT INTO app.orders VALUES (1, 'acme', 1), (2, 'globex', 2);
INSERT INTO app.templates VALUES (1, 'acme', true, 'public'), (2, 'globex', false, 'private');
INSERT INTO app.payslips VALUES (1, 'acme', 100), (2, 'globex', 200);
INSERT INTO app.events VALUES (1, 'acme', '2026-03-01'), (2, 'globex', '2026-04-01');
INSERT INTO app.notes VALUES (1, 'acme', 'a'), (2, 'globex', 'g');
GRANT SELECT, INSERT ON ALL TABLES IN SCHEMA app TO fx_app;
GRANT SELECT ON ALL TABLES IN SCHEMA app TO fx_support;
SELECT tenancy.set_plan('basic', '{"lock_timeout": "1500ms"}');
SELECT tenancy.set_tenant_plan('acme', 'basic');
SELECT tenancy.set_quota('acme', 'app.events', 1);
SET ROLE fx_owner;
CREATE TABLE app.events_2027 PARTITION OF app.events FOR VALUES FROM ('2027-01-01') TO ('2028-01-01');
RESET ROLE;
SELECT tenancy.create_benchmark_view('app.people_bench', 'app.people', ARRAY[]::name[],
                                     ARRAY['count'], 'id', include_suppressed => true);
GRANT SELECT ON app.people_bench TO fx_app;
BEGIN;
SELECT tenancy.set_tenant('acme', actor => 'ada') IS NOT NULL;
SELECT tenancy.audit('payroll.approved', '{"run": 1}');
SELECT tenancy.audit('payroll.paid', '{"run": 1}');
COMMIT;
-- A support session, opened and ended on the record.
SET ROLE fx_support;
BEGIN;
SELECT tenancy.begin_support('globex', 'ticket 42', 30) IS NOT NULL;
SELECT count(*) FROM app.people;
SELECT tenancy.end_support();
COMMIT;
RESET ROLE;
SQL
}

# fixture_remake_benchmark_views DB: what docs/upgrading.md asks after pg_upgrade to another
# major version: a benchmark view's recorded definition is PostgreSQL's deparse of it, which
# changes between majors, so check() reports it (benchmark_view_changed) until it is made again.
fixture_remake_benchmark_views() {
    db "$1" >/dev/null <<'SQL'
SELECT tenancy.drop_benchmark_view('app.people_bench');
SELECT tenancy.create_benchmark_view('app.people_bench', 'app.people', ARRAY[]::name[],
                                     ARRAY['count'], 'id', include_suppressed => true);
GRANT SELECT ON app.people_bench TO fx_app;
SQL
}

# fixture_token DB / fixture_api_key DB: a token for acme and an API key for globex.
fixture_token() {
    db "$1" -c "SELECT tenancy.sign_token(jsonb_build_object('tenant_id', 'acme', 'exp', extract(epoch FROM now() + interval '1 hour')::bigint))"
}
fixture_api_key() {
    db "$1" -c "SELECT tenancy.create_api_key('globex', 'fixture')"
}

# fixture_pseudonyms DB: acme's pseudonyms of a few values, one line.
fixture_pseudonyms() {
    db "$1" <<'SQL'
BEGIN;
SELECT tenancy.set_tenant('acme') \g /dev/null
SELECT concat_ws(' ', tenancy.pseudonymize('E-1001', 'employee'), tenancy.pseudonymize('E-1002', 'employee'),
                 tenancy.pseudonymize_for_pool('E-1001', 'employee'));
COMMIT;
SQL
}

# fixture_app_listing DB: what protect() and its relatives made on the application's tables
# (RLS flags, policies, triggers, indexes, constraints, column defaults) and their registry
# rows, sorted, no OIDs: compared between an upgraded database and a fresh one.
fixture_app_listing() {
    db "$1" <<'SQL'
SET search_path = pg_catalog, pg_temp;
SELECT line FROM (
    SELECT format('relation %s kind=%s rls=%s force=%s', c.oid::regclass, c.relkind, c.relrowsecurity, c.relforcerowsecurity) AS line
      FROM pg_class c WHERE c.relnamespace = 'app'::regnamespace AND c.relkind IN ('r', 'p', 'v')
    UNION ALL
    SELECT format('policy %s %s permissive=%s cmd=%s roles=%s using=%s check=%s', po.polrelid::regclass, po.polname,
                  po.polpermissive, po.polcmd, po.polroles::regrole[], pg_get_expr(po.polqual, po.polrelid),
                  pg_get_expr(po.polwithcheck, po.polrelid))
      FROM pg_policy po JOIN pg_class c ON c.oid = po.polrelid WHERE c.relnamespace = 'app'::regnamespace
    UNION ALL
    SELECT format('trigger %s %s enabled=%s: %s', t.tgrelid::regclass, t.tgname, t.tgenabled, pg_get_triggerdef(t.oid))
      FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
     WHERE c.relnamespace = 'app'::regnamespace AND NOT t.tgisinternal
    UNION ALL
    SELECT format('index %s', pg_get_indexdef(i.indexrelid))
      FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid WHERE c.relnamespace = 'app'::regnamespace
    UNION ALL
    SELECT format('constraint %s %s %s', k.conrelid::regclass, k.conname, pg_get_constraintdef(k.oid))
      FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid WHERE c.relnamespace = 'app'::regnamespace
    UNION ALL
    SELECT format('column %s.%s notnull=%s default=%s', c.oid::regclass, a.attname, a.attnotnull,
                  pg_get_expr(d.adbin, d.adrelid))
      FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
      LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
     WHERE c.relnamespace = 'app'::regnamespace AND a.attnum > 0 AND NOT a.attisdropped
    UNION ALL
    -- protected_at and protected_by are history (0.1.0 recorded the definer where 0.2.0 records
    -- the role that acted), not what protection makes.
    SELECT format('registry %s %s', p.tbl, (to_jsonb(p) - 'tbl' - 'protected_at' - 'protected_by')::text)
      FROM tenancy.protected_tables p
) l ORDER BY line COLLATE "C";
SQL
}

# fixture_regrant DB: docs/upgrading.md, after ALTER EXTENSION UPDATE (or restoring an older
# release's dump): each role gets its tier as this version defines it (0.2.0: the app tier
# reads jobs and enqueues, the admin tier has new functions).
fixture_regrant() {
    db "$1" -c "SELECT tenancy.grant_app('fx_app'), tenancy.grant_support('fx_support'), tenancy.grant_admin('fx_admin')" >/dev/null
}

# fixture_reprotect DB: docs/upgrading.md's calls that bring what an older protect() made on
# the application's tables to what this version's protect() makes: protect() again, with the
# options it was given, on each protected table that is not a partition (protect() walks the
# partitions itself); then scope_unique() again on each scoped key (0.2.0's drops protect()'s
# tenant index once the key covers it).
fixture_reprotect() {
    db "$1" >/dev/null <<'SQL'
SELECT tenancy.protect(p.tbl, p.tenant_column, p.shared_column, p.feature)
  FROM tenancy.protected_tables p
 WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_inherits i WHERE i.inhrelid = p.tbl)
 ORDER BY p.tbl::text;
SELECT tenancy.scope_unique('app.people', '{id}');
SQL
}

# fixture_checks DB TOKEN API_KEY: isolation, keys, contexts, audit and guard checks, one line
# each (compared with fixture_expected). Expected refusals are caught by SQLSTATE in DO blocks
# and reported as lines; any other error stops psql.
fixture_checks() {
    db "$1" -v token="$2" -v api_key="$3" 2>&1 <<'SQL'
SELECT 'registry: ' || string_agg(tbl::text, ',' ORDER BY tbl::text) FROM tenancy.protected_tables;
SELECT 'guard_state: ' || bool_and(guard_state = '{}') FROM tenancy.protected_tables;
SELECT 'rls: ' || bool_and(relrowsecurity AND relforcerowsecurity) FROM pg_class
 WHERE oid IN (SELECT tbl FROM tenancy.protected_tables);
SELECT 'check: ' || coalesce(string_agg(severity || ' ' || rule || ' ' || object, '; ' ORDER BY rule, object), 'clean')
  FROM tenancy.check() WHERE severity IN ('critical', 'high');
SELECT tenancy.assert_isolated();
SELECT 'assert_isolated: passed';
SELECT 'audit_chains: ' || bool_and(v.ok) || ' ' || count(*) || ' ' || bool_and(v.checked > 0)
  FROM unnest(ARRAY['acme', 'globex', '(system)']) t, tenancy.verify_audit(t) v;
BEGIN;
SELECT tenancy.set_tenant('acme', actor => 'ada') IS NOT NULL \g /dev/null
SELECT 'audit_continues: ' || (tenancy.audit('after.upgrade') > 0);
DO $$ BEGIN
    INSERT INTO app.events VALUES (3, 'acme', '2026-05-01');
    RAISE NOTICE 'quota: not refused';
EXCEPTION WHEN SQLSTATE '54000' THEN
    RAISE NOTICE 'quota: refused';
END $$;
SELECT 'lock_timeout: ' || current_setting('lock_timeout');
COMMIT;
SELECT 'audit_acme_after: ' || bool_and(ok) FROM tenancy.verify_audit('acme');
SET ROLE fx_admin;
SELECT 'admin_closes_support: ' || tenancy.close_support_sessions();
RESET ROLE;
SET ROLE fx_app;
BEGIN;
SELECT 'token: ' || (tenancy.set_context(:'token') IS NOT NULL);
SELECT 'acme_people: ' || string_agg(name, ',') FROM app.people;
SELECT 'acme_notes: ' || string_agg(body, ',') FROM app.notes;
SELECT 'acme_templates: ' || string_agg(body, ',' ORDER BY id) FROM app.templates;
SELECT 'acme_payslips: ' || count(*) FROM app.payslips;
SELECT 'acme_events: ' || count(*) FROM app.events;
DO $$ BEGIN
    INSERT INTO app.people VALUES (9, 'globex', 'Mallory');
    RAISE NOTICE 'cross_tenant_write: not refused';
EXCEPTION WHEN SQLSTATE '42501' THEN
    RAISE NOTICE 'cross_tenant_write: refused';
END $$;
COMMIT;
BEGIN;
SELECT 'key: ' || (tenancy.set_context_from_key(:'api_key') IS NOT NULL);
SELECT 'globex_people: ' || string_agg(name, ',') FROM app.people;
SELECT 'globex_orders: ' || count(*) FROM app.orders;
SELECT 'globex_payslips: ' || count(*) FROM app.payslips;
DO $$ BEGIN
    INSERT INTO app.payslips VALUES (3, 'globex', 1);
    RAISE NOTICE 'feature_write: not refused';
EXCEPTION WHEN SQLSTATE '42501' THEN
    RAISE NOTICE 'feature_write: refused';
END $$;
COMMIT;
SELECT 'no_context: ' || count(*) FROM app.people;
SELECT 'bench_status: ' || status FROM app.people_bench;
RESET ROLE;
SQL
}

fixture_expected=(
    "registry: app.events,app.events_2026,app.events_2027,app.notes,app.orders,app.payslips,app.people,app.templates"
    "guard_state: true" "rls: true" "check: clean" "assert_isolated: passed"
    "audit_chains: true 3 true" "audit_continues: true" "audit_acme_after: true"
    "lock_timeout: 1500ms" "admin_closes_support: 0"
    "token: true" "acme_people: Ada" "acme_notes: a" "acme_templates: public" "acme_payslips: 1" "acme_events: 1"
    "key: true" "globex_people: Grace" "globex_orders: 1" "globex_payslips: 0"
    "no_context: 0" "bench_status: too_few_contributors"
)
fixture_expected_notices=("quota: refused" "cross_tenant_write: refused" "feature_write: refused")

# fixture_verify DESCRIPTION OUTPUT: every expected line and notice is in OUTPUT.
fixture_verify() {
    local line
    for line in "${fixture_expected[@]}"; do
        if grep -qxF -- "$line" <<<"$2"; then
            say "ok ($1): $line"
        else
            printf '*** %s: expected: %s, got: [%s]\n' "$1" "$line" "$(grep -F -- "${line%%: *}: " <<<"$2" | tr '\n' ' ')" >&2
            fail=1
        fi
    done
    for line in "${fixture_expected_notices[@]}"; do
        if grep -qF -- "NOTICE:  $line" <<<"$2"; then say "ok ($1): $line"; else printf '*** %s: expected notice: %s\n' "$1" "$line" >&2; fail=1; fi
    done
}
