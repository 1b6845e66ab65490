#!/usr/bin/env bash
# Usage: scripts/schema-check.sh   (make lint runs it; PostgreSQL 18, a throwaway cluster)
#
# Fails when the SQL surface the current build generates (`cargo pgrx schema`, installed by
# `cargo pgrx install`) differs from what each release plus its upgrade scripts gives, and says
# what differs. For every released version V (sql/pg_tenancy--V.sql): CREATE EXTENSION at V,
# ALTER EXTENSION pg_tenancy UPDATE to the current version, and compare the canonical catalog
# listing (scripts/catalog-listing.sql: functions with their attributes and grants, tables,
# columns, constraints, indexes, policies, triggers, event triggers, comments, init privileges)
# with a fresh install's. Catalog, not text: pgrx orders its generated script by a dependency
# graph and writes source line numbers into it, so a textual diff fails on changes that create
# nothing different, and the catalog is what a database actually ends up with.
# Also runs scripts/check-symbols.sh: today's library exports every C symbol a released script
# names.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
source "$(dirname "$0")/lib.sh"
# shellcheck source-path=SCRIPTDIR
source "$(dirname "$0")/releases.sh"

cur="$(current_version)"
released="$(released_versions | tr '\n' ' ')"
[ -n "$released" ] || die "no released install script sql/pg_tenancy--V.sql"
for v in $released; do
    [ "$v" != "$cur" ] || die "version $cur is released (sql/pg_tenancy--$cur.sql): a change needs a new version; set Cargo.toml's version to the next one and add sql/pg_tenancy--$cur--NEXT.sql (docs/upgrading.md, Releasing)"
done

install_extension 18
install_released_scripts "$pg_config"
"$(dirname "$0")/check-symbols.sh" "$("$pg_config" --pkglibdir)/pg_tenancy.so"

CL_PGDATA="$RUN_DIR/schema-check-pg18"
CL_PORT=$((ROOT_REGRESS_PORT_BASE + 280))
work="$(mktemp -d)"
trap 'cluster_down; rm -rf "$work"' EXIT
trap 'exit 130' INT TERM
cluster_up
db() { cluster_psql -v ON_ERROR_STOP=1 -q -d "$@"; }

db postgres -c "CREATE DATABASE schema_fresh"
db schema_fresh -c "CREATE EXTENSION pg_tenancy"
catalog_listing schema_fresh >"$work/fresh"

bad=0
for v in $released; do
    name="schema_from_${v//./_}"
    db postgres -c "CREATE DATABASE $name"
    db "$name" -c "CREATE EXTENSION pg_tenancy VERSION '$v'"
    if ! out="$(db "$name" -c "ALTER EXTENSION pg_tenancy UPDATE" 2>&1)"; then
        printf '*** schema-check: ALTER EXTENSION pg_tenancy UPDATE from %s to %s failed:\n%s\n' "$v" "$cur" "$out" >&2
        printf '    (no update path? every step needs sql/pg_tenancy--A--B.sql, from %s on to %s)\n' "$v" "$cur" >&2
        bad=1
        continue
    fi
    catalog_listing "$name" >"$work/from-$v"
    if ! diff -U0 "$work/from-$v" "$work/fresh" >"$work/diff-$v"; then
        {
            printf '*** schema-check: the SQL surface of %s (this build) differs from release %s plus its upgrade scripts.\n' "$cur" "$v"
            printf '    Lines starting with + are in a fresh install only (missing from the upgrade scripts: add them),\n'
            printf '    lines starting with - only after the upgrade (left behind or made differently by the scripts):\n'
            grep -E '^[-+][^-+]' "$work/diff-$v" | sed 's/^/    /'
            printf '    Write the change into sql/pg_tenancy--%s--%s.sql (docs/upgrading.md, Releasing).\n' "$(released_versions | tail -n 1)" "$cur"
        } >&2
        bad=1
    else
        say "ok: $v + upgrade scripts = a fresh install of $cur ($(wc -l <"$work/fresh") catalog facts)"
    fi
done
[ "$bad" -eq 0 ] || exit 1
say "the SQL surface of $cur is what every release plus its upgrade scripts gives"
