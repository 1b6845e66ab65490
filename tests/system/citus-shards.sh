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
# shellcheck source-path=SCRIPTDIR
source "$(dirname "$0")/lib.sh"
# shellcheck source-path=SCRIPTDIR
source "$(dirname "$0")/citus-lib.sh"

ver="${1:-15}"
if [ "$ver" != 15 ]; then
    say "Citus supports PostgreSQL 15-17, not $ver: skipping"
    exit 0
fi
citus_require
citus_start citus-shards 320 2

say "the table owner (a LOGIN role, not a superuser) makes and protects its tables"
on coord -q >/dev/null <<'SQL'
CREATE ROLE shard_owner LOGIN;
CREATE ROLE shard_other;
GRANT shard_other TO shard_owner;
CREATE ROLE shard_app LOGIN;
SELECT tenancy.grant_admin('shard_owner');
SELECT tenancy.grant_app('shard_app');
GRANT CREATE ON SCHEMA public TO shard_owner, shard_other;
CREATE SCHEMA crm AUTHORIZATION shard_owner;
SELECT tenancy.create_tenant(t) FROM unnest('{acme,globex}'::text[]) t;
SELECT tenancy.add_signing_key('k1', decode(repeat('17', 32), 'hex'));
-- For a trigger on the shards, made by a superuser below (Citus refuses triggers on
-- distributed tables otherwise): disabling it on one shard is an attack too.
CREATE FUNCTION public.shard_noop() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
SQL
PGUSER_AS=shard_owner on coord -q >/dev/null <<'SQL'
-- Distributed first, protected after.
CREATE TABLE orders (id bigint NOT NULL, tenant_id text NOT NULL, item text, PRIMARY KEY (tenant_id, id));
SELECT create_distributed_table('orders', 'tenant_id', shard_count => 4);
SELECT tenancy.protect('orders');
-- Protected first, distributed after (co-located with orders).
CREATE TABLE invoices (id bigint NOT NULL, tenant_id text, amount int, PRIMARY KEY (tenant_id, id));
SELECT tenancy.protect('invoices');
SELECT create_distributed_table('invoices', 'tenant_id', colocate_with => 'orders');
-- A reference table with shared rows (a copy on every node, the coordinator included).
CREATE TABLE products (id int PRIMARY KEY, tenant_id text NOT NULL, shared boolean NOT NULL DEFAULT false, name text);
SELECT create_reference_table('products');
SELECT tenancy.protect('products', shared_column => 'shared');
-- An enrolled schema: a table created in it later is protected on creation, then distributed.
SELECT tenancy.protect_schema('crm');
CREATE TABLE crm.leads (id bigint NOT NULL, tenant_id text NOT NULL, name text, PRIMARY KEY (tenant_id, id));
SELECT create_distributed_table('crm.leads', 'tenant_id', colocate_with => 'orders');
GRANT SELECT ON orders, invoices, products, crm.leads TO shard_app;
GRANT USAGE ON SCHEMA crm TO shard_app;
SQL
on coord -q >/dev/null <<'SQL'
SET citus.enable_unsafe_triggers = on;
CREATE TRIGGER shard_noop BEFORE INSERT ON orders FOR EACH ROW EXECUTE FUNCTION public.shard_noop();
INSERT INTO orders VALUES (1, 'acme', 'anvil'), (2, 'acme', 'rocket'), (3, 'globex', 'gear'), (4, 'globex', 'lever'), (5, 'globex', 'bolt');
INSERT INTO invoices VALUES (1, 'acme', 10), (2, 'globex', 20);
INSERT INTO products VALUES (1, 'acme', true, 'catalogue'), (2, 'acme', false, 'acme secret'), (3, 'globex', false, 'globex secret');
INSERT INTO crm.leads VALUES (1, 'acme', 'lead a'), (2, 'globex', 'lead g'), (3, 'globex', 'lead h');
SQL

tables_re='^(orders|invoices|products|leads)_[0-9]+$'
# unprotected_shards: per node, the shards and placements of the protected tables without
# forced row level security and their isolation policy.
unprotected_shards() {
    local n
    for n in "${NODES[@]}"; do
        shard_value "$n" "SELECT count(*) FROM pg_class c WHERE c.relname ~ '$tables_re' AND NOT (c.relrowsecurity AND c.relforcerowsecurity AND EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid AND p.polname = 'tenancy_isolation'))"
    done | paste -sd' '
}
same "every shard and placement, on every node, is protected" "0 0 0" "$(unprotected_shards)"
same "... and there are shards on each worker and a reference placement on the coordinator (the check above can fail)" "1 7 7" \
    "$(for n in "${NODES[@]}"; do shard_value "$n" "SELECT count(*) FROM pg_class c WHERE c.relname ~ '$tables_re'"; done | paste -sd' ')"
shard_findings() { value coord "SELECT coalesce(string_agg(object || ': ' || detail, E'\n' ORDER BY object), 'none') FROM tenancy.check() WHERE rule = 'citus_shard_unprotected'"; }
same "check() finds no shard that differs from its table" none "$(shard_findings)"

# refused FUNCTION ARGS COMMAND: runs COMMAND (%s: the shard's name) through Citus's
# run_command_on_* function as the table owner, inside a block that turns a refusal (42501,
# and only that) into its SQLSTATE and message; one line per distinct result (success flag and
# text, shard numbers as _N).
refused() {
    local fn="$1" args="$2" cmd="$3"
    PGUSER_AS=shard_owner on coord -qAt <<SQL
SELECT DISTINCT success || ' ' || regexp_replace(result, '_[0-9]+', '_N', 'g')
  FROM $fn($args\$c\$DO \$d\$ BEGIN EXECUTE '$cmd'; EXCEPTION WHEN insufficient_privilege THEN RAISE EXCEPTION USING MESSAGE = SQLSTATE || ' ' || SQLERRM; END \$d\$\$c\$);
SQL
}
refusal() { printf 'false ERROR:  42501 pg_tenancy: refusing DDL on protected table %s: %s\n' "$1" "$2"; }

say "the table owner's attacks on the shards, from the coordinator, are refused on every node"
same "run_command_on_shards: DISABLE ROW LEVEL SECURITY" "$(refusal public.orders_N 'row level security is disabled')" \
    "$(refused run_command_on_shards "'orders', " 'ALTER TABLE %s DISABLE ROW LEVEL SECURITY')"
same "run_command_on_shards: NO FORCE ROW LEVEL SECURITY" "$(refusal public.orders_N 'row level security is no longer forced (the owner would bypass it)')" \
    "$(refused run_command_on_shards "'orders', " 'ALTER TABLE %s NO FORCE ROW LEVEL SECURITY')"
same "run_command_on_shards: DROP POLICY tenancy_isolation" "$(refusal public.orders_N 'the policy tenancy_isolation is dropped')" \
    "$(refused run_command_on_shards "'orders', " 'DROP POLICY tenancy_isolation ON %s')"
same "run_command_on_shards: CREATE POLICY ... USING (true)" "$(refusal public.invoices_N 'permissive policy open would widen what tenants see (add it AS RESTRICTIVE instead)')" \
    "$(refused run_command_on_shards "'invoices', " 'CREATE POLICY open ON %s USING (true)')"
same "run_command_on_shards: a permissive policy for SELECT" "$(refusal public.orders_N 'permissive policy peek would widen what tenants see (add it AS RESTRICTIVE instead)')" \
    "$(refused run_command_on_shards "'orders', " 'CREATE POLICY peek ON %s AS PERMISSIVE FOR SELECT TO PUBLIC USING (tenant_id IS NOT NULL)')"
same "run_command_on_shards: ALTER POLICY tenancy_isolation" "$(refusal public.orders_N 'the isolation policy tenancy_isolation was altered')" \
    "$(refused run_command_on_shards "'orders', " 'ALTER POLICY tenancy_isolation ON %s USING (true)')"
same "run_command_on_shards: DISABLE TRIGGER" "$(refusal public.orders_N 'trigger shard_noop_N is disabled')" \
    "$(refused run_command_on_shards "'orders', " 'ALTER TABLE %s DISABLE TRIGGER USER')"
same "run_command_on_shards: OWNER TO another role" "$(refusal public.orders_N 'the shard is owned by shard_other and its table by shard_owner')" \
    "$(refused run_command_on_shards "'orders', " 'ALTER TABLE %s OWNER TO shard_other')"
same "run_command_on_placements: a reference table's placements (the coordinator's included)" "$(refusal public.products_N 'row level security is disabled')" \
    "$(refused run_command_on_placements "'products', " 'ALTER TABLE %s DISABLE ROW LEVEL SECURITY')"
same "run_command_on_placements: the shared-rows policy widened" "$(refusal public.products_N 'permissive policy tenancy_shared would widen what tenants see (add it AS RESTRICTIVE instead)')" \
    "$(refused run_command_on_placements "'products', " 'ALTER POLICY tenancy_shared ON %s USING (true)')"
same "run_command_on_colocated_placements" "$(refusal public.invoices_N 'row level security is disabled')" \
    "$(refused run_command_on_colocated_placements "'invoices', 'orders', " 'ALTER TABLE %s DISABLE ROW LEVEL SECURITY')"
same "run_command_on_shards on a table of an enrolled schema" "$(refusal crm.leads_N 'row level security is disabled')" \
    "$(refused run_command_on_shards "'crm.leads', " 'ALTER TABLE %s DISABLE ROW LEVEL SECURITY')"
same "run_command_on_workers: the worker's shell, DDL propagation off" "$(refusal public.orders 'row level security is disabled')" \
    "$(refused run_command_on_workers "" 'SET LOCAL citus.enable_ddl_propagation = off; ALTER TABLE orders DISABLE ROW LEVEL SECURITY')"

say "the same, over a direct connection to a worker"
# shard_on NODE TABLE: the name of one shard (placement) of TABLE on NODE.
shard_on() {
    value coord "SELECT shard_name('$2'::regclass, s.shardid) FROM pg_dist_shard s JOIN pg_dist_placement p USING (shardid) JOIN pg_dist_node n USING (groupid) WHERE s.logicalrelid = '$2'::regclass AND n.nodeport = ${PORT[$1]} ORDER BY s.shardid LIMIT 1"
}
w1_order="$(shard_on worker1 orders)"
w1_lead="$(shard_on worker1 crm.leads)"
w1_product="$(shard_on worker1 products)"
session worker1 shard_owner >"$out" <<SQL
-- by its known name, the shards hidden from the catalog as Citus does by default
ALTER TABLE $w1_order DISABLE ROW LEVEL SECURITY;
ALTER TABLE $w1_order NO FORCE ROW LEVEL SECURITY;
DROP POLICY tenancy_isolation ON $w1_order;
CREATE POLICY open ON $w1_order USING (true);
ALTER POLICY tenancy_isolation ON $w1_order USING (true);
ALTER TABLE $w1_order DISABLE TRIGGER USER;
ALTER TABLE $w1_order OWNER TO shard_other;
ALTER TABLE $w1_lead DISABLE ROW LEVEL SECURITY;
-- shards shown
SET citus.override_table_visibility = off;
ALTER POLICY tenancy_shared ON $w1_product USING (true);
ALTER TABLE $w1_product DISABLE ROW LEVEL SECURITY;
-- the shells, without propagation
SET citus.enable_ddl_propagation = off;
ALTER TABLE orders NO FORCE ROW LEVEL SECURITY;
DROP POLICY tenancy_isolation ON invoices;
CREATE POLICY open ON products USING (true);
-- a shard dropped and an unprotected table of its name created, in one transaction
BEGIN;
SET LOCAL citus.enable_manual_changes_to_shards = on;
DROP TABLE $w1_order;
CREATE TABLE $w1_order (id bigint NOT NULL, tenant_id text NOT NULL, item text, PRIMARY KEY (tenant_id, id));
COMMIT;
SELECT 'still the shard with its policy: ' || count(*) FROM pg_policy WHERE polrelid = '$w1_order'::regclass AND polname = 'tenancy_isolation';
SQL
expect "a table owner's DDL on a worker's shards and shells is refused there" <<'EOF'
ERROR:  42501
ERROR:  42501
ERROR:  42501
ERROR:  42501
ERROR:  42501
ERROR:  42501
ERROR:  42501
ERROR:  42501
ERROR:  42501
ERROR:  42501
ERROR:  42501
ERROR:  42501
ERROR:  42501
ERROR:  42501
still the shard with its policy: 1
EOF
# One refusal in full: the coordinator's message and hint, naming the shard.
worker1_owner() { PGHOST=localhost PGPORT="${PORT[worker1]}" PGUSER=shard_owner "$CL_BINDIR/psql" -X -q -d "$CITUS_DB" "$@"; }
expect_error "a worker's refusal names the shard and what it would lose" 42501 \
    "pg_tenancy: refusing DDL on protected table public.$w1_order: row level security is disabled" \
    worker1_owner -c "ALTER TABLE $w1_order DISABLE ROW LEVEL SECURITY" </dev/null

same "after every attack, every shard and placement is still protected" "0 0 0" "$(unprotected_shards)"
same "... and check() finds no shard that differs" none "$(shard_findings)"
acme="$(value coord "SELECT tenancy.sign_token(jsonb_build_object('tenant_id', 'acme', 'exp', extract(epoch FROM now() + interval '50 minutes')::bigint))")"
session coord shard_app -v acme="$acme" >"$out" <<'SQL'
BEGIN;
SELECT tenancy.set_context(:'acme') IS NOT NULL AS set \g /dev/null
SELECT 'orders: ' || count(*) || ' ' || string_agg(item, ',' ORDER BY id) FROM orders;
SELECT 'invoices: ' || count(*) FROM invoices;
SELECT 'products: ' || string_agg(name, ',' ORDER BY id) FROM products;
SELECT 'leads: ' || count(*) FROM crm.leads;
COMMIT;
SELECT 'no context: ' || count(*) FROM orders;
SQL
expect "the application role still sees only its tenant's rows through the coordinator" <<'EOF'
orders: 2 anvil,rocket
invoices: 1
products: catalogue,acme secret
leads: 1
no context: 0
EOF

say "pg_tenancy's own DDL still reaches every shard"
PGUSER_AS=shard_owner on coord -q >/dev/null <<'SQL'
SELECT tenancy.protect('orders');
SELECT tenancy.protect('products', shared_column => 'shared');
CREATE TABLE scratch (id bigint NOT NULL, tenant_id text NOT NULL, PRIMARY KEY (tenant_id, id));
SELECT create_distributed_table('scratch', 'tenant_id', colocate_with => 'orders');
SELECT tenancy.protect('scratch');
SQL
same "protect() again leaves every shard protected" "0 0 0" "$(unprotected_shards)"
# scratch_shards: per worker, its scratch shards with any row security or policy / all of them.
scratch_shards() {
    local n
    for n in worker1 worker2; do
        shard_value "$n" "SELECT count(*) FILTER (WHERE c.relrowsecurity OR c.relforcerowsecurity OR EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid)) || '/' || count(*) FROM pg_class c WHERE c.relname ~ '^scratch_[0-9]+$'"
    done | paste -sd' '
}
same "a protected distributed table: every shard has row level security" "2/2 2/2" "$(scratch_shards)"
PGUSER_AS=shard_owner on coord -q -c "SELECT tenancy.unprotect('scratch')" >/dev/null
same "unprotect() of a distributed table reaches every shard" "0/2 0/2" "$(scratch_shards)"
same "... and the table is no longer protected" 0 "$(value coord "SELECT count(*) FROM tenancy.protected_tables WHERE tbl = 'scratch'::regclass")"
PGUSER_AS=shard_owner on coord -q -c "SELECT tenancy.protect('scratch')" >/dev/null
same "protect() after unprotect() protects every shard again" "2/2 2/2" "$(scratch_shards)"
same "... and the guard holds on them again" "$(refusal public.scratch_N 'row level security is disabled')" \
    "$(refused run_command_on_shards "'scratch', " 'ALTER TABLE %s DISABLE ROW LEVEL SECURITY')"
same "check() is clean after protect() and unprotect()" none "$(shard_findings)"

say "check() reports each shard a superuser weakened"
w2_invoice="$(shard_on worker2 invoices)"
w2_lead="$(shard_on worker2 crm.leads)"
on worker1 -q -c "SET citus.override_table_visibility = off" -c "ALTER TABLE $w1_order DISABLE ROW LEVEL SECURITY"
on worker2 -q -c "SET citus.override_table_visibility = off" -c "CREATE POLICY open ON $w2_invoice USING (true)" -c "ALTER TABLE $w2_lead OWNER TO shard_other"
on coord -q -c "SET citus.override_table_visibility = off" -c "ALTER POLICY tenancy_isolation ON $w1_product USING (true)"
shard_id() { sed -E 's/.*_([0-9]+)$/\1/' <<<"$1"; }
prefix="differs from its table, and the workers enforce the shard's policies, not the table's"
same "check() names each tampered placement and what differs" \
    "$(sort <<EXPECTED
shard $(shard_id "$w1_order") of public.orders on localhost:${PORT[worker1]}: $prefix: row level security is disabled
shard $(shard_id "$w1_product") of public.products on localhost:${PORT[coord]}: $prefix: policy tenancy_isolation differs
shard $(shard_id "$w2_invoice") of public.invoices on localhost:${PORT[worker2]}: $prefix: policy open is not on its table
shard $(shard_id "$w2_lead") of crm.leads on localhost:${PORT[worker2]}: $prefix: it is owned by shard_other, its table by shard_owner
EXPECTED
)" "$(shard_findings | sort)"
expect_error "assert_isolated() refuses the cluster" 42501 "pg_tenancy: the database is not isolated" \
    on coord -c "SELECT tenancy.assert_isolated()" </dev/null
same "... naming the tampered shards" yes \
    "$(grep -q '\[critical\] citus_shard_unprotected: shard ' <<<"$expect_output" && echo yes || echo no)"
fixes="$(value coord "SELECT string_agg(fix, E'\n') FROM tenancy.check() WHERE rule = 'citus_shard_unprotected'")"
same "a fix drops the extra policy by its quoted name, through Citus" yes \
    "$(grep -qF "SELECT run_command_on_placements('public.invoices', 'DROP POLICY IF EXISTS open ON %s');" <<<"$fixes" && echo yes || echo no)"
on coord -q <<<"$fixes" >/dev/null
same "after its fixes, check() is clean" none "$(shard_findings)"
same "... and every shard and placement is protected" "0 0 0" "$(unprotected_shards)"

say "a shard renamed, weakened in another schema, put under another table or given children, or a stand-in renamed in: refused"
moved="a shard keeps its name: renamed, Citus would no longer know it as its table's shard (and another table could take its name)"
same "run_command_on_shards: RENAME TO another name" "$(refusal public.loot "$moved")" \
    "$(refused run_command_on_shards "'orders', " 'ALTER TABLE %s RENAME TO loot')"
co_product="$(shard_on coord products)"
w1_invoice="$(shard_on worker1 invoices)"
w1_order2="$(value coord "SELECT shard_name('orders'::regclass, s.shardid) FROM pg_dist_shard s JOIN pg_dist_placement p USING (shardid) JOIN pg_dist_node n USING (groupid) WHERE s.logicalrelid = 'orders'::regclass AND n.nodeport = ${PORT[worker1]} ORDER BY s.shardid OFFSET 1 LIMIT 1")"
session coord shard_owner >"$out" <<SQL
SET citus.enable_manual_changes_to_shards = on;
-- the coordinator's own placement of a reference table
ALTER TABLE $co_product RENAME TO loot;
-- moved to another schema (as Citus moves a table's shards), it is still guarded
ALTER TABLE $co_product SET SCHEMA crm;
ALTER TABLE crm.$co_product NO FORCE ROW LEVEL SECURITY;
ALTER TABLE crm.$co_product SET SCHEMA public;
CREATE TABLE peek_products (LIKE products) PARTITION BY LIST (tenant_id);
ALTER TABLE peek_products ATTACH PARTITION $co_product DEFAULT;
CREATE TABLE kid_products () INHERITS ($co_product);
SQL
expect "on the coordinator, its reference placement cannot be renamed, weakened in another schema, attached or inherited from" <<'EOF'
ERROR:  42501
ERROR:  42501
ERROR:  42501
ERROR:  42501
EOF
session worker1 shard_owner >"$out" <<SQL
SET citus.enable_manual_changes_to_shards = on;
ALTER TABLE $w1_order RENAME TO loot;
ALTER TABLE $w1_order SET SCHEMA crm;
ALTER TABLE crm.$w1_order NO FORCE ROW LEVEL SECURITY;
ALTER TABLE crm.$w1_order SET SCHEMA public;
-- a partitioned table of the owner's own with the shard as its partition: read through it,
-- the shard's policies would not apply
CREATE TABLE peek (id bigint NOT NULL, tenant_id text NOT NULL, item text) PARTITION BY LIST (tenant_id);
ALTER TABLE peek ATTACH PARTITION $w1_order DEFAULT;
CREATE TABLE peek_plain (id bigint NOT NULL, tenant_id text NOT NULL);
ALTER TABLE $w1_lead INHERIT peek_plain;
-- a child of the shard: its rows would show among the shard's tenants
CREATE TABLE fake_kid () INHERITS ($w1_order2);
CREATE TABLE fake_kid2 (id bigint NOT NULL, tenant_id text NOT NULL, item text);
ALTER TABLE fake_kid2 INHERIT $w1_order2;
-- a shard replaced by a stand-in without protection, renamed away before its commit check
-- and back after it
BEGIN;
SET LOCAL citus.enable_manual_changes_to_shards = on;
DROP TABLE $w1_invoice;
CREATE TABLE $w1_invoice (id bigint NOT NULL, tenant_id text, amount int);
ALTER TABLE $w1_invoice RENAME TO staged;
COMMIT;
ALTER TABLE staged RENAME TO $w1_invoice;
SELECT 'shards kept: ' || count(*) FROM pg_policy WHERE polrelid IN ('$w1_order'::regclass, '$w1_order2'::regclass, '$w1_lead'::regclass, '$w1_invoice'::regclass) AND polname = 'tenancy_isolation';
SQL
expect "on a worker, a shard cannot be renamed, weakened in another schema, attached, inherited from, or replaced by a stand-in" <<'EOF'
ERROR:  42501
ERROR:  42501
ERROR:  42501
ERROR:  42501
ERROR:  42501
ERROR:  42501
ERROR:  42501
ERROR:  42P01
shards kept: 4
EOF
same "after these attacks, every shard and placement is still protected" "0 0 0" "$(unprotected_shards)"
same "... under its own name" "1 7 7" \
    "$(for n in "${NODES[@]}"; do shard_value "$n" "SELECT count(*) FROM pg_class c WHERE c.relname ~ '$tables_re'"; done | paste -sd' ')"
same "... and no shard has a parent or a child" "0 0 0" \
    "$(for n in "${NODES[@]}"; do shard_value "$n" "SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid IN (i.inhrelid, i.inhparent) WHERE c.relname ~ '$tables_re'"; done | paste -sd' ')"
same "... and check() finds no shard that differs" none "$(shard_findings)"
PGUSER_AS=shard_owner on coord -q >/dev/null <<'SQL'
-- Citus's own inheritance: a protected partitioned table distributed by its owner, whose
-- partition shards Citus attaches to the parent's shards as that owner on the workers
CREATE TABLE events (id bigint NOT NULL, tenant_id text NOT NULL, at date NOT NULL, PRIMARY KEY (tenant_id, id, at)) PARTITION BY RANGE (at);
CREATE TABLE events_2026 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
SELECT tenancy.protect('events');
SELECT create_distributed_table('events', 'tenant_id', colocate_with => 'orders');
CREATE TABLE events_2027 PARTITION OF events FOR VALUES FROM ('2027-01-01') TO ('2028-01-01');
SQL
same "Citus still attaches a distributed partitioned table's partition shards to its shards" "4 4" \
    "$(for n in worker1 worker2; do shard_value "$n" "SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE c.relname ~ '^events_20[0-9]+_[0-9]+$'"; done | paste -sd' ')"
same "... and check() finds no shard that differs" none "$(shard_findings)"

say "check() reports a placement that a superuser put under another table or gave a child"
w2_order="$(shard_on worker2 orders)"
on worker2 -q <<SQL
SET citus.override_table_visibility = off;
SET citus.enable_manual_changes_to_shards = on;
CREATE TABLE peek_su (id bigint NOT NULL, tenant_id text NOT NULL, item text) PARTITION BY LIST (tenant_id);
ALTER TABLE peek_su ATTACH PARTITION $w2_order DEFAULT;
CREATE TABLE kid_su () INHERITS ($w2_invoice);
SQL
same "check() names each and what differs" \
    "$(sort <<EXPECTED
shard $(shard_id "$w2_invoice") of public.invoices on localhost:${PORT[worker2]}: $prefix: it has 1 partition(s) or inheritance children, its table 0 (their rows show among its tenants)
shard $(shard_id "$w2_order") of public.orders on localhost:${PORT[worker2]}: $prefix: it is a partition or inheritance child of 1 table(s), its table of 0 (a query through such a parent skips its policies)
EXPECTED
)" "$(shard_findings | sort)"
on worker2 -q -c "SET citus.enable_manual_changes_to_shards = on" -c "ALTER TABLE peek_su DETACH PARTITION $w2_order" -c "DROP TABLE kid_su, peek_su"
same "... and nothing once they are undone" none "$(shard_findings)"

say "the owner still renames a protected distributed table and moves it to another schema"
session coord shard_owner >"$out" <<'SQL'
ALTER TABLE scratch RENAME TO scratch2;
ALTER TABLE scratch2 SET SCHEMA crm;
ALTER TABLE crm.scratch2 RENAME TO scratch;
ALTER TABLE crm.scratch SET SCHEMA public;
SELECT 'renamed and back: ' || count(*) FROM scratch;
SQL
expect "renames and SET SCHEMA of the table reach its shards, which stay guarded" <<'EOF'
renamed and back: 0
EOF
same "... its shards are still protected and named after it" "2/2 2/2" "$(scratch_shards)"
same "... and the guard still holds on them" "$(refusal public.scratch_N 'row level security is disabled')" \
    "$(refused run_command_on_shards "'scratch', " 'ALTER TABLE %s DISABLE ROW LEVEL SECURITY')"

citus_done
