"""From an event (where, when) to a pre/post pair of Sentinel-2 L2A acquisitions.

A tile's catalogue cloud cover describes 110 km; the area of interest may be overcast under a "5 %"
tile. So each candidate is measured on its own scene classification (SCL): only the SCL_20m file of
the product (a few MB, not the 1 GB product) is fetched through the Nodes API and cached on disk; a
cached SCL is reused, never fetched again. The clear share is the share of the area of interest whose
SCL class is an observed surface (vegetation, bare soil, water, unclassified and, unless
``exclude_dark``, dark area / topographic shadow, where steep slopes and landslides are).

Candidates are acquisitions: every tile of one pass over the area (same sensing day and relative
orbit), after keeping only the newest processing baseline of each product (``copernicus.deduplicate``).
An area over several tiles is measured over all the tiles of that pass, mosaicked.

Ranking (``rank_post``, ``rank_pre``):
- post: the earliest acquisition after the event day with at least ``min_clear`` of the area clear;
- pre: before the event day, with at least ``min_clear`` clear, same relative orbit as the post image
  where possible (same viewing geometry), then closest to the post image's day of year (same season:
  harvest and seasonal drying are the main false positives), in the same or earlier years; ties go to the
  clearer, then the more recent one.

When the SCL of a product cannot be fetched or read, the tile cloud cover stands in for it and the
candidate says so (``source``, ``note``). Errors are one sentence with the fix: no clear candidate
(``NoClearImage``), no account (``copernicus.CdseAuthError``), service unreachable
(``copernicus.CdseUnreachable``). The client's ``is_cancelled`` stops every wait within a tenth of a second.
"""
from __future__ import annotations

import contextlib
import datetime
import logging
import math
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .copernicus import (
    CdseAuthError,
    CdseClient,
    CdseError,
    CdseUnreachable,
    Product,
    deduplicate,
)
from .rasters import Cancelled, IsCancelled, Progress, check_cancelled, report

LOG = logging.getLogger(__name__)

#: SCL classes of an observed surface: dark area / shadow (2), vegetation (4), not vegetated (5), water (6),
#: unclassified (7). Not clear: no data (0), saturated (1), cloud shadow (3), clouds (8, 9), cirrus (10), snow (11).
CLEAR_CLASSES = (2, 4, 5, 6, 7)

#: The measuring grid holds at most this many pixels (20 m, coarser for large areas).
MAX_MEASURE_PIXELS = 1_000_000

SCL_SUFFIX = "_SCL_20m.jp2"


class NoClearImage(ValueError):
    """No candidate with enough clear area (or none at all) in a search window."""


# -- candidates ------------------------------------------------------------------------------------------


@dataclass
class Acquisition:
    """The tiles of one pass over the area (one sensing day, one relative orbit) and their measures."""

    products: tuple[Product, ...]
    role: str                               # "pre" or "post"
    clear_share: float | None = None        # 0..1 of the area of interest clear (None: unknown)
    covered_share: float | None = None      # 0..1 of the area of interest with data at all (SCL only)
    source: str = ""                        # "SCL" or "tile cloud cover"
    note: str = ""                          # why the tile cloud cover was used
    eligible: bool = False                  # enough clear area
    rank: int | None = None                 # 1 = best among the eligible of its role
    chosen: bool = False
    season_days: int | None = None          # pre only: days between its day of year and the post image's
    same_orbit: bool | None = None          # pre only: same relative orbit as the post image
    reason: str = ""                        # why it was chosen or not

    @property
    def sensing_time(self) -> datetime.datetime:
        return min(p.date for p in self.products)

    @property
    def date(self) -> datetime.date:
        return self.sensing_time.date()

    @property
    def relative_orbit(self) -> int | None:
        return self.products[0].relative_orbit

    @property
    def tiles(self) -> tuple[str, ...]:
        return tuple(p.tile for p in self.products)

    @property
    def ids(self) -> str:
        """Comma-separated product Ids, as "Download Sentinel-2 L2A" takes them."""
        return ",".join(p.id for p in self.products)

    @property
    def names(self) -> str:
        return ",".join(p.name for p in self.products)

    @property
    def tile_cloud_cover(self) -> float | None:
        values = [p.cloud_cover for p in self.products if p.cloud_cover is not None]
        return sum(values) / len(values) if values else None

    def describe(self) -> str:
        clear = "?" if self.clear_share is None else f"{100 * self.clear_share:.0f} %"
        orbit = f"R{self.relative_orbit:03d}" if self.relative_orbit is not None else "R?"
        return (f"{self.date.isoformat()} {orbit} {'+'.join('T' + t for t in self.tiles)}: {clear} of the area clear "
                f"({self.source or 'not measured'})")


@dataclass
class EventPair:
    """The chosen acquisitions and every candidate with its measures, rank and reason."""

    pre: Acquisition
    post: Acquisition
    candidates: list[Acquisition]
    event_date: datetime.date
    min_clear: float
    notes: list[str] = field(default_factory=list)
    #: Products left out as older baselines of a listed acquisition, with the reason.
    left_out: list[tuple[Product, str]] = field(default_factory=list)

    def summary(self) -> str:
        """Which images were chosen and why, in a few lines (for the log and the report)."""
        lines = [
            f"Event {self.event_date.isoformat()}; minimum clear share of the area {100 * self.min_clear:.0f} %.",
            f"Post-event: {self.post.describe()}; {self.post.reason}.",
            f"Pre-event: {self.pre.describe()}; {self.pre.reason}.",
        ]
        fallback = [c for c in self.candidates if c.source != "SCL"]
        if fallback:
            lines.append(f"{len(fallback)} candidate(s) measured by tile cloud cover, their SCL being unavailable: "
                         + "; ".join(f"{c.date} ({c.note})" for c in fallback))
        lines += self.notes
        return "\n".join(lines)


# -- windows and grouping -----------------------------------------------------------------------------------


def as_date(value) -> datetime.date:
    if isinstance(value, datetime.datetime):
        return value.date()
    if isinstance(value, datetime.date):
        return value
    try:
        return datetime.date.fromisoformat(str(value).strip()[:10])
    except ValueError:
        raise ValueError(f"event date {value!r} is not a date; give it as YYYY-MM-DD") from None


def _years_back(day: datetime.date, years: int) -> datetime.date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February
        return day.replace(year=day.year - years, day=28)


def pre_windows(event: datetime.date, post: datetime.date, *, pre_days: int, pre_years: int,
                season_days: int) -> list[tuple[datetime.date, datetime.date]]:
    """Search windows (first day, last day, both included) for pre-event images, merged and sorted.

    The ``pre_days`` before the event, and for each of the ``pre_years`` previous years the ``season_days``
    either side of the post image's anniversary; nothing on or after the event day.
    """
    last = event - datetime.timedelta(days=1)
    windows = []
    if pre_days > 0:
        windows.append((event - datetime.timedelta(days=int(pre_days)), last))
    for years in range(1, int(pre_years) + 1):
        anniversary = _years_back(post, years)
        start = anniversary - datetime.timedelta(days=int(season_days))
        end = min(anniversary + datetime.timedelta(days=int(season_days)), last)
        if start <= end:
            windows.append((start, end))
    merged: list[tuple[datetime.date, datetime.date]] = []
    for start, end in sorted(windows):
        if merged and start <= merged[-1][1] + datetime.timedelta(days=1):
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def group_acquisitions(products: Iterable[Product], role: str) -> tuple[list[Acquisition], list[tuple[Product, str]]]:
    """One Acquisition per (sensing day, relative orbit), oldest first, newest baseline of each product.

    Returns the acquisitions and the reprocessed duplicates left out, each with the reason.
    """
    products = list(products)
    kept = deduplicate(products)
    notes = [(p, "left out: a newer processing baseline of the same acquisition is listed")
             for p in products if p not in kept]
    groups: dict[tuple, list[Product]] = {}
    for product in sorted(kept, key=lambda p: (p.date, p.tile)):
        groups.setdefault((product.date.date(), product.relative_orbit), []).append(product)
    return [Acquisition(tuple(group), role) for group in groups.values()], notes


def season_distance(a: datetime.date, b: datetime.date) -> int:
    """Days between the days of the year of ``a`` and ``b``, across the new year (0..182)."""
    days = abs(a.timetuple().tm_yday - b.timetuple().tm_yday)
    return min(days, 365 - days) if days <= 365 else 0


# -- ranking -------------------------------------------------------------------------------------------------


def _percent(share: float | None) -> str:
    return "?" if share is None else f"{100 * share:.0f} %"


def rank_post(candidates: Sequence[Acquisition], min_clear: float) -> Acquisition | None:
    """Mark eligibility and rank post-event candidates: earliest with enough clear area first."""
    eligible = []
    for candidate in candidates:
        candidate.eligible = candidate.clear_share is not None and candidate.clear_share >= min_clear
        candidate.rank, candidate.chosen = None, False
        if candidate.eligible:
            eligible.append(candidate)
        else:
            candidate.reason = (f"too little of the area clear ({_percent(candidate.clear_share)} < "
                                f"{100 * min_clear:.0f} %)")
    eligible.sort(key=lambda c: (c.sensing_time, -(c.clear_share or 0.0)))
    for rank, candidate in enumerate(eligible, start=1):
        candidate.rank = rank
        candidate.reason = "a later image with enough clear area" if rank > 1 else \
            "the earliest image after the event with enough clear area"
    if not eligible:
        return None
    eligible[0].chosen = True
    return eligible[0]


def rank_pre(candidates: Sequence[Acquisition], post: Acquisition, min_clear: float) -> Acquisition | None:
    """Mark eligibility and rank pre-event candidates: same orbit as ``post`` where possible, then closest
    to its day of year, then the clearer, then the more recent."""
    eligible = []
    for candidate in candidates:
        candidate.season_days = season_distance(candidate.date, post.date)
        candidate.same_orbit = candidate.relative_orbit == post.relative_orbit
        candidate.rank, candidate.chosen = None, False
        candidate.eligible = (candidate.clear_share is not None and candidate.clear_share >= min_clear
                              and candidate.date < post.date)
        if candidate.eligible:
            eligible.append(candidate)
        else:
            candidate.reason = (f"too little of the area clear ({_percent(candidate.clear_share)} < "
                                f"{100 * min_clear:.0f} %)")
    eligible.sort(key=lambda c: (not c.same_orbit, c.season_days, -(c.clear_share or 0.0),
                                 -c.sensing_time.timestamp()))
    for rank, candidate in enumerate(eligible, start=1):
        candidate.rank = rank
        orbit = "same relative orbit as the post image" if candidate.same_orbit else \
            f"another relative orbit (R{candidate.relative_orbit}) than the post image (R{post.relative_orbit})"
        days = candidate.season_days
        candidate.reason = f"{orbit}, {days} day{'s' if days != 1 else ''} from its day of year"
        if rank == 1:
            candidate.reason = "chosen: " + candidate.reason
    if not eligible:
        return None
    eligible[0].chosen = True
    return eligible[0]


# -- the SCL of a product, cached --------------------------------------------------------------------------


def scl_cache_path(cache_dir, product: Product) -> Path:
    return Path(cache_dir) / f"{product.stem}{SCL_SUFFIX}"


def fetch_scl(client: CdseClient, product: Product, cache_dir, *, is_cancelled: IsCancelled | None = None) -> Path:
    """The product's SCL_20m JPEG 2000 in ``cache_dir``: the cached file, or fetched alone and cached."""
    path = scl_cache_path(cache_dir, product)
    if path.is_file() and path.stat().st_size > 0:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    node, size = client.scl_node(product, is_cancelled=is_cancelled)
    return client.download_file(product, node, path, size=size, is_cancelled=is_cancelled)


# -- clear share over the area of interest -----------------------------------------------------------------


def aoi_geometry(aoi) -> dict:
    """The area of interest as a GeoJSON Polygon/MultiPolygon in lon/lat (a box's edges densified)."""
    if isinstance(aoi, dict):
        geometry = aoi.get("geometry", aoi) if aoi.get("type") == "Feature" else aoi
        if geometry.get("type") not in ("Polygon", "MultiPolygon"):
            raise ValueError(f"the area of interest must be a polygon or a box, not a {geometry.get('type')}")
        return geometry
    try:
        west, south, east, north = (float(v) for v in aoi)
    except (TypeError, ValueError):
        raise ValueError(f"the area of interest {aoi!r} is neither a (west, south, east, north) box nor a GeoJSON "
                         "polygon") from None
    if not (west < east and south < north):
        raise ValueError(f"the area of interest box {aoi!r} is empty: give (west, south, east, north) in degrees")
    steps = 16
    ring = []
    for (x0, y0), (x1, y1) in (((west, south), (east, south)), ((east, south), (east, north)),
                               ((east, north), (west, north)), ((west, north), (west, south))):
        ring += [(x0 + (x1 - x0) * k / steps, y0 + (y1 - y0) * k / steps) for k in range(steps)]
    ring.append(ring[0])
    return {"type": "Polygon", "coordinates": [ring]}


@dataclass(frozen=True)
class ClearShare:
    clear: float        # share of the area of interest clear
    covered: float      # share of the area of interest with data
    pixels: int         # pixels of the area of interest on the measuring grid


def aoi_clear_share(scl_paths: Sequence, aoi, *, clear_classes: Sequence[int] = CLEAR_CLASSES,
                    max_pixels: int = MAX_MEASURE_PIXELS) -> ClearShare:
    """Clear share of the area of interest (lon/lat box or GeoJSON polygon) from SCL rasters of one pass.

    The SCLs are mosaicked (first data wins) onto a grid over the area in the first one's CRS: 20 m, or
    coarser so that it holds at most ``max_pixels`` (a share, not a map, is wanted).
    """
    import rasterio
    from rasterio.enums import Resampling
    from rasterio.features import geometry_mask
    from rasterio.warp import reproject, transform_geom

    geometry = aoi_geometry(aoi)
    with rasterio.open(scl_paths[0]) as first:
        crs, origin = first.crs, first.transform
    local = transform_geom("EPSG:4326", crs, geometry)
    xs, ys = [], []
    polygons = [local["coordinates"]] if local["type"] == "Polygon" else local["coordinates"]
    for polygon in polygons:
        for x, y, *_ in polygon[0]:
            xs.append(x)
            ys.append(y)
    left, bottom, right, top = min(xs), min(ys), max(xs), max(ys)
    size = 20.0
    area = (right - left) * (top - bottom) / (size * size)
    if area > max_pixels:
        size *= math.ceil(math.sqrt(area / max_pixels))
    # Snap to the first SCL's grid, so that a small area is measured on the product's own pixels.
    left = origin.c + math.floor((left - origin.c) / size) * size
    top = origin.f - math.floor((origin.f - top) / size) * size
    width = max(1, math.ceil((right - left) / size))
    height = max(1, math.ceil((top - bottom) / size))
    from affine import Affine

    grid = Affine(size, 0.0, left, 0.0, -size, top)
    inside = geometry_mask([local], out_shape=(height, width), transform=grid, invert=True, all_touched=True)
    mosaic = np.zeros((height, width), dtype=np.uint8)
    for path in scl_paths:
        warped = np.zeros((height, width), dtype=np.uint8)
        with rasterio.open(path) as src:
            reproject(rasterio.band(src, 1), warped, src_nodata=0, dst_transform=grid, dst_crs=crs, dst_nodata=0,
                      resampling=Resampling.nearest)
        empty = mosaic == 0
        mosaic[empty] = warped[empty]
    total = int(np.count_nonzero(inside))
    if total == 0:
        return ClearShare(0.0, 0.0, 0)
    clear = int(np.count_nonzero(inside & np.isin(mosaic, np.asarray(clear_classes, dtype=np.uint8))))
    covered = int(np.count_nonzero(inside & (mosaic != 0)))
    return ClearShare(clear / total, covered / total, total)


def measure(client: CdseClient, candidate: Acquisition, aoi, cache_dir, *,
            clear_classes: Sequence[int] = CLEAR_CLASSES, is_cancelled: IsCancelled | None = None) -> Acquisition:
    """Fill ``candidate``'s clear share from its products' SCLs, or from their tile cloud cover when an SCL
    cannot be fetched or read (``source`` and ``note`` say so). Login problems and cancels are raised."""
    paths, problem = [], ""
    for product in candidate.products:
        check_cancelled(is_cancelled)
        try:
            paths.append(fetch_scl(client, product, cache_dir, is_cancelled=is_cancelled))
        except (Cancelled, CdseAuthError):
            raise
        except (CdseError, OSError, ValueError) as exc:
            problem = f"the SCL of {product.name} could not be fetched: {exc}"
            break
    if not problem:
        try:
            share = aoi_clear_share(paths, aoi, clear_classes=clear_classes)
        except Exception as exc:  # a corrupt cached file: drop it so the next run fetches it again
            for path in paths:
                with contextlib.suppress(OSError):
                    os.remove(path)
            problem = f"the SCL could not be read ({type(exc).__name__}: {exc})"
        else:
            candidate.clear_share, candidate.covered_share = share.clear, share.covered
            candidate.source, candidate.note = "SCL", ""
            return candidate
    cover = candidate.tile_cloud_cover
    candidate.clear_share = None if cover is None else max(0.0, 1.0 - cover / 100.0)
    candidate.covered_share = None
    candidate.source = "tile cloud cover"
    candidate.note = problem
    LOG.warning("%s; using the tile cloud cover instead", problem)
    return candidate


# -- the whole search ----------------------------------------------------------------------------------------


def _unreachable(client: CdseClient, exc: Exception) -> CdseUnreachable:
    return CdseUnreachable(
        f"The Copernicus Data Space cannot be reached ({exc}): check the internet connection or proxy (and "
        f"LANDSLIDE_CDSE_CATALOGUE_URL / LANDSLIDE_CDSE_DOWNLOAD_URL if set, now {client.settings.catalogue_url}), "
        "then run again.")


def find_event_pair(client: CdseClient, aoi, event_date, *, post_days: int = 30, pre_days: int = 60,
                    pre_years: int = 1, season_days: int = 45, min_clear: float = 0.7, cache_dir,
                    exclude_dark: bool = False, progress: Progress | None = None,
                    is_cancelled: IsCancelled | None = None,
                    log: Callable[[str], None] | None = None) -> EventPair:
    """Search, measure and rank pre- and post-event acquisitions over ``aoi`` for an event on ``event_date``.

    ``aoi``: a lon/lat box (west, south, east, north) or a GeoJSON polygon in lon/lat. Post candidates are
    sensed in the ``post_days`` after the event day; pre candidates in the ``pre_days`` before it and, for each
    of the ``pre_years`` previous years, within ``season_days`` of the post image's anniversary. ``min_clear``
    is a share (0..1). SCLs are cached in ``cache_dir``.
    """
    event = as_date(event_date)
    if not 0.0 <= float(min_clear) <= 1.0:
        raise ValueError(f"the minimum clear share {min_clear} must be between 0 and 1 (e.g. 0.7 for 70 %)")
    if int(post_days) < 1:
        raise ValueError(f"the post-event window of {post_days} days is empty; give at least 1 day")
    if int(pre_days) < 0 or int(pre_years) < 0 or int(season_days) < 0:
        raise ValueError("the pre-event windows (days before the event, years back, season days) cannot be negative")
    if int(pre_days) == 0 and int(pre_years) == 0:
        raise ValueError("no pre-event window: give days before the event or years back")
    say = log or (lambda text: None)
    clear_classes = tuple(c for c in CLEAR_CLASSES if not (exclude_dark and c == 2))
    aoi_geometry(aoi)  # a wrong area fails before any request
    if client.credentials is None:
        raise CdseAuthError(
            "Measuring the clear share of the area needs a Copernicus Data Space account (each candidate's scene "
            "classification is downloaded): choose an authentication configuration of type Basic (username and "
            "password), or set CDSE_USERNAME and CDSE_PASSWORD.")
    try:
        client.access_token(is_cancelled=is_cancelled)  # wrong credentials show before the searches
        post_start, post_end = event + datetime.timedelta(days=1), event + datetime.timedelta(days=int(post_days))
        say(f"Searching post-event images from {post_start} to {post_end}")
        found = client.search(aoi, post_start, post_end, is_cancelled=is_cancelled)
        report(progress, 5)
        posts, notes = group_acquisitions(found, "post")
        if not posts:
            raise NoClearImage(
                f"No Sentinel-2 L2A image over the area of interest was found from {post_start} to {post_end}; "
                "search a longer window after the event (more post-event days).")
        for index, candidate in enumerate(posts):
            measure(client, candidate, aoi, cache_dir, clear_classes=clear_classes, is_cancelled=is_cancelled)
            say(f"  post candidate {candidate.describe()}")
            report(progress, 5 + 40 * (index + 1) / len(posts))
        post = rank_post(posts, float(min_clear))
        if post is None:
            best = max(posts, key=lambda c: c.clear_share or 0.0)
            raise NoClearImage(
                f"No post-event image from {post_start} to {post_end} has at least {100 * min_clear:.0f} % of the "
                f"area of interest clear (the clearest, {best.date}, has {_percent(best.clear_share)}); search a "
                "longer window after the event or lower the minimum clear share.")

        windows = pre_windows(event, post.date, pre_days=int(pre_days), pre_years=int(pre_years),
                              season_days=int(season_days))
        pre_products: dict[str, Product] = {}
        for start, end in windows:
            say(f"Searching pre-event images from {start} to {end}")
            for product in client.search(aoi, start, end, is_cancelled=is_cancelled):
                pre_products.setdefault(product.id, product)
        report(progress, 50)
        pres, pre_notes = group_acquisitions(pre_products.values(), "pre")
        notes += pre_notes
        listing = ", ".join(f"{s} to {e}" for s, e in windows)
        if not pres:
            raise NoClearImage(
                f"No Sentinel-2 L2A image over the area of interest was found before the event ({listing}); "
                "search more days before the event or more years back.")
        for index, candidate in enumerate(pres):
            measure(client, candidate, aoi, cache_dir, clear_classes=clear_classes, is_cancelled=is_cancelled)
            say(f"  pre candidate {candidate.describe()}")
            report(progress, 50 + 45 * (index + 1) / len(pres))
        pre = rank_pre(pres, post, float(min_clear))
        if pre is None:
            best = max(pres, key=lambda c: c.clear_share or 0.0)
            raise NoClearImage(
                f"No pre-event image ({listing}) has at least {100 * min_clear:.0f} % of the area of interest clear "
                f"(the clearest, {best.date}, has {_percent(best.clear_share)}); search more days before the event "
                "or more years back, or lower the minimum clear share.")
    except CdseUnreachable as exc:
        raise _unreachable(client, exc) from None
    post.reason = "chosen: " + post.reason
    report(progress, 100)
    return EventPair(pre=pre, post=post, candidates=sorted(pres + posts, key=lambda c: c.sensing_time),
                     event_date=event, min_clear=float(min_clear),
                     notes=[f"{p.name} {reason}" for p, reason in notes], left_out=notes)


__all__ = ["Acquisition", "EventPair", "NoClearImage", "CLEAR_CLASSES", "aoi_clear_share", "fetch_scl",
           "find_event_pair", "group_acquisitions", "measure", "pre_windows", "rank_post", "rank_pre",
           "season_distance"]
