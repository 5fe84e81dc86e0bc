"""A synthetic Sentinel-2 L2A pre/post pair whose true landslide map is known.

The scene is built to fail the naive method the way real scenes do (see docs and the method notes):
landslides are a small share of the land and sit on steep vegetated slopes, while much larger changes
happen elsewhere between the two dates: winter cereals are harvested on the flat plain, a reservoir
rises over its green drawdown zone, grass and shrub dry out in summer, clouds and their shadows come
and go, steep north-facing slopes are in shadow under the low winter sun, and the post image is
mis-registered by a known sub-pixel shift. Accuracy measured on this scene is therefore meaningful
only for methods that handle those confounders; it is the only place where the truth is known.

Layers (all on the 20 m grid of the pre product):
  * DEM: fractal terrain (spectral synthesis, power spectrum ~ 1/f^4) in a mountain zone, blended with
    a smooth mask into a gently tilted plain that covers a sizeable share of the scene.
  * Land cover in ESA WorldCover 2021 class codes (``LANDCOVER_CLASSES``), so the same exclusion rules
    work on this layer and on the real WorldCover map (40 = cropland).
  * Truth: 1 where a landslide scar covers at least half the pixel, 0 elsewhere (clouds or not).

Surface reflectance per pixel and date is a linear mixture: green vegetation cover ``fv`` (class
phenology for the day of year, field calendar for cropland, texture) over a class background (litter,
dry grass, stubble, soil, rock, urban, water), times a partially corrected terrain illumination; the
post date adds landslide debris (mixed pixels at scar edges), then the post content is displaced by
``shift``, and clouds, cloud shadows, sensor noise and a no-data swath edge are added on the image grid
of each date. The Scene Classification Layer is derived from that final reflectance as Sen2Cor would
roughly do (NDVI/NDWI rules), with clouds, shadows, dark terrain and no data from the simulation.

Memory: the scene keeps a handful of full-size layers (DEM, slope, texture, brightness, field ids as
float32/int32; land cover, debris as uint8) and computes each band on demand block by block, so a full
5490 x 5490 tile needs about 1.5 GB.
"""
from __future__ import annotations

import datetime
import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.transform import from_origin

from ..core.rasters import IsCancelled, Progress, atomic_output, check_cancelled, geotiff_profile, report

#: Bump when the simulation changes: cached pairs of another version are regenerated.
GENERATOR_VERSION = 1

PIXEL_SIZE = 20.0
#: Bands written by default (what the plugin uses) and every band the simulation can produce.
CORE_BANDS = ("B02", "B03", "B04", "B8A", "B11", "B12")
ALL_BANDS = ("B02", "B03", "B04", "B05", "B06", "B07", "B8A", "B11", "B12")

#: Landslides occur only where the slope (degrees, from the DEM on the 20 m grid with np.gradient)
#: is at least this steep, and only in forest, shrubland and grassland.
LANDSLIDE_MIN_SLOPE = 20.0

#: Land-cover codes and names: ESA WorldCover 2021 (v200) legend, the subset present in the scene.
LANDCOVER_CLASSES = {
    10: "tree cover",
    20: "shrubland",
    30: "grassland",
    40: "cropland",
    50: "built-up",
    60: "bare / sparse vegetation",
    80: "permanent water bodies",
    90: "herbaceous wetland (reservoir drawdown zone, flooded when the level is high)",
}
FOREST, SHRUB, GRASS, CROP, BUILT, BARE, WATER, DRAWDOWN = 10, 20, 30, 40, 50, 60, 80, 90

#: SCL classes used (Sen2Cor legend).
SCL_NODATA, SCL_DARK, SCL_SHADOW, SCL_VEG, SCL_BARE, SCL_WATER = 0, 2, 3, 4, 5, 6
SCL_CLOUD_MEDIUM, SCL_CLOUD_HIGH, SCL_CIRRUS = 8, 9, 10

# --- Spectra --------------------------------------------------------------------------------------
# Bottom-of-atmosphere reflectance of the end-members for B02 B03 B04 B05 B06 B07 B8A B11 B12.
# Values are approximate and rounded; they follow the shapes of the USGS Spectral Library v7
# (Kokaly et al. 2017: conifer and grass canopies, dry grass, soils, limestone, water) and the
# ECOSTRESS/ASTER spectral library (Meerdink et al. 2019; Baldridge et al. 2009) convolved to the
# Sentinel-2 bands, and the class ranges of ESA's Sentinel-2 L2A validation reports (S2 MPC L2A Data
# Quality Reports; ACIX, Doxani et al. 2018). Cross-checked against the real L2A crop of Barbellino
# in ../shared/realdata (vegetation pixels B04 0.08 / B8A 0.37 / B11 0.23, water B8A 0.01, bare 0.14-0.29).
_SPECTRA = {
    #             B02    B03    B04    B05    B06    B07    B8A    B11    B12
    "conifer": (0.020, 0.040, 0.022, 0.070, 0.180, 0.225, 0.255, 0.120, 0.055),
    "herb":    (0.030, 0.075, 0.035, 0.120, 0.320, 0.400, 0.440, 0.230, 0.110),
    "dry":     (0.070, 0.095, 0.120, 0.150, 0.190, 0.215, 0.240, 0.330, 0.250),
    "soil":    (0.085, 0.120, 0.165, 0.195, 0.220, 0.235, 0.255, 0.330, 0.270),
    "rock":    (0.130, 0.160, 0.185, 0.205, 0.220, 0.230, 0.245, 0.300, 0.250),
    "debris":  (0.110, 0.150, 0.185, 0.210, 0.230, 0.245, 0.260, 0.320, 0.265),
    "water":   (0.040, 0.050, 0.028, 0.022, 0.012, 0.010, 0.008, 0.004, 0.003),
    "wetsoil": (0.050, 0.070, 0.090, 0.105, 0.120, 0.130, 0.140, 0.120, 0.085),
    "urban":   (0.095, 0.110, 0.125, 0.140, 0.160, 0.170, 0.185, 0.230, 0.200),
    "cloud":   (0.420, 0.430, 0.440, 0.450, 0.470, 0.480, 0.490, 0.380, 0.270),
    # Used by examples.scenarios only. Broadleaf (deciduous) canopy: brighter in the NIR than conifers
    # (USGS v7 aspen/oak canopies). Char: black carbon over soil after a fire, dark from the visible to
    # the NIR, relatively bright in SWIR-2, so NBR drops (Key & Benson 2006, FIREMON; Smith et al. 2010
    # char and ash spectra). Snow: medium-grain snow, bright in the visible and NIR, dark in the SWIR,
    # hence NDSI > 0.4 (USGS v7 snow; Dozier 1989).
    "broadleaf": (0.025, 0.060, 0.030, 0.095, 0.290, 0.370, 0.410, 0.190, 0.085),
    "char":    (0.030, 0.035, 0.040, 0.047, 0.054, 0.060, 0.072, 0.110, 0.100),
    "snow":    (0.800, 0.790, 0.770, 0.760, 0.740, 0.710, 0.660, 0.090, 0.060),
}
_BAND_INDEX = {name: i for i, name in enumerate(ALL_BANDS)}


def _spectrum(name: str, band: str) -> float:
    return _SPECTRA[name][_BAND_INDEX[band]]


def _mix(band: str, **weights: float) -> float:
    return sum(w * _spectrum(name, band) for name, w in weights.items())


# Per class: green-vegetation end-member and the background under the (1 - fv) part.
_GREEN = {FOREST: "conifer", SHRUB: "conifer", GRASS: "herb", CROP: "herb", BUILT: "herb", BARE: "herb",
          DRAWDOWN: "herb"}
_BACKGROUND = {
    FOREST: {"dry": 0.6, "soil": 0.4},                  # needle litter over soil
    SHRUB: {"dry": 0.4, "soil": 0.35, "rock": 0.25},    # garrigue/maquis: litter, soil, outcrops
    GRASS: {"dry": 0.75, "soil": 0.25},                 # standing dead grass
    BUILT: {"urban": 1.0},
    BARE: {"rock": 0.8, "soil": 0.2},
    DRAWDOWN: {"wetsoil": 1.0},
}

# --- Phenology ------------------------------------------------------------------------------------
# Green cover fraction at mid-month, January..December, for an eastern-Mediterranean foothill climate
# (wet winter, dry summer; e.g. Kahramanmaras, Turkey): evergreen pine forest is nearly constant,
# shrub and grass green up with winter rain and dry out from June (MODIS NDVI climatologies of
# Mediterranean Turkey show the same shape). Approximate values.
_FV_MONTHLY = {
    FOREST: (0.82, 0.82, 0.84, 0.87, 0.90, 0.90, 0.88, 0.87, 0.86, 0.85, 0.84, 0.83),
    SHRUB: (0.50, 0.53, 0.58, 0.60, 0.56, 0.48, 0.42, 0.40, 0.40, 0.42, 0.46, 0.49),
    GRASS: (0.45, 0.52, 0.65, 0.72, 0.60, 0.35, 0.18, 0.14, 0.14, 0.20, 0.30, 0.40),
    BUILT: (0.22, 0.24, 0.26, 0.26, 0.22, 0.18, 0.15, 0.14, 0.15, 0.17, 0.19, 0.21),
    BARE: (0.04, 0.05, 0.07, 0.08, 0.06, 0.03, 0.02, 0.02, 0.02, 0.03, 0.03, 0.04),
    DRAWDOWN: (0.55, 0.60, 0.65, 0.60, 0.50, 0.35, 0.20, 0.12, 0.10, 0.15, 0.30, 0.45),
}
#: How dry the season is (0 wet .. 1 driest), scaling the extra browning of drought-stressed patches.
_DRYNESS = (0.0, 0.0, 0.0, 0.0, 0.2, 0.6, 0.9, 1.0, 0.9, 0.5, 0.1, 0.0)

# Crop calendars: (share of fields, green cover by month, stubble/straw share of the background by
# month; the rest of the background is soil). Winter cereals dominate the arable land of Turkey
# (TurkStat crop statistics: wheat and barley about two thirds of the sown area): sown in autumn, green
# in winter, harvested in June, stubble then ploughed. Irrigated summer crops (maize, cotton) are bare
# in winter and green in August; orchards keep a cover crop; fallow carries winter weeds.
_CROPS = (
    (0.50, (0.50, 0.58, 0.72, 0.85, 0.80, 0.35, 0.04, 0.03, 0.02, 0.05, 0.15, 0.35),
           (0.0, 0.0, 0.0, 0.0, 0.1, 0.55, 0.85, 0.50, 0.20, 0.0, 0.0, 0.0)),
    (0.20, (0.03, 0.03, 0.03, 0.05, 0.15, 0.45, 0.80, 0.85, 0.70, 0.30, 0.05, 0.03),
           (0.3, 0.2, 0.1, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.3, 0.5, 0.4)),
    (0.12, (0.30, 0.30, 0.35, 0.45, 0.55, 0.60, 0.60, 0.58, 0.55, 0.50, 0.40, 0.32),
           (0.3,) * 12),
    (0.18, (0.30, 0.35, 0.40, 0.38, 0.30, 0.15, 0.06, 0.04, 0.04, 0.06, 0.12, 0.22),
           (0.4, 0.3, 0.2, 0.2, 0.3, 0.5, 0.6, 0.6, 0.5, 0.4, 0.4, 0.4)),
)

#: Reservoir level through the year as a share of its range (low after the autumn draw-down, full in
#: May, partly drawn down by September): the drawdown zone is green in winter and flooded in summer.
_RESERVOIR_LEVEL = (0.0, 0.2, 0.5, 0.85, 1.0, 0.95, 0.8, 0.65, 0.5, 0.3, 0.15, 0.05)


@dataclass(frozen=True)
class Landscape:
    """Climate, vegetation and relief of a simulated scene; the default is the eastern-Mediterranean
    foothills of the built-in example (``FOOTHILLS``). ``examples.scenarios`` defines others.

    Tables as the module's defaults: ``fv_monthly`` green cover per class and month, ``dryness`` per
    month, ``crops`` (share, green cover by month, straw share by month) per crop, ``reservoir_level``
    per month (share of its range); ``green`` / ``background`` the end-members per class;
    ``debris`` the mixture of end-members a fresh scar exposes. Relief: ``plain_share`` of the scene
    below the mountain front, ``median_slope_deg`` of the mountain core, ``base_elevation`` (m).
    Land cover: ``forest_bias`` raises (or lowers) the forest share of the hills, grassland where the
    grass field exceeds ``grass_level``, bare rock above the ``bare_quantile`` of mountain elevations,
    alpine grassland above the ``treeline_quantile`` (None: no treeline), terraced fields on a
    ``hill_crop_share`` of the gentler hill slopes. ``browning`` = extra summer browning of drought-stressed
    (forest, shrub and grass) patches at the driest time. ``smooth_mountain_mask``: see the field.
    """

    name: str = "mediterranean foothills"
    fv_monthly: dict = field(default_factory=lambda: dict(_FV_MONTHLY))
    dryness: tuple = _DRYNESS
    crops: tuple = _CROPS
    reservoir_level: tuple = _RESERVOIR_LEVEL
    green: dict = field(default_factory=lambda: dict(_GREEN))
    background: dict = field(default_factory=lambda: dict(_BACKGROUND))
    debris: dict | None = None          # None: the "debris" end-member
    plain_share: float = 0.42
    median_slope_deg: float = 24.0
    base_elevation: float = 550.0
    forest_bias: float = 0.0
    grass_level: float = 0.9
    bare_quantile: float = 0.93
    treeline_quantile: float | None = None
    hill_crop_share: float = 0.0
    browning: tuple = (0.15, 0.45)      # forest, shrub and grass
    #: Blur the coarse mountain mask after enlarging it (no striped slopes); off for the built-in example,
    #: whose scenes stay as they were.
    smooth_mountain_mask: bool = False


#: The built-in example's landscape (Kahramanmaras foothills).
FOOTHILLS = Landscape()


def _monthly(nodes: Sequence[float], day_of_year: float) -> float:
    """Cyclic linear interpolation of 12 mid-month values at a day of the year."""
    position = (day_of_year - 15.0) / (365.0 / 12.0)
    low = math.floor(position)
    frac = position - low
    return (1 - frac) * nodes[low % 12] + frac * nodes[(low + 1) % 12]


def _monthly_array(nodes: Sequence[float], day_of_year: np.ndarray) -> np.ndarray:
    position = (day_of_year - 15.0) / (365.0 / 12.0)
    low = np.floor(position)
    frac = (position - low).astype(np.float32)
    table = np.asarray(nodes, dtype=np.float32)
    low = low.astype(np.int64)
    return (1 - frac) * table[low % 12] + frac * table[(low + 1) % 12]


# --- Public results -------------------------------------------------------------------------------
@dataclass
class ExamplePair:
    """Files of a generated example pair.

    ``shift`` = (dx, dy) in pixels: a ground feature at pre pixel (col, row) appears at post pixel
    (col + dx, row + dy); aligning the post image to the pre image means moving it by (-dx, -dy).
    Both products carry the same geotransform: the mis-registration is in the content, as in real data.
    """

    pre: Path
    post: Path
    truth: Path
    dem: Path
    landcover: Path
    shift: tuple[float, float]
    info: Path


@dataclass
class DateImage:
    """One date as the sensor delivers it: reflectance per band on the image grid, and the SCL."""

    date: datetime.date
    reflectance: dict[str, np.ndarray]  # band -> float32 (size, size), NaN where no data
    scl: np.ndarray                     # uint8 (size, size)


@dataclass
class Scene:
    """The simulated ground and atmosphere; bands are computed on demand (``image('pre')``).

    Layers are held on a grid padded by ``margin`` pixels so the post content can be shifted
    without edge effects; the properties return them cropped to the pre grid.
    """

    size: int
    seed: int
    shift: tuple[float, float]
    pre_date: datetime.date
    post_date: datetime.date
    cloud_fraction: tuple[float, float]
    latitude: float
    margin: int
    nodata_edge: bool
    dem_padded: np.ndarray          # float32 metres
    slope_padded: np.ndarray        # float32 degrees
    landcover_padded: np.ndarray    # uint8 WorldCover codes
    debris_padded: np.ndarray       # uint8, landslide cover fraction * 250 (post date)
    texture_padded: np.ndarray      # float32 ~1: canopy density / vigour variation
    brightness_padded: np.ndarray   # float32 ~1: background brightness (soil, rock, debris)
    field_id_padded: np.ndarray     # int32, 0 outside cropland
    field_table: np.ndarray         # (n_fields, 3) float32: crop type, phase shift (days), vigour
    reservoir: dict                 # box (r0, r1, c0, c1), basin mask, levels per date
    landslide_count: int
    landscape: Landscape = FOOTHILLS
    #: Share of the uncorrected terrain-illumination contrast left after Sen2Cor's terrain correction.
    terrain_residual: float = 0.33
    _cache: dict = field(default_factory=dict, repr=False)

    #: Bands the Scene Classification rules read.
    scl_bands = ("B03", "B04", "B8A")

    # -- layers on the pre grid ------------------------------------------------------------------
    def _crop(self, array: np.ndarray) -> np.ndarray:
        m = self.margin
        return array[m:m + self.size, m:m + self.size]

    @property
    def dem(self) -> np.ndarray:
        return self._crop(self.dem_padded)

    @property
    def slope(self) -> np.ndarray:
        return self._crop(self.slope_padded)

    @property
    def landcover(self) -> np.ndarray:
        return self._crop(self.landcover_padded)

    @property
    def debris_fraction(self) -> np.ndarray:
        return self._crop(self.debris_padded).astype(np.float32) / 250.0

    @property
    def truth(self) -> np.ndarray:
        """uint8: 1 where a landslide covers at least half the pixel (the physical truth)."""
        return (self._crop(self.debris_padded) >= 125).astype(np.uint8)

    def date(self, which: str) -> datetime.date:
        if which not in ("pre", "post"):
            raise ValueError(f"date must be 'pre' or 'post', not {which!r}")
        return self.pre_date if which == "pre" else self.post_date

    # -- radiometry --------------------------------------------------------------------------------
    def image(self, which: str, bands: Sequence[str] = CORE_BANDS, *, is_cancelled: IsCancelled | None = None,
              progress: Progress | None = None) -> DateImage:
        """The image of one date: reflectance per band (post: shifted, with its clouds) and SCL."""
        reflectance, scl = self._render(which, bands, as_dn=False, is_cancelled=is_cancelled, progress=progress)
        return DateImage(date=self.date(which), reflectance=reflectance, scl=scl)

    def _render(self, which: str, bands: Sequence[str], *, as_dn: bool, is_cancelled: IsCancelled | None = None,
                progress: Progress | None = None) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Bands of one date, one at a time (float32 reflectance, or uint16 DN of baseline >= 04.00)."""
        unknown = [b for b in bands if b not in _BAND_INDEX]
        if unknown:
            raise ValueError(f"bands {', '.join(unknown)} are not simulated; choose among {', '.join(ALL_BANDS)}")
        self.date(which)
        wanted = list(dict.fromkeys(list(bands) + list(self.scl_bands)))  # the SCL rules need these
        state = self._surface_state(which)
        atmosphere = self._atmosphere(which)
        out: dict[str, np.ndarray] = {}
        for i, band in enumerate(wanted):
            check_cancelled(is_cancelled)
            surface = np.empty_like(self.dem_padded)
            for r0 in range(0, surface.shape[0], 256):
                surface[r0:r0 + 256] = state.band_rows(band, r0, min(r0 + 256, surface.shape[0]))
            if which == "post":
                surface = shift_content(surface, self.shift, self.margin, self.size)
            else:
                surface = self._crop(surface).copy()
            atmosphere.apply(surface, band, _rng(self.seed, "noise", which, band))
            if atmosphere.nodata is not None:
                surface[atmosphere.nodata] = np.nan
            out[band] = reflectance_to_dn(surface) if as_dn else surface
            report(progress, 100.0 * (i + 1) / (len(wanted) + 1))
        illumination = state.illumination
        del state
        if which == "post":
            illumination = shift_content(illumination, self.shift, self.margin, self.size)
        else:
            illumination = self._crop(illumination)
        # Classify what the product stores (DN-rounded), so SCL and reflectance agree exactly after reading.
        scl_bands = {b: dn_to_reflectance(out[b] if as_dn else reflectance_to_dn(out[b]))
                     for b in self.scl_bands}
        scl = self._classify(which, scl_bands, illumination, atmosphere)
        for band in [b for b in wanted if b not in bands]:
            del out[band]
        return out, scl

    # Extension points (``examples.scenarios`` adds burns, clear-cuts, snow, haze through them).
    def _surface_state(self, which: str) -> _SurfaceState:
        return _SurfaceState(self, which)

    def _atmosphere(self, which: str) -> _Atmosphere:
        return _Atmosphere(self, which)

    def _classify(self, which: str, reflectance: dict[str, np.ndarray], illumination: np.ndarray,
                  atmosphere: _Atmosphere) -> np.ndarray:
        return _scene_classification(reflectance, illumination, atmosphere)


#: Baseline 04.00 and later: DN = reflectance * 10000 + 1000 (BOA_ADD_OFFSET -1000); DN 0 = no data.
QUANTIFICATION, ADD_OFFSET = 10000.0, -1000.0


def reflectance_to_dn(reflectance: np.ndarray) -> np.ndarray:
    """uint16 DN (offset baseline); reflectance below -0.0999 is clipped to DN 1 so it never reads as no data."""
    dn = np.empty(reflectance.shape, dtype=np.uint16)
    for r0 in range(0, reflectance.shape[0], 512):
        block = reflectance[r0:r0 + 512] * np.float32(QUANTIFICATION) - np.float32(ADD_OFFSET)
        nodata = ~np.isfinite(block)
        block = np.clip(np.rint(np.nan_to_num(block, nan=0.0)), 1, 65535)
        block[nodata] = 0
        dn[r0:r0 + 512] = block.astype(np.uint16)
    return dn


def dn_to_reflectance(dn: np.ndarray) -> np.ndarray:
    out = (dn.astype(np.float32) + np.float32(ADD_OFFSET)) / np.float32(QUANTIFICATION)
    out[dn == 0] = np.nan
    return out


# --- Random streams -------------------------------------------------------------------------------
def _rng(seed: int, *names: str) -> np.random.Generator:
    """An independent, reproducible stream per (seed, component): adding a component never shifts others."""
    words = [int(seed)] + [int.from_bytes(name.encode()[:8].ljust(8, b"\0"), "little") for name in names]
    return np.random.default_rng(np.random.SeedSequence(words))


# --- Noise fields ---------------------------------------------------------------------------------
def _fractal_noise(shape: tuple[int, int], beta: float, rng: np.random.Generator, *,
                   coarse: int = 1, min_wavelength: float = 2.0) -> np.ndarray:
    """Zero-mean, unit-variance float32 noise with power spectrum ~ 1/f^beta (spectral synthesis).

    ``coarse`` > 1 synthesises on a grid that much coarser and enlarges it (cheap smooth fields).
    ``min_wavelength`` (pixels of the synthesis grid) damps the finest scales.
    """
    from scipy import fft as sfft

    height = max(8, math.ceil(shape[0] / coarse) + 2)
    width = max(8, math.ceil(shape[1] / coarse) + 2)
    fh, fw = sfft.next_fast_len(height, real=True), sfft.next_fast_len(width, real=True)
    white = rng.standard_normal((fh, fw), dtype=np.float32)
    spectrum = sfft.rfft2(white, workers=os.cpu_count() or 1)
    del white
    fy = sfft.fftfreq(fh).astype(np.float32)[:, None]
    fx = sfft.rfftfreq(fw).astype(np.float32)[None, :]
    cutoff = np.float32(1.0 / min_wavelength)
    for r0 in range(0, fh, 512):
        f2 = fy[r0:r0 + 512] ** 2 + fx ** 2
        f2[f2 == 0] = np.inf  # no DC: zero mean
        gain = f2 ** np.float32(-beta / 4.0) * np.exp(-f2 / (cutoff * cutoff))
        spectrum[r0:r0 + 512] *= gain
    noise = sfft.irfft2(spectrum, s=(fh, fw), workers=os.cpu_count() or 1)[:height, :width]
    del spectrum
    sample = noise[::4, ::4]
    noise = (noise - np.float32(sample.mean())) / np.float32(sample.std() + 1e-12)
    if coarse > 1:
        import cv2

        noise = cv2.resize(np.ascontiguousarray(noise), (width * coarse, height * coarse),
                           interpolation=cv2.INTER_CUBIC)
    return np.ascontiguousarray(noise[:shape[0], :shape[1]], dtype=np.float32)


def _smoothstep(x: np.ndarray, low: float, high: float) -> np.ndarray:
    t = np.clip((x - low) / (high - low), 0, 1)
    return t * t * (3 - 2 * t)


def slope_aspect(dem: np.ndarray, pixel_size: float = PIXEL_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """Slope (degrees) and aspect (degrees clockwise from north, direction the slope faces) with np.gradient."""
    drow, dcol = np.gradient(dem.astype(np.float32), pixel_size)
    slope = np.degrees(np.arctan(np.hypot(drow, dcol))).astype(np.float32)
    # Downslope direction: east component -dz/dx, north component +dz/drow (rows run southwards).
    aspect = (np.degrees(np.arctan2(-dcol, drow)) % 360.0).astype(np.float32)
    return slope, aspect


def _slope_blocks(dem: np.ndarray) -> np.ndarray:
    """slope_aspect()'s slope computed in row blocks (identical values, bounded temporaries)."""
    out = np.empty_like(dem, dtype=np.float32)
    height = dem.shape[0]
    for r0 in range(0, height, 512):
        r1 = min(r0 + 512, height)
        a0, a1 = max(0, r0 - 1), min(height, r1 + 1)
        slope, _ = slope_aspect(dem[a0:a1])
        out[r0:r1] = slope[r0 - a0:r0 - a0 + (r1 - r0)]
    return out


# --- Sun --------------------------------------------------------------------------------------------
def sun_position(date: datetime.date, latitude: float, local_solar_hour: float = 10.5) -> tuple[float, float]:
    """(zenith, azimuth) in degrees at Sentinel-2's 10:30 descending-node overpass (textbook formulas)."""
    doy = date.timetuple().tm_yday
    declination = math.radians(23.44) * math.sin(2 * math.pi * (284 + doy) / 365.0)
    lat = math.radians(latitude)
    hour_angle = math.radians(15.0 * (local_solar_hour - 12.0))
    cos_zenith = (math.sin(lat) * math.sin(declination)
                  + math.cos(lat) * math.cos(declination) * math.cos(hour_angle))
    zenith = math.acos(max(-1.0, min(1.0, cos_zenith)))
    cos_az = (math.sin(declination) - math.sin(lat) * cos_zenith) / (math.cos(lat) * math.sin(zenith) + 1e-12)
    azimuth = math.degrees(math.acos(max(-1.0, min(1.0, cos_az))))
    if hour_angle > 0:
        azimuth = 360.0 - azimuth
    return math.degrees(zenith), azimuth


# --- Shifting ------------------------------------------------------------------------------------
def _lanczos_weights(fraction: float, a: int = 3) -> tuple[np.ndarray, int]:
    """Weights w[k] for value(p - fraction) = sum_k w[k] * x[p - k0 - k] ... as offsets k0..k0+2a-1."""
    offsets = np.arange(-a + 1, a + 1)  # sample at p - k for k in offsets
    t = offsets - fraction
    weights = np.sinc(t) * np.sinc(t / a)
    weights[np.abs(t) >= a] = 0
    return (weights / weights.sum()).astype(np.float32), offsets


def shift_content(padded: np.ndarray, shift: tuple[float, float], margin: int, size: int) -> np.ndarray:
    """Crop of ``padded`` (margin on every side) whose content is displaced by shift = (dx, dy) pixels.

    out[r, c] = padded[margin + r - dy, margin + c - dx], interpolated with a Lanczos-3 kernel.
    """
    dx, dy = float(shift[0]), float(shift[1])
    ix, iy = math.floor(dx), math.floor(dy)
    wx, kx = _lanczos_weights(dx - ix)
    wy, ky = _lanczos_weights(dy - iy)
    need = max(abs(ix), abs(iy)) + 4
    if need > margin:
        raise ValueError(f"shift {shift} needs a margin of {need} pixels, the scene has {margin}")
    out = np.empty((size, size), dtype=np.float32)
    for r0 in range(0, size, 512):
        r1 = min(r0 + 512, size)
        # vertical pass on the columns needed by the horizontal pass
        c_lo = margin - ix - int(kx.max())
        c_hi = margin - ix - int(kx.min()) + size
        vertical = np.zeros((r1 - r0, c_hi - c_lo), dtype=np.float32)
        for w, k in zip(wy, ky):
            start = margin + r0 - iy - int(k)
            vertical += w * padded[start:start + (r1 - r0), c_lo:c_hi]
        block = np.zeros((r1 - r0, size), dtype=np.float32)
        for w, k in zip(wx, kx):
            start = margin - ix - int(k) - c_lo
            block += w * vertical[:, start:start + size]
        out[r0:r1] = block
    return out


# --- Scene construction ---------------------------------------------------------------------------
def _as_date(value) -> datetime.date:
    if isinstance(value, datetime.datetime):
        return value.date()
    if isinstance(value, datetime.date):
        return value
    try:
        return datetime.date.fromisoformat(str(value))
    except ValueError:
        raise ValueError(f"date {value!r} is not a date; give it as YYYY-MM-DD") from None


def _cloud_fractions(cloud_fraction) -> tuple[float, float]:
    if isinstance(cloud_fraction, (int, float)):
        pair = (float(cloud_fraction), float(cloud_fraction))
    else:
        pair = tuple(float(v) for v in cloud_fraction)
        if len(pair) != 2:
            raise ValueError("cloud_fraction must be one number or a (pre, post) pair")
    for value in pair:
        if not 0.0 <= value <= 0.5:
            raise ValueError(f"cloud_fraction {value} must be between 0 and 0.5")
    return pair


def simulate_scene(size: int = 256, seed: int = 0, *, shift: tuple[float, float] = (1.5, -1.25),
                   pre_date="2023-01-05", post_date="2023-08-05", cloud_fraction=(0.02, 0.06),
                   landslide_share: float = 0.015, latitude: float = 37.5, nodata_edge: bool = True,
                   landscape: Landscape | None = None, is_cancelled: IsCancelled | None = None) -> Scene:
    """Simulate the ground of a ``size`` x ``size`` scene at 20 m (see the module docstring).

    ``landslide_share``: target share of the land pixels (not water) covered by landslides (truth).
    ``landscape``: climate, vegetation and relief (default ``FOOTHILLS``, the built-in example's).
    """
    landscape = FOOTHILLS if landscape is None else landscape
    if not 32 <= int(size) <= 10980:
        raise ValueError(f"size {size} must be between 32 and 10980 pixels (a 20 m tile is 5490)")
    size = int(size)
    if not 0.001 <= landslide_share <= 0.05:
        raise ValueError(f"landslide_share {landslide_share} must be between 0.001 and 0.05")
    pre, post = _as_date(pre_date), _as_date(post_date)
    if not pre < post:
        raise ValueError(f"the pre-event date {pre} must be before the post-event date {post}")
    dx, dy = (float(v) for v in shift)
    if max(abs(dx), abs(dy)) > 50:
        raise ValueError(f"shift {shift} is larger than 50 pixels; co-registration tests use a few pixels")
    margin = int(math.ceil(max(abs(dx), abs(dy)))) + 8
    padded = size + 2 * margin
    shape = (padded, padded)

    # -- terrain ----------------------------------------------------------------------------------
    # Mountain mask: smooth field + a ramp in a random direction, so that even a small scene holds
    # both a mountain front and a plain (as the Kahramanmaras plain below the Taurus ranges).
    rng = _rng(seed, "terrain")
    coarse = max(1, padded // 64)
    angle = rng.uniform(0, 2 * math.pi)
    rows = np.linspace(-1, 1, padded, dtype=np.float32)[:, None]
    cols = np.linspace(-1, 1, padded, dtype=np.float32)[None, :]
    wavelength_scale = min(1.0, 1200.0 / padded)  # mountain ranges ~ 25 km apart on a full tile
    mask_noise = _fractal_noise(shape, 4.5, _rng(seed, "mountains"), coarse=coarse,
                                min_wavelength=max(2.0, 6.0 * wavelength_scale))
    if landscape.smooth_mountain_mask and coarse > 1:
        from scipy import ndimage

        # Bicubic enlargement leaves ripples at the coarse cell spacing in the mask's gradient, which
        # the relief multiplies into striped slopes; a blur of about one cell removes them.
        mask_noise = ndimage.gaussian_filter(mask_noise, sigma=0.6 * coarse, mode="nearest")
    raw = mask_noise * np.float32(0.8) + np.float32(1.2) * (math.cos(angle) * cols + math.sin(angle) * rows)
    del mask_noise
    threshold = float(np.quantile(raw[::4, ::4], landscape.plain_share))  # ~58 % mountains and foothills
    mountain = _smoothstep(raw, threshold, threshold + 2.2).astype(np.float32)
    del raw
    check_cancelled(is_cancelled)

    relief = _fractal_noise(shape, 4.0, _rng(seed, "relief"), min_wavelength=3.0)
    relief -= relief.min()
    relief /= relief.max()
    relief **= np.float32(1.3)                     # broad valleys, sharper crests
    relief *= mountain
    plain_tilt = (np.float32(0.002 * PIXEL_SIZE) * (math.cos(angle) * cols + math.sin(angle) * rows)
                  * np.float32(padded / 2))
    # Scale the relief so that the median slope of the mountain core is ~24 degrees, whatever the size.
    probe = relief[::2, ::2]
    gy, gx = np.gradient(probe, 2 * PIXEL_SIZE)
    core = mountain[::2, ::2] > 0.6
    unit = float(np.median(np.hypot(gy, gx)[core])) if core.any() else 1e-6
    del probe, gy, gx, core
    amplitude = math.tan(math.radians(landscape.median_slope_deg)) / max(unit, 1e-9)
    dem = relief
    dem *= np.float32(amplitude)
    dem += np.float32(landscape.base_elevation) + plain_tilt
    dem += np.float32(2.0) * _fractal_noise(shape, 3.0, _rng(seed, "microrelief"), coarse=2)
    del relief, plain_tilt
    _limit_slopes(dem)
    check_cancelled(is_cancelled)

    # -- reservoir -----------------------------------------------------------------------------------
    reservoir = _carve_reservoir(dem, mountain, size, margin, _rng(seed, "reservoir"), pre, post,
                                 landscape.reservoir_level)
    slope = _slope_blocks(dem)
    check_cancelled(is_cancelled)

    # -- land cover --------------------------------------------------------------------------------
    texture = np.float32(1.0) + np.float32(0.10) * _fractal_noise(shape, 2.5, _rng(seed, "texture"))
    brightness = np.float32(1.0) + np.float32(0.08) * _fractal_noise(shape, 3.0, _rng(seed, "brightness"))
    landcover, field_id, field_table = _land_cover(dem, slope, mountain, reservoir, seed, size, landscape)
    del mountain
    check_cancelled(is_cancelled)

    # -- landslides --------------------------------------------------------------------------------
    debris, count = _landslides(dem, slope, landcover, margin, size, landslide_share, _rng(seed, "slides"))

    return Scene(size=size, seed=int(seed), shift=(dx, dy), pre_date=pre, post_date=post,
                 cloud_fraction=_cloud_fractions(cloud_fraction), latitude=float(latitude), margin=margin,
                 nodata_edge=bool(nodata_edge), dem_padded=dem, slope_padded=slope, landcover_padded=landcover,
                 debris_padded=debris, texture_padded=texture, brightness_padded=brightness,
                 field_id_padded=field_id, field_table=field_table, reservoir=reservoir, landslide_count=count,
                 landscape=landscape)


def _limit_slopes(dem: np.ndarray, passes: int = 3) -> None:
    """In place: smooth where the slope exceeds ~40 degrees, as hillslopes steeper than their
    threshold angle fail and regrade (20-30 m DEMs of young mountains rarely exceed 55-60 degrees)."""
    from scipy import ndimage

    for _ in range(passes):
        slope = _slope_blocks(dem)
        weight = _smoothstep(slope, 38.0, 60.0).astype(np.float32)
        del slope
        smoothed = ndimage.gaussian_filter(dem, sigma=1.5, mode="nearest")
        smoothed -= dem
        smoothed *= weight
        dem += smoothed
        del smoothed, weight


def _carve_reservoir(dem: np.ndarray, mountain: np.ndarray, size: int, margin: int,
                     rng: np.random.Generator, pre: datetime.date, post: datetime.date,
                     level_by_month: Sequence[float] = _RESERVOIR_LEVEL) -> dict:
    """Dig a dammed valley lake at the mountain front; water levels per date from the yearly cycle."""
    padded = dem.shape[0]
    radius = float(np.clip(0.09 * size, 5.0, 140.0))
    # Centre: a pixel of the mountain front (mask between 0.2 and 0.6) well inside the scene.
    lo, hi = margin + int(radius) + 2, margin + size - int(radius) - 2
    centre = None
    for _ in range(400):
        r, c = rng.integers(lo, max(lo + 1, hi), size=2)
        if 0.2 <= mountain[r, c] <= 0.6:
            centre = (int(r), int(c))
            break
    if centre is None:
        centre = (padded // 2, padded // 2)
    r0, r1 = max(0, centre[0] - int(2 * radius)), min(padded, centre[0] + int(2 * radius) + 1)
    c0, c1 = max(0, centre[1] - int(2 * radius)), min(padded, centre[1] + int(2 * radius) + 1)
    yy, xx = np.mgrid[r0:r1, c0:c1].astype(np.float32)
    theta = rng.uniform(0, math.pi)
    u = ((xx - centre[1]) * math.cos(theta) + (yy - centre[0]) * math.sin(theta)) / radius
    v = (-(xx - centre[1]) * math.sin(theta) + (yy - centre[0]) * math.cos(theta)) / (0.55 * radius)
    rho = np.sqrt(u * u + v * v)
    window = dem[r0:r1, c0:c1]
    floor = float(np.quantile(window[rho < 1], 0.2))
    # The lake bed: a bowl sunk below the local floor, blended into the untouched terrain towards the
    # rim (rho = 1) so that the valley sides stay natural slopes.
    bed = np.minimum(window, floor - 12.0 * np.clip(1 - rho, 0, 1) ** 1.5)
    blend = _smoothstep(1.0 - rho, 0.0, 0.45)
    carved = (window * (1 - blend) + bed * blend).astype(np.float32)
    basin = rho < 1.0
    levels = np.quantile(carved[basin], [0.30, 0.62])  # water level range: low .. full
    low, full = float(levels[0]), float(levels[1])
    level = {which: low + (full - low) * _monthly(level_by_month, d.timetuple().tm_yday)
             for which, d in (("pre", pre), ("post", post))}
    # A DEM (like SRTM or Copernicus GLO-30) shows the water surface of its own acquisition: flat at
    # the low level; the drawdown zone keeps its terrain.
    carved = np.where(basin & (carved < low), np.float32(low), carved)
    dem[r0:r1, c0:c1] = carved.astype(np.float32)
    return {"box": (r0, r1, c0, c1), "basin": basin, "low": low, "full": full, "level": level}


def _field_ids(shape: tuple[int, int], rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """Parcels: strips of random width along a rotated axis, cut into random lengths (ids from 1)."""
    height, width = shape
    angle = rng.uniform(0, math.pi)
    cos_a, sin_a = math.cos(angle), math.sin(angle)
    extent = int(math.ceil(math.hypot(height, width))) + 2
    strip_edges = np.cumsum(rng.integers(6, 22, size=extent // 6 + 2))  # 120-440 m wide strips
    cut_edges = np.cumsum(rng.integers(8, 40, size=(len(strip_edges) + 1, extent // 8 + 2)), axis=1)
    ids = np.empty(shape, dtype=np.int32)
    n_cuts = cut_edges.shape[1]
    for r0 in range(0, height, 512):
        rr = np.arange(r0, min(r0 + 512, height), dtype=np.float32)[:, None]
        cc = np.arange(width, dtype=np.float32)[None, :]
        u = cc * cos_a + rr * sin_a + extent / 2
        v = -cc * sin_a + rr * cos_a + extent / 2
        strip = np.searchsorted(strip_edges, u.ravel()).reshape(u.shape)
        strip = np.minimum(strip, len(strip_edges))
        # per-strip cuts along v
        cut = np.empty_like(strip)
        flat_v = v.ravel() if v.shape == strip.shape else np.broadcast_to(v, strip.shape).ravel()
        flat_s = strip.ravel()
        for s in np.unique(flat_s):
            sel = flat_s == s
            cut.ravel()[sel] = np.searchsorted(cut_edges[s], flat_v[sel])
        ids[r0:r0 + 512] = (strip * (n_cuts + 1) + cut + 1).astype(np.int32)
    return ids, int((len(strip_edges) + 1) * (n_cuts + 1) + 1)


def _land_cover(dem, slope, mountain, reservoir, seed, size, landscape: Landscape = FOOTHILLS):
    """WorldCover-coded classes from terrain and smooth noise; cropland parcels on the flat ground."""
    shape = dem.shape
    padded = shape[0]
    coarse = max(1, padded // 128)
    patches = _fractal_noise(shape, 3.5, _rng(seed, "patches"), coarse=coarse)
    grass_noise = _fractal_noise(shape, 3.5, _rng(seed, "grass"), coarse=coarse)
    landcover = np.empty(shape, dtype=np.uint8)
    mountain_px = mountain > 0.5
    elevation_cut = (float(np.quantile(dem[::3, ::3][mountain_px[::3, ::3]], landscape.bare_quantile))
                     if mountain_px.any() else np.inf)
    treeline = (float(np.quantile(dem[::3, ::3][mountain_px[::3, ::3]], landscape.treeline_quantile))
                if mountain_px.any() and landscape.treeline_quantile is not None else None)
    terraces = (_fractal_noise(shape, 3.5, _rng(seed, "terraces"), coarse=coarse)
                if landscape.hill_crop_share > 0 else None)
    terrace_cut = (float(np.quantile(terraces[::3, ::3], 1.0 - landscape.hill_crop_share))
                   if terraces is not None else None)
    for r0 in range(0, padded, 512):
        sl = slice(r0, r0 + 512)
        s, m, p, g, z = slope[sl], mountain[sl], patches[sl], grass_noise[sl], dem[sl]
        _, aspect = slope_aspect(dem[max(0, r0 - 1):r0 + 513])
        aspect = aspect[(1 if r0 > 0 else 0):][: s.shape[0]]
        northness = np.cos(np.radians(aspect))
        hill = (s >= 8.0) | (m > 0.5)
        # Hills: forest on cooler north-facing slopes and where the patch field is high, shrub
        # elsewhere, grassland patches, rock on the summits and cliffs.
        forest_score = p + 0.6 * northness * np.clip(s / 20.0, 0, 1)
        if landscape.forest_bias:
            forest_score += landscape.forest_bias
        out = np.where(forest_score > 0.0, FOREST, SHRUB).astype(np.uint8)
        out[g > landscape.grass_level + s / 50.0] = GRASS  # pastures mostly on the gentler slopes
        if treeline is not None:  # alpine meadows above the treeline (lower on the sunny side)
            out[z > treeline - 60.0 * northness] = GRASS
        if terraces is not None:  # terraced fields on the gentler hill slopes, as in many mountain regions
            out[(terraces[sl] > terrace_cut) & (s < 32.0) & (m < 0.9)] = CROP
        out[(z > elevation_cut) | (s > 48.0)] = BARE
        # Plain: cropland, with grassland patches and villages.
        plain = np.full(s.shape, CROP, dtype=np.uint8)
        plain[g > 1.1] = GRASS
        plain[(s >= 5.0)] = GRASS
        out = np.where(hill, out, plain)
        landcover[sl] = out
    del patches, grass_noise
    # Villages: a few blobs on the plain (built-up is ~2-4 % of the land in such regions).
    rng = _rng(seed, "villages")
    n_villages = max(1, int(round(size * size / 40000)))
    for _ in range(n_villages * 20):
        if n_villages == 0:
            break
        r, c = (int(v) for v in rng.integers(0, padded, size=2))
        if landcover[r, c] != CROP:
            continue
        radius = float(rng.uniform(3, 9))
        r0, r1 = max(0, r - 2 * int(radius)), min(padded, r + 2 * int(radius) + 1)
        c0, c1 = max(0, c - 2 * int(radius)), min(padded, c + 2 * int(radius) + 1)
        yy, xx = np.mgrid[r0:r1, c0:c1]
        blob = (np.hypot(yy - r, xx - c) + rng.normal(0, 1.2, size=yy.shape)) < radius
        window = landcover[r0:r1, c0:c1]
        window[blob & (slope[r0:r1, c0:c1] < 10)] = BUILT
        n_villages -= 1
    # Reservoir: permanent water below the low level, drawdown zone up to the full level.
    r0, r1, c0, c1 = reservoir["box"]
    basin = reservoir["basin"]
    window = landcover[r0:r1, c0:c1]
    z = dem[r0:r1, c0:c1]
    window[basin & (z <= reservoir["full"])] = DRAWDOWN
    window[basin & (z <= reservoir["low"])] = WATER
    # Parcels and their crop calendars.
    field_id, n_fields = _field_ids(shape, _rng(seed, "fields"))
    field_id[landcover != CROP] = 0
    rng = _rng(seed, "crops")
    shares = np.array([c[0] for c in landscape.crops])
    table = np.empty((n_fields + 1, 3), dtype=np.float32)
    table[:, 0] = rng.choice(len(landscape.crops), size=n_fields + 1, p=shares / shares.sum())
    table[:, 1] = rng.normal(0.0, 10.0, size=n_fields + 1)       # sowing/harvest date spread, days
    table[:, 2] = rng.uniform(0.85, 1.12, size=n_fields + 1)     # crop vigour
    return landcover, field_id, table


def _landslides(dem, slope, landcover, margin, size, share, rng):
    """Elongated downslope scars with power-law areas until ``share`` of the land is covered.

    Areas follow a truncated Pareto law (pdf ~ A^-2.4, the tail exponent of earthquake-triggered
    inventories: Malamud et al. 2004; Tanyas et al. 2019), from 3 pixels (1,200 m2) up to 2,000 pixels
    (0.8 km2) or a quarter of the target on small scenes. Length/width 2-5, long axis along the local
    downslope direction of the smoothed DEM, crown at the seed. Pixels are covered by the scar in
    proportion to their depth inside the ellipse (mixed edge pixels); only forest, shrub and grassland
    on slopes >= LANDSLIDE_MIN_SLOPE are affected.
    """
    from scipy import ndimage

    padded = dem.shape[0]
    debris = np.zeros(dem.shape, dtype=np.uint8)
    allowed_classes = np.isin(landcover, (FOREST, SHRUB, GRASS))
    inside = (slice(margin, margin + size), slice(margin, margin + size))
    land = int(np.count_nonzero(~np.isin(landcover[inside], (WATER,))))
    target = share * land
    candidates_exist = np.count_nonzero(allowed_classes[inside] & (slope[inside] >= LANDSLIDE_MIN_SLOPE + 5))
    if candidates_exist == 0:
        return debris, 0
    a_min, alpha = 3.0, 1.4
    a_max = float(min(2000.0, max(12.0, target / 4.0)))
    covered = 0
    count = 0
    attempts = 0
    max_attempts = 50_000 + int(20 * target)  # most random seeds miss the steep vegetated slopes
    while covered < target and attempts < max_attempts:
        attempts += 1
        r, c = (int(v) for v in rng.integers(margin, margin + size, size=2))
        if slope[r, c] < LANDSLIDE_MIN_SLOPE + 5 or not allowed_classes[r, c]:
            continue
        u = rng.random()
        area = a_min * (1 - u * (1 - (a_min / a_max) ** alpha)) ** (-1 / alpha)
        ratio = rng.uniform(2.0, 5.0)
        length = math.sqrt(4 * area * ratio / math.pi)
        width = length / ratio
        # Downslope direction from the DEM smoothed over about the scar length.
        reach = int(max(3, length))
        w0, w1 = max(0, r - reach), min(padded, r + reach + 1)
        v0, v1 = max(0, c - reach), min(padded, c + reach + 1)
        local = ndimage.gaussian_filter(dem[w0:w1, v0:v1].astype(np.float32), sigma=max(1.0, length / 6))
        gy, gx = _gradient_at(local, r - w0, c - v0)
        dr, dc = -gy, -gx  # downslope, in (row, col)
        norm = math.hypot(dr, dc)
        if norm == 0:
            continue
        dr, dc = dr / norm, dc / norm
        centre_r, centre_c = r + dr * length / 2, c + dc * length / 2
        half = int(math.ceil(length / 2 + 2))
        b0, b1 = max(0, int(centre_r) - half), min(padded, int(centre_r) + half + 2)
        e0, e1 = max(0, int(centre_c) - half), min(padded, int(centre_c) + half + 2)
        # Row and column coordinates broadcast against each other (same values as a full mgrid, less work).
        yy = np.arange(b0, b1, dtype=np.float32)[:, None] - centre_r
        xx = np.arange(e0, e1, dtype=np.float32)[None, :] - centre_c
        along = yy * dr + xx * dc
        across = -yy * dc + xx * dr
        # Teardrop: wider near the crown (upslope, along < 0), narrower at the toe.
        # (np.minimum/np.maximum: np.clip's values at a fraction of its per-call overhead.)
        local_width = width / 2 * (1.0 - 0.35 * np.minimum(np.maximum(along / (length / 2), -1), 1))
        rho = np.sqrt((along / (length / 2)) ** 2 + (across / np.maximum(local_width, 0.3)) ** 2)
        depth = (1 - rho) * min(length / 2, width / 2)       # ~ pixels inside the outline
        fraction = np.minimum(np.maximum(0.5 + depth, 0), 1)
        ok = allowed_classes[b0:b1, e0:e1] & (slope[b0:b1, e0:e1] >= LANDSLIDE_MIN_SLOPE)
        value = np.where(ok, np.round(fraction * 250), 0).astype(np.uint8)
        window = debris[b0:b1, e0:e1]
        added = _newly_covered(window, value, b0, e0, margin, size)
        np.maximum(window, value, out=window)
        if added:
            count += 1
            covered += added
    return debris, count


def _newly_covered(window: np.ndarray, value: np.ndarray, b0: int, e0: int, margin: int, size: int) -> int:
    """Pixels inside the scene that np.maximum(window, value) turns into truth (>= 125) for the first time."""
    r0, c0 = max(0, margin - b0), max(0, margin - e0)
    r1, c1 = min(window.shape[0], margin + size - b0), min(window.shape[1], margin + size - e0)
    if r1 <= r0 or c1 <= c0:
        return 0
    return int(np.count_nonzero((value[r0:r1, c0:c1] >= 125) & (window[r0:r1, c0:c1] < 125)))


def _gradient_at(values: np.ndarray, row: int, col: int) -> tuple[np.float32, np.float32]:
    """np.gradient(values) at one pixel, (d/drow, d/dcol), bit for bit, without the whole-array work.

    Central differences inside, one-sided at the edges (edge_order 1), computed on one-element arrays so
    that the float32 arithmetic matches np.gradient's exactly.
    """
    def along(line: np.ndarray, i: int) -> np.float32:
        n = line.shape[0]
        if n < 2:
            raise ValueError("np.gradient needs at least two samples per axis")
        if i == 0:
            return (line[1:2] - line[0:1])[0]
        if i == n - 1:
            return (line[n - 1:n] - line[n - 2:n - 1])[0]
        return ((line[i + 1:i + 2] - line[i - 1:i]) / 2.0)[0]

    return along(values[:, col], row), along(values[row, :], col)


# --- Surface reflectance of one date --------------------------------------------------------------
class _SurfaceState:
    """Green cover, backgrounds, water and illumination of one date on the padded grid."""

    def __init__(self, scene: Scene, which: str):
        self.scene = scene
        self.which = which
        date = scene.date(which)
        self.doy = date.timetuple().tm_yday + self._season_offset_days()
        zenith, azimuth = sun_position(date, scene.latitude)
        self.zenith, self.azimuth = zenith, azimuth
        self.fv = self._green_cover()
        self.stubble = self._stubble()
        self.water = self._water()
        self.illumination = self._illumination()

    def _green_cover(self) -> np.ndarray:
        s = self.scene
        fv = np.zeros(s.dem_padded.shape, dtype=np.float32)
        land = s.landscape
        dryness = self._dryness()
        forest_browning, open_browning = self._browning()
        table = self._field_table()
        for r0 in range(0, fv.shape[0], 512):
            sl = slice(r0, r0 + 512)
            lc = s.landcover_padded[sl]
            out = np.zeros(lc.shape, dtype=np.float32)
            for cls, nodes in land.fv_monthly.items():
                out[lc == cls] = _monthly(nodes, self.doy)
            # Drought-stressed patches (thin bright soils) brown more in summer: shrub, grass, forest.
            stress = np.clip((s.brightness_padded[sl] - 1.0) / 0.16 + 0.5, 0, 1)
            browning = 1.0 - dryness * stress * np.where(lc == FOREST, forest_browning, np.where(
                np.isin(lc, (SHRUB, GRASS)), open_browning, 0.0))
            out *= browning
            ids = s.field_id_padded[sl]
            crop = ids > 0
            if crop.any():
                params = table[ids[crop]]
                day = self.doy + params[:, 1]
                green = np.zeros(day.shape, dtype=np.float32)
                for k, (_, nodes, _) in enumerate(land.crops):
                    sel = params[:, 0] == k
                    green[sel] = _monthly_array(nodes, day[sel])
                out[crop] = green * params[:, 2]
            out *= s.texture_padded[sl]
            fv[sl] = np.clip(out, 0.0, 0.97)
        return fv

    def _season_offset_days(self) -> int:
        """Days the vegetation's season is ahead (+) or behind (-) the calendar on this date."""
        return 0

    def _dryness(self) -> float:
        """How dry the season is on this date (0 wet .. 1 driest)."""
        return _monthly(self.scene.landscape.dryness, self.doy)

    def _browning(self) -> tuple[float, float]:
        """Browning of drought-stressed forest and of shrub/grass at the driest time."""
        return self.scene.landscape.browning

    def _field_table(self) -> np.ndarray:
        """Crop type, phase shift and vigour per field on this date."""
        return self.scene.field_table

    def _stubble(self) -> np.ndarray:
        """Straw share of the cropland background, per pixel (0 outside cropland)."""
        s = self.scene
        out = np.zeros(s.dem_padded.shape, dtype=np.float32)
        crop = s.field_id_padded > 0
        if crop.any():
            params = self._field_table()[s.field_id_padded[crop]]
            day = self.doy + params[:, 1]
            straw = np.zeros(day.shape, dtype=np.float32)
            for k, (_, _, nodes) in enumerate(s.landscape.crops):
                sel = params[:, 0] == k
                straw[sel] = _monthly_array(nodes, day[sel])
            out[crop] = straw
        return out

    def _water(self) -> dict:
        res = self.scene.reservoir
        r0, r1, c0, c1 = res["box"]
        z = self.scene.dem_padded[r0:r1, c0:c1]
        level = res["level"][self.which]
        water = res["basin"] & (z <= level)
        # A wet strip of about half a metre above the water line (freshly exposed or splashed mud).
        wet = res["basin"] & (z > level) & (z <= level + 0.5)
        return {"box": (r0, r1, c0, c1), "water": water, "wet": wet}

    def _illumination(self) -> np.ndarray:
        """Residual terrain illumination after Sen2Cor's terrain correction, as a reflectance factor.

        cos(i) = cos z cos s + sin z sin s cos(sun azimuth - aspect). The L2A product is corrected,
        but imperfectly: a third of the uncorrected contrast remains. Self-shadowed slopes (cos i <= 0)
        keep diffuse light only (factor 0.3) and become SCL "dark area" pixels.
        """
        dem = self.scene.dem_padded
        out = np.empty_like(dem)
        cz, sz = math.cos(math.radians(self.zenith)), math.sin(math.radians(self.zenith))
        height = dem.shape[0]
        for r0 in range(0, height, 512):
            r1 = min(r0 + 512, height)
            a0, a1 = max(0, r0 - 1), min(height, r1 + 1)
            slope, aspect = slope_aspect(dem[a0:a1])
            slope, aspect = slope[r0 - a0:r0 - a0 + r1 - r0], aspect[r0 - a0:r0 - a0 + r1 - r0]
            s = np.radians(slope)
            cos_i = cz * np.cos(s) + sz * np.sin(s) * np.cos(np.radians(self.azimuth - aspect))
            factor = 1.0 + self.scene.terrain_residual * (cos_i / cz - 1.0)
            factor = np.clip(factor, 0.45, 1.5)
            factor[cos_i <= 0.0] = 0.3
            out[r0:r1] = factor
        return out

    def band_rows(self, band: str, r0: int, r1: int) -> np.ndarray:
        s = self.scene
        sl = slice(r0, r1)
        lc = s.landcover_padded[sl]
        fv = self.fv[sl]
        bright = s.brightness_padded[sl]
        green = np.zeros(lc.shape, dtype=np.float32)
        background = np.zeros(lc.shape, dtype=np.float32)
        land = s.landscape
        for cls, name in land.green.items():
            green[lc == cls] = _spectrum(name, band)
        for cls, weights in land.background.items():
            background[lc == cls] = _mix(band, **weights)
        crop = lc == CROP
        if crop.any():
            straw = self.stubble[sl][crop]
            background[crop] = straw * _spectrum("dry", band) + (1 - straw) * _spectrum("soil", band)
        background = self._background_rows(band, background, r0, r1)
        value = fv * green + (1 - fv) * background * bright
        value[lc == WATER] = _spectrum("water", band)
        # Reservoir state of this date (overrides the land-cover water, which is the low level).
        b0, b1, c0, c1 = self.water["box"]
        lo, hi = max(r0, b0), min(r1, b1)
        if lo < hi:
            window = value[lo - r0:hi - r0, c0:c1]
            water = self.water["water"][lo - b0:hi - b0]
            wet = self.water["wet"][lo - b0:hi - b0]
            window[wet] = _spectrum("wetsoil", band)
            window[water] = _spectrum("water", band)
        if self.which == "post":
            debris = s.debris_padded[sl]
            hit = debris > 0
            if hit.any():
                d = debris[hit].astype(np.float32) / 250.0
                scar = _spectrum("debris", band) if land.debris is None else _mix(band, **land.debris)
                value[hit] = (1 - d) * value[hit] + d * scar * bright[hit]
        value = self._cover_rows(band, value, r0, r1)
        value *= self.illumination[sl]
        return value

    # Extension points: the background under the green cover, and what covers the ground (snow).
    def _background_rows(self, band: str, background: np.ndarray, r0: int, r1: int) -> np.ndarray:
        return background

    def _cover_rows(self, band: str, value: np.ndarray, r0: int, r1: int) -> np.ndarray:
        return value


# --- Atmosphere and sensor ------------------------------------------------------------------------
class _Atmosphere:
    """Clouds, cloud shadows, no-data swath edge of one date, on its image grid (size x size)."""

    def __init__(self, scene: Scene, which: str):
        size = scene.size
        self.size = size
        fraction = scene.cloud_fraction[0 if which == "pre" else 1]
        zenith, azimuth = sun_position(scene.date(which), scene.latitude)
        self.opacity = np.zeros((size, size), dtype=np.float32)
        self.cirrus = np.zeros((size, size), dtype=np.float32)
        self.shadow = np.zeros((size, size), dtype=np.float32)
        if fraction > 0:
            # Cumulus at ~1.5 km: the shadow falls 1.5 km * tan(zenith) away from the sun.
            reach = 1500.0 * math.tan(math.radians(min(zenith, 75.0))) / PIXEL_SIZE
            away = math.radians(azimuth + 180.0)
            dcol, drow = math.sin(away) * reach, -math.cos(away) * reach
            pad_r, pad_c = int(math.ceil(abs(drow))) + 1, int(math.ceil(abs(dcol))) + 1
            shape = (size + 2 * pad_r, size + 2 * pad_c)
            coarse = max(1, max(shape) // 256)
            noise = _fractal_noise(shape, 3.6, _rng(scene.seed, "clouds", which), coarse=coarse,
                                   min_wavelength=3.0)
            level = float(np.quantile(noise[pad_r:pad_r + size:2, pad_c:pad_c + size:2], 1.0 - fraction))
            spread = 0.25 * float(noise[::4, ::4].std())
            opacity_all = _smoothstep(noise, level - 0.3 * spread, level + spread).astype(np.float32)
            del noise
            self.opacity = opacity_all[pad_r:pad_r + size, pad_c:pad_c + size].copy()
            sr, sc = pad_r - int(round(drow)), pad_c - int(round(dcol))
            self.shadow = opacity_all[sr:sr + size, sc:sc + size] * np.float32(0.7)
            del opacity_all
            cirrus = _fractal_noise((size, size), 3.0, _rng(scene.seed, "cirrus", which),
                                    coarse=max(1, size // 128))
            level = float(np.quantile(cirrus[::2, ::2], 1.0 - fraction / 2))
            self.cirrus = (np.clip((cirrus - level) * 0.08, 0, 0.06)).astype(np.float32)
        self.nodata = None
        if scene.nodata_edge and which == "post":
            # Swath edge: a slanted line near the east border, as where an orbit's swath ends in a tile.
            rows = np.arange(size, dtype=np.float32)[:, None]
            cols = np.arange(size, dtype=np.float32)[None, :]
            self.nodata = cols > size * (0.985 - 0.07 * rows / size)

    def apply(self, surface: np.ndarray, band: str, rng: np.random.Generator) -> None:
        """In place: shadows darken (diffuse light only), clouds and cirrus brighten, sensor noise."""
        surface *= 1.0 - self.shadow * (1.0 - self.opacity)
        surface *= 1.0 - self.opacity
        surface += self.opacity * _spectrum("cloud", band) + self.cirrus
        for r0 in range(0, surface.shape[0], 512):
            block = surface[r0:r0 + 512]
            noise = rng.standard_normal(block.shape, dtype=np.float32)
            block += noise * (np.float32(0.002) + np.float32(0.01) * np.abs(block))


def _scene_classification(reflectance: dict[str, np.ndarray], illumination: np.ndarray,
                          atmosphere: _Atmosphere) -> np.ndarray:
    """Sen2Cor-like SCL from the final reflectance plus the simulated clouds, shadows and no data."""
    green, red, nir = reflectance["B03"], reflectance["B04"], reflectance["B8A"]
    with np.errstate(divide="ignore", invalid="ignore"):
        ndvi = (nir - red) / (nir + red)
        ndwi = (green - nir) / (green + nir)
    scl = np.full(red.shape, SCL_BARE, dtype=np.uint8)
    scl[ndvi > 0.4] = SCL_VEG
    scl[(ndwi > 0.2) & (nir < 0.08)] = SCL_WATER
    scl[(illumination <= 0.3) & (scl != SCL_WATER)] = SCL_DARK
    scl[(atmosphere.shadow > 0.35) & (atmosphere.opacity < 0.2)] = SCL_SHADOW
    scl[(atmosphere.cirrus > 0.02) & (atmosphere.opacity < 0.2)] = SCL_CIRRUS
    scl[atmosphere.opacity >= 0.2] = SCL_CLOUD_MEDIUM
    scl[atmosphere.opacity >= 0.6] = SCL_CLOUD_HIGH
    if atmosphere.nodata is not None:
        scl[atmosphere.nodata] = SCL_NODATA
    return scl


# --- Writing the example pair ---------------------------------------------------------------------
INFO_NAME = "example_info.json"
TRUTH_NAME, DEM_NAME, LANDCOVER_NAME = "truth.tif", "dem.tif", "landcover.tif"
#: Sentinel-2 overpass time over eastern Turkey (descending node, 10:30 local solar time).
_SENSING_TIME = datetime.time(8, 13, 29)


def scene_latitude(epsg: int, uly: float, size: int) -> float:
    """Approximate latitude of the scene centre from a UTM northing (enough for sun angles)."""
    northing = uly - size * PIXEL_SIZE / 2
    if 32701 <= epsg <= 32760:
        northing -= 10_000_000.0
    elif not 32601 <= epsg <= 32660:
        raise ValueError(f"EPSG:{epsg} is not a WGS 84 / UTM zone; Sentinel-2 tiles use EPSG:326xx or 327xx")
    return max(-80.0, min(80.0, northing / 110_946.0))


def generate_example_pair(folder, *, size: int = 256, seed: int = 0, shift: tuple[float, float] = (1.5, -1.25),
                          epsg: int = 32637, tile: str = "T37SCB", ulx: float = 300000.0, uly: float = 4200000.0,
                          pre_date="2023-01-05", post_date="2023-08-05", cloud_fraction=(0.02, 0.06),
                          landslide_share: float = 0.015, bands: Sequence[str] = CORE_BANDS,
                          nodata_edge: bool = True, reuse: bool = True, progress: Progress | None = None,
                          is_cancelled: IsCancelled | None = None) -> ExamplePair:
    """Write a synthetic pre/post Sentinel-2 L2A pair with its truth, DEM and land cover into ``folder``.

    Defaults follow the Kahramanmaras 2023 study: tile T37SCB (EPSG:32637; (ulx, uly) is the corner of
    the 100 km MGRS square), pre 2023-01-05, post 2023-08-05. ``shift`` = (dx, dy) pixels: a ground
    feature at pre pixel (col, row) appears at post (col + dx, row + dy). ``cloud_fraction`` is one
    share for both dates or a (pre, post) pair; ``landslide_share`` the share of land covered by scars.
    With ``reuse`` a complete pair already in ``folder`` for the same parameters is returned unchanged.
    Deterministic: the same parameters give byte-identical band data.
    """
    folder = Path(folder)
    pre, post = _as_date(pre_date), _as_date(post_date)
    bands = tuple(dict.fromkeys(bands))
    parameters = {
        "generator_version": GENERATOR_VERSION, "size": int(size), "seed": int(seed),
        "shift": [float(shift[0]), float(shift[1])], "epsg": int(epsg), "tile": str(tile),
        "ulx": float(ulx), "uly": float(uly), "pre_date": pre.isoformat(), "post_date": post.isoformat(),
        "cloud_fraction": list(_cloud_fractions(cloud_fraction)), "landslide_share": float(landslide_share),
        "bands": list(bands), "nodata_edge": bool(nodata_edge),
    }
    info_path = folder / INFO_NAME
    if reuse:
        existing = _existing_pair(info_path, parameters)
        if existing is not None:
            report(progress, 100)
            return existing
    folder.mkdir(parents=True, exist_ok=True)
    _remove_previous(info_path)  # the info file marks a complete pair: drop it before rewriting

    scene = simulate_scene(size, seed, shift=shift, pre_date=pre, post_date=post, cloud_fraction=cloud_fraction,
                           landslide_share=landslide_share, latitude=scene_latitude(int(epsg), float(uly), int(size)),
                           nodata_edge=nodata_edge, is_cancelled=is_cancelled)
    report(progress, 15)
    info = write_scene(folder, scene, parameters=parameters, bands=bands, epsg=epsg, tile=tile, ulx=ulx, uly=uly,
                       info_path=info_path, progress=progress, is_cancelled=is_cancelled)
    report(progress, 100)
    return _pair_from_info(info_path, info)


#: One extra raster written beside the pair: (file name, array, dtype, nodata, description, tags).
Layer = tuple


def write_scene(folder, scene: Scene, *, parameters: dict, bands: Sequence[str], epsg: int, tile: str,
                ulx: float, uly: float, info_path: Path,
                extra_layers: Callable[[dict[str, np.ndarray]], Sequence[Layer]] | None = None,
                extra_info: dict | None = None, progress: Progress | None = None,
                is_cancelled: IsCancelled | None = None) -> dict:
    """Write a simulated scene as two L2A product ZIPs, truth, DEM, land cover and the info JSON.

    ``extra_layers(scl)`` (``scl``: the SCL of each date as written, ``{"pre": ..., "post": ...}``)
    returns more rasters to write on the same grid; ``extra_info`` is merged into the info JSON.
    Returns the info. A cancelled or failed run leaves none of the files.
    """
    from .safe_format import write_l2a_product

    folder = Path(folder)
    pre, post = scene.pre_date, scene.post_date
    written: list[Path] = []
    try:
        products = {}
        scls = {}
        for k, which in enumerate(("pre", "post")):
            dn, scl = scene._render(
                which, bands, as_dn=True, is_cancelled=is_cancelled,
                progress=None if progress is None else (lambda p, k=k: report(progress, 15 + 35 * k + 0.25 * p)))
            check_cancelled(is_cancelled)
            sensing = datetime.datetime.combine(scene.date(which), _SENSING_TIME, tzinfo=datetime.timezone.utc)
            products[which] = Path(write_l2a_product(folder, dn=dn, scl=scl, epsg=int(epsg), ulx=float(ulx),
                                                     uly=float(uly), sensing_time=sensing, tile=tile))
            written.append(products[which])
            if extra_layers is not None:
                scls[which] = scl
            del dn, scl
            report(progress, 50 + 35 * k)
        check_cancelled(is_cancelled)
        transform = from_origin(float(ulx), float(uly), PIXEL_SIZE, PIXEL_SIZE)
        like = {"crs": CRS.from_epsg(int(epsg)), "transform": transform, "width": scene.size,
                "height": scene.size}
        truth = scene.truth
        layers = (
            (TRUTH_NAME, truth, "uint8", 255, "landslide truth (1 landslide, 0 not)", {}),
            (DEM_NAME, scene.dem, "float32", np.nan, "elevation (m)", {"UNITS": "metre"}),
            (LANDCOVER_NAME, scene.landcover, "uint8", 0, "land cover (ESA WorldCover codes)",
             {f"CLASS_{code}": name for code, name in LANDCOVER_CLASSES.items()}),
        )
        if extra_layers is not None:
            layers = (*layers, *extra_layers(scls))
            del scls
        for name, array, dtype, nodata, description, tags in layers:
            path = folder / name
            with atomic_output(path) as tmp:
                with rasterio.open(tmp, "w", **geotiff_profile(like, 1, dtype, nodata)) as dst:
                    dst.write(array.astype(dtype), 1)
                    dst.set_band_description(1, description)
                    dst.update_tags(SOURCE="landslide_plugin synthetic example", **tags)
            written.append(path)
        from scipy import ndimage

        _, components = ndimage.label(truth, structure=np.ones((3, 3)))
        land = int(np.count_nonzero(scene.landcover != WATER))
        info = {
            "parameters": parameters,
            "seed": int(scene.seed), "size": scene.size, "shift": [float(v) for v in scene.shift],
            "shift_convention": "a ground feature at pre pixel (col, row) appears at post (col + dx, row + dy)",
            "pre_date": pre.isoformat(), "post_date": post.isoformat(), "tile": tile, "epsg": int(epsg),
            "ulx": float(ulx), "uly": float(uly), "pixel_size": PIXEL_SIZE,
            "files": {"pre": products["pre"].name, "post": products["post"].name,
                      **{Path(layer[0]).stem: layer[0] for layer in layers}},
            "landcover_classes": {str(code): name for code, name in LANDCOVER_CLASSES.items()},
            "landslide_min_slope_degrees": LANDSLIDE_MIN_SLOPE,
            "landslide_pixels": int(truth.sum()),
            "landslide_count": int(components),
            "landslide_share_of_land": float(truth.sum()) / max(1, land),
            "cloud_fraction": [float(v) for v in scene.cloud_fraction],
            "sun": {which: dict(zip(("zenith", "azimuth"), sun_position(scene.date(which), scene.latitude)))
                    for which in ("pre", "post")},
            **(extra_info or {}),
        }
        with atomic_output(info_path) as tmp:
            Path(tmp).write_text(json.dumps(info, indent=2), encoding="utf-8")
    except BaseException:
        for path in written:  # a cancelled or failed run leaves no half pair
            if path.exists():
                path.unlink()
        raise
    return info


def write_date_product(scene: Scene, folder, *, date, after_event: bool, cloud_fraction: float = 0.0,
                       cloud_boxes: Sequence[tuple[int, int, int, int]] = (), noise_seed: int | None = None,
                       sensing_time: datetime.time = _SENSING_TIME, tile: str = "T37SCB", relative_orbit: int = 78,
                       baseline: str = "05.09", spacecraft: str = "S2B", epsg: int = 32637, ulx: float = 300000.0,
                       uly: float = 4200000.0, bands: Sequence[str] = CORE_BANDS) -> tuple[Path, float]:
    """Write the ground of ``scene`` as seen on ``date`` as a Level-2A product (one of a series of dates).

    Before the event (``after_event`` false) the ground has no scars and sits on the pre grid; after it the
    scars are there and the content is shifted by ``scene.shift``, as for the example's post image. The
    season (green cover, harvest, reservoir level, sun) follows ``date``; ``cloud_fraction`` sets the random
    clouds and ``noise_seed`` their pattern (and the sensor noise); each ``cloud_boxes`` entry (row0, row1,
    col0, col1, in pixels) is painted as an opaque cloud (SCL 9), to put a cloud exactly over an area.
    Returns the product path and the cloud share of its SCL in percent (cloud shadow, clouds, cirrus), what
    the catalogue lists as the product's cloud cover.
    """
    import dataclasses

    from .safe_format import write_l2a_product

    day = _as_date(date)
    which = "post" if after_event else "pre"
    cloud = float(cloud_fraction)
    seeded = dataclasses.replace(scene, seed=scene.seed if noise_seed is None else int(noise_seed),
                                 cloud_fraction=(cloud, cloud), _cache={},
                                 **({"post_date": day} if after_event else {"pre_date": day}))
    dn, scl = seeded._render(which, bands, as_dn=True)
    for r0, r1, c0, c1 in cloud_boxes:
        for band, values in dn.items():
            target = values[max(0, r0):r1, max(0, c0):c1]
            target[...] = reflectance_to_dn(np.full(target.shape, _spectrum("cloud", band), dtype=np.float32))
        scl[max(0, r0):r1, max(0, c0):c1] = SCL_CLOUD_HIGH
    moment = datetime.datetime.combine(day, sensing_time, tzinfo=datetime.timezone.utc)
    path = write_l2a_product(folder, dn=dn, scl=scl, epsg=int(epsg), ulx=float(ulx), uly=float(uly),
                             sensing_time=moment, tile=tile, relative_orbit=int(relative_orbit), baseline=baseline,
                             spacecraft=spacecraft)
    cloudy = np.isin(scl, (SCL_SHADOW, SCL_CLOUD_MEDIUM, SCL_CLOUD_HIGH, SCL_CIRRUS))
    return Path(path), float(100.0 * cloudy.mean())


def _pair_from_info(info_path: Path, info: dict) -> ExamplePair:
    folder = info_path.parent
    files = info["files"]
    return ExamplePair(pre=folder / files["pre"], post=folder / files["post"], truth=folder / files["truth"],
                       dem=folder / files["dem"], landcover=folder / files["landcover"],
                       shift=(float(info["shift"][0]), float(info["shift"][1])), info=info_path)


def _existing_pair(info_path: Path, parameters: dict) -> ExamplePair | None:
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if info.get("parameters") != parameters:
        return None
    try:
        pair = _pair_from_info(info_path, info)
    except (KeyError, TypeError, ValueError, IndexError):
        return None
    if all(p.is_file() for p in (pair.pre, pair.post, pair.truth, pair.dem, pair.landcover)):
        return pair
    return None


def _remove_previous(info_path: Path) -> None:
    """Delete the files of the pair recorded in ``info_path`` (only those this generator wrote)."""
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
        names = list(info["files"].values())
    except (OSError, ValueError, KeyError, AttributeError):
        names = []
    for name in names:
        path = info_path.parent / Path(str(name)).name
        if path.is_file():
            path.unlink()
    if info_path.exists():
        info_path.unlink()


if __name__ == "__main__":  # python -m landslide_plugin.examples.example_data [size] [folder]
    import sys
    import tempfile
    import time

    _size = int(sys.argv[1]) if len(sys.argv) > 1 else 1024
    _folder = sys.argv[2] if len(sys.argv) > 2 else tempfile.mkdtemp(prefix="example_pair_")
    _start = time.perf_counter()
    _pair = generate_example_pair(_folder, size=_size, reuse=False)
    print(f"size {_size}: {time.perf_counter() - _start:.1f} s -> {_pair.info}")
