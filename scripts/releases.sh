# shellcheck shell=bash
# Shared by the release tooling (scripts/schema-check.sh, scripts/check-symbols.sh,
# scripts/package.sh) and the upgrade tests (tests/system/upgrade.sh, pg-upgrade.sh); source it
# after scripts/lib.sh. A release V is the file sql/pg_tenancy--V.sql (its install script, never
# edited after the release); each step between versions is sql/pg_tenancy--A--B.sql.

# released_versions: every released version, oldest first.
released_versions() {
    local f
    for f in "$REPO_ROOT"/sql/pg_tenancy--*.sql; do
        f="$(basename "$f" .sql)"
        f="${f#pg_tenancy--}"
        case "$f" in *--*) ;; *) echo "$f" ;; esac
    done | sort -V
}

# current_version: the version this tree builds (Cargo.toml's, the control file's default_version).
current_version() {
    sed -n 's/^version = "\(.*\)"$/\1/p' "$REPO_ROOT/Cargo.toml" | head -n 1
}

# install_released_scripts PG_CONFIG: copies every released install script into that
# PostgreSQL's extension directory, so that CREATE EXTENSION pg_tenancy VERSION 'V' works
# (`cargo pgrx install` copies only the current version's script and the upgrade scripts).
install_released_scripts() {
    local extdir v sudo_cmd=""
    extdir="$("$1" --sharedir)/extension"
    [ -w "$extdir" ] || sudo_cmd=sudo
    for v in $(released_versions); do
        [ "$v" = "$(current_version)" ] && continue
        $sudo_cmd cp "$REPO_ROOT/sql/pg_tenancy--$v.sql" "$extdir/"
    done
}

# catalog_listing DB: the canonical listing of pg_tenancy's objects in DB (scripts/catalog-listing.sql).
catalog_listing() {
    cluster_psql -v ON_ERROR_STOP=1 -At -d "$1" -f "$REPO_ROOT/scripts/catalog-listing.sql"
}
