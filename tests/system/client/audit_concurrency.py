#!/usr/bin/env python3
"""Concurrent audit writers (driven by tests/system/audit-concurrency.sh).

    audit_concurrency.py CONNINFO

8 sessions write 10,000 audit rows for tenant t1 while 2 sessions each write 500 rows for
t2, t3 and t4, all at once. Transactions are 1 to 8 rows, under READ COMMITTED,
REPEATABLE READ and SERIALIZABLE in turn; one transaction in 10 is rolled back on purpose
after writing (those rows must leave no gap). A serialization failure (40001) or deadlock
(40P01) is retried, which is what an application does. Prints one JSON line with the rows
committed per tenant, retries and rollbacks; exits non-zero if a writer failed.
"""

import json
import random
import sys
import threading

import psycopg
from psycopg import errors

LEVELS = ["READ COMMITTED", "REPEATABLE READ", "SERIALIZABLE"]


def writer(conninfo, tenant, worker, rows, out, lock):
    rnd = random.Random(f"{tenant}-{worker}")
    committed = retries = rolled_back = 0
    with psycopg.connect(conninfo, autocommit=True) as conn:
        n = 0
        while committed < rows:
            size = min(rnd.randint(1, 8), rows - committed)
            level = LEVELS[n % len(LEVELS)]
            n += 1
            discard = rnd.random() < 0.1
            try:
                with conn.transaction():
                    conn.execute(f"SET TRANSACTION ISOLATION LEVEL {level}")
                    conn.execute("SELECT tenancy.set_tenant(%s, %s)", (tenant, f"w{worker}"))
                    for i in range(size):
                        conn.execute(
                            "SELECT tenancy.audit('load.write', jsonb_build_object("
                            "'worker', %s::int, 'i', %s::int, 'level', %s::text))",
                            (worker, committed + i, level))
                    if discard:
                        raise psycopg.Rollback()
            except (errors.SerializationFailure, errors.DeadlockDetected):
                retries += 1
                continue
            if discard:
                rolled_back += 1
            else:
                committed += size
    with lock:
        out[tenant] = out.get(tenant, 0) + committed
        out["_retries"] = out.get("_retries", 0) + retries
        out["_rolled_back"] = out.get("_rolled_back", 0) + rolled_back


def main(conninfo):
    plan = [("t1", w, 1250) for w in range(8)]
    plan += [(t, w, 500) for t in ("t2", "t3", "t4") for w in range(2)]
    out, lock, failures = {}, threading.Lock(), []

    def run(args):
        try:
            writer(conninfo, *args, out, lock)
        except Exception as e:  # reported below; the script fails on it
            failures.append(f"{args[0]}/w{args[1]}: {type(e).__name__}: {e}")

    threads = [threading.Thread(target=run, args=(p,)) for p in plan]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out["_failures"] = failures
    print(json.dumps(out, sort_keys=True))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
