"""Raster I/O shared by every stage: block windows, atomic GeoTIFF output, bands by name, cancellation,
the one grid type (``Grid``), pixel size and area, and reading any raster onto a grid (``read_on_grid``)."""
from __future__ import annotations

import contextlib
import math
import os
import tempfile
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
def atomic_output(path: str | os.PathLike) -> Iterator[str]:
    """Yield a temporary path beside ``path``; rename it to ``path`` only if the block succeeds.

    On any exception (cancellation included) the temporary file is removed and ``path`` keeps
    whatever it held before, so a failed or cancelled run never leaves a half-written output.
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
    nodata get ``fill``. ``window`` may reach beyond the grid (halos for neighbourhood operations).
    """
    if window is None:
        window = Window(0, 0, grid.width, grid.height)
    height, width = int(window.height), int(window.width)
    with rasterio.open(path) as src:
        inside = (window.col_off >= 0 and window.row_off >= 0 and window.col_off + width <= grid.width
                  and window.row_off + height <= grid.height)
        if inside and Grid.of(src).same_as(grid):
            raw = src.read(band, window=window)
            data = raw.astype(dtype)
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
        return destination
