"""The Graphical Modeler model resources/models/landslide_mapping.model3: loads, validates, runs, stays current."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import rasterio
from qgis.core import (
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingModelAlgorithm,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterRasterLayer,
    QgsVectorLayer,
)

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "resources" / "models" / "landslide_mapping.model3"
CHAIN = ["landslide:prepare_s2_l2a", "landslide:prepare_s2_l2a", "landslide:coregister_ecc",
         "landslide:cluster_landslides", "landslide:landslide_polygons", "landslide:evaluate_landslide_maps"]


def _build_model_script():
    spec = importlib.util.spec_from_file_location("build_model", ROOT / "scripts" / "build_model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture()
def model(provider):
    loaded = QgsProcessingModelAlgorithm()
    assert loaded.fromFile(str(MODEL)), f"{MODEL} could not be read"
    return loaded


def test_model_is_valid_and_made_of_the_plugin_algorithms(model):
    ok, issues = model.validate()
    assert ok, issues
    assert model.name() == "landslide_mapping" and model.group() == "Landslide mapping"
    children = model.childAlgorithms()
    assert sorted(c.algorithmId() for c in children.values()) == sorted(CHAIN)
    assert all(c.algorithm() is not None for c in children.values())
    # Inputs a user fills in, in this order.
    inputs = [d for d in model.parameterDefinitions() if not d.isDestination()]
    assert [d.name() for d in inputs] == ["PRE", "POST", "DEM", "REFERENCE"]
    assert isinstance(inputs[0], QgsProcessingParameterMultipleLayers)
    assert isinstance(inputs[3], QgsProcessingParameterRasterLayer)
    assert inputs[2].flags() & inputs[2].FlagOptional and not inputs[3].flags() & inputs[3].FlagOptional
    outputs = {d.name() for d in model.destinationParameterDefinitions()}
    assert outputs == {"coregister:Aligned post-event stack", "cluster_gmm3:Landslide mask",
                       "polygons:Landslide polygons", "evaluate:Report"}
    # The steps the brief of the model asks for: B11 gradient co-registration with both SCLs, GMM 3 with the DEM.
    coregister = children["coregister"].parameterSources()
    assert coregister["BAND"][0].staticValue() == "B11" and coregister["USE_GRADIENT"][0].staticValue() is True
    assert coregister["INPUT_SCL"][0].outputChildId() == "prepare_post"
    assert coregister["REFERENCE_SCL"][0].outputChildId() == "prepare_pre"
    cluster = children["cluster_gmm3"].parameterSources()
    assert cluster["METHOD"][0].staticValue() == 1 and cluster["CLUSTERS"][0].staticValue() == 3
    assert cluster["DEM"][0].parameterName() == "DEM"
    assert cluster["POST"][0].outputChildId() == "coregister"
    # Every input has help in the model's help (shown in the model dialog and qgis_process help).
    help_content = model.helpContent()
    assert all(help_content.get(d.name()) for d in inputs) and "ALG_DESC" in help_content


def test_saved_model_is_what_build_model_makes(provider, tmp_path):
    """scripts/build_model.py regenerates the saved model: it stays current with the algorithms."""
    script = _build_model_script()
    assert script.differences(script.build_model(), MODEL) == []
    # A model edited by hand (or saved from an older build) is caught.
    stale = tmp_path / MODEL.name
    stale.write_text(MODEL.read_text(encoding="utf-8").replace('value="B11"', 'value="B8A"'), encoding="utf-8")
    diff = script.differences(script.build_model(), stale)
    assert any("B8A" in line for line in diff if line.startswith("-"))


def test_model_runs_on_an_example_pair(model, example_pair, tmp_path):
    import processing

    out = {
        "coregister:Aligned post-event stack": str(tmp_path / "aligned.tif"),
        "cluster_gmm3:Landslide mask": str(tmp_path / "mask.tif"),
        "polygons:Landslide polygons": str(tmp_path / "polygons.gpkg"),
        "evaluate:Report": str(tmp_path / "report.html"),
    }
    params = {"PRE": [str(example_pair.pre)], "POST": [str(example_pair.post)], "DEM": str(example_pair.dem),
              "REFERENCE": str(example_pair.truth), **out}
    result = processing.run(model, params, context=QgsProcessingContext(), feedback=QgsProcessingFeedback())

    for name, path in out.items():
        assert result[name] == path and (tmp_path / path).exists(), name
    with rasterio.open(out["coregister:Aligned post-event stack"]) as src, rasterio.open(example_pair.truth) as truth:
        assert src.descriptions[:5] == ("B02", "B03", "B04", "B8A", "B11")
        assert (src.width, src.height) == (truth.width, truth.height) == (128, 128)
    with rasterio.open(out["cluster_gmm3:Landslide mask"]) as src:
        mask = src.read(1)
        assert src.nodata == 255
    with rasterio.open(example_pair.truth) as src:
        truth = src.read(1) > 0
    landslide = mask == 1
    assert landslide.sum() > 20
    assert (landslide & truth).sum() > 0.3 * landslide.sum()  # most of what is flagged is a true scar
    polygons = QgsVectorLayer(out["polygons:Landslide polygons"], "polygons", "ogr")
    assert polygons.isValid() and polygons.featureCount() > 0
    assert {"area_m2", "mean_dndvi", "mean_slope", "mean_prob"} <= set(polygons.fields().names())
    features = list(polygons.getFeatures())
    assert all(f["area_m2"] >= 1600 for f in features)  # the default minimum mapping unit
    assert all(f["mean_dndvi"] < 0 for f in features)   # scars lost vegetation
    assert all(0 < f["mean_prob"] <= 1 for f in features)  # the GMM probability reached the polygons
    report = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "F1" in report and "<img" in report


def test_model_refuses_a_missing_reference(model, example_pair):
    ok, message = model.checkParameterValues(
        {"PRE": [str(example_pair.pre)], "POST": [str(example_pair.post)]}, QgsProcessingContext())
    assert not ok and "REFERENCE" in message.upper()

