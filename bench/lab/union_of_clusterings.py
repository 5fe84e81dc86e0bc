#!/usr/bin/env python3
"""The pixels either default clustering flags (K-means 5 on the change OR GMM 5 on the change beyond the
surroundings; the plugin's "either" method, and the same union recomputed here) and those both flag, against
each alone, on the scenario set (issue 15). Runs the one-step defaults on the lab's prepared stacks
(co-registration off, as bench_accuracy's reference runs do) and scores like bench_accuracy.

Run from the repo root after bench/method_lab.py has prepared the scenes: bench/lab/union_of_clusterings.py
"""
import dataclasses
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import bench_accuracy  # noqa: E402
import method_lab  # noqa: E402
import numpy as np  # noqa: E402
import rasterio  # noqa: E402

from landslide_plugin.core import pipeline  # noqa: E402
from landslide_plugin.examples import scenarios  # noqa: E402


def main() -> int:
    f1: dict[str, list[float]] = {}
    mcc: dict[str, list[float]] = {}
    options = dataclasses.replace(pipeline.MappingOptions(), align=pipeline.AlignOptions(enabled=False))
    with tempfile.TemporaryDirectory() as tmp:
        for scene in scenarios.SCENARIOS:
            pair, folder = method_lab.prepared(scene)
            out = Path(tmp) / scene.name
            result = pipeline.map_landslides(
                [str(folder / "pre_stack.tif")], [str(folder / "post_aligned.tif")], out, options,
                pre_scl=str(folder / "pre_scl.tif"), post_scl=str(folder / "post_aligned_scl.tif"), dem=str(pair.dem))
            masks = dict(result.masks)
            with rasterio.open(masks["kmeans5"]) as src:
                kmeans, profile = src.read(1), src.profile
            with rasterio.open(masks["gmm5"]) as src:
                gmm = src.read(1)
            no_data = (kmeans == 255) | (gmm == 255)
            # "either" is the plugin's own method (``detection.EitherDetector``); checked against the union here.
            unions = {"either (recomputed)": (kmeans == 1) | (gmm == 1), "both": (kmeans == 1) & (gmm == 1)}
            for name, flagged in unions.items():
                masks[name] = out / f"mask_{name.split()[0]}_lab.tif"
                with rasterio.open(masks[name], "w", **profile) as dst:
                    dst.write(np.where(flagged, 1, np.where(no_data, 255, 0)).astype("uint8"), 1)
            scored = bench_accuracy.score_scene(pair, masks)
            for name, item in scored["methods"].items():
                f1.setdefault(name, []).append(item["observed"]["f1"] or 0.0)
                mcc.setdefault(name, []).append(item["observed"]["mcc"] or 0.0)
            print(f"{scene.name:34s} " + "  ".join(f"{n}={v[-1]:.3f}" for n, v in f1.items()), flush=True)
    print("| map | mean F1 | worst F1 | mean MCC | worst MCC |\n| --- | --- | --- | --- | --- |")
    for name in f1:
        print(f"| {name} | {np.mean(f1[name]):.3f} | {min(f1[name]):.3f} | {np.mean(mcc[name]):.3f} | "
              f"{min(mcc[name]):.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
