"""Composite Sentinel-2 L2A products through processing.run()."""
from __future__ import annotations

import numpy as np
import pytest
import rasterio
from qgis.core import QgsProcessingException

from landslide_plugin.core import rasters
from landslide_plugin.examples.example_data import simulate_scene, write_date_product

CLOUD = (8, 24, 8, 24)


@pytest.fixture(scope="module")
def period(tmp_path_factory):
    folder = tmp_path_factory.mktemp("composite_alg")
    scene = simulate_scene(48, 5, pre_date="2022-06-01", post_date="2023-06-01", cloud_fraction=(0.0, 0.0))
    return [str(write_date_product(scene, folder / day, date=day, after_event=False, noise_seed=k,
                                   cloud_boxes=[CLOUD] if k == 0 else [])[0])
            for k, day in enumerate(("2022-06-01", "2022-06-06", "2022-06-11"))]


@pytest.mark.parametrize("method", [0, 1])
def test_composite_of_a_period_chains_into_the_next_steps(run_alg, period, tmp_path, method):
    result = run_alg("composite_s2_l2a", {"INPUT": period, "METHOD": method, "OUTPUT": str(tmp_path / "c.tif"),
                                          "OUTPUT_SCL": str(tmp_path / "c_scl.tif"),
                                          "OUTPUT_COUNT": str(tmp_path / "count.tif")})
    assert result["DATES"] == "2022-06-01,2022-06-06,2022-06-11" and result["DATE_COUNT"] == 3
    assert result["OBSERVED_PERCENT"] > 95
    with rasterio.open(result["OUTPUT_COUNT"]) as src:
        count = src.read(1)
    assert (count[CLOUD[0]:CLOUD[1], CLOUD[2]:CLOUD[3]] <= 2).all()
    with rasterio.open(result["OUTPUT"]) as src:
        assert np.nanmax(rasters.read_reflectance(src, 1)[CLOUD[0]:CLOUD[1], CLOUD[2]:CLOUD[3]]) < 0.3
    # The composite is a stack like any other: the indices read it.
    indices = run_alg("spectral_indices", {"INPUT": result["OUTPUT"], "OUTPUT": str(tmp_path / "i.tif")})
    assert indices["OUTPUT"]


def test_no_product_is_refused(run_alg, tmp_path):
    with pytest.raises(QgsProcessingException):
        run_alg("composite_s2_l2a", {"INPUT": [], "OUTPUT": str(tmp_path / "c.tif"),
                                     "OUTPUT_SCL": str(tmp_path / "s.tif"), "OUTPUT_COUNT": str(tmp_path / "n.tif")})
