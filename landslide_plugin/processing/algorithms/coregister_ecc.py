"""Co-register the post-event stack onto the pre-event stack (OpenCV ECC, coarse to fine)."""
from __future__ import annotations

from qgis.core import (
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
)

from ...core import defaults
from ..base import LandslideAlgorithm
from ..compat import NUMBER_DOUBLE, NUMBER_INTEGER

MOTIONS = ("translation", "euclidean", "affine")
RESAMPLINGS = ("cubic", "bilinear")


class CoregisterEccAlgorithm(LandslideAlgorithm):
    NAME = "coregister_ecc"
    DISPLAY_NAME = "Co-register images (ECC)"
    GROUP = "alignment"
    HELP = (
        "Aligns the post-event image to the pre-event image before any per-pixel comparison. The shift is "
        "estimated with OpenCV's enhanced correlation coefficient (ECC) on one band (SWIR-1 B11 by "
        "default: it changes less with the season than NIR), standardised or as its gradient magnitude, "
        "coarse to fine over an image pyramid, with clouds, shadows, water, snow and no data (from both "
        "dates' SCL) and an optional mask left out. "
        "Every band of the post image, and its SCL (nearest neighbour), is then resampled onto the pre "
        "image's grid; pixels that come from outside the image or from no data are no data (NaN).\n\n"
        "Shift sign: a feature at pre pixel (x, y) was found at post pixel (x + SHIFT_X, y + SHIFT_Y). "
        "If ECC does not converge, the correlation is too low or the shift exceeds the maximum, the "
        "algorithm stops with an error instead of passing an unaligned image on."
    )

    REFERENCE = "REFERENCE"
    INPUT = "INPUT"
    REFERENCE_SCL = "REFERENCE_SCL"
    INPUT_SCL = "INPUT_SCL"
    BAND = "BAND"
    BAND_NUMBER = "BAND_NUMBER"
    MOTION = "MOTION"
    USE_GRADIENT = "USE_GRADIENT"
    MASK = "MASK"
    MAX_SHIFT = "MAX_SHIFT"
    MIN_CORRELATION = "MIN_CORRELATION"
    RESAMPLING = "RESAMPLING"
    OUTPUT = "OUTPUT"
    OUTPUT_SCL = "OUTPUT_SCL"
    SHIFT_X = "SHIFT_X"
    SHIFT_Y = "SHIFT_Y"
    SHIFT_M = "SHIFT_M"
    CORRELATION = "CORRELATION"

    def initAlgorithm(self, config=None):  # noqa: N802
        self.add(QgsProcessingParameterRasterLayer(self.REFERENCE, "Reference image (pre-event stack)"),
                 "The image whose grid the output is on, usually the pre-event reflectance stack.")
        self.add(QgsProcessingParameterRasterLayer(self.INPUT, "Image to align (post-event stack)"),
                 "The image to align, usually the post-event reflectance stack. All its bands are aligned. "
                 "If it is on another grid (CRS, resolution, extent), it is first resampled onto the "
                 "reference grid (the log says so).")
        self.add(QgsProcessingParameterRasterLayer(self.REFERENCE_SCL, "Scene classification of the reference",
                                                   optional=True),
                 "Sentinel-2 SCL of the reference date. Pixels of classes 0, 1, 3, 6, 8, 9, 10, 11 "
                 "(no data, defective, cloud shadow, water, clouds, cirrus, snow) are left out of the estimate.")
        self.add(QgsProcessingParameterRasterLayer(self.INPUT_SCL, "Scene classification of the image to align",
                                                   optional=True),
                 "Sentinel-2 SCL of the date to align: masks the estimate like the reference SCL, and is "
                 "itself aligned (nearest neighbour) when an aligned SCL output is set.")
        self.add(QgsProcessingParameterEnum(self.BAND, "Band to match", options=list(defaults.STACK_BANDS),
                                            defaultValue=defaults.ALIGN_BAND, usesStaticStrings=True),
                 "Band description used for the estimate, the same in both images (SWIR-1 B11 by default: it "
                 "changes less between a winter and a summer date than the narrow NIR B8A).")
        band_number = QgsProcessingParameterNumber(
            self.BAND_NUMBER, "Band number (when the rasters have no band descriptions)",
            type=NUMBER_INTEGER, defaultValue=0, minValue=0)
        self.add(band_number, "1-based band number used when the band cannot be found by description; "
                              "0 = find the band by its description only.", advanced=True)
        self.add(QgsProcessingParameterEnum(self.MOTION, "Motion model", options=list(MOTIONS),
                                            defaultValue=MOTIONS.index(defaults.ALIGN_MOTION)),
                 "Translation (recommended within one tile), Euclidean (adds a rotation) or affine "
                 "(adds scale and shear; tends to over-fit).")
        self.add(QgsProcessingParameterBoolean(self.USE_GRADIENT, "Match gradient magnitude",
                                               defaultValue=defaults.ALIGN_GRADIENT),
                 "Match the band's gradient magnitude (edges) rather than its standardised brightness: robust "
                 "when the two dates are from different seasons. Turn off for same-season pairs or very small "
                 "images with many masked pixels.")
        self.add(QgsProcessingParameterRasterLayer(self.MASK, "Mask of pixels to leave out", optional=True),
                 "Optional raster on the reference area: pixels with a value other than 0 (and not no data) "
                 "are left out of the estimate, for example large changes such as the landslides themselves.")
        self.add(QgsProcessingParameterNumber(self.MAX_SHIFT, "Maximum shift (pixels)",
                                              type=NUMBER_DOUBLE, defaultValue=defaults.MAX_SHIFT_PX,
                                              minValue=0.1, maxValue=200.0),
                 "Largest plausible displacement in pixels; a larger estimate is rejected as a false match. "
                 "It also sets the number of pyramid levels (larger shifts need coarser levels).", decimals=1)
        self.add(QgsProcessingParameterNumber(self.MIN_CORRELATION, "Minimum correlation",
                                              type=NUMBER_DOUBLE, defaultValue=defaults.MIN_CORRELATION,
                                              minValue=-1.0, maxValue=1.0),
                 "Estimates whose enhanced correlation coefficient is below this value are rejected.",
                 advanced=True)
        self.add(QgsProcessingParameterEnum(self.RESAMPLING, "Resampling", options=list(RESAMPLINGS),
                                            defaultValue=RESAMPLINGS.index(defaults.ALIGN_RESAMPLING)),
                 "How the aligned image is interpolated. Cubic keeps edges sharp; bilinear at a half-pixel shift "
                 "averages two neighbours and blurs the aligned image alone, so every sharp edge then reads as "
                 "change around it.", advanced=True)
        self.add(QgsProcessingParameterRasterDestination(self.OUTPUT, "Aligned image"),
                 "Every band of the image to align, float32 reflectance on the reference grid; no data is NaN.")
        self.add(QgsProcessingParameterRasterDestination(self.OUTPUT_SCL, "Aligned scene classification",
                                                         optional=True, createByDefault=False),
                 "The SCL of the image to align, aligned with nearest neighbour (0 = no data outside).")
        self.add_output(QgsProcessingOutputNumber(self.SHIFT_X, "Shift x (pixels)"))
        self.add_output(QgsProcessingOutputNumber(self.SHIFT_Y, "Shift y (pixels)"))
        self.add_output(QgsProcessingOutputNumber(self.SHIFT_M, "Shift length (map units)"))
        self.add_output(QgsProcessingOutputNumber(self.CORRELATION, "ECC correlation"))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        self.require_dependencies()
        from ...core import alignment, rasters

        reference = self.raster_path(parameters, self.REFERENCE, context)
        moving = self.raster_path(parameters, self.INPUT, context)
        reference_scl = self.optional_raster_path(parameters, self.REFERENCE_SCL, context)
        moving_scl = self.optional_raster_path(parameters, self.INPUT_SCL, context)
        mask = self.optional_raster_path(parameters, self.MASK, context)
        band = self.parameterAsEnumString(parameters, self.BAND, context) or defaults.ALIGN_BAND
        band_number = self.parameterAsInt(parameters, self.BAND_NUMBER, context) or None
        motion = MOTIONS[self.parameterAsEnum(parameters, self.MOTION, context)]
        output = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        output_scl = self.parameterAsOutputLayer(parameters, self.OUTPUT_SCL, context) or None
        if output_scl and not moving_scl:
            raise QgsProcessingException(
                "An aligned scene classification was asked for, but no scene classification of the image to "
                "align was given (parameter INPUT_SCL).")
        try:
            result = alignment.coregister_stack(
                reference, moving, output, moving_scl_path=moving_scl, out_scl_path=output_scl,
                reference_scl_path=reference_scl, mask_path=mask, band=band, band_number=band_number,
                motion=motion, use_gradient=self.parameterAsBool(parameters, self.USE_GRADIENT, context),
                max_shift_px=self.parameterAsDouble(parameters, self.MAX_SHIFT, context),
                min_correlation=self.parameterAsDouble(parameters, self.MIN_CORRELATION, context),
                resampling=RESAMPLINGS[self.parameterAsEnum(parameters, self.RESAMPLING, context)],
                progress=feedback.setProgress, is_cancelled=feedback.isCanceled)
        except rasters.Cancelled:
            feedback.reportError("Co-registration cancelled; no output was written.")
            return {}
        except (ValueError, FileNotFoundError) as exc:
            raise QgsProcessingException(str(exc)) from exc
        for message in result.messages:
            feedback.pushInfo(message)
        dx, dy = result.shift_px
        feedback.pushInfo(f"ECC {motion} transform (reference pixel -> image to align): {result.describe_matrix()}")
        feedback.pushInfo(f"shift x {dx:+.3f} px, y {dy:+.3f} px ({result.shift_m:.2f} map units), "
                          f"correlation {result.correlation:.3f}, {result.levels} pyramid level(s), "
                          f"{100 * result.valid_fraction:.1f} % of the pixels used")
        if not result.converged:
            feedback.pushWarning("ECC had not fully converged; check the aligned image.")
        outputs = {self.OUTPUT: output, self.SHIFT_X: dx, self.SHIFT_Y: dy, self.SHIFT_M: result.shift_m,
                   self.CORRELATION: result.correlation}
        if output_scl:
            outputs[self.OUTPUT_SCL] = output_scl
        return outputs
