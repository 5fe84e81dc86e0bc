"""Multi-date composites of Sentinel-2 L2A products: per pixel, from the clear observations only.

Products are told apart by their own metadata (``products.read_product_info``): products sensed on the
same day are tiles of one date and are mosaicked (``products.prepare_l2a``); different days are dates of
one period and are composited. Per pixel, an observation is clear when its SCL is an observed surface
(vegetation, bare soil, water, unclassified and, unless ``exclude_dark``, dark area / topographic shadow)
and every band has data.

- ``median``: the per-band median of the clear observations (clouds and single-date noise go away);
- ``greenest``: the clear observation with the highest NDVI, all bands from that date (for a pre-event
  period: the vegetation before the event at its fullest, so a scar's NDVI loss is not hidden by a dry
  date).

Outputs follow the plugin's conventions: a reflectance stack (float32, NaN no data, bands described
B02, ...), an SCL (uint8, 0 = no clear observation: the class of the chosen observation for ``greenest``,
the most frequent clear class for ``median``) and a count raster (uint8, band "CLEAR_COUNT": the number of
clear observations of each pixel). Work goes block by block over dates prepared on one grid: full tiles
are 30 M pixels, and a stack of many dates is never held whole.
"""
from __future__ import annotations

import datetime
import os
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import Resampling

from . import indices, products, rasters

#: SCL classes of an observed surface (2 dark area, 4 vegetation, 5 not vegetated, 6 water, 7 unclassified).
CLEAR_CLASSES = (2, 4, 5, 6, 7)
METHODS = ("median", "greenest")
#: Memory for one block of every date (bytes); blocks get fewer rows as dates are added.
BLOCK_BUDGET = 256 * 1024 * 1024


@dataclass(frozen=True)
class CompositeResult:
    stack_path: Path
    scl_path: Path
    count_path: Path
    method: str
    dates: tuple[str, ...]                 # YYYY-MM-DD of every date composited, oldest first
    tiles_per_date: tuple[int, ...]        # how many tiles each date mosaicked
    band_names: tuple[str, ...]
    width: int
    height: int
    observed_fraction: float               # share of pixels with at least one clear observation
    mean_count: float                      # mean number of clear observations per pixel
    notes: tuple[str, ...] = ()


def group_by_date(sources) -> dict[datetime.date, list[str]]:
    """Products by sensing day, from their own metadata: the tiles of one date together, dates oldest first."""
    groups: dict[datetime.date, list[str]] = {}
    for source in _as_list(sources):
        info = products.read_product_info(source)
        groups.setdefault(info.sensing_date, []).append(os.fspath(source))
    return dict(sorted(groups.items()))


def _as_list(sources) -> list:
    if isinstance(sources, (str, os.PathLike)):
        return [sources]
    sources = list(sources)
    if not sources:
        raise ValueError("no Sentinel-2 product given; give the products of every date of the period")
    return sources


def _block_rows(n_dates: int, n_bands: int, width: int) -> int:
    per_row = max(1, n_dates * (n_bands + 1) * width * 4 * 2)  # the stack, its SCL, and working copies
    return int(max(16, min(rasters.BLOCK_ROWS, BLOCK_BUDGET // per_row)))


def composite_blocks(reflectance: np.ndarray, scl: np.ndarray, *, method: str = "median",
                     band_names: Sequence[str] = products.DEFAULT_BANDS,
                     clear_classes: Sequence[int] = CLEAR_CLASSES) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Composite of one block: ``reflectance`` (dates, bands, rows, cols) float32, ``scl`` (dates, rows, cols).

    Returns (reflectance (bands, rows, cols) float32 NaN where no clear observation, SCL uint8, count uint8).
    """
    if method not in METHODS:
        raise ValueError(f"composite method {method!r} is unknown; choose {' or '.join(METHODS)}")
    clear = np.isin(scl, np.asarray(clear_classes, dtype=np.uint8)) & np.isfinite(reflectance).all(axis=1)
    count = clear.sum(axis=0).astype(np.uint8)
    seen = count > 0
    if method == "median":
        masked = np.where(clear[:, None], reflectance, np.float32(np.nan))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # pixels without any clear observation
            out = np.nanmedian(masked, axis=0).astype(np.float32)
        del masked
        classes = np.asarray(clear_classes, dtype=np.uint8)
        votes = np.stack([(clear & (scl == c)).sum(axis=0) for c in classes])
        out_scl = np.where(seen, classes[np.argmax(votes, axis=0)], np.uint8(0)).astype(np.uint8)
    else:
        names = list(band_names)
        missing = [b for b in ("B04", "B8A") if b not in names]
        if missing:
            raise ValueError(f"the greenest-pixel composite needs bands B04 and B8A for NDVI; {', '.join(missing)} "
                             "missing: add them to the bands")
        greenness = indices.ndvi(reflectance[:, names.index("B04")], reflectance[:, names.index("B8A")])
        greenness = np.where(clear & np.isfinite(greenness), greenness, np.float32(-np.inf))
        best = np.argmax(greenness, axis=0)
        out = np.take_along_axis(reflectance, best[None, None], axis=0)[0]
        out_scl = np.take_along_axis(scl, best[None], axis=0)[0].astype(np.uint8)
        out = np.where(seen[None], out, np.float32(np.nan)).astype(np.float32)
        out_scl = np.where(seen, out_scl, np.uint8(0)).astype(np.uint8)
    out[:, ~seen] = np.nan
    return out, out_scl, count


def composite_l2a(sources, stack_path, scl_path, count_path, *, method: str = "median",
                  bands: Sequence[str] = products.DEFAULT_BANDS, aoi=None, aoi_crs="EPSG:4326",
                  exclude_dark: bool = False, work_dir=None, progress: rasters.Progress | None = None,
                  is_cancelled: rasters.IsCancelled | None = None, overviews: bool = True) -> CompositeResult:
    """Composite the products of one period (several dates, each one tile or several) into three rasters.

    Each date is first prepared (reflectance with its offset, SCL, area of interest, mosaic of its tiles) in
    a temporary folder beside the outputs (or in ``work_dir``); the first date's grid is the output grid,
    other dates are resampled onto it where theirs differs. The three outputs appear only when complete, with
    internal overviews (the stack and the SCL without them when ``overviews`` is False: working files). The
    stack stores DNs with a GDAL scale and offset as ``products.prepare_l2a``'s does (composited values
    rounded to the nearest DN).
    """
    if method not in METHODS:
        raise ValueError(f"composite method {method!r} is unknown; choose {' or '.join(METHODS)}")
    outputs = [os.path.abspath(os.fspath(p)) for p in (stack_path, scl_path, count_path)]
    if len(set(outputs)) < 3:
        raise ValueError("the composite, its SCL and its count need three different file names")
    bands = products.normalise_bands(bands)
    if method == "greenest" and not {"B04", "B8A"} <= set(bands):
        raise ValueError("the greenest-pixel composite needs bands B04 and B8A for NDVI; add them to the bands")
    groups = group_by_date(sources)
    clear_classes = tuple(c for c in CLEAR_CLASSES if not (exclude_dark and c == 2))
    notes = []
    if len(groups) == 1:
        notes.append("all products are of one date: the result is that date's mosaic, not a composite")
    folder = work_dir or os.path.dirname(outputs[0])
    os.makedirs(folder, exist_ok=True)
    n = len(groups)
    with tempfile.TemporaryDirectory(prefix=".composite.", dir=folder) as tmp:
        prepared = []
        for k, (day, paths) in enumerate(groups.items()):
            rasters.check_cancelled(is_cancelled)

            def step(percent, k=k):
                rasters.report(progress, 60.0 * (k + percent / 100) / n)

            result = products.prepare_l2a(
                paths, Path(tmp) / f"{day:%Y%m%d}_stack.tif", Path(tmp) / f"{day:%Y%m%d}_scl.tif", bands=bands,
                aoi=aoi, aoi_crs=aoi_crs, is_cancelled=is_cancelled, progress=step, overviews=False)
            prepared.append(result)
            notes += list(result.notes)
        first = prepared[0]
        grid = rasters.Grid(first.crs, first.transform, first.width, first.height)
        same = [rasters.Grid(p.crs, p.transform, p.width, p.height).same_as(grid) for p in prepared]
        like = {"crs": grid.crs, "transform": grid.transform, "width": grid.width, "height": grid.height}
        rows = _block_rows(n, len(bands), grid.width)
        windows = list(rasters.row_windows(grid.height, grid.width, rows))
        dates = tuple(p.sensing_date for p in prepared)
        tags = {"SENSING_DATE": dates[-1], "COMPOSITE_DATES": ",".join(dates), "COMPOSITE_METHOD": method,
                "TILE": "-".join(dict.fromkeys(p.tile for p in prepared)),
                "PRODUCT": ",".join(i.name for p in prepared for i in p.infos),
                "CLEAR_SCL_CLASSES": ",".join(str(c) for c in clear_classes)}
        observed, total_count = 0, 0
        # The composite's DNs: the scale and the most negative offset of the dates (which holds every date).
        scalings = []
        for p in prepared:
            with rasterio.open(p.stack_path) as src:
                scalings.append(rasters.stored_scaling(src))
        scaling = (scalings[0][0], tuple(min(s[1][i] for s in scalings) for i in range(len(bands))))
        indexes = list(range(1, len(bands) + 1))
        average, nearest = (Resampling.average, Resampling.nearest) if overviews else (None, None)
        with rasters.atomic_output(stack_path, overviews=average) as stack_tmp, \
                rasters.atomic_output(scl_path, overviews=nearest) as scl_tmp, \
                rasters.atomic_output(count_path, overviews=Resampling.nearest) as count_tmp:
            with rasterio.open(stack_tmp, "w", **rasters.reflectance_profile(like, len(bands), scaling)) as stack_dst, \
                    rasterio.open(scl_tmp, "w", **rasters.geotiff_profile(like, 1, "uint8", 0)) as scl_dst, \
                    rasterio.open(count_tmp, "w", **rasters.geotiff_profile(like, 1, "uint8", None)) as count_dst:
                rasters.set_scaling(stack_dst, scaling)
                for index, name in enumerate(bands, start=1):
                    stack_dst.set_band_description(index, name)
                scl_dst.set_band_description(1, "SCL")
                count_dst.set_band_description(1, "CLEAR_COUNT")
                for dst in (stack_dst, scl_dst, count_dst):
                    dst.update_tags(**tags)
                sources_open = [(rasterio.open(p.stack_path), rasterio.open(p.scl_path)) for p in prepared]
                try:
                    for b, window in enumerate(windows):
                        rasters.check_cancelled(is_cancelled)
                        h, w = int(window.height), int(window.width)
                        block = np.empty((n, len(bands), h, w), dtype=np.float32)
                        scl = np.empty((n, h, w), dtype=np.uint8)
                        for k, ((stack_src, scl_src), p) in enumerate(zip(sources_open, prepared)):
                            if same[k]:
                                block[k] = rasters.read_reflectance(stack_src, indexes, window)
                                scl[k] = scl_src.read(1, window=window)
                            else:
                                for i in range(len(bands)):
                                    block[k, i] = rasters.read_on_grid(p.stack_path, grid, window, band=i + 1,
                                                                       resampling=Resampling.bilinear)
                                scl[k] = rasters.read_on_grid(p.scl_path, grid, window, dtype="uint8", fill=0)
                        out, out_scl, count = composite_blocks(block, scl, method=method, band_names=bands,
                                                               clear_classes=clear_classes)
                        del block, scl
                        rasters.write_reflectance(stack_dst, out, indexes, window)
                        scl_dst.write(out_scl, 1, window=window)
                        count_dst.write(count, 1, window=window)
                        observed += int(np.count_nonzero(count))
                        total_count += int(count.sum(dtype=np.int64))
                        rasters.report(progress, 60.0 + 40.0 * (b + 1) / len(windows))
                finally:
                    for stack_src, scl_src in sources_open:
                        stack_src.close()
                        scl_src.close()
            rasters.check_cancelled(is_cancelled)
    pixels = float(grid.width * grid.height)
    return CompositeResult(
        stack_path=Path(stack_path), scl_path=Path(scl_path), count_path=Path(count_path), method=method,
        dates=dates, tiles_per_date=tuple(len(p.infos) for p in prepared), band_names=bands, width=grid.width,
        height=grid.height, observed_fraction=observed / pixels, mean_count=total_count / pixels, notes=tuple(notes))
