#!/usr/bin/env bash
# Usage: tests/system/citus-routing.sh [15]
# Routing on Citus (docs/scale-out.md, "Routing"): on a coordinator and two workers
# (`citus,pg_tenancy` preloaded), a tenant's query on protected distributed tables runs as one
# task although the query names no tenant (a point lookup, a co-located join, an aggregate),
# and a plan made for one tenant never serves another: the same prepared statement (custom
# and generic plans), a PL/pgSQL function, a context switched within a session and within a
# transaction, and a pooler's SET LOCAL of the carrier each return the current tenant's rows.
# No context: zero rows. The cluster is citus-lib.sh's (the registry made reference tables by
# tenancy.citus_setup()) and every table is protected by tenancy.protect(), so what is routed is
# what a user's protected tables carry. PostgreSQL 15 only (Citus 13.2 does not support 18);
# skipped, exit 0, when Citus is not available (scripts/citus-install.sh exits 3).
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
citus_start citus-routing 310 2

on coord -q >/dev/null <<'SQL'
CREATE ROLE routing_app LOGIN;
SELECT tenancy.grant_app('routing_app');
SELECT tenancy.create_tenant(t) FROM unnest(ARRAY['acme', 'globex', 'initech', 'umbrella', '42', '43',
    '123e4567-e89b-12d3-a456-426614174000']) t;
SELECT tenancy.add_signing_key('routing-key', decode(repeat('17', 32), 'hex'));
SET citus.shard_count = 16;
CREATE TABLE people (tenant_id text NOT NULL, id bigint NOT NULL, name text, PRIMARY KEY (tenant_id, id));
CREATE TABLE orders (tenant_id text NOT NULL, id bigint NOT NULL, person_id bigint, amount int,
                     PRIMARY KEY (tenant_id, id));
SELECT create_distributed_table('people', 'tenant_id');
SELECT create_distributed_table('orders', 'tenant_id', colocate_with => 'people');
INSERT INTO people VALUES ('acme', 1, 'Ada'), ('acme', 2, 'Brian'), ('acme', 3, 'Cleo'), ('globex', 1, 'Grace'),
    ('initech', 1, 'Ivan'), ('umbrella', 1, 'Uma');
INSERT INTO orders VALUES ('acme', 1, 1, 10), ('acme', 2, 2, 20), ('acme', 3, 1, 5),
    ('globex', 1, 1, 700), ('initech', 1, 1, 3), ('umbrella', 1, 1, 4);
-- Tenant columns of the other getters' types: bigint (current_tenant_int8) and uuid.
CREATE TABLE counters (tenant_id bigint NOT NULL, n int);
CREATE TABLE devices (tenant_id uuid NOT NULL, label text);
SELECT create_distributed_table('counters', 'tenant_id');
SELECT create_distributed_table('devices', 'tenant_id');
INSERT INTO counters VALUES (42, 1), (42, 2), (43, 3);
INSERT INTO devices VALUES ('123e4567-e89b-12d3-a456-426614174000', 'mine'),
    ('00000000-0000-0000-0000-000000000001', 'other');
-- A table on the coordinator only, protected the same way: not distributed, so never touched.
CREATE TABLE notes (tenant_id text NOT NULL, body text);
INSERT INTO notes VALUES ('acme', 'a note'), ('globex', 'g note');
SELECT tenancy.protect(t) FROM unnest(ARRAY['people', 'orders', 'counters', 'devices', 'notes']::regclass[]) t;
GRANT SELECT ON counters, devices TO routing_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON people, orders, notes TO routing_app;
SQL
# What routing recognises is protect()'s policy: the bare getter of the column's type.
same "protect() wrote the bare isolation conjunct routing recognises" \
    "counters:(tenant_id = tenancy.current_tenant_int8()) devices:(tenant_id = tenancy.current_tenant_uuid()) notes:(tenant_id = tenancy.current_tenant()) orders:(tenant_id = tenancy.current_tenant()) people:(tenant_id = tenancy.current_tenant())" \
    "$(value coord "SELECT string_agg(c.relname || ':' || pg_get_expr(p.polqual, p.polrelid), ' ' ORDER BY c.relname)
        FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid WHERE p.polname = 'tenancy_isolation'
         AND c.relname IN ('people', 'orders', 'counters', 'devices', 'notes')")"

token() {
    on coord -At -c "SELECT tenancy.sign_token(jsonb_build_object('tenant_id', '$1', 'sub', 'suite',
        'exp', extract(epoch FROM now() + interval '1 hour')::bigint))"
}
acme="$(token acme)"
globex="$(token globex)"
t42="$(token 42)"
tuuid="$(token 123e4567-e89b-12d3-a456-426614174000)"
# The carriers a pooler or PostgREST would forward with SET LOCAL.
carrier() {
    on coord -At -c "SELECT tenancy.set_context('$1', false) IS NOT NULL" -c "SHOW tenancy.context" | tail -1
}
acme_carrier="$(carrier "$acme")"
globex_carrier="$(carrier "$globex")"

script="$(mktemp)"
cat >"$script" <<'SQL'
\set QUIET on
CREATE FUNCTION pg_temp.tasks(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE line text; n text := 'none';
BEGIN
    FOR line IN EXECUTE 'EXPLAIN (COSTS OFF, VERBOSE) ' || q LOOP
        IF line ~ 'Task Count: ' THEN n := substring(line FROM 'Task Count: (\d+)'); END IF;
    END LOOP;
    RETURN n;
END $$;
-- The tenant literal(s) in the query Citus sends to the worker, from the plan (cached or not).
CREATE FUNCTION pg_temp.sent(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE line text; found text := '';
BEGIN
    FOR line IN EXECUTE 'EXPLAIN (COSTS OFF, VERBOSE) ' || q LOOP
        IF line ~ 'Query: ' THEN
            found := found || coalesce(substring(line FROM 'tenant_id OPERATOR\(pg_catalog\.=\) ''(\w+)''::text'), 'none');
        END IF;
    END LOOP;
    RETURN found;
END $$;
SELECT 'no_context_rows: ' || count(*) FROM people;
-- Planned (generic, no parameters) without a context: it must route once a context arrives.
PREPARE early AS SELECT count(*) FROM people;
SELECT 'early_no_context: ' || pg_temp.tasks('EXECUTE early');
SELECT 'no_context_tasks: ' || pg_temp.tasks('SELECT name FROM people WHERE id = 1');

BEGIN;
SELECT tenancy.set_context(:'acme') IS NULL;
SELECT 'early_tasks: ' || pg_temp.tasks('EXECUTE early');
\echo -n 'early_rows: '
EXECUTE early;
SELECT 'point_tasks: ' || pg_temp.tasks('SELECT name FROM people WHERE id = 1');
SELECT 'point_rows: ' || string_agg(name, ',') FROM people WHERE id = 1;
SELECT 'join_tasks: ' || pg_temp.tasks('SELECT p.name, o.amount FROM people p JOIN orders o ON o.person_id = p.id');
SELECT 'join_rows: ' || string_agg(p.name || '=' || o.amount, ',' ORDER BY o.id) FROM people p JOIN orders o ON o.person_id = p.id;
SELECT 'left_join_rows: ' || string_agg(p.name || '=' || coalesce(o.amount::text, '-'), ',' ORDER BY p.id, o.id)
  FROM people p LEFT JOIN orders o ON o.person_id = p.id AND o.amount > 5;
SELECT 'full_join_rows: ' || string_agg(coalesce(p.name, '-') || '=' || coalesce(o.amount::text, '-'), ',' ORDER BY coalesce(p.name, '-'), o.amount)
  FROM people p FULL JOIN orders o ON o.person_id = p.id AND o.amount > 5;
SELECT 'full_join_tasks: ' || pg_temp.tasks('SELECT p.name, o.amount FROM people p FULL JOIN orders o ON o.person_id = p.id');
SELECT 'aggregate_tasks: ' || pg_temp.tasks('SELECT count(*), sum(amount) FROM orders');
SELECT 'aggregate_rows: ' || count(*) || '/' || sum(amount) FROM orders;
SELECT 'local_table_literal: ' || (pg_temp.tasks('SELECT body FROM notes') = 'none') || '/'
       || (SELECT count(*) FROM notes);
COMMIT;

-- Writes route the same way and touch the tenant's rows only.
BEGIN;
SELECT tenancy.set_context(:'acme') IS NULL;
SELECT 'update_tasks: ' || pg_temp.tasks('UPDATE orders SET amount = 0 WHERE id = 1');
SELECT 'delete_tasks: ' || pg_temp.tasks('DELETE FROM orders WHERE id = 3');
UPDATE orders SET amount = amount + 100 WHERE id = 1;
DELETE FROM orders WHERE id = 3;
SELECT 'after_write: ' || string_agg(id || '=' || amount, ',' ORDER BY id) FROM orders;
SELECT tenancy.set_context(:'globex') IS NULL;
SELECT 'other_after_write: ' || string_agg(id || '=' || amount, ',' ORDER BY id) FROM orders;
ROLLBACK;
BEGIN;
SELECT tenancy.set_context(:'t42') IS NULL;
SELECT 'int8_tasks: ' || pg_temp.tasks('SELECT sum(n) FROM counters');
SELECT 'int8_rows: ' || sum(n) FROM counters;
SELECT 'uuid_in_int8_context: ' || count(*) FROM devices;
COMMIT;
BEGIN;
SELECT tenancy.set_context(:'tuuid') IS NULL;
SELECT 'uuid_tasks: ' || pg_temp.tasks('SELECT label FROM devices');
SELECT 'uuid_rows: ' || string_agg(label, ',') FROM devices;
COMMIT;

-- One backend, one prepared statement, the tenant switching under it. Without parameters the
-- plan cache always uses the generic plan: the sharpest case.
PREPARE names AS SELECT string_agg(name, ',' ORDER BY name) FROM people;
PREPARE by_id(bigint) AS SELECT string_agg(name, ',') FROM people WHERE id = $1;
CREATE FUNCTION pg_temp.names() RETURNS text LANGUAGE plpgsql AS $$
DECLARE r text;
BEGIN
    SELECT string_agg(name, ',' ORDER BY name) INTO r FROM people;
    RETURN r;
END $$;
SQL
# The tenant switches under the same plans, more than five times (when the plan cache may
# settle on a generic plan), in every way an application or a pooler switches it.
for round in 1 2 3 4 5 6 7; do
    for t in acme globex; do
        cat >>"$script" <<SQL
BEGIN;
SELECT tenancy.set_context(:'$t') IS NULL;
\\echo -n 'xact $round $t names: '
EXECUTE names;
\\echo -n 'xact $round $t by_id: '
EXECUTE by_id(1);
SELECT 'xact $round $t plpgsql: ' || pg_temp.names();
COMMIT;
SET plan_cache_mode = force_generic_plan;
BEGIN;
SELECT tenancy.set_context(:'$t') IS NULL;
\\echo -n 'generic $round $t by_id: '
EXECUTE by_id(1);
SELECT 'generic $round $t plpgsql: ' || pg_temp.names();
COMMIT;
RESET plan_cache_mode;
SELECT tenancy.set_context(:'$t', false) IS NULL;
SELECT 'session $round $t sends: ' || pg_temp.sent('EXECUTE names');
BEGIN;
SET LOCAL tenancy.context = :'${t}_carrier';
\\echo -n 'pooled $round $t names: '
EXECUTE names;
COMMIT;
SQL
    done
    cat >>"$script" <<SQL
BEGIN;
SELECT tenancy.set_context(:'acme') IS NULL;
\\echo -n 'in_xact $round acme names: '
EXECUTE names;
SELECT tenancy.set_context(:'globex') IS NULL;
\\echo -n 'in_xact $round globex names: '
EXECUTE names;
COMMIT;
SQL
done
cat >>"$script" <<'SQL'
SELECT tenancy.clear_context();
\echo -n 'cleared names: '
EXECUTE names;
SELECT 'cleared plpgsql: ' || coalesce(pg_temp.names(), '');
SQL

say "through the coordinator, as the application role"
PGHOST=localhost PGPORT="${PORT[coord]}" "$CL_BINDIR/psql" -X -U routing_app -d "$CITUS_DB" -At -v ON_ERROR_STOP=0 \
    -v acme="$acme" -v globex="$globex" -v acme_carrier="$acme_carrier" -v globex_carrier="$globex_carrier" \
    -v t42="$t42" -v tuuid="$tuuid" -f "$script" >"$out" 2>&1
rm -f "$script"

# The fan-out that routing replaces: the same lookup with routing off (a superuser setting,
# then the application role).
fanout="$(on coord -At -v acme="$acme" <<'SQL'
SET tenancy.citus_routing = off;
SET ROLE routing_app;
BEGIN;
SELECT tenancy.set_context(:'acme') IS NULL;
EXPLAIN (COSTS OFF) SELECT name FROM people WHERE id = 1;
COMMIT;
SQL
)"

# A SQL function's statements are planned together before the first runs (PostgreSQL 15), so a
# function that switches the context is the one way left for a routed plan to reach the
# executor under another tenant: refused, rather than returning no rows.
sqlfn="$(PGHOST=localhost PGPORT="${PORT[coord]}" "$CL_BINDIR/psql" -X -U routing_app -d "$CITUS_DB" -At \
    -v acme="$acme" -v globex="$globex" 2>&1 <<'SQL'
CREATE FUNCTION pg_temp.switch_then_read(token text) RETURNS text LANGUAGE sql AS $$
    SELECT tenancy.set_context(token) IS NULL;
    SELECT string_agg(name, ',' ORDER BY name) FROM people;
$$;
BEGIN;
SELECT tenancy.set_context(:'acme') IS NULL;
SELECT 'switched: ' || coalesce(pg_temp.switch_then_read(:'globex'), '');
ROLLBACK;
SQL
)"

# expect_line LINE: the application session's output has this line.
expect_line() {
    if grep -qxF -- "$1" "$out"; then
        say "ok: $1"
    else
        printf '*** expected line: %s\n' "$1" >&2
        fail=1
    fi
}
expect_line "no_context_rows: 0"
expect_line "no_context_tasks: 16"
expect_line "early_no_context: 16"
expect_line "early_tasks: 1"
expect_line "early_rows: 3"
expect_line "point_tasks: 1"
expect_line "point_rows: Ada"
expect_line "join_tasks: 1"
expect_line "join_rows: Ada=10,Brian=20,Ada=5"
expect_line "left_join_rows: Ada=10,Brian=20,Cleo=-"
expect_line "full_join_rows: -=5,Ada=10,Brian=20,Cleo=-"
expect_line "full_join_tasks: 1"
expect_line "aggregate_tasks: 1"
expect_line "aggregate_rows: 3/35"
expect_line "local_table_literal: true/1"
expect_line "update_tasks: 1"
expect_line "delete_tasks: 1"
expect_line "after_write: 1=110,2=20"
expect_line "other_after_write: 1=700"
expect_line "int8_tasks: 1"
expect_line "int8_rows: 3"
expect_line "uuid_in_int8_context: 0"
expect_line "uuid_tasks: 1"
expect_line "uuid_rows: mine"
for round in 1 2 3 4 5 6 7; do
    expect_line "session $round acme sends: acme"
    expect_line "session $round globex sends: globex"
    for mode in xact pooled in_xact; do
        expect_line "$mode $round acme names: Ada,Brian,Cleo"
        expect_line "$mode $round globex names: Grace"
    done
    for mode in xact generic; do
        expect_line "$mode $round acme by_id: Ada"
        expect_line "$mode $round globex by_id: Grace"
        expect_line "$mode $round acme plpgsql: Ada,Brian,Cleo"
        expect_line "$mode $round globex plpgsql: Grace"
    done
done
expect_line "cleared names: "
expect_line "cleared plpgsql: "
if grep -q ERROR "$out"; then
    printf '*** unexpected errors\n' >&2
    fail=1
fi
if grep -q 'ERROR:  pg_tenancy: this plan was made for another tenant' <<<"$sqlfn"; then
    say "ok: a routed plan reaching the executor under another tenant is refused"
else
    printf '*** a SQL function switching tenants was not refused:\n%s\n' "$sqlfn" >&2
    fail=1
fi
if grep -q 'Task Count: 16' <<<"$fanout"; then
    say "ok: with tenancy.citus_routing off the same lookup runs on all 16 shards"
else
    printf '*** tenancy.citus_routing = off did not fan out:\n%s\n' "$fanout" >&2
    fail=1
fi
if [ "$fail" -ne 0 ]; then
    echo "---- application session output ----" >&2
    cat "$out" >&2
    die "Citus routing failed"
fi
say "a tenant's queries run on one shard, and no plan serves another tenant (PostgreSQL 15, Citus)"
