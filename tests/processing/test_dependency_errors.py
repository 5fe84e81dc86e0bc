"""With a dependency missing, every algorithm says so in the Toolbox and refuses to run with the fix."""
from __future__ import annotations

import pytest
from qgis.core import QgsProcessingContext, QgsProcessingException, QgsProcessingFeedback

from landslide_plugin import dependencies


def test_every_algorithm_refuses_to_run_without_its_dependencies(provider, monkeypatch):
    algorithms = provider.algorithms()
    assert algorithms, "the provider has no algorithms"
    monkeypatch.setattr(
        dependencies, "check",
        lambda names=dependencies.CORE: [dependencies.Problem(n, f"{n} is not installed", n) for n in names])
    for alg in algorithms:
        ok, message = alg.canExecute()
        assert not ok and "is not installed" in message and "Fix:" in message, alg.id()
        instance = alg.create()
        with pytest.raises(QgsProcessingException, match="cannot run: .* is not installed"):
            instance.processAlgorithm({}, QgsProcessingContext(), QgsProcessingFeedback())
