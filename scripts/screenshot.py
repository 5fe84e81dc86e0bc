#!/usr/bin/env python3
"""`make screenshot`: a real QGIS desktop window with the plugin's results, saved as a PNG.

1. maps landslides on the built-in example pair with the core pipeline (a few seconds);
2. writes a QGIS project: a group with the polygons, the GMM 3 landslide mask and the co-registered
   post-event true colour, styled with the plugin's own styles;
3. opens it in QGIS (the plugin enabled from this checkout) under Xvfb, filters the Processing toolbox on
   the plugin's provider, waits for the map to render and saves the main window with Qt's own grab.

Needs only the apt packages of the Makefile (qgis, xvfb). Finishes in well under 3 minutes.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from qgis_process_runner import QgisProcess, environment  # noqa: E402

PROCESSING_PLUGINS = "/usr/share/qgis/python/plugins"
WIDTH, HEIGHT = 1600, 1000
QGIS_TIMEOUT_S = 150

#: Runs inside QGIS (--code): show the results, wait for the canvas, grab the window, quit.
STARTUP_CODE = """
import sys, traceback
from qgis.PyQt.QtCore import QTimer
from qgis.PyQt.QtWidgets import QApplication, QDockWidget, QLineEdit
from qgis.core import QgsProject
from qgis.utils import iface

OUTPUT, WIDTH, HEIGHT = {output!r}, {width}, {height}
window = iface.mainWindow()
canvas = iface.mapCanvas()
state = {{"rendered": False}}


def quit_qgis(code=0):
    QApplication.instance().exit(code)


def show_results():
    try:
        window.resize(WIDTH, HEIGHT)
        window.move(0, 0)
        for dock in window.findChildren(QDockWidget):
            if dock.objectName() in ("Browser", "Browser2", "PythonConsole"):
                dock.hide()
        toolbox = window.findChild(QDockWidget, "ProcessingToolbox")
        if toolbox is not None:
            toolbox.show()
            search = toolbox.findChild(QLineEdit)
            if search is not None:
                search.setText("landslide")
        layers = QgsProject.instance().mapLayersByName("Landslide mask (GMM 3)")
        if layers:
            iface.setActiveLayer(layers[0])
        canvas.setExtent(QgsProject.instance().mapLayersByName("Post-event true colour")[0].extent())
        canvas.mapCanvasRefreshed.connect(lambda: state.update(rendered=True))
        canvas.refreshAllLayers()
        QTimer.singleShot(500, wait_for_render)
    except Exception:
        traceback.print_exc()
        quit_qgis(2)


def wait_for_render(tries=[0]):
    tries[0] += 1
    if (state["rendered"] and not canvas.isDrawing()) or tries[0] > 120:
        QTimer.singleShot(1500, grab)  # let the layer panel and toolbox finish painting
    else:
        QTimer.singleShot(250, wait_for_render)


def grab():
    try:
        ok = window.grab().save(OUTPUT, "PNG")
        print("screenshot saved" if ok else "could not save the screenshot", flush=True)
        quit_qgis(0 if ok else 3)
    except Exception:
        traceback.print_exc()
        quit_qgis(2)


QTimer.singleShot(3000, show_results)
"""


def map_example(work: Path, size: int, seed: int):
    from landslide_plugin.core import pipeline
    from landslide_plugin.examples.example_data import generate_example_pair

    pair = generate_example_pair(work / "example", size=size, seed=seed)
    options = pipeline.MappingOptions(methods=(pipeline.Method("threshold"), pipeline.Method("gmm", 3)),
                                      primary="gmm3")
    return pair, pipeline.map_landslides([pair.pre], [pair.post], work / "results", options, dem=pair.dem,
                                         reference=pair.truth)


def write_project(result, project_path: Path) -> None:
    """A project with the results in a group, styled as the algorithms style them (standalone PyQGIS)."""
    os.environ["QT_QPA_PLATFORM"] = "offscreen"
    if PROCESSING_PLUGINS not in sys.path:
        sys.path.append(PROCESSING_PLUGINS)
    from qgis.core import QgsApplication, QgsProject, QgsRasterLayer, QgsVectorLayer

    app = QgsApplication([], False)
    app.initQgis()
    from landslide_plugin.processing import styles

    project = QgsProject()
    project.setCrs(QgsRasterLayer(str(result.post_aligned), "crs").crs())
    group = project.layerTreeRoot().insertGroup(0, "Landslides (example, GMM 3)")
    items = [
        (QgsVectorLayer(str(result.polygons), "Landslide polygons", "ogr"), styles.style_polygons),
        (QgsRasterLayer(str(result.masks["gmm3"]), "Landslide mask (GMM 3)"), styles.style_landslide_mask),
        (QgsRasterLayer(str(result.masks["threshold"]), "Landslide mask (dNDVI threshold)"),
         styles.style_landslide_mask),
        (QgsRasterLayer(str(result.post_aligned), "Post-event true colour"), styles.style_true_colour),
        (QgsRasterLayer(str(result.pre_stack), "Pre-event true colour"), styles.style_true_colour),
    ]
    for layer, styler in items:
        if not layer.isValid():
            raise RuntimeError(f"QGIS could not open {layer.source()}")
        styler(layer)
        if project.addMapLayer(layer, False) is None:
            raise RuntimeError(f"QGIS could not add {layer.name()} to the project")
        node = group.addLayer(layer)
        if "threshold" in layer.name() or "Pre-event" in layer.name():
            node.setItemVisibilityChecked(False)  # in the legend, off: the GMM map over the post image shows
        node.setExpanded("GMM 3" in layer.name())
    if not project.write(str(project_path)):
        raise RuntimeError(f"could not write {project_path}: {project.error()}")
    project.clear()
    del project
    app.exitQgis()


def take_screenshot(project_path: Path, output: Path, work: Path) -> None:
    profile = work / "qgis-profile"
    QgisProcess(profile)  # enables the plugin (from this checkout) in the throw-away profile
    env = environment(profile)
    env["QT_QPA_PLATFORM"] = "xcb"
    env.pop("QT_QPA_PLATFORMTHEME", None)
    code = work / "grab.py"
    raw = work / "screenshot.png"
    code.write_text(textwrap.dedent(STARTUP_CODE.format(output=str(raw), width=WIDTH, height=HEIGHT)))
    command = ["xvfb-run", "-a", "-s", f"-screen 0 {WIDTH}x{HEIGHT}x24", "/usr/bin/qgis.bin", "--nologo",
               "--noversioncheck", "--profiles-path", str(profile), "--code", str(code), str(project_path)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=QGIS_TIMEOUT_S)
    if not raw.exists():
        raise RuntimeError(f"QGIS did not save a screenshot (exit {done.returncode}):\n"
                           f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.part")
    shutil.copyfile(raw, tmp)
    os.replace(tmp, output)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, default=ROOT / "resources" / "screenshot.png")
    parser.add_argument("--size", type=int, default=512, help="example size in 20 m pixels (default 512)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", type=Path, help="keep the example, results and project in this folder")
    args = parser.parse_args()
    if not shutil.which("xvfb-run"):
        print("xvfb-run not found: apt-get install xvfb", file=sys.stderr)
        return 1
    start = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="landslide-screenshot-")) if args.keep is None else args.keep.resolve()
    work.mkdir(parents=True, exist_ok=True)
    try:
        print(f"1/3 mapping the example ({args.size} x {args.size} px) in {work}", flush=True)
        pair, result = map_example(work, args.size, args.seed)
        print(f"    F1 of GMM 3: {result.metrics['gmm3']['f1']:.3f}, {result.polygon_count} polygons", flush=True)
        print("2/3 writing the QGIS project", flush=True)
        project_path = work / "landslides.qgz"
        write_project(result, project_path)
        print("3/3 QGIS under Xvfb: rendering and grabbing the window", flush=True)
        take_screenshot(project_path, args.output.resolve(), work)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    print(f"wrote {args.output} in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
