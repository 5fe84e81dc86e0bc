#!/usr/bin/env python3
"""`make bench`: every bench/bench_*.py module's run(), results in bench/results/<name>.json and a table.

Not part of `make test`: these measure full Sentinel-2 tiles (5490 x 5490 px at 20 m) and take minutes.
Each module's run(**kwargs) returns a dict; a "table" key (list of rows) is printed.
Usage: bench/run.py [--only alignment,clustering] [--size 5490]
"""
from __future__ import annotations

import argparse
import importlib
import inspect
import json
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))


def machine() -> dict:
    import os

    return {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count(),
            "system": platform.platform()}


def print_table(name: str, rows: list[dict]) -> None:
    if not rows:
        return
    keys = list(rows[0])
    widths = {k: max(len(k), *(len(_fmt(r.get(k))) for r in rows)) for k in keys}
    print(f"\n== {name} ==")
    print("  ".join(k.ljust(widths[k]) for k in keys))
    for row in rows:
        print("  ".join(_fmt(row.get(k)).ljust(widths[k]) for k in keys))


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    return "" if value is None else str(value)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="", help="comma-separated benchmark names (default: all)")
    parser.add_argument("--size", type=int, default=None, help="tile size in pixels (default: each benchmark's)")
    args = parser.parse_args()
    wanted = {n.strip() for n in args.only.split(",") if n.strip()}
    results_dir = HERE / "results"
    results_dir.mkdir(exist_ok=True)
    failures = 0
    for path in sorted(HERE.glob("bench_*.py")):
        name = path.stem[len("bench_"):]
        if wanted and name not in wanted:
            continue
        module = importlib.import_module(path.stem)
        kwargs = {}
        if args.size and "size" in inspect.signature(module.run).parameters:
            kwargs["size"] = args.size
        print(f"running {name} {kwargs} ...", flush=True)
        start = time.perf_counter()
        try:
            result = module.run(**kwargs)
        except Exception as exc:  # one broken benchmark should not hide the others' figures
            failures += 1
            print(f"{name} FAILED: {exc!r}")
            continue
        result = {"benchmark": name, "machine": machine(), "seconds_total": time.perf_counter() - start, **result}
        (results_dir / f"{name}.json").write_text(json.dumps(result, indent=2, default=str))
        print_table(name, result.get("table", []))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
