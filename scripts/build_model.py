#!/usr/bin/env python3
"""Build resources/models/landslide_mapping.model3, the Graphical Modeler model of the mapping chain.

The model is made of the plugin's individual algorithms, so a user can open it in the Graphical
Modeler, see every step, change a parameter or swap a step:

    prepare (pre) ─┐
                   ├─ co-register (post onto pre, B11 gradient, with both SCLs)
    prepare (post)─┘        │
                   cluster (GMM 3, DEM slope mask) ─ polygons
                            └─ evaluate against the reference raster → HTML report

It is built here with the same API the Graphical Modeler uses and saved with ``toFile``, so it can
be regenerated after a parameter of an algorithm changes:

    python scripts/build_model.py            # writes the models
    python scripts/build_model.py --check    # exit 1 if a saved model differs from a fresh build

A second model, resources/models/event_to_landslide_map.model3, goes from an event to a map:

    find a pre/post pair (area, date) ─┬─ download pre ─┐
                                       └─ download post ┴─ map landslides (one step) → folder, report
"""
from __future__ import annotations

import argparse
import difflib
import os
import sys
import tempfile
import xml.etree.ElementTree as ElementTree
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODEL_PATH = ROOT / "resources" / "models" / "landslide_mapping.model3"
EVENT_MODEL_PATH = ROOT / "resources" / "models" / "event_to_landslide_map.model3"
PROCESSING_PLUGINS = "/usr/share/qgis/python/plugins"

MODEL_NAME = "landslide_mapping"
MODEL_GROUP = "Landslide mapping"

# Model inputs (names as in the one-step algorithm 'Map landslides (pre/post)').
PRE, POST, DEM, REFERENCE = "PRE", "POST", "DEM", "REFERENCE"
# Child algorithm ids.
PREPARE_PRE, PREPARE_POST = "prepare_pre", "prepare_post"
COREGISTER, CLUSTER, POLYGONS, EVALUATE = "coregister", "cluster_gmm3", "polygons", "evaluate"
# Model outputs: (child id, child output parameter, model output name).
OUTPUTS = (
    (COREGISTER, "OUTPUT", "Aligned post-event stack"),
    (CLUSTER, "OUTPUT_MASK", "Landslide mask"),
    (POLYGONS, "OUTPUT", "Landslide polygons"),
    (EVALUATE, "OUTPUT_HTML", "Report"),
)

HELP = {
    "ALG_DESC": (
        "Maps landslide scars from a pre-event and a post-event Sentinel-2 L2A product with the plugin's "
        "individual algorithms, one box per step: prepare both products (reflectance stack and SCL), "
        "co-register the post image onto the pre image (ECC on the gradient of SWIR-1 B11, which changes less "
        "between seasons than NIR; clouds and water of both dates left out), cluster the change features "
        "with a 3-component Gaussian mixture (clouds, water and, with a DEM, slopes under 15° masked: the "
        "settings of 'Map landslides (pre/post)' except its vegetated-before rule, off here), turn "
        "the landslide mask into polygons with their area, mean dNDVI, slope and probability, and score the "
        "mask against a reference raster (precision, recall, F1, IoU, MCC) in an HTML report.<br><br>"
        "Open it in the Graphical Modeler to change a step (e.g. K-means instead of the Gaussian mixture, "
        "another band for the co-registration) or to add one. For every method of the reference study in one "
        "run, use 'Map landslides (pre/post)'."),
    "ALG_CREATOR": "landslide_plugin",
    PRE: "Sentinel-2 L2A product(s) of the pre-event date: the .zip as downloaded, the .SAFE folder or its "
         "MTD_MSIL2A.xml; several adjacent tiles of one date are mosaicked.",
    POST: "Sentinel-2 L2A product(s) of the post-event date, as for the pre-event image.",
    DEM: "Digital elevation model (any CRS and resolution): pixels flatter than 15° are not landslides, and the "
         "polygons get their mean slope. Optional.",
    REFERENCE: "Landslide reference raster (an inventory rasterised: values greater than 0 are landslide; any "
               "grid and CRS) that the landslide mask is scored against.",
    "Aligned post-event stack": "The post-event reflectance stack co-registered onto the pre-event grid.",
    "Landslide mask": "Uint8 GeoTIFF: 1 landslide, 0 not or ruled out by a mask, 255 no data.",
    "Landslide polygons": "One polygon per landslide with area, mean dNDVI, mean slope and mean probability.",
    "Report": "Self-contained HTML report: scores, confusion matrix and the map over the post-event image.",
}


def build_model():
    """The model, built from the individual algorithms (they must be registered: provider 'landslide')."""
    from qgis.core import (
        QgsProcessingModelAlgorithm,
        QgsProcessingModelChildAlgorithm,
        QgsProcessingModelChildParameterSource,
        QgsProcessingModelOutput,
        QgsProcessingModelParameter,
        QgsProcessingParameterMultipleLayers,
        QgsProcessingParameterRasterLayer,
    )
    from qgis.PyQt.QtCore import QPointF

    from landslide_plugin.core import defaults
    from landslide_plugin.processing.compat import SOURCE_FILE

    model = QgsProcessingModelAlgorithm(MODEL_NAME, MODEL_GROUP, MODEL_GROUP)

    def add_input(definition, x, y):
        component = QgsProcessingModelParameter(definition.name())
        component.setPosition(QPointF(x, y))
        component.setDescription(definition.description())
        model.addModelParameter(definition, component)

    files = SOURCE_FILE
    add_input(QgsProcessingParameterMultipleLayers(PRE, "Pre-event Sentinel-2 L2A product", files), 120, 60)
    add_input(QgsProcessingParameterMultipleLayers(POST, "Post-event Sentinel-2 L2A product", files), 420, 60)
    add_input(QgsProcessingParameterRasterLayer(DEM, "Digital elevation model", optional=True), 720, 60)
    add_input(QgsProcessingParameterRasterLayer(REFERENCE, "Reference landslide raster"), 1020, 60)
    model.setParameterOrder([PRE, POST, DEM, REFERENCE])

    def model_input(name):
        return [QgsProcessingModelChildParameterSource.fromModelParameter(name)]

    def child_output(child_id, output):
        return [QgsProcessingModelChildParameterSource.fromChildOutput(child_id, output)]

    def value(static):
        return [QgsProcessingModelChildParameterSource.fromStaticValue(static)]

    def add_child(child_id, algorithm, description, x, y, sources):
        child = QgsProcessingModelChildAlgorithm(algorithm)
        if child.algorithm() is None:
            raise RuntimeError(f"algorithm {algorithm} is not registered: is the plugin's provider loaded?")
        child.setChildId(child_id)
        child.setDescription(description)
        child.setPosition(QPointF(x, y))
        # Like the Graphical Modeler: every input not linked is stored with its default value, so the
        # model keeps today's defaults even if an algorithm's default changes later.
        for definition in child.algorithm().parameterDefinitions():
            if definition.isDestination() or definition.name() in sources:
                continue
            if definition.defaultValue() is not None:
                child.addParameterSources(definition.name(), value(definition.defaultValue()))
        for name, source in sources.items():
            child.addParameterSources(name, source)
        model.addChildAlgorithm(child)

    add_child(PREPARE_PRE, "landslide:prepare_s2_l2a", "Prepare the pre-event product", 120, 200,
              {"INPUT": model_input(PRE)})
    add_child(PREPARE_POST, "landslide:prepare_s2_l2a", "Prepare the post-event product", 420, 200,
              {"INPUT": model_input(POST)})
    add_child(COREGISTER, "landslide:coregister_ecc", "Co-register post onto pre (B11 gradient)", 270, 340, {
        "REFERENCE": child_output(PREPARE_PRE, "OUTPUT"),
        "INPUT": child_output(PREPARE_POST, "OUTPUT"),
        "REFERENCE_SCL": child_output(PREPARE_PRE, "OUTPUT_SCL"),
        "INPUT_SCL": child_output(PREPARE_POST, "OUTPUT_SCL"),
        "BAND": value(defaults.ALIGN_BAND),
        "USE_GRADIENT": value(defaults.ALIGN_GRADIENT),
        "MOTION": value(0),  # translation
        "MAX_SHIFT": value(defaults.MAX_SHIFT_PX),
    })
    add_child(CLUSTER, "landslide:cluster_landslides", "Cluster landslides (GMM 3)", 570, 480, {
        "PRE": child_output(PREPARE_PRE, "OUTPUT"),
        "POST": child_output(COREGISTER, "OUTPUT"),
        "PRE_SCL": child_output(PREPARE_PRE, "OUTPUT_SCL"),
        "POST_SCL": child_output(COREGISTER, "OUTPUT_SCL"),
        "DEM": model_input(DEM),
        "METHOD": value(1),  # Gaussian mixture
        "CLUSTERS": value(defaults.CLUSTERS),
        "CLUSTERING": value(0),  # the change clustering, as the one-step run
        "MIN_SLOPE": value(defaults.MIN_SLOPE_DEG),
        "SEED": value(defaults.SEED),
    })
    add_child(POLYGONS, "landslide:landslide_polygons", "Landslide polygons", 420, 620, {
        "INPUT": child_output(CLUSTER, "OUTPUT_MASK"),
        "PRE": child_output(PREPARE_PRE, "OUTPUT"),
        "POST": child_output(COREGISTER, "OUTPUT"),
        "DEM": model_input(DEM),
        "PROBABILITY": child_output(CLUSTER, "OUTPUT_PROBABILITY"),
    })
    add_child(EVALUATE, "landslide:evaluate_landslide_maps", "Evaluate against the reference", 870, 620, {
        "REFERENCE_RASTER": model_input(REFERENCE),
        "PREDICTIONS": child_output(CLUSTER, "OUTPUT_MASK"),
        "TRUE_COLOUR": child_output(COREGISTER, "OUTPUT"),
    })

    for index, (child_id, child_output_name, name) in enumerate(OUTPUTS):
        output = QgsProcessingModelOutput(name, name)
        output.setChildId(child_id)
        output.setChildOutputName(child_output_name)
        output.setMandatory(False)
        child = model.childAlgorithm(child_id)
        output.setPosition(child.position() + QPointF(160, 60 + 0 * index))
        child.setModelOutputs({name: output})

    model.updateDestinationParameters()
    model.setHelpContent(HELP)
    return model


# -- the event model: area and date -> pair -> downloads -> landslide maps ----------------------------------
EVENT_MODEL_NAME = "event_to_landslide_map"
EXTENT, EVENT_DATE, MIN_CLEAR, AUTH = "EXTENT", "EVENT_DATE", "MIN_CLEAR", "AUTH"
FIND, DOWNLOAD_PRE, DOWNLOAD_POST, MAP = "find_pair", "download_pre", "download_post", "map"
EVENT_OUTPUTS = (
    (FIND, "OUTPUT", "candidates"),
    (MAP, "OUTPUT_FOLDER", "results"),
)
EVENT_HELP = {
    "ALG_DESC": (
        "From an event to a landslide map in one run: finds the best pre-event and post-event Sentinel-2 L2A "
        "images over the area (the clear share of the area measured on each candidate's own scene "
        "classification; the earliest clear post image, a clear pre image of the same orbit and season), "
        "downloads the bands the mapping reads, and maps landslides with 'Map landslides (pre/post)' over the "
        "area (co-registration, masks, dNDVI threshold, K-means and Gaussian mixtures, polygons, report).<br><br>"
        "The candidates layer says which images were chosen and why; the find step's summary goes on to the "
        "mapping's log (and, in a report, beside the images used). The results folder holds the masks and the "
        "polygons. Needs a Copernicus Data Space account (an authentication configuration of "
        "type Basic, or CDSE_USERNAME and CDSE_PASSWORD)."),
    "ALG_CREATOR": "landslide_plugin",
    EXTENT: "The area of interest (any CRS): where the images must be clear and the landslides are mapped.",
    EVENT_DATE: "The day of the earthquake (UTC).",
    MIN_CLEAR: "Minimum share (%) of the area that must be clear in the SCL of each image.",
    AUTH: "Copernicus Data Space account (authentication configuration of type Basic). Empty: CDSE_USERNAME and "
          "CDSE_PASSWORD.",
    DEM: "Digital elevation model (any CRS and resolution) for the slope mask and the polygons' slope. Optional.",
    "candidates": "Every candidate image with its clear share over the area, rank and the reason.",
    "results": "Folder with the landslide masks, polygons, metrics and report.html.",
}


def build_event_model():
    """The event model (the plugin's provider must be registered)."""
    from qgis.core import (
        QgsProcessingModelAlgorithm,
        QgsProcessingModelChildAlgorithm,
        QgsProcessingModelChildParameterSource,
        QgsProcessingModelOutput,
        QgsProcessingModelParameter,
        QgsProcessingParameterAuthConfig,
        QgsProcessingParameterDateTime,
        QgsProcessingParameterExtent,
        QgsProcessingParameterNumber,
        QgsProcessingParameterRasterLayer,
    )
    from qgis.PyQt.QtCore import QPointF

    from landslide_plugin.processing.compat import DATETIME_DATE, NUMBER_DOUBLE

    model = QgsProcessingModelAlgorithm(EVENT_MODEL_NAME, MODEL_GROUP, MODEL_GROUP)

    def add_input(definition, x, y):
        component = QgsProcessingModelParameter(definition.name())
        component.setPosition(QPointF(x, y))
        component.setDescription(definition.description())
        model.addModelParameter(definition, component)

    add_input(QgsProcessingParameterExtent(EXTENT, "Area of interest"), 120, 60)
    add_input(QgsProcessingParameterDateTime(EVENT_DATE, "Event date", type=DATETIME_DATE), 380, 60)
    add_input(QgsProcessingParameterNumber(MIN_CLEAR, "Minimum clear share of the area (%)", type=NUMBER_DOUBLE,
                                           defaultValue=70.0, minValue=0.0, maxValue=100.0), 640, 60)
    add_input(QgsProcessingParameterAuthConfig(AUTH, "Copernicus Data Space account", optional=True), 900, 60)
    add_input(QgsProcessingParameterRasterLayer(DEM, "Digital elevation model", optional=True), 1160, 60)
    model.setParameterOrder([EXTENT, EVENT_DATE, MIN_CLEAR, AUTH, DEM])

    def model_input(name):
        return [QgsProcessingModelChildParameterSource.fromModelParameter(name)]

    def child_output(child_id, output):
        return [QgsProcessingModelChildParameterSource.fromChildOutput(child_id, output)]

    def value(static):
        return [QgsProcessingModelChildParameterSource.fromStaticValue(static)]

    def add_child(child_id, algorithm, description, x, y, sources):
        child = QgsProcessingModelChildAlgorithm(algorithm)
        if child.algorithm() is None:
            raise RuntimeError(f"algorithm {algorithm} is not registered: is the plugin's provider loaded?")
        child.setChildId(child_id)
        child.setDescription(description)
        child.setPosition(QPointF(x, y))
        for definition in child.algorithm().parameterDefinitions():
            if definition.isDestination() or definition.name() in sources:
                continue
            if definition.defaultValue() is not None:
                child.addParameterSources(definition.name(), value(definition.defaultValue()))
        for name, source in sources.items():
            child.addParameterSources(name, source)
        model.addChildAlgorithm(child)

    add_child(FIND, "landslide:find_event_pair", "Find a pre/post pair for the event", 380, 200, {
        "EXTENT": model_input(EXTENT), "EVENT_DATE": model_input(EVENT_DATE), "MIN_CLEAR": model_input(MIN_CLEAR),
        "AUTH": model_input(AUTH)})
    add_child(DOWNLOAD_PRE, "landslide:download_s2_l2a", "Download the pre-event image", 200, 340, {
        "PRODUCT_IDS": child_output(FIND, "PRE_PRODUCT_IDS"), "AUTH": model_input(AUTH)})
    add_child(DOWNLOAD_POST, "landslide:download_s2_l2a", "Download the post-event image", 560, 340, {
        "PRODUCT_IDS": child_output(FIND, "POST_PRODUCT_IDS"), "AUTH": model_input(AUTH)})
    add_child(MAP, "landslide:map_landslides", "Map landslides over the area", 380, 480, {
        "PRE": child_output(DOWNLOAD_PRE, "PRODUCT_PATHS"), "POST": child_output(DOWNLOAD_POST, "PRODUCT_PATHS"),
        "EXTENT": model_input(EXTENT), "DEM": model_input(DEM), "PAIR_SUMMARY": child_output(FIND, "SUMMARY")})

    for child_id, child_output_name, name in EVENT_OUTPUTS:
        output = QgsProcessingModelOutput(name, name)
        output.setChildId(child_id)
        output.setChildOutputName(child_output_name)
        output.setMandatory(False)
        child = model.childAlgorithm(child_id)
        output.setPosition(child.position() + QPointF(160, 60))
        child.setModelOutputs({name: output})

    model.updateDestinationParameters()
    model.setHelpContent(EVENT_HELP)
    return model


MODELS = ((MODEL_PATH, build_model), (EVENT_MODEL_PATH, build_event_model))


def save(model, path: Path) -> None:
    """Write the model as the Graphical Modeler does (``toFile``), through a temporary file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".part.model3", dir=path.parent)
    os.close(fd)
    try:
        if not model.toFile(tmp):
            raise OSError(f"QGIS could not write the model to {tmp}")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _canonical(text: str) -> list[str]:
    """The model XML one element per line with sorted attributes: Qt writes attributes in hash order,
    which changes from one process to the next unless QT_HASH_SEED is set."""
    lines = []

    def walk(element, depth):
        attributes = " ".join(f'{k}="{v}"' for k, v in sorted(element.attrib.items()))
        lines.append(f"{'  ' * depth}<{element.tag} {attributes}>{(element.text or '').strip()}\n")
        for child in element:
            walk(child, depth + 1)

    walk(ElementTree.fromstring(text), 0)
    return lines


def differences(model, path: Path) -> list[str]:
    """Differences between the model saved at ``path`` and a fresh save of ``model`` (empty: the same)."""
    with tempfile.TemporaryDirectory() as folder:
        fresh = Path(folder) / path.name
        save(model, fresh)
        new = _canonical(fresh.read_text(encoding="utf-8"))
    old = _canonical(path.read_text(encoding="utf-8")) if path.exists() else []
    return list(difflib.unified_diff(old, new, str(path), "fresh build"))


def start_qgis():
    """A headless QGIS with Processing and the plugin's provider, for running this file as a script."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ.setdefault("QT_HASH_SEED", "0")  # the same attribute order in every regenerated file
    sys.path.insert(0, str(ROOT))
    if PROCESSING_PLUGINS not in sys.path:
        sys.path.append(PROCESSING_PLUGINS)
    from qgis.core import QgsApplication

    app = QgsApplication([], False)
    app.initQgis()
    from processing.core.Processing import Processing

    from landslide_plugin.processing.provider import LandslideProvider

    Processing.initialize()
    provider = LandslideProvider()
    if not QgsApplication.processingRegistry().addProvider(provider):
        raise RuntimeError("the 'landslide' Processing provider could not be registered")
    return app, provider


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true",
                        help="do not write: exit 1 (and show the difference) if a saved model is not current")
    args = parser.parse_args()
    app, provider = start_qgis()  # noqa: F841 (both must outlive the models)
    status = 0
    for path, build in MODELS:
        model = build()
        ok, issues = model.validate()
        if not ok:
            print(f"{path.name} does not validate:\n" + "\n".join(issues), file=sys.stderr)
            return 1
        if args.check:
            diff = differences(model, path)
            if diff:
                sys.stdout.writelines(diff)
                print(f"\n{path} is not current: run python scripts/build_model.py", file=sys.stderr)
                status = 1
            else:
                print(f"{path} is current")
            continue
        save(model, path)
        print(f"wrote {path}")
    return status


if __name__ == "__main__":
    sys.exit(main())
