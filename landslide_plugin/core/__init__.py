"""The QGIS-free core: numpy, rasterio, scikit-learn, OpenCV and requests. Never imports qgis.

Conventions shared by every module:
- rasters move between stages as GeoTIFF files (float32, NaN as no data, band descriptions
  such as "B04" or "NDVI"), read and written block by block (see ``rasters``);
- long functions take ``progress`` (a callable receiving 0..100) and ``is_cancelled`` (a callable
  returning True to stop); a stop raises ``rasters.Cancelled`` and leaves no output behind;
- outputs are written to a temporary file and renamed only when complete.
"""
from __future__ import annotations

import os


def _use_bundled_proj_data() -> None:
    """Point a wheel-installed rasterio at its own PROJ database.

    rasterio wheels carry their own GDAL/PROJ (newer than QGIS's). When PROJ_LIB/PROJ_DATA point at
    the system PROJ (QGIS launchers set them), that rasterio reads the system's older proj.db and
    every CRS look-up fails. Setting the search path on rasterio's own PROJ leaves QGIS's untouched.
    """
    try:
        import rasterio
        from rasterio._env import set_proj_data_search_path
    except Exception:
        return
    bundled = os.path.join(os.path.dirname(rasterio.__file__), "proj_data")
    if os.path.isfile(os.path.join(bundled, "proj.db")):
        set_proj_data_search_path(bundled)


_use_bundled_proj_data()
