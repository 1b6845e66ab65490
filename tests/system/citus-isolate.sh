#!/usr/bin/env bash
# Usage: tests/system/citus-isolate.sh [15]
# A large tenant on its own shard and node (docs/scale-out.md, "A large tenant on its own
# node"), the runbook run as written: on a coordinator and two workers holding every tenant, a
# third worker is added, the registry is copied to it, `bigco` is isolated to its own shards
# (`isolate_tenant_to_new_shard(..., 'CASCADE')`) and those shards are moved to the third
# worker, while an application session holds a plan made before (it serves bigco from the new
# shard afterwards). Then, as the application role through the coordinator: bigco still sees
# only its rows and its writes are stamped bigco, every other tenant's routed queries run on the
# other workers and never reach the dedicated one (EXPLAIN's task node and the dedicated
# worker's statement log), the new shard placements carry forced row level security and the
# isolation policy, `check()` stays clean, a rebalance strategy keeps the node dedicated, and
# the dedicated worker verifies carriers itself. Finally the undo: the shards moved back, the
# old placements cleaned up, the worker removed.
# PostgreSQL 15 only (Citus 13.2 does not support 18); skipped, exit 0, without Citus.
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
citus_start citus-isolate 340 3 "tenancy.jwt_leeway = 0"
W3="${PORT[worker3]}"

# worker3 plays the machine bought for bigco: out of the cluster while the tables are made, so
# that every tenant starts on worker1 and worker2 as in a cluster that has grown.
value coord "SELECT citus_remove_node('localhost', $W3)" >/dev/null

OTHERS=(acme globex initech hooli umbrella wayne stark soylent tyrell cyberdyne)
others_csv="$(IFS=,; echo "${OTHERS[*]}")"
on coord -q >/dev/null <<SQL
CREATE ROLE iso_app LOGIN;
SELECT tenancy.grant_app('iso_app');
SELECT tenancy.create_tenant(t) FROM unnest('{bigco,$others_csv}'::text[]) t;
SELECT tenancy.add_signing_key('k1', decode(repeat('17', 32), 'hex'));
SET citus.shard_count = 8;
-- Protected before it is distributed (so inserts may omit the tenant), and a co-located table
-- protected after: the runbook must carry both forms.
CREATE TABLE orders (id bigint NOT NULL, tenant_id text NOT NULL, item text, PRIMARY KEY (tenant_id, id));
SELECT tenancy.protect('orders');
SELECT create_distributed_table('orders', 'tenant_id');
CREATE TABLE order_lines (order_id bigint NOT NULL, tenant_id text NOT NULL, qty int,
    FOREIGN KEY (tenant_id, order_id) REFERENCES orders (tenant_id, id));
SELECT create_distributed_table('order_lines', 'tenant_id', colocate_with => 'orders');
SELECT tenancy.protect('order_lines');
INSERT INTO orders SELECT i, 'bigco', 'big ' || i FROM generate_series(1, 50) i;
INSERT INTO order_lines SELECT i, 'bigco', i FROM generate_series(1, 50) i;
INSERT INTO orders SELECT 100 + n, t, t || ' order' FROM unnest('{$others_csv}'::text[]) WITH ORDINALITY u(t, n);
INSERT INTO order_lines SELECT 100 + n, t, 2 FROM unnest('{$others_csv}'::text[]) WITH ORDINALITY u(t, n);
GRANT SELECT, INSERT, UPDATE, DELETE ON orders, order_lines TO iso_app;
SQL
findings() { value coord "SELECT coalesce(string_agg(rule || ' ' || object, '; ' ORDER BY rule, object), 'none') FROM tenancy.check()"; }
same "check() is clean before the isolation" none "$(findings)"

# bigco's shard and where it is now (shared with other tenants: the hash range holds several).
shard_of() { value coord "SELECT get_shard_id_for_distribution_column('$1', '$2')"; }
node_of() { value coord "SELECT nodeport FROM pg_dist_placement JOIN pg_dist_node USING (groupid) WHERE shardid = $1"; }
old_shard="$(shard_of orders bigco)"
src_port="$(node_of "$old_shard")"
same "before: bigco's shard is shared with other tenants" f \
    "$(value coord "SELECT shardminvalue = shardmaxvalue FROM pg_dist_shard WHERE shardid = $old_shard")"

token() { value coord "SELECT tenancy.sign_token(jsonb_build_object('tenant_id', '$1', 'exp', extract(epoch FROM now() + interval '50 minutes')::bigint))"; }
bigco="$(token bigco)"

# The task node of a routed query, from EXPLAIN (the port of the worker that runs it).
# (Citus warns that a temporary function stays local: it is meant to.)
helpers="$(cat <<'SQL'
SET client_min_messages = error;
CREATE FUNCTION pg_temp.route(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE line text; tasks text := '?'; ports text := '';
BEGIN
    FOR line IN EXECUTE 'EXPLAIN (COSTS OFF) ' || q LOOP
        IF line ~ 'Task Count: ' THEN tasks := substring(line FROM 'Task Count: (\d+)'); END IF;
        IF line ~ 'Node: ' THEN ports := ports || substring(line FROM 'port=(\d+)'); END IF;
    END LOOP;
    RETURN tasks || ' task(s) on ' || ports;
END $$;
RESET client_min_messages;
SQL
)"

runbook="$(mktemp)"
cat >"$runbook" <<SQL
SELECT citus_add_node('localhost', $W3);
SELECT replicate_reference_tables('block_writes');
SELECT tenancy.grant_app('iso_app');
SELECT isolate_tenant_to_new_shard('orders', 'bigco', 'CASCADE', shard_transfer_mode => 'block_writes');
SELECT citus_move_shard_placement(get_shard_id_for_distribution_column('orders', 'bigco'), 'localhost', $src_port,
    'localhost', $W3, shard_transfer_mode => 'block_writes');
SQL
chmod a+r "$runbook"
say "the runbook (add the node, copy the registry, isolate bigco, move its shards there), run while an application session holds a plan made before it"
acme="$(token acme)"
session coord iso_app -v bigco="$bigco" -v acme="$acme" >"$out" <<SQL
$helpers
-- Without parameters a prepared statement always runs its generic plan: made here, before the
-- isolation, under bigco's context, with the old shard in it.
PREPARE counted AS SELECT count(*) FROM orders;
BEGIN;
SELECT tenancy.set_context(:'bigco') IS NULL \\g /dev/null
\\echo -n 'before: '
EXECUTE counted;
SELECT 'before: ' || pg_temp.route('EXECUTE counted');
COMMIT;
\! PGHOST=localhost PGPORT=${PORT[coord]} PGUSER=postgres "$CL_BINDIR/psql" -X -q -v ON_ERROR_STOP=1 -d "$CITUS_DB" -f "$runbook" >/dev/null
BEGIN;
SELECT tenancy.set_context(:'bigco') IS NULL \\g /dev/null
\\echo -n 'after: '
EXECUTE counted;
SELECT 'after: ' || pg_temp.route('EXECUTE counted');
COMMIT;
BEGIN;
SELECT tenancy.set_context(:'acme') IS NULL \\g /dev/null
\\echo -n 'acme after: '
EXECUTE counted;
COMMIT;
SQL
expect "a plan made before the isolation serves bigco from its new shard on the dedicated worker afterwards" <<EOF
before: 50
before: 1 task(s) on $src_port
after: 50
after: 1 task(s) on $W3
acme after: 1
EOF
rm -f "$runbook"

same "bigco's shard now holds bigco alone" "t" \
    "$(value coord "SELECT shardminvalue = shardmaxvalue FROM pg_dist_shard WHERE shardid = $(shard_of orders bigco)")"
same "bigco's shards of both tables are on the dedicated worker" "$W3 $W3" \
    "$(node_of "$(shard_of orders bigco)") $(node_of "$(shard_of order_lines bigco)")"
same "the dedicated worker holds bigco's two shards and no other distributed shard" "2 true" \
    "$(value coord "SELECT count(*) || ' ' || bool_and(s.shardminvalue = s.shardmaxvalue AND s.shardid IN ($(shard_of orders bigco), $(shard_of order_lines bigco)))
        FROM pg_dist_placement pl JOIN pg_dist_node n USING (groupid) JOIN pg_dist_shard s USING (shardid)
        JOIN pg_dist_partition p USING (logicalrelid) WHERE n.nodeport = $W3 AND p.partmethod = 'h'")"
same "every registry table has a copy on the dedicated worker" 8 \
    "$(value coord "SELECT count(*) FROM pg_dist_placement pl JOIN pg_dist_node n USING (groupid) JOIN pg_dist_shard s USING (shardid)
        WHERE n.nodeport = $W3 AND s.logicalrelid::text LIKE 'tenancy.%'")"
same "the carrier key on the dedicated worker is the coordinator's" \
    "$(value coord "SELECT encode(secret, 'hex') FROM tenancy.carrier_key")" \
    "$(value worker3 "SELECT encode(secret, 'hex') FROM tenancy.carrier_key")"
shard_rls() {
    shard_value "$1" "SELECT count(*) || ' ' || count(*) FILTER (WHERE c.relrowsecurity AND c.relforcerowsecurity
        AND EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid AND p.polname = 'tenancy_isolation'
                    AND pg_get_expr(p.polqual, p.polrelid) = '(tenant_id = tenancy.current_tenant())'))
        FROM pg_class c WHERE c.relname ~ '^(orders|order_lines)_[0-9]+\$'"
}
same "the shards on the dedicated worker: forced row level security and the isolation policy" "2 2" "$(shard_rls worker3)"
for w in worker1 worker2; do
    n="$(shard_rls "$w")"
    same "every shard on $w too (and it has shards)" "t" "$(awk '{print ($1 > 0 && $1 == $2) ? "t" : "f"}' <<<"$n")"
done
same "check() is still clean after the isolation" none "$(findings)"

# A rebalance would undo the dedication: the dedicated worker has the fewest shards, so the
# default strategy fills it with other tenants' shards. A strategy whose placement rule keeps
# bigco's shards there and every other shard elsewhere leaves it alone.
moves_w3() { value coord "SELECT count(*) FROM get_rebalance_table_shards_plan($1) WHERE $W3 IN (sourceport, targetport)"; }
same "the default rebalance plan would move shards onto the dedicated worker" t "$([ "$(moves_w3 "")" -gt 0 ] && echo t || echo f)"
on coord -q >/dev/null <<SQL
CREATE FUNCTION public.keep_bigco_dedicated(shard bigint, node int) RETURNS boolean
LANGUAGE sql STABLE AS \$\$
    SELECT (SELECT nodeport = $W3 FROM pg_catalog.pg_dist_node WHERE nodeid = node)
         = (SELECT shardminvalue = shardmaxvalue AND shardminvalue::int = worker_hash('bigco'::text)
              FROM pg_catalog.pg_dist_shard WHERE shardid = shard)
\$\$;
SELECT citus_add_rebalance_strategy('keep_bigco_dedicated', 'citus_shard_cost_1', 'citus_node_capacity_1',
    'public.keep_bigco_dedicated', 0);
SELECT citus_set_default_rebalance_strategy('keep_bigco_dedicated');
SQL
same "a rebalance with the dedicating strategy (now the default) moves nothing to or from it" 0 "$(moves_w3 "")"


# Every statement the application role runs on the dedicated worker is logged there, so that
# "no other tenant's query touches it" is a count of what arrived, not only of what was planned.
on worker3 -q -c "ALTER SYSTEM SET log_statement = 'all'" -c "ALTER SYSTEM SET log_line_prefix = '%m [%p] user=%u '" -c "SELECT pg_reload_conf()" >/dev/null
w3_log="$(citus_pgdata worker3)/server.log"
app_lines() { as_pg grep -c 'user=iso_app ' "$w3_log" || true; }


say "the other tenants, through the coordinator, as the application role"
before_others="$(app_lines)"
others_sql="$helpers"
for t in "${OTHERS[@]}"; do
    others_sql+="
BEGIN;
SELECT tenancy.set_context(:'$t') IS NULL \\g /dev/null
SELECT '$t ' || pg_temp.route('SELECT item FROM orders WHERE id > 0');
SELECT '$t ' || string_agg(o.tenant_id || ':' || o.item || ':' || l.qty, ',') FROM orders o JOIN order_lines l ON l.order_id = o.id;
COMMIT;
BEGIN;
SELECT tenancy.set_context(:'$t') IS NULL \\g /dev/null
SELECT '$t ' || count(*) FROM orders WHERE tenant_id = 'bigco';
UPDATE orders SET item = 'taken' WHERE tenant_id = 'bigco';
COMMIT;"
done
tokens=()
for t in "${OTHERS[@]}"; do tokens+=(-v "$t=$(token "$t")"); done
session coord iso_app "${tokens[@]}" <<<"$others_sql" >"$out"
after_others="$(app_lines)"
{
    for t in "${OTHERS[@]}"; do
        printf '%s\n' "$t 1 task(s) on X" "$t $t:$t order:2" "$t 0"
    done
} >"$out.want"
sed -E "s/task\(s\) on (${PORT[worker1]}|${PORT[worker2]})\$/task(s) on X/" "$out" >"$out.got"
mv "$out.got" "$out"
expect "each other tenant's query is one task on worker1 or worker2, sees its own rows only, none of bigco's" <"$out.want"
rm -f "$out.want"
same "no statement of the application role reached the dedicated worker" "$before_others" "$after_others"

say "bigco, through the coordinator, as the application role"
session coord iso_app -v bigco="$bigco" >"$out" <<SQL
$helpers
SELECT 'no context: ' || count(*) FROM orders;
BEGIN;
SELECT tenancy.set_context(:'bigco') IS NULL \\g /dev/null
SELECT 'lookup: ' || pg_temp.route('SELECT item FROM orders WHERE id = 7');
SELECT 'join: ' || pg_temp.route('SELECT count(*) FROM orders o JOIN order_lines l ON l.order_id = o.id');
COMMIT;
BEGIN;
SELECT tenancy.set_context(:'bigco') IS NULL \\g /dev/null
SELECT 'rows: ' || count(*) || ' ' || count(*) FILTER (WHERE tenant_id <> 'bigco') FROM orders;
SELECT 'joined: ' || count(*) || ' ' || sum(l.qty) FROM orders o JOIN order_lines l ON l.order_id = o.id;
INSERT INTO orders (id, item) VALUES (51, 'stamped');
SELECT 'stamped: ' || tenant_id FROM orders WHERE id = 51;
INSERT INTO orders VALUES (52, 'acme', 'smuggled');
ROLLBACK;
BEGIN;
SELECT tenancy.set_context(:'bigco') IS NULL \\g /dev/null
UPDATE orders SET item = 'taken' WHERE tenant_id = 'acme';
SELECT 'acme rows seen: ' || count(*) FROM orders WHERE tenant_id = 'acme';
COMMIT;
SQL
expect "bigco sees its own rows only, on the dedicated worker, and its writes are stamped bigco" <<EOF
no context: 0
lookup: 1 task(s) on $W3
join: 1 task(s) on $W3
rows: 50 0
joined: 50 1275
stamped: bigco
ERROR:  42501
acme rows seen: 0
EOF
after_bigco="$(app_lines)"
same "bigco's statements do reach the dedicated worker (the log check above can fail)" t \
    "$([ "$after_bigco" -gt "$after_others" ] && echo t || echo f)"
same "no row of another tenant changed" "acme order,globex order" \
    "$(value coord "SELECT string_agg(item, ',' ORDER BY tenant_id) FROM orders WHERE tenant_id IN ('acme', 'globex')")"
same "no row of bigco changed" 50 "$(value coord "SELECT count(*) FROM orders WHERE tenant_id = 'bigco' AND item LIKE 'big %'")"

say "on the dedicated worker, directly: it verifies carriers itself"
bigco_c="$(session coord iso_app -v t="$bigco" <<'SQL'
BEGIN;
SELECT tenancy.set_context(:'t') IS NULL \g /dev/null
SELECT current_setting('tenancy.context');
COMMIT;
SQL
)"
forged_c="$(python3 -c 'import sys
v,p,m = sys.argv[1].split(".")
print(v + "." + p + "." + ("A" if m[0] != "A" else "B") + m[1:])' "$bigco_c")"
session worker3 iso_app -v good="$bigco_c" -v forged="$forged_c" >"$out" <<'SQL'
BEGIN;
SET LOCAL tenancy.context = :'good';
SELECT 'worker3, bigco: ' || tenancy.current_tenant();
COMMIT;
BEGIN;
SET LOCAL tenancy.context = :'forged';
SELECT tenancy.current_tenant();
ROLLBACK;
SQL
expect "the dedicated worker verifies a good carrier and refuses a forged one" <<'EOF'
worker3, bigco: bigco
ERROR:  28000
EOF

say "undo: bigco's shards back to where they were, the dedicated worker removed"
value coord "SELECT citus_move_shard_placement($(shard_of orders bigco), 'localhost', $W3, 'localhost', $src_port, shard_transfer_mode => 'block_writes')" >/dev/null
# The move leaves the old placements to a deferred cleanup; a node removed before it ran leaves
# records no cleanup can finish, and the next move of these shards fails on them.
on coord -q -c "CALL citus_cleanup_orphaned_resources()" 2>/dev/null
same "the old placements on the dedicated worker are cleaned up" 0 "$(value coord "SELECT count(*) FROM pg_dist_cleanup")"
value coord "SELECT citus_set_default_rebalance_strategy('by_disk_size')" >/dev/null
value coord "SELECT citus_remove_node('localhost', $W3)" >/dev/null
session coord iso_app -v bigco="$bigco" >"$out" <<SQL
$helpers
BEGIN;
SELECT tenancy.set_context(:'bigco') IS NULL \\g /dev/null
SELECT 'lookup: ' || pg_temp.route('SELECT item FROM orders WHERE id = 7');
SELECT 'rows: ' || count(*) FROM orders;
COMMIT;
SQL
expect "after the undo bigco's rows are on their old worker, all of them" <<EOF
lookup: 1 task(s) on $src_port
rows: 50
EOF
same "check() is clean after the undo" none "$(findings)"

citus_done
