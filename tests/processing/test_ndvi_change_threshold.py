"""NDVI change threshold algorithm on small GeoTIFFs, and the mask / cluster / probability styles."""
from __future__ import annotations

import gc
import math

import numpy as np
import pytest
import rasterio
from qgis.core import (
    QgsPalettedRasterRenderer,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputLayerDefinition,
    QgsProject,
    QgsRasterLayer,
    QgsSingleBandPseudoColorRenderer,
)
from rasterio.crs import CRS
from rasterio.transform import from_origin

from landslide_plugin.core import rasters

GRID = {"crs": CRS.from_epsg(32637), "transform": from_origin(300000, 4100000, 20, 20), "width": 80, "height": 64}
BANDS = ("B02", "B03", "B04", "B8A", "B11")
VEG = (0.04, 0.07, 0.04, 0.40, 0.20)     # NDVI 0.818
BARE = (0.10, 0.12, 0.15, 0.20, 0.30)    # NDVI 0.143
WATER = (0.06, 0.08, 0.04, 0.02, 0.01)   # NDWI 0.6
FIELD = (0.06, 0.08, 0.08, 0.30, 0.22)   # NDVI 0.579: crops before harvest


def write(path, data, *, dtype="float32", nodata=np.nan, descriptions=None, grid=GRID):
    data = np.asarray(data)
    data = data[None] if data.ndim == 2 else data
    with rasterio.open(path, "w", **rasters.geotiff_profile(grid, data.shape[0], dtype=dtype, nodata=nodata)) as dst:
        dst.write(data.astype(dtype))
        for i, d in enumerate(descriptions or []):
            dst.set_band_description(i + 1, d)
    return str(path)


def paint(cover):
    """cover: (row slice, col slice, reflectance tuple) areas painted over a VEG background."""
    data = np.empty((5, 64, 80), "float32")
    data[:] = np.array(VEG, "float32")[:, None, None]
    for rows, cols, values in cover:
        data[:, rows, cols] = np.array(values, "float32")[:, None, None]
    return data


@pytest.fixture()
def scene(tmp_path):
    """A scar on a slope (rows 5-14, cols 5-24), a harvested field on the flat east half (rows 40-49,
    cols 50-69), a drained reservoir (rows 25-29, cols 50-69), a cloud on the post date (cols 0-2)."""
    pre = paint([(slice(40, 50), slice(50, 70), FIELD), (slice(25, 30), slice(50, 70), WATER)])
    post = paint([(slice(5, 15), slice(5, 25), BARE), (slice(40, 50), slice(50, 70), BARE),
                  (slice(25, 30), slice(50, 70), BARE)])
    paths = {
        "PRE": write(tmp_path / "pre.tif", pre, descriptions=BANDS),
        "POST": write(tmp_path / "post.tif", post, descriptions=BANDS),
    }
    scl_pre = np.full((64, 80), 4, "uint8")
    scl_pre[25:30, 50:70] = 6
    scl_post = np.full((64, 80), 5, "uint8")
    scl_post[:, :3] = 9
    paths["PRE_SCL"] = write(tmp_path / "scl_pre.tif", scl_pre, dtype="uint8", nodata=0, descriptions=["SCL"])
    paths["POST_SCL"] = write(tmp_path / "scl_post.tif", scl_post, dtype="uint8", nodata=0, descriptions=["SCL"])
    cols = np.arange(80, dtype="float64")[None, :].repeat(64, 0)
    dem = np.where(cols < 40, cols * 20 * math.tan(math.radians(25)), 40 * 20 * math.tan(math.radians(25)))
    paths["DEM"] = write(tmp_path / "dem.tif", dem + 300, nodata=-9999)
    return paths


def read(path):
    with rasterio.open(path) as src:
        assert src.dtypes[0] == "uint8" and src.nodata == 255
        return src.read(1)


def test_plain_baseline_flags_every_ndvi_drop(run_alg, scene, tmp_path):
    result = run_alg("ndvi_change_threshold", {"PRE": scene["PRE"], "POST": scene["POST"], "EXCLUDE_WATER": False,
                                               "OUTPUT": str(tmp_path / "mask.tif")})
    mask = read(result["OUTPUT"])
    assert (mask[5:15, 5:25] == 1).all()       # the scar
    assert (mask[40:50, 50:70] == 1).all()     # the harvested field: the baseline's known false positive
    assert (mask[25:30, 50:70] == 0).all()     # water -> bare raises NDVI: not flagged
    assert result["LANDSLIDE_PIXELS"] == 400 and (mask == 1).sum() == 400
    assert result["LANDSLIDE_AREA_M2"] == pytest.approx(400 * 400.0)
    assert (mask == 255).sum() == 0


def test_masks_remove_clouds_water_and_flat_fields(run_alg, scene, tmp_path):
    feedback = QgsProcessingFeedback()
    infos = []
    feedback.pushInfo = infos.append
    params = dict(scene, THRESHOLD=-0.3, MIN_SLOPE=15.0, OUTPUT=str(tmp_path / "mask.tif"))
    result = run_alg("ndvi_change_threshold", params, feedback=feedback)
    mask = read(result["OUTPUT"])
    assert (mask[:, :3] == 255).all()          # cloud on the post date: no data
    assert (mask[5:15, 5:25] == 1).all()       # the scar, on a 25 deg slope
    assert (mask[40:50, 50:70] == 0).all()     # the flat field: ruled out by slope
    assert result["LANDSLIDE_PIXELS"] == 200
    text = "\n".join(infos)
    assert "scl 192 px" in text and "water 100 px" in text and "slope" in text
    # The threshold is used: a drop of 0.675 is not below -0.7.
    params.update(THRESHOLD=-0.7, OUTPUT=str(tmp_path / "strict.tif"))
    assert run_alg("ndvi_change_threshold", params)["LANDSLIDE_PIXELS"] == 0


def test_land_cover_and_vegetated_before(run_alg, scene, tmp_path):
    cover = np.full((32, 40), 10, "uint8")
    cover[20:25, 25:35] = 40  # cropland over the field, on a 40 m grid
    coarse = dict(GRID, transform=from_origin(300000, 4100000, 40, 40), width=40, height=32)
    land = write(tmp_path / "worldcover.tif", cover, dtype="uint8", nodata=0, grid=coarse)
    result = run_alg("ndvi_change_threshold", {"PRE": scene["PRE"], "POST": scene["POST"], "EXCLUSION": land,
                                               "EXCLUSION_CLASSES": "40", "OUTPUT": str(tmp_path / "m.tif")})
    mask = read(result["OUTPUT"])
    assert (mask[40:50, 50:70] == 0).all() and (mask[5:15, 5:25] == 1).all()
    assert result["LANDSLIDE_PIXELS"] == 200
    result = run_alg("ndvi_change_threshold", {"PRE": scene["PRE"], "POST": scene["POST"], "MIN_NDVI_PRE": 0.7,
                                               "OUTPUT": str(tmp_path / "v.tif")})
    assert result["LANDSLIDE_PIXELS"] == 200  # the field's NDVI before was 0.58
    with pytest.raises(QgsProcessingException, match="not whole numbers"):
        run_alg("ndvi_change_threshold", {"PRE": scene["PRE"], "POST": scene["POST"], "EXCLUSION": land,
                                          "EXCLUSION_CLASSES": "crops", "OUTPUT": str(tmp_path / "x.tif")})


def test_clear_errors(run_alg, scene, tmp_path):
    shifted = dict(GRID, transform=from_origin(300040, 4100000, 20, 20))
    other = write(tmp_path / "other.tif", paint([]), descriptions=BANDS, grid=shifted)
    with pytest.raises(QgsProcessingException, match="not on the same grid.*Co-register"):
        run_alg("ndvi_change_threshold", {"PRE": scene["PRE"], "POST": other, "OUTPUT": str(tmp_path / "m.tif")})
    two = write(tmp_path / "two.tif", paint([])[:2], descriptions=["B02", "B03"])
    with pytest.raises(QgsProcessingException, match=r"two\.tif"):
        run_alg("ndvi_change_threshold", {"PRE": two, "POST": two, "OUTPUT": str(tmp_path / "m.tif")})
    assert not (tmp_path / "m.tif").exists()


def test_mask_loads_styled(provider, scene, tmp_path):
    import processing
    from processing.gui.Postprocessing import handleAlgorithmResults

    project = QgsProject()
    context = QgsProcessingContext()
    context.setProject(project)

    def finish(alg, ctx, fb):
        gc.collect()
        handleAlgorithmResults(alg, ctx, fb)

    output = QgsProcessingOutputLayerDefinition(str(tmp_path / "mask.tif"), project)
    processing.run("landslide:ndvi_change_threshold", {"PRE": scene["PRE"], "POST": scene["POST"],
                                                       "OUTPUT": output},
                   onFinish=finish, context=context, feedback=QgsProcessingFeedback())
    (layer,) = project.mapLayers().values()
    renderer = layer.renderer()
    assert isinstance(renderer, QgsPalettedRasterRenderer)
    classes = {c.value: c for c in renderer.classes()}
    assert classes[1].label == "landslide" and classes[1].color.name() == "#e31a1c"
    assert classes[0].label == "no landslide" and classes[0].color.alpha() == 0
    assert layer.dataProvider().sourceNoDataValue(1) == 255


def test_cluster_and_probability_styles(qgis_app, tmp_path):
    from landslide_plugin.processing import styles

    clusters = write(tmp_path / "clusters.tif", np.arange(64 * 80).reshape(64, 80) % 4, dtype="uint8", nodata=255)
    layer = QgsRasterLayer(clusters, "clusters")
    styles.style_clusters(layer, 4, 2)
    classes = layer.renderer().classes()
    assert [c.value for c in classes] == [0, 1, 2, 3]
    assert [c.label for c in classes] == ["cluster 0", "cluster 1", "cluster 2 (landslide)", "cluster 3"]
    assert classes[2].color.name() == "#e31a1c"
    others = {c.color.name() for c in classes if c.value != 2}
    assert len(others) == 3 and "#e31a1c" not in others
    probability = write(tmp_path / "p.tif", np.linspace(0, 1, 64 * 80).reshape(64, 80))
    layer = QgsRasterLayer(probability, "p")
    styles.style_probability(layer)
    assert isinstance(layer.renderer(), QgsSingleBandPseudoColorRenderer)
    items = layer.renderer().shader().rasterShaderFunction().colorRampItemList()
    assert items[0].value == 0 and items[0].color.alpha() == 0
    assert items[-1].value == 1 and items[-1].color.red() > 150 and items[-1].color.green() < 50
    # A post-processor only applies to outputs that are loaded.
    assert styles.load_styled(QgsProcessingContext(), probability, "p", styles.style_probability) is None
    context = QgsProcessingContext()
    context.addLayerToLoadOnCompletion(probability, QgsProcessingContext.LayerDetails("p", QgsProject(), "OUT"))
    processor = styles.load_styled(context, probability, "Probability", styles.style_probability)
    assert processor in styles.StylePostProcessor.alive
    assert context.layerToLoadOnCompletionDetails(probability).name == "Probability"
