"""Scores of landslide maps against a reference: the landslide class first, never overall accuracy alone.

Landslide scars are typically well under 1 % of a scene, so overall accuracy is high for any map
(even one that flags nothing). What a user needs is how much of the reference was found (recall),
how much of the map is right (precision), their balance (F1, IoU) and a chance-corrected agreement
that stays honest under class imbalance (Matthews correlation, Cohen's kappa).

Pixel conventions (masks of the plugin): 1 = landslide, 0 = not, 255 = no data. Pixels that are no
data in the prediction or in the reference are excluded from every score and counted separately.

Degenerate cases never raise and never emit numpy warnings. A score that is undefined is ``None``
(JSON null, "undefined" in the reports), never a made-up 0 or 1:

* precision when the map has no landslide pixel (TP + FP = 0);
* recall, F1 and IoU when the reference has no landslide pixel (TP + FN = 0): they measure how much of
  the reference landslides the map finds, and there is none to find;
* Cohen's kappa when the reference has a single class (no landslide, or only landslide), and MCC when
  any marginal is zero (one of the two maps is constant): agreement beyond chance cannot be measured;
* overall accuracy and the landslide shares are always defined; scoring zero pixels is an error (there
  is nothing to score), not a number.

``zero_division`` (default None) replaces every undefined score by a number, for callers that want
scikit-learn's convention (0.0) or NaN. Each case also gives a warning (``PredictionEvaluation.warnings``,
gathered in ``Evaluation.warnings``) that names the problem and the fix, e.g. an inventory outside the image.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.windows import Window

from . import rasters

NODATA = 255
LANDSLIDE = 1

#: Rows per block (a module constant so tests can make strips small and check objects cross them).
BLOCK_ROWS = rasters.BLOCK_ROWS

#: Extensions read as a vector inventory (GeoJSON, parsed with json: the core has no OGR reader).
GEOJSON_EXTENSIONS = (".geojson", ".json")


# -- pixel confusion and scores ---------------------------------------------------------------


@dataclass(frozen=True)
class Confusion:
    """2 x 2 confusion of the landslide class: counts of valid pixels."""

    tp: int
    fp: int
    fn: int
    tn: int

    @property
    def total(self) -> int:
        return self.tp + self.fp + self.fn + self.tn

    def __add__(self, other: Confusion) -> Confusion:
        return Confusion(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn, self.tn + other.tn)

    def matrix(self) -> np.ndarray:
        """Rows = reference (not landslide, landslide), columns = prediction (not, landslide)."""
        return np.array([[self.tn, self.fp], [self.fn, self.tp]], dtype=np.int64)


#: Landslide-class scores in the order of logs and tables, with their display labels.
SCORE_LABELS = (("precision", "precision"), ("recall", "recall"), ("f1", "F1"), ("iou", "IoU"),
                ("kappa", "kappa"), ("mcc", "MCC"))


@dataclass(frozen=True)
class Scores:
    """Scores of one confusion; None where a score is undefined (see the module docstring)."""

    overall_accuracy: float
    precision: float | None
    recall: float | None
    f1: float | None
    iou: float | None
    kappa: float | None
    mcc: float | None
    reference_share: float   # share of valid pixels that are landslide in the reference
    prediction_share: float  # share of valid pixels predicted as landslide

    def as_dict(self) -> dict[str, float | None]:
        """Every score by field name; undefined scores stay None (JSON null)."""
        return asdict(self)

    def summary(self) -> str:
        """One line for logs: "precision 0.812, recall 0.640, F1 0.716, IoU 0.558, MCC 0.703"."""
        return ", ".join(f"{label} {format_score(getattr(self, key))}"
                         for key, label in SCORE_LABELS if key != "kappa")


def format_score(value: float | None, digits: int = 3) -> str:
    """A score for people: fixed decimals, or "undefined" for None (and NaN)."""
    if value is None or not math.isfinite(value):
        return "undefined"
    return f"{value:.{digits}f}"


def undefined_scores(conf: Confusion) -> tuple[str, ...]:
    """Field names of the scores that ``conf`` leaves undefined, in the order of SCORE_LABELS."""
    predicted, actual = conf.tp + conf.fp, conf.tp + conf.fn
    predicted_not, actual_not = conf.fn + conf.tn, conf.fp + conf.tn
    undefined = set()
    if not predicted:
        undefined.add("precision")
    if not actual:
        undefined.update(("recall", "f1", "iou"))
    if not (actual and actual_not):
        undefined.add("kappa")
    if not (predicted and actual and predicted_not and actual_not):
        undefined.add("mcc")
    return tuple(key for key, _ in SCORE_LABELS if key in undefined)


def _as_classes(array, name: str) -> np.ndarray:
    """uint8 0/1/255 from a bool array or a 0/1/255 mask."""
    array = np.asarray(array)
    if array.dtype == bool:
        return array.astype(np.uint8)
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{name} must be a boolean or integer mask (1 = landslide, 0 = not, 255 = no data); "
                         f"got {array.dtype}")
    bad = (array != 0) & (array != LANDSLIDE) & (array != NODATA)
    if bad.any():
        raise ValueError(f"{name} holds values other than 0, 1 and 255 (for example {array[bad].flat[0]}); "
                         "it must be a landslide mask (1 = landslide, 0 = not, 255 = no data)")
    return array.astype(np.uint8, copy=False)


def confusion(reference, prediction, *, valid=None) -> Confusion:
    """Confusion of ``prediction`` against ``reference`` (same-shape bool or 0/1/255 uint8 masks).

    Pixels that are 255 (no data) in either, or False in ``valid``, are left out.
    """
    ref = _as_classes(reference, "reference")
    pred = _as_classes(prediction, "prediction")
    if ref.shape != pred.shape:
        raise ValueError(f"reference and prediction differ in shape: {ref.shape} vs {pred.shape}")
    ok = (ref != NODATA) & (pred != NODATA)
    if valid is not None:
        valid = np.asarray(valid, dtype=bool)
        if valid.shape != ref.shape:
            raise ValueError(f"valid mask shape {valid.shape} differs from the masks' shape {ref.shape}")
        ok &= valid
    r = (ref == LANDSLIDE) & ok
    p = (pred == LANDSLIDE) & ok
    tp = int(np.count_nonzero(r & p))
    fp = int(np.count_nonzero(p)) - tp
    fn = int(np.count_nonzero(r)) - tp
    tn = int(np.count_nonzero(ok)) - tp - fp - fn
    return Confusion(tp, fp, fn, tn)


def scores(conf: Confusion, *, zero_division: float | None = None) -> Scores:
    """Landslide-class scores of ``conf`` (exact integer arithmetic where it matters).

    Undefined scores are None, or ``zero_division`` when it is a number (0.0: scikit-learn's default).
    """
    tp, fp, fn, tn = conf.tp, conf.fp, conf.fn, conf.tn
    n = conf.total
    if n <= 0:
        raise ValueError("no valid pixel to score: the prediction and the reference share no pixel with data")
    undefined = undefined_scores(conf)
    values: dict[str, float | None] = dict.fromkeys(undefined)
    if "precision" not in undefined:
        values["precision"] = tp / (tp + fp)
    if "recall" not in undefined:
        values["recall"] = tp / (tp + fn)
        values["f1"] = 2 * tp / (2 * tp + fp + fn)
        values["iou"] = tp / (tp + fp + fn)
    if "kappa" not in undefined:
        # Binary kappa in closed form: 2(TP*TN - FN*FP) / ((TP+FP)(FP+TN) + (TP+FN)(FN+TN)), > 0 here.
        values["kappa"] = float(2 * (tp * tn - fn * fp) / ((tp + fp) * (fp + tn) + (tp + fn) * (fn + tn)))
    if "mcc" not in undefined:
        values["mcc"] = float((tp * tn - fp * fn) / math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)))
    if zero_division is not None:
        values = {k: float(zero_division) if v is None else v for k, v in values.items()}
    return Scores(
        overall_accuracy=(tp + tn) / n,
        reference_share=(tp + fn) / n,
        prediction_share=(tp + fp) / n,
        **values,
    )


# -- objects (connected regions, inventory polygons) ------------------------------------------


@dataclass(frozen=True)
class ObjectCounts:
    """Object-level agreement: does the map touch each reference landslide, and which map objects are wrong.

    Reference objects are the inventory polygons (vector reference) or the 8-connected regions of the
    reference mask (raster reference). A reference object is *hit* when any of its valid pixels is
    predicted as landslide; *unmapped* ones have no pixel with data in both maps (outside the grid,
    smaller than a pixel, entirely no data, or hidden by an overlapping polygon) and are neither hit
    nor missed. Predicted objects are 8-connected regions of the prediction; a *false* one has no
    pixel on a reference landslide (regions entirely on reference no data are not counted).
    """

    reference_objects: int
    reference_hit: int
    reference_missed: int
    reference_unmapped: int
    predicted_objects: int
    predicted_false: int

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class _ObjectTracker:
    """Follows labelled objects across row strips: flags per label, merged across strip edges."""

    def __init__(self, merge_across_strips: bool):
        self.merge = merge_across_strips
        self.count = 0  # labels are 1..count
        self.valid = np.zeros(1, dtype=bool)
        self.hit = np.zeros(1, dtype=bool)
        self.pairs: list[np.ndarray] = []
        self.previous_row: np.ndarray | None = None

    def _grow(self, count: int) -> None:
        if count + 1 > self.valid.size:
            size = max(count + 1, 2 * self.valid.size)
            self.valid = np.concatenate([self.valid, np.zeros(size - self.valid.size, dtype=bool)])
            self.hit = np.concatenate([self.hit, np.zeros(size - self.hit.size, dtype=bool)])

    def add_strip(self, labels: np.ndarray, valid: np.ndarray, hit: np.ndarray) -> None:
        """``labels``: global labels (0 = none) of this strip; flags where objects have valid/hit pixels."""
        top = int(labels.max()) if labels.size else 0
        self.count = max(self.count, top)
        self._grow(self.count)
        self.valid[labels[valid & (labels > 0)]] = True  # no sort needed: flags, repeated labels set them twice
        self.hit[labels[hit & (labels > 0)]] = True
        if self.merge:
            first = labels[0]
            if self.previous_row is not None:
                above = self.previous_row
                # 8-connectivity across the strip edge: each pixel touches the three above it.
                for shift in (-1, 0, 1):
                    a = above[max(0, shift): above.size + min(0, shift)]
                    b = first[max(0, -shift): first.size + min(0, -shift)]
                    both = (a > 0) & (b > 0)
                    if both.any():
                        self.pairs.append(np.unique(np.stack([a[both], b[both]], axis=1), axis=0))
            self.previous_row = labels[-1].copy()

    def objects(self) -> tuple[int, int]:
        """(objects with a valid pixel, of which hit)."""
        n = self.count
        valid, hit = self.valid[: n + 1].copy(), self.hit[: n + 1].copy()
        if self.pairs and n:
            root = _merge_labels(n, np.concatenate(self.pairs))
            merged_valid = np.zeros(n + 1, dtype=bool)
            merged_hit = np.zeros(n + 1, dtype=bool)
            np.logical_or.at(merged_valid, root, valid)
            np.logical_or.at(merged_hit, root, hit)
            is_root = root == np.arange(n + 1)
            valid, hit = merged_valid & is_root, merged_hit & is_root
        valid[0] = hit[0] = False
        return int(np.count_nonzero(valid)), int(np.count_nonzero(valid & hit))

    def total(self) -> int:
        """Objects whatever their validity (merged)."""
        n = self.count
        if not n:
            return 0
        if self.pairs:
            root = _merge_labels(n, np.concatenate(self.pairs))
            return int(np.count_nonzero(root[1:] == np.arange(1, n + 1)))
        return n


def _merge_labels(n: int, pairs: np.ndarray) -> np.ndarray:
    """Root label (the smallest) of each label 0..n after joining ``pairs`` (union-find by min-hooking)."""
    parent = np.arange(n + 1)
    a, b = pairs[:, 0], pairs[:, 1]
    while True:
        ra, rb = parent[a], parent[b]
        low = np.minimum(ra, rb)
        before = parent.copy()
        np.minimum.at(parent, ra, low)
        np.minimum.at(parent, rb, low)
        while True:  # path compression
            grand = parent[parent]
            if np.array_equal(grand, parent):
                break
            parent = grand
        if np.array_equal(parent, before):
            return parent


def _components(mask: np.ndarray, offset: int) -> np.ndarray:
    """8-connected labels of ``mask`` (int64, 0 = background) numbered from ``offset + 1``."""
    import cv2

    count, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8, ltype=cv2.CV_32S)
    labels = labels.astype(np.int64)
    labels[labels > 0] += offset
    return labels


# -- the reference: raster (any grid) or inventory polygons -----------------------------------


#: The grid type of the core (``rasters.Grid``), under the name this module has always used.
Grid = rasters.Grid


class _RasterReference:
    """A reference mask classified once to 0/1/255 and read on any prediction grid (nearest neighbour)."""

    kind = "raster"

    def __init__(self, path: str, value, workdir: str, is_cancelled):
        self.path = path
        self.value = value
        self.landslide_pixels = 0  # in the whole raster, on its own grid
        if not os.path.isfile(path):
            raise FileNotFoundError(f"reference raster {path} does not exist")
        with rasterio.open(path) as src:
            if src.crs is None:
                raise ValueError(f"reference raster {path} has no coordinate reference system; "
                                 "assign one (Raster > Projections > Assign Projection) and try again")
            self.grid = Grid.of(src)
            self.descriptions = " ".join(d or "" for d in src.descriptions)
            self.tags = src.tags()
            self.classified = os.path.join(workdir, "reference.tif")
            profile = rasters.geotiff_profile(src.profile, 1, "uint8", NODATA)
            with rasterio.open(self.classified, "w", **profile) as dst:
                for window in rasters.row_windows(src.height, src.width, BLOCK_ROWS):
                    rasters.check_cancelled(is_cancelled)
                    values = src.read(1, window=window, masked=True)
                    classes = _classify_reference(values, value)
                    self.landslide_pixels += int(np.count_nonzero(classes == LANDSLIDE))
                    dst.write(classes, 1, window=window)
        self.description = f"raster {path}"

    def read(self, grid: Grid, window: Window, dst_transform) -> np.ndarray:
        with rasterio.open(self.classified) as src:
            if grid.same_as(self.grid):
                return src.read(1, window=window)
            from rasterio.warp import reproject

            out = np.full((int(window.height), int(window.width)), NODATA, dtype=np.uint8)
            reproject(source=rasterio.band(src, 1), destination=out, src_nodata=NODATA, dst_nodata=NODATA,
                      dst_transform=dst_transform, dst_crs=grid.crs, resampling=Resampling.nearest)
            return out

    def labels(self, ref: np.ndarray, tracker: _ObjectTracker, grid: Grid, window: Window, dst_transform):
        return _components(ref == LANDSLIDE, tracker.count)

    def overlaps(self, grid: Grid) -> bool:
        """Cheap: a raster sharing no pixel with data with a map is an error raised by the caller."""
        return True

    def criterion(self) -> str:
        return "landslide = values greater than 0" if self.value is None else f"landslide = value {self.value:g}"


def _classify_reference(values: np.ma.MaskedArray, value) -> np.ndarray:
    data = np.ma.getdata(values)
    invalid = np.ma.getmaskarray(values)
    if np.issubdtype(data.dtype, np.floating):
        invalid = invalid | np.isnan(data)
    if value is None:
        landslide = data > 0
    else:
        landslide = data == value
    out = np.where(landslide, LANDSLIDE, 0).astype(np.uint8)
    out[invalid] = NODATA
    return out


class _VectorReference:
    """Inventory polygons rasterised onto each prediction grid."""

    kind = "vector"

    def __init__(self, geometries: Sequence[dict], crs, all_touched: bool, source: str):
        self.crs = CRS.from_user_input(crs)
        self.geometries = [_polygon_geometry(g, i) for i, g in enumerate(geometries)]
        if not self.geometries:
            raise ValueError(f"the reference inventory ({source}) holds no polygon; nothing to evaluate against")
        self.all_touched = all_touched
        self.path = source
        self.description = f"{len(self.geometries)} inventory polygons from {source}"
        self._cache: tuple[Any, list, np.ndarray] | None = None

    def _on(self, crs) -> tuple[list, np.ndarray]:
        if self._cache is not None and self._cache[0] == crs:
            return self._cache[1], self._cache[2]
        from rasterio.warp import transform_geom

        geoms = self.geometries if crs == self.crs else [transform_geom(self.crs, crs, g) for g in self.geometries]
        bounds = np.array([_bounds(g) for g in geoms], dtype=float)
        self._cache = (crs, geoms, bounds)
        return geoms, bounds

    def _shapes(self, grid: Grid, dst_transform, window: Window):
        from rasterio.windows import bounds as window_bounds

        geoms, bounds = self._on(grid.crs)
        left, bottom, right, top = window_bounds(Window(0, 0, window.width, window.height), dst_transform)
        near = ((bounds[:, 0] <= right) & (bounds[:, 2] >= left) & (bounds[:, 1] <= top) & (bounds[:, 3] >= bottom))
        return [(geoms[i], i + 1) for i in np.flatnonzero(near)]

    def read(self, grid: Grid, window: Window, dst_transform) -> np.ndarray:
        from rasterio.features import rasterize

        shape = (int(window.height), int(window.width))
        shapes = [(g, 1) for g, _ in self._shapes(grid, dst_transform, window)]
        if not shapes:
            return np.zeros(shape, dtype=np.uint8)
        return rasterize(shapes, out_shape=shape, transform=dst_transform, fill=0, dtype="uint8",
                         all_touched=self.all_touched)

    def overlaps(self, grid: Grid) -> bool:
        """Does any polygon's bounding box overlap the map's extent (in the map's CRS)?"""
        from rasterio.transform import array_bounds

        _, bounds = self._on(grid.crs)
        left, bottom, right, top = array_bounds(grid.height, grid.width, grid.transform)
        left, right = min(left, right), max(left, right)
        bottom, top = min(bottom, top), max(bottom, top)
        near = ((bounds[:, 0] <= right) & (bounds[:, 2] >= left) & (bounds[:, 1] <= top) & (bounds[:, 3] >= bottom))
        return bool(near.any())

    def labels(self, ref: np.ndarray, tracker: _ObjectTracker, grid: Grid, window: Window, dst_transform):
        from rasterio.features import rasterize

        tracker.count = max(tracker.count, len(self.geometries))
        shape = (int(window.height), int(window.width))
        shapes = self._shapes(grid, dst_transform, window)
        if not shapes:
            return np.zeros(shape, dtype=np.int64)
        return rasterize(shapes, out_shape=shape, transform=dst_transform, fill=0, dtype="int32",
                         all_touched=self.all_touched).astype(np.int64)


def _polygon_geometry(item: dict, index: int) -> dict:
    geom = item.get("geometry", item) if isinstance(item, dict) else None
    if not isinstance(geom, dict) or "type" not in geom:
        raise ValueError(f"reference feature {index + 1} has no GeoJSON geometry")
    if geom["type"] not in ("Polygon", "MultiPolygon"):
        raise ValueError(f"reference feature {index + 1} is a {geom['type']}; the inventory must hold polygons "
                         "(landslide outlines), not points or lines")
    return geom


def _bounds(geom: dict) -> tuple[float, float, float, float]:
    rings = geom["coordinates"] if geom["type"] == "Polygon" else [r for p in geom["coordinates"] for r in p]
    points = [pt[:2] for ring in rings for pt in ring]
    if not points:
        return (math.inf, math.inf, -math.inf, -math.inf)
    xy = np.asarray(points, dtype=float)
    return (xy[:, 0].min(), xy[:, 1].min(), xy[:, 0].max(), xy[:, 1].max())


def read_geojson(path: str) -> tuple[list[dict], CRS]:
    """Features of a GeoJSON file and their CRS (the legacy "crs" member, else WGS 84 as RFC 7946 says)."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except json.JSONDecodeError as exc:
        raise ValueError(f"reference {path} is not valid GeoJSON ({exc})") from exc
    if data.get("type") == "FeatureCollection":
        features = [f for f in data.get("features", []) if f.get("geometry")]
    elif data.get("type") == "Feature":
        features = [data]
    else:
        features = [data]
    crs = CRS.from_epsg(4326)
    name = (data.get("crs") or {}).get("properties", {}).get("name")
    if name:
        crs = CRS.from_user_input(name.replace("urn:ogc:def:crs:", "").replace("::", ":").replace("OGC:1.3:CRS84",
                                                                                                  "OGC:CRS84"))
    return features, crs


def _looks_like_baseline(path: str | None, descriptions: str = "", tags: dict | None = None) -> bool:
    """Does the reference raster look like an NDVI-threshold mask rather than an independent inventory?"""
    text = " ".join([os.path.basename(path or ""), descriptions, " ".join(f"{k} {v}" for k, v in (tags or {}).items())])
    text = text.upper()
    return "NDVI" in text or "THRESHOLD" in text


# -- evaluation of one or many maps -----------------------------------------------------------


@dataclass(frozen=True)
class PredictionEvaluation:
    name: str
    path: str
    confusion: Confusion
    scores: Scores
    excluded_prediction_nodata: int  # pixels with no data in the prediction
    excluded_reference_nodata: int   # pixels with data in the prediction but none in the reference
    objects: ObjectCounts
    warnings: tuple[str, ...] = ()   # sentences naming a problem of this map's scores and its fix

    def row(self) -> dict[str, Any]:
        """A flat record: name, path, counts, scores, exclusions, object counts."""
        row: dict[str, Any] = {"name": self.name, "path": self.path}
        row.update(asdict(self.confusion))
        row.update(self.scores.as_dict())
        row["excluded_prediction_nodata"] = self.excluded_prediction_nodata
        row["excluded_reference_nodata"] = self.excluded_reference_nodata
        row.update(self.objects.as_dict())
        return row


@dataclass(frozen=True)
class Evaluation:
    reference_kind: str          # "raster" or "vector"
    reference_description: str   # "raster <path>" or "N inventory polygons from <source>"
    reference_is_baseline: bool  # the reference looks like an NDVI-threshold mask, not ground truth
    all_touched: bool
    predictions: list[PredictionEvaluation] = field(default_factory=list)
    #: Every warning of the evaluation (about the reference, then each map's), one sentence each naming
    #: the problem and the fix; log them and show them in reports.
    warnings: list[str] = field(default_factory=list)

    def rows(self) -> list[dict[str, Any]]:
        return [p.row() for p in self.predictions]


def evaluate(
    reference_path: str | os.PathLike | None,
    prediction_paths: Sequence[str | os.PathLike],
    *,
    reference_kind: str = "auto",
    reference_value: float | None = None,
    reference_geometries: Sequence[dict] | None = None,
    reference_crs=None,
    reference_name: str | None = None,
    reference_is_baseline: bool | None = None,
    all_touched: bool = False,
    names: Sequence[str] | None = None,
    zero_division: float | None = None,
    progress=None,
    is_cancelled=None,
) -> Evaluation:
    """Score every prediction mask against one reference, block by block.

    reference_path: a raster mask (any grid and CRS: resampled nearest-neighbour onto each prediction's
        grid; landslide = pixels equal to ``reference_value``, or > 0 when it is None; its nodata is
        excluded) or a GeoJSON file of inventory polygons. Instead of a path, ``reference_geometries``
        (GeoJSON-like geometry or feature dicts) in ``reference_crs`` can be given.
    prediction_paths: masks (1 = landslide, 0 = not, nodata = no data, 255 by convention).
    all_touched: rasterise polygons on every pixel they touch, not only pixels whose centre is inside.
        Outside the polygons every pixel counts as "not landslide": limit the maps to the area the
        inventory covers, or scars mapped correctly outside it count as false positives.
    reference_is_baseline: the reference is a threshold mask, not ground truth (None: guessed from the
        raster's name, description and tags mentioning NDVI or a threshold).
    zero_division: None (default) leaves undefined scores None; a number replaces them (0.0 as scikit-learn).
    Undefined scores come with warnings (``Evaluation.warnings``): a reference raster with no landslide pixel
    at all, a reference with none over a map (an inventory outside the image), a map with none.
    """
    prediction_paths = [os.fspath(p) for p in prediction_paths]
    if not prediction_paths:
        raise ValueError("no prediction to evaluate: give at least one landslide mask")
    if names is None:
        names = [os.path.splitext(os.path.basename(p))[0] for p in prediction_paths]
    names = list(names)
    if len(names) != len(prediction_paths):
        raise ValueError(f"{len(names)} names for {len(prediction_paths)} predictions; give one name per prediction")
    for path in prediction_paths:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"prediction {path} does not exist")
    reference_path = os.fspath(reference_path) if reference_path is not None else None

    kind = reference_kind
    if kind == "auto":
        if reference_geometries is not None:
            kind = "vector"
        elif reference_path and reference_path.lower().endswith(GEOJSON_EXTENSIONS):
            kind = "vector"
        else:
            kind = "raster"
    if kind not in ("raster", "vector"):
        raise ValueError(f"reference_kind must be 'auto', 'raster' or 'vector', not {reference_kind!r}")

    with tempfile.TemporaryDirectory(prefix="landslide_eval_") as workdir:
        if kind == "vector":
            if reference_geometries is None:
                if reference_path is None:
                    raise ValueError("no reference: give a reference raster, a GeoJSON file or reference geometries")
                if not os.path.isfile(reference_path):
                    raise FileNotFoundError(f"reference inventory {reference_path} does not exist")
                if not reference_path.lower().endswith(GEOJSON_EXTENSIONS):
                    raise ValueError(
                        f"reference inventory {reference_path} is not GeoJSON; save it as GeoJSON, or use the "
                        "Processing algorithm 'Evaluate landslide maps', which reads any QGIS vector layer")
                features, file_crs = read_geojson(reference_path)
                reference_geometries = features
                reference_crs = reference_crs or file_crs
            if reference_crs is None:
                raise ValueError("reference geometries were given without reference_crs; say which CRS they are in")
            reference = _VectorReference(reference_geometries, reference_crs, all_touched,
                                         reference_name or reference_path or "the given geometries")
            baseline = bool(reference_is_baseline)
        else:
            if reference_path is None:
                raise ValueError("no reference: give a reference raster, a GeoJSON file or reference geometries")
            reference = _RasterReference(reference_path, reference_value, workdir, is_cancelled)
            baseline = (reference_is_baseline if reference_is_baseline is not None
                        else _looks_like_baseline(reference_path, reference.descriptions, reference.tags))

        messages = []
        reference_empty = kind == "raster" and reference.landslide_pixels == 0
        if reference_empty:
            labels = _listing([label for key, label in SCORE_LABELS if key in ("recall", "f1", "iou", "kappa", "mcc")])
            messages.append(
                f"The reference raster {reference_path} has no landslide pixel at all ({reference.criterion()}): "
                f"{labels} are undefined for every map. Check that the reference value is right and that this is "
                "the landslide inventory you meant to use.")
        # Maps on one grid (a run's methods) are scored in one pass: the reference is read and its
        # objects labelled once per strip for all of them.
        groups: dict[int, list[int]] = {}
        grids: list[Grid] = []
        for index, path in enumerate(prediction_paths):
            grid = _prediction_grid(path)
            first = next((g for g, other in enumerate(grids) if grid.same_as(other)), None)
            if first is None:
                grids.append(grid)
                first = len(grids) - 1
            groups.setdefault(first, []).append(index)
        results: list[PredictionEvaluation | None] = [None] * len(prediction_paths)
        done = 0
        for members in groups.values():
            size = len(members)

            def sub_progress(percent, done=done, size=size):
                rasters.report(progress, (done + size * percent / 100.0) * 100.0 / len(prediction_paths))

            items = _evaluate_together(reference, [names[i] for i in members], [prediction_paths[i] for i in members],
                                       zero_division, sub_progress, is_cancelled, reference_empty)
            for index, item in zip(members, items):
                results[index] = item
            done += len(members)
        for item in results:
            messages.extend(item.warnings)
    rasters.report(progress, 100.0)
    return Evaluation(kind, reference.description, baseline, bool(all_touched), results, messages)


def _read_prediction(src, window: Window, path: str) -> np.ndarray:
    values = src.read(1, window=window, masked=True)
    data = np.ma.getdata(values)
    invalid = np.ma.getmaskarray(values)
    if np.issubdtype(data.dtype, np.floating):
        invalid = invalid | np.isnan(data)
    bad = ~invalid & (data != 0) & (data != 1)
    if bad.any():
        found = ", ".join(str(v) for v in np.unique(data[bad])[:5])
        raise ValueError(
            f"prediction {path} holds values other than 0 and 1 (found {found}); it must be a landslide mask "
            "(1 = landslide, 0 = not, nodata = no data). Turn a cluster or probability raster into a mask first, "
            "or set its nodata value.")
    out = (data == 1).astype(np.uint8)
    out[invalid] = NODATA
    return out


def _prediction_grid(path: str) -> Grid:
    with rasterio.open(path) as src:
        if src.crs is None:
            raise ValueError(f"prediction {path} has no coordinate reference system; assign one and try again")
        return Grid.of(src)


class _Tally:
    """What one map's scores are counted from, strip by strip."""

    def __init__(self, reference_kind: str):
        self.total = Confusion(0, 0, 0, 0)
        self.excluded_prediction = self.excluded_reference = 0
        self.reference_objects = _ObjectTracker(merge_across_strips=reference_kind == "raster")
        self.predicted_objects = _ObjectTracker(merge_across_strips=True)


def _evaluate_together(reference, names: Sequence[str], paths: Sequence[str], zero_division: float | None, progress,
                       is_cancelled, reference_empty: bool = False) -> list[PredictionEvaluation]:
    """Scores of maps on one grid, in one pass over its strips (each map's counts are its own)."""
    import contextlib

    tallies = [_Tally(reference.kind) for _ in paths]
    with contextlib.ExitStack() as stack:
        sources = [stack.enter_context(rasterio.open(path)) for path in paths]
        src = sources[0]
        grid = Grid.of(src)
        windows = list(rasters.row_windows(src.height, src.width, BLOCK_ROWS))
        for i, window in enumerate(windows):
            rasters.check_cancelled(is_cancelled)
            dst_transform = src.window_transform(window)
            ref = reference.read(grid, window, dst_transform)
            ref_valid = ref != NODATA
            first = tallies[0].reference_objects
            for tally in tallies[1:]:  # every map's tracker has seen the same reference labels
                first.count = max(first.count, tally.reference_objects.count)
            ref_labels = reference.labels(ref, first, grid, window, dst_transform)
            for tally, source, path in zip(tallies, sources, paths):
                pred = _read_prediction(source, window, path)
                pred_valid = pred != NODATA
                valid = pred_valid & ref_valid
                tally.excluded_prediction += int(np.count_nonzero(~pred_valid))
                tally.excluded_reference += int(np.count_nonzero(pred_valid & ~ref_valid))
                tally.total = tally.total + confusion(ref, pred)
                hit = valid & (pred == LANDSLIDE) & (ref == LANDSLIDE)
                tally.reference_objects.count = max(tally.reference_objects.count, first.count)
                tally.reference_objects.add_strip(ref_labels, valid, hit)
                pred_labels = _components(pred == LANDSLIDE, tally.predicted_objects.count)
                tally.predicted_objects.add_strip(pred_labels, valid, hit)
            progress(100.0 * (i + 1) / len(windows))
    return [_finish(reference, name, path, tally, grid, zero_division, reference_empty)
            for name, path, tally in zip(names, paths, tallies)]


def _finish(reference, name: str, path: str, tally: _Tally, grid: Grid, zero_division: float | None,
            reference_empty: bool) -> PredictionEvaluation:
    total = tally.total
    if total.total == 0:
        raise ValueError(
            f"prediction {path} and the reference share no pixel with data; check that they cover the same area "
            f"(reference: {reference.description})")
    ref_with_data, ref_hit = tally.reference_objects.objects()
    pred_with_data, pred_hit = tally.predicted_objects.objects()
    objects = ObjectCounts(
        reference_objects=ref_with_data,
        reference_hit=ref_hit,
        reference_missed=ref_with_data - ref_hit,
        reference_unmapped=(len(reference.geometries) if reference.kind == "vector"
                            else tally.reference_objects.total()) - ref_with_data,
        predicted_objects=pred_with_data,
        predicted_false=pred_with_data - pred_hit,
    )
    messages = _score_warnings(name, total, reference, reference.overlaps(grid), reference_empty)
    return PredictionEvaluation(name, path, total, scores(total, zero_division=zero_division),
                                tally.excluded_prediction, tally.excluded_reference, objects, tuple(messages))


def _listing(items: Sequence[str]) -> str:
    """"a", "a and b", "a, b and c"."""
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _undefined_phrase(conf: Confusion, keys: Sequence[str] | None = None) -> str:
    """"recall, F1, IoU, kappa and MCC are undefined" for the undefined scores of ``conf`` (among ``keys``)."""
    undefined = [label for key, label in SCORE_LABELS
                 if key in undefined_scores(conf) and (keys is None or key in keys)]
    return f"{_listing(undefined)} {'is' if len(undefined) == 1 else 'are'} undefined"


def _score_warnings(name: str, conf: Confusion, reference, overlaps: bool, reference_empty: bool) -> list[str]:
    """One sentence per reason why scores of this map are undefined: the problem, then the fix."""
    messages = []
    predicted, actual = conf.tp + conf.fp, conf.tp + conf.fn
    predicted_not, actual_not = conf.fn + conf.tn, conf.fp + conf.tn
    if not actual:
        if reference.kind == "vector" and not overlaps:
            count = len(reference.geometries)
            where = f"none of its {count} polygons falls" if count > 1 else "its only polygon does not fall"
            messages.append(
                f"The reference inventory does not overlap {name}: {where} on the map, so {_undefined_phrase(conf)}. "
                "Check that the inventory covers this image (it may be outside it or in another CRS).")
        elif not reference_empty:  # an empty reference raster is said once for every map
            fix = ("Check that the inventory covers this image (it may be outside it or in another CRS)"
                   if reference.kind == "vector" else
                   "Check that the reference covers this image (it may be outside it or in another CRS) "
                   f"or that the reference value is right ({reference.criterion()})")
            messages.append(f"The reference has no landslide pixel over {name}'s valid area: "
                            f"{_undefined_phrase(conf)}. {fix}.")
    elif not actual_not:
        messages.append(f"The reference has no pixel without landslide over {name}'s valid area: "
                        f"{_undefined_phrase(conf, ('kappa', 'mcc'))}. Check the reference (or its reference value): "
                        "every compared pixel counts as landslide.")
    if actual and not predicted:
        messages.append(f"{name} has no landslide pixel over the area compared with the reference: "
                        f"{_undefined_phrase(conf, ('precision', 'mcc'))} and recall is 0 (all {actual:,} reference "
                        "landslide pixels are missed). If landslides are expected there, check the method's "
                        "thresholds and masks.")
    elif actual and actual_not and not predicted_not:
        messages.append(f"{name} flags every compared pixel as landslide: {_undefined_phrase(conf, ('mcc',))}. "
                        "Check the method's thresholds and masks.")
    return messages
