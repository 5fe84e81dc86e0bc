"""The "Prepare Sentinel-2 L2A product" algorithm through processing.run()."""
from __future__ import annotations

import datetime
import os
import shutil

import numpy as np
import pytest
import rasterio
from qgis.core import (
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputLayerDefinition,
    QgsProject,
)

from landslide_plugin.core import rasters
from landslide_plugin.examples.safe_format import write_l2a_product

pytestmark = pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")

BANDS = ("B02", "B03", "B04", "B8A", "B11", "B12")


class Recorder(QgsProcessingFeedback):
    def __init__(self):
        super().__init__()
        self.infos, self.warnings, self.errors = [], [], []

    def pushInfo(self, text):  # noqa: N802
        self.infos.append(text)

    def pushWarning(self, text):  # noqa: N802
        self.warnings.append(text)

    def reportError(self, text, fatalError=False):  # noqa: N802, N803
        self.errors.append(text)


@pytest.fixture()
def product(tmp_path):
    rows, cols = np.mgrid[0:32, 0:40]
    dn = {b: (2000 + 11 * cols + 5 * rows + 300 * k).astype(np.uint16) for k, b in enumerate(BANDS)}
    dn["B04"][0, :4] = 0
    scl = np.full((32, 40), 4, dtype=np.uint8)
    scl[10:14, 10:14] = 9
    path = write_l2a_product(tmp_path / "in", dn=dn, scl=scl, epsg=32637, ulx=300000, uly=4000020,
                             sensing_time=datetime.datetime(2023, 1, 5, 8, 13, 29))
    return {"path": str(path), "dn": dn, "scl": scl, "dir": tmp_path}


def expected_reflectance(dn):
    values = (dn.astype(np.float32) - np.float32(1000)) / np.float32(10000)
    values[dn == 0] = np.nan
    return values


def test_parameters_have_help(provider):
    alg = provider.algorithm("prepare_s2_l2a")
    assert alg.displayName() == "Prepare Sentinel-2 L2A product"
    assert alg.group() == "1 · Sentinel-2 data"
    for parameter in alg.parameterDefinitions():
        assert len(parameter.help()) > 30, parameter.name()
    assert {o.name() for o in alg.outputDefinitions()} >= {"OUTPUT", "OUTPUT_SCL", "SENSING_DATE", "TILE"}


def test_temporary_outputs_are_named_by_date_and_tile(run_alg, product):
    feedback = Recorder()
    context = QgsProcessingContext()
    project = QgsProject()
    context.setProject(project)
    # As the dialog passes them: temporary files to load into the project.
    result = run_alg("prepare_s2_l2a", {
        "INPUT": [product["path"]], "OUTPUT": QgsProcessingOutputLayerDefinition("TEMPORARY_OUTPUT", project),
        "OUTPUT_SCL": "TEMPORARY_OUTPUT"}, feedback=feedback, context=context)
    assert os.path.basename(result["OUTPUT"]).startswith("S2_L2A_20230105_T37SCB_stack")
    assert os.path.basename(result["OUTPUT_SCL"]).startswith("S2_L2A_20230105_T37SCB_SCL")
    assert result["SENSING_DATE"] == "2023-01-05" and result["TILE"] == "T37SCB"
    # QGIS loads the files actually written, under their names.
    loaded = context.layersToLoadOnCompletion()
    assert list(loaded) == [result["OUTPUT"]]  # no stale entry for the path QGIS generated
    assert loaded[result["OUTPUT"]].name.startswith("S2_L2A_20230105_T37SCB_stack")
    with rasterio.open(result["OUTPUT"]) as src:
        assert src.count == 6 and src.descriptions == BANDS and src.nodata == 0 and src.dtypes[0] == "uint16"
        assert src.tags()["SENSING_DATE"] == "2023-01-05" and src.tags()["BASELINE"] == "05.09"
        values = rasters.read_reflectance(src, src.indexes)
    for index, band in enumerate(BANDS):
        np.testing.assert_array_equal(values[index], expected_reflectance(product["dn"][band]), err_msg=band)
    with rasterio.open(result["OUTPUT_SCL"]) as src:
        assert src.nodata == 0 and src.descriptions == ("SCL",)
        np.testing.assert_array_equal(src.read(1), product["scl"])
    log = "\n".join(feedback.infos)
    assert "processing baseline 05.09" in log and "reflectance = (DN + -1000) / 10000" in log


def test_extent_bands_and_explicit_outputs(run_alg, product):
    out = product["dir"] / "out"
    result = run_alg("prepare_s2_l2a", {
        "INPUT": [product["path"]], "EXTENT": "300110,300530,3999900,4000000 [EPSG:32637]",
        "BANDS": [3, 8], "OUTPUT": str(out / "pre.tif"), "OUTPUT_SCL": str(out / "pre_scl.tif")})
    assert result["OUTPUT"] == str(out / "pre.tif") and result["OUTPUT_SCL"] == str(out / "pre_scl.tif")
    with rasterio.open(result["OUTPUT"]) as src:
        assert src.descriptions == ("B04", "B8A")
        assert tuple(src.transform)[:6] == (20.0, 0.0, 300100.0, 0.0, -20.0, 4000000.0)
        assert (src.width, src.height) == (22, 5)
        np.testing.assert_array_equal(rasters.read_reflectance(src, 2),
                                      expected_reflectance(product["dn"]["B8A"])[1:6, 5:27])


def test_level_1c_input_is_refused_with_the_reason(run_alg, product):
    l1c = product["dir"] / "S2B_MSIL1C_20230601T094549_N0509_R079_T34UDD_20230601T115221.SAFE"
    l1c.mkdir()
    (l1c / "MTD_MSIL1C.xml").write_text(
        '<?xml version="1.0" encoding="UTF-8"?><n1:Level-1C_User_Product xmlns:n1="https://psd-14.sentinel2.eo.esa.'
        'int/PSD/User_Product_Level-1C.xsd"><n1:General_Info><Product_Info><PROCESSING_LEVEL>Level-1C'
        '</PROCESSING_LEVEL></Product_Info></n1:General_Info></n1:Level-1C_User_Product>')
    feedback = Recorder()
    with pytest.raises(QgsProcessingException) as info:
        run_alg("prepare_s2_l2a", {"INPUT": [str(l1c / "MTD_MSIL1C.xml")], "OUTPUT": str(product["dir"] / "x.tif"),
                                   "OUTPUT_SCL": str(product["dir"] / "x_scl.tif")}, feedback=feedback)
    messages = [str(info.value), *feedback.errors]
    assert any("is a Level-1C (top-of-atmosphere) product; this reader needs Level-2A (S2MSI2A)" in m
               for m in messages), messages
    assert not (product["dir"] / "x.tif").exists()


def test_truncated_zip_and_cancellation_leave_no_output(run_alg, product):
    broken = product["dir"] / "broken.zip"
    shutil.copy(product["path"], broken)
    broken.write_bytes(broken.read_bytes()[:5000])
    for source, feedback in ((str(broken), Recorder()), (product["path"], Recorder())):
        if source == product["path"]:
            feedback.cancel()
        with pytest.raises(QgsProcessingException) as info:
            run_alg("prepare_s2_l2a", {"INPUT": [source], "OUTPUT": str(product["dir"] / "y.tif"),
                                       "OUTPUT_SCL": str(product["dir"] / "y_scl.tif")}, feedback=feedback)
        expected = "truncated or corrupt" if source == str(broken) else "Cancelled"
        assert any(expected in m for m in [str(info.value), *feedback.errors])
        assert not (product["dir"] / "y.tif").exists() and not (product["dir"] / "y_scl.tif").exists()
