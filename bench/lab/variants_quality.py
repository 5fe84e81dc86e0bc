"""Method-lab variants (bench/method_lab.py) behind the issue-15 quality tables in bench/README.md.

Run from the repo root: bench/lab/variants_quality.py [--variants a,b]."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import method_lab

from landslide_plugin.core import masks
from landslide_plugin.core.clustering import SelectionRule as R
from landslide_plugin.core.detection import MethodSpec as M


def mask_opts(**extra):
    def make(folder):
        return masks.MaskOptions(use_scl=True, exclude_water=True, slope_path=str(folder / "slope.tif"),
                                 min_slope_deg=15.0, min_ndvi_pre=0.3, **extra)
    return make


F5 = {"features": ("dNDVI", "dBSI", "dVIS", "NDVI_pre", "BSI_post")}
RULE = R(max_dndvi=-0.15, min_dbsi=0.05, min_dvis=0.02, pixel_max_dndvi=-0.2, fallback=True)
DEFAULT = [M("threshold"), M("kmeans", 5, candidates_below=-0.1, rule=RULE),
           M("gmm", 5, candidates_below=-0.1, rule=RULE)]
RULE10 = R(max_dndvi=-0.15, min_dbsi=0.05, min_dvis=0.02, pixel_max_dndvi=-0.1, fallback=True)
LOCAL = R(max_dndvi=-0.15, min_dbsi=0.05, min_dvis=0.02, pixel_max_dndvi=-0.2, local_max_dndvi=-0.1, fallback=True)
LOCAL15 = R(max_dndvi=-0.15, min_dbsi=0.05, min_dvis=0.02, pixel_max_dndvi=-0.15, local_max_dndvi=-0.1,
            fallback=True)

LOCAL_VIS = R(max_dndvi=-0.15, min_dbsi=0.05, min_dvis=0.02, pixel_max_dndvi=-0.15, local_max_dndvi=-0.1,
              local_min_dvis=0.02, fallback=True)

LOCAL_VIS_CORE = R(max_dndvi=-0.15, min_dbsi=0.05, min_dvis=0.02, pixel_max_dndvi=-0.15, local_max_dndvi=-0.1,
                   local_min_dvis=0.02, min_core_fraction=0.5, fallback=True)

LOCAL_SCAR = R(max_dndvi=-0.15, min_dbsi=0.05, min_dvis=0.02, pixel_max_dndvi=-0.15, local_max_dndvi=-0.1,
               local_min_dvis=0.02, min_core_fraction=0.5, local_scar_dndvi=-0.2, fallback=True)


#: Issue 15, third pass: the clustering on the change relative to the surroundings (each change minus the median
#: of the observed land within 800 m), not on the raw change; the same rule, read on the local centres.
F5_LOCAL = {"features": ("dNDVI_local", "dBSI_local", "dVIS_local", "NDVI_pre", "BSI_post")}
#: ... and with the raw changes beside them.
F8_BOTH = {"features": ("dNDVI", "dBSI", "dVIS", "dNDVI_local", "dBSI_local", "dVIS_local", "NDVI_pre", "BSI_post")}

LOCAL_SCAR_CV = R(max_dndvi=-0.15, min_dbsi=0.05, min_dvis=0.02, pixel_max_dndvi=-0.15, local_max_dndvi=-0.1,
                  local_min_dvis=0.02, min_core_fraction=0.5, local_scar_dndvi=-0.2, centre_local_vis=True,
                  fallback=True)
LOCAL_SCAR_NOFB = R(max_dndvi=-0.15, min_dbsi=0.05, min_dvis=0.02, pixel_max_dndvi=-0.15, local_max_dndvi=-0.1,
                    local_min_dvis=0.02, min_core_fraction=0.5, local_scar_dndvi=-0.2, centre_local_vis=True)

#: Issue 15, per-method features: K-means 5 on the change, GMM 5 on the change beyond the surroundings, in one run
#: (one sample; the rule's centre alternative acts only on the GMM, the one fitted on dVIS_local).
PER_METHOD = [M("threshold"), M("kmeans", 5, candidates_below=-0.1, rule=LOCAL_SCAR_CV),
              M("gmm", 5, candidates_below=-0.1, rule=LOCAL_SCAR_CV, features=F5_LOCAL["features"])]


def local(rule, seed=0):
    return [M("threshold"), M("kmeans", 5, candidates_below=-0.1, rule=rule, seed=seed),
            M("gmm", 5, candidates_below=-0.1, rule=rule, seed=seed)]


VARIANTS = {
    "default": {"methods": DEFAULT, "masks": mask_opts(), "inputs": F5},
    "pix10": {"methods": [M("threshold", threshold=-0.1), M("kmeans", 5, candidates_below=-0.1, rule=RULE10)],
              "masks": mask_opts(), "inputs": F5},
    "local": {"methods": local(LOCAL), "masks": mask_opts(), "inputs": F5},
    "local_pix15": {"methods": local(LOCAL15), "masks": mask_opts(), "inputs": F5},
    "local_vis": {"methods": local(LOCAL_VIS), "masks": mask_opts(), "inputs": F5},
    "local_vis_core": {"methods": local(LOCAL_VIS_CORE), "masks": mask_opts(), "inputs": F5},
    "local_vis_core_shore": {"methods": local(LOCAL_VIS_CORE), "masks": mask_opts(water_buffer_px=2), "inputs": F5},
    "local_scar": {"methods": local(LOCAL_SCAR), "masks": mask_opts(water_buffer_px=2), "inputs": F5},
    "local_features": {"methods": local(LOCAL_SCAR), "masks": mask_opts(water_buffer_px=2), "inputs": F5_LOCAL},
    "local_features_cv": {"methods": local(LOCAL_SCAR_CV), "masks": mask_opts(water_buffer_px=2),
                          "inputs": F5_LOCAL},
    "local_features_cv_nofb": {"methods": local(LOCAL_SCAR_NOFB), "masks": mask_opts(water_buffer_px=2),
                               "inputs": F5_LOCAL},
    "per_method_features": {"methods": PER_METHOD, "masks": mask_opts(water_buffer_px=2), "inputs": F5},
    "local_and_raw_features_cv": {"methods": local(LOCAL_SCAR_CV), "masks": mask_opts(water_buffer_px=2),
                                  "inputs": F8_BOTH},
    **{f"{name}_seed{seed}": {"methods": local(rule, seed), "masks": mask_opts(water_buffer_px=2),
                              "inputs": {**inputs, "seed": seed}}
       for seed in (1, 2) for name, rule, inputs in (("local_scar", LOCAL_SCAR, F5),
                                                     ("local_features_cv", LOCAL_SCAR_CV, F5_LOCAL))},
    "local_and_raw_features": {"methods": local(LOCAL_SCAR), "masks": mask_opts(water_buffer_px=2),
                               "inputs": F8_BOTH},
    "local_vis_core_objects": {"methods": local(LOCAL_VIS_CORE), "masks": mask_opts(slope_objects=True),
                               "inputs": F5},
    "local_pix15_objects": {"methods": local(LOCAL15), "masks": mask_opts(slope_objects=True), "inputs": F5},
    "local_pix10": {"methods": [M("threshold", threshold=-0.1), M("kmeans", 5, candidates_below=-0.1, rule=RULE10)],
                    "masks": mask_opts(), "inputs": F5},
}
sys.exit(method_lab.main(VARIANTS))
