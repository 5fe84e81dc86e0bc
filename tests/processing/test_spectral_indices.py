"""Spectral indices algorithm on small GeoTIFFs, and the index styles."""
from __future__ import annotations

import gc

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
VEG = (0.04, 0.07, 0.04, 0.40, 0.20)


def write_stack(path, reflectance=VEG, *, descriptions=True, count=5):
    data = np.empty((count, 64, 80), dtype="float32")
    for i in range(count):
        data[i] = reflectance[i % len(reflectance)]
    data[2, 0, 0] = np.nan  # one no-data pixel (red)
    data[:, 1, 1] = -0.003  # dark water after the offset: all bands slightly negative
    with rasterio.open(path, "w", **rasters.geotiff_profile(GRID, count)) as dst:
        dst.write(data)
        if descriptions:
            for i, band in enumerate(BANDS[:count]):
                dst.set_band_description(i + 1, band)
    return str(path)


def test_indices_with_band_descriptions(run_alg, tmp_path):
    stack = write_stack(tmp_path / "stack.tif")
    before = (tmp_path / "stack.tif").read_bytes()
    result = run_alg("spectral_indices", {"INPUT": stack, "INDICES": [2, 0], "OUTPUT": str(tmp_path / "idx.tif")})
    assert (tmp_path / "stack.tif").read_bytes() == before
    with rasterio.open(result["OUTPUT"]) as src:
        assert src.descriptions == ("NDVI", "NDWI")  # the options' order, whatever the click order
        assert src.dtypes == ("float32", "float32")
        ndvi, ndwi = src.read()
    assert ndvi[10, 10] == pytest.approx(0.36 / 0.44, abs=1e-6)
    assert ndwi[10, 10] == pytest.approx(-0.33 / 0.47, abs=1e-6)
    assert np.isnan(ndvi[0, 0]) and not np.isnan(ndwi[0, 0])
    assert np.isnan(ndvi[1, 1]) and np.isnan(ndwi[1, 1])  # no signal: no data, not +-1


def test_indices_by_band_number_warn_and_errors_name_the_raster(run_alg, tmp_path):
    plain = write_stack(tmp_path / "plain.tif", descriptions=False)
    feedback = QgsProcessingFeedback()
    messages = []
    feedback.pushWarning = messages.append
    result = run_alg("spectral_indices", {"INPUT": plain, "INDICES": [1], "OUTPUT": str(tmp_path / "bsi.tif")},
                     feedback=feedback)
    with rasterio.open(result["OUTPUT"]) as src:
        assert src.descriptions == ("BSI",)
        assert src.read(1)[5, 5] == pytest.approx((0.24 - 0.44) / 0.68, abs=1e-6)
    assert any("band numbers" in m and "B02=1" in m for m in messages)
    # Swapped numbers change the result: the numbers are really used.
    result = run_alg("spectral_indices", {"INPUT": plain, "INDICES": [0], "BAND_RED": 4, "BAND_NIR": 3,
                                          "OUTPUT": str(tmp_path / "swapped.tif")})
    with rasterio.open(result["OUTPUT"]) as src:
        assert src.read(1)[5, 5] == pytest.approx(-0.36 / 0.44, abs=1e-6)
    short = write_stack(tmp_path / "short.tif", descriptions=False, count=3)
    with pytest.raises(QgsProcessingException, match=r"band number 4 for B8A does not exist in .*short\.tif"):
        run_alg("spectral_indices", {"INPUT": short, "INDICES": [0], "OUTPUT": str(tmp_path / "no.tif")})
    assert not (tmp_path / "no.tif").exists()


def test_cancelled_run_leaves_no_output(run_alg, tmp_path):
    stack = write_stack(tmp_path / "stack.tif")
    feedback = QgsProcessingFeedback()
    feedback.cancel()
    with pytest.raises(QgsProcessingException, match="Cancelled"):
        run_alg("spectral_indices", {"INPUT": stack, "OUTPUT": str(tmp_path / "idx.tif")}, feedback=feedback)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stack.tif"]


def test_output_loads_styled_even_after_garbage_collection(provider, tmp_path):
    import processing
    from processing.gui.Postprocessing import handleAlgorithmResults

    stack = write_stack(tmp_path / "stack.tif")
    project = QgsProject()
    context = QgsProcessingContext()
    context.setProject(project)
    feedback = QgsProcessingFeedback()

    def finish(alg, ctx, fb):
        gc.collect()  # the post-processor must survive until QGIS loads the layer
        handleAlgorithmResults(alg, ctx, fb)

    output = QgsProcessingOutputLayerDefinition(str(tmp_path / "idx.tif"), project)
    processing.run("landslide:spectral_indices", {"INPUT": stack, "INDICES": [0, 1], "OUTPUT": output},
                   onFinish=finish, context=context, feedback=feedback)
    layers = list(project.mapLayers().values())
    assert len(layers) == 1
    renderer = layers[0].renderer()
    assert isinstance(renderer, QgsSingleBandPseudoColorRenderer)
    assert renderer.band() == 1
    items = renderer.shader().rasterShaderFunction().colorRampItemList()
    assert items[0].value == -1 and items[-1].value == 1
    assert items[-1].color.green() > items[-1].color.red()  # NDVI: green at +1
    assert items[0].color.red() > items[0].color.green()    # brown at -1


def test_index_styles_pick_the_named_band(qgis_app, tmp_path):
    from landslide_plugin.processing import styles

    path = tmp_path / "feat.tif"
    with rasterio.open(path, "w", **rasters.geotiff_profile(GRID, 2)) as dst:
        dst.write(np.zeros((2, 64, 80), "float32"))
        dst.set_band_description(1, "NDVI_pre")
        dst.set_band_description(2, "dNDVI")
    layer = QgsRasterLayer(str(path), "features")
    assert layer.isValid()
    styles.style_index(layer, "dNDVI")
    renderer = layer.renderer()
    assert renderer.band() == 2
    items = renderer.shader().rasterShaderFunction().colorRampItemList()
    values = [i.value for i in items]
    assert values[0] == -1 and values[-1] == 1 and 0.0 in values
    white = items[values.index(0.0)].color
    assert min(white.red(), white.green(), white.blue()) > 240
    assert items[0].color.red() > 150 and items[0].color.green() < 50  # red for NDVI loss
    styles.style_index(layer, "NDVI_pre")
    assert layer.renderer().band() == 1
    assert not isinstance(layer.renderer(), QgsPalettedRasterRenderer)


def test_every_algorithm_runs_with_gdals_cache_bounded_and_gives_it_back(run_alg, tmp_path, monkeypatch):
    """The bound is the base class's: any algorithm's processAlgorithm runs inside it (here: the indices)."""
    from landslide_plugin.core import indices

    before = rasters.gdal_cache_max_bytes()
    write = indices.write_indices
    during = []

    def write_and_look(*args, **kwargs):
        during.append(rasters.gdal_cache_max_bytes())
        return write(*args, **kwargs)

    monkeypatch.setattr(indices, "write_indices", write_and_look)
    run_alg("spectral_indices", {"INPUT": write_stack(tmp_path / "s.tif"), "OUTPUT": str(tmp_path / "i.tif")})
    assert during == [min(before, rasters.GDAL_CACHE_BOUND_MB * 2**20)]
    assert rasters.gdal_cache_max_bytes() == before
