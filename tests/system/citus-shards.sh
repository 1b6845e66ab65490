#!/usr/bin/env bash
# Usage: tests/system/citus-shards.sh [15]
# The shards of protected tables on Citus (docs/scale-out.md, "The DDL guard on every node"):
# on a coordinator and two workers, a table's owner (a plain LOGIN role, not a superuser)
# cannot weaken the shards of its protected tables, neither from the coordinator through
# run_command_on_shards/placements/colocated_placements/workers nor over a direct connection
# to a worker, and after every attempt an application role still sees only its tenant's rows;
# pg_tenancy's own DDL (protect(), unprotect()) still reaches every shard; check() compares
# every placement with its table (citus_shard_unprotected). PostgreSQL 15 only (Citus 13.2
# does not support 18); skipped, exit 0, when Citus is not available.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR/../../scripts
source "$(dirname "$0")/../../scripts/lib.sh"
# shellcheck source-path=SCRIPTDIR
source "$(dirname "$0")/citus-lib.sh"

ver="${1:-15}"
if [ "$ver" != 15 ]; then
    say "Citus supports PostgreSQL 15-17, not $ver: skipping"
    exit 0
fi
citus_require
citus_start citus-shards 320 2
