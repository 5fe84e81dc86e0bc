"""The one-step run tells what it is doing: named steps as they start, each method's news as soon as it is known."""
from __future__ import annotations

import threading

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
