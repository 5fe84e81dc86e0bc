"""Multi-date composites: clear observations only, block by block, tiles of one date told from dates."""
from __future__ import annotations

import numpy as np
import pytest
import rasterio

from landslide_plugin.core import composite, indices, rasters
from landslide_plugin.examples.example_data import simulate_scene, write_date_product

SIZE = 64
CLOUD = (10, 30, 20, 44)  # rows 10..30, cols 20..44 under an opaque cloud on the second date


@pytest.fixture(scope="module")
def period(tmp_path_factory):
    """Three dates of one period (early summer); the second has a cloud over CLOUD."""
    folder = tmp_path_factory.mktemp("period")
    scene = simulate_scene(SIZE, 3, pre_date="2022-06-01", post_date="2023-06-01", cloud_fraction=(0.0, 0.0))
    paths = []
    for k, day in enumerate(("2022-06-01", "2022-06-06", "2022-06-11")):
        path, _ = write_date_product(scene, folder / day, date=day, after_event=False, noise_seed=k,
                                     cloud_boxes=[CLOUD] if k == 1 else [])
        paths.append(path)
    return paths


def read(path):
    """Values as the plugin reads them: reflectance of a stack, classes and counts as they are."""
    with rasterio.open(path) as src:
        return rasters.read_reflectance(src, src.indexes), list(src.descriptions), src.tags()


def test_the_median_composite_removes_a_cloud_of_one_date(period, tmp_path):
    result = composite.composite_l2a(period, tmp_path / "c.tif", tmp_path / "c_scl.tif", tmp_path / "n.tif")
    assert result.dates == ("2022-06-01", "2022-06-06", "2022-06-11") and result.tiles_per_date == (1, 1, 1)
    stack, names, tags = read(result.stack_path)
    count, count_names, _ = read(result.count_path)
    scl, _, _ = read(result.scl_path)
    assert names == ["B02", "B03", "B04", "B8A", "B11", "B12"] and count_names == ["CLEAR_COUNT"]
    assert tags["COMPOSITE_DATES"] == "2022-06-01,2022-06-06,2022-06-11" and tags["COMPOSITE_METHOD"] == "median"
    r0, r1, c0, c1 = CLOUD
    under = (slice(r0, r1), slice(c0, c1))
    # Under the cloud only two dates were clear; elsewhere all three (where the ground is not shadowed or so).
    assert (count[0][under] <= 2).all() and np.median(count[0]) == 3
    # The cloud (reflectance ~0.44 in the blue) is gone: the composite there is like the clear dates.
    blue = stack[0]
    assert np.nanmax(blue[under]) < 0.3
    assert not np.isin(scl[0][under], (8, 9, 10)).any()
    # Where all three dates are clear the median is the middle value of the three.
    single = [composite.products.read_l2a(p) for p in period]
    values = np.stack([s.reflectance[0] for s in single])
    everywhere = count[0] == 3
    np.testing.assert_allclose(blue[everywhere], np.median(values, axis=0)[everywhere], atol=1e-6)
    assert result.observed_fraction > 0.95


def test_the_greenest_pixel_composite_takes_the_greenest_clear_date(period, tmp_path):
    result = composite.composite_l2a(period, tmp_path / "g.tif", tmp_path / "g_scl.tif", tmp_path / "gn.tif",
                                     method="greenest")
    stack, names, _ = read(result.stack_path)
    ndvi = indices.ndvi(stack[names.index("B04")], stack[names.index("B8A")])
    single = [composite.products.read_l2a(p) for p in period]
    for s in single:
        clear = np.isin(s.scl, composite.CLEAR_CLASSES)
        other = indices.ndvi(s.band("B04"), s.band("B8A"))
        ok = clear & np.isfinite(other) & np.isfinite(ndvi)
        assert (ndvi[ok] >= other[ok] - 1e-6).all()
    assert np.nanmax(stack[0][CLOUD[0]:CLOUD[1], CLOUD[2]:CLOUD[3]]) < 0.3


def test_tiles_of_one_date_are_a_mosaic_dates_are_a_composite(period, tmp_path):
    scene = simulate_scene(SIZE, 4, pre_date="2022-06-16", post_date="2023-06-01", cloud_fraction=(0.0, 0.0))
    east, _ = write_date_product(scene, tmp_path / "east", date="2022-06-16", after_event=False, tile="T37SDB",
                                 ulx=300000.0 + SIZE * 20.0)
    west, _ = write_date_product(scene, tmp_path / "west", date="2022-06-16", after_event=False)
    groups = composite.group_by_date([*period, east, west])
    assert [len(v) for v in groups.values()] == [1, 1, 1, 2]
    result = composite.composite_l2a([period[0], east, west], tmp_path / "m.tif", tmp_path / "m_scl.tif",
                                     tmp_path / "m_n.tif")
    assert result.dates == ("2022-06-01", "2022-06-16") and result.tiles_per_date == (1, 2)
    # The first date's grid is the output grid; the second date covers it and its eastern neighbour.
    assert (result.width, result.height) == (SIZE, SIZE)


def test_one_date_is_said_to_be_a_mosaic_and_wrong_inputs_fail(period, tmp_path):
    result = composite.composite_l2a(period[:1], tmp_path / "o.tif", tmp_path / "o_scl.tif", tmp_path / "o_n.tif")
    assert "one date" in result.notes[0]
    with pytest.raises(ValueError, match="median or greenest"):
        composite.composite_l2a(period, tmp_path / "x.tif", tmp_path / "x_scl.tif", tmp_path / "x_n.tif",
                                method="mean")
    with pytest.raises(ValueError, match="three different file names"):
        composite.composite_l2a(period, tmp_path / "x.tif", tmp_path / "x.tif", tmp_path / "x_n.tif")
    with pytest.raises(ValueError, match="B04 and B8A"):
        composite.composite_l2a(period, tmp_path / "x.tif", tmp_path / "x_s.tif", tmp_path / "x_n.tif",
                                method="greenest", bands=("B02", "B11"))


def test_a_cancel_leaves_no_output(period, tmp_path):
    calls = []

    def cancelled():
        calls.append(1)
        return len(calls) > 3

    with pytest.raises(composite.rasters.Cancelled):
        composite.composite_l2a(period, tmp_path / "c.tif", tmp_path / "c_scl.tif", tmp_path / "n.tif",
                                is_cancelled=cancelled)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_blocks_stay_small_for_many_dates_of_a_full_tile():
    rows = composite._block_rows(12, 6, 5490)
    assert 16 <= rows < 512
    assert 12 * 7 * rows * 5490 * 4 * 2 <= composite.BLOCK_BUDGET or rows == 16
