"""One detection pass: the co-registered pair is read, its features and mask codes computed once, for
every method.

Flow (``detect``):

1. **Pass 1** reads both stacks block by block, computes the change features
   (``indices.change_features``) and the analysis mask codes (``masks.mask_codes``) once, keeps the
   codes (uint8, 30 MB for a full tile) and draws one reservoir sample of the analysed pixels, shared
   by every fitted method (the same pixels, so the methods are comparable): it holds the union of the
   features the methods are fitted on (``MethodSpec.features``, else the run's ``DetectionInputs.features``).
2. **Fits** of the fitted methods, side by side in threads (scikit-learn releases the GIL), each on its own
   features in its own order (the sample's columns it names; a local anomaly as the sampled change minus
   its surroundings' median).
3. **Pass 2** reads the pair once more, recomputes the features of each block and lets every method
   predict it; every method's outputs are written in that one pass. With no fitted method, pass 1
   already predicts and there is no pass 2.

A method is one entry of ``REGISTRY`` (a :class:`MethodKind`: its key, how it is labelled, whether it is
fitted and gives a probability or clusters, and the class that fits and predicts). Adding a method is
one entry and one small class; adding a mask rule is one place in ``masks.mask_codes`` and its option.

Outputs per method (GeoTIFF on the pre-event stack's grid, written atomically): the landslide mask
(uint8: 1 landslide, 0 not or ruled out by a mask rule, 255 no data), for clusterings the cluster ids
(uint8, 255 = not analysed) and for Gaussian mixtures the landslide probability (float32: 0 where a
rule ruled the pixel out, NaN without data).
"""
from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

import numpy as np
import rasterio
from rasterio.enums import Resampling

from . import indices as idx
from . import masks, rasters

#: Rows per block: a block's bands, indices, codes and features are some 40 block-size arrays; at 256
#: rows of a 5490-wide tile (1.4 M pixels) they stay near 300 MB, and 256 divides the 512-row GeoTIFF
#: tiles, so each tile row is decompressed for two blocks at most.
BLOCK_ROWS = 256

#: The suffix under which a block's feature minus its surroundings' median (``indices.LocalBackground``) reaches
#: the methods whose rule asks for it (``SelectionRule.local_max_dndvi``, ``local_min_dvis``): dNDVI_local.
LOCAL = idx.LOCAL_SUFFIX
#: The feature the snow path of a selection rule reads (``SelectionRule.snow_scar_ndvi``): snow before.
SNOW_INDEX = "NDSI_pre"
#: The name of a block's strongest NDVI loss within ``idx.CORE_RADIUS_PX`` (``SelectionRule.min_core_fraction``).
CORE_DNDVI = "dNDVI_core"
#: The name of a block's share of each pixel the nearby scar covers (``SelectionRule.min_scar_cover``).
SCAR_COVER = "scar_cover"
#: Mask reasons that leave a pixel observed land (ruled out by a rule, not by the SCL, water or no data): its
#: change counts in the surroundings' median.
_BACKGROUND_REASONS = ("slope", "exclusion", "not_vegetated")

#: Threads that fit and predict the methods side by side (the machines this runs on have 2+ cores).
THREADS = 2


# -- methods -----------------------------------------------------------------------------------------------
@dataclass
class BlockPrediction:
    """One method's answer for the analysed pixels of a block (1-D arrays over those pixels)."""

    landslide: np.ndarray                  # bool
    labels: np.ndarray | None = None       # uint8 cluster ids (clusterings)
    probability: np.ndarray | None = None  # float32 landslide probability (mixtures)


class Detector:
    """A configured method. Subclasses set the class attributes and implement ``predict``."""

    fitted = False
    gives_probability = False
    gives_clusters = False
    #: Made from the other methods' final masks after the pass (no ``predict``).
    combines = False

    def __init__(self, spec: MethodSpec):
        self.spec = spec

    def fit(self, sample: np.ndarray, feature_names: Sequence[str],
            candidate_values: np.ndarray | None = None) -> None:  # fitted methods only
        raise NotImplementedError

    def predict(self, features: Mapping[str, np.ndarray]) -> BlockPrediction:
        raise NotImplementedError

    def tags(self) -> dict[str, str]:
        return {"METHOD": self.spec.name}

    def describe(self) -> str:
        """The numbers behind the method's choice, for the log."""
        return ""


class ThresholdDetector(Detector):
    """The reference study's baseline: dNDVI below a (negative) threshold."""

    def __init__(self, spec: MethodSpec):
        super().__init__(spec)
        self.threshold = masks.check_threshold(spec.threshold)

    def predict(self, features):
        with np.errstate(invalid="ignore"):
            return BlockPrediction(landslide=np.asarray(features["dNDVI"]) < self.threshold)

    def tags(self):
        return {"METHOD": f"NDVI change < {self.threshold:g}"}

    def describe(self):
        return f"dNDVI < {self.threshold:g}"


class ClusterDetector(Detector):
    """K-means or a Gaussian mixture fitted on the shared sample; the landslide cluster by a stated rule."""

    fitted = True
    gives_clusters = True

    def __init__(self, spec: MethodSpec):
        super().__init__(spec)
        self.gives_probability = spec.kind == "gmm"
        self.model = None
        #: Every fit, one per start (``MethodSpec.starts``); ``model`` is the first, from the method's own seed.
        self.models: list = []
        self.nothing = ""
        self.feature_names: tuple[str, ...] = ()

    def fit(self, sample, feature_names, candidate_values=None):
        from . import clustering

        self.feature_names = tuple(feature_names)
        try:
            self.models = [clustering.fit_clusters(sample, feature_names, method=self.spec.kind,
                                                   n_clusters=self.spec.n_clusters, seed=self.spec.seed + start,
                                                   rule=self.spec.rule, candidates_below=self.spec.candidates_below,
                                                   candidate_values=candidate_values)
                           for start in range(self.spec.starts)]
        except clustering.NoCandidates as nothing:
            self.models, self.nothing = [], str(nothing)
        self.model = self.models[0] if self.models else None

    def predict(self, features):
        rule = self.spec.rule
        if self.model is None:
            size = np.asarray(next(iter(features.values()))).shape
            local = self._local_scars(features, np.zeros(size, bool), rule) & self._covered(features, size, rule)
            return BlockPrediction(landslide=local | self._snow_scars(features, size, rule),
                                   labels=np.full(size, 255, np.uint8),
                                   probability=np.zeros(size, np.float32) if self.gives_probability else None)
        labels, probability = self.model.predict_with_probability(features)
        chosen = np.isin(labels, self.model.landslide_clusters)
        for other in self.models[1:]:  # further starts: a landslide where any fit's landslide clusters hold it
            other_labels, other_probability = other.predict_with_probability(features)
            chosen |= np.isin(other_labels, other.landslide_clusters)
            if probability is not None:
                probability = np.fmax(probability, other_probability)
        passes = np.ones(labels.shape, dtype=bool)  # the rule's pixel tests, whatever the cluster
        with np.errstate(invalid="ignore"):
            if getattr(rule, "pixel_max_dndvi", None) is not None:
                change = np.asarray(features["dNDVI"]).reshape(passes.shape)
                if getattr(rule, "magnitude_at_core", False) and CORE_DNDVI in features:
                    change = np.fmin(change, np.asarray(features[CORE_DNDVI]).reshape(passes.shape))
                passes &= change < rule.pixel_max_dndvi
            if getattr(rule, "local_max_dndvi", None) is not None:
                loss = np.asarray(features["dNDVI" + LOCAL]).reshape(passes.shape)
                local = loss < rule.local_max_dndvi
                if getattr(rule, "local_min_dvis", None) is not None:
                    brighter = np.asarray(features["dVIS" + LOCAL]).reshape(passes.shape) > rule.local_min_dvis
                    local |= brighter & (loss < 0)
                passes &= local
            if getattr(rule, "min_core_fraction", None) is not None:
                core = np.asarray(features[CORE_DNDVI]).reshape(passes.shape)
                passes &= np.asarray(features["dNDVI"]).reshape(passes.shape) <= rule.min_core_fraction * core
            covered = self._covered(features, passes.shape, rule)
        landslide = chosen & passes
        if probability is not None:
            # The layer must not call a pixel the rule rules out a likely landslide (a harvested field in a
            # landslide cluster would show as 100 %): its probability is 0 there, as in the mask.
            probability = np.where((passes & covered) | np.isnan(probability), probability, np.float32(0.0))
        # The snow path after the cover test: unmixing needs the pre-event spectrum, which snow hides.
        snow = self._snow_scars(features, labels.shape, rule)
        landslide = (self._local_scars(features, landslide, rule) & covered) | snow
        return BlockPrediction(landslide=landslide, labels=labels, probability=probability)

    @staticmethod
    def _covered(features, shape, rule) -> np.ndarray:
        """``SelectionRule.min_scar_cover``: True where the scar next to a pixel covers enough of it (or no test)."""
        if getattr(rule, "min_scar_cover", None) is None:
            return np.ones(shape, dtype=bool)
        with np.errstate(invalid="ignore"):
            return np.asarray(features[SCAR_COVER]).reshape(shape) >= rule.min_scar_cover

    @staticmethod
    def _snow_scars(features, shape, rule) -> np.ndarray:
        """``SelectionRule.snow_scar_ndvi``: the pixels snowy before that are bare in land green after (or none)."""
        if getattr(rule, "snow_scar_ndvi", None) is None:
            return np.zeros(shape, dtype=bool)

        def value(name):
            return np.asarray(features[name]).reshape(shape)

        with np.errstate(invalid="ignore"):
            return ((value(SNOW_INDEX) > rule.snow_ndsi) & (value("NDVI_pre") >= rule.snow_min_ndvi_pre)
                    & (value("NDVI_post" + LOCAL) < rule.snow_scar_ndvi)
                    & (value("BSI_post" + LOCAL) > rule.min_dbsi))

    @staticmethod
    def _local_scars(features, landslide: np.ndarray, rule) -> np.ndarray:
        """``SelectionRule.local_scar_dndvi``: add the pixels whose change beyond their surroundings is scar-like."""
        if getattr(rule, "local_scar_dndvi", None) is None:
            return landslide

        def beyond(name):
            return np.asarray(features[name + LOCAL]).reshape(landslide.shape)

        with np.errstate(invalid="ignore"):
            return landslide | ((beyond("dNDVI") < rule.local_scar_dndvi) & (beyond("dBSI") > rule.min_dbsi)
                                & (beyond("dVIS") > rule.min_dvis))

    @property
    def landslide_cluster(self) -> int:
        """The best landslide cluster (-1: none)."""
        from .clustering import best_landslide_cluster

        return best_landslide_cluster(self.model)

    @property
    def warning(self) -> str | None:
        return self.nothing if self.model is None else self.model.selection.warning

    def tags(self):
        tags = {"METHOD": self.spec.kind, "CLUSTERS": str(self.spec.n_clusters), "SEED": str(self.spec.seed)}
        if len(self.models) > 1:
            tags["STARTS"] = str(len(self.models))
            tags["LANDSLIDE_CLUSTERS_PER_START"] = ";".join(",".join(str(k) for k in m.landslide_clusters)
                                                            for m in self.models)
        if self.feature_names:
            tags["FEATURES"] = ",".join(self.feature_names)
        if self.model is not None:
            tags.update(SAMPLE_SIZE=str(self.model.sample_size), LANDSLIDE_CLUSTER=str(self.landslide_cluster),
                        LANDSLIDE_CLUSTERS=",".join(str(k) for k in self.model.landslide_clusters))
        if self.spec.candidates_below is not None:
            tags["CLUSTERED"] = f"pixels with dNDVI < {self.spec.candidates_below:g}"
        return tags

    def describe(self):
        from .clustering import describe_features

        fitted_on = describe_features(self.feature_names)
        if self.model is None:
            paths = [name for name, option in (("local scar", "local_scar_dndvi"), ("snow", "snow_scar_ndvi"))
                     if getattr(self.spec.rule, option, None) is not None]
            if paths:
                return (f"{self.nothing.split(', so this method')[0]} (features {fitted_on}); only the "
                        f"{' and '.join(paths)} path{'s' if len(paths) > 1 else ''} of the rule "
                        f"map{'' if len(paths) > 1 else 's'} here "
                        f"({self.spec.rule.describe(self.feature_names)})")
            return f"{self.nothing} (features {fitted_on})"
        chosen = ", ".join(str(k) for k in self.model.landslide_clusters) or "none"
        scope = (f"clustered the pixels whose NDVI fell below {self.spec.candidates_below:g}"
                 if self.spec.candidates_below is not None else "clustered every analysed pixel")
        return (f"{scope} on {fitted_on}; landslide cluster(s) {chosen}\n{self.model.selection.format()}"
                f"{self.further_starts()}")

    def further_starts(self) -> str:
        """Each start after the first (``MethodSpec.starts``): its landslide clusters and cluster table, each on
        new lines ('' with one start)."""
        text = ""
        for start, other in enumerate(self.models[1:], start=1):
            others = ", ".join(str(k) for k in other.landslide_clusters) or "none"
            text += (f"\nstart {start + 1} of {len(self.models)} (seed {self.spec.seed + start}; a pixel is a "
                     f"landslide where any start's landslide clusters hold it): landslide cluster(s) {others}\n"
                     f"{other.selection.format()}")
        return text


class EitherDetector(Detector):
    """The pixels any clustering of the run maps, each after its own rules and masks (the union of their final
    masks). The clusterings see different changes (K-means the change itself, GMM 5 the change beyond the
    surroundings) and each is precise where it maps, so together they find more scars (bench/README.md)."""

    combines = True

    def __init__(self, spec: MethodSpec):
        super().__init__(spec)
        self.combined: tuple[str, ...] = ()  # labels of the clusterings combined, set by ``detect``

    def tags(self):
        return {"METHOD": "either clustering", "COMBINED": ",".join(self.combined)}

    def describe(self):
        return f"a pixel is a landslide where any of {' or '.join(self.combined)} maps it (after its rules and masks)"


@dataclass(frozen=True)
class MethodKind:
    """A registry entry: what a kind of method is and which class runs it."""

    key: str
    label: str
    detector: type[Detector]
    takes_clusters: bool = False
    fitted: bool = False
    gives_probability: bool = False


#: Every method the plugin knows. A new method is one entry here and one Detector class.
REGISTRY: dict[str, MethodKind] = {
    "threshold": MethodKind("threshold", "dNDVI threshold", ThresholdDetector),
    "kmeans": MethodKind("kmeans", "K-means", ClusterDetector, takes_clusters=True, fitted=True),
    "gmm": MethodKind("gmm", "GMM", ClusterDetector, takes_clusters=True, fitted=True, gives_probability=True),
    "either": MethodKind("either", "Either clustering", EitherDetector),
}


@dataclass(frozen=True)
class MethodSpec:
    """One method to run: its kind (a REGISTRY key) and settings. ``name`` is what files are named after."""

    kind: str
    n_clusters: int = 0
    threshold: float = -0.2
    seed: int = 0
    #: Clusterings: only pixels whose NDVI fell below this are clustered (None: every analysed pixel).
    candidates_below: float | None = None
    #: Clusterings: the stated rule choosing the landslide clusters (None: the reference study's single
    #: cluster with the largest NDVI loss and bare-soil gain).
    rule: object | None = None
    #: Fitted methods: the features fitted on, in this order (``indices`` names; "dNDVI_local": the change minus
    #: its surroundings' median). None: the run's (``DetectionInputs.features``).
    features: tuple[str, ...] | None = None
    #: Clusterings: fits from this many seeds (``seed``, ``seed + 1``, ...) on the same sample; a pixel is a
    #: landslide where the landslide clusters of any of them hold it (the GMM probability: the highest).
    starts: int = 1

    def __post_init__(self):
        if self.kind not in REGISTRY:
            raise ValueError(f"unknown method '{self.kind}'; use {', '.join(REGISTRY)}")
        if REGISTRY[self.kind].takes_clusters and self.n_clusters < 2:
            raise ValueError(f"{self.kind} needs at least 2 clusters, got {self.n_clusters}")
        if int(self.starts) < 1 or (self.starts > 1 and not REGISTRY[self.kind].takes_clusters):
            raise ValueError(f"{self.label}: starts must be 1, or more for a clustering; got {self.starts}")
        if self.features is not None:
            if not REGISTRY[self.kind].fitted:
                raise ValueError(f"{self.label} is not fitted on features; give features to a clustering only")
            # a tuple (hashable, comparable); a single name is one feature, not its letters
            object.__setattr__(self, "features", (self.features,) if isinstance(self.features, str)
                               else tuple(self.features))

    @property
    def entry(self) -> MethodKind:
        return REGISTRY[self.kind]

    @property
    def name(self) -> str:
        return f"{self.kind}{self.n_clusters}" if self.entry.takes_clusters else self.kind

    @property
    def label(self) -> str:
        return f"{self.entry.label} {self.n_clusters}" if self.entry.takes_clusters else self.entry.label

    @classmethod
    def from_name(cls, name: str, **settings) -> MethodSpec:
        """'threshold', 'kmeans3', 'gmm2' ... -> MethodSpec."""
        match = re.fullmatch(r"([a-z]+?)(\d*)", name.strip().lower())
        if not match or match.group(1) not in REGISTRY:
            raise ValueError(f"unknown method '{name}'; use {', '.join(REGISTRY)} (with a cluster count: kmeans3)")
        kind, count = match.group(1), match.group(2)
        return cls(kind, int(count) if count else 0, **settings)

    def detector(self) -> Detector:
        return self.entry.detector(self)


@dataclass(frozen=True)
class MethodOutputs:
    """Where one method's rasters go (None: not written)."""

    mask: str | os.PathLike
    clusters: str | os.PathLike | None = None
    probability: str | os.PathLike | None = None


# -- the detection pass --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DetectionInputs:
    """The co-registered pair and what the mask rules read."""

    pre_stack: str | os.PathLike
    post_stack: str | os.PathLike
    scl_pre: str | os.PathLike | None = None
    scl_post: str | os.PathLike | None = None
    band_numbers: Mapping[str, int] | None = None
    #: None: only pixels not observed (no data, SCL cloud/shadow/snow) are left out.
    mask_options: masks.MaskOptions | None = None
    features: tuple[str, ...] = idx.FEATURES
    sample_size: int = 200_000
    seed: int = 0


@dataclass
class MethodResult:
    spec: MethodSpec
    detector: Detector
    landslide: int = 0
    not_landslide: int = 0
    no_data: int = 0
    cluster_counts: list[int] = field(default_factory=list)
    #: Mapped pixels flatter than the minimum slope that the object-level slope rule dropped afterwards (with
    #: ``MaskOptions.keep_runout`` or ``slope_objects``; counted in ``not_landslide``).
    dropped_flat: int = 0

    @property
    def analysed(self) -> int:
        return self.landslide + self.not_landslide

    def count(self, mask: np.ndarray) -> None:
        """Add a written block of the method's 1/0/255 mask to its pixel counts."""
        counts = np.bincount(mask.ravel(), minlength=256)
        self.landslide += int(counts[1])
        self.not_landslide += int(counts[0])
        self.no_data += int(counts[255])


@dataclass
class DetectionResult:
    methods: dict[str, MethodResult]
    removed: dict[str, int]          # pixels removed per mask reason (masks.REASONS)
    analysed_pixels: int
    total_pixels: int
    sample_size: int
    masks_description: str
    reads: int                       # passes over the pair (1 or 2)
    #: Analysed pixels under snow the SCL did not flag (NDSI above a snow path's ``snow_ndsi``) on the pre- and the
    #: post-event date; counted only when some method's rule has a snow path (``SelectionRule.snow_scar_ndvi``).
    snowy: tuple[int, int] = (0, 0)


def _default_options() -> masks.MaskOptions:
    return masks.MaskOptions(use_scl=True, exclude_water=False, ndwi_water_threshold=None)


def detect(
    inputs: DetectionInputs,
    methods: Sequence[MethodSpec],
    outputs: Mapping[str, MethodOutputs],
    *,
    on_method_ready: Callable[[MethodResult], None] | None = None,
    progress=None,
    is_cancelled=None,
) -> DetectionResult:
    """Run every method on the pair in one detection pass (see the module doc); ``outputs`` by method name.

    ``on_method_ready`` is called (in the calling thread) as soon as a method's choice is known: a method
    without a fit before the fits start, each fitted method right after its own fit (while the others may
    still be fitting), all before the prediction pass. Raises ValueError when nothing is left to analyse.
    """
    methods = list(methods)
    if not methods:
        raise ValueError("no method chosen")
    missing = [m.name for m in methods if m.name not in outputs]
    if missing:
        raise ValueError(f"no output paths for {', '.join(missing)}")
    known = (*idx.ALL_FEATURES, *(n + LOCAL for n in idx.ALL_FEATURES))
    run_features = idx.check_names(inputs.features, known, "feature")
    detectors = {m.name: m.detector() for m in methods}
    clusterings = [m for m in methods if m.entry.takes_clusters]
    for m in methods:
        if detectors[m.name].combines:
            if not clusterings:
                raise ValueError(f"{m.label} combines the run's clusterings, but none is run; add K-means or GMM "
                                 "cluster counts, or leave it out")
            detectors[m.name].combined = tuple(c.label for c in clusterings)
    fitted = [m for m in methods if detectors[m.name].fitted]
    # Each fitted method's features in its own order, checked (with the selection rule) before anything is read.
    fits = {m.name: _fitted_features(m, run_features, known) for m in fitted}
    every_fitted = tuple(dict.fromkeys(n for names in fits.values() for n in names))
    # Features fitted as local anomalies ("dNDVI_local"): their base is computed, its background built in pass 1.
    fitted_local = tuple(dict.fromkeys(idx.local_base(n) for n in every_fitted if idx.local_base(n)))
    local = tuple(dict.fromkeys((*fitted_local, *_local_features(methods))))
    plain = tuple(n for n in dict.fromkeys((*run_features, *every_fitted)) if not idx.local_base(n))
    core = any(getattr(m.rule, "min_core_fraction", None) is not None for m in methods)
    cover = any(getattr(m.rule, "min_scar_cover", None) is not None for m in methods)
    # Raw dNDVI: the threshold, the candidates of a clustering, the local and core rules read it.
    needs_dndvi = bool(local) or any(m.kind == "threshold" or _reads_dndvi(m) for m in methods)
    # Features only the rules read (not fitted on): computed with the others, left out of the sample.
    snow_rule = next((m.rule for m in methods if getattr(m.rule, "snow_scar_ndvi", None) is not None), None)
    computed = tuple(dict.fromkeys((*plain, *local, *(("dNDVI",) if needs_dndvi else ()),
                                    *((SNOW_INDEX, "NDVI_pre", "NDSI_post") if snow_rule is not None else ()))))
    # The sample holds the computed value of every feature some method is fitted on (a local one as its base, the
    # background subtracted per method once pass 1 has built it); with local features also the raw dNDVI (the
    # candidate rule reads it) and each pixel's row and column.
    sampled = tuple(dict.fromkeys(idx.local_base(n) or n for n in every_fitted))
    if fitted_local and "dNDVI" not in sampled:
        sampled = (*sampled, "dNDVI")
    if fitted:
        most = max(m.n_clusters for m in fitted)
        if int(inputs.sample_size) < most * 10:
            raise ValueError(f"sample size {inputs.sample_size} is too small for {most} clusters; use at least "
                             f"{most * 10} (default 200000)")

    with_rules = inputs.mask_options is not None
    options = inputs.mask_options if with_rules else _default_options()
    pre_path, post_path = os.fspath(inputs.pre_stack), os.fspath(inputs.post_stack)
    _check_inputs(pre_path, post_path, inputs, options)
    needed = tuple(b for b in idx.REQUIRED_BANDS
                   if b in set(idx.bands_for_features(computed)) | set(masks.bands_for_mask(options)))
    fallback = idx.band_fallback(inputs.band_numbers)
    pre_bands = rasters.find_bands(pre_path, needed, fallback=fallback)
    post_bands = rasters.find_bands(post_path, needed, fallback=fallback)
    grid = rasters.Grid.from_path(pre_path)
    windows = list(rasters.row_windows(grid.height, grid.width, BLOCK_ROWS))
    no_data_code = masks.REASONS.index("no_data") + 1
    backgrounds = {name: idx.LocalBackground.for_grid(grid.width, min(grid.pixel_size)) for name in local}
    land_codes = [masks.KEPT] + [masks.REASONS.index(r) + 1 for r in _BACKGROUND_REASONS]
    results = {m.name: MethodResult(m, detectors[m.name]) for m in methods}
    description = options.describe() if with_rules else "none"

    def block_features(pre, post, window):
        pre_block = idx.read_bands(pre, pre_bands, window)
        post_block = idx.read_bands(post, post_bands, window)
        return pre_block, post_block, idx.change_features(pre_block, post_block, computed)

    # The shore buffer needs the whole image's water first (then the maps wait for a second pass). Its water is
    # the SCL's (class 6) where SCLs are given: NDWI > 0 also marks thin snow and shadows.
    # Where both SCLs are given, the water seen on one date only (the line moved) gets the wider buffer.
    shore_px = int(options.water_buffer_px) if options.exclude_water else 0
    scl_given = options.use_scl and bool(inputs.scl_pre or inputs.scl_post)
    shore_water = np.zeros((grid.height, -(-grid.width // 8)), np.uint8) if shore_px and scl_given else None
    moved_px = int(options.moved_water_buffer_px) if shore_px and options.moved_water_buffer_px > shore_px else 0
    moved_water = (np.zeros((grid.height, -(-grid.width // 8)), np.uint8)
                   if moved_px and options.use_scl and inputs.scl_pre and inputs.scl_post else None)

    def block_codes(pre_block, post_block, values, window):
        scl_pre = _on_grid(inputs.scl_pre, grid, window, "uint8", 0)
        scl_post = _on_grid(inputs.scl_post, grid, window, "uint8", 0)
        rows = slice(window.row_off, window.row_off + window.height)
        if shore_water is not None:
            water = np.zeros((window.height, window.width), bool)
            for scl in (scl_pre, scl_post):
                if scl is not None:
                    water |= scl == masks.WATER_SCL
            shore_water[rows] = np.packbits(water, axis=1)
        if moved_water is not None:
            moved_water[rows] = np.packbits(masks.moved_water(scl_pre, scl_post), axis=1)
        codes = masks.mask_codes(
            pre_block, post_block,
            scl_pre=scl_pre,
            scl_post=scl_post,
            slope=_slope(options, pre_path, grid, window),
            exclusion=(masks.exclusion_from_raster(options.exclusion_path, pre_path, options.exclusion_classes,
                                                   window=window) if options.exclusion_path else None),
            options=options)
        finite = np.ones(codes.shape, dtype=bool)
        for name in computed:
            finite &= np.isfinite(values[name])
        codes[(codes == masks.KEPT) & ~finite] = no_data_code
        return codes

    with contextlib.ExitStack() as stack:
        pool = ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="landslide-detect")
        # On a cancel or an error, do not wait for a fit still running: its result is dropped.
        stack.callback(pool.shutdown, wait=False, cancel_futures=True)
        pre = stack.enter_context(rasterio.open(pre_path))
        post = stack.enter_context(rasterio.open(post_path))
        dates = (pre.tags().get("SENSING_DATE", ""), post.tags().get("SENSING_DATE", ""))
        pre_profile = pre.profile

        # -- pass 1: features and codes once; one shared sample; without fitted methods, the maps too
        codes = np.zeros((grid.height, grid.width), dtype=np.uint8)
        snowy = [0, 0]
        sample = None
        if fitted:
            from .clustering import ReservoirSample

            sample = ReservoirSample(int(inputs.sample_size), len(sampled) + (2 if fitted_local else 0),
                                     seed=inputs.seed)
        one_pass = not fitted and not shore_px
        writers = _Writers(stack, results, outputs, pre.profile, description, dates) if one_pass else None
        share1 = 100.0 if one_pass else 45.0
        for n, window in enumerate(windows):
            rasters.check_cancelled(is_cancelled)
            pre_block, post_block, values = block_features(pre, post, window)
            block = block_codes(pre_block, post_block, values, window)
            codes[window.row_off:window.row_off + window.height] = block
            kept = block == masks.KEPT
            if snow_rule is not None:
                with np.errstate(invalid="ignore"):
                    for date, name in enumerate((SNOW_INDEX, "NDSI_post")):
                        snowy[date] += int(np.count_nonzero(kept & (values[name] > snow_rule.snow_ndsi)))
            for name, background in backgrounds.items():
                background.add(values[name], np.isin(block, land_codes) & np.isfinite(values[name]))
            if sample is not None:
                if options.gentle_analysed and (options.slope_path or options.dem_path):
                    with np.errstate(invalid="ignore"):  # fit on steep ground only; objects decide later
                        kept = kept & (_slope(options, pre_path, grid, window) >= options.min_slope_deg)
                columns = [values[name][kept] for name in sampled]
                if fitted_local:
                    rr, cc = np.nonzero(kept)
                    columns += [(rr + window.row_off).astype(np.float32), (cc + window.col_off).astype(np.float32)]
                sample.offer(np.stack(columns, axis=-1))
            elif writers is not None:
                writers.write(window, block, values, pool)
            rasters.report(progress, share1 * (n + 1) / len(windows))
        for background in backgrounds.values():
            background.finish()
        if shore_water is not None:
            masks.rule_out_shore(codes, shore_px, lambda r0, r1: np.unpackbits(
                shore_water[r0:r1], axis=1, count=grid.width).astype(bool))
        else:
            masks.rule_out_shore(codes, shore_px)
        if moved_water is not None:
            masks.rule_out_shore(codes, moved_px, lambda r0, r1: np.unpackbits(
                moved_water[r0:r1], axis=1, count=grid.width).astype(bool))
        removed = masks.count_reasons(codes)
        analysed = int((codes == masks.KEPT).sum())
        if analysed == 0:
            detail = ", ".join(f"{n:,} {masks.REASON_LABELS[r]}" for r, n in removed.items() if n)
            raise ValueError(f"no valid pixels after masking: of {codes.size:,} pixels {detail}; relax the masks "
                             "(or check that the images overlap and are not all cloud)")
        if one_pass:
            writers.close()
            _objects_reaching_slope(options, pre_path, results, outputs, is_cancelled)
            if on_method_ready:
                for result in results.values():
                    on_method_ready(result)
            return DetectionResult(results, removed, analysed, int(codes.size), 0, description, reads=1,
                                   snowy=tuple(snowy))

        # -- fits, side by side; progress, cancel and each method's news (as soon as its fit ends) from this thread
        rows = sample.rows if sample is not None else np.empty((0, len(sampled)), np.float32)
        del sample
        fit_args = {m.name: _method_sample(rows, sampled, fits[m.name], backgrounds) for m in fitted}
        del rows
        if on_method_ready:  # methods without a fit (the threshold) are known already
            for m in methods:
                if not detectors[m.name].fitted:
                    on_method_ready(results[m.name])
        if fitted:  # import scikit-learn here: two fits importing it at once in their threads can collide
            import sklearn.cluster  # noqa: F401
            import sklearn.mixture  # noqa: F401
        futures = {pool.submit(detectors[m.name].fit, *fit_args[m.name]): m for m in fitted}
        pending = set(futures)
        while pending:
            rasters.check_cancelled(is_cancelled)
            finished, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            for future in sorted(finished, key=lambda f: fitted.index(futures[f])):
                future.result()  # a fit's error surfaces here
                rasters.report(progress, share1 + 10.0 * (len(fitted) - len(pending)) / len(fitted))
                if on_method_ready:
                    on_method_ready(results[futures[future].name])

        # -- pass 2: predict every block once for every method, write every output
        writers = _Writers(stack, results, outputs, pre.profile, description, dates)
        for n, window in enumerate(windows):
            rasters.check_cancelled(is_cancelled)
            block = codes[window.row_off:window.row_off + window.height]
            values = None
            if (block == masks.KEPT).any():
                if core or cover:  # the block with a halo of rows, for the strongest loss nearby
                    values = _with_core(block_features, pre, post, window, codes, cover=cover)
                else:
                    _, _, values = block_features(pre, post, window)
                for name, background in backgrounds.items():
                    values[name + LOCAL] = values[name] - background.rows(window.row_off, window.height)
            writers.write(window, block, values, pool)
            rasters.report(progress, 55.0 + 45.0 * (n + 1) / len(windows))
        writers.close()
    _objects_reaching_slope(options, pre_path, results, outputs, is_cancelled)
    _write_combined(results, outputs, pre_profile, description, dates, is_cancelled)
    sampled_pixels = next((int(args[0].shape[0]) for args in fit_args.values()), 0)
    return DetectionResult(results, removed, analysed, int(codes.size), sampled_pixels, description, reads=2,
                           snowy=tuple(snowy))


def _with_core(block_features, pre, post, window, codes, *, cover: bool = False) -> dict[str, np.ndarray]:
    """A block's features plus CORE_DNDVI, the strongest NDVI loss of the analysed pixels within
    ``idx.CORE_RADIUS_PX``, and with ``cover`` SCAR_COVER (``indices.scar_cover``, against the strongest loss of
    any observed pixel); read with that many rows above and below, so blocks join seamlessly."""
    from rasterio.windows import Window

    halo = idx.CORE_RADIUS_PX
    r0 = max(0, window.row_off - halo)
    r1 = min(codes.shape[0], window.row_off + window.height + halo)
    pre_block, post_block, values = block_features(pre, post, Window(window.col_off, r0, window.width, r1 - r0))
    top = window.row_off - r0
    rows = slice(top, top + window.height)
    analysed = codes[r0:r1] == masks.KEPT
    out = {name: v[rows] for name, v in values.items()}
    out[CORE_DNDVI] = idx.strongest_loss_nearby(values["dNDVI"], analysed)[rows]
    if cover:
        # Any observed pixel may be the strongest change nearby, masked ones too: beside a cloud it is the cloud,
        # and the hazy fringe that is a small share of it is not mapped.
        out[SCAR_COVER] = idx.scar_cover(pre_block, post_block, values["dNDVI"], np.isfinite(values["dNDVI"]))[rows]
    return out


def _fitted_features(spec: MethodSpec, run_features: tuple[str, ...], known: Sequence[str]) -> tuple[str, ...]:
    """The features ``spec`` is fitted on: its own or the run's, checked; raw dNDVI added when its rules read it
    and none of them is dNDVI or a local anomaly (the fit then tells which pixels lost vegetation)."""
    from .clustering import change_centres

    try:
        names = run_features if spec.features is None else idx.check_names(spec.features, known, "feature")
        if "dNDVI" not in names and _reads_dndvi(spec) and not any(idx.local_base(n) for n in names):
            names = (*names, "dNDVI")
        change_centres(np.zeros((2, len(names))), names)  # the landslide cluster can be chosen from them
    except ValueError as error:
        raise ValueError(f"{spec.label}: {error}") from None
    return names


def _reads_dndvi(spec: MethodSpec) -> bool:
    """Whether the method's candidates or rules read a pixel's raw NDVI change."""
    rule = spec.rule
    return (spec.candidates_below is not None or bool(_local_features([spec]))
            or any(getattr(rule, name, None) is not None
                   for name in ("pixel_max_dndvi", "min_core_fraction", "min_scar_cover")))


def _method_sample(rows: np.ndarray, sampled: tuple[str, ...], names: tuple[str, ...],
                   backgrounds: Mapping[str, idx.LocalBackground]) -> tuple:
    """A fitted method's arguments of ``Detector.fit``: its columns of the shared sample in its order (a local
    anomaly: the sampled change minus the background at the pixel, whose row and column end each sample row),
    its feature names, and with local anomalies the pixels' raw dNDVI for its candidate rule."""
    out = np.empty((rows.shape[0], len(names)), np.float32)
    for j, name in enumerate(names):
        base = idx.local_base(name)
        out[:, j] = rows[:, sampled.index(base or name)]
        if base:
            out[:, j] -= backgrounds[base].at(rows[:, -2], rows[:, -1])
    if not any(idx.local_base(n) for n in names):
        return out, names  # ``Detector.fit(sample, feature_names)`` stays valid for methods on plain features
    return out, names, rows[:, sampled.index("dNDVI")].copy()


def _local_features(methods: Sequence[MethodSpec]) -> tuple[str, ...]:
    """Features whose local anomaly (minus the surroundings' median) some method's rule reads."""
    names = []
    for m in methods:
        if getattr(m.rule, "local_max_dndvi", None) is not None:
            names.append("dNDVI")
            if getattr(m.rule, "local_min_dvis", None) is not None:
                names.append("dVIS")
        if getattr(m.rule, "local_scar_dndvi", None) is not None:
            names += ["dNDVI", "dBSI", "dVIS"]
        if getattr(m.rule, "snow_scar_ndvi", None) is not None:
            names += ["NDVI_post", "BSI_post"]
    return tuple(dict.fromkeys(names))


class _Writers:
    """Every method's output datasets, open for the pass that predicts (atomic: renamed on close)."""

    def __init__(self, stack: contextlib.ExitStack, results, outputs, profile_like, description, dates):
        self.results, self.targets = results, []
        # Entered as a context (not a callback) so that an error or a cancel reaches each atomic output,
        # which then removes its temporary instead of renaming it into place.
        self._stack = stack.enter_context(contextlib.ExitStack())
        mask_profile = rasters.geotiff_profile(profile_like, 1, "uint8", 255)
        for name, result in results.items():
            detector, out = result.detector, outputs[name]
            if detector.combines:
                continue  # written from the others' final masks (``_write_combined``)
            tags = _output_tags(detector, description, dates)
            mask = _open_mask(self._stack, out.mask, mask_profile, tags)
            clusters = (self._open(out.clusters, mask_profile, "cluster", tags, Resampling.nearest)
                        if detector.gives_clusters and out.clusters else None)
            probability = (self._open(out.probability, rasters.geotiff_profile(profile_like, 1),
                                      "landslide_probability", tags, Resampling.average)
                           if detector.gives_probability and out.probability else None)
            self.targets.append((result, mask, clusters, probability))

    def _open(self, path, profile, description, tags, overviews):
        return _open_output(self._stack, path, profile, description, tags, overviews)

    def write(self, window, codes, values, pool) -> None:
        kept = codes == masks.KEPT
        kept_values = None if values is None else {name: v[kept] for name, v in values.items()}
        if kept_values is not None and kept.any():
            predictions = list(pool.map(lambda target: target[0].detector.predict(kept_values), self.targets))
        else:
            predictions = [None] * len(self.targets)
        for (result, mask_dst, clusters_dst, probability_dst), answer in zip(self.targets, predictions):
            landslide = np.zeros(codes.shape, dtype=np.uint8)
            if answer is not None:
                landslide[kept] = answer.landslide
            mask = masks.apply_codes(landslide, codes)
            mask_dst.write(mask, 1, window=window)
            result.count(mask)
            if clusters_dst is not None:
                labels = np.full(codes.shape, 255, dtype=np.uint8)
                if answer is not None:
                    labels[kept] = answer.labels
                clusters_dst.write(labels, 1, window=window)
                n = result.spec.n_clusters
                block_counts = np.bincount(labels.ravel(), minlength=256)[:n]
                result.cluster_counts = [a + int(b) for a, b in
                                         zip(result.cluster_counts or [0] * n, block_counts)]
            if probability_dst is not None:
                probability = np.full(codes.shape, np.nan, dtype=np.float32)
                if answer is not None:
                    probability[kept] = answer.probability
                probability[mask == 0] = np.where(kept[mask == 0], probability[mask == 0], 0.0)
                probability_dst.write(probability, 1, window=window)

    def close(self) -> None:
        self._stack.close()  # closes the datasets, then renames each temporary into place


def _write_combined(results, outputs, profile_like, description, dates, is_cancelled) -> None:
    """Every combining method's mask from the clusterings' final masks, block by block: 1 where any maps a
    landslide, else their 0 / 255 (the codes are the same for every method)."""
    combining = [r for r in results.values() if r.detector.combines]
    sources = [outputs[name].mask for name, r in results.items() if r.spec.entry.takes_clusters]
    if not combining or not sources:
        return
    mask_profile = rasters.geotiff_profile(profile_like, 1, "uint8", 255)
    for result in combining:
        with contextlib.ExitStack() as stack:
            readers = [stack.enter_context(rasterio.open(path)) for path in sources]
            dst = _open_mask(stack, outputs[result.spec.name].mask, mask_profile,
                             _output_tags(result.detector, description, dates))
            for window in rasters.row_windows(readers[0].height, readers[0].width, BLOCK_ROWS):
                rasters.check_cancelled(is_cancelled)
                mask = readers[0].read(1, window=window)
                for reader in readers[1:]:
                    mask[reader.read(1, window=window) == 1] = 1
                dst.write(mask, 1, window=window)
                result.count(mask)


def _output_tags(detector: Detector, description: str, dates) -> dict[str, str]:
    return {**detector.tags(), "MASKS": description, "PRE_DATE": dates[0], "POST_DATE": dates[1]}


def _open_output(stack: contextlib.ExitStack, path, profile, description, tags, overviews):
    """A band of a method's output, written to a temporary that ``stack`` renames into place on success."""
    tmp = stack.enter_context(rasters.atomic_output(path, overviews=overviews))
    dst = stack.enter_context(rasterio.open(tmp, "w", **profile))
    dst.set_band_description(1, description)
    dst.update_tags(**tags)
    return dst


def _open_mask(stack: contextlib.ExitStack, path, mask_profile, tags):
    """A method's 1/0/255 landslide mask: landslides red, the rest transparent."""
    dst = _open_output(stack, path, mask_profile, "landslide", tags, Resampling.nearest)
    dst.write_colormap(1, {0: (0, 0, 0, 0), 1: (227, 26, 28, 255), 255: (0, 0, 0, 0)})
    return dst


def _objects_reaching_slope(options: masks.MaskOptions, like_path, results, outputs, is_cancelled) -> None:
    """The object-level slope rule (``MaskOptions.keep_runout`` or ``slope_objects``) on every written mask."""
    if not options.gentle_analysed or not (options.slope_path or options.dem_path):
        return
    with contextlib.ExitStack() as stack:
        slope_path = options.slope_path
        if not slope_path:
            import tempfile

            folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="landslide_slope_"))
            slope_path = masks.write_slope(options.dem_path, like_path, os.path.join(folder, "slope.tif"),
                                           is_cancelled=is_cancelled)
        dem_on_grid = masks.SharedDemOnGrid()  # resampled once for every method's mask, not once per method
        stack.callback(dem_on_grid.clear)
        for name, result in results.items():
            rasters.check_cancelled(is_cancelled)
            if result.detector.combines:
                continue  # made from the others' masks, after this rule
            if options.keep_runout:
                dropped = masks.keep_runout_below_sources(outputs[name].mask, slope_path, options.dem_path,
                                                          options.min_slope_deg,
                                                          probability_path=outputs[name].probability,
                                                          dem_on_grid=dem_on_grid)
            else:
                dropped = masks.keep_objects_reaching_slope(outputs[name].mask, slope_path, options.min_slope_deg,
                                                            probability_path=outputs[name].probability)
            result.landslide -= dropped
            result.not_landslide += dropped
            result.dropped_flat = dropped


def _check_inputs(pre_path, post_path, inputs: DetectionInputs, options: masks.MaskOptions) -> None:
    for label, path in (("pre-event image", pre_path), ("post-event image", post_path),
                        ("pre-event SCL", inputs.scl_pre), ("post-event SCL", inputs.scl_post),
                        ("DEM", options.dem_path), ("slope", options.slope_path),
                        ("land-cover raster", options.exclusion_path)):
        if path and not os.path.exists(os.fspath(path)) and not os.fspath(path).startswith("/vsi"):
            raise FileNotFoundError(f"{label} {os.fspath(path)} does not exist")
    if options.keep_runout and options.slope_path and not options.dem_path:
        raise ValueError("keeping runout below landslide sources needs the DEM (dem_path), not only its slope")
    if options.exclusion_path and not options.exclusion_classes:
        raise ValueError("a land-cover exclusion raster was given without classes to exclude; "
                         "list the class values (e.g. 40 for ESA WorldCover cropland)")
    idx.check_same_grid(pre_path, post_path)


def _on_grid(path, grid, window, dtype, fill):
    if not path:
        return None
    return rasters.read_on_grid(path, grid, window, dtype=dtype, fill=fill)


def _slope(options: masks.MaskOptions, like_path, grid, window):
    if options.slope_path:
        return rasters.read_on_grid(options.slope_path, grid, window, resampling=Resampling.bilinear)
    if options.dem_path:
        return masks.slope_on_grid(options.dem_path, like_path, window=window)
    return None


# -- one method at a time (the single-method algorithms) ------------------------------------------------------
def write_threshold_mask(
    pre_stack_path,
    post_stack_path,
    out_path,
    *,
    threshold: float = -0.2,
    scl_pre_path=None,
    scl_post_path=None,
    options: masks.MaskOptions | None = None,
    band_numbers: Mapping[str, int] | None = None,
    progress=None,
    is_cancelled=None,
) -> dict[str, int]:
    """The reference study's baseline: 1 where NDVI dropped by more than |threshold|, in one pass.

    Without ``options`` only pixels not observed (no data, SCL cloud/shadow/snow) are left out (255).
    With ``options`` the analysis mask applies: not-observed pixels (SCL, no DEM) are 255, ruled-out
    pixels (water, flat, excluded land cover, not vegetated before) are 0. Returns counts:
    ``landslide``, ``not_landslide``, ``no_data`` (output values 1, 0, 255), ``total``, and
    ``removed_<reason>`` pixels removed per reason (``masks.REASONS``).
    """
    spec = MethodSpec("threshold", threshold=threshold)
    result = detect(DetectionInputs(pre_stack_path, post_stack_path, scl_pre_path, scl_post_path, band_numbers,
                                    options, features=("dNDVI",)),
                    [spec], {spec.name: MethodOutputs(out_path)}, progress=progress, is_cancelled=is_cancelled)
    method = result.methods[spec.name]
    counts = {"landslide": method.landslide, "not_landslide": method.not_landslide, "no_data": method.no_data,
              "total": result.total_pixels}
    counts.update({f"removed_{r}": n for r, n in result.removed.items()})
    return counts


def cluster_change(
    pre_stack_path: str | os.PathLike,
    post_stack_path: str | os.PathLike,
    *,
    cluster_path: str | os.PathLike,
    mask_path: str | os.PathLike,
    probability_path: str | os.PathLike | None = None,
    method: str = "kmeans",
    n_clusters: int = 3,
    features: Sequence[str] | None = None,
    mask_options: masks.MaskOptions | None = None,
    scl_pre_path: str | os.PathLike | None = None,
    scl_post_path: str | os.PathLike | None = None,
    sample_size: int = 200_000,
    seed: int = 0,
    band_numbers: Mapping[str, int] | None = None,
    candidates_below: float | None = None,
    rule=None,
    progress=None,
    is_cancelled=None,
):
    """Cluster the change between a co-registered pre/post reflectance pair and map the landslide cluster.

    One clustering through :func:`detect`: features (default ``indices.FEATURES``) and the analysis mask
    (``mask_options``; None = only pixels not observed are left out) computed in pass 1 with a reservoir
    sample of ``sample_size`` analysed pixels, the model fitted on it (``clustering.fit_clusters``), every
    block predicted in pass 2. Writes the clusters, the landslide mask and (``method="gmm"``) the
    probability; returns a ``clustering.ClusterResult``.
    """
    from .clustering import METHODS, ClusterResult

    method = str(method).lower()
    if method not in METHODS:
        raise ValueError(f"method '{method}' unknown; use one of {', '.join(METHODS)}")
    spec = MethodSpec(method, int(n_clusters), seed=int(seed), candidates_below=candidates_below, rule=rule)
    inputs = DetectionInputs(pre_stack_path, post_stack_path, scl_pre_path, scl_post_path, band_numbers,
                             mask_options, features=tuple(idx.FEATURES if features is None else features),
                             sample_size=int(sample_size), seed=int(seed))
    outputs = {spec.name: MethodOutputs(mask_path, cluster_path, probability_path if method == "gmm" else None)}
    result = detect(inputs, [spec], outputs, progress=progress, is_cancelled=is_cancelled)
    found = result.methods[spec.name]
    return ClusterResult(
        model=found.detector.model, note=found.detector.warning or "", cluster_counts=found.cluster_counts,
        landslide_pixels=found.landslide,
        analysed_pixels=result.analysed_pixels, total_pixels=result.total_pixels, removed=result.removed,
        cluster_path=os.fspath(cluster_path), mask_path=os.fspath(mask_path),
        probability_path=os.fspath(probability_path) if (probability_path and method == "gmm") else None,
        masks_description=result.masks_description)
