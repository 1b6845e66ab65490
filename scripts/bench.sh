#!/usr/bin/env bash
# Usage: scripts/bench.sh            (make bench; BENCH_SCALE, BENCH_SECONDS, BENCH_ROUNDS tune it)
# What isolation costs, against plain PostgreSQL in the same run. Release build, PostgreSQL 15,
# a throwaway cluster with JIT and autovacuum off; every comparison interleaved (A B C D, A B C
# D, ...), median and min-max of each arm, and the ratio to `explicit` (no RLS, the query carries
# WHERE tenant_id = $1). Prints a markdown table; keeps the raw figures in target/bench/.
# The orgcount arm: an organization of 40 locations counting its rows, against the explicit
# WHERE tenant_id = ANY (ids) (docs/organizations.md).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
source "$(dirname "$0")/lib.sh"

scale="${BENCH_SCALE:-1}"
secs="${BENCH_SECONDS:-3}"
rounds="${BENCH_ROUNDS:-3}"
tenants=$(python3 -c "print(max(10, int(1000 * $scale)))")
accts=100
events=1000
out_dir="$REPO_ROOT/target/bench"
mkdir -p "$out_dir"
raw="$out_dir/raw.tsv"
: >"$raw"

# BENCH_PG=18 runs the same on PostgreSQL 18.
pg_ver="${BENCH_PG:-15}"
bench_pg_config="$(pg_config_for "$pg_ver")"
CL_BINDIR="$("$bench_pg_config" --bindir)"
CL_PGDATA="$RUN_DIR/bench"
CL_PORT=$((ROOT_REGRESS_PORT_BASE + 100))
sudo_flag="$(install_flags "$bench_pg_config")"
say "building (release) and installing pg_tenancy into PostgreSQL $pg_ver"
cargo pgrx install --release --manifest-path "$REPO_ROOT/Cargo.toml" --pg-config "$bench_pg_config" \
    --no-default-features --features "pg$pg_ver" ${sudo_flag:+"$sudo_flag"} >/dev/null
trap cluster_down EXIT
trap 'exit 130' INT TERM
# protect_schema() on 2,000 tables locks all of them (and their indexes) in one transaction
cluster_up "autovacuum = off" "shared_buffers = '1GB'" "max_connections = 40" "max_locks_per_transaction = 512"
cluster_psql -d postgres -q -c "CREATE DATABASE bench"
say "loading $tenants tenants x $events events (x2 tenant types, x3 copies)"
start=$SECONDS
cluster_psql -d bench -q -v tenants="$tenants" -v accts="$accts" -v events="$events" \
    -f "$REPO_ROOT/bench/schema.sql" >/dev/null
say "loaded in $((SECONDS - start)) s"

scripts_dir="$(mktemp -d)"
trap 'cluster_down; rm -rf "$scripts_dir"' EXIT

# script CFG TYPE WORKLOAD: writes a pgbench script and prints its path.
script() {
    local cfg="$1" ty="$2" wl="$3" f="$scripts_dir/$1-$2-$3.sql" tbl tv where and_t setup=""
    case "$cfg" in explicit | pg_tenancy) tbl=pt ;; naive) tbl=nv ;; naive_wrapped) tbl=nw ;; esac
    if [ "$ty" = int8 ]; then tv=":tn"; else tv=":tu"; fi
    where="" and_t=""
    if [ "$cfg" = explicit ]; then where="WHERE tenant_id = $tv"; and_t="AND tenant_id = $tv"; fi
    case "$cfg" in
        pg_tenancy) setup="SELECT tenancy.set_tenant($tv::text, is_local => false);" ;;
        naive | naive_wrapped) setup="SELECT set_config('app.tenant_id', $tv::text, false);" ;;
    esac
    {
        echo "\\set tn (:client_id % :tenants) + 1"
        echo "\\if :init = 0"
        [ "$ty" = uuid ] && echo "SELECT u AS tu FROM bench_tenant WHERE n = :tn \\gset"
        [ -n "$setup" ] && echo "$setup"
        echo "\\set init 1"
        echo "\\endif"
        echo "\\set k random(1, :accts)"
        echo "\\set id (:tn - 1) * :accts + :k"
        case "$wl" in
            point) echo "SELECT name FROM ${tbl}_acct_$ty WHERE id = :id $and_t;" ;;
            latest50) echo "SELECT id, amount FROM ${tbl}_ev_$ty $where ORDER BY created_at DESC LIMIT 50;" ;;
            count) echo "SELECT count(*) FROM ${tbl}_ev_$ty $where;" ;;
            join)
                if [ "$cfg" = explicit ]; then
                    echo "SELECT a.name, count(*), sum(e.amount) FROM ${tbl}_acct_$ty a JOIN ${tbl}_ev_$ty e ON e.account_id = a.id AND e.tenant_id = a.tenant_id WHERE a.id = :id AND a.tenant_id = $tv GROUP BY a.name;"
                else
                    echo "SELECT a.name, count(*), sum(e.amount) FROM ${tbl}_acct_$ty a JOIN ${tbl}_ev_$ty e ON e.account_id = a.id AND e.tenant_id = a.tenant_id WHERE a.id = :id GROUP BY a.name;"
                fi ;;
            insert)
                if [ "$cfg" = explicit ]; then
                    echo "INSERT INTO ${tbl}_ev_$ty (tenant_id, account_id, created_at, amount) VALUES ($tv, :id, now(), 1);"
                else
                    echo "INSERT INTO ${tbl}_ev_$ty (account_id, created_at, amount) VALUES (:id, now(), 1);"
                fi ;;
        esac
    } >"$f"
    echo "$f"
}

role_for() {
    case "$1" in explicit) echo bench_bypass ;; pg_tenancy) echo bench_trusted ;; *) echo bench_app ;; esac
}

# run LABEL TYPE CLIENTS ARM ROUND ROLE SCRIPT: one pgbench run, one line of raw.tsv.
run() {
    local tps
    tps="$(PGHOST=localhost PGPORT="$CL_PORT" "$CL_BINDIR/pgbench" -n -M prepared -T "$secs" -c "$3" -j "$3" \
        -D init=0 -D tenants="$tenants" -D accts="$accts" -U "$6" -f "$7" bench 2>&1 |
        sed -n 's/^tps = \([0-9.]*\) .*/\1/p' | tail -n 1)"
    [ -n "$tps" ] || die "pgbench produced no tps for $1 $2 $3 $4"
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$5" "$tps" >>"$raw"
}

say "plan shapes (pg_tenancy, bigint tenants, as the trusted role with a context)"
cluster_psql -d bench -U bench_trusted -q >"$out_dir/plans.txt" <<'SQL'
SELECT tenancy.set_tenant('7', is_local => false) IS NOT NULL AS ctx;
EXPLAIN (COSTS OFF) SELECT name FROM pt_acct_int8 WHERE id = 601;
EXPLAIN (COSTS OFF) SELECT id, amount FROM pt_ev_int8 ORDER BY created_at DESC LIMIT 50;
EXPLAIN (COSTS OFF) SELECT count(*) FROM pt_ev_int8;
SQL
cat "$out_dir/plans.txt"

arms="explicit pg_tenancy naive naive_wrapped"
for wl in point latest50 count join insert; do
    for ty in int8 uuid; do
        for c in 2 8; do
            say "$wl / $ty / $c clients"
            for r in $(seq 1 "$rounds"); do
                for arm in $arms; do
                    run "$wl" "$ty" "$c" "$arm" "$r" "$(role_for "$arm")" "$(script "$arm" "$ty" "$wl")"
                done
            done
        done
    done
done

# An organization's context (40 locations, docs/organizations.md) counting its events, against
# the same count with the subtree's ids given explicitly (no RLS): one index condition each.
org=$((tenants + 1))
locs="$(python3 -c "print(','.join(str(i) for i in range(1, min(40, $tenants) + 1)))")"
printf 'SELECT count(*) FROM pt_ev_int8 WHERE tenant_id = ANY (%s);\n' "'{$locs}'::bigint[]" >"$scripts_dir/org-explicit.sql"
printf '\\if :init = 0\nSELECT tenancy.set_tenant(%s, is_local => false);\n\\set init 1\n\\endif\nSELECT count(*) FROM pt_ev_int8;\n' \
    "'$org'" >"$scripts_dir/org-pg_tenancy.sql"
cluster_psql -d bench -U bench_trusted -q >>"$out_dir/plans.txt" <<SQL
SELECT tenancy.set_tenant('$org', is_local => false) IS NOT NULL AS organization_ctx;
EXPLAIN (COSTS OFF) SELECT count(*) FROM pt_ev_int8;
SQL
for c in 2 8; do
    say "orgcount / int8 / $c clients"
    for r in $(seq 1 "$rounds"); do
        run orgcount int8 "$c" explicit "$r" bench_bypass "$scripts_dir/org-explicit.sql"
        run orgcount int8 "$c" pg_tenancy "$r" bench_trusted "$scripts_dir/org-pg_tenancy.sql"
    done
done

# Context cost: a transaction that verifies a token and reads, against one that sets a
# forgeable `SET LOCAL app.tenant_id` and reads (the hand-rolled way). The client holds the
# credential, as an application does: one script per tenant with its token (or id) as a literal,
# pgbench picking a script at random per transaction, so neither arm reads a table to find it.
ctx_tenants=$((tenants < 64 ? tenants : 64))
mkdir -p "$scripts_dir/ctx"
cluster_psql -d bench -At -F $'\t' -c "SELECT n, token FROM bench_tokens WHERE n <= $ctx_tenants ORDER BY n" |
    while IFS=$'\t' read -r n tok; do
        printf '\\set k random(1, :accts)\nBEGIN;\nSELECT tenancy.set_context(%s) IS NOT NULL;\nSELECT name FROM pt_acct_int8 WHERE id = %s + :k;\nEND;\n' \
            "'$tok'" "$(((n - 1) * accts))" >"$scripts_dir/ctx/token-$n.sql"
        printf '\\set k random(1, :accts)\nBEGIN;\nSET LOCAL app.tenant_id = %s;\nSELECT name FROM nw_acct_int8 WHERE id = %s + :k;\nEND;\n' \
            "'$n'" "$(((n - 1) * accts))" >"$scripts_dir/ctx/set_local-$n.sql"
    done
ctx_files() { # ARM: one -f per tenant script
    local f
    for f in "$scripts_dir/ctx/$1"-*.sql; do printf -- '-f\n%s\n' "$f"; done
}
run_ctx() { # CLIENTS ARM ROUND
    local tps
    mapfile -t files < <(ctx_files "$2")
    tps="$(PGHOST=localhost PGPORT="$CL_PORT" "$CL_BINDIR/pgbench" -n -M prepared -T "$secs" -c "$1" -j "$1" \
        -D accts="$accts" -U bench_app "${files[@]}" bench 2>&1 |
        sed -n 's/^tps = \([0-9.]*\) .*/\1/p' | tail -n 1)"
    [ -n "$tps" ] || die "pgbench produced no tps for context $2 $1"
    printf 'context\tint8\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$tps" >>"$raw"
}
for c in 2 8; do
    say "context / $c clients"
    for r in $(seq 1 "$rounds"); do
        run_ctx "$c" set_local "$r"
        run_ctx "$c" token "$r"
    done
done

say "verification micro-costs"
micro() { # LABEL CALLS SQL [ROLE]: best of 3, in microseconds per call
    local best="" ms
    for _ in 1 2 3; do
        ms="$(cluster_psql -d bench -U "${4:-bench_app}" -q -c '\timing on' -c "$3" | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | tail -n 1)"
        best="$(python3 -c "print(min(x for x in [$ms, ${best:-$ms}]))")"
    done
    printf 'micro\t%s\t%s\n' "$1" "$(python3 -c "print(round($best * 1000 / $2, 3))")" >>"$raw"
}
n_tok=$((tenants * 10))
micro "uncached set_context (token verified, context set), us" "$n_tok" \
    "SELECT count(tenancy.set_context(token)) FROM bench_tokens, generate_series(1, 10)"
micro "the same, carrier stored by SET LOCAL through SPI (the Citus path), us" "$n_tok" \
    "SELECT count(tenancy.set_context(token)) FROM bench_tokens, generate_series(1, 10)" bench_app_stmt
if [ "$(cluster_psql -d bench -At -c "SELECT count(*) FROM pg_extension WHERE extname = 'pgcrypto'")" = 1 ]; then
    micro "PL/pgSQL + pgcrypto HS256 verification, us" "$n_tok" \
        "SELECT count(bench_plpgsql_verify(token, decode(repeat('ab', 32), 'hex'))) FROM bench_tokens, generate_series(1, 10)"
fi
micro "cached tenancy.current_tenant(), us" 1000000 \
    "SELECT tenancy.set_context(token) IS NULL FROM bench_tokens WHERE n = 1; SELECT count(tenancy.current_tenant()) FROM generate_series(1, 1000000)"
micro "current_setting('app.tenant_id') for comparison, us" 1000000 \
    "SELECT set_config('app.tenant_id', '1', false); SELECT count(current_setting('app.tenant_id')) FROM generate_series(1, 1000000)"

say "protect_schema() and check() on 2,000 tables"
cluster_psql -d postgres -q -c "CREATE DATABASE bench_ddl"
cluster_psql -d bench_ddl -q -v ON_ERROR_STOP=1 >/dev/null <<'SQL'
CREATE EXTENSION pg_tenancy;
CREATE SCHEMA app;
SELECT format('CREATE TABLE app.t%s (id bigint GENERATED ALWAYS AS IDENTITY, tenant_id text NOT NULL,
               v text, created_at timestamptz, PRIMARY KEY (tenant_id, id))', i)
  FROM generate_series(1, 2000) i \gexec
SQL
wall() { # LABEL SQL: wall time of one run, in milliseconds
    local ms
    ms="$(cluster_psql -d bench_ddl -q -c '\timing on' -c "$2" | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | tail -n 1)"
    printf 'wall\t%s\t%s\n' "$1" "$ms" >>"$raw"
}
wall "protect_schema('app') protecting 2,000 tables" "SELECT tenancy.protect_schema('app')"
wall "check() over them, first call in a session" "SELECT count(*) FROM tenancy.check()"
wall "assert_isolated() over them" "SELECT tenancy.assert_isolated()"

python3 "$REPO_ROOT/bench/report.py" "$raw" "$tenants" "$secs" "$rounds" | tee "$out_dir/results.md"
