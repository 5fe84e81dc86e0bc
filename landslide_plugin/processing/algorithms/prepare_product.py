"""Prepare a Sentinel-2 L2A product: reflectance stack and scene classification on the 20 m grid."""
from __future__ import annotations

import os

from qgis.core import (
    QgsProcessing,
    QgsProcessingException,
    QgsProcessingOutputLayerDefinition,
    QgsProcessingOutputString,
    QgsProcessingParameterEnum,
    QgsProcessingParameterExtent,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterRasterDestination,
    QgsProcessingUtils,
)

from ..base import LandslideAlgorithm
from ..compat import SOURCE_FILE
from ..styles import load_styled, style_scl, style_true_colour

#: Level-2A bands in spectral order (``products.L2A_BANDS``; kept here so the algorithm loads without numpy).
BAND_OPTIONS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12")
DEFAULT_BAND_INDEXES = [BAND_OPTIONS.index(b) for b in ("B02", "B03", "B04", "B8A", "B11", "B12")]


class PrepareProductAlgorithm(LandslideAlgorithm):
    NAME = "prepare_s2_l2a"
    DISPLAY_NAME = "Prepare Sentinel-2 L2A product"
    GROUP = "data"
    REQUIRES = ("numpy", "rasterio")
    HELP = (
        "Turns a Sentinel-2 Level-2A product (the .zip as downloaded, the unzipped .SAFE folder or its "
        "MTD_MSIL2A.xml) into the two rasters every later step uses: a reflectance stack (one band per "
        "Sentinel-2 band, described B02, B03, ...) and the scene classification (SCL, uint8, 0 = no data), both "
        "on the 20 m grid of the tile.<br><br>"
        "Reflectance = (DN + BOA_ADD_OFFSET) / BOA_QUANTIFICATION_VALUE, both read from the product's "
        "MTD_MSIL2A.xml: products of processing baseline 04.00 or later (sensed from 25 January 2022) carry an "
        "offset of −1000, older ones none. The values applied are written to the log. DN 0 is no data; "
        "slightly negative reflectance on dark surfaces is kept. The stack keeps the product's own numbers "
        "(uint16 DNs, 0 = no data) with each band's scale and offset set so that QGIS and GDAL show reflectance "
        "(scale 0.0001, offset −0.1 for baseline 04.00 or later); a third of the size of float32 and fast to "
        "read.<br><br>"
        "Several products of the same date (adjacent tiles, even in different UTM zones) are mosaicked onto the "
        "grid of the product covering most of the extent; where tiles overlap the first valid pixel is used. "
        "The same tile given twice (original and reprocessed) keeps the newest processing baseline. Products of "
        "different dates are refused: run the algorithm once for the pre-event and once for the post-event "
        "image.<br><br>"
        "Level-1C (top-of-atmosphere) products are refused. The zip is read in place, never unpacked. Output "
        "names carry the date and tile (S2_L2A_20230105_T37SCB_stack.tif) when left as temporary files.")

    INPUT = "INPUT"
    EXTENT = "EXTENT"
    BANDS = "BANDS"
    OUTPUT = "OUTPUT"
    OUTPUT_SCL = "OUTPUT_SCL"
    SENSING_DATE = "SENSING_DATE"
    TILE = "TILE"

    def initAlgorithm(self, config=None):  # noqa: N802
        self.add(QgsProcessingParameterMultipleLayers(self.INPUT, "Sentinel-2 L2A product(s)",
                                                      SOURCE_FILE),
                 "One Sentinel-2 Level-2A product (S2MSI2A) as downloaded from the Copernicus Data Space (.zip), "
                 "its unzipped .SAFE folder or its MTD_MSIL2A.xml; or several products of the same date "
                 "(adjacent tiles) to mosaic.")
        self.add(QgsProcessingParameterExtent(self.EXTENT, "Area of interest", optional=True),
                 "Crop to this extent (any CRS; it is converted to the tile's UTM grid and snapped outward to the "
                 "20 m pixels). Leave empty for whole tiles (5490 x 5490 pixels each).")
        self.add(QgsProcessingParameterEnum(self.BANDS, "Bands", options=list(BAND_OPTIONS), allowMultiple=True,
                                            defaultValue=DEFAULT_BAND_INDEXES),
                 "Sentinel-2 bands of the stack, in spectral order. The default B02, B03, B04, B8A, B11, B12 is "
                 "what the indices and the clustering use. B08 exists only at 10 m and is averaged to 20 m; "
                 "B01 and B09 are 60 m bands.", advanced=True)
        self.add(QgsProcessingParameterRasterDestination(self.OUTPUT, "Reflectance stack"),
                 "Float32 GeoTIFF of surface reflectance, one band per Sentinel-2 band (described by its name), "
                 "NaN = no data, with tags SENSING_DATE, TILE, PRODUCT and BASELINE.")
        self.add(QgsProcessingParameterRasterDestination(self.OUTPUT_SCL, "Scene classification (SCL)"),
                 "Uint8 GeoTIFF of the Level-2A scene classification on the same grid (0 no data, 4 vegetation, "
                 "5 bare soil, 6 water, 8-10 clouds and cirrus, 11 snow).")
        self.add_output(QgsProcessingOutputString(self.SENSING_DATE, "Sensing date (YYYY-MM-DD)"))
        self.add_output(QgsProcessingOutputString(self.TILE, "Tile(s)"))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        self.require_dependencies()
        from ...core import products
        from ...core.rasters import Cancelled

        sources = self.parameterAsFileList(parameters, self.INPUT, context)
        if not sources:
            raise QgsProcessingException(
                "no Sentinel-2 product given: choose the .zip as downloaded, the .SAFE folder or its MTD_MSIL2A.xml")
        bands = tuple(BAND_OPTIONS[i] for i in sorted(set(self.parameterAsEnums(parameters, self.BANDS, context))))
        if not bands:
            raise QgsProcessingException(f"no band selected; choose among {', '.join(BAND_OPTIONS)}")
        aoi, aoi_crs = self.extent_as_wkt(parameters, self.EXTENT, context)
        try:
            infos = [products.read_product_info(source) for source in sources]
        except (ValueError, FileNotFoundError) as exc:
            raise QgsProcessingException(str(exc)) from exc
        for info in infos:
            offsets = sorted({info.offset(b) for b in bands})
            offset_text = ", ".join(f"{v:g}" for v in offsets) if len(offsets) > 1 else f"{offsets[0]:g}"
            feedback.pushInfo(
                f"{info.name}: level {info.level}, processing baseline {info.baseline}, sensed "
                f"{info.sensing_time:%Y-%m-%d %H:%M:%S} UTC, tile {info.tile}, relative orbit {info.relative_orbit}; "
                f"reflectance = (DN + {offset_text}) / {info.quantification:g}")
        label = products.output_label(infos)
        stack_path = self._destination(parameters, self.OUTPUT, context, f"{label}_stack.tif")
        scl_path = self._destination(parameters, self.OUTPUT_SCL, context, f"{label}_SCL.tif")
        try:
            prepared = products.prepare_l2a(sources, stack_path, scl_path, bands=bands, aoi=aoi, aoi_crs=aoi_crs,
                                            progress=feedback.setProgress, is_cancelled=feedback.isCanceled)
        except Cancelled:
            raise QgsProcessingException("Cancelled by the user; no output was written.") from None
        except (ValueError, FileNotFoundError) as exc:
            raise QgsProcessingException(str(exc)) from exc
        for note in prepared.notes:
            feedback.pushWarning(note)
        feedback.pushInfo(
            f"Wrote {prepared.width} x {prepared.height} pixels of {', '.join(prepared.band_names)} "
            f"({prepared.crs.to_string()}, 20 m) to {stack_path}; {100 * prepared.valid_fraction:.1f}% of the "
            f"pixels have data. Scene classification: {scl_path}")
        if prepared.valid_fraction == 0:
            feedback.pushWarning("The area holds no valid pixel in these products (outside the satellite's swath?).")
        load_styled(context, stack_path, "", style_true_colour)
        load_styled(context, scl_path, "", style_scl)
        return {self.OUTPUT: stack_path, self.OUTPUT_SCL: scl_path, self.SENSING_DATE: prepared.sensing_date,
                self.TILE: prepared.tile}

    def _destination(self, parameters, name, context, file_name: str) -> str:
        """The output path; temporary outputs get a name carrying date and tile in the processing temp folder."""
        path = self.parameterAsOutputLayer(parameters, name, context)
        value = parameters.get(name)
        if isinstance(value, QgsProcessingOutputLayerDefinition):
            value = value.sink.staticValue()
        if value not in (None, "") and str(value) != QgsProcessing.TEMPORARY_OUTPUT:
            return path
        folder = QgsProcessingUtils.tempFolder()
        stem, ext = os.path.splitext(file_name)
        named, number = os.path.join(folder, file_name), 1
        while os.path.exists(named):  # a second run in the same session (another extent) keeps the first
            number += 1
            named = os.path.join(folder, f"{stem}_{number}{ext}")
        layers = context.layersToLoadOnCompletion()
        if path in layers:
            details = layers.pop(path)
            details.name = os.path.splitext(os.path.basename(named))[0]
            layers[named] = details
            context.setLayersToLoadOnCompletion(layers)
        return named
