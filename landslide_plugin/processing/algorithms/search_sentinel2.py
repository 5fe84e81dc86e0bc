"""Search Sentinel-2 L2A: the Copernicus Data Space catalogue as a layer of product footprints."""
from __future__ import annotations

import datetime
import json

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsFeature,
    QgsField,
    QgsFields,
    QgsGeometry,
    QgsPointXY,
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterDateTime,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
)
from qgis.PyQt.QtCore import QDateTime

from ..base import LandslideAlgorithm, transform_geometry
from ..compat import (
    DATETIME_DATE,
    FAST_INSERT,
    FIELD_BOOL,
    FIELD_DATETIME,
    FIELD_DOUBLE,
    FIELD_INT,
    FIELD_STRING,
    NUMBER_DOUBLE,
    NUMBER_INTEGER,
    SOURCE_VECTOR_POLYGON,
    UTC,
    WKB_MULTIPOLYGON,
)

WGS84 = "EPSG:4326"
CANCELLED = "Cancelled by the user; the search was stopped."


def product_fields() -> QgsFields:
    fields = QgsFields()
    for name, kind in (("product_id", FIELD_STRING), ("name", FIELD_STRING), ("date", FIELD_DATETIME),
                       ("tile", FIELD_STRING), ("orbit", FIELD_INT), ("cloud_cover", FIELD_DOUBLE),
                       ("size_mb", FIELD_DOUBLE), ("baseline", FIELD_STRING), ("online", FIELD_BOOL)):
        fields.append(QgsField(name, kind))
    return fields


def footprint_geometry(footprint: dict | None) -> QgsGeometry:
    """A QGIS geometry from a GeoJSON Polygon/MultiPolygon footprint (lon/lat); empty if absent."""
    if not footprint:
        return QgsGeometry()

    def ring(points):
        return [QgsPointXY(float(p[0]), float(p[1])) for p in points]

    kind, coords = footprint.get("type"), footprint.get("coordinates") or []
    if kind == "Polygon":
        return QgsGeometry.fromMultiPolygonXY([[ring(r) for r in coords]])
    if kind == "MultiPolygon":
        return QgsGeometry.fromMultiPolygonXY([[ring(r) for r in polygon] for polygon in coords])
    return QgsGeometry()


class SearchSentinel2Algorithm(LandslideAlgorithm):
    NAME = "search_s2_l2a"
    DISPLAY_NAME = "Search Sentinel-2 L2A"
    GROUP = "data"
    REQUIRES = ("requests",)
    HELP = (
        "Searches the Copernicus Data Space Ecosystem catalogue for Sentinel-2 Level-2A products over an area "
        "and period, and returns their footprints as a layer (product_id, name, sensing date, tile, relative "
        "orbit, cloud cover, size, processing baseline, online). No account is needed to search; feed the "
        "layer (or a selection of it) to \"Download Sentinel-2 L2A\".<br><br>"
        "Pick a pre-event and a post-event product of the same tile, ideally from the same relative orbit "
        "(identical viewing geometry) and with little cloud over the area. The same acquisition may exist "
        "in two processing baselines (e.g. N0509 and a reprocessed N0510): with \"Keep only the newest "
        "baseline\" only the newest is listed.<br><br>"
        "The catalogue address is https://catalogue.dataspace.copernicus.eu/odata/v1 unless the environment "
        "variable LANDSLIDE_CDSE_CATALOGUE_URL names another (a mirror, or a test server).")

    EXTENT = "EXTENT"
    AOI_LAYER = "AOI_LAYER"
    START_DATE = "START_DATE"
    END_DATE = "END_DATE"
    MAX_CLOUD = "MAX_CLOUD"
    TILE = "TILE"
    RELATIVE_ORBIT = "RELATIVE_ORBIT"
    DEDUPLICATE = "DEDUPLICATE"
    OUTPUT = "OUTPUT"
    COUNT = "COUNT"

    def initAlgorithm(self, config=None):  # noqa: N802
        self.add(QgsProcessingParameterExtent(self.EXTENT, "Search extent", optional=True),
                 "Products whose footprint intersects this rectangle are listed (any CRS; it is transformed to "
                 "longitude/latitude). Give this or an area-of-interest layer.")
        self.add(QgsProcessingParameterFeatureSource(self.AOI_LAYER, "Area of interest layer",
                                                     [SOURCE_VECTOR_POLYGON], optional=True),
                 "Polygons of the area of interest (any CRS); products intersecting their union are listed. Used "
                 "instead of the extent when given. Many or complex polygons are searched by their convex hull.")
        self.add(QgsProcessingParameterDateTime(self.START_DATE, "From (sensing date)",
                                                type=DATETIME_DATE),
                 "First sensing date (UTC) to include.")
        self.add(QgsProcessingParameterDateTime(self.END_DATE, "To (sensing date, included)",
                                                type=DATETIME_DATE),
                 "Last sensing date (UTC) to include; the whole day counts.")
        self.add(QgsProcessingParameterNumber(self.MAX_CLOUD, "Maximum cloud cover (%)",
                                              type=NUMBER_DOUBLE, defaultValue=30.0,
                                              minValue=0.0, maxValue=100.0),
                 "Products with a larger cloud cover over the whole tile (the catalogue's cloudCover) are left "
                 "out. 100 lists everything.", decimals=0)
        self.add(QgsProcessingParameterString(self.TILE, "MGRS tile", optional=True),
                 "Only this Sentinel-2 tile, e.g. 37SCB or T37SCB. Empty: every tile intersecting the area.")
        self.add(QgsProcessingParameterNumber(self.RELATIVE_ORBIT, "Relative orbit", optional=True,
                                              type=NUMBER_INTEGER,
                                              minValue=1, maxValue=143),
                 "Only products of this relative orbit (1-143, the R number in the product name), so that pre- "
                 "and post-event images share their viewing geometry. Empty: any orbit.", advanced=True)
        self.add(QgsProcessingParameterBoolean(self.DEDUPLICATE, "Keep only the newest baseline",
                                               defaultValue=True),
                 "When one acquisition (tile, sensing time) is in the catalogue twice, original and reprocessed, "
                 "list only the newest processing baseline.", advanced=True)
        self.add(QgsProcessingParameterFeatureSink(self.OUTPUT, "Sentinel-2 L2A products",
                                                   SOURCE_VECTOR_POLYGON),
                 "Footprints (EPSG:4326) of the products found, oldest first, with their catalogue attributes.")
        self.add_output(QgsProcessingOutputNumber(self.COUNT, "Number of products"))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        self.require_dependencies()
        from ...core.copernicus import CdseClient, CdseError, CdseSettings, deduplicate
        from ...core.rasters import Cancelled

        aoi = self._area_of_interest(parameters, context)
        start, end = self._date(parameters, self.START_DATE, context), self._date(parameters, self.END_DATE, context)
        if end < start:
            raise QgsProcessingException(f"The period is empty: 'To' ({end}) is before 'From' ({start}).")
        tile = self.parameterAsString(parameters, self.TILE, context).strip() or None
        orbit = None
        if parameters.get(self.RELATIVE_ORBIT) not in (None, ""):
            orbit = self.parameterAsInt(parameters, self.RELATIVE_ORBIT, context)
        max_cloud = self.parameterAsDouble(parameters, self.MAX_CLOUD, context)

        try:
            settings = CdseSettings.from_env()
            feedback.pushInfo(f"Searching {settings.catalogue_url} for Sentinel-2 L2A from {start} to {end}"
                              + (f", tile {tile}" if tile else "") + (f", relative orbit {orbit}" if orbit else "")
                              + f", cloud cover up to {max_cloud:g} %")
            # The client watches the cancel button in every request and back-off, not only between pages.
            with CdseClient(None, settings, is_cancelled=feedback.isCanceled) as client:
                products = client.search(aoi, start, end, max_cloud=max_cloud, tile=tile, relative_orbit=orbit)
        except Cancelled:
            raise QgsProcessingException(CANCELLED) from None
        except (CdseError, ValueError) as exc:
            raise QgsProcessingException(str(exc)) from exc
        if self.parameterAsBoolean(parameters, self.DEDUPLICATE, context):
            kept = deduplicate(products)
            for product in products:
                if product not in kept:
                    feedback.pushInfo(f"Skipped {product.name}: a newer baseline of the same acquisition is listed")
            products = kept

        (sink, dest_id) = self.parameterAsSink(parameters, self.OUTPUT, context, product_fields(),
                                               WKB_MULTIPOLYGON, QgsCoordinateReferenceSystem(WGS84))
        if sink is None:
            raise QgsProcessingException(self.invalidSinkError(parameters, self.OUTPUT))
        for product in products:
            if feedback.isCanceled():
                raise QgsProcessingException(CANCELLED)
            feature = QgsFeature(product_fields())
            feature.setGeometry(footprint_geometry(product.footprint))
            sensed = QDateTime(product.date.replace(tzinfo=None))
            sensed.setTimeSpec(UTC)
            feature.setAttributes([
                product.id, product.name, sensed, product.tile,
                product.relative_orbit, product.cloud_cover, round(product.size / 1e6, 1), product.baseline,
                product.online])
            if not sink.addFeature(feature, FAST_INSERT):
                raise QgsProcessingException(self.writeFeatureError(sink, parameters, self.OUTPUT))
            cloud = "?" if product.cloud_cover is None else f"{product.cloud_cover:.1f} %"
            feedback.pushInfo(f"{product.date:%Y-%m-%d %H:%M} UTC  T{product.tile}  R{product.relative_orbit}  "
                              f"cloud {cloud}  {product.name}")
        feedback.pushInfo(f"{len(products)} product(s) found.")
        return {self.OUTPUT: dest_id, self.COUNT: len(products)}

    # -- inputs -------------------------------------------------------------------------------
    def _date(self, parameters, name, context) -> datetime.date:
        value = self.parameterAsDateTime(parameters, name, context)
        if value is None or not value.isValid():
            raise QgsProcessingException(f"{name}: give a date such as 2023-01-05.")
        date = value.date()
        return datetime.date(date.year(), date.month(), date.day())

    def _area_of_interest(self, parameters, context):
        return area_of_interest(self, parameters, context, self.EXTENT, self.AOI_LAYER)


def area_of_interest(alg, parameters, context, extent_name: str = "EXTENT", layer_name: str = "AOI_LAYER"):
    """The area of interest of an algorithm in lon/lat: the union of a polygon layer's features as a GeoJSON
    geometry, or else an extent as a (west, south, east, north) box; a sentence naming the fix otherwise."""
    wgs84 = QgsCoordinateReferenceSystem(WGS84)
    source = alg.parameterAsSource(parameters, layer_name, context)
    if source is not None:
        transform = QgsCoordinateTransform(source.sourceCrs(), wgs84, context.transformContext())
        geometries = []
        for feature in source.getFeatures():
            geometry = QgsGeometry(feature.geometry())
            if geometry.isEmpty():
                continue
            transform_geometry(geometry, transform, layer_name)
            geometries.append(geometry)
        if not geometries:
            raise QgsProcessingException("The area-of-interest layer has no polygons; choose another layer "
                                         "or give a search extent.")
        union = QgsGeometry.unaryUnion(geometries)
        return json.loads(union.asJson(6))
    if parameters.get(extent_name) in (None, ""):
        raise QgsProcessingException("Give a search extent or an area-of-interest layer.")
    extent = alg.parameterAsExtentGeometry(parameters, extent_name, context, wgs84)
    if extent is None or extent.isEmpty():
        raise QgsProcessingException("The search extent is empty; draw or type an extent.")
    box = extent.boundingBox()
    if box.width() <= 0 or box.height() <= 0:
        raise QgsProcessingException("The search extent has no area; draw or type a larger extent.")
    return (box.xMinimum(), box.yMinimum(), box.xMaximum(), box.yMaximum())
