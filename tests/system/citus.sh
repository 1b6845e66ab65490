#!/usr/bin/env bash
# Usage: tests/system/citus.sh        (PostgreSQL 15 only: Citus 13.2 does not support 18)
# The Citus suite: pg_tenancy on a coordinator and two workers (citus,pg_tenancy preloaded),
# through the coordinator as an application role with LOGIN, and directly on a worker. Skips
# with a message (exit 0) when Citus is neither installed nor buildable (scripts/citus-install.sh
# exit 3). KEEP=1 leaves the cluster running for a look (stop it with KEEP= and a new run).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR/../../scripts
source "$(dirname "$0")/../../scripts/lib.sh"

rc=0
"$REPO_ROOT/scripts/citus-install.sh" || rc=$?
if [ "$rc" -eq 3 ]; then
    say "SKIPPED: Citus is not installed in PostgreSQL 15 and CITUS_SRC is not set (see docs/scale-out.md)"
    exit 0
fi
[ "$rc" -eq 0 ] || die "scripts/citus-install.sh failed (exit $rc)"

install_extension 15

NODES=(coord worker1 worker2)
declare -A PORT=([coord]=$((ROOT_REGRESS_PORT_BASE + 300)) [worker1]=$((ROOT_REGRESS_PORT_BASE + 301)) [worker2]=$((ROOT_REGRESS_PORT_BASE + 302)))
pgdata() { echo "$RUN_DIR/citus-$1-pg15"; }
out="$(mktemp)"

cleanup() {
    local n
    for n in "${NODES[@]}"; do
        CL_PGDATA="$(pgdata "$n")" CL_PORT="${PORT[$n]}" cluster_down
    done
    rm -f "$out"
}
trap cleanup EXIT
[ -n "${KEEP:-}" ] && trap 'rm -f "$out"' EXIT
trap 'exit 130' INT TERM

for n in "${NODES[@]}"; do
    CL_PGDATA="$(pgdata "$n")" CL_PORT="${PORT[$n]}" cluster_up \
        "shared_preload_libraries = 'citus,pg_tenancy'" \
        "citus.propagate_set_commands = 'local'" \
        "tenancy.jwt_leeway = 0" \
        "max_connections = 100"
    CL_PGDATA="$(pgdata "$n")" CL_PORT="${PORT[$n]}" cluster_psql -d postgres -q -c "CREATE DATABASE citus_test"
done

# on NODE [psql args...]: psql to NODE's citus_test as the superuser, stopping at the first error.
on() {
    local n="$1"
    shift
    PGHOST=localhost PGPORT="${PORT[$n]}" PGUSER="${PGUSER_AS:-postgres}" "$CL_BINDIR/psql" -X -v ON_ERROR_STOP=1 -d citus_test "$@"
}
for n in "${NODES[@]}"; do
    on "$n" -q -c "CREATE EXTENSION citus"
done
on coord -q >/dev/null <<SQL
SELECT citus_set_coordinator_host('localhost', ${PORT[coord]});
SELECT citus_add_node('localhost', ${PORT[worker1]});
SELECT citus_add_node('localhost', ${PORT[worker2]});
SQL
say "cluster: coordinator :${PORT[coord]}, workers :${PORT[worker1]} :${PORT[worker2]}"

# session NODE ROLE [psql -v args...] < SQL: the output, tersely (rows unaligned, errors as
# SQLSTATEs without psql's line prefix), of a script run to its end whatever fails.
session() {
    local n="$1" role="$2"
    shift 2
    PGOPTIONS="-c client_min_messages=warning" PGHOST=localhost PGPORT="${PORT[$n]}" PGUSER="$role" \
        "$CL_BINDIR/psql" -X -At -q -v ON_ERROR_STOP=0 -v VERBOSITY=sqlstate -d citus_test "$@" 2>&1 \
        | sed -E 's/^psql:[^:]*:[0-9]+: //'
}
fail=0
# expect NAME < EXPECTED: compare $out (a session's output) with what it should be.
expect() {
    if diff -u - "$out" >"$out.diff"; then
        say "ok: $1"
    else
        printf '*** %s: unexpected output (- expected, + got)\n' "$1" >&2
        cat "$out.diff" >&2
        fail=1
    fi
    rm -f "$out.diff"
}
# value NODE SQL: one value, as the superuser.
value() { on "$1" -At -c "$2"; }
# shard_value NODE SQL: like value, with the shards Citus hides from catalog queries shown.
shard_value() { on "$1" -qAt -c "SET citus.override_table_visibility = off" -c "$2"; }
# same NAME EXPECTED ACTUAL
same() {
    if [ "$2" = "$3" ]; then
        say "ok: $1"
    else
        printf '*** %s: expected %s, got %s\n' "$1" "$2" "$3" >&2
        fail=1
    fi
}

say "CREATE EXTENSION pg_tenancy on the coordinator reaches the workers"
on coord -q -c "CREATE EXTENSION pg_tenancy"
version="$(value coord "SELECT extversion FROM pg_extension WHERE extname = 'pg_tenancy'")"
for w in worker1 worker2; do
    same "pg_tenancy $version on $w" "$version" "$(value "$w" "SELECT extversion FROM pg_extension WHERE extname = 'pg_tenancy'")"
done
carrier_keys() {
    local n
    for n in "${NODES[@]}"; do value "$n" "SELECT encode(secret, 'hex') FROM tenancy.carrier_key"; done | sort -u | wc -l
}
# Each node's CREATE EXTENSION made its own carrier key: the registry is not shared yet.
same "before citus_setup() each node has its own carrier key" 3 "$(carrier_keys)"

citus_findings() { value coord "SELECT coalesce(string_agg(rule || ' ' || object || ': ' || coalesce(fix, ''), '; ' ORDER BY rule, object), 'none') FROM tenancy.check() WHERE rule LIKE 'citus%'"; }
same "check() reports the registry left local" "citus_registry_local schema tenancy: SELECT tenancy.citus_setup();" "$(citus_findings)"

say "tenancy.citus_setup(): the registry becomes reference tables"
same "citus_setup() converts the registry" 8 "$(value coord "SELECT tenancy.citus_setup()")"
same "citus_setup() is idempotent" 0 "$(value coord "SELECT tenancy.citus_setup()")"
same "one carrier key on every node" 1 "$(carrier_keys)"
same "check() has no Citus finding after citus_setup()" none "$(citus_findings)"
same "a copy of each registry table on each node" 24 \
    "$(value coord "SELECT count(*) FROM pg_dist_partition p JOIN pg_dist_shard s USING (logicalrelid) JOIN pg_dist_placement pl USING (shardid) WHERE p.logicalrelid::text LIKE 'tenancy.%'")"

on coord -q >/dev/null <<'SQL'
CREATE ROLE citus_app LOGIN;
SELECT tenancy.grant_app('citus_app');
SELECT tenancy.create_tenant(t) FROM unnest('{acme,globex,initech,hooli,umbrella,wayne,stark}'::text[]) t;
SELECT tenancy.add_signing_key('k1', decode(repeat('17', 32), 'hex'));

-- Distributed first, protected after.
CREATE TABLE orders (id bigint NOT NULL, tenant_id text NOT NULL, item text, PRIMARY KEY (tenant_id, id));
SELECT create_distributed_table('orders', 'tenant_id');
INSERT INTO orders VALUES (1, 'acme', 'anvil'), (2, 'acme', 'rocket'), (3, 'acme', 'magnet'),
    (4, 'globex', 'gear'), (5, 'globex', 'lever'), (6, 'initech', 'stapler'), (7, 'hooli', 'phone'),
    (8, 'umbrella', 'vaccine');
SELECT tenancy.protect('orders');

-- Protected first, distributed after (co-located with orders).
CREATE TABLE invoices (id bigint NOT NULL, tenant_id text, amount int, PRIMARY KEY (tenant_id, id));
INSERT INTO invoices VALUES (1, 'acme', 10), (2, 'globex', 20), (3, 'globex', 30);
SELECT tenancy.protect('invoices');
SELECT create_distributed_table('invoices', 'tenant_id', colocate_with => 'orders');

-- Reference tables with shared rows, in both orders.
CREATE TABLE products (id int PRIMARY KEY, tenant_id text NOT NULL, shared boolean NOT NULL DEFAULT false, name text);
INSERT INTO products VALUES (1, 'acme', true, 'catalogue'), (2, 'acme', false, 'acme secret'), (3, 'globex', false, 'globex secret');
SELECT create_reference_table('products');
SELECT tenancy.protect('products', shared_column => 'shared');
CREATE TABLE notes (id int PRIMARY KEY, tenant_id text NOT NULL, shared boolean NOT NULL DEFAULT false, body text);
INSERT INTO notes VALUES (1, 'globex', true, 'public note'), (2, 'globex', false, 'globex note'), (3, 'acme', false, 'acme note');
SELECT tenancy.protect('notes', shared_column => 'shared');
SELECT create_reference_table('notes');

GRANT SELECT, INSERT, UPDATE, DELETE ON orders, invoices, products, notes TO citus_app;
SQL
on coord -q >/dev/null <<'SQL'
CREATE TABLE by_id (id bigint PRIMARY KEY, tenant_id text NOT NULL);
SELECT create_distributed_table('by_id', 'id');
SELECT tenancy.protect('by_id');
SQL
same "check() reports a table distributed by another column than its tenant column" \
    "citus_not_distributed_by_tenant public.by_id: SELECT alter_distributed_table('public.by_id', distribution_column := 'tenant_id');" \
    "$(citus_findings)"
on coord -q -c "DROP TABLE by_id"
same "protect() recorded every table" "invoices,notes,orders,products" \
    "$(value coord "SELECT string_agg(tbl::text, ',' ORDER BY tbl::text) FROM tenancy.protected_tables")"
same "the distributed and reference tables' policies have no sub-select" 0 \
    "$(value coord "SELECT count(*) FROM pg_policy WHERE polrelid IN ('orders'::regclass, 'invoices'::regclass, 'products'::regclass, 'notes'::regclass) AND pg_get_expr(polqual, polrelid) ILIKE '%select%'")"
same "every shard on a worker has forced row level security" 0 \
    "$(shard_value worker1 "SELECT count(*) FROM pg_class c WHERE c.relname ~ '^(orders|invoices|products|notes)_[0-9]+$' AND NOT c.relforcerowsecurity")"
same "... and the worker has such shards (the check above can fail)" t \
    "$(shard_value worker1 "SELECT count(*) > 0 FROM pg_class c WHERE c.relname ~ '^(orders|invoices|products|notes)_[0-9]+$'")"

# protect() with DDL propagation turned off by the caller still protects every shard.
on coord -q >/dev/null <<'SQL'
CREATE TABLE nopropagate (id bigint, tenant_id text NOT NULL, PRIMARY KEY (tenant_id, id));
SELECT create_distributed_table('nopropagate', 'tenant_id');
SET citus.enable_ddl_propagation = off;
SELECT tenancy.protect('nopropagate');
RESET citus.enable_ddl_propagation;
SQL
same "a distributed table made with DDL propagation off has shards on worker1" t \
    "$(shard_value worker1 "SELECT count(*) > 0 FROM pg_class c WHERE c.relname ~ '^nopropagate_[0-9]+$'")"
same "protect() with citus.enable_ddl_propagation off still protects every shard" 0 \
    "$(shard_value worker1 "SELECT count(*) FROM pg_class c WHERE c.relname ~ '^nopropagate_[0-9]+$' AND NOT (c.relrowsecurity AND c.relforcerowsecurity)")"
same "... and their isolation policy" 0 \
    "$(shard_value worker1 "SELECT count(*) FROM pg_class c WHERE c.relname ~ '^nopropagate_[0-9]+$' AND NOT EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid AND p.polname = 'tenancy_isolation')")"
on coord -q -c "DROP TABLE nopropagate" >/dev/null

# token TENANT [LIFETIME [KID]]
token() { value coord "SELECT tenancy.sign_token(jsonb_build_object('tenant_id', '$1', 'exp', extract(epoch FROM now() + interval '${2:-50 minutes}')::bigint)${3:+, '$3'})"; }
acme="$(token acme)"
globex="$(token globex)"
initech="$(token initech)"
value coord "SELECT tenancy.add_signing_key('k2', decode(repeat('29', 32), 'hex'))" >/dev/null
value coord "SELECT tenancy.add_signing_key('k3', decode(repeat('3b', 32), 'hex'))" >/dev/null
hooli="$(token hooli '50 minutes' k2)"
stark="$(token stark '50 minutes' k3)"
wayne="$(token wayne)"
umbrella_key1="$(value coord "SELECT tenancy.create_api_key('umbrella', 'cluster test 1')")"
umbrella_key2="$(value coord "SELECT tenancy.create_api_key('umbrella', 'cluster test 2')")"

say "through the coordinator, as the application role"
session coord citus_app -v acme="$acme" -v globex="$globex" >"$out" <<'SQL'
SELECT 'no context: ' || count(*) FROM orders;
BEGIN;
SELECT 'context: ' || (tenancy.set_context(:'acme') ->> 'tenant_id');
SELECT 'acme orders: ' || count(*) FROM orders;
SELECT 'acme items: ' || string_agg(item, ',' ORDER BY id) FROM orders;
SELECT 'acme invoices: ' || count(*) || ' ' || sum(amount) FROM invoices;
SELECT 'co-located join: ' || count(*) FROM orders o JOIN invoices i USING (tenant_id, id);
SELECT 'acme products: ' || string_agg(name, ',' ORDER BY id) FROM products;
SELECT 'acme notes: ' || string_agg(body, ',' ORDER BY id) FROM notes;
COMMIT;
BEGIN;
SELECT 'context: ' || (tenancy.set_context(:'globex') ->> 'tenant_id');
SELECT 'globex orders: ' || count(*) FROM orders;
SELECT 'globex invoices: ' || count(*) || ' ' || sum(amount) FROM invoices;
SELECT 'globex products: ' || string_agg(name, ',' ORDER BY id) FROM products;
COMMIT;
-- Writes as acme: another tenant's rows are neither written nor touched. Moving a row to
-- another tenant is refused by Citus (0A000: the distribution column cannot change), COPY
-- FROM by PostgreSQL as on one node (0A000: not with row level security).
BEGIN;
SELECT tenancy.set_context(:'acme') IS NOT NULL AS set \g /dev/null
INSERT INTO orders VALUES (100, 'globex', 'planted');
ROLLBACK;
BEGIN;
SELECT tenancy.set_context(:'acme') IS NOT NULL AS set \g /dev/null
INSERT INTO invoices VALUES (100, 'globex', 1);
ROLLBACK;
BEGIN;
SELECT tenancy.set_context(:'acme') IS NOT NULL AS set \g /dev/null
UPDATE orders SET item = 'taken' WHERE tenant_id = 'globex';
DELETE FROM orders WHERE tenant_id = 'globex';
UPDATE invoices SET amount = 0 WHERE tenant_id <> 'acme';
DELETE FROM invoices WHERE tenant_id = 'globex';
UPDATE products SET name = 'defaced' WHERE tenant_id <> 'acme';
DELETE FROM notes WHERE shared;
SELECT 'acme writes touched nobody else: ok';
COMMIT;
BEGIN;
SELECT tenancy.set_context(:'acme') IS NOT NULL AS set \g /dev/null
UPDATE orders SET tenant_id = 'globex' WHERE id = 1;
ROLLBACK;
BEGIN;
SELECT tenancy.set_context(:'acme') IS NOT NULL AS set \g /dev/null
INSERT INTO products VALUES (50, 'globex', false, 'planted');
ROLLBACK;
BEGIN;
SELECT tenancy.set_context(:'acme') IS NOT NULL AS set \g /dev/null
COPY orders FROM stdin;
101	globex	copied
\.
ROLLBACK;
BEGIN;
SELECT tenancy.set_context(:'acme') IS NOT NULL AS set \g /dev/null
INSERT INTO invoices (id, amount) VALUES (103, 7);
INSERT INTO orders VALUES (104, 'acme', 'inserted');
SELECT 'acme wrote: ' || (SELECT count(*) FROM orders WHERE id > 100) || ' ' || (SELECT string_agg(tenant_id, ',') FROM invoices WHERE id = 103);
COMMIT;
SELECT 'no context again: ' || count(*) FROM orders;
BEGIN;
SET LOCAL tenancy.context = 'forged';
SELECT count(*) FROM orders;
ROLLBACK;
SQL
expect "isolation, shared rows and writes through the coordinator" <<'EOF'
no context: 0
context: acme
acme orders: 3
acme items: anvil,rocket,magnet
acme invoices: 1 10
co-located join: 1
acme products: catalogue,acme secret
acme notes: public note,acme note
context: globex
globex orders: 2
globex invoices: 2 50
globex products: catalogue,globex secret
ERROR:  42501
ERROR:  42501
acme writes touched nobody else: ok
ERROR:  0A000
ERROR:  42501
ERROR:  0A000
acme wrote: 1 acme
no context again: 0
ERROR:  28000
EOF
same "other tenants' rows untouched" "globex:gear,lever;globex:20,30;products:catalogue,acme secret,globex secret;notes:public note,globex note,acme note" \
    "$(value coord "SELECT (SELECT 'globex:' || string_agg(item, ',' ORDER BY id) FROM orders WHERE tenant_id = 'globex') || ';' || (SELECT 'globex:' || string_agg(amount::text, ',' ORDER BY id) FROM invoices WHERE tenant_id = 'globex') || ';' || (SELECT 'products:' || string_agg(name, ',' ORDER BY id) FROM products) || ';' || (SELECT 'notes:' || string_agg(body, ',' ORDER BY id) FROM notes)")"

# carrier FUNCTION SECRET: the carrier a context setter stores, minted on the coordinator.
carrier() {
    local c
    c="$(session coord citus_app -v secret="$2" <<SQL
BEGIN;
SELECT tenancy.$1(:'secret') IS NOT NULL \g /dev/null
SELECT current_setting('tenancy.context');
COMMIT;
SQL
)"
    case "$c" in
        v1.*) printf '%s\n' "$c" ;;
        *) die "tenancy.$1() gave no carrier: $c" ;;
    esac
}
acme_c="$(carrier set_context "$acme")"
short_c="$(carrier set_context "$(token acme '5 seconds')")"
# The same payload for another tenant, under acme's MAC; and a MAC under no key we know.
altered_c="$(python3 -c 'import base64,json,sys
v,p,m = sys.argv[1].split(".")
d = json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))
d["t"] = "globex"
print(v + "." + base64.urlsafe_b64encode(json.dumps(d, separators=(",", ":")).encode()).decode().rstrip("=") + "." + m)' "$acme_c")"
forged_c="$(python3 -c 'import sys
v,p,m = sys.argv[1].split(".")
print(v + "." + p + "." + ("A" if m[0] != "A" else "B") + m[1:])' "$acme_c")"
sleep 6  # the short token's carrier expires (tenancy.jwt_leeway = 0 on these nodes)

session coord citus_app -v acme="$acme" -v globex="$globex" >"$out" <<'SQL'
-- An upsert cannot take over another tenant's row.
BEGIN;
SELECT tenancy.set_context(:'acme') IS NOT NULL AS set \g /dev/null
INSERT INTO orders VALUES (4, 'globex', 'taken') ON CONFLICT (tenant_id, id) DO UPDATE SET item = 'taken';
ROLLBACK;
-- A context switched inside a savepoint ends with it, on the workers too.
BEGIN;
SELECT tenancy.set_context(:'acme') IS NOT NULL AS set \g /dev/null
SAVEPOINT s;
SELECT tenancy.set_context(:'globex') IS NOT NULL AS set \g /dev/null
SELECT 'in the savepoint: ' || count(*) FROM orders;
ROLLBACK TO SAVEPOINT s;
SELECT 'after rolling it back: ' || count(*) FROM orders;
COMMIT;
-- One prepared statement under two tenants in turn returns each its own rows (more than five
-- runs: PostgreSQL may switch to a generic plan after five).
PREPARE q AS SELECT 'prepared: ' || coalesce(tenancy.current_tenant(), 'no context') || ' ' || count(*) FROM orders;
BEGIN;
SELECT tenancy.set_context(:'acme') IS NOT NULL AS set \g /dev/null
EXECUTE q;
EXECUTE q;
EXECUTE q;
EXECUTE q;
EXECUTE q;
EXECUTE q;
COMMIT;
BEGIN;
SELECT tenancy.set_context(:'globex') IS NOT NULL AS set \g /dev/null
EXECUTE q;
COMMIT;
EXECUTE q;
SQL
expect "upserts, savepoints and prepared statements through the coordinator" <<'EOF'
ERROR:  42501
in the savepoint: 2
after rolling it back: 4
prepared: acme 4
prepared: acme 4
prepared: acme 4
prepared: acme 4
prepared: acme 4
prepared: acme 4
prepared: globex 2
prepared: no context 0
EOF

say "on a worker, directly, as the application role: the worker verifies the carrier itself"
session worker1 citus_app -v good="$acme_c" -v altered="$altered_c" -v forged="$forged_c" -v expired="$short_c" >"$out" <<'SQL'
SELECT 'worker, no context: ' || count(*) FROM orders;
BEGIN;
SET LOCAL tenancy.context = :'good';
SELECT 'worker, good carrier: ' || tenancy.current_tenant();
SELECT 'worker, acme orders: ' || count(*) FROM orders;
COMMIT;
BEGIN;
SET LOCAL tenancy.context = :'altered';
SELECT count(*) FROM orders;
ROLLBACK;
BEGIN;
SET LOCAL tenancy.context = :'forged';
SELECT tenancy.current_tenant();
ROLLBACK;
BEGIN;
SET LOCAL tenancy.context = :'expired';
SELECT tenancy.current_tenant();
ROLLBACK;
BEGIN;
SET LOCAL tenancy.context = 'v1.garbage';
SELECT count(*) FROM orders;
ROLLBACK;
SQL
expect "a worker verifies carriers with the coordinator's registry" <<'EOF'
worker, no context: 0
worker, good carrier: acme
worker, acme orders: 4
ERROR:  28000
ERROR:  28000
ERROR:  28000
ERROR:  28000
EOF

say "a support carrier holds on a worker for the role that opened it, by name (role OIDs differ between nodes)"
on coord -q >/dev/null <<'SQL'
CREATE ROLE citus_support LOGIN;
SELECT tenancy.grant_support('citus_support');
CREATE ROLE citus_admin LOGIN;
SELECT tenancy.grant_admin('citus_admin');
SQL
same "the role helpers grant on the workers too" "true|true" \
    "$(value worker2 "SELECT has_function_privilege('citus_support', 'tenancy.begin_support(text, text, integer)', 'EXECUTE') || '|' || has_function_privilege('citus_admin', 'tenancy.deactivate_tenant(text)', 'EXECUTE')")"
support_c="$(session coord citus_support <<'SQL'
SELECT tenancy.begin_support('acme', 'ticket 42', 10) \g /dev/null
SELECT current_setting('tenancy.context');
SQL
)"
same "the support role's OID differs between coordinator and worker" 1 \
    "$(for n in coord worker1; do value "$n" "SELECT oid FROM pg_roles WHERE rolname = 'citus_support'"; done | sort -u | wc -l | awk '{print ($1 == 2)}')"
session worker1 citus_support -v c="$support_c" >"$out" <<'SQL'
SET tenancy.context = :'c';
SELECT 'support on a worker: ' || tenancy.current_tenant();
SQL
session worker1 citus_app -v c="$support_c" >>"$out" <<'SQL'
SET tenancy.context = :'c';
SELECT 'another role: ' || tenancy.current_tenant();
SQL
expect "a worker checks a support carrier's role" <<'EOF'
support on a worker: acme
ERROR:  28000
EOF

session worker1 citus_support >"$out" <<'SQL'
SELECT tenancy.begin_support('acme', 'ticket 44', 10);
SQL
expect "a support session cannot begin on a worker (its trail is the coordinator's)" <<'EOF'
ERROR:  0A000
EOF

say "a support read of a distributed table through the coordinator is on the record (the policy runs on the workers)"
on coord -q -c "GRANT SELECT ON orders TO citus_support"
session coord citus_support >"$out" <<'SQL'
SELECT tenancy.begin_support('acme', 'ticket 43', 10) \g /dev/null
SELECT current_setting('tenancy.context') AS c \gset
BEGIN;
SET LOCAL tenancy.context = :'c';
SELECT count(*) FROM orders;
EXPLAIN (COSTS OFF) SELECT * FROM orders \g /dev/null
COMMIT;
SQL
value coord "SELECT string_agg(detail ->> 'table' || ' rows ' || coalesce(detail ->> 'rows', 'unknown'), ', ' ORDER BY seq)
               FROM tenancy.audit_log WHERE event = 'support_read' AND support ->> 'reason' = 'ticket 43'" >>"$out"
expect "one support_read for the read (rows unknown on Citus), none for EXPLAIN" <<'EOF'
4
public.orders rows unknown
EOF

# A session on NODE that holds three verified, cached contexts (session-level carriers) sees
# each stop working from its next transaction after the coordinator deactivates the tenant,
# retires the signing key, revokes the API key.
cached_contexts() {
    local node="$1" tenant="$2" tenant_c="$3" kid="$4" kid_c="$5" key="$6" key_c="$7" change
    change="$(mktemp)"
    cat >"$change" <<SH
#!/usr/bin/env bash
case "\$1" in
    deactivate) sql="SELECT tenancy.deactivate_tenant('$tenant')" ;;
    retire) sql="SELECT tenancy.retire_signing_key('$kid')" ;;
    revoke) sql="SELECT tenancy.revoke_api_key('$key')" ;;
esac
PGHOST=localhost PGPORT=${PORT[coord]} PGUSER=postgres "$CL_BINDIR/psql" -X -q -v ON_ERROR_STOP=1 -d citus_test -c "\$sql" >/dev/null \
    && echo "\$1 on the coordinator"
SH
    chmod 755 "$change"
    session "$node" citus_app -v tenant_c="$tenant_c" -v kid_c="$kid_c" -v key_c="$key_c" >"$out" <<SQL
SET tenancy.context = :'tenant_c';
SELECT 'cached: ' || tenancy.current_tenant();
\! $change deactivate
SELECT 'after deactivation: ' || tenancy.current_tenant();
SET tenancy.context = :'kid_c';
SELECT 'cached: ' || tenancy.current_tenant();
\! $change retire
SELECT 'after retirement: ' || tenancy.current_tenant();
SET tenancy.context = :'key_c';
SELECT 'cached: ' || tenancy.current_tenant();
\! $change revoke
SELECT 'after revocation: ' || tenancy.current_tenant();
SQL
    rm -f "$change"
}

say "a deactivated tenant, a retired key, a revoked API key stop working from the next transaction"
cached_contexts worker1 initech "$(carrier set_context "$initech")" k2 "$(carrier set_context "$hooli")" \
    "$umbrella_key1" "$(carrier set_context_from_key "$umbrella_key1")"
expect "on a worker, in a session holding cached contexts" <<'EOF'
cached: initech
deactivate on the coordinator
ERROR:  28000
cached: hooli
retire on the coordinator
ERROR:  28000
cached: umbrella
revoke on the coordinator
ERROR:  28000
EOF
cached_contexts coord wayne "$(carrier set_context "$wayne")" k3 "$(carrier set_context "$stark")" \
    "$umbrella_key2" "$(carrier set_context_from_key "$umbrella_key2")"
expect "on the coordinator, in a session holding cached contexts" <<'EOF'
cached: wayne
deactivate on the coordinator
ERROR:  28000
cached: stark
retire on the coordinator
ERROR:  28000
cached: umbrella
revoke on the coordinator
ERROR:  28000
EOF
session coord citus_app -v initech="$initech" -v hooli="$hooli" -v key="$umbrella_key1" >"$out" <<'SQL'
BEGIN;
SELECT tenancy.set_context(:'initech');
ROLLBACK;
BEGIN;
SELECT tenancy.set_context(:'hooli');
ROLLBACK;
BEGIN;
SELECT tenancy.set_context_from_key(:'key');
ROLLBACK;
SQL
expect "new contexts of them are refused on the cluster" <<'EOF'
ERROR:  28000
ERROR:  28000
ERROR:  28000
EOF

say "a table protected before Citus came: check() says so, protect() again makes it distributable"
value coord "CREATE DATABASE citus_late" >/dev/null
late() { PGHOST=localhost PGPORT="${PORT[coord]}" PGUSER=postgres "$CL_BINDIR/psql" -X -q -At -v ON_ERROR_STOP=1 -d citus_late "$@"; }
late >/dev/null <<SQL
CREATE EXTENSION pg_tenancy;
CREATE TABLE early (id int, tenant_id text NOT NULL, PRIMARY KEY (tenant_id, id));
SELECT tenancy.protect('early');
CREATE EXTENSION citus;
SELECT citus_set_coordinator_host('localhost', ${PORT[coord]});
SELECT citus_set_node_property('localhost', ${PORT[coord]}, 'shouldhaveshards', true);
SQL
late_findings() { late -c "SELECT coalesce(string_agg(rule || ' ' || object || ': ' || coalesce(fix, ''), '; ' ORDER BY rule, object), 'none') FROM tenancy.check() WHERE rule LIKE 'citus%'"; }
same "check() reports a table protected before Citus" \
    "citus_single_node_protection public.early: SELECT tenancy.protect('public.early', 'tenant_id');" "$(late_findings)"
same "such a table cannot be distributed as it is" 1 \
    "$(late -c "SELECT create_distributed_table('early', 'tenant_id')" >/dev/null 2>&1; echo $?)"
late -c "SELECT tenancy.protect('public.early', 'tenant_id')" -c "SELECT create_distributed_table('early', 'tenant_id')" >/dev/null
same "after protect() again it is distributed, and check() is clean" "none 1" \
    "$(late_findings) $(late -c "SELECT count(*) FROM pg_dist_partition WHERE logicalrelid = 'early'::regclass")"

say "scoped keys: a unique key scoped before distributing, a foreign key scoped on distributed tables (also with DDL propagation off)"
on coord -q >/dev/null <<'SQL'
CREATE TABLE members (id bigint NOT NULL, tenant_id text NOT NULL, email text, PRIMARY KEY (tenant_id, id), UNIQUE (email));
SELECT tenancy.protect('members');
SELECT tenancy.scope_unique('members', ARRAY['email']);
SELECT create_distributed_table('members', 'tenant_id', colocate_with => 'orders');
CREATE TABLE emp (tenant_id text NOT NULL, id bigint NOT NULL, PRIMARY KEY (tenant_id, id));
SELECT create_distributed_table('emp', 'tenant_id', colocate_with => 'orders');
SELECT tenancy.protect('emp');
CREATE TABLE pay (tenant_id text NOT NULL, id bigint NOT NULL, emp_id bigint, PRIMARY KEY (tenant_id, id));
SELECT create_distributed_table('pay', 'tenant_id', colocate_with => 'emp');
SELECT tenancy.protect('pay');
INSERT INTO emp VALUES ('acme', 1), ('globex', 2);
SET citus.enable_ddl_propagation = off;
SELECT tenancy.scope_foreign_key('pay', ARRAY['emp_id'], 'emp', ARRAY['id']);
RESET citus.enable_ddl_propagation;
GRANT SELECT, INSERT ON members, emp, pay TO citus_app;
SQL
same "the scoped foreign key is on every shard of pay" "t" \
    "$(value coord "SELECT bool_and(result = '1') AND count(*) > 0 FROM run_command_on_shards('pay', \$\$SELECT count(*) FROM pg_constraint WHERE conrelid = '%s'::regclass AND contype = 'f'\$\$)")"
session coord citus_app -v acme="$acme" -v globex="$globex" >"$out" <<'SQL'
BEGIN;
SELECT tenancy.set_context(:'acme') IS NOT NULL AS acme \g /dev/null
INSERT INTO members VALUES (1, 'acme', 'ann@example.com');
SAVEPOINT s;
INSERT INTO members VALUES (2, 'acme', 'ann@example.com');
ROLLBACK TO s;
INSERT INTO pay VALUES ('acme', 1, 1);
SAVEPOINT s2;
INSERT INTO pay VALUES ('acme', 2, 2);
ROLLBACK TO s2;
COMMIT;
BEGIN;
SELECT tenancy.set_context(:'globex') IS NOT NULL AS globex \g /dev/null
INSERT INTO members VALUES (3, 'globex', 'ann@example.com');
SELECT 'globex members: ' || count(*) FROM members;
COMMIT;
SQL
expect "a tenant's duplicate refused (23505), another tenant's same email accepted; a reference to another tenant's row refused (23503)" <<'EOF'
ERROR:  23505
ERROR:  23503
globex members: 1
EOF

# Last, as it breaks worker2: pg_tenancy removed there is reported by check().
on worker2 -q -c "SET citus.enable_ddl_propagation = off" -c "DROP EXTENSION pg_tenancy CASCADE" 2>/dev/null
same "check() reports a worker without pg_tenancy" \
    "citus_worker_version node localhost:${PORT[worker2]}: " \
    "$(value coord "SELECT string_agg(rule || ' ' || object || ': ' || coalesce(fix, ''), '; ') FROM tenancy.check() WHERE rule LIKE 'citus%' AND rule <> 'citus_shard_unprotected'")"
# DROP EXTENSION ... CASCADE dropped the policies of worker2's shards (they call its functions).
same "... and every shard it holds, which lost its policies with it, and no other" "t t" \
    "$(value coord "SELECT count(*) > 0, bool_and(object LIKE '% on localhost:${PORT[worker2]}') FROM tenancy.check() WHERE rule = 'citus_shard_unprotected'" | tr '|' ' ')"

[ "$fail" -eq 0 ] || die "the Citus suite failed"
say "all Citus checks passed"
