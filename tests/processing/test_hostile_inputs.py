"""Hostile but realistic inputs to 'Map landslides (pre/post)': every input stays byte-identical, every file the
user had in the output folder stays, and every failure is one sentence that names the problem and the fix,
given before the expensive work starts."""
from __future__ import annotations

import errno
import hashlib
import random
import re
import shutil
import tempfile
import threading
from pathlib import Path

import numpy as np
import pytest
import rasterio
from qgis.core import QgsProcessingContext, QgsProcessingException, QgsProcessingFeedback

from landslide_plugin.core import detection, output_folder, preflight, products, rasters

ALG = "landslide:map_landslides"
QUICK = {"THRESHOLD_BASELINE": True, "KMEANS_CLUSTERS": "", "GMM_CLUSTERS": "3", "PRIMARY": "gmm3"}
#: Log lines that only appear once the expensive work has started.
WORK_STARTED = ("co-registration", "landslide cluster", "landslide polygons")


class Recorder(QgsProcessingFeedback):
    """Keeps every message the run gives the user."""

    def __init__(self):
        super().__init__()
        self.lines: list[str] = []

    def pushInfo(self, info):  # noqa: N802
        self.lines.append(info)
        super().pushInfo(info)

    def pushWarning(self, warning):  # noqa: N802
        self.lines.append(warning)
        super().pushWarning(warning)

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def run(parameters, feedback=None):
    import processing

    return processing.run(ALG, parameters, context=QgsProcessingContext(), feedback=feedback or Recorder())


def digest(path: Path, *, qgis_statistics: bool = True) -> dict[str, str]:
    """Content hashes of a file, or of every file in a folder (hidden ones included).

    ``qgis_statistics=False`` leaves out ``.aux.xml`` sidecars: QGIS itself computes statistics of a raster
    given as a path when it checks the parameters (before the algorithm runs) and saves them beside it,
    as it does for any raster a user opens; the raster itself stays byte-identical.
    """
    path = Path(path)
    if path.is_dir():
        return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(path.rglob("*"))
                if p.is_file() and (qgis_statistics or not p.name.endswith(".aux.xml"))}
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest()}


def refused(parameters, pattern: str, *, inputs=(), folder: Path | None = None) -> Recorder:
    """Run, expect a one-sentence refusal matching ``pattern`` before any work; inputs and folder unchanged."""
    before_inputs = {str(p): digest(p) for p in inputs}
    before_folder = digest(folder) if folder is not None and folder.is_dir() else None
    feedback = Recorder()
    with pytest.raises(QgsProcessingException) as caught:
        run(parameters, feedback)
    message = str(caught.value)
    assert "Traceback" not in message and "\n" not in message.strip(), message
    assert re.search(pattern, message, flags=re.S), message
    assert not any(marker in feedback.text for marker in WORK_STARTED), feedback.text
    for path, before in before_inputs.items():
        assert digest(Path(path)) == before, f"{path} changed"
    if before_folder is not None:
        assert digest(folder) == before_folder
    return feedback


@pytest.fixture(scope="module")
def stacks(example_pair, tmp_path_factory):
    """The example pair prepared into stacks + SCL (what 'Prepare Sentinel-2 L2A product' writes)."""
    folder = tmp_path_factory.mktemp("stacks")
    out = {}
    for when, product in (("pre", example_pair.pre), ("post", example_pair.post)):
        products.prepare_l2a([str(product)], str(folder / f"{when}.tif"), str(folder / f"{when}_scl.tif"))
        out[when], out[f"{when}_scl"] = folder / f"{when}.tif", folder / f"{when}_scl.tif"
    return out


def rewrite(src: Path, dst: Path, *, data=None, crs=None, transform=None, descriptions=True) -> Path:
    """A copy of a stack as a user's float32 reflectance stack (NaN = no data, no scale or offset), with its
    pixels, CRS, position or band descriptions changed."""
    with rasterio.open(src) as s:
        profile, values, names = s.profile, rasters.read_reflectance(s, s.indexes), s.descriptions
    profile.update(rasters.GTIFF_OPTIONS, dtype="float32", nodata=np.nan)
    profile.pop("zstd_level", None)
    profile.update(crs=crs or profile["crs"], transform=transform or profile["transform"])
    with rasterio.open(dst, "w", **profile) as d:
        d.write(values if data is None else data.astype(values.dtype))
        if descriptions:
            for i, name in enumerate(names, 1):
                d.set_band_description(i, name or "")
    return dst


def stack_params(stacks, folder, **extra):
    return {"PRE": [str(stacks["pre"])], "POST": [str(stacks["post"])], "PRE_SCL": str(stacks["pre_scl"]),
            "POST_SCL": str(stacks["post_scl"]), "OUTPUT_FOLDER": str(folder), **QUICK, **extra}


def product_params(pair, folder, **extra):
    return {"PRE": [str(pair.pre)], "POST": [str(pair.post)], "DEM": str(pair.dem), "OUTPUT_FOLDER": str(folder),
            **QUICK, **extra}


# -- inputs are never moved, changed or deleted ------------------------------------------------------------------
def test_prepared_stacks_stay_where_they_are_byte_identical(provider, stacks, tmp_path):
    before = {k: digest(v) for k, v in stacks.items()}
    folder = tmp_path / "out"
    result = run(stack_params(stacks, folder))
    assert {k: digest(v) for k, v in stacks.items()} == before
    assert not (folder / "pre_stack.tif").exists()  # the input is referenced, not copied or moved
    assert Path(result["PRIMARY_MASK"]).is_file() and Path(result["ALIGNED"]).parent == folder
    run(stack_params(stacks, folder))  # a second run into the same folder: inputs still untouched
    assert {k: digest(v) for k, v in stacks.items()} == before


def test_inputs_inside_the_output_folder_and_on_another_filesystem(provider, stacks, tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    inside = {k: Path(shutil.copy(v, folder / f"input_{Path(v).name}")) for k, v in stacks.items()}
    params = {"PRE": [str(inside["pre"])], "POST": [str(inside["post"])], "PRE_SCL": str(inside["pre_scl"]),
              "POST_SCL": str(inside["post_scl"])}
    before = digest(folder)
    run(dict(stack_params(stacks, folder), **params))
    for name, value in before.items():
        assert digest(folder / name)[Path(name).name] == value
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("no second filesystem (/dev/shm) to put the inputs on")
    other = Path(tempfile.mkdtemp(dir=shm))
    try:
        moved = {k: Path(shutil.copy(v, other / Path(v).name)) for k, v in stacks.items()}
        before = digest(other, qgis_statistics=False)
        run(stack_params(moved, tmp_path / "out2"))
        assert digest(other, qgis_statistics=False) == before
    finally:
        shutil.rmtree(other, ignore_errors=True)


def test_a_previous_runs_stack_used_as_input_is_kept(provider, example_pair, tmp_path):
    folder = tmp_path / "out"
    run(product_params(example_pair, folder))
    pre_stack, pre_scl = folder / "pre_stack.tif", folder / "pre_scl.tif"
    before = {**digest(pre_stack), **digest(pre_scl)}
    # A re-run on the stack the first run prepared: the stack is an input now and must survive.
    run({"PRE": [str(pre_stack)], "PRE_SCL": str(pre_scl), "POST": [str(example_pair.post)],
         "DEM": str(example_pair.dem), "OUTPUT_FOLDER": str(folder), **QUICK})
    assert {**digest(pre_stack), **digest(pre_scl)} == before


def test_files_of_the_user_in_the_output_folder_are_never_touched(provider, example_pair, tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    mine = {"landslides_survey.geojson": '{"type": "FeatureCollection", "features": []}',
            "mask_notes.tif": "not even a raster", "metrics.xlsx": "numbers", "notes.txt": "field notes"}
    for name, text in mine.items():
        (folder / name).write_text(text)
    run(product_params(example_pair, folder, REFERENCE_RASTER=str(example_pair.truth)))
    run(product_params(example_pair, folder, **dict(QUICK, GMM_CLUSTERS="", PRIMARY="threshold")))
    for name, text in mine.items():
        assert (folder / name).read_text() == text
    assert not (folder / "mask_gmm3.tif").exists()  # the plugin's own stale map is gone


def test_a_user_file_with_an_output_name_stops_the_run_before_any_work(provider, example_pair, tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "report.html").write_text("<p>my own report</p>")
    refused(product_params(example_pair, folder, REFERENCE_RASTER=str(example_pair.truth)),
            r"report\.html.*not written by this plugin.*(Move|rename).*another output folder",
            inputs=[example_pair.pre, example_pair.post], folder=folder)


# -- the output folder ----------------------------------------------------------------------------------------------
def test_output_folder_that_is_a_file(provider, example_pair, tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("a file")
    refused(product_params(example_pair, target), r"is a file, not a folder: choose a folder", inputs=[target])


def test_output_folder_that_cannot_be_created(provider, example_pair, tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    refused(product_params(example_pair, blocker / "results"), r"cannot be created.*choose a folder",
            inputs=[blocker])


def test_not_enough_free_space_says_how_much_is_needed(provider, example_pair, tmp_path, monkeypatch):
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(preflight.shutil, "disk_usage", lambda path: usage._replace(free=1024))
    folder = tmp_path / "out"
    refused(product_params(example_pair, folder), r"(space|free).*(MB|GB|kB|KB)")
    assert not folder.exists()


def test_disk_filling_up_during_the_run_restores_the_folder(provider, example_pair, tmp_path, monkeypatch):
    folder = tmp_path / "out"
    run(product_params(example_pair, folder))
    before = digest(folder)

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(folder / "mask_threshold.tif"))

    monkeypatch.setattr(detection, "detect", full)
    with pytest.raises(QgsProcessingException, match=r"disk .* filled up.*free some space.*left as it was"):
        run(product_params(example_pair, folder))
    assert digest(folder) == before


def test_a_second_run_into_a_busy_folder_refuses_at_once(provider, example_pair, tmp_path):
    folder = tmp_path / "out"
    with output_folder.OutputFolder(folder):  # a run in progress, as another dialog or batch row would hold it
        refused(product_params(example_pair, folder), r"Another run is writing into .* right now.*wait")
    run(product_params(example_pair, folder))  # and once it is done, the folder is free


def test_two_runs_at_the_same_time_one_refuses_and_the_others_paths_stay_valid(provider, example_pair, tmp_path):
    folder = tmp_path / "out"
    started, results, errors = threading.Event(), [], []

    class Slow(Recorder):
        def pushInfo(self, info):  # noqa: N802 - called from the run's own thread
            if info.startswith("Step 2 of"):  # the inputs are checked and the folder claimed: the work has begun
                started.set()
            super().pushInfo(info)

    def first():
        try:
            results.append(run(product_params(example_pair, folder), Slow()))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    thread = threading.Thread(target=first)
    thread.start()
    assert started.wait(30)
    second_error = None
    try:
        run(product_params(example_pair, folder))
    except QgsProcessingException as exc:
        second_error = str(exc)
    thread.join(120)
    assert not errors, errors
    if second_error is None:
        pytest.skip("the first run finished before the second started (machine too fast to overlap them)")
    assert "Another run is writing" in second_error
    for key in ("PRIMARY_MASK", "POLYGONS", "ALIGNED"):
        assert Path(results[0][key]).is_file()


# -- bad images --------------------------------------------------------------------------------------------------------
def test_images_that_do_not_overlap_give_both_extents(provider, stacks, tmp_path):
    with rasterio.open(stacks["post"]) as src:
        t = src.transform
    far = rasterio.Affine(t.a, t.b, t.c + 500_000, t.d, t.e, t.f)
    post = rewrite(stacks["post"], tmp_path / "post_far.tif", transform=far)
    refused(dict(stack_params(stacks, tmp_path / "out"), POST=[str(post)], POST_SCL=None),
            r"pre-event image \(x \d+\.\.\d+, y .*post-event image \(x 8\d+\.\.\d+, y .*do not overlap",
            inputs=[post, stacks["pre"]])


def test_post_image_without_a_valid_pixel(provider, stacks, tmp_path):
    with rasterio.open(stacks["post"]) as src:
        empty = np.full((src.count, src.height, src.width), np.nan, dtype="float32")
    post = rewrite(stacks["post"], tmp_path / "post_empty.tif", data=empty)
    feedback = refused(dict(stack_params(stacks, tmp_path / "out"), POST=[str(post)], POST_SCL=None),
                       r"post-event image .* has no (valid pixel|pixel with data)", inputs=[post])
    assert "less cloudy" not in feedback.text


def test_stack_without_band_descriptions_asks_for_band_numbers_and_then_runs(provider, stacks, tmp_path):
    post = rewrite(stacks["post"], tmp_path / "post_plain.tif", descriptions=False)
    params = dict(stack_params(stacks, tmp_path / "out"), POST=[str(post)])
    with rasterio.open(stacks["post"]) as src:
        names = list(src.descriptions)
    if names[:5] == ["B02", "B03", "B04", "B8A", "B11"]:
        # The defaults already are the plugin's order: a wrong number set must be refused first.
        refused(dict(params, BAND_SWIR1=99), r"band number 99 for B11.*(beyond|does not exist)", inputs=[post])
        result = run(params)
    else:
        refused(dict(params, BAND_SWIR1=99), r"band number 99", inputs=[post])
        numbers = {"BAND_BLUE": names.index("B02") + 1, "BAND_GREEN": names.index("B03") + 1,
                   "BAND_RED": names.index("B04") + 1, "BAND_NIR": names.index("B8A") + 1,
                   "BAND_SWIR1": names.index("B11") + 1}
        result = run(dict(params, **numbers))
    assert Path(result["PRIMARY_MASK"]).is_file()


def test_geographic_stack_is_refused_up_front(provider, stacks, tmp_path):
    with rasterio.open(stacks["pre"]) as src:
        w, h = src.width, src.height
    transform = rasterio.transform.from_bounds(38.0, 37.0, 38.0 + w * 0.0002, 37.0 + h * 0.0002, w, h)
    pre = rewrite(stacks["pre"], tmp_path / "pre_4326.tif", crs="EPSG:4326", transform=transform)
    post = rewrite(stacks["post"], tmp_path / "post_4326.tif", crs="EPSG:4326", transform=transform)
    refused({"PRE": [str(pre)], "POST": [str(post)], "OUTPUT_FOLDER": str(tmp_path / "out"), **QUICK},
            r"EPSG:4326.*(degrees|geographic).*(reproject|UTM)", inputs=[pre, post])


# -- results that should not be trusted silently ----------------------------------------------------------------------
def test_reference_without_a_landslide_pixel_warns_and_marks_scores_undefined(provider, example_pair, tmp_path):
    with rasterio.open(example_pair.truth) as src:
        profile, zeros = src.profile, np.zeros((src.height, src.width), dtype=src.dtypes[0])
    empty = tmp_path / "empty_reference.tif"
    with rasterio.open(empty, "w", **profile) as dst:
        dst.write(zeros, 1)
    feedback = Recorder()
    folder = tmp_path / "out"
    result = run(product_params(example_pair, folder, REFERENCE_RASTER=str(empty)), feedback)
    assert "no landslide pixel" in feedback.text
    assert result["F1"] is None and result["RECALL"] is None
    report = (folder / "report.html").read_text(encoding="utf-8")
    assert "no landslide pixel" in report and "undefined" in report


def test_noise_post_image_without_coregistration_is_flagged(provider, stacks, tmp_path):
    rng = np.random.default_rng(3)
    with rasterio.open(stacks["post"]) as src:
        noise = rng.uniform(0.0, 0.5, size=(src.count, src.height, src.width)).astype("float32")
    post = rewrite(stacks["post"], tmp_path / "post_noise.tif", data=noise)
    feedback = Recorder()
    run(dict(stack_params(stacks, tmp_path / "out"), POST=[str(post)], POST_SCL=None, COREGISTER=False,
             KMEANS_CLUSTERS="2"), feedback)
    warnings = [line for line in feedback.lines if line.startswith("WARNING")]
    assert warnings, feedback.text
    assert any("hardly match" in w or "% of the analysed pixels" in w for w in warnings)


def test_masks_off_means_no_mask_at_all_scl_included(provider, stacks, tmp_path):
    with rasterio.open(stacks["pre_scl"]) as src:  # on the grid of the maps (the post SCL is shifted)
        scl = src.read(1)
    cloudy = np.isin(scl, (3, 8, 9, 10))
    assert cloudy.any(), "the example needs clouds in the pre SCL for this test"
    on = run(dict(stack_params(stacks, tmp_path / "on"), USE_MASKS=True))
    off = run(dict(stack_params(stacks, tmp_path / "off"), USE_MASKS=False))
    with rasterio.open(on["PRIMARY_MASK"]) as src:
        masked = src.read(1)
    with rasterio.open(off["PRIMARY_MASK"]) as src:
        unmasked = src.read(1)
    with_data = np.ones_like(cloudy)
    for stack in (stacks["pre"], off["ALIGNED"]):
        with rasterio.open(stack) as src:
            with_data &= np.isfinite(rasters.read_reflectance(src, src.indexes)).all(axis=0)
    assert (masked[cloudy] == 255).all()
    # clouds are analysed like any pixel with data, as in the reference study
    assert (unmasked[cloudy & with_data] != 255).all() and (cloudy & with_data).sum() > 50


# -- any sequence of runs -------------------------------------------------------------------------------------------
class CancelAt(Recorder):
    def __init__(self, percent: float):
        super().__init__()
        self.percent = percent
        self.progressChanged.connect(lambda p: self.cancel() if p > self.percent else None)


def test_randomised_runs_never_lose_what_the_user_put_in_the_folder(provider, example_pair, stacks, tmp_path):
    rng = random.Random(7)
    folder = tmp_path / "out"
    folder.mkdir()
    inputs = [example_pair.pre, example_pair.post, example_pair.dem, example_pair.truth, *stacks.values()]
    before_inputs = {str(p): digest(p) for p in inputs}
    user: dict[str, str] = {}
    user_names = ["landslides_survey.geojson", "mask_notes.tif", "report_2019.html", "slope_old.tif", "README.md",
                  "clusters_mine.tif", "probability_of_rain.csv"]
    for step in range(8):
        for name in rng.sample(user_names, 2):
            user[name] = f"step {step}: {rng.random()}"
            (folder / name).write_text(user[name])
        action = rng.choice(["ok", "ok", "cancel", "fail", "stacks"])
        params = product_params(example_pair, folder, REFERENCE_RASTER=str(example_pair.truth),
                                GMM_CLUSTERS=rng.choice(["", "3"]), KMEANS_CLUSTERS=rng.choice(["", "2"]))
        params["PRIMARY"] = "gmm3" if params["GMM_CLUSTERS"] else "threshold"
        if action == "stacks":
            params = stack_params(stacks, folder, PRIMARY="gmm3")
        if action == "fail":
            params["MAX_SHIFT"] = 0.5  # the example is shifted by more: co-registration refuses it
        before = digest(folder)
        try:
            run(params, CancelAt(rng.uniform(5, 95)) if action == "cancel" else Recorder())
        except QgsProcessingException:
            assert digest(folder) == before, f"step {step} ({action}) changed the folder"
        for name, text in user.items():
            assert (folder / name).read_text() == text, f"step {step} ({action}) lost {name}"
    assert {str(p): digest(p) for p in inputs} == before_inputs
