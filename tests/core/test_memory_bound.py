"""Memory bounded by the plugin itself: GDAL's block cache is bounded while a run works, and given back after."""
from __future__ import annotations

import pytest

from landslide_plugin.core import pipeline, rasters


def test_a_run_bounds_gdals_cache_while_it_works_and_restores_it_when_cancelled(example_pair, tmp_path):
    before = rasters.gdal_cache_max_bytes()
    seen = []

    def cancel_when_co_registering(n, count, title):
        seen.append((title, rasters.gdal_cache_max_bytes()))
        if title.startswith("Co-registering"):
            raise rasters.Cancelled("cancelled by the user")

    with pytest.raises(rasters.Cancelled):
        pipeline.map_landslides([example_pair.pre], [example_pair.post], tmp_path / "out",
                                step=cancel_when_co_registering)
    bound = min(before, rasters.GDAL_CACHE_BOUND_MB * 2**20)
    assert [title for title, _ in seen][:2] == ["Checking the inputs and the output folder",
                                                "Preparing the pre-event image"]
    assert {cache for _, cache in seen} == {bound}
    assert rasters.gdal_cache_max_bytes() == before
