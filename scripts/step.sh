#!/usr/bin/env bash
# Usage: scripts/step.sh NAME COMMAND [ARGS...]
# Runs one suite of `make test`, prints its wall time, and on failure says clearly which suite
# failed (and exits with its status so make stops).  Timings are appended to $STEP_LOG if set.
set -uo pipefail

name="$1"
shift
cmd="$(printf '%q ' "$@")"
printf '\n==> [%s] %s\n' "$name" "$cmd"
start=$SECONDS
"$@"
rc=$?
secs=$((SECONDS - start))
took="$((secs / 60))m$(printf '%02d' $((secs % 60)))s"
if [ -n "${STEP_LOG:-}" ]; then
    mkdir -p "$(dirname "$STEP_LOG")"
    printf '%-16s %7s  %s\n' "$name" "$took" "$([ $rc -eq 0 ] && echo ok || echo "FAILED (exit $rc)")" >>"$STEP_LOG"
fi
if [ $rc -ne 0 ]; then
    printf '\n*** FAILED: suite [%s] (exit %d after %s): %s\n' "$name" "$rc" "$took" "$cmd" >&2
    exit "$rc"
fi
printf '==> [%s] ok (%s)\n' "$name" "$took"
