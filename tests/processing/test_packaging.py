"""The ZIP users install loads in QGIS and in qgis_process, and registers the provider with its algorithms."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
QGIS_PROCESS = "/usr/bin/qgis_process.bin"

LOAD_SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    plugins_dir = sys.argv[1]
    from qgis.core import QgsApplication
    app = QgsApplication([], False)
    app.initQgis()
    sys.path.append("/usr/share/qgis/python/plugins")
    from processing.core.Processing import Processing
    Processing.initialize()
    import qgis.utils
    sys.path.insert(0, plugins_dir)
    qgis.utils.plugin_paths = [plugins_dir]
    qgis.utils.updateAvailablePlugins()
    loaded = qgis.utils.loadPlugin("landslide_plugin")
    started = qgis.utils.startProcessingPlugin("landslide_plugin")
    registry = QgsApplication.processingRegistry()
    provider = registry.providerById("landslide")
    import landslide_plugin
    result = {
        "loaded": loaded, "started": started, "file": landslide_plugin.__file__,
        "provider": provider.name() if provider else None,
        "algorithms": sorted(a.id() for a in provider.algorithms()) if provider else [],
        "metadata_name": qgis.utils.pluginMetadata("landslide_plugin", "name"),
    }
    qgis.utils.unloadPlugin("landslide_plugin")
    result["after_unload"] = registry.providerById("landslide") is not None
    print(json.dumps(result), flush=True)
    os._exit(0)  # QGIS may crash while tearing down a standalone app; the result is already out
    """
)


@pytest.fixture(scope="module")
def package_zip(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "package.py"), "--output", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return Path(done.stdout.strip())


@pytest.fixture(scope="module")
def unpacked(package_zip, tmp_path_factory) -> Path:
    plugins = tmp_path_factory.mktemp("plugins")
    with zipfile.ZipFile(package_zip) as archive:
        archive.extractall(plugins)
    return plugins


def expected_algorithms() -> set[str]:
    from landslide_plugin.processing.algorithms import algorithm_classes

    return {f"landslide:{cls.NAME}" for cls in algorithm_classes()}


def test_zip_layout(package_zip):
    with zipfile.ZipFile(package_zip) as archive:
        names = archive.namelist()
    assert all(n.startswith("landslide_plugin/") for n in names)
    for needed in ("metadata.txt", "__init__.py", "plugin.py", "LICENSE",
                   "resources/icons/landslide.svg", "processing/provider.py", "core/rasters.py"):
        assert f"landslide_plugin/{needed}" in names, needed
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    with zipfile.ZipFile(package_zip) as archive:
        metadata = archive.read("landslide_plugin/metadata.txt").decode()
    for key in ("name", "qgisMinimumVersion", "description", "about", "version", "author", "email",
                "repository", "tracker", "homepage", "category", "tags", "icon", "experimental",
                "hasProcessingProvider", "changelog"):
        assert f"\n{key}=" in metadata, f"metadata.txt lacks {key}"
    assert "hasProcessingProvider=yes" in metadata and "qgisMinimumVersion=3.22" in metadata
    assert "landslide_plugin/.flake8" in names, "the repository's scanner reads flake8's configuration from the ZIP"


def test_metadata_declares_qgis_3_and_4():
    """QGIS 4 and plugins.qgis.org go by the version range (a maximum of 4.x); Qt6 builds of QGIS 3.x also
    read supportsQt6. QGIS's own parser (configparser) must read the file as a whole."""
    import configparser

    parser = configparser.ConfigParser(interpolation=None)
    parser.read(ROOT / "metadata.txt", encoding="utf-8")
    general = parser["general"]
    assert general["qgisMinimumVersion"] == "3.22"
    assert general["qgisMaximumVersion"] == "4.99"
    assert general["supportsQt6"] == "True"
    assert general["license"] == "GPL-2.0-or-later"
    # A changelog the plugin repository shows: the current version first, then the earlier ones.
    changelog = general["changelog"].strip().splitlines()
    assert changelog[0].strip() == general["version"] and len(changelog) > 5
    assert any(line.strip().startswith("0.1.0 ") for line in changelog)
    assert "SPDX-License-Identifier: GPL-2.0-or-later" in (ROOT / "LICENSE").read_text()


def test_unpacked_zip_loads_through_qgis_utils(unpacked, tmp_path):
    script = tmp_path / "load.py"
    script.write_text(LOAD_SCRIPT)
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", QGIS_CUSTOM_CONFIG_PATH=str(tmp_path / "profile"))
    env.pop("PYTHONPATH", None)
    done = subprocess.run([sys.executable, str(script), str(unpacked)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["loaded"] and result["started"]
    assert result["file"].startswith(str(unpacked)), "the plugin was imported from the source tree, not the ZIP"
    assert result["provider"] == "Landslide mapping"
    assert result["metadata_name"] == "Landslide mapping"
    assert set(result["algorithms"]) == expected_algorithms()
    assert result["after_unload"] is False


def test_qgis_process_lists_the_provider(unpacked, tmp_path):
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", QGIS_PLUGINPATH=str(unpacked),
               QGIS_CUSTOM_CONFIG_PATH=str(tmp_path / "profile"))
    env.pop("PYTHONPATH", None)
    enable = subprocess.run([QGIS_PROCESS, "plugins", "enable", "landslide_plugin"], env=env,
                            capture_output=True, text=True, timeout=180)
    assert enable.returncode == 0, enable.stdout + enable.stderr
    listed = subprocess.run([QGIS_PROCESS, "list"], env=env, capture_output=True, text=True, timeout=180)
    assert listed.returncode == 0, listed.stderr
    assert "Landslide mapping" in listed.stdout
    for alg_id in expected_algorithms():
        assert alg_id in listed.stdout, f"{alg_id} missing from qgis_process list"
