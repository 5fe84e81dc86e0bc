"""One set of defaults: every algorithm, the one-step run's core options and the shipped model take theirs from
``core.defaults``, and the model and the one-step algorithm map the same scars with them.

The one exception, held here so that it stays visible: the vegetated-before rule (MIN_NDVI_PRE) is on in the
one-step run and off in the single algorithms and the model (see ``defaults.MIN_NDVI_PRE_SINGLE_STEPS``)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from qgis.core import QgsApplication, QgsProcessingContext, QgsProcessingFeedback, QgsProcessingModelAlgorithm

from landslide_plugin.core import defaults

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "resources" / "models" / "landslide_mapping.model3"

#: Parameter name (in whichever algorithm has it) -> its default, from core.defaults.
EXPECTED = {
    "THRESHOLD": defaults.THRESHOLD,
    "KMEANS_CLUSTERS": "5",
    "GMM_CLUSTERS": "5",
    "EITHER_CLUSTERING": defaults.EITHER_CLUSTERING,
    "CLUSTERS": defaults.CLUSTERS,
    "PRIMARY": defaults.PRIMARY,
    "SAMPLE_SIZE": defaults.SAMPLE_SIZE,
    "SEED": defaults.SEED,
    "EXCLUDE_WATER": defaults.EXCLUDE_WATER,
    "EXCLUDE_DARK": defaults.EXCLUDE_DARK,
    "NDWI_THRESHOLD": defaults.NDWI_WATER_THRESHOLD,
    "MIN_SLOPE": defaults.MIN_SLOPE_DEG,
    "KEEP_RUNOUT": defaults.KEEP_RUNOUT,
    "MIN_NDVI_PRE": defaults.MIN_NDVI_PRE_SINGLE_STEPS,
    "EXCLUSION_CLASSES": defaults.EXCLUSION_CLASSES,
    "ALIGN_BAND": defaults.ALIGN_BAND,
    "BAND": defaults.ALIGN_BAND,
    "USE_GRADIENT": defaults.ALIGN_GRADIENT,
    "MAX_SHIFT": defaults.MAX_SHIFT_PX,
    "MIN_CORRELATION": defaults.MIN_CORRELATION,
    "OPENING": defaults.OPENING_PX,
    "MIN_AREA": defaults.MIN_AREA_M2,
}

#: Which algorithms must carry which of them (a parameter dropped by mistake fails here too).
CARRIERS = {
    "map_landslides": ("THRESHOLD", "KMEANS_CLUSTERS", "GMM_CLUSTERS", "EITHER_CLUSTERING", "PRIMARY", "SAMPLE_SIZE",
                       "SEED",
                       "EXCLUDE_WATER", "EXCLUDE_DARK", "MIN_SLOPE", "KEEP_RUNOUT", "MIN_NDVI_PRE",
                       "EXCLUSION_CLASSES", "ALIGN_BAND", "MAX_SHIFT", "OPENING", "MIN_AREA"),
    "ndvi_change_threshold": ("THRESHOLD", "EXCLUDE_WATER", "EXCLUDE_DARK", "NDWI_THRESHOLD", "MIN_SLOPE",
                              "KEEP_RUNOUT", "MIN_NDVI_PRE", "EXCLUSION_CLASSES"),
    "cluster_landslides": ("CLUSTERS", "SAMPLE_SIZE", "SEED", "EXCLUDE_WATER", "EXCLUDE_DARK", "MIN_SLOPE",
                           "KEEP_RUNOUT", "MIN_NDVI_PRE", "EXCLUSION_CLASSES"),
    "coregister_ecc": ("BAND", "USE_GRADIENT", "MAX_SHIFT", "MIN_CORRELATION", "RESAMPLING"),
    "landslide_polygons": ("OPENING", "MIN_AREA"),
}


def test_every_algorithm_takes_its_defaults_from_one_place(provider):
    checked = 0
    for alg in provider.algorithms():
        for param in alg.parameterDefinitions():
            if param.name() in EXPECTED:
                expected = EXPECTED[param.name()]
                if (alg.name(), param.name()) == ("map_landslides", "MIN_NDVI_PRE"):
                    expected = defaults.MIN_NDVI_PRE  # the exception (module doc)
                if (alg.name(), param.name()) == ("relative_ndvi_difference", "THRESHOLD"):
                    continue  # an optional rdNDVI cut (another scale than dNDVI), off unless given
                assert param.defaultValue() == expected, (alg.id(), param.name(), param.defaultValue())
                checked += 1
    assert checked >= sum(map(len, CARRIERS.values()))
    registry = QgsApplication.processingRegistry()
    for name, params in CARRIERS.items():
        alg = registry.algorithmById(f"landslide:{name}")
        missing = [p for p in params if alg.parameterDefinition(p) is None]
        assert not missing, (name, missing)
    motion = registry.algorithmById("landslide:coregister_ecc").parameterDefinition("MOTION")
    assert motion.options()[motion.defaultValue()] == defaults.ALIGN_MOTION
    resampling = registry.algorithmById("landslide:coregister_ecc").parameterDefinition("RESAMPLING")
    assert resampling.options()[resampling.defaultValue()] == defaults.ALIGN_RESAMPLING


def test_the_core_one_step_options_are_the_same_defaults():
    from landslide_plugin.core import masks, pipeline

    options = pipeline.MappingOptions()
    assert options.threshold == defaults.THRESHOLD
    assert [m.name for m in options.methods] == (
        ["threshold"] + [f"kmeans{k}" for k in defaults.KMEANS_CLUSTERS] + [f"gmm{k}" for k in defaults.GMM_CLUSTERS]
        + ["either"])
    assert (options.sample_size, options.seed) == (defaults.SAMPLE_SIZE, defaults.SEED)
    assert (options.align.band, options.align.gradient, options.align.motion, options.align.max_shift_px,
            options.align.resampling) == (defaults.ALIGN_BAND, defaults.ALIGN_GRADIENT, defaults.ALIGN_MOTION,
                                          defaults.MAX_SHIFT_PX, defaults.ALIGN_RESAMPLING)
    assert (options.polygons.opening_px, options.polygons.min_area_m2) == (defaults.OPENING_PX, defaults.MIN_AREA_M2)
    rules = options.masks
    assert (rules.exclude_water, rules.exclude_dark, rules.ndwi_water_threshold, rules.min_slope_deg,
            rules.keep_runout, rules.min_ndvi_pre) == (
        defaults.EXCLUDE_WATER, defaults.EXCLUDE_DARK, defaults.NDWI_WATER_THRESHOLD, defaults.MIN_SLOPE_DEG,
        defaults.KEEP_RUNOUT, defaults.MIN_NDVI_PRE)
    assert (masks.MIN_SLOPE_DEG, masks.VEGETATED_NDVI) == (defaults.MIN_SLOPE_DEG, defaults.MIN_NDVI_PRE)


def test_the_one_step_algorithm_builds_the_core_one_step_masks(provider):
    """What the dialog's defaults give is what the core's one-step run and the benchmark use: the same rules,
    the vegetated-before rule's snow exception included."""
    from landslide_plugin.core import pipeline

    alg = QgsApplication.processingRegistry().algorithmById("landslide:map_landslides")
    built, core = alg.mask_options({}, QgsProcessingContext()), pipeline.default_masks()
    for name in ("use_scl", "exclude_water", "exclude_dark", "ndwi_water_threshold", "water_buffer_px",
                 "moved_water_buffer_px", "min_slope_deg", "keep_runout", "min_ndvi_pre", "snow_ndsi_pre",
                 "snow_min_ndvi_pre"):
        assert getattr(built, name) == getattr(core, name), name
    assert core.snow_ndsi_pre == defaults.SNOW_NDSI and core.snow_min_ndvi_pre == defaults.SNOW_MIN_NDVI_PRE
    rule = pipeline.ClusteringOptions().rule
    assert (rule.snow_scar_ndvi, rule.snow_ndsi, rule.snow_min_ndvi_pre) == (
        defaults.SNOW_SCAR_NDVI, defaults.SNOW_NDSI, defaults.SNOW_MIN_NDVI_PRE)


def test_each_default_clustering_has_its_features_and_the_one_step_help_says_which(provider):
    """K-means 5 on the change (the clustering options' features), GMM 5 on the change beyond the surroundings, in
    the core's defaults and in 'Map landslides' (a method named in its counts gets those settings); its help says
    so and names the primary."""
    from landslide_plugin.core import pipeline

    by_name = {m.name: m for m in pipeline.DEFAULT_METHODS}
    assert by_name["kmeans5"].features is None and pipeline.ClusteringOptions().features == defaults.CLUSTER_FEATURES
    assert by_name["gmm5"].features == defaults.GMM_FEATURES
    assert [n for n in defaults.GMM_FEATURES if n.endswith("_local")] == ["dNDVI_local", "dBSI_local", "dVIS_local"]
    assert pipeline.default_method("GMM5") == by_name["gmm5"]
    assert pipeline.default_method("gmm3").features is None  # not a default: the options' features
    assert defaults.PRIMARY == "either" and defaults.PRIMARY in by_name
    text = QgsApplication.processingRegistry().algorithmById("landslide:map_landslides").shortHelpString()
    assert "K-means clusters these changes as they are" in text
    assert "the Gaussian mixture with 5 clusters clusters each change minus the median of the land within 800 m" in text
    assert "other mixture counts cluster the changes as they are" in text
    assert "the 'either' map of K-means 5 and GMM 5 has the best mean and worst-scene F1" in text
    assert "is the primary method" in text


def test_the_model_stores_the_same_defaults(provider):
    model = QgsProcessingModelAlgorithm()
    assert model.fromFile(str(MODEL))
    children = model.childAlgorithms()

    def static(child, name):
        return children[child].parameterSources()[name][0].staticValue()

    for child, name in (("coregister", "BAND"), ("coregister", "USE_GRADIENT"), ("coregister", "MAX_SHIFT"),
                        ("coregister", "MIN_CORRELATION"), ("cluster_gmm3", "CLUSTERS"),
                        ("cluster_gmm3", "MIN_SLOPE"), ("cluster_gmm3", "KEEP_RUNOUT"), ("cluster_gmm3", "SEED"),
                        ("cluster_gmm3", "SAMPLE_SIZE"), ("cluster_gmm3", "EXCLUDE_WATER"),
                        ("polygons", "OPENING"), ("polygons", "MIN_AREA")):
        assert static(child, name) == EXPECTED[name], (child, name)
    assert "MIN_NDVI_PRE" not in children["cluster_gmm3"].parameterSources()  # off, as the algorithm's default


@pytest.mark.slow
def test_the_model_and_the_one_step_algorithm_map_the_same_scars(provider, example_pair, tmp_path):
    """Same inputs, defaults left alone but for the one exception: the shipped model and 'Map landslides
    (pre/post)' (GMM 3, vegetated-before rule off) map the same pixels."""
    import processing

    model = QgsProcessingModelAlgorithm()
    assert model.fromFile(str(MODEL))
    model_mask = tmp_path / "model_mask.tif"
    processing.run(model, {
        "PRE": [str(example_pair.pre)], "POST": [str(example_pair.post)], "DEM": str(example_pair.dem),
        "REFERENCE": str(example_pair.truth), "coregister:Aligned post-event stack": str(tmp_path / "aligned.tif"),
        "cluster_gmm3:Landslide mask": str(model_mask), "polygons:Landslide polygons": str(tmp_path / "p.gpkg"),
        "evaluate:Report": str(tmp_path / "report.html")}, context=QgsProcessingContext(),
        feedback=QgsProcessingFeedback())
    one_step = processing.run("landslide:map_landslides", {
        "PRE": [str(example_pair.pre)], "POST": [str(example_pair.post)], "DEM": str(example_pair.dem),
        "THRESHOLD_BASELINE": False, "KMEANS_CLUSTERS": "", "GMM_CLUSTERS": "3", "PRIMARY": "gmm3",
        "MIN_NDVI_PRE": None,
        "OUTPUT_FOLDER": str(tmp_path / "one_step")}, context=QgsProcessingContext(), feedback=QgsProcessingFeedback())
    with rasterio.open(model_mask) as a, rasterio.open(one_step["PRIMARY_MASK"]) as b:
        first, second = a.read(1), b.read(1)
    assert (first == 1).sum() > 20
    agreement = np.mean(first == second)
    assert agreement == 1.0, f"the model and the one-step run differ on {100 * (1 - agreement):.2f} % of the pixels"
