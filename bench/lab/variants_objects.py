"""Method-lab variants (bench/method_lab.py) behind the issue-15 tables in bench/README.md; run from the repo root."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import method_lab
import numpy as np
import rasterio
from scipy import ndimage

from landslide_plugin.core import masks
from landslide_plugin.core.clustering import SelectionRule as R
from landslide_plugin.core.detection import MethodSpec as M


def mask_opts(folder):
    return masks.MaskOptions(use_scl=True, exclude_water=True, slope_path=str(folder / "slope.tif"),
                             min_slope_deg=15.0, min_ndvi_pre=0.3)


def minimum_objects(pixels):
    """Drop 8-connected landslide objects smaller than ``pixels`` (a minimum mapping unit on the mask)."""
    def rule(path, folder):
        with rasterio.open(path, "r+") as dst:
            mask = dst.read(1)
            labels, count = ndimage.label(mask == 1, structure=np.ones((3, 3), bool))
            sizes = np.bincount(labels.ravel())
            small = (sizes < pixels)[labels] & (labels > 0)
            mask[small] = 0
            dst.write(mask, 1)
    return rule


F5 = {"features": ("dNDVI", "dBSI", "dVIS", "NDVI_pre", "BSI_post")}
RULE = R(max_dndvi=-0.15, min_dbsi=0.05, min_dvis=0.02, pixel_max_dndvi=-0.2, fallback=True)
METHODS = [M("threshold"), M("kmeans", 5, candidates_below=-0.1, rule=RULE)]
VARIANTS = {
    "mmu2": {"methods": METHODS, "masks": mask_opts, "inputs": F5, "post": [minimum_objects(2)]},
    "mmu3": {"methods": METHODS, "masks": mask_opts, "inputs": F5, "post": [minimum_objects(3)]},
    "mmu5": {"methods": METHODS, "masks": mask_opts, "inputs": F5, "post": [minimum_objects(5)]},
}
sys.exit(method_lab.main(VARIANTS))
