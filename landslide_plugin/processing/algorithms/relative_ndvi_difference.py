"""Relative NDVI difference (rdNDVI) of a co-registered pair, as a styled layer to look at and threshold."""
from __future__ import annotations

from qgis.core import (
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
)

from .. import styles
from ..base import LandslideAlgorithm, add_band_parameters, band_numbers, report_band_choice
from ..compat import NUMBER_DOUBLE


class RelativeNdviDifferenceAlgorithm(LandslideAlgorithm):
    NAME = "relative_ndvi_difference"
    DISPLAY_NAME = "Relative NDVI difference (rdNDVI)"
    GROUP = "detection"
    REQUIRES = ("numpy", "rasterio")
    HELP = (
        "Computes the relative NDVI difference of a co-registered pre-event / post-event pair, "
        "rdNDVI = (NDVI<sub>post</sub> − NDVI<sub>pre</sub>) / √(NDVI<sub>pre</sub> + NDVI<sub>post</sub>), the "
        "change measure of rapid-mapping tools such as HazMapper, as a layer styled red (vegetation lost) to green "
        "(vegetation gained), so a map can be compared with what those tools show.<br><br>"
        "Dividing by the square root of the NDVI sum weighs a loss of dense vegetation more than the same "
        "difference on sparse cover. rdNDVI is defined where NDVI<sub>pre</sub> + NDVI<sub>post</sub> &gt; 0 (no "
        "data elsewhere, e.g. on water) and bounded to ±√2. With the SCL rasters, pixels under cloud, cloud "
        "shadow or snow or without data on either date are no data.<br><br>"
        "Optionally flags pixels whose rdNDVI is below a threshold as a landslide mask (1 below, 0 not, 255 no "
        "data); or threshold the layer yourself in its symbology. The input images can be single dates or "
        "composites (\"Composite Sentinel-2 L2A products\").")

    PRE = "PRE"
    POST = "POST"
    PRE_SCL = "PRE_SCL"
    POST_SCL = "POST_SCL"
    EXCLUDE_DARK = "EXCLUDE_DARK"
    THRESHOLD = "THRESHOLD"
    OUTPUT = "OUTPUT"
    OUTPUT_MASK = "OUTPUT_MASK"
    VALID_PIXELS = "VALID_PIXELS"
    BELOW_PIXELS = "BELOW_PIXELS"

    def initAlgorithm(self, config=None):  # noqa: N802
        self.add(QgsProcessingParameterRasterLayer(self.PRE, "Pre-event reflectance stack"),
                 "Sentinel-2 L2A reflectance before the event (bands described B04 and B8A).")
        self.add(QgsProcessingParameterRasterLayer(self.POST, "Post-event reflectance stack (co-registered)"),
                 "Sentinel-2 L2A reflectance after the event, on the same grid as the pre-event stack.")
        self.add(QgsProcessingParameterRasterLayer(self.PRE_SCL, "Pre-event scene classification", optional=True),
                 "The SCL of the pre-event image (any grid; nearest neighbour): cloud, shadow, snow and no data "
                 "become no data.")
        self.add(QgsProcessingParameterRasterLayer(self.POST_SCL, "Post-event scene classification", optional=True),
                 "The SCL of the post-event image (e.g. the co-registration's aligned SCL).")
        self.add(QgsProcessingParameterBoolean(self.EXCLUDE_DARK, "Exclude SCL dark areas", defaultValue=False),
                 "Also treat SCL class 2 (dark area / topographic shadow) as no data. Off by default: steep shaded "
                 "slopes are where landslides are.", advanced=True)
        self.add(QgsProcessingParameterNumber(self.THRESHOLD, "Threshold for the mask", type=NUMBER_DOUBLE,
                                              optional=True, minValue=-1.5, maxValue=1.5),
                 "With a mask output: pixels whose rdNDVI is below this value are flagged (e.g. -0.2). Empty: no "
                 "mask.")
        self.add(QgsProcessingParameterRasterDestination(self.OUTPUT, "rdNDVI"),
                 "Float32 GeoTIFF, band rdNDVI, NaN = no data; loaded with the red-white-green rdNDVI ramp.")
        self.add(QgsProcessingParameterRasterDestination(self.OUTPUT_MASK, "rdNDVI mask", optional=True,
                                                         createByDefault=False),
                 "Uint8 GeoTIFF: 1 where rdNDVI is below the threshold, 0 elsewhere, 255 no data.")
        add_band_parameters(self)
        self.add_output(QgsProcessingOutputNumber(self.VALID_PIXELS, "Pixels with an rdNDVI"))
        self.add_output(QgsProcessingOutputNumber(self.BELOW_PIXELS, "Pixels below the threshold"))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        self.require_dependencies()
        from ...core import indices
        from ...core.rasters import Cancelled

        pre = self.raster_path(parameters, self.PRE, context)
        post = self.raster_path(parameters, self.POST, context)
        numbers = band_numbers(self, parameters, context)
        threshold = None
        if parameters.get(self.THRESHOLD) not in (None, ""):
            threshold = self.parameterAsDouble(parameters, self.THRESHOLD, context)
        out_path = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        mask_path = self.parameterAsOutputLayer(parameters, self.OUTPUT_MASK, context) or None
        if mask_path and threshold is None:
            raise QgsProcessingException("The rdNDVI mask needs a threshold: give one (e.g. -0.2) or leave the mask "
                                         "output empty.")
        try:
            for path in (pre, post):
                report_band_choice(feedback, path, indices.bands_for_indices(("NDVI",)), numbers)
            counts = indices.write_rdndvi(
                pre, post, out_path, pre_scl_path=self.optional_raster_path(parameters, self.PRE_SCL, context),
                post_scl_path=self.optional_raster_path(parameters, self.POST_SCL, context),
                exclude_dark=self.parameterAsBoolean(parameters, self.EXCLUDE_DARK, context),
                threshold=threshold, mask_path=mask_path, band_numbers=numbers,
                progress=feedback.setProgress, is_cancelled=feedback.isCanceled)
        except Cancelled:
            raise QgsProcessingException("Cancelled by the user; no output was written.") from None
        except (ValueError, FileNotFoundError) as exc:
            raise QgsProcessingException(str(exc)) from exc
        feedback.pushInfo(f"rdNDVI of {counts['valid']} pixels written to {out_path}")
        if threshold is not None:
            share = counts["below"] / counts["valid"] if counts["valid"] else 0.0
            feedback.pushInfo(f"{counts['below']} pixels ({100 * share:.2f} %) have an rdNDVI below {threshold:g}")
        styles.load_styled(context, out_path, "rdNDVI", styles.index_styler("rdNDVI"))
        results = {self.OUTPUT: out_path, self.VALID_PIXELS: counts["valid"], self.BELOW_PIXELS: counts["below"]}
        if mask_path:
            styles.load_styled(context, mask_path, f"rdNDVI < {threshold:g}", styles.style_landslide_mask)
            results[self.OUTPUT_MASK] = mask_path
        return results
