"""Landslide mapping: a QGIS Processing plugin for Sentinel-2 pre/post-event landslide mapping."""


def classFactory(iface):  # noqa: N802 (QGIS's name)
    from .plugin import LandslidePlugin

    return LandslidePlugin(iface)
