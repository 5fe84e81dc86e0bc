"""Landslide mapping: a QGIS Processing plugin for Sentinel-2 pre/post-event landslide mapping."""


def classFactory(iface):  # noqa: N802 (QGIS's name and signature)
    from .plugin import LandslidePlugin

    return LandslidePlugin()  # a Processing provider only: the plugin never uses iface
