#!/usr/bin/env bash
# Usage: tests/system/quickstart.sh 15|18
# The README's "Quickstart in SQL" runs as written: the ```sql blocks between
# <!-- quickstart:begin --> and <!-- quickstart:end --> in README.md, concatenated, verbatim,
# through psql with ON_ERROR_STOP in a fresh database of a throwaway cluster (any error fails
# the script). Then, as the superuser: the rows it wrote are where the README says they are,
# and assert_isolated() passes. The same for `make demo`'s demo/walkthrough.sql (which lets
# some statements fail on purpose, with ON_ERROR_STOP off around them) in a second database.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=/dev/null
if [ -f "$here/lib.sh" ]; then source "$here/lib.sh"; else source "$here/../../scripts/lib.sh"; fi

ver="${1:?usage: tests/system/quickstart.sh 15|18}"
install_extension "$ver"
CL_PGDATA="$RUN_DIR/quickstart-pg$ver"
CL_PORT=$((ROOT_REGRESS_PORT_BASE + 180 + ver))

block="$(mktemp)"
trap 'cluster_down; rm -f "$block"' EXIT
trap 'exit 130' INT TERM

# Only the fenced ```sql lines between the markers: the prose around them is not SQL.
awk '/<!-- quickstart:begin -->/ { on = 1; next }
     /<!-- quickstart:end -->/   { on = 0 }
     on && /^```sql$/ { fence = 1; next }
     on && fence && /^```$/ { fence = 0; next }
     on && fence { print }' "$REPO_ROOT/README.md" >"$block"
[ -s "$block" ] || die "no quickstart block between the markers in README.md"
grep -q 'assert_isolated' "$block" || die "the README quickstart no longer calls assert_isolated()"

cluster_up
cluster_psql -d postgres -q -c "CREATE DATABASE quickstart" -c "CREATE DATABASE walkthrough"

say "running the README quickstart ($(wc -l <"$block") lines) verbatim"
if ! out="$(cluster_psql -d quickstart -v ON_ERROR_STOP=1 -f "$block" 2>&1)"; then
    printf -- '---- output ----\n%s\n' "$out" >&2
    die "the README quickstart fails as written on PostgreSQL $ver"
fi
# psql exits 0 past a WARNING: the quickstart must not raise one either (a context set
# outside a transaction, say).
if grep -q 'WARNING' <<<"$out"; then
    printf -- '---- output ----\n%s\n' "$out" >&2
    die "the README quickstart raises a warning on PostgreSQL $ver"
fi

check="$(cluster_psql -d quickstart -v ON_ERROR_STOP=1 -At 2>&1 <<'SQL'
SELECT 'rows: ' || string_agg(tenant_id || '=' || name, ',' ORDER BY tenant_id, name) FROM hr.employees;
SELECT 'protected: ' || string_agg(tbl::text, ',') FROM tenancy.protected_tables;
SELECT 'findings: ' || coalesce(string_agg(rule, ',' ORDER BY rule), 'none')
  FROM tenancy.check() WHERE severity IN ('critical', 'high');
-- Called on its own: in a subquery whose column nobody reads, the planner drops the (STABLE)
-- call, and nothing would be checked.
SELECT tenancy.assert_isolated();
SELECT 'assert_isolated: passed';
SELECT 'audit: ' || count(*) FROM tenancy.audit_log WHERE tenant_id = 'acme' AND event = 'payroll.approved' AND actor = 'alice';
SELECT tenancy.sign_token('{"tenant_id": "globex"}') AS g, tenancy.sign_token('{"tenant_id": "acme"}') AS a \gset
SET ROLE app;
BEGIN;
SELECT tenancy.set_context(:'g') IS NOT NULL AS set \gset
SELECT 'app_as_globex: ' || count(*) FROM hr.employees;
COMMIT;
BEGIN;
SELECT tenancy.set_context(:'a') IS NOT NULL AS set \gset
SELECT 'app_as_acme: ' || count(*) FROM hr.employees;
COMMIT;
SQL
)" || die "checking the quickstart's database failed: $check"
fail=0
for line in "rows: acme=Chen" "protected: hr.employees" "findings: none" "assert_isolated: passed" "audit: 1" \
    "app_as_globex: 0" "app_as_acme: 1"; do
    if grep -qxF -- "$line" <<<"$check"; then say "ok: $line"; else printf '*** expected: %s\n' "$line" >&2; fail=1; fi
done

say "running demo/walkthrough.sql"
if ! wout="$(cluster_psql -d walkthrough -v ON_ERROR_STOP=1 -f "$REPO_ROOT/demo/walkthrough.sql" 2>&1)"; then
    printf -- '---- output ----\n%s\n' "$wout" >&2
    die "demo/walkthrough.sql fails on PostgreSQL $ver"
fi
if wcheck="$(cluster_psql -d walkthrough -v ON_ERROR_STOP=1 -At \
    -c "SELECT tenancy.assert_isolated()" -c "SELECT 'assert_isolated: passed'" 2>&1)" &&
    grep -qxF "assert_isolated: passed" <<<"$wcheck"; then
    say "ok: the walkthrough's schema passes assert_isolated()"
else
    printf '*** the walkthrough schema fails assert_isolated(): %s\n' "$wcheck" >&2
    fail=1
fi
if [ "$fail" -ne 0 ]; then
    printf -- '---- quickstart output ----\n%s\n---- checks ----\n%s\n' "$out" "$check" >&2
    die "quickstart check failed on PostgreSQL $ver"
fi
say "the README quickstart and the demo walkthrough run as written and pass assert_isolated() (PostgreSQL $ver)"
