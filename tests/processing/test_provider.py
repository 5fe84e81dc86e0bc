"""The provider loads, is named as users see it in the Toolbox, and every algorithm is well formed."""
from __future__ import annotations

from qgis.core import QgsApplication


def test_provider_identity(provider):
    assert provider.id() == "landslide"
    assert provider.name() == "Landslide mapping"
    assert not provider.icon().isNull()
    assert QgsApplication.processingRegistry().providerById("landslide") is not None


def test_every_algorithm_has_help_on_every_parameter(provider):
    for alg in provider.algorithms():
        assert alg.shortHelpString(), f"{alg.id()} has no help text"
        assert alg.group(), alg.id()
        for param in alg.parameterDefinitions():
            assert param.help(), f"{alg.id()}: parameter {param.name()} has no help text"


def test_readme_lists_every_algorithm(provider):
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "scripts" / "update_readme.py"
    done = subprocess.run([sys.executable, str(script), "--check"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    readme = (script.parent.parent / "README.md").read_text()
    for alg in provider.algorithms():
        assert f"`{alg.id()}`" in readme, alg.id()


def test_mask_and_band_parameters_are_declared_once_for_every_algorithm(provider):
    """The mask rules and band numbers read the same (name, label, help, default) in every algorithm that has them."""
    from qgis.core import QgsApplication

    registry = QgsApplication.processingRegistry()
    ids = ("cluster_landslides", "ndvi_change_threshold", "map_landslides")
    algorithms = [registry.algorithmById(f"landslide:{name}") for name in ids]
    shared = ("EXCLUDE_DARK", "DEM", "MIN_SLOPE", "EXCLUSION", "EXCLUSION_CLASSES", "BAND_BLUE", "BAND_GREEN",
              "BAND_RED", "BAND_NIR", "BAND_SWIR1")
    for name in shared:
        seen = {(p.description(), p.defaultValue()) for p in (a.parameterDefinition(name) for a in algorithms)}
        assert len(seen) == 1, (name, seen)
    for algorithm in algorithms:
        assert algorithm.parameterDefinition("MIN_NDVI_PRE") is not None
        assert algorithm.parameterDefinition("BAND_NUMBERS") is None  # one way to give band numbers
    polygons = registry.algorithmById("landslide:landslide_polygons")
    assert polygons.parameterDefinition("BAND_RED").defaultValue() == 3


def _github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading: lower case, punctuation dropped, spaces to hyphens."""
    import re

    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_every_algorithm_has_a_short_description_and_a_help_page_that_exists(provider):
    import configparser
    import re
    from pathlib import Path

    from landslide_plugin.processing.base import HOMEPAGE

    root = Path(__file__).resolve().parents[2]
    metadata = configparser.ConfigParser(interpolation=None)
    metadata.read(root / "metadata.txt", encoding="utf-8")
    assert metadata["general"]["homepage"] == HOMEPAGE
    for alg in provider.algorithms():
        short = alg.shortDescription()
        assert short and short.endswith(".") and not re.search(r"<[a-z/]", short) and len(short) < 400, short
        assert short.split(" ")[:3] == alg.shortHelpString().split(" ")[:3], alg.id()  # it says what the help does
        url = alg.helpUrl()
        assert url.startswith(f"{HOMEPAGE}/blob/main/"), url
        page, anchor = url[len(f"{HOMEPAGE}/blob/main/"):].split("#")
        headings = [line.lstrip("#") for line in (root / page).read_text(encoding="utf-8").splitlines()
                    if line.startswith("#")]
        assert anchor in {_github_anchor(h) for h in headings}, (alg.id(), url)
    registry = QgsApplication.processingRegistry()
    assert registry.algorithmById("landslide:landslide_polygons").shortDescription() == (
        "Turns a landslide mask (1 landslide, 0 not, 255 no data; e.g. the output of Cluster landslides) into "
        "landslide polygons.")
