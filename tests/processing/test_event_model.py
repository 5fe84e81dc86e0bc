"""The event model resources/models/event_to_landslide_map.model3: valid, current, and it runs against the mock."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from mock_cdse import MockCdse, make_event_scenario
from qgis.core import QgsProcessingContext, QgsProcessingFeedback, QgsProcessingModelAlgorithm, QgsVectorLayer

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "resources" / "models" / "event_to_landslide_map.model3"
USER, PASSWORD = "erin@example.org", "Model-Passw0rd"  # pragma: allowlist secret (a test value)


class Feedback(QgsProcessingFeedback):
    def __init__(self):
        super().__init__()
        self.lines = []

    def pushInfo(self, info):  # noqa: N802 (QGIS API)
        self.lines.append(info)
        super().pushInfo(info)


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


def test_event_model_is_valid_and_current(model, provider):
    ok, issues = model.validate()
    assert ok, issues
    children = model.childAlgorithms()
    assert sorted(c.algorithmId() for c in children.values()) == sorted([
        "landslide:find_event_pair", "landslide:download_s2_l2a", "landslide:download_s2_l2a",
        "landslide:map_landslides"])
    assert [d.name() for d in model.parameterDefinitions() if not d.isDestination()] == [
        "EXTENT", "EVENT_DATE", "MIN_CLEAR", "AUTH", "DEM"]
    download = children["download_post"].parameterSources()
    assert download["PRODUCT_IDS"][0].outputChildId() == "find_pair"
    assert download["PRODUCT_IDS"][0].outputName() == "POST_PRODUCT_IDS"
    mapping = children["map"].parameterSources()
    assert mapping["PRE"][0].outputChildId() == "download_pre" and mapping["POST"][0].outputChildId() == "download_post"
    # Why these images: the find step's summary goes on to the mapping (its log and report).
    assert mapping["PAIR_SUMMARY"][0].outputChildId() == "find_pair"
    assert mapping["PAIR_SUMMARY"][0].outputName() == "SUMMARY"
    script = _build_model_script()
    assert script.differences(script.build_event_model(), MODEL) == []


def test_event_model_maps_landslides_from_an_area_and_a_date(model, tmp_path, monkeypatch):
    import processing

    scenario = make_event_scenario(tmp_path / "products", size=96, aoi_fraction=0.5)
    with MockCdse(list(scenario.products.values()), users={USER: PASSWORD}) as mock:
        for key, value in mock.env().items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("CDSE_USERNAME", USER)
        monkeypatch.setenv("CDSE_PASSWORD", PASSWORD)
        feedback = Feedback()
        result = processing.run(model, {
            "EXTENT": scenario.extent(), "EVENT_DATE": "2023-02-06", "MIN_CLEAR": 70, "DEM": str(scenario.dem),
            "find_pair:candidates": str(tmp_path / "candidates.gpkg"), "map:results": str(tmp_path / "results")},
            context=QgsProcessingContext(), feedback=feedback)
    layer = QgsVectorLayer(result["find_pair:candidates"], "candidates")
    chosen = {f["role"]: f["names"] for f in layer.getFeatures() if f["chosen"]}
    assert chosen == {"pre": scenario["pre"].name, "post": scenario["post"].name}
    results = tmp_path / "results"
    assert (results / "mask_threshold.tif").exists() and list(results.glob("landslides_*.geojson"))
    downloads = [r.path for r in mock.downloads()]
    # Both images were fetched band by band, and nothing else but SCLs.
    assert any(scenario["post"].name in p and "_B8A_20m" in p for p in downloads)
    assert any(scenario["pre"].name in p and "_B8A_20m" in p for p in downloads)
    assert not any(scenario["pre_off_season"].name in p and "_B8A_20m" in p for p in downloads)
    # The mapping was told why these images: its log repeats the find step's summary.
    assert any(line.startswith("why these images: Event 2023-02-06") for line in feedback.lines)
