"""Raster I/O shared by every stage: block windows, atomic GeoTIFF output, bands by name, cancellation."""
from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import rasterio
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
    def norm(text: str) -> str:
        text = text.strip().upper()
        if len(text) >= 3 and text[0] == "B" and text[1] == "0":
            text = "B" + text[2:]
        return text

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
