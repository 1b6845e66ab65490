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

# release_commit V: the commit V was released from (its install script's header names it).
release_commit() {
    sed -n 's/.*at commit \([0-9a-f]\{7,40\}\).*/\1/p' "$REPO_ROOT/sql/pg_tenancy--$1.sql" | head -n 1
}

# install_release_build V MAJOR: builds release V's own library from its commit (git archive
# into target/release-src/V, so no worktree is touched; its own target/release-build, so that
# its library never takes the place of today's in target/debug) and installs it, with V's control file and script, into PostgreSQL MAJOR: a
# server as it was before the package of the next version arrived. install_extension MAJOR
# puts today's back.
install_release_build() {
    local v="$1" major="$2" commit src pgc sudo_flag
    commit="$(release_commit "$v")"
    [ -n "$commit" ] || die "sql/pg_tenancy--$v.sql names no commit ('at commit <sha>')"
    # One fixed place per release: its build is reused by the next run (git archive keeps the
    # commit's file times, so cargo sees nothing changed).
    src="$REPO_ROOT/target/release-src/$v"
    rm -rf "$src"
    mkdir -p "$src"
    # A shallow clone (CI's, say) may lack the release's commit: fetch it, or say what to do.
    if ! git -C "$REPO_ROOT" cat-file -e "$commit^{commit}" 2>/dev/null; then
        if [ "$(git -C "$REPO_ROOT" rev-parse --is-shallow-repository)" = true ]; then
            git -C "$REPO_ROOT" fetch -q --unshallow 2>/dev/null || true
        fi
        git -C "$REPO_ROOT" cat-file -e "$commit^{commit}" 2>/dev/null \
            || git -C "$REPO_ROOT" fetch -q origin "$commit" 2>/dev/null || true
        git -C "$REPO_ROOT" cat-file -e "$commit^{commit}" 2>/dev/null \
            || die "release $v's commit $commit is not in this clone: the upgrade test builds $v from it (clone with full history, or git fetch --unshallow)"
    fi
    git -C "$REPO_ROOT" archive "$commit" | tar -x -C "$src"
    pgc="$(pg_config_for "$major")"
    sudo_flag="$(install_flags "$pgc")"
    say "building pg_tenancy $v (commit $commit) and installing it into PostgreSQL $major"
    CARGO_TARGET_DIR="$REPO_ROOT/target/release-build" cargo pgrx install --manifest-path "$src/Cargo.toml" \
        --pg-config "$pgc" --no-default-features --features "pg$major" ${sudo_flag:+"$sudo_flag"} >/dev/null
}
