"""Which methods a one-step run makes from its settings: the names of its maps, in run order.

Pure Python, no numpy: the "Map landslides" dialog fills its primary-method drop-down from these names while the
user types (reading the cluster counts leniently), and the algorithm plans its run with them (reading the counts
strictly), so the two cannot disagree.
"""
from __future__ import annotations

from collections.abc import Iterable


def method_names(threshold: bool, kmeans: Iterable[int], gmm: Iterable[int], either: bool) -> list[str]:
    """'threshold', 'kmeans5', 'gmm5', 'either' ...: the threshold baseline when asked, each cluster count once,
    and 'either' (the pixels any clustering maps) with two or more clusterings - with one it would be that
    clustering's own map."""
    names = ["threshold"] if threshold else []
    for kind, counts in (("kmeans", kmeans), ("gmm", gmm)):
        names += [f"{kind}{int(count)}" for count in dict.fromkeys(int(c) for c in counts)]
    if either and sum(name != "threshold" for name in names) >= 2:
        names.append("either")
    return names
