"""Method-lab variants (bench/method_lab.py) behind the issue-15 tables in bench/README.md; run from the repo root."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import method_lab
import numpy as np

from landslide_plugin.core import detection, masks
from landslide_plugin.core.clustering import SelectionRule as R
from landslide_plugin.core.detection import MethodSpec as M


class SignatureDetector(detection.Detector):
    """pixel rule: dNDVI < t & dBSI > b & dVIS > v"""
    def predict(self, f):
        with np.errstate(invalid="ignore"):
            return detection.BlockPrediction(landslide=(f["dNDVI"] < -0.2) & (f["dBSI"] > 0.1) & (f["dVIS"] > 0.02))
detection.REGISTRY["signature"] = detection.MethodKind("signature", "Signature", SignatureDetector)

def mask_opts(min_ndvi=0.3, slope=15.0):
    def make(folder):
        return masks.MaskOptions(use_scl=True, exclude_water=True, slope_path=str(folder / "slope.tif"),
                                 min_slope_deg=slope, min_ndvi_pre=min_ndvi)
    return make
F3 = {"features": ("dNDVI", "dBSI", "dVIS")}
F5 = {"features": ("dNDVI", "dBSI", "dVIS", "NDVI_pre", "BSI_post")}
loose = R(max_dndvi=-0.15, min_dbsi=0.05, min_dvis=0.02, pixel_max_dndvi=-0.2)
def cand(ks, rule, cb=-0.1):
    return [M(kind, k, candidates_below=cb, rule=rule) for k in ks for kind in ("kmeans", "gmm")]
VARIANTS = {
    "gate_F3": {"methods": [M("threshold"), M("signature")] + cand((3, 5), loose), "masks": mask_opts(), "inputs": F3},
    "gate_F5": {"methods": cand((3, 5), loose), "masks": mask_opts(), "inputs": F5},
    "gate_F3_cb15": {"methods": cand((4, 6), loose, cb=-0.15), "masks": mask_opts(), "inputs": F3},
}
sys.exit(method_lab.main(VARIANTS))
