"""Evaluate landslide maps: landslide-class scores against a reference raster or inventory polygons, with a report."""
from __future__ import annotations

import json
import os
import tempfile

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsFeature,
    QgsField,
    QgsFields,
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
)

from ... import dependencies
from ..base import LandslideAlgorithm, local_raster_path, transform_geometry
from ..compat import (
    FAST_INSERT,
    FIELD_DOUBLE,
    FIELD_LONGLONG,
    FIELD_STRING,
    NUMBER_DOUBLE,
    SOURCE_RASTER,
    SOURCE_VECTOR,
    SOURCE_VECTOR_POLYGON,
    WKB_NO_GEOMETRY,
    WKT_PREFERRED,
)

#: Table fields of OUTPUT_TABLE besides name and path: integers first, then scores.
COUNT_FIELDS = ("tp", "fp", "fn", "tn", "excluded_prediction_nodata", "excluded_reference_nodata",
                "reference_objects", "reference_hit", "reference_missed", "reference_unmapped",
                "predicted_objects", "predicted_false")
SCORE_FIELDS = ("precision", "recall", "f1", "iou", "mcc", "kappa", "overall_accuracy", "reference_share",
                "prediction_share")


def _crs_for_rasterio(crs: QgsCoordinateReferenceSystem) -> str:
    authid = crs.authid()
    if authid.upper().startswith("EPSG:"):
        return authid
    return crs.toWkt(WKT_PREFERRED)


class EvaluateLandslideMapsAlgorithm(LandslideAlgorithm):
    NAME = "evaluate_landslide_maps"
    DISPLAY_NAME = "Evaluate landslide maps"
    GROUP = "evaluation"
    REQUIRES = dependencies.CORE + ("matplotlib",)
    HELP = (
        "Scores one or more landslide masks (1 landslide, 0 not, 255 no data) against a reference and writes a "
        "report.<br><br>"
        "<b>Reference</b>: either a raster (an inventory raster on any grid and CRS: it is resampled with nearest "
        "neighbour onto each map's grid; pixels greater than 0, or equal to the reference value, are landslide) "
        "or a polygon layer of mapped landslides (an inventory: rasterised onto each map's grid). Give exactly "
        "one. An NDVI-threshold mask used as reference is a baseline, not ground truth: the report says so.<br>"
        "<b>Scores</b> are for the landslide class: precision (share of the map that is right), recall (share "
        "of the reference found), F1, IoU, Matthews correlation (MCC) and Cohen's kappa, with the confusion "
        "matrix. Overall accuracy is listed but says little: landslides are often under 1 % of the pixels, so "
        "a map that flags nothing is more than 99 % accurate. Pixels with no data in a map or in the reference "
        "are excluded and counted. Object counts say how many reference landslides were touched by the map and "
        "how many map objects touch no reference landslide.<br>"
        "<b>Report</b>: a self-contained HTML page (metric tables, confusion matrices, maps drawn over the "
        "post-event true-colour image when given, parameters, software versions), a CSV table, optionally "
        "JSON, and a table layer with one row per map. The scores of the first map are also numeric outputs "
        "for the Graphical Modeler.<br>"
        "<b>Undefined scores</b>: a score that cannot be computed is left empty (NULL), not 0, with a warning in the "
        "log and at the top of the report: recall, F1, IoU, kappa and MCC when the reference has no landslide "
        "pixel over a map (an inventory outside the image or in another CRS, a wrong reference value), "
        "precision when a map has no landslide pixel.")

    REFERENCE_RASTER = "REFERENCE_RASTER"
    REFERENCE_VECTOR = "REFERENCE_VECTOR"
    REFERENCE_VALUE = "REFERENCE_VALUE"
    BASELINE_REFERENCE = "BASELINE_REFERENCE"
    ALL_TOUCHED = "ALL_TOUCHED"
    PREDICTIONS = "PREDICTIONS"
    TRUE_COLOUR = "TRUE_COLOUR"
    OUTPUT_HTML = "OUTPUT_HTML"
    OUTPUT_CSV = "OUTPUT_CSV"
    OUTPUT_JSON = "OUTPUT_JSON"
    OUTPUT_TABLE = "OUTPUT_TABLE"
    PRECISION = "PRECISION"
    RECALL = "RECALL"
    F1 = "F1"
    IOU = "IOU"
    MCC = "MCC"

    def initAlgorithm(self, config=None):  # noqa: N802
        self.add(QgsProcessingParameterRasterLayer(self.REFERENCE_RASTER, "Reference raster", optional=True),
                 "A landslide reference raster (any grid and CRS; resampled nearest-neighbour onto each map). "
                 "Pixels greater than 0 are landslide unless a reference value is set; its nodata is excluded. "
                 "Give this or a reference polygon layer, not both.")
        self.add(QgsProcessingParameterFeatureSource(self.REFERENCE_VECTOR, "Reference inventory polygons",
                                                     types=[SOURCE_VECTOR_POLYGON],
                                                     optional=True),
                 "Mapped landslide outlines (any CRS): rasterised onto each map's grid. Every pixel outside the "
                 "polygons counts as not landslide, so the maps should cover only the area the inventory covers. "
                 "Give this or a reference raster, not both.")
        self.add(QgsProcessingParameterBoolean(self.ALL_TOUCHED, "Rasterise polygons on every pixel they touch",
                                               defaultValue=False),
                 "Off: a pixel is landslide when its centre is inside a polygon. On: every pixel a polygon touches "
                 "is landslide (favours recall of small scars, inflates their area).")
        self.add(QgsProcessingParameterMultipleLayers(self.PREDICTIONS, "Landslide maps to evaluate",
                                                      layerType=SOURCE_RASTER),
                 "One or more landslide masks (uint8: 1 landslide, 0 not, nodata 255), e.g. the masks of Cluster "
                 "landslides for K-means and Gaussian mixtures. Each is scored on its own grid.")
        self.add(QgsProcessingParameterRasterLayer(self.TRUE_COLOUR, "Post-event true-colour image", optional=True),
                 "Background of the map figures: a reflectance stack with bands described B02, B03, B04, or a "
                 "3-band RGB raster (bands red, green, blue). Without it the maps are drawn on grey.")
        self.add(QgsProcessingParameterNumber(self.REFERENCE_VALUE, "Landslide value in the reference raster",
                                              type=NUMBER_DOUBLE, optional=True),
                 "Only for a reference raster with class codes: the value that means landslide. Empty: every "
                 "value greater than 0 is landslide.", advanced=True, decimals=0)
        self.add(QgsProcessingParameterBoolean(self.BASELINE_REFERENCE,
                                               "The reference is a threshold mask (a baseline, not ground truth)",
                                               defaultValue=False),
                 "Tick when the reference was made from the same images (e.g. an NDVI-drop threshold): the report "
                 "then says the scores measure agreement with a baseline, not accuracy. Rasters whose name, "
                 "description or tags mention NDVI or a threshold are recognised without it.", advanced=True)
        self.add(QgsProcessingParameterFileDestination(self.OUTPUT_HTML, "Report (HTML)", "HTML files (*.html)"),
                 "A single HTML file with figures embedded: open it in any browser.")
        self.add(QgsProcessingParameterFileDestination(self.OUTPUT_CSV, "Metrics table (CSV)", "CSV files (*.csv)"),
                 "One row per map: TP, FP, FN, TN, scores, excluded pixels, object counts.")
        self.add(QgsProcessingParameterFileDestination(self.OUTPUT_JSON, "Metrics (JSON)", "JSON files (*.json)",
                                                       optional=True, createByDefault=False),
                 "Everything in the report as JSON (for scripts), including the run parameters and versions.")
        self.add(QgsProcessingParameterFeatureSink(self.OUTPUT_TABLE, "Metrics",
                                                   type=SOURCE_VECTOR),
                 "A table without geometry, one row per map, with every count and score.")
        for name, label in ((self.PRECISION, "Precision (first map)"), (self.RECALL, "Recall (first map)"),
                            (self.F1, "F1 (first map)"), (self.IOU, "IoU (first map)"), (self.MCC, "MCC (first map)")):
            self.add_output(QgsProcessingOutputNumber(name, label))

    # -- inputs -------------------------------------------------------------------------------------
    def _reference_geometries(self, source, crs, context, feedback) -> list[dict]:
        transform = QgsCoordinateTransform(source.sourceCrs(), crs, context.transformContext())
        geometries = []
        for feature in source.getFeatures():
            if feedback.isCanceled():
                break
            geometry = feature.geometry()
            if geometry is None or geometry.isEmpty():
                continue
            transform_geometry(geometry, transform, self.REFERENCE_VECTOR)
            geometries.append(json.loads(geometry.asJson()))
        return geometries

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        self.require_dependencies()
        from ...core import evaluation, reports
        from ...core.rasters import Cancelled

        reference_layer = self.parameterAsRasterLayer(parameters, self.REFERENCE_RASTER, context)
        reference_source = self.parameterAsSource(parameters, self.REFERENCE_VECTOR, context)
        if (reference_layer is None) == (reference_source is None):
            raise QgsProcessingException(
                "Give exactly one reference: a reference raster or a reference polygon layer"
                + (", not both." if reference_layer is not None else "; none was given."))
        layers = self.parameterAsLayerList(parameters, self.PREDICTIONS, context)
        if not layers:
            raise QgsProcessingException(f"{self.PREDICTIONS}: give at least one landslide map to evaluate.")
        paths = [local_raster_path(layer, self.PREDICTIONS) for layer in layers]
        names = _unique([layer.name() for layer in layers])
        all_touched = self.parameterAsBool(parameters, self.ALL_TOUCHED, context)
        true_colour = None
        if self.parameterAsRasterLayer(parameters, self.TRUE_COLOUR, context) is not None:
            true_colour = self.raster_path(parameters, self.TRUE_COLOUR, context)
        baseline = True if self.parameterAsBool(parameters, self.BASELINE_REFERENCE, context) else None
        value = parameters.get(self.REFERENCE_VALUE)
        reference_value = self.parameterAsDouble(parameters, self.REFERENCE_VALUE, context) \
            if value not in (None, "") else None
        html_path = self.parameterAsFileOutput(parameters, self.OUTPUT_HTML, context)
        csv_path = self.parameterAsFileOutput(parameters, self.OUTPUT_CSV, context)
        json_path = self.parameterAsFileOutput(parameters, self.OUTPUT_JSON, context)

        kwargs = dict(names=names, all_touched=all_touched, reference_is_baseline=baseline,
                      progress=lambda p: feedback.setProgress(0.7 * p), is_cancelled=feedback.isCanceled)
        report_parameters = {"predictions": ", ".join(f"{n} ({p})" for n, p in zip(names, paths)),
                             "all_touched": all_touched, "true colour image": true_colour or "none"}
        figure_reference = None
        figure_reference_crs = None
        try:
            if reference_layer is not None:
                reference_path = self.raster_path(parameters, self.REFERENCE_RASTER, context)
                report_parameters["reference raster"] = reference_path
                report_parameters["reference value"] = reference_value if reference_value is not None else "> 0"
                result = evaluation.evaluate(reference_path, paths, reference_kind="raster",
                                             reference_value=reference_value, **kwargs)
                figure_reference = reference_path
            else:
                crs = layers[0].crs()
                feedback.pushInfo(f"Reading the reference polygons in {crs.authid() or crs.description()}")
                geometries = self._reference_geometries(reference_source, crs, context, feedback)
                if feedback.isCanceled():
                    raise Cancelled("cancelled by the user")
                source_label = reference_source.sourceName() or "reference polygons"
                report_parameters["reference polygons"] = source_label
                result = evaluation.evaluate(None, paths, reference_kind="vector", reference_geometries=geometries,
                                             reference_crs=_crs_for_rasterio(crs),
                                             reference_name=f"layer {source_label}", **kwargs)
                figure_reference, figure_reference_crs = geometries, _crs_for_rasterio(crs)

            for item in result.predictions:
                feedback.pushInfo(f"{item.name}: {item.scores.summary()} (TP {item.confusion.tp}, "
                                  f"FP {item.confusion.fp}, FN {item.confusion.fn})")
            for message in result.warnings:
                feedback.pushWarning(message)
            if len(result.predictions) > 1:
                feedback.pushInfo(f"Short answer: {reports.verdict(result).text}")
            if result.reference_is_baseline:
                feedback.reportError("The reference looks like a threshold mask: the NDVI-threshold mask is a "
                                     "baseline, not ground truth.", fatalError=False)

            # Figures go to a temporary folder: outputs are written only once everything has succeeded.
            with tempfile.TemporaryDirectory(prefix="landslide_report_") as work:
                feedback.setProgressText("Drawing figures")
                titles = {p.name: f"{p.name} (F1 {evaluation.format_score(p.scores.f1, 2)}, "
                                  f"MCC {evaluation.format_score(p.scores.mcc, 2)})"
                          for p in result.predictions}
                figures = {
                    "Maps over the post-event image": (
                        reports.overlay_figure(true_colour, dict(zip(names, paths)), os.path.join(work, "maps.png"),
                                               reference=figure_reference, reference_crs=figure_reference_crs,
                                               titles=titles), reports.OVERLAY_CAPTION),
                    "Confusion matrices": (reports.confusion_figure(result, os.path.join(work, "confusion.png")),
                                           reports.CONFUSION_CAPTION),
                }
                feedback.setProgress(90)
                if feedback.isCanceled():
                    raise Cancelled("cancelled by the user")
                reports.write_metrics_csv(result, csv_path)
                if json_path:
                    reports.write_metrics_json(result, json_path, parameters=report_parameters)
                reports.write_html_report(result, html_path, figures=figures, parameters=report_parameters,
                                          title="Landslide map evaluation")
        except Cancelled:
            raise QgsProcessingException("Cancelled by the user; no output was written.") from None
        except (ValueError, FileNotFoundError) as exc:
            raise QgsProcessingException(str(exc)) from exc

        fields = QgsFields()
        fields.append(QgsField("name", FIELD_STRING))
        fields.append(QgsField("path", FIELD_STRING))
        for name in COUNT_FIELDS:
            fields.append(QgsField(name, FIELD_LONGLONG))
        for name in SCORE_FIELDS:
            fields.append(QgsField(name, FIELD_DOUBLE))
        sink, table_id = self.parameterAsSink(parameters, self.OUTPUT_TABLE, context, fields,
                                              WKB_NO_GEOMETRY, QgsCoordinateReferenceSystem())
        if sink is None:
            raise QgsProcessingException(self.invalidSinkError(parameters, self.OUTPUT_TABLE))
        for row in result.rows():
            feature = QgsFeature(fields)
            feature.setAttributes([row["name"], row["path"]] + [int(row[k]) for k in COUNT_FIELDS]
                                  + [None if row[k] is None else float(row[k]) for k in SCORE_FIELDS])
            if not sink.addFeature(feature, FAST_INSERT):
                raise QgsProcessingException(self.writeFeatureError(sink, parameters, self.OUTPUT_TABLE))
        feedback.setProgress(100)

        # An undefined score of the first map is None (NULL in the Modeler), never a made-up 0.
        first = result.predictions[0].scores
        outputs = {self.OUTPUT_HTML: html_path, self.OUTPUT_CSV: csv_path, self.OUTPUT_TABLE: table_id,
                   self.PRECISION: first.precision, self.RECALL: first.recall, self.F1: first.f1,
                   self.IOU: first.iou, self.MCC: first.mcc}
        if json_path:
            outputs[self.OUTPUT_JSON] = json_path
        return outputs


def _unique(names: list[str]) -> list[str]:
    """Layer names made unique (two layers called 'mask' become 'mask' and 'mask (2)')."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name} ({seen[name]})")
    return out
