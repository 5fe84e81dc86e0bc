"""The scenario benchmark's scenes: every confounder of issue 15 is in the set and really in the rasters,
scenes are deterministic, and the built-in example is unchanged by the scenario machinery."""
from __future__ import annotations

import hashlib
import re

import numpy as np
import rasterio

from landslide_plugin.core.products import read_l2a
from landslide_plugin.examples import example_data as ed

# --- the built-in example is unchanged ------------------------------------------------------------------
#: SHA-256 of the arrays generate_example_pair(size=64, seed=0) wrote on main at a511b1b, before the
#: scenario machinery (numpy/scipy/OpenCV as pinned in constraints.txt): truth, DEM and land cover as
#: read back, and each product's reflectance stack followed by its SCL as read_l2a returns them.
DEFAULT_PAIR_DIGESTS = {
    "truth": "84f4fc66f42136c190404d25e415cabdd82a7c6bb136304a285ad3550fcb2343",  # pragma: allowlist secret
    "dem": "713a8574c86fbfccd30568444ef8468e4f5df3e25f0df5de560a1c70278d8ed0",  # pragma: allowlist secret
    "landcover": "433f65a9a4575c84914cc056f4aad0c8f2660dd6e5299bf9a51501ebf8bc99cb",  # pragma: allowlist secret
    "pre": "8d8fb4c29e5084de3349b4d9dee1bca6aeff854072e4fd5998e4d93fa4bf8f37",  # pragma: allowlist secret
    "post": "996da8d2b852ddb5ad7b71f934e9c4e6643be6150108d7913d2d1cd025de0873",  # pragma: allowlist secret
}


def _digest(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def test_generate_example_pair_defaults_are_unchanged(tmp_path):
    pair = ed.generate_example_pair(tmp_path, size=64, seed=0)
    found = {}
    for name, path in (("truth", pair.truth), ("dem", pair.dem), ("landcover", pair.landcover)):
        with rasterio.open(path) as src:
            found[name] = _digest(src.read(1))
    for which, path in (("pre", pair.pre), ("post", pair.post)):
        stack = read_l2a(str(path))
        found[which] = hashlib.sha256(np.ascontiguousarray(stack.reflectance).tobytes()
                                      + stack.scl.tobytes()).hexdigest()
    assert found == DEFAULT_PAIR_DIGESTS


# --- the scenario set ------------------------------------------------------------------------------------
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from scipy import ndimage  # noqa: E402

from landslide_plugin.examples import scenarios as sc  # noqa: E402

SMALL = 128
#: Issue confounder -> its label in confounders.tif (misregistration is scene-level: the shift).
LABEL_OF = {name: label for name, label in sc.ISSUE_LABELS.items() if label}


def test_the_set_is_varied_and_declares_every_confounder_of_the_issue():
    scenes = sc.SCENARIOS
    assert len(scenes) >= 12
    assert len({s.name for s in scenes}) == len(scenes) and len({s.seed for s in scenes}) == len(scenes)
    assert {(s.landscape, s.season) for s in scenes} == {(land, season) for land in sc.LANDSCAPES
                                                         for season in sc.SEASONS}
    sizes = {s.size for s in scenes}
    assert min(sizes) >= 256 and max(sizes) <= 768 and len(sizes) >= 4
    declared = {c for s in scenes for c in s.confounders}
    assert declared == set(sc.ISSUE_CONFOUNDERS)
    for confounder in sc.ISSUE_CONFOUNDERS:  # each in at least two scenes, so no single scene carries it
        assert sum(confounder in s.confounders for s in scenes) >= 2, confounder
    shifts = [s.misregistration_px for s in scenes]
    assert all(0.0 <= v <= 3.0 for v in shifts) and min(shifts) == 0.0 and max(shifts) >= 2.5
    assert set(sc.ISSUE_LABELS) == set(sc.ISSUE_CONFOUNDERS)
    assert set(LABEL_OF.values()) <= set(sc.CONFOUNDERS)


def test_options_refuse_what_the_benchmark_does_not_describe():
    base = sc.SCENARIOS[0]
    with pytest.raises(ValueError, match="0 to 3 px"):
        sc.ScenarioOptions("x", "alpine", "same-season", "2022-08-01", "2023-08-05", shift=(3.0, 1.0))
    with pytest.raises(ValueError, match="winter-summer"):
        sc.ScenarioOptions("x", "alpine", "winter-summer", "2022-08-01", "2023-08-05")
    with pytest.raises(ValueError, match="within a month"):
        sc.ScenarioOptions("x", "alpine", "same-season", "2022-05-01", "2023-08-05")
    with pytest.raises(ValueError, match="landscape"):
        sc.ScenarioOptions("x", "tundra", "same-season", "2022-08-01", "2023-08-05")
    assert base.with_size(SMALL).size == SMALL and base.with_size(SMALL).name == base.name


class Small:
    """A scenario generated at SMALL px, read back."""

    def __init__(self, options, folder: Path):
        self.options = options
        self.pair = sc.generate_scenario(folder, options, reuse=False)
        self.labels = sc.read_labels(self.pair.confounders)
        with rasterio.open(self.pair.truth) as src:
            self.truth = src.read(1) == 1
        with rasterio.open(self.pair.dem) as src:
            self.dem = src.read(1)
        self.pre, self.post = read_l2a(str(self.pair.pre)), read_l2a(str(self.pair.post))
        self.observed = ~self.labels["unobserved"]

    def band(self, which: str, name: str) -> np.ndarray:
        """A band on the pre grid (the post image moved back by its whole-pixel shift)."""
        if which == "pre":
            return self.pre.band(name)
        dx, dy = (int(round(v)) for v in self.options.shift)
        size = self.options.size
        rows, cols = np.clip(np.arange(size) + dy, 0, size - 1), np.clip(np.arange(size) + dx, 0, size - 1)
        return self.post.band(name)[np.ix_(rows, cols)]

    def index(self, which: str, a: str, b: str) -> np.ndarray:
        x, y = self.band(which, a), self.band(which, b)
        with np.errstate(divide="ignore", invalid="ignore"):
            return (x - y) / (x + y)

    def change(self, a: str, b: str) -> np.ndarray:
        return self.index("post", a, b) - self.index("pre", a, b)

    def on(self, label: str) -> np.ndarray:
        return self.labels[label] & self.observed

    def clear(self, label: str) -> np.ndarray:
        """Observed pixels of ``label`` without unflagged haze, cloud shadow or snow over them."""
        return self.on(label) & ~(self.labels["haze"] | self.labels["cloud_shadow"] | self.labels["snow"])


@pytest.fixture(scope="module")
def small_scenes(tmp_path_factory) -> dict[str, Small]:
    """Every scenario at SMALL px (about 0.3 s each)."""
    root = tmp_path_factory.mktemp("scenarios")
    return {s.name: Small(s.with_size(SMALL), root / s.name) for s in sc.SCENARIOS}


def _first_with(small_scenes, confounder: str) -> Small:
    label = LABEL_OF[confounder]
    for scene in small_scenes.values():
        if confounder in scene.options.confounders and scene.on(label).sum() >= 20:
            return scene
    raise AssertionError(f"no small scene declaring {confounder!r} has observed {label} pixels")


def _mean(values: np.ndarray) -> float:
    return float(np.nanmean(values))


def test_fields_reservoir_and_seasons_change_as_described(small_scenes):
    harvest = _first_with(small_scenes, "harvested fields")
    assert _mean(harvest.change("B8A", "B04")[harvest.clear("harvested_field")]) < -0.2
    browning = _first_with(small_scenes, "seasonal browning")
    assert _mean(browning.change("B8A", "B04")[browning.clear("browning")]) < -0.05
    greening = _first_with(small_scenes, "seasonal greening")
    assert _mean(greening.change("B8A", "B04")[greening.clear("greening")]) > 0.03
    for scene in small_scenes.values():
        if "reservoir level change" in scene.options.confounders:
            state = sc.simulate_scenario(scene.options)
            res = state.reservoir
            assert abs(res["level"]["post"] - res["level"]["pre"]) > 0.1 * (res["full"] - res["low"])
            assert scene.labels["reservoir_shore"].any()


def test_burns_darken_and_lose_nbr_while_scars_brighten(small_scenes):
    burn = _first_with(small_scenes, "burn scars")
    on = burn.clear("burn") & ~ndimage.binary_dilation(burn.truth, iterations=2)
    assert on.sum() >= 20
    assert _mean(burn.change("B8A", "B12")[on]) < -0.1  # burned by the dNBR of Key & Benson (2006)
    visible = sum(burn.band("post", b) - burn.band("pre", b) for b in ("B02", "B03", "B04"))
    scars = burn.truth & burn.observed & ~burn.labels["haze"]
    assert _mean(visible[on]) < 0.02 < 0.05 < _mean(visible[scars])
    swir = burn.band("post", "B11") - burn.band("pre", "B11")
    assert _mean(swir[on]) < 0 < _mean(swir[scars])
    slope, _ = ed.slope_aspect(burn.dem)
    assert np.median(slope[on]) > 10


def test_clearcuts_are_bare_rectangles_on_slopes_too(small_scenes):
    cut = _first_with(small_scenes, "forestry clear-cuts")
    on = cut.clear("clearcut")
    assert _mean(cut.change("B8A", "B04")[on]) < -0.2
    slope, _ = ed.slope_aspect(cut.dem)
    assert np.count_nonzero(on & (slope > 20)) > 0
    blobs, n = ndimage.label(cut.labels["clearcut"])
    fill = [np.mean(blobs[box] == k) for k, box in enumerate(ndimage.find_objects(blobs), 1)
            if np.count_nonzero(blobs[box] == k) >= 20]
    assert fill and np.median(fill) > 0.5  # compact blocks, not slivers


def test_snow_is_partly_flagged_and_partly_not(small_scenes):
    snow = _first_with(small_scenes, "snow")
    flagged = (snow.pre.scl == 11).sum() + (snow.post.scl == 11).sum()
    assert flagged > 0, "thick snow is in the SCL"
    assert snow.on("snow").sum() > 0, "thin and under-canopy snow is not"


def test_haze_thin_cloud_and_shadows_are_not_all_flagged(small_scenes):
    haze = small_scenes["semiarid-spring-haze"]  # haze and thin cloud on the post date only
    assert "haze and thin cloud" in haze.options.confounders
    on = haze.on("haze")
    blue = haze.band("post", "B02") - haze.band("pre", "B02")
    assert on.sum() > 100 and _mean(blue[on]) > _mean(blue[haze.observed & ~haze.labels["haze"]]) + 0.005
    shadow = _first_with(small_scenes, "cloud shadows")
    assert (shadow.pre.scl == 3).any() or (shadow.post.scl == 3).any()
    assert shadow.on("cloud_shadow").sum() > 0  # the penumbra the SCL misses


def test_sun_elevation_changes_terrain_shading(small_scenes):
    scene = _first_with(small_scenes, "sun elevation change")
    zenith = scene.options.sun_zenith()
    assert abs(zenith[1] - zenith[0]) > 10
    assert scene.on("terrain_shading").sum() > 0


def test_truth_has_mixed_edges_runout_on_gentle_slopes_and_small_scars(small_scenes):
    edges = _first_with(small_scenes, "mixed pixels at scar edges")
    state = sc.simulate_scenario(edges.options)
    cover = state.debris_fraction
    assert np.count_nonzero((cover > 0) & (cover < 0.5)) > 0 and edges.options.psf_sigma > 0
    runout = _first_with(small_scenes, "runout and deposits")
    assert runout.on("runout").sum() > 0
    assert (runout.labels["runout"] <= runout.truth).all()  # in the truth
    slope, _ = ed.slope_aspect(runout.dem)
    assert np.median(slope[runout.labels["runout"]]) < 15
    small = _first_with(small_scenes, "scars near the minimum mapping unit")
    blobs, _ = ndimage.label(small.truth, structure=np.ones((3, 3), bool))
    sizes = np.bincount(blobs[small.labels["small_scar"]])
    assert set(np.unique(sizes[sizes > 0])) <= set(range(2, 7))


def test_misregistration_is_the_described_shift(small_scenes):
    import json

    for scene in small_scenes.values():
        info = json.loads(scene.pair.info.read_text())
        assert info["shift"] == list(scene.options.shift)
        assert info["scenario"]["name"] == scene.options.name


def test_scenes_are_deterministic_for_a_seed(tmp_path):
    options = sc.scenario("humid-burn-clearcut-shadow").with_size(96)
    one = Small(options, tmp_path / "one")
    two = Small(options, tmp_path / "two")
    other = Small(sc.dataclasses.replace(options, seed=options.seed + 1), tmp_path / "other")
    np.testing.assert_array_equal(one.truth, two.truth)
    np.testing.assert_array_equal(one.labels["burn"], two.labels["burn"])
    for which in ("pre", "post"):
        np.testing.assert_array_equal(getattr(one, which).reflectance, getattr(two, which).reflectance)
        np.testing.assert_array_equal(getattr(one, which).scl, getattr(two, which).scl)
    assert not np.array_equal(one.dem, other.dem)


def test_a_complete_scenario_is_reused(tmp_path):
    options = sc.scenario("alpine-burn-runout").with_size(64)
    first = sc.generate_scenario(tmp_path, options)
    stamp = first.pre.stat().st_mtime_ns
    again = sc.generate_scenario(tmp_path, options)
    assert again.pre == first.pre and again.pre.stat().st_mtime_ns == stamp
    changed = sc.generate_scenario(tmp_path, sc.dataclasses.replace(options, burns=0.02))
    assert changed.confounders.is_file() and changed.options.burns == 0.02


def test_core_never_imports_the_examples():
    core = Path(sc.__file__).resolve().parent.parent / "core"
    imports = re.compile(r"^\s*(from\s+\S*examples\S*\s+import|import\s+\S*examples)", re.M)
    for path in core.glob("*.py"):
        assert not imports.search(path.read_text(encoding="utf-8")), path.name
