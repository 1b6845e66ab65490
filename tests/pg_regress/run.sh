#!/usr/bin/env bash
# Usage: tests/pg_regress/run.sh 15|18
# Runs tests/pg_regress (sql/*.sql against expected/*.out) the way `cargo pgrx regress pgXX` does,
# but in a throwaway cluster that works as root and with the PG18 wheel:
#   - cargo-pgrx 0.18.1's `regress` runs initdb/pg_ctl as the caller (its --runas only affects
#     createdb/dropdb and its --pgdata is ignored), so it cannot work as root;
#   - the wheel's pg_regress has a non-existent build path compiled in as --bindir.
# Same semantics as cargo pgrx regress: debug build without pg_test, fresh database
# `pg_tenancy_regress`, setup.sql first, then the other tests in name order, psql VERBOSITY=terse,
# client_min_messages=warning, locale C.UTF-8. Unlike cargo pgrx regress, a test without an
# expected/*.out (or an expected output without its test) fails the run instead of being skipped.
set -euo pipefail
# shellcheck source=../../scripts/lib.sh
source "$(dirname "$0")/../../scripts/lib.sh"

ver="${1:?usage: tests/pg_regress/run.sh 15|18}"
pg_config="$(pg_config_for "$ver")"
regress_dir="$REPO_ROOT/tests/pg_regress"
dbname=pg_tenancy_regress

# Test list: setup first, then the rest sorted. Every sql/NAME.sql must have its expected/NAME.out
# and every expected/NAME.out its sql/NAME.sql: a test skipped or forgotten would pass unseen.
tests=()
missing=0
[ -f "$regress_dir/sql/setup.sql" ] && tests+=(setup)
for f in "$regress_dir"/sql/*.sql; do
    [ -e "$f" ] || continue
    name="$(basename "$f" .sql)"
    [ "$name" = setup ] || tests+=("$name")
    if [ ! -f "$regress_dir/expected/$name.out" ]; then
        printf '*** run: tests/pg_regress/sql/%s.sql has no expected output tests/pg_regress/expected/%s.out.\n' "$name" "$name" >&2
        printf '    To create it: touch that file, run tests/pg_regress/run.sh %s (the test fails and writes\n' "$ver" >&2
        printf '    tests/pg_regress/results/%s.out), read that output line by line, then copy it to expected/.\n' "$name" >&2
        missing=1
    fi
done
for f in "$regress_dir"/expected/*.out; do
    [ -e "$f" ] || continue
    name="$(basename "$f" .out)"
    if [ ! -f "$regress_dir/sql/$name.sql" ]; then
        printf '*** run: tests/pg_regress/expected/%s.out has no tests/pg_regress/sql/%s.sql: restore the test or delete it\n' "$name" "$name" >&2
        missing=1
    fi
done
[ "$missing" -eq 0 ] || die "regression tests without an expected output (or the reverse); nothing was run"
[ ${#tests[@]} -gt 0 ] || die "no regression tests in $regress_dir/sql"

sudo_flag="$(install_flags "$pg_config")"
say "building (debug) and installing pg_tenancy into PostgreSQL $ver"
cargo pgrx install --manifest-path "$REPO_ROOT/Cargo.toml" --pg-config "$pg_config" \
    --no-default-features --features "pg$ver" ${sudo_flag:+"$sudo_flag"}

CL_BINDIR="$("$pg_config" --bindir)"
CL_PGDATA="$RUN_DIR/regress-pg$ver"
CL_PORT=$((ROOT_REGRESS_PORT_BASE + ver))
launcher="$(mktemp)"
trap 'cluster_down; rm -f "$launcher"' EXIT
trap 'exit 130' INT TERM

cluster_up "client_min_messages = warning"
cluster_psql -d postgres -q -v ON_ERROR_STOP=1 -c "CREATE DATABASE $dbname"

# pgrx's launcher: pg_regress runs "$launcher psql ..." so each psql gets the verbosity setting.
printf '#! /bin/bash\n$* -v VERBOSITY=terse\n' >"$launcher"
chmod 700 "$launcher"

pg_regress="$(dirname "$("$pg_config" --pgxs)")/../test/regress/pg_regress"
say "pg_regress (PostgreSQL $ver): ${tests[*]}"
rm -rf "$regress_dir/results" "$regress_dir/regression.diffs" "$regress_dir/regression.out"
cd "$regress_dir"
if ! "$pg_regress" --bindir="$CL_BINDIR" --host=localhost --port="$CL_PORT" --user=postgres \
    --use-existing --dbname="$dbname" --inputdir="$regress_dir" --outputdir="$regress_dir" \
    --launcher="$launcher" "${tests[@]}"; then
    [ -f regression.diffs ] && cat regression.diffs
    die "regression tests failed on PostgreSQL $ver (diffs: $regress_dir/regression.diffs)"
fi
say "all regression tests passed on PostgreSQL $ver"
