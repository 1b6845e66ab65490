# Sourced by the Citus suites (tests/system/citus-*.sh) after scripts/lib.sh: one throwaway
# Citus cluster per suite (a coordinator and N workers on PostgreSQL 15, `citus,pg_tenancy`
# preloaded, pg_tenancy created and its registry made reference tables), and the assertion
# helpers the suites share. Each suite passes its own port offset so that suites never share a
# cluster.
# shellcheck shell=bash

# citus_require: exits 0 with a message when Citus can be neither found nor built
# (scripts/citus-install.sh exit 3), then installs the extension into PostgreSQL 15.
citus_require() {
    local rc=0
    "$REPO_ROOT/scripts/citus-install.sh" || rc=$?
    if [ "$rc" -eq 3 ]; then
        say "SKIPPED: Citus is not installed in PostgreSQL 15 and CITUS_SRC is not set (see docs/scale-out.md)"
        exit 0
    fi
    [ "$rc" -eq 0 ] || die "scripts/citus-install.sh failed (exit $rc)"
    install_extension 15
}

# citus_start NAME OFFSET WORKERS [postgresql.conf lines...]: a coordinator (`coord`) and
# WORKERS workers (`worker1`...) on ports ROOT_REGRESS_PORT_BASE + OFFSET + 0..WORKERS, database
# $CITUS_DB (default NAME with dashes as underscores), pg_tenancy created on the coordinator
# (Citus creates it on the workers) and `tenancy.citus_setup()` run. Sets NODES and PORT; the
# cluster is removed on exit unless KEEP is set.
citus_start() {
    local name="$1" offset="$2" workers="$3" n i
    shift 3
    CITUS_NAME="$name"
    CITUS_DB="${CITUS_DB:-${name//-/_}}"
    NODES=(coord)
    declare -gA PORT=([coord]=$((ROOT_REGRESS_PORT_BASE + offset)))
    for ((i = 1; i <= workers; i++)); do
        NODES+=("worker$i")
        PORT[worker$i]=$((ROOT_REGRESS_PORT_BASE + offset + i))
    done
    out="$(mktemp)"
    trap citus_cleanup EXIT
    [ -n "${KEEP:-}" ] && trap 'rm -f "$out"' EXIT
    trap 'exit 130' INT TERM
    for n in "${NODES[@]}"; do
        CL_PGDATA="$(citus_pgdata "$n")" CL_PORT="${PORT[$n]}" cluster_up \
            "shared_preload_libraries = 'citus,pg_tenancy'" \
            "citus.propagate_set_commands = 'local'" \
            "citus.node_conninfo = 'sslmode=disable'" \
            "max_connections = 100" "$@"
        CL_PGDATA="$(citus_pgdata "$n")" CL_PORT="${PORT[$n]}" cluster_psql -d postgres -q -c "CREATE DATABASE $CITUS_DB"
        on "$n" -q -c "CREATE EXTENSION citus"
    done
    on coord -q -c "SELECT citus_set_coordinator_host('localhost', ${PORT[coord]})" >/dev/null
    for ((i = 1; i <= workers; i++)); do
        on coord -q -c "SELECT citus_add_node('localhost', ${PORT[worker$i]})" >/dev/null
    done
    PGOPTIONS="-c client_min_messages=warning" on coord -q -c "CREATE EXTENSION pg_tenancy" -c "SELECT tenancy.citus_setup()" >/dev/null
    say "cluster: coordinator :${PORT[coord]}, workers $(for ((i = 1; i <= workers; i++)); do printf ':%s ' "${PORT[worker$i]}"; done)"
}
citus_pgdata() { echo "$RUN_DIR/citus-$CITUS_NAME-$1-pg15"; }
citus_cleanup() {
    local n
    for n in "${NODES[@]}"; do
        CL_PGDATA="$(citus_pgdata "$n")" CL_PORT="${PORT[$n]}" cluster_down
    done
    rm -f "$out"
}

# on NODE [psql args...]: psql to NODE's database as the superuser, stopping at the first error.
on() {
    local n="$1"
    shift
    PGHOST=localhost PGPORT="${PORT[$n]}" PGUSER="${PGUSER_AS:-postgres}" "$CL_BINDIR/psql" -X -v ON_ERROR_STOP=1 -d "$CITUS_DB" "$@"
}
# session NODE ROLE [psql -v args...] < SQL: the output, tersely (rows unaligned, errors as
# SQLSTATEs without psql's line prefix), of a script run to its end whatever fails.
session() {
    local n="$1" role="$2"
    shift 2
    PGOPTIONS="-c client_min_messages=warning" PGHOST=localhost PGPORT="${PORT[$n]}" PGUSER="$role" \
        "$CL_BINDIR/psql" -X -At -q -v ON_ERROR_STOP=0 -v VERBOSITY=sqlstate -d "$CITUS_DB" "$@" 2>&1 \
        | sed -E 's/^psql:[^:]*:[0-9]+: //'
}
fail=0
# expect NAME < EXPECTED: compare $out (a session's output) with what it should be.
expect() {
    if diff -u - "$out" >"$out.diff"; then
        say "ok: $1"
    else
        printf '*** %s: unexpected output (- expected, + got)\n' "$1" >&2
        cat "$out.diff" >&2
        fail=1
    fi
    rm -f "$out.diff"
}
# value NODE SQL: one value, as the superuser.
value() { on "$1" -At -c "$2"; }
# shard_value NODE SQL: like value, with the shards Citus hides from catalog queries shown.
shard_value() { on "$1" -qAt -c "SET citus.override_table_visibility = off" -c "$2"; }
# same NAME EXPECTED ACTUAL
same() {
    if [ "$2" = "$3" ]; then
        say "ok: $1"
    else
        printf '*** %s: expected %s, got %s\n' "$1" "$2" "$3" >&2
        fail=1
    fi
}
# citus_done: the suite's verdict.
citus_done() {
    [ "$fail" -eq 0 ] || die "the $CITUS_NAME suite failed"
    say "all $CITUS_NAME checks passed"
}
