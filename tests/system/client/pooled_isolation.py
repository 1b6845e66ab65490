"""Isolation under real traffic: psycopg 3 through PgBouncer in transaction pooling mode.

32 worker threads, each with its own client connection to PgBouncer, which multiplexes them
over 4 server connections. Every transaction picks a random tenant of 50, sets the context
with a token (bind parameter, transaction-local, the way docs/clients.md says), and reads,
inserts or updates through parameterised statements. Interleaved transactions set no context
at all and must see zero rows, even on a server connection that just served a tenant.

Prints the figures and exits non-zero on any cross-tenant row, any context bleed, or any
unexpected error. Usage: pooled_isolation.py PGBOUNCER_DSN DIRECT_DSN
"""
import random
import sys
import threading

import psycopg

WORKERS = 32
TXNS = 300
TENANTS = 50

bouncer_dsn, direct_dsn = sys.argv[1], sys.argv[2]

# Tokens are minted once, as an identity provider would, over a direct connection.
with psycopg.connect(direct_dsn, autocommit=True) as admin:
    tokens = dict(admin.execute(
        "SELECT n, tenancy.sign_token(jsonb_build_object('tenant_id', 't' || n, 'sub', 'worker',"
        " 'exp', extract(epoch FROM now() + interval '1 hour')::bigint)) FROM generate_series(1, %s) n",
        (TENANTS,)).fetchall())

lock = threading.Lock()
stats = {"transactions": 0, "rows_checked": 0, "cross_tenant_rows": 0, "bleeds": 0,
         "no_context_txns": 0, "inserts": 0, "updates": 0, "errors": []}


def worker(seed):
    rnd = random.Random(seed)
    local = {"transactions": 0, "rows_checked": 0, "cross_tenant_rows": 0, "bleeds": 0,
             "no_context_txns": 0, "inserts": 0, "updates": 0}
    try:
        # prepare_threshold=None: parameters are still bound server-side (extended protocol,
        # unnamed statements), which is what PgBouncer 1.18 supports in transaction mode.
        with psycopg.connect(bouncer_dsn, prepare_threshold=None) as conn:
            for _ in range(TXNS):
                local["transactions"] += 1
                if rnd.random() < 0.2:
                    with conn.transaction():
                        n = conn.execute("SELECT count(*) FROM items").fetchone()[0]
                        who = conn.execute("SELECT tenancy.current_tenant()").fetchone()[0]
                        local["no_context_txns"] += 1
                        if n != 0 or who is not None:
                            local["bleeds"] += 1
                    continue
                t = rnd.randint(1, TENANTS)
                tenant = f"t{t}"
                with conn.transaction():
                    conn.execute("SELECT tenancy.set_context(%s)", (tokens[t],))
                    op = rnd.random()
                    if op < 0.3:
                        conn.execute("INSERT INTO items (body) VALUES (%s)", (f"from worker {seed}",))
                        local["inserts"] += 1
                    elif op < 0.5:
                        conn.execute("UPDATE items SET body = body || '.' WHERE id IN "
                                     "(SELECT id FROM items ORDER BY id DESC LIMIT 2)")
                        local["updates"] += 1
                    rows = conn.execute("SELECT tenant_id FROM items ORDER BY id DESC LIMIT 20").fetchall()
                    local["rows_checked"] += len(rows)
                    local["cross_tenant_rows"] += sum(1 for (tid,) in rows if tid != tenant)
    except Exception as e:  # noqa: BLE001 - every error is a finding here
        with lock:
            stats["errors"].append(f"worker {seed}: {type(e).__name__}: {e}")
    with lock:
        for k, v in local.items():
            stats[k] += v


threads = [threading.Thread(target=worker, args=(i,)) for i in range(WORKERS)]
for th in threads:
    th.start()
for th in threads:
    th.join()

# Every row written landed in the tenant whose context wrote it.
with psycopg.connect(direct_dsn, autocommit=True) as admin:
    stamped_elsewhere = admin.execute(
        "SELECT count(*) FROM items WHERE body LIKE 'from worker%' AND tenant_id NOT LIKE 't%'").fetchone()[0]
    total_rows = admin.execute("SELECT count(*) FROM items").fetchone()[0]

print(f"pooled run: {WORKERS} workers x {TXNS} transactions through PgBouncer (transaction pooling),"
      f" {TENANTS} tenants")
for k in ["transactions", "no_context_txns", "inserts", "updates", "rows_checked",
          "cross_tenant_rows", "bleeds"]:
    print(f"  {k}: {stats[k]}")
print(f"  rows in table afterwards: {total_rows}; rows stamped outside a tenant: {stamped_elsewhere}")
for err in stats["errors"][:10]:
    print(f"  ERROR {err}")
failed = stats["cross_tenant_rows"] or stats["bleeds"] or stats["errors"] or stamped_elsewhere \
    or stats["rows_checked"] == 0 or stats["no_context_txns"] == 0
print(f"pooled isolation: {0 if failed else 1} passed, {1 if failed else 0} failed")
sys.exit(1 if failed else 0)
