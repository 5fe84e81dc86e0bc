"""Composite Sentinel-2 L2A products: a per-pixel composite of the clear observations of one period."""
from __future__ import annotations

from qgis.core import (
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterExtent,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterRasterDestination,
)

from ..base import LandslideAlgorithm
from ..compat import SOURCE_FILE
from ..styles import load_styled, style_scl, style_true_colour
from .prepare_product import BAND_OPTIONS, DEFAULT_BAND_INDEXES

#: Composite methods as the core spells them (``composite.METHODS``; kept here so the algorithm loads without numpy).
METHOD_OPTIONS = ("median", "greenest")
METHOD_LABELS = ("Median of the clear observations", "Greenest pixel (highest NDVI among the clear observations)")


class CompositeProductsAlgorithm(LandslideAlgorithm):
    NAME = "composite_s2_l2a"
    DISPLAY_NAME = "Composite Sentinel-2 L2A products"
    GROUP = "data"
    REQUIRES = ("numpy", "rasterio")
    HELP = (
        "Makes one image of a period from several Sentinel-2 Level-2A products, per pixel from the clear "
        "observations only, so that a cloud or a bad pixel on one date does not reach the map: the same "
        "reflectance stack and SCL as \"Prepare Sentinel-2 L2A product\" makes, plus a count of the clear "
        "observations of each pixel.<br><br>"
        "Products sensed on the same day are tiles of one date and are mosaicked; products of different days are "
        "dates of the period and are composited (told apart by the products' own metadata, not their file names). "
        "A pixel's observation is clear when its SCL is vegetation, bare soil, water, unclassified or (unless "
        "excluded) dark area / topographic shadow, and every band has data.<br><br>"
        "<b>Median</b>: per band, the median of the clear observations (removes clouds and single-date noise; "
        "good for both periods). <b>Greenest pixel</b>: the clear observation with the highest NDVI, every band "
        "from that date (for the pre-event period: vegetation at its fullest). The SCL output holds the class of "
        "the observation used (greenest) or the most frequent clear class (median), 0 where no observation was "
        "clear.<br><br>"
        "Feed the composites of the pre-event and the post-event periods to the co-registration, the detection "
        "algorithms or \"Relative NDVI difference (rdNDVI)\". Memory stays bounded: the dates are read block by "
        "block, never as whole stacks.")

    INPUT = "INPUT"
    METHOD = "METHOD"
    EXTENT = "EXTENT"
    BANDS = "BANDS"
    EXCLUDE_DARK = "EXCLUDE_DARK"
    OUTPUT = "OUTPUT"
    OUTPUT_SCL = "OUTPUT_SCL"
    OUTPUT_COUNT = "OUTPUT_COUNT"
    DATES = "DATES"
    DATE_COUNT = "DATE_COUNT"
    OBSERVED_PERCENT = "OBSERVED_PERCENT"

    def initAlgorithm(self, config=None):  # noqa: N802
        self.add(QgsProcessingParameterMultipleLayers(self.INPUT, "Sentinel-2 L2A products of the period",
                                                      SOURCE_FILE),
                 "The products (.zip, .SAFE folder or MTD_MSIL2A.xml) of every date of the period, and of every tile "
                 "of each date, e.g. the output of \"Download Sentinel-2 L2A\".")
        self.add(QgsProcessingParameterEnum(self.METHOD, "Composite", options=list(METHOD_LABELS), defaultValue=0),
                 "Median of the clear observations, or the greenest clear observation (highest NDVI).")
        self.add(QgsProcessingParameterExtent(self.EXTENT, "Area of interest", optional=True),
                 "Crop to this extent (any CRS), snapped outward to the 20 m pixels. Empty: whole tiles.")
        self.add(QgsProcessingParameterEnum(self.BANDS, "Bands", options=list(BAND_OPTIONS), allowMultiple=True,
                                            defaultValue=DEFAULT_BAND_INDEXES),
                 "Sentinel-2 bands of the composite, in spectral order (the greenest pixel needs B04 and B8A).",
                 advanced=True)
        self.add(QgsProcessingParameterBoolean(self.EXCLUDE_DARK, "Treat SCL dark areas as not clear",
                                               defaultValue=False),
                 "Leave out observations classed 2 (dark area / topographic shadow). Off by default: steep shaded "
                 "slopes are where landslides are.", advanced=True)
        self.add(QgsProcessingParameterRasterDestination(self.OUTPUT, "Composite reflectance stack"),
                 "Float32 GeoTIFF, one band per Sentinel-2 band (described B02, ...), NaN where no observation was "
                 "clear; tags COMPOSITE_DATES and COMPOSITE_METHOD.")
        self.add(QgsProcessingParameterRasterDestination(self.OUTPUT_SCL, "Composite scene classification"),
                 "Uint8 SCL on the same grid, 0 where no observation was clear.")
        self.add(QgsProcessingParameterRasterDestination(self.OUTPUT_COUNT, "Clear observations per pixel"),
                 "Uint8 GeoTIFF (band CLEAR_COUNT): how many dates were clear at each pixel.")
        self.add_output(QgsProcessingOutputString(self.DATES, "Dates composited"))
        self.add_output(QgsProcessingOutputNumber(self.DATE_COUNT, "Number of dates"))
        self.add_output(QgsProcessingOutputNumber(self.OBSERVED_PERCENT, "Pixels with a clear observation (%)"))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        self.require_dependencies()
        from ...core import composite
        from ...core.rasters import Cancelled

        sources = self.parameterAsFileList(parameters, self.INPUT, context)
        if not sources:
            raise QgsProcessingException("no Sentinel-2 product given: choose the products of every date of the "
                                         "period (.zip, .SAFE folder or MTD_MSIL2A.xml)")
        method = METHOD_OPTIONS[self.parameterAsEnum(parameters, self.METHOD, context)]
        bands = tuple(BAND_OPTIONS[i] for i in sorted(set(self.parameterAsEnums(parameters, self.BANDS, context))))
        if not bands:
            raise QgsProcessingException(f"no band selected; choose among {', '.join(BAND_OPTIONS)}")
        aoi, aoi_crs = self.extent_as_wkt(parameters, self.EXTENT, context)
        stack_path = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        scl_path = self.parameterAsOutputLayer(parameters, self.OUTPUT_SCL, context)
        count_path = self.parameterAsOutputLayer(parameters, self.OUTPUT_COUNT, context)
        try:
            for day, paths in composite.group_by_date(sources).items():
                feedback.pushInfo(f"{day}: {len(paths)} tile(s)" + (" (mosaicked)" if len(paths) > 1 else ""))
            result = composite.composite_l2a(
                sources, stack_path, scl_path, count_path, method=method, bands=bands, aoi=aoi, aoi_crs=aoi_crs,
                exclude_dark=self.parameterAsBoolean(parameters, self.EXCLUDE_DARK, context),
                progress=feedback.setProgress, is_cancelled=feedback.isCanceled)
        except Cancelled:
            raise QgsProcessingException("Cancelled by the user; no output was written.") from None
        except (ValueError, FileNotFoundError) as exc:
            raise QgsProcessingException(str(exc)) from exc
        for note in result.notes:
            feedback.pushWarning(note)
        feedback.pushInfo(
            f"{method} composite of {len(result.dates)} date(s) ({', '.join(result.dates)}): "
            f"{100 * result.observed_fraction:.1f} % of the pixels have a clear observation, "
            f"{result.mean_count:.2f} on average.")
        load_styled(context, stack_path, "", style_true_colour)
        load_styled(context, scl_path, "", style_scl)
        return {self.OUTPUT: stack_path, self.OUTPUT_SCL: scl_path, self.OUTPUT_COUNT: count_path,
                self.DATES: ",".join(result.dates), self.DATE_COUNT: len(result.dates),
                self.OBSERVED_PERCENT: round(100 * result.observed_fraction, 2)}
