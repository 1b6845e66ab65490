#!/usr/bin/env bash
# Usage: scripts/demo.sh [WALKTHROUGH.sql]   (default: demo/walkthrough.sql)
#        scripts/demo.sh --clean              (stop + delete a demo cluster left behind)
# Builds and installs pg_tenancy into PostgreSQL 15, starts a throwaway cluster with
# shared_preload_libraries = 'pg_tenancy' on $DEMO_PORT, runs the walkthrough with psql in a fresh
# database, then stops and deletes the cluster -- also when the walkthrough fails or is interrupted.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
source "$(dirname "$0")/lib.sh"

CL_BINDIR="$("$PG15_PG_CONFIG" --bindir)"
CL_PGDATA="$RUN_DIR/demo"
CL_PORT="$DEMO_PORT"

if [ "${1:-}" = --clean ]; then
    cluster_down
    say "no demo cluster left ($CL_PGDATA)"
    exit 0
fi

walkthrough="$(realpath -m "${1:-$REPO_ROOT/demo/walkthrough.sql}")"
[ -f "$walkthrough" ] || die "walkthrough not found: $walkthrough (write demo/walkthrough.sql first)"

# Debug build: it reuses what `make test`/`make regress` already compiled, whereas a release build
# (lto = "fat", codegen-units = 1) costs minutes and changes nothing for a walkthrough.
sudo_flag="$(install_flags "$PG15_PG_CONFIG")"
say "building (debug) and installing pg_tenancy into PostgreSQL 15"
cargo pgrx install --manifest-path "$REPO_ROOT/Cargo.toml" --pg-config "$PG15_PG_CONFIG" \
    --no-default-features --features pg15 ${sudo_flag:+"$sudo_flag"}

trap cluster_down EXIT
trap 'exit 130' INT TERM

# shellcheck disable=SC2119  # no extra settings for the demo cluster
cluster_up
cluster_psql -d postgres -q -c 'CREATE DATABASE tenancy_demo'

say "running $walkthrough in database tenancy_demo"
if ! cluster_psql -d tenancy_demo -v ON_ERROR_STOP=1 --echo-queries -f "$walkthrough"; then
    say "last lines of the server log:"
    as_pg tail -n 20 "$CL_PGDATA/server.log" >&2 || true
    die "walkthrough $walkthrough failed"
fi
say "walkthrough finished successfully"
