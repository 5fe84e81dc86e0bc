"""Landslide-class scores: hand-computed matrices, degenerate cases, raster and polygon references."""
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import rasterio
from rasterio.crs import CRS
from rasterio.transform import from_origin
from rasterio.warp import reproject, transform_geom

from landslide_plugin.core import evaluation, rasters
from landslide_plugin.core.evaluation import Confusion, confusion, evaluate, scores

UTM = CRS.from_epsg(32632)
ORIGIN = (500000.0, 5100000.0)


def write_mask(path, array, *, crs=UTM, transform=None, nodata=255, dtype="uint8", description=None):
    array = np.asarray(array)
    transform = transform or from_origin(*ORIGIN, 20, 20)
    grid = {"crs": crs, "transform": transform, "width": array.shape[1], "height": array.shape[0]}
    with rasterio.open(path, "w", **rasters.geotiff_profile(grid, 1, dtype, nodata)) as dst:
        dst.write(array.astype(dtype), 1)
        if description:
            dst.set_band_description(1, description)
    return str(path)


def blobs(shape, centres, radius):
    rows, cols = np.indices(shape)
    out = np.zeros(shape, dtype=np.uint8)
    for r, c in centres:
        out[(rows - r) ** 2 + (cols - c) ** 2 <= radius**2] = 1
    return out


# -- scores ---------------------------------------------------------------------------------------


def test_reference_study_kmeans2_row():
    # 105,000-pixel crop, K-means k=2: everything flagged, 0.3 % scars -> precision under 1 %.
    conf = Confusion(tp=363, fp=43437, fn=0, tn=105000 - 363 - 43437)
    s = scores(conf)
    assert s.precision == pytest.approx(0.0083, abs=5e-5)
    assert s.recall == 1.0
    assert s.f1 == pytest.approx(2 * 363 / (2 * 363 + 43437))
    assert s.iou == pytest.approx(363 / (363 + 43437))
    assert s.reference_share == pytest.approx(363 / 105000)
    assert s.prediction_share == pytest.approx(43800 / 105000)
    assert s.mcc < 0.1  # nearly no skill, whatever the accuracy


def test_gmm3_row_high_accuracy_low_f1():
    conf = Confusion(tp=110, fp=373, fn=253, tn=105000 - 110 - 373 - 253)
    s = scores(conf)
    assert s.overall_accuracy > 0.99
    assert s.precision == pytest.approx(0.2277, abs=1e-4)
    assert s.recall == pytest.approx(0.3030, abs=1e-4)
    assert s.f1 < 0.27


def test_small_hand_built_case_against_formulas_and_sklearn():
    from sklearn import metrics

    # tp 3, fp 1, fn 2, tn 4 (n = 10)
    reference = np.array([1, 1, 1, 1, 1, 0, 0, 0, 0, 0], dtype=np.uint8)
    prediction = np.array([1, 1, 1, 0, 0, 1, 0, 0, 0, 0], dtype=np.uint8)
    conf = confusion(reference, prediction)
    assert conf == Confusion(3, 1, 2, 4)
    s = scores(conf)
    po, pe = 7 / 10, (4 * 5 + 6 * 5) / 100
    assert s.kappa == pytest.approx((po - pe) / (1 - pe))
    assert s.mcc == pytest.approx((3 * 4 - 1 * 2) / np.sqrt(4 * 5 * 6 * 5))
    assert s.overall_accuracy == pytest.approx(0.7)
    assert s.precision == pytest.approx(0.75)
    assert s.recall == pytest.approx(0.6)
    assert s.f1 == pytest.approx(2 * 0.75 * 0.6 / 1.35)
    assert s.iou == pytest.approx(0.5)
    assert s.kappa == pytest.approx(metrics.cohen_kappa_score(reference, prediction))
    assert s.mcc == pytest.approx(metrics.matthews_corrcoef(reference, prediction))


def test_random_masks_match_sklearn_and_exclude_nodata():
    from sklearn import metrics

    rng = np.random.default_rng(1)
    reference = (rng.random((50, 60)) < 0.1).astype(np.uint8)
    prediction = (rng.random((50, 60)) < 0.2).astype(np.uint8)
    prediction[:5] = 255
    valid = np.ones_like(reference, dtype=bool)
    valid[:, :3] = False
    conf = confusion(reference, prediction, valid=valid)
    keep = (prediction != 255) & valid
    r, p = reference[keep], prediction[keep]
    (tn, fp), (fn, tp) = metrics.confusion_matrix(r, p, labels=[0, 1])
    assert conf == Confusion(tp, fp, fn, tn)
    assert conf.total == 45 * 57
    s = scores(conf)
    assert s.precision == pytest.approx(metrics.precision_score(r, p))
    assert s.recall == pytest.approx(metrics.recall_score(r, p))
    assert s.f1 == pytest.approx(metrics.f1_score(r, p))
    assert s.iou == pytest.approx(metrics.jaccard_score(r, p))
    assert s.kappa == pytest.approx(metrics.cohen_kappa_score(r, p))
    assert s.mcc == pytest.approx(metrics.matthews_corrcoef(r, p))
    assert conf.matrix().tolist() == [[tn, fp], [fn, tp]]


@pytest.mark.parametrize(
    ("conf", "expected"),
    [
        # nothing anywhere: every landslide-class score divides by zero
        (Confusion(0, 0, 0, 100), dict(precision=None, recall=None, f1=None, iou=None, kappa=None, mcc=None)),
        # landslides in the reference, nothing predicted: everything missed, precision undefined
        (Confusion(0, 0, 7, 93), dict(precision=None, recall=0.0, f1=0.0, iou=0.0, kappa=0.0, mcc=None)),
        # no landslide in the reference, something predicted: nothing to find
        (Confusion(0, 9, 0, 91), dict(precision=0.0, recall=None, f1=None, iou=None, kappa=None, mcc=None)),
        # everything is landslide in both: a constant reference shows no agreement beyond chance
        (Confusion(100, 0, 0, 0), dict(precision=1.0, recall=1.0, f1=1.0, iou=1.0, kappa=None, mcc=None)),
        # the map flags every pixel
        (Confusion(5, 95, 0, 0), dict(precision=0.05, recall=1.0, f1=10 / 105, iou=0.05, kappa=0.0, mcc=None)),
    ],
)
def test_degenerate_cases_are_undefined_without_warnings(conf, expected):
    with warnings.catch_warnings(), np.errstate(all="raise"):
        warnings.simplefilter("error")
        s = scores(conf)
    for key, value in expected.items():
        assert getattr(s, key) == (pytest.approx(value) if value else value), key
    assert evaluation.undefined_scores(conf) == tuple(k for k, v in expected.items() if v is None)
    assert all(v is None or np.isfinite(v) for v in s.as_dict().values())
    assert s.overall_accuracy is not None and s.reference_share is not None
    assert json.loads(json.dumps(s.as_dict()))["mcc"] is None  # None is JSON null


def test_summary_line():
    s = scores(Confusion(tp=3, fp=1, fn=2, tn=4))
    assert s.summary() == (f"precision 0.750, recall 0.600, F1 {2 * 0.75 * 0.6 / 1.35:.3f}, IoU 0.500, "
                           f"MCC {(3 * 4 - 1 * 2) / np.sqrt(4 * 5 * 6 * 5):.3f}")
    assert scores(Confusion(0, 9, 0, 91)).summary() == (
        "precision 0.000, recall undefined, F1 undefined, IoU undefined, MCC undefined")


def test_zero_division_can_be_nan_and_empty_confusion_is_an_error():
    s = scores(Confusion(0, 0, 7, 93), zero_division=float("nan"))
    assert np.isnan(s.precision) and s.recall == 0.0 and np.isnan(s.mcc)
    assert scores(Confusion(0, 9, 0, 91), zero_division=0.0).recall == 0.0  # scikit-learn's convention
    with pytest.raises(ValueError, match="no valid pixel"):
        scores(Confusion(0, 0, 0, 0))


def test_confusion_rejects_bad_masks():
    with pytest.raises(ValueError, match="shape"):
        confusion(np.zeros((3, 3), bool), np.zeros((3, 4), bool))
    with pytest.raises(ValueError, match="other than 0, 1 and 255"):
        confusion(np.zeros((3, 3), np.uint8), np.full((3, 3), 7, np.uint8))
    with pytest.raises(ValueError, match="boolean or integer"):
        confusion(np.zeros((3, 3), float), np.zeros((3, 3), bool))


# -- evaluate: raster reference ----------------------------------------------------------------------


def test_raster_reference_same_grid_counts_and_exclusions(tmp_path):
    ref = np.zeros((40, 50), np.uint8)
    ref[10:20, 10:20] = 1          # 100 px landslide
    ref[0, :] = 255                # 50 px no data in the reference
    pred = np.zeros((40, 50), np.uint8)
    pred[15:25, 10:20] = 1         # 50 on the landslide, 50 beside it
    pred[:, 0] = 255               # 40 px no data in the prediction (1 of them also no data in the reference)
    ref_path = write_mask(tmp_path / "inventory.tif", ref)
    pred_path = write_mask(tmp_path / "kmeans.tif", pred)
    before = (tmp_path / "inventory.tif").read_bytes()

    result = evaluate(ref_path, [pred_path])

    p = result.predictions[0]
    assert p.name == "kmeans"
    assert p.confusion == Confusion(tp=50, fp=50, fn=50, tn=39 * 49 - 150)
    assert p.excluded_prediction_nodata == 40
    assert p.excluded_reference_nodata == 49
    assert p.confusion.total + p.excluded_prediction_nodata + p.excluded_reference_nodata == 40 * 50
    assert p.scores.precision == pytest.approx(0.5) and p.scores.recall == pytest.approx(0.5)
    assert result.reference_kind == "raster"
    assert result.reference_description == f"raster {ref_path}"
    assert not result.reference_is_baseline
    assert (tmp_path / "inventory.tif").read_bytes() == before  # inputs never modified


def test_reference_value_and_baseline_detection(tmp_path):
    ref = np.zeros((20, 20), np.uint8)
    ref[5:10, 5:10] = 3
    ref[12:15, 12:15] = 1
    pred = (ref == 3).astype(np.uint8)
    ref_path = write_mask(tmp_path / "labels.tif", ref, nodata=None, description="NDVI drop > 0.2")
    pred_path = write_mask(tmp_path / "p.tif", pred)
    by_value = evaluate(ref_path, [pred_path], reference_value=3).predictions[0]
    assert by_value.confusion.tp == 25 and by_value.confusion.fn == 0 and by_value.confusion.fp == 0
    positive = evaluate(ref_path, [pred_path])
    assert positive.predictions[0].confusion.fn == 9
    assert positive.reference_is_baseline  # its description says NDVI: a baseline, not ground truth
    assert not evaluate(ref_path, [pred_path], reference_is_baseline=False).reference_is_baseline


def test_coarser_reference_is_resampled_nearest(tmp_path):
    coarse = np.zeros((10, 12), np.uint8)
    coarse[2:5, 3:6] = 1
    coarse[7, 1] = 255
    ref_path = write_mask(tmp_path / "coarse.tif", coarse, transform=from_origin(*ORIGIN, 40, 40))
    fine = np.kron(coarse, np.ones((2, 2), np.uint8))  # the same map at 20 m
    pred = np.where(fine == 255, 0, fine)
    pred_path = write_mask(tmp_path / "pred.tif", pred)
    p = evaluate(ref_path, [pred_path]).predictions[0]
    assert p.confusion == Confusion(tp=36, fp=0, fn=0, tn=20 * 24 - 36 - 4)
    assert p.excluded_reference_nodata == 4


def test_reference_in_another_crs_agrees_with_the_map_it_was_made_from(tmp_path):
    truth = blobs((60, 60), [(15, 15), (40, 35), (50, 10)], 6)
    pred_path = write_mask(tmp_path / "pred.tif", truth)
    # The same map in geographic coordinates on a finer grid (nearest neighbour).
    geo = CRS.from_epsg(4326)
    lon0, lat0 = 7.7, 46.05
    dst_transform = from_origin(lon0 - 0.002, lat0 + 0.002, 0.0001, 0.0001)
    out = np.full((200, 200), 255, np.uint8)
    with rasterio.open(pred_path) as src:
        from rasterio.warp import transform_bounds

        left, bottom, right, top = transform_bounds(src.crs, geo, *src.bounds)
        dst_transform = from_origin(left, top, (right - left) / 200, (top - bottom) / 200)
        reproject(rasterio.band(src, 1), out, dst_transform=dst_transform, dst_crs=geo, dst_nodata=255)
    ref_path = write_mask(tmp_path / "ref_wgs84.tif", out, crs=geo, transform=dst_transform)
    p = evaluate(ref_path, [pred_path]).predictions[0]
    assert p.scores.iou > 0.85
    assert p.scores.recall > 0.9 and p.scores.precision > 0.9
    assert p.confusion.tp > 0.9 * truth.sum()


def test_object_counts_and_strips(tmp_path, monkeypatch):
    shape = (64, 64)
    reference = blobs(shape, [(10, 10), (30, 40), (52, 15)], 4)
    # A diagonal chain crossing a strip boundary (rows 20/21 with 7-row strips -> 21): one 8-connected object.
    for k in range(6):
        reference[18 + k, 52 + k] = 1
    prediction = blobs(shape, [(10, 12), (30, 44), (55, 50)], 3)  # hits 2 blobs, 1 false object
    prediction[20, 54] = 1                                          # hits the diagonal chain
    ref_path = write_mask(tmp_path / "ref.tif", reference)
    pred_path = write_mask(tmp_path / "pred.tif", prediction)
    whole = evaluate(ref_path, [pred_path]).predictions[0]
    monkeypatch.setattr(evaluation, "BLOCK_ROWS", 7)
    strips = evaluate(ref_path, [pred_path]).predictions[0]
    assert strips == whole
    assert whole.objects.reference_objects == 4
    assert whole.objects.reference_hit == 3
    assert whole.objects.reference_missed == 1
    assert whole.objects.predicted_objects == 4
    assert whole.objects.predicted_false == 1
    assert whole.objects.reference_unmapped == 0


def test_object_counts_do_not_depend_on_strips_for_dense_random_masks(tmp_path, monkeypatch):
    import cv2

    rng = np.random.default_rng(7)
    reference = (rng.random((150, 120)) < 0.35).astype(np.uint8)  # large clusters spanning many strips
    prediction = (rng.random((150, 120)) < 0.3).astype(np.uint8)
    ref_path = write_mask(tmp_path / "ref.tif", reference)
    pred_path = write_mask(tmp_path / "pred.tif", prediction)
    monkeypatch.setattr(evaluation, "BLOCK_ROWS", 5)
    objects = evaluate(ref_path, [pred_path]).predictions[0].objects
    count, labels = cv2.connectedComponents(reference, connectivity=8)
    hit_labels = np.unique(labels[(reference == 1) & (prediction == 1)])
    assert objects.reference_objects == count - 1
    assert objects.reference_hit == hit_labels.size
    count, labels = cv2.connectedComponents(prediction, connectivity=8)
    assert objects.predicted_objects == count - 1
    assert objects.predicted_false == count - 1 - np.unique(labels[(reference == 1) & (prediction == 1)]).size


# -- evaluate: polygon reference ---------------------------------------------------------------------


def square(col0, row0, col1, row1, size=20.0):
    x0, y0 = ORIGIN
    ring = [(x0 + col0 * size, y0 - row0 * size), (x0 + col1 * size, y0 - row0 * size),
            (x0 + col1 * size, y0 - row1 * size), (x0 + col0 * size, y0 - row1 * size)]
    return {"type": "Polygon", "coordinates": [ring + [ring[0]]]}


def test_polygon_rasterised_on_known_pixels_and_all_touched_grows_it(tmp_path):
    pred = np.zeros((20, 20), np.uint8)
    pred[3:6, 2:5] = 1  # the 9 pixels whose centres are inside the square below
    pred_path = write_mask(tmp_path / "pred.tif", pred)
    polygon = square(2.25, 3.25, 5.25, 6.25)
    centres = evaluate(None, [pred_path], reference_geometries=[polygon], reference_crs="EPSG:32632",
                       reference_name="test inventory").predictions[0]
    assert centres.confusion == Confusion(tp=9, fp=0, fn=0, tn=400 - 9)
    touched = evaluate(None, [pred_path], reference_geometries=[{"type": "Feature", "geometry": polygon}],
                       reference_crs="EPSG:32632", all_touched=True)
    assert touched.predictions[0].confusion == Confusion(tp=9, fp=0, fn=16 - 9, tn=400 - 16)
    assert touched.all_touched
    assert touched.reference_kind == "vector"
    assert touched.reference_description == "1 inventory polygons from the given geometries"


def test_geojson_inventory_in_wgs84_and_object_counts(tmp_path):
    pred = np.zeros((30, 30), np.uint8)
    pred[3:6, 2:5] = 1
    pred[20:23, 20:23] = 1  # a false object
    pred_path = write_mask(tmp_path / "pred.tif", pred)
    polygons = [square(2.25, 3.25, 5.25, 6.25), square(10.25, 10.25, 14.25, 14.25),
                square(40, 40, 45, 45),             # outside the grid: unmapped
                square(25.6, 2.6, 25.9, 2.9)]       # smaller than a pixel, no centre inside: unmapped
    features = [{"type": "Feature", "properties": {}, "geometry": transform_geom(UTM, "EPSG:4326", g)}
                for g in polygons]
    path = tmp_path / "inventory.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    result = evaluate(path, [pred_path])
    p = result.predictions[0]
    assert result.reference_description == f"4 inventory polygons from {path}"
    assert p.confusion.tp == 9 and p.confusion.fn == 16 and p.confusion.fp == 9
    assert p.objects.reference_objects == 2
    assert p.objects.reference_hit == 1 and p.objects.reference_missed == 1
    assert p.objects.reference_unmapped == 2
    assert p.objects.predicted_objects == 2 and p.objects.predicted_false == 1


def test_several_predictions_names_and_progress(tmp_path):
    ref = blobs((32, 32), [(10, 10)], 4)
    ref_path = write_mask(tmp_path / "ref.tif", ref)
    a = write_mask(tmp_path / "a.tif", ref)
    b = write_mask(tmp_path / "b.tif", np.zeros_like(ref))
    seen = []
    result = evaluate(ref_path, [a, b], names=["perfect", "empty"], progress=seen.append)
    assert [p.name for p in result.predictions] == ["perfect", "empty"]
    assert result.predictions[0].scores.f1 == 1.0 and result.predictions[0].scores.mcc == pytest.approx(1.0)
    assert result.predictions[1].scores.recall == 0.0 and result.predictions[1].objects.reference_missed == 1
    assert result.predictions[1].scores.precision is None and not result.predictions[0].warnings
    assert seen[-1] == 100.0 and seen == sorted(seen)
    rows = result.rows()
    assert rows[0]["tp"] == int(ref.sum()) and rows[1]["f1"] == 0.0


def test_several_predictions_warn_about_an_empty_map(tmp_path):
    ref = blobs((32, 32), [(10, 10)], 4)
    ref_path = write_mask(tmp_path / "ref.tif", ref)
    empty = write_mask(tmp_path / "b.tif", np.zeros_like(ref))
    result = evaluate(ref_path, [empty], names=["empty"])
    p = result.predictions[0]
    assert p.scores.precision is None and p.scores.mcc is None and p.scores.recall == 0.0
    assert result.warnings == list(p.warnings) and len(p.warnings) == 1
    assert p.warnings[0].startswith("empty has no landslide pixel over the area compared with the reference: "
                                    "precision and MCC are undefined and recall is 0")


# -- a reference with no landslide pixel over the map ------------------------------------------------


def test_raster_reference_of_zeros_gives_undefined_scores_and_one_warning(tmp_path):
    ref_path = write_mask(tmp_path / "zeros.tif", np.zeros((30, 30), np.uint8))
    some = blobs((30, 30), [(10, 10)], 3)
    a = write_mask(tmp_path / "a.tif", some)
    b = write_mask(tmp_path / "b.tif", np.zeros((30, 30), np.uint8))
    result = evaluate(ref_path, [a, b], names=["K-means 3", "empty"])
    first, second = (p.scores for p in result.predictions)
    assert (first.recall, first.f1, first.iou, first.kappa, first.mcc) == (None,) * 5
    assert first.precision == 0.0 and first.overall_accuracy == pytest.approx(1 - some.sum() / 900)
    assert second.as_dict()["precision"] is None and second.overall_accuracy == 1.0
    assert result.rows()[0]["recall"] is None
    # said once for the reference, not once per map
    assert result.warnings == [
        f"The reference raster {ref_path} has no landslide pixel at all (landslide = values greater than 0): "
        "recall, F1, IoU, kappa and MCC are undefined for every map. Check that the reference value is right and "
        "that this is the landslide inventory you meant to use."]
    assert all(p.warnings == () for p in result.predictions)
    assert first.summary() == "precision 0.000, recall undefined, F1 undefined, IoU undefined, MCC undefined"
    with_value = evaluate(write_mask(tmp_path / "codes.tif", np.full((30, 30), 2, np.uint8)), [a], reference_value=3)
    assert "(landslide = value 3)" in with_value.warnings[0]


def test_raster_reference_with_landslides_only_off_the_map(tmp_path):
    ref = np.zeros((30, 60), np.uint8)
    ref[5:10, 40:50] = 1  # east of the map below
    ref_path = write_mask(tmp_path / "ref.tif", ref)
    pred_path = write_mask(tmp_path / "pred.tif", blobs((30, 30), [(10, 10)], 3))
    result = evaluate(ref_path, [pred_path], names=["GMM 3"])
    p = result.predictions[0]
    assert p.scores.recall is None and p.scores.f1 is None and p.scores.mcc is None
    assert result.warnings == [
        "The reference has no landslide pixel over GMM 3's valid area: recall, F1, IoU, kappa and MCC are undefined. "
        "Check that the reference covers this image (it may be outside it or in another CRS) or that the reference "
        "value is right (landslide = values greater than 0)."]


def test_inventory_outside_the_image_gives_undefined_scores_and_a_warning(tmp_path):
    pred = blobs((30, 30), [(10, 10)], 3)
    pred_path = write_mask(tmp_path / "pred.tif", pred)
    far = [square(200, 200, 210, 210), square(-50, 5, -40, 15)]  # both off the 30 x 30 grid
    result = evaluate(None, [pred_path], reference_geometries=far, reference_crs="EPSG:32632",
                      names=["K-means 3"])
    p = result.predictions[0]
    assert p.confusion == Confusion(tp=0, fp=int(pred.sum()), fn=0, tn=900 - int(pred.sum()))
    assert p.scores.precision == 0.0
    assert (p.scores.recall, p.scores.f1, p.scores.iou, p.scores.kappa, p.scores.mcc) == (None,) * 5
    assert p.objects.reference_unmapped == 2
    assert result.warnings == list(p.warnings) == [
        "The reference inventory does not overlap K-means 3: none of its 2 polygons falls on the map, so recall, "
        "F1, IoU, kappa and MCC are undefined. Check that the inventory covers this image (it may be outside it or "
        "in another CRS)."]
    one = evaluate(None, [pred_path], reference_geometries=far[:1], reference_crs="EPSG:32632", names=["m"])
    assert "does not overlap m: its only polygon does not fall on the map" in one.warnings[0]


def test_inventory_on_the_map_but_without_landslide_pixel(tmp_path):
    pred_path = write_mask(tmp_path / "pred.tif", np.zeros((20, 20), np.uint8))
    tiny = square(5.6, 5.6, 5.9, 5.9)  # on the map, smaller than a pixel and covering no pixel centre
    result = evaluate(None, [pred_path], reference_geometries=[tiny], reference_crs="EPSG:32632", names=["m"])
    assert result.predictions[0].scores.as_dict()["f1"] is None
    assert result.warnings == [
        "The reference has no landslide pixel over m's valid area: precision, recall, F1, IoU, kappa and MCC are "
        "undefined. Check that the inventory covers this image (it may be outside it or in another CRS)."]


def test_clear_errors(tmp_path):
    ref_path = write_mask(tmp_path / "ref.tif", np.zeros((10, 10), np.uint8))
    clusters = write_mask(tmp_path / "clusters.tif", np.full((10, 10), 2, np.uint8))
    with pytest.raises(ValueError, match="values other than 0 and 1"):
        evaluate(ref_path, [clusters])
    far = write_mask(tmp_path / "far.tif", np.zeros((10, 10), np.uint8), transform=from_origin(0, 0, 20, 20))
    with pytest.raises(ValueError, match="share no pixel with data"):
        evaluate(ref_path, [far])
    with pytest.raises(FileNotFoundError, match="missing.tif"):
        evaluate(ref_path, [str(tmp_path / "missing.tif")])
    with pytest.raises(ValueError, match="at least one"):
        evaluate(ref_path, [])
    with pytest.raises(ValueError, match="must hold polygons"):
        evaluate(None, [ref_path], reference_geometries=[{"type": "Point", "coordinates": [0, 0]}],
                 reference_crs="EPSG:32632")
    with pytest.raises(ValueError, match="reference_crs"):
        evaluate(None, [ref_path], reference_geometries=[square(1, 1, 2, 2)])
    shp = tmp_path / "inventory.shp"
    shp.write_bytes(b"")
    with pytest.raises(ValueError, match="not GeoJSON"):
        evaluate(shp, [ref_path], reference_kind="vector")


def test_cancel_stops(tmp_path):
    ref_path = write_mask(tmp_path / "ref.tif", np.zeros((10, 10), np.uint8))
    with pytest.raises(rasters.Cancelled):
        evaluate(ref_path, [ref_path], is_cancelled=lambda: True)


@pytest.mark.parametrize("reference_kind", ["raster", "vector"])
def test_maps_scored_together_get_the_scores_each_gets_alone(tmp_path, monkeypatch, reference_kind):
    """A run's maps share a grid and are scored in one pass; maps on another grid (a coarser one here) are
    scored on theirs. Every map's counts, objects (across strips) and warnings are its own, in the order given."""
    monkeypatch.setattr(evaluation, "BLOCK_ROWS", 6)
    rng = np.random.default_rng(11)
    shape = (40, 36)
    reference = blobs(shape, [(8, 8), (20, 25), (33, 10)], 4)
    reference[5:30, 30] = 1  # a long object crossing several strips
    maps = [(rng.random(shape) < 0.2).astype(np.uint8) | blobs(shape, [(8, 9)], 3),
            np.zeros(shape, np.uint8),                      # an empty map: its own warning
            blobs(shape, [(20, 26), (33, 30)], 4)]
    maps[0][::7, ::5] = 255
    paths = [write_mask(tmp_path / f"m{i}.tif", m) for i, m in enumerate(maps)]
    coarse = blobs((20, 18), [(10, 12)], 3)
    paths.insert(1, write_mask(tmp_path / "coarse.tif", coarse, transform=from_origin(*ORIGIN, 40, 40)))
    if reference_kind == "raster":
        kwargs = {"reference_path": write_mask(tmp_path / "ref.tif", reference)}
    else:
        kwargs = {"reference_path": None, "reference_crs": UTM,
                  "reference_geometries": [square(3, 4, 12, 12), square(20, 15, 30, 25), square(29, 4, 31, 30)]}
    names = ["noisy", "coarse", "empty", "shifted"]
    together = evaluate(names=names, prediction_paths=paths, **kwargs)
    alone = [evaluate(names=[name], prediction_paths=[path], **kwargs).predictions[0]
             for name, path in zip(names, paths)]
    assert together.predictions == alone
    assert [p.name for p in together.predictions] == names
    assert together.warnings == [w for p in alone for w in p.warnings] and together.warnings
