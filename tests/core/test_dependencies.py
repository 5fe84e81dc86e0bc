"""The dependency check names what is missing and gives each platform's exact install command."""
from __future__ import annotations

import builtins

import pytest

from landslide_plugin import dependencies


def test_everything_is_usable_in_the_test_environment():
    assert dependencies.check(dependencies.CORE + ("requests", "matplotlib")) == []
    assert dependencies.report() == ""


@pytest.fixture()
def without_module(monkeypatch):
    real_import = builtins.__import__

    def hide(name):
        def fake_import(mod, *args, **kwargs):
            if mod == name or mod.startswith(name + "."):
                raise ImportError(f"No module named '{name}'")
            return real_import(mod, *args, **kwargs)

        monkeypatch.delitem(__import__("sys").modules, name, raising=False)
        monkeypatch.setattr(builtins, "__import__", fake_import)

    return hide


def test_missing_package_is_reported_with_install_commands(without_module):
    without_module("sklearn")
    problems = dependencies.check(("sklearn", "rasterio"))
    assert [p.name for p in problems] == ["sklearn"]
    assert "scikit-learn is not installed" in problems[0].message
    linux = dependencies.install_command(problems, "Linux")
    assert "sudo apt install python3-sklearn" in linux and '"scikit-learn"' in linux
    windows = dependencies.install_command(problems, "Windows")
    assert "OSGeo4W Shell" in windows and 'python -m pip install "scikit-learn"' in windows
    mac = dependencies.install_command(problems, "Darwin")
    assert mac.startswith("In Terminal: /Applications/QGIS.app/Contents/MacOS/bin/python3 -m pip install")
    # pip must not replace QGIS's numpy while installing the missing package
    import numpy

    assert f'"numpy=={numpy.__version__}"' in linux


def test_too_old_version_is_reported(monkeypatch):
    import rasterio

    monkeypatch.setattr(rasterio, "__version__", "1.2.10")
    problems = dependencies.check(("rasterio",))
    assert problems and "rasterio 1.2.10 is too old" in problems[0].message
    assert problems[0].pip == "rasterio>=1.3"


def test_numpy_that_breaks_gdal_is_detected(monkeypatch):
    # What a pip-installed numpy 2 does to QGIS's GDAL bindings, as Python sees it.
    import sys

    import osgeo
    from osgeo import gdal_array  # noqa: F401

    monkeypatch.delattr(osgeo, "gdal_array")
    monkeypatch.setitem(sys.modules, "osgeo.gdal_array", None)
    problem = dependencies.numpy_problem()
    assert problem is not None and "breaks QGIS's GDAL bindings" in problem.message
    assert problem.pip == "numpy<2"
    assert dependencies.check(("numpy",))[0].message == problem.message


def test_opencv_with_qt_is_refused(monkeypatch):
    import cv2

    monkeypatch.setattr(cv2, "getBuildInformation", lambda: "  GUI:                           QT5\n")
    problems = dependencies.check(("cv2",))
    assert problems and "opencv-python-headless" in problems[0].message
