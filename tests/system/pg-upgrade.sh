#!/usr/bin/env bash
# Usage: tests/system/pg-upgrade.sh [15]   (the old major version; the new one is 18)
# pg_upgrade of a database using pg_tenancy from PostgreSQL 15 to 18: the realistic database of
# tests/system/release-fixture.sh on 15 (tenants, keys, API keys, protected tables of every
# kind, scoped keys, an enrolled schema, plan, quota, benchmark view, pseudonym secret, audit
# chains, a support session), pg_upgrade --check and pg_upgrade (--link is not used: the old
# cluster stays usable), then on 18: isolation and refusals, check() and assert_isolated(), the
# token and API key issued on 15, contexts, audit chains verifying and continuing, pseudonyms
# unchanged, the DDL guard armed.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
source "$(dirname "$0")/lib.sh"
# shellcheck source=../../scripts/releases.sh
source "$REPO_ROOT/scripts/releases.sh"
# shellcheck source-path=SCRIPTDIR
source "$(dirname "$0")/release-fixture.sh"

old="${1:-15}"
new=18
[ "$old" -lt "$new" ] || die "usage: tests/system/pg-upgrade.sh 15 (the old major version)"
install_extension "$new"
new_bindir="$CL_BINDIR"
install_extension "$old"
old_bindir="$CL_BINDIR"
old_pgdata="$RUN_DIR/pg-upgrade-old-pg$old"
new_pgdata="$RUN_DIR/pg-upgrade-new-pg$new"
old_port=$((ROOT_REGRESS_PORT_BASE + 240 + old))
new_port=$((ROOT_REGRESS_PORT_BASE + 240 + new))
sockdir="$RUN_DIR/pg-upgrade-sock"
use_old() { CL_BINDIR="$old_bindir" CL_PGDATA="$old_pgdata" CL_PORT="$old_port"; }
use_new() { CL_BINDIR="$new_bindir" CL_PGDATA="$new_pgdata" CL_PORT="$new_port"; }
stop() { as_pg "$CL_BINDIR/pg_ctl" --pgdata="$CL_PGDATA" --mode=fast --wait stop >/dev/null; }
cleanup() {
    use_new; cluster_down
    use_old; cluster_down
    as_pg rm -rf "$sockdir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
db() { cluster_psql -v ON_ERROR_STOP=1 -q -At -d "$@"; }

use_old
cluster_up
fixture_roles
db postgres -c "CREATE DATABASE pgup"
db pgup -c "CREATE EXTENSION pg_tenancy"
fixture_build pgup
token="$(fixture_token pgup)"
api_key="$(fixture_api_key pgup)"
pseudonyms="$(fixture_pseudonyms pgup)"
[[ "$pseudonyms" =~ ^([a-z2-7]{26}( |$)){3}$ ]] || die "unexpected pseudonyms on $old: '$pseudonyms'"
audit_rows="$(db pgup -c "SELECT count(*) FROM tenancy.audit_log")"
# This machine's PostgreSQL 15 (Debian 15.20-0+deb12u1) gives every column an attribute option
# pg_attver that PostgreSQL 18 does not know: pg_upgrade's schema restore stops on it ("unrecognized
# parameter"), for any database, with or without pg_tenancy. Dropped from the old catalog first
# (nothing reads it back); docs/upgrading.md says so. Only when that server sets it.
if [ "$(db postgres -c "SELECT count(*) FROM pg_attribute WHERE array_to_string(attoptions, ',') LIKE '%pg_attver=%'")" -gt 0 ]; then
    say "PostgreSQL $old here sets the attribute option pg_attver, unknown to $new: removing it before pg_upgrade"
    for d in $(db postgres -c "SELECT datname FROM pg_database WHERE datallowconn"); do
        db "$d" -c "UPDATE pg_catalog.pg_attribute
                       SET attoptions = nullif(ARRAY(SELECT o FROM unnest(attoptions) o WHERE o NOT LIKE 'pg_attver=%'), '{}')
                     WHERE array_to_string(attoptions, ',') LIKE '%pg_attver=%'"
    done
fi
stop

use_new
cluster_up
stop
# initdb 18 turns data checksums on, 15 did not: pg_upgrade needs both alike.
as_pg "$new_bindir/pg_checksums" --disable --pgdata="$new_pgdata" >/dev/null
as_pg mkdir -p "$sockdir"
say "pg_upgrade --check, then pg_upgrade, PostgreSQL $old -> $new"
for mode in --check ""; do
    if ! out="$(as_pg sh -c "cd '$sockdir' && '$new_bindir/pg_upgrade' $mode --old-bindir='$old_bindir' --new-bindir='$new_bindir' \
        --old-datadir='$old_pgdata' --new-datadir='$new_pgdata' --old-port=$old_port --new-port=$new_port \
        --socketdir='$sockdir' --username=postgres" 2>&1)"; then
        printf '%s\n' "$out" >&2
        as_pg sh -c "cat '$new_pgdata'/pg_upgrade_output.d/*/log/*.log" >&2 || true
        die "pg_upgrade ${mode:-} failed"
    fi
done
say "pg_upgrade done"
as_pg "$CL_BINDIR/pg_ctl" --pgdata="$CL_PGDATA" --log="$CL_PGDATA/server.log" --wait --timeout=60 start >/dev/null

check "server version after pg_upgrade" "$new" "$(db pgup -c "SELECT current_setting('server_version_num')::int / 10000")"
check "audit rows carried over" "$audit_rows" "$(db pgup -c "SELECT count(*) FROM tenancy.audit_log")"
findings="$(db pgup -c "SELECT string_agg(severity || ' ' || rule || ' ' || object, '; ' ORDER BY rule) FROM tenancy.check() WHERE severity IN ('critical', 'high')")"
say "check() right after pg_upgrade: ${findings:-clean}"
check "the benchmark view's recorded definition (15's deparse) is reported, not trusted" \
    "critical benchmark_view_changed app.people_bench; critical view_bypasses_rls app.people_bench" "$findings"
say "making the benchmark view again (docs/upgrading.md, after pg_upgrade)"
fixture_remake_benchmark_views pgup
out="$(fixture_checks pgup "$token" "$api_key")" || { printf '*** checks stopped on an error:\n%s\n' "$out" >&2; fail=1; }
fixture_verify "after pg_upgrade" "$out"
check "pseudonyms unchanged after pg_upgrade" "$pseudonyms" "$(fixture_pseudonyms pgup)"
expect_error "the DDL guard is armed after pg_upgrade: NO FORCE refused" 42501 \
    "pg_tenancy: refusing DDL on protected table app.people" \
    db pgup -c "SET ROLE fx_owner" -c "ALTER TABLE app.people NO FORCE ROW LEVEL SECURITY"
[ "$fail" -eq 0 ] || { printf -- '---- output ----\n%s\n' "$out" >&2; die "pg_upgrade $old -> $new check failed"; }
say "pg_upgrade $old -> $new keeps isolation, keys, contexts, audit chains and pseudonyms"
