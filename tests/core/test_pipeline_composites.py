"""The one-step run's composite options and the files it claims for them (the run itself: tests/processing)."""
from __future__ import annotations

import pytest

from landslide_plugin.core import pipeline


def test_composite_methods_are_checked_when_the_options_are_made():
    options = pipeline.MappingOptions(pre_composite="greenest", pair_summary="why")
    assert (options.pre_composite, options.post_composite, options.pair_summary) == ("greenest", "median", "why")
    with pytest.raises(ValueError, match="post_composite 'mean' is unknown; choose median or greenest"):
        pipeline.MappingOptions(post_composite="mean")


def test_a_composite_claims_its_clear_observation_count():
    methods = [pipeline.Method("threshold")]
    common = {"pre_is_stack": False, "post_has_scl": True, "pre_has_scl": True, "slope": False, "reference": False}
    plain = pipeline.planned_files(methods, "threshold", **common)
    assert not any("clear_count" in name for name in plain)
    both = pipeline.planned_files(methods, "threshold", pre_composite=True, post_composite=True, **common)
    assert sorted(set(both) - set(plain)) == ["post_clear_count.tif", "pre_clear_count.tif"]
    post = pipeline.planned_files(methods, "threshold", post_composite=True, **common)
    assert set(post) - set(plain) == {"post_clear_count.tif"}
