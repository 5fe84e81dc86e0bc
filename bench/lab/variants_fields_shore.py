"""Method-lab variants (bench/method_lab.py) behind the issue-15 "fields and shore" tables in bench/README.md:
false alarms on harvested fields and reservoir shores with the masks on.

Run from the repo root: bench/lab/variants_fields_shore.py [--variants a,b]."""
import contextlib
import dataclasses
import functools
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import bench_accuracy
import method_lab

from landslide_plugin.core import indices, masks
from landslide_plugin.core.clustering import SelectionRule as R
from landslide_plugin.core.detection import MethodSpec as M
from landslide_plugin.examples import scenarios

F5 = {"features": ("dNDVI", "dBSI", "dVIS", "NDVI_pre", "BSI_post")}
#: GMM 5's features since the per-method pass: the change beyond the surroundings.
F5_LOCAL = ("dNDVI_local", "dBSI_local", "dVIS_local", "NDVI_pre", "BSI_post")
LOCAL_SCAR_CV = R(max_dndvi=-0.15, min_dbsi=0.05, min_dvis=0.02, pixel_max_dndvi=-0.15, local_max_dndvi=-0.1,
                  local_min_dvis=0.02, min_core_fraction=0.5, local_scar_dndvi=-0.2, centre_local_vis=True,
                  fallback=True)


def default_methods(rule=LOCAL_SCAR_CV):
    """The one-step run's methods on main: threshold, K-means 5 on the change, GMM 5 on the change beyond the
    surroundings, one shared rule."""
    return [M("threshold"), M("kmeans", 5, candidates_below=-0.1, rule=rule),
            M("gmm", 5, candidates_below=-0.1, rule=rule, features=F5_LOCAL)]


METHODS = default_methods()


def scene_of(folder: Path):
    """(scene options, scenario folder) of a lab folder ``lab_scenario_<name>_g<v>s<v>``."""
    scene_dir = folder.parent / folder.name.removeprefix("lab_")
    name = scene_dir.name.removeprefix("scenario_").rsplit("_g", 1)[0]
    return next(s for s in scenarios.SCENARIOS if s.name == name), scene_dir


def landcover(choice: str, other_seed: int = 0):
    """The exclusion raster of a land-cover variant: the generator's map or the bench's degraded copy (with
    ``other_seed``: another draw of the same degradation, to see how much one draw decides)."""
    def path(folder: Path) -> str:
        import rasterio

        options, scene_dir = scene_of(folder)
        if choice == "exact":
            return str(scene_dir / "landcover.tif")
        out = method_lab.CACHE / "lab_out" / options.name
        if not other_seed:
            return str(bench_accuracy.landcover_for(options, scene_dir / "landcover.tif", out, "degraded"))
        with rasterio.open(scene_dir / "landcover.tif") as src:
            profile, classes = src.profile, src.read(1)
        target = out / f"landcover_degraded_{other_seed}.tif"
        with rasterio.open(target, "w", **profile) as dst:
            dst.write(bench_accuracy.degraded_landcover(classes, options.seed + 1000 * other_seed), 1)
        return str(target)
    return path


def mask_opts(landcover_path=None, **extra):
    """The one-step run's masks (runout below a source kept, as on main since the runout pass) and ``extra``."""
    def make(folder):
        lc = {} if landcover_path is None else {"exclusion_path": landcover_path(folder),
                                                "exclusion_classes": bench_accuracy.LANDCOVER_EXCLUDED}
        _, scene_dir = scene_of(folder)
        return masks.MaskOptions(use_scl=True, exclude_water=True, slope_path=str(folder / "slope.tif"),
                                 dem_path=str(scene_dir / "dem.tif"), keep_runout=True, min_slope_deg=15.0,
                                 min_ndvi_pre=0.3, **lc, **extra)
    return make


def across_slope_objects(min_pixels=10, min_elongation=2.0, max_angle_to_contour=30.0):
    """Post-rule: drop mapped objects of ``min_pixels`` or more whose long axis (second moments) is at least
    ``min_elongation`` times the short one and within ``max_angle_to_contour`` degrees of the contour
    (terraces and field strips run along the slope; a slide runs down it)."""
    import rasterio
    from scipy import ndimage

    def rule(path: Path, folder: Path) -> None:
        _, scene_dir = scene_of(folder)
        with rasterio.open(scene_dir / "dem.tif") as src:
            dem = src.read(1).astype(np.float64)
            pixel = src.res[0]
        drow, dcol = np.gradient(dem, pixel)
        with rasterio.open(path) as src:
            profile, mask = src.profile, src.read(1)
        labels, count = ndimage.label(mask == 1, structure=np.ones((3, 3)))
        for index, window in enumerate(ndimage.find_objects(labels), start=1):
            inside = labels[window] == index
            if inside.sum() < min_pixels:
                continue
            rows, cols = np.nonzero(inside)
            values, vectors = np.linalg.eigh(np.cov(np.vstack([cols, -rows]).astype(float)))
            if values[1] < min_elongation ** 2 * max(values[0], 1e-6):
                continue
            east, north = -dcol[window][inside].mean(), drow[window][inside].mean()
            norm = np.hypot(east, north)
            if norm == 0:
                continue
            to_downslope = np.degrees(np.arccos(min(1.0, abs(vectors[0, 1] * east + vectors[1, 1] * north) / norm)))
            if to_downslope >= 90.0 - max_angle_to_contour:
                mask[window][inside] = 0
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(mask, 1)
    return rule


def core_radius(px: int):
    """Context: the core-fraction rule's neighbourhood (``indices.CORE_RADIUS_PX``, 2) set to ``px`` for one run."""
    @contextlib.contextmanager
    def patched():
        radius, strongest = indices.CORE_RADIUS_PX, indices.strongest_loss_nearby
        indices.CORE_RADIUS_PX = px
        indices.strongest_loss_nearby = functools.partial(strongest, radius=px)
        try:
            yield
        finally:
            indices.CORE_RADIUS_PX, indices.strongest_loss_nearby = radius, strongest
    return patched


def with_core(fraction: float):
    return default_methods(dataclasses.replace(LOCAL_SCAR_CV, min_core_fraction=fraction))


#: The one-step default after this pass (2 px shore, 3 px where the water line moved).
DEFAULT_MASKS = mask_opts(water_buffer_px=2, moved_water_buffer_px=3)

VARIANTS = {
    "fs_base": {"methods": METHODS, "masks": mask_opts(water_buffer_px=2), "inputs": F5},
    "fs_shore3": {"methods": METHODS, "masks": mask_opts(water_buffer_px=3), "inputs": F5},
    "fs_shore4": {"methods": METHODS, "masks": mask_opts(water_buffer_px=4), "inputs": F5},
    **{f"fs_moved{px}": {"methods": METHODS, "masks": mask_opts(water_buffer_px=2, moved_water_buffer_px=px),
                         "inputs": F5} for px in (3, 4, 5)},
    "fs_shore3_moved4": {"methods": METHODS, "masks": mask_opts(water_buffer_px=3, moved_water_buffer_px=4),
                         "inputs": F5},
    "fs_across_slope": {"methods": METHODS, "masks": DEFAULT_MASKS, "inputs": F5, "post": (across_slope_objects(),)},
    # ... only on objects large enough for a field parcel (>= 30 px = 1.2 ha).
    "fs_across_slope30": {"methods": METHODS, "masks": DEFAULT_MASKS, "inputs": F5,
                          "post": (across_slope_objects(min_pixels=30),)},
    "fs_across_slope30_wide": {"methods": METHODS, "masks": DEFAULT_MASKS, "inputs": F5,
                               "post": (across_slope_objects(min_pixels=30, min_elongation=1.5,
                                                             max_angle_to_contour=45.0),)},
    # Land-cover exclusion (classes 40, 50) on the new default masks: the generator's map, the bench's degraded
    # copy (``bench_accuracy.py --landcover degraded``) and two more draws of the same degradation.
    "fs_landcover_exact": {"methods": METHODS, "inputs": F5,
                           "masks": mask_opts(landcover("exact"), water_buffer_px=2, moved_water_buffer_px=3)},
    **{f"fs_landcover_degraded{f'_draw{k}' if k else ''}": {
        "methods": METHODS, "inputs": F5,
        "masks": mask_opts(landcover("degraded", k), water_buffer_px=2, moved_water_buffer_px=3)} for k in (0, 1, 2)},
    # Scar edges (measured only): the core-fraction rule's level and neighbourhood, on the new default masks.
    **{f"fs_core{int(f * 100)}": {"methods": with_core(f), "masks": DEFAULT_MASKS, "inputs": F5} for f in (0.6, 0.7)},
    **{f"fs_core_radius{px}": {"methods": METHODS, "masks": DEFAULT_MASKS, "inputs": F5, "context": core_radius(px)}
       for px in (1, 3)},
}
sys.exit(method_lab.main(VARIANTS))
