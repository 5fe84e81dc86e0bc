"""Finding a pre/post pair for an event, against the mock service serving several generated dates."""
from __future__ import annotations

import datetime
import re
import socket
import threading
import time

import pytest
from mock_cdse import MockCdse, make_event_scenario, make_product

from landslide_plugin.core import event_pairs
from landslide_plugin.core.copernicus import CdseAuthError, CdseClient, CdseSettings, CdseUnreachable, Credentials
from landslide_plugin.core.event_pairs import Acquisition, NoClearImage, find_event_pair
from landslide_plugin.core.rasters import Cancelled

USER, PASSWORD = "carol@example.org", "Event-Pa55word"  # pragma: allowlist secret (a test value)


def one_sentence(message: str) -> bool:
    """A single sentence: no sentence end followed by another sentence inside."""
    return not re.search(r"[.!?]\s+[A-Z]", message.strip().rstrip("."))


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    return make_event_scenario(tmp_path_factory.mktemp("event"), size=96)


@pytest.fixture()
def cdse(scenario):
    with MockCdse(list(scenario.products.values()), users={USER: PASSWORD}) as mock:
        yield mock


@pytest.fixture()
def client(cdse):
    with CdseClient(Credentials(USER, PASSWORD), cdse.settings) as cdse_client:
        yield cdse_client


def find(client, scenario, tmp_path, **options):
    options.setdefault("cache_dir", tmp_path / "scl")
    return find_event_pair(client, scenario.aoi, scenario.event_date, **options)


def by_date(pair, day: str) -> Acquisition:
    [found] = [c for c in pair.candidates if c.date.isoformat() == day]
    return found


def test_ranking_picks_the_clear_same_season_pre_image_and_the_earliest_clear_post(client, scenario, tmp_path):
    pair = find(client, scenario, tmp_path)
    # Post: 2023-02-10 is cloudy over the area; 2023-02-15 is the earliest clear one, in its newest baseline.
    assert pair.post.names == scenario["post"].name + "" and pair.post.ids == scenario["post"].id
    assert by_date(pair, "2023-02-17").rank == 2
    # Pre: the same-season date of the same orbit a year before wins over the cloudy same-season one, the
    # same-season one of the other orbit and the off-season one (57 days of day of year away).
    assert pair.pre.ids == scenario["pre"].id and pair.pre.rank == 1 and pair.pre.chosen
    assert pair.pre.same_orbit and pair.pre.season_days == 1
    assert not by_date(pair, "2022-02-19").eligible
    off_season, other_orbit = by_date(pair, "2022-12-20"), by_date(pair, "2022-02-16")
    assert off_season.rank == 2 and off_season.season_days == 57
    assert other_orbit.rank == 3 and not other_orbit.same_orbit
    # The reprocessed duplicate is left out and said so.
    assert [p.id for p, _ in pair.left_out] == [scenario["post_n0509"].id]
    assert "newer processing baseline" in pair.summary() and "chosen" in pair.summary()


def test_the_clear_share_over_the_area_comes_from_the_scl_not_the_tile_cloud_cover(client, scenario, tmp_path):
    pair = find(client, scenario, tmp_path)
    cloudy = by_date(pair, "2023-02-10")
    # The tile is mostly clear by its catalogue cloud cover, but the area is under the cloud.
    assert cloudy.tile_cloud_cover < 30
    assert cloudy.source == "SCL" and cloudy.clear_share < 0.05 and not cloudy.eligible
    assert by_date(pair, "2023-02-15").clear_share > 0.95 and by_date(pair, "2023-02-15").covered_share == 1.0


def test_a_cached_scl_is_reused_not_fetched_again(cdse, client, scenario, tmp_path):
    find(client, scenario, tmp_path)
    fetched = [r.path for r in cdse.downloads()]
    assert len(fetched) == len(scenario.products) - 1  # every product but the older duplicate, once each
    assert all(path.endswith("_SCL_20m.jp2)/$value") for path in fetched)
    assert len(list((tmp_path / "scl").glob("*_SCL_20m.jp2"))) == len(fetched)
    before = len(cdse.requests)
    find(client, scenario, tmp_path)
    again = cdse.requests[before:]
    assert not [r for r in again if "/Nodes" in r.path]  # neither listed nor downloaded: only the searches
    assert {r.path for r in again} <= {"/odata/v1/Products", "/auth/realms/CDSE/protocol/openid-connect/token"}


def test_an_unavailable_scl_falls_back_to_the_tile_cloud_cover_and_says_so(cdse, client, scenario, tmp_path):
    cdse.hide_files("_SCL_20m")
    pair = find(client, scenario, tmp_path)
    assert all(c.source == "tile cloud cover" for c in pair.candidates)
    assert "SCL" in pair.post.note
    # Without the SCL the cloud over the area cannot be seen: the tile cloud cover lets 2023-02-10 through.
    assert pair.post.date == datetime.date(2023, 2, 10)
    assert "measured by tile cloud cover" in pair.summary()


def test_a_cancelled_search_stops_promptly(cdse, scenario, tmp_path):
    cdse.stall("download", 30.0, count=20)
    cancel = threading.Event()
    with CdseClient(Credentials(USER, PASSWORD), cdse.settings, is_cancelled=cancel.is_set) as client:
        threading.Timer(0.5, cancel.set).start()
        start = time.monotonic()
        with pytest.raises(Cancelled):
            find(client, scenario, tmp_path)
        assert time.monotonic() - start < 2.0
    assert not list((tmp_path / "scl").glob("*.part"))


def test_no_candidate_with_enough_clear_area_says_what_to_change(client, scenario, tmp_path):
    with pytest.raises(NoClearImage) as error:
        find(client, scenario, tmp_path, post_days=5)  # only 2023-02-10, cloudy over the area
    message = str(error.value)
    assert "longer window" in message and "lower the minimum clear share" in message and one_sentence(message)
    with pytest.raises(NoClearImage) as error:
        find(client, scenario, tmp_path, pre_days=20, pre_years=0)  # only 2023-01-25, cloudy
    message = str(error.value)
    assert "before the event" in message and "minimum clear share" in message and one_sentence(message)


def test_no_credentials_says_to_choose_the_authentication(cdse, scenario, tmp_path):
    with CdseClient(None, cdse.settings) as client, pytest.raises(CdseAuthError) as error:
        find(client, scenario, tmp_path)
    message = str(error.value)
    assert "authentication configuration" in message and "CDSE_USERNAME" in message and one_sentence(message)
    assert not cdse.requests  # nothing was asked of the service


def test_an_unreachable_service_says_so_in_one_sentence(scenario, tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    settings = CdseSettings(token_url=base + "/token", catalogue_url=base + "/odata/v1",
                            download_url=base + "/odata/v1", retries=1, backoff_base=0.01, timeout=2)
    with CdseClient(Credentials(USER, PASSWORD), settings) as client, pytest.raises(CdseUnreachable) as error:
        find(client, scenario, tmp_path)
    message = str(error.value)
    assert "cannot be reached" in message and "internet connection" in message and one_sentence(message)


def test_an_area_over_two_tiles_gets_the_tiles_of_each_date(tmp_path):
    sdb_ulx = 199980.0 + 32 * 20.0  # the second tile continues the first one eastwards
    products = []
    for day, orbit in (("2023-02-15", 78), ("2022-02-14", 78)):
        when = datetime.datetime.fromisoformat(f"{day}T08:13:29")
        for seed, (tile, ulx) in enumerate((("T37SCB", 199980.0), ("T37SDB", sdb_ulx))):
            products.append(make_product(tmp_path / "src", sensing_time=when, tile=tile, ulx=ulx,
                                         relative_orbit=orbit, seed=seed, cloud_cover=20.0))
    west, south, east, north = products[0].footprint
    aoi = (west + 0.2 * (east - west), south, products[1].footprint[2] - 0.2 * (east - west), north)
    with MockCdse(products, users={USER: PASSWORD}) as mock, \
            CdseClient(Credentials(USER, PASSWORD), mock.settings) as client:
        pair = find_event_pair(client, aoi, "2023-02-06", min_clear=0.5, cache_dir=tmp_path / "scl")
    assert sorted(pair.post.ids.split(",")) == sorted(p.id for p in products[:2])
    assert sorted(pair.pre.ids.split(",")) == sorted(p.id for p in products[2:])
    assert pair.post.tiles == ("37SCB", "37SDB")
    # make_product's SCL has a quarter of cloud (class 8) everywhere: the share is measured over both tiles.
    assert 0.6 < pair.post.clear_share < 0.9 and pair.post.source == "SCL"


def test_pre_windows_and_season_distance():
    event, post = datetime.date(2023, 2, 6), datetime.date(2023, 2, 15)
    windows = event_pairs.pre_windows(event, post, pre_days=60, pre_years=2, season_days=30)
    assert windows == [(datetime.date(2021, 1, 16), datetime.date(2021, 3, 17)),
                       (datetime.date(2022, 1, 16), datetime.date(2022, 3, 17)),
                       (datetime.date(2022, 12, 8), datetime.date(2023, 2, 5))]
    # Overlapping windows merge, and nothing reaches the event day.
    assert event_pairs.pre_windows(event, post, pre_days=400, pre_years=1, season_days=30) == [
        (datetime.date(2022, 1, 2), datetime.date(2023, 2, 5))]
    assert event_pairs.season_distance(datetime.date(2022, 12, 20), datetime.date(2023, 2, 15)) == 57
    assert event_pairs.season_distance(datetime.date(2020, 2, 29), datetime.date(2023, 3, 1)) == 0


def test_wrong_inputs_fail_before_any_request(client, cdse, scenario, tmp_path):
    with pytest.raises(ValueError, match="between 0 and 1"):
        find(client, scenario, tmp_path, min_clear=70)
    with pytest.raises(ValueError, match="not a date"):
        find_event_pair(client, scenario.aoi, "6 Feb", cache_dir=tmp_path)
    with pytest.raises(ValueError, match="box"):
        find_event_pair(client, (1, 2, 0, 3), scenario.event_date, cache_dir=tmp_path)
    assert not cdse.requests
