"""Turns make bench's raw.tsv into the markdown table kept in docs/benchmarks.md.

Each ratio is computed per round (arm / explicit in the same round, so drift over the run
cancels out), then summarised as the median with min-max across rounds.
"""
import statistics
import sys
from collections import defaultdict

raw, tenants, secs, rounds = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
tps = defaultdict(dict)  # (workload, type, clients, arm) -> {round: tps}
micro = []
wall = []
for line in open(raw):
    f = line.rstrip("\n").split("\t")
    if f[0] == "micro":
        micro.append((f[1], float(f[2])))
        continue
    if f[0] == "wall":
        wall.append((f[1], float(f[2])))
        continue
    wl, ty, clients, arm, rnd, value = f
    tps[(wl, ty, clients, arm)][rnd] = float(value)

TARGET = {"point": 0.97, "latest50": 0.97, "join": 0.97, "count": 0.95, "insert": 0.95, "orgcount": 0.90}


def ratios(key, base_key):
    a, b = tps.get(key, {}), tps.get(base_key, {})
    return [a[r] / b[r] for r in a if r in b and b[r] > 0]


def fmt(rs):
    if not rs:
        return "n/a"
    return f"{statistics.median(rs):.3f} ({min(rs):.3f}-{max(rs):.3f})"


def med(key):
    v = list(tps.get(key, {}).values())
    return f"{statistics.median(v):,.0f}" if v else "n/a"


print(f"{tenants} tenants x 1,000 events (x2 tenant types); pgbench -M prepared, {secs} s per run, "
      f"{rounds} interleaved rounds. Ratios are tps relative to `explicit` in the same round: "
      "median (min-max).\n")
print("| workload | tenant | clients | explicit tps | pg_tenancy | naive | naive_wrapped | target | result |")
print("|---|---|---|---|---|---|---|---|---|")
for wl in ["point", "latest50", "count", "join", "insert", "orgcount"]:
    for ty in ["int8", "uuid"]:
        for c in ["2", "8"]:
            base = (wl, ty, c, "explicit")
            if base not in tps:
                continue
            r_pt = ratios((wl, ty, c, "pg_tenancy"), base)
            r_nv = ratios((wl, ty, c, "naive"), base)
            r_nw = ratios((wl, ty, c, "naive_wrapped"), base)
            target = TARGET[wl]
            checks = [statistics.median(r_pt) >= target] if r_pt else [False]
            note = f">= {target}"
            if r_nw:
                vs_nw = ratios((wl, ty, c, "pg_tenancy"), (wl, ty, c, "naive_wrapped"))
                checks.append(statistics.median(vs_nw) >= 0.98)
                note += ", >= naive_wrapped"
            if wl == "count" and r_nv:
                vs_nv = ratios((wl, ty, c, "pg_tenancy"), (wl, ty, c, "naive"))
                checks.append(statistics.median(vs_nv) > 1.0)
                note += ", > naive"
            result = "pass" if all(checks) else "**miss**"
            print(f"| {wl} | {ty} | {c} | {med(base)} | {fmt(r_pt)} | {fmt(r_nv)} | {fmt(r_nw)} | {note} | {result} |")

print("\n| context per transaction | clients | SET LOCAL tps | token tps | token / SET LOCAL | target | result |")
print("|---|---|---|---|---|---|---|")
for c in ["2", "8"]:
    base = ("context", "int8", c, "set_local")
    r = ratios(("context", "int8", c, "token"), base)
    ok = "pass" if r and statistics.median(r) >= 0.90 else "**miss**"
    print(f"| set_context(token) + lookup vs SET LOCAL app.tenant_id + lookup | {c} | {med(base)} | {med(('context', 'int8', c, 'token'))} | {fmt(r)} | >= 0.90 | {ok} |")

if micro:
    print("\n| micro-cost (best of 3, one backend) | microseconds per call |")
    print("|---|---|")
    for label, us in micro:
        print(f"| {label} | {us} |")

if wall:
    print("\n| DDL and checker on 2,000 tables (one run) | wall time, ms |")
    print("|---|---|")
    for label, ms in wall:
        print(f"| {label} | {ms:,.0f} |")
