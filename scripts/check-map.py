#!/usr/bin/env python3
"""Fails when docs/development.md's map of the house misses a file, or names one that is gone.

The map is the Layout table: each row starts with a folder in backticks (`src/infra/`) and
names that folder's files in backticks (`errors.rs`; a path below the folder, such as
`guard/state.rs`, for files in subfolders the table has no row for; a path from the top,
such as `src/install.rs`, is a cross-reference that must exist). Every tracked file under
the checked folders must be named in the row of the deepest folder that has one; `mod.rs` is
exempt (its folder's row describes it). A name in a row that matches no file fails too.

Usage: scripts/check-map.py   (from the repository root; `make lint` runs it)
"""
import re
import subprocess
import sys

CHECKED = ("src/", "sql/", "scripts/", "tests/", "crates/tenancy-core/src/", "pgrx-config/", "demo/", "bench/")
SKIP = re.compile(r"(^|/)mod\.rs$|^tests/pg_regress/(expected|results)/|\.gitignore$")
FILE_NAME = re.compile(r"`([^`\s]+\.(?:rs|sql|sh|py|conf|env|out))`")

doc = open("docs/development.md", encoding="utf-8").read()
layout = doc.split("## Layout", 1)[1].split("\n## ", 1)[0]
rows = {}
for line in layout.splitlines():
    m = re.match(r"\|\s*`([^`]+/)`\s*\|(.*)\|\s*$", line)
    if m:
        rows[m.group(1)] = set(FILE_NAME.findall(m.group(2)))

tracked = subprocess.run(["git", "ls-files"], capture_output=True, text=True, check=True).stdout.split()
files = [f for f in tracked if f.startswith(CHECKED) and not SKIP.search(f)]
missing, named = [], set()
for f in files:
    folders = [d for d in rows if f.startswith(d)]
    if not folders:
        missing.append(f"{f}: no row of the Layout table covers its folder")
        continue
    folder = max(folders, key=len)
    rel = f[len(folder):]
    if rel in rows[folder]:
        named.add((folder, rel))
    else:
        missing.append(f"{f}: not named in the `{folder}` row")
# A name that starts with a top folder (`src/install.rs`) is a cross-reference: it must exist.
stale = [f"{name if name.startswith(CHECKED) else folder + name}: named in the map, but no such file"
         for folder, names in rows.items() for name in names
         if (folder, name) not in named
         and (name if name.startswith(CHECKED) else folder + name) not in tracked]
for problem in missing + stale:
    print(f"check-map: {problem}", file=sys.stderr)
if missing or stale:
    print("check-map: docs/development.md's Layout table is the map of the house: say in a few words what each file holds", file=sys.stderr)
    sys.exit(1)
print(f"check-map: all {len(files)} files named in docs/development.md")
