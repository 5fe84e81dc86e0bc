"""The "Cluster landslides" algorithm through processing.run()."""
from __future__ import annotations

import numpy as np
import pytest
import rasterio
from qgis.core import QgsProcessingException, QgsProcessingFeedback
from rasterio.transform import from_origin

BANDS = ("B02", "B03", "B04", "B8A", "B11")
FOREST = (0.03, 0.06, 0.03, 0.35, 0.15)
FIELD = (0.08, 0.10, 0.14, 0.22, 0.30)
DEBRIS = (0.10, 0.12, 0.16, 0.21, 0.33)
WATER = (0.05, 0.07, 0.04, 0.02, 0.01)
SIZE = 64
TRANSFORM = from_origin(400000.0, 4000000.0, 20.0, 20.0)


class Recorder(QgsProcessingFeedback):
    def __init__(self):
        super().__init__()
        self.infos, self.errors, self.warnings = [], [], []

    def pushInfo(self, text):  # noqa: N802
        self.infos.append(text)

    def pushWarning(self, text):  # noqa: N802
        self.warnings.append(text)

    def reportError(self, text, fatalError=False):  # noqa: N802, N803
        self.errors.append(text)


def write(path, bands, dtype, nodata, descriptions=()):
    with rasterio.open(path, "w", driver="GTiff", width=SIZE, height=SIZE, count=len(bands), dtype=dtype,
                       nodata=nodata, crs="EPSG:32637", transform=TRANSFORM) as dst:
        for i, band in enumerate(bands):
            dst.write(np.asarray(band).astype(dtype), i + 1)
        for i, d in enumerate(descriptions):
            dst.set_band_description(i + 1, d)
    return str(path)


@pytest.fixture()
def pair(tmp_path):
    """Forest left, fields right, a lake top right; a 10 x 12 scar in the forest; lake shore dried up."""
    rng = np.random.default_rng(4)
    surface = np.zeros((SIZE, SIZE), np.uint8)
    surface[:, 40:] = 1
    surface[4:16, 44:60] = 2
    pre = np.empty((5, SIZE, SIZE), np.float32)
    for code, spectrum in ((0, FOREST), (1, FIELD), (2, WATER)):
        for b, value in enumerate(spectrum):
            pre[b][surface == code] = value
    post = pre.copy()
    slide = np.zeros((SIZE, SIZE), bool)
    slide[30:40, 10:22] = True
    shore = np.zeros((SIZE, SIZE), bool)
    shore[4:16, 44:50] = True
    for b, value in enumerate(DEBRIS):
        post[b][slide | shore] = value
    pre *= rng.normal(1, 0.04, pre.shape).astype(np.float32)
    post *= rng.normal(1, 0.04, post.shape).astype(np.float32)
    scl = np.where(surface == 2, 6, np.where(surface == 0, 4, 5)).astype(np.uint8)
    return {
        "pre": write(tmp_path / "pre.tif", pre, "float32", np.nan, BANDS),
        "post": write(tmp_path / "post.tif", post, "float32", np.nan, BANDS),
        "pre_nonames": write(tmp_path / "pre_nonames.tif", pre[::-1], "float32", np.nan),
        "post_nonames": write(tmp_path / "post_nonames.tif", post[::-1], "float32", np.nan),
        "scl": write(tmp_path / "scl.tif", [scl], "uint8", 0),
        "slide": slide, "shore": shore, "dir": tmp_path,
    }


def read(path):
    with rasterio.open(path) as src:
        return src.read(1)


def test_every_parameter_has_help_and_features_match_the_core(provider):
    from landslide_plugin.core import indices
    from landslide_plugin.processing.algorithms import cluster_landslides

    alg = provider.algorithm("cluster_landslides")
    assert alg is not None and alg.displayName() == "Cluster landslides"
    for param in alg.parameterDefinitions():
        assert param.help(), f"{param.name()} has no help text"
    assert cluster_landslides.FEATURE_OPTIONS == indices.ALL_FEATURES
    from landslide_plugin.core import pipeline

    assert [cluster_landslides.FEATURE_OPTIONS[i] for i in cluster_landslides.DEFAULT_FEATURES] == list(
        pipeline.ClusteringOptions().features)  # the one-step run's change clustering
    assert {o.name() for o in alg.outputDefinitions()} >= {"LANDSLIDE_CLUSTER", "LANDSLIDE_PIXELS", "OUTPUT_MASK"}


def test_gmm_maps_the_scar_rules_out_the_shore_and_logs_the_rule(run_alg, pair):
    out = pair["dir"]
    feedback = Recorder()
    result = run_alg("cluster_landslides", {
        "PRE": pair["pre"], "POST": pair["post"], "PRE_SCL": pair["scl"], "POST_SCL": pair["scl"],
        "METHOD": 1, "CLUSTERS": 3, "CLUSTERING": 1, "FEATURES": [0, 1, 2, 3, 4, 5],  # the reference study's way
        "OUTPUT_CLUSTERS": str(out / "clusters.tif"), "OUTPUT_MASK": str(out / "mask.tif"),
        "OUTPUT_PROBABILITY": str(out / "prob.tif")}, feedback=feedback)
    mask = read(out / "mask.tif")
    assert np.array_equal(mask == 1, pair["slide"])
    assert (mask[pair["shore"]] == 0).all()
    assert result["LANDSLIDE_PIXELS"] == int(pair["slide"].sum())
    clusters = read(out / "clusters.tif")
    assert ((clusters == result["LANDSLIDE_CLUSTER"]) == (mask == 1)).all()
    prob = read(out / "prob.tif")
    assert result["OUTPUT_PROBABILITY"] == str(out / "prob.tif")
    assert float(prob[pair["slide"]].min()) > 0.9 and (prob[4:16, 44:60] == 0).all()
    log = "\n".join(feedback.infos)
    assert "rule: landslide cluster" in log and "dNDVI" in log and "score" in log
    assert "removed:" in log and "by water" in log
    assert not feedback.warnings


def test_kmeans_with_band_numbers_and_no_probability(run_alg, pair):
    out = pair["dir"]
    feedback = Recorder()
    result = run_alg("cluster_landslides", {
        "PRE": pair["pre_nonames"], "POST": pair["post_nonames"], "METHOD": 0, "CLUSTERS": 3,
        "BAND_BLUE": 5, "BAND_GREEN": 4, "BAND_RED": 3, "BAND_NIR": 2, "BAND_SWIR1": 1, "EXCLUDE_WATER": True,
        "OUTPUT_CLUSTERS": str(out / "c.tif"), "OUTPUT_MASK": str(out / "m.tif"),
        "OUTPUT_PROBABILITY": str(out / "p.tif")}, feedback=feedback)
    assert np.array_equal(read(out / "m.tif") == 1, pair["slide"])
    assert result["LANDSLIDE_PIXELS"] == int(pair["slide"].sum())
    assert not (out / "p.tif").exists()
    assert any("only for the Gaussian mixture" in t for t in feedback.infos)
    assert any("using band numbers" in w for w in feedback.warnings)  # a silent wrong band is worse


def test_bad_inputs_are_reported_with_their_fix(run_alg, pair):
    out = pair["dir"]
    common = {"PRE": pair["pre"], "POST": pair["post"], "OUTPUT_CLUSTERS": str(out / "c.tif"),
              "OUTPUT_MASK": str(out / "m.tif")}
    cases = [
        ({"FEATURES": [0, 2]}, "dNDVI and dBSI"),
        ({"PRE": pair["pre_nonames"], "BAND_SWIR1": 9}, "band number 9 for B11 does not exist"),
        ({"EXCLUSION": pair["scl"], "EXCLUSION_CLASSES": "crop"}, "not whole numbers"),
    ]
    for extra, message in cases:
        feedback = Recorder()
        with pytest.raises(QgsProcessingException) as info:
            run_alg("cluster_landslides", {**common, **extra}, feedback=feedback)
        assert any(message in e for e in [str(info.value), *feedback.errors]), (extra, str(info.value))
    assert not (out / "c.tif").exists() and not (out / "m.tif").exists()


def test_outputs_loaded_on_completion_are_styled(run_alg, pair):
    from qgis.core import QgsProcessingContext, QgsProject, QgsRasterLayer

    out = pair["dir"]
    context = QgsProcessingContext()
    project = QgsProject()
    context.setProject(project)
    paths = {"OUTPUT_CLUSTERS": str(out / "c.tif"), "OUTPUT_MASK": str(out / "m.tif"),
             "OUTPUT_PROBABILITY": str(out / "p.tif")}
    for path in paths.values():
        context.addLayerToLoadOnCompletion(path, QgsProcessingContext.LayerDetails("x", project, "x"))
    run_alg("cluster_landslides", {"PRE": pair["pre"], "POST": pair["post"], "METHOD": 1, **paths},
            context=context)
    for key, name in (("OUTPUT_CLUSTERS", "Clusters (GMM 3)"), ("OUTPUT_MASK", "Landslide mask (GMM 3)"),
                      ("OUTPUT_PROBABILITY", "Landslide probability (GMM 3)")):
        details = context.layerToLoadOnCompletionDetails(paths[key])
        assert details.name == name
        processor = details.postProcessor()
        assert processor is not None
        layer = QgsRasterLayer(paths[key], name)
        processor.postProcessLayer(layer, context, QgsProcessingFeedback())
        assert layer.renderer().type() in ("paletted", "singlebandpseudocolor")


def test_a_loaded_output_s_legend_says_what_it_shows(run_alg, pair):
    """In a layer panel that already shows the layer (QGIS adds it before styling it): no "Band 1: cluster (Gray)"."""
    from qgis.core import QgsLayerTreeModel, QgsProcessingContext, QgsProject, QgsRasterLayer

    out = pair["dir"]
    context = QgsProcessingContext()
    project = QgsProject()
    context.setProject(project)
    path = str(out / "legend_clusters.tif")
    context.addLayerToLoadOnCompletion(path, QgsProcessingContext.LayerDetails("x", project, "x"))
    run_alg("cluster_landslides", {"PRE": pair["pre"], "POST": pair["post"], "OUTPUT_CLUSTERS": path,
                                   "OUTPUT_MASK": str(out / "legend_mask.tif")}, context=context)
    layer = QgsRasterLayer(path, "x")
    project.addMapLayer(layer)
    model = QgsLayerTreeModel(project.layerTreeRoot())  # the panel, built before the style arrives
    node = project.layerTreeRoot().findLayer(layer.id())
    assert model.layerLegendNodes(node)[0].data(0).startswith("Band 1")
    context.layerToLoadOnCompletionDetails(path).postProcessor().postProcessLayer(layer, context,
                                                                                  QgsProcessingFeedback())
    texts = [n.data(0) for n in model.layerLegendNodes(node)]
    assert texts and all(text.startswith("cluster ") for text in texts), texts
