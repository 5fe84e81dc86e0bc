"""'Map landslides (pre/post)' on products of several dates: per-pixel composites instead of a mosaic, the
clear-observation counts, and a report that says which images were used and why."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from qgis.core import QgsProcessingContext, QgsProcessingException, QgsProcessingFeedback

from landslide_plugin.core.output_folder import MANIFEST_NAME

ALG = "landslide:map_landslides"
QUICK = {"THRESHOLD_BASELINE": True, "KMEANS_CLUSTERS": "", "GMM_CLUSTERS": "3", "PRIMARY": "gmm3"}
SIZE = 96
#: rows, cols (post grid) under an opaque cloud on the middle post date: over a third of the area.
CLOUD = (20, 62, 16, 76)
PRE_DATES = ("2022-08-10", "2022-08-20")
POST_DATES = ("2023-08-20", "2023-08-25", "2023-08-30")
CLOUDY = "2023-08-25"
SUMMARY = ("Event 2023-08-18; minimum clear share of the area 70 %.\n"
           "Post-event: 2023-08-25, 58 % clear over the area; earliest after the event.")


class Feedback(QgsProcessingFeedback):
    def __init__(self):
        super().__init__()
        self.lines = []

    def pushInfo(self, info):  # noqa: N802 (QGIS API)
        self.lines.append(info)
        super().pushInfo(info)


@pytest.fixture(scope="module")
def period(tmp_path_factory):
    """Two pre dates and three post dates of one simulated scene (scars after the event); the middle post
    date has an opaque cloud over CLOUD; truth and DEM on the pre grid."""
    from rasterio.crs import CRS
    from rasterio.transform import from_origin

    from landslide_plugin.core.rasters import geotiff_profile
    from landslide_plugin.examples.example_data import simulate_scene, write_date_product

    folder = tmp_path_factory.mktemp("period")
    scene = simulate_scene(SIZE, 0, pre_date=PRE_DATES[-1], post_date=POST_DATES[1], cloud_fraction=(0.0, 0.0))
    pre = [str(write_date_product(scene, folder / day, date=day, after_event=False, noise_seed=k)[0])
           for k, day in enumerate(PRE_DATES)]
    post = [str(write_date_product(scene, folder / day, date=day, after_event=True, noise_seed=10 + k,
                                   cloud_boxes=[CLOUD] if day == CLOUDY else [])[0])
            for k, day in enumerate(POST_DATES)]
    like = {"crs": CRS.from_epsg(32637), "transform": from_origin(300000.0, 4200000.0, 20.0, 20.0), "width": SIZE,
            "height": SIZE}
    truth, dem = folder / "truth.tif", folder / "dem.tif"
    with rasterio.open(truth, "w", **geotiff_profile(like, 1, "uint8", 255)) as dst:
        dst.write(scene.truth, 1)
    with rasterio.open(dem, "w", **geotiff_profile(like, 1)) as dst:
        dst.write(scene.dem.astype("float32"), 1)
    return {"pre": pre, "post": post, "cloudy": post[POST_DATES.index(CLOUDY)], "truth": str(truth),
            "dem": str(dem)}


def run(parameters, feedback=None):
    import processing

    return processing.run(ALG, parameters, context=QgsProcessingContext(), feedback=feedback or QgsProcessingFeedback())


def params(period, folder, pre, post, **extra):
    return {"PRE": pre, "POST": post, "DEM": period["dem"], "REFERENCE_RASTER": period["truth"],
            "OUTPUT_FOLDER": str(folder), **QUICK, **extra}


def product_name(path) -> str:
    return Path(path).name.removesuffix(".zip").removesuffix(".SAFE")


def nodata(path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read(1) == 255


@pytest.fixture(scope="module")
def runs(provider, period, tmp_path_factory):
    """The three post dates composited (median), and the cloudy date alone, into separate folders."""
    base = tmp_path_factory.mktemp("runs")
    feedback = Feedback()
    composite = run(params(period, base / "composite", period["pre"][-1:], period["post"], PAIR_SUMMARY=SUMMARY),
                    feedback)
    single = run(params(period, base / "single", period["pre"][-1:], [period["cloudy"]]))
    return {"composite": composite, "single": single, "log": feedback.lines, "folder": base / "composite"}


def test_the_composite_removes_the_cloud_of_one_date(runs):
    composite, single = Path(runs["composite"]["OUTPUT_FOLDER"]), Path(runs["single"]["OUTPUT_FOLDER"])
    r0, r1, c0, c1 = CLOUD
    inside = (slice(r0 + 4, r1 - 4), slice(c0 + 4, c1 - 4))  # away from the cloud's edge and the post shift
    for name in ("mask_threshold.tif", "mask_gmm3.tif"):
        one, many = nodata(single / name), nodata(composite / name)
        assert one[inside].all()  # the cloudy date alone maps nothing under its cloud
        assert many[inside].mean() < 0.05
        assert many.sum() < one.sum() - 0.8 * one[inside].size
    # The composite's map finds the scars under the cloud that the single date could not see.
    with rasterio.open(composite / "mask_threshold.tif") as src:
        assert (src.read(1)[inside] == 1).any()


def test_the_clear_observation_count_is_written_and_claimed(runs):
    folder = runs["folder"]
    count_path = folder / "post_clear_count.tif"
    with rasterio.open(count_path) as src:
        count = src.read(1)
        assert src.descriptions == ("CLEAR_COUNT",) and src.tags()["COMPOSITE_DATES"] == ",".join(POST_DATES)
    r0, r1, c0, c1 = CLOUD
    assert (count[r0:r1, c0:c1] <= 2).all() and np.median(count) == 3
    assert not (folder / "pre_clear_count.tif").exists()  # one pre date: prepared as before, no count
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    assert "post_clear_count.tif" in manifest["files"]
    single = Path(runs["single"]["OUTPUT_FOLDER"])
    assert not (single / "post_clear_count.tif").exists()


def test_the_report_says_which_images_were_used_and_why(runs, period):
    folder = runs["folder"]
    report = (folder / "report.html").read_text(encoding="utf-8")
    parameters = json.loads((folder / "metrics.json").read_text())["parameters"]
    post_text = parameters["post-event images"]
    assert post_text.startswith("median composite of 3 dates")
    for day, path in zip(POST_DATES, period["post"]):
        assert f"{day} ({product_name(path)})" in post_text
    assert "clear observations per pixel" in post_text and "observed clear at least once" in post_text
    assert parameters["pre-event images"] == f"one date, {PRE_DATES[-1]}: {product_name(period['pre'][-1])}"
    assert parameters["why these images"] == " ".join(SUMMARY.split())
    for text in (post_text, parameters["pre-event images"], "Event 2023-08-18; minimum clear share"):
        assert text.replace("'", "&#x27;") in report
    single = json.loads((Path(runs["single"]["OUTPUT_FOLDER"]) / "metrics.json").read_text())["parameters"]
    assert single["post-event images"] == f"one date, {CLOUDY}: {product_name(period['cloudy'])}"
    assert "why these images" not in single


def test_the_log_has_one_line_per_composite_and_the_pair_summary(runs):
    lines = runs["log"]
    composite = [t for t in lines if t.startswith("post-event: median composite of 3 dates")]
    assert len(composite) == 1
    assert ", ".join(POST_DATES) in composite[0] and "tiles per date 1, 1, 1" in composite[0]
    assert "on average" in composite[0] and "%" in composite[0]
    assert not any(t.startswith("pre-event: median composite") for t in lines)
    assert "why these images: Event 2023-08-18; minimum clear share of the area 70 %." in lines


def test_greenest_pre_composite_and_a_second_run_into_the_same_folder(provider, period, tmp_path):
    folder = tmp_path / "out"
    first = params(period, folder, period["pre"][-1:], period["post"])
    run(first)
    assert (folder / "post_clear_count.tif").exists()
    # Another run into the folder: a greenest-pixel composite of the pre dates, one clear post date.
    second = params(period, folder, period["pre"], period["post"][:1], PRE_COMPOSITE=1, POST_COMPOSITE=1)
    result = run(second)
    names = {p.name for p in folder.iterdir()}
    assert "pre_clear_count.tif" in names and "post_clear_count.tif" not in names  # the stale count is removed
    parameters = json.loads((folder / "metrics.json").read_text())["parameters"]
    assert parameters["pre-event images"].startswith("greenest-pixel composite of 2 dates: "
                                                     f"{PRE_DATES[0]} ({product_name(period['pre'][0])})")
    assert parameters["post-event images"].startswith(f"one date, {POST_DATES[0]}")
    with rasterio.open(folder / "pre_stack.tif") as src:
        assert src.tags()["COMPOSITE_METHOD"] == "greenest"
    assert result["F1"] > 0
    # And the first run again, into the same folder: the folder follows it.
    again = run(first)
    names = {p.name for p in folder.iterdir()}
    assert "post_clear_count.tif" in names and "pre_clear_count.tif" not in names
    assert again["F1"] > 0 and not [p for p in names if p.startswith(".") and p != MANIFEST_NAME]


def test_a_users_own_count_file_stops_a_composite_run_before_any_work(provider, period, tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "post_clear_count.tif").write_bytes(b"mine")
    with pytest.raises(QgsProcessingException, match="post_clear_count.tif"):
        run(params(period, folder, period["pre"][-1:], period["post"]))
    assert sorted(p.name for p in folder.iterdir()) == ["post_clear_count.tif"]
    assert (folder / "post_clear_count.tif").read_bytes() == b"mine"
    # One post date writes no count, so the user's file is no obstacle and stays as it is.
    run(params(period, folder, period["pre"][-1:], period["post"][:1]))
    assert (folder / "post_clear_count.tif").read_bytes() == b"mine"
