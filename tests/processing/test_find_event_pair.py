"""Find a pre/post pair for an event through processing.run(), against the mock serving generated dates."""
from __future__ import annotations

from pathlib import Path

import pytest
from mock_cdse import MockCdse, make_event_scenario
from qgis.core import (
    QgsApplication,
    QgsAuthMethodConfig,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingUtils,
)

USER, PASSWORD = "dave@example.org", "Another-Passw0rd"  # pragma: allowlist secret (a test value)


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    return make_event_scenario(tmp_path_factory.mktemp("event_alg"), size=96)


@pytest.fixture()
def cdse(scenario, monkeypatch):
    with MockCdse(list(scenario.products.values()), users={USER: PASSWORD}) as mock:
        for key, value in mock.env().items():
            monkeypatch.setenv(key, value)
        for key in ("CDSE_USERNAME", "CDSE_PASSWORD", "CDSE_TOTP"):
            monkeypatch.delenv(key, raising=False)
        yield mock


@pytest.fixture()
def authcfg(qgis_app):
    manager = QgsApplication.authManager()
    if not manager.masterPasswordIsSet():
        manager.setMasterPassword("test-master-password", True)
    config = QgsAuthMethodConfig("Basic")
    config.setName("Copernicus event account")
    config.setConfig("username", USER)
    config.setConfig("password", PASSWORD)
    stored = manager.storeAuthenticationConfig(config)
    if isinstance(stored, tuple):
        config = stored[1]
    yield config.id()
    manager.removeAuthenticationConfig(config.id())


def parameters(scenario, tmp_path, **extra):
    values = {"EXTENT": scenario.extent(), "EVENT_DATE": "2023-02-06", "CACHE_FOLDER": str(tmp_path / "scl"),
              "OUTPUT": "TEMPORARY_OUTPUT"}
    values.update(extra)
    return values


def test_finds_the_pair_and_lists_every_candidate(run_alg, cdse, scenario, authcfg, tmp_path):
    context = QgsProcessingContext()
    result = run_alg("find_event_pair", parameters(scenario, tmp_path, AUTH=authcfg), context=context)
    assert result["POST_PRODUCT_IDS"] == scenario["post"].id and result["PRE_PRODUCT_IDS"] == scenario["pre"].id
    assert result["POST_NAMES"] == scenario["post"].name and result["PRE_DATE"] == "2022-02-14"
    assert result["POST_DATE"] == "2023-02-15" and "same relative orbit" in result["SUMMARY"]
    layer = QgsProcessingUtils.mapLayerFromString(result["OUTPUT"], context)
    features = {f["names"]: f for f in layer.getFeatures()}
    assert len(features) == len(scenario.products)  # every acquisition, and the left-out older baseline
    chosen = [f for f in layer.getFeatures() if f["chosen"]]
    assert sorted(f["role"] for f in chosen) == ["post", "pre"]
    cloudy = [f for f in layer.getFeatures() if f["date"] == "2023-02-10"][0]
    assert cloudy["measured_by"] == "SCL" and cloudy["clear_pct"] < 5 and cloudy["tile_cloud"] < 30
    assert cloudy["rank"] is None or str(cloudy["rank"]) == "NULL"
    assert all(not f.geometry().isEmpty() for f in layer.getFeatures())


def test_the_chosen_ids_feed_the_download(run_alg, cdse, scenario, authcfg, tmp_path):
    found = run_alg("find_event_pair", parameters(scenario, tmp_path, AUTH=authcfg))
    downloaded = run_alg("download_s2_l2a", {"PRODUCT_IDS": found["POST_PRODUCT_IDS"], "AUTH": authcfg,
                                             "OUTPUT_FOLDER": str(tmp_path / "downloads")})
    assert [Path(p).name for p in downloaded["PRODUCT_PATHS"]] == [scenario["post"].name]


def test_errors_are_one_sentence_with_the_fix(run_alg, cdse, scenario, authcfg, tmp_path):
    with pytest.raises(QgsProcessingException, match="authentication configuration"):
        run_alg("find_event_pair", parameters(scenario, tmp_path))
    with pytest.raises(QgsProcessingException, match="longer window .* lower the minimum clear share"):
        run_alg("find_event_pair", parameters(scenario, tmp_path, AUTH=authcfg, POST_DAYS=5))
    with pytest.raises(QgsProcessingException, match="area of interest|extent"):
        run_alg("find_event_pair", {"EVENT_DATE": "2023-02-06", "AUTH": authcfg, "OUTPUT": "TEMPORARY_OUTPUT"})
