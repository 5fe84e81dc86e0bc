#!/usr/bin/env python3
"""Accuracy of every method on the scenario set: landslide F1 and MCC on scenes nobody tuned a method to.

For each scene of ``landslide_plugin.examples.scenarios.SCENARIOS`` (generated once into ``bench/cache/``,
keyed by the generator and scenario versions) this runs ``pipeline.map_landslides`` as the one-step
algorithm does by default - products in, every default method (threshold, kmeans5, gmm5, either), the scene's
DEM, masks on - with the truth as reference, and scores each method's mask.

Scoring: on every pixel both products observe (``unobserved`` label clear: the SCL of neither date is
no data, defective, cloud, cloud shadow, cirrus or snow; the post SCL moved back by the true shift), the
same pixels for every method; a pixel a method masks out itself (its 255) counts as "not landslide", so
a method cannot raise its score by masking more. The pipeline's own figures (``metrics.json``: pixels
its masks observe) and the scores on all pixels are in the JSON too.

Confounders: for each label of ``confounders.tif`` the pixels each method flags there that are not
landslides (false alarms), and for the labels on the truth (runout, small scars, scar edges) the share
of those truth pixels each method finds.

Land cover (``--landcover``, off by default; report it separately): the one-step algorithm accepts a
land-cover raster (ESA WorldCover; classes 40 cropland and 50 built-up excluded by default), the default
bench runs without one. ``exact`` passes the generator's own land cover, ``degraded`` a copy degraded as
WorldCover is (``degraded_landcover``: about 75-80 % of the pixels right at 10 m), so the figures show what a
real map of that quality buys and costs.

Held-out scenes (``--seed-offset N``, off by default; report them separately): every recipe of the set with its
seed raised by N - other terrain, scars, fields, clouds and haze under the same confounders - so a change can be
checked on scenes nobody looked at while making it. Written to ``accuracy_seed+N.json``.

Usage: bench/bench_accuracy.py [--only scene,scene] [--markdown] [--landcover exact|degraded] [--seed-offset N]
       bench/run.py --only accuracy
"""
from __future__ import annotations

import argparse
import dataclasses
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

CACHE = HERE / "cache"
#: The one-step run's default methods, then the reference study's clusterings ("ref:" - every analysed
#: pixel, one landslide cluster), run with the same masks in a second pass over the same prepared pair.
METHODS = ("threshold", "kmeans5", "gmm5", "either", "ref:kmeans2", "ref:kmeans3", "ref:gmm2", "ref:gmm3")
REFERENCE_CLUSTERINGS = ("kmeans2", "kmeans3", "gmm2", "gmm3")
#: Confounders whose flagged pixels are false alarms (the rest are the truth's own labels).
FALSE_ALARM_LABELS = ("harvested_field", "reservoir_shore", "burn", "clearcut", "browning", "greening", "snow",
                      "haze", "cloud_shadow", "terrain_shading", "scar_edge")
#: Labels on the truth: how much of it each method finds.
TRUTH_LABELS = ("runout", "small_scar", "scar_edge")
#: ``--landcover``: no land cover (the default bench), the generator's own, or a degraded copy.
LANDCOVER_CHOICES = ("none", "exact", "degraded")
#: Classes a land-cover run excludes: the one-step algorithm's default (WorldCover cropland, built-up).
LANDCOVER_EXCLUDED = (40, 50)
#: Which class a degraded map confuses each WorldCover class with (the largest off-diagonal cells of
#: WorldCover v200's validation: cropland and grassland, grassland and shrubland, shrubland and trees;
#: the wetland of a drawdown zone is mapped as grassland or bare; Zanaga et al. 2022, table 8).
LANDCOVER_CONFUSION = {10: 20, 20: 30, 30: 40, 40: 30, 50: 60, 60: 30, 90: 30}
#: Share of the land in the degraded map's confused patches: with the coarse grid's boundary errors, 21-26 %
#: of the land is wrong on the 14 scenes (77 % right on average; WorldCover v200: 76.7 % overall accuracy,
#: cropland and grassland the weakest classes).
LANDCOVER_CONFUSED_SHARE = 0.18


def scene_folder(options) -> Path:
    """The scene's cache folder; a held-out scene (another seed than its recipe's) gets its own."""
    from landslide_plugin.examples import example_data, scenarios

    folder = f"scenario_{options.name}_g{example_data.GENERATOR_VERSION}s{scenarios.SCENARIO_VERSION}"
    if options.seed != scenarios.scenario(options.name).seed:
        folder += f"_seed{options.seed}"
    return CACHE / folder


def degraded_landcover(landcover, seed: int):
    """A land-cover map as wrong as a global 10 m product is on a 20 m scene: the classes of 3 x 3 blocks
    (60 m, the majority: boundaries and small parcels generalised away), shifted by a pixel (the map's and
    the image's geolocation), and patches of 200-400 m (``LANDCOVER_CONFUSED_SHARE`` of the land) mapped as
    the class WorldCover most confuses them with (``LANDCOVER_CONFUSION``). Deterministic for a seed."""
    import numpy as np
    from scipy import ndimage

    height, width = landcover.shape
    block = 3
    padded = np.pad(landcover, ((0, -height % block), (0, -width % block)), mode="edge")
    blocks = padded.reshape(padded.shape[0] // block, block, padded.shape[1] // block, block).transpose(0, 2, 1, 3)
    blocks = blocks.reshape(blocks.shape[0], blocks.shape[1], block * block)
    codes = np.unique(landcover)
    counts = np.stack([(blocks == c).sum(axis=2) for c in codes])
    majority = codes[np.argmax(counts, axis=0)]
    out = np.repeat(np.repeat(majority, block, axis=0), block, axis=1)[:height, :width]
    out = np.roll(out, (1, 1), axis=(0, 1))
    rng = np.random.default_rng([seed, 8080])
    noise = ndimage.gaussian_filter(rng.standard_normal(landcover.shape), sigma=6.0)
    patches = noise > np.quantile(noise, 1.0 - LANDCOVER_CONFUSED_SHARE)
    confused = out.copy()
    for code, other in LANDCOVER_CONFUSION.items():
        confused[patches & (out == code)] = other
    return confused.astype(landcover.dtype)


def landcover_for(options, landcover: Path, work: Path, choice: str) -> Path | None:
    """The land-cover raster a ``--landcover`` run passes as exclusion (None for "none"): the scene's
    ``landcover`` or its degraded copy, written into ``work``."""
    import rasterio

    if choice == "none":
        return None
    if choice == "exact":
        return Path(landcover)
    with rasterio.open(landcover) as src:
        profile, landcover = src.profile, src.read(1)
    path = work / "landcover_degraded.tif"
    work.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(degraded_landcover(landcover, options.seed), 1)
    return path


def _read(path):
    import rasterio

    with rasterio.open(path) as src:
        return src.read(1)


def _scores(truth, flagged, valid) -> dict:
    from landslide_plugin.core import evaluation

    conf = evaluation.confusion(truth, flagged, valid=valid)
    s = evaluation.scores(conf, zero_division=0.0)
    return {"precision": s.precision, "recall": s.recall, "f1": s.f1, "mcc": s.mcc, "iou": s.iou,
            "tp": conf.tp, "fp": conf.fp, "fn": conf.fn, "tn": conf.tn}


def score_scene(pair, masks: dict[str, Path]) -> dict:
    """Scores and confounder counts of each method's mask against the scene's truth."""
    import numpy as np

    from landslide_plugin.examples import scenarios

    truth = _read(pair.truth) == 1
    labels = scenarios.read_labels(pair.confounders)
    observed = ~labels["unobserved"]
    out = {"observed_share": float(observed.mean()), "truth_pixels": int(truth.sum()),
           "truth_pixels_observed": int((truth & observed).sum()),
           "label_pixels": {name: int((labels[name] & observed).sum()) for name in labels if name != "unobserved"},
           "methods": {}}
    for name, path in masks.items():
        mask = _read(path)
        flagged = mask == 1
        false_alarm = flagged & ~truth & observed
        item = {"observed": _scores(truth, flagged, observed), "all_pixels": _scores(truth, flagged, None),
                "flagged_share": float(flagged[observed].mean()),
                "false_alarms": {label: int((false_alarm & labels[label]).sum()) for label in FALSE_ALARM_LABELS},
                "false_alarms_total": int(false_alarm.sum()),
                "found": {label: (float((flagged & truth & labels[label] & observed).sum())
                                  / max(1, int((truth & labels[label] & observed).sum())))
                          for label in TRUTH_LABELS}}
        # False alarms on no confounder label at all (sensor noise, terrain, unlabelled change).
        any_label = np.zeros(truth.shape, dtype=bool)
        for label in FALSE_ALARM_LABELS:
            any_label |= labels[label]
        item["false_alarms"]["unlabelled"] = int((false_alarm & ~any_label).sum())
        out["methods"][name] = item
    return out


def run_scene(options, work: Path, landcover: str = "none") -> dict:
    from landslide_plugin.core import pipeline
    from landslide_plugin.examples import scenarios

    start = time.perf_counter()
    pair = scenarios.generate_scenario(scene_folder(options), options, reuse=True)
    generate_s = time.perf_counter() - start
    exclusion = landcover_for(options, pair.landcover, work.parent / "landcover", landcover)
    mapping = None
    if exclusion is not None:
        mapping = pipeline.MappingOptions()
        mapping = dataclasses.replace(mapping, masks=dataclasses.replace(mapping.masks,
                                                                         exclusion_classes=LANDCOVER_EXCLUDED))
    start = time.perf_counter()
    result = pipeline.map_landslides([str(pair.pre)], [str(pair.post)], work, mapping, dem=str(pair.dem),
                                     exclusion=str(exclusion) if exclusion else None, reference=str(pair.truth))
    map_s = time.perf_counter() - start
    # The reference study's clusterings on the stacks the run prepared (same grid, masks and sample).
    reference_options = pipeline.MappingOptions(
        methods=tuple(pipeline.Method.from_name(n) for n in REFERENCE_CLUSTERINGS), primary="kmeans3",
        clustering=pipeline.REFERENCE_STUDY_CLUSTERING, align=pipeline.AlignOptions(enabled=False))
    if exclusion is not None:
        reference_options = dataclasses.replace(reference_options, masks=mapping.masks)
    reference = pipeline.map_landslides(
        [str(work / "pre_stack.tif")], [str(work / "post_aligned.tif")], work.parent / "reference-study",
        reference_options, pre_scl=str(work / "pre_scl.tif"), post_scl=str(work / "post_aligned_scl.tif"),
        dem=str(pair.dem), exclusion=str(exclusion) if exclusion else None)
    masks = dict(result.masks)
    masks.update({f"ref:{name}": path for name, path in reference.masks.items()})
    scored = score_scene(pair, masks)
    labels = scenarios.read_labels(pair.confounders)
    # Every confounder the description declares must be in the full-size scene's labels.
    missing = [name for name in options.confounders
               if scenarios.ISSUE_LABELS.get(name) and not labels[scenarios.ISSUE_LABELS[name]].any()]
    for name, metrics in result.metrics.items():
        scored["methods"][name]["pipeline_metrics"] = {k: metrics.get(k) for k in ("precision", "recall", "f1", "mcc")}
    return {"scene": options.name, "options": options.as_dict(), "landscape": options.landscape,
            "season": options.season, "size": options.size, "true_shift": list(options.shift),
            "estimated_shift": list(result.shift_px or ()), "generate_s": generate_s, "map_s": map_s,
            "confounders": list(options.confounders), "declared_but_missing": missing,
            "warnings": list(result.warnings), **scored}


def summarise(scenes: list[dict]) -> dict:
    """Per method: mean and worst F1 and MCC (observed pixels), mean precision and recall; false alarms
    per confounder summed over the set."""
    summary = {}
    for method in METHODS:
        rows = [(s["scene"], s["methods"][method]["observed"]) for s in scenes if method in s["methods"]]
        if not rows:
            continue
        f1 = [r["f1"] for _, r in rows]
        mcc = [r["mcc"] for _, r in rows]
        worst_f1 = min(rows, key=lambda r: r[1]["f1"])
        worst_mcc = min(rows, key=lambda r: r[1]["mcc"])
        flagged = sum(s["methods"][method]["false_alarms_total"] for s in scenes)
        alarms = {label: sum(s["methods"][method]["false_alarms"][label] for s in scenes)
                  for label in (*FALSE_ALARM_LABELS, "unlabelled")}
        found = {label: _mean([s["methods"][method]["found"][label] for s in scenes
                               if s["label_pixels"].get(label, 0) > 0]) for label in TRUTH_LABELS}
        summary[method] = {
            "mean_f1": _mean(f1), "worst_f1": worst_f1[1]["f1"], "worst_f1_scene": worst_f1[0],
            "mean_mcc": _mean(mcc), "worst_mcc": worst_mcc[1]["mcc"], "worst_mcc_scene": worst_mcc[0],
            "mean_precision": _mean([r["precision"] for _, r in rows]),
            "mean_recall": _mean([r["recall"] for _, r in rows]),
            "mean_f1_all_pixels": _mean([s["methods"][method]["all_pixels"]["f1"] for s in scenes]),
            "false_alarms_total": flagged, "false_alarms": alarms, "found": found,
        }
    return summary


def _mean(values) -> float:
    values = list(values)
    return sum(values) / len(values) if values else float("nan")


def markdown(scenes: list[dict], summary: dict) -> str:
    """The tables for bench/README.md."""
    lines = ["| method | mean F1 | worst F1 (scene) | mean MCC | worst MCC (scene) | mean precision | mean recall |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for method, s in summary.items():
        lines.append(f"| {method} | {s['mean_f1']:.3f} | {s['worst_f1']:.3f} ({s['worst_f1_scene']}) | "
                     f"{s['mean_mcc']:.3f} | {s['worst_mcc']:.3f} ({s['worst_mcc_scene']}) | "
                     f"{s['mean_precision']:.3f} | {s['mean_recall']:.3f} |")
    lines += ["", "Per scene, F1 / MCC (observed pixels):", "",
              "| scene | px | landscape, season | shift px (true / found) | truth px | "
              + " | ".join(summary) + " |",
              "| --- | --- | --- | --- | --- | " + " | ".join("---" for _ in summary) + " |"]
    for s in scenes:
        est = s["estimated_shift"]
        shift = (f"{s['true_shift'][0]:+.1f},{s['true_shift'][1]:+.1f} / "
                 + (f"{est[0]:+.2f},{est[1]:+.2f}" if est else "-"))
        cells = " | ".join(f"{s['methods'][m]['observed']['f1']:.2f} / {s['methods'][m]['observed']['mcc']:.2f}"
                           for m in summary)
        lines.append(f"| {s['scene']} | {s['size']} | {s['landscape']}, {s['season']} | {shift} | "
                     f"{s['truth_pixels_observed']} | {cells} |")
    total_fp = {m: s["false_alarms_total"] for m, s in summary.items()}
    lines += ["", "False alarms per confounder, pixels summed over the set (share of the method's false alarms; "
              "labels overlap):", "",
              "| confounder | labelled px | " + " | ".join(summary) + " |",
              "| --- | --- | " + " | ".join("---" for _ in summary) + " |"]
    for label in (*FALSE_ALARM_LABELS, "unlabelled"):
        labelled = sum(s["label_pixels"].get(label, 0) for s in scenes) if label != "unlabelled" else ""
        counts = {m: summary[m]["false_alarms"][label] for m in summary}
        cells = " | ".join(f"{counts[m]} ({_share(counts[m], total_fp[m])})" for m in summary)
        lines.append(f"| {label.replace('_', ' ')} | {labelled} | {cells} |")
    lines.append("| all false alarms | | " + " | ".join(str(total_fp[m]) for m in summary) + " |")
    lines += ["", "Share of the truth found, mean over the scenes that have it:", "",
              "| truth label | " + " | ".join(summary) + " |", "| --- | " + " | ".join("---" for _ in summary) + " |"]
    for label in TRUTH_LABELS:
        lines.append(f"| {label.replace('_', ' ')} | "
                     + " | ".join(f"{summary[m]['found'][label]:.2f}" for m in summary) + " |")
    return "\n".join(lines)


def _share(part: int, total: int) -> str:
    return f"{100.0 * part / total:.0f} %" if total else "-"


def run(only: str = "", landcover: str = "none", seed_offset: int = 0) -> dict:
    from landslide_plugin.examples import scenarios

    wanted = [n.strip() for n in only.split(",") if n.strip()]
    chosen = [s for s in scenarios.SCENARIOS if not wanted or s.name in wanted]
    if wanted and len(chosen) != len(wanted):
        raise ValueError(f"unknown scenes in {only!r}; the scenes are {', '.join(scenarios.SCENARIO_NAMES)}")
    if seed_offset:
        chosen = [dataclasses.replace(s, seed=s.seed + int(seed_offset)) for s in chosen]
    scenes = []
    start = time.perf_counter()
    for options in chosen:
        with tempfile.TemporaryDirectory(prefix="bench-accuracy-") as work:
            scene = run_scene(options, Path(work) / "out", landcover)
        scenes.append(scene)
        cells = ", ".join(f"{m} {scene['methods'][m]['observed']['f1']:.2f}" for m in METHODS
                          if m in scene["methods"])
        print(f"  {options.name} ({options.size} px): generate {scene['generate_s']:.1f} s, map "
              f"{scene['map_s']:.1f} s; F1 {cells}", flush=True)
    summary = summarise(scenes)
    table = [{"method": m, "mean_f1": s["mean_f1"], "worst_f1": s["worst_f1"], "mean_mcc": s["mean_mcc"],
              "worst_mcc": s["worst_mcc"], "mean_precision": s["mean_precision"], "mean_recall": s["mean_recall"],
              "worst_scene": s["worst_f1_scene"]} for m, s in summary.items()]
    return {"scenes": scenes, "summary": summary, "table": table, "markdown": markdown(scenes, summary),
            "scenario_version": scenarios.SCENARIO_VERSION, "landcover": landcover, "seed_offset": int(seed_offset),
            "seconds_scenes": time.perf_counter() - start}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="", help="comma-separated scene names (default: every scene)")
    parser.add_argument("--markdown", action="store_true", help="print the README tables")
    parser.add_argument("--landcover", choices=LANDCOVER_CHOICES, default="none",
                        help="land-cover exclusion (classes 40, 50): none (the default bench), the generator's own "
                             "map, or a degraded copy; written to accuracy_landcover-<choice>.json")
    parser.add_argument("--seed-offset", type=int, default=0,
                        help="held-out scenes: every recipe's seed raised by this (other terrain, scars, clouds); "
                             "written to accuracy_seed+N.json")
    args = parser.parse_args()
    start = time.perf_counter()
    result = run(args.only, args.landcover, args.seed_offset)
    from run import machine

    result = {"benchmark": "accuracy", "machine": machine(), "seconds_total": time.perf_counter() - start, **result}
    (HERE / "results").mkdir(exist_ok=True)
    name = "accuracy.json" if args.landcover == "none" else f"accuracy_landcover-{args.landcover}.json"
    if args.seed_offset:
        name = name.replace(".json", f"_seed+{args.seed_offset}.json")
    (HERE / "results" / name).write_text(json.dumps(result, indent=2, default=str))
    if args.markdown:
        print(result["markdown"])
    else:
        from run import print_table

        print_table("accuracy", result["table"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
