"""The SAFE writer: products that GDAL and this plugin's reader open like real downloads, losslessly."""
from __future__ import annotations

import datetime
import xml.etree.ElementTree as ET
import zipfile

import numpy as np
import pytest
import rasterio

from landslide_plugin.core import products
from landslide_plugin.examples.safe_format import write_l2a_product

pytestmark = pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")

NAME = "S2B_MSIL2A_20230105T081329_N0509_R078_T37SCB_20230105T095207"
SENSING = datetime.datetime(2023, 1, 5, 8, 13, 29)


def scene(height=48, width=40, seed=1, bands=("B02", "B03", "B04", "B8A", "B11", "B12")):
    rng = np.random.default_rng(seed)
    dn = {b: rng.integers(1, 65535, (height, width), dtype=np.uint16) for b in bands}
    dn["B04"][:3, :5] = 0  # no data
    scl = rng.integers(0, 12, (height, width), dtype=np.uint8)
    return dn, scl


def local(tag):
    return tag.rsplit("}", 1)[-1]


def test_zip_layout_name_and_metadata_like_a_real_product(tmp_path):
    dn, scl = scene()
    path = write_l2a_product(tmp_path, dn=dn, scl=scl, epsg=32637, ulx=300000, uly=4000020, sensing_time=SENSING)
    assert path == tmp_path / f"{NAME}.zip"
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary left behind
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        product_xml = ET.fromstring(archive.read(f"{NAME}.SAFE/MTD_MSIL2A.xml"))
        granule = [n for n in names if n.endswith("/MTD_TL.xml")]
        assert len(granule) == 1 and granule[0].startswith(f"{NAME}.SAFE/GRANULE/L2A_T37SCB_A")
        tile_xml = ET.fromstring(archive.read(granule[0]))
    assert f"{NAME}.SAFE/GRANULE/" + granule[0].split("/")[2] + \
        "/IMG_DATA/R20m/T37SCB_20230105T081329_B8A_20m.jp2" in names
    assert any(n.endswith("/R20m/T37SCB_20230105T081329_SCL_20m.jp2") for n in names)

    text = {local(e.tag): (e.text or "").strip() for e in product_xml.iter()}
    assert local(product_xml.tag) == "Level-2A_User_Product"
    assert text["PRODUCT_START_TIME"] == "2023-01-05T08:13:29.000Z"
    assert text["PROCESSING_BASELINE"] == "05.09"
    assert text["SPACECRAFT_NAME"] == "Sentinel-2B"
    assert text["SENSING_ORBIT_NUMBER"] == "78"
    assert text["BOA_QUANTIFICATION_VALUE"] == "10000"
    offsets = {e.get("band_id"): e.text for e in product_xml.iter() if local(e.tag) == "BOA_ADD_OFFSET"}
    assert offsets == {str(i): "-1000" for i in range(13)}
    files = [e.text for e in product_xml.iter() if local(e.tag) == "IMAGE_FILE"]
    assert len(files) == 7 and all(f"{NAME}.SAFE/{f}.jp2" in names for f in files)

    geo = {local(e.tag): (e.text or "").strip() for e in tile_xml.iter()}
    assert geo["HORIZONTAL_CS_CODE"] == "EPSG:32637"
    size20 = [e for e in tile_xml.iter() if local(e.tag) == "Size" and e.get("resolution") == "20"][0]
    pos20 = [e for e in tile_xml.iter() if local(e.tag) == "Geoposition" and e.get("resolution") == "20"][0]
    assert {local(e.tag): e.text for e in size20} == {"NROWS": "48", "NCOLS": "40"}
    assert {local(e.tag): e.text for e in pos20} == {"ULX": "300000", "ULY": "4000020", "XDIM": "20", "YDIM": "-20"}


def test_bands_are_lossless_jpeg2000_with_georeference(tmp_path):
    dn, scl = scene()
    path = write_l2a_product(tmp_path, dn=dn, scl=scl, epsg=32637, ulx=300000, uly=4000020, sensing_time=SENSING)
    root = f"/vsizip/{path}/{NAME}.SAFE"
    with zipfile.ZipFile(path) as archive:
        b11 = [n for n in archive.namelist() if n.endswith("_B11_20m.jp2")][0]
        scl_name = [n for n in archive.namelist() if n.endswith("_SCL_20m.jp2")][0]
    with rasterio.open(f"/vsizip/{path}/{b11}") as src:
        assert src.driver == "JP2OpenJPEG"
        assert src.crs.to_epsg() == 32637
        assert tuple(src.transform)[:6] == (20.0, 0.0, 300000.0, 0.0, -20.0, 4000020.0)
        np.testing.assert_array_equal(src.read(1), dn["B11"])
    with rasterio.open(f"/vsizip/{path}/{scl_name}") as src:
        assert src.dtypes[0] == "uint8"
        np.testing.assert_array_equal(src.read(1), scl)
    # GDAL's own SENTINEL2 driver understands the product too.
    with rasterio.open(f"{root}/MTD_MSIL2A.xml") as src:
        assert src.tags()["PROCESSING_BASELINE"] == "05.09"
        assert any(":20m:EPSG_32637" in s for s in src.subdatasets)


def test_written_product_round_trips_through_the_reader_exactly(tmp_path):
    dn, scl = scene(bands=("B02", "B03", "B04", "B08", "B8A", "B11", "B12"))
    path = write_l2a_product(tmp_path, dn=dn, scl=scl, epsg=32633, ulx=499980, uly=5200020,
                             sensing_time=SENSING, tile="T33TVM", relative_orbit=22, spacecraft="S2A",
                             baseline="05.10")
    info = products.read_product_info(path)
    assert (info.tile, info.relative_orbit, info.spacecraft, info.baseline) == ("T33TVM", 22, "Sentinel-2A", "05.10")
    assert info.sensing_time == SENSING
    stack = products.read_l2a(path, bands=("B02", "B03", "B04", "B08", "B8A", "B11", "B12"))
    for index, band in enumerate(stack.band_names):
        expected = (dn[band].astype(np.float32) - np.float32(1000)) / np.float32(10000)
        expected[dn[band] == 0] = np.nan
        np.testing.assert_array_equal(stack.reflectance[index], expected, err_msg=band)
    np.testing.assert_array_equal(stack.scl, scl)
    assert stack.crs.to_epsg() == 32633
    assert tuple(stack.transform)[:6] == (20.0, 0.0, 499980.0, 0.0, -20.0, 5200020.0)


def test_old_baseline_has_no_offset_block_and_folder_output(tmp_path):
    dn, scl = scene(height=16, width=16)
    path = write_l2a_product(tmp_path, dn=dn, scl=scl, epsg=32637, ulx=300000, uly=4000020, sensing_time=SENSING,
                             baseline="02.14", as_zip=False)
    assert path.is_dir() and path.name == "S2B_MSIL2A_20230105T081329_N0214_R078_T37SCB_20230105T095207.SAFE"
    assert "BOA_ADD_OFFSET" not in (path / "MTD_MSIL2A.xml").read_text()
    stack = products.read_l2a(path, bands=("B8A",))
    expected = dn["B8A"].astype(np.float32) / np.float32(10000)
    np.testing.assert_array_equal(stack.reflectance[0], expected)


@pytest.mark.parametrize("change, message", [
    (lambda dn, scl: dn.update(B04=dn["B04"].astype("float32")), "uint16"),
    (lambda dn, scl: dn.update(B04=dn["B04"][:-1]), "shape"),
    (lambda dn, scl: dn.update(B99=dn["B04"]), "B99"),
])
def test_bad_input_is_refused_and_nothing_is_written(tmp_path, change, message):
    dn, scl = scene(height=8, width=8)
    change(dn, scl)
    with pytest.raises(ValueError, match=message):
        write_l2a_product(tmp_path, dn=dn, scl=scl, epsg=32637, ulx=0, uly=0, sensing_time=SENSING)
    assert list(tmp_path.iterdir()) == []
