"""From a landslide mask to cleaned landslide polygons with per-polygon statistics.

Cleaning is a morphological opening (removes one-pixel lines and specks, typically co-registration
edges and field borders) followed by a minimum mapping unit on 8-connected components. A whole
uint8 mask of a full Sentinel-2 tile is 5490 x 5490 = 30 MB and its int32 component labels 120 MB,
so both are held whole (one pass of OpenCV, exact components across the tile); the rasters the
statistics come from (dNDVI, slope, probability) are read block by block and reduced per component
with ``np.bincount``.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import rasterio
from rasterio.windows import Window

from . import rasters

LANDSLIDE, NOT_LANDSLIDE, NO_DATA = 1, 0, 255

#: Rows per block of the statistics (a module constant so tests can make strips small).
BLOCK_ROWS = rasters.BLOCK_ROWS


@dataclass
class LandslidePolygon:
    """One landslide polygon: geometry (GeoJSON-like, in the raster CRS) and statistics.

    ``mean_dndvi`` (post - pre NDVI), ``mean_slope`` (degrees) and ``mean_probability`` are means over
    the polygon's pixels with a finite value; None when the source raster was not given or had no
    finite value inside the polygon.
    """

    id: int
    geometry: dict
    area_m2: float
    n_pixels: int
    mean_dndvi: float | None = None
    mean_slope: float | None = None
    mean_probability: float | None = None

    def properties(self, rounded: bool = False) -> dict:
        """The attributes; ``rounded``: to what the numbers mean (``DECIMALS``), for files people open."""
        values = {"id": self.id, "area_m2": self.area_m2, "n_pixels": self.n_pixels,
                  "mean_dndvi": self.mean_dndvi, "mean_slope": self.mean_slope, "mean_prob": self.mean_probability}
        if rounded:
            values = {k: round(v, DECIMALS[k]) if k in DECIMALS and v is not None else v for k, v in values.items()}
        return values


#: Decimals the polygon attributes mean something to (area in m² of 20 m pixels, index changes, degrees).
DECIMALS = {"area_m2": 1, "mean_dndvi": 3, "mean_slope": 1, "mean_prob": 3}


def minimum_pixels(min_pixels: int | None = None, min_area_m2: float | None = None,
                   pixel_area_m2: float | None = None) -> int:
    """The minimum mapping unit in pixels: the larger of ``min_pixels`` and ``min_area_m2`` in pixels."""
    need = int(min_pixels or 0)
    if min_area_m2:
        if not pixel_area_m2 or pixel_area_m2 <= 0:
            raise ValueError("a minimum area in m² needs the pixel area (pixel_area_m2)")
        need = max(need, int(math.ceil(float(min_area_m2) / float(pixel_area_m2) - 1e-9)))
    return need


def _opened(landslide: np.ndarray, opening_px: int) -> np.ndarray:
    import cv2

    if opening_px <= 0:
        return landslide
    size = 2 * int(opening_px) + 1
    # An elliptical element of radius 1 is a 3 x 3 cross: it removes one-pixel lines in any
    # direction, yet keeps a 2 x 2 block's neighbours of a real scar.
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
    return cv2.morphologyEx(landslide, cv2.MORPH_OPEN, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0)


def _components(landslide: np.ndarray, min_pixels: int) -> tuple[np.ndarray, np.ndarray]:
    """int32 labels 1..n of 8-connected components with at least ``min_pixels`` pixels, and their sizes."""
    import cv2

    count, labels, stats, _ = cv2.connectedComponentsWithStats(landslide, connectivity=8, ltype=cv2.CV_32S)
    sizes = stats[:, cv2.CC_STAT_AREA].astype(np.int64)
    keep = sizes >= max(min_pixels, 1)
    keep[0] = False  # background
    new_id = np.zeros(count, dtype=np.int32)
    new_id[keep] = np.arange(1, int(keep.sum()) + 1, dtype=np.int32)
    return new_id[labels], sizes[keep]


def _validate_mask(mask: np.ndarray) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"a landslide mask must be a 2-D array; got shape {mask.shape}")
    if mask.dtype == bool:
        return mask.astype(np.uint8)
    if mask.dtype == np.uint8:  # a histogram of the 256 values: the values present, far faster than np.unique
        values = np.flatnonzero(np.bincount(mask.ravel(), minlength=256)).astype(np.uint8)
    else:
        values = np.unique(mask)
    if not np.isin(values, (LANDSLIDE, NOT_LANDSLIDE, NO_DATA)).all():
        raise ValueError(f"a landslide mask holds 1 (landslide), 0 (not) and 255 (no data); this one holds "
                         f"{', '.join(str(v) for v in values[:10])}: is it a cluster raster? Use the mask output")
    return mask.astype(np.uint8, copy=False)


def clean_mask(
    mask: np.ndarray,
    *,
    opening_px: int = 1,
    min_pixels: int | None = None,
    min_area_m2: float | None = None,
    pixel_area_m2: float | None = None,
) -> np.ndarray:
    """Opening of radius ``opening_px`` (0 disables), then removal of 8-connected groups smaller
    than the minimum mapping unit (``min_pixels`` and/or ``min_area_m2`` with ``pixel_area_m2``).

    Input and output are uint8 1/0/255 (255 = no data, kept as is); the input is not modified.
    """
    mask = _validate_mask(mask)
    landslide = _opened((mask == LANDSLIDE).astype(np.uint8), int(opening_px))
    labels, _ = _components(landslide, minimum_pixels(min_pixels, min_area_m2, pixel_area_m2))
    out = np.where(mask == NO_DATA, NO_DATA, NOT_LANDSLIDE).astype(np.uint8)
    out[labels > 0] = LANDSLIDE
    return out


def _check_grid(path: str, like, label: str) -> None:
    with rasterio.open(path) as src:
        same = (src.width, src.height) == (like.width, like.height) and src.transform.almost_equals(like.transform)
        if not same:
            raise ValueError(f"{label} {os.fspath(path)} is not on the mask's grid ({src.width} x {src.height} px "
                             f"against {like.width} x {like.height}, or a different origin/pixel size); "
                             "resample it onto the mask's grid first")


def _band_of(path: str, name: str) -> int:
    """The band described ``name``, else band 1 of a single-band raster."""
    descriptions = rasters.band_descriptions(path)
    for i, d in enumerate(descriptions):
        if d.strip().lower() == name.lower():
            return i + 1
    if len(descriptions) == 1:
        return 1
    raise ValueError(f"{os.fspath(path)} has {len(descriptions)} bands and none is described '{name}'; "
                     f"give a single-band {name} raster")


class _Means:
    """Per-component means of a raster read block by block (finite values only)."""

    def __init__(self, n: int):
        self.sums = np.zeros(n + 1)
        self.counts = np.zeros(n + 1)

    def add(self, labels: np.ndarray, values: np.ndarray) -> None:
        """``labels`` (> 0) and ``values`` of the same pixels, in the same order (the polygons' pixels of a block)."""
        finite = np.isfinite(values)
        lab = labels[finite]
        self.sums += np.bincount(lab, weights=values[finite].astype(np.float64), minlength=self.sums.size)
        self.counts += np.bincount(lab, minlength=self.counts.size)

    def means(self) -> list[float | None]:
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = self.sums / self.counts
        return [float(m) if c > 0 else None for m, c in zip(mean[1:], self.counts[1:])]


def mask_to_polygons(
    mask_path: str | os.PathLike,
    *,
    dndvi_path: str | os.PathLike | None = None,
    pre_stack_path: str | os.PathLike | None = None,
    post_stack_path: str | os.PathLike | None = None,
    band_numbers: dict[str, int] | None = None,
    slope_path: str | os.PathLike | None = None,
    dem_path: str | os.PathLike | None = None,
    probability_path: str | os.PathLike | None = None,
    opening_px: int = 1,
    min_pixels: int | None = None,
    min_area_m2: float | None = None,
    progress=None,
    is_cancelled=None,
) -> list[LandslidePolygon]:
    """Landslide polygons of a 1/0/255 mask raster, cleaned with :func:`clean_mask`.

    Mean dNDVI per polygon comes from ``dndvi_path`` (a dNDVI raster, the band described "dNDVI" or a
    single band) or is computed from the pre- and post-event reflectance stacks (``pre_stack_path``
    and ``post_stack_path``, bands B04 and B8A). Mean slope comes from ``slope_path`` (degrees) or is
    computed from ``dem_path``; mean probability from ``probability_path``. Every one of those rasters
    must be on the mask's grid.

    Geometries are polygonised with 4-connected edges and grouped per 8-connected component, so two
    pixels touching only at a corner give one MultiPolygon, a valid geometry, rather than a ring that
    touches itself.
    """
    from rasterio import features as rio_features

    mask_path = os.fspath(mask_path)
    if (pre_stack_path is None) != (post_stack_path is None):
        raise ValueError("the mean dNDVI needs both the pre-event and the post-event stack (or a dNDVI raster)")
    if dndvi_path is not None and pre_stack_path is not None:
        raise ValueError("give either a dNDVI raster or the pre/post stacks, not both")
    with rasterio.open(mask_path) as src:
        if src.count != 1:
            raise ValueError(f"{mask_path} has {src.count} bands; a landslide mask has one band (1/0/255)")
        grid = src.profile
        transform, crs = src.transform, src.crs
        area = rasters.pixel_area_m2(transform, crs)
        mask = _validate_mask(src.read(1))
        for path, label in ((dndvi_path, "dNDVI raster"), (pre_stack_path, "pre-event stack"),
                            (post_stack_path, "post-event stack"), (slope_path, "slope raster"),
                            (probability_path, "probability raster")):
            if path is not None:
                _check_grid(os.fspath(path), src, label)
    rasters.report(progress, 5)

    landslide = _opened((mask == LANDSLIDE).astype(np.uint8), int(opening_px))
    del mask
    labels, sizes = _components(landslide, minimum_pixels(min_pixels, min_area_m2, area))
    del landslide
    n = int(sizes.size)
    rasters.check_cancelled(is_cancelled)
    rasters.report(progress, 20)

    workdir = None
    try:
        if dem_path is not None and slope_path is None:
            from . import masks

            workdir = tempfile.mkdtemp(prefix="landslide_slope_")
            slope_path = os.path.join(workdir, "slope.tif")
            masks.write_slope(os.fspath(dem_path), mask_path, slope_path)
        sources = (("dndvi", dndvi_path is not None or pre_stack_path is not None),
                   ("slope", slope_path is not None), ("prob", probability_path is not None))
        means = {key: _Means(n) for key, on in sources if on}
        if means and n:
            _accumulate(means, labels, grid, dndvi_path=dndvi_path, pre_stack_path=pre_stack_path,
                        post_stack_path=post_stack_path, band_numbers=band_numbers, slope_path=slope_path,
                        probability_path=probability_path, progress=progress, is_cancelled=is_cancelled)
    finally:
        if workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    stats = {key: m.means() for key, m in means.items()}
    rasters.report(progress, 80)

    pieces: dict[int, list] = {}
    if n:
        for geom, value in rio_features.shapes(labels, mask=labels > 0, connectivity=4, transform=transform):
            pieces.setdefault(int(value), []).append(_rings(geom["coordinates"]))
    rasters.check_cancelled(is_cancelled)
    polygons = []
    for k in range(1, n + 1):
        rings = pieces[k]
        geometry = ({"type": "Polygon", "coordinates": rings[0]} if len(rings) == 1
                    else {"type": "MultiPolygon", "coordinates": rings})
        polygons.append(LandslidePolygon(
            id=k, geometry=geometry, area_m2=float(sizes[k - 1] * area), n_pixels=int(sizes[k - 1]),
            mean_dndvi=stats["dndvi"][k - 1] if "dndvi" in stats else None,
            mean_slope=stats["slope"][k - 1] if "slope" in stats else None,
            mean_probability=stats["prob"][k - 1] if "prob" in stats else None))
    rasters.report(progress, 100)
    return polygons


def _rings(rings) -> list:
    """A polygon's rings as nested lists of floats (rasterio gives tuples), ready for json."""
    return [[[float(x), float(y)] for x, y in ring] for ring in rings]


#: Threads that read the rasters of the polygon statistics side by side (GDAL decodes without the GIL).
READ_THREADS = 2


def _accumulate(means, labels, grid, *, dndvi_path, pre_stack_path, post_stack_path, band_numbers,
                slope_path, probability_path, progress, is_cancelled) -> None:
    """Per-polygon sums of every statistic, block by block, from the polygons' pixels only.

    Each raster's block is read by one task (side by side in ``READ_THREADS`` threads), which opens the raster
    for that block only: GDAL frees a dataset's cached blocks when it is closed, so what the reading threads
    hold stays one block of each raster, however large GDAL's cache (blocks cached by one thread and freed by
    another are not reused by the allocator, and would add up to the whole cache per thread). The NDVI and the
    sums are computed from the pixels of the polygons, in the calling thread, which alone reports progress
    and checks cancellation.
    """
    from concurrent.futures import ThreadPoolExecutor

    from . import indices

    readers = []  # (statistic, path, bands) each read by one task per block
    if dndvi_path is not None:
        readers.append(("dndvi", os.fspath(dndvi_path), (_band_of(dndvi_path, "dNDVI"),)))
    if pre_stack_path is not None:
        for key, path in (("pre", pre_stack_path), ("post", post_stack_path)):
            bands = rasters.find_bands(path, ("B04", "B8A"), band_numbers)
            readers.append((key, os.fspath(path), (bands["B04"], bands["B8A"])))
    if slope_path is not None:
        readers.append(("slope", os.fspath(slope_path), (1,)))
    if probability_path is not None:
        readers.append(("prob", os.fspath(probability_path), (1,)))
    with ThreadPoolExecutor(max_workers=READ_THREADS, thread_name_prefix="landslide-polygons") as pool:
        try:
            height, width = grid["height"], grid["width"]
            for window in rasters.row_windows(height, width, BLOCK_ROWS):
                rasters.check_cancelled(is_cancelled)
                rows = slice(window.row_off, window.row_off + window.height)
                block = labels[rows]
                inside = block > 0
                if not inside.any():
                    continue
                lab = block[inside]
                tasks = [(key, pool.submit(_read_at, path, bands, window, inside)) for key, path, bands in readers]
                values = {key: task.result() for key, task in tasks}
                if "dndvi" in values:
                    means["dndvi"].add(lab, values["dndvi"][0])
                if "pre" in values:
                    (red_pre, nir_pre), (red_post, nir_post) = values["pre"], values["post"]
                    means["dndvi"].add(lab, indices.ndvi(red_post, nir_post) - indices.ndvi(red_pre, nir_pre))
                for key in ("slope", "prob"):
                    if key in values:
                        means[key].add(lab, values[key][0])
                rasters.report(progress, 20 + 60 * (window.row_off + window.height) / height)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def _read_at(path: str, bands, window, inside: np.ndarray) -> list[np.ndarray]:
    """Bands of a block at the pixels ``inside``, as float32 with the raster's nodata value as NaN (reflectance,
    where a stack stores scaled DNs: ``rasters.unscale``).

    Only the raster's own tiles that hold such a pixel are read (decoded): scars of an event usually fill a
    small part of a tile, and the rest of a strip is not needed."""
    out = []
    with rasterio.open(path) as src:
        tile = max(1, int(src.block_shapes[0][1]))
        used = inside.any(axis=0)
        spans = [(c, min(c + tile, inside.shape[1])) for c in range(0, inside.shape[1], tile) if used[c:c + tile].any()]
        for band in bands:
            strip = np.empty(inside.shape, dtype=src.dtypes[band - 1])
            for c0, c1 in spans:
                part = Window(window.col_off + c0, window.row_off, c1 - c0, window.height)
                strip[:, c0:c1] = src.read(band, window=part)
            values = strip[inside].astype(np.float32)  # every pixel inside lies in a tile read above
            nodata = src.nodatavals[band - 1]
            if nodata is not None and not (isinstance(nodata, float) and math.isnan(nodata)):
                values[values == nodata] = np.nan
            rasters.unscale(values, float(src.scales[band - 1]), float(src.offsets[band - 1]))
            out.append(values)
    return out


def crs_name(crs) -> str | None:
    """An OGC URN GDAL reads from a GeoJSON "crs" member ("urn:ogc:def:crs:EPSG::32633")."""
    if crs is None:
        return None
    from rasterio.crs import CRS

    crs = CRS.from_user_input(crs)
    epsg = crs.to_epsg()
    if epsg is None:
        raise ValueError(f"the CRS {crs.to_string()[:80]} has no EPSG code; GeoJSON can only name a CRS by code: "
                         "reproject the mask to the Sentinel-2 tile's UTM zone")
    return f"urn:ogc:def:crs:EPSG::{epsg}"


def write_polygons_geojson(polygons: Sequence[LandslidePolygon], path: str | os.PathLike, crs) -> str:
    """Write ``polygons`` as a GeoJSON FeatureCollection in ``crs`` (named by EPSG code), attributes rounded to
    what they mean (``DECIMALS``); atomic."""
    collection = {"type": "FeatureCollection"}
    name = crs_name(crs)
    if name:
        collection["crs"] = {"type": "name", "properties": {"name": name}}
    collection["features"] = [
        {"type": "Feature", "id": p.id, "properties": p.properties(rounded=True), "geometry": p.geometry}
        for p in polygons]
    path = os.fspath(path)
    with rasters.atomic_output(path) as tmp, open(tmp, "w", encoding="utf-8") as out:
        out.write(json.dumps(collection))  # json.dumps encodes in C; json.dump would in Python, 8 times slower
    return path
