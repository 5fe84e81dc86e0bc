"""Processing tests run inside QGIS (pytest-qgis) with the plugin's provider registered once."""
from __future__ import annotations

import sys

import pytest

PROCESSING_PLUGINS = "/usr/share/qgis/python/plugins"


@pytest.fixture(scope="session")
def provider(qgis_app, qgis_processing):
    """The "Landslide mapping" provider, registered for the whole session."""
    if PROCESSING_PLUGINS not in sys.path:
        sys.path.append(PROCESSING_PLUGINS)
    from qgis.core import QgsApplication

    from landslide_plugin.processing.provider import LandslideProvider

    registry = QgsApplication.processingRegistry()
    existing = registry.providerById("landslide")
    if existing is not None:
        yield existing
        return
    prov = LandslideProvider()
    assert registry.addProvider(prov)
    yield prov
    registry.removeProvider(prov)


@pytest.fixture()
def run_alg(provider):
    """processing.run() for an algorithm of the provider: run_alg("prepare_s2_l2a", {...})."""
    import processing
    from qgis.core import QgsProcessingContext, QgsProcessingFeedback

    def run(name, parameters, feedback=None, context=None):
        context = context or QgsProcessingContext()
        return processing.run(f"landslide:{name}", parameters, context=context,
                              feedback=feedback or QgsProcessingFeedback(), is_child_algorithm=True)

    return run
