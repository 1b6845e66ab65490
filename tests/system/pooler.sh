#!/usr/bin/env bash
# Usage: tests/system/pooler.sh 15|18
# Client-level suite: a real driver (psycopg 3) through PgBouncer in transaction pooling mode
# (4 server connections for 32 clients), then the session-scope rule shown both ways: a
# context set with is_local => false bleeds into the next client behind a transaction pooler,
# and session pooling with server_reset_query = DISCARD ALL clears it.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
source "$(dirname "$0")/lib.sh"

ver="${1:?usage: tests/system/pooler.sh 15|18}"
install_extension "$ver"
CL_PGDATA="$RUN_DIR/pooler-pg$ver"
CL_PORT=$((ROOT_REGRESS_PORT_BASE + 40 + ver))
PB_PORT=$((ROOT_REGRESS_PORT_BASE + 200 + ver))
PB_DIR="$RUN_DIR/pgbouncer-pg$ver"

stop_bouncer() {
    if [ -f "$PB_DIR/pgbouncer.pid" ]; then
        as_pg kill "$(as_pg cat "$PB_DIR/pgbouncer.pid")" 2>/dev/null || true
        sleep 0.5
    fi
    [ -e "$PB_DIR" ] && as_pg rm -rf "$PB_DIR"
    true
}
trap "stop_bouncer; cluster_down" EXIT
[ -n "${KEEP:-}" ] && trap - EXIT
trap 'exit 130' INT TERM
stop_bouncer
cluster_up
cluster_psql -d postgres -q -v ON_ERROR_STOP=1 -c "CREATE DATABASE pooltest"
cluster_psql -d pooltest -q -v ON_ERROR_STOP=1 >/dev/null <<'SQL'
CREATE EXTENSION pg_tenancy;
DROP ROLE IF EXISTS pool_app;
CREATE ROLE pool_app LOGIN;
SELECT tenancy.grant_app('pool_app');
SELECT count(tenancy.create_tenant('t' || n)) FROM generate_series(1, 50) n;
SELECT tenancy.add_signing_key('pool-key', decode(repeat('6e', 32), 'hex'));
CREATE TABLE items (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, tenant_id text, body text);
INSERT INTO items (tenant_id, body) SELECT 't' || (g % 50 + 1), 'seed' FROM generate_series(1, 5000) g;
SELECT tenancy.protect('items');
GRANT SELECT, INSERT, UPDATE ON items TO pool_app;
SQL

say "starting PgBouncer on 127.0.0.1:$PB_PORT (transaction pooling, 4 server connections)"
as_pg mkdir -p "$PB_DIR"
as_pg tee "$PB_DIR/userlist.txt" >/dev/null <<EOF_USERS
"pool_app" ""
"postgres" ""
EOF_USERS
as_pg tee "$PB_DIR/pgbouncer.ini" >/dev/null <<EOF_INI
[databases]
pooled = host=127.0.0.1 port=$CL_PORT dbname=pooltest pool_size=4 pool_mode=transaction
txn1 = host=127.0.0.1 port=$CL_PORT dbname=pooltest pool_size=1 pool_mode=transaction
sess1 = host=127.0.0.1 port=$CL_PORT dbname=pooltest pool_size=1 pool_mode=session
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $PB_PORT
unix_socket_dir =
auth_type = trust
auth_file = $PB_DIR/userlist.txt
max_client_conn = 200
server_reset_query = DISCARD ALL
ignore_startup_parameters = extra_float_digits
logfile = $PB_DIR/pgbouncer.log
pidfile = $PB_DIR/pgbouncer.pid
EOF_INI
as_pg pgbouncer -d -q "$PB_DIR/pgbouncer.ini"
bouncer_up=0
for _ in $(seq 1 50); do
    if PGCONNECT_TIMEOUT=1 "$CL_BINDIR/psql" -X -h 127.0.0.1 -p "$PB_PORT" -U pool_app -d pooled -Atc "SELECT 1" >/dev/null 2>&1; then
        bouncer_up=1
        break
    fi
    sleep 0.1
done
[ "$bouncer_up" = 1 ] || die "PgBouncer did not accept connections on 127.0.0.1:$PB_PORT (log: $PB_DIR/pgbouncer.log)"

# The client exits non-zero on a cross-tenant row, a bleed or any exception a worker raised.
python3 "$REPO_ROOT/tests/system/client/pooled_isolation.py" \
    "host=127.0.0.1 port=$PB_PORT dbname=pooled user=pool_app" \
    "host=localhost port=$CL_PORT dbname=pooltest user=postgres" ||
    die "the pooled client run failed (output above)"

# The session-scope rule, both ways. One server connection per pool makes the reuse certain.
token="$(cluster_psql -d pooltest -At -v ON_ERROR_STOP=1 -c "SELECT tenancy.sign_token(jsonb_build_object('tenant_id', 't7', 'exp', extract(epoch FROM now() + interval '1 hour')::bigint))")"
bouncer() { "$CL_BINDIR/psql" -X -h 127.0.0.1 -p "$PB_PORT" -U pool_app -d "$1" -At -v ON_ERROR_STOP=1 -v token="$token"; }
set_session_context() {
    local got
    got="$(bouncer "$1" <<<"SELECT tenancy.set_context(:'token', is_local => false) IS NOT NULL;")" ||
        die "set_context(is_local => false) through $1 failed"
    [ "$got" = t ] || die "set_context(is_local => false) through $1 returned '$got'"
}
set_session_context txn1
leaked="$(bouncer txn1 <<<"SELECT coalesce(tenancy.current_tenant(), 'none');")"
set_session_context sess1
after_reset="$(bouncer sess1 <<<"SELECT coalesce(tenancy.current_tenant(), 'none');")"
say "session context behind transaction pooling, next client sees tenant: $leaked"
say "session context behind session pooling + DISCARD ALL, next client sees tenant: $after_reset"
[ "$leaked" = t7 ] || die "expected the documented bleed of a session context behind transaction pooling, got '$leaked'"
[ "$after_reset" = none ] || die "DISCARD ALL did not clear the session context: '$after_reset'"
say "the rule holds: transaction-local contexts only behind transaction pooling (docs/clients.md)"
