"""The one set of defaults: every algorithm, the one-step run and the shipped model take their settings from here.

Plain constants, no imports: the Processing algorithms read them while declaring their parameters, which must
work even before numpy or rasterio are installed (the plugin then says what is missing). The core's option
classes (``pipeline.MappingOptions`` and friends) use the same names; ``tests/processing/test_defaults.py``
checks that every algorithm's parameter, the core's options and the model agree with this module.
"""
from __future__ import annotations

# -- detection -----------------------------------------------------------------------------------------
#: dNDVI below this is a landslide for the threshold baseline (the reference study's value).
THRESHOLD = -0.2
#: Cluster counts of the one-step run: K-means 5 and GMM 5, the best on the scenario benchmark
#: (bench/README.md; the reference study's 2 and 3 clusters scored lower there).
KMEANS_CLUSTERS = (5,)
GMM_CLUSTERS = (5,)
#: Features the one-step run's clusterings are fitted on (``indices`` names): NDVI, bare-soil and visible change,
#: vegetation before and bare soil after - they tell fresh scars (brighter, barer) from burns, shadows and haze.
CLUSTER_FEATURES = ("dNDVI", "dBSI", "dVIS", "NDVI_pre", "BSI_post")
#: ... but the default GMMs (GMM_CLUSTERS) are fitted on each change minus the median of the land within 800 m
#: ("_local"): regional season, drought, haze and sun-angle change is no change there, a scar still is. The
#: scenario benchmark: GMM 5 mean / worst F1 0.611 / 0.402 -> 0.626 / 0.445 (better at every seed); K-means 5
#: gets worse and seed-sensitive on them, so it keeps CLUSTER_FEATURES (bench/README.md). A GMM of another count
#: the user adds is fitted on CLUSTER_FEATURES (not measured on these).
GMM_FEATURES = ("dNDVI_local", "dBSI_local", "dVIS_local", "NDVI_pre", "BSI_post")
#: ... and from this many seeds (the run's seed and the next ones), a pixel mapped where any fit maps it. EM ends in
#: one of several partitions of nearly equal likelihood, and whether a cluster of scars clears the rule depends on
#: which: on the scenario benchmark one seed's GMM 5 scored 0.23-0.62 on one scene. A scar that clears the rule in
#: any partition is scar-like by the stated rule (bench/README.md, "Several starts of the mixture").
GMM_STARTS = 3
#: A pixel in a landslide cluster must have lost at least this share of the strongest NDVI loss within 2 px: the
#: scar must cover at least half of it (the truth's own definition). NDVI mixes non-linearly - bright soil in
#: vegetation: a pixel half covered shows 0.56-0.59 of the core's loss, one 40 % covered about 0.5 - so 0.6, not
#: 0.5 (scenario bench, "either" map: mean F1 0.662 -> 0.671, worst 0.501 unchanged; bench/README.md).
CORE_FRACTION = 0.6
#: Every pixel a clustering maps must be at least this share covered by the scar next to it, by linear unmixing
#: of the bands (``indices.scar_cover``): the truth's definition, with no allowance for mixing, since reflectance
#: mixes linearly (bench/README.md, "Scar cover by unmixing").
SCAR_COVER = 0.5
#: A mapped pixel must lie within 2 px of an NDVI loss of at least 0.15 - its own or its scar's: how much a scar
#: changed is the scar's property, how much of a pixel it covers (CORE_FRACTION, SCAR_COVER) the pixel's. Sparse
#: shrub loses only 0.15-0.2 NDVI under a whole scar, so half-covered edge pixels failed a test on their own loss
#: (scenario bench, "either": mean F1 0.709 -> 0.716, drought scene 0.62 -> 0.75; held-out sets +0.003 and
#: +0.006; bench/README.md, "The scar's change at its core").
MAGNITUDE_AT_CORE = True
#: Cluster count of the single "Cluster landslides" algorithm and of the model.
CLUSTERS = 3
#: The one-step run also maps the pixels either clustering maps (``detection.EitherDetector``, method "either"): the
#: two see different changes and each is precise where it maps; on the scenario benchmark their union has the best
#: mean and worst F1 (0.735 / 0.622 against K-means 5 0.696 / 0.323 and GMM 5 0.732 / 0.622; bench/README.md).
EITHER_CLUSTERING = True
#: The method whose mask becomes polygons: the best mean and worst-scene F1 on the scenario benchmark.
PRIMARY = "either"
#: Pixels the clusterings are fitted on, and the seed of that sample and of the fits.
SAMPLE_SIZE = 200_000
SEED = 0

# -- masks ---------------------------------------------------------------------------------------------
EXCLUDE_WATER = True
EXCLUDE_DARK = False
#: NDWI (McFeeters) above which a pixel is water on either date.
NDWI_WATER_THRESHOLD = 0.0
#: Pixels within this many pixels of water (either date) are ruled out in the one-step run: a shore moves with
#: the water level and mixes water and wet ground (scenario bench: reservoir-shore false alarms 214 -> 13 px).
WATER_BUFFER_PX = 2
#: ... and within this many where the water line moved between the dates (water on one date, land on the other):
#: the bank above the higher line floods and drains too (scenario bench: reservoir-shore false alarms of the
#: threshold 92 -> 10 px, K-means 5 33 -> 5, GMM 5 16 -> 1, mean and worst F1 not lower at 4 decimals; 4 px: 2 / 3 / 0,
#: but GMM 5, the primary, -0.0003 mean F1: scar pixels by the water).
MOVED_WATER_BUFFER_PX = 3
#: With a DEM, gentler slopes are ruled out (rapid-mapping practice).
MIN_SLOPE_DEG = 15.0
#: ... except the runout and deposits below a landslide source: flatter pixels of a mapped object whose steep part
#: is a source (mean slope >= 20 deg, at least half the object) that lie lower than its nearest steep pixel
#: (scenario bench: K-means 5 mean F1 0.626 -> 0.646, runout found 0 -> 56 %).
KEEP_RUNOUT = True
#: The mean slope (degrees) the steep part of an object needs to be a landslide source: shallow landslides and
#: debris-flow sources start on slopes of 20-45 deg; a harvested hill field or meadow patch that just crosses the
#: minimum slope (its steep part 16-17 deg on average) is no source.
RUNOUT_SOURCE_SLOPE_DEG = 20.0
#: ... and the share of its object: a scar's runout track and deposit are at most about as large as the scar,
#: while a flat field or clear-cut touching steep ground is mostly flat.
RUNOUT_SOURCE_SHARE = 0.5
#: Pre-event NDVI a pixel needs to count (vegetated before: a scar removes vegetation), in the one-step run.
MIN_NDVI_PRE = 0.3
#: The same rule in the single detection algorithms and the model: off. The one exception to "one set": with
#: the rule on, the model's GMM 3 on the built-in 128 px example flags 802 pixels of which 26 % are scars
#: (off: over 30 %, what tests/processing/test_model.py requires), while on larger examples the rule helps
#: the one-step run (256 px: F1 0.40 instead of 0.18). Until the detection settles this, the two keep their
#: values and a test holds both (and that everything else maps the same).
MIN_NDVI_PRE_SINGLE_STEPS = None
#: Pre-event NDSI above which snow the SCL does not flag hid the ground (snow-free land is below about -0.2, a third
#: of the ground under snow about 0): such a pixel needs only SNOW_MIN_NDVI_PRE before - snow mixes in with an NDVI
#: of about 0, vegetation under a thin cover shows 0.1-0.3, bare rock less - and the snow path below judges it on
#: the post image.
#: (scenario bench, "either": mean / worst F1 0.716 / 0.507 -> 0.735 / 0.622; +0.010, +0.022 and +0.006 on three
#: held-out sets; bench/README.md, "Scars under snow on the pre-event date").
SNOW_NDSI = 0.0
SNOW_MIN_NDVI_PRE = 0.05
#: The snow path of the clusterings' rule: a pixel snowy before is a scar where its NDVI after is this much below
#: (and its BSI after 0.05 above) the median of the land within 800 m: bare ground in land green after.
SNOW_SCAR_NDVI = -0.25
#: ESA WorldCover classes ruled out with a land-cover raster: cropland (harvested between dates), built-up.
EXCLUSION_CLASSES = "40,50"

# -- co-registration -----------------------------------------------------------------------------------
#: SWIR-1 changes less with the season than NIR, so it aligns pre/post pairs from different seasons better.
ALIGN_BAND = "B11"
#: Bands a stack prepared by the plugin carries, in order (the co-registration band is one of them).
STACK_BANDS = ("B02", "B03", "B04", "B8A", "B11", "B12")
ALIGN_GRADIENT = True
ALIGN_MOTION = "translation"
#: How the aligned image is resampled. Bilinear interpolation at a half-pixel shift averages two neighbours: it
#: blurs the post-event image alone, so every sharp edge (a scar's, a forest's) reads as change in a ring
#: around it. Cubic convolution keeps edges; scenario bench: every method's mean F1 rose (bench/README.md).
ALIGN_RESAMPLING = "cubic"
MAX_SHIFT_PX = 5.0
MIN_CORRELATION = 0.3

# -- polygons ------------------------------------------------------------------------------------------
#: Radius of the morphological opening before polygons (pixels; 0: none).
OPENING_PX = 1
#: Minimum mapping unit: 1600 m² = 4 pixels at 20 m.
MIN_AREA_M2 = 1600.0
