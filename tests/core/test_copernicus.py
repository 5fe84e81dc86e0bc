"""The Copernicus Data Space client against the local mock service (tests/mock_cdse.py)."""
from __future__ import annotations

import dataclasses
import datetime
import threading
import time
import zipfile
from pathlib import Path

import pytest
import requests
from mock_cdse import MockCdse, compile_filter, make_product

from landslide_plugin.core import copernicus
from landslide_plugin.core.copernicus import (
    CdseAuthError,
    CdseClient,
    CdseError,
    CdseSettings,
    Credentials,
    Product,
    aoi_to_wkt,
    deduplicate,
)
from landslide_plugin.core.rasters import Cancelled

USER, PASSWORD = "alice@example.org", "pa55word-Secret"  # pragma: allowlist secret (a test value)
CREDENTIALS = Credentials(USER, PASSWORD)
SDB_ULX = 300000.0  # tile 37SDB lies east of 37SCB


def t(day: str, clock: str = "08:13:29") -> datetime.datetime:
    return datetime.datetime.fromisoformat(f"{day}T{clock}")


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory):
    """Five products: one acquisition in two baselines, a cloudy one, another tile, a later date."""
    folder = tmp_path_factory.mktemp("cdse_products")
    return {
        "n0509": make_product(folder, sensing_time=t("2023-01-05"), baseline="05.09", cloud_cover=3.2, seed=1),
        "n0510": make_product(folder, sensing_time=t("2023-01-05"), baseline="05.10", cloud_cover=3.2, seed=2),
        "cloudy": make_product(folder, sensing_time=t("2023-01-10"), cloud_cover=61.0, seed=3),
        "east": make_product(folder, sensing_time=t("2023-01-12", "08:23:11"), tile="T37SDB", relative_orbit=35,
                             ulx=SDB_ULX, cloud_cover=10.5, seed=4),
        "later": make_product(folder, sensing_time=t("2023-02-01"), cloud_cover=0.4, seed=5),
    }


@pytest.fixture()
def cdse(catalogue):
    with MockCdse(list(catalogue.values()), users={USER: PASSWORD}) as mock:
        yield mock


@pytest.fixture()
def client(cdse):
    with CdseClient(CREDENTIALS, cdse.settings) as cdse_client:
        yield cdse_client


WORLD = (-180, -90, 180, 90)


def names(products):
    return [p.name for p in products]


# -- search ------------------------------------------------------------------------------------------


def test_search_follows_every_page_in_date_order(cdse, client, catalogue):
    found = client.search(WORLD, "2023-01-01", "2023-12-31", page_size=2)
    assert len(found) == 5
    assert [p.date for p in found] == sorted(p.date for p in found)
    pages = [r for r in cdse.requests if r.path == "/odata/v1/Products"]
    assert len(pages) == 3 and all(r.status == 200 for r in pages)
    assert "%24skip=4" in pages[-1].query or "$skip=4" in pages[-1].query

    east = next(p for p in found if p.id == catalogue["east"].id)
    assert east.name == catalogue["east"].name
    assert (east.tile, east.relative_orbit, east.cloud_cover, east.baseline) == ("37SDB", 35, 10.5, "05.09")
    assert east.date == datetime.datetime(2023, 1, 12, 8, 23, 11, tzinfo=datetime.timezone.utc)
    assert east.size == len(catalogue["east"].data) and east.md5 == catalogue["east"].md5
    assert east.footprint["type"] == "Polygon" and east.online


def test_deduplicate_keeps_the_newest_baseline(client, catalogue):
    found = client.search(WORLD, "2023-01-01", "2023-12-31", page_size=2)
    kept = deduplicate(found)
    assert len(kept) == 4
    assert catalogue["n0510"].name in names(kept) and catalogue["n0509"].name not in names(kept)
    # The same holds whatever the order the catalogue returned them in.
    assert names(deduplicate(list(reversed(found)))) == list(reversed(names(kept)))


def test_deduplicate_ties_go_to_the_latest_processing_time():
    base = dict(id="x", date=datetime.datetime(2023, 1, 5, tzinfo=datetime.timezone.utc), tile="37SCB",
                relative_orbit=78, cloud_cover=1.0, size=1, baseline="05.09")
    old = Product(name="S2B_MSIL2A_20230105T081329_N0509_R078_T37SCB_20230105T095207.SAFE", **base)
    new = Product(name="S2B_MSIL2A_20230105T081329_N0509_R078_T37SCB_20230301T120000.SAFE", **base)
    other_day = dataclasses.replace(old, name=old.name.replace("20230105T081329", "20230110T081329"))
    assert deduplicate([old, new, other_day]) == [new, other_day]


def test_search_filters_cloud_tile_dates_area_and_orbit(client, catalogue):
    everything = ("2023-01-01", "2023-12-31")
    clear = client.search(WORLD, *everything, max_cloud=30)
    assert catalogue["cloudy"].name not in names(clear) and len(clear) == 4

    assert names(client.search(WORLD, *everything, tile="T37SDB")) == [catalogue["east"].name]
    assert names(client.search(WORLD, *everything, tile="37sdb")) == [catalogue["east"].name]

    # A date end is inclusive: the whole of 12 January counts.
    window = client.search(WORLD, datetime.date(2023, 1, 10), datetime.date(2023, 1, 12))
    assert names(window) == [catalogue["cloudy"].name, catalogue["east"].name]

    w, s, e, n = catalogue["east"].footprint
    box = (w + 0.001, s + 0.001, e + 0.01, n + 0.01)
    assert names(client.search(box, *everything)) == [catalogue["east"].name]
    polygon = {"type": "Polygon", "coordinates": [[[box[0], box[1]], [box[2], box[1]], [box[2], box[3]],
                                                   [box[0], box[1]]]]}
    assert names(client.search(polygon, *everything)) == [catalogue["east"].name]
    wkt = f"POLYGON(({box[0]} {box[1]}, {box[2]} {box[1]}, {box[2]} {box[3]}, {box[0]} {box[1]}))"
    assert names(client.search(wkt, *everything)) == [catalogue["east"].name]
    point = {"type": "Point", "coordinates": [(w + e) / 2, (s + n) / 2]}
    assert names(client.search(point, *everything)) == [catalogue["east"].name]

    assert names(client.search(WORLD, *everything, relative_orbit=35)) == [catalogue["east"].name]
    assert client.search((10, 10, 11, 11), *everything) == []


def test_filter_text_is_the_documented_one():
    text = CdseClient(None).search_filter((36.945, 36.202, 38.3, 37.35), datetime.date(2023, 1, 5),
                                          datetime.date(2023, 1, 5), max_cloud=30, tile="T37SCB")
    assert text == (
        "Collection/Name eq 'SENTINEL-2' and "
        "Attributes/OData.CSC.StringAttribute/any(att:att/Name eq 'productType' and "
        "att/OData.CSC.StringAttribute/Value eq 'S2MSI2A') and "
        "ContentDate/Start ge 2023-01-05T00:00:00.000Z and ContentDate/Start lt 2023-01-06T00:00:00.000Z and "
        "OData.CSC.Intersects(area=geography'SRID=4326;POLYGON((36.945 36.202,38.3 36.202,38.3 37.35,"
        "36.945 37.35,36.945 36.202))') and "
        "Attributes/OData.CSC.DoubleAttribute/any(att:att/Name eq 'cloudCover' and "
        "att/OData.CSC.DoubleAttribute/Value le 30.00) and "
        "Attributes/OData.CSC.StringAttribute/any(att:att/Name eq 'tileId' and "
        "att/OData.CSC.StringAttribute/Value eq '37SCB')")
    compile_filter(text)  # the mock accepts exactly this


def test_bad_search_input_gives_clear_errors(client):
    with pytest.raises(ValueError, match="longitude/latitude"):
        client.search((500000, 4000000, 510000, 4010000), "2023-01-01", "2023-01-31")
    with pytest.raises(ValueError, match="period is empty"):
        client.search(WORLD, "2023-02-01", "2023-01-01")
    with pytest.raises(ValueError, match="MGRS"):
        client.search(WORLD, "2023-01-01", "2023-01-31", tile="Kahramanmaras")
    with pytest.raises(ValueError, match="percentage"):
        client.search(WORLD, "2023-01-01", "2023-01-31", max_cloud=130)


def test_mock_rejects_unknown_filter_clauses(cdse):
    response = requests.get(cdse.settings.catalogue_url + "/Products",
                            params={"$filter": "Collection/Name eq 'SENTINEL-2' and foo gt 3"}, timeout=5)
    assert response.status_code == 400 and "foo gt 3" in response.json()["detail"]
    response = requests.get(cdse.settings.catalogue_url + "/Products", params={"$top": "5000"}, timeout=5)
    assert response.status_code == 400


def test_multipolygon_and_many_vertices_become_one_hull():
    multi = {"type": "MultiPolygon", "coordinates": [
        [[[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]], [[[2, 2], [3, 2], [3, 3], [2, 3], [2, 2]]]]}
    assert aoi_to_wkt(multi) == "SRID=4326;POLYGON((0 0,1 0,3 2,3 3,2 3,0 1,0 0))"
    import math

    circle = {"type": "Polygon", "coordinates": [[[math.cos(a / 100), math.sin(a / 100)] for a in range(629)]]}
    assert aoi_to_wkt(circle).count(",") <= 629


# -- credentials and tokens ----------------------------------------------------------------------------


def test_credentials_never_show_the_password(monkeypatch):
    monkeypatch.setenv("CDSE_USERNAME", USER)
    monkeypatch.setenv("CDSE_PASSWORD", PASSWORD)
    monkeypatch.setenv("CDSE_TOTP", "123456")
    credentials = Credentials.from_env()
    assert (credentials.username, credentials.password, credentials.totp) == (USER, PASSWORD, "123456")
    assert PASSWORD not in repr(credentials) and "123456" not in repr(credentials)
    assert PASSWORD not in repr(CdseClient(credentials))
    monkeypatch.delenv("CDSE_PASSWORD")
    with pytest.raises(CdseAuthError, match="CDSE_USERNAME and CDSE_PASSWORD"):
        Credentials.from_env()


def test_settings_from_env(monkeypatch):
    monkeypatch.setenv("LANDSLIDE_CDSE_CATALOGUE_URL", "http://mirror.example/odata/v1/")
    settings = CdseSettings.from_env()
    assert settings.catalogue_url == "http://mirror.example/odata/v1"
    assert settings.download_url == copernicus.DEFAULT_DOWNLOAD_URL
    assert CdseSettings().token_url.startswith("https://identity.dataspace.copernicus.eu/")


def test_wrong_password_gives_a_clear_message(cdse, catalogue, tmp_path):
    with CdseClient(Credentials(USER, "wrong"), cdse.settings) as client, pytest.raises(CdseAuthError) as caught:
        client.download_product(client.get_product(catalogue["later"].id), tmp_path)
    assert str(caught.value) == (f"Copernicus Data Space login failed for user {USER}: invalid user credentials; "
                                 "check the authentication configuration")
    assert list(tmp_path.iterdir()) == []


def test_two_factor_code_is_sent(catalogue, tmp_path):
    with MockCdse([catalogue["later"]], users={USER: PASSWORD}, totp={USER: "424242"}) as mock:
        with CdseClient(Credentials(USER, PASSWORD, "000000"), mock.settings) as client, \
                pytest.raises(CdseAuthError, match="two-factor"):
            client.access_token()
        with CdseClient(Credentials(USER, PASSWORD, "424242"), mock.settings) as client:
            assert client.access_token()


def test_expired_refresh_token_logs_in_again(cdse, client):
    first = client.access_token()
    cdse.expire_access_tokens()
    client._expire(first)
    cdse.expire_refresh_tokens()
    assert client.access_token() != first
    assert cdse.grants == ["password", "refresh_token", "password"]


def test_token_is_reused_until_it_nears_expiry(cdse, client, monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(copernicus.time, "monotonic", lambda: now[0])
    first = client.access_token()
    now[0] += 500  # of the 600 s the service grants
    assert client.access_token() == first
    now[0] += 60   # within a minute of expiry: refreshed before a request can fail
    second = client.access_token()
    assert second != first
    assert cdse.grants == ["password", "refresh_token"]
    now[0] += 3600  # the refresh token is gone too: log in again
    assert client.access_token() not in (first, second)
    assert cdse.grants == ["password", "refresh_token", "password"]


def test_mock_allows_four_parallel_streams_per_user(catalogue):
    source = catalogue["later"]
    with MockCdse([source], users={USER: PASSWORD}, chunk_size=256, chunk_delay=0.02) as mock, \
            CdseClient(CREDENTIALS, mock.settings) as client, requests.Session() as session:
        headers = {"Authorization": f"Bearer {client.access_token()}"}
        url = f"{mock.settings.download_url}/Products({source.id})/$value"
        streams = [session.get(url, headers=headers, stream=True, timeout=5) for _ in range(4)]
        fifth = requests.get(url, headers=headers, stream=True, timeout=5)
        assert [s.status_code for s in streams] == [200] * 4
        assert fifth.status_code == 429 and fifth.json()["code"] == "DAT-ZIP-100"
        for stream in [*streams, fifth]:
            stream.close()


# -- downloads ---------------------------------------------------------------------------------------------


def test_whole_product_download(cdse, client, catalogue, tmp_path):
    product = client.get_product(catalogue["later"].id)
    seen = []
    path = client.download_product(product, tmp_path, whole=True, progress=seen.append)
    assert path == tmp_path / (catalogue["later"].name[:-5] + ".zip")
    assert path.read_bytes() == catalogue["later"].data
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]
    assert seen[-1] == 100 and seen == sorted(seen)
    downloads = cdse.downloads()
    assert len(downloads) == 1 and downloads[0].authorized and downloads[0].status == 200
    # Asking again finds the complete file and fetches nothing.
    assert client.download_product(product, tmp_path, whole=True) == path
    assert len(cdse.downloads()) == 1


def _expected_files(mock_product, bands=copernicus.PIPELINE_BANDS):
    wanted = {"MTD_MSIL2A.xml"}
    for inner in mock_product.files:
        if inner.endswith("MTD_TL.xml") or any(inner.endswith(f"_{b}_20m.jp2") for b in (*bands, "SCL")):
            wanted.add(inner)
    return wanted


def _tree(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def test_per_file_download_is_a_safe_folder_with_only_what_is_needed(catalogue, tmp_path):
    source = catalogue["east"]
    # Slow streams so the parallel downloads overlap: the client must stay within four connections.
    with MockCdse([source], users={USER: PASSWORD}, chunk_size=512, chunk_delay=0.005) as mock:
        with CdseClient(CREDENTIALS, mock.settings) as client:
            path = client.download_product(source.name, tmp_path)  # by name, as a user may type it
        assert path == tmp_path / source.name
        assert sorted(p.name for p in tmp_path.iterdir()) == [source.name]
        assert _tree(path) == _expected_files(source)
        assert len(_tree(path)) == 2 + 6 + 1
        for inner in _tree(path):
            assert (path / inner).read_bytes() == source.files[inner], inner
        assert 2 <= mock.max_parallel <= 4
        assert not [r for r in mock.requests if r.status == 429]
        # Nothing but the needed files was fetched, and never the whole zip.
        assert len(mock.downloads()) == 9
        assert not [r for r in mock.requests if r.path.endswith(f"Products({source.id})/$value")]


def test_per_file_download_adds_missing_bands_to_an_earlier_download(cdse, client, catalogue, tmp_path):
    source = catalogue["later"]
    path = client.download_product(source.id, tmp_path, bands=("B04", "B8A"))
    assert _tree(path) == _expected_files(source, ("B04", "B8A"))
    before = len(cdse.downloads())
    client.download_product(source.id, tmp_path, bands=("B04", "B8A", "B11"))
    assert _tree(path) == _expected_files(source, ("B04", "B8A", "B11"))
    assert len(cdse.downloads()) == before + 1
    with pytest.raises(ValueError, match="B10 not available at 20 m"):
        client.download_product(source.id, tmp_path, bands=("B10",))


def test_download_through_the_catalogue_host_keeps_the_authorisation(cdse, catalogue, tmp_path):
    source = catalogue["later"]
    url = f"{cdse.settings.catalogue_url}/Products({source.id})/$value"
    # What plain requests does: the redirect to the other host loses the header, the service refuses.
    with CdseClient(CREDENTIALS, cdse.settings) as client:
        token = client.access_token()
    plain = requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=5)
    assert plain.status_code == 401 and plain.json()["code"] == "DAT-ZIP-604"

    settings = dataclasses.replace(cdse.settings, download_url=cdse.settings.catalogue_url)
    with CdseClient(CREDENTIALS, settings) as client:
        path = client.download_product(source.id, tmp_path, whole=True)
    assert path.read_bytes() == source.data
    redirected = [r for r in cdse.requests if r.host == "catalogue" and r.path.endswith("/$value")]
    assert redirected[-1].status == 301
    assert cdse.downloads()[-1].authorized and cdse.downloads()[-1].status == 200


def test_token_expiring_mid_download_is_refreshed_and_the_download_resumes(cdse, client, catalogue, tmp_path):
    source = catalogue["n0510"]
    half = len(source.data) // 2
    cdse.drop_after(source.name, half)  # the connection breaks half-way...
    cdse.expire_access_after(1)         # ...and the token has expired by the time the client comes back
    path = client.download_product(source.id, tmp_path, whole=True)
    assert path.read_bytes() == source.data
    statuses = [(r.status, r.range) for r in cdse.downloads()]
    assert statuses == [(200, None), (401, f"bytes={half}-"), (206, f"bytes={half}-")]
    assert cdse.grants == ["password", "refresh_token"]


def test_tokens_expiring_during_a_per_file_download(cdse, client, catalogue, tmp_path):
    source = catalogue["cloudy"]
    cdse.expire_access_after(4)  # nine files: the token expires at least twice
    path = client.download_product(source.id, tmp_path)
    assert _tree(path) == _expected_files(source)
    assert cdse.grants.count("refresh_token") >= 2 and cdse.grants.count("password") == 1
    assert not [r for r in cdse.downloads() if r.status == 401 and r.authorized is False]


def test_too_many_requests_then_success(cdse, client, catalogue, tmp_path):
    source = catalogue["later"]
    cdse.fail_next(429, 2)
    cdse.fail_next(503, 1)
    path = client.download_product(source.id, tmp_path, whole=True)
    assert path.read_bytes() == source.data
    assert [r.status for r in cdse.downloads()] == [429, 429, 503, 200]


def test_a_service_that_keeps_failing_gives_up_naming_the_product(cdse, client, catalogue, tmp_path):
    source = catalogue["later"]
    cdse.fail_next(503, 100)
    with pytest.raises(CdseError, match=rf"product {source.name}: the service still answers HTTP 503"):
        client.download_product(source.id, tmp_path, whole=True)
    assert not (tmp_path / (source.name[:-5] + ".zip")).exists()
    assert len(cdse.downloads()) == client.settings.retries + 1


def test_dropped_connection_resumes_with_a_range_and_is_byte_identical(cdse, client, catalogue, tmp_path):
    source = catalogue["east"]
    cut = len(source.data) // 3
    cdse.drop_after(source.name, cut)
    path = client.download_product(source.id, tmp_path, whole=True)
    assert path.read_bytes() == source.data
    downloads = cdse.downloads()
    assert [(r.status, r.range) for r in downloads] == [(200, None), (206, f"bytes={cut}-")]


def test_dropped_connection_in_a_single_band_file_resumes(cdse, client, catalogue, tmp_path):
    source = catalogue["east"]
    band = next(k for k in source.files if k.endswith("_B11_20m.jp2"))
    cdse.drop_after(band.rsplit("/", 1)[-1], 700)
    path = client.download_product(source.id, tmp_path)
    assert (path / band).read_bytes() == source.files[band]
    assert [r.range for r in cdse.downloads() if r.path.endswith("_B11_20m.jp2)/$value")] == [None, "bytes=700-"]


def test_checksum_mismatch_leaves_no_complete_looking_file(cdse, client, catalogue, tmp_path):
    source = catalogue["later"]
    cdse.corrupt(source.id)
    with pytest.raises(CdseError, match=rf"{source.name}: checksum mismatch"):
        client.download_product(source.id, tmp_path, whole=True)
    assert list(tmp_path.iterdir()) == []


def test_unknown_product_is_named_in_the_error(client):
    with pytest.raises(CdseError, match="00000000-0000-0000-0000-000000000000 is not in the catalogue"):
        client.get_product("00000000-0000-0000-0000-000000000000")
    with pytest.raises(CdseError, match="S2A_MSIL2A_20990101T000000_N0509_R001_T01ABC_20990101T000000.SAFE is not"):
        client.get_product("S2A_MSIL2A_20990101T000000_N0509_R001_T01ABC_20990101T000000")


@pytest.mark.parametrize("whole", [True, False])
def test_cancel_stops_promptly_and_cleans_up(catalogue, tmp_path, whole):
    source = catalogue["later"]
    # About 4 s to stream everything: a prompt cancel returns long before.
    with MockCdse([source], users={USER: PASSWORD}, chunk_size=256, chunk_delay=0.02) as mock:
        client = CdseClient(CREDENTIALS, dataclasses.replace(mock.settings, chunk_size=512))
        started = threading.Event()
        cancel_at = []

        def progress(percent):
            if percent > 0 and not started.is_set():
                started.set()
                cancel_at.append(time.monotonic())

        with client, pytest.raises(Cancelled):
            client.download_product(source.id, tmp_path, whole=whole, progress=progress,
                                    is_cancelled=started.is_set)
        assert time.monotonic() - cancel_at[0] < 1.0
        assert list(tmp_path.iterdir()) == []


# -- cancel stops every wait within about a second ------------------------------------------------------------
#
# The faults below would hold a client for two minutes (Retry-After: 120 honoured up to backoff_max) or
# a minute (a service that does not answer, read timeout 60 s). A cancel set 0.3 s after the start must
# end the call well within 1.5 s with Cancelled, and leave no partial product behind.

SLOW = 120
CANCEL_AT = 0.3
PROMPT = 1.5


def patient(mock: MockCdse) -> CdseSettings:
    """Settings that honour a two-minute Retry-After and wait a minute for an answer."""
    return dataclasses.replace(mock.settings, backoff_max=float(SLOW), timeout=60.0)


class CancelAfter:
    """An is_cancelled that turns true CANCEL_AT seconds after it is made, or after ``once()`` first
    holds when given (so a busy machine cannot make the cancel come before the wait under test)."""

    def __init__(self, once=None):
        self.once = once
        self.started = None if once else time.monotonic()

    def __call__(self) -> bool:
        now = time.monotonic()
        if self.started is None:
            if not self.once():
                return False
            self.started = now
        return now - self.started >= CANCEL_AT

    def elapsed(self) -> float:
        """Seconds since the countdown started (the cancel came CANCEL_AT later)."""
        return time.monotonic() - self.started


def _token_requests(mock):
    return [r for r in mock.requests if r.method == "POST"]


def _token_fault(mock, fault):
    if fault == "stall":
        mock.stall("token", SLOW, count=10)
    else:
        mock.fail_token(int(fault), 10, retry_after=SLOW)


@pytest.mark.parametrize("fault", ["503", "429", "stall"])
def test_cancel_during_login_back_off_or_stall(catalogue, tmp_path, fault):
    source = catalogue["later"]
    with MockCdse([source], users={USER: PASSWORD}) as mock:
        _token_fault(mock, fault)
        cancel = CancelAfter()  # the client's own callback, as the Processing algorithms pass it
        with CdseClient(CREDENTIALS, patient(mock), is_cancelled=cancel) as client, pytest.raises(Cancelled):
            client.download_product(source.id, tmp_path)
        assert cancel.elapsed() < PROMPT
        assert list(tmp_path.iterdir()) == []
        assert len(_token_requests(mock)) == 1  # one request, then the two-minute wait the cancel ended


@pytest.mark.parametrize("fault", ["503", "stall"])
def test_cancel_during_token_refresh(cdse, fault):
    with CdseClient(CREDENTIALS, patient(cdse)) as client:
        client._expire(client.access_token())  # the next call refreshes
        _token_fault(cdse, fault)
        cancel = CancelAfter()
        with pytest.raises(Cancelled):
            client.access_token(is_cancelled=cancel)
        assert cancel.elapsed() < PROMPT


CATALOGUE_CALLS = {
    "search": lambda client, product, cancel: client.search(WORLD, "2023-01-01", "2023-12-31", page_size=2,
                                                             is_cancelled=cancel),
    "get_product by id": lambda client, product, cancel: client.get_product(product.id, is_cancelled=cancel),
    "get_product by name": lambda client, product, cancel: client.get_product(product.name, is_cancelled=cancel),
    "list_nodes": lambda client, product, cancel: client.list_nodes(Product.from_odata(product.odata(True)),
                                                                    "GRANULE", is_cancelled=cancel),
}


@pytest.mark.parametrize("fault", ["503", "429", "stall"])
@pytest.mark.parametrize("call", sorted(CATALOGUE_CALLS))
def test_cancel_during_catalogue_back_off_or_stall(cdse, catalogue, call, fault):
    if fault == "stall":
        cdse.stall("catalogue", SLOW, count=10)
    else:
        cdse.fail_catalogue(int(fault), 10, retry_after=SLOW)
    with CdseClient(None, patient(cdse)) as client:
        cancel = CancelAfter()
        with pytest.raises(Cancelled):
            CATALOGUE_CALLS[call](client, catalogue["later"], cancel)
        assert cancel.elapsed() < PROMPT


def test_cancel_between_search_pages(cdse):
    # The first page answers at once, the second stalls: the cancel still ends the search.
    cdse.stall("catalogue", 0.0)
    cdse.stall("catalogue", SLOW, count=10)
    with CdseClient(None, patient(cdse)) as client:
        cancel = CancelAfter()
        with pytest.raises(Cancelled):
            client.search(WORLD, "2023-01-01", "2023-12-31", page_size=2, is_cancelled=cancel)
        assert cancel.elapsed() < PROMPT
    assert len([r for r in cdse.requests if r.path == "/odata/v1/Products"]) == 2


@pytest.mark.parametrize("whole", [True, False], ids=["whole", "files"])
@pytest.mark.parametrize("fault", ["429", "503", "stalled answer", "stalled body"])
def test_cancel_during_download_back_off_or_stall(catalogue, tmp_path, whole, fault):
    source = catalogue["east"]
    with MockCdse([source], users={USER: PASSWORD}) as mock:
        with CdseClient(CREDENTIALS, patient(mock)) as client:
            client.access_token()
            if fault == "stalled answer":
                mock.stall("download", SLOW, count=20)
            elif fault == "stalled body":
                # Part of the file arrives, then nothing: a read blocked until the 60 s timeout.
                mock.stall_after(source.name if whole else "_B11_20m", 500, SLOW)
            else:
                mock.fail_next(int(fault), 100, retry_after=SLOW)
            cancel = CancelAfter()
            with pytest.raises(Cancelled):
                client.download_product(source.id, tmp_path, whole=whole, is_cancelled=cancel)
            assert cancel.elapsed() < PROMPT
        assert list(tmp_path.iterdir()) == []


def test_cancel_while_another_download_thread_refreshes_the_token(catalogue, tmp_path):
    # Per-file download: the token expires after two files and its refresh stalls; the worker
    # refreshing and those queued behind the token lock all give up on the cancel.
    source = catalogue["east"]
    with MockCdse([source], users={USER: PASSWORD}) as mock:
        cancel = CancelAfter(once=lambda: len(_token_requests(mock)) >= 2)  # once the refresh hangs
        with CdseClient(CREDENTIALS, patient(mock), is_cancelled=cancel) as client:
            client.access_token()
            mock.expire_access_after(2)
            mock.stall("token", SLOW, count=10)
            with pytest.raises(Cancelled):
                client.download_product(source.id, tmp_path)
            assert cancel.elapsed() < PROMPT
        assert list(tmp_path.iterdir()) == []
        assert len(_token_requests(mock)) == 2  # the login, then the one stalled refresh


def test_cancel_of_a_several_product_download(catalogue, tmp_path):
    products = [catalogue["later"], catalogue["east"]]
    with MockCdse(products, users={USER: PASSWORD}) as mock:
        with CdseClient(CREDENTIALS, patient(mock)) as client:
            client.access_token()
            mock.stall_after(products[1].name, 500, SLOW)  # the second product stalls
            cancel = CancelAfter(once=lambda: any(products[1].id in r.path for r in mock.downloads()))
            with pytest.raises(Cancelled):
                copernicus.download_products(client, [p.id for p in products], tmp_path, whole=True,
                                             is_cancelled=cancel)
            assert cancel.elapsed() < PROMPT
        # The first product was complete before the cancel and stays; nothing of the second.
        assert sorted(p.name for p in tmp_path.iterdir()) == [products[0].name[:-5] + ".zip"]


# -- what was downloaded opens with the product reader ---------------------------------------------------------


def test_downloads_open_with_the_product_reader(client, catalogue, tmp_path):
    products = pytest.importorskip("landslide_plugin.core.products")
    source = catalogue["east"]
    folder = client.download_product(source.id, tmp_path / "files")
    whole = client.download_product(source.id, tmp_path / "zip", whole=True)
    with zipfile.ZipFile(whole) as archive:
        assert f"{source.name}/MTD_MSIL2A.xml" in archive.namelist()
    for path in (folder, whole):
        info = products.read_product_info(path)
        assert (info.tile, info.baseline, info.relative_orbit) == ("T37SDB", "05.09", 35)
        stack = products.read_l2a([path], bands=("B04", "B8A", "B11"))
        assert stack.reflectance.shape == (3, 32, 32)
        assert stack.scl.max() > 0
    a = products.read_l2a([folder], bands=("B04", "B8A", "B11")).reflectance
    b = products.read_l2a([whole], bands=("B04", "B8A", "B11")).reflectance
    assert (a == b).all()
