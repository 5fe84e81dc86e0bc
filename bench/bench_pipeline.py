#!/usr/bin/env python3
"""End-to-end landslide mapping of a full Sentinel-2 tile pair, stage by stage, against two baselines.

Input: the built-in example pair (``example_data.generate_example_pair``, cached in ``bench/cache/``),
two L2A product ZIPs of ``size`` x ``size`` px at 20 m (a full tile is 5490) with a known truth.

Measured, each in its own Python process so that its peak resident memory is its own:
  * ours, stage by stage: prepare pre, prepare post, co-register, threshold mask, kmeans2, kmeans3,
    gmm2, gmm3, polygons, evaluation + report; each stage reads the files the previous one wrote;
  * ours, end to end: one ``pipeline.map_landslides`` call (ZIPs in, every output written) - the
    number the targets apply to;
  * baseline (a), the reference study's way (``baseline_reference_study.py``: whole float64 arrays,
    full-resolution single-scale ECC, scikit-learn fitted on every valid pixel) - on the full tile
    when it is projected to finish in time, otherwise measured at a smaller size and extrapolated
    linearly in pixels (the output says which);
  * baseline (b), the floor: decoding every band of both products once, nothing else;
  * a size sweep (ours end to end, the baseline where affordable).

Wall seconds exclude interpreter start-up and imports (timed inside the child); CPU seconds are user +
system of every thread of the child during the timed part; peak MB is the child's ru_maxrss (it
includes ~150-250 MB of imported libraries). The machine load (os.getloadavg) is recorded before
and after: other processes on a 2-core machine slow every figure down.

Usage: bench/bench_pipeline.py [--size 5490] [--sweep 1000,2000] [--no-baseline]
       bench/run.py --only pipeline [--size 2000]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for _path in (str(ROOT), str(HERE)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

CACHE = HERE / "cache"
FULL_TILE = 5490
SEED = 0
METHODS = ("threshold", "kmeans2", "kmeans3", "gmm2", "gmm3")
STAGES = ("prepare_pre", "prepare_post", "align", *METHODS, "polygons", "evaluate")
#: Our stages grouped as the baseline's steps, for per-stage ratios.
STAGE_GROUPS = {"read": ("prepare_pre", "prepare_post"), "align": ("align",), "threshold": ("threshold",),
                **{m: (m,) for m in METHODS[1:]}}
TARGETS = {"seconds": 60.0, "peak_mb": 3 * 1024.0, "speedup_vs_reference": 10.0, "floor_ratio": 2.0}
#: The baseline runs for real only if projected to take less than this (and to fit in memory).
BASELINE_BUDGET_S = 12 * 60.0
RESULT_MARK = "BENCH_RESULT "


# -- child side ---------------------------------------------------------------------------------------------
def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _pair(size: int):
    from landslide_plugin.examples.example_data import generate_example_pair

    return generate_example_pair(CACHE / f"pair_{size}_seed{SEED}", size=size, seed=SEED, reuse=True)


def _mask_options(pair):
    from landslide_plugin.core import masks

    # As pipeline.map_landslides builds them with its defaults, a DEM and masks on.
    return masks.MaskOptions(use_scl=True, exclude_dark=False, exclude_water=True, dem_path=str(pair.dem),
                             min_slope_deg=15.0, exclusion_path=None, exclusion_classes=(), min_ndvi_pre=0.3)


def _run_stage(stage: str, pair, work: Path) -> dict:
    """One stage of map_landslides with its default parameters, on the files earlier stages wrote."""
    from landslide_plugin.core import alignment, detection, polygons, products

    pre_stack, pre_scl = work / "pre_stack.tif", work / "pre_scl.tif"
    post_stack, post_scl = work / "post_stack.tif", work / "post_scl.tif"
    aligned, aligned_scl = work / "post_aligned.tif", work / "post_aligned_scl.tif"
    common = {"scl_pre_path": str(pre_scl), "scl_post_path": str(aligned_scl)}
    if stage in ("prepare_pre", "prepare_post"):
        product, stack, scl = ((pair.pre, pre_stack, pre_scl) if stage == "prepare_pre"
                               else (pair.post, post_stack, post_scl))
        products.prepare_l2a([str(product)], str(stack), str(scl))
        return {}
    if stage == "align":
        result = alignment.coregister_stack(str(pre_stack), str(post_stack), str(aligned),
                                            moving_scl_path=str(post_scl), out_scl_path=str(aligned_scl),
                                            reference_scl_path=str(pre_scl), band="B11", use_gradient=True,
                                            motion="translation", max_shift_px=5.0)
        return {"shift_px": list(result.shift_px), "correlation": float(result.correlation)}
    if stage == "threshold":
        counts = detection.write_threshold_mask(str(pre_stack), str(aligned), str(work / "mask_threshold.tif"),
                                            threshold=-0.2, options=_mask_options(pair), **common)
        return {"counts": counts}
    if stage in METHODS:
        kind, k = stage[:-1], int(stage[-1])
        result = detection.cluster_change(
            str(pre_stack), str(aligned), cluster_path=str(work / f"clusters_{stage}.tif"),
            mask_path=str(work / f"mask_{stage}.tif"),
            probability_path=str(work / f"probability_{stage}.tif") if kind == "gmm" else None,
            method=kind, n_clusters=k, mask_options=_mask_options(pair), sample_size=200_000, seed=SEED, **common)
        return {"landslide_pixels": int(result.landslide_pixels)}
    if stage == "polygons":
        shapes = polygons.mask_to_polygons(str(work / "mask_gmm3.tif"), pre_stack_path=str(pre_stack),
                                           post_stack_path=str(aligned), dem_path=str(pair.dem),
                                           probability_path=str(work / "probability_gmm3.tif"),
                                           opening_px=1, min_area_m2=1600.0)
        polygons.write_polygons_geojson(shapes, str(work / "landslides_gmm3.geojson"), _crs(pre_stack))
        return {"polygons": len(shapes)}
    if stage == "evaluate":
        return _evaluate_and_report(pair, work, aligned)
    raise ValueError(f"unknown stage {stage!r}; stages are {', '.join(STAGES)}")


def _crs(path):
    import rasterio

    with rasterio.open(path) as src:
        return src.crs


def _evaluate_and_report(pair, work: Path, aligned: Path) -> dict:
    """What map_landslides does after the polygons: scores, CSV, JSON, two figures, the HTML report."""
    from landslide_plugin.core import evaluation, reports

    paths = [str(work / f"mask_{m}.tif") for m in METHODS]
    result = evaluation.evaluate(str(pair.truth), paths, names=list(METHODS))
    reports.write_metrics_csv(result, str(work / "metrics.csv"))
    reports.write_metrics_json(result, str(work / "metrics.json"))
    figures = {"confusion": reports.confusion_figure(result, str(work / "confusion.png")),
               "overlay": reports.overlay_figure(str(aligned), dict(zip(METHODS, paths)), str(work / "overlay.png"),
                                                 reference=str(pair.truth))}
    reports.write_html_report(result, str(work / "report.html"), figures=figures, title="Landslide mapping report")
    return {"f1": {m: item.scores.f1 for m, item in zip(METHODS, result.predictions)}}


def _uniform_scores(pair, masks: dict[str, str]) -> dict:
    """F1 of each mask file against the truth with the baseline's yardstick (every pixel, 1 = landslide)."""
    import rasterio
    from baseline_reference_study import f1_against

    with rasterio.open(pair.truth) as src:
        truth = src.read(1)
    out = {}
    for name, path in masks.items():
        with rasterio.open(path) as src:
            out[name] = f1_against(truth, src.read(1) == 1)
    return out


def _import_libraries() -> None:
    """Import what any task uses before the clock starts: a QGIS session pays for imports once."""
    import cv2  # noqa: F401
    import matplotlib.pyplot  # noqa: F401
    import rasterio  # noqa: F401
    import scipy.ndimage  # noqa: F401
    import sklearn.cluster  # noqa: F401
    import sklearn.mixture  # noqa: F401

    import landslide_plugin.core.pipeline  # noqa: F401
    from landslide_plugin.core import alignment, clustering, detection, evaluation, masks, polygons  # noqa: F401


def _child(task: dict) -> dict:
    """Runs in a fresh interpreter: one measured task; returns its figures."""
    kind, size = task["kind"], int(task["size"])
    _import_libraries()
    pair = _pair(size)
    if kind == "generate":
        return {"info": str(pair.info)}
    profile = None
    if task.get("profile"):
        import cProfile

        profile = cProfile.Profile()
    start, cpu = time.perf_counter(), _cpu_seconds()
    if profile:
        profile.enable()
    if kind == "stage":
        extra = _run_stage(task["stage"], pair, Path(task["work"]))
    elif kind == "pipeline":
        extra = _run_pipeline(pair, Path(task["work"]))
    elif kind == "baseline":
        from baseline_reference_study import run_reference_study

        extra = run_reference_study(pair.pre, pair.post, pair.truth)
    elif kind == "floor":
        from baseline_reference_study import decode_floor

        extra = decode_floor([pair.pre, pair.post], threads=task.get("threads", "ALL_CPUS"))
    else:
        raise ValueError(f"unknown task {kind!r}")
    seconds, cpu = time.perf_counter() - start, _cpu_seconds() - cpu
    if profile:
        import io
        import pstats

        profile.disable()
        text = io.StringIO()
        pstats.Stats(profile, stream=text).sort_stats("cumulative").print_stats(15)
        extra["profile_top15_cumulative"] = _trim_profile(text.getvalue())
    return {"seconds": seconds, "cpu_seconds": cpu, **extra}


def _trim_profile(text: str) -> list[str]:
    lines = [line.rstrip() for line in text.splitlines() if line.strip()]
    start = next((i for i, line in enumerate(lines) if line.lstrip().startswith("ncalls")), 0)
    return lines[start:start + 16]


def _run_pipeline(pair, folder: Path) -> dict:
    from landslide_plugin.core import pipeline

    result = pipeline.map_landslides([str(pair.pre)], [str(pair.post)], folder, dem=str(pair.dem),
                                     reference=str(pair.truth))
    outputs = sorted(p.name for p in folder.iterdir() if p.is_file())
    uniform = _uniform_scores(pair, {name: str(path) for name, path in result.masks.items()})
    return {"f1": {name: metrics["f1"] for name, metrics in result.metrics.items()},
            "f1_uniform": {name: s["f1"] for name, s in uniform.items()},
            "precision_uniform": {name: s["precision"] for name, s in uniform.items()},
            "recall_uniform": {name: s["recall"] for name, s in uniform.items()},
            "shift_px": list(result.shift_px or ()), "polygons": result.polygon_count, "outputs": outputs,
            "output_mb": sum(p.stat().st_size for p in folder.iterdir() if p.is_file()) / 2**20}


# -- parent side --------------------------------------------------------------------------------------------
def measure(task: dict, *, env: dict | None = None, timeout: float = 3600.0) -> dict:
    """Run ``task`` in a child interpreter; its figures plus its own rusage (os.wait4: this child only)."""
    with tempfile.TemporaryDirectory(prefix="bench-child-") as logs:
        out_path, err_path = Path(logs) / "out", Path(logs) / "err"
        with open(out_path, "w") as out, open(err_path, "w") as err:
            start = time.perf_counter()
            child = subprocess.Popen([sys.executable, __file__, "--child", json.dumps(task)], stdout=out, stderr=err,
                                     env={**os.environ, **(env or {})}, cwd=str(ROOT))
            timer = threading.Timer(timeout, child.kill)
            timer.start()
            try:
                _, status, usage = os.wait4(child.pid, 0)
            finally:
                timer.cancel()
            child.returncode = os.waitstatus_to_exitcode(status)
            process_seconds = time.perf_counter() - start
        stdout, stderr = out_path.read_text(), err_path.read_text()
    lines = [line for line in stdout.splitlines() if line.startswith(RESULT_MARK)]
    if child.returncode != 0 or not lines:
        tail = (stderr.strip().splitlines() or ["(no error output)"])[-3:]
        return {"error": f"exit {child.returncode}: " + " | ".join(tail)}
    result = json.loads(lines[-1][len(RESULT_MARK):])
    result.update(peak_mb=usage.ru_maxrss / 1024.0, process_seconds=process_seconds,
                  process_cpu_seconds=usage.ru_utime + usage.ru_stime)
    return result


def _load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def _ensure_pair(size: int) -> float:
    """Generate (or reuse) the cached pair of ``size``; seconds spent (0-ish when reused)."""
    start = time.perf_counter()
    result = measure({"kind": "generate", "size": size}, timeout=3600)
    if "error" in result:
        raise RuntimeError(f"could not generate the {size} px example pair: {result['error']}")
    return time.perf_counter() - start


def run_stages(size: int) -> dict:
    """Every stage in its own child, in order, in one scratch folder."""
    work = Path(tempfile.mkdtemp(prefix=f"stages-{size}-", dir=CACHE))
    try:
        stages = {}
        for stage in STAGES:
            stages[stage] = measure({"kind": "stage", "size": size, "stage": stage, "work": str(work)})
            if "error" in stages[stage]:
                break
        return stages
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run_pipeline(size: int, *, env: dict | None = None, profile: bool = False) -> dict:
    work = Path(tempfile.mkdtemp(prefix=f"pipeline-{size}-", dir=CACHE))
    try:
        return measure({"kind": "pipeline", "size": size, "work": str(work / "out"), "profile": profile}, env=env)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _available_mb() -> float:
    with open("/proc/meminfo") as handle:
        for line in handle:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024.0
    return float("inf")


def _scaled(row: dict, factor: float) -> dict:
    """A baseline result extrapolated linearly in pixels (times and memory above the import base)."""
    base_mb = 250.0  # interpreter + numpy/rasterio/sklearn/cv2, measured in children of this bench
    steps = {name: {"seconds": s["seconds"] * factor, "cpu_seconds": s["cpu_seconds"] * factor,
                    "peak_mb": base_mb + max(0.0, s["peak_mb"] - base_mb) * factor}
             for name, s in row["steps"].items()}
    return {**row, "steps": steps, "seconds": row["seconds"] * factor, "cpu_seconds": row["cpu_seconds"] * factor,
            "peak_mb": base_mb + max(0.0, row["peak_mb"] - base_mb) * factor}


def run_baseline(size: int, smaller: list[int]) -> dict:
    """Baseline (a) at ``size`` when affordable, else extrapolated from the largest affordable size."""
    measured = {}
    for small in sorted(s for s in smaller if s < size):
        _ensure_pair(small)
        measured[small] = measure({"kind": "baseline", "size": small})
        if "error" in measured[small]:
            return {"status": "failed", "measured": measured}
    if measured:
        largest = max(measured)
        factor = (size / largest) ** 2
        projected_s = measured[largest]["seconds"] * factor
        projected_mb = _scaled(measured[largest], factor)["peak_mb"]
    else:
        largest, factor, projected_s, projected_mb = None, 1.0, 0.0, 0.0
    if projected_s <= BASELINE_BUDGET_S and projected_mb <= 0.7 * _available_mb():
        full = measure({"kind": "baseline", "size": size}, timeout=3 * BASELINE_BUDGET_S)
        if "error" not in full:
            return {"status": "measured", "size": size, "result": full, "measured": measured,
                    "projected_seconds": projected_s}
    if largest is None:
        return {"status": "failed", "measured": measured}
    return {"status": f"extrapolated from {largest} px (x{factor:.2f} pixels)", "size": size,
            "result": _scaled(measured[largest], factor), "measured": measured, "projected_seconds": projected_s,
            "projected_peak_mb": projected_mb}


def _group_seconds(stages: dict, names) -> float:
    return sum(stages[n].get("seconds", float("nan")) for n in names)


def _targets(pipeline: dict, baseline: dict, floor: dict) -> list[dict]:
    rows = []
    total = pipeline.get("seconds", float("nan"))
    peak = pipeline.get("peak_mb", float("nan"))
    rows.append({"target": "end to end <= 60 s", "value": f"{total:.1f} s", "met": total <= TARGETS["seconds"]})
    rows.append({"target": "peak memory <= 3 GiB", "value": f"{peak:.0f} MB", "met": peak <= TARGETS["peak_mb"]})
    ref = baseline.get("result")
    if ref:
        speedup = ref["seconds"] / total
        ours_f1 = max(pipeline.get("f1_uniform", {}).values(), default=float("nan"))
        ref_f1 = max(s["f1"] for s in ref["scores"].values())
        rows.append({"target": ">= 10x faster than reference study, F1 >= its F1",
                     "value": f"{speedup:.1f}x ({baseline['status']}); best F1 ours {ours_f1:.3f} vs {ref_f1:.3f}",
                     "met": speedup >= TARGETS["speedup_vs_reference"] and ours_f1 >= ref_f1})
    ratio = total / floor["seconds"] if floor.get("seconds") else float("nan")
    rows.append({"target": "within 2x of the decode floor", "value": f"{ratio:.2f}x ({floor.get('seconds', 0):.1f} s)",
                 "met": ratio <= TARGETS["floor_ratio"]})
    return rows


def run(size: int = FULL_TILE, sweep=(1000, 2000), baseline: bool = True) -> dict:
    """Everything above for a ``size`` x ``size`` pair; returns the figures and a table."""
    CACHE.mkdir(exist_ok=True)
    sweep = sorted({int(s) for s in sweep if int(s) < size})
    load_start = _load()
    generation_s = _ensure_pair(size)

    floor = measure({"kind": "floor", "size": size})
    floor_one_thread = measure({"kind": "floor", "size": size, "threads": "1"})
    stages = run_stages(size)
    pipeline = run_pipeline(size)
    reference = run_baseline(size, sweep) if baseline else {"status": "skipped"}

    sweep_rows = []
    for small in sweep:
        _ensure_pair(small)
        ours = run_pipeline(small)
        ref = reference.get("measured", {}).get(small, {})
        sweep_rows.append({"size": small, "megapixels": small * small / 1e6, "ours_s": ours.get("seconds"),
                           "ours_peak_mb": ours.get("peak_mb"), "reference_s": ref.get("seconds"),
                           "reference_peak_mb": ref.get("peak_mb"), "note": "reference measured" if ref else ""})
    ref_full = reference.get("result", {})
    sweep_rows.append({"size": size, "megapixels": size * size / 1e6, "ours_s": pipeline.get("seconds"),
                       "ours_peak_mb": pipeline.get("peak_mb"), "reference_s": ref_full.get("seconds"),
                       "reference_peak_mb": ref_full.get("peak_mb"),
                       "note": "reference " + reference.get("status", "")})

    targets = _targets(pipeline, reference, floor) if "error" not in pipeline else []
    slowest = max((s for s in STAGES if "seconds" in stages.get(s, {})), key=lambda s: stages[s]["seconds"],
                  default=None)
    profile = {}
    if any(not t["met"] for t in targets) and slowest:
        work = Path(tempfile.mkdtemp(prefix="profile-", dir=CACHE))
        try:
            # The slowest stage needs the files of the ones before it: replay them unprofiled.
            for stage in STAGES[:STAGES.index(slowest)]:
                measure({"kind": "stage", "size": size, "stage": stage, "work": str(work)})
            profiled = measure({"kind": "stage", "size": size, "stage": slowest, "work": str(work), "profile": True})
            profile = {"stage": slowest, "top15_cumulative": profiled.get("profile_top15_cumulative", profiled)}
        finally:
            shutil.rmtree(work, ignore_errors=True)

    table = _stage_table(stages, pipeline, reference, floor)
    result = {"size": size, "load_before": load_start, "load_after": _load(), "generation_seconds": generation_s,
            "stages": stages, "pipeline": pipeline, "baseline_reference_study": reference,
            "floor": {"threads_all_cpus": floor, "threads_1": floor_one_thread}, "sweep": sweep_rows,
            "targets": targets, "profile_of_slowest_stage": profile, "table": table}
    _print_extras(result)  # run.py prints "table" only
    return result


def _stage_table(stages: dict, pipeline: dict, reference: dict, floor: dict) -> list[dict]:
    ref_steps = reference.get("result", {}).get("steps", {})
    ref_scores = reference.get("result", {}).get("scores", {})
    extrapolated = reference.get("status", "").startswith("extrapolated")
    mark = " (extrap.)" if extrapolated else ""
    rows = []
    grouped = {name: group for name, group in STAGE_GROUPS.items()}
    for stage in STAGES:
        row = stages.get(stage, {})
        out = {"stage": stage, "seconds": row.get("seconds"), "cpu_s": row.get("cpu_seconds"),
               "peak_mb": row.get("peak_mb")}
        group = next((g for g, members in grouped.items() if stage == members[-1]), None)
        if group and group in ref_steps and all("seconds" in stages.get(m, {}) for m in grouped[group]):
            ours = _group_seconds(stages, grouped[group])
            out["ref_s" + mark] = ref_steps[group]["seconds"]
            out["ref_peak_mb"] = ref_steps[group]["peak_mb"]
            out["ref/ours"] = ref_steps[group]["seconds"] / ours
            if group == "threshold":  # the study computes its indices once for every method
                out["ref_s" + mark] += ref_steps["indices"]["seconds"]
                out["ref/ours"] = out["ref_s" + mark] / ours
        if group == "read" and floor.get("seconds"):
            out["ours/floor"] = _group_seconds(stages, grouped["read"]) / floor["seconds"]
        if stage in METHODS:
            out["F1_ours"] = pipeline.get("f1_uniform", {}).get(stage)
            out["F1_ref"] = ref_scores.get(stage, {}).get("f1")
        rows.append(out)
    total = {"stage": "END TO END (map_landslides)", "seconds": pipeline.get("seconds"),
             "cpu_s": pipeline.get("cpu_seconds"), "peak_mb": pipeline.get("peak_mb")}
    if reference.get("result"):
        total["ref_s" + mark] = reference["result"]["seconds"]
        total["ref_peak_mb"] = reference["result"]["peak_mb"]
        total["ref/ours"] = reference["result"]["seconds"] / pipeline["seconds"] if pipeline.get("seconds") else None
    if floor.get("seconds") and pipeline.get("seconds"):
        total["ours/floor"] = pipeline["seconds"] / floor["seconds"]
    rows.append(total)
    rows.append({"stage": "decode floor (both products)", "seconds": floor.get("seconds"),
                 "cpu_s": floor.get("cpu_seconds"), "peak_mb": floor.get("peak_mb")})
    keys = ["stage", "seconds", "cpu_s", "peak_mb", "ref_s" + mark, "ref_peak_mb", "ref/ours", "ours/floor",
            "F1_ours", "F1_ref"]
    return [{key: row.get(key) for key in keys} for row in rows]  # run.py takes the columns from the first row


def _print_extras(result: dict) -> None:
    from run import print_table

    print(f"\nsize {result['size']}; load average before {result['load_before']}, after {result['load_after']}; "
          f"baseline: {result['baseline_reference_study'].get('status')}")
    print_table("size sweep", result["sweep"])
    print_table("targets", result["targets"])
    if result["profile_of_slowest_stage"]:
        print(f"\nprofile of the slowest stage ({result['profile_of_slowest_stage']['stage']}):")
        print("\n".join(result["profile_of_slowest_stage"]["top15_cumulative"]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=FULL_TILE, help="tile size in pixels (default 5490)")
    parser.add_argument("--sweep", default="1000,2000", help="smaller sizes for the sweep (comma-separated)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the reference-study baseline")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = _child(json.loads(args.child))
        print(RESULT_MARK + json.dumps(result, default=str), flush=True)
        return 0
    sweep = tuple(int(s) for s in args.sweep.split(",") if s.strip())
    result = run(args.size, sweep, not args.no_baseline)
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "pipeline.json").write_text(json.dumps(result, indent=2, default=str))
    from run import print_table

    print_table("pipeline", result["table"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
