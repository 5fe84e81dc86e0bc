"""Clustering: fitting, the landslide-cluster rule, block prediction, sampling, and cluster_change on rasters."""
from __future__ import annotations

import numpy as np
import pytest

from landslide_plugin.core import clustering, detection
from landslide_plugin.core.clustering import (
    NOT_LANDSLIDE_WARNING,
    ReservoirSample,
    fit_clusters,
    select_landslide_cluster,
)

FEATURES = ("NDVI_pre", "BSI_pre", "NDVI_post", "BSI_post", "dNDVI", "dBSI")

# (NDVI_pre, BSI_pre, NDVI_post, BSI_post) of three surface types
STABLE_FOREST = (0.75, -0.30, 0.72, -0.28)
BARE_FIELD = (0.20, 0.10, 0.22, 0.08)
LANDSLIDE = (0.70, -0.25, 0.12, 0.22)


def hand_built(n_forest=4000, n_field=2500, n_slide=400, noise=0.03, seed=0):
    """Samples of three surface types, the landslide group last; returns (samples, truth)."""
    rng = np.random.default_rng(seed)
    groups = []
    for centre, n in ((STABLE_FOREST, n_forest), (BARE_FIELD, n_field), (LANDSLIDE, n_slide)):
        base = np.asarray(centre) + rng.normal(0, noise, (n, 4))
        groups.append(np.column_stack([base, base[:, 2] - base[:, 0], base[:, 3] - base[:, 1]]))
    truth = np.repeat([0, 0, 1], [n_forest, n_field, n_slide]).astype(bool)
    return np.concatenate(groups).astype(np.float32), truth


def as_features(samples, names=FEATURES, shape=None):
    return {n: (samples[:, i].reshape(shape) if shape else samples[:, i]) for i, n in enumerate(names)}


# -- selection rule ---------------------------------------------------------------------------
def test_rule_picks_vegetation_loss_with_bare_soil_gain():
    centres = np.array([STABLE_FOREST, LANDSLIDE, BARE_FIELD], dtype=float)
    index, table = select_landslide_cluster(centres, FEATURES[:4])
    assert index == 1
    assert table.plausible and table.warning is None
    assert table.dndvi[1] == pytest.approx(0.12 - 0.70)
    assert table.dbsi[1] == pytest.approx(0.22 + 0.25)
    assert table.eligible.tolist() == [True, True, False]  # a slight drop is eligible; the score decides
    rows = table.rows()
    assert [r["landslide"] for r in rows] == [False, True, False]
    assert "dNDVI" in table.format() and "rule:" in table.format()


def test_rule_is_independent_of_cluster_order():
    rng = np.random.default_rng(3)
    centres = rng.normal(0, 0.3, (6, 6))
    centres[:, 4] = centres[:, 2] - centres[:, 0]
    centres[:, 5] = centres[:, 3] - centres[:, 1]
    index, table = select_landslide_cluster(centres, FEATURES)
    for _ in range(10):
        order = rng.permutation(6)
        permuted_index, permuted = select_landslide_cluster(centres[order], FEATURES)
        assert order[permuted_index] == index
        assert permuted.score == pytest.approx(table.score[order])


def test_rule_prefers_differences_when_given_and_needs_ndvi_and_bsi():
    centres = np.array([[0.0, 0.0], [-0.5, 0.3], [-0.6, -0.1]])  # the largest NDVI drop lost no bare soil
    index, table = select_landslide_cluster(centres, ("dNDVI", "dBSI"))
    assert index == 1
    assert not table.eligible[2]
    with pytest.raises(ValueError, match="dNDVI and dBSI"):
        select_landslide_cluster(centres, ("NDVI_pre", "NDVI_post"))


def test_rule_warns_when_no_cluster_lost_vegetation_and_gained_bare_soil():
    centres = np.array([[0.1, -0.1], [0.0, 0.0], [-0.3, -0.2]])   # greening, stable, darkening
    index, table = select_landslide_cluster(centres, ("dNDVI", "dBSI"))
    assert not table.plausible
    assert table.warning == NOT_LANDSLIDE_WARNING
    assert "probably not landslides" in table.format()
    assert index == int(np.argmax(table.score))


# -- fitting and prediction ---------------------------------------------------------------------
@pytest.mark.parametrize("method", ["kmeans", "gmm"])
def test_obvious_landslide_cluster_is_found(method):
    samples, truth = hand_built()
    model = fit_clusters(samples, FEATURES, method=method, n_clusters=3, seed=0)
    labels = model.predict(as_features(samples))
    found = labels == model.landslide_cluster
    tp = int((found & truth).sum())
    assert tp / truth.sum() > 0.97 and tp / found.sum() > 0.97
    # centres are in feature units: the landslide centre is near the landslide surface
    assert model.centres[model.landslide_cluster, :4] == pytest.approx(LANDSLIDE, abs=0.02)
    assert model.selection.plausible
    assert model.sample_size == samples.shape[0]
    prob = model.probability(as_features(samples))
    if method == "gmm":
        assert prob.dtype == np.float32
        assert float(prob[truth].mean()) > 0.95 and float(prob[~truth].mean()) < 0.05
    else:
        assert prob is None
    assert "landslide cluster" in model.summary()


@pytest.mark.parametrize("method", ["kmeans", "gmm"])
def test_prediction_by_blocks_equals_prediction_on_the_whole_array(method):
    samples, _ = hand_built(n_forest=1800, n_field=1200, n_slide=72, seed=4)
    samples[5, 2] = np.nan                     # a no-data pixel
    rng = np.random.default_rng(5)
    samples = samples[rng.permutation(samples.shape[0])]
    model = fit_clusters(samples, FEATURES, method=method, n_clusters=3, seed=1)
    whole = as_features(samples, shape=(48, 64))
    labels = model.predict(whole)
    assert labels.shape == (48, 64) and labels.dtype == np.uint8
    assert int((labels == 255).sum()) == 1
    blocks = [model.predict({k: v[r:r + 7] for k, v in whole.items()}) for r in range(0, 48, 7)]
    assert np.array_equal(np.concatenate(blocks), labels)
    if method == "gmm":
        prob = model.probability(whole)
        prob_blocks = [model.probability({k: v[r:r + 7] for k, v in whole.items()}) for r in range(0, 48, 7)]
        assert np.array_equal(np.concatenate(prob_blocks), prob, equal_nan=True)


@pytest.mark.parametrize("method", ["kmeans", "gmm"])
def test_same_seed_same_model(method):
    samples, _ = hand_built(seed=2, noise=0.08)
    a = fit_clusters(samples, FEATURES, method=method, n_clusters=4, seed=7)
    b = fit_clusters(samples, FEATURES, method=method, n_clusters=4, seed=7)
    assert np.array_equal(a.centres, b.centres)
    assert a.landslide_cluster == b.landslide_cluster


def test_constant_and_degenerate_samples_give_clear_errors():
    constant = np.tile(np.array([[0.5, 0.1, 0.5, 0.1, 0.0, 0.0]]), (1000, 1))
    with pytest.raises(ValueError, match="features are constant"):
        fit_clusters(constant, FEATURES)
    two_values = np.repeat(np.array([[0.5, 0.1, 0.5, 0.1, 0.0, 0.0], [0.5, 0.1, 0.1, 0.3, -0.4, 0.2]]), 50, axis=0)
    with pytest.raises(ValueError, match="only 2 distinct"):
        fit_clusters(two_values, FEATURES, n_clusters=3)
    with pytest.raises(ValueError, match="only 12 valid pixels: too few to form 3 clusters"):
        fit_clusters(hand_built()[0][:12], FEATURES, n_clusters=3)
    with pytest.raises(ValueError, match="no valid pixels"):
        fit_clusters(np.full((10, 6), np.nan), FEATURES)
    with pytest.raises(ValueError, match="method 'dbscan' unknown"):
        fit_clusters(constant, FEATURES, method="dbscan")
    with pytest.raises(ValueError, match="between 2 and 254"):
        fit_clusters(constant, FEATURES, n_clusters=1)


# -- reservoir sampling -------------------------------------------------------------------------
def test_reservoir_sample_is_bounded_uniform_and_reproducible():
    def run(seed, block=1000):
        sample = ReservoirSample(500, 1, seed=seed)
        for start in range(0, 20000, block):
            sample.offer(np.arange(start, start + block, dtype=np.float32)[:, None])
        return sample

    a, b, c = run(0), run(0), run(1)
    assert a.rows.shape == (500, 1) and a.seen == 20000
    assert np.array_equal(a.rows, b.rows)
    assert not np.array_equal(a.rows, c.rows)
    assert len(np.unique(a.rows)) == 500                   # without replacement
    # uniform over the whole stream, not biased to the first or last blocks
    assert abs(float(a.rows.mean()) - 9999.5) < 3 * 5774 / np.sqrt(500)
    assert 0.15 < float((a.rows < 5000).mean()) < 0.35
    small = ReservoirSample(500, 1)
    small.offer(np.ones((30, 1)))
    assert small.rows.shape == (30, 1)


def test_methods_constant():
    assert clustering.METHODS == ("kmeans", "gmm")


# -- cluster_change on rasters ------------------------------------------------------------------
BANDS = ("B02", "B03", "B04", "B8A", "B11")
#: reflectance of B02 B03 B04 B8A B11
FOREST_REFL = (0.03, 0.06, 0.03, 0.35, 0.15)
FIELD_REFL = (0.08, 0.10, 0.14, 0.22, 0.30)
DEBRIS_REFL = (0.10, 0.12, 0.16, 0.21, 0.33)
WATER_REFL = (0.05, 0.07, 0.04, 0.02, 0.01)
SIZE = 64


def write_stack(path, cube, nodata=np.nan):
    import rasterio
    from rasterio.transform import from_origin

    with rasterio.open(path, "w", driver="GTiff", width=cube.shape[2], height=cube.shape[1], count=cube.shape[0],
                       dtype="float32", nodata=nodata, crs="EPSG:32637",
                       transform=from_origin(400000.0, 4000000.0, 20.0, 20.0)) as dst:
        dst.write(cube.astype(np.float32))
        for i, band in enumerate(BANDS[:cube.shape[0]]):
            dst.set_band_description(i + 1, band)
    return str(path)


def write_uint8(path, array, nodata=0):
    import rasterio
    from rasterio.transform import from_origin

    with rasterio.open(path, "w", driver="GTiff", width=array.shape[1], height=array.shape[0], count=1,
                       dtype="uint8", nodata=nodata, crs="EPSG:32637",
                       transform=from_origin(400000.0, 4000000.0, 20.0, 20.0)) as dst:
        dst.write(array.astype(np.uint8), 1)
    return str(path)


@pytest.fixture()
def pair(tmp_path):
    """Forest (left) and fields (right); a 10 x 12 landslide in the forest; a lake whose shore dried up;
    a cloud on the post date (SCL 9). Returns paths and the truth."""
    rng = np.random.default_rng(11)
    surface = np.zeros((SIZE, SIZE), np.uint8)        # 0 forest, 1 field, 2 water
    surface[:, 40:] = 1
    surface[4:16, 44:60] = 2
    pre = np.empty((len(BANDS), SIZE, SIZE), np.float32)
    post = np.empty_like(pre)
    for code, spectrum in ((0, FOREST_REFL), (1, FIELD_REFL), (2, WATER_REFL)):
        for b, value in enumerate(spectrum):
            pre[b][surface == code] = value
            post[b][surface == code] = value
    slide = np.zeros((SIZE, SIZE), bool)
    slide[30:40, 10:22] = True
    shore = np.zeros((SIZE, SIZE), bool)
    shore[4:16, 44:50] = True                         # water in January, dry mud in August
    for b, value in enumerate(DEBRIS_REFL):
        post[b][slide | shore] = value
    pre *= rng.normal(1, 0.04, pre.shape).astype(np.float32)
    post *= rng.normal(1, 0.04, post.shape).astype(np.float32)
    pre[:, 60:, :] = np.nan                           # a no-data swath edge
    post[:, 60:, :] = np.nan
    scl_pre = np.where(surface == 2, 6, np.where(surface == 0, 4, 5)).astype(np.uint8)
    scl_post = scl_pre.copy()
    scl_post[shore] = 5
    scl_post[50:56, 2:8] = 9                          # a cloud after the event
    return {
        "pre": write_stack(tmp_path / "pre.tif", pre),
        "post": write_stack(tmp_path / "post.tif", post),
        "scl_pre": write_uint8(tmp_path / "scl_pre.tif", scl_pre),
        "scl_post": write_uint8(tmp_path / "scl_post.tif", scl_post),
        "slide": slide, "shore": shore, "dir": tmp_path,
    }


def read(path):
    import rasterio

    with rasterio.open(path) as src:
        return src.read(1), src.nodata, src.tags()


@pytest.mark.parametrize("method", ["kmeans", "gmm"])
def test_cluster_change_maps_the_landslide_and_respects_masks(pair, method):
    from landslide_plugin.core import masks

    out = pair["dir"]
    result = detection.cluster_change(
        pair["pre"], pair["post"], cluster_path=out / "clusters.tif", mask_path=out / "mask.tif",
        probability_path=out / "prob.tif", method=method, n_clusters=3, mask_options=masks.MaskOptions(),
        scl_pre_path=pair["scl_pre"], scl_post_path=pair["scl_post"], seed=0)
    mask, mask_nodata, tags = read(out / "mask.tif")
    clusters, cluster_nodata, _ = read(out / "clusters.tif")
    assert mask_nodata == 255 and cluster_nodata == 255
    assert mask.dtype == np.uint8 and clusters.dtype == np.uint8
    # the scar is found exactly; the dried shore (water before) is ruled out: 0, not 1
    assert np.array_equal(mask[:60] == 1, pair["slide"][:60])
    assert (mask[pair["shore"]] == 0).all()
    # no data and cloud: 255 in both; water ruled out: 0 in the mask, 255 (not analysed) in the clusters
    assert (mask[60:] == 255).all() and (clusters[60:] == 255).all()
    assert (mask[50:56, 2:8] == 255).all()
    assert (mask[4:16, 50:60] == 0).all() and (clusters[4:16, 50:60] == 255).all()
    assert ((clusters == result.landslide_cluster) == (mask == 1)).all()
    assert result.landslide_pixels == pair["slide"].sum() == int((mask == 1).sum())
    assert result.removed["no_data"] == 4 * SIZE
    assert result.removed["scl"] == 36
    assert result.removed["water"] == 12 * 16
    assert result.analysed_pixels == SIZE * SIZE - 4 * SIZE - 36 - 12 * 16 == sum(result.cluster_counts)
    assert tags["LANDSLIDE_CLUSTER"] == str(result.landslide_cluster) and tags["METHOD"] == method
    assert result.warning is None
    if method == "gmm":
        prob, prob_nodata, _ = read(out / "prob.tif")
        assert prob.dtype == np.float32 and np.isnan(prob_nodata)
        assert float(prob[pair["slide"]].min()) > 0.9
        assert np.isnan(prob[60:]).all() and np.isnan(prob[50:56, 2:8]).all()
        assert (prob[4:16, 44:60] == 0).all()              # ruled out (water): probability 0
        assert result.probability_path == str(out / "prob.tif")
    else:
        assert result.probability_path is None and not (out / "prob.tif").exists()


def test_same_seed_same_rasters_and_blocks_do_not_matter(pair, monkeypatch):
    out = pair["dir"]
    common = dict(method="gmm", n_clusters=4, sample_size=1500, seed=5)
    detection.cluster_change(pair["pre"], pair["post"], cluster_path=out / "a.tif", mask_path=out / "am.tif",
                              probability_path=out / "ap.tif", **common)
    detection.cluster_change(pair["pre"], pair["post"], cluster_path=out / "b.tif", mask_path=out / "bm.tif",
                              probability_path=out / "bp.tif", **common)
    # the same run with 7-row blocks: the bottom-k sample and every prediction are unchanged
    monkeypatch.setattr(clustering, "BLOCK_ROWS", 7)
    detection.cluster_change(pair["pre"], pair["post"], cluster_path=out / "c.tif", mask_path=out / "cm.tif",
                              probability_path=out / "cp.tif", **common)
    for suffix in ("", "m"):
        a = read(out / f"a{suffix}.tif")[0]
        assert np.array_equal(a, read(out / f"b{suffix}.tif")[0])
        assert np.array_equal(a, read(out / f"c{suffix}.tif")[0])
    assert np.array_equal(read(out / "ap.tif")[0], read(out / "cp.tif")[0], equal_nan=True)


def test_all_masked_input_names_the_reasons(pair):
    from landslide_plugin.core import masks

    out = pair["dir"]
    cloudy = write_uint8(out / "cloudy.tif", np.full((SIZE, SIZE), 9))
    with pytest.raises(ValueError, match=r"no valid pixels after masking: .*masked by SCL.*relax the masks"):
        detection.cluster_change(pair["pre"], pair["post"], cluster_path=out / "c.tif", mask_path=out / "m.tif",
                                  mask_options=masks.MaskOptions(), scl_post_path=cloudy)
    assert not (out / "c.tif").exists() and not (out / "m.tif").exists()


def test_constant_images_give_a_clear_error(tmp_path):
    cube = np.ones((len(BANDS), 32, 32), np.float32) * np.array(FOREST_REFL, np.float32)[:, None, None]
    pre = write_stack(tmp_path / "pre.tif", cube)
    post = write_stack(tmp_path / "post.tif", cube)
    with pytest.raises(ValueError, match="features are constant; the images may be identical or empty"):
        detection.cluster_change(pre, post, cluster_path=tmp_path / "c.tif", mask_path=tmp_path / "m.tif")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["post.tif", "pre.tif"]


def test_cancelled_run_leaves_no_output_and_keeps_a_previous_one(pair):
    from landslide_plugin.core.rasters import Cancelled

    out = pair["dir"]
    detection.cluster_change(pair["pre"], pair["post"], cluster_path=out / "c.tif", mask_path=out / "m.tif")
    before = read(out / "m.tif")[0]
    calls = []

    def cancel_in_pass_two():
        calls.append(1)
        return len(calls) > 2   # pass 1 has one block here; stop inside pass 2

    with pytest.raises(Cancelled):
        detection.cluster_change(pair["pre"], pair["post"], cluster_path=out / "c.tif", mask_path=out / "m.tif",
                                  method="gmm", probability_path=out / "p.tif", seed=3,
                                  is_cancelled=cancel_in_pass_two)
    assert np.array_equal(read(out / "m.tif")[0], before)
    assert not (out / "p.tif").exists()
    assert not [p for p in out.iterdir() if ".part" in p.name]


def test_inputs_are_checked_before_work(pair):
    out = pair["dir"]
    with pytest.raises(ValueError, match="dNDVI and dBSI"):
        detection.cluster_change(pair["pre"], pair["post"], cluster_path=out / "c.tif", mask_path=out / "m.tif",
                                  features=("NDVI_pre", "NDVI_post"))
    with pytest.raises(ValueError, match="unknown feature"):
        detection.cluster_change(pair["pre"], pair["post"], cluster_path=out / "c.tif", mask_path=out / "m.tif",
                                  features=("NDVI_pre", "foo"))
    with pytest.raises(FileNotFoundError, match="post-event SCL"):
        detection.cluster_change(pair["pre"], pair["post"], cluster_path=out / "c.tif", mask_path=out / "m.tif",
                                  scl_post_path=out / "missing.tif")
    small = write_stack(out / "small.tif", np.ones((len(BANDS), 8, 8), np.float32))
    with pytest.raises(ValueError, match="not on the same grid"):
        detection.cluster_change(pair["pre"], small, cluster_path=out / "c.tif", mask_path=out / "m.tif")
    assert not (out / "c.tif").exists()


# -- the example scene with ground truth ---------------------------------------------------------
def _undo_shift(src_path, dst_path, shift, resampling, nodata):
    """Move the post image's content by -shift (the example's known mis-registration) onto its own grid.

    Done here with rasterio so this test does not depend on the co-registration module: the content at
    post pixel (col, row) belongs to pre pixel (col - dx, row - dy), i.e. the post grid shifted by -shift.
    """
    import rasterio
    from affine import Affine
    from rasterio.warp import reproject

    from landslide_plugin.core import rasters

    dx, dy = shift
    with rasterio.open(src_path) as src:
        profile, descriptions, tags = src.profile, src.descriptions, src.tags()
        if isinstance(nodata, float) and np.isnan(nodata):  # a stack: its reflectance, written as float32
            data = rasters.read_reflectance(src, src.indexes)
            profile.update(rasters.GTIFF_OPTIONS, dtype="float32", nodata=np.nan)
            profile.pop("zstd_level", None)
        else:
            data = src.read()
        aligned = np.full_like(data, nodata)
        for b in range(src.count):
            reproject(data[b], aligned[b], src_transform=src.transform * Affine.translation(-dx, -dy),
                      src_crs=src.crs, src_nodata=nodata, dst_transform=src.transform, dst_crs=src.crs,
                      dst_nodata=nodata, resampling=resampling)
    with rasterio.open(dst_path, "w", **profile) as dst:
        dst.write(aligned)
        dst.update_tags(**tags)
        for i, d in enumerate(descriptions):
            if d:
                dst.set_band_description(i + 1, d)
    return str(dst_path)


def _scores(mask_path, truth):
    import rasterio

    with rasterio.open(mask_path) as src:
        found = src.read(1) == 1
    tp = int((found & truth).sum())
    fp = int((found & ~truth).sum())
    fn = int((~found & truth).sum())
    return {"f1": 2 * tp / max(2 * tp + fp + fn, 1), "precision": tp / max(tp + fp, 1),
            "recall": tp / max(tp + fn, 1)}


def test_masks_beat_the_reference_study_setup_on_the_example_scene(example_pair, tmp_path):
    """K-means-3 and GMM-3 with the masks (SCL, water, slope from the DEM, vegetated before) against the
    reference study's setup (NDVI and BSI of both dates, no mask) on the example scene's truth."""
    pytest.importorskip("landslide_plugin.core.products")
    import rasterio
    from rasterio.enums import Resampling

    from landslide_plugin.core import masks
    from landslide_plugin.core.products import prepare_l2a

    pre = prepare_l2a(example_pair.pre, tmp_path / "pre.tif", tmp_path / "pre_scl.tif")
    post = prepare_l2a(example_pair.post, tmp_path / "post.tif", tmp_path / "post_scl.tif")
    post_stack = _undo_shift(post.stack_path, tmp_path / "post_aligned.tif", example_pair.shift,
                             Resampling.bilinear, np.nan)
    post_scl = _undo_shift(post.scl_path, tmp_path / "post_aligned_scl.tif", example_pair.shift,
                           Resampling.nearest, 0)
    with rasterio.open(example_pair.truth) as src:
        truth = src.read(1) == 1
    assert truth.any()
    options = masks.MaskOptions(dem_path=str(example_pair.dem), min_slope_deg=15.0,
                                min_ndvi_pre=masks.VEGETATED_NDVI)
    scores = {}
    for method in ("kmeans", "gmm"):
        masked = detection.cluster_change(
            str(pre.stack_path), post_stack, cluster_path=tmp_path / f"c_{method}.tif",
            mask_path=tmp_path / f"m_{method}.tif", method=method, n_clusters=3, mask_options=options,
            scl_pre_path=str(pre.scl_path), scl_post_path=post_scl, seed=0)
        detection.cluster_change(
            str(pre.stack_path), post_stack, cluster_path=tmp_path / f"c0_{method}.tif",
            mask_path=tmp_path / f"m0_{method}.tif", method=method, n_clusters=3,
            features=("NDVI_pre", "BSI_pre", "NDVI_post", "BSI_post"), mask_options=None, seed=0)
        scores[method] = (_scores(tmp_path / f"m_{method}.tif", truth), _scores(tmp_path / f"m0_{method}.tif", truth))
        print(f"{method}-3 with masks: " + ", ".join(f"{k} {v:.3f}" for k, v in scores[method][0].items())
              + " | reference setup: " + ", ".join(f"{k} {v:.3f}" for k, v in scores[method][1].items())
              + f" | removed {masked.removed}")
        assert masked.removed["slope"] > 0 and masked.removed["scl"] > 0
    for method, (with_masks, reference) in scores.items():
        assert with_masks["f1"] > reference["f1"] + 0.2, (method, with_masks, reference)
        assert with_masks["precision"] > 3 * reference["precision"], (method, with_masks, reference)
