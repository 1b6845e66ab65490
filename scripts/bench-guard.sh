#!/usr/bin/env bash
# Usage: scripts/bench-guard.sh 15|18   (N=1000000 NGROUPS=10000 ROUNDS=3 by default)
# What the min-N guard costs: tenancy.guarded_avg against avg() on the same 1M rows, in one
# group and in NGROUPS groups, serial and with two parallel workers. Release build, throwaway
# cluster, JIT and autovacuum off, as an app role. Arms are interleaved (avg, guarded, avg,
# guarded, ...) and each cell reports the median of ROUNDS and the ratio of medians.
# Targets (issue 5): at most 1.5x avg() in one group, at most 2x with 10k groups.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
source "$(dirname "$0")/lib.sh"

ver="${1:?usage: scripts/bench-guard.sh 15|18}"
N="${N:-1000000}"
NGROUPS="${NGROUPS:-10000}"
ROUNDS="${ROUNDS:-3}"
install_extension "$ver" --release

CL_PGDATA="$RUN_DIR/bench-guard-pg$ver"
CL_PORT=$((ROOT_REGRESS_PORT_BASE + 50 + ver))
trap 'cluster_down' EXIT
trap 'exit 130' INT TERM

cluster_up "autovacuum = off" "max_worker_processes = 8" "max_parallel_workers = 4"
cluster_psql -v ON_ERROR_STOP=1 -q -d postgres <<SQL
SET client_min_messages = warning;
CREATE EXTENSION pg_tenancy;
DROP ROLE IF EXISTS bench_app;
CREATE ROLE bench_app;
SELECT tenancy.grant_app('bench_app') \g /dev/null
-- 1M salaries: NGROUPS job/region cells of $N/$NGROUPS people, 20 companies, one row a person.
CREATE TABLE bench_pay AS
SELECT i AS person, i % $NGROUPS AS cell, 'c' || (i % 20) AS company,
       (30000 + (i::bigint * 7919) % 90000)::numeric(12,2) AS salary,
       (30000 + (i::bigint * 7919) % 90000)::float8 AS salary_f8
  FROM generate_series(1, $N) i;
ALTER TABLE bench_pay SET (parallel_workers = 2);
VACUUM ANALYZE bench_pay;
GRANT SELECT ON bench_pay TO bench_app;
SQL

say "guarded_avg vs avg: $N rows, 1 and $NGROUPS groups, serial and 2 workers, $ROUNDS rounds interleaved, median (PostgreSQL $ver)"
cluster_psql -v ON_ERROR_STOP=1 -q -d postgres <<SQL
CREATE FUNCTION pg_temp.seconds(q text, workers int) RETURNS float8 LANGUAGE plpgsql AS \$\$
DECLARE t0 timestamptz;
BEGIN
    PERFORM pg_catalog.set_config('max_parallel_workers_per_gather', workers::text, true);
    t0 := clock_timestamp();
    EXECUTE q;
    RETURN extract(epoch FROM clock_timestamp() - t0);
END \$\$;
CREATE TEMP TABLE arms (arm int, shape text, value text, fn text, q text);
INSERT INTO arms VALUES
  (1, '1 group', 'numeric', 'avg', 'SELECT avg(salary) FROM bench_pay'),
  (2, '1 group', 'numeric', 'guarded', 'SELECT tenancy.guarded_avg(salary, person) FROM bench_pay'),
  (3, '1 group', 'float8', 'avg', 'SELECT avg(salary_f8) FROM bench_pay'),
  (4, '1 group', 'float8', 'guarded', 'SELECT tenancy.guarded_avg(salary_f8, person) FROM bench_pay'),
  (5, '1 group', 'numeric pooled', 'avg', 'SELECT avg(salary) FROM bench_pay'),
  (6, '1 group', 'numeric pooled', 'guarded', 'SELECT tenancy.guarded_avg(salary, person, company) FROM bench_pay'),
  (7, '$NGROUPS groups', 'numeric', 'avg', 'SELECT count(a) FROM (SELECT avg(salary) a FROM bench_pay GROUP BY cell) s'),
  (8, '$NGROUPS groups', 'numeric', 'guarded', 'SELECT count(a) FROM (SELECT tenancy.guarded_avg(salary, person) a FROM bench_pay GROUP BY cell) s'),
  (9, '$NGROUPS groups', 'float8', 'avg', 'SELECT count(a) FROM (SELECT avg(salary_f8) a FROM bench_pay GROUP BY cell) s'),
  (10, '$NGROUPS groups', 'float8', 'guarded', 'SELECT count(a) FROM (SELECT tenancy.guarded_avg(salary_f8, person) a FROM bench_pay GROUP BY cell) s'),
  (11, '$NGROUPS groups', 'numeric pooled', 'avg', 'SELECT count(a) FROM (SELECT avg(salary) a FROM bench_pay GROUP BY cell) s'),
  (12, '$NGROUPS groups', 'numeric pooled', 'guarded', 'SELECT count(a) FROM (SELECT tenancy.guarded_avg(salary, person, company) a FROM bench_pay GROUP BY cell) s');
CREATE TEMP TABLE timings (arm int, workers int, round int, s float8);
GRANT SELECT ON arms TO bench_app;
GRANT INSERT ON timings TO bench_app;
SET jit = off;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET ROLE bench_app;
-- Warm-up: the table in shared buffers, the library loaded.
SELECT pg_temp.seconds(q, 0) FROM arms WHERE arm IN (1, 2) \g /dev/null
DO \$\$
BEGIN
    FOR r IN 1..$ROUNDS LOOP
        FOR w IN 0..2 BY 2 LOOP
            INSERT INTO timings SELECT arm, w, r, pg_temp.seconds(q, w) FROM arms ORDER BY arm;
        END LOOP;
    END LOOP;
END \$\$;
RESET ROLE;
\pset footer off
WITH med AS (
    SELECT arm, workers, percentile_cont(0.5) WITHIN GROUP (ORDER BY s) AS s, min(s) AS lo, max(s) AS hi
      FROM timings GROUP BY arm, workers
)
SELECT a.shape, a.value, CASE m.workers WHEN 0 THEN 'serial' ELSE m.workers || ' workers' END AS plan,
       round((b.s * 1000)::numeric) AS avg_ms, round((m.s * 1000)::numeric) AS guarded_ms,
       round((m.lo * 1000)::numeric) || '-' || round((m.hi * 1000)::numeric) AS guarded_min_max_ms,
       round((m.s / b.s)::numeric, 2) AS ratio
  FROM med m JOIN arms a USING (arm)
  JOIN med b ON b.arm = a.arm - 1 AND b.workers = m.workers
 WHERE a.fn = 'guarded'
 ORDER BY a.shape, a.value, m.workers;
SQL

say "plans of the $NGROUPS-group queries (serial): hash or sort aggregation"
cluster_psql -v ON_ERROR_STOP=1 -q -d postgres <<SQL
SET max_parallel_workers_per_gather = 0;
SET jit = off;
EXPLAIN (COSTS OFF) SELECT avg(salary) FROM bench_pay GROUP BY cell;
EXPLAIN (COSTS OFF) SELECT tenancy.guarded_avg(salary, person) FROM bench_pay GROUP BY cell;
EXPLAIN (COSTS OFF) SELECT tenancy.guarded_avg(salary, person, company) FROM bench_pay GROUP BY cell;
SQL
