"""Reports of an evaluation: CSV, JSON, confusion-matrix and overlay figures, a self-contained HTML page.

matplotlib is needed only here and is imported inside the functions (Agg canvas, no pyplot: no
global state, safe in a QGIS worker thread). Every file is written atomically.
"""
from __future__ import annotations

import base64
import csv
import datetime as _dt
import html
import importlib
import json
import math
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import Resampling

from . import rasters
from .evaluation import LANDSLIDE, NODATA, SCORE_LABELS, Evaluation, format_score

#: Colours of the overlays (RGB 0..1): agreement green, false alarm red, missed blue, reference yellow.
COLOURS = {
    "reference": (1.0, 0.85, 0.0),
    "landslide": (1.0, 0.1, 0.1),
    "true positive": (0.1, 0.85, 0.1),
    "false positive": (1.0, 0.1, 0.1),
    "false negative": (0.2, 0.55, 1.0),
    "not observed": (1.0, 0.85, 0.0),
    "no data": (0.35, 0.35, 0.35),
}

#: Columns of the metric tables (CSV, Processing table), in order.
COLUMNS = (
    "name", "path", "tp", "fp", "fn", "tn", "precision", "recall", "f1", "iou", "mcc", "kappa",
    "overall_accuracy", "reference_share", "prediction_share", "excluded_prediction_nodata",
    "excluded_reference_nodata", "reference_objects", "reference_hit", "reference_missed", "reference_unmapped",
    "predicted_objects", "predicted_false",
)

CONVENTIONS = (
    "Pixels with no data in the prediction or the reference are excluded and counted. A score that cannot be "
    "computed is undefined (empty in the CSV, null in the JSON), never 0: precision when the map has no landslide "
    "pixel; recall, F1 and IoU when the reference has no landslide pixel over the map; Cohen's kappa when the "
    "reference has a single class; MCC when either map is constant. Each case comes with a warning.")

#: Score fields that can be undefined (None).
SCORE_KEYS = tuple(key for key, _ in SCORE_LABELS)


# -- tables -----------------------------------------------------------------------------------------


def _plain(value):
    """JSON-safe Python value (NaN -> None, numpy scalars -> Python)."""
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return None if not math.isfinite(value) else value
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    return str(value)


def write_metrics_csv(evaluation: Evaluation, path: str | os.PathLike) -> str:
    """One row per prediction: counts, scores, exclusions, object counts (floats at full precision)."""
    with rasters.atomic_output(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(COLUMNS) + ["reference"])
            writer.writeheader()
            for row in evaluation.rows():
                # full precision; an undefined score (None) is an empty cell
                record = {key: ("" if row[key] is None else repr(row[key]) if isinstance(row[key], float)
                                else row[key]) for key in COLUMNS}
                record["reference"] = evaluation.reference_description
                writer.writerow(record)
    return os.fspath(path)


def evaluation_record(evaluation: Evaluation, parameters: Mapping | None = None) -> dict[str, Any]:
    """Everything an evaluation says, as plain data (what the JSON file holds)."""
    return _plain({
        "reference": {
            "kind": evaluation.reference_kind,
            "description": evaluation.reference_description,
            "is_threshold_baseline": evaluation.reference_is_baseline,
            "all_touched": evaluation.all_touched,
        },
        "warnings": list(evaluation.warnings),
        "predictions": [
            {**row, "confusion_matrix": {"rows": "reference (not landslide, landslide)",
                                         "columns": "prediction (not landslide, landslide)",
                                         "counts": p.confusion.matrix().tolist()},
             "warnings": list(p.warnings)}
            for p, row in zip(evaluation.predictions, evaluation.rows())
        ],
        "conventions": CONVENTIONS,
        "parameters": dict(parameters or {}),
        "versions": software_versions(),
        "created": _now(),
    })


def write_metrics_json(evaluation: Evaluation, path: str | os.PathLike, parameters: Mapping | None = None) -> str:
    record = evaluation_record(evaluation, parameters)
    with rasters.atomic_output(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(record, handle, indent=2, allow_nan=False)
            handle.write("\n")
    return os.fspath(path)


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def plugin_version() -> str:
    """``version=`` of the plugin's metadata.txt."""
    metadata = Path(__file__).resolve().parent.parent / "metadata.txt"
    try:
        for line in metadata.read_text(encoding="utf-8").splitlines():
            if line.startswith("version="):
                return line.split("=", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def software_versions() -> dict[str, str]:
    """Versions of the plugin and the libraries behind the numbers (for the report's reproducibility)."""
    versions = {"landslide_plugin": plugin_version(), "numpy": np.__version__, "rasterio": rasterio.__version__,
                "GDAL (rasterio)": rasterio.__gdal_version__}
    try:
        from osgeo import gdal

        versions["GDAL (QGIS)"] = gdal.__version__
    except Exception:  # no GDAL Python bindings (outside QGIS): rasterio's GDAL above is the one used
        versions["GDAL (QGIS)"] = "not installed"
    for label, module in (("scikit-learn", "sklearn"), ("OpenCV", "cv2"), ("matplotlib", "matplotlib")):
        try:
            versions[label] = importlib.import_module(module).__version__
        except Exception:
            versions[label] = "not installed"
    return versions


# -- figures ---------------------------------------------------------------------------------------


def _figure(width_in: float, height_in: float, dpi: int):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path) -> str:
    with rasters.atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=fig.dpi)
    return os.fspath(path)


#: The cells of the confusion figure: (row, column, count, label, colour); rows are the reference
#: (landslide, not landslide), columns the map (landslide, not landslide).
CONFUSION_CELLS = (
    (0, 0, "tp", "found", "true positive"),
    (0, 1, "fn", "missed", "false negative"),
    (1, 0, "fp", "false alarms", "false positive"),
    (1, 1, "tn", "stable ground", None),
)

CONFUSION_CAPTION = (
    "Pixel counts of each map against the reference, with their share of the reference's landslide pixels: "
    "found (green) and missed (blue) add up to 100 %; false alarms (red) are counted against the same "
    "number, so a map that flags nine pixels of stable ground for every true one shows about 900 %, in a "
    "deeper red the more false alarms there are (on a logarithmic scale up to 1000 %). Stable ground left "
    "alone (grey) outnumbers everything else and is not coloured: a matrix normalised per row would show it "
    "as 99 % right for good and bad maps alike.")


def _blend(colour, strength: float):
    strength = float(min(1.0, max(0.0, strength)))
    return tuple(1.0 - strength * (1.0 - c) for c in colour)


def _strength(key: str, share: float) -> float:
    """How deep a cell's colour is: found and missed by their share (0..1); false alarms on a log scale,
    100 % of the reference half way, 1000 % and more full."""
    if key == "fp":
        return min(1.0, math.log1p(share) / math.log1p(10.0))
    return min(1.0, share)


def confusion_figure(evaluation: Evaluation, path: str | os.PathLike, *, columns: int = 3,
                     panel_inches: float = 3.6, dpi: int = 100) -> str:
    """One 2 x 2 matrix per map: counts, coloured by their share of the reference's landslide pixels.

    Rows are the reference (landslide, not landslide), columns the map. Found, missed and false alarms are
    coloured green, blue and red by their share of the reference's landslide pixels (false alarms on a log
    scale, deeper the more there are), so a map drowning its scars in false alarms looks bad; the stable
    ground stays grey. Nothing is normalised per row. The title holds the landslide-class scores.
    """
    n = len(evaluation.predictions)
    if n == 0:
        raise ValueError("the evaluation holds no prediction; nothing to draw")
    cols = min(columns, n)
    rows = math.ceil(n / cols)
    height = rows * (panel_inches + 0.5)
    fig = _figure(cols * panel_inches, height, dpi)
    for i, pred in enumerate(evaluation.predictions):
        ax = fig.add_subplot(rows, cols, i + 1)
        counts = {"tp": pred.confusion.tp, "fn": pred.confusion.fn, "fp": pred.confusion.fp,
                  "tn": pred.confusion.tn}
        reference = counts["tp"] + counts["fn"]
        image = np.ones((2, 2, 3), dtype=np.float32)
        for row, col, key, label, colour in CONFUSION_CELLS:
            share = counts[key] / reference if reference else None
            strength = 0.0
            if colour is None or share is None:
                image[row, col] = (0.9, 0.9, 0.9)
                detail = "" if colour is None else "no reference"
            else:
                strength = _strength(key, share)
                image[row, col] = _blend(COLOURS[colour], 0.12 + 0.88 * strength)
                detail = f"{100 * share:,.0f} %" if share >= 0.01 or share == 0 else "< 1 %"
            ax.text(col, row, f"{counts[key]:,}\n{label}\n{detail}".rstrip(), ha="center", va="center",
                    fontsize=9, color="white" if strength > 0.6 else "black")
        ax.imshow(image, interpolation="nearest")
        ax.set_xticks([0, 1], ["landslide", "not landslide"], fontsize=8)
        ax.set_yticks([0, 1], ["landslide", "not\nlandslide"], fontsize=8, va="center")
        ax.set_xlabel("map", fontsize=8)
        ax.set_ylabel("reference", fontsize=8)
        s = pred.scores
        ax.set_title(f"{pred.name}\nprecision {format_score(s.precision, 2)} · recall {format_score(s.recall, 2)}\n"
                     f"F1 {format_score(s.f1, 2)} · MCC {format_score(s.mcc, 2)}", fontsize=9)
    # margins in inches so that titles (three lines) and axis labels fit whatever the number of rows
    fig.subplots_adjust(left=0.75 / (cols * panel_inches), right=0.98, bottom=0.5 / height,
                        top=1 - 0.75 / height, wspace=0.5, hspace=0.55)
    return _save(fig, path)


def _factor(height: int, width: int, max_pixels: int) -> int:
    return max(1, math.ceil(math.sqrt(height * width / max(1, max_pixels))))


#: Reflectance above which a pixel is left out of the contrast stretch (clouds, snow): the stretch is for land.
BRIGHT_REFLECTANCE = 0.3


def _stretch(rgb: np.ndarray) -> np.ndarray:
    """2–98 % linear stretch per band over the land (NaN stay NaN).

    For reflectance (values up to about 1), pixels brighter than ``BRIGHT_REFLECTANCE`` in any band (clouds,
    snow) are left out of the percentiles, as long as a tenth of the image is land, so the land is not
    drawn dark because clouds take the top of the range; clouds then saturate to white.
    """
    out = np.empty_like(rgb, dtype=np.float32)
    finite = np.isfinite(rgb).all(axis=2)
    land = finite
    values = rgb[finite]
    if values.size and np.nanmax(values) <= 2.0:  # reflectance, not 8-bit or 16-bit digital numbers
        dark = finite & (np.nan_to_num(rgb, nan=np.inf) < BRIGHT_REFLECTANCE).all(axis=2)
        if dark.sum() >= 0.1 * finite.sum():
            land = dark
    for b in range(rgb.shape[2]):
        band = rgb[:, :, b].astype(np.float32)
        sample = band[land]
        if sample.size == 0:
            out[:, :, b] = np.nan
            continue
        low, high = np.percentile(sample, [2, 98])
        out[:, :, b] = (band - low) / (high - low) if high > low else 0.5
    return out


def _reduce_any(mask: np.ndarray, factor: int) -> np.ndarray:
    """Block reduction of a 0/1/255 mask: landslide if any pixel is, no data if all are."""
    if factor == 1:
        return mask.astype(np.uint8)
    h, w = mask.shape
    oh, ow = math.ceil(h / factor), math.ceil(w / factor)
    padded = np.full((oh * factor, ow * factor), NODATA, dtype=np.uint8)
    padded[:h, :w] = mask
    blocks = padded.reshape(oh, factor, ow, factor)
    landslide = (blocks == LANDSLIDE).any(axis=(1, 3))
    nodata = (blocks == NODATA).all(axis=(1, 3))
    return np.where(landslide, LANDSLIDE, np.where(nodata, NODATA, 0)).astype(np.uint8)


def _classes(values: np.ma.MaskedArray) -> np.ndarray:
    data = np.ma.getdata(values)
    invalid = np.ma.getmaskarray(values)
    if np.issubdtype(data.dtype, np.floating):
        invalid = invalid | np.isnan(data)
    out = (data == LANDSLIDE).astype(np.uint8)
    out[invalid] = NODATA
    return out


def _decimated(full: rasters.Grid, factor: int) -> rasters.Grid:
    """The grid the panels are drawn on: ``full`` with pixels ``factor`` times larger."""
    return rasters.Grid(full.crs, full.transform * Affine.scale(factor, factor),
                        math.ceil(full.width / factor), math.ceil(full.height / factor))


@dataclass(frozen=True)
class TrueColour:
    """A raster's true colour read for the overlay (``read_true_colour``): what ``overlay_figure`` draws it from."""

    #: 2–98 % stretched RGB on the display grid (h, w, 3; NaN where there is no data)
    rgb: np.ndarray
    #: the raster's own grid, and how many of its pixels a display pixel spans
    grid: rasters.Grid
    factor: int


def read_true_colour(path: str | os.PathLike, band_names: Sequence[str] = ("B04", "B03", "B02"),
                     max_pixels: int = 640_000) -> TrueColour:
    """The true colour of a stack (bands described B04/B03/B02) or a 3-band RGB raster, averaged onto a display
    grid of at most ``max_pixels`` and stretched; to read it beside other work and draw it later."""
    return TrueColour(*_read_true_colour(os.fspath(path), band_names, max_pixels))


def _read_true_colour(path: str, band_names: Sequence[str], max_pixels: int):
    """(stretched RGB on the display grid, full grid, decimation factor) of a stack or a 3-band RGB raster."""
    with rasterio.open(path) as src:
        fallback = {name: i + 1 for i, name in enumerate(band_names)} if src.count == 3 else None
        bands = rasters.find_bands(path, list(band_names), fallback)
        full = rasters.Grid.of(src)
        factor = _factor(src.height, src.width, max_pixels)
        shown = _decimated(full, factor)
        data = rasters.read_reflectance(src, [bands[b] for b in band_names], out_shape=(shown.height, shown.width),
                                        resampling=Resampling.average)
    rgb = data.transpose(1, 2, 0)
    return _stretch(rgb), full, factor


def _mask_on_grid(mask, full: rasters.Grid, factor: int, name: str, georeferenced: bool) -> np.ndarray:
    shown = _decimated(full, factor)
    if isinstance(mask, np.ndarray) or not isinstance(mask, (str, os.PathLike)):
        array = np.asarray(mask)
        if array.dtype == bool:
            array = array.astype(np.uint8)
        if array.shape == (shown.height, shown.width):
            return array.astype(np.uint8)
        if array.shape != (full.height, full.width):
            raise ValueError(f"mask '{name}' has shape {array.shape}; the image is {(full.height, full.width)}")
        return _reduce_any(array, factor)
    path = os.fspath(mask)
    with rasterio.open(path) as src:
        if georeferenced and src.crs is not None:
            # Max resampling keeps a landslide pixel visible however coarse the panel (nodata ignored).
            from rasterio.warp import reproject

            classes_path = None
            out = np.full((shown.height, shown.width), NODATA, dtype=np.uint8)
            if not (src.dtypes[0] == "uint8" and src.nodata == NODATA):
                classes_path = _classified_copy(src, path)
            source = rasterio.open(classes_path) if classes_path else src
            try:
                reproject(rasterio.band(source, 1), out, src_nodata=NODATA, dst_nodata=NODATA,
                          dst_transform=shown.transform, dst_crs=shown.crs, resampling=Resampling.max)
            finally:
                if classes_path:
                    source.close()
                    os.remove(classes_path)
            return out
        if (src.height, src.width) != (full.height, full.width):
            raise ValueError(f"mask {path} is {src.height} x {src.width} px; the image is "
                             f"{full.height} x {full.width}")
        rows = max(factor, (rasters.BLOCK_ROWS // factor) * factor)
        parts = [_reduce_any(_classes(src.read(1, window=w, masked=True)), factor)
                 for w in rasters.row_windows(src.height, src.width, rows)]
        return np.concatenate(parts, axis=0)


def _classified_copy(src, path: str) -> str:
    """A 0/1/255 uint8 copy (temporary, beside nothing the user sees) for masks without a 255 nodata."""
    import tempfile

    fd, tmp = tempfile.mkstemp(prefix="landslide_mask_", suffix=".tif")
    os.close(fd)
    profile = rasters.geotiff_profile(src.profile, 1, "uint8", NODATA)
    with rasterio.open(tmp, "w", **profile) as dst:
        for window in rasters.row_windows(src.height, src.width):
            dst.write(_classes(src.read(1, window=window, masked=True)), 1, window=window)
    return tmp


def _rasterise_reference(geometries, crs, shown: rasters.Grid, georeferenced: bool) -> np.ndarray:
    from rasterio.features import rasterize
    from rasterio.warp import transform_geom

    if not georeferenced:
        raise ValueError("reference polygons need a georeferenced image (a raster path) to be drawn on")
    shapes = []
    for g in geometries:
        geom = g.get("geometry", g)
        if crs is not None and shown.crs is not None and CRS.from_user_input(crs) != shown.crs:
            geom = transform_geom(crs, shown.crs, geom)
        shapes.append((geom, 1))
    if not shapes:
        return np.zeros((shown.height, shown.width), np.uint8)
    # all_touched so that polygons smaller than a display pixel stay visible
    return rasterize(shapes, out_shape=(shown.height, shown.width), transform=shown.transform, fill=0,
                     dtype="uint8", all_touched=True)


def _paint(base: np.ndarray, where: np.ndarray, colour, alpha: float = 0.75) -> None:
    base[where] = (1 - alpha) * base[where] + alpha * np.asarray(colour, dtype=np.float32)


def _ring(region: np.ndarray) -> np.ndarray:
    """The pixels just outside ``region`` (8-neighbourhood): a one-pixel ring that leaves the region's own
    pixels visible, however small it is."""
    padded = np.pad(region, 1, constant_values=False)
    grown = np.zeros_like(region)
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            grown |= padded[dy:dy + region.shape[0], dx:dx + region.shape[1]]
    return grown & ~region


OVERLAY_CAPTION = (
    "The post-event image in true colour, contrast-stretched to the land (clouds saturate to white), then the "
    "reference landslides (yellow, ringed in black so that they show over clouds) and every map against "
    "them: green where the map and the reference agree on a landslide, red where the map flags ground the "
    "reference does not (false alarm), blue where the map misses a reference landslide, yellow where the "
    "reference has a landslide the map could not see (no data: cloud, shadow, outside the DEM), grey where "
    "the map has no data. Small scars are kept visible when the image is shown coarser than its pixels.")


def overlay_figure(
    true_colour,
    masks: Mapping[str, Any],
    path: str | os.PathLike,
    *,
    reference=None,
    reference_crs=None,
    reference_label: str = "reference",
    titles: Mapping[str, str] | None = None,
    band_names: Sequence[str] = ("B04", "B03", "B02"),
    max_pixels: int = 640_000,
    columns: int = 2,
    panel_inches: float = 5.5,
    dpi: int = 100,
) -> str:
    """Panels of masks over the post-event true-colour image, two a row, the legend right above them.

    true_colour: an (h, w, 3) float array scaled 0..1, or a raster path (a reflectance stack with bands
        described B04/B03/B02, or a 3-band RGB) shown with a 2–98 % stretch over the land, or that raster
        already read (:func:`read_true_colour`, with the same ``band_names`` and ``max_pixels``), or None (grey).
    masks: name -> mask path or array (1 = landslide, 0 = not, 255 = no data).
    reference: a reference mask (path or array) or GeoJSON-like polygons in ``reference_crs``; when given
        it gets its own panel (filled yellow, ringed in black) and each map is coloured as agreement /
        false alarm / missed / not observed.
    max_pixels: pixels per panel; larger images are averaged (image) and max-reduced (masks: a landslide
        pixel stays visible) so memory and file size stay small.
    The first panel shows the image alone; then the reference, then one panel per mask, ``columns`` a row.
    """
    masks = dict(masks)
    if not masks:
        raise ValueError("no mask to draw; give at least one prediction")
    georeferenced = False
    if true_colour is None:
        first = next(iter(masks.values()))
        if isinstance(first, (str, os.PathLike)):
            full = rasters.Grid.from_path(first)
            georeferenced = True
        else:
            h, w = np.asarray(first).shape
            full = rasters.Grid(None, Affine.identity(), w, h)
        factor = _factor(full.height, full.width, max_pixels)
        shown = _decimated(full, factor)
        rgb = np.full((shown.height, shown.width, 3), 0.8, dtype=np.float32)
        image_title = "no image given"
    elif isinstance(true_colour, (str, os.PathLike, TrueColour)):
        read = true_colour
        if not isinstance(read, TrueColour):
            read = read_true_colour(true_colour, band_names, max_pixels)
        rgb, full, factor = read.rgb, read.grid, read.factor
        georeferenced = True
        shown = _decimated(full, factor)
        image_title = "post-event true colour (contrast-stretched)"
    else:
        array = np.asarray(true_colour, dtype=np.float32)
        if array.ndim != 3 or array.shape[2] != 3:
            raise ValueError(f"true_colour must be an (h, w, 3) array; got shape {array.shape}")
        h, w = array.shape[:2]
        full = rasters.Grid(None, Affine.identity(), w, h)
        factor = _factor(h, w, max_pixels)
        shown = _decimated(full, factor)
        if factor > 1:
            padded = np.full((shown.height * factor, shown.width * factor, 3), np.nan, np.float32)
            padded[:h, :w] = array
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN blocks stay NaN (drawn black)
                array = np.nanmean(padded.reshape(shown.height, factor, shown.width, factor, 3), axis=(1, 3))
        rgb = np.clip(array, 0, 1)
        image_title = "post-event true colour"
    rgb = np.where(np.isfinite(rgb), np.clip(rgb, 0, 1), 0).astype(np.float32)

    ref = None
    if reference is not None:
        if isinstance(reference, (list, tuple)):
            ref = _rasterise_reference(reference, reference_crs, shown, georeferenced)
        else:
            ref = _mask_on_grid(reference, full, factor, reference_label, georeferenced)

    panels: list[tuple[str, np.ndarray, list[str]]] = [(image_title, rgb, [])]
    if ref is not None:
        img = rgb.copy()
        _paint(img, ref == NODATA, COLOURS["no data"], 0.6)
        _paint(img, ref == LANDSLIDE, COLOURS["reference"], 0.9)
        img[_ring(ref == LANDSLIDE)] = (0.0, 0.0, 0.0)  # a dark ring: shows over white clouds too
        panels.append((reference_label, img, ["reference"]))
    for name, mask in masks.items():
        m = _mask_on_grid(mask, full, factor, name, georeferenced)
        img = rgb.copy()
        _paint(img, m == NODATA, COLOURS["no data"], 0.6)
        if ref is None:
            _paint(img, m == LANDSLIDE, COLOURS["landslide"])
            legend = ["landslide"]
        else:
            _paint(img, (m == LANDSLIDE) & (ref == LANDSLIDE), COLOURS["true positive"], 0.85)
            _paint(img, (m == LANDSLIDE) & (ref == 0), COLOURS["false positive"], 0.85)
            _paint(img, (m == 0) & (ref == LANDSLIDE), COLOURS["false negative"], 0.85)
            _paint(img, (m == NODATA) & (ref == LANDSLIDE), COLOURS["not observed"], 0.9)
            legend = ["true positive", "false positive", "false negative", "not observed"]
        panels.append(((titles or {}).get(name, name), img, legend))

    cols = min(columns, len(panels))
    rows = math.ceil(len(panels) / cols)
    aspect = shown.height / shown.width
    used = set()
    for _, _, legend in panels:
        used.update(legend)
    keys = [k for k in LEGEND if k in used] + ["no data"]
    legend_rows = math.ceil(len(keys) / 3)
    legend_inches = 0.15 + 0.26 * legend_rows  # the legend sits right above the panels, across their width
    title_inches = 0.4
    width = cols * panel_inches
    height = legend_inches + rows * (panel_inches * aspect + title_inches) + 0.15
    fig = _figure(width, height, dpi)
    for i, (title, img, _) in enumerate(panels):
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.imshow(img, interpolation="nearest")
        ax.set_title(title, fontsize=10)
        ax.set_axis_off()
    from matplotlib.patches import Patch

    fig.legend(handles=[Patch(facecolor=COLOURS[k], edgecolor="black" if k == "reference" else COLOURS[k],
                              label=LEGEND.get(k, k)) for k in keys],
               loc="upper center", bbox_to_anchor=(0.5, 1 - 0.08 / height), ncol=min(3, len(keys)),
               fontsize=9.5, frameon=False, handlelength=1.6, columnspacing=1.5)
    fig.subplots_adjust(left=0.01, right=0.99, top=1 - (legend_inches + title_inches) / height,
                        bottom=0.1 / height, wspace=0.03, hspace=title_inches / (panel_inches * aspect))
    return _save(fig, path)


#: Legend labels of the overlay, in order.
LEGEND = {
    "reference": "reference landslide",
    "landslide": "landslide (map)",
    "true positive": "found (map and reference)",
    "false positive": "false alarm (map only)",
    "false negative": "missed (reference only)",
    "not observed": "reference, map without data",
    "no data": "no data (cloud, shadow, masked)",
}


# -- the short answer --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """Which map matched the reference best, by F1 and by MCC, and how the primary method did."""

    best_f1: tuple[str, ...]
    f1: float | None
    best_mcc: tuple[str, ...]
    mcc: float | None
    primary: str | None
    text: str

    @property
    def primary_is_best(self) -> bool:
        return self.primary is not None and self.primary in self.best_f1 and self.primary in self.best_mcc


def _best(evaluation: Evaluation, key: str) -> tuple[tuple[str, ...], float | None]:
    values = [(getattr(p.scores, key), p.name) for p in evaluation.predictions]
    defined = [(v, name) for v, name in values if v is not None and math.isfinite(v)]
    if not defined:
        return (), None
    top = max(v for v, _ in defined)
    return tuple(name for v, name in defined if v >= top - 1e-12), top


def _close(value: float | None, best: float | None) -> bool:
    """Equal to two decimals (within 0.005): no map is worth trusting more for that."""
    return value is not None and best is not None and math.isfinite(value) and abs(best - value) < 0.005


def _names(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def verdict(evaluation: Evaluation, primary: str | None = None) -> Verdict:
    """The short answer a report starts with: the best map by F1 and by MCC, and whether it is ``primary``
    (the name of the primary method's map), in sentences for people."""
    best_f1, f1 = _best(evaluation, "f1")
    best_mcc, mcc = _best(evaluation, "mcc")
    by_name = {p.name: p for p in evaluation.predictions}
    sentences = []
    if not best_f1 and not best_mcc:
        sentences.append("No map could be scored against this reference (see the warnings): none can be "
                         "recommended.")
    elif best_f1 == best_mcc:
        sentences.append(f"{_names(best_f1)} matched the reference best: F1 {format_score(f1, 2)}, "
                         f"MCC {format_score(mcc, 2)}.")
    else:
        parts = []
        if best_f1:
            parts.append(f"by F1, {_names(best_f1)} ({format_score(f1, 2)})")
        if best_mcc:
            parts.append(f"by MCC, {_names(best_mcc)} ({format_score(mcc, 2)})")
        text = "; ".join(parts)
        sentences.append(f"Best against the reference: {text}.")
    if primary is not None and primary in by_name and (best_f1 or best_mcc):
        scores = by_name[primary].scores
        if primary in best_f1 and primary in best_mcc:
            sentences.append(f"That is the primary method, {primary}, whose mask became the polygons.")
        elif _close(scores.f1, f1) and _close(scores.mcc, mcc):
            sentences.append(f"The primary method, {primary}, whose mask became the polygons, scored as well to two "
                             f"decimals (F1 {format_score(scores.f1, 2)}, MCC {format_score(scores.mcc, 2)}).")
        elif primary in best_f1 or primary in best_mcc:
            which = "F1" if primary in best_f1 else "MCC"
            sentences.append(f"The primary method, {primary}, is best by {which} (F1 "
                             f"{format_score(scores.f1, 2)}, MCC {format_score(scores.mcc, 2)}).")
        else:
            best = (best_f1 or best_mcc)[0]
            sentences.append(f"The primary method, {primary}, whose mask became the polygons, scored F1 "
                             f"{format_score(scores.f1, 2)}, MCC {format_score(scores.mcc, 2)}: on this scene "
                             f"the map of {best} ({Path(by_name[best].path).name}) is the one to trust.")
    if evaluation.reference_is_baseline:
        sentences.append("The reference looks like a threshold mask: these scores measure agreement with a "
                         "baseline, not accuracy.")
    return Verdict(best_f1, f1, best_mcc, mcc, primary, " ".join(sentences))


# -- HTML -------------------------------------------------------------------------------------------


def _fmt(value) -> str:
    if isinstance(value, float):
        return "n/a" if not math.isfinite(value) else f"{value:.4f}"
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    return html.escape(str(value))


#: Background of the best value of each score (a colour QGIS's own HTML viewer shows too: bgcolor).
BEST = "#c7e9c0"


def _score_cell(value, key: str, best: float | None = None) -> str:
    """A table cell; an undefined score (None) says so instead of showing a number; the best is highlighted."""
    if value is None and key in SCORE_KEYS:
        return "<td class='undefined' title='cannot be computed for this map: see the warnings'>undefined</td>"
    if best is not None and isinstance(value, float) and math.isfinite(value) and abs(value - best) < 1e-12:
        return f"<td class='best' bgcolor='{BEST}'><b>{_fmt(value)}</b></td>"
    return f"<td>{_fmt(value)}</td>"


#: Widest a figure is shown (pixels): Qt's HTML viewer knows no max-width, so the width is given outright.
FIGURE_WIDTH = 1100


def _image_tag(title: str, figure, caption: str | None = None) -> str:
    """A figure QGIS's HTML viewer shows too: a heading, its caption, then the embedded PNG (no wider than
    ``FIGURE_WIDTH``)."""
    data = bytes(figure) if isinstance(figure, (bytes, bytearray)) else Path(figure).read_bytes()
    encoded = base64.b64encode(data).decode("ascii")
    text = f"<p class='caption'>{html.escape(caption)}</p>" if caption else ""
    width = int.from_bytes(data[16:20], "big") if data[:8] == b"\x89PNG\r\n\x1a\n" else 0
    size = f' width="{min(width, FIGURE_WIDTH)}"' if width else ""
    return (f"<h3>{html.escape(title)}</h3>{text}"
            f'<p><img alt="{html.escape(title)}"{size} src="data:image/png;base64,{encoded}"></p>')


HTML_STYLE = """
body{font-family:sans-serif;max-width:1300px;margin:1.5em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.6em 0;font-size:13px}
th,td{border:1px solid #bbb;padding:3px 7px;text-align:right}
th{background:#eee} td.text,th.text{text-align:left}
.answer{background:#e5f5e0;border:1px solid #74c476;padding:.7em 1em;margin:1em 0;font-size:16px}
.warning{background:#fff3cd;border:1px solid #e0b400;padding:.6em 1em;margin:1em 0}
.note{background:#eef4fb;border:1px solid #9bbbe0;padding:.6em 1em;margin:1em 0}
td.undefined{color:#8a5a00;font-style:italic} td.best{background:#c7e9c0}
img{max-width:100%;height:auto} p.caption{font-size:14px;color:#444;max-width:1100px}
"""


def _box(kind: str, body: str, colour: str) -> str:
    """A coloured box in browsers (CSS) and in QGIS's HTML viewer (a one-cell table with bgcolor)."""
    return (f"<table class='box' width='100%' cellpadding='8' style='border:none;margin:1em 0'><tr>"
            f"<td class='text {kind}' bgcolor='{colour}' style='text-align:left'>{body}</td></tr></table>")


def write_html_report(
    evaluation: Evaluation,
    path: str | os.PathLike,
    *,
    figures: Mapping[str, Any] | None = None,
    parameters: Mapping[str, Any] | None = None,
    title: str = "Landslide map evaluation",
    primary: str | None = None,
) -> str:
    """A single HTML file: the short answer (``verdict``), warnings, the score table with the best of each score
    highlighted, figures with captions (embedded PNG), the reference, parameters, versions.

    ``figures``: title -> PNG (path or bytes), or title -> (PNG, caption). ``primary``: the name of the
    primary method's map (the one that became polygons), marked in the table and judged in the answer.
    The page reads the same in a browser and in Qt's HTML viewer (tables with cellpadding and bgcolor,
    no layout that needs modern CSS).
    """
    rows = evaluation.rows()
    answer = verdict(evaluation, primary)
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{HTML_STYLE}</style></head><body>", f"<h1>{html.escape(title)}</h1>",
             f"<p>Created {_now()} by landslide_plugin {html.escape(plugin_version())}.</p>",
             _box("answer", f"<b>Short answer.</b> {html.escape(answer.text)}", "#e5f5e0")]
    # Warnings next: they say which scores below are undefined and why.
    parts.extend(f"<div class='warning' role='alert'><b>Warning:</b> {html.escape(message)}</div>"
                 for message in evaluation.warnings)

    parts.append("<h2>Scores of the landslide class</h2>"
                 "<table border='1' cellspacing='0' cellpadding='4'><tr>")
    headers = [("map", "name"), ("precision", "precision"), ("recall", "recall"), ("F1", "f1"), ("IoU", "iou"),
               ("MCC", "mcc"), ("kappa", "kappa"), ("TP", "tp"), ("FP", "fp"), ("FN", "fn"), ("TN", "tn"),
               ("overall accuracy", "overall_accuracy"), ("landslide share, reference", "reference_share"),
               ("landslide share, map", "prediction_share")]
    parts.append("".join(f"<th class='text'>{h}</th>" if k == "name" else f"<th>{h}</th>" for h, k in headers))
    parts.append("</tr>")
    best = {}
    for key in ("precision", "recall", "f1", "iou", "mcc", "kappa"):
        values = [row[key] for row in rows if row[key] is not None and math.isfinite(row[key])]
        if len(values) > 1 and max(values) > 0:
            best[key] = max(values)
    for row in rows:
        name = html.escape(str(row["name"]))
        marks = []
        if row["name"] in answer.best_f1 or row["name"] in answer.best_mcc:
            marks.append("best")
        if row["name"] == primary:
            marks.append("primary")
        label = f"<b>{name}</b> ({', '.join(marks)})" if marks else name
        parts.append("<tr>" + "".join(
            f"<td class='text'>{label}</td>" if k == "name" else _score_cell(row[k], k, best.get(k))
            for _, k in headers) + "</tr>")
    parts.append("</table>")
    parts.append("<p class='caption'>Green cells: the best value of each score. <i>primary</i>: the method whose "
                 "mask became the polygons. Precision: share of the map that is landslide in the reference; "
                 "recall: share of the reference the map found; F1 and IoU combine both; MCC also counts the "
                 "stable ground and stays near 0 for a map no better than chance.</p>")
    if any(row[k] is None for row in rows for k in SCORE_KEYS):
        parts.append("<p class='note'><i>undefined</i>: the score cannot be computed for that map (precision of a map "
                     "with no landslide pixel, recall, F1 and IoU when the reference has no landslide pixel over "
                     "the map, kappa and MCC when a map is constant); it is not 0. See the warnings at the top.</p>")
    if rows and rows[0]["reference_share"]:
        share = rows[0]["reference_share"]
        parts.append(
            f"<div class='note'>Landslides cover {100 * share:.2f} % of the compared pixels of the reference, so a "
            f"map that flags nothing at all reaches an overall accuracy of {1 - share:.4f}. Judge the maps by "
            "precision, recall, F1, IoU and MCC of the landslide class; overall accuracy is listed only for "
            "completeness.</div>")

    parts.append("<h3>Objects and excluded pixels</h3><table border='1' cellspacing='0' cellpadding='4'><tr>")
    object_headers = [("map", "name"), ("reference landslides", "reference_objects"), ("found", "reference_hit"),
                      ("missed", "reference_missed"), ("without data", "reference_unmapped"),
                      ("map objects", "predicted_objects"), ("map objects on no landslide", "predicted_false"),
                      ("pixels without data in the map", "excluded_prediction_nodata"),
                      ("pixels without data in the reference", "excluded_reference_nodata")]
    parts.append("".join(f"<th class='text'>{h}</th>" if k == "name" else f"<th>{h}</th>"
                         for h, k in object_headers) + "</tr>")
    for row in rows:
        parts.append("<tr>" + "".join(
            f"<td class='text'>{_fmt(row[k])}</td>" if k == "name" else f"<td>{_fmt(row[k])}</td>"
            for _, k in object_headers) + "</tr>")
    parts.append("</table><p>Objects are inventory polygons or 8-connected regions; a reference landslide is "
                 "found when any of its pixels is mapped.</p>")

    if figures:
        parts.append("<h2>Figures</h2>")
        for name, fig in figures.items():
            figure, caption = fig if isinstance(fig, tuple) else (fig, None)
            parts.append(_image_tag(name, figure, caption))

    parts.append("<h2>Reference</h2>")
    if evaluation.reference_kind == "vector":
        how = ("inventory polygons, rasterised onto each map's grid "
               + ("on every pixel they touch (all_touched)" if evaluation.all_touched
                  else "on the pixels whose centre is inside")
               + "; every pixel outside the polygons counts as not landslide")
    else:
        how = "raster mask, resampled nearest-neighbour onto each map's grid"
    parts.append(f"<p><b>{html.escape(evaluation.reference_description)}</b> ({html.escape(how)}).</p>")
    if evaluation.reference_is_baseline:
        parts.append("<div class='warning'><b>Warning:</b> the reference looks like an NDVI-threshold mask. "
                     "The NDVI-threshold mask is a baseline, not ground truth: these scores measure agreement "
                     "with that baseline, not the accuracy of the maps. Use an independent landslide inventory "
                     "to measure accuracy.</div>")
    parts.append("<p>Map files:</p><ul>")
    parts.extend(f"<li>{html.escape(r['name'])}: {html.escape(r['path'])}</li>" for r in rows)
    parts.append(f"</ul><p>{html.escape(CONVENTIONS)}</p>")

    if parameters:
        parts.append("<h2>Parameters</h2><table border='1' cellspacing='0' cellpadding='4'>")
        parts.extend(f"<tr><th class='text'>{html.escape(str(k))}</th><td class='text'>{_fmt(v)}</td></tr>"
                     for k, v in parameters.items())
        parts.append("</table>")

    parts.append("<h2>Software</h2><table border='1' cellspacing='0' cellpadding='4'>")
    parts.extend(f"<tr><th class='text'>{html.escape(k)}</th><td class='text'>{html.escape(v)}</td></tr>"
                 for k, v in software_versions().items())
    parts.append("</table></body></html>\n")

    with rasters.atomic_output(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write("\n".join(parts))
    return os.fspath(path)
