"""Reading Sentinel-2 Level-2A products: metadata, DN -> reflectance, crop to an area, mosaic of tiles.

A product is a ``.SAFE`` folder, its ``.zip`` (read in place through GDAL's ``/vsizip/``, never
unpacked) or the path of its ``MTD_MSIL2A.xml``. Reflectance is (DN + BOA_ADD_OFFSET) /
BOA_QUANTIFICATION_VALUE with both values taken from ``MTD_MSIL2A.xml`` (never guessed); DN 0 is no
data (NaN). Everything is delivered on a 20 m grid: native 20 m bands as they are, 10 m-only bands
(B08) averaged 2 x 2, 60 m-only bands (B09) repeated 3 x 3.

- ``read_product_info``: what a product is (baseline, offsets, date, tile, grid), cheap.
- ``read_l2a``: one date, in memory (small areas, tests).
- ``prepare_l2a``: one date, to a reflectance stack GeoTIFF and an SCL GeoTIFF, block by block, so
  full 5490 x 5490 tiles and mosaics of several tiles stay within a few hundred MB.
- ``read_reflectance_geotiff``: plain GeoTIFFs of reflectance x scale (e.g. sen2r outputs) as a Stack.
"""
from __future__ import annotations

import datetime
import json
import math
import os
import re
import warnings
import xml.etree.ElementTree as ET  # nosec B405 # parses only what _refuse_doctype has checked
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from xml.parsers import expat

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.warp import reproject, transform, transform_bounds
from rasterio.windows import Window

from . import rasters

#: Sentinel-2 band ids in the order of the products' band_id attribute (0 = B01 ... 12 = B12).
BAND_IDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12")
DEFAULT_BANDS = ("B02", "B03", "B04", "B8A", "B11", "B12")
#: Bands a Level-2A product can deliver (B10, the cirrus band, is dropped by the atmospheric correction).
L2A_BANDS = tuple(b for b in BAND_IDS if b != "B10")
RESOLUTION = 20.0
#: Offsets appeared with processing baseline 04.00 (products sensed from 25 January 2022, and reprocessing).
FIRST_BASELINE_WITH_OFFSET = (4, 0)

_LEVEL_1C = ("{name} is a Level-1C (top-of-atmosphere) product; this reader needs Level-2A (S2MSI2A) products "
             "(bottom-of-atmosphere reflectance with a scene classification). Download the S2MSI2A product of the "
             "same date and tile instead.")


# -- product metadata ------------------------------------------------------------------------------------


@dataclass
class ProductInfo:
    """What ``MTD_MSIL2A.xml`` (and ``MTD_TL.xml``) say about one product, and where its bands are."""

    source: str                      # the path the user gave
    name: str                        # product name, without .SAFE
    root: str                        # GDAL path of the .SAFE folder (``/vsizip/...`` inside a zip)
    level: str                       # "Level-2A"
    product_type: str                # "S2MSI2A"
    baseline: str                    # "05.09"
    quantification: float            # BOA_QUANTIFICATION_VALUE, 10000
    offsets: dict[str, float]        # band -> BOA_ADD_OFFSET (0 for every band before baseline 04.00)
    image_files: tuple[str, ...]     # IMAGE_FILE entries, relative to root, without extension
    sensing_time: datetime.datetime  # PRODUCT_START_TIME (UTC, naive)
    tile: str                        # "T37SCB"
    relative_orbit: int              # SENSING_ORBIT_NUMBER
    spacecraft: str                  # "Sentinel-2B"
    crs: CRS                         # UTM CRS of the tile
    transform: Affine                # 20 m grid
    width: int                       # 20 m columns
    height: int                      # 20 m rows
    band_files: dict[str, tuple[str, int]] = field(default_factory=dict, repr=False)  # present files
    missing_files: dict[str, str] = field(default_factory=dict, repr=False)  # listed, absent

    @property
    def sensing_date(self) -> datetime.date:
        return self.sensing_time.date()

    @property
    def product_name(self) -> str:
        """Same as ``name`` (the product's name without .SAFE)."""
        return self.name

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        left, top = self.transform.c, self.transform.f
        return (left, top - self.height * RESOLUTION, left + self.width * RESOLUTION, top)

    def offset(self, band: str) -> float:
        return self.offsets.get(band, 0.0)

    def band_file(self, band: str) -> tuple[str, int]:
        """GDAL path and native resolution (10, 20, 60) of ``band`` ("B04", "SCL"); ValueError if absent."""
        if band in self.band_files:
            return self.band_files[band]
        if band in self.missing_files:
            raise ValueError(
                f"band {band} is missing from product {self.name}: MTD_MSIL2A.xml lists "
                f"{self.missing_files[band]}.jp2 but the file is not in {self.source}. The download is incomplete; "
                "download the product again.")
        raise ValueError(f"band {band} is missing from product {self.name} ({self.source}): its MTD_MSIL2A.xml lists "
                         "no image file for it at 10, 20 or 60 m.")


def read_product_info(product: str | os.PathLike) -> ProductInfo:
    """Read the metadata of a Level-2A product (``.SAFE`` folder, ``.zip`` or ``MTD_MSIL2A.xml``).

    Raises FileNotFoundError when the path does not exist and ValueError, naming the product and
    what is wrong with it, for Level-1C products, products without ``MTD_MSIL2A.xml``, truncated or
    corrupt zips and incomplete metadata.
    """
    source = os.fspath(product)
    if not os.path.exists(source):
        raise FileNotFoundError(f"Sentinel-2 product {source} does not exist")
    access = _ProductAccess.open(source)
    try:
        metadata = _parse_xml(access.read("MTD_MSIL2A.xml"), f"MTD_MSIL2A.xml of {access.label}")
        return _product_info(source, access, metadata)
    finally:
        access.close()


class _ProductAccess:
    """Files of a product, from a folder or from inside a zip, addressed relative to the .SAFE root."""

    def __init__(self, source: str, label: str, root: str, archive: zipfile.ZipFile | None, prefix: str,
                 members: frozenset[str] | None):
        self.source, self.label, self.root = source, label, root
        self.archive, self.prefix, self.members = archive, prefix, members

    @classmethod
    def open(cls, source: str) -> _ProductAccess:
        label = os.path.basename(os.path.normpath(source))
        if source.lower().endswith(".xml"):  # name the product, not its metadata file
            parent = os.path.basename(os.path.dirname(os.path.abspath(source)))
            label = parent if parent.upper().endswith(".SAFE") else os.path.abspath(source)
        if os.path.isdir(source):
            return cls(source, label, _safe_folder(source, label), None, "", None)
        if os.path.basename(source).upper().startswith("MTD_MSIL1C"):
            raise ValueError(_LEVEL_1C.format(name=label))
        if zipfile.is_zipfile(source) or source.lower().endswith(".zip"):
            return cls._open_zip(source, label)
        if source.lower().endswith(".xml"):
            return cls(source, label, os.path.dirname(os.path.abspath(source)), None, "", None)
        raise ValueError(f"{source} is not a Sentinel-2 product: give the .zip as downloaded, the unzipped .SAFE "
                         "folder or its MTD_MSIL2A.xml")

    @classmethod
    def _open_zip(cls, source: str, label: str) -> _ProductAccess:
        try:
            archive = zipfile.ZipFile(source)
            names = archive.namelist()
        except (zipfile.BadZipFile, OSError, EOFError) as error:
            raise ValueError(f"product {label} is a truncated or corrupt ZIP file ({error}); download it again") \
                from error
        top = [n for n in names if n.count("/") <= 1]
        metadata = [n for n in top if n.rsplit("/", 1)[-1] == "MTD_MSIL2A.xml"]
        if not metadata:
            archive.close()
            if any(n.rsplit("/", 1)[-1] == "MTD_MSIL1C.xml" for n in top):
                raise ValueError(_LEVEL_1C.format(name=label))
            raise ValueError(f"product {label} has no MTD_MSIL2A.xml, so its reflectance offsets and scale are "
                             "unknown; give the complete Level-2A product as downloaded from the Copernicus Data "
                             "Space")
        prefix = metadata[0][: -len("MTD_MSIL2A.xml")]
        zip_path = os.path.abspath(source).replace("\\", "/")
        root = f"/vsizip/{zip_path}/{prefix.rstrip('/')}".rstrip("/")
        members = frozenset(n[len(prefix):] for n in names if n.startswith(prefix))
        return cls(source, label, root, archive, prefix, members)

    def exists(self, relative: str) -> bool:
        if self.members is not None:
            return relative in self.members
        return os.path.isfile(os.path.join(self.root, relative))

    def read(self, relative: str) -> bytes:
        if self.archive is not None:
            try:
                return self.archive.read(self.prefix + relative)
            except KeyError as error:
                raise FileNotFoundError(f"{relative} not found in {self.label}") from error
            except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as error:
                raise ValueError(f"product {self.label} is a truncated or corrupt ZIP file: {relative} cannot be "
                                 f"read ({error}); download it again") from error
        try:
            with open(os.path.join(self.root, relative), "rb") as handle:
                return handle.read()
        except FileNotFoundError as error:
            raise FileNotFoundError(f"{relative} not found in {self.label}") from error

    def path(self, relative: str) -> str:
        return f"{self.root}/{relative}" if self.archive is not None else os.path.join(self.root, relative)

    def close(self) -> None:
        if self.archive is not None:
            self.archive.close()


def _safe_folder(folder: str, label: str) -> str:
    if os.path.isfile(os.path.join(folder, "MTD_MSIL2A.xml")):
        return folder
    if os.path.isfile(os.path.join(folder, "MTD_MSIL1C.xml")):
        raise ValueError(_LEVEL_1C.format(name=label))
    inner = [os.path.join(folder, n) for n in sorted(os.listdir(folder)) if n.upper().endswith(".SAFE")]
    inner = [f for f in inner if os.path.isfile(os.path.join(f, "MTD_MSIL2A.xml"))]
    if len(inner) == 1:  # the folder a zip was extracted into
        return inner[0]
    raise ValueError(f"product {label} has no MTD_MSIL2A.xml, so its reflectance offsets and scale are unknown; "
                     "give the .SAFE folder of a Level-2A product (or the .zip as downloaded)")


class _DeclaresEntities(Exception):
    """Raised by the expat handlers of ``_refuse_doctype``: the document has a DOCTYPE."""


class UnsafeMetadataError(ValueError):
    """A metadata file declares XML entities: never what ESA delivers, so never used (not even as a fallback)."""


def _refuse(*_args) -> None:
    raise _DeclaresEntities


def _refuse_doctype(data: bytes, label: str) -> None:
    """UnsafeMetadataError for a document with a DOCTYPE, the only place XML entities can be declared.

    Product metadata comes from downloaded files. Entities are how hostile XML works: exponential
    expansion ("billion laughs"), external entities reading local files or URLs. Sentinel-2 metadata
    never declares any, so a first expat pass stops at the start of a DOCTYPE, before any entity is
    declared or expanded (expat also reads documents in UTF-16 or other declared encodings, which a
    byte search for "<!DOCTYPE" would miss). ElementTree then parses a document without entities.
    """
    parser = expat.ParserCreate()
    parser.StartDoctypeDeclHandler = _refuse
    parser.EntityDeclHandler = _refuse
    parser.UnparsedEntityDeclHandler = _refuse
    parser.ExternalEntityRefHandler = _refuse
    try:
        parser.Parse(data, True)
    except _DeclaresEntities:
        message = (f"{label} is not a valid product metadata file: it declares XML entities (a DOCTYPE), which "
                   "Sentinel-2 metadata never does; download the product again")
        raise UnsafeMetadataError(message) from None
    except expat.ExpatError as error:
        raise ValueError(f"{label} is not valid XML ({error}); the product is damaged: download it again") from error


def _parse_xml(data: bytes, label: str) -> ET.Element:
    """Product metadata as an element tree; ValueError for damaged or hostile XML (see _refuse_doctype)."""
    _refuse_doctype(data, label)
    try:
        return ET.fromstring(data)  # nosec B314 # checked above: no DOCTYPE, no entity
    except ET.ParseError as error:
        raise ValueError(f"{label} is not valid XML ({error}); the product is damaged: download it again") from error


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _find_all(element: ET.Element, name: str) -> list[ET.Element]:
    return [e for e in element.iter() if _local(e.tag) == name]


def _text(element: ET.Element, name: str) -> str | None:
    found = _find_all(element, name)
    return found[0].text.strip() if found and found[0].text else None


def _product_info(source: str, access: _ProductAccess, metadata: ET.Element) -> ProductInfo:
    label = access.label
    level = _text(metadata, "PROCESSING_LEVEL") or ""
    product_type = _text(metadata, "PRODUCT_TYPE") or ""
    if ("Level-1C" in _local(metadata.tag) or level.startswith("Level-1") or product_type.startswith("S2MSI1")
            or _find_all(metadata, "RADIO_ADD_OFFSET")):
        raise ValueError(_LEVEL_1C.format(name=label))
    if not (level.startswith("Level-2A") or product_type.startswith("S2MSI2A")):
        raise ValueError(f"{label}: MTD_MSIL2A.xml gives processing level {level!r} and product type "
                         f"{product_type!r}; this reader needs Level-2A (S2MSI2A) products")
    name = (_text(metadata, "PRODUCT_URI") or os.path.basename(access.root)).removesuffix(".SAFE")
    baseline = _text(metadata, "PROCESSING_BASELINE")
    if not baseline or not re.fullmatch(r"\d{2}\.\d{2}", baseline):
        raise ValueError(f"MTD_MSIL2A.xml of {label} has no valid PROCESSING_BASELINE ({baseline!r}); the metadata "
                         "is damaged: download the product again")
    quantification_text = _text(metadata, "BOA_QUANTIFICATION_VALUE")
    if quantification_text is None:
        raise ValueError(f"MTD_MSIL2A.xml of {label} has no BOA_QUANTIFICATION_VALUE, so DNs cannot be converted "
                         "to reflectance; download the product again")
    quantification = float(quantification_text)
    offsets = {band: 0.0 for band in BAND_IDS}
    offset_elements = _find_all(metadata, "BOA_ADD_OFFSET")
    for element in offset_elements:
        band_id = int(element.get("band_id", "-1"))
        if 0 <= band_id < len(BAND_IDS):
            offsets[BAND_IDS[band_id]] = float(element.text)
    if not offset_elements and _baseline_tuple(baseline) >= FIRST_BASELINE_WITH_OFFSET:
        raise ValueError(f"MTD_MSIL2A.xml of {label} (processing baseline {baseline}) has no BOA_ADD_OFFSET values, "
                         "which every product of baseline 04.00 or later carries; the metadata is damaged or was "
                         "edited: download the product again")
    image_files = tuple(e.text.strip() for e in _find_all(metadata, "IMAGE_FILE") if e.text)
    if not image_files:
        raise ValueError(f"MTD_MSIL2A.xml of {label} lists no IMAGE_FILE; download the product again")
    start = _text(metadata, "PRODUCT_START_TIME") or _text(metadata, "DATATAKE_SENSING_START")
    if start is None:
        raise ValueError(f"MTD_MSIL2A.xml of {label} has no PRODUCT_START_TIME; download the product again")
    sensing_time = _parse_time(start, label)
    tile_match = re.search(r"_(T\d{2}[A-Z]{3})_", name + "_") or re.search(r"(T\d{2}[A-Z]{3})_", image_files[0])
    tile = tile_match.group(1) if tile_match else "T00XXX"
    orbit_text = _text(metadata, "SENSING_ORBIT_NUMBER")
    orbit_match = re.search(r"_R(\d{3})_", name)
    relative_orbit = int(orbit_text) if orbit_text else int(orbit_match.group(1)) if orbit_match else 0
    spacecraft = _text(metadata, "SPACECRAFT_NAME") or name[:3]

    band_files, missing_files = _band_files(access, image_files)
    crs, grid, width, height = _tile_grid(access, image_files, band_files, label)
    return ProductInfo(
        source=source, name=name, root=access.root, level=level, product_type=product_type, baseline=baseline,
        quantification=quantification, offsets=offsets, image_files=image_files, sensing_time=sensing_time,
        tile=tile, relative_orbit=relative_orbit, spacecraft=spacecraft, crs=crs, transform=grid, width=width,
        height=height, band_files=band_files, missing_files=missing_files)


def _baseline_tuple(baseline: str) -> tuple[int, int]:
    major, minor = baseline.split(".")
    return int(major), int(minor)


def _parse_time(text: str, label: str) -> datetime.datetime:
    match = re.match(r"(\d{4}-\d{2}-\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?", text)
    if not match:
        raise ValueError(f"MTD_MSIL2A.xml of {label}: cannot read the sensing time {text!r}")
    day = datetime.date.fromisoformat(match.group(1))
    micro = int((match.group(5) or "0")[:6].ljust(6, "0"))
    return datetime.datetime(day.year, day.month, day.day, int(match.group(2)), int(match.group(3)),
                             int(match.group(4)), micro)


def _band_files(access: _ProductAccess, image_files: Sequence[str]) -> tuple[dict, dict]:
    """Per band, the best file present: 20 m first, then 10 m (averaged), then 60 m (repeated)."""
    present: dict[str, tuple[str, int]] = {}
    missing: dict[str, str] = {}
    for band in (*L2A_BANDS, "SCL"):
        for resolution in (20, 10, 60):
            listed = [f for f in image_files if f.endswith(f"_{band}_{resolution}m")]
            for relative in listed:
                if access.exists(relative + ".jp2"):
                    present[band] = (access.path(relative + ".jp2"), resolution)
                    break
                missing.setdefault(band, relative)
            if band in present:
                break
        if band in present:
            missing.pop(band, None)
    return present, missing


def _tile_grid(access: _ProductAccess, image_files: Sequence[str], band_files: dict, label: str):
    """CRS and 20 m grid from GRANULE/*/MTD_TL.xml or, failing that, from a band file."""
    granule = image_files[0].split("/IMG_DATA/")[0]
    try:
        tile_metadata = _parse_xml(access.read(f"{granule}/MTD_TL.xml"), f"MTD_TL.xml of {label}")
    except UnsafeMetadataError:
        raise
    except (FileNotFoundError, ValueError):  # missing or damaged: the grid of a band file does as well
        tile_metadata = None
    if tile_metadata is not None:
        code = _text(tile_metadata, "HORIZONTAL_CS_CODE")
        sizes = {e.get("resolution"): e for e in _find_all(tile_metadata, "Size")}
        positions = {e.get("resolution"): e for e in _find_all(tile_metadata, "Geoposition")}
        if code and "20" in sizes and "20" in positions:
            size, position = sizes["20"], positions["20"]
            grid = Affine(RESOLUTION, 0.0, float(_text(position, "ULX")), 0.0, -RESOLUTION,
                          float(_text(position, "ULY")))
            return CRS.from_user_input(code), grid, int(_text(size, "NCOLS")), int(_text(size, "NROWS"))
    candidates = [band_files[b] for b in ("SCL", *L2A_BANDS) if b in band_files]
    if not candidates:
        raise ValueError(f"product {label} has neither MTD_TL.xml nor any band file, so its map grid is unknown; "
                         "download the product again")
    path, resolution = candidates[0]
    with _reading(label, path), rasterio.open(path) as src:
        if src.crs is None:
            raise ValueError(f"{path} in product {label} has no map projection; download the product again")
        factor = RESOLUTION / resolution
        grid = src.transform * Affine.scale(factor)
        return src.crs, grid, int(round(src.width / factor)), int(round(src.height / factor))


class _reading:  # noqa: N801 - used as a context manager, reads like a sentence
    """Turn GDAL read errors inside a product into a message naming the product and the fix."""

    def __init__(self, label: str, path: str):
        self.label, self.path = label, path

    def __enter__(self):
        return self

    def __exit__(self, kind, error, traceback):
        if kind is not None and issubclass(kind, RasterioError):
            raise ValueError(f"product {self.label}: {self.path} cannot be read ({error}); the file is truncated or "
                             "corrupt: download the product again") from error
        return False


# -- results ---------------------------------------------------------------------------------------------


@dataclass
class Stack:
    """Reflectance bands of one date on one 20 m grid, with the scene classification."""

    reflectance: np.ndarray              # float32 (n_bands, height, width), NaN = no data
    scl: np.ndarray | None               # uint8 (height, width), 0 = no data; None when not available
    band_names: tuple[str, ...]
    crs: CRS
    transform: Affine
    infos: tuple[ProductInfo, ...] = ()
    sensing_date: str | None = None      # YYYY-MM-DD

    def band(self, name: str) -> np.ndarray:
        try:
            return self.reflectance[self.band_names.index(name)]
        except ValueError:
            raise ValueError(f"band {name} is not in this stack; it has {', '.join(self.band_names)}") from None


@dataclass(frozen=True)
class PreparedProduct:
    """Where ``prepare_l2a`` wrote the stack and the SCL, and what they hold."""

    stack_path: Path
    scl_path: Path
    band_names: tuple[str, ...]
    crs: CRS
    transform: Affine
    width: int
    height: int
    sensing_date: str                    # YYYY-MM-DD
    tile: str                            # "T37SCB", or "T32TQR-T33TUL" for a mosaic
    infos: tuple[ProductInfo, ...]
    valid_fraction: float                # share of pixels with every band valid
    notes: tuple[str, ...] = ()          # products skipped and why


# -- reading one date ------------------------------------------------------------------------------------


def read_l2a(products, *, bands: Sequence[str] = DEFAULT_BANDS, aoi=None, aoi_crs="EPSG:4326") -> Stack:
    """Reflectance and SCL of one date (one or several products) in memory; for small areas and tests."""
    plan = _plan(products, bands, aoi, aoi_crs)
    reflectance = np.full((len(plan.bands), plan.height, plan.width), np.nan, dtype=np.float32)
    scl = np.zeros((plan.height, plan.width), dtype=np.uint8)
    for window, block, scl_block in _mosaic_blocks(plan):
        rows = slice(window.row_off, window.row_off + window.height)
        reflectance[:, rows] = block
        scl[rows] = scl_block
    return Stack(reflectance=reflectance, scl=scl, band_names=plan.bands, crs=plan.crs, transform=plan.transform,
                 infos=plan.infos, sensing_date=plan.sensing_date)


def prepare_l2a(products, stack_path, scl_path, *, bands: Sequence[str] = DEFAULT_BANDS, aoi=None,
                aoi_crs="EPSG:4326", progress: rasters.Progress | None = None,
                is_cancelled: rasters.IsCancelled | None = None, overviews: bool = True) -> PreparedProduct:
    """Write the reflectance stack and the SCL (uint8, 0 no data) of one date.

    The stack holds the product's own numbers: uint16 DNs with a GDAL scale and offset per band
    (reflectance = DN * scale + offset = (DN + BOA_ADD_OFFSET) / BOA_QUANTIFICATION_VALUE), DN 0 = no
    data; ``rasters.read_reflectance`` (and GDAL tools that unscale) give the reflectance. A mosaic of
    products of different processing baselines takes the most negative offset, which holds them all.
    ``products``: one product or a list of products of the same date (adjacent tiles are mosaicked).
    ``aoi``: None (whole products), a ``(west, south, east, north)`` box or a polygon (GeoJSON-like
    dict, WKT, or a .geojson path) in ``aoi_crs``; the crop is snapped outward to the 20 m tile grid.
    Both files appear only when complete; a cancelled run (``rasters.Cancelled``) leaves neither. With
    ``overviews`` (for files a user keeps) both get internal overviews.
    """
    if os.path.abspath(os.fspath(stack_path)) == os.path.abspath(os.fspath(scl_path)):
        raise ValueError(f"the reflectance stack and the SCL would both be written to {os.fspath(stack_path)}; "
                         "give them different file names")
    plan = _plan(products, bands, aoi, aoi_crs)
    like = {"crs": plan.crs, "transform": plan.transform, "width": plan.width, "height": plan.height}
    tags = plan.tags()
    valid = 0
    # A bounded block cache: strips are read top to bottom, so only the current row of JPEG 2000 tiles is reused.
    scaling = plan.scaling()
    indexes = list(range(1, len(plan.bands) + 1))
    stack_profile = rasters.reflectance_profile(like, len(plan.bands), scaling)
    with rasterio.Env(GDAL_NUM_THREADS="ALL_CPUS", GDAL_CACHEMAX=256), \
            rasters.atomic_output(stack_path, overviews=Resampling.average if overviews else None) as stack_tmp, \
            rasters.atomic_output(scl_path, overviews=Resampling.nearest if overviews else None) as scl_tmp:
        with rasterio.open(stack_tmp, "w", **stack_profile) as stack_dst, \
                rasterio.open(scl_tmp, "w", **rasters.geotiff_profile(like, 1, "uint8", 0)) as scl_dst:
            rasters.set_scaling(stack_dst, scaling)
            for index, name in enumerate(plan.bands, start=1):
                stack_dst.set_band_description(index, name)
            scl_dst.set_band_description(1, "SCL")
            stack_dst.update_tags(**tags)
            scl_dst.update_tags(**tags)
            for window, block, scl_block in _mosaic_blocks(plan, is_cancelled):
                rasters.write_reflectance(stack_dst, block, indexes, window)
                scl_dst.write(scl_block, 1, window=window)
                valid += int(np.count_nonzero(np.isfinite(block).all(axis=0)))
                rasters.report(progress, 100.0 * (window.row_off + window.height) / plan.height)
        rasters.check_cancelled(is_cancelled)
    return PreparedProduct(
        stack_path=Path(stack_path), scl_path=Path(scl_path), band_names=plan.bands, crs=plan.crs,
        transform=plan.transform, width=plan.width, height=plan.height, sensing_date=plan.sensing_date,
        tile=plan.tile, infos=plan.infos, valid_fraction=valid / float(plan.width * plan.height),
        notes=plan.notes)


def output_label(prepared_or_infos) -> str:
    """``S2_L2A_<yyyymmdd>_<tile>``: the stem of output file names for a date and tile (or tiles)."""
    infos = getattr(prepared_or_infos, "infos", prepared_or_infos)
    tiles = "-".join(sorted({i.tile for i in infos}))
    return f"S2_L2A_{infos[0].sensing_time:%Y%m%d}_{tiles}"


@dataclass
class _Plan:
    infos: tuple[ProductInfo, ...]
    bands: tuple[str, ...]
    crs: CRS
    transform: Affine
    width: int
    height: int
    notes: tuple[str, ...]

    @property
    def sensing_date(self) -> str:
        return self.infos[0].sensing_date.isoformat()

    @property
    def tile(self) -> str:
        return "-".join(dict.fromkeys(i.tile for i in self.infos))

    def scaling(self) -> rasters.Scaling:
        """Per band (scale, offset) of the stack's DNs: the first product's quantification; the most negative
        offset of the products, so that a mosaic of two processing baselines keeps every reflectance."""
        scale = 1.0 / self.infos[0].quantification
        offsets = tuple(min(info.offset(band) / info.quantification for info in self.infos) for band in self.bands)
        return (scale,) * len(self.bands), offsets

    def tags(self) -> dict[str, str]:
        return {
            "SENSING_DATE": self.sensing_date,
            "SENSING_TIME": self.infos[0].sensing_time.isoformat() + "Z",
            "TILE": self.tile,
            "PRODUCT": ",".join(i.name for i in self.infos),
            "BASELINE": ",".join(dict.fromkeys(i.baseline for i in self.infos)),
            "SPACECRAFT": ",".join(dict.fromkeys(i.spacecraft for i in self.infos)),
            "RELATIVE_ORBIT": ",".join(dict.fromkeys(str(i.relative_orbit) for i in self.infos)),
            "BOA_ADD_OFFSET": ",".join(_format_number(i.offset(b)) for i in self.infos[:1] for b in self.bands),
            "BOA_QUANTIFICATION_VALUE": _format_number(self.infos[0].quantification),
        }


def _format_number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def normalise_bands(bands: Sequence[str]) -> tuple[str, ...]:
    """("b2", "B8a") -> ("B02", "B8A"); ValueError naming an unknown band."""
    if isinstance(bands, str):
        bands = [bands]
    result = []
    for band in bands:
        text = str(band).strip().upper()
        if re.fullmatch(r"B\d", text):
            text = "B0" + text[1]
        if text not in L2A_BANDS:
            raise ValueError(f"band {band!r} is not a Sentinel-2 Level-2A band; choose among {', '.join(L2A_BANDS)}")
        if text not in result:
            result.append(text)
    if not result:
        raise ValueError(f"no bands requested; choose among {', '.join(L2A_BANDS)}")
    return tuple(result)


def _as_list(products) -> list:
    if isinstance(products, (str, os.PathLike)):
        return [products]
    products = list(products)
    if not products:
        raise ValueError("no Sentinel-2 product given")
    return products


def _plan(products, bands, aoi, aoi_crs) -> _Plan:
    bands = normalise_bands(bands)
    infos = [read_product_info(p) for p in _as_list(products)]
    dates = {i.sensing_date for i in infos}
    if len(dates) > 1:
        listing = "; ".join(f"{i.name} is {i.sensing_date.isoformat()}" for i in infos)
        raise ValueError(f"products of different dates in one call ({listing}); prepare each date separately "
                         "(one run for the pre-event image, one for the post-event image)")
    infos, notes = newest_per_tile(infos)
    for info in infos:
        for band in (*bands, "SCL"):
            info.band_file(band)  # fail early, naming the band and the product
    ring = None
    if aoi is not None:
        ring = aoi_rings(aoi)
        aoi_crs = CRS.from_user_input(aoi_crs)
        overlaps = [_overlap_area(info, ring, aoi_crs) for info in infos]
        if max(overlaps) <= 0:
            west, south, east, north = ring_bounds(ring, aoi_crs, CRS.from_epsg(4326))
            covers = "; ".join(
                f"{i.name} covers lon {b[0]:.4f}..{b[2]:.4f}, lat {b[1]:.4f}..{b[3]:.4f}"
                for i in infos for b in [transform_bounds(i.crs, "EPSG:4326", *i.bounds, densify_pts=21)])
            raise ValueError(f"the area of interest (lon {west:.4f}..{east:.4f}, lat {south:.4f}..{north:.4f}) does "
                             f"not overlap the product{'s' if len(infos) > 1 else ''}: {covers}. Choose the "
                             "products of the tile that contains the area, or correct the area (and its CRS).")
        kept = [(o, i) for o, i in zip(overlaps, infos) if o > 0]
        for overlap, info in zip(overlaps, infos):
            if overlap <= 0:
                notes.append(f"{info.name} skipped: it does not overlap the area of interest")
        # The product covering most of the area gives the grid; the others follow in the given order.
        best = max(range(len(kept)), key=lambda k: kept[k][0])
        infos = [kept[best][1]] + [i for k, (_, i) in enumerate(kept) if k != best]
    grid = output_grid(infos, ring, aoi_crs)
    crs = grid.crs
    return _Plan(infos=tuple(infos), bands=bands, crs=crs, transform=grid.transform, width=grid.width,
                 height=grid.height,
                 notes=tuple(notes))


def output_grid(infos: Sequence[ProductInfo], rings=None, aoi_crs=None) -> rasters.Grid:
    """The 20 m grid products are read onto: the first product's CRS and pixel lattice over the union of
    the products, cut to the area of interest (``rings`` from ``aoi_rings``, in ``aoi_crs``) when given.

    The first product gives the grid (``prepare_l2a`` puts the one covering most of the area first).
    ValueError when the area covers less than one pixel.
    """
    reference = infos[0]
    crs = reference.crs
    left, bottom, right, top = _union_bounds(infos, crs)
    if rings is not None:
        a_left, a_bottom, a_right, a_top = ring_bounds(rings, CRS.from_user_input(aoi_crs), crs)
        left, bottom, right, top = max(left, a_left), max(bottom, a_bottom), min(right, a_right), min(top, a_top)
    origin_x, origin_y = reference.transform.c, reference.transform.f
    eps = 1e-6
    col0 = math.floor((left - origin_x) / RESOLUTION + eps)
    col1 = math.ceil((right - origin_x) / RESOLUTION - eps)
    row0 = math.floor((origin_y - top) / RESOLUTION + eps)
    row1 = math.ceil((origin_y - bottom) / RESOLUTION - eps)
    if col1 <= col0 or row1 <= row0:
        raise ValueError("the area of interest is smaller than one 20 m pixel of the products; give a larger area")
    transform = Affine(RESOLUTION, 0.0, origin_x + col0 * RESOLUTION, 0.0, -RESOLUTION, origin_y - row0 * RESOLUTION)
    return rasters.Grid(crs, transform, col1 - col0, row1 - row0)


def newest_per_tile(infos: list[ProductInfo]) -> tuple[list[ProductInfo], list[str]]:
    """The same tile and date twice (original and reprocessed): keep the newest processing baseline."""
    kept: dict[str, ProductInfo] = {}
    notes = []
    for info in infos:
        other = kept.get(info.tile)
        if other is None:
            kept[info.tile] = info
            continue
        newer, older = (info, other) if (_baseline_tuple(info.baseline), info.name) > \
            (_baseline_tuple(other.baseline), other.name) else (other, info)
        kept[info.tile] = newer
        notes.append(f"{older.name} skipped: {newer.name} is the same tile and date with a newer processing "
                     f"baseline ({newer.baseline})")
    order = [i for i in infos if kept.get(i.tile) is i]
    return order, notes


# -- area of interest ------------------------------------------------------------------------------------


def aoi_rings(aoi) -> list[list[tuple[float, float]]]:
    """Rings of the area of interest as lists of (x, y): from a box, GeoJSON, WKT or a GeoJSON file."""
    if isinstance(aoi, (str, os.PathLike)):
        text = os.fspath(aoi).strip()
        if os.path.isfile(text):
            with open(text, encoding="utf-8") as handle:
                return aoi_rings(json.load(handle))
        if text.startswith("{"):
            return aoi_rings(json.loads(text))
        return _wkt_rings(text)
    if isinstance(aoi, dict):
        rings = _geojson_rings(aoi)
        if not rings:
            raise ValueError(f"the area of interest has no polygon coordinates (GeoJSON type {aoi.get('type')!r})")
        return rings
    try:
        values = [float(v) for v in aoi]
    except (TypeError, ValueError):
        values = []
    if len(values) != 4:
        raise ValueError(f"the area of interest {aoi!r} is neither a (west, south, east, north) box, a GeoJSON "
                         "polygon nor WKT")
    west, south, east, north = values
    if not (west < east and south < north):
        raise ValueError(f"the area of interest box {tuple(values)} must be (west, south, east, north) with "
                         "west < east and south < north")
    return [[(west, south), (east, south), (east, north), (west, north), (west, south)]]


def _geojson_rings(obj) -> list:
    kind = obj.get("type")
    if kind == "FeatureCollection":
        return [r for feature in obj.get("features", []) for r in _geojson_rings(feature)]
    if kind == "Feature":
        return _geojson_rings(obj.get("geometry") or {})
    if kind == "GeometryCollection":
        return [r for geometry in obj.get("geometries", []) for r in _geojson_rings(geometry)]
    if kind == "Polygon":
        return [[(float(p[0]), float(p[1])) for p in ring] for ring in obj["coordinates"]]
    if kind == "MultiPolygon":
        return [[(float(p[0]), float(p[1])) for p in ring] for polygon in obj["coordinates"] for ring in polygon]
    return []


def _wkt_rings(text: str) -> list:
    kind = text.split("(", 1)[0].strip().upper()
    if kind.split()[:1] not in (["POLYGON"], ["MULTIPOLYGON"]):
        raise ValueError(f"the area of interest WKT must be a POLYGON or MULTIPOLYGON; got {text[:40]!r}")
    rings = []
    for group in re.findall(r"\(([^()]*)\)", text):
        points = []
        for pair in group.split(","):
            numbers = pair.split()
            if len(numbers) < 2:
                raise ValueError(f"the area of interest WKT has an unreadable coordinate {pair.strip()!r}")
            points.append((float(numbers[0]), float(numbers[1])))
        rings.append(points)
    if not rings:
        raise ValueError(f"the area of interest WKT has no coordinates: {text[:60]!r}")
    return rings


def _densified(rings, steps: int = 16) -> tuple[list[float], list[float]]:
    # Straight edges in one CRS are curves in another: follow them, not only the vertices.
    xs, ys = [], []
    for ring in rings:
        for (x0, y0), (x1, y1) in zip(ring, ring[1:] + ring[:1]):
            for k in range(steps):
                xs.append(x0 + (x1 - x0) * k / steps)
                ys.append(y0 + (y1 - y0) * k / steps)
    return xs, ys


def ring_bounds(rings, src_crs, dst_crs) -> tuple[float, float, float, float]:
    xs, ys = _densified(rings)
    if CRS.from_user_input(src_crs) != CRS.from_user_input(dst_crs):
        xs, ys = transform(src_crs, dst_crs, xs, ys)
    finite = [(x, y) for x, y in zip(xs, ys) if math.isfinite(x) and math.isfinite(y)]
    if not finite:
        raise ValueError(f"the area of interest cannot be expressed in {dst_crs}; check its CRS ({src_crs})")
    xs, ys = zip(*finite)
    return min(xs), min(ys), max(xs), max(ys)


def _overlap_area(info: ProductInfo, rings, aoi_crs) -> float:
    left, bottom, right, top = ring_bounds(rings, aoi_crs, info.crs)
    p_left, p_bottom, p_right, p_top = info.bounds
    width = min(right, p_right) - max(left, p_left)
    height = min(top, p_top) - max(bottom, p_bottom)
    return width * height if width > 0 and height > 0 else 0.0


def _union_bounds(infos: Sequence[ProductInfo], crs: CRS) -> tuple[float, float, float, float]:
    boxes = [info.bounds if info.crs == crs else transform_bounds(info.crs, crs, *info.bounds, densify_pts=21)
             for info in infos]
    return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))


# -- block-wise reading and mosaicking ---------------------------------------------------------------------


def _mosaic_blocks(plan: _Plan, is_cancelled=None) -> Iterator[tuple[Window, np.ndarray, np.ndarray]]:
    """Row blocks of the output grid: (window, reflectance float32 (n, h, w), SCL uint8 (h, w)).

    Each product contributes where the block is still empty (first valid pixel wins). A product on
    the output grid (same CRS, origin on the grid) is read window by window without resampling; any
    other is reprojected (bilinear for reflectance, nearest for SCL) from a padded source window, so
    interpolation across block edges matches and no seam appears.
    """
    readers: list[_ProductReader] = []
    try:
        for info in plan.infos:
            readers.append(_ProductReader(info, plan))
        for window in _strips_along_source_tiles(plan, readers):
            rasters.check_cancelled(is_cancelled)
            block = np.full((len(plan.bands), window.height, window.width), np.nan, dtype=np.float32)
            scl = np.zeros((window.height, window.width), dtype=np.uint8)
            for reader in readers:
                reader.fill(window, block, scl)
            yield window, block, scl
    finally:
        for reader in readers:
            reader.close()


def _strips_along_source_tiles(plan: _Plan, readers: Sequence[_ProductReader]) -> Iterator[Window]:
    """Full-width strips whose edges fall on the JPEG 2000 tile rows of the first product read as it is.

    A strip that cuts through a tile makes GDAL decode that tile twice (measured: 512-row strips over
    1024-row tiles doubled the decoding time of a full tile). Strips are one tile high (tiles up to
    2048 rows; otherwise ``rasters.BLOCK_ROWS``) and start where the product's tiles start.
    """
    rows, phase = rasters.BLOCK_ROWS, 0
    aligned = [r for r in readers if r.aligned]
    if aligned:
        dataset, _ = aligned[0].datasets[plan.bands[0]]
        tile_rows = dataset.block_shapes[0][0]
        if 64 <= tile_rows <= 2048 and tile_rows < dataset.height:
            rows, phase = tile_rows, aligned[0].row_offset % tile_rows
    start = 0
    if phase:
        yield Window(0, 0, plan.width, min(phase, plan.height))
        start = phase
    for row in range(start, plan.height, rows):
        yield Window(0, row, plan.width, min(rows, plan.height - row))


class _ProductReader:
    """Open band files of one product and fill output blocks from them."""

    def __init__(self, info: ProductInfo, plan: _Plan):
        self.info, self.plan = info, plan
        self.datasets: dict[str, tuple[rasterio.io.DatasetReader, int]] = {}
        for band in (*plan.bands, "SCL"):
            path, resolution = info.band_file(band)
            with _reading(info.name, path), warnings.catch_warnings():
                warnings.simplefilter("ignore", NotGeoreferencedWarning)
                self.datasets[band] = (rasterio.open(path), resolution)
        col = (info.transform.c - plan.transform.c) / RESOLUTION
        row = (plan.transform.f - info.transform.f) / RESOLUTION
        self.aligned = info.crs == plan.crs and abs(col - round(col)) < 1e-6 and abs(row - round(row)) < 1e-6
        self.col_offset, self.row_offset = int(round(col)), int(round(row))  # product origin in output pixels

    def close(self) -> None:
        for dataset, _ in self.datasets.values():
            dataset.close()

    def fill(self, window: Window, block: np.ndarray, scl: np.ndarray) -> None:
        if self.aligned:
            self._fill_aligned(window, block, scl)
        else:
            self._fill_reprojected(window, block, scl)

    def _fill_aligned(self, window: Window, block: np.ndarray, scl: np.ndarray) -> None:
        # Output rows/cols of the block that the product covers, in product pixel coordinates.
        row0 = max(window.row_off, self.row_offset)
        row1 = min(window.row_off + window.height, self.row_offset + self.info.height)
        col0 = max(window.col_off, self.col_offset)
        col1 = min(window.col_off + window.width, self.col_offset + self.info.width)
        if row1 <= row0 or col1 <= col0:
            return
        source = Window(col0 - self.col_offset, row0 - self.row_offset, col1 - col0, row1 - row0)
        target = (slice(row0 - window.row_off, row1 - window.row_off),
                  slice(col0 - window.col_off, col1 - window.col_off))
        for index, band in enumerate(self.plan.bands):
            values = self._reflectance(band, source)
            _fill_empty(block[index][target], values)
        classes = self._scl(source)
        _fill_empty_scl(scl[target], classes)

    def _fill_reprojected(self, window: Window, block: np.ndarray, scl: np.ndarray) -> None:
        block_transform = self.plan.transform * Affine.translation(window.col_off, window.row_off)
        left, top = block_transform * (0, 0)
        right, bottom = block_transform * (window.width, window.height)
        s_left, s_bottom, s_right, s_top = transform_bounds(
            self.plan.crs, self.info.crs, left, bottom, right, top, densify_pts=21)
        pad = 3  # source pixels around the block, for bilinear interpolation at its edges
        p_left, p_top = self.info.transform.c, self.info.transform.f
        col0 = max(0, math.floor((s_left - p_left) / RESOLUTION) - pad)
        col1 = min(self.info.width, math.ceil((s_right - p_left) / RESOLUTION) + pad)
        row0 = max(0, math.floor((p_top - s_top) / RESOLUTION) - pad)
        row1 = min(self.info.height, math.ceil((p_top - s_bottom) / RESOLUTION) + pad)
        if row1 <= row0 or col1 <= col0:
            return
        source = Window(col0, row0, col1 - col0, row1 - row0)
        source_transform = self.info.transform * Affine.translation(col0, row0)
        for index, band in enumerate(self.plan.bands):
            values = self._reflectance(band, source)
            warped = np.full((window.height, window.width), np.nan, dtype=np.float32)
            reproject(values, warped, src_transform=source_transform, src_crs=self.info.crs, src_nodata=np.nan,
                      dst_transform=block_transform, dst_crs=self.plan.crs, dst_nodata=np.nan,
                      resampling=Resampling.bilinear)
            _fill_empty(block[index], warped)
        classes = self._scl(source)
        warped_scl = np.zeros((window.height, window.width), dtype=np.uint8)
        reproject(classes, warped_scl, src_transform=source_transform, src_crs=self.info.crs, src_nodata=0,
                  dst_transform=block_transform, dst_crs=self.plan.crs, dst_nodata=0, resampling=Resampling.nearest)
        _fill_empty_scl(scl, warped_scl)

    def _dn(self, band: str, window: Window) -> np.ndarray:
        """DNs of ``band`` on the product's 20 m grid within ``window`` (float64; NaN where DN is 0)."""
        dataset, resolution = self.datasets[band]
        path = self.info.band_files[band][0]
        with _reading(self.info.name, path):
            if resolution == 20:
                dn = dataset.read(1, window=window).astype(np.float64)
                dn[dn == 0] = np.nan
                return dn
            if resolution == 10:
                fine = dataset.read(1, window=Window(window.col_off * 2, window.row_off * 2, window.width * 2,
                                                     window.height * 2), boundless=False).astype(np.float64)
                fine[fine == 0] = np.nan
                blocks = fine.reshape(window.height, 2, window.width, 2)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)  # all four 10 m pixels empty -> NaN
                    return np.nanmean(blocks, axis=(1, 3))
            # 60 m: each 60 m pixel covers 3 x 3 pixels of the 20 m grid.
            r0, c0 = window.row_off // 3, window.col_off // 3
            r1 = -(-(window.row_off + window.height) // 3)
            c1 = -(-(window.col_off + window.width) // 3)
            coarse = dataset.read(1, window=Window(c0, r0, c1 - c0, r1 - r0)).astype(np.float64)
            coarse[coarse == 0] = np.nan
            fine = np.repeat(np.repeat(coarse, 3, axis=0), 3, axis=1)
            top, left = window.row_off - r0 * 3, window.col_off - c0 * 3
            return fine[top: top + window.height, left: left + window.width]

    def _reflectance(self, band: str, window: Window) -> np.ndarray:
        dn = self._dn(band, window)
        # float32 arithmetic, so that (DN + offset) / quantification is exactly reproducible.
        return (dn.astype(np.float32) + np.float32(self.info.offset(band))) / np.float32(self.info.quantification)

    def _scl(self, window: Window) -> np.ndarray:
        dataset, resolution = self.datasets["SCL"]
        path = self.info.band_files["SCL"][0]
        with _reading(self.info.name, path):
            if resolution == 20:
                return dataset.read(1, window=window).astype(np.uint8)
            if resolution == 10:
                fine = dataset.read(1, window=Window(window.col_off * 2, window.row_off * 2, window.width * 2,
                                                     window.height * 2))
                return fine[::2, ::2].astype(np.uint8)
            r0, c0 = window.row_off // 3, window.col_off // 3
            r1 = -(-(window.row_off + window.height) // 3)
            c1 = -(-(window.col_off + window.width) // 3)
            coarse = dataset.read(1, window=Window(c0, r0, c1 - c0, r1 - r0)).astype(np.uint8)
            fine = np.repeat(np.repeat(coarse, 3, axis=0), 3, axis=1)
            top, left = window.row_off - r0 * 3, window.col_off - c0 * 3
            return fine[top: top + window.height, left: left + window.width]


def _fill_empty(target: np.ndarray, values: np.ndarray) -> None:
    empty = np.isnan(target)
    target[empty] = values[empty]


def _fill_empty_scl(target: np.ndarray, values: np.ndarray) -> None:
    empty = target == 0
    target[empty] = values[empty]


# -- plain GeoTIFFs of reflectance ---------------------------------------------------------------------


def read_reflectance_geotiff(path, *, band_order: Sequence[str] | None = None,
                             bands: Sequence[str] = DEFAULT_BANDS, scl_path=None, scale: float = 10000.0,
                             offset: float = 0.0, nodata: float | None = 65535,
                             resolution: float | None = RESOLUTION, sensing_date: str | None = None) -> Stack:
    """A GeoTIFF of surface reflectance x ``scale`` (sen2r, FORCE, GEE exports...) as a Stack.

    reflectance = (value + ``offset``) / ``scale``; ``nodata`` values (default 65535, None: the
    file's own nodata) become NaN. Bands are found by ``band_order`` (the name of every band of the
    file, in order) or else by the band descriptions. With ``resolution`` set (20 m by default) a
    finer raster is averaged to it (integer factors only); None keeps the native grid. The SCL in
    ``scl_path`` is taken onto the same grid (nearest neighbour). The date comes from
    ``sensing_date`` or a YYYYMMDD in the file name.
    """
    bands = normalise_bands(bands)
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"reflectance raster {path} does not exist")
    with rasterio.open(path) as src:
        if band_order is not None:
            order = [str(b).strip().upper() for b in band_order]
            if len(order) != src.count:
                raise ValueError(f"band_order names {len(order)} bands but {path} has {src.count}")
            missing = [b for b in bands if b not in order]
            if missing:
                raise ValueError(f"band{'s' if len(missing) > 1 else ''} {', '.join(missing)} not in {path}; its "
                                 f"bands are {', '.join(order)}")
            indexes = [order.index(b) + 1 for b in bands]
        else:
            found = rasters.find_bands(path, bands)
            indexes = [found[b] for b in bands]
        raw = src.read(indexes).astype(np.float32)
        no_value = src.nodata if nodata is None else nodata
        crs, grid = src.crs, src.transform
    invalid = ~np.isfinite(raw)
    if no_value is not None:
        invalid |= raw == np.float32(no_value)
    reflectance = (raw + np.float32(offset)) / np.float32(scale)
    reflectance[invalid] = np.nan
    if resolution is not None and abs(grid.a) < resolution - 1e-6:
        factor = resolution / abs(grid.a)
        if abs(factor - round(factor)) > 1e-6:
            raise ValueError(f"{path} has {abs(grid.a)} m pixels, which do not divide {resolution} m; set "
                             "resolution=None to keep its grid")
        reflectance, grid = _average_blocks(reflectance, grid, int(round(factor)))
    scl = None
    if scl_path is not None:
        scl = _scl_on_grid(os.fspath(scl_path), crs, grid, reflectance.shape[1:])
    if sensing_date is None:
        match = re.search(r"(?<!\d)(\d{4})(\d{2})(\d{2})(?!\d)", os.path.basename(path))
        sensing_date = f"{match.group(1)}-{match.group(2)}-{match.group(3)}" if match else None
    return Stack(reflectance=reflectance, scl=scl, band_names=bands, crs=crs, transform=grid,
                 sensing_date=sensing_date)


def _average_blocks(values: np.ndarray, grid: Affine, factor: int) -> tuple[np.ndarray, Affine]:
    count, height, width = values.shape
    out_h, out_w = -(-height // factor), -(-width // factor)
    padded = np.full((count, out_h * factor, out_w * factor), np.nan, dtype=np.float32)
    padded[:, :height, :width] = values
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # blocks without any valid pixel -> NaN
        averaged = np.nanmean(padded.reshape(count, out_h, factor, out_w, factor), axis=(2, 4))
    return averaged.astype(np.float32), grid * Affine.scale(factor)


def _scl_on_grid(path: str, crs: CRS, grid: Affine, shape: tuple[int, int]) -> np.ndarray:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"scene classification raster {path} does not exist")
    with rasterio.open(path) as src:
        if src.crs == crs and src.transform.almost_equals(grid) and src.shape == tuple(shape):
            return src.read(1).astype(np.uint8)
        out = np.zeros(shape, dtype=np.uint8)
        reproject(rasterio.band(src, 1), out, dst_transform=grid, dst_crs=crs, dst_nodata=0,
                  resampling=Resampling.nearest)
        return out
