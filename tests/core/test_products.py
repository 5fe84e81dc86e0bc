"""Reading Level-2A products: offsets, refusals with clear messages, AOI crops, mosaics, GeoTIFF inputs."""
from __future__ import annotations

import datetime
import os
import shutil
import zipfile

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from rasterio.warp import transform as warp_transform

from landslide_plugin.core import products, rasters
from landslide_plugin.examples.safe_format import JP2_LOSSLESS, write_l2a_product

pytestmark = pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")

SENSING = datetime.datetime(2023, 1, 5, 8, 13, 29)
ALL = ("B02", "B03", "B04", "B8A", "B11", "B12")


def field_dn(height, width, col0=0, row0=0):
    """A smooth field of DNs that differs per band, indexed by global pixel position."""
    rows, cols = np.mgrid[row0:row0 + height, col0:col0 + width]
    return {b: (1500 + 7 * cols + 3 * rows + 100 * k).astype(np.uint16) for k, b in enumerate(ALL)}


def make(folder, dn, *, epsg=32637, ulx=300000.0, uly=4000020.0, tile="T37SCB", sensing=SENSING, scl=None,
         **kwargs):
    height, width = next(iter(dn.values())).shape
    if scl is None:
        scl = np.full((height, width), 4, dtype=np.uint8)
    return write_l2a_product(folder, dn=dn, scl=scl, epsg=epsg, ulx=ulx, uly=uly, sensing_time=sensing,
                             tile=tile, **kwargs)


def reflectance(dn, offset=-1000.0):
    values = (dn.astype(np.float32) + np.float32(offset)) / np.float32(10000)
    values[dn == 0] = np.nan
    return values


# -- real metadata files ---------------------------------------------------------------------------------


def safe_from_real_metadata(realdata, tmp_path, xml_name, epsg):
    """A .SAFE folder holding a real MTD_MSIL2A.xml and small 20 m band files at the paths it lists."""
    source = realdata / "metadata" / xml_name
    text = source.read_text(encoding="utf-8")
    uri = text.split("<PRODUCT_URI>")[1].split("</PRODUCT_URI>")[0]
    safe = tmp_path / uri
    safe.mkdir()
    shutil.copy(source, safe / "MTD_MSIL2A.xml")
    files = [line.split("<IMAGE_FILE>")[1].split("</IMAGE_FILE>")[0] for line in text.splitlines()
             if "<IMAGE_FILE>" in line]
    dn = {b: (np.arange(256, dtype=np.uint16).reshape(16, 16) * (k + 1) + 1) for k, b in enumerate(ALL)}
    dn["B04"][0, 0] = 0
    dn["B8A"][1, 1] = 500  # below the offset: negative reflectance, still valid
    arrays = {**dn, "SCL": np.full((16, 16), 5, dtype=np.uint8)}
    for relative in files:
        band = relative.rsplit("_", 2)[-2]
        if relative.endswith("_20m") and band in arrays:
            path = safe / (relative + ".jp2")
            path.parent.mkdir(parents=True, exist_ok=True)
            array = arrays[band]
            with rasterio.open(path, "w", **JP2_LOSSLESS, width=16, height=16, count=1, dtype=array.dtype.name,
                               crs=f"EPSG:{epsg}", transform=from_origin(600000, 7000000, 20, 20)) as dst:
                dst.write(array, 1)
    return safe, dn


def test_real_baseline_05_10_metadata_gives_offset_minus_1000(realdata, tmp_path):
    safe, dn = safe_from_real_metadata(realdata, tmp_path, "MTD_MSIL2A_S2B_20231217_N0510_T21JUK.xml", 32721)
    info = products.read_product_info(safe)
    assert info.name == "S2B_MSIL2A_20231217T135659_N0510_R067_T21JUK_20231217T175625"
    assert (info.level, info.baseline, info.quantification) == ("Level-2A", "05.10", 10000.0)
    assert info.offsets["B8A"] == -1000.0 and set(info.offsets.values()) == {-1000.0}
    assert (info.tile, info.relative_orbit, info.spacecraft) == ("T21JUK", 67, "Sentinel-2B")
    assert info.sensing_time == datetime.datetime(2023, 12, 17, 13, 56, 59, 24000)
    assert len(info.image_files) == 36
    # No MTD_TL.xml here: the grid comes from the band files.
    assert info.crs.to_epsg() == 32721 and (info.width, info.height) == (16, 16)
    stack = products.read_l2a(safe)
    for index, band in enumerate(ALL):
        np.testing.assert_array_equal(stack.reflectance[index], reflectance(dn[band], -1000), err_msg=band)
    assert np.isnan(stack.band("B04")[0, 0])
    assert stack.band("B8A")[1, 1] == pytest.approx(-0.05)  # negative reflectance kept, not no data
    assert stack.sensing_date == "2023-12-17"


def test_real_baseline_02_14_metadata_has_no_offset(realdata, tmp_path):
    safe, dn = safe_from_real_metadata(realdata, tmp_path, "MTD_MSIL2A_S2B_20200626_N0214_T34VFN.xml", 32634)
    info = products.read_product_info(safe / "MTD_MSIL2A.xml")  # the metadata file itself is accepted too
    assert info.baseline == "02.14" and set(info.offsets.values()) == {0.0}
    stack = products.read_l2a(safe / "MTD_MSIL2A.xml", bands=("B04", "B8A"))
    np.testing.assert_array_equal(stack.band("B8A"), reflectance(dn["B8A"], 0))
    np.testing.assert_array_equal(stack.band("B04"), reflectance(dn["B04"], 0))


def test_real_level_1c_product_is_refused_with_a_clear_message(realdata, tmp_path):
    source = realdata / "metadata" / "MTD_MSIL1C_S2B_20230601_N0509_T34UDD.xml"
    safe = tmp_path / "S2B_MSIL1C_20230601T094549_N0509_R079_T34UDD_20230601T115221.SAFE"
    safe.mkdir()
    shutil.copy(source, safe / "MTD_MSIL1C.xml")
    for candidate in (safe, safe / "MTD_MSIL1C.xml"):
        with pytest.raises(ValueError, match=r"S2B_MSIL1C_.*is a Level-1C \(top-of-atmosphere\) product; this "
                                             r"reader needs Level-2A \(S2MSI2A\)"):
            products.read_product_info(candidate)
    # Renamed to MTD_MSIL2A.xml it is still recognised by its content (RADIO_ADD_OFFSET, S2MSI1C).
    shutil.move(safe / "MTD_MSIL1C.xml", safe / "MTD_MSIL2A.xml")
    with pytest.raises(ValueError, match="Level-1C"):
        products.read_product_info(safe)
    archive = tmp_path / "l1c.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(source, f"{safe.name}/MTD_MSIL1C.xml")
    with pytest.raises(ValueError, match="l1c.zip is a Level-1C"):
        products.read_l2a(archive)


def test_real_sen2r_geotiffs_read_as_a_stack(realdata):
    folder = realdata / "sen2r_barbellino"
    order = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B8A", "B09", "B11", "B12")  # B08 stands for B8A
    boa = folder / "S2A2A_20170703_022_Barbellino_BOA_10.tif"
    stack = products.read_reflectance_geotiff(boa, band_order=order, scl_path=folder /
                                              "S2A2A_20170703_022_Barbellino_SCL_10.tif")
    assert stack.band_names == ALL
    assert stack.sensing_date == "2017-07-03"
    assert stack.reflectance.shape == (6, 21, 12) and stack.reflectance.dtype == np.float32
    assert tuple(stack.transform)[:6] == (20.0, 0.0, 580560.0, 0.0, -20.0, 5102120.0)
    with rasterio.open(boa) as src:
        red = src.read(4).astype(np.float64)
        nodata = src.nodata
    red[red == nodata] = np.nan
    expected = np.nanmean(red.reshape(21, 2, 12, 2), axis=(1, 3)) / 10000
    np.testing.assert_allclose(stack.band("B04"), expected, rtol=1e-6)
    assert 0.0 < np.nanmedian(stack.band("B8A")) < 1.0
    # The real classification of that day (the README's "2-9" range has no cloud shadow, class 3).
    assert set(np.unique(stack.scl).tolist()) == {2, 4, 5, 6, 7, 8, 9}
    native = products.read_reflectance_geotiff(boa, band_order=order, bands=("B04",), resolution=None)
    assert native.reflectance.shape == (1, 42, 24)
    with pytest.raises(ValueError, match="B8A not in"):
        products.read_reflectance_geotiff(boa, band_order=order[:7] + ("B08",) + order[8:])


# -- refusals ------------------------------------------------------------------------------------------


def test_truncated_zip_is_reported_as_truncated(tmp_path):
    path = make(tmp_path, field_dn(32, 32))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=rf"{path.name} is a truncated or corrupt ZIP file .*download it again"):
        products.read_l2a(path)


def test_missing_band_is_named_with_the_product(tmp_path):
    dn = field_dn(16, 16)
    del dn["B11"]
    path = make(tmp_path, dn)
    with pytest.raises(ValueError, match=r"band B11 is missing from product S2B_MSIL2A_20230105T081329_N0509"):
        products.read_l2a(path)
    assert products.read_l2a(path, bands=("B04",)).reflectance.shape == (1, 16, 16)
    # Listed in the metadata but absent from the folder: an incomplete download.
    safe = make(tmp_path / "folder", field_dn(16, 16), as_zip=False)
    next(safe.rglob("*_B12_20m.jp2")).unlink()
    with pytest.raises(ValueError, match=r"band B12 is missing .*download is incomplete"):
        products.read_l2a(safe)


def test_product_without_metadata_is_refused(tmp_path):
    safe = make(tmp_path, field_dn(16, 16), as_zip=False)
    (safe / "MTD_MSIL2A.xml").unlink()
    with pytest.raises(ValueError, match=rf"{safe.name} has no MTD_MSIL2A.xml, so its reflectance offsets"):
        products.read_product_info(safe)
    archive = tmp_path / "bands_only.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in safe.rglob("*.jp2"):
            zf.write(path, path.relative_to(tmp_path).as_posix())
    with pytest.raises(ValueError, match="bands_only.zip has no MTD_MSIL2A.xml"):
        products.read_product_info(archive)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        products.read_product_info(tmp_path / "nothing.zip")


# -- hostile metadata: downloaded files are parsed without entity expansion -----------------------------

BILLION_LAUGHS = ('<!DOCTYPE lolz [<!ENTITY lol "lol">'
                  + "".join(f'<!ENTITY lol{i} "{(f"&lol{i - 1};" if i > 1 else "&lol;") * 10}">'
                            for i in range(1, 10)) + "]>")
EXTERNAL_ENTITY = '<!DOCTYPE x [<!ENTITY secret SYSTEM "file:///etc/passwd">]>'
INTERNAL_ENTITY = '<!DOCTYPE x [<!ENTITY baseline "05.09">]>'
ENTITY_MESSAGE = (r"is not a valid product metadata file: it declares XML entities \(a DOCTYPE\), which "
                  r"Sentinel-2 metadata never does; download the product again")


def hostile(xml_path, doctype: str, use: str | None = None, encoding: str = "utf-8") -> None:
    """Put ``doctype`` after the XML declaration of a real metadata file (and ``use`` of an entity inside it)."""
    text = xml_path.read_text(encoding="utf-8")
    declaration, rest = text.split("?>", 1)
    if use:
        rest = rest.replace("<PRODUCT_URI>", f"<PRODUCT_URI>{use}", 1)
    if encoding != "utf-8":
        declaration = declaration.replace('encoding="UTF-8"', f'encoding="{encoding.upper()}"')
    xml_path.write_bytes(f"{declaration}?>{doctype}{rest}".encode(encoding))


@pytest.mark.parametrize("doctype, use", [(BILLION_LAUGHS, "&lol9;"), (EXTERNAL_ENTITY, "&secret;"),
                                          (INTERNAL_ENTITY, "&baseline;"), (INTERNAL_ENTITY, None)])
def test_metadata_declaring_entities_is_refused_before_any_expansion(tmp_path, doctype, use):
    safe = make(tmp_path, field_dn(16, 16), as_zip=False)
    hostile(safe / "MTD_MSIL2A.xml", doctype, use)
    with pytest.raises(ValueError, match=rf"MTD_MSIL2A.xml of {safe.name} {ENTITY_MESSAGE}"):
        products.read_product_info(safe)
    with pytest.raises(ValueError, match=ENTITY_MESSAGE):
        products.read_product_info(safe / "MTD_MSIL2A.xml")


def test_hostile_metadata_inside_a_zip_and_in_utf16_is_refused(tmp_path):
    safe = make(tmp_path, field_dn(16, 16), as_zip=False)
    hostile(safe / "MTD_MSIL2A.xml", BILLION_LAUGHS, "&lol9;", encoding="utf-16")  # no "<!DOCTYPE" bytes to grep
    assert b"<!DOCTYPE" not in (safe / "MTD_MSIL2A.xml").read_bytes()
    archive = tmp_path / f"{safe.stem}.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in safe.rglob("*"):
            zf.write(path, path.relative_to(tmp_path).as_posix())
    with pytest.raises(ValueError, match=rf"MTD_MSIL2A.xml of {archive.name} {ENTITY_MESSAGE}"):
        products.read_product_info(archive)


def test_hostile_tile_metadata_is_refused(tmp_path):
    safe = make(tmp_path, field_dn(16, 16), as_zip=False)
    hostile(next(safe.glob("GRANULE/*/MTD_TL.xml")), EXTERNAL_ENTITY)
    with pytest.raises(ValueError, match=rf"MTD_TL.xml of {safe.name} {ENTITY_MESSAGE}"):
        products.read_l2a(safe)


def test_damaged_metadata_is_still_reported_as_damaged(tmp_path):
    safe = make(tmp_path, field_dn(16, 16), as_zip=False)
    metadata = safe / "MTD_MSIL2A.xml"
    metadata.write_bytes(metadata.read_bytes()[:-40])
    with pytest.raises(ValueError, match=rf"MTD_MSIL2A.xml of {safe.name} is not valid XML .*download it again"):
        products.read_product_info(safe)


def test_products_of_different_dates_are_refused(tmp_path):
    first = make(tmp_path, field_dn(16, 16))
    second = make(tmp_path, field_dn(16, 16), sensing=SENSING + datetime.timedelta(days=10))
    with pytest.raises(ValueError, match=r"different dates .*2023-01-05.*2023-01-15.*prepare each date separately"):
        products.read_l2a([first, second])


# -- bands, AOI ----------------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:Mean of empty slice")
def test_ten_metre_only_band_is_averaged_to_20_m(tmp_path):
    safe = make(tmp_path, {**field_dn(8, 8), "B08": np.ones((8, 8), dtype=np.uint16)}, as_zip=False)
    b08 = next(safe.rglob("*_B08_10m.jp2"))
    fine = (np.arange(256, dtype=np.uint16).reshape(16, 16) + 1000)
    fine[0, 0] = 0  # one of the four 10 m pixels empty: the other three count
    fine[2:4, 2:4] = 0  # all four empty: no data
    with rasterio.open(b08) as src:
        crs, grid = src.crs, src.transform
    with rasterio.open(b08, "w", **JP2_LOSSLESS, width=16, height=16, count=1, dtype="uint16", crs=crs,
                       transform=grid) as dst:
        dst.write(fine, 1)
    stack = products.read_l2a(safe, bands=("b8", "B04"))
    assert stack.band_names == ("B08", "B04")
    dn = fine.astype(np.float64)
    dn[dn == 0] = np.nan
    expected = ((np.nanmean(dn.reshape(8, 2, 8, 2), axis=(1, 3)) - 1000) / 10000)
    np.testing.assert_allclose(stack.band("B08"), expected, rtol=0, atol=1e-7)
    assert np.isnan(stack.band("B08")[1, 1]) and np.isfinite(stack.band("B08")[0, 0])
    with pytest.raises(ValueError, match="'B13' is not a Sentinel-2 Level-2A band"):
        products.read_l2a(safe, bands=("B13",))


def test_aoi_crop_is_snapped_to_the_20_m_grid(tmp_path):
    dn = field_dn(64, 64)
    path = make(tmp_path, dn)
    full = products.read_l2a(path)
    crop = products.read_l2a(path, aoi=(300110, 3999000, 300530, 3999700), aoi_crs="EPSG:32637")
    assert tuple(crop.transform)[:6] == (20.0, 0.0, 300100.0, 0.0, -20.0, 3999700.0)
    assert crop.reflectance.shape == (6, 35, 22)
    np.testing.assert_array_equal(crop.reflectance, full.reflectance[:, 16:51, 5:27])
    np.testing.assert_array_equal(crop.scl, full.scl[16:51, 5:27])
    # The same area as a lon/lat box, a WKT polygon and a GeoJSON polygon.
    lons, lats = warp_transform("EPSG:32637", "EPSG:4326", [300210, 300530], [3999300, 3999700])
    box = (min(lons), min(lats), max(lons), max(lats))
    by_box = products.read_l2a(path, aoi=box)
    ring = [(box[0], box[1]), (box[2], box[1]), (box[2], box[3]), (box[0], box[3]), (box[0], box[1])]
    wkt = "POLYGON ((" + ", ".join(f"{x} {y}" for x, y in ring) + "))"
    geojson = {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [ring]}}
    for other in (products.read_l2a(path, aoi=wkt), products.read_l2a(path, aoi=geojson)):
        assert other.transform == by_box.transform and other.reflectance.shape == by_box.reflectance.shape
    left, top = by_box.transform.c, by_box.transform.f
    assert (left - 300000) % 20 == 0 and (4000020 - top) % 20 == 0
    assert left <= 300210 and top >= 3999700  # covers the area
    height, width = by_box.reflectance.shape[1:]
    assert left + 20 * width >= 300530 and top - 20 * height <= 3999300
    assert width <= 18 and height <= 22  # and not much more (one pixel of curvature at most)


def test_aoi_outside_the_product_is_refused(tmp_path):
    path = make(tmp_path, field_dn(16, 16))
    with pytest.raises(ValueError, match=r"area of interest .* does not overlap the product: S2B_MSIL2A.* covers lon"):
        products.read_l2a(path, aoi=(10.0, 45.0, 10.1, 45.1))
    with pytest.raises(ValueError, match="west < east"):
        products.read_l2a(path, aoi=(10.1, 45.0, 10.0, 45.1))


# -- mosaics -------------------------------------------------------------------------------------------


def test_two_adjacent_tiles_mosaic_without_seam_or_gap(tmp_path):
    # Tile B starts 48 columns and 8 rows into tile A: 16 columns of overlap.
    left = make(tmp_path, field_dn(64, 64), tile="T37SCB")
    right_dn = field_dn(64, 64, col0=48, row0=8)
    right = make(tmp_path, right_dn, ulx=300000 + 48 * 20, uly=4000020 - 8 * 20, tile="T37SDB")
    stack = products.read_l2a([left, right])
    assert stack.reflectance.shape == (6, 72, 112)
    expected = field_dn(72, 112)
    covered = np.zeros((72, 112), dtype=bool)
    covered[:64, :64] = True
    covered[8:72, 48:112] = True
    for index, band in enumerate(ALL):
        values = stack.reflectance[index]
        np.testing.assert_array_equal(values[covered], reflectance(expected[band])[covered], err_msg=band)
        assert np.isnan(values[~covered]).all()  # the two corners neither tile covers
    assert (stack.scl[covered] == 4).all() and (stack.scl[~covered] == 0).all()
    # First valid pixel wins: where tile A has no data, tile B fills in.
    left_dn = field_dn(64, 64)
    left_dn["B04"][20:30, 50:60] = 0
    holed = make(tmp_path / "holed", left_dn, tile="T37SCB")
    filled = products.read_l2a([holed, right], bands=("B04",))
    assert np.isfinite(filled.band("B04")[20:30, 50:60]).all()
    np.testing.assert_array_equal(filled.band("B04")[covered], reflectance(expected["B04"])[covered])


def test_mosaic_across_a_utm_zone_boundary_is_continuous(tmp_path):
    # Tile A in zone 32, tile B in zone 33, meeting at 12 deg E; the DNs follow one smooth lon/lat field.
    def dn_at(lon, lat):
        return 3000 + 20000 * (np.asarray(lon) - 11.98) + 30000 * (np.asarray(lat) - 46.0)

    def tile(epsg, lon, lat, name):
        x, y = warp_transform("EPSG:4326", f"EPSG:{epsg}", [lon], [lat])
        ulx, uly = round(x[0] / 20) * 20, round(y[0] / 20) * 20
        rows, cols = np.mgrid[0:64, 0:64]
        lons, lats = warp_transform(f"EPSG:{epsg}", "EPSG:4326", (ulx + 20 * cols + 10).ravel(),
                                    (uly - 20 * rows - 10).ravel())
        values = np.round(dn_at(lons, lats)).astype(np.uint16).reshape(64, 64)
        dn = {b: values for b in ("B04", "B8A")}
        return make(tmp_path, dn, epsg=epsg, ulx=ulx, uly=uly, tile=name), (ulx, uly)

    first, (ax, ay) = tile(32632, 11.985, 46.01, "T32TQR")
    second, (bx, by) = tile(32633, 11.999, 46.01, "T33TUL")
    stack = products.read_l2a([first, second], bands=("B04", "B8A"))
    assert stack.crs.to_epsg() == 32632  # the first product's grid
    assert (stack.transform.c - ax) % 20 == 0 and (ay - stack.transform.f) % 20 == 0
    height, width = stack.reflectance.shape[1:]
    assert width > 70  # extends into the second tile
    rows, cols = np.mgrid[0:height, 0:width]
    xs = stack.transform.c + 20 * cols + 10
    ys = stack.transform.f - 20 * rows - 10
    in_first = (xs > ax + 20) & (xs < ax + 64 * 20 - 20) & (ys < ay - 20) & (ys > ay - 64 * 20 + 20)
    bxs, bys = warp_transform("EPSG:32632", "EPSG:32633", xs.ravel(), ys.ravel())
    bxs, bys = np.reshape(bxs, xs.shape), np.reshape(bys, ys.shape)
    in_second = (bxs > bx + 40) & (bxs < bx + 64 * 20 - 40) & (bys < by - 40) & (bys > by - 64 * 20 + 40)
    covered = in_first | in_second
    assert in_second[:, -5:].any() and (in_second & ~in_first).sum() > 500
    red = stack.band("B04")
    assert np.isfinite(red[covered]).all()  # no gap at the zone boundary
    lons, lats = warp_transform("EPSG:32632", "EPSG:4326", xs.ravel(), ys.ravel())
    truth = (dn_at(lons, lats).reshape(xs.shape) - 1000) / 10000
    assert np.abs(red[covered] - truth[covered]).max() < 2e-4  # values continuous through the seam
    steps = np.abs(np.diff(red, axis=1))[covered[:, 1:] & covered[:, :-1]]
    assert steps.max() < 2 * np.median(steps) + 2e-4  # no jump anywhere


def test_same_tile_twice_keeps_the_newest_baseline(tmp_path):
    old = make(tmp_path, field_dn(16, 16), baseline="05.09")
    newer_dn = {b: v + 1 for b, v in field_dn(16, 16).items()}
    new = make(tmp_path, newer_dn, baseline="05.10")
    stack = products.read_l2a([old, new], bands=("B04",))
    np.testing.assert_array_equal(stack.band("B04"), reflectance(newer_dn["B04"]))
    assert [i.baseline for i in stack.infos] == ["05.10"]


# -- prepare_l2a -----------------------------------------------------------------------------------------


def test_prepare_writes_stack_and_scl_with_the_conventions(tmp_path):
    dn = field_dn(40, 50)
    dn["B02"][5, 5] = 0
    scl = np.full((40, 50), 5, dtype=np.uint8)
    scl[0] = 0
    path = make(tmp_path, dn, scl=scl)
    seen = []
    prepared = products.prepare_l2a(path, tmp_path / "out" / "stack.tif", tmp_path / "out" / "scl.tif",
                                    progress=seen.append)
    assert seen[-1] == 100.0
    assert prepared.sensing_date == "2023-01-05" and prepared.tile == "T37SCB"
    assert products.output_label(prepared) == "S2_L2A_20230105_T37SCB"
    assert prepared.valid_fraction == pytest.approx(1 - 1 / 2000)
    with rasterio.open(prepared.stack_path) as src:
        # The product's own numbers: uint16 DNs, 0 = no data, reflectance = DN * scale + offset (GDAL's meaning)
        assert src.count == 6 and src.dtypes[0] == "uint16" and src.nodata == 0
        assert src.scales == (1e-4,) * 6 and src.offsets == (-0.1,) * 6
        assert src.profile["compress"] == "zstd" and src.profile["interleave"] == "band"
        assert src.descriptions == ALL
        tags = src.tags()
        assert tags["SENSING_DATE"] == "2023-01-05" and tags["TILE"] == "T37SCB"
        assert tags["PRODUCT"] == "S2B_MSIL2A_20230105T081329_N0509_R078_T37SCB_20230105T095207"
        assert tags["BASELINE"] == "05.09"
        values = rasters.read_reflectance(src, src.indexes)
        np.testing.assert_array_equal(src.read(), np.stack([dn[band] for band in ALL]))
    for index, band in enumerate(ALL):
        np.testing.assert_array_equal(values[index], reflectance(dn[band]), err_msg=band)
    with rasterio.open(prepared.scl_path) as src:
        assert src.dtypes[0] == "uint8" and src.nodata == 0 and src.descriptions == ("SCL",)
        np.testing.assert_array_equal(src.read(1), scl)
    assert sorted(os.listdir(tmp_path / "out")) == ["scl.tif", "stack.tif"]


def test_prepare_in_several_blocks_equals_reading_in_memory(tmp_path, monkeypatch):
    monkeypatch.setattr(rasters, "BLOCK_ROWS", 7)
    monkeypatch.setattr(rasters.row_windows, "__defaults__", (7,))
    left = make(tmp_path, field_dn(30, 30), tile="T37SCB")
    right = make(tmp_path, field_dn(30, 30, col0=20, row0=3), ulx=300400, uly=3999960, tile="T37SDB")
    prepared = products.prepare_l2a([left, right], tmp_path / "s.tif", tmp_path / "c.tif")
    assert prepared.tile == "T37SCB-T37SDB"
    with rasterio.open(prepared.stack_path) as src:
        np.testing.assert_array_equal(rasters.read_reflectance(src, src.indexes),
                                      products.read_l2a([left, right]).reflectance)


def test_a_mosaic_of_two_processing_baselines_keeps_every_reflectance(tmp_path):
    """Baseline 03.01 (no offset) beside 05.09 (offset -1000): the stack takes the most negative offset, so
    the darkest pixels of the newer product (reflectance below 0) are kept, not clipped."""
    left_dn = field_dn(30, 30)
    right_dn = field_dn(30, 30, col0=20, row0=3)
    right_dn["B02"][:, -5:] = 900  # reflectance -0.01 in baseline 05.09
    left = make(tmp_path, left_dn, tile="T37SCB", baseline="03.01")
    right = make(tmp_path, right_dn, ulx=300400, uly=3999960, tile="T37SDB")
    prepared = products.prepare_l2a([left, right], tmp_path / "s.tif", tmp_path / "c.tif")
    expected = products.read_l2a([left, right]).reflectance
    with rasterio.open(prepared.stack_path) as src:
        assert src.offsets == (-0.1,) * 6 and src.scales == (1e-4,) * 6
        values = rasters.read_reflectance(src, src.indexes)
    assert np.nanmin(expected[0]) == pytest.approx(-0.01)
    np.testing.assert_allclose(values, expected, atol=1e-7)


def test_cancelled_prepare_leaves_no_output(tmp_path):
    path = make(tmp_path, field_dn(16, 16))
    out = tmp_path / "out"
    with pytest.raises(rasters.Cancelled):
        products.prepare_l2a(path, out / "stack.tif", out / "scl.tif", is_cancelled=lambda: True)
    assert not out.exists() or os.listdir(out) == []
