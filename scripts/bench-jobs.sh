#!/usr/bin/env bash
# Usage: scripts/bench-jobs.sh 15|18   (CLIENTS=8 PER_CLIENT=1500 ROUNDS=3 by default)
# What jobs that carry their tenant cost: jobs/s of tenancy.claim_job() + complete_job()
# against a plain `FOR UPDATE SKIP LOCKED` queue table, CLIENTS pgbench workers each, one job
# per transaction, each job deriving one row (into a protected table for pg_tenancy, stamped
# from the claim's context; into a plain table with the tenant copied from the job for the
# plain queue). Jobs of 50 tenants, enqueued beforehand; both queues keep their done rows, as
# tenancy.jobs does. Release build, throwaway cluster, autovacuum off. The arms alternate
# (plain, pg_tenancy, plain, ...) and each reports the median of ROUNDS. Target (issue 16):
# pg_tenancy at least 0.8x the plain queue.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
source "$(dirname "$0")/lib.sh"

ver="${1:?usage: scripts/bench-jobs.sh 15|18}"
CLIENTS="${CLIENTS:-8}"
PER_CLIENT="${PER_CLIENT:-1500}"
ROUNDS="${ROUNDS:-3}"
install_extension "$ver" --release

CL_PGDATA="$RUN_DIR/bench-jobs-pg$ver"
CL_PORT=$((ROOT_REGRESS_PORT_BASE + 260 + ver))
work="$(mktemp -d)"
trap 'cluster_down; rm -rf "$work"' EXIT
trap 'exit 130' INT TERM

jobs_per_round=$((CLIENTS * PER_CLIENT))
cluster_up "autovacuum = off" "max_connections = 50"
cluster_psql -v ON_ERROR_STOP=1 -q -d postgres <<SQL
SET client_min_messages = warning;
CREATE EXTENSION pg_tenancy;
DROP ROLE IF EXISTS bench_worker;
CREATE ROLE bench_worker LOGIN;
SELECT tenancy.grant_worker('bench_worker') \g /dev/null
SELECT tenancy.create_tenant('t' || n) FROM generate_series(1, 50) n \g /dev/null
-- pg_tenancy's arm: jobs enqueued under each tenant's context, a protected output table.
CREATE TABLE job_out (tenant_id text NOT NULL, job_id bigint NOT NULL, n int);
SELECT tenancy.protect('job_out') \g /dev/null
GRANT INSERT ON job_out TO bench_worker;
-- The plain arm: the queue a team writes by hand, same columns and index.
CREATE TABLE plain_jobs (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant text NOT NULL, queue text NOT NULL, payload jsonb NOT NULL,
    status text NOT NULL DEFAULT 'queued', attempts int NOT NULL DEFAULT 0,
    run_at timestamptz NOT NULL DEFAULT now(), finished_at timestamptz);
CREATE INDEX plain_jobs_ready ON plain_jobs (queue, run_at, id) WHERE status = 'queued';
CREATE TABLE plain_out (tenant_id text NOT NULL, job_id bigint NOT NULL, n int);
GRANT SELECT, UPDATE ON plain_jobs TO bench_worker;
GRANT INSERT ON plain_out TO bench_worker;
SQL

# enqueue_round: the jobs of one round, for both arms (50 tenants, round robin).
enqueue_round() {
    cluster_psql -v ON_ERROR_STOP=1 -q -d postgres <<SQL
DO \$\$
BEGIN
    FOR t IN 1..50 LOOP
        PERFORM tenancy.set_tenant('t' || t, is_local => false);
        PERFORM tenancy.enqueue('bench', jsonb_build_object('n', i))
           FROM generate_series(1, ($jobs_per_round + 49) / 50) i;
        PERFORM tenancy.clear_context();
    END LOOP;
END \$\$;
INSERT INTO plain_jobs (tenant, queue, payload)
SELECT 't' || (i % 50 + 1), 'bench', jsonb_build_object('n', i) FROM generate_series(1, ($jobs_per_round + 49) / 50 * 50) i;
CHECKPOINT;
SQL
}

cat >"$work/tenancy.sql" <<'SQL'
BEGIN;
SELECT payload FROM tenancy.claim_job('bench') \gset
INSERT INTO job_out (job_id, n) VALUES (tenancy.current_job(), (:payload::jsonb ->> 'n')::int);
SELECT tenancy.complete_job();
COMMIT;
SQL
cat >"$work/plain.sql" <<'SQL'
BEGIN;
UPDATE plain_jobs j SET attempts = j.attempts + 1
 WHERE j.id = (SELECT c.id FROM plain_jobs c
                WHERE c.queue = 'bench' AND c.status = 'queued' AND c.run_at <= now()
                ORDER BY c.run_at, c.id LIMIT 1 FOR UPDATE OF c SKIP LOCKED)
RETURNING j.id, j.tenant, j.payload \gset
INSERT INTO plain_out (tenant_id, job_id, n) VALUES (:tenant, :id, (:payload::jsonb ->> 'n')::int);
UPDATE plain_jobs SET status = 'done', finished_at = clock_timestamp() WHERE id = :id;
COMMIT;
SQL

raw="$work/raw.tsv"
run() { # run ARM ROUND
    local tps
    tps="$(PGHOST=localhost PGPORT="$CL_PORT" "$CL_BINDIR/pgbench" -n -M prepared -t "$PER_CLIENT" \
        -c "$CLIENTS" -j "$CLIENTS" -U bench_worker -f "$work/$1.sql" postgres 2>&1 |
        tee "$work/$1.$2.log" | sed -n 's/^tps = \([0-9.]*\) .*/\1/p' | tail -n 1)" || true
    [ -n "$tps" ] || { cat "$work/$1.$2.log" >&2; die "pgbench produced no tps for $1 round $2"; }
    grep -q "number of failed transactions: 0 " "$work/$1.$2.log" ||
        { cat "$work/$1.$2.log" >&2; die "$1 round $2: failed transactions"; }
    printf '%s\t%s\t%s\n' "$1" "$2" "$tps" >>"$raw"
}

say "jobs/s: pg_tenancy claim_job/complete_job vs a plain SKIP LOCKED queue, $CLIENTS clients x $PER_CLIENT jobs, $ROUNDS rounds alternating, median (PostgreSQL $ver)"
for r in $(seq 1 "$ROUNDS"); do
    enqueue_round
    run plain "$r"
    run tenancy "$r"
done
check_counts="$(cluster_psql -At -q -d postgres -c "SELECT (SELECT count(*) FROM job_out) || ' ' || (SELECT count(*) FROM job_out o JOIN tenancy.jobs j ON j.id = o.job_id WHERE j.tenant = o.tenant_id)")"
read -r outs stamped <<<"$check_counts"
[ "$outs" = $((ROUNDS * jobs_per_round)) ] && [ "$stamped" = "$outs" ] ||
    die "pg_tenancy arm: $outs derived rows, $stamped with their job's tenant; expected $((ROUNDS * jobs_per_round)) each"
python3 - "$raw" <<'PY'
import statistics, sys
arms = {}
for line in open(sys.argv[1]):
    arm, _, tps = line.split("\t")
    arms.setdefault(arm, []).append(float(tps))
plain, ten = statistics.median(arms["plain"]), statistics.median(arms["tenancy"])
print(f"{'arm':<12} {'jobs/s (median)':>16}  rounds")
print(f"{'plain':<12} {plain:>16.0f}  " + ", ".join(f"{x:.0f}" for x in arms["plain"]))
print(f"{'pg_tenancy':<12} {ten:>16.0f}  " + ", ".join(f"{x:.0f}" for x in arms["tenancy"]))
print(f"ratio pg_tenancy/plain: {ten / plain:.2f} (target >= 0.80)")
PY
