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


# -- reflectance stacks of scaled integers -----------------------------------------------------------------
PRODUCT_SCALING = ((1e-4, 1e-4), (-0.1, -0.1))  # baseline >= 04.00: reflectance = (DN - 1000) / 10000


def test_a_stack_of_product_dns_reads_as_reflectance_and_says_so_to_gdal(tmp_path):
    path = tmp_path / "stack.tif"
    reflectance = np.full((2, 30, 40), 0.1234, dtype=np.float32)
    reflectance[0, 0, 0] = np.nan          # no data
    reflectance[0, 0, 1] = -0.1            # DN 0 would be no data: the darkest valid DN is 1
    reflectance[1, 0, 0] = 0.123449        # a resampled value: the nearest DN (2234)
    with rasterio.open(path, "w", **rasters.reflectance_profile(GRID, 2, PRODUCT_SCALING)) as dst:
        rasters.set_scaling(dst, PRODUCT_SCALING)
        dst.set_band_description(1, "B04")
        rasters.write_reflectance(dst, reflectance, [1, 2])
    with rasterio.open(path) as src:
        # What QGIS and GDAL see: uint16 DNs, 0 = no data, their scale and offset, one band per tile, zstd.
        assert src.dtypes == ("uint16", "uint16") and src.nodata == 0 and src.descriptions[0] == "B04"
        assert src.scales == (1e-4, 1e-4) and src.offsets == (-0.1, -0.1)
        assert src.profile["compress"] == "zstd" and src.profile["interleave"] == "band"
        dn = src.read()
        assert dn[0, 0, 0] == 0 and dn[0, 0, 1] == 1 and dn[1, 0, 0] == 2234 and dn[0, 5, 5] == 2234
        values = rasters.read_reflectance(src, [1, 2])
        band = rasters.read_reflectance(src, 2, rasterio.windows.Window(0, 0, 3, 2))
    assert values.dtype == np.float32 and np.isnan(values[0, 0, 0])
    assert values[0, 5, 5] == np.float32(1234) / np.float32(10000)  # the products' (DN - 1000) / 10000 exactly
    assert values[0, 0, 1] == pytest.approx(-0.0999, abs=1e-7)
    np.testing.assert_array_equal(band, values[1, :2, :3])


def test_a_users_float32_stack_reads_as_it_is(tmp_path):
    path = tmp_path / "user.tif"
    values = np.linspace(-0.01, 0.6, 1200, dtype=np.float32).reshape(30, 40)
    values[3, 4] = -9999
    with rasterio.open(path, "w", **rasters.geotiff_profile(GRID, 1, nodata=-9999)) as dst:
        dst.write(values, 1)
    with rasterio.open(path) as src:
        assert rasters.stored_scaling(src) is None
        read = rasters.read_reflectance(src, 1)
    assert np.isnan(read[3, 4])
    keep = np.ones(read.shape, bool)
    keep[3, 4] = False
    np.testing.assert_array_equal(read[keep], values[keep])


def test_read_on_grid_gives_reflectance_of_a_scaled_stack_on_and_off_its_grid(tmp_path):
    path = tmp_path / "stack.tif"
    with rasterio.open(path, "w", **rasters.reflectance_profile(GRID, 1, ((1e-4,), (-0.1,)))) as dst:
        rasters.set_scaling(dst, ((1e-4,), (-0.1,)))
        dst.write(np.full((1, 30, 40), 3000, dtype=np.uint16))
    same = rasters.Grid(GRID["crs"], GRID["transform"], 40, 30)
    shifted = rasters.Grid(GRID["crs"], from_origin(500010, 5099990, 20, 20), 40, 30)
    np.testing.assert_allclose(rasters.read_on_grid(path, same), 0.2, atol=1e-7)
    off = rasters.read_on_grid(path, shifted, resampling=rasterio.enums.Resampling.bilinear)
    assert np.isnan(off[-1, -1])  # outside the stack
    np.testing.assert_allclose(off[:-1, :-1], 0.2, atol=1e-6)


def test_outputs_written_with_overviews_carry_them_inside(tmp_path):
    big = {**GRID, "width": 1100, "height": 600}
    target = tmp_path / "mask.tif"
    with rasters.atomic_output(target, overviews=rasterio.enums.Resampling.nearest) as tmp, \
            rasterio.open(tmp, "w", **rasters.geotiff_profile(big, 1, "uint8", 255)) as dst:
        dst.write(np.ones((1, 600, 1100), dtype=np.uint8))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mask.tif"]  # no .ovr beside it
    with rasterio.open(target) as src:
        assert src.overviews(1) == [4]
        assert src.profile["compress"] == "deflate"
        assert (src.read(1, out_shape=(150, 275)) == 1).all()


# -- GDAL's block cache, bounded during a run ----------------------------------------------------------------
def test_gdal_cache_is_bounded_inside_and_restored_after_even_on_error():
    before = rasters.gdal_cache_max_bytes()
    assert before is not None, "rasterio's GDAL library should be found on this platform"
    bound = 64
    with rasters.bounded_gdal_cache(bound):
        assert rasters.gdal_cache_max_bytes() == min(before, bound * 2**20)
        with rasters.bounded_gdal_cache(bound * 4):  # a run inside a run keeps the first bound
            assert rasters.gdal_cache_max_bytes() == min(before, bound * 2**20)
        assert rasters.gdal_cache_max_bytes() == min(before, bound * 2**20)
    assert rasters.gdal_cache_max_bytes() == before
    with pytest.raises(rasters.Cancelled), rasters.bounded_gdal_cache(bound):
        rasters.check_cancelled(lambda: True)
    assert rasters.gdal_cache_max_bytes() == before


def test_gdal_cache_bound_never_raises_a_smaller_cache():
    before = rasters.gdal_cache_max_bytes()
    with rasters.bounded_gdal_cache(32):
        with rasters.bounded_gdal_cache(2**20):
            assert rasters.gdal_cache_max_bytes() == min(before, 32 * 2**20)


def test_without_gdal_library_the_run_goes_on_and_says_so(monkeypatch, caplog):
    monkeypatch.setattr(rasters, "_rasterio_gdal", lambda: None)
    with caplog.at_level("INFO", logger=rasters.__name__), rasters.bounded_gdal_cache(64):
        ran = True
    assert ran and "left as it is" in caplog.text
