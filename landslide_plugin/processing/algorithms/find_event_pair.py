"""Find a pre/post pair for an event: the clear share over the area from each candidate's own SCL, ranked."""
from __future__ import annotations

import os

from qgis.core import (
    QgsApplication,
    QgsCoordinateReferenceSystem,
    QgsFeature,
    QgsField,
    QgsFields,
    QgsGeometry,
    QgsProcessingException,
    QgsProcessingOutputString,
    QgsProcessingParameterAuthConfig,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterDateTime,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterFile,
    QgsProcessingParameterNumber,
)

from ..base import LandslideAlgorithm
from ..compat import (
    DATETIME_DATE,
    FAST_INSERT,
    FIELD_BOOL,
    FIELD_DOUBLE,
    FIELD_INT,
    FIELD_STRING,
    FILE_BEHAVIOR_FOLDER,
    NUMBER_DOUBLE,
    NUMBER_INTEGER,
    SOURCE_VECTOR_POLYGON,
    WKB_MULTIPOLYGON,
)
from .download_sentinel2 import read_credentials
from .search_sentinel2 import WGS84, area_of_interest, footprint_geometry

CANCELLED = "Cancelled by the user; the search was stopped (SCLs already fetched stay cached)."

#: Fields of the candidates layer, in order.
CANDIDATE_FIELDS = (
    ("role", FIELD_STRING), ("rank", FIELD_INT), ("chosen", FIELD_BOOL), ("date", FIELD_STRING),
    ("orbit", FIELD_INT), ("tiles", FIELD_STRING), ("clear_pct", FIELD_DOUBLE), ("covered_pct", FIELD_DOUBLE),
    ("measured_by", FIELD_STRING), ("tile_cloud", FIELD_DOUBLE), ("season_days", FIELD_INT),
    ("same_orbit", FIELD_BOOL), ("reason", FIELD_STRING), ("note", FIELD_STRING), ("product_ids", FIELD_STRING),
    ("names", FIELD_STRING),
)


def candidate_fields() -> QgsFields:
    fields = QgsFields()
    for name, kind in CANDIDATE_FIELDS:
        fields.append(QgsField(name, kind))
    return fields


def default_cache_folder() -> str:
    """Where SCLs are cached when no folder is given: in the QGIS profile, kept between runs."""
    return os.path.join(QgsApplication.qgisSettingsDirPath(), "cache", "landslide_plugin", "scl")


class FindEventPairAlgorithm(LandslideAlgorithm):
    NAME = "find_event_pair"
    DISPLAY_NAME = "Find a pre/post pair for an event"
    GROUP = "data"
    REQUIRES = ("numpy", "rasterio", "requests")
    HELP = (
        "Finds the best pre-event and post-event Sentinel-2 L2A images for an event from its area and date, and "
        "returns their product Ids for \"Download Sentinel-2 L2A\".<br><br>"
        "For every candidate it measures the share of <b>the area of interest</b> that is clear, from the "
        "product's own scene classification (SCL): only the SCL file (a few MB, not the 1 GB product) is "
        "downloaded, and cached, so a second run fetches nothing again. A tile's catalogue cloud cover speaks for "
        "110 km: a 5 % cloudy tile can be overcast over the epicentre. Clear = vegetation, bare soil, water, "
        "unclassified and (unless excluded) dark area / topographic shadow; clouds, cirrus, cloud shadow, snow, "
        "defective pixels and no data are not.<br><br>"
        "<b>Post-event</b>: the earliest image after the event day with at least the minimum clear share. "
        "<b>Pre-event</b>: before the event day, with at least the minimum clear share, from the same relative "
        "orbit as the post image where possible (same viewing geometry), then the closest to the post image's day "
        "of year (same season: harvests and seasonal drying are the main false positives), searched in the days "
        "before the event and around the post image's anniversary in earlier years. Images sensed on the event day "
        "itself are left out (before or after the shaking is unknown).<br><br>"
        "An area over several tiles gets every tile of the chosen dates (download them together; the preparation "
        "mosaics them); of a product in two processing baselines only the newest is used. The candidates layer "
        "lists every candidate with its clear share, rank and the reason for it. When an SCL cannot be fetched, "
        "the tile cloud cover stands in and the layer and the log say so.<br><br>"
        "Downloading an SCL needs a Copernicus Data Space account: an authentication configuration of type Basic, "
        "or the environment variables CDSE_USERNAME and CDSE_PASSWORD.")

    EXTENT = "EXTENT"
    AOI_LAYER = "AOI_LAYER"
    EVENT_DATE = "EVENT_DATE"
    POST_DAYS = "POST_DAYS"
    PRE_DAYS = "PRE_DAYS"
    PRE_YEARS = "PRE_YEARS"
    SEASON_DAYS = "SEASON_DAYS"
    MIN_CLEAR = "MIN_CLEAR"
    EXCLUDE_DARK = "EXCLUDE_DARK"
    AUTH = "AUTH"
    CACHE_FOLDER = "CACHE_FOLDER"
    OUTPUT = "OUTPUT"
    PRE_PRODUCT_IDS = "PRE_PRODUCT_IDS"
    POST_PRODUCT_IDS = "POST_PRODUCT_IDS"
    PRE_NAMES = "PRE_NAMES"
    POST_NAMES = "POST_NAMES"
    PRE_DATE = "PRE_DATE"
    POST_DATE = "POST_DATE"
    SUMMARY = "SUMMARY"

    def initAlgorithm(self, config=None):  # noqa: N802
        self.add(QgsProcessingParameterExtent(self.EXTENT, "Area of interest (extent)", optional=True),
                 "The area the images must show clear (any CRS). Give this or an area-of-interest layer.")
        self.add(QgsProcessingParameterFeatureSource(self.AOI_LAYER, "Area of interest (polygon layer)",
                                                     [SOURCE_VECTOR_POLYGON], optional=True),
                 "Polygons of the area (any CRS); the clear share is measured inside their union. Used instead of the "
                 "extent when given.")
        self.add(QgsProcessingParameterDateTime(self.EVENT_DATE, "Event date", type=DATETIME_DATE),
                 "The day of the earthquake (or storm), UTC. Images of that day are left out.")
        self.add(QgsProcessingParameterNumber(self.POST_DAYS, "Post-event window (days after the event)",
                                              type=NUMBER_INTEGER, defaultValue=30, minValue=1, maxValue=730),
                 "Post-event images are searched from the day after the event through this many days.")
        self.add(QgsProcessingParameterNumber(self.PRE_DAYS, "Pre-event window (days before the event)",
                                              type=NUMBER_INTEGER, defaultValue=60, minValue=0, maxValue=730),
                 "Pre-event images are searched in this many days before the event (0: only the earlier years).")
        self.add(QgsProcessingParameterNumber(self.PRE_YEARS, "Earlier years searched for the same season",
                                              type=NUMBER_INTEGER, defaultValue=1, minValue=0, maxValue=10),
                 "For each of this many previous years, pre-event images within the season window of the post "
                 "image's anniversary are candidates too (same season: fewer harvest and drying false positives).")
        self.add(QgsProcessingParameterNumber(self.SEASON_DAYS, "Season window (± days around the anniversary)",
                                              type=NUMBER_INTEGER, defaultValue=45, minValue=0, maxValue=182),
                 "Half-width of the window around the post image's anniversary in earlier years.", advanced=True)
        self.add(QgsProcessingParameterNumber(self.MIN_CLEAR, "Minimum clear share of the area (%)",
                                              type=NUMBER_DOUBLE, defaultValue=70.0, minValue=0.0, maxValue=100.0),
                 "A candidate qualifies when at least this share of the area of interest is clear in its SCL.")
        self.add(QgsProcessingParameterBoolean(self.EXCLUDE_DARK, "Count SCL dark areas as not clear",
                                               defaultValue=False),
                 "Treat SCL class 2 (dark area / topographic shadow) as not clear. Off by default: steep shaded "
                 "slopes are where landslides are.", advanced=True)
        self.add(QgsProcessingParameterAuthConfig(self.AUTH, "Copernicus Data Space account", optional=True),
                 "A QGIS authentication configuration of type Basic (username and password) to download the SCLs. "
                 "Empty: the environment variables CDSE_USERNAME and CDSE_PASSWORD.")
        self.add(QgsProcessingParameterFile(self.CACHE_FOLDER, "SCL cache folder", behavior=FILE_BEHAVIOR_FOLDER,
                                            optional=True),
                 "Where the SCLs are kept between runs (a cached SCL is never fetched again). Empty: a folder in "
                 "the QGIS profile.", advanced=True)
        self.add(QgsProcessingParameterFeatureSink(self.OUTPUT, "Candidates", SOURCE_VECTOR_POLYGON),
                 "Footprints (EPSG:4326) of every candidate acquisition: role (pre/post), rank (1 = best, empty = "
                 "not enough clear area), chosen, date, relative orbit, tiles, clear and covered share of the area "
                 "(%), how it was measured (SCL or tile cloud cover), tile cloud cover, days from the post image's "
                 "day of year, the reason and the product Ids.")
        for name, label in ((self.PRE_PRODUCT_IDS, "Pre-event product Ids"),
                            (self.POST_PRODUCT_IDS, "Post-event product Ids"),
                            (self.PRE_NAMES, "Pre-event product names"), (self.POST_NAMES, "Post-event product names"),
                            (self.PRE_DATE, "Pre-event date"), (self.POST_DATE, "Post-event date"),
                            (self.SUMMARY, "Why these images")):
            self.add_output(QgsProcessingOutputString(name, label))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        self.require_dependencies()
        from ...core.copernicus import CdseAuthError, CdseClient, CdseError, CdseSettings
        from ...core.event_pairs import NoClearImage, find_event_pair
        from ...core.rasters import Cancelled

        aoi = area_of_interest(self, parameters, context, self.EXTENT, self.AOI_LAYER)
        event = self.parameterAsDateTime(parameters, self.EVENT_DATE, context)
        if event is None or not event.isValid():
            raise QgsProcessingException("Event date: give the day of the event, such as 2023-02-06.")
        event_date = f"{event.date().year():04d}-{event.date().month():02d}-{event.date().day():02d}"
        credentials = None
        if self.parameterAsString(parameters, self.AUTH, context) or (
                os.environ.get("CDSE_USERNAME") and os.environ.get("CDSE_PASSWORD")):
            credentials = read_credentials(self, parameters, context, self.AUTH)
        cache = self.parameterAsFile(parameters, self.CACHE_FOLDER, context) or default_cache_folder()
        min_clear = self.parameterAsDouble(parameters, self.MIN_CLEAR, context) / 100.0
        try:
            settings = CdseSettings.from_env()
            with CdseClient(credentials, settings, is_cancelled=feedback.isCanceled) as client:
                pair = find_event_pair(
                    client, aoi, event_date,
                    post_days=self.parameterAsInt(parameters, self.POST_DAYS, context),
                    pre_days=self.parameterAsInt(parameters, self.PRE_DAYS, context),
                    pre_years=self.parameterAsInt(parameters, self.PRE_YEARS, context),
                    season_days=self.parameterAsInt(parameters, self.SEASON_DAYS, context),
                    min_clear=min_clear, cache_dir=cache,
                    exclude_dark=self.parameterAsBoolean(parameters, self.EXCLUDE_DARK, context),
                    progress=feedback.setProgress, is_cancelled=feedback.isCanceled, log=feedback.pushInfo)
        except Cancelled:
            raise QgsProcessingException(CANCELLED) from None
        except (NoClearImage, CdseAuthError, CdseError, ValueError, OSError) as exc:
            raise QgsProcessingException(str(exc)) from exc

        (sink, dest_id) = self.parameterAsSink(parameters, self.OUTPUT, context, candidate_fields(),
                                               WKB_MULTIPOLYGON, QgsCoordinateReferenceSystem(WGS84))
        if sink is None:
            raise QgsProcessingException(self.invalidSinkError(parameters, self.OUTPUT))
        rows = [(c.role, c.rank, c.chosen, c.date.isoformat(), c.relative_orbit, ",".join(c.tiles),
                 _pct(c.clear_share), _pct(c.covered_share), c.source, _round(c.tile_cloud_cover), c.season_days,
                 c.same_orbit, c.reason, c.note, c.ids, c.names, [p.footprint for p in c.products])
                for c in pair.candidates]
        rows += [("pre" if p.date.date() < pair.event_date else "post", None, False, p.date.date().isoformat(),
                  p.relative_orbit, p.tile, None, None, "", _round(p.cloud_cover), None, None, reason, "", p.id, p.name,
                  [p.footprint]) for p, reason in pair.left_out]
        for *values, footprints in rows:
            feature = QgsFeature(candidate_fields())
            geometries = [footprint_geometry(f) for f in footprints if f]
            if geometries:
                feature.setGeometry(QgsGeometry.unaryUnion(geometries) if len(geometries) > 1 else geometries[0])
            feature.setAttributes(values)
            if not sink.addFeature(feature, FAST_INSERT):
                raise QgsProcessingException(self.writeFeatureError(sink, parameters, self.OUTPUT))
        summary = pair.summary()
        for line in summary.splitlines():
            feedback.pushInfo(line)
        if any(c.source != "SCL" for c in (pair.pre, pair.post)):
            feedback.pushWarning("The chosen pair was measured by tile cloud cover, not over the area: check the "
                                 "images before mapping.")
        return {self.OUTPUT: dest_id, self.PRE_PRODUCT_IDS: pair.pre.ids, self.POST_PRODUCT_IDS: pair.post.ids,
                self.PRE_NAMES: pair.pre.names, self.POST_NAMES: pair.post.names,
                self.PRE_DATE: pair.pre.date.isoformat(), self.POST_DATE: pair.post.date.isoformat(),
                self.SUMMARY: summary}


def _pct(share):
    return None if share is None else round(100.0 * share, 2)


def _round(value):
    return None if value is None else round(float(value), 2)
