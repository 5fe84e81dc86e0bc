"""Method-lab variants (bench/method_lab.py) behind the issue-15 tables in bench/README.md; run from the repo root."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import method_lab

from landslide_plugin.core import masks
from landslide_plugin.core.clustering import SelectionRule as R
from landslide_plugin.core.detection import MethodSpec as M


def mask_opts(min_ndvi=0.3, objects=False):
    def make(folder):
        return masks.MaskOptions(use_scl=True, exclude_water=True, slope_path=str(folder / "slope.tif"),
                                 min_slope_deg=15.0, min_ndvi_pre=min_ndvi, slope_objects=objects)
    return make
F5 = {"features": ("dNDVI", "dBSI", "dVIS", "NDVI_pre", "BSI_post")}
loose = R(max_dndvi=-0.15, min_dbsi=0.05, min_dvis=0.02, pixel_max_dndvi=-0.2, fallback=True)
strict = R(max_dndvi=-0.25, min_dbsi=0.1, min_dvis=0.02, pixel_max_dndvi=-0.2, fallback=True)
def cand(ks, rule, cb=-0.1):
    return [M(kind, k, candidates_below=cb, rule=rule) for k in ks for kind in ("kmeans", "gmm")]
VARIANTS = {
    "fb": {"methods": [M("threshold")] + cand((4, 5, 6), loose), "masks": mask_opts(), "inputs": F5},
    "fb_strict": {"methods": cand((4, 5), strict), "masks": mask_opts(), "inputs": F5},
}
sys.exit(method_lab.main(VARIANTS))
