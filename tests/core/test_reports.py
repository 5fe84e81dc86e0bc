"""Reports: CSV/JSON equal to the evaluation, figures are real pictures, the HTML is self-contained."""
from __future__ import annotations

import csv
import dataclasses
import html
import json
import math
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.crs import CRS
from rasterio.transform import from_origin

from landslide_plugin.core import evaluation, rasters, reports

pytest.importorskip("matplotlib")

UTM = CRS.from_epsg(32632)
TRANSFORM = from_origin(500000.0, 5100000.0, 20, 20)
SIZE = (96, 128)


def write(path, array, dtype="uint8", nodata=255, descriptions=None):
    array = np.asarray(array)
    if array.ndim == 2:
        array = array[None]
    grid = {"crs": UTM, "transform": TRANSFORM, "width": array.shape[2], "height": array.shape[1]}
    with rasterio.open(path, "w", **rasters.geotiff_profile(grid, array.shape[0], dtype, nodata)) as dst:
        dst.write(array.astype(dtype))
        for i, d in enumerate(descriptions or []):
            dst.set_band_description(i + 1, d)
    return str(path)


@pytest.fixture()
def scene(tmp_path):
    """A small scene: a true-colour stack, a reference with three scars and four maps of it."""
    rng = np.random.default_rng(3)
    rows, cols = np.indices(SIZE)
    reference = np.zeros(SIZE, np.uint8)
    for r, c, radius in ((20, 30, 6), (60, 90, 8), (75, 25, 5)):
        reference[(rows - r) ** 2 + (cols - c) ** 2 <= radius**2] = 1
    maps = {
        "kmeans_2": np.where(rng.random(SIZE) < 0.4, 1, reference),        # everything and more
        "kmeans_3": np.where(rng.random(SIZE) < 0.05, 1, reference * (cols < 70)),
        "gmm_2": (np.roll(reference, 4, axis=1) | (rng.random(SIZE) < 0.02)).astype(np.uint8),
        "gmm_3": reference * (rows < 40),
    }
    maps["gmm_3"][:, :8] = 255  # a no-data margin
    paths = {name: write(tmp_path / f"{name}.tif", m) for name, m in maps.items()}
    green = 0.05 + 0.1 * rng.random(SIZE)
    stack = np.stack([green * 0.8, green, green * 0.7 + 0.2 * reference, np.full(SIZE, 0.3)]).astype("float32")
    stack[:, :3, :3] = np.nan
    stack_path = write(tmp_path / "post_stack.tif", stack, "float32", np.nan, ["B02", "B03", "B04", "B8A"])
    ref_path = write(tmp_path / "inventory.tif", reference)
    result = evaluation.evaluate(ref_path, list(paths.values()), names=list(paths))
    return {"dir": tmp_path, "reference": ref_path, "maps": paths, "stack": stack_path, "evaluation": result}


def read_png(path):
    import matplotlib.image as mpimg

    with open(path, "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"
    return mpimg.imread(path)


def test_csv_holds_the_evaluation_numbers(scene, tmp_path):
    path = reports.write_metrics_csv(scene["evaluation"], tmp_path / "out" / "metrics.csv")
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    expected = scene["evaluation"].rows()
    assert [r["name"] for r in rows] == ["kmeans_2", "kmeans_3", "gmm_2", "gmm_3"]
    for row, want in zip(rows, expected):
        for key in ("tp", "fp", "fn", "tn", "excluded_prediction_nodata", "reference_hit", "predicted_false"):
            assert int(row[key]) == want[key], key
        for key in ("precision", "recall", "f1", "iou", "mcc", "kappa", "overall_accuracy"):
            assert float(row[key]) == want[key], key  # written at full precision
        assert row["reference"] == f"raster {scene['reference']}"
    assert int(rows[3]["excluded_prediction_nodata"]) == 8 * SIZE[0]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["metrics.csv"]  # no temp file left


def test_json_holds_the_evaluation_and_parameters(scene, tmp_path):
    path = reports.write_metrics_json(scene["evaluation"], tmp_path / "metrics.json", parameters={"k": 3})
    with open(path) as handle:
        data = json.load(handle)
    assert data["reference"]["kind"] == "raster"
    assert data["parameters"] == {"k": 3}
    assert data["versions"]["landslide_plugin"] == reports.plugin_version() != "unknown"
    for item, pred in zip(data["predictions"], scene["evaluation"].predictions):
        assert item["name"] == pred.name
        assert item["f1"] == pred.scores.f1 and item["mcc"] == pred.scores.mcc
        assert item["confusion_matrix"]["counts"] == [[pred.confusion.tn, pred.confusion.fp],
                                                      [pred.confusion.fn, pred.confusion.tp]]


def test_json_writes_undefined_scores_as_null(tmp_path):
    ref = write(tmp_path / "ref.tif", np.ones((8, 8)))
    empty = write(tmp_path / "empty.tif", np.zeros((8, 8)))
    result = evaluation.evaluate(ref, [empty], zero_division=float("nan"))
    assert math.isnan(result.predictions[0].scores.precision)
    with open(reports.write_metrics_json(result, tmp_path / "m.json")) as handle:
        data = json.load(handle)
    assert data["predictions"][0]["precision"] is None and data["predictions"][0]["recall"] == 0.0
    default = evaluation.evaluate(ref, [empty])  # undefined is None by default, also null
    assert default.predictions[0].scores.precision is None
    with open(reports.write_metrics_json(default, tmp_path / "d.json")) as handle:
        data = json.load(handle)
    assert data["predictions"][0]["precision"] is None and data["predictions"][0]["mcc"] is None
    assert data["warnings"] == default.warnings and "precision and MCC are undefined" in data["warnings"][-1]


@pytest.fixture()
def empty_reference(tmp_path):
    """A reference raster of zeros scored against a map with landslides and an empty map."""
    ref = write(tmp_path / "zeros.tif", np.zeros((16, 16)))
    some = np.zeros((16, 16))
    some[4:8, 4:8] = 1
    maps = [write(tmp_path / "some.tif", some), write(tmp_path / "none.tif", np.zeros((16, 16)))]
    result = evaluation.evaluate(ref, maps, names=["K-means 3", "empty map"])
    assert len(result.warnings) == 1 and "no landslide pixel at all" in result.warnings[0]
    return result


def test_undefined_scores_in_csv_json_and_figures(empty_reference, tmp_path):
    result = empty_reference
    with open(reports.write_metrics_csv(result, tmp_path / "m.csv"), newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [rows[0][k] for k in ("recall", "f1", "iou", "mcc", "kappa")] == [""] * 5  # empty cells, not 0
    assert float(rows[0]["precision"]) == 0.0 and rows[1]["precision"] == ""
    assert float(rows[1]["overall_accuracy"]) == 1.0
    with open(reports.write_metrics_json(result, tmp_path / "m.json")) as handle:
        data = json.load(handle)
    assert data["warnings"] == result.warnings
    assert data["predictions"][0]["recall"] is None and data["predictions"][0]["precision"] == 0.0
    assert data["predictions"][1]["precision"] is None and data["predictions"][1]["warnings"] == []
    assert "never 0" in data["conventions"]
    image = read_png(reports.confusion_figure(result, tmp_path / "c.png", dpi=40))
    assert image.shape[1] == round(2 * 3.6 * 40)
    reports.overlay_figure(None, dict(zip(["K-means 3", "empty map"], [p.path for p in result.predictions])),
                           tmp_path / "o.png", reference=result.reference_description.split(" ", 1)[1], dpi=30)


def test_html_report_shows_warnings_first_and_undefined_scores(empty_reference, tmp_path):
    result = empty_reference
    figures = {"confusion": reports.confusion_figure(result, tmp_path / "c.png", dpi=40)}
    text = Path(reports.write_html_report(result, tmp_path / "r.html", figures=figures)).read_text(encoding="utf-8")
    warning = result.warnings[0]
    assert f"<div class='warning' role='alert'><b>Warning:</b> {html.escape(warning)}</div>" in text
    assert text.index(html.escape(warning)) < text.index("<h2>Reference</h2>")  # at the top
    table = text[text.index("<h2>Scores"):text.index("<h3>Objects")]
    first = table.split("<tr>")[2]  # header row, then K-means 3
    assert first.count(">undefined</td>") == 5 and "<td>0.0000</td>" in first  # precision 0, the rest undefined
    assert table.split("<tr>")[3].count(">undefined</td>") == 6  # the empty map: precision too
    assert "it is not 0" in text
    assert "Landslides cover 0.00 %" not in text  # the rare-class note makes no sense without landslides


def test_html_report_without_warnings_has_no_warning_box(scene, tmp_path):
    text = Path(reports.write_html_report(scene["evaluation"], tmp_path / "r.html")).read_text(encoding="utf-8")
    assert "class='warning'" not in text and ">undefined<" not in text


def test_confusion_figure_is_a_picture_of_the_expected_size(scene, tmp_path):
    path = reports.confusion_figure(scene["evaluation"], tmp_path / "confusion.png", dpi=80)
    image = read_png(path)
    assert image.shape[:2] == (round(2 * (3.6 + 0.5) * 80), round(3 * 3.6 * 80))
    assert np.unique(image.reshape(-1, image.shape[2]), axis=0).shape[0] > 20


def colour_share(image, colour):
    r, g, b = image[:, :, 0], image[:, :, 1], image[:, :, 2]
    hit = {"red": (r > 0.7) & (g < 0.4) & (b < 0.4), "green": (g > 0.6) & (r < 0.4) & (b < 0.4),
           "yellow": (r > 0.7) & (g > 0.6) & (b < 0.3)}[colour]
    return float(np.mean(hit))


def test_overlay_figure_six_panels_on_the_true_colour_stack(scene, tmp_path):
    path = reports.overlay_figure(scene["stack"], scene["maps"], tmp_path / "overlay.png",
                                  reference=scene["reference"], dpi=60)
    image = read_png(path)
    aspect = SIZE[0] / SIZE[1]
    # two large panels a row (image, reference, four maps: three rows), the legend above them
    assert image.shape[1] == round(2 * 5.5 * 60)
    assert 3 * 5.5 * aspect * 60 < image.shape[0] < (3 * (5.5 * aspect + 0.4) + 1.0) * 60
    # false alarms (red), agreement (green) and reference (yellow) are all drawn
    assert colour_share(image, "red") > 0.005
    assert colour_share(image, "green") > 0.001
    assert colour_share(image, "yellow") > 0.0005


def test_overlay_decimates_big_rasters_and_keeps_single_landslide_pixels(tmp_path):
    big = np.zeros((1200, 1000), np.uint8)
    big[601, 333] = 1  # one landslide pixel: max-reduction must keep it
    mask = write(tmp_path / "big.tif", big)
    path = reports.overlay_figure(None, {"one pixel": mask}, tmp_path / "big.png", max_pixels=100 * 100, dpi=50)
    image = read_png(path)
    assert image.shape[1] == round(2 * 5.5 * 50)
    assert colour_share(image, "red") > 0


def test_overlay_with_arrays_and_inventory_polygons(scene, tmp_path):
    rgb = np.random.default_rng(0).random((*SIZE, 3))
    mask = np.zeros(SIZE, np.uint8)
    mask[10:30, 20:40] = 1
    with pytest.raises(ValueError, match="shape"):
        reports.overlay_figure(rgb, {"wrong": np.zeros((5, 5), np.uint8)}, tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()
    reports.overlay_figure(rgb, {"array": mask}, tmp_path / "arrays.png", dpi=40)
    assert read_png(tmp_path / "arrays.png").shape[1] == round(2 * 5.5 * 40)
    x0, y0 = TRANSFORM.c, TRANSFORM.f
    polygon = {"type": "Polygon", "coordinates": [[(x0 + 400, y0 - 200), (x0 + 800, y0 - 200),
                                                   (x0 + 800, y0 - 600), (x0 + 400, y0 - 600),
                                                   (x0 + 400, y0 - 200)]]}
    path = reports.overlay_figure(scene["stack"], {"map": scene["maps"]["gmm_3"]}, tmp_path / "poly.png",
                                  reference=[polygon], reference_crs="EPSG:32632", dpi=40)
    image = read_png(path)
    assert image.shape[1] == round(2 * 5.5 * 40)
    assert colour_share(image, "yellow") > 0.001


def test_html_report_is_self_contained_with_metrics_and_warnings(scene, tmp_path):
    result = scene["evaluation"]
    figures = {
        "confusion matrices": reports.confusion_figure(result, tmp_path / "c.png", dpi=40),
        "maps": reports.overlay_figure(scene["stack"], scene["maps"], tmp_path / "o.png",
                                       reference=scene["reference"], dpi=40),
    }
    path = reports.write_html_report(result, tmp_path / "report.html", figures=figures,
                                     parameters={"all_touched": False, "note": "<b>escaped</b>"}, title="Test run")
    assert path == str(tmp_path / "report.html")
    text = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert text.count("data:image/png;base64,") == 2
    assert "src=\"c.png\"" not in text and "o.png" not in text  # embedded, not linked
    for pred in result.predictions:
        assert f"{pred.scores.f1:.4f}" in text and f"{pred.scores.precision:.4f}" in text
        assert f"{pred.confusion.fp:,}" in text
    assert f"raster {scene['reference']}" in text
    assert "&lt;b&gt;escaped&lt;/b&gt;" in text
    assert "baseline, not ground truth" not in text
    for name in ("numpy", "rasterio", "GDAL", "scikit-learn", "OpenCV", "matplotlib"):
        assert f">{name}" in text
    assert reports.plugin_version() in text

    baseline = evaluation.evaluate(scene["reference"], [scene["maps"]["gmm_2"]], reference_is_baseline=True)
    reports.write_html_report(baseline, tmp_path / "b.html")
    text = (tmp_path / "b.html").read_text(encoding="utf-8")
    assert "The NDVI-threshold mask is a baseline, not ground truth" in text


def test_report_on_the_example_scene(example_pair, tmp_path):
    """The NDVI-drop baseline of the built-in example scored against the scene's truth, with a full report."""
    products = pytest.importorskip("landslide_plugin.core.products")
    from landslide_plugin.core import indices

    stacks = {}
    for when, product in (("pre", example_pair.pre), ("post", example_pair.post)):
        stacks[when] = tmp_path / f"{when}.tif"
        products.prepare_l2a([str(product)], str(stacks[when]), str(tmp_path / f"{when}_scl.tif"))
    ndvi = {}
    for when, path in stacks.items():
        bands = rasters.find_bands(path, ["B04", "B8A"])
        with rasterio.open(path) as src:
            ndvi[when] = indices.ndvi(src.read(bands["B04"]), src.read(bands["B8A"]))
            profile = src.profile
    drop = ndvi["pre"] - ndvi["post"]
    baseline = np.where(np.isnan(drop), 255, drop > 0.2).astype(np.uint8)
    with rasterio.open(tmp_path / "ndvi_drop.tif", "w", **rasters.geotiff_profile(profile, 1, "uint8", 255)) as dst:
        dst.write(baseline, 1)

    result = evaluation.evaluate(example_pair.truth, [tmp_path / "ndvi_drop.tif"], names=["NDVI drop > 0.2"])
    p = result.predictions[0]
    with rasterio.open(example_pair.truth) as src:
        truth = src.read(1)
    compared = baseline != 255
    assert p.confusion.tp + p.confusion.fn == int(np.count_nonzero((truth == 1) & compared))
    assert p.excluded_prediction_nodata == int(np.count_nonzero(~compared))
    assert p.scores.recall > 0
    assert p.scores.overall_accuracy > p.scores.f1  # why accuracy alone misleads on a rare class

    figures = {"confusion": reports.confusion_figure(result, tmp_path / "confusion.png"),
               "maps": reports.overlay_figure(stacks["post"], {"NDVI drop > 0.2": tmp_path / "ndvi_drop.tif"},
                                              tmp_path / "maps.png", reference=example_pair.truth)}
    reports.write_html_report(result, tmp_path / "report.html", figures=figures, parameters={"threshold": 0.2},
                              title="Example scene")
    text = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert f"{p.scores.f1:.4f}" in text and text.count("data:image/png;base64,") == 2
    image = read_png(figures["maps"])
    assert image.shape[1] == round(2 * 5.5 * 100)
    assert colour_share(image, "green") > 0 and colour_share(image, "yellow") > 0


# -- what a person reads first -------------------------------------------------------------------------------------
def test_the_short_answer_names_the_best_map_by_f1_and_mcc_and_judges_the_primary(scene):
    result = scene["evaluation"]
    f1 = {p.name: p.scores.f1 for p in result.predictions}
    mcc = {p.name: p.scores.mcc for p in result.predictions}
    best_f1, best_mcc = max(f1, key=f1.get), max(mcc, key=mcc.get)
    answer = reports.verdict(result, primary="kmeans_2")
    assert answer.best_f1 == (best_f1,) == ("gmm_2",) and answer.best_mcc == (best_mcc,) == ("gmm_3",)
    assert not answer.primary_is_best
    assert answer.text.startswith(f"Best against the reference: by F1, gmm_2 ({f1['gmm_2']:.2f}); by MCC, gmm_3 "
                                  f"({mcc['gmm_3']:.2f}).")
    judged = f"The primary method, kmeans_2, whose mask became the polygons, scored F1 {f1['kmeans_2']:.2f}"
    assert judged in answer.text
    assert "the map of gmm_2 (gmm_2.tif) is the one to trust" in answer.text
    assert "The primary method, gmm_3, is best by MCC" in reports.verdict(result, primary="gmm_3").text
    # One map best by both: said once, and whether it is the primary method.
    two = evaluation.Evaluation(result.reference_kind, result.reference_description, False, False,
                                [p for p in result.predictions if p.name in ("gmm_3", "kmeans_2")])
    assert reports.verdict(two, primary="gmm_3").text == (
        f"gmm_3 matched the reference best: F1 {f1['gmm_3']:.2f}, MCC {mcc['gmm_3']:.2f}. That is the primary "
        "method, gmm_3, whose mask became the polygons.")
    assert reports.verdict(two, primary="gmm_3").primary_is_best
    # A primary method as good to two decimals is not pushed aside for a difference nobody could see.
    close = evaluation.Evaluation(result.reference_kind, result.reference_description, False, False, [
        p for p in result.predictions if p.name == "gmm_3"] + [dataclasses.replace(
            next(p for p in result.predictions if p.name == "gmm_3"), name="copy", path="copy.tif",
            scores=dataclasses.replace(next(p for p in result.predictions if p.name == "gmm_3").scores,
                                       f1=f1["gmm_3"] + 0.001, mcc=mcc["gmm_3"] + 0.001))])
    assert "scored as well to two decimals" in reports.verdict(close, primary="gmm_3").text
    baseline = evaluation.evaluate(scene["reference"], [scene["maps"]["gmm_2"]], reference_is_baseline=True)
    assert "agreement with a baseline, not accuracy" in reports.verdict(baseline).text


def test_the_report_starts_with_the_answer_and_highlights_the_best(scene, tmp_path):
    result = scene["evaluation"]
    figures = {"Maps": (reports.overlay_figure(scene["stack"], scene["maps"], tmp_path / "o.png",
                                               reference=scene["reference"], dpi=40), reports.OVERLAY_CAPTION),
               "Confusion": (reports.confusion_figure(result, tmp_path / "c.png", dpi=40), reports.CONFUSION_CAPTION)}
    text = Path(reports.write_html_report(result, tmp_path / "r.html", figures=figures, primary="gmm_3")).read_text()
    answer = reports.verdict(result, primary="gmm_3")
    assert text.index("Short answer.") < text.index("<h2>Scores") < text.index("<h2>Figures")
    assert html.escape(answer.text) in text
    best_f1 = max(p.scores.f1 for p in result.predictions)
    assert f"<td class='best' bgcolor='{reports.BEST}'><b>{best_f1:.4f}</b></td>" in text
    assert "<b>gmm_2</b> (best)" in text and "<b>gmm_3</b> (best, primary)" in text  # by F1, by MCC
    assert html.escape(reports.OVERLAY_CAPTION) in text and html.escape(reports.CONFUSION_CAPTION) in text
    assert 'width="440"' in text  # the overlay at its own width (Qt's HTML viewer has no max-width)
    assert text.index("<h3>Maps</h3>") < text.index("<h3>Confusion</h3>")


def test_the_confusion_figure_does_not_flatter_a_map_drowning_in_false_alarms(scene, tmp_path):
    """Not normalised per row: the false-alarm cell of a map that flags 40 % of the ground is deep red, that
    of a careful map pale; per row both would read about 60 % and 99 % "right"."""
    result = scene["evaluation"]

    def deep_red_share(name):
        one = evaluation.Evaluation(result.reference_kind, result.reference_description, False, False,
                                    [p for p in result.predictions if p.name == name])
        image = read_png(reports.confusion_figure(one, tmp_path / f"{name}.png", dpi=60))
        r, g, b = image[:, :, 0], image[:, :, 1], image[:, :, 2]
        return float(np.mean((r > 0.9) & (g < 0.3) & (b < 0.3)))

    careful, reckless = deep_red_share("gmm_3"), deep_red_share("kmeans_2")
    assert reckless > 0.1 and careful < 0.01
    assert reports._strength("fp", 9.0) > 0.9 > 0.5 > reports._strength("fp", 1.0) - 0.01 > reports._strength(
        "fp", 0.2)


def test_the_reference_shows_over_clouds_and_the_land_is_not_darkened_by_them(tmp_path):
    rows, cols = np.indices(SIZE)
    land = (0.03 + 0.06 * np.random.default_rng(1).random(SIZE)).astype(np.float32)
    cloud = (rows < 48) & (cols < 64)
    stack = np.stack([land, land * 1.2, land * 0.8]).astype(np.float32)
    stack[:, cloud] = 0.8  # a bright cloud over a quarter of the image
    stack_path = write(tmp_path / "stack.tif", stack, "float32", np.nan, ["B04", "B03", "B02"])
    reference = np.zeros(SIZE, np.uint8)
    reference[20:26, 30:36] = 1  # under the cloud
    reference_path = write(tmp_path / "ref.tif", reference)
    mask = np.where(cloud, 255, 0).astype(np.uint8)
    path = reports.overlay_figure(stack_path, {"map": write(tmp_path / "m.tif", mask)}, tmp_path / "o.png",
                                  reference=reference_path, dpi=50)
    image = read_png(path)
    assert colour_share(image, "yellow") > 0.001  # the reference under the cloud is drawn
    stretched = reports._stretch(stack.transpose(1, 2, 0))
    assert np.nanmedian(stretched[~cloud]) > 0.3  # the land fills the range; the cloud saturates
    assert np.nanmin(stretched[cloud]) > 1.0
