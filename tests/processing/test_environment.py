"""Guards against the platform traps in ../shared/notes/qgis-platform.md (numpy shadowing, PROJ clashes)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest


def test_qgis_processing_and_scientific_stack_in_one_process(qgis_app, qgis_processing):
    import cv2
    import rasterio
    import sklearn
    from qgis.core import Qgis, QgsApplication

    assert Qgis.QGIS_VERSION_INT >= 32200
    assert QgsApplication.processingRegistry().providerById("native") is not None
    assert rasterio.__version__ and sklearn.__version__ and cv2.__version__
    # opencv-python (not headless) would bring its own Qt into the QGIS process.
    assert "QT" not in cv2.getBuildInformation().split("GUI:")[1].splitlines()[0].upper()


def test_gdal_array_imports_with_the_venv_numpy():
    from osgeo import gdal_array

    arr = gdal_array.OpenArray(np.arange(6, dtype="uint8").reshape(2, 3))
    assert arr.RasterXSize == 3 and arr.RasterYSize == 2


# Writes a GeoTIFF with rasterio and opens it with QGIS in the same process; prints what both saw.
AGREEMENT_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    from qgis.core import QgsApplication, QgsRasterLayer
    app = QgsApplication([], False)
    app.initQgis()
    from landslide_plugin.core import rasters  # applies the plugin's PROJ set-up for rasterio
    import rasterio
    from rasterio.crs import CRS
    from rasterio.transform import from_origin
    path = sys.argv[1]
    profile = rasters.geotiff_profile(
        {"crs": CRS.from_epsg(32637), "transform": from_origin(399960.0, 4100040.0, 20.0, 20.0),
         "width": 30, "height": 20}, count=1)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.ones((1, 20, 30), "float32"))
    with rasterio.open(path) as src:
        rio = {"epsg": src.crs.to_epsg(), "bounds": list(src.bounds)}
    layer = QgsRasterLayer(path, "t", "gdal")
    ext = layer.extent()
    qgis = {"authid": layer.crs().authid(),
            "bounds": [ext.xMinimum(), ext.yMinimum(), ext.xMaximum(), ext.yMaximum()]}
    print(json.dumps({"rasterio": rio, "qgis": qgis, "valid": layer.isValid()}), flush=True)
    del layer
    app.exitQgis()
    """
)


@pytest.mark.parametrize("proj_env", [None, "/usr/share/proj"], ids=["default", "PROJ_LIB=system"])
def test_rasterio_and_qgis_agree_on_crs_and_geotransform(tmp_path, proj_env):
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    env.pop("PROJ_LIB", None)
    env.pop("PROJ_DATA", None)
    if proj_env:
        env["PROJ_LIB"] = env["PROJ_DATA"] = proj_env
    script = tmp_path / "agree.py"
    script.write_text(AGREEMENT_SCRIPT)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    done = subprocess.run([sys.executable, str(script), str(tmp_path / "t.tif")], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["valid"]
    assert seen["rasterio"]["epsg"] == 32637
    assert seen["qgis"]["authid"] == "EPSG:32637"
    assert seen["rasterio"]["bounds"] == pytest.approx([399960.0, 4099640.0, 400560.0, 4100040.0])
    assert seen["qgis"]["bounds"] == pytest.approx(seen["rasterio"]["bounds"])
