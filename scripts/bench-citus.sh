#!/usr/bin/env bash
# Usage: scripts/bench-citus.sh   (make bench; BENCH_SECONDS, BENCH_ROUNDS, BENCH_CLIENTS tune it)
# What routing buys on Citus (docs/scale-out.md, "Routing"): pgbench point lookups through the
# coordinator of a coordinator + 2 workers cluster (PostgreSQL 15, release build), three arms
# interleaved in every round, each as the application role with a verified context per
# transaction on a protected distributed table (32 shards):
#   routed    the query names no tenant; pg_tenancy's planner hook routes it to one shard
#   explicit  the application names the tenant (`AND tenant_id = $2`), routing off: Citus
#             prunes on the parameter itself (one task)
#   fanout    the query names no tenant, routing off (`tenancy.citus_routing = off`): the
#             isolation policy alone, run on every shard
# Two workloads: each transaction draws a tenant at random (a pool serving many tenants: the
# routed arm's prepared statement is re-planned whenever the tenant changes), and each client
# keeps one tenant (no re-planning). Targets (issue #15): routed at
# least 0.9 of explicit and at least 5x fanout. Skips (exit 0) without Citus. Prints a markdown
# table; raw figures in target/bench/citus-raw.tsv. KEEP=1 leaves the cluster running.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
source "$(dirname "$0")/lib.sh"
# shellcheck source-path=SCRIPTDIR/../tests/system
source "$REPO_ROOT/tests/system/citus-lib.sh"

secs="${BENCH_SECONDS:-5}"
rounds="${BENCH_ROUNDS:-3}"
clients="${BENCH_CLIENTS:-2 8}"
tenants=100
accts=1000
out_dir="$REPO_ROOT/target/bench"
mkdir -p "$out_dir"
raw="$out_dir/citus-raw.tsv"
: >"$raw"

rc=0
"$REPO_ROOT/scripts/citus-install.sh" || rc=$?
if [ "$rc" -eq 3 ]; then
    say "SKIPPED: Citus is not installed in PostgreSQL 15 and CITUS_SRC is not set (see docs/scale-out.md)"
    exit 0
fi
[ "$rc" -eq 0 ] || die "scripts/citus-install.sh failed (exit $rc)"
install_extension 15 --release
CITUS_DB=bench_citus
citus_start bench-citus 360 2 "autovacuum = off" "jit = off" "shared_buffers = '256MB'"

say "loading $tenants tenants x $accts accounts into a protected distributed table (32 shards)"
on coord -q >/dev/null <<SQL
SET client_min_messages = warning;
CREATE ROLE bench_app LOGIN;
CREATE ROLE bench_norouting LOGIN;
-- The setting is superuser-only; a role setting made by a superuser applies at login.
ALTER ROLE bench_norouting SET tenancy.citus_routing = off;
SELECT tenancy.grant_app('bench_app');
SELECT tenancy.grant_app('bench_norouting');
SELECT tenancy.create_tenant('t' || n) FROM generate_series(1, $tenants) n;
SELECT tenancy.add_signing_key('bench', decode(repeat('ab', 32), 'hex'));
SET citus.shard_count = 32;
CREATE TABLE accts (tenant_id text NOT NULL, id bigint NOT NULL, name text, PRIMARY KEY (tenant_id, id));
SELECT create_distributed_table('accts', 'tenant_id');
SELECT tenancy.protect('accts');
INSERT INTO accts SELECT 't' || n, k, 'account ' || k FROM generate_series(1, $tenants) n, generate_series(1, $accts) k;
VACUUM ANALYZE accts;
GRANT SELECT ON accts TO bench_app, bench_norouting;
-- The application's credentials, on the coordinator only (a local table): one token per tenant.
CREATE TABLE bench_tokens (n int PRIMARY KEY, tenant text, token text);
INSERT INTO bench_tokens SELECT n, 't' || n, tenancy.sign_token(jsonb_build_object('tenant_id', 't' || n,
    'exp', extract(epoch FROM now() + interval '50 minutes')::bigint)) FROM generate_series(1, $tenants) n;
GRANT SELECT ON bench_tokens TO bench_app, bench_norouting;
SQL

scripts_dir="$(mktemp -d)"
if [ -n "${KEEP:-}" ]; then trap 'rm -rf "$scripts_dir"' EXIT; else trap 'citus_cleanup; rm -rf "$scripts_dir"' EXIT; fi
# script ARM WORKLOAD: a transaction with a tenant's context and one point lookup; the tenant
# is drawn per transaction (`switching`, a pool serving every tenant) or fixed per client
# (`pinned`, a connection serving one tenant).
script() {
    local lookup="SELECT name FROM accts WHERE id = :k;" draw="random(1, $tenants)"
    [ "$1" = explicit ] && lookup="SELECT name FROM accts WHERE id = :k AND tenant_id = :tenant;"
    [ "$2" = pinned ] && draw="(:client_id % $tenants) + 1"
    cat >"$scripts_dir/$1-$2.sql" <<SQL
\\set n $draw
\\set k random(1, $accts)
SELECT tenant, token FROM bench_tokens WHERE n = :n \\gset
BEGIN;
SELECT tenancy.set_context(:token) IS NULL;
$lookup
END;
SQL
    echo "$scripts_dir/$1-$2.sql"
}
role_for() { [ "$1" = routed ] && echo bench_app || echo bench_norouting; }

say "plan shapes (as the application role, tenant t7)"
tok7="$(value coord "SELECT token FROM bench_tokens WHERE n = 7")"
for arm in routed explicit fanout; do
    q="SELECT name FROM accts WHERE id = 5"
    [ "$arm" = explicit ] && q="$q AND tenant_id = 't7'"
    printf '%s: ' "$arm"
    # (Citus's EXPLAIN of a multi-task query inside a transaction block warns; the counts are checked below.)
    PGUSER_AS="$(role_for "$arm")" on coord -At -v tok="$tok7" 2>/dev/null <<SQL | grep -o 'Task Count: [0-9]*'
BEGIN;
SELECT tenancy.set_context(:'tok') IS NULL \\g /dev/null
EXPLAIN (COSTS OFF) $q;
COMMIT;
SQL
done | tee "$out_dir/citus-plans.txt"
grep -qx 'routed: Task Count: 1' "$out_dir/citus-plans.txt" || die "the routed point lookup is not one task"
grep -qx 'explicit: Task Count: 1' "$out_dir/citus-plans.txt" || die "the explicit point lookup is not one task"
grep -qx 'fanout: Task Count: 32' "$out_dir/citus-plans.txt" || die "the fan-out point lookup is not 32 tasks"

# run WORKLOAD CLIENTS ARM ROUND: one pgbench run, one line of citus-raw.tsv.
run() {
    local tps
    tps="$(PGHOST=localhost PGPORT="${PORT[coord]}" "$CL_BINDIR/pgbench" -n -M prepared -T "$secs" -c "$2" -j "$2" \
        -U "$(role_for "$3")" -f "$(script "$3" "$1")" "$CITUS_DB" 2>&1 |
        sed -n 's/^tps = \([0-9.]*\) .*/\1/p' | tail -n 1)"
    [ -n "$tps" ] || die "pgbench produced no tps for $1 $3 with $2 clients"
    printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$tps" >>"$raw"
}
for wl in switching pinned; do
    for c in $clients; do
        say "point lookups, $wl tenants / $c clients / $rounds rounds of $secs s per arm"
        for r in $(seq 1 "$rounds"); do
            for arm in routed explicit fanout; do run "$wl" "$c" "$arm" "$r"; done
        done
    done
done

python3 - "$raw" "$secs" "$rounds" <<'PY' | tee "$out_dir/citus-results.md"
import statistics, sys
from collections import defaultdict
raw, secs, rounds = sys.argv[1], sys.argv[2], sys.argv[3]
tps = defaultdict(dict)
for line in open(raw):
    wl, c, arm, r, t = line.split("\t")
    tps[(wl, int(c), int(r))][arm] = float(t)
print(f"| tenants | clients | routed tps | explicit tps | fan-out tps | routed / explicit | routed / fan-out |")
print("|---|---|---|---|---|---|---|")
for wl, c in sorted({(w, c) for w, c, _ in tps}, key=lambda x: (x[0] != "switching", x[1])):
    rs = [tps[k] for k in tps if k[:2] == (wl, c)]
    med = {a: statistics.median(r[a] for r in rs) for a in ("routed", "explicit", "fanout")}
    def ratio(a, b):
        xs = [r[a] / r[b] for r in rs]
        return f"{statistics.median(xs):.2f} ({min(xs):.2f}-{max(xs):.2f})"
    print(f"| {wl} | {c} | {med['routed']:.0f} | {med['explicit']:.0f} | {med['fanout']:.0f} | "
          f"{ratio('routed', 'explicit')} | {ratio('routed', 'fanout')} |")
print(f"\nmedian of {rounds} rounds of {secs} s per arm, arms interleaved; ratios per round: median (min-max)")
PY
