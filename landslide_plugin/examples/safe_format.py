"""Writing Sentinel-2 Level-2A products in the SAFE format (as delivered by the Copernicus Data Space).

Used to build synthetic scenes and test products that every reader (this plugin's, GDAL's SENTINEL2
driver, SNAP) opens like a real download: ``MTD_MSIL2A.xml`` with baseline, quantification and
offsets; ``GRANULE/<granule>/MTD_TL.xml`` with the tile grid; lossless JPEG 2000 bands.
"""
from __future__ import annotations

import datetime
import os
import pathlib
import re
import shutil
import tempfile
import zipfile
from collections.abc import Mapping
from xml.sax.saxutils import escape  # nosec B406 # escapes text we write; parses nothing

import numpy as np
import rasterio
from rasterio.transform import from_origin

from ..core.products import BAND_IDS  # band_id order of the metadata: the reader and the writer agree

#: Bands a Level-2A product holds at 20 m (B08 exists only at 10 m, B09 only at 60 m, B10 not at all).
BANDS_20M = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B8A", "B11", "B12")
BANDS_10M = ("B02", "B03", "B04", "B08")

#: Lossless JPEG 2000: GDAL's JP2OpenJPEG default is lossy (QUALITY=25), which would alter the DNs.
JP2_LOSSLESS = {"driver": "JP2OpenJPEG", "QUALITY": "100", "REVERSIBLE": "YES", "YCC": "NO"}

_LAUNCH = {"S2A": datetime.date(2015, 6, 23), "S2B": datetime.date(2017, 3, 7), "S2C": datetime.date(2024, 9, 5)}
_SPACECRAFT_NAME = {"S2A": "Sentinel-2A", "S2B": "Sentinel-2B", "S2C": "Sentinel-2C"}


def write_l2a_product(folder, *, dn: dict[str, np.ndarray], scl: np.ndarray, epsg: int, ulx: float, uly: float,
                      sensing_time: datetime.datetime, tile: str = "T37SCB", relative_orbit: int = 78,
                      baseline: str = "05.09", spacecraft: str = "S2B", as_zip: bool = True) -> pathlib.Path:
    """Write a Level-2A product into ``folder``; return the path of the ``.zip`` (or ``.SAFE`` folder).

    ``dn`` maps band names to uint16 arrays on the 20 m grid whose upper-left corner is (``ulx``,
    ``uly``) in EPSG:``epsg`` (0 = no data); ``scl`` is the uint8 scene classification on the same
    grid. B08, which real products carry only at 10 m, is written at 10 m (each 20 m pixel becomes
    2 x 2), so that readers meet it where they would in a real product. Baselines 04.00 and later
    get the -1000 BOA_ADD_OFFSET block, older ones none. The product appears atomically: an
    exception leaves nothing behind.
    """
    _check_inputs(dn, scl, epsg, tile, baseline, spacecraft, relative_orbit)
    height, width = scl.shape
    sensing_time = _as_utc(sensing_time)
    generation_time = sensing_time + datetime.timedelta(hours=1, minutes=38, seconds=38)
    sensing_stamp = sensing_time.strftime("%Y%m%dT%H%M%S")
    absolute_orbit = _absolute_orbit(spacecraft, sensing_time)
    product_name = (f"{spacecraft}_MSIL2A_{sensing_stamp}_N{baseline.replace('.', '')}_R{relative_orbit:03d}_"
                    f"{tile}_{generation_time.strftime('%Y%m%dT%H%M%S')}")
    granule = f"L2A_{tile}_A{absolute_orbit:06d}_{(sensing_time + datetime.timedelta(seconds=4)):%Y%m%dT%H%M%S}"

    # Relative image paths (without extension, as MTD_MSIL2A.xml lists them) -> arrays to write.
    images: dict[str, tuple[np.ndarray, float]] = {}
    for band in sorted(dn, key=_band_sort_key):
        array = np.asarray(dn[band])
        if band in BANDS_20M:
            images[f"GRANULE/{granule}/IMG_DATA/R20m/{tile}_{sensing_stamp}_{band}_20m"] = (array, 20.0)
        else:  # B08 (10 m only) and bands a user adds that real L2A products keep at 10 m
            fine = np.repeat(np.repeat(array, 2, axis=0), 2, axis=1)
            images[f"GRANULE/{granule}/IMG_DATA/R10m/{tile}_{sensing_stamp}_{band}_10m"] = (fine, 10.0)
    images[f"GRANULE/{granule}/IMG_DATA/R20m/{tile}_{sensing_stamp}_SCL_20m"] = (np.asarray(scl), 20.0)

    product_xml = _product_metadata(
        product_name=product_name, sensing_time=sensing_time, generation_time=generation_time,
        baseline=baseline, spacecraft=spacecraft, relative_orbit=relative_orbit, absolute_orbit=absolute_orbit,
        tile=tile, image_files=list(images))
    tile_xml = _tile_metadata(tile=tile, spacecraft=spacecraft, baseline=baseline, absolute_orbit=absolute_orbit,
                              sensing_time=sensing_time, generation_time=generation_time, epsg=epsg,
                              width=width, height=height, ulx=ulx, uly=uly)

    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    safe_name = product_name + ".SAFE"
    target = folder / (product_name + ".zip" if as_zip else safe_name)
    work = pathlib.Path(tempfile.mkdtemp(prefix=f".{product_name}.", suffix=".part", dir=folder))
    try:
        safe = work / safe_name
        (safe / "GRANULE" / granule / "QI_DATA").mkdir(parents=True)
        (safe / "DATASTRIP").mkdir()
        (safe / "AUX_DATA").mkdir()
        (safe / "MTD_MSIL2A.xml").write_text(product_xml, encoding="utf-8")
        (safe / "GRANULE" / granule / "MTD_TL.xml").write_text(tile_xml, encoding="utf-8")
        for relative, (array, resolution) in images.items():
            path = safe / (relative + ".jp2")
            path.parent.mkdir(parents=True, exist_ok=True)
            _write_jp2(path, array, epsg=epsg, transform=from_origin(ulx, uly, resolution, resolution))
        if as_zip:
            packed = work / "product.zip"
            _zip_folder(safe, packed)
            os.replace(packed, target)
        else:
            if target.exists():
                shutil.rmtree(target)
            os.replace(safe, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


# -- checks -------------------------------------------------------------------------------------------


def _check_inputs(dn: Mapping[str, np.ndarray], scl: np.ndarray, epsg: int, tile: str, baseline: str,
                  spacecraft: str, relative_orbit: int) -> None:
    if not dn:
        raise ValueError("dn is empty: give at least one band, e.g. {'B04': array}")
    scl = np.asarray(scl)
    if scl.ndim != 2 or scl.dtype != np.uint8:
        raise ValueError(f"scl must be a 2-D uint8 array; got {scl.ndim}-D {scl.dtype}")
    for band, array in dn.items():
        if band not in BAND_IDS or band == "B10":
            raise ValueError(f"dn has band {band!r}; Level-2A bands are {', '.join(b for b in BAND_IDS if b != 'B10')}")
        array = np.asarray(array)
        if array.dtype != np.uint16:
            raise ValueError(f"dn[{band!r}] must be uint16 digital numbers; got {array.dtype}")
        if array.shape != scl.shape:
            raise ValueError(f"dn[{band!r}] has shape {array.shape}, scl has {scl.shape}; both are on the 20 m grid")
    if not re.fullmatch(r"T\d{2}[C-X][A-Z]{2}", tile):
        raise ValueError(f"tile {tile!r} is not an MGRS tile name like 'T37SCB'")
    if not re.fullmatch(r"\d{2}\.\d{2}", baseline):
        raise ValueError(f"baseline {baseline!r} is not a processing baseline like '05.09'")
    if spacecraft not in _SPACECRAFT_NAME:
        raise ValueError(f"spacecraft {spacecraft!r} is not one of {', '.join(_SPACECRAFT_NAME)}")
    if not 1 <= int(relative_orbit) <= 143:
        raise ValueError(f"relative_orbit {relative_orbit} is outside 1..143")
    if not 1024 <= int(epsg) <= 999999:
        raise ValueError(f"epsg {epsg} is not an EPSG code")


def _band_sort_key(band: str) -> int:
    return BAND_IDS.index(band) if band in BAND_IDS else len(BAND_IDS)


def _as_utc(moment: datetime.datetime) -> datetime.datetime:
    if not isinstance(moment, datetime.datetime):
        raise ValueError(f"sensing_time must be a datetime.datetime; got {moment!r}")
    if moment.tzinfo is not None:
        moment = moment.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    return moment


def _absolute_orbit(spacecraft: str, sensing_time: datetime.datetime) -> int:
    # 143 orbits per 10-day repeat cycle since launch: plausible, deterministic numbers.
    days = (sensing_time.date() - _LAUNCH[spacecraft]).days
    return max(1, int(days * 14.3) + 1)


# -- files --------------------------------------------------------------------------------------------


def _write_jp2(path: pathlib.Path, array: np.ndarray, *, epsg: int, transform) -> None:
    profile = dict(JP2_LOSSLESS, width=array.shape[1], height=array.shape[0], count=1, dtype=array.dtype.name,
                   crs=f"EPSG:{epsg}", transform=transform)
    if max(array.shape) > 1024:
        # Tiled codestream as in real products: a window read decodes only the tiles it touches.
        profile.update(BLOCKXSIZE="1024", BLOCKYSIZE="1024")
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(array, 1)
    for sidecar in (path.with_name(path.name + ".aux.xml"),):
        if sidecar.exists():
            sidecar.unlink()


def _zip_folder(safe: pathlib.Path, zip_path: pathlib.Path) -> None:
    # Images are stored (JPEG 2000 is already compressed; stored members read fast through /vsizip/),
    # the XML is deflated.
    with zipfile.ZipFile(zip_path, "w") as archive:
        for path in sorted(safe.rglob("*")):
            arcname = path.relative_to(safe.parent).as_posix()
            if path.is_dir():
                archive.write(path, arcname + "/")
            else:
                method = zipfile.ZIP_STORED if path.suffix == ".jp2" else zipfile.ZIP_DEFLATED
                archive.write(path, arcname, compress_type=method)


# -- metadata -----------------------------------------------------------------------------------------


def _iso(moment: datetime.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _has_offsets(baseline: str) -> bool:
    return tuple(int(p) for p in baseline.split(".")) >= (4, 0)


def _product_metadata(*, product_name: str, sensing_time: datetime.datetime, generation_time: datetime.datetime,
                      baseline: str, spacecraft: str, relative_orbit: int, absolute_orbit: int, tile: str,
                      image_files: list[str]) -> str:
    sensing = _iso(sensing_time)
    generated = generation_time.strftime("%Y%m%dT%H%M%S")
    datastrip = (f"{spacecraft}_OPER_MSI_L2A_DS_2BPS_{generated}_S{sensing_time:%Y%m%dT%H%M%S}_N{baseline}")
    granule_id = f"{spacecraft}_OPER_MSI_L2A_TL_2BPS_{generated}_A{absolute_orbit:06d}_{tile}_N{baseline}"
    files = "\n".join(f"                        <IMAGE_FILE>{escape(f)}</IMAGE_FILE>" for f in image_files)
    offsets = ""
    if _has_offsets(baseline):
        offsets = ("            <BOA_ADD_OFFSET_VALUES_LIST>\n"
                   + "".join(f'                <BOA_ADD_OFFSET band_id="{i}">-1000</BOA_ADD_OFFSET>\n'
                             for i in range(len(BAND_IDS)))
                   + "            </BOA_ADD_OFFSET_VALUES_LIST>\n")
    spectral = "".join(
        f'                <Spectral_Information bandId="{i}" physicalBand="{_physical_band(b)}">\n'
        f"                    <RESOLUTION>{_native_resolution(b)}</RESOLUTION>\n"
        "                </Spectral_Information>\n" for i, b in enumerate(BAND_IDS))
    return f"""<?xml version="1.0" encoding="UTF-8" standalone="no"?>
<n1:Level-2A_User_Product xmlns:n1="https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_Level-2A.xsd" \
xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" \
xsi:schemaLocation="https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_Level-2A.xsd">
    <n1:General_Info>
        <Product_Info>
            <PRODUCT_START_TIME>{sensing}</PRODUCT_START_TIME>
            <PRODUCT_STOP_TIME>{sensing}</PRODUCT_STOP_TIME>
            <PRODUCT_URI>{product_name}.SAFE</PRODUCT_URI>
            <PROCESSING_LEVEL>Level-2A</PROCESSING_LEVEL>
            <PRODUCT_TYPE>S2MSI2A</PRODUCT_TYPE>
            <PROCESSING_BASELINE>{baseline}</PROCESSING_BASELINE>
            <GENERATION_TIME>{generation_time:%Y-%m-%dT%H:%M:%S}.000000Z</GENERATION_TIME>
            <PREVIEW_IMAGE_URL>Not applicable</PREVIEW_IMAGE_URL>
            <PREVIEW_GEO_INFO>Not applicable</PREVIEW_GEO_INFO>
            <Datatake datatakeIdentifier="G{spacecraft}_{sensing_time:%Y%m%dT%H%M%S}_{absolute_orbit:06d}_N{baseline}">
                <SPACECRAFT_NAME>{_SPACECRAFT_NAME[spacecraft]}</SPACECRAFT_NAME>
                <DATATAKE_TYPE>INS-NOBS</DATATAKE_TYPE>
                <DATATAKE_SENSING_START>{sensing}</DATATAKE_SENSING_START>
                <SENSING_ORBIT_NUMBER>{relative_orbit}</SENSING_ORBIT_NUMBER>
                <SENSING_ORBIT_DIRECTION>DESCENDING</SENSING_ORBIT_DIRECTION>
            </Datatake>
            <Query_Options completeSingleTile="true">
                <PRODUCT_FORMAT>SAFE_COMPACT</PRODUCT_FORMAT>
            </Query_Options>
            <Product_Organisation>
                <Granule_List>
                    <Granule datastripIdentifier="{datastrip}" granuleIdentifier="{granule_id}" imageFormat="JPEG2000">
{files}
                    </Granule>
                </Granule_List>
            </Product_Organisation>
        </Product_Info>
        <Product_Image_Characteristics>
            <Special_Values>
                <SPECIAL_VALUE_TEXT>NODATA</SPECIAL_VALUE_TEXT>
                <SPECIAL_VALUE_INDEX>0</SPECIAL_VALUE_INDEX>
            </Special_Values>
            <Special_Values>
                <SPECIAL_VALUE_TEXT>SATURATED</SPECIAL_VALUE_TEXT>
                <SPECIAL_VALUE_INDEX>65535</SPECIAL_VALUE_INDEX>
            </Special_Values>
            <Image_Display_Order>
                <RED_CHANNEL>3</RED_CHANNEL>
                <GREEN_CHANNEL>2</GREEN_CHANNEL>
                <BLUE_CHANNEL>1</BLUE_CHANNEL>
            </Image_Display_Order>
            <QUANTIFICATION_VALUES_LIST>
                <BOA_QUANTIFICATION_VALUE unit="none">10000</BOA_QUANTIFICATION_VALUE>
                <AOT_QUANTIFICATION_VALUE unit="none">1000.0</AOT_QUANTIFICATION_VALUE>
                <WVP_QUANTIFICATION_VALUE unit="cm">1000.0</WVP_QUANTIFICATION_VALUE>
            </QUANTIFICATION_VALUES_LIST>
{offsets}            <Spectral_Information_List>
{spectral}            </Spectral_Information_List>
            <Scene_Classification_List>
{_scl_classes()}            </Scene_Classification_List>
        </Product_Image_Characteristics>
    </n1:General_Info>
    <n1:Geometric_Info>
        <Coordinate_Reference_System>
            <GEO_TABLES version="1">EPSG</GEO_TABLES>
            <HORIZONTAL_CS_TYPE>GEOGRAPHIC</HORIZONTAL_CS_TYPE>
        </Coordinate_Reference_System>
    </n1:Geometric_Info>
</n1:Level-2A_User_Product>
"""


def _physical_band(band: str) -> str:
    return band if band == "B8A" else "B" + str(int(band[1:]))


def _native_resolution(band: str) -> int:
    if band in ("B02", "B03", "B04", "B08"):
        return 10
    if band in ("B01", "B09", "B10"):
        return 60
    return 20


_SCL_NAMES = ("NODATA", "SATURATED_DEFECTIVE", "DARK_AREA_PIXELS", "CLOUD_SHADOWS", "VEGETATION",
              "NOT_VEGETATED", "WATER", "UNCLASSIFIED", "CLOUD_MEDIUM_PROBABILITY", "CLOUD_HIGH_PROBABILITY",
              "THIN_CIRRUS", "SNOW_ICE")


def _scl_classes() -> str:
    return "".join(
        "                <Scene_Classification_ID>\n"
        f"                    <SCENE_CLASSIFICATION_TEXT>SC_{name}</SCENE_CLASSIFICATION_TEXT>\n"
        f"                    <SCENE_CLASSIFICATION_INDEX>{index}</SCENE_CLASSIFICATION_INDEX>\n"
        "                </Scene_Classification_ID>\n" for index, name in enumerate(_SCL_NAMES))


def _tile_metadata(*, tile: str, spacecraft: str, baseline: str, absolute_orbit: int,
                   sensing_time: datetime.datetime, generation_time: datetime.datetime, epsg: int,
                   width: int, height: int, ulx: float, uly: float) -> str:
    generated = generation_time.strftime("%Y%m%dT%H%M%S")
    tile_id = f"{spacecraft}_OPER_MSI_L2A_TL_2BPS_{generated}_A{absolute_orbit:06d}_{tile}_N{baseline}"
    zone = epsg % 100
    hemisphere = "N" if epsg // 100 == 326 else "S"
    sizes = "".join(
        f'            <Size resolution="{res}">\n'
        f"                <NROWS>{height * 20 // res}</NROWS>\n"
        f"                <NCOLS>{width * 20 // res}</NCOLS>\n"
        "            </Size>\n" for res in (10, 20, 60))
    positions = "".join(
        f'            <Geoposition resolution="{res}">\n'
        f"                <ULX>{_number(ulx)}</ULX>\n"
        f"                <ULY>{_number(uly)}</ULY>\n"
        f"                <XDIM>{res}</XDIM>\n"
        f"                <YDIM>-{res}</YDIM>\n"
        "            </Geoposition>\n" for res in (10, 20, 60))
    return f"""<?xml version="1.0" encoding="UTF-8" standalone="no"?>
<n1:Level-2A_Tile_ID xmlns:n1="https://psd-14.sentinel2.eo.esa.int/PSD/S2_PDI_Level-2A_Tile_Metadata.xsd" \
xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" \
xsi:schemaLocation="https://psd-14.sentinel2.eo.esa.int/PSD/S2_PDI_Level-2A_Tile_Metadata.xsd">
    <n1:General_Info>
        <TILE_ID metadataLevel="Brief">{tile_id}</TILE_ID>
        <DOWNLINK_PRIORITY metadataLevel="Standard">NOMINAL</DOWNLINK_PRIORITY>
        <SENSING_TIME metadataLevel="Standard">{_iso(sensing_time)}</SENSING_TIME>
    </n1:General_Info>
    <n1:Geometric_Info>
        <Tile_Geocoding metadataLevel="Brief">
            <HORIZONTAL_CS_NAME>WGS84 / UTM zone {zone}{hemisphere}</HORIZONTAL_CS_NAME>
            <HORIZONTAL_CS_CODE>EPSG:{epsg}</HORIZONTAL_CS_CODE>
{sizes}{positions}        </Tile_Geocoding>
    </n1:Geometric_Info>
</n1:Level-2A_Tile_ID>
"""


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))
