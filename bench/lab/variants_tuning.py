"""Method-lab variants (bench/method_lab.py) behind the issue-15 tables in bench/README.md; run from the repo root."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import method_lab

from landslide_plugin.core import masks
from landslide_plugin.core.clustering import SelectionRule as R
from landslide_plugin.core.detection import MethodSpec as M


def mask_opts(folder):
    return masks.MaskOptions(use_scl=True, exclude_water=True, slope_path=str(folder / "slope.tif"),
                             min_slope_deg=15.0, min_ndvi_pre=0.3)


F5 = {"features": ("dNDVI", "dBSI", "dVIS", "NDVI_pre", "BSI_post")}
F6 = {"features": ("dNDVI", "dBSI", "dVIS", "NDVI_pre", "BSI_post", "dSWIR")}


def rule(pixel=-0.2):
    return R(max_dndvi=-0.15, min_dbsi=0.05, min_dvis=0.02, pixel_max_dndvi=pixel, fallback=True)


def km(ks, pixel=-0.2, cb=-0.1):
    return [M("kmeans", k, candidates_below=cb, rule=rule(pixel)) for k in ks]


VARIANTS = {
    "F6": {"methods": km((5, 7)), "masks": mask_opts, "inputs": F6},
    "pix15": {"methods": km((5, 7), pixel=-0.15), "masks": mask_opts, "inputs": F5},
    "pix25": {"methods": km((5,), pixel=-0.25), "masks": mask_opts, "inputs": F5},
    "cb05": {"methods": km((5, 7), cb=-0.05), "masks": mask_opts, "inputs": F5},
    "cb15": {"methods": km((5, 7), cb=-0.15), "masks": mask_opts, "inputs": F5},
}
sys.exit(method_lab.main(VARIANTS))
