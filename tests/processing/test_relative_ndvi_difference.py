"""Relative NDVI difference (rdNDVI) as a layer and an optional threshold mask."""
from __future__ import annotations

import numpy as np
import pytest
import rasterio
from qgis.core import QgsProcessingContext, QgsProcessingException, QgsRasterLayer

from landslide_plugin.core import indices, rasters


@pytest.fixture(scope="module")
def prepared(example_pair, tmp_path_factory, provider):
    import processing
    from qgis.core import QgsProcessingFeedback

    folder = tmp_path_factory.mktemp("rdndvi")
    out = {}
    for which, product in (("pre", example_pair.pre), ("post", example_pair.post)):
        result = processing.run("landslide:prepare_s2_l2a", {
            "INPUT": [str(product)], "OUTPUT": str(folder / f"{which}.tif"),
            "OUTPUT_SCL": str(folder / f"{which}_scl.tif")}, feedback=QgsProcessingFeedback(), is_child_algorithm=True)
        out[which], out[which + "_scl"] = result["OUTPUT"], result["OUTPUT_SCL"]
    return out


def test_rdndvi_layer_and_mask(run_alg, prepared, example_pair, tmp_path):
    context = QgsProcessingContext()
    result = run_alg("relative_ndvi_difference", {
        "PRE": prepared["pre"], "POST": prepared["post"], "PRE_SCL": prepared["pre_scl"],
        "POST_SCL": prepared["post_scl"], "THRESHOLD": -0.2, "OUTPUT": str(tmp_path / "rdndvi.tif"),
        "OUTPUT_MASK": str(tmp_path / "mask.tif")}, context=context)
    with rasterio.open(result["OUTPUT"]) as src:
        assert src.descriptions == ("rdNDVI",) and src.dtypes[0] == "float32"
        values = src.read(1)
    with rasterio.open(prepared["pre"]) as pre, rasterio.open(prepared["post"]) as post, \
            rasterio.open(prepared["post_scl"]) as scl, rasterio.open(example_pair.truth) as truth_src:
        names = list(pre.descriptions)
        ndvi = [indices.ndvi(rasters.read_reflectance(s, names.index("B04") + 1),
                             rasters.read_reflectance(s, names.index("B8A") + 1)) for s in (pre, post)]
        cloudy = np.isin(scl.read(1), (0, 1, 3, 8, 9, 10, 11))
        truth = truth_src.read(1) == 1
    expected = indices.relative_dndvi(*ndvi)
    keep = np.isfinite(values)
    np.testing.assert_allclose(values[keep], expected[keep], atol=1e-6)
    assert not keep[cloudy].any()  # clouds and no data of the post date are no data
    assert np.abs(values[keep]).max() <= indices.RDNDVI_BOUND + 1e-6
    # Scars lose vegetation: their rdNDVI is below the rest (January against August: the season moves everything).
    assert np.nanmedian(values[truth & keep]) < np.nanmedian(values[~truth & keep])
    with rasterio.open(result["OUTPUT_MASK"]) as src:
        mask = src.read(1)
        assert src.nodata == 255
    assert set(np.unique(mask)) <= {0, 1, 255}
    assert ((mask == 1) == (keep & (values < -0.2))).all() and ((mask == 255) == ~keep).all()
    assert result["BELOW_PIXELS"] == int((mask == 1).sum()) and result["VALID_PIXELS"] == int(keep.sum())
    assert QgsRasterLayer(result["OUTPUT"], "rdndvi").isValid()


def test_a_mask_without_threshold_is_refused(run_alg, prepared, tmp_path):
    with pytest.raises(QgsProcessingException, match="needs a threshold"):
        run_alg("relative_ndvi_difference", {"PRE": prepared["pre"], "POST": prepared["post"],
                                             "OUTPUT": str(tmp_path / "r.tif"), "OUTPUT_MASK": str(tmp_path / "m.tif")})
