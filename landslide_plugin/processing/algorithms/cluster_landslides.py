"""Cluster landslides: K-means or Gaussian mixture on pre/post change features, with masks."""
from __future__ import annotations

from qgis.core import (
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingParameterEnum,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
)

from ...core import defaults
from .. import styles
from ..base import LandslideAlgorithm, add_band_parameters, band_numbers, report_band_choice
from ..compat import NUMBER_INTEGER

#: The change features the core can compute (``indices.ALL_FEATURES``; kept here so the algorithm
#: loads even when numpy/rasterio are missing, and checked against the core by a test).
FEATURE_OPTIONS = ("NDVI_pre", "BSI_pre", "NDVI_post", "BSI_post", "dNDVI", "dBSI",
                   "NDWI_pre", "NDWI_post", "rdNDVI", "dNDWI", "VIS_pre", "VIS_post", "dVIS",
                   "SWIR_pre", "SWIR_post", "dSWIR", "NDSI_pre", "NDSI_post", "dNDSI")
#: The change clustering's features (``pipeline.ClusteringOptions``): dNDVI, dBSI, dVIS, NDVI_pre, BSI_post.
DEFAULT_FEATURES = (4, 5, 12, 0, 3)
#: How the clusters are formed and chosen (the one-step run's way first).
CLUSTERINGS = ("Change clustering: only pixels that lost vegetation; every landslide-like cluster",
               "Reference study: every analysed pixel; the one cluster with the largest NDVI loss and BSI gain")
METHODS = (("kmeans", "K-means"), ("gmm", "Gaussian mixture"))


class ClusterLandslidesAlgorithm(LandslideAlgorithm):
    NAME = "cluster_landslides"
    DISPLAY_NAME = "Cluster landslides"
    GROUP = "detection"
    HELP = (
        "Maps landslide scars from a co-registered pre-event / post-event pair of Sentinel-2 L2A reflectance "
        "stacks (on the same grid) by unsupervised clustering of change features (NDVI and bare-soil index BSI "
        "of both dates and their differences).<br><br>"
        "The model (K-means or Gaussian mixture) is fitted on a random sample of valid pixels and applied to "
        "every pixel block by block. The landslide cluster is chosen by a stated rule, not by its number: the "
        "cluster with the largest NDVI decrease together with the largest BSI increase (highest "
        "z(-dNDVI) + z(dBSI) among clusters with dNDVI &lt; 0 and dBSI &gt; 0). The log shows every cluster's "
        "centre and score. If no cluster lost vegetation and gained bare soil, a warning says the result is "
        "probably not landslides.<br><br>"
        "Masks matter more than the clustering: without them, water-level changes, harvested fields and "
        "seasonal drying dominate the landslide cluster (the reference study's precision was 0.01-0.23). "
        "Clouds, shadows, snow and no data (SCL) are removed when the SCL rasters are given, water is "
        "excluded (SCL 6 and NDWI &gt; 0), and with a DEM flat terrain is excluded (but for the runout and "
        "deposits below a steep scar); a land-cover raster "
        "(e.g. ESA WorldCover, 40 = cropland) and a minimum pre-event NDVI are optional.<br><br>"
        "Outputs: the cluster raster (0..k-1; 255 where not analysed), the landslide mask (1 landslide, 0 not "
        "or ruled out by a mask, 255 no data) and, for the Gaussian mixture, the probability of the landslide "
        "cluster (0 where a mask or the rule's pixel tests rule a pixel out, no data where not observed).")

    PRE = "PRE"
    POST = "POST"
    PRE_SCL = "PRE_SCL"
    POST_SCL = "POST_SCL"
    METHOD = "METHOD"
    CLUSTERS = "CLUSTERS"
    FEATURES = "FEATURES"
    CLUSTERING = "CLUSTERING"
    EXCLUDE_WATER = "EXCLUDE_WATER"
    EXCLUDE_DARK = "EXCLUDE_DARK"
    DEM = "DEM"
    MIN_SLOPE = "MIN_SLOPE"
    EXCLUSION = "EXCLUSION"
    EXCLUSION_CLASSES = "EXCLUSION_CLASSES"
    MIN_NDVI_PRE = "MIN_NDVI_PRE"
    SAMPLE_SIZE = "SAMPLE_SIZE"
    SEED = "SEED"
    OUTPUT_CLUSTERS = "OUTPUT_CLUSTERS"
    OUTPUT_MASK = "OUTPUT_MASK"
    OUTPUT_PROBABILITY = "OUTPUT_PROBABILITY"
    LANDSLIDE_CLUSTER = "LANDSLIDE_CLUSTER"
    LANDSLIDE_PIXELS = "LANDSLIDE_PIXELS"

    def initAlgorithm(self, config=None):  # noqa: N802
        self.add(QgsProcessingParameterRasterLayer(self.PRE, "Pre-event reflectance stack"),
                 "Sentinel-2 L2A reflectance before the event (the plugin's stacks of DNs with scale and offset, or "
                 "float32 reflectance; bands described B02, B03, B04, B8A, B11), "
                 "for example the output of the Sentinel-2 preparation step.")
        self.add(QgsProcessingParameterRasterLayer(self.POST, "Post-event reflectance stack (co-registered)"),
                 "Sentinel-2 L2A reflectance after the event, co-registered to and on the same grid as the "
                 "pre-event stack.")
        self.add(QgsProcessingParameterRasterLayer(self.PRE_SCL, "Pre-event scene classification (SCL)",
                                                   optional=True),
                 "Sentinel-2 SCL of the pre-event date: cloud, cloud shadow, snow, defective and no-data pixels "
                 "are removed, and water (class 6) when water is excluded.")
        self.add(QgsProcessingParameterRasterLayer(self.POST_SCL, "Post-event scene classification (SCL)",
                                                   optional=True),
                 "Sentinel-2 SCL of the post-event date (co-registered with the post-event stack).")
        self.add(QgsProcessingParameterEnum(self.METHOD, "Clustering method", options=[m[1] for m in METHODS],
                                            defaultValue=0),
                 "K-means: fast, hard clusters. Gaussian mixture: clusters of any shape and orientation, and a "
                 "probability layer for the landslide cluster.")
        self.add(QgsProcessingParameterNumber(self.CLUSTERS, "Number of clusters",
                                              type=NUMBER_INTEGER, defaultValue=defaults.CLUSTERS,
                                              minValue=2, maxValue=254),
                 "How many clusters to form (at least 2). With 2 the landslide cluster takes in every change; "
                 "3 to 6 separate scars from other changes better.")
        self.add(QgsProcessingParameterEnum(self.CLUSTERING, "Clustering", options=list(CLUSTERINGS),
                                            defaultValue=0),
                 "Change clustering (the one-step run's, chosen on the scenario benchmark): only the pixels whose "
                 "NDVI fell at all are clustered, every cluster whose centre lost at least 0.15 NDVI, gained bare "
                 "soil and brightened is a landslide cluster, and in it the pixels within 2 pixels of an NDVI loss "
                 "of more than 0.15 (their own or their scar's: in sparse shrub a half-covered edge pixel loses less) "
                 "whose NDVI fell by more than 0.1 beyond the median of the land within 800 m, or that brightened "
                 "in the visible by 0.02 more than that land (a scar is local; season, drought, haze and sun "
                 "angle change whole hillsides; fresh soil is brighter than dried grass), and that lost at least "
                 "0.6 of the strongest loss within 2 pixels (at least half covered: NDVI mixes non-linearly; not "
                 "a scar's blurred fringe); clustered or "
                 "not, a pixel whose NDVI fell 0.2 more than that land's while it gained bare soil and "
                 "brightened is a landslide too. Reference "
                 "study: every analysed pixel is clustered and the one cluster with the largest NDVI loss and "
                 "BSI gain is the landslide cluster.", advanced=True)
        self.add(QgsProcessingParameterEnum(self.FEATURES, "Features", options=list(FEATURE_OPTIONS),
                                            allowMultiple=True, defaultValue=list(DEFAULT_FEATURES)),
                 "Change features the clustering uses (standardised). They must include dNDVI and dBSI, or NDVI "
                 "and BSI of both dates, because the landslide cluster is chosen from them.")
        self.add_mask_parameters()
        self.add(QgsProcessingParameterNumber(self.SAMPLE_SIZE, "Sample size (pixels)",
                                              type=NUMBER_INTEGER, defaultValue=defaults.SAMPLE_SIZE,
                                              minValue=100),
                 "Number of randomly sampled valid pixels the model is fitted on; every pixel is then classified.",
                 advanced=True)
        self.add(QgsProcessingParameterNumber(self.SEED, "Random seed",
                                              type=NUMBER_INTEGER, defaultValue=defaults.SEED,
                                              minValue=0),
                 "Seed of the sample and of the model's initialisation: the same seed gives the same result.",
                 advanced=True)
        add_band_parameters(self, "a stack")
        self.add(QgsProcessingParameterRasterDestination(self.OUTPUT_CLUSTERS, "Clusters"),
                 "Cluster raster (uint8): cluster 0..k-1, 255 where the pixel was not analysed.")
        self.add(QgsProcessingParameterRasterDestination(self.OUTPUT_MASK, "Landslide mask"),
                 "uint8: 1 landslide, 0 not landslide or ruled out by a mask, 255 no data.")
        self.add(QgsProcessingParameterRasterDestination(self.OUTPUT_PROBABILITY, "Landslide probability (GMM)",
                                                         optional=True, createByDefault=False),
                 "Gaussian mixture only: posterior probability of the landslide cluster (float32).")
        self.add_output(QgsProcessingOutputNumber(self.LANDSLIDE_CLUSTER, "Landslide cluster"))
        self.add_output(QgsProcessingOutputNumber(self.LANDSLIDE_PIXELS, "Landslide pixels"))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        self.require_dependencies()
        from ...core import detection
        from ...core.rasters import Cancelled

        pre = self.raster_path(parameters, self.PRE, context)
        post = self.raster_path(parameters, self.POST, context)
        scl_pre = self.optional_raster_path(parameters, self.PRE_SCL, context)
        scl_post = self.optional_raster_path(parameters, self.POST_SCL, context)
        method_index = self.parameterAsEnum(parameters, self.METHOD, context)
        method, method_label = METHODS[method_index]
        n_clusters = self.parameterAsInt(parameters, self.CLUSTERS, context)
        features = tuple(FEATURE_OPTIONS[i] for i in self.parameterAsEnums(parameters, self.FEATURES, context))
        if not features:
            raise QgsProcessingException("no features selected; choose at least dNDVI and dBSI")
        options = self.mask_options(parameters, context)
        cluster_path = self.parameterAsOutputLayer(parameters, self.OUTPUT_CLUSTERS, context)
        mask_path = self.parameterAsOutputLayer(parameters, self.OUTPUT_MASK, context)
        probability_path = self.parameterAsOutputLayer(parameters, self.OUTPUT_PROBABILITY, context) or None
        if probability_path and method != "gmm":
            feedback.pushInfo("The probability layer exists only for the Gaussian mixture; it is not written "
                              "for K-means.")
            probability_path = None

        from ...core import pipeline

        clustering = (pipeline.REFERENCE_STUDY_CLUSTERING if self.parameterAsEnum(parameters, self.CLUSTERING, context)
                      else pipeline.ClusteringOptions())
        numbers = band_numbers(self, parameters, context)
        try:
            from ...core import indices

            for stack in (pre, post):
                report_band_choice(feedback, stack, indices.bands_for_features(features), numbers)
        except ValueError as exc:
            raise QgsProcessingException(str(exc)) from exc
        feedback.pushInfo(f"{method_label}, {n_clusters} clusters on {', '.join(features)}")
        feedback.pushInfo(f"Masks: {options.describe()}"
                          + ("" if scl_pre or scl_post else " (no SCL given: clouds are not removed)"))
        try:
            result = detection.cluster_change(
                pre, post, cluster_path=cluster_path, mask_path=mask_path, probability_path=probability_path,
                method=method, n_clusters=n_clusters, features=features, mask_options=options,
                scl_pre_path=scl_pre, scl_post_path=scl_post,
                sample_size=self.parameterAsInt(parameters, self.SAMPLE_SIZE, context),
                seed=self.parameterAsInt(parameters, self.SEED, context),
                band_numbers=numbers, candidates_below=clustering.candidates_below, rule=clustering.rule,
                progress=feedback.setProgress, is_cancelled=feedback.isCanceled)
        except Cancelled:
            raise QgsProcessingException("Cancelled by the user; no output was written.") from None
        except (ValueError, FileNotFoundError) as exc:
            raise QgsProcessingException(str(exc)) from exc

        if result.model is not None:
            feedback.pushInfo(result.model.summary())
        feedback.pushInfo(f"Pixels: {result.total_pixels:,} in total, {result.analysed_pixels:,} analysed; removed: "
                          f"{result.removed_summary()}")
        feedback.pushInfo("Pixels per cluster: " + ", ".join(
            f"{k}: {n:,}" for k, n in enumerate(result.cluster_counts)))
        feedback.pushInfo(f"Landslide cluster {result.landslide_cluster}: {result.landslide_pixels:,} pixels")
        if result.warning:
            feedback.pushWarning(f"Warning: {result.warning}. Check the cluster table above; try more clusters, "
                                 "the masks, or a pre-event image from the same season.")

        self._style_outputs(context, cluster_path, mask_path, result)
        outputs = {self.OUTPUT_CLUSTERS: cluster_path, self.OUTPUT_MASK: mask_path,
                   self.LANDSLIDE_CLUSTER: result.landslide_cluster, self.LANDSLIDE_PIXELS: result.landslide_pixels}
        if result.probability_path:
            outputs[self.OUTPUT_PROBABILITY] = result.probability_path
        return outputs

    def _style_outputs(self, context, cluster_path, mask_path, result) -> None:
        """Outputs loaded on completion get the plugin's styles (landslide cluster in red) and say their method."""
        n_clusters = len(result.cluster_counts)
        kind = "GMM" if result.probability_path or (result.model and result.model.method == "gmm") else "K-means"
        method = f"{kind} {n_clusters}"
        chosen = tuple(result.model.landslide_clusters) if result.model is not None else ()
        styles.load_styled(context, cluster_path, f"Clusters ({method})", styles.clusters_styler(n_clusters, chosen))
        styles.load_styled(context, mask_path, f"Landslide mask ({method})", styles.style_landslide_mask)
        if result.probability_path:
            styles.load_styled(context, result.probability_path, f"Landslide probability ({method})",
                               styles.style_probability)
