"""One step from a pre/post-event pair to landslide maps, polygons and a report."""
from __future__ import annotations

import json
import os
import re

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsGeometry,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingOutputHtml,
    QgsProcessingOutputMultipleLayers,
    QgsProcessingOutputNumber,
    QgsProcessingOutputRasterLayer,
    QgsProcessingOutputVectorLayer,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
)

from ... import dependencies
from ...core import defaults
from ..base import LandslideAlgorithm, add_band_parameters, band_numbers, transform_geometry
from ..compat import NUMBER_DOUBLE, NUMBER_INTEGER, SOURCE_FILE, SOURCE_VECTOR_POLYGON
from ..loading import LayerToLoad, RunLayers, RunLoader, folder_key
from ..styles import (
    clusters_styler,
    style_landslide_mask,
    style_polygons,
    style_probability,
    style_true_colour,
)
from .composite_products import METHOD_LABELS, METHOD_OPTIONS

#: Import path of the dialog widgets (processing/widgets.py), given by name: only the dialogs import them.
WIDGETS = f"{__package__.rsplit('.', 1)[0]}.widgets"


def _counts(text: str, name: str) -> list[int]:
    text = (text or "").strip()
    if not text:
        return []
    try:
        values = [int(v) for v in re.split(r"[,\s;]+", text) if v]
    except ValueError:
        raise QgsProcessingException(f"{name}: '{text}' is not a list of cluster counts; write e.g. 2,3") from None
    if any(v < 2 for v in values):
        raise QgsProcessingException(f"{name}: every cluster count must be 2 or more (got '{text}')")
    return list(dict.fromkeys(values))


def normalise_method(value) -> str:
    """'GMM 3', 'gmm3 ', 'K-means 2' -> 'gmm3', 'kmeans2' (how methods and their files are named)."""
    return re.sub(r"[\s_-]+", "", str(value or "")).lower()


def user_message(error: Exception, folder: str) -> str:
    """One sentence for a failed run: the core's own sentences as they are, system errors explained."""
    import errno

    suffix = " The output folder was left as it was."
    if isinstance(error, (ValueError, FileNotFoundError)):
        return str(error)
    if isinstance(error, OSError) and error.errno == errno.ENOSPC or "No space left" in str(error):
        return (f"The disk of {folder} filled up during the run: free some space or choose another output "
                "folder." + suffix)
    if isinstance(error, PermissionError):
        return f"Permission denied for {error.filename or folder}: choose a folder you can write to." + suffix
    if isinstance(error, OSError):
        where = f" ({error.filename})" if error.filename else ""
        return f"The run failed: {error.strerror or error}{where}." + suffix
    return f"The run failed: {error}." + suffix


class MapLandslidesAlgorithm(LandslideAlgorithm):
    NAME = "map_landslides"
    DISPLAY_NAME = "Map landslides (pre/post)"
    GROUP = "workflow"
    REQUIRES = dependencies.CORE + ("matplotlib",)
    SHORT = ("Maps landslide scars from a pre-event and a post-event Sentinel-2 L2A image in one step: every "
             "method's mask, the primary method's polygons and, with a reference, a report that says which "
             "method to trust.")
    HELP = (
        "Maps landslide scars from a pre-event and a post-event Sentinel-2 L2A image in one step: prepares the "
        "products (reflectance with the right offset, SCL, area of interest, mosaic), co-registers the post image "
        "onto the pre image (ECC, sub-pixel), computes NDVI/BSI change, applies the masks, runs every chosen "
        "method (the dNDVI threshold baseline, K-means and Gaussian mixtures with the cluster counts you give), "
        "turns the primary method's mask into polygons and, with a reference, evaluates every method "
        "(precision, recall, F1, IoU, MCC) in an HTML report with figures.<br><br>"
        "Each clustering groups only the pixels whose NDVI fell at all (dNDVI &lt; −0.1), on features that tell kinds "
        "of change apart: NDVI, bare-soil (BSI) and visible change (fresh scars brighten, burns, shadows and haze "
        "do not), NDVI before and BSI after. K-means clusters these changes as they are; the Gaussian mixture "
        "with 5 clusters clusters each change minus the median of the land within 800 m (a scar stands out from "
        "its surroundings, a change of the whole region does not), from three seeds, mapping what any of them maps "
        "(a mixture's partition of the changes depends on its start); other mixture counts cluster the changes as "
        "they are. Every cluster whose centre lost at least 0.15 NDVI, gained bare soil "
        "and brightened is a landslide cluster (on the change beyond the surroundings, also one whose centre "
        "lost NDVI, gained bare soil and brightened by 0.02 more than that land), and in it the pixels within 2 "
        "pixels of an NDVI loss of more than 0.15 (their own or their scar's) whose NDVI fell by more than 0.1 beyond "
        "the median of the land within 800 m, or that brightened in the visible by 0.02 more than that land "
        "(a drought, the season, haze or the sun change whole hillsides; a scar is local, and fresh soil is "
        "brighter than dried grass), and that lost at least 0.6 of the strongest loss within 2 pixels "
        "(at least half covered by the scar - NDVI mixes non-linearly - not its blurred fringe); clustered or not, "
        "a pixel whose NDVI fell "
        "0.2 more than that land's while it gained bare soil and brightened is a landslide too (a scar in land "
        "that greened up between winter and summer). Every mapped pixel must be at least half covered by the scar "
        "next to it, by linear unmixing of its reflectance between its own spectrum before and the scar's after. "
        "Where thin snow the SCL missed covered the ground before (NDSI above 0) and some vegetation showed through "
        "it (NDVI 0.05 or more), the pre image cannot show a loss: such a pixel is a landslide when its NDVI after "
        "is 0.25 below and its BSI after 0.05 above the median of the land within 800 m (bare ground in land green "
        "after; a rock outcrop under the same snow looks alike). The log and the report warn when such snow covers "
        "more than 1 % of the analysed pixels on either date (on the post date a scar under it cannot be seen). "
        "The log shows each clustering's features and the numbers "
        "behind the choice. One more map, 'either', marks the pixels any clustering maps: the two see different "
        "changes and each is precise where it maps. Defaults come from the scenario benchmark (bench/README.md): "
        "the 'either' map of K-means 5 and GMM 5 has the best mean and worst-scene F1 there and is the primary "
        "method. Masks (on by default) remove clouds, "
        "shadows, snow and water (SCL and NDWI), slopes under the minimum when a DEM is given (but for the runout "
        "and deposits below a steep scar, which lie on gentler ground), the excluded "
        "land-cover classes and pixels that were not vegetated before (NDVI 0.3, or 0.05 under thin snow); the "
        "reference study ran without them "
        "and flagged harvested fields and a reservoir.<br><br>"
        "Several dates of a period (products of different days) are composited per pixel from their clear "
        "observations (median, or the greenest pixel) instead of mosaicked, so a cloud over part of the area on "
        "one date does not reach the map; the count of clear observations per pixel is written as "
        "pre_clear_count.tif / post_clear_count.tif, and the report lists the products and dates of each period "
        "(and, given a pair summary, why these images were chosen).<br><br>"
        "All files go to the output folder with fixed names (a second run replaces the files the first wrote, "
        "and only those); the run is all-or-nothing: a failure or a cancel leaves the folder as it was. Inputs are "
        "never moved or changed.<br><br>"
        "Loaded results come in one layer group per run, named after the pair (tile and dates): the primary "
        "method's polygons, mask and probability first, over the post-event image, the other methods switched "
        "off in a collapsed sub-group; a re-run into the same folder replaces its group. With a reference, the "
        "report and the last line of the log say which method matched it best.")

    PRE = "PRE"
    POST = "POST"
    PRE_SCL = "PRE_SCL"
    POST_SCL = "POST_SCL"
    EXTENT = "EXTENT"
    PRE_COMPOSITE = "PRE_COMPOSITE"
    POST_COMPOSITE = "POST_COMPOSITE"
    PAIR_SUMMARY = "PAIR_SUMMARY"
    DEM = "DEM"
    EXCLUSION = "EXCLUSION"
    EXCLUSION_CLASSES = "EXCLUSION_CLASSES"
    REFERENCE_RASTER = "REFERENCE_RASTER"
    REFERENCE_VECTOR = "REFERENCE_VECTOR"
    THRESHOLD_BASELINE = "THRESHOLD_BASELINE"
    THRESHOLD = "THRESHOLD"
    KMEANS_CLUSTERS = "KMEANS_CLUSTERS"
    GMM_CLUSTERS = "GMM_CLUSTERS"
    EITHER_CLUSTERING = "EITHER_CLUSTERING"
    PRIMARY = "PRIMARY"
    USE_MASKS = "USE_MASKS"
    MIN_SLOPE = "MIN_SLOPE"
    MIN_NDVI_PRE = "MIN_NDVI_PRE"
    EXCLUDE_DARK = "EXCLUDE_DARK"
    COREGISTER = "COREGISTER"
    ALIGN_BAND = "ALIGN_BAND"
    MAX_SHIFT = "MAX_SHIFT"
    OPENING = "OPENING"
    MIN_AREA = "MIN_AREA"
    SAMPLE_SIZE = "SAMPLE_SIZE"
    SEED = "SEED"
    OUTPUT_FOLDER = "OUTPUT_FOLDER"
    # outputs
    ALIGNED = "ALIGNED"
    PRIMARY_MASK = "PRIMARY_MASK"
    PRIMARY_PROBABILITY = "PRIMARY_PROBABILITY"
    POLYGONS = "POLYGONS"
    MASKS = "MASKS"
    REPORT = "REPORT"
    SHIFT_X = "SHIFT_X"
    SHIFT_Y = "SHIFT_Y"
    POLYGON_COUNT = "POLYGON_COUNT"
    PRECISION, RECALL, F1, IOU, MCC = "PRECISION", "RECALL", "F1", "IOU", "MCC"

    def initAlgorithm(self, config=None):  # noqa: N802
        files = SOURCE_FILE
        for name, label, text in (
                (self.PRE, "Pre-event image",
                 "Sentinel-2 L2A product(s) of the pre-event date (.zip, .SAFE folder or MTD_MSIL2A.xml; several "
                 "adjacent tiles of one date are mosaicked, products of several dates are composited per pixel), "
                 "or one reflectance stack GeoTIFF with bands described "
                 "B02, B03, B04, B8A, B11 (as written by 'Prepare Sentinel-2 L2A product')."),
                (self.POST, "Post-event image", "The same for the post-event date (or dates).")):
            products = QgsProcessingParameterMultipleLayers(name, label, files)
            # QGIS 3.22's own widget drops paths that are not map layers (product ZIPs) when a dialog is
            # pre-filled (History, pasted commands): the plugin's keeps them, with a product file filter.
            products.setMetadata({"widget_wrapper": {"class": f"{WIDGETS}.ProductFilesWidgetWrapper"}})
            self.add(products, text)
        self.add(QgsProcessingParameterRasterLayer(self.PRE_SCL, "Pre-event SCL (for a stack input)", optional=True),
                 "Scene classification of the pre-event stack when PRE is a GeoTIFF; products carry their own.",
                 advanced=True)
        self.add(QgsProcessingParameterRasterLayer(self.POST_SCL, "Post-event SCL (for a stack input)",
                                                   optional=True),
                 "Scene classification of the post-event stack when POST is a GeoTIFF.", advanced=True)
        for name, period in ((self.PRE_COMPOSITE, "pre-event"), (self.POST_COMPOSITE, "post-event")):
            self.add(QgsProcessingParameterEnum(name, f"Composite of several {period} dates",
                                                options=list(METHOD_LABELS), defaultValue=0),
                     f"When the {period} products are of several dates: the median of each pixel's clear "
                     "observations (removes clouds and single-date noise), or the clear observation with the "
                     "highest NDVI (greenest pixel: the vegetation at its fullest, for a pre-event period). One "
                     "date: not used.", advanced=True)
        self.add(QgsProcessingParameterString(self.PAIR_SUMMARY, "Why these images", multiLine=True,
                                              optional=True),
                 "Why these images were chosen, for the report and the log: e.g. the SUMMARY output of 'Find a "
                 "pre/post pair for an event'.", advanced=True)
        self.add(QgsProcessingParameterExtent(self.EXTENT, "Area of interest", optional=True),
                 "Crop the products to this extent (any CRS). Empty: the whole product.")
        self.add(QgsProcessingParameterRasterLayer(self.REFERENCE_RASTER, "Reference raster", optional=True),
                 "A landslide reference raster (1 or >0 = landslide) on any grid, for the evaluation.")
        self.add(QgsProcessingParameterFeatureSource(self.REFERENCE_VECTOR, "Reference inventory polygons",
                                                     [SOURCE_VECTOR_POLYGON], optional=True),
                 "A landslide inventory (polygons, any CRS), rasterised onto the grid for the evaluation. Give "
                 "this or a reference raster, not both.")
        self.add(QgsProcessingParameterBoolean(self.THRESHOLD_BASELINE, "Run the dNDVI threshold baseline",
                                               defaultValue=True),
                 "The reference study's baseline: NDVI dropped by more than |threshold|.")
        self.add(QgsProcessingParameterNumber(self.THRESHOLD, "dNDVI threshold",
                                              NUMBER_DOUBLE, defaults.THRESHOLD, minValue=-1.99,
                                              maxValue=-0.01),
                 "dNDVI below this is a landslide for the baseline.", decimals=2)
        self.add(QgsProcessingParameterString(self.KMEANS_CLUSTERS, "K-means cluster counts",
                                              defaultValue=",".join(map(str, defaults.KMEANS_CLUSTERS)),
                                              optional=True),
                 "One K-means run per count (2 or more), e.g. '4,5'. Empty: no K-means.")
        self.add(QgsProcessingParameterString(self.GMM_CLUSTERS, "Gaussian mixture cluster counts",
                                              defaultValue=",".join(map(str, defaults.GMM_CLUSTERS)),
                                              optional=True),
                 "One Gaussian-mixture run per count; each also writes the posterior probability of its "
                 "landslide clusters (0 where the rule's pixel tests rule a pixel out). Empty: no mixture.")
        self.add(QgsProcessingParameterBoolean(self.EITHER_CLUSTERING, "Also map where either clustering does",
                                               defaultValue=defaults.EITHER_CLUSTERING),
                 "With two or more clusterings, one more map, method 'either': a pixel is a landslide where any "
                 "clustering above maps it (each after its own rules and masks; mask_either.tif). K-means and "
                 "the default GMM 5 see different changes and each is precise where it maps, so together they "
                 "find more scars: on the scenario benchmark this map has the best mean and worst-scene F1.")
        primary = QgsProcessingParameterString(self.PRIMARY, "Primary method", defaultValue=defaults.PRIMARY)
        # A drop-down of the methods the counts above make (they vary, so not a fixed enum); the value stays
        # the method's name, checked before the run (checkParameterValues).
        primary.setMetadata({"widget_wrapper": {"class": f"{WIDGETS}.MethodChoiceWidgetWrapper"}})
        self.add(primary,
                 "The method whose mask becomes polygons, the PRIMARY_MASK output and the first map on screen: "
                 "threshold, kmeansK or gmmK with K one of the counts above, or either (the pixels any clustering "
                 "maps; the default: the best mean and worst-scene F1 on the scenario benchmark). A mixture also "
                 "gives the polygons a mean probability. The report says which method scored best against the "
                 "reference.")
        self.add_mask_parameters(min_ndvi_pre=defaults.MIN_NDVI_PRE)
        self.add(QgsProcessingParameterBoolean(self.USE_MASKS, "Apply masks", defaultValue=True),
                 "Remove clouds/shadow/snow/water (SCL, NDWI), flat ground (with a DEM), excluded land cover and "
                 "pixels not vegetated before. Off: the unmasked reference-study setup, no mask rule at all (SCL "
                 "included; only pixels without data are left out). The SCL still keeps clouds out of the "
                 "co-registration.")
        self.add(QgsProcessingParameterBoolean(self.COREGISTER, "Co-register the post image", defaultValue=True),
                 "ECC co-registration of the post image onto the pre image (translation, coarse-to-fine). Off "
                 "only for images already aligned.", advanced=True)
        self.add(QgsProcessingParameterEnum(self.ALIGN_BAND, "Band for co-registration",
                                            options=list(defaults.STACK_BANDS), defaultValue=defaults.ALIGN_BAND,
                                            usesStaticStrings=True),
                 "Band whose gradient drives ECC. SWIR-1 (B11) changes less with the season than NIR (B8A), so it "
                 "aligns pre/post pairs from different seasons more reliably.", advanced=True)
        self.add(QgsProcessingParameterNumber(self.MAX_SHIFT, "Maximum plausible shift (pixels)",
                                              NUMBER_DOUBLE, defaults.MAX_SHIFT_PX, minValue=0.5),
                 "A larger estimated shift stops the run instead of passing a misaligned image on.", advanced=True,
                 decimals=1)
        self.add(QgsProcessingParameterNumber(self.OPENING, "Morphological opening (pixels)",
                                              NUMBER_INTEGER, defaults.OPENING_PX, minValue=0, maxValue=10),
                 "Radius of the opening applied before polygons (0: none).", advanced=True)
        self.add(QgsProcessingParameterNumber(self.MIN_AREA, "Minimum mapping unit (m²)",
                                              NUMBER_DOUBLE, defaults.MIN_AREA_M2, minValue=0),
                 "Polygons smaller than this are dropped (1600 m² = 4 pixels at 20 m).", advanced=True, decimals=0)
        self.add(QgsProcessingParameterNumber(self.SAMPLE_SIZE, "Clustering sample size",
                                              NUMBER_INTEGER, defaults.SAMPLE_SIZE, minValue=1000),
                 "Pixels the clusterings are fitted on (a random sample of the valid pixels).", advanced=True)
        self.add(QgsProcessingParameterNumber(self.SEED, "Random seed", NUMBER_INTEGER,
                                              defaults.SEED, minValue=0),
                 "Same seed, same sample, same clusters.", advanced=True)
        add_band_parameters(self, "a stack given as PRE or POST")
        self.add(QgsProcessingParameterFolderDestination(self.OUTPUT_FOLDER, "Output folder"),
                 "Where the stacks, masks, clusters, probabilities, polygons and report are written. The plugin "
                 "replaces only files it wrote there itself (listed in .landslide-plugin-manifest.json); a file "
                 "of the same name that is yours stops the run before any work, and nothing else is touched.")
        for name, label, cls in (
            (self.ALIGNED, "Co-registered post-event stack", QgsProcessingOutputRasterLayer),
            (self.PRIMARY_MASK, "Landslide mask of the primary method", QgsProcessingOutputRasterLayer),
            (self.PRIMARY_PROBABILITY, "Landslide probability of the primary method (GMM)",
             QgsProcessingOutputRasterLayer),
            (self.POLYGONS, "Landslide polygons", QgsProcessingOutputVectorLayer),
            (self.MASKS, "Landslide masks of every method", QgsProcessingOutputMultipleLayers),
            (self.REPORT, "Report", QgsProcessingOutputHtml),
        ):
            self.add_output(cls(name, label))
        for name, label in ((self.SHIFT_X, "Shift x (pixels)"), (self.SHIFT_Y, "Shift y (pixels)"),
                            (self.POLYGON_COUNT, "Number of landslide polygons"),
                            (self.PRECISION, "Precision of the primary method"), (self.RECALL, "Recall"),
                            (self.F1, "F1"), (self.IOU, "IoU"), (self.MCC, "MCC")):
            self.add_output(QgsProcessingOutputNumber(name, label))

    def checkParameterValues(self, parameters, context):  # noqa: N802
        """Checked before the run (the dialog shows the message and keeps its values): the counts, the primary
        method among the methods the run makes, both images."""
        ok, message = super().checkParameterValues(parameters, context)
        if not ok:
            return ok, message
        try:
            self._method_plan(parameters, context)
        except QgsProcessingException as exc:
            return False, str(exc)
        return True, ""

    def _method_plan(self, parameters, context) -> tuple[list[str], str]:
        """(method names in run order, primary method); a clear error for counts or a primary that do not fit."""
        from ...core.method_plan import method_names

        names = method_names(
            self.parameterAsBool(parameters, self.THRESHOLD_BASELINE, context),
            *(_counts(self.parameterAsString(parameters, name, context), name)
              for name in (self.KMEANS_CLUSTERS, self.GMM_CLUSTERS)),
            self.parameterAsBool(parameters, self.EITHER_CLUSTERING, context))
        if not names:
            raise QgsProcessingException("No method chosen: tick the dNDVI threshold baseline or give cluster counts "
                                         "for K-means or the Gaussian mixture.")
        primary = normalise_method(self.parameterAsString(parameters, self.PRIMARY, context))
        if primary not in names:
            raise QgsProcessingException(
                f"PRIMARY: '{primary}' is not among the methods run ({', '.join(names)}); pick one of those.")
        return names, primary

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        self.require_dependencies()
        from ...core import pipeline
        from ...core.rasters import Cancelled

        pre = self.parameterAsFileList(parameters, self.PRE, context)
        post = self.parameterAsFileList(parameters, self.POST, context)
        if not pre or not post:
            raise QgsProcessingException("Give both a pre-event and a post-event image (PRE and POST).")
        names, primary = self._method_plan(parameters, context)
        try:
            methods = [pipeline.default_method(name) for name in names]  # gmm5: its own features
        except ValueError as exc:
            raise QgsProcessingException(str(exc)) from exc

        geometries = None
        reference = self.optional_raster_path(parameters, self.REFERENCE_RASTER, context)
        source = self.parameterAsSource(parameters, self.REFERENCE_VECTOR, context)
        if source is not None:
            if reference:
                raise QgsProcessingException("Give one reference: a raster or inventory polygons, not both.")
            geometries = self._geometries_wgs84(source, context)
        optional_raster = {name: self.optional_raster_path(parameters, name, context)
                           for name in (self.DEM, self.EXCLUSION, self.PRE_SCL, self.POST_SCL)}
        aoi, aoi_crs = self.extent_as_wkt(parameters, self.EXTENT, context)
        folder = self.parameterAsString(parameters, self.OUTPUT_FOLDER, context)
        use_masks = self.parameterAsBool(parameters, self.USE_MASKS, context)
        options = pipeline.MappingOptions(
            methods=tuple(methods), primary=primary,
            threshold=self.parameterAsDouble(parameters, self.THRESHOLD, context),
            masks=self.mask_options(parameters, context) if use_masks else None,
            align=pipeline.AlignOptions(
                enabled=self.parameterAsBool(parameters, self.COREGISTER, context),
                band=self.parameterAsEnumString(parameters, self.ALIGN_BAND, context) or defaults.ALIGN_BAND,
                max_shift_px=self.parameterAsDouble(parameters, self.MAX_SHIFT, context)),
            polygons=pipeline.PolygonOptions(
                opening_px=self.parameterAsInt(parameters, self.OPENING, context),
                min_area_m2=self.parameterAsDouble(parameters, self.MIN_AREA, context)),
            sample_size=self.parameterAsInt(parameters, self.SAMPLE_SIZE, context),
            seed=self.parameterAsInt(parameters, self.SEED, context),
            band_numbers=band_numbers(self, parameters, context),
            pre_composite=METHOD_OPTIONS[self.parameterAsEnum(parameters, self.PRE_COMPOSITE, context)],
            post_composite=METHOD_OPTIONS[self.parameterAsEnum(parameters, self.POST_COMPOSITE, context)],
            pair_summary=self.parameterAsString(parameters, self.PAIR_SUMMARY, context) or "")

        def log(text: str) -> None:
            first, *table = text.split("\n")
            if first.startswith("WARNING"):
                feedback.pushWarning(first)
            else:
                feedback.pushInfo(first)
            for line in table:  # a table (cluster centres): fixed width, spaces kept in the dialog's HTML log
                feedback.pushConsoleInfo(line.replace(" ", "\u00a0"))

        def step(number: int, count: int, title: str) -> None:
            feedback.setProgressText(f"Step {number} of {count}: {title}")
            feedback.pushInfo(f"Step {number} of {count}: {title}…")

        try:
            result = pipeline.map_landslides(
                pre, post, folder, options, pre_scl=optional_raster[self.PRE_SCL],
                post_scl=optional_raster[self.POST_SCL], aoi=aoi, aoi_crs=aoi_crs or "EPSG:4326",
                dem=optional_raster[self.DEM], exclusion=optional_raster[self.EXCLUSION], reference=reference,
                reference_geometries=geometries, reference_crs="EPSG:4326" if geometries is not None else None,
                log=log, step=step, progress=feedback.setProgress, is_cancelled=feedback.isCanceled)
        except Cancelled:
            raise QgsProcessingException("Cancelled by the user; the output folder was left as it was.") from None
        except Exception as exc:  # every failure is one sentence for the user, never a traceback
            raise QgsProcessingException(user_message(exc, folder)) from exc

        self._load_outputs(result, context, methods)
        scores = result.metrics.get(primary, {})
        shift = result.shift_px or (0.0, 0.0)
        return {
            self.OUTPUT_FOLDER: folder, self.ALIGNED: str(result.post_aligned),
            self.PRIMARY_MASK: str(result.masks[primary]),
            self.PRIMARY_PROBABILITY: str(result.probabilities[primary]) if primary in result.probabilities else None,
            self.POLYGONS: str(result.polygons), self.MASKS: [str(p) for p in result.masks.values()],
            self.REPORT: str(result.report) if result.report else None,
            self.SHIFT_X: shift[0], self.SHIFT_Y: shift[1], self.POLYGON_COUNT: result.polygon_count,
            self.PRECISION: scores.get("precision"), self.RECALL: scores.get("recall"), self.F1: scores.get("f1"),
            self.IOU: scores.get("iou"), self.MCC: scores.get("mcc"),
        }

    # -- helpers --------------------------------------------------------------------------------------
    def _geometries_wgs84(self, source, context) -> list[dict]:
        transform = QgsCoordinateTransform(source.sourceCrs(), QgsCoordinateReferenceSystem("EPSG:4326"),
                                           context.transformContext())
        geometries = []
        for feature in source.getFeatures():
            geometry = QgsGeometry(feature.geometry())
            if geometry.isEmpty():
                continue
            transform_geometry(geometry, transform, self.REFERENCE_VECTOR)
            geometries.append(json.loads(geometry.asJson(8)))
        if not geometries:
            raise QgsProcessingException("REFERENCE_VECTOR: the inventory layer has no polygons.")
        return geometries

    def _load_outputs(self, result, context, methods) -> None:
        """The run's layers, in one group per output folder, the primary map first (processing/loading.py).

        QGIS is handed one layer to load, the primary mask; its post-processor builds the group around it in
        the main thread. Nothing is loaded when the caller does not load results (processing.run, models).
        """
        from ...core import pipeline

        by_name = {m.name: m for m in methods}
        primary = by_name[result.primary]
        title = pipeline.pair_title(result.pre_stack, result.post_aligned)
        dates = _dates(title)
        layers = [LayerToLoad(str(result.polygons), f"Landslide polygons ({primary.label})", style_polygons,
                              vector=True),
                  LayerToLoad(str(result.masks[primary.name]), f"Landslide mask ({primary.label})",
                              style_landslide_mask, expanded=True)]
        anchor = len(layers) - 1
        if primary.name in result.probabilities:
            layers.append(LayerToLoad(str(result.probabilities[primary.name]),
                                      f"Landslide probability ({primary.label})", style_probability, expanded=True))
        if primary.name in result.clusters:
            n, k = result.landslide_clusters[primary.name]
            layers.append(LayerToLoad(str(result.clusters[primary.name]), f"Clusters ({primary.label})",
                                      clusters_styler(n, k), visible=False))
        for method in methods:
            if method.name == primary.name:
                continue
            layers.append(LayerToLoad(str(result.masks[method.name]), f"Landslide mask ({method.label})",
                                      style_landslide_mask, visible=False, other=True))
            if method.name in result.probabilities:
                layers.append(LayerToLoad(str(result.probabilities[method.name]),
                                          f"Landslide probability ({method.label})", style_probability,
                                          visible=False, other=True))
            if method.name in result.clusters:
                n, k = result.landslide_clusters[method.name]
                layers.append(LayerToLoad(str(result.clusters[method.name]), f"Clusters ({method.label})",
                                          clusters_styler(n, k), visible=False, other=True))
        layers.append(LayerToLoad(str(result.post_aligned), f"Post-event true colour{dates[1]} (co-registered)",
                                  style_true_colour))
        layers.append(LayerToLoad(str(result.pre_stack), f"Pre-event true colour{dates[0]}", style_true_colour,
                                  visible=False))
        folder = os.path.normpath(str(result.folder))
        run = RunLayers(f"Landslides {title}" if title else f"Landslides {os.path.basename(folder)}",
                        folder_key(folder), layers, anchor)
        details = QgsProcessingContext.LayerDetails(layers[anchor].name, context.project(), layers[anchor].name)
        details.setPostProcessor(RunLoader.create(run))
        context.addLayerToLoadOnCompletion(layers[anchor].path, details)


def _dates(title: str | None) -> tuple[str, str]:
    """(' 2023-01-05', ' 2023-08-05') from a pair title, for the layer names; blanks without dates."""
    if not title or "→" not in title:
        return "", ""
    pre, post = title.split("→")
    return f" {pre.split()[-1]}", f" {post.strip()}"
