"""The one-step run tells what it is doing: named steps as they start, each method's news as soon as it is known."""
from __future__ import annotations

import threading

import pytest

from landslide_plugin.core import detection, pipeline


def test_each_method_is_told_as_soon_as_its_fit_ends_and_steps_are_named_in_order(example_pair, tmp_path,
                                                                                   monkeypatch):
    """K-means 2's fit waits for GMM 2's news: it only comes if GMM 2 is told while K-means 2 still fits."""
    gmm_told = threading.Event()
    fit = detection.ClusterDetector.fit
    waited = {}

    def slow_kmeans_fit(self, sample, names):
        if self.spec.name == "kmeans2":
            waited["news_came"] = gmm_told.wait(timeout=20)
        return fit(self, sample, names)

    monkeypatch.setattr(detection.ClusterDetector, "fit", slow_kmeans_fit)
    events = []

    def log(text):
        events.append(("log", text))
        if text.startswith("GMM 2: landslide cluster"):
            gmm_told.set()

    options = pipeline.MappingOptions(methods=(pipeline.Method("threshold"), pipeline.Method("kmeans", 2),
                                               pipeline.Method("gmm", 2)), primary="gmm2")
    pipeline.map_landslides([example_pair.pre], [example_pair.post], tmp_path / "out", options,
                            dem=example_pair.dem, reference=example_pair.truth, log=log,
                            step=lambda n, count, title: events.append(("step", (n, count, title))))
    assert waited == {"news_came": True}

    steps = [value for kind, value in events if kind == "step"]
    assert [n for n, _, _ in steps] == list(range(1, len(steps) + 1))
    assert {count for _, count, _ in steps} == {len(steps)} == {10}
    titles = [title for _, _, title in steps]
    assert titles[0] == "Checking the inputs and the output folder"
    assert titles[3] == "Co-registering the post-event image onto the pre-event image (B11)"
    assert titles[-1] == "Moving the results into the output folder"
    order = [value if kind == "step" else value.split("\n")[0] for kind, value in events]
    detect = next(i for i, v in enumerate(order) if isinstance(v, tuple) and v[2].startswith("Detecting"))
    write = next(i for i, v in enumerate(order) if isinstance(v, tuple) and v[2] == "Writing the landslide maps")
    news = [i for i, v in enumerate(order) if isinstance(v, str) and ": landslide " in v]
    assert len(news) == 3 and all(detect < i < write for i in news)  # every choice told before the maps are written
    gmm, kmeans = (next(i for i, v in enumerate(order) if isinstance(v, str) and v.startswith(name))
                   for name in ("GMM 2: landslide cluster", "K-means 2: landslide cluster"))
    assert gmm < kmeans  # told in the order the fits ended, not in the order of the methods
    lines = [value for kind, value in events if kind == "log"]
    assert len(lines) == len(set(lines))  # nothing is said twice


def test_a_run_is_titled_by_its_tile_and_dates(tmp_path):
    import numpy as np
    import rasterio
    from rasterio.transform import from_origin

    def stack(name, **tags):
        path = tmp_path / name
        with rasterio.open(path, "w", driver="GTiff", width=4, height=4, count=1, dtype="float32",
                           crs="EPSG:32637", transform=from_origin(0, 80, 20, 20)) as dst:
            dst.write(np.zeros((1, 4, 4), np.float32))
            dst.update_tags(**tags)
        return path

    pre = stack("pre.tif", SENSING_DATE="2023-01-05", TILE="T37SCB")
    post = stack("post.tif", SENSING_DATE="2023-08-30", TILE="T37SCB",
                 COMPOSITE_DATES="2023-08-20,2023-08-25,2023-08-30")
    assert pipeline.pair_title(pre, post) == "T37SCB 2023-01-05 → 2023-08-20…2023-08-30"
    assert pipeline.pair_title(pre, stack("bare.tif")) is None  # no dates: the folder names the group instead


def _helpers_alive() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("landslide-") and t.is_alive()]


def test_callbacks_come_from_the_calling_thread_and_the_log_follows_the_steps(example_pair, tmp_path):
    """The slope and the scores are made beside other stages, yet the user's callbacks
    are only ever called from the thread that called map_landslides, and the log reads in the order of the
    steps."""
    caller = threading.current_thread()
    threads, events, seen = set(), [], []

    def note(kind):
        def callback(*args):
            threads.add(threading.current_thread())
            if kind == "progress":
                seen.append(args[0])
            elif kind != "cancel":
                events.append((kind, args[-1]))
            return False
        return callback

    result = pipeline.map_landslides([example_pair.pre], [example_pair.post], tmp_path / "out", dem=example_pair.dem,
                                     reference=example_pair.truth, log=note("log"), step=note("step"),
                                     progress=note("progress"), is_cancelled=note("cancel"))
    assert threads == {caller}
    assert seen == sorted(seen) and seen[-1] == 100.0
    assert not _helpers_alive()
    order = [text.split("\n")[0] for _, text in events]
    polygons_step = order.index(f"Turning the {pipeline._label_of(pipeline.DEFAULT_METHODS, result.primary)} mask "
                                "into polygons")
    polygons_line = next(i for i, text in enumerate(order) if " landslide polygons of " in text)
    scoring_step = next(i for i, text in enumerate(order) if text.startswith("Scoring every method"))
    answer = next(i for i, text in enumerate(order) if text.startswith("Short answer:"))
    assert polygons_step < polygons_line < scoring_step < answer
    assert (tmp_path / "out" / f"landslides_{result.primary}.geojson").exists() and result.polygon_count > 0
    assert (tmp_path / "out" / "slope.tif").exists() and (tmp_path / "out" / "report.html").exists()


def test_a_cancel_while_the_scores_are_computed_beside_the_report_stops_them(example_pair, tmp_path, monkeypatch):
    """The scores run in a helper thread: the user's cancel reaches them through the calling thread, and the run
    waits for them to stop before it cleans up."""
    from landslide_plugin.core import evaluation, rasters

    started, stopped, helper = threading.Event(), threading.Event(), []

    def scores_until_stopped(*args, progress=None, is_cancelled=None, **kwargs):
        helper.append(threading.current_thread() is not threading.main_thread())
        progress(50.0)
        started.set()
        for _ in range(2000):
            if is_cancelled():  # the helper's own flag, set by the calling thread
                break
            threading.Event().wait(0.01)
        else:
            raise AssertionError("the scores were never told to stop")
        stopped.set()
        raise rasters.Cancelled("cancelled by the user")

    monkeypatch.setattr(evaluation, "evaluate", scores_until_stopped)
    scoring, seen = threading.Event(), []

    def step(number, count, title):
        if title.startswith("Scoring every method"):
            scoring.set()

    def is_cancelled():
        return scoring.is_set() and started.wait(timeout=20) and len(seen) > 0

    def progress(percent):
        if started.is_set():
            seen.append(percent)  # the helper's progress, passed on by the calling thread

    folder = tmp_path / "out"
    with pytest.raises(rasters.Cancelled):
        pipeline.map_landslides([example_pair.pre], [example_pair.post], folder, dem=example_pair.dem,
                                reference=example_pair.truth, step=step, is_cancelled=is_cancelled,
                                progress=progress)
    assert helper == [True] and stopped.is_set() and not _helpers_alive()
    assert not folder.exists() or list(folder.iterdir()) == []


def test_a_slope_error_beside_the_coregistration_reaches_the_user(example_pair, tmp_path, monkeypatch):
    from landslide_plugin.core import masks

    def broken_slope(*args, **kwargs):
        raise ValueError("the DEM could not be read")

    monkeypatch.setattr(masks, "write_slope", broken_slope)
    folder = tmp_path / "out"
    with pytest.raises(ValueError, match="the DEM could not be read"):
        pipeline.map_landslides([example_pair.pre], [example_pair.post], folder, dem=example_pair.dem,
                                reference=example_pair.truth)
    assert not _helpers_alive()
    assert not folder.exists() or list(folder.iterdir()) == []


def test_the_news_of_a_mixture_from_several_starts_lists_every_start(example_pair, tmp_path):
    """GMM from three seeds: its news gives the first start's clusters and table, then each further start's."""
    said = []
    options = pipeline.MappingOptions(methods=(pipeline.Method("gmm", 3, starts=3),), primary="gmm3")
    pipeline.map_landslides([example_pair.pre], [example_pair.post], tmp_path / "out", options,
                            dem=example_pair.dem, log=said.append)
    news = next(text for text in said if text.startswith("GMM 3: "))
    assert "landslide cluster" in news.split("\n")[0]
    starts = [line for line in news.split("\n") if line.startswith("start ")]
    assert [line.split(" (")[0] for line in starts] == ["start 2 of 3", "start 3 of 3"]
    assert all("a pixel is a landslide where any start's landslide clusters hold it" in line for line in starts)
