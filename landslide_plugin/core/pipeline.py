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
import tempfile
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from . import rasters

GEOTIFF_SUFFIXES = (".tif", ".tiff")
#: Files of a run whose set depends on the methods chosen (see ``map_landslides``).
RUN_FILE_PATTERNS = ("mask_*.tif", "clusters_*.tif", "probability_*.tif", "landslides_*.geojson",
                     "report.html", "metrics.csv", "metrics.json", "confusion.png", "overlay.png", "slope.tif")


@dataclass(frozen=True)
class Method:
    """A detection method: the dNDVI threshold baseline, or clustering with ``n_clusters``."""

    kind: str  # "threshold" | "kmeans" | "gmm"
    n_clusters: int = 0

    def __post_init__(self):
        if self.kind not in ("threshold", "kmeans", "gmm"):
            raise ValueError(f"unknown method '{self.kind}'; use threshold, kmeans or gmm")
        if self.kind != "threshold" and self.n_clusters < 2:
            raise ValueError(f"{self.kind} needs at least 2 clusters, got {self.n_clusters}")

    @property
    def name(self) -> str:
        return "threshold" if self.kind == "threshold" else f"{self.kind}{self.n_clusters}"

    @property
    def label(self) -> str:
        if self.kind == "threshold":
            return "dNDVI threshold"
        return f"{'K-means' if self.kind == 'kmeans' else 'GMM'} {self.n_clusters}"


#: The reference study's four clusterings plus its threshold baseline.
REFERENCE_STUDY_METHODS = (Method("threshold"), Method("kmeans", 2), Method("kmeans", 3),
                           Method("gmm", 2), Method("gmm", 3))


def parse_methods(threshold: bool, kmeans: Sequence[int], gmm: Sequence[int]) -> list[Method]:
    methods = [Method("threshold")] if threshold else []
    methods += [Method("kmeans", int(k)) for k in kmeans]
    methods += [Method("gmm", int(k)) for k in gmm]
    if not methods:
        raise ValueError("no method chosen: enable the threshold or give cluster counts for K-means or GMM")
    return methods


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
    #: method name -> (number of clusters, index of the landslide cluster)
    landslide_clusters: dict[str, tuple[int, int]] = field(default_factory=dict)
    primary: str = ""
    polygons: Path | None = None
    polygon_count: int = 0
    report: Path | None = None
    metrics_csv: Path | None = None
    metrics_json: Path | None = None
    metrics: dict[str, dict] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)


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


@contextlib.contextmanager
def _working_folder(folder: Path):
    folder.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".landslide-run-", dir=folder))
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


def map_landslides(
    pre: Sequence[str | os.PathLike],
    post: Sequence[str | os.PathLike],
    folder: str | os.PathLike,
    *,
    pre_scl: str | os.PathLike | None = None,
    post_scl: str | os.PathLike | None = None,
    methods: Sequence[Method] = REFERENCE_STUDY_METHODS,
    primary: str | None = None,
    aoi=None,
    aoi_crs: str = "EPSG:4326",
    dem: str | os.PathLike | None = None,
    exclusion: str | os.PathLike | None = None,
    exclusion_classes: Sequence[int] = (),
    reference: str | os.PathLike | None = None,
    reference_geometries: list | None = None,
    reference_crs=None,
    use_masks: bool = True,
    min_slope_deg: float = 15.0,
    min_ndvi_pre: float | None = 0.3,
    exclude_dark: bool = False,
    threshold: float = -0.2,
    coregister: bool = True,
    align_band: str = "B11",
    align_gradient: bool = True,
    motion: str = "translation",
    max_shift_px: float = 5.0,
    opening_px: int = 1,
    min_area_m2: float = 1600.0,
    sample_size: int = 200_000,
    seed: int = 0,
    band_numbers: dict[str, int] | None = None,
    log: Callable[[str], None] | None = None,
    progress=None,
    is_cancelled=None,
) -> MappingResult:
    """Map landslides from a pre-event and a post-event image into ``folder``.

    ``pre``/``post``: one or more Sentinel-2 L2A products (.zip, .SAFE, MTD_MSIL2A.xml) of one date each,
    or a single prepared GeoTIFF stack each (then ``pre_scl``/``post_scl`` are optional SCL rasters).
    Files written (names fixed, so a second run overwrites the first): ``pre_stack.tif``,
    ``post_aligned.tif`` (+ ``*_scl.tif``), ``mask_<method>.tif`` per method, ``clusters_<method>.tif``,
    ``probability_gmm<k>.tif``, ``landslides_<primary>.geojson``, ``slope.tif`` (with a DEM and masks),
    and with a reference ``report.html``,
    ``metrics.csv``, ``metrics.json``.
    """
    from . import alignment, clustering, masks, polygons, products

    methods = list(methods)
    if not methods:
        raise ValueError("no method chosen")
    names = [m.name for m in methods]
    primary = primary or next((n for n in ("gmm3", "kmeans3") if n in names), names[-1])
    if primary not in names:
        raise ValueError(f"primary method '{primary}' is not among the methods run ({', '.join(names)})")
    folder = Path(folder)
    lines: list[str] = []

    def say(text: str) -> None:
        lines.append(text)
        if log:
            log(text)

    weights = {"prepare": 2.0, "align": 1.5, **{m.name: 1.0 for m in methods}, "polygons": 0.5, "evaluate": 1.0}
    stages = _Stages(weights, progress, is_cancelled)
    mask_options = masks.MaskOptions(
        use_scl=use_masks, exclude_dark=exclude_dark, exclude_water=use_masks,
        dem_path=str(dem) if (dem and use_masks) else None, min_slope_deg=min_slope_deg,
        exclusion_path=str(exclusion) if (exclusion and use_masks) else None,
        exclusion_classes=tuple(exclusion_classes), min_ndvi_pre=min_ndvi_pre if use_masks else None,
    ) if use_masks else None

    with _working_folder(folder) as work:
        outputs: dict[str, Path] = {}

        # 1. reflectance stacks
        stage = stages.callback("prepare")
        pre_stack, pre_scl_path = _prepare(products, pre, pre_scl, work / "pre_stack.tif", work / "pre_scl.tif",
                                           aoi, aoi_crs, lambda p: stage(p / 2), is_cancelled, say, "pre-event")
        post_stack, post_scl_path = _prepare(products, post, post_scl, work / "post_stack.tif",
                                             work / "post_scl.tif", aoi, aoi_crs, lambda p: stage(50 + p / 2),
                                             is_cancelled, say, "post-event")
        outputs["pre_stack.tif"] = pre_stack
        if pre_scl_path:
            outputs["pre_scl.tif"] = pre_scl_path

        # 2. co-registration of the post image onto the pre grid
        stage = stages.callback("align")
        shift = correlation = None
        aligned, aligned_scl = work / "post_aligned.tif", (work / "post_aligned_scl.tif" if post_scl_path else None)
        if coregister:
            result = alignment.coregister_stack(
                str(pre_stack), str(post_stack), str(aligned),
                moving_scl_path=str(post_scl_path) if post_scl_path else None,
                out_scl_path=str(aligned_scl) if aligned_scl else None,
                reference_scl_path=str(pre_scl_path) if pre_scl_path else None,
                band=align_band, use_gradient=align_gradient, motion=motion, max_shift_px=max_shift_px,
                progress=stage, is_cancelled=is_cancelled)
            for message in result.messages:
                say(message)
            shift, correlation = tuple(result.shift_px), float(result.correlation)
            how = f"{motion}, {align_band}{' gradient' if align_gradient else ''}"
            say(f"co-registration ({how}): shift x {shift[0]:+.3f} px, y {shift[1]:+.3f} px, "
                f"correlation {correlation:.3f}")
        else:
            shutil.copyfile(post_stack, aligned)
            if aligned_scl:
                shutil.copyfile(post_scl_path, aligned_scl)
            say("co-registration skipped: the post image is used as it is")
        outputs["post_aligned.tif"] = aligned
        if aligned_scl:
            outputs["post_aligned_scl.tif"] = aligned_scl

        # 3. the slope, once for every method and the polygons
        if mask_options is not None and mask_options.dem_path:
            slope_path = work / "slope.tif"
            masks.write_slope(mask_options.dem_path, str(pre_stack), str(slope_path), is_cancelled=is_cancelled)
            mask_options = dataclasses.replace(mask_options, slope_path=str(slope_path))
            outputs[slope_path.name] = slope_path
        # 4. every method
        mapped = MappingResult(folder, folder / "pre_stack.tif", folder / "pre_scl.tif" if pre_scl_path else None,
                               folder / "post_aligned.tif", folder / "post_aligned_scl.tif" if aligned_scl else None,
                               shift, correlation, primary=primary, log=lines)
        common = dict(scl_pre_path=str(pre_scl_path) if pre_scl_path else None,
                      scl_post_path=str(aligned_scl) if aligned_scl else None, band_numbers=band_numbers)
        def run_method(method: Method, progress, stop) -> list[str]:
            """One method, in a worker thread; returns its log lines (said in order afterwards)."""
            said = []
            mask_path = work / f"mask_{method.name}.tif"
            if method.kind == "threshold":
                counts = masks.write_threshold_mask(str(pre_stack), str(aligned), str(mask_path), threshold=threshold,
                                                    options=mask_options, progress=progress, is_cancelled=stop,
                                                    **common)
                said.append(f"{method.label}: dNDVI < {threshold}: {counts}")
            else:
                cluster_path = work / f"clusters_{method.name}.tif"
                prob_path = work / f"probability_{method.name}.tif" if method.kind == "gmm" else None
                result = clustering.cluster_change(
                    str(pre_stack), str(aligned), cluster_path=str(cluster_path), mask_path=str(mask_path),
                    probability_path=str(prob_path) if prob_path else None, method=method.kind,
                    n_clusters=method.n_clusters, mask_options=mask_options, sample_size=sample_size, seed=seed,
                    progress=progress, is_cancelled=stop, **common)
                said.append(f"{method.label}: landslide cluster {result.landslide_cluster}; pixels removed: "
                            f"{result.removed_summary()}\n{result.model.selection.format()}")
                if result.warning:
                    said.append(f"WARNING {method.label}: {result.warning}")
                outputs[cluster_path.name] = cluster_path
                mapped.landslide_clusters[method.name] = (method.n_clusters, result.landslide_cluster)
                mapped.clusters[method.name] = folder / cluster_path.name
                if prob_path:
                    outputs[prob_path.name] = prob_path
                    mapped.probabilities[method.name] = folder / prob_path.name
            return said

        said_by_method = _run_in_threads(methods, run_method, stages, progress, is_cancelled)
        for method in methods:
            for text in said_by_method[method.name]:
                say(text)
            outputs[f"mask_{method.name}.tif"] = work / f"mask_{method.name}.tif"
            mapped.masks[method.name] = folder / f"mask_{method.name}.tif"

        # 5. polygons of the primary method
        stages.callback("polygons")(0)
        shapes = polygons.mask_to_polygons(
            str(work / f"mask_{primary}.tif"), pre_stack_path=str(pre_stack), post_stack_path=str(aligned),
            dem_path=str(dem) if dem and not (mask_options and mask_options.slope_path) else None,
            slope_path=mask_options.slope_path if mask_options else None,
            probability_path=str(work / f"probability_{primary}.tif") if primary.startswith("gmm") else None,
            opening_px=opening_px, min_area_m2=min_area_m2)
        poly_path = work / f"landslides_{primary}.geojson"
        polygons.write_polygons_geojson(shapes, str(poly_path), _crs_of(pre_stack))
        outputs[poly_path.name] = poly_path
        mapped.polygons, mapped.polygon_count = folder / poly_path.name, len(shapes)
        say(f"{len(shapes)} landslide polygons from {primary} (opening {opening_px} px, minimum {min_area_m2:g} m²)")

        # 6. evaluation and report
        stage = stages.callback("evaluate")
        if reference is not None or reference_geometries is not None:
            _evaluate(mapped, methods, work, outputs, reference, reference_geometries, reference_crs, aligned,
                      stage, is_cancelled, say, locals_for_report={
                          "methods": ", ".join(names), "primary": primary, "threshold": threshold,
                          "masks": bool(use_masks), "min_slope_deg": min_slope_deg if dem else None,
                          "min_ndvi_pre": min_ndvi_pre, "seed": seed, "sample_size": sample_size,
                          "opening_px": opening_px, "min_area_m2": min_area_m2, "shift_px": shift,
                          "correlation": correlation})
        else:
            say("no reference given: no evaluation (give an inventory or a reference raster to get F1, IoU, MCC)")

        # 7. all done: move the finished files into place, and drop the maps of a previous run's methods
        #    that this run did not repeat, so the folder never mixes two runs.
        rasters.check_cancelled(is_cancelled)
        for pattern in RUN_FILE_PATTERNS:
            for stale in folder.glob(pattern):
                if stale.name not in outputs and stale.is_file():
                    stale.unlink()
        for name, path in outputs.items():
            os.replace(path, folder / name)
            for suffix in (".aux.xml",):
                if Path(str(path) + suffix).exists():
                    os.replace(str(path) + suffix, str(folder / name) + suffix)
        rasters.report(progress, 100)
    return mapped


#: Methods run side by side: each is mostly single-threaded (numpy, GDAL I/O), so two threads use
#: two cores; more would multiply memory (every method holds its own blocks) for little gain.
METHOD_THREADS = 2


def _run_in_threads(methods, run_method, stages, progress, is_cancelled) -> dict[str, list[str]]:
    """Run ``run_method(method, progress, stop)`` for every method in METHOD_THREADS threads.

    Progress and cancellation are handled here, in the calling thread (QGIS's feedback object is
    only touched from the thread that runs the algorithm); workers only read a stop flag. The first
    error (or a cancel) stops the other methods and is raised.
    """
    stop = threading.Event()
    done = {m.name: 0.0 for m in methods}

    def progress_of(name):
        return lambda pct: done.__setitem__(name, float(pct))

    def report_all():
        start = stages.spans[methods[0].name][0]
        total = start + sum((stages.spans[n][1] - stages.spans[n][0]) * pct / 100.0 for n, pct in done.items())
        rasters.report(progress, total)

    with ThreadPoolExecutor(max_workers=METHOD_THREADS, thread_name_prefix="landslide-method") as pool:
        futures = {pool.submit(run_method, m, progress_of(m.name), stop.is_set): m.name for m in methods}
        pending = set(futures)
        try:
            while pending:
                finished, pending = wait(pending, timeout=0.25, return_when=FIRST_EXCEPTION)
                report_all()
                if is_cancelled is not None and is_cancelled():
                    stop.set()
                    raise rasters.Cancelled("cancelled by the user")
                for future in finished:
                    future.result()  # re-raises a worker's error here
        except BaseException:
            stop.set()
            raise
    return {futures[f]: f.result() for f in futures}


def _prepare(products, inputs, scl, stack_out, scl_out, aoi, aoi_crs, progress, is_cancelled, say, label):
    inputs = [Path(p) for p in ([inputs] if isinstance(inputs, (str, os.PathLike)) else inputs)]
    if not inputs:
        raise ValueError(f"no {label} image given")
    if len(inputs) == 1 and is_prepared_stack(inputs[0]):
        if aoi is not None:
            say(f"{label}: a prepared raster was given; the area of interest applies to products only")
        say(f"{label}: prepared raster {inputs[0]}")
        return inputs[0], (Path(scl) if scl else None)
    prepared = products.prepare_l2a([str(p) for p in inputs], str(stack_out), str(scl_out), aoi=aoi,
                                    aoi_crs=aoi_crs, progress=progress, is_cancelled=is_cancelled)
    for info in prepared.infos:
        say(f"{label}: {info.product_name} (baseline {info.baseline}, offset {info.offsets.get('B04', 0)}, "
            f"quantification {info.quantification})")
    return stack_out, scl_out


def _crs_of(path):
    import rasterio

    with rasterio.open(path) as src:
        return src.crs


def _evaluate(mapped, methods, work, outputs, reference, geometries, reference_crs, true_colour_stack,
              progress, is_cancelled, say, locals_for_report):
    from . import evaluation, reports

    paths = [str(work / f"mask_{m.name}.tif") for m in methods]
    result = evaluation.evaluate(
        str(reference) if reference else None, paths, reference_geometries=geometries, reference_crs=reference_crs,
        names=[m.label for m in methods], progress=progress, is_cancelled=is_cancelled)
    # The report names the files where they will be, not in the working folder.
    result = dataclasses.replace(result, predictions=[
        dataclasses.replace(item, path=str(mapped.folder / Path(item.path).name)) for item in result.predictions])
    for method, item in zip(methods, result.predictions):
        mapped.metrics[method.name] = item.scores.as_dict()
        s = item.scores
        say(f"{method.label}: precision {s.precision:.3f}, recall {s.recall:.3f}, F1 {s.f1:.3f}, "
            f"IoU {s.iou:.3f}, MCC {s.mcc:.3f}")
    csv_path, json_path, html_path = work / "metrics.csv", work / "metrics.json", work / "report.html"
    reports.write_metrics_csv(result, str(csv_path))
    reports.write_metrics_json(result, str(json_path), parameters=locals_for_report)
    figures = {
        "confusion": reports.confusion_figure(result, str(work / "confusion.png")),
        "overlay": reports.overlay_figure(str(true_colour_stack), {m.label: p for m, p in zip(methods, paths)},
                                          str(work / "overlay.png"),
                                          reference=str(reference) if reference else geometries,
                                          reference_crs=None if reference else reference_crs),
    }
    reports.write_html_report(result, str(html_path), figures=figures, parameters=locals_for_report,
                              title="Landslide mapping report")
    for path in (csv_path, json_path, html_path, work / "confusion.png", work / "overlay.png"):
        if path.exists():
            outputs[path.name] = path
    mapped.report, mapped.metrics_csv, mapped.metrics_json = (mapped.folder / "report.html",
                                                              mapped.folder / "metrics.csv",
                                                              mapped.folder / "metrics.json")
