#!/usr/bin/env bash
# Usage: scripts/bench-deid.sh 15|18   (N=1000000 ROUNDS=5 by default)
# Throughput of tenancy.pseudonymize on one core: release build, throwaway cluster, JIT and
# parallel query off, as an app role. Arms are interleaved (baseline, text, bigint, pool form,
# then again) and the median of ROUNDS is reported; "net" subtracts the baseline (generating
# and counting the same values without pseudonymising them).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
source "$(dirname "$0")/lib.sh"

ver="${1:?usage: scripts/bench-deid.sh 15|18}"
N="${N:-1000000}"
ROUNDS="${ROUNDS:-5}"
install_extension "$ver" --release

CL_PGDATA="$RUN_DIR/bench-deid-pg$ver"
CL_PORT=$((ROOT_REGRESS_PORT_BASE + 40 + ver))
trap 'cluster_down' EXIT
trap 'exit 130' INT TERM

cluster_up "max_parallel_workers_per_gather = 0" "autovacuum = off"
cluster_psql -v ON_ERROR_STOP=1 -q -d postgres <<SQL
SET client_min_messages = warning;
CREATE EXTENSION pg_tenancy;
DROP ROLE IF EXISTS bench_app;
CREATE ROLE bench_app;
SELECT tenancy.grant_app('bench_app') \g /dev/null
SELECT tenancy.create_tenant('acme') \g /dev/null
SELECT tenancy.add_pseudonym_secret('bench') \g /dev/null
SQL

say "pseudonymize: $N values x $ROUNDS rounds, interleaved, median (PostgreSQL $ver, one core)"
cluster_psql -v ON_ERROR_STOP=1 -q -d postgres <<SQL
CREATE FUNCTION pg_temp.seconds(q text) RETURNS float8 LANGUAGE plpgsql AS \$\$
DECLARE t0 timestamptz;
BEGIN
    t0 := clock_timestamp();
    EXECUTE q;
    RETURN extract(epoch FROM clock_timestamp() - t0);
END \$\$;
CREATE TEMP TABLE arms (arm int, name text, q text);
INSERT INTO arms VALUES
  (0, 'baseline (g::text, no pseudonym)', 'SELECT count(g::text) FROM generate_series(1, $N) g'),
  (1, 'pseudonymize(text)',  \$q\$SELECT count(tenancy.pseudonymize(g::text, 'employee')) FROM generate_series(1, $N) g\$q\$),
  (2, 'pseudonymize(bigint)', \$q\$SELECT count(tenancy.pseudonymize(g::bigint, 'employee')) FROM generate_series(1, $N) g\$q\$),
  (3, 'pseudonymize_for_pool(text)', \$q\$SELECT count(tenancy.pseudonymize_for_pool(g::text, 'employee')) FROM generate_series(1, $N) g\$q\$);
CREATE TEMP TABLE timings (arm int, round int, s float8);
GRANT SELECT ON arms TO bench_app;
GRANT INSERT ON timings TO bench_app;
BEGIN;
SELECT tenancy.set_tenant('acme') \g /dev/null
SET LOCAL ROLE bench_app;
-- Warm-up: loads the domain keys and the carrier verification once.
SELECT pg_temp.seconds(q) FROM arms WHERE arm > 0 \g /dev/null
DO \$\$
BEGIN
    FOR r IN 1..$ROUNDS LOOP
        INSERT INTO timings SELECT arm, r, pg_temp.seconds(q) FROM arms ORDER BY arm;
    END LOOP;
END \$\$;
COMMIT;
\pset footer off
WITH med AS (
    SELECT arm, percentile_cont(0.5) WITHIN GROUP (ORDER BY s) AS s, min(s) AS lo, max(s) AS hi
      FROM timings GROUP BY arm
)
SELECT a.name AS arm,
       round(m.s::numeric, 3) AS median_s,
       round(m.lo::numeric, 3) || '-' || round(m.hi::numeric, 3) AS min_max_s,
       round($N / m.s) AS values_per_s,
       CASE WHEN a.arm > 0 THEN round(((m.s - b.s) / $N * 1e9)::numeric) END AS net_ns_per_value
  FROM med m JOIN arms a USING (arm) CROSS JOIN (SELECT s FROM med WHERE arm = 0) b
 ORDER BY a.arm;
SQL
