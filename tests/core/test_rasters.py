"""Shared raster I/O: atomic outputs, bands found by name, block windows."""
from __future__ import annotations

import numpy as np
import pytest
import rasterio
from rasterio.crs import CRS
from rasterio.transform import from_origin

from landslide_plugin.core import rasters

GRID = {"crs": CRS.from_epsg(32632), "transform": from_origin(500000, 5100000, 20, 20), "width": 40, "height": 30}


def write(path, count, descriptions=None):
    with rasterio.open(path, "w", **rasters.geotiff_profile(GRID, count)) as dst:
        dst.write(np.arange(count * 1200, dtype="float32").reshape(count, 30, 40))
        for i, d in enumerate(descriptions or []):
            dst.set_band_description(i + 1, d)


def test_atomic_output_renames_only_on_success(tmp_path):
    target = tmp_path / "out.tif"
    with rasters.atomic_output(target) as tmp:
        assert tmp != str(target)
        write(tmp, 1)
        assert not target.exists()
    with rasterio.open(target) as src:
        assert src.count == 1
    assert [p.name for p in tmp_path.iterdir()] == ["out.tif"]


def test_atomic_output_keeps_previous_file_and_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.tif"
    write(target, 1)
    before = target.read_bytes()
    with pytest.raises(rasters.Cancelled):
        with rasters.atomic_output(target) as tmp:
            write(tmp, 2)
            rasters.check_cancelled(lambda: True)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["out.tif"]


def test_find_bands_by_description_and_fallback(tmp_path):
    named = tmp_path / "named.tif"
    write(named, 3, ["B2", "b04", "B8A"])
    assert rasters.find_bands(named, ["B02", "B04", "B8A"]) == {"B02": 1, "B04": 2, "B8A": 3}
    bare = tmp_path / "bare.tif"
    write(bare, 3)
    assert rasters.find_bands(bare, ["B04"], fallback={"B04": 3}) == {"B04": 3}
    with pytest.raises(ValueError, match=r"band B11 not found in .*bare.tif; bands are band 1 \(no description\)"):
        rasters.find_bands(bare, ["B11"])
    with pytest.raises(ValueError, match="band number 7 for B04 does not exist .* it has 3 bands"):
        rasters.find_bands(bare, ["B04"], fallback={"B04": 7})


def test_row_windows_cover_the_raster_once():
    windows = list(rasters.row_windows(1100, 7, rows=512))
    assert [(w.row_off, w.height) for w in windows] == [(0, 512), (512, 512), (1024, 76)]
    assert all(w.width == 7 for w in windows)
