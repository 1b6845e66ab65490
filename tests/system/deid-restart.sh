#!/usr/bin/env bash
# Usage: tests/system/deid-restart.sh 15|18
# Pseudonyms survive what a database goes through: a new session, a server restart, and a
# pg_dump / restore into another database (tenancy.pseudonym_secrets is dumped with the
# extension's configuration). The secret is generated in the server; this script never sees it.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
source "$(dirname "$0")/lib.sh"

ver="${1:?usage: tests/system/deid-restart.sh 15|18}"
install_extension "$ver"

CL_PGDATA="$RUN_DIR/deid-pg$ver"
CL_PORT=$((ROOT_REGRESS_PORT_BASE + 30 + ver))
dump="$(mktemp)"
trap 'cluster_down; rm -f "$dump"' EXIT
trap 'exit 130' INT TERM

cluster_up
db() { cluster_psql -v ON_ERROR_STOP=1 -q -At -d "$@"; }
db postgres -c "CREATE DATABASE deid_test"
db deid_test <<'SQL'
CREATE EXTENSION pg_tenancy;
SELECT tenancy.create_tenant('acme') \g /dev/null
SELECT tenancy.add_pseudonym_secret('generated') \g /dev/null
SQL

# Every form: text, bigint, uuid, and the pool form in acme's context.
probe() {
    db "$1" <<'SQL'
BEGIN;
SELECT tenancy.set_tenant('acme') \g /dev/null
SELECT concat_ws(' ',
    tenancy.pseudonymize('E-1001', 'employee'),
    tenancy.pseudonymize(42, 'employee'),
    tenancy.pseudonymize('123e4567-e89b-12d3-a456-426614174000'::uuid, 'customer'),
    tenancy.pseudonymize_for_pool('E-1001', 'employee'));
COMMIT;
SQL
}

first="$(probe deid_test)"
[[ "$first" =~ ^([a-z2-7]{26}( |$)){4}$ ]] || die "unexpected pseudonyms: '$first'"
say "pseudonyms: $first"

second="$(probe deid_test)"
[ "$second" = "$first" ] || die "a new session computed '$second', expected '$first'"
say "ok: same in a new session"

say "restarting PostgreSQL"
as_pg "$CL_BINDIR/pg_ctl" --pgdata="$CL_PGDATA" --mode=fast --wait --timeout=60 restart \
    --log="$CL_PGDATA/server.log" >/dev/null
third="$(probe deid_test)"
[ "$third" = "$first" ] || die "after a restart: '$third', expected '$first'"
say "ok: same after a restart"

say "pg_dump deid_test | psql deid_restored"
PGHOST=localhost PGPORT="$CL_PORT" PGUSER=postgres "$CL_BINDIR/pg_dump" -d deid_test >"$dump"
db postgres -c "CREATE DATABASE deid_restored"
db deid_restored -f "$dump" >/dev/null
fourth="$(probe deid_restored)"
[ "$fourth" = "$first" ] || die "in the restored database: '$fourth', expected '$first'"
say "ok: same in a database restored from pg_dump"

# A second secret changes every pseudonym; the restored copy keeps the old ones.
db deid_test -c "SELECT tenancy.add_pseudonym_secret('rotated')" >/dev/null
rotated="$(probe deid_test)"
for i in 1 2 3 4; do
    [ "$(cut -d' ' -f$i <<<"$rotated")" != "$(cut -d' ' -f$i <<<"$first")" ] \
        || die "pseudonym $i did not change after a rotation: '$rotated'"
done
[ "$(probe deid_restored)" = "$first" ] || die "the restored database changed too"
say "ok: a new secret changes every pseudonym"
say "pseudonyms are stable across sessions, restarts and dump/restore (PostgreSQL $ver)"
