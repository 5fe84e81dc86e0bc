#!/usr/bin/env python3
"""Rewrite the README's algorithm list from the provider's algorithms (run after adding one).

`--check` exits 1 when the README is out of date (the test suite runs it).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
START, END = "<!-- algorithms:start -->", "<!-- algorithms:end -->"


def algorithm_table() -> str:
    sys.path.insert(0, str(ROOT))
    from landslide_plugin.processing.algorithms import algorithm_classes
    from landslide_plugin.processing.base import GROUPS

    rows = []
    for cls in algorithm_classes():  # the algorithm's shortDescription
        rows.append((GROUPS[cls.GROUP], cls.DISPLAY_NAME, f"`landslide:{cls.NAME}`", cls.summary()))
    rows.sort()
    lines = ["| group | algorithm | id | what it does |", "| --- | --- | --- | --- |"]
    lines += [f"| {g} | {n} | {i} | {s} |" for g, n, i, s in rows]
    return "\n".join(lines)


def updated_readme() -> str:
    text = (ROOT / "README.md").read_text()
    before, rest = text.split(START, 1)
    _, after = rest.split(END, 1)
    return f"{before}{START}\n{algorithm_table()}\n{END}{after}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    new = updated_readme()
    if args.check:
        if new != (ROOT / "README.md").read_text():
            print("README.md's algorithm list is out of date: run scripts/update_readme.py")
            return 1
        return 0
    (ROOT / "README.md").write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
