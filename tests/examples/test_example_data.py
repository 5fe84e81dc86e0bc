"""The built-in example pair: deterministic, realistic where it matters, readable by the plugin's reader."""
from __future__ import annotations

import json
import os
import time
import zipfile

import cv2
import numpy as np
import pytest
import rasterio
from scipy import ndimage

from landslide_plugin.core.products import read_l2a
from landslide_plugin.core.rasters import Cancelled
from landslide_plugin.examples import example_data as ed


def ndvi(stack) -> np.ndarray:
    red, nir = stack.band("B04"), stack.band("B8A")
    with np.errstate(divide="ignore", invalid="ignore"):
        return (nir - red) / (nir + red)


def precision(flagged: np.ndarray, truth: np.ndarray) -> float:
    return float(np.count_nonzero(flagged & (truth == 1))) / max(1, int(np.count_nonzero(flagged)))


def read_layer(path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read(1)


def ecc_shift(reference: np.ndarray, moving: np.ndarray) -> tuple[float, float]:
    """(dx, dy) of ``moving`` relative to ``reference`` by ECC (translation) on z-scored images."""
    def standard(a):
        a = np.nan_to_num(a, nan=float(np.nanmean(a))).astype(np.float32)
        return (a - a.mean()) / a.std()

    warp = np.eye(2, 3, dtype=np.float32)
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 200, 1e-6)
    _, warp = cv2.findTransformECC(standard(reference), standard(moving), warp, cv2.MOTION_TRANSLATION,
                                   criteria, None, 5)
    return float(warp[0, 2]), float(warp[1, 2])


# --- the scene itself --------------------------------------------------------------------------------
def test_same_seed_gives_identical_scene_and_other_seed_differs():
    one, two, other = (ed.simulate_scene(64, seed) for seed in (3, 3, 4))
    np.testing.assert_array_equal(one.dem, two.dem)
    np.testing.assert_array_equal(one.truth, two.truth)
    for which in ("pre", "post"):
        a, b, c = (s.image(which) for s in (one, two, other))
        for band in ed.CORE_BANDS:
            np.testing.assert_array_equal(a.reflectance[band], b.reflectance[band])
        np.testing.assert_array_equal(a.scl, b.scl)
        assert not np.allclose(a.reflectance["B8A"], c.reflectance["B8A"], equal_nan=True)
    assert not np.array_equal(one.dem, other.dem)


@pytest.mark.parametrize("size,seed", [(64, 0), (64, 7), (200, 1)])
def test_terrain_has_plains_and_steep_mountains_at_every_size(size, seed):
    scene = ed.simulate_scene(size, seed)
    slope = scene.slope
    assert 0.25 < np.mean(slope < 5) < 0.75, "a sizeable flat plain"
    assert np.mean(slope > 20) > 0.1, "steep mountains"
    assert np.percentile(slope, 99) < 70, "no unrealistic cliffs"
    share = scene.truth.sum() / np.count_nonzero(scene.landcover != ed.WATER)
    assert 0.005 <= share <= 0.03


def test_shift_content_moves_a_smooth_pattern_by_the_requested_subpixel_amount():
    margin, size, dx, dy = 10, 64, 1.5, -1.25
    yy, xx = np.mgrid[0:size + 2 * margin, 0:size + 2 * margin].astype(np.float64)
    def pattern(x, y):
        return np.sin(x / 5.0) + np.cos(y / 7.0) + np.sin((x + y) / 9.0)
    shifted = ed.shift_content(pattern(xx, yy).astype(np.float32), (dx, dy), margin, size)
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float64)
    expected = pattern(cols + margin - dx, rows + margin - dy)
    assert np.max(np.abs(shifted - expected)) < 0.01  # Lanczos-3 interpolation error on a range of 6
    off_by_a_tenth = pattern(cols + margin - dx - 0.1, rows + margin - dy)
    assert np.max(np.abs(shifted - off_by_a_tenth)) > 0.03


def test_invalid_parameters_are_refused_with_the_fix(tmp_path):
    with pytest.raises(ValueError, match="must be before"):
        ed.simulate_scene(64, 0, pre_date="2023-08-05", post_date="2023-01-05")
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        ed.simulate_scene(64, 0, pre_date="5 January")
    with pytest.raises(ValueError, match="between 32 and 10980"):
        ed.simulate_scene(8, 0)
    with pytest.raises(ValueError, match="cloud_fraction"):
        ed.simulate_scene(64, 0, cloud_fraction=0.9)
    with pytest.raises(ValueError, match="not simulated"):
        ed.simulate_scene(64, 0).image("pre", bands=("B08",))
    with pytest.raises(ValueError, match="UTM"):
        ed.generate_example_pair(tmp_path, size=64, epsg=4326)


# --- the written pair --------------------------------------------------------------------------------
def test_products_are_zips_with_the_sentinel2_members(example_pair):
    for product, date in ((example_pair.pre, "20230105"), (example_pair.post, "20230805")):
        assert zipfile.is_zipfile(product)
        assert product.name.startswith(f"S2B_MSIL2A_{date}T") and "_N0509_R078_T37SCB_" in product.name
        names = zipfile.ZipFile(product).namelist()
        safe = product.name[:-4] + ".SAFE/"
        assert safe + "MTD_MSIL2A.xml" in names
        assert any(n.startswith(safe + "GRANULE/") and n.endswith("/MTD_TL.xml") for n in names)
        for band in (*ed.CORE_BANDS, "SCL"):
            assert any(n.endswith(f"/IMG_DATA/R20m/T37SCB_{date}T081329_{band}_20m.jp2") for n in names), band


def test_reader_returns_the_reflectance_the_generator_intended(example_pair):
    info = json.loads(example_pair.info.read_text())
    scene = ed.simulate_scene(info["size"], info["seed"],
                              latitude=ed.scene_latitude(info["epsg"], info["uly"], info["size"]))
    for which, product in (("pre", example_pair.pre), ("post", example_pair.post)):
        stack = read_l2a(product)
        intended = scene.image(which)
        assert stack.band_names == ed.CORE_BANDS
        assert stack.transform.c == info["ulx"] and stack.transform.f == info["uly"] and stack.transform.a == 20
        for band in ed.CORE_BANDS:
            got, want = stack.band(band), intended.reflectance[band]
            np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
            assert np.nanmax(np.abs(got - want)) <= 0.5e-4 + 1e-6  # DN rounding only
        np.testing.assert_array_equal(stack.scl, intended.scl)


def test_info_json_describes_the_pair(example_pair):
    info = json.loads(example_pair.info.read_text())
    assert info["seed"] == 0 and info["size"] == 128
    assert info["shift"] == [1.5, -1.25] and tuple(info["shift"]) == example_pair.shift
    assert (info["pre_date"], info["post_date"]) == ("2023-01-05", "2023-08-05")
    assert info["tile"] == "T37SCB" and info["epsg"] == 32637
    assert info["landcover_classes"]["40"] == "cropland"
    truth = read_layer(example_pair.truth)
    assert info["landslide_pixels"] == int(truth.sum())
    assert info["landslide_count"] >= 10
    assert info["sun"]["pre"]["zenith"] > info["sun"]["post"]["zenith"] + 20  # low winter sun


def test_layers_share_the_pre_grid(example_pair):
    with rasterio.open(example_pair.truth) as t, rasterio.open(example_pair.dem) as d, \
            rasterio.open(example_pair.landcover) as lc:
        assert t.transform == d.transform == lc.transform
        assert t.crs == d.crs == lc.crs and t.crs.to_epsg() == 32637
        assert (t.dtypes[0], d.dtypes[0], lc.dtypes[0]) == ("uint8", "float32", "uint8")
        dem = d.read(1)
        assert 300 < dem.min() and dem.max() < 4000
        codes = set(np.unique(lc.read(1)).tolist())
    assert codes <= set(ed.LANDCOVER_CLASSES) and {ed.FOREST, ed.CROP, ed.WATER} <= codes
    assert read_layer(example_pair.truth).max() == 1
    assert read_l2a(example_pair.pre).transform == t.transform


def test_landslides_are_on_steep_vegetated_slopes_with_heavy_tailed_sizes(example_pair):
    truth = read_layer(example_pair.truth)
    landcover = read_layer(example_pair.landcover)
    slope, _ = ed.slope_aspect(read_layer(example_pair.dem))
    share = truth.sum() / np.count_nonzero(landcover != ed.WATER)
    assert 0.005 <= share <= 0.03
    inner = (slice(1, -1), slice(1, -1))  # np.gradient is one-sided on the border
    assert slope[inner][truth[inner] == 1].min() >= ed.LANDSLIDE_MIN_SLOPE - 1e-3
    assert set(np.unique(landcover[truth == 1]).tolist()) <= {ed.FOREST, ed.SHRUB, ed.GRASS}
    labels, count = ndimage.label(truth, structure=np.ones((3, 3)))
    areas = np.bincount(labels.ravel())[1:]
    assert count >= 10
    assert np.median(areas) <= 8 and areas.max() >= 4 * np.median(areas), "many small, few large"


def test_naive_ndvi_threshold_is_fooled_by_fields_and_reservoir_and_slope_filter_helps(example_pair):
    pre, post = read_l2a(example_pair.pre), read_l2a(example_pair.post)
    truth = read_layer(example_pair.truth)
    landcover = read_layer(example_pair.landcover)
    slope, _ = ed.slope_aspect(read_layer(example_pair.dem))
    naive = (ndvi(post) - ndvi(pre)) < -0.2       # NaN (no data) compares False
    naive_precision = precision(naive, truth)
    assert naive_precision < 0.5
    false = naive & (truth == 0)
    by_class = {code: int(np.count_nonzero(false & (landcover == code))) for code in ed.LANDCOVER_CLASSES}
    assert max(by_class, key=by_class.get) == ed.CROP, by_class   # harvest is the main false-positive source
    assert by_class[ed.DRAWDOWN] + by_class[ed.WATER] > 0          # the reservoir rose over its green shore
    water = (pre.scl == ed.SCL_WATER) | (post.scl == ed.SCL_WATER)
    filtered = naive & (slope > 15) & ~water
    assert np.count_nonzero(filtered & (landcover == ed.CROP)) == 0
    assert precision(filtered, truth) > 2 * naive_precision + 0.05
    # The filter keeps most of what the naive mask found of the truth.
    assert np.count_nonzero(filtered & (truth == 1)) >= 0.9 * np.count_nonzero(naive & (truth == 1))


def test_clouds_shadows_dark_slopes_and_swath_edge_are_in_the_scl(example_pair):
    pre, post = read_l2a(example_pair.pre), read_l2a(example_pair.post)
    for stack in (pre, post):
        classes = set(np.unique(stack.scl).tolist())
        assert {ed.SCL_VEG, ed.SCL_BARE, ed.SCL_WATER, ed.SCL_SHADOW} <= classes
        assert classes & {ed.SCL_CLOUD_MEDIUM, ed.SCL_CLOUD_HIGH}
        cloud = stack.scl == ed.SCL_CLOUD_HIGH
        clear = np.isin(stack.scl, (ed.SCL_VEG, ed.SCL_BARE))
        assert np.nanmean(stack.band("B02")[cloud]) > 0.25 > np.nanmean(stack.band("B02")[clear])
    assert np.count_nonzero(pre.scl == ed.SCL_DARK) > 0  # low winter sun on north-facing slopes
    # Post: no-data wedge along the east edge only, NaN in every band there.
    nodata = post.scl == ed.SCL_NODATA
    assert 0.01 < nodata.mean() < 0.1 and nodata[:, -1].all() and not nodata[:, : post.scl.shape[1] // 2].any()
    assert np.isnan(post.reflectance[:, nodata]).all() and not np.isnan(post.reflectance[:, ~nodata]).any()
    assert not (pre.scl == ed.SCL_NODATA).any()


def test_post_content_is_displaced_by_the_recorded_shift(tmp_path):
    # Same season, no clouds: the images differ only by the scars, noise and the shift, so ECC can
    # measure the shift precisely; the recorded shift and its sign convention must match the content.
    pair = ed.generate_example_pair(tmp_path, size=128, seed=2, pre_date="2022-08-05", cloud_fraction=0.0,
                                    nodata_edge=False, shift=(1.5, -1.25))
    pre, post = read_l2a(pair.pre), read_l2a(pair.post)
    dx, dy = ecc_shift(pre.band("B8A"), post.band("B8A"))
    assert abs(dx - pair.shift[0]) < 0.2 and abs(dy - pair.shift[1]) < 0.2
    info = json.loads(pair.info.read_text())
    assert info["shift"] == [1.5, -1.25]


def test_reuse_returns_the_existing_pair_without_rewriting(tmp_path):
    first = ed.generate_example_pair(tmp_path, size=64, seed=5)
    files = (first.pre, first.post, first.truth, first.dem, first.landcover, first.info)
    stamps = {p: os.stat(p).st_mtime_ns for p in files}
    time.sleep(0.01)
    again = ed.generate_example_pair(tmp_path, size=64, seed=5)
    assert again == first
    assert {p: os.stat(p).st_mtime_ns for p in files} == stamps
    # Other parameters, or reuse=False: regenerated (same seed -> byte-identical band data).
    first_dem = read_layer(first.dem)
    other = ed.generate_example_pair(tmp_path, size=64, seed=6)
    assert json.loads(other.info.read_text())["seed"] == 6
    assert not np.array_equal(read_layer(other.dem), first_dem)
    fresh = ed.generate_example_pair(tmp_path, size=64, seed=5, reuse=False)
    assert os.stat(fresh.info).st_mtime_ns > stamps[first.info]
    a = read_l2a(fresh.post).reflectance
    b = read_l2a(ed.generate_example_pair(tmp_path / "copy", size=64, seed=5).post).reflectance
    np.testing.assert_array_equal(a, b)


def test_cancelled_generation_leaves_no_files(tmp_path):
    calls = {"n": 0}

    def cancel_after_a_few_checks():
        calls["n"] += 1
        return calls["n"] > 12  # in the middle of the post product

    with pytest.raises(Cancelled):
        ed.generate_example_pair(tmp_path, size=64, seed=1, is_cancelled=cancel_after_a_few_checks)
    assert list(tmp_path.iterdir()) == []


def test_time_to_generate_size_1024(tmp_path, capsys):
    start = time.perf_counter()
    pair = ed.generate_example_pair(tmp_path, size=1024, seed=0)
    seconds = time.perf_counter() - start
    with capsys.disabled():
        print(f"\nexample pair 1024 x 1024: {seconds:.1f} s "
              f"(full 5490 tile ~ {seconds * (5490 / 1024) ** 2:.0f} s if linear in pixels)")
    assert read_l2a(pair.post).reflectance.shape == (6, 1024, 1024)


# --- the slide placement's fast helpers match what they replace, bit for bit ---------------------------
@pytest.mark.parametrize("shape", [(2, 2), (3, 7), (9, 5)])
def test_gradient_at_one_pixel_equals_numpy_gradient_everywhere(shape):
    values = np.random.default_rng(1).normal(500, 80, size=shape).astype(np.float32)
    gy, gx = np.gradient(values)
    for row in range(shape[0]):
        for col in range(shape[1]):
            one_y, one_x = ed._gradient_at(values, row, col)
            assert (one_y, one_x) == (gy[row, col], gx[row, col])
            assert one_y.dtype == gy.dtype == np.float32


def test_newly_covered_counts_only_pixels_inside_the_scene_that_become_truth():
    margin, size = 2, 4
    window = np.array([[200, 0, 0], [0, 130, 100], [0, 0, 0]], np.uint8)   # placed at (b0, e0) = (1, 4)
    value = np.array([[250, 250, 250], [250, 120, 200], [0, 126, 0]], np.uint8)
    # Scene rows 2..5 and columns 2..5: window rows 1-2 and column 0-1 are inside.
    added = ed._newly_covered(window, value, 1, 4, margin, size)
    # inside: (1,0) 0->250 new, (1,1) 130 stays truth, (2,0) 0->0, (2,1) 0->126 new
    assert added == 2
    assert ed._newly_covered(window, value, 100, 100, margin, size) == 0  # entirely outside
