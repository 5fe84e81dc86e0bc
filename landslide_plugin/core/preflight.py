"""Checks of a run's inputs that take seconds, made before any expensive work.

Each check raises :class:`InputError` (a ``ValueError``) whose message is one sentence naming the
input, what is wrong with it and what to do, for example::

    The post-event image /data/post.tif is in EPSG:4326 (degrees); pixel areas and slopes need
    metres: reproject it to its UTM zone (EPSG:32637 here; Raster > Projections > Warp) and run again.

- ``footprint``: where an input lies (products: metadata only; a GeoTIFF stack: its header).
- ``check_overlap``: do the pre- and post-event images cover the same ground?
- ``check_stack`` / ``check_scl``: a prepared GeoTIFF stack and its SCL raster are usable.
- ``count_valid_pixels`` / ``require_valid_pixels``: is anything left once no data, clouds and snow
  are removed? (a sample read: well under a second on a full 5490 x 5490 tile).
- ``estimate_run_bytes`` / ``check_output_folder``: can the output folder take the run's files?

QGIS-free: numpy, rasterio, and the plugin's ``products``, ``rasters`` and ``masks`` modules.
"""
from __future__ import annotations

import math
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.errors import CRSError, RasterioError
from rasterio.vrt import WarpedVRT
from rasterio.warp import transform_bounds
from rasterio.windows import Window

from . import products, rasters
from .masks import INVALID_SCL

GEOTIFF_SUFFIXES = (".tif", ".tiff")
#: An overlap smaller than this share of the pre-event image, or than MIN_OVERLAP_PX pixels across, is refused.
MIN_OVERLAP_FRACTION = 0.01
MIN_OVERLAP_PX = 16
#: The processing parameters that give the band numbers of a stack without band descriptions.
BAND_PARAMETERS = {"B02": "BAND_BLUE", "B03": "BAND_GREEN", "B04": "BAND_RED", "B8A": "BAND_NIR",
                   "B11": "BAND_SWIR1"}
#: Source pixels (per band) decoded by the quick valid-pixel count before it trusts its sample: a
#: full tile stack is 5490 x 5490 = 30 M pixels; three 512-row strips of it are 8.4 M.
SAMPLE_PIXELS = 8_000_000
#: Size assumptions of ``estimate_run_bytes``.
DEFLATE_RATIO = 0.7          # float32 rasters written with light deflate, relative to raw
SMALL_FILES_BYTES = 20 * 2 ** 20  # polygons, report, figures, metrics, sidecars


class InputError(ValueError):
    """An input of the run cannot be used; the message names it, the problem and the fix."""


@dataclass(frozen=True)
class Footprint:
    """Where an input lies, and its size on its grid."""

    label: str                                    # "pre-event image"
    bounds: tuple[float, float, float, float]     # left, bottom, right, top in ``crs``
    crs: CRS
    width: int                                    # pixels (products: on the 20 m grid prepare_l2a writes)
    height: int
    count: int                                    # bands

    @property
    def pixel_size(self) -> tuple[float, float]:
        left, bottom, right, top = self.bounds
        return (right - left) / max(self.width, 1), (top - bottom) / max(self.height, 1)


# -- small helpers -----------------------------------------------------------------------------------


def _crs_name(crs: CRS | None) -> str:
    if crs is None:
        return "no CRS"
    code = crs.to_epsg()
    if code is not None:
        return f"EPSG:{code}"
    text = crs.to_string()
    return text if len(text) <= 40 else text[:37] + "..."


def _extent(bounds, crs: CRS | None) -> str:
    left, bottom, right, top = bounds
    if crs is not None and crs.is_geographic:
        return f"lon {left:.4f}..{right:.4f}, lat {bottom:.4f}..{top:.4f} in {_crs_name(crs)}"
    return f"x {left:.0f}..{right:.0f}, y {bottom:.0f}..{top:.0f} m in {_crs_name(crs)}"


def _size(n_bytes: float) -> str:
    if n_bytes >= 2 ** 30:
        return f"{n_bytes / 2 ** 30:.1f} GB"
    return f"{n_bytes / 2 ** 20:.1f} MB"


def _gdal_says(error: Exception) -> str:
    text = " ".join(str(error).split())
    return text if len(text) <= 160 else text[:157] + "..."


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith((".", "!", "?")) else text + "."


def _existing(path, label: str) -> str:
    path = os.fspath(path)
    if not os.path.exists(path):
        raise InputError(f"The {label} {path} does not exist: check the path (or download the file again).")
    return path


def _open(path: str, label: str):
    """rasterio.open, with a corrupt or non-raster file turned into an InputError."""
    if os.path.isdir(path):
        raise InputError(f"The {label} {path} is a folder, not a raster: give the GeoTIFF file.")
    try:
        return rasterio.open(path)
    except RasterioError as error:
        raise InputError(f"The {label} {path} cannot be read as a raster ({_gdal_says(error)}): the file is "
                         "damaged or not a GeoTIFF, so write or download it again.") from error


def _as_paths(inputs) -> list[str]:
    if isinstance(inputs, (str, os.PathLike)):
        return [os.fspath(inputs)]
    return [os.fspath(p) for p in inputs]


def _is_stack(path: str) -> bool:
    return os.path.splitext(path)[1].lower() in GEOTIFF_SUFFIXES


def _is_safe_folder(folder: str) -> bool:
    if any(os.path.isfile(os.path.join(folder, name)) for name in ("MTD_MSIL2A.xml", "MTD_MSIL1C.xml")):
        return True  # a Level-1C folder is refused by the product reader with its own message
    try:
        names = os.listdir(folder)
    except OSError:
        return False
    return any(n.upper().endswith(".SAFE") and os.path.isfile(os.path.join(folder, n, "MTD_MSIL2A.xml"))
               for n in names)


def _utm_hint(bounds, crs: CRS) -> str:
    """"EPSG:32637 here; " for the UTM zone of the centre of ``bounds`` (in a geographic ``crs``)."""
    try:
        west, south, east, north = transform_bounds(crs, "EPSG:4326", *bounds, densify_pts=5)
    except (CRSError, RasterioError, ValueError):
        return ""
    lon, lat = (west + east) / 2, (south + north) / 2
    if not (math.isfinite(lon) and math.isfinite(lat)) or abs(lat) > 84:
        return ""
    zone = min(60, max(1, int((lon + 180) // 6) + 1))
    return f"EPSG:{32600 + zone if lat >= 0 else 32700 + zone} here; "


# -- footprints ----------------------------------------------------------------------------------------


def footprint(inputs: Sequence[str | os.PathLike] | str | os.PathLike, label: str, *, aoi=None,
              aoi_crs: str = "EPSG:4326", bands: Sequence[str] = products.DEFAULT_BANDS,
              several_dates: bool = False) -> Footprint:
    """Where ``inputs`` lie: one or more Sentinel-2 L2A products of one date, or one GeoTIFF stack.

    Products (``.zip``, ``.SAFE``, ``MTD_MSIL2A.xml``) are read for their metadata only; the footprint
    is the 20 m grid ``products.prepare_l2a`` would write: the union of the tiles (in the CRS of the
    first tile, or with an ``aoi`` of the tile covering most of it), cropped to the area of interest
    and snapped outward to the tile grid; ``count`` is the number of ``bands`` (every one, and the SCL,
    must be present in every product). A GeoTIFF stack gives its own bounds, size and band count; the
    area of interest does not apply to it (the one-step run uses a stack as it is).

    Products of different dates are refused unless ``several_dates`` (the caller composites them,
    ``composite.composite_l2a``): then the footprint is the grid of the composite, the oldest date's.
    """
    paths = _as_paths(inputs)
    if not paths:
        raise InputError(f"No {label} was given: choose one or more Sentinel-2 L2A products of one date, "
                         "or one GeoTIFF stack.")
    for path in paths:
        _existing(path, label)
    stacks = [p for p in paths if _is_stack(p)]
    if stacks and len(paths) > 1:
        raise InputError(f"The {label} mixes a GeoTIFF stack ({stacks[0]}) with {len(paths) - 1} other input"
                         f"{'s' if len(paths) > 2 else ''}, and stacks cannot be mosaicked: give one stack, or the "
                         "Sentinel-2 products (.zip/.SAFE) of that date.")
    if stacks:
        return _stack_footprint(paths[0], label)
    return _product_footprint(paths, label, aoi, aoi_crs, bands, several_dates)


def _stack_footprint(path: str, label: str) -> Footprint:
    with _open(path, label) as src:
        if src.crs is None:
            raise InputError(f"The {label} {path} has no coordinate reference system: assign its UTM zone "
                             "(Raster > Projections > Assign Projection) and run again.")
        return Footprint(label=label, bounds=tuple(src.bounds), crs=src.crs, width=src.width, height=src.height,
                         count=src.count)


def _product_footprint(paths: list[str], label: str, aoi, aoi_crs, bands, several_dates: bool = False) -> Footprint:
    infos = []
    for path in paths:
        if os.path.isdir(path) and not _is_safe_folder(path):
            raise InputError(f"The {label} {path} is a folder but not a Sentinel-2 .SAFE product (it holds no "
                             "MTD_MSIL2A.xml): give the .SAFE folder, its .zip as downloaded, or a GeoTIFF stack.")
        try:
            infos.append(products.read_product_info(path))
        except (ValueError, OSError) as error:
            raise InputError(f"The {label} cannot be used: {_sentence(str(error))}") from error
    dates = {i.sensing_date for i in infos}
    if len(dates) > 1 and not several_dates:
        listing = ", ".join(f"{i.name} of {i.sensing_date.isoformat()}" for i in infos)
        raise InputError(f"The {label} mixes products of different dates ({listing}): give the products of one "
                         "date only.")
    try:
        bands = products.normalise_bands(bands)
        for info in infos:
            for band in (*bands, "SCL"):
                info.band_file(band)
    except ValueError as error:
        raise InputError(f"The {label} cannot be used: {_sentence(str(error))}") from error
    if len(dates) > 1:  # a composite is made on the grid of its oldest date (composite.composite_l2a)
        infos = [i for i in infos if i.sensing_date == min(dates)]
    infos, _ = products.newest_per_tile(infos)

    rings = None
    if aoi is not None:
        try:
            rings = products.aoi_rings(aoi)
            aoi_crs = CRS.from_user_input(aoi_crs)
            aoi_boxes = [products.ring_bounds(rings, aoi_crs, info.crs) for info in infos]
        except (ValueError, CRSError, OSError) as error:
            raise InputError(f"The area of interest cannot be used: {_sentence(str(error))}") from error
        overlaps = [_intersection_area(box, info.bounds) for box, info in zip(aoi_boxes, infos)]
        if max(overlaps) <= 0:
            raise InputError(_aoi_misses(label, rings, aoi_crs, infos))
        kept = [(o, i) for o, i in zip(overlaps, infos) if o > 0]
        best = max(range(len(kept)), key=lambda k: kept[k][0])  # as prepare_l2a: it gives the grid
        infos = [kept[best][1]] + [i for k, (_, i) in enumerate(kept) if k != best]

    try:
        grid = products.output_grid(infos, rings, aoi_crs)
    except ValueError:
        raise InputError(f"The area of interest covers less than one 20 m pixel of the {label}: draw a larger "
                         "area.") from None
    left, top = grid.transform.c, grid.transform.f
    dx, dy = grid.pixel_size
    bounds = (left, top - grid.height * dy, left + grid.width * dx, top)
    return Footprint(label=label, bounds=bounds, crs=grid.crs, width=grid.width, height=grid.height, count=len(bands))


def _intersection_area(a, b) -> float:
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    return width * height if width > 0 and height > 0 else 0.0


def _aoi_misses(label: str, rings, aoi_crs: CRS, infos) -> str:
    wgs84 = CRS.from_epsg(4326)
    try:
        area = _extent(products.ring_bounds(rings, aoi_crs, wgs84), wgs84)
        boxes = [transform_bounds(i.crs, wgs84, *i.bounds, densify_pts=21) for i in infos]
        image = _extent((min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes),
                         max(b[3] for b in boxes)), wgs84)
    except (ValueError, RasterioError):
        area = "given"
        image = _extent(infos[0].bounds, infos[0].crs)
    return (f"The area of interest ({area}) does not overlap the {label} ({image}): draw the area over the image, "
            f"or check that its coordinates are in {_crs_name(aoi_crs)}.")


# -- overlap of the two dates ----------------------------------------------------------------------------


def _in_crs(fp: Footprint, crs: CRS) -> tuple[float, float, float, float] | None:
    if fp.crs == crs:
        return fp.bounds
    try:
        box = transform_bounds(fp.crs, crs, *fp.bounds, densify_pts=21)
    except (CRSError, RasterioError, ValueError):
        return None
    return box if all(math.isfinite(v) for v in box) else None


def check_overlap(pre: Footprint, post: Footprint) -> None:
    """InputError unless ``post`` covers a usable part of ``pre`` (post taken into pre's CRS).

    Refused: no overlap; an overlap under MIN_OVERLAP_FRACTION (1 %) of the pre-event image or under
    MIN_OVERLAP_PX (16) pre-event pixels across.
    """
    extents = (f"the {pre.label} ({_extent(pre.bounds, pre.crs)}) and the {post.label} "
               f"({_extent(post.bounds, post.crs)})")
    fix = "choose images of the same tile/area, or check the area of interest."
    box = _in_crs(post, pre.crs)
    area = _intersection_area(box, pre.bounds) if box is not None else 0.0
    if area <= 0:
        raise InputError(f"{extents[0].upper()}{extents[1:]} do not overlap: {fix}")
    left, bottom, right, top = pre.bounds
    share = area / ((right - left) * (top - bottom))
    px_w, px_h = pre.pixel_size
    cols = (min(box[2], right) - max(box[0], left)) / px_w
    rows = (min(box[3], top) - max(box[1], bottom)) / px_h
    if share < MIN_OVERLAP_FRACTION or cols < MIN_OVERLAP_PX or rows < MIN_OVERLAP_PX:
        raise InputError(f"{extents[0].upper()}{extents[1:]} overlap on only {100 * share:.1f} % of the "
                         f"{pre.label} ({cols:.0f} x {rows:.0f} pixels), too little to compare: {fix}")


# -- prepared stacks and their SCL -----------------------------------------------------------------------


def _parameter(band: str) -> str:
    name = BAND_PARAMETERS.get(band)
    return f"{name} parameter" if name else f"band number of {band}"


def check_stack(path, label: str, *, needed_bands: Sequence[str],
                band_numbers: Mapping[str, int] | None = None) -> None:
    """InputError unless ``path`` is a readable GeoTIFF stack in a projected CRS with ``needed_bands``.

    Bands are found by description (as ``rasters.find_bands``: "B8A", "b2"...); a band without a
    matching description uses ``band_numbers`` (name -> 1-based number), which must lie within the
    stack's band count.
    """
    path = _existing(path, label)
    with _open(path, label) as src:
        crs, bounds, count = src.crs, tuple(src.bounds), src.count
        descriptions = [d or "" for d in src.descriptions]
    if crs is None:
        raise InputError(f"The {label} {path} has no coordinate reference system: assign its UTM zone "
                         "(Raster > Projections > Assign Projection) and run again.")
    if crs.is_geographic:
        raise InputError(f"The {label} {path} is in {_crs_name(crs)} (degrees); pixel areas and slopes need "
                         f"metres: reproject it to its UTM zone ({_utm_hint(bounds, crs)}Raster > Projections > "
                         "Warp) and run again.")
    if not crs.is_projected:
        raise InputError(f"The {label} {path} is in {_crs_name(crs)}, which is not a projected CRS in metres: "
                         "reproject it to its UTM zone (Raster > Projections > Warp) and run again.")
    units = (getattr(crs, "linear_units", "") or "").lower()
    if units and units not in ("metre", "meter", "m", "metres", "meters"):
        raise InputError(f"The {label} {path} is in {_crs_name(crs)}, whose unit is {units}; pixel areas and "
                         "slopes need metres: reproject it to its UTM zone (Raster > Projections > Warp) and run "
                         "again.")
    numbers = {k: int(v) for k, v in (band_numbers or {}).items() if v is not None and int(v) > 0}
    by_name = {rasters.normalise_band_name(d): i + 1 for i, d in enumerate(descriptions) if d}
    missing, beyond = [], []
    for band in needed_bands:
        if rasters.normalise_band_name(band) in by_name:
            continue
        if band in numbers:
            if numbers[band] > count:
                beyond.append(band)
            continue
        missing.append(band)
    if beyond:
        given = ", ".join(f"{numbers[b]} for {b} ({_parameter(b)})" for b in beyond)
        raise InputError(f"The {label} {path} has {count} band{'s' if count != 1 else ''}, but band number"
                         f"{'s' if len(beyond) > 1 else ''} {given} {'are' if len(beyond) > 1 else 'is'} beyond "
                         f"them: set {'them' if len(beyond) > 1 else 'it'} between 1 and {count}.")
    if missing:
        names = ", ".join(missing)
        params = ", ".join(BAND_PARAMETERS.get(b, b) for b in missing)
        if not any(descriptions):
            raise InputError(f"The {label} {path} has no band descriptions, so band{'s' if len(missing) > 1 else ''} "
                             f"{names} cannot be found by name: set {'their' if len(missing) > 1 else 'its'} band "
                             f"number{'s' if len(missing) > 1 else ''} ({params} "
                             f"parameter{'s' if len(missing) > 1 else ''}) and run again.")
        have = ", ".join(d or f"band {i + 1} (no description)" for i, d in enumerate(descriptions))
        raise InputError(f"The {label} {path} has no band described {' or '.join(missing)} (its bands are {have}): "
                         f"give a stack with {'these bands' if len(missing) > 1 else 'that band'}, or set "
                         f"{'their' if len(missing) > 1 else 'its'} band number{'s' if len(missing) > 1 else ''} "
                         f"({params} parameter{'s' if len(missing) > 1 else ''}).")


def check_scl(path, label: str, like: Footprint) -> None:
    """InputError unless ``path`` is a readable one-band integer SCL (classes 0..11) overlapping ``like``."""
    path = _existing(path, label)
    with _open(path, label) as src:
        if src.count != 1:
            raise InputError(f"The {label} {path} has {src.count} bands, but a scene classification has one: give "
                             "the SCL raster (..._SCL_20m) of that date.")
        dtype = np.dtype(src.dtypes[0])
        if not np.issubdtype(dtype, np.integer):
            raise InputError(f"The {label} {path} holds {dtype.name} values, but a scene classification holds "
                             "integer classes 0..11: give the SCL raster (..._SCL_20m) of that date.")
        if src.crs is None:
            raise InputError(f"The {label} {path} has no coordinate reference system: assign the one of the "
                             f"{like.label} ({_crs_name(like.crs)}) and run again.")
        scale = max(1, math.ceil(max(src.width, src.height) / 512))
        sample = src.read(1, out_shape=(max(1, src.height // scale), max(1, src.width // scale)))
        if src.nodata is not None:
            sample = sample[sample != src.nodata]
        scl = Footprint(label=label, bounds=tuple(src.bounds), crs=src.crs, width=src.width, height=src.height,
                        count=1)
    if sample.size:
        low, high = int(sample.min()), int(sample.max())
        if low < 0 or high > 11:
            raise InputError(f"The {label} {path} holds values {low}..{high}, but scene classification classes are "
                             "0..11: give the SCL raster (..._SCL_20m) of that date, not a band or an index.")
    box = _in_crs(scl, like.crs)
    if box is None or _intersection_area(box, like.bounds) <= 0:
        raise InputError(f"The {label} {path} ({_extent(scl.bounds, scl.crs)}) does not overlap the {like.label} "
                         f"({_extent(like.bounds, like.crs)}): give the SCL of the same date and tile.")


# -- valid pixels ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Counts:
    data: int            # pixels with a finite value, not no data, in every band
    valid: int           # of those, SCL usable (or every one when no SCL is used)
    scl_nodata: int      # of those, SCL 0 (no data)
    sample: int          # pixels sampled
    total: int           # pixels in the raster

    def estimate(self, n: int) -> int:
        return int(round(n * self.total / self.sample)) if self.sample else 0


def _sample_windows(src, budget: int) -> tuple[list[Window], bool]:
    """Full-width strips, evenly spread and on the file's block rows, holding about ``budget`` pixels.

    A decimated read of a tiled GeoTIFF decodes every tile it touches, so a decimated read of the
    whole file costs as much as reading it all (2-4 s for a full 6-band tile stack); strips of block
    rows cost in proportion to their share. Returns (windows, True when they cover the whole raster).
    """
    height, width = src.height, src.width
    if height * width <= budget:
        return [Window(0, 0, width, height)], True
    block_rows = src.block_shapes[0][0] if src.block_shapes else 1
    if block_rows >= height:
        return [Window(0, 0, width, height)], True
    strip = block_rows * max(1, math.ceil(64 / block_rows))
    strips = math.ceil(height / strip)
    wanted = max(1, budget // (strip * width))
    if wanted >= strips:
        return [Window(0, 0, width, height)], True
    picks = sorted({min(strips - 1, int((k + 0.5) * strips / wanted)) for k in range(wanted)})
    return [Window(0, p * strip, width, min(strip, height - p * strip)) for p in picks], False


def _count(stack_path: str, label: str, scl_path, use_scl: bool, max_pixels: int, confirm_below: int) -> _Counts:
    stack_path = _existing(stack_path, label)
    scl_label = f"SCL of the {label}"
    if use_scl and scl_path is not None:
        scl_path = _existing(scl_path, scl_label)
    else:
        scl_path = None
    with rasterio.Env(GDAL_NUM_THREADS="ALL_CPUS"), _open(stack_path, label) as src:
        scl_src = _open(scl_path, scl_label) if scl_path else None
        try:
            scl_view = scl_src
            if scl_src is not None and not (scl_src.crs == src.crs and scl_src.shape == src.shape
                                            and scl_src.transform.almost_equals(src.transform)):
                scl_view = WarpedVRT(scl_src, crs=src.crs, transform=src.transform, width=src.width,
                                     height=src.height, resampling=Resampling.nearest, nodata=0)
            windows, complete = _sample_windows(src, SAMPLE_PIXELS)
            counts = _count_windows(src, scl_view, windows, max_pixels)
            if not complete and counts.estimate(counts.valid) < max(1, confirm_below):
                # The sample may have missed the few clear parts: look at the whole raster before refusing it.
                counts = _count_windows(src, scl_view, [Window(0, 0, src.width, src.height)], max_pixels)
        finally:
            if scl_src is not None:
                scl_src.close()
    return counts


def _count_windows(src, scl, windows: list[Window], max_pixels: int) -> _Counts:
    sampled = sum(w.width * w.height for w in windows)
    factor = max(1, math.ceil(math.sqrt(sampled / max(1, max_pixels))))
    nodata = list(src.nodatavals)
    data = valid = scl_nodata = sample = 0
    for window in windows:
        shape = (max(1, math.ceil(window.height / factor)), max(1, math.ceil(window.width / factor)))
        values = src.read(window=window, out_shape=(src.count, *shape))
        ok = np.ones(shape, dtype=bool)
        for band, no_value in zip(values, nodata):
            if np.issubdtype(band.dtype, np.floating):
                ok &= np.isfinite(band)
            if no_value is not None and not (isinstance(no_value, float) and math.isnan(no_value)):
                ok &= band != no_value
        sample += ok.size
        data += int(np.count_nonzero(ok))
        if scl is None:
            valid += int(np.count_nonzero(ok))
            continue
        classes = scl.read(1, window=window, out_shape=shape)
        valid += int(np.count_nonzero(ok & ~np.isin(classes, INVALID_SCL)))
        scl_nodata += int(np.count_nonzero(ok & (classes == 0)))
    return _Counts(data=data, valid=valid, scl_nodata=scl_nodata, sample=sample, total=src.width * src.height)


def count_valid_pixels(stack_path, label: str, *, scl_path=None, use_scl: bool = True,
                       max_pixels: int = 1_000_000) -> tuple[int, int]:
    """(valid, total) pixels of a stack, the valid count estimated from a decimated sample.

    Valid: finite and not no data in every band and, with ``use_scl`` and an ``scl_path``, an SCL
    class outside ``masks.INVALID_SCL`` (no data, saturated, cloud shadow, clouds, cirrus, snow). The
    sample is at most ``max_pixels`` pixels, read (nearest neighbour) from evenly spread strips of the
    file's block rows (about SAMPLE_PIXELS source pixels); when it finds nothing valid the whole
    raster is read, decimated, before answering 0. ``total`` is exact (width x height).
    """
    counts = _count(stack_path, label, scl_path, use_scl, max_pixels, confirm_below=1)
    return counts.estimate(counts.valid), counts.total


def require_valid_pixels(stack_path, label: str, *, scl_path=None, use_scl: bool = True,
                         min_valid: int = 100) -> None:
    """InputError when fewer than ``min_valid`` pixels (estimated) are valid; the message says why."""
    counts = _count(os.fspath(stack_path), label, scl_path, use_scl, 1_000_000, confirm_below=min_valid)
    data, valid = counts.estimate(counts.data), counts.estimate(counts.valid)
    if valid >= min_valid:
        return
    path = os.fspath(stack_path)
    if data < min_valid:
        what = "no pixel with data" if data == 0 else f"only about {data:,} pixels with data (of {counts.total:,})"
        raise InputError(f"The {label} {path} has {what} (every pixel is NaN or the no-data value in at least one "
                         "band): choose an image that covers the area of interest, or check the raster's no-data "
                         "value.")
    if counts.scl_nodata * 2 > counts.data:  # mostly SCL "no data" under the image's data: the wrong SCL
        raise InputError(f"The SCL of the {label} ({os.fspath(scl_path)}) is no data (class 0) where the image has "
                         "data: give the scene classification of the same date and area, or run without the SCL "
                         "mask.")
    what = "no valid pixel" if valid == 0 else f"only about {valid:,} valid pixels (of {counts.total:,})"
    raise InputError(f"The {label} {path} has {what}: its {data:,} pixels with data are cloud, cloud shadow, cirrus, "
                     "snow or saturated in its SCL, so choose a clearer image of that date or a larger area of "
                     "interest.")


# -- output folder ---------------------------------------------------------------------------------------


def estimate_run_bytes(width: int, height: int, *, bands: int = 5, methods: int = 5, cluster_methods: int = 4,
                       probability_methods: int = 2, with_dem: bool = True, with_reference: bool = True) -> int:
    """An over-estimate of the bytes a one-step run has in its output and working folders at once.

    Assumptions (``width`` x ``height`` pixels of the 20 m analysis grid):

    - three float32 stacks of ``bands`` bands (pre, post, post aligned), written with light deflate at
      DEFLATE_RATIO (0.7) of their raw size (the built-in example compresses to 0.56, noise to 0.89:
      the margin below covers noisy scenes);
    - three uint8 SCLs (pre, post, post aligned) and, per method, a uint8 mask, per clustering a
      uint8 cluster map, per Gaussian mixture a float32 probability (deflate ratio), all at raw size
      for the uint8 ones (they compress to a few % in practice);
    - with a DEM a float32 slope; with a reference a uint8 rasterised copy;
    - SMALL_FILES_BYTES (20 MB) for polygons, report, figures and metrics, and 10 % on top of it all.

    The finished files are renamed into place (no copy), so they are not counted twice; the
    clustering's and evaluation's own scratch files go to the system's temporary folder, not here.
    """
    pixels = max(0, int(width)) * max(0, int(height))
    floats = 3 * bands + probability_methods + (1 if with_dem else 0)
    uint8s = 3 + methods + cluster_methods + (1 if with_reference else 0)
    raster_bytes = pixels * (4 * floats * DEFLATE_RATIO + uint8s)
    return int(math.ceil(1.1 * (raster_bytes + SMALL_FILES_BYTES)))


def check_output_folder(folder, *, needed_bytes: int = 0) -> None:
    """InputError unless ``folder`` is (or can be made) a writable folder with ``needed_bytes`` free.

    A missing folder is created (the run would create it anyway). Writability is tested by creating
    and removing a uniquely named hidden file in it.
    """
    path = os.path.abspath(os.fspath(folder))
    shown = os.fspath(folder)
    if os.path.exists(path) and not os.path.isdir(path):
        raise InputError(f"The output folder {shown} is a file, not a folder: choose a folder.")
    if not os.path.isdir(path):
        parent = os.path.dirname(path)
        while parent and not os.path.exists(parent) and os.path.dirname(parent) != parent:
            parent = os.path.dirname(parent)
        if os.path.exists(parent) and not os.path.isdir(parent):
            raise InputError(f"The output folder {shown} cannot be created because {parent} is a file, not a "
                             "folder: choose a folder.")
        try:
            os.makedirs(path, exist_ok=True)
        except PermissionError as error:
            raise InputError(f"The output folder {shown} cannot be created (permission denied): choose a folder "
                             "you can write to.") from error
        except OSError as error:
            raise InputError(f"The output folder {shown} cannot be created ({error.strerror or error}): choose "
                             "another folder.") from error
    try:
        handle, probe = tempfile.mkstemp(prefix=".landslide-write-test-", dir=path)
        os.close(handle)
        os.remove(probe)
    except OSError as error:
        reason = "permission denied" if isinstance(error, PermissionError) else (error.strerror or str(error))
        raise InputError(f"The output folder {shown} is not writable ({reason}): choose a folder you can write "
                         "to.") from error
    if needed_bytes > 0:
        free = shutil.disk_usage(path).free
        if free < needed_bytes:
            raise InputError(f"The output folder {shown} has {_size(free)} free but the run needs about "
                             f"{_size(needed_bytes)}: free some space on that disk, or choose a folder on another "
                             "one.")
