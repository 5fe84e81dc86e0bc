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
        "threshold": (False, False), "kmeans": (True, False), "gmm": (True, True)}


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
    assert [r.spec.name for r in ready] == [m.name for m in METHODS]
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
