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
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
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


def confusion_figure(evaluation: Evaluation, path: str | os.PathLike, *, columns: int = 3,
                     panel_inches: float = 3.6, dpi: int = 100) -> str:
    """One 2 x 2 matrix per prediction: counts and row-normalised %, landslide-class scores in the title."""
    n = len(evaluation.predictions)
    if n == 0:
        raise ValueError("the evaluation holds no prediction; nothing to draw")
    cols = min(columns, n)
    rows = math.ceil(n / cols)
    height = rows * (panel_inches + 0.5)
    fig = _figure(cols * panel_inches, height, dpi)
    labels = ["not landslide", "landslide"]
    for i, pred in enumerate(evaluation.predictions):
        ax = fig.add_subplot(rows, cols, i + 1)
        counts = pred.confusion.matrix()
        totals = counts.sum(axis=1, keepdims=True)
        share = np.divide(100.0 * counts, totals, out=np.zeros(counts.shape), where=totals > 0)
        ax.imshow(share, cmap="Blues", vmin=0, vmax=100)
        for r in range(2):
            for c in range(2):
                text = f"{counts[r, c]:,}\n" + (f"{share[r, c]:.1f} %" if totals[r, 0] else "–")
                ax.text(c, r, text, ha="center", va="center", fontsize=9,
                        color="white" if share[r, c] > 60 else "black")
        ax.set_xticks([0, 1], labels, fontsize=8)
        ax.set_yticks([0, 1], labels, fontsize=8, rotation=90, va="center")
        ax.set_xlabel("prediction", fontsize=8)
        ax.set_ylabel("reference", fontsize=8)
        s = pred.scores
        ax.set_title(f"{pred.name}\nP {format_score(s.precision)}  R {format_score(s.recall)}  "
                     f"F1 {format_score(s.f1)}\nIoU {format_score(s.iou)}  MCC {format_score(s.mcc)}", fontsize=9)
    # margins in inches so that titles (three lines) and axis labels fit whatever the number of rows
    fig.subplots_adjust(left=0.5 / (cols * panel_inches), right=0.98, bottom=0.55 / height,
                        top=1 - 0.75 / height, wspace=0.45, hspace=0.75)
    return _save(fig, path)


def _factor(height: int, width: int, max_pixels: int) -> int:
    return max(1, math.ceil(math.sqrt(height * width / max(1, max_pixels))))


def _stretch(rgb: np.ndarray) -> np.ndarray:
    """2–98 % linear stretch per band (NaN stay NaN)."""
    out = np.empty_like(rgb, dtype=np.float32)
    for b in range(rgb.shape[2]):
        band = rgb[:, :, b].astype(np.float32)
        finite = band[np.isfinite(band)]
        if finite.size == 0:
            out[:, :, b] = np.nan
            continue
        low, high = np.percentile(finite, [2, 98])
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


class _DisplayGrid:
    """The (decimated) grid every panel is drawn on."""

    def __init__(self, height, width, factor, crs=None, transform=None):
        self.factor = factor
        self.height, self.width = math.ceil(height / factor), math.ceil(width / factor)
        self.full_shape = (height, width)
        self.crs = crs
        self.transform = transform * transform.scale(factor, factor) if transform is not None else None


def _read_true_colour(path: str, band_names: Sequence[str], max_pixels: int):
    with rasterio.open(path) as src:
        fallback = {name: i + 1 for i, name in enumerate(band_names)} if src.count == 3 else None
        bands = rasters.find_bands(path, list(band_names), fallback)
        grid = _DisplayGrid(src.height, src.width, _factor(src.height, src.width, max_pixels), src.crs, src.transform)
        data = src.read([bands[b] for b in band_names], out_shape=(len(band_names), grid.height, grid.width),
                        resampling=Resampling.average, masked=True)
    rgb = np.ma.filled(data.astype(np.float32), np.nan).transpose(1, 2, 0)
    return _stretch(rgb), grid


def _mask_on_grid(mask, grid: _DisplayGrid, name: str) -> np.ndarray:
    if isinstance(mask, np.ndarray) or not isinstance(mask, (str, os.PathLike)):
        array = np.asarray(mask)
        if array.dtype == bool:
            array = array.astype(np.uint8)
        if array.shape == (grid.height, grid.width):
            return array.astype(np.uint8)
        if array.shape != grid.full_shape:
            raise ValueError(f"mask '{name}' has shape {array.shape}; the image is {grid.full_shape}")
        return _reduce_any(array, grid.factor)
    path = os.fspath(mask)
    with rasterio.open(path) as src:
        if grid.transform is not None and src.crs is not None:
            # Max resampling keeps a landslide pixel visible however coarse the panel (nodata ignored).
            from rasterio.warp import reproject

            classes_path = None
            out = np.full((grid.height, grid.width), NODATA, dtype=np.uint8)
            if not (src.dtypes[0] == "uint8" and src.nodata == NODATA):
                classes_path = _classified_copy(src, path)
            source = rasterio.open(classes_path) if classes_path else src
            try:
                reproject(rasterio.band(source, 1), out, src_nodata=NODATA, dst_nodata=NODATA,
                          dst_transform=grid.transform, dst_crs=grid.crs, resampling=Resampling.max)
            finally:
                if classes_path:
                    source.close()
                    os.remove(classes_path)
            return out
        if (src.height, src.width) != grid.full_shape:
            raise ValueError(f"mask {path} is {src.height} x {src.width} px; the image is "
                             f"{grid.full_shape[0]} x {grid.full_shape[1]}")
        rows = max(grid.factor, (rasters.BLOCK_ROWS // grid.factor) * grid.factor)
        parts = [_reduce_any(_classes(src.read(1, window=w, masked=True)), grid.factor)
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


def _rasterise_reference(geometries, crs, grid: _DisplayGrid) -> np.ndarray:
    from rasterio.features import rasterize
    from rasterio.warp import transform_geom

    if grid.transform is None:
        raise ValueError("reference polygons need a georeferenced image (a raster path) to be drawn on")
    shapes = []
    for g in geometries:
        geom = g.get("geometry", g)
        if crs is not None and grid.crs is not None and CRS.from_user_input(crs) != grid.crs:
            geom = transform_geom(crs, grid.crs, geom)
        shapes.append((geom, 1))
    if not shapes:
        return np.zeros((grid.height, grid.width), np.uint8)
    # all_touched so that polygons smaller than a display pixel stay visible
    return rasterize(shapes, out_shape=(grid.height, grid.width), transform=grid.transform, fill=0,
                     dtype="uint8", all_touched=True)


def _paint(base: np.ndarray, where: np.ndarray, colour, alpha: float = 0.75) -> None:
    base[where] = (1 - alpha) * base[where] + alpha * np.asarray(colour, dtype=np.float32)


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
    columns: int = 3,
    panel_inches: float = 4.0,
    dpi: int = 100,
) -> str:
    """Panels of masks over the post-event true-colour image (as in the reference study: six panels).

    true_colour: an (h, w, 3) float array scaled 0..1, or a raster path (a reflectance stack with bands
        described B04/B03/B02, or a 3-band RGB) shown with a 2–98 % stretch, or None (grey background).
    masks: name -> mask path or array (1 = landslide, 0 = not, 255 = no data).
    reference: a reference mask (path or array) or GeoJSON-like polygons in ``reference_crs``; when given
        it gets its own panel and each prediction is coloured as agreement / false alarm / missed.
    max_pixels: pixels per panel; larger images are averaged (image) and max-reduced (masks: a landslide
        pixel stays visible) so memory and file size stay small.
    The first panel shows the image alone; then the reference, then one panel per mask.
    """
    masks = dict(masks)
    if not masks:
        raise ValueError("no mask to draw; give at least one prediction")
    if true_colour is None:
        first = next(iter(masks.values()))
        if isinstance(first, (str, os.PathLike)):
            with rasterio.open(first) as src:
                grid = _DisplayGrid(src.height, src.width, _factor(src.height, src.width, max_pixels),
                                    src.crs, src.transform)
        else:
            h, w = np.asarray(first).shape
            grid = _DisplayGrid(h, w, _factor(h, w, max_pixels))
        rgb = np.full((grid.height, grid.width, 3), 0.8, dtype=np.float32)
        image_title = "no image given"
    elif isinstance(true_colour, (str, os.PathLike)):
        rgb, grid = _read_true_colour(os.fspath(true_colour), band_names, max_pixels)
        image_title = "post-event true colour"
    else:
        array = np.asarray(true_colour, dtype=np.float32)
        if array.ndim != 3 or array.shape[2] != 3:
            raise ValueError(f"true_colour must be an (h, w, 3) array; got shape {array.shape}")
        h, w = array.shape[:2]
        grid = _DisplayGrid(h, w, _factor(h, w, max_pixels))
        f = grid.factor
        if f > 1:
            padded = np.full((grid.height * f, grid.width * f, 3), np.nan, np.float32)
            padded[:h, :w] = array
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN blocks stay NaN (drawn black)
                array = np.nanmean(padded.reshape(grid.height, f, grid.width, f, 3), axis=(1, 3))
        rgb = np.clip(array, 0, 1)
        image_title = "post-event true colour"
    rgb = np.where(np.isfinite(rgb), np.clip(rgb, 0, 1), 0).astype(np.float32)

    ref = None
    if reference is not None:
        if isinstance(reference, (list, tuple)):
            ref = _rasterise_reference(reference, reference_crs, grid)
        else:
            ref = _mask_on_grid(reference, grid, reference_label)

    panels: list[tuple[str, np.ndarray, list[str]]] = [(image_title, rgb, [])]
    if ref is not None:
        img = rgb.copy()
        _paint(img, ref == NODATA, COLOURS["no data"], 0.6)
        _paint(img, ref == LANDSLIDE, COLOURS["reference"])
        panels.append((reference_label, img, ["reference"]))
    for name, mask in masks.items():
        m = _mask_on_grid(mask, grid, name)
        img = rgb.copy()
        _paint(img, m == NODATA, COLOURS["no data"], 0.6)
        if ref is None:
            _paint(img, m == LANDSLIDE, COLOURS["landslide"])
            legend = ["landslide"]
        else:
            _paint(img, (m == LANDSLIDE) & (ref == LANDSLIDE), COLOURS["true positive"])
            _paint(img, (m == LANDSLIDE) & (ref == 0), COLOURS["false positive"])
            _paint(img, (m == 0) & (ref == LANDSLIDE), COLOURS["false negative"])
            legend = ["true positive", "false positive", "false negative"]
        panels.append(((titles or {}).get(name, name), img, legend))

    cols = min(columns, len(panels))
    rows = math.ceil(len(panels) / cols)
    aspect = grid.height / grid.width
    fig = _figure(cols * panel_inches, rows * panel_inches * aspect + 0.6 * rows + 0.5, dpi)
    used = set()
    for i, (title, img, legend) in enumerate(panels):
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.imshow(img, interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.set_axis_off()
        used.update(legend)
    from matplotlib.patches import Patch

    keys = [k for k in COLOURS if k in used] + ["no data"]
    fig.legend(handles=[Patch(color=COLOURS[k], label=k) for k in keys], loc="lower center",
               ncol=len(keys), fontsize=8, frameon=False)
    fig.subplots_adjust(left=0.01, right=0.99, top=0.95, bottom=0.08, wspace=0.03, hspace=0.15)
    return _save(fig, path)


# -- HTML -------------------------------------------------------------------------------------------


def _fmt(value) -> str:
    if isinstance(value, float):
        return "n/a" if not math.isfinite(value) else f"{value:.4f}"
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    return html.escape(str(value))


def _score_cell(value, key: str) -> str:
    """A table cell; an undefined score (None) says so instead of showing a number."""
    if value is None and key in SCORE_KEYS:
        return "<td class='undefined' title='cannot be computed for this map: see the warnings'>undefined</td>"
    return f"<td>{_fmt(value)}</td>"


def _image_tag(title: str, figure) -> str:
    data = figure if isinstance(figure, (bytes, bytearray)) else Path(figure).read_bytes()
    encoded = base64.b64encode(data).decode("ascii")
    return (f'<figure><img alt="{html.escape(title)}" src="data:image/png;base64,{encoded}">'
            f"<figcaption>{html.escape(title)}</figcaption></figure>")


HTML_STYLE = """
body{font-family:sans-serif;max-width:1300px;margin:1.5em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.6em 0;font-size:13px}
th,td{border:1px solid #bbb;padding:3px 7px;text-align:right}
th{background:#eee} td.text,th.text{text-align:left}
.warning{background:#fff3cd;border:1px solid #e0b400;padding:.6em 1em;margin:1em 0}
.note{background:#eef4fb;border:1px solid #9bbbe0;padding:.6em 1em;margin:1em 0}
td.undefined{color:#8a5a00;font-style:italic}
figure{margin:1em 0} img{max-width:100%} figcaption{font-size:13px;color:#555}
"""


def write_html_report(
    evaluation: Evaluation,
    path: str | os.PathLike,
    *,
    figures: Mapping[str, Any] | None = None,
    parameters: Mapping[str, Any] | None = None,
    title: str = "Landslide map evaluation",
) -> str:
    """A single HTML file: reference, metric table, figures (embedded PNG), parameters, versions."""
    rows = evaluation.rows()
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{HTML_STYLE}</style></head><body>", f"<h1>{html.escape(title)}</h1>",
             f"<p>Created {_now()} by landslide_plugin {html.escape(plugin_version())}.</p>"]
    # Warnings first: they say which scores below are undefined and why.
    parts.extend(f"<div class='warning' role='alert'><b>Warning:</b> {html.escape(message)}</div>"
                 for message in evaluation.warnings)

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
    if rows and rows[0]["reference_share"]:
        share = rows[0]["reference_share"]
        parts.append(
            f"<div class='note'>Landslides cover {100 * share:.2f} % of the compared pixels of the reference, so a "
            f"map that flags nothing at all reaches an overall accuracy of {1 - share:.4f}. Judge the maps by "
            "precision, recall, F1, IoU and MCC of the landslide class; overall accuracy is listed only for "
            "completeness.</div>")

    parts.append("<h2>Scores of the landslide class</h2><table><tr>")
    headers = [("map", "name"), ("precision", "precision"), ("recall", "recall"), ("F1", "f1"), ("IoU", "iou"),
               ("MCC", "mcc"), ("kappa", "kappa"), ("TP", "tp"), ("FP", "fp"), ("FN", "fn"), ("TN", "tn"),
               ("overall accuracy", "overall_accuracy"), ("landslide share, reference", "reference_share"),
               ("landslide share, map", "prediction_share")]
    parts.append("".join(f"<th class='text'>{h}</th>" if k == "name" else f"<th>{h}</th>" for h, k in headers))
    parts.append("</tr>")
    for row in rows:
        parts.append("<tr>" + "".join(
            f"<td class='text'>{_fmt(row[k])}</td>" if k == "name" else _score_cell(row[k], k)
            for _, k in headers) + "</tr>")
    parts.append("</table>")
    if any(row[k] is None for row in rows for k in SCORE_KEYS):
        parts.append("<p class='note'><i>undefined</i>: the score cannot be computed for that map (precision of a map "
                     "with no landslide pixel, recall, F1 and IoU when the reference has no landslide pixel over "
                     "the map, kappa and MCC when a map is constant); it is not 0. See the warnings at the top.</p>")

    parts.append("<h3>Objects and excluded pixels</h3><table><tr>")
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
                 "found when any of its pixels is mapped. Map files:</p><ul>")
    parts.extend(f"<li>{html.escape(r['name'])}: {html.escape(r['path'])}</li>" for r in rows)
    parts.append(f"</ul><p>{html.escape(CONVENTIONS)}</p>")

    if figures:
        parts.append("<h2>Figures</h2>")
        parts.extend(_image_tag(name, fig) for name, fig in figures.items())

    if parameters:
        parts.append("<h2>Parameters</h2><table>")
        parts.extend(f"<tr><th class='text'>{html.escape(str(k))}</th><td class='text'>{_fmt(v)}</td></tr>"
                     for k, v in parameters.items())
        parts.append("</table>")

    parts.append("<h2>Software</h2><table>")
    parts.extend(f"<tr><th class='text'>{html.escape(k)}</th><td class='text'>{html.escape(v)}</td></tr>"
                 for k, v in software_versions().items())
    parts.append("</table></body></html>\n")

    with rasters.atomic_output(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write("\n".join(parts))
    return os.fspath(path)
