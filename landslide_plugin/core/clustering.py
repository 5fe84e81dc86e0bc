"""Unsupervised change classes: K-means or a Gaussian mixture on pre/post-event features.

The model is fitted on a random sample of valid pixels (reservoir-sampled block by block, so a full
Sentinel-2 tile never sits in memory), then every block is predicted with the fitted model. Which
cluster holds the landslides is decided by a stated rule on the cluster centres
(:func:`select_landslide_cluster`), never by a cluster index: the cluster with the largest NDVI
decrease together with the largest bare-soil (BSI) increase.

The rasters are written by the detection pass (``detection.detect``, or ``detection.cluster_change``
for one clustering), all GeoTIFF on the grid of the pre-event stack:

- cluster raster, uint8: cluster id ``0..k-1`` for every analysed pixel; 255 (nodata) for pixels that
  were not analysed, whether they had no data (cloud, no-data, non-finite features) or were excluded
  by a mask rule (water, slope, land cover, ...). The landslide mask tells those two apart;
- landslide mask, uint8: 1 landslide cluster, 0 another cluster *or* excluded by a mask rule
  (the rule says "not a landslide here"), 255 no data (nodata=255);
- GMM only, probability, float32: posterior probability of the landslide cluster; 0 where a mask
  rule excluded the pixel, NaN (nodata) where there was no data.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from . import defaults, indices, masks

METHODS = ("kmeans", "gmm")

#: Default number of pixels the model is fitted on: 200 000 pixels x 6 features fit K-means and a
#: 3-component full-covariance mixture in seconds; a full tile has 30 million pixels (see
#: bench/bench_clustering.py for time and memory against fitting on every pixel).
DEFAULT_SAMPLE_SIZE = 200_000

NO_CLUSTER = 255

#: Rows per block: half of rasters.BLOCK_ROWS. A block's bands, indices, masks and features are some 40
#: block-size arrays; at 256 rows of a 5490-wide tile (1.4 M pixels) they stay near 300 MB, and
#: 256 divides the 512-row GeoTIFF tiles, so each tile row is decompressed for two blocks at most.
BLOCK_ROWS = 256

#: Pixels standardised and predicted at once (float64 copies of 262 144 x 6 features: 12 MB).
PREDICT_CHUNK = 1 << 18

#: Width of the surroundings of ``SelectionRule.local_max_dndvi`` (metres).
LOCAL_WINDOW_M = indices.LOCAL_CELL_M * indices.LOCAL_CELLS

NOT_LANDSLIDE_WARNING = ("no cluster shows vegetation loss with bare-soil gain; "
                         "the result is probably not landslides")


# ---------------------------------------------------------------------------------------------
# Selection of the landslide cluster
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SelectionRule:
    """Which clusters are landslides: every cluster whose centre lost vegetation, gained bare soil and
    brightened in the visible by at least these amounts (fresh scars expose bright soil and rock; burns,
    shadows and wet ground darken, seasonal browning and haze change less). Several clusters may qualify.
    """

    max_dndvi: float = -0.25
    min_dbsi: float = 0.1
    #: Applied when dVIS (mean visible reflectance change) is among the features.
    min_dvis: float = 0.02
    #: In a landslide cluster, only pixels whose own NDVI fell below this are landslides (None: all of them):
    #: the cluster tells the kind of change, this the size of the change at the pixel.
    pixel_max_dndvi: float | None = None
    #: In a landslide cluster, only pixels whose NDVI fell by more than that of their surroundings, by at least
    #: this much: dNDVI minus the median dNDVI of the observed land within about 800 m
    #: (``indices.LocalBackground``) must be below it (None: no such test). Season, drought, haze and sun
    #: angle change whole hillsides alike; a scar is a local loss.
    local_max_dndvi: float | None = None
    #: With ``local_max_dndvi``: a pixel also passes the local test when its visible reflectance rose by more
    #: than this beyond its surroundings' (dVIS minus their median) while it lost more NDVI than they did at
    #: all. Fresh soil and rock are brighter than the dry grass or litter around them, so a scar in a
    #: landscape that dried out between the dates still stands out in the visible (None: no such test).
    local_min_dvis: float | None = None
    #: In a landslide cluster, only pixels whose NDVI loss is at least this share of the strongest loss within
    #: ``indices.CORE_RADIUS_PX`` pixels (None: no such test). A pixel's change is its scar fraction times the
    #: scar core's change (linear mixing); 0.5 keeps the pixels at least half covered, as a map of scars
    #: (and an inventory rasterised onto the grid) counts them, and drops the blurred fringe outside a scar.
    min_core_fraction: float | None = None
    #: Only pixels at least this share of which the scar next to them covers, by linear unmixing of the bands
    #: (``indices.scar_cover``; None: no such test). Applied to every pixel the method maps, the local scar path's
    #: too. 0.5: a map of scars, and an inventory rasterised onto the grid, counts a pixel at least half covered;
    #: reflectance mixes linearly, so no allowance for mixing is needed, as it is for the NDVI ratio.
    min_scar_cover: float | None = None
    #: With ``min_core_fraction``: ``pixel_max_dndvi`` tests the strongest NDVI loss within
    #: ``indices.CORE_RADIUS_PX`` pixels (the scar's change) instead of the pixel's own. How much a scar changed is
    #: the scar's property; how much of a pixel it covers is the pixel's, and the core fraction and scar cover test
    #: that. Sparse shrub loses 0.15-0.2 NDVI where a scar covers it wholly, so a pixel half covered fails a test
    #: on its own loss however scar-like it is. The local test (``local_max_dndvi``) stays on the pixel's change.
    magnitude_at_core: bool = False
    #: Also a landslide, in a landslide cluster or not: an analysed pixel whose change beyond the median of its
    #: surroundings (as ``local_max_dndvi``) is scar-like - dNDVI below this, dBSI above ``min_dbsi`` and dVIS
    #: above ``min_dvis`` (None: no such path). Between a winter and a summer image the land greens up; a scar
    #: whose ground was leafless or snowy before hardly loses NDVI, but loses it against everything around it.
    local_scar_dndvi: float | None = None
    #: Also a landslide, after every other test: an analysed pixel the pre-event image saw under snow (NDSI before
    #: above ``snow_ndsi``) whose NDVI after is below the median NDVI after of the land within about 800 m by more
    #: than this (a negative number; None: no such path) and whose BSI after is above theirs by ``min_dbsi``:
    #: bare ground on a slope that is green after. Under snow the pre image cannot show what was lost, and the
    #: change tests cannot see a scar there; the post image still can. A rock outcrop that was snowy before looks
    #: the same (``snow_min_ndvi_pre`` keeps most out), and the log says so.
    snow_scar_ndvi: float | None = None
    #: Pre-event NDSI above which ``snow_scar_ndvi`` applies: snow-free land is below about -0.2, a thin or patchy
    #: snow cover (a third of the ground) reaches about 0.
    snow_ndsi: float = defaults.SNOW_NDSI
    #: ... and the NDVI the pre image must still show through that snow: snow mixes in with an NDVI of about 0, so
    #: vegetation under a thin cover shows 0.1-0.3 and bare rock less (the masks' ``snow_min_ndvi_pre``).
    snow_min_ndvi_pre: float = defaults.SNOW_MIN_NDVI_PRE
    #: With ``local_min_dvis`` and the local anomalies among the fitted features: a cluster also qualifies when its
    #: centre is ``local_min_dvis`` brighter than the surroundings while it lost NDVI and gained BSI beyond them.
    centre_local_vis: bool = False
    #: When no cluster meets the rule, fall back to every cluster that lost vegetation, gained bare soil
    #: and did not darken (the pixel rule above still applies); False: map nothing.
    fallback: bool = False

    def describe(self, feature_names: Sequence[str] | None = None) -> str:
        """The rule in words; given the fitted features, without the parts those features cannot use."""
        text = (f"landslide clusters = every cluster whose centre has dNDVI <= {self.max_dndvi:g}, "
                f"dBSI >= {self.min_dbsi:g} and (with dVIS) dVIS >= {self.min_dvis:g}")
        centre_local = feature_names is None or "dVIS" + indices.LOCAL_SUFFIX in feature_names
        if self.centre_local_vis and self.local_min_dvis is not None and centre_local:
            text += (f", or (clustered on the change beyond the surroundings) whose centre's mean visible reflectance "
                     f"change is more than {self.local_min_dvis:g} above the median of the land within "
                     f"{LOCAL_WINDOW_M:g} m, with dNDVI below and dBSI above it (brighter and barer than the "
                     "median: fresh soil among grass that dried)")
        if self.fallback:
            text += " (if none: every cluster with dNDVI < 0, dBSI > 0 and dVIS >= 0)"
        if self.pixel_max_dndvi is not None and self.magnitude_at_core and self.min_core_fraction is not None:
            text += (f"; in them, pixels within {indices.CORE_RADIUS_PX} px of a loss to dNDVI < "
                     f"{self.pixel_max_dndvi:g} (the scar's change; how much of the pixel it covers is tested below)")
        elif self.pixel_max_dndvi is not None:
            text += f"; in them, pixels with dNDVI < {self.pixel_max_dndvi:g}"
        if self.local_max_dndvi is not None:
            text += (f"{'' if self.pixel_max_dndvi is not None else '; in them, pixels'} whose dNDVI is more than "
                     f"{-self.local_max_dndvi:g} below the median dNDVI of the land within {LOCAL_WINDOW_M:g} m")
            why = "a scar is a local loss; season, drought, haze and sun angle change whole hillsides"
            if self.local_min_dvis is not None:
                text += (f", or whose mean visible reflectance change is more than {self.local_min_dvis:g} above "
                         "the median there with dNDVI below the median")
                why += "; fresh soil and rock are brighter than dried grass"
            text += f" ({why})"
        if self.local_scar_dndvi is not None:
            text += (f"; and, in any cluster, every pixel whose change beyond the median of the land within "
                     f"{LOCAL_WINDOW_M:g} m is dNDVI < {self.local_scar_dndvi:g}, dBSI > {self.min_dbsi:g} and dVIS > "
                     f"{self.min_dvis:g} (a scar on ground that was leafless or snowy before, in land that greened up)")
        if self.min_core_fraction is not None:
            text += (f"; and whose NDVI loss is at least {self.min_core_fraction:g} of the strongest loss within "
                     f"{indices.CORE_RADIUS_PX} px (a pixel at least half covered by the scar next to it, not its "
                     "blurred fringe)")
        if self.min_scar_cover is not None:
            text += (f"; and, of every pixel mapped, only those at least {self.min_scar_cover:g} covered by the scar "
                     f"next to them (linear unmixing of the bands between the pixel's own reflectance before and the "
                     f"reflectance after of the strongest NDVI loss within {indices.CORE_RADIUS_PX} px, masked pixels "
                     "included: beside a cloud that is the cloud; reflectance mixes linearly within a pixel)")
        if self.snow_scar_ndvi is not None:
            text += (f"; and, under snow before (NDSI before > {self.snow_ndsi:g}, NDVI before >= "
                     f"{self.snow_min_ndvi_pre:g}: vegetation showing through), every pixel whose NDVI after is "
                     f"more than {-self.snow_scar_ndvi:g} below and BSI after more than {self.min_dbsi:g} above the "
                     f"median of the land within {LOCAL_WINDOW_M:g} m (bare ground in land that is green after: the "
                     "pre image cannot show what the snow hid; a rock outcrop snowy before looks the same)")
        return text


def describe_features(names: Sequence[str]) -> str:
    """Fitted features in words: their names, and what a local anomaly ("dNDVI_local") is when there is one."""
    text = ", ".join(names)
    if any(indices.local_base(n) for n in names):
        text += f" ({indices.LOCAL_SUFFIX}: the change minus the median of the land within {LOCAL_WINDOW_M:g} m)"
    return text


@dataclass
class ClusterSelection:
    """The numbers behind the choice of the landslide cluster, one entry per cluster.

    ``dndvi`` and ``dbsi`` are the centres' NDVI and BSI changes (post - pre); ``score`` is
    z(-dNDVI) + z(dBSI), the z-scores taken across clusters; ``eligible`` marks clusters that lost
    vegetation (dNDVI < 0) and gained bare soil (dBSI > 0). ``chosen`` is the eligible cluster with
    the highest score; when no cluster is eligible it is the highest-scoring cluster and
    ``plausible`` is False (``warning`` says so).
    """

    dndvi: np.ndarray
    dbsi: np.ndarray
    score: np.ndarray
    eligible: np.ndarray
    chosen: int
    plausible: bool
    fractions: np.ndarray | None = None
    centres: np.ndarray | None = None
    feature_names: tuple[str, ...] = ()
    #: Every landslide cluster (the stated rule may choose several); ``chosen`` is the best of them.
    chosen_all: tuple[int, ...] = ()
    rule: SelectionRule | None = None

    @property
    def warning(self) -> str | None:
        if self.rule is not None and not self.chosen_all:
            return (f"no cluster shows a landslide-sized change ({self.rule.describe(self.feature_names or None)}): "
                    "this method maps no landslide here")
        return None if self.plausible else NOT_LANDSLIDE_WARNING

    def rows(self) -> list[dict]:
        """One dict per cluster (for logs, reports and tests)."""
        rows = []
        for k in range(len(self.score)):
            row = {"cluster": k}
            if self.fractions is not None:
                row["fraction"] = float(self.fractions[k])
            if self.centres is not None:
                row.update({name: float(v) for name, v in zip(self.feature_names, self.centres[k])})
            for name, values in (("dNDVI", self.dndvi), ("dBSI", self.dbsi)):
                # a change the centres do not show (NDVI of both dates fitted): post - pre; a fitted local anomaly
                # is shown under its own name only, not again as if it were the change itself
                if self.centres is None or not {name, name + indices.LOCAL_SUFFIX} & set(self.feature_names):
                    row[name] = float(values[k])
            row.update(score=float(self.score[k]), eligible=bool(self.eligible[k]),
                       landslide=(k in self.chosen_all) if self.rule is not None else k == self.chosen)
            rows.append(row)
        return rows

    def format(self) -> str:
        """A plain-text table of :meth:`rows`, for a log."""
        rows = self.rows()
        keys = list(rows[0])
        cells = [[_cell(r[k]) for k in keys] for r in rows]
        widths = [max(len(k), *(len(c[i]) for c in cells)) for i, k in enumerate(keys)]
        lines = ["  ".join(k.rjust(w) for k, w in zip(keys, widths))]
        lines += ["  ".join(c.rjust(w) for c, w in zip(cell, widths)) for cell in cells]
        if self.rule is not None:
            lines.append("rule: " + self.rule.describe(self.feature_names or None))
        else:
            lines.append("rule: landslide cluster = highest z(-dNDVI) + z(dBSI) among clusters with "
                         "dNDVI < 0 and dBSI > 0")
        if self.warning:
            lines.append("WARNING: " + self.warning)
        return "\n".join(lines)


def _cell(value) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3f}" if value == value else "nan"
    return str(value)


def change_centres(centres: np.ndarray, feature_names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Per-cluster dNDVI and dBSI from centres: the dNDVI/dBSI features if present, else post - pre."""
    centres = np.asarray(centres, dtype=np.float64)
    names = list(feature_names)

    def column(name):
        # a local anomaly ("dNDVI_local") stands for its change when the change itself is not fitted
        for key in (name, name + indices.LOCAL_SUFFIX):
            if key in names:
                return centres[:, names.index(key)]
        return None

    dndvi = column("dNDVI")
    if dndvi is None and "NDVI_pre" in names and "NDVI_post" in names:
        dndvi = column("NDVI_post") - column("NDVI_pre")
    dbsi = column("dBSI")
    if dbsi is None and "BSI_pre" in names and "BSI_post" in names:
        dbsi = column("BSI_post") - column("BSI_pre")
    if dndvi is None or dbsi is None:
        raise ValueError(
            f"features {', '.join(names)} do not tell vegetation loss and bare-soil gain apart; the landslide "
            "cluster is chosen from dNDVI and dBSI: include dNDVI and dBSI, or NDVI and BSI of both dates")
    return dndvi, dbsi


def select_landslide_cluster(
    centres: np.ndarray,
    feature_names: Sequence[str],
    fractions: np.ndarray | None = None,
    rule: SelectionRule | None = None,
) -> tuple[int, ClusterSelection]:
    """Index of the landslide cluster and the table behind the choice (see :class:`ClusterSelection`).

    Independent of the order of the clusters: permuting the rows of ``centres`` permutes the
    result the same way.
    """
    centres = np.asarray(centres, dtype=np.float64)
    if centres.ndim != 2 or centres.shape[0] < 2 or centres.shape[1] != len(feature_names):
        raise ValueError(f"centres must be (clusters >= 2, {len(feature_names)} features); got {centres.shape}")
    dndvi, dbsi = change_centres(centres, feature_names)
    score = _zscore(-dndvi) + _zscore(dbsi)
    eligible = (dndvi < 0) & (dbsi > 0)
    plausible = bool(eligible.any())
    candidates = np.where(eligible, score, -np.inf) if plausible else score
    # argmax takes the first of equal scores: break ties by the larger NDVI drop so the choice does
    # not depend on cluster order.
    best = np.flatnonzero(candidates == candidates.max())
    chosen = int(best[np.argmin(dndvi[best])])
    chosen_all = (chosen,)
    if rule is not None:
        names = list(feature_names)
        eligible = (dndvi <= rule.max_dndvi) & (dbsi >= rule.min_dbsi)
        dvis = _column(centres, names, "dVIS")
        if dvis is not None:
            eligible &= dvis >= rule.min_dvis
        local_dvis = _column(centres, names, "dVIS" + indices.LOCAL_SUFFIX, plain=True)
        if rule.local_min_dvis is not None and local_dvis is not None and rule.centre_local_vis:
            # the pixel rule's local visible alternative at the centre, with bare soil gained: brighter than the
            # surroundings while losing vegetation and gaining bare soil beyond them (fresh soil and rock among grass
            # that dried between the dates)
            eligible |= ((local_dvis >= rule.local_min_dvis) & (_column(centres, names, "dNDVI_local", plain=True) < 0)
                         & (_column(centres, names, "dBSI_local", plain=True) > 0))
        chosen_all = tuple(int(k) for k in np.argsort(-score) if eligible[k])
        if not chosen_all and rule.fallback:
            # No cluster is landslide-sized as a whole (scars a small share of a mixed cluster): take the
            # clusters that lost vegetation, gained bare soil and did not darken; the pixel rule still applies.
            loose = (dndvi < 0) & (dbsi > 0)
            if dvis is not None:
                loose &= dvis >= 0
            chosen_all = tuple(int(k) for k in np.argsort(-score) if loose[k])
        plausible = bool(chosen_all)
        if chosen_all:
            chosen = chosen_all[0]
    selection = ClusterSelection(
        dndvi=dndvi, dbsi=dbsi, score=score, eligible=eligible, chosen=chosen, plausible=plausible,
        fractions=None if fractions is None else np.asarray(fractions, dtype=np.float64),
        centres=centres, feature_names=tuple(feature_names), chosen_all=chosen_all, rule=rule)
    return chosen, selection


def _column(centres: np.ndarray, names: list[str], name: str, plain: bool = False) -> np.ndarray | None:
    """A centre column by feature name, or by its local anomaly ("dVIS_local") when only that is fitted."""
    for key in (name,) if plain else (name, name + indices.LOCAL_SUFFIX):
        if key in names:
            return centres[:, names.index(key)]
    return None


def _zscore(values: np.ndarray) -> np.ndarray:
    std = values.std()
    if not np.isfinite(std) or std == 0:
        return np.zeros_like(values)
    return (values - values.mean()) / std


# ---------------------------------------------------------------------------------------------
# Fitting and prediction
# ---------------------------------------------------------------------------------------------
@dataclass
class ClusterModel:
    """A fitted clustering: configuration, scaler, estimator, centres and the landslide choice.

    ``centres`` are in the original feature units (clusters x features), so a user can read them
    (NDVI 0.6 -> 0.1 ...). ``landslide_cluster`` was chosen by :func:`select_landslide_cluster`;
    ``selection`` holds its numbers.
    """

    method: str
    n_clusters: int
    feature_names: tuple[str, ...]
    mean: np.ndarray
    std: np.ndarray
    estimator: object
    centres: np.ndarray
    landslide_cluster: int
    selection: ClusterSelection
    sample_size: int
    seed: int
    #: Only pixels whose NDVI dropped below this are clustered (None: every analysed pixel).
    candidates_below: float | None = None

    @property
    def landslide_clusters(self) -> tuple[int, ...]:
        return self.selection.chosen_all or ((self.landslide_cluster,) if self.selection.rule is None else ())

    def candidates(self, features: dict[str, np.ndarray]) -> np.ndarray | None:
        """True where a pixel is clustered (its NDVI dropped enough); None when every pixel is."""
        if self.candidates_below is None:
            return None
        with np.errstate(invalid="ignore"):
            return np.asarray(features["dNDVI"]).reshape(-1) < self.candidates_below

    def _columns(self, features: dict[str, np.ndarray]) -> tuple[list[np.ndarray], tuple[int, ...]]:
        missing = [n for n in self.feature_names if n not in features]
        if missing:
            raise ValueError(f"features {', '.join(missing)} missing; the model was fitted on "
                             f"{', '.join(self.feature_names)}")
        shape = np.shape(features[self.feature_names[0]])
        columns = [np.asarray(features[n]).reshape(-1) for n in self.feature_names]
        if any(c.size != columns[0].size for c in columns):
            raise ValueError("features of one block differ in size")
        return columns, shape

    def _apply(self, features: dict[str, np.ndarray], fill, dtype, function) -> np.ndarray:
        """``function`` on the standardised pixels with every feature finite, in chunks of PREDICT_CHUNK
        pixels so the float64 copies scikit-learn works on stay small whatever the block size."""
        columns, shape = self._columns(features)
        out = np.full(columns[0].size, fill, dtype=dtype)
        for start in range(0, out.size, PREDICT_CHUNK):
            chunk = np.stack([c[start:start + PREDICT_CHUNK] for c in columns], axis=1).astype(np.float64)
            valid = np.isfinite(chunk).all(axis=1)
            if valid.any():
                scaled = (chunk[valid] - self.mean) / self.std
                out[start:start + PREDICT_CHUNK][valid] = function(scaled)
        return out.reshape(shape)

    def predict(self, features: dict[str, np.ndarray]) -> np.ndarray:
        """Cluster id (uint8) of every pixel; 255 where any feature is not finite or the pixel is no candidate."""
        return self.predict_with_probability(features)[0]

    def probability(self, features: dict[str, np.ndarray]) -> np.ndarray | None:
        """GMM posterior probability of the landslide cluster (float32, NaN where a feature is not finite).

        None for K-means, which has no probabilities.
        """
        return self.predict_with_probability(features)[1]

    def predict_with_probability(self, features: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
        """Cluster ids (255: not clustered) and, for a mixture, the landslide probability (the posteriors
        of the landslide clusters summed; 0 where a pixel is not a candidate), from one pass: a
        mixture's predict() is the argmax of the same posteriors predict_proba() gives.
        """
        columns, shape = self._columns(features)
        candidates = self.candidates(features)
        labels = np.full(columns[0].size, NO_CLUSTER, dtype=np.uint8)
        probability = np.full(columns[0].size, np.nan, dtype=np.float32) if self.method == "gmm" else None
        chosen = list(self.landslide_clusters)
        for start in range(0, labels.size, PREDICT_CHUNK):
            chunk = np.stack([c[start:start + PREDICT_CHUNK] for c in columns], axis=1).astype(np.float64)
            valid = np.isfinite(chunk).all(axis=1)
            if candidates is not None:
                if probability is not None:
                    probability[start:start + PREDICT_CHUNK][valid] = 0.0
                valid &= candidates[start:start + PREDICT_CHUNK]
            if not valid.any():
                continue
            scaled = (chunk[valid] - self.mean) / self.std
            if probability is None:
                labels[start:start + PREDICT_CHUNK][valid] = self.estimator.predict(scaled)
                continue
            posteriors = self.estimator.predict_proba(scaled)
            labels[start:start + PREDICT_CHUNK][valid] = posteriors.argmax(axis=1)
            probability[start:start + PREDICT_CHUNK][valid] = posteriors[:, chosen].sum(axis=1) if chosen else 0.0
        return labels.reshape(shape), (probability.reshape(shape) if probability is not None else None)

    def summary(self) -> str:
        name = {"kmeans": "K-means", "gmm": "Gaussian mixture"}[self.method]
        return (f"{name}, {self.n_clusters} clusters on {', '.join(self.feature_names)}, fitted on "
                f"{self.sample_size} pixels (seed {self.seed}); landslide cluster {self.landslide_cluster}\n"
                + self.selection.format())


def fit_clusters(
    samples: np.ndarray,
    feature_names: Sequence[str],
    *,
    method: str = "kmeans",
    n_clusters: int = 3,
    seed: int = 0,
    rule: SelectionRule | None = None,
    candidates_below: float | None = None,
    candidate_values: np.ndarray | None = None,
) -> ClusterModel:
    """Fit K-means ("kmeans") or a full-covariance Gaussian mixture ("gmm") on standardised samples.

    ``samples`` is (pixels, features) in original units; rows with a non-finite value are dropped.
    Each feature is standardised with the samples' mean and standard deviation so that NDVI and BSI
    weigh the same. Raises ValueError when the samples cannot support ``n_clusters`` clusters.
    """
    feature_names = tuple(feature_names)
    method = method.lower()
    if method not in METHODS:
        raise ValueError(f"method '{method}' unknown; use one of {', '.join(METHODS)}")
    n_clusters = int(n_clusters)
    if not 2 <= n_clusters < NO_CLUSTER:
        raise ValueError(f"number of clusters must be between 2 and {NO_CLUSTER - 1}; got {n_clusters}")
    samples = np.asarray(samples, dtype=np.float64)
    if samples.ndim != 2 or samples.shape[1] != len(feature_names):
        raise ValueError(f"samples must be (pixels, {len(feature_names)}) for features "
                         f"{', '.join(feature_names)}; got shape {samples.shape}")
    finite = np.isfinite(samples).all(axis=1)
    samples = samples[finite]
    if candidates_below is not None:
        if candidate_values is not None:  # the raw dNDVI of each sample row (features fitted as local anomalies)
            dndvi = np.asarray(candidate_values, dtype=np.float64)[finite]
        elif "dNDVI" in feature_names:
            dndvi = samples[:, feature_names.index("dNDVI")]
        else:
            raise ValueError("clustering only the pixels that lost vegetation needs the dNDVI feature")
        with np.errstate(invalid="ignore"):
            samples = samples[dndvi < candidates_below]
        if samples.shape[0] < 10 * n_clusters:
            raise NoCandidates(f"only {samples.shape[0]} sampled pixels lost vegetation (NDVI change below "
                               f"{candidates_below:g}): too few to cluster, so this method maps no landslide")
    if samples.shape[0] == 0:
        raise ValueError("no valid pixels to fit the clusters on")
    if samples.shape[0] < 10 * n_clusters:
        raise ValueError(f"only {samples.shape[0]} valid pixels: too few to form {n_clusters} clusters (at least "
                         f"{10 * n_clusters}); use a larger area, fewer clusters or relax the masks")
    mean = samples.mean(axis=0)
    std = samples.std(axis=0)
    if not (std > 1e-9).any():
        raise ValueError("features are constant; the images may be identical or empty")
    std = np.where(std > 1e-9, std, 1.0)  # a constant feature carries no information: leave it at 0
    scaled = (samples - mean) / std
    distinct = len(np.unique(scaled.astype(np.float32), axis=0)[:n_clusters])
    if distinct < n_clusters:
        raise ValueError(f"only {distinct} distinct feature values among {samples.shape[0]} valid pixels; "
                         f"cannot form {n_clusters} clusters (use fewer clusters or a larger area)")

    if method == "kmeans":
        from sklearn.cluster import KMeans

        estimator = KMeans(n_clusters=n_clusters, n_init=4, random_state=seed)
        estimator.fit(scaled)
        scaled_centres = estimator.cluster_centers_
    else:
        from sklearn.mixture import GaussianMixture

        # reg_covar keeps a component on a tight group of nearly identical pixels (water, shadow)
        # from collapsing to a singular covariance.
        estimator = GaussianMixture(n_components=n_clusters, covariance_type="full", n_init=2,
                                    reg_covar=1e-4, random_state=seed)
        estimator.fit(scaled)
        scaled_centres = estimator.means_
    labels = estimator.predict(scaled)
    fractions = np.bincount(labels, minlength=n_clusters) / labels.size
    centres = scaled_centres * std + mean
    chosen, selection = select_landslide_cluster(centres, feature_names, fractions, rule)
    return ClusterModel(method=method, n_clusters=n_clusters, feature_names=feature_names, mean=mean, std=std,
                        estimator=estimator, centres=centres, landslide_cluster=chosen, selection=selection,
                        sample_size=int(samples.shape[0]), seed=int(seed), candidates_below=candidates_below)


def best_landslide_cluster(model: ClusterModel | None) -> int:
    """The best landslide cluster of a fitted model; -1 when there is none (or no model)."""
    if model is None or not model.landslide_clusters:
        return -1
    return model.landslide_cluster


class NoCandidates(ValueError):
    """Too few pixels lost vegetation to cluster them: the method maps nothing (not an error of the run)."""


class ReservoirSample:
    """A uniform random sample of at most ``size`` rows from rows offered block by block.

    Every offered row gets a random key; the sample is the ``size`` rows with the smallest keys
    (bottom-k sampling), so memory stays at ``size`` rows whatever the raster size and the same seed
    with the same blocks gives the same sample.
    """

    def __init__(self, size: int, n_features: int, seed: int = 0):
        if size < 1:
            raise ValueError(f"sample size must be at least 1; got {size}")
        self.size = int(size)
        self.rng = np.random.default_rng(seed)
        self.keys = np.empty(0, dtype=np.float64)
        self.rows = np.empty((0, n_features), dtype=np.float32)
        self.seen = 0

    def offer(self, rows: np.ndarray) -> None:
        if rows.shape[0] == 0:
            return
        self.seen += rows.shape[0]
        keys = self.rng.random(rows.shape[0])
        if self.keys.size + keys.size <= self.size:
            self.keys = np.concatenate([self.keys, keys])
            self.rows = np.concatenate([self.rows, rows.astype(np.float32)])
            return
        # only the offered rows that can enter the sample are copied
        threshold = self.keys.max() if self.keys.size >= self.size else np.inf
        take = keys < threshold
        keys = np.concatenate([self.keys, keys[take]])
        rows = np.concatenate([self.rows, rows[take].astype(np.float32)])
        if keys.size > self.size:
            keep = np.argpartition(keys, self.size - 1)[: self.size]
            keep.sort()
            keys, rows = keys[keep], rows[keep]
        self.keys, self.rows = keys, rows


# ---------------------------------------------------------------------------------------------
# Rasters: fit on a sample of a pre/post pair, predict block by block
# ---------------------------------------------------------------------------------------------
@dataclass
class ClusterResult:
    """What :func:`cluster_change` wrote and the numbers to report.

    ``cluster_counts[k]`` pixels of cluster k; ``removed`` pixels per mask reason (keys of
    ``masks.REASONS``: no_data, scl, dark, water, no_dem, slope, exclusion, not_vegetated), each pixel
    under the first reason that removed it.
    """

    #: None when too few pixels lost vegetation to cluster (``note`` says so; nothing is mapped).
    model: ClusterModel | None
    cluster_counts: list[int]
    landslide_pixels: int
    analysed_pixels: int
    total_pixels: int
    removed: dict[str, int]
    cluster_path: str
    mask_path: str
    probability_path: str | None = None
    masks_description: str = ""
    note: str = ""

    @property
    def landslide_cluster(self) -> int:
        return best_landslide_cluster(self.model)

    @property
    def warning(self) -> str | None:
        return self.note or (self.model.selection.warning if self.model is not None else None)

    def removed_summary(self) -> str:
        parts = [f"{n} {REASON_LABELS.get(r, r)}" for r, n in self.removed.items() if n]
        return ", ".join(parts) or "none"


#: How each mask reason reads in a message (``masks.REASON_LABELS``).
REASON_LABELS = masks.REASON_LABELS
