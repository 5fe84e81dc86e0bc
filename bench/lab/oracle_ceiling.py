#!/usr/bin/env python3
"""What a vegetation-loss rule can reach on the scenario set: an oracle that flags exactly the truth pixels
the masks keep (NDVI before >= 0.3) and whose NDVI fell by more than 0.15, with the pixel slope rule
(slope >= 15 deg) and with every runout pixel kept; scored like bench_accuracy (pixels both dates observe).

It reads the truth, so it is a yardstick for the issue-15 tables in bench/README.md, never a method.
Run from the repo root after bench/method_lab.py has prepared the scenes: bench/lab/oracle_ceiling.py
"""
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import bench_accuracy  # noqa: E402
import method_lab  # noqa: E402
import numpy as np  # noqa: E402
import rasterio  # noqa: E402

from landslide_plugin.core import indices, rasters  # noqa: E402
from landslide_plugin.examples import scenarios  # noqa: E402

LOSS, VEGETATED, STEEP = -0.15, 0.3, 15.0


def ndvi(path) -> np.ndarray:
    with rasterio.open(path) as src:
        bands = {name: i + 1 for i, name in enumerate(src.descriptions)}
        return indices.ndvi(rasters.read_reflectance(src, bands["B04"]), rasters.read_reflectance(src, bands["B8A"]))


def main() -> int:
    scores = {"pixel_slope": [], "runout_kept": []}
    with tempfile.TemporaryDirectory() as tmp:
        for options in scenarios.SCENARIOS:
            pair, folder = method_lab.prepared(options)
            before, after = ndvi(folder / "pre_stack.tif"), ndvi(folder / "post_aligned.tif")
            with rasterio.open(folder / "slope.tif") as src:
                slope = src.read(1)
            with rasterio.open(pair.truth) as src:
                truth, profile = src.read(1) == 1, {**src.profile, "dtype": "uint8", "count": 1, "nodata": None}
            with np.errstate(invalid="ignore"):
                reachable = truth & (after - before < LOSS) & (before >= VEGETATED)
                maps = {"pixel_slope": reachable & (slope >= STEEP), "runout_kept": reachable}
            paths = {}
            for name, flagged in maps.items():
                paths[name] = Path(tmp) / f"{options.name}_{name}.tif"
                with rasterio.open(paths[name], "w", **profile) as dst:
                    dst.write(flagged.astype("uint8"), 1)
            scored = bench_accuracy.score_scene(pair, paths)
            for name in scores:
                scores[name].append(scored["methods"][name]["observed"]["f1"] or 0.0)
            print(f"{options.name:34s} " + "  ".join(f"{n}={v[-1]:.3f}" for n, v in scores.items()), flush=True)
    for name, values in scores.items():
        print(f"{name}: mean F1 {np.mean(values):.3f}, worst {min(values):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
