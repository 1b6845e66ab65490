#!/usr/bin/env python3
"""Concurrent job workers (driven by tests/system/jobs.sh).

    job_workers.py WORKER_CONNINFO ADMIN_CONNINFO WORKERS

WORKERS sessions drain the queue `work`: each job is claimed, processed and completed in one
transaction, the way docs/jobs.md tells a worker to. Processing reads the protected table
`sources` (the worker names no tenant: what it sees is the claim's context) and inserts one
row into the protected table `results` without a tenant column, so the row is stamped from
the context. Meanwhile a victim session claims a job, inserts its derived row and is
terminated by an administrator (pg_terminate_backend) before it commits: that job must come
back and be processed by a worker, exactly once. Prints one JSON line: jobs completed per
worker, the victim's job id, and whether it was terminated; exits non-zero if a worker failed.
"""

import json
import sys
import threading
import time

import psycopg

CLAIM = "SELECT job_id, tenant, payload FROM tenancy.claim_job('work')"
PROCESS = """
INSERT INTO results (job_id, expected_tenant, seen_tenants, seen_rows, worker)
SELECT tenancy.current_job(), %s, string_agg(DISTINCT tenant_id, ','), count(*), %s
  FROM sources
"""


def worker(conninfo, n, start, out, errors):
    done = 0
    try:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            start.wait()
            idle = 0
            while idle < 20:
                with conn.transaction():
                    row = conn.execute(CLAIM).fetchone()
                    if row is None:
                        idle += 1
                    else:
                        idle = 0
                        _, _, payload = row
                        conn.execute(PROCESS, (payload["tenant"], n))
                        conn.execute("SELECT tenancy.complete_job()")
                        done += 1
                if row is None:
                    # Nothing ready: the victim's job may still be locked by its transaction.
                    time.sleep(0.05)
    except Exception as e:  # noqa: BLE001 - reported, and the run fails
        errors.append(f"worker {n}: {type(e).__name__}: {e}")
    out[n] = done


def victim(conninfo, admin_conninfo, start, report, errors):
    """Claims a job, does its work, and dies before committing."""
    try:
        conn = psycopg.connect(conninfo, autocommit=True)
        admin = psycopg.connect(admin_conninfo, autocommit=True)
        pid = conn.info.backend_pid
        start.wait()
        conn.execute("BEGIN")
        row = conn.execute(CLAIM).fetchone()
        if row is None:
            errors.append("victim: nothing to claim")
            return
        job_id, _, payload = row
        conn.execute(PROCESS, (payload["tenant"], -1))
        report["victim_job"] = job_id
        # The workers run on meanwhile, past the locked job.
        time.sleep(0.5)
        # Mid-job: the derived row is written, the job not completed, the transaction open.
        killed = admin.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone()[0]
        report["terminated"] = bool(killed)
        try:
            conn.execute("SELECT tenancy.complete_job()")
            conn.execute("COMMIT")
            errors.append("victim: its session survived pg_terminate_backend")
        except psycopg.OperationalError:
            pass
        admin.close()
    except Exception as e:  # noqa: BLE001
        errors.append(f"victim: {type(e).__name__}: {e}")


def main():
    conninfo, admin_conninfo, workers = sys.argv[1], sys.argv[2], int(sys.argv[3])
    start = threading.Barrier(workers + 2)
    out, errors, report = {}, [], {}
    threads = [threading.Thread(target=worker, args=(conninfo, i, start, out, errors))
               for i in range(1, workers + 1)]
    threads.append(threading.Thread(target=victim,
                                    args=(conninfo, admin_conninfo, start, report, errors)))
    for t in threads:
        t.start()
    t0 = time.monotonic()
    start.wait()
    for t in threads:
        t.join()
    report["seconds"] = round(time.monotonic() - t0, 2)
    report["per_worker"] = out
    report["completed"] = sum(out.values())
    report["errors"] = errors
    print(json.dumps(report, sort_keys=True))
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
