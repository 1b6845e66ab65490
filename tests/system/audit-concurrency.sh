#!/usr/bin/env bash
# Usage: tests/system/audit-concurrency.sh 15|18
# The audit trail against a throwaway cluster, with real concurrent sessions:
#  - 8 sessions write 10,000 audit rows for one tenant while 6 more write for three others
#    (tests/system/client/audit_concurrency.py: READ COMMITTED, REPEATABLE READ and SERIALIZABLE
#    mixed, deliberate rollbacks); every chain then verifies, inside the database
#    (verify_audit) and outside it (scripts/verify-audit.py), with seq 1..n and no gap;
#  - one byte of one row changed by a superuser (triggers bypassed) is reported by both, by id;
#  - TRUNCATE is refused to the table's owner;
#  - a support session expires after its minute (a real wait), and can still be ended;
#  - a refused token leaves a JSON LOG line with the claimed tenant, reason, role and client
#    address but not the token, and is counted in tenancy.stats() across sessions;
#  - pg_dump / pg_restore keeps every chain verifiable, and new rows continue them;
#  - without shared_preload_libraries, tenancy.stats() counts per session and says so.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
source "$(dirname "$0")/lib.sh"

ver="${1:?usage: tests/system/audit-concurrency.sh 15|18}"
install_extension "$ver"
CL_PGDATA="$RUN_DIR/audit-pg$ver"
CL_PORT=$((ROOT_REGRESS_PORT_BASE + 130 + ver))

dump="$(mktemp)"
support_out="$(mktemp)"
trap 'cluster_down; rm -f "$dump" "$support_out"' EXIT
trap 'exit 130' INT TERM
cluster_up
conninfo() { echo "host=localhost port=$CL_PORT user=${2:-postgres} dbname=$1"; }
db() { cluster_psql -v ON_ERROR_STOP=1 -d "$@"; }
db postgres -q -c "CREATE DATABASE audit_src" -c "CREATE DATABASE audit_dst"

db audit_src -q >/dev/null <<'SQL'
CREATE EXTENSION pg_tenancy;
DROP ROLE IF EXISTS aud_worker;
DROP ROLE IF EXISTS aud_sup;
DROP ROLE IF EXISTS aud_app;
CREATE ROLE aud_worker LOGIN;
CREATE ROLE aud_sup LOGIN;
CREATE ROLE aud_app LOGIN;
SELECT tenancy.grant_trusted('aud_worker');
SELECT tenancy.grant_support('aud_sup');
SELECT tenancy.grant_app('aud_app');
SELECT tenancy.create_tenant('t' || n) FROM generate_series(1, 4) n;
SELECT tenancy.add_signing_key('aud-key', decode(repeat('5a', 32), 'hex'));
CREATE TABLE notes (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, tenant_id text, body text);
SELECT tenancy.protect('notes');
GRANT SELECT, INSERT ON notes TO aud_sup;
SQL

say "support session with a 1-minute expiry, in the background"
# ON_ERROR_STOP except for the one statement that must fail (the expired context); its SQLSTATE
# is echoed, and every error line is checked below.
(
    PGHOST=localhost PGPORT="$CL_PORT" PGUSER=aud_sup "$CL_BINDIR/psql" -X -At -d audit_src \
        -v ON_ERROR_STOP=1 -v VERBOSITY=verbose 2>&1 <<'SQL'
SELECT 'begin: ' || (tenancy.begin_support('t3', 'INC-1: expiry check', 1)->>'source');
SELECT 'tenant: ' || tenancy.current_tenant();
INSERT INTO notes (body) VALUES ('written by support');
SELECT pg_sleep(62);
\set ON_ERROR_STOP 0
SELECT 'after: ' || coalesce(tenancy.current_tenant(), 'none');
\echo 'after_sqlstate: ':LAST_ERROR_SQLSTATE
\set ON_ERROR_STOP 1
SELECT 'end: ' || pg_typeof(tenancy.end_support());
SELECT 'cleared: ' || coalesce(tenancy.current_tenant(), 'none');
SQL
) >"$support_out" &
support_pid=$!

say "8 sessions x 1,250 rows for t1, 2 x 500 for each of t2..t4, at once"
load="$(python3 "$REPO_ROOT/tests/system/client/audit_concurrency.py" "$(conninfo audit_src aud_worker)")" ||
    { printf '%s\n' "$load" >&2; die "a writer failed"; }
say "load: $load"

chains="$(db audit_src -At <<'SQL'
SELECT string_agg(format('%s=%s/%s/%s/%s', tenant_id, n, max_seq, v.ok, v.checked), ' ' ORDER BY tenant_id)
  FROM (SELECT tenant_id, count(*) AS n, max(seq) AS max_seq FROM tenancy.audit_log
         WHERE tenant_id LIKE 't_' GROUP BY tenant_id) c,
       LATERAL tenancy.verify_audit(c.tenant_id) v;
SQL
)"
# Each tenant: its tenant_created row plus the committed load (t3 also gets its support rows,
# counted once the support session has finished, below).
check "t1, t2, t4: rows = max(seq), verify_audit ok" \
    "t1=10001/10001/t/10001 t2=1001/1001/t/1001 t4=1001/1001/t/1001" \
    "$(tr ' ' '\n' <<<"$chains" | grep -v '^t3=' | paste -sd' ')"

check "t1's rows were committed under all three isolation levels" "3" \
    "$(db audit_src -At -c "SELECT count(DISTINCT detail->>'level') FROM tenancy.audit_log WHERE tenant_id = 't1' AND event = 'load.write'")"

check "outside verifier's known answer = the extension's (crates/tenancy-core/src/audit.rs)" \
    '{"h1": "b037ef80dc953acc8419b1f228f0a5a2bc1a7717f2ed670e7b6e0343066e26c9", "h2": "0a18a6f95ea134398cd93a336ddd13d9dbd0b79454d5c212f4c423b40295ce54"}' \
    "$(python3 "$REPO_ROOT/scripts/verify-audit.py" --self-test)"
rc=0
outside="$(python3 "$REPO_ROOT/scripts/verify-audit.py" "$(conninfo audit_src)" --all)" || rc=$?
check "outside verifier exits 0" "0" "$rc"
check "outside verifier: every chain ok (t1..t4, system)" "5" "$(grep -c '"ok": true' <<<"$outside")"

say "one byte of one row of t2 changed by a superuser, triggers bypassed"
victim="$(db audit_src -At -c "SELECT id FROM tenancy.audit_log WHERE tenant_id = 't2' AND seq = 500")"
db audit_src -q -c "SET session_replication_role = replica;
    UPDATE tenancy.audit_log SET event = overlay(event placing 'L' from 1 for 1) WHERE id = $victim"
check "verify_audit reports the changed row" "f|1001|$victim" \
    "$(db audit_src -At -c "SELECT * FROM tenancy.verify_audit('t2')")"
rc=0
bad="$(python3 "$REPO_ROOT/scripts/verify-audit.py" "$(conninfo audit_src)" t2)" || rc=$?
check "outside verifier exits 1" "1" "$rc"
check "outside verifier reports the changed row" "$victim" \
    "$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["first_bad_id"])' "$bad")"
db audit_src -q -c "SET session_replication_role = replica;
    UPDATE tenancy.audit_log SET event = 'load.write' WHERE id = $victim"
check "restored byte verifies again" "t|1001|" "$(db audit_src -At -c "SELECT * FROM tenancy.verify_audit('t2')")"

expect_error "TRUNCATE refused to the owner" 42501 "pg_tenancy: the audit log is append-only: TRUNCATE is refused" \
    db audit_src -c 'TRUNCATE tenancy.audit_log'

say "a refused token: LOG line and counter"
token="$(db audit_src -At -c "SELECT tenancy.sign_token('{\"tenant_id\": \"claimed-tenant\"}')")"
forged="${token%.*}.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
# As a bind parameter (so PostgreSQL's own statement logging has no token either), over TCP.
python3 - "host=127.0.0.1 port=$CL_PORT user=aud_app dbname=audit_src" "$forged" <<'PY'
import sys, psycopg
with psycopg.connect(sys.argv[1]) as conn:
    try:
        conn.execute("SELECT tenancy.set_context(%s)", (sys.argv[2],))
        sys.exit("the forged token was accepted")
    except psycopg.errors.InvalidAuthorizationSpecification:
        pass
PY
sleep 0.5
line="$(as_pg grep -h '"event":"context_refused"' "$CL_PGDATA/server.log" | grep 'claimed-tenant' | tail -1)"
for want in '"reason":"bad_signature"' '"tenant_claim":"claimed-tenant"' '"session_user":"aud_app"' \
    '"client_addr":"127.0.0.1"' '"what":"token"'; do
    check "LOG line has $want" "1" "$(grep -cF -- "$want" <<<"$line" || true)"
done
check "LOG never has the token" "0" "$(as_pg grep -cF -- "${token%.*}" "$CL_PGDATA/server.log" || true)"
check "stats() counts it from another session" "t" \
    "$(db audit_src -At -c "SELECT refused >= 1 FROM tenancy.stats() WHERE reason = 'bad_signature'")"

say "waiting for the support session"
rc=0
wait "$support_pid" || rc=$?
sup="$(cat "$support_out")"
check "the support session's psql exits 0" "0" "$rc"
check "support begins" "1" "$(grep -cx 'begin: support' <<<"$sup")"
check "support inside t3" "1" "$(grep -cx 'tenant: t3' <<<"$sup")"
check "expired after its minute: its only error" \
    "ERROR:  28000: pg_tenancy: tenant context refused: it has expired" "$(error_lines "$sup")"
check "expired after its minute: SQLSTATE 28000" "1" "$(grep -cx 'after_sqlstate: 28000' <<<"$sup")"
check "end_support after expiry" "1" "$(grep -cx 'end: void' <<<"$sup")"
check "no context afterwards" "1" "$(grep -cx 'cleared: none' <<<"$sup")"
check "t3's support rows" "support_begun:true support_write:true support_ended:true" \
    "$(db audit_src -At -c "SELECT string_agg(event || ':' || (support->>'reason' = 'INC-1: expiry check'), ' ' ORDER BY seq)
        FROM tenancy.audit_log WHERE tenant_id = 't3' AND event LIKE 'support%'")"
check "support_ended says expired" "true" \
    "$(db audit_src -At -c "SELECT detail->>'expired' FROM tenancy.audit_log WHERE tenant_id = 't3' AND event = 'support_ended'")"
check "t3 verifies (1001 + 3 support rows)" "t|1004|" "$(db audit_src -At -c "SELECT * FROM tenancy.verify_audit('t3')")"

say "pg_dump | pg_restore --exit-on-error into a fresh database"
PGHOST=localhost PGPORT="$CL_PORT" PGUSER=postgres "$CL_BINDIR/pg_dump" -Fc -d audit_src -f "$dump"
PGHOST=localhost PGPORT="$CL_PORT" PGUSER=postgres "$CL_BINDIR/pg_restore" --exit-on-error -d audit_dst "$dump" ||
    die "pg_restore failed"
check "restored: every chain verifies" "t1:true t2:true t3:true t4:true (system):true" \
    "$(db audit_dst -At -c "SELECT string_agg(t || ':' || (SELECT ok FROM tenancy.verify_audit(t)), ' ' ORDER BY t = '(system)', t)
        FROM (SELECT DISTINCT tenant_id AS t FROM tenancy.audit_log) s")"
rc=0
restored="$(python3 "$REPO_ROOT/scripts/verify-audit.py" "$(conninfo audit_dst)" --all)" || rc=$?
check "restored: outside verifier exits 0" "0" "$rc"
check "restored: outside verifier ok" "5" "$(grep -c '"ok": true' <<<"$restored")"
db audit_dst -q -c "SET ROLE aud_worker" -c "BEGIN" -c "SELECT tenancy.set_tenant('t1')" \
    -c "SELECT tenancy.audit('after.restore')" -c "COMMIT" >/dev/null
check "restored: a new row continues t1's chain" "t|10002|" \
    "$(db audit_dst -At -c "SELECT * FROM tenancy.verify_audit('t1')")"

say "restart without shared_preload_libraries: counters per session, no crash"
# (ALTER SYSTEM would store '""', a library named "", which the server cannot start with.)
printf "shared_preload_libraries = ''\n" | as_pg tee -a "$CL_PGDATA/postgresql.conf" >/dev/null
as_pg "$CL_BINDIR/pg_ctl" --pgdata="$CL_PGDATA" --log="$CL_PGDATA/server.log" --mode=fast --wait restart >/dev/null
nopreload="$(python3 - "host=127.0.0.1 port=$CL_PORT user=postgres dbname=audit_src" "$forged" <<'PY'
import sys, psycopg
notices = []
with psycopg.connect(sys.argv[1], autocommit=True) as conn:
    conn.add_notice_handler(lambda d: notices.append(d.message_primary))
    for _ in range(2):
        try:
            conn.execute("SELECT tenancy.set_context(%s)", (sys.argv[2],))
        except psycopg.errors.InvalidAuthorizationSpecification:
            pass
    n = conn.execute("SELECT refused FROM tenancy.stats() WHERE reason = 'bad_signature'").fetchone()[0]
print(n, "session-only" if any("this session only" in m for m in notices) else "no-notice")
PY
)"
check "not preloaded: this session's count, with a NOTICE" "2 session-only" "$nopreload"
check "not preloaded: audit still verifies" "t|1001|" "$(db audit_src -At -c "SELECT * FROM tenancy.verify_audit('t2')")"

if [ "$fail" -ne 0 ]; then
    printf -- '---- support session ----\n%s\n---- outside ----\n%s\n' "$sup" "$outside" >&2
    die "audit checks failed on PostgreSQL $ver"
fi
say "audit chains hold under concurrency, tampering, expiry and dump/restore (PostgreSQL $ver)"
