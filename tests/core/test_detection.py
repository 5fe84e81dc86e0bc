"""The detection pass: one read of the pair for every method, methods as registry entries, the same maps as
running each method on its own."""
from __future__ import annotations

import numpy as np
import pytest
import rasterio
from test_clustering import pair  # noqa: F401 - the synthetic forest/field/lake pair fixture

from landslide_plugin.core import detection, masks, rasters
from landslide_plugin.core.detection import REGISTRY, DetectionInputs, MethodOutputs, MethodSpec

METHODS = [MethodSpec("threshold"), MethodSpec("kmeans", 3), MethodSpec("gmm", 2), MethodSpec("gmm", 3)]


def outputs_in(folder, methods):
    return {m.name: MethodOutputs(folder / f"mask_{m.name}.tif",
                                  folder / f"clusters_{m.name}.tif" if m.entry.takes_clusters else None,
                                  folder / f"probability_{m.name}.tif" if m.entry.gives_probability else None)
            for m in methods}


def read(path):
    with rasterio.open(path) as src:
        return src.read(1)


def test_method_names_labels_and_registry():
    assert [m.name for m in METHODS] == ["threshold", "kmeans3", "gmm2", "gmm3"]
    assert [m.label for m in METHODS] == ["dNDVI threshold", "K-means 3", "GMM 2", "GMM 3"]
    assert MethodSpec.from_name("GMM3") == MethodSpec("gmm", 3)
    assert MethodSpec.from_name("threshold").kind == "threshold"
    with pytest.raises(ValueError, match="unknown method 'svm2'"):
        MethodSpec.from_name("svm2")
    with pytest.raises(ValueError, match="kmeans needs at least 2 clusters"):
        MethodSpec("kmeans", 1)
    assert {k: (e.fitted, e.gives_probability) for k, e in REGISTRY.items()} == {
        "threshold": (False, False), "kmeans": (True, False), "gmm": (True, True), "either": (False, False)}
    assert MethodSpec.from_name("either").label == "Either clustering"


def test_a_new_method_is_one_registry_entry(pair, monkeypatch):  # noqa: F811
    """A method that flags every pixel whose BSI rose: one Detector class and one entry, nothing else."""

    class BareSoilGain(detection.Detector):
        def predict(self, features):
            return detection.BlockPrediction(landslide=np.asarray(features["dBSI"]) > 0.1)

    monkeypatch.setitem(REGISTRY, "baresoil", detection.MethodKind("baresoil", "Bare-soil gain", BareSoilGain))
    spec = MethodSpec("baresoil")
    result = detection.detect(DetectionInputs(pair["pre"], pair["post"]), [spec], outputs_in(pair["dir"], [spec]))
    mask = read(pair["dir"] / "mask_baresoil.tif")
    assert (mask[pair["slide"]] == 1).all() and result.methods["baresoil"].landslide >= pair["slide"].sum()


def test_one_pass_gives_the_maps_of_each_method_run_alone(pair):  # noqa: F811
    folder = pair["dir"]
    options = masks.MaskOptions()
    inputs = DetectionInputs(pair["pre"], pair["post"], pair["scl_pre"], pair["scl_post"], mask_options=options,
                             sample_size=2000, seed=3)
    ready = []
    together = folder / "together"
    together.mkdir()
    result = detection.detect(inputs, METHODS, outputs_in(together, METHODS), on_method_ready=ready.append)
    assert result.reads == 2  # features and masks once, one more pass for the fitted methods' predictions
    assert sorted(r.spec.name for r in ready) == sorted(m.name for m in METHODS)  # as each fit ends
    for method in METHODS:
        alone = folder / f"alone_{method.name}"
        alone.mkdir()
        detection.detect(inputs, [method], outputs_in(alone, [method]))
        for kind in ("mask", "clusters", "probability"):
            path = getattr(outputs_in(together, [method])[method.name], kind)
            if path is not None:
                np.testing.assert_array_equal(read(path), read(alone / path.name), err_msg=f"{method.name} {kind}")
    assert (read(together / "mask_kmeans3.tif")[pair["slide"]] == 1).all()
    assert result.methods["threshold"].landslide == int((read(together / "mask_threshold.tif") == 1).sum())


def test_threshold_alone_reads_the_pair_once(pair):  # noqa: F811
    spec = MethodSpec("threshold", threshold=-0.1)
    result = detection.detect(DetectionInputs(pair["pre"], pair["post"]), [spec], outputs_in(pair["dir"], [spec]))
    assert result.reads == 1 and result.sample_size == 0


def test_cancel_during_the_pass_writes_nothing(pair):  # noqa: F811
    folder = pair["dir"] / "cancelled"
    folder.mkdir()
    calls = {"n": 0}

    def cancel_late():
        calls["n"] += 1
        return calls["n"] > 2

    with pytest.raises(rasters.Cancelled):
        detection.detect(DetectionInputs(pair["pre"], pair["post"], sample_size=2000), METHODS,
                         outputs_in(folder, METHODS), is_cancelled=cancel_late)
    assert list(folder.iterdir()) == []


def test_outputs_for_every_method_are_required(pair):  # noqa: F811
    with pytest.raises(ValueError, match="no output paths for gmm3"):
        detection.detect(DetectionInputs(pair["pre"], pair["post"]), METHODS,
                         outputs_in(pair["dir"], METHODS[:3]))


# -- the change clustering (issue 15) ------------------------------------------------------------------------
def test_selection_rule_takes_every_landslide_like_cluster_and_says_so():
    from landslide_plugin.core.clustering import SelectionRule, select_landslide_cluster

    names = ("dNDVI", "dBSI", "dVIS")
    centres = np.array([[-0.50, 0.30, 0.07],    # fresh scar: NDVI loss, bare soil, brighter
                        [-0.35, 0.20, 0.05],    # scar edges
                        [-0.30, 0.15, -0.02],   # burn: NDVI loss but darker
                        [-0.12, 0.08, 0.02]])   # seasonal browning: too small a loss
    rule = SelectionRule(max_dndvi=-0.15, min_dbsi=0.05, min_dvis=0.02)
    best, selection = select_landslide_cluster(centres, names, rule=rule)
    assert best == 0 and selection.chosen_all == (0, 1)
    assert "dNDVI <= -0.15" in selection.format() and selection.warning is None
    # Nothing landslide-like: no cluster, and a warning instead of a forced choice ...
    _, none = select_landslide_cluster(centres[2:], names, rule=rule)
    assert none.chosen_all == () and "maps no landslide" in none.warning
    # ... unless the fallback takes the clusters that lost vegetation, gained soil and did not darken.
    _, fallback = select_landslide_cluster(centres[2:], names, rule=SelectionRule(fallback=True))
    assert fallback.chosen_all == (1,)


def test_change_clustering_clusters_only_vegetation_loss_and_gates_pixels(pair):  # noqa: F811
    from landslide_plugin.core.clustering import SelectionRule

    rule = SelectionRule(max_dndvi=-0.15, min_dbsi=0.05, min_dvis=0.0, pixel_max_dndvi=-0.2, fallback=True)
    spec = MethodSpec("kmeans", 3, candidates_below=-0.1, rule=rule)
    folder = pair["dir"] / "change"
    folder.mkdir()
    outputs = {spec.name: MethodOutputs(folder / "mask.tif", folder / "clusters.tif")}
    inputs = DetectionInputs(pair["pre"], pair["post"], pair["scl_pre"], pair["scl_post"],
                             mask_options=masks.MaskOptions(), features=("dNDVI", "dBSI", "dVIS", "NDVI_pre"),
                             sample_size=4000)
    result = detection.detect(inputs, [spec], outputs)
    mask, clusters = read(folder / "mask.tif"), read(folder / "clusters.tif")
    assert (mask[pair["slide"]] == 1).all() and (mask == 1).sum() == pair["slide"].sum()
    # Unchanged forest and fields are analysed but not clustered: 255 in the clusters, 0 in the mask.
    assert (clusters[10:20, 2:30] == 255).all() and (mask[10:20, 2:30] == 0).all()
    assert "clustered the pixels whose NDVI fell below -0.1" in result.methods[spec.name].detector.describe()


def test_too_few_changed_pixels_map_nothing_with_a_reason(pair):  # noqa: F811
    spec = MethodSpec("gmm", 3, candidates_below=-0.9)  # nothing lost that much
    folder = pair["dir"] / "nothing"
    folder.mkdir()
    outputs = {spec.name: MethodOutputs(folder / "mask.tif", folder / "clusters.tif", folder / "p.tif")}
    result = detection.detect(DetectionInputs(pair["pre"], pair["post"], features=("dNDVI", "dBSI"),
                                              sample_size=4000), [spec], outputs)
    assert result.methods[spec.name].landslide == 0 and (read(folder / "mask.tif") != 1).all()
    assert "too few to cluster" in result.methods[spec.name].detector.warning


def test_object_slope_rule_keeps_runout_of_a_scar_that_reaches_steep_ground(tmp_path):
    from rasterio.transform import from_origin

    profile = dict(driver="GTiff", width=20, height=20, count=1, crs="EPSG:32637",
                   transform=from_origin(0, 0, 20, 20))
    mask = np.zeros((20, 20), np.uint8)
    mask[2:12, 5:8] = 1     # a scar from steep ground (rows 2-5) down to its runout on gentle ground
    mask[15:18, 12:16] = 1  # a change on flat ground only: not a landslide
    slope = np.full((20, 20), 5.0, np.float32)
    slope[:6, :] = 30.0
    with rasterio.open(tmp_path / "m.tif", "w", dtype="uint8", nodata=255, **profile) as dst:
        dst.write(mask, 1)
    with rasterio.open(tmp_path / "s.tif", "w", dtype="float32", **profile) as dst:
        dst.write(slope, 1)
    dropped = masks.keep_objects_reaching_slope(tmp_path / "m.tif", tmp_path / "s.tif", 15.0)
    out = read(tmp_path / "m.tif")
    assert dropped == 12 and (out[2:12, 5:8] == 1).all() and (out[15:18, 12:16] == 0).all()


#: The centre rule of the change clustering, which the rule tests below extend one option at a time.
CENTRE_RULE = {"max_dndvi": -0.15, "min_dbsi": 0.05, "min_dvis": 0.02, "pixel_max_dndvi": -0.15}
CHANGE_FEATURES = ("dNDVI", "dBSI", "dVIS", "NDVI_pre", "BSI_post")
LOCAL_FEATURES = ("dNDVI_local", "dBSI_local", "dVIS_local", "NDVI_pre", "BSI_post")


def uniform(reflectance, size: int = 160) -> np.ndarray:
    """A (5, size, size) float32 stack of one reflectance spectrum (B02, B03, B04, B8A, B11)."""
    return np.broadcast_to(np.asarray(reflectance, np.float32)[:, None, None], (5, size, size)).copy()


def write_noisy_pair(tmp_path, pre, post, *, seed: int, noise: float = 0.01):
    """``pre`` and ``post`` with multiplicative sensor noise, written as stacks; their paths."""
    from test_clustering import write_stack

    rng = np.random.default_rng(seed)
    pre = pre * rng.normal(1, noise, pre.shape).astype(np.float32)
    post = post * rng.normal(1, noise, post.shape).astype(np.float32)
    return write_stack(tmp_path / "pre.tif", pre), write_stack(tmp_path / "post.tif", post)


def map_one_kmeans(tmp_path, paths, name: str, k: int, features, *, clusters: bool = False, **rule):
    """One K-means change clustering with ``CENTRE_RULE`` + ``rule`` through :func:`detection.detect`; the mask
    (1 = landslide) and the method's detector."""
    from landslide_plugin.core.clustering import SelectionRule

    spec = MethodSpec("kmeans", k, candidates_below=-0.1, rule=SelectionRule(**CENTRE_RULE, **rule))
    folder = tmp_path / name
    folder.mkdir()
    outputs = MethodOutputs(folder / "mask.tif", folder / "clusters.tif" if clusters else None)
    result = detection.detect(DetectionInputs(*paths, mask_options=masks.MaskOptions(), features=features,
                                              sample_size=20000), [spec], {spec.name: outputs})
    return read(folder / "mask.tif") == 1, result.methods[spec.name].detector


def browned_hillside(tmp_path):
    """A drought browned every slope (NDVI -0.25, brighter, more bare soil); two scars lost far more."""
    from test_clustering import DEBRIS_REFL, FOREST_REFL

    dry = np.array((0.07, 0.095, 0.12, 0.24, 0.33), np.float32)    # dry litter and grass
    forest = np.array(FOREST_REFL, np.float32)
    pre, post = uniform(forest), uniform(0.5 * forest + 0.5 * dry)
    scars = np.zeros(pre.shape[1:], bool)
    scars[60:70, 40:52] = True
    scars[100:112, 120:130] = True
    post[:, scars] = np.array(DEBRIS_REFL, np.float32)[:, None]
    return write_noisy_pair(tmp_path, pre, post, seed=5, noise=0.02), scars


def dried_grassland(tmp_path, soil):
    """Grass in winter, dry grass over soil in summer, one scar of ``soil`` (fresh soil and rock)."""
    pre = uniform((0.05, 0.085, 0.0775, 0.34, 0.28))                  # grass in winter
    post = uniform((0.085, 0.115, 0.155, 0.25, 0.33))                 # dry grass over soil in summer
    scar = np.zeros(pre.shape[1:], bool)
    scar[70:82, 60:70] = True
    post[:, scar] = np.asarray(soil, np.float32)[:, None]
    return write_noisy_pair(tmp_path, pre, post, seed=8), scar


def test_local_rule_maps_scars_not_a_drought_that_browned_the_whole_hillside(tmp_path):
    """A drought browned every slope (a landslide-like cluster); two scars lost far more than their
    surroundings. Without the local rule the whole hillside is mapped; with it only the scars, and the rule is
    in the method's log."""
    paths, scars = browned_hillside(tmp_path)
    without, _ = map_one_kmeans(tmp_path, paths, "without", 3, CHANGE_FEATURES, local_max_dndvi=None,
                                fallback=True)
    assert without.mean() > 0.9                          # the browned hillside is mapped
    with_rule, detector = map_one_kmeans(tmp_path, paths, "with", 3, CHANGE_FEATURES, local_max_dndvi=-0.1,
                                         fallback=True)
    np.testing.assert_array_equal(with_rule, scars)
    assert "more than 0.1 below the median dNDVI of the land within 800 m" in detector.describe()


def test_gmm_probability_is_zero_where_the_rule_rules_a_pixel_out(tmp_path):
    """The browned hillside is in a landslide cluster, but the local rule rules it out: the mixture's
    probability layer says 0 % there (not the cluster's 100 %), and stays high on the scars the mask maps."""
    from landslide_plugin.core.clustering import SelectionRule

    paths, scars = browned_hillside(tmp_path)
    probabilities = {}
    for local in (None, -0.1):
        spec = MethodSpec("gmm", 3, candidates_below=-0.1,
                          rule=SelectionRule(**CENTRE_RULE, local_max_dndvi=local, fallback=True))
        folder = tmp_path / f"gmm_{local}"
        folder.mkdir()
        detection.detect(DetectionInputs(*paths, mask_options=masks.MaskOptions(), features=CHANGE_FEATURES,
                                         sample_size=20000),
                         [spec], {spec.name: MethodOutputs(folder / "mask.tif", probability=folder / "p.tif")})
        probabilities[local] = read(folder / "p.tif"), read(folder / "mask.tif") == 1
    hillside = ~scars
    without, _ = probabilities[None]
    assert np.median(without[hillside]) > 0.9                  # the cluster says "landslide" on the hillside
    with_rule, mask = probabilities[-0.1]
    np.testing.assert_array_equal(mask, scars)
    assert (with_rule[hillside] == 0).all()
    assert with_rule[scars].min() > 0.5


def test_local_visible_rule_finds_a_scar_in_grassland_that_dried_out(tmp_path):
    """Winter to summer on semi-arid grassland: every slope dried (NDVI -0.39); a scar of fresh soil lost only
    ~0.07 NDVI more than the dry grass around it, but is clearly brighter in the visible. The local NDVI test
    alone misses most of it; with the visible alternative the scar is mapped, and nothing else."""
    paths, scar = dried_grassland(tmp_path, (0.11, 0.15, 0.185, 0.26, 0.32))

    def run(min_dvis):
        mask, detector = map_one_kmeans(tmp_path, paths, f"vis_{min_dvis}", 3, CHANGE_FEATURES,
                                        local_max_dndvi=-0.1, local_min_dvis=min_dvis, fallback=True)
        return mask, detector.describe()

    ndvi_only, _ = run(None)
    assert ndvi_only[scar].mean() < 0.5 and not ndvi_only[~scar].any()
    with_visible, log = run(0.02)
    np.testing.assert_array_equal(with_visible, scar)
    assert "visible reflectance change is more than 0.02 above the median" in log


@pytest.mark.parametrize("block_rows", [256, 64])
def test_core_fraction_rule_drops_the_blurred_fringe_around_a_scar(tmp_path, monkeypatch, block_rows):
    """The sensor's blur spreads a scar's loss a pixel beyond its outline (there ~a quarter of the core's loss,
    still more than 0.15 NDVI): without the rule that fringe is mapped, with it exactly the scar, also when
    the scar straddles two blocks of the detection pass."""
    from scipy import ndimage
    from test_clustering import DEBRIS_REFL, FOREST_REFL

    monkeypatch.setattr(detection, "BLOCK_ROWS", block_rows)
    pre = uniform(FOREST_REFL)
    post = pre.copy()
    scar = np.zeros(pre.shape[1:], bool)
    scar[58:72, 50:64] = True
    post[:, scar] = np.array(DEBRIS_REFL, np.float32)[:, None]
    post = np.stack([ndimage.gaussian_filter(band, 0.8) for band in post])   # the point-spread function
    paths = write_noisy_pair(tmp_path, pre, post, seed=4)

    def run(fraction):
        mask, detector = map_one_kmeans(tmp_path, paths, f"core_{fraction}", 2, ("dNDVI", "dBSI"),
                                        local_max_dndvi=-0.1, min_core_fraction=fraction, fallback=True)
        return mask, detector.describe()

    without, _ = run(None)
    assert without[scar].all() and (without & ~scar).sum() > 40   # the scar and a ring of fringe pixels
    with_rule, log = run(0.5)
    np.testing.assert_array_equal(with_rule, scar)
    assert "at least 0.5 of the strongest loss within 2 px" in log


def scar_with_mixed_columns(ground, left: float, right: float):
    """(pre, post, scar): ``ground`` on both dates, a 14 x 14 px debris scar after, and beside it a column the scar
    covers by ``left`` on its left and one covered by ``right`` on its right (linear mixing of the reflectance)."""
    from test_clustering import DEBRIS_REFL

    debris, ground = np.array(DEBRIS_REFL, np.float32), np.asarray(ground, np.float32)
    pre = uniform(ground)
    post = pre.copy()
    scar = np.zeros(pre.shape[1:], bool)
    scar[58:72, 50:64] = True
    post[:, scar] = debris[:, None]
    post[:, 58:72, 49] = (left * debris + (1 - left) * ground)[:, None]
    post[:, 58:72, 64] = (right * debris + (1 - right) * ground)[:, None]
    return pre, post, scar


@pytest.mark.parametrize("block_rows", [256, 64])
def test_scar_cover_rule_keeps_pixels_at_least_half_covered(tmp_path, monkeypatch, block_rows):
    """A scar with a column of mixed pixels on each side: 60 % covered on the left (a landslide pixel by the
    map's own definition), 40 % on the right (not), both losing more than 0.15 NDVI. Without the rule both are
    mapped; the scar-cover rule, unmixing the reflectance, keeps the left column and drops the right one, also
    when the scar straddles two blocks."""
    from test_clustering import FOREST_REFL

    monkeypatch.setattr(detection, "BLOCK_ROWS", block_rows)
    pre, post, scar = scar_with_mixed_columns(FOREST_REFL, 0.6, 0.4)
    paths = write_noisy_pair(tmp_path, pre, post, seed=5, noise=0.003)
    expected = scar.copy()
    expected[58:72, 49] = True

    def run(cover):
        mask, detector = map_one_kmeans(tmp_path, paths, f"cover_{cover}", 2, ("dNDVI", "dBSI"),
                                        min_scar_cover=cover, fallback=True)
        return mask, detector.describe()

    without, _ = run(None)
    np.testing.assert_array_equal(without[58:72, 49:65], True)     # the scar and both mixed columns
    with_rule, log = run(0.5)
    np.testing.assert_array_equal(with_rule, expected)
    assert "only those at least 0.5 covered by the scar next to them (linear unmixing" in log


def test_scar_cover_drops_the_hazy_fringe_of_a_cloud_the_scl_masks(tmp_path):
    """A cloud on the post date (SCL 9, masked) with a ring of pixels 40 % covered by it: brighter, barer and
    greener-less like a scar. The ring's strongest change nearby is the cloud's own, so by unmixing the ring is
    0.4 of it and not mapped; the scar away from the cloud is."""
    from test_clustering import DEBRIS_REFL, FOREST_REFL, write_uint8

    pre = uniform(FOREST_REFL)
    post = pre.copy()
    cloud_refl = np.array((0.45, 0.45, 0.46, 0.50, 0.40), np.float32)
    forest = np.array(FOREST_REFL, np.float32)
    scar = np.zeros(pre.shape[1:], bool)
    scar[100:112, 30:44] = True
    post[:, scar] = np.array(DEBRIS_REFL, np.float32)[:, None]
    cloud = np.zeros(pre.shape[1:], bool)
    cloud[40:60, 90:110] = True
    ring = np.zeros(pre.shape[1:], bool)
    ring[39:61, 89:111] = True
    ring &= ~cloud
    post[:, cloud] = cloud_refl[:, None]
    post[:, ring] = (0.4 * cloud_refl + 0.6 * forest)[:, None]
    paths = write_noisy_pair(tmp_path, pre, post, seed=6, noise=0.003)
    scl_pre = np.full(pre.shape[1:], 4, np.uint8)
    scl_post = np.where(cloud, 9, 4).astype(np.uint8)
    scl = (write_uint8(tmp_path / "scl_pre.tif", scl_pre), write_uint8(tmp_path / "scl_post.tif", scl_post))
    from landslide_plugin.core.clustering import SelectionRule

    maps = {}
    for cover in (None, 0.5):
        spec = MethodSpec("kmeans", 3, candidates_below=-0.1,
                          rule=SelectionRule(**CENTRE_RULE, min_scar_cover=cover, fallback=True))
        folder = tmp_path / f"cloud_{cover}"
        folder.mkdir()
        detection.detect(DetectionInputs(*paths, *scl, mask_options=masks.MaskOptions(), features=CHANGE_FEATURES,
                                         sample_size=20000), [spec], outputs_in(folder, [spec]))
        maps[cover] = read(folder / "mask_kmeans3.tif") == 1
    assert maps[None][ring].all() and maps[None][scar].all()      # without the rule the fringe is a "scar"
    np.testing.assert_array_equal(maps[0.5], scar)


def test_local_scar_path_finds_a_scar_in_land_that_greened_up(tmp_path):
    """Winter to summer: the whole hillside greened (NDVI +0.4), a scar's ground went from sparse winter cover to
    fresh soil, losing only 0.08 NDVI - too little for any absolute rule (nothing lost 0.1: nothing to cluster)
    but 0.48 against everything around it, with bare soil and brightness gained. The local scar path maps it,
    and only it."""
    pre = uniform((0.06, 0.08, 0.09, 0.21, 0.22))       # NDVI 0.40
    post = uniform((0.03, 0.065, 0.04, 0.36, 0.19))     # NDVI 0.80
    scar = np.zeros(pre.shape[1:], bool)
    scar[40:52, 90:100] = True
    post[:, scar] = np.array((0.10, 0.13, 0.13, 0.25, 0.30), np.float32)[:, None]   # soil, NDVI 0.32
    paths = write_noisy_pair(tmp_path, pre, post, seed=9)

    def run(local_scar):
        mask, detector = map_one_kmeans(tmp_path, paths, f"scar_{local_scar}", 5, CHANGE_FEATURES,
                                        local_max_dndvi=-0.1, local_scar_dndvi=local_scar, fallback=True)
        return mask, detector.describe()

    without, _ = run(None)
    assert not without.any()
    found, log = run(-0.2)
    np.testing.assert_array_equal(found, scar)
    assert "median of the land within 800 m is dNDVI < -0.2, dBSI > 0.05 and dVIS > 0.02" in log


def test_clustering_on_the_change_beyond_the_surroundings_separates_scars_from_a_regional_browning(tmp_path):
    """The browned hillside of the local-rule test, clustered on the change minus the median of the surroundings
    (dNDVI_local, ...) with no local pixel rule: the regional browning is no change at all in those features, the
    scars stand out, so the clusters alone map the scars; the cluster table shows the local centres."""
    paths, scars = browned_hillside(tmp_path)
    raw, _ = map_one_kmeans(tmp_path, paths, "raw", 3, CHANGE_FEATURES, clusters=True)
    assert raw.mean() > 0.9                                        # raw change: the whole hillside
    local, detector = map_one_kmeans(tmp_path, paths, "local", 3, LOCAL_FEATURES, clusters=True)
    np.testing.assert_array_equal(local, scars)
    assert detector.model.feature_names[0] == "dNDVI_local" and "dNDVI_local" in detector.describe()
    chosen = detector.model.centres[list(detector.model.landslide_clusters)]
    assert (chosen[:, 0] < -0.3).all()                             # the scar cluster lost 0.3+ beyond the median


def test_local_features_with_the_visible_alternative_at_the_centre_find_a_scar_in_dried_grass(tmp_path):
    """The dried-grassland scene: clustered on the change beyond the surroundings, the scar's centre lost only
    ~0.07 NDVI more than the dry grass, too little for the centre rule's -0.15; with ``centre_local_vis`` its
    brightening and bare-soil gain beyond the surroundings make it a landslide cluster, and the rule says so."""
    paths, scar = dried_grassland(tmp_path, (0.11, 0.15, 0.185, 0.26, 0.38))   # bright in SWIR-1

    def run(centre_vis):
        mask, detector = map_one_kmeans(tmp_path, paths, f"centre_{centre_vis}", 3, LOCAL_FEATURES,
                                        local_max_dndvi=-0.1, local_min_dvis=0.02, centre_local_vis=centre_vis)
        return mask, detector.describe()

    without, _ = run(False)
    assert not without.any()
    found, log = run(True)
    np.testing.assert_array_equal(found, scar)
    assert "brighter and barer than the median" in log


# -- features per method ------------------------------------------------------------------------------------------
def test_two_methods_on_their_own_features_in_one_run_map_what_each_maps_alone(tmp_path):
    """The browned hillside: in one run (one read, one sample) K-means 3 on the raw change maps the whole browned
    hillside and GMM 3 on the change beyond the surroundings only the scars - each exactly the map it makes run
    alone with its features - and each map's tags and log say which features made it."""
    from landslide_plugin.core.clustering import SelectionRule

    paths, scars = browned_hillside(tmp_path)
    rule = SelectionRule(max_dndvi=-0.15, min_dbsi=0.05, min_dvis=0.02)   # no pixel test: the clusters decide
    raw = MethodSpec("kmeans", 3, candidates_below=-0.1, rule=rule)                 # the run's features
    local = MethodSpec("gmm", 3, candidates_below=-0.1, rule=rule, features=LOCAL_FEATURES)
    inputs = DetectionInputs(*paths, mask_options=masks.MaskOptions(), features=CHANGE_FEATURES, sample_size=20000)
    together = tmp_path / "together"
    together.mkdir()
    result = detection.detect(inputs, [raw, local], outputs_in(together, [raw, local]))
    assert result.reads == 2
    for spec, features in ((raw, CHANGE_FEATURES), (local, LOCAL_FEATURES)):
        alone = tmp_path / f"alone_{spec.name}"
        alone.mkdir()
        detection.detect(DetectionInputs(*paths, mask_options=masks.MaskOptions(), features=features,
                                         sample_size=20000),
                         [MethodSpec(spec.kind, 3, candidates_below=-0.1, rule=rule)], outputs_in(alone, [spec]))
        for kind in ("mask", "clusters", "probability"):
            path = getattr(outputs_in(together, [spec])[spec.name], kind)
            if path is not None:
                np.testing.assert_array_equal(read(path), read(alone / path.name), err_msg=f"{spec.name} {kind}")
        with rasterio.open(together / f"mask_{spec.name}.tif") as src:
            assert src.tags()["FEATURES"] == ",".join(features)
        assert f"on {', '.join(features)}" in result.methods[spec.name].detector.describe()
    assert (read(together / "mask_kmeans3.tif") == 1).mean() > 0.9             # raw change: the whole hillside
    np.testing.assert_array_equal(read(together / "mask_gmm3.tif") == 1, scars)  # beyond the surroundings: scars
    assert "the change minus the median of the land within 800 m" in result.methods["gmm3"].detector.describe()
    # its cluster table shows the centres' change beyond the surroundings under that name only, not as dNDVI
    header = result.methods["gmm3"].detector.model.selection.format().splitlines()[0].split()
    assert "dNDVI_local" in header and "dNDVI" not in header


def test_either_clustering_maps_the_pixels_any_clustering_maps(tmp_path):
    """'either': the union of the clusterings' final masks (no data where they have none), stated in its log line
    and tags; without a clustering in the run it is refused before anything is read."""
    from landslide_plugin.core.clustering import SelectionRule

    paths, scars = browned_hillside(tmp_path)
    rule = SelectionRule(max_dndvi=-0.15, min_dbsi=0.05, min_dvis=0.02)   # no pixel test: the clusters decide
    methods = [MethodSpec("threshold"), MethodSpec("kmeans", 3, candidates_below=-0.1, rule=rule),
               MethodSpec("gmm", 3, candidates_below=-0.1, rule=rule, features=LOCAL_FEATURES), MethodSpec("either")]
    inputs = DetectionInputs(*paths, mask_options=masks.MaskOptions(), features=CHANGE_FEATURES, sample_size=20000)
    result = detection.detect(inputs, methods, outputs_in(tmp_path, methods))
    kmeans, gmm, either = (read(tmp_path / f"mask_{n}.tif") for n in ("kmeans3", "gmm3", "either"))
    np.testing.assert_array_equal(either == 1, (kmeans == 1) | (gmm == 1))
    np.testing.assert_array_equal(either == 255, kmeans == 255)
    assert (either == 1).sum() > (gmm == 1).sum() == scars.sum()  # the hillside K-means maps, and the scars
    assert result.methods["either"].landslide == int((either == 1).sum())
    assert "any of K-means 3 or GMM 3 maps it" in result.methods["either"].detector.describe()
    with rasterio.open(tmp_path / "mask_either.tif") as src:
        assert src.tags()["COMBINED"] == "K-means 3,GMM 3" and src.colormap(1)[1][:3] == (227, 26, 28)
    alone = [MethodSpec("threshold"), MethodSpec("either")]
    with pytest.raises(ValueError, match="^Either clustering combines the run's clusterings, but none is run"):
        detection.detect(DetectionInputs(tmp_path / "missing_pre.tif", tmp_path / "missing_post.tif"), alone,
                         outputs_in(tmp_path / "none", alone))


def test_several_starts_of_a_mixture_map_what_any_start_maps(tmp_path):
    """A hillside where every share of debris cover up to 30 % occurs (a continuum, no natural clusters): each
    seed's mixture cuts it differently. GMM from three seeds: the mask is the union of the three single-seed
    masks, the probability their highest, and the log and tags say so. A clustering only; the threshold refuses
    starts."""
    from test_clustering import DEBRIS_REFL, FOREST_REFL

    from landslide_plugin.core.clustering import SelectionRule

    pre = uniform(FOREST_REFL)
    cover = np.random.default_rng(2).uniform(0, 0.3, pre.shape[1:]).astype(np.float32)
    post = (cover * np.array(DEBRIS_REFL, np.float32)[:, None, None]
            + (1 - cover) * np.array(FOREST_REFL, np.float32)[:, None, None])
    paths = write_noisy_pair(tmp_path, pre, post, seed=3)
    rule = SelectionRule(max_dndvi=-0.15, min_dbsi=0.05, min_dvis=0.02)   # no pixel test: the clusters decide
    singles = [MethodSpec("gmm", 5, seed=seed, candidates_below=-0.1, rule=rule) for seed in (3, 4, 5)]
    several = MethodSpec("gmm", 5, seed=3, candidates_below=-0.1, rule=rule, starts=3)
    inputs = DetectionInputs(*paths, mask_options=masks.MaskOptions(), features=CHANGE_FEATURES, sample_size=5000)
    maps = []
    for n, spec in enumerate([*singles, several]):
        folder = tmp_path / f"starts_{n}"
        folder.mkdir()
        result = detection.detect(inputs, [spec], outputs_in(folder, [spec]))
        maps.append((read(folder / "mask_gmm5.tif"), read(folder / "probability_gmm5.tif")))
    masks_alone = [m == 1 for m, _ in maps[:3]]
    assert any((a != masks_alone[0]).any() for a in masks_alone[1:])     # the seeds really map differently
    mask, probability = maps[3]
    np.testing.assert_array_equal(mask == 1, masks_alone[0] | masks_alone[1] | masks_alone[2])
    np.testing.assert_allclose(probability, np.fmax(np.fmax(maps[0][1], maps[1][1]), maps[2][1]), atol=1e-6)
    detector = result.methods["gmm5"].detector
    assert "start 3 of 3 (seed 5; a pixel is a landslide where any start's landslide clusters hold it)" in (
        detector.describe())
    assert detector.tags()["STARTS"] == "3"
    with pytest.raises(ValueError, match="starts must be 1"):
        MethodSpec("threshold", starts=2)


def test_a_wrong_feature_of_one_method_fails_before_anything_is_read(tmp_path):
    """One method's misspelt feature stops the run before the pair is opened (the paths do not even exist), in one
    sentence that names the method and the feature; a threshold takes no features at all."""
    methods = [MethodSpec("kmeans", 3), MethodSpec("gmm", 3, features=("dNDVI_lokal", "dBSI_local"))]
    with pytest.raises(ValueError) as error:
        detection.detect(DetectionInputs(tmp_path / "missing_pre.tif", tmp_path / "missing_post.tif"), methods,
                         outputs_in(tmp_path, methods))
    message = str(error.value)
    assert message.startswith("GMM 3: unknown feature dNDVI_lokal; choose among NDVI_pre,") and "\n" not in message
    assert list(tmp_path.iterdir()) == []
    wrong_rule = [MethodSpec("gmm", 3, features=("NDVI_pre", "dVIS"))]
    with pytest.raises(ValueError, match="^GMM 3: features NDVI_pre, dVIS do not tell vegetation loss"):
        detection.detect(DetectionInputs(tmp_path / "missing_pre.tif", tmp_path / "missing_post.tif"), wrong_rule,
                         outputs_in(tmp_path, wrong_rule))
    with pytest.raises(ValueError, match="dNDVI threshold is not fitted on features"):
        MethodSpec("threshold", features=("dNDVI",))


def test_magnitude_at_the_core_keeps_the_half_covered_edge_of_a_scar_in_sparse_shrub(tmp_path):
    """Sparse shrub loses only ~0.17 NDVI where a scar covers it wholly, so a column 70 % covered loses ~0.13:
    less than the rule's 0.15, though the scar is well over it and covers most of the pixel. Tested on the pixel's
    own loss that column is dropped; tested on the scar's (the strongest loss within 2 px) it is mapped, and the
    column 30 % covered on the other side is still left out by the core fraction and the scar cover."""
    from test_clustering import DEBRIS_REFL

    from landslide_plugin.core import indices
    from landslide_plugin.core.clustering import SelectionRule

    shrub = np.array((0.05, 0.08, 0.11, 0.21, 0.26), np.float32)
    debris = np.array(DEBRIS_REFL, np.float32)
    pre, post, scar = scar_with_mixed_columns(shrub, 0.7, 0.3)
    paths = write_noisy_pair(tmp_path, pre, post, seed=7, noise=0.003)
    ndvi = indices.ndvi
    assert -0.2 < ndvi(debris[2], debris[3]) - ndvi(shrub[2], shrub[3]) < -0.15      # the scar: a small loss
    edge = 0.7 * debris + 0.3 * shrub
    assert -0.15 < ndvi(edge[2], edge[3]) - ndvi(shrub[2], shrub[3]) < -0.1          # its edge: below the rule

    def run(at_core):
        rule = SelectionRule(max_dndvi=-0.1, min_dbsi=0.02, pixel_max_dndvi=-0.15, min_core_fraction=0.6,
                             min_scar_cover=0.5, magnitude_at_core=at_core, fallback=True)
        spec = MethodSpec("kmeans", 2, candidates_below=-0.1, rule=rule)
        folder = tmp_path / f"at_core_{at_core}"
        folder.mkdir()
        result = detection.detect(DetectionInputs(*paths, mask_options=masks.MaskOptions(), features=("dNDVI", "dBSI"),
                                                  sample_size=20000), [spec], outputs_in(folder, [spec]))
        return read(folder / "mask_kmeans2.tif") == 1, result.methods[spec.name].detector.describe()

    own, _ = run(False)
    np.testing.assert_array_equal(own, scar)
    at_core, log = run(True)
    expected = scar.copy()
    expected[58:72, 49] = True
    np.testing.assert_array_equal(at_core, expected)
    assert "pixels within 2 px of a loss to dNDVI < -0.15 (the scar's change" in log


def test_snow_path_maps_a_scar_the_pre_image_saw_under_thin_snow_not_a_rock_outcrop(tmp_path):
    """Winter to summer: a third of the ground under snow the SCL missed before, green meadow after. A scar is
    debris after; a rock outcrop is rock on both dates. Neither lost NDVI (snow hid the ground), so the change tests
    cannot see the scar. The snow path maps it (bare in land green after); the rock shows no vegetation through
    the snow before and is left out - unless the snow path and the vegetated-before rule's snow exception let
    anything in, which is why they ask for some NDVI."""
    from test_clustering import DEBRIS_REFL

    from landslide_plugin.core.clustering import SelectionRule

    snow = np.array((0.95, 0.93, 0.90, 0.80, 0.10), np.float32)
    grass = np.array((0.05, 0.085, 0.0775, 0.34, 0.28), np.float32)     # winter grass
    meadow = np.array((0.03, 0.075, 0.035, 0.44, 0.23), np.float32)     # summer meadow
    rock = np.array((0.13, 0.16, 0.185, 0.245, 0.30), np.float32)
    pre, post = uniform(0.35 * snow + 0.65 * grass), uniform(meadow)
    scar, outcrop = np.zeros(pre.shape[1:], bool), np.zeros(pre.shape[1:], bool)
    scar[60:72, 40:50] = True
    outcrop[100:112, 110:122] = True
    post[:, scar] = np.array(DEBRIS_REFL, np.float32)[:, None]
    pre[:, outcrop] = (0.35 * snow + 0.65 * rock)[:, None]
    post[:, outcrop] = rock[:, None]
    paths = write_noisy_pair(tmp_path, pre, post, seed=9, noise=0.005)

    def run(name, snow_path, snow_min_ndvi=0.05):
        rule = SelectionRule(**CENTRE_RULE, snow_scar_ndvi=-0.25 if snow_path else None,
                             snow_min_ndvi_pre=snow_min_ndvi, fallback=True)
        spec = MethodSpec("kmeans", 2, candidates_below=-0.1, rule=rule)
        options = masks.MaskOptions(min_ndvi_pre=0.3, snow_ndsi_pre=0.0, snow_min_ndvi_pre=snow_min_ndvi)
        folder = tmp_path / name
        folder.mkdir()
        result = detection.detect(DetectionInputs(*paths, mask_options=options, features=CHANGE_FEATURES,
                                                  sample_size=20000), [spec], outputs_in(folder, [spec]))
        run.result = result
        return read(folder / "mask_kmeans2.tif") == 1, result.methods[spec.name].detector.describe()

    without, _ = run("without", False)
    assert not without.any() and run.result.snowy == (0, 0)     # counted only with a snow path
    mapped, log = run("with", True)
    assert run.result.snowy == (run.result.analysed_pixels, 0)  # all snowy before (the outcrop is ruled out)
    assert run.result.analysed_pixels == pre.shape[1] * pre.shape[2] - outcrop.sum()
    np.testing.assert_array_equal(mapped, scar)
    assert "only the snow path of the rule maps here" in log and "under snow before (NDSI before > 0, NDVI" in log
    anything_under_snow, _ = run("no_gate", True, snow_min_ndvi=-1.0)
    np.testing.assert_array_equal(anything_under_snow, scar | outcrop)
