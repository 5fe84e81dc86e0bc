"""Plugin entry point: registers the Processing provider (desktop and qgis_process alike)."""
from __future__ import annotations

from qgis.core import QgsApplication


class LandslidePlugin:
    def __init__(self, iface=None):
        self.iface = iface
        self.provider = None

    def initProcessing(self):  # noqa: N802 (QGIS's name)
        # qgis_process calls only this, the desktop calls initGui: both end here, once.
        if self.provider is not None:
            return
        from .processing.provider import LandslideProvider

        self.provider = LandslideProvider()
        QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self):  # noqa: N802
        self.initProcessing()

    def unload(self):
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
