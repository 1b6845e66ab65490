#!/usr/bin/env bash
# Usage: tests/system/standby.sh 15|18
# Context verification on a read-only hot standby, the way an application uses a replica:
# a token and an API key set a context there (no transaction id, no writes), the protected
# table shows that tenant's rows only, and a tenant deactivated on the primary stops working
# on the standby as soon as the change is replayed, even in a session that already holds a
# verified, cached context.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
source "$(dirname "$0")/lib.sh"

ver="${1:?usage: tests/system/standby.sh 15|18}"
install_extension "$ver"

PRIMARY_PGDATA="$RUN_DIR/standby-primary-pg$ver"
STANDBY_PGDATA="$RUN_DIR/standby-replica-pg$ver"
PRIMARY_PORT=$((ROOT_REGRESS_PORT_BASE + 50 + ver))
STANDBY_PORT=$((ROOT_REGRESS_PORT_BASE + 70 + ver))
out="$(mktemp)"

stop_standby() {
    if [ -f "$STANDBY_PGDATA/postmaster.pid" ]; then
        as_pg "$CL_BINDIR/pg_ctl" --pgdata="$STANDBY_PGDATA" --mode=fast --wait stop >/dev/null || true
    fi
    [ -e "$STANDBY_PGDATA" ] && as_pg rm -rf "$STANDBY_PGDATA"
    true
}
cleanup() {
    stop_standby
    CL_PGDATA="$PRIMARY_PGDATA" CL_PORT="$PRIMARY_PORT" cluster_down
    rm -f "$out"
}
trap cleanup EXIT
[ -n "${KEEP:-}" ] && trap - EXIT
trap 'exit 130' INT TERM

primary() { PGHOST=localhost PGPORT="$PRIMARY_PORT" PGUSER=postgres "$CL_BINDIR/psql" -X -v ON_ERROR_STOP=1 -d standby_test "$@"; }

CL_PGDATA="$PRIMARY_PGDATA" CL_PORT="$PRIMARY_PORT"
stop_standby
cluster_up "wal_level = replica" "max_wal_senders = 4" "hot_standby_feedback = on"
cluster_psql -d postgres -q -v ON_ERROR_STOP=1 -c "CREATE DATABASE standby_test"
primary -q >/dev/null <<'SQL'
CREATE EXTENSION pg_tenancy;
DROP ROLE IF EXISTS standby_app;
CREATE ROLE standby_app LOGIN;
SELECT tenancy.grant_app('standby_app');
SELECT tenancy.create_tenant('acme'), tenancy.create_tenant('globex');
SELECT tenancy.add_signing_key('standby-key', decode(repeat('17', 32), 'hex'));
CREATE TABLE people (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, tenant_id text, name text);
INSERT INTO people (tenant_id, name) VALUES ('acme', 'Ada'), ('acme', 'Brian'), ('globex', 'Grace');
SELECT tenancy.protect('people');
GRANT SELECT ON people TO standby_app;
CREATE TABLE replay_marker (n int);
SQL
token="$(primary -At -c "SELECT tenancy.sign_token(jsonb_build_object('tenant_id', 'acme', 'exp', extract(epoch FROM now() + interval '1 hour')::bigint))")"
api_key="$(primary -At -c "SELECT tenancy.create_api_key('globex', 'replica reader')")"

say "pg_basebackup into $STANDBY_PGDATA"
as_pg "$CL_BINDIR/pg_basebackup" --host=localhost --port="$PRIMARY_PORT" --username=postgres \
    --pgdata="$STANDBY_PGDATA" --write-recovery-conf --wal-method=stream --checkpoint=fast --no-sync
printf "port = %s\n" "$STANDBY_PORT" | as_pg tee -a "$STANDBY_PGDATA/postgresql.conf" >/dev/null
as_pg "$CL_BINDIR/pg_ctl" --pgdata="$STANDBY_PGDATA" --log="$STANDBY_PGDATA/server.log" --wait --timeout=60 start >/dev/null

replica() { PGHOST=localhost PGPORT="$STANDBY_PORT" "$CL_BINDIR/psql" -X -d standby_test "$@"; }

# Replay is sequential: once the standby sees marker N, everything the primary committed
# before it (including the invalidations attached to those commits) has been replayed.
wait_for_marker() {
    primary -q -c "INSERT INTO replay_marker VALUES ($1)" || die "could not write replay marker $1 on the primary"
    for _ in $(seq 1 200); do
        if [ "$(replica -U postgres -At -c "SELECT count(*) FROM replay_marker WHERE n = $1" 2>/dev/null)" = 1 ]; then
            return 0
        fi
        sleep 0.1
    done
    die "standby did not replay marker $1"
}
wait_for_marker 1

[ "$(replica -U postgres -At -c 'SELECT pg_is_in_recovery()')" = t ] || die "the replica is not in recovery"

# What the standby session runs (through psql's \!) while it holds a cached context.
deactivate="$(mktemp)"
cat >"$deactivate" <<SH
#!/usr/bin/env bash
set -euo pipefail
psql() { PGHOST=localhost PGUSER=postgres "$CL_BINDIR/psql" -X -q -v ON_ERROR_STOP=1 -d standby_test "\$@"; }
PGPORT=$PRIMARY_PORT psql -c "SELECT tenancy.deactivate_tenant('acme')" >/dev/null
PGPORT=$PRIMARY_PORT psql -c "INSERT INTO replay_marker VALUES (2)"
for _ in \$(seq 1 200); do
    [ "\$(PGPORT=$STANDBY_PORT psql -At -c "SELECT count(*) FROM replay_marker WHERE n = 2")" = 1 ] && exit 0
    sleep 0.1
done
exit 1
SH
chmod 755 "$deactivate"

say "on the standby, as the application role"
# The session stops at its first error, which must be the last statement's: the cached context
# refused (28000) once the deactivation has been replayed.
export DEACTIVATE="$deactivate"
expect_error "the cached context is refused once the deactivation is replayed" 28000 \
    "pg_tenancy: tenant context refused: the tenant is deactivated" \
    replica -U standby_app -v token="$token" -v api_key="$api_key" -At <<'SQL'
SELECT 'read_only: ' || current_setting('transaction_read_only');
BEGIN;
SELECT 'token: ' || (tenancy.set_context(:'token') IS NOT NULL);
SELECT 'token_rows: ' || string_agg(name, ',' ORDER BY name) FROM people;
SELECT 'xid: ' || coalesce(pg_current_xact_id_if_assigned()::text, 'none');
COMMIT;
BEGIN;
SELECT 'key: ' || (tenancy.set_context_from_key(:'api_key') IS NOT NULL);
SELECT 'key_rows: ' || string_agg(name, ',' ORDER BY name) FROM people;
COMMIT;
SELECT 'session: ' || (tenancy.set_context(:'token', is_local => false) IS NOT NULL);
SELECT 'cached_rows: ' || string_agg(name, ',' ORDER BY name) FROM people;
\! "$DEACTIVATE" && echo 'replayed: yes'
SELECT 'after_deactivation: ' || string_agg(name, ',' ORDER BY name) FROM people;
SQL
printf '%s\n' "$expect_output" >"$out"
rm -f "$deactivate"

expect() {
    if grep -qxF -- "$1" "$out"; then
        say "ok: $1"
    else
        printf '*** expected line: %s\n' "$1" >&2
        fail=1
    fi
}
expect "read_only: on"
expect "token_rows: Ada,Brian"
expect "xid: none"
expect "key_rows: Grace"
expect "cached_rows: Ada,Brian"
expect "replayed: yes"
if grep -q "after_deactivation:" "$out"; then
    printf '*** the cached context still showed rows after the deactivation was replayed\n' >&2
    fail=1
fi
if [ "$fail" -ne 0 ]; then
    echo "---- standby session output ----" >&2
    cat "$out" >&2
    die "standby verification failed on PostgreSQL $ver"
fi
say "verification works on a read-only standby (PostgreSQL $ver)"
