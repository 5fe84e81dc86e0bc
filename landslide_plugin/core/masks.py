"""Which pixels enter the analysis (SCL, water, slope, land cover, vegetation before), and the
NDVI-change threshold baseline of the reference study.

Two kinds of removed pixels, kept apart everywhere:

- *not observed* (no reflectance, SCL no data / defective / cloud / cloud shadow / cirrus / snow, SCL
  dark area when excluded, no DEM elevation): nothing can be said there. Masks write 255 (no data).
- *ruled out* (water, slope below the minimum, an excluded land-cover class, not vegetated before):
  observed, and by the rule not a landslide. Masks write 0.

``mask_codes`` gives each pixel the first reason (in ``REASONS`` order) it was removed for; the
counts per reason therefore add up to the removed pixels, and algorithms log them.
"""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.windows import Window

from . import defaults, rasters
from . import indices as idx

# -- Scene Classification Layer -----------------------------------------------------------------------
#: SCL classes masked on either date: no data, saturated/defective, cloud shadow, cloud (medium, high),
#: thin cirrus, snow/ice.
INVALID_SCL = (0, 1, 3, 8, 9, 10, 11)
#: SCL water: excluded as its own class (reservoir level changes look like vegetation loss).
WATER_SCL = 6
#: SCL dark area / topographic shadow: steep shaded slopes, where landslides are; excluding it is optional.
DARK_SCL = 2

#: Default NDVI a pixel must have had before the event with ``vegetated_before``: above sparse grass and
#: shrub on bare ground (about 0.1-0.25), below moderately vegetated slopes (0.4 and up), so a drop of
#: 0.2 or more from there means vegetation was removed.
VEGETATED_NDVI = 0.3

#: Rapid-mapping rule: landslides need slopes steeper than this (degrees).
MIN_SLOPE_DEG = 15.0
#: With ``MaskOptions.keep_runout``: the mean slope (degrees) and the share of its object the steep part of an
#: object needs to be a landslide source (``defaults``: why these values).
RUNOUT_SOURCE_SLOPE_DEG = defaults.RUNOUT_SOURCE_SLOPE_DEG
RUNOUT_SOURCE_SHARE = defaults.RUNOUT_SOURCE_SHARE

#: Why a pixel was removed, in the order reasons are assigned; code = position + 1 (0 = kept).
REASONS = ("no_data", "scl", "dark", "water", "shore", "no_dem", "slope", "exclusion", "not_vegetated")
#: Reasons that make a pixel "not observed" (255 in masks); the others rule it out (0).
NODATA_REASONS = ("no_data", "scl", "dark", "no_dem")
KEPT = 0


def _code(reason: str) -> int:
    return REASONS.index(reason) + 1


def scl_valid(scl_pre, scl_post, *, exclude_dark: bool = False, exclude_water: bool = True) -> np.ndarray:
    """True where both dates' SCL allow the pixel: not in INVALID_SCL, not water, optionally not dark.

    Either SCL may be None (that date is not checked).
    """
    bad = list(INVALID_SCL)
    if exclude_water:
        bad.append(WATER_SCL)
    if exclude_dark:
        bad.append(DARK_SCL)
    given = [np.asarray(s) for s in (scl_pre, scl_post) if s is not None]
    if not given:
        raise ValueError("scl_valid needs at least one SCL array")
    valid = np.ones(given[0].shape, dtype=bool)
    for scl in given:
        valid &= ~np.isin(scl, bad)
    return valid


def water_mask(ndwi_pre, ndwi_post, threshold: float = 0.0) -> np.ndarray:
    """True where NDWI (McFeeters) exceeds ``threshold`` on either date; NaN counts as not water."""
    pre, post = np.asarray(ndwi_pre), np.asarray(ndwi_post)
    with np.errstate(invalid="ignore"):
        return (pre > threshold) | (post > threshold)


def vegetated_before(ndvi_pre, threshold: float = VEGETATED_NDVI) -> np.ndarray:
    """True where the pre-event NDVI is at least ``threshold`` (NaN: False)."""
    with np.errstate(invalid="ignore"):
        return np.asarray(ndvi_pre) >= threshold


# -- slope --------------------------------------------------------------------------------------------
def slope_degrees(dem: np.ndarray, transform) -> np.ndarray:
    """Slope in degrees by Horn's (1981) method, pixel size from ``transform`` (units of the DEM: metres).

    Edges: a neighbour outside the array or without elevation (NaN) is extrapolated linearly from the
    opposite neighbour through the centre (the centre's own elevation if that one is missing too), so
    edge pixels keep a slope (exact on a plane) and only pixels without elevation themselves are NaN.
    Pass a DEM in a metric CRS; for geographic DEMs use slope_on_grid, which reprojects onto the
    (metric) analysis grid first.
    """
    z = np.asarray(dem, dtype=np.float64)
    if z.ndim != 2:
        raise ValueError(f"slope_degrees needs a 2-D elevation array, got shape {z.shape}")
    dx, dy = rasters.pixel_size(transform)
    if not (dx > 0 and dy > 0):
        raise ValueError(f"the DEM grid has no valid pixel size ({transform})")
    padded = np.pad(z, 1, mode="constant", constant_values=np.nan)
    rows, cols = z.shape

    def raw(dr: int, dc: int) -> np.ndarray:
        return padded[1 + dr:1 + dr + rows, 1 + dc:1 + dc + cols]

    def fill(values: np.ndarray, *candidates: np.ndarray) -> np.ndarray:
        for candidate in candidates:
            values = np.where(np.isnan(values), candidate, values)
        return values

    # A missing neighbour is extrapolated linearly through the centre from the opposite one (exact
    # on a plane, like gdaldem -compute_edges); a corner whose opposite is missing too comes from its
    # two edge neighbours (plane rule); the centre's own elevation is the last resort.
    b, d, f, h = (fill(raw(r, c), 2 * z - raw(-r, -c), z) for r, c in ((-1, 0), (0, -1), (0, 1), (1, 0)))
    a = fill(raw(-1, -1), 2 * z - raw(1, 1), b + d - z)
    c = fill(raw(-1, 1), 2 * z - raw(1, -1), b + f - z)
    g = fill(raw(1, -1), 2 * z - raw(-1, 1), h + d - z)
    i = fill(raw(1, 1), 2 * z - raw(-1, -1), h + f - z)
    dz_dx = ((c + 2 * f + i) - (a + 2 * d + g)) / (8 * dx)
    dz_dy = ((g + 2 * h + i) - (a + 2 * b + c)) / (8 * dy)
    slope = np.degrees(np.arctan(np.hypot(dz_dx, dz_dy)))
    slope[np.isnan(z)] = np.nan  # Horn ignores the centre; a pixel without elevation has no slope
    return slope.astype(np.float32)


def _check_metric(grid: Mapping, what: str) -> None:
    crs = grid.crs
    if crs is None or crs.is_geographic:
        raise ValueError(
            f"the {what} is in geographic coordinates ({crs}); slope needs a grid in metres. "
            "Use the projected (UTM) reflectance stack as the analysis grid.")


def slope_on_grid(dem_path, like_path, *, window: Window | None = None) -> np.ndarray:
    """Slope (degrees, float32) of a DEM in any CRS and resolution, on ``window`` of ``like_path``'s grid.

    The DEM is first resampled (bilinear) onto the analysis grid, with a one-pixel halo so blocks join
    seamlessly, then Horn's method runs on that metric grid. A geographic DEM (EPSG:4326) is thereby
    measured in metres, not degrees. Pixels the DEM does not cover are NaN.
    """
    grid = rasters.Grid.from_path(like_path)
    _check_metric(grid, f"analysis grid ({os.fspath(like_path)})")
    if window is None:
        window = Window(0, 0, grid.width, grid.height)
    halo = Window(window.col_off - 1, window.row_off - 1, window.width + 2, window.height + 2)
    dem = rasters.read_on_grid(dem_path, grid, halo, resampling=Resampling.bilinear, dtype="float32")
    slope = slope_degrees(dem, grid.transform)
    return slope[1:-1, 1:-1]


def write_slope(dem_path, like_path, out_path, *, progress=None, is_cancelled=None) -> str:
    """Write the slope (degrees, float32, NaN = no DEM) of ``dem_path`` on the grid of ``like_path``."""
    if not os.path.exists(os.fspath(dem_path)):
        raise FileNotFoundError(f"DEM {os.fspath(dem_path)} does not exist")
    grid = rasters.Grid.from_path(like_path)
    _check_metric(grid, f"analysis grid ({os.fspath(like_path)})")
    profile = rasters.geotiff_profile({"crs": grid.crs, "transform": grid.transform, "width": grid.width,
                                       "height": grid.height}, 1)
    windows = list(rasters.row_windows(grid.height, grid.width))
    with rasters.atomic_output(out_path, overviews=Resampling.average) as tmp, \
            rasterio.open(tmp, "w", **profile) as dst:
        dst.set_band_description(1, "slope_deg")
        for n, window in enumerate(windows):
            rasters.check_cancelled(is_cancelled)
            dst.write(slope_on_grid(dem_path, like_path, window=window), 1, window=window)
            rasters.report(progress, 100.0 * (n + 1) / len(windows))
    return os.fspath(out_path)


def exclusion_from_raster(path, like_path, classes: Sequence[int], *, window: Window | None = None) -> np.ndarray:
    """True where a class raster (e.g. ESA WorldCover, 40 = cropland) holds one of ``classes``.

    Nearest-neighbour resampling onto ``window`` of ``like_path``'s grid; outside the raster nothing is
    excluded.
    """
    classes = [int(c) for c in classes]
    if not classes:
        raise ValueError(f"no classes given to exclude from {os.fspath(path)}; list the class values, e.g. 40")
    grid = rasters.Grid.from_path(like_path)
    values = rasters.read_on_grid(path, grid, window, resampling=Resampling.nearest, dtype="float64")
    return np.isin(values, classes)


#: How each mask reason reads in a message.
REASON_LABELS = {
    "no_data": "without data", "scl": "masked by SCL (cloud, shadow, snow)", "dark": "by SCL dark area",
    "water": "by water", "shore": "next to water (shore)", "no_dem": "outside the DEM", "slope": "by slope",
    "exclusion": "by land cover",
    "not_vegetated": "not vegetated before",
}


# -- the analysis mask --------------------------------------------------------------------------------
@dataclass
class MaskOptions:
    """Rules for which pixels enter the analysis. Defaults: SCL on, water excluded, dark kept."""

    use_scl: bool = True
    exclude_dark: bool = False
    exclude_water: bool = True
    #: NDWI (McFeeters) above which a pixel is water on either date; None: no NDWI rule. Not applied
    #: where that date's SCL says dark area / topographic shadow (shadows have NDWI > 0 too).
    ndwi_water_threshold: float | None = 0.0
    dem_path: str | None = None
    min_slope_deg: float = MIN_SLOPE_DEG
    max_slope_deg: float | None = None
    exclusion_path: str | None = None
    exclusion_classes: Sequence[int] = field(default_factory=tuple)
    #: Pre-event NDVI a pixel needs (e.g. VEGETATED_NDVI); None disables the rule.
    min_ndvi_pre: float | None = None
    #: With ``min_ndvi_pre``: a pixel whose pre-event NDSI is above this needs only ``snow_min_ndvi_pre`` (None: no
    #: such exception). Snow the SCL does not flag (a thin or patchy cover) mixes in with an NDVI of about 0:
    #: vegetation under it shows 0.1-0.3, bare rock under it less. Such pixels are analysed, and a selection rule
    #: may judge them on the post image (``clustering.SelectionRule.snow_scar_ndvi``).
    snow_ndsi_pre: float | None = None
    snow_min_ndvi_pre: float = defaults.SNOW_MIN_NDVI_PRE
    #: Slope (degrees) already computed from ``dem_path`` (``write_slope``), read instead of recomputing
    #: it: a run that applies the same masks to several methods computes the slope once.
    slope_path: str | None = None
    #: Apply the slope rule to connected landslide objects instead of pixels: an object is kept when
    #: part of it reaches the minimum slope (a scar starts on steep ground; its runout and deposit may
    #: lie on gentle ground). Pixels flatter than the minimum are not sampled for fitting either way.
    slope_objects: bool = False
    #: Keep runout and deposits: pixels flatter than the minimum are analysed, and kept where they belong to a
    #: landslide object whose steep part is a source (mean slope >= RUNOUT_SOURCE_SLOPE_DEG, at least
    #: RUNOUT_SOURCE_SHARE of the object) and lie lower than its nearest steep pixel (``keep_runout_below_sources``):
    #: debris runs downslope from the scar onto gentle ground. Supersedes ``slope_objects``.
    keep_runout: bool = False
    #: With ``exclude_water``: also rule out the pixels within this many pixels of water on either date
    #: (0: none). A reservoir's or river's shore moves with the water level, and the pixels along a water
    #: line mix water and wet ground; a drawdown zone that was grass before and mud after looks like a scar.
    #: Applied by the detection pass (``detection.detect``), which sees the whole image.
    water_buffer_px: int = 0
    #: With ``exclude_water`` and the SCLs of both dates: pixels within this many pixels of the water seen on one
    #: date only (observed, not water, on the other: where the water line moved, a reservoir's drawdown zone or
    #: a river in flood) are ruled out too (0 or at most ``water_buffer_px``: no wider buffer). Two dates show
    #: only part of the level's range: the bank above the higher line floods and drains too, and its mud and
    #: dying grass look like a scar. Where the line stayed (a lake, a river at the same level), the mixed
    #: pixels of ``water_buffer_px`` are the whole shore. Applied by the detection pass with the other buffer.
    moved_water_buffer_px: int = 0

    @property
    def gentle_analysed(self) -> bool:
        """Whether pixels flatter than the minimum slope are analysed, the slope rule applied to objects after."""
        return self.slope_objects or self.keep_runout

    def describe(self) -> str:
        parts = []
        if self.use_scl:
            parts.append("SCL cloud/shadow/snow/no data" + (" + dark areas" if self.exclude_dark else ""))
        if self.exclude_water:
            ndwi = f", NDWI > {self.ndwi_water_threshold:g}" if self.ndwi_water_threshold is not None else ""
            buffer = f" and {self.water_buffer_px} px around it" if self.water_buffer_px else ""
            if self.moved_water_buffer_px > self.water_buffer_px:
                buffer += f" ({self.moved_water_buffer_px} px where its line moved between the dates)"
            parts.append(f"water (SCL 6{ndwi}){buffer}")
        if self.dem_path:
            rule = f"slope >= {self.min_slope_deg:g} deg"
            if self.max_slope_deg is not None:
                rule += f" and <= {self.max_slope_deg:g} deg"
            if self.keep_runout:
                rule += (f", or runout/deposit: flatter pixels lower than the nearest steep pixel of their object "
                         f"whose steep part (mean slope >= {RUNOUT_SOURCE_SLOPE_DEG:g} deg) is at least "
                         f"{RUNOUT_SOURCE_SHARE:.0%} of it")
            elif self.slope_objects:
                rule += " somewhere in each object"
            parts.append(rule)
        if self.exclusion_path:
            parts.append(f"land cover classes {', '.join(str(c) for c in self.exclusion_classes)} excluded")
        if self.min_ndvi_pre is not None:
            snow = (f" (>= {self.snow_min_ndvi_pre:g} under snow, NDSI > {self.snow_ndsi_pre:g}: snow hides what grew)"
                    if self.snow_ndsi_pre is not None else "")
            parts.append(f"NDVI before >= {self.min_ndvi_pre:g}{snow}")
        return "; ".join(parts) or "none"


def bands_for_mask(options: MaskOptions) -> tuple[str, ...]:
    """Bands the analysis mask reads (for NDWI water and the NDVI-before rule)."""
    needed = set()
    if options.exclude_water and options.ndwi_water_threshold is not None:
        needed.update(idx.INDEX_BANDS["NDWI"])
    if options.min_ndvi_pre is not None:
        needed.update(idx.INDEX_BANDS["NDVI"])
        if options.snow_ndsi_pre is not None:
            needed.update(idx.INDEX_BANDS["NDSI"])
    return tuple(b for b in idx.REQUIRED_BANDS if b in needed)


def mask_codes(
    pre_block: Mapping[str, np.ndarray],
    post_block: Mapping[str, np.ndarray],
    *,
    scl_pre=None,
    scl_post=None,
    slope=None,
    exclusion=None,
    options: MaskOptions | None = None,
) -> np.ndarray:
    """Per pixel the code (1-based position in REASONS) of the first reason it is removed, 0 = kept.

    ``pre_block``/``post_block`` map band names to reflectance (a NaN in any band = no data); ``slope``
    (degrees) and ``exclusion`` (True = excluded) are on the same block. A rule whose input is None is
    skipped, except that a DEM in ``options`` without a ``slope`` array is an error.
    """
    options = options or MaskOptions()
    arrays = [np.asarray(a) for a in list(pre_block.values()) + list(post_block.values())]
    shapes = {a.shape for a in arrays} | {np.shape(x) for x in (scl_pre, scl_post, slope, exclusion) if x is not None}
    if len(shapes) != 1:
        raise ValueError(f"mask inputs of one block differ in shape: {sorted(shapes)}")
    shape = shapes.pop()
    codes = np.zeros(shape, dtype=np.uint8)

    def assign(reason: str, removed: np.ndarray) -> None:
        codes[(codes == KEPT) & removed] = _code(reason)

    no_data = np.zeros(shape, dtype=bool)
    for a in arrays:
        no_data |= np.isnan(a)
    assign("no_data", no_data)

    if options.use_scl and (scl_pre is not None or scl_post is not None):
        assign("scl", ~scl_valid(scl_pre, scl_post, exclude_dark=False, exclude_water=False))
        if options.exclude_dark:
            assign("dark", ~scl_valid(scl_pre, scl_post, exclude_dark=True, exclude_water=False))
    if options.exclude_water:
        if options.use_scl and (scl_pre is not None or scl_post is not None):
            assign("water", ~scl_valid(scl_pre, scl_post, exclude_dark=False, exclude_water=True))
        if options.ndwi_water_threshold is not None:
            ndwi_pre = idx.ndwi(idx.band_of(pre_block, "B03", "pre-event"), idx.band_of(pre_block, "B8A", "pre-event"))
            ndwi_post = idx.ndwi(idx.band_of(post_block, "B03", "post-event"),
                                 idx.band_of(post_block, "B8A", "post-event"))
            # Topographic shadow also has NDWI > 0 (skylight is blue; on the real Barbellino crop 84 % of
            # SCL "dark area" pixels do): where a date's SCL says shadow, its NDWI does not make water.
            if scl_pre is not None:
                ndwi_pre = np.where(np.asarray(scl_pre) == DARK_SCL, np.nan, ndwi_pre)
            if scl_post is not None:
                ndwi_post = np.where(np.asarray(scl_post) == DARK_SCL, np.nan, ndwi_post)
            assign("water", water_mask(ndwi_pre, ndwi_post, options.ndwi_water_threshold))
    if options.dem_path or slope is not None:
        if slope is None:
            raise ValueError("a DEM is set in the mask options but no slope block was given")
        slope = np.asarray(slope)
        assign("no_dem", np.isnan(slope))
        with np.errstate(invalid="ignore"):
            too_flat = slope < options.min_slope_deg
            if options.max_slope_deg is not None:
                too_flat |= slope > options.max_slope_deg
        if not options.gentle_analysed:
            assign("slope", too_flat)
    if exclusion is not None:
        assign("exclusion", np.asarray(exclusion, dtype=bool))
    if options.min_ndvi_pre is not None:
        ndvi_pre = idx.ndvi(idx.band_of(pre_block, "B04", "pre-event"), idx.band_of(pre_block, "B8A", "pre-event"))
        vegetated = vegetated_before(ndvi_pre, options.min_ndvi_pre)
        if options.snow_ndsi_pre is not None:
            with np.errstate(invalid="ignore"):
                snow = idx.ndsi(idx.band_of(pre_block, "B03", "pre-event"),
                                idx.band_of(pre_block, "B11", "pre-event")) > options.snow_ndsi_pre
                vegetated |= snow & vegetated_before(ndvi_pre, options.snow_min_ndvi_pre)
        assign("not_vegetated", ~vegetated)
    return codes


def rule_out_shore(codes: np.ndarray, buffer_px: int, water_rows=None, *, block_rows: int = 256) -> int:
    """In place: pixels within ``buffer_px`` pixels (8-connected steps) of water get the "shore" code, unless
    removed for an earlier reason (no data, SCL, dark, water). Returns how many changed.

    ``water_rows(r0, r1)`` gives the water (bool) of rows r0..r1, e.g. the SCL's water class; None: the pixels
    with the "water" code. Works through the rows in blocks (with a halo), so no full-size copy is made.
    """
    if buffer_px <= 0:
        return 0
    from scipy import ndimage

    water_code, shore = _code("water"), _code("shore")
    if water_rows is None:
        def water_rows(r0, r1):
            return codes[r0:r1] == water_code
    height = codes.shape[0]
    changed = 0
    for r0 in range(0, height, block_rows):
        r1 = min(height, r0 + block_rows)
        a0, a1 = max(0, r0 - buffer_px), min(height, r1 + buffer_px)
        water = water_rows(a0, a1)
        if not water.any():
            continue
        near = ndimage.binary_dilation(water, structure=np.ones((3, 3), bool), iterations=int(buffer_px))
        block = codes[r0:r1]
        change = near[r0 - a0:r1 - a0] & ((block == KEPT) | (block > shore))
        block[change] = shore
        changed += int(change.sum())
    return changed


def moved_water(scl_pre: np.ndarray, scl_post: np.ndarray) -> np.ndarray:
    """Water (SCL 6) on one date where the other date saw land: the zone the water line moved across."""
    observed = ~np.isin(scl_pre, INVALID_SCL) & ~np.isin(scl_post, INVALID_SCL)
    return observed & ((scl_pre == WATER_SCL) != (scl_post == WATER_SCL))


def count_reasons(codes: np.ndarray) -> dict[str, int]:
    """Pixels removed per reason (every reason present, zeros included)."""
    counts = np.bincount(np.asarray(codes, dtype=np.uint8).ravel(), minlength=len(REASONS) + 1)
    return {reason: int(counts[i + 1]) for i, reason in enumerate(REASONS)}


def analysis_mask(
    pre_block: Mapping[str, np.ndarray],
    post_block: Mapping[str, np.ndarray],
    *,
    scl_pre=None,
    scl_post=None,
    slope=None,
    exclusion=None,
    options: MaskOptions | None = None,
) -> tuple[np.ndarray, dict[str, int]]:
    """(valid, reasons): True where the pixel goes into the analysis, and pixels removed per reason."""
    codes = mask_codes(pre_block, post_block, scl_pre=scl_pre, scl_post=scl_post, slope=slope,
                       exclusion=exclusion, options=options)
    return codes == KEPT, count_reasons(codes)


def apply_codes(mask: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """A uint8 mask with removed pixels set: 255 where not observed, 0 where ruled out."""
    out = np.asarray(mask, dtype=np.uint8).copy()
    nodata_codes = [_code(r) for r in NODATA_REASONS]
    out[(codes != KEPT) & ~np.isin(codes, nodata_codes)] = 0
    out[np.isin(codes, nodata_codes)] = 255
    return out


# -- the NDVI-change threshold baseline ---------------------------------------------------------------
def check_threshold(threshold: float) -> float:
    threshold = float(threshold)
    if not -2.0 < threshold < 0.0:
        raise ValueError(
            f"NDVI change threshold {threshold:g} is not a drop: give a negative value between -2 and 0 "
            "(e.g. -0.2 flags pixels whose NDVI fell by more than 0.2)")
    return threshold


def threshold_mask(dndvi, threshold: float = -0.2) -> np.ndarray:
    """uint8: 1 where dNDVI < ``threshold`` (NDVI dropped by more than |threshold|), 0 otherwise, 255 at NaN."""
    threshold = check_threshold(threshold)
    d = np.asarray(dndvi, dtype=np.float32)
    out = np.zeros(d.shape, dtype=np.uint8)
    with np.errstate(invalid="ignore"):
        out[d < threshold] = 1
    out[np.isnan(d)] = 255
    return out


def keep_objects_reaching_slope(mask_path, slope_path, min_slope_deg: float, *, probability_path=None) -> int:
    """Drop landslide objects of a 1/0/255 mask that never reach ``min_slope_deg``; returns pixels dropped.

    Objects are 8-connected groups of 1s; an object whose steepest pixel is flatter than the minimum is
    set to 0 (and its probability, if given, to 0). Holds the mask (uint8), its labels (int32) and the
    slope (float32): three full-size arrays, about 270 MB for a full Sentinel-2 tile.
    """
    from scipy import ndimage

    with rasterio.open(mask_path) as src:
        mask = src.read(1)
    labels, count = ndimage.label(mask == 1, structure=np.ones((3, 3), bool))
    if count == 0:
        return 0
    with rasterio.open(slope_path) as src:
        slope = src.read(1).astype(np.float32)
    steepest = ndimage.maximum(np.nan_to_num(slope, nan=-1.0), labels, index=np.arange(1, count + 1))
    flat = np.concatenate([[False], np.asarray(steepest) < min_slope_deg])
    drop = flat[labels]
    del labels, slope
    return _drop_pixels(mask_path, mask, drop, probability_path)


def keep_runout_below_sources(mask_path, slope_path, dem_path, min_slope_deg: float, *, probability_path=None,
                              source_slope_deg: float = RUNOUT_SOURCE_SLOPE_DEG,
                              source_share: float = RUNOUT_SOURCE_SHARE, dem_on_grid=None) -> int:
    """Drop the flat pixels of a 1/0/255 mask that are no runout or deposit of a landslide; returns pixels dropped.

    Objects are 8-connected groups of 1s; their pixels at least ``min_slope_deg`` steep are always kept (the pixel
    rule). A flatter pixel is kept when its object's steep part is a landslide source - mean slope at least
    ``source_slope_deg``, at least ``source_share`` of the object - and the pixel lies lower (DEM, bilinear on the
    mask's grid) than the nearest steep pixel of its object, and it joins a steep pixel through kept pixels: debris
    runs downslope from the scar; a field or clear-cut that only touches steep ground, or lies beside or above it,
    is dropped. The probability, if given, is set to 0 where a pixel is dropped.

    Holds the mask (uint8), its labels (int32), the steep and the dropped pixels (bool) and, when some object has
    flat pixels to test, the DEM (float32): about 330 MB for a full Sentinel-2 tile; the slope is read in row blocks,
    the distances are computed per object's bounding box, the probability is rewritten in row blocks.
    ``dem_on_grid`` (a ``SharedDemOnGrid``) lends the DEM already resampled onto the mask's grid, so that the rule
    on several masks resamples it once.
    """
    from scipy import ndimage

    with rasterio.open(mask_path) as src:
        mask = src.read(1)
    eight = np.ones((3, 3), bool)
    labels, count = ndimage.label(mask == 1, structure=eight)
    if count == 0:
        return 0
    grid = rasters.Grid.from_path(mask_path)
    # Per object: pixels, steep pixels and their summed slope, block by block (np.bincount copies its input
    # to int64: on the whole label array that is another 230 MB for a full tile).
    steep = np.zeros(mask.shape, dtype=bool)
    size, steep_size, steep_slope = (np.zeros(count + 1, dtype=dtype) for dtype in ("int64", "int64", "float64"))
    for window in rasters.row_windows(grid.height, grid.width):
        rows = slice(window.row_off, window.row_off + window.height)
        slope = rasters.read_on_grid(slope_path, grid, window, resampling=Resampling.bilinear)
        with np.errstate(invalid="ignore"):
            steep[rows] = (mask[rows] == 1) & (slope >= min_slope_deg)
        block, block_steep = labels[rows], steep[rows]
        size += np.bincount(block.ravel(), minlength=count + 1)
        steep_size += np.bincount(block[block_steep], minlength=count + 1)
        steep_slope += np.bincount(block[block_steep], weights=slope[block_steep], minlength=count + 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        source = (steep_size > 0) & (steep_size >= source_share * size) & (
            steep_slope / steep_size >= source_slope_deg)
    source[0] = False
    # Every flat pixel outside a source object goes; a source object keeps the flat pixels below its steep part.
    drop = np.zeros(mask.shape, dtype=bool)
    for window in rasters.row_windows(grid.height, grid.width):
        rows = slice(window.row_off, window.row_off + window.height)
        drop[rows] = (labels[rows] > 0) & ~steep[rows] & ~source[labels[rows]]
    with_runout = np.flatnonzero(source & (steep_size < size))
    if with_runout.size:
        dem = dem_on_grid(dem_path, grid) if dem_on_grid is not None else dem_resampled_on_grid(dem_path, grid)
        boxes = ndimage.find_objects(labels)
        for label in with_runout:
            box = boxes[label - 1]
            member = labels[box] == label
            source_px = member & steep[box]
            flat = member & ~source_px
            _, (near_r, near_c) = ndimage.distance_transform_edt(~source_px, return_indices=True)
            z = dem[box]
            with np.errstate(invalid="ignore"):
                below = z < z[near_r, near_c]
            parts, n = ndimage.label(source_px | (flat & below), structure=eight)
            joined = np.bincount(parts[source_px], minlength=n + 1) > 0
            joined[0] = False
            drop[box] |= flat & ~joined[parts]
        del dem
    del labels, steep
    return _drop_pixels(mask_path, mask, drop, probability_path)


def _drop_pixels(mask_path, mask: np.ndarray, drop: np.ndarray, probability_path=None) -> int:
    """Set the ``drop`` pixels of a written mask (held as ``mask``) to 0, and its probability there; how many."""
    dropped = int(drop.sum())
    if dropped == 0:
        return 0
    mask[drop] = 0
    _rewrite_band(mask_path, mask)
    if probability_path:
        _zero_band_where(probability_path, drop)
    return dropped


def dem_resampled_on_grid(dem_path, grid: rasters.Grid) -> np.ndarray:
    """The DEM (float32, bilinear, NaN outside it) on the whole of ``grid``, read in row blocks."""
    dem = np.empty((grid.height, grid.width), dtype=np.float32)
    for window in rasters.row_windows(grid.height, grid.width):  # in blocks: a whole read doubles its size
        dem[window.row_off:window.row_off + window.height] = rasters.read_on_grid(
            dem_path, grid, window, resampling=Resampling.bilinear, dtype="float32")
    return dem


class SharedDemOnGrid:
    """``dem_resampled_on_grid`` kept for the next call on the same DEM and grid: the runout rule runs once per
    method's mask, and resampling the DEM is its dearest read (a full tile: about 1 s per mask). Holds the DEM
    (float32, 120 MB for a full tile) between the calls too, while a mask and its probability are rewritten; the
    probability is rewritten in row blocks, so that is no more than a call held before."""

    def __init__(self):
        self._key, self._dem = None, None

    def __call__(self, dem_path, grid: rasters.Grid) -> np.ndarray:
        key = (os.fspath(dem_path), grid)
        if self._key != key:
            self._dem = None  # free the old one before reading the next
            self._dem, self._key = dem_resampled_on_grid(dem_path, grid), key
        return self._dem

    def clear(self) -> None:
        self._key, self._dem = None, None


def _zero_band_where(path, where: np.ndarray) -> None:
    """Set band 1 of a GeoTIFF to 0 where ``where`` is true (atomically), read and written in row blocks: a full
    tile's probability is 120 MB as one array."""
    def block(src, window):
        values = src.read(1, window=window)
        values[where[window.row_off:window.row_off + window.height]] = 0
        return values
    _rewrite_band(path, block)


def _rewrite_band(path, values) -> None:
    """Replace band 1 of a GeoTIFF atomically, keeping its profile, description, tags and colour map: with an array,
    or row block by row block with ``values(src, window)``, given the old band open as ``src``."""
    with rasterio.open(path) as src:
        profile, tags, description = src.profile, src.tags(), src.descriptions[0]
        try:
            colormap = src.colormap(1)
        except ValueError:
            colormap = None
    profile.update(rasters.GTIFF_OPTIONS if profile.get("tiled") else {})
    floating = np.issubdtype(np.dtype(profile["dtype"]), np.floating)
    overviews = Resampling.average if floating else Resampling.nearest
    with rasters.atomic_output(path, overviews=overviews) as tmp:
        with rasterio.open(tmp, "w", **profile) as dst:
            if callable(values):
                with rasterio.open(path) as src:
                    for window in rasters.row_windows(src.height, src.width):
                        dst.write(values(src, window), 1, window=window)
            else:
                dst.write(values, 1)
            dst.update_tags(**tags)
            if description:
                dst.set_band_description(1, description)
            if colormap:
                dst.write_colormap(1, colormap)
