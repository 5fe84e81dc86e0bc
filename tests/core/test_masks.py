"""Analysis masks (SCL, water, slope, land cover, vegetation before) and the NDVI-threshold baseline."""
from __future__ import annotations

import math

import numpy as np
import pytest
import rasterio
from rasterio.crs import CRS
from rasterio.transform import from_origin
from rasterio.warp import transform_bounds
from rasterio.windows import Window

from landslide_plugin.core import detection, masks, rasters

UTM = CRS.from_epsg(32637)
GRID = {"crs": UTM, "transform": from_origin(400000, 4100000, 20, 20), "width": 64, "height": 48}
BANDS = ("B02", "B03", "B04", "B8A", "B11")
VEG = {"B02": 0.04, "B03": 0.07, "B04": 0.04, "B8A": 0.40, "B11": 0.20}    # NDVI 0.818
BARE = {"B02": 0.10, "B03": 0.12, "B04": 0.15, "B8A": 0.20, "B11": 0.30}   # NDVI 0.143
WATER = {"B02": 0.06, "B03": 0.08, "B04": 0.04, "B8A": 0.02, "B11": 0.01}  # NDWI 0.6


def write(path, data, *, grid=GRID, dtype="float32", nodata=np.nan, descriptions=None, crs=None):
    data = np.asarray(data)
    if data.ndim == 2:
        data = data[None]
    profile = rasters.geotiff_profile(grid, data.shape[0], dtype=dtype, nodata=nodata)
    if crs is not None:
        profile["crs"] = crs
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data.astype(dtype))
        for i, d in enumerate(descriptions or []):
            dst.set_band_description(i + 1, d)
    return path


def stack(path, cover, grid=GRID):
    """cover: (H, W) array of dicts (band reflectances) -> a described reflectance stack."""
    data = np.stack([np.vectorize(lambda c, b=b: c[b] if c else np.nan)(cover) for b in BANDS]).astype("float32")
    return write(path, data, grid=grid, descriptions=BANDS)


def blocks(**kw):
    return {b: np.array([kw[b]], dtype="float32") for b in BANDS}


# -- SCL, water, vegetation -----------------------------------------------------------------------
def test_scl_classes_per_the_note():
    classes = np.arange(12, dtype="uint8")
    ok = np.full(12, 4, dtype="uint8")
    valid = masks.scl_valid(classes, ok)
    assert [c for c in range(12) if valid[c]] == [2, 4, 5, 7]  # dark kept by default, water excluded
    with_dark = masks.scl_valid(ok, classes, exclude_dark=True)
    assert [c for c in range(12) if with_dark[c]] == [4, 5, 7]
    assert masks.scl_valid(classes, None, exclude_water=False)[6]
    with pytest.raises(ValueError):
        masks.scl_valid(None, None)


def test_water_either_date_and_vegetated_before():
    pre = np.array([0.3, -0.4, -0.4, np.nan, 0.05])
    post = np.array([-0.3, 0.2, -0.5, -0.5, 0.05])
    assert masks.water_mask(pre, post).tolist() == [True, True, False, False, True]
    assert masks.water_mask(pre, post, threshold=0.1).tolist() == [True, True, False, False, False]
    assert masks.vegetated_before(np.array([0.1, 0.3, 0.8, np.nan])).tolist() == [False, True, True, False]
    assert masks.VEGETATED_NDVI == 0.3


# -- slope ------------------------------------------------------------------------------------------
def tilted_plane(shape, size, degrees, along="x"):
    rows, cols = np.mgrid[0:shape[0], 0:shape[1]].astype("float64")
    distance = (cols if along == "x" else rows) * size
    return (distance * math.tan(math.radians(degrees)) + 500.0).astype("float32")


def test_slope_of_a_known_plane_edges_included():
    transform = from_origin(0, 0, 20, 20)
    slope = masks.slope_degrees(tilted_plane((20, 30), 20, 30.0), transform)
    assert slope.dtype == np.float32
    np.testing.assert_allclose(slope[1:-1, 1:-1], 30.0, atol=1e-3)
    # Edges and corners: missing neighbours extrapolated through the centre, exact on a plane.
    np.testing.assert_allclose(slope, 30.0, atol=1e-3)
    north = masks.slope_degrees(tilted_plane((20, 30), 10, 45.0, along="y"), from_origin(0, 0, 10, 10))
    np.testing.assert_allclose(north[1:-1, 1:-1], 45.0, atol=1e-3)
    assert np.allclose(masks.slope_degrees(np.full((5, 5), 7.0), transform), 0.0)
    hole = tilted_plane((10, 10), 20, 30.0)
    hole[4, 4] = np.nan
    out = masks.slope_degrees(hole, transform)
    assert np.isnan(out[4, 4]) and np.isnan(out).sum() == 1
    np.testing.assert_allclose(out[~np.isnan(out)], 30.0, atol=1e-3)  # the hole's neighbours too


def test_slope_on_grid_from_a_geographic_dem_at_another_resolution(tmp_path):
    """A 30 deg plane in UTM, sampled into a finer EPSG:4326 DEM: slope is measured in metres, ~30 deg."""
    like = write(tmp_path / "like.tif", np.zeros((48, 64)))
    west, south, east, north = transform_bounds(UTM, "EPSG:4326", 399000, 4098000, 402300, 4101000)
    n_lon, n_lat = 300, 300
    dlon, dlat = (east - west) / n_lon, (north - south) / n_lat
    lons = west + (np.arange(n_lon) + 0.5) * dlon
    lats = north - (np.arange(n_lat) + 0.5) * dlat
    lon_grid, lat_grid = np.meshgrid(lons, lats)
    from rasterio.warp import transform as transform_points

    xs, _ = transform_points("EPSG:4326", UTM, lon_grid.ravel().tolist(), lat_grid.ravel().tolist())
    elevation = (np.array(xs).reshape(n_lat, n_lon) - 399000) * math.tan(math.radians(30))
    geo_grid = {"crs": CRS.from_epsg(4326), "transform": from_origin(west, north, dlon, dlat),
                "width": n_lon, "height": n_lat}
    dem = write(tmp_path / "dem_4326.tif", elevation, grid=geo_grid, nodata=-9999)
    slope = masks.slope_on_grid(dem, like)
    assert slope.shape == (48, 64)
    np.testing.assert_allclose(np.nanmedian(slope), 30.0, atol=0.5)
    assert np.nanpercentile(np.abs(slope - 30), 95) < 1.5
    # Blocks join seamlessly: a window equals the same part of the whole.
    part = masks.slope_on_grid(dem, like, window=Window(0, 16, 64, 16))
    np.testing.assert_allclose(part, slope[16:32], atol=1e-4)
    out = masks.write_slope(dem, like, tmp_path / "slope.tif")
    with rasterio.open(out) as src:
        np.testing.assert_allclose(src.read(1), slope, atol=1e-4, equal_nan=True)


def test_slope_outside_the_dem_is_nan_and_geographic_grids_are_refused(tmp_path):
    like = write(tmp_path / "like.tif", np.zeros((48, 64)))
    half = dict(GRID, width=32)
    dem = write(tmp_path / "dem.tif", tilted_plane((48, 32), 20, 20.0), grid=half, nodata=-9999)
    slope = masks.slope_on_grid(dem, like)
    assert np.isnan(slope[:, 33:]).all()
    np.testing.assert_allclose(slope[1:-1, 1:30], 20.0, atol=1e-3)
    geo = write(tmp_path / "geo.tif", np.zeros((10, 10)), grid={"crs": CRS.from_epsg(4326),
                "transform": from_origin(37, 37, 0.001, 0.001), "width": 10, "height": 10})
    with pytest.raises(ValueError, match="geographic coordinates.*metres"):
        masks.slope_on_grid(dem, geo)


def test_exclusion_classes_nearest_from_a_coarser_raster(tmp_path):
    like = write(tmp_path / "like.tif", np.zeros((48, 64)))
    coarse = {"crs": UTM, "transform": from_origin(400000, 4100000, 40, 40), "width": 32, "height": 24}
    cover = np.full((24, 32), 10, dtype="uint8")
    cover[:, 16:] = 40  # cropland on the east half
    cover[0, 0] = 50
    land = write(tmp_path / "worldcover.tif", cover, grid=coarse, dtype="uint8", nodata=0)
    excluded = masks.exclusion_from_raster(land, like, [40])
    assert excluded[:, 32:].all() and not excluded[:, :32].any()
    both = masks.exclusion_from_raster(land, like, (40, 50), window=Window(0, 0, 64, 2))
    assert both[:2, :2].all() and both.shape == (2, 64)
    with pytest.raises(ValueError, match="no classes"):
        masks.exclusion_from_raster(land, like, [])


# -- the analysis mask ------------------------------------------------------------------------------
def test_analysis_mask_reasons_counted_once_in_order():
    pre = {b: np.array([VEG[b], VEG[b], WATER[b], VEG[b], np.nan, BARE[b], VEG[b], VEG[b]], "float32") for b in BANDS}
    post = {b: np.array([BARE[b]] * 8, "float32") for b in BANDS}
    scl_pre = np.array([4, 9, 6, 2, 4, 5, 4, 4], "uint8")
    scl_post = np.array([5] * 8, "uint8")
    slope = np.array([30, 30, 30, 30, 30, 30, 5, np.nan], "float32")
    exclusion = np.array([0, 0, 0, 0, 0, 0, 0, 0], bool)
    options = masks.MaskOptions(exclude_dark=True, dem_path="dem.tif", min_ndvi_pre=0.3)
    valid, reasons = masks.analysis_mask(pre, post, scl_pre=scl_pre, scl_post=scl_post, slope=slope,
                                         exclusion=exclusion, options=options)
    assert valid.tolist() == [True] + [False] * 7
    assert reasons == {"no_data": 1, "scl": 1, "dark": 1, "water": 1, "shore": 0, "no_dem": 1, "slope": 1,
                       "exclusion": 0, "not_vegetated": 1}
    # Defaults: dark kept, no DEM, no vegetation rule.
    valid, reasons = masks.analysis_mask(pre, post, scl_pre=scl_pre, scl_post=scl_post)
    assert valid.tolist() == [True, False, False, True, False, True, True, True]
    assert reasons["water"] == 1 and reasons["dark"] == 0 and reasons["slope"] == 0


def test_ndwi_water_without_scl_and_its_switches():
    pre, post = blocks(**WATER), blocks(**BARE)
    assert not masks.analysis_mask(pre, post)[0][0]
    assert masks.analysis_mask(pre, post, options=masks.MaskOptions(ndwi_water_threshold=None))[0][0]
    assert masks.analysis_mask(pre, post, options=masks.MaskOptions(exclude_water=False))[0][0]
    with pytest.raises(ValueError, match="no slope block"):
        masks.analysis_mask(pre, post, options=masks.MaskOptions(dem_path="dem.tif"))
    missing = {"B04": pre["B04"], "B8A": pre["B8A"]}
    with pytest.raises(ValueError, match="band B03 of the pre-event image"):
        masks.analysis_mask(missing, missing)


# -- the threshold baseline -------------------------------------------------------------------------
def test_threshold_mask_values_and_nodata():
    out = masks.threshold_mask(np.array([-0.5, -0.2, -0.19, 0.3, np.nan]))
    assert out.dtype == np.uint8
    assert out.tolist() == [1, 0, 0, 0, 255]
    assert masks.threshold_mask(np.array([-0.25]), threshold=-0.3).tolist() == [0]
    with pytest.raises(ValueError, match="not a drop.*negative"):
        masks.threshold_mask(np.array([0.1]), threshold=0.2)


def scene(tmp_path):
    """48 x 64 px: vegetation before; a scar (bare after) in rows 10-19, cols 10-29; a reservoir that
    drained (water before, bare after) in rows 30-39, cols 40-59; a cloud in the post SCL over cols
    0-4; no data in the pre stack at row 0, col 63; the east half flat in the DEM."""
    pre = np.full((48, 64), None, dtype=object)
    post = np.full((48, 64), None, dtype=object)
    pre[:] = [[VEG] * 64] * 48
    post[:] = [[VEG] * 64] * 48
    post[10:20, 10:30] = [[BARE] * 20] * 10
    pre[30:40, 40:60] = [[WATER] * 20] * 10
    post[30:40, 40:60] = [[BARE] * 20] * 10
    pre[0, 63] = None
    pre_path, post_path = stack(tmp_path / "pre.tif", pre), stack(tmp_path / "post.tif", post)
    scl_pre = np.full((48, 64), 4, "uint8")
    scl_pre[30:40, 40:60] = 6
    scl_post = np.full((48, 64), 4, "uint8")
    scl_post[:, :5] = 9
    scl_pre_path = write(tmp_path / "scl_pre.tif", scl_pre, dtype="uint8", nodata=0)
    scl_post_path = write(tmp_path / "scl_post.tif", scl_post, dtype="uint8", nodata=0)
    dem = np.concatenate([tilted_plane((48, 32), 20, 25.0), np.full((48, 32), 900.0, "float32")], axis=1)
    dem_path = write(tmp_path / "dem.tif", dem, nodata=-9999)
    return pre_path, post_path, scl_pre_path, scl_post_path, dem_path


def test_write_threshold_mask_plain_baseline(tmp_path):
    pre, post, *_ = scene(tmp_path)
    counts = detection.write_threshold_mask(pre, post, tmp_path / "mask.tif")
    with rasterio.open(tmp_path / "mask.tif") as src:
        mask = src.read(1)
        assert src.nodata == 255 and src.dtypes[0] == "uint8"
        assert src.colormap(1)[1][:3] == (227, 26, 28)
    assert (mask[10:20, 10:30] == 1).all()
    assert (mask[30:40, 40:60] == 0).all()  # water -> bare: NDVI rises, not a landslide
    assert mask[0, 63] == 255
    assert counts["landslide"] == 200 and counts["no_data"] == 1 and counts["total"] == 48 * 64
    assert counts["landslide"] + counts["not_landslide"] + counts["no_data"] == counts["total"]


def test_write_threshold_mask_with_masks_and_cancel(tmp_path):
    pre, post, scl_pre, scl_post, dem = scene(tmp_path)
    options = masks.MaskOptions(dem_path=str(dem), min_slope_deg=15.0)
    counts = detection.write_threshold_mask(pre, post, tmp_path / "mask.tif", scl_pre_path=scl_pre,
                                        scl_post_path=scl_post, options=options)
    with rasterio.open(tmp_path / "mask.tif") as src:
        mask = src.read(1)
        assert "slope" in src.tags()["MASKS"]
    assert (mask[:, :5] == 255).all()          # cloud on the post date: not observed
    assert (mask[10:20, 10:30] == 1).all()     # the scar is on the 25 deg slope
    east = mask[:, 33:].copy()
    assert east[0, 30] == 255                  # pre-event no data
    east[0, 30] = 0
    assert (east == 0).all()                   # flat half and drained reservoir: ruled out, not no data
    # Each removed pixel counted once, under the first reason: water comes before slope.
    assert counts["removed_scl"] == 48 * 5 and counts["removed_water"] == 200
    assert counts["removed_no_data"] == 1 and counts["no_data"] == 1 + 48 * 5
    assert counts["removed_slope"] == 31 * 48 - 200 - 1
    assert counts["landslide"] == 200
    with pytest.raises(rasters.Cancelled):
        detection.write_threshold_mask(pre, post, tmp_path / "other.tif", is_cancelled=lambda: True)
    assert not (tmp_path / "other.tif").exists()


def test_write_threshold_mask_clear_errors(tmp_path):
    pre, post, *_ = scene(tmp_path)
    with pytest.raises(FileNotFoundError, match="DEM .*nowhere.tif"):
        detection.write_threshold_mask(pre, post, tmp_path / "m.tif", options=masks.MaskOptions(dem_path="nowhere.tif"))
    with pytest.raises(ValueError, match="without classes"):
        detection.write_threshold_mask(pre, post, tmp_path / "m.tif",
                                   options=masks.MaskOptions(exclusion_path=str(pre)))
    plain = write(tmp_path / "plain.tif", np.ones((2, 48, 64)))
    with pytest.raises(ValueError, match=r"B04, B8A not found in .*plain\.tif"):
        detection.write_threshold_mask(plain, plain, tmp_path / "m.tif")
    assert not (tmp_path / "m.tif").exists()


def test_pixel_area(tmp_path):
    assert rasters.Grid.from_path(write(tmp_path / "a.tif", np.zeros((4, 4)))).pixel_area_m2() == pytest.approx(400.0)


def test_ndwi_does_not_turn_scl_shadow_into_water():
    shadow = {"B02": 0.03, "B03": 0.025, "B04": 0.015, "B8A": 0.02, "B11": 0.01}  # NDWI 0.11
    pre, post = blocks(**VEG), blocks(**shadow)
    scl_pre, scl_post = np.array([4], "uint8"), np.array([2], "uint8")
    valid, reasons = masks.analysis_mask(pre, post, scl_pre=scl_pre, scl_post=scl_post)
    assert valid[0] and reasons["water"] == 0
    valid, reasons = masks.analysis_mask(pre, post)  # without SCL, NDWI alone cannot tell
    assert not valid[0] and reasons["water"] == 1


def test_real_barbellino_lake_masked_shadows_kept(realdata):
    """Real SCL and reflectance (Italian Alps, 2017 and 2019; B08 stands in for B8A): with the default
    options the lake goes, and the dark-area pixels stay (their NDWI is mostly > 0)."""
    import rasterio

    folder = realdata / "sen2r_barbellino"
    blocks_, scls = [], []
    for date in ("20170703", "20190723"):
        with rasterio.open(folder / f"S2A2A_{date}_022_Barbellino_BOA_10.tif") as src:
            data = src.read().astype("float32")
            data[data == src.nodata] = np.nan
            data /= 10000.0
            grid = rasters.Grid.of(src)
        blocks_.append({"B02": data[1], "B03": data[2], "B04": data[3], "B8A": data[7], "B11": data[9]})
        scls.append(rasters.read_on_grid(folder / f"S2A2A_{date}_022_Barbellino_SCL_10.tif", grid, dtype="uint8",
                                         fill=0))
    codes = masks.mask_codes(blocks_[0], blocks_[1], scl_pre=scls[0], scl_post=scls[1])
    water = masks.REASONS.index("water") + 1
    lake = (scls[0] == 6) | (scls[1] == 6)
    assert (codes[lake] != masks.KEPT).all()
    dark_clear = ((scls[0] == 2) | (scls[1] == 2)) & ~lake & ~np.isin(scls[0], masks.INVALID_SCL)
    assert dark_clear.sum() > 20
    assert (codes[dark_clear] == water).mean() < 0.2
    vegetation = (scls[0] == 4) & (scls[1] == 4)
    assert (codes[vegetation] == masks.KEPT).mean() > 0.95


def test_shore_buffer_rules_out_the_pixels_next_to_water_in_the_detection_pass(tmp_path):
    """A reservoir whose drawdown zone was grass before and mud after, on a steep bank: without the buffer the
    zone next to the water is mapped like a scar; with a 2 px buffer it is ruled out (0, reason "shore"), a
    scar farther away is still mapped, and the mask description says so."""
    from test_clustering import DEBRIS_REFL, FOREST_REFL, WATER_REFL, write_stack

    size = 40
    grass = np.array((0.04, 0.08, 0.04, 0.40, 0.20), np.float32)
    mud = np.array((0.06, 0.08, 0.10, 0.16, 0.18), np.float32)
    pre = np.broadcast_to(np.array(FOREST_REFL, np.float32)[:, None, None], (5, size, size)).copy()
    pre[:, :, 30:] = np.array(WATER_REFL, np.float32)[:, None, None]     # the reservoir, both dates
    pre[:, :, 28:30] = grass[:, None, None]                               # its drawdown zone, grass before
    post = pre.copy()
    post[:, :, 28:30] = mud[:, None, None]                                # ... mud after
    post[:, 10:16, 5:10] = np.array(DEBRIS_REFL, np.float32)[:, None, None]  # a scar away from the water
    paths = (write_stack(tmp_path / "pre.tif", pre), write_stack(tmp_path / "post.tif", post))
    spec = detection.MethodSpec("threshold")
    for buffer in (0, 2):
        options = masks.MaskOptions(water_buffer_px=buffer)
        out = tmp_path / f"mask_{buffer}.tif"
        result = detection.detect(detection.DetectionInputs(*paths, mask_options=options), [spec],
                                  {spec.name: detection.MethodOutputs(out)})
        with rasterio.open(out) as src:
            mask = src.read(1)
        assert (mask[10:16, 5:10] == 1).all() and (mask[:, 30:] == 0).all()
        if buffer:
            assert (mask[:, 28:30] == 0).all() and result.removed["shore"] == 2 * size
            assert "water (SCL 6, NDWI > 0) and 2 px around it" in result.masks_description
            assert result.reads == 2
        else:
            assert (mask[:, 28:30] == 1).all() and result.removed["shore"] == 0 and result.reads == 1
    # With SCLs the buffer follows the SCL's water (class 6): thin snow has NDWI > 0 too (ruled out as water by
    # NDWI), but a scar beside it is not a shore.
    from test_clustering import write_uint8

    snow = np.array((0.70, 0.70, 0.68, 0.60, 0.10), np.float32)
    post[:, 17:22, 5:10] = snow[:, None, None]                        # 1 px below the scar
    paths = (paths[0], write_stack(tmp_path / "post_snow.tif", post))
    scl = np.where(pre[3] < 0.05, 6, 4).astype(np.uint8)
    scls = (write_uint8(tmp_path / "scl_pre.tif", scl), write_uint8(tmp_path / "scl_post.tif", scl))
    out = tmp_path / "mask_scl.tif"
    result = detection.detect(detection.DetectionInputs(*paths, *scls, mask_options=masks.MaskOptions(
        water_buffer_px=2)), [spec], {spec.name: detection.MethodOutputs(out)})
    with rasterio.open(out) as src:
        mask = src.read(1)
    assert (mask[:, 28:30] == 0).all() and (mask[17:22, 5:10] == 0).all()      # shore and snow ruled out
    assert (mask[10:16, 5:10] == 1).all() and result.removed["shore"] == 2 * size  # the scar next to the snow kept
    codes = np.zeros((5, 7), np.uint8)
    codes[:, 6] = masks.REASONS.index("water") + 1
    codes[0, 4] = masks.REASONS.index("scl") + 1        # an earlier reason stays
    codes[1, 4] = masks.REASONS.index("slope") + 1      # a later one becomes "shore", the first reason now
    assert masks.rule_out_shore(codes, 2) == 9
    shore = masks.REASONS.index("shore") + 1
    assert codes[0, 4] == masks.REASONS.index("scl") + 1
    assert (codes[1:, 4] == shore).all() and (codes[:, 5] == shore).all()
    assert (codes[:, :4] == masks.KEPT).all()
    # Another water source (the SCL's), given by rows, and blocks smaller than the buffer's reach.
    codes = np.zeros((9, 5), np.uint8)
    water = np.zeros((9, 5), bool)
    water[4, 0] = True
    assert masks.rule_out_shore(codes, 1, lambda r0, r1: water[r0:r1], block_rows=2) == 6
    assert np.array_equal(codes == masks.REASONS.index("shore") + 1, dilated(water))  # (its codes said nothing)


def test_wider_shore_buffer_where_the_water_line_moved_and_not_beside_a_lake_that_stayed(tmp_path):
    """A lake at the same level on both dates (left) and a reservoir drawn down between them (right), SCLs of both
    dates: the grass bank 3-4 px above the reservoir's higher line dried to mud like a scar. With the moved-line
    buffer (4 px) the bank is ruled out (0, reason "shore"); without it (2 px everywhere) its outer part is mapped.
    A scar 2-6 px from the lake is mapped whole either way (a 4 px buffer everywhere would cut it), and the mask
    description states the rule."""
    from test_clustering import DEBRIS_REFL, FOREST_REFL, WATER_REFL, write_stack, write_uint8

    size = 40
    grass = np.array((0.04, 0.08, 0.04, 0.40, 0.20), np.float32)
    mud = np.array((0.06, 0.08, 0.10, 0.16, 0.18), np.float32)
    pre = np.broadcast_to(np.array(FOREST_REFL, np.float32)[:, None, None], (5, size, size)).copy()
    pre[:, :, :5] = np.array(WATER_REFL, np.float32)[:, None, None]      # the lake, both dates
    pre[:, :, 28:32] = grass[:, None, None]                               # the bank above the reservoir
    pre[:, :, 32:] = np.array(WATER_REFL, np.float32)[:, None, None]     # the reservoir, full before
    post = pre.copy()
    post[:, :, 28:36] = mud[:, None, None]                                # bank and drawdown zone: mud after
    post[:, 10:16, 7:12] = np.array(DEBRIS_REFL, np.float32)[:, None, None]  # a scar near the lake
    paths = (write_stack(tmp_path / "pre.tif", pre), write_stack(tmp_path / "post.tif", post))
    scl_pre = np.where(pre[3] < 0.05, 6, 4).astype(np.uint8)
    scl_post = np.where(post[3] < 0.05, 6, np.where(post[3] < 0.2, 5, 4)).astype(np.uint8)
    scls = (write_uint8(tmp_path / "scl_pre.tif", scl_pre), write_uint8(tmp_path / "scl_post.tif", scl_post))
    spec = detection.MethodSpec("threshold")
    mapped = {}
    for moved in (0, 4):
        options = masks.MaskOptions(water_buffer_px=2, moved_water_buffer_px=moved)
        out = tmp_path / f"mask_{moved}.tif"
        result = detection.detect(detection.DetectionInputs(*paths, *scls, mask_options=options), [spec],
                                  {spec.name: detection.MethodOutputs(out)})
        with rasterio.open(out) as src:
            mapped[moved] = src.read(1)
        assert (mapped[moved][10:16, 7:12] == 1).all()                   # the scar beside the lake, whole
        assert (mapped[moved][:, 5:7] == 0).all()                        # the lake's 2 px shore
        if moved:
            assert (mapped[moved][:, 28:32] == 0).all() and result.removed["shore"] == 2 * size + 4 * size
            assert "and 2 px around it (4 px where its line moved between the dates)" in result.masks_description
        else:
            assert (mapped[moved][:, 28:30] == 1).all() and result.removed["shore"] == 2 * size + 2 * size
            assert "moved" not in result.masks_description
    # The same 4 px everywhere would cut the scar's two columns next to the lake.
    out = tmp_path / "mask_everywhere.tif"
    detection.detect(detection.DetectionInputs(*paths, *scls, mask_options=masks.MaskOptions(water_buffer_px=4)),
                     [spec], {spec.name: detection.MethodOutputs(out)})
    with rasterio.open(out) as src:
        assert (src.read(1)[10:16, 7:9] == 0).all()
    # Water on one date and a cloud on the other is no moved line (the cloud hides where the water was).
    assert not masks.moved_water(np.array([[6, 6]], np.uint8), np.array([[9, 6]], np.uint8)).any()
    assert masks.moved_water(np.array([[6, 4]], np.uint8), np.array([[5, 6]], np.uint8)).all()


def dilated(water):
    from scipy import ndimage

    return ndimage.binary_dilation(water, np.ones((3, 3), bool))


# -- runout and deposits below a landslide source -------------------------------------------------
def runout_terrain(shape):
    """Slope (degrees) and elevation (m) falling with the row: a plateau (rows 0-3, 3 deg), a 30 deg hillside
    (rows 4-13) and a valley floor (rows 14 on, 3 deg)."""
    rows = np.arange(shape[0], dtype="float64")
    drop = np.tan(np.radians(np.where((rows >= 4) & (rows < 14), 30.0, 3.0))) * 20.0
    z = 1500.0 - np.concatenate([[0.0], np.cumsum(drop[:-1])])
    slope = np.where((rows >= 4) & (rows < 14), 30.0, 3.0)
    return (np.repeat(slope[:, None], shape[1], axis=1).astype("float32"),
            np.repeat(z[:, None], shape[1], axis=1).astype("float32"))


def test_runout_rule_keeps_the_deposit_below_a_scar_and_drops_fields_beside_or_above_it(tmp_path):
    """Steep mapped pixels always stay. A scar's runout on the valley floor below it stays; the plateau pixels
    above the same scar, a valley field touching one steep row, the gentle half of a hill field whose steep half
    is barely steep (17 deg, no landslide source) and a change on flat ground only are dropped."""
    grid = {"crs": UTM, "transform": from_origin(400000, 4100000, 20, 20), "width": 30, "height": 20}
    slope, dem = runout_terrain((20, 30))
    slope[4:14, 20:30] = 17.0                # a gentler hillside: steep by the rule, no landslide source
    mask = np.zeros((20, 30), np.uint8)
    mask[2:14, 2:6] = 1                      # A: a scar from the plateau's edge down the hillside ...
    mask[14:19, 3:5] = 1                     # ... and its runout on the valley floor
    mask[13:20, 10:18] = 1                   # B: a valley field whose top row is on the hillside
    mask[8:18, 22:26] = 1                    # C: a hill field, 24 px on the 17 deg slope, 16 below
    mask[18:20, 27:30] = 1                   # D: a change on flat ground only
    mask[0, 0] = 255
    write(tmp_path / "m.tif", mask, grid=grid, dtype="uint8", nodata=255)
    write(tmp_path / "p.tif", np.where(mask == 1, 0.9, 0.1).astype("float32"), grid=grid)
    write(tmp_path / "s.tif", slope, grid=grid)
    write(tmp_path / "dem.tif", dem, grid=grid)
    dropped = masks.keep_runout_below_sources(tmp_path / "m.tif", tmp_path / "s.tif", tmp_path / "dem.tif", 15.0,
                                              probability_path=tmp_path / "p.tif")
    with rasterio.open(tmp_path / "m.tif") as src:
        out = src.read(1)
    with rasterio.open(tmp_path / "p.tif") as src:
        probability = src.read(1)
    assert (out[4:19, 3:5] == 1).all() and (out[4:14, 2:6] == 1).all()     # A: scar and runout
    assert (out[2:4, 2:6] == 0).all()                                        # A: above the scar
    assert (out[13, 10:18] == 1).all() and (out[14:20, 10:18] == 0).all()   # B: only its steep row
    assert (out[8:14, 22:26] == 1).all() and (out[14:18, 22:26] == 0).all()  # C: only its steep half
    assert (out[18:20, 27:30] == 0).all() and out[0, 0] == 255              # D; no data stays
    assert dropped == 8 + 48 + 16 + 6 == int(((mask == 1) & (out == 0)).sum())
    assert (probability[(mask == 1) & (out == 0)] == 0).all() and (probability[out == 1] == 0.9).all()
    # The object rule without these tests (``slope_objects``) keeps the field and the hill field whole.
    write(tmp_path / "m.tif", mask, grid=grid, dtype="uint8", nodata=255)
    assert masks.keep_objects_reaching_slope(tmp_path / "m.tif", tmp_path / "s.tif", 15.0) == 6


def test_runout_rule_on_several_masks_resamples_the_dem_once_and_maps_the_same(tmp_path, monkeypatch):
    """The detection pass runs the rule on every method's mask: with a shared DEM the DEM is resampled onto the
    grid once for all of them (a full tile: seconds per method), and every mask comes out as without it."""
    grid = {"crs": UTM, "transform": from_origin(400000, 4100000, 20, 20), "width": 30, "height": 20}
    dem_grid = {"crs": UTM, "transform": from_origin(400010, 4100010, 30, 30), "width": 21, "height": 15}
    slope, _ = runout_terrain((20, 30))
    _, dem = runout_terrain((15, 21))    # another grid: the rule resamples it (bilinear)
    write(tmp_path / "s.tif", slope, grid=grid)
    write(tmp_path / "dem.tif", dem, grid=dem_grid)
    first = np.zeros((20, 30), np.uint8)
    first[2:19, 2:6] = 1                      # a scar with its runout, flat pixels above it
    second = first.copy()
    second[13:20, 10:18] = 1                  # ... and a valley field
    dem_reads = []
    read_on_grid = rasters.read_on_grid
    monkeypatch.setattr(rasters, "read_on_grid", lambda path, *a, **k: (
        dem_reads.append(path) if str(path).endswith("dem.tif") else None, read_on_grid(path, *a, **k))[1])
    out = {}
    for shared in (None, masks.SharedDemOnGrid()):
        for name, mask in (("first", first), ("second", second)):
            write(tmp_path / f"{name}.tif", mask, grid=grid, dtype="uint8", nodata=255)
            masks.keep_runout_below_sources(tmp_path / f"{name}.tif", tmp_path / "s.tif", tmp_path / "dem.tif", 15.0,
                                            dem_on_grid=shared)
            with rasterio.open(tmp_path / f"{name}.tif") as src:
                out[name, shared is None] = src.read(1)
        reads = len(dem_reads)
        dem_reads.clear()
        assert reads == (2 if shared is None else 1)    # one row block each time: twice, or once shared
    for name in ("first", "second"):
        assert np.array_equal(out[name, True], out[name, False])
    assert (out["second", False][14:20, 10:18] == 0).all() and (out["first", False][14:19, 2:6] == 1).all()


def test_runout_rule_in_the_detection_pass_and_its_description(tmp_path):
    """A scar on a 30 deg hillside with its runout on the valley floor below, and a harvested field on the valley
    floor at the foot of the hillside: the pixel rule drops the runout; the runout rule maps it and drops the field's
    flat part, where the object rule (any steep pixel) maps the whole field. The masks line says so."""
    from test_clustering import DEBRIS_REFL, FIELD_REFL, FOREST_REFL, write_stack

    size = 40
    rows = np.arange(size, dtype="float64")
    z = 1000.0 - 20.0 * np.tan(np.radians(30.0)) * np.minimum(rows, 20) - 20.0 * np.tan(np.radians(3.0)) * np.maximum(
        rows - 20, 0)   # steep to row 20 (Horn: > 15 deg there), 3 deg below
    pre = np.broadcast_to(np.array(FOREST_REFL, np.float32)[:, None, None], (5, size, size)).copy()
    post = pre.copy()
    post[:, 6:21, 5:11] = np.array(DEBRIS_REFL, np.float32)[:, None, None]   # the scar
    post[:, 21:28, 6:10] = np.array(DEBRIS_REFL, np.float32)[:, None, None]  # its runout and deposit
    post[:, 19:36, 20:36] = np.array(FIELD_REFL, np.float32)[:, None, None]  # a field harvested, two rows on the slope
    paths = (write_stack(tmp_path / "pre.tif", pre), write_stack(tmp_path / "post.tif", post))
    profile = dict(driver="GTiff", width=size, height=size, count=1, dtype="float32", crs="EPSG:32637",
                   transform=from_origin(400000.0, 4000000.0, 20.0, 20.0))
    with rasterio.open(tmp_path / "dem.tif", "w", **profile) as dst:
        dst.write(np.repeat(z[:, None], size, axis=1).astype("float32"), 1)
    spec = detection.MethodSpec("threshold")
    out = {}
    for name, rule in (("pixels", {}), ("objects", {"slope_objects": True}), ("runout", {"keep_runout": True})):
        options = masks.MaskOptions(dem_path=str(tmp_path / "dem.tif"), **rule)
        result = detection.detect(detection.DetectionInputs(*paths, mask_options=options), [spec],
                                  {spec.name: detection.MethodOutputs(tmp_path / f"mask_{name}.tif")})
        with rasterio.open(tmp_path / f"mask_{name}.tif") as src:
            out[name] = src.read(1)
        found = result.methods[spec.name]
        assert found.landslide == int((out[name] == 1).sum())
        assert found.dropped_flat == (15 * 16 if name == "runout" else 0)  # the field's flat part, counted
        if name == "runout":
            assert "or runout/deposit: flatter pixels lower than the nearest steep pixel" in result.masks_description
            assert "mean slope >= 20 deg" in result.masks_description
    for mask in out.values():
        assert (mask[6:21, 5:11] == 1).all() and (mask[19:21, 20:36] == 1).all()  # scar and field on the slope
    assert (out["pixels"][21:28, 6:10] == 0).all() and (out["pixels"][21:36, 20:36] == 0).all()
    assert (out["objects"][21:28, 6:10] == 1).all() and (out["objects"][21:36, 20:36] == 1).all()
    assert (out["runout"][21:28, 6:10] == 1).all() and (out["runout"][21:36, 20:36] == 0).all()
    # The rule needs the elevations: a slope raster alone is refused before anything runs.
    with pytest.raises(ValueError, match="needs the DEM"):
        detection.detect(detection.DetectionInputs(*paths, mask_options=masks.MaskOptions(
            slope_path=str(tmp_path / "dem.tif"), keep_runout=True)), [spec],
            {spec.name: detection.MethodOutputs(tmp_path / "never.tif")})


def test_vegetated_before_under_thin_snow_needs_only_what_shows_through_it():
    """Snow the SCL missed (a third of the ground) mixes in with an NDVI of about 0: grass under it shows ~0.16,
    rock under it ~0. With the snow exception the grass is analysed and the rock is not; without it neither."""
    snow = {"B02": 0.95, "B03": 0.93, "B04": 0.90, "B8A": 0.80, "B11": 0.10}
    grass = {"B02": 0.05, "B03": 0.085, "B04": 0.0775, "B8A": 0.34, "B11": 0.28}
    rock = {"B02": 0.13, "B03": 0.16, "B04": 0.185, "B8A": 0.245, "B11": 0.30}
    under_snow = [{b: 0.35 * snow[b] + 0.65 * cover[b] for b in BANDS} for cover in (grass, rock)]
    pre = {b: np.array([under_snow[0][b], under_snow[1][b], BARE[b], VEG[b]], "float32") for b in BANDS}
    post = {b: np.array([BARE[b]] * 4, "float32") for b in BANDS}
    plain = masks.MaskOptions(min_ndvi_pre=0.3)
    assert masks.analysis_mask(pre, post, options=plain)[0].tolist() == [False, False, False, True]
    snowy = masks.MaskOptions(min_ndvi_pre=0.3, snow_ndsi_pre=0.0, snow_min_ndvi_pre=0.05)
    valid, reasons = masks.analysis_mask(pre, post, options=snowy)
    assert valid.tolist() == [True, False, False, True]
    assert reasons["not_vegetated"] == 2
    assert "NDVI before >= 0.3 (>= 0.05 under snow, NDSI > 0" in snowy.describe()
