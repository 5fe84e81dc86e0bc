"""The one-step algorithm's results in a real QGIS window: one group per run, the primary map first, a re-run
replacing its group, and QGIS exiting cleanly afterwards (issues 13 and 16).

The report: QGIS crashed (signal 11) on quit in every session where the one-step algorithm had loaded its
styled, grouped results (backtrace ~QgsProject -> QgsLayerTreeView::currentLayerChanged ->
QgisApp::setMapStyleDockLayer). Only the real desktop has the layer tree view and the Layer Styling dock,
so this test starts /usr/bin/qgis.bin under Xvfb, loads results the two ways the GUI does (the Toolbox
dialog's background task, and processing.runAndLoadResults), runs again into the first folder, checks the
layer panel (group names, order, what is switched on, the collapsed "Other methods"), selects a loaded layer
with the Layer Styling dock open, quits through File > Exit and checks QGIS ended with status 0 and no crash.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from gui_helpers import gui_unavailable, run_qgis_gui  # noqa: E402

UNAVAILABLE = gui_unavailable()

GROUP = "Landslides T37SCB 2023-01-05 → 2023-08-05"
#: The group of a run, top to bottom: (name, switched on); "Other methods" is a collapsed sub-group.
TREE = [["Landslide polygons (GMM 3)", True], ["Landslide mask (GMM 3)", True],
        ["Landslide probability (GMM 3)", True], ["Clusters (GMM 3)", False], ["Other methods", False],
        ["Post-event true colour 2023-08-05 (co-registered)", True], ["Pre-event true colour 2023-01-05", False]]
LAYERS = {name for name, _ in TREE if name != "Other methods"} | {"Landslide mask (dNDVI threshold)"}

#: Runs inside QGIS (--code). Reads its settings from the JSON file named by LANDSLIDE_GUI_TEST and writes
#: what it saw to config["report"] before quitting.
STARTUP = r'''
import gc, json, os, traceback
from qgis.PyQt.QtCore import QTimer
from qgis.PyQt.QtWidgets import QApplication, QDockWidget
from qgis.core import QgsApplication, QgsProcessingAlgRunnerTask, QgsProcessingFeedback, QgsProject, QgsSettings
from qgis.utils import iface

with open(os.environ["LANDSLIDE_GUI_TEST"], encoding="utf-8") as f:
    CONFIG = json.load(f)
ALG = "landslide:map_landslides"
FOLDER = "landslide_plugin/output_folder"
report = {"errors": [], "feedback_errors": [], "groups": {}, "top_level": [], "quitting": False}
state = {}


def save():
    with open(CONFIG["report"], "w", encoding="utf-8") as f:
        json.dump(report, f, indent=1)


def fail(message=None):
    report["errors"].append(message or traceback.format_exc())
    save()
    QApplication.instance().exit(2)


class Feedback(QgsProcessingFeedback):
    def reportError(self, error, fatalError=False):  # noqa: N802
        report["feedback_errors"].append(error)
        super().reportError(error, fatalError)


def parameters(folder):
    return {"PRE": [CONFIG["pre"]], "POST": [CONFIG["post"]], "DEM": CONFIG["dem"], "KMEANS_CLUSTERS": "",
            "GMM_CLUSTERS": "3", "PRIMARY": "gmm3", "OUTPUT_FOLDER": folder}


def run_as_the_dialog_does():
    """AlgorithmDialog.runAlgorithm in 3.22: a context on the current project, the algorithm in a
    QgsProcessingAlgRunnerTask, handleAlgorithmResults when it is done, then the dialog drops the context."""
    try:
        from processing.gui.Postprocessing import handleAlgorithmResults
        from processing.tools import dataobjects

        dock = iface.mainWindow().findChild(QDockWidget, "LayerStyling")
        if dock is not None:
            dock.show()  # the style dock follows the current layer of the layer tree view
        report["style_dock_visible"] = bool(dock is not None and dock.isVisible())
        alg = QgsApplication.processingRegistry().createAlgorithmById(ALG)
        feedback = Feedback()
        context = dataobjects.createContext(feedback)
        state.update(alg=alg, feedback=feedback, context=context)

        def on_complete(ok, results):
            try:
                report["task_ok"] = ok
                if not ok:
                    return fail("the algorithm failed in the background task")
                handleAlgorithmResults(alg, state["context"], feedback, True, results)
                state["context"] = None
                gc.collect()
                QTimer.singleShot(200, lambda: run_and_load_results(CONFIG["folders"][1], run_again))
            except Exception:
                fail()

        task = QgsProcessingAlgRunnerTask(alg, parameters(CONFIG["folders"][0]), context, feedback)
        task.executed.connect(on_complete)
        QgsApplication.taskManager().addTask(task)
    except Exception:
        fail()


def run_and_load_results(folder, then):
    try:
        import processing

        processing.runAndLoadResults(ALG, parameters(folder), feedback=Feedback())
        gc.collect()
        QTimer.singleShot(500, then)
    except Exception:
        fail()


def run_again():
    """A second run into the first folder (a History re-run, say) with the first group's mask selected."""
    try:
        root = QgsProject.instance().layerTreeRoot()
        report["before_rerun"] = [child.name() for child in root.children()]
        group = next(g for g in root.children() if g.customProperty(FOLDER) == CONFIG["folders"][0])
        iface.setActiveLayer(group.findLayers()[1].layer())
        run_and_load_results(CONFIG["folders"][0], inspect_and_select)
    except Exception:
        fail()


def inspect_and_select():
    try:
        root = QgsProject.instance().layerTreeRoot()
        report["top_level"] = [child.name() for child in root.children()]
        for folder in CONFIG["folders"]:
            group = next((g for g in root.children() if g.customProperty(FOLDER) == folder), None)
            if group is None:
                continue
            others = group.findGroup("Other methods")
            report["groups"][folder] = {
                "name": group.name(),
                "tree": [[node.name(), node.itemVisibilityChecked()] for node in group.children()],
                "others": None if others is None else {
                    "expanded": others.isExpanded(),
                    "tree": [[node.name(), node.itemVisibilityChecked()] for node in others.children()]},
                "renderers": {node.layer().name(): node.layer().renderer().type() if node.layer().renderer() else None
                              for node in group.findLayers()},
                "legends": {node.layer().name(): [str(item.data(0)) for item in
                                                  iface.layerTreeView().layerTreeModel().layerLegendNodes(node)]
                            for node in group.findLayers()}}
        report["project_layers"] = len(QgsProject.instance().mapLayers())
        first = next((g for g in root.children() if g.customProperty(FOLDER) == CONFIG["folders"][0]), None)
        if first is not None and first.findLayers():
            iface.setActiveLayer(first.findLayers()[0].layer())
        report["active_layer"] = iface.activeLayer().name() if iface.activeLayer() else None
        save()
        QTimer.singleShot(1000, quit_qgis)
    except Exception:
        fail()


def quit_qgis():
    try:
        # The questions a user answers on File > Exit: the outputs are under /tmp, which QGIS counts as
        # temporary layers ("save them?"), and the project has unsaved changes ("save the project?").
        QgsSettings().setValue("askToSaveMemoryLayers", False, QgsSettings.App)
        QgsProject.instance().setDirty(False)
        report["quitting"] = True
        save()
        print("quitting QGIS through File > Exit", flush=True)
        iface.actionExit().trigger()
    except Exception:
        fail()


def watchdog():
    fail("QGIS was still running after %d s" % CONFIG["watchdog_s"])


QTimer.singleShot(1000, run_as_the_dialog_does)
QTimer.singleShot(CONFIG["watchdog_s"] * 1000, watchdog)
'''


@pytest.mark.slow
@pytest.mark.skipif(UNAVAILABLE is not None, reason=UNAVAILABLE or "")
def test_qgis_quits_cleanly_after_the_one_step_algorithm_loaded_its_results(example_pair, tmp_path):
    folders = [str(tmp_path / "dialog_run"), str(tmp_path / "python_run")]
    config = tmp_path / "gui_test.json"
    report_path = tmp_path / "gui_report.json"
    config.write_text(json.dumps({
        "pre": str(example_pair.pre), "post": str(example_pair.post), "dem": str(example_pair.dem),
        "folders": folders, "report": str(report_path), "watchdog_s": 90}), encoding="utf-8")

    run = run_qgis_gui(STARTUP, tmp_path, timeout=150, env={"LANDSLIDE_GUI_TEST": str(config)})

    assert report_path.is_file(), f"the startup code wrote no report\n{run.tail()}"
    report = json.loads(report_path.read_text(encoding="utf-8"))
    assert not report["errors"], "\n".join(report["errors"]) + "\n" + run.tail()
    assert not [e for e in report["feedback_errors"] if "could not style" in e], report["feedback_errors"]
    # Two folders, two groups named after the pair (the second told apart by its folder), newest on top, and
    # nothing outside them; the re-run into the first folder replaced its group where it was.
    named = {folders[0]: GROUP, folders[1]: f"{GROUP} (python_run)"}
    assert report["before_rerun"] == [named[folders[1]], named[folders[0]]], report
    assert report["top_level"] == report["before_rerun"], report
    for folder in folders:
        group = report["groups"][folder]
        assert group["name"] == named[folder], group
        assert group["tree"] == TREE, group  # primary map first and on, the rest below or off
        assert group["others"] == {"expanded": False, "tree": [["Landslide mask (dNDVI threshold)", False]]}, group
        assert set(group["renderers"]) == LAYERS, group
        assert group["renderers"]["Landslide mask (GMM 3)"] == "paletted", group
        assert group["renderers"]["Landslide probability (GMM 3)"] == "singlebandpseudocolor", group
        assert group["renderers"]["Post-event true colour 2023-08-05 (co-registered)"] == "multibandcolor", group
        # What the layer panel shows under each map: what it means, no "Band 1: landslide (Palette)".
        assert group["legends"]["Landslide mask (GMM 3)"] == ["landslide"], group
        assert group["legends"]["Post-event true colour 2023-08-05 (co-registered)"] == [
            "red: B04", "green: B03", "blue: B02"], group
        assert not [text for texts in group["legends"].values() for text in texts if text.startswith("Band ")]
    assert report["project_layers"] == 2 * len(LAYERS)
    assert report["style_dock_visible"] and report["active_layer"] in LAYERS, report
    # Then File > Exit: QGIS ends by itself, with status 0 and no crash.
    assert report["quitting"], run.tail()
    assert not run.timed_out, f"QGIS did not exit\n{run.tail()}"
    assert not run.crashed, f"QGIS crashed on quit\n{run.tail()}"
    assert run.returncode == 0, run.tail()
