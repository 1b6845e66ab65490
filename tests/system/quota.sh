#!/usr/bin/env bash
# Usage: tests/system/quota.sh 15|18
# Row quotas under concurrent inserters: 8 psql sessions of one tenant insert at once against
# a quota, in single-row and multi-row statements and mixed with deletes. The quota must never
# be exceeded, every refusal must be the quota's own error (SQLSTATE 54000; no deadlock, no
# other failure), and the rows present must always equal max_rows - sum(budget). Last, a plan
# change reaches a backend that has the tenant (and its limits) cached.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
source "$(dirname "$0")/lib.sh"

ver="${1:?usage: tests/system/quota.sh 15|18}"
install_extension "$ver"
CL_PGDATA="$RUN_DIR/quota-pg$ver"
CL_PORT=$((ROOT_REGRESS_PORT_BASE + 60 + ver))
work="$(mktemp -d)"
trap 'cluster_down; rm -rf "$work"' EXIT
trap 'exit 130' INT TERM

WORKERS=8
cluster_up
db() { cluster_psql -v ON_ERROR_STOP=1 -q -At -d quota_test "$@"; }
cluster_psql -d postgres -q -v ON_ERROR_STOP=1 -c "CREATE DATABASE quota_test"
db <<'SQL'
CREATE EXTENSION pg_tenancy;
CREATE ROLE quota_job LOGIN;
SELECT tenancy.grant_trusted('quota_job') \g /dev/null
SELECT tenancy.create_tenant(t) FROM unnest(ARRAY['acme', 'globex', 'initech']) t \g /dev/null
CREATE TABLE items (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, tenant_id text NOT NULL, body text);
INSERT INTO items (tenant_id, body) SELECT 'acme', 'seed' FROM generate_series(1, 10);
SELECT tenancy.protect('items') \g /dev/null
GRANT SELECT, INSERT, DELETE ON items TO quota_job;
SELECT tenancy.set_quota('acme', 'items', 100) \g /dev/null
SELECT tenancy.set_quota('globex', 'items', 250) \g /dev/null
SELECT tenancy.set_quota('initech', 'items', 60) \g /dev/null
SQL

job() { PGHOST=localhost PGPORT="$CL_PORT" "$CL_BINDIR/psql" -X -q -At -U quota_job -d quota_test "$@"; }

# run_workers NAME: runs $work/NAME.sql in $WORKERS concurrent sessions as quota_job; each
# session's output goes to $work/NAME.<i>.out. The sessions go on after an error (quota refusals
# are expected mid-script; check_errors judges every error), but each psql must exit 0: a lost
# connection or a crashed backend fails the phase.
run_workers() {
    local pids=() i failed=0
    for i in $(seq 1 "$WORKERS"); do
        job -v VERBOSITY=verbose -v worker="$i" -f "$work/$1.sql" >"$work/$1.$i.out" 2>&1 &
        pids+=($!)
    done
    for i in "${!pids[@]}"; do
        wait "${pids[$i]}" || { printf '*** %s: session %s exited %s\n' "$1" "$((i + 1))" "$?" >&2; failed=1; }
    done
    [ "$failed" = 0 ] || { cat "$work/$1".*.out >&2; die "$1: a session failed"; }
}

# check_errors NAME: prints how many quota refusals (SQLSTATE 54000) a phase had; dies if any
# other error (or warning) was reported.
check_errors() {
    local all quota
    all="$(cat "$work/$1".*.out | grep -cE '(^|: )(ERROR|FATAL|PANIC|WARNING):' || true)"
    quota="$(cat "$work/$1".*.out | grep -cE '(^|: )ERROR:  54000: pg_tenancy: row quota exceeded' || true)"
    if [ "$all" != "$quota" ]; then
        cat "$work/$1".*.out | grep -E '(ERROR|FATAL|PANIC|WARNING):' | grep -vE 'ERROR:  54000: pg_tenancy: row quota exceeded' |
            sort | uniq -c >&2
        die "$1: $((all - quota)) failures other than the quota's own"
    fi
    echo "$quota"
}

# in_use TENANT: rows present (as superuser, no RLS) and what the slots say is in use.
in_use() {
    db -c "SELECT (SELECT count(*) FROM items WHERE tenant_id = '$1') || ' ' ||
                  (SELECT q.max_rows - sum(s.budget) FROM tenancy.quotas q
                     JOIN tenancy.quota_slots s USING (tenant, tbl) WHERE q.tenant = '$1' GROUP BY q.max_rows)"
}

# Phase 1: single-row inserts, one per transaction. acme has 10 rows and room for 90 more;
# 8 x 20 attempts.
for _ in $(seq 1 20); do
    cat <<'SQL'
BEGIN;
SELECT tenancy.set_tenant('acme') \g /dev/null
INSERT INTO items (body) VALUES ('w' || :'worker');
COMMIT;
SQL
done >"$work/single.sql"
say "phase 1: $WORKERS sessions x 20 single-row inserts against a quota of 100 (10 rows present)"
run_workers single
refused="$(check_errors single)"
usage="$(in_use acme)"
read -r rows used <<<"$usage"
say "acme: $rows rows, $used in use by the slots, $refused inserts refused (SQLSTATE 54000)"
[ "$rows" = 100 ] || die "expected exactly 100 rows of acme, found $rows"
[ "$used" = 100 ] || die "the slots count $used rows in use, expected 100"
[ "$refused" = $((WORKERS * 20 - 90)) ] || die "expected $((WORKERS * 20 - 90)) refusals, got $refused"
expect_error "the 101st row is refused" 54000 \
    "pg_tenancy: row quota exceeded: tenant 'acme' may keep at most 100 rows in public.items; it has 100 and this statement adds 1" job <<'SQL'
BEGIN;
SELECT tenancy.set_tenant('acme') \g /dev/null
INSERT INTO items (body) VALUES ('one too many');
SQL
[ "$fail" = 0 ] || die "the 101st row was not refused with SQLSTATE 54000"

# Phase 2: 7 rows per statement against 250: refused only when fewer than 7 are left.
for _ in $(seq 1 10); do
    cat <<'SQL'
BEGIN;
SELECT tenancy.set_tenant('globex') \g /dev/null
INSERT INTO items (body) SELECT 'bulk' || :'worker' FROM generate_series(1, 7);
COMMIT;
SQL
done >"$work/bulk.sql"
say "phase 2: $WORKERS sessions x 10 statements of 7 rows against a quota of 250"
run_workers bulk
refused="$(check_errors bulk)"
usage="$(in_use globex)"
read -r rows used <<<"$usage"
say "globex: $rows rows, $used in use by the slots, $refused statements refused"
[ "$rows" = "$used" ] || die "rows ($rows) and slots ($used) disagree"
[ "$rows" -le 250 ] && [ "$rows" -gt $((250 - 7)) ] || die "expected 244..250 rows, found $rows"
[ $((rows % 7)) = 0 ] || die "a statement was applied in part: $rows rows"

# Phase 3: inserts and deletes at once, near the limit.
for _ in $(seq 1 15); do
    cat <<'SQL'
BEGIN;
SELECT tenancy.set_tenant('initech') \g /dev/null
INSERT INTO items (body) SELECT 'mix' || :'worker' FROM generate_series(1, 3);
COMMIT;
BEGIN;
SELECT tenancy.set_tenant('initech') \g /dev/null
DELETE FROM items WHERE id = (SELECT min(id) FROM items WHERE body = 'mix' || :'worker');
COMMIT;
SQL
done >"$work/mixed.sql"
say "phase 3: $WORKERS sessions inserting 3 and deleting 1 at a time against a quota of 60"
run_workers mixed
refused="$(check_errors mixed)"
usage="$(in_use initech)"
read -r rows used <<<"$usage"
say "initech: $rows rows, $used in use by the slots, $refused statements refused"
[ "$rows" = "$used" ] || die "rows ($rows) and slots ($used) disagree"
[ "$rows" -le 60 ] || die "the quota of 60 was exceeded: $rows rows"
[ "$refused" -gt 0 ] || die "the quota never refused anything; the phase tested nothing"

# Limits are cached with the tenant; a plan change must reach a backend that already cached
# it, from that backend's next transaction.
db -c "SELECT tenancy.set_plan('small', '{\"statement_timeout\": \"100ms\"}'), tenancy.set_tenant_plan('acme', 'small')" >/dev/null
python3 - "host=localhost port=$CL_PORT dbname=quota_test user=quota_job" \
    "host=localhost port=$CL_PORT dbname=quota_test user=postgres" <<'PY' || die "a plan change did not reach a backend that had cached the tenant"
import sys, psycopg
app = psycopg.connect(sys.argv[1])
admin = psycopg.connect(sys.argv[2], autocommit=True)
def timeout_under_acme():
    with app.transaction():
        app.execute("SELECT tenancy.set_tenant('acme')")
        return app.execute("SELECT current_setting('statement_timeout')").fetchone()[0]
first = timeout_under_acme()
admin.execute("""SELECT tenancy.set_plan('small', '{"statement_timeout": "40ms"}')""")
second = timeout_under_acme()
print(f"==> quota: statement_timeout under acme: {first}, after the plan changed in another session: {second}")
sys.exit(0 if (first, second) == ("100ms", "40ms") else 1)
PY

other="$(db -c "SELECT count(*) FROM items WHERE tenant_id NOT IN ('acme', 'globex', 'initech')")"
[ "$other" = 0 ] || die "rows outside the three tenants: $other"
say "row quotas hold under $WORKERS concurrent sessions (PostgreSQL $ver)"
