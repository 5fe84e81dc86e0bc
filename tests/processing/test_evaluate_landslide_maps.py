"""Evaluate landslide maps inside QGIS: raster and polygon references, numeric outputs, report files."""
from __future__ import annotations

import csv
import html
import json

import numpy as np
import pytest
import rasterio
from qgis.core import (
    NULL,
    QgsFeature,
    QgsGeometry,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingUtils,
    QgsRasterLayer,
    QgsVectorLayer,
)
from rasterio.crs import CRS
from rasterio.transform import from_origin

from landslide_plugin.core import rasters

X0, Y0 = 500000.0, 5100000.0
GRID = {"crs": CRS.from_epsg(32632), "transform": from_origin(X0, Y0, 20, 20), "width": 64, "height": 48}


def write(path, array, dtype="uint8", nodata=255, descriptions=()):
    array = np.asarray(array)
    array = array[None] if array.ndim == 2 else array
    with rasterio.open(path, "w", **rasters.geotiff_profile(GRID, array.shape[0], dtype, nodata)) as dst:
        dst.write(array.astype(dtype))
        for i, d in enumerate(descriptions):
            dst.set_band_description(i + 1, d)
    return str(path)


@pytest.fixture()
def maps(tmp_path):
    reference = np.zeros((48, 64), np.uint8)
    reference[10:20, 10:20] = 1                # 100 px
    reference[30:36, 40:50] = 1                # 60 px
    good = np.zeros_like(reference)
    good[10:20, 10:20] = 1                     # finds the first scar exactly, misses the second
    noisy = reference.copy()
    noisy[0:5, 50:64] = 1                      # both scars plus a 70 px false alarm
    stack = np.random.default_rng(0).random((3, 48, 64)).astype("float32")
    return {
        "reference": write(tmp_path / "inventory.tif", reference),
        "good": write(tmp_path / "good.tif", good),
        "noisy": write(tmp_path / "noisy.tif", noisy),
        "stack": write(tmp_path / "post.tif", stack, "float32", np.nan, ("B02", "B03", "B04")),
    }


def outputs(tmp_path, **extra):
    params = {"OUTPUT_HTML": str(tmp_path / "out" / "report.html"), "OUTPUT_CSV": str(tmp_path / "out" / "m.csv"),
              "OUTPUT_TABLE": "TEMPORARY_OUTPUT"}
    params.update(extra)
    return params


def test_raster_reference(run_alg, maps, tmp_path):
    context = QgsProcessingContext()
    result = run_alg("evaluate_landslide_maps", {
        "REFERENCE_RASTER": maps["reference"], "PREDICTIONS": [maps["good"], maps["noisy"]],
        "TRUE_COLOUR": maps["stack"], **outputs(tmp_path, OUTPUT_JSON=str(tmp_path / "out" / "m.json"))},
        context=context)
    # first map: TP 100, FP 0, FN 60
    assert result["PRECISION"] == pytest.approx(1.0)
    assert result["RECALL"] == pytest.approx(100 / 160)
    assert result["F1"] == pytest.approx(200 / 260)
    assert result["IOU"] == pytest.approx(100 / 160)
    n = 48 * 64
    tn = n - 160
    assert result["MCC"] == pytest.approx(100 * tn / np.sqrt(100 * 160 * tn * (tn + 60)))

    with open(result["OUTPUT_CSV"], newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["name"] for r in rows] == ["good", "noisy"]
    assert (int(rows[1]["tp"]), int(rows[1]["fp"]), int(rows[1]["fn"])) == (160, 70, 0)
    assert int(rows[0]["reference_hit"]) == 1 and int(rows[0]["reference_missed"]) == 1
    assert int(rows[1]["predicted_false"]) == 1
    with open(result["OUTPUT_JSON"]) as handle:
        assert json.load(handle)["predictions"][1]["fp"] == 70
    with open(result["OUTPUT_HTML"], encoding="utf-8") as handle:
        html = handle.read()
    assert html.count("data:image/png;base64,") == 2 and "0.7692" in html

    table = QgsProcessingUtils.mapLayerFromString(result["OUTPUT_TABLE"], context)
    features = list(table.getFeatures())
    assert [f["name"] for f in features] == ["good", "noisy"]
    assert features[1]["fp"] == 70 and features[0]["recall"] == pytest.approx(100 / 160)
    assert not features[0].hasGeometry()


def test_vector_reference(run_alg, maps, tmp_path):
    layer = QgsVectorLayer("Polygon?crs=EPSG:32632", "inventory", "memory")
    features = []
    # pixel edges of the two scars (cols 10-20 / rows 10-20, cols 40-50 / rows 30-36)
    for c0, r0, c1, r1 in ((10, 10, 20, 20), (40, 30, 50, 36), (100, 100, 101, 101)):
        feature = QgsFeature()
        x0, x1, y0, y1 = X0 + 20 * c0, X0 + 20 * c1, Y0 - 20 * r0, Y0 - 20 * r1
        feature.setGeometry(QgsGeometry.fromWkt(f"POLYGON(({x0} {y0},{x1} {y0},{x1} {y1},{x0} {y1},{x0} {y0}))"))
        features.append(feature)
    assert layer.dataProvider().addFeatures(features)
    result = run_alg("evaluate_landslide_maps", {
        "REFERENCE_VECTOR": layer, "PREDICTIONS": [maps["noisy"]], **outputs(tmp_path)})
    assert result["RECALL"] == pytest.approx(1.0)
    assert result["PRECISION"] == pytest.approx(160 / 230)
    with open(result["OUTPUT_CSV"], newline="") as handle:
        row = next(csv.DictReader(handle))
    assert row["reference"] == "3 inventory polygons from layer inventory"
    assert int(row["reference_objects"]) == 2 and int(row["reference_unmapped"]) == 1
    with open(result["OUTPUT_HTML"], encoding="utf-8") as handle:
        html = handle.read()
    assert "inventory polygons" in html and html.count("data:image/png;base64,") == 2


def test_exactly_one_reference(run_alg, maps, tmp_path):
    with pytest.raises(QgsProcessingException, match="exactly one reference"):
        run_alg("evaluate_landslide_maps", {"PREDICTIONS": [maps["good"]], **outputs(tmp_path)})
    layer = QgsVectorLayer("Polygon?crs=EPSG:32632", "inventory", "memory")
    with pytest.raises(QgsProcessingException, match="not both"):
        run_alg("evaluate_landslide_maps", {"REFERENCE_RASTER": maps["reference"], "REFERENCE_VECTOR": layer,
                                            "PREDICTIONS": [maps["good"]], **outputs(tmp_path)})


def test_bad_map_and_cancel_write_nothing(run_alg, maps, tmp_path):
    clusters = write(tmp_path / "clusters.tif", np.full((48, 64), 2))
    with pytest.raises(QgsProcessingException, match="values other than 0 and 1"):
        run_alg("evaluate_landslide_maps", {"REFERENCE_RASTER": maps["reference"], "PREDICTIONS": [clusters],
                                            **outputs(tmp_path)})
    feedback = QgsProcessingFeedback()
    feedback.cancel()
    with pytest.raises(QgsProcessingException, match="Cancelled"):
        run_alg("evaluate_landslide_maps", {"REFERENCE_RASTER": maps["reference"], "PREDICTIONS": [maps["good"]],
                                            **outputs(tmp_path)}, feedback=feedback)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    assert QgsRasterLayer(maps["good"]).isValid()  # the input is untouched


class RecordingFeedback(QgsProcessingFeedback):
    """Keeps the warnings the algorithm pushes."""

    def __init__(self):
        super().__init__()
        self.warnings = []

    def pushWarning(self, warning):  # noqa: N802
        self.warnings.append(warning)
        super().pushWarning(warning)


def assert_undefined_outputs(result, context, warning):
    assert result["PRECISION"] == 0.0  # the map flags 70 px, none on a reference landslide
    for key in ("RECALL", "F1", "IOU", "MCC"):
        assert result[key] is None, key  # undefined, not 0
    with open(result["OUTPUT_HTML"], encoding="utf-8") as handle:
        text = handle.read()
    assert text.index("<b>Warning:</b> " + html.escape(warning)) < text.index("<h2>Reference</h2>")
    assert ">undefined</td>" in text and text.count("data:image/png;base64,") == 2
    with open(result["OUTPUT_CSV"], newline="") as handle:
        row = next(csv.DictReader(handle))
    assert row["recall"] == "" and row["mcc"] == "" and float(row["precision"]) == 0.0
    feature = next(QgsProcessingUtils.mapLayerFromString(result["OUTPUT_TABLE"], context).getFeatures())
    assert feature["recall"] in (None, NULL) and feature["precision"] == 0.0


@pytest.fixture()
def false_alarm(tmp_path):
    """A map whose only landslide pixels (70) are false alarms wherever the reference is empty."""
    mask = np.zeros((48, 64), np.uint8)
    mask[0:5, 50:64] = 1
    return write(tmp_path / "false_alarm.tif", mask)


def test_raster_reference_of_zeros_warns_and_leaves_scores_undefined(run_alg, false_alarm, tmp_path):
    zeros = write(tmp_path / "zeros.tif", np.zeros((48, 64)))
    feedback, context = RecordingFeedback(), QgsProcessingContext()
    result = run_alg("evaluate_landslide_maps", {
        "REFERENCE_RASTER": zeros, "PREDICTIONS": [false_alarm],
        **outputs(tmp_path, OUTPUT_JSON=str(tmp_path / "out" / "m.json"))}, feedback=feedback, context=context)
    warning = (f"The reference raster {zeros} has no landslide pixel at all (landslide = values greater than 0): "
               "recall, F1, IoU, kappa and MCC are undefined for every map. Check that the reference value is right "
               "and that this is the landslide inventory you meant to use.")
    assert feedback.warnings == [warning]
    assert_undefined_outputs(result, context, warning)
    with open(result["OUTPUT_JSON"]) as handle:
        data = json.load(handle)
    assert data["warnings"] == [warning] and data["predictions"][0]["f1"] is None


def test_inventory_outside_the_image_warns_and_leaves_scores_undefined(run_alg, false_alarm, tmp_path):
    layer = QgsVectorLayer("Polygon?crs=EPSG:32632", "far inventory", "memory")
    feature = QgsFeature()
    x0, y0 = X0 + 50_000, Y0 + 50_000  # 50 km away from the map
    feature.setGeometry(QgsGeometry.fromWkt(f"POLYGON(({x0} {y0},{x0 + 200} {y0},{x0 + 200} {y0 - 200},"
                                            f"{x0} {y0 - 200},{x0} {y0}))"))
    assert layer.dataProvider().addFeatures([feature])
    feedback, context = RecordingFeedback(), QgsProcessingContext()
    result = run_alg("evaluate_landslide_maps", {"REFERENCE_VECTOR": layer, "PREDICTIONS": [false_alarm],
                                                 **outputs(tmp_path)}, feedback=feedback, context=context)
    warning = ("The reference inventory does not overlap false_alarm: its only polygon does not fall on the map, "
               "so recall, F1, IoU, kappa and MCC are undefined. Check that the inventory covers this image (it may "
               "be outside it or in another CRS).")
    assert feedback.warnings == [warning]
    assert_undefined_outputs(result, context, warning)
