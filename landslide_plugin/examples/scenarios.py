"""Scenario scenes for the accuracy benchmark: the example generator with other landscapes, seasons and
the confounders that make landslide mapping fail on real scenes.

A scene is described by a small options object (``ScenarioOptions``: size, seed, landscape, the two
dates, which confounders and how strong) and written like the built-in example (two L2A product ZIPs,
truth, DEM, land cover) plus a confounder label raster (``confounders.tif``: one bit per confounder,
``CONFOUNDERS``) so that a benchmark can count where each method's false alarms fall.
``SCENARIOS`` is the benchmark's set (``bench/bench_accuracy.py``). Test and demo machinery: nothing in
``landslide_plugin.core`` imports it.

Landscapes (``LANDSCAPES``): humid temperate forest (deciduous broadleaf hills with conifer plantations,
paddy and upland fields in the valleys; e.g. Iburi, Hokkaido 2018), semi-arid shrub and fields (open
maquis, open pine, grassland and winter cereals; e.g. Kahramanmaras 2023), alpine (spruce forest below
the treeline, meadows above, rock and snow on the summits, hay meadows in the valleys).

Confounders, each physically motivated (sources at the code that makes them):
  * harvested fields: crop calendars, plus crop rotation between the two years of a same-season pair and
    terraced fields on hill slopes;
  * reservoir level change: the reservoir's yearly cycle, or a drought draw-down in the post year;
  * seasonal browning and greening: the landscapes' phenology, plus a drier or wetter post year;
  * burn scars: crown and litter consumed, char over soil (NIR and NBR drop, visible and SWIR-1 darken
    or stay), on slopes, spreading uphill;
  * forestry clear-cuts: rectangles of slash and bare soil in the forest, on steep slopes too;
  * snow: a snowline per date; thick snow is flagged in the SCL (NDSI rule), patchy thin snow and snow
    under the canopy are not;
  * haze and thin cloud: additive path reflectance falling with wavelength, and thin cloud, neither
    flagged in the SCL;
  * cloud shadows: as in the example, with the blue-rich diffuse light left in the shadow;
  * different sun elevation between the dates: residual terrain shading after Sen2Cor's correction
    (winter-summer pairs, and a larger residual where the correction's DEM is coarse);
  * mixed pixels at scar edges: partial cover plus the sensor's point-spread function;
  * runout and deposits: tracks and fans downslope of the scars, onto gentle slopes (in the truth);
  * scars near the minimum mapping unit (2-6 pixels);
  * misregistration of the post image, 0 to 3 px.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rasterio.transform import from_origin

from . import example_data as ed
from .example_data import (
    BARE,
    BUILT,
    CROP,
    DRAWDOWN,
    FOREST,
    GRASS,
    SHRUB,
    WATER,
    ExamplePair,
    Landscape,
    Scene,
    _Atmosphere,
    _fractal_noise,
    _mix,
    _monthly,
    _rng,
    _smoothstep,
    _spectrum,
    _SurfaceState,
)

#: Bump when the scenario simulation changes: cached scenes of another version are regenerated.
SCENARIO_VERSION = 1

CONFOUNDER_NAME = "confounders.tif"
SCENARIO_INFO_NAME = "scenario_info.json"

#: Confounder labels: bit i of confounders.tif (uint16) is CONFOUNDERS[i]. Labels overlap.
CONFOUNDERS = {
    "harvested_field": "cropland whose green cover fell by more than 0.2 (harvest, ploughing, rotation)",
    "reservoir_shore": "reservoir drawdown zone and water lines of both dates, and 1 px around them",
    "browning": "forest, shrub or grassland whose green cover fell by more than 0.1 (season, drought)",
    "greening": "forest, shrub or grassland whose green cover rose by more than 0.1",
    "burn": "burned between the dates (severity above 0.1)",
    "clearcut": "clear-cut between the dates (more than a quarter of the pixel)",
    "snow": "snow on either date (more than 5 % of the pixel), flagged in the SCL or not",
    "haze": "unflagged haze, thin cloud or cloud edge on either date",
    "cloud_shadow": "cloud shadow on either date (direct light cut by more than 5 %), flagged or not",
    "terrain_shading": "terrain illumination differs by more than 15 % between the dates",
    "scar_edge": "within one pixel of a landslide outline, inside or outside",
    "runout": "landslide (truth) on a DEM slope below 15 degrees: runout tracks and deposits",
    "small_scar": "landslide of 2 to 6 pixels (8-connected)",
    "unobserved": "SCL of either date is no data, defective, cloud, cloud shadow, cirrus or snow",
}
CONFOUNDER_BITS = {name: 1 << i for i, name in enumerate(CONFOUNDERS)}

#: The confounders issue 15 lists, as scene-level names (``ScenarioOptions.confounders``).
ISSUE_CONFOUNDERS = (
    "harvested fields", "reservoir level change", "seasonal browning", "seasonal greening", "burn scars",
    "forestry clear-cuts", "snow", "haze and thin cloud", "cloud shadows", "sun elevation change",
    "mixed pixels at scar edges", "runout and deposits", "scars near the minimum mapping unit",
    "misregistration",
)
#: Each issue confounder's label in confounders.tif (misregistration is the scene's shift, no label).
ISSUE_LABELS = {
    "harvested fields": "harvested_field", "reservoir level change": "reservoir_shore",
    "seasonal browning": "browning", "seasonal greening": "greening", "burn scars": "burn",
    "forestry clear-cuts": "clearcut", "snow": "snow", "haze and thin cloud": "haze",
    "cloud shadows": "cloud_shadow", "sun elevation change": "terrain_shading",
    "mixed pixels at scar edges": "scar_edge", "runout and deposits": "runout",
    "scars near the minimum mapping unit": "small_scar", "misregistration": None,
}

# --- Landscapes -------------------------------------------------------------------------------------
# Green-cover tables as in example_data (fraction at mid-month, January..December); approximate values
# read from MODIS/Sentinel-2 NDVI climatologies of each climate (deciduous forests of northern Japan:
# leaf-out in May, leaf fall in late October; Mediterranean semi-arid rangeland: grass green with the
# winter rain and dry from June, evergreen maquis with a small amplitude; alpine meadows: snow-free and
# green June to September).
_HUMID_CROPS = (
    # paddy rice (Hokkaido: transplanted late May, harvested late September)
    (0.45, (0.02, 0.02, 0.02, 0.02, 0.05, 0.25, 0.65, 0.85, 0.70, 0.15, 0.04, 0.02),
           (0.3, 0.3, 0.2, 0.1, 0.0, 0.0, 0.0, 0.0, 0.2, 0.7, 0.5, 0.4)),
    # winter wheat (sown September, harvested late July)
    (0.20, (0.10, 0.10, 0.15, 0.45, 0.80, 0.88, 0.45, 0.04, 0.10, 0.30, 0.35, 0.20),
           (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.4, 0.8, 0.3, 0.0, 0.0, 0.0)),
    # hay and pasture, cut in mid June and mid August
    (0.20, (0.30, 0.30, 0.35, 0.50, 0.80, 0.45, 0.75, 0.45, 0.70, 0.60, 0.40, 0.30),
           (0.0, 0.0, 0.0, 0.0, 0.0, 0.4, 0.1, 0.4, 0.1, 0.0, 0.0, 0.0)),
    # potatoes, beans, beet (planted May, harvested September-October)
    (0.15, (0.02, 0.02, 0.02, 0.03, 0.10, 0.50, 0.85, 0.80, 0.45, 0.10, 0.03, 0.02),
           (0.2, 0.2, 0.1, 0.0, 0.0, 0.0, 0.0, 0.0, 0.1, 0.3, 0.3, 0.2)),
)
_ALPINE_CROPS = (
    # hay meadows cut in late June and mid August (two or three cuts a year in Alpine valleys)
    (0.55, (0.30, 0.30, 0.35, 0.55, 0.82, 0.45, 0.75, 0.42, 0.68, 0.55, 0.40, 0.32),
           (0.0, 0.0, 0.0, 0.0, 0.0, 0.4, 0.1, 0.4, 0.1, 0.0, 0.0, 0.0)),
    # grazed pasture
    (0.25, (0.30, 0.30, 0.35, 0.50, 0.70, 0.72, 0.65, 0.58, 0.55, 0.48, 0.38, 0.32), (0.1,) * 12),
    # silage maize (sown May, cut in September)
    (0.20, (0.02, 0.02, 0.02, 0.02, 0.05, 0.35, 0.75, 0.85, 0.30, 0.05, 0.03, 0.02),
           (0.2, 0.2, 0.2, 0.1, 0.0, 0.0, 0.0, 0.0, 0.5, 0.4, 0.3, 0.2)),
)

LANDSCAPES = {
    "humid-forest": Landscape(
        name="humid temperate forest",
        fv_monthly={
            FOREST: (0.30, 0.30, 0.33, 0.45, 0.75, 0.90, 0.92, 0.92, 0.88, 0.70, 0.42, 0.32),  # deciduous
            SHRUB: (0.72, 0.72, 0.74, 0.76, 0.80, 0.84, 0.85, 0.85, 0.84, 0.80, 0.76, 0.73),   # plantations
            GRASS: (0.25, 0.25, 0.30, 0.45, 0.70, 0.80, 0.82, 0.80, 0.72, 0.55, 0.35, 0.28),
            BUILT: (0.20, 0.20, 0.22, 0.26, 0.30, 0.32, 0.32, 0.32, 0.30, 0.26, 0.22, 0.20),
            BARE: (0.03, 0.03, 0.04, 0.05, 0.07, 0.08, 0.08, 0.08, 0.07, 0.05, 0.04, 0.03),
            DRAWDOWN: (0.25, 0.25, 0.30, 0.45, 0.65, 0.70, 0.70, 0.65, 0.55, 0.40, 0.30, 0.25),
        },
        dryness=(0.0, 0.0, 0.0, 0.0, 0.05, 0.1, 0.15, 0.2, 0.1, 0.0, 0.0, 0.0),
        crops=_HUMID_CROPS,
        reservoir_level=(0.3, 0.25, 0.3, 0.7, 1.0, 0.9, 0.6, 0.55, 0.7, 0.75, 0.6, 0.4),  # snowmelt in spring
        green={FOREST: "broadleaf", SHRUB: "conifer", GRASS: "herb", CROP: "herb", BUILT: "herb", BARE: "herb",
               DRAWDOWN: "herb"},
        background={FOREST: {"dry": 0.7, "soil": 0.3}, SHRUB: {"dry": 0.6, "soil": 0.4},
                    GRASS: {"dry": 0.7, "soil": 0.3}, BUILT: {"urban": 1.0}, BARE: {"rock": 0.6, "soil": 0.4},
                    DRAWDOWN: {"wetsoil": 1.0}},
        debris={"debris": 0.6, "wetsoil": 0.4},  # fresh wet soil and pumice (Iburi 2018 scars)
        plain_share=0.30, median_slope_deg=27.0, base_elevation=80.0, forest_bias=0.8, grass_level=1.3,
        bare_quantile=0.995, browning=(0.10, 0.30), smooth_mountain_mask=True),
    "semi-arid": Landscape(
        name="semi-arid shrub and fields",
        fv_monthly={
            FOREST: (0.58, 0.58, 0.60, 0.63, 0.65, 0.64, 0.62, 0.60, 0.59, 0.59, 0.58, 0.58),  # open pine
            SHRUB: (0.42, 0.45, 0.50, 0.52, 0.48, 0.42, 0.37, 0.35, 0.35, 0.37, 0.40, 0.41),   # open maquis
            GRASS: (0.35, 0.45, 0.60, 0.62, 0.45, 0.20, 0.08, 0.06, 0.06, 0.10, 0.20, 0.30),
            BUILT: (0.15, 0.17, 0.20, 0.20, 0.16, 0.12, 0.10, 0.09, 0.10, 0.11, 0.13, 0.14),
            BARE: (0.03, 0.04, 0.06, 0.06, 0.04, 0.02, 0.01, 0.01, 0.01, 0.02, 0.02, 0.03),
            DRAWDOWN: (0.45, 0.55, 0.60, 0.55, 0.40, 0.25, 0.12, 0.08, 0.06, 0.10, 0.25, 0.38),
        },
        background={FOREST: {"dry": 0.5, "soil": 0.3, "rock": 0.2}, SHRUB: {"dry": 0.35, "soil": 0.35, "rock": 0.3},
                    GRASS: {"dry": 0.75, "soil": 0.25}, BUILT: {"urban": 1.0}, BARE: {"rock": 0.8, "soil": 0.2},
                    DRAWDOWN: {"wetsoil": 1.0}},
        debris={"debris": 0.6, "rock": 0.4},  # limestone and marl
        plain_share=0.50, median_slope_deg=22.0, base_elevation=700.0, forest_bias=-0.7, grass_level=0.9,
        bare_quantile=0.95, browning=(0.20, 0.55), smooth_mountain_mask=True),
    "alpine": Landscape(
        name="alpine",
        fv_monthly={
            FOREST: (0.70, 0.70, 0.72, 0.76, 0.82, 0.86, 0.88, 0.88, 0.86, 0.80, 0.74, 0.71),  # spruce, larch
            SHRUB: (0.45, 0.45, 0.48, 0.55, 0.70, 0.80, 0.82, 0.82, 0.78, 0.62, 0.50, 0.46),   # green alder
            GRASS: (0.12, 0.12, 0.14, 0.18, 0.35, 0.62, 0.75, 0.72, 0.55, 0.30, 0.18, 0.13),   # alpine meadow
            BUILT: (0.20, 0.20, 0.22, 0.25, 0.30, 0.32, 0.32, 0.30, 0.28, 0.25, 0.22, 0.20),
            BARE: (0.01, 0.01, 0.01, 0.02, 0.03, 0.05, 0.06, 0.06, 0.05, 0.03, 0.02, 0.01),
            DRAWDOWN: (0.05, 0.05, 0.05, 0.10, 0.25, 0.40, 0.40, 0.35, 0.30, 0.15, 0.08, 0.05),
        },
        dryness=(0.0, 0.0, 0.0, 0.0, 0.0, 0.1, 0.2, 0.3, 0.2, 0.0, 0.0, 0.0),
        crops=_ALPINE_CROPS,
        # Hydropower reservoirs: lowest in April, filled by snow and ice melt to a maximum in September.
        reservoir_level=(0.35, 0.2, 0.1, 0.05, 0.15, 0.45, 0.75, 0.92, 1.0, 0.95, 0.75, 0.55),
        background={FOREST: {"dry": 0.6, "soil": 0.4}, SHRUB: {"dry": 0.4, "soil": 0.3, "rock": 0.3},
                    GRASS: {"dry": 0.6, "soil": 0.2, "rock": 0.2}, BUILT: {"urban": 1.0},
                    BARE: {"rock": 0.85, "soil": 0.15}, DRAWDOWN: {"wetsoil": 1.0}},
        debris={"debris": 0.5, "rock": 0.5},  # crystalline rock and till
        plain_share=0.15, median_slope_deg=31.0, base_elevation=900.0, forest_bias=0.3, grass_level=1.0,
        bare_quantile=0.86, treeline_quantile=0.55, browning=(0.10, 0.30), smooth_mountain_mask=True),
}

#: Where each landscape is (for sun angles and the product's CRS): EPSG, tile, upper-left corner.
SITES = {
    "humid-forest": {"epsg": 32654, "tile": "T54TWN", "ulx": 500000.0, "uly": 4740000.0},   # Iburi, ~42.8 N
    "semi-arid": {"epsg": 32637, "tile": "T37SCB", "ulx": 300000.0, "uly": 4200000.0},      # Kahramanmaras
    "alpine": {"epsg": 32632, "tile": "T32TMS", "ulx": 399960.0, "uly": 5200020.0},         # Bernese Alps
}
SEASONS = ("same-season", "winter-summer")

# Share of the global irradiance that is diffuse sky light, per band, clear sky, mid-latitude sun
# (clear-sky spectral models such as Bird & Riordan 1986 give ~0.2 in the blue, ~0.1 in the red, ~0.06
# in the NIR, ~0.03 in the SWIR): what a shadow keeps, so shadows are bluer and NDVI falls in them.
_DIFFUSE = {"B02": 0.22, "B03": 0.16, "B04": 0.12, "B05": 0.10, "B06": 0.085, "B07": 0.075, "B8A": 0.065,
            "B11": 0.035, "B12": 0.025}
# Residual aerosol path reflectance relative to B02: ~ wavelength^-1.5 (Angstrom exponent of continental
# and smoke aerosols 1.3-2; path reflectance follows the optical depth).
_WAVELENGTH_NM = {"B02": 490, "B03": 560, "B04": 665, "B05": 705, "B06": 740, "B07": 783, "B8A": 865,
                  "B11": 1610, "B12": 2190}
_HAZE_SPECTRUM = {band: (nm / 490.0) ** -1.5 for band, nm in _WAVELENGTH_NM.items()}
# Slash and bare soil of a fresh clear-cut: dead branches and needles (dry litter), skid trails (soil).
_SLASH = {"dry": 0.55, "soil": 0.35, "rock": 0.10}


# --- Options ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ScenarioOptions:
    """One benchmark scene. Strengths of 0 (or None) leave a confounder out.

    ``season``: "same-season" (dates within a month of the year apart, as rapid mapping prefers) or
    "winter-summer" (as the reference study, January to August). ``shift`` = (dx, dy) px of the post image
    (example_data convention). ``cloud_fraction`` per date. Confounders: ``rotation`` share of fields
    with another crop or sowing date in the post year; ``hill_fields`` share of gentle hill slopes in
    terraced fields; ``reservoir_post`` post level as a share of the reservoir's range (None: the
    month's); ``drought`` > 0 a drier post year (browning), < 0 a wetter one (greening); ``season_shift`` days the
    post year's vegetation is ahead (+, an early spring or autumn) or behind (-) the pre year's; ``burns`` share
    of the land burned between the dates; ``clearcuts`` share of the forest cut; ``snow`` snowline per
    date as a quantile of the scene's elevations (None: no snow); ``thin_snow`` width (elevation quantile)
    of the patchy thin snow below the snowline; ``haze`` residual path reflectance at B02 per date;
    ``thin_cloud`` largest opacity of unflagged thin cloud per date; ``terrain_residual`` share of the
    terrain-illumination contrast Sen2Cor leaves; ``psf_sigma`` sensor blur (px); ``runout`` share of
    scars of 8 px or more with a runout track and deposit, ``mobility`` the range of their travel-angle
    tangent (H/L); ``small_scars`` extra scars of 2-6 px per km2.
    """

    name: str
    landscape: str
    season: str
    pre_date: str
    post_date: str
    size: int = 512
    seed: int = 0
    shift: tuple[float, float] = (0.0, 0.0)
    cloud_fraction: tuple[float, float] = (0.02, 0.05)
    landslide_share: float = 0.012
    rotation: float = 0.0
    hill_fields: float = 0.0
    reservoir_post: float | None = None
    drought: float = 0.0
    season_shift: int = 0
    burns: float = 0.0
    clearcuts: float = 0.0
    snow: tuple[float | None, float | None] = (None, None)
    thin_snow: float = 0.0
    haze: tuple[float, float] = (0.0, 0.0)
    thin_cloud: tuple[float, float] = (0.0, 0.0)
    terrain_residual: float = 0.33
    psf_sigma: float = 0.5
    runout: float = 0.0
    mobility: tuple[float, float] = (0.35, 0.6)
    small_scars: float = 0.0
    description: str = ""

    def __post_init__(self):
        if self.landscape not in LANDSCAPES:
            raise ValueError(f"landscape {self.landscape!r}: choose among {', '.join(LANDSCAPES)}")
        if self.season not in SEASONS:
            raise ValueError(f"season {self.season!r}: choose among {', '.join(SEASONS)}")
        pre, post = ed._as_date(self.pre_date), ed._as_date(self.post_date)
        if not pre < post:
            raise ValueError(f"{self.name}: the pre date {pre} must be before the post date {post}")
        if self.season == "same-season":
            gap = abs((post.timetuple().tm_yday - pre.timetuple().tm_yday + 182) % 365 - 182)
            if gap > 31:
                raise ValueError(f"{self.name}: a same-season pair must be within a month of the year ({gap} days)")
        elif not (pre.month in (12, 1, 2, 3) and post.month in (6, 7, 8, 9)):
            raise ValueError(f"{self.name}: a winter-summer pair goes from December-March to June-September")
        if not 0 <= math.hypot(*self.shift) <= 3.0 + 1e-9:
            raise ValueError(f"{self.name}: misregistration {self.shift} must be 0 to 3 px")

    def with_size(self, size: int) -> ScenarioOptions:
        """The same scene description at another size (tests use small ones)."""
        return dataclasses.replace(self, size=int(size))

    @property
    def misregistration_px(self) -> float:
        return math.hypot(*self.shift)

    def sun_zenith(self) -> tuple[float, float]:
        site = SITES[self.landscape]
        latitude = ed.scene_latitude(site["epsg"], site["uly"], self.size)
        return tuple(ed.sun_position(ed._as_date(d), latitude)[0] for d in (self.pre_date, self.post_date))

    @property
    def confounders(self) -> tuple[str, ...]:
        """The issue's confounders this description puts in the scene (``ISSUE_CONFOUNDERS`` names)."""
        pre, post = ed._as_date(self.pre_date), ed._as_date(self.post_date)
        out = []
        landscape = LANDSCAPES[self.landscape]
        day_pre, day_post = pre.timetuple().tm_yday, post.timetuple().tm_yday + self.season_shift
        crop_drop = max(_monthly(nodes, day_pre) - _monthly(nodes, day_post) for _, nodes, _ in landscape.crops)
        if self.rotation > 0 or crop_drop > 0.2:
            out.append("harvested fields")
        levels = landscape.reservoir_level
        level_post = (_monthly(levels, post.timetuple().tm_yday) if self.reservoir_post is None
                      else self.reservoir_post)
        if abs(level_post - _monthly(levels, day_pre)) > 0.1:
            out.append("reservoir level change")
        change = {cls: _monthly(nodes, day_post) - _monthly(nodes, day_pre)
                  for cls, nodes in landscape.fv_monthly.items() if cls in (FOREST, SHRUB, GRASS)}
        if self.drought > 0 or min(change.values()) < -0.1:
            out.append("seasonal browning")
        if self.drought < 0 or max(change.values()) > 0.1:
            out.append("seasonal greening")
        if self.burns > 0:
            out.append("burn scars")
        if self.clearcuts > 0:
            out.append("forestry clear-cuts")
        if any(q is not None for q in self.snow):
            out.append("snow")
        if max(self.haze) > 0 or max(self.thin_cloud) > 0:
            out.append("haze and thin cloud")
        if max(self.cloud_fraction) > 0:
            out.append("cloud shadows")
        zenith = self.sun_zenith()
        if abs(zenith[1] - zenith[0]) > 10.0:
            out.append("sun elevation change")
        if self.psf_sigma > 0:
            out.append("mixed pixels at scar edges")
        if self.runout > 0:
            out.append("runout and deposits")
        if self.small_scars > 0:
            out.append("scars near the minimum mapping unit")
        if self.misregistration_px > 0:
            out.append("misregistration")
        return tuple(out)

    def as_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["confounders"] = list(self.confounders)
        return out


# --- The scene --------------------------------------------------------------------------------------
@dataclass
class ScenarioScene(Scene):
    """A Scene with the scenario's confounders; bands as Scene.image() / _render()."""

    options: ScenarioOptions | None = None
    burn_padded: np.ndarray | None = None       # float32 burn severity 0..1 (between the dates)
    clearcut_padded: np.ndarray | None = None   # float32 share of the pixel clear-cut (between the dates)
    field_table_post: np.ndarray | None = None  # crop type, phase, vigour per field in the post year
    small_scar_count: int = 0
    runout_count: int = 0

    #: The snow rule of the SCL reads SWIR-1 too.
    scl_bands = ("B03", "B04", "B8A", "B11")

    def _surface_state(self, which: str) -> _ScenarioSurface:
        key = ("surface", which)
        if key not in self._cache:
            self._cache[key] = _ScenarioSurface(self, which)
        return self._cache[key]

    def _atmosphere(self, which: str) -> _ScenarioAtmosphere:
        key = ("atmosphere", which)
        if key not in self._cache:
            self._cache[key] = _ScenarioAtmosphere(self, which)
        return self._cache[key]

    def _classify(self, which, reflectance, illumination, atmosphere) -> np.ndarray:
        """Sen2Cor-like SCL plus snow: NDSI > 0.42 on a bright pixel (Sen2Cor's snow test is NDSI-based,
        so snow under a canopy and patchy thin snow go unflagged, as they do in real products)."""
        scl = ed._scene_classification(reflectance, illumination, atmosphere)
        green, swir = reflectance["B03"], reflectance["B11"]
        with np.errstate(divide="ignore", invalid="ignore"):
            ndsi = (green - swir) / (green + swir)
        snow = (ndsi > 0.42) & (green > 0.2) & (atmosphere.opacity < 0.2) & (scl != ed.SCL_NODATA)
        scl[snow] = 11  # SCL snow or ice
        return scl

    def release(self) -> None:
        """Drop the per-date states kept for the labels (memory)."""
        self._cache.clear()

    # -- snow ------------------------------------------------------------------------------------------
    def snow_fraction(self, which: str, fv: np.ndarray) -> np.ndarray | None:
        """Visible snow cover per pixel on the padded grid (None: no snow on that date).

        Full cover above the snowline, patchy below it over the ``thin_snow`` band, lower on sunny
        (south-facing) slopes that melt first, and hidden by the canopy in forest (a closed canopy
        hides most snow on the ground; Sen2Cor misses such snow).
        """
        line = self.options.snow[0 if which == "pre" else 1]
        if line is None:
            return None
        dem = self.dem_padded
        z_lo, z_hi = (float(v) for v in np.quantile(dem[::2, ::2], [0.01, 0.99]))
        span = max(z_hi - z_lo, 1.0)
        snowline = float(np.quantile(dem[::2, ::2], line))
        _, aspect = ed.slope_aspect(dem)
        southness = -np.cos(np.radians(aspect))
        noise = _fractal_noise(dem.shape, 3.0, _rng(self.seed, "snow", which), coarse=2)
        z = dem + np.float32(0.04 * span) * (noise - southness)
        width = max(self.options.thin_snow * span, 0.01 * span)
        # Thick above the line; below it the cover thins to nothing over the thin-snow band (patchy).
        cover = np.where(z >= snowline, 1.0, 0.45 * _smoothstep(z, snowline - width, snowline)).astype(np.float32)
        canopy = np.where(self.landcover_padded == FOREST, 0.75 * fv, 0.0).astype(np.float32)
        cover *= 1.0 - canopy
        cover[np.isin(self.landcover_padded, (WATER,))] = 0.0
        return cover.astype(np.float32)

    # -- labels ----------------------------------------------------------------------------------------
    def confounder_labels(self, scl: dict[str, np.ndarray]) -> np.ndarray:
        """uint16 label raster on the pre grid: bit CONFOUNDER_BITS[name] where that confounder is."""
        from scipy import ndimage

        from ..core import masks

        size, m = self.size, self.margin
        crop = (slice(m, m + size), slice(m, m + size))
        labels = np.zeros((size, size), dtype=np.uint16)

        def put(name: str, where: np.ndarray) -> None:
            labels[where] |= np.uint16(CONFOUNDER_BITS[name])

        pre, post = self._surface_state("pre"), self._surface_state("post")
        lc = self.landcover
        d_fv = post.fv_seasonal[crop] - pre.fv_seasonal[crop]
        put("harvested_field", (lc == CROP) & (d_fv < -0.2))
        natural = np.isin(lc, (FOREST, SHRUB, GRASS))
        put("browning", natural & (d_fv < -0.1))
        put("greening", natural & (d_fv > 0.1))
        # reservoir: drawdown zone, and the water and wet lines of both dates, with one pixel around them
        zone = np.zeros(self.dem_padded.shape, dtype=bool)
        water_both = np.zeros_like(zone)
        r0, r1, c0, c1 = pre.water["box"]
        zone[r0:r1, c0:c1] = ((pre.water["water"] != post.water["water"]) | pre.water["wet"] | post.water["wet"])
        water_both[r0:r1, c0:c1] = pre.water["water"] & post.water["water"]
        zone |= self.landcover_padded == DRAWDOWN
        shore = ndimage.binary_dilation(zone, np.ones((3, 3), bool)) & ~ndimage.binary_erosion(water_both)
        put("reservoir_shore", shore[crop])
        if self.burn_padded is not None:
            put("burn", self.burn_padded[crop] > 0.1)
        if self.clearcut_padded is not None:
            put("clearcut", self.clearcut_padded[crop] > 0.25)
        for state in (pre, post):
            if state.snow is not None:
                put("snow", state.snow[crop] > 0.05)
        for which in ("pre", "post"):
            atmosphere = self._atmosphere(which)
            hazy = ((atmosphere.haze * _HAZE_SPECTRUM["B04"] > 0.008) | (atmosphere.thin > 0.02)
                    | ((atmosphere.opacity > 0.01) & (atmosphere.opacity < 0.2)))
            shaded = atmosphere.shadow * (1.0 - atmosphere.opacity) > 0.05
            if which == "post":
                hazy, shaded = self._to_pre_grid(hazy), self._to_pre_grid(shaded)
            put("haze", hazy)
            put("cloud_shadow", shaded)
        put("terrain_shading", np.abs(post.illumination[crop] - pre.illumination[crop]) > 0.15)
        truth = self.truth.astype(bool)
        ring = np.ones((3, 3), bool)
        put("scar_edge", ndimage.binary_dilation(truth, ring) & ~ndimage.binary_erosion(truth, ring))
        slope = masks.slope_degrees(self.dem, from_origin(0.0, 0.0, ed.PIXEL_SIZE, ed.PIXEL_SIZE))
        put("runout", truth & (slope < masks.MIN_SLOPE_DEG))
        components, n = ndimage.label(truth, structure=ring)
        if n:
            sizes = np.bincount(components.ravel())
            small = (sizes >= 2) & (sizes <= 6)
            small[0] = False
            put("small_scar", small[components])
        unobserved = np.isin(scl["pre"], masks.INVALID_SCL) | self._to_pre_grid(np.isin(scl["post"], masks.INVALID_SCL))
        put("unobserved", unobserved)
        return labels

    def _to_pre_grid(self, image_post: np.ndarray) -> np.ndarray:
        """A post-image-grid layer on the pre grid (nearest pixel: pre (r, c) is post (r + dy, c + dx))."""
        dx, dy = (int(round(v)) for v in self.shift)
        rows = np.clip(np.arange(self.size) + dy, 0, self.size - 1)
        cols = np.clip(np.arange(self.size) + dx, 0, self.size - 1)
        return image_post[np.ix_(rows, cols)]


class _ScenarioSurface(_SurfaceState):
    """Green cover and ground of one date with the scenario's year-to-year change and events."""

    def __init__(self, scene: ScenarioScene, which: str):
        super().__init__(scene, which)
        self.snow = scene.snow_fraction(which, self.fv)

    @property
    def _post(self) -> bool:
        return self.which == "post"

    def _field_table(self) -> np.ndarray:
        s = self.scene
        if self._post and s.field_table_post is not None:
            return s.field_table_post
        return s.field_table

    def _season_offset_days(self) -> int:
        return int(self.scene.options.season_shift) if self._post else 0

    def _dryness(self) -> float:
        dryness = super()._dryness()
        drought = self.scene.options.drought
        if self._post and drought > 0:  # a drought year: dry earlier and harder (e.g. Turkey 2021, Alps 2022)
            dryness = min(1.0, dryness + 0.5 * drought)
        return dryness

    def _browning(self) -> tuple[float, float]:
        forest, open_land = super()._browning()
        drought = self.scene.options.drought
        if self._post and drought > 0:
            # Drought-stressed pines and oaks brown and shed needles and leaves (crown browning of 20-40 %
            # in Mediterranean droughts such as 2021 in Turkey); shrub and grass dry out earlier.
            return forest * (1 + 2 * drought), min(0.9, open_land * (1 + drought))
        return forest, open_land

    def _green_cover(self) -> np.ndarray:
        s = self.scene
        fv = super()._green_cover()
        drought = s.options.drought
        if self._post and drought < 0:  # a wet year: more green in shrub and grass (winter rains)
            open_land = np.isin(s.landcover_padded, (SHRUB, GRASS))
            fv[open_land] = np.minimum(0.97, fv[open_land] * (1.0 - 0.6 * drought))
        self.fv_seasonal = fv.copy()
        if self._post:
            if s.burn_padded is not None:
                fv *= 1.0 - 0.95 * s.burn_padded           # crowns and understorey consumed
            if s.clearcut_padded is not None:
                cut = s.clearcut_padded
                fv *= 1.0 - cut
                fv += cut * np.float32(0.08) * s.texture_padded  # what the harvester left standing
        return fv

    def _background_rows(self, band, background, r0, r1):
        s = self.scene
        if not self._post:
            return background
        if s.burn_padded is not None:
            severity = s.burn_padded[r0:r1]
            background = background * (1.0 - severity) + severity * np.float32(_spectrum("char", band))
        if s.clearcut_padded is not None:
            cut = s.clearcut_padded[r0:r1]
            background = background * (1.0 - cut) + cut * np.float32(_mix(band, **_SLASH))
        return background.astype(np.float32)

    def _cover_rows(self, band, value, r0, r1):
        if self.snow is None:
            return value
        cover = self.snow[r0:r1]
        return (value * (1.0 - cover) + cover * np.float32(_spectrum("snow", band))).astype(np.float32)


class _ScenarioAtmosphere(_Atmosphere):
    """Clouds and shadows of the example, plus unflagged haze and thin cloud and the sensor's blur."""

    def __init__(self, scene: ScenarioScene, which: str):
        super().__init__(scene, which)
        k = 0 if which == "pre" else 1
        options = scene.options
        size = scene.size
        self.haze = np.zeros((size, size), dtype=np.float32)
        self.thin = np.zeros((size, size), dtype=np.float32)
        self.psf_sigma = float(options.psf_sigma)
        if options.haze[k] > 0:
            # Residual aerosol after Sen2Cor's scene-wide estimate: smooth plumes (smoke, valley haze),
            # thicker over low ground (aerosol scale height ~1-2 km).
            noise = _fractal_noise((size, size), 4.0, _rng(scene.seed, "haze", which), coarse=max(1, size // 64))
            low, high = (float(v) for v in np.quantile(noise[::2, ::2], [0.35, 0.9]))
            dem = scene.dem
            relief = float(np.quantile(dem[::2, ::2], 0.95) - np.quantile(dem[::2, ::2], 0.05)) or 1.0
            lowland = np.exp(-(dem - float(dem.min())) / max(relief, 300.0)).astype(np.float32)
            self.haze = (options.haze[k] * _smoothstep(noise, low, high) * (0.5 + 0.5 * lowland)).astype(np.float32)
        if options.thin_cloud[k] > 0:
            # Thin, semi-transparent cloud that Sen2Cor's cloud mask misses (Baetens et al. 2019; Sen2Cor
            # omits a sizeable share of thin and small clouds).
            noise = _fractal_noise((size, size), 3.2, _rng(scene.seed, "thin", which), coarse=max(1, size // 128))
            low, high = (float(v) for v in np.quantile(noise[::2, ::2], [0.6, 0.97]))
            self.thin = (options.thin_cloud[k] * _smoothstep(noise, low, high)).astype(np.float32)

    def apply(self, surface: np.ndarray, band: str, rng: np.random.Generator) -> None:
        """In place: sensor blur, spectral shadows, clouds, thin cloud, haze, cirrus, sensor noise."""
        if self.psf_sigma > 0:
            # Sentinel-2's MTF at Nyquist is 0.15-0.3 (ESA Sentinel-2 User Handbook): a Gaussian PSF of
            # sigma 0.5-0.6 px. Every edge, a scar's too, becomes a band of mixed pixels.
            from scipy import ndimage

            surface[:] = ndimage.gaussian_filter(surface, self.psf_sigma, mode="nearest")
        # A shadow keeps the diffuse light (bluer than the direct beam) plus light scattered by the cloud.
        lost = self.shadow * (1.0 - self.opacity) * np.float32((1.0 - _DIFFUSE[band]) / 0.9)
        surface *= np.maximum(1.0 - lost, 0.05)
        surface *= 1.0 - self.opacity
        surface += self.opacity * _spectrum("cloud", band) + self.cirrus
        if self.thin.any():
            surface *= 1.0 - self.thin
            surface += self.thin * _spectrum("cloud", band)
        if self.haze.any():
            path = self.haze * np.float32(_HAZE_SPECTRUM[band])
            surface *= 1.0 - 0.5 * path  # the haze also dims the surface a little (transmittance)
            surface += path
        for r0 in range(0, surface.shape[0], 512):
            block = surface[r0:r0 + 512]
            noise = rng.standard_normal(block.shape, dtype=np.float32)
            block += noise * (np.float32(0.002) + np.float32(0.01) * np.abs(block))


# --- Building a scenario ------------------------------------------------------------------------------
def simulate_scenario(options: ScenarioOptions, *, is_cancelled=None) -> ScenarioScene:
    """The ground, events and atmosphere of one scenario (bands on demand, as example_data.Scene)."""
    site = SITES[options.landscape]
    landscape = LANDSCAPES[options.landscape]
    if options.hill_fields > 0:
        landscape = dataclasses.replace(landscape, hill_crop_share=float(options.hill_fields))
    latitude = ed.scene_latitude(site["epsg"], site["uly"], options.size)
    base = ed.simulate_scene(options.size, options.seed, shift=options.shift, pre_date=options.pre_date,
                             post_date=options.post_date, cloud_fraction=options.cloud_fraction,
                             landslide_share=options.landslide_share, latitude=latitude, nodata_edge=True,
                             landscape=landscape, is_cancelled=is_cancelled)
    values = {f.name: getattr(base, f.name) for f in dataclasses.fields(Scene) if f.init and f.name != "_cache"}
    scene = ScenarioScene(**values, options=options)
    scene.terrain_residual = float(options.terrain_residual)
    seed = options.seed
    if options.reservoir_post is not None:
        res = scene.reservoir
        res["level"]["post"] = res["low"] + (res["full"] - res["low"]) * float(options.reservoir_post)
    if options.rotation > 0:
        scene.field_table_post = _rotate_crops(scene.field_table, len(landscape.crops), options.rotation,
                                               _rng(seed, "rotation"))
    if options.burns > 0:
        scene.burn_padded = _burns(scene, options.burns, _rng(seed, "burns"))
    if options.clearcuts > 0:
        scene.clearcut_padded = _clearcuts(scene, options.clearcuts, _rng(seed, "clearcuts"))
    if options.small_scars > 0:
        scene.small_scar_count = _small_scars(scene, options.small_scars, _rng(seed, "small scars"))
    if options.runout > 0:
        scene.runout_count = _runouts(scene, options.runout, options.mobility, _rng(seed, "runout"))
    if scene.burn_padded is not None or scene.clearcut_padded is not None:
        # A scar that formed in a burned or cut patch is still a scar: the events stop at the debris.
        covered = scene.debris_padded > 0
        for layer in (scene.burn_padded, scene.clearcut_padded):
            if layer is not None:
                layer[covered] = 0.0
    return scene


def _rotate_crops(table: np.ndarray, n_crops: int, share: float, rng) -> np.ndarray:
    """Crop rotation: a ``share`` of the fields grows another crop in the post year, and every field's
    sowing and harvest dates move by some days (weather of the year)."""
    out = table.copy()
    change = rng.random(len(out)) < share
    out[change, 0] = (out[change, 0] + rng.integers(1, max(2, n_crops), size=int(change.sum()))) % n_crops
    out[:, 1] += rng.normal(0.0, 8.0, size=len(out)).astype(np.float32)
    return out


def _inside(scene: Scene) -> tuple[slice, slice]:
    m = scene.margin
    return slice(m, m + scene.size), slice(m, m + scene.size)


def _random_pixel(candidates: np.ndarray, rng, margin: int, size: int):
    """A random True pixel of ``candidates`` (padded grid) inside the scene, or None."""
    rows, cols = np.nonzero(candidates[margin:margin + size, margin:margin + size])
    if rows.size == 0:
        return None
    k = int(rng.integers(rows.size))
    return int(rows[k]) + margin, int(cols[k]) + margin


def _downslope(dem: np.ndarray, r: int, c: int, reach: int = 4) -> tuple[float, float]:
    """Unit (row, col) downslope direction at a pixel from the DEM smoothed over ``reach`` pixels."""
    from scipy import ndimage

    r0, r1 = max(0, r - reach), min(dem.shape[0], r + reach + 1)
    c0, c1 = max(0, c - reach), min(dem.shape[1], c + reach + 1)
    local = ndimage.gaussian_filter(dem[r0:r1, c0:c1].astype(np.float32), sigma=max(1.0, reach / 2))
    gy, gx = np.gradient(local)
    dr, dc = -float(gy[r - r0, c - c0]), -float(gx[r - r0, c - c0])
    norm = math.hypot(dr, dc)
    if norm == 0:
        return 1.0, 0.0
    return dr / norm, dc / norm


def _burns(scene: ScenarioScene, share: float, rng) -> np.ndarray:
    """Burn severity (0..1) of wildfires between the dates on ``share`` of the land.

    Fires start low on vegetated slopes and run uphill (spread rates rise steeply with slope: Rothermel
    1972), so the perimeters are elongated upslope, with unburned islands and a patchy severity
    (dNBR severity classes of Key & Benson 2006). Forest, shrub and grassland burn.
    """
    dem, lc = scene.dem_padded, scene.landcover_padded
    size, margin = scene.size, scene.margin
    burnable = np.isin(lc, (FOREST, SHRUB, GRASS))
    severity = np.zeros(dem.shape, dtype=np.float32)
    inside = _inside(scene)
    target = share * np.count_nonzero(lc[inside] != WATER)
    outline = _fractal_noise(dem.shape, 3.0, _rng(scene.seed, "burn outline"), coarse=2)
    patchiness = _fractal_noise(dem.shape, 2.5, _rng(scene.seed, "burn severity"))
    start_here = burnable & (scene.slope_padded >= 10)
    for _ in range(60):
        burned = np.count_nonzero(severity[inside] > 0.1)
        if burned >= target:
            break
        seed_px = _random_pixel(start_here, rng, margin, size)
        if seed_px is None:
            break
        r, c = seed_px
        radius = float(np.clip(math.sqrt(max(target - burned, 50.0) / math.pi) * rng.uniform(0.6, 1.1),
                               6.0, size / 4))
        dr, dc = _downslope(dem, r, c, reach=int(max(4, radius / 2)))
        ur, uc = -dr, -dc                                # uphill
        stretch = rng.uniform(1.5, 2.5)
        centre_r, centre_c = r + ur * 0.7 * radius * math.sqrt(stretch), c + uc * 0.7 * radius * math.sqrt(stretch)
        half = int(radius * math.sqrt(stretch) * 1.6) + 3
        r0, r1 = max(0, int(centre_r) - half), min(dem.shape[0], int(centre_r) + half + 1)
        c0, c1 = max(0, int(centre_c) - half), min(dem.shape[1], int(centre_c) + half + 1)
        yy = np.arange(r0, r1, dtype=np.float32)[:, None] - centre_r
        xx = np.arange(c0, c1, dtype=np.float32)[None, :] - centre_c
        along = yy * ur + xx * uc
        across = -yy * uc + xx * ur
        rho = np.sqrt((along / (radius * math.sqrt(stretch))) ** 2 + (across / (radius / math.sqrt(stretch))) ** 2)
        rho = rho + 0.3 * outline[r0:r1, c0:c1]
        edge = _smoothstep(1.0 - rho, 0.0, 0.12)          # a pixel or two of partial burn at the perimeter
        value = np.clip(0.6 + 0.3 * patchiness[r0:r1, c0:c1], 0.0, 1.0) * edge
        value[value < 0.15] = 0.0                          # unburned islands
        value *= burnable[r0:r1, c0:c1]
        np.maximum(severity[r0:r1, c0:c1], value.astype(np.float32), out=severity[r0:r1, c0:c1])
    return severity


def _clearcuts(scene: ScenarioScene, share: float, rng) -> np.ndarray:
    """Share of each pixel clear-cut between the dates: rectangular blocks of 1-20 ha in the forest.

    Harvest blocks are rectangles aligned to the property and road grid, on steep slopes too (cable
    yarding); sizes as in managed forests of Japan, central Europe and North America (1-40 ha).
    """
    lc = scene.landcover_padded
    size, margin = scene.size, scene.margin
    forest = lc == FOREST
    cut = np.zeros(lc.shape, dtype=np.float32)
    inside = _inside(scene)
    target = share * np.count_nonzero(forest[inside])
    grid = rng.uniform(0, math.pi)
    done = 0.0
    for _ in range(4000):
        if done >= target:
            break
        pixel = _random_pixel(forest, rng, margin, size)
        if pixel is None:
            break
        r, c = pixel
        length, width = (float(v) for v in rng.uniform(5, 23, size=2))
        theta = grid + math.radians(rng.normal(0, 6))
        half = int(math.hypot(length, width) / 2) + 2
        r0, r1 = max(0, r - half), min(lc.shape[0], r + half + 1)
        c0, c1 = max(0, c - half), min(lc.shape[1], c + half + 1)
        yy = np.arange(r0, r1, dtype=np.float32)[:, None] - r
        xx = np.arange(c0, c1, dtype=np.float32)[None, :] - c
        u = xx * math.cos(theta) + yy * math.sin(theta)
        v = -xx * math.sin(theta) + yy * math.cos(theta)
        value = np.clip(0.5 + np.minimum(length / 2 - np.abs(u), width / 2 - np.abs(v)), 0.0, 1.0)
        block = value > 0.5
        if np.mean(forest[r0:r1, c0:c1][block]) < 0.85 or cut[r0:r1, c0:c1][block].max() > 0:
            continue
        value = (value * forest[r0:r1, c0:c1]).astype(np.float32)
        np.maximum(cut[r0:r1, c0:c1], value, out=cut[r0:r1, c0:c1])
        done += float(value.sum())
    return cut


def _paint(debris: np.ndarray, r0: int, c0: int, fraction: np.ndarray, allowed: np.ndarray) -> None:
    """np.maximum of the debris cover (uint8, cover * 250) with ``fraction`` where ``allowed``."""
    window = debris[r0:r0 + fraction.shape[0], c0:c0 + fraction.shape[1]]
    value = np.where(allowed[r0:r0 + fraction.shape[0], c0:c0 + fraction.shape[1]],
                     np.round(np.clip(fraction, 0, 1) * 250), 0).astype(np.uint8)
    np.maximum(window, value, out=window)


def _ellipse(shape_origin, centre, direction, length, width):
    """Cover fraction of an ellipse (long axis ``direction``) on a window: 0.5 + depth in pixels."""
    (r0, r1, c0, c1) = shape_origin
    dr, dc = direction
    yy = np.arange(r0, r1, dtype=np.float32)[:, None] - centre[0]
    xx = np.arange(c0, c1, dtype=np.float32)[None, :] - centre[1]
    along = yy * dr + xx * dc
    across = -yy * dc + xx * dr
    rho = np.sqrt((along / (length / 2)) ** 2 + (across / (width / 2)) ** 2)
    return np.clip(0.5 + (1 - rho) * min(length / 2, width / 2), 0, 1)


def _small_scars(scene: ScenarioScene, per_km2: float, rng) -> int:
    """Scars of 2-6 pixels (0.08-0.24 ha) on steep vegetated slopes: the many small slides at the lower
    end of earthquake inventories, near a 20 m map's minimum mapping unit."""
    dem, lc, slope = scene.dem_padded, scene.landcover_padded, scene.slope_padded
    allowed = np.isin(lc, (FOREST, SHRUB, GRASS)) & (slope >= ed.LANDSLIDE_MIN_SLOPE)
    candidates = allowed & (slope >= ed.LANDSLIDE_MIN_SLOPE + 5) & (scene.debris_padded == 0)
    count = int(round(per_km2 * (scene.size * ed.PIXEL_SIZE / 1000.0) ** 2))
    made = 0
    for _ in range(count):
        pixel = _random_pixel(candidates, rng, scene.margin, scene.size)
        if pixel is None:
            break
        r, c = pixel
        area = rng.uniform(2.0, 6.0)
        ratio = rng.uniform(1.5, 3.0)
        length = math.sqrt(4 * area * ratio / math.pi)
        direction = _downslope(dem, r, c)
        half = int(length) + 2
        box = (r - half, r + half + 1, c - half, c + half + 1)
        fraction = _ellipse(box, (r, c), direction, length, length / ratio)
        _paint(scene.debris_padded, box[0], box[2], fraction, allowed)
        made += 1
    return made


def _runouts(scene: ScenarioScene, share: float, mobility: tuple[float, float], rng) -> int:
    """Runout tracks and deposits below the scars (the truth includes them).

    From each chosen scar's toe the debris follows the steepest descent of the smoothed DEM, with some
    momentum, until the line from the crown falls below the travel angle (tan = H/L, 0.2-0.6 for
    debris avalanches and flows of this size: Corominas 1996; Hungr et al. 2014) - which happens only
    once it has crossed ground gentler than that angle - or its volume is spent (at most a few scar
    lengths). It strips a track about half the scar's width and spreads as a fan-shaped deposit where it
    stops, on whatever land cover lies there (fields and meadows of the valley floor too). Deposits and
    the lower tracks lie on gentle slopes, where a minimum-slope rule removes them.
    """
    from scipy import ndimage

    dem = scene.dem_padded
    smooth = ndimage.gaussian_filter(dem, 2.5)
    grad_r, grad_c = np.gradient(smooth)
    lc = scene.landcover_padded
    land = ~np.isin(lc, (WATER, BUILT))
    debris = scene.debris_padded
    components, n = ndimage.label(debris >= 125, structure=np.ones((3, 3), bool))
    objects = ndimage.find_objects(components)
    height, width = dem.shape

    def at(array, r, c):
        r0, c0 = int(r), int(c)
        fr, fc = r - r0, c - c0
        r1, c1 = min(r0 + 1, height - 1), min(c0 + 1, width - 1)
        return ((1 - fr) * ((1 - fc) * array[r0, c0] + fc * array[r0, c1])
                + fr * ((1 - fc) * array[r1, c0] + fc * array[r1, c1]))

    made = 0
    for label, box in enumerate(objects, start=1):
        if box is None:
            continue
        member = components[box] == label
        area = int(member.sum())
        if area < 8 or rng.random() >= share:
            continue
        z = np.where(member, smooth[box], np.inf)
        toe = np.unravel_index(int(np.argmin(z)), z.shape)
        crown = np.unravel_index(int(np.argmax(np.where(member, smooth[box], -np.inf))), z.shape)
        toe = (toe[0] + box[0].start, toe[1] + box[1].start)
        crown = (crown[0] + box[0].start, crown[1] + box[1].start)
        z_crown = float(smooth[crown])
        scar_length = max(2.0, math.hypot(toe[0] - crown[0], toe[1] - crown[1]))
        scar_width = max(1.5, area / scar_length)
        tan_alpha = rng.uniform(*mobility)
        reach = scar_length * rng.uniform(1.5, 5.0) + 6.0   # pixels the volume can cover
        r, c = float(toe[0]), float(toe[1])
        heading = np.array([toe[0] - crown[0], toe[1] - crown[1]], dtype=float) / scar_length
        path = [(r, c)]
        travelled, run = scar_length * ed.PIXEL_SIZE, 0.0
        step = 0.7
        while run < reach:
            g = np.array([-at(grad_r, r, c), -at(grad_c, r, c)])
            norm = float(np.hypot(*g))
            if norm < 1e-3:
                break
            heading = 0.6 * heading + 0.4 * g / norm
            heading /= float(np.hypot(*heading)) or 1.0
            nr, nc = r + step * heading[0], c + step * heading[1]
            if not (1 <= nr < height - 2 and 1 <= nc < width - 2) or lc[int(round(nr)), int(round(nc))] == WATER:
                break
            if at(smooth, nr, nc) > at(smooth, r, c) + 0.5:   # a counter-slope stops it
                break
            r, c = nr, nc
            run += step
            travelled += step * ed.PIXEL_SIZE
            path.append((r, c))
            if (z_crown - float(at(smooth, r, c))) / travelled < tan_alpha:
                break
        if run < 2.0:
            continue
        points = np.rint(np.array(path)).astype(int)
        rows, cols = points[:, 0], points[:, 1]
        track_width = max(1.5, scar_width * rng.uniform(0.4, 0.7))
        extent = int(track_width + 3)
        r0, r1 = max(0, rows.min() - extent), min(height, rows.max() + extent + 1)
        c0, c1 = max(0, cols.min() - extent), min(width, cols.max() + extent + 1)
        line = np.ones((r1 - r0, c1 - c0), dtype=bool)
        line[rows - r0, cols - c0] = False
        distance = ndimage.distance_transform_edt(line)
        _paint(debris, r0, c0, 0.5 + track_width / 2 - distance, land)
        # The deposit: a fan at the end of the track, wider than long, along the last heading.
        deposit_area = area * rng.uniform(0.3, 0.8)
        fan_width = math.sqrt(4 * deposit_area * rng.uniform(1.2, 2.0) / math.pi)
        fan_length = 4 * deposit_area / (math.pi * fan_width)
        centre = (r + heading[0] * fan_length / 3, c + heading[1] * fan_length / 3)
        half = int(fan_width) + 3
        box = (max(0, int(centre[0]) - half), min(height, int(centre[0]) + half + 1),
               max(0, int(centre[1]) - half), min(width, int(centre[1]) + half + 1))
        fraction = _ellipse(box, centre, (float(heading[0]), float(heading[1])), max(fan_length, 1.5),
                            max(fan_width, 1.5))
        _paint(debris, box[0], box[2], fraction, land)
        made += 1
    return made


# --- Writing ------------------------------------------------------------------------------------------
@dataclass
class ScenarioPair(ExamplePair):
    """Files of a generated scenario: the example pair's plus the confounder labels."""

    confounders: Path | None = None
    options: ScenarioOptions | None = None


def generate_scenario(folder, options: ScenarioOptions, *, reuse: bool = True, progress=None,
                      is_cancelled=None) -> ScenarioPair:
    """Write one scenario into ``folder``: pre/post L2A ZIPs, truth, DEM, land cover, confounders.tif and
    scenario_info.json. With ``reuse`` a complete scenario of the same options and versions is kept."""
    folder = Path(folder)
    site = SITES[options.landscape]
    parameters = {"generator_version": ed.GENERATOR_VERSION, "scenario_version": SCENARIO_VERSION,
                  "options": options.as_dict(), **site}
    info_path = folder / SCENARIO_INFO_NAME
    if reuse:
        existing = _existing_scenario(info_path, parameters, options)
        if existing is not None:
            return existing
    folder.mkdir(parents=True, exist_ok=True)
    ed._remove_previous(info_path)
    scene = simulate_scenario(options, is_cancelled=is_cancelled)

    def labels(scl):
        array = scene.confounder_labels(scl)
        tags = {f"BIT_{bit.bit_length() - 1}": name for name, bit in CONFOUNDER_BITS.items()}
        return [(CONFOUNDER_NAME, array, "uint16", None, "confounder labels (bit mask, see tags)", tags)]

    zenith = options.sun_zenith()
    info = ed.write_scene(
        folder, scene, parameters=parameters, bands=ed.CORE_BANDS, epsg=site["epsg"], tile=site["tile"],
        ulx=site["ulx"], uly=site["uly"], info_path=info_path, extra_layers=labels, progress=progress,
        is_cancelled=is_cancelled,
        extra_info={"scenario": options.as_dict(), "landscape": LANDSCAPES[options.landscape].name,
                    "confounder_bits": CONFOUNDER_BITS, "sun_zenith_difference": zenith[1] - zenith[0],
                    "small_scars_added": scene.small_scar_count, "runouts_added": scene.runout_count})
    scene.release()
    return _scenario_pair(info_path, info, options)


def _scenario_pair(info_path: Path, info: dict, options: ScenarioOptions) -> ScenarioPair:
    pair = ed._pair_from_info(info_path, info)
    return ScenarioPair(**{f.name: getattr(pair, f.name) for f in dataclasses.fields(ExamplePair)},
                        confounders=info_path.parent / info["files"]["confounders"], options=options)


def _existing_scenario(info_path: Path, parameters: dict, options: ScenarioOptions) -> ScenarioPair | None:
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if info.get("parameters") != json.loads(json.dumps(parameters)):
        return None
    try:
        pair = _scenario_pair(info_path, info, options)
    except (KeyError, TypeError, ValueError):
        return None
    files = (pair.pre, pair.post, pair.truth, pair.dem, pair.landcover, pair.confounders)
    return pair if all(p.is_file() for p in files) else None


def read_labels(path) -> dict[str, np.ndarray]:
    """confounders.tif as one boolean array per confounder name."""
    import rasterio

    with rasterio.open(path) as src:
        array = src.read(1)
    return {name: (array & np.uint16(bit)) > 0 for name, bit in CONFOUNDER_BITS.items()}


# --- The benchmark's scenes ---------------------------------------------------------------------------
#: The accuracy benchmark's set: three landscapes, both season pairs, 256-768 px, every confounder of
#: issue 15 in several scenes. Strengths are set by what real scenes show, not by any method's score.
SCENARIOS = (
    ScenarioOptions(
        "semiarid-reference-winter-summer", "semi-arid", "winter-summer", "2023-01-05", "2023-08-05", size=768,
        seed=101, shift=(1.5, -1.25), cloud_fraction=(0.02, 0.06), landslide_share=0.012, burns=0.02,
        haze=(0.0, 0.03), runout=0.3, small_scars=2.0, hill_fields=0.05,
        description="the reference study's setting (Kahramanmaras, January to August) with a summer wildfire"),
    ScenarioOptions(
        "semiarid-drought-same-season", "semi-arid", "same-season", "2022-08-12", "2023-08-07", size=640, seed=102,
        shift=(0.4, 0.3), cloud_fraction=(0.01, 0.03), drought=0.6, season_shift=10, rotation=0.4,
        reservoir_post=0.1, burns=0.04,
        runout=0.3, description="August to August of a drought year: browning, low reservoir, large fires"),
    ScenarioOptions(
        "semiarid-spring-haze", "semi-arid", "same-season", "2022-05-10", "2023-05-18", size=384, seed=103,
        shift=(2.1, -2.1), cloud_fraction=(0.03, 0.15), haze=(0.0, 0.05), thin_cloud=(0.0, 0.12), rotation=0.5,
        hill_fields=0.08, drought=-0.5, season_shift=-10, small_scars=4.0,
        description="May to May, a wet spring after a dry one (greening), hazy and cloudy post image, 3 px off"),
    ScenarioOptions(
        "semiarid-sparse-small", "semi-arid", "winter-summer", "2023-02-10", "2023-07-20", size=256, seed=104,
        landslide_share=0.006, small_scars=6.0, psf_sigma=0.6, runout=0.5, hill_fields=0.10, reservoir_post=0.0,
        description="few, small scars on sparse shrubland; terraced fields; reservoir drawn down; no shift"),
    ScenarioOptions(
        "semiarid-cloudy-misaligned", "semi-arid", "winter-summer", "2023-01-15", "2023-06-28", size=512,
        seed=105, shift=(-2.2, 1.8), cloud_fraction=(0.12, 0.2), thin_cloud=(0.1, 0.05), burns=0.01,
        clearcuts=0.02, runout=0.3, description="cloudy on both dates, thin cloud, harvest under way, 2.8 px off"),
    ScenarioOptions(
        "humid-summer-clearcuts", "humid-forest", "same-season", "2022-07-22", "2023-07-30", size=768, seed=201,
        shift=(1.0, 0.5), cloud_fraction=(0.05, 0.08), landslide_share=0.015, clearcuts=0.03, rotation=0.3,
        runout=0.5, mobility=(0.25, 0.45), small_scars=3.0, thin_cloud=(0.08, 0.1),
        description="managed forest: fresh clear-cuts on steep slopes, mobile debris flows, thin cloud"),
    ScenarioOptions(
        "humid-winter-summer-snow", "humid-forest", "winter-summer", "2023-03-28", "2023-08-25", size=512,
        seed=202, shift=(2.5, -1.0), cloud_fraction=(0.04, 0.08), snow=(0.75, None), thin_snow=0.1, runout=0.4,
        description="leafless forest with snow on the upper slopes in late March against full leaf in August"),
    ScenarioOptions(
        "humid-autumn-edges", "humid-forest", "same-season", "2022-10-08", "2023-10-15", size=256, seed=203,
        shift=(1.6, 1.6), psf_sigma=0.7, small_scars=8.0, haze=(0.03, 0.0), season_shift=14, clearcuts=0.01,
        description="typhoon-season slides, many small; autumn senescence; blurry sensor; hazy pre image"),
    ScenarioOptions(
        "humid-burn-clearcut-shadow", "humid-forest", "same-season", "2022-06-10", "2023-06-18", size=640,
        seed=204, shift=(0.7, -2.4), cloud_fraction=(0.03, 0.2), burns=0.02, clearcuts=0.02, hill_fields=0.05,
        rotation=0.3, runout=0.3, description="June: hay cut, terraced fields, a burn and clear-cuts, cumulus"),
    ScenarioOptions(
        "humid-large-event", "humid-forest", "same-season", "2022-09-01", "2023-09-10", size=768, seed=205,
        shift=(-0.8, -0.6), landslide_share=0.03, runout=1.0, mobility=(0.12, 0.3), clearcuts=0.015,
        haze=(0.0, 0.02),
        small_scars=2.0, description="a dense event (Iburi 2018-like) with runout onto the valley floors"),
    ScenarioOptions(
        "alpine-summer-same-season", "alpine", "same-season", "2022-08-25", "2023-08-30", size=512, seed=301,
        shift=(1.3, 1.1), cloud_fraction=(0.05, 0.1), snow=(0.97, 0.93), thin_snow=0.05, rotation=0.4,
        runout=0.6, mobility=(0.3, 0.5), drought=0.8,
        description="late summer, snow patches on the summits, hay cuts, debris flows onto the valley floor"),
    ScenarioOptions(
        "alpine-winter-summer", "alpine", "winter-summer", "2023-02-05", "2023-08-12", size=768, seed=302,
        shift=(2.9, 0.2), cloud_fraction=(0.03, 0.07), snow=(0.6, 0.95), thin_snow=0.15, terrain_residual=0.5,
        runout=0.4, clearcuts=0.01,
        description="February snow cover and low sun against August; coarse terrain correction; 2.9 px off"),
    ScenarioOptions(
        "alpine-autumn-fresh-snow", "alpine", "same-season", "2022-10-02", "2023-10-09", size=384, seed=303,
        shift=(0.0, 1.0), snow=(None, 0.7), thin_snow=0.12, reservoir_post=0.55, haze=(0.02, 0.04),
        description="early snowfall on the post date, mostly too thin for the SCL; reservoir drawn down"),
    ScenarioOptions(
        "alpine-burn-runout", "alpine", "same-season", "2022-07-15", "2023-07-20", size=256, seed=304,
        shift=(0.5, -0.5), burns=0.05, runout=0.7, mobility=(0.2, 0.4), small_scars=4.0, terrain_residual=0.45,
        description="a forest fire on steep slopes (Bitsch 2023-like) beside long-runout debris flows"),
)
SCENARIO_NAMES = tuple(s.name for s in SCENARIOS)


def scenario(name: str) -> ScenarioOptions:
    """The benchmark scene called ``name``."""
    for options in SCENARIOS:
        if options.name == name:
            return options
    raise ValueError(f"no scenario {name!r}; the scenarios are {', '.join(SCENARIO_NAMES)}")
