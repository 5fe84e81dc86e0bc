"""A local stand-in for the Copernicus Data Space Ecosystem, faithful to the contract in copernicus-api.md.

Two HTTP servers on 127.0.0.1 play the two hosts, so a redirect between them is cross-host for
``requests`` (which then drops the Authorization header, as with the real service):

* the *catalogue* server: the Keycloak token endpoint, the OData catalogue (``$filter`` parsed for
  real, unknown clauses rejected with 400), Nodes listings, and ``$value`` paths answering 301 to the
  download host;
* the *download* server: ``$value`` of whole products and of single files, Bearer checks (missing
  -> 401 DAT-ZIP-604, expired -> 401 DAT-ZIP-109), byte ranges (206), 429 DAT-ZIP-100 beyond four
  parallel streams, and Nodes listings too.

Products are real SAFE zips (``landslide_plugin.examples.safe_format.write_l2a_product``); ``make_product``
writes a small one. Fault injection: ``drop_after`` (close the connection mid-file once),
``corrupt`` (flip a byte of a whole-product stream), ``fail_next`` (answer a status K times),
``fail_token`` / ``fail_catalogue`` (the same for the token endpoint / the catalogue's JSON answers, with
an optional ``Retry-After``), ``stall`` (hold the next requests of a kind before answering),
``stall_after`` (pause a download mid-body), ``expire_access_after`` (tokens expire after N
authenticated requests), ``expire_refresh_tokens``, ``chunk_delay`` (slow streams). Stalls end at once
when the mock stops. Counters: ``requests`` (every request), ``grants`` (token grants),
``max_parallel`` (most simultaneous streams).

    with MockCdse([make_product(tmp_path, ...)], users={"alice": "pw"}) as cdse:
        client = CdseClient(Credentials("alice", "pw"), cdse.settings)
"""
from __future__ import annotations

import datetime
import hashlib
import json
import re
import secrets
import socket
import sys
import threading
import time
import urllib.parse
import uuid
import zipfile
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

from landslide_plugin.core.copernicus import CdseSettings

TOKEN_PATH = "/auth/realms/CDSE/protocol/openid-connect/token"
NAME_RE = re.compile(r"^(S2[A-D])_MSIL2A_(\d{8}T\d{6})_N(\d{2})(\d{2})_R(\d{3})_T(\d{2}[A-Z]{3})_(\d{8}T\d{6})\.SAFE$")


# -- products ----------------------------------------------------------------------------------------


class MockProduct:
    """A SAFE zip served by the mock: its catalogue entry, its file tree and its bytes."""

    def __init__(self, zip_path, *, product_id: str | None = None, cloud_cover: float = 5.0,
                 footprint: tuple[float, float, float, float] | None = None, online: bool = True):
        self.zip_path = Path(zip_path)
        self.data = self.zip_path.read_bytes()
        self.id = product_id or str(uuid.uuid4())
        self.cloud_cover = float(cloud_cover)
        self.online = online
        self.files: dict[str, bytes] = {}
        self.folders: set[str] = set()  # empty folders too (DATASTRIP, AUX_DATA, QI_DATA), as listed by the service
        with zipfile.ZipFile(self.zip_path) as archive:
            tops = {n.split("/", 1)[0] for n in archive.namelist()}
            if len(tops) != 1:
                raise ValueError(f"{zip_path} does not hold exactly one .SAFE folder")
            self.name = tops.pop()
            for info in archive.infolist():
                inner = info.filename.split("/", 1)[1] if "/" in info.filename else ""
                if info.is_dir() and inner:
                    self.folders.add(inner.rstrip("/"))
                if info.is_dir() or not inner:
                    continue
                self.files[inner] = archive.read(info)
        match = NAME_RE.match(self.name)
        if not match:
            raise ValueError(f"{self.name} is not a Sentinel-2 L2A product name")
        self.spacecraft, sensing, major, minor, orbit, tile, self.processed = match.groups()
        self.sensing = datetime.datetime.strptime(sensing, "%Y%m%dT%H%M%S")
        self.baseline = f"{major}.{minor}"
        self.relative_orbit = int(orbit)
        self.tile = tile
        self.footprint = footprint or self._grid_footprint()
        self.md5 = hashlib.md5(self.data).hexdigest()

    def _grid_footprint(self) -> tuple[float, float, float, float]:
        from rasterio.warp import transform_bounds

        tile_xml = next(v.decode() for k, v in self.files.items() if k.endswith("MTD_TL.xml"))
        epsg = re.search(r"EPSG:(\d+)", tile_xml).group(1)
        block = re.search(r'<Geoposition resolution="20">(.*?)</Geoposition>', tile_xml, re.S).group(1)
        ulx, uly = (float(re.search(f"<{t}>([^<]+)</{t}>", block).group(1)) for t in ("ULX", "ULY"))
        size = re.search(r'<Size resolution="20">\s*<NROWS>(\d+)</NROWS>\s*<NCOLS>(\d+)</NCOLS>', tile_xml)
        rows, cols = int(size.group(1)), int(size.group(2))
        return transform_bounds(f"EPSG:{epsg}", "EPSG:4326", ulx, uly - 20 * rows, ulx + 20 * cols, uly)

    def attributes(self) -> list[dict]:
        def attr(name, value, kind):
            return {"@odata.type": f"#OData.CSC.{kind}Attribute", "Name": name, "Value": value, "ValueType": kind}

        end = self.sensing + datetime.timedelta(seconds=1)
        return [
            attr("origin", "ESA", "String"),
            attr("tileId", self.tile, "String"),
            attr("cloudCover", self.cloud_cover, "Double"),
            attr("orbitNumber", 30512, "Integer"),
            attr("productType", "S2MSI2A", "String"),
            attr("processingLevel", "S2MSI2A", "String"),
            attr("processorVersion", self.baseline, "String"),
            attr("relativeOrbitNumber", self.relative_orbit, "Integer"),
            attr("platformShortName", "SENTINEL-2", "String"),
            attr("platformSerialIdentifier", self.spacecraft[-1], "String"),
            attr("beginningDateTime", _iso(self.sensing), "DateTimeOffset"),
            attr("endingDateTime", _iso(end), "DateTimeOffset"),
        ]

    def odata(self, expand: bool) -> dict:
        w, s, e, n = self.footprint
        ring = [[w, s], [e, s], [e, n], [w, n], [w, s]]
        wkt = ",".join(f"{x} {y}" for x, y in ring)
        start = _iso(self.sensing)
        item = {
            "@odata.mediaContentType": "application/octet-stream",
            "Id": self.id, "Name": self.name, "ContentType": "application/octet-stream",
            "ContentLength": len(self.data), "OriginDate": start, "PublicationDate": start,
            "ModificationDate": start, "Online": self.online, "EvictionDate": "",
            "S3Path": f"/eodata/Sentinel-2/MSI/L2A/{self.sensing:%Y/%m/%d}/{self.name}",
            "Checksum": [{"Value": self.md5, "Algorithm": "MD5", "ChecksumDate": start}],
            "ContentDate": {"Start": start, "End": start},
            "Footprint": f"geography'SRID=4326;POLYGON (({wkt}))'",
            "GeoFootprint": {"type": "Polygon", "coordinates": [ring]},
        }
        if expand:
            item["Attributes"] = self.attributes()
        return item

    def children(self, path: list[str]) -> list[tuple[str, int, int]] | None:
        """(name, size, number of children) under ``path`` inside the SAFE folder; None if no such folder."""
        prefix = "/".join(path) + "/" if path else ""
        entries: dict[str, list] = {}
        for file_path, content in self.files.items():
            if not file_path.startswith(prefix):
                continue
            rest = file_path[len(prefix):]
            head, _, tail = rest.partition("/")
            entry = entries.setdefault(head, [0, set()])
            if tail:
                entry[1].add(tail.split("/", 1)[0])
            else:
                entry[0] = len(content)
        for folder in self.folders:
            if folder.startswith(prefix) and "/" not in folder[len(prefix):]:
                entries.setdefault(folder[len(prefix):], [0, set()])
        if not entries and path and "/".join(path) not in self.folders:
            return None
        return [(name, size, len(kids)) for name, (size, kids) in sorted(entries.items())]


def make_product(folder, *, sensing_time: datetime.datetime, tile: str = "T37SCB", baseline: str = "05.09",
                 relative_orbit: int = 78, spacecraft: str = "S2B", size: int = 32, seed: int = 0,
                 epsg: int = 32637, ulx: float = 199980.0, uly: float = 4100040.0, **product_options) -> MockProduct:
    """A small real SAFE L2A zip (every 20 m band the pipeline reads, plus SCL) wrapped for the mock."""
    from landslide_plugin.examples.safe_format import write_l2a_product

    rng = np.random.default_rng(seed)
    dn = {band: rng.integers(1000, 4000, (size, size), dtype=np.uint16)
          for band in ("B02", "B03", "B04", "B05", "B8A", "B11", "B12")}
    scl = rng.choice(np.array([4, 5, 6, 8], dtype=np.uint8), (size, size))
    folder = Path(folder) / f"src_{tile}_{sensing_time:%Y%m%d%H%M%S}_{baseline}_{seed}"
    path = write_l2a_product(folder, dn=dn, scl=scl, epsg=epsg, ulx=ulx, uly=uly, sensing_time=sensing_time,
                             tile=tile, relative_orbit=relative_orbit, baseline=baseline, spacecraft=spacecraft,
                             as_zip=True)
    return MockProduct(path, **product_options)


# -- an event: several generated dates over an area ----------------------------------------------------


#: The dates of the event scenario: label -> (date, after the event, relative orbit, baseline, cloudy over the area).
#: Event 2023-02-06. Post: a date cloudy over the area only, the clear chosen date in two baselines, a clear
#: later date of the other orbit. Pre: the same-season date a year before (the expected choice), a cloudy
#: same-season date, a same-season date of the other orbit, an off-season date and a cloudy recent one.
EVENT_DATES = {
    "post_cloudy_aoi": ("2023-02-10", True, 78, "05.09", True),
    "post_n0509": ("2023-02-15", True, 78, "05.09", False),
    "post": ("2023-02-15", True, 78, "05.10", False),
    "post_other_orbit": ("2023-02-17", True, 35, "05.09", False),
    "pre": ("2022-02-14", False, 78, "05.10", False),
    "pre_other_orbit": ("2022-02-16", False, 35, "05.10", False),
    "pre_cloudy_same_season": ("2022-02-19", False, 78, "05.10", True),
    "pre_off_season": ("2022-12-20", False, 78, "05.10", False),
    "pre_recent_cloudy": ("2023-01-25", False, 78, "05.10", True),
}
EVENT_DATE = datetime.date(2023, 2, 6)
#: Sensing times of the two relative orbits over the tile.
ORBIT_TIMES = {78: datetime.time(8, 13, 29), 35: datetime.time(8, 23, 11)}


@dataclass
class EventScenario:
    """Products of the event scenario, the area of interest (lon/lat box) and what a good choice is."""

    products: dict[str, MockProduct]       # label (EVENT_DATES) -> product
    aoi: tuple[float, float, float, float]  # west, south, east, north
    aoi_pixels: tuple[int, int, int, int]   # row0, row1, col0, col1 on the 20 m grid
    event_date: datetime.date
    truth: Path
    dem: Path
    folder: Path

    def __getitem__(self, label: str) -> MockProduct:
        return self.products[label]

    def extent(self) -> str:
        """The area as a Processing extent string."""
        w, s, e, n = self.aoi
        return f"{w},{e},{s},{n} [EPSG:4326]"


def make_event_scenario(folder, *, size: int = 128, seed: int = 0, aoi_fraction: float = 0.3,
                        dates: dict | None = None) -> EventScenario:
    """Write the products of ``EVENT_DATES`` (real SAFE zips with real SCL JP2s from the built-in example's
    simulated ground: scars after the event, season-dependent fields and reservoir) and wrap them for the mock.

    The area of interest is the central ``aoi_fraction`` of the tile on each side; "cloudy" dates have an
    opaque cloud over it (and a few pixels around), so the tile as a whole stays mostly clear: its catalogue
    cloud cover is the cloud share of its own SCL.
    """
    import rasterio
    from rasterio.crs import CRS
    from rasterio.transform import from_origin
    from rasterio.warp import transform_bounds

    from landslide_plugin.core.rasters import geotiff_profile
    from landslide_plugin.examples.example_data import scene_latitude, simulate_scene, write_date_product

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    epsg, ulx, uly, pixel = 32637, 300000.0, 4200000.0, 20.0
    scene = simulate_scene(size, seed, pre_date="2022-02-14", post_date="2023-02-15", cloud_fraction=(0.0, 0.0),
                           latitude=scene_latitude(epsg, uly, size))
    lo, hi = int(round(size * (0.5 - aoi_fraction / 2))), int(round(size * (0.5 + aoi_fraction / 2)))
    margin = 3
    cloud_box = (lo - margin, hi + margin, lo - margin, hi + margin)
    products = {}
    for index, (label, (day, after, orbit, baseline, cloudy)) in enumerate((dates or EVENT_DATES).items()):
        path, cover = write_date_product(
            scene, folder / label, date=day, after_event=after, cloud_fraction=0.0,
            cloud_boxes=[cloud_box] if cloudy else [], noise_seed=seed * 100 + index, sensing_time=ORBIT_TIMES[orbit],
            relative_orbit=orbit, baseline=baseline, epsg=epsg, ulx=ulx, uly=uly)
        products[label] = MockProduct(path, cloud_cover=round(cover, 2))
    # The area: pixel edges lo..hi of the grid, in lon/lat, pulled in by a tenth of a pixel.
    inset = pixel / 10
    aoi = transform_bounds(f"EPSG:{epsg}", "EPSG:4326", ulx + lo * pixel + inset, uly - hi * pixel + inset,
                           ulx + hi * pixel - inset, uly - lo * pixel - inset, densify_pts=21)
    like = {"crs": CRS.from_epsg(epsg), "transform": from_origin(ulx, uly, pixel, pixel), "width": size, "height": size}
    truth, dem = folder / "truth.tif", folder / "dem.tif"
    with rasterio.open(truth, "w", **geotiff_profile(like, 1, "uint8", 255)) as dst:
        dst.write(scene.truth, 1)
    with rasterio.open(dem, "w", **geotiff_profile(like, 1)) as dst:
        dst.write(scene.dem.astype("float32"), 1)
    return EventScenario(products=products, aoi=tuple(aoi), aoi_pixels=(lo, hi, lo, hi), event_date=EVENT_DATE,
                         truth=truth, dem=dem, folder=folder)


def _iso(moment: datetime.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


# -- $filter ------------------------------------------------------------------------------------------


class FilterError(ValueError):
    pass


def split_and(text: str) -> list[str]:
    """Split at top-level ``and`` (outside parentheses and quotes)."""
    parts, depth, quoted, start, i = [], 0, False, 0, 0
    lower = text.lower()
    while i < len(text):
        ch = text[i]
        if ch == "'":
            quoted = not quoted
        elif not quoted and ch == "(":
            depth += 1
        elif not quoted and ch == ")":
            depth -= 1
            if depth < 0:
                raise FilterError("unbalanced parentheses")
        elif not quoted and depth == 0 and lower.startswith(" and ", i):
            parts.append(text[start:i].strip())
            i += 5
            start = i
            continue
        i += 1
    if depth or quoted:
        raise FilterError("unbalanced parentheses or quotes")
    parts.append(text[start:].strip())
    return parts


_OPS = {"eq": lambda a, b: a == b, "ne": lambda a, b: a != b, "lt": lambda a, b: a < b,
        "le": lambda a, b: a <= b, "gt": lambda a, b: a > b, "ge": lambda a, b: a >= b}
_NUMBER = r"[-+]?\d+(?:\.\d+)?"


def compile_filter(text: str):
    """A predicate on MockProduct for the supported subset of the CDSE OData ``$filter``."""
    tests = []
    for clause in split_and(text):
        tests.append(_compile_clause(clause))
    return lambda product: all(test(product) for test in tests)


def _compile_clause(clause: str):
    match = re.fullmatch(r"Collection/Name eq '([^']*)'", clause)
    if match:
        collection = match.group(1)
        return lambda p: collection == "SENTINEL-2"
    match = re.fullmatch(r"Name eq '([^']*)'", clause)
    if match:
        wanted = match.group(1)
        return lambda p: p.name == wanted
    match = re.fullmatch(
        r"Attributes/OData\.CSC\.(String|Double|Integer)Attribute/any\(att:att/Name eq '(\w+)' and "
        r"att/OData\.CSC\.(String|Double|Integer)Attribute/Value (eq|ne|lt|le|gt|ge) ('[^']*'|" + _NUMBER + r")\)",
        clause)
    if match:
        kind, name, kind2, op, raw = match.groups()
        if kind != kind2:
            raise FilterError(f"attribute types differ in {clause}")
        if kind == "String":
            if not raw.startswith("'"):
                raise FilterError(f"StringAttribute value must be quoted in {clause}")
            value = raw[1:-1]
        else:
            if raw.startswith("'"):
                raise FilterError(f"{kind}Attribute value must be a number in {clause}")
            value = float(raw)

        def test(p, name=name, kind=kind, op=op, value=value):
            for attr in p.attributes():
                if attr["Name"] == name and attr["ValueType"] == kind:
                    return _OPS[op](attr["Value"], value)
            return False

        return test
    match = re.fullmatch(r"ContentDate/(Start|End) (lt|le|gt|ge|eq) (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,6})?Z)",
                         clause)
    if match:
        _, op, raw = match.groups()
        moment = _parse_z(raw)
        return lambda p, op=op, moment=moment: _OPS[op](p.sensing, moment)
    match = re.fullmatch(r"OData\.CSC\.Intersects\(area=geography'SRID=4326;(POLYGON|POINT)\s*(\(.*\))'\)", clause)
    if match:
        kind, body = match.groups()
        box = _geometry_box(kind, body)

        def intersects(p, box=box):
            w, s, e, n = p.footprint
            return not (box[0] > e or box[2] < w or box[1] > n or box[3] < s)

        return intersects
    raise FilterError(f"Invalid filter clause: {clause}")


def _parse_z(raw: str) -> datetime.datetime:
    head, _, fraction = raw[:-1].partition(".")
    moment = datetime.datetime.strptime(head, "%Y-%m-%dT%H:%M:%S")
    return moment + datetime.timedelta(microseconds=int((fraction + "000000")[:6])) if fraction else moment


def _geometry_box(kind: str, body: str) -> tuple[float, float, float, float]:
    if kind == "POINT":
        match = re.fullmatch(rf"\(({_NUMBER}) ({_NUMBER})\)", body)
        if not match:
            raise FilterError(f"invalid POINT {body}")
        points = [(float(match.group(1)), float(match.group(2)))]
    else:
        match = re.fullmatch(r"\(\((.*)\)\)", body)
        if not match or "(" in match.group(1):
            raise FilterError(f"invalid POLYGON {body}: one ring expected")
        points = []
        for pair in match.group(1).split(","):
            numbers = pair.strip().split()
            if len(numbers) != 2 or not all(re.fullmatch(_NUMBER, v) for v in numbers):
                raise FilterError(f"invalid coordinate {pair!r} in POLYGON")
            points.append((float(numbers[0]), float(numbers[1])))
        if len(points) < 4 or points[0] != points[-1]:
            raise FilterError("POLYGON ring must have at least four points and be closed")
    for lon, lat in points:
        if not (-180 <= lon <= 180 and -90 <= lat <= 90):
            raise FilterError(f"coordinate ({lon} {lat}) is not longitude latitude")
    lons, lats = [p[0] for p in points], [p[1] for p in points]
    return min(lons), min(lats), max(lons), max(lats)


# -- the servers ------------------------------------------------------------------------------------


@dataclass
class RequestRecord:
    host: str              # "catalogue" or "download"
    method: str
    path: str
    query: str
    authorized: bool       # an Authorization header was sent
    range: str | None
    status: int = 0


@dataclass
class _Access:
    user: str
    expires: float
    uses: int = 0


@dataclass
class _Faults:
    drops: dict = field(default_factory=dict)       # name fragment -> bytes to send before dropping
    corrupt: set = field(default_factory=set)       # product ids whose whole stream gets one byte flipped
    failures: list = field(default_factory=list)    # [status, remaining count, code, retry_after]
    host_failures: dict = field(default_factory=dict)  # "token" / "catalogue" -> [[status, count, retry_after]]
    stalls: dict = field(default_factory=dict)      # "token" / "catalogue" / "download" -> [[seconds, count]]
    body_stalls: dict = field(default_factory=dict)  # name fragment -> (bytes to send, seconds to pause)
    hidden: set = field(default_factory=set)        # name fragments of files neither listed nor served


class MockCdse:
    """Context manager running the two mock hosts; ``.settings`` points a CdseClient at them."""

    def __init__(self, products=(), *, users: dict | None = None, totp: dict | None = None,
                 access_lifetime: int = 600, refresh_lifetime: int = 3600, max_streams: int = 4,
                 chunk_size: int = 64 * 1024, chunk_delay: float = 0.0):
        self.products = {p.id: p for p in products}
        self.users = dict(users or {"alice": "correct horse"})
        self.totp = dict(totp or {})
        self.access_lifetime = access_lifetime
        self.refresh_lifetime = refresh_lifetime
        self.max_streams = max_streams
        self.chunk_size = chunk_size
        self.chunk_delay = chunk_delay
        self.expire_access_after_requests: int | None = None
        self.requests: list[RequestRecord] = []
        self.grants: list[str] = []
        self.max_parallel = 0
        self._active = 0
        self._access: dict[str, _Access] = {}
        self._refresh: dict[str, tuple[str, float]] = {}
        self._faults = _Faults()
        self._lock = threading.Lock()
        self._release = threading.Event()  # ends every stall when the mock stops
        self._servers: list[ThreadingHTTPServer] = []

    # -- fault injection ----------------------------------------------------------------------
    def drop_after(self, name_fragment: str, nbytes: int) -> None:
        """Close the connection after ``nbytes`` of the next download whose path contains the fragment."""
        self._faults.drops[name_fragment] = nbytes

    def corrupt(self, product_id: str) -> None:
        """Flip one byte in every whole-product stream of this product (its MD5 then mismatches)."""
        self._faults.corrupt.add(product_id)

    def fail_next(self, status: int, count: int = 1, code: str | None = None,
                  retry_after: int | None = None) -> None:
        """Answer the next ``count`` download requests with ``status`` (429s say ``Retry-After: 0``
        unless ``retry_after`` is given)."""
        self._faults.failures.append([status, count, code, retry_after])

    def fail_token(self, status: int, count: int = 1, retry_after: int | None = None) -> None:
        """Answer the next ``count`` token requests (login and refresh) with ``status``."""
        self._faults.host_failures.setdefault("token", []).append([status, count, retry_after])

    def fail_catalogue(self, status: int, count: int = 1, retry_after: int | None = None) -> None:
        """Answer the next ``count`` catalogue requests (search, product, Nodes listings) with ``status``."""
        self._faults.host_failures.setdefault("catalogue", []).append([status, count, retry_after])

    def stall(self, kind: str, seconds: float, count: int = 1) -> None:
        """Hold the next ``count`` requests of ``kind`` ("token", "catalogue" or "download") for
        ``seconds`` before answering, as an overloaded service does."""
        if kind not in ("token", "catalogue", "download"):
            raise ValueError(f"unknown request kind {kind!r}")
        self._faults.stalls.setdefault(kind, []).append([seconds, count])

    def stall_after(self, name_fragment: str, nbytes: int, seconds: float) -> None:
        """Send ``nbytes`` of the next download whose path contains the fragment, then pause ``seconds``."""
        self._faults.body_stalls[name_fragment] = (nbytes, seconds)

    def hide_files(self, name_fragment: str) -> None:
        """Files whose path contains the fragment are neither listed under Nodes nor served (404), as when
        a product lacks a file."""
        self._faults.hidden.add(name_fragment)

    def _hidden(self, path: str) -> bool:
        return any(fragment in path for fragment in self._faults.hidden)

    def _take_failure(self, kind: str) -> tuple[int, int | None] | None:
        with self._lock:
            for failure in self._faults.host_failures.get(kind, []):
                if failure[1] > 0:
                    failure[1] -= 1
                    return failure[0], failure[2]
        return None

    def _stall(self, kind: str) -> None:
        with self._lock:
            seconds = 0.0
            for stall in self._faults.stalls.get(kind, []):
                if stall[1] > 0:
                    stall[1] -= 1
                    seconds = stall[0]
                    break
        if seconds:
            self._release.wait(seconds)

    def expire_access_after(self, requests: int | None) -> None:
        """Every access token expires after this many authenticated download requests."""
        self.expire_access_after_requests = requests

    def expire_refresh_tokens(self) -> None:
        with self._lock:
            self._refresh = {k: (user, 0.0) for k, (user, _) in self._refresh.items()}

    def expire_access_tokens(self) -> None:
        with self._lock:
            for record in self._access.values():
                record.expires = 0.0

    # -- lifecycle ----------------------------------------------------------------------------
    def __enter__(self) -> MockCdse:
        self._release.clear()
        for role in ("catalogue", "download"):
            server = _Server(("127.0.0.1", 0), _make_handler(self, role))
            server.daemon_threads = True
            threading.Thread(target=server.serve_forever, args=(0.05,), name=f"mock-cdse-{role}", daemon=True).start()
            self._servers.append(server)
        return self

    def __exit__(self, *exc) -> None:
        self._release.set()
        for server in self._servers:
            server.shutdown()
            server.server_close()

    def url(self, role: str) -> str:
        server = self._servers[0 if role == "catalogue" else 1]
        return f"http://127.0.0.1:{server.server_address[1]}"

    @property
    def settings(self) -> CdseSettings:
        return CdseSettings(token_url=self.url("catalogue") + TOKEN_PATH,
                            catalogue_url=self.url("catalogue") + "/odata/v1",
                            download_url=self.url("download") + "/odata/v1",
                            backoff_base=0.01, backoff_max=0.05, timeout=10.0, chunk_size=4096)

    def env(self) -> dict[str, str]:
        """Environment variables that point CdseSettings.from_env() at this mock."""
        settings = self.settings
        return {"LANDSLIDE_CDSE_TOKEN_URL": settings.token_url,
                "LANDSLIDE_CDSE_CATALOGUE_URL": settings.catalogue_url,
                "LANDSLIDE_CDSE_DOWNLOAD_URL": settings.download_url,
                "LANDSLIDE_CDSE_BACKOFF": "0.01"}

    def downloads(self, host: str = "download") -> list[RequestRecord]:
        return [r for r in self.requests if r.host == host and r.path.endswith("/$value")]

    # -- tokens -------------------------------------------------------------------------------
    def issue(self, user: str) -> dict:
        access, refresh = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        now = time.time()
        self._access[access] = _Access(user, now + self.access_lifetime)
        self._refresh[refresh] = (user, now + self.refresh_lifetime)
        return {"access_token": access, "expires_in": self.access_lifetime,
                "refresh_expires_in": self.refresh_lifetime, "refresh_token": refresh,
                "token_type": "Bearer", "not-before-policy": 0, "session_state": str(uuid.uuid4()),
                "scope": "AUDIENCE_PUBLIC openid email profile ondemand_processing user-context"}

    def token_response(self, form: dict) -> tuple[int, dict]:
        grant = form.get("grant_type", "")
        with self._lock:
            self.grants.append(grant)
            if form.get("client_id") != "cdse-public":
                return 401, {"error": "invalid_client",
                             "error_description": "Invalid client or Invalid client credentials"}
            if grant == "password":
                user, password = form.get("username", ""), form.get("password", "")
                if self.users.get(user) != password or (user in self.totp and form.get("totp") != self.totp[user]):
                    return 401, {"error": "invalid_grant", "error_description": "Invalid user credentials"}
                return 200, self.issue(user)
            if grant == "refresh_token":
                user, expires = self._refresh.get(form.get("refresh_token", ""), ("", 0.0))
                if not user or time.time() >= expires:
                    return 400, {"error": "invalid_grant", "error_description": "Token is not active"}
                return 200, self.issue(user)
            return 400, {"error": "unsupported_grant_type", "error_description": f"Unsupported grant_type {grant}"}

    def check_bearer(self, header: str | None) -> tuple[int, dict] | None:
        if not header or not header.startswith("Bearer "):
            return 401, {"code": "DAT-ZIP-604", "message": "Token not found"}
        with self._lock:
            record = self._access.get(header[7:])
            if record is None:
                return 401, {"code": "DAT-ZIP-111", "message": "Invalid token"}
            record.uses += 1
            limit = self.expire_access_after_requests
            if time.time() >= record.expires or (limit is not None and record.uses > limit):
                return 401, {"code": "DAT-ZIP-109", "message": "Expired signature!"}
        return None


class _Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        if isinstance(sys.exc_info()[1], ConnectionError):
            return  # a client that gave up (a cancelled request): nothing to report
        super().handle_error(request, client_address)


def _make_handler(mock: MockCdse, role: str):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # keep pytest output clean
            pass

        # -- plumbing --------------------------------------------------------------------
        def _record(self) -> RequestRecord:
            split = urllib.parse.urlsplit(self.path)
            record = RequestRecord(role, self.command, urllib.parse.unquote(split.path), split.query,
                                   "Authorization" in self.headers, self.headers.get("Range"))
            with mock._lock:
                mock.requests.append(record)
            return record

        def _json(self, record: RequestRecord, status: int, payload, headers: dict | None = None) -> None:
            body = json.dumps(payload).encode()
            record.status = status
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)

        # -- verbs -----------------------------------------------------------------------
        def do_POST(self):  # noqa: N802
            record = self._record()
            length = int(self.headers.get("Content-Length") or 0)
            form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
            if role != "catalogue" or record.path != TOKEN_PATH:
                return self._json(record, 404, {"detail": "Not found"})
            mock._stall("token")
            if self._injected_failure(record, "token"):
                return None
            status, payload = mock.token_response(form)
            self._json(record, status, payload)

        def _injected_failure(self, record, kind) -> bool:
            failure = mock._take_failure(kind)
            if failure is None:
                return False
            status, retry_after = failure
            message = "Too many requests" if status == 429 else "Service unavailable"
            payload = ({"error": "temporarily_unavailable", "error_description": message}
                       if kind == "token" else {"detail": message})
            self._json(record, status, payload, None if retry_after is None else {"Retry-After": str(retry_after)})
            return True

        def do_GET(self):  # noqa: N802
            record = self._record()
            split = urllib.parse.urlsplit(self.path)
            path = record.path
            if not path.startswith("/odata/v1/"):
                return self._json(record, 404, {"detail": "Not found"})
            rest = path[len("/odata/v1/"):]
            try:
                query = _parse_query(split.query)
            except FilterError as exc:
                return self._json(record, 400, {"detail": str(exc)})
            if not path.endswith("/$value"):
                mock._stall("catalogue")
                if self._injected_failure(record, "catalogue"):
                    return None
            if rest == "Products":
                return self._search(record, query)
            match = re.fullmatch(r"Products\('?([^)']+)'?\)((?:/Nodes\([^)]+\))*)(/Nodes|/\$value)?", rest)
            if not match:
                return self._json(record, 404, {"detail": f"Not found: {rest}"})
            product = mock.products.get(match.group(1))
            if product is None:
                return self._json(record, 404, {"detail": f"Product {match.group(1)} not found"})
            nodes = re.findall(r"/Nodes\(([^)]+)\)", match.group(2))
            tail = match.group(3)
            if not tail:
                if nodes:
                    return self._json(record, 404, {"detail": "Node metadata is not served by the mock"})
                return self._json(record, 200, dict(product.odata("Attributes" in query.get("$expand", "")),
                                                    **{"@odata.context": "$metadata#Products/$entity"}))
            if tail == "/Nodes":
                return self._nodes(record, product, nodes)
            if role == "catalogue":
                # The catalogue host hands binary content to the download host.
                location = mock.url("download") + split.path + (f"?{split.query}" if split.query else "")
                record.status = 301
                self.send_response(301)
                self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return None
            return self._value(record, product, nodes)

        # -- catalogue -------------------------------------------------------------------
        def _search(self, record, query):
            unknown = set(query) - {"$filter", "$orderby", "$top", "$skip", "$expand", "$count"}
            if unknown:
                return self._json(record, 400, {"detail": f"Unknown query option(s) {', '.join(sorted(unknown))}"})
            try:
                predicate = compile_filter(query.get("$filter", "")) if query.get("$filter") else (lambda p: True)
                top = int(query.get("$top", "20"))
                skip = int(query.get("$skip", "0"))
            except (FilterError, ValueError) as exc:
                return self._json(record, 400, {"detail": f"Invalid query: {exc}"})
            if not 0 <= top <= 1000:
                return self._json(record, 400, {"detail": "$top must be between 0 and 1000"})
            expand = query.get("$expand", "")
            if expand not in ("", "Attributes"):
                return self._json(record, 400, {"detail": f"Unsupported $expand {expand}"})
            matches = [p for p in mock.products.values() if predicate(p)]
            order = query.get("$orderby", "ContentDate/Start asc")
            match = re.fullmatch(r"(ContentDate/Start|Name)(?: (asc|desc))?", order)
            if not match:
                return self._json(record, 400, {"detail": f"Unsupported $orderby {order}"})
            key = (lambda p: p.sensing) if match.group(1).startswith("ContentDate") else (lambda p: p.name)
            matches.sort(key=lambda p: (key(p), p.name), reverse=match.group(2) == "desc")
            page = matches[skip:skip + top]
            payload = {"@odata.context": "$metadata#Products(Attributes())" if expand else "$metadata#Products",
                       "value": [p.odata(bool(expand)) for p in page]}
            if skip + top < len(matches):
                following = dict(query, **{"$skip": str(skip + top), "$top": str(top)})
                payload["@odata.nextLink"] = (mock.url("catalogue") + "/odata/v1/Products?"
                                              + urllib.parse.urlencode(following, quote_via=urllib.parse.quote))
            return self._json(record, 200, payload)

        def _nodes(self, record, product, nodes):
            # Products(Id)/Nodes lists the SAFE folder; deeper levels list its content.
            if not nodes:
                entries = [(product.name, 0, len(product.children([])))]
            else:
                if nodes[0] != product.name:
                    return self._json(record, 404, {"detail": f"Node {nodes[0]} not found"})
                entries = product.children(nodes[1:])
                if entries is None:
                    return self._json(record, 404, {"detail": f"Node {'/'.join(nodes)} not found"})
            entries = [e for e in entries if not mock._hidden("/".join([*nodes, e[0]]))]
            base = f"{mock.url(role)}/odata/v1/Products({product.id})" + "".join(f"/Nodes({n})" for n in nodes)
            result = [{"Id": name, "Name": name, "ContentLength": size, "ChildrenNumber": kids,
                       "Nodes": {"uri": f"{base}/Nodes({name})/Nodes"}} for name, size, kids in entries]
            return self._json(record, 200, {"@odata.context": "$metadata#Nodes", "result": result})

        # -- downloads -------------------------------------------------------------------
        def _value(self, record, product, nodes):
            refused = mock.check_bearer(self.headers.get("Authorization"))
            if refused:
                return self._json(record, *refused)
            mock._stall("download")
            with mock._lock:
                for failure in mock._faults.failures:
                    if failure[1] > 0:
                        failure[1] -= 1
                        status, code, retry_after = failure[0], failure[2], failure[3]
                        break
                else:
                    status = None
            if status is not None:
                default = "DAT-ZIP-100" if status == 429 else "DAT-ZIP-500"
                message = "Too many requests" if status == 429 else "Service unavailable"
                if retry_after is None and status == 429:
                    retry_after = 0
                return self._json(record, status, {"code": code or default, "message": message},
                                  None if retry_after is None else {"Retry-After": str(retry_after)})
            if nodes:
                if nodes[0] != product.name or "/".join(nodes[1:]) not in product.files or \
                        mock._hidden("/".join(nodes)):
                    return self._json(record, 404, {"detail": f"Node {'/'.join(nodes)} not found"})
                data, filename = product.files["/".join(nodes[1:])], nodes[-1]
            else:
                data, filename = product.data, product.name[:-5] + ".zip"
                if product.id in mock._faults.corrupt:
                    middle = len(data) // 2
                    data = data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1:]
            with mock._lock:
                if mock._active >= mock.max_streams:
                    too_many = True
                else:
                    too_many = False
                    mock._active += 1
                    mock.max_parallel = max(mock.max_parallel, mock._active)
            if too_many:
                return self._json(record, 429, {"code": "DAT-ZIP-100", "message": "Too many parallel sessions"})
            try:
                self._stream(record, data, filename, "/".join(nodes) or product.name)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True  # the client went away (a cancelled download)
            finally:
                with mock._lock:
                    mock._active -= 1

        def _stream(self, record, data: bytes, filename: str, label: str):
            start, end = 0, len(data) - 1
            requested = self.headers.get("Range")
            if requested:
                match = re.fullmatch(r"bytes=(\d+)-(\d*)", requested.strip())
                if not match:
                    return self._json(record, 416, {"detail": "Invalid range"},
                                      {"Content-Range": f"bytes */{len(data)}"})
                start = int(match.group(1))
                end = min(int(match.group(2)), len(data) - 1) if match.group(2) else len(data) - 1
                if start >= len(data) or start > end:
                    return self._json(record, 416, {"detail": "Range not satisfiable"},
                                      {"Content-Range": f"bytes */{len(data)}"})
            drop_at, pause_at, pause = None, None, 0.0
            with mock._lock:
                for fragment, nbytes in list(mock._faults.drops.items()):
                    if fragment in label:
                        drop_at = nbytes
                        del mock._faults.drops[fragment]
                        break
                for fragment, (nbytes, seconds) in list(mock._faults.body_stalls.items()):
                    if fragment in label:
                        pause_at, pause = nbytes, seconds
                        del mock._faults.body_stalls[fragment]
                        break
            body = data[start:end + 1]
            record.status = 206 if requested else 200
            self.send_response(record.status)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Disposition", f'attachment; filename="{filename}"')
            if requested:
                self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
            self.end_headers()
            sent = 0
            while sent < len(body):
                step = mock.chunk_size
                for limit in (drop_at, pause_at):
                    if limit is not None:
                        step = min(step, limit - sent)
                self.wfile.write(body[sent:sent + step])
                self.wfile.flush()
                sent += step
                if pause_at is not None and sent >= pause_at:
                    pause_at = None
                    mock._release.wait(pause)
                if drop_at is not None and sent >= drop_at:
                    # An abrupt close mid-body, as when a connection breaks.
                    self.close_connection = True
                    try:
                        self.connection.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    return None
                if mock.chunk_delay:
                    time.sleep(mock.chunk_delay)
            return None

    return Handler


def _parse_query(query: str) -> dict[str, str]:
    values = {}
    for key, value in urllib.parse.parse_qsl(query, keep_blank_values=True):
        if key in values:
            raise FilterError(f"duplicate query option {key}")
        values[key] = value
    return values


def main(argv=None) -> int:
    """Serve the event scenario on 127.0.0.1 until interrupted: ``PYTHONPATH=. python tests/mock_cdse.py FOLDER``.

    Prints the environment variables that point the plugin at it (and the test account to use).
    """
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("folder", type=Path, help="where the generated products go")
    parser.add_argument("--size", type=int, default=256, help="tile size in 20 m pixels")
    parser.add_argument("--user", default="demo")
    parser.add_argument("--password", default="demo-password")  # pragma: allowlist secret (a local mock)
    args = parser.parse_args(argv)
    scenario = make_event_scenario(args.folder, size=args.size, aoi_fraction=0.5)
    with MockCdse(list(scenario.products.values()), users={args.user: args.password}) as mock:
        for key, value in mock.env().items():
            print(f"export {key}={value}")
        print(f"export CDSE_USERNAME={args.user} CDSE_PASSWORD={args.password}")
        print(f"# area {scenario.extent()}, event {scenario.event_date}; Ctrl-C stops the mock", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
