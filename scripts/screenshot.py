#!/usr/bin/env python3
"""`make screenshot`: a real QGIS desktop window showing what 'Map landslides (pre/post)' loads, saved as a PNG.

1. writes the built-in example pair (Sentinel-2 L2A product ZIPs, a DEM, the true landslides);
2. starts QGIS (the plugin enabled from this checkout) under Xvfb and runs the one-step algorithm there with
   its results loaded, as the Toolbox does (processing.runAndLoadResults): the layer panel shows the group the
   plugin itself builds, nothing is arranged by hand;
3. filters the Processing toolbox on the plugin, waits for the map to render and saves the main window with
   Qt's own grab.

Needs only the apt packages of the Makefile (qgis, xvfb). Finishes in well under 3 minutes.
"""
from __future__ import annotations

import argparse
import json
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

WIDTH, HEIGHT = 1600, 1000
QGIS_TIMEOUT_S = 170

#: Runs inside QGIS (--code): run the algorithm with its results loaded, wait for the canvas, grab, quit.
STARTUP_CODE = """
import json, traceback
from qgis.PyQt.QtCore import Qt, QTimer
from qgis.PyQt.QtWidgets import QApplication, QDockWidget, QLineEdit
from qgis.core import QgsProject
from qgis.utils import iface

CONFIG = json.loads({config!r})
window = iface.mainWindow()
canvas = iface.mapCanvas()
state = {{"rendered": False}}


def quit_qgis(code=0):
    QApplication.instance().exit(code)


def run_and_show():
    try:
        import processing

        window.resize(CONFIG["width"], CONFIG["height"])
        window.move(0, 0)
        for dock in window.findChildren(QDockWidget):
            if dock.objectName() in ("Browser", "Browser2", "PythonConsole"):
                dock.hide()
        layers = window.findChild(QDockWidget, "Layers")
        if layers is not None:  # wide enough for the group's name (tile and dates)
            window.resizeDocks([layers], [CONFIG["layers_width"]], Qt.Orientation.Horizontal)
        processing.runAndLoadResults("landslide:map_landslides", CONFIG["parameters"])
        toolbox = window.findChild(QDockWidget, "ProcessingToolbox")
        if toolbox is not None:
            toolbox.show()
            search = toolbox.findChild(QLineEdit)
            if search is not None:
                search.setText("landslide")
        root = QgsProject.instance().layerTreeRoot()
        group = root.children()[0]
        print("loaded:", group.name(), [node.name() for node in group.children()], flush=True)
        mask = group.findLayers()[1].layer()  # the primary mask, under the polygons
        iface.setActiveLayer(mask)
        canvas.setExtent(mask.extent())
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
        ok = window.grab().save(CONFIG["output"], "PNG")
        print("screenshot saved" if ok else "could not save the screenshot", flush=True)
        QgsProject.instance().setDirty(False)
        quit_qgis(0 if ok else 3)
    except Exception:
        traceback.print_exc()
        quit_qgis(2)


QTimer.singleShot(3000, run_and_show)
"""


def example(work: Path, size: int, seed: int):
    from landslide_plugin.examples.example_data import generate_example_pair

    return generate_example_pair(work / "example", size=size, seed=seed)


def take_screenshot(pair, output: Path, work: Path) -> str:
    """Run the one-step algorithm in QGIS under Xvfb and grab the window; returns QGIS's own output."""
    profile = work / "qgis-profile"
    QgisProcess(profile)  # enables the plugin (from this checkout) in the throw-away profile
    env = environment(profile)
    env["QT_QPA_PLATFORM"] = "xcb"
    env.pop("QT_QPA_PLATFORMTHEME", None)
    raw = work / "screenshot.png"
    config = {"width": WIDTH, "height": HEIGHT, "layers_width": 400, "output": str(raw), "parameters": {
        "PRE": [str(pair.pre)], "POST": [str(pair.post)], "DEM": str(pair.dem),
        "REFERENCE_RASTER": str(pair.truth), "OUTPUT_FOLDER": str(work / "results")}}
    code = work / "grab.py"
    code.write_text(textwrap.dedent(STARTUP_CODE.format(config=json.dumps(config))))
    command = ["xvfb-run", "-a", "-s", f"-screen 0 {WIDTH}x{HEIGHT}x24", "/usr/bin/qgis.bin", "--nologo",
               "--noversioncheck", "--profiles-path", str(profile), "--code", str(code)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=QGIS_TIMEOUT_S)
    if not raw.exists():
        raise RuntimeError(f"QGIS did not save a screenshot (exit {done.returncode}):\n"
                           f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.part")
    shutil.copyfile(raw, tmp)
    os.replace(tmp, output)
    return done.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, default=ROOT / "resources" / "screenshot.png")
    parser.add_argument("--size", type=int, default=512, help="example size in 20 m pixels (default 512)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", type=Path, help="keep the example, the results and the QGIS profile in this folder")
    args = parser.parse_args()
    if not shutil.which("xvfb-run"):
        print("xvfb-run not found: apt-get install xvfb", file=sys.stderr)
        return 1
    start = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="landslide-screenshot-")) if args.keep is None else args.keep.resolve()
    work.mkdir(parents=True, exist_ok=True)
    try:
        print(f"1/2 writing the example ({args.size} x {args.size} px) in {work}", flush=True)
        pair = example(work, args.size, args.seed)
        print("2/2 QGIS under Xvfb: 'Map landslides (pre/post)' with its results loaded, then the window grabbed",
              flush=True)
        said = take_screenshot(pair, args.output.resolve(), work)
        for line in said.splitlines():
            if line.startswith("loaded:"):
                print(f"    {line}", flush=True)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    print(f"wrote {args.output} in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
