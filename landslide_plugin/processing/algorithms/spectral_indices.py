"""Spectral indices: NDVI, bare-soil index and NDWI of one reflectance stack, as one multi-band raster."""
from __future__ import annotations

from qgis.core import (
    QgsProcessingException,
    QgsProcessingParameterEnum,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
)

from .. import styles
from ..base import LandslideAlgorithm

#: Index names as the core spells them (``indices.INDICES``; kept here so the algorithm loads without numpy).
INDEX_OPTIONS = ("NDVI", "BSI", "NDWI")

#: (parameter, band, label, default number in the plugin's stack order B02, B03, B04, B8A, B11).
BAND_PARAMETERS = (
    ("BAND_BLUE", "B02", "Blue band (B02) number", 1),
    ("BAND_GREEN", "B03", "Green band (B03) number", 2),
    ("BAND_RED", "B04", "Red band (B04) number", 3),
    ("BAND_NIR", "B8A", "Narrow NIR band (B8A) number", 4),
    ("BAND_SWIR1", "B11", "SWIR-1 band (B11) number", 5),
)


def add_band_parameters(alg: LandslideAlgorithm, what: str = "the stack") -> None:
    """The five advanced band-number parameters, used only for rasters without band descriptions."""
    for name, band, label, default in BAND_PARAMETERS:
        alg.add(QgsProcessingParameterNumber(name, label, type=QgsProcessingParameterNumber.Type.Integer,
                                             defaultValue=default, minValue=1),
                f"Only used when {what} has no band descriptions: the 1-based number of band {band}. "
                f"Bands described B02, B03, B04, B8A, B11 (as the plugin writes them) are found by name.",
                advanced=True)


def band_numbers(alg: LandslideAlgorithm, parameters, context) -> dict[str, int]:
    return {band: alg.parameterAsInt(parameters, name, context) for name, band, _, _ in BAND_PARAMETERS}


def report_band_choice(feedback, path: str, needed, numbers: dict[str, int]) -> None:
    """Tell the user which bands were taken by number rather than by name (a silent wrong band is worse)."""
    from ...core import rasters

    found = rasters.find_bands(path, needed, fallback=numbers)
    by_number = [b for b in needed if not _described(path, b)]
    if by_number:
        feedback.pushWarning(
            f"{path} has no band described as {', '.join(by_number)}; using band numbers "
            + ", ".join(f"{b}={found[b]}" for b in by_number) + ". Check them in the advanced parameters.")


def _described(path: str, band: str) -> bool:
    from ...core import rasters

    try:
        rasters.find_bands(path, [band])
        return True
    except ValueError:
        return False


class SpectralIndicesAlgorithm(LandslideAlgorithm):
    NAME = "spectral_indices"
    DISPLAY_NAME = "Spectral indices"
    GROUP = "detection"
    REQUIRES = ("numpy", "rasterio")
    HELP = (
        "Computes NDVI, the bare-soil index (BSI) and NDWI of a Sentinel-2 reflectance stack, as one float32 "
        "raster with one band per index (band descriptions NDVI, BSI, NDWI).<br><br>"
        "NDVI = (B8A − B04) / (B8A + B04); BSI = ((B11 + B04) − (B8A + B02)) / ((B11 + B04) + (B8A + B02)); "
        "NDWI (McFeeters) = (B03 − B8A) / (B03 + B8A), above 0 on water.<br><br>"
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
                 "soil), NDWI (water).")
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
            raise QgsProcessingException("no index selected; choose at least one of NDVI, BSI, NDWI")
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
