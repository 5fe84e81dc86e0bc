#!/usr/bin/env python3
"""Mixtures of other counts (issue 15, seventh pass): does what made the default GMM 5 better - the change beyond
the surroundings (``defaults.GMM_FEATURES``) and several starts (``defaults.GMM_STARTS``) - hold for the GMM 3, 4
and 6 a user adds to the one-step run? Runs the one-step pipeline (its masks and rules) on the lab's prepared
stacks with GMM 3, 4 and 6 in four recipes (raw change and one or three starts; local change and one or three
starts) and scores like bench_accuracy. Run from the repo root:
bench/lab/gmm_counts_starts.py [--seed-offset N]
"""
import argparse
import dataclasses
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import bench_accuracy  # noqa: E402
import method_lab  # noqa: E402
import numpy as np  # noqa: E402

from landslide_plugin.core import defaults, pipeline  # noqa: E402
from landslide_plugin.core.detection import MethodSpec  # noqa: E402
from landslide_plugin.examples import scenarios  # noqa: E402

COUNTS = (3, 4, 6)
RECIPES = {
    "raw, 1 start": {},
    "raw, 3 starts": {"starts": defaults.GMM_STARTS},
    "local, 1 start": {"features": defaults.GMM_FEATURES},
    "local, 3 starts": {"features": defaults.GMM_FEATURES, "starts": defaults.GMM_STARTS},
}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed-offset", type=int, default=0)
    args = parser.parse_args()
    rows = {}
    for scene in scenarios.SCENARIOS:
        if args.seed_offset:
            scene = dataclasses.replace(scene, seed=scene.seed + args.seed_offset)
        pair, folder = method_lab.prepared(scene)
        cells = []
        for recipe, settings in RECIPES.items():
            out = method_lab.CACHE / "lab_out" / "gmm_counts" / f"{scene.name}_{scene.seed}" / recipe.replace(", ", "_")
            methods = tuple(MethodSpec("gmm", k, **settings) for k in COUNTS)
            if not (out / f"mask_gmm{COUNTS[-1]}.tif").exists():
                options = dataclasses.replace(pipeline.MappingOptions(), methods=methods, primary=methods[0].name,
                                              align=pipeline.AlignOptions(enabled=False))
                pipeline.map_landslides([str(folder / "pre_stack.tif")], [str(folder / "post_aligned.tif")], out,
                                        options, pre_scl=str(folder / "pre_scl.tif"),
                                        post_scl=str(folder / "post_aligned_scl.tif"), dem=str(pair.dem))
            scored = bench_accuracy.score_scene(pair, {m.name: out / f"mask_{m.name}.tif" for m in methods})
            for m in methods:
                f1 = scored["methods"][m.name]["observed"]["f1"] or 0.0
                rows.setdefault((recipe, m.name), []).append(f1)
                cells.append(f"{f1:.2f}")
        print(f"{scene.name:34s} " + " ".join(cells), flush=True)
    print("| recipe | method | mean F1 | worst F1 |\n| --- | --- | --- | --- |")
    for (recipe, name), f1 in rows.items():
        print(f"| {recipe} | {name.upper()} | {np.mean(f1):.3f} | {np.min(f1):.3f} |")


if __name__ == "__main__":
    main()
