"""Search and download Sentinel-2 L2A products from the Copernicus Data Space Ecosystem (CDSE).

Follows the service contract in the project notes (copernicus-api.md): Keycloak password/refresh
tokens, the OData catalogue (no authentication) and the download host (Bearer token). Downloads
stream to ``.part`` files, resume with byte ranges, verify MD5 and appear under their final name only
when complete. Every wait honours a cancel within about a tenth of a second: back-offs sleep in
slices, requests run in a helper thread the caller stops waiting for, and a stalled download has its
socket shut down (``CdseClient(..., is_cancelled=...)`` or the ``is_cancelled`` of each call; a cancel
raises ``rasters.Cancelled``). Base URLs are settings (``CdseSettings``); ``CdseSettings.from_env()`` reads
``LANDSLIDE_CDSE_TOKEN_URL``, ``LANDSLIDE_CDSE_CATALOGUE_URL`` and ``LANDSLIDE_CDSE_DOWNLOAD_URL`` so
tests and private mirrors can point the plugin elsewhere. Credentials and tokens live in memory only
and never reach logs, reprs or files.
"""
from __future__ import annotations

import concurrent.futures
import contextlib
import datetime
import hashlib
import json
import logging
import os
import re
import shutil
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import requests

from .rasters import Cancelled, IsCancelled, Progress, check_cancelled, report

LOG = logging.getLogger(__name__)

DEFAULT_TOKEN_URL = (  # nosec B105 # the public URL of the token endpoint, not a password
    "https://identity.dataspace.copernicus.eu/auth/realms/CDSE/protocol/openid-connect/token")
DEFAULT_CATALOGUE_URL = "https://catalogue.dataspace.copernicus.eu/odata/v1"
DEFAULT_DOWNLOAD_URL = "https://download.dataspace.copernicus.eu/odata/v1"

#: The bands the landslide pipeline reads (20 m); SCL is always fetched with them.
PIPELINE_BANDS = ("B02", "B03", "B04", "B8A", "B11", "B12")
#: Every band a Level-2A product holds at 20 m.
BANDS_20M = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B8A", "B11", "B12")

#: The service allows four concurrent connections per user.
MAX_CONNECTIONS = 4

#: Seconds between two looks at the cancel callback while waiting (back-offs, requests, stalled reads).
CANCEL_POLL = 0.1

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_NAME = re.compile(
    r"^(?P<mission>S2[A-D])_MSIL2A_(?P<sensing>\d{8}T\d{6})_N(?P<baseline>\d{4})_R(?P<orbit>\d{3})_"
    r"T(?P<tile>\d{2}[A-Z]{3})_(?P<processed>\d{8}T\d{6})(?:\.SAFE)?$")


class CdseError(RuntimeError):
    """The Copernicus Data Space refused or failed a request; the message says what and what to do."""


class CdseAuthError(CdseError):
    """Login failed (wrong credentials, missing two-factor code)."""


class CdseUnreachable(CdseError):
    """The service could not be reached at all (no connection, DNS failure, timeouts on every retry)."""


# -- settings and credentials ---------------------------------------------------------------------


@dataclass(frozen=True)
class CdseSettings:
    """Where the service lives and how hard to try. Defaults are the real CDSE endpoints."""

    token_url: str = DEFAULT_TOKEN_URL
    catalogue_url: str = DEFAULT_CATALOGUE_URL
    download_url: str = DEFAULT_DOWNLOAD_URL
    client_id: str = "cdse-public"
    #: Seconds to wait for a connection or for the next bytes of a response.
    timeout: float = 60.0
    #: Retries of one request after 429, 5xx or a dropped connection (each waits longer).
    retries: int = 6
    #: First wait in seconds; doubles with every retry (capped at ``backoff_max``).
    backoff_base: float = 2.0
    backoff_max: float = 120.0
    #: Parallel file downloads (the service allows 4 connections per user).
    max_connections: int = MAX_CONNECTIONS
    #: Bytes read between two cancellation checks.
    chunk_size: int = 256 * 1024

    @classmethod
    def from_env(cls, environ=None, **overrides) -> CdseSettings:
        """Settings with URLs from ``LANDSLIDE_CDSE_TOKEN_URL``, ``LANDSLIDE_CDSE_CATALOGUE_URL``,
        ``LANDSLIDE_CDSE_DOWNLOAD_URL`` (and ``LANDSLIDE_CDSE_BACKOFF`` seconds) where set."""
        environ = os.environ if environ is None else environ
        values = {}
        for name, key in (("token_url", "LANDSLIDE_CDSE_TOKEN_URL"),
                          ("catalogue_url", "LANDSLIDE_CDSE_CATALOGUE_URL"),
                          ("download_url", "LANDSLIDE_CDSE_DOWNLOAD_URL")):
            if environ.get(key):
                values[name] = environ[key].rstrip("/")
        if environ.get("LANDSLIDE_CDSE_BACKOFF"):
            try:
                values["backoff_base"] = float(environ["LANDSLIDE_CDSE_BACKOFF"])
            except ValueError as exc:
                raise ValueError(
                    f"LANDSLIDE_CDSE_BACKOFF={environ['LANDSLIDE_CDSE_BACKOFF']!r} is not a number of seconds") from exc
        values.update(overrides)
        return cls(**values)


@dataclass(frozen=True)
class Credentials:
    """A CDSE account. The password and the two-factor code never appear in repr() or logs."""

    username: str
    password: str = field(repr=False)
    totp: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, environ=None) -> Credentials:
        """From ``CDSE_USERNAME``, ``CDSE_PASSWORD`` and the optional ``CDSE_TOTP``."""
        environ = os.environ if environ is None else environ
        username, password = environ.get("CDSE_USERNAME", ""), environ.get("CDSE_PASSWORD", "")
        if not username or not password:
            raise CdseAuthError(
                "no Copernicus Data Space credentials: set the environment variables CDSE_USERNAME and "
                "CDSE_PASSWORD (and CDSE_TOTP for two-factor accounts), or choose an authentication "
                "configuration in QGIS")
        return cls(username, password, environ.get("CDSE_TOTP") or None)


# -- products ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Product:
    """One catalogue entry."""

    id: str
    name: str                       # e.g. S2B_MSIL2A_20230105T081329_N0509_R078_T37SCB_20230105T095207.SAFE
    date: datetime.datetime         # sensing start, UTC
    tile: str                       # MGRS tile without the T, e.g. 37SCB
    relative_orbit: int | None
    cloud_cover: float | None       # percent
    size: int                       # bytes of the whole-product zip
    baseline: str                   # processing baseline, e.g. "05.09"
    footprint: dict | None = None   # GeoJSON geometry, lon/lat
    checksums: dict = field(default_factory=dict)  # algorithm ("MD5", "BLAKE3") -> hex digest
    online: bool = True

    @property
    def stem(self) -> str:
        """The name without ``.SAFE``."""
        return self.name[:-5] if self.name.endswith(".SAFE") else self.name

    @property
    def safe_name(self) -> str:
        return self.stem + ".SAFE"

    @property
    def processing_time(self) -> str:
        """The product discriminator (last field of the name, processing time), '' if absent."""
        match = _NAME.match(self.name)
        return match["processed"] if match else ""

    @property
    def md5(self) -> str | None:
        return self.checksums.get("MD5")

    @classmethod
    def from_odata(cls, item: dict) -> Product:
        attributes = {a.get("Name"): a.get("Value") for a in item.get("Attributes") or []}
        name = item["Name"]
        match = _NAME.match(name)
        tile = attributes.get("tileId") or (match["tile"] if match else "")
        orbit = attributes.get("relativeOrbitNumber")
        if orbit is None and match:
            orbit = int(match["orbit"])
        baseline = attributes.get("processorVersion") or attributes.get("processingBaseline")
        if not baseline and match:
            baseline = f"{match['baseline'][:2]}.{match['baseline'][2:]}"
        cloud = attributes.get("cloudCover")
        start = (item.get("ContentDate") or {}).get("Start")
        if start:
            date = _parse_time(start)
        elif match:
            date = datetime.datetime.strptime(match["sensing"], "%Y%m%dT%H%M%S").replace(tzinfo=datetime.timezone.utc)
        else:
            raise CdseError(f"catalogue entry {name} has no sensing date")
        return cls(
            id=str(item["Id"]), name=name, date=date, tile=str(tile).lstrip("T"),
            relative_orbit=int(orbit) if orbit is not None else None,
            cloud_cover=float(cloud) if cloud is not None else None,
            size=int(item.get("ContentLength") or 0), baseline=str(baseline or ""),
            footprint=item.get("GeoFootprint"),
            checksums={c["Algorithm"].upper(): c["Value"] for c in item.get("Checksum") or []
                       if c.get("Algorithm") and c.get("Value")},
            online=bool(item.get("Online", True)))


def _parse_time(text: str) -> datetime.datetime:
    text = text.strip().replace("Z", "+00:00")
    # Python 3.9's fromisoformat wants 0, 3 or 6 fraction digits.
    match = re.match(r"^(.*T\d\d:\d\d:\d\d)(\.\d+)?(.*)$", text)
    if match and match.group(2):
        fraction = (match.group(2)[1:] + "000000")[:6]
        text = f"{match.group(1)}.{fraction}{match.group(3)}"
    moment = datetime.datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment.astimezone(datetime.timezone.utc)


def _baseline_key(baseline: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", baseline or "")) or (0,)


def deduplicate(products: Iterable[Product]) -> list[Product]:
    """Keep one product per acquisition: the newest processing baseline of each (tile, sensing time).

    The same tile and date come back twice when a reprocessed product (e.g. N0510) sits beside the
    original (N0509). Ties keep the most recent processing time (the name's last field). The order of
    the input is kept.
    """
    products = list(products)
    best: dict[tuple, Product] = {}
    for product in products:
        key = _acquisition_key(product)
        current = best.get(key)
        rank = (_baseline_key(product.baseline), product.processing_time)
        if current is None or rank > (_baseline_key(current.baseline), current.processing_time):
            best[key] = product
    kept = {id(p) for p in best.values()}
    return [p for p in products if id(p) in kept]


def _acquisition_key(product: Product) -> tuple:
    match = _NAME.match(product.name)
    sensing = match["sensing"] if match else product.date.strftime("%Y%m%dT%H%M%S")
    return product.tile, sensing[:8], sensing, product.relative_orbit


# -- area of interest -------------------------------------------------------------------------------


def aoi_to_wkt(aoi) -> str:
    """The ``SRID=4326;...`` geography text of an area of interest for ``OData.CSC.Intersects``.

    ``aoi`` is a lon/lat box ``(west, south, east, north)``, a GeoJSON geometry (Polygon,
    MultiPolygon, Point; a Feature is unwrapped) or WKT text (POLYGON / MULTIPOLYGON / POINT).
    Multi-part areas and rings with many vertices become their convex hull: the service wants one
    polygon, and a hull only adds candidates, never loses one.
    """
    if isinstance(aoi, str):
        points, is_point = _parse_wkt(aoi)
    elif isinstance(aoi, dict):
        points, is_point = _parse_geojson(aoi)
    else:
        try:
            west, south, east, north = (float(v) for v in aoi)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"area of interest {aoi!r} is not a lon/lat box (west, south, east, north), a GeoJSON "
                "geometry or WKT text") from exc
        if not (west < east and south < north):
            raise ValueError(
                f"area of interest box {aoi!r} is empty: give (west, south, east, north) with west < east "
                "and south < north, in degrees")
        points, is_point = [(west, south), (east, south), (east, north), (west, north)], False
    for lon, lat in points:
        if not (-180.0 <= lon <= 180.0 and -90.0 <= lat <= 90.0):
            raise ValueError(
                f"area of interest coordinate ({lon}, {lat}) is not longitude/latitude in degrees; "
                "transform the area to EPSG:4326 first")
    if is_point:
        lon, lat = points[0]
        return f"SRID=4326;POINT({_num(lon)} {_num(lat)})"
    ring = _dedupe_ring(points)
    if len(ring) < 3:
        raise ValueError("area of interest polygon has fewer than three distinct corners")
    if len(ring) > 200:
        ring = _convex_hull(ring)
    ring = ring + [ring[0]]
    return "SRID=4326;POLYGON((" + ",".join(f"{_num(x)} {_num(y)}" for x, y in ring) + "))"


def _num(value: float) -> str:
    return f"{float(value):.6f}".rstrip("0").rstrip(".") if value != int(value) else str(int(value))


def _dedupe_ring(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    ring = []
    for point in points:
        if not ring or ring[-1] != point:
            ring.append(point)
    if len(ring) > 1 and ring[0] == ring[-1]:
        ring.pop()
    return ring


def _convex_hull(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Counter-clockwise convex hull (Andrew's monotone chain)."""
    pts = sorted(set(points))
    if len(pts) < 3:
        return pts

    def cross(o, a, b):
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    lower, upper = [], []
    for p in pts:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], p) <= 0:
            lower.pop()
        lower.append(p)
    for p in reversed(pts):
        while len(upper) >= 2 and cross(upper[-2], upper[-1], p) <= 0:
            upper.pop()
        upper.append(p)
    return lower[:-1] + upper[:-1]


def _parse_geojson(geometry: dict) -> tuple[list[tuple[float, float]], bool]:
    if geometry.get("type") == "Feature":
        geometry = geometry.get("geometry") or {}
    kind, coords = geometry.get("type"), geometry.get("coordinates")
    try:
        if kind == "Point":
            return [(float(coords[0]), float(coords[1]))], True
        if kind == "Polygon":
            return [(float(x), float(y)) for x, y, *_ in coords[0]], False
        if kind == "MultiPolygon":
            points = [(float(x), float(y)) for polygon in coords for x, y, *_ in polygon[0]]
            return _convex_hull(points), False
    except (TypeError, ValueError, IndexError) as exc:
        raise ValueError(f"GeoJSON area of interest has malformed coordinates: {exc}") from exc
    raise ValueError(f"GeoJSON area of interest of type {kind!r} is not supported; give a Polygon, "
                     "MultiPolygon or Point in longitude/latitude")


def _parse_wkt(text: str) -> tuple[list[tuple[float, float]], bool]:
    body = text.strip()
    if body.upper().startswith("SRID="):
        body = body.split(";", 1)[1].strip()
    kind = body.split("(", 1)[0].strip().upper()
    numbers = re.findall(r"[-+]?\d*\.?\d+(?:[eE][-+]?\d+)?", body[len(kind):])
    values = [float(v) for v in numbers]
    if kind not in ("POINT", "POLYGON", "MULTIPOLYGON") or len(values) < 2 or len(values) % 2:
        raise ValueError(f"WKT area of interest {text[:60]!r} is not a POINT, POLYGON or MULTIPOLYGON in lon/lat")
    points = list(zip(values[0::2], values[1::2]))
    if kind == "POINT":
        return points[:1], True
    if kind == "POLYGON":
        outer = body[len(kind):].strip()[1:]  # drop the outer "(" and keep the first ring only
        ring_text = outer[outer.index("(") + 1:outer.index(")")]
        ring = [float(v) for v in re.findall(r"[-+]?\d*\.?\d+(?:[eE][-+]?\d+)?", ring_text)]
        return list(zip(ring[0::2], ring[1::2])), False
    return _convex_hull(points), False


# -- the client -------------------------------------------------------------------------------------


def _as_utc_start(value, *, end: bool) -> str:
    """OData time text; a date (or 'YYYY-MM-DD') given as ``end`` includes that whole day."""
    if isinstance(value, str):
        text = value.strip()
        value = (datetime.date.fromisoformat(text) if len(text) == 10 else _parse_time(text))
    if isinstance(value, datetime.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    elif isinstance(value, datetime.date):
        value = datetime.datetime(value.year, value.month, value.day)
        if end:
            value += datetime.timedelta(days=1)
    else:
        raise ValueError(f"{value!r} is not a date or datetime")
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


@dataclass
class _Token:
    access: str
    access_expires: float   # time.monotonic() deadline
    refresh: str | None
    refresh_expires: float


class CdseClient:
    """Talks to the CDSE: ``search`` (no login needed), ``get_product`` and ``download_product``.

    Thread-safe: downloads use up to ``settings.max_connections`` threads sharing one token.
    ``is_cancelled`` (e.g. a Processing feedback's ``isCanceled``) is consulted by every request, retry
    and back-off of the client, besides the ``is_cancelled`` a call may pass; once it answers true the
    call raises ``rasters.Cancelled`` within about ``CANCEL_POLL`` seconds, whatever it was waiting for.
    """

    #: Refresh the access token this many seconds before it expires (requests in flight need it).
    REFRESH_MARGIN = 60.0

    def __init__(self, credentials: Credentials | None = None, settings: CdseSettings | None = None,
                 session: requests.Session | None = None, is_cancelled: IsCancelled | None = None):
        self.credentials = credentials
        self.settings = settings or CdseSettings()
        self.is_cancelled = is_cancelled
        self._own_session = session is None
        if session is None:
            session = requests.Session()
            adapter = requests.adapters.HTTPAdapter(pool_maxsize=max(self.settings.max_connections, 4))
            session.mount("https://", adapter)
            session.mount("http://", adapter)
        self.session = session
        self._token: _Token | None = None
        self._token_lock = threading.Lock()

    def close(self) -> None:
        """Close pooled connections (when the client made its own session)."""
        if self._own_session:
            self.session.close()

    def __enter__(self) -> CdseClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        user = self.credentials.username if self.credentials else None
        return f"CdseClient(user={user!r}, catalogue={self.settings.catalogue_url!r})"

    # -- cancellation -------------------------------------------------------------------------
    def _checker(self, is_cancelled: IsCancelled | None = None) -> IsCancelled | None:
        """One callback, true when the client's or the call's ``is_cancelled`` is (None if neither is set)."""
        own = self.is_cancelled
        if own is None or is_cancelled is None or is_cancelled == own:  # == : bound methods are made anew
            return is_cancelled if is_cancelled is not None else own
        return lambda: bool(own() or is_cancelled())

    @contextlib.contextmanager
    def _token_locked(self, check: IsCancelled | None):
        """Hold the token lock; while another thread logs in, give up waiting for it on a cancel."""
        if check is None:
            self._token_lock.acquire()
        else:
            while not self._token_lock.acquire(timeout=CANCEL_POLL):
                check_cancelled(check)
        try:
            yield
        finally:
            self._token_lock.release()

    def _request(self, method: str, url: str, check: IsCancelled | None, **kwargs) -> requests.Response:
        """``session.request`` that a cancel interrupts, however long the service takes to answer.

        The request runs in a helper thread and this thread waits for it in slices of ``CANCEL_POLL``;
        on a cancel it stops waiting and raises ``Cancelled``, and the helper closes the answer when (if)
        it comes, within the request timeout. Without a cancel callback the request runs here.
        """
        check_cancelled(check)
        kwargs.setdefault("timeout", self.settings.timeout)
        if check is None:
            return self.session.request(method, url, **kwargs)
        outcome: dict = {}
        lock, done = threading.Lock(), threading.Event()

        def run() -> None:
            try:
                response = self.session.request(method, url, **kwargs)
            except BaseException as exc:  # handed to the waiting thread
                with lock:
                    outcome["error"] = exc
                    done.set()
                return
            with lock:
                abandoned = outcome.get("abandoned", False)
                outcome["response"] = response
                done.set()
            if abandoned:
                response.close()

        threading.Thread(target=run, name="cdse-request", daemon=True).start()
        while not done.wait(CANCEL_POLL):
            if check():
                with lock:
                    if not done.is_set():
                        outcome["abandoned"] = True
                        raise Cancelled("cancelled by the user")
                break
        if "error" in outcome:
            raise outcome["error"]
        response = outcome["response"]
        if check():
            response.close()
            raise Cancelled("cancelled by the user")
        return response

    # -- tokens -------------------------------------------------------------------------------
    def access_token(self, is_cancelled: IsCancelled | None = None) -> str:
        """A valid access token: logs in, or refreshes one about to expire."""
        return self._access_token(self._checker(is_cancelled))

    def _access_token(self, check: IsCancelled | None) -> str:
        with self._token_locked(check):
            now = time.monotonic()
            token = self._token
            if token is not None and now < token.access_expires:
                return token.access
            if token is not None and token.refresh and now < token.refresh_expires:
                self._token = self._refresh(token.refresh, check)
            else:
                self._token = self._login(check)
            return self._token.access

    def _expire(self, access: str, check: IsCancelled | None = None) -> None:
        """The service said ``access`` expired: the next access_token() refreshes (once per token)."""
        with self._token_locked(check):
            if self._token is not None and self._token.access == access:
                self._token.access_expires = 0.0

    def _login(self, check: IsCancelled | None = None) -> _Token:
        if self.credentials is None:
            raise CdseAuthError(
                "downloading from the Copernicus Data Space needs an account: choose an authentication "
                "configuration (Basic: username and password) or set CDSE_USERNAME and CDSE_PASSWORD")
        data = {"grant_type": "password", "username": self.credentials.username,
                "password": self.credentials.password, "client_id": self.settings.client_id}
        if self.credentials.totp:
            data["totp"] = self.credentials.totp
        response = self._token_request(data, check)
        if response.status_code in (400, 401):
            description = _error_text(response) or "invalid user credentials"
            raise CdseAuthError(
                f"Copernicus Data Space login failed for user {self.credentials.username}: "
                f"{description[0].lower() + description[1:]}; check the authentication configuration"
                + (" (and the two-factor code)" if self.credentials.totp else ""))
        return self._token_from(response, "login")

    def _refresh(self, refresh_token: str, check: IsCancelled | None = None) -> _Token:
        form = {"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": self.settings.client_id}
        response = self._token_request(form, check)
        if response.status_code in (400, 401):
            LOG.info("Copernicus Data Space session expired; logging in again")
            return self._login(check)
        return self._token_from(response, "token refresh")

    def _token_request(self, data: dict, check: IsCancelled | None = None) -> requests.Response:
        for attempt in range(self.settings.retries + 1):
            try:
                response = self._request("POST", self.settings.token_url, check, data=data)
            except requests.RequestException as exc:
                if attempt >= self.settings.retries:
                    raise CdseUnreachable(f"cannot reach the Copernicus Data Space login service "
                                          f"{self.settings.token_url}: {type(exc).__name__}") from None
                self._sleep(attempt, None, check)
                continue
            if response.status_code == 429 or response.status_code >= 500:
                if attempt >= self.settings.retries:
                    break
                self._sleep(attempt, response, check)
                continue
            return response
        raise CdseError(f"the Copernicus Data Space login service answers {response.status_code}; try again later")

    def _token_from(self, response: requests.Response, what: str) -> _Token:
        if response.status_code != 200:
            raise CdseError(f"Copernicus Data Space {what} failed with HTTP {response.status_code}: "
                            f"{_error_text(response)}")
        try:
            payload = response.json()
            access = payload["access_token"]
        except (ValueError, KeyError):
            raise CdseError(f"Copernicus Data Space {what} returned no access token") from None
        now = time.monotonic()
        lifetime = float(payload.get("expires_in") or 600)
        refresh_lifetime = float(payload.get("refresh_expires_in") or 0)
        margin = min(self.REFRESH_MARGIN, lifetime / 4)
        return _Token(access=access, access_expires=now + lifetime - margin,
                      refresh=payload.get("refresh_token"),
                      refresh_expires=now + refresh_lifetime - min(self.REFRESH_MARGIN, refresh_lifetime / 4))

    # -- search -------------------------------------------------------------------------------
    def search_filter(self, aoi, start, end, *, max_cloud: float = 100, tile: str | None = None) -> str:
        """The OData ``$filter`` text of a Sentinel-2 L2A search (start inclusive; a date ``end`` too)."""
        if not 0 <= float(max_cloud) <= 100:
            raise ValueError(f"max_cloud {max_cloud} must be a percentage between 0 and 100")
        start_text, end_text = _as_utc_start(start, end=False), _as_utc_start(end, end=True)
        if start_text >= end_text:
            raise ValueError(f"the search period is empty: start {start} is not before end {end}")
        clauses = [
            "Collection/Name eq 'SENTINEL-2'",
            "Attributes/OData.CSC.StringAttribute/any(att:att/Name eq 'productType' and "
            "att/OData.CSC.StringAttribute/Value eq 'S2MSI2A')",
            f"ContentDate/Start ge {start_text}",
            f"ContentDate/Start lt {end_text}",
            f"OData.CSC.Intersects(area=geography'{aoi_to_wkt(aoi)}')",
        ]
        if float(max_cloud) < 100:
            clauses.append("Attributes/OData.CSC.DoubleAttribute/any(att:att/Name eq 'cloudCover' and "
                           f"att/OData.CSC.DoubleAttribute/Value le {float(max_cloud):.2f})")
        if tile:
            tile_id = tile.strip().upper().lstrip("T")
            if not re.fullmatch(r"\d{2}[A-Z]{3}", tile_id):
                raise ValueError(f"tile {tile!r} is not an MGRS tile like 37SCB (or T37SCB)")
            clauses.append("Attributes/OData.CSC.StringAttribute/any(att:att/Name eq 'tileId' and "
                           f"att/OData.CSC.StringAttribute/Value eq '{tile_id}')")
        return " and ".join(clauses)

    def search(self, aoi, start, end, *, max_cloud: float = 100, tile: str | None = None,
               relative_orbit: int | None = None, page_size: int = 100,
               is_cancelled: IsCancelled | None = None) -> list[Product]:
        """Sentinel-2 L2A products over ``aoi`` sensed from ``start`` to ``end``, oldest first.

        ``relative_orbit`` is applied to the results (the catalogue contract filters on the
        attributes above only). Every page is followed through ``@odata.nextLink``.
        """
        check = self._checker(is_cancelled)
        if not 1 <= int(page_size) <= 1000:
            raise ValueError(f"page_size {page_size} must be between 1 and 1000 (the catalogue's limit)")
        params = {"$filter": self.search_filter(aoi, start, end, max_cloud=max_cloud, tile=tile),
                  "$orderby": "ContentDate/Start asc", "$top": str(int(page_size)), "$expand": "Attributes"}
        url: str | None = (f"{self.settings.catalogue_url}/Products?"
                           + urllib.parse.urlencode(params, quote_via=urllib.parse.quote, safe="$'(),/:"))
        products: list[Product] = []
        seen_pages = 0
        while url:
            payload = self._get_json(url, "searching the catalogue", check=check)
            products.extend(Product.from_odata(item) for item in payload.get("value", []))
            url = payload.get("@odata.nextLink")
            seen_pages += 1
            if seen_pages > 10000:
                raise CdseError("the catalogue keeps returning further pages; narrow the search")
        if relative_orbit is not None:
            products = [p for p in products if p.relative_orbit == int(relative_orbit)]
        return products

    def get_product(self, id_or_name: str, *, is_cancelled: IsCancelled | None = None) -> Product:
        """One product by its Id (UUID) or its name (with or without .SAFE)."""
        return self._get_product(id_or_name, self._checker(is_cancelled))

    def _get_product(self, id_or_name: str, check: IsCancelled | None) -> Product:
        key = id_or_name.strip()
        if _UUID.match(key):
            item = self._get_json(f"{self.settings.catalogue_url}/Products({key})?$expand=Attributes",
                                  f"looking up product {key}", missing=f"product {key} is not in the catalogue",
                                  check=check)
            return Product.from_odata(item)
        name = key if key.endswith(".SAFE") else key + ".SAFE"
        if "'" in name or not re.fullmatch(r"[\w.\-]+", name):
            raise ValueError(f"{key!r} is neither a product Id (UUID) nor a product name")
        query = urllib.parse.urlencode({"$filter": f"Name eq '{name}'", "$expand": "Attributes"},
                                       quote_via=urllib.parse.quote, safe="$'(),/:")
        payload = self._get_json(f"{self.settings.catalogue_url}/Products?{query}", f"looking up product {name}",
                                 check=check)
        items = payload.get("value", [])
        if not items:
            raise CdseError(f"product {name} is not in the Copernicus Data Space catalogue; check the name")
        return Product.from_odata(items[0])

    def _get_json(self, url: str, what: str, missing: str | None = None, *,
                  check: IsCancelled | None = None) -> dict:
        for attempt in range(self.settings.retries + 1):
            try:
                response = self._request("GET", url, check)
            except requests.RequestException as exc:
                if attempt >= self.settings.retries:
                    raise CdseUnreachable(f"{what}: cannot reach {_host(url)} ({type(exc).__name__})") from None
                self._sleep(attempt, None, check)
                continue
            if response.status_code == 429 or response.status_code >= 500:
                if attempt >= self.settings.retries:
                    raise CdseError(f"{what}: the service answers HTTP {response.status_code} "
                                    f"({_error_text(response)}); try again later")
                self._sleep(attempt, response, check)
                continue
            if response.status_code == 404 and missing:
                raise CdseError(missing)
            if response.status_code != 200:
                raise CdseError(f"{what}: HTTP {response.status_code} from {_host(url)}: {_error_text(response)}")
            try:
                return response.json()
            except ValueError:
                raise CdseError(f"{what}: {_host(url)} did not answer with JSON") from None
        raise AssertionError("unreachable")

    def list_nodes(self, product: Product, *path: str, is_cancelled: IsCancelled | None = None) -> list[dict]:
        """Children of a folder of the product: ``list_nodes(p, "GRANULE")`` -> [{"Name", "ContentLength", ...}]."""
        return self._list_nodes(product, path, self._checker(is_cancelled))

    def _list_nodes(self, product: Product, path: Sequence[str], check: IsCancelled | None) -> list[dict]:
        url = self._node_url(self.settings.catalogue_url, product, path) + "/Nodes"
        payload = self._get_json(url, f"listing {'/'.join(path) or 'the top'} of product {product.name}",
                                 missing=f"product {product.name} has no folder {'/'.join(path)}", check=check)
        return list(payload.get("result", payload.get("value", [])))

    @staticmethod
    def _node_url(base: str, product: Product, path: Sequence[str]) -> str:
        url = f"{base}/Products({product.id})/Nodes({urllib.parse.quote(product.safe_name)})"
        for part in path:
            url += f"/Nodes({urllib.parse.quote(part)})"
        return url

    def scl_node(self, product: Product, *, is_cancelled: IsCancelled | None = None) -> tuple[list[str], int]:
        """(node path inside the SAFE, size in bytes) of the product's 20 m scene classification (SCL)."""
        check = self._checker(is_cancelled)
        granules = [n["Name"] for n in self._list_nodes(product, ("GRANULE",), check)]
        if len(granules) != 1:
            raise CdseError(f"product {product.name} has {len(granules)} granules; expected one")
        folder = ("GRANULE", granules[0], "IMG_DATA", "R20m")
        images = self._list_nodes(product, folder, check)
        found = [n for n in images if re.search(r"_SCL_20m\.jp2$", n["Name"])]
        if not found:
            raise CdseError(f"product {product.name} has no SCL_20m file in {'/'.join(folder)}")
        return [*folder, found[0]["Name"]], int(found[0].get("ContentLength") or 0)

    def download_file(self, product: Product, node_path: Sequence[str], dest, *, size: int | None = None,
                      is_cancelled: IsCancelled | None = None) -> Path:
        """Download one file of a product (``node_path`` inside the SAFE, as ``scl_node`` gives it) to
        ``dest``, through ``dest.part`` (renamed when complete; removed on a cancel)."""
        check = self._checker(is_cancelled)
        self._access_token(check)
        url = self._node_url(self.settings.download_url, product, node_path) + "/$value"
        return self._fetch(url, Path(dest), product=product, expected_size=size or None, md5=None,
                           on_bytes=lambda count: None, is_cancelled=check)

    # -- downloads ----------------------------------------------------------------------------
    def download_product(self, product: Product | str, folder, *, whole: bool = False,
                         bands: Sequence[str] = PIPELINE_BANDS, progress: Progress | None = None,
                         is_cancelled: IsCancelled | None = None) -> Path:
        """Download ``product`` into ``folder``; return the ``.zip`` (whole) or the ``.SAFE`` folder.

        By default only what the pipeline reads: MTD_MSIL2A.xml, the granule's MTD_TL.xml, the 20 m
        ``bands`` and SCL_20m, laid out as a SAFE folder, fetched in parallel (at most
        ``settings.max_connections``). ``whole=True`` fetches the complete product zip and checks its
        MD5. A product already complete in ``folder`` is not fetched again. Cancelling (through
        ``is_cancelled`` or the client's) removes partial files and raises ``rasters.Cancelled``.
        """
        check = self._checker(is_cancelled)
        if isinstance(product, str):
            product = self._get_product(product, check)
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        if not product.online:
            LOG.warning("product %s is archived (offline); the service may take a while to restore it", product.name)
        self._access_token(check)  # a login problem shows before anything touches the disk
        if whole:
            return self._download_whole(product, folder, progress, check)
        return self._download_files(product, folder, bands, progress, check)

    def _download_whole(self, product, folder, progress, check) -> Path:
        target = folder / (product.stem + ".zip")
        if target.exists() and self._looks_complete(target, product.size, product.md5, check):
            report(progress, 100)
            return target
        url = f"{self.settings.download_url}/Products({product.id})/$value"
        self._fetch(url, target, product=product, expected_size=product.size or None, md5=product.md5,
                    on_bytes=_percent_reporter(progress, product.size), is_cancelled=check)
        report(progress, 100)
        return target

    @staticmethod
    def _looks_complete(path: Path, size: int | None, md5: str | None, check: IsCancelled | None = None) -> bool:
        if size and path.stat().st_size != size:
            return False
        return md5 is None or _md5_of(path, check) == md5.lower()

    def required_files(self, product: Product, bands: Sequence[str] = PIPELINE_BANDS, *,
                       is_cancelled: IsCancelled | None = None) -> list[tuple[list[str], int]]:
        """(node path inside the SAFE, size in bytes) of every file the per-file download fetches."""
        return self._required_files(product, bands, self._checker(is_cancelled))

    def _required_files(self, product: Product, bands: Sequence[str],
                        check: IsCancelled | None) -> list[tuple[list[str], int]]:
        bands = [b.upper() for b in bands]
        unknown = [b for b in bands if b not in BANDS_20M]
        if unknown:
            raise ValueError(f"band{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} not available at 20 m; "
                             f"choose from {', '.join(BANDS_20M)}")
        top = {n["Name"]: n for n in self._list_nodes(product, (), check)}
        if "MTD_MSIL2A.xml" not in top:
            raise CdseError(f"product {product.name} has no MTD_MSIL2A.xml; is it a Level-2A product?")
        granules = [n["Name"] for n in self._list_nodes(product, ("GRANULE",), check)]
        if len(granules) != 1:
            raise CdseError(f"product {product.name} has {len(granules)} granules; expected one")
        granule = granules[0]
        files = [(["MTD_MSIL2A.xml"], int(top["MTD_MSIL2A.xml"].get("ContentLength") or 0))]
        tile_nodes = {n["Name"]: n for n in self._list_nodes(product, ("GRANULE", granule), check)}
        if "MTD_TL.xml" not in tile_nodes:
            raise CdseError(f"product {product.name} has no GRANULE/{granule}/MTD_TL.xml")
        files.append((["GRANULE", granule, "MTD_TL.xml"], int(tile_nodes["MTD_TL.xml"].get("ContentLength") or 0)))
        images = self._list_nodes(product, ("GRANULE", granule, "IMG_DATA", "R20m"), check)
        for band in [*bands, "SCL"]:
            found = [n for n in images if re.search(rf"_{band}_20m\.jp2$", n["Name"])]
            if not found:
                raise CdseError(f"product {product.name} has no {band} band at 20 m "
                                f"(GRANULE/{granule}/IMG_DATA/R20m lists {', '.join(n['Name'] for n in images)})")
            files.append((["GRANULE", granule, "IMG_DATA", "R20m", found[0]["Name"]],
                          int(found[0].get("ContentLength") or 0)))
        return files

    def _download_files(self, product, folder, bands, progress, check) -> Path:
        target = folder / product.safe_name
        files = self._required_files(product, bands, check)
        # A new product is assembled in a staging folder and renamed when complete; a product
        # downloaded earlier with fewer bands only gets the missing files, each renamed when complete.
        staging = target if target.is_dir() else folder / (product.safe_name + ".part")
        todo = [(path, size) for path, size in files if not _is_complete(staging / Path(*path), size)]
        total = sum(size for _, size in todo) or 1
        done_bytes = [0]
        lock = threading.Lock()
        cancel = threading.Event()

        def on_bytes(count: int) -> None:
            with lock:
                done_bytes[0] += count

        def worker_cancelled() -> bool:
            # Workers look at this event only; this thread polls the user's callback and sets it.
            return cancel.is_set()

        def fetch(path, size):
            url = self._node_url(self.settings.download_url, product, path) + "/$value"
            self._fetch(url, staging / Path(*path), product=product, expected_size=size or None, md5=None,
                        on_bytes=on_bytes, is_cancelled=worker_cancelled)

        try:
            with concurrent.futures.ThreadPoolExecutor(
                    max_workers=max(1, min(self.settings.max_connections, MAX_CONNECTIONS))) as pool:
                futures = [pool.submit(fetch, path, size) for path, size in todo]
                pending = set(futures)
                while pending:
                    finished, pending = concurrent.futures.wait(
                        pending, timeout=0.1, return_when=concurrent.futures.FIRST_EXCEPTION)
                    with lock:
                        report(progress, 100.0 * done_bytes[0] / total)
                    if check is not None and check():
                        cancel.set()
                    failed = [f for f in finished if f.exception() is not None]
                    if failed:
                        cancel.set()  # stop the other files promptly, then re-raise the first error
                        for future in pending:
                            future.cancel()
                        concurrent.futures.wait(pending)
                        raise failed[0].exception()
                check_cancelled(check)
        except Cancelled:
            if staging != target:
                shutil.rmtree(staging, ignore_errors=True)
            raise
        except BaseException:
            # Keep partial files for a later resume, but no empty staging folder.
            if staging != target and staging.is_dir() and not any(p.is_file() for p in staging.rglob("*")):
                shutil.rmtree(staging, ignore_errors=True)
            raise
        if staging != target:
            if target.exists():
                shutil.rmtree(target)
            os.replace(staging, target)
        report(progress, 100)
        return target

    def _fetch(self, url: str, dest: Path, *, product: Product, expected_size: int | None, md5: str | None,
               on_bytes: Callable[[int], None], is_cancelled: IsCancelled | None) -> Path:
        """Stream ``url`` to ``dest`` through ``dest.part``, resuming, retrying and verifying."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        part = dest.with_name(dest.name + ".part")
        label = f"{dest.name} of product {product.name}" if dest.name != product.stem + ".zip" \
            else f"product {product.name}"
        # Consecutive "token expired" answers: each gets a refresh and one retry. With parallel files
        # a fresh token can be refreshed away by another thread between its refresh and our retry,
        # hence a small allowance instead of exactly one.
        attempt, auth_retries = 0, 0
        try:
            while True:
                check_cancelled(is_cancelled)
                have = part.stat().st_size if part.exists() else 0
                if expected_size and have == expected_size:
                    break
                if expected_size and have > expected_size:
                    part.unlink()
                    have = 0
                token = self._access_token(is_cancelled)
                headers = {"Authorization": f"Bearer {token}"}
                if have:
                    headers["Range"] = f"bytes={have}-"
                received = 0
                try:
                    response = self._get_with_auth(url, headers, is_cancelled)
                    with contextlib.closing(response), _shutdown_on_cancel(response, is_cancelled):
                        status = response.status_code
                        if status == 416 and have:
                            # The part file is as long as the file: nothing left to fetch.
                            total = _content_range_total(response.headers.get("Content-Range"))
                            if total is not None and total == have:
                                break
                            part.unlink()
                            continue
                        if status == 401:
                            code = _error_code(response)
                            if auth_retries < 2 and code in ("DAT-ZIP-109", ""):
                                auth_retries += 1
                                self._expire(token, is_cancelled)
                                continue
                            raise CdseError(f"downloading {label}: the service refused the login "
                                            f"({_error_text(response)}); check the authentication configuration")
                        if status == 429 or status >= 500:
                            if attempt >= self.settings.retries:
                                raise CdseError(
                                    f"downloading {label}: the service still answers HTTP {status} "
                                    f"({_error_text(response)}) after {attempt} retries; try again later "
                                    "(the partial download is kept and will be resumed)")
                            self._sleep(attempt, response, is_cancelled)
                            attempt += 1
                            continue
                        if status == 404:
                            raise CdseError(f"downloading {label}: not found on the service (HTTP 404); "
                                            "the product may have been removed or renamed, search again")
                        if status == 403:
                            raise CdseError(f"downloading {label}: access denied (HTTP 403: {_error_text(response)}); "
                                            "check that the account may download and has quota left")
                        if status not in (200, 206):
                            raise CdseError(f"downloading {label}: unexpected HTTP {status}: {_error_text(response)}")
                        mode = "ab"
                        if status == 206:
                            start = _content_range_start(response.headers.get("Content-Range"))
                            if start != have:
                                part.unlink()
                                raise CdseError(f"downloading {label}: the service resumed at byte {start}, "
                                                f"not {have}; the partial download is discarded")
                        elif have:
                            mode = "wb"  # the server ignored the range: start over
                            on_bytes(-have)
                        auth_retries = 0
                        with open(part, mode) as out:
                            for chunk in response.iter_content(chunk_size=self.settings.chunk_size):
                                check_cancelled(is_cancelled)
                                if chunk:
                                    out.write(chunk)
                                    received += len(chunk)
                                    on_bytes(len(chunk))
                        check_cancelled(is_cancelled)  # a cancel may have cut the stream short
                        total = expected_size
                        if total is None:
                            length = response.headers.get("Content-Length")
                            total = _content_range_total(response.headers.get("Content-Range")) \
                                if status == 206 else (int(length) if length else None)
                        if total is not None and part.stat().st_size < total:
                            raise requests.exceptions.ChunkedEncodingError("the response ended early")
                        break
                except (requests.ConnectionError, requests.Timeout,
                        requests.exceptions.ChunkedEncodingError) as exc:
                    check_cancelled(is_cancelled)  # the connection was shut down by a cancel
                    if received:
                        attempt = 0  # progress was made: a flaky line is not a failing service
                    if attempt >= self.settings.retries:
                        raise CdseError(
                            f"downloading {label}: the connection keeps failing ({type(exc).__name__}); "
                            "run again later to resume (the partial download is kept)") from None
                    LOG.info("connection lost while downloading %s; resuming", label)
                    self._sleep(attempt, None, is_cancelled)
                    attempt += 1
                    continue
            size = part.stat().st_size
            if expected_size and size != expected_size:
                part.unlink()
                raise CdseError(f"downloading {label}: got {size} bytes, the service lists {expected_size}; "
                                "the partial download was removed, run again")
            if md5:
                digest = _md5_of(part, is_cancelled)
                if digest != md5.lower():
                    part.unlink()
                    raise CdseError(
                        f"downloading {label}: checksum mismatch (MD5 {digest}, the service lists {md5.lower()}); "
                        "the corrupt download was removed, run again")
            os.replace(part, dest)
            return dest
        except Cancelled:
            with contextlib.suppress(FileNotFoundError):
                part.unlink()
            raise
        except Exception:
            if is_cancelled is not None and is_cancelled():
                # Whatever a connection shut down by the cancel raised, it is a cancel.
                with contextlib.suppress(FileNotFoundError):
                    part.unlink()
                raise Cancelled("cancelled by the user") from None
            raise

    def _get_with_auth(self, url: str, headers: dict, check: IsCancelled | None = None) -> requests.Response:
        """GET following redirects by hand: requests drops Authorization on a cross-host redirect,
        which the download host answers with 401 DAT-ZIP-604. Re-attach it only for CDSE hosts."""
        # Trusted: the configured hosts (whatever the port) and the service's own domain.
        trusted = {_hostname(u) for u in (self.settings.catalogue_url, self.settings.download_url)}
        for _ in range(6):
            response = self._request("GET", url, check, headers=headers, stream=True, allow_redirects=False)
            if response.status_code not in (301, 302, 303, 307, 308) or "Location" not in response.headers:
                return response
            location = urllib.parse.urljoin(url, response.headers["Location"])
            response.close()
            host = _hostname(location)
            if host not in trusted and not host.endswith(".dataspace.copernicus.eu"):
                headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
            url = location
        raise CdseError(f"too many redirects starting from {url}")

    def _sleep(self, attempt: int, response: requests.Response | None,
               is_cancelled: IsCancelled | None = None) -> None:
        """Back off before retry ``attempt`` (longer with ``Retry-After``), in slices that watch the cancel."""
        delay = min(self.settings.backoff_max, self.settings.backoff_base * (2 ** attempt))
        if response is not None:
            retry_after = response.headers.get("Retry-After", "")
            if retry_after.isdigit():
                delay = min(self.settings.backoff_max, max(delay, float(retry_after)))
        deadline = time.monotonic() + delay
        while True:  # sleep in slices so a cancel is honoured during a long back-off
            check_cancelled(is_cancelled)
            left = deadline - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, CANCEL_POLL))


def _is_complete(path: Path, size: int) -> bool:
    return path.is_file() and (not size or path.stat().st_size == size)


def _percent_reporter(progress: Progress | None, total: int) -> Callable[[int], None]:
    done = [0]

    def on_bytes(count: int) -> None:
        done[0] += count
        if total:
            report(progress, 100.0 * done[0] / total)

    return on_bytes


def _md5_of(path: Path, is_cancelled: IsCancelled | None = None) -> str:
    digest = hashlib.md5(usedforsecurity=False)  # the service's checksum, not a security feature
    with open(path, "rb") as src:
        for block in iter(lambda: src.read(1 << 22), b""):
            check_cancelled(is_cancelled)
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def _shutdown_on_cancel(response: requests.Response, check: IsCancelled | None):
    """While the body of ``response`` is read, a watcher shuts its socket down on a cancel, so a read
    blocked on a stalled service returns at once instead of after the read timeout."""
    if check is None:
        yield
        return
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(CANCEL_POLL):
            if check():
                _shutdown(response)
                return

    watcher = threading.Thread(target=watch, name="cdse-cancel-watch", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        stop.set()
        watcher.join()


def _shutdown(response: requests.Response) -> None:
    """Shut down the connection under a streamed response (a blocked read then returns); else close it."""
    raw = getattr(response, "raw", None)
    connection = getattr(raw, "connection", None) or getattr(raw, "_connection", None)
    sock = getattr(connection, "sock", None)
    if sock is None:  # urllib3 released the connection object: reach the socket through the file
        sock = getattr(getattr(getattr(getattr(raw, "_fp", None), "fp", None), "raw", None), "_sock", None)
    if sock is not None:
        with contextlib.suppress(OSError):
            # The plain socket's shutdown, also under TLS: SSLSocket.shutdown would unwrap the socket
            # under the reading thread's feet; this way its read just ends.
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
        return
    with contextlib.suppress(Exception):
        response.close()


def _host(url: str) -> str:
    return urllib.parse.urlsplit(url).netloc.lower()


def _hostname(url: str) -> str:
    return (urllib.parse.urlsplit(url).hostname or "").lower()


def _content_range_start(header: str | None) -> int | None:
    match = re.match(r"bytes (\d+)-\d+/(\d+|\*)", header or "")
    return int(match.group(1)) if match else None


def _content_range_total(header: str | None) -> int | None:
    match = re.match(r"bytes (?:\d+-\d+|\*)/(\d+)", header or "")
    return int(match.group(1)) if match else None


def _error_payload(response: requests.Response) -> dict:
    try:
        payload = response.json()
    except ValueError:
        return {}
    return payload if isinstance(payload, dict) else {}


def _error_code(response: requests.Response) -> str:
    payload = _error_payload(response)
    detail = payload.get("detail")
    if isinstance(detail, dict):
        payload = detail
    return str(payload.get("code") or "")


def _error_text(response: requests.Response) -> str:
    payload = _error_payload(response)
    detail = payload.get("detail")
    if isinstance(detail, dict):
        payload = detail
    elif isinstance(detail, str):
        return detail
    for key in ("error_description", "message", "error"):
        if payload.get(key):
            code = payload.get("code")
            return f"{payload[key]} ({code})" if code and key == "message" else str(payload[key])
    text = (response.text or "").strip()
    return text[:200] if text and not text.startswith("<") else response.reason or f"HTTP {response.status_code}"


def download_products(client: CdseClient, products: Sequence[Product | str], folder, *, whole: bool = False,
                      bands: Sequence[str] = PIPELINE_BANDS, progress: Progress | None = None,
                      is_cancelled: IsCancelled | None = None, log: Callable[[str], None] | None = None) -> list[Path]:
    """Download several products one after the other (each in parallel files); return their paths."""
    paths = []
    count = len(products)
    check = client._checker(is_cancelled)
    for index, product in enumerate(products):
        check_cancelled(check)
        if isinstance(product, str):
            product = client._get_product(product, check)
        if log:
            log(f"Downloading {product.name} ({'whole product' if whole else 'bands ' + ', '.join(bands)})")

        def sub_progress(percent, index=index):
            report(progress, (index + percent / 100.0) * 100.0 / count)

        paths.append(client.download_product(product, folder, whole=whole, bands=bands, progress=sub_progress,
                                             is_cancelled=check))
    report(progress, 100)
    return paths


def products_to_json(products: Iterable[Product]) -> str:
    """A JSON list of products (for logs and reports; holds no credentials)."""
    return json.dumps([{"id": p.id, "name": p.name, "date": p.date.isoformat(), "tile": p.tile,
                        "relative_orbit": p.relative_orbit, "cloud_cover": p.cloud_cover, "size": p.size,
                        "baseline": p.baseline, "online": p.online} for p in products], indent=1)
