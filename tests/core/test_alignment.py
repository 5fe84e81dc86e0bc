"""ECC co-registration: known shifts recovered, failures reported, stacks resampled with NaN outside."""
from __future__ import annotations

import hashlib

import cv2
import numpy as np
import pytest
import rasterio
from rasterio.crs import CRS
from rasterio.transform import from_origin

from landslide_plugin.core import alignment, rasters
from landslide_plugin.core.alignment import AlignmentError, coregister_stack, estimate_shift_ecc, fourier_shift

BANDS = ("B02", "B03", "B04", "B8A", "B11", "B12")
GRID = {"crs": CRS.from_epsg(32637), "transform": from_origin(300000, 4100000, 20, 20), "width": 160, "height": 128}
BARBELLINO = "sen2r_barbellino/S2A2A_{date}_022_Barbellino_BOA_10.tif"


def textured_scene(height=192, width=192, seed=0) -> np.ndarray:
    """Smooth random terrain-like texture at three scales (no periodicity, no straight edges)."""
    rng = np.random.default_rng(seed)
    scene = np.zeros((height, width), np.float32)
    for sigma, amplitude in ((1.5, 0.3), (4.0, 1.0), (12.0, 2.0)):
        noise = rng.normal(size=(height, width)).astype(np.float32)
        scene += amplitude * cv2.GaussianBlur(noise, (0, 0), sigma)
    return 0.3 + 0.05 * scene  # NIR-like reflectance


def assert_shift(result, dx, dy, tolerance):
    err = max(abs(result.shift_px[0] - dx), abs(result.shift_px[1] - dy))
    assert err <= tolerance, f"found {result.shift_px}, true ({dx}, {dy}), error {err:.3f} px"


# --- fourier_shift, the reference the accuracy tests rest on ---------------------------------------

def test_fourier_shift_moves_content_and_marks_outside_as_nan():
    image = textured_scene(64, 80)
    shifted = fourier_shift(image, 3, -2)
    # integer shift: exact copy, content of (x, y) now at (x + 3, y - 2)
    np.testing.assert_allclose(shifted[0:60, 3:80], image[2:62, 0:77], atol=1e-5)
    assert np.isnan(shifted[:, :3]).all() and np.isnan(shifted[62:, :]).all()
    assert np.isfinite(shifted[:62, 3:]).all()
    # sub-pixel: a smooth wave moved by (0.5, 0.25) px is the same wave with its phase moved
    yy, xx = np.mgrid[:64, :80].astype(np.float64)
    wave = lambda x, y: np.sin(2 * np.pi * x / 17) + np.cos(2 * np.pi * y / 23)  # noqa: E731
    np.testing.assert_allclose(fourier_shift(wave(xx, yy), 0.5, 0.25)[8:-8, 8:-8],
                               wave(xx - 0.5, yy - 0.25)[8:-8, 8:-8], atol=0.01)


# --- accuracy ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("dx, dy", [(0, 0), (3, -2), (-5, 5), (5, -5), (0.5, -0.25), (-1.37, 2.81),
                                    (4.6, 4.9), (-4.85, -3.3)])
def test_known_shift_recovered_within_005_px(dx, dy):
    reference = textured_scene(256, 256)
    result = estimate_shift_ecc(reference, fourier_shift(reference, dx, dy), pixel_size=20.0)
    assert_shift(result, dx, dy, 0.05)
    assert result.correlation > 0.99
    assert result.levels == 3  # 5 px max shift -> 1.25 px at the coarsest level (64 x 64)
    assert result.shift_m == pytest.approx(20.0 * np.hypot(*result.shift_px))
    np.testing.assert_allclose(result.matrix[:, :2], np.eye(2))


@pytest.mark.parametrize("motion, use_gradient", [("translation", True), ("euclidean", False), ("affine", False),
                                                  ("affine", True)])
def test_other_motions_and_the_gradient_recover_a_shift(motion, use_gradient):
    reference = textured_scene()
    result = estimate_shift_ecc(reference, fourier_shift(reference, -2.3, 3.6), motion=motion,
                                use_gradient=use_gradient)
    assert result.motion == motion
    assert_shift(result, -2.3, 3.6, 0.05)
    np.testing.assert_allclose(result.matrix[:, :2], np.eye(2), atol=2e-3)


def test_seasonal_gain_and_offset_do_not_bias_the_shift():
    reference = textured_scene(seed=3)
    moving = 0.7 * fourier_shift(reference, 1.7, -2.4) + 0.05
    for use_gradient in (False, True):
        assert_shift(estimate_shift_ecc(reference, moving, use_gradient=use_gradient), 1.7, -2.4, 0.05)


def test_twenty_percent_cloud_masked_out_of_the_estimate():
    reference = textured_scene(seed=5)
    moving = fourier_shift(reference, -3.2, 1.45)
    height, width = reference.shape
    yy, xx = np.mgrid[:height, :width]
    cloud = (xx - 66) ** 2 / 62 ** 2 + (yy - 70) ** 2 / 39 ** 2 < 1  # one big cloud, bright and smooth
    assert 0.17 < cloud.mean() < 0.23
    moving[cloud] = 0.9
    result = estimate_shift_ecc(reference, moving, mask=~cloud)
    assert_shift(result, -3.2, 1.45, 0.05)
    assert result.valid_fraction == pytest.approx(np.mean(~cloud & np.isfinite(moving)), abs=1e-6)
    # Marked as NaN (no data) instead of through the mask: same answer.
    moving[cloud] = np.nan
    assert_shift(estimate_shift_ecc(reference, moving), -3.2, 1.45, 0.05)


def test_a_large_tile_uses_a_window_at_full_resolution():
    reference = textured_scene(400, 400, seed=7)
    reference[:, :200] = np.nan  # the best window is on the valid side
    result = estimate_shift_ecc(reference, fourier_shift(np.nan_to_num(reference, nan=0.3), 2.2, -1.1),
                                max_pixels=150 * 150)
    assert_shift(result, 2.2, -1.1, 0.05)
    assert any("window at column" in m for m in result.messages)
    col = int(next(m for m in result.messages if "window" in m).split("column ")[1].split(",")[0])
    assert col >= 200



def _whole_image_pyr_down(image, valid):
    """The pyramid step done on the whole image at once (the reference the strip-wise one must equal)."""
    weight = valid.astype(np.float32)
    weighted = cv2.pyrDown(np.where(valid, image, 0).astype(np.float32) * weight)
    weight = cv2.pyrDown(weight)
    with np.errstate(invalid="ignore", divide="ignore"):
        values = np.where(weight > 0, weighted / np.maximum(weight, 1e-12), 0).astype(np.float32)
    ok = weight >= 0.5
    values[~ok] = 0
    return values, ok


@pytest.mark.parametrize("shape", [(97, 64), (100, 81), (7, 9)])
@pytest.mark.parametrize("strip", [1, 3, 16, 256])
def test_strip_wise_pyramid_step_equals_the_whole_image_one(shape, strip):
    rng = np.random.default_rng(3)
    image = rng.normal(size=shape).astype(np.float32)
    valid = rng.random(shape) > 0.3
    image[~valid] = np.nan  # level 0 keeps whatever its invalid pixels hold
    values, ok = alignment._pyr_down(image, valid, strip=strip)
    expected_values, expected_ok = _whole_image_pyr_down(image, valid)
    np.testing.assert_array_equal(ok, expected_ok)
    np.testing.assert_array_equal(values, expected_values)


@pytest.mark.parametrize("use_gradient", [False, True])
def test_features_of_a_crop_are_the_whole_image_features_up_to_gain_and_offset(use_gradient):
    image = textured_scene(120, 140, seed=4)
    valid = np.ones(image.shape, bool)
    valid[40:50, 60:75] = False
    image[~valid] = np.nan
    whole, whole_ok = alignment._features(np.where(valid, image, 0).astype(np.float32), valid, use_gradient)
    box = (30, 20, 110, 90)  # c0, r0, c1, r1
    crop, crop_ok = alignment._features_of(image, valid, box, use_gradient)
    cut = whole[20:90, 30:110]
    np.testing.assert_array_equal(crop_ok, whole_ok[20:90, 30:110])
    assert crop.shape == cut.shape and not np.any(crop[~crop_ok])
    slope, offset = np.polyfit(cut[crop_ok], crop[crop_ok], 1)
    np.testing.assert_allclose(crop[crop_ok], slope * cut[crop_ok] + offset, atol=1e-4)


def test_a_large_image_is_estimated_without_full_size_feature_images():
    """Features, z-scores and ECC's inputs are made on the windows ECC runs on: what the estimate allocates
    stays a small multiple of one input image (it was about twenty such images)."""
    import tracemalloc

    scene = textured_scene(1600, 1600, seed=5)
    reference, moving = scene[3:, 2:].copy(), scene[:-3, :-2].copy()  # content moved by (2, 3) px
    valid = np.ones(reference.shape, bool)
    valid[:100, :300] = False  # a cloud, as both dates' SCL would give it
    tracemalloc.start()
    try:
        result = estimate_shift_ecc(reference, moving, use_gradient=True, mask=valid, max_pixels=400 * 400)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert_shift(result, 2.0, 3.0, 0.05)
    assert peak < 3 * reference.nbytes, f"the estimate allocated {peak / reference.nbytes:.1f} input images"


def test_stored_dns_with_their_nodata_give_the_shift_of_the_reflectance():
    """coregister_stack estimates on a stack's DNs (half the memory): the z-scores do not see scale and offset."""
    reference = textured_scene(256, 256, seed=2)
    moving = fourier_shift(reference, 1.3, -0.7)
    reference[:40, :60] = np.nan  # no data on one date
    dns = [np.where(np.isfinite(image), np.round(image * 10000 + 1000), 0).astype(np.uint16)
           for image in (reference, moving)]
    as_reflectance = [np.where(dn == 0, np.nan, (dn.astype(np.float32) - 1000) / 10000) for dn in dns]
    from_dns = estimate_shift_ecc(*dns, use_gradient=True, nodata=0)
    from_reflectance = estimate_shift_ecc(*as_reflectance, use_gradient=True)
    assert from_dns.valid_fraction == from_reflectance.valid_fraction < 1
    np.testing.assert_allclose(from_dns.shift_px, from_reflectance.shift_px, atol=1e-3)
    assert_shift(from_dns, 1.3, -0.7, 0.05)

@pytest.mark.parametrize("date", ["20170703", "20190723"])
@pytest.mark.parametrize("use_gradient", [False, True])
def test_real_sentinel2_crop_shift_recovered_within_01_px(realdata, date, use_gradient):
    with rasterio.open(realdata / BARBELLINO.format(date=date)) as src:
        nir = src.read(8).astype(np.float32) / 10000  # B08, 42 x 24 px at 10 m
    assert nir.shape == (42, 24)
    for dx, dy in [(0.5, -0.5), (1, 0), (-2, 2), (2, -1.3), (-1.7, -2), (0.25, 1.75)]:
        result = estimate_shift_ecc(nir, fourier_shift(nir, dx, dy), max_shift_px=2.5, use_gradient=use_gradient,
                                    pixel_size=10.0)
        assert result.levels == 1  # 24 px wide: no room for a coarser level
        assert_shift(result, dx, dy, 0.1)


def test_real_scene_with_its_real_scl_clouds_and_lake(realdata, tmp_path):
    """2017-07-03 has clouds (SCL 8/9) and the lake (6) in its real 20 m SCL, on a 10 m stack."""
    folder = realdata / "sen2r_barbellino"
    reference = folder / "S2A2A_20170703_022_Barbellino_BOA_10.tif"
    scl = folder / "S2A2A_20170703_022_Barbellino_SCL_10.tif"
    with rasterio.open(reference) as src:
        profile = src.profile
        data = src.read().astype(np.float32)
    assert not (data == 65535).any()
    moved = tmp_path / "moved.tif"
    profile.update(dtype="float32", nodata=np.nan)
    with rasterio.open(moved, "w", **profile) as dst:
        dst.write(np.stack([fourier_shift(band, 1.5, -1.0) for band in data]))
    # Intensity, not gradient: on 24 x 42 px the fragmented mask leaves too few gradient pixels.
    result = coregister_stack(reference, moved, tmp_path / "aligned.tif", band="B08", band_number=8,
                              use_gradient=False, reference_scl_path=scl, moving_scl_path=scl, max_shift_px=2.5)
    assert_shift(result, 1.5, -1.0, 0.1)
    # The 20 m SCL was resampled onto the 10 m stack grid, and the user is told so.
    assert any("reference SCL is on another grid" in m and "nearest" in m for m in result.messages)
    with rasterio.open(scl) as src:
        invalid_share = np.isin(src.read(1), alignment.INVALID_SCL_CLASSES).mean()
    assert 0.1 < invalid_share and result.valid_fraction < 1 - invalid_share + 0.02


# --- failures are reported, never passed on ---------------------------------------------------------

def test_noise_against_structure_raises_alignment_error():
    reference = textured_scene(seed=1)
    noise = np.random.default_rng(2).normal(size=reference.shape).astype(np.float32)
    with pytest.raises(AlignmentError, match="(correlation|did not converge|beyond the maximum)"):
        estimate_shift_ecc(reference, noise)


def test_shift_beyond_the_maximum_raises_alignment_error():
    reference = textured_scene()
    with pytest.raises(AlignmentError, match=r"beyond the maximum of 1.5 px.*raise the maximum shift"):
        estimate_shift_ecc(reference, fourier_shift(reference, 3.0, -2.5), max_shift_px=1.5, levels=3)


def test_too_few_valid_pixels_and_bad_arguments():
    reference = textured_scene(64, 64)
    mask = np.zeros(reference.shape, bool)
    mask[:10, :10] = True
    with pytest.raises(AlignmentError, match="only 100 pixels .* valid on both dates"):
        estimate_shift_ecc(reference, reference, mask=mask)
    with pytest.raises(ValueError, match="differ in size"):
        estimate_shift_ecc(reference, reference[:60])
    with pytest.raises(ValueError, match="motion must be one of translation, euclidean, affine"):
        estimate_shift_ecc(reference, reference, motion="homography")
    with pytest.raises(ValueError, match="fewer than 8 pixels at the coarsest level"):
        estimate_shift_ecc(reference, reference, levels=5)


def test_auto_levels():
    assert alignment.auto_levels((5490, 5490), 5.0) == 3
    assert alignment.auto_levels((5490, 5490), 20.0) == 5
    assert alignment.auto_levels((5490, 5490), 1.0) == 1
    assert alignment.auto_levels((42, 24), 2.0) == 1
    assert alignment.auto_levels((256, 256), 5.0) == 3
    assert alignment.auto_levels((255, 255), 20.0) == 2  # limited by size: 64 px at the coarsest level


# --- stacks on disk ---------------------------------------------------------------------------------

def write_stack(path, bands: np.ndarray, grid=GRID, descriptions=BANDS, tags=None):
    with rasterio.open(path, "w", **rasters.geotiff_profile(grid, len(bands))) as dst:
        dst.write(bands.astype(np.float32))
        for i, name in enumerate(descriptions):
            dst.set_band_description(i + 1, name)
        dst.update_tags(**(tags or {}))


def write_scl(path, scl: np.ndarray, grid=GRID):
    with rasterio.open(path, "w", **rasters.geotiff_profile(grid, 1, "uint8", 0)) as dst:
        dst.write(scl, 1)
        dst.set_band_description(1, "SCL")


def make_pair(tmp_path, dx, dy, seed=0):
    """Pre and post stacks (6 bands, 128 x 160) whose post content is moved by (dx, dy), and SCLs."""
    height, width = GRID["height"], GRID["width"]
    base = textured_scene(height, width, seed=seed)
    pre = np.stack([base * (0.3 + 0.2 * i) + 0.01 * i for i in range(len(BANDS))])
    post = np.stack([0.8 * fourier_shift(band, dx, dy) + 0.02 for band in pre])
    scl_classes = np.array([4, 5, 2, 7], np.uint8)
    scl_pre = scl_classes[(np.arange(height)[:, None] // 7 + np.arange(width)[None, :] // 9) % 4]
    scl_post = scl_pre.copy()
    scl_post[:30, :40] = 9  # a cloud on the post date
    paths = {name: tmp_path / f"{name}.tif" for name in ("pre", "post", "pre_scl", "post_scl")}
    write_stack(paths["pre"], pre, tags={"SENSING_DATE": "2023-01-05", "TILE": "37SCB"})
    write_stack(paths["post"], post, tags={"SENSING_DATE": "2023-08-05", "TILE": "37SCB"})
    write_scl(paths["pre_scl"], scl_pre)
    write_scl(paths["post_scl"], scl_post)
    return paths, pre, post


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_coregister_stack_aligns_every_band_and_the_scl(tmp_path):
    dx, dy = 2.4, -1.6
    paths, pre, _ = make_pair(tmp_path, dx, dy)
    before = {name: digest(p) for name, p in paths.items()}
    out, out_scl = tmp_path / "aligned.tif", tmp_path / "aligned_scl.tif"
    seen = []
    # Bilinear, for the exact no-data geometry below (the cubic kernel's is tested on its own).
    result = coregister_stack(paths["pre"], paths["post"], out, moving_scl_path=paths["post_scl"],
                              out_scl_path=out_scl, reference_scl_path=paths["pre_scl"], progress=seen.append,
                              resampling="bilinear")
    assert_shift(result, dx, dy, 0.05)
    assert result.shift_m == pytest.approx(20 * np.hypot(dx, dy), abs=1.5)
    assert seen[-1] == 100 and seen == sorted(seen)
    assert {name: digest(p) for name, p in paths.items()} == before  # inputs untouched
    with rasterio.open(out) as src:
        assert src.count == 6 and src.dtypes[0] == "float32" and np.isnan(src.nodata)
        assert src.descriptions == BANDS
        assert src.crs == GRID["crs"] and src.transform == GRID["transform"]
        tags = src.tags()
        assert tags["SENSING_DATE"] == "2023-08-05" and tags["TILE"] == "37SCB"
        assert float(tags["ECC_SHIFT_X_PX"]) == pytest.approx(result.shift_px[0], abs=1e-3)
        aligned = src.read()
    # Interior: the aligned post image is the pre image under the seasonal gain/offset.
    interior = (slice(4, -4), slice(5, -5))
    for band in range(6):
        expected = 0.8 * pre[band][interior] + 0.02
        error = np.abs(aligned[band][interior] - expected)
        assert np.mean(error) < 0.05 * expected.std(), band  # bilinear interpolation of fine texture
    # The post image had no data on its left 2-3 columns and bottom 1-2 rows (content moved in from
    # outside), plus what the shift takes outside the image: all NaN in the output, never 0.
    # aligned(x, y) = post(x + 2.4, y - 1.6); post is NaN on columns 0-2 and its last two rows.
    nan = np.isnan(aligned)
    assert nan[:, :, 0].all() and nan[:, :, -3:].all() and nan[:, :2, :].all() and nan[:, -1, :].all()
    assert not nan[:, 2:-1, 1:-3].any()
    assert not (aligned == 0).any()
    with rasterio.open(out_scl) as src:
        assert src.dtypes[0] == "uint8" and src.nodata == 0 and src.descriptions == ("SCL",)
        scl = src.read(1)
    assert set(np.unique(scl)) <= {0, 2, 4, 5, 7, 9}  # input classes (+ 0 outside): nearest neighbour
    assert (scl[:, -2:] == 0).all()  # beyond the post image's right edge
    assert (scl[5:25, 5:35] == 9).all()  # the post cloud, moved back by (-dx, -dy) stays a cloud
    assert [p.name for p in tmp_path.iterdir() if ".part" in p.name] == []


def test_cubic_resampling_keeps_nan_outside_and_next_to_no_data(tmp_path):
    paths, pre, post = make_pair(tmp_path, 1.0, 1.0)
    post[:, 60, 80] = np.nan
    write_stack(paths["post"], post)
    out = tmp_path / "aligned.tif"
    coregister_stack(paths["pre"], paths["post"], out, resampling="cubic")
    with rasterio.open(out) as src:
        aligned = src.read(1)
    # Integer shift: aligned (x, y) = post (x + 1, y + 1). The cubic kernel reaches one pixel beyond
    # the bilinear one, so the NaN at post (80, 60) blanks a 3 x 3 block around aligned (79, 59).
    nan = np.isnan(aligned)
    assert nan[58:61, 78:81].all()
    # Edges: the post image's own NaN first row/column (content shifted in from outside) and its last
    # column/row, which the cubic kernel would read past.
    assert nan[0].all() and nan[:, 0].all() and nan[-2:].all() and nan[:, -2:].all()
    assert nan[1:-2, 1:-2].sum() == 9
    assert not (aligned == 0).any()


def test_moving_stack_on_another_grid_is_resampled_first(tmp_path):
    paths, pre, post = make_pair(tmp_path, 0.0, 0.0)
    # The post stack at 10 m over a larger extent: same ground content, twice the pixels.
    fine = np.stack([cv2.resize(b, None, fx=2, fy=2, interpolation=cv2.INTER_LINEAR) for b in post])
    fine = np.pad(fine, ((0, 0), (10, 10), (10, 10)), mode="edge")
    t = GRID["transform"]
    fine_grid = {"crs": GRID["crs"], "transform": from_origin(t.c - 100, t.f + 100, 10, 10),
                 "width": fine.shape[2], "height": fine.shape[1]}
    moving = tmp_path / "post_10m.tif"
    write_stack(moving, fine, grid=fine_grid)
    out = tmp_path / "aligned.tif"
    result = coregister_stack(paths["pre"], moving, out)
    assert any("moving stack is on another grid" in m and "resampled onto the reference grid" in m
               for m in result.messages)
    # cv2.resize keeps pixel centres where the geotransform puts them: the content is not shifted.
    assert_shift(result, 0.0, 0.0, 0.1)
    with rasterio.open(out) as src:
        assert (src.width, src.height) == (GRID["width"], GRID["height"])
        assert src.transform == GRID["transform"]


def test_cancelled_run_leaves_no_output(tmp_path):
    paths, _, _ = make_pair(tmp_path, 1.0, 0.5)
    out = tmp_path / "aligned.tif"
    calls = []

    def cancel_after_estimate():
        calls.append(1)
        return len(calls) > 3

    with pytest.raises(rasters.Cancelled):
        coregister_stack(paths["pre"], paths["post"], out, moving_scl_path=paths["post_scl"],
                         out_scl_path=tmp_path / "aligned_scl.tif", is_cancelled=cancel_after_estimate)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{n}.tif" for n in paths)


def test_failed_alignment_writes_nothing_and_names_the_files(tmp_path):
    paths, pre, _ = make_pair(tmp_path, 0.0, 0.0)
    noise = np.random.default_rng(0).normal(size=pre.shape).astype(np.float32)
    write_stack(paths["post"], noise)
    with pytest.raises(AlignmentError, match="co-registration of post.tif onto pre.tif failed"):
        coregister_stack(paths["pre"], paths["post"], tmp_path / "aligned.tif")
    assert not (tmp_path / "aligned.tif").exists()


def test_file_errors_are_clear(tmp_path):
    paths, pre, _ = make_pair(tmp_path, 0.0, 0.0)
    with pytest.raises(FileNotFoundError, match="moving stack '.*nope.tif' does not exist"):
        coregister_stack(paths["pre"], tmp_path / "nope.tif", tmp_path / "out.tif")
    with pytest.raises(ValueError, match="would overwrite the moving stack"):
        coregister_stack(paths["pre"], paths["post"], paths["post"])
    with pytest.raises(ValueError, match="no SCL of the moving image"):
        coregister_stack(paths["pre"], paths["post"], tmp_path / "out.tif", out_scl_path=tmp_path / "s.tif")
    bare = tmp_path / "bare.tif"
    write_stack(bare, pre, descriptions=())
    with pytest.raises(ValueError, match="band B8A not found in .*bare.tif.*Set the band numbers"):
        coregister_stack(paths["pre"], bare, tmp_path / "out.tif")
    # the band number fallback makes it work
    result = coregister_stack(paths["pre"], bare, tmp_path / "out.tif", band_number=4)
    assert_shift(result, 0.0, 0.0, 0.05)


def test_user_mask_excludes_pixels(tmp_path):
    paths, pre, post = make_pair(tmp_path, -1.5, 2.0)
    # A large change on the post date (a bright patch over a third of the scene) ...
    post[:, :, :55] = 0.9
    write_stack(paths["post"], post)
    mask = tmp_path / "mask.tif"
    exclude = np.zeros((GRID["height"], GRID["width"]), np.uint8)
    exclude[:, :62] = 1
    write_scl(mask, exclude)  # uint8 with nodata 0: 1 = leave out
    result = coregister_stack(paths["pre"], paths["post"], tmp_path / "out.tif", mask_path=mask)
    assert_shift(result, -1.5, 2.0, 0.05)
    assert result.valid_fraction < 0.62


# --- the built-in example pair (written by the example-data and product-reader helpers) -------------

@pytest.mark.parametrize("dx, dy", [(2.0, -3.0), (0.37, 0.81), (-4.6, 1.25)])
def test_known_shift_of_the_example_product_recovered_within_005_px(example_pair, tmp_path, dx, dy):
    """The example scene's own NIR, shifted by a known amount (Fourier), clouds masked out via its SCL."""
    from landslide_plugin.core import products

    stack = products.read_l2a([example_pair.pre], bands=("B8A",))
    nir = stack.reflectance[0]
    usable = np.isin(stack.scl, (4, 5, 7)) & np.isfinite(nir)
    moving = fourier_shift(np.where(np.isfinite(nir), nir, np.nanmean(nir)), dx, dy)
    # what is cloud or no data in the scene is cloud or no data in the shifted copy too
    moving[~(fourier_shift(usable.astype(np.float32), dx, dy, outside=0.0) > 0.99)] = np.nan
    result = estimate_shift_ecc(np.where(usable, nir, np.nan), moving, mask=usable, max_shift_px=5.0)
    assert_shift(result, dx, dy, 0.05)


def test_example_pair_shift_recovered(request, tmp_path):
    products = pytest.importorskip("landslide_plugin.core.products")
    example_data = pytest.importorskip("landslide_plugin.examples.example_data")
    if not hasattr(example_data, "generate_example_pair") or not hasattr(products, "prepare_l2a"):
        pytest.skip("the example generator or the L2A reader is not written yet")
    example_pair = request.getfixturevalue("example_pair")
    stacks = {}
    for name in ("pre", "post"):
        stack, scl = tmp_path / f"{name}.tif", tmp_path / f"{name}_scl.tif"
        products.prepare_l2a([getattr(example_pair, name)], stack, scl)
        stacks[name] = (stack, scl)
    # January against August: NIR brightness changes with phenology and sun elevation; the
    # gradient of SWIR-1 is what matches (measured: NIR fails or drifts, B11 gradient within 0.1 px).
    result = coregister_stack(stacks["pre"][0], stacks["post"][0], tmp_path / "aligned.tif", band="B11",
                              use_gradient=True, reference_scl_path=stacks["pre"][1],
                              moving_scl_path=stacks["post"][1], out_scl_path=tmp_path / "aligned_scl.tif")
    assert_shift(result, *example_pair.shift, 0.15)


# --- a real cross-date Sentinel-2 pair (AROSICS test case inter1) -----------------------------------

AROSICS = "arosics_inter1/S2A_{date}_T33UUU_B_{role}.tif"
AROSICS_SHIFT = (0.71, -1.81)  # AROSICS 1.12.1: the target content sits at reference (x + 0.71, y - 1.81)


def read_arosics_pair(realdata):
    """Reference and target on the reference grid (one 10 m lattice, other extents), 0 -> NaN (no data)."""
    ref_path = realdata / AROSICS.format(date="20160608T153121", role="ref")
    tgt_path = realdata / AROSICS.format(date="20160529T153631", role="tgt")
    with rasterio.open(ref_path) as ref:
        reference = ref.read(1).astype(np.float32)
        transform = ref.transform
    with rasterio.open(tgt_path) as tgt:
        col, row = (~transform) * (tgt.transform.c, tgt.transform.f)  # target's corner on the ref grid
        target = tgt.read(1).astype(np.float32)
    col, row = int(round(col)), int(round(row))
    moving = np.zeros_like(reference)
    r0, c0 = max(row, 0), max(col, 0)
    r1, c1 = min(row + target.shape[0], reference.shape[0]), min(col + target.shape[1], reference.shape[1])
    moving[r0:r1, c0:c1] = target[r0 - row:r1 - row, c0 - col:c1 - col]
    reference[reference == 0] = np.nan
    moving[moving == 0] = np.nan
    return reference, moving


@pytest.mark.realdata
def test_real_cross_date_pair_with_clouds_and_no_data_agrees_with_arosics(realdata):
    """Real clouds in the moving image, no cloud mask given: the bright ones are found and left out."""
    reference, moving = read_arosics_pair(realdata)
    assert 0.55 < np.mean(np.isfinite(reference) & np.isfinite(moving)) < 0.65
    result = estimate_shift_ecc(reference, moving, use_gradient=True, pixel_size=10.0)
    assert_shift(result, *AROSICS_SHIFT, 0.15)
    assert result.converged
    assert result.correlation > 0.5
    assert any("moving image left out as cloud" in m for m in result.messages)
    # The cloud-free reference loses little to the automatic cloud mask.
    reference_cloud = next(m for m in result.messages if "reference image left out" in m)
    assert float(reference_cloud.split(" %")[0]) < 2.0


@pytest.mark.realdata
@pytest.mark.parametrize("use_gradient", [False, True])
def test_known_shifts_of_the_real_reference_recovered_within_005_px(realdata, use_gradient):
    reference, _ = read_arosics_pair(realdata)
    crop = reference[1000:1512, 1400:1912]  # 512 x 512 px of fields, forest and villages, all valid
    assert np.isfinite(crop).all()
    for dx, dy in [(0.71, -1.81), (0.5, 0.25), (-2.3, 1.45), (3.6, -4.15), (-0.13, -0.87)]:
        result = estimate_shift_ecc(crop, fourier_shift(crop, dx, dy), use_gradient=use_gradient, pixel_size=10.0)
        assert_shift(result, dx, dy, 0.05)
        assert result.converged


def test_a_stack_of_product_dns_co_registers_into_float32_reflectance_with_overviews(example_pair, tmp_path):
    """The prepared stack (uint16 DNs, scale and offset) in; the aligned stack out as float32 reflectance, the
    interpolated values kept exactly (not rounded to DNs)."""
    from landslide_plugin.core import products

    products.prepare_l2a([example_pair.pre], tmp_path / "pre.tif", tmp_path / "pre_scl.tif")
    result = coregister_stack(tmp_path / "pre.tif", tmp_path / "pre.tif", tmp_path / "same.tif")
    assert np.allclose(result.shift_px, 0.0, atol=1e-3)
    with rasterio.open(tmp_path / "pre.tif") as src:
        assert src.dtypes[0] == "uint16" and rasters.stored_scaling(src) is not None
        expected = rasters.read_reflectance(src, src.indexes)
        descriptions = src.descriptions
    with rasterio.open(tmp_path / "same.tif") as out:
        assert out.dtypes[0] == "float32" and np.isnan(out.nodata) and out.scales[0] == 1.0
        assert out.descriptions == descriptions and out.profile["compress"] == "zstd"
        aligned = rasters.read_reflectance(out, out.indexes)
    inner = (slice(None), slice(2, -2), slice(2, -2))  # the edge rows/columns may touch the outside
    both = np.isfinite(aligned[inner]) & np.isfinite(expected[inner])
    assert both.mean() > 0.9
    np.testing.assert_allclose(aligned[inner][both], expected[inner][both], atol=1e-4)
