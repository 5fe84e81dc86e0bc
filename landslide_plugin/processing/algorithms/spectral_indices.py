"""Spectral indices: NDVI, bare-soil index, NDWI, visible and SWIR-1 brightness, NDSI of one reflectance stack."""
from __future__ import annotations

from qgis.core import (
    QgsProcessingException,
    QgsProcessingParameterEnum,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
)

from .. import styles
from ..base import LandslideAlgorithm, add_band_parameters, band_numbers, report_band_choice

#: Index names as the core spells them (``indices.INDICES``; kept here so the algorithm loads without numpy).
INDEX_OPTIONS = ("NDVI", "BSI", "NDWI", "VIS", "SWIR", "NDSI")


class SpectralIndicesAlgorithm(LandslideAlgorithm):
    NAME = "spectral_indices"
    DISPLAY_NAME = "Spectral indices"
    GROUP = "detection"
    REQUIRES = ("numpy", "rasterio")
    HELP = (
        "Computes NDVI, the bare-soil index (BSI), NDWI, the visible brightness (VIS), the SWIR-1 brightness "
        "(SWIR) and the snow index (NDSI) of a Sentinel-2 reflectance stack, as one float32 raster with one band "
        "per chosen index (band descriptions NDVI, BSI, NDWI, VIS, SWIR, NDSI; NDVI, BSI and NDWI by default)."
        "<br><br>"
        "NDVI = (B8A − B04) / (B8A + B04); BSI = ((B11 + B04) − (B8A + B02)) / ((B11 + B04) + (B8A + B02)); "
        "NDWI (McFeeters) = (B03 − B8A) / (B03 + B8A), above 0 on water; VIS = (B02 + B03 + B04) / 3 "
        "(fresh scars brighten in the visible, burns, shadows and wet ground darken); SWIR = B11 (bare soil and "
        "rock brighten, haze barely reaches it); NDSI = (B03 − B11) / (B03 + B11) (snow: 0.4 and above where it "
        "covers the ground, about 0 where it covers a third; snow-free land below about −0.2).<br><br>"
        "Negative reflectances (dark water and shadow after the Level-2A offset) are floored at 0, so every "
        "index stays within −1..1 instead of reaching ±3000; pixels without signal or without data are no data "
        "(NaN). Bands are found by their descriptions (B02, B03, B04, B8A, B11); for rasters without "
        "descriptions set the band numbers in the advanced parameters.")

    INPUT = "INPUT"
    INDICES = "INDICES"
    OUTPUT = "OUTPUT"

    def initAlgorithm(self, config=None):  # noqa: N802
        self.add(QgsProcessingParameterRasterLayer(self.INPUT, "Reflectance stack"),
                 "Sentinel-2 L2A surface reflectance (float, 0..1), bands described B02, B03, B04, B8A, B11, for "
                 "example the output of the Sentinel-2 preparation step.")
        self.add(QgsProcessingParameterEnum(self.INDICES, "Indices", options=list(INDEX_OPTIONS),
                                            allowMultiple=True, defaultValue=[0, 1, 2]),
                 "Which indices to compute, one output band each, in this order: NDVI (vegetation), BSI (bare "
                 "soil), NDWI (water), VIS (mean visible reflectance), SWIR (SWIR-1 reflectance), NDSI (snow).")
        add_band_parameters(self)
        self.add(QgsProcessingParameterRasterDestination(self.OUTPUT, "Indices"),
                 "Float32 GeoTIFF, one band per index (described by its name), NaN = no data.")

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        self.require_dependencies()
        from ...core import indices
        from ...core.rasters import Cancelled

        path = self.raster_path(parameters, self.INPUT, context)
        chosen = tuple(INDEX_OPTIONS[i] for i in sorted(set(self.parameterAsEnums(parameters, self.INDICES, context))))
        if not chosen:
            raise QgsProcessingException("no index selected; choose at least one of NDVI, BSI, NDWI, VIS, SWIR, NDSI")
        numbers = band_numbers(self, parameters, context)
        out_path = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        try:
            report_band_choice(feedback, path, indices.bands_for_indices(chosen), numbers)
            indices.write_indices(path, out_path, indices=chosen, band_numbers=numbers,
                                  progress=feedback.setProgress, is_cancelled=feedback.isCanceled)
        except Cancelled:
            raise QgsProcessingException("Cancelled by the user; no output was written.") from None
        except (ValueError, FileNotFoundError) as exc:
            raise QgsProcessingException(str(exc)) from exc
        feedback.pushInfo(f"Wrote {', '.join(chosen)} to {out_path}")
        styles.load_styled(context, out_path, " ".join(chosen), styles.index_styler(chosen[0]))
        return {self.OUTPUT: out_path}
