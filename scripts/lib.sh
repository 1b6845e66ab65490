# shellcheck shell=bash source-path=SCRIPTDIR/..
# Shared helpers for the tools in scripts/ and the test drivers in tests/; source it, don't run it.
# Throwaway PostgreSQL clusters: initdb, configure from pgrx-config/test.conf, start, stop, remove.
#
# initdb and postgres refuse to run as root, so when we are root every server-side command runs
# as $PG_RUNAS via sudo, from "/" (the repo may live where that user cannot even cd, e.g. /root).
# Clients (psql, createdb, pg_regress) run as the caller and connect over TCP to localhost as the
# bootstrap superuser "postgres" (initdb -U postgres, trust auth), so nothing they read or write
# (tests, results, walkthrough) needs to be readable by $PG_RUNAS.

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$REPO_ROOT/pgrx-config/versions.env"

if [ "$(id -u)" -eq 0 ]; then
    RUNAS="$PG_RUNAS"
    RUN_DIR="$PG_RUN_DIR"      # created by scripts/setup.sh, owned by $PG_RUNAS
else
    RUNAS=""
    RUN_DIR="${TMPDIR:-/tmp}/pg_tenancy-$(id -un)"
    mkdir -p "$RUN_DIR"
fi

say() { printf '==> %s: %s\n' "$(basename "$0" .sh)" "$*"; }
die() { printf '*** %s: %s\n' "$(basename "$0" .sh)" "$*" >&2; exit 1; }

# as_pg CMD...: run a server-side command as the cluster owner.
as_pg() {
    if [ -n "$RUNAS" ]; then
        (cd / && sudo -u "$RUNAS" -- "$@")
    else
        "$@"
    fi
}

# pg_config_for 15|18: print the pg_config path for a major version.
pg_config_for() {
    case "$1" in
        15) echo "$PG15_PG_CONFIG" ;;
        18) echo "$PG18_PG_CONFIG" ;;
        *) die "unsupported PostgreSQL major version '$1' (expected 15 or 18)" ;;
    esac
}

# install_flags PG_CONFIG: `--sudo` for cargo pgrx install unless we can write PostgreSQL's lib dir.
install_flags() {
    [ -w "$("$1" --pkglibdir)" ] || echo --sudo
    true
}

# install_extension 15|18 [--release]: sets pg_config and CL_BINDIR for that PostgreSQL and
# builds and installs pg_tenancy into it (debug unless --release; quiet unless it fails).
install_extension() {
    local profile=debug sudo_flag
    pg_config="$(pg_config_for "$1")"
    CL_BINDIR="$("$pg_config" --bindir)"
    sudo_flag="$(install_flags "$pg_config")"
    [ "${2:-}" = --release ] && profile=release
    say "building ($profile) and installing pg_tenancy into PostgreSQL $1"
    cargo pgrx install ${2:+"$2"} --manifest-path "$REPO_ROOT/Cargo.toml" --pg-config "$pg_config" \
        --no-default-features --features "pg$1" ${sudo_flag:+"$sudo_flag"} >/dev/null
}

# A throwaway cluster is described by three variables the caller sets:
#   CL_BINDIR (server binaries), CL_PGDATA (data directory, inside $RUN_DIR), CL_PORT.

# cluster_up [EXTRA_CONF_LINE...]: fresh cluster configured with test.conf (+ extra lines), started.
cluster_up() {
    cluster_down
    say "initdb $CL_PGDATA ($("$CL_BINDIR/postgres" --version))"
    as_pg "$CL_BINDIR/initdb" --pgdata="$CL_PGDATA" --username=postgres --auth=trust \
        --locale=C.UTF-8 --encoding=UTF8 --no-sync >/dev/null
    {
        printf '\n# ---- appended by pg_tenancy scripts/lib.sh ----\n'
        grep -v '^[[:space:]]*\(#\|$\)' "$REPO_ROOT/pgrx-config/test.conf"
        printf "port = %s\nlisten_addresses = 'localhost'\nunix_socket_directories = ''\n" "$CL_PORT"
        local line
        for line in "$@"; do printf '%s\n' "$line"; done
    } | as_pg tee -a "$CL_PGDATA/postgresql.conf" >/dev/null
    say "starting PostgreSQL on localhost:$CL_PORT (log: $CL_PGDATA/server.log)"
    if ! as_pg "$CL_BINDIR/pg_ctl" --pgdata="$CL_PGDATA" --log="$CL_PGDATA/server.log" --wait --timeout=60 start >/dev/null; then
        as_pg tail -n 30 "$CL_PGDATA/server.log" >&2 || true
        die "PostgreSQL failed to start in $CL_PGDATA"
    fi
    local preload
    preload="$(cluster_psql -d postgres -At -c 'SHOW shared_preload_libraries')"
    say "cluster up; shared_preload_libraries = '$preload'"
}

# cluster_down: stop the cluster (if running) and delete it.  Safe to call any number of times.
cluster_down() {
    if [ -f "$CL_PGDATA/postmaster.pid" ]; then
        say "stopping PostgreSQL in $CL_PGDATA"
        as_pg "$CL_BINDIR/pg_ctl" --pgdata="$CL_PGDATA" --mode=fast --wait stop >/dev/null || true
    fi
    if [ -e "$CL_PGDATA" ]; then
        as_pg rm -rf "$CL_PGDATA"
    fi
}

# cluster_psql ARGS...: that version's psql, as the cluster superuser, ignoring ~/.psqlrc.
cluster_psql() {
    PGHOST=localhost PGPORT="$CL_PORT" PGUSER=postgres "$CL_BINDIR/psql" -X "$@"
}
