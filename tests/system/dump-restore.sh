#!/usr/bin/env bash
# Usage: tests/system/dump-restore.sh 15|18
# pg_dump a database with tenants, signing keys, API keys, entitlements, a plan, a row quota, an
# enrolled schema and protected tables (plain, shared rows, feature-gated, partitioned), restore it into a fresh
# database with pg_restore --exit-on-error, and check there: the restore had no error (the DDL
# guard lets a restore rebuild RLS), check() finds nothing critical or high and
# assert_isolated() passes, tokens signed before the dump and API keys still work,
# isolation holds as the app role, every audit chain verifies and new audit rows continue it,
# plans and quotas still apply, a benchmark view still reads
# as one and the checker still finds it intact, and the guard is armed again afterwards.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
source "$(dirname "$0")/lib.sh"

ver="${1:?usage: tests/system/dump-restore.sh 15|18}"
install_extension "$ver"
CL_PGDATA="$RUN_DIR/dump-restore-pg$ver"
CL_PORT=$((ROOT_REGRESS_PORT_BASE + 30 + ver))

dump="$(mktemp)"
trap 'cluster_down; rm -f "$dump"' EXIT
trap 'exit 130' INT TERM
cluster_up
db() { cluster_psql -v ON_ERROR_STOP=1 -d "$@"; }
db postgres -q -c "CREATE DATABASE dr_src" -c "CREATE DATABASE dr_dst"

db dr_src -q >/dev/null <<'SQL'
CREATE EXTENSION pg_tenancy;
DROP ROLE IF EXISTS dr_app;
DROP ROLE IF EXISTS dr_owner;
CREATE ROLE dr_app LOGIN;
CREATE ROLE dr_owner LOGIN;
SELECT tenancy.grant_app('dr_app');
SELECT tenancy.create_tenant('acme'), tenancy.create_tenant('globex');
SELECT tenancy.add_signing_key('dr-key', decode(repeat('3c', 32), 'hex'));
SELECT tenancy.grant_feature('acme', 'payroll');
CREATE SCHEMA app AUTHORIZATION dr_owner;
GRANT USAGE ON SCHEMA app TO dr_app;
SET ROLE dr_owner;
CREATE TABLE app.people (id int PRIMARY KEY, tenant_id text, name text);
CREATE TABLE app.templates (id int, tenant_id text, shared boolean NOT NULL DEFAULT false, body text, PRIMARY KEY (tenant_id, id));
CREATE TABLE app.payslips (id int, tenant_id text, amount int, PRIMARY KEY (tenant_id, id));
CREATE TABLE app.events (id int, tenant_id text NOT NULL, at date NOT NULL) PARTITION BY RANGE (at);
CREATE TABLE app.events_2026 PARTITION OF app.events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
RESET ROLE;
SELECT tenancy.protect_schema('app');
SELECT tenancy.protect('app.templates', shared_column => 'shared');
SELECT tenancy.protect('app.payslips', feature => 'payroll');
SELECT tenancy.scope_unique('app.people', '{id}');
INSERT INTO app.people VALUES (1, 'acme', 'Ada'), (2, 'globex', 'Grace');
INSERT INTO app.templates VALUES (1, 'acme', true, 'public'), (2, 'globex', false, 'private');
INSERT INTO app.payslips VALUES (1, 'acme', 100), (2, 'globex', 200);
INSERT INTO app.events VALUES (1, 'acme', '2026-03-01'), (2, 'globex', '2026-04-01');
GRANT SELECT ON ALL TABLES IN SCHEMA app TO dr_app;
-- Plans and quotas travel with the dump (limits applied, quota triggers and budgets intact).
SELECT tenancy.set_plan('basic', '{"lock_timeout": "1500ms"}');
SELECT tenancy.set_tenant_plan('acme', 'basic');
SELECT tenancy.set_quota('acme', 'app.events', 1);
-- A partition created after set_quota() gets the quota triggers, and restores without a clash.
SET ROLE dr_owner;
CREATE TABLE app.events_2027 PARTITION OF app.events FOR VALUES FROM ('2027-01-01') TO ('2028-01-01');
RESET ROLE;
-- A benchmark view (owned by the extension's owner, registered with its definition).
SELECT tenancy.create_benchmark_view('app.people_bench', 'app.people', ARRAY[]::name[],
                                     ARRAY['count'], 'id', include_suppressed => true);
GRANT SELECT ON app.people_bench TO dr_app;
-- Audit rows: the extension's own (tenant created, key added, tables protected, ...) and an
-- application's, written under acme's context.
BEGIN;
SELECT tenancy.set_tenant('acme', actor => 'ada') IS NOT NULL;
SELECT tenancy.audit('payroll.approved', '{"run": 1}');
SELECT tenancy.audit('payroll.paid', '{"run": 1}');
COMMIT;
SQL
token="$(db dr_src -At -c "SELECT tenancy.sign_token(jsonb_build_object('tenant_id', 'acme', 'exp', extract(epoch FROM now() + interval '1 hour')::bigint))")"
api_key="$(db dr_src -At -c "SELECT tenancy.create_api_key('globex', 'restored')")"

say "pg_dump | pg_restore --exit-on-error into a fresh database"
PGHOST=localhost PGPORT="$CL_PORT" PGUSER=postgres "$CL_BINDIR/pg_dump" -Fc -d dr_src -f "$dump"
PGHOST=localhost PGPORT="$CL_PORT" PGUSER=postgres "$CL_BINDIR/pg_restore" --exit-on-error -d dr_dst "$dump" ||
    die "pg_restore failed"

# Every statement must succeed (ON_ERROR_STOP): the expected refusals are caught by SQLSTATE in
# DO blocks and reported as NOTICEs, so any other error stops psql and fails the test.
if ! out="$(db dr_dst -At -v token="$token" -v api_key="$api_key" 2>&1 <<'SQL'
SELECT 'registry: ' || string_agg(tbl::text, ',' ORDER BY tbl::text) FROM tenancy.protected_tables;
SELECT 'guard_state: ' || bool_and(guard_state = '{}') FROM tenancy.protected_tables;
SELECT 'rls: ' || bool_and(relrowsecurity AND relforcerowsecurity) FROM pg_class
 WHERE oid IN (SELECT tbl FROM tenancy.protected_tables);
SELECT 'check: ' || coalesce(string_agg(severity || ' ' || rule || ' ' || object, '; ' ORDER BY rule, object), 'clean')
  FROM tenancy.check() WHERE severity IN ('critical', 'high');
-- Called on its own: inside a sub-select the planner may drop a STABLE void call unevaluated.
SELECT tenancy.assert_isolated();
SELECT 'assert_isolated: passed';
SELECT 'quota: ' || q.max_rows || ' ' || (q.max_rows - sum(s.budget)) || ' ' ||
       (SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'tenancy_quota_%' AND tgrelid IN ('app.events'::regclass, 'app.events_2026'::regclass, 'app.events_2027'::regclass))
  FROM tenancy.quotas q JOIN tenancy.quota_slots s USING (tenant, tbl) GROUP BY q.max_rows;
BEGIN;
SELECT tenancy.set_tenant('acme') IS NOT NULL;
DO $$ BEGIN
    INSERT INTO app.events VALUES (3, 'acme', '2026-05-01');
EXCEPTION WHEN SQLSTATE '54000' THEN
    RAISE NOTICE 'quota refused: %', SQLERRM;
END $$;
DO $$ BEGIN
    INSERT INTO app.events_2027 VALUES (4, 'acme', '2027-05-01');
EXCEPTION WHEN SQLSTATE '54000' THEN
    RAISE NOTICE 'later partition quota refused: %', SQLERRM;
END $$;
SELECT 'lock_timeout: ' || current_setting('lock_timeout');
ROLLBACK;
SELECT 'bench_findings: ' || count(*) FROM tenancy.check() WHERE object = 'app.people_bench';
SELECT 'audit_chains: ' || bool_and(v.ok) || ' ' || count(*) || ' ' || bool_and(v.checked > 0)
  FROM unnest(ARRAY['acme', 'globex', '(system)']) t, tenancy.verify_audit(t) v;
SELECT 'audit_app_rows: ' || count(*) FROM tenancy.audit_log WHERE tenant_id = 'acme' AND actor = 'ada';
-- new rows continue the restored chain
BEGIN;
SELECT tenancy.set_tenant('acme', actor => 'ada') IS NOT NULL;
SELECT 'audit_continues: ' || (tenancy.audit('restored.check') > 0);
COMMIT;
SELECT 'audit_acme_after: ' || bool_and(ok) FROM tenancy.verify_audit('acme');
SET ROLE dr_app;
BEGIN;
SELECT 'token: ' || (tenancy.set_context(:'token') IS NOT NULL);
SELECT 'acme_people: ' || string_agg(name, ',') FROM app.people;
SELECT 'acme_templates: ' || string_agg(body, ',' ORDER BY id) FROM app.templates;
SELECT 'acme_payslips: ' || count(*) FROM app.payslips;
SELECT 'acme_events: ' || count(*) FROM app.events_2026;
COMMIT;
BEGIN;
SELECT 'key: ' || (tenancy.set_context_from_key(:'api_key') IS NOT NULL);
SELECT 'globex_people: ' || string_agg(name, ',') FROM app.people;
SELECT 'globex_payslips: ' || count(*) FROM app.payslips;
COMMIT;
SELECT 'no_context: ' || count(*) FROM app.people;
SELECT 'bench_status: ' || status FROM app.people_bench;
RESET ROLE;
SQL
)"; then
    printf '*** a check in the restored database stopped on an error\n' >&2
    fail=1
fi
for line in "registry: app.events,app.events_2026,app.events_2027,app.payslips,app.people,app.templates" "guard_state: true" \
    "rls: true" "check: clean" "assert_isolated: passed" "token: true" "acme_people: Ada" "acme_templates: public" "acme_payslips: 1" \
    "acme_events: 1" "key: true" "globex_people: Grace" "globex_payslips: 0" "no_context: 0" \
    "quota: 1 1 9" "lock_timeout: 1500ms" "bench_findings: 0" "bench_status: too_few_contributors" \
    "audit_chains: true 3 true" "audit_app_rows: 2" "audit_continues: true" "audit_acme_after: true"; do
    if grep -qxF -- "$line" <<<"$out"; then say "ok: $line"; else printf '*** expected: %s\n' "$line" >&2; fail=1; fi
done
if grep -q "quota refused: pg_tenancy: row quota exceeded: tenant 'acme' may keep at most 1 rows in app.events" <<<"$out" &&
    grep -q "later partition quota refused: pg_tenancy: row quota exceeded" <<<"$out"; then
    say "ok: the restored quota refuses acme's second event"
else
    printf '*** expected the restored quota to refuse the insert\n' >&2
    fail=1
fi
expect_error "the DDL guard is armed again after the restore: NO FORCE refused" 42501 \
    "pg_tenancy: refusing DDL on protected table app.people" \
    db dr_dst -c "SET ROLE dr_owner" -c "ALTER TABLE app.people NO FORCE ROW LEVEL SECURITY"
if [ "$fail" -ne 0 ]; then
    printf -- '---- output ----\n%s\n' "$out" >&2
    die "dump/restore check failed on PostgreSQL $ver"
fi
say "dump and restore keep isolation, keys and tokens (PostgreSQL $ver)"
