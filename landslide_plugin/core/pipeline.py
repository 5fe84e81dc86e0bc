"""One-step landslide mapping: products → aligned stacks → masks and clusters → polygons → evaluation.

Every stage is a function of its own module; this module only chains them, names the files, and
makes the run all-or-nothing: it works in a hidden folder beside the destination and moves the
finished files into place at the end, so a failed or cancelled run leaves the destination as it was.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from . import clustering as clustering_module
from . import defaults, rasters
from . import masks as masks_module
from .detection import MethodOutputs, MethodSpec

GEOTIFF_SUFFIXES = (".tif", ".tiff")


#: A detection method to run (``detection.MethodSpec``: kind, cluster count; the registry lists the kinds).
Method = MethodSpec


#: The methods a one-step run maps with by default: the threshold baseline and the change clusterings
#: that scored best on the scenario benchmark (bench/README.md): K-means 5 on the change (features None: the
#: clustering options' ``defaults.CLUSTER_FEATURES``), GMM 5 on the change beyond the surroundings
#: (``defaults.GMM_FEATURES``), fitted from ``defaults.GMM_STARTS`` seeds.
DEFAULT_METHODS = (MethodSpec("threshold"), *(MethodSpec("kmeans", k) for k in defaults.KMEANS_CLUSTERS),
                   *(MethodSpec("gmm", k, features=defaults.GMM_FEATURES, starts=defaults.GMM_STARTS)
                     for k in defaults.GMM_CLUSTERS),
                   *((MethodSpec("either"),) if defaults.EITHER_CLUSTERING else ()))
DEFAULT_PRIMARY = defaults.PRIMARY

#: The reference study's four clusterings plus its threshold baseline.
REFERENCE_STUDY_METHODS = (Method("threshold"), Method("kmeans", 2), Method("kmeans", 3),
                           Method("gmm", 2), Method("gmm", 3))


def default_method(name: str) -> Method:
    """'gmm5' -> the method as a one-step run makes it by default: a default method (``DEFAULT_METHODS``) with its
    own settings (GMM 5's features), any other with the clustering options' (``Method.from_name``)."""
    method = Method.from_name(name)
    return next((m for m in DEFAULT_METHODS if m.name == method.name), method)


def default_masks() -> masks_module.MaskOptions:
    """The one-step run's mask rules: SCL, water (SCL and NDWI) and its shore, slope with a DEM (runout below a
    steep source kept), vegetated before."""
    return masks_module.MaskOptions(use_scl=True, exclude_dark=defaults.EXCLUDE_DARK,
                                    exclude_water=defaults.EXCLUDE_WATER,
                                    ndwi_water_threshold=defaults.NDWI_WATER_THRESHOLD,
                                    water_buffer_px=defaults.WATER_BUFFER_PX,
                                    moved_water_buffer_px=defaults.MOVED_WATER_BUFFER_PX,
                                    min_slope_deg=defaults.MIN_SLOPE_DEG, keep_runout=defaults.KEEP_RUNOUT,
                                    min_ndvi_pre=defaults.MIN_NDVI_PRE, snow_ndsi_pre=defaults.SNOW_NDSI,
                                    snow_min_ndvi_pre=defaults.SNOW_MIN_NDVI_PRE)


@dataclass(frozen=True)
class AlignOptions:
    """Co-registration of the post image onto the pre image (``alignment.coregister_stack``)."""

    enabled: bool = True
    #: SWIR-1 changes less with the season than NIR, so it aligns cross-season pairs more reliably.
    band: str = defaults.ALIGN_BAND
    gradient: bool = defaults.ALIGN_GRADIENT
    motion: str = defaults.ALIGN_MOTION
    max_shift_px: float = defaults.MAX_SHIFT_PX
    #: "cubic" or "bilinear" (``alignment.RESAMPLINGS``).
    resampling: str = defaults.ALIGN_RESAMPLING


@dataclass(frozen=True)
class PolygonOptions:
    """Cleaning before polygons: opening radius and minimum mapping unit."""

    opening_px: int = defaults.OPENING_PX
    min_area_m2: float = defaults.MIN_AREA_M2


@dataclass(frozen=True)
class ClusteringOptions:
    """How the clusterings map change (``detection.MethodSpec`` settings shared by every clustering; a method that
    states its own features, as the default GMM 5 does, is fitted on those instead of ``features``).

    The default clusters only the pixels that lost vegetation at all, on features that tell kinds of
    change apart (fresh scars brighten in the visible and gain bare soil; burns, shadows and haze do
    not), and takes every cluster a stated rule calls landslide-like (fitted on the change beyond the
    surroundings, also a cluster whose centre brightened 0.02 more than its surroundings while it lost NDVI
    and gained bare soil beyond them), then the pixels in them whose NDVI
    fell by more than 0.15 and by more than 0.1 beyond the median of their surroundings (800 m: season,
    drought, haze and sun angle change whole hillsides; a scar is local), or that brightened in the visible
    by 0.02 more than their surroundings (fresh soil is brighter than dried grass), and whose loss is at
    least half the strongest loss within 2 px (at least half covered, not the blurred fringe of a scar);
    and, clustered or not, every pixel whose change beyond its surroundings is scar-like (dNDVI < -0.2, soil
    and brightness gained: a scar in land that greened up between a winter and a summer image).
    ``REFERENCE_STUDY_CLUSTERING``
    is the reference study's way: every analysed pixel, NDVI and BSI of both dates and their changes, the
    single cluster with the largest NDVI loss and bare-soil gain.
    """

    #: Features of every clustering that states none (``MethodSpec.features``).
    features: tuple[str, ...] = defaults.CLUSTER_FEATURES
    candidates_below: float | None = -0.1
    #: ``centre_local_vis`` acts only on a clustering fitted on dVIS_local (the default GMM 5); its description
    #: leaves it out for the others.
    rule: object | None = field(default_factory=lambda: clustering_module.SelectionRule(
        max_dndvi=-0.15, min_dbsi=0.05, min_dvis=0.02, pixel_max_dndvi=-0.15, local_max_dndvi=-0.1,
        local_min_dvis=0.02, min_core_fraction=defaults.CORE_FRACTION, min_scar_cover=defaults.SCAR_COVER,
        local_scar_dndvi=-0.2, centre_local_vis=True, magnitude_at_core=defaults.MAGNITUDE_AT_CORE,
        snow_scar_ndvi=defaults.SNOW_SCAR_NDVI, snow_ndsi=defaults.SNOW_NDSI,
        snow_min_ndvi_pre=defaults.SNOW_MIN_NDVI_PRE, fallback=True))


REFERENCE_STUDY_CLUSTERING = ClusteringOptions(features=("NDVI_pre", "BSI_pre", "NDVI_post", "BSI_post", "dNDVI",
                                                         "dBSI"), candidates_below=None, rule=None)


@dataclass(frozen=True)
class MappingOptions:
    """Every setting of a one-step run (the inputs are arguments of ``map_landslides``)."""

    methods: tuple[Method, ...] = DEFAULT_METHODS
    #: Method whose mask becomes polygons (default: DEFAULT_PRIMARY if run, else the last clustering).
    primary: str | None = None
    clustering: ClusteringOptions = ClusteringOptions()
    threshold: float = defaults.THRESHOLD
    #: Mask rules (the DEM and land-cover paths come from the inputs); None: no mask at all.
    masks: masks_module.MaskOptions | None = field(default_factory=default_masks)
    align: AlignOptions = AlignOptions()
    polygons: PolygonOptions = PolygonOptions()
    sample_size: int = defaults.SAMPLE_SIZE
    seed: int = defaults.SEED
    #: Band numbers for stacks without band descriptions (B02, B03, B04, B8A, B11 -> 1-based number).
    band_numbers: dict[str, int] | None = None
    #: How products of several dates of a period are composited per pixel (``composite.METHODS``).
    pre_composite: str = "median"
    post_composite: str = "median"
    #: Why these images (e.g. the summary of "Find a pre/post pair for an event"), for the report.
    pair_summary: str = ""

    def __post_init__(self):
        from .composite import METHODS

        for name in ("pre_composite", "post_composite"):
            if getattr(self, name) not in METHODS:
                raise ValueError(f"{name} {getattr(self, name)!r} is unknown; choose {' or '.join(METHODS)}")


@dataclass
class MappingResult:
    folder: Path
    pre_stack: Path
    pre_scl: Path | None
    post_aligned: Path
    post_scl: Path | None
    shift_px: tuple[float, float] | None
    correlation: float | None
    masks: dict[str, Path] = field(default_factory=dict)
    clusters: dict[str, Path] = field(default_factory=dict)
    probabilities: dict[str, Path] = field(default_factory=dict)
    #: method name -> (number of clusters, the landslide clusters' indexes; none when nothing was clustered)
    landslide_clusters: dict[str, tuple[int, int]] = field(default_factory=dict)
    primary: str = ""
    polygons: Path | None = None
    polygon_count: int = 0
    report: Path | None = None
    metrics_csv: Path | None = None
    metrics_json: Path | None = None
    metrics: dict[str, dict] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)
    #: Warnings the user must see (implausible maps, a pair that hardly matches, an empty reference).
    warnings: list[str] = field(default_factory=list)
    #: method name -> share of the analysed pixels flagged as landslide
    flagged_share: dict[str, float] = field(default_factory=dict)
    #: With a reference: the report's short answer (which map matched it best, and the primary method's place).
    verdict: str | None = None


def is_prepared_stack(path: str | os.PathLike) -> bool:
    """A GeoTIFF stack (this plugin's or any raster with band descriptions), not a product."""
    return Path(path).suffix.lower() in GEOTIFF_SUFFIXES


class _Stages:
    """Splits 0..100 % over the run's stages and checks cancellation between them."""

    def __init__(self, weights: dict[str, float], progress, is_cancelled):
        total = sum(weights.values())
        self.spans, start = {}, 0.0
        for name, weight in weights.items():
            self.spans[name] = (start, start + 100.0 * weight / total)
            start = self.spans[name][1]
        self.progress, self.is_cancelled = progress, is_cancelled

    def callback(self, name: str) -> Callable[[float], None]:
        lo, hi = self.spans[name]
        rasters.check_cancelled(self.is_cancelled)
        return lambda pct: rasters.report(self.progress, lo + (hi - lo) * pct / 100.0)


class _Beside:
    """A stage run in a helper thread beside the calling thread's own stages (the second core).

    ``work(is_cancelled, progress)`` never sees the user's callbacks: it gets its own cancel flag, which is set
    when the calling thread stops for any reason (an error, or the user's cancel seen while waiting in
    :meth:`result`), and a progress it reports into, which the calling thread passes on while it waits; so
    progress, cancellation and every message stay on the calling thread. Used as a context: leaving it, in any
    way, stops the helper and waits for it, so nothing is still writing when the working folder is committed
    or removed.
    """

    #: How often the calling thread asks the user's cancel while it waits for the helper (seconds).
    POLL = 0.2

    def __init__(self, name: str, work: Callable[[Callable[[], bool]], object]):
        import threading

        self._stop, self._done = threading.Event(), threading.Event()
        self._value = self._error = self._percent = None
        self._work = work
        self._thread = threading.Thread(target=self._run, name=f"landslide-{name}", daemon=True)

    def _run(self) -> None:
        try:
            self._value = self._work(self._stop.is_set, self._report)
        except BaseException as exc:  # handed to the calling thread by result()
            self._error = exc
        finally:
            self._done.set()

    def _report(self, percent: float) -> None:
        self._percent = percent  # read by the calling thread (a float: no lock needed)

    def __enter__(self) -> _Beside:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def result(self, is_cancelled=None, progress=None):
        """Wait for the helper (asking ``is_cancelled`` and passing its progress to ``progress`` every ``POLL``
        s), then its value or its error."""
        while not self._done.wait(self.POLL):
            if progress is not None and self._percent is not None:
                progress(self._percent)
            if is_cancelled is not None and is_cancelled():
                self._stop.set()
                self._thread.join()
                raise rasters.Cancelled("cancelled by the user")
        if self._error is not None:
            raise self._error
        if progress is not None and self._percent is not None:
            progress(self._percent)  # where the helper got to, even when it ended before the first poll
        return self._value


#: A method that flags more than this share of the analysed pixels is implausible: real events
#: rarely bare more than a few percent of a scene, unrelated or unaligned images do.
IMPLAUSIBLE_SHARE = 0.2
#: Below this correlation of the pre and post SWIR-1 edges (gradient magnitudes) the two hardly show the same ground.
#: On the 14 scenario pairs it is 0.20-0.71 (a cloudy pair lowest), on pairs of different scenes -0.06-0.04; the
#: plain SWIR-1 correlation was 0.00-0.91 on the true pairs (winter fields and grass turn over by summer) and up to
#: 0.20 on wrong ones.
LOW_PAIR_CORRELATION = 0.1
#: Above this share of the analysed pixels under snow the SCL missed on a date, the run says what it means.
SNOW_WARNING_SHARE = 0.01


def snow_warnings(snowy: tuple[int, int], analysed: int) -> list[str]:
    """What thin snow the SCL missed means for the maps, for each date where it covers more than
    ``SNOW_WARNING_SHARE`` of the analysed pixels (``detection.DetectionResult.snowy``: pre, post)."""
    pre, post = snowy
    out = []
    if analysed and pre > SNOW_WARNING_SHARE * analysed:
        out.append(f"{_percent(pre, analysed)} of the analysed pixels lie under thin snow on the pre-event date that "
                   f"the SCL did not flag (NDSI above {defaults.SNOW_NDSI:g}): the pre image cannot show what was lost "
                   "there, so the clusterings map such pixels from the post image alone (bare ground in land green "
                   "after). A rock outcrop under the snow looks alike: check those scars, or pick a snow-free "
                   "pre-event image.")
    if analysed and post > SNOW_WARNING_SHARE * analysed:
        out.append(f"{_percent(post, analysed)} of the analysed pixels lie under thin snow on the post-event date "
                   f"that the SCL did not flag (NDSI above {defaults.SNOW_NDSI:g}): a scar under snow cannot be seen, "
                   "and snow-covered vegetation loses NDVI like a scar. Pick a snow-free post-event image for these "
                   "areas.")
    return out


def planned_files(methods: Sequence[Method], primary: str, *, pre_is_stack: bool, post_has_scl: bool,
                  pre_has_scl: bool, slope: bool, reference: bool, pre_composite: bool = False,
                  post_composite: bool = False) -> list[str]:
    """The names a run writes into its output folder, known before any work (to claim them up front)."""
    names = [] if pre_is_stack else ["pre_stack.tif"] + (["pre_scl.tif"] if pre_has_scl else [])
    names += [f"{period}_clear_count.tif" for period, made in (("pre", pre_composite), ("post", post_composite))
              if made]
    names.append("post_aligned.tif")
    if post_has_scl:
        names.append("post_aligned_scl.tif")
    if slope:
        names.append("slope.tif")
    for method in methods:
        names.append(f"mask_{method.name}.tif")
        if method.kind != "threshold":
            names.append(f"clusters_{method.name}.tif")
        if method.kind == "gmm":
            names.append(f"probability_{method.name}.tif")
    names.append(f"landslides_{primary}.geojson")
    if reference:
        names += ["report.html", "metrics.csv", "metrics.json", "confusion.png", "overlay.png"]
    return names


@rasters.bounded_gdal_cache()  # the run's memory stays bounded whatever GDAL's cache is outside it
def map_landslides(
    pre: Sequence[str | os.PathLike],
    post: Sequence[str | os.PathLike],
    folder: str | os.PathLike,
    options: MappingOptions | None = None,
    *,
    pre_scl: str | os.PathLike | None = None,
    post_scl: str | os.PathLike | None = None,
    aoi=None,
    aoi_crs: str = "EPSG:4326",
    dem: str | os.PathLike | None = None,
    exclusion: str | os.PathLike | None = None,
    reference: str | os.PathLike | None = None,
    reference_geometries: list | None = None,
    reference_crs=None,
    log: Callable[[str], None] | None = None,
    step: Callable[[int, int, str], None] | None = None,
    progress=None,
    is_cancelled=None,
) -> MappingResult:
    """Map landslides from a pre-event and a post-event image into ``folder``.

    ``pre``/``post``: one or more Sentinel-2 L2A products (.zip, .SAFE, MTD_MSIL2A.xml) each, or a single
    prepared GeoTIFF stack each (then ``pre_scl``/``post_scl`` are optional SCL rasters; a stack is read
    where it is, never copied, moved or changed). Products of one day are tiles of one date (a mosaic);
    products of several days are dates of the period (told by their metadata) and make a per-pixel
    composite of the clear observations (``options.pre_composite``/``post_composite``: median or greenest
    pixel, ``composite.composite_l2a``), used like one date. Files written (names fixed, so a second
    run replaces the first): ``pre_stack.tif`` (+ ``pre_scl.tif``, products only), ``pre_clear_count.tif`` /
    ``post_clear_count.tif`` (composites only: clear observations per pixel), ``post_aligned.tif``
    (+ ``post_aligned_scl.tif``), ``mask_<method>.tif`` per method, ``clusters_<method>.tif``,
    ``probability_gmm<k>.tif``, ``landslides_<primary>.geojson``, ``slope.tif`` (with a DEM and masks),
    and with a reference ``report.html``, ``metrics.csv``, ``metrics.json`` (their parameters say which
    images were used, and ``options.pair_summary`` why).

    The folder belongs to the user (``output_folder.OutputFolder``): only files an earlier run of the
    plugin wrote, unchanged since, are replaced; a run that would replace anything else stops before
    any work. Bad input stops in seconds with one sentence (``preflight``).

    Inputs are arguments (files, area, reference); every setting travels in ``options``
    (:class:`MappingOptions`). ``options.masks=None`` is the reference study's setup: no mask rule at all
    (SCL included); only pixels without data are left out.

    ``log(text)`` receives each line of the run's log as soon as it is known (a line may carry a table on
    the lines after its first); ``step(number, count, title)`` is called as each step starts ("Co-registering
    the post-event image onto the pre-event image", step 4 of 8).
    """
    from . import alignment, detection, masks, output_folder, polygons, preflight, products

    options = options or MappingOptions()
    methods, primary, threshold = list(options.methods), options.primary, options.threshold
    sample_size, seed, band_numbers = options.sample_size, options.seed, options.band_numbers
    align, shapes_options = options.align, options.polygons
    coregister, align_band, align_gradient = align.enabled, align.band, align.gradient
    motion, max_shift_px = align.motion, align.max_shift_px
    opening_px, min_area_m2 = shapes_options.opening_px, shapes_options.min_area_m2
    use_masks = options.masks is not None
    if not methods:
        raise ValueError("no method chosen")
    names = [m.name for m in methods]
    primary = primary or next((n for n in (DEFAULT_PRIMARY, "gmm3", "kmeans3") if n in names), names[-1])
    if primary not in names:
        raise ValueError(f"primary method '{primary}' is not among the methods run ({', '.join(names)})")
    folder = Path(folder)
    lines: list[str] = []

    def say(text: str) -> None:
        lines.append(text)
        if log:
            log(text)

    method_labels = ", ".join(m.label for m in methods)
    plan = _Steps(step, [
        ("check", "Checking the inputs and the output folder"),
        ("pre", "Preparing the pre-event image"),
        ("post", "Preparing the post-event image"),
        ("align", f"Co-registering the post-event image onto the pre-event image ({align.band})"
         if coregister else "Taking the post-event image as it is (co-registration off)"),
        ("slope", "Computing the slope from the DEM") if dem and options.masks is not None else None,
        ("detect", f"Detecting landslides: {method_labels}"),
        ("maps", "Writing the landslide maps") if any(m.entry.fitted for m in methods) else None,
        ("polygons", f"Turning the {_label_of(methods, primary)} mask into polygons"),
        ("evaluate", "Scoring every method against the reference and writing the report")
        if reference is not None or reference_geometries is not None else None,
        ("commit", "Moving the results into the output folder"),
    ])
    plan.begin("check")

    # 0. the inputs, checked in seconds before anything is written
    pre_inputs, post_inputs = _as_paths(pre, "pre-event"), _as_paths(post, "post-event")
    pre_is_stack, post_is_stack = _is_stack_input(pre_inputs), _is_stack_input(post_inputs)
    needed_bands = tuple(dict.fromkeys((*REQUIRED_STACK_BANDS, align_band)))
    for label, stack_inputs, is_stack in (("pre-event image", pre_inputs, pre_is_stack),
                                          ("post-event image", post_inputs, post_is_stack)):
        if is_stack:
            preflight.check_stack(stack_inputs[0], label, needed_bands=needed_bands, band_numbers=band_numbers)
    # Products of several dates make a per-pixel composite of the period, on its oldest date's grid.
    pre_print = preflight.footprint(pre_inputs, "pre-event image", aoi=None if pre_is_stack else aoi,
                                    aoi_crs=aoi_crs, several_dates=True)
    post_print = preflight.footprint(post_inputs, "post-event image", aoi=None if post_is_stack else aoi,
                                     aoi_crs=aoi_crs, several_dates=True)
    preflight.check_overlap(pre_print, post_print)
    pre_dates, post_dates = _dates(pre_inputs, pre_is_stack), _dates(post_inputs, post_is_stack)
    composite_bytes = max(_composite_bytes(pre_print, pre_dates), _composite_bytes(post_print, post_dates))
    for label, scl, like in (("pre-event SCL", pre_scl, pre_print), ("post-event SCL", post_scl, post_print)):
        if scl:
            preflight.check_scl(scl, label, like)
    pre_has_scl = not pre_is_stack or bool(pre_scl)
    post_has_scl = not post_is_stack or bool(post_scl)
    with_reference = reference is not None or reference_geometries is not None

    weights = {"prepare": 2.0, "align": 1.5, "detect": 0.5 + 0.5 * len(methods), "polygons": 0.5, "evaluate": 1.0}
    stages = _Stages(weights, progress, is_cancelled)
    if use_masks:
        mask_options = dataclasses.replace(options.masks, dem_path=str(dem) if dem else None,
                                           exclusion_path=str(exclusion) if exclusion else None, slope_path=None)
        if mask_options.exclusion_path and not mask_options.exclusion_classes:
            raise ValueError("a land-cover exclusion raster was given without classes to exclude; list the class "
                             "values (e.g. 40,50 for ESA WorldCover cropland and built-up)")
    else:  # the reference study's setup: no rule at all, SCL included; only pixels without data are left out
        mask_options = masks.MaskOptions(use_scl=False, exclude_dark=False, exclude_water=False,
                                         ndwi_water_threshold=None, min_ndvi_pre=None)
        say("masks off: no SCL, water, slope, land-cover or vegetation rule (the reference study's setup)")
    planned = planned_files(methods, primary, pre_is_stack=pre_is_stack, pre_has_scl=pre_has_scl,
                            post_has_scl=post_has_scl, slope=bool(mask_options.dem_path), reference=with_reference,
                            pre_composite=len(pre_dates) > 1, post_composite=len(post_dates) > 1)
    exclude_dark = bool(use_masks and mask_options.exclude_dark)  # a composite's clear observations, as the masks
    for text in options.pair_summary.strip().splitlines():
        say(f"why these images: {text.strip()}")
    inputs = [*pre_inputs, *post_inputs, pre_scl, post_scl, dem, exclusion, reference]

    # Stages run beside others in helper threads (``_Beside``) are stopped and waited for before the folder
    # is committed or cleaned up: the ExitStack closes first.
    with output_folder.OutputFolder(folder, inputs=inputs) as out, contextlib.ExitStack() as beside:
        out.claim(planned)
        preflight.check_output_folder(folder, needed_bytes=preflight.estimate_run_bytes(
            pre_print.width, pre_print.height, bands=pre_print.count, methods=len(methods),
            cluster_methods=sum(m.kind != "threshold" for m in methods),
            probability_methods=sum(m.kind == "gmm" for m in methods), with_dem=bool(mask_options.dem_path),
            with_reference=with_reference) + composite_bytes)
        work = out.work
        outputs: dict[str, Path] = {}
        warnings: list[str] = []

        # 1. reflectance stacks
        stage = stages.callback("prepare")
        plan.begin("pre")
        pre_stack, pre_scl_path, pre_images = _prepare(
            products, pre_inputs, pre_scl, work / "pre_stack.tif", work / "pre_scl.tif", aoi, aoi_crs,
            lambda p: stage(p / 2), is_cancelled, say, "pre-event", dates=pre_dates, method=options.pre_composite,
            count_out=work / "pre_clear_count.tif", exclude_dark=exclude_dark)
        plan.begin("post")
        post_stack, post_scl_path, post_images = _prepare(
            products, post_inputs, post_scl, work / "post_stack.tif", work / "post_scl.tif", aoi, aoi_crs,
            lambda p: stage(50 + p / 2), is_cancelled, say, "post-event", dates=post_dates,
            method=options.post_composite, count_out=work / "post_clear_count.tif", exclude_dark=exclude_dark,
            overviews=False)  # a working file: the aligned stack is what the user keeps
        for period, images in (("pre", pre_images), ("post", post_images)):
            if images.count is not None:
                outputs[f"{period}_clear_count.tif"] = images.count
        for label, stack, scl in (("pre-event image", pre_stack, pre_scl_path),
                                  ("post-event image", post_stack, post_scl_path)):
            preflight.require_valid_pixels(stack, label, scl_path=scl, use_scl=use_masks)
        if not pre_is_stack:
            outputs["pre_stack.tif"] = pre_stack
            if pre_scl_path:
                outputs["pre_scl.tif"] = pre_scl_path

        # 2. co-registration of the post image onto the pre grid; beside it, the slope from the DEM (it needs only
        #    the pre-event grid, and align leaves most of the second core idle)
        stage = stages.callback("align")
        plan.begin("align")
        if mask_options.dem_path:
            slope_path, dem_path, slope_grid = work / "slope.tif", mask_options.dem_path, str(pre_stack)
            slope_job = beside.enter_context(_Beside("slope", lambda stop, _: masks.write_slope(
                dem_path, slope_grid, str(slope_path), is_cancelled=stop)))
        shift = correlation = None
        aligned, aligned_scl = work / "post_aligned.tif", (work / "post_aligned_scl.tif" if post_scl_path else None)
        if coregister:
            result = alignment.coregister_stack(
                str(pre_stack), str(post_stack), str(aligned),
                moving_scl_path=str(post_scl_path) if post_scl_path else None,
                out_scl_path=str(aligned_scl) if aligned_scl else None,
                reference_scl_path=str(pre_scl_path) if pre_scl_path else None,
                band=align_band, band_number=(band_numbers or {}).get(align_band), use_gradient=align_gradient,
                motion=motion, max_shift_px=max_shift_px, resampling=align.resampling, progress=stage,
                is_cancelled=is_cancelled)
            for message in result.messages:
                say(message)
            shift, correlation = tuple(result.shift_px), float(result.correlation)
            how = f"{motion}, {align_band}{' gradient' if align_gradient else ''}"
            pixel_x, pixel_y = rasters.Grid.from_path(pre_stack).pixel_size
            say(f"co-registration ({how}): the post-event image was shifted by x {shift[0]:+.2f} px "
                f"({shift[0] * pixel_x:+.1f} m), y {shift[1]:+.2f} px ({shift[1] * pixel_y:+.1f} m); correlation "
                f"{correlation:.2f}")
        else:
            shutil.copyfile(post_stack, aligned)  # a copy: the input itself is never an output
            if not post_is_stack:  # the working stack was written without overviews; the kept copy has them
                from rasterio.enums import Resampling

                rasters.build_overviews(aligned, Resampling.average)
            if aligned_scl:
                shutil.copyfile(post_scl_path, aligned_scl)
            say("co-registration skipped: the post image is used as it is")
        outputs["post_aligned.tif"] = aligned
        if aligned_scl:
            outputs["post_aligned_scl.tif"] = aligned_scl
        # The pair's correlation (a check for the user) stays in this thread: beside the detection, its reads filled
        # GDAL's cache from a second thread, whose freed blocks the allocator keeps (+300 MB at the run's peak).
        pair_r = _pair_correlation(pre_stack, aligned, band_numbers)
        if pair_r is not None and pair_r < LOW_PAIR_CORRELATION:
            warnings.append(
                f"The pre- and post-event images hardly match (SWIR-1 edge correlation {pair_r:.2f}): they may show "
                "different places, be misaligned or be mostly cloud or noise. Check the pair before trusting any "
                "map.")

        # 3. the slope, once for every method and the polygons (computed beside the co-registration)
        if mask_options.dem_path:
            plan.begin("slope")
            slope_job.result(is_cancelled)
            mask_options = dataclasses.replace(mask_options, slope_path=str(slope_path))
            outputs[slope_path.name] = slope_path
        # 4. every method
        final_pre = Path(pre_stack) if pre_is_stack else folder / "pre_stack.tif"
        final_pre_scl = (Path(pre_scl_path) if pre_is_stack else folder / "pre_scl.tif") if pre_scl_path else None
        mapped = MappingResult(folder, final_pre, final_pre_scl, folder / "post_aligned.tif",
                               folder / "post_aligned_scl.tif" if aligned_scl else None,
                               shift, correlation, primary=primary, log=lines, warnings=warnings)
        # One detection pass feeds every method: features and mask codes once, one shared sample.
        cluster_options = options.clustering
        specs = [dataclasses.replace(m, threshold=threshold, seed=seed) if not m.entry.takes_clusters else
                 dataclasses.replace(m, seed=seed, candidates_below=cluster_options.candidates_below,
                                     rule=cluster_options.rule) for m in methods]
        detection_outputs = {}
        for spec in specs:
            entry = spec.entry
            detection_outputs[spec.name] = MethodOutputs(
                work / f"mask_{spec.name}.tif",
                work / f"clusters_{spec.name}.tif" if entry.takes_clusters else None,
                work / f"probability_{spec.name}.tif" if entry.gives_probability else None)

        ready: list[str] = []

        def method_ready(found) -> None:
            """Said as soon as a method's choice is known (after its fit), from this thread."""
            say(_method_news(found))
            warning = getattr(found.detector, "warning", None)
            if warning:
                say(f"WARNING {found.spec.label}: {warning}")
            ready.append(found.spec.name)
            if len(ready) == len(specs) and any(spec.entry.fitted for spec in specs):
                plan.begin("maps")  # every choice made: the prediction pass writes every map now

        plan.begin("detect")
        detected = detection.detect(
            detection.DetectionInputs(pre_stack, aligned, pre_scl_path, aligned_scl, band_numbers, mask_options,
                                      features=tuple(cluster_options.features), sample_size=sample_size, seed=seed),
            specs, detection_outputs, on_method_ready=method_ready, progress=stages.callback("detect"),
            is_cancelled=is_cancelled)
        removed = ", ".join(f"{masks.REASON_LABELS[r]} {n:,}" for r, n in detected.removed.items() if n)
        say(f"analysed {detected.analysed_pixels:,} of {detected.total_pixels:,} pixels "
            f"({_percent(detected.analysed_pixels, detected.total_pixels)}; masks: {detected.masks_description}); "
            f"left out: {removed or 'none'}")
        warnings.extend(snow_warnings(detected.snowy, detected.analysed_pixels))
        hectares_per_pixel = _pixel_area_m2(pre_stack) / 10_000
        for spec in specs:
            found = detected.methods[spec.name]
            written = detection_outputs[spec.name]
            for path in (written.mask, written.clusters, written.probability):
                if path is not None:
                    outputs[Path(path).name] = Path(path)
            mapped.masks[spec.name] = folder / Path(written.mask).name
            if written.clusters is not None:
                mapped.clusters[spec.name] = folder / Path(written.clusters).name
                model = getattr(found.detector, "model", None)
                mapped.landslide_clusters[spec.name] = (
                    spec.n_clusters, tuple(model.landslide_clusters) if model is not None else ())
            if written.probability is not None:
                mapped.probabilities[spec.name] = folder / Path(written.probability).name
            share = found.landslide / detected.analysed_pixels if detected.analysed_pixels else 0.0
            mapped.flagged_share[spec.name] = share
            area = f", {found.landslide * hectares_per_pixel:,.1f} ha" if hectares_per_pixel else ""
            of_analysed = _percent(found.landslide, detected.analysed_pixels)
            flat = ""
            if found.dropped_flat:
                kept = "not runout below a landslide source" if mask_options.keep_runout else "in no object reaching it"
                flat = (f"; {found.dropped_flat:,} more were flatter than {mask_options.min_slope_deg:g} deg and "
                        f"{kept}, so left out")
            say(f"{spec.label}: {found.landslide:,} landslide pixels{area} ({of_analysed} of the analysed pixels)"
                f"{flat}")
            if share > IMPLAUSIBLE_SHARE:
                warnings.append(
                    f"{spec.label} flags {100 * share:.0f} % of the analysed pixels as landslides, far more than "
                    "events usually bare; this usually means unaligned images, a wrong pair (another place, or a "
                    "cloudy or noisy image) or seasonal change (harvest, browning): check the pair and the masks "
                    "before trusting this map.")
        for text in warnings:
            say(f"WARNING: {text}")

        # 5. polygons of the primary method (not beside the evaluation: the two together would hold both stages'
        #    arrays and GDAL's cache filled from four threads, hundreds of MB above the run's peak)
        stages.callback("polygons")(0)
        plan.begin("polygons")
        shapes = polygons.mask_to_polygons(
            str(work / f"mask_{primary}.tif"), pre_stack_path=str(pre_stack), post_stack_path=str(aligned),
            dem_path=str(dem) if dem and not mask_options.slope_path else None,
            slope_path=mask_options.slope_path, band_numbers=band_numbers,
            probability_path=str(work / f"probability_{primary}.tif") if primary.startswith("gmm") else None,
            opening_px=opening_px, min_area_m2=min_area_m2, is_cancelled=is_cancelled)
        poly_path = work / f"landslides_{primary}.geojson"
        polygons.write_polygons_geojson(shapes, str(poly_path), _crs_of(pre_stack))
        outputs[poly_path.name] = poly_path
        mapped.polygons, mapped.polygon_count = folder / poly_path.name, len(shapes)
        total_ha = sum(shape.area_m2 for shape in shapes) / 10_000
        say(f"{len(shapes):,} landslide polygons of {_label_of(methods, primary)}, {total_ha:,.1f} ha in all "
            f"(opening {opening_px} px, smallest kept {min_area_m2:,.0f} m²)")

        # 6. evaluation and report
        stage = stages.callback("evaluate")
        if with_reference:
            plan.begin("evaluate")
            _evaluate(mapped, methods, work, outputs, reference, reference_geometries, reference_crs, aligned,
                      stage, is_cancelled, say, warnings, beside, locals_for_report={
                          "methods": ", ".join(names), "primary": primary, "threshold": threshold,
                          "masks": mask_options.describe() if use_masks else "none",
                          "clustering": _describe_clustering(cluster_options, specs),
                          "min_slope_deg": mask_options.min_slope_deg if use_masks and dem else None,
                          "min_ndvi_pre": mask_options.min_ndvi_pre if use_masks else None, "seed": seed,
                          "sample_size": sample_size, "opening_px": opening_px, "min_area_m2": min_area_m2,
                          "shift_px": shift, "correlation": correlation,
                          "pre-event images": pre_images.description, "post-event images": post_images.description,
                          **({"why these images": " ".join(options.pair_summary.split())}
                             if options.pair_summary.strip() else {})})
        else:
            say("no reference given: no evaluation (give an inventory or a reference raster to get F1, IoU, MCC)")

        # 7. all done: the new set of files replaces the previous run's, all at once; maps of a previous
        #    run's methods that this run did not repeat are removed, so the folder never mixes two runs.
        rasters.check_cancelled(is_cancelled)
        plan.begin("commit")
        out.commit(outputs, remove_stale=True)
        for note in out.notes:
            say(f"output folder: {note}")
        rasters.report(progress, 100)
    return mapped


#: Bands every method reads from a stack (``indices.REQUIRED_BANDS``).
REQUIRED_STACK_BANDS = ("B02", "B03", "B04", "B8A", "B11")


def _describe_clustering(options: ClusteringOptions, methods: Sequence[Method] = ()) -> str:
    """The clustering rules in one line, for the report (every rule stays visible): the pixels clustered, the
    features (each clustering's when they differ), the rule (without the parts none of the features can use)."""
    scope = ("every analysed pixel" if options.candidates_below is None
             else f"the pixels whose NDVI fell below {options.candidates_below:g}")
    features = {m.label: tuple(m.features or options.features) for m in methods if m.entry.fitted}
    every = tuple(dict.fromkeys(n for names in features.values() for n in names)) or tuple(options.features)
    if len(set(features.values())) > 1:
        on = ": " + "; ".join(f"{label} on {clustering_module.describe_features(names)}"
                              for label, names in features.items())
    else:
        on = " on " + clustering_module.describe_features(every)
    rule = options.rule.describe(every) if options.rule is not None else (
        "landslide cluster = highest z(-dNDVI) + z(dBSI) among clusters with dNDVI < 0 and dBSI > 0")
    return f"clusters {scope}{on}; {rule}"


def _as_paths(inputs, label: str) -> list[Path]:
    paths = [Path(p) for p in ([inputs] if isinstance(inputs, (str, os.PathLike)) else inputs) if p]
    if not paths:
        raise ValueError(f"no {label} image given: give a Sentinel-2 L2A product or a prepared stack")
    return paths


def _is_stack_input(paths: Sequence[Path]) -> bool:
    stacks = [p for p in paths if is_prepared_stack(p)]
    if stacks and len(paths) > 1:
        raise ValueError(f"{stacks[0].name} is a GeoTIFF stack given with other images; stacks cannot be "
                         "mosaicked: give one stack, or the products of one date")
    return bool(stacks)


def _pair_correlation(pre_stack, post_stack, band_numbers=None, band: str = "B11",
                      max_side: int = 512) -> float | None:
    """Pearson correlation of the edges (Sobel gradient magnitude) of one band of the two images, on a decimated
    read (None: too few pixels). Ridges, valleys, roads and field boundaries stay where they are between seasons,
    while the brightness of fields and grass turns over; pixels next to no data do not count."""
    import numpy as np
    import rasterio
    from scipy import ndimage

    values = []
    for path in (pre_stack, post_stack):
        index = rasters.find_bands(path, [band], fallback=band_numbers)[band]
        with rasterio.open(path) as src:
            scale = max(1, int(np.ceil(max(src.width, src.height) / max_side)))
            shape = (max(1, src.height // scale), max(1, src.width // scale))
            values.append(rasters.read_reflectance(src, index, out_shape=shape).astype("float64"))
    if values[0].shape != values[1].shape:
        return None
    ok = np.isfinite(values[0]) & np.isfinite(values[1])
    inner = ndimage.binary_erosion(ok, iterations=1)  # a gradient next to no data is no edge of the ground
    if inner.sum() < 100:
        return None
    edges = []
    for image in values:
        filled = np.where(ok, image, np.median(image[ok]))
        edges.append(np.hypot(ndimage.sobel(filled, 0), ndimage.sobel(filled, 1))[inner])
    if edges[0].std() == 0 or edges[1].std() == 0:
        return None
    return float(np.corrcoef(edges[0], edges[1])[0, 1])


@dataclass(frozen=True)
class _Images:
    """What a period's image was made of (for the log, the report and metrics.json)."""

    description: str
    #: The composite's count of clear observations per pixel (in the working folder); None: one date.
    count: Path | None = None


def _dates(inputs, is_stack: bool) -> dict:
    """Products by sensing day (``composite.group_by_date``: their own metadata); {} for a stack."""
    from . import composite

    return {} if is_stack else composite.group_by_date([str(p) for p in inputs])


def _composite_bytes(footprint, dates) -> int:
    """Scratch space of a composite: every date prepared (stack and SCL) while it is made, and its count."""
    if len(dates) < 2:
        return 0
    from .preflight import DEFLATE_RATIO

    pixels = footprint.width * footprint.height
    return int(pixels * (len(dates) * (4 * footprint.count * DEFLATE_RATIO + 1) + 1))


def _prepare(products, inputs, scl, stack_out, scl_out, aoi, aoi_crs, progress, is_cancelled, say, label, *,
             dates=None, method="median", count_out=None, exclude_dark=False, overviews=True):
    """Products -> a stack and SCL in the working folder (with internal overviews when ``overviews``, for files
    the user keeps); a prepared stack is read where it is.

    Products of several dates (``dates``, from ``composite.group_by_date``) make a per-pixel composite
    (``composite.composite_l2a`` with ``method``), its clear-observation count in ``count_out``; it is then
    used exactly like one prepared date. Returns (stack, SCL, :class:`_Images`).
    """
    from . import composite

    if len(inputs) == 1 and is_prepared_stack(inputs[0]):
        if aoi is not None:
            say(f"{label}: a prepared raster was given; the area of interest applies to products only")
        say(f"{label}: prepared raster {inputs[0]} (read in place, never changed)")
        return inputs[0], (Path(scl) if scl else None), _Images(
            f"prepared raster {inputs[0]}" + (f" with the SCL {scl}" if scl else ""))
    if dates and len(dates) > 1:
        made = composite.composite_l2a([str(p) for p in inputs], str(stack_out), str(scl_out), str(count_out),
                                       method=method, aoi=aoi, aoi_crs=aoi_crs, exclude_dark=exclude_dark,
                                       work_dir=str(Path(stack_out).parent), progress=progress,
                                       is_cancelled=is_cancelled, overviews=overviews)
        for note in made.notes:
            say(f"{label}: {note}")
        names = _tag(stack_out, "PRODUCT").split(",")
        per_date, start = [], 0
        for day, tiles in zip(made.dates, made.tiles_per_date):
            per_date.append(f"{day} ({', '.join(names[start:start + tiles])})")
            start += tiles
        figures = (f"clear observations per pixel {made.mean_count:.2f} on average, "
                   f"{100 * made.observed_fraction:.1f} % of the pixels observed clear at least once")
        say(f"{label}: {_METHOD_LABELS.get(method, method)} composite of {len(made.dates)} dates "
            f"({', '.join(made.dates)}; tiles per date {', '.join(str(t) for t in made.tiles_per_date)}): "
            f"{figures}")
        return stack_out, scl_out, _Images(
            f"{_METHOD_LABELS.get(method, method)} composite of {len(made.dates)} dates: {'; '.join(per_date)}; "
            f"{figures}", Path(count_out))
    prepared = products.prepare_l2a([str(p) for p in inputs], str(stack_out), str(scl_out), aoi=aoi,
                                    aoi_crs=aoi_crs, progress=progress, is_cancelled=is_cancelled,
                                    overviews=overviews)
    for info in prepared.infos:
        offset = info.offsets.get("B04", 0)
        dn = f"(DN {offset:+g})" if offset else "DN"
        say(f"{label}: {info.product_name} (processing baseline {info.baseline}: reflectance = {dn} / "
            f"{info.quantification:g})")
    tiles = len(prepared.infos)
    return stack_out, scl_out, _Images(
        f"one date, {prepared.sensing_date}" + (f", mosaic of {tiles} tiles" if tiles > 1 else "") + ": "
        + ", ".join(info.name for info in prepared.infos))


#: How the report names the composite methods (``composite.METHODS``).
_METHOD_LABELS = {"median": "median", "greenest": "greenest-pixel"}


def _tag(path, name: str) -> str:
    import rasterio

    with rasterio.open(path) as src:
        return src.tags().get(name, "")


class _Steps:
    """The run's named steps, numbered as the user sees them ("step 4 of 8"); steps that do not apply are None."""

    def __init__(self, callback, steps):
        self.callback = callback
        self.steps = [s for s in steps if s is not None]
        self.keys = [key for key, _ in self.steps]

    def begin(self, key: str) -> None:
        if self.callback is not None and key in self.keys:
            index = self.keys.index(key)
            self.callback(index + 1, len(self.steps), self.steps[index][1])


def _label_of(methods, name: str) -> str:
    return next((m.label for m in methods if m.name == name), name)


def _percent(part: float, whole: float) -> str:
    """A share for people: '21.0 %', '0.42 %', '< 0.01 %'."""
    if not whole:
        return "0 %"
    value = 100.0 * part / whole
    if 0 < value < 0.01:
        return "< 0.01 %"
    return f"{value:.2f} %" if value < 1 else f"{value:.1f} %"


def _pixel_area_m2(path) -> float | None:
    try:
        return rasters.Grid.from_path(path).pixel_area_m2()
    except ValueError:  # a geographic grid has no fixed pixel area (preflight refuses those anyway)
        return None


def _method_news(found) -> str:
    """A method's line as soon as its choice is known; a clustering adds its cluster table on the next lines."""
    label = found.spec.label
    model = getattr(found.detector, "model", None)
    selection = getattr(model, "selection", None)
    if selection is None:
        text = found.detector.describe()
        if found.spec.kind == "threshold":
            threshold = found.detector.threshold
            text = f"landslide where NDVI fell by more than {abs(threshold):g} (dNDVI < {threshold:g})"
        return f"{label}: {text}" if text else label
    scope = ("" if model.candidates_below is None
             else f", clustering the pixels whose NDVI fell below {model.candidates_below:g}")
    scope += f" on {clustering_module.describe_features(model.feature_names)}"
    chosen = list(model.landslide_clusters)
    further = found.detector.further_starts()  # the other starts of a mixture (``MethodSpec.starts``)
    if not chosen:
        return f"{label}: no landslide cluster{scope}\n{selection.format()}{further}"
    # the centres' change, or their change beyond the surroundings when that is what the clustering was fitted on
    ndvi, bsi = (name if name in model.feature_names or f"{name}_local" not in model.feature_names else f"{name}_local"
                 for name in ("dNDVI", "dBSI"))
    parts = []
    for k in chosen:
        share = f"{100 * selection.fractions[k]:.0f} % of the sample, " if selection.fractions is not None else ""
        parts.append(f"{k} ({share}centre {ndvi} {selection.dndvi[k]:+.2f}, {bsi} {selection.dbsi[k]:+.2f})")
    noun = "cluster" if len(chosen) == 1 else "clusters"
    return (f"{label}: landslide {noun} {', '.join(parts)} of {len(selection.score)}{scope}\n"
            f"{selection.format()}{further}")


def pair_title(pre_stack, post_stack) -> str | None:
    """'T37SCB 2023-01-05 → 2023-08-05' from the stacks' SENSING_DATE and TILE tags (None without dates); a
    composite shows its period ('2023-08-20…2023-08-30')."""
    import rasterio

    tags = []
    for path in (pre_stack, post_stack):
        try:
            with rasterio.open(path) as src:
                tags.append(src.tags())
        except (OSError, rasterio.errors.RasterioError):
            return None
    dates = [t.get("SENSING_DATE", "").strip() for t in tags]
    if not all(dates):
        return None
    for index, t in enumerate(tags):  # a composite of several dates shows its period
        period = [d for d in t.get("COMPOSITE_DATES", "").split(",") if d.strip()]
        if len(period) > 1:
            dates[index] = f"{period[0].strip()}…{period[-1].strip()}"
    tiles = list(dict.fromkeys(tile.strip() for t in tags for tile in t.get("TILE", "").replace(",", "-").split("-")
                               if tile.strip()))
    where = f"{', '.join(tiles)} " if 0 < len(tiles) <= 2 else ""
    return f"{where}{dates[0]} → {dates[1]}"


def _crs_of(path):
    import rasterio

    with rasterio.open(path) as src:
        return src.crs


def _evaluate(mapped, methods, work, outputs, reference, geometries, reference_crs, true_colour_stack,
              progress, is_cancelled, say, warnings, beside, locals_for_report):
    from . import evaluation, reports

    paths = [str(work / f"mask_{m.name}.tif") for m in methods]
    # The scores in a helper thread; beside them, in this thread, the overlay's image (a decimated read of the
    # post-event stack, mostly decoding: its blocks in GDAL's cache are this thread's memory to reuse).
    scores_job = beside.enter_context(_Beside("scores", lambda stop, report: evaluation.evaluate(
        str(reference) if reference else None, paths, reference_geometries=geometries, reference_crs=reference_crs,
        names=[m.label for m in methods], progress=report, is_cancelled=stop)))
    image = reports.read_true_colour(str(true_colour_stack))
    result = scores_job.result(is_cancelled, progress)
    # The report names the files where they will be, not in the working folder.
    result = dataclasses.replace(result, predictions=[
        dataclasses.replace(item, path=str(mapped.folder / Path(item.path).name)) for item in result.predictions])
    reference_warnings = list(result.warnings)
    for text in reference_warnings:
        say(f"WARNING: {text}")
    # The run's own warnings (implausible shares, a pair that hardly matches) go into the report too.
    result = dataclasses.replace(result, warnings=[*reference_warnings, *warnings])
    mapped.warnings.extend(reference_warnings)
    for method, item in zip(methods, result.predictions):
        mapped.metrics[method.name] = item.scores.as_dict()
        say(f"{method.label}: {item.scores.summary()}")
    csv_path, json_path, html_path = work / "metrics.csv", work / "metrics.json", work / "report.html"
    reports.write_metrics_csv(result, str(csv_path))
    reports.write_metrics_json(result, str(json_path), parameters=locals_for_report)
    primary = next(m.label for m in methods if m.name == mapped.primary)
    answer = reports.verdict(result, primary)
    mapped.verdict = answer.text
    say(f"Short answer: {answer.text}")
    titles = {}
    for item in result.predictions:
        scores = f"F1 {evaluation.format_score(item.scores.f1, 2)}, MCC {evaluation.format_score(item.scores.mcc, 2)}"
        titles[item.name] = f"{item.name}{' (primary)' if item.name == primary else ''}: {scores}"
    figures = {
        "Maps over the post-event image": (
            reports.overlay_figure(image, {m.label: p for m, p in zip(methods, paths)},
                                   str(work / "overlay.png"), reference=str(reference) if reference else geometries,
                                   reference_crs=None if reference else reference_crs, titles=titles),
            reports.OVERLAY_CAPTION),
        "Confusion matrices": (reports.confusion_figure(result, str(work / "confusion.png")),
                               reports.CONFUSION_CAPTION),
    }
    reports.write_html_report(result, str(html_path), figures=figures, parameters=locals_for_report,
                              title="Landslide mapping report", primary=primary)
    for path in (csv_path, json_path, html_path, work / "confusion.png", work / "overlay.png"):
        if path.exists():
            outputs[path.name] = path
    mapped.report, mapped.metrics_csv, mapped.metrics_json = (mapped.folder / "report.html",
                                                              mapped.folder / "metrics.csv",
                                                              mapped.folder / "metrics.json")
