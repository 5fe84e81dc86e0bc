#!/usr/bin/env python3
"""Method lab: detection variants on the scenario scenes without re-preparing them.

Each scene is prepared and co-registered once by the one-step pipeline (threshold only; cached in
``bench/cache/lab_<scene>/``); a variant is then a list of methods with mask options and post-rules,
scored exactly as ``bench_accuracy`` scores (pixels both dates observe). Used to justify method changes
with before/after tables on the whole set, never on one scene.

Usage: bench/method_lab.py [--only scene,scene] [--variants name,name] [--features]
"""
from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for _path in (str(ROOT), str(HERE)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

import bench_accuracy  # noqa: E402

CACHE = HERE / "cache"


def prepared(options):
    """(pair, folder with pre_stack.tif, post_aligned.tif, SCLs, slope.tif) for one scene, cached."""
    from landslide_plugin.core import pipeline
    from landslide_plugin.examples import scenarios

    pair = scenarios.generate_scenario(bench_accuracy.scene_folder(options), options, reuse=True)
    folder = CACHE / f"lab_{bench_accuracy.scene_folder(options).name}"
    if not (folder / "post_aligned.tif").exists():
        pipeline.map_landslides([str(pair.pre)], [str(pair.post)], folder,
                                pipeline.MappingOptions(methods=(pipeline.Method("threshold"),), primary="threshold"),
                                dem=str(pair.dem))
    return pair, folder


def run_variant(pair, folder: Path, variant: dict, out: Path) -> dict:
    """Detection with the variant's methods, masks and inputs (inside its optional ``context``, e.g. a patched
    constant), its post-rules on the masks, and the scores."""
    with variant.get("context", contextlib.nullcontext)():
        return _run_variant(pair, folder, variant, out)


def _run_variant(pair, folder: Path, variant: dict, out: Path) -> dict:
    from landslide_plugin.core import detection

    specs = variant["methods"]
    outputs = {s.name: detection.MethodOutputs(out / f"mask_{s.name}.tif") for s in specs}
    inputs = detection.DetectionInputs(folder / "pre_stack.tif", folder / "post_aligned.tif", folder / "pre_scl.tif",
                                       folder / "post_aligned_scl.tif", mask_options=variant["masks"](folder),
                                       **variant.get("inputs", {}))
    detection.detect(inputs, specs, outputs)
    masks = {name: o.mask for name, o in outputs.items()}
    for rule in variant.get("post", ()):
        for path in masks.values():
            rule(path, folder)
    return bench_accuracy.score_scene(pair, masks)


def table(results: dict[str, list[dict]]) -> str:
    lines = ["| variant | method | mean F1 | worst F1 | mean MCC | worst MCC |",
             "| --- | --- | --- | --- | --- | --- |"]
    for variant, scenes in results.items():
        names = list(scenes[0]["methods"])
        for name in names:
            f1 = [s["methods"][name]["observed"]["f1"] or 0.0 for s in scenes]
            mcc = [s["methods"][name]["observed"]["mcc"] or 0.0 for s in scenes]
            lines.append(f"| {variant} | {name} | {sum(f1) / len(f1):.3f} | {min(f1):.3f} | "
                         f"{sum(mcc) / len(mcc):.3f} | {min(mcc):.3f} |")
    return "\n".join(lines)


def main(variants: dict) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", default="")
    parser.add_argument("--variants", default="")
    parser.add_argument("--save", default="")
    args = parser.parse_args()
    from landslide_plugin.examples import scenarios

    chosen = [s for s in scenarios.SCENARIOS if not args.only or s.name in args.only.split(",")]
    names = [v for v in variants if not args.variants or v in args.variants.split(",")]
    results = {v: [] for v in names}
    start = time.perf_counter()
    for options in chosen:
        pair, folder = prepared(options)
        for v in names:
            out = CACHE / "lab_out" / options.name / v
            out.mkdir(parents=True, exist_ok=True)
            scored = run_variant(pair, folder, variants[v], out)
            scored["scene"] = options.name
            results[v].append(scored)
        per = "  ".join(f"{v}:" + ",".join(f"{n}={m['observed']['f1'] or 0:.2f}"
                                           for n, m in results[v][-1]["methods"].items()) for v in names)
        print(f"{options.name:34s} {per}", flush=True)
    print(table(results))
    print(f"{time.perf_counter() - start:.0f} s")
    if args.save:
        Path(args.save).write_text(json.dumps(results, indent=1, default=str))
    return 0
