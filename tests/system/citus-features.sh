#!/usr/bin/env bash
# Usage: tests/system/citus-features.sh [15]
# pg_tenancy's other features on Citus (docs/scale-out.md, "Features on Citus"), on a
# coordinator and two workers, as an application role with LOGIN through the coordinator
# unless a check is about a worker. Guarded aggregates and benchmark views across shards give
# the one-node answer (compared in the same run with a local copy of the same data).
# PostgreSQL 15 only (Citus 13.2 does not support 18); skipped, exit 0, without Citus.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR/../../scripts
source "$(dirname "$0")/../../scripts/lib.sh"
# shellcheck source-path=SCRIPTDIR
source "$(dirname "$0")/citus-lib.sh"

if [ "${1:-15}" != 15 ]; then
    say "Citus supports PostgreSQL 15-17, not $1: skipping"
    exit 0
fi
citus_require
# as_app SQL: one value, as the application role without a context.
as_app() { on coord -qAt -c "SET ROLE feat_app" -c "$1"; }
citus_start citus-features 330 2 "tenancy.jwt_leeway = 0"

on coord -q >/dev/null <<'SQL'
CREATE ROLE feat_app LOGIN;
SELECT tenancy.grant_app('feat_app');
SELECT tenancy.add_signing_key('k1', decode(repeat('17', 32), 'hex'));
SQL
# token TENANT: a token for TENANT, valid for 50 minutes.
token() { value coord "SELECT tenancy.sign_token(jsonb_build_object('tenant_id', '$1', 'exp', extract(epoch FROM now() + interval '50 minutes')::bigint))"; }


on coord -q >/dev/null <<'SQL'
CREATE ROLE feat_admin LOGIN;
SELECT tenancy.grant_admin('feat_admin');
CREATE ROLE feat_support LOGIN;
SELECT tenancy.grant_support('feat_support');
SELECT tenancy.create_tenant('c' || g) FROM generate_series(1, 16) g;

-- Two shards, one on each worker, so that which tenant sits on which shard is known: `pick`
-- (a local table) lists the tenants of shard a and of shard b.
CREATE TABLE survey (id bigint, tenant_id text NOT NULL, person bigint NOT NULL, team text, score int,
                     PRIMARY KEY (tenant_id, id));
SELECT create_distributed_table('survey', 'tenant_id', shard_count => 2);
SELECT tenancy.protect('survey');
CREATE TABLE pick AS
SELECT t, row_number() OVER (PARTITION BY a ORDER BY t) AS n, a
  FROM (SELECT 'c' || g AS t,
               get_shard_id_for_distribution_column('survey', 'c' || g)
                 = (SELECT min(shardid) FROM pg_dist_shard WHERE logicalrelid = 'survey'::regclass) AS a
          FROM generate_series(1, 16) g) x;
-- spread: ten tenants of one person each, five on each shard. Each shard alone has five people
-- of five tenants, which fails the residual rule (four people beside the largest tenant);
-- together there are ten: shown.
INSERT INTO survey SELECT 1000 + row_number() OVER (ORDER BY t), t, 100 * n + CASE WHEN a THEN 0 ELSE 50 END, 'spread', 10 * n
  FROM pick WHERE n <= 5;
-- dominated: on shard a five tenants of two people each (shown on that shard alone), on shard
-- b one tenant of twenty people: together that tenant holds two thirds of the people.
INSERT INTO survey SELECT 2000 + row_number() OVER (ORDER BY t, p), t, 1000 * n + p, 'dominated', 7
  FROM pick, generate_series(1, 2) p WHERE a AND n <= 5;
INSERT INTO survey SELECT 3000 + p, t, 5000 + p, 'dominated', 9
  FROM pick, generate_series(1, 20) p WHERE NOT a AND n = 1;
-- few: four tenants of one person on each shard. Each shard alone is below min-N (four
-- people); together there are eight people of eight tenants: shown.
INSERT INTO survey SELECT 4000 + row_number() OVER (ORDER BY t), t, 7000 + 10 * n + CASE WHEN a THEN 0 ELSE 5 END, 'few', 5
  FROM pick WHERE n <= 4;
-- The same rows in a local table and in a reference table.
CREATE TABLE survey_local (LIKE survey INCLUDING ALL);
INSERT INTO survey_local SELECT * FROM survey;
SELECT tenancy.protect('survey_local');
CREATE TABLE survey_ref (LIKE survey INCLUDING ALL);
INSERT INTO survey_ref SELECT * FROM survey;
SELECT create_reference_table('survey_ref');
SELECT tenancy.protect('survey_ref');
GRANT SELECT, INSERT, UPDATE, DELETE ON survey, survey_local, survey_ref TO feat_app;
GRANT SELECT ON survey, survey_local, survey_ref TO feat_admin;
GRANT CREATE ON SCHEMA public TO feat_admin;

-- A role that reads every tenant pools the table: a SECURITY DEFINER function owned by the
-- superuser (Citus runs the shard queries as the function's owner).
CREATE FUNCTION pooled(tbl regclass) RETURNS SETOF text LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RETURN QUERY EXECUTE format($q$
        SELECT team || ': ' || array_to_string(ARRAY[tenancy.guard_status(person, tenant_id), tenancy.guarded_count(person, tenant_id)::text,
               tenancy.guarded_sum(score, person, tenant_id)::text, tenancy.guarded_avg(score, person, tenant_id)::text,
               tenancy.guarded_percentile(score, 0.5, person, tenant_id)::text,
               tenancy.guard_status(person), tenancy.guarded_count(person)::text, tenancy.guarded_sum(score, person)::text], ' ', '-')
          FROM %s GROUP BY team ORDER BY team$q$, tbl);
END $$;
-- Grouped by the tenant column: Citus pushes the whole aggregate down to the shards, where
-- each group is whole.
CREATE FUNCTION per_tenant(tbl regclass) RETURNS SETOF text LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RETURN QUERY EXECUTE format($q$
        SELECT tenant_id || ': ' || concat_ws(' ', tenancy.guard_status(person), tenancy.guarded_count(person), tenancy.guarded_avg(score, person))
          FROM %s GROUP BY tenant_id ORDER BY tenant_id$q$, tbl);
END $$;
GRANT EXECUTE ON FUNCTION pooled(regclass), per_tenant(regclass) TO feat_app;
SQL
big="$(value coord "SELECT t FROM pick WHERE NOT a AND n = 1")"
small="$(value coord "SELECT t FROM pick WHERE a AND n = 1")"

say "guarded aggregates across shards: the rules hold on the combined result"
# The premise: evaluated on each shard alone, no cell of spread is shown, and dominated is
# shown on shard a.
same "each shard alone: few (below min-N) and spread hidden on both, dominated shown on shard a" \
    "dominated:ok:70 few:too_few_contributors:- spread:too_few_contributors:-|dominated:too_few_tenants:- few:too_few_contributors:- spread:too_few_contributors:-" \
    "$(value coord "SELECT string_agg(result, '|' ORDER BY shardid) FROM run_command_on_shards('survey', \$\$SELECT string_agg(x, ' ' ORDER BY x) FROM (SELECT team || ':' || tenancy.guard_status(person, tenant_id) || ':' || coalesce(tenancy.guarded_sum(score, person, tenant_id)::text, '-') x FROM %s GROUP BY team) s\$\$)")"
session coord feat_app >"$out" <<'SQL'
SELECT 'distributed ' || pooled FROM pooled('survey');
SELECT 'reference ' || pooled FROM pooled('survey_ref');
SELECT 'local ' || pooled FROM pooled('survey_local');
SQL
same "each shard alone: few has four people (the plain forms hide it too)" \
    "dominated:ok few:too_few_contributors:4 spread:ok|dominated:ok few:too_few_contributors:4 spread:ok" \
    "$(value coord "SELECT string_agg(result, '|' ORDER BY shardid) FROM run_command_on_shards('survey', \$\$SELECT string_agg(x, ' ' ORDER BY x) FROM (SELECT team || ':' || tenancy.guard_status(person) || CASE team WHEN 'few' THEN ':' || count(DISTINCT person) ELSE '' END x FROM %s GROUP BY team) s\$\$)")"
expect "pooled guarded aggregates: the same cells on a distributed, a reference and a local table" <<'EOF'
distributed dominated: dominated - - - - ok 30 250
distributed few: ok 8 40 5.0000000000000000 5 ok 8 40
distributed spread: ok 10 300 30.0000000000000000 30 ok 10 300
reference dominated: dominated - - - - ok 30 250
reference few: ok 8 40 5.0000000000000000 5 ok 8 40
reference spread: ok 10 300 30.0000000000000000 30 ok 10 300
local dominated: dominated - - - - ok 30 250
local few: ok 8 40 5.0000000000000000 5 ok 8 40
local spread: ok 10 300 30.0000000000000000 30 ok 10 300
EOF
same "grouped by the tenant column (pushed down to the shards): the same cells as on a local table" \
    "$(as_app "SELECT string_agg(per_tenant, ';') FROM per_tenant('survey_local')")" \
    "$(as_app "SELECT string_agg(per_tenant, ';') FROM per_tenant('survey')")"
same "... of which one, the large tenant's, is shown" "$big: ok 22" \
    "$(value coord "SELECT split_part(per_tenant, ' ', 1) || ' ' || split_part(per_tenant, ' ', 2) || ' ' || split_part(per_tenant, ' ', 3) FROM per_tenant('survey') WHERE per_tenant LIKE '%: ok %'")"
# Citus cannot push a guarded aggregate down (its state is `internal`, and its name is none of
# Citus's): the shards send rows and the coordinator aggregates them, so the final function
# that applies the rules runs once, on the whole group.
plan="$(value coord "EXPLAIN (VERBOSE, COSTS OFF) SELECT team, tenancy.guard_status(person, tenant_id) FROM survey GROUP BY team")"
same "EXPLAIN: the coordinator runs the guarded aggregate over the shards' rows" 1 \
    "$(grep -c 'tenancy.guard_status(remote_scan' <<<"$plan" || true)"
same "EXPLAIN: the shards' query holds no guarded aggregate" 0 "$(grep -c 'Query:.*tenancy\.' <<<"$plan" || true)"
bigtok="$(token "$big")"
smalltok="$(token "$small")"
session coord feat_app -v big="$bigtok" -v small="$smalltok" >"$out" <<'SQL'
BEGIN;
SELECT tenancy.set_context(:'big') IS NOT NULL AS set \g /dev/null
SELECT 'big, distributed: ' || string_agg(team || ' ' || coalesce(c::text, '-'), ', ' ORDER BY team) FROM (SELECT team, tenancy.guarded_count(person) c FROM survey GROUP BY team) s;
SELECT 'big, local: ' || string_agg(team || ' ' || coalesce(c::text, '-'), ', ' ORDER BY team) FROM (SELECT team, tenancy.guarded_count(person) c FROM survey_local GROUP BY team) s;
COMMIT;
BEGIN;
SELECT tenancy.set_context(:'small') IS NOT NULL AS set \g /dev/null
SELECT 'small, distributed: ' || string_agg(team || ' ' || coalesce(c::text, '-'), ', ' ORDER BY team) FROM (SELECT team, tenancy.guarded_count(person) c FROM survey GROUP BY team) s;
SELECT 'small, local: ' || string_agg(team || ' ' || coalesce(c::text, '-'), ', ' ORDER BY team) FROM (SELECT team, tenancy.guarded_count(person) c FROM survey_local GROUP BY team) s;
COMMIT;
SQL
expect "a tenant's own guarded aggregates: the same on its shard as on one node" <<'EOF'
big, distributed: dominated 20, few -, spread -
big, local: dominated 20, few -, spread -
small, distributed: dominated -, few -, spread -
small, local: dominated -, few -, spread -
EOF

say "benchmark views: refused on Citus tables, which Citus reads as the reader"
session coord feat_admin >"$out" <<'SQL'
SELECT tenancy.create_benchmark_view('survey_bench', 'survey', '{team}', '{count,sum(score)}', 'person');
SELECT tenancy.create_benchmark_view('survey_ref_bench', 'survey_ref', '{team}', '{count,sum(score)}', 'person');
SELECT tenancy.create_benchmark_view('survey_local_bench', 'survey_local', '{team}', '{count,sum(score)}', 'person', true);
SQL
# (The warning is Citus's: a view of a local table stays on the coordinator.)
expect "create_benchmark_view refuses a distributed and a reference table, not a local one" <<'EOF'
ERROR:  0A000
ERROR:  0A000
WARNING:  0A000
survey_local_bench
EOF
value coord "GRANT SELECT ON survey_local_bench TO feat_app" >/dev/null
same "the local benchmark view shows what the pooled aggregates show on the distributed table" \
    "dominated dominated;few 8 40 ok;spread 10 300 ok" \
    "$(as_app "SELECT string_agg(concat_ws(' ', team, count, sum_score, status), ';' ORDER BY team) FROM survey_local_bench")"

say "quotas: refused on Citus tables"
session coord feat_admin -v t="$small" >"$out" <<'SQL'
SELECT tenancy.set_quota(:'t', 'survey', 100);
SELECT tenancy.set_quota(:'t', 'survey_ref', 100);
SELECT 'local quota set: ' || (tenancy.set_quota(:'t', 'survey_local', 100) IS NULL);
SELECT 'quota triggers on the distributed table: ' || count(*) FROM pg_trigger WHERE tgrelid = 'survey'::regclass AND tgname LIKE 'tenancy_quota%';
SELECT 'local quota removed: ' || (tenancy.set_quota(:'t', 'survey_local', NULL) IS NULL);
SQL
expect "set_quota refuses a distributed and a reference table with 0A000, and works on a local one" <<'EOF'
ERROR:  0A000
ERROR:  0A000
local quota set: true
quota triggers on the distributed table: 0
local quota removed: true
EOF

say "require_context through the coordinator and on a worker"
session coord feat_app >"$out" <<'SQL'
SET tenancy.require_context = on;
SELECT 'session-scoped: ' || count(*) FROM survey;
RESET tenancy.require_context;
BEGIN;
SET LOCAL tenancy.require_context = on;
SELECT 'transaction-scoped: ' || count(*) FROM survey;
ROLLBACK;
SELECT 'off: ' || count(*) FROM survey;
SQL
expect "require_context: a query on a distributed table without a context raises 55000" <<'EOF'
ERROR:  55000
ERROR:  55000
off: 0
EOF
value coord "ALTER ROLE feat_app SET tenancy.require_context = on" >/dev/null
for n in coord worker1; do
    session "$n" feat_app >"$out" <<'SQL'
SELECT count(*) FROM survey;
SQL
    expect "require_context set by ALTER ROLE on the coordinator holds on $n" <<'EOF'
ERROR:  55000
EOF
done
value coord "ALTER ROLE feat_app RESET tenancy.require_context" >/dev/null

say "MERGE into a distributed protected table"
session coord feat_app -v small="$smalltok" -v other="$big" >"$out" <<'SQL'
BEGIN;
SELECT tenancy.set_context(:'small') IS NOT NULL AS set \g /dev/null
MERGE INTO survey s USING (SELECT 9001::bigint AS id, :'other'::text AS tenant_id) v ON s.tenant_id = v.tenant_id AND s.id = v.id
WHEN NOT MATCHED THEN INSERT VALUES (v.id, v.tenant_id, 1, 'merged', 1);
ROLLBACK;
BEGIN;
SELECT tenancy.set_context(:'small') IS NOT NULL AS set \g /dev/null
MERGE INTO survey s USING (SELECT :'other'::text AS tenant_id) v ON s.tenant_id = v.tenant_id
WHEN MATCHED THEN UPDATE SET score = 0;
ROLLBACK;
BEGIN;
SELECT tenancy.set_context(:'small') IS NOT NULL AS set \g /dev/null
MERGE INTO survey s USING survey_local v ON s.tenant_id = v.tenant_id AND s.id = v.id
WHEN MATCHED THEN DELETE;
ROLLBACK;
SQL
# Citus refuses it (the policy calls a STABLE function, and Citus plans MERGE into its tables
# only with IMMUTABLE ones), before any row is read or written.
expect "MERGE into a distributed protected table is refused by Citus" <<'EOF'
ERROR:  XX000
ERROR:  XX000
ERROR:  XX000
EOF
same "... and wrote nothing" "48 0" "$(value coord "SELECT count(*) || ' ' || count(*) FILTER (WHERE score = 0 OR team = 'merged') FROM survey")"

say "feature-gated tables"
on coord -q >/dev/null <<'SQL'
CREATE TABLE payslips (id bigint, tenant_id text NOT NULL, amount int, PRIMARY KEY (tenant_id, id));
SELECT create_distributed_table('payslips', 'tenant_id', colocate_with => 'survey');
CREATE TABLE payslips_local (id bigint, tenant_id text NOT NULL, amount int, PRIMARY KEY (tenant_id, id));
SQL
session coord postgres >"$out" <<'SQL'
SELECT tenancy.protect('payslips', feature => 'payroll');
SELECT 'local' FROM (SELECT tenancy.protect('payslips_local', feature => 'payroll')) p;
SQL
session coord feat_admin -v big="$big" >>"$out" <<'SQL'
SELECT 'granted' FROM (SELECT tenancy.grant_feature(:'big', 'payroll')) g;
SQL
expect "protect(feature) refuses a distributed table; grant_feature works on Citus" <<'EOF'
ERROR:  0A000
local
granted
EOF
on coord -q -c "INSERT INTO payslips_local VALUES (1, '$big', 100), (2, '$small', 200)" -c "GRANT SELECT ON payslips_local TO feat_app" >/dev/null
session coord feat_app -v big="$bigtok" -v small="$smalltok" >"$out" <<'SQL'
BEGIN;
SELECT tenancy.set_context(:'big') IS NOT NULL AS set \g /dev/null
SELECT 'entitled: ' || count(*) FROM payslips_local;
COMMIT;
BEGIN;
SELECT tenancy.set_context(:'small') IS NOT NULL AS set \g /dev/null
SELECT 'not entitled: ' || count(*) FROM payslips_local;
COMMIT;
SQL
expect "a feature-gated local table in a Citus database: entitlements read from the reference table" <<'EOF'
entitled: 1
not entitled: 0
EOF
# tenancy.entitled() in a tenant's query on a distributed table runs on the shard and reads
# the entitlements reference table from there.
session coord feat_app -v big="$bigtok" -v small="$smalltok" >"$out" <<'SQL'
BEGIN;
SELECT tenancy.set_context(:'big') IS NOT NULL AS set \g /dev/null
SELECT 'entitled, in a query on a distributed table: ' || count(*) FROM survey WHERE tenancy.entitled('payroll');
COMMIT;
BEGIN;
SELECT tenancy.set_context(:'small') IS NOT NULL AS set \g /dev/null
SELECT 'not entitled, in a query on a distributed table: ' || count(*) FROM survey WHERE tenancy.entitled('payroll');
COMMIT;
SQL
expect "tenancy.entitled() inside a query on a distributed table" <<'EOF'
entitled, in a query on a distributed table: 22
not entitled, in a query on a distributed table: 0
EOF
citus_rule() { value coord "SELECT coalesce(string_agg(severity || ' ' || object || ': ' || coalesce(fix, '-'), '; ' ORDER BY object), 'none') FROM tenancy.check() WHERE rule = '$1'"; }
same "check(): no citus_feature_gate finding for a gated local table" none "$(citus_rule citus_feature_gate)"
on coord -q -c "SELECT create_distributed_table('payslips_local', 'tenant_id', colocate_with => 'survey')" >/dev/null
same "check(): a gated table distributed afterwards is critical (its shards have a permissive gate)" \
    "critical public.payslips_local: SELECT undistribute_table('public.payslips_local'); SELECT tenancy.protect('public.payslips_local', 'tenant_id', NULL, 'payroll');" \
    "$(citus_rule citus_feature_gate)"
same "... which is why: the shards' feature policy is permissive" t \
    "$(shard_value worker1 "SELECT bool_and(polpermissive) FROM pg_policy WHERE polname = 'tenancy_feature' AND polrelid::regclass::text ~ '^payslips_local_[0-9]+$'")"
on coord -q -c "$(value coord "SELECT fix FROM tenancy.check() WHERE rule = 'citus_feature_gate'")" >/dev/null
same "check(): the fix clears it" none "$(citus_rule citus_feature_gate)"
same "... and the table is local, protected, with a restrictive gate again" "payroll false" \
    "$(value coord "SELECT p.feature || ' ' || pol.polpermissive FROM tenancy.protected_tables p JOIN pg_policy pol ON pol.polrelid = p.tbl AND pol.polname = 'tenancy_feature' WHERE p.tbl = 'payslips_local'::regclass AND NOT EXISTS (SELECT 1 FROM pg_dist_partition d WHERE d.logicalrelid = p.tbl)")"
on coord -q -c "GRANT SELECT ON payslips_local TO feat_app" >/dev/null
session coord feat_app -v big="$bigtok" -v small="$smalltok" >"$out" <<'SQL'
BEGIN;
SELECT tenancy.set_context(:'big') IS NOT NULL AS set \g /dev/null
SELECT 'entitled: ' || count(*) FROM payslips_local;
COMMIT;
BEGIN;
SELECT tenancy.set_context(:'small') IS NOT NULL AS set \g /dev/null
SELECT 'not entitled: ' || count(*) FROM payslips_local;
COMMIT;
SQL
expect "... and gates reads again" <<'EOF'
entitled: 1
not entitled: 0
EOF

say "export and purge of a tenant over distributed, reference and local tables"
on coord -q -c "SELECT tenancy.deactivate_tenant('$small')" >/dev/null
session coord feat_admin -v t="$small" >"$out" <<'SQL'
SELECT table_name || ' ' || count(*) FROM tenancy.export_tenant(:'t') GROUP BY table_name ORDER BY table_name;
SQL
expect "export_tenant reads the tenant's rows of every kind of table" <<EOF
public.payslips_local 1
public.survey 4
public.survey_local 4
public.survey_ref 4
EOF
on coord -q >/dev/null <<'SQL'
CREATE ROLE feat_owner NOLOGIN;
CREATE TABLE owned (id bigint, tenant_id text NOT NULL, PRIMARY KEY (tenant_id, id));
ALTER TABLE owned OWNER TO feat_owner;
SELECT create_distributed_table('owned', 'tenant_id', colocate_with => 'survey');
SELECT tenancy.protect('owned');
SQL
on coord -q -c "INSERT INTO owned VALUES (1, '$small'), (2, '$big')" >/dev/null
session coord feat_admin -v t="$small" >"$out" <<'SQL'
SELECT count(*) FROM tenancy.export_tenant(:'t');
SELECT * FROM tenancy.purge_tenant(:'t', 'purge ' || :'t');
SQL
expect "export and purge refuse a Citus table whose owner cannot log in" <<'EOF'
ERROR:  0A000
ERROR:  0A000
EOF
# With LOGIN but subject to row level security: on the workers the forced policies would hide
# the tenant's rows from the owner (the owner step's exemption stays on the coordinator), and
# the export would be short.
on coord -q -c "ALTER ROLE feat_owner LOGIN" >/dev/null
session coord feat_admin -v t="$small" >"$out" <<'SQL'
SELECT count(*) FROM tenancy.export_tenant(:'t');
SELECT * FROM tenancy.purge_tenant(:'t', 'purge ' || :'t');
SQL
expect "export and purge refuse a Citus table whose owner is subject to row level security" <<'EOF'
ERROR:  0A000
ERROR:  0A000
EOF
on coord -q -c "ALTER ROLE feat_owner BYPASSRLS" >/dev/null
session coord feat_admin -v t="$small" >"$out" <<'SQL'
SELECT 'export: ' || count(*) FROM tenancy.export_tenant(:'t');
SELECT * FROM tenancy.purge_tenant(:'t', 'purge ' || :'t');
SQL
expect "with LOGIN and BYPASSRLS export reads every row; purge refuses Citus tables of two owners" <<'EOF'
export: 14
ERROR:  0A000
EOF
same "... and deleted nothing" "4 4 4 1" \
    "$(value coord "SELECT concat_ws(' ', (SELECT count(*) FROM survey WHERE tenant_id = '$small'), (SELECT count(*) FROM survey_ref WHERE tenant_id = '$small'), (SELECT count(*) FROM survey_local WHERE tenant_id = '$small'), (SELECT count(*) FROM owned WHERE tenant_id = '$small'))")"
on coord -q -c "ALTER TABLE owned OWNER TO postgres" >/dev/null
session coord feat_admin -v t="$small" >"$out" <<'SQL'
SELECT table_name || ' ' || deleted FROM tenancy.purge_tenant(:'t', 'purge ' || :'t') ORDER BY table_name;
SQL
expect "purge_tenant deletes the tenant's rows of every kind of table" <<'EOF'
public.owned 1
public.payslips_local 1
public.survey 4
public.survey_local 4
public.survey_ref 4
EOF
same "... on every node: no row of the tenant left, the other tenants' rows kept" "0 0 0 1 44" \
    "$(value coord "SELECT concat_ws(' ', (SELECT count(*) FROM survey WHERE tenant_id = '$small'), (SELECT count(*) FROM survey_ref WHERE tenant_id = '$small'), (SELECT count(*) FROM owned WHERE tenant_id = '$small'), (SELECT count(*) FROM owned), (SELECT count(*) FROM survey))")"

say "the audit trail lives on the coordinator"
on coord -q -c "SELECT tenancy.create_tenant('audited')" -c "SELECT tenancy.deactivate_tenant('audited')" -c "SELECT tenancy.reactivate_tenant('audited')" >/dev/null
audtok="$(token audited)"
session coord feat_app -v t="$audtok" >"$out" <<'SQL'
BEGIN;
SELECT tenancy.set_context(:'t') IS NOT NULL AS set \g /dev/null
SELECT tenancy.audit('invoice.approved', '{"n": 1}') > 0;
COMMIT;
SQL
session coord feat_support >"$out.support" <<'SQL'
SELECT tenancy.begin_support('audited', 'INC-1: a look', 5) IS NOT NULL;
SELECT tenancy.end_support();
SQL
cat "$out.support" >>"$out"
rm -f "$out.support"
expect "an application event and a support session through the coordinator" <<'EOF'
t
t

EOF
same "one chain for the tenant on the coordinator: registry writes, the application's event, the support session" \
    "tenant_created,tenant_deactivated,tenant_reactivated,invoice.approved,support_begun,support_ended" \
    "$(value coord "SELECT string_agg(event, ',' ORDER BY id) FROM tenancy.audit_log WHERE tenant_id = 'audited'")"
same "... and it verifies" t "$(value coord "SELECT ok FROM tenancy.verify_audit('audited')")"
for w in worker1 worker2; do
    same "no audit row of the tenant on $w" 0 "$(value "$w" "SELECT count(*) FROM tenancy.audit_log WHERE tenant_id = 'audited'")"
done
carrier="$(session coord feat_app -v t="$audtok" <<'SQL'
BEGIN;
SELECT tenancy.set_context(:'t') IS NOT NULL \g /dev/null
SELECT current_setting('tenancy.context');
COMMIT;
SQL
)"
session worker1 feat_app -v c="$carrier" >"$out" <<'SQL'
BEGIN;
SET LOCAL tenancy.context = :'c';
SELECT tenancy.audit('invoice.approved', '{"n": 2}');
ROLLBACK;
BEGIN;
SET LOCAL tenancy.context = 'forged';
SELECT count(*) FROM survey;
ROLLBACK;
SQL
expect "on a worker: tenancy.audit() is refused (the chain is the coordinator's), a forged carrier gets 28000" <<'EOF'
ERROR:  0A000
ERROR:  28000
EOF
same "the worker's refusal is in the worker's server log" 1 \
    "$(grep -c '"event":"context_refused".*"session_user":"feat_app"' "$(citus_pgdata worker1)/server.log" || true)"
same "... and counted by the worker's tenancy.stats(), not the coordinator's" "1 0" \
    "$(value worker1 "SELECT coalesce(sum(refused), 0) FROM tenancy.stats()") $(value coord "SELECT coalesce(sum(refused), 0) FROM tenancy.stats()")"

say "check(): protected distributed tables not co-located with the tables they reference"
on coord -q >/dev/null <<'SQL'
CREATE TABLE parent (id bigint, tenant_id text NOT NULL, PRIMARY KEY (tenant_id, id));
SELECT create_distributed_table('parent', 'tenant_id', shard_count => 4);
SELECT tenancy.protect('parent');
CREATE TABLE child (id bigint, tenant_id text NOT NULL, parent_id bigint, PRIMARY KEY (tenant_id, id));
SELECT create_distributed_table('child', 'tenant_id', colocate_with => 'parent');
SELECT tenancy.protect('child');
ALTER TABLE child ADD CONSTRAINT child_parent FOREIGN KEY (tenant_id, parent_id) REFERENCES parent (tenant_id, id);
SQL
same "co-located tables: no citus_not_colocated finding" none "$(citus_rule citus_not_colocated)"
on coord -q -c "SELECT update_distributed_table_colocation('child', colocate_with => 'none')" >/dev/null
same "check() reports a foreign key between protected tables that are not co-located" \
    "high public.child.child_parent: SELECT update_distributed_table_colocation('public.child', colocate_with => 'public.parent');" \
    "$(citus_rule citus_not_colocated)"
on coord -q -c "$(value coord "SELECT fix FROM tenancy.check() WHERE rule = 'citus_not_colocated'")" >/dev/null
same "the fix co-locates them" none "$(citus_rule citus_not_colocated)"
on coord -q >/dev/null <<'SQL'
CREATE TABLE child2 (id bigint, tenant_id text NOT NULL, parent_id bigint, PRIMARY KEY (tenant_id, id));
SELECT create_distributed_table('child2', 'tenant_id', shard_count => 8);
SELECT tenancy.protect('child2');
SET citus.enable_ddl_propagation = off;
ALTER TABLE child2 ADD CONSTRAINT child2_parent FOREIGN KEY (tenant_id, parent_id) REFERENCES parent (tenant_id, id);
RESET citus.enable_ddl_propagation;
SQL
same "with another shard count, the fix moves the table to the parent's shard count" \
    "high public.child2.child2_parent: SELECT alter_distributed_table('public.child2', shard_count := 4, colocate_with := 'public.parent');" \
    "$(citus_rule citus_not_colocated)"
same "... and the detail says why" t \
    "$(value coord "SELECT detail LIKE 'references public.parent, which is distributed but not co-located with public.child2:%' FROM tenancy.check() WHERE rule = 'citus_not_colocated'")"
on coord -q -c "DROP TABLE child2" >/dev/null

citus_done
