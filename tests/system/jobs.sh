#!/usr/bin/env bash
# Usage: tests/system/jobs.sh 15|18
# Jobs that carry their tenant (docs/jobs.md) under real concurrency: 10,000 jobs of 50
# tenants, enqueued under each tenant's own context, drained by 8 concurrent psycopg workers
# (tests/system/client/job_workers.py) that name no tenant, while one more worker is killed
# mid-job with pg_terminate_backend. Afterwards: every job done exactly once (one derived row
# per job, none lost, none twice), every derived row stamped with its job's tenant and its
# processing having seen that tenant's rows only; the killed worker's job retried, its
# uncommitted derived row gone; a job carrier copied into another session refused (28000).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
source "$(dirname "$0")/lib.sh"

ver="${1:?usage: tests/system/jobs.sh 15|18}"
install_extension "$ver"
CL_PGDATA="$RUN_DIR/jobs-pg$ver"
CL_PORT=$((ROOT_REGRESS_PORT_BASE + 240 + ver))
trap 'cluster_down' EXIT
trap 'exit 130' INT TERM

TENANTS=50
PER_TENANT=200
WORKERS=8
cluster_up "max_connections = 50"
conninfo() { echo "host=localhost port=$CL_PORT user=${2:-postgres} dbname=$1"; }
db() { cluster_psql -v ON_ERROR_STOP=1 -q -At -d jobs_test "$@"; }
cluster_psql -d postgres -q -v ON_ERROR_STOP=1 -c "CREATE DATABASE jobs_test"
db >/dev/null <<SQL
CREATE EXTENSION pg_tenancy;
CREATE ROLE job_enqueuer LOGIN;
CREATE ROLE job_worker LOGIN;
SELECT tenancy.grant_trusted('job_enqueuer');
SELECT tenancy.grant_worker('job_worker');
SELECT tenancy.create_tenant(pg_catalog.format('t%s', n)) FROM generate_series(1, $TENANTS) n;
-- What processing reads: one row per tenant, so a job that saw another tenant's row shows it.
CREATE TABLE sources (tenant_id text NOT NULL, label text);
INSERT INTO sources SELECT pg_catalog.format('t%s', n), 'source' FROM generate_series(1, $TENANTS) n;
-- What processing derives, stamped from the job's context.
CREATE TABLE results (
    id              bigint GENERATED ALWAYS AS IDENTITY,
    tenant_id       text NOT NULL,
    job_id          bigint NOT NULL,
    expected_tenant text NOT NULL,
    seen_tenants    text,
    seen_rows       bigint,
    worker          int
);
SELECT tenancy.protect('sources'), tenancy.protect('results');
GRANT SELECT ON sources TO job_worker;
GRANT INSERT ON results TO job_worker;
SQL

say "enqueueing $((TENANTS * PER_TENANT)) jobs: $PER_TENANT per tenant, each under its tenant's own context"
for n in $(seq 1 "$TENANTS"); do
    cat <<SQL
BEGIN;
SELECT tenancy.set_tenant('t$n', 'svc') \g /dev/null
SELECT count(tenancy.enqueue('work', jsonb_build_object('tenant', 't$n', 'i', i))) FROM generate_series(1, $PER_TENANT) i \g /dev/null
COMMIT;
SQL
done | PGHOST=localhost PGPORT="$CL_PORT" "$CL_BINDIR/psql" -X -q -At -v ON_ERROR_STOP=1 -U job_enqueuer -d jobs_test
check "jobs queued" "$((TENANTS * PER_TENANT))" "$(db -c "SELECT count(*) FROM tenancy.jobs WHERE status = 'queued'")"
check "every job carries the tenant it was enqueued under" 0 \
    "$(db -c "SELECT count(*) FROM tenancy.jobs WHERE tenant <> payload->>'tenant' OR actor <> 'svc'")"

say "$WORKERS workers drain the queue while one more is killed mid-job"
rc=0
report="$(python3 "$REPO_ROOT/tests/system/client/job_workers.py" \
    "$(conninfo jobs_test job_worker)" "$(conninfo jobs_test)" "$WORKERS")" || rc=$?
say "workers: $report"
[ "$rc" = 0 ] || die "a worker failed (exit $rc): see its errors above"
field() { python3 -c 'import json,sys; v=json.loads(sys.argv[1]).get(sys.argv[2]); print(str(v).lower() if isinstance(v,bool) else v)' "$report" "$1"; }
victim="$(field victim_job)"
check "the victim was terminated mid-job" true "$(field terminated)"
check "jobs completed by the workers" "$((TENANTS * PER_TENANT))" "$(field completed)"
check "every worker took part" "$WORKERS" \
    "$(python3 -c 'import json,sys; print(sum(1 for v in json.loads(sys.argv[1])["per_worker"].values() if v > 0))' "$report")"

check "every job is done" "$((TENANTS * PER_TENANT)) 0 0" \
    "$(db -c "SELECT count(*) FILTER (WHERE status = 'done') || ' ' || count(*) FILTER (WHERE status = 'queued') || ' ' || count(*) FILTER (WHERE status = 'dead') FROM tenancy.jobs")"
check "exactly one derived row per job" "$((TENANTS * PER_TENANT)) $((TENANTS * PER_TENANT))" \
    "$(db -c "SELECT count(*) || ' ' || count(DISTINCT job_id) FROM results")"
check "no derived row without its job" 0 \
    "$(db -c "SELECT count(*) FROM results r WHERE NOT EXISTS (SELECT FROM tenancy.jobs j WHERE j.id = r.job_id)")"
check "every derived row carries its job's tenant" 0 \
    "$(db -c "SELECT count(*) FROM results r JOIN tenancy.jobs j ON j.id = r.job_id
               WHERE r.tenant_id <> j.tenant OR r.expected_tenant <> j.tenant")"
check "every job's processing saw its own tenant's rows only" 0 \
    "$(db -c "SELECT count(*) FROM results r WHERE r.seen_tenants IS DISTINCT FROM r.tenant_id OR r.seen_rows <> 1")"
check "the killed worker's row is gone" 0 "$(db -c "SELECT count(*) FROM results WHERE worker = -1")"
check "the killed worker's job was retried and done once" "done 1 1" \
    "$(db -c "SELECT j.status || ' ' || j.attempts || ' ' || (SELECT count(*) FROM results r WHERE r.job_id = j.id)
               FROM tenancy.jobs j WHERE j.id = $victim")"

# A job's carrier belongs to the transaction that claimed the job: copied into another
# session, it is refused.
db >/dev/null <<'SQL'
BEGIN;
SELECT tenancy.set_tenant('t1') \g /dev/null
SELECT tenancy.enqueue('late', '{}') \g /dev/null
COMMIT;
SQL
carrier="$(PGHOST=localhost PGPORT="$CL_PORT" "$CL_BINDIR/psql" -X -q -At -v ON_ERROR_STOP=1 -U job_worker -d jobs_test <<'SQL'
BEGIN;
SELECT 1 FROM tenancy.claim_job('late') \g /dev/null
SELECT current_setting('tenancy.context');
ROLLBACK;
SQL
)"
expect_error "a job's carrier in another session" 28000 \
    "pg_tenancy: tenant context refused: it is a job's context, valid only in the transaction that claimed the job" \
    env PGHOST=localhost PGPORT="$CL_PORT" "$CL_BINDIR/psql" -X -q -At -U job_worker -d jobs_test \
    -c "SET tenancy.context = '$carrier'" -c "SELECT count(*) FROM sources"

[ "$fail" = 0 ] || die "jobs checks failed on PostgreSQL $ver"
say "jobs: all checks passed on PostgreSQL $ver"
