"""The "Landslide polygons" algorithm through processing.run()."""
from __future__ import annotations

import numpy as np
import pytest
import rasterio
from qgis.core import NULL, QgsProcessingException, QgsVectorLayer, QgsWkbTypes
from rasterio.transform import from_origin

SIZE = 48
TRANSFORM = from_origin(400000.0, 4000000.0, 20.0, 20.0)


def write(path, bands, dtype, nodata, descriptions=()):
    with rasterio.open(path, "w", driver="GTiff", width=SIZE, height=SIZE, count=len(bands), dtype=dtype,
                       nodata=nodata, crs="EPSG:32637", transform=TRANSFORM) as dst:
        for i, band in enumerate(bands):
            dst.write(np.asarray(band).astype(dtype), i + 1)
        for i, d in enumerate(descriptions):
            dst.set_band_description(i + 1, d)
    return str(path)


@pytest.fixture()
def scene(tmp_path):
    mask = np.zeros((SIZE, SIZE), np.uint8)
    mask[5:11, 5:12] = 1          # 42-px scar
    mask[25:30, 30:34] = 1        # 20-px scar
    mask[40, 2:30] = 1            # a 1-px line (co-registration edge): removed by the opening
    mask[2, 40] = 1               # a speck
    mask[44:, :] = 255
    rng = np.random.default_rng(0)
    prob = rng.uniform(0, 1, (SIZE, SIZE)).astype(np.float32)
    red_pre, nir_pre = np.full((SIZE, SIZE), 0.04), np.full((SIZE, SIZE), 0.36)
    red_post, nir_post = red_pre.copy(), nir_pre.copy()
    red_post[mask == 1], nir_post[mask == 1] = 0.15, 0.21
    return {
        "mask": write(tmp_path / "mask.tif", [mask], "uint8", 255),
        "prob": write(tmp_path / "prob.tif", [prob], "float32", np.nan),
        "pre": write(tmp_path / "pre.tif", [red_pre, nir_pre], "float32", np.nan, ("B04", "B8A")),
        "post": write(tmp_path / "post.tif", [red_post, nir_post], "float32", np.nan, ("B04", "B8A")),
        "mask_array": mask, "prob_array": prob, "dir": tmp_path,
    }


def test_polygons_with_statistics(run_alg, scene, provider):
    from landslide_plugin.core.polygons import clean_mask

    alg = provider.algorithm("landslide_polygons")
    assert all(p.help() for p in alg.parameterDefinitions())
    out = str(scene["dir"] / "scars.gpkg")
    result = run_alg("landslide_polygons", {"INPUT": scene["mask"], "PRE": scene["pre"], "POST": scene["post"],
                                            "PROBABILITY": scene["prob"], "OUTPUT": out})
    assert result["POLYGON_COUNT"] == 2
    layer = QgsVectorLayer(result["OUTPUT"], "scars", "ogr")
    assert layer.isValid() and layer.featureCount() == 2
    assert layer.crs().authid() == "EPSG:32637"
    assert QgsWkbTypes.geometryType(layer.wkbType()) == QgsWkbTypes.PolygonGeometry
    names = [f.name() for f in layer.fields()]
    assert names[-6:] == ["id", "area_m2", "n_pixels", "mean_dndvi", "mean_slope", "mean_prob"]
    cleaned = clean_mask(scene["mask_array"], opening_px=1, min_area_m2=1600, pixel_area_m2=400)
    features = sorted(layer.getFeatures(), key=lambda f: f["id"])
    ndvi_pre, ndvi_post = (0.36 - 0.04) / 0.40, (0.21 - 0.15) / 0.36
    total = 0
    for feature in features:
        assert feature.geometry().area() == pytest.approx(feature["area_m2"])
        assert feature["area_m2"] == feature["n_pixels"] * 400
        assert feature["mean_dndvi"] == pytest.approx(ndvi_post - ndvi_pre, abs=1e-5)
        assert feature["mean_slope"] == NULL       # no DEM given
        total += feature["n_pixels"]
    assert total == int((cleaned == 1).sum())
    # the first scar's probability: mean over its cleaned pixels
    first = np.zeros(cleaned.shape, bool)
    first[:20] = cleaned[:20] == 1
    assert features[0]["mean_prob"] == pytest.approx(float(scene["prob_array"][first].mean()), abs=1e-6)


def test_without_opening_or_minimum_every_group_is_kept(run_alg, scene):
    out = str(scene["dir"] / "all.gpkg")
    result = run_alg("landslide_polygons", {"INPUT": scene["mask"], "OPENING": 0, "MIN_AREA": 0, "OUTPUT": out})
    assert result["POLYGON_COUNT"] == 4
    layer = QgsVectorLayer(result["OUTPUT"], "all", "ogr")
    assert sorted(f["n_pixels"] for f in layer.getFeatures()) == [1, 20, 28, 42]


def test_half_a_dndvi_source_is_refused(run_alg, scene):
    with pytest.raises(QgsProcessingException) as info:
        run_alg("landslide_polygons", {"INPUT": scene["mask"], "PRE": scene["pre"],
                                       "OUTPUT": str(scene["dir"] / "x.gpkg")})
    assert "both the pre-event and the post-event" in str(info.value)
