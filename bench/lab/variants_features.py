"""Method-lab variants (bench/method_lab.py) behind the issue-15 tables in bench/README.md; run from the repo root."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import method_lab

from landslide_plugin.core import masks
from landslide_plugin.core.clustering import SelectionRule as R
from landslide_plugin.core.detection import MethodSpec as M


def mask_opts(min_ndvi=0.3, slope=15.0):
    def make(folder):
        return masks.MaskOptions(use_scl=True, exclude_water=True, slope_path=str(folder / "slope.tif"),
                                 min_slope_deg=slope, min_ndvi_pre=min_ndvi)
    return make

F4 = {"features": ("dNDVI", "dBSI", "dVIS", "NDVI_pre")}
F3 = {"features": ("dNDVI", "dBSI", "dVIS")}
DEFAULT_RULE = R()


def cand(k, rule=DEFAULT_RULE, cb=-0.1):
    return [M("kmeans", k, candidates_below=cb, rule=rule), M("gmm", k, candidates_below=cb, rule=rule)]
VARIANTS = {
    "current": {"methods": [M("threshold"), M("kmeans", 3), M("gmm", 3)], "masks": mask_opts()},
    "cand4_F4": {"methods": cand(3) + cand(5), "masks": mask_opts(), "inputs": F4},
    "cand4_F3": {"methods": cand(3) + cand(5), "masks": mask_opts(), "inputs": F3},
    "cand_F4_ndvi0": {"methods": [M("threshold")] + cand(3) + cand(5), "masks": mask_opts(None), "inputs": F4},
}
sys.exit(method_lab.main(VARIANTS))
