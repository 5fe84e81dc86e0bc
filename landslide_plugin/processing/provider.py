"""The "Landslide mapping" Processing provider (id ``landslide``)."""
from __future__ import annotations

from pathlib import Path

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from .algorithms import algorithm_classes

ICON = Path(__file__).resolve().parent.parent / "resources" / "icons" / "landslide.svg"


class LandslideProvider(QgsProcessingProvider):
    def id(self):
        return "landslide"

    def name(self):
        return "Landslide mapping"

    def longName(self):  # noqa: N802
        return "Landslide mapping from Sentinel-2 pre/post-event pairs"

    def icon(self):
        return QIcon(str(ICON))

    def svgIconPath(self):  # noqa: N802
        return str(ICON)

    def loadAlgorithms(self):  # noqa: N802
        for cls in algorithm_classes():
            self.addAlgorithm(cls())
