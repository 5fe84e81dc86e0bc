"""Preflight checks: bad inputs fail in seconds, with one sentence naming the input, the problem and the fix."""
from __future__ import annotations

import os
import shutil
import time
from collections import namedtuple

import numpy as np
import pytest
import rasterio
from rasterio.crs import CRS
from rasterio.transform import from_origin

from landslide_plugin.core import preflight, products, rasters
from landslide_plugin.core.preflight import InputError

pytestmark = pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")

BANDS = ("B02", "B03", "B04", "B8A", "B11")
UTM = CRS.from_epsg(32637)


def write_stack(path, *, width=64, height=48, count=5, descriptions=BANDS, crs=UTM, left=300000.0,
                top=4200000.0, res=20.0, values=None, dtype="float32", nodata=np.nan):
    like = {"crs": crs, "transform": from_origin(left, top, res, res), "width": width, "height": height}
    if values is None:
        values = np.random.default_rng(0).uniform(0.01, 0.4, (count, height, width))
    with rasterio.open(path, "w", **rasters.geotiff_profile(like, count, dtype, nodata)) as dst:
        dst.write(np.asarray(values, dtype=dtype))
        for index, name in enumerate(descriptions or (), start=1):
            dst.set_band_description(index, name)
    return path


def write_scl(path, classes, *, crs=UTM, left=300000.0, top=4200000.0, dtype="uint8"):
    classes = np.asarray(classes, dtype=dtype)
    like = {"crs": crs, "transform": from_origin(left, top, 20, 20), "width": classes.shape[-1],
            "height": classes.shape[-2]}
    count = 1 if classes.ndim == 2 else classes.shape[0]
    with rasterio.open(path, "w", **rasters.geotiff_profile(like, count, dtype, 0)) as dst:
        dst.write(classes if classes.ndim == 3 else classes[None])
    return path


def one_sentence(error) -> str:
    text = str(error.value)
    assert "\n" not in text and "Traceback" not in text
    assert text[0].isupper() and text.endswith(".")
    assert text.count(". ") <= 1  # one sentence, or two short ones
    return text


def timed(function, *args, **kwargs):
    start = time.perf_counter()
    result = function(*args, **kwargs)
    elapsed = time.perf_counter() - start
    assert elapsed < 2.0, f"{function.__name__} took {elapsed:.2f} s"
    return result


Prepared = namedtuple("Prepared", "pre post")


@pytest.fixture(scope="module")
def prepared(example_pair, tmp_path_factory):
    folder = tmp_path_factory.mktemp("prepared")
    return Prepared(*(products.prepare_l2a(path, folder / f"{name}.tif", folder / f"{name}_scl.tif")
                      for name, path in (("pre", example_pair.pre), ("post", example_pair.post))))


# -- good inputs pass, quickly ---------------------------------------------------------------------------


def test_example_products_pass_every_check_in_seconds(example_pair, prepared, tmp_path):
    pre = timed(preflight.footprint, [example_pair.pre], "pre-event image")
    post = timed(preflight.footprint, example_pair.post, "post-event image")
    timed(preflight.check_overlap, pre, post)
    assert (pre.width, pre.height, pre.count) == (prepared.pre.width, prepared.pre.height, len(products.DEFAULT_BANDS))
    assert pre.crs == UTM and pre.label == "pre-event image"
    stack = timed(preflight.footprint, prepared.post.stack_path, "post-event image")
    timed(preflight.check_stack, prepared.post.stack_path, "post-event image", needed_bands=BANDS)
    timed(preflight.check_scl, prepared.post.scl_path, "post-event SCL", stack)
    valid, total = timed(preflight.count_valid_pixels, prepared.post.stack_path, "post-event image",
                         scl_path=prepared.post.scl_path)
    assert total == prepared.post.width * prepared.post.height and 0 < valid < total
    timed(preflight.require_valid_pixels, prepared.post.stack_path, "post-event image",
          scl_path=prepared.post.scl_path)
    needed = preflight.estimate_run_bytes(pre.width, pre.height, bands=pre.count)
    timed(preflight.check_output_folder, tmp_path / "results" / "run1", needed_bytes=needed)
    assert (tmp_path / "results" / "run1").is_dir()
    assert list((tmp_path / "results" / "run1").iterdir()) == []  # the write test leaves nothing


def test_products_footprint_equals_the_prepared_stack(example_pair, prepared, tmp_path):
    for path, done in ((example_pair.pre, prepared.pre), (example_pair.post, prepared.post)):
        fp = preflight.footprint([path], "image")
        with rasterio.open(done.stack_path) as src:
            assert fp.bounds == pytest.approx(tuple(src.bounds))
            assert (fp.width, fp.height, fp.crs) == (src.width, src.height, src.crs)
            assert fp.count == src.count
    # cropped to an area of interest, snapped outward to the 20 m grid as prepare_l2a does
    aoi = (300333.0, 4197777.0, 301555.0, 4199111.0)
    fp = preflight.footprint(example_pair.pre, "pre-event image", aoi=aoi, aoi_crs="EPSG:32637")
    done = products.prepare_l2a(example_pair.pre, tmp_path / "aoi.tif", tmp_path / "aoi_scl.tif", aoi=aoi,
                                aoi_crs="EPSG:32637")
    with rasterio.open(done.stack_path) as src:
        assert fp.bounds == pytest.approx(tuple(src.bounds))
        assert (fp.width, fp.height) == (src.width, src.height)


def test_stack_footprint_is_its_raster(tmp_path):
    path = write_stack(tmp_path / "s.tif", count=6, descriptions=None)
    fp = preflight.footprint(path, "pre-event image")
    assert fp.bounds == pytest.approx((300000, 4200000 - 48 * 20, 300000 + 64 * 20, 4200000))
    assert (fp.width, fp.height, fp.count, fp.crs) == (64, 48, 6, UTM)


# -- footprints of bad inputs -----------------------------------------------------------------------------


def test_aoi_outside_the_image_gives_both_extents(example_pair):
    with pytest.raises(InputError) as error:
        preflight.footprint([example_pair.pre], "pre-event image", aoi=(10.0, 45.0, 10.1, 45.1))
    text = one_sentence(error)
    assert "area of interest (lon 10.0000..10.1000, lat 45.0000..45.1000" in text
    assert "does not overlap the pre-event image (lon 36." in text
    assert "draw the area over the image" in text and "EPSG:4326" in text


def test_missing_corrupt_and_wrong_kinds_of_input(example_pair, tmp_path):
    with pytest.raises(InputError) as error:
        preflight.footprint([tmp_path / "nowhere.zip"], "pre-event image")
    assert "pre-event image" in one_sentence(error) and "does not exist: check the path" in str(error.value)

    corrupt = tmp_path / "S2B_MSIL2A_broken.zip"
    corrupt.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(InputError) as error:
        preflight.footprint([corrupt], "post-event image")
    assert "corrupt ZIP" in str(error.value) and "download it again" in str(error.value)

    folder = tmp_path / "some_folder"
    folder.mkdir()
    with pytest.raises(InputError) as error:
        preflight.footprint([folder], "pre-event image")
    text = one_sentence(error)
    assert "is a folder but not a Sentinel-2 .SAFE product" in text and "give the .SAFE folder" in text

    stack = write_stack(tmp_path / "stack.tif")
    with pytest.raises(InputError) as error:
        preflight.footprint([stack, example_pair.pre], "pre-event image")
    text = one_sentence(error)
    assert "stacks cannot be mosaicked" in text and "give one stack" in text

    broken_tif = tmp_path / "broken.tif"
    broken_tif.write_bytes(b"II*\x00garbage")
    with pytest.raises(InputError) as error:
        preflight.footprint(broken_tif, "post-event image")
    assert "cannot be read as a raster" in one_sentence(error)


def test_products_of_two_dates_are_refused(example_pair):
    with pytest.raises(InputError) as error:
        preflight.footprint([example_pair.pre, example_pair.post], "pre-event image")
    assert "different dates" in one_sentence(error) and "one date only" in str(error.value)


def test_several_dates_of_a_composite_lie_on_the_oldest_dates_grid(tmp_path):
    """A caller that composites the dates gets the composite's grid, its oldest date's (composite_l2a)."""
    from landslide_plugin.core import composite
    from landslide_plugin.examples.example_data import simulate_scene, write_date_product

    scene = simulate_scene(48, 2, pre_date="2022-06-01", post_date="2023-06-01", cloud_fraction=(0.0, 0.0))
    newer, _ = write_date_product(scene, tmp_path / "newer", date="2022-06-11", after_event=False,
                                  ulx=300000.0 + 10 * 20.0, uly=4200000.0 - 6 * 20.0)
    older, _ = write_date_product(scene, tmp_path / "older", date="2022-06-01", after_event=False)
    with pytest.raises(InputError, match="different dates"):
        preflight.footprint([newer, older], "pre-event image")
    aoi = (300100.0, 4198900.0, 300700.0, 4199500.0)
    for area in (None, aoi):
        fp = preflight.footprint([newer, older], "pre-event image", aoi=area, aoi_crs="EPSG:32637",
                                 several_dates=True)
        made = composite.composite_l2a([newer, older], tmp_path / "c.tif", tmp_path / "c_scl.tif",
                                       tmp_path / "c_n.tif", aoi=area, aoi_crs="EPSG:32637")
        with rasterio.open(made.stack_path) as src:
            assert fp.bounds == pytest.approx(tuple(src.bounds))
            assert (fp.width, fp.height, fp.crs) == (src.width, src.height, src.crs)
        assert fp == preflight.footprint([older], "pre-event image", aoi=area, aoi_crs="EPSG:32637")
    assert fp != preflight.footprint([newer], "pre-event image", aoi=aoi, aoi_crs="EPSG:32637")


# -- overlap of the two dates ------------------------------------------------------------------------------


def test_pre_and_post_far_apart_do_not_overlap(tmp_path):
    pre = preflight.footprint(write_stack(tmp_path / "pre.tif"), "pre-event image")
    post = preflight.footprint(write_stack(tmp_path / "post.tif", left=500000.0), "post-event image")
    with pytest.raises(InputError) as error:
        preflight.check_overlap(pre, post)
    text = one_sentence(error)
    assert "The pre-event image (x 300000..301280, y 4199040..4200000 m in EPSG:32637)" in text
    assert "the post-event image (x 500000..501280, y 4199040..4200000 m in EPSG:32637) do not overlap" in text
    assert "choose images of the same tile/area, or check the area of interest" in text


def test_post_in_another_crs_is_compared_in_the_pre_crs(tmp_path):
    pre = preflight.footprint(write_stack(tmp_path / "pre.tif"), "pre-event image")
    west, south, east, north = rasterio.warp.transform_bounds(UTM, "EPSG:32636", *pre.bounds)
    post = preflight.footprint(write_stack(tmp_path / "post.tif", crs=CRS.from_epsg(32636), left=west, top=north,
                                           width=80, height=60), "post-event image")
    preflight.check_overlap(pre, post)  # same ground, other UTM zone


def test_a_sliver_of_overlap_is_refused(tmp_path):
    pre = preflight.footprint(write_stack(tmp_path / "pre.tif"), "pre-event image")
    post = preflight.footprint(write_stack(tmp_path / "post.tif", left=300000.0 + 60 * 20), "post-event image")
    with pytest.raises(InputError) as error:
        preflight.check_overlap(pre, post)
    text = one_sentence(error)
    assert "overlap on only 6.2 % of the pre-event image (4 x 48 pixels)" in text
    assert "choose images of the same tile/area" in text
    ok = preflight.footprint(write_stack(tmp_path / "ok.tif", left=300000.0 + 40 * 20), "post-event image")
    preflight.check_overlap(pre, ok)


# -- stacks and SCL ----------------------------------------------------------------------------------------


def test_stack_without_band_descriptions_needs_band_numbers(tmp_path):
    path = write_stack(tmp_path / "bare.tif", descriptions=None)
    with pytest.raises(InputError) as error:
        preflight.check_stack(path, "post-event image", needed_bands=BANDS)
    text = one_sentence(error)
    assert "has no band descriptions, so bands B02, B03, B04, B8A, B11 cannot be found" in text
    assert "BAND_BLUE, BAND_GREEN, BAND_RED, BAND_NIR, BAND_SWIR1 parameters" in text
    numbers = {"B02": 1, "B03": 2, "B04": 3, "B8A": 4, "B11": 5}
    preflight.check_stack(path, "post-event image", needed_bands=BANDS, band_numbers=numbers)
    with pytest.raises(InputError) as error:
        preflight.check_stack(path, "post-event image", needed_bands=BANDS, band_numbers={**numbers, "B11": 7})
    text = one_sentence(error)
    assert "has 5 bands, but band number 7 for B11 (BAND_SWIR1 parameter) is beyond them" in text
    assert "set it between 1 and 5" in text


def test_stack_missing_a_described_band(tmp_path):
    path = write_stack(tmp_path / "four.tif", count=4, descriptions=("B2", "b03", "B04", "B8A"))
    preflight.check_stack(path, "pre-event image", needed_bands=("B02", "B04", "B8A"))  # "B2", "b03" match
    with pytest.raises(InputError) as error:
        preflight.check_stack(path, "pre-event image", needed_bands=BANDS)
    text = one_sentence(error)
    assert "has no band described B11 (its bands are B2, b03, B04, B8A)" in text and "BAND_SWIR1" in text


def test_geographic_stack_is_refused(tmp_path):
    path = write_stack(tmp_path / "wgs84.tif", crs=CRS.from_epsg(4326), left=36.5, top=37.9, res=0.0002)
    with pytest.raises(InputError) as error:
        preflight.check_stack(path, "post-event image", needed_bands=BANDS)
    text = one_sentence(error)
    assert "is in EPSG:4326 (degrees); pixel areas and slopes need metres" in text
    assert "reproject it to its UTM zone (EPSG:32637 here; Raster > Projections > Warp) and run again" in text


def test_stack_without_crs_is_refused(tmp_path):
    path = tmp_path / "nocrs.tif"
    with rasterio.open(path, "w", driver="GTiff", width=8, height=8, count=1, dtype="float32") as dst:
        dst.write(np.ones((1, 8, 8), dtype="float32"))
    with pytest.raises(InputError) as error:
        preflight.check_stack(path, "pre-event image", needed_bands=("B04",), band_numbers={"B04": 1})
    assert "has no coordinate reference system: assign its UTM zone" in one_sentence(error)
    with pytest.raises(InputError):
        preflight.footprint(path, "pre-event image")


def test_scl_checks(tmp_path):
    stack = preflight.footprint(write_stack(tmp_path / "s.tif"), "post-event image")
    good = write_scl(tmp_path / "scl.tif", np.full((48, 64), 4))
    preflight.check_scl(good, "post-event SCL", stack)

    two = write_scl(tmp_path / "two.tif", np.full((2, 48, 64), 4))
    with pytest.raises(InputError) as error:
        preflight.check_scl(two, "post-event SCL", stack)
    assert "has 2 bands, but a scene classification has one" in one_sentence(error)

    floats = write_stack(tmp_path / "float.tif", count=1, descriptions=None)
    with pytest.raises(InputError) as error:
        preflight.check_scl(floats, "post-event SCL", stack)
    assert "holds float32 values" in one_sentence(error)

    wrong = write_scl(tmp_path / "b04.tif", np.full((48, 64), 1234), dtype="uint16")
    with pytest.raises(InputError) as error:
        preflight.check_scl(wrong, "post-event SCL", stack)
    assert "holds values 1234..1234, but scene classification classes are 0..11" in one_sentence(error)

    away = write_scl(tmp_path / "away.tif", np.full((48, 64), 4), left=600000.0)
    with pytest.raises(InputError) as error:
        preflight.check_scl(away, "post-event SCL", stack)
    text = one_sentence(error)
    assert "does not overlap the post-event image" in text and "give the SCL of the same date and tile" in text


# -- valid pixels ------------------------------------------------------------------------------------------


def test_post_image_all_nan_has_no_valid_pixel(tmp_path):
    path = write_stack(tmp_path / "nan.tif", values=np.full((5, 48, 64), np.nan))
    assert preflight.count_valid_pixels(path, "post-event image") == (0, 64 * 48)
    with pytest.raises(InputError) as error:
        preflight.require_valid_pixels(path, "post-event image")
    text = one_sentence(error)
    assert "The post-event image" in text and "has no pixel with data" in text
    assert "choose an image that covers the area of interest" in text


def test_nodata_value_counts_as_no_data(tmp_path):
    values = np.full((5, 48, 64), 65535, dtype="uint16")
    values[:, :10, :10] = 1200
    path = write_stack(tmp_path / "dn.tif", values=values, dtype="uint16", nodata=65535)
    assert preflight.count_valid_pixels(path, "pre-event image") == (100, 64 * 48)


def test_post_image_all_cloud_in_scl(tmp_path):
    path = write_stack(tmp_path / "post.tif")
    clouds = np.full((48, 64), 9, dtype=np.uint8)
    clouds[:, :20] = 11
    clouds[:10] = 3
    scl = write_scl(tmp_path / "scl.tif", clouds)
    assert preflight.count_valid_pixels(path, "post-event image", scl_path=scl) == (0, 64 * 48)
    assert preflight.count_valid_pixels(path, "post-event image", scl_path=scl, use_scl=False) == (64 * 48, 64 * 48)
    with pytest.raises(InputError) as error:
        preflight.require_valid_pixels(path, "post-event image", scl_path=scl)
    text = one_sentence(error)
    assert "has no valid pixel" in text and "cloud, cloud shadow, cirrus, snow" in text
    assert "choose a clearer image of that date or a larger area of interest" in text
    preflight.require_valid_pixels(path, "post-event image", scl_path=scl, use_scl=False)


def test_scl_of_no_data_under_the_image_is_named(tmp_path):
    path = write_stack(tmp_path / "post.tif")
    scl = write_scl(tmp_path / "scl.tif", np.zeros((48, 64)))
    with pytest.raises(InputError) as error:
        preflight.require_valid_pixels(path, "post-event image", scl_path=scl)
    assert "is no data (class 0) where the image has data" in one_sentence(error)


def test_scl_on_another_grid_is_resampled(tmp_path):
    path = write_stack(tmp_path / "post.tif")
    classes = np.full((48, 64), 9, dtype=np.uint8)
    classes[:, 32:] = 4  # clear on the right half; this SCL is shifted 10 pixels right
    scl = write_scl(tmp_path / "scl.tif", classes, left=300000.0 + 10 * 20)
    valid, total = preflight.count_valid_pixels(path, "post-event image", scl_path=scl)
    assert (valid, total) == (48 * (64 - 42), 64 * 48)


def test_sample_that_misses_the_clear_part_looks_at_everything(tmp_path, monkeypatch):
    values = np.full((1, 1024, 1024), np.nan, dtype="float32")
    values[:, :40, :50] = 0.2  # only the top strip, which the sample does not read
    path = write_stack(tmp_path / "big.tif", width=1024, height=1024, count=1, descriptions=("B04",), values=values)
    monkeypatch.setattr(preflight, "SAMPLE_PIXELS", 100_000)
    with rasterio.open(path) as src:
        windows, complete = preflight._sample_windows(src, preflight.SAMPLE_PIXELS)
    assert not complete and all(w.row_off >= 512 for w in windows)
    assert preflight.count_valid_pixels(path, "pre-event image") == (2000, 1024 * 1024)
    preflight.require_valid_pixels(path, "pre-event image")


def test_sample_of_a_large_stack_is_decimated(tmp_path):
    path = write_stack(tmp_path / "big.tif", width=1200, height=1000, count=2, descriptions=("B04", "B8A"),
                       values=np.full((2, 1000, 1200), 0.1))
    valid, total = preflight.count_valid_pixels(path, "pre-event image", max_pixels=10_000)
    assert (valid, total) == (1_200_000, 1_200_000)


# -- output folder and space -------------------------------------------------------------------------------


def test_estimate_grows_with_size_and_methods():
    small = preflight.estimate_run_bytes(500, 500)
    assert preflight.estimate_run_bytes(1000, 1000) > 3.5 * small - 4 * preflight.SMALL_FILES_BYTES
    assert preflight.estimate_run_bytes(1000, 1000) > small
    assert preflight.estimate_run_bytes(500, 500, methods=7, cluster_methods=6) > small
    assert preflight.estimate_run_bytes(500, 500, probability_methods=4) > small
    assert preflight.estimate_run_bytes(500, 500, bands=6) > small
    assert preflight.estimate_run_bytes(500, 500, with_dem=False, with_reference=False) < small
    # a full tile, five bands, the reference study's five methods: a few GB at most
    full = preflight.estimate_run_bytes(5490, 5490)
    assert 1.5e9 < full < 3e9


def test_estimate_covers_what_the_stacks_really_take(prepared):
    written = os.path.getsize(prepared.pre.stack_path) + os.path.getsize(prepared.post.stack_path)
    assert preflight.estimate_run_bytes(prepared.pre.width, prepared.pre.height, bands=6) > 1.5 * written


def test_output_folder_that_is_a_file(tmp_path):
    target = tmp_path / "results.txt"
    target.write_text("x")
    with pytest.raises(InputError) as error:
        preflight.check_output_folder(target)
    assert "is a file, not a folder: choose a folder" in one_sentence(error)


def test_output_folder_under_a_file_cannot_be_created(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(InputError) as error:
        preflight.check_output_folder(blocker / "a" / "b")
    text = one_sentence(error)
    assert "cannot be created because" in text and "is a file, not a folder: choose a folder" in text


def test_output_folder_not_writable(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(preflight.tempfile, "mkstemp", refuse)
    with pytest.raises(InputError) as error:
        preflight.check_output_folder(tmp_path)
    assert "is not writable (permission denied): choose a folder you can write to" in one_sentence(error)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="root writes into read-only folders; the mocked test above covers the message")
def test_output_folder_read_only_by_chmod(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(InputError, match="is not writable"):
            preflight.check_output_folder(folder)
        with pytest.raises(InputError, match="cannot be created"):
            preflight.check_output_folder(folder / "sub")
    finally:
        folder.chmod(0o755)


def test_insufficient_space(tmp_path, monkeypatch):
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(preflight.shutil, "disk_usage",
                        lambda path: usage._replace(free=int(1.25 * 2 ** 30)))
    needed = preflight.estimate_run_bytes(5490, 5490)
    with pytest.raises(InputError) as error:
        preflight.check_output_folder(tmp_path / "out", needed_bytes=needed)
    text = one_sentence(error)
    assert f"has 1.2 GB free but the run needs about {needed / 2 ** 30:.1f} GB" in text
    assert "free some space on that disk, or choose a folder on another one" in text
    preflight.check_output_folder(tmp_path / "out", needed_bytes=2 ** 20)
    monkeypatch.setattr(preflight.shutil, "disk_usage", lambda path: usage._replace(free=300 * 2 ** 20))
    with pytest.raises(InputError, match=r"has 300\.0 MB free but the run needs about 400\.0 MB"):
        preflight.check_output_folder(tmp_path / "out", needed_bytes=400 * 2 ** 20)


def test_input_error_is_a_value_error():
    assert issubclass(InputError, ValueError)
