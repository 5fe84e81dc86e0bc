"""Which optional Python packages are present and usable, and how to install the missing ones.

The plugin loads without any of them (QGIS must always be able to start it); algorithms ask
``check(...)`` and refuse to run with a message that carries the exact install command.
This module imports neither qgis nor the packages it checks at import time.
"""
from __future__ import annotations

import importlib
import platform
from dataclasses import dataclass


@dataclass(frozen=True)
class Dependency:
    module: str          # import name
    pip: str             # PyPI name
    apt: str             # Debian/Ubuntu package
    minimum: str         # oldest version known to work
    purpose: str         # what the plugin uses it for


DEPENDENCIES = {
    "numpy": Dependency("numpy", "numpy", "python3-numpy", "1.21", "arrays (QGIS ships it)"),
    "rasterio": Dependency("rasterio", "rasterio", "python3-rasterio", "1.3", "reading and writing rasters"),
    "sklearn": Dependency("sklearn", "scikit-learn", "python3-sklearn", "1.0",
                          "K-means and Gaussian mixture clustering"),
    "cv2": Dependency("cv2", "opencv-python-headless", "python3-opencv", "4.5",
                      "ECC co-registration and morphology"),
    "requests": Dependency("requests", "requests", "python3-requests", "2.25", "Copernicus Data Space access"),
    "matplotlib": Dependency("matplotlib", "matplotlib", "python3-matplotlib", "3.5", "report figures"),
}

#: What most algorithms need.
CORE = ("numpy", "rasterio", "sklearn", "cv2")


@dataclass(frozen=True)
class Problem:
    name: str
    message: str
    pip: str


def _version_tuple(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


def numpy_problem() -> Problem | None:
    """A numpy that QGIS's own GDAL bindings cannot use (typically numpy 2 shadowing the system's 1.x)."""
    try:
        import numpy
    except Exception as exc:  # pragma: no cover - QGIS always ships numpy
        return Problem("numpy", f"numpy cannot be imported ({exc})", "numpy")
    try:
        import osgeo  # noqa: F401
    except ImportError:
        return None  # no GDAL Python bindings at all: nothing for numpy to break
    try:
        from osgeo import gdal_array  # noqa: F401
    except Exception as exc:  # numpy 2's "_ARRAY_API not found" is not always an ImportError
        return Problem(
            "numpy",
            f"numpy {numpy.__version__} breaks QGIS's GDAL bindings (from osgeo import gdal_array: {exc}); "
            "a newer numpy installed with pip is shadowing the one QGIS was built with",
            "numpy<2",
        )
    return None


def check(names=CORE) -> list[Problem]:
    """Problems with the named dependencies (keys of ``DEPENDENCIES``); empty when all are usable."""
    problems = []
    for name in names:
        dep = DEPENDENCIES[name]
        if name == "numpy":
            problem = numpy_problem()
            if problem:
                problems.append(problem)
                continue
        try:
            module = importlib.import_module(dep.module)
        except Exception as exc:
            problems.append(Problem(name, f"{dep.pip} is not installed ({exc}); needed for {dep.purpose}", dep.pip))
            continue
        version = getattr(module, "__version__", "0")
        if _version_tuple(version) < _version_tuple(dep.minimum):
            problems.append(Problem(
                name, f"{dep.pip} {version} is too old (need {dep.minimum} or newer) for {dep.purpose}",
                f"{dep.pip}>={dep.minimum}"))
        elif name == "cv2" and "QT" in _cv2_gui(module):
            # opencv-python bundles Qt and rewrites QT_QPA_PLATFORM_PLUGIN_PATH on import.
            problems.append(Problem(
                name, "opencv-python (with its own Qt) is installed; inside QGIS use opencv-python-headless",
                "opencv-python-headless"))
    return problems


def _cv2_gui(module) -> str:
    try:
        info = module.getBuildInformation()
    except Exception:
        return ""
    for line in info.splitlines():
        if line.strip().startswith("GUI:"):
            return line.split(":", 1)[1].strip().upper()
    return ""


def _module_version(name: str) -> str | None:
    """``name.__version__``, or None when the module cannot be imported (then no version pin is suggested)."""
    try:
        module = importlib.import_module(name)
    except Exception:  # a broken install raises more than ImportError
        return None
    return getattr(module, "__version__", None)


def install_command(problems: list[Problem], system: str | None = None) -> str:
    """The command a user of this platform runs to fix ``problems``."""
    system = system or platform.system()
    pips = " ".join(f'"{p.pip}"' for p in problems)
    numpy_pin = ""
    numpy_version = _module_version("numpy")
    if numpy_version and numpy_version.startswith("1.") and not any(p.name == "numpy" for p in problems):
        numpy_pin = f' "numpy=={numpy_version}"'  # keep pip from replacing QGIS's numpy 1.x with a 2.x
    if system == "Windows":
        return f"In the OSGeo4W Shell (Start menu > QGIS > OSGeo4W Shell): python -m pip install {pips}{numpy_pin}"
    if system == "Darwin":
        return ("In Terminal: /Applications/QGIS.app/Contents/MacOS/bin/python3 -m pip install --user "
                f"{pips}{numpy_pin}")
    apt = " ".join(DEPENDENCIES[p.name].apt for p in problems if p.name in DEPENDENCIES)
    return f"In a terminal: sudo apt install {apt}   (or: python3 -m pip install --user {pips}{numpy_pin})"


def report(names=CORE, system: str | None = None) -> str:
    """A message for the user, empty when everything is usable."""
    problems = check(names)
    if not problems:
        return ""
    lines = [p.message for p in problems]
    lines.append("Fix: " + install_command(problems, system))
    return "\n".join(lines)
