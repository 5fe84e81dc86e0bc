"""'Map landslides (pre/post)' end to end on example products: outputs and scores, the vector reference,
grouped styled loading, the batch path, cancel and overwrite, and the errors a user meets."""
from __future__ import annotations

import gc
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import rasterio.features
from qgis.core import (
    QgsPalettedRasterRenderer,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProject,
    QgsRasterLayer,
    QgsVectorLayer,
)

from landslide_plugin.core import defaults
from landslide_plugin.core.output_folder import MANIFEST_NAME
from landslide_plugin.examples.example_data import generate_example_pair

ALG = "landslide:map_landslides"
#: One clustering and the baseline: enough to exercise every stage, quicker than the five default methods.
QUICK = {"THRESHOLD_BASELINE": True, "KMEANS_CLUSTERS": "", "GMM_CLUSTERS": "3", "PRIMARY": "gmm3"}


def run(parameters, feedback=None, context=None, **kwargs):
    import processing

    return processing.run(ALG, parameters, context=context or QgsProcessingContext(),
                          feedback=feedback or QgsProcessingFeedback(), **kwargs)


def inputs(pair, **extra):
    return {"PRE": [str(pair.pre)], "POST": [str(pair.post)], "DEM": str(pair.dem), **extra}


def snapshot(folder: Path) -> dict[str, tuple[int, str]]:
    """Every entry of ``folder`` (hidden ones included): name -> (mtime in ns, content hash)."""
    state = {}
    for entry in sorted(folder.iterdir()):
        digest = hashlib.sha256(entry.read_bytes()).hexdigest() if entry.is_file() else "dir"
        state[entry.name] = (entry.stat().st_mtime_ns, digest)
    return state


def leftovers(folder: Path) -> list[str]:
    """Hidden or partial files a run left behind (its manifest of the files it wrote is meant to stay)."""
    return [p.name for p in folder.iterdir()
            if (p.name.startswith(".") and p.name != MANIFEST_NAME) or ".part" in p.name]


@pytest.fixture(scope="module")
def full_run(provider, example_pair, tmp_path_factory):
    """Every default method, with the DEM and the true landslide raster as the reference."""
    folder = tmp_path_factory.mktemp("full") / "run"
    result = run(inputs(example_pair, REFERENCE_RASTER=str(example_pair.truth), OUTPUT_FOLDER=str(folder)))
    return folder, result


def test_typed_outputs_and_scores(full_run, example_pair):
    folder, result = full_run
    assert result["OUTPUT_FOLDER"] == str(folder)
    for name in ("ALIGNED", "PRIMARY_MASK", "POLYGONS", "REPORT"):
        assert Path(result[name]).parent == folder and Path(result[name]).is_file(), name
    # The benchmark's best (bench/README.md): where either clustering maps a landslide (no probability of its own).
    assert Path(result["PRIMARY_MASK"]).name == "mask_either.tif"
    assert result["PRIMARY_PROBABILITY"] is None
    assert sorted(Path(p).name for p in result["MASKS"]) == ["mask_either.tif", "mask_gmm5.tif", "mask_kmeans5.tif",
                                                             "mask_threshold.tif"]
    # Co-registration recovers the example's known shift.
    assert result["SHIFT_X"] == pytest.approx(example_pair.shift[0], abs=0.2)
    assert result["SHIFT_Y"] == pytest.approx(example_pair.shift[1], abs=0.2)
    # Scores of the primary method, consistent with each other and with the report's files.
    precision, recall, f1 = result["PRECISION"], result["RECALL"], result["F1"]
    assert 0 < f1 <= 1 and f1 == pytest.approx(2 * precision * recall / (precision + recall))
    assert 0 < result["IOU"] <= f1 and -1 <= result["MCC"] <= 1
    metrics = json.loads((folder / "metrics.json").read_text())
    by_name = {item["name"]: item for item in metrics["predictions"]}
    assert by_name["Either clustering"]["f1"] == pytest.approx(f1)
    assert set(by_name) == {"dNDVI threshold", "K-means 5", "GMM 5", "Either clustering"}
    report = Path(result["REPORT"]).read_text(encoding="utf-8")
    assert "F1" in report and "K-means 5" in report and "<img" in report
    # Each clustering's own features, in its maps' tags and in the report's settings: K-means 5 on the change,
    # GMM 5 on the change beyond the surroundings.
    for name, features in (("kmeans5", defaults.CLUSTER_FEATURES), ("gmm5", defaults.GMM_FEATURES)):
        with rasterio.open(folder / f"clusters_{name}.tif") as src:
            assert src.tags()["FEATURES"] == ",".join(features), name
    assert (f"K-means 5 on {', '.join(defaults.CLUSTER_FEATURES)}; GMM 5 on {', '.join(defaults.GMM_FEATURES)}"
            in report)
    assert report.index("Short answer.") < report.index("<h2>Scores")
    # The mask and the polygons agree, and the mask finds true scars.
    with rasterio.open(result["PRIMARY_MASK"]) as src:
        mask = src.read(1)
        assert src.nodata == 255 and src.dtypes[0] == "uint8"
    with rasterio.open(example_pair.truth) as src:
        truth = src.read(1) > 0
    assert (mask == 1).sum() > 20 and (truth & (mask == 1)).sum() > 0
    polygons = QgsVectorLayer(result["POLYGONS"], "polygons", "ogr")
    assert polygons.isValid() and polygons.featureCount() == result["POLYGON_COUNT"] > 0
    assert polygons.crs().authid() == "EPSG:32637"
    with rasterio.open(folder / "probability_gmm5.tif") as src, rasterio.open(folder / "mask_gmm5.tif") as gmm:
        probability, gmm_mask = src.read(1), gmm.read(1)
    assert np.nanmax(probability) <= 1 and np.nanmean(probability[gmm_mask == 1]) > 0.5
    with rasterio.open(folder / "mask_kmeans5.tif") as kmeans:
        np.testing.assert_array_equal(mask == 1, (gmm_mask == 1) | (kmeans.read(1) == 1))
    assert "LOG" not in result  # the log is printed once, as it happens (test_progress_names_each_step)


def test_vector_inventory_reference_scores_like_the_raster(full_run, example_pair, tmp_path):
    """The truth raster as an inventory of polygons (centre-of-pixel rasterisation gives the same pixels back)."""
    with rasterio.open(example_pair.truth) as src:
        truth, transform, crs = src.read(1), src.transform, src.crs
    features = [{"type": "Feature", "properties": {"id": i}, "geometry": geometry}
                for i, (geometry, value) in enumerate(rasterio.features.shapes(truth, transform=transform))
                if value > 0]
    assert len(features) > 3
    inventory = tmp_path / "inventory.geojson"
    inventory.write_text(json.dumps({"type": "FeatureCollection", "features": features, "crs": {
        "type": "name", "properties": {"name": f"urn:ogc:def:crs:EPSG::{crs.to_epsg()}"}}}))
    assert QgsVectorLayer(str(inventory), "inventory", "ogr").featureCount() == len(features)

    folder = tmp_path / "vector"
    result = run(inputs(example_pair, REFERENCE_VECTOR=str(inventory), OUTPUT_FOLDER=str(folder)))
    _, raster_result = full_run
    assert result["F1"] == pytest.approx(raster_result["F1"], abs=0.01)
    assert result["RECALL"] == pytest.approx(raster_result["RECALL"], abs=0.01)
    assert (folder / "report.html").is_file() and "F1" in (folder / "report.html").read_text(encoding="utf-8")


#: The group of a QUICK run, top to bottom: (name, switched on); "Other methods" holds its layers.
QUICK_GROUP = [
    ("Landslide polygons (GMM 3)", True), ("Landslide mask (GMM 3)", True), ("Landslide probability (GMM 3)", True),
    ("Clusters (GMM 3)", False), ("Other methods", False),
    ("Post-event true colour 2023-08-05 (co-registered)", True), ("Pre-event true colour 2023-01-05", False)]
GROUP_NAME = "Landslides T37SCB 2023-01-05 → 2023-08-05"


def load_run(project, parameters):
    """A run whose results are loaded into ``project`` as the dialog loads them (handleAlgorithmResults)."""
    from processing.gui.Postprocessing import handleAlgorithmResults

    context = QgsProcessingContext()
    context.setProject(project)

    def finish(alg, ctx, fb):
        gc.collect()  # the post-processor must survive garbage collection
        handleAlgorithmResults(alg, ctx, fb)

    return run(parameters, context=context, onFinish=finish)


def tree(group):
    return [(node.name(), node.itemVisibilityChecked()) for node in group.children()]


def test_layers_load_in_one_group_per_run_primary_map_first(provider, example_pair, tmp_path):
    from qgis.core import QgsLayerTreeGroup

    from landslide_plugin.processing.loading import RunLoader

    project = QgsProject()
    folder = tmp_path / "kahramanmaras_2023"
    load_run(project, inputs(example_pair, OUTPUT_FOLDER=str(folder), **dict(QUICK, KMEANS_CLUSTERS="2")))

    root = project.layerTreeRoot()
    assert [node.name() for node in root.children()] == [GROUP_NAME]  # nothing outside the group
    group = root.findGroup(GROUP_NAME)
    assert group.isExpanded() and group.itemVisibilityChecked()
    assert tree(group) == QUICK_GROUP
    others = group.findGroup("Other methods")
    assert isinstance(others, QgsLayerTreeGroup) and not others.isExpanded()
    assert tree(others) == [("Landslide mask (dNDVI threshold)", False), ("Landslide mask (K-means 2)", False),
                            ("Clusters (K-means 2)", False), ("Landslide mask (Either clustering)", False)]
    assert RunLoader.alive[-1].removed_nodes == 1  # the node QGIS made; every other layer made in place
    layers = {node.layer().name(): node.layer() for node in group.findLayers()}
    assert len(layers) == len(project.mapLayers()) == 10
    mask = layers["Landslide mask (GMM 3)"]
    assert isinstance(mask.renderer(), QgsPalettedRasterRenderer)
    classes = {c.value: c for c in mask.renderer().classes()}
    assert classes[1].label == "landslide" and classes[1].color.name() == "#e31a1c"
    clusters = layers["Clusters (GMM 3)"].renderer().classes()
    with rasterio.open(layers["Clusters (GMM 3)"].source()) as src:  # every cluster that reaches the mask is red
        chosen = {int(k) for k in src.tags()["LANDSLIDE_CLUSTERS"].split(",")}
    assert len(clusters) == 3 and chosen
    assert {c.value for c in clusters if "(landslide)" in c.label} == chosen
    assert all(c.color.name() == "#e31a1c" for c in clusters if c.value in chosen)
    probability = layers["Landslide probability (GMM 3)"].renderer()
    assert probability.type() == "singlebandpseudocolor"
    items = probability.shader().rasterShaderFunction().colorRampItemList()
    assert [item.label for item in items][1:] == ["10 %", "20 %", "50 %", "80 %", "100 %"]
    assert items[0].color.alpha() == 0 and items[-1].color.alpha() == 255  # clear when unlikely, solid when certain
    true_colour = layers["Post-event true colour 2023-08-05 (co-registered)"].renderer()
    assert true_colour.type() == "multibandcolor"
    assert (true_colour.redBand(), true_colour.greenBand(), true_colour.blueBand()) == (3, 2, 1)  # B04 B03 B02
    outline = layers["Landslide polygons (GMM 3)"].renderer().symbol().symbolLayer(0).strokeColor()
    assert outline.name() == "#ffd700"
    # Legends say what they show: no "Band 1: cluster (Gray)" header, no transparent class.
    from qgis.core import QgsLayerTreeModel

    model = QgsLayerTreeModel(root)

    def legend(name):
        return [n.data(0) for n in model.layerLegendNodes(group.findLayer(layers[name].id()))]

    assert legend("Landslide mask (GMM 3)") == ["landslide"]
    clusters = legend("Clusters (GMM 3)")
    assert len(clusters) == 3 and all(text.startswith("cluster ") for text in clusters)
    assert len(legend("Landslide probability (GMM 3)")) == 1  # the colour ramp, 0 % to 100 %
    assert legend("Post-event true colour 2023-08-05 (co-registered)") == ["red: B04", "green: B03", "blue: B02"]


def test_a_rerun_into_the_same_folder_replaces_its_group(provider, example_pair, tmp_path):
    project = QgsProject()
    root = project.layerTreeRoot()
    first, other = tmp_path / "first", tmp_path / "other"
    load_run(project, inputs(example_pair, OUTPUT_FOLDER=str(first), **QUICK))
    # The desktop inserts new layers above the selected one: say a layer of the first group was selected.
    from qgis.core import QgsLayerTreeRegistryBridge

    project.layerTreeRegistryBridge().setLayerInsertionPoint(
        QgsLayerTreeRegistryBridge.InsertionPoint(root.findGroup(GROUP_NAME), 1))
    load_run(project, inputs(example_pair, OUTPUT_FOLDER=str(other), **QUICK))
    names = [node.name() for node in root.children()]
    assert names == [f"{GROUP_NAME} (other)", GROUP_NAME]  # same pair, another folder: told apart; newest first,
    assert tree(root.findGroup(GROUP_NAME)) == QUICK_GROUP  # and not inside the first group
    replaced = [layer.id() for layer in project.mapLayers().values()
                if Path(layer.source().split("|")[0]).parent == first]
    load_run(project, inputs(example_pair, OUTPUT_FOLDER=str(first), **dict(QUICK, THRESHOLD_BASELINE=False)))
    assert [node.name() for node in root.children()] == names  # in place, not a third group
    assert len(project.mapLayers()) == 2 * 7 - 1  # the re-run has no threshold mask
    # The first run's layers are gone from the project, but for its mask: QGIS loads an output by finding a layer
    # of that source in the project first, so the mask layer is kept, moved into the new group and read again.
    left = set(replaced) & set(project.mapLayers())
    assert [project.mapLayer(i).name() for i in left] == ["Landslide mask (GMM 3)"]
    assert root.findGroup(GROUP_NAME).findLayer(left.pop()) is not None
    assert tree(root.findGroup(GROUP_NAME))[4] == ("Post-event true colour 2023-08-05 (co-registered)", True)


def test_batch_over_three_pairs_as_the_batch_dialog_runs_them(provider, qgis_new_project, tmp_path):
    """What BatchAlgorithmDialog.runAlgorithm does per row in QGIS 3.22: preprocessParameters, a new context
    on the current project, alg.run(...) with a BatchFeedback step, then handleAlgorithmResults."""
    from processing.gui.BatchAlgorithmDialog import BatchFeedback
    from processing.gui.Postprocessing import handleAlgorithmResults
    from processing.tools import dataobjects
    from qgis.core import QgsApplication

    alg = QgsApplication.processingRegistry().createAlgorithmById(ALG)
    pairs = [generate_example_pair(tmp_path / f"example_{seed}", size=96, seed=seed) for seed in (1, 2, 3)]
    rows = [inputs(pair, REFERENCE_RASTER=str(pair.truth), OUTPUT_FOLDER=str(tmp_path / f"row_{seed}"), **QUICK)
            for seed, pair in zip((1, 2, 3), pairs)]
    feedback = QgsProcessingFeedback()
    batch_feedback = BatchFeedback(len(rows), feedback)
    results = []
    for count, parameters in enumerate(rows):
        batch_feedback.setCurrentStep(count)
        parameters = alg.preprocessParameters(parameters)
        context = dataobjects.createContext(feedback)
        outputs, ok = alg.run(parameters, context, batch_feedback)
        assert ok, batch_feedback.errors
        handleAlgorithmResults(alg, context, batch_feedback, False, parameters)
        results.append(outputs)
    assert feedback.progress() == pytest.approx(100)

    masks, reports = set(), set()
    for seed, outputs in zip((1, 2, 3), results):
        folder = tmp_path / f"row_{seed}"
        for name in ("ALIGNED", "PRIMARY_MASK", "POLYGONS", "REPORT"):
            assert Path(outputs[name]).parent == folder and Path(outputs[name]).is_file()
        assert outputs["F1"] > 0
        masks.add(hashlib.sha256(Path(outputs["PRIMARY_MASK"]).read_bytes()).hexdigest())
        reports.add(hashlib.sha256(Path(outputs["REPORT"]).read_bytes()).hexdigest())
    assert len(masks) == 3 and len(reports) == 3  # each row mapped its own pair
    root = QgsProject.instance().layerTreeRoot()
    for seed in (1, 2, 3):
        group = next(g for g in root.children() if g.customProperty("landslide_plugin/output_folder") ==
                     str(tmp_path / f"row_{seed}"))
        assert group.name().startswith("Landslides T37SCB")
        assert len(group.findLayers()) == 7  # 2 masks, clusters, probability, polygons, 2 RGB
        assert all(Path(node.layer().source().split("|")[0]).parent == tmp_path / f"row_{seed}"
                   for node in group.findLayers())


class CancelPast(QgsProcessingFeedback):
    """Cancels at the first progress report past ``percent``, like a user pressing Cancel mid-run."""

    def __init__(self, percent: float):
        super().__init__()
        self.percent, self.cancelled_at = percent, None
        self.progressChanged.connect(self._check)

    def _check(self, progress):
        if progress > self.percent and not self.isCanceled():
            self.cancelled_at = progress
            self.cancel()


@pytest.mark.parametrize("percent", [5, 50, 99])
def test_cancelled_run_leaves_the_folder_as_it_was(provider, example_pair, tmp_path, percent):
    params = inputs(example_pair, REFERENCE_RASTER=str(example_pair.truth), **QUICK)
    # Into a new folder: nothing is left behind.
    fresh = tmp_path / "fresh"
    feedback = CancelPast(percent)
    with pytest.raises(QgsProcessingException, match="Cancelled by the user"):
        run(dict(params, OUTPUT_FOLDER=str(fresh)), feedback=feedback)
    assert feedback.cancelled_at is not None
    assert not fresh.exists() or list(fresh.iterdir()) == []
    # Over a previous run: its files are untouched.
    kept = tmp_path / "kept"
    run(dict(params, OUTPUT_FOLDER=str(kept)))
    before = snapshot(kept)
    feedback = CancelPast(percent)
    with pytest.raises(QgsProcessingException, match="Cancelled by the user"):
        run(dict(params, OUTPUT_FOLDER=str(kept)), feedback=feedback)
    assert feedback.cancelled_at is not None
    assert snapshot(kept) == before


def test_second_run_into_the_same_folder_overwrites_cleanly(provider, example_pair, tmp_path):
    folder = tmp_path / "out"
    params = inputs(example_pair, REFERENCE_RASTER=str(example_pair.truth), OUTPUT_FOLDER=str(folder), **QUICK)
    first = run(params)
    names = sorted(p.name for p in folder.iterdir())
    assert "mask_gmm3.tif" in names and "report.html" in names and "landslides_gmm3.geojson" in names
    before = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    second = run(params)
    assert sorted(p.name for p in folder.iterdir()) == names
    assert all(p.stat().st_mtime_ns > before[p.name] for p in folder.iterdir())  # every file written anew
    assert leftovers(folder) == []
    assert second["F1"] == pytest.approx(first["F1"])  # same inputs, same seed: same map
    layer = QgsRasterLayer(str(folder / "mask_gmm3.tif"), "mask")
    assert layer.isValid() and (layer.width(), layer.height()) == (128, 128)


def test_a_run_with_fewer_methods_removes_the_maps_of_the_dropped_ones(provider, example_pair, tmp_path):
    folder = tmp_path / "out"
    params = inputs(example_pair, REFERENCE_RASTER=str(example_pair.truth), OUTPUT_FOLDER=str(folder),
                    **dict(QUICK, KMEANS_CLUSTERS="2"))
    run(params)
    assert (folder / "mask_kmeans2.tif").exists() and (folder / "clusters_kmeans2.tif").exists()
    assert (folder / "mask_either.tif").exists()  # two clusterings: the map of either
    run(dict(params, KMEANS_CLUSTERS=""))
    names = {p.name for p in folder.iterdir()}
    assert "mask_kmeans2.tif" not in names and "clusters_kmeans2.tif" not in names
    assert "mask_either.tif" not in names  # one clustering: no map of either
    assert {"mask_gmm3.tif", "mask_threshold.tif", "report.html"} <= names
    report = json.loads((folder / "metrics.json").read_text())
    assert [p["name"] for p in report["predictions"]] == ["dNDVI threshold", "GMM 3"]


def test_missing_pre_image_is_refused(provider, example_pair, tmp_path):
    with pytest.raises(QgsProcessingException, match="PRE|Pre-event"):
        run({"POST": [str(example_pair.post)], "OUTPUT_FOLDER": str(tmp_path / "out")})
    assert not (tmp_path / "out").exists()


def test_primary_method_must_be_one_that_runs(provider, example_pair, tmp_path):
    with pytest.raises(QgsProcessingException, match=r"PRIMARY: 'kmeans5' is not among the methods run "
                                                     r"\(threshold, gmm3\); pick one of those"):
        run(inputs(example_pair, OUTPUT_FOLDER=str(tmp_path / "out"), **dict(QUICK, PRIMARY="kmeans5")))
    assert not (tmp_path / "out").exists()


def test_level_1c_product_is_refused_with_the_reason(provider, example_pair, tmp_path):
    l1c = tmp_path / "S2B_MSIL1C_20230805T081609_N0509_R121_T37SCB_20230805T102235.SAFE"
    l1c.mkdir()
    (l1c / "MTD_MSIL1C.xml").write_text(
        '<?xml version="1.0" encoding="UTF-8"?><n1:Level-1C_User_Product xmlns:n1="https://psd-14.sentinel2.eo.esa.'
        'int/PSD/User_Product_Level-1C.xsd"><n1:General_Info><Product_Info><PROCESSING_LEVEL>Level-1C'
        '</PROCESSING_LEVEL></Product_Info></n1:General_Info></n1:Level-1C_User_Product>')
    folder = tmp_path / "out"
    with pytest.raises(QgsProcessingException, match="Level-1C.*Level-2A"):
        run({"PRE": [str(example_pair.pre)], "POST": [str(l1c / "MTD_MSIL1C.xml")], "OUTPUT_FOLDER": str(folder)})
    assert not folder.exists() or leftovers(folder) == [] and list(folder.iterdir()) == []


class Recorder(QgsProcessingFeedback):
    """What a dialog's log and progress bar receive, in order."""

    def __init__(self):
        super().__init__()
        self.events = []

    def setProgressText(self, text):  # noqa: N802
        self.events.append(("progress text", text))
        super().setProgressText(text)

    def pushInfo(self, info):  # noqa: N802
        self.events.append(("info", info))

    def pushConsoleInfo(self, info):  # noqa: N802
        self.events.append(("console", info))

    def pushWarning(self, warning):  # noqa: N802
        self.events.append(("warning", warning))


def test_progress_names_each_step_and_says_each_line_once(provider, example_pair, tmp_path):
    import re

    feedback = Recorder()
    result = run(inputs(example_pair, REFERENCE_RASTER=str(example_pair.truth), OUTPUT_FOLDER=str(tmp_path / "o"),
                        **QUICK), feedback=feedback)
    assert "LOG" not in result
    texts = [text for kind, text in feedback.events if kind == "progress text"]
    assert texts[0] == "Step 1 of 10: Checking the inputs and the output folder"
    assert texts[-1] == "Step 10 of 10: Moving the results into the output folder"
    assert "Step 6 of 10: Detecting landslides: dNDVI threshold, GMM 3" in texts
    # Each step is also a line of the log, as it starts.
    infos = [text for kind, text in feedback.events if kind == "info"]
    assert [t for t in infos if t.startswith("Step ")] == [f"{t}…" for t in texts]
    # The cluster table comes as fixed-width console lines right after its method's line.
    position = next(i for i, (k, t) in enumerate(feedback.events) if t.startswith("GMM 3: landslide cluster"))
    assert feedback.events[position + 1][0] == "console" and "dNDVI" in feedback.events[position + 1][1]
    # Nothing twice, numbers for people (no 0.40031982942430705 in the plugin's lines; "Results: {...}" is
    # what processing.run itself prints of the outputs).
    lines = [text for kind, text in feedback.events if kind in ("info", "warning") and not text.startswith("Results:")]
    assert len(lines) == len(set(lines))
    assert not [t for t in lines if re.search(r"\d\.\d{4,}", t)]
    assert any(re.fullmatch(r"GMM 3: precision 0\.\d{3}, recall 0\.\d{3}, F1 0\.\d{3}, IoU 0\.\d{3}, MCC 0\.\d{3}", t)
               for t in lines)


def test_the_report_reads_in_qgis_own_html_viewer(full_run, qgis_app):
    """Qt's rich-text viewer (what QTextBrowser-based panels show) gets the figures and fits a 1200 px panel."""
    from qgis.PyQt.QtCore import QUrl
    from qgis.PyQt.QtGui import QTextDocument
    from qgis.PyQt.QtWidgets import QTextBrowser

    _, result = full_run
    browser = QTextBrowser()
    browser.resize(1200, 800)
    browser.setHtml(Path(result["REPORT"]).read_text(encoding="utf-8"))
    document = browser.document()
    document.setTextWidth(browser.viewport().width())
    images = []
    block = document.begin()
    while block.isValid():
        iterator = block.begin()
        while not iterator.atEnd():
            fragment = iterator.fragment()
            if fragment.charFormat().isImageFormat():
                images.append(fragment.charFormat().toImageFormat())
            iterator += 1
        block = block.next()
    assert len(images) == 2
    for image in images:
        loaded = document.resource(QTextDocument.ResourceType.ImageResource, QUrl(image.name()))
        assert loaded is not None and not loaded.isNull()  # the embedded PNG decodes
        assert 0 < image.width() <= 1100
    assert document.idealWidth() <= 1200  # no sideways scrolling
    text = document.toPlainText()
    assert text.index("Short answer.") < text.index("Scores of the landslide class") < text.index("Figures")
