"""Plugin entry point: registers the Processing provider (desktop and qgis_process alike)."""
from __future__ import annotations

from qgis.core import Qgis, QgsApplication, QgsMessageLog

LOG_TAG = "Landslide mapping"


class LandslidePlugin:
    """Adds only a Processing provider, so it needs no QgisInterface (qgis_process has none anyway)."""

    def __init__(self):
        self.provider = None

    def initProcessing(self):  # noqa: N802 (QGIS's name)
        # qgis_process calls only this, the desktop calls initGui: both end here, once.
        if self.provider is not None:
            return
        from .processing.provider import LandslideProvider

        provider = LandslideProvider()
        if not QgsApplication.processingRegistry().addProvider(provider):
            QgsMessageLog.logMessage(
                f"The Processing provider '{provider.id()}' could not be registered: another plugin (an older "
                "copy of this one?) already registered a provider with that id. Remove the other copy and "
                "restart QGIS.", LOG_TAG, Qgis.MessageLevel.Critical)
            return
        self.provider = provider

    def initGui(self):  # noqa: N802
        self.initProcessing()

    def unload(self):
        if self.provider is not None:
            if not QgsApplication.processingRegistry().removeProvider(self.provider):
                QgsMessageLog.logMessage("The Processing provider was already unregistered.", LOG_TAG,
                                         Qgis.MessageLevel.Warning)
            self.provider = None
