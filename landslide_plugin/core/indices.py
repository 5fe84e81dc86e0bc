"""Spectral indices and pre/post change features, on arrays of one block and written block by block.

Every function returns float32 with NaN = no data: where an input is NaN, where a denominator is
(nearly) zero (``|den| < 1e-6``), never ``inf``.

Bounding (``clip=True``, the default): reflectances are floored at 0 before a ratio is formed, and
the result is clipped to the index's range. After the Level-2A offset dark water and shadow give
reflectances near zero or slightly negative; a ratio of two such numbers reaches +-3000 and more, and
a handful of those pixels captures whole K-means clusters. A negative surface reflectance is 0 plus
noise, so flooring at 0 is the physical reading; a normalised difference of two non-negative numbers
lies in [-1, 1], and the clip only removes rounding. Pixels whose bands are all at or below 0 after
the floor get NaN (no signal to form a ratio), not an arbitrary +-1.
"""
from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Mapping, Sequence

import numpy as np
import rasterio

from . import rasters

#: Smallest denominator magnitude a ratio is formed with; below it the pixel is NaN.
MIN_DENOMINATOR = 1e-6

#: rdNDVI = dNDVI / sqrt(NDVI_pre + NDVI_post) is unbounded where the sum approaches 0. For NDVIs in
#: [0, 1] its magnitude never exceeds sqrt(2); clip=True bounds it there.
RDNDVI_BOUND = math.sqrt(2.0)

#: Default feature set: NDVI and BSI of both dates and their differences.
FEATURES = ("NDVI_pre", "BSI_pre", "NDVI_post", "BSI_post", "dNDVI", "dBSI")
#: Every feature change_features can compute.
ALL_FEATURES = FEATURES + ("NDWI_pre", "NDWI_post", "rdNDVI", "dNDWI", "VIS_pre", "VIS_post", "dVIS", "SWIR_pre",
                           "SWIR_post", "dSWIR", "NDSI_pre", "NDSI_post", "dNDSI")
#: Single-date indices write_indices can compute. VIS is the mean visible reflectance (B02, B03, B04):
#: fresh scars brighten in the visible, burns, shadows and wet ground darken; SWIR is the SWIR-1 (B11)
#: reflectance, which haze barely changes; NDSI the snow index (snow-free land is below about -0.2).
INDICES = ("NDVI", "BSI", "NDWI", "VIS", "SWIR", "NDSI")

#: Bands the default pipeline reads (blue, green, red, narrow NIR, SWIR-1).
REQUIRED_BANDS = ("B02", "B03", "B04", "B8A", "B11")

#: Bands each single-date index needs.
INDEX_BANDS = {
    "NDVI": ("B04", "B8A"),
    "BSI": ("B02", "B04", "B8A", "B11"),
    "NDWI": ("B03", "B8A"),
    "VIS": ("B02", "B03", "B04"),
    "SWIR": ("B11",),
    "NDSI": ("B03", "B11"),
}

#: Single-date indices each feature is derived from.
_FEATURE_INDICES = {
    "NDVI_pre": ("NDVI",), "NDVI_post": ("NDVI",), "dNDVI": ("NDVI",), "rdNDVI": ("NDVI",),
    "BSI_pre": ("BSI",), "BSI_post": ("BSI",), "dBSI": ("BSI",),
    "NDWI_pre": ("NDWI",), "NDWI_post": ("NDWI",), "dNDWI": ("NDWI",),
    "VIS_pre": ("VIS",), "VIS_post": ("VIS",), "dVIS": ("VIS",),
    "SWIR_pre": ("SWIR",), "SWIR_post": ("SWIR",), "dSWIR": ("SWIR",),
    "NDSI_pre": ("NDSI",), "NDSI_post": ("NDSI",), "dNDSI": ("NDSI",),
}


# -- indices of one date ------------------------------------------------------------------------------
def _as_float(array) -> np.ndarray:
    return np.asarray(array, dtype=np.float32)


def _floor(array: np.ndarray) -> np.ndarray:
    # np.maximum propagates NaN (np.fmax would not), so no data stays no data.
    return np.maximum(array, np.float32(0.0))


def _normalised_difference(a, b, *, clip: bool) -> np.ndarray:
    """(a - b) / (a + b), NaN where |a + b| < MIN_DENOMINATOR or an input is NaN."""
    a, b = _as_float(a), _as_float(b)
    if clip:
        a, b = _floor(a), _floor(b)
    numerator = a - b
    denominator = a + b
    bad = ~(np.abs(denominator) >= MIN_DENOMINATOR)  # also True where NaN
    with np.errstate(divide="ignore", invalid="ignore"):
        result = numerator / np.where(bad, np.float32(1.0), denominator)
    result = np.where(bad, np.float32(np.nan), result).astype(np.float32, copy=False)
    if clip:
        np.clip(result, -1.0, 1.0, out=result)
    return result


def ndvi(red, nir, *, clip: bool = True) -> np.ndarray:
    """NDVI = (NIR - red) / (NIR + red), with B8A as NIR and B04 as red."""
    return _normalised_difference(nir, red, clip=clip)


def bare_soil_index(blue, red, nir, swir1, *, clip: bool = True) -> np.ndarray:
    """BSI = ((SWIR1 + red) - (NIR + blue)) / ((SWIR1 + red) + (NIR + blue)), with B11 as SWIR-1."""
    blue, red, nir, swir1 = (_as_float(x) for x in (blue, red, nir, swir1))
    if clip:
        blue, red, nir, swir1 = (_floor(x) for x in (blue, red, nir, swir1))
    # Floors already applied; the sums of non-negative bands are non-negative.
    return _normalised_difference(swir1 + red, nir + blue, clip=clip)


def visible_brightness(blue, green, red) -> np.ndarray:
    """Mean visible reflectance (B02, B03, B04), negatives floored at 0; NaN where any band is NaN."""
    return ((_floor(_as_float(blue)) + _floor(_as_float(green)) + _floor(_as_float(red))) / 3.0).astype(np.float32)


def ndwi(green, nir, *, clip: bool = True) -> np.ndarray:
    """NDWI (McFeeters 1996) = (green - NIR) / (green + NIR), with B03 and B8A; water is above 0."""
    return _normalised_difference(green, nir, clip=clip)


def ndsi(green, swir1, *, clip: bool = True) -> np.ndarray:
    """NDSI = (green - SWIR-1) / (green + SWIR-1), with B03 and B11: snow reflects the green and absorbs the SWIR
    (0.4 and above where snow covers the ground, about 0 where it covers a third of it); snow-free vegetation,
    soil and rock are below about -0.2."""
    return _normalised_difference(green, swir1, clip=clip)


def relative_dndvi(ndvi_pre, ndvi_post, *, clip: bool = True) -> np.ndarray:
    """rdNDVI = (post - pre) / sqrt(pre + post), NaN where pre + post <= 0 (or below 1e-6).

    With ``clip`` the result is bounded to +-sqrt(2), its range for NDVIs in [0, 1].
    """
    pre, post = _as_float(ndvi_pre), _as_float(ndvi_post)
    total = pre + post
    bad = ~(total >= MIN_DENOMINATOR)
    with np.errstate(divide="ignore", invalid="ignore"):
        result = (post - pre) / np.sqrt(np.where(bad, np.float32(1.0), total))
    result = np.where(bad, np.float32(np.nan), result).astype(np.float32, copy=False)
    if clip:
        np.clip(result, -RDNDVI_BOUND, RDNDVI_BOUND, out=result)
    return result


def difference(pre, post) -> np.ndarray:
    """post - pre as float32 (NaN where either is NaN)."""
    return (_as_float(post) - _as_float(pre)).astype(np.float32, copy=False)


# -- which bands a request needs ----------------------------------------------------------------------
def check_names(names: Sequence[str], known: Sequence[str], what: str) -> tuple[str, ...]:
    if isinstance(names, str):
        names = (names,)
    names = tuple(names)
    if not names:
        raise ValueError(f"no {what} requested; choose among {', '.join(known)}")
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown {what} {', '.join(unknown)}; choose among {', '.join(known)}")
    if len(set(names)) != len(names):
        raise ValueError(f"{what} requested twice: {', '.join(names)}")
    return names


def normalise_index_names(indices: Sequence[str]) -> tuple[str, ...]:
    """Index names in canonical spelling ("ndvi" -> "NDVI"); ValueError for unknown ones."""
    if isinstance(indices, str):
        indices = (indices,)
    return check_names([str(i).strip().upper() for i in indices], INDICES, "index")


def bands_for_indices(indices: Sequence[str]) -> tuple[str, ...]:
    """The bands needed for ``indices``, in REQUIRED_BANDS order."""
    needed = {band for name in normalise_index_names(indices) for band in INDEX_BANDS[name]}
    return tuple(b for b in REQUIRED_BANDS if b in needed)


def indices_for_features(names: Sequence[str]) -> tuple[str, ...]:
    names = check_names(names, ALL_FEATURES, "feature")
    needed = {index for name in names for index in _FEATURE_INDICES[name]}
    return tuple(i for i in INDICES if i in needed)


def bands_for_features(names: Sequence[str] = FEATURES) -> tuple[str, ...]:
    """The bands needed (on both dates) for the change features ``names``."""
    return bands_for_indices(indices_for_features(names))


# -- block-level computations ------------------------------------------------------------------------
def band_of(block: Mapping[str, np.ndarray], name: str, date: str) -> np.ndarray:
    try:
        return block[name]
    except KeyError:
        have = ", ".join(block) or "none"
        raise ValueError(f"band {name} of the {date} image is needed but missing (bands given: {have})") from None


def compute_indices(block: Mapping[str, np.ndarray], indices: Sequence[str] = INDICES, *,
                    clip: bool = True, date: str = "") -> dict[str, np.ndarray]:
    """Single-date indices of one block; ``block`` maps band names (B02, B03, ...) to reflectance."""
    out = {}
    for name in normalise_index_names(indices):
        if name == "NDVI":
            out[name] = ndvi(band_of(block, "B04", date), band_of(block, "B8A", date), clip=clip)
        elif name == "BSI":
            out[name] = bare_soil_index(band_of(block, "B02", date), band_of(block, "B04", date),
                                        band_of(block, "B8A", date), band_of(block, "B11", date), clip=clip)
        elif name == "VIS":
            out[name] = visible_brightness(band_of(block, "B02", date), band_of(block, "B03", date),
                                           band_of(block, "B04", date))
        elif name == "SWIR":  # SWIR-1 reflectance: bare soil and rock brighten, haze barely reaches it
            out[name] = _floor(_as_float(band_of(block, "B11", date)))
        elif name == "NDSI":
            out[name] = ndsi(band_of(block, "B03", date), band_of(block, "B11", date), clip=clip)
        else:
            out[name] = ndwi(band_of(block, "B03", date), band_of(block, "B8A", date), clip=clip)
    return out


def change_features(
    pre: Mapping[str, np.ndarray],
    post: Mapping[str, np.ndarray],
    names: Sequence[str] = FEATURES,
    *,
    clip: bool = True,
) -> dict[str, np.ndarray]:
    """The change features ``names`` of one block, in the order requested.

    ``pre`` and ``post`` map band names (``REQUIRED_BANDS``) to reflectance arrays of the same shape.
    dX = X_post - X_pre; rdNDVI as in relative_dndvi.
    """
    names = check_names(names, ALL_FEATURES, "feature")
    needed = indices_for_features(names)
    before = compute_indices(pre, needed, clip=clip, date="pre-event")
    after = compute_indices(post, needed, clip=clip, date="post-event")
    out = {}
    for name in names:
        if name == "rdNDVI":
            out[name] = relative_dndvi(before["NDVI"], after["NDVI"], clip=clip)
        elif name.startswith("d"):
            out[name] = difference(before[name[1:]], after[name[1:]])
        else:
            index, date = name.split("_")
            out[name] = before[index] if date == "pre" else after[index]
    return out


# -- rasters on disk -----------------------------------------------------------------------------------
def read_bands(src, bands: Mapping[str, int], window=None) -> dict[str, np.ndarray]:
    """Reflectance bands of an open stack by name (``rasters.read_reflectance``: float32, NaN = no data)."""
    return {name: rasters.read_reflectance(src, index, window) for name, index in bands.items()}


def check_same_grid(path_a, path_b, *, what_a: str = "pre-event image", what_b: str = "post-event image") -> None:
    """ValueError unless the two rasters share CRS, transform and size (pixel-by-pixel comparable)."""
    with rasterio.open(path_a) as a, rasterio.open(path_b) as b:
        problems = []
        if a.crs != b.crs:
            problems.append(f"CRS {a.crs} vs {b.crs}")
        if (a.width, a.height) != (b.width, b.height):
            problems.append(f"size {a.width}x{a.height} vs {b.width}x{b.height} px")
        if not a.transform.almost_equals(b.transform, precision=1e-6 * max(abs(a.transform.a), 1e-12)):
            problems.append(f"grid origin/pixel size {tuple(a.transform)[:6]} vs {tuple(b.transform)[:6]}")
    if problems:
        raise ValueError(
            f"the {what_a} ({os.fspath(path_a)}) and the {what_b} ({os.fspath(path_b)}) are not on the same "
            f"grid ({'; '.join(problems)}). Co-register the post-event image to the pre-event image "
            "(or resample one onto the other) first.")


def band_fallback(band_numbers: Mapping[str, int] | None) -> dict[str, int] | None:
    if not band_numbers:
        return None
    return {k: int(v) for k, v in band_numbers.items() if v is not None and int(v) > 0}


def write_indices(
    stack_path,
    out_path,
    *,
    indices: Sequence[str] = INDICES,
    band_numbers: Mapping[str, int] | None = None,
    clip: bool = True,
    progress=None,
    is_cancelled=None,
) -> str:
    """Write ``indices`` of a reflectance stack as one float32 GeoTIFF (bands described by index name).

    Bands are found by description (B02, B03, B04, B8A, B11); ``band_numbers`` (name -> 1-based band)
    is used for rasters without descriptions. Returns ``out_path``.
    """
    indices = normalise_index_names(indices)
    bands = rasters.find_bands(stack_path, bands_for_indices(indices), fallback=band_fallback(band_numbers))
    with rasterio.open(stack_path) as src:
        profile = rasters.geotiff_profile(src.profile, len(indices))
        tags = {k: v for k, v in src.tags().items() if k in ("SENSING_DATE", "TILE", "PRODUCT", "BASELINE")}
        windows = list(rasters.row_windows(src.height, src.width))
        with rasters.atomic_output(out_path) as tmp, rasterio.open(tmp, "w", **profile) as dst:
            for i, name in enumerate(indices):
                dst.set_band_description(i + 1, name)
            dst.update_tags(**tags)
            for n, window in enumerate(windows):
                rasters.check_cancelled(is_cancelled)
                values = compute_indices(read_bands(src, bands, window), indices, clip=clip)
                for i, name in enumerate(indices):
                    dst.write(values[name], i + 1, window=window)
                rasters.report(progress, 100.0 * (n + 1) / len(windows))
    return os.fspath(out_path)


def write_change_features(
    pre_stack_path,
    post_stack_path,
    out_path,
    *,
    names: Sequence[str] = FEATURES,
    band_numbers: Mapping[str, int] | None = None,
    clip: bool = True,
    progress=None,
    is_cancelled=None,
) -> str:
    """Write the change features ``names`` of a co-registered pair as one float32 GeoTIFF.

    The two stacks must be on the same grid (ValueError otherwise). Output bands are described by
    feature name; tags PRE_DATE and POST_DATE carry the stacks' SENSING_DATE. Returns ``out_path``.
    """
    names = check_names(names, ALL_FEATURES, "feature")
    check_same_grid(pre_stack_path, post_stack_path)
    needed = bands_for_features(names)
    fallback = band_fallback(band_numbers)
    pre_bands = rasters.find_bands(pre_stack_path, needed, fallback=fallback)
    post_bands = rasters.find_bands(post_stack_path, needed, fallback=fallback)
    with rasterio.open(pre_stack_path) as pre, rasterio.open(post_stack_path) as post:
        profile = rasters.geotiff_profile(pre.profile, len(names))
        tags = {"PRE_DATE": pre.tags().get("SENSING_DATE", ""), "POST_DATE": post.tags().get("SENSING_DATE", ""),
                "FEATURES": ",".join(names)}
        windows = list(rasters.row_windows(pre.height, pre.width))
        with rasters.atomic_output(out_path) as tmp, rasterio.open(tmp, "w", **profile) as dst:
            for i, name in enumerate(names):
                dst.set_band_description(i + 1, name)
            dst.update_tags(**tags)
            for n, window in enumerate(windows):
                rasters.check_cancelled(is_cancelled)
                values = change_features(read_bands(pre, pre_bands, window), read_bands(post, post_bands, window),
                                         names, clip=clip)
                for i, name in enumerate(names):
                    dst.write(values[name], i + 1, window=window)
                rasters.report(progress, 100.0 * (n + 1) / len(windows))
    return os.fspath(out_path)


def write_rdndvi(
    pre_stack_path,
    post_stack_path,
    out_path,
    *,
    pre_scl_path=None,
    post_scl_path=None,
    exclude_dark: bool = False,
    threshold: float | None = None,
    mask_path=None,
    band_numbers: Mapping[str, int] | None = None,
    progress=None,
    is_cancelled=None,
) -> dict:
    """Write rdNDVI = (NDVI_post - NDVI_pre) / sqrt(NDVI_pre + NDVI_post) of a co-registered pair.

    A float32 GeoTIFF (band "rdNDVI", NaN no data), NaN also where either SCL (when given) says cloud,
    cloud shadow, snow, defective or no data. With ``threshold`` and ``mask_path`` a landslide mask is
    written too: 1 where rdNDVI < threshold, 0 elsewhere, 255 no data. Returns counts (``valid``,
    ``below``) and the ``threshold``.
    """
    from . import masks

    check_same_grid(pre_stack_path, post_stack_path)
    if mask_path is not None and threshold is None:
        raise ValueError("a mask output needs a threshold (e.g. -0.2): pixels whose rdNDVI is below it are flagged")
    fallback = band_fallback(band_numbers)
    needed = bands_for_indices(("NDVI",))
    pre_bands = rasters.find_bands(pre_stack_path, needed, fallback=fallback)
    post_bands = rasters.find_bands(post_stack_path, needed, fallback=fallback)
    counts = {"valid": 0, "below": 0, "threshold": threshold}
    with contextlib.ExitStack() as stack:
        pre = stack.enter_context(rasterio.open(pre_stack_path))
        post = stack.enter_context(rasterio.open(post_stack_path))
        grid = rasters.Grid.of(pre)
        windows = list(rasters.row_windows(pre.height, pre.width))
        tmp = stack.enter_context(rasters.atomic_output(out_path))
        dst = stack.enter_context(rasterio.open(tmp, "w", **rasters.geotiff_profile(pre.profile, 1)))
        dst.set_band_description(1, "rdNDVI")
        dst.update_tags(PRE_DATE=pre.tags().get("SENSING_DATE", ""), POST_DATE=post.tags().get("SENSING_DATE", ""),
                        FORMULA="(NDVI_post - NDVI_pre) / sqrt(NDVI_pre + NDVI_post)")
        mask_dst = None
        if mask_path is not None:
            mask_tmp = stack.enter_context(rasters.atomic_output(mask_path))
            mask_dst = stack.enter_context(rasterio.open(
                mask_tmp, "w", **rasters.geotiff_profile(pre.profile, 1, "uint8", 255)))
            mask_dst.set_band_description(1, f"rdNDVI < {threshold:g}")
        for n, window in enumerate(windows):
            rasters.check_cancelled(is_cancelled)
            before = compute_indices(read_bands(pre, pre_bands, window), ("NDVI",))["NDVI"]
            after = compute_indices(read_bands(post, post_bands, window), ("NDVI",))["NDVI"]
            values = relative_dndvi(before, after)
            if pre_scl_path is not None or post_scl_path is not None:
                scl_pre, scl_post = (None if path is None else rasters.read_on_grid(path, grid, window, dtype="uint8",
                                                                                    fill=0)
                                     for path in (pre_scl_path, post_scl_path))
                valid = masks.scl_valid(scl_pre, scl_post, exclude_dark=exclude_dark, exclude_water=False)
                values[~valid] = np.nan
            dst.write(values, 1, window=window)
            finite = np.isfinite(values)
            counts["valid"] += int(finite.sum())
            if threshold is not None:
                below = finite & (values < np.float32(threshold))
                counts["below"] += int(below.sum())
                if mask_dst is not None:
                    mask = np.where(finite, below.astype(np.uint8), np.uint8(255)).astype(np.uint8)
                    mask_dst.write(mask, 1, window=window)
            rasters.report(progress, 100.0 * (n + 1) / len(windows))
    return counts


# -- the regional change around a pixel ----------------------------------------------------------------------
#: Side of the cells whose median change makes the regional background (metres): 8 pixels at 20 m.
LOCAL_CELL_M = 160.0
#: Cells (per side) the background's median is taken over: 5 x 160 m = 800 m. Seasonal browning and
#: greening, drought, haze plumes and sun-angle differences change whole hillsides alike, over kilometres;
#: a landslide scar is tens to a few hundred metres wide, so it hardly moves the median of 800 m.
LOCAL_CELLS = 5
#: A feature name with this suffix is the feature minus the median of its surroundings (``LocalBackground``):
#: "dNDVI_local" is a pixel's dNDVI minus the median dNDVI of the observed land within about 800 m.
LOCAL_SUFFIX = "_local"


#: Radius (pixels) within which a pixel's change is compared with the strongest change: a scar's edge pixel
#: lies within a pixel or two of the scar's core (the sensor's blur and the co-registration spread an edge
#: over about two pixels).
CORE_RADIUS_PX = 2


def strongest_loss_nearby(dndvi: np.ndarray, valid: np.ndarray, radius: int = CORE_RADIUS_PX) -> np.ndarray:
    """The lowest dNDVI of the ``valid`` pixels within ``radius`` pixels (a square), at most 0 (float32).

    Under linear mixing a pixel's change is its scar fraction times the change of the scar's core, so
    dNDVI / this tells roughly what share of the pixel the nearby change covers.
    """
    from scipy import ndimage

    values = np.where(valid & np.isfinite(dndvi), np.asarray(dndvi, np.float32), np.float32(0.0))
    return np.minimum(ndimage.minimum_filter(values, size=2 * int(radius) + 1, mode="nearest"),
                      np.float32(0.0)).astype(np.float32)


def scar_cover(pre: Mapping[str, np.ndarray], post: Mapping[str, np.ndarray], dndvi: np.ndarray, valid: np.ndarray,
               radius: int = CORE_RADIUS_PX) -> np.ndarray:
    """The share of each pixel that the scar next to it covers, by linear unmixing of the bands (float32, NaN
    where unknown).

    Reflectance mixes linearly within a pixel (NDVI does not): a pixel a share ``f`` of which the scar covers
    reads ``post = f * scar + (1 - f) * before``. ``before`` is the pixel's own pre-event reflectance;
    ``scar`` is the post-event reflectance of the ``valid`` pixel with the strongest NDVI loss within
    ``radius`` pixels (the scar's core, the pixel itself on a tie; the detection lets any observed pixel be it,
    so beside a cloud the cloud is, and its hazy fringe reads as a small share of it); ``f`` is the
    least-squares solution over the bands both dates have:
    sum((post - before) * (scar - before)) / sum((scar - before) ** 2).
    The core is itself a mixed pixel on a scar narrower than the sensor's blur; ``f`` is then the share of
    that core's cover, as with the NDVI ratio.
    """
    values = np.where(valid & np.isfinite(dndvi), np.asarray(dndvi, np.float32), np.float32(np.inf))
    height, width = values.shape
    radius = int(radius)
    padded = np.pad(values, radius, mode="constant", constant_values=np.inf)
    best = values.copy()
    best_dr = np.zeros(values.shape, np.int8)
    best_dc = np.zeros(values.shape, np.int8)
    for dr in range(-radius, radius + 1):
        for dc in range(-radius, radius + 1):
            if dr == 0 and dc == 0:
                continue
            candidate = padded[radius + dr:radius + dr + height, radius + dc:radius + dc + width]
            better = candidate < best
            np.copyto(best, candidate, where=better)
            best_dr[better] = dr
            best_dc[better] = dc
    del best, padded, values
    rows = np.arange(height, dtype=np.intp)[:, None] + best_dr
    cols = np.arange(width, dtype=np.intp)[None, :] + best_dc
    along = np.zeros((height, width), np.float32)
    length = np.zeros((height, width), np.float32)
    for band in (b for b in pre if b in post):
        before = np.asarray(pre[band], np.float32)
        to_scar = np.asarray(post[band], np.float32)[rows, cols] - before
        along += (np.asarray(post[band], np.float32) - before) * to_scar
        length += to_scar * to_scar
    with np.errstate(invalid="ignore", divide="ignore"):
        cover = along / length
    cover[~(length > MIN_DENOMINATOR)] = np.nan
    return cover.astype(np.float32, copy=False)


class LocalBackground:
    """The median change of the surroundings of every pixel (about 800 m), built block by block.

    ``add`` takes the rows of one block in order (values and where they count: observed land), keeping
    only the median of each ``cell`` x ``cell`` cell; ``finish`` takes the median of the cell medians over
    ``cells`` x ``cells`` cells (NaN-aware: cloud, water and no data do not count); ``rows`` gives the
    background of a block of rows, interpolated bilinearly between cell centres. Memory: the cell grid
    (1/64 of the pixels at 8 px cells) plus at most one cell row of pending rows.
    """

    def __init__(self, width: int, cell: int, cells: int = LOCAL_CELLS):
        if cell < 1 or cells < 1:
            raise ValueError(f"cell ({cell}) and cells ({cells}) must be at least 1")
        self.width, self.cell, self.cells = int(width), int(cell), int(cells)
        self._pending: list[np.ndarray] = []
        self._cell_rows: list[np.ndarray] = []
        self.grid: np.ndarray | None = None

    @classmethod
    def for_grid(cls, width: int, pixel_m: float) -> LocalBackground:
        return cls(width, max(1, int(round(LOCAL_CELL_M / max(float(pixel_m), 1e-9)))))

    def add(self, values: np.ndarray, valid: np.ndarray) -> None:
        self._pending.append(np.where(valid, np.asarray(values, np.float32), np.float32(np.nan)))
        rows = np.concatenate(self._pending) if len(self._pending) > 1 else self._pending[0]
        full = rows.shape[0] // self.cell * self.cell
        if full:
            self._cell_rows.append(self._medians(rows[:full]))
        self._pending = [rows[full:]] if full < rows.shape[0] else []

    def finish(self) -> None:
        if self._pending:
            self._cell_rows.append(self._medians(np.concatenate(self._pending)))
            self._pending = []
        cells = (np.concatenate(self._cell_rows) if self._cell_rows
                 else np.full((1, 1), np.nan, dtype=np.float32))
        r = self.cells // 2
        padded = np.pad(cells, r, mode="constant", constant_values=np.nan)
        windows = np.lib.stride_tricks.sliding_window_view(padded, (self.cells, self.cells))
        grid = _nanmedian(windows.reshape(*cells.shape, -1), axis=2)
        fill = _nanmedian(grid.ravel(), axis=0)
        self.grid = np.where(np.isnan(grid), 0.0 if np.isnan(fill) else fill, grid).astype(np.float32)

    def rows(self, row_off: int, height: int) -> np.ndarray:
        """The background of rows ``row_off`` .. ``row_off + height`` (float32, every column)."""
        if self.grid is None:
            raise RuntimeError("LocalBackground.rows before finish()")
        grid = self.grid
        r = _interpolation(np.arange(row_off, row_off + height), self.cell, grid.shape[0])
        c = _interpolation(np.arange(self.width), self.cell, grid.shape[1])
        across = grid[r[0]] * r[2][:, None] + grid[r[1]] * (1 - r[2])[:, None]
        return (across[:, c[0]] * c[2] + across[:, c[1]] * (1 - c[2])).astype(np.float32)

    def at(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """The background at pixels (``rows``, ``cols``), interpolated as :meth:`rows` does (float32)."""
        if self.grid is None:
            raise RuntimeError("LocalBackground.at before finish()")
        grid = self.grid
        r0, r1, wr = _interpolation(np.asarray(rows, np.float64), self.cell, grid.shape[0])
        c0, c1, wc = _interpolation(np.asarray(cols, np.float64), self.cell, grid.shape[1])
        return ((grid[r0, c0] * wc + grid[r0, c1] * (1 - wc)) * wr
                + (grid[r1, c0] * wc + grid[r1, c1] * (1 - wc)) * (1 - wr)).astype(np.float32)

    def _medians(self, rows: np.ndarray) -> np.ndarray:
        """Median of each cell of ``rows`` (cell rows of ``cell`` rows; the last may be shorter)."""
        h, w, cell = rows.shape[0], rows.shape[1], self.cell
        n_rows, n_cols = -(-h // cell), -(-w // cell)
        padded = np.full((n_rows * cell, n_cols * cell), np.nan, dtype=np.float32)
        padded[:h, :w] = rows
        blocks = padded.reshape(n_rows, cell, n_cols, cell).transpose(0, 2, 1, 3)
        return _nanmedian(blocks.reshape(n_rows, n_cols, cell * cell), axis=2)


def local_base(name: str) -> str | None:
    """The feature whose local anomaly ``name`` is ("dNDVI_local" -> "dNDVI"); None for a plain feature."""
    return name[:-len(LOCAL_SUFFIX)] if name.endswith(LOCAL_SUFFIX) and name[:-len(LOCAL_SUFFIX)] in ALL_FEATURES \
        else None


def _interpolation(pixels: np.ndarray, cell: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lower cell, upper cell, weight of the lower) of each pixel centre between cell centres."""
    position = np.clip((pixels + 0.5) / cell - 0.5, 0, n - 1)
    lower = np.floor(position).astype(np.intp)
    upper = np.minimum(lower + 1, n - 1)
    return lower, upper, (1.0 - (position - lower)).astype(np.float32)


def _nanmedian(values: np.ndarray, axis: int) -> np.ndarray:
    """np.nanmedian along ``axis`` (float32; all NaN: NaN), by one sort: NaN sorts last, so the median of the n
    values with data lies at (n - 1) // 2 and n // 2. np.nanmedian of many short rows goes through masked arrays
    and took most of the detection pass's background time on a full tile."""
    ordered = np.sort(np.moveaxis(np.asarray(values, np.float32), axis, -1), axis=-1)
    count = np.count_nonzero(~np.isnan(ordered), axis=-1)
    low = np.take_along_axis(ordered, np.maximum(count - 1, 0)[..., None] // 2, axis=-1)[..., 0]
    high = np.take_along_axis(ordered, (count // 2)[..., None], axis=-1)[..., 0]
    median = (low.astype(np.float64) + high) / 2.0
    return np.where(count == 0, np.nan, median).astype(np.float32)
