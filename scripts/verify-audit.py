#!/usr/bin/env python3
"""Verify pg_tenancy audit chains outside the database.

Recomputes every row's SHA-256 from the canonical encoding defined in docs/audit.md, using
only the Python standard library and psycopg 3 (to read the rows). It trusts nothing the
extension computed: not verify_audit(), not the stored hashes (except as the values to check).

    scripts/verify-audit.py "host=... dbname=... user=..." TENANT [TENANT ...]
    scripts/verify-audit.py "host=... dbname=..." --all
    scripts/verify-audit.py --self-test

Prints one JSON line per tenant: {"tenant", "ok", "checked", "first_bad_id", "reason",
"head_seq", "head_hash"}. Anchor head_hash somewhere the database's superuser cannot write
(a ticket, a log shipper, a signed e-mail): a superuser can rewrite a whole chain
consistently, and only an external copy of its head shows that. --expect-head SEQ:HEX checks
one tenant's chain against such an anchor (the chain must contain that row unchanged).
A chain with no visible rows is reported as not ok ("no_rows_visible"): connect as an admin.
Exit status: 0 all chains verify, 1 a chain is broken or unreadable, 2 usage or connection error.
"""

import hashlib
import json
import struct
import sys
from datetime import datetime, timezone

GENESIS = bytes(32)
VERSION = b"\x01"
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _str(s):
    b = s.encode("utf-8")
    return struct.pack(">I", len(b)) + b


def _opt(s):
    return b"\x00" if s is None else b"\x01" + _str(s)


def micros_since_epoch(ts):
    """Exact integer microseconds (no float) of an aware datetime."""
    d = ts - EPOCH
    return (d.days * 86400 + d.seconds) * 1_000_000 + d.microseconds


def encode(row):
    """row: dict with id, tenant_id, seq, at_micros, txid, actor, roles, support, event, detail
    (support and detail as PostgreSQL's jsonb text)."""
    out = [VERSION, struct.pack(">q", row["id"]), _str(row["tenant_id"]),
           struct.pack(">q", row["seq"]), struct.pack(">q", row["at_micros"]),
           struct.pack(">Q", row["txid"]), _opt(row["actor"]),
           struct.pack(">I", len(row["roles"]))]
    out += [_str(r) for r in row["roles"]]
    out += [_opt(row["support"]), _str(row["event"]), _str(row["detail"])]
    return b"".join(out)


def chain_hash(prev_hash, row):
    return hashlib.sha256(bytes(prev_hash) + encode(row)).digest()


def walk(rows):
    """rows in seq order, each a dict as for encode() plus prev_hash and hash."""
    # A row whose hash does not match its own contents was changed: it is reported before any
    # row that is merely out of place (a changed seq moves the row in seq order).
    expected_seq, prev, checked, changed, misplaced = 1, GENESIS, 0, None, None
    seen = {}
    for r in rows:
        checked += 1
        if changed is None and chain_hash(r["prev_hash"], r) != bytes(r["hash"]):
            changed = (r["id"], "contents")
        if misplaced is None:
            if r["seq"] != expected_seq:
                misplaced = (r["id"], "sequence")
            elif bytes(r["prev_hash"]) != prev:
                misplaced = (r["id"], "link")
        expected_seq = r["seq"] + 1
        prev = bytes(r["hash"])
        seen[r["seq"]] = prev
    bad = changed or misplaced
    return {"ok": bad is None, "checked": checked,
            "first_bad_id": bad[0] if bad else None, "reason": bad[1] if bad else None,
            "head_seq": expected_seq - 1, "head_hash": prev.hex(), "_seen": seen}


QUERY = """
SELECT id, tenant_id, seq, at, txid::text, actor, roles, support::text, event, detail::text,
       prev_hash, hash
  FROM tenancy.audit_log WHERE tenant_id = %s ORDER BY seq, id
"""


def rows_of(conn, tenant):
    with conn.cursor(name="audit_rows") as cur:  # server-side: constant memory
        cur.itersize = 2000
        cur.execute(QUERY, (tenant,))
        for (id_, tenant_id, seq, at, txid, actor, roles, support, event, detail,
             prev_hash, hash_) in cur:
            yield {"id": id_, "tenant_id": tenant_id, "seq": seq,
                   "at_micros": micros_since_epoch(at), "txid": int(txid), "actor": actor,
                   "roles": list(roles), "support": support, "event": event,
                   "detail": detail, "prev_hash": prev_hash, "hash": hash_}


def self_test():
    """The known-answer vector shared with crates/tenancy-core/src/audit.rs."""
    r1 = {"id": 7, "tenant_id": "acme", "seq": 1, "at_micros": 1_790_000_000_123_456,
          "txid": 1234, "actor": "alice", "roles": ["hr", "admin"], "support": None,
          "event": "payroll.approved", "detail": '{"run": 42}'}
    h1 = chain_hash(GENESIS, r1)
    r2 = dict(r1, id=9, seq=2, actor=None, roles=[],
              support='{"by": "bob", "until": 1790000600, "reason": "ticket 7"}')
    h2 = chain_hash(h1, r2)
    print(json.dumps({"h1": h1.hex(), "h2": h2.hex()}))
    return h1.hex(), h2.hex()


def main(argv):
    if argv[1:] == ["--self-test"]:
        self_test()
        return 0
    args = argv[1:]
    expect = None
    if "--expect-head" in args:
        i = args.index("--expect-head")
        try:
            seq, hexhash = args[i + 1].split(":", 1)
            expect = (int(seq), bytes.fromhex(hexhash))
        except (IndexError, ValueError):
            print("--expect-head takes SEQ:HEX", file=sys.stderr)
            return 2
        del args[i:i + 2]
    if len(args) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    import psycopg  # only needed against a database

    try:
        conn = psycopg.connect(args[0], autocommit=False)
    except psycopg.Error as e:
        print(f"verify-audit: cannot connect: {e}", file=sys.stderr)
        return 2
    with conn:
        # One snapshot for the whole run, so concurrent writers do not make a chain look cut.
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        tenants = args[1:]
        if tenants == ["--all"]:
            tenants = [t for (t,) in conn.execute(
                "SELECT DISTINCT tenant_id FROM tenancy.audit_log ORDER BY 1")]
        status = 0
        for t in tenants:
            result = walk(rows_of(conn, t))
            seen = result.pop("_seen")
            if result["checked"] == 0:
                # Every tenant's chain starts with tenant_created: no rows means this role
                # cannot read the chain (or it was purged), not that it verifies.
                result.update(ok=False, reason="no_rows_visible")
            if expect is not None:
                anchored = seen.get(expect[0]) == expect[1]
                result["anchor_ok"] = anchored
                if not anchored:
                    result["ok"] = False
            print(json.dumps({"tenant": t, **result}))
            if not result["ok"]:
                status = 1
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv))
