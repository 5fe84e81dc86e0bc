"""The co-registration algorithm: shift outputs, aligned raster with NaN no data, clear errors."""
from __future__ import annotations

import ast

import cv2
import numpy as np
import pytest
import rasterio
from rasterio.crs import CRS
from rasterio.transform import from_origin

from landslide_plugin.core import rasters
from landslide_plugin.core.alignment import fourier_shift

BANDS = ("B02", "B03", "B04", "B8A", "B11", "B12")
GRID = {"crs": CRS.from_epsg(32637), "transform": from_origin(300000, 4100000, 20, 20), "width": 144, "height": 128}


def scene(seed=0):
    rng = np.random.default_rng(seed)
    image = np.zeros((GRID["height"], GRID["width"]), np.float32)
    for sigma, amplitude in ((1.5, 0.3), (4.0, 1.0), (12.0, 2.0)):
        image += amplitude * cv2.GaussianBlur(rng.normal(size=image.shape).astype(np.float32), (0, 0), sigma)
    return 0.3 + 0.05 * image


def write_stack(path, bands, descriptions=BANDS):
    with rasterio.open(path, "w", **rasters.geotiff_profile(GRID, len(bands))) as dst:
        dst.write(np.asarray(bands, np.float32))
        for i, name in enumerate(descriptions):
            dst.set_band_description(i + 1, name)


def write_scl(path, scl):
    with rasterio.open(path, "w", **rasters.geotiff_profile(GRID, 1, "uint8", 0)) as dst:
        dst.write(scl, 1)


@pytest.fixture()
def pair(tmp_path):
    dx, dy = -1.8, 2.3
    base = scene()
    pre = np.stack([base * (0.4 + 0.2 * i) for i in range(6)])
    post = np.stack([0.75 * fourier_shift(band, dx, dy) + 0.03 for band in pre])
    paths = {"pre": tmp_path / "pre.tif", "post": tmp_path / "post.tif", "post_scl": tmp_path / "post_scl.tif"}
    write_stack(paths["pre"], pre)
    write_stack(paths["post"], post)
    scl = np.full(base.shape, 4, np.uint8)
    scl[:20, :30] = 9
    write_scl(paths["post_scl"], scl)
    return paths, (dx, dy)


def test_coregister_outputs_shift_and_aligned_raster(run_alg, pair, tmp_path):
    paths, (dx, dy) = pair
    out, out_scl = tmp_path / "aligned.tif", tmp_path / "aligned_scl.tif"
    result = run_alg("coregister_ecc", {
        "REFERENCE": str(paths["pre"]), "INPUT": str(paths["post"]), "INPUT_SCL": str(paths["post_scl"]),
        "OUTPUT": str(out), "OUTPUT_SCL": str(out_scl), "RESAMPLING": 1})
    assert result["SHIFT_X"] == pytest.approx(dx, abs=0.05)
    assert result["SHIFT_Y"] == pytest.approx(dy, abs=0.05)
    assert result["SHIFT_M"] == pytest.approx(20 * np.hypot(dx, dy), abs=1.5)
    assert result["CORRELATION"] > 0.9
    assert result["OUTPUT"] == str(out) and result["OUTPUT_SCL"] == str(out_scl)
    with rasterio.open(out) as src:
        assert src.count == 6 and np.isnan(src.nodata) and src.descriptions == BANDS
        aligned = src.read(4)
    # aligned(x, y) = post(x - 1.8, y + 2.3); post is NaN on its first 3 rows and last 2 columns
    # (content moved in from outside), the aligned image where the bilinear kernel asked for (RESAMPLING 1)
    # reads those or beyond the edge; the default cubic kernel reaches a pixel further.
    nan = np.isnan(aligned)
    assert nan[0].all() and nan[-3:].all() and nan[:, :2].all() and nan[:, -1].all()
    assert not nan[1:-3, 2:-1].any() and not (aligned == 0).any()
    with rasterio.open(out_scl) as src:
        assert set(np.unique(src.read(1))) <= {0, 4, 9}


def test_log_states_the_transform_matrix(run_alg, pair, tmp_path):
    from qgis.core import QgsProcessingFeedback

    class Recorder(QgsProcessingFeedback):
        def __init__(self):
            super().__init__()
            self.lines = []

        def pushInfo(self, info):  # noqa: N802
            self.lines.append(info)
            super().pushInfo(info)

    paths, _ = pair
    feedback = Recorder()
    run_alg("coregister_ecc", {"REFERENCE": str(paths["pre"]), "INPUT": str(paths["post"]),
                               "OUTPUT": str(tmp_path / "aligned.tif")}, feedback=feedback)
    line = next(line for line in feedback.lines if "transform (reference pixel -> image to align)" in line)
    matrix = np.array(ast.literal_eval(line.split(": ", 1)[1]))  # printed as a nested list
    np.testing.assert_allclose(matrix, [[1, 0, -1.8], [0, 1, 2.3]], atol=0.05)


def test_band_number_fallback_and_clear_errors(run_alg, pair, tmp_path):
    from qgis.core import QgsProcessingException

    paths, (dx, dy) = pair
    bare_pre, bare_post = tmp_path / "bare_pre.tif", tmp_path / "bare_post.tif"
    with rasterio.open(paths["pre"]) as src:
        write_stack(bare_pre, src.read(), descriptions=())
    with rasterio.open(paths["post"]) as src:
        write_stack(bare_post, src.read(), descriptions=())
    with pytest.raises(QgsProcessingException, match="band B11 not found"):
        run_alg("coregister_ecc", {"REFERENCE": str(bare_pre), "INPUT": str(bare_post),
                                   "OUTPUT": str(tmp_path / "a.tif")})
    result = run_alg("coregister_ecc", {"REFERENCE": str(bare_pre), "INPUT": str(bare_post), "BAND_NUMBER": 5,
                                        "OUTPUT": str(tmp_path / "a.tif")})
    assert result["SHIFT_X"] == pytest.approx(dx, abs=0.05)
    with pytest.raises(QgsProcessingException, match="beyond the maximum of 1 px"):
        run_alg("coregister_ecc", {"REFERENCE": str(paths["pre"]), "INPUT": str(paths["post"]), "MAX_SHIFT": 1.0,
                                   "OUTPUT": str(tmp_path / "b.tif")})
    assert not (tmp_path / "b.tif").exists()
    with pytest.raises(QgsProcessingException, match="no scene classification of the image to align"):
        run_alg("coregister_ecc", {"REFERENCE": str(paths["pre"]), "INPUT": str(paths["post"]),
                                   "OUTPUT": str(tmp_path / "c.tif"), "OUTPUT_SCL": str(tmp_path / "c_scl.tif")})
