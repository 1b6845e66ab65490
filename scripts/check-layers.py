#!/usr/bin/env python3
"""Fails when a module of the extension imports from a domain above its own on the
`// layers:` line of src/lib.rs (bottom first), or when any crate's modules import each
other in a cycle. Reads `crate::`/`super::` paths as text: a short check, not a compiler.

Usage: scripts/check-layers.py   (from the repository root; `make lint` runs it)
"""
import os
import re
import sys

CRATES = {"pg_tenancy": "src", "tenancy-core": "crates/tenancy-core/src"}


def modules(root):
    found = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            if f.endswith(".rs"):
                parts = os.path.relpath(os.path.join(dirpath, f), root)[:-3].split(os.sep)
                if parts[-1] == "mod":
                    parts = parts[:-1]
                if parts == ["lib"]:
                    parts = []
                found["::".join(parts)] = os.path.join(dirpath, f)
    return found


def edges(found):
    names = set(found)

    def resolve(path):
        segs = path.split("::")
        for i in range(len(segs), 0, -1):
            if "::".join(segs[:i]) in names:
                return "::".join(segs[:i])
        return None

    out = {m: set() for m in found}
    for m, path in found.items():
        src = re.sub(r"//.*", "", open(path, encoding="utf-8").read())
        # `#[cfg(test)] mod unit` blocks may use what they test freely: cut them off.
        src = re.split(r"#\[cfg\(test\)\]\s*mod \w+", src)[0]
        targets = []
        for group in re.finditer(r"crate::\{([^}]*)\}", src):
            targets += [t.strip().split(" as ")[0] for t in group.group(1).split(",")]
        targets += re.findall(r"crate::([a-z_][a-z0-9_]*(?:::[a-z_][a-z0-9_]*)*)", src)
        base = m.split("::")[:-1] if m else []
        for rel in re.findall(r"super::([a-z_][a-z0-9_]*(?:::[a-z_][a-z0-9_]*)*)", src):
            targets.append("::".join(base + [rel]))
        for t in targets:
            r = resolve(t) if t else None
            if r not in (None, "", m):
                out[m].add(r)
    return out


def cycles(graph):
    index, low, stack, on, result, counter = {}, {}, [], set(), [], [0]
    sys.setrecursionlimit(10000)

    def visit(n):
        index[n] = low[n] = counter[0]
        counter[0] += 1
        stack.append(n)
        on.add(n)
        for w in graph.get(n, ()):
            if w not in index:
                visit(w)
                low[n] = min(low[n], low[w])
            elif w in on:
                low[n] = min(low[n], index[w])
        if low[n] == index[n]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == n:
                    break
            if len(comp) > 1:
                result.append(sorted(comp))

    for n in graph:
        if n not in index:
            visit(n)
    return result


def main():
    failures = []
    for crate, root in CRATES.items():
        found = modules(root)
        graph = edges(found)
        if crate == "pg_tenancy":
            graph = {m: {t for t in e if not t.startswith("tests")}
                     for m, e in graph.items() if not m.startswith("tests")}
        for comp in cycles(graph):
            failures.append(f"{crate}: modules import each other in a cycle: {', '.join(comp)}")
    lib = open("src/lib.rs", encoding="utf-8").read()
    line = re.search(r"^// layers: (.*)$", lib, re.M)
    order = line.group(1).split() if line else []
    declared = [m for m in re.findall(r"^mod (\w+);", lib, re.M) if m != "tests"]
    if sorted(order) != sorted(declared):
        failures.append(f"src/lib.rs: the `// layers:` line ({' '.join(order)}) must name every domain module ({' '.join(sorted(declared))})")
    rank = {name: i for i, name in enumerate(order)}
    graph = edges(modules("src"))
    for m, targets in sorted(graph.items()):
        top = m.split("::")[0]
        if not m or top not in rank:
            continue
        for t in sorted(targets):
            dep = t.split("::")[0]
            if dep in rank and dep != top and rank[dep] > rank[top]:
                failures.append(f"src/{m.replace('::', '/')}: imports {t}, but `{dep}` is above `{top}` on src/lib.rs's `// layers:` line (a lower layer may not use a higher one)")
    for f in failures:
        print(f"check-layers: {f}", file=sys.stderr)
    if failures:
        sys.exit(1)
    print(f"check-layers: no cycles; {len(order)} domains, each using only the layers below it")


if __name__ == "__main__":
    main()
