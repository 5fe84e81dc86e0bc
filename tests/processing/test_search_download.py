"""Search and Download Sentinel-2 L2A through processing.run(), against the local mock service."""
from __future__ import annotations

import datetime
import threading
import time
from pathlib import Path

import pytest
from mock_cdse import MockCdse, make_product
from qgis.core import (
    QgsApplication,
    QgsAuthMethodConfig,
    QgsFeature,
    QgsGeometry,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingUtils,
    QgsRectangle,
    QgsVectorLayer,
    QgsWkbTypes,
)

USER, PASSWORD = "bob@example.org", "Very-Secret-Passw0rd"  # pragma: allowlist secret (a test value)


@pytest.fixture(scope="module")
def products(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cdse_alg_products")
    when = datetime.datetime(2023, 1, 5, 8, 13, 29)
    return [
        make_product(folder, sensing_time=when, baseline="05.09", cloud_cover=3.0, seed=1),
        make_product(folder, sensing_time=when, baseline="05.10", cloud_cover=3.0, seed=2),
        make_product(folder, sensing_time=datetime.datetime(2023, 8, 5, 8, 13, 31), cloud_cover=12.0, seed=3),
        make_product(folder, sensing_time=datetime.datetime(2023, 8, 7, 8, 3, 29), cloud_cover=80.0, seed=4),
    ]


@pytest.fixture()
def cdse(products, monkeypatch):
    with MockCdse(products, users={USER: PASSWORD}) as mock:
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
    config.setName("Copernicus test account")
    config.setConfig("username", USER)
    config.setConfig("password", PASSWORD)
    stored = manager.storeAuthenticationConfig(config)
    assert stored[0] if isinstance(stored, tuple) else stored
    if isinstance(stored, tuple):
        config = stored[1]
    yield config.id()
    manager.removeAuthenticationConfig(config.id())


def footprint_extent(product) -> str:
    w, s, e, n = product.footprint
    return f"{w - 0.01},{e + 0.01},{s - 0.01},{n + 0.01} [EPSG:4326]"


def test_search_layer_has_the_products_and_fields(run_alg, cdse, products):
    context = QgsProcessingContext()
    result = run_alg("search_s2_l2a", {
        "EXTENT": footprint_extent(products[0]), "START_DATE": "2023-01-01", "END_DATE": "2023-08-31",
        "MAX_CLOUD": 30, "OUTPUT": "TEMPORARY_OUTPUT"}, context=context)
    layer = QgsProcessingUtils.mapLayerFromString(result["OUTPUT"], context)
    assert layer.crs().authid() == "EPSG:4326"
    assert QgsWkbTypes.geometryType(layer.wkbType()) == QgsWkbTypes.PolygonGeometry
    assert layer.fields().names() == ["product_id", "name", "date", "tile", "orbit", "cloud_cover", "size_mb",
                                      "baseline", "online"]
    features = list(layer.getFeatures())
    # The N0509 duplicate is dropped, the 80 % cloudy product filtered out.
    assert result["COUNT"] == 2 == len(features)
    assert [f["product_id"] for f in features] == [products[1].id, products[2].id]
    first = features[0]
    assert first["name"] == products[1].name and first["baseline"] == "05.10" and first["tile"] == "37SCB"
    assert first["orbit"] == 78 and first["cloud_cover"] == 3.0 and first["online"] in (True, 1)
    assert first["date"].toString("yyyy-MM-dd HH:mm:ss") == "2023-01-05 08:13:29"
    w, s, e, n = products[1].footprint
    box = first.geometry().boundingBox()
    assert box.xMinimum() == pytest.approx(w) and box.yMaximum() == pytest.approx(n)


def test_search_with_an_area_layer_in_another_crs_and_no_dedupe(run_alg, cdse, products):
    w, s, e, n = products[0].footprint
    layer = QgsVectorLayer("Polygon?crs=EPSG:32637", "aoi", "memory")
    feature = QgsFeature()
    geometry = QgsGeometry.fromRect(QgsRectangle(w, s, e, n))
    from qgis.core import QgsCoordinateReferenceSystem, QgsCoordinateTransform, QgsProject

    geometry.transform(QgsCoordinateTransform(QgsCoordinateReferenceSystem("EPSG:4326"),
                                              QgsCoordinateReferenceSystem("EPSG:32637"), QgsProject()))
    feature.setGeometry(geometry)
    layer.dataProvider().addFeatures([feature])
    result = run_alg("search_s2_l2a", {
        "AOI_LAYER": layer, "START_DATE": "2023-01-05", "END_DATE": "2023-01-05", "MAX_CLOUD": 100,
        "DEDUPLICATE": False, "OUTPUT": "TEMPORARY_OUTPUT"})
    assert result["COUNT"] == 2
    assert "OData.CSC.Intersects" in [r for r in cdse.requests if r.path.endswith("/Products")][0].query \
        .replace("%20", " ").replace("%28", "(")


def test_search_needs_an_area(run_alg, cdse):
    with pytest.raises(QgsProcessingException, match="search extent or an area-of-interest layer"):
        run_alg("search_s2_l2a", {"START_DATE": "2023-01-01", "END_DATE": "2023-01-31",
                                  "OUTPUT": "TEMPORARY_OUTPUT"})


class Recorder(QgsProcessingFeedback):
    def __init__(self):
        super().__init__()
        self.lines = []

    def pushInfo(self, text):  # noqa: N802
        self.lines.append(text)
        super().pushInfo(text)

    def pushDebugInfo(self, text):  # noqa: N802
        self.lines.append(text)
        super().pushDebugInfo(text)

    def pushCommandInfo(self, text):  # noqa: N802
        self.lines.append(text)
        super().pushCommandInfo(text)

    def reportError(self, text, fatalError=False):  # noqa: N802, N803
        self.lines.append(text)
        super().reportError(text, fatalError)


def test_download_with_an_auth_config_chains_into_prepare(run_alg, provider, cdse, products, authcfg, tmp_path):
    feedback = Recorder()
    context = QgsProcessingContext()
    search = run_alg("search_s2_l2a", {
        "EXTENT": footprint_extent(products[0]), "START_DATE": "2023-08-01", "END_DATE": "2023-08-31",
        "MAX_CLOUD": 30, "OUTPUT": "TEMPORARY_OUTPUT"}, context=context)
    layer = QgsProcessingUtils.mapLayerFromString(search["OUTPUT"], context)
    parameters = {"PRODUCTS": layer, "AUTH": authcfg, "OUTPUT_FOLDER": str(tmp_path / "downloads")}
    result = run_alg("download_s2_l2a", parameters, feedback=feedback, context=context)

    paths = result["PRODUCT_PATHS"]
    assert paths == [str(tmp_path / "downloads" / products[2].name)]
    assert result["OUTPUT_FOLDER"] == str(tmp_path / "downloads")
    safe = Path(paths[0])
    assert (safe / "MTD_MSIL2A.xml").is_file()
    assert len(list(safe.rglob("*_20m.jp2"))) == 7  # six bands and SCL
    assert cdse.grants == ["password"]

    # Nothing a user or a model file could see holds the password.
    log = "\n".join(feedback.lines) + feedback.textLog() + feedback.htmlLog()
    assert PASSWORD not in log and USER in log
    command = provider.algorithm("download_s2_l2a").asPythonCommand(parameters, context)
    assert PASSWORD not in command and authcfg in command

    # The output feeds "Prepare Sentinel-2 L2A product" directly.
    prepared = run_alg("prepare_s2_l2a", {"INPUT": paths, "OUTPUT": str(tmp_path / "stack.tif"),
                                          "OUTPUT_SCL": str(tmp_path / "scl.tif")})
    assert prepared["SENSING_DATE"] == "2023-08-05" and prepared["TILE"] == "T37SCB"


def test_download_by_typed_id_whole_product(run_alg, cdse, products, authcfg, tmp_path):
    result = run_alg("download_s2_l2a", {"PRODUCT_IDS": f" {products[2].id} ", "AUTH": authcfg,
                                         "WHOLE_PRODUCT": True, "OUTPUT_FOLDER": str(tmp_path)})
    [path] = result["PRODUCT_PATHS"]
    assert Path(path).name == products[2].name[:-5] + ".zip"
    assert Path(path).read_bytes() == products[2].data


def test_download_with_a_wrong_password_says_so(run_alg, cdse, products, tmp_path):
    manager = QgsApplication.authManager()
    if not manager.masterPasswordIsSet():
        manager.setMasterPassword("test-master-password", True)
    config = QgsAuthMethodConfig("Basic")
    config.setName("typo")
    config.setConfig("username", USER)
    config.setConfig("password", "wrong-password")
    stored = manager.storeAuthenticationConfig(config)
    config = stored[1] if isinstance(stored, tuple) else config
    feedback = Recorder()
    with pytest.raises(QgsProcessingException, match=f"login failed for user {USER}: invalid user credentials"):
        run_alg("download_s2_l2a", {"PRODUCT_IDS": products[2].id, "AUTH": config.id(),
                                    "OUTPUT_FOLDER": str(tmp_path)}, feedback=feedback)
    assert "wrong-password" not in "\n".join(feedback.lines) + feedback.textLog()
    assert list(tmp_path.iterdir()) == []
    manager.removeAuthenticationConfig(config.id())


def test_download_without_products_or_account_explains(run_alg, cdse, products, tmp_path):
    with pytest.raises(QgsProcessingException, match="No product to download"):
        run_alg("download_s2_l2a", {"OUTPUT_FOLDER": str(tmp_path)})
    with pytest.raises(QgsProcessingException, match="CDSE_USERNAME and CDSE_PASSWORD"):
        run_alg("download_s2_l2a", {"PRODUCT_IDS": products[2].id, "OUTPUT_FOLDER": str(tmp_path)})


# -- cancel: within about a second, as a sentence, whatever the service is doing ---------------------------


def _run_cancelled(run_alg, name, parameters):
    """Run ``name``, pressing Cancel 0.3 s after the start; return (error message, seconds taken)."""
    feedback = Recorder()
    timer = threading.Timer(0.3, feedback.cancel)
    started = time.monotonic()
    timer.start()
    try:
        with pytest.raises(QgsProcessingException) as caught:
            run_alg(name, parameters, feedback=feedback)
    finally:
        timer.cancel()
    return str(caught.value), time.monotonic() - started


def test_search_cancel_during_a_catalogue_back_off(run_alg, cdse, products):
    cdse.fail_catalogue(503, 10, retry_after=120)  # the client would wait two minutes
    message, seconds = _run_cancelled(run_alg, "search_s2_l2a", {
        "EXTENT": footprint_extent(products[0]), "START_DATE": "2023-01-01", "END_DATE": "2023-08-31",
        "OUTPUT": "TEMPORARY_OUTPUT"})
    assert message.startswith("Cancelled by the user") and "Traceback" not in message
    assert seconds < 1.5


@pytest.mark.parametrize("fault", ["login back-off", "stalled download"])
def test_download_cancel_is_prompt_and_leaves_no_partial_product(run_alg, cdse, products, authcfg, tmp_path,
                                                                 fault):
    if fault == "login back-off":
        cdse.fail_token(503, 10, retry_after=120)
    else:
        cdse.stall_after(products[2].name, 500, 120)  # half a file, then a silent connection
    folder = tmp_path / "downloads"
    message, seconds = _run_cancelled(run_alg, "download_s2_l2a", {
        "PRODUCT_IDS": products[2].id, "AUTH": authcfg, "WHOLE_PRODUCT": True, "OUTPUT_FOLDER": str(folder)})
    assert message == "Cancelled by the user; partial downloads were removed."
    assert seconds < 1.5
    assert not folder.exists() or list(folder.iterdir()) == []
