"""Landslide polygons: clean a landslide mask and turn it into polygons with per-scar statistics."""
from __future__ import annotations

from qgis.core import (
    QgsFeature,
    QgsField,
    QgsFields,
    QgsGeometry,
    QgsPointXY,
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
)

from ...core import defaults
from ..base import LandslideAlgorithm, add_band_parameters, band_numbers
from ..compat import (
    FAST_INSERT,
    FIELD_DOUBLE,
    FIELD_INT,
    NUMBER_DOUBLE,
    NUMBER_INTEGER,
    SOURCE_VECTOR_POLYGON,
    WKB_MULTIPOLYGON,
)

#: Default minimum mapping unit: 1600 m² = 4 pixels at 20 m (16 at 10 m). Smaller groups are single
#: mixed pixels at field or shadow edges more often than scars; the smallest slides that 10-20 m
#: change detection finds reliably are about 0.1-0.2 ha.
DEFAULT_MIN_AREA_M2 = defaults.MIN_AREA_M2


def _geometry(geojson: dict) -> QgsGeometry:
    def ring(coords):
        return [QgsPointXY(x, y) for x, y in coords]

    if geojson["type"] == "Polygon":
        geometry = QgsGeometry.fromPolygonXY([ring(r) for r in geojson["coordinates"]])
    else:
        geometry = QgsGeometry.fromMultiPolygonXY([[ring(r) for r in poly] for poly in geojson["coordinates"]])
    if not geometry.convertToMultiType():  # True also when it already is one
        raise QgsProcessingException(f"a landslide outline could not be made a MultiPolygon: {geometry.asWkt(2)[:80]}")
    return geometry


class LandslidePolygonsAlgorithm(LandslideAlgorithm):
    NAME = "landslide_polygons"
    DISPLAY_NAME = "Landslide polygons"
    GROUP = "detection"
    HELP = (
        "Turns a landslide mask (1 landslide, 0 not, 255 no data; e.g. the output of Cluster landslides) into "
        "landslide polygons.<br><br>"
        "The mask is first cleaned: a morphological opening of the given radius removes one-pixel lines and "
        "specks (co-registration edges, field borders), then groups of 8-connected pixels smaller than the "
        "minimum area are dropped. Each remaining group becomes one feature (a MultiPolygon when pixels touch "
        "only at a corner) with its area, number of pixels and, when the sources are given, its mean NDVI "
        "change (from the pre- and post-event reflectance stacks), mean slope (from a DEM) and mean "
        "landslide probability.<br><br>"
        "The mask must be in a projected CRS (metres), as Sentinel-2 tiles are; every optional raster must be on "
        "the mask's grid, except the DEM, which is resampled onto it.")

    INPUT = "INPUT"
    PRE = "PRE"
    POST = "POST"
    DEM = "DEM"
    PROBABILITY = "PROBABILITY"
    OPENING = "OPENING"
    MIN_AREA = "MIN_AREA"
    OUTPUT = "OUTPUT"
    POLYGON_COUNT = "POLYGON_COUNT"

    def initAlgorithm(self, config=None):  # noqa: N802
        self.add(QgsProcessingParameterRasterLayer(self.INPUT, "Landslide mask"),
                 "uint8 raster: 1 landslide, 0 not landslide, 255 no data (the Landslide mask output of Cluster "
                 "landslides or of the NDVI-change threshold).")
        self.add(QgsProcessingParameterRasterLayer(self.PRE, "Pre-event reflectance stack (for mean dNDVI)",
                                                   optional=True),
                 "With the post-event stack: each polygon gets its mean NDVI change (post - pre). Bands B04 and "
                 "B8A, on the mask's grid.")
        self.add(QgsProcessingParameterRasterLayer(self.POST, "Post-event reflectance stack (for mean dNDVI)",
                                                   optional=True),
                 "The co-registered post-event stack used for the mask.")
        self.add(QgsProcessingParameterRasterLayer(self.DEM, "Digital elevation model (for mean slope)",
                                                   optional=True),
                 "Elevation in metres, any CRS and resolution: each polygon gets its mean slope in degrees.")
        self.add(QgsProcessingParameterRasterLayer(self.PROBABILITY, "Landslide probability (for mean probability)",
                                                   optional=True),
                 "The Gaussian-mixture probability layer of Cluster landslides: each polygon gets its mean.")
        self.add(QgsProcessingParameterNumber(self.OPENING, "Opening radius (pixels)",
                                              type=NUMBER_INTEGER, defaultValue=defaults.OPENING_PX,
                                              minValue=0, maxValue=10),
                 "Radius of the morphological opening (elliptical element). 1 removes lines one pixel wide; "
                 "0 disables the opening.")
        self.add(QgsProcessingParameterNumber(self.MIN_AREA, "Minimum area (m²)",
                                              type=NUMBER_DOUBLE,
                                              defaultValue=DEFAULT_MIN_AREA_M2, minValue=0.0),
                 "Minimum mapping unit: groups of pixels smaller than this are dropped. 1600 m² is 4 pixels at "
                 "20 m; below that a change is usually a mixed edge pixel rather than a scar.", decimals=0)
        add_band_parameters(self, "the stacks")
        self.add(QgsProcessingParameterFeatureSink(self.OUTPUT, "Landslide polygons",
                                                   type=SOURCE_VECTOR_POLYGON),
                 "Polygons with id, area_m2, n_pixels, mean_dndvi, mean_slope and mean_prob (empty where the "
                 "source was not given).")
        self.add_output(QgsProcessingOutputNumber(self.POLYGON_COUNT, "Number of polygons"))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        self.require_dependencies()
        from ...core import polygons
        from ...core.rasters import Cancelled

        mask_layer = self.parameterAsRasterLayer(parameters, self.INPUT, context)
        mask_path = self.raster_path(parameters, self.INPUT, context)
        pre = self.optional_raster_path(parameters, self.PRE, context)
        post = self.optional_raster_path(parameters, self.POST, context)
        if (pre is None) != (post is None):
            raise QgsProcessingException("the mean dNDVI needs both the pre-event and the post-event stack; give "
                                         "both or neither")
        opening = self.parameterAsInt(parameters, self.OPENING, context)
        min_area = self.parameterAsDouble(parameters, self.MIN_AREA, context)
        try:
            shapes = polygons.mask_to_polygons(
                mask_path, pre_stack_path=pre, post_stack_path=post,
                band_numbers=band_numbers(self, parameters, context),
                dem_path=self.optional_raster_path(parameters, self.DEM, context),
                probability_path=self.optional_raster_path(parameters, self.PROBABILITY, context),
                opening_px=opening, min_area_m2=min_area or None,
                progress=lambda p: feedback.setProgress(0.9 * p), is_cancelled=feedback.isCanceled)
        except Cancelled:
            raise QgsProcessingException("Cancelled by the user; no output was written.") from None
        except (ValueError, FileNotFoundError) as exc:
            raise QgsProcessingException(str(exc)) from exc

        fields = QgsFields()
        fields.append(QgsField("id", FIELD_INT))
        fields.append(QgsField("area_m2", FIELD_DOUBLE))
        fields.append(QgsField("n_pixels", FIELD_INT))
        for name in ("mean_dndvi", "mean_slope", "mean_prob"):
            fields.append(QgsField(name, FIELD_DOUBLE))
        sink, dest_id = self.parameterAsSink(parameters, self.OUTPUT, context, fields,
                                             WKB_MULTIPOLYGON, mask_layer.crs())
        if sink is None:
            raise QgsProcessingException(self.invalidSinkError(parameters, self.OUTPUT))
        for shape in shapes:
            if feedback.isCanceled():
                break
            feature = QgsFeature(fields)
            feature.setGeometry(_geometry(shape.geometry))
            props = shape.properties()
            feature.setAttributes([props[f.name()] for f in fields])
            if not sink.addFeature(feature, FAST_INSERT):
                raise QgsProcessingException(self.writeFeatureError(sink, parameters, self.OUTPUT))
        feedback.setProgress(100)
        total = sum(s.area_m2 for s in shapes)
        feedback.pushInfo(f"{len(shapes)} landslide polygons, {total / 10000:.2f} ha in total (opening {opening} px, "
                          f"minimum area {min_area:g} m²)")
        return {self.OUTPUT: dest_id, self.POLYGON_COUNT: len(shapes)}
