"""What every algorithm of the provider shares: groups, help, icon, dependency checks, inputs.

Algorithms stay thin: declare parameters (with help), convert them, call ``landslide_plugin.core``,
report progress, return outputs.
"""
from __future__ import annotations

import functools
import os
from pathlib import Path

from qgis.core import (
    QgsCoordinateTransform,
    QgsCsException,
    QgsGeometry,
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProcessingParameterNumber,
    QgsRasterLayer,
)
from qgis.PyQt.QtGui import QIcon

from .. import dependencies
from ..core import defaults
from .compat import FLAG_ADVANCED, GEOMETRY_SUCCESS, NUMBER_DOUBLE, NUMBER_INTEGER, WKT_PREFERRED

ICON = Path(__file__).resolve().parent.parent / "resources" / "icons" / "landslide.svg"

#: Mask defaults shared by every algorithm (and the one-step run): one set (``core.defaults``), held by a test.
DEFAULT_MIN_SLOPE = defaults.MIN_SLOPE_DEG
DEFAULT_MIN_NDVI_PRE = defaults.MIN_NDVI_PRE
DEFAULT_EXCLUSION_CLASSES = defaults.EXCLUSION_CLASSES

#: Where the plugin's documentation lives (metadata.txt's homepage; a test keeps them the same).
HOMEPAGE = "https://github.com/landslide-plugin/landslide_plugin"
#: Help page per group (the one-step workflow and the Copernicus algorithms have their own user-guide section).
HELP_PAGES = {
    "workflow": "docs/USER_GUIDE.md#1-map-landslides-prepost",
    "data": "docs/USER_GUIDE.md#copernicus-data-space-search-and-download",
}
DEFAULT_HELP_PAGE = "README.md#algorithms"

GROUPS = {
    "data": "1 · Sentinel-2 data",
    "alignment": "2 · Co-registration",
    "detection": "3 · Detection",
    "evaluation": "4 · Evaluation",
    "workflow": "0 · Workflows",
}


class LandslideAlgorithm(QgsProcessingAlgorithm):
    """Base class. Subclasses set NAME, DISPLAY_NAME, GROUP (a key of GROUPS), HELP, REQUIRES."""

    NAME = ""
    DISPLAY_NAME = ""
    GROUP = "detection"
    HELP = ""
    #: One sentence for the Toolbox tooltip and lists (empty: the first sentence of HELP).
    SHORT = ""
    #: Help page under HOMEPAGE (None: the group's, see HELP_PAGES).
    HELP_PAGE: str | None = None
    REQUIRES: tuple = dependencies.CORE

    def __init_subclass__(cls, **kwargs):
        """Every algorithm's processAlgorithm runs with GDAL's block cache bounded (``rasters.bounded_gdal_cache``):
        QGIS leaves the cache at GDAL's default (5 % of the RAM), which would otherwise fill beside the
        plugin's own blocks."""
        super().__init_subclass__(**kwargs)
        process = cls.__dict__.get("processAlgorithm")
        if process is None:
            return

        @functools.wraps(process)
        def process_with_bounded_cache(self, parameters, context, feedback):
            try:
                from ..core import rasters
            except ImportError:  # a missing dependency: the algorithm itself says which
                return process(self, parameters, context, feedback)
            with rasters.bounded_gdal_cache():
                return process(self, parameters, context, feedback)

        cls.processAlgorithm = process_with_bounded_cache

    # -- identity -------------------------------------------------------------------------
    def name(self):
        return self.NAME

    def displayName(self):  # noqa: N802
        return self.DISPLAY_NAME

    def group(self):
        return GROUPS[self.GROUP]

    def groupId(self):  # noqa: N802
        return self.GROUP

    def shortHelpString(self):  # noqa: N802
        return self.HELP

    @classmethod
    def summary(cls) -> str:
        """One sentence: SHORT, or the first sentence of the help."""
        return cls.SHORT or first_sentence(cls.HELP)

    def shortDescription(self):  # noqa: N802
        """One sentence for the Toolbox tooltip and the algorithm lists (``summary``)."""
        return self.summary()

    def helpUrl(self):  # noqa: N802
        return f"{HOMEPAGE}/blob/main/{self.HELP_PAGE or HELP_PAGES.get(self.GROUP, DEFAULT_HELP_PAGE)}"

    def icon(self):
        return QIcon(str(ICON))

    def svgIconPath(self):  # noqa: N802
        return str(ICON)

    def createInstance(self):  # noqa: N802
        return type(self)()

    # -- dependencies -----------------------------------------------------------------------
    def canExecute(self):  # noqa: N802
        message = dependencies.report(self.REQUIRES)
        return (not message, message)

    def require_dependencies(self):
        """Call first in processAlgorithm: the Toolbox consults canExecute, processing.run() does not."""
        message = dependencies.report(self.REQUIRES)
        if message:
            raise QgsProcessingException(f"{self.displayName()} cannot run: {message}")

    # -- parameters -------------------------------------------------------------------------
    def add(self, param, help_text: str, advanced: bool = False, decimals: int | None = None):
        """addParameter with its help text (shown in the dialog's tooltip and in qgis_process help).

        A decimal number parameter gets a spin box with ``decimals`` decimals (2 unless given), not QGIS's
        six (``15.000000``).
        """
        param.setHelp(help_text)
        if advanced:
            param.setFlags(param.flags() | FLAG_ADVANCED)
        if isinstance(param, QgsProcessingParameterNumber) and param.dataType() == NUMBER_DOUBLE:
            set_decimals(param, 2 if decimals is None else decimals)
        if not self.addParameter(param):  # QGIS refuses a second parameter of the same name
            raise QgsProcessingException(f"{type(self).__name__}: parameter {param.name()} could not be added; "
                                         "is its name used twice?")
        return param

    def add_output(self, output):
        """addOutput that fails loudly: QGIS refuses an output whose name is already taken."""
        if not self.addOutput(output):
            raise QgsProcessingException(f"{type(self).__name__}: output {output.name()} could not be added; "
                                         "is its name used twice?")
        return output

    def raster_path(self, parameters, name, context) -> str:
        """The local file behind a raster-layer parameter, or a clear error naming the layer.

        A file path is taken as it is, without loading it as a QGIS layer: QGIS computes statistics
        for a layer it loads and saves them beside the file (``.aux.xml``) when the layer is freed,
        and a run must not add files to the user's folders. Layers of the project are used through
        their source.
        """
        path = file_path_value(self.parameterAsString(parameters, name, context))
        if path:
            return path
        layer = self.parameterAsRasterLayer(parameters, name, context)
        if layer is None:
            raise QgsProcessingException(f"{name}: no raster layer given or it could not be loaded.")
        return local_raster_path(layer, name)

    def optional_raster_path(self, parameters, name, context) -> str | None:
        """Like ``raster_path`` for an optional raster parameter: None when it is not set."""
        if parameters.get(name) in (None, ""):
            return None
        if file_path_value(self.parameterAsString(parameters, name, context)):
            return self.raster_path(parameters, name, context)
        if self.parameterAsRasterLayer(parameters, name, context) is None:
            return None
        return self.raster_path(parameters, name, context)

    def add_mask_parameters(self, *, water: bool = True,
                            min_ndvi_pre: float | None = defaults.MIN_NDVI_PRE_SINGLE_STEPS) -> None:
        """The mask parameters every detection algorithm shares, declared once (names, defaults, help).

        EXCLUDE_WATER (when ``water``), EXCLUDE_DARK, DEM, MIN_SLOPE, KEEP_RUNOUT, EXCLUSION, EXCLUSION_CLASSES and
        MIN_NDVI_PRE (default ``min_ndvi_pre``; not set: the rule is off); the defaults are ``core.defaults``'s;
        ``mask_options`` reads them back.
        """
        from qgis.core import (
            QgsProcessingParameterBoolean,
            QgsProcessingParameterRasterLayer,
            QgsProcessingParameterString,
        )

        if water:
            self.add(QgsProcessingParameterBoolean("EXCLUDE_WATER", "Exclude water",
                                                   defaultValue=defaults.EXCLUDE_WATER),
                     "Rule out water on either date (SCL class 6, and NDWI above 0): reservoir level changes look "
                     "like vegetation loss.")
        self.add(QgsProcessingParameterBoolean("EXCLUDE_DARK", "Exclude SCL dark areas",
                                               defaultValue=defaults.EXCLUDE_DARK),
                 "Also treat SCL class 2 (dark area / topographic shadow) as not observed. Off by default: steep "
                 "shaded slopes are where landslides are.", advanced=True)
        self.add(QgsProcessingParameterRasterLayer("DEM", "Digital elevation model", optional=True),
                 "Elevation in metres, any CRS and resolution (resampled bilinearly onto the 20 m grid; slope by "
                 "Horn's method in metres). Pixels flatter than the minimum slope are ruled out; pixels outside "
                 "the DEM are not observed.")
        self.add(QgsProcessingParameterNumber("MIN_SLOPE", "Minimum slope (degrees)",
                                              type=NUMBER_DOUBLE,
                                              defaultValue=DEFAULT_MIN_SLOPE, minValue=0.0, maxValue=89.0),
                 "With a DEM, pixels with a gentler slope are ruled out (rapid-mapping practice: 15°).", decimals=1)
        self.add(QgsProcessingParameterBoolean("KEEP_RUNOUT", "Keep runout and deposits below steep scars",
                                               defaultValue=defaults.KEEP_RUNOUT),
                 f"With a DEM, gentler pixels are still mapped where they are the runout or deposit of a landslide: "
                 f"part of a mapped object whose steep part has a mean slope of at least "
                 f"{defaults.RUNOUT_SOURCE_SLOPE_DEG:g}° and is at least {defaults.RUNOUT_SOURCE_SHARE:.0%} of it, "
                 f"and lower than the nearest steep pixel of that object (debris runs downslope onto gentle ground). "
                 f"A field or clear-cut that only touches steep ground, or lies beside or above it, stays ruled out. "
                 f"Off: every pixel gentler than the minimum slope is ruled out.", advanced=True)
        self.add(QgsProcessingParameterRasterLayer("EXCLUSION", "Land-cover raster to exclude classes from",
                                                   optional=True),
                 "A class raster such as ESA WorldCover (any grid; nearest neighbour); pixels of the classes "
                 "listed below are ruled out.")
        self.add(QgsProcessingParameterString("EXCLUSION_CLASSES", "Land-cover classes to exclude",
                                              defaultValue=DEFAULT_EXCLUSION_CLASSES, optional=True),
                 "Comma-separated class values of the land-cover raster (ESA WorldCover: 40 cropland, harvested "
                 "between dates; 50 built-up; 80 water).")
        self.add(QgsProcessingParameterNumber("MIN_NDVI_PRE", "Minimum pre-event NDVI (vegetated before)",
                                              type=NUMBER_DOUBLE, optional=True,
                                              defaultValue=min_ndvi_pre, minValue=-1.0, maxValue=1.0),
                 f"Pixels less green than this before the event are ruled out: a scar removes vegetation, so "
                 f"ground that was bare, built-up or water before cannot become one (e.g. {DEFAULT_MIN_NDVI_PRE:g}). "
                 f"Under snow the SCL missed (pre-event NDSI above {defaults.SNOW_NDSI:g}) "
                 f"{defaults.SNOW_MIN_NDVI_PRE:g} is enough: snow hides what grew, and vegetation still shows "
                 f"through a thin cover where rock does not. Not set: keep every pixel.",
                 advanced=min_ndvi_pre is not None)

    def mask_options(self, parameters, context, *, ndwi_water_threshold: float = defaults.NDWI_WATER_THRESHOLD):
        """``core.masks.MaskOptions`` from the mask parameters the detection algorithms share.

        Reads EXCLUDE_WATER, EXCLUDE_DARK, DEM, MIN_SLOPE, KEEP_RUNOUT, EXCLUSION, EXCLUSION_CLASSES and MIN_NDVI_PRE
        (an empty MIN_NDVI_PRE disables the vegetated-before rule); with water excluded, its shore
        (``defaults.WATER_BUFFER_PX``, ``defaults.MOVED_WATER_BUFFER_PX`` where the line moved) is too, as in the
        one-step run.
        """
        from ..core import masks

        exclusion = self.optional_raster_path(parameters, "EXCLUSION", context)
        classes = parse_classes(self.parameterAsString(parameters, "EXCLUSION_CLASSES", context))
        if exclusion and not classes:
            raise QgsProcessingException("a land-cover raster was given but no classes to exclude; list them, "
                                         "e.g. 40,50")
        exclude_water = (self.parameterAsBoolean(parameters, "EXCLUDE_WATER", context)
                         if self.parameterDefinition("EXCLUDE_WATER") is not None else True)
        min_ndvi = None  # an empty value (None) turns the rule off; a missing one takes the default
        definition = self.parameterDefinition("MIN_NDVI_PRE")
        default = definition.defaultValue() if definition is not None else None
        if parameters.get("MIN_NDVI_PRE", default) not in (None, ""):
            min_ndvi = self.parameterAsDouble(parameters, "MIN_NDVI_PRE", context)
        return masks.MaskOptions(
            use_scl=True, exclude_dark=self.parameterAsBoolean(parameters, "EXCLUDE_DARK", context),
            exclude_water=exclude_water, ndwi_water_threshold=ndwi_water_threshold if exclude_water else None,
            water_buffer_px=defaults.WATER_BUFFER_PX if exclude_water else 0,
            moved_water_buffer_px=defaults.MOVED_WATER_BUFFER_PX if exclude_water else 0,
            dem_path=self.optional_raster_path(parameters, "DEM", context),
            min_slope_deg=self.parameterAsDouble(parameters, "MIN_SLOPE", context),
            keep_runout=self.parameterAsBoolean(parameters, "KEEP_RUNOUT", context), exclusion_path=exclusion,
            exclusion_classes=classes if exclusion else (), min_ndvi_pre=min_ndvi,
            snow_ndsi_pre=defaults.SNOW_NDSI, snow_min_ndvi_pre=defaults.SNOW_MIN_NDVI_PRE)

    def extent_as_wkt(self, parameters, name, context) -> tuple[str | None, str | None]:
        """An extent parameter as a WKT polygon and its CRS (authority id or WKT), or (None, None) when unset."""
        if parameters.get(name) in (None, ""):
            return None, None
        rectangle = self.parameterAsExtent(parameters, name, context)
        if rectangle.isNull() or rectangle.isEmpty():
            return None, None
        crs = self.parameterAsExtentCrs(parameters, name, context)
        if not crs.isValid():
            raise QgsProcessingException(
                f"{name}: the area of interest has no coordinate reference system; give it with one, e.g. "
                "'11.8,12.1,45.9,46.1 [EPSG:4326]', or draw it on the map canvas")
        authority = crs.authid()
        if ":" in authority and not authority.upper().startswith("USER:"):
            return QgsGeometry.fromRect(rectangle).asWkt(), authority
        return QgsGeometry.fromRect(rectangle).asWkt(), crs.toWkt(WKT_PREFERRED)


def set_decimals(param: QgsProcessingParameterNumber, decimals: int) -> None:
    """The dialog's spin box of ``param`` shows ``decimals`` decimals (QGIS's own number widget reads this)."""
    metadata = param.metadata()
    wrapper = dict(metadata.get("widget_wrapper") or {})
    wrapper["decimals"] = int(decimals)
    metadata["widget_wrapper"] = wrapper
    param.setMetadata(metadata)


def first_sentence(text: str) -> str:
    """The first sentence of a help text: tags dropped, whitespace collapsed, not cut inside parentheses or
    after "e.g." and the like."""
    import re

    plain = " ".join(re.sub(r"<[^>]+>", " ", text or "").split())
    plain = plain.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    depth = 0
    for index, char in enumerate(plain):
        if char in "([":
            depth += 1
        elif char in ")]":
            depth = max(0, depth - 1)
        elif char == "." and depth == 0 and (index + 1 == len(plain) or plain[index + 1] == " "):
            if not re.search(r"\b(e\.g|i\.e|etc|vs)$", plain[:index]):
                return plain[:index + 1]
    return plain


def transform_geometry(geometry: QgsGeometry, transform: QgsCoordinateTransform, what: str) -> QgsGeometry:
    """``geometry`` transformed in place; a clear error instead of a geometry silently left in its old CRS."""
    source, target = (crs.authid() or crs.description() for crs in (transform.sourceCrs(), transform.destinationCrs()))
    try:
        result = geometry.transform(transform)
    except QgsCsException as exc:
        raise QgsProcessingException(f"{what}: a geometry cannot be transformed from {source} to {target} ({exc}); "
                                     "check the layer's coordinate reference system") from exc
    if result != GEOMETRY_SUCCESS:
        raise QgsProcessingException(f"{what}: a geometry could not be transformed from {source} to {target}; "
                                     "check the layer's coordinate reference system and repair its geometries")
    return geometry


def parse_classes(text: str) -> tuple[int, ...]:
    """Land-cover class values from '40,50' (commas, semicolons or spaces)."""
    try:
        return tuple(int(v) for v in (text or "").replace(";", ",").replace(" ", ",").split(",") if v.strip())
    except ValueError:
        raise QgsProcessingException(
            f"land-cover classes '{text}' are not whole numbers; list class values such as 40,50") from None


def file_path_value(value: str | None) -> str | None:
    """``value`` when it names an existing local file (a parameter given as a path), else None."""
    if not value:
        return None
    path = str(value).split("|")[0]
    return path if os.path.isfile(path) else None


def local_raster_path(layer: QgsRasterLayer, name: str = "") -> str:
    label = f"{name} ('{layer.name()}')" if name else f"'{layer.name()}'"
    if layer.providerType() != "gdal":
        raise QgsProcessingException(
            f"{label} is a {layer.providerType()} layer; this algorithm reads local raster files. "
            "Save it as a GeoTIFF first (right-click > Export > Save As).")
    path = layer.source().split("|")[0]
    if not (os.path.isfile(path) or path.startswith("/vsi")):
        raise QgsProcessingException(
            f"{label}: '{path}' is not a readable local raster file. Save the layer as a GeoTIFF first.")
    return path


#: (parameter, band, label, default number in the plugin's stack order B02, B03, B04, B8A, B11).
BAND_PARAMETERS = (
    ("BAND_BLUE", "B02", "Blue band (B02) number", 1),
    ("BAND_GREEN", "B03", "Green band (B03) number", 2),
    ("BAND_RED", "B04", "Red band (B04) number", 3),
    ("BAND_NIR", "B8A", "Narrow NIR band (B8A) number", 4),
    ("BAND_SWIR1", "B11", "SWIR-1 band (B11) number", 5),
)


def add_band_parameters(alg: LandslideAlgorithm, what: str = "the stack") -> None:
    """The five advanced band-number parameters, used only for rasters without band descriptions."""
    for name, band, label, default in BAND_PARAMETERS:
        alg.add(QgsProcessingParameterNumber(name, label, type=NUMBER_INTEGER,
                                             defaultValue=default, minValue=1),
                f"Only used when {what} has no band descriptions: the 1-based number of band {band}. "
                f"Bands described B02, B03, B04, B8A, B11 (as the plugin writes them) are found by name.",
                advanced=True)


def band_numbers(alg: LandslideAlgorithm, parameters, context) -> dict[str, int]:
    return {band: alg.parameterAsInt(parameters, name, context) for name, band, _, _ in BAND_PARAMETERS}


def report_band_choice(feedback, path: str, needed, numbers: dict[str, int]) -> None:
    """Tell the user which bands were taken by number rather than by name (a silent wrong band is worse)."""
    from ..core import rasters

    found = rasters.find_bands(path, needed, fallback=numbers)
    by_number = [b for b in needed if not _described(path, b)]
    if by_number:
        feedback.pushWarning(
            f"{path} has no band described as {', '.join(by_number)}; using band numbers "
            + ", ".join(f"{b}={found[b]}" for b in by_number) + ". Check them in the advanced parameters.")


def _described(path: str, band: str) -> bool:
    from ..core import rasters

    try:
        rasters.find_bands(path, [band])
        return True
    except ValueError:
        return False
