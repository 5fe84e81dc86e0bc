#!/usr/bin/env python3
"""Pyramid ECC (the plugin) against single-scale full-resolution ECC (the reference study's way).

A synthetic textured NIR pair of ``size`` x ``size`` px (a full Sentinel-2 tile at 20 m is 5490) with a
known shift; each method runs in its own subprocess so that its peak memory (ru_maxrss) is its own.
Reported per method: seconds for the estimate alone, peak resident memory, memory above what the two
input images already take, and the error against the known shift. The moving image is made with a
Lanczos-4 warp (OpenCV interpolates at 1/32 px steps: about 0.016 px of the error floor is the test
image itself). ``run(size=5490)`` takes about 1-2 minutes on 2 cores.

Usage: bench/bench_alignment.py [--size 5490] [--repeats 1]
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

SHIFT = (1.37, -2.21)
METHODS = ("pyramid", "single_scale")


def make_pair(size: int, shift=SHIFT, seed: int = 0):
    """Reference and moving NIR-like images; the moving content is displaced by ``shift`` (dx, dy)."""
    import cv2
    import numpy as np

    margin = 16
    rng = np.random.default_rng(seed)
    full = size + 2 * margin
    scene = np.zeros((full, full), np.float32)
    for sigma, amplitude in ((1.5, 0.3), (4.0, 1.0), (12.0, 2.0)):
        noise = rng.normal(size=(full, full)).astype(np.float32)
        scene += amplitude * cv2.GaussianBlur(noise, (0, 0), sigma)
        del noise
    scene = 0.3 + 0.05 * scene
    reference = scene[margin:margin + size, margin:margin + size].copy()
    # moving(x, y) = scene(x - dx, y - dy): content displaced by +shift
    matrix = np.array([[1, 0, margin - shift[0]], [0, 1, margin - shift[1]]], np.float64)
    moving = cv2.warpAffine(scene, matrix, (size, size), flags=cv2.INTER_LANCZOS4 | cv2.WARP_INVERSE_MAP)
    del scene
    return reference, 0.7 * moving + 0.05  # seasonal gain/offset as between two dates


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: kB


def measure(method: str, size: int) -> dict:
    """One method on one pair, in this process (called in a subprocess by run())."""
    import cv2
    import numpy as np

    from landslide_plugin.core import alignment

    reference, moving = make_pair(size)
    baseline = _rss_mb()
    start = time.perf_counter()
    if method == "pyramid":
        result = alignment.estimate_shift_ecc(reference, moving)
        dx, dy = result.shift_px
        correlation, levels = result.correlation, result.levels
    elif method == "single_scale":
        # What the reference study did: one findTransformECC on the full images, identity start.
        def standard(image):
            return ((image - image.mean()) / image.std()).astype(np.float32)

        criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 100, 1e-4)
        correlation, warp = cv2.findTransformECC(standard(reference), standard(moving), np.eye(2, 3, dtype=np.float32),
                                                 cv2.MOTION_TRANSLATION, criteria, None, 1)
        dx, dy = float(warp[0, 2]), float(warp[1, 2])
        levels = 1
    else:
        raise ValueError(method)
    seconds = time.perf_counter() - start
    return {"method": method, "size": size, "seconds": seconds, "peak_mb": _rss_mb(),
            "inputs_mb": baseline, "extra_mb": _rss_mb() - baseline,
            "error_px": max(abs(dx - SHIFT[0]), abs(dy - SHIFT[1])), "correlation": float(correlation),
            "levels": levels}


def run(size: int = 5490, repeats: int = 1) -> dict:
    rows = []
    for _ in range(repeats):
        for method in METHODS:
            done = subprocess.run([sys.executable, __file__, "--measure", method, "--size", str(size)],
                                  capture_output=True, text=True, timeout=1800)
            if done.returncode != 0:
                rows.append({"method": method, "size": size, "error": done.stderr.strip().splitlines()[-1:]})
                continue
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    by_method = {}
    for row in rows:
        if "seconds" in row:
            best = by_method.get(row["method"])
            if best is None or row["seconds"] < best["seconds"]:
                by_method[row["method"]] = row
    ratios = {}
    if len(by_method) == 2:
        pyramid, single = by_method["pyramid"], by_method["single_scale"]
        ratios = {"speedup": single["seconds"] / pyramid["seconds"],
                  "extra_memory_ratio": single["extra_mb"] / max(pyramid["extra_mb"], 1.0)}
    table = [{k: row.get(k) for k in ("method", "size", "levels", "seconds", "peak_mb", "extra_mb", "error_px",
                                      "correlation")} for row in by_method.values()]
    return {"shift": SHIFT, "runs": rows, "ratios": ratios, "table": table}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=5490)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--measure", choices=METHODS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.size)))
        return 0
    result = run(args.size, args.repeats)
    for row in result["table"]:
        print("  ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
    print("ratios:", {k: round(v, 2) for k, v in result["ratios"].items()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
