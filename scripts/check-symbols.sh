#!/usr/bin/env bash
# Usage: scripts/check-symbols.sh LIBRARY.so   (scripts/schema-check.sh runs it in make lint)
#
# A database created from an older release keeps that release's function definitions, each a
# C symbol of the library (AS 'MODULE_PATHNAME', 'sym'); it loads today's library. A symbol
# the library no longer exports breaks those functions (and CREATE EXTENSION at that version),
# so fails here: every symbol every released script or upgrade script names, and its
# pg_finfo_ record, must be exported. A function that goes away keeps a shim under its old
# symbol.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
source "$(dirname "$0")/lib.sh"

lib="${1:?usage: scripts/check-symbols.sh LIBRARY.so}"
[ -f "$lib" ] || die "no library at $lib"
exported="$(nm -D --defined-only "$lib" | awk '{print $3}' | sort -u)"
missing=0 checked=0
for script in "$REPO_ROOT"/sql/pg_tenancy--*.sql; do
    for sym in $(grep -o "'MODULE_PATHNAME', *'[A-Za-z0-9_]*'" "$script" | sed "s/.*, *'//; s/'\$//" | sort -u); do
        checked=$((checked + 1))
        for s in "$sym" "pg_finfo_$sym"; do
            if ! grep -qxF "$s" <<<"$exported"; then
                printf '*** check-symbols: %s names %s, which %s does not export\n' "$(basename "$script")" "$s" "$lib" >&2
                missing=1
            fi
        done
    done
done
[ "$missing" -eq 0 ] || die "keep a shim for each symbol above (a #[pg_extern(sql = false)] under the old name)"
say "ok: $lib exports all $checked C symbols the released and upgrade scripts name"
