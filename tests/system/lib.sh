# shellcheck shell=bash
# Shared by the drivers in tests/system/; source it, don't run it. On top of scripts/lib.sh
# (throwaway clusters) it gives the checks a system test needs, so that every driver fails the
# same way: psql runs with ON_ERROR_STOP=1 and its exit status is checked (set -e, or explicitly
# where the output is captured), and a statement that must fail is asserted by its SQLSTATE and
# message, never by "it printed something" or "psql failed somehow".
# shellcheck source=../../scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"

# set -e stops a driver at a failing command (psql with ON_ERROR_STOP, a client, pg_dump...);
# say which one, so that a failure never ends in silence.
failed_command() { # failed_command EXIT_STATUS LINE COMMAND
    printf '*** %s: failed (exit %s) at line %s: %s\n' "$(basename "$0" .sh)" "$1" "$2" "$3" >&2
}
trap 'failed_command $? $LINENO "$BASH_COMMAND"' ERR

# Failures recorded by check / expect_error; the driver dies at its end if there is any, so one
# run shows them all.
fail=0

# check DESCRIPTION EXPECTED ACTUAL
check() {
    if [ "$2" = "$3" ]; then say "ok: $1"; else printf '*** %s: expected [%s], got [%s]\n' "$1" "$2" "$3" >&2; fail=1; fi
}

# error_lines TEXT: the lines of psql output that report a server or client error.
error_lines() {
    grep -E '(^|: )(ERROR|FATAL|PANIC):|^psql: error:|server closed the connection' <<<"$1" || true
}

# expect_error DESCRIPTION SQLSTATE MESSAGE PSQL_COMMAND [ARGS...]: runs the psql command (a
# function or binary, reading this stdin) with ON_ERROR_STOP=1 and VERBOSITY=verbose; it must
# stop on exactly one error, with SQLSTATE and a message starting with MESSAGE. No error, another
# error first, or a lost connection records a failure. The output is left in $expect_output.
expect_error() {
    local desc="$1" sqlstate="$2" message="$3" rc errors
    shift 3
    rc=0
    expect_output="$("$@" -v ON_ERROR_STOP=1 -v VERBOSITY=verbose 2>&1)" || rc=$?
    errors="$(error_lines "$expect_output")"
    if [ "$rc" -ne 0 ] && [ "$(grep -c . <<<"$errors")" -eq 1 ] &&
        grep -qF -- "ERROR:  $sqlstate: $message" <<<"$errors"; then
        say "ok: $desc ($sqlstate)"
    else
        printf '*** %s: expected exactly one ERROR %s: %s... (psql exit %s), got:\n%s\n' \
            "$desc" "$sqlstate" "$message" "$rc" "$expect_output" >&2
        fail=1
    fi
}

