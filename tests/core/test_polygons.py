"""Mask cleaning, minimum mapping unit, polygons and their statistics, GeoJSON output."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from landslide_plugin.core import polygons, rasters
from landslide_plugin.core.polygons import clean_mask, mask_to_polygons, write_polygons_geojson

TRANSFORM = from_origin(500000.0, 4100000.0, 20.0, 20.0)
CRS = "EPSG:32637"


def write(path, array, dtype, nodata, crs=CRS, transform=TRANSFORM, descriptions=None):
    array = np.asarray(array)
    bands = array[None] if array.ndim == 2 else array
    with rasterio.open(path, "w", driver="GTiff", width=bands.shape[2], height=bands.shape[1], count=bands.shape[0],
                       dtype=dtype, nodata=nodata, crs=crs, transform=transform) as dst:
        dst.write(bands.astype(dtype))
        for i, d in enumerate(descriptions or []):
            dst.set_band_description(i + 1, d)
    return str(path)


def ring_area(ring):
    xy = np.asarray(ring)
    x, y = xy[:, 0], xy[:, 1]
    return 0.5 * abs(np.dot(x[:-1], y[1:]) - np.dot(x[1:], y[:-1]))


def geometry_area(geometry):
    polys = [geometry["coordinates"]] if geometry["type"] == "Polygon" else geometry["coordinates"]
    return sum(ring_area(p[0]) - sum(ring_area(h) for h in p[1:]) for p in polys)


# -- clean_mask -------------------------------------------------------------------------------
def test_minimum_mapping_unit_removes_speck_keeps_blob_and_nodata():
    mask = np.zeros((40, 40), np.uint8)
    mask[2, 2:5] = 1                      # 3-pixel speck
    mask[20:24, 20:25] = 1                # 20-pixel blob
    mask[30:, 30:] = 255                  # no data stays no data
    before = mask.copy()
    out = clean_mask(mask, opening_px=0, min_pixels=4)
    assert np.array_equal(mask, before), "input modified"
    assert out.dtype == np.uint8
    assert out[2, 2:5].tolist() == [0, 0, 0]
    assert (out[20:24, 20:25] == 1).all()
    assert int((out == 1).sum()) == 20
    assert (out[30:, 30:] == 255).all()
    assert set(np.unique(out)) == {0, 1, 255}


def test_minimum_area_in_square_metres():
    mask = np.zeros((20, 20), np.uint8)
    mask[1:3, 1:3] = 1                    # 4 px = 1600 m² at 20 m
    mask[10:12, 10:13] = 1                # 6 px = 2400 m²
    out = clean_mask(mask, opening_px=0, min_area_m2=2000, pixel_area_m2=400)
    assert int(out[1:3, 1:3].sum()) == 0
    assert int(out[10:12, 10:13].sum()) == 6
    # exactly the minimum area is kept
    out = clean_mask(mask, opening_px=0, min_area_m2=1600, pixel_area_m2=400)
    assert int(out.sum()) == 10
    with pytest.raises(ValueError, match="pixel area"):
        clean_mask(mask, min_area_m2=1600)


def test_opening_removes_one_pixel_lines_but_keeps_a_blob():
    mask = np.zeros((40, 40), np.uint8)
    mask[5, 2:30] = 1                     # horizontal 1-px line (a co-registration edge)
    mask[8:35, 36] = 1                    # vertical line
    np.fill_diagonal(mask[10:30, 0:20], 1)  # diagonal line
    mask[20:27, 22:30] = 1                # 7 x 8 scar
    out = clean_mask(mask, opening_px=1)
    assert out[5].sum() == 0
    assert out[:, 36].sum() == 0
    assert np.diagonal(out[10:30, 0:20]).sum() == 0
    # the block survives; only its four corners are rounded off by the cross-shaped element
    assert (out[21:26, 23:29] == 1).all()
    assert 50 <= int((out == 1).sum()) <= 56
    # opening disabled: everything stays
    assert int(clean_mask(mask, opening_px=0).sum()) == int(mask.sum())


def test_clean_mask_refuses_a_cluster_raster():
    with pytest.raises(ValueError, match="cluster raster"):
        clean_mask(np.array([[0, 1], [2, 3]], np.uint8))


# -- polygons ---------------------------------------------------------------------------------
@pytest.fixture()
def scene(tmp_path):
    """A 30 x 30 mask with two scars, a speck, and dNDVI/slope/probability rasters with known values."""
    mask = np.zeros((30, 30), np.uint8)
    mask[2:6, 3:8] = 1        # scar A: 20 px
    mask[15:18, 15:18] = 1    # scar B: 9 px ...
    mask[18, 18] = 1          # ... plus one pixel touching it at a corner -> 10 px, one component
    mask[25, 2] = 1           # speck: 1 px
    mask[28:, :] = 255
    rng = np.random.default_rng(1)
    dndvi = rng.uniform(-0.8, 0.1, mask.shape).astype(np.float32)
    dndvi[3, 4] = np.nan      # a no-data pixel inside scar A is left out of its mean
    slope = rng.uniform(0, 45, mask.shape).astype(np.float32)
    prob = rng.uniform(0, 1, mask.shape).astype(np.float32)
    paths = {
        "mask": write(tmp_path / "mask.tif", mask, "uint8", 255),
        "dndvi": write(tmp_path / "dndvi.tif", dndvi, "float32", np.nan, descriptions=["dNDVI"]),
        "slope": write(tmp_path / "slope.tif", slope, "float32", np.nan),
        "prob": write(tmp_path / "prob.tif", prob, "float32", np.nan),
    }
    return mask, dndvi, slope, prob, paths


def test_polygon_areas_and_statistics_equal_hand_computed_values(scene):
    mask, dndvi, slope, prob, paths = scene
    result = mask_to_polygons(paths["mask"], dndvi_path=paths["dndvi"], slope_path=paths["slope"],
                              probability_path=paths["prob"], opening_px=0, min_pixels=2)
    assert [p.n_pixels for p in result] == [20, 10]
    assert [p.area_m2 for p in result] == [8000.0, 4000.0]
    assert [p.id for p in result] == [1, 2]
    a = np.zeros(mask.shape, bool)
    a[2:6, 3:8] = True
    b = np.zeros(mask.shape, bool)
    b[15:18, 15:18] = True
    b[18, 18] = True
    assert result[0].mean_dndvi == pytest.approx(float(np.nanmean(dndvi[a])), abs=1e-6)
    assert result[1].mean_dndvi == pytest.approx(float(dndvi[b].mean()), abs=1e-6)
    assert result[0].mean_slope == pytest.approx(float(slope[a].mean()), abs=1e-5)
    assert result[1].mean_probability == pytest.approx(float(prob[b].mean()), abs=1e-6)
    for p in result:
        assert geometry_area(p.geometry) == pytest.approx(p.area_m2)
    # corner-touching pixel: one feature, a valid MultiPolygon of two parts
    assert result[1].geometry["type"] == "MultiPolygon"
    assert len(result[1].geometry["coordinates"]) == 2
    # scar A's outline in map coordinates
    xs = [x for x, _ in result[0].geometry["coordinates"][0]]
    ys = [y for _, y in result[0].geometry["coordinates"][0]]
    assert (min(xs), max(xs)) == (500000 + 3 * 20, 500000 + 8 * 20)
    assert (min(ys), max(ys)) == (4100000 - 6 * 20, 4100000 - 2 * 20)


def test_polygons_without_statistics_and_with_minimum_area(scene):
    _, _, _, _, paths = scene
    result = mask_to_polygons(paths["mask"], opening_px=0, min_area_m2=5000)
    assert [p.n_pixels for p in result] == [20]
    assert result[0].mean_dndvi is None and result[0].mean_slope is None and result[0].mean_probability is None
    assert mask_to_polygons(paths["mask"], opening_px=0, min_pixels=100) == []


def test_polygons_refuse_rasters_off_the_mask_grid(scene, tmp_path):
    _, dndvi, _, _, paths = scene
    shifted = write(tmp_path / "shifted.tif", dndvi, "float32", np.nan,
                    transform=from_origin(500020.0, 4100000.0, 20.0, 20.0))
    with pytest.raises(ValueError, match="not on the mask's grid"):
        mask_to_polygons(paths["mask"], dndvi_path=shifted)


def test_polygons_refuse_geographic_masks(tmp_path):
    path = write(tmp_path / "geo.tif", np.ones((4, 4)), "uint8", 255, crs="EPSG:4326",
                 transform=from_origin(37.0, 37.0, 0.0002, 0.0002))
    with pytest.raises(ValueError, match="geographic CRS"):
        mask_to_polygons(path)


def test_mean_dndvi_from_pre_and_post_stacks(scene, tmp_path):
    pytest.importorskip("landslide_plugin.core.indices")
    mask, _, _, _, paths = scene
    rng = np.random.default_rng(2)
    shape = mask.shape
    pre = np.stack([rng.uniform(0.02, 0.1, shape), rng.uniform(0.3, 0.5, shape)]).astype(np.float32)
    post = np.stack([rng.uniform(0.1, 0.2, shape), rng.uniform(0.2, 0.3, shape)]).astype(np.float32)
    pre_path = write(tmp_path / "pre.tif", pre, "float32", np.nan, descriptions=["B04", "B8A"])
    post_path = write(tmp_path / "post.tif", post, "float32", np.nan, descriptions=["B04", "B8A"])
    result = mask_to_polygons(paths["mask"], pre_stack_path=pre_path, post_stack_path=post_path, opening_px=0,
                              min_pixels=2)

    def ndvi(stack):
        return (stack[1] - stack[0]) / (stack[1] + stack[0])

    a = np.zeros(shape, bool)
    a[2:6, 3:8] = True
    assert result[0].mean_dndvi == pytest.approx(float((ndvi(post) - ndvi(pre))[a].mean()), abs=1e-5)


def test_geojson_has_features_properties_and_named_crs(scene, tmp_path):
    _, _, _, _, paths = scene
    result = mask_to_polygons(paths["mask"], dndvi_path=paths["dndvi"], opening_px=0, min_pixels=2)
    out = tmp_path / "out" / "scars.geojson"
    write_polygons_geojson(result, out, CRS)
    data = json.loads(out.read_text())
    assert data["type"] == "FeatureCollection"
    assert data["crs"]["properties"]["name"] == "urn:ogc:def:crs:EPSG::32637"
    assert len(data["features"]) == 2
    props = data["features"][0]["properties"]
    assert set(props) == {"id", "area_m2", "n_pixels", "mean_dndvi", "mean_slope", "mean_prob"}
    assert props["area_m2"] == 8000.0 and props["mean_slope"] is None
    assert data["features"][1]["geometry"]["type"] == "MultiPolygon"
    assert [p.name for p in out.parent.iterdir()] == ["scars.geojson"]  # no temporary file left


def test_pixel_area_and_minimum_pixels():
    assert rasters.pixel_area_m2(TRANSFORM, rasterio.crs.CRS.from_user_input(CRS)) == 400.0
    assert polygons.minimum_pixels(3, 1600, 400) == 4
    assert polygons.minimum_pixels(6, 1600, 400) == 6
    assert polygons.minimum_pixels(None, 1601, 400) == 5


def test_mean_slope_from_a_dem(scene, tmp_path):
    mask, _, _, _, paths = scene
    # a plane rising 1 m per 2 m eastwards: slope atan(0.5) = 26.57 degrees everywhere away from the edges
    cols = np.arange(mask.shape[1], dtype=np.float32)[None, :] * 20.0
    dem = write(tmp_path / "dem.tif", np.repeat(0.5 * cols, mask.shape[0], axis=0), "float32", np.nan)
    before = sorted(tmp_path.iterdir())
    result = mask_to_polygons(paths["mask"], dem_path=dem, opening_px=0, min_pixels=2)
    assert [p.mean_slope for p in result] == pytest.approx([26.565, 26.565], abs=0.01)
    assert sorted(tmp_path.iterdir()) == before   # the slope raster was temporary


def test_geojson_attributes_are_rounded_to_what_they_mean(scene, tmp_path):
    _, _, _, _, paths = scene
    result = mask_to_polygons(paths["mask"], dndvi_path=paths["dndvi"], opening_px=0, min_pixels=2)
    out = write_polygons_geojson(result, tmp_path / "scars.geojson", CRS)
    props = json.loads(Path(out).read_text())["features"][0]["properties"]
    assert props["mean_dndvi"] == round(result[0].mean_dndvi, 3) != result[0].mean_dndvi
    assert result[0].properties()["mean_dndvi"] == result[0].mean_dndvi  # the data keep full precision


def test_statistics_across_strips_leave_out_each_rasters_nodata(scene, tmp_path, monkeypatch):
    """Polygons crossing the strips the rasters are read in get the means of their own pixels; each raster's
    nodata value (not only NaN) is left out of its mean, whichever thread read it."""
    monkeypatch.setattr(polygons, "BLOCK_ROWS", 4)
    mask, _, slope, prob, paths = scene
    rng = np.random.default_rng(3)
    shape = mask.shape
    pre = np.stack([rng.uniform(0.02, 0.1, shape), rng.uniform(0.3, 0.5, shape)]).astype(np.float32)
    post = np.stack([rng.uniform(0.1, 0.2, shape), rng.uniform(0.2, 0.3, shape)]).astype(np.float32)
    post[:, 4, 5] = -1.0          # scar A: no data in the post-event stack
    slope = slope.copy()
    slope[16, 16] = -9999.0       # scar B: no data in the slope
    pre_path = write(tmp_path / "pre.tif", pre, "float32", -1.0, descriptions=["B04", "B8A"])
    post_path = write(tmp_path / "post.tif", post, "float32", -1.0, descriptions=["B04", "B8A"])
    slope_path = write(tmp_path / "slope_nodata.tif", slope, "float32", -9999.0)
    result = mask_to_polygons(paths["mask"], pre_stack_path=pre_path, post_stack_path=post_path,
                              slope_path=slope_path, probability_path=paths["prob"], opening_px=0, min_pixels=2)

    def ndvi(stack):
        return (stack[1] - stack[0]) / (stack[1] + stack[0])

    a = np.zeros(shape, bool)
    a[2:6, 3:8] = True            # rows 2-5: two strips of 4 rows
    b = np.zeros(shape, bool)
    b[15:18, 15:18] = True        # rows 15-18: two strips
    b[18, 18] = True
    dndvi = ndvi(post) - ndvi(pre)
    dndvi[4, 5] = np.nan
    slope[16, 16] = np.nan
    assert [p.n_pixels for p in result] == [20, 10]
    assert result[0].mean_dndvi == pytest.approx(float(np.nanmean(dndvi[a])), abs=1e-5)
    assert result[1].mean_dndvi == pytest.approx(float(dndvi[b].mean()), abs=1e-5)
    assert result[1].mean_slope == pytest.approx(float(np.nanmean(slope[b])), abs=1e-4)
    assert result[0].mean_probability == pytest.approx(float(prob[a].mean()), abs=1e-6)


def test_a_cancel_during_the_statistics_stops_the_polygons(scene, monkeypatch):
    monkeypatch.setattr(polygons, "BLOCK_ROWS", 4)
    _, _, _, _, paths = scene
    calls = []

    def is_cancelled():
        calls.append(1)
        return len(calls) > 3  # after the mask is read, while the strips are read

    with pytest.raises(rasters.Cancelled):
        mask_to_polygons(paths["mask"], dndvi_path=paths["dndvi"], slope_path=paths["slope"],
                         probability_path=paths["prob"], opening_px=0, min_pixels=2, is_cancelled=is_cancelled)
    seen = len(calls)
    assert seen == 4  # nothing asks again after the cancel


def test_statistics_of_polygons_across_tiles_of_tiled_rasters(tmp_path, monkeypatch):
    """Only the tiles holding polygons are read; polygons straddling tile borders still get every pixel's value."""
    monkeypatch.setattr(polygons, "BLOCK_ROWS", 16)
    mask = np.zeros((64, 80), np.uint8)
    mask[10:22, 14:20] = 1    # across a row and a column tile border (16 px tiles)
    mask[40:44, 60:70] = 1    # inside one tile row, across a column border
    rng = np.random.default_rng(4)
    slope = rng.uniform(0, 45, mask.shape).astype(np.float32)
    slope[12, 17] = -9999.0
    mask_path = write(tmp_path / "mask.tif", mask, "uint8", 255)
    slope_path = str(tmp_path / "slope_tiled.tif")
    with rasterio.open(slope_path, "w", driver="GTiff", width=80, height=64, count=1, dtype="float32",
                       nodata=-9999.0, crs=CRS, transform=TRANSFORM, tiled=True, blockxsize=16,
                       blockysize=16) as dst:
        dst.write(slope, 1)
    result = mask_to_polygons(mask_path, slope_path=slope_path, opening_px=0, min_pixels=2)
    values = np.where(slope == -9999.0, np.nan, slope)
    assert [p.n_pixels for p in result] == [72, 40]
    assert result[0].mean_slope == pytest.approx(float(np.nanmean(values[10:22, 14:20])), abs=1e-4)
    assert result[1].mean_slope == pytest.approx(float(values[40:44, 60:70].mean()), abs=1e-4)
