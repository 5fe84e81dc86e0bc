#!/usr/bin/env python3
"""`make demo-event`: from an earthquake (area and date) to a landslide map, against a local mock service.

1. generates several Sentinel-2 L2A dates of the built-in example's ground around an event on 2023-02-06
   (tests/mock_cdse.py's event scenario: a date cloudy over the area only, a reprocessed duplicate, two
   relative orbits, an off-season and a same-season pre-event image) and serves them from a mock
   Copernicus Data Space on 127.0.0.1 (nothing else is contacted);
2. runs the model resources/models/event_to_landslide_map.model3 through /usr/bin/qgis_process.bin: find the
   pair -> download both images -> map landslides over the area, with the scene's DEM;
3. writes demo_event_output/summary.txt: the images chosen and why, and the scores against the known truth.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sqlite3
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "tests"))

import rasterio  # noqa: E402
from mock_cdse import MockCdse, make_event_scenario  # noqa: E402
from qgis_process_runner import QgisProcess  # noqa: E402

MODEL = ROOT / "resources" / "models" / "event_to_landslide_map.model3"
USER, PASSWORD = "demo", "demo-password"  # pragma: allowlist secret (the local mock's account)


def scores(mask_path: Path, truth_path: Path) -> tuple[float, float, float]:
    """Precision, recall and F1 of a mask (1 landslide, 0 not, 255 no data) against the truth on its grid."""
    import numpy as np

    from landslide_plugin.core import rasters

    grid = rasters.Grid.from_path(mask_path)
    with rasterio.open(mask_path) as src:
        mask = src.read(1)
    truth = rasters.read_on_grid(truth_path, grid, dtype="uint8", fill=255)
    valid = (mask != 255) & (truth != 255)
    tp = int(np.count_nonzero(valid & (mask == 1) & (truth == 1)))
    fp = int(np.count_nonzero(valid & (mask == 1) & (truth == 0)))
    fn = int(np.count_nonzero(valid & (mask == 0) & (truth == 1)))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return precision, recall, (2 * precision * recall / (precision + recall) if precision + recall else 0.0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, default=ROOT / "demo_event_output")
    parser.add_argument("--size", type=int, default=256, help="tile size in 20 m pixels (default 256)")
    args = parser.parse_args()
    out = args.output.resolve()
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    print(f"1/2 generating the event scenario ({args.size} x {args.size} px) in {out / 'products'}", flush=True)
    scenario = make_event_scenario(out / "products", size=args.size, aoi_fraction=0.5)
    with MockCdse(list(scenario.products.values()), users={USER: PASSWORD}) as mock:
        print(f"    mock Copernicus Data Space on {mock.url('catalogue')} and {mock.url('download')}", flush=True)
        os.environ.update(mock.env())
        os.environ.update({"CDSE_USERNAME": USER, "CDSE_PASSWORD": PASSWORD})
        print(f"2/2 qgis_process run {MODEL.name}: area {scenario.extent()}, event {scenario.event_date}", flush=True)
        qgis = QgisProcess(out / ".qgis-profile")
        response = qgis.run(str(MODEL), EXTENT=scenario.extent(), EVENT_DATE=scenario.event_date.isoformat(),
                            MIN_CLEAR=70, DEM=str(scenario.dem),
                            **{"find_pair:candidates": str(out / "candidates.gpkg"),
                               "map:results": str(out / "results")})
    results = response.get("results", {})
    lines = ["Event demo: area and date -> pair -> downloads -> landslide map (local mock service)",
             f"event {scenario.event_date}, area {scenario.extent()}", "", "candidates (from candidates.gpkg):"]
    with contextlib.closing(sqlite3.connect(results["find_pair:candidates"])) as db:
        rows = db.execute("SELECT role, rank, chosen, date, orbit, clear_pct, measured_by, reason FROM candidates "
                          "ORDER BY role DESC, date").fetchall()
    for role, rank, chosen, day, orbit, clear, source, reason in rows:
        clear_text = "  - " if clear is None else f"{clear:4.0f}"
        lines.append(f"  {'*' if chosen else ' '} {role:<5}{day}  R{orbit:03d}  rank {rank if rank else '-':<2} "
                     f"clear {clear_text} % ({source or 'not measured'})  {reason}")
    lines += ["", "scores of the landslide class against the scene's truth (area of interest only):",
              f"  {'method':<12}{'precision':>10}{'recall':>9}{'F1':>8}"]
    for mask_path in sorted((out / "results").glob("mask_*.tif")):
        precision, recall, f1 = scores(mask_path, scenario.truth)
        lines.append(f"  {mask_path.stem[5:]:<12}{precision:>10.3f}{recall:>9.3f}{f1:>8.3f}")
    lines += ["", f"open: {out / 'candidates.gpkg'} (why these images), {out / 'results'} (masks, polygons)",
              f"time: {time.perf_counter() - start:.0f} s"]
    (out / "summary.txt").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
