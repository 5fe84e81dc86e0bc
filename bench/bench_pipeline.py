#!/usr/bin/env python3
"""End-to-end landslide mapping of a Sentinel-2 tile pair, stage by stage, against the decode floor.

Input: the built-in example pair (``example_data.generate_example_pair``, cached in ``bench/cache/``),
two L2A product ZIPs of ``size`` x ``size`` px at 20 m (a full tile is 5490) with a DEM and a known truth.

Measured, each in its own Python process so that its peak resident memory is its own:
  * ours, stage by stage, as ``pipeline.map_landslides`` runs them with its default options:
    prepare pre, prepare post (``products.prepare_l2a``), align (``alignment.coregister_stack``),
    detect (``masks.write_slope`` + ONE ``detection.detect`` call for the five default methods),
    polygons, evaluate (scores, CSV, JSON, figures, HTML report); each stage reads the files the
    previous one wrote;
  * one more method: the detect stage again with a sixth method (``--sixth``, default kmeans4), right
    after the five-method one; its extra time against the five-method detect and the end-to-end time;
  * ours, end to end: one ``pipeline.map_landslides`` call with default options (ZIPs in, every output,
    polygons and report) - the number the targets apply to - measured right after the decode floor so
    that their ratio sees the same machine load;
  * the decode floor: every band of both products decoded once, nothing else;
  * optionally the reference study's way (``baseline_reference_study.py``: whole float64 arrays,
    full-resolution single-scale ECC, scikit-learn fitted on every valid pixel) - on the tile when it
    is projected to finish in time, otherwise measured at a smaller size and extrapolated linearly in
    pixels (the output says which); ``--no-baseline`` skips it;
  * a size sweep (ours end to end, the baseline where affordable).

Wall seconds exclude interpreter start-up and imports (timed inside the child); CPU seconds are user +
system of every thread of the child during the timed part; peak MB is the child's ru_maxrss (it
includes ~250-300 MB of imported libraries). Every child also samples its resident memory and GDAL's
block-cache use 10 times a second (``rss_samples`` / ``gdal_cache_peak_mb``); the end-to-end child
splits them by the run's log messages (``phases``). GDAL's block cache is left at its default (no
GDAL_CACHEMAX), as QGIS leaves it. The machine load (os.getloadavg) is recorded before every
measurement: other processes on a 2-core machine slow every figure down.

When a target is missed, the detect stage (``--profile``) is re-run under cProfile in every thread
(the fits and predictions run in a thread pool) and its top functions are saved.

Usage: bench/bench_pipeline.py [--size 5490] [--sweep 1000,2000] [--no-baseline] [--repeat 1]
                               [--detect-repeat 3] [--methods threshold,kmeans2,...|default]
                               [--sixth kmeans4] [--profile detect] [--try-cache-mb 256,512] [--snapshot]
       bench/run.py --only pipeline [--size 2048]
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
#: The one-step run's default methods (``pipeline.MappingOptions().methods``; checked in the child).
METHODS = ("threshold", "kmeans2", "kmeans3", "gmm2", "gmm3")
SIXTH = "kmeans4"
STAGES = ("prepare_pre", "prepare_post", "align", "detect", "polygons", "evaluate")
#: Our stages grouped as the baseline's steps, for per-stage ratios (the baseline's "detect" is its
#: indices, threshold and four clusterings).
STAGE_GROUPS = {"read": ("prepare_pre", "prepare_post"), "align": ("align",), "detect": ("detect",)}
REFERENCE_DETECT_STEPS = ("indices", "threshold", "kmeans2", "kmeans3", "gmm2", "gmm3")
#: Issue 14's targets by pair size (a size uses the first entry at least as large): end to end within
#: ``floor_ratio`` x the decode floor, peak resident memory within ``peak_mb``.
SIZE_TARGETS = {2048: {"floor_ratio": 3.0, "peak_mb": 1024.0},
                4096: {"peak_mb": 1536.0},
                FULL_TILE: {"floor_ratio": 2.0, "peak_mb": 2048.0}}
#: A sixth method may add at most this share to the end-to-end time.
SIXTH_METHOD_SHARE = 0.10
#: With the reference-study baseline: at least this many times faster, at equal or better F1.
SPEEDUP_VS_REFERENCE = 10.0
#: The baseline runs for real only if projected to take less than this (and to fit in memory).
BASELINE_BUDGET_S = 12 * 60.0
RESULT_MARK = "BENCH_RESULT "


def targets_for(size: int) -> tuple[int, dict]:
    """The target set that applies to a ``size`` px pair: (the size it is stated for, its targets)."""
    for limit in sorted(SIZE_TARGETS):
        if size <= limit:
            return limit, SIZE_TARGETS[limit]
    return FULL_TILE, SIZE_TARGETS[FULL_TILE]


# -- child side ---------------------------------------------------------------------------------------------
def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _pair(size: int):
    from landslide_plugin.examples.example_data import generate_example_pair

    return generate_example_pair(CACHE / f"pair_{size}_seed{SEED}", size=size, seed=SEED, reuse=True)


class _Monitor:
    """Samples this process's resident memory and GDAL's block-cache use every ``interval`` seconds."""

    def __init__(self, interval: float = 0.1):
        self.interval, self.samples, self.events = interval, [], []
        self._stop = threading.Event()
        self._gdal = _gdal_cache_used()
        self._thread = threading.Thread(target=self._run, daemon=True, name="bench-monitor")
        self.start = time.perf_counter()

    def __enter__(self):
        self.start, self.cpu_start = time.perf_counter(), _cpu_seconds()
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self._sample()
        self.end = (time.perf_counter() - self.start, _cpu_seconds())

    def _sample(self):
        rss = _rss_mb()
        cache = self._gdal() / 2**20 if self._gdal else float("nan")
        self.samples.append((time.perf_counter() - self.start, rss, cache))

    def _run(self):
        while not self._stop.wait(self.interval):
            self._sample()

    def mark(self, text: str) -> None:
        self.events.append((time.perf_counter() - self.start, text, _cpu_seconds()))

    def summary(self) -> dict:
        cache = [c for _, _, c in self.samples if c == c]
        return {"rss_sampled_peak_mb": max((r for _, r, _ in self.samples), default=None),
                "gdal_cache_peak_mb": max(cache, default=None), "gdal_cache_max_mb": _gdal_cache_max_mb()}

    def phases(self) -> list[dict]:
        """Seconds, CPU seconds (every thread), peak RSS and peak GDAL cache of each phase (a mark starts a
        phase; see _instrument); a phase met several times is one row (its seconds summed)."""
        if not self.samples:
            return []
        out = []
        marks = [(0.0, "(start)", self.cpu_start), *self.events, (*self.end[:1], "(end)", self.end[1])]
        for (begin, phase, cpu_begin), (end, _, cpu_end) in zip(marks, marks[1:]):
            if end <= begin:
                continue
            inside = [(r, c) for t, r, c in self.samples if begin <= t <= end]
            if not inside:  # shorter than the sampling interval: the nearest sample
                inside = [min(self.samples, key=lambda s: abs(s[0] - end))[1:]]
            row = {"phase": phase, "start_s": round(begin, 1), "seconds": round(end - begin, 2),
                   "cpu_s": round(cpu_end - cpu_begin, 2), "peak_rss_mb": round(max(r for r, _ in inside)),
                   "peak_gdal_cache_mb": round(max(c for _, c in inside))}
            same = next((r for r in out if r["phase"] == phase), None)
            if same:  # one row per phase, in the order of first appearance
                same.update(seconds=round(same["seconds"] + row["seconds"], 2),
                            cpu_s=round(same["cpu_s"] + row["cpu_s"], 2),
                            peak_rss_mb=max(same["peak_rss_mb"], row["peak_rss_mb"]),
                            peak_gdal_cache_mb=max(same["peak_gdal_cache_mb"], row["peak_gdal_cache_mb"]))
            else:
                out.append(row)
        for row in out:
            row["cores"] = round(row["cpu_s"] / row["seconds"], 2) if row["seconds"] > 0 else None
        return [r for r in out if r["phase"] != "(start)"]


def _instrument(monitor: _Monitor) -> None:
    """Mark the phases of map_landslides by wrapping the stage functions it calls (module attributes it
    looks up at call time), so the phases do not depend on its log messages. Time outside every wrapped
    call (preflight, the pair correlation, the output folder's commit) is "(other)"."""
    from landslide_plugin.core import alignment, detection, evaluation, masks, polygons, products, reports

    depth, prepared = [0], [0]

    def wrap(module, name, label):
        original = getattr(module, name)

        def wrapper(*args, **kwargs):
            if threading.current_thread() is not threading.main_thread():
                # a stage run beside others (the slope beside align, the scores beside the overlay's image):
                # its time belongs to the phase of the calling thread
                return original(*args, **kwargs)
            depth[0] += 1
            if depth[0] == 1:
                monitor.mark(label() if callable(label) else label)
            try:
                if name == "detect":  # its fits end when the first method is ready
                    ready, done = kwargs.get("on_method_ready"), []

                    def on_ready(found):
                        if not done:
                            done.append(True)
                            monitor.mark("detect: pass 2 + writing")
                        if ready:
                            ready(found)

                    kwargs["on_method_ready"] = on_ready
                return original(*args, **kwargs)
            finally:
                depth[0] -= 1
                if depth[0] == 0:
                    monitor.mark("(other)")

        setattr(module, name, wrapper)

    def prepare_label():
        prepared[0] += 1
        return "prepare_pre" if prepared[0] == 1 else "prepare_post"

    wrap(products, "prepare_l2a", prepare_label)
    wrap(alignment, "coregister_stack", "align")
    wrap(masks, "write_slope", "detect: slope")
    wrap(detection, "detect", "detect: pass 1 + fits")
    wrap(polygons, "mask_to_polygons", "polygons")
    wrap(polygons, "write_polygons_geojson", "polygons")
    wrap(evaluation, "evaluate", "evaluate: scores")
    if hasattr(reports, "read_true_colour"):  # read by the calling thread while a helper computes the scores
        wrap(reports, "read_true_colour", "evaluate: scores")
    for name in ("write_metrics_csv", "write_metrics_json", "confusion_figure", "overlay_figure", "write_html_report"):
        if hasattr(reports, name):
            wrap(reports, name, "evaluate: figures and report")


def _rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _gdal_library():
    import ctypes
    import ctypes.util
    import glob

    import rasterio

    folder = Path(rasterio.__file__).resolve().parent.parent / "rasterio.libs"
    for name in [*sorted(glob.glob(str(folder / "libgdal*"))), ctypes.util.find_library("gdal")]:
        if name:
            try:
                return ctypes.CDLL(name)
            except OSError:
                continue
    return None


def _gdal_cache_used():
    """A function giving GDAL's block-cache use in bytes (the libgdal rasterio loaded), or None."""
    import ctypes

    lib = _gdal_library()
    if lib is None:
        return None
    lib.GDALGetCacheUsed64.restype = ctypes.c_int64
    return lib.GDALGetCacheUsed64


def _gdal_cache_max_mb() -> float | None:
    import ctypes

    lib = _gdal_library()
    if lib is None:
        return None
    lib.GDALGetCacheMax64.restype = ctypes.c_int64
    return lib.GDALGetCacheMax64() / 2**20


def _paths(work: Path) -> dict[str, Path]:
    return {"pre_stack": work / "pre_stack.tif", "pre_scl": work / "pre_scl.tif",
            "post_stack": work / "post_stack.tif", "post_scl": work / "post_scl.tif",
            "aligned": work / "post_aligned.tif", "aligned_scl": work / "post_aligned_scl.tif",
            "slope": work / "slope.tif"}


def _options(names: list[str] | None):
    """``pipeline.MappingOptions`` at its defaults, with these methods (None: its default methods)."""
    from landslide_plugin.core import detection, pipeline

    if not names:
        return pipeline.MappingOptions()
    return pipeline.MappingOptions(methods=tuple(detection.MethodSpec.from_name(n) for n in names))


def _primary(options) -> str:
    """The method map_landslides turns into polygons (its own rule)."""
    from landslide_plugin.core import pipeline

    names = [m.name for m in options.methods]
    return options.primary or next((n for n in (getattr(pipeline, "DEFAULT_PRIMARY", None), "gmm3", "kmeans3")
                                    if n in names), names[-1])


def _run_stage(stage: str, pair, work: Path, names: list[str] | None, sixth: str = SIXTH) -> dict:
    """One stage of map_landslides with its default options (and ``names`` methods), on the files earlier
    stages wrote."""
    from landslide_plugin.core import alignment, polygons, products

    p = _paths(work)
    options = _options(names)
    if stage in ("prepare_pre", "prepare_post"):
        product, stack, scl = ((pair.pre, p["pre_stack"], p["pre_scl"]) if stage == "prepare_pre"
                               else (pair.post, p["post_stack"], p["post_scl"]))
        products.prepare_l2a([str(product)], str(stack), str(scl))
        return {}
    if stage == "align":
        align = options.align
        result = alignment.coregister_stack(str(p["pre_stack"]), str(p["post_stack"]), str(p["aligned"]),
                                            moving_scl_path=str(p["post_scl"]), out_scl_path=str(p["aligned_scl"]),
                                            reference_scl_path=str(p["pre_scl"]), band=align.band,
                                            use_gradient=align.gradient, motion=align.motion,
                                            max_shift_px=align.max_shift_px)
        return {"shift_px": list(result.shift_px), "correlation": float(result.correlation)}
    if stage == "detect":
        return _detect(pair, work, options, work)
    if stage == "detect_plus_one":
        import dataclasses

        from landslide_plugin.core import detection

        out = work / "plus_one"
        out.mkdir(exist_ok=True)
        more = dataclasses.replace(options, methods=(*options.methods, detection.MethodSpec.from_name(sixth)),
                                   primary=_primary(options))
        return _detect(pair, work, more, out)
    if stage == "polygons":
        primary, shapes_options = _primary(options), options.polygons
        probability = work / f"probability_{primary}.tif"
        shapes = polygons.mask_to_polygons(str(work / f"mask_{primary}.tif"), pre_stack_path=str(p["pre_stack"]),
                                           post_stack_path=str(p["aligned"]), slope_path=str(p["slope"]),
                                           probability_path=str(probability) if probability.exists() else None,
                                           opening_px=shapes_options.opening_px,
                                           min_area_m2=shapes_options.min_area_m2)
        polygons.write_polygons_geojson(shapes, str(work / f"landslides_{primary}.geojson"), _crs(p["pre_stack"]))
        return {"polygons": len(shapes), "primary": primary}
    if stage == "evaluate":
        return _evaluate_and_report(pair, work, p["aligned"], options)
    raise ValueError(f"unknown stage {stage!r}; stages are {', '.join(STAGES)}, detect_plus_one")


def _detect(pair, work: Path, options, out: Path) -> dict:
    """What map_landslides does from the slope to the last method's maps: write_slope + one detect call
    with the specs and inputs it builds from ``options`` (pipeline.map_landslides, steps 3 and 4)."""
    import dataclasses

    from landslide_plugin.core import detection, masks

    p = _paths(work)
    start = time.perf_counter()
    slope = out / "slope.tif"
    masks.write_slope(str(pair.dem), str(p["pre_stack"]), str(slope))
    slope_s = time.perf_counter() - start
    mask_options = dataclasses.replace(options.masks, dem_path=str(pair.dem), slope_path=str(slope))
    clustering = getattr(options, "clustering", None)
    specs = []
    for m in options.methods:
        if not m.entry.takes_clusters:
            specs.append(dataclasses.replace(m, threshold=options.threshold, seed=options.seed))
        elif clustering is not None:
            specs.append(dataclasses.replace(m, seed=options.seed, candidates_below=clustering.candidates_below,
                                             rule=clustering.rule))
        else:
            specs.append(dataclasses.replace(m, seed=options.seed))
    outputs = {}
    for spec in specs:
        entry = spec.entry
        outputs[spec.name] = detection.MethodOutputs(
            out / f"mask_{spec.name}.tif", out / f"clusters_{spec.name}.tif" if entry.takes_clusters else None,
            out / f"probability_{spec.name}.tif" if entry.gives_probability else None)
    features = {"features": tuple(clustering.features)} if clustering is not None else {}
    fitted_at = []
    result = detection.detect(
        detection.DetectionInputs(p["pre_stack"], p["aligned"], p["pre_scl"], p["aligned_scl"], options.band_numbers,
                                  mask_options, sample_size=options.sample_size, seed=options.seed, **features),
        specs, outputs, on_method_ready=lambda found: fitted_at.append(time.perf_counter() - start))
    return {"methods": [s.name for s in specs], "slope_seconds": slope_s,
            "fits_done_at_s": max(fitted_at, default=None),  # slope + pass 1 + fits; the rest is pass 2
            "reads": result.reads, "analysed_pixels": result.analysed_pixels, "sample_size": result.sample_size,
            "landslide_pixels": {n: r.landslide for n, r in result.methods.items()},
            "output_mb": sum(f.stat().st_size for f in out.glob("*.tif")) / 2**20}


def _crs(path):
    import rasterio

    with rasterio.open(path) as src:
        return src.crs


def _evaluate_and_report(pair, work: Path, aligned: Path, options) -> dict:
    """What map_landslides does after the polygons: scores, CSV, JSON, two figures, the HTML report."""
    from landslide_plugin.core import evaluation, reports

    specs = list(options.methods)
    paths = [str(work / f"mask_{s.name}.tif") for s in specs]
    labels = [s.label for s in specs]
    result = evaluation.evaluate(str(pair.truth), paths, names=labels)
    reports.write_metrics_csv(result, str(work / "metrics.csv"))
    reports.write_metrics_json(result, str(work / "metrics.json"))
    figures = {"confusion": reports.confusion_figure(result, str(work / "confusion.png")),
               "overlay": reports.overlay_figure(str(aligned), dict(zip(labels, paths)), str(work / "overlay.png"),
                                                 reference=str(pair.truth))}
    reports.write_html_report(result, str(work / "report.html"), figures=figures, title="Landslide mapping report")
    return {"f1": {s.name: item.scores.f1 for s, item in zip(specs, result.predictions)}}


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
    from landslide_plugin.core import alignment, clustering, detection, evaluation, masks, polygons, products, reports  # noqa: F401


class _ThreadedProfile:
    """cProfile in the calling thread and in every thread started while it runs (the detection's pool)."""

    def __init__(self):
        import cProfile

        self._new = cProfile.Profile
        self.profiles = [cProfile.Profile()]

    def _hook(self, frame, event, arg):  # first event of a new thread: give it its own profiler
        profile = self._new()
        self.profiles.append(profile)
        profile.enable()

    def start(self):
        threading.setprofile(self._hook)
        self.profiles[0].enable()

    def stop(self):
        self.profiles[0].disable()
        threading.setprofile(None)

    def top(self, n: int = 20) -> dict:
        import io
        import pstats

        stats = None
        for profile in self.profiles:
            profile.create_stats()
            if profile.stats:
                if stats is None:
                    stats = pstats.Stats(profile, stream=io.StringIO())
                else:
                    stats.add(profile)
        out = {"threads_profiled": len(self.profiles)}
        for key in ("cumulative", "tottime"):
            text = io.StringIO()
            stats.stream = text
            stats.sort_stats(key).print_stats(n)
            out[key] = _trim_profile(text.getvalue(), n)
        return out


def _child(task: dict) -> dict:
    """Runs in a fresh interpreter: one measured task; returns its figures."""
    kind, size = task["kind"], int(task["size"])
    _import_libraries()
    pair = _pair(size)
    if kind == "generate":
        return {"info": str(pair.info)}
    profile = _ThreadedProfile() if task.get("profile") else None
    monitor = _Monitor()
    with monitor:
        start, cpu = time.perf_counter(), _cpu_seconds()
        if profile:
            profile.start()
        if kind == "stage":
            extra = _run_stage(task["stage"], pair, Path(task["work"]), task.get("methods"),
                               task.get("sixth", SIXTH))
        elif kind == "pipeline":
            if task.get("cache_mb"):  # what the plugin could do itself: bound GDAL's cache for the run
                _set_gdal_cache_mb(float(task["cache_mb"]))
            extra = _run_pipeline(pair, Path(task["work"]), monitor, task.get("methods"))
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
            profile.stop()
    if "timed" in extra:  # map_landslides alone, not the bench's own scoring after it
        seconds, cpu = extra.pop("timed").values()
    extra.update(monitor.summary())
    if kind == "pipeline":
        extra["phases"] = monitor.phases()
    if profile:
        extra["profile"] = profile.top()
    return {"seconds": seconds, "cpu_seconds": cpu, **extra}


def _trim_profile(text: str, n: int) -> list[str]:
    lines = [line.rstrip() for line in text.splitlines() if line.strip()]
    start = next((i for i, line in enumerate(lines) if line.lstrip().startswith("ncalls")), 0)
    return [line.replace(str(ROOT) + "/", "") for line in lines[start:start + n + 1]]


def _set_gdal_cache_mb(megabytes: float) -> None:
    import ctypes

    lib = _gdal_library()
    lib.GDALSetCacheMax64.argtypes = [ctypes.c_int64]
    lib.GDALSetCacheMax64(int(megabytes * 2**20))


def _run_pipeline(pair, folder: Path, monitor: _Monitor, names: list[str] | None) -> dict:
    from landslide_plugin.core import pipeline

    _instrument(monitor)
    start, cpu = time.perf_counter(), _cpu_seconds()
    monitor.mark("(other)")
    result = pipeline.map_landslides([str(pair.pre)], [str(pair.post)], folder, options=_options(names),
                                     dem=str(pair.dem), reference=str(pair.truth))
    timed = {"seconds": time.perf_counter() - start, "cpu_seconds": _cpu_seconds() - cpu}
    monitor.mark("(bench: scores against the truth)")
    outputs = sorted(p.name for p in folder.iterdir() if p.is_file())
    uniform = _uniform_scores(pair, {name: str(path) for name, path in result.masks.items()})
    return {"methods": list(result.masks), "f1": {name: metrics["f1"] for name, metrics in result.metrics.items()},
            "f1_uniform": {name: s["f1"] for name, s in uniform.items()},
            "precision_uniform": {name: s["precision"] for name, s in uniform.items()},
            "recall_uniform": {name: s["recall"] for name, s in uniform.items()},
            "shift_px": list(result.shift_px or ()), "polygons": result.polygon_count, "outputs": outputs,
            "output_mb": sum(p.stat().st_size for p in folder.iterdir() if p.is_file()) / 2**20,
            "timed": timed}


# -- parent side --------------------------------------------------------------------------------------------
def measure(task: dict, *, env: dict | None = None, timeout: float = 3600.0) -> dict:
    """Run ``task`` in a child interpreter; its figures plus its own rusage (os.wait4: this child only)."""
    load = _load()
    child_env = {**os.environ, **(env or {})}
    child_env.pop("GDAL_CACHEMAX", None)  # GDAL's default block cache, as QGIS leaves it
    with tempfile.TemporaryDirectory(prefix="bench-child-") as logs:
        out_path, err_path = Path(logs) / "out", Path(logs) / "err"
        with open(out_path, "w") as out, open(err_path, "w") as err:
            start = time.perf_counter()
            child = subprocess.Popen([sys.executable, __file__, "--child", json.dumps(task)], stdout=out, stderr=err,
                                     env=child_env, cwd=str(ROOT))
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
        return {"error": f"exit {child.returncode}: " + " | ".join(tail), "load_before": load}
    result = json.loads(lines[-1][len(RESULT_MARK):])
    result.update(peak_mb=usage.ru_maxrss / 1024.0, process_seconds=process_seconds,
                  process_cpu_seconds=usage.ru_utime + usage.ru_stime, load_before=load)
    return result


def _code_state() -> dict:
    """The commit measured and the files that differ from it (other work in the tree is measured too)."""
    marker = ROOT / ".bench_commit"
    if marker.exists():  # a --snapshot copy: exactly that commit's code
        return {"commit": marker.read_text().strip(), "snapshot": str(ROOT), "changed_core_files": []}

    def git(*args):
        done = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else ""

    changed = [line[3:] for line in git("status", "--porcelain").splitlines()
               if line[3:].startswith("landslide_plugin/")]
    return {"commit": git("rev-parse", "--short", "HEAD"), "changed_core_files": changed}


def _load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def _ensure_pair(size: int) -> float:
    """Generate (or reuse) the cached pair of ``size``; seconds spent (0-ish when reused)."""
    start = time.perf_counter()
    result = measure({"kind": "generate", "size": size}, timeout=3600)
    if "error" in result:
        raise RuntimeError(f"could not generate the {size} px example pair: {result['error']}")
    return time.perf_counter() - start


def _best(runs: list[dict]) -> dict:
    ok = [r for r in runs if "seconds" in r]
    return min(ok, key=lambda r: r["seconds"]) if ok else (runs[-1] if runs else {})


def run_stages(size: int, work: Path, methods: list[str] | None, *, repeat: int = 1,
               sixth: str = SIXTH) -> tuple[dict, dict]:
    """Every stage in its own child, in order, in ``work``; the sixth-method detect right after detect
    (``repeat`` times each, alternating, the fastest kept). Returns (stages, runs of both detects)."""
    stages, detects = {}, {"detect": [], "detect_plus_one": []}
    task = {"kind": "stage", "size": size, "work": str(work), "methods": methods, "sixth": sixth}
    for stage in STAGES:
        if stage == "detect":
            for _ in range(repeat):
                for name in ("detect", "detect_plus_one"):
                    detects[name].append(measure({**task, "stage": name}))
            stages["detect"], stages["detect_plus_one"] = _best(detects["detect"]), _best(detects["detect_plus_one"])
        else:
            stages[stage] = measure({**task, "stage": stage})
        if "error" in stages[stage]:
            break
    return stages, detects


def run_pipeline(size: int, methods: list[str] | None = None, *, cache_mb: float | None = None) -> dict:
    work = Path(tempfile.mkdtemp(prefix=f"pipeline-{size}-", dir=CACHE))
    try:
        return measure({"kind": "pipeline", "size": size, "work": str(work / "out"), "methods": methods,
                        "cache_mb": cache_mb})
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run_floor_and_pipeline(size: int, methods: list[str] | None, repeat: int = 1,
                           cache_mb: float | None = None) -> tuple[dict, dict, list[dict]]:
    """The decode floor, then end to end, back to back (``repeat`` times): fastest of each, every pair."""
    pairs = []
    for _ in range(repeat):
        floor = measure({"kind": "floor", "size": size})
        pipeline = run_pipeline(size, methods, cache_mb=cache_mb)
        pairs.append({"floor_s": floor.get("seconds"), "pipeline_s": pipeline.get("seconds"),
                      "ratio": (pipeline["seconds"] / floor["seconds"]
                                if floor.get("seconds") and pipeline.get("seconds") else None),
                      "cpu_ratio": (pipeline["cpu_seconds"] / floor["cpu_seconds"]
                                    if floor.get("cpu_seconds") and pipeline.get("cpu_seconds") else None),
                      "peak_mb": pipeline.get("peak_mb"), "cache_mb": cache_mb,
                      "error": floor.get("error") or pipeline.get("error"), "phases": pipeline.get("phases"),
                      "load_before_floor": floor.get("load_before"),
                      "load_before_pipeline": pipeline.get("load_before"), "floor": floor, "pipeline": pipeline})
    return (_best([p["floor"] for p in pairs]), _best([p["pipeline"] for p in pairs]),
            [{k: v for k, v in p.items() if k not in ("floor", "pipeline")} for p in pairs])


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


def sixth_method_cost(stages: dict, pipeline: dict, runs: dict | None = None) -> dict:
    """What the sixth method adds: seconds over the five-method detect, as shares of it and of end to end.

    Wall: the fastest six-method run minus the fastest five-method run (the least disturbed by other
    work on the machine). CPU: the median of the paired differences (run i with six methods minus run i
    with five), which the load disturbs far less than wall time; as a share of the end-to-end CPU."""
    import statistics

    five, six = stages.get("detect", {}), stages.get("detect_plus_one", {})
    if "seconds" not in five or "seconds" not in six:
        return {}
    pairs = [(a, b) for a, b in zip((runs or {}).get("detect", []), (runs or {}).get("detect_plus_one", []))
             if "seconds" in a and "seconds" in b] or [(five, six)]
    extra = six["seconds"] - five["seconds"]
    extra_cpu = statistics.median(b["cpu_seconds"] - a["cpu_seconds"] for a, b in pairs)
    out = {"method": (six.get("methods") or [SIXTH])[-1], "detect5_s": five["seconds"], "detect6_s": six["seconds"],
           "paired_extra_s": [round(b["seconds"] - a["seconds"], 2) for a, b in pairs],
           "paired_extra_cpu_s": [round(b["cpu_seconds"] - a["cpu_seconds"], 2) for a, b in pairs],
           "extra_s": extra, "extra_cpu_s": extra_cpu,
           "share_of_detect": extra / five["seconds"], "extra_peak_mb": six["peak_mb"] - five["peak_mb"]}
    if pipeline.get("seconds"):
        out["share_of_end_to_end"] = extra / pipeline["seconds"]
        out["cpu_share_of_end_to_end"] = extra_cpu / pipeline["cpu_seconds"]
    return out


def _targets(size: int, pipeline: dict, baseline: dict, floor: dict, sixth: dict) -> list[dict]:
    stated, wanted = targets_for(size)
    label = "full tile" if stated == FULL_TILE else f"{stated} px pair"
    where = f" ({label} target)" if stated != size else ""
    rows = []
    total = pipeline.get("seconds", float("nan"))
    peak = pipeline.get("peak_mb", float("nan"))
    if "floor_ratio" in wanted:
        ratio = total / floor["seconds"] if floor.get("seconds") else float("nan")
        rows.append({"target": f"end to end <= {wanted['floor_ratio']:g}x the decode floor{where}",
                     "value": f"{ratio:.2f}x ({total:.1f} s / {floor.get('seconds', float('nan')):.1f} s)",
                     "met": ratio <= wanted["floor_ratio"]})
    rows.append({"target": f"peak memory <= {wanted['peak_mb'] / 1024:g} GiB{where}", "value": f"{peak:.0f} MB",
                 "met": peak <= wanted["peak_mb"]})
    if sixth.get("share_of_end_to_end") is not None:
        rows.append({"target": f"a sixth method ({sixth['method']}) adds <= {100 * SIXTH_METHOD_SHARE:g} % "
                               "to end to end",
                     "value": f"{sixth['extra_s']:+.1f} s = {100 * sixth['share_of_end_to_end']:+.1f} % "
                              f"(of detect {100 * sixth['share_of_detect']:+.1f} %); CPU {sixth['extra_cpu_s']:+.1f} s "
                              f"= {100 * sixth['cpu_share_of_end_to_end']:+.1f} %",
                     "met": sixth["share_of_end_to_end"] <= SIXTH_METHOD_SHARE})
    ref = baseline.get("result")
    if ref:
        speedup = ref["seconds"] / total
        ours_f1 = max(pipeline.get("f1_uniform", {}).values(), default=float("nan"))
        ref_f1 = max(s["f1"] for s in ref["scores"].values())
        rows.append({"target": f">= {SPEEDUP_VS_REFERENCE:g}x faster than the reference study, F1 >= its F1",
                     "value": f"{speedup:.1f}x ({baseline['status']}); best F1 ours {ours_f1:.3f} vs {ref_f1:.3f}",
                     "met": speedup >= SPEEDUP_VS_REFERENCE and ours_f1 >= ref_f1})
    return rows


def run(size: int = FULL_TILE, sweep=(1000, 2000), baseline: bool = True, *, repeat: int = 1, detect_repeat: int = 3,
        methods=METHODS, sixth: str = SIXTH, profile_stages=("detect",), cache_trials=()) -> dict:
    """Everything above for a ``size`` x ``size`` pair; returns the figures and a table.

    ``methods``: method names (None: map_landslides' own default methods); ``cache_trials``: GDAL
    block-cache sizes (MB) set inside the end-to-end process, each measured after a decode floor."""
    methods = list(methods) if methods else None
    CACHE.mkdir(exist_ok=True)
    sweep = sorted({int(s) for s in sweep if int(s) < size})
    load_start, code = _load(), _code_state()
    generation_s = _ensure_pair(size)

    work = Path(tempfile.mkdtemp(prefix=f"stages-{size}-", dir=CACHE))
    try:
        stages, detect_runs = run_stages(size, work, methods, repeat=detect_repeat, sixth=sixth)
        floor, pipeline, floor_pairs = run_floor_and_pipeline(size, methods, repeat)
        cache_pairs = []
        for cache_mb in cache_trials:
            cache_pairs += run_floor_and_pipeline(size, methods, 1, cache_mb=float(cache_mb))[2]
        floor_one_thread = measure({"kind": "floor", "size": size, "threads": "1"})
        reference = run_baseline(size, sweep) if baseline else {"status": "skipped"}

        sweep_rows = []
        for small in sweep:
            _ensure_pair(small)
            ours = run_pipeline(small, methods)
            ref = reference.get("measured", {}).get(small, {})
            sweep_rows.append({"size": small, "megapixels": small * small / 1e6, "ours_s": ours.get("seconds"),
                               "ours_peak_mb": ours.get("peak_mb"), "reference_s": ref.get("seconds"),
                               "reference_peak_mb": ref.get("peak_mb"),
                               "note": "reference measured" if ref else ""})
        ref_full = reference.get("result", {})
        sweep_rows.append({"size": size, "megapixels": size * size / 1e6, "ours_s": pipeline.get("seconds"),
                           "ours_peak_mb": pipeline.get("peak_mb"), "reference_s": ref_full.get("seconds"),
                           "reference_peak_mb": ref_full.get("peak_mb"),
                           "note": "reference " + reference.get("status", "")})

        sixth_cost = sixth_method_cost(stages, pipeline, detect_runs)
        targets = _targets(size, pipeline, reference, floor, sixth_cost) if "error" not in pipeline else []
        profiles = {}
        if any(not t["met"] for t in targets):
            for stage in profile_stages:
                # The stage files of the run above are still in ``work``: the stage re-runs on them.
                profiled = measure({"kind": "stage", "size": size, "stage": stage, "work": str(work), "profile": True,
                                    "methods": methods, "sixth": sixth})
                profiles[stage] = {"seconds": profiled.get("seconds"), "peak_mb": profiled.get("peak_mb"),
                                   **profiled.get("profile", {"error": profiled.get("error")})}
    finally:
        shutil.rmtree(work, ignore_errors=True)

    table = _stage_table(stages, pipeline, reference, floor, sixth_cost)
    result = {"size": size, "load_before": load_start, "load_after": _load(), "generation_seconds": generation_s,
              "code": code, "code_after": _code_state(), "methods": pipeline.get("methods") or methods, "sixth": sixth,
              "gdal_cachemax_env": os.environ.get("GDAL_CACHEMAX"), "repeat": repeat, "cache_trials": cache_pairs,
              "detect_repeat": detect_repeat,
              "stages": stages, "detect_runs": detect_runs, "pipeline": pipeline, "sixth_method": sixth_cost,
              "baseline_reference_study": reference,
              "floor": {"threads_all_cpus": floor, "threads_1": floor_one_thread, "pairs_with_pipeline": floor_pairs},
              "sweep": sweep_rows, "targets": targets, "methods_table": _methods_table(pipeline, reference),
              "profiles": profiles, "table": table}
    _print_extras(result)  # run.py prints "table" only
    return result


def _stage_table(stages: dict, pipeline: dict, reference: dict, floor: dict, sixth: dict) -> list[dict]:
    ref_steps = reference.get("result", {}).get("steps", {})
    mark = " (extrap.)" if reference.get("status", "").startswith("extrapolated") else ""
    floor_s = floor.get("seconds")
    rows = []
    for stage in STAGES:
        row = stages.get(stage, {})
        out = {"stage": stage, "seconds": row.get("seconds"), "cpu_s": row.get("cpu_seconds"),
               "peak_mb": row.get("peak_mb"), "gdal_cache_mb": row.get("gdal_cache_peak_mb")}
        if floor_s and row.get("seconds"):
            out["x_floor"] = row["seconds"] / floor_s
            out["x_floor_cpu"] = row["cpu_seconds"] / floor["cpu_seconds"]
        group = next((g for g, members in STAGE_GROUPS.items() if stage == members[-1]), None)
        if group and all("seconds" in stages.get(m, {}) for m in STAGE_GROUPS[group]):
            steps = REFERENCE_DETECT_STEPS if group == "detect" else (group,)
            if all(s in ref_steps for s in steps):
                ours = _group_seconds(stages, STAGE_GROUPS[group])
                out["ref_s" + mark] = sum(ref_steps[s]["seconds"] for s in steps)
                out["ref_peak_mb"] = max(ref_steps[s]["peak_mb"] for s in steps)
                out["ref/ours"] = out["ref_s" + mark] / ours
        if stage == "detect" and row.get("slope_seconds") is not None:
            out["note"] = (f"slope {row['slope_seconds']:.1f} s; slope+pass 1+fits "
                           f"{row.get('fits_done_at_s') or 0:.1f} s; {row.get('reads')} reads")
        rows.append(out)
    if sixth:
        six = stages["detect_plus_one"]
        rows.append({"stage": f"one more method (+{sixth['method']})", "seconds": sixth["extra_s"],
                     "cpu_s": sixth["extra_cpu_s"], "peak_mb": six.get("peak_mb"),
                     "gdal_cache_mb": six.get("gdal_cache_peak_mb"),
                     "x_floor": sixth["extra_s"] / floor_s if floor_s else None,
                     "x_floor_cpu": sixth["extra_cpu_s"] / floor["cpu_seconds"] if floor_s else None,
                     "note": f"detect {six['seconds']:.1f} s vs {sixth['detect5_s']:.1f} s: "
                             f"{100 * sixth['share_of_detect']:+.1f} % of detect, "
                             f"{100 * sixth.get('share_of_end_to_end', float('nan')):+.1f} % of end to end"})
    total = {"stage": "END TO END (map_landslides)", "seconds": pipeline.get("seconds"),
             "cpu_s": pipeline.get("cpu_seconds"), "peak_mb": pipeline.get("peak_mb"),
             "gdal_cache_mb": pipeline.get("gdal_cache_peak_mb")}
    if reference.get("result") and pipeline.get("seconds"):
        total["ref_s" + mark] = reference["result"]["seconds"]
        total["ref_peak_mb"] = reference["result"]["peak_mb"]
        total["ref/ours"] = reference["result"]["seconds"] / pipeline["seconds"]
    if floor_s and pipeline.get("seconds"):
        total["x_floor"] = pipeline["seconds"] / floor_s
        total["x_floor_cpu"] = pipeline["cpu_seconds"] / floor["cpu_seconds"]
    stage_sum = sum(stages[s]["seconds"] for s in STAGES if "seconds" in stages.get(s, {}))
    total["note"] = f"sum of the stages {stage_sum:.1f} s"
    rows.append(total)
    rows.append({"stage": "decode floor (both products)", "seconds": floor_s, "cpu_s": floor.get("cpu_seconds"),
                 "peak_mb": floor.get("peak_mb"), "gdal_cache_mb": floor.get("gdal_cache_peak_mb"), "x_floor": 1.0,
                 "x_floor_cpu": 1.0})
    keys = ["stage", "seconds", "cpu_s", "peak_mb", "gdal_cache_mb", "x_floor", "x_floor_cpu", "ref_s" + mark,
            "ref_peak_mb",
            "ref/ours", "note"]
    return [{key: row.get(key) for key in keys} for row in rows]  # run.py takes the columns from the first row


def _methods_table(pipeline: dict, reference: dict) -> list[dict]:
    ref_scores = reference.get("result", {}).get("scores", {})
    return [{"method": name, "F1_ours": pipeline.get("f1_uniform", {}).get(name),
             "F1_ours_observed": pipeline.get("f1", {}).get(name), "F1_ref": ref_scores.get(name, {}).get("f1")}
            for name in pipeline.get("f1_uniform", {})]


def _print_extras(result: dict) -> None:
    from run import print_table

    print(f"\nsize {result['size']}; load average before {result['load_before']}, after {result['load_after']}; "
          f"baseline: {result['baseline_reference_study'].get('status')}; GDAL_CACHEMAX "
          f"{result['gdal_cachemax_env'] or 'not set'} (cache max in the children: "
          f"{result['pipeline'].get('gdal_cache_max_mb') or float('nan'):.0f} MB)")
    print_table("decode floor and end to end, back to back",
                [{k: v for k, v in p.items() if k != "phases"} for p in result["floor"]["pairs_with_pipeline"]])
    print_table("end to end (the fastest run), by phase: seconds, peak RSS and GDAL block cache",
                result["pipeline"].get("phases", []))
    print_table("GDAL block cache bounded inside the end-to-end process (each after a decode floor)",
                [{k: v for k, v in p.items() if k != "phases"} for p in result["cache_trials"]])
    for trial in result["cache_trials"]:
        print_table(f"... by phase, cache {trial['cache_mb']:g} MB", trial.get("phases") or [])
    print_table("methods (F1 against the truth)", result["methods_table"])
    print_table("size sweep", result["sweep"])
    print_table("targets", result["targets"])
    for stage, profile in result["profiles"].items():
        seconds = profile.get("seconds") or float("nan")
        print(f"\nprofile of {stage} (every thread; {seconds:.1f} s under the profiler):")
        for key in ("tottime", "cumulative"):
            print(f"-- by {key}")
            print("\n".join(profile.get(key, [str(profile.get("error"))])))


def snapshot() -> Path:
    """A copy of the committed code (``git archive HEAD``) with this tree's bench scripts, sharing the
    pair cache and the results folder: the bench then measures one commit while others edit the tree."""
    sha = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                         check=True).stdout.strip()
    target = Path(tempfile.gettempdir()) / f"landslide-bench-{sha}"
    if not (target / ".bench_commit").exists():
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        archive = subprocess.Popen(["git", "-C", str(ROOT), "archive", "HEAD"], stdout=subprocess.PIPE)
        subprocess.run(["tar", "-x", "-C", str(target)], stdin=archive.stdout, check=True)
        if archive.wait() != 0:
            raise RuntimeError("git archive HEAD failed")
        (target / ".bench_commit").write_text(sha)
    for script in HERE.glob("*.py"):
        shutil.copy2(script, target / "bench" / script.name)
    for name, real in (("cache", CACHE), ("results", HERE / "results")):
        real.mkdir(exist_ok=True)
        link = target / "bench" / name
        if not link.is_symlink():
            shutil.rmtree(link, ignore_errors=True)
            link.symlink_to(real)
    return target


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=FULL_TILE, help="tile size in pixels (default 5490)")
    parser.add_argument("--sweep", default="1000,2000", help="smaller sizes for the sweep (comma-separated)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the reference-study baseline")
    parser.add_argument("--repeat", type=int, default=1,
                        help="measure the decode floor and end to end back to back this many times (the fastest "
                             "of each is kept; every pair's ratio and load are in the JSON)")
    parser.add_argument("--detect-repeat", type=int, default=3,
                        help="measure the five- and six-method detect stages this many times each, alternating "
                             "(the fastest of each kept; CPU: the median paired difference)")
    parser.add_argument("--methods", default=",".join(METHODS),
                        help="methods of every detect and end-to-end run (comma-separated; 'default' = "
                             f"map_landslides' own default methods; default {','.join(METHODS)}, issue 14's five)")
    parser.add_argument("--try-cache-mb", default="",
                        help="GDAL block-cache sizes (MB, comma-separated) to also try end to end, each set inside "
                             "the process (GDALSetCacheMax) after a decode floor: what bounding the cache would do")
    parser.add_argument("--sixth", default=SIXTH, help=f"the method added for 'one more method' (default {SIXTH})")
    parser.add_argument("--profile", default="detect",
                        help="stages profiled when a target is missed (comma-separated; '' = none)")
    parser.add_argument("--snapshot", action="store_true",
                        help="measure the committed code (HEAD, copied with git archive to a temporary folder, "
                             "with this tree's bench scripts), not the working tree others may be editing")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.snapshot:
        target = snapshot()
        argv = [a for a in sys.argv[1:] if a != "--snapshot"]
        print(f"measuring commit {(target / '.bench_commit').read_text().strip()} in {target}", flush=True)
        return subprocess.run([sys.executable, str(target / "bench" / "bench_pipeline.py"), *argv]).returncode
    if args.child:
        result = _child(json.loads(args.child))
        print(RESULT_MARK + json.dumps(result, default=str), flush=True)
        return 0
    sweep = tuple(int(s) for s in args.sweep.split(",") if s.strip())
    result = run(args.size, sweep, not args.no_baseline, repeat=max(1, args.repeat),
                 detect_repeat=max(1, args.detect_repeat), sixth=args.sixth,
                 methods=None if args.methods == "default" else [m for m in args.methods.split(",") if m.strip()],
                 cache_trials=[float(c) for c in args.try_cache_mb.split(",") if c.strip()],
                 profile_stages=tuple(s.strip() for s in args.profile.split(",") if s.strip()))
    (HERE / "results").mkdir(exist_ok=True)
    name = "pipeline.json" if args.size == FULL_TILE else f"pipeline_{args.size}.json"
    (HERE / "results" / name).write_text(json.dumps(result, indent=2, default=str))
    from run import print_table

    print_table("pipeline", result["table"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
