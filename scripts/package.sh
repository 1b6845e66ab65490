#!/usr/bin/env bash
# Usage: scripts/package.sh [15] [18]   (make package: both; PACKAGE_PROFILE=debug for a quick one)
#
# Release artifacts for a server without a Rust toolchain, one per PostgreSQL major version, in
# target/package/:
#   pg_tenancy-VERSION-pgMAJOR-linux-ARCH.tar.gz  the library, control file, install script and
#       every upgrade script (sql/pg_tenancy--A--B.sql), in lib/ and extension/, with
#       install.sh (copies them where `pg_config` says) and INSTALL.txt;
#   postgresql-MAJOR-pg-tenancy_VERSION_ARCH.deb   the same files at Debian's paths for
#       postgresql-MAJOR (/usr/lib/postgresql/MAJOR/lib, /usr/share/postgresql/MAJOR/extension),
#       built with dpkg-deb when it is there.
# Built with `cargo pgrx package` (release profile: lto, one codegen unit).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
source "$(dirname "$0")/lib.sh"
# shellcheck source-path=SCRIPTDIR
source "$(dirname "$0")/releases.sh"

majors=("$@")
[ ${#majors[@]} -gt 0 ] || majors=(15 18)
profile="${PACKAGE_PROFILE:-release}"
version="$(current_version)"
arch="$(dpkg --print-architecture 2>/dev/null || uname -m)"
out="$REPO_ROOT/target/package"
mkdir -p "$out"

for major in "${majors[@]}"; do
    pgc="$(pg_config_for "$major")"
    name="pg_tenancy-$version-pg$major-linux-$arch"
    tree="$out/pgrx-pg$major"
    rm -rf "$tree" "${out:?}/$name"
    say "cargo pgrx package ($profile) for PostgreSQL $major"
    case "$profile" in
        release) flags=() ;;
        debug) flags=(--debug) ;;
        *) flags=(--profile "$profile") ;;
    esac
    cargo pgrx package --manifest-path "$REPO_ROOT/Cargo.toml" --pg-config "$pgc" \
        --no-default-features --features "pg$major" --out-dir "$tree" ${flags[@]+"${flags[@]}"} >/dev/null
    # pgrx mirrors this machine's paths; a package must not depend on them.
    so="$(find "$tree" -name pg_tenancy.so -print -quit)"
    control="$(find "$tree" -name pg_tenancy.control -print -quit)"
    [ -n "$so" ] && [ -n "$control" ] || die "cargo pgrx package left no pg_tenancy.so or control file in $tree"
    mkdir -p "$out/$name/lib" "$out/$name/extension"
    cp "$so" "$out/$name/lib/"
    cp "$(dirname "$control")"/pg_tenancy.control "$(dirname "$control")"/pg_tenancy--*.sql "$out/$name/extension/"
    [ -f "$out/$name/extension/pg_tenancy--$version.sql" ] || die "no pg_tenancy--$version.sql in the package"
    cat >"$out/$name/install.sh" <<'SH'
#!/bin/sh
# Installs pg_tenancy into the PostgreSQL that pg_config names (PG_CONFIG=/path/to/pg_config to
# choose another); run as a user who may write its directories (root).
set -eu
here="$(cd "$(dirname "$0")" && pwd)"
pg_config="${PG_CONFIG:-pg_config}"
libdir="$("$pg_config" --pkglibdir)"
extdir="$("$pg_config" --sharedir)/extension"
major="$("$pg_config" --version | sed 's/^PostgreSQL \([0-9]*\).*/\1/')"
want="$(cat "$here/PG_MAJOR")"
[ "$major" = "$want" ] || { echo "install.sh: this package is for PostgreSQL $want, $pg_config is PostgreSQL $major" >&2; exit 1; }
cp "$here/lib/pg_tenancy.so" "$libdir/"
cp "$here"/extension/pg_tenancy.control "$here"/extension/pg_tenancy--*.sql "$extdir/"
echo "pg_tenancy installed into PostgreSQL $major ($libdir, $extdir)"
SH
    chmod 755 "$out/$name/install.sh"
    echo "$major" >"$out/$name/PG_MAJOR"
    cat >"$out/$name/INSTALL.txt" <<TXT
pg_tenancy $version for PostgreSQL $major (linux $arch). No Rust toolchain needed.

1. Install: sudo ./install.sh   (or PG_CONFIG=/path/to/pg_config sudo -E ./install.sh), or copy
   lib/pg_tenancy.so to \`pg_config --pkglibdir\` and extension/* to \`pg_config --sharedir\`/extension.
2. postgresql.conf: shared_preload_libraries = 'pg_tenancy'   then restart PostgreSQL.
3. In each database: CREATE EXTENSION pg_tenancy;   (an existing one: ALTER EXTENSION pg_tenancy UPDATE;)
See docs/upgrading.md in the source for upgrades, replicas and Citus.
TXT
    tar -C "$out" -czf "$out/$name.tar.gz" "$name"
    say "built $out/$name.tar.gz"

    if command -v dpkg-deb >/dev/null; then
        deb="$out/deb-pg$major"
        rm -rf "$deb"
        mkdir -p "$deb/DEBIAN" "$deb/usr/lib/postgresql/$major/lib" "$deb/usr/share/postgresql/$major/extension" \
            "$deb/usr/share/doc/postgresql-$major-pg-tenancy"
        cp "$out/$name/lib/pg_tenancy.so" "$deb/usr/lib/postgresql/$major/lib/"
        cp "$out/$name"/extension/* "$deb/usr/share/postgresql/$major/extension/"
        cp "$REPO_ROOT/CHANGELOG.md" "$out/$name/INSTALL.txt" "$deb/usr/share/doc/postgresql-$major-pg-tenancy/"
        cat >"$deb/DEBIAN/control" <<CTL
Package: postgresql-$major-pg-tenancy
Version: $version
Architecture: $arch
Maintainer: pg_tenancy maintainers <pg_tenancy@invalid>
Depends: postgresql-$major, libc6
Section: database
Priority: optional
Description: tenant isolation for PostgreSQL $major (pg_tenancy $version)
 Verified tenant context, generated row-level security, min-N guarded
 aggregates and a hash-chained audit trail, enforced by the database.
 Add pg_tenancy to shared_preload_libraries, restart, CREATE EXTENSION pg_tenancy.
CTL
        dpkg-deb --root-owner-group -Zgzip --build "$deb" "$out/postgresql-$major-pg-tenancy_${version}_$arch.deb" >/dev/null
        say "built $out/postgresql-$major-pg-tenancy_${version}_$arch.deb"
    fi
done
