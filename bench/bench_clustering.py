#!/usr/bin/env python3
"""Clustering a full Sentinel-2 tile pair: the plugin's way against the reference study's way.

Plugin: ``clustering.cluster_change`` (features and masks block by block, fit on a 200 000-pixel
sample, predict and write block by block). Reference study: every band read whole, NDVI/BSI of both
dates for every pixel, scikit-learn fitted on every valid pixel in float64, labels written at once.

Each measurement runs in its own Python process, which reports its wall time and its own peak
resident memory (``resource.getrusage(RUSAGE_SELF).ru_maxrss``; about 125 MB of it is the imported
libraries, and GDAL's block cache is fixed at 256 MB unless GDAL_CACHEMAX is set). The input pair is synthetic
(smooth fields, forest and scars with noise, 5 bands, 2 % no data) and written once per size.

Usage: bench/bench_clustering.py [--size 5490] [--methods kmeans,gmm] [--baseline kmeans,gmm]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

BANDS = ("B02", "B03", "B04", "B8A", "B11")
#: B02 B03 B04 B8A B11 of the synthetic surfaces
SPECTRA = {
    "forest": (0.03, 0.06, 0.03, 0.35, 0.15),
    "field_green": (0.04, 0.08, 0.05, 0.40, 0.20),
    "field_bare": (0.08, 0.10, 0.14, 0.22, 0.30),
    "debris": (0.10, 0.12, 0.16, 0.21, 0.33),
}


def write_pair(folder: Path, size: int, seed: int = 0) -> tuple[str, str]:
    """A pre/post reflectance stack pair of size x size px (float32, NaN no data), block by block."""
    import numpy as np
    import rasterio
    from rasterio.transform import from_origin

    from landslide_plugin.core import rasters

    paths = (str(folder / f"pre_{size}.tif"), str(folder / f"post_{size}.tif"))
    if all(os.path.exists(p) for p in paths):
        return paths
    like = {"crs": rasterio.crs.CRS.from_epsg(32637), "transform": from_origin(300000, 4200000, 20, 20),
            "width": size, "height": size}
    profile = rasters.geotiff_profile(like, len(BANDS))
    spectra = {k: np.asarray(v, np.float32)[:, None, None] for k, v in SPECTRA.items()}
    with rasters.atomic_output(paths[0]) as pre_tmp, rasters.atomic_output(paths[1]) as post_tmp:
        with rasterio.open(pre_tmp, "w", **profile) as pre, rasterio.open(post_tmp, "w", **profile) as post:
            for dst in (pre, post):
                for i, band in enumerate(BANDS):
                    dst.set_band_description(i + 1, band)
            for window in rasters.row_windows(size, size):
                rng = np.random.default_rng([seed, window.row_off])
                rows = np.arange(window.row_off, window.row_off + window.height)[:, None]
                cols = np.arange(size)[None, :]
                mountain = (np.sin(rows / 400.0) + np.cos(cols / 300.0)) > 0.3
                fields = ((rows // 25 + cols // 25) % 3 == 0) & ~mountain
                scars = mountain & (np.sin(rows / 9.0) * np.sin(cols / 7.0) > 0.93)
                before = np.where(mountain, spectra["forest"],
                                  np.where(fields, spectra["field_green"], spectra["field_bare"]))
                after = np.where(scars, spectra["debris"],
                                 np.where(fields, spectra["field_bare"], before))
                shape = (len(BANDS), window.height, size)
                before = (before * rng.normal(1, 0.05, shape)).astype(np.float32)
                after = (after * rng.normal(1, 0.05, shape)).astype(np.float32)
                edge = cols >= int(size * 0.98)
                before[:, np.broadcast_to(edge, before.shape[1:])] = np.nan
                after[:, np.broadcast_to(edge, after.shape[1:])] = np.nan
                pre.write(before, window=window)
                post.write(after, window=window)
    return paths


# -- the two ways, each run in a child process ------------------------------------------------------
def plugin_way(pre: str, post: str, out: str, method: str) -> dict:
    from landslide_plugin.core import detection

    result = detection.cluster_change(pre, post, cluster_path=out + "_clusters.tif", mask_path=out + "_mask.tif",
                                       probability_path=out + "_prob.tif" if method == "gmm" else None,
                                       method=method, n_clusters=3, seed=0)
    return {"landslide_pixels": result.landslide_pixels, "analysed_pixels": result.analysed_pixels}


def reference_way(pre: str, post: str, out: str, method: str) -> dict:
    """NDVI/BSI of both dates for every pixel, fitted on every valid pixel in float64, written whole."""
    import numpy as np
    import rasterio

    from landslide_plugin.core import indices, rasters

    features = []
    for path in (pre, post):
        with rasterio.open(path) as src:
            profile = src.profile
            bands = {name: rasters.read_reflectance(src, i + 1) for i, name in enumerate(BANDS)}
        features += [indices.ndvi(bands["B04"], bands["B8A"]),
                     indices.bare_soil_index(bands["B02"], bands["B04"], bands["B8A"], bands["B11"])]
        del bands
    matrix = np.stack([f.ravel() for f in features], axis=1).astype(np.float64)
    shape = features[0].shape
    del features
    valid = np.isfinite(matrix).all(axis=1)
    data = matrix[valid]
    if method == "kmeans":
        from sklearn.cluster import KMeans

        model = KMeans(n_clusters=3, random_state=0)
    else:
        from sklearn.mixture import GaussianMixture

        model = GaussianMixture(n_components=3, random_state=0)
    labels = np.full(matrix.shape[0], 255, np.uint8)
    labels[valid] = model.fit(data).predict(data)
    with rasters.atomic_output(out + "_reference.tif") as tmp, \
            rasterio.open(tmp, "w", **rasters.geotiff_profile(profile, 1, "uint8", 255)) as dst:
        dst.write(labels.reshape(shape), 1)
    return {"fitted_pixels": int(valid.sum())}


def _child(way: str, pre: str, post: str, out: str, method: str) -> None:
    start = time.perf_counter()
    extra = (plugin_way if way == "plugin" else reference_way)(pre, post, out, method)
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: kilobytes
    print(json.dumps({"seconds": seconds, "peak_mb": peak_mb, **extra}))


def measure(way: str, pre: str, post: str, out: str, method: str, timeout: float | None = None) -> dict:
    # GDAL's block cache defaults to 5 % of RAM and would dominate "peak memory" on a large machine:
    # fix it at 256 MB for both ways so figures compare across machines.
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               GDAL_CACHEMAX=os.environ.get("GDAL_CACHEMAX", "256"))
    try:
        done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", way, pre, post, out, method],
                              capture_output=True, text=True, env=env, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"error": f"did not finish in {timeout:.0f} s"}
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(size: int = 5490, methods: tuple[str, ...] = ("kmeans", "gmm"),
        baseline: tuple[str, ...] = ("kmeans", "gmm"), baseline_timeout: float = 900.0) -> dict:
    """Time and peak memory of both ways for each method on a size x size pair."""
    work = Path(tempfile.mkdtemp(prefix="bench_clustering_"))
    try:
        start = time.perf_counter()
        pre, post = write_pair(work, size)
        prepare_seconds = time.perf_counter() - start
        rows = []
        for method in methods:
            ours = measure("plugin", pre, post, str(work / f"plugin_{method}"), method)
            row = {"method": method, "size": size, "plugin_s": ours.get("seconds"),
                   "plugin_peak_mb": ours.get("peak_mb")}
            if method in baseline:
                ref = measure("reference", pre, post, str(work / f"reference_{method}"), method,
                              timeout=baseline_timeout)
                row.update(reference_s=ref.get("seconds"), reference_peak_mb=ref.get("peak_mb"),
                           reference_error=ref.get("error"))
                if ours.get("seconds") and ref.get("seconds"):
                    row["time_ratio"] = ref["seconds"] / ours["seconds"]
                    row["memory_ratio"] = ref["peak_mb"] / ours["peak_mb"]
            row["plugin_error"] = ours.get("error")
            rows.append(row)
        return {"size": size, "input_seconds": prepare_seconds, "table": rows}
    finally:
        import shutil

        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child(*sys.argv[2:7])
        return 0
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=5490, help="pair size in pixels (default: a full 20 m tile)")
    parser.add_argument("--methods", default="kmeans,gmm", help="plugin methods to time")
    parser.add_argument("--baseline", default="kmeans,gmm",
                        help="methods to time the reference way for ('' to skip; GMM on every pixel is slow)")
    args = parser.parse_args()
    result = run(args.size, tuple(m for m in args.methods.split(",") if m),
                 tuple(m for m in args.baseline.split(",") if m))
    for row in result["table"]:
        print(json.dumps(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
