"""Styles for the rasters the algorithms load: landslide masks, clusters, probabilities, indices.

Styles are built in code (no QML files): the colours depend on the run (number of clusters, which
one is the landslide cluster) and stay in one place.

Algorithms call ``load_styled(context, output, name, styler)`` after writing an output. QGIS applies
the style through a ``QgsProcessingLayerPostProcessorInterface`` in the main thread once the layer is
loaded. QGIS takes the C++ object but not the Python one: if the Python wrapper is garbage collected
before the run finishes, the style is silently dropped. Every post-processor is therefore kept in the
class-level list ``StylePostProcessor.alive`` (one small object per styled output, never reused because
QGIS may delete it after use; a session makes a few hundred at most). The one-step algorithm loads its
results in one group per run through ``loading.RunLoader``, with these styles.
"""
from __future__ import annotations

import functools
from collections.abc import Callable

from qgis.core import (
    QgsColorRampShader,
    QgsPalettedRasterRenderer,
    QgsProcessingContext,
    QgsProcessingLayerPostProcessorInterface,
    QgsRasterLayer,
    QgsRasterShader,
    QgsSingleBandPseudoColorRenderer,
)
from qgis.PyQt.QtGui import QColor

from .compat import RAMP_INTERPOLATED, STRETCH_TO_MIN_MAX

LANDSLIDE_RED = "#e31a1c"
TRANSPARENT = QColor(0, 0, 0, 0)

#: Muted, mutually distinct colours for the non-landslide clusters (ColorBrewer Set2/Pastel, no red).
CLUSTER_COLOURS = ("#66c2a5", "#8da0cb", "#a6d854", "#ffd92f", "#b3b3b3", "#e5c494", "#80b1d3", "#bebada",
                   "#ccebc5", "#bc80bd")

#: Colour ramps (value, colour) per index name; the ranges are those of the bounded indices.
INDEX_RAMPS = {
    "NDVI": ((-1.0, "#8c510a"), (0.0, "#dfc27d"), (0.3, "#c7e9c0"), (0.6, "#41ab5d"), (1.0, "#00441b")),
    "BSI": ((-1.0, "#1a9850"), (0.0, "#f7f7f7"), (1.0, "#8c510a")),
    "NDWI": ((-1.0, "#a6611a"), (0.0, "#f5f5f5"), (1.0, "#0571b0")),
    "dNDVI": ((-1.0, "#b2182b"), (-0.2, "#f4a582"), (0.0, "#f7f7f7"), (0.2, "#a6dba0"), (1.0, "#1b7837")),
    "dBSI": ((-1.0, "#1b7837"), (0.0, "#f7f7f7"), (1.0, "#8c510a")),
    "dNDWI": ((-1.0, "#a6611a"), (0.0, "#f7f7f7"), (1.0, "#0571b0")),
    "rdNDVI": ((-1.0, "#b2182b"), (-0.2, "#f4a582"), (0.0, "#f7f7f7"), (0.2, "#a6dba0"), (1.0, "#1b7837")),
    "slope_deg": ((0.0, "#ffffcc"), (15.0, "#fed976"), (30.0, "#fd8d3c"), (45.0, "#bd0026"), (70.0, "#4d004b")),
}


def _index_key(name: str) -> str | None:
    """NDVI_pre -> NDVI, dNDVI -> dNDVI; None when there is no ramp for the name."""
    if name in INDEX_RAMPS:
        return name
    base = name.split("_")[0]
    if base in INDEX_RAMPS:
        return base
    for key in INDEX_RAMPS:
        if key.lower() == base.lower():
            return key
    return None


def _band_named(layer: QgsRasterLayer, name: str) -> int:
    """1-based band whose description is ``name`` (GDAL descriptions are the band names QGIS shows)."""
    provider = layer.dataProvider()
    for band in range(1, layer.bandCount() + 1):
        description = provider.generateBandName(band)
        if description.split(":")[-1].strip().lower() == name.lower() or description.lower().endswith(
                f": {name.lower()}"):
            return band
    return 1


def _paletted(layer: QgsRasterLayer, classes: list[tuple[int, QColor, str]]) -> None:
    items = [QgsPalettedRasterRenderer.Class(value, colour, label) for value, colour, label in classes]
    renderer = QgsPalettedRasterRenderer(layer.dataProvider(), 1, items)
    layer.setRenderer(renderer)
    layer.triggerRepaint()


def _ramp(layer: QgsRasterLayer, band: int, stops, labels=None, legend=None) -> None:
    minimum, maximum = stops[0][0], stops[-1][0]
    ramp = QgsColorRampShader(minimum, maximum)
    ramp.setColorRampType(RAMP_INTERPOLATED)
    items = []
    for index, (value, colour) in enumerate(stops):
        qcolour = QColor(colour) if isinstance(colour, str) else colour
        label = labels[index] if labels is not None else f"{value:g}"
        items.append(QgsColorRampShader.ColorRampItem(value, qcolour, label))
    ramp.setColorRampItemList(items)
    ramp.setClip(False)
    if legend is not None:
        ramp.setLegendSettings(legend)
    shader = QgsRasterShader()
    shader.setRasterShaderFunction(ramp)
    renderer = QgsSingleBandPseudoColorRenderer(layer.dataProvider(), band, shader)
    renderer.setClassificationMin(minimum)
    renderer.setClassificationMax(maximum)
    layer.setRenderer(renderer)
    layer.triggerRepaint()


# -- styles --------------------------------------------------------------------------------------------
def style_landslide_mask(layer: QgsRasterLayer) -> None:
    """Paletted: 1 red "landslide", 0 transparent "no landslide"; 255 is no data (not drawn)."""
    _paletted(layer, [(0, QColor(TRANSPARENT), "no landslide"), (1, QColor(LANDSLIDE_RED), "landslide")])


def style_clusters(layer: QgsRasterLayer, n_clusters: int, landslide_cluster) -> None:
    """Paletted: the landslide cluster red, "cluster k (landslide)"; the others muted, "cluster k".

    ``landslide_cluster``: one cluster index, or several (the change clustering's rule may call more than one
    cluster landslide: every one of them is red, as every one of them reaches the mask).
    """
    n_clusters = int(n_clusters)
    chosen = ({int(k) for k in landslide_cluster} if isinstance(landslide_cluster, (tuple, list, set, frozenset))
              else {int(landslide_cluster)})
    classes = []
    muted = iter(CLUSTER_COLOURS * (n_clusters // len(CLUSTER_COLOURS) + 1))
    for k in range(n_clusters):
        if k in chosen:
            classes.append((k, QColor(LANDSLIDE_RED), f"cluster {k} (landslide)"))
        else:
            classes.append((k, QColor(next(muted)), f"cluster {k}"))
    _paletted(layer, classes)


#: Landslide probability: clear below 10 % (the image shows through), then yellow (unlikely) to dark red
#: (certain), more opaque as it rises, so that it reads over bright bare soil and dark forest alike.
PROBABILITY_STOPS = ((0.0, QColor(254, 217, 118, 0), ""), (0.1, QColor(254, 217, 118, 0), "10 %"),
                     (0.2, QColor(254, 217, 118, 170), "20 %"), (0.5, QColor(253, 141, 60, 215), "50 %"),
                     (0.8, QColor(227, 26, 28, 240), "80 %"), (1.0, QColor(189, 0, 38, 255), "100 %"))


def style_probability(layer: QgsRasterLayer) -> None:
    """Pseudocolour 0..1 (``PROBABILITY_STOPS``), legend in per cent from "unlikely" to "certain"."""
    from qgis.core import QgsColorRampLegendNodeSettings

    legend = QgsColorRampLegendNodeSettings()
    legend.setUseContinuousLegend(True)
    legend.setMinimumLabel("0 % (not a landslide)")
    legend.setMaximumLabel("100 % (landslide)")
    _ramp(layer, 1, [(value, colour) for value, colour, _ in PROBABILITY_STOPS],
          labels=[label for _, _, label in PROBABILITY_STOPS], legend=legend)


def style_index(layer: QgsRasterLayer, name: str) -> None:
    """Pseudocolour ramp for an index (NDVI brown->green, dNDVI red->white->green, ... over -1..1).

    ``name`` is the index or feature name (NDVI, BSI_post, dNDVI, ...); in a multi-band raster the band
    described by that name is drawn (band 1 otherwise). Unknown names get a grey -1..1 stretch.
    """
    key = _index_key(name)
    stops = INDEX_RAMPS[key] if key else ((-1.0, "#000000"), (1.0, "#ffffff"))
    _ramp(layer, _band_named(layer, name), stops)


# -- post-processing -----------------------------------------------------------------------------------
class StylePostProcessor(QgsProcessingLayerPostProcessorInterface):
    """Applies ``styler(layer)`` to an output once QGIS has loaded it."""

    #: Every instance handed to QGIS, kept referenced for the rest of the session (see module doc).
    alive: list = []

    def __init__(self, styler: Callable[[QgsRasterLayer], None]):
        super().__init__()
        self.styler = styler

    def postProcessLayer(self, layer, context, feedback):  # noqa: N802
        if not isinstance(layer, QgsRasterLayer) or not layer.isValid():
            return
        try:
            self.styler(layer)
            project = layer.project() or (context.project() if context is not None else None)
            if project is not None:
                tidy_legend(project.layerTreeRoot().findLayer(layer.id()))
        except Exception as exc:  # a style must never turn a finished run into a failure
            if feedback is not None:
                feedback.reportError(f"could not style {layer.name()}: {exc}", fatalError=False)

    @classmethod
    def create(cls, styler: Callable[[QgsRasterLayer], None]) -> StylePostProcessor:
        processor = cls(styler)
        cls.alive.append(processor)
        return processor


def load_styled(context: QgsProcessingContext, path_or_layer_id: str, name: str,
                styler: Callable[[QgsRasterLayer], None]) -> StylePostProcessor | None:
    """Style an output the run loads on completion; returns the post-processor (None if not loaded).

    ``styler`` takes the layer: ``style_landslide_mask``, or ``functools.partial(style_clusters,
    n_clusters=3, landslide_cluster=1)``. ``name`` (when not empty) becomes the layer name.
    """
    if not context.willLoadLayerOnCompletion(path_or_layer_id):
        return None
    details = context.layerToLoadOnCompletionDetails(path_or_layer_id)
    if name:
        details.name = name
    processor = StylePostProcessor.create(styler)
    details.setPostProcessor(processor)
    return processor


def tidy_legend(node) -> None:
    """The legend of a styled raster says what it shows, not "Band 1: cluster (Gray)".

    QGIS heads a single-band raster's legend with the band's name and colour interpretation; the layer name
    already says what it is, so that line is left out, with the transparent "no landslide" class; a true
    colour stack's three lines read "red: B04", "green: B03", "blue: B02". Done through the layer-tree
    node's legend properties (``QgsMapLayerLegendUtils``), which QGIS applies whenever it builds the legend.
    """
    from qgis.core import QgsMapLayerLegendUtils

    layer = node.layer() if node is not None else None
    renderer = layer.renderer() if isinstance(layer, QgsRasterLayer) else None
    if renderer is None:
        return
    kind = renderer.type()
    if kind == "paletted":
        order = [i + 1 for i, c in enumerate(renderer.classes()) if c.color.alpha() > 0]
        QgsMapLayerLegendUtils.setLegendNodeOrder(node, order)
    elif kind == "singlebandpseudocolor":
        QgsMapLayerLegendUtils.setLegendNodeOrder(node, [1])
    elif kind == "multibandcolor":
        bands = (("red", renderer.redBand()), ("green", renderer.greenBand()), ("blue", renderer.blueBand()))
        for index, (colour, band) in enumerate(bands):
            name = layer.dataProvider().generateBandName(band).split(":", 1)[-1].strip()
            QgsMapLayerLegendUtils.setLegendNodeUserLabel(node, index, f"{colour}: {name}")
    else:
        return
    if layer.legend() is not None:  # a layer panel that built this legend already builds it again
        layer.legend().itemsChanged.emit()


def clusters_styler(n_clusters: int, landslide_cluster) -> Callable[[QgsRasterLayer], None]:
    return functools.partial(style_clusters, n_clusters=n_clusters, landslide_cluster=landslide_cluster)


def index_styler(name: str) -> Callable[[QgsRasterLayer], None]:
    return functools.partial(style_index, name=name)


#: Outline of the landslide polygons: gold, so it stands out over the red mask and over the image.
POLYGON_OUTLINE = "#ffd700"


def style_polygons(layer) -> None:
    """Landslide polygons: a gold outline, no fill (the mask and the image below stay visible)."""
    from qgis.core import QgsFillSymbol

    if layer.renderer() is None or not hasattr(layer.renderer(), "setSymbol"):
        return  # an empty GeoJSON (the method mapped nothing) has no geometry type and nothing to draw
    symbol = QgsFillSymbol.createSimple({"color": "0,0,0,0", "style": "no", "outline_color": "255,215,0,255",
                                         "outline_width": "0.5"})
    layer.renderer().setSymbol(symbol)
    layer.triggerRepaint()


#: Sen2Cor's own SCL legend (classes and colours as in ESA's L2A product documentation).
SCL_CLASSES = [
    (1, "#ff0000", "saturated or defective"), (2, "#2f2f2f", "dark area / topographic shadow"),
    (3, "#643200", "cloud shadow"), (4, "#00a000", "vegetation"), (5, "#ffe65a", "not vegetated"),
    (6, "#0000ff", "water"), (7, "#808080", "unclassified"), (8, "#c0c0c0", "cloud, medium probability"),
    (9, "#ffffff", "cloud, high probability"), (10, "#64c8ff", "thin cirrus"), (11, "#ff96ff", "snow or ice"),
]


def style_scl(layer: QgsRasterLayer) -> None:
    """Paletted with Sen2Cor's legend; 0 is no data."""
    _paletted(layer, [(value, QColor(colour), label) for value, colour, label in SCL_CLASSES])


def style_true_colour(layer: QgsRasterLayer) -> None:
    """A reflectance stack as true colour: B04/B03/B02 stretched over 0–0.25 reflectance (2–98 % of most land)."""
    from qgis.core import QgsContrastEnhancement, QgsMultiBandColorRenderer

    red, green, blue = (_band_named(layer, name) for name in ("B04", "B03", "B02"))
    if len({red, green, blue}) < 3:
        return  # not a stack with described bands: keep QGIS's default rendering
    renderer = QgsMultiBandColorRenderer(layer.dataProvider(), red, green, blue)
    for band, setter in ((red, renderer.setRedContrastEnhancement), (green, renderer.setGreenContrastEnhancement),
                         (blue, renderer.setBlueContrastEnhancement)):
        enhancement = QgsContrastEnhancement(layer.dataProvider().dataType(band))
        enhancement.setContrastEnhancementAlgorithm(STRETCH_TO_MIN_MAX)
        enhancement.setMinimumValue(0.0)
        enhancement.setMaximumValue(0.25)
        setter(enhancement)
    layer.setRenderer(renderer)
    layer.triggerRepaint()
