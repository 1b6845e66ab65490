#!/usr/bin/env bash
# Makes Citus available to PostgreSQL 15 for the Citus suite (tests/system, `make citus-test`).
#
#   scripts/citus-install.sh          exit 0 when citus.so is installed (already, or built now
#                                     from CITUS_SRC); exit 3 when there is no Citus and no
#                                     CITUS_SRC, so callers can skip the suite with a message.
#
# Real users install Citus from its packages. Here it may only be built from source: CITUS_SRC
# names a release tarball or an unpacked source directory (Citus is AGPL: it is built where it
# is given and never copied into this repository). Citus 13.2 supports PostgreSQL 15-17, not 18.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

pg_config="$PG15_PG_CONFIG"
if [ -f "$("$pg_config" --pkglibdir)/citus.so" ]; then
    say "Citus is installed in PostgreSQL 15"
    exit 0
fi
if [ -z "${CITUS_SRC:-}" ]; then
    say "no Citus in PostgreSQL 15 and no CITUS_SRC (a Citus 13.2 source tarball or directory): skipping"
    exit 3
fi
[ -e "$CITUS_SRC" ] || die "CITUS_SRC=$CITUS_SRC does not exist"

for pkg in $CITUS_APT_PACKAGES; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing="${missing:-} $pkg"
done
if [ -n "${missing:-}" ]; then
    say "installing Citus's build dependencies:$missing"
    apt-get install -y $missing >/dev/null
fi

build="$PG_RUN_DIR/citus-build"
rm -rf "$build" && mkdir -p "$build"
if [ -d "$CITUS_SRC" ]; then
    cp -a "$CITUS_SRC/." "$build/"
else
    tar -xzf "$CITUS_SRC" -C "$build" --strip-components=1
fi
cd "$build"
# PostgreSQL 15.20 exports have_createdb_privilege(), which Citus 13.2's compatibility header
# also defines as a static function: rename Citus's copy so the two do not collide.
sed -i 's/\bhave_createdb_privilege\b/citus_have_createdb_privilege/g' src/include/pg_version_compat.h
grep -rl '\bhave_createdb_privilege\b' src/backend | xargs -r sed -i 's/\bhave_createdb_privilege\b/citus_have_createdb_privilege/g'
say "configuring Citus ($(basename "$CITUS_SRC")) for PostgreSQL 15"
./configure --without-libcurl PG_CONFIG="$pg_config" >"$build/configure.log" 2>&1 \
    || { tail -20 "$build/configure.log"; die "configure failed (log: $build/configure.log)"; }
say "building Citus (several minutes on 2 cores)"
make -j"$(nproc)" with_llvm=no >"$build/make.log" 2>&1 \
    || { tail -30 "$build/make.log"; die "build failed (log: $build/make.log)"; }
make install with_llvm=no >"$build/install.log" 2>&1 \
    || { tail -20 "$build/install.log"; die "install failed (log: $build/install.log)"; }
say "Citus installed into $("$pg_config" --pkglibdir)"
