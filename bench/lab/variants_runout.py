"""Method-lab study (bench/method_lab.py scenes and scoring) of slope rules on landslide objects that keep
runout and deposits without letting flat fields and clear-cuts in; run from the repo root.

Per scene the default methods run twice: with the pixel slope rule (``local_scar``, today's default) and with
the slope rule left to the objects (``MaskOptions.slope_objects``) but no object rule applied yet, so every
analysed pixel on gentle ground that passes the spectral rules is in the mask. Each object rule below is then
applied to a copy of those masks and scored like a lab variant; ``objects_any`` is the object option
``slope_objects``; with ``--core`` the core's rule (``MaskOptions.keep_runout``, the chosen
``share50_descent0_source20``, nearest steep pixel of the pixel's own object) runs as a third detection.

Usage: bench/lab/variants_runout.py [--only scene,scene] [--rules a,b] [--core] [--reuse] [--save out.json]
"""
import argparse
import json
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import bench_accuracy
import method_lab
import numpy as np
import rasterio
from scipy import ndimage

from landslide_plugin.core import detection, masks
from landslide_plugin.core.clustering import SelectionRule as R
from landslide_plugin.core.detection import MethodSpec as M

MIN_SLOPE = 15.0
PIXEL_M = 20.0
F5 = {"features": ("dNDVI", "dBSI", "dVIS", "NDVI_pre", "BSI_post")}
LOCAL_SCAR = R(max_dndvi=-0.15, min_dbsi=0.05, min_dvis=0.02, pixel_max_dndvi=-0.15, local_max_dndvi=-0.1,
               local_min_dvis=0.02, min_core_fraction=0.5, local_scar_dndvi=-0.2, fallback=True)
METHODS = [M("threshold"), M("kmeans", 5, candidates_below=-0.1, rule=LOCAL_SCAR),
           M("gmm", 5, candidates_below=-0.1, rule=LOCAL_SCAR)]


def with_seed(seed):
    """The methods and inputs with the clusterings' and the sample's seed."""
    global METHODS, F5
    METHODS = [M("threshold"), M("kmeans", 5, candidates_below=-0.1, rule=LOCAL_SCAR, seed=seed),
               M("gmm", 5, candidates_below=-0.1, rule=LOCAL_SCAR, seed=seed)]
    F5 = {**F5, "seed": seed}


def mask_opts(**extra):
    def make(folder):
        return masks.MaskOptions(use_scl=True, exclude_water=True, slope_path=str(folder / "slope.tif"),
                                 dem_path=str(method_lab.CACHE / folder.name.removeprefix("lab_") / "dem.tif"),
                                 min_slope_deg=MIN_SLOPE, min_ndvi_pre=0.3, water_buffer_px=2, **extra)
    return make


def object_rule(mask, slope, dem, *, min_share=0.0, below_m=None, within_px=None, below_top=False,
                descent_deg=None, source_deg=None):
    """The mask with its gentle pixels (slope < MIN_SLOPE) kept only by the stated object rule.

    Steep flagged pixels are always kept (the pixel rule). A gentle flagged pixel is kept when its 8-connected
    object has steep pixels and all the stated tests pass:

    - ``min_share``: the steep pixels are at least this share of the object;
    - ``source_deg``: their mean slope is at least this many degrees;
    - ``below_m``: the pixel is at most this many metres above the lowest steep pixel of its object;
    - ``below_top``: it is not above the highest steep pixel of its object;
    - ``descent_deg``: it is lower than its nearest steep pixel (any object) by at least the tangent of this angle
      times their distance (downslope of the source, not beside or above it);
    - ``within_px``: it is at most this many 8-connected steps inside the object from a steep pixel.

    Kept gentle pixels must still join a steep pixel through kept pixels.
    """
    flagged = mask == 1
    with np.errstate(invalid="ignore"):
        steep = flagged & (slope >= MIN_SLOPE)
    eight = np.ones((3, 3), bool)
    labels, count = ndimage.label(flagged, structure=eight)
    size = np.bincount(labels.ravel(), minlength=count + 1)
    steep_count = np.bincount(labels[steep], minlength=count + 1)
    ok = steep_count > 0
    ok[0] = False
    if min_share:
        ok &= steep_count >= min_share * size
    if source_deg is not None:
        steep_sum = np.bincount(labels[steep], weights=slope[steep], minlength=count + 1)
        ok &= steep_sum >= source_deg * steep_count
    gentle = flagged & ~steep & ok[labels]
    if below_m is not None:
        lowest = np.full(count + 1, np.inf)
        np.minimum.at(lowest, labels[steep], dem[steep])
        gentle &= dem <= lowest[labels] + below_m
    if below_top:
        highest = np.full(count + 1, -np.inf)
        np.maximum.at(highest, labels[steep], dem[steep])
        gentle &= dem <= highest[labels]
    if descent_deg is not None:
        distance, (rows, cols) = ndimage.distance_transform_edt(~steep, return_indices=True)
        drop = dem[rows, cols] - dem
        gentle &= drop > distance * PIXEL_M * np.tan(np.radians(descent_deg))
    if within_px is not None:
        gentle &= ndimage.binary_dilation(steep, structure=eight, iterations=int(within_px), mask=flagged)
    keep = steep | gentle
    kept_labels, kept_count = ndimage.label(keep, structure=eight)
    has_steep = np.bincount(kept_labels[steep], minlength=kept_count + 1) > 0
    has_steep[0] = False
    keep = has_steep[kept_labels]
    out = mask.copy()
    out[flagged & ~keep] = 0
    return out


RULES = {
    "objects_any": {},
    "share33": {"min_share": 1 / 3},
    "share50": {"min_share": 0.5},
    "below0": {"below_m": 0.0},
    "below10": {"below_m": 10.0},
    "below_top": {"below_top": True},
    "share33_below_top": {"min_share": 1 / 3, "below_top": True},
    "share25": {"min_share": 0.25},
    "descent0": {"descent_deg": 0.0},
    "descent3": {"descent_deg": 3.0},
    "descent6": {"descent_deg": 6.0},
    "share50_descent0": {"min_share": 0.5, "descent_deg": 0.0},
    "share50_descent3": {"min_share": 0.5, "descent_deg": 3.0},
    "share33_descent3": {"min_share": 1 / 3, "descent_deg": 3.0},
    "share50_descent6": {"min_share": 0.5, "descent_deg": 6.0},
    "share50_source20": {"min_share": 0.5, "source_deg": 20.0},
    "share50_descent0_source20": {"min_share": 0.5, "descent_deg": 0.0, "source_deg": 20.0},
    "share50_descent0_source25": {"min_share": 0.5, "descent_deg": 0.0, "source_deg": 25.0},
    "share33_descent0_source20": {"min_share": 1 / 3, "descent_deg": 0.0, "source_deg": 20.0},
    "within5": {"within_px": 5},
    "within10": {"within_px": 10},
    "share33_within10": {"min_share": 1 / 3, "within_px": 10},
    "share33_below10": {"min_share": 1 / 3, "below_m": 10.0},
    "below10_within10": {"below_m": 10.0, "within_px": 10},
    "share33_below10_within10": {"min_share": 1 / 3, "below_m": 10.0, "within_px": 10},
    "share50_below10_within10": {"min_share": 0.5, "below_m": 10.0, "within_px": 10},
    "share33_below0_within5": {"min_share": 1 / 3, "below_m": 0.0, "within_px": 5},
}


def _read(path):
    with rasterio.open(path) as src:
        return src.read(1)


def _raw_objects(pair, folder, out):
    """The masks with the slope rule left to the objects and no object rule applied."""
    saved = detection._objects_reaching_slope
    detection._objects_reaching_slope = lambda *args, **kwargs: None
    try:
        variant = {"methods": METHODS, "masks": mask_opts(slope_objects=True), "inputs": F5}
        method_lab.run_variant(pair, folder, variant, out)
    finally:
        detection._objects_reaching_slope = saved
    return {s.name: out / f"mask_{s.name}.tif" for s in METHODS}


def summary(scenes):
    lines = ["| variant | method | mean F1 | worst F1 | mean MCC | worst MCC | runout found (px) | harvested field | "
             "clearcut | browning | reservoir shore | all false alarms |", "| --- " * 12 + "|"]
    for variant, rows in scenes.items():
        for name in rows[0]["methods"]:
            f1 = [s["methods"][name]["observed"]["f1"] or 0.0 for s in rows]
            mcc = [s["methods"][name]["observed"]["mcc"] or 0.0 for s in rows]
            fa = {k: sum(s["methods"][name]["false_alarms"][k] for s in rows)
                  for k in ("harvested_field", "clearcut", "browning", "reservoir_shore")}
            total = sum(s["methods"][name]["false_alarms_total"] for s in rows)
            found = [s["methods"][name]["found"]["runout"] for s in rows if s["label_pixels"].get("runout", 0)]
            px = sum(s["runout_found_px"][name] for s in rows)
            lines.append(f"| {variant} | {name} | {np.mean(f1):.3f} | {min(f1):.3f} | {np.mean(mcc):.3f} | "
                         f"{min(mcc):.3f} | {np.mean(found):.2f} ({px:,}) | {fa['harvested_field']:,} | "
                         f"{fa['clearcut']:,} | {fa['browning']:,} | {fa['reservoir_shore']:,} | {total:,} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", default="")
    parser.add_argument("--rules", default="")
    parser.add_argument("--save", default="")
    parser.add_argument("--reuse", action="store_true", help="reuse the masks of an earlier run")
    parser.add_argument("--core", action="store_true", help="also run the core's rule (MaskOptions.keep_runout)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the clusterings and their sample")
    args = parser.parse_args()
    from landslide_plugin.examples import scenarios

    chosen = [s for s in scenarios.SCENARIOS if not args.only or s.name in args.only.split(",")]
    with_seed(args.seed)
    tag = f"_seed{args.seed}" if args.seed else ""
    rules = {k: v for k, v in RULES.items() if not args.rules or k in args.rules.split(",")}
    results = {v: [] for v in ("local_scar", *rules, *(("keep_runout",) if args.core else ()))}
    start = time.perf_counter()
    for options in chosen:
        pair, folder = method_lab.prepared(options)
        base = method_lab.CACHE / "lab_out" / options.name
        truth = _read(pair.truth) == 1
        labels = scenarios.read_labels(pair.confounders)
        runout = truth & labels["runout"] & ~labels["unobserved"]

        def scored(variant, paths, pair=pair, name=options.name, runout=runout):
            s = bench_accuracy.score_scene(pair, paths)
            s["scene"] = name
            s["runout_found_px"] = {n: int(((_read(p) == 1) & runout).sum()) for n, p in paths.items()}
            results[variant].append(s)

        out = base / f"runout_local_scar{tag}"
        out.mkdir(parents=True, exist_ok=True)
        if not (args.reuse and (out / "mask_kmeans5.tif").exists()):
            method_lab.run_variant(pair, folder, {"methods": METHODS, "masks": mask_opts(), "inputs": F5}, out)
        scored("local_scar", {s.name: out / f"mask_{s.name}.tif" for s in METHODS})
        raw = base / f"runout_objects_raw{tag}"
        raw.mkdir(parents=True, exist_ok=True)
        if args.reuse and (raw / "mask_kmeans5.tif").exists():
            raw_paths = {s.name: raw / f"mask_{s.name}.tif" for s in METHODS}
        else:
            raw_paths = _raw_objects(pair, folder, raw)
        slope = _read(folder / "slope.tif").astype(np.float32)
        dem = _read(pair.dem).astype(np.float64)
        for rule, kwargs in rules.items():
            out = base / f"runout_{rule}{tag}"
            out.mkdir(parents=True, exist_ok=True)
            paths = {}
            for name, path in raw_paths.items():
                paths[name] = out / path.name
                shutil.copyfile(path, paths[name])
                with rasterio.open(paths[name], "r+") as dst:
                    dst.write(object_rule(dst.read(1), slope, dem, **kwargs), 1)
            scored(rule, paths)
        if args.core:
            out = base / f"runout_keep_runout{tag}"
            out.mkdir(parents=True, exist_ok=True)
            method_lab.run_variant(pair, folder, {"methods": METHODS, "masks": mask_opts(keep_runout=True),
                                                  "inputs": F5}, out)
            scored("keep_runout", {s.name: out / f"mask_{s.name}.tif" for s in METHODS})
        print(f"{options.name:34s} " + "  ".join(
            f"{v}:{results[v][-1]['methods']['kmeans5']['observed']['f1'] or 0:.2f}" for v in results), flush=True)
    print(summary(results))
    print(f"{time.perf_counter() - start:.0f} s")
    if args.save:
        Path(args.save).write_text(json.dumps(results, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
