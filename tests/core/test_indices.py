"""Spectral indices against hand-computed pixels, their bounding, and the index/feature rasters."""
from __future__ import annotations

import math

import numpy as np
import pytest
import rasterio
from rasterio.crs import CRS
from rasterio.transform import from_origin

from landslide_plugin.core import indices, rasters

GRID = {"crs": CRS.from_epsg(32637), "transform": from_origin(300000, 4100000, 20, 20), "width": 70, "height": 64}
BANDS = ("B02", "B03", "B04", "B8A", "B11")


def write_stack(path, values, *, descriptions=BANDS, grid=GRID, date="2023-01-05"):
    """values: band name -> (H, W) array, written in BANDS order."""
    with rasterio.open(path, "w", **rasters.geotiff_profile(grid, len(BANDS))) as dst:
        for i, band in enumerate(BANDS):
            dst.write(np.asarray(values[band], dtype="float32"), i + 1)
            if descriptions:
                dst.set_band_description(i + 1, descriptions[i])
        dst.update_tags(SENSING_DATE=date)
    return path


def uniform(shape, **reflectance):
    return {band: np.full(shape, reflectance[band], dtype="float32") for band in BANDS}


def test_ndvi_bsi_ndwi_match_hand_computed_pixels():
    # Vegetation: blue .05, green .08, red .04, NIR .40, SWIR1 .20.
    assert indices.ndvi(0.04, 0.40) == pytest.approx((0.40 - 0.04) / 0.44, abs=1e-6)
    assert indices.bare_soil_index(0.05, 0.04, 0.40, 0.20) == pytest.approx((0.24 - 0.45) / 0.69, abs=1e-6)
    assert indices.ndwi(0.08, 0.40) == pytest.approx((0.08 - 0.40) / 0.48, abs=1e-6)
    # Bare scar: blue .10, red .15, NIR .20, SWIR1 .30 -> BSI 0.2.
    assert indices.bare_soil_index(0.10, 0.15, 0.20, 0.30) == pytest.approx(0.2, abs=1e-6)
    for result in (indices.ndvi(np.ones((2, 3)), np.ones((2, 3))), indices.relative_dndvi([0.5], [0.5])):
        assert result.dtype == np.float32


def test_zero_denominator_and_nan_inputs_give_nan_never_inf():
    red = np.array([0.0, 0.3, np.nan, 0.1, 5e-7], dtype="float32")
    nir = np.array([0.0, -0.3, 0.2, np.nan, 0.0], dtype="float32")
    raw = indices.ndvi(red, nir, clip=False)
    assert np.isnan(raw[[0, 1, 2, 3, 4]]).all()  # 0/0, 0.3-0.3=0 denominator, NaN in, NaN in, |den| < 1e-6
    assert not np.isinf(raw).any()
    bsi = indices.bare_soil_index([0.0, np.nan], [0.0, 0.1], [0.0, 0.1], [0.0, 0.1])
    assert np.isnan(bsi).all()


def test_dark_pixels_bounded_when_clipped_but_not_without():
    # Slightly negative reflectances after the -1000 offset: the unbounded ratio is about -3000.
    red = np.array([-0.0020], dtype="float32")
    nir = np.array([0.0020012], dtype="float32")
    raw = indices.ndvi(red, nir, clip=False)
    assert abs(raw[0]) > 2000
    bounded = indices.ndvi(red, nir)
    assert bounded[0] == pytest.approx(1.0)  # red floored at 0: all signal is NIR
    # Both bands at or below zero: no signal at all -> NaN, not an arbitrary +-1.
    assert np.isnan(indices.ndvi([-0.002], [-0.001])[0])
    big = indices.bare_soil_index([-0.01], [0.011], [-0.0005], [-0.0004], clip=False)
    assert abs(big[0]) > 1.5
    assert -1 <= indices.bare_soil_index([-0.01], [0.011], [-0.0005], [-0.0004])[0] <= 1


def test_relative_dndvi():
    assert indices.relative_dndvi([0.8], [0.2])[0] == pytest.approx(-0.6 / math.sqrt(1.0), abs=1e-6)
    assert indices.relative_dndvi([0.5], [0.3])[0] == pytest.approx(-0.2 / math.sqrt(0.8), abs=1e-6)
    out = indices.relative_dndvi([0.1, -0.5, np.nan, 0.9999], [-0.1, 0.2, 0.5, -0.99989])
    assert np.isnan(out[:3]).all()  # sum 0, sum < 0, NaN
    assert out[3] == pytest.approx(-indices.RDNDVI_BOUND)  # sum 1e-4: -199.99 unbounded
    assert indices.relative_dndvi([0.9999], [-0.99989], clip=False)[0] < -100


def test_change_features_default_and_all():
    pre = uniform((2, 2), B02=0.05, B03=0.08, B04=0.04, B8A=0.40, B11=0.20)
    post = uniform((2, 2), B02=0.10, B03=0.12, B04=0.15, B8A=0.20, B11=0.30)
    feats = indices.change_features(pre, post)
    assert tuple(feats) == indices.FEATURES
    ndvi_pre, ndvi_post = 0.36 / 0.44, 0.05 / 0.35
    assert feats["NDVI_pre"][0, 0] == pytest.approx(ndvi_pre, abs=1e-6)
    assert feats["dNDVI"][1, 1] == pytest.approx(ndvi_post - ndvi_pre, abs=1e-6)
    assert feats["dBSI"][0, 1] == pytest.approx(0.2 - (-0.21 / 0.69), abs=1e-6)
    every = indices.change_features(pre, post, indices.ALL_FEATURES)
    assert set(every) == set(indices.ALL_FEATURES)
    assert every["dNDWI"][0, 0] == pytest.approx(-0.25 - (-0.32 / 0.48), abs=1e-6)
    assert every["rdNDVI"][0, 0] == pytest.approx((ndvi_post - ndvi_pre) / math.sqrt(ndvi_pre + ndvi_post), abs=1e-5)
    # NDVI-only features need neither blue, green nor SWIR.
    only = indices.change_features({"B04": pre["B04"], "B8A": pre["B8A"]}, {"B04": post["B04"], "B8A": post["B8A"]},
                                   ("dNDVI",))
    assert list(only) == ["dNDVI"]


def test_change_features_errors_name_the_problem():
    pre = uniform((1, 1), B02=0.05, B03=0.08, B04=0.04, B8A=0.40, B11=0.20)
    with pytest.raises(ValueError, match="unknown feature NDVI_during"):
        indices.change_features(pre, pre, ("NDVI_pre", "NDVI_during"))
    post = dict(pre)
    del post["B11"]
    with pytest.raises(ValueError, match="band B11 of the post-event image"):
        indices.change_features(pre, post)
    assert indices.bands_for_features(("dNDVI", "NDWI_pre")) == ("B03", "B04", "B8A")


def test_write_indices_block_by_block(tmp_path, monkeypatch):
    monkeypatch.setattr(rasters, "BLOCK_ROWS", 16)
    monkeypatch.setattr(rasters.row_windows, "__defaults__", (16,))
    rng = np.random.default_rng(1)
    values = {b: rng.uniform(0.01, 0.5, (64, 70)).astype("float32") for b in BANDS}
    values["B04"][3, 4] = np.nan
    stack = write_stack(tmp_path / "pre.tif", values)
    before = stack.read_bytes()
    calls = []
    out = indices.write_indices(stack, tmp_path / "idx.tif", indices=("ndvi", "BSI"), progress=calls.append)
    assert stack.read_bytes() == before
    with rasterio.open(out) as src:
        assert src.descriptions == ("NDVI", "BSI")
        assert src.dtypes == ("float32", "float32")
        assert src.tags()["SENSING_DATE"] == "2023-01-05"
        got = src.read()
    expected = indices.ndvi(values["B04"], values["B8A"])
    np.testing.assert_allclose(got[0], expected, equal_nan=True)
    assert np.isnan(got[0, 3, 4]) and np.isnan(got[1, 3, 4])
    assert len(calls) == 4 and calls[-1] == 100.0


def test_write_indices_with_band_numbers_and_clear_errors(tmp_path):
    values = uniform((64, 70), B02=0.05, B03=0.08, B04=0.04, B8A=0.40, B11=0.20)
    stack = write_stack(tmp_path / "plain.tif", values, descriptions=None)
    with pytest.raises(ValueError, match=r"B04, B8A not found in .*plain\.tif.*Set the band numbers"):
        indices.write_indices(stack, tmp_path / "x.tif", indices=("NDVI",))
    assert not (tmp_path / "x.tif").exists()
    out = indices.write_indices(stack, tmp_path / "x.tif", indices=("NDVI", "NDWI"),
                                band_numbers={"B02": 1, "B03": 2, "B04": 3, "B8A": 4, "B11": 5})
    with rasterio.open(out) as src:
        assert src.read(1)[0, 0] == pytest.approx(0.36 / 0.44, abs=1e-6)
        assert src.read(2)[5, 5] == pytest.approx(-0.32 / 0.48, abs=1e-6)
    with pytest.raises(ValueError, match="unknown index EVI"):
        indices.write_indices(stack, tmp_path / "y.tif", indices=("EVI",))


def test_write_change_features_and_cancel(tmp_path):
    pre = write_stack(tmp_path / "pre.tif", uniform((64, 70), B02=0.05, B03=0.08, B04=0.04, B8A=0.40, B11=0.20))
    post = write_stack(tmp_path / "post.tif", uniform((64, 70), B02=0.10, B03=0.12, B04=0.15, B8A=0.20, B11=0.30),
                       date="2023-08-05")
    out = indices.write_change_features(pre, post, tmp_path / "f.tif", names=("dNDVI", "BSI_post", "rdNDVI"))
    with rasterio.open(out) as src:
        assert src.descriptions == ("dNDVI", "BSI_post", "rdNDVI")
        assert src.tags()["PRE_DATE"] == "2023-01-05" and src.tags()["POST_DATE"] == "2023-08-05"
        assert src.read(2)[10, 10] == pytest.approx(0.2, abs=1e-6)
    with pytest.raises(rasters.Cancelled):
        indices.write_change_features(pre, post, tmp_path / "g.tif", is_cancelled=lambda: True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.tif", "post.tif", "pre.tif"]


def test_write_change_features_refuses_different_grids(tmp_path):
    pre = write_stack(tmp_path / "pre.tif", uniform((64, 70), B02=0.05, B03=0.08, B04=0.04, B8A=0.40, B11=0.20))
    shifted = dict(GRID, transform=from_origin(300010, 4100000, 20, 20))
    post = write_stack(tmp_path / "post.tif", uniform((64, 70), B02=0.1, B03=0.1, B04=0.1, B8A=0.1, B11=0.1),
                       grid=shifted)
    with pytest.raises(ValueError, match="not on the same grid.*Co-register"):
        indices.write_change_features(pre, post, tmp_path / "f.tif")
    assert not (tmp_path / "f.tif").exists()


def test_real_barbellino_indices_are_bounded_and_water_is_wet(realdata):
    """Real L2A crop (reflectance x 10000, B08 standing in for B8A): the lake has NDWI > 0, land < 0."""
    folder = realdata / "sen2r_barbellino"
    boa = folder / "S2A2A_20190723_022_Barbellino_BOA_10.tif"
    scl = folder / "S2A2A_20190723_022_Barbellino_SCL_10.tif"
    with rasterio.open(boa) as src:
        data = src.read().astype("float32") / 10000.0
        grid = rasters.Grid.of(src)
    from landslide_plugin.core.rasters import read_on_grid

    classes = read_on_grid(scl, grid, dtype="uint8", fill=0)
    # Band order B01, B02, B03, B04, B05, B06, B07, B08, B09, B11, B12.
    green, red, nir = data[2], data[3], data[7]
    water = indices.ndwi(green, nir)
    vegetation = indices.ndvi(red, nir)
    assert np.nanmax(np.abs(water)) <= 1 and np.nanmax(np.abs(vegetation)) <= 1
    lake = classes == 6
    assert lake.sum() > 20
    assert np.nanmedian(water[lake]) > 0.2
    assert np.nanmedian(water[classes == 5]) < 0


# -- the regional change around a pixel ----------------------------------------------------------------------
def test_local_background_is_the_median_change_of_the_surroundings_block_by_block():
    """A regional gradient (a drought stronger to the east) with a scar and a cloud: the background follows the
    gradient, ignores the scar (a local loss) and the pixels that do not count, and is the same whether the
    rows come in one block or in uneven blocks."""
    rng = np.random.default_rng(3)
    height, width = 120, 100
    regional = np.tile(np.linspace(0.0, -0.3, width, dtype=np.float32), (height, 1))
    values = regional + rng.normal(0, 0.01, (height, width)).astype(np.float32)
    values[50:60, 40:52] = -0.8                          # a scar
    valid = np.ones((height, width), bool)
    valid[10:30, 10:30] = False                          # a cloud: its values do not count
    values[10:30, 10:30] = 5.0
    whole = indices.LocalBackground.for_grid(width, 20.0)
    assert whole.cell == 8 and whole.cells == 5          # 160 m cells, 800 m surroundings at 20 m pixels
    whole.add(values, valid)
    whole.finish()
    background = whole.rows(0, height)
    assert background.shape == (height, width) and background.dtype == np.float32
    # At the scar the background is the regional loss there, not the scar's: the scar stands out by ~0.6.
    assert abs(float(np.median(background[50:60, 40:52] - regional[50:60, 40:52]))) < 0.03
    assert float(np.median(values[50:60, 40:52] - background[50:60, 40:52])) < -0.5
    assert np.abs(background[10:30, 10:30] - regional[10:30, 10:30]).max() < 0.05   # the cloud's 5.0 ignored
    blocks = indices.LocalBackground(width, 8)
    for r0, r1 in ((0, 5), (5, 37), (37, 64), (64, 120)):
        blocks.add(values[r0:r1], valid[r0:r1])
    blocks.finish()
    np.testing.assert_allclose(np.concatenate([blocks.rows(0, 37), blocks.rows(37, 83)]), background, atol=1e-6)
    nothing = indices.LocalBackground(width, 8)
    nothing.add(values, np.zeros_like(valid))
    nothing.finish()
    assert (nothing.rows(0, 4) == 0).all()               # no observed land at all: no regional change
    with pytest.raises(RuntimeError, match="before finish"):
        indices.LocalBackground(width, 8).rows(0, 1)
    # at pixels (a sample's rows and columns): the same interpolated background as a block's rows
    rows, cols = np.random.default_rng(1).integers(0, (height, width), (500, 2)).T
    np.testing.assert_allclose(whole.at(rows, cols), background[rows, cols], atol=1e-6)


def test_scar_cover_unmixes_the_share_of_a_pixel_a_nearby_scar_covers():
    """Linear mixing of forest and fresh debris: the share is recovered exactly; the pure scar reads 1, untouched
    forest within reach of the scar 0; a pixel whose bands are unknown, or with no change near it, is NaN."""
    forest = np.array([0.03, 0.06, 0.03, 0.35, 0.15], np.float32)
    debris = np.array([0.10, 0.12, 0.16, 0.21, 0.33], np.float32)
    names = ("B02", "B03", "B04", "B8A", "B11")
    shares = np.array([[0.0, 0.0, 0.0, 0.2, 0.45, 1.0, 0.7, 0.0]], np.float32)
    pre = {n: np.full(shares.shape, forest[i]) for i, n in enumerate(names)}
    post = {n: (shares * debris[i] + (1 - shares) * forest[i]).astype(np.float32) for i, n in enumerate(names)}
    ndvi = lambda bands: (bands["B8A"] - bands["B04"]) / (bands["B8A"] + bands["B04"])  # noqa: E731
    dndvi = ndvi(post) - ndvi(pre)
    cover = indices.scar_cover(pre, post, dndvi, np.ones(shares.shape, bool))
    np.testing.assert_allclose(cover[0, 3:8], shares[0, 3:8], atol=1e-5)
    assert cover[0, 2] == pytest.approx(0.0, abs=1e-6)        # forest two pixels from the 45 % pixel
    assert np.isnan(cover[0, 0])                               # no change within reach: nothing to unmix
    valid = np.ones(shares.shape, bool)
    valid[0, 5] = False                                        # the core is masked: the 45 % pixel is the core
    cover = indices.scar_cover(pre, post, dndvi, valid)
    assert cover[0, 3] == pytest.approx(0.2 / 0.45, abs=1e-5)
    post["B04"][0, 4] = np.nan
    cover = indices.scar_cover(pre, post, ndvi(post) - ndvi(pre), np.ones(shares.shape, bool))
    assert np.isnan(cover[0, 4]) and cover[0, 3] == pytest.approx(0.2, abs=1e-5)


def test_ndsi_tells_snow_from_snow_free_land():
    """NDSI = (B03 - B11) / (B03 + B11): snow high, a thin cover about 0 or above, vegetation and rock below -0.2."""
    snow = indices.ndsi(0.93, 0.10)
    assert snow == pytest.approx(0.806, abs=1e-3)
    assert indices.ndsi(0.35 * 0.93 + 0.65 * 0.085, 0.35 * 0.10 + 0.65 * 0.28) > 0.0   # a third of the ground
    assert indices.ndsi(0.085, 0.28) < -0.2 and indices.ndsi(0.16, 0.30) < -0.2       # grass, rock
    pre = {b: np.array([v], np.float32) for b, v in zip(indices.REQUIRED_BANDS, (0.95, 0.93, 0.9, 0.8, 0.1))}
    post = {b: np.array([v], np.float32) for b, v in zip(indices.REQUIRED_BANDS, (0.05, 0.085, 0.08, 0.34, 0.28))}
    features = indices.change_features(pre, post, ("NDSI_pre", "NDSI_post", "dNDSI"))
    assert features["dNDSI"][0] == pytest.approx(features["NDSI_post"][0] - features["NDSI_pre"][0])
    assert features["NDSI_pre"][0] == pytest.approx(snow, abs=1e-5)


def test_the_surroundings_median_is_numpys_nanmedian():
    """The background's cell medians (one sort instead of np.nanmedian's masked arrays): the same values, NaN
    where a cell has no data, for odd and even counts."""
    import warnings

    rng = np.random.default_rng(3)
    values = rng.normal(size=(40, 30, 64)).astype(np.float32)
    values[rng.random(values.shape) < 0.4] = np.nan
    values[0, 0] = np.nan
    values[1, 1, 1:] = np.nan          # one value
    values[2, 2, 2:] = np.nan          # two values: their mean
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        expected = np.nanmedian(values, axis=2)
    got = indices._nanmedian(values, axis=2)
    assert got.dtype == np.float32 and np.isnan(got[0, 0])
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-7)
    assert got[2, 2] == pytest.approx((values[2, 2, 0] + values[2, 2, 1]) / 2)
