"""Which methods a one-step run makes: the one plan the dialog's drop-down and the algorithm share."""
from __future__ import annotations

from landslide_plugin.core.method_plan import method_names


def test_the_run_makes_the_threshold_each_count_once_and_either_with_two_clusterings():
    assert method_names(True, [5], [5], True) == ["threshold", "kmeans5", "gmm5", "either"]
    assert method_names(False, [3, 2, 3], [], False) == ["kmeans3", "kmeans2"]
    # one clustering: "either" would be that clustering's own map, so it is not made
    assert method_names(True, [], [5], True) == ["threshold", "gmm5"]
    assert method_names(False, [], [], True) == []
