"""Raster I/O shared by every stage: block windows, atomic GeoTIFF output (with internal overviews), bands by
name, cancellation, the one grid type (``Grid``), pixel size and area, reading any raster onto a grid
(``read_on_grid``), reflectance stacks stored as scaled integers (``read_reflectance``, ``write_reflectance``)
and the bound on GDAL's block cache during a run (``bounded_gdal_cache``)."""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import glob
import logging
import math
import os
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import rasterio
import rasterio.windows
from affine import Affine
from rasterio.enums import Resampling
from rasterio.warp import reproject
from rasterio.windows import Window

Progress = Callable[[float], None]
IsCancelled = Callable[[], bool]

#: Creation options for every GeoTIFF the plugin writes: tiled (fast windowed reads in QGIS),
#: light deflate (fast to write, half the size), BigTIFF when a full tile stack needs it.
GTIFF_OPTIONS = {
    "driver": "GTiff",
    "tiled": True,
    "blockxsize": 512,
    "blockysize": 512,
    "compress": "deflate",
    "zlevel": 1,
    "predictor": 1,
    "bigtiff": "if_safer",
    "num_threads": "all_cpus",
}

#: Creation options of reflectance stacks (``reflectance_profile``): zstd level 1 writes the product's uint16
#: numbers (with horizontal differencing) ~10x faster than deflate wrote float32, and float32 ~3x faster at the
#: same size; one band per tile (INTERLEAVE=BAND), so reading one band decompresses only that band, which
#: keeps a bounded block cache free of charge.
REFLECTANCE_OPTIONS = {
    "compress": "zstd",
    "zstd_level": 1,
    "interleave": "band",
}
#: No data in a scaled reflectance stack: the products' own convention (DN 0 = no data).
REFLECTANCE_NODATA = 0
_DN_MIN, _DN_MAX = 1, 65535

#: Rows per processing block: 512 rows of a full 5490-wide tile are 2.8 M pixels (11 MB per float32 band).
BLOCK_ROWS = 512


class Cancelled(Exception):
    """Raised when the user cancels; the caller's outputs have been removed."""


def check_cancelled(is_cancelled: IsCancelled | None) -> None:
    if is_cancelled is not None and is_cancelled():
        raise Cancelled("cancelled by the user")


def report(progress: Progress | None, percent: float) -> None:
    if progress is not None:
        progress(max(0.0, min(100.0, float(percent))))


def row_windows(height: int, width: int, rows: int = BLOCK_ROWS) -> Iterator[Window]:
    """Full-width strips of ``rows`` rows covering the raster top to bottom."""
    for row in range(0, height, rows):
        yield Window(0, row, width, min(rows, height - row))


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, *, overviews: Resampling | None = None) -> Iterator[str]:
    """Yield a temporary path beside ``path``; rename it to ``path`` only if the block succeeds.

    On any exception (cancellation included) the temporary file is removed and ``path`` keeps
    whatever it held before, so a failed or cancelled run never leaves a half-written output.
    With ``overviews`` (nearest for classes and masks, average for values) the GeoTIFF written to the
    temporary path gets internal overviews before the rename, so QGIS draws it fast at any zoom; the
    writer must have closed it by then (open it inside this block).
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    base, ext = os.path.splitext(os.path.basename(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{base}.", suffix=f".part{ext}", dir=folder)
    os.close(fd)
    os.remove(tmp)  # let the writer create it (GDAL refuses to overwrite some formats)
    try:
        yield tmp
        if overviews is not None and os.path.exists(tmp):
            build_overviews(tmp, overviews)
        os.replace(tmp, path)
        _replace_sidecars(tmp, path)
    except BaseException:
        _remove_with_sidecars(tmp)
        raise


def _replace_sidecars(tmp: str, path: str) -> None:
    for suffix in (".aux.xml", ".msk", ".ovr"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)  # stale statistics of a previous run would mislead QGIS
        if os.path.exists(tmp + suffix):
            os.replace(tmp + suffix, path + suffix)


def _remove_with_sidecars(tmp: str) -> None:
    for name in (tmp, tmp + ".aux.xml", tmp + ".msk", tmp + ".ovr"):
        with contextlib.suppress(FileNotFoundError):
            os.remove(name)


def geotiff_profile(like: dict, count: int, dtype: str = "float32", nodata=np.nan) -> dict:
    """A GeoTIFF profile on the grid of ``like`` (a rasterio profile or dataset.profile)."""
    profile = {k: like[k] for k in ("crs", "transform", "width", "height")}
    profile.update(GTIFF_OPTIONS)
    profile.update(count=count, dtype=dtype, nodata=nodata)
    if dtype in ("uint8", "int8"):
        profile["predictor"] = 1
    if profile["width"] < 512 or profile["height"] < 512:
        # GeoTIFF tiles must be multiples of 16; small rasters are simply striped.
        profile["tiled"] = False
        profile.pop("blockxsize")
        profile.pop("blockysize")
    return profile


def overview_factors(width: int, height: int, smallest: int = 256) -> list[int]:
    """4, 8, 16 ... down to an overview of about ``smallest`` pixels on its longer side.

    No 1/2 level: it costs as much as all the others together (measured on a 2048 x 2048 stack: 0.5 s CPU
    with it, 0.23 s without; all of a full tile's outputs took 13 s with it), and QGIS reads the full
    resolution fast enough up to 4x zoomed out."""
    factors, factor = [], 4
    while max(width, height) / factor >= smallest:
        factors.append(factor)
        factor *= 2
    return factors


def build_overviews(path: str | os.PathLike, resampling: Resampling) -> None:
    """Internal overviews of a GeoTIFF, compressed as its full-resolution tiles (none for small rasters)."""
    with rasterio.open(path, "r+") as dataset:
        factors = overview_factors(dataset.width, dataset.height)
        if factors:
            dataset.build_overviews(factors, resampling)


# -- reflectance stacks ------------------------------------------------------------------------------------
#: How a stack stores reflectance as integers: per band, reflectance = DN * scale + offset (GDAL's meaning).
Scaling = tuple[tuple[float, ...], tuple[float, ...]]


def stored_scaling(dataset) -> Scaling | None:
    """(scales, offsets) of a stack that stores reflectance as scaled unsigned integers; None for a stack of
    plain numbers (float32 reflectance, or integers without a GDAL scale and offset, read as they are)."""
    if dataset.dtypes[0] != "uint16":
        return None
    scales, offsets = tuple(float(v) for v in dataset.scales), tuple(float(v) for v in dataset.offsets)
    if all(v == 1.0 for v in scales) and all(v == 0.0 for v in offsets):
        return None
    return scales, offsets


def reflectance_profile(like: dict, count: int, scaling: Scaling | None) -> dict:
    """The profile of a reflectance stack, zstd, one band per tile: uint16 with ``scaling`` (set it with
    ``set_scaling`` once open), DN 0 = no data; or float32, NaN = no data, when ``scaling`` is None."""
    if scaling is None:
        profile = geotiff_profile(like, count)
        predictor = 1  # the floating-point predictor: a sixth smaller, but 1.4x the write and 2x the read time
    else:
        profile = geotiff_profile(like, count, "uint16", REFLECTANCE_NODATA)
        predictor = 2
    profile.pop("zlevel", None)
    profile.update(REFLECTANCE_OPTIONS, predictor=predictor)
    return profile


def set_scaling(dataset, scaling: Scaling | None) -> None:
    """Write ``scaling`` (from ``stored_scaling`` or a product's metadata) into a stack open for writing."""
    if scaling is not None:
        dataset.scales, dataset.offsets = scaling


def read_reflectance(dataset, bands: int | Sequence[int], window: Window | None = None, *,
                     out_shape: tuple[int, int] | None = None,
                     resampling: Resampling = Resampling.nearest) -> np.ndarray:
    """Reflectance of band ``bands`` (2-D) or of several bands (3-D) as float32, NaN where there is no data.

    The one way stacks are read: a stack of scaled integers (this plugin's, ``stored_scaling``) gives
    DN * scale + offset; a float32 stack (or any raster without GDAL scale and offset) gives its values as
    they are. ``out_shape`` (rows, columns) reads a decimated view with ``resampling``; GDAL leaves the
    no-data pixels out of an average.
    """
    indexes = [bands] if isinstance(bands, (int, np.integer)) else [int(b) for b in bands]
    options = {} if out_shape is None else {"out_shape": (len(indexes), *out_shape), "resampling": resampling}
    raw = dataset.read(indexes, window=window, **options)
    values = raw.astype(np.float32, copy=False)
    for k, index in enumerate(indexes):
        band = values[k]
        nodata = dataset.nodatavals[index - 1]
        invalid = None
        if nodata is not None and not np.isnan(nodata):
            invalid = (raw[k] == nodata) if raw.dtype.kind in "iu" else (band == np.float32(nodata))
        unscale(band, float(dataset.scales[index - 1]), float(dataset.offsets[index - 1]))
        if invalid is not None:
            band[invalid] = np.nan
    return values[0] if isinstance(bands, (int, np.integer)) else values


def unscale(values: np.ndarray, scale: float, offset: float) -> None:
    """values = values * scale + offset in place, computed as (values + offset / scale) / (1 / scale): with
    a product's scale 1/10000 and offset -1000/10000 that is (DN - 1000) / 10000, the products' own formula
    to the last bit of float32."""
    if scale != 1.0 or offset != 0.0:
        values += values.dtype.type(offset / scale)
        values /= values.dtype.type(1.0 / scale)


def encode_reflectance(values: np.ndarray, scale: float, offset: float) -> np.ndarray:
    """Reflectance as the nearest uint16 DN of ``scale`` and ``offset``; NaN -> 0 (no data). DNs are clipped
    to 1..65535 so that a valid pixel never becomes no data."""
    # In place on one float32 copy: this runs on every block of every stack written.
    dn = np.multiply(values, np.float32(1.0 / scale), dtype=np.float32)
    dn -= np.float32(offset / scale)
    missing = ~np.isfinite(dn)
    np.clip(dn, _DN_MIN, _DN_MAX, out=dn)
    np.rint(dn, out=dn)
    dn[missing] = 0
    return dn.astype(np.uint16)


def write_reflectance(dataset, values: np.ndarray, bands: int | Sequence[int], window: Window | None = None) -> None:
    """Write float reflectance (NaN = no data) to band(s) ``bands`` of a stack open for writing: as DNs of the
    band's scale and offset when the stack stores scaled integers (``reflectance_profile``), else as is."""
    indexes = [bands] if isinstance(bands, (int, np.integer)) else [int(b) for b in bands]
    planes = values[None] if isinstance(bands, (int, np.integer)) else values
    if dataset.dtypes[indexes[0] - 1] != "uint16":
        dataset.write(planes.astype(dataset.dtypes[indexes[0] - 1], copy=False), indexes, window=window)
        return
    encoded = np.empty(planes.shape, dtype=np.uint16)
    for k, index in enumerate(indexes):
        encoded[k] = encode_reflectance(planes[k], dataset.scales[index - 1], dataset.offsets[index - 1])
    dataset.write(encoded, indexes, window=window)


# -- GDAL's block cache ------------------------------------------------------------------------------------
#: GDAL's block cache during a run, at most (MB). Measured on the full tile and 4096 x 4096 pairs: with stacks
#: of one band per tile a bounded cache costs no time, and it is most of the peak memory otherwise (GDAL's
#: default is 5 % of the RAM, 1.2 GB on a 24 GB machine, more on bigger ones).
GDAL_CACHE_BOUND_MB = 512

_log = logging.getLogger(__name__)
_cache_lock = threading.Lock()
_cache_runs = 0
_cache_before: int | None = None


@functools.lru_cache(maxsize=1)
def _rasterio_gdal():
    """ctypes handles (get, set) of GDALGetCacheMax64 / GDALSetCacheMax64 in the libgdal rasterio loaded."""
    package = os.path.dirname(os.path.abspath(rasterio.__file__))
    # Wheels carry their own libgdal (rasterio.libs on Linux and Windows, rasterio/.dylibs on macOS); a
    # rasterio built on the system's GDAL (Debian's python3-rasterio, conda) uses that one.
    candidates = sorted(glob.glob(os.path.join(os.path.dirname(package), "rasterio.libs", "*gdal*"))
                        + glob.glob(os.path.join(package, ".dylibs", "libgdal*")))
    system = ctypes.util.find_library("gdal")
    for name in candidates or ([system] if system else []):
        try:
            library = ctypes.CDLL(name)
            get, put = library.GDALGetCacheMax64, library.GDALSetCacheMax64
        except (OSError, AttributeError):
            continue
        get.restype, get.argtypes = ctypes.c_int64, []
        put.restype, put.argtypes = None, [ctypes.c_int64]
        return get, put
    return None


def gdal_cache_max_bytes() -> int | None:
    """GDAL's block-cache maximum now (bytes), or None when its libgdal cannot be reached."""
    functions = _rasterio_gdal()
    return None if functions is None else int(functions[0]())


@contextlib.contextmanager
def bounded_gdal_cache(megabytes: float = GDAL_CACHE_BOUND_MB) -> Iterator[None]:
    """Bound GDAL's block cache to ``megabytes`` (never raising a smaller one) while the block runs, then
    restore the previous maximum, on an error or a cancel too.

    Not the GDAL_CACHEMAX setting: GDAL reads it once, when its cache is first used, which QGIS has done long
    before a plugin runs, and the plugin should not ask users to set variables; the library call takes
    effect at once. The maximum is process-wide: overlapping runs (QGIS runs algorithms in parallel
    threads) share one bound, set by the first and restored by the last. Where the library cannot be
    reached this does nothing but say so in the log.
    """
    global _cache_runs, _cache_before
    functions = _rasterio_gdal()
    if functions is None:
        _log.info("GDAL's block cache is left as it is: the GDAL library rasterio uses was not found")
        yield
        return
    get, put = functions
    with _cache_lock:
        if _cache_runs == 0:
            _cache_before = int(get())
            put(min(_cache_before, int(megabytes * 2**20)))
        _cache_runs += 1
    try:
        yield
    finally:
        with _cache_lock:
            _cache_runs -= 1
            if _cache_runs == 0:
                put(_cache_before)


def band_descriptions(path: str | os.PathLike) -> list[str]:
    with rasterio.open(path) as src:
        return [d or "" for d in src.descriptions]


def normalise_band_name(text: str) -> str:
    """A band name as band descriptions are compared: case-insensitive, "B2" == "B02", "b8a" == "B8A"."""
    text = text.strip().upper()
    if len(text) >= 3 and text[0] == "B" and text[1] == "0":
        text = "B" + text[2:]
    return text


def find_bands(
    path: str | os.PathLike,
    names: Sequence[str],
    fallback: dict[str, int] | None = None,
) -> dict[str, int]:
    """1-based band indexes of ``names`` in ``path``, found by band description.

    Descriptions match case-insensitively and ignore a zero after the B ("B8A" == "b8a",
    "B2" == "B02"). Where a raster has no usable descriptions, ``fallback`` (name -> 1-based band
    number, set by the user) is used. Raises ValueError naming the raster and its bands otherwise.
    """
    norm = normalise_band_name
    with rasterio.open(path) as src:
        descriptions = [d or "" for d in src.descriptions]
        count = src.count
    by_name = {norm(d): i + 1 for i, d in enumerate(descriptions) if d}
    found, missing = {}, []
    for name in names:
        if norm(name) in by_name:
            found[name] = by_name[norm(name)]
        elif fallback and name in fallback:
            index = int(fallback[name])
            if not 1 <= index <= count:
                raise ValueError(
                    f"band number {index} for {name} does not exist in {os.fspath(path)}; it has {count} bands")
            found[name] = index
        else:
            missing.append(name)
    if missing:
        have = ", ".join(d or f"band {i + 1} (no description)" for i, d in enumerate(descriptions))
        raise ValueError(
            f"band{'s' if len(missing) > 1 else ''} {', '.join(missing)} not found in {os.fspath(path)}; "
            f"bands are {have}. Set the band numbers explicitly.")
    return found


# -- grids -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Grid:
    """Where a raster's pixels are: CRS, affine transform and size. The one grid type of the core."""

    crs: Any
    transform: Affine
    width: int
    height: int

    @classmethod
    def of(cls, dataset) -> Grid:
        """The grid of an open rasterio dataset (or anything with crs, transform, width, height)."""
        return cls(dataset.crs, dataset.transform, int(dataset.width), int(dataset.height))

    @classmethod
    def from_path(cls, path: str | os.PathLike) -> Grid:
        with rasterio.open(path) as src:
            return cls.of(src)

    def same_as(self, other: Grid) -> bool:
        """Same size, same CRS and the same transform within a millionth of a pixel."""
        if (self.width, self.height) != (other.width, other.height):
            return False
        if not self.transform.almost_equals(other.transform, precision=1e-6 * max(abs(self.transform.a), 1e-12)):
            return False
        if self.crs is None or other.crs is None:
            return self.crs is None and other.crs is None
        return self.crs == other.crs

    @property
    def pixel_size(self) -> tuple[float, float]:
        return pixel_size(self.transform)

    def pixel_area_m2(self) -> float:
        return pixel_area_m2(self.transform, self.crs)

    def window_transform(self, window: Window) -> Affine:
        return rasterio.windows.transform(window, self.transform)

    def describe(self) -> str:
        crs = self.crs.to_string() if self.crs else "no CRS"
        dx, dy = self.pixel_size
        return f"{crs}, {dx:g} x {dy:g} units, {self.width} x {self.height} px"


def pixel_size(transform: Affine) -> tuple[float, float]:
    """(x, y) pixel size in the grid's units, rotation included."""
    return math.hypot(transform.a, transform.d), math.hypot(transform.b, transform.e)


def pixel_area_m2(transform: Affine, crs) -> float:
    """Area of one pixel in m². A geographic CRS is refused: its pixels have no fixed area in metres."""
    if crs is not None and crs.is_geographic:
        raise ValueError(f"the raster is in a geographic CRS ({crs}, degrees); areas and slopes need metres: "
                         "reproject it to its UTM zone (Raster > Projections > Warp) and run again")
    factor = crs.linear_units_factor[1] if crs is not None and crs.is_projected else 1.0
    return abs(transform.a * transform.e - transform.b * transform.d) * factor * factor


def read_on_grid(path, grid: Grid, window: Window | None = None, *, resampling=Resampling.nearest,
                 dtype="float32", fill=np.nan, band: int = 1) -> np.ndarray:
    """Band ``band`` of ``path`` resampled onto ``window`` of ``grid``.

    Where ``path`` is already on the grid this is a plain windowed read. Pixels outside ``path`` or on its
    nodata get ``fill``. ``window`` may reach beyond the grid (halos for neighbourhood operations). Read as
    floats, a band with a GDAL scale and offset (a stack of scaled integers) gives DN * scale + offset.
    """
    if window is None:
        window = Window(0, 0, grid.width, grid.height)
    height, width = int(window.height), int(window.width)
    with rasterio.open(path) as src:
        scale, offset = float(src.scales[band - 1]), float(src.offsets[band - 1])
        scaled = np.issubdtype(np.dtype(dtype), np.floating) and (scale != 1.0 or offset != 0.0)
        inside = (window.col_off >= 0 and window.row_off >= 0 and window.col_off + width <= grid.width
                  and window.row_off + height <= grid.height)
        if inside and Grid.of(src).same_as(grid):
            raw = src.read(band, window=window)
            data = raw.astype(dtype)
            if scaled:
                unscale(data, scale, offset)
            if src.nodata is not None and not np.isnan(src.nodata):
                data[raw == src.nodata] = fill
            return data
        destination = np.full((height, width), fill, dtype=dtype)
        reproject(
            source=rasterio.band(src, band),
            destination=destination,
            src_nodata=src.nodata,
            dst_transform=grid.window_transform(window),
            dst_crs=grid.crs,
            dst_nodata=fill,
            resampling=resampling,
            # Plain bilinear/nearest sampling at every block size: GDAL otherwise widens the kernel by
            # a scale it estimates per chunk, and neighbouring blocks would disagree slightly.
            XSCALE=1,
            YSCALE=1,
        )
        if scaled:
            values = destination != fill if np.isfinite(fill) else np.isfinite(destination)
            unscaled = destination[values]
            unscale(unscaled, scale, offset)
            destination[values] = unscaled
        return destination
