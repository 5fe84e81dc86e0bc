#!/usr/bin/env python3
"""Accuracy of every method on the scenario set: landslide F1 and MCC on scenes nobody tuned a method to.

For each scene of ``landslide_plugin.examples.scenarios.SCENARIOS`` (generated once into ``bench/cache/``,
keyed by the generator and scenario versions) this runs ``pipeline.map_landslides`` as the one-step
algorithm does by default - products in, every default method (threshold, kmeans5, gmm5), the scene's
DEM, masks on - with the truth as reference, and scores each method's mask.

Scoring: on every pixel both products observe (``unobserved`` label clear: the SCL of neither date is
no data, defective, cloud, cloud shadow, cirrus or snow; the post SCL moved back by the true shift), the
same pixels for every method; a pixel a method masks out itself (its 255) counts as "not landslide", so
a method cannot raise its score by masking more. The pipeline's own figures (``metrics.json``: pixels
its masks observe) and the scores on all pixels are in the JSON too.

Confounders: for each label of ``confounders.tif`` the pixels each method flags there that are not
landslides (false alarms), and for the labels on the truth (runout, small scars, scar edges) the share
of those truth pixels each method finds.

Usage: bench/bench_accuracy.py [--only scene,scene] [--markdown]      bench/run.py --only accuracy
"""
from __future__ import annotations

import argparse
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
METHODS = ("threshold", "kmeans5", "gmm5", "ref:kmeans2", "ref:kmeans3", "ref:gmm2", "ref:gmm3")
REFERENCE_CLUSTERINGS = ("kmeans2", "kmeans3", "gmm2", "gmm3")
#: Confounders whose flagged pixels are false alarms (the rest are the truth's own labels).
FALSE_ALARM_LABELS = ("harvested_field", "reservoir_shore", "burn", "clearcut", "browning", "greening", "snow",
                      "haze", "cloud_shadow", "terrain_shading", "scar_edge")
#: Labels on the truth: how much of it each method finds.
TRUTH_LABELS = ("runout", "small_scar", "scar_edge")


def scene_folder(options) -> Path:
    from landslide_plugin.examples import example_data, scenarios

    return CACHE / f"scenario_{options.name}_g{example_data.GENERATOR_VERSION}s{scenarios.SCENARIO_VERSION}"


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


def run_scene(options, work: Path) -> dict:
    from landslide_plugin.core import pipeline
    from landslide_plugin.examples import scenarios

    start = time.perf_counter()
    pair = scenarios.generate_scenario(scene_folder(options), options, reuse=True)
    generate_s = time.perf_counter() - start
    start = time.perf_counter()
    result = pipeline.map_landslides([str(pair.pre)], [str(pair.post)], work, dem=str(pair.dem),
                                     reference=str(pair.truth))
    map_s = time.perf_counter() - start
    # The reference study's clusterings on the stacks the run prepared (same grid, masks and sample).
    reference = pipeline.map_landslides(
        [str(work / "pre_stack.tif")], [str(work / "post_aligned.tif")], work.parent / "reference-study",
        pipeline.MappingOptions(methods=tuple(pipeline.Method.from_name(n) for n in REFERENCE_CLUSTERINGS),
                                primary="kmeans3", clustering=pipeline.REFERENCE_STUDY_CLUSTERING,
                                align=pipeline.AlignOptions(enabled=False)),
        pre_scl=str(work / "pre_scl.tif"), post_scl=str(work / "post_aligned_scl.tif"), dem=str(pair.dem))
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


def run(only: str = "") -> dict:
    from landslide_plugin.examples import scenarios

    wanted = [n.strip() for n in only.split(",") if n.strip()]
    chosen = [s for s in scenarios.SCENARIOS if not wanted or s.name in wanted]
    if wanted and len(chosen) != len(wanted):
        raise ValueError(f"unknown scenes in {only!r}; the scenes are {', '.join(scenarios.SCENARIO_NAMES)}")
    scenes = []
    start = time.perf_counter()
    for options in chosen:
        with tempfile.TemporaryDirectory(prefix="bench-accuracy-") as work:
            scene = run_scene(options, Path(work) / "out")
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
            "scenario_version": scenarios.SCENARIO_VERSION, "seconds_scenes": time.perf_counter() - start}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="", help="comma-separated scene names (default: every scene)")
    parser.add_argument("--markdown", action="store_true", help="print the README tables")
    args = parser.parse_args()
    start = time.perf_counter()
    result = run(args.only)
    from run import machine

    result = {"benchmark": "accuracy", "machine": machine(), "seconds_total": time.perf_counter() - start, **result}
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "accuracy.json").write_text(json.dumps(result, indent=2, default=str))
    if args.markdown:
        print(result["markdown"])
    else:
        from run import print_table

        print_table("accuracy", result["table"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
