"""The reference study's way of mapping landslides, as a benchmark baseline (not part of the plugin).

What the Kahramanmaras study did (docs: /work/shared/notes/landslide-method.md), made runnable on the
same product ZIPs the plugin reads:

1. read every band of both dates whole into memory with rasterio, as float64, applying the product's
   BOA_ADD_OFFSET and quantification (DN 0 = no data -> NaN);
2. co-register: one ``cv2.findTransformECC`` (translation) on the full-resolution NIR band (B8A),
   single scale, identity start; then warp every post band with the estimated shift;
3. NDVI and BSI of both dates for every pixel; the dNDVI < -0.2 threshold mask;
4. scikit-learn KMeans and GaussianMixture (k = 2 and 3; ``n_init`` and every other setting at the
   scikit-learn default, ``random_state=0``) fitted on every valid pixel and predicting every pixel.

No SCL, slope, water or land-cover masks: the study had none. The landslide cluster is the one with
the most negative mean dNDVI (the study picked it by eye; this is the most favourable automatic rule).

Every step is timed (wall and CPU seconds) and its peak resident memory measured by resetting the
kernel's high-water mark (``/proc/self/clear_refs``) before it, so one process gives per-step peaks.
"""
from __future__ import annotations

import os
import resource
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

BANDS = ("B02", "B03", "B04", "B8A", "B11", "B12")
THRESHOLD = -0.2
CLUSTERINGS = (("kmeans", 2), ("kmeans", 3), ("gmm", 2), ("gmm", 3))


# -- measurement helpers ------------------------------------------------------------------------------
def _reset_peak_rss() -> bool:
    """Reset this process's peak-RSS counter (Linux >= 4.0); False where not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def peak_rss_mb() -> float:
    """Peak resident memory since the last reset (VmHWM), else since the start (ru_maxrss)."""
    try:
        return _status_mb("VmHWM")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class StepTimer:
    """Times named steps of one process: wall, CPU (all threads) and peak RSS of each."""

    def __init__(self):
        self.steps: dict[str, dict] = {}
        self.per_step_peaks = _reset_peak_rss()

    def run(self, name: str, function: Callable, *args, **kwargs):
        _reset_peak_rss()
        wall, cpu = time.perf_counter(), _cpu_seconds()
        value = function(*args, **kwargs)
        self.steps[name] = {"seconds": time.perf_counter() - wall, "cpu_seconds": _cpu_seconds() - cpu,
                            "peak_mb": peak_rss_mb()}
        return value


# -- the study's steps ----------------------------------------------------------------------------------
def read_product(product: str | os.PathLike, bands: Sequence[str] = BANDS) -> dict[str, np.ndarray]:
    """Every band of one product whole, float64 reflectance (offset applied), NaN where DN is 0."""
    import rasterio

    from landslide_plugin.core.products import read_product_info

    info = read_product_info(product)
    out = {}
    for band in bands:
        path, resolution = info.band_file(band)
        if resolution != 20:
            raise ValueError(f"{band} of {info.name} is at {resolution} m; the baseline reads 20 m bands only")
        with rasterio.open(path) as src:
            dn = src.read(1)
        values = (dn.astype(np.float64) + info.offset(band)) / info.quantification
        values[dn == 0] = np.nan
        out[band] = values
        del dn
    return out


def _standardised(image: np.ndarray) -> np.ndarray:
    filled = np.where(np.isfinite(image), image, np.nanmean(image))
    return ((filled - filled.mean()) / filled.std()).astype(np.float32)


def ecc_translation(reference: np.ndarray, moving: np.ndarray) -> tuple[float, float, float]:
    """(dx, dy, correlation) by one full-resolution ECC; (dx, dy) moves the moving image onto the reference."""
    import cv2

    criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 100, 1e-4)
    correlation, warp = cv2.findTransformECC(_standardised(reference), _standardised(moving),
                                             np.eye(2, 3, dtype=np.float32), cv2.MOTION_TRANSLATION, criteria, None, 1)
    return float(warp[0, 2]), float(warp[1, 2]), float(correlation)


def warp_bands(bands: dict[str, np.ndarray], dx: float, dy: float) -> dict[str, np.ndarray]:
    """Each band resampled (bilinear) so that it lies on the reference grid; outside -> NaN."""
    import cv2

    matrix = np.array([[1, 0, dx], [0, 1, dy]], np.float64)
    out = {}
    for name, values in bands.items():
        height, width = values.shape
        out[name] = cv2.warpAffine(values, matrix, (width, height), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                   borderMode=cv2.BORDER_CONSTANT, borderValue=np.nan)
    return out


def ndvi(bands: dict[str, np.ndarray]) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return (bands["B8A"] - bands["B04"]) / (bands["B8A"] + bands["B04"])


def bsi(bands: dict[str, np.ndarray]) -> np.ndarray:
    swir_red = bands["B11"] + bands["B04"]
    nir_blue = bands["B8A"] + bands["B02"]
    with np.errstate(divide="ignore", invalid="ignore"):
        return (swir_red - nir_blue) / (swir_red + nir_blue)


def features(pre: dict[str, np.ndarray], post: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(matrix of NDVI/BSI pre and post for every pixel, valid row flags, dNDVI image)."""
    ndvi_pre, ndvi_post = ndvi(pre), ndvi(post)
    matrix = np.stack([ndvi_pre.ravel(), bsi(pre).ravel(), ndvi_post.ravel(), bsi(post).ravel()], axis=1)
    valid = np.isfinite(matrix).all(axis=1)
    return matrix, valid, ndvi_post - ndvi_pre


def cluster(matrix: np.ndarray, valid: np.ndarray, dndvi: np.ndarray, kind: str, k: int, seed: int = 0) -> np.ndarray:
    """Landslide mask (bool image) from a model fitted on every valid pixel; landslide = lowest mean dNDVI."""
    if kind == "kmeans":
        from sklearn.cluster import KMeans

        model = KMeans(n_clusters=k, random_state=seed)
    elif kind == "gmm":
        from sklearn.mixture import GaussianMixture

        model = GaussianMixture(n_components=k, random_state=seed)
    else:
        raise ValueError(f"unknown clustering {kind!r}; use kmeans or gmm")
    data = matrix[valid]
    labels = model.fit(data).predict(data)
    change = dndvi.ravel()[valid]
    means = [float(change[labels == c].mean()) if np.any(labels == c) else np.inf for c in range(k)]
    mask = np.zeros(dndvi.size, bool)
    mask[valid] = labels == int(np.argmin(means))
    return mask.reshape(dndvi.shape)


def f1_against(truth: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """Landslide-class precision, recall, F1 over every pixel where the truth is 0 or 1."""
    known = truth <= 1
    positive, flagged = (truth == 1) & known, predicted.astype(bool) & known
    tp = int(np.count_nonzero(positive & flagged))
    fp, fn = int(np.count_nonzero(flagged)) - tp, int(np.count_nonzero(positive)) - tp
    precision = tp / max(1, tp + fp)
    recall = tp / max(1, tp + fn)
    f1 = 2 * tp / max(1, 2 * tp + fp + fn)
    return {"precision": precision, "recall": recall, "f1": f1, "tp": tp, "fp": fp, "fn": fn}


def run_reference_study(pre: str | os.PathLike, post: str | os.PathLike, truth: str | os.PathLike | None = None,
                        clusterings: Sequence[tuple[str, int]] = CLUSTERINGS) -> dict:
    """The whole baseline in this process; per-step times and peaks, shift, and F1 against ``truth``."""
    import rasterio

    timer = StepTimer()
    pre_bands = timer.run("read", read_product, pre)
    post_bands = timer.run("read_post", read_product, post)
    dx, dy, correlation = timer.run("align_ecc", ecc_translation, pre_bands["B8A"], post_bands["B8A"])
    post_bands = timer.run("align_warp", warp_bands, post_bands, dx, dy)
    matrix, valid, dndvi = timer.run("indices", features, pre_bands, post_bands)
    del pre_bands, post_bands
    masks = {"threshold": timer.run("threshold", lambda: dndvi < THRESHOLD)}
    for kind, k in clusterings:
        masks[f"{kind}{k}"] = timer.run(f"{kind}{k}", cluster, matrix, valid, dndvi, kind, k)
    scores = {}
    if truth is not None:
        with rasterio.open(truth) as src:
            reference = src.read(1)
        scores = {name: f1_against(reference, mask) for name, mask in masks.items()}
    steps = timer.steps
    # The study reads both dates in one go: one "read" step, as the plugin's two prepare steps together.
    read_post = steps.pop("read_post")
    steps["read"] = {"seconds": steps["read"]["seconds"] + read_post["seconds"],
                     "cpu_seconds": steps["read"]["cpu_seconds"] + read_post["cpu_seconds"],
                     "peak_mb": max(steps["read"]["peak_mb"], read_post["peak_mb"])}
    ecc, warp = steps.pop("align_ecc"), steps.pop("align_warp")
    steps["align"] = {"seconds": ecc["seconds"] + warp["seconds"],
                      "cpu_seconds": ecc["cpu_seconds"] + warp["cpu_seconds"],
                      "peak_mb": max(ecc["peak_mb"], warp["peak_mb"]), "ecc_seconds": ecc["seconds"]}
    order = ["read", "align", "indices", "threshold"] + [f"{kind}{k}" for kind, k in clusterings]
    return {"steps": {name: steps[name] for name in order}, "per_step_peaks": timer.per_step_peaks,
            "shift_px": [dx, dy], "correlation": correlation, "valid_pixels": int(valid.sum()),
            "scores": scores, "size": int(dndvi.shape[0])}


def decode_floor(products: Sequence[str | os.PathLike], bands: Sequence[str] = (*BANDS, "SCL"),
                 threads: str = "ALL_CPUS") -> dict:
    """Only decode: every band of every product read once, whole, with nothing done to it."""
    import rasterio

    from landslide_plugin.core.products import read_product_info

    start, cpu = time.perf_counter(), _cpu_seconds()
    pixels = 0
    with rasterio.Env(GDAL_NUM_THREADS=threads):
        for product in products:
            info = read_product_info(product)
            for band in bands:
                with rasterio.open(info.band_file(band)[0]) as src:
                    pixels += src.read(1).size
    return {"seconds": time.perf_counter() - start, "cpu_seconds": _cpu_seconds() - cpu, "pixels": pixels,
            "bands": len(bands) * len(products), "threads": threads, "peak_mb": peak_rss_mb(),
            "source": [Path(p).name for p in products]}
