"""Headless use as on a server: /usr/bin/qgis_process.bin runs the one-step algorithm and the model file."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import rasterio

ROOT = Path(__file__).resolve().parents[2]

sys.path.insert(0, str(ROOT / "scripts"))
from qgis_process_runner import QGIS_PROCESS, QgisProcess, QgisProcessError  # noqa: E402

pytestmark = pytest.mark.skipif(not Path(QGIS_PROCESS).exists(), reason=f"{QGIS_PROCESS} is not installed")

MODEL = ROOT / "resources" / "models" / "landslide_mapping.model3"


@pytest.fixture(scope="module")
def qgis_process(tmp_path_factory):
    return QgisProcess(tmp_path_factory.mktemp("qgis-profile"))


def test_help_lists_every_parameter_with_its_help(qgis_process):
    text = qgis_process._call(["help", "landslide:map_landslides"]).stdout
    assert "Map landslides (pre/post)" in text
    for name in ("PRE", "POST", "DEM", "REFERENCE_RASTER", "REFERENCE_VECTOR", "KMEANS_CLUSTERS", "GMM_CLUSTERS",
                 "PRIMARY", "OUTPUT_FOLDER"):
        assert f"{name}: " in text, name
    for name in ("ALIGNED", "PRIMARY_MASK", "POLYGONS", "REPORT", "SHIFT_X", "F1"):
        assert f"{name}: " in text, name
    # The parameters' help text reaches the command line user.
    assert "SWIR-1 (B11) changes less with the season" in text


def test_run_writes_the_maps_and_reports_the_scores(qgis_process, example_pair, tmp_path):
    folder = tmp_path / "results"
    response = qgis_process.run(
        "landslide:map_landslides", PRE=str(example_pair.pre), POST=str(example_pair.post), DEM=str(example_pair.dem),
        REFERENCE_RASTER=str(example_pair.truth), KMEANS_CLUSTERS="3", GMM_CLUSTERS="3", PRIMARY="gmm3",
        OUTPUT_FOLDER=str(folder))
    assert response["algorithm_details"]["id"] == "landslide:map_landslides"
    results = response["results"]
    assert results["OUTPUT_FOLDER"] == str(folder)
    assert results["PRIMARY_MASK"] == str(folder / "mask_gmm3.tif")
    assert sorted(Path(p).name for p in results["MASKS"]) == ["mask_either.tif", "mask_gmm3.tif", "mask_kmeans3.tif",
                                                              "mask_threshold.tif"]
    for name in ("ALIGNED", "PRIMARY_MASK", "PRIMARY_PROBABILITY", "POLYGONS", "REPORT"):
        assert Path(results[name]).is_file(), name
    assert results["SHIFT_X"] == pytest.approx(example_pair.shift[0], abs=0.2)
    assert results["SHIFT_Y"] == pytest.approx(example_pair.shift[1], abs=0.2)
    assert 0 < results["F1"] <= 1 and results["POLYGON_COUNT"] > 0
    metrics = json.loads((folder / "metrics.json").read_text())
    assert {p["name"] for p in metrics["predictions"]} == {"dNDVI threshold", "K-means 3", "GMM 3", "Either clustering"}
    assert next(p for p in metrics["predictions"] if p["name"] == "GMM 3")["f1"] == pytest.approx(results["F1"])
    polygons = json.loads(Path(results["POLYGONS"]).read_text())
    assert len(polygons["features"]) == results["POLYGON_COUNT"]
    with rasterio.open(results["PRIMARY_MASK"]) as src:
        assert (src.read(1) == 1).sum() > 20
    # nothing hidden is left behind but the manifest of the files the plugin wrote
    assert [p.name for p in folder.iterdir() if p.name.startswith(".")] == [".landslide-plugin-manifest.json"]


def test_a_bad_input_fails_with_the_reason(qgis_process, example_pair, tmp_path):
    with pytest.raises(QgisProcessError, match="is not among the methods run"):
        qgis_process.run("landslide:map_landslides", PRE=str(example_pair.pre), POST=str(example_pair.post),
                         GMM_CLUSTERS="3", PRIMARY="gmm4", OUTPUT_FOLDER=str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_the_model_file_runs_headless(qgis_process, example_pair, tmp_path):
    """`qgis_process run landslide_mapping.model3` works like any algorithm, with the model's output names."""
    outputs = {"coregister:Aligned post-event stack": tmp_path / "aligned.tif",
               "cluster_gmm3:Landslide mask": tmp_path / "mask.tif",
               "polygons:Landslide polygons": tmp_path / "polygons.gpkg",
               "evaluate:Report": tmp_path / "report.html"}
    response = qgis_process.run(str(MODEL), PRE=str(example_pair.pre), POST=str(example_pair.post),
                                DEM=str(example_pair.dem), REFERENCE=str(example_pair.truth),
                                **{name: str(path) for name, path in outputs.items()})
    for name, path in outputs.items():
        assert path.is_file() and response["results"][name] == str(path), name
    assert "F1" in outputs["evaluate:Report"].read_text(encoding="utf-8")
