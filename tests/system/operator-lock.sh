#!/usr/bin/env bash
# Usage: tests/system/operator-lock.sh 15|18
# Operators against tenants, with real concurrent sessions (issue 13, classes 8 and 5):
#  - a tenant that wrote an audit row, inserted under a row quota and took a foreign-key lock
#    keeps its transaction open; every operator action on that tenant (plan, settings, API
#    keys, export, deactivation) still completes under lock_timeout = 2s, its record landing
#    in the system chain marked tenant_chain_busy; the deactivation stops the tenant's next
#    transaction; every chain verifies afterwards; support, recorded only in the tenant's own
#    chain, waits for it instead (and leaves nothing behind when it gives up);
#  - a support carrier copied into a second backend of the same engineer works there until
#    end_support() in the first backend, and is refused (28000) from the second backend's
#    next transaction; a carrier that is still open stops when the engineer loses the grant.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
source "$(dirname "$0")/lib.sh"

ver="${1:?usage: tests/system/operator-lock.sh 15|18}"
install_extension "$ver"
CL_PGDATA="$RUN_DIR/oplock-pg$ver"
CL_PORT=$((ROOT_REGRESS_PORT_BASE + 160 + ver))
work="$(mktemp -d)"
sessions=()
close_sessions() {
    local fd
    for fd in "${sessions[@]}"; do eval "exec $fd>&-" 2>/dev/null || true; done
}
trap 'close_sessions; cluster_down; rm -rf "$work"' EXIT
trap 'exit 130' INT TERM

cluster_up
db() { cluster_psql -v ON_ERROR_STOP=1 -q -At -d oplock "$@"; }
cluster_psql -d postgres -q -v ON_ERROR_STOP=1 -c "CREATE DATABASE oplock"
db >/dev/null <<'SQL'
CREATE EXTENSION pg_tenancy;
CREATE ROLE op_app LOGIN;
CREATE ROLE op_admin LOGIN;
CREATE ROLE op_sup LOGIN;
SELECT tenancy.grant_app('op_app');
SELECT tenancy.grant_admin('op_admin');
SELECT tenancy.grant_support('op_sup');
SELECT tenancy.create_tenant('t1'), tenancy.create_tenant('t2');
SELECT tenancy.add_signing_key('op-key', decode(repeat('5a', 32), 'hex'));
SELECT tenancy.set_plan('gold', '{"statement_timeout": "10s"}');
CREATE TABLE notes (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, tenant_id text, body text);
CREATE TABLE folders (tenant_id text NOT NULL, id int NOT NULL, PRIMARY KEY (tenant_id, id));
CREATE TABLE docs (tenant_id text NOT NULL, folder int NOT NULL, body text,
                   FOREIGN KEY (tenant_id, folder) REFERENCES folders (tenant_id, id));
SELECT tenancy.protect('notes'), tenancy.protect('folders'), tenancy.protect('docs');
INSERT INTO folders VALUES ('t1', 1), ('t2', 1);
INSERT INTO notes (tenant_id, body) VALUES ('t2', 'seen by support');
GRANT SELECT, INSERT ON notes, folders, docs TO op_app, op_sup;
SELECT tenancy.set_quota('t1', 'notes', 100);
SQL
tok_t1="$(db -c "SELECT tenancy.sign_token('{\"tenant_id\": \"t1\", \"sub\": \"alice\"}', 'op-key')")"
key_t1="$(db -c "SELECT tenancy.create_api_key('t1', 'ci')")"

# A session is a psql reading from a FIFO: open NAME ROLE, then send NAME SQL... and wait for
# the marker each send ends with, so several backends can be interleaved step by step. A
# session goes on after an error (several must fail), so each send checks its own errors:
# send allows none, send_refused exactly the one it names.
declare -A fd_of
open_session() {
    local fd
    mkfifo "$work/$1.in"
    PGHOST=localhost PGPORT="$CL_PORT" "$CL_BINDIR/psql" -X -q -At -U "$2" -d oplock -v VERBOSITY=verbose \
        <"$work/$1.in" >"$work/$1.out" 2>&1 &
    exec {fd}>"$work/$1.in"
    fd_of[$1]=$fd
    sessions+=("$fd")
}
step=0
send_raw() { # send_raw NAME SQL: runs SQL in session NAME and waits until it is done
    local name="$1" marker i
    shift
    step=$((step + 1))
    marker="@@step-$step"
    printf '%s\n\\echo %s\n' "$*" "$marker" >&"${fd_of[$name]}"
    for i in $(seq 1 300); do
        grep -qx -- "$marker" "$work/$name.out" && return 0
        sleep 0.1
    done
    cat "$work/$name.out" >&2
    die "session $name did not finish: $*"
}
# The output of session NAME since its previous marker.
last() { awk '/^@@step-/ { prev = buf; buf = ""; next } { buf = buf $0 "\n" } END { printf "%s", prev }' "$work/$1.out" | sed '/^$/d'; }
send() { # send NAME SQL: as send_raw; any error is a failure
    local errors
    send_raw "$@"
    errors="$(error_lines "$(last "$1")")"
    if [ -n "$errors" ]; then
        printf '*** session %s failed on: %s\n%s\n' "$1" "${*:2}" "$errors" >&2
        fail=1
    fi
}
send_refused() { # send_refused DESCRIPTION NAME SQLSTATE MESSAGE SQL: SQL fails on exactly this error
    local desc="$1" name="$2" sqlstate="$3" message="$4" errors
    shift 4
    send_raw "$name" "$@"
    errors="$(error_lines "$(last "$name")")"
    if [ "$(grep -c . <<<"$errors")" -eq 1 ] && grep -qF -- "ERROR:  $sqlstate: $message" <<<"$errors"; then
        say "ok: $desc ($sqlstate)"
    else
        printf '*** %s: expected exactly one ERROR %s: %s..., got:\n%s\n' "$desc" "$sqlstate" "$message" "$(last "$name")" >&2
        fail=1
    fi
}

say "a tenant holds an audit head, a quota slot and a foreign-key lock in an open transaction"
open_session tenant op_app
send tenant "BEGIN;
SELECT tenancy.set_context('$tok_t1') IS NOT NULL;
SELECT tenancy.audit('held.open') > 0;
INSERT INTO notes (body) VALUES ('held');
INSERT INTO docs (folder, body) VALUES (1, 'held');"
check "the tenant's transaction is open" "t t" "$(last tenant | tr '\n' ' ' | sed 's/ $//')"

admin() { # admin DESCRIPTION SQL: as op_admin, with a 2-second lock_timeout; must succeed
    local out
    if out="$(PGHOST=localhost PGPORT="$CL_PORT" "$CL_BINDIR/psql" -X -q -At -U op_admin -d oplock \
        -v ON_ERROR_STOP=1 -c "SET lock_timeout = '2s'" -c "$2" 2>&1)"; then
        say "ok: $1 did not wait"
    else
        printf '*** %s: %s\n' "$1" "$out" >&2
        fail=1
    fi
}
admin "set_tenant_plan" "SELECT tenancy.set_tenant_plan('t1', 'gold')"
admin "set_tenant_settings" "SELECT tenancy.set_tenant_settings('t1', '{}')"
admin "create_api_key" "SELECT tenancy.create_api_key('t1', 'second') IS NOT NULL"
admin "revoke_api_key" "SELECT tenancy.revoke_api_key('$key_t1')"
admin "revoke_feature" "SELECT tenancy.grant_feature('t1', 'reports'), tenancy.revoke_feature('t1', 'reports')"
admin "export_tenant" "SELECT count(*) FROM tenancy.export_tenant('t1')"
# Support is not an operator: its session must be in the tenant's own chain (which the
# tenant reads), so it waits for the tenant's head, and gives up cleanly.
as_sup() { PGHOST=localhost PGPORT="$CL_PORT" "$CL_BINDIR/psql" -X -q -At -U op_sup -d oplock "$@"; }
expect_error "support on a busy tenant waits for the tenant's chain (lock timeout)" 55P03 \
    "canceling statement due to lock timeout" \
    as_sup -c "SET lock_timeout = '2s'" -c "SELECT tenancy.begin_support('t1', 'INC-8: cut-off', 5) IS NOT NULL"
check "and leaves no session behind" "0" \
    "$(db -c "SELECT count(*) FROM tenancy.support_sessions WHERE reason = 'INC-8: cut-off'")"
admin "deactivate_tenant" "SELECT tenancy.deactivate_tenant('t1')"

send tenant "COMMIT;"
check "the held transaction commits" "" "$(last tenant)"
send_refused "the deactivation stops the tenant's next transaction" tenant 28000 \
    "pg_tenancy: token refused: the tenant is deactivated" "BEGIN;
SELECT tenancy.set_context('$tok_t1');
ROLLBACK;"
check "operator events went to the system chain, marked busy" \
    "tenant_plan_set tenant_settings_set api_key_created api_key_revoked tenant_exported tenant_deactivated" \
    "$(db -c "SELECT string_agg(event, ' ' ORDER BY seq) FROM tenancy.audit_log
               WHERE tenant_id = '(system)' AND detail->>'tenant' = 't1' AND (detail->>'tenant_chain_busy')::boolean")"
check "every chain verifies" "t1:true t2:true (system):true" \
    "$(db -c "SELECT string_agg(t || ':' || (SELECT ok FROM tenancy.verify_audit(t)), ' ' ORDER BY t = '(system)', t)
               FROM (SELECT DISTINCT tenant_id AS t FROM tenancy.audit_log) s")"
admin "reactivate_tenant (chain free again)" "SELECT tenancy.reactivate_tenant('t1')"
check "with the chain free, the event is in the tenant's own chain" "tenant_reactivated" \
    "$(db -c "SELECT event FROM tenancy.audit_log WHERE tenant_id = 't1' ORDER BY seq DESC LIMIT 1")"

say "a support carrier copied into a second backend dies with its session"
open_session sup_a op_sup
open_session sup_b op_sup
send sup_a "SELECT tenancy.begin_support('t2', 'INC-5: replay', 5) IS NOT NULL;
SELECT 'carrier=' || current_setting('tenancy.context');"
carrier="$(last sup_a | sed -n 's/^carrier=//p')"
send sup_b "SELECT set_config('tenancy.context', '$carrier', false) IS NOT NULL;
SELECT count(*) FROM notes;"
check "the copy works while the session is open" "t 1" "$(last sup_b | tr '\n' ' ' | sed 's/ $//')"
send sup_a "SELECT tenancy.end_support();"
send_refused "the copy is refused from the next transaction" sup_b 28000 \
    "pg_tenancy: support context refused: its support session has ended" "SELECT count(*) FROM notes;"

say "an open support session stops when the engineer loses the grant"
send sup_a "SELECT tenancy.begin_support('t2', 'INC-5: revoke', 5) IS NOT NULL;
SELECT count(*) FROM notes;"
check "the new session works" "t 1" "$(last sup_a | tr '\n' ' ' | sed 's/ $//')"
db -c "REVOKE EXECUTE ON FUNCTION tenancy.begin_support(text, text, integer) FROM op_sup"
send_refused "refused once the grant is gone" sup_a 28000 \
    "pg_tenancy: support context refused: the role no longer holds the support grant" "SELECT count(*) FROM notes;"

if [ "$fail" -ne 0 ]; then
    for f in "$work"/*.out; do printf -- '---- %s ----\n' "$(basename "$f")" >&2; cat "$f" >&2; done
    die "operator lock checks failed on PostgreSQL $ver"
fi
say "operators never wait on a tenant, and support carriers die with their session (PostgreSQL $ver)"
