#!/usr/bin/env python3
"""Scar edges by linear unmixing (issue 15, sixth pass): how much of a mapped pixel the scar next to it covers,
estimated from the reflectance, and what perfect edges would give.

Runs the one-step defaults once per scene on the lab's prepared stacks (cached in
bench/cache/lab_out/defaults_now), then, on the "either" map:
- "oracle edge": inside one pixel of a truth outline the map is replaced by the truth (near the map) - the
  ceiling of any edge rule;
- "unmix rR >= T": pixels kept where the share the scar covers (the plugin's ``indices.scar_cover`` with core
  radius R, on the six bands) is at least T;
- "unmix r2 grow": also adds unmapped neighbours of the map that lost NDVI and unmix at >= 0.5.
Scored like bench_accuracy (pixels both dates observe). Run from the repo root: bench/lab/edge_unmixing.py
"""
import dataclasses
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import method_lab  # noqa: E402
import numpy as np  # noqa: E402
import rasterio  # noqa: E402
from scipy import ndimage  # noqa: E402

from landslide_plugin.core import indices, pipeline  # noqa: E402
from landslide_plugin.examples import scenarios  # noqa: E402

OUT = method_lab.CACHE / "lab_out" / "defaults_now"
BANDS = ("B02", "B03", "B04", "B8A", "B11", "B12")


def defaults(scene):
    pair, folder = method_lab.prepared(scene)
    out = OUT / scene.name
    if not (out / "mask_either.tif").exists():
        options = dataclasses.replace(pipeline.MappingOptions(), align=pipeline.AlignOptions(enabled=False))
        pipeline.map_landslides([str(folder / "pre_stack.tif")], [str(folder / "post_aligned.tif")], out, options,
                                pre_scl=str(folder / "pre_scl.tif"), post_scl=str(folder / "post_aligned_scl.tif"),
                                dem=str(pair.dem))
    return pair, folder, out


def read(path, band=None):
    with rasterio.open(path) as src:
        return src.read() if band is None else src.read(band)


def reflectance(path) -> dict[str, np.ndarray]:
    """Bands by name: the aligned stack is float32 reflectance already, the pre stack DNs with the L2A offset."""
    raw = read(path)
    if raw.dtype.kind == "f":
        values = raw.astype(np.float32)
    else:
        values = (raw.astype(np.float32) - 1000.0) / 10000.0
        values[:, raw[0] == 0] = np.nan
    return dict(zip(BANDS, values))


def f1_of(flag, truth, observed):
    tp = np.count_nonzero(flag & truth & observed)
    fp = np.count_nonzero(flag & ~truth & observed)
    fn = np.count_nonzero(~flag & truth & observed)
    return 2 * tp / max(1, 2 * tp + fp + fn), tp, fp, fn


def main():
    sums = {}
    for scene in scenarios.SCENARIOS:
        pair, folder, out = defaults(scene)
        truth = read(pair.truth, 1) == 1
        labels = scenarios.read_labels(pair.confounders)
        observed = ~labels["unobserved"]
        pre, post = reflectance(folder / "pre_stack.tif"), reflectance(folder / "post_aligned.tif")
        with np.errstate(all="ignore"):
            dndvi = (indices.ndvi(post["B04"], post["B8A"])
                     - indices.ndvi(pre["B04"], pre["B8A"]))
        raw = read(out / "mask_either.tif", 1)
        mapped = raw == 1
        near = ndimage.binary_dilation(mapped, iterations=2)
        variants = {"either": mapped,
                    "either oracle edge": (mapped & ~labels["scar_edge"]) | (truth & labels["scar_edge"] & near)}
        valid = np.isfinite(dndvi)
        for radius in (1, 2, 4):
            cover = indices.scar_cover(pre, post, dndvi, valid, radius)
            for threshold in (0.5, 0.6, 0.7):
                variants[f"unmix r{radius} >= {threshold}"] = mapped & (cover >= threshold)
            if radius == 2:
                ring = ndimage.binary_dilation(mapped) & ~mapped & (raw == 0) & (dndvi < -0.1)
                variants["unmix r2 grow"] = (mapped | ring) & (cover >= 0.5)
        line = [scene.name]
        for name, flag in variants.items():
            score = f1_of(flag, truth, observed)
            sums.setdefault(name, []).append(score)
            line.append(f"{name}={score[0]:.3f}")
        print("  ".join(line), flush=True)
    print("| variant | mean F1 | worst F1 | TP | FP | FN |\n| --- | --- | --- | --- | --- | --- |")
    for name, scores in sums.items():
        f = [s[0] for s in scores]
        print(f"| {name} | {np.mean(f):.3f} | {min(f):.3f} | {sum(s[1] for s in scores)} | "
              f"{sum(s[2] for s in scores)} | {sum(s[3] for s in scores)} |")


if __name__ == "__main__":
    main()
