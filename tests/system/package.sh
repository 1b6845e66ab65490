#!/usr/bin/env bash
# Usage: tests/system/package.sh 15|18
# The package a DBA installs without Rust: scripts/package.sh builds it (PACKAGE_PROFILE, debug
# here unless set: the layout is the same, a release build takes minutes), then this removes
# every pg_tenancy file from that PostgreSQL (a clean server), installs the tarball with its
# install.sh (plain file copies, no cargo), checks the .deb holds the same files at Debian's
# paths, and runs the demo (demo/walkthrough.sql) in a fresh cluster; the update path from every
# release is there.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
source "$(dirname "$0")/lib.sh"
# shellcheck source=../../scripts/releases.sh
source "$REPO_ROOT/scripts/releases.sh"

ver="${1:?usage: tests/system/package.sh 15|18}"
pg_config="$(pg_config_for "$ver")"
CL_BINDIR="$("$pg_config" --bindir)"
CL_PGDATA="$RUN_DIR/package-pg$ver"
CL_PORT=$((ROOT_REGRESS_PORT_BASE + 260 + ver))
version="$(current_version)"
arch="$(dpkg --print-architecture 2>/dev/null || uname -m)"
name="pg_tenancy-$version-pg$ver-linux-$arch"
out="$REPO_ROOT/target/package"
work="$(mktemp -d)"
trap 'cluster_down; rm -rf "$work"' EXIT
trap 'exit 130' INT TERM

PACKAGE_PROFILE="${PACKAGE_PROFILE:-debug}" "$REPO_ROOT/scripts/package.sh" "$ver"
[ -f "$out/$name.tar.gz" ] || die "scripts/package.sh made no $out/$name.tar.gz"

libdir="$("$pg_config" --pkglibdir)"
extdir="$("$pg_config" --sharedir)/extension"
sudo_cmd=""
[ -w "$libdir" ] || sudo_cmd=sudo
say "a clean PostgreSQL $ver: removing every pg_tenancy file"
$sudo_cmd rm -f "$libdir/pg_tenancy.so" "$extdir"/pg_tenancy.control "$extdir"/pg_tenancy--*.sql
check "no pg_tenancy file left in PostgreSQL $ver" "0" "$(find "$libdir" "$extdir" -name 'pg_tenancy*' | wc -l)"

say "installing $name.tar.gz with its install.sh (file copies only)"
tar -xzf "$out/$name.tar.gz" -C "$work"
PG_CONFIG="$pg_config" $sudo_cmd "$work/$name/install.sh"
for f in "$libdir/pg_tenancy.so" "$extdir/pg_tenancy.control" "$extdir/pg_tenancy--$version.sql"; do
    check "installed: $f" yes "$([ -f "$f" ] && echo yes || echo no)"
done
other=$([ "$ver" = 15 ] && echo 18 || echo 15)
if PG_CONFIG="$(pg_config_for "$other")" "$work/$name/install.sh" >"$work/other.log" 2>&1; then
    printf '*** install.sh installed a PostgreSQL %s package into PostgreSQL %s\n' "$ver" "$other" >&2
    fail=1
else
    check "install.sh refuses PostgreSQL $other" "install.sh: this package is for PostgreSQL $ver, $(pg_config_for "$other") is PostgreSQL $other" "$(cat "$work/other.log")"
fi

deb="$out/postgresql-$ver-pg-tenancy_${version}_$arch.deb"
if command -v dpkg-deb >/dev/null; then
    contents="$(dpkg-deb -c "$deb" | awk '{print $6}')"
    for f in "./usr/lib/postgresql/$ver/lib/pg_tenancy.so" "./usr/share/postgresql/$ver/extension/pg_tenancy.control" \
        "./usr/share/postgresql/$ver/extension/pg_tenancy--$version.sql"; do
        check "the .deb holds $f" yes "$(grep -qxF -- "$f" <<<"$contents" && echo yes || echo no)"
    done
    check "the .deb's package name" "postgresql-$ver-pg-tenancy" "$(dpkg-deb -f "$deb" Package)"
    check "the .deb's library is the tarball's" "$(md5sum <"$work/$name/lib/pg_tenancy.so")" \
        "$(dpkg-deb --fsys-tarfile "$deb" | tar -xO "./usr/lib/postgresql/$ver/lib/pg_tenancy.so" | md5sum)"
fi

cluster_up
cluster_psql -d postgres -q -v ON_ERROR_STOP=1 -c 'CREATE DATABASE tenancy_demo'
for v in $(released_versions); do
    check "the package updates from $v to $version" "1" \
        "$(cluster_psql -d tenancy_demo -At -v ON_ERROR_STOP=1 -c "SELECT count(*) FROM pg_extension_update_paths('pg_tenancy') WHERE source = '$v' AND target = '$version' AND path IS NOT NULL")"
done
say "running demo/walkthrough.sql against the installed package"
if ! cluster_psql -d tenancy_demo -v ON_ERROR_STOP=1 -q -f "$REPO_ROOT/demo/walkthrough.sql" >"$work/demo.log" 2>&1; then
    tail -n 30 "$work/demo.log" >&2
    fail=1
fi
check "the demo ran on the package's extension" "$version" \
    "$(cluster_psql -d tenancy_demo -At -c "SELECT extversion FROM pg_extension WHERE extname = 'pg_tenancy'")"
[ "$fail" -eq 0 ] || die "the package for PostgreSQL $ver failed"
say "the package installs by file copy and runs the demo (PostgreSQL $ver)"
