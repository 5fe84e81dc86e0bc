#!/usr/bin/env python3
"""Which images: a cloudy single post date against a three-date composite, an off-season pre image against a
same-season one (issue 18, item 6), on the scenario scenes.

For each same-season scene of ``landslide_plugin.examples.scenarios.SCENARIOS`` (at its size, or at most
``--size`` px; the scenes are simulated again, the products written with ``example_data.write_date_product``)
this writes:

- pre ``same``: the scenario's pre date (same season as the post date, a year before);
- pre ``off``: 182 days before the post date (half a year: the latest image before the event a hurried
  choice would take; the ground, crops, reservoir and sun of that date);
- post dates P0 (the scenario's post date), P0 + 5 d and P0 + 10 d, each with the scenario's random clouds
  (another pattern per date); P0 also has an opaque cloud over the central quarter of the scene (rows
  and columns 25-75 %), where the area of interest of a responder would be.

and runs ``pipeline.map_landslides`` as the one-step algorithm does by default (every method, the scene's
DEM, masks on) for four choices of images:

| run | pre | post |
| --- | --- | --- |
| ``cloudy single`` | same | P0 (the earliest after the event, cloudy over the centre) |
| ``composite`` | same | median composite of P0, P0 + 5, P0 + 10 |
| ``clear single`` | same | P0 + 5 |
| ``off-season pre`` | off | P0 + 5 |

Scores: landslide F1 against the scene's truth on **every pixel of the scene** (a pixel a run leaves out,
cloud included, counts as "not landslide": what the responder's map shows), and on the pixels **every
run of the scene observes** (mask not 255 in all four), where the images, not the coverage, differ.

Usage: bench/bench_composites.py [--only scene,scene] [--size 384] [--markdown]    bench/run.py --only composites
(about 3 minutes on 2 cores at the scenes' own sizes, 256-768 px)
"""
from __future__ import annotations

import argparse
import datetime
import json
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for _path in (str(ROOT), str(HERE)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

METHODS = ("threshold", "kmeans2", "kmeans3", "gmm2", "gmm3")
RUNS = ("cloudy single", "composite", "clear single", "off-season pre")
OFF_SEASON_DAYS = 182
POST_STEP_DAYS = 5


def _day(value, days: int = 0) -> str:
    from landslide_plugin.examples import example_data

    return (example_data._as_date(value) + datetime.timedelta(days=days)).isoformat()


def write_scene_products(options, folder: Path) -> dict:
    """Products of the pre and post dates of the comparison, the truth and the DEM of one scene."""
    import rasterio
    from rasterio.crs import CRS
    from rasterio.transform import from_origin

    from landslide_plugin.core.rasters import geotiff_profile
    from landslide_plugin.examples import scenarios
    from landslide_plugin.examples.example_data import write_date_product

    scene = scenarios.simulate_scenario(options)
    site = scenarios.SITES[options.landscape]
    place = {"epsg": site["epsg"], "tile": site["tile"], "ulx": site["ulx"], "uly": site["uly"]}
    size = options.size
    lo, hi = size // 4, size - size // 4
    dates = {"same": (options.pre_date, False), "off": (_day(options.post_date, -OFF_SEASON_DAYS), False),
             "p0": (options.post_date, True), "p5": (_day(options.post_date, POST_STEP_DAYS), True),
             "p10": (_day(options.post_date, 2 * POST_STEP_DAYS), True)}
    paths, clouds = {}, {}
    for k, (label, (day, after)) in enumerate(dates.items()):
        boxes = [(lo, hi, lo, hi)] if label == "p0" else []
        paths[label], clouds[label] = write_date_product(
            scene, folder / label, date=day, after_event=after, cloud_fraction=options.cloud_fraction[int(after)],
            cloud_boxes=boxes, noise_seed=options.seed * 10 + k, **place)
        paths[label] = str(paths[label])
    like = {"crs": CRS.from_epsg(site["epsg"]), "transform": from_origin(site["ulx"], site["uly"], 20.0, 20.0),
            "width": size, "height": size}
    truth, dem = folder / "truth.tif", folder / "dem.tif"
    with rasterio.open(truth, "w", **geotiff_profile(like, 1, "uint8", 255)) as dst:
        dst.write(scene.truth, 1)
    with rasterio.open(dem, "w", **geotiff_profile(like, 1)) as dst:
        dst.write(scene.dem.astype("float32"), 1)
    scene.release()
    return {"paths": paths, "cloud_percent": clouds, "dates": {k: v[0] for k, v in dates.items()},
            "truth": str(truth), "dem": str(dem)}


def _read(path):
    import rasterio

    with rasterio.open(path) as src:
        return src.read(1)


def _f1(truth, flagged, valid=None) -> dict:
    from landslide_plugin.core import evaluation

    conf = evaluation.confusion(truth, flagged, valid=valid)
    s = evaluation.scores(conf, zero_division=0.0)
    return {"f1": s.f1, "precision": s.precision, "recall": s.recall, "mcc": s.mcc}


def run_scene(options, work: Path) -> dict:
    import numpy as np

    from landslide_plugin.core import pipeline

    start = time.perf_counter()
    made = write_scene_products(options, work / "products")
    generate_s = time.perf_counter() - start
    p = made["paths"]
    choices = {"cloudy single": ([p["same"]], [p["p0"]]),
               "composite": ([p["same"]], [p["p0"], p["p5"], p["p10"]]),
               "clear single": ([p["same"]], [p["p5"]]),
               "off-season pre": ([p["off"]], [p["p5"]])}
    truth = _read(made["truth"]) == 1
    masks, runs = {}, {}
    for name, (pre, post) in choices.items():
        start = time.perf_counter()
        try:
            result = pipeline.map_landslides(pre, post, work / name.replace(" ", "_"), dem=made["dem"],
                                             reference=made["truth"])
        except ValueError as error:  # e.g. the co-registration refuses the pair: no map at all
            runs[name] = {"map_s": time.perf_counter() - start, "failed": str(error).split(":")[0],
                          "observed_share": 0.0}
            masks[name] = {m: np.full(truth.shape, 255, dtype=np.uint8) for m in METHODS}
            continue
        masks[name] = {m: _read(result.masks[m]) for m in METHODS}
        runs[name] = {"map_s": time.perf_counter() - start, "shift_px": list(result.shift_px or ()),
                      "observed_share": float((masks[name]["threshold"] != 255).mean()),
                      "warnings": list(result.warnings)}
    # Pixels every run that gave a map observes (a run that failed maps nothing: F1 0 on every pixel).
    common = np.logical_and.reduce([masks[name]["threshold"] != 255 for name in RUNS if "failed" not in runs[name]])
    for name in RUNS:
        runs[name]["all_pixels"] = {m: _f1(truth, masks[name][m] == 1) for m in METHODS}
        runs[name]["common_pixels"] = {m: _f1(truth, masks[name][m] == 1, common) for m in METHODS}
    return {"scene": options.name, "size": options.size, "landscape": options.landscape,
            "dates": made["dates"], "cloud_percent": made["cloud_percent"], "truth_pixels": int(truth.sum()),
            "common_share": float(common.mean()), "generate_s": generate_s, "runs": runs}


#: The two comparisons of the issue: (name, image choice A, image choice B).
PAIRS = (("cloudy single post date -> three-date composite", "cloudy single", "composite"),
         ("off-season pre image -> same-season pre image", "off-season pre", "clear single"))


def summarise(scenes: list[dict]) -> dict:
    """Mean F1 per run and method, on every pixel and on the pixels every run observes (a failed run: F1 0);
    and each comparison of ``PAIRS`` over the scenes where both runs gave a map."""
    out = {"runs": {}, "pairs": []}
    for name in RUNS:
        out["runs"][name] = {where: {m: _mean(s["runs"][name][where][m]["f1"] for s in scenes) for m in METHODS}
                             for where in ("all_pixels", "common_pixels")}
        out["runs"][name]["observed_share"] = _mean(s["runs"][name]["observed_share"] for s in scenes)
        out["runs"][name]["failed"] = [s["scene"] for s in scenes if "failed" in s["runs"][name]]
    for title, a, b in PAIRS:
        both = [s for s in scenes if "failed" not in s["runs"][a] and "failed" not in s["runs"][b]]
        item = {"title": title, "a": a, "b": b, "scenes": len(both)}
        for where in ("all_pixels", "common_pixels"):
            for run_name, key in ((a, "a"), (b, "b")):
                item[f"{key}_{where}"] = {m: _mean(s["runs"][run_name][where][m]["f1"] for s in both)
                                          for m in METHODS}
            item[f"b_better_{where}"] = {m: sum(s["runs"][b][where][m]["f1"] > s["runs"][a][where][m]["f1"]
                                                for s in both) for m in METHODS}
        out["pairs"].append(item)
    return out


def _mean(values) -> float:
    values = list(values)
    return sum(values) / len(values) if values else float("nan")


def markdown(scenes: list[dict], summary: dict) -> str:
    lines = ["Mean F1 over the scenes where both runs gave a map, every pixel / pixels every run observes (in "
             "brackets: in how many of those scenes the second choice is better):", "",
             "| comparison | scenes | " + " | ".join(METHODS) + " |",
             "| --- | --- | " + " | ".join("---" for _ in METHODS) + " |"]
    for item in summary["pairs"]:
        cells = " | ".join(
            f"{item['a_all_pixels'][m]:.3f} -> **{item['b_all_pixels'][m]:.3f}** ({item['b_better_all_pixels'][m]}) / "
            f"{item['a_common_pixels'][m]:.3f} -> {item['b_common_pixels'][m]:.3f}" for m in METHODS)
        lines.append(f"| {item['title']} | {item['scenes']} | {cells} |")
    lines += ["", "Every run, mean F1 over all scenes (a run that failed counts 0), every pixel / pixels every run "
              "observes:", "", "| run | observed share | failed | " + " | ".join(METHODS) + " |",
              "| --- | --- | --- | " + " | ".join("---" for _ in METHODS) + " |"]
    for name in RUNS:
        item = summary["runs"][name]
        cells = " | ".join(f"{item['all_pixels'][m]:.3f} / {item['common_pixels'][m]:.3f}" for m in METHODS)
        failed = ", ".join(item["failed"]) or "-"
        lines.append(f"| {name} | {item['observed_share']:.2f} | {failed} | {cells} |")
    lines += ["", "Per scene, F1 of the threshold / gmm3 on every pixel (pixels observed by every run in brackets); "
              "cloud share of P0 and P0 + 5 (SCL, %):", "",
              "| scene | px | dates (same, off; P0) | cloud P0, P0+5 | " + " | ".join(RUNS) + " |",
              "| --- | --- | --- | --- | " + " | ".join("---" for _ in RUNS) + " |"]
    for s in scenes:
        d, c = s["dates"], s["cloud_percent"]
        cells = " | ".join(
            "failed" if "failed" in s["runs"][n] else
            f"{s['runs'][n]['all_pixels']['threshold']['f1']:.2f} / {s['runs'][n]['all_pixels']['gmm3']['f1']:.2f} "
            f"({s['runs'][n]['common_pixels']['threshold']['f1']:.2f} / "
            f"{s['runs'][n]['common_pixels']['gmm3']['f1']:.2f})" for n in RUNS)
        lines.append(f"| {s['scene']} | {s['size']} | {d['same']}, {d['off']}; {d['p0']} | {c['p0']:.0f}, "
                     f"{c['p5']:.0f} | {cells} |")
    return "\n".join(lines)


def run(only: str = "", size: int | None = None) -> dict:
    from landslide_plugin.examples import scenarios

    wanted = [n.strip() for n in only.split(",") if n.strip()]
    chosen = [s for s in scenarios.SCENARIOS if s.season == "same-season" and (not wanted or s.name in wanted)]
    if wanted and len(chosen) != len(wanted):
        raise ValueError(f"unknown or not same-season scenes in {only!r}; the same-season scenes are "
                         + ", ".join(s.name for s in scenarios.SCENARIOS if s.season == "same-season"))
    scenes = []
    start = time.perf_counter()
    for options in chosen:
        options = options.with_size(min(options.size, int(size or options.size)))
        with tempfile.TemporaryDirectory(prefix="bench-composites-") as work:
            scene = run_scene(options, Path(work))
        scenes.append(scene)
        cells = ", ".join(f"{n} {scene['runs'][n]['all_pixels']['threshold']['f1']:.2f}/"
                          f"{scene['runs'][n]['all_pixels']['gmm3']['f1']:.2f}"
                          + (f" (failed: {scene['runs'][n]['failed']})" if "failed" in scene["runs"][n] else "")
                          for n in RUNS)
        print(f"  {options.name} ({options.size} px): F1 threshold/gmm3 {cells}", flush=True)
    summary = summarise(scenes)
    table = [{"run": n, "observed": summary["runs"][n]["observed_share"], "failed": len(summary["runs"][n]["failed"]),
              **{f"{m} all": summary["runs"][n]["all_pixels"][m] for m in ("threshold", "kmeans3", "gmm3")},
              **{f"{m} common": summary["runs"][n]["common_pixels"][m] for m in ("threshold", "kmeans3", "gmm3")}}
             for n in RUNS]
    return {"scenes": scenes, "summary": summary, "table": table, "markdown": markdown(scenes, summary),
            "size": size, "seconds_scenes": time.perf_counter() - start}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="", help="comma-separated same-season scene names (default: all)")
    parser.add_argument("--size", type=int, default=None, help="largest scene side in pixels (default: each "
                        "scene's own, 256-768)")
    parser.add_argument("--markdown", action="store_true", help="print the README tables")
    args = parser.parse_args()
    start = time.perf_counter()
    result = run(args.only, args.size)
    from run import machine

    result = {"benchmark": "composites", "machine": machine(), "seconds_total": time.perf_counter() - start,
              **result}
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "composites.json").write_text(json.dumps(result, indent=2, default=str))
    print(result["markdown"] if args.markdown else json.dumps(result["summary"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
