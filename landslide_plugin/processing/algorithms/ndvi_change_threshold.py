"""NDVI change threshold: the reference study's baseline mask (NDVI dropped by more than 0.2), with masks."""
from __future__ import annotations

from qgis.core import (
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
)

from ...core import defaults
from .. import styles
from ..base import LandslideAlgorithm, add_band_parameters, band_numbers, report_band_choice
from ..compat import NUMBER_DOUBLE


class NdviChangeThresholdAlgorithm(LandslideAlgorithm):
    NAME = "ndvi_change_threshold"
    DISPLAY_NAME = "NDVI change threshold"
    GROUP = "detection"
    REQUIRES = ("numpy", "rasterio")
    HELP = (
        "Flags pixels whose NDVI dropped by more than a threshold between a co-registered pre-event and "
        "post-event Sentinel-2 stack (dNDVI = NDVI<sub>post</sub> − NDVI<sub>pre</sub> &lt; threshold, default "
        "−0.2), the baseline of the reference workflow.<br><br>"
        "A baseline, not ground truth: on its own it also flags harvested fields, seasonal drying and "
        "reservoir shores. The masks remove most of that: SCL (clouds, shadows, snow, no data on either date; "
        "give both SCL rasters), water (SCL 6 and NDWI &gt; threshold on either date), flat terrain (with a DEM, "
        "slope below the minimum, but for the runout and deposits below a steep scar), land-cover classes (e.g. "
        "ESA WorldCover 40 cropland) and pixels that were not vegetated before.<br><br>"
        "Output (uint8): 1 landslide, 0 not landslide or ruled out by a mask (water, slope, land cover, not "
        "vegetated), 255 no data (no reflectance, SCL cloud/shadow/snow/defective, outside the DEM). The log "
        "lists how many pixels each mask removed.")

    PRE = "PRE"
    POST = "POST"
    THRESHOLD = "THRESHOLD"
    PRE_SCL = "PRE_SCL"
    POST_SCL = "POST_SCL"
    EXCLUDE_WATER = "EXCLUDE_WATER"
    NDWI_THRESHOLD = "NDWI_THRESHOLD"
    EXCLUDE_DARK = "EXCLUDE_DARK"
    DEM = "DEM"
    MIN_SLOPE = "MIN_SLOPE"
    EXCLUSION = "EXCLUSION"
    EXCLUSION_CLASSES = "EXCLUSION_CLASSES"
    MIN_NDVI_PRE = "MIN_NDVI_PRE"
    OUTPUT = "OUTPUT"
    LANDSLIDE_PIXELS = "LANDSLIDE_PIXELS"
    LANDSLIDE_AREA_M2 = "LANDSLIDE_AREA_M2"

    def initAlgorithm(self, config=None):  # noqa: N802
        self.add(QgsProcessingParameterRasterLayer(self.PRE, "Pre-event reflectance stack"),
                 "Sentinel-2 L2A reflectance before the event (bands described B04 and B8A at least; B03 for the "
                 "NDWI water rule).")
        self.add(QgsProcessingParameterRasterLayer(self.POST, "Post-event reflectance stack (co-registered)"),
                 "Sentinel-2 L2A reflectance after the event, co-registered to and on the same grid as the "
                 "pre-event stack.")
        self.add(QgsProcessingParameterNumber(self.THRESHOLD, "dNDVI threshold",
                                              type=NUMBER_DOUBLE, defaultValue=defaults.THRESHOLD,
                                              minValue=-1.99, maxValue=-0.01),
                 "Pixels whose NDVI change (post − pre) is below this negative value are flagged: −0.2 means NDVI "
                 "fell by more than 0.2.")
        self.add(QgsProcessingParameterRasterLayer(self.PRE_SCL, "Pre-event scene classification (SCL)",
                                                   optional=True),
                 "Sentinel-2 SCL of the pre-event date (any grid; resampled by nearest neighbour): no data, "
                 "defective, cloud shadow, cloud, cirrus and snow pixels become no data; water is ruled out.")
        self.add(QgsProcessingParameterRasterLayer(self.POST_SCL, "Post-event scene classification (SCL)",
                                                   optional=True),
                 "Sentinel-2 SCL of the post-event date, co-registered with the post-event stack.")
        self.add_mask_parameters()
        self.add(QgsProcessingParameterNumber(self.NDWI_THRESHOLD, "NDWI water threshold",
                                              type=NUMBER_DOUBLE, defaultValue=defaults.NDWI_WATER_THRESHOLD,
                                              minValue=-1.0, maxValue=1.0),
                 "NDWI (McFeeters) above which a pixel counts as water on either date (0 is the usual limit).",
                 advanced=True)
        add_band_parameters(self, "a stack")
        self.add(QgsProcessingParameterRasterDestination(self.OUTPUT, "Landslide mask (NDVI change)"),
                 "uint8: 1 landslide, 0 not landslide or ruled out by a mask, 255 no data.")
        self.add_output(QgsProcessingOutputNumber(self.LANDSLIDE_PIXELS, "Landslide pixels"))
        self.add_output(QgsProcessingOutputNumber(self.LANDSLIDE_AREA_M2, "Landslide area (m²)"))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        self.require_dependencies()
        from ...core import detection, indices, masks, rasters
        from ...core.rasters import Cancelled

        pre = self.raster_path(parameters, self.PRE, context)
        post = self.raster_path(parameters, self.POST, context)
        scl_pre = self.optional_raster_path(parameters, self.PRE_SCL, context)
        scl_post = self.optional_raster_path(parameters, self.POST_SCL, context)
        threshold = self.parameterAsDouble(parameters, self.THRESHOLD, context)
        options = self.mask_options(
            parameters, context,
            ndwi_water_threshold=self.parameterAsDouble(parameters, self.NDWI_THRESHOLD, context))
        numbers = band_numbers(self, parameters, context)
        out_path = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)

        feedback.pushInfo(f"dNDVI < {threshold:g}; masks: {options.describe()}"
                          + ("" if scl_pre or scl_post else " (no SCL given: clouds are not removed)"))
        try:
            needed = tuple(b for b in indices.REQUIRED_BANDS
                           if b in set(indices.INDEX_BANDS["NDVI"]) | set(masks.bands_for_mask(options)))
            for stack in (pre, post):
                report_band_choice(feedback, stack, needed, numbers)
            counts = detection.write_threshold_mask(
                pre, post, out_path, threshold=threshold, scl_pre_path=scl_pre, scl_post_path=scl_post,
                options=options, band_numbers=numbers, progress=feedback.setProgress,
                is_cancelled=feedback.isCanceled)
            area = counts["landslide"] * rasters.Grid.from_path(out_path).pixel_area_m2()
        except Cancelled:
            raise QgsProcessingException("Cancelled by the user; no output was written.") from None
        except (ValueError, FileNotFoundError) as exc:
            raise QgsProcessingException(str(exc)) from exc

        removed = ", ".join(f"{reason.replace('_', ' ')} {counts['removed_' + reason]:,} px"
                            for reason in masks.REASONS if counts["removed_" + reason])
        feedback.pushInfo(f"Pixels: {counts['total']:,} in total; removed: {removed or 'none'}")
        feedback.pushInfo(f"Landslide: {counts['landslide']:,} px ({area / 10_000:,.1f} ha); not landslide: "
                          f"{counts['not_landslide']:,} px; no data: {counts['no_data']:,} px")
        styles.load_styled(context, out_path, f"Landslide mask (dNDVI < {threshold:g})", styles.style_landslide_mask)
        return {self.OUTPUT: out_path, self.LANDSLIDE_PIXELS: counts["landslide"], self.LANDSLIDE_AREA_M2: area}
