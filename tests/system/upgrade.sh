#!/usr/bin/env bash
# Usage: tests/system/upgrade.sh 15|18
# For every released version V (sql/pg_tenancy--V.sql):
#   0. today's library loads V's install script (CREATE EXTENSION pg_tenancy VERSION 'V', then
#      UPDATE); scripts/check-symbols.sh checks the C symbols behind it in make lint;
#   1. with V's own library (built from V's commit, scripts/releases.sh), CREATE EXTENSION at V
#      and build a realistic database (tests/system/release-fixture.sh): the library's code
#      expects its own version's tables, so the database a DBA upgrades is one V's library
#      built; sign a token, create an API key, take pseudonyms;
#   2. pg_dump it (a dump from V, restored below into the current version);
#   3. install today's library (the new package), restart, ALTER EXTENSION pg_tenancy UPDATE:
#      (a) the canonical catalog listing of the extension's objects (scripts/catalog-listing.sql,
#          without its row counts: this database holds data) equals that of a fresh install of
#          the current version given the same fixture;
#      (b) isolation, refusals, check() and assert_isolated() hold (fixture_checks), and the
#          whole regress suite (tests/pg_regress) passes against an extension created at V and
#          updated (its setup.sql runs CREATE EXTENSION ... VERSION 'V'; ALTER EXTENSION UPDATE);
#      (c) audit chains verify and continue, the token and API key issued under V still work,
#          pseudonyms are unchanged, the support session V ended is not recorded again;
#      (after docs/upgrading.md's tenancy.grant_admin() again for each admin role);
#   4. what V's protect() made on the application's tables differs from today's only until the
#      documented calls (protect() again over tenancy.protected_tables, scope_unique() again):
#      after them, equal to the fresh database's;
#   5. the dump from V restores into the current version with the same checks passing.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
source "$(dirname "$0")/lib.sh"
# shellcheck source=../../scripts/releases.sh
source "$REPO_ROOT/scripts/releases.sh"
# shellcheck source-path=SCRIPTDIR
source "$(dirname "$0")/release-fixture.sh"

ver="${1:?usage: tests/system/upgrade.sh 15|18}"
cur="$(current_version)"
install_extension "$ver"
install_released_scripts "$pg_config"
CL_PGDATA="$RUN_DIR/upgrade-pg$ver"
CL_PORT=$((ROOT_REGRESS_PORT_BASE + 220 + ver))
work="$(mktemp -d)"
trap 'cluster_down; rm -rf "$work"' EXIT
trap 'exit 130' INT TERM
cluster_up
db() { cluster_psql -v ON_ERROR_STOP=1 -q -At -d "$@"; }
# restart_after CMD...: stop the server, run CMD (a library swap), start it again.
restart_after() {
    as_pg "$CL_BINDIR/pg_ctl" --pgdata="$CL_PGDATA" --mode=fast --wait stop >/dev/null
    "$@"
    as_pg "$CL_BINDIR/pg_ctl" --pgdata="$CL_PGDATA" --log="$CL_PGDATA/server.log" --wait --timeout=60 start >/dev/null
}
todays_library() {
    install_extension "$ver"
    install_released_scripts "$pg_config"
}
pg() { PGHOST=localhost PGPORT="$CL_PORT" PGUSER=postgres "$CL_BINDIR/$@"; }
without_counts() { grep -v '^rows ' "$1"; }

fixture_roles
say "a fresh install of $cur, given the fixture"
db postgres -c "CREATE DATABASE up_fresh"
db up_fresh -c "CREATE EXTENSION pg_tenancy"
fixture_build up_fresh
catalog_listing up_fresh >"$work/fresh.catalog"
fixture_app_listing up_fresh >"$work/fresh.app"

for v in $(released_versions); do
    [ "$v" != "$cur" ] || continue
    dbv="up_from_${v//./_}"
    db postgres -c "CREATE DATABASE up_load_${v//./_}"
    db "up_load_${v//./_}" -c "CREATE EXTENSION pg_tenancy VERSION '$v'"
    check "today's library loads $v's install script" "$v" "$(db "up_load_${v//./_}" -c "SELECT extversion FROM pg_extension WHERE extname = 'pg_tenancy'")"

    say "pg_tenancy $v with its own library, given the fixture"
    restart_after install_release_build "$v" "$ver"
    db postgres -c "CREATE DATABASE $dbv"
    db "$dbv" -c "CREATE EXTENSION pg_tenancy VERSION '$v'"
    fixture_build "$dbv"
    token="$(fixture_token "$dbv")"
    api_key="$(fixture_api_key "$dbv")"
    pseudonyms="$(fixture_pseudonyms "$dbv")"
    [[ "$pseudonyms" =~ ^([a-z2-7]{26}( |$)){3}$ ]] || die "unexpected pseudonyms under $v: '$pseudonyms'"
    pg pg_dump -Fc -d "$dbv" -f "$work/dump-$v"

    say "today's library (the $cur package), restart, ALTER EXTENSION pg_tenancy UPDATE"
    restart_after todays_library
    db "$dbv" -c "ALTER EXTENSION pg_tenancy UPDATE"
    check "$v: version after the update" "$cur" "$(db "$dbv" -c "SELECT extversion FROM pg_extension WHERE extname = 'pg_tenancy'")"
    fixture_regrant "$dbv"

    # (a) the extension's catalog, as a fresh install makes it.
    catalog_listing "$dbv" >"$work/up.catalog"
    if diff -U0 <(without_counts "$work/up.catalog") <(without_counts "$work/fresh.catalog") >"$work/catalog.diff"; then
        say "ok: $v updated: the extension's catalog equals a fresh $cur install's ($(wc -l <"$work/fresh.catalog") facts)"
    else
        printf '*** %s updated: catalog differs from a fresh install (- upgraded, + fresh):\n' "$v" >&2
        grep -E '^[-+][^-+]' "$work/catalog.diff" >&2
        fail=1
    fi

    # (b), (c) on the database as V's protect() left it.
    out="$(fixture_checks "$dbv" "$token" "$api_key")" || { printf '*** checks stopped on an error:\n%s\n' "$out" >&2; fail=1; }
    fixture_verify "$v updated" "$out"
    check "$v updated: pseudonyms unchanged" "$pseudonyms" "$(fixture_pseudonyms "$dbv")"

    # What V's protect() made, brought to today's by the documented call.
    fixture_app_listing "$dbv" >"$work/up.app"
    if diff -U0 "$work/up.app" "$work/fresh.app" >"$work/app.diff"; then
        say "$v's protect() made what $cur's makes"
    else
        say "$v's protect() made these differently (- $v, + $cur), until protect() runs again:"
        grep -E '^[-+][^-+]' "$work/app.diff" | sed 's/^/    /'
    fi
    fixture_reprotect "$dbv"
    fixture_app_listing "$dbv" >"$work/up.app"
    if diff -U0 "$work/up.app" "$work/fresh.app" >"$work/app.diff"; then
        say "ok: $v updated and protect() run again: the application's tables equal a fresh $cur database's"
    else
        printf '*** %s updated and protect() again: the application tables differ (- upgraded, + fresh):\n' "$v" >&2
        grep -E '^[-+][^-+]' "$work/app.diff" >&2
        fail=1
    fi
    out="$(fixture_checks "$dbv" "$token" "$api_key")" || { printf '*** checks stopped on an error:\n%s\n' "$out" >&2; fail=1; }
    fixture_verify "$v updated, protect() again" "$out"
    check "$v updated, protect() again: pseudonyms unchanged" "$pseudonyms" "$(fixture_pseudonyms "$dbv")"

    # 5. The dump taken under V, restored into the current version.
    say "pg_restore of the dump from $v into $cur"
    db postgres -c "CREATE DATABASE ${dbv}_restored"
    # A dump of an older release restores its GRANTs on that release's signatures; the only one
    # that changed since 0.1.0 is create_tenant() (a fifth argument, parent): its GRANT is the one
    # error pg_restore may report (docs/upgrading.md), and the tier helpers then grant again.
    restore_err="$(pg pg_restore -d "${dbv}_restored" "$work/dump-$v" 2>&1 >/dev/null || true)"
    unexpected="$(printf '%s\n' "$restore_err" | grep -E '^pg_restore: error:' \
        | grep -v 'function tenancy.create_tenant(text, text, text, jsonb) does not exist' \
        | grep -v '^pg_restore: error: could not execute query: ERROR:  function tenancy.create_tenant(text, text, text, jsonb) does not exist' || true)"
    if [ -n "$unexpected" ]; then
        printf '*** pg_restore of the %s dump reported unexpected errors:\n%s\n' "$v" "$restore_err" >&2
        fail=1
    fi
    check "$v dump restored: version" "$cur" "$(db "${dbv}_restored" -c "SELECT extversion FROM pg_extension WHERE extname = 'pg_tenancy'")"
    fixture_regrant "${dbv}_restored"
    out="$(fixture_checks "${dbv}_restored" "$token" "$api_key")" || { printf '*** checks stopped on an error:\n%s\n' "$out" >&2; fail=1; }
    fixture_verify "$v dump restored" "$out"
    check "$v dump restored: pseudonyms unchanged" "$pseudonyms" "$(fixture_pseudonyms "${dbv}_restored")"

    # (b) the regress suite against an extension created at V and updated.
    say "the regress suite (tests/pg_regress) on pg_tenancy created at $v and updated to $cur"
    rdir="$work/regress-$v"
    mkdir -p "$rdir"
    cp -r "$REPO_ROOT/tests/pg_regress/sql" "$REPO_ROOT/tests/pg_regress/expected" "$rdir/"
    for f in "$rdir/sql/setup.sql" "$rdir/expected/setup.out"; do
        grep -qx 'CREATE EXTENSION pg_tenancy;' "$f" || die "tests/pg_regress setup no longer starts with CREATE EXTENSION pg_tenancy;"
        sed -i "s/^CREATE EXTENSION pg_tenancy;\$/CREATE EXTENSION pg_tenancy VERSION '$v'; ALTER EXTENSION pg_tenancy UPDATE;/" "$f"
    done
    tests=(setup)
    for f in "$rdir"/sql/*.sql; do
        name="$(basename "$f" .sql)"
        [ "$name" = setup ] || tests+=("$name")
    done
    # The suite names its database (GRANT ... ON DATABASE pg_tenancy_regress).
    db postgres -c "DROP DATABASE IF EXISTS pg_tenancy_regress" -c "CREATE DATABASE pg_tenancy_regress"
    printf '#! /bin/bash\n$* -v VERBOSITY=terse\n' >"$work/launcher"
    chmod 700 "$work/launcher"
    pg_regress="$(dirname "$("$pg_config" --pgxs)")/../test/regress/pg_regress"
    if (cd "$rdir" && PGOPTIONS="-c client_min_messages=warning" "$pg_regress" --bindir="$CL_BINDIR" --host=localhost --port="$CL_PORT" \
        --user=postgres --use-existing --dbname=pg_tenancy_regress --inputdir="$rdir" --outputdir="$rdir" \
        --launcher="$work/launcher" "${tests[@]}" >"$rdir/pg_regress.log" 2>&1); then
        say "ok: the regress suite passes on pg_tenancy created at $v and updated ($(grep -cE '^ok [0-9]|\.\.\. ok' "$rdir/pg_regress.log" || true) tests)"
    else
        cat "$rdir/pg_regress.log" "$rdir/regression.diffs" >&2 || true
        printf '*** the regress suite fails on pg_tenancy created at %s and updated\n' "$v" >&2
        fail=1
    fi
done

[ "$fail" -eq 0 ] || die "upgrade checks failed on PostgreSQL $ver"
say "every release upgrades to $cur with its data, keys, isolation and audit intact (PostgreSQL $ver)"
